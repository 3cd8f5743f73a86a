#!/usr/bin/env bash
# Runs every scenario of docs/benchmarks.md at the sizes in its table and appends each JSON
# summary, tagged with a label, to RESULTS (default target/bench-results/results.jsonl), writing
# histograms and plots under target/bench-results/<label>/. Usage, from the repository root:
#
#   cargo build --release -p missive-server -p missive-bench
#   crates/missive-bench/run-benchmarks.sh [RUNS] [ONLY]      # RUNS: repeats (default 5)
#
# ONLY limits the run to labels starting with it (e.g. `send`, `fanout`). The soak is not
# included (it takes ten minutes); its command is in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
ONLY=${2:-}
OUT=${OUT:-target/bench-results}
RESULTS=${RESULTS:-$OUT/results.jsonl}
BIN=target/release/missive-bench
mkdir -p "$OUT"

run() { # label repeats args...
  local label=$1 reps=$2; shift 2
  [[ -n "$ONLY" && "$label" != "$ONLY"* ]] && return 0
  for i in $(seq 1 "$reps"); do
    echo "== $label ($i/$reps): missive-bench $*" >&2
    local line
    line=$("$BIN" "$@" --out "$OUT/$label" 2>/dev/null | tail -n 1)
    echo "{\"label\":\"$label\",\"run\":$i,\"result\":$line}" >> "$RESULTS"
  done
}

run baseline            "$RUNS" baseline --duration 5 --concurrency 32
run send-r10            3       send --recipients 10   --duration 10 --concurrency 32 --baseline-secs 3
run send-r100           "$RUNS" send --recipients 100  --duration 10 --concurrency 32 --baseline-secs 3
run send-r1000          3       send --recipients 1000 --duration 10 --concurrency 32 --baseline-secs 3
run send-open-2500      "$RUNS" send --recipients 100  --duration 10 --concurrency 64 --rate 2500
run send-open-4000      3       send --recipients 100  --duration 10 --concurrency 64 --rate 4000
run send-sync-2500      3       send --recipients 100  --duration 10 --concurrency 64 --rate 2500 --sync-device
run fanout-100          3       fanout --recipients 100 --calls 200
run fanout-300          3       fanout --recipients 300 --calls 100
run fanout-600          "$RUNS" fanout --recipients 600 --calls 100 --baseline-secs 3
run fanout-600-c4       3       fanout --recipients 600 --calls 200 --concurrency 4
run connections-1000    3       connections --connections 1000
run connections-5000    1       connections --connections 5000
run connections-18000   1       connections --connections 18000 --concurrency 128
run offline-10x10000    "$RUNS" offline --users 10 --messages 10000
run offline-100x1000    3       offline --users 100 --messages 1000
run sdk-50              "$RUNS" sdk --pairs 50 --in-flight 4 --duration 10 --baseline-secs 3
run sdk-200x1           3       sdk --pairs 200 --in-flight 1 --duration 10
run overload            3       overload --recipients 100 --duration 20
