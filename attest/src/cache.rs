//! The verdict cache: one verification per (artifact digest, authority + trust root, requirement) at a time.
//!
//! Successes and failures are both cached, failures for a shorter TTL so that a fix (a signature pushed
//! late) is seen soon. Concurrent look-ups of one key run the verification once and share its result.
//! Transient errors (registry down) are shared with the callers waiting at that moment but not cached.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::Expiry;

use crate::digest::Digest;

/// What a cached verdict is about. Everything a verdict depends on is in the key. What a policy asks on top
/// of a verdict — which authorities are eligible, how many must sign, which signed annotations a signature
/// must carry — is not: a signature verdict holds every verified signature by the authority with its signed
/// annotations, and the policy engine judges those facts, so policies asking different things share the
/// verdict and each gets its own answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VerdictKey {
    /// The artifact's digest (never a tag).
    pub digest: Digest,
    /// Fingerprint of the authority (key fingerprint, or identities) and of the trust root in force.
    pub authority: String,
    /// The requirement asked, e.g. `signature`, `attestation:https://slsa.dev/provenance/v1`, `sbom`.
    pub requirement: String,
}

/// A value the cache can hold: it says whether it is a success (long TTL), until when it holds at all, and
/// roughly how big it is.
pub trait Cacheable: Clone + Send + Sync + 'static {
    /// Successes live for `success_ttl`, everything else for `failure_ttl`.
    fn is_success(&self) -> bool;
    /// When the value may stop being true by time alone (a signature's expiry, a CRL's `nextUpdate`): it
    /// is kept no longer, whatever its TTL. `None`: never.
    fn valid_until(&self) -> Option<DateTime<Utc>> {
        None
    }
    /// Approximate size in bytes, for the weight bound.
    fn weight(&self) -> u32 {
        1024
    }
}

/// Cache bounds and lifetimes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Most entries held.
    pub max_entries: u64,
    /// Most total weight (approximate bytes) held.
    pub max_weight: u64,
    /// Lifetime of a successful verdict.
    pub success_ttl: Duration,
    /// Lifetime of a failed verdict.
    pub failure_ttl: Duration,
    /// How long a tag's resolution to a digest is reused (zero: resolve on every look-up). Concurrent
    /// resolutions of one tag share one registry request either way.
    pub tag_ttl: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_weight: 64 * 1024 * 1024,
            success_ttl: Duration::from_secs(300),
            failure_ttl: Duration::from_secs(30),
            tag_ttl: Duration::from_secs(30),
        }
    }
}

/// Hit, miss and eviction counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Look-ups answered from the cache (including waiters that shared a running verification).
    pub hits: u64,
    /// Look-ups that ran the verification.
    pub misses: u64,
    /// Entries evicted for size.
    pub evictions: u64,
    /// Entries held now (approximate).
    pub entries: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: Arc<AtomicU64>,
}

/// How long `value` may be kept from now: the TTL of its outcome, and no longer than it holds
/// ([`Cacheable::valid_until`]; zero once that has passed). The one rule for both cache tiers.
pub fn lifetime<V: Cacheable>(value: &V, success_ttl: Duration, failure_ttl: Duration) -> Duration {
    let ttl = if value.is_success() { success_ttl } else { failure_ttl };
    match value.valid_until() {
        Some(until) => (until - Utc::now()).to_std().unwrap_or(Duration::ZERO).min(ttl),
        None => ttl,
    }
}

struct TtlBySuccess {
    success: Duration,
    failure: Duration,
}

impl<V: Cacheable> Expiry<VerdictKey, Weighted<V>> for TtlBySuccess {
    fn expire_after_create(&self, _k: &VerdictKey, v: &Weighted<V>, _now: Instant) -> Option<Duration> {
        let ttl = lifetime(&v.0, self.success, self.failure);
        Some(v.1.map_or(ttl, |left| left.min(ttl)))
    }
}

/// The value, and the time it has left when it came from elsewhere (the shared cache).
#[derive(Clone)]
struct Weighted<V>(V, Option<Duration>);

/// A value for the cache: just verified (full TTL), or loaded from a shared cache with the lifetime it has
/// left there (kept no longer in L1, so a verdict never outlives the TTL it was verified with).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<V> {
    /// The verdict.
    pub value: V,
    /// Time left; `None`: the full TTL for its outcome.
    pub left: Option<Duration>,
}

impl<V> Loaded<V> {
    /// A value just verified.
    pub fn fresh(value: V) -> Self {
        Self { value, left: None }
    }
}

/// A bounded, TTL'd, single-flight cache of verdicts.
#[derive(Clone)]
pub struct VerdictCache<V: Cacheable> {
    inner: Cache<VerdictKey, Weighted<V>>,
    counters: Arc<Counters>,
}

impl<V: Cacheable> std::fmt::Debug for VerdictCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerdictCache").field("stats", &self.stats()).finish()
    }
}

