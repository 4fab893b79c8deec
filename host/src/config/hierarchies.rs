//! The hierarchy sections of the config file (`[sequence.*]`, `[dag.*]`,
//! `[ensemble.*]`, `[switch.*]`, `[cascade.*]`, `[splitter.*]`,
//! `[shadow.*]`) and how they name their members.

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// A name that refers to something else in the file, with where it was
/// written (for error messages).
pub type Ref = Spanned<String>;

/// How one hierarchy uses another model (a node or a hierarchy).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// The model used.
    #[schemars(with = "String")]
    pub model: Ref,
    /// Its input name → the tensor that feeds it.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Fails the request after this long, in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// A soft member's failure is dropped and reported instead of failing
    /// the request (ensemble members are soft unless stacked).
    #[serde(default)]
    pub required: Option<bool>,
    /// Weight in a `weighted` ensemble, or share in a splitter.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub weight: Option<Spanned<f64>>,
}

/// A member written as just its model's name, or as a table.
#[derive(Debug, JsonSchema)]
#[serde(untagged)]
pub enum MemberRef {
    /// `"student"`.
    Name(String),
    /// `{ model = "student", ... }`.
    Full(MemberConfig),
}

// By hand rather than `untagged`: serde's untagged enums buffer their input,
// which would lose the line numbers `Spanned` fields carry.
impl<'de> Deserialize<'de> for MemberRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = MemberRef;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a model's name or a table with `model = \"...\"`")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<MemberRef, E> {
                Ok(MemberRef::Name(name.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<MemberRef, A::Error> {
                MemberConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(MemberRef::Full)
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// Layers in order; each layer's outputs feed the next by name.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SequenceConfig {
    /// The layers.
    #[schemars(with = "Vec<MemberRef>")]
    pub steps: Vec<Spanned<MemberRef>>,
    /// Rows one request may send (400 above it). Default: the smallest
    /// limit of the models it calls (a plugin's declared max batch size), or
    /// the server's `--max-batch-rows`.
    #[serde(default)]
    pub max_batch_rows: Option<u32>,
}

/// A step of a DAG.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DagStepConfig {
    /// The step's id, used in edges as `id.output`.
    #[schemars(with = "String")]
    pub id: Ref,
    /// The model run.
    #[schemars(with = "String")]
    pub model: Ref,
    /// Its input name → `request.NAME` or `STEP.OUTPUT`.
    #[schemars(with = "BTreeMap<String, String>")]
    pub inputs: BTreeMap<String, Ref>,
    /// Fails the request after this long, in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Steps wired by explicit edges; independent steps run concurrently.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DagConfig {
    /// The steps.
    pub steps: Vec<DagStepConfig>,
    /// The response's tensors: name → `STEP.OUTPUT`.
    #[schemars(with = "BTreeMap<String, String>")]
    pub outputs: BTreeMap<String, Ref>,
    /// Rows one request may send (400 above it). Default: the smallest
    /// limit of the models it calls (a plugin's declared max batch size), or
    /// the server's `--max-batch-rows`.
    #[serde(default)]
    pub max_batch_rows: Option<u32>,
}

/// How an ensemble combines its members.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CombineConfig {
    /// Majority vote of the members' labels.
    Vote,
    /// Mean of the members' probabilities.
    Mean,
    /// Weighted mean of the members' probabilities.
    Weighted,
    /// A meta-model takes the members' probabilities, side by side.
    Stacking,
}

/// Members run in parallel and combined.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnsembleConfig {
    /// The members.
    #[schemars(with = "Vec<MemberRef>")]
    pub members: Vec<Spanned<MemberRef>>,
    /// How their answers become one.
    #[schemars(with = "CombineConfig")]
    pub combine: Spanned<CombineConfig>,
    /// The meta-model for `stacking`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub meta: Option<Ref>,
    /// Fewest members that must answer (default 1; all for stacking).
    #[serde(default)]
    #[schemars(with = "Option<u32>")]
    pub min_members: Option<Spanned<u32>>,
    /// Rows one request may send (400 above it). Default: the smallest
    /// limit of the models it calls (a plugin's declared max batch size), or
    /// the server's `--max-batch-rows`.
    #[serde(default)]
    pub max_batch_rows: Option<u32>,
}

