//! The shared (L2) verdict cache against a real `redis-server` and a real `docker-registry` on loopback:
//! verifiers with separate L1 caches (as replicas have) share one verification; entries that are altered,
//! moved or of another generation are ignored and counted; Redis down, silent or killed mid-use leaves
//! every answer right (L1 and the registry decide).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use vouch_attest::cache::{CacheConfig, VerdictKey};
use vouch_attest::cosign;
use vouch_attest::shared_cache::entry::{Binding, Sealer};
use vouch_attest::shared_cache::{SharedCache, SharedCacheConfig, SharedCacheStats};
use vouch_attest::sigstore_verify::Authority;
use vouch_attest::verify::{ArtifactVerifier, Facts, Requirement, SignatureFacts, Signer, Source, Verdict};
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_tests::fixture::{push_image, verifier};
use vouch_tests::redis_server::RedisServer;
use vouch_webhooks::dev_registry::DevRegistry;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef-test-hmac-key";

struct Env {
    registry: DevRegistry,
    redis: RedisServer,
    key: SigningKey,
    signed: ArtifactRef,
    unsigned: ArtifactRef,
}

impl Env {
    async fn start() -> Self {
        let registry = DevRegistry::start().await.unwrap();
        let redis = RedisServer::start().unwrap();
        let client = registry.client().unwrap();
        let host = registry.host();
        let signed = push_image(&client, &host, "shared", "signed").await;
        let unsigned = push_image(&client, &host, "shared", "unsigned").await;
        let key = SigningKey::generate();
        cosign::sign_image_with_key(&client, &signed, &key, BTreeMap::new()).await.unwrap();
        Self { registry, redis, key, signed, unsigned }
    }

    fn authority(&self) -> Authority {
        Authority::Key(self.key.public_key())
    }

    /// A verifier with its own, empty L1 (a replica) and the shared cache at `url` of `generation`.
    fn replica_at(&self, url: &str, generation: &str) -> ArtifactVerifier {
        // Long enough that a slow machine cannot see it end within a test.
        self.replica_with(url, generation, Duration::from_secs(600))
    }

    fn replica_with(&self, url: &str, generation: &str, backoff: Duration) -> ArtifactVerifier {
        let mut config = SharedCacheConfig::new(url, KEY.to_vec());
        config.generation = generation.into();
        config.backoff = backoff;
        let shared = SharedCache::new(&config, &CacheConfig::default()).unwrap();
        verifier(&self.registry.host()).with_shared_cache(shared)
    }

    fn replica(&self) -> ArtifactVerifier {
        self.replica_at(&self.redis.url(), "g1")
    }

    async fn allowed(&self, v: &ArtifactVerifier, r: &ArtifactRef) -> bool {
        v.verify(r, &self.authority(), &Requirement::Signature).await.unwrap().is_verified()
    }

