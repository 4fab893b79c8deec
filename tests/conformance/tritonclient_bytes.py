"""BYTES with the stock Triton clients, as a Triton user sends text.

Run by tests/strings.rs against a live server serving tests/configs/strings.toml:
    python tritonclient_bytes.py HTTP_HOST:PORT GRPC_HOST:PORT
Empty strings, non-UTF-8 bytes, multi-byte text and many elements, as JSON
and as binary over HTTP, and over gRPC.
"""

import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

http_url, grpc_url = sys.argv[1], sys.argv[2]
checks = 0


def check(condition, what):
    global checks
    if not condition:
        raise AssertionError(what)
    checks += 1


elements = [b"", b"\xff\x00z", "größe 文字".encode(), b"plain"] + [
    f"row {i}".encode() for i in range(2000)
]
# bytes.upper() changes ASCII letters only, as the `strings` fixture does.
expected = [e.upper() for e in elements]
values = np.array(elements, dtype=np.object_)

for binary in (True, False):
    client = httpclient.InferenceServerClient(url=http_url)
    text = httpclient.InferInput("text", [len(elements)], "BYTES")
    if binary:
        text.set_data_from_numpy(values, binary_data=True)
        outputs = [httpclient.InferRequestedOutput("upper", binary_data=True)]
    else:
        # JSON can only carry text: the UTF-8 elements.
        utf8 = np.array([e for e in elements if e != b"\xff\x00z"], dtype=np.object_)
        text = httpclient.InferInput("text", [len(utf8)], "BYTES")
        text.set_data_from_numpy(utf8, binary_data=False)
        outputs = [httpclient.InferRequestedOutput("upper", binary_data=False)]
    result = client.infer("shout", [text], outputs=outputs)
    upper = result.as_numpy("upper")
    want = expected if binary else [e for e, s in zip(expected, elements) if s != b"\xff\x00z"]
    got = [u if isinstance(u, bytes) else str(u).encode() for u in upper.tolist()]
    check(got == want, f"http binary={binary}: {got[:5]} vs {want[:5]}")

client = grpcclient.InferenceServerClient(url=grpc_url)
text = grpcclient.InferInput("text", [len(elements)], "BYTES")
text.set_data_from_numpy(values)
result = client.infer("shout", [text])
check(list(result.as_numpy("upper")) == expected, "grpc BYTES round trip")
check(list(result.as_numpy("length")) == [len(e) for e in elements], "grpc lengths")
meta = client.get_model_metadata("shout", as_json=True)
check(meta["inputs"][0]["datatype"] == "BYTES", meta)

print(f"{checks} checks passed")
