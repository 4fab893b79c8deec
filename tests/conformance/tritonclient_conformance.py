"""Conformance of aimass's HTTP server with the stock Triton client.

Run by tests/conformance.rs against a live server:
    python tritonclient_conformance.py HOST:PORT DIGITS_TEST_CSV ADMIN_TOKEN
Every check uses tritonclient[http] exactly as a Triton user would; the
server guards its repository API with ADMIN_TOKEN, sent as a header.
"""

import csv
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

url, csv_path, token = sys.argv[1], sys.argv[2], sys.argv[3]
admin = {"Authorization": f"Bearer {token}"}
client = httpclient.InferenceServerClient(url=url)
checks = 0


def check(condition, what):
    global checks
    if not condition:
        raise AssertionError(what)
    checks += 1


def refused(call, status, text):
    try:
        call()
    except InferenceServerException as e:
        check(e.status() == str(status) or e.status() == status, f"{text}: status {e.status()}")
        check(text in e.message(), f"{text!r} not in {e.message()!r}")
        return
    raise AssertionError(f"expected an error containing {text!r}")


# Health and metadata.
check(client.is_server_live(), "live")
check(client.is_server_ready(), "ready")
server = client.get_server_metadata()
check(server["name"] == "aimass" and "binary_tensor_data" in server["extensions"], server)
check(client.is_model_ready("digits"), "digits ready")
check(client.is_model_ready("digits", model_version="1"), "digits v1 ready")
check(not client.is_model_ready("no-such-model"), "unknown model not ready")
meta = client.get_model_metadata("digits")
check(meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}], meta)
check([o["name"] for o in meta["outputs"]] == ["label", "probabilities", "confidence", "stage"], meta)
config = client.get_model_config("digits")
check(config["input"][0]["data_type"] == "TYPE_FP32" and config["input"][0]["dims"] == [-1, 64], config)
refused(lambda: client.get_model_metadata("no-such-model"), 404, "unknown model `no-such-model`")

# Repository: index, unload, load, with the admin token (refused without).
refused(lambda: client.get_model_repository_index(), 401, "admin token")
refused(lambda: client.unload_model("scale"), 401, "admin token")
index = client.get_model_repository_index(headers=admin)
check({"name": "digits", "version": "1", "state": "READY"} in index, index)
client.unload_model("scale", headers=admin)
check(not client.is_model_ready("scale"), "scale unloaded")
check(any(m["name"] == "scale" and m["state"] == "UNAVAILABLE" for m in client.get_model_repository_index(headers=admin)), "index shows unloaded")
client.load_model("scale", headers=admin)
check(client.is_model_ready("scale"), "scale loaded again")

# Inference on real test images.
rows = list(csv.reader(open(csv_path)))[1:65]
pixels = np.array([[float(v) for v in row[:64]] for row in rows], dtype=np.float32)
labels = np.array([int(row[64]) for row in rows])


def infer(binary_in, binary_out, request_id=None):
    tensor = httpclient.InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=binary_in)
    outputs = [
        httpclient.InferRequestedOutput("label", binary_data=binary_out),
        httpclient.InferRequestedOutput("probabilities", binary_data=binary_out),
    ]
    return client.infer("digits", [tensor], outputs=outputs, request_id=request_id or "")


answers = {}
for binary_in in (True, False):
    for binary_out in (True, False):
        result = infer(binary_in, binary_out, request_id=f"r-{binary_in}-{binary_out}")
        check(result.get_response()["id"] == f"r-{binary_in}-{binary_out}", "id echoed")
        answers[(binary_in, binary_out)] = (result.as_numpy("label"), result.as_numpy("probabilities"))
first_labels, first_probabilities = answers[(True, True)]
check(first_labels.dtype == np.int64 and first_labels.shape == (64,), first_labels)
check(first_probabilities.shape == (64, 10), first_probabilities.shape)
accuracy = float((first_labels == labels).mean())
check(accuracy >= 0.9, f"accuracy {accuracy}")
for key, (got_labels, got_probabilities) in answers.items():
    check((got_labels == first_labels).all(), f"labels differ for {key}")
    check(np.array_equal(got_probabilities, first_probabilities), f"probabilities differ for {key}")

# No outputs named: all of them, binary (tritonclient asks binary_data_output).
tensor = httpclient.InferInput("pixels", list(pixels.shape), "FP32")
tensor.set_data_from_numpy(pixels)
result = client.infer("digits", [tensor], model_version="1")
check((result.as_numpy("label") == first_labels).all(), "all outputs")
check(result.as_numpy("stage").shape == (64,), "stage output")

# Every element type, both ways.
for model, datatype, dtype in [
    ("echo-fp16", "FP16", np.float16),
    ("echo-fp32", "FP32", np.float32),
    ("echo-fp64", "FP64", np.float64),
    ("echo-uint8", "UINT8", np.uint8),
    ("echo-int32", "INT32", np.int32),
    ("echo-int64", "INT64", np.int64),
]:
    values = (np.arange(6).reshape(2, 3) * 3 + 1).astype(dtype)
    for binary in (True, False):
        tensor = httpclient.InferInput("x", [2, 3], datatype)
        tensor.set_data_from_numpy(values, binary_data=binary)
        out = httpclient.InferRequestedOutput("x", binary_data=binary)
        echoed = client.infer(model, [tensor], outputs=[out]).as_numpy("x")
        check(echoed.dtype == dtype and np.array_equal(echoed, values), f"{model} binary={binary}: {echoed}")

# Errors come back as exceptions carrying the server's message.
wrong = httpclient.InferInput("pixels", [1, 64], "FP64")
wrong.set_data_from_numpy(pixels[:1].astype(np.float64))
refused(lambda: client.infer("digits", [wrong]), 400, "must be FP32, got FP64")
short = httpclient.InferInput("pixels", [1, 63], "FP32")
short.set_data_from_numpy(pixels[:1, :63])
refused(lambda: client.infer("digits", [short]), 400, "must have shape [N, 64], got [1, 63]")
refused(lambda: client.infer("no-such-model", [short]), 404, "unknown model `no-such-model`")

# Statistics count what was served.
stats = client.get_inference_statistics("digits")
digits = stats["model_stats"][0]
check(digits["name"] == "digits" and digits["inference_stats"]["success"]["count"] >= 5, digits)
check(digits["inference_count"] >= 5 * 64, digits)
check(any(s["name"] == "digits" for s in client.get_inference_statistics()["model_stats"]), "all stats")

print(f"tritonclient conformance: {checks} checks passed")
