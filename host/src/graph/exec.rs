//! Running a model: each hierarchy kind's semantics, per-member timeouts,
//! soft failures and the per-request trace.

use super::tensors::{
    argmax, f32_tensor, f32s, f64s, find, gather, i64_tensor, i64s, rows, scatter,
};
use super::{
    Body, Combine, Dag, Ensemble, ExecError, Member, Selector, Served, Source, Stage, Switch,
};
use crate::config::{CompareConfig, ReduceConfig};
use crate::runtime::NamedTensor;
use futures::future::{BoxFuture, FutureExt, join_all};
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::Instrument;

/// One inference request to a model.
#[derive(Debug, Default)]
pub struct Request {
    /// Named input tensors.
    pub inputs: Vec<NamedTensor>,
    /// Request parameters (switches read these).
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// The client's request id (splitters stick to it).
    pub id: Option<String>,
    /// Record each model's time and outcome.
    pub trace: bool,
}

/// A model's answer.
#[derive(Debug)]
pub struct Response {
    /// Named output tensors.
    pub outputs: Vec<NamedTensor>,
    /// Soft members whose failure was dropped.
    pub dropped: Vec<Dropped>,
    /// Each model's time and outcome, when asked for.
    pub trace: Vec<TraceEntry>,
}

/// A soft member that failed and was left out of the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The hierarchy it belonged to.
    pub hierarchy: String,
    /// The member.
    pub model: String,
    /// Why it failed.
    pub error: String,
}

/// One model call in a request.
#[derive(Debug, Clone)]
pub struct TraceEntry {
    /// The model.
    pub model: String,
    /// Its kind.
    pub kind: &'static str,
    /// Rows it was given.
    pub rows: usize,
    /// Wall time, in microseconds.
    pub micros: u64,
    /// `ok`, or the error.
    pub outcome: String,
}

struct Context {
    parameters: BTreeMap<String, serde_json::Value>,
    id: Option<String>,
    trace: Option<Mutex<Vec<TraceEntry>>>,
    dropped: Mutex<Vec<Dropped>>,
}

impl Context {
    fn record(&self, entry: TraceEntry) {
        if let Some(trace) = &self.trace
            && let Ok(mut trace) = trace.lock()
        {
            trace.push(entry);
        }
    }

    fn drop_member(&self, dropped: Dropped) {
        tracing::warn!(hierarchy = %dropped.hierarchy, model = %dropped.model, "soft member dropped: {}", dropped.error);
        if let Ok(mut list) = self.dropped.lock() {
            list.push(dropped);
        }
    }
}

impl Served {
    /// Answers one request.
    pub async fn run(self: &Arc<Self>, request: Request) -> Result<Response, ExecError> {
        let context = Arc::new(Context {
            parameters: request.parameters,
            id: request.id,
            trace: request.trace.then(|| Mutex::new(Vec::new())),
            dropped: Mutex::new(Vec::new()),
        });
        let outputs = self.call(&context, request.inputs).await?;
        let trace = context
            .trace
            .as_ref()
            .and_then(|t| t.lock().ok().map(|t| t.clone()))
            .unwrap_or_default();
        let dropped = context
            .dropped
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default();
        Ok(Response {
            outputs,
            dropped,
            trace,
        })
    }

