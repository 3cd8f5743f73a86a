#!/usr/bin/env bash
# Protocol fuzzing of the REST API against its own OpenAPI description: starts the debug
# `missive` binary on a free loopback port with a fresh data directory, creates an app, two
# users, two files and a message, then runs schemathesis (4.x, from PyPI) on every operation
# of /openapi.json with the app token. Checks: no 5xx (`not_a_server_error`) and every
# response matches the documented schema for its status (`response_schema_conformance`).
# Any finding, or a server that dies, panics or stops answering, fails the script.
#
# Usage: scripts/schemathesis.sh
#   ST_MAX_EXAMPLES  cases per operation and phase (default 25)
#   ST_MAX_TIME      seconds for both passes together (default 90)
#   ST_SEED          replay a run (each run prints its seed)
#   ST_EXTRA_ARGS    more `st run` options, e.g. "--report har"
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

BIN=${MISSIVE_BIN:-$ROOT/target/debug/missive}
MAX_EXAMPLES=${ST_MAX_EXAMPLES:-25}
MAX_TIME=${ST_MAX_TIME:-90}
SEED=${ST_SEED:-$RANDOM}

if [ ! -x "$BIN" ]; then
  echo "== building $BIN"
  cargo build -p missive-server --bin missive
fi
# Run as a module: no dependence on where pip put the `st` script or on a PATH refresh.
st() { python3 -m schemathesis.cli "$@"; }
if ! st --version 2>/dev/null | grep -q ' 4\.'; then
  echo "== installing schemathesis 4 (PyPI)"
  python3 -m pip install --quiet 'schemathesis>=4.32,<5'
fi

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# Quotas off (schemathesis sends far more than 100 calls/s) and cheap password hashing;
# everything else at its defaults.
export MISSIVE_LIMITS__SEND_CALLS_PER_SECOND=0 MISSIVE_LIMITS__SEND_MESSAGES_PER_MINUTE=0
export MISSIVE_SECURITY__ARGON2_MEMORY_KIB=64 MISSIVE_SECURITY__ARGON2_ITERATIONS=1
export MISSIVE_LOG=${MISSIVE_LOG:-warn}

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
API="http://127.0.0.1:$PORT/demo/demo"
json() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }

CREDS=$("$BIN" app create demo demo --data "$WORK/data")
CLIENT_ID=$(echo "$CREDS" | json '["client_id"]')
CLIENT_SECRET=$(echo "$CREDS" | json '["client_secret"]')

"$BIN" serve --data "$WORK/data" --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break
  sleep 0.1
done

TOKEN=$(curl -sf -X POST "$API/token" -H 'Content-Type: application/json' \
  -d "{\"grant_type\":\"client_credentials\",\"client_id\":\"$CLIENT_ID\",\"client_secret\":\"$CLIENT_SECRET\"}" |
  json '["access_token"]')
AUTH="Authorization: Bearer $TOKEN"
curl -sf -X POST "$API/users" -H "$AUTH" -H 'Content-Type: application/json' \
  -d '[{"username":"user1","password":"pw1"},{"username":"user2","password":"pw2","nickname":"Two"},
       {"username":"victim1","password":"pw"},{"username":"victim2","password":"pw"}]' >/dev/null
head -c 2048 /dev/urandom >"$WORK/blob.bin"
upload() {
  curl -sf -X POST "$API/chatfiles" -H "$AUTH" "$@" -F "file=@$WORK/blob.bin" | json '["entities"][0]["uuid"]'
}
OPEN_FILE=$(upload)
RESTRICTED_FILE=$(upload -H 'restrict-access: true')
MSG_ID=$(curl -sf -X POST "$API/messages/users" -H "$AUTH" -H 'Content-Type: application/json' \
  -d '{"from":"user1","to":["user2"],"type":"txt","body":{"msg":"hello"}}' | json '["data"]["user2"]')

# Path parameters always name the app above (a random {org}/{app} only ever reaches the 404
# of an unknown app); other values are often a real user, file, message or credential, so
# operations get past their lookups and answer 200s whose bodies are checked too.
cat >"$WORK/schemathesis.toml" <<TOML
[dictionaries.users]
values = ["user1", "user2"]
[dictionaries.passwords]
values = ["pw1", "pw2"]
[dictionaries.files]
values = ["$OPEN_FILE", "$RESTRICTED_FILE"]
[dictionaries.messages]
values = ["$MSG_ID"]
[dictionaries.client_ids]
values = ["$CLIENT_ID"]
[dictionaries.client_secrets]
values = ["$CLIENT_SECRET"]

[parameters]
"path.org" = "demo"
"path.app" = "demo"
"path.username" = { dictionary = "users", probability = 0.7 }
"path.file" = { dictionary = "files", probability = 0.7 }
"path.msg_id" = { dictionary = "messages", probability = 0.5 }
"body.msg_id" = { dictionary = "messages", probability = 0.5 }
"body.client_id" = { dictionary = "client_ids", probability = 0.7 }
"body.client_secret" = { dictionary = "client_secrets", probability = 0.7 }
"body.username" = { dictionary = "users", probability = 0.5 }
"body.password" = { dictionary = "passwords", probability = 0.5 }
"body.to[*]" = { dictionary = "users", probability = 0.5 }
"body.target[*]" = { dictionary = "users", probability = 0.5 }

# Single deletions take the victims, so user1 and user2 live through the main pass.
[dictionaries.victims]
values = ["victim1", "victim2"]
[[operations]]
include-operation-id = "delete_user"
parameters = { "path.username" = { dictionary = "victims", probability = 0.7 } }
TOML

VERSION=$(st --version | awk '{print $NF}')
run_pass() {
  local budget=$1
  shift
  # From the work directory: schemathesis keeps a cache in the current directory.
  (cd "$WORK" && st --no-color --config-file schemathesis.toml run "http://127.0.0.1:$PORT/openapi.json" \
    --checks not_a_server_error,response_schema_conformance \
    --header "$AUTH" \
    --max-examples "$MAX_EXAMPLES" \
    --max-time "$budget" \
    --workers 1 \
    --seed "$SEED" \
    --suppress-health-check all \
    --request-timeout 10 \
    --generation-database none \
    "$@" ${ST_EXTRA_ARGS:-})
}

set +e
# Batch deletion (the N oldest users) runs last and briefly, so the users above live
# through the main pass.
echo "== schemathesis $VERSION, seed $SEED: every operation but batch user deletion"
run_pass "$((MAX_TIME * 5 / 6))" --exclude-operation-id delete_users
RC=$?
echo "== schemathesis $VERSION, seed $SEED: batch user deletion"
run_pass "$((MAX_TIME / 6))" --include-operation-id delete_users
RC2=$?
set -e
[ "$RC" -ne 0 ] || RC=$RC2

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "schemathesis: the server died" >&2
  tail -50 "$WORK/server.log" >&2
  exit 1
fi
if grep -q 'panicked' "$WORK/server.log"; then
  echo "schemathesis: the server panicked" >&2
  grep -B2 -A10 'panicked' "$WORK/server.log" >&2
  exit 1
fi
if ! curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; then
  echo "schemathesis: /health no longer answers" >&2
  exit 1
fi
exit "$RC"