impl<V: Cacheable> VerdictCache<V> {
    /// A cache with these bounds.
    pub fn new(config: &CacheConfig) -> Self {
        let counters = Arc::new(Counters::default());
        let evictions = counters.evictions.clone();
        let max_entries = config.max_entries.max(1);
        let inner = Cache::builder()
            // Weight = bytes; the entry bound is enforced by giving every entry at least
            // max_weight / max_entries weight.
            .max_capacity(config.max_weight.max(1))
            .weigher({
                let floor = (config.max_weight / max_entries).clamp(1, u64::from(u32::MAX)) as u32;
                move |_k: &VerdictKey, v: &Weighted<V>| v.0.weight().max(floor)
            })
            .expire_after(TtlBySuccess { success: config.success_ttl, failure: config.failure_ttl })
            .eviction_listener(move |_k, _v, cause| {
                if cause == RemovalCause::Size {
                    evictions.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        Self { inner, counters }
    }

    /// The cached verdict for `key`, or run `verify` once (concurrent callers for the same key wait for that
    /// one run). A transient error is returned to every waiting caller and not cached.
    pub async fn get_or_verify<F, E>(&self, key: VerdictKey, verify: F) -> Result<V, Arc<E>>
    where
        F: std::future::Future<Output = Result<V, E>>,
        E: Send + Sync + 'static,
    {
        self.get_or_load(key, async { verify.await.map(Loaded::fresh) }).await
    }

    /// [`Self::get_or_verify`] with a loader that may bring a value with less than the full TTL left (from
    /// the shared cache); the entry lives no longer than that.
    pub async fn get_or_load<F, E>(&self, key: VerdictKey, load: F) -> Result<V, Arc<E>>
    where
        F: std::future::Future<Output = Result<Loaded<V>, E>>,
        E: Send + Sync + 'static,
    {
        let entry = self
            .inner
            .entry(key)
            .or_try_insert_with(async { load.await.map(|l| Weighted(l.value, l.left)) })
            .await?;
        if entry.is_fresh() {
            self.counters.misses.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(entry.into_value().0)
    }

    /// The cached verdict, counted as a hit; `None` (nothing counted) when there is none: then
    /// [`Self::get_or_verify`] or [`Self::get_or_load`]. A caller on a hot path asks this first, so its
    /// hits do not carry the (much larger) future of a verification.
    pub async fn hit(&self, key: &VerdictKey) -> Option<V> {
        let found = self.inner.get(key).await?;
        self.counters.hits.fetch_add(1, Ordering::Relaxed);
        Some(found.0)
    }

    /// The cached verdict, if any, without verifying.
    pub async fn peek(&self, key: &VerdictKey) -> Option<V> {
        self.inner.get(key).await.map(|w| w.0)
    }

    /// Drop every entry (trust root or policy changed).
    pub fn invalidate_all(&self) {
        self.inner.invalidate_all();
    }

    /// Counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.counters.hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
            evictions: self.counters.evictions.load(Ordering::Relaxed),
            entries: self.inner.entry_count(),
        }
    }

    /// Run pending evictions now (tests, metrics).
    pub async fn run_pending_tasks(&self) {
        self.inner.run_pending_tasks().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Clone, Debug, PartialEq)]
    struct Outcome(bool);
    impl Cacheable for Outcome {
        fn is_success(&self) -> bool {
            self.0
        }
    }

    /// A success that holds until a moment (a signature's expiry, a CRL's nextUpdate).
    #[derive(Clone, Debug, PartialEq)]
    struct HoldsUntil(DateTime<Utc>);
    impl Cacheable for HoldsUntil {
        fn is_success(&self) -> bool {
            true
        }
        fn valid_until(&self) -> Option<DateTime<Utc>> {
            Some(self.0)
        }
    }

    fn in_ms(ms: i64) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(ms)
    }

    #[test]
    fn a_value_is_kept_for_its_ttl_and_no_longer_than_it_holds() {
        let (success, failure) = (Duration::from_secs(300), Duration::from_secs(30));
        assert_eq!(lifetime(&Outcome(true), success, failure), success);
        assert_eq!(lifetime(&Outcome(false), success, failure), failure);
        let soon = lifetime(&HoldsUntil(in_ms(10_000)), success, failure);
        assert!(soon <= Duration::from_secs(10) && soon > Duration::from_secs(9), "{soon:?}");
        assert_eq!(lifetime(&HoldsUntil(in_ms(3_600_000)), success, failure), success);
        assert_eq!(lifetime(&HoldsUntil(in_ms(-1_000)), success, failure), Duration::ZERO);
    }

