//! The HTTP server: the Open Inference Protocol (KServe v2) over hyper,
//! with the binary tensor extension and the Triton extensions tritonclient
//! uses, hot reload through the repository API, Prometheus metrics and a
//! request id on every log line.

mod admin;
mod body;
mod codec;
mod error;
mod feedback;
pub mod grpc;
mod handlers;
mod json_data;
mod listener;
mod parse_errors;
mod protocol;
mod state;
mod ui;

pub use admin::AdminToken;
pub use codec::{BinaryChoice, Decoded, Encoded, decode, encode, split_body};
pub use error::ApiError;
pub use state::{Limits, ServerState};

/// The protocol extensions both transports serve.
pub const EXTENSIONS: [&str; 5] = [
    "binary_tensor_data",
    "model_repository",
    "model_configuration",
    "statistics",
    "parameters",
];

use crate::config::ConfigErrors;
use crate::repository::Repository;
use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tracing::Instrument;

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The operator's config file.
    pub config: PathBuf,
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Body size, concurrency and time limits.
    pub limits: Limits,
    /// What management calls need.
    pub admin_token: AdminToken,
    /// Poll the config and its files this often and reload what changed
    /// (`--watch`); `None` loads only through the repository API.
    pub watch: Option<std::time::Duration>,
    /// Where gRPC listens (`None`: no gRPC).
    pub grpc_listen: Option<SocketAddr>,
    /// Serve the web page (`/`, `/ui`, `/v2/ui/...`).
    pub ui: bool,
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The config could not be loaded.
    #[error("{0}")]
    Config(ConfigErrors),
    /// The listener failed.
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

/// A bound server, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    grpc: Option<TcpListener>,
    state: Arc<ServerState>,
    watch: Option<std::time::Duration>,
    ui: bool,
}

impl Server {
    /// Binds the address; nothing is loaded yet.
    pub async fn bind(options: ServeOptions) -> Result<Server, ServeError> {
        let listener =
            TcpListener::bind(options.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: options.listen,
                    source,
                })?;
        let grpc = match options.grpc_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServeError::Bind { addr, source })?,
            ),
            None => None,
        };
        // Installed before any model runs, so that no count is lost.
        crate::metrics::install();
        Ok(Server {
            listener,
            grpc,
            watch: options.watch,
            ui: options.ui,
            state: Arc::new(ServerState::new(
                options.config,
                options.limits,
                options.admin_token,
            )),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        self.listener.local_addr().map_err(ServeError::Serve)
    }

    /// The address gRPC listens on, when it does.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The state the handlers share.
    pub fn state(&self) -> &Arc<ServerState> {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets requests in flight
    /// finish. The server answers (live; not ready) while it loads the
    /// config, and stops with the config's errors if that fails.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let state = self.state.clone();
        let watch = self.watch;
        let (failed, load_failure) = tokio::sync::oneshot::channel::<ConfigErrors>();
        let loader = state.clone();
        // Loads the config, then watches it when asked to; stopped with the
        // server.
        let loading = tokio::spawn(
            async move {
                match Repository::open(loader.service.config()).await {
                    Ok(repository) => {
                        let models = repository.models.len();
                        loader.service.install(repository);
                        tracing::info!(
                            "ready: {models} models from {} in {} ms",
                            loader.service.config().display(),
                            loader.started.elapsed().as_millis()
                        );
                        let shedding = loader.service.shed_idle_instances();
                        if let Some(every) = watch {
                            tracing::info!(
                                "--watch: polling the config and its files every {} ms",
                                every.as_millis()
                            );
                            tokio::join!(crate::service::watch(&loader.service, every), shedding);
                        } else {
                            shedding.await;
                        }
                    }
                    Err(errors) => {
                        let _ = failed.send(errors);
                    }
                }
            }
            .in_current_span(),
        );
        // Both listeners stop together: REST's stop future tells gRPC.
        let (stopping, stopped) = tokio::sync::watch::channel(false);
        let failure = Arc::new(std::sync::Mutex::new(None));
        let stop = {
            let failure = failure.clone();
            let state = state.clone();
            async move {
                tokio::select! {
                    () = shutdown => tracing::info!("shutting down: finishing requests in flight"),
                    Ok(errors) = load_failure => {
                        if let Ok(mut slot) = failure.lock() {
                            *slot = Some(errors);
                        }
                    }
                }
                state.start_draining();
                let _ = stopping.send(true);
            }
        };
        let grpc = self.grpc.map(|listener| {
            let mut stopped = stopped.clone();
            tokio::spawn(grpc::serve(listener, state.clone(), async move {
                let _ = stopped.wait_for(|&stop| stop).await;
            }))
        });
        let connections = listener::ConnectionLimits {
            max_connections: state.limits.max_connections,
            header_timeout: state.limits.header_timeout,
        };
        let served = listener::serve(
            self.listener,
            router(state.clone(), self.ui),
            connections,
            stop,
        )
        .await;
        loading.abort();
        if let Some(grpc) = grpc {
            // Its calls in flight finish; a transport error is logged, as
            // REST has already drained.
            match grpc.await {
                Ok(Err(e)) => tracing::warn!("the gRPC listener stopped: {e}"),
                Err(e) => tracing::warn!("the gRPC listener failed: {e}"),
                Ok(Ok(())) => {}
            }
        }
        // What the captures hold is written before the server says it stopped.
        let closing = state.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || closing.service.close_captures()).await
        {
            tracing::warn!("closing the captures failed: {e}");
        }
        served.map_err(ServeError::Serve)?;
        let failed = failure.lock().ok().and_then(|mut slot| slot.take());
        match failed {
            Some(errors) => Err(ServeError::Config(errors)),
            None => Ok(()),
        }
    }
}

