#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 20 s each) on stable Rust, with the
# same instrumentation `cargo fuzz build -s none` uses, so cargo-fuzz need not be
# installed. New inputs found are added to fuzz/corpus/<target>/ (commit the interesting
# ones); a crash fails the script and leaves the input in fuzz/artifacts/<target>/.
# Usage: scripts/fuzz.sh [seconds-per-target]
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-20}"
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR_FUZZ:-target}"
# An explicit --target keeps RUSTFLAGS (the instrumentation) off build scripts.
host=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --bins --quiet --target "$host"
bin="$CARGO_TARGET_DIR/$host/release"
for t in msync_frame ext_json username rest_send chat_ql rest_users; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== fuzzing $t for ${secs}s"
  "$bin/$t" "corpus/$t" -max_total_time="$secs" -artifact_prefix="artifacts/$t/" \
    -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|stat::new_units_added|INFO: Seed|==[0-9]+== ERROR|SUMMARY)" || true
  if ls "artifacts/$t"/crash-* >/dev/null 2>&1; then echo "crash found in $t"; exit 1; fi
done
echo "fuzz: no crashes"