/// A branch of a switch.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BranchConfig {
    /// The model this branch runs.
    #[schemars(with = "String")]
    pub model: Ref,
    /// Taken when the request parameter `parameter` equals this.
    #[serde(default)]
    pub equals: Option<String>,
    /// Taken when this predicate on an input tensor holds.
    #[serde(default)]
    pub when: Option<PredicateConfig>,
}

/// A test on a tensor: `reduce(tensor) op value`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PredicateConfig {
    /// The input tensor tested.
    pub tensor: String,
    /// How its elements become one number: `max`, `min` or `mean`.
    #[serde(default)]
    pub reduce: ReduceConfig,
    /// The comparison.
    pub op: CompareConfig,
    /// The number compared with.
    pub value: f64,
}

/// Reduction of a tensor to one number.
#[derive(Debug, Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
pub enum ReduceConfig {
    /// The largest element.
    #[default]
    Max,
    /// The smallest element.
    Min,
    /// The mean.
    Mean,
}

/// A comparison.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy)]
pub enum CompareConfig {
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// At most.
    #[serde(rename = "<=")]
    Le,
    /// More than.
    #[serde(rename = ">")]
    Gt,
    /// At least.
    #[serde(rename = ">=")]
    Ge,
}

/// One branch per request, by a request parameter or a predicate.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchConfig {
    /// The request parameter branches test with `equals`.
    #[serde(default)]
    pub parameter: Option<String>,
    /// Tried in order; the first that matches runs.
    pub branches: Vec<BranchConfig>,
    /// Runs when no branch matches (otherwise the request is refused).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub default: Option<Ref>,
    /// Rows one request may send (400 above it). Default: the smallest
    /// limit of the models it calls (a plugin's declared max batch size), or
    /// the server's `--max-batch-rows`.
    #[serde(default)]
    pub max_batch_rows: Option<u32>,
}

/// A stage of a cascade.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// The model of this stage.
    #[schemars(with = "String")]
    pub model: Ref,
    /// Rows whose confidence is at or above this stop here (0..=1); the last
    /// stage has none.
    #[serde(default)]
    #[schemars(with = "Option<f64>")]
    pub threshold: Option<Spanned<f64>>,
    /// The output read as confidence; default: the max of `probabilities`.
    #[serde(default)]
    pub confidence: Option<String>,
    /// Fails the request after this long, in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Cheap stage first; only unsure rows escalate.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CascadeConfig {
    /// The stages, cheapest first.
    pub stages: Vec<StageConfig>,
    /// Rows one request may send (400 above it). Default: the smallest
    /// limit of the models it calls (a plugin's declared max batch size), or
    /// the server's `--max-batch-rows`.
    #[serde(default)]
    pub max_batch_rows: Option<u32>,
}

/// Weighted traffic split, sticky by request id.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitterConfig {
    /// The versions and their `weight`s.
    pub routes: Vec<MemberConfig>,
    /// Rows one request may send (400 above it). Default: the smallest
    /// limit of the models it calls (a plugin's declared max batch size), or
    /// the server's `--max-batch-rows`.
    #[serde(default)]
    pub max_batch_rows: Option<u32>,
}

/// A primary answers; a copy of each request goes to the shadow.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    /// Answers the request.
    #[schemars(with = "String")]
    pub primary: Ref,
    /// Gets a copy; its result or failure is only logged.
    #[schemars(with = "String")]
    pub shadow: Ref,
    /// Shadow calls running at once; a request that finds them all busy
    /// sends no copy (counted in `aimass_shadow_dropped_total`). Default 16.
    #[serde(default)]
    pub max_in_flight: Option<u32>,
    /// The longest a shadow call may run, in milliseconds. Default 10000.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Rows one request may send (400 above it). Default: the smallest
    /// limit of the models it calls (a plugin's declared max batch size), or
    /// the server's `--max-batch-rows`.
    #[serde(default)]
    pub max_batch_rows: Option<u32>,
}
