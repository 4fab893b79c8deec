//! The gRPC port's connections, with REST's armour: a cap on connections
//! of its own (so that a flood of one port cannot starve the other), a
//! deadline for a new connection's first request and for an idle one,
//! bounded streams per connection, keep-alive pings, and unary messages
//! read whole within `--body-timeout-ms` and charged to the same body
//! budget as REST's, with `ModelInfer`'s decoded size charged (and its
//! counts bounded) before prost allocates it; `ModelStreamInfer`'s
//! messages the same way, one at a time (see [`MeasuredStream`]).

use super::scan;
use super::stream_body::MeasuredStream;
use crate::server::body::read_body;
use crate::server::error::ApiError;
use crate::server::listener::accept;
use crate::server::state::ServerState;
use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tower::ServiceExt;

/// Streams one connection may have open at once (advertised in SETTINGS).
pub const MAX_STREAMS: u32 = 128;
/// The one RPC whose request is a stream: its messages are read as they come.
const STREAMING: &str = "/inference.GRPCInferenceService/ModelStreamInfer";
const INFER: &str = "/inference.GRPCInferenceService/ModelInfer";

/// Serves `router` (the gRPC services) on `listener` until `stop` resolves,
/// then lets calls in flight finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    state: Arc<ServerState>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.limits;
    let max = limits.max_connections.max(1);
    let open = Arc::new(Semaphore::new(max));
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    let idle = limits.header_timeout;
    let mut http = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http.timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_pending_accept_reset_streams(Some(64))
        .max_local_error_reset_streams(Some(256))
        .max_header_list_size(64 << 10)
        // A peer that stops answering pings is gone: its connection goes.
        .keep_alive_interval(Some(idle.min(Duration::from_secs(20))))
        .keep_alive_timeout(idle.min(Duration::from_secs(20)));
    tokio::pin!(stop);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut stop => break,
            pair = accept(&listener, "a gRPC") => pair,
        };
        let Ok(slot) = open.clone().try_acquire_owned() else {
            // Closed at once: the client sees UNAVAILABLE and retries
            // elsewhere or later; REST's port is untouched.
            crate::metrics::rejected("connections");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let info: TcpConnectInfo = stream.connect_info();
        let activity = Arc::new(Activity::new());
        let service = {
            let (router, state, activity) = (router.clone(), state.clone(), activity.clone());
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(info.clone());
                let busy = activity.enter();
                call(router.clone(), state.clone(), request, busy)
            })
        };
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let mut stopped = stopped.clone();
        let grace = limits.request_timeout + limits.body_timeout;
        tokio::spawn(async move {
            tokio::pin!(connection);
            let tick = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
            let mut closing: Option<Instant> = None;
            loop {
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!(%remote, "gRPC connection ended: {e}");
                        }
                        break;
                    }
                    _ = stopped.wait_for(|&s| s), if closing.is_none() => {
                        connection.as_mut().graceful_shutdown();
                        closing = Some(Instant::now() + grace);
                    }
                    () = tokio::time::sleep(tick) => {
                        match closing {
                            // A peer that keeps streams open past the
                            // grace is cut off.
                            Some(deadline) if Instant::now() >= deadline => break,
                            Some(_) => {}
                            None if activity.idle_for() >= idle => {
                                // No request yet (a stalled preface), or none
                                // for a while: GOAWAY, then closed.
                                connection.as_mut().graceful_shutdown();
                                closing = Some(Instant::now() + idle.min(Duration::from_secs(5)));
                            }
                            None => {}
                        }
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    // Every connection gives its slot back when it ends.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = open.acquire_many(all).await;
    Ok(())
}

/// One call: a unary request's message read whole first (deadline, size,
/// budget, and for `ModelInfer` its decoded cost), then the services. The
/// charge and the connection's busy mark last until the answer is sent.
async fn call(
    router: Router,
    state: Arc<ServerState>,
    request: hyper::Request<Incoming>,
    busy: Busy,
) -> Result<hyper::Response<Body>, std::convert::Infallible> {
    let (parts, body) = request.into_parts();
    let (request, charge) = if parts.uri.path() == STREAMING {
        let limits = state.limits;
        let measured =
            MeasuredStream::new(Body::new(body), state.bodies.clone(), limits.max_body_bytes);
        (hyper::Request::from_parts(parts, Body::new(measured)), None)
    } else {
        match read_message(&state, &parts, Body::new(body)).await {
            Ok((bytes, charge)) => (hyper::Request::from_parts(parts, Body::from(bytes)), charge),
            Err(status) => {
                let response = status.into_http::<Body>();
                return Ok(response);
            }
        }
    };
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    Ok(response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _held = (&busy, &charge);
            frame
        }))
    }))
}

/// A unary call's body, whole, with its charge against the body budget.
async fn read_message(
    state: &ServerState,
    parts: &hyper::http::request::Parts,
    body: Body,
) -> Result<(Bytes, Option<tokio::sync::OwnedSemaphorePermit>), tonic::Status> {
    let limits = state.limits;
    // The message and gRPC's 5-byte prefix.
    let limit = limits.max_body_bytes.saturating_add(5);
    let mut read = read_body(
        &parts.headers,
        body,
        limit,
        limits.body_timeout,
        &state.bodies,
    )
    .await
    .map_err(|e| match e {
        ApiError::TooLarge(_) => tonic::Status::resource_exhausted(format!(
            "the request message is over the server's limit of {} bytes \
                 (raise it with --max-body-bytes)",
            limits.max_body_bytes
        )),
        e => transport_status(&e),
    })?;
    if parts.uri.path() == INFER {
        // Uncompressed (flag 0) messages only: tonic refuses the rest.
        if let [0, l0, l1, l2, l3, message @ ..] = read.bytes.as_slice() {
            let length = u32::from_be_bytes([*l0, *l1, *l2, *l3]) as usize;
            let message = &message[..length.min(message.len())];
            let cost = scan::infer_request(message).map_err(tonic::Status::invalid_argument)?;
            read.charge_more(&state.bodies, cost)
                .map_err(|e| transport_status(&e))?;
        }
    }
    let (bytes, charge) = read.into_parts();
    Ok((Bytes::from(bytes), charge))
}

/// REST's body errors as gRPC statuses.
fn transport_status(error: &ApiError) -> tonic::Status {
    let message = super::within_trailer(&error.to_string(), super::MAX_MESSAGE_BYTES);
    match error {
        ApiError::RequestTimeout(_) => {
            tonic::Status::deadline_exceeded(message.replace("request body", "request message"))
        }
        ApiError::Unavailable(_) => tonic::Status::unavailable(message),
        _ => tonic::Status::invalid_argument(message),
    }
}

/// When a connection last had a call, and how many it has now.
struct Activity {
    born: Instant,
    calls: AtomicUsize,
    /// Milliseconds after `born` when the last call ended (or began).
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            born: Instant::now(),
            calls: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn enter(self: &Arc<Self>) -> Busy {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.last_ms.store(self.now_ms(), Ordering::SeqCst);
        Busy(self.clone())
    }

    /// How long the connection has had no call; zero while one runs.
    fn idle_for(&self) -> Duration {
        if self.calls.load(Ordering::SeqCst) > 0 {
            return Duration::ZERO;
        }
        let last = self.last_ms.load(Ordering::SeqCst);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }
}

/// A call in progress on its connection, until its answer is sent.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.last_ms.store(self.0.now_ms(), Ordering::SeqCst);
        self.0.calls.fetch_sub(1, Ordering::SeqCst);
    }
}
