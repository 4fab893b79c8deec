//! One request on its way to a model's capture: sampled when it arrives,
//! filled as it is answered, offered to the capture's writer at the end.

use super::{InferRequest, InferResponse, Phases, ServiceError};
use crate::capture::{Declared, Record, Sink};
use crate::graph::{Response, Served};
use crate::tensor::{Dtype, NamedTensor, TensorSpec};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub(super) struct Capturing {
    sink: Arc<Sink>,
    id: String,
    time_us: i64,
    inputs: Vec<NamedTensor>,
    outputs: Vec<NamedTensor>,
    inner: Vec<(String, Vec<NamedTensor>)>,
    version: Option<u64>,
}

impl Capturing {
    /// The capture of the request with `id`, when it is in the sample.
    pub fn start(sink: Arc<Sink>, id: &str) -> Option<Capturing> {
        if !sink.sampled(id) {
            return None;
        }
        Some(Capturing {
            sink,
            id: id.to_string(),
            time_us: crate::capture::now_us(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            inner: Vec::new(),
            version: None,
        })
    }

    /// Keeps the checked inputs (shared, not copied); returns the inner
    /// models whose outputs the run must keep.
    pub fn checked(&mut self, inputs: &[NamedTensor]) -> Vec<String> {
        let config = self.sink.config();
        if config.inputs {
            self.inputs = inputs.to_vec();
        }
        config.inner.clone()
    }

    /// Keeps what the model and the inner models answered.
    pub fn answered(&mut self, response: &mut Response) {
        if self.sink.config().outputs {
            self.outputs = response.outputs.clone();
        }
        self.inner = std::mem::take(&mut response.kept);
        self.version = response.version;
    }

    /// Offers the record to the capture's writer.
    pub fn finish(
        self,
        model: &Served,
        result: &Result<(InferResponse, u64, Phases), ServiceError>,
        took: Duration,
    ) {
        let error = result.as_ref().err().map(crate::capture::error_text);
        self.sink.offer(Record {
            id: self.id,
            time_us: self.time_us,
            version: self.version.unwrap_or_else(|| model.version()),
            latency_us: took.as_micros() as u64,
            error,
            inputs: self.inputs,
            outputs: self.outputs,
            inner: self.inner,
        });
    }
}

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
