//! The notify outbox, exception storage, rules, bans and providers (`store::outbox`,
//! `store::notify`), for every backend: instantiated by `conformance!` in `conformance.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;

use missive_core::id::{IdGenerator, now_ms};
use missive_core::store::{
    EnqueueRequest, NewException, NewOutboxEntry, NotifyRule, NotifyRuleKind, OutboxKind, PushProviderRecord, RuleBan,
    Store, StoreError,
};
use serde_json::json;
use uuid::Uuid;

use super::support::TestStore;
use super::{POLICY, app, message};

fn entry(app: Uuid, kind: OutboxKind, key: &str, due_at: i64) -> NewOutboxEntry {
    NewOutboxEntry {
        app_id: app,
        kind,
        rule_id: (kind == OutboxKind::Callback).then(|| "rule-1".to_owned()),
        dedup_key: key.to_owned(),
        payload: json!({"key": key, "n": [1, 2]}),
        due_at,
        url_override: None,
        exception_id: None,
    }
}

fn exception(app: Uuid, date_key: &str, failed_at: i64) -> NewException {
    NewException {
        app_id: app,
        rule_id: "rule-1".into(),
        date_key: date_key.into(),
        target_url: "http://127.0.0.1:1/cb".into(),
        payload: json!({"callId": "x"}),
        reason: "answered HTTP 500".into(),
        failed_at,
    }
}

