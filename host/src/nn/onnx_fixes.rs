//! Rewrites of an ONNX model's protobuf, before tract reads it, for what
//! real exported graphs carry and tract cannot analyse. Each keeps the
//! graph's arithmetic exactly as it is (ONNX Runtime's output is unchanged
//! by them); they only take away what blocks tract's shape analysis.
//!
//! - Integer `Cast`s on the shape path. Paddle's exporter computes a
//!   `Reshape`'s target as `Shape → Cast(int32) → Slice → Cast(int64) →
//!   Concat(…, Cast(int64, Constant int32))`. tract cannot fold a cast of a
//!   symbolic dimension, so the reshape's shape stays unknown and the graph
//!   will not type with a symbolic batch. A `Shape`'s output is already
//!   int64, and every value on this path is a dimension, so the casts are
//!   bypassed and the int32 constants they widened become int64 constants.
//!
//! (Stored `value_info` and output shapes, which some exports carry stale,
//! are ignored by the tract parser's own options; see `tract.rs`.)

use std::collections::HashSet;
use tract_onnx::pb::{ModelProto, NodeProto, TensorProto};

const INT32: i32 = 6;
const INT64: i32 = 7;

/// Ops that keep a dimension a dimension: their data input (the first, or
/// any for `Concat`) on the shape path puts their output on it.
const SHAPE_OPS: [&str; 6] = ["Slice", "Gather", "Concat", "Unsqueeze", "Squeeze", "Cast"];

/// Ops whose shape input takes int64 as well as what the export gave.
const SHAPE_READERS: [&str; 4] = ["Reshape", "Expand", "Tile", "ConstantOfShape"];

/// What the rewrite did, for the load log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Folded {
    /// Casts bypassed.
    pub casts: usize,
    /// int32 constants widened to int64.
    pub constants: usize,
}

/// Bypasses integer casts on the shape path (see the module doc).
pub fn fold_shape_casts(model: &mut ModelProto) -> Folded {
    let mut folded = Folded::default();
    let Some(graph) = model.graph.as_mut() else {
        return folded;
    };
    let outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    // Values that hold dimensions: nodes are in topological order.
    let mut shape_path = HashSet::new();
    for node in &graph.node {
        let on_path = match node.op_type.as_str() {
            "Shape" => true,
            "Concat" => node.input.iter().any(|i| shape_path.contains(i)),
            // A cast to a float leaves the shape path.
            "Cast" => {
                matches!(cast_to(node), Some(INT32 | INT64))
                    && node.input.first().is_some_and(|i| shape_path.contains(i))
            }
            op if SHAPE_OPS.contains(&op) => {
                node.input.first().is_some_and(|i| shape_path.contains(i))
            }
            _ => false,
        };
        if on_path {
            shape_path.extend(node.output.iter().cloned());
        }
    }
    // Concats that mix dimensions with cast constants.
    let shape_concat_inputs: std::collections::HashSet<String> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Concat" && n.input.iter().any(|i| shape_path.contains(i)))
        .flat_map(|n| n.input.iter().cloned())
        .collect();
    // How many nodes read each value: a constant is widened only when its
    // one reader is the cast bypassed (else the cast and its type stay).
    let mut readers: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for node in &graph.node {
        for input in &node.input {
            *readers.entry(input.as_str()).or_default() += 1;
        }
    }
    let constants: std::collections::HashSet<String> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Constant")
        .flat_map(|n| n.output.iter().cloned())
        .chain(graph.initializer.iter().map(|t| t.name.clone()))
        .collect();
    let mut renames: std::collections::HashMap<String, String> = Default::default();
    let mut widen: std::collections::HashSet<String> = Default::default();
    for node in &graph.node {
        let (Some(input), Some(output)) = (node.input.first(), node.output.first()) else {
            continue;
        };
        if node.op_type != "Cast" || outputs.contains(output) {
            continue;
        }
        // Only where every reader takes a dimension of either width.
        let readers_take_int64 = graph
            .node
            .iter()
            .filter(|n| n.input.contains(output))
            .all(|n| {
                SHAPE_OPS.contains(&n.op_type.as_str())
                    || SHAPE_READERS.contains(&n.op_type.as_str())
            });
        let bypass = readers_take_int64
            && match cast_to(node) {
                Some(INT32 | INT64) if shape_path.contains(input) => true,
                Some(INT64) => {
                    shape_concat_inputs.contains(output)
                        && constants.contains(input)
                        && readers.get(input.as_str()) == Some(&1)
                }
                _ => false,
            };
        if bypass {
            if !shape_path.contains(input) {
                widen.insert(input.clone());
            }
            renames.insert(output.clone(), input.clone());
        }
    }
    folded.casts = renames.len();
    graph.node.retain(|n| {
        !(n.op_type == "Cast" && n.output.first().is_some_and(|o| renames.contains_key(o)))
    });
    for node in &mut graph.node {
        if node.op_type == "Constant" && node.output.iter().any(|o| widen.contains(o)) {
            for attribute in &mut node.attribute {
                if let Some(t) = attribute.t.as_mut()
                    && widen_to_int64(t)
                {
                    folded.constants += 1;
                }
            }
        }
    }
    for tensor in &mut graph.initializer {
        if widen.contains(&tensor.name) && widen_to_int64(tensor) {
            folded.constants += 1;
        }
    }
    // A cast of a cast resolves to the first value that remains.
    let resolve = |name: &str| {
        let mut name = name.to_string();
        let mut hops = 0;
        while let Some(to) = renames.get(&name) {
            name = to.clone();
            hops += 1;
            if hops > renames.len() {
                break;
            }
        }
        name
    };
    for node in &mut graph.node {
        for input in &mut node.input {
            if renames.contains_key(input.as_str()) {
                *input = resolve(input);
            }
        }
    }
    folded
}

