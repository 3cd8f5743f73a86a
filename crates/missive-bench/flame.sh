#!/usr/bin/env bash
# A flame graph of the server during the closed-loop send (docs/benchmarks.md, round 4):
# `missive-bench send --recipients 100 --concurrency 32` under `perf record -a -g` (the VM
# has no hardware counters; the software clock samples), then the server process's stacks
# alone, folded and drawn with inferno (`cargo install inferno`). Usage, from the repository
# root, after `cargo build --release -p missive-server -p missive-bench`:
#
#   crates/missive-bench/flame.sh NAME [SERVER_BIN]     # writes target/flame/NAME.svg
#
# Release builds keep line tables but no frame pointers, so user-space stacks are often cut
# short: read the graph for where time is spent (kernel paths are whole), not for callers.
set -euo pipefail
NAME=${1:?usage: flame.sh NAME [SERVER_BIN]}
SERVER=${2:-target/release/missive}
BENCH=${BENCH:-target/release/missive-bench}
OUT=${OUT:-target/flame}
mkdir -p "$OUT"
perf record -a -g -F 499 -o "$OUT/$NAME.perf" -- \
  "$BENCH" send --server-bin "$SERVER" --recipients 100 --duration 8 --concurrency 32 > "$OUT/$NAME.json" 2>/dev/null
pid=$(python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])['server']['pid'])" "$OUT/$NAME.json")
perf script -i "$OUT/$NAME.perf" --pid "$pid" 2>/dev/null | inferno-collapse-perf > "$OUT/$NAME.folded"
inferno-flamegraph --title "Missive closed-loop send ($NAME): server CPU" < "$OUT/$NAME.folded" > "$OUT/$NAME.svg"
echo "$OUT/$NAME.svg: $(wc -l < "$OUT/$NAME.folded") distinct stacks of server pid $pid"