/// Entries given with messages are committed with them, duplicates by key are ignored, and
/// an entry can ride a commit that has no messages.
pub(crate) async fn outbox_entries_commit_with_their_messages(t: TestStore) {
    let s = t.store.as_ref();
    let (a, ids) = (app(s).await, IdGenerator::new(1));
    let t0 = now_ms() as i64;
    let stored = s
        .enqueue(EnqueueRequest {
            messages: vec![message(&ids, a, "bob", "alice", "x")],
            policy: POLICY,
            record: None,
            outbox: vec![entry(a, OutboxKind::Callback, "r/chat/1", t0), entry(a, OutboxKind::Push, "1/bob", t0)],
            archive: vec![],
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    // The same keys again (a retried send), and one new entry without any message.
    s.enqueue(EnqueueRequest {
        messages: vec![],
        policy: POLICY,
        record: None,
        outbox: vec![entry(a, OutboxKind::Push, "1/bob", t0), entry(a, OutboxKind::Callback, "r/recall/2", t0)],
        archive: vec![],
    })
    .await
    .unwrap();
    let depth = s.outbox_depth(t0).await.unwrap();
    assert_eq!((depth.due, depth.scheduled, depth.leased), (3, 0, 0));
    assert!(depth.oldest_due_created.is_some_and(|c| c >= t0));
    assert_eq!(s.outbox_counts().await.unwrap(), vec![(a, 3)]);
    let claimed = s.claim_outbox("n1", 10, 60_000, t0).await.unwrap();
    let keys: Vec<(OutboxKind, &str)> = claimed.iter().map(|e| (e.kind, e.dedup_key.as_str())).collect();
    assert_eq!(
        keys,
        [(OutboxKind::Callback, "r/chat/1"), (OutboxKind::Push, "1/bob"), (OutboxKind::Callback, "r/recall/2")]
    );
    let first = &claimed[0];
    assert_eq!((first.app_id, first.rule_id.as_deref(), first.attempts), (a, Some("rule-1"), 0));
    assert_eq!(first.payload, json!({"key": "r/chat/1", "n": [1, 2]}));
    assert_eq!(claimed[1].rule_id, None);
    let depth = s.outbox_depth(t0).await.unwrap();
    assert_eq!((depth.due, depth.leased), (0, 3));
}

/// A lease keeps an entry from every other claim until it runs out; then another node takes
/// it with a new token, and the first node's token no longer completes, reschedules or
/// gives up anything.
pub(crate) async fn claims_lease_and_fence(t: TestStore) {
    let s = t.store.as_ref();
    let a = app(s).await;
    let t0 = 1_000_000;
    s.add_outbox(vec![entry(a, OutboxKind::Callback, "k1", t0), entry(a, OutboxKind::Callback, "k2", t0 + 10)])
        .await
        .unwrap();
    assert!(s.claim_outbox("n1", 10, 1_000, t0 - 1).await.unwrap().is_empty(), "nothing due yet");
    let first = s.claim_outbox("n1", 1, 1_000, t0).await.unwrap();
    assert_eq!(first.iter().map(|e| e.dedup_key.as_str()).collect::<Vec<_>>(), ["k1"], "oldest due first, limit 1");
    let second = s.claim_outbox("n1", 10, 1_000, t0 + 10).await.unwrap();
    assert_eq!(second.iter().map(|e| e.dedup_key.as_str()).collect::<Vec<_>>(), ["k2"]);
    assert!(s.claim_outbox("n2", 10, 1_000, t0 + 500).await.unwrap().is_empty(), "both leased");

    // n1 stalls past its lease; n2 takes k1 over.
    let taken = s.claim_outbox("n2", 1, 1_000, t0 + 1_000).await.unwrap();
    assert_eq!(taken.len(), 1);
    let (old, new) = (&first[0], &taken[0]);
    assert_eq!(new.id, old.id);
    assert_ne!(new.claim, old.claim, "a fresh token per claim");
    assert_eq!(s.complete_outbox(&[(old.id, old.claim)]).await.unwrap(), 0);
    assert!(!s.reschedule_outbox(old.id, old.claim, t0, 5, "late").await.unwrap());
    assert!(!s.give_up_outbox(old.id, old.claim, Some(exception(a, "197001010010", t0))).await.unwrap());
    assert!(s.exception_slices(a).await.unwrap().is_empty(), "a lost claim records nothing");

    // n2 reschedules it with a backoff: released, due later, attempts kept.
    assert!(s.reschedule_outbox(new.id, new.claim, t0 + 5_000, 2, "answered HTTP 500").await.unwrap());
    let depth = s.outbox_depth(t0 + 1_200).await.unwrap();
    assert_eq!((depth.due, depth.scheduled, depth.leased), (1, 1, 0), "k2's lease ran out: due again");
    assert!(s.claim_outbox("n2", 10, 1_000, t0 + 4_999).await.unwrap().iter().all(|e| e.dedup_key == "k2"));
    let again = s.claim_outbox("n1", 10, 1_000, t0 + 5_000).await.unwrap();
    assert_eq!(again.iter().map(|e| (e.dedup_key.as_str(), e.attempts)).collect::<Vec<_>>(), [("k1", 2)]);
    assert_eq!(s.complete_outbox(&[(again[0].id, again[0].claim)]).await.unwrap(), 1);
    assert_eq!(s.outbox_counts().await.unwrap(), vec![(a, 1)], "only k2 is left");
}

/// Two handles (two nodes on PostgreSQL, two processes on SQLite) claiming at once never
/// get the same entry, and between them get every one.
pub(crate) async fn concurrent_claims_never_share_an_entry(t: TestStore) {
    let (s1, s2): (Arc<dyn Store>, Arc<dyn Store>) = (t.store.clone(), t.second().await);
    let a = app(s1.as_ref()).await;
    let t0 = now_ms() as i64;
    s1.add_outbox((0..300).map(|i| entry(a, OutboxKind::Push, &format!("k{i}"), t0)).collect()).await.unwrap();
    let claim_all = |s: Arc<dyn Store>, node: &'static str| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = s.claim_outbox(node, 7, 600_000, t0).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|e| e.id));
            }
        })
    };
    let (n1, n2) = (claim_all(s1.clone(), "n1"), claim_all(s2.clone(), "n2"));
    let (n1, n2) = (n1.await.unwrap(), n2.await.unwrap());
    let (set1, set2): (BTreeSet<i64>, BTreeSet<i64>) = (n1.iter().copied().collect(), n2.iter().copied().collect());
    assert_eq!(set1.len() + set2.len(), 300, "each entry claimed once: {} + {}", n1.len(), n2.len());
    assert!(set1.is_disjoint(&set2));
    assert_eq!(s2.outbox_depth(t0).await.unwrap().leased, 300);
}

