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

# A stacking meta-model for three 10-class members: the mean of their
# probabilities (x [N, 30] -> logits [N, 10]), so its answer is checkable.
import numpy as np
from onnx import numpy_helper

weights = np.vstack([np.eye(10, dtype=np.float32) / 3.0] * 3)
x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 30])
y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
graph = helper.make_graph(
    [helper.make_node("MatMul", ["input", "w"], ["logits"])],
    "mean_of_three",
    [x],
    [y],
    [numpy_helper.from_array(weights, "w")],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, HERE / "mean_of_three.onnx")
