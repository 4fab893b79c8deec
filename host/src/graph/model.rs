//! A model clients can call, node or hierarchy, and how one is run: a node
//! through its instance pool, a hierarchy through its kind's
//! [`Composition`]; every call timed and traced the same way.

use super::context::{Context, Request, Response, TraceEntry};
use super::error::ExecError;
use crate::runtime::{Batcher, NodePool};
use crate::tensor::NamedTensor;
use crate::tensor::Signature;
use futures::future::{BoxFuture, FutureExt};
use std::sync::Arc;
use std::time::Instant;

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
    /// A model's traffic moving from one version to another.
    Rollout,
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
            Kind::Rollout => "rollout",
        }
    }
}

/// What a kind's build makes: the hierarchy's signature and its run.
pub(super) type Built = (Signature, Box<dyn Composition>);

/// How one hierarchy kind runs its members; each kind's file has one.
pub(super) trait Composition: Send + Sync {
    /// The models it calls directly.
    fn members(&self) -> Vec<Arc<Served>>;

    /// Where it stands, for kinds that change while they serve (a
    /// rollout's step and figures).
    fn status(&self) -> Option<super::RolloutStatus> {
        None
    }

    /// Answers `inputs` for the hierarchy called `name`.
    fn run<'a>(
        &'a self,
        name: &'a str,
        context: &'a Arc<Context>,
        inputs: Vec<NamedTensor>,
    ) -> BoxFuture<'a, Result<Vec<NamedTensor>, ExecError>>;
}

enum Body {
    /// A node's pool, and its batcher when it batches.
    Node(Arc<NodePool>, Option<Arc<Batcher>>),
    Hierarchy(Box<dyn Composition>),
}

