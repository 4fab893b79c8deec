//! The `aimass` command line.

mod check;
mod eval;
mod inspect;
mod new;
mod run;
mod serve;
mod stdout;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// aimass: serve sandboxed WebAssembly sub-models, composed into hierarchies.
#[derive(Debug, Parser)]
#[command(name = "aimass", version, about)]
pub struct Cli {
    /// Log lines as text for people, or one JSON object per line.
    #[arg(
        long,
        global = true,
        env = "AIMASS_LOG_FORMAT",
        value_enum,
        default_value = "human"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Text for people.
    Human,
    /// One JSON object per line, with the request's span fields.
    Json,
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
    /// Serve the config's models over HTTP (Open Inference Protocol v2).
    Serve(serve::ServeArgs),
    /// Run one inference without a server and print the v2 response.
    Run {
        /// The operator's config file.
        #[arg(env = "AIMASS_CONFIG")]
        config: PathBuf,
        /// The model (a node or a hierarchy).
        #[arg(env = "AIMASS_MODEL")]
        model: String,
        /// A v2 inference request as JSON (`-` reads stdin).
        #[arg(long, env = "AIMASS_INPUT")]
        input: PathBuf,
    },
    /// Score a classifier on a labelled CSV, or on a model's capture joined
    /// with its feedback: accuracy, macro P/R/F1, ROC AUC, confusion
    /// matrix, per-class recall, latency, cascade stages (and, for a
    /// capture, what was served live).
    Eval {
        /// The operator's config file.
        #[arg(env = "AIMASS_CONFIG")]
        config: PathBuf,
        /// The model (a node or a hierarchy) to score.
        #[arg(long, env = "AIMASS_MODEL")]
        model: String,
        /// A CSV with a header (feature columns and `label`), a model's
        /// capture folder (`FOLDER/MODEL`): its one-row requests with a
        /// feedback label, or a folder of images with `labels.json` (for a
        /// model that reads text: BYTES image in, `text` and `boxes` out).
        #[arg(long, env = "AIMASS_DATA")]
        data: PathBuf,
        /// Samples per request: 1 measures latency, larger sizes the cost
        /// per sample in a batch.
        #[arg(long, env = "AIMASS_BATCH", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8192))]
        batch: u32,
        /// Print the report as JSON.
        #[arg(long, env = "AIMASS_JSON")]
        json: bool,
    },
    /// Print the config file's JSON schema (generated from the types).
    Schema,
    /// Start a plugin of your own: a folder with the plugin crate (from the
    /// template), a config that builds and serves it, and a request for it.
    New {
        /// The plugin's name: its crate, its node and its model.
        name: String,
        /// The folder to write (default: ./NAME); it must be new or empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The aimass SDK to build against (default: the `sdk/` folder of
        /// the checkout this aimass was built from).
        #[arg(long, env = "AIMASS_SDK")]
        sdk: Option<PathBuf>,
    },
}

impl Cli {
    /// Runs the chosen command; the error is what to print.
    pub async fn run(self) -> Result<(), String> {
        match self.command {
            Command::Inspect { plugin } => inspect::run(&plugin).await,
            Command::Check { config } => check::run(&config).await,
            Command::Serve(args) => serve::run(args).await,
            Command::Eval {
                config,
                model,
                data,
                batch,
                json,
            } => eval::run(&config, &model, &data, batch as usize, json).await,
            Command::Run {
                config,
                model,
                input,
            } => run::run(&config, &model, &input).await,
            Command::Schema => stdout::line(&crate::config::json_schema()),
            Command::New { name, dir, sdk } => new::run(&name, dir.as_deref(), sdk.as_deref()),
        }
    }
}
