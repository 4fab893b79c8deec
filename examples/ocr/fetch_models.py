#!/usr/bin/env python3
"""Fetches PaddleOCR's ONNX models from the two RapidOCR wheels on PyPI.

No weights live in git: this downloads the wheels (cached outside the
clone, in $AIMASS_CACHE or ~/.cache/aimass/wheels), checks every wheel and
every model against a pinned sha256, and unpacks the models into
`models/` beside this file. Each recogniser's character list (the ONNX
metadata property `character`; index 0 is the CTC blank, a space is
appended last, as RapidOCR does) is written beside it as
`<model>.characters.txt`, one character per line, and as
`<model>.characters.onnx`, a graph with no inputs whose one output
`characters` (UINT8) is that text: the operator grants it to the recogniser
like any graph (a plugin cannot read ONNX metadata through wasi:nn).
It also writes `best_class.onnx` (ArgMax and ReduceMax over the classes),
which the recognisers run on their scores natively.

Standard library only; run with any Python 3.9+ that has pip:

    python3 examples/ocr/fetch_models.py
"""

import hashlib
import os
import pathlib
import subprocess
import sys
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
MODELS = HERE / "models"
CACHE = pathlib.Path(
    os.environ.get("AIMASS_CACHE", pathlib.Path.home() / ".cache" / "aimass")
) / "wheels"

WHEELS = {
    "rapidocr-3.10.0-py3-none-any.whl": (
        "rapidocr==3.10.0",
        "2fc34e26cd0f48514804a94f8832283039c7334076bff60768b1fed9ad068050",
    ),
    "rapidocr_onnxruntime-1.4.4-py3-none-any.whl": (
        "rapidocr-onnxruntime==1.4.4",
        "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
    ),
}

# (wheel, path inside it, file written, sha256)
MODEL_FILES = [
    (
        "rapidocr-3.10.0-py3-none-any.whl",
        "rapidocr/models/PP-OCRv6_det_small.onnx",
        "det_v6.onnx",
        "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
    ),
    (
        "rapidocr-3.10.0-py3-none-any.whl",
        "rapidocr/models/PP-OCRv6_rec_small.onnx",
        "rec_v6.onnx",
        "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
    ),
    (
        "rapidocr-3.10.0-py3-none-any.whl",
        "rapidocr/models/ch_ppocr_mobile_v2.0_cls_mobile.onnx",
        "cls.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
    ),
    (
        "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "det_v4.onnx",
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
    ),
    (
        "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "rec_v4.onnx",
        "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
    ),
]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(name: str) -> bytes:
    requirement, digest = WHEELS[name]
    path = CACHE / name
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--only-binary=:all:", "--disable-pip-version-check",
             "-d", str(CACHE), requirement],
            check=True,
        )
    data = path.read_bytes()
    if sha256(data) != digest:
        path.unlink()
        sys.exit(f"{name}: sha256 {sha256(data)} is not the pinned {digest}; deleted, run again")
    return data


def varint(data: bytes, at: int):
    value, shift = 0, 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def fields(data: bytes):
    """(field number, wire type, value) of one protobuf message, top level."""
    at = 0
    while at < len(data):
        key, at = varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = varint(data, at)
        elif wire == 1:
            value, at = data[at:at + 8], at + 8
        elif wire == 2:
            length, at = varint(data, at)
            value, at = data[at:at + length], at + length
        elif wire == 5:
            value, at = data[at:at + 4], at + 4
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {at}")
        yield number, wire, value


def metadata(model: bytes) -> dict:
    """ModelProto.metadata_props (field 14: key 1, value 2)."""
    props = {}
    for number, wire, value in fields(model):
        if number == 14 and wire == 2:
            entry = {n: v for n, _, v in fields(value)}
            props[entry.get(1, b"").decode()] = entry.get(2, b"").decode()
    return props


def field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return encode_varint(number << 3 | 2) + encode_varint(len(payload)) + payload


def varint_field(number: int, value: int) -> bytes:
    return encode_varint(number << 3) + encode_varint(value)


def encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def constant_graph(name: str, data: bytes) -> bytes:
    """An ONNX model (opset 13) with no inputs and one UINT8 output: `data`."""
    uint8 = 2
    tensor = varint_field(1, len(data)) + varint_field(2, uint8) + field(9, data)
    attribute = field(1, b"value") + field(5, tensor) + varint_field(20, 4)  # type TENSOR
    node = field(2, name.encode()) + field(4, b"Constant") + field(5, attribute)
    shape = field(1, varint_field(1, len(data)))  # dim { dim_value }
    tensor_type = varint_field(1, uint8) + field(2, shape)
    value_info = field(1, name.encode()) + field(2, field(1, tensor_type))
    graph = field(1, node) + field(2, b"characters") + field(12, value_info)
    opset = field(1, b"") + varint_field(2, 13)
    return varint_field(1, 8) + field(8, opset) + field(7, graph)


def best_class_graph() -> bytes:
    """An ONNX model (opset 13): `scores` FP32 [N, T, C] in; per step the
    best class (`index` INT64 [N, T]) and its probability (`score` FP32
    [N, T]) out. The recogniser hands its output to it as it is, so greedy
    CTC decoding reads N×T values instead of N×T×C."""
    def attribute_int(name: str, value: int) -> bytes:
        return field(1, name.encode()) + varint_field(3, value) + varint_field(20, 2)  # INT

    def attribute_ints(name: str, values) -> bytes:
        return field(1, name.encode()) + b"".join(varint_field(8, v) for v in values) + varint_field(20, 7)

    def node(op: str, inputs, outputs, attributes) -> bytes:
        return (b"".join(field(1, i.encode()) for i in inputs)
                + b"".join(field(2, o.encode()) for o in outputs)
                + field(4, op.encode())
                + b"".join(field(5, a) for a in attributes))

    def value(name: str, elem_type: int, dims) -> bytes:
        shape = b"".join(field(1, field(2, d.encode())) for d in dims)  # dim { dim_param }
        tensor_type = varint_field(1, elem_type) + field(2, shape)
        return field(1, name.encode()) + field(2, field(1, tensor_type))

    argmax = node("ArgMax", ["scores"], ["index"], [attribute_int("axis", 2), attribute_int("keepdims", 0)])
    reducemax = node("ReduceMax", ["scores"], ["score"], [attribute_ints("axes", [2]), attribute_int("keepdims", 0)])
    graph = (field(1, argmax) + field(1, reducemax) + field(2, b"best_class")
             + field(11, value("scores", 1, ["N", "T", "C"]))
             + field(12, value("index", 7, ["N", "T"]))
             + field(12, value("score", 1, ["N", "T"])))
    opset = field(1, b"") + varint_field(2, 13)
    return varint_field(1, 8) + field(8, opset) + field(7, graph)


def main() -> None:
    MODELS.mkdir(exist_ok=True)
    wheels = {}
    for wheel, inner, out, digest in MODEL_FILES:
        target = MODELS / out
        if target.exists() and sha256(target.read_bytes()) == digest:
            data = target.read_bytes()
        else:
            if wheel not in wheels:
                wheels[wheel] = fetch_wheel(wheel)
            with zipfile.ZipFile(CACHE / wheel) as archive:
                data = archive.read(inner)
            if sha256(data) != digest:
                sys.exit(f"{inner}: sha256 {sha256(data)} is not the pinned {digest}")
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        if out.startswith("rec_"):
            chars = metadata(data).get("character")
            if chars is None:
                sys.exit(f"{out}: no `character` metadata")
            # Index 0 is the CTC blank; RapidOCR appends a space last.
            listing = ["<blank>"] + chars.splitlines() + [" "]
            text = "\n".join(listing) + "\n"
            (MODELS / (target.stem + ".characters.txt")).write_text(text, encoding="utf-8")
            (MODELS / (target.stem + ".characters.onnx")).write_bytes(
                constant_graph("characters", text.encode("utf-8"))
            )
        print(f"{target.relative_to(HERE)}: {len(data)} bytes, sha256 ok")
    best = MODELS / "best_class.onnx"
    best.write_bytes(best_class_graph())
    print(f"{best.relative_to(HERE)}: written")


if __name__ == "__main__":
    main()
