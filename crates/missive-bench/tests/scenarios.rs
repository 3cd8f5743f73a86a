//! Every scenario at a tiny size against a server it starts itself, so the load generator
//! cannot rot: the run must succeed, print one JSON line, and its counts must add up.
//! No timing is asserted: CI machines are shared and slow.

use std::process::Command;

use serde_json::Value;

/// Runs `missive-bench ARGS --server-bin self` (the server from the linked library, always
/// the code under test) and returns its JSON summary.
fn bench(args: &[&str]) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_missive-bench"));
    cmd.args(args);
    if args[0] != "baseline" {
        cmd.args(["--server-bin", "self"]);
    }
    let out = cmd.output().expect("run missive-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "missive-bench {args:?} failed: {}\n{stderr}", out.status);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout must be one JSON line, got:\n{stdout}");
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("bad JSON ({e}): {stdout}"))
}

fn clean(deliveries: &Value) {
    assert_eq!(deliveries["missing"], 0, "{deliveries}");
    assert_eq!(deliveries["unexpected"], 0, "{deliveries}");
}

#[test]
fn send_closed_loop_with_outputs_and_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let v = bench(&[
        "send",
        "--recipients",
        "3",
        "--concurrency",
        "4",
        "--messages",
        "60",
        "--baseline-secs",
        "0.3",
        "--out",
        out,
    ]);
    assert_eq!(v["scenario"], "send");
    assert_eq!(v["rest"]["accepted_total"], 60, "{v}");
    assert_eq!(v["rest"]["accepted"], 60, "{v}");
    assert_eq!(v["all_delivered"], true, "{v}");
    assert_eq!(v["deliveries"]["received"], 60, "{v}");
    clean(&v["deliveries"]);
    assert_eq!(v["e2e"]["count"], 60, "{v}");
    assert!(v["baseline"]["accepted"].as_u64().unwrap() > 0, "{v}");
    assert!(v["server"]["startup_ms"].is_number(), "{v}");
    for f in ["send-rest.hgrm", "send-e2e.hgrm", "send-latency.svg", "send-summary.json"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
}

#[test]
fn send_open_loop_with_sync_device_copies() {
    let v =
        bench(&["send", "--recipients", "3", "--rate", "100", "--duration", "0.5", "--warmup", "0", "--sync-device"]);
    assert_eq!(v["mode"], "open");
    let accepted = v["rest"]["accepted_total"].as_u64().unwrap();
    assert!(accepted > 0, "{v}");
    assert_eq!(v["deliveries"]["received"], accepted, "{v}");
    assert_eq!(v["sync_copies"]["received"], accepted, "{v}");
    clean(&v["deliveries"]);
    clean(&v["sync_copies"]);
    assert!(v["rest"]["lateness"]["count"].as_u64().unwrap() > 0, "{v}");
}

#[test]
fn send_with_a_callback_rule_calls_back_every_message() {
    let v = bench(&["send", "--recipients", "3", "--concurrency", "4", "--messages", "40", "--callback", "ok"]);
    assert_eq!(v["rest"]["accepted_total"], 40, "{v}");
    assert_eq!(v["callbacks"]["received"], 40, "{v}");
    assert_eq!(v["callbacks"]["all_received"], true, "{v}");
    let down = bench(&["send", "--recipients", "3", "--concurrency", "4", "--messages", "40", "--callback", "down"]);
    assert_eq!(down["all_delivered"], true, "{down}");
    let outbox = &down["callbacks"]["outbox"];
    let waiting =
        outbox["due"].as_u64().unwrap() + outbox["scheduled"].as_u64().unwrap() + outbox["leased"].as_u64().unwrap();
    assert_eq!(waiting, 40, "every callback waits in the outbox: {down}");
}

