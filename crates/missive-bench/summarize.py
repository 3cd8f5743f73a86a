#!/usr/bin/env python3
"""Medians of the runs in a results.jsonl written by run-benchmarks.sh, as Markdown tables.

Usage: crates/missive-bench/summarize.py [target/bench-results/results.jsonl]

Every numeric field of every run's JSON summary is flattened to a dotted key; the median
over the runs of one label is shown with the run count (e.g. "4,012 (n=5)"). Only the
columns docs/benchmarks.md uses are printed.
"""

import json
import statistics
import sys
from collections import defaultdict

COLUMNS = {
    "baseline": [
        ("req/s", "per_s"),
        ("req/server CPU-s", "per_server_cpu_s"),
        ("p50 ms", "latency.p50_ms"),
        ("p99 ms", "latency.p99_ms"),
    ],
    "send": [
        ("accepted/s", "rest.per_s"),
        ("accepted/server CPU-s", "rest.per_server_cpu_s"),
        ("delivered/server CPU-s", "delivered_per_server_cpu_s"),
        ("× baseline (CPU)", "ratio_to_baseline.per_server_cpu_s"),
        ("× baseline (wall)", "ratio_to_baseline.per_s"),
        ("REST p50", "rest.latency.p50_ms"),
        ("REST p99", "rest.latency.p99_ms"),
        ("e2e p50", "e2e.p50_ms"),
        ("e2e p99", "e2e.p99_ms"),
        ("e2e p99.9", "e2e.p999_ms"),
        ("copy e2e p50", "sync_copy_e2e.p50_ms"),
        ("copy e2e p99", "sync_copy_e2e.p99_ms"),
        ("pacer late p99", "rest.lateness.p99_ms"),
        ("missing", "deliveries.missing"),
    ],
    "fanout": [
        ("deliveries/s", "deliveries_per_s"),
        ("deliveries/server CPU-s", "deliveries_per_server_cpu_s"),
        ("× baseline (CPU)", "ratio_to_baseline.deliveries_per_server_cpu_s"),
        ("call done p50", "call_completion.p50_ms"),
        ("call done p99", "call_completion.p99_ms"),
        ("delivery p50", "delivery.p50_ms"),
        ("delivery p99", "delivery.p99_ms"),
        ("missing", "deliveries.missing"),
    ],
    "connections": [
        ("sessions", "sessions_on_server"),
        ("logins/s", "logins_per_s"),
        ("login p50", "login.p50_ms"),
        ("login p99", "login.p99_ms"),
        ("RSS B/session", "rss_bytes_per_session"),
        ("TCP buf B/session (both ends)", "tcp_mem_bytes_per_session_both_ends"),
        ("slab B/session (both ends)", "slab_bytes_per_session_both_ends"),
        ("idle RSS KiB", "server.idle_rss_kib"),
        ("start-up ms", "server.startup_ms"),
    ],
    "offline": [
        ("drain msg/s", "drain_per_s"),
        ("drain/server CPU-s", "drain_per_server_cpu_s"),
        ("first page p50", "first_page.p50_ms"),
        ("first page max", "first_page.max_ms"),
        ("all in p50", "all_in.p50_ms"),
        ("all in max", "all_in.max_ms"),
        ("queues empty s", "queues_empty_s"),
        ("probe p50", "probe.p50_ms"),
        ("probe max", "probe.max_ms"),
        ("out of order", "out_of_order"),
    ],
    "overload": [
        ("sustainable/s", "sustainable.per_s"),
        ("offered/s", "offered_per_s"),
        ("accepted/s", "accepted_per_s"),
        ("503", "responses.503"),
        ("429", "responses.429"),
        ("malformed bodies", "malformed_error_bodies"),
        ("admitted p50", "admitted_latency.p50_ms"),
        ("admitted p99", "admitted_latency.p99_ms"),
        ("admitted max", "admitted_latency.max_ms"),
        ("refused p50", "refused_latency.p50_ms"),
        ("refused p99", "refused_latency.p99_ms"),
        ("health p99", "health.latency.p99_ms"),
        ("health max", "health.latency.max_ms"),
        ("health failures", "health.failures"),
        ("RSS start KiB", "memory.rss_kib.start"),
        ("RSS peak KiB", "memory.rss_kib.peak"),
        ("RSS end KiB", "memory.rss_kib.end"),
        ("missing", "deliveries.missing"),
    ],
    "sdk": [
        ("acked/s", "per_s"),
        ("acked/server CPU-s", "per_server_cpu_s"),
        ("× baseline (CPU)", "ratio_to_baseline.per_server_cpu_s"),
        ("ack p50", "upload_ack.p50_ms"),
        ("ack p99", "upload_ack.p99_ms"),
        ("e2e p50", "e2e.p50_ms"),
        ("e2e p99", "e2e.p99_ms"),
        ("missing", "deliveries.missing"),
    ],
}


def flatten(v, prefix="", out=None):
    out = {} if out is None else out
    if isinstance(v, dict):
        for k, x in v.items():
            flatten(x, f"{prefix}{k}.", out)
    elif isinstance(v, bool):
        out[prefix[:-1]] = float(v)
    elif isinstance(v, (int, float)):
        out[prefix[:-1]] = float(v)
    return out


def fmt(x):
    if x is None:
        return "–"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "target/bench-results/results.jsonl"
    runs = defaultdict(list)
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec.get("result"), dict):
            flat = flatten(rec["result"])
            # Older fan-out summaries carried only the per-call ratio.
            base = flat.get("baseline.per_server_cpu_s")
            if base and "deliveries_per_server_cpu_s" in flat:
                flat.setdefault("ratio_to_baseline.deliveries_per_server_cpu_s", flat["deliveries_per_server_cpu_s"] / base)
            runs[rec["label"]].append(flat)
    by_kind = defaultdict(list)
    for label in runs:
        by_kind[label.split("-")[0]].append(label)
    for kind, cols in COLUMNS.items():
        labels = by_kind.get(kind)
        if not labels:
            continue
        print(f"\n### {kind}\n")
        print("| run | n | " + " | ".join(c for c, _ in cols) + " |")
        print("|---|---|" + "---|" * len(cols))
        for label in labels:
            rs = runs[label]
            cells = []
            for _, key in cols:
                vals = [r[key] for r in rs if key in r]
                cells.append(fmt(statistics.median(vals)) if vals else "–")
            print(f"| {label} | {len(rs)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
