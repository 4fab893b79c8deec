#!/usr/bin/env bash
# Load benchmark of the digits example (figures, never pass/fail): a release
# `aimass serve` on 127.0.0.1 driven by wrk, printing answered (200) req/s,
# rows/s, p50 and p99 (over all answers, 503s included) for
#   - batch-1 `digits` (JSON) at c=1, 8, 32, 64;
#   - the heavy teacher (two hidden layers of 1024) at c=64, with its dynamic
#     batching off, then on;
#   - the `digits` cascade (escalating to three small teachers) and the
#     `digits-heavy` cascade (escalating to the heavy teacher, batching on,
#     then off) at c=64, on a digit the student is unsure of;
#   - with TRITON_PYTHON set, the same heavy teacher in a real Triton with
#     dynamic batching (tests/load/triton_heavy.py) at c=64, same body.
#
#   bash tests/load/batching.sh
#   TRITON_PYTHON=~/.cache/aimass-peers/venv-pytriton/bin/python bash tests/load/batching.sh
#
# Environment: SECONDS_PER_RUN (10), THREADS (2), PORT (18720), AIMASS_BIN
# (target/release/aimass, or $CARGO_TARGET_DIR/release/aimass),
# TRITON_PYTHON (a python with nvidia-pytriton==0.7.0 and onnxruntime, as
# ../shared/peers/setup_peers.sh makes plus `pip install onnxruntime`;
# unset: no Triton run), TRITON_PORT (18730). Needs wrk
# (apt-get install -y wrk), a release build and the plugins built
# (cargo build --release --target wasm32-wasip2 -p scaler -p classifier-head
# --target-dir target).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${SECONDS_PER_RUN:-10}; THREADS=${THREADS:-2}; PORT=${PORT:-18720}
BIN=${AIMASS_BIN:-${CARGO_TARGET_DIR:-target}/release/aimass}
command -v wrk >/dev/null || { echo "bench: wrk not found (apt-get install -y wrk)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "bench: no binary at $BIN (cargo build --release -p aimass)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aimass-bench.XXXXXX")
# The config's paths are relative to its folder: the copy without batching
# lives beside it, and goes with the rest.
UNBATCHED=examples/digits/.aimass-unbatched.toml
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  # Triton runs in a process group of its own (python, tritonserver, stub).
  [ -n "${TRITON:-}" ] && kill -KILL -- "-$TRITON" 2>/dev/null
  rm -rf "$WORK" "$UNBATCHED"
}
trap cleanup EXIT
URL="http://127.0.0.1:$PORT"
BASE=$URL

# ready NAME PID LOG URL: waits (60 s at most) until URL answers 200.
ready() {
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null "$4" && return
    kill -0 "$2" 2>/dev/null || { echo "bench: $1 died:" >&2; tail -5 "$3" >&2; exit 1; }
    sleep 0.1
  done
  echo "bench: $1 was not ready in 60 s" >&2; exit 1
}

serve() {
  AIMASS_GRPC_LISTEN=off "$BIN" serve "$1" --listen "127.0.0.1:$PORT" --max-concurrency 256 > "$WORK/server.log" 2>&1 &
  SERVER=$!
  ready "the server" "$SERVER" "$WORK/server.log" "$URL/v2/health/ready"
}

stop() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""; }

# run LABEL MODEL BODY ROWS CONC: one wrk run, one line of figures.
run() {
  echo "/v2/models/$2/infer 200 0 $3" > "$WORK/requests.txt"
  threads=$(( $5 < THREADS ? $5 : THREADS ))
  out=$(REQUESTS="$WORK/requests.txt" wrk -t"$threads" -c"$5" -d"${SECS}s" --timeout 10s \
    -s tests/load/mixed.lua "$BASE")
  other=$(grep '^STATUS' <<<"$out" | cut -d' ' -f2- | tr ' ' '\n' | grep -v '^200=' | tr '\n' ' ' || true)
  ok=$(grep '^STATUS' <<<"$out" | cut -d' ' -f2- | tr ' ' '\n' | sed -n 's/^200=//p')
  result=$(grep '^RESULT' <<<"$out")
  requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$result")
  duration=$(sed -E 's/.*duration_s=([0-9.]+).*/\1/' <<<"$result")
  p50=$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$result")
  p99=$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$result")
  awk -v l="$1" -v c="$5" -v r="${ok:-0}" -v d="$duration" -v n="$4" -v p50="$p50" -v p99="$p99" -v o="${other:-none}" -v all="$requests" \
    'BEGIN {printf "%-36s c=%-3s %7.0f ok req/s %8.0f rows/s  p50 %6.2f ms  p99 %6.2f ms  (%.0f answers/s; other statuses: %s)\n", l, c, r / d, r * n / d, p50, p99, all / d, o}'
}