    /// Runs this model, timed and traced.
    fn call<'a>(
        self: &'a Arc<Self>,
        context: &'a Arc<Context>,
        inputs: Vec<NamedTensor>,
    ) -> BoxFuture<'a, Result<Vec<NamedTensor>, ExecError>> {
        async move {
            if context.trace.is_none() {
                return self.body(context, inputs).await;
            }
            let started = Instant::now();
            let batch = inputs.first().map_or(0, |(_, t)| rows(t));
            let result = self.body(context, inputs).await;
            context.record(TraceEntry {
                model: self.name.clone(),
                kind: self.kind.name(),
                rows: batch,
                micros: started.elapsed().as_micros() as u64,
                outcome: match &result {
                    Ok(_) => "ok".to_string(),
                    Err(e) => e.to_string(),
                },
            });
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
            Body::Node(pool) => pool.infer(inputs).await.map_err(|source| ExecError::Node {
                node: self.name.clone(),
                source,
            }),
            Body::Sequence(steps) => {
                let mut current = inputs;
                for step in steps {
                    let inputs = take_bound(step, current)?;
                    current = call_bound(step, context, inputs).await?;
                }
                Ok(current)
            }
            Body::Dag(dag) => run_dag(dag, context, inputs).await,
            Body::Ensemble(ensemble) => run_ensemble(&self.name, ensemble, context, inputs).await,
            Body::Switch(switch) => {
                let member = choose_branch(&self.name, switch, context, &inputs)?;
                call_bound(member, context, take_bound(member, inputs)?).await
            }
            Body::Cascade(stages) => run_cascade(&self.name, stages, context, inputs).await,
            Body::Splitter(routes) => {
                let member = choose_route(routes, context.id.as_deref());
                call_bound(member, context, take_bound(member, inputs)?).await
            }
            Body::Shadow {
                primary,
                shadow,
                slots,
            } => {
                spawn_shadow(&self.name, shadow, slots, context, &inputs);
                call_bound(primary, context, take_bound(primary, inputs)?).await
            }
        }
    }
}

/// Sends a copy of the request to a shadow, on a task of its own that can
/// never delay or fail the primary: at most its slots at once (a request
/// finding none free sends no copy, counted), within the shadow's timeout,
/// with the request's parameters and id so switches and splitters inside
/// it route as they would for the primary.
fn spawn_shadow(
    owner: &str,
    shadow: &Member,
    slots: &Arc<tokio::sync::Semaphore>,
    context: &Context,
    inputs: &[NamedTensor],
) {
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        crate::metrics::shadow_dropped(owner);
        tracing::debug!(shadow = %owner, "shadow busy: no copy sent");
        return;
    };
    let copy = bind(shadow, inputs);
    let shadow = shadow.clone();
    let owner = owner.to_string();
    let copied = Arc::new(Context {
        parameters: context.parameters.clone(),
        id: context.id.clone(),
        trace: None,
        dropped: Mutex::new(Vec::new()),
    });
    tokio::spawn(
        async move {
            match copy {
                Ok(inputs) => match call_bound(&shadow, &copied, inputs).await {
                    Ok(_) => {
                        tracing::debug!(shadow = %owner, model = %shadow.model.name, "shadow answered")
                    }
                    Err(e) => {
                        tracing::warn!(shadow = %owner, model = %shadow.model.name, "shadow failed: {e}")
                    }
                },
                Err(e) => tracing::warn!(shadow = %owner, "shadow not called: {e}"),
            }
            drop(slot);
        }
        // The request's span (its id) follows the shadow's log lines.
        .in_current_span(),
    );
}

/// The member's inputs, renamed from the tensors available to it (copied:
/// for members that share the tensors, e.g. an ensemble's).
fn bind(member: &Member, available: &[NamedTensor]) -> Result<Vec<NamedTensor>, ExecError> {
    member
        .inputs
        .iter()
        .map(|(input, source)| {
            available
                .iter()
                .find(|(name, _)| name == source)
                .map(|(_, t)| (input.clone(), t.clone()))
                .ok_or_else(|| missing(member, source, available))
        })
        .collect()
}

/// The member's inputs, moved out of tensors no one else needs: a layer's
/// outputs become the next layer's inputs without copying their data.
fn take_bound(
    member: &Member,
    mut available: Vec<NamedTensor>,
) -> Result<Vec<NamedTensor>, ExecError> {
    let mut bound = Vec::with_capacity(member.inputs.len());
    for (i, (input, source)) in member.inputs.iter().enumerate() {
        let Some(at) = available.iter().position(|(name, _)| name == source) else {
            return Err(missing(member, source, &available));
        };
        let used_again = member.inputs[i + 1..].iter().any(|(_, s)| s == source);
        let tensor = if used_again {
            available[at].1.clone()
        } else {
            available.swap_remove(at).1
        };
        bound.push((input.clone(), tensor));
    }
    Ok(bound)
}

