//! The inference service: what an inference is, whatever the wire. Every
//! front end (the HTTP server, `aimass run`, later gRPC) translates its
//! wire format to an [`InferRequest`], calls [`InferenceService::infer`]
//! and translates the [`InferResponse`] or [`ServiceError`] back; model
//! lookup, admission, validation, the deadline and accounting happen here
//! once.

mod capturing;
mod catalog;
mod description;
mod error;
mod request;
mod stats;
mod watch;

pub use catalog::IndexEntry;
pub use description::{DynamicBatching, ModelConfig};
pub use error::ServiceError;
pub use request::{InferRequest, InferResponse};
pub(crate) use request::{check_inputs, check_outputs, flag};
pub use stats::{
    BatchStatistics, InferStatistics, ModelStatistics, ModelStats, Phases, StatisticDuration,
};
pub use watch::watch;

use crate::capture::{Captures, Feedback};
use crate::error_kind::ErrorKind;
use crate::graph::{Request, Served};
use crate::repository::Repository;
use catalog::Catalog;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The limits every front end shares.
#[derive(Debug, Clone, Copy)]
pub struct ServiceLimits {
    /// Inference requests running at once; one more is refused (unavailable).
    pub max_concurrency: usize,
    /// The longest one inference request may take.
    pub request_timeout: Duration,
    /// Rows per request for a model that declares no limit of its own.
    pub max_batch_rows: usize,
    /// How long a node's extra warm instance may wait unused before it is
    /// dropped (each node keeps one); zero keeps them all.
    pub instance_idle: Duration,
}

/// Models by name, and how a request to one is answered.
pub struct InferenceService {
    limits: ServiceLimits,
    inflight: Arc<Semaphore>,
    catalog: Catalog,
    stats: Mutex<BTreeMap<String, Arc<ModelStats>>>,
    captures: std::sync::RwLock<Arc<Captures>>,
}

