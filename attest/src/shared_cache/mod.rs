//! The shared (L2) verdict cache on Redis or Valkey: replicas share verdicts, and a cold digest is
//! verified by one replica while the others wait for its answer.
//!
//! Order of a look-up: L1 ([`crate::cache::VerdictCache`], which already runs one look-up per key per
//! process) → L2 → verify. On an L2 miss the replica takes a short lock (`SET NX PX`); the winner verifies
//! and writes the entry, the others poll for it for a bounded time and then verify themselves. Entries are
//! sealed by [`entry::Sealer`] (HMAC over binding + verdict + expiry), so a writable Redis can drop,
//! delay or replay an entry under its own key within its lifetime, but cannot forge or move one.
//!
//! Redis is an optimisation, never a dependency: every call has a short timeout, a failed call is counted
//! and the look-up goes on to verify; after [`FAILURES_BEFORE_BACKOFF`] failures in a row L2 is skipped for
//! a back-off ([`DEFAULT_BACKOFF`]), so a Redis that is down or silent costs a few timeouts per second, not
//! one per request. Only verdicts are written (a verified "yes" with the success TTL, a verified "no" with
//! the failure TTL); errors (registry down) never are.

pub mod entry;

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::{CacheConfig, Cacheable, Loaded, VerdictKey};
use entry::{Binding, Sealer};

/// The generation entries are written with by default: wire format and vouch version (a verdict decided by
/// one release is not trusted by another whose verifier may judge differently).
pub const DEFAULT_GENERATION: &str = concat!("v1/vouch-", env!("CARGO_PKG_VERSION"));
/// Default timeout of one Redis call.
pub const DEFAULT_OP_TIMEOUT: Duration = Duration::from_millis(100);
/// Default lifetime of the lock one replica holds while it verifies a cold digest.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(5);
/// Default longest time a replica waits for another's verification before verifying itself.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(2);
/// Default time L2 is skipped once [`FAILURES_BEFORE_BACKOFF`] calls in a row have failed.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// Failed calls in a row that make L2 be skipped for a back-off: one slow answer on a busy node is only
/// that look-up's loss, a Redis that is down stops costing a timeout per look-up.
pub const FAILURES_BEFORE_BACKOFF: u32 = 3;
/// Time between polls while waiting for another replica's entry.
const POLL: Duration = Duration::from_millis(20);
/// Deletes the lock only if it is still ours (it may have expired and been taken by another replica).
const UNLOCK_SCRIPT: &str =
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/// Where the shared cache is and how it is used.
#[derive(Clone)]
pub struct SharedCacheConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS with the system's roots, or
    /// [`Self::ca_pem`]'s).
    pub url: String,
    /// With `rediss://`: the CA certificates (PEM) the server's certificate must lead to, instead of the
    /// system's roots (a Redis with a private CA).
    pub ca_pem: Option<Vec<u8>>,
    /// The HMAC key all replicas share (at least [`entry::MIN_KEY_BYTES`] bytes).
    pub hmac_key: Vec<u8>,
    /// Entries of another generation are ignored ([`DEFAULT_GENERATION`]).
    pub generation: String,
    /// Timeout of each Redis call.
    pub op_timeout: Duration,
    /// Lifetime of the verification lock.
    pub lock_ttl: Duration,
    /// Longest wait for another replica's verification.
    pub lock_wait: Duration,
    /// Time Redis is skipped after [`FAILURES_BEFORE_BACKOFF`] failed calls in a row.
    pub backoff: Duration,
}

impl SharedCacheConfig {
    /// Defaults around a URL and a key.
    pub fn new(url: impl Into<String>, hmac_key: Vec<u8>) -> Self {
        Self {
            url: url.into(),
            ca_pem: None,
            hmac_key,
            generation: DEFAULT_GENERATION.into(),
            op_timeout: DEFAULT_OP_TIMEOUT,
            lock_ttl: DEFAULT_LOCK_TTL,
            lock_wait: DEFAULT_LOCK_WAIT,
            backoff: DEFAULT_BACKOFF,
        }
    }
}

