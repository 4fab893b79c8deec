//! DAG: steps wired by `request.NAME` / `STEP.OUTPUT` edges (skip
//! connections included), grouped into levels whose steps run concurrently.

use super::builder::{Builder, describe};
use super::context::Context;
use super::error::ExecError;
use super::kind::HierarchySection;
use super::member::{Member, output};
use super::model::{Built, Composition, Kind, Served};
use super::refs::{ModelRef, model_ref};
use crate::config::{ConfigError, ConfigFile, DagConfig};
use crate::tensor::Signature;
use crate::tensor::{NamedTensor, Tensor, TensorSpec, compatible};
use futures::future::{BoxFuture, FutureExt, join_all};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

fn refs(name: &str, d: &DagConfig) -> Vec<ModelRef> {
    d.steps
        .iter()
        .enumerate()
        .map(|(i, s)| model_ref(&s.model, &format!("dag.{name}.steps[{i}].model")))
        .collect()
}

/// `producer`'s output called `output`, or an error at `span`.
fn output_of<'m>(
    b: &Builder,
    producer: &'m Served,
    output: &str,
    span: Range<usize>,
    key: &str,
) -> Result<&'m TensorSpec, ConfigError> {
    producer
        .signature
        .outputs
        .iter()
        .find(|x| x.name == output)
        .ok_or_else(|| {
            b.err(
                span,
                key,
                format!("`{}` has no output `{output}`", producer.name),
            )
        })
}

