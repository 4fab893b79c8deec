"""Regenerates every model of the digits example, deterministically.

    python -m venv .venv && .venv/bin/pip install -r requirements.txt
    .venv/bin/python train.py

Writes models/*.onnx, data/test.csv and models/metrics.json (the accuracies
`aimass eval` is checked against). CI does not retrain: the outputs are
committed.
"""

import json
import pathlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

HERE = pathlib.Path(__file__).parent
MODELS = HERE / "models"
DATA = HERE / "data"
SEED = 7
FEATURES = 32
TEACHER_SEEDS = [11, 12, 13]
TEACHER_HIDDEN = 128
STUDENT_HIDDEN = 16
# A heavy teacher, two hidden layers of 1024: escalating to it costs
# something, and merging concurrent calls into one batch pays.
HEAVY_HIDDEN = (1024, 1024)
HEAVY_SEED = 21
TEMPERATURE = 4.0
ALPHA = 0.7  # weight of the teacher's soft targets against the true labels
PIXEL_SCALE = 16.0  # the feature plugin divides raw pixels (0-16) by this in WASM


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def save(model, name):
    onnx.checker.check_model(model)
    path = MODELS / f"{name}.onnx"
    onnx.save(model, path)
    return path


def graph_model(name, nodes, inputs, outputs, initializers):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def tensor_info(name, width):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", width])


def features_model(mean, std, components):
    """Standardisation then PCA projection: pixels/16 [N,64] -> [N,32]."""
    inits = [
        numpy_helper.from_array(mean.astype(np.float32), "mean"),
        numpy_helper.from_array(std.astype(np.float32), "std"),
        numpy_helper.from_array(components.T.astype(np.float32), "projection"),
    ]
    nodes = [
        helper.make_node("Sub", ["input", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["standardised"]),
        helper.make_node("MatMul", ["standardised", "projection"], ["features"]),
    ]
    return graph_model(
        "features", nodes, [tensor_info("input", 64)], [tensor_info("features", FEATURES)], inits
    )


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


def main():
    MODELS.mkdir(exist_ok=True)
    DATA.mkdir(exist_ok=True)
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data, digits.target, test_size=0.2, random_state=SEED, stratify=digits.target
    )
    scaled = x_train / PIXEL_SCALE
    mean = scaled.mean(axis=0)
    std = scaled.std(axis=0) + 1e-3  # constant border pixels have std 0
    pca = PCA(n_components=FEATURES, random_state=SEED).fit((scaled - mean) / std)
    # The PCA mean of standardised data is ~0; fold it in so the graph is exact.
    mean = mean + pca.mean_ * std
    components = pca.components_

    def feats(x):
        return ((x / PIXEL_SCALE - mean) / std) @ components.T

    f_train, f_test = feats(x_train), feats(x_test)
    save(features_model(mean, std, components), "features")

    metrics = {}
    member_logits_train, member_logits_test = [], []
    for i, seed in enumerate(TEACHER_SEEDS):
        mlp = MLPClassifier(hidden_layer_sizes=(TEACHER_HIDDEN,), random_state=seed,
                            max_iter=600, alpha=1e-3).fit(f_train, y_train)
        save(mlp_model(f"teacher_{i}", mlp.coefs_, mlp.intercepts_), f"teacher_{i}")
        member_logits_train.append(mlp_logits(f_train, mlp.coefs_, mlp.intercepts_))
        member_logits_test.append(mlp_logits(f_test, mlp.coefs_, mlp.intercepts_))
        metrics[f"teacher_{i}"] = float((member_logits_test[-1].argmax(1) == y_test).mean())

    teacher_probs_test = np.mean([softmax(z) for z in member_logits_test], axis=0)
    metrics["teacher"] = float((teacher_probs_test.argmax(1) == y_test).mean())
    teacher_soft = np.mean([softmax(z / TEMPERATURE) for z in member_logits_train], axis=0)

    weights, biases = distil(f_train, y_train, teacher_soft, np.random.default_rng(SEED))
    save(mlp_model("student", weights, biases), "student")
    student_logits = mlp_logits(f_test, weights, biases)
    metrics["student"] = float((student_logits.argmax(1) == y_test).mean())

    int8_path = save(mlp_model("student_int8", weights, biases, quantise=True), "student_int8")
    float_size = (MODELS / "student.onnx").stat().st_size
    metrics["student_int8_bytes"] = int8_path.stat().st_size
    metrics["student_bytes"] = float_size

    quantised = [
        np.clip(np.round(w / s), -127, 127) * s
        for w in weights
        for s in [np.where(np.abs(w).max(axis=0) == 0, 1.0, np.abs(w).max(axis=0) / 127.0)]
    ]
    metrics["student_int8"] = float((mlp_logits(f_test, quantised, biases).argmax(1) == y_test).mean())

    heavy = MLPClassifier(hidden_layer_sizes=HEAVY_HIDDEN, random_state=HEAVY_SEED,
                          max_iter=200, alpha=1e-3).fit(f_train, y_train)
    save(mlp_model("heavy_teacher", heavy.coefs_, heavy.intercepts_), "heavy_teacher")
    heavy_logits = mlp_logits(f_test, heavy.coefs_, heavy.intercepts_)
    metrics["heavy_teacher"] = float((heavy_logits.argmax(1) == y_test).mean())

    header = ",".join([f"p{i}" for i in range(64)] + ["label"])
    rows = [",".join(str(int(v)) for v in row) + f",{label}" for row, label in zip(x_test, y_test)]
    (DATA / "test.csv").write_text(header + "\n" + "\n".join(rows) + "\n")

    metrics["test_samples"] = int(len(y_test))
    metrics["temperature"] = TEMPERATURE
    (MODELS / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
