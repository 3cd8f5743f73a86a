//! Retry, backoff and ban for post-send callbacks, as decisions without I/O.
//!
//! Easemob's rules (`callback_postsending.md`, easemob-api.md §6.3):
//! - a callback answered with anything but HTTP 200 (or not answered in time, or answered
//!   with more than 1,000 characters) has failed, and is retried **once, at once**; a second
//!   failure ends it — dropped, or kept in exception storage when the app has it;
//! - **ban**: 90 failures within 30 s ban the rule. The n-th ban within 24 h lasts n × 5 min,
//!   n counted up to 5 (so 5, 10, 15, 20, then 25 min). What arrives during a ban is not
//!   attempted (dropped, or kept as an exception).
//!
//! Missive's extension, off by default: a backoff schedule of further attempts after the
//! immediate retry (`backoff_ms`), and with it, callbacks that arrive during a ban wait for
//! the ban to end instead of being given up on.
//!
//! Times are Unix milliseconds, what the outbox stores, so a decision made on one node can be
//! carried out on another.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// How a rule's failed callbacks are retried and what happens when they run out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Delays of the attempts after Easemob's two (the first and its immediate retry).
    /// Empty means Easemob's behaviour exactly.
    pub backoff_ms: Vec<u64>,
    /// Keep callbacks that run out of attempts for `callbacks/storage/retry` (Easemob's
    /// 回调异常存储) instead of dropping them.
    pub keep_exceptions: bool,
}

/// How one attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// HTTP 200 with a body of at most 1,000 characters.
    Delivered,
    Failed,
}

/// What to do with a delivery next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Delivered: remove it from the outbox.
    Done,
    /// Attempt again now (Easemob's immediate retry).
    RetryNow,
    /// Put it back in the outbox, due at this time.
    RetryAt(i64),
    /// Out of attempts: move it to exception storage.
    Exception,
    /// Out of attempts and the app keeps no exceptions: drop it (logged and counted).
    Drop,
}

impl RetryPolicy {
    /// Most attempts one callback gets.
    pub fn max_attempts(&self) -> u32 {
        2 + self.backoff_ms.len() as u32
    }

    /// The next step after attempt number `attempt` (1-based) ended with `outcome` at `now`.
    pub fn after(&self, attempt: u32, outcome: Outcome, now: i64) -> Next {
        match outcome {
            Outcome::Delivered => Next::Done,
            Outcome::Failed if attempt <= 1 => Next::RetryNow,
            Outcome::Failed => match self.backoff_ms.get(attempt as usize - 2) {
                Some(&delay) => Next::RetryAt(now.saturating_add(delay as i64)),
                None => self.give_up(),
            },
        }
    }

    /// The rule is banned until `until`: Easemob does not attempt what arrives during a ban;
    /// with a backoff schedule the callback waits the ban out instead (not counted as an
    /// attempt).
    pub fn while_banned(&self, until: i64) -> Next {
        if self.backoff_ms.is_empty() { self.give_up() } else { Next::RetryAt(until) }
    }

    fn give_up(&self) -> Next {
        if self.keep_exceptions { Next::Exception } else { Next::Drop }
    }
}

/// The ban rule's numbers (Easemob's by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRule {
    /// Failures within `window_ms` that ban the rule.
    pub max_failures: u32,
    pub window_ms: i64,
    /// Length of the first ban; the n-th lasts n times this.
    pub step_ms: i64,
    /// n stops growing here.
    pub max_steps: u32,
    /// How far back earlier bans count towards n.
    pub memory_ms: i64,
}

impl Default for BanRule {
    fn default() -> Self {
        BanRule { max_failures: 90, window_ms: 30_000, step_ms: 5 * 60_000, max_steps: 5, memory_ms: 24 * 3_600_000 }
    }
}

/// A ban that has just begun.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ban {
    pub from: i64,
    pub until: i64,
    /// Which ban within the memory window this is, capped at `max_steps`.
    pub nth: u32,
}

/// The failure history of one rule's endpoint, enough to apply the ban rule. Its size is
/// bounded by `max_failures + max_steps` timestamps whatever the traffic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointHealth {
    /// Failures since the last ban, oldest first, none older than `window_ms`.
    failures: VecDeque<i64>,
    /// Start times of the latest bans, at most `max_steps` of them.
    ban_starts: VecDeque<i64>,
    banned_until: Option<i64>,
}