/// Giving up records an exception (unless the entry was itself re-sending one); a slice is
/// re-sent as new entries, a delivered re-send removes its record, and old records are swept.
pub(crate) async fn exceptions_are_kept_retried_and_swept(t: TestStore) {
    let s = t.store.as_ref();
    let a = app(s).await;
    let t0 = now_ms() as i64;
    s.add_outbox(vec![
        entry(a, OutboxKind::Callback, "k1", t0),
        entry(a, OutboxKind::Callback, "k2", t0),
        entry(a, OutboxKind::Callback, "k3", t0),
    ])
    .await
    .unwrap();
    let claimed = s.claim_outbox("n1", 10, 60_000, t0).await.unwrap();
    assert!(s.give_up_outbox(claimed[0].id, claimed[0].claim, Some(exception(a, "202101010010", t0))).await.unwrap());
    assert!(s.give_up_outbox(claimed[1].id, claimed[1].claim, Some(exception(a, "202101010020", t0))).await.unwrap());
    assert!(s.give_up_outbox(claimed[2].id, claimed[2].claim, None).await.unwrap(), "dropped, not kept");
    let slices = s.exception_slices(a).await.unwrap();
    let view: Vec<(&str, u64, u32)> = slices.iter().map(|x| (x.date_key.as_str(), x.size, x.retries)).collect();
    assert_eq!(view, [("202101010010", 1, 0), ("202101010020", 1, 0)]);
    assert_eq!(s.outbox_depth(t0).await.unwrap(), Default::default());

    // Retry one slice to another URL; retrying again before it was sent adds nothing.
    assert_eq!(s.retry_exception_slice(a, "202101010010", Some("http://127.0.0.1:2/replay"), t0).await.unwrap(), 1);
    assert_eq!(s.retry_exception_slice(a, "202101010010", None, t0).await.unwrap(), 1);
    assert_eq!(s.retry_exception_slice(a, "209901010000", None, t0).await.unwrap(), 0, "no such slice");
    let resend = s.claim_outbox("n1", 10, 60_000, t0).await.unwrap();
    assert_eq!(resend.len(), 1);
    let r = &resend[0];
    assert_eq!((r.kind, r.rule_id.as_deref(), r.attempts), (OutboxKind::Callback, Some("rule-1"), 0));
    assert_eq!(r.url_override.as_deref(), Some("http://127.0.0.1:2/replay"));
    assert_eq!(r.payload, json!({"callId": "x"}));
    assert!(r.exception_id.is_some());
    // It fails again: the record stays as it was (no second record).
    assert!(s.give_up_outbox(r.id, r.claim, Some(exception(a, "202101010010", t0))).await.unwrap());
    let slices = s.exception_slices(a).await.unwrap();
    assert_eq!((slices[0].size, slices[0].retries), (1, 2));
    // Re-sent once more and delivered: the record is gone.
    s.retry_exception_slice(a, "202101010010", None, t0).await.unwrap();
    let resend = s.claim_outbox("n1", 10, 60_000, t0).await.unwrap();
    assert_eq!(resend[0].url_override, None);
    assert_eq!(s.complete_outbox(&[(resend[0].id, resend[0].claim)]).await.unwrap(), 1);
    let slices = s.exception_slices(a).await.unwrap();
    assert_eq!(slices.iter().map(|x| x.date_key.as_str()).collect::<Vec<_>>(), ["202101010020"]);

    // Sweeping by age.
    assert_eq!(s.sweep_exceptions(t0 + 1).await.unwrap(), 1);
    assert!(s.exception_slices(a).await.unwrap().is_empty());
}