    #[tokio::test]
    async fn an_entry_goes_when_its_value_stops_holding_whatever_the_ttl() {
        let cache = VerdictCache::<HoldsUntil>::new(&CacheConfig::default());
        let v = HoldsUntil(in_ms(300));
        cache.get_or_verify(key(1), async { Ok::<_, ()>(v.clone()) }).await.unwrap();
        assert_eq!(cache.peek(&key(1)).await, Some(v));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(cache.peek(&key(1)).await, None, "kept past the moment it stopped holding");
        // One that no longer holds is answered to its caller, and not kept.
        let past = HoldsUntil(in_ms(-1_000));
        let got = cache.get_or_verify(key(2), async { Ok::<_, ()>(past.clone()) }).await.unwrap();
        assert_eq!(got, past);
        assert_eq!(cache.peek(&key(2)).await, None);
    }

    fn key(n: u8) -> VerdictKey {
        VerdictKey {
            digest: Digest::sha256_of(&[n]),
            authority: "key:abc".into(),
            requirement: "signature".into(),
        }
    }

    #[tokio::test]
    async fn concurrent_lookups_of_one_key_run_once() {
        let cache = VerdictCache::<Outcome>::new(&CacheConfig::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let cache = cache.clone();
            let runs = runs.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_verify(key(1), async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, String>(Outcome(true))
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), Outcome(true));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let s = cache.stats();
        assert_eq!((s.misses, s.hits), (1, 199));
    }

    #[tokio::test]
    async fn a_hit_is_answered_and_counted_and_a_miss_is_neither() {
        let cache = VerdictCache::<Outcome>::new(&CacheConfig::default());
        assert_eq!(cache.hit(&key(1)).await, None);
        assert_eq!((cache.stats().hits, cache.stats().misses), (0, 0));
        cache.get_or_verify(key(1), async { Ok::<_, ()>(Outcome(false)) }).await.unwrap();
        assert_eq!(cache.hit(&key(1)).await, Some(Outcome(false)));
        assert_eq!(cache.hit(&key(2)).await, None);
        assert_eq!((cache.stats().hits, cache.stats().misses), (1, 1));
    }

    #[tokio::test]
    async fn keys_differ_by_authority_and_requirement() {
        let cache = VerdictCache::<Outcome>::new(&CacheConfig::default());
        cache.get_or_verify(key(1), async { Ok::<_, ()>(Outcome(true)) }).await.unwrap();
        let mut other = key(1);
        other.authority = "key:def".into();
        let v = cache.get_or_verify(other.clone(), async { Ok::<_, ()>(Outcome(false)) }).await.unwrap();
        assert_eq!(v, Outcome(false));
        other.requirement = "sbom".into();
        assert!(cache.peek(&other).await.is_none());
    }

    #[tokio::test]
    async fn transient_errors_are_not_cached() {
        let cache = VerdictCache::<Outcome>::new(&CacheConfig::default());
        let err = cache.get_or_verify(key(2), async { Err::<Outcome, _>("registry down") }).await;
        assert_eq!(*err.unwrap_err(), "registry down");
        let ok = cache.get_or_verify(key(2), async { Ok::<_, &str>(Outcome(true)) }).await;
        assert_eq!(ok.unwrap(), Outcome(true));
    }

    #[tokio::test]
    async fn failures_expire_sooner_than_successes() {
        let cfg = CacheConfig {
            success_ttl: Duration::from_secs(60),
            failure_ttl: Duration::from_millis(100),
            ..CacheConfig::default()
        };
        let cache = VerdictCache::<Outcome>::new(&cfg);
        cache.get_or_verify(key(1), async { Ok::<_, ()>(Outcome(true)) }).await.unwrap();
        cache.get_or_verify(key(2), async { Ok::<_, ()>(Outcome(false)) }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(cache.peek(&key(1)).await.is_some());
        assert!(cache.peek(&key(2)).await.is_none());
    }

    #[tokio::test]
    async fn a_loaded_value_lives_no_longer_than_it_has_left() {
        let cache = VerdictCache::<Outcome>::new(&CacheConfig::default());
        let loaded = Loaded { value: Outcome(true), left: Some(Duration::from_millis(100)) };
        cache.get_or_load(key(1), async { Ok::<_, ()>(loaded) }).await.unwrap();
        cache.get_or_load(key(2), async { Ok::<_, ()>(Loaded::fresh(Outcome(true))) }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(cache.peek(&key(1)).await.is_none());
        assert!(cache.peek(&key(2)).await.is_some());
    }

    #[tokio::test]
    async fn bounded_by_entries_and_counts_evictions() {
        let cfg = CacheConfig { max_entries: 10, max_weight: 10 * 1024, ..CacheConfig::default() };
        let cache = VerdictCache::<Outcome>::new(&cfg);
        for n in 0..100u8 {
            cache.get_or_verify(key(n), async { Ok::<_, ()>(Outcome(true)) }).await.unwrap();
        }
        cache.run_pending_tasks().await;
        let s = cache.stats();
        assert!(s.entries <= 10, "{s:?}");
        assert!(s.evictions >= 90, "{s:?}");
    }
}