    /// GET and HEAD requests the registry has served (its access log, settled).
    async fn registry_requests(&self) -> usize {
        assert!(self.registry.settle().await);
        self.registry.count_requests("GET", "/v2/") + self.registry.count_requests("HEAD", "/v2/")
    }
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

async fn entry_names(url: &str) -> BTreeSet<String> {
    let names: Vec<String> =
        redis::cmd("KEYS").arg("vouch:verdict:*").query_async(&mut raw(url).await).await.unwrap();
    names.into_iter().collect()
}

async fn get(url: &str, name: &str) -> Vec<u8> {
    redis::cmd("GET").arg(name).query_async(&mut raw(url).await).await.unwrap()
}

async fn set(url: &str, name: &str, value: &[u8]) {
    let () = redis::cmd("SET").arg(name).arg(value).query_async(&mut raw(url).await).await.unwrap();
}

/// The one entry name in `after` that is not in `before`.
fn new_name(before: &BTreeSet<String>, after: &BTreeSet<String>) -> String {
    let new: Vec<_> = after.difference(before).collect();
    assert_eq!(new.len(), 1, "one new entry expected: {new:?}");
    new[0].clone()
}

fn shared(v: &ArtifactVerifier) -> SharedCacheStats {
    v.shared_cache_stats().unwrap()
}

#[tokio::test]
async fn two_replicas_share_one_verification_of_a_cold_digest() {
    let env = Env::start().await;
    // The fetches one verification makes, measured with a verifier without the shared cache.
    let before = env.registry_requests().await;
    assert!(env.allowed(&verifier(&env.registry.host()), &env.signed).await);
    let one_set = env.registry_requests().await - before;
    assert!(one_set >= 2, "a verification fetches the .sig manifest and its layer");

    // Two replicas, 50 concurrent look-ups each, at the same time: one verification in all.
    let (a, b) = (env.replica(), env.replica());
    let before = env.registry_requests().await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let v = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (r, authority) = (env.signed.clone(), env.authority());
        tasks.push(tokio::spawn(async move { v.verify(&r, &authority, &Requirement::Signature).await }));
    }
    for t in tasks {
        assert!(t.await.unwrap().unwrap().is_verified());
    }
    assert_eq!(env.registry_requests().await - before, one_set, "the second replica verified too");
    let (sa, sb) = (shared(&a), shared(&b));
    assert_eq!(sa.misses + sb.misses, 1, "{sa:?} {sb:?}");
    assert_eq!(sa.hits + sb.hits, 1, "{sa:?} {sb:?}");
    assert_eq!(sa.errors + sb.errors + sa.rejected + sb.rejected, 0);

    // A verified "no" is shared as well.
    let before = env.registry_requests().await;
    assert!(!env.allowed(&a, &env.unsigned).await);
    let after_a = env.registry_requests().await;
    assert!(after_a > before);
    assert!(!env.allowed(&b, &env.unsigned).await);
    assert_eq!(env.registry_requests().await, after_a, "b took a's rejection from Redis");
}

#[tokio::test]
async fn altered_and_moved_entries_are_ignored_and_counted() {
    let env = Env::start().await;
    let url = env.redis.url();
    let writer = env.replica();
    let none = entry_names(&url).await;
    assert!(!env.allowed(&writer, &env.unsigned).await);
    let with_no = entry_names(&url).await;
    let no_name = new_name(&none, &with_no);
    assert!(env.allowed(&writer, &env.signed).await);
    let yes_name = new_name(&with_no, &entry_names(&url).await);

    // Replay: the signed image's authentic "allowed" entry put under the unsigned image's name.
    let yes_entry = get(&url, &yes_name).await;
    set(&url, &no_name, &yes_entry).await;
    let reader = env.replica();
    assert!(!env.allowed(&reader, &env.unsigned).await, "a moved entry must not admit");
    assert_eq!((shared(&reader).rejected, shared(&reader).hits), (1, 0));

    // Forgery: "denied" edited into "allowed" in place (payload changed, tag kept).
    let mut altered = get(&url, &no_name).await;
    let text = String::from_utf8_lossy(&altered[32..]).into_owned();
    assert!(text.contains("\"Err\""), "the entry holds the rejection: {text}");
    let edited = text.replacen("\"Err\"", "\"Ok\" ", 1);
    altered.truncate(32);
    altered.extend_from_slice(edited.as_bytes());
    set(&url, &no_name, &altered).await;
    let reader = env.replica();
    assert!(!env.allowed(&reader, &env.unsigned).await);
    assert_eq!((shared(&reader).rejected, shared(&reader).hits), (1, 0));

    // Written without the key: the signed image's "allowed" verdict bound to the unsigned image's key by
    // someone who knows the format but not the key.
    let payload = |entry: &[u8]| serde_json::from_slice::<serde_json::Value>(&entry[32..]).unwrap();
    let binding: Binding =
        serde_json::from_value(payload(&get(&url, &yes_name).await)["binding"].clone()).unwrap();
    let mut binding_of_no = binding.clone();
    binding_of_no.digest = env.unsigned.digest().unwrap().to_string();
    let allowed = payload(&yes_entry)["verdict"].clone();
    let forged = Sealer::new(b"not the replicas' key, but long enough").unwrap();
    set(&url, &no_name, &forged.seal(&binding_of_no, &allowed, Duration::from_secs(60)).unwrap()).await;
    let reader = env.replica();
    assert!(!env.allowed(&reader, &env.unsigned).await, "a forged entry must not admit");
    assert_eq!((shared(&reader).rejected, shared(&reader).hits), (1, 0));

    // Not an entry at all.
    set(&url, &no_name, b"garbage that is longer than a tag and is not an entry at all").await;
    let reader = env.replica();
    assert!(!env.allowed(&reader, &env.unsigned).await);
    assert_eq!(shared(&reader).rejected, 1);
    // The reader overwrote the bad entry with its own verdict: the next replica uses it.
    let next = env.replica();
    assert!(!env.allowed(&next, &env.unsigned).await);
    assert_eq!((shared(&next).hits, shared(&next).rejected), (1, 0));
}

