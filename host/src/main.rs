//! The `aimass` binary.

use aimass::cli::{Cli, LogFormat};
use aimass::logging::Escaping;
use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

// Every request allocates and frees many small buffers across worker
// threads; glibc's malloc showed ~9% of the server's CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `arena_eager_commit` and `purge_delay` (mimalloc.h's
/// `mi_option_t`, v3: the Rust bindings name neither).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes the allocator commit arena memory as it is used rather than a
/// whole arena up front, and hand freed memory back at once: a server idles
/// most of its life, and with mimalloc's defaults it kept ~40 MB it did not
/// use (80 MB idle against 44 MB, measured). `MIMALLOC_ARENA_EAGER_COMMIT`
/// and `MIMALLOC_PURGE_DELAY` in the environment still win: these are only
/// defaults.
///
/// It runs as a constructor ahead of mimalloc's own (a numbered
/// `.init_array` entry runs before the unnumbered ones), because the first
/// arena is reserved before `main` and reads the option then.
extern "C" fn allocator_defaults() {
    // SAFETY: writes two integers of the allocator's static option table,
    // which holds them from the start; nothing runs beside a constructor.
    unsafe {
        libmimalloc_sys::mi_option_set_default(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, 0);
    }
}

#[used]
#[unsafe(link_section = ".init_array.00101")]
static ALLOCATOR_DEFAULTS: extern "C" fn() = allocator_defaults;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("AIMASS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = cli.log_format == LogFormat::Human && std::io::stderr().is_terminal();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Escaping::new(std::io::stderr, ansi));
    match cli.log_format {
        LogFormat::Human => logs.with_ansi(ansi).init(),
        LogFormat::Json => logs.json().with_current_span(true).init(),
    }
    match cli.run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // A message may quote what a plugin or client named: its lines
            // are the host's, everything inside them is escaped.
            let shown = aimass::printable::escape_except(&message, |c| c == '\n');
            eprintln!("error: {shown}");
            ExitCode::FAILURE
        }
    }
}
