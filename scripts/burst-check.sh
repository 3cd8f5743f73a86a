#!/usr/bin/env bash
# The memory check of issue 12 (docs/reliability.md, "Bursts"): a server with the default
# Argon2 cost takes registrations as 16 concurrent batches, then a crowd of password logins,
# then concurrent 5 MB image uploads; the check fails if its RSS peak passes the RSS before the
# burst + 150 MiB, or if 30 s after the burst it is not back within + 50 MiB. Usage, from the
# repository root:
#
#   scripts/burst-check.sh          # full: 1,000 users (batches of 60), 500 logins, 10 uploads
#   scripts/burst-check.sh small    # the CI form: 160 users (batches of 10), 100 logins, 4
#                                   # uploads; stops watching as soon as the memory is back
#
# Builds `missive` and `missive-bench` with PROFILE (default release; PROFILE=dev reuses the
# test build) and prints the run's JSON summary (memory samples included) on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
PROFILE=${PROFILE:-release}
FORM=${1:-full}
case "$FORM" in
  full)  args=(--users 1000 --batch 60 --batches-at-once 16 --logins 500 --uploads 10 --upload-mb 5) ;;
  small) args=(--users 160 --batch 10 --batches-at-once 16 --logins 100 --uploads 4 --upload-mb 5 --stop-when-settled) ;;
  *) echo "usage: $0 [full|small]" >&2; exit 2 ;;
esac
cargo build --quiet --profile "$PROFILE" -p missive-server -p missive-bench
case "$PROFILE" in
  dev) bin=target/debug ;;
  *) bin=target/$PROFILE ;;
esac
exec "$bin/missive-bench" burst "${args[@]}" --server-bin "$bin/missive" --check
