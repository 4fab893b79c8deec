//! The operator's config file, as types. Every table refuses unknown keys,
//! and `aimass schema` prints the JSON schema generated from these types.

use super::hierarchies::{
    CascadeConfig, DagConfig, EnsembleConfig, Ref, SequenceConfig, ShadowConfig, SplitterConfig,
    SwitchConfig,
};
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Engine-wide limits.
    #[serde(default)]
    pub engine: EngineConfig,
    /// WebAssembly components implementing the sub-model contract.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
    /// ONNX files the host loads into its graph registry at start-up.
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactConfig>,
    /// A plugin plus its `init` parameters; each is also served as a model.
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeConfig>,
    /// Layer after layer.
    #[serde(default)]
    pub sequence: BTreeMap<String, SequenceConfig>,
    /// Steps wired by explicit tensor edges.
    #[serde(default)]
    pub dag: BTreeMap<String, DagConfig>,
    /// Members run in parallel and combined.
    #[serde(default)]
    pub ensemble: BTreeMap<String, EnsembleConfig>,
    /// One branch chosen per request.
    #[serde(default)]
    pub switch: BTreeMap<String, SwitchConfig>,
    /// Cheap stage first; unsure rows escalate.
    #[serde(default)]
    pub cascade: BTreeMap<String, CascadeConfig>,
    /// Weighted traffic split between versions.
    #[serde(default)]
    pub splitter: BTreeMap<String, SplitterConfig>,
    /// A primary answers; a copy goes to a shadow that never affects it.
    #[serde(default)]
    pub shadow: BTreeMap<String, ShadowConfig>,
    /// Which versions of a model are served (default: the latest one).
    #[serde(default)]
    pub versions: BTreeMap<String, VersionsConfig>,
    /// A model's traffic moving from one version to another by steps,
    /// promoted or rolled back by the host itself.
    #[serde(default)]
    pub rollouts: BTreeMap<String, RolloutConfig>,
    /// What of a model's traffic is kept on disk (Parquet), by model.
    #[serde(default)]
    pub capture: BTreeMap<String, super::CaptureConfig>,
}

/// A rollout of a model from version `from` to version `to`: `to` takes a
/// growing share of the model's traffic (`steps`, in percent), each step
/// held for `step_ms` and judged against `from` on live traffic; it is
/// promoted after the last step, and rolled back the moment it breaks a
/// bound.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutConfig {
    /// The version serving now.
    pub from: u64,
    /// The version rolled out.
    pub to: u64,
    /// Percent of traffic to `to` at each step, increasing; the last may
    /// be 100.
    #[serde(default = "default_rollout_steps")]
    pub steps: Vec<f64>,
    /// How long each step must stay within bounds, in milliseconds.
    #[serde(default = "default_rollout_step_ms")]
    pub step_ms: u64,
    /// Requests `to` must answer in a step before it is judged.
    #[serde(default = "default_rollout_min_requests")]
    pub min_requests: u64,
    /// How much `to`'s error rate may exceed `from`'s (0.01: one point).
    #[serde(default = "default_rollout_error_rate")]
    pub max_error_rate_increase: f64,
    /// How many times `from`'s p99 latency `to`'s may be.
    #[serde(default = "default_rollout_p99_ratio")]
    pub max_p99_ratio: f64,
    /// For classifiers (a `label` output): the least share of compared rows
    /// on which `to` gives `from`'s label.
    #[serde(default)]
    pub min_agreement: Option<f64>,
    /// The share of `to`'s requests also run on `from` to compare labels
    /// (only with `min_agreement`).
    #[serde(default = "default_rollout_compare_share")]
    pub compare_share: f64,
    /// The rollout's own key among the models (`NAME@rollout`), set when
    /// the file is parsed.
    #[serde(skip)]
    #[schemars(skip)]
    pub key: String,
}

fn default_rollout_steps() -> Vec<f64> {
    vec![10.0, 50.0, 100.0]
}
fn default_rollout_step_ms() -> u64 {
    60_000
}
fn default_rollout_min_requests() -> u64 {
    50
}
fn default_rollout_error_rate() -> f64 {
    0.01
}
fn default_rollout_p99_ratio() -> f64 {
    2.0
}
fn default_rollout_compare_share() -> f64 {
    0.1
}

impl Config {
    /// Every node's and hierarchy's section key.
    pub fn model_keys(&self) -> impl Iterator<Item = &String> {
        self.nodes
            .keys()
            .chain(self.sequence.keys())
            .chain(self.dag.keys())
            .chain(self.ensemble.keys())
            .chain(self.switch.keys())
            .chain(self.cascade.keys())
            .chain(self.splitter.keys())
            .chain(self.shadow.keys())
    }
}

/// A model's version policy (Triton's): set one of the three, or none for
/// the latest version alone.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct VersionsConfig {
    /// Serve the highest N versions.
    #[serde(default)]
    pub latest: Option<u32>,
    /// Serve every version.
    #[serde(default)]
    pub all: bool,
    /// Serve these versions.
    #[serde(default)]
    pub specific: Option<Vec<u64>>,
}

/// Engine-wide limits (every instance slot is sized for the largest plugin).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Most live instances across all nodes.
    #[serde(default = "default_engine_instances")]
    pub max_instances: u32,
    /// Largest memory any one instance may have, in MiB.
    #[serde(default = "default_engine_memory_mb")]
    pub max_memory_mb: u64,
    /// Where compiled components are cached (relative to the file).
    #[serde(default)]
    pub compile_cache: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_instances: default_engine_instances(),
            max_memory_mb: default_engine_memory_mb(),
            compile_cache: None,
        }
    }
}

fn default_engine_instances() -> u32 {
    256
}

