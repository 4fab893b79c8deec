//! What the server serves right now, and how it changes: the models by
//! name (swapped one at a time by a reload), readiness, limits and each
//! model's statistics.

use super::admin::AdminToken;
use super::body::BodyBudget;
use super::error::ApiError;
use super::protocol::IndexEntry;
use crate::config::ConfigFile;
use crate::graph::{Served, model_closure};
use crate::repository::Repository;
use crate::runtime::Runtime;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

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
        }
    }
}

/// The server's shared state.
pub struct ServerState {
    /// The config file, re-read by every load.
    pub config: PathBuf,
    /// The limits.
    pub limits: Limits,
    /// One permit per inference request running.
    pub inflight: Arc<Semaphore>,
    /// Request body bytes in memory.
    pub bodies: BodyBudget,
    /// What management calls need.
    pub admin_token: AdminToken,
    /// When the server was bound.
    pub started: Instant,
    draining: AtomicBool,
    catalog: RwLock<Catalog>,
    /// One lock per model name: loads of one model run one at a time,
    /// loads of different models do not wait on each other.
    loading: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    stats: Mutex<BTreeMap<String, Arc<ModelStats>>>,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Catalog {
    /// Set once the config's first load succeeded.
    runtime: Option<Arc<Runtime>>,
    models: BTreeMap<String, Slot>,
}

#[derive(Clone)]
enum Slot {
    Ready(Arc<Served>),
    Unloaded,
}

impl ServerState {
    /// A server for `config`, serving nothing until [`ServerState::install`].
    pub fn new(config: PathBuf, limits: Limits, admin_token: AdminToken) -> Self {
        ServerState {
            config,
            limits,
            inflight: Arc::new(Semaphore::new(limits.max_concurrency.max(1))),
            bodies: BodyBudget::new(limits.max_body_memory_bytes),
            admin_token,
            started: Instant::now(),
            draining: AtomicBool::new(false),
            catalog: RwLock::new(Catalog::default()),
            loading: Mutex::new(BTreeMap::new()),
            stats: Mutex::new(BTreeMap::new()),
        }
    }

    /// Serves everything `repository` holds.
    pub fn install(&self, repository: Repository) {
        let mut catalog = self.catalog_mut();
        catalog.runtime = Some(repository.runtime.clone());
        catalog.models = repository
            .models
            .into_iter()
            .map(|(name, model)| (name, Slot::Ready(model)))
            .collect();
    }

    /// Ready: loaded and not shutting down.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed) && self.catalog().runtime.is_some()
    }

    /// Shutting down: the ready probe says so; requests in flight finish.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// The model `name` (at `version`, when given), ready to run.
    pub fn model(&self, name: &str, version: Option<&str>) -> Result<Arc<Served>, ApiError> {
        let catalog = self.catalog();
        if catalog.runtime.is_none() {
            return Err(ApiError::Unavailable(
                "the server is not ready: it is still loading its models".into(),
            ));
        }
        let served = match catalog.models.get(name) {
            Some(Slot::Ready(served)) => served.clone(),
            Some(Slot::Unloaded) => {
                return Err(ApiError::Unavailable(format!(
                    "model `{name}` is unloaded; load it with POST /v2/repository/models/{name}/load"
                )));
            }
            None => {
                let names: Vec<&str> = catalog.models.keys().map(String::as_str).collect();
                return Err(ApiError::NotFound(format!(
                    "unknown model `{name}` (served: {})",
                    names.join(", ")
                )));
            }
        };
        match version {
            None | Some("1") => Ok(served),
            Some(other) => Err(ApiError::NotFound(format!(
                "model `{name}` has no version `{other}` (it serves version 1)"
            ))),
        }
    }