#[tokio::test]
async fn an_entry_of_another_generation_is_ignored() {
    let env = Env::start().await;
    let url = env.redis.url();
    let old = env.replica_at(&url, "g1");
    assert!(env.allowed(&old, &env.signed).await);
    let g1_names = entry_names(&url).await;

    // A replica of generation g2 does not find g1's entry: it verifies itself.
    let before = env.registry_requests().await;
    let new = env.replica_at(&url, "g2");
    assert!(env.allowed(&new, &env.signed).await);
    assert!(env.registry_requests().await > before, "g2 verified on its own");
    assert_eq!((shared(&new).hits, shared(&new).misses), (0, 1));
    let g2_name = new_name(&g1_names, &entry_names(&url).await);

    // g1's entry copied under g2's name is authentic but of another generation: ignored, counted.
    let g1_name = g1_names.iter().next().unwrap();
    set(&url, &g2_name, &get(&url, g1_name).await).await;
    let other = env.replica_at(&url, "g2");
    assert!(env.allowed(&other, &env.signed).await);
    assert_eq!((shared(&other).rejected, shared(&other).hits, shared(&other).misses), (1, 0, 1));
}

#[tokio::test]
async fn redis_down_leaves_l1_and_the_registry_to_decide() {
    let mut env = Env::start().await;
    let url = env.redis.url();
    env.redis.kill();
    let v = env.replica_at(&url, "g1");
    assert!(env.allowed(&v, &env.signed).await);
    assert!(!env.allowed(&v, &env.unsigned).await);
    let s = shared(&v);
    assert!(s.errors >= 2, "{s:?}");
    assert_eq!((s.hits, s.misses), (0, 0), "{s:?}");
    // Answered again from L1.
    assert!(env.allowed(&v, &env.signed).await);
    assert_eq!(v.cache_stats().hits, 1);
    // Three failed calls in a row (the connect at start, two reads): Redis is skipped for a while, so a
    // look-up no longer waits for a refusal (or a timeout) first.
    let client = env.registry.client().unwrap();
    let third = push_image(&client, &env.registry.host(), "shared", "third").await;
    if s.errors < 3 {
        assert!(!env.allowed(&v, &third).await);
    }
    let fourth = push_image(&client, &env.registry.host(), "shared", "fourth").await;
    assert!(!env.allowed(&v, &fourth).await);
    assert!(shared(&v).bypassed >= 1, "{:?}", shared(&v));
}

