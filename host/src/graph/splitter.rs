//! Splitter: each request goes to one route, drawn by weight (sticky by
//! request id), e.g. for A/B traffic.

use super::builder::Builder;
use super::context::Context;
use super::error::ExecError;
use super::kind::HierarchySection;
use super::member::Member;
use super::model::{Built, Composition, Kind, Served};
use super::refs::{ModelRef, model_ref};
use crate::config::{ConfigError, ConfigFile, SplitterConfig};
use crate::tensor::NamedTensor;
use crate::tensor::Signature;
use futures::future::{BoxFuture, FutureExt};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

fn refs(name: &str, s: &SplitterConfig) -> Vec<ModelRef> {
    s.routes
        .iter()
        .enumerate()
        .map(|(i, r)| model_ref(&r.model, &format!("splitter.{name}.routes[{i}].model")))
        .collect()
}

fn check(file: &ConfigFile, name: &str, s: &SplitterConfig, errors: &mut Vec<ConfigError>) {
    let key = format!("splitter.{name}");
    let mut total = 0.0;
    for (i, route) in s.routes.iter().enumerate() {
        if route.required.is_some() {
            errors.push(
                file.error(
                    route.model.span(),
                    format!("{key}.routes[{i}].required"),
                    "a route answers the whole request: it cannot be optional",
                )
                .fix("remove `required`"),
            );
        }
        match &route.weight {
            None => errors.push(
                file.error(
                    route.model.span(),
                    format!("{key}.routes[{i}].weight"),
                    "every route needs a weight",
                )
                .fix("add weight = <share of traffic>"),
            ),
            Some(w) if !(w.get_ref().is_finite() && *w.get_ref() >= 0.0) => errors.push(
                file.error(
                    w.span(),
                    format!("{key}.routes[{i}].weight"),
                    format!("weight {} is not a number >= 0", w.get_ref()),
                )
                .fix("use a finite weight of 0 or more"),
            ),
            Some(w) => total += w.get_ref(),
        }
    }
    if total <= 0.0 && s.routes.iter().all(|r| r.weight.is_some()) {
        errors.push(
            file.error(
                file.table_span("splitter", name),
                format!("{key}.routes"),
                "the routes' weights add up to 0",
            )
            .fix("give at least one route a positive weight"),
        );
    }
}

fn build(b: &Builder, name: &str, s: &SplitterConfig) -> Result<Built, ConfigError> {
    let key = format!("splitter.{name}");
    let mut routes = Vec::new();
    for (i, r) in s.routes.iter().enumerate() {
        let member = b.member(
            &model_ref(&r.model, &format!("{key}.routes[{i}].model")),
            &r.inputs,
            r.timeout_ms,
        )?;
        let weight = r.weight.as_ref().map_or(0.0, |w| *w.get_ref());
        routes.push(Route { member, weight });
    }
    let all: Vec<&Member> = routes.iter().map(|r| &r.member).collect();
    let span = b.file.table_span("splitter", name);
    let inputs = b.union_inputs(&all, span.clone(), &key)?;
    let outputs = b.same_outputs(&all, span, &key)?;
    Ok((Signature { inputs, outputs }, Box::new(Splitter { routes })))
}

struct Route {
    member: Member,
    weight: f64,
}

struct Splitter {
    routes: Vec<Route>,
}

impl Splitter {
    fn choose(&self, id: Option<&str>) -> Option<&Member> {
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
        let total: f64 = self.routes.iter().map(|r| r.weight).sum();
        let mut point = (draw as f64 / u64::MAX as f64) * total;
        for route in &self.routes {
            if point < route.weight {
                return Some(&route.member);
            }
            point -= route.weight;
        }
        // Rounding can leave the point at the very end.
        self.routes.last().map(|r| &r.member)
    }
}

impl Composition for Splitter {
    fn members(&self) -> Vec<Arc<Served>> {
        self.routes.iter().map(|r| r.member.model.clone()).collect()
    }

    fn run<'a>(
        &'a self,
        name: &'a str,
        context: &'a Arc<Context>,
        inputs: Vec<NamedTensor>,
    ) -> BoxFuture<'a, Result<Vec<NamedTensor>, ExecError>> {
        async move {
            let member = self
                .choose(context.id.as_deref())
                .ok_or_else(|| ExecError::Internal {
                    model: name.to_string(),
                    message: "a splitter without routes".into(),
                })?;
            member.call(context, member.take_bound(inputs)?).await
        }
        .boxed()
    }
}

impl HierarchySection for SplitterConfig {
    fn kind(&self) -> Kind {
        Kind::Splitter
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
