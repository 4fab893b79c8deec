#!/usr/bin/env bash
# Throughput of two aimass binaries (or two configs) side by side on batch-1
# `digits` (JSON), in alternating rounds so that both see the same noise on
# a shared machine; prints each round's req/s and p99, their medians, and
# B's median req/s as a ratio of A's.
#
#   BIN_A=/tmp/aimass-before BIN_B=target/release/aimass bash tests/load/compare.sh
#
# Environment: BIN_A, BIN_B (required), CONFIG_A, CONFIG_B (both
# examples/digits/aimass.toml), ROUNDS (5), SECONDS_PER_ROUND (10), CONC
# (32), THREADS (2), PORT (18710), BODY (digits-json-1.json; any name
# tests/load/make_bodies.py writes, e.g. digits-json-64.json for batch 64).
# Needs wrk (apt-get install -y wrk).
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${BIN_A:?set BIN_A to the baseline binary}" "${BIN_B:?set BIN_B to the binary to compare}"
CONFIG_A=${CONFIG_A:-examples/digits/aimass.toml}; CONFIG_B=${CONFIG_B:-examples/digits/aimass.toml}
ROUNDS=${ROUNDS:-5}; SECS=${SECONDS_PER_ROUND:-10}; CONC=${CONC:-32}; THREADS=${THREADS:-2}
PORT=${PORT:-18710}; BODY=${BODY:-digits-json-1.json}
command -v wrk >/dev/null || { echo "compare: wrk not found (apt-get install -y wrk)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/aimass-compare.XXXXXX")
SERVER=""
cleanup() {
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

python3 tests/load/make_bodies.py examples/digits/data/test.csv "$WORK/bodies" >/dev/null
grep " /.*/$BODY\$" "$WORK/bodies/requests.txt" | head -1 > "$WORK/requests.txt"
[ -s "$WORK/requests.txt" ] || { echo "compare: no body $BODY" >&2; exit 1; }

# Runs one round against binary `$1` serving config `$2`; prints requests/s.
round() {
  AIMASS_GRPC_LISTEN=off "$1" serve "$2" --listen "127.0.0.1:$PORT" \
    --max-concurrency 256 > "$WORK/server.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 1 600); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/v2/health/ready" && break
    kill -0 "$SERVER" 2>/dev/null || { echo "compare: $1 died:" >&2; tail -5 "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
  done
  # A short warm-up (instances, caches), not counted.
  REQUESTS="$WORK/requests.txt" wrk -t"$THREADS" -c"$CONC" -d2s -s tests/load/mixed.lua \
    "http://127.0.0.1:$PORT" >/dev/null
  out=$(REQUESTS="$WORK/requests.txt" wrk -t"$THREADS" -c"$CONC" -d"${SECS}s" \
    -s tests/load/mixed.lua "http://127.0.0.1:$PORT")
  kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""
  other=$(grep '^STATUS' <<<"$out" | cut -d' ' -f2- | tr ' ' '\n' | grep -v '^200=' || true)
  [ -z "$other" ] || { echo "compare: answers other than 200: $other" >&2; exit 1; }
  result=$(grep '^RESULT' <<<"$out")
  requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$result")
  duration=$(sed -E 's/.*duration_s=([0-9.]+).*/\1/' <<<"$result")
  p99=$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$result")
  awk -v r="$requests" -v d="$duration" -v p="$p99" 'BEGIN {printf "%.0f %s", r / d, p}'
}

median() { tr ' ' '\n' | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

A=(); B=(); PA=(); PB=()
echo "compare: $BODY, c=$CONC, $ROUNDS rounds of ${SECS}s each, A=$BIN_A $CONFIG_A B=$BIN_B $CONFIG_B"
for r in $(seq 1 "$ROUNDS"); do
  read -r a pa <<<"$(round "$BIN_A" "$CONFIG_A")"; read -r b pb <<<"$(round "$BIN_B" "$CONFIG_B")"
  A+=("$a"); B+=("$b"); PA+=("$pa"); PB+=("$pb")
  echo "round $r: A $a req/s (p99 $pa ms), B $b req/s (p99 $pb ms)"
done
ma=$(echo "${A[*]}" | median); mb=$(echo "${B[*]}" | median)
pa=$(echo "${PA[*]}" | median); pb=$(echo "${PB[*]}" | median)
awk -v a="$ma" -v b="$mb" -v pa="$pa" -v pb="$pb" 'BEGIN {printf "compare: median A %.0f req/s (p99 %.2f ms), B %.0f req/s (p99 %.2f ms), B/A %.3f\n", a, pa, b, pb, b / a}'