impl std::fmt::Debug for SharedCacheConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the URL (it may carry a password) nor the key.
        f.debug_struct("SharedCacheConfig")
            .field("url", &redacted(&self.url))
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<PEM>"))
            .field("generation", &self.generation)
            .field("op_timeout", &self.op_timeout)
            .field("lock_ttl", &self.lock_ttl)
            .field("lock_wait", &self.lock_wait)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

/// `scheme://host:port/…` without user and password, for messages.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "<not a URL>".into(),
    }
}

/// Whether `url` names a Redis server (`redis://` or `rediss://` with a host); the reason never shows the
/// URL's user or password.
pub fn check_url(url: &str) -> Result<(), String> {
    let shown = redacted(url);
    match url::Url::parse(url) {
        Ok(u) if !matches!(u.scheme(), "redis" | "rediss") => {
            Err(format!("{shown}: the scheme must be redis:// or rediss:// (TLS), not {}://", u.scheme()))
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            Err(format!("{shown}: no host (redis://HOST:PORT)"))
        }
        Ok(_) => Ok(()),
        Err(e) => Err(format!("not a URL ({e}); expected redis://[:PASSWORD@]HOST:PORT[/DB]")),
    }
}

/// Whether `url` is a `rediss://` (TLS) URL, the only kind a CA ([`SharedCacheConfig::ca_pem`]) applies to.
pub fn uses_tls(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| u.scheme() == "rediss")
}

/// The shared cache cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SharedCacheError {
    /// The URL is not a Redis URL.
    #[error("shared cache URL: {reason}")]
    Url {
        /// What is wrong (the URL shown without credentials).
        reason: String,
    },
    /// The CA certificates for a `rediss://` server cannot be used.
    #[error("shared cache CA: {reason}")]
    Ca {
        /// What is wrong.
        reason: String,
    },
    /// Not called within a Tokio runtime (the client and its connection task need one).
    #[error("the shared cache needs a Tokio runtime")]
    NoRuntime,
    /// The HMAC key is too short.
    #[error("the shared cache key has {len} bytes; at least {min} are needed")]
    KeyTooShort {
        /// Its length.
        len: usize,
        /// The least accepted.
        min: usize,
    },
}

/// Look-up counts of the shared cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SharedCacheStats {
    /// Look-ups answered by an entry (read at once or after waiting for another replica).
    pub hits: u64,
    /// Look-ups that found no usable entry and verified.
    pub misses: u64,
    /// Redis calls that failed or timed out.
    pub errors: u64,
    /// Entries found but not used: bad HMAC, another generation or key, expired, unparsable.
    pub rejected: u64,
    /// Look-ups that skipped Redis during a back-off.
    pub bypassed: u64,
    /// Look-ups that waited for another replica's verification (answered or not).
    pub waits: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    errors: AtomicU64,
    rejected: AtomicU64,
    bypassed: AtomicU64,
    waits: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

struct Inner {
    conn: ConnectionManager,
    sealer: Sealer,
    generation: String,
    success_ttl: Duration,
    failure_ttl: Duration,
    op_timeout: Duration,
    lock_ttl: Duration,
    lock_wait: Duration,
    backoff: Duration,
    counters: Counters,
    /// Milliseconds since `started` until which Redis is skipped.
    skip_until_ms: AtomicU64,
    /// Calls failed since the last one that succeeded.
    failures_in_a_row: AtomicU32,
    started: Instant,
}

/// A handle on the shared cache; clone freely.
#[derive(Clone)]
pub struct SharedCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SharedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCache").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

/// The names one binding uses in Redis.
struct Names {
    entry: String,
    lock: String,
}

/// What a read found.
enum Found<V> {
    Entry(Loaded<V>),
    Nothing { locked: bool },
}

/// A Redis call did not answer in time or failed (already counted).
struct Unavailable;