impl std::fmt::Debug for InferenceService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferenceService")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl InferenceService {
    /// A service for `config`, serving nothing until [`InferenceService::install`].
    pub fn new(config: PathBuf, limits: ServiceLimits) -> Self {
        InferenceService {
            limits,
            inflight: Arc::new(Semaphore::new(limits.max_concurrency.max(1))),
            catalog: Catalog::new(config),
            stats: Mutex::new(BTreeMap::new()),
            captures: std::sync::RwLock::new(Arc::new(Captures::default())),
        }
    }

    /// The config file a reload reads.
    pub fn config(&self) -> &Path {
        self.catalog.config()
    }

    /// Serves everything `repository` holds.
    pub fn install(&self, repository: Repository) {
        let served: Vec<Arc<Served>> = repository.models.values().cloned().collect();
        self.start_captures(&repository.file, &served);
        self.catalog.install(repository);
    }

    /// Starts the capture of every model `file` captures, its columns those
    /// its served versions declare; an unchanged capture goes on as it was.
    fn start_captures(&self, file: &crate::config::ConfigFile, served: &[Arc<Served>]) {
        let mut captures = self.captures.write().unwrap_or_else(|p| p.into_inner());
        *captures = Arc::new(Captures::start(file, Some(&captures), |model, config| {
            capturing::declared(served, model, &config.inner)
        }));
    }

    fn captures(&self) -> Arc<Captures> {
        self.captures
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Writes what every capture holds and stops them (blocking: call it
    /// off the async workers, once serving has stopped).
    pub fn close_captures(&self) {
        self.captures().close();
    }

    /// Stores the truth about an earlier request to `model`, beside its
    /// capture.
    pub fn feedback(&self, model: &str, feedback: Feedback) -> Result<(), ServiceError> {
        if !self.catalog.contains(model) {
            return Err(ServiceError::not_found(format!("unknown model `{model}`")));
        }
        let captures = self.captures();
        let Some(sink) = captures.sink(model) else {
            return Err(ServiceError::new(
                ErrorKind::Conflict,
                format!(
                    "model `{model}` is not captured, so feedback has nothing to join; \
                     add [capture.{model}] to the config"
                ),
            ));
        };
        sink.offer_feedback(feedback);
        Ok(())
    }

    /// True once the first install happened.
    pub fn is_loaded(&self) -> bool {
        self.catalog.is_loaded()
    }

    /// The model `name` (at `version`, when given), ready to run.
    pub fn model(&self, name: &str, version: Option<&str>) -> Result<Arc<Served>, ServiceError> {
        self.catalog.model(name, version)
    }

    /// `name` when the config has such a model, else one fixed label: what
    /// clients send must not become new metric series.
    pub fn metric_label<'a>(&self, name: &'a str) -> &'a str {
        if self.catalog.contains(name) {
            name
        } else {
            crate::metrics::UNKNOWN_MODEL
        }
    }

    /// Runs until dropped: drops the warm instances a burst left behind
    /// once they have waited `instance_idle` unused (see
    /// [`crate::runtime::NodePool::shed_idle`]), so that the memory a load
    /// took comes back when it is over.
    pub async fn shed_idle_instances(&self) {
        let idle = self.limits.instance_idle;
        if idle.is_zero() {
            return std::future::pending().await;
        }
        loop {
            tokio::time::sleep((idle / 2).max(Duration::from_millis(100))).await;
            for model in self.ready_models() {
                if let Some(pool) = model.pool() {
                    let shed = pool.shed_idle(idle);
                    if shed > 0 {
                        tracing::debug!(node = %model.name, "dropped {shed} idle instances");
                    }
                }
            }
        }
    }

    /// Every model ready to serve.
    pub fn ready_models(&self) -> Vec<Arc<Served>> {
        self.catalog.ready_models()
    }

    /// The repository index: every model known, with its state.
    pub fn index(&self, ready_only: bool) -> Vec<IndexEntry> {
        self.catalog.index(ready_only)
    }

    /// Starts `name` afresh from the config file and swaps it in.
    pub async fn load(&self, name: &str) -> Result<Duration, ServiceError> {
        let result = self.catalog.load(name).await;
        crate::metrics::model_load(self.metric_label(name), result.is_ok());
        let (took, file) = result?;
        // Capture follows the file the load read, not a newer one.
        self.start_captures(&file, &self.ready_models());
        Ok(took)
    }

    /// Stops serving `name`; requests running on it finish. Refused while a
    /// served hierarchy calls it, unless `with_users`, which unloads those
    /// too; returns the hierarchies unloaded with it.
    pub fn unload(&self, name: &str, with_users: bool) -> Result<Vec<String>, ServiceError> {
        self.catalog.unload(name, with_users)
    }

    /// The statistics of `name`, kept across reloads.
    pub fn stats(&self, name: &str) -> Arc<ModelStats> {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = stats.get(name) {
            return existing.clone();
        }
        stats.entry(name.to_string()).or_default().clone()
    }

    /// Triton's statistics of the model at section `key` (see
    /// [`Served::name`]), with its batches when it batches.
    pub fn statistics(&self, key: &str) -> ModelStatistics {
        let batches = self
            .catalog
            .by_key(key)
            .and_then(|m| m.batcher().map(|b| b.log().snapshot()))
            .unwrap_or_default();
        let (name, version) = crate::config::split_version(key);
        self.stats(key).snapshot(name, version, &batches)
    }

    /// The versions of `name` ready to serve, in order.
    pub fn versions(&self, name: &str) -> Vec<u64> {
        self.catalog.ready_versions(name)
    }

    /// Triton's statistics of every model that has them.
    pub fn all_statistics(&self) -> Vec<ModelStatistics> {
        let names: Vec<String> = {
            let stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
            stats.keys().cloned().collect()
        };
        names.iter().map(|name| self.statistics(name)).collect()
    }

    /// Answers `request` with `model` (at `version`): looks it up, checks
    /// the inputs and the requested outputs against its signature, takes a
    /// slot under the concurrency limit, runs it within the request
    /// deadline, picks the outputs asked for, and counts the outcome.
    pub async fn infer(
        &self,
        model: &str,
        version: Option<&str>,
        request: InferRequest,
    ) -> Result<InferResponse, ServiceError> {
        let served = self.model(model, version)?;
        let received = request.received;
        let stats = self.stats(&served.name);
        let captures = self.captures();
        let scope = (!captures.is_empty()).then(|| crate::capture::Scope {
            id: capturing::capture_id(&request),
            top: served.model_name().to_string(),
            captures: captures.clone(),
        });
        let result = self.answer(&served, request, scope).await;
        match &result {
            Ok((_, rows, phases)) => stats.success(*rows, received.elapsed(), *phases),
            Err(_) => stats.failure(received.elapsed()),
        }
        result.map(|(response, _, _)| response)
    }

    async fn answer(
        &self,
        model: &Arc<Served>,
        request: InferRequest,
        capture: Option<crate::capture::Scope>,
    ) -> Result<(InferResponse, u64, Phases), ServiceError> {
        let trace = flag(&request.parameters, "trace")?;
        let (inputs, rows) = check_inputs(model, request.inputs, self.limits.max_batch_rows)?;
        if let Some(requested) = &request.outputs {
            check_outputs(model, requested)?;
        }
        let Ok(_permit) = self.inflight.clone().try_acquire_owned() else {
            crate::metrics::rejected("overloaded");
            return Err(ServiceError::unavailable(format!(
                "the server is at its limit of {} inference requests at once; retry later",
                self.limits.max_concurrency
            )));
        };
        let checked = Instant::now();
        let run = model.run(Request {
            inputs,
            parameters: request.parameters,
            id: request.id.clone(),
            log_id: request.request_id.clone(),
            trace,
            capture,
        });
        let timeout = self.limits.request_timeout;
        let answer = tokio::time::timeout(timeout, run).await.map_err(|_| {
            ServiceError::new(
                ErrorKind::DeadlineExceeded,
                format!(
                    "model `{}` did not answer within the server's request timeout of {} ms",
                    model.name,
                    timeout.as_millis()
                ),
            )
        })??;
        let ran = Instant::now();
        let outputs = request::select_outputs(model, answer.outputs, request.outputs.as_deref())?;
        let phases = Phases {
            input: checked - request.received,
            infer: ran - checked,
            output: ran.elapsed(),
        };
        let response = InferResponse {
            model_name: model.model_name().to_string(),
            // A rollout answers with the version it chose.
            model_version: match (model.kind, answer.version) {
                (crate::graph::Kind::Rollout, Some(v)) => v,
                _ => model.version(),
            }
            .to_string(),
            id: request.id,
            outputs,
            dropped: answer.dropped,
            trace: answer.trace,
        };
        Ok((response, rows, phases))
    }
}
