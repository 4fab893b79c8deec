#!/usr/bin/env bash
# OCR side by side (figures, never pass/fail): images/s and p50/p99 per
# image at c=1 and c=4 for
#   - aimass `ocr-v4` (the same three models RapidOCR runs) and `ocr` (its
#     recogniser a cascade, v4 then v6) on tract, the embedded default;
#   - the same on the onnxruntime backend (every artifact switched);
#   - RapidOCR's own Python package (rapidocr-onnxruntime 1.4.4, ONNX
#     Runtime on the CPU), in-process, on the same pages;
# one server at a time, then where aimass's time goes per node and per
# native compute (from /metrics).
#
#   bash tests/load/ocr.sh
#
# tract runs twice: one thread per compute (the default), and
# --tract-threads equal to the cores (ONNX Runtime's default intra-op threads).
#
# Environment: PAGES (8), ROUNDS (2, after a warm-up round), PORT (18740),
# RUNS (backend:threads pairs; "tract:1 tract:CORES onnxruntime:1"), MODELS
# ("ocr-v4 ocr"), RAPIDOCR (1; 0 leaves RapidOCR out),
# AIMASS_BIN (target/release/aimass, built with --features onnxruntime),
# PYTHON (a python with Pillow; ~/.cache/aimass/ci-venv/bin/python),
# RAPIDOCR_PYTHON (a python with rapidocr-onnxruntime==1.4.4; made in
# ~/.cache/aimass/rapidocr-venv when unset), ORT_DYLIB_PATH (the onnxruntime
# library; found in PYTHON's site-packages when unset). Needs the OCR plugins
# built (cargo build --release --target wasm32-wasip2 -p ocr-detect
# -p ocr-classify -p ocr-recognise --target-dir target) and the models
# (python3 examples/ocr/fetch_models.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
PAGES=${PAGES:-8}; ROUNDS=${ROUNDS:-2}; PORT=${PORT:-18740}
BIN=${AIMASS_BIN:-${CARGO_TARGET_DIR:-target}/release/aimass}
PYTHON=${PYTHON:-$HOME/.cache/aimass/ci-venv/bin/python}
[ -x "$BIN" ] || { echo "ocr bench: no binary at $BIN (cargo build --release -p aimass --features onnxruntime)" >&2; exit 1; }
if [ -z "${RAPIDOCR_PYTHON:-}" ]; then
  RAPIDOCR_PYTHON=$HOME/.cache/aimass/rapidocr-venv/bin/python
  [ -x "$RAPIDOCR_PYTHON" ] || python3 -m venv "$HOME/.cache/aimass/rapidocr-venv"
  "$RAPIDOCR_PYTHON" -m pip install --quiet --disable-pip-version-check \
    rapidocr-onnxruntime==1.4.4 onnxruntime==1.32.0
fi
if [ -z "${ORT_DYLIB_PATH:-}" ]; then
  ORT_DYLIB_PATH=$(ls "$(dirname "$PYTHON")"/../lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -n 1)
  export ORT_DYLIB_PATH
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aimass-ocr-bench.XXXXXX")
ORT_CONFIG=examples/ocr/.aimass-onnxruntime.toml
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$WORK" "$ORT_CONFIG"
}
trap cleanup EXIT
URL="http://127.0.0.1:$PORT"

"$PYTHON" examples/ocr/make_pages.py --out "$WORK/pages" --pages "$PAGES" --seed 42 >&2
# Every artifact on ONNX Runtime instead of tract; paths stay relative.
sed 's/^path = "models\/\(.*\)"$/path = "models\/\1"\nbackend = "onnxruntime"/' \
  examples/ocr/aimass.toml > "$ORT_CONFIG"

serve() {
  AIMASS_GRPC_LISTEN=off "$BIN" serve "$1" --listen "127.0.0.1:$PORT" \
    --request-timeout-ms 600000 --tract-threads "$2" > "$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 1200); do
    curl -sf -o /dev/null "$URL/v2/health/ready" && return
    kill -0 "$SERVER" 2>/dev/null || { echo "ocr bench: the server died:" >&2; tail -5 "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "ocr bench: not ready in 120 s" >&2; exit 1
}
stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""; }

# Where the time went: seconds per node and per graph's computes.
breakdown() {
  curl -s "$URL/metrics" | awk -v backend="$1" '
    /^aimass_node_duration_seconds_sum/ { match($0, /node="[^"]*"/); n = substr($0, RSTART + 6, RLENGTH - 7); node[n] += $NF }
    /^aimass_node_duration_seconds_count/ { match($0, /node="[^"]*"/); n = substr($0, RSTART + 6, RLENGTH - 7); calls[n] += $NF }
    /^aimass_tract_plans_total/ { match($0, /event="[^"]*"/); e = substr($0, RSTART + 7, RLENGTH - 8); plans[e] += $NF }
    /^aimass_nn_compute_duration_seconds_sum/ { match($0, /graph="[^"]*"/); g = substr($0, RSTART + 7, RLENGTH - 8); graph[g] += $NF }
    END {
      for (n in node) printf "  %s node %-10s %4d calls %8.1f ms each\n", backend, n, calls[n], 1000 * node[n] / calls[n]
      for (g in graph) printf "  %s compute %-18s %8.1f s in all\n", backend, g, graph[g]
      for (e in plans) printf "  %s tract plans %-6s %6d\n", backend, e, plans[e]
    }' | sort
}

# tract with one thread per compute (the default), then with as many as
# ONNX Runtime uses here (its default: one per core), then ONNX Runtime.
CORES=$(nproc)
for run in ${RUNS:-tract:1 tract:$CORES onnxruntime:1}; do
  backend=${run%%:*}; threads=${run##*:}
  config=examples/ocr/aimass.toml
  [ "$backend" = onnxruntime ] && config=$ORT_CONFIG
  [ "$backend" = tract ] && backend="tract-t$threads"
  serve "$config" "$threads"
  for model in ${MODELS:-ocr-v4 ocr}; do
    for c in 1 4; do
      printf 'aimass %-12s %-6s c=%d  ' "$backend" "$model" "$c"
      "$PYTHON" tests/load/ocr_bench.py aimass "$URL" "$model" "$WORK/pages" --concurrency "$c" --rounds "$ROUNDS"
    done
  done
  breakdown "$backend"
  stop
done
if [ "${RAPIDOCR:-1}" = 1 ]; then
  for c in 1 4; do
    printf 'rapidocr-onnxruntime      c=%d  ' "$c"
    "$RAPIDOCR_PYTHON" tests/load/ocr_bench.py rapidocr "$WORK/pages" --concurrency "$c" --rounds "$ROUNDS"
  done
fi
