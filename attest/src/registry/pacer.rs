//! Pacing of registry requests made on behalf of background work (the scan), so that it never takes the
//! registry's rate allowance away from admission.
//!
//! A [`Pacer`] is a token bucket. It is not a setting of the client: it applies to the requests made inside
//! [`paced`], and only to them, through a task-local. Admission requests, made outside any `paced` scope
//! by the same shared client, are never slowed down.
//!
//! ```
//! # async fn scan(verifier: vouch_attest::verify::ArtifactVerifier) {
//! use std::num::NonZeroU32;
//! use std::sync::Arc;
//! use vouch_attest::registry::{paced, Pacer};
//!
//! let pacer = Arc::new(Pacer::new(NonZeroU32::new(20).unwrap()));
//! let image = "registry.example/app:1".parse().unwrap();
//! // Every registry request this resolution makes waits for a token first.
//! let pinned = paced(pacer.clone(), verifier.resolve(&image)).await;
//! # let _ = pinned;
//! # }
//! ```
//!
//! A wait for a token counts toward the time budget of the registry call that makes the request
//! ([`RegistryConfig::timeout`](super::RegistryConfig::timeout)): keep the paced calls in flight well
//! below `per_second × timeout`, or they time out waiting for their turn.
//!
//! The scope follows the future, not the thread: a task spawned inside `paced` is not paced. The
//! verification path spawns nothing, and the verdict cache runs a verification in the task of the caller
//! that started it, so `paced(…, verifier.verify(…))` paces every request of that verification. A caller
//! that joins a verification already running for another caller (single flight) waits for that one,
//! paced or not.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    /// The pacer of the `paced` scope the current task is in.
    static PACER: Arc<Pacer>;
}

/// A token bucket for registry requests: `per_second` tokens a second, holding at most `per_second` tokens
/// (one second's worth), so an idle pacer lets a burst of `per_second` requests through at once and then
/// one every `1 / per_second`. Over any stretch of `t` seconds it lets through at most
/// `per_second × (1 + t)` requests.
///
/// Waiters are served in the order they came (a fair queue), and one that gives up (its future dropped,
/// e.g. by a timeout) takes no token.
#[derive(Debug)]
pub struct Pacer {
    /// Time between tokens.
    interval: Duration,
    /// How far ahead of now the schedule may run before a waiter must sleep: `(burst - 1) × interval`.
    tolerance: Duration,
    /// When the bucket is empty again at the pace of one token per `interval` (the "theoretical arrival
    /// time" of the generic cell rate algorithm). Held across a waiter's sleep, which makes the queue fair.
    next: tokio::sync::Mutex<Instant>,
    delayed: AtomicU64,
}

impl Pacer {
    /// A pacer allowing `per_second` requests a second, with a burst of `per_second`.
    #[must_use]
    pub fn new(per_second: NonZeroU32) -> Self {
        let interval = Duration::from_secs(1) / per_second.get();
        Self {
            interval,
            tolerance: interval * (per_second.get() - 1),
            next: tokio::sync::Mutex::new(Instant::now()),
            delayed: AtomicU64::new(0),
        }
    }

    /// Wait for a token: at once while the bucket holds one, else until the next one comes.
    pub async fn wait(&self) {
        let mut next = self.next.lock().await;
        let now = Instant::now();
        // An idle bucket fills up to the burst and no further: the schedule never starts in the past.
        let start = (*next).max(now);
        let ahead = start.saturating_duration_since(now);
        if ahead > self.tolerance {
            self.delayed.fetch_add(1, Ordering::Relaxed);
            // Dropped here (the caller gave up): `next` is unchanged, so no token is used.
            tokio::time::sleep(ahead - self.tolerance).await;
        }
        *next = start + self.interval;
    }

    /// How many waits so far had to sleep for a token (for metrics: a scan held back by its pace).
    pub fn delayed_waits(&self) -> u64 {
        self.delayed.load(Ordering::Relaxed)
    }
}

