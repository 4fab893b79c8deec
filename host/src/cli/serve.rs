//! `aimass serve CONFIG`: optionally build the plugins, then serve the
//! config's models over HTTP until SIGINT or SIGTERM.

use crate::config::ConfigFile;
use crate::server::{AdminToken, Limits, ServeOptions, Server};
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
    /// The address to listen on, `HOST:PORT` (a name such as `localhost`
    /// or an IP; port 0 picks a free one).
    #[arg(long, env = "AIMASS_LISTEN", default_value = "127.0.0.1:8000")]
    pub listen: String,
    /// Where the gRPC service listens, `HOST:PORT` (Triton's port by
    /// default), or `off`.
    #[arg(long, env = "AIMASS_GRPC_LISTEN", default_value = "127.0.0.1:8001")]
    pub grpc_listen: String,
    /// The web page at `/` (every hierarchy drawn, with live figures):
    /// `on` or `off`.
    #[arg(long, env = "AIMASS_UI", default_value = "on", value_parser = ["on", "off"])]
    pub ui: String,
    /// The largest request body accepted, in bytes (413 above it).
    #[arg(long, env = "AIMASS_MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Request body bytes held at once across all requests (503 past it).
    #[arg(long, env = "AIMASS_MAX_BODY_MEMORY_BYTES", default_value_t = Limits::default().max_body_memory_bytes)]
    pub max_body_memory_bytes: usize,
    /// The longest a request body may take to arrive, in milliseconds (408).
    #[arg(long, env = "AIMASS_BODY_TIMEOUT_MS", default_value_t = 10_000)]
    pub body_timeout_ms: u64,
    /// The longest a client may take to send its request headers, and the
    /// longest an idle connection stays open, in milliseconds.
    #[arg(long, env = "AIMASS_HEADER_TIMEOUT_MS", default_value_t = 30_000)]
    pub header_timeout_ms: u64,
    /// Connections open at once; one more is answered 503 and closed.
    #[arg(long, env = "AIMASS_MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,
    /// Inference requests running at once; more get 503 at once.
    #[arg(long, env = "AIMASS_MAX_CONCURRENCY", default_value_t = Limits::default().max_concurrency)]
    pub max_concurrency: usize,
    /// The longest one inference request may take, in milliseconds.
    #[arg(long, env = "AIMASS_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// Rows one request may send to a model that sets no limit of its own
    /// (400 above it).
    #[arg(long, env = "AIMASS_MAX_BATCH_ROWS", default_value_t = Limits::default().max_batch_rows)]
    pub max_batch_rows: usize,
    /// The token management calls (`/v2/repository/...`) must send as
    /// `Authorization: Bearer TOKEN`. Without one, they are accepted only
    /// from this machine.
    #[arg(
        long,
        env = "AIMASS_ADMIN_TOKEN",
        hide_env_values = true,
        conflicts_with = "admin_token_file"
    )]
    pub admin_token: Option<String>,
    /// A file holding the admin token (keeps it out of `ps` and the
    /// environment).
    #[arg(long, env = "AIMASS_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<std::path::PathBuf>,
    /// Poll the config file and the files it names, and reload a model
    /// whose section or files changed (a broken change is logged and the
    /// old model keeps serving).
    #[arg(long, env = "AIMASS_WATCH")]
    pub watch: bool,
    /// How often `--watch` polls, in milliseconds.
    #[arg(long, env = "AIMASS_WATCH_INTERVAL_MS", default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(50..=3_600_000))]
    pub watch_interval_ms: u64,
    /// Threads one tract compute may split its matrix products over (as
    /// ONNX Runtime's intra-op threads). 1, the default, keeps each compute
    /// on its own thread: best for many small concurrent requests; more
    /// lowers the latency of one large graph (an OCR page) when cores are
    /// idle.
    #[arg(long, env = "AIMASS_TRACT_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub tract_threads: u32,
    /// How long a node's extra warm instance (one a burst of load made) may
    /// wait unused before it is dropped and its memory returned, in
    /// milliseconds; each node keeps one warm instance. 0 keeps them all.
    #[arg(long, env = "AIMASS_INSTANCE_IDLE_MS", default_value_t = 30_000)]
    pub instance_idle_ms: u64,
}

impl ServeArgs {
    fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            max_body_memory_bytes: self.max_body_memory_bytes,
            body_timeout: Duration::from_millis(self.body_timeout_ms),
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            max_connections: self.max_connections,
            max_concurrency: self.max_concurrency,
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            max_batch_rows: self.max_batch_rows,
            instance_idle: Duration::from_millis(self.instance_idle_ms),
        }
    }

    fn admin_token(&self) -> Result<AdminToken, String> {
        if let Some(token) = &self.admin_token {
            return AdminToken::new(token).map_err(|e| format!("--admin-token: {e}"));
        }
        if let Some(path) = &self.admin_token_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--admin-token-file: cannot read {}: {e}", path.display()))?;
            return AdminToken::new(&text)
                .map_err(|e| format!("--admin-token-file {}: {e}", path.display()));
        }
        Ok(AdminToken::none())
    }
}

/// The address `listen` names: `HOST:PORT` where HOST is an IP or a name
/// (the first address it resolves to).
pub async fn resolve_listen(listen: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = listen.parse() {
        return Ok(addr);
    }
    let bad =
        |why: String| format!("--listen `{listen}`: {why}; give HOST:PORT, e.g. 127.0.0.1:8000");
    if !listen.contains(':') {
        return Err(bad("it has no port".into()));
    }
    let mut addrs = tokio::net::lookup_host(listen)
        .await
        .map_err(|e| bad(e.to_string()))?;
    addrs
        .next()
        .ok_or_else(|| bad("the name resolves to no address".into()))
}

/// Serves until a signal, then lets requests in flight finish.
pub async fn run(args: ServeArgs) -> Result<(), String> {
    if args.build {
        build_plugins(&args.config)?;
    }
    crate::nn::set_tract_threads(args.tract_threads as usize);
    let listen = resolve_listen(&args.listen).await?;
    let grpc_listen = match args.grpc_listen.as_str() {
        "off" => None,
        addr => Some(
            resolve_listen(addr)
                .await
                .map_err(|e| e.replacen("--listen", "--grpc-listen", 1))?,
        ),
    };
    let ui = args.ui == "on";
    let server = Server::bind(ServeOptions {
        limits: args.limits(),
        admin_token: args.admin_token()?,
        watch: args
            .watch
            .then(|| Duration::from_millis(args.watch_interval_ms)),
        config: args.config,
        listen,
        grpc_listen,
        ui,
    })
    .await
    .map_err(|e| e.to_string())?;
    let addr = server.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("listening on http://{addr}");
    // Not ready yet: "ready: N models" follows once they load (and the
    // config's errors instead, if they do not).
    tracing::info!("loading the models; GET /v2/health/ready says when they serve");
    if ui {
        tracing::info!("web page on http://{addr}/");
    }
    if let Some(grpc) = server.grpc_addr() {
        tracing::info!("gRPC on {grpc}");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listen_takes_host_names_and_ips() {
        let addr = resolve_listen("localhost:0").await.expect("localhost");
        assert!(addr.ip().is_loopback());
        assert_eq!(
            resolve_listen("127.0.0.1:8000").await,
            Ok(([127, 0, 0, 1], 8000).into())
        );
        assert_eq!(resolve_listen("[::1]:80").await.map(|a| a.port()), Ok(80));
        let error = resolve_listen("localhost").await.expect_err("no port");
        assert!(error.contains("no port"), "{error}");
    }
}
