//! Instances of one node: warm ones reused across requests, a poisoned one
//! (trap, timeout, out of memory) dropped and replaced, or a fresh instance
//! for every request when the operator asks for per-request isolation.
//!
//! Admission is per node: a call waits for an instance only while the
//! node's wait queue has room and only up to its queue timeout, so a node
//! that is slow or hostile turns its own callers away (503) quickly instead
//! of piling up requests that hold the server's concurrency slots.

use super::Runtime;
use super::bindings::ParamValue;
use super::error::RuntimeError;
use super::info::ModelInfo;
use super::instance::{Instance, InstanceLimits, NamedTensor};
use super::plugin::Plugin;
use super::wasi_nn::NnState;
use crate::metrics::NodeMetrics;
use crate::nn::GrantedGraphs;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Whether instances carry over between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Warm instances are reused (state a plugin keeps may carry over).
    #[default]
    Pooled,
    /// Every request gets a fresh instance, initialised for it and dropped
    /// after it.
    PerRequest,
}

/// How a node runs: its plugin's parameters, grants and limits.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The node's name, used in logs.
    pub node: String,
    /// The parameters `init` receives.
    pub params: Vec<(String, ParamValue)>,
    /// The graphs the node may reach.
    pub graphs: GrantedGraphs,
    /// Memory and time limits per instance.
    pub limits: InstanceLimits,
    /// Whether instances are reused.
    pub isolation: Isolation,
    /// Calls that may run at once (each on its own instance).
    pub max_instances: usize,
    /// Calls that may wait for an instance; one more is refused at once.
    pub max_queue: usize,
    /// The longest a call waits for an instance.
    pub queue_timeout: Duration,
}

/// A warm instance, the thread that last ran it, and since when it waits.
struct Idle {
    instance: Instance,
    last_thread: Option<ThreadId>,
    since: Instant,
}

/// The instances serving one node.
pub struct NodePool {
    runtime: Arc<Runtime>,
    plugin: Plugin,
    spec: NodeSpec,
    info: Arc<ModelInfo>,
    idle: Mutex<Vec<Idle>>,
    permits: Semaphore,
    waiting: AtomicUsize,
    /// Blocking compute threads this node may occupy, shared by its
    /// instances and kept by computes whose call was abandoned.
    compute_slots: Arc<Semaphore>,
    metrics: NodeMetrics,
    /// Calls that reached an instance.
    calls: AtomicU64,
    /// Kept alive with the node: its instances, however short-lived, log
    /// within this one budget.
    _log_budget: super::output::LogBudget,
}

impl std::fmt::Debug for NodePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodePool")
            .field("node", &self.spec.node)
            .field("plugin", &self.plugin.name())
            .finish_non_exhaustive()
    }
}

impl NodePool {
    /// Starts the node: one instance is created and initialised now, so a
    /// bad parameter or a missing graph is reported at start-up.
    pub async fn start(
        runtime: Arc<Runtime>,
        plugin: Plugin,
        spec: NodeSpec,
    ) -> Result<Self, RuntimeError> {
        let compute_slots = Arc::new(Semaphore::new(spec.max_instances.max(1)));
        let log_budget = runtime.log_budget(&spec.node);
        let mut first = new_instance(&runtime, &plugin, &spec, &compute_slots, None).await?;
        let info = first.info().await?;
        super::contract::validate_info(&info).map_err(|message| RuntimeError::InvalidInfo {
            plugin: plugin.name().to_string(),
            message,
        })?;
        let info = Arc::new(info);
        first.hold_to(info.clone());
        let idle = match spec.isolation {
            Isolation::Pooled => vec![Idle {
                instance: first,
                last_thread: None,
                since: Instant::now(),
            }],
            Isolation::PerRequest => Vec::new(),
        };
        Ok(NodePool {
            permits: Semaphore::new(spec.max_instances.max(1)),
            waiting: AtomicUsize::new(0),
            compute_slots,
            metrics: NodeMetrics::new(&spec.node),
            calls: AtomicU64::new(0),
            _log_budget: log_budget,
            runtime,
            plugin,
            spec,
            info,
            idle: Mutex::new(idle),
        })
    }

    /// What the node's plugin reports, as configured.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The node's spec.
    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// Calls that reached an instance, since the node started.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Instances waiting for a request.
    pub fn idle_instances(&self) -> usize {
        self.idle.lock().map(|idle| idle.len()).unwrap_or(0)
    }

    /// Drops the warm instances that have waited longer than `older_than`,
    /// all but the one returned last: a burst's instances (their stores and
    /// linear memories) go back to the system once the burst is over, and
    /// the node stays warm for the next call. Returns how many went.
    pub fn shed_idle(&self, older_than: Duration) -> usize {
        let shed: Vec<Idle> = {
            let Ok(mut idle) = self.idle.lock() else {
                return 0;
            };
            let newest = idle
                .iter()
                .enumerate()
                .max_by_key(|(_, entry)| entry.since)
                .map(|(at, _)| at);
            let (kept, shed): (Vec<_>, Vec<_>) =
                idle.drain(..).enumerate().partition(|(at, entry)| {
                    Some(*at) == newest || entry.since.elapsed() <= older_than
                });
            *idle = kept.into_iter().map(|(_, entry)| entry).collect();
            shed.into_iter().map(|(_, entry)| entry).collect()
        };
        // Dropped outside the lock: freeing a store's memory takes a while.
        let count = shed.len();
        drop(shed);
        count
    }