fn missing(member: &Member, source: &str, available: &[NamedTensor]) -> ExecError {
    let have: Vec<&str> = available.iter().map(|(n, _)| n.as_str()).collect();
    ExecError::BadRequest(format!(
        "`{}` needs input `{source}`, not given (given: {})",
        member.model.name,
        have.join(", ")
    ))
}

/// Calls a member on the tensors available to it, within its timeout.
async fn invoke(
    member: &Member,
    context: &Arc<Context>,
    available: &[NamedTensor],
) -> Result<Vec<NamedTensor>, ExecError> {
    let inputs = bind(member, available)?;
    call_bound(member, context, inputs).await
}

async fn call_bound(
    member: &Member,
    context: &Arc<Context>,
    inputs: Vec<NamedTensor>,
) -> Result<Vec<NamedTensor>, ExecError> {
    let call = member.model.call(context, inputs);
    match member.timeout {
        None => call.await,
        Some(limit) => tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            Err(ExecError::Timeout {
                model: member.model.name.clone(),
                millis: limit.as_millis(),
            })
        }),
    }
}

async fn run_dag(
    dag: &Dag,
    context: &Arc<Context>,
    inputs: Vec<NamedTensor>,
) -> Result<Vec<NamedTensor>, ExecError> {
    let mut done: Vec<Option<Vec<NamedTensor>>> = vec![None; dag.steps.len()];
    let lookup = |done: &[Option<Vec<NamedTensor>>], source: &Source| -> Result<_, ExecError> {
        match source {
            Source::Request(name) => inputs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| ExecError::BadRequest(format!("input `{name}` is missing"))),
            Source::Step(step, name) => done[*step]
                .as_deref()
                .ok_or_else(|| ExecError::Contract("a step ran before its inputs".into()))
                .and_then(|out| find(out, name, &dag.steps[*step].id).cloned()),
        }
    };
    for level in &dag.levels {
        let mut calls = Vec::with_capacity(level.len());
        for &index in level {
            let step = &dag.steps[index];
            let bound = step
                .inputs
                .iter()
                .map(|(input, source)| Ok((input.clone(), lookup(&done, source)?)))
                .collect::<Result<Vec<_>, ExecError>>()?;
            calls.push(call_bound(&step.member, context, bound));
        }
        // Steps of one level do not depend on each other: run them together.
        for (&index, result) in level.iter().zip(join_all(calls).await) {
            done[index] = Some(result?);
        }
    }
    dag.outputs
        .iter()
        .map(|(name, source)| Ok((name.clone(), lookup(&done, source)?)))
        .collect()
}

