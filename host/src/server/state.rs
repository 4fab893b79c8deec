//! What the HTTP server shares between requests: the inference service,
//! the limits, the body budget, the admin token and readiness.

use super::admin::AdminToken;
use super::body::BodyBudget;
use crate::service::{InferenceService, ServiceLimits};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The server's limits: everything a client controls is bounded.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest request body accepted, in bytes (413 above it).
    pub max_body_bytes: usize,
    /// Request body bytes held at once across all requests (503 past it).
    pub max_body_memory_bytes: usize,
    /// The longest a request body may take to arrive (408 after it).
    pub body_timeout: Duration,
    /// The longest a client may take to send its headers, and the longest
    /// an idle connection stays open.
    pub header_timeout: Duration,
    /// Connections open at once (one more is answered 503 and closed).
    pub max_connections: usize,
    /// Inference requests running at once; one more gets 503.
    pub max_concurrency: usize,
    /// The longest one inference request may take (503 after it).
    pub request_timeout: Duration,
    /// Rows per request for a model that declares no limit of its own.
    pub max_batch_rows: usize,
    /// How long a node's extra warm instance may wait unused before it is
    /// dropped (each node keeps one); zero keeps them all.
    pub instance_idle: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 << 20,
            max_body_memory_bytes: 256 << 20,
            body_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_concurrency: 256,
            request_timeout: Duration::from_secs(30),
            max_batch_rows: 8192,
            instance_idle: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// The limits the inference service enforces.
    pub fn service(&self) -> ServiceLimits {
        ServiceLimits {
            max_concurrency: self.max_concurrency,
            request_timeout: self.request_timeout,
            max_batch_rows: self.max_batch_rows,
            instance_idle: self.instance_idle,
        }
    }
}

/// The server's shared state: the inference service every endpoint talks
/// to, and what only HTTP needs.
#[derive(Debug)]
pub struct ServerState {
    /// Models, and how a request to one is answered.
    pub service: InferenceService,
    /// The limits.
    pub limits: Limits,
    /// Request body bytes in memory.
    pub bodies: BodyBudget,
    /// What management calls need.
    pub admin_token: AdminToken,
    /// When the server was bound.
    pub started: Instant,
    draining: AtomicBool,
}

impl ServerState {
    /// A server for `config`, serving nothing until the service installs
    /// its models.
    pub fn new(config: PathBuf, limits: Limits, admin_token: AdminToken) -> Self {
        ServerState {
            service: InferenceService::new(config, limits.service()),
            limits,
            bodies: BodyBudget::new(limits.max_body_memory_bytes),
            admin_token,
            started: Instant::now(),
            draining: AtomicBool::new(false),
        }
    }

    /// Why the server is not ready, or `None` when it is.
    pub fn not_ready_because(&self) -> Option<String> {
        if self.draining.load(Ordering::Relaxed) {
            return Some("the server is shutting down".into());
        }
        if !self.service.is_loaded() {
            return Some(format!(
                "the server is loading its models from {} (started {} s ago)",
                self.service.config().display(),
                self.started.elapsed().as_secs()
            ));
        }
        None
    }

    /// Ready: loaded and not shutting down.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed) && self.service.is_loaded()
    }

    /// Shutting down: the ready probe says so; requests in flight finish.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_ready_says_why() {
        let state = ServerState::new("models.toml".into(), Limits::default(), AdminToken::none());
        let loading = state.not_ready_because().unwrap();
        assert!(
            loading.contains("loading its models from models.toml"),
            "{loading}"
        );
        state.start_draining();
        assert_eq!(
            state.not_ready_because().as_deref(),
            Some("the server is shutting down")
        );
    }
}
