#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests drive (the unmodified
# Easemob Web SDK from npm, moto's S3 server and schemathesis from PyPI) if missing, then
# checks formatting and lints and runs every test — the integration suites twice, on the
# embedded SQLite store and on PostgreSQL (MISSIVE_TEST_PG_URL, default
# postgres://postgres@127.0.0.1:5432/postgres; each test makes and drops its own database).
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d sdk-tests/node_modules/easemob-websdk ] || [ ! -d sdk-tests/node_modules/agora-chat ]; then
  echo "== installing the Web SDK test harness (npm ci)"
  npm ci --prefix sdk-tests --no-audit --no-fund
fi
if ! command -v moto_server >/dev/null 2>&1; then
  echo "== installing moto (local S3 server for blob-store tests)"
  python3 -m pip install --quiet 'moto[server]>=5,<6'
fi

if ! command -v chromium >/dev/null 2>&1; then
  echo "== installing chromium (Debian) for the UIKit browser test"
  apt-get update -qq && apt-get install -y -qq chromium
fi
if [ ! -d sdk-tests/uikit/node_modules/easemob-chat-uikit ]; then
  echo "== installing the UIKit test app (npm ci)"
  npm ci --prefix sdk-tests/uikit --no-audit --no-fund
fi
echo "== building the UIKit test app"
npm run build --prefix sdk-tests/uikit

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test (SQLite; the store conformance suite runs on SQLite and PostgreSQL)"
cargo test --workspace "$@"
echo "== cargo test: the server's integration suites again, on PostgreSQL"
MISSIVE_TEST_BACKEND=postgres cargo test -p missive-server --test it "$@"
echo "== burst check, small form (memory bound under password and upload bursts; docs/reliability.md)"
PROFILE=dev scripts/burst-check.sh small >/dev/null
echo "== schemathesis (the live server against its OpenAPI description, bounded)"
scripts/schemathesis.sh
echo "== fuzz (bounded)"
scripts/fuzz.sh "${MISSIVE_FUZZ_SECONDS:-15}"
