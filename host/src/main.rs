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