/// Run `fut` with `pacer` pacing every registry request it makes (in this task; see the module docs).
pub async fn paced<F: Future>(pacer: Arc<Pacer>, fut: F) -> F::Output {
    PACER.scope(pacer, fut).await
}

/// Wait for a token of the pacer in scope, if any; called before every HTTP request the transport sends.
pub(super) async fn pace() {
    // Cloned out: the task-local cannot be borrowed across an await.
    if let Ok(pacer) = PACER.try_with(Arc::clone) {
        pacer.wait().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn per_second(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn sequential_waits_pass_the_burst_then_one_per_interval() {
        let pacer = Pacer::new(per_second(20));
        let start = Instant::now();
        for _ in 0..20 {
            pacer.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst passes at once");
        assert_eq!(pacer.delayed_waits(), 0);
        for i in 1..=40u32 {
            pacer.wait().await;
            assert_eq!(start.elapsed(), Duration::from_millis(50) * i, "wait {i} after the burst");
        }
        assert_eq!(pacer.delayed_waits(), 40);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_pacer_refills_up_to_the_burst_and_no_more() {
        let pacer = Pacer::new(per_second(20));
        for _ in 0..20 {
            pacer.wait().await;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        let idle_end = Instant::now();
        for _ in 0..20 {
            pacer.wait().await;
        }
        assert_eq!(idle_end.elapsed(), Duration::ZERO, "ten idle seconds give back one burst");
        pacer.wait().await;
        assert_eq!(idle_end.elapsed(), Duration::from_millis(50), "but not two");
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_never_exceed_the_rate() {
        let pacer = Arc::new(Pacer::new(per_second(20)));
        let start = Instant::now();
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let pacer = pacer.clone();
                tokio::spawn(async move {
                    pacer.wait().await;
                    start.elapsed()
                })
            })
            .collect();
        let mut passed = Vec::new();
        for t in tasks {
            passed.push(t.await.unwrap());
        }
        passed.sort();
        // The k-th request (from 0) passes no sooner than the bucket allows: (k - 19) × 50 ms after start.
        for (k, at) in passed.iter().enumerate() {
            let earliest = Duration::from_millis(50) * (k as u32).saturating_sub(19);
            assert!(*at >= earliest, "request {k} passed at {at:?}, before {earliest:?}");
        }
        // And the pacer wastes no tokens: the last one passes exactly when its token comes.
        assert_eq!(passed[99], Duration::from_millis(50) * 80);
        assert_eq!(pacer.delayed_waits(), 80);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gives_up_takes_no_token() {
        let pacer = Pacer::new(per_second(20));
        for _ in 0..20 {
            pacer.wait().await;
        }
        let start = Instant::now();
        assert!(tokio::time::timeout(Duration::from_millis(10), pacer.wait()).await.is_err());
        pacer.wait().await;
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(50),
            "the next token is still the first after the burst"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn pace_waits_only_inside_a_paced_scope() {
        let pacer = Arc::new(Pacer::new(per_second(1)));
        let start = Instant::now();
        for _ in 0..5 {
            pace().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "no pacer in scope: no waiting");
        assert_eq!(pacer.delayed_waits(), 0);

        paced(pacer.clone(), async {
            for _ in 0..3 {
                pace().await;
            }
        })
        .await;
        assert_eq!(start.elapsed(), Duration::from_secs(2), "1/s with a burst of 1: the 2nd and 3rd wait");
        assert_eq!(pacer.delayed_waits(), 2);

        // The scope ended with the future: the same task is not paced any more.
        let after = Instant::now();
        pace().await;
        assert_eq!(after.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_spawned_inside_the_scope_is_not_paced() {
        let pacer = Arc::new(Pacer::new(per_second(1)));
        let start = Instant::now();
        paced(pacer.clone(), async {
            tokio::spawn(async {
                for _ in 0..3 {
                    pace().await;
                }
            })
            .await
            .unwrap();
        })
        .await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(pacer.delayed_waits(), 0);
    }
}
