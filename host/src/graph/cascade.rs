//! Cascade: rows go to the first stage; rows it is not confident about
//! (below its threshold) escalate to the next, and so on. Each row's answer
//! comes from the stage that kept it, and `stage` says which.

use super::builder::{Builder, spec};
use super::context::Context;
use super::error::ExecError;
use super::kind::HierarchySection;
use super::member::{Member, output};
use super::model::{Built, Composition, Kind, Served};
use super::refs::{ModelRef, model_ref};
use crate::config::{CascadeConfig, ConfigError, ConfigFile};
use crate::tensor::Signature;
use crate::tensor::{Dtype, NamedTensor, Tensor, scatter};
use futures::future::{BoxFuture, FutureExt};
use std::sync::Arc;

fn refs(name: &str, s: &CascadeConfig) -> Vec<ModelRef> {
    s.stages
        .iter()
        .enumerate()
        .map(|(i, st)| model_ref(&st.model, &format!("cascade.{name}.stages[{i}].model")))
        .collect()
}

fn check(file: &ConfigFile, name: &str, s: &CascadeConfig, errors: &mut Vec<ConfigError>) {
    let key = format!("cascade.{name}");
    if s.stages.len() < 2 {
        errors.push(
            file.error(
                file.table_span("cascade", name),
                format!("{key}.stages"),
                "a cascade needs at least two stages",
            )
            .fix("add the model to escalate to"),
        );
    }
    let last = s.stages.len().saturating_sub(1);
    for (i, stage) in s.stages.iter().enumerate() {
        let skey = format!("{key}.stages[{i}]");
        match &stage.threshold {
            None if i < last => errors.push(
                file.error(
                    stage.model.span(),
                    format!("{skey}.threshold"),
                    "every stage but the last needs a threshold",
                )
                .fix("add threshold = 0.9 (rows at or above it stop here)"),
            ),
            Some(t) if i == last => errors.push(
                file.error(
                    t.span(),
                    format!("{skey}.threshold"),
                    "the last stage answers every row left",
                )
                .fix("remove its threshold"),
            ),
            Some(t) if !(0.0..=1.0).contains(t.get_ref()) => errors.push(
                file.error(
                    t.span(),
                    format!("{skey}.threshold"),
                    format!("threshold {} is outside 0..=1", t.get_ref()),
                )
                .fix("confidence is a probability: use a threshold between 0 and 1"),
            ),
            _ => {}
        }
        if i == last && stage.confidence.is_some() {
            errors.push(
                file.error(
                    stage.model.span(),
                    format!("{skey}.confidence"),
                    "the last stage answers every row left: its confidence is never read",
                )
                .fix("remove `confidence`"),
            );
        }
    }
}

fn build(b: &Builder, name: &str, s: &CascadeConfig) -> Result<Built, ConfigError> {
    let key = format!("cascade.{name}");
    let mut stages = Vec::new();
    for (i, st) in s.stages.iter().enumerate() {
        let skey = format!("{key}.stages[{i}]");
        let r = model_ref(&st.model, &format!("{skey}.model"));
        let member = b.plain_member(&r, st.timeout_ms)?;
        let threshold = match &st.threshold {
            Some(threshold) => {
                let (output, ckey) = match &st.confidence {
                    Some(output) => (output.clone(), format!("{skey}.confidence")),
                    None => ("probabilities".to_string(), skey.clone()),
                };
                b.output_width(&member, st.model.span(), &ckey, &output, Dtype::Fp32)?;
                Some(Threshold {
                    value: *threshold.get_ref(),
                    confidence: st.confidence.clone(),
                })
            }
            None => None,
        };
        stages.push(Stage {
            member,
            threshold,
            answered: crate::metrics::cascade_rows(name, i),
        });
    }
    let all: Vec<&Member> = stages.iter().map(|s| &s.member).collect();
    let span = b.file.table_span("cascade", name);
    let inputs = b.union_inputs(&all, span.clone(), &key)?;
    let mut outputs = b.same_outputs(&all, span, &key)?;
    outputs.push(spec("stage", Dtype::Int64, &[-1]));
    Ok((Signature { inputs, outputs }, Box::new(Cascade { stages })))
}

struct Threshold {
    value: f64,
    /// The output holding each row's confidence; the max of
    /// `probabilities` when unset.
    confidence: Option<String>,
}

struct Stage {
    member: Member,
    /// Every stage but the last has one.
    threshold: Option<Threshold>,
    /// Rows this stage answered (a handle, so a call counts without a lookup).
    answered: metrics::Counter,
}

struct Cascade {
    stages: Vec<Stage>,
}

impl Stage {
    /// Which of `rows` rows this stage keeps.
    fn keeps(&self, outputs: &[NamedTensor], rows: usize) -> Result<Vec<bool>, ExecError> {
        let Some(threshold) = &self.threshold else {
            return Ok(vec![true; rows]);
        };
        let owner = self.member.name();
        let bad = |name: &str, e: crate::tensor::TensorError| {
            ExecError::contract(owner, format!("output `{name}` {e}"))
        };
        let confidences = match &threshold.confidence {
            Some(name) => output(outputs, name, owner)?
                .f32s()
                .map_err(|e| bad(name, e))?,
            None => {
                let probs = output(outputs, "probabilities", owner)?;
                let classes = probs.dims().get(1).copied().unwrap_or(1).max(1) as usize;
                probs
                    .f32s()
                    .map_err(|e| bad("probabilities", e))?
                    .chunks_exact(classes)
                    .map(|row| row.iter().copied().fold(f32::MIN, f32::max))
                    .collect()
            }
        };
        if confidences.len() != rows {
            return Err(ExecError::contract(
                owner,
                format!("gave {} confidences for {rows} rows", confidences.len()),
            ));
        }
        Ok(confidences
            .into_iter()
            // In the outputs' own precision: a confidence of 0.9f32 meets a
            // threshold of 0.9.
            .map(|c| c >= threshold.value as f32)
            .collect())
    }
}

