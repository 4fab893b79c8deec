//! Hierarchies: models made of other models (nodes or hierarchies), built
//! from the operator's config, type-checked before serving, and run here.
//!
//! Every hierarchy is a model in its own right: it has a signature and
//! answers `run` like a node does, so hierarchies nest.
//!
//! Layers, each importing only those below it:
//! - the shared core: `error`, `context` (one request's shared state),
//!   `model` (a served model and the `Composition` each kind
//!   implements), `member` (binding and calling one member), `refs` (where
//!   the config names models), `builder` (what every build checks), `kind`
//!   (the `HierarchySection` trait every kind implements: its references,
//!   checks, build, row limit and where its table is; and `sections`, the
//!   one list of kinds);
//! - one file per kind, holding its checks, its build and its run:
//!   `sequence`, `dag`, `ensemble`, `switch`, `cascade`, `splitter`,
//!   `shadow`, and `rollout` (a model's traffic moving between versions);
//! - `check`, `build` and `closure`, which go through the trait.

mod batching;
mod build;
mod builder;
mod capture;
mod cascade;
mod check;
mod closure;
mod context;
mod dag;
mod ensemble;
mod ensemble_votes;
mod error;
mod kind;
mod member;
mod model;
mod refs;
mod rollout;
mod rollout_evidence;
mod sequence;
mod shadow;
mod splitter;
mod switch;

pub use build::build_models;
pub use builder::Models;
pub use check::{HierarchyOrder, check_references};
pub use closure::{describe, model_closure, model_users};
pub use context::{Dropped, Request, Response, TraceEntry};
pub use error::ExecError;
#[cfg(test)]
pub(crate) use model::with_signature;
pub use model::{Kind, Served};
pub use rollout::RolloutStatus;