#[test]
fn overload_sheds_with_easemob_bodies_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    // Measured sustainable rate, then twice it through 48 connections against a server
    // admitting 2 sends at once: whatever it sheds, every answer must be well-formed and
    // every accepted message must arrive.
    let v = bench(&[
        "overload",
        "--recipients",
        "3",
        "--measure-secs",
        "0.5",
        "--measure-concurrency",
        "2",
        "--duration",
        "1.5",
        "--connections",
        "48",
        "--max-inflight",
        "2",
        "--probe-ms",
        "50",
        "--out",
        out,
    ]);
    assert_eq!(v["scenario"], "overload");
    assert!(v["sustainable"]["per_s"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["sustainable"]["deliveries"]["missing"], 0, "{v}");
    let offered = v["offered"].as_u64().unwrap();
    assert!(offered > 0, "{v}");
    let r = &v["responses"];
    let answered: u64 = ["200", "429", "503", "other", "io"].iter().map(|k| r[*k].as_u64().unwrap()).sum();
    assert_eq!(answered, offered, "{v}");
    assert_eq!(r["io"], 0, "{v}");
    assert_eq!(v["malformed_error_bodies"], 0, "{v}");
    assert_eq!(v["all_delivered"], true, "{v}");
    // Delivery is at least once: duplicates are reported, not failed on.
    clean(&v["deliveries"]);
    // Answered; a probe timing out (1 s) on a slow CI machine is not a failure here.
    assert!(v["health"]["latency"]["count"].as_u64().unwrap() > 0, "{v}");
    assert!(v["memory"]["rss_kib"]["peak"].as_u64().unwrap() > 0, "{v}");
    for f in ["overload-admitted.hgrm", "overload-health.hgrm", "overload-latency.svg", "overload-memory.svg"] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }

    // A server that admits nothing (and an app quota of 1 call/s behind it): every answer
    // is a refusal with an Easemob body. Admission is checked before the body is read, so
    // the refusals are 503s; the quota's 429 is tested in the server's rest_limits tests.
    let v = bench(&[
        "overload",
        "--recipients",
        "2",
        "--sustainable",
        "40",
        "--duration",
        "0.5",
        "--connections",
        "8",
        "--max-inflight",
        "0",
        "--server-env",
        "MISSIVE_LIMITS__SEND_CALLS_PER_SECOND=1",
    ]);
    let r = &v["responses"];
    assert_eq!(r["200"], 0, "{v}");
    assert!(r["503"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(r["429"].as_u64().unwrap() + r["503"].as_u64().unwrap(), v["offered"].as_u64().unwrap(), "{v}");
    assert_eq!(v["malformed_error_bodies"], 0, "{v}");
    assert_eq!(v["deliveries"]["received"], 0, "{v}");
}

#[test]
fn burst_registers_logs_in_and_uploads_everything() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    // The server's own password pool (two workers, a queue of 2) against 12 logins at once:
    // refusals are retried until every call got its 200, and each refusal must carry the
    // Easemob body. Memory is reported, not judged (`--check` is the script's job).
    let v = bench(&[
        "burst",
        "--users",
        "12",
        "--batch",
        "3",
        "--batches-at-once",
        "4",
        "--logins",
        "12",
        "--uploads",
        "2",
        "--upload-mb",
        "0.2",
        "--settle-secs",
        "0.3",
        "--server-env",
        "MISSIVE_SECURITY__PASSWORD_WORKERS=2",
        "--server-env",
        "MISSIVE_SECURITY__PASSWORD_QUEUE=2",
        "--out",
        out,
    ]);
    assert_eq!(v["scenario"], "burst");
    assert_eq!(v["argon2"]["memory_kib"], 19456, "{v}");
    assert_eq!(v["register"]["latency"]["count"], 4, "{v}");
    assert_eq!(v["logins"]["latency"]["count"], 12, "{v}");
    assert_eq!(v["uploads"]["latency"]["count"], 2, "{v}");
    for phase in ["register", "logins", "uploads"] {
        assert_eq!(v[phase]["refusals_without_easemob_body"], 0, "{v}");
    }
    assert!(v["upload_bytes"].as_u64().unwrap() >= 200_000, "{v}");
    let memory = &v["memory_mib"];
    assert!(memory["peak"].as_f64().unwrap() >= memory["idle"].as_f64().unwrap(), "{v}");
    assert!(v["samples"].as_array().unwrap().len() >= 2, "{v}");
    assert!(dir.path().join("burst-memory.svg").is_file());
}

#[test]
fn fanout_counts_every_recipient() {
    let v = bench(&["fanout", "--recipients", "10", "--calls", "5", "--concurrency", "2"]);
    assert_eq!(v["accepted_calls"], 5, "{v}");
    assert_eq!(v["deliveries"]["received"], 50, "{v}");
    clean(&v["deliveries"]);
    assert_eq!(v["complete_calls"], 5, "{v}");
    assert_eq!(v["call_completion"]["count"], 5, "{v}");
}

#[test]
fn connections_with_churn_and_sends() {
    let v = bench(&[
        "connections",
        "--connections",
        "20",
        "--hold",
        "1.5",
        "--churn-per-s",
        "2",
        "--send-rate",
        "20",
        "--sample-every",
        "0.5",
    ]);
    assert_eq!(v["connections"], 20, "{v}");
    assert!(v["sessions_on_server"].as_u64().unwrap() >= 20, "{v}");
    assert_eq!(v["login"]["count"], 20, "{v}");
    assert!(v["hold"]["churned"].as_u64().unwrap() >= 2, "{v}");
    let sends = v["hold"]["sends"]["accepted_total"].as_u64().unwrap();
    assert_eq!(v["hold"]["e2e"]["count"], sends, "{v}");
    assert!(v["rss_bytes_per_session"].is_number(), "{v}");
}

#[test]
fn offline_drains_gap_free() {
    // One send at a time, so id order is the queue's order and `out_of_order` means something.
    let v = bench(&["offline", "--users", "3", "--messages", "40", "--probe-ms", "10", "--concurrency", "1"]);
    assert_eq!(v["all_received"], true, "{v}");
    assert_eq!(v["received"], 120, "{v}");
    assert_eq!(v["pending_first_user_before_login"], 40, "{v}");
    assert_eq!(v["gap_free"], true, "{v}");
    assert_eq!(v["out_of_order"], 0, "{v}");
    assert!(v["queues_empty_s"].is_number(), "{v}");
    assert_eq!(v["first_page"]["count"], 3, "{v}");
}

#[test]
fn sdk_messages_arrive() {
    let v = bench(&["sdk", "--pairs", "2", "--in-flight", "2", "--messages", "40"]);
    assert_eq!(v["acked_total"], 40, "{v}");
    assert_eq!(v["deliveries"]["received"], 40, "{v}");
    clean(&v["deliveries"]);
    assert_eq!(v["e2e"]["count"], 40, "{v}");
}

#[test]
fn baseline_serves() {
    let v = bench(&["baseline", "--requests", "200", "--concurrency", "4"]);
    assert_eq!(v["accepted_total"], 200, "{v}");
    assert!(v["server_cpu_s"].is_number(), "{v}");
}
