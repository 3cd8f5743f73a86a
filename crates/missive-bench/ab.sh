#!/usr/bin/env bash
# A/B of missive binaries with the same load generator, alternating variants within each
# repetition so a slow minute hurts every variant alike. Each variant is LABEL|SERVER_BIN|EXTRA
# (EXTRA: more missive-bench flags, e.g. `--postgres postgres://postgres@127.0.0.1:5432/postgres`).
# Usage, from the repository root:
#   crates/missive-bench/ab.sh OUT.jsonl REPS "old|/path/to/old/missive|" "new|target/release/missive|"
#   python3 crates/missive-bench/ab-summary.py OUT.jsonl      # medians and spread per variant
# SCENS="closed idle" runs only the named scenarios (default: closed idle fanout; also
# paced, an idle send every 10 ms as the peer rig's idle phase, and r2500, 2,500/s as Mr2500).
set -uo pipefail
OUT=$1; REPS=$2; shift 2
BENCH=${BENCH:-target/release/missive-bench}
SCENS=${SCENS:-closed idle fanout}
scen() { # name args...
  local name=$1; shift
  [[ " $SCENS " == *" $name "* ]] || return 0
  for r in $(seq 1 "$REPS"); do
    for spec in "${VARIANTS[@]}"; do
      IFS='|' read -r label bin extra <<<"$spec"
      line=$($BENCH "$@" --server-bin "$bin" $extra 2>/dev/null | tail -n 1)
      echo "{\"scenario\":\"$name\",\"variant\":\"$label\",\"rep\":$r,\"result\":${line:-null}}" >> "$OUT"
      echo "$name $label rep $r done" >&2
    done
  done
}
VARIANTS=("$@")
scen closed send --recipients 100 --duration 10 --concurrency 32
scen idle send --recipients 100 --duration 10 --concurrency 1
scen fanout fanout --recipients 600 --calls 100
scen paced send --recipients 100 --duration 10 --concurrency 1 --rate 100
scen r2500 send --recipients 200 --duration 10 --concurrency 32 --rate 2500
