"""Writes the request bodies the soak test mixes, from the digits test split.

    python3 make_bodies.py DIGITS_TEST_CSV OUT_DIR

Each body is a file; `mixed.lua` reads the list in OUT_DIR/requests.txt
(path, expected status, binary JSON length or 0, body file).
Standard library only.
"""

import csv
import json
import os
import struct
import sys

csv_path, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
rows = [[float(v) for v in r[:64]] for r in list(csv.reader(open(csv_path)))[1:]]
lines = []


def add(name, model, status, body, json_length=0, weight=1):
    path = os.path.join(out, name)
    with open(path, "wb") as f:
        f.write(body)
    for _ in range(weight):
        lines.append(f"/v2/models/{model}/infer {status} {json_length} {path}")


def json_body(n, start=0):
    data = [rows[(start + i) % len(rows)] for i in range(n)]
    request = {"id": f"soak-{n}", "inputs": [{"name": "pixels", "shape": [n, 64], "datatype": "FP32", "data": data}]}
    return json.dumps(request).encode()


def binary_body(n, start=0):
    header = json.dumps({"inputs": [{"name": "pixels", "shape": [n, 64], "datatype": "FP32",
                                      "parameters": {"binary_data_size": n * 64 * 4}}],
                         "outputs": [{"name": "label", "parameters": {"binary_data": True}},
                                     {"name": "probabilities", "parameters": {"binary_data": True}}]}).encode()
    blob = b"".join(struct.pack("<64f", *rows[(start + i) % len(rows)]) for i in range(n))
    return header + blob, len(header)


# Good traffic, mostly small batches, on every example model: the
# sequences take the raw pixels, the heads and inner hierarchies the 32
# projected features.
for model in ["digits", "student", "teacher", "student-int8"]:
    for n in [1, 8, 64]:
        add(f"{model}-json-{n}.json", model, 200, json_body(n), weight=4 if n == 1 else 1)
        body, length = binary_body(n, 7)
        add(f"{model}-bin-{n}.bin", model, 200, body, length, weight=2 if n == 1 else 1)
features = [[v / 16 for v in r[:32]] for r in rows]
for model in ["student-head", "student-int8-head", "teacher-0", "teacher-heads", "student-or-teachers"]:
    for n in [1, 16]:
        data = [features[i % len(features)] for i in range(n)]
        request = {"inputs": [{"name": "x", "shape": [n, 32], "datatype": "FP32", "data": data}]}
        add(f"{model}-x-{n}.json", model, 200, json.dumps(request).encode())

# Bad traffic: each must get its own 4xx, never a 5xx.
bad = {"inputs": [{"name": "pixels", "shape": [1, 63], "datatype": "FP32", "data": rows[0][:63]}]}
add("bad-shape.json", "digits", 400, json.dumps(bad).encode())
nested = {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": [rows[0][:32], rows[0][32:]]}]}
add("bad-nesting.json", "digits", 400, json.dumps(nested).encode())
add("bad-json.json", "digits", 400, b'{"inputs": [')
add("unknown-model.json", "no-such-model", 404, json_body(1))

with open(os.path.join(out, "requests.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"{len(lines)} request slots in {out}/requests.txt")