#[tokio::test]
async fn a_silent_redis_times_out_and_answers_stay_right() {
    let env = Env::start().await;
    // Accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", silent.local_addr().unwrap());
    let v = env.replica_at(&url, "g1");
    assert!(env.allowed(&v, &env.signed).await);
    assert!(!env.allowed(&v, &env.unsigned).await);
    let s = shared(&v);
    // Each look-up's read timed out (the connect at start may have too); nothing was taken from Redis.
    assert!((2..=3).contains(&s.errors), "{s:?}");
    assert_eq!((s.hits, s.misses, s.rejected), (0, 0, 0), "{s:?}");
}

#[tokio::test]
async fn redis_killed_mid_use_changes_no_answer() {
    let mut env = Env::start().await;
    let client = env.registry.client().unwrap();
    let host = env.registry.host();
    let (a, b) = (env.replica(), env.replica());
    assert!(env.allowed(&a, &env.signed).await);
    assert!(env.allowed(&b, &env.signed).await);
    assert_eq!(shared(&b).hits, 1, "shared while Redis is up");

    env.redis.kill();
    let mut images = Vec::new();
    for n in 0..6 {
        let img = push_image(&client, &host, "midway", &format!("t{n}")).await;
        if n % 2 == 0 {
            cosign::sign_image_with_key(&client, &img, &env.key, BTreeMap::new()).await.unwrap();
        }
        images.push((img, n % 2 == 0));
    }
    for (img, signed) in &images {
        assert_eq!(env.allowed(&a, img).await, *signed, "{img}");
        assert_eq!(env.allowed(&b, img).await, *signed, "{img}");
    }
    let (sa, sb) = (shared(&a), shared(&b));
    assert!(sa.errors + sb.errors >= 1, "{sa:?} {sb:?}");
    assert_eq!(sb.hits, 1, "nothing shared once Redis is gone");
}

#[tokio::test]
async fn redis_back_after_an_outage_is_used_again_without_a_restart() {
    let mut env = Env::start().await;
    let url = env.redis.url();
    // No back-off: every look-up asks Redis, so the only question is whether the client reconnects.
    let (a, b) = (env.replica_with(&url, "g1", Duration::ZERO), env.replica_with(&url, "g1", Duration::ZERO));
    env.redis.kill();
    assert!(env.allowed(&a, &env.signed).await);
    assert!(shared(&a).errors >= 1);
    env.redis.restart().unwrap();

    // Fresh images until b takes a's verdict from Redis (bounded: the client reconnects within its retry
    // delay, a fraction of a second).
    let client = env.registry.client().unwrap();
    let mut shared_again = false;
    for n in 0..50 {
        let img = push_image(&client, &env.registry.host(), "back", &format!("t{n}")).await;
        let hits = shared(&b).hits;
        assert!(!env.allowed(&a, &img).await);
        assert!(!env.allowed(&b, &img).await);
        if shared(&b).hits > hits {
            shared_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shared_again, "no verdict shared after Redis came back: a {:?}, b {:?}", shared(&a), shared(&b));
}

/// A verified Notation-style verdict whose signature holds until `until`.
fn verdict_holding_until(until: chrono::DateTime<chrono::Utc>) -> Verdict {
    let digest = vouch_attest::Digest::sha256_of(b"holds until");
    Verdict {
        reference: format!("registry.example/app@{digest}").parse().unwrap(),
        outcome: Ok(Facts {
            signatures: vec![SignatureFacts {
                signer: Signer::Key { fingerprint: digest.clone() },
                source: Source::Referrer { manifest: digest },
                rekor_log_index: None,
                signing_time: None,
                annotations: BTreeMap::new(),
                checks: Vec::new(),
                valid_until: Some(until),
            }],
            ..Facts::default()
        }),
    }
}

#[tokio::test]
async fn an_entry_lives_no_longer_than_its_verdict_holds() {
    let redis = RedisServer::start().unwrap();
    let url = redis.url();
    // Success TTL 300 s (the default); the verdict holds 20 s more.
    let cache =
        SharedCache::new(&SharedCacheConfig::new(&url, KEY.to_vec()), &CacheConfig::default()).unwrap();
    let key = |n: u8| VerdictKey {
        digest: vouch_attest::Digest::sha256_of(&[n]),
        authority: "notation:test".into(),
        requirement: "signature".into(),
    };
    let soon = verdict_holding_until(chrono::Utc::now() + chrono::Duration::seconds(20));
    let before = entry_names(&url).await;
    cache.get_or_verify(&key(1), async { Ok::<_, ()>(soon.clone()) }).await.unwrap();
    let name = new_name(&before, &entry_names(&url).await);
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&name).query_async(&mut raw(&url).await).await.unwrap();
    assert!((1..=20_000).contains(&ttl_ms), "entry TTL {ttl_ms} ms, the verdict holds 20 s");
    // Another replica reads it with what it has left, not the full TTL.
    let other =
        SharedCache::new(&SharedCacheConfig::new(&url, KEY.to_vec()), &CacheConfig::default()).unwrap();
    let loaded =
        other.get_or_verify(&key(1), async { Err::<Verdict, _>("not verified again") }).await.unwrap();
    assert_eq!(loaded.value, soon);
    assert!(loaded.left.is_some_and(|left| left <= Duration::from_secs(20)), "{:?}", loaded.left);
    // A verdict that no longer holds is answered but not written.
    let past = verdict_holding_until(chrono::Utc::now() - chrono::Duration::seconds(1));
    let before = entry_names(&url).await;
    let got = cache.get_or_verify(&key(2), async { Ok::<_, ()>(past.clone()) }).await.unwrap();
    assert_eq!(got.value, past);
    assert_eq!(entry_names(&url).await, before, "nothing written for a verdict past its moment");
}