impl Composition for Cascade {
    fn members(&self) -> Vec<Arc<Served>> {
        self.stages.iter().map(|s| s.member.model.clone()).collect()
    }

    fn run<'a>(
        &'a self,
        name: &'a str,
        context: &'a Arc<Context>,
        inputs: Vec<NamedTensor>,
    ) -> BoxFuture<'a, Result<Vec<NamedTensor>, ExecError>> {
        self.cascade(name, context, inputs).boxed()
    }
}

impl Cascade {
    async fn cascade(
        &self,
        name: &str,
        context: &Arc<Context>,
        inputs: Vec<NamedTensor>,
    ) -> Result<Vec<NamedTensor>, ExecError> {
        let total = inputs.first().map_or(0, |(_, t)| t.rows());
        let mut pending: Vec<usize> = (0..total).collect();
        let mut answered: Vec<(Vec<usize>, Vec<NamedTensor>)> = Vec::new();
        let mut stage_of = vec![0i64; total];
        for (index, stage) in self.stages.iter().enumerate() {
            if pending.is_empty() {
                break;
            }
            // All rows go to the first stage as they are (shared, not copied).
            let subset = inputs
                .iter()
                .map(|(n, t)| {
                    let rows = t.gather(&pending).map_err(|_| {
                        ExecError::BadRequest(format!(
                            "input `{n}` has {} rows; every input of cascade `{name}` needs {total}",
                            t.rows()
                        ))
                    })?;
                    Ok((n.clone(), rows))
                })
                .collect::<Result<Vec<_>, ExecError>>()?;
            let outputs = stage.member.invoke(context, &subset).await?;
            let owner = stage.member.name();
            if let Some((n, t)) = outputs.iter().find(|(_, t)| t.rows() != pending.len()) {
                return Err(ExecError::contract(
                    owner,
                    format!(
                        "answered `{n}` with {} rows for {} rows",
                        t.rows(),
                        pending.len()
                    ),
                ));
            }
            let keeps = stage.keeps(&outputs, pending.len())?;
            let (mut kept, mut rest, mut kept_at) = (Vec::new(), Vec::new(), Vec::new());
            for (i, (&row, keep)) in pending.iter().zip(&keeps).enumerate() {
                if *keep {
                    kept.push(row);
                    kept_at.push(i);
                    stage_of[row] = index as i64;
                } else {
                    rest.push(row);
                }
            }
            if !kept.is_empty() {
                stage.answered.increment(kept.len() as u64);
                let outputs = outputs
                    .iter()
                    .map(|(n, t)| {
                        let rows = t
                            .gather(&kept_at)
                            .map_err(|e| ExecError::contract(owner, e))?;
                        Ok((n.clone(), rows))
                    })
                    .collect::<Result<_, ExecError>>()?;
                answered.push((kept, outputs));
            }
            pending = rest;
        }
        let internal = |message: String| ExecError::Internal {
            model: name.to_string(),
            message,
        };
        let stage =
            Tensor::from_i64(vec![total as u32], &stage_of).map_err(|e| internal(e.to_string()))?;
        let Some((_, first)) = answered.first() else {
            return Ok(vec![("stage".into(), stage)]);
        };
        let mut merged = Vec::with_capacity(first.len() + 1);
        for (out, _) in first {
            let parts = answered
                .iter()
                .map(|(picked, outputs)| Ok((picked.as_slice(), output(outputs, out, name)?)))
                .collect::<Result<Vec<_>, ExecError>>()?;
            let whole = scatter(&parts, total).map_err(|e| {
                ExecError::contract(
                    name,
                    format!("got differing answers for `{out}` from its stages: {e}"),
                )
            })?;
            merged.push((out.clone(), whole));
        }
        merged.push(("stage".into(), stage));
        Ok(merged)
    }
}

impl HierarchySection for CascadeConfig {
    fn kind(&self) -> Kind {
        Kind::Cascade
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

    fn stage(confidence: Option<&str>) -> Stage {
        let signature = Signature {
            inputs: vec![],
            outputs: vec![],
        };
        Stage {
            member: Member {
                model: Arc::new(crate::graph::with_signature("student", signature)),
                inputs: vec![],
                timeout: None,
            },
            threshold: Some(Threshold {
                value: 0.9,
                confidence: confidence.map(str::to_string),
            }),
            answered: metrics::Counter::noop(),
        }
    }

    #[test]
    fn rows_at_or_above_the_threshold_stay() {
        let probs = Tensor::from_f32(vec![3, 2], &[0.95, 0.05, 0.5, 0.5, 0.1, 0.9]).unwrap();
        let outputs = vec![("probabilities".to_string(), probs)];
        assert_eq!(stage(None).keeps(&outputs, 3).unwrap(), [true, false, true]);
    }

    #[test]
    fn a_stage_that_answers_the_wrong_rows_fails_as_the_plugin() {
        let confidence = Tensor::from_f32(vec![2], &[0.95, 0.1]).unwrap();
        let outputs = vec![("score".to_string(), confidence)];
        let err = stage(Some("score")).keeps(&outputs, 3).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PluginFailure);
        assert_eq!(err.to_string(), "`student` gave 2 confidences for 3 rows");
        let wrong_type = vec![(
            "score".to_string(),
            Tensor::from_i64(vec![3], &[1, 1, 1]).unwrap(),
        )];
        let err = stage(Some("score")).keeps(&wrong_type, 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`student` output `score` must be FP32, got INT64"
        );
    }
}
