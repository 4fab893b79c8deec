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
/// How long freed memory is held back for reuse, at most (mimalloc
/// multiplies it by 10 for arenas; `purge_heldback` does not wait that long).
const PURGE_DELAY_MS: std::ffi::c_long = 1000;
/// How often held-back memory is handed back.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Makes the allocator commit arena memory as it is used rather than a
/// whole arena up front (with mimalloc's defaults the server kept ~40 MB it
/// did not use: 80 MB idle against 44 MB, measured), and hold freed memory
/// back for reuse instead of handing it back at once; `purge_heldback`
/// hands it back every second. Handing it back at once cost tract a third
/// of its speed on real graphs: each op's output buffer, freed and
/// allocated again a moment later, came back as fresh pages to fault in
/// (OCR `ocr-v4` on tract, one page at a time: 0.116 pages/s handing back
/// at once, 0.183 holding back). `MIMALLOC_ARENA_EAGER_COMMIT` and
/// `MIMALLOC_PURGE_DELAY` in the environment still win: these are only
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
        libmimalloc_sys::mi_option_set_default(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
}

#[used]
#[unsafe(link_section = ".init_array.00101")]
static ALLOCATOR_DEFAULTS: extern "C" fn() = allocator_defaults;

/// Hands held-back memory back every `PURGE_EVERY`: mimalloc would do it
/// only when some thread next allocates, and an idle server allocates
/// nothing. A forced collect purges every arena's freed ranges (program
/// wide, from any thread), so a busy graph's buffers are reused for up to a
/// second and an idle server's memory goes back within one.
fn purge_heldback() {
    let spawned = std::thread::Builder::new()
        .name("aimass-purge".into())
        .spawn(|| {
            // A thread that never allocated has no heap to collect from,
            // and mimalloc then skips the arenas too.
            let heap = std::hint::black_box(Box::new(0u64));
            loop {
                std::thread::sleep(PURGE_EVERY);
                // SAFETY: mi_collect takes no pointers and may be called
                // from any thread at any time.
                unsafe { libmimalloc_sys::mi_collect(true) };
                std::hint::black_box(&heap);
            }
        });
    if let Err(error) = spawned {
        eprintln!("warning: no thread to hand idle memory back: {error}");
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    purge_heldback();
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
