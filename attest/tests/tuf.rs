//! vouch's TUF client against a repository made by python-tuf (the reference implementation, driven by
//! `tests/tuf/repo.py`) and served on loopback by `python3 -m http.server`: a new trusted_root.json is
//! picked up, a root key rotation is followed, and an expired timestamp, a rollback, mix-and-match metadata
//! and a timestamp under its signature threshold are each refused with their reason while the last good
//! root stays in force.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::Utc;
use vouch_attest::trust_root::{TrustRoot, PUBLIC_GOOD_JSON};
use vouch_attest::tuf::{Refusal, TufConfig, TufError, TufTrustSource};
use vouch_attest::Digest;

mod tuf_support;
use tuf_support::Mirror;

/// The public-good trusted root, and a second one (its last CT log removed), with their digests.
fn two_roots() -> (Vec<u8>, Digest, Vec<u8>, Digest) {
    let first = PUBLIC_GOOD_JSON.as_bytes().to_vec();
    let mut doc: serde_json::Value = serde_json::from_slice(&first).unwrap();
    doc["ctlogs"].as_array_mut().unwrap().pop();
    let second = serde_json::to_vec_pretty(&doc).unwrap();
    let (a, b) = (Digest::sha256_of(&first), Digest::sha256_of(&second));
    assert_ne!(a, b);
    (first, a, second, b)
}

fn fingerprint(source: &TufTrustSource) -> Digest {
    source.current().expect("a root in force").trust_root.fingerprint().clone()
}

