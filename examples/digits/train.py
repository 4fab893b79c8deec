"""Regenerates every model of the digits example, deterministically.

    python -m venv .venv && .venv/bin/pip install -r requirements.txt
    .venv/bin/python train.py

Writes models/*.onnx, data/test.csv (and data/train.csv, the traffic
distill.py's loop replays) and models/metrics.json (the accuracies
`aimass eval` is checked against). CI does not retrain: the outputs are
committed.
"""

import json
import pathlib

import numpy as np
from onnx import helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier

from mlp import (
    FEATURES,
    TEMPERATURE,
    distil,
    graph_model,
    mlp_logits,
    mlp_model,
    softmax,
    tensor_info,
)
from mlp import save as save_model

HERE = pathlib.Path(__file__).parent
MODELS = HERE / "models"
DATA = HERE / "data"
SEED = 7
TEACHER_SEEDS = [11, 12, 13]
TEACHER_HIDDEN = 128
# A heavy teacher, two hidden layers of 1024: escalating to it costs
# something, and merging concurrent calls into one batch pays.
HEAVY_HIDDEN = (1024, 1024)
HEAVY_SEED = 21
PIXEL_SCALE = 16.0  # the feature plugin divides raw pixels (0-16) by this in WASM


def save(model, name):
    return save_model(model, MODELS / f"{name}.onnx")


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
    for name, xs, ys in [("test", x_test, y_test), ("train", x_train, y_train)]:
        rows = [",".join(str(int(v)) for v in row) + f",{label}" for row, label in zip(xs, ys)]
        (DATA / f"{name}.csv").write_text(header + "\n" + "\n".join(rows) + "\n")

    metrics["test_samples"] = int(len(y_test))
    metrics["temperature"] = TEMPERATURE
    (MODELS / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
