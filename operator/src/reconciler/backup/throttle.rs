//! The fleet-wide pace of scheduled snapshot creations, so 1,000 clients due at 03:00 do not
//! hammer the storage API at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// A reservation nobody came back for within this long is dropped (the Assistant was
/// deleted, or took its snapshot another way); its token is not given back.
const ABANDONED: SignedDuration = SignedDuration::from_hours(1);

/// A token bucket: `per_minute` tokens a minute, burst the same. Only scheduled snapshots
/// take a token; requests, final and pre-restore snapshots bypass it (someone is waiting).
/// A caller that finds the bucket empty reserves the next free token and is told when it
/// is its turn, so it requeues once, at that time, instead of polling: 1,000 clients due at
/// once cost about 1,000 extra reconciles, not 1,000 every half minute. In memory: a restart
/// refills it and forgets reservations, which is fine.
pub struct CreationBucket {
    per_minute: u32,
    state: Mutex<State>,
}

struct State {
    /// Below zero: tokens already promised to reservations.
    tokens: f64,
    last: Option<Timestamp>,
    /// Caller key → when its reserved token is its to take.
    reserved: HashMap<String, Timestamp>,
}

impl CreationBucket {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            state: Mutex::new(State {
                tokens: f64::from(per_minute),
                last: None,
                reserved: HashMap::new(),
            }),
        }
    }

    /// Takes one token at `now`, or says no (no reservation). Refills by the time passed
    /// since the last call (a clock going backwards refills nothing).
    pub fn try_take(&self, now: Timestamp) -> bool {
        let mut state = self.lock();
        self.refill(&mut state, now);
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// A token for `key` at `now`: `None` when it may create now (a free token, or its
    /// reservation has come), else how long until its reserved token. Asking again before
    /// then reserves nothing more: it is told the time left.
    pub fn reserve(&self, key: &str, now: Timestamp) -> Option<Duration> {
        let mut state = self.lock();
        self.refill(&mut state, now);
        state
            .reserved
            .retain(|_, at| at.checked_add(ABANDONED).is_ok_and(|limit| limit > now));
        if let Some(at) = state.reserved.get(key).copied() {
            if at <= now {
                state.reserved.remove(key);
                return None;
            }
            return Some(wait(now, at));
        }
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            return None;
        }
        // The token this caller gets is the one that makes the balance reach 1 again after
        // every earlier promise: `1 - tokens` tokens from now.
        let rate = f64::from(self.per_minute.max(1)) / 60.0;
        // (less a hair, so float noise never adds a second)
        let secs = ((1.0 - state.tokens) / rate - 1e-6).ceil().max(1.0);
        state.tokens -= 1.0;
        let at = now
            .checked_add(SignedDuration::from_secs(secs as i64))
            .unwrap_or(now);
        state.reserved.insert(key.to_string(), at);
        Some(wait(now, at))
    }

    fn refill(&self, state: &mut State, now: Timestamp) {
        let capacity = f64::from(self.per_minute.max(1));
        if let Some(last) = state.last {
            let passed = now.duration_since(last).as_secs_f64().max(0.0);
            state.tokens = (state.tokens + passed * capacity / 60.0).min(capacity);
        }
        if state.last.is_none_or(|l| now > l) {
            state.last = Some(now);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn wait(now: Timestamp, at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn a_burst_then_the_rate() {
        let t0: Timestamp = "2026-12-03T03:00:00Z".parse().unwrap();
        let bucket = CreationBucket::new(20);
        let taken = (0..30).filter(|_| bucket.try_take(t0)).count();
        assert_eq!(taken, 20, "the burst is the per-minute rate");
        assert!(!bucket.try_take(t0));
        // 3 s is one token at 20/min.
        let t1 = t0 + SignedDuration::from_secs(3);
        assert!(bucket.try_take(t1));
        assert!(!bucket.try_take(t1));
        // A long pause refills to the burst, never beyond.
        let t2 = t1 + SignedDuration::from_hours(1);
        assert_eq!((0..30).filter(|_| bucket.try_take(t2)).count(), 20);
        // A clock stepping backwards gives nothing.
        assert!(!bucket.try_take(t0));
    }

    #[test]
    fn reservations_queue_callers_at_the_rate_and_are_kept() {
        let t0: Timestamp = "2026-12-03T03:00:00Z".parse().unwrap();
        let at = |s: i64| t0 + SignedDuration::from_secs(s);
        let bucket = CreationBucket::new(20);
        for i in 0..20 {
            assert_eq!(bucket.reserve(&format!("c{i}"), t0), None, "the burst");
        }
        // The next ones are queued 3 s apart (20/min), in order.
        assert_eq!(bucket.reserve("a", t0), Some(Duration::from_secs(3)));
        assert_eq!(bucket.reserve("b", t0), Some(Duration::from_secs(6)));
        assert_eq!(bucket.reserve("c", t0), Some(Duration::from_secs(9)));
        // Asking again early reserves nothing more: the time left.
        assert_eq!(bucket.reserve("b", at(2)), Some(Duration::from_secs(4)));
        assert_eq!(bucket.reserve("d", at(2)), Some(Duration::from_secs(10)));
        // At its time the reservation is taken, once.
        assert_eq!(bucket.reserve("a", at(3)), None);
        assert_eq!(bucket.reserve("b", at(6)), None);
        assert_eq!(bucket.reserve("c", at(9)), None);
        assert_eq!(bucket.reserve("d", at(12)), None);
        // Nothing left over: the next caller waits for the next token.
        assert_eq!(bucket.reserve("e", at(12)), Some(Duration::from_secs(3)));
        // An abandoned reservation is dropped after an hour; asking then is a fresh ask.
        assert_eq!(bucket.reserve("e", at(12 + 3600 + 3)), None);
    }

    /// 1,000 clients due at once at 20/min: every one is served within ~50 min, and the
    /// whole fleet costs about 2 calls each (the first ask, the reserved turn), not one
    /// every ~35 s while it waits.
    #[test]
    fn a_thousand_due_clients_cost_about_one_retry_each() {
        let t0: Timestamp = "2026-12-03T03:00:00Z".parse().unwrap();
        let bucket = CreationBucket::new(20);
        // Each client's next call, in time order (the controller's requeues).
        let mut queue: BTreeMap<(Timestamp, usize), ()> =
            (0..1000).map(|i| ((t0, i), ())).collect();
        let (mut calls, mut served, mut last) = (0, 0, t0);
        while let Some(((now, i), ())) = queue.pop_first() {
            calls += 1;
            match bucket.reserve(&format!("c{i}"), now) {
                None => {
                    served += 1;
                    last = now;
                }
                Some(wait) => {
                    let next = now + SignedDuration::try_from(wait).unwrap();
                    queue.insert((next, i), ());
                }
            }
        }
        assert_eq!(served, 1000);
        assert!(calls <= 1000 + 980 + 5, "{calls} calls");
        let took = last.duration_since(t0).as_secs();
        assert!((2900..=2950).contains(&took), "{took} s");
    }
}
