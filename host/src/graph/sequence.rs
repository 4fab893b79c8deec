//! Sequence: layer after layer, each step's outputs feeding the next.

use super::builder::Builder;
use super::context::Context;
use super::error::ExecError;
use super::kind::HierarchySection;
use super::member::Member;
use super::model::{Built, Composition, Kind, Served};
use super::refs::{ModelRef, member_ref};
use crate::config::{ConfigError, ConfigFile, MemberRef, SequenceConfig};
use crate::tensor::NamedTensor;
use crate::tensor::Signature;
use futures::future::{BoxFuture, FutureExt};
use std::sync::Arc;

fn refs(name: &str, s: &SequenceConfig) -> Vec<ModelRef> {
    s.steps
        .iter()
        .enumerate()
        .map(|(i, m)| member_ref(m, &format!("sequence.{name}.steps[{i}]")))
        .collect()
}

/// Every step runs and feeds the next: a step cannot be optional, and
/// weights mean nothing here.
fn check(file: &ConfigFile, name: &str, s: &SequenceConfig, errors: &mut Vec<ConfigError>) {
    for (i, step) in s.steps.iter().enumerate() {
        let MemberRef::Full(full) = step.get_ref() else {
            continue;
        };
        let key = format!("sequence.{name}.steps[{i}]");
        if full.required.is_some() {
            errors.push(
                file.error(
                    step.span(),
                    format!("{key}.required"),
                    "every step of a sequence is required: its outputs feed the next",
                )
                .fix("remove `required`"),
            );
        }
        if let Some(w) = &full.weight {
            errors.push(
                file.error(
                    w.span(),
                    format!("{key}.weight"),
                    "a sequence's steps have no weights",
                )
                .fix("remove `weight` (weights apply to weighted ensembles and splitter routes)"),
            );
        }
    }
}

fn build(b: &Builder, name: &str, s: &SequenceConfig) -> Result<Built, ConfigError> {
    let key = format!("sequence.{name}");
    let mut steps: Vec<Member> = Vec::new();
    let mut inputs = Vec::new();
    for (i, step) in s.steps.iter().enumerate() {
        let skey = format!("{key}.steps[{i}]");
        let member = b.member_from(step, &skey)?;
        match steps.last() {
            None => inputs = Builder::needs(&member),
            Some(previous) => b.feeds(
                &member,
                &previous.model.signature.outputs,
                &format!("`{}`", previous.name()),
                step.span(),
                &skey,
            )?,
        }
        steps.push(member);
    }
    let outputs = steps
        .last()
        .map(|m| m.model.signature.outputs.clone())
        .unwrap_or_default();
    Ok((Signature { inputs, outputs }, Box::new(Sequence { steps })))
}

struct Sequence {
    steps: Vec<Member>,
}

impl Composition for Sequence {
    fn members(&self) -> Vec<Arc<Served>> {
        self.steps.iter().map(|m| m.model.clone()).collect()
    }

    fn run<'a>(
        &'a self,
        _name: &'a str,
        context: &'a Arc<Context>,
        inputs: Vec<NamedTensor>,
    ) -> BoxFuture<'a, Result<Vec<NamedTensor>, ExecError>> {
        async move {
            let mut current = inputs;
            for step in &self.steps {
                let inputs = step.take_bound(current)?;
                current = step.call(context, inputs).await?;
            }
            Ok(current)
        }
        .boxed()
    }
}

impl HierarchySection for SequenceConfig {
    fn kind(&self) -> Kind {
        Kind::Sequence
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