fn refusal(result: Result<impl std::fmt::Debug, TufError>) -> (Refusal, String) {
    match result {
        Err(e @ TufError::Refused { refusal, .. }) => {
            eprintln!("refused as expected: {e}");
            (refusal, e.to_string())
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_new_trusted_root_is_picked_up_cached_and_kept_when_the_mirror_is_gone() {
    let (first, first_digest, second, second_digest) = two_roots();
    let Some(mut mirror) = Mirror::start(&first) else { return };
    let cache = tempfile::tempdir().unwrap();
    let source = TufTrustSource::new(mirror.config(cache.path())).unwrap();
    assert!(source.current().is_none());

    let got = source.refresh().await.unwrap();
    assert_eq!(got.trust_root.fingerprint(), &first_digest);
    assert_eq!(&*got.json, first.as_slice());
    assert_eq!((got.root_version, got.targets_version), (1, 1));
    // repo.py's timestamp lives 7 days, the other roles longer: the timestamp is what expires first.
    assert_eq!(got.expiring_role, "timestamp");
    let left = got.metadata_expires - Utc::now();
    assert!(left > chrono::Duration::days(6) && left <= chrono::Duration::days(7), "{left}");

    mirror.publish(&second);
    let got = source.refresh().await.unwrap();
    assert_eq!(got.trust_root.fingerprint(), &second_digest);
    assert_eq!(got.targets_version, 2);
    assert_eq!(got.trust_root.ctlogs.len(), TrustRoot::from_json(&first).unwrap().ctlogs.len() - 1);

    // A restart finds the last good root in the cache before any network call.
    let restarted = TufTrustSource::new(mirror.config(cache.path())).unwrap();
    assert_eq!(fingerprint(&restarted), second_digest);

    // With the mirror gone a refresh fails, and the root in force stays.
    mirror.stop();
    let e = restarted.refresh().await.unwrap_err();
    assert!(matches!(e, TufError::Unreachable { .. }), "{e}");
    assert_eq!(e.label(), "unreachable");
    assert_eq!(fingerprint(&restarted), second_digest);
}

#[tokio::test]
async fn a_root_key_rotation_is_followed_from_the_anchor_and_from_the_cache() {
    let (first, _, second, second_digest) = two_roots();
    let Some(mirror) = Mirror::start(&first) else { return };
    let cache = tempfile::tempdir().unwrap();
    let source = TufTrustSource::new(mirror.config(cache.path())).unwrap();
    assert_eq!(source.refresh().await.unwrap().root_version, 1);

    // Root 2 replaces the root and timestamp keys; the new timestamp verifies only under root 2.
    mirror.run("rotate-root", None);
    let got = source.refresh().await.unwrap();
    assert_eq!(got.root_version, 2);

    mirror.publish(&second);
    // A client with a fresh cache walks 1.root.json → 2.root.json from the shipped anchor...
    let fresh = tempfile::tempdir().unwrap();
    let got = TufTrustSource::new(mirror.config(fresh.path())).unwrap().refresh().await.unwrap();
    assert_eq!((got.root_version, got.trust_root.fingerprint()), (2, &second_digest));
    // ...and one restarted on the old cache starts from the root 2 it verified before: with 2.root.json
    // gone from the mirror, only it still accepts the timestamp signed by the new key.
    std::fs::remove_file(mirror.dir().join("repo/2.root.json")).unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let (why, _) = refusal(TufTrustSource::new(mirror.config(fresh.path())).unwrap().refresh().await);
    assert_eq!(why, Refusal::Signature);
    let restarted = TufTrustSource::new(mirror.config(cache.path())).unwrap();
    let got = restarted.refresh().await.unwrap();
    assert_eq!((got.root_version, got.trust_root.fingerprint()), (2, &second_digest));
}

#[tokio::test]
async fn an_expired_timestamp_is_refused_and_the_last_good_root_kept() {
    let (first, first_digest, second, second_digest) = two_roots();
    let Some(mirror) = Mirror::start(&first) else { return };
    let cache = tempfile::tempdir().unwrap();
    let source = TufTrustSource::new(mirror.config(cache.path())).unwrap();
    source.refresh().await.unwrap();

    // A new target behind a correctly signed timestamp that expired yesterday (a freeze).
    mirror.publish(&second);
    mirror.run("expire-timestamp", None);
    let (why, message) = refusal(source.refresh().await);
    assert_eq!(why, Refusal::Expired);
    assert!(message.contains("expired") && message.contains("timestamp"), "{message}");
    assert_eq!(fingerprint(&source), first_digest);

    // A fresh timestamp: the new target is picked up.
    mirror.run("bump-timestamp", None);
    assert_eq!(source.refresh().await.unwrap().trust_root.fingerprint(), &second_digest);
}

#[tokio::test]
async fn a_rollback_is_refused_even_after_a_restart() {
    let (first, _, second, second_digest) = two_roots();
    let Some(mirror) = Mirror::start(&first) else { return };
    let cache = tempfile::tempdir().unwrap();
    let source = TufTrustSource::new(mirror.config(cache.path())).unwrap();
    source.refresh().await.unwrap();
    mirror.publish(&second);
    source.refresh().await.unwrap();

    // The mirror serves the previous timestamp again (validly signed, not expired, naming the old target).
    mirror.run("rollback-timestamp", None);
    let (why, message) = refusal(source.refresh().await);
    assert_eq!(why, Refusal::Rollback);
    assert!(message.contains("rollback"), "{message}");
    assert_eq!(fingerprint(&source), second_digest);

    // tough's metadata in the cache remembers the newer timestamp across a restart.
    let restarted = TufTrustSource::new(mirror.config(cache.path())).unwrap();
    let (why, _) = refusal(restarted.refresh().await);
    assert_eq!(why, Refusal::Rollback);
    assert_eq!(fingerprint(&restarted), second_digest);
}

#[tokio::test]
async fn mix_and_match_metadata_is_refused() {
    let (first, first_digest, second, _) = two_roots();
    let Some(mirror) = Mirror::start(&first) else { return };
    let cache = tempfile::tempdir().unwrap();
    let source = TufTrustSource::new(mirror.config(cache.path())).unwrap();
    source.refresh().await.unwrap();

    // Snapshot 2 names targets 2, but 2.targets.json holds targets 1 (each validly signed).
    mirror.publish(&second);
    mirror.run("mix-and-match", None);
    let (why, message) = refusal(source.refresh().await);
    assert_eq!(why, Refusal::Inconsistent);
    assert!(message.contains("targets"), "{message}");
    assert_eq!(fingerprint(&source), first_digest);
}

#[tokio::test]
async fn a_timestamp_under_its_signature_threshold_is_refused() {
    let (first, first_digest, _, _) = two_roots();
    let Some(mirror) = Mirror::start(&first) else { return };
    let cache = tempfile::tempdir().unwrap();
    let source = TufTrustSource::new(mirror.config(cache.path())).unwrap();
    source.refresh().await.unwrap();

    // A newer timestamp signed by a key the root does not list: 0 of 1 required signatures.
    mirror.run("untrusted-timestamp", None);
    let (why, message) = refusal(source.refresh().await);
    assert_eq!(why, Refusal::Signature);
    assert!(message.contains("threshold"), "{message}");
    assert_eq!(fingerprint(&source), first_digest);
}

#[tokio::test]
async fn plain_http_is_refused_unless_the_host_is_named() {
    let Some(mirror) = Mirror::start(PUBLIC_GOOD_JSON.as_bytes()) else { return };
    let cache = tempfile::tempdir().unwrap();
    let config = TufConfig { insecure_hosts: Vec::new(), ..mirror.config(cache.path()) };
    let e = TufTrustSource::new(config).unwrap_err();
    assert!(matches!(e, TufError::Config { .. }), "{e}");
}
