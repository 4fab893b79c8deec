//! Instances of one node: warm ones reused across requests, a poisoned one
//! (trap, timeout, out of memory) dropped and replaced, or a fresh instance
//! for every request when the operator asks for per-request isolation.

use super::Runtime;
use super::bindings::ParamValue;
use super::error::RuntimeError;
use super::graphs::GrantedGraphs;
use super::info::ModelInfo;
use super::instance::{Instance, InstanceLimits, NamedTensor};
use super::plugin::Plugin;
use crate::metrics::NodeMetrics;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Semaphore;

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
}

/// The instances serving one node.
pub struct NodePool {
    runtime: Arc<Runtime>,
    plugin: Plugin,
    spec: NodeSpec,
    info: ModelInfo,
    idle: Mutex<Vec<Instance>>,
    permits: Semaphore,
    metrics: NodeMetrics,
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
        let mut first = new_instance(&runtime, &plugin, &spec).await?;
        let info = first.info().await?;
        let idle = match spec.isolation {
            Isolation::Pooled => vec![first],
            Isolation::PerRequest => Vec::new(),
        };
        Ok(NodePool {
            permits: Semaphore::new(spec.max_instances.max(1)),
            metrics: NodeMetrics::new(&spec.node),
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

    /// Instances waiting for a request.
    pub fn idle_instances(&self) -> usize {
        self.idle.lock().map(|idle| idle.len()).unwrap_or(0)
    }

    /// Runs one inference on an instance of this node.
    pub async fn infer(&self, inputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, RuntimeError> {
        let waiting = Instant::now();
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| RuntimeError::Engine("the node is shutting down".into()))?;
        self.metrics.queued(waiting.elapsed());
        let _in_use = self.metrics.busy();
        let started = Instant::now();
        let mut instance = match self.take_idle() {
            Some(instance) => instance,
            None => new_instance(&self.runtime, &self.plugin, &self.spec).await?,
        };
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

    fn take_idle(&self) -> Option<Instance> {
        if self.spec.isolation == Isolation::PerRequest {
            return None;
        }
        self.idle.lock().ok()?.pop()
    }

    fn return_idle(&self, instance: Instance) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(instance);
        }
    }
}

/// A new instance of `plugin`, initialised for the node.
async fn new_instance(
    runtime: &Runtime,
    plugin: &Plugin,
    spec: &NodeSpec,
) -> Result<Instance, RuntimeError> {
    let mut instance = runtime
        .instantiate(plugin, &spec.node, spec.graphs.context(), spec.limits)
        .await?;
    instance.init(spec.params.clone()).await?;
    Ok(instance)
}
