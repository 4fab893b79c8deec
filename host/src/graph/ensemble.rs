//! Ensemble: every member answers the same rows in parallel; their answers
//! are combined by vote, mean, weighted mean, or a stacking meta-model.
//! Soft members (all but stacking's) that fail are dropped and reported.

use super::builder::{Builder, describe, spec};
use super::context::{Context, Dropped};
use super::ensemble_votes::{classifier_outputs, tally};
use super::error::ExecError;
use super::kind::HierarchySection;
use super::member::{Member, output};
use super::model::{Built, Composition, Kind, Served};
use super::refs::{ModelRef, member_ref, model_ref};
use crate::config::{CombineConfig, ConfigError, ConfigFile, EnsembleConfig, MemberRef, Ref};
use crate::tensor::Signature;
use crate::tensor::{Dtype, NamedTensor, Tensor, TensorSpec, compatible};
use futures::future::{BoxFuture, FutureExt, join_all};
use std::collections::BTreeMap;
use std::sync::Arc;

fn refs(name: &str, e: &EnsembleConfig) -> Vec<ModelRef> {
    let mut refs: Vec<ModelRef> = e
        .members
        .iter()
        .enumerate()
        .map(|(i, m)| member_ref(m, &format!("ensemble.{name}.members[{i}]")))
        .collect();
    if let Some(meta) = &e.meta {
        refs.push(model_ref(meta, &format!("ensemble.{name}.meta")));
    }
    refs
}

/// The meta-model of a stacking ensemble, or the error that it lacks one.
fn stacking_meta<'a>(
    file: &ConfigFile,
    name: &str,
    e: &'a EnsembleConfig,
) -> Result<&'a Ref, ConfigError> {
    e.meta.as_ref().ok_or_else(|| {
        file.error(
            e.combine.span(),
            format!("ensemble.{name}.meta"),
            "stacking needs a meta-model",
        )
        .fix("add meta = \"<node that takes the members' probabilities>\"")
    })
}

fn check(file: &ConfigFile, name: &str, e: &EnsembleConfig, errors: &mut Vec<ConfigError>) {
    let key = format!("ensemble.{name}");
    let combine = *e.combine.get_ref();
    if e.members.is_empty() {
        errors.push(
            file.error(
                file.table_span("ensemble", name),
                format!("{key}.members"),
                "an ensemble needs members",
            )
            .fix("list at least two models in `members`"),
        );
    }
    let mut total = 0.0;
    for (i, member) in e.members.iter().enumerate() {
        let mkey = format!("{key}.members[{i}]");
        let (weight, required) = match member.get_ref() {
            MemberRef::Full(full) => (full.weight.as_ref(), full.required),
            MemberRef::Name(_) => (None, None),
        };
        if combine == CombineConfig::Stacking && required.is_some() {
            errors.push(
                file.error(member.span(), format!("{mkey}.required"), "every member of a stacking ensemble is required: the meta-model takes all their columns")
                    .fix("remove `required`"),
            );
        }
        match (combine, weight) {
            (CombineConfig::Weighted, None) => errors.push(
                file.error(
                    member.span(),
                    mkey,
                    "a weighted ensemble needs a weight for every member",
                )
                .fix("write the member as { model = \"...\", weight = 1.0 }"),
            ),
            (CombineConfig::Weighted, Some(w))
                if !(w.get_ref().is_finite() && *w.get_ref() >= 0.0) =>
            {
                errors.push(
                    file.error(
                        w.span(),
                        format!("{mkey}.weight"),
                        format!("weight {} is not a number >= 0", w.get_ref()),
                    )
                    .fix("use a finite weight of 0 or more"),
                )
            }
            (CombineConfig::Weighted, Some(w)) => total += w.get_ref(),
            (_, Some(w)) => errors.push(
                file.error(
                    w.span(),
                    format!("{mkey}.weight"),
                    "weights only apply to combine = \"weighted\"",
                )
                .fix("remove the weight or set combine = \"weighted\""),
            ),
            _ => {}
        }
    }
    if combine == CombineConfig::Weighted && total <= 0.0 && !e.members.is_empty() {
        errors.push(
            file.error(
                e.combine.span(),
                format!("{key}.combine"),
                "the members' weights add up to 0",
            )
            .fix("give at least one member a positive weight"),
        );
    }
    match (combine, &e.meta) {
        (CombineConfig::Stacking, _) => {
            if let Err(error) = stacking_meta(file, name, e) {
                errors.push(error);
            }
        }
        (_, Some(meta)) => errors.push(
            file.error(
                meta.span(),
                format!("{key}.meta"),
                "a meta-model only applies to combine = \"stacking\"",
            )
            .fix("remove `meta` or set combine = \"stacking\""),
        ),
        _ => {}
    }
    if let Some(min) = &e.min_members {
        let n = *min.get_ref() as usize;
        if combine == CombineConfig::Stacking {
            errors.push(
                file.error(
                    min.span(),
                    format!("{key}.min_members"),
                    "a stacking ensemble needs every member",
                )
                .fix("remove `min_members`"),
            );
        } else if n == 0 || n > e.members.len() {
            errors.push(
                file.error(
                    min.span(),
                    format!("{key}.min_members"),
                    format!("{n} is outside 1..={}", e.members.len()),
                )
                .fix("use a number between 1 and the number of members"),
            );
        }
    }
}