#[tokio::test]
async fn rediss_with_a_private_ca_shares_verdicts_and_without_the_ca_answers_stay_right() {
    let env = Env::start().await;
    // Redis serving TLS with a certificate of a CA no system trusts.
    let ca = vouch_webhooks::server::dev_pki::DevCa::new("redis test ca").unwrap();
    let pair = ca.issue_server(&[], &["127.0.0.1".parse().unwrap()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("redis.crt"), dir.path().join("redis.key"));
    std::fs::write(&cert, &pair.cert_pem).unwrap();
    std::fs::write(&key, &pair.key_pem).unwrap();
    let redis = RedisServer::start_tls(cert, key).unwrap();
    let tls_url = redis.tls_url().unwrap();
    let replica = |ca_pem: Option<String>| {
        let mut config = SharedCacheConfig::new(&tls_url, KEY.to_vec());
        config.ca_pem = ca_pem.map(String::into_bytes);
        config.backoff = Duration::from_secs(600);
        verifier(&env.registry.host())
            .with_shared_cache(SharedCache::new(&config, &CacheConfig::default()).unwrap())
    };

    // With the CA: the first replica verifies and writes over TLS, the second takes its verdict.
    let first = replica(Some(ca.cert_pem()));
    assert!(env.allowed(&first, &env.signed).await);
    let s = shared(&first);
    assert_eq!((s.misses, s.errors), (1, 0), "{s:?}");
    assert_eq!(entry_names(&redis.url()).await.len(), 1, "the entry was written through the TLS port");
    let before = env.registry_requests().await;
    let second = replica(Some(ca.cert_pem()));
    assert!(env.allowed(&second, &env.signed).await);
    assert_eq!((shared(&second).hits, shared(&second).errors), (1, 0), "{:?}", shared(&second));
    assert_eq!(env.registry_requests().await, before, "the second replica used the first one's verdict");

    // Without it (the system's roots) the server is not trusted: the call fails and is counted, nothing is
    // read from it, and the replica verifies on its own.
    let stranger = replica(None);
    assert!(env.allowed(&stranger, &env.signed).await);
    let s = shared(&stranger);
    assert!(s.errors >= 1 && s.hits == 0, "{s:?}");
    assert!(env.registry_requests().await > before, "the stranger verified itself");
}
