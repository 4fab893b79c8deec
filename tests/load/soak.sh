#!/usr/bin/env bash
# Soak test: mixed traffic against a release `aimass serve` of the digits
# example for a bounded time, one wrk run per minute, sampling the server's
# RSS; prints requests/s, statuses, p99 per minute and the RSS drift.
#
#   bash tests/load/soak.sh                  # 10 minutes of mixed traffic, c=64
#   MINUTES=3 MIX=digits1 bash tests/load/soak.sh   # batch-1 digits only (RSS over 1M requests)
#
# Environment: MINUTES (10), CONC (64), THREADS (2), PORT (18700),
# MIX (mixed | digits1), AIMASS_BIN (target/release/aimass, or
# $CARGO_TARGET_DIR/release/aimass), SCRAPE (0; 1 reads /metrics every second).
# Needs wrk (apt-get install -y wrk) and the plugins built
# (cargo build --release --target wasm32-wasip2 -p scaler -p classifier-head).
set -euo pipefail
cd "$(dirname "$0")/../.."
MINUTES=${MINUTES:-10}; CONC=${CONC:-64}; THREADS=${THREADS:-2}; PORT=${PORT:-18700}
MIX=${MIX:-mixed}; SCRAPE=${SCRAPE:-0}
BIN=${AIMASS_BIN:-${CARGO_TARGET_DIR:-target}/release/aimass}
command -v wrk >/dev/null || { echo "soak: wrk not found (apt-get install -y wrk)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "soak: no binary at $BIN (cargo build --release -p aimass)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aimass-soak.XXXXXX")
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  [ -n "${SCRAPER:-}" ] && kill "$SCRAPER" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

python3 tests/load/make_bodies.py examples/digits/data/test.csv "$WORK/bodies" >/dev/null
if [ "$MIX" = digits1 ]; then
  grep ' /.*digits-json-1.json$' "$WORK/bodies/requests.txt" | head -1 > "$WORK/requests.txt"
else
  cp "$WORK/bodies/requests.txt" "$WORK/requests.txt"
fi

AIMASS_GRPC_LISTEN=off "$BIN" serve examples/digits/aimass.toml --listen "127.0.0.1:$PORT" \
  --max-concurrency 256 > "$WORK/server.log" 2>&1 &
SERVER=$!
URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 600); do
  curl -sf -o /dev/null "$URL/v2/health/ready" && break
  kill -0 "$SERVER" 2>/dev/null || { echo "soak: the server died:"; tail -5 "$WORK/server.log"; exit 1; }
  sleep 0.1
done
if [ "$SCRAPE" = 1 ]; then
  (while true; do curl -s -o /dev/null "$URL/metrics"; sleep 1; done) &
  SCRAPER=$!
fi
rss_mb() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$SERVER/status"; }
echo "soak: $MIX traffic, c=$CONC, $MINUTES x 60 s, server pid $SERVER, idle RSS $(rss_mb) MB"
printf '%-6s %9s %9s %9s %9s %9s  %s\n' minute requests req/s p99_ms max_ms rss_mb statuses
TOTAL=0; UNEXPECTED=0; FIRST_RSS=""; LAST_RSS=""
for minute in $(seq 1 "$MINUTES"); do
  out=$(REQUESTS="$WORK/requests.txt" wrk -t"$THREADS" -c"$CONC" -d60s --timeout 10s \
    -s tests/load/mixed.lua "$URL")
  result=$(grep '^RESULT' <<<"$out"); statuses=$(grep '^STATUS' <<<"$out" | cut -d' ' -f2-)
  requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$result")
  duration=$(sed -E 's/.*duration_s=([0-9.]+).*/\1/' <<<"$result")
  p99=$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$result")
  max=$(sed -E 's/.*max_ms=([0-9.]+).*/\1/' <<<"$result")
  errors=$(sed -E 's/.*connect=([0-9]+) read=([0-9]+) write=([0-9]+) timeout=([0-9]+).*/\1+\2+\3+\4/' <<<"$result")
  rss=$(rss_mb)
  [ -z "$FIRST_RSS" ] && FIRST_RSS=$rss
  LAST_RSS=$rss
  TOTAL=$((TOTAL + requests))
  # 200 for good requests, 400/404 for the bad ones by design; anything
  # else (5xx, 408, 413, 503) or a socket error is unexpected.
  bad=$(tr ' ' '\n' <<<"$statuses" | awk -F= '$1 != 200 && $1 != 400 && $1 != 404 {n += $2} END {print n + 0}')
  UNEXPECTED=$((UNEXPECTED + bad + errors))
  printf '%-6s %9s %9.0f %9s %9s %9s  %s (socket errors %s)\n' "$minute" "$requests" \
    "$(awk -v r="$requests" -v d="$duration" 'BEGIN {print r / d}')" "$p99" "$max" "$rss" "$statuses" "$errors"
done
echo "soak: $TOTAL requests, $UNEXPECTED unexpected (non-200/400/404 statuses and socket errors)"
awk -v a="$FIRST_RSS" -v b="$LAST_RSS" 'BEGIN {printf "soak: RSS after minute 1 %.1f MB, at the end %.1f MB, drift %+.1f%%\n", a, b, (b - a) / a * 100}'
[ "$UNEXPECTED" = 0 ]