fn cast_to(node: &NodeProto) -> Option<i32> {
    node.attribute
        .iter()
        .find(|a| a.name == "to")
        .and_then(|a| i32::try_from(a.i).ok())
}

/// An int32 tensor as int64 with the same values; false when it is not
/// int32 (left as it is).
fn widen_to_int64(tensor: &mut TensorProto) -> bool {
    if tensor.data_type != INT32 {
        return false;
    }
    let values: Vec<i64> = if tensor.raw_data.is_empty() {
        tensor.int32_data.iter().map(|&v| i64::from(v)).collect()
    } else {
        tensor
            .raw_data
            .chunks_exact(4)
            .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            .collect()
    };
    tensor.data_type = INT64;
    tensor.int32_data.clear();
    tensor.raw_data.clear();
    tensor.int64_data = values;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
    use tract_onnx::pb::{
        AttributeProto, GraphProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
        ValueInfoProto, type_proto,
    };
    use tract_onnx::prelude::*;
    use tract_onnx::tract_hir::infer::{GenericFactoid, ShapeFactoid};

    fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            attribute,
            ..Default::default()
        }
    }

    fn cast(input: &str, output: &str, to: i32) -> NodeProto {
        let to = AttributeProto {
            name: "to".into(),
            i: i64::from(to),
            r#type: 2,
            ..Default::default()
        };
        node("Cast", &[input], output, vec![to])
    }

    fn int64s(name: &str, values: &[i64]) -> TensorProto {
        TensorProto {
            name: name.into(),
            dims: vec![values.len() as i64],
            data_type: INT64,
            int64_data: values.to_vec(),
            ..Default::default()
        }
    }

    fn value(name: &str, elem_type: i32, dims: Vec<dimension::Value>) -> ValueInfoProto {
        let dim = dims.into_iter().map(|v| Dimension {
            value: Some(v),
            ..Default::default()
        });
        ValueInfoProto {
            name: name.into(),
            r#type: Some(TypeProto {
                value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                    elem_type,
                    shape: Some(TensorShapeProto { dim: dim.collect() }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// `y = x.reshape([N, 2, 2])` with the batch taken from `Shape(x)`
    /// through int32 casts, as Paddle's exporter writes it.
    fn paddle_reshape() -> ModelProto {
        let four = TensorProto {
            dims: vec![2],
            data_type: INT32,
            int32_data: vec![2, 2],
            ..Default::default()
        };
        let constant = AttributeProto {
            name: "value".into(),
            t: Some(four),
            r#type: 4,
            ..Default::default()
        };
        let graph = GraphProto {
            node: vec![
                node("Shape", &["x"], "s", vec![]),
                cast("s", "s32", INT32),
                node("Slice", &["s32", "zero", "one", "zero"], "n32", vec![]),
                cast("n32", "n64", INT64),
                node("Constant", &[], "k32", vec![constant]),
                cast("k32", "k64", INT64),
                node(
                    "Concat",
                    &["n64", "k64"],
                    "shape",
                    vec![AttributeProto {
                        name: "axis".into(),
                        r#type: 2,
                        ..Default::default()
                    }],
                ),
                node("Reshape", &["x", "shape"], "y", vec![]),
            ],
            initializer: vec![int64s("zero", &[0]), int64s("one", &[1])],
            input: vec![value(
                "x",
                1,
                vec![
                    dimension::Value::DimParam("N".into()),
                    dimension::Value::DimValue(4),
                ],
            )],
            output: vec![value("y", 1, vec![])],
            ..Default::default()
        };
        ModelProto {
            ir_version: 7,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 11,
            }],
            graph: Some(graph),
            ..Default::default()
        }
    }

    fn types_with_a_symbolic_batch(proto: &ModelProto) -> TractResult<TypedModel> {
        let mut model = tract_onnx::onnx().model_for_proto_model(proto)?;
        let n = model.symbols.sym("N");
        let dims = tvec![
            GenericFactoid::Only(TDim::Sym(n)),
            GenericFactoid::Only(4.to_dim())
        ];
        model.set_input_fact(
            0,
            InferenceFact::dt_shape(DatumType::F32, ShapeFactoid::closed(dims)),
        )?;
        model.into_typed()
    }

    #[test]
    fn shape_path_casts_are_bypassed_so_a_symbolic_batch_types() {
        let mut proto = paddle_reshape();
        assert!(
            types_with_a_symbolic_batch(&proto).is_err(),
            "tract cannot fold the casts itself (if it can now, this rewrite may go)"
        );
        let folded = fold_shape_casts(&mut proto);
        assert_eq!(
            folded,
            Folded {
                casts: 3,
                constants: 1
            }
        );
        let graph = proto.graph.as_ref().unwrap();
        assert!(graph.node.iter().all(|n| n.op_type != "Cast"));
        let typed = types_with_a_symbolic_batch(&proto).unwrap();
        let y = typed.outlet_fact(typed.outputs[0]).unwrap();
        assert_eq!(y.shape.len(), 3);
        assert_eq!(y.shape[1], 2.to_dim());
        // A cast to a float takes its value off the shape path: nothing
        // after it is touched.
        let mut other = paddle_reshape();
        other.graph.as_mut().unwrap().node[1] = cast("s", "s32", 1);
        assert_eq!(fold_shape_casts(&mut other), Folded::default());
    }
}
