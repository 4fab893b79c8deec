//! What the service decides for capture: the id a request is captured
//! under, and the columns a model's capture declares. The records
//! themselves are made where every model call is run (`graph`'s
//! `Served::run` and `call`), the called model's like the inner ones'.

use super::InferRequest;
use crate::capture::Declared;
use crate::graph::Served;
use crate::tensor::{Dtype, TensorSpec};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The id a request is captured under: its body's `id`, else its
/// `x-request-id`, else a new one (a request not through a server).
pub(super) fn capture_id(request: &InferRequest) -> String {
    request
        .id
        .clone()
        .or_else(|| request.request_id.clone())
        .unwrap_or_else(fresh_id)
}

fn fresh_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "capture-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The tensors `model`'s capture keeps, as its served versions declare
/// them (and those of the `inner` models it keeps).
pub(super) fn declared(served: &[Arc<Served>], model: &str, inner: &[String]) -> Declared {
    fn versions_of<'a>(
        served: &'a [Arc<Served>],
        name: &'a str,
    ) -> impl Iterator<Item = &'a crate::tensor::Signature> + 'a {
        served
            .iter()
            .filter(move |s| s.model_name() == name)
            .map(|s| &s.signature)
    }
    let union = |specs: &mut dyn Iterator<Item = &TensorSpec>| {
        let mut all: Vec<(String, Dtype)> = Vec::new();
        for spec in specs {
            if !all.iter().any(|(name, _)| *name == spec.name) {
                all.push((spec.name.clone(), spec.dtype));
            }
        }
        all
    };
    Declared {
        inputs: union(&mut versions_of(served, model).flat_map(|s| &s.inputs)),
        outputs: union(&mut versions_of(served, model).flat_map(|s| &s.outputs)),
        inner: inner
            .iter()
            .map(|name| {
                let outputs = union(&mut versions_of(served, name).flat_map(|s| &s.outputs));
                (name.clone(), outputs)
            })
            .collect(),
    }
}