fn build(b: &Builder, name: &str, d: &DagConfig) -> Result<Built, ConfigError> {
    let key = format!("dag.{name}");
    let ids: Vec<&str> = d.steps.iter().map(|s| s.id.get_ref().as_str()).collect();
    let mut steps: Vec<DagStep> = Vec::new();
    let mut request_inputs: Vec<TensorSpec> = Vec::new();
    for (i, s) in d.steps.iter().enumerate() {
        let skey = format!("{key}.steps[{i}]");
        let mapping: BTreeMap<String, String> = s
            .inputs
            .iter()
            .map(|(k, v)| (k.clone(), v.get_ref().clone()))
            .collect();
        let member = b.member(
            &model_ref(&s.model, &format!("{skey}.model")),
            &mapping,
            s.timeout_ms,
        )?;
        let mut inputs = Vec::new();
        for (input, source) in &member.inputs {
            let span = s
                .inputs
                .get(input)
                .map_or_else(|| s.model.span(), |r| r.span());
            let ikey = format!("{skey}.inputs.{input}");
            let want = member
                .model
                .signature
                .inputs
                .iter()
                .find(|x| &x.name == input)
                .cloned();
            let parsed = parse_source(source, &ids).map_err(|m| {
                b.err(span.clone(), &ikey, m)
                    .fix("write `request.NAME` or `STEP.OUTPUT`")
            })?;
            if let (Source::Step(from, output), Some(want)) = (&parsed, &want) {
                let producer = &steps
                    .get(*from)
                    .ok_or_else(|| {
                        b.err(
                            span.clone(),
                            &ikey,
                            format!(
                                "step `{}` comes later; list steps so inputs come first",
                                ids[*from]
                            ),
                        )
                    })?
                    .member
                    .model;
                let have = output_of(b, producer, output, span.clone(), &ikey)?;
                if !compatible(have, want) {
                    return Err(b
                        .err(
                            span,
                            &ikey,
                            format!(
                                "`{}` gives `{output}` as {} but `{}` takes `{input}` as {}",
                                producer.name,
                                describe(have),
                                member.model.name,
                                describe(want)
                            ),
                        )
                        .fix("connect tensors of the same type and shape"));
                }
            }
            if let (Source::Request(req), Some(want)) = (&parsed, &want) {
                let spec = TensorSpec {
                    name: req.clone(),
                    ..want.clone()
                };
                match request_inputs.iter().find(|x| x.name == *req) {
                    Some(seen) if !compatible(seen, &spec) => {
                        return Err(b.err(
                            span,
                            &ikey,
                            format!(
                                "request input `{req}` is used as {} and as {}",
                                describe(seen),
                                describe(&spec)
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => request_inputs.push(spec),
                }
            }
            inputs.push((input.clone(), parsed));
        }
        steps.push(DagStep {
            id: s.id.get_ref().clone(),
            member,
            inputs,
        });
    }
    let mut outputs = Vec::new();
    let mut output_specs = Vec::new();
    for (out, source) in &d.outputs {
        let okey = format!("{key}.outputs.{out}");
        let parsed =
            parse_source(source.get_ref(), &ids).map_err(|m| b.err(source.span(), &okey, m))?;
        let Source::Step(from, output) = &parsed else {
            return Err(b
                .err(
                    source.span(),
                    &okey,
                    "an output must come from a step".into(),
                )
                .fix("write `STEP.OUTPUT`"));
        };
        let producer = &steps[*from].member.model;
        let spec = output_of(b, producer, output, source.span(), &okey)?;
        output_specs.push(TensorSpec {
            name: out.clone(),
            ..spec.clone()
        });
        outputs.push((out.clone(), parsed));
    }
    let levels = levels(&steps);
    let signature = Signature {
        inputs: request_inputs,
        outputs: output_specs,
    };
    Ok((
        signature,
        Box::new(Dag {
            steps,
            levels,
            outputs,
        }),
    ))
}

fn parse_source(text: &str, ids: &[&str]) -> Result<Source, String> {
    let Some((step, tensor)) = text.split_once('.') else {
        return Err(format!("`{text}` names no step"));
    };
    if step == "request" {
        return Ok(Source::Request(tensor.to_string()));
    }
    ids.iter()
        .position(|id| *id == step)
        .map(|i| Source::Step(i, tensor.to_string()))
        .ok_or_else(|| format!("unknown step `{step}` (steps: {})", ids.join(", ")))
}

/// Groups steps so each group depends only on earlier groups.
fn levels(steps: &[DagStep]) -> Vec<Vec<usize>> {
    let mut depth = vec![0usize; steps.len()];
    for (i, step) in steps.iter().enumerate() {
        depth[i] = step
            .inputs
            .iter()
            .filter_map(|(_, s)| match s {
                Source::Step(from, _) if *from < i => Some(depth[*from] + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0);
    }
    let mut levels = vec![Vec::new(); depth.iter().max().map_or(0, |d| d + 1)];
    for (i, d) in depth.iter().enumerate() {
        levels[*d].push(i);
    }
    levels
}

/// DAG checks that need no plugin: ids, edges, order, unreachable steps.
fn check(file: &ConfigFile, name: &str, d: &DagConfig, errors: &mut Vec<ConfigError>) {
    {
        let key = format!("dag.{name}");
        let ids: Vec<&str> = d.steps.iter().map(|s| s.id.get_ref().as_str()).collect();
        for (i, s) in d.steps.iter().enumerate() {
            let id = s.id.get_ref();
            if id == "request" || ids[..i].contains(&id.as_str()) {
                errors.push(
                    file.error(
                        s.id.span(),
                        format!("{key}.steps[{i}].id"),
                        format!("step id `{id}` is reserved or used twice"),
                    )
                    .fix("give every step its own id other than `request`"),
                );
            }
            for (input, source) in &s.inputs {
                let ikey = format!("{key}.steps[{i}].inputs.{input}");
                match parse_source(source.get_ref(), &ids) {
                    Err(m) => errors.push(file.error(source.span(), ikey, m).fix("write `request.NAME` or `STEP.OUTPUT`")),
                    Ok(Source::Step(from, _)) if from == i => errors.push(file.error(source.span(), ikey, format!("cycle: step `{id}` feeds itself")).fix("a step cannot take its own output")),
                    Ok(Source::Step(from, _)) if from > i => errors.push(
                        file.error(source.span(), ikey, format!("cycle or misordering: step `{id}` takes from `{}`, listed after it", ids[from]))
                            .fix("list steps so that each comes after the steps it takes from"),
                    ),
                    Ok(_) => {}
                }
            }
        }
        // Every step must contribute to an output.
        let mut used = vec![false; d.steps.len()];
        let mut stack: Vec<usize> = d
            .outputs
            .values()
            .filter_map(|s| match parse_source(s.get_ref(), &ids) {
                Ok(Source::Step(i, _)) => Some(i),
                _ => None,
            })
            .collect();
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut used[i], true) {
                continue;
            }
            for source in d.steps[i].inputs.values() {
                if let Ok(Source::Step(from, _)) = parse_source(source.get_ref(), &ids)
                    && from < i
                {
                    stack.push(from);
                }
            }
        }
        for (i, s) in d.steps.iter().enumerate() {
            if !used[i] {
                errors.push(
                    file.error(
                        s.id.span(),
                        format!("{key}.steps[{i}]"),
                        format!(
                            "step `{}` is unreachable: no output depends on it",
                            s.id.get_ref()
                        ),
                    )
                    .fix("remove it, or use its outputs in another step or in `outputs`"),
                );
            }
        }
    }
}

/// Where a step's input comes from.
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

impl Dag {
    fn lookup(
        &self,
        inputs: &[NamedTensor],
        done: &[Option<Vec<NamedTensor>>],
        source: &Source,
    ) -> Result<Tensor, ExecError> {
        match source {
            Source::Request(name) => inputs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.clone())
                .ok_or_else(|| ExecError::BadRequest(format!("input `{name}` is missing"))),
            Source::Step(step, name) => {
                let id = &self.steps[*step].id;
                let outputs = done[*step].as_deref().ok_or_else(|| ExecError::Internal {
                    model: id.clone(),
                    message: "a step ran before its inputs".into(),
                })?;
                output(outputs, name, self.steps[*step].member.name()).cloned()
            }
        }
    }
}

impl Composition for Dag {
    fn members(&self) -> Vec<Arc<Served>> {
        self.steps.iter().map(|s| s.member.model.clone()).collect()
    }

    fn run<'a>(
        &'a self,
        _name: &'a str,
        context: &'a Arc<Context>,
        inputs: Vec<NamedTensor>,
    ) -> BoxFuture<'a, Result<Vec<NamedTensor>, ExecError>> {
        async move {
            let mut done: Vec<Option<Vec<NamedTensor>>> = vec![None; self.steps.len()];
            for level in &self.levels {
                let mut calls = Vec::with_capacity(level.len());
                for &index in level {
                    let step = &self.steps[index];
                    // Edges share tensors: a skip connection copies nothing.
                    let bound = step
                        .inputs
                        .iter()
                        .map(|(input, source)| {
                            Ok((input.clone(), self.lookup(&inputs, &done, source)?))
                        })
                        .collect::<Result<Vec<_>, ExecError>>()?;
                    calls.push(step.member.call(context, bound));
                }
                // Steps of one level do not depend on each other: run them together.
                for (&index, result) in level.iter().zip(join_all(calls).await) {
                    done[index] = Some(result?);
                }
            }
            self.outputs
                .iter()
                .map(|(name, source)| Ok((name.clone(), self.lookup(&inputs, &done, source)?)))
                .collect()
        }
        .boxed()
    }
}

impl HierarchySection for DagConfig {
    fn kind(&self) -> Kind {
        Kind::Dag
    }

    fn max_batch_rows(&self) -> Option<u32> {
        self.max_batch_rows
    }

    fn refs(&self, name: &str) -> Vec<ModelRef> {
        refs(name, self)
    }

    fn check(&self, file: &ConfigFile, name: &str, errors: &mut Vec<ConfigError>) {
        check(file, name, self, errors)
    }

    fn build(&self, b: &Builder, name: &str) -> Result<Built, ConfigError> {
        build(b, name, self)
    }
}