async fn run_ensemble(
    name: &str,
    ensemble: &Ensemble,
    context: &Arc<Context>,
    inputs: Vec<NamedTensor>,
) -> Result<Vec<NamedTensor>, ExecError> {
    let results = join_all(ensemble.members.iter().map(|m| invoke(m, context, &inputs))).await;
    let mut answers = Vec::new();
    let mut failures = Vec::new();
    for (member, result) in ensemble.members.iter().zip(results) {
        match result {
            Ok(outputs) => answers.push((member, outputs)),
            Err(e) if member.required => return Err(e),
            Err(e) => {
                failures.push(format!("`{}`: {e}", member.model.name));
                context.drop_member(Dropped {
                    hierarchy: name.to_string(),
                    model: member.model.name.clone(),
                    error: e.to_string(),
                });
            }
        }
    }
    if answers.len() < ensemble.min_members {
        return Err(ExecError::TooFewMembers {
            ensemble: name.to_string(),
            answered: answers.len(),
            needed: ensemble.min_members,
            failures: failures.join("; "),
        });
    }
    match ensemble.combine {
        Combine::Mean | Combine::Weighted => {
            let weighted = ensemble.combine == Combine::Weighted;
            let mut sum: Vec<f32> = Vec::new();
            let mut dims = Vec::new();
            let mut total_weight = 0.0;
            for (member, outputs) in &answers {
                let probs = find(outputs, "probabilities", &member.model.name)?;
                let values = f32s(probs, &format!("`{}`'s probabilities", member.model.name))?;
                if sum.is_empty() {
                    sum = vec![0.0; values.len()];
                    dims = probs.dimensions.clone();
                } else if probs.dimensions != dims {
                    return Err(ExecError::Contract(format!(
                        "ensemble `{name}`: members disagree on the shape of probabilities ({dims:?} vs {:?})",
                        probs.dimensions
                    )));
                }
                let weight = if weighted { member.weight } else { 1.0 };
                total_weight += weight;
                for (s, v) in sum.iter_mut().zip(values) {
                    *s += v * weight as f32;
                }
            }
            let probabilities: Vec<f32> = sum.iter().map(|s| s / total_weight as f32).collect();
            Ok(classifier_outputs(dims, probabilities))
        }
        Combine::Vote => {
            let mut votes: Vec<Vec<i64>> = Vec::new();
            for (member, outputs) in &answers {
                let label = find(outputs, "label", &member.model.name)?;
                votes.push(i64s(label, &format!("`{}`'s label", member.model.name))?);
            }
            let batch = votes.first().map_or(0, Vec::len);
            if votes.iter().any(|v| v.len() != batch) {
                return Err(ExecError::Contract(format!(
                    "ensemble `{name}`: members returned different numbers of labels"
                )));
            }
            let mut labels = Vec::with_capacity(batch);
            let mut agreement = Vec::with_capacity(batch);
            for row in 0..batch {
                // Most votes wins; on a tie, the label the earliest member chose.
                let mut best = (0usize, votes[0][row]);
                for ballot in &votes {
                    let count = votes.iter().filter(|v| v[row] == ballot[row]).count();
                    if count > best.0 {
                        best = (count, ballot[row]);
                    }
                }
                labels.push(best.1);
                agreement.push(best.0 as f32 / votes.len() as f32);
            }
            Ok(vec![
                ("label".into(), i64_tensor(vec![batch as u32], &labels)),
                (
                    "agreement".into(),
                    f32_tensor(vec![batch as u32], &agreement),
                ),
            ])
        }
        Combine::Stacking => {
            let meta = ensemble.meta.as_ref().ok_or_else(|| {
                ExecError::Contract(format!("ensemble `{name}` has no meta-model"))
            })?;
            let mut parts = Vec::new();
            for (member, outputs) in &answers {
                let probs = find(outputs, "probabilities", &member.model.name)?;
                parts.push((probs.dimensions.clone(), f32s(probs, "probabilities")?));
            }
            let batch = parts
                .first()
                .map_or(0, |(d, _)| d.first().copied().unwrap_or(0))
                as usize;
            let widths: Vec<usize> = parts
                .iter()
                .map(|(d, _)| d.get(1).copied().unwrap_or(1) as usize)
                .collect();
            let mut stacked = Vec::with_capacity(batch * widths.iter().sum::<usize>());
            for row in 0..batch {
                for ((_, values), width) in parts.iter().zip(&widths) {
                    stacked.extend_from_slice(
                        values.get(row * width..(row + 1) * width).unwrap_or(&[]),
                    );
                }
            }
            let x = f32_tensor(
                vec![batch as u32, widths.iter().sum::<usize>() as u32],
                &stacked,
            );
            let input = meta
                .inputs
                .first()
                .map_or_else(|| "x".to_string(), |(i, _)| i.clone());
            call_bound(meta, context, vec![(input, x)]).await
        }
    }
}

