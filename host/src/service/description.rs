//! A served model as Triton's model configuration describes it: assembled
//! once from the model, and written by each front end in its own form (REST
//! as JSON, gRPC as `ModelConfig`), so that both always say the same.

use crate::graph::{RolloutStatus, Served};
use crate::tensor::TensorSpec;

/// What `GET /v2/models/{m}/config` and gRPC's `ModelConfig` report.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The model's name (without its version).
    pub name: String,
    /// `aimass_KIND`.
    pub platform: String,
    /// Its kind (`node`, `sequence`, ...).
    pub kind: &'static str,
    /// The models it calls directly, by section key.
    pub members: Vec<String>,
    /// What it takes.
    pub inputs: Vec<TensorSpec>,
    /// What it returns.
    pub outputs: Vec<TensorSpec>,
    /// How calls to it merge, when it batches.
    pub dynamic_batching: Option<DynamicBatching>,
    /// Where its rollout stands, when it is one.
    pub rollout: Option<RolloutStatus>,
}

/// A batching node's policy, as Triton's `dynamic_batching` names it.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicBatching {
    /// The longest the oldest call waits for others.
    pub max_queue_delay_us: u64,
    /// Row counts run at once without waiting.
    pub preferred_batch_sizes: Vec<usize>,
    /// Calls that may wait.
    pub max_queue_size: usize,
}

impl ModelConfig {
    /// The configuration of `model`.
    pub fn of(model: &Served) -> ModelConfig {
        ModelConfig {
            name: model.model_name().to_string(),
            platform: model.platform(),
            kind: model.kind.name(),
            members: model.members().iter().map(|m| m.name.clone()).collect(),
            inputs: model.signature.inputs.clone(),
            outputs: model.signature.outputs.clone(),
            dynamic_batching: model.batcher().map(|batcher| {
                let policy = batcher.policy();
                DynamicBatching {
                    max_queue_delay_us: policy.max_queue_delay.as_micros() as u64,
                    preferred_batch_sizes: policy.preferred_batch_sizes.clone(),
                    max_queue_size: policy.max_queue_size,
                }
            }),
            rollout: model.status(),
        }
    }
}
