#!/usr/bin/env python3
"""Disk follows data (issue 12, docs/benchmarks.md "Disk"): what the embedded store costs on
disk per user and per queued message, how large the SQLite WAL grows under a burst of sends,
and how long a restart takes after `kill -9` with the WAL still full.

Starts `missive serve` (BIN, default target/release/missive) on a fresh data directory,
registers USERS users in batches of 60, queues MESSAGES_PER_USER messages for each of them in
600-recipient REST calls (4 connections) while sampling the WAL's size, kills the server with
SIGKILL right after the last answer, restarts it and times the first `/health` answer, then
checks that every accepted message is still queued (`offline_msg_count`). Prints one JSON
object. Standard library only.

    scripts/disk-check.py [--bin target/release/missive] [--users 5000] [--messages-per-user 48]
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(conn, method, path, token=None, body=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    res = conn.getresponse()
    data = res.read()
    return res.status, (json.loads(data) if data else None)


def sizes(data_dir):
    out = {}
    for name in ("missive.db", "missive.db-wal", "missive.db-shm"):
        p = os.path.join(data_dir, name)
        out[name] = os.path.getsize(p) if os.path.exists(p) else 0
    total = 0
    for root, _, files in os.walk(data_dir):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except FileNotFoundError:
                pass
    out["dir_total"] = total
    return out


def checkpointed_db_size(data_dir):
    """The database file's size once the WAL is folded in: the bytes the data really take."""
    db = sqlite3.connect(os.path.join(data_dir, "missive.db"), timeout=30)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    db.close()
    return os.path.getsize(os.path.join(data_dir, "missive.db"))


def wait_health(port, deadline_s=60):
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.005)
    raise SystemExit("server did not answer /health within %ss" % deadline_s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/missive")
    ap.add_argument("--users", type=int, default=5000)
    ap.add_argument("--messages-per-user", type=int, default=48)
    args = ap.parse_args()

    data = tempfile.mkdtemp(prefix="missive-disk-")
    port = free_port()
    env = dict(os.environ)
    env.update({
        "MISSIVE_DATA": data,
        "MISSIVE_LISTEN": "127.0.0.1:%d" % port,
        "MISSIVE_LOG": "warn",
        # Quotas would refuse a burst this size; the hash cost changes time, not bytes stored.
        "MISSIVE_LIMITS__SEND_CALLS_PER_SECOND": "100000",
        "MISSIVE_LIMITS__SEND_MESSAGES_PER_MINUTE": "100000000",
        # 600 recipient names do not fit Easemob's 5 KB body limit.
        "MISSIVE_LIMITS__SEND_BODY_BYTES": "65536",
        "MISSIVE_SECURITY__ARGON2_MEMORY_KIB": "1024",
        "MISSIVE_SECURITY__ARGON2_ITERATIONS": "1",
    })
    app = json.loads(subprocess.check_output([args.bin, "app", "create", "disk", "check"], env=env))
    server = subprocess.Popen([args.bin, "serve"], env=env)
    try:
        wait_health(port)
        empty = sizes(data)
        empty_db = checkpointed_db_size(data)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        st, tok = call(conn, "POST", "/disk/check/token", body={
            "grant_type": "client_credentials",
            "client_id": app["client_id"], "client_secret": app["client_secret"]})
        assert st == 200, tok
        token = tok["access_token"]
        names = ["u%06d" % i for i in range(args.users)]
        t0 = time.monotonic()
        for i in range(0, len(names), 60):
            batch = [{"username": n, "password": "pw-" + n} for n in names[i:i + 60]]
            st, body = call(conn, "POST", "/disk/check/users", token, batch)
            assert st == 200, body
        register_s = time.monotonic() - t0
        after_users = sizes(data)
        users_db = checkpointed_db_size(data)

        # 600 recipients a call, cycling over the users, until each has MESSAGES_PER_USER.
        total = args.users * args.messages_per_user
        calls = []
        for start in range(0, total, 600):
            calls.append([names[(start + k) % args.users] for k in range(min(600, total - start))])
        accepted = [0]
        lock = threading.Lock()
        wal_peak = [0]
        done = threading.Event()

        def sample_wal():
            while not done.is_set():
                wal_peak[0] = max(wal_peak[0], sizes(data)["missive.db-wal"])
                time.sleep(0.05)

        def sender(part):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for to in part:
                st, body = call(c, "POST", "/disk/check/messages/users", token,
                                {"from": "src", "to": to, "type": "txt", "body": {"msg": "x" * 40}})
                assert st == 200, body
                with lock:
                    accepted[0] += len(to)

        sampler = threading.Thread(target=sample_wal)
        sampler.start()
        t0 = time.monotonic()
        threads = [threading.Thread(target=sender, args=(calls[k::4],)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        send_s = time.monotonic() - t0
        # Killed at once: whatever the WAL holds now is what recovery must read.
        at_kill = sizes(data)
        done.set()
        sampler.join()
        server.send_signal(signal.SIGKILL)
        server.wait()
        server = subprocess.Popen([args.bin, "serve"], env=env)
        restart_s = wait_health(port)
        after_restart = sizes(data)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        lost = 0
        for n in (names[0], names[len(names) // 2], names[-1]):
            st, body = call(conn, "GET", "/disk/check/users/%s/offline_msg_count" % n, token)
            assert st == 200, body
            have = int(body["data"][n])
            lost += args.messages_per_user - have
        messages_db = checkpointed_db_size(data)
        print(json.dumps({
            "users": args.users,
            "messages_queued": accepted[0],
            "register_s": round(register_s, 2),
            "send_s": round(send_s, 2),
            "sizes_empty": empty,
            "sizes_after_users": after_users,
            "sizes_at_kill": at_kill,
            "sizes_after_restart": after_restart,
            "wal_peak_bytes": max(wal_peak[0], at_kill["missive.db-wal"]),
            "db_bytes_checkpointed": {"empty": empty_db, "after_users": users_db, "after_messages": messages_db},
            "bytes_per_user": round((users_db - empty_db) / args.users, 1),
            "bytes_per_queued_message": round((messages_db - users_db) / max(accepted[0], 1), 1),
            "restart_after_kill9_s": round(restart_s, 3),
            "sampled_users_missing_messages": lost,
        }, indent=1))
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
