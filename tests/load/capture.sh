#!/usr/bin/env bash
# What capture costs (figures, never pass/fail): batch-1 `digits` req/s with
# the example's capture of every request off (A) and on (B), in alternating
# rounds (tests/load/compare.sh), then the bytes on disk per captured
# request (inputs, outputs, the features and the teachers' escalated rows).
#
#   bash tests/load/capture.sh
#
# Environment: as compare.sh (AIMASS_BIN for the binary, default
# $CARGO_TARGET_DIR/release/aimass). Needs wrk and a release build with the
# plugins built (see batching.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${AIMASS_BIN:-${CARGO_TARGET_DIR:-target}/release/aimass}
PORT=${PORT:-18711}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/aimass-capture.XXXXXX")
# Copies beside the example (its paths are relative to its folder).
OFF=examples/digits/.aimass-capture-off.toml
ON=examples/digits/.aimass-capture-on.toml
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$WORK" "$OFF" "$ON"
}
trap cleanup EXIT
python3 - "$WORK/capture" "$OFF" "$ON" <<'PY'
import re, sys
folder, off, on = sys.argv[1:]
text = open("examples/digits/aimass.toml").read()
assert "[capture.digits]" in text
# The capture section: its header and the lines up to the next header.
open(off, "w").write(re.sub(r"^\[capture\.digits\]\n(?:(?!\[).*\n?)*", "", text, flags=re.M))
open(on, "w").write(re.sub(r'(\[capture\.digits\]\nfolder = )"[^"]*"', r'\1"%s"' % folder, text))
PY
BIN_A=$BIN BIN_B=$BIN CONFIG_A=$OFF CONFIG_B=$ON PORT=$PORT bash tests/load/compare.sh

# Bytes per captured request: one run with capture on, every test image in
# turn (one per request, as clients would send them), then the folder.
rm -rf "$WORK/capture"
AIMASS_GRPC_LISTEN=off "$BIN" serve "$ON" --listen "127.0.0.1:$PORT" --max-concurrency 256 \
  > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 600); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/v2/health/ready" && break
  sleep 0.1
done
mkdir -p "$WORK/images"
python3 - examples/digits/data/test.csv "$WORK/images" > "$WORK/requests.txt" <<'PY'
import csv, json, os, sys
rows = list(csv.reader(open(sys.argv[1])))[1:]
for i, row in enumerate(rows):
    path = os.path.join(sys.argv[2], f"{i}.json")
    body = {"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32",
                        "data": [float(v) for v in row[:64]]}]}
    open(path, "w").write(json.dumps(body))
    print(f"/v2/models/digits/infer 200 0 {path}")
PY
REQUESTS="$WORK/requests.txt" wrk -t2 -c32 -d5s -s tests/load/mixed.lua "http://127.0.0.1:$PORT" >/dev/null
sleep 2  # the last flush
metrics=$(curl -s "http://127.0.0.1:$PORT/metrics")
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
rows=$(sed -n 's/^aimass_capture_rows_total{model="digits"} //p' <<<"$metrics")
files=$(sed -n 's/^aimass_capture_files_total{model="digits"} //p' <<<"$metrics")
dropped=$(grep '^aimass_capture_dropped_total{model="digits"' <<<"$metrics" || echo "none")
bytes=$(du -sb "$WORK/capture/digits/requests" | cut -f1)
awk -v r="$rows" -v b="$bytes" -v f="$files" \
  'BEGIN {printf "capture: %d requests in %d files, %d bytes: %.0f bytes per request\n", r, f, b, b / r}'
echo "capture: dropped: $dropped"
