"""Small ONNX graphs the backend tests run: one per element type wasi-nn
shares with ONNX, each doubling its input `x` [N, 3] into `y`.
Regenerate with `python make_models.py` (needs `onnx`); the files are committed."""

import pathlib

import onnx
from onnx import TensorProto, helper

HERE = pathlib.Path(__file__).parent
TYPES = {
    "f16": TensorProto.FLOAT16,
    "f32": TensorProto.FLOAT,
    "f64": TensorProto.DOUBLE,
    "u8": TensorProto.UINT8,
    "i32": TensorProto.INT32,
    "i64": TensorProto.INT64,
}

for name, elem in TYPES.items():
    x = helper.make_tensor_value_info("x", elem, ["N", 3])
    y = helper.make_tensor_value_info("y", elem, ["N", 3])
    if elem == TensorProto.UINT8:
        # Add has no uint8 kernel in ONNX Runtime: widen, add, narrow.
        nodes = [
            helper.make_node("Cast", ["x"], ["wide"], to=TensorProto.INT32),
            helper.make_node("Add", ["wide", "wide"], ["sum"]),
            helper.make_node("Cast", ["sum"], ["y"], to=TensorProto.UINT8),
        ]
    else:
        nodes = [helper.make_node("Add", ["x", "x"], ["y"])]
    graph = helper.make_graph(nodes, f"double_{name}", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, HERE / f"double_{name}.onnx")
