//! Registry pacing end to end: a verification through `ArtifactVerifier` inside `paced(…)` makes its
//! registry requests (tag resolution, token, manifests, signatures) no faster than the pacer's bucket
//! allows, against a real registry on loopback (Debian's docker-registry); the same verification outside
//! the scope is not paced. This is what the background scan relies on: the pacer's task-local reaches the
//! transport through the verifier, the tag single flight and the verdict cache's single flight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vouch_attest::cache::CacheConfig;
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::registry::{paced, Pacer, RegistryConfig};
use vouch_attest::sigstore_verify::Authority;
use vouch_attest::trust_root::TrustRoot;
use vouch_attest::verify::{ArtifactVerifier, Requirement, VerifierConfig, VerifyOptions};
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::dev_registry::DevRegistry;

/// A verifier with a cold cache and its own registry client (so its counters are its own requests).
fn verifier(host: &str) -> ArtifactVerifier {
    ArtifactVerifier::new(VerifierConfig {
        registry: RegistryConfig {
            insecure_registries: vec![host.to_owned()],
            timeout: Duration::from_secs(30),
            ..RegistryConfig::default()
        },
        trust_root: TrustRoot::public_good().unwrap(),
        cache: CacheConfig::default(),
        // vouch's own key signatures are not in Rekor.
        options: VerifyOptions { require_tlog_for_keys: false, ..VerifyOptions::default() },
    })
    .unwrap()
}

#[tokio::test]
async fn a_paced_verification_is_held_to_the_bucket_and_an_unpaced_one_is_not() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let pinned = push_demo_image(&client, &host, "demo/app", "1.0", b"paced app\n").await.unwrap();
    let key = SigningKey::generate();
    sign_image_with_key(&client, &pinned, &key, BTreeMap::new()).await.unwrap();
    let authority = Authority::Key(key.public_key());
    // By tag, so that resolution (the tag single flight) is part of what is paced.
    let tag: ArtifactRef = format!("{host}/demo/app:1.0").parse().unwrap();

    // Two requests a second, burst of two.
    let pacer = Arc::new(Pacer::new(NonZeroU32::new(2).unwrap()));

    let unpaced = verifier(&host);
    let verdict = unpaced.verify(&tag, &authority, &Requirement::Signature).await.unwrap();
    assert!(verdict.is_verified(), "{verdict:?}");
    assert!(unpaced.registry_stats().http_requests > 2, "{:?}", unpaced.registry_stats());
    assert_eq!(pacer.delayed_waits(), 0, "outside a paced scope nothing waits for the pacer");

    let scanner = verifier(&host);
    let started = Instant::now();
    let verdict =
        paced(pacer.clone(), scanner.verify(&tag, &authority, &Requirement::Signature)).await.unwrap();
    let elapsed = started.elapsed();
    assert!(verdict.is_verified(), "{verdict:?}");
    let requests = scanner.registry_stats().http_requests;
    assert_eq!(
        requests,
        unpaced.registry_stats().http_requests,
        "the same verification, request for request"
    );
    assert!(pacer.delayed_waits() > 0, "{requests} requests at 2/s with a burst of 2 must wait");
    // The n-th request (from 0) cannot go before (n - 1) × 500 ms: the last one, (requests - 2) × 500 ms.
    let earliest = Duration::from_millis(500) * u32::try_from(requests - 2).unwrap();
    assert!(
        elapsed >= earliest,
        "{requests} requests in {elapsed:?}, faster than the bucket allows ({earliest:?})"
    );

    // The verdict is cached now: asking again (paced) sends nothing and so waits for nothing.
    let waits = pacer.delayed_waits();
    paced(pacer.clone(), scanner.verify(&tag, &authority, &Requirement::Signature)).await.unwrap();
    assert_eq!(pacer.delayed_waits(), waits);
}