impl EndpointHealth {
    /// When the current ban ends, if the rule is banned at `now`.
    pub fn banned_until(&self, now: i64) -> Option<i64> {
        self.banned_until.filter(|&until| until > now)
    }

    /// Restores a ban another node started (read from the store), so this node honours it.
    pub fn observe_ban(&mut self, ban: Ban) {
        if self.banned_until.is_none_or(|u| u < ban.until) {
            self.banned_until = Some(ban.until);
        }
    }

    /// Counts an attempt's outcome; returns the ban it starts, if any. Outcomes of attempts
    /// that were in flight when a ban began do not count towards the next one.
    pub fn record(&mut self, rule: &BanRule, outcome: Outcome, now: i64) -> Option<Ban> {
        if outcome == Outcome::Delivered || self.banned_until(now).is_some() {
            return None;
        }
        while self.failures.front().is_some_and(|&t| t <= now - rule.window_ms) {
            self.failures.pop_front();
        }
        self.failures.push_back(now);
        if (self.failures.len() as u32) < rule.max_failures {
            return None;
        }
        self.failures.clear();
        while self.ban_starts.front().is_some_and(|&t| t <= now - rule.memory_ms) {
            self.ban_starts.pop_front();
        }
        let nth = (self.ban_starts.len() as u32 + 1).min(rule.max_steps);
        self.ban_starts.push_back(now);
        if self.ban_starts.len() > rule.max_steps as usize {
            self.ban_starts.pop_front();
        }
        let until = now + rule.step_ms * i64::from(nth);
        self.banned_until = Some(until);
        Some(Ban { from: now, until, nth })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn easemob_default_is_one_immediate_retry() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts(), 2);
        assert_eq!(p.after(1, Outcome::Failed, 10), Next::RetryNow);
        assert_eq!(p.after(2, Outcome::Failed, 10), Next::Drop);
        assert_eq!(p.after(2, Outcome::Delivered, 10), Next::Done);
        assert_eq!(p.while_banned(99), Next::Drop);
        let keep = RetryPolicy { keep_exceptions: true, ..Default::default() };
        assert_eq!(keep.after(2, Outcome::Failed, 10), Next::Exception);
        let backoff = RetryPolicy { backoff_ms: vec![1_000, 60_000], keep_exceptions: true };
        assert_eq!(backoff.after(2, Outcome::Failed, 10), Next::RetryAt(1_010));
        assert_eq!(backoff.after(3, Outcome::Failed, 20), Next::RetryAt(60_020));
        assert_eq!(backoff.after(4, Outcome::Failed, 30), Next::Exception);
        assert_eq!(backoff.while_banned(99), Next::RetryAt(99));
    }

    #[test]
    fn ninety_failures_in_thirty_seconds_ban_for_growing_times() {
        let rule = BanRule::default();
        let mut h = EndpointHealth::default();
        let mut now = 0;
        let mut lengths = Vec::new();
        for _ in 0..7 {
            let mut ban = None;
            for _ in 0..90 {
                now += 100;
                ban = h.record(&rule, Outcome::Failed, now).or(ban);
            }
            let ban = ban.expect("the 90th failure bans");
            assert_eq!(h.banned_until(now), Some(ban.until));
            assert_eq!(h.record(&rule, Outcome::Failed, now + 1), None, "failures during a ban do not count");
            lengths.push((ban.until - ban.from) / 60_000);
            now = ban.until;
        }
        assert_eq!(lengths, [5, 10, 15, 20, 25, 25, 25]);
        // A day later the count starts again.
        now += rule.memory_ms;
        let ban = (0..90).filter_map(|i| h.record(&rule, Outcome::Failed, now + i)).next().unwrap();
        assert_eq!(ban.nth, 1);
    }

    #[test]
    fn failures_spread_thinner_than_the_window_never_ban() {
        let rule = BanRule::default();
        let mut h = EndpointHealth::default();
        for i in 0..10_000 {
            // 89 failures per 30 s, forever.
            assert_eq!(h.record(&rule, Outcome::Failed, i * 338), None);
        }
    }

    /// A reference model with the whole history kept, recomputed from scratch at each step.
    struct Model {
        failures: Vec<i64>,
        bans: Vec<i64>,
        until: i64,
    }

    impl Model {
        fn record(&mut self, rule: &BanRule, failed: bool, now: i64) -> Option<Ban> {
            if !failed || self.until > now {
                return None;
            }
            self.failures.push(now);
            let recent = self.failures.iter().filter(|&&f| f > now - rule.window_ms).count();
            if recent < rule.max_failures as usize {
                return None;
            }
            self.failures.clear();
            let earlier = self.bans.iter().filter(|&&b| b > now - rule.memory_ms).count() as u32;
            let nth = (earlier + 1).min(rule.max_steps);
            self.bans.push(now);
            self.until = now + rule.step_ms * i64::from(nth);
            Some(Ban { from: now, until: self.until, nth })
        }
    }

    proptest! {
        /// The bounded, incremental health agrees with the unbounded model on any history,
        /// and every ban is one of the five documented lengths.
        #[test]
        fn health_matches_the_model(steps in prop::collection::vec((0i64..400, prop::bool::weighted(0.9), prop::bool::weighted(0.01)), 1..3_000)) {
            // Scaled down so one case sees many bans, ban growth, and bans forgotten: ~25
            // events per window, bans of 10 s steps, a 10-minute memory, jumps of 100 s.
            let rule = BanRule { max_failures: 20, window_ms: 5_000, step_ms: 10_000, max_steps: 5, memory_ms: 600_000 };
            let mut health = EndpointHealth::default();
            let mut model = Model { failures: vec![], bans: vec![], until: i64::MIN };
            let mut now = 0;
            let mut bans = [0u32; 5];
            let long = steps.len() > 2_000;
            for (dt, failed, jump) in steps {
                now += if jump { 100_000 } else { dt };
                let outcome = if failed { Outcome::Failed } else { Outcome::Delivered };
                let got = health.record(&rule, outcome, now);
                prop_assert_eq!(got, model.record(&rule, failed, now));
                if let Some(ban) = got {
                    bans[ban.nth as usize - 1] += 1;
                    prop_assert!([1, 2, 3, 4, 5].map(|n| n * rule.step_ms).contains(&(ban.until - ban.from)));
                }
                prop_assert!(health.failures.len() < rule.max_failures as usize);
                prop_assert!(health.ban_starts.len() <= rule.max_steps as usize);
            }
            if long {
                // Long histories reach the first bans (the model comparison is not vacuous).
                prop_assert!(bans[0] > 0 && bans[1] > 0 && bans[4] > 0, "bans by rank: {bans:?}");
            }
        }

        /// Whatever the outcomes, a delivery ends exactly once, within `max_attempts`
        /// attempts, and each scheduled retry lies in the future by its backoff step.
        #[test]
        fn every_delivery_ends_within_its_attempts(
            backoff in prop::collection::vec(1u64..100_000, 0..5),
            keep in any::<bool>(),
            outcomes in prop::collection::vec(any::<bool>(), 8),
        ) {
            let policy = RetryPolicy { backoff_ms: backoff.clone(), keep_exceptions: keep };
            let mut attempt = 0;
            let mut now = 1_000;
            let end = loop {
                attempt += 1;
                let outcome = if outcomes[attempt as usize - 1] { Outcome::Delivered } else { Outcome::Failed };
                match policy.after(attempt, outcome, now) {
                    Next::RetryNow => prop_assert_eq!(attempt, 1),
                    Next::RetryAt(t) => {
                        prop_assert_eq!(t - now, backoff[attempt as usize - 2] as i64);
                        now = t;
                    }
                    terminal => break terminal,
                }
            };
            prop_assert!(attempt <= policy.max_attempts());
            let delivered = outcomes[..attempt as usize].iter().any(|&d| d);
            prop_assert_eq!(end == Next::Done, delivered);
            if !delivered {
                prop_assert_eq!(attempt, policy.max_attempts());
                prop_assert_eq!(end, if keep { Next::Exception } else { Next::Drop });
            }
        }
    }
}
