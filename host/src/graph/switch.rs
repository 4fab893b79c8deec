//! Switch: one branch per request, chosen by a request parameter or by a
//! predicate on an input tensor, with an optional default.

use super::builder::Builder;
use super::context::Context;
use super::error::ExecError;
use super::kind::HierarchySection;
use super::member::Member;
use super::model::{Built, Composition, Kind, Served};
use super::refs::{ModelRef, model_ref};
use crate::config::{CompareConfig, ConfigError, ConfigFile, ReduceConfig, SwitchConfig};
use crate::tensor::NamedTensor;
use crate::tensor::Signature;
use futures::future::{BoxFuture, FutureExt};
use std::sync::Arc;

fn refs(name: &str, s: &SwitchConfig) -> Vec<ModelRef> {
    let mut refs: Vec<ModelRef> = s
        .branches
        .iter()
        .enumerate()
        .map(|(i, b)| model_ref(&b.model, &format!("switch.{name}.branches[{i}].model")))
        .collect();
    if let Some(default) = &s.default {
        refs.push(model_ref(default, &format!("switch.{name}.default")));
    }
    refs
}

fn check(file: &ConfigFile, name: &str, s: &SwitchConfig, errors: &mut Vec<ConfigError>) {
    let key = format!("switch.{name}");
    for (i, branch) in s.branches.iter().enumerate() {
        let bkey = format!("{key}.branches[{i}]");
        match (&branch.equals, &branch.when) {
            (Some(_), Some(_)) | (None, None) => errors.push(
                file.error(branch.model.span(), bkey, "a branch needs exactly one of `equals` or `when`")
                    .fix("match a request parameter with equals = \"...\" or a tensor with when = { ... }"),
            ),
            (Some(_), None) if s.parameter.is_none() => errors.push(
                file.error(branch.model.span(), format!("{bkey}.equals"), "`equals` compares the request parameter named by `parameter`, which is missing")
                    .fix(format!("add parameter = \"<request parameter>\" to [switch.{name}]")),
            ),
            _ => {}
        }
    }
}

fn build(b: &Builder, name: &str, s: &SwitchConfig) -> Result<Built, ConfigError> {
    let key = format!("switch.{name}");
    let mut branches = Vec::new();
    for (i, branch) in s.branches.iter().enumerate() {
        let r = model_ref(&branch.model, &format!("{key}.branches[{i}].model"));
        let member = b.plain_member(&r, None)?;
        // `check` lets through exactly one of `when` and `equals`.
        let selector = match &branch.when {
            Some(p) => Selector::Predicate {
                tensor: p.tensor.clone(),
                reduce: p.reduce,
                op: p.op,
                value: p.value,
            },
            None => Selector::Equals(branch.equals.clone().unwrap_or_default()),
        };
        branches.push(Branch { selector, member });
    }
    let default = match &s.default {
        Some(d) => Some(b.plain_member(&model_ref(d, &format!("{key}.default")), None)?),
        None => None,
    };
    let all: Vec<&Member> = branches
        .iter()
        .map(|b| &b.member)
        .chain(default.iter())
        .collect();
    let span = b.file.table_span("switch", name);
    let inputs = b.union_inputs(&all, span.clone(), &key)?;
    let outputs = b.same_outputs(&all, span, &key)?;
    let switch = Switch {
        parameter: s.parameter.clone(),
        branches,
        default,
    };
    Ok((Signature { inputs, outputs }, Box::new(switch)))
}

enum Selector {
    Equals(String),
    Predicate {
        tensor: String,
        reduce: ReduceConfig,
        op: CompareConfig,
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

impl Switch {
    fn choose(
        &self,
        name: &str,
        context: &Context,
        inputs: &[NamedTensor],
    ) -> Result<&Member, ExecError> {
        let parameter = self
            .parameter
            .as_ref()
            .and_then(|p| context.parameters.get(p))
            .map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        for branch in &self.branches {
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
                    predicate(&t.f64s(), *reduce, *op, *value)
                }
            };
            if taken {
                return Ok(&branch.member);
            }
        }
        self.default.as_ref().ok_or_else(|| {
            ExecError::BadRequest(match (&self.parameter, parameter) {
                (Some(p), Some(v)) => format!("switch `{name}`: no branch for {p} = `{v}`"),
                (Some(p), None) => format!("switch `{name}`: the request needs parameter `{p}`"),
                _ => format!("switch `{name}`: no branch matches this request"),
            })
        })
    }
}

/// Whether `values`, reduced, compare true against `value` (never for no
/// values).
fn predicate(values: &[f64], reduce: ReduceConfig, op: CompareConfig, value: f64) -> bool {
    if values.is_empty() {
        return false;
    }
    let reduced = match reduce {
        ReduceConfig::Max => values.iter().copied().fold(f64::MIN, f64::max),
        ReduceConfig::Min => values.iter().copied().fold(f64::MAX, f64::min),
        ReduceConfig::Mean => values.iter().sum::<f64>() / values.len() as f64,
    };
    match op {
        CompareConfig::Lt => reduced < value,
        CompareConfig::Le => reduced <= value,
        CompareConfig::Gt => reduced > value,
        CompareConfig::Ge => reduced >= value,
    }
}

impl Composition for Switch {
    fn members(&self) -> Vec<Arc<Served>> {
        self.branches
            .iter()
            .map(|b| &b.member)
            .chain(self.default.iter())
            .map(|m| m.model.clone())
            .collect()
    }

    fn run<'a>(
        &'a self,
        name: &'a str,
        context: &'a Arc<Context>,
        inputs: Vec<NamedTensor>,
    ) -> BoxFuture<'a, Result<Vec<NamedTensor>, ExecError>> {
        async move {
            let member = self.choose(name, context, &inputs)?;
            member.call(context, member.take_bound(inputs)?).await
        }
        .boxed()
    }
}

impl HierarchySection for SwitchConfig {
    fn kind(&self) -> Kind {
        Kind::Switch
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

    #[test]
    fn predicates_reduce_then_compare() {
        let v = [0.2, 0.9, 0.4];
        assert!(predicate(&v, ReduceConfig::Max, CompareConfig::Ge, 0.9));
        assert!(!predicate(&v, ReduceConfig::Max, CompareConfig::Gt, 0.9));
        assert!(predicate(&v, ReduceConfig::Min, CompareConfig::Lt, 0.3));
        assert!(predicate(&v, ReduceConfig::Mean, CompareConfig::Le, 0.5));
        assert!(!predicate(&[], ReduceConfig::Mean, CompareConfig::Le, 0.5));
    }
}