    /// `name` when the config has such a model, else one fixed label: what
    /// clients send must not become new metric series.
    pub fn metric_label<'a>(&self, name: &'a str) -> &'a str {
        if self.catalog().models.contains_key(name) {
            name
        } else {
            crate::metrics::UNKNOWN_MODEL
        }
    }

    /// Every model ready to serve.
    pub fn ready_models(&self) -> Vec<Arc<Served>> {
        self.catalog()
            .models
            .values()
            .filter_map(|slot| match slot {
                Slot::Ready(served) => Some(served.clone()),
                Slot::Unloaded => None,
            })
            .collect()
    }

    /// The repository index: every model the server knows, with its state.
    pub fn index(&self, ready_only: bool) -> Vec<IndexEntry> {
        self.catalog()
            .models
            .iter()
            .filter(|(_, slot)| !ready_only || matches!(slot, Slot::Ready(_)))
            .map(|(name, slot)| IndexEntry {
                name: name.clone(),
                version: "1".into(),
                state: match slot {
                    Slot::Ready(_) => "READY",
                    Slot::Unloaded => "UNAVAILABLE",
                },
                reason: match slot {
                    Slot::Ready(_) => String::new(),
                    Slot::Unloaded => "unloaded".into(),
                },
            })
            .collect()
    }

    /// Re-reads the config file and starts `name` afresh from it (its
    /// plugins and graphs read from disk again), then swaps it in. Requests
    /// already running finish on the old one; the next ones get the new one.
    /// Any error leaves the old one serving.
    pub async fn load(&self, name: &str) -> Result<Duration, ApiError> {
        let started = Instant::now();
        let runtime = self.catalog().runtime.clone().ok_or_else(|| {
            ApiError::Unavailable("the server is still loading its models".into())
        })?;
        let file = ConfigFile::load(&self.config)
            .map_err(|e| ApiError::BadRequest(format!("cannot load `{name}`: {e}")))?;
        if model_closure(&file, name).is_none() {
            return Err(ApiError::NotFound(format!(
                "{} has no model `{name}`; add it as a node or a hierarchy",
                self.config.display()
            )));
        }
        // Only names the config has get a lock, so clients cannot grow the map.
        let lock = {
            let mut locks = self.loading.lock().unwrap_or_else(|p| p.into_inner());
            locks.entry(name.to_string()).or_default().clone()
        };
        let _one_at_a_time = lock.lock().await;
        let mut repository = Repository::start_with(file, runtime, Some(name))
            .await
            .map_err(|e| ApiError::BadRequest(format!("cannot load `{name}`: {e}")))?;
        let served = repository.models.remove(name).ok_or_else(|| {
            ApiError::BadRequest(format!("cannot load `{name}`: it was not built"))
        })?;
        self.catalog_mut()
            .models
            .insert(name.to_string(), Slot::Ready(served));
        Ok(started.elapsed())
    }

    /// Stops serving `name`; requests running on it finish.
    pub fn unload(&self, name: &str) -> Result<(), ApiError> {
        let mut catalog = self.catalog_mut();
        match catalog.models.get_mut(name) {
            Some(slot) => {
                *slot = Slot::Unloaded;
                Ok(())
            }
            None => Err(ApiError::NotFound(format!("unknown model `{name}`"))),
        }
    }

    /// The statistics of `name`, kept across reloads.
    pub fn stats(&self, name: &str) -> Arc<ModelStats> {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = stats.get(name) {
            return existing.clone();
        }
        stats.entry(name.to_string()).or_default().clone()
    }

    /// The statistics of every model that has them.
    pub fn all_stats(&self) -> Vec<(String, Arc<ModelStats>)> {
        let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        stats.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    // A panic while holding the lock cannot leave the map half-written (each
    // update is one insert), so a poisoned lock is still good to use.
    fn catalog(&self) -> std::sync::RwLockReadGuard<'_, Catalog> {
        self.catalog.read().unwrap_or_else(|p| p.into_inner())
    }

    fn catalog_mut(&self) -> std::sync::RwLockWriteGuard<'_, Catalog> {
        self.catalog.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Per-model counters in the shape of Triton's statistics extension.
#[derive(Debug, Default)]
pub struct ModelStats {
    success_count: AtomicU64,
    success_ns: AtomicU64,
    fail_count: AtomicU64,
    fail_ns: AtomicU64,
    input_ns: AtomicU64,
    infer_ns: AtomicU64,
    output_ns: AtomicU64,
    inference_count: AtomicU64,
    last_inference_ms: AtomicU64,
}

/// Where one successful request spent its time.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    /// Parsing and checking the inputs.
    pub input: Duration,
    /// Running the model.
    pub infer: Duration,
    /// Encoding the outputs.
    pub output: Duration,
}

impl ModelStats {
    /// A request answered.
    pub fn success(&self, rows: u64, total: Duration, phases: Phases) {
        self.success_count.fetch_add(1, Ordering::Relaxed);
        self.success_ns.fetch_add(nanos(total), Ordering::Relaxed);
        self.input_ns
            .fetch_add(nanos(phases.input), Ordering::Relaxed);
        self.infer_ns
            .fetch_add(nanos(phases.infer), Ordering::Relaxed);
        self.output_ns
            .fetch_add(nanos(phases.output), Ordering::Relaxed);
        self.inference_count.fetch_add(rows, Ordering::Relaxed);
        self.touch();
    }

    /// A request that failed.
    pub fn failure(&self, total: Duration) {
        self.fail_count.fetch_add(1, Ordering::Relaxed);
        self.fail_ns.fetch_add(nanos(total), Ordering::Relaxed);
        self.touch();
    }

    fn touch(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_inference_ms.store(now, Ordering::Relaxed);
    }

    /// Triton's JSON for one model version.
    pub fn to_json(&self, name: &str) -> serde_json::Value {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let successes = get(&self.success_count);
        let duration = |count: u64, ns: u64| serde_json::json!({ "count": count, "ns": ns });
        serde_json::json!({
            "name": name,
            "version": "1",
            "last_inference": get(&self.last_inference_ms),
            "inference_count": get(&self.inference_count),
            "execution_count": successes,
            "inference_stats": {
                "success": duration(successes, get(&self.success_ns)),
                "fail": duration(get(&self.fail_count), get(&self.fail_ns)),
                // aimass never queues a request at the server: over the
                // concurrency limit it answers 503 at once. Waits for a
                // node's instance are in /metrics.
                "queue": duration(successes, 0),
                "compute_input": duration(successes, get(&self.input_ns)),
                "compute_infer": duration(successes, get(&self.infer_ns)),
                "compute_output": duration(successes, get(&self.output_ns)),
                "cache_hit": duration(0, 0),
                "cache_miss": duration(0, 0),
            },
            "batch_stats": [],
        })
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
