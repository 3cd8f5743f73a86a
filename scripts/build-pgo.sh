#!/usr/bin/env bash
# Builds the packaged server (`dist`: LTO, one codegen unit, stripped) with profile-guided
# optimisation, for the machines that run Missive in production:
#   1. an instrumented `dist` build of missive-server,
#   2. a training run of it under the load generator (REST sends to online and offline
#      recipients, one call to 600 recipients, logins, client-to-client over MSYNC), stopped
#      with SIGTERM so that it writes its profile,
#   3. the `dist` build again, optimised with that profile.
# Output: target/pgo/<host triple>/dist/missive. Needs `rustup component add llvm-tools`
# (the llvm-profdata of the toolchain's own LLVM) and about 25 minutes on 2 cores.
# Usage, from the repository root: scripts/build-pgo.sh
# docs/benchmarks.md ("Round 10") says what it is worth against `release` and `dist`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
HOST=$(rustc -vV | sed -n 's/^host: //p')
PROFDATA=$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata
[ -x "$PROFDATA" ] || { echo "build-pgo.sh: no $PROFDATA; run: rustup component add llvm-tools" >&2; exit 1; }
PROFILES=$ROOT/target/pgo-profiles
rm -rf "$PROFILES" && mkdir -p "$PROFILES"

# The load generator is an ordinary release build; only the server is instrumented.
# `--target` keeps RUSTFLAGS off build scripts and proc macros (they would be instrumented
# and write profiles of the build itself).
cargo build --release -p missive-bench
RUSTFLAGS="-Cprofile-generate=$PROFILES" \
  cargo build --profile dist -p missive-server --target "$HOST" --target-dir target/pgo-instrumented
TRAINEE=target/pgo-instrumented/$HOST/dist/missive
BENCH=target/release/missive-bench

train() { echo "build-pgo.sh: training: $*" >&2; "$BENCH" "$@" --server-bin "$TRAINEE" > /dev/null; }
train send --recipients 100 --duration 10 --concurrency 32
train send --recipients 100 --duration 5 --concurrency 1
train send --recipients 200 --duration 5 --concurrency 32 --rate 2500
train fanout --recipients 600 --calls 30
train offline --users 10 --messages 2000
train connections --connections 1000 --hold 2
train sdk --pairs 50 --duration 5
ls "$PROFILES"/*.profraw > /dev/null 2>&1 || { echo "build-pgo.sh: the trainee wrote no profile" >&2; exit 1; }
"$PROFDATA" merge -o "$PROFILES/merged.profdata" "$PROFILES"/*.profraw

RUSTFLAGS="-Cprofile-use=$PROFILES/merged.profdata" \
  cargo build --profile dist -p missive-server --target "$HOST" --target-dir target/pgo
echo "target/pgo/$HOST/dist/missive"
