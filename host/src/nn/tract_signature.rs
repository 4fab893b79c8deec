//! What tract's view of an ONNX graph says its inputs and outputs are: the
//! inputs closed with symbols for unnamed dimensions, and the signature a
//! plugin's tensors are checked against (the file's declared names and
//! types where tract's analysis leaves them open).

use super::signature::Signature;
use crate::tensor::{Dtype, TensorSpec};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{Factoid, GenericFactoid, ShapeFactoid};

/// Gives every input a closed shape with a known element type; an unnamed
/// dimension becomes a symbol (`N` for the leading one).
pub(super) fn close_input_facts(model: &mut InferenceModel) -> Result<(), String> {
    for index in 0..model.inputs.len() {
        let fact = model
            .input_fact(index)
            .map_err(|e| format!("{e:#}"))?
            .clone();
        let name = model.node(model.inputs[index].node).name.clone();
        let Some(datum_type) = fact.datum_type.concretize() else {
            return Err(format!("input `{name}` declares no element type"));
        };
        if fact.shape.is_open() {
            return Err(format!("input `{name}` declares no rank"));
        }
        let dims = fact
            .shape
            .dims()
            .enumerate()
            .map(|(axis, dim)| match dim {
                GenericFactoid::Only(d) => GenericFactoid::Only(d.clone()),
                GenericFactoid::Any => {
                    let symbol = if axis == 0 {
                        "N".to_string()
                    } else {
                        format!("{name}_{axis}")
                    };
                    GenericFactoid::Only(TDim::Sym(model.symbols.sym(&symbol)))
                }
            })
            .collect();
        model
            .set_input_fact(
                index,
                InferenceFact::dt_shape(datum_type, ShapeFactoid::closed(dims)),
            )
            .map_err(|e| format!("{e:#}"))?;
    }
    Ok(())
}

/// Each output's name, element type and shape as the file declares them
/// (`-1` where a dimension is symbolic or absent).
pub(super) type Declared = Vec<(String, Option<Dtype>, Vec<i64>)>;

pub(super) fn declared_outputs(proto: &tract_onnx::pb::ModelProto) -> Declared {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value as Dim;
    use tract_onnx::pb::type_proto::Value as Type;
    let Some(graph) = &proto.graph else {
        return Vec::new();
    };
    graph
        .output
        .iter()
        .map(|output| {
            let tensor = output.r#type.as_ref().and_then(|t| match &t.value {
                Some(Type::TensorType(tensor)) => Some(tensor),
                _ => None,
            });
            let dtype = tensor.and_then(|t| match t.elem_type {
                1 => Some(Dtype::Fp32),
                2 | 9 => Some(Dtype::Uint8),
                6 => Some(Dtype::Int32),
                7 => Some(Dtype::Int64),
                10 => Some(Dtype::Fp16),
                11 => Some(Dtype::Fp64),
                _ => None,
            });
            let shape = tensor
                .and_then(|t| t.shape.as_ref())
                .map(|s| {
                    s.dim
                        .iter()
                        .map(|d| match d.value {
                            Some(Dim::DimValue(v)) if v >= 0 => v,
                            _ => -1,
                        })
                        .collect()
                })
                .unwrap_or_default();
            (output.name.clone(), dtype, shape)
        })
        .collect()
}

/// The signature of a graph tract types only per input shape: inputs from
/// their closed facts, outputs as the file declares them.
pub(super) fn inference_signature(
    model: &InferenceModel,
    declared: &Declared,
) -> Result<Signature, String> {
    let mut inputs = Vec::with_capacity(model.inputs.len());
    for (index, outlet) in model.inputs.iter().enumerate() {
        let name = model.node(outlet.node).name.clone();
        let fact = model.input_fact(index).map_err(|e| format!("{e:#}"))?;
        let dtype = fact
            .datum_type
            .concretize()
            .and_then(dtype_of)
            .ok_or_else(|| format!("input `{name}` has an element type wasi-nn cannot carry"))?;
        let shape = fact
            .shape
            .dims()
            .map(|d| match d {
                GenericFactoid::Only(d) => d.as_i64().unwrap_or(-1),
                GenericFactoid::Any => -1,
            })
            .collect();
        inputs.push(TensorSpec { name, dtype, shape });
    }
    let outputs = declared
        .iter()
        .map(|(name, dtype, shape)| {
            dtype
                .map(|dtype| TensorSpec {
                    name: name.clone(),
                    dtype,
                    shape: shape.clone(),
                })
                .ok_or_else(|| format!("output `{name}` has an element type wasi-nn cannot carry"))
        })
        .collect::<Result<_, _>>()?;
    Ok(Signature { inputs, outputs })
}

pub(super) fn signature_of(model: &TypedModel) -> Result<Signature, String> {
    let spec = |outlet: OutletId, name: String| -> Result<TensorSpec, String> {
        let fact = model.outlet_fact(outlet).map_err(|e| format!("{e:#}"))?;
        let dtype = dtype_of(fact.datum_type)
            .ok_or_else(|| format!("`{name}` has element type {:?}", fact.datum_type))?;
        let shape = fact
            .shape
            .iter()
            .map(|d| d.as_i64().unwrap_or(-1))
            .collect();
        Ok(TensorSpec { name, dtype, shape })
    };
    let inputs = model
        .inputs
        .iter()
        .map(|&outlet| spec(outlet, model.node(outlet.node).name.clone()))
        .collect::<Result<_, _>>()?;
    let outputs = model
        .outputs
        .iter()
        .map(|&outlet| {
            let name = model
                .outlet_label(outlet)
                .map_or_else(|| model.node(outlet.node).name.clone(), str::to_string);
            spec(outlet, name)
        })
        .collect::<Result<_, _>>()?;
    Ok(Signature { inputs, outputs })
}

/// The wasi-nn element type for a tract one; booleans travel as `U8` 0/1.
pub(super) fn dtype_of(datum_type: DatumType) -> Option<Dtype> {
    Some(match datum_type {
        DatumType::F16 => Dtype::Fp16,
        DatumType::F32 => Dtype::Fp32,
        DatumType::F64 => Dtype::Fp64,
        DatumType::U8 | DatumType::Bool => Dtype::Uint8,
        DatumType::I32 => Dtype::Int32,
        DatumType::I64 => Dtype::Int64,
        _ => return None,
    })
}
