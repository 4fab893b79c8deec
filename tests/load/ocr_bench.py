"""Images per second and latency per image for OCR (figures, never pass/fail).

Run by tests/load/ocr.sh; two modes, same pages, same concurrency:

    python ocr_bench.py aimass URL MODEL PAGES --concurrency C --rounds R
    python ocr_bench.py rapidocr PAGES --concurrency C --rounds R

`aimass` posts each PNG as a BYTES element (binary extension) to MODEL;
`rapidocr` runs RapidOCR's own Python package (rapidocr-onnxruntime, ONNX
Runtime on the CPU) in this process, C threads sharing one engine, as a
user would embed it. Each of C workers takes the next page until every page
has been read R times; the first round is a warm-up (plans, caches) and is
not counted. Prints one JSON line.
"""

import argparse
import json
import pathlib
import statistics
import struct
import threading
import time
import urllib.request


def aimass_reader(url, model):
    def read(png):
        element = struct.pack("<I", len(png)) + png
        header = json.dumps({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES",
                                         "parameters": {"binary_data_size": len(element)}}]}).encode()
        request = urllib.request.Request(
            f"{url}/v2/models/{model}/infer",
            data=header + element,
            headers={"Inference-Header-Content-Length": str(len(header)),
                     "Content-Type": "application/octet-stream"},
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            body = json.loads(response.read())
        return next(len(o["data"]) for o in body["outputs"] if o["name"] == "text")
    return read


def rapidocr_reader():
    from rapidocr_onnxruntime import RapidOCR
    engine = RapidOCR()

    def read(png):
        result, _ = engine(png)
        return len(result or [])
    return read


def run(read, pages, concurrency, rounds):
    images = [p.read_bytes() for p in pages]
    for image in images:  # warm-up round, not counted
        read(image)
    work = [image for _ in range(rounds) for image in images]
    lock = threading.Lock()
    latencies, lines, errors = [], [], []

    def worker():
        while True:
            with lock:
                if not work:
                    return
                image = work.pop()
            started = time.perf_counter()
            try:
                found = read(image)
            except Exception as e:  # counted, not fatal: a figure, not a test
                errors.append(repr(e))
                continue
            took = time.perf_counter() - started
            with lock:
                latencies.append(took)
                lines.append(found)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "images": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "images_per_s": round(len(latencies) / elapsed, 3),
        "p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1)
        if latencies else None,
        "lines_per_image": round(sum(lines) / max(1, len(lines)), 1),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["aimass", "rapidocr"])
    parser.add_argument("args", nargs="+")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    a = parser.parse_args()
    if a.mode == "aimass":
        url, model, folder = a.args
        read = aimass_reader(url, model)
    else:
        (folder,) = a.args
        read = rapidocr_reader()
    pages = sorted(pathlib.Path(folder).glob("*.png"))
    result = run(read, pages, a.concurrency, a.rounds)
    result.update(mode=a.mode, concurrency=a.concurrency, pages=len(pages))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
