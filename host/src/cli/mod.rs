//! The `aimass` command line.

mod inspect;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// aimass: serve sandboxed WebAssembly sub-models, composed into hierarchies.
#[derive(Debug, Parser)]
#[command(name = "aimass", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show what a plugin is: its info(), digest, imports and exports.
    Inspect {
        /// The plugin's `.wasm` component.
        #[arg(env = "AIMASS_PLUGIN")]
        plugin: PathBuf,
    },
}

impl Cli {
    /// Runs the chosen command; the error is what to print.
    pub async fn run(self) -> Result<(), String> {
        match self.command {
            Command::Inspect { plugin } => inspect::run(&plugin).await,
        }
    }
}
