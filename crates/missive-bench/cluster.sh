#!/usr/bin/env bash
# missive-bench against a cluster on this machine (docs/benchmarks.md, "Cluster"): NODES
# Missive nodes on one fresh PostgreSQL database and this machine's NATS, with the CPU seconds
# of every node, of PostgreSQL and of NATS over the measured run.
#
# REST sends go to node 1; with NODES > 1 the recipients log in to the other nodes only, so
# every delivery crosses NATS (the harder case: a load balancer would put a third of them on
# the sending node). NODES=1 is the same run on a single node (sessions on it), for the
# comparison. Usage, from the repository root, after `cargo build --release -p missive-server
# -p missive-bench`:
#
#   NODES=3 crates/missive-bench/cluster.sh [extra missive-bench send flags]
#
# Prints the bench's JSON summary with a "cluster" object added: CPU seconds per process
# group and messages per CPU second of everything (nodes + PostgreSQL + NATS).
set -euo pipefail
NODES=${NODES:-3}
BIN=${BIN:-target/release}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
NATS_URL=${NATS_URL:-nats://127.0.0.1:4222}
db="bench_cluster_$$"
name="benchcluster$$"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql "$PG_ADMIN" -qc "CREATE DATABASE $db" >/dev/null
url="${PG_ADMIN%/*}/$db"

# What every node gets: the bench's usual settings (no quotas, cheap hashing, no shedding).
export MISSIVE_DATABASE_URL="$url" MISSIVE_CLUSTER__NAME="$name" MISSIVE_LOG=warn \
  MISSIVE_LIMITS__SEND_CALLS_PER_SECOND=0 MISSIVE_LIMITS__SEND_MESSAGES_PER_MINUTE=0 \
  MISSIVE_LIMITS__MAX_INFLIGHT_SENDS=100000 MISSIVE_SECURITY__ARGON2_MEMORY_KIB=64 \
  MISSIVE_SECURITY__ARGON2_ITERATIONS=1
creds=$("$BIN/missive" app create bench cluster 2>/dev/null)
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$creds" "$1"; }

ports=()
for i in $(seq 1 "$NODES"); do
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  ports+=("$port")
  nats=()
  [ "$NODES" -gt 1 ] && nats=(--nats-url "$NATS_URL")
  "$BIN/missive" serve --listen "127.0.0.1:$port" --data "$work/n$i" "${nats[@]}" >/dev/null 2>"$work/n$i.log" &
  pids+=("$!")
done
for port in "${ports[@]}"; do
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$port/ready" >/dev/null || { cat "$work"/n*.log >&2; exit 1; }
done

ws=()
if [ "$NODES" -gt 1 ]; then
  for port in "${ports[@]:1}"; do ws+=(--ws-url "ws://127.0.0.1:$port/websocket"); done
fi

# CPU seconds (user + system) of a list of PIDs, from /proc.
cpu() {
  python3 - "$@" <<'EOF'
import os, sys
tick = os.sysconf("SC_CLK_TCK")
total = 0
for pid in sys.argv[1:]:
    try:
        rest = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += (int(rest[11]) + int(rest[12])) / tick
    except (FileNotFoundError, IndexError, ProcessLookupError):
        pass
print(total)
EOF
}
pg_pids() { pgrep -x postgres | tr '\n' ' '; }
nats_pids() { pgrep -x nats-server | tr '\n' ' '; }

declare -A before
for i in "${!pids[@]}"; do before[n$i]=$(cpu "${pids[$i]}"); done
before[pg]=$(cpu $(pg_pids)); before[nats]=$(cpu $(nats_pids))
out=$("$BIN/missive-bench" send --url "http://127.0.0.1:${ports[0]}" --org bench --app cluster \
  --client-id "$(field client_id)" --client-secret "$(field client_secret)" --server-pid "${pids[0]}" \
  "${ws[@]}" "$@" | tail -n 1)
node_cpu="["
for i in "${!pids[@]}"; do
  d=$(python3 -c "print(round($(cpu "${pids[$i]}") - ${before[n$i]}, 3))")
  node_cpu+="$d,"
done
node_cpu="${node_cpu%,}]"
pg=$(python3 -c "print(round($(cpu $(pg_pids)) - ${before[pg]}, 3))")
nats=$(python3 -c "print(round($(cpu $(nats_pids)) - ${before[nats]}, 3))")
python3 - "$out" "$node_cpu" "$pg" "$nats" "$NODES" <<'EOF'
import json, sys
out, nodes, pg, nats, n = json.loads(sys.argv[1]), json.loads(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
# The bench's window covers the measured seconds only; the CPU here covers setup and drain
# too, so messages per CPU-second below use every accepted message (warm-up included).
accepted = out["rest"]["accepted_total"]
total = sum(nodes) + pg + nats
out["cluster"] = {
    "nodes": n,
    "node_cpu_s": nodes,
    "postgres_cpu_s": pg,
    "nats_cpu_s": nats,
    "all_cpu_s": round(total, 3),
    "messages": accepted,
    "messages_per_all_cpu_s": round(accepted / total, 1) if accepted and total else None,
}
print(json.dumps(out))
EOF
