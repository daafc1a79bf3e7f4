//! Per-Assistant retry backoff after a failed reconcile: 5 s doubling to 5 min, so a broken
//! Assistant never hot-loops and a transient API error retries soon.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

const FIRST: Duration = Duration::from_secs(5);
const MAX: Duration = Duration::from_secs(300);

/// Consecutive failures per Assistant (`namespace/name`).
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Counts a failure and returns the delay before the next attempt.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut f = self.failures.lock().expect("lock");
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        FIRST.saturating_mul(1u32 << (*n - 1).min(10)).min(MAX)
    }

    /// A success (or a deleted Assistant): the next failure starts again at 5 s.
    pub fn reset(&self, key: &str) {
        self.failures.lock().expect("lock").remove(key);
    }

    /// How many Assistants have a failure streak (for tests: nothing leaks).
    pub fn tracked(&self) -> usize {
        self.failures.lock().expect("lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_is_bounded() {
        let b = Backoff::default();
        let d: Vec<u64> = (0..10).map(|_| b.next_delay("a").as_secs()).collect();
        assert_eq!(&d[..4], &[5, 10, 20, 40]);
        assert_eq!(*d.last().unwrap(), 300);
        b.reset("a");
        assert_eq!(b.next_delay("a").as_secs(), 5);
        b.reset("a");
        assert_eq!(b.tracked(), 0);
    }
}
