//! A request and its answer in the service's terms, and the checks of a
//! request against the model's signature: every input (name, type, shape,
//! rows) and every requested output, all before anything runs.

use super::error::ServiceError;
use crate::graph::{Dropped, Served, TraceEntry};
use crate::tensor::{NamedTensor, TensorSpec, check_dims, shape_text};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Instant;

/// One inference request, as every front end hands it over.
#[derive(Debug)]
pub struct InferRequest {
    /// The client's request id.
    pub id: Option<String>,
    /// The transport's id for the request (`x-request-id`): what capture
    /// keys a request by when it has no `id`.
    pub request_id: Option<String>,
    /// Request parameters (`trace`; switches read the others).
    pub parameters: BTreeMap<String, Value>,
    /// Named input tensors, in any order.
    pub inputs: Vec<NamedTensor>,
    /// The outputs wanted, in this order; all of them when `None`.
    pub outputs: Option<Vec<String>>,
    /// When the front end received it (its decoding counts as input time).
    pub received: Instant,
}

/// A model's answer, as every front end sends it back.
#[derive(Debug)]
pub struct InferResponse {
    /// The model that answered.
    pub model_name: String,
    /// Its version.
    pub model_version: String,
    /// The client's request id.
    pub id: Option<String>,
    /// The outputs, in the order asked for.
    pub outputs: Vec<NamedTensor>,
    /// Soft members whose failure was dropped.
    pub dropped: Vec<Dropped>,
    /// Each model's time and outcome, when `trace` was asked for.
    pub trace: Vec<TraceEntry>,
}

impl InferResponse {
    /// The response parameters both transports send: `dropped` (soft
    /// members left out) and `trace` (each model's time), when there are.
    pub fn parameters(&self) -> Vec<(&'static str, Value)> {
        let mut parameters = Vec::new();
        if !self.dropped.is_empty() {
            let dropped = self
                .dropped
                .iter()
                .map(|d| serde_json::json!({"hierarchy": d.hierarchy, "model": d.model, "error": d.error}))
                .collect();
            parameters.push(("dropped", Value::Array(dropped)));
        }
        if !self.trace.is_empty() {
            let trace = self
                .trace
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "model": t.model, "kind": t.kind, "rows": t.rows,
                        "micros": t.micros, "outcome": t.outcome,
                    })
                })
                .collect();
            parameters.push(("trace", Value::Array(trace)));
        }
        parameters
    }
}

/// The request's inputs in the model's order, each checked against its
/// spec, and the batch's rows. A model answers one or more rows, up to its
/// limit (or `default_max_rows`), the same way whatever its kind.
pub(crate) fn check_inputs(
    model: &Served,
    inputs: Vec<NamedTensor>,
    default_max_rows: usize,
) -> Result<(Vec<NamedTensor>, u64), ServiceError> {
    let specs = &model.signature.inputs;
    let mut slots: Vec<Option<NamedTensor>> = vec![None; specs.len()];
    for (name, tensor) in inputs {
        let Some(index) = specs.iter().position(|s| s.name == name) else {
            return Err(ServiceError::client(format!(
                "model `{}` has no input `{name}` (its inputs: {})",
                model.name,
                names(specs)
            )));
        };
        if slots[index].is_some() {
            return Err(ServiceError::client(format!(
                "input `{name}` is given twice"
            )));
        }
        let spec = &specs[index];
        check_dims(spec, tensor.dtype(), tensor.dims()).map_err(|mismatch| {
            ServiceError::client(format!(
                "input `{name}` of model `{}` {mismatch}",
                model.name
            ))
        })?;
        if spec.is_batched() {
            check_rows(model, &name, tensor.rows(), default_max_rows)?;
        }
        slots[index] = Some((name, tensor));
    }
    let inputs: Vec<NamedTensor> = slots
        .into_iter()
        .zip(specs)
        .map(|(slot, spec)| {
            slot.ok_or_else(|| {
                ServiceError::client(format!(
                    "model `{}` needs input `{}` ({} {})",
                    model.name,
                    spec.name,
                    spec.dtype,
                    shape_text(&spec.shape)
                ))
            })
        })
        .collect::<Result<_, _>>()?;
    // The batch is the first batched input's rows; a model without one
    // answers one row.
    let rows = specs
        .iter()
        .zip(&inputs)
        .find(|(spec, _)| spec.is_batched())
        .map_or(1, |(_, (_, t))| t.rows());
    Ok((inputs, rows as u64))
}

fn check_rows(
    model: &Served,
    input: &str,
    rows: usize,
    default_max_rows: usize,
) -> Result<(), ServiceError> {
    if rows == 0 {
        return Err(ServiceError::client(format!(
            "input `{input}` has 0 rows; model `{}` needs at least one",
            model.name
        )));
    }
    let (limit, source) = match model.max_rows {
        Some(limit) => (limit, "its own limit"),
        None => (default_max_rows, "the server's --max-batch-rows"),
    };
    if rows > limit {
        return Err(ServiceError::client(format!(
            "input `{input}` has {rows} rows; model `{}` takes at most {limit} per request \
             ({source}); split the request",
            model.name
        )));
    }
    Ok(())
}

/// Checks every requested output exists and is asked for once: an unknown
/// name costs the client a 400, not a whole inference first.
pub(crate) fn check_outputs(model: &Served, requested: &[String]) -> Result<(), ServiceError> {
    for (i, name) in requested.iter().enumerate() {
        if !model.signature.outputs.iter().any(|s| &s.name == name) {
            return Err(ServiceError::client(format!(
                "model `{}` has no output `{name}` (its outputs: {})",
                model.name,
                names(&model.signature.outputs)
            )));
        }
        if requested[..i].contains(name) {
            return Err(ServiceError::client(format!(
                "output `{name}` is asked for twice"
            )));
        }
    }
    Ok(())
}

