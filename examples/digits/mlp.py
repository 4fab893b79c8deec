"""The student MLP shared by train.py (distilled from the teachers on the
training split) and distill.py (distilled again from captured traffic):
ONNX export, a numpy forward pass, and distillation by full-batch Adam.
Needs numpy and onnx only."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FEATURES = 32
STUDENT_HIDDEN = 16
TEMPERATURE = 4.0
ALPHA = 0.7  # weight of the teacher's soft targets against the true labels


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def save(model, path):
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def graph_model(name, nodes, inputs, outputs, initializers):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def tensor_info(name, width):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", width])


def mlp_model(name, weights, biases, quantise=False):
    """A ReLU MLP from `input` [N,F] to `logits` [N,10]; with `quantise`, the
    weights are stored as int8 with one scale per output column and
    dequantised by the graph (weight-only int8)."""
    inits, nodes = [], []
    current = "input"
    for i, (w, b) in enumerate(zip(weights, biases)):
        w_name = f"w{i}"
        if quantise:
            scale = np.abs(w).max(axis=0) / 127.0
            scale[scale == 0] = 1.0
            q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
            inits += [
                numpy_helper.from_array(q, f"w{i}_q"),
                numpy_helper.from_array(scale.astype(np.float32), f"w{i}_scale"),
            ]
            nodes.append(
                helper.make_node("DequantizeLinear", [f"w{i}_q", f"w{i}_scale"], [w_name], axis=1)
            )
        else:
            inits.append(numpy_helper.from_array(w.astype(np.float32), w_name))
        inits.append(numpy_helper.from_array(b.astype(np.float32), f"b{i}"))
        last = i == len(weights) - 1
        nodes.append(helper.make_node("MatMul", [current, w_name], [f"h{i}_mm"]))
        nodes.append(helper.make_node("Add", [f"h{i}_mm", f"b{i}"], ["logits" if last else f"h{i}_pre"]))
        if not last:
            nodes.append(helper.make_node("Relu", [f"h{i}_pre"], [f"h{i}"]))
            current = f"h{i}"
    width = weights[0].shape[0]
    return graph_model(name, nodes, [tensor_info("input", width)], [tensor_info("logits", 10)], inits)


def mlp_logits(x, weights, biases):
    h = x
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = h @ w + b
        if i < len(weights) - 1:
            h = np.maximum(h, 0)
    return h


def distil(x, labels, teacher_soft, rng, epochs=3000, lr=0.01):
    """Trains the student on the teacher's softened probabilities plus the
    true labels (Hinton et al. 2015), full-batch Adam in numpy."""
    shapes = [(FEATURES, STUDENT_HIDDEN), (STUDENT_HIDDEN,), (STUDENT_HIDDEN, 10), (10,)]
    params = [
        rng.normal(0, np.sqrt(2.0 / FEATURES), shapes[0]),
        np.zeros(shapes[1]),
        rng.normal(0, np.sqrt(2.0 / STUDENT_HIDDEN), shapes[2]),
        np.zeros(shapes[3]),
    ]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    onehot = np.eye(10)[labels]
    n = len(x)
    for step in range(1, epochs + 1):
        w1, b1, w2, b2 = params
        pre = x @ w1 + b1
        h = np.maximum(pre, 0)
        z = h @ w2 + b2
        # d/dz of ALPHA*T^2*KL(soft || softmax(z/T)) + (1-ALPHA)*CE(labels, softmax(z))
        grad_z = (ALPHA * TEMPERATURE * (softmax(z / TEMPERATURE) - teacher_soft)
                  + (1 - ALPHA) * (softmax(z) - onehot)) / n
        grads = [None] * 4
        grads[2] = h.T @ grad_z
        grads[3] = grad_z.sum(axis=0)
        grad_h = grad_z @ w2.T * (pre > 0)
        grads[0] = x.T @ grad_h
        grads[1] = grad_h.sum(axis=0)
        for i, g in enumerate(grads):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            m_hat = m[i] / (1 - 0.9**step)
            v_hat = v[i] / (1 - 0.999**step)
            params[i] = params[i] - lr * m_hat / (np.sqrt(v_hat) + 1e-8)
    return [params[0], params[2]], [params[1], params[3]]
