//! `aimass serve CONFIG`: optionally build the plugins, then serve the
//! config's models over HTTP until SIGINT or SIGTERM.

use crate::config::ConfigFile;
use crate::server::{Limits, ServeOptions, Server};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What `serve` was asked for.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The operator's config file.
    #[arg(env = "AIMASS_CONFIG")]
    pub config: std::path::PathBuf,
    /// Run each plugin's `build` command from the config first.
    #[arg(long, env = "AIMASS_BUILD")]
    pub build: bool,
    /// The address to listen on (port 0 picks a free one).
    #[arg(long, env = "AIMASS_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// The largest request body accepted, in bytes (413 above it).
    #[arg(long, env = "AIMASS_MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Inference requests running at once; more get 503 at once.
    #[arg(long, env = "AIMASS_MAX_CONCURRENCY", default_value_t = Limits::default().max_concurrency)]
    pub max_concurrency: usize,
    /// The longest one inference request may take, in milliseconds.
    #[arg(long, env = "AIMASS_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
}

/// Serves until a signal, then lets requests in flight finish.
pub async fn run(args: ServeArgs) -> Result<(), String> {
    if args.build {
        build_plugins(&args.config)?;
    }
    let server = Server::bind(ServeOptions {
        config: args.config,
        listen: args.listen,
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            max_concurrency: args.max_concurrency,
            request_timeout: Duration::from_millis(args.request_timeout_ms),
        },
    })
    .await
    .map_err(|e| e.to_string())?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("listening on http://{addr}");
    server.run(signal()).await.map_err(|e| e.to_string())
}

/// Runs every plugin's `build` command (each distinct one once) in the
/// config's folder, the way `spin up --build` does.
fn build_plugins(config: &Path) -> Result<(), String> {
    let file = ConfigFile::load(config).map_err(|e| e.to_string())?;
    let commands: BTreeSet<&str> = file
        .config
        .plugins
        .values()
        .filter_map(|p| p.build.as_deref())
        .collect();
    if commands.iter().any(|c| c.contains("wasm32-wasip2")) {
        check_wasm_target()?;
    }
    for command in commands {
        tracing::info!("building: {command}");
        let status = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(file.dir())
            .status()
            .map_err(|e| format!("cannot run `{command}`: {e}"))?;
        if !status.success() {
            return Err(format!(
                "the build command `{command}` (from {}) failed with {status}",
                file.path.display()
            ));
        }
    }
    Ok(())
}

/// A missing target makes cargo fail with a page of `can't find crate for
/// core`; say what to do instead.
fn check_wasm_target() -> Result<(), String> {
    let Ok(output) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return Ok(()); // no rustup: let the build speak for itself
    };
    let installed = String::from_utf8_lossy(&output.stdout);
    if installed.lines().any(|line| line.trim() == "wasm32-wasip2") {
        Ok(())
    } else {
        Err(
            "the wasm32-wasip2 target is missing, so the plugins cannot be built: \
             run `rustup target add wasm32-wasip2`"
                .into(),
        )
    }
}

/// SIGINT or SIGTERM.
async fn signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
