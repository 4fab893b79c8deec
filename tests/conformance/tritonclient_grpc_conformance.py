"""Conformance of aimass's gRPC service with the stock Triton gRPC client.

Run by tests/conformance.rs against a live server:
    python tritonclient_grpc_conformance.py HOST:PORT REST_HOST:PORT DIGITS_TEST_CSV ADMIN_TOKEN
Every check uses tritonclient[grpc] exactly as a Triton user would; the
server guards its repository API with ADMIN_TOKEN, sent as metadata. The
same rows are also sent over REST (tritonclient[http]): the answers must
be identical to the bit.
"""

import csv
import queue
import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

url, rest_url, csv_path, token = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
admin = {"authorization": f"Bearer {token}"}
client = grpcclient.InferenceServerClient(url=url)
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
        check(e.status() == status, f"{text}: status {e.status()}")
        check(text in e.message(), f"{text!r} not in {e.message()!r}")
        return
    raise AssertionError(f"expected an error containing {text!r}")


# Health and metadata.
check(client.is_server_live(), "live")
check(client.is_server_ready(), "ready")
server = client.get_server_metadata(as_json=True)
check(server["name"] == "aimass" and "model_repository" in server["extensions"], server)
check(client.is_model_ready("digits"), "digits ready")
check(client.is_model_ready("digits", model_version="1"), "digits v1 ready")
check(not client.is_model_ready("no-such-model"), "unknown model not ready")
meta = client.get_model_metadata("digits", as_json=True)
check(meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": ["-1", "64"]}], meta)
check([o["name"] for o in meta["outputs"]] == ["label", "probabilities", "confidence", "stage"], meta)
config = client.get_model_config("digits", as_json=True)["config"]
check(config["input"][0]["data_type"] == "TYPE_FP32" and config["input"][0]["dims"] == ["-1", "64"], config)
refused(lambda: client.get_model_metadata("no-such-model"), "StatusCode.NOT_FOUND", "unknown model `no-such-model`")

# Repository: index, unload, load, with the admin token (refused without).
refused(lambda: client.get_model_repository_index(), "StatusCode.UNAUTHENTICATED", "admin token")
index = client.get_model_repository_index(headers=admin, as_json=True)["models"]
check({"name": "digits", "version": "1", "state": "READY"} in index, index)
client.unload_model("scale", headers=admin)
check(not client.is_model_ready("scale"), "scale unloaded")
client.load_model("scale", headers=admin)
check(client.is_model_ready("scale"), "scale loaded again")

# Inference on real test images, the same over gRPC and REST.
rows = list(csv.reader(open(csv_path)))[1:65]
pixels = np.array([[float(v) for v in row[:64]] for row in rows], dtype=np.float32)
labels = np.array([int(row[64]) for row in rows])
tensor = grpcclient.InferInput("pixels", list(pixels.shape), "FP32")
tensor.set_data_from_numpy(pixels)
outputs = [grpcclient.InferRequestedOutput("label"), grpcclient.InferRequestedOutput("probabilities")]
result = client.infer("digits", [tensor], outputs=outputs, request_id="g-1")
check(result.get_response().id == "g-1", "id echoed")
grpc_labels, grpc_probabilities = result.as_numpy("label"), result.as_numpy("probabilities")
check(grpc_labels.dtype == np.int64 and grpc_labels.shape == (64,), grpc_labels)
check(float((grpc_labels == labels).mean()) >= 0.9, "accuracy")
rest = httpclient.InferenceServerClient(url=rest_url)
rest_tensor = httpclient.InferInput("pixels", list(pixels.shape), "FP32")
rest_tensor.set_data_from_numpy(pixels)
rest_result = rest.infer("digits", [rest_tensor])
check(np.array_equal(rest_result.as_numpy("label"), grpc_labels), "labels: REST == gRPC")
check(rest_result.as_numpy("probabilities").tobytes() == grpc_probabilities.tobytes(), "probabilities: REST == gRPC, bit for bit")

# Every element type.
for model, datatype, dtype in [
    ("echo-fp16", "FP16", np.float16),
    ("echo-fp32", "FP32", np.float32),
    ("echo-fp64", "FP64", np.float64),
    ("echo-uint8", "UINT8", np.uint8),
    ("echo-int32", "INT32", np.int32),
    ("echo-int64", "INT64", np.int64),
]:
    values = (np.arange(6).reshape(2, 3) * 3 + 1).astype(dtype)
    echo = grpcclient.InferInput("x", [2, 3], datatype)
    echo.set_data_from_numpy(values)
    echoed = client.infer(model, [echo]).as_numpy("x")
    check(echoed.dtype == dtype and np.array_equal(echoed, values), f"{model}: {echoed}")

# Streaming: many requests in one stream, each answered.
answers = queue.Queue()
client.start_stream(callback=lambda result, error: answers.put((result, error)))
for i in range(32):
    one = grpcclient.InferInput("pixels", [1, 64], "FP32")
    one.set_data_from_numpy(pixels[i % 64 : i % 64 + 1])
    client.async_stream_infer("digits", [one], request_id=f"s-{i}")
client.stop_stream()
seen = []
while not answers.empty():
    result, error = answers.get()
    check(error is None, f"stream error {error}")
    seen.append(result.get_response().id)
check(sorted(seen) == sorted(f"s-{i}" for i in range(32)), f"stream answers {seen}")

# Errors come back with the status for their kind and the server's message.
wrong = grpcclient.InferInput("pixels", [1, 64], "FP64")
wrong.set_data_from_numpy(pixels[:1].astype(np.float64))
refused(lambda: client.infer("digits", [wrong]), "StatusCode.INVALID_ARGUMENT", "must be FP32, got FP64")
refused(lambda: client.infer("no-such-model", [wrong]), "StatusCode.NOT_FOUND", "unknown model `no-such-model`")

# Statistics count what was served.
stats = client.get_inference_statistics("digits", as_json=True)["model_stats"][0]
check(stats["name"] == "digits" and int(stats["inference_count"]) >= 64, stats)

print(f"tritonclient gRPC conformance: {checks} checks passed")
