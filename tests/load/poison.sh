#!/usr/bin/env bash
# Containment through batching, measured (figures, never pass/fail): a
# release `aimass serve` with a batching node of the `poison` fixture
# (tests/plugins/poison); wrk's bystanders send good rows at c=32 while one
# poisoner sends a row that makes the plugin fail the whole call, every
# 100 ms. Prints, per kind of poison, the bystanders' answers by status and
# their p50/p99, and what the poisoner got.
#
#   bash tests/load/poison.sh
#   AIMASS_BIN=/path/to/other/aimass bash tests/load/poison.sh   # compare
#
# Environment: SECONDS_PER_RUN (10), PORT (18740), AIMASS_BIN
# (target/release/aimass, or $CARGO_TARGET_DIR/release/aimass). Needs wrk
# and curl, a release build (cargo build --release -p aimass); builds the
# fixture itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${SECONDS_PER_RUN:-10}; PORT=${PORT:-18740}
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${AIMASS_BIN:-$TARGET/release/aimass}
command -v wrk >/dev/null || { echo "bench: wrk not found (apt-get install -y wrk)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "bench: no binary at $BIN (cargo build --release -p aimass)" >&2; exit 1; }
cargo build --quiet --release --target wasm32-wasip2 -p poison --target-dir "$TARGET"
PLUGIN=$(realpath "$TARGET/wasm32-wasip2/release/poison.wasm")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aimass-poison.XXXXXX")
SERVER=""; POISONER=""
cleanup() {
  [ -n "$POISONER" ] && kill "$POISONER" 2>/dev/null
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
URL="http://127.0.0.1:$PORT"

cat > "$WORK/aimass.toml" <<TOML
[plugins.poison]
path = "$PLUGIN"
timeout_ms = 1000
max_instances = 2

[nodes.merged]
plugin = "poison"
batching = { max_batch_size = 64, max_queue_delay_us = 2000 }
TOML
row() { echo "{\"inputs\": [{\"name\": \"x\", \"shape\": [2, 3], \"datatype\": \"FP32\", \"data\": [$1, 2, 3, 4, 5, 6]}]}"; }
row 1 > "$WORK/good.json"
echo "/v2/models/merged/infer 200 0 $WORK/good.json" > "$WORK/requests.txt"

"$BIN" serve "$WORK/aimass.toml" --listen "127.0.0.1:$PORT" --grpc-listen off --max-concurrency 256 > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 600); do
  curl -sf -o /dev/null "$URL/v2/health/ready" && break
  kill -0 "$SERVER" 2>/dev/null || { echo "bench: the server died:" >&2; tail -5 "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done

# poison VALUE: a poison row every 100 ms until killed; its statuses in a file.
poison() {
  row "$1" > "$WORK/poison.json"
  : > "$WORK/poisoner.txt"
  while true; do
    curl -s -o /dev/null -w '%{http_code}\n' -H 'content-type: application/json' \
      --data-binary @"$WORK/poison.json" "$URL/v2/models/merged/infer" >> "$WORK/poisoner.txt" || true
    sleep 0.1
  done
}

for kind in "none:0" "trap:-1" "model-error:-3" "row-short:-4" "invalid-row:-5" "timeout:-2"; do
  label=${kind%%:*}; value=${kind#*:}
  if [ "$value" != 0 ]; then poison "$value" & POISONER=$!; fi
  out=$(REQUESTS="$WORK/requests.txt" wrk -t2 -c32 -d"${SECS}s" --timeout 10s -s tests/load/mixed.lua "$URL")
  if [ -n "$POISONER" ]; then kill "$POISONER"; wait "$POISONER" 2>/dev/null || true; POISONER=""; fi
  statuses=$(grep '^STATUS' <<<"$out" | cut -d' ' -f2-)
  result=$(grep '^RESULT' <<<"$out")
  p50=$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$result")
  p99=$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$result")
  poisoned="-"
  [ "$value" != 0 ] && poisoned=$(sort "$WORK/poisoner.txt" | uniq -c | awk '{printf "%s=%s ", $2, $1}')
  printf '%-12s bystanders: %-28s p50 %7.2f ms  p99 %8.2f ms   poisoner: %s\n' "$label" "$statuses" "$p50" "$p99" "$poisoned"
done
