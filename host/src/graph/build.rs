//! Building hierarchies from config once the nodes are running, checking
//! that connected models agree on tensor names, types and shapes.

use super::check::{HierarchyOrder, member_ref, model_ref};
use super::{Body, Branch, Combine, Ensemble, Kind, Member, Selector, Served, Stage, Switch};
use crate::config::{CombineConfig, ConfigError, ConfigErrors, ConfigFile, MemberRef};
use crate::nn::{Signature, shape_text};
use crate::runtime::{Dtype, NodePool, TensorSpec};
use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

type Models = BTreeMap<String, Arc<Served>>;

/// Every node and hierarchy as a servable model, type-checked.
pub fn build_models(
    file: &ConfigFile,
    order: &HierarchyOrder,
    nodes: BTreeMap<String, Arc<NodePool>>,
) -> Result<Models, ConfigErrors> {
    let mut models: Models = nodes
        .into_iter()
        .map(|(name, pool)| {
            let max_rows = file.config.nodes.get(&name).and_then(|n| n.max_batch_rows);
            (name.clone(), Arc::new(Served::node(&name, pool, max_rows)))
        })
        .collect();
    let mut errors = Vec::new();
    for name in &order.0 {
        let builder = Builder {
            file,
            models: &models,
        };
        match builder.hierarchy(name) {
            Ok(served) => {
                models.insert(name.clone(), Arc::new(served));
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(models)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(ConfigErrors(errors))
    }
}

pub(super) struct Builder<'a> {
    file: &'a ConfigFile,
    models: &'a Models,
}

pub(super) fn compatible(producer: &TensorSpec, consumer: &TensorSpec) -> bool {
    producer.dtype == consumer.dtype
        && producer.shape.len() == consumer.shape.len()
        && producer
            .shape
            .iter()
            .zip(&consumer.shape)
            .all(|(&a, &b)| a < 0 || b < 0 || a == b)
}

pub(super) fn describe(spec: &TensorSpec) -> String {
    format!("{} {}", spec.dtype, shape_text(&spec.shape))
}

impl Builder<'_> {
    pub(super) fn err(&self, span: Range<usize>, key: &str, message: String) -> ConfigError {
        self.file.error(span, key, message)
    }

    fn model(&self, r: &super::check::ModelRef) -> Result<Arc<Served>, ConfigError> {
        self.models.get(&r.name).cloned().ok_or_else(|| {
            self.err(
                r.span.clone(),
                &r.key,
                format!("unknown model `{}`", r.name),
            )
        })
    }

    /// A member, its inputs renamed by `mapping` (input → source tensor).
    pub(super) fn member(
        &self,
        r: &super::check::ModelRef,
        mapping: &BTreeMap<String, String>,
        timeout_ms: Option<u64>,
        required: bool,
        weight: f64,
    ) -> Result<Member, ConfigError> {
        let model = self.model(r)?;
        for input in mapping.keys() {
            if !model.signature.inputs.iter().any(|s| &s.name == input) {
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
        }
        let inputs = model
            .signature
            .inputs
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    mapping
                        .get(&s.name)
                        .cloned()
                        .unwrap_or_else(|| s.name.clone()),
                )
            })
            .collect();
        Ok(Member {
            model,
            inputs,
            timeout: timeout_ms.map(Duration::from_millis),
            required,
            weight,
        })
    }

    fn member_from(
        &self,
        m: &Spanned<MemberRef>,
        key: &str,
        default_required: bool,
    ) -> Result<Member, ConfigError> {
        let r = member_ref(m, key);
        match m.get_ref() {
            MemberRef::Name(_) => self.member(&r, &BTreeMap::new(), None, default_required, 1.0),
            MemberRef::Full(full) => self.member(
                &r,
                &full.inputs,
                full.timeout_ms,
                full.required.unwrap_or(default_required),
                full.weight.as_ref().map_or(1.0, |w| *w.get_ref()),
            ),
        }
    }

    /// The specs a member needs from the tensors available to it.
    fn needs(member: &Member) -> Vec<TensorSpec> {
        member
            .inputs
            .iter()
            .filter_map(|(input, source)| {
                member
                    .model
                    .signature
                    .inputs
                    .iter()
                    .find(|s| &s.name == input)
                    .map(|s| TensorSpec {
                        name: source.clone(),
                        ..s.clone()
                    })
            })
            .collect()
    }

    /// Checks `member` can be fed from `available`.
    fn feeds(
        &self,
        member: &Member,
        available: &[TensorSpec],
        from: &str,
        span: Range<usize>,
        key: &str,
    ) -> Result<(), ConfigError> {
        for (input, source) in &member.inputs {
            let Some(want) = member
                .model
                .signature
                .inputs
                .iter()
                .find(|s| &s.name == input)
            else {
                continue;
            };
            let Some(have) = available.iter().find(|s| &s.name == source) else {
                let names: Vec<&str> = available.iter().map(|s| s.name.as_str()).collect();
                return Err(self
                    .err(span, key, format!("`{}` needs `{source}` for its input `{input}`, but {from} gives only: {}", member.model.name, names.join(", ")))
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
                            member.model.name,
                            describe(want)
                        ),
                    )
                    .fix("connect tensors of the same type and shape"));
            }
        }
        Ok(())
    }

    /// Merges what several members need into one input list.
    fn union_inputs(
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
    fn same_outputs(
        &self,
        members: &[&Member],
        span: Range<usize>,
        key: &str,
    ) -> Result<Vec<TensorSpec>, ConfigError> {
        let Some(first) = members.first() else {
            return Ok(Vec::new());
        };
        for other in &members[1..] {
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
                            first.model.name,
                            other.model.name,
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

    fn probability_width(
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
                    format!("`{}` has no {dtype} output `{output}`", member.model.name),
                )
                .fix("use a classifier (outputs label, probabilities, confidence)")),
        }
    }

    fn hierarchy(&self, name: &str) -> Result<Served, ConfigError> {
        let c = &self.file.config;
        let (kind, signature, body) = if let Some(s) = c.sequence.get(name) {
            let key = format!("sequence.{name}");
            let mut steps = Vec::new();
            let mut available: Option<Vec<TensorSpec>> = None;
            let mut inputs = Vec::new();
            for (i, step) in s.steps.iter().enumerate() {
                let skey = format!("{key}.steps[{i}]");
                let member = self.member_from(step, &skey, true)?;
                match &available {
                    None => inputs = Self::needs(&member),
                    Some(prev) => self.feeds(
                        &member,
                        prev,
                        &format!(
                            "`{}`",
                            steps.last().map_or("", |m: &Member| m.model.name.as_str())
                        ),
                        step.span(),
                        &skey,
                    )?,
                }
                available = Some(member.model.signature.outputs.clone());
                steps.push(member);
            }
            let outputs = available.unwrap_or_default();
            (
                Kind::Sequence,
                Signature { inputs, outputs },
                Body::Sequence(steps),
            )
        } else if let Some(d) = c.dag.get(name) {
            self.dag(name, d)?
        } else if let Some(e) = c.ensemble.get(name) {
            self.ensemble(name, e)?
        } else if let Some(s) = c.switch.get(name) {
            let key = format!("switch.{name}");
            let mut branches = Vec::new();
            for (i, b) in s.branches.iter().enumerate() {
                let member = self.member(
                    &model_ref(&b.model, &format!("{key}.branches[{i}].model")),
                    &BTreeMap::new(),
                    None,
                    true,
                    1.0,
                )?;
                let selector = match (&b.equals, &b.when) {
                    (Some(v), _) => Selector::Equals(v.clone()),
                    (None, Some(p)) => Selector::Predicate {
                        tensor: p.tensor.clone(),
                        reduce: p.reduce,
                        op: p.op,
                        value: p.value,
                    },
                    (None, None) => Selector::Equals(String::new()),
                };
                branches.push(Branch { selector, member });
            }
            let default = match &s.default {
                Some(d) => Some(self.member(
                    &model_ref(d, &format!("{key}.default")),
                    &BTreeMap::new(),
                    None,
                    true,
                    1.0,
                )?),
                None => None,
            };
            let all: Vec<&Member> = branches
                .iter()
                .map(|b| &b.member)
                .chain(default.iter())
                .collect();
            let span = self.file.table_span("switch", name);
            let inputs = self.union_inputs(&all, span.clone(), &key)?;
            let outputs = self.same_outputs(&all, span, &key)?;
            (
                Kind::Switch,
                Signature { inputs, outputs },
                Body::Switch(Switch {
                    parameter: s.parameter.clone(),
                    branches,
                    default,
                }),
            )
        } else if let Some(s) = c.cascade.get(name) {
            let key = format!("cascade.{name}");
            let mut stages = Vec::new();
            for (i, st) in s.stages.iter().enumerate() {
                let skey = format!("{key}.stages[{i}]");
                let member = self.member(
                    &model_ref(&st.model, &format!("{skey}.model")),
                    &BTreeMap::new(),
                    st.timeout_ms,
                    true,
                    1.0,
                )?;
                if st.threshold.is_some() {
                    match &st.confidence {
                        Some(output) => {
                            self.probability_width(
                                &member,
                                st.model.span(),
                                &format!("{skey}.confidence"),
                                output,
                                Dtype::Fp32,
                            )?;
                        }
                        None => {
                            self.probability_width(
                                &member,
                                st.model.span(),
                                &skey,
                                "probabilities",
                                Dtype::Fp32,
                            )?;
                        }
                    }
                }
                stages.push(Stage {
                    member,
                    threshold: st.threshold.as_ref().map(|t| *t.get_ref()),
                    confidence: st.confidence.clone(),
                });
            }
            let all: Vec<&Member> = stages.iter().map(|s| &s.member).collect();
            let span = self.file.table_span("cascade", name);
            let inputs = self.union_inputs(&all, span.clone(), &key)?;
            let mut outputs = self.same_outputs(&all, span, &key)?;
            outputs.push(TensorSpec {
                name: "stage".into(),
                dtype: Dtype::Int64,
                shape: vec![-1],
            });
            (
                Kind::Cascade,
                Signature { inputs, outputs },
                Body::Cascade(stages),
            )
        } else if let Some(s) = c.splitter.get(name) {
            let key = format!("splitter.{name}");
            let mut routes = Vec::new();
            for (i, r) in s.routes.iter().enumerate() {
                routes.push(self.member(
                    &model_ref(&r.model, &format!("{key}.routes[{i}].model")),
                    &r.inputs,
                    r.timeout_ms,
                    true,
                    r.weight.as_ref().map_or(0.0, |w| *w.get_ref()),
                )?);
            }
            let all: Vec<&Member> = routes.iter().collect();
            let span = self.file.table_span("splitter", name);
            let inputs = self.union_inputs(&all, span.clone(), &key)?;
            let outputs = self.same_outputs(&all, span, &key)?;
            (
                Kind::Splitter,
                Signature { inputs, outputs },
                Body::Splitter(routes),
            )
        } else if let Some(s) = c.shadow.get(name) {
            let key = format!("shadow.{name}");
            let primary = self.member(
                &model_ref(&s.primary, &format!("{key}.primary")),
                &BTreeMap::new(),
                None,
                true,
                1.0,
            )?;
            let shadow = self.member(
                &model_ref(&s.shadow, &format!("{key}.shadow")),
                &BTreeMap::new(),
                Some(s.timeout_ms.unwrap_or(10_000)),
                false,
                1.0,
            )?;
            let inputs = Self::needs(&primary);
            self.feeds(
                &shadow,
                &inputs,
                "the primary's request",
                s.shadow.span(),
                &format!("{key}.shadow"),
            )?;
            let signature = Signature {
                inputs,
                outputs: primary.model.signature.outputs.clone(),
            };
            let slots = s.max_in_flight.unwrap_or(16).max(1) as usize;
            let body = Body::Shadow {
                primary,
                shadow,
                slots: Arc::new(tokio::sync::Semaphore::new(slots)),
            };
            (Kind::Shadow, signature, body)
        } else {
            return Err(self.err(0..0, name, format!("no hierarchy `{name}`")));
        };
        let mut served = Served {
            name: name.to_string(),
            kind,
            signature,
            max_rows: None,
            body,
        };
        // Its own limit, or the tightest of the models it calls: a row it
        // accepts must fit every member it may reach.
        served.max_rows = max_rows_override(c, name)
            .map(|n| n as usize)
            .or_else(|| served.members().iter().filter_map(|m| m.max_rows).min());
        Ok(served)
    }

    fn ensemble(
        &self,
        name: &str,
        e: &crate::config::EnsembleConfig,
    ) -> Result<(Kind, Signature, Body), ConfigError> {
        let key = format!("ensemble.{name}");
        let combine = match e.combine.get_ref() {
            CombineConfig::Vote => Combine::Vote,
            CombineConfig::Mean => Combine::Mean,
            CombineConfig::Weighted => Combine::Weighted,
            CombineConfig::Stacking => Combine::Stacking,
        };
        // Members are soft (dropped and reported) unless stacked: a meta-model
        // needs every member's column.
        let soft = combine != Combine::Stacking;
        let members = e
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| self.member_from(m, &format!("{key}.members[{i}]"), !soft))
            .collect::<Result<Vec<_>, _>>()?;
        let span = self.file.table_span("ensemble", name);
        let all: Vec<&Member> = members.iter().collect();
        let inputs = self.union_inputs(&all, span.clone(), &key)?;
        let mut widths = Vec::new();
        for (i, (member, m)) in members.iter().zip(&e.members).enumerate() {
            let mkey = format!("{key}.members[{i}]");
            let width = match combine {
                Combine::Vote => {
                    self.probability_width(member, m.span(), &mkey, "label", Dtype::Int64)?
                }
                _ => {
                    self.probability_width(member, m.span(), &mkey, "probabilities", Dtype::Fp32)?
                }
            };
            widths.push(width);
        }
        if combine != Combine::Vote
            && let Some(first) = widths.first()
            && let Some((i, w)) = widths
                .iter()
                .enumerate()
                .find(|(_, w)| *w != first && **w >= 0 && *first >= 0)
        {
            return Err(self
                .err(
                    e.members[i].span(),
                    &format!("{key}.members[{i}]"),
                    format!(
                        "`{}` gives {w} probabilities, the first member {first}",
                        members[i].model.name
                    ),
                )
                .fix("combine only members over the same classes"));
        }
        let classes = widths.first().copied().unwrap_or(-1);
        let mut meta = None;
        let outputs = match combine {
            Combine::Vote => vec![
                TensorSpec {
                    name: "label".into(),
                    dtype: Dtype::Int64,
                    shape: vec![-1],
                },
                TensorSpec {
                    name: "agreement".into(),
                    dtype: Dtype::Fp32,
                    shape: vec![-1],
                },
            ],
            Combine::Mean | Combine::Weighted => vec![
                TensorSpec {
                    name: "label".into(),
                    dtype: Dtype::Int64,
                    shape: vec![-1],
                },
                TensorSpec {
                    name: "probabilities".into(),
                    dtype: Dtype::Fp32,
                    shape: vec![-1, classes],
                },
                TensorSpec {
                    name: "confidence".into(),
                    dtype: Dtype::Fp32,
                    shape: vec![-1],
                },
            ],
            Combine::Stacking => {
                let Some(meta_ref) = &e.meta else {
                    return Err(self.err(
                        e.combine.span(),
                        &format!("{key}.meta"),
                        "stacking needs a meta-model".into(),
                    ));
                };
                let r = model_ref(meta_ref, &format!("{key}.meta"));
                let model = self.model(&r)?;
                let [input] = model.signature.inputs.as_slice() else {
                    return Err(self
                        .err(meta_ref.span(), &r.key, format!("the meta-model `{}` must take exactly one input", r.name))
                        .fix("use a node whose single input takes the members' probabilities side by side"));
                };
                let total: i64 = if widths.iter().all(|w| *w >= 0) {
                    widths.iter().sum()
                } else {
                    -1
                };
                let stacked = TensorSpec {
                    name: input.name.clone(),
                    dtype: Dtype::Fp32,
                    shape: vec![-1, total],
                };
                if !compatible(&stacked, input) {
                    return Err(self
                        .err(
                            meta_ref.span(),
                            &r.key,
                            format!(
                                "the members' probabilities stack to {} but `{}` takes `{}` as {}",
                                describe(&stacked),
                                r.name,
                                input.name,
                                describe(input)
                            ),
                        )
                        .fix(
                            "give the meta-model an input as wide as all members' classes together",
                        ));
                }
                let outputs = model.signature.outputs.clone();
                let inputs = vec![(input.name.clone(), input.name.clone())];
                meta = Some(Member {
                    model: model.clone(),
                    inputs,
                    timeout: None,
                    required: true,
                    weight: 1.0,
                });
                outputs
            }
        };
        let min_members = match (&e.min_members, combine) {
            (Some(n), _) => *n.get_ref() as usize,
            (None, Combine::Stacking) => members.len(),
            (None, _) => 1,
        };
        Ok((
            Kind::Ensemble,
            Signature { inputs, outputs },
            Body::Ensemble(Ensemble {
                members,
                combine,
                meta,
                min_members,
            }),
        ))
    }
}

/// The operator's `max_batch_rows` for hierarchy `name`, if set.
fn max_rows_override(c: &crate::config::Config, name: &str) -> Option<u32> {
    c.sequence
        .get(name)
        .and_then(|h| h.max_batch_rows)
        .or_else(|| c.dag.get(name).and_then(|h| h.max_batch_rows))
        .or_else(|| c.ensemble.get(name).and_then(|h| h.max_batch_rows))
        .or_else(|| c.switch.get(name).and_then(|h| h.max_batch_rows))
        .or_else(|| c.cascade.get(name).and_then(|h| h.max_batch_rows))
        .or_else(|| c.splitter.get(name).and_then(|h| h.max_batch_rows))
        .or_else(|| c.shadow.get(name).and_then(|h| h.max_batch_rows))
}