/// A model clients can call: a node or a hierarchy.
pub struct Served {
    /// Its section's key: the model's name, with `@N` for a version N > 1
    /// (see [`Served::model_name`] and [`Served::version`]).
    pub name: String,
    /// Its kind.
    pub kind: Kind,
    /// What it takes and returns.
    pub signature: Signature,
    /// The most rows one request may send, when it has a limit.
    pub max_rows: Option<usize>,
    body: Body,
    /// A hierarchy's call latency (a node's is its pool's).
    timer: Option<metrics::Histogram>,
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
            body: Body::Node(pool, None),
            timer: None,
        }
    }

    /// The same node, its calls merged by `batcher` when there is one.
    pub(super) fn batched_by(mut self, batcher: Option<Arc<Batcher>>) -> Served {
        if let Body::Node(_, slot) = &mut self.body {
            *slot = batcher;
        }
        self
    }

    /// The platform metadata reports: `aimass_` and its kind.
    pub fn platform(&self) -> String {
        format!("aimass_{}", self.kind.name())
    }

    /// The model's name without its version (`m` for the section `m@2`).
    pub fn model_name(&self) -> &str {
        crate::config::split_version(&self.name).0
    }

    /// Its version: N for the section `m@N`, else 1.
    pub fn version(&self) -> u64 {
        crate::config::split_version(&self.name).1
    }

    /// The batcher, when this model is a node that batches.
    pub fn batcher(&self) -> Option<&Arc<Batcher>> {
        match &self.body {
            Body::Node(_, batcher) => batcher.as_ref(),
            Body::Hierarchy(_) => None,
        }
    }

    /// A hierarchy; without a limit of its own it takes the tightest of
    /// its members', as a row it accepts must fit every member it may reach.
    pub(super) fn hierarchy(
        name: &str,
        kind: Kind,
        signature: Signature,
        max_rows: Option<u32>,
        composition: Box<dyn Composition>,
    ) -> Served {
        let max_rows = max_rows.map(|n| n as usize).or_else(|| {
            composition
                .members()
                .iter()
                .filter_map(|m| m.max_rows)
                .min()
        });
        Served {
            name: name.to_string(),
            kind,
            signature,
            max_rows,
            body: Body::Hierarchy(composition),
            timer: Some(crate::metrics::hierarchy_timer(name)),
        }
    }

    /// The instance pool, when this model is a node.
    pub fn pool(&self) -> Option<&Arc<NodePool>> {
        match &self.body {
            Body::Node(pool, _) => Some(pool),
            Body::Hierarchy(_) => None,
        }
    }

    /// Where a hierarchy that changes while it serves stands (a rollout).
    pub fn status(&self) -> Option<super::RolloutStatus> {
        match &self.body {
            Body::Node(..) => None,
            Body::Hierarchy(composition) => composition.status(),
        }
    }

    /// The nodes and hierarchies this one calls directly.
    pub fn members(&self) -> Vec<Arc<Served>> {
        match &self.body {
            Body::Node(..) => vec![],
            Body::Hierarchy(composition) => composition.members(),
        }
    }

    /// Answers one request; when the request is in this model's capture
    /// sample, its record keeps the request's inputs, the answer (or its
    /// failure) and the kept inner models' outputs.
    pub async fn run(self: &Arc<Self>, request: Request) -> Result<Response, ExecError> {
        let context = Arc::new(Context::new(
            request.parameters,
            (request.id, request.log_id),
            request.trace,
            request.capture,
        ));
        let captured = context
            .capture
            .as_ref()
            .and_then(|scope| scope.sink(&scope.top))
            .map(|sink| crate::capture::Pending::start(sink, &request.inputs));
        let result = self.call(&context, request.inputs).await;
        let version = context.chosen_version();
        if let (Some(pending), Some(scope)) = (captured, &context.capture) {
            pending.finish(
                &scope.id,
                version.unwrap_or_else(|| self.version()),
                result.as_deref(),
                context.take_kept(),
            );
        }
        let (trace, dropped) = context.finish();
        Ok(Response {
            outputs: result?,
            dropped,
            trace,
            version,
        })
    }

    /// Runs this model inside a request: timed (a hierarchy), traced when
    /// asked, its outputs kept and its call captured when the request says
    /// so.
    pub(super) fn call<'a>(
        self: &'a Arc<Self>,
        context: &'a Arc<Context>,
        inputs: Vec<NamedTensor>,
    ) -> BoxFuture<'a, Result<Vec<NamedTensor>, ExecError>> {
        async move {
            let captured = context
                .capture
                .as_ref()
                .and_then(|scope| scope.inner_sink(self.model_name()))
                .map(|sink| crate::capture::Pending::start(sink, &inputs));
            let rows = inputs.first().map_or(0, |(_, t)| t.rows());
            // The clock is read only when something uses it.
            let started = (self.timer.is_some() || context.tracing()).then(Instant::now);
            let result = self.body(context, inputs).await;
            let took = started.map(|s| s.elapsed()).unwrap_or_default();
            if let Some(timer) = &self.timer {
                timer.record(took.as_secs_f64());
            }
            if context.tracing() {
                context.record(TraceEntry {
                    model: self.name.clone(),
                    kind: self.kind.name(),
                    rows,
                    micros: took.as_micros() as u64,
                    outcome: match &result {
                        Ok(_) => "ok".to_string(),
                        Err(e) => e.to_string(),
                    },
                });
            }
            if let Ok(outputs) = &result
                && context.keeps(&self.name)
            {
                context.keep_outputs(&self.name, outputs);
            }
            if let (Some(pending), Some(scope)) = (captured, &context.capture) {
                pending.finish(&scope.id, self.version(), result.as_deref(), Vec::new());
            }
            result
        }
        .boxed()
    }

    async fn body(
        self: &Arc<Self>,
        context: &Arc<Context>,
        inputs: Vec<NamedTensor>,
    ) -> Result<Vec<NamedTensor>, ExecError> {
        match &self.body {
            Body::Node(pool, batcher) => {
                // The executor calls a node the same way whether it batches.
                let answer = match batcher {
                    Some(batcher) => batcher.infer(inputs, context.log_id.as_deref()).await,
                    None => pool.infer(inputs).await,
                };
                answer.map_err(|source| ExecError::Node {
                    node: self.name.clone(),
                    source,
                })
            }
            Body::Hierarchy(composition) => composition.run(&self.name, context, inputs).await,
        }
    }
}

/// A model with `signature` that calls nothing and answers nothing, for
/// tests of what surrounds a model (decoding, binding, the service).
#[cfg(test)]
pub(crate) fn with_signature(name: &str, signature: Signature) -> Served {
    struct Nothing;
    impl Composition for Nothing {
        fn members(&self) -> Vec<Arc<Served>> {
            Vec::new()
        }
        fn run<'a>(
            &'a self,
            _: &'a str,
            _: &'a Arc<Context>,
            _: Vec<NamedTensor>,
        ) -> BoxFuture<'a, Result<Vec<NamedTensor>, ExecError>> {
            async { Ok(Vec::new()) }.boxed()
        }
    }
    Served::hierarchy(name, Kind::Sequence, signature, None, Box::new(Nothing))
}
