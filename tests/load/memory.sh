#!/usr/bin/env bash
# The server's memory (figures, never pass/fail), serving the example:
#   1. RSS once ready and idle;
#   2. peak RSS (VmHWM) before and after one 2 MB gRPC ModelInfer message of
#      a million empty inputs (refused), and its status;
#   3. RSS after a load run (wrk, the mixed good traffic of
#      tests/load/make_bodies.py, LOAD_SECONDS), then after IDLE_SECONDS idle.
#
#   AIMASS_BIN=target/release/aimass bash tests/load/memory.sh
#
# Environment: AIMASS_BIN (default $CARGO_TARGET_DIR/release/aimass), PORT
# (18712; gRPC on PORT+1), LOAD_SECONDS (60), IDLE_SECONDS (10), PYTHON (a
# Python with tritonclient[grpc]; default $AIMASS_PYTHON or python3). Needs
# wrk.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${AIMASS_BIN:-${CARGO_TARGET_DIR:-target}/release/aimass}
PORT=${PORT:-18712}; GRPC=$((PORT + 1))
LOAD=${LOAD_SECONDS:-60}; IDLE=${IDLE_SECONDS:-10}
PYTHON=${PYTHON:-${AIMASS_PYTHON:-python3}}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/aimass-memory.XXXXXX")
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" serve examples/digits/aimass.toml --listen "127.0.0.1:$PORT" \
  --grpc-listen "127.0.0.1:$GRPC" > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 600); do
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/v2/health/ready" && break
  kill -0 "$SERVER" 2>/dev/null || { tail -5 "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done
field() { awk -v f="$1:" '$1 == f {printf "%.1f", $2 / 1024}' "/proc/$SERVER/status"; }
sleep 2
echo "idle after start: RSS $(field VmRSS) MiB"

echo "peak before the gRPC message: $(field VmHWM) MiB"
"$PYTHON" - "$GRPC" <<'PY'
import sys
import grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc
request = service_pb2.ModelInferRequest(model_name="digits")
for _ in range(1_000_000):
    request.inputs.add()
print(f"message: {len(request.SerializeToString())} bytes, 1000000 empty inputs")
channel = grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}",
                                options=[("grpc.max_send_message_length", -1)])
try:
    service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
    print("answer: OK")
except grpc.RpcError as e:
    print(f"answer: {e.code().name}: {e.details()[:120]}")
PY
sleep 1
echo "peak after the gRPC message: $(field VmHWM) MiB, RSS $(field VmRSS) MiB"

python3 tests/load/make_bodies.py examples/digits/data/test.csv "$WORK/bodies" >/dev/null
grep ' 200 ' "$WORK/bodies/requests.txt" > "$WORK/good.txt"
REQUESTS="$WORK/good.txt" wrk -t2 -c32 -d"${LOAD}s" -s tests/load/mixed.lua \
  "http://127.0.0.1:$PORT" | grep -E '^(RESULT|STATUS)' || true
echo "right after ${LOAD}s of load: RSS $(field VmRSS) MiB (peak $(field VmHWM) MiB)"
sleep "$IDLE"
echo "after ${IDLE}s idle: RSS $(field VmRSS) MiB"
