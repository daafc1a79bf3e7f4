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

    /// Takes one token at `now`, or says no.
    pub fn try_take(&self, now: Timestamp) -> bool {
        let _ = (now, self.per_minute, &self.state);
        todo!("engineer B")
    }
}
