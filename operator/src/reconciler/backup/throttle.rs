//! The fleet-wide pace of scheduled snapshot creations, so 1,000 clients due at 03:00 do not
//! hammer the storage API at once.

use std::sync::Mutex;

use jiff::Timestamp;

/// A token bucket: `per_minute` tokens a minute, burst the same. Only scheduled snapshots
/// take a token; requests, final and pre-restore snapshots bypass it (someone is waiting).
/// In memory: a restart refills it, which is fine.
pub struct CreationBucket {
    per_minute: u32,
    state: Mutex<(f64, Option<Timestamp>)>,
}

impl CreationBucket {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            state: Mutex::new((f64::from(per_minute), None)),
        }
    }

    /// Takes one token at `now`, or says no. Refills by the time passed since the last call
    /// (a clock going backwards refills nothing).
    pub fn try_take(&self, now: Timestamp) -> bool {
        let capacity = f64::from(self.per_minute.max(1));
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = &mut *state;
        if let Some(last) = *last {
            let passed = now.duration_since(last).as_secs_f64().max(0.0);
            *tokens = (*tokens + passed * capacity / 60.0).min(capacity);
        }
        if last.is_none_or(|l| now > l) {
            *last = Some(now);
        }
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

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
}