fn build(b: &Builder, name: &str, e: &EnsembleConfig) -> Result<Built, ConfigError> {
    let key = format!("ensemble.{name}");
    let kind = *e.combine.get_ref();
    // Members are soft (dropped and reported) unless stacked: a meta-model
    // needs every member's column.
    let soft = kind != CombineConfig::Stacking;
    let mut members = Vec::with_capacity(e.members.len());
    for (i, m) in e.members.iter().enumerate() {
        let member = b.member_from(m, &format!("{key}.members[{i}]"))?;
        let (required, weight) = match m.get_ref() {
            MemberRef::Full(full) => (
                full.required.unwrap_or(!soft),
                full.weight.as_ref().map_or(1.0, |w| *w.get_ref()),
            ),
            MemberRef::Name(_) => (!soft, 1.0),
        };
        members.push(Voice {
            member,
            required,
            weight,
        });
    }
    let span = b.file.table_span("ensemble", name);
    let all: Vec<&Member> = members.iter().map(|v| &v.member).collect();
    let inputs = b.union_inputs(&all, span, &key)?;
    let mut widths = Vec::new();
    for (i, (voice, m)) in members.iter().zip(&e.members).enumerate() {
        let mkey = format!("{key}.members[{i}]");
        let (out, dtype) = match kind {
            CombineConfig::Vote => ("label", Dtype::Int64),
            _ => ("probabilities", Dtype::Fp32),
        };
        widths.push(b.output_width(&voice.member, m.span(), &mkey, out, dtype)?);
    }
    if kind != CombineConfig::Vote
        && let Some(first) = widths.first()
        && let Some((i, w)) = widths
            .iter()
            .enumerate()
            .find(|(_, w)| *w != first && **w >= 0 && *first >= 0)
    {
        return Err(b
            .err(
                e.members[i].span(),
                &format!("{key}.members[{i}]"),
                format!(
                    "`{}` gives {w} probabilities, the first member {first}",
                    members[i].member.name()
                ),
            )
            .fix("combine only members over the same classes"));
    }
    let classes = widths.first().copied().unwrap_or(-1);
    let (combine, outputs) = match kind {
        CombineConfig::Vote => (
            Combine::Vote,
            vec![
                spec("label", Dtype::Int64, &[-1]),
                spec("agreement", Dtype::Fp32, &[-1]),
            ],
        ),
        CombineConfig::Mean | CombineConfig::Weighted => (
            Combine::Mean {
                weighted: kind == CombineConfig::Weighted,
            },
            classifier_specs(classes),
        ),
        CombineConfig::Stacking => {
            let meta = stacking_meta(b.file, name, e)?;
            let meta = stacking_meta_member(b, &key, meta, &widths)?;
            let outputs = meta.model.signature.outputs.clone();
            (Combine::Stacking(meta), outputs)
        }
    };
    let min_members = match (&e.min_members, soft) {
        (Some(n), true) => *n.get_ref() as usize,
        (None, true) => 1,
        (_, false) => members.len(),
    };
    let ensemble = Ensemble {
        members,
        combine,
        min_members,
    };
    Ok((Signature { inputs, outputs }, Box::new(ensemble)))
}

