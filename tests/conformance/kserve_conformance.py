"""Conformance of aimass with KServe's own clients (the `kserve` package):
InferenceRESTClient over the v2 REST protocol and InferenceGRPCClient over
gRPC, against a live server.

Run by tests/conformance.rs:
    python kserve_conformance.py REST_HOST:PORT GRPC_HOST:PORT DIGITS_TEST_CSV
"""

import asyncio
import csv
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest
from kserve.inference_client import RESTConfig

rest_url, grpc_url, csv_path = f"http://{sys.argv[1]}", sys.argv[2], sys.argv[3]
checks = 0


def check(condition, what):
    global checks
    if not condition:
        raise AssertionError(what)
    checks += 1


rows = list(csv.reader(open(csv_path)))[1:65]
pixels = np.array([[float(v) for v in row[:64]] for row in rows], dtype=np.float32)
labels = np.array([int(row[64]) for row in rows])


def request(binary):
    tensor = InferInput("pixels", list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels, binary_data=binary)
    return InferRequest(model_name="digits", infer_inputs=[tensor], request_id="k-1")


def output(response, name):
    return next(o for o in response.outputs if o.name == name).as_numpy()


async def main():
    rest = InferenceRESTClient(RESTConfig(protocol="v2"))
    check(await rest.is_server_live(rest_url), "REST live")
    check(await rest.is_server_ready(rest_url), "REST ready")
    check(await rest.is_model_ready(rest_url, "digits"), "REST digits ready")
    check(not await rest.is_model_ready(rest_url, "no-such-model"), "REST unknown model not ready")
    answers = []
    for binary in (False, True):
        response = await rest.infer(rest_url, request(binary), model_name="digits")
        check(response.id == "k-1", f"REST id {response.id}")
        answers.append((output(response, "label"), output(response, "probabilities")))
    await rest.close()

    grpc = InferenceGRPCClient(url=grpc_url)
    check(await grpc.is_server_live(), "gRPC live")
    check(await grpc.is_server_ready(), "gRPC ready")
    check(await grpc.is_model_ready("digits"), "gRPC digits ready")
    response = await grpc.infer(request(True))
    check(response.id == "k-1", f"gRPC id {response.id}")
    answers.append((output(response, "label"), output(response, "probabilities")))
    await grpc.close()

    first_labels, first_probabilities = answers[0]
    check(float((first_labels == labels).mean()) >= 0.9, f"accuracy of {first_labels}")
    for got_labels, got_probabilities in answers[1:]:
        check(np.array_equal(got_labels, first_labels), "labels agree across clients")
        check(got_probabilities.tobytes() == first_probabilities.tobytes(), "probabilities agree, bit for bit")
    print(f"kserve conformance: {checks} checks passed")


asyncio.run(main())
