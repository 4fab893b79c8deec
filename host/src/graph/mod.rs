//! Hierarchies: models made of other models (nodes or hierarchies), built
//! from the operator's config, type-checked before serving, and run here.
//!
//! Every hierarchy is a model in its own right: it has a signature and
//! answers `run` like a node does, so hierarchies nest.

mod build;
mod check;
mod dag;
mod exec;
mod tensors;

pub use build::build_models;
pub use check::{HierarchyOrder, check_references, model_closure};
pub use exec::{Dropped, Request, Response, TraceEntry};

use crate::nn::Signature;
use crate::runtime::{NodePool, RuntimeError};
use std::sync::Arc;
use std::time::Duration;

/// Why a request to a model failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The request itself is wrong (a missing input, no branch for it).
    #[error("{0}")]
    BadRequest(String),
    /// A node failed; the error names it.
    #[error("node `{node}`: {source}")]
    Node {
        /// The node.
        node: String,
        /// What went wrong inside it.
        source: RuntimeError,
    },
    /// A member took longer than its hierarchy allows.
    #[error("`{model}` did not answer within {millis} ms")]
    Timeout {
        /// The member.
        model: String,
        /// Its budget.
        millis: u128,
    },
    /// A model returned something its hierarchy cannot use.
    #[error("{0}")]
    Contract(String),
    /// Too many soft members failed.
    #[error(
        "ensemble `{ensemble}`: {answered} of its members answered, it needs {needed}: {failures}"
    )]
    TooFewMembers {
        /// The ensemble.
        ensemble: String,
        /// How many answered.
        answered: usize,
        /// How many it needs.
        needed: usize,
        /// Each failure.
        failures: String,
    },
}

impl ExecError {
    /// True when the client's request, not a model, is at fault.
    pub fn is_bad_request(&self) -> bool {
        match self {
            ExecError::BadRequest(_) => true,
            ExecError::Node { source, .. } => matches!(
                source,
                RuntimeError::Plugin {
                    kind: crate::runtime::GuestErrorKind::InvalidInput,
                    ..
                }
            ),
            _ => false,
        }
    }
}

/// What kind of model something is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A plugin instance pool.
    Node,
    /// Layer after layer.
    Sequence,
    /// Explicit edges.
    Dag,
    /// Parallel members, combined.
    Ensemble,
    /// One branch per request.
    Switch,
    /// Escalating stages.
    Cascade,
    /// Weighted split.
    Splitter,
    /// Primary plus a shadow copy.
    Shadow,
}

impl Kind {
    /// The config's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Node => "node",
            Kind::Sequence => "sequence",
            Kind::Dag => "dag",
            Kind::Ensemble => "ensemble",
            Kind::Switch => "switch",
            Kind::Cascade => "cascade",
            Kind::Splitter => "splitter",
            Kind::Shadow => "shadow",
        }
    }
}

/// A model clients can call: a node or a hierarchy.
pub struct Served {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// What it takes and returns.
    pub signature: Signature,
    /// The most rows one request may send, when it has a limit.
    pub max_rows: Option<usize>,
    body: Body,
}

impl std::fmt::Debug for Served {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Served")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Served {
    /// A node served as a model of its own, taking at most `max_rows` rows
    /// per request or, when unset, what its plugin declares as its max batch.
    pub fn node(name: &str, pool: Arc<NodePool>, max_rows: Option<u32>) -> Served {
        let info = pool.info();
        Served {
            name: name.to_string(),
            kind: Kind::Node,
            signature: Signature {
                inputs: info.inputs.clone(),
                outputs: info.outputs.clone(),
            },
            max_rows: max_rows
                .or(info.max_batch_size.filter(|&n| n > 0))
                .map(|n| n as usize),
            body: Body::Node(pool),
        }
    }

    /// A model with `signature` that calls nothing, for tests of what
    /// surrounds a model (decoding, binding).
    #[cfg(test)]
    pub(crate) fn with_signature(name: &str, signature: Signature) -> Served {
        Served {
            name: name.to_string(),
            kind: Kind::Sequence,
            signature,
            max_rows: None,
            body: Body::Sequence(vec![]),
        }
    }

    /// The instance pool, when this model is a node.
    pub fn pool(&self) -> Option<&Arc<NodePool>> {
        match &self.body {
            Body::Node(pool) => Some(pool),
            _ => None,
        }
    }

    /// The nodes and hierarchies this one calls directly.
    pub fn members(&self) -> Vec<Arc<Served>> {
        match &self.body {
            Body::Node(_) => vec![],
            Body::Sequence(steps) => steps.iter().map(|m| m.model.clone()).collect(),
            Body::Dag(dag) => dag.steps.iter().map(|s| s.member.model.clone()).collect(),
            Body::Ensemble(e) => e
                .members
                .iter()
                .map(|m| m.model.clone())
                .chain(e.meta.iter().map(|m| m.model.clone()))
                .collect(),
            Body::Switch(s) => s
                .branches
                .iter()
                .map(|b| b.member.model.clone())
                .chain(s.default.iter().map(|m| m.model.clone()))
                .collect(),
            Body::Cascade(stages) => stages.iter().map(|s| s.member.model.clone()).collect(),
            Body::Splitter(routes) => routes.iter().map(|m| m.model.clone()).collect(),
            Body::Shadow {
                primary, shadow, ..
            } => vec![primary.model.clone(), shadow.model.clone()],
        }
    }
}

/// One use of a model inside a hierarchy.
#[derive(Clone)]
struct Member {
    model: Arc<Served>,
    /// The member's input ← the tensor that feeds it.
    inputs: Vec<(String, String)>,
    timeout: Option<Duration>,
    required: bool,
    weight: f64,
}

enum Body {
    Node(Arc<NodePool>),
    Sequence(Vec<Member>),
    Dag(Dag),
    Ensemble(Ensemble),
    Switch(Switch),
    Cascade(Vec<Stage>),
    Splitter(Vec<Member>),
    Shadow {
        primary: Member,
        shadow: Member,
        /// Shadow calls running at once; none free means no copy.
        slots: Arc<tokio::sync::Semaphore>,
    },
}

/// Where a DAG step's input comes from.
#[derive(Clone, Debug)]
enum Source {
    Request(String),
    Step(usize, String),
}

struct DagStep {
    id: String,
    member: Member,
    inputs: Vec<(String, Source)>,
}

struct Dag {
    steps: Vec<DagStep>,
    /// Step indices, grouped so each group depends only on earlier ones.
    levels: Vec<Vec<usize>>,
    outputs: Vec<(String, Source)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Combine {
    Vote,
    Mean,
    Weighted,
    Stacking,
}

struct Ensemble {
    members: Vec<Member>,
    combine: Combine,
    meta: Option<Member>,
    min_members: usize,
}

enum Selector {
    Equals(String),
    Predicate {
        tensor: String,
        reduce: crate::config::ReduceConfig,
        op: crate::config::CompareConfig,
        value: f64,
    },
}

struct Branch {
    selector: Selector,
    member: Member,
}

struct Switch {
    parameter: Option<String>,
    branches: Vec<Branch>,
    default: Option<Member>,
}

struct Stage {
    member: Member,
    threshold: Option<f64>,
    confidence: Option<String>,
}