/// The meta-model, checked to take the members' probabilities side by side.
fn stacking_meta_member(
    b: &Builder,
    key: &str,
    meta: &Ref,
    widths: &[i64],
) -> Result<Member, ConfigError> {
    let r = model_ref(meta, &format!("{key}.meta"));
    let model = b.model(&r)?;
    let [input] = model.signature.inputs.as_slice() else {
        return Err(b
            .err(
                meta.span(),
                &r.key,
                format!("the meta-model `{}` must take exactly one input", r.name),
            )
            .fix("use a node whose single input takes the members' probabilities side by side"));
    };
    let total: i64 = if widths.iter().all(|w| *w >= 0) {
        widths.iter().sum()
    } else {
        -1
    };
    let stacked = spec(&input.name, Dtype::Fp32, &[-1, total]);
    if !compatible(&stacked, input) {
        return Err(b
            .err(
                meta.span(),
                &r.key,
                format!(
                    "the members' probabilities stack to {} but `{}` takes `{}` as {}",
                    describe(&stacked),
                    r.name,
                    input.name,
                    describe(input)
                ),
            )
            .fix("give the meta-model an input as wide as all members' classes together"));
    }
    let mapping = BTreeMap::new();
    b.member(&r, &mapping, None)
}

fn classifier_specs(classes: i64) -> Vec<TensorSpec> {
    vec![
        spec("label", Dtype::Int64, &[-1]),
        spec("probabilities", Dtype::Fp32, &[-1, classes]),
        spec("confidence", Dtype::Fp32, &[-1]),
    ]
}

/// One member with what only an ensemble gives it.
struct Voice {
    member: Member,
    /// A failure fails the ensemble instead of dropping the member.
    required: bool,
    /// Its share in a weighted mean.
    weight: f64,
}

enum Combine {
    Vote,
    Mean { weighted: bool },
    Stacking(Member),
}

struct Ensemble {
    members: Vec<Voice>,
    combine: Combine,
    min_members: usize,
}

impl Composition for Ensemble {
    fn members(&self) -> Vec<Arc<Served>> {
        let meta = match &self.combine {
            Combine::Stacking(meta) => Some(meta.model.clone()),
            _ => None,
        };
        self.members
            .iter()
            .map(|v| v.member.model.clone())
            .chain(meta)
            .collect()
    }

    fn run<'a>(
        &'a self,
        name: &'a str,
        context: &'a Arc<Context>,
        inputs: Vec<NamedTensor>,
    ) -> BoxFuture<'a, Result<Vec<NamedTensor>, ExecError>> {
        self.ensemble(name, context, inputs).boxed()
    }
}