/// `probabilities`, `label` (argmax) and `confidence` (max) for one batch.
fn classifier_outputs(dims: Vec<u32>, probabilities: Vec<f32>) -> Vec<NamedTensor> {
    let classes = dims.get(1).copied().unwrap_or(1).max(1) as usize;
    let batch = probabilities.len() / classes;
    let mut labels = Vec::with_capacity(batch);
    let mut confidence = Vec::with_capacity(batch);
    for row in probabilities.chunks_exact(classes) {
        let best = argmax(row);
        labels.push(best as i64);
        confidence.push(row[best]);
    }
    vec![
        ("label".into(), i64_tensor(vec![batch as u32], &labels)),
        ("probabilities".into(), f32_tensor(dims, &probabilities)),
        (
            "confidence".into(),
            f32_tensor(vec![batch as u32], &confidence),
        ),
    ]
}

fn choose_branch<'a>(
    name: &str,
    switch: &'a Switch,
    context: &Context,
    inputs: &[NamedTensor],
) -> Result<&'a Member, ExecError> {
    let parameter = switch
        .parameter
        .as_ref()
        .and_then(|p| context.parameters.get(p))
        .map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    for branch in &switch.branches {
        let taken = match &branch.selector {
            Selector::Equals(expected) => parameter.as_deref() == Some(expected.as_str()),
            Selector::Predicate {
                tensor,
                reduce,
                op,
                value,
            } => {
                let Some((_, t)) = inputs.iter().find(|(n, _)| n == tensor) else {
                    return Err(ExecError::BadRequest(format!(
                        "switch `{name}` tests input `{tensor}`, which the request lacks"
                    )));
                };
                let values = f64s(t);
                if values.is_empty() {
                    false
                } else {
                    let reduced = match reduce {
                        ReduceConfig::Max => values.iter().copied().fold(f64::MIN, f64::max),
                        ReduceConfig::Min => values.iter().copied().fold(f64::MAX, f64::min),
                        ReduceConfig::Mean => values.iter().sum::<f64>() / values.len() as f64,
                    };
                    match op {
                        CompareConfig::Lt => reduced < *value,
                        CompareConfig::Le => reduced <= *value,
                        CompareConfig::Gt => reduced > *value,
                        CompareConfig::Ge => reduced >= *value,
                    }
                }
            }
        };
        if taken {
            return Ok(&branch.member);
        }
    }
    switch.default.as_ref().ok_or_else(|| {
        ExecError::BadRequest(match (&switch.parameter, parameter) {
            (Some(p), Some(v)) => format!("switch `{name}`: no branch for {p} = `{v}`"),
            (Some(p), None) => format!("switch `{name}`: the request needs parameter `{p}`"),
            _ => format!("switch `{name}`: no branch matches this request"),
        })
    })
}

fn choose_route<'a>(routes: &'a [Member], id: Option<&str>) -> &'a Member {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // Sticky by request id: the same id always lands on the same route.
    let draw = match id {
        Some(id) => {
            let mut hasher = std::hash::DefaultHasher::new();
            id.hash(&mut hasher);
            hasher.finish()
        }
        None => std::hash::RandomState::new().hash_one(COUNTER.fetch_add(1, Ordering::Relaxed)),
    };
    let total: f64 = routes.iter().map(|r| r.weight).sum();
    let mut point = (draw as f64 / u64::MAX as f64) * total;
    for route in routes {
        if point < route.weight {
            return route;
        }
        point -= route.weight;
    }
    &routes[routes.len() - 1]
}

