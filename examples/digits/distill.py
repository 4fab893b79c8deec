"""Distils a new student from what the `digits` cascade served: the loop
that closes with a load of `student-head` (see README.md, "Re-distilling
from traffic").

    python distill.py CAPTURE/digits models/student.onnx

Reads the capture (pyarrow) of a model whose `[capture]` keeps the inner
models `features` and `teacher-heads`, joined with its feedback by id:

- each row's features (`inner:features:y`), the stage that answered it
  (`output:stage`) and the probabilities served (`output:probabilities`);
- the teachers' probabilities (`inner:teacher-heads:probabilities`) on the
  rows the student escalated, in order;
- the true label from feedback, for one-row requests that have one.

Soft targets are the teachers' probabilities where they answered, else the
probabilities served (the student was sure), softened at T = 4 as
softmax(log p / T); hard targets are the feedback label where there is one,
else the soft target's argmax. The student is trained as train.py trains
it (same shape, loss and seed), and written as ONNX. Deterministic: rows
are taken in id order. Needs numpy, onnx and pyarrow.
"""

import argparse
import json
import pathlib
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlp import TEMPERATURE, distil, mlp_logits, mlp_model, save

SEED = 7
NEEDED = ["inner:features:y", "output:stage", "output:probabilities"]
TEACHERS = "inner:teacher-heads:probabilities"


def tables(folder):
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    return [pq.read_table(path) for path in files]


def rows_of(column, shape):
    """A flattened tensor cell back to its [rows, width] array."""
    if column is None:
        return None
    return np.asarray(column, dtype=np.float32).reshape(shape)


def gather(capture):
    requests = tables(capture / "requests")
    if not requests:
        sys.exit(f"no capture files in {capture / 'requests'}")
    for name in NEEDED:
        if name not in requests[0].column_names:
            sys.exit(
                f"the capture has no `{name}`: capture the cascade with "
                'inner = ["features", "teacher-heads"] and its outputs'
            )
    labels = {}
    for table in tables(capture / "feedback"):
        for entry in table.select(["id", "label"]).to_pylist():
            if entry["label"] is not None:
                labels[entry["id"]] = entry["label"]

    features, soft, hard = [], [], []
    counts = {"requests": 0, "rows": 0, "escalated": 0, "labelled": 0}
    records = pa.concat_tables(requests, promote_options="default").to_pylist()
    for record in sorted(records, key=lambda r: r["id"]):
        if record["error"] is not None or record["inner:features:y"] is None:
            continue
        x = rows_of(record["inner:features:y"], record["inner:features:y:shape"])
        served = rows_of(record["output:probabilities"], record["output:probabilities:shape"])
        stage = np.asarray(record["output:stage"])
        escalated = np.flatnonzero(stage != 0)
        target = served.copy()
        if len(escalated):
            teachers = rows_of(record.get(TEACHERS), record.get(f"{TEACHERS}:shape"))
            target[escalated] = teachers
        label = labels.get(record["id"]) if len(x) == 1 else None
        features.append(x)
        soft.append(target)
        hard.append(np.full(len(x), label) if label is not None else target.argmax(1))
        counts["requests"] += 1
        counts["rows"] += len(x)
        counts["escalated"] += len(escalated)
        counts["labelled"] += int(label is not None)
    if not features:
        sys.exit("the capture holds no answered request")
    x = np.concatenate(features).astype(np.float64)
    p = np.clip(np.concatenate(soft).astype(np.float64), 1e-7, 1.0)
    softened = np.exp(np.log(p) / TEMPERATURE)
    softened /= softened.sum(axis=1, keepdims=True)
    return x, np.concatenate(hard).astype(np.int64), softened, counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture", type=pathlib.Path, help="the capture folder of `digits`")
    parser.add_argument("out", type=pathlib.Path, help="where the new student's ONNX goes")
    parser.add_argument("--epochs", type=int, default=3000)
    args = parser.parse_args()
    x, labels, soft, counts = gather(args.capture)
    weights, biases = distil(x, labels, soft, np.random.default_rng(SEED), epochs=args.epochs)
    # Written beside, then renamed: a load never reads half a file.
    partial = args.out.with_suffix(".partial")
    save(mlp_model("student", weights, biases), partial)
    partial.replace(args.out)
    agreement = float((mlp_logits(x, weights, biases).argmax(1) == labels).mean())
    print(json.dumps({**counts, "agreement_with_targets": round(agreement, 4), "out": str(args.out)}))


if __name__ == "__main__":
    main()