    /// Runs one inference on an instance of this node.
    pub async fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, RuntimeError> {
        let waiting = Instant::now();
        let _permit = self.admit().await.inspect_err(|error| {
            if matches!(error, RuntimeError::Saturated { .. }) {
                self.metrics.rejected();
            }
        })?;
        self.metrics.queued(waiting.elapsed());
        let _in_use = self.metrics.busy();
        let started = Instant::now();
        let mut instance = match self.take_idle() {
            Some(instance) => instance,
            None => new_instance(
                &self.runtime,
                &self.plugin,
                &self.spec,
                &self.compute_slots,
                Some(&self.info),
            )
            .await
            .inspect_err(|e| self.metrics.call(started.elapsed(), Some(e.metric_kind())))?,
        };
        self.calls.fetch_add(1, Ordering::Relaxed);
        let result = instance.infer(inputs).await;
        self.metrics.call(
            started.elapsed(),
            result.as_ref().err().map(RuntimeError::metric_kind),
        );
        match &result {
            Err(error) if error.poisons_instance() => {
                tracing::warn!(node = %self.spec.node, "discarding instance: {error}");
            }
            _ if self.spec.isolation == Isolation::Pooled => self.return_idle(instance),
            _ => {}
        }
        result
    }

    /// An instance slot: at once when one is free, else after a bounded
    /// wait in a bounded queue.
    async fn admit(&self) -> Result<SemaphorePermit<'_>, RuntimeError> {
        if let Ok(permit) = self.permits.try_acquire() {
            return Ok(permit);
        }
        let saturated = |reason: String| RuntimeError::Saturated {
            node: self.spec.node.clone(),
            reason,
        };
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.spec.max_queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(saturated(format!(
                "all {} of its instances are busy and {} calls already wait",
                self.spec.max_instances, self.spec.max_queue
            )));
        }
        // Counted out however the wait ends, cancellation included.
        let _ticket = Ticket(&self.waiting);
        match tokio::time::timeout(self.spec.queue_timeout, self.permits.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(RuntimeError::Engine("the node is shutting down".into())),
            Err(_) => Err(saturated(format!(
                "no instance became free within its queue timeout of {} ms",
                self.spec.queue_timeout.as_millis()
            ))),
        }
    }

    /// A warm instance, preferably the one this thread ran last: its store,
    /// linear memory and stack are then still in this core's caches (6–9%
    /// less server CPU per batch-1 `digits` request on 2 cores than taking
    /// whichever was returned last, three alternating runs).
    fn take_idle(&self) -> Option<Instance> {
        if self.spec.isolation == Isolation::PerRequest {
            return None;
        }
        let mut idle = self.idle.lock().ok()?;
        let here = std::thread::current().id();
        let index = preferred(idle.iter().map(|entry| entry.last_thread), here)?;
        Some(idle.remove(index).instance)
    }

    fn return_idle(&self, instance: Instance) {
        let entry = Idle {
            instance,
            last_thread: Some(std::thread::current().id()),
            since: Instant::now(),
        };
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(entry);
        }
    }
}

/// Which idle instance a thread takes: the last one it returned, else the
/// last one returned by anyone.
fn preferred<I>(mut last_threads: I, here: ThreadId) -> Option<usize>
where
    I: DoubleEndedIterator<Item = Option<ThreadId>> + ExactSizeIterator,
{
    let count = last_threads.len();
    last_threads
        .rposition(|thread| thread == Some(here))
        .or_else(|| count.checked_sub(1))
}

/// Leaves the wait queue when dropped.
struct Ticket<'a>(&'a AtomicUsize);

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A new instance of `plugin`, initialised for the node and, once the node's
/// description is known, held to it.
async fn new_instance(
    runtime: &Runtime,
    plugin: &Plugin,
    spec: &NodeSpec,
    compute_slots: &Arc<Semaphore>,
    contract: Option<&Arc<ModelInfo>>,
) -> Result<Instance, RuntimeError> {
    let nn = NnState::new(&spec.graphs).with_compute_slots(compute_slots.clone());
    let mut instance = runtime
        .instantiate(plugin, &spec.node, nn, spec.limits)
        .await?;
    instance.init(spec.params.clone()).await?;
    if let Some(info) = contract {
        instance.hold_to(info.clone());
    }
    Ok(instance)
}

#[cfg(test)]
mod tests {
    use super::preferred;
    use std::thread::ThreadId;

    fn other_thread() -> ThreadId {
        std::thread::spawn(|| std::thread::current().id())
            .join()
            .unwrap()
    }

    #[test]
    fn a_thread_takes_back_the_instance_it_ran_last() {
        let (here, other) = (std::thread::current().id(), other_thread());
        let idle = [Some(here), None, Some(other)];
        assert_eq!(preferred(idle.into_iter(), here), Some(0));
        let idle = [Some(here), Some(other), Some(here), Some(other)];
        assert_eq!(preferred(idle.into_iter(), here), Some(2));
    }

    #[test]
    fn otherwise_the_instance_returned_last() {
        let (here, other) = (std::thread::current().id(), other_thread());
        let idle = [None, Some(other)];
        assert_eq!(preferred(idle.into_iter(), here), Some(1));
        assert_eq!(preferred(std::iter::empty(), here), None);
    }
}