python3 tests/load/make_bodies.py examples/digits/data/test.csv "$WORK/bodies" >/dev/null
DIGIT="$WORK/bodies/digits-json-1.json"
grep -v 'batching = ' examples/digits/aimass.toml > "$UNBATCHED"

serve examples/digits/aimass.toml
# The heavy teacher takes features: the server's own `features` node makes
# them from the same digit.
curl -sf "$URL/v2/models/features/infer" -H 'Content-Type: application/json' \
  --data "$(python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); b["inputs"][0]["name"]="x"; print(json.dumps(b))' "$DIGIT")" \
  | python3 -c 'import json,sys; y=json.load(sys.stdin)["outputs"][0]; print(json.dumps({"inputs": [{"name": "x", "shape": y["shape"], "datatype": "FP32", "data": y["data"]}]}))' \
  > "$WORK/features.json"
# A digit the student is unsure of (below the cascade's 0.9): the cascade
# escalates it to the heavy teacher on every request.
python3 - "$URL" examples/digits/data/test.csv > "$WORK/unsure.json" <<'PY'
import json, sys, urllib.request
url, csv = sys.argv[1], sys.argv[2]
rows = [[float(v) for v in line.split(",")[:64]] for line in open(csv).read().splitlines()[1:]]
body = {"inputs": [{"name": "pixels", "shape": [len(rows), 64], "datatype": "FP32", "data": rows}]}
request = urllib.request.Request(url + "/v2/models/student/infer", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
outputs = {o["name"]: o["data"] for o in json.load(urllib.request.urlopen(request))["outputs"]}
unsure = next(i for i, c in enumerate(outputs["confidence"]) if c < 0.9)
print(json.dumps({"inputs": [{"name": "pixels", "shape": [1, 64], "datatype": "FP32", "data": rows[unsure]}]}))
PY
echo "bench: $BIN, ${SECS}s per run, wrk -t$THREADS, $(nproc) cores"
for c in 1 8 32 64; do run "digits batch-1" digits "$DIGIT" 1 "$c"; done
run "heavy-teacher batch-1, batching on" heavy-teacher "$WORK/features.json" 1 64
curl -s "$URL/v2/models/heavy-teacher/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)["model_stats"][0]
calls = sum(b["compute_infer"]["count"] for b in s["batch_stats"])
rows = s["inference_count"]
print("  heavy-teacher: %d rows in %d plugin calls, %.1f rows per call" % (rows, calls, rows / max(calls, 1)))'
run "digits cascade, escalating digit" digits "$WORK/unsure.json" 1 64
run "digits-heavy cascade, escalating" digits-heavy "$WORK/unsure.json" 1 64
stop

serve "$UNBATCHED"
run "heavy-teacher batch-1, batching off" heavy-teacher "$WORK/features.json" 1 64
run "digits-heavy, escalating, off" digits-heavy "$WORK/unsure.json" 1 64
stop

[ -n "${TRITON_PYTHON:-}" ] || exit 0
TRITON_PORT=${TRITON_PORT:-18730}
BASE="http://127.0.0.1:$TRITON_PORT"
libdir=$("$TRITON_PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
LD_LIBRARY_PATH=$libdir setsid "$TRITON_PYTHON" tests/load/triton_heavy.py \
  examples/digits/models/heavy_teacher.onnx "$TRITON_PORT" "$WORK/triton" > "$WORK/triton.log" 2>&1 &
TRITON=$!
ready Triton "$TRITON" "$WORK/triton.log" "$BASE/v2/models/heavy-teacher/ready"
# Triton reads `data` flat, in row-major order.
python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); t=b["inputs"][0]; d=t["data"]
t["data"]=[v for r in d for v in r] if d and isinstance(d[0], list) else d; print(json.dumps(b))' \
  "$WORK/features.json" > "$WORK/triton-features.json"
run "Triton heavy-teacher, dynamic batching" heavy-teacher "$WORK/triton-features.json" 1 64
curl -s "$BASE/v2/models/heavy-teacher/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)["model_stats"][0]
print("  Triton heavy-teacher: %d rows in %d executions, %.1f rows per execution"
      % (s["inference_count"], s["execution_count"], s["inference_count"] / max(s["execution_count"], 1)))'
kill -TERM -- "-$TRITON" 2>/dev/null || true