impl SharedCache {
    /// A handle that connects on first use (start-up never waits for, nor fails on, Redis); entries get the
    /// TTLs of `ttls`. Must be called within a Tokio runtime.
    pub fn new(config: &SharedCacheConfig, ttls: &CacheConfig) -> Result<Self, SharedCacheError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SharedCacheError::NoRuntime)?;
        let sealer = Sealer::new(&config.hmac_key)
            .ok_or(SharedCacheError::KeyTooShort { len: config.hmac_key.len(), min: entry::MIN_KEY_BYTES })?;
        check_url(&config.url).map_err(|reason| SharedCacheError::Url { reason })?;
        let url_error = |e: redis::RedisError| SharedCacheError::Url {
            reason: format!("{}: {e}", redacted(&config.url)),
        };
        // redis' errors name the URL's parts, never its password.
        let client = match &config.ca_pem {
            None => redis::Client::open(config.url.as_str()).map_err(url_error)?,
            Some(_) if !uses_tls(&config.url) => {
                return Err(SharedCacheError::Ca {
                    reason: format!("{}: a CA needs a rediss:// (TLS) URL", redacted(&config.url)),
                })
            }
            Some(pem) => {
                let blocks = std::str::from_utf8(pem).ok().and_then(|t| crate::keys::pem_decode_all(t).ok());
                if !blocks.is_some_and(|b| !b.is_empty() && b.iter().all(|(label, _)| label == "CERTIFICATE"))
                {
                    return Err(SharedCacheError::Ca {
                        reason: "must be PEM CERTIFICATE blocks, at least one".into(),
                    });
                }
                let certificates = redis::TlsCertificates { client_tls: None, root_cert: Some(pem.clone()) };
                redis::Client::build_with_tls(config.url.as_str(), certificates).map_err(|e| {
                    SharedCacheError::Ca { reason: format!("not usable PEM CA certificates: {e}") }
                })?
            }
        };
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.op_timeout))
            .set_response_timeout(Some(config.op_timeout))
            .set_number_of_retries(1)
            .set_max_delay(config.backoff);
        let conn = ConnectionManager::new_lazy_with_config(client, manager).map_err(url_error)?;
        let cache = Self {
            inner: Arc::new(Inner {
                conn,
                sealer,
                generation: config.generation.clone(),
                success_ttl: ttls.success_ttl,
                failure_ttl: ttls.failure_ttl,
                op_timeout: config.op_timeout,
                lock_ttl: config.lock_ttl,
                lock_wait: config.lock_wait,
                backoff: config.backoff,
                counters: Counters::default(),
                skip_until_ms: AtomicU64::new(0),
                failures_in_a_row: AtomicU32::new(0),
                started: Instant::now(),
            }),
        };
        // Connect now, in the background, so that the first admissions do not pay for the connection (nor
        // time out on it under load); a failure here is counted and logged like any other.
        let warm = cache.clone();
        runtime.spawn(async move {
            let _ = warm.call::<()>("connect", redis::pipe().cmd("PING").ignore()).await;
        });
        Ok(cache)
    }

    /// Counters so far.
    pub fn stats(&self) -> SharedCacheStats {
        let c = &self.inner.counters;
        SharedCacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            bypassed: c.bypassed.load(Ordering::Relaxed),
            waits: c.waits.load(Ordering::Relaxed),
        }
    }

    /// The verdict for `key` from Redis, or from `verify` (run by this replica or, with luck, by another).
    /// Never fails because of Redis: the result is `verify`'s whenever Redis does not answer well.
    pub async fn get_or_verify<V, E, F>(&self, key: &VerdictKey, verify: F) -> Result<Loaded<V>, E>
    where
        V: Cacheable + Serialize + DeserializeOwned,
        F: Future<Output = Result<V, E>>,
    {
        if self.skipping() {
            bump(&self.inner.counters.bypassed);
            return verify.await.map(Loaded::fresh);
        }
        let binding = Binding::new(&self.inner.generation, key);
        let names = self.names(&binding);
        let locked = match self.read(&names, &binding).await {
            Ok(Found::Entry(hit)) => {
                bump(&self.inner.counters.hits);
                return Ok(hit);
            }
            Ok(Found::Nothing { locked }) => locked,
            Err(Unavailable) => return verify.await.map(Loaded::fresh),
        };
        // Someone verifies already: wait for them; else try to become the one.
        let token = match locked {
            true => None,
            false => match self.lock(&names).await {
                Ok(token) => token,
                Err(Unavailable) => return verify.await.map(Loaded::fresh),
            },
        };
        if token.is_none() {
            bump(&self.inner.counters.waits);
            if let Some(hit) = self.wait(&names, &binding).await {
                bump(&self.inner.counters.hits);
                return Ok(hit);
            }
        }
        bump(&self.inner.counters.misses);
        let result = verify.await;
        if let Ok(value) = &result {
            self.write(&names, &binding, value).await;
        }
        if let Some(token) = token {
            self.unlock(&names, &token).await;
        }
        result.map(Loaded::fresh)
    }

    fn names(&self, binding: &Binding) -> Names {
        let name = self.inner.sealer.name(binding);
        Names { entry: format!("vouch:verdict:{name}"), lock: format!("vouch:lock:{name}") }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn skipping(&self) -> bool {
        self.elapsed_ms() < self.inner.skip_until_ms.load(Ordering::Relaxed)
    }

    /// Run one Redis call within the timeout; a failure is counted, and enough of them in a row start the
    /// back-off.
    async fn call<T: redis::FromRedisValue>(
        &self,
        what: &'static str,
        cmd: &redis::Pipeline,
    ) -> Result<T, Unavailable> {
        let mut conn = self.inner.conn.clone();
        let result = tokio::time::timeout(self.inner.op_timeout, cmd.query_async::<T>(&mut conn)).await;
        let reason = match result {
            Ok(Ok(v)) => {
                self.inner.failures_in_a_row.store(0, Ordering::Relaxed);
                return Ok(v);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {:?}", self.inner.op_timeout),
        };
        bump(&self.inner.counters.errors);
        let in_a_row = self.inner.failures_in_a_row.fetch_add(1, Ordering::Relaxed) + 1;
        if in_a_row < FAILURES_BEFORE_BACKOFF {
            tracing::debug!(operation = what, error = %reason, "shared cache call failed");
            return Err(Unavailable);
        }
        self.inner.failures_in_a_row.store(0, Ordering::Relaxed);
        let now_ms = self.elapsed_ms();
        let backoff_ms = u64::try_from(self.inner.backoff.as_millis()).unwrap_or(u64::MAX);
        let previous = self.inner.skip_until_ms.swap(now_ms.saturating_add(backoff_ms), Ordering::Relaxed);
        if previous == 0 || previous.saturating_add(backoff_ms) < now_ms {
            // The first back-off after a quiet spell is logged; the rest of an outage shows in the metrics.
            tracing::warn!(
                operation = what,
                error = %reason,
                backoff = ?self.inner.backoff,
                "shared cache unavailable; verifying without it"
            );
        }
        Err(Unavailable)
    }

    /// The entry, if one is usable, and whether a replica holds the lock.
    async fn read<V: Cacheable + DeserializeOwned>(
        &self,
        names: &Names,
        binding: &Binding,
    ) -> Result<Found<V>, Unavailable> {
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&names.entry).cmd("EXISTS").arg(&names.lock);
        let (bytes, locked): (Option<Vec<u8>>, bool) = self.call("read", &pipe).await?;
        let Some(bytes) = bytes else {
            return Ok(Found::Nothing { locked });
        };
        match self.inner.sealer.open::<V>(binding, &bytes) {
            Ok((value, left)) => Ok(Found::Entry(Loaded { value, left: Some(left) })),
            Err(why) => {
                bump(&self.inner.counters.rejected);
                tracing::warn!(entry = %names.entry, reason = %why, "shared cache entry ignored");
                // A rejected entry is as good as none: verify (and overwrite it).
                Ok(Found::Nothing { locked: false })
            }
        }
    }

    /// Take the verification lock: `Some(token)` when this replica won it, `None` when another holds it.
    async fn lock(&self, names: &Names) -> Result<Option<String>, Unavailable> {
        let mut token = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut token);
        let token = hex::encode(token);
        let ms = u64::try_from(self.inner.lock_ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(&names.lock).arg(&token).arg("NX").arg("PX").arg(ms);
        let (won,): (Option<String>,) = self.call("lock", &pipe).await?;
        Ok(won.map(|_| token))
    }

    /// Poll for another replica's entry until it comes, the lock goes (that replica gave up), Redis fails or
    /// the wait is over.
    async fn wait<V: Cacheable + DeserializeOwned>(
        &self,
        names: &Names,
        binding: &Binding,
    ) -> Option<Loaded<V>> {
        let deadline = Instant::now() + self.inner.lock_wait;
        while Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
            match self.read(names, binding).await {
                Ok(Found::Entry(hit)) => return Some(hit),
                Ok(Found::Nothing { locked: true }) => continue,
                Ok(Found::Nothing { locked: false }) | Err(Unavailable) => return None,
            }
        }
        None
    }

    async fn write<V: Cacheable + Serialize>(&self, names: &Names, binding: &Binding, value: &V) {
        let ttl = crate::cache::lifetime(value, self.inner.success_ttl, self.inner.failure_ttl);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let Some(sealed) = self.inner.sealer.seal(binding, value, ttl).filter(|_| ms > 0) else {
            return;
        };
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(&names.entry).arg(sealed).arg("PX").arg(ms).ignore();
        let _ = self.call::<()>("write", &pipe).await;
    }

    async fn unlock(&self, names: &Names, token: &str) {
        let mut pipe = redis::pipe();
        pipe.cmd("EVAL").arg(UNLOCK_SCRIPT).arg(1).arg(&names.lock).arg(token).ignore();
        let _ = self.call::<()>("unlock", &pipe).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> SharedCacheConfig {
        SharedCacheConfig::new(url, vec![7u8; entry::MIN_KEY_BYTES])
    }

    #[test]
    fn urls_are_checked_without_showing_the_password() {
        assert!(check_url("redis://:s3cret@redis.cache.svc:6379/0").is_ok());
        assert!(check_url("rediss://valkey:6380").is_ok());
        for bad in ["http://:s3cret@redis:6379", "redis://:s3cret@", "redis.cache.svc:6379", ""] {
            let reason = check_url(bad).unwrap_err();
            assert!(!reason.contains("s3cret"), "{reason}");
        }
        assert_eq!(redacted("redis://user:s3cret@redis:6379/1"), "redis://redis:6379/1");
        assert!(!format!("{:?}", config("redis://:s3cret@redis:6379")).contains("s3cret"));
    }

    #[test]
    fn set_up_errors_are_errors_not_panics() {
        assert_eq!(
            SharedCache::new(&config("redis://127.0.0.1:1"), &CacheConfig::default()).unwrap_err(),
            SharedCacheError::NoRuntime
        );
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let short = SharedCacheConfig::new("redis://127.0.0.1:1", vec![1; 8]);
            let err = SharedCache::new(&short, &CacheConfig::default()).unwrap_err();
            assert_eq!(err, SharedCacheError::KeyTooShort { len: 8, min: entry::MIN_KEY_BYTES });
            let err = SharedCache::new(&config("http://127.0.0.1:1"), &CacheConfig::default()).unwrap_err();
            assert!(matches!(err, SharedCacheError::Url { .. }), "{err:?}");
            // Redis need not be there to start: the client connects on first use.
            assert!(SharedCache::new(&config("redis://127.0.0.1:1"), &CacheConfig::default()).is_ok());
            // A CA is for TLS, and must be PEM certificates.
            let with_ca = |url: &str, pem: &[u8]| {
                let mut c = config(url);
                c.ca_pem = Some(pem.to_vec());
                SharedCache::new(&c, &CacheConfig::default())
            };
            let err = with_ca("redis://:secret@127.0.0.1:1", b"").unwrap_err();
            assert!(!err.to_string().contains("secret"), "{err}");
            let err = with_ca("rediss://127.0.0.1:1", b"no PEM here").unwrap_err();
            assert!(err.to_string().contains("at least one"), "{err}");
            let err = with_ca("redis://127.0.0.1:1", b"").unwrap_err();
            assert!(
                matches!(err, SharedCacheError::Ca { .. }) && err.to_string().contains("rediss://"),
                "{err}"
            );
            assert!(!err.to_string().contains("secret"), "{err}");
            let err = with_ca(
                "rediss://127.0.0.1:1",
                b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
            )
            .unwrap_err();
            assert!(matches!(err, SharedCacheError::Ca { .. }), "{err}");
        });
    }
}