/// Every endpoint (the web page's when `ui`).
pub fn router(state: Arc<ServerState>, ui: bool) -> Router {
    use handlers::*;
    let page = if ui { ui::routes() } else { Router::new() };
    Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models", get(list_models))
        .route("/v2/models/stats", get(all_stats))
        .route("/v2/models/{model}", get(model_metadata))
        .route("/v2/models/{model}/versions/{version}", get(model_metadata))
        .route("/v2/models/{model}/ready", get(model_ready))
        .route(
            "/v2/models/{model}/versions/{version}/ready",
            get(model_ready),
        )
        .route("/v2/models/{model}/infer", post(infer))
        .route("/v2/models/{model}/versions/{version}/infer", post(infer))
        .route("/v2/models/{model}/config", get(model_config))
        .route(
            "/v2/models/{model}/versions/{version}/config",
            get(model_config),
        )
        .route("/v2/models/{model}/stats", get(model_stats))
        .route(
            "/v2/models/{model}/versions/{version}/stats",
            get(model_stats),
        )
        .merge(management(state.clone()))
        .merge(page)
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(error::json_errors))
        .layer(middleware::from_fn(request_span))
        .with_state(state)
}

/// The endpoints that change what is served, behind the admin guard.
fn management(state: Arc<ServerState>) -> Router<Arc<ServerState>> {
    use handlers::*;
    Router::new()
        .route("/v2/repository/index", post(repository_index))
        .route("/v2/repository/models/{model}/load", post(load))
        .route("/v2/repository/models/{model}/unload", post(unload))
        .route("/v2/models/{model}/feedback", post(feedback::feedback))
        .route_layer(middleware::from_fn_with_state(
            state.admin_token.clone(),
            admin::require_admin,
        ))
}

/// Runs each request in a span carrying its id (the client's
/// `x-request-id`, or a new one), so every log line of the request, down to
/// a plugin's own log, names it; the id is sent back in the same header.
async fn request_span(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map_or_else(new_request_id, str::to_string);
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", id = %id);
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            %method, %path, status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64, "answered"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// A request's `x-request-id` (the client's or a new one), for handlers.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub String);

pub(crate) fn new_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static EPOCH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // Unique within the process, and unlikely to repeat across restarts.
    let epoch = *EPOCH.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    format!(
        "{:x}-{}",
        epoch & 0xff_ffff_ffff,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
