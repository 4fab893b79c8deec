"""Replays a split of the digits data through a running server, one image
per request, and sends the true label of every Nth request back as
feedback: traffic for distill.py to learn from. Standard library only.

    python replay.py --url http://127.0.0.1:8000 --data data/train.csv --feedback-every 3
"""

import argparse
import csv
import json
import urllib.request


def post(url, body, headers=None):
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers or {})},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model", default="digits")
    parser.add_argument("--data", default="data/train.csv")
    parser.add_argument("--feedback-every", type=int, default=3, help="0: no feedback")
    args = parser.parse_args()
    with open(args.data, newline="") as f:
        rows = list(csv.reader(f))[1:]
    sent = labelled = correct = labelled_correct = 0
    for i, row in enumerate(rows):
        pixels, label = [float(v) for v in row[:-1]], int(row[-1])
        request_id = f"replay-{i:05d}"
        answer = post(
            f"{args.url}/v2/models/{args.model}/infer",
            {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": pixels}]},
            {"x-request-id": request_id},
        )
        served = next(o for o in answer["outputs"] if o["name"] == "label")["data"][0]
        correct += int(served == label)
        sent += 1
        if args.feedback_every and i % args.feedback_every == 0:
            post(
                f"{args.url}/v2/models/{args.model}/feedback",
                {"id": request_id, "label": label},
            )
            labelled += 1
            labelled_correct += int(served == label)
    print(json.dumps({
        "requests": sent,
        "feedback": labelled,
        "accuracy": correct / sent,
        "accuracy_with_feedback": labelled_correct / max(labelled, 1),
    }))


if __name__ == "__main__":
    main()
