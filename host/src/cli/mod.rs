//! The `aimass` command line.

mod check;
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
    /// Load a config, type-check every hierarchy, print what it serves.
    Check {
        /// The operator's config file.
        #[arg(env = "AIMASS_CONFIG")]
        config: PathBuf,
    },
    /// Print the config file's JSON schema (generated from the types).
    Schema,
}

impl Cli {
    /// Runs the chosen command; the error is what to print.
    pub async fn run(self) -> Result<(), String> {
        match self.command {
            Command::Inspect { plugin } => inspect::run(&plugin).await,
            Command::Check { config } => check::run(&config).await,
            Command::Schema => {
                println!("{}", crate::config::json_schema());
                Ok(())
            }
        }
    }
}
