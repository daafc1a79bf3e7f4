//! Wall-clock time for decisions that follow a calendar (backup schedules, retention,
//! expiry), behind a trait so tests drive it instead of sleeping until 03:00.

use jiff::Timestamp;

/// What time it is. The product uses [`SystemClock`]; tests use `clawhost_testing`'s
/// `ManualClock` (a dev-dependency, never in the binary).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system's time.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}
