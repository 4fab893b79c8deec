//! What every hierarchy kind's build shares: looking up the models it
//! names, binding their inputs, and checking that connected models agree
//! on tensor names, types and shapes. Errors name the file, line and key.

use super::member::Member;
use super::model::Served;
use super::refs::{ModelRef, member_ref};
use crate::config::{ConfigError, ConfigFile, MemberRef, Versions};
use crate::tensor::{Dtype, TensorSpec, compatible, shape_text};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

/// Models by name.
pub type Models = BTreeMap<String, Arc<Served>>;

/// A tensor spec as an error shows it, e.g. `FP32 [N, 64]`.
pub(super) fn describe(spec: &TensorSpec) -> String {
    format!("{} {}", spec.dtype, shape_text(&spec.shape))
}

pub(super) struct Builder<'a> {
    pub file: &'a ConfigFile,
    pub models: &'a Models,
    /// How a name resolves to the version it means.
    pub versions: &'a Versions,
}

impl Builder<'_> {
    pub fn err(&self, span: Range<usize>, key: &str, message: String) -> ConfigError {
        self.file.error(span, key, message)
    }

    /// The model `r` names (checked to exist and built earlier): the
    /// version it pins, or the model's default version.
    pub fn model(&self, r: &ModelRef) -> Result<Arc<Served>, ConfigError> {
        let key = self.versions.resolve(&r.name).unwrap_or(&r.name);
        self.models.get(key).cloned().ok_or_else(|| {
            self.err(
                r.span.clone(),
                &r.key,
                format!("unknown model `{}`", r.name),
            )
        })
    }

    /// A member, its inputs renamed by `mapping` (input → source tensor).
    pub fn member(
        &self,
        r: &ModelRef,
        mapping: &BTreeMap<String, String>,
        timeout_ms: Option<u64>,
    ) -> Result<Member, ConfigError> {
        let model = self.model(r)?;
        if let Some(input) = mapping
            .keys()
            .find(|input| !model.signature.inputs.iter().any(|s| &s.name == *input))
        {
            let names: Vec<&str> = model
                .signature
                .inputs
                .iter()
                .map(|s| s.name.as_str())
                .collect();
            return Err(self
                .err(
                    r.span.clone(),
                    &format!("{}.inputs.{input}", r.key.trim_end_matches(".model")),
                    format!(
                        "`{}` has no input `{input}` (its inputs: {})",
                        r.name,
                        names.join(", ")
                    ),
                )
                .fix("map only the model's own inputs"));
        }
        let inputs = model
            .signature
            .inputs
            .iter()
            .map(|s| {
                let source = mapping.get(&s.name).unwrap_or(&s.name);
                (s.name.clone(), source.clone())
            })
            .collect();
        Ok(Member {
            model,
            inputs,
            timeout: timeout_ms.map(Duration::from_millis),
        })
    }

    /// A member fed by tensors of its inputs' own names.
    pub fn plain_member(
        &self,
        r: &ModelRef,
        timeout_ms: Option<u64>,
    ) -> Result<Member, ConfigError> {
        self.member(r, &BTreeMap::new(), timeout_ms)
    }

    /// A member written as a name or as `{ model, inputs, timeout_ms, ... }`.
    pub fn member_from(&self, m: &Spanned<MemberRef>, key: &str) -> Result<Member, ConfigError> {
        let r = member_ref(m, key);
        match m.get_ref() {
            MemberRef::Name(_) => self.plain_member(&r, None),
            MemberRef::Full(full) => self.member(&r, &full.inputs, full.timeout_ms),
        }
    }

    /// The specs a member needs from the tensors available to it.
    pub fn needs(member: &Member) -> Vec<TensorSpec> {
        member
            .inputs
            .iter()
            .zip(&member.model.signature.inputs)
            .map(|((_, source), spec)| TensorSpec {
                name: source.clone(),
                ..spec.clone()
            })
            .collect()
    }

    /// Checks `member` can be fed from `available`.
    pub fn feeds(
        &self,
        member: &Member,
        available: &[TensorSpec],
        from: &str,
        span: Range<usize>,
        key: &str,
    ) -> Result<(), ConfigError> {
        for ((input, source), want) in member.inputs.iter().zip(&member.model.signature.inputs) {
            let Some(have) = available.iter().find(|s| &s.name == source) else {
                let names: Vec<&str> = available.iter().map(|s| s.name.as_str()).collect();
                return Err(self
                    .err(span, key, format!("`{}` needs `{source}` for its input `{input}`, but {from} gives only: {}", member.name(), names.join(", ")))
                    .fix(format!("map it: inputs = {{ {input} = \"<one of those>\" }}")));
            };
            if !compatible(have, want) {
                return Err(self
                    .err(
                        span,
                        key,
                        format!(
                            "{from} gives `{source}` as {} but `{}` takes `{input}` as {}",
                            describe(have),
                            member.name(),
                            describe(want)
                        ),
                    )
                    .fix("connect tensors of the same type and shape"));
            }
        }
        Ok(())
    }

    /// Merges what several members need into one input list.
    pub fn union_inputs(
        &self,
        members: &[&Member],
        span: Range<usize>,
        key: &str,
    ) -> Result<Vec<TensorSpec>, ConfigError> {
        let mut all: Vec<TensorSpec> = Vec::new();
        for member in members {
            for spec in Self::needs(member) {
                match all.iter().find(|s| s.name == spec.name) {
                    Some(seen) if !compatible(seen, &spec) => {
                        return Err(self
                            .err(
                                span,
                                key,
                                format!(
                                    "members disagree on input `{}`: {} vs {}",
                                    spec.name,
                                    describe(seen),
                                    describe(&spec)
                                ),
                            )
                            .fix("members fed the same tensor must take the same type and shape"));
                    }
                    Some(_) => {}
                    None => all.push(spec),
                }
            }
        }
        Ok(all)
    }

    /// Checks every member answers with the same outputs as the first.
    pub fn same_outputs(
        &self,
        members: &[&Member],
        span: Range<usize>,
        key: &str,
    ) -> Result<Vec<TensorSpec>, ConfigError> {
        let Some((first, others)) = members.split_first() else {
            return Ok(Vec::new());
        };
        for other in others {
            for spec in &first.model.signature.outputs {
                let matching = other
                    .model
                    .signature
                    .outputs
                    .iter()
                    .find(|s| s.name == spec.name);
                if !matching.is_some_and(|o| compatible(o, spec)) {
                    return Err(self
                        .err(span.clone(), key, format!(
                            "`{}` and `{}` must answer alike, but `{}` is {} from the first and {} from the second",
                            first.name(),
                            other.name(),
                            spec.name,
                            describe(spec),
                            matching.map_or_else(|| "missing".to_string(), describe)
                        ))
                        .fix("use interchangeable models here"));
                }
            }
        }
        Ok(first.model.signature.outputs.clone())
    }

    /// The width (classes) of `member`'s output `output` of `dtype`.
    pub fn output_width(
        &self,
        member: &Member,
        span: Range<usize>,
        key: &str,
        output: &str,
        dtype: Dtype,
    ) -> Result<i64, ConfigError> {
        let spec = member
            .model
            .signature
            .outputs
            .iter()
            .find(|s| s.name == output);
        match spec {
            Some(s) if s.dtype == dtype => Ok(s.shape.get(1).copied().unwrap_or(-1)),
            _ => Err(self
                .err(
                    span,
                    key,
                    format!("`{}` has no {dtype} output `{output}`", member.name()),
                )
                .fix("use a classifier (outputs label, probabilities, confidence)")),
        }
    }
}

/// An output spec.
pub(super) fn spec(name: &str, dtype: Dtype, shape: &[i64]) -> TensorSpec {
    TensorSpec {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    }
}
