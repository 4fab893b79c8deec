"""Serves the digits example's heavy teacher through a real Triton, for
tests/load/batching.sh to drive beside aimass's `heavy-teacher` node.

PyTriton's bundled tritonserver (2.51, python backend, CPU), model
`heavy-teacher`: input `x` FP32 [-1, 32]; outputs `label` INT64,
`probabilities` FP32 [-1, 10] and `confidence` FP32, as the aimass node
answers them. Triton's dynamic batching is on (max_batch_size 64, no queue
delay, as the aimass node is configured); the graph runs in ONNX Runtime on
one thread, like the aimass node's one tract instance.

    python triton_heavy.py MODEL.onnx HTTP_PORT WORKSPACE

Needs a python with nvidia-pytriton and onnxruntime, and LD_LIBRARY_PATH
set to that python's LIBDIR (the python backend loads libpython).
"""

import sys

import numpy as np
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig, TritonSecurityConfig

model_path, port, workspace = sys.argv[1], int(sys.argv[2]), sys.argv[3]

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
graph_input = session.get_inputs()[0].name
graph_output = session.get_outputs()[0].name


@batch
def infer(x):
    logits = session.run([graph_output], {graph_input: x.astype(np.float32)})[0]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return {
        "label": probabilities.argmax(axis=1).astype(np.int64).reshape(-1, 1),
        "probabilities": probabilities,
        "confidence": probabilities.max(axis=1).reshape(-1, 1),
    }


config = TritonConfig(
    http_address="127.0.0.1",
    http_port=port,
    grpc_address="127.0.0.1",
    grpc_port=port + 1,
    metrics_port=port + 2,
    allow_metrics=False,
    log_verbose=0,
)
# The statistics endpoint (for execution vs inference counts) is restricted
# by default; this server listens on loopback only.
security = TritonSecurityConfig(restricted_endpoints=[])
with Triton(config=config, workspace=workspace, security_config=security) as triton:
    triton.bind(
        model_name="heavy-teacher",
        infer_func=infer,
        inputs=[Tensor(name="x", dtype=np.float32, shape=(32,))],
        outputs=[
            Tensor(name="label", dtype=np.int64, shape=(1,)),
            Tensor(name="probabilities", dtype=np.float32, shape=(10,)),
            Tensor(name="confidence", dtype=np.float32, shape=(1,)),
        ],
        config=ModelConfig(
            max_batch_size=64,
            batcher=DynamicBatcher(max_queue_delay_microseconds=0),
        ),
    )
    triton.serve()