fn default_engine_memory_mb() -> u64 {
    256
}

/// One plugin: where its component is and how far it may go.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The `.wasm` component (relative to the file).
    pub path: String,
    /// The component's sha256; a different file is refused.
    #[serde(default)]
    pub sha256: Option<String>,
    /// A shell command that builds the component (`aimass serve --build`).
    #[serde(default)]
    pub build: Option<String>,
    /// Memory cap per instance, in MiB.
    #[serde(default = "default_memory_mb")]
    #[schemars(with = "u64")]
    pub memory_mb: Spanned<u64>,
    /// Time budget per call, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    #[schemars(with = "u64")]
    pub timeout_ms: Spanned<u64>,
    /// Most instances per node.
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// Calls that may wait for a busy node's instance; past it a call is
    /// refused at once (503). Default: 16 per instance.
    #[serde(default)]
    pub max_queue: Option<u32>,
    /// The longest a call waits for an instance, in milliseconds (503
    /// after it). Default: `timeout_ms`.
    #[serde(default)]
    pub queue_timeout_ms: Option<u64>,
    /// `pooled` (warm instances reused) or `per-request` (fresh each call).
    #[serde(default)]
    pub isolation: IsolationConfig,
    /// Graphs every node of this plugin may use.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub graphs: Vec<Ref>,
}

/// Calls that may wait per instance when `max_queue` is not given.
pub const QUEUE_PER_INSTANCE: u32 = 16;

impl PluginConfig {
    /// `max_queue`, or its default: [`QUEUE_PER_INSTANCE`] per instance.
    pub fn max_queue(&self) -> usize {
        self.max_queue
            .unwrap_or(QUEUE_PER_INSTANCE.saturating_mul(self.max_instances)) as usize
    }

    /// `queue_timeout_ms`, or its default: `timeout_ms`.
    pub fn queue_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.queue_timeout_ms.unwrap_or(*self.timeout_ms.get_ref()),
        )
    }

    /// `memory_mb` in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(*self.memory_mb.get_ref())
            .unwrap_or(usize::MAX)
            .saturating_mul(1 << 20)
    }

    /// `timeout_ms` as a duration.
    pub fn call_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(*self.timeout_ms.get_ref())
    }
}

fn default_memory_mb() -> Spanned<u64> {
    Spanned::new(0..0, 64)
}

fn default_timeout_ms() -> Spanned<u64> {
    Spanned::new(0..0, 1000)
}

fn default_max_instances() -> u32 {
    4
}

/// Instance reuse.
#[derive(Debug, Deserialize, JsonSchema, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationConfig {
    /// Warm instances reused across requests.
    #[default]
    Pooled,
    /// A fresh instance for every call.
    PerRequest,
}

/// An ONNX file loaded once into the graph registry.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArtifactConfig {
    /// The `.onnx` file (relative to the file).
    pub path: String,
    /// `tract` (built in) or `onnxruntime`.
    #[serde(default)]
    pub backend: BackendConfig,
    /// `cpu` or `gpu` (onnxruntime only; never falls back to the CPU).
    #[serde(default)]
    pub device: DeviceConfig,
}

/// The wasi-nn backend.
#[derive(Debug, Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub enum BackendConfig {
    /// Pure-Rust tract.
    #[default]
    Tract,
    /// ONNX Runtime.
    Onnxruntime,
}

/// The device.
#[derive(Debug, Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub enum DeviceConfig {
    /// The CPU.
    #[default]
    Cpu,
    /// A CUDA GPU.
    Gpu,
}

/// A plugin plus its parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The plugin (a key of `[plugins]`).
    #[schemars(with = "String")]
    pub plugin: Ref,
    /// Graphs this node may use, beyond its plugin's.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub graphs: Vec<Ref>,
    /// Passed to the plugin's `init`.
    #[serde(default)]
    pub params: BTreeMap<String, ParamConfig>,
    /// Rows one request may send (400 above it). Default: the smallest
    /// limit of the models it calls (a plugin's declared max batch size), or
    /// the server's `--max-batch-rows`.
    #[serde(default)]
    pub max_batch_rows: Option<u32>,
    /// Merge concurrent calls into one plugin call (dynamic batching).
    #[serde(default)]
    #[schemars(with = "Option<BatchingConfig>")]
    pub batching: Option<Spanned<BatchingConfig>>,
}

/// Dynamic batching of one node, named as Triton names it.
#[derive(Debug, Deserialize, JsonSchema, Clone)]
#[serde(deny_unknown_fields)]
pub struct BatchingConfig {
    /// Rows in one merged call at most; a call with more runs alone.
    pub max_batch_size: u32,
    /// How long the oldest waiting call waits for others, in microseconds
    /// (default 0: merge only what queued while the instances were busy).
    #[serde(default)]
    pub max_queue_delay_us: u64,
    /// Row counts that run at once, without waiting for the delay.
    #[serde(default)]
    pub preferred_batch_sizes: Vec<u32>,
    /// Calls that may wait; one more is answered 503.
    #[serde(default = "default_batch_queue")]
    pub max_queue_size: u32,
}

fn default_batch_queue() -> u32 {
    1024
}

/// One `init` parameter.
#[derive(Debug, Deserialize, JsonSchema, Clone)]
#[serde(
    untagged,
    expecting = "invalid param: expected a string, a number, true/false, or a list of strings or of numbers"
)]
pub enum ParamConfig {
    /// `true` / `false`.
    Flag(bool),
    /// A whole number.
    Integer(i64),
    /// A number.
    Number(f64),
    /// A string.
    Text(String),
    /// Strings.
    Texts(Vec<String>),
    /// Numbers.
    Numbers(Vec<f64>),
}