impl Ensemble {
    async fn ensemble(
        &self,
        name: &str,
        context: &Arc<Context>,
        inputs: Vec<NamedTensor>,
    ) -> Result<Vec<NamedTensor>, ExecError> {
        let rows = inputs.first().map_or(0, |(_, t)| t.rows());
        // Every member binds the same request tensors: shared, not copied.
        let calls = self
            .members
            .iter()
            .map(|v| v.member.invoke(context, &inputs));
        let results = join_all(calls).await;
        let mut answers = Vec::new();
        let mut failures = Vec::new();
        for (voice, result) in self.members.iter().zip(results) {
            match result {
                Ok(outputs) => answers.push((voice, outputs)),
                Err(e) if voice.required => return Err(e),
                Err(e) => {
                    failures.push(format!("`{}`: {e}", voice.member.name()));
                    context.drop_member(Dropped {
                        hierarchy: name.to_string(),
                        model: voice.member.name().to_string(),
                        error: e.to_string(),
                    });
                }
            }
        }
        if answers.len() < self.min_members {
            return Err(ExecError::TooFewMembers {
                ensemble: name.to_string(),
                answered: answers.len(),
                needed: self.min_members,
                failures: failures.join("; "),
            });
        }
        let internal = |e: crate::tensor::TensorError| ExecError::Internal {
            model: name.to_string(),
            message: e.to_string(),
        };
        match &self.combine {
            Combine::Mean { weighted } => {
                let mut sum: Vec<f32> = Vec::new();
                let mut dims: Vec<u32> = Vec::new();
                let mut total_weight = 0.0;
                for (voice, outputs) in &answers {
                    let (probs, values) = probabilities(voice, outputs, rows)?;
                    if sum.is_empty() {
                        sum = vec![0.0; values.len()];
                        dims = probs.dims().to_vec();
                    } else if probs.dims() != dims {
                        return Err(ExecError::contract(
                            voice.member.name(),
                            format!(
                                "answered probabilities of shape {:?}, another member {dims:?}",
                                probs.dims()
                            ),
                        ));
                    }
                    let weight = if *weighted { voice.weight } else { 1.0 };
                    total_weight += weight;
                    for (s, v) in sum.iter_mut().zip(values) {
                        *s += v * weight as f32;
                    }
                }
                let mean: Vec<f32> = sum.iter().map(|s| s / total_weight as f32).collect();
                classifier_outputs(dims, mean).map_err(internal)
            }
            Combine::Vote => {
                let mut votes: Vec<Vec<i64>> = Vec::new();
                for (voice, outputs) in &answers {
                    let owner = voice.member.name();
                    let labels = output(outputs, "label", owner)?
                        .i64s()
                        .map_err(|e| ExecError::contract(owner, format!("output `label` {e}")))?;
                    if labels.len() != rows {
                        return Err(ExecError::contract(
                            owner,
                            format!("answered {} labels for {rows} rows", labels.len()),
                        ));
                    }
                    votes.push(labels);
                }
                let (labels, agreement) = tally(&votes, rows);
                Ok(vec![
                    (
                        "label".into(),
                        Tensor::from_i64(vec![rows as u32], &labels).map_err(internal)?,
                    ),
                    (
                        "agreement".into(),
                        Tensor::from_f32(vec![rows as u32], &agreement).map_err(internal)?,
                    ),
                ])
            }
            Combine::Stacking(meta) => {
                let mut columns = Vec::new();
                for (voice, outputs) in &answers {
                    let (probs, values) = probabilities(voice, outputs, rows)?;
                    let width = probs.dims().get(1).copied().unwrap_or(1) as usize;
                    columns.push((width, values));
                }
                let width: usize = columns.iter().map(|(w, _)| w).sum();
                let mut stacked = Vec::with_capacity(rows * width);
                for row in 0..rows {
                    for (w, values) in &columns {
                        stacked.extend_from_slice(&values[row * w..(row + 1) * w]);
                    }
                }
                let x = Tensor::from_f32(vec![rows as u32, width as u32], &stacked)
                    .map_err(internal)?;
                let bound = meta
                    .inputs
                    .iter()
                    .map(|(input, _)| (input.clone(), x.clone()))
                    .collect();
                meta.call(context, bound).await
            }
        }
    }
}

/// A member's `probabilities`, checked to be FP32 with one row per input
/// row (a short answer is the member's fault, whatever the client sent).
fn probabilities<'a>(
    voice: &Voice,
    outputs: &'a [NamedTensor],
    rows: usize,
) -> Result<(&'a Tensor, Vec<f32>), ExecError> {
    let owner = voice.member.name();
    let probs = output(outputs, "probabilities", owner)?;
    let values = probs
        .f32s()
        .map_err(|e| ExecError::contract(owner, format!("output `probabilities` {e}")))?;
    if probs.dims().len() != 2 || probs.rows() != rows {
        return Err(ExecError::contract(
            owner,
            format!(
                "answered probabilities of shape {:?} for {rows} rows",
                probs.dims()
            ),
        ));
    }
    Ok((probs, values))
}

impl HierarchySection for EnsembleConfig {
    fn kind(&self) -> Kind {
        Kind::Ensemble
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error_kind::ErrorKind;

    fn voice(name: &str) -> Voice {
        let signature = Signature {
            inputs: vec![],
            outputs: vec![],
        };
        Voice {
            member: Member {
                model: Arc::new(crate::graph::with_signature(name, signature)),
                inputs: vec![],
                timeout: None,
            },
            required: false,
            weight: 1.0,
        }
    }

    #[test]
    fn a_members_short_answer_is_its_failure_not_the_clients() {
        let probs = Tensor::from_f32(vec![2, 2], &[0.5; 4]).unwrap();
        let outputs = vec![("probabilities".to_string(), probs)];
        assert!(probabilities(&voice("m"), &outputs, 2).is_ok());
        let err = probabilities(&voice("m"), &outputs, 3).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PluginFailure);
        assert_eq!(
            err.to_string(),
            "`m` answered probabilities of shape [2, 2] for 3 rows"
        );
        let labels = vec![(
            "label".to_string(),
            Tensor::from_i64(vec![2], &[1, 2]).unwrap(),
        )];
        let err = probabilities(&voice("m"), &labels, 2).unwrap_err();
        assert_eq!(err.to_string(), "`m` returned no `probabilities`");
    }
}
