//! The accept loop: a cap on open connections, a deadline on request
//! headers (which also closes idle keep-alive connections), the client's
//! address for the management guard, and a graceful stop that lets
//! requests in flight finish.

use super::parse_errors::JsonParseErrors;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// How the listener treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// The longest a client may take to send a request's headers, and the
    /// longest an idle keep-alive connection stays open.
    pub header_timeout: Duration,
}

/// Serves `router` on `listener` until `stop` resolves, then waits for the
/// open connections to finish the requests they are in.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    tokio::pin!(stop);
    loop {
        let (stream, remote) = tokio::select! {
            () = &mut stop => break,
            pair = accept(&listener, "an HTTP") => pair,
        };
        let Ok(slot) = open.clone().try_acquire_owned() else {
            crate::metrics::rejected("connections");
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            router.clone().oneshot(request)
        });
        let connection = http.serve_connection(JsonParseErrors::new(TokioIo::new(stream)), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that resets or times out its own connection is not
            // the server's error.
            if let Err(e) = connection.await {
                tracing::debug!(%remote, "connection ended: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The next connection on `listener`. Out of file descriptors and the like,
/// the listener itself is fine: the error is logged and accepting resumes
/// after a pause instead of spinning. Cancel-safe.
pub(super) async fn accept(listener: &TcpListener, what: &str) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(pair) => return pair,
            Err(e) => {
                tracing::warn!("cannot accept {what} connection: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Answers a connection over the cap with a 503 and closes it, without
/// reading its request: the client learns why instead of hanging.
async fn refuse(mut stream: TcpStream, limit: usize) {
    let body = serde_json::json!({
        "error": format!(
            "the server has {limit} connections open, its limit (--max-connections); retry later"
        )
    })
    .to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}