async fn run_cascade(
    name: &str,
    stages: &[Stage],
    context: &Arc<Context>,
    inputs: Vec<NamedTensor>,
) -> Result<Vec<NamedTensor>, ExecError> {
    let total = inputs.first().map_or(0, |(_, t)| rows(t));
    let mut pending: Vec<usize> = (0..total).collect();
    let mut answered: Vec<(Vec<usize>, Vec<NamedTensor>)> = Vec::new();
    let mut stage_of = vec![0i64; total];
    for (index, stage) in stages.iter().enumerate() {
        if pending.is_empty() {
            break;
        }
        let subset: Vec<NamedTensor> = if pending.len() == total {
            inputs.clone()
        } else {
            inputs
                .iter()
                .map(|(n, t)| Ok((n.clone(), gather(t, &pending, n)?)))
                .collect::<Result<_, ExecError>>()?
        };
        let outputs = invoke(&stage.member, context, &subset).await?;
        let accept: Vec<bool> = match stage.threshold {
            None => vec![true; pending.len()],
            Some(threshold) => confidences(name, stage, &outputs)?
                .into_iter()
                .map(|c| f64::from(c) >= threshold)
                .collect(),
        };
        if accept.len() != pending.len() {
            return Err(ExecError::Contract(format!(
                "cascade `{name}`: `{}` gave {} confidences for {} rows",
                stage.member.model.name,
                accept.len(),
                pending.len()
            )));
        }
        let (mut kept, mut rest) = (Vec::new(), Vec::new());
        let mut kept_at = Vec::new();
        for (i, (&row, ok)) in pending.iter().zip(&accept).enumerate() {
            if *ok {
                kept.push(row);
                kept_at.push(i);
                stage_of[row] = index as i64;
            } else {
                rest.push(row);
            }
        }
        if !kept.is_empty() {
            let outputs = if rest.is_empty() {
                outputs
            } else {
                outputs
                    .iter()
                    .map(|(n, t)| Ok((n.clone(), gather(t, &kept_at, n)?)))
                    .collect::<Result<_, ExecError>>()?
            };
            answered.push((kept, outputs));
        }
        pending = rest;
    }
    let Some((_, first)) = answered.first() else {
        return Ok(vec![("stage".into(), i64_tensor(vec![0], &[]))]);
    };
    let mut merged = Vec::new();
    for (output, _) in first {
        let parts = answered
            .iter()
            .map(|(picked, outputs)| Ok((picked.as_slice(), find(outputs, output, name)?)))
            .collect::<Result<Vec<_>, ExecError>>()?;
        merged.push((output.clone(), scatter(&parts, total, output)?));
    }
    merged.push(("stage".into(), i64_tensor(vec![total as u32], &stage_of)));
    Ok(merged)
}

/// Each row's confidence: a named output, or the max of `probabilities`.
fn confidences(name: &str, stage: &Stage, outputs: &[NamedTensor]) -> Result<Vec<f32>, ExecError> {
    let owner = &stage.member.model.name;
    match &stage.confidence {
        Some(output) => f32s(
            find(outputs, output, owner)?,
            &format!("cascade `{name}`: `{owner}`'s {output}"),
        ),
        None => {
            let probs = find(outputs, "probabilities", owner)?;
            let classes = probs.dimensions.get(1).copied().unwrap_or(1).max(1) as usize;
            let values = f32s(
                probs,
                &format!("cascade `{name}`: `{owner}`'s probabilities"),
            )?;
            Ok(values
                .chunks_exact(classes)
                .map(|row| row.iter().copied().fold(f32::MIN, f32::max))
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Signature;

    fn member(inputs: &[(&str, &str)]) -> Member {
        let model = Served::with_signature(
            "m",
            Signature {
                inputs: vec![],
                outputs: vec![],
            },
        );
        Member {
            model: Arc::new(model),
            inputs: inputs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            timeout: None,
            required: true,
            weight: 1.0,
        }
    }

    #[test]
    fn moved_inputs_are_renamed_and_a_shared_source_is_copied() {
        let available = vec![
            ("x".to_string(), f32_tensor(vec![1], &[1.0])),
            ("y".to_string(), f32_tensor(vec![1], &[2.0])),
        ];
        let bound = take_bound(&member(&[("a", "x"), ("b", "y"), ("c", "x")]), available).unwrap();
        let names: Vec<&str> = bound.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(bound[0].1, bound[2].1);
        assert_eq!(bound[1].1, f32_tensor(vec![1], &[2.0]));
        let err = take_bound(&member(&[("a", "z")]), vec![]).unwrap_err();
        assert_eq!(err.to_string(), "`m` needs input `z`, not given (given: )");
    }
}
