//! A fence that keeps a frozen leader from writing after it resumes.
//!
//! Leader election alone cannot stop a replica that was paused (SIGSTOP, a stalled VM, a
//! long GC-like stall) past its lease: when it resumes, timers that fired meanwhile run
//! reconciles before the lease manager notices the lease is gone. A ticker records the
//! last moment the process was demonstrably running; every mutating request goes through
//! a client layer that refuses it when that moment is older than the fence's gap, and the
//! ticker exits the process as soon as it sees such a gap. A freeze shorter than the gap
//! cannot lose the lease (the holder renews `grace` seconds before it expires).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use http::{Method, Request};
use tower::{BoxError, Layer, Service};
use tracing::error;

/// Longest pause a leader survives: below kube-lease-manager's default renew grace (5 s).
pub const MAX_PAUSE: Duration = Duration::from_secs(4);
const TICK: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub struct WriteFence {
    armed: AtomicBool,
    start: Instant,
    last_tick_ms: AtomicU64,
}

impl Default for WriteFence {
    fn default() -> Self {
        Self {
            armed: AtomicBool::new(false),
            start: Instant::now(),
            last_tick_ms: AtomicU64::new(0),
        }
    }
}

impl WriteFence {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Whether a write may be sent now: always when unarmed (no leader election).
    pub fn allows_writes(&self) -> bool {
        !self.armed.load(Ordering::Acquire)
            || self
                .now_ms()
                .saturating_sub(self.last_tick_ms.load(Ordering::Acquire))
                <= MAX_PAUSE.as_millis() as u64
    }

    /// Starts the ticker (call once this replica leads).
    pub fn arm(self: &Arc<Self>) {
        self.last_tick_ms.store(self.now_ms(), Ordering::Release);
        self.armed.store(true, Ordering::Release);
        let fence = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TICK).await;
                let now = fence.now_ms();
                let gap = now.saturating_sub(fence.last_tick_ms.load(Ordering::Acquire));
                if gap > MAX_PAUSE.as_millis() as u64 {
                    error!(
                        paused_ms = gap,
                        "this process was paused longer than a leader may be; exiting so it cannot act on a lease another replica may hold"
                    );
                    std::process::exit(1);
                }
                fence.last_tick_ms.store(now, Ordering::Release);
            }
        });
    }
}

/// Client layer that refuses mutating requests while the fence is closed.
#[derive(Clone)]
pub struct FenceLayer(pub Arc<WriteFence>);

impl<S> Layer<S> for FenceLayer {
    type Service = Fenced<S>;
    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced {
            inner,
            fence: self.0.clone(),
        }
    }
}

pub struct Fenced<S> {
    inner: S,
    fence: Arc<WriteFence>,
}

impl<S, B> Service<Request<B>> for Fenced<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<'static, Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        if !reads && !self.fence.allows_writes() {
            return Box::pin(async {
                Err("write refused: this process was paused past its leader lease".into())
            });
        }
        let fut = self.inner.call(req);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unarmed_allows_armed_refuses_after_a_pause() {
        // A fence whose process started 10 s ago and last ticked at its start: a pause.
        let fence = WriteFence {
            start: Instant::now() - Duration::from_secs(10),
            ..Default::default()
        };
        assert!(
            fence.allows_writes(),
            "unarmed: no leader election, no fence"
        );
        fence.armed.store(true, Ordering::Release);
        assert!(!fence.allows_writes(), "armed, last tick 10 s ago");
        fence.last_tick_ms.store(fence.now_ms(), Ordering::Release);
        assert!(fence.allows_writes(), "armed, ticked just now");
    }
}