/// Rules, bans and providers: names unique per app, replace by id, removal by id or name,
/// and every change advances the generation another handle sees.
pub(crate) async fn rules_bans_and_providers_advance_the_generation(t: TestStore) {
    let s = t.store.as_ref();
    let other = t.second().await;
    let (a, b) = (app(s).await, app(s).await);
    let mut last = s.notify_generation().await.unwrap();
    let mut advanced = |g: i64, what: &str| {
        assert!(g > last, "{what}: generation {g} did not pass {last}");
        last = g;
    };
    let rule = |id: &str, app: Uuid, kind: NotifyRuleKind, name: &str| NotifyRule {
        id: id.into(),
        app_id: app,
        kind,
        name: name.into(),
        rule: json!({"url": format!("http://h/{name}")}),
        created: 1,
        modified: 1,
    };
    s.put_notify_rule(&rule("id-1", a, NotifyRuleKind::PostSend, "moderation")).await.unwrap();
    advanced(other.notify_generation().await.unwrap(), "add");
    s.put_notify_rule(&rule("id-2", a, NotifyRuleKind::PreSend, "check")).await.unwrap();
    s.put_notify_rule(&rule("id-3", b, NotifyRuleKind::PostSend, "moderation")).await.unwrap();
    let taken = s.put_notify_rule(&rule("id-4", a, NotifyRuleKind::PreSend, "moderation")).await;
    assert!(matches!(taken, Err(StoreError::Conflict("rule name"))), "{taken:?}");
    let mut changed = rule("id-1", a, NotifyRuleKind::PostSend, "renamed");
    changed.modified = 2;
    s.put_notify_rule(&changed).await.unwrap();
    advanced(s.notify_generation().await.unwrap(), "replace");
    let rules = other.notify_rules().await.unwrap();
    let names: Vec<(&str, Uuid, NotifyRuleKind, &str)> =
        rules.iter().map(|r| (r.id.as_str(), r.app_id, r.kind, r.name.as_str())).collect();
    assert_eq!(names.len(), 3);
    assert!(names.contains(&("id-1", a, NotifyRuleKind::PostSend, "renamed")));
    assert_eq!(rules.iter().find(|r| r.id == "id-1").unwrap().rule, json!({"url": "http://h/renamed"}));
    assert!(!s.remove_notify_rule(a, NotifyRuleKind::PostSend, "check").await.unwrap(), "wrong kind");
    assert!(!s.remove_notify_rule(b, NotifyRuleKind::PreSend, "check").await.unwrap(), "wrong app");
    assert!(s.remove_notify_rule(a, NotifyRuleKind::PreSend, "check").await.unwrap(), "by name");
    assert!(s.remove_notify_rule(b, NotifyRuleKind::PostSend, "id-3").await.unwrap(), "by id");
    advanced(s.notify_generation().await.unwrap(), "remove");
    assert_eq!(s.notify_rules().await.unwrap().len(), 1);

    // Bans: the later end wins; ended bans are not active.
    s.record_ban(&RuleBan { rule_id: "id-1".into(), from: 100, until: 400, nth: 1 }).await.unwrap();
    advanced(other.notify_generation().await.unwrap(), "ban");
    s.record_ban(&RuleBan { rule_id: "id-1".into(), from: 50, until: 300, nth: 1 }).await.unwrap();
    assert_eq!(s.active_bans(350).await.unwrap(), [RuleBan { rule_id: "id-1".into(), from: 100, until: 400, nth: 1 }]);
    assert!(s.active_bans(400).await.unwrap().is_empty());
    s.remove_notify_rule(a, NotifyRuleKind::PostSend, "id-1").await.unwrap();
    assert!(s.active_bans(0).await.unwrap().is_empty(), "a removed rule's ban goes with it");

    // Providers.
    let provider = |name: &str, url: &str| PushProviderRecord {
        app_id: a,
        name: name.into(),
        config: json!({"provider": "webhook", "url": url}),
        modified: 1,
    };
    s.put_push_provider(&provider("hook", "http://h/1")).await.unwrap();
    advanced(s.notify_generation().await.unwrap(), "provider");
    s.put_push_provider(&provider("hook", "http://h/2")).await.unwrap();
    let all = other.push_providers().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].name.as_str(), &all[0].config), ("hook", &json!({"provider": "webhook", "url": "http://h/2"})));
    assert!(s.remove_push_provider(a, "hook").await.unwrap());
    assert!(!s.remove_push_provider(a, "hook").await.unwrap());
    advanced(other.notify_generation().await.unwrap(), "provider removed");
}