/// The outputs asked for, in that order (all when `None`).
pub(super) fn select_outputs(
    model: &Served,
    produced: Vec<NamedTensor>,
    requested: Option<&[String]>,
) -> Result<Vec<NamedTensor>, ServiceError> {
    let Some(requested) = requested else {
        return Ok(produced);
    };
    let mut produced: Vec<Option<NamedTensor>> = produced.into_iter().map(Some).collect();
    requested
        .iter()
        .map(|name| {
            produced
                .iter_mut()
                .find(|slot| slot.as_ref().is_some_and(|(n, _)| n == name))
                .and_then(Option::take)
                .ok_or_else(|| {
                    ServiceError::new(
                        crate::error_kind::ErrorKind::Internal,
                        format!(
                            "model `{}` answered without its output `{name}`",
                            model.name
                        ),
                    )
                })
        })
        .collect()
}

fn names(specs: &[TensorSpec]) -> String {
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    names.join(", ")
}

/// `parameters[key]` as a flag: absent is false, anything but a boolean is
/// the client's mistake.
pub(crate) fn flag(parameters: &BTreeMap<String, Value>, key: &str) -> Result<bool, ServiceError> {
    match parameters.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(ServiceError::client(format!(
            "request parameter `{key}` must be true or false, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Signature;
    use crate::tensor::{Dtype, Tensor};

    fn model(max_rows: Option<usize>) -> Served {
        let spec = |name: &str, dtype, shape: &[i64]| TensorSpec {
            name: name.into(),
            dtype,
            shape: shape.to_vec(),
        };
        let mut m = crate::graph::with_signature(
            "m",
            Signature {
                inputs: vec![
                    spec("x", Dtype::Fp32, &[-1, 2]),
                    spec("k", Dtype::Int64, &[1]),
                ],
                outputs: vec![
                    spec("a", Dtype::Fp32, &[-1]),
                    spec("b", Dtype::Int64, &[-1]),
                ],
            },
        );
        m.max_rows = max_rows;
        m
    }

    fn x(rows: u32) -> NamedTensor {
        let values = vec![0.0; rows as usize * 2];
        (
            "x".into(),
            Tensor::from_f32(vec![rows, 2], &values).unwrap(),
        )
    }

    fn k() -> NamedTensor {
        ("k".into(), Tensor::from_i64(vec![1], &[3]).unwrap())
    }

    fn refusal(result: Result<(Vec<NamedTensor>, u64), ServiceError>) -> String {
        let error = result.unwrap_err();
        assert_eq!(error.kind, crate::error_kind::ErrorKind::Client);
        error.message
    }

    #[test]
    fn inputs_come_back_in_the_models_order_with_the_rows() {
        let (inputs, rows) = check_inputs(&model(None), vec![k(), x(3)], 8).unwrap();
        assert_eq!(inputs[0].0, "x");
        assert_eq!(rows, 3, "rows are the batched input's");
    }

    #[test]
    fn each_input_mistake_is_named() {
        let m = model(Some(2));
        let wrong = (
            "x".to_string(),
            Tensor::from_i64(vec![1, 2], &[1, 2]).unwrap(),
        );
        assert_eq!(
            refusal(check_inputs(&m, vec![wrong, k()], 8)),
            "input `x` of model `m` must be FP32, got INT64"
        );
        let unknown = ("z".to_string(), Tensor::from_i64(vec![1], &[1]).unwrap());
        assert!(
            refusal(check_inputs(&m, vec![unknown], 8))
                .contains("has no input `z` (its inputs: x, k)")
        );
        assert_eq!(
            refusal(check_inputs(&m, vec![x(1), x(1)], 8)),
            "input `x` is given twice"
        );
        assert_eq!(
            refusal(check_inputs(&m, vec![x(1)], 8)),
            "model `m` needs input `k` (INT64 [1])"
        );
        assert!(refusal(check_inputs(&m, vec![x(0), k()], 8)).contains("has 0 rows"));
        let over = refusal(check_inputs(&m, vec![x(3), k()], 8));
        assert!(
            over.contains("takes at most 2 per request (its own limit)"),
            "{over}"
        );
        let over = refusal(check_inputs(&model(None), vec![x(9), k()], 8));
        assert!(over.contains("(the server's --max-batch-rows)"), "{over}");
    }

    #[test]
    fn requested_outputs_are_checked_and_selected_in_order() {
        let m = model(None);
        assert!(check_outputs(&m, &["b".into(), "a".into()]).is_ok());
        let unknown = check_outputs(&m, &["c".into()]).unwrap_err();
        assert_eq!(
            unknown.message,
            "model `m` has no output `c` (its outputs: a, b)"
        );
        let twice = check_outputs(&m, &["a".into(), "a".into()]).unwrap_err();
        assert_eq!(twice.message, "output `a` is asked for twice");
        let produced = vec![
            ("a".to_string(), Tensor::from_f32(vec![1], &[1.0]).unwrap()),
            ("b".to_string(), Tensor::from_i64(vec![1], &[2]).unwrap()),
        ];
        let picked = select_outputs(&m, produced, Some(&["b".into()])).unwrap();
        assert_eq!(picked.len(), 1);
        assert_eq!(picked[0].0, "b");
    }
}
