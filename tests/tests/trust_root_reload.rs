//! `--trusted-root` reloaded into a running engine decides keyless verification: an image signed under
//! Sigstore B is denied while trusted root A is in force, still denied while garbage is on disk (A stays),
//! allowed once B's root is published, and denied again under A. Verdicts cached under one root are never
//! served under another (the cache key carries the root's fingerprint). Real registry on loopback; the
//! reload is `vouch serve`'s own (`ConfigReload`), polled by hand instead of on a timer.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use vouch_attest::registry::{RegistryConfig, OCI_MANIFEST};
use vouch_attest::trust_root::TrustRoot;
use vouch_attest::verify::{ArtifactVerifier, VerifierConfig, VerifyOptions};
use vouch_attest::{ArtifactRef, Digest};
use vouch_policies::{Engine, EngineConfig, PolicySet};
use vouch_tests::fake_sigstore::{unix, FakeSigstore, San};
use vouch_tests::fixture::{ago, pod_input};
use vouch_webhooks::dev_registry::DevRegistry;
use vouch_webhooks::server::reload::{ConfigReload, Outcome, Source};
use vouch_webhooks::server::Evaluator as _;

const ISSUER: &str = "https://issuer.vouch-test.invalid";
const IDENTITY: &str = "release@vouch-test.invalid";

#[tokio::test]
async fn a_reloaded_trusted_root_decides_keyless_verification() {
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let (a, b) = (FakeSigstore::new().unwrap(), FakeSigstore::new().unwrap());
    // Each call dates the document anew: take each root's document once.
    let (a_json, b_json) = (a.trusted_root_json(), b.trusted_root_json());
    let verifier = ArtifactVerifier::new(VerifierConfig {
        registry: RegistryConfig { insecure_registries: vec![host.clone()], ..RegistryConfig::default() },
        trust_root: TrustRoot::from_json(&a_json).unwrap(),
        cache: Default::default(),
        // The fake Sigstore has no CT log.
        options: VerifyOptions { require_sct: false, ..VerifyOptions::default() },
    })
    .unwrap();

    // An image signed keylessly under B (certificate from B's CA, entry in B's log).
    let client = verifier.registry().clone();
    let image: ArtifactRef = format!("{host}/team/app:1.0").parse().unwrap();
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = client.push_blob(&image, config).await.unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": []
    }))
    .unwrap();
    let digest: Digest = client.push_manifest(&image, &manifest, OCI_MANIFEST).await.unwrap();
    let pinned = image.with_digest(digest);
    let leaf = b.issue(&San::Email(IDENTITY.into()), ISSUER, ago(3600), ago(3000)).unwrap();
    b.sign_image(&client, &pinned, &leaf, Some(unix(ago(3300)))).await.unwrap();

    let policy = format!(
        "apiVersion: vouch.dev/v1alpha1\nkind: ClusterSupplyChainPolicy\nmetadata: {{name: keyless-release}}\n\
         spec:\n  images: [\"{host}/team/**\"]\n  authorities: [{{name: release, keyless: {{identities: \
         [{{subject: \"{IDENTITY}\", issuer: \"{ISSUER}\"}}]}}}}]\n  requirements: {{signature: true}}\n"
    );
    let set = PolicySet::from_yaml_str(&policy);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let engine = Engine::new(EngineConfig::default(), set, verifier.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trusted_root.json");
    std::fs::write(&path, &a_json).unwrap();
    let reload =
        ConfigReload::new(engine, None, Some((path.clone(), Digest::sha256_of(&a_json).to_string())));
    let input = pod_input("default", "web", &[("app", &pinned.to_string())]);
    let misses = || verifier.cache_stats().misses;

    let d = reload.evaluate(&input).await;
    assert!(!d.allowed, "B's signature does not verify under A");
    assert_eq!(reload.poll(), [(Source::TrustedRoot, Outcome::Unchanged)]);

    std::fs::write(&path, b"not json").unwrap();
    assert!(matches!(reload.poll()[0].1, Outcome::Rejected { .. }));
    assert!(!reload.evaluate(&input).await.allowed, "garbage is kept out: A stays in force");
    assert_eq!(reload.stale().len(), 1);

    std::fs::write(&path, &b_json).unwrap();
    assert!(matches!(reload.poll()[0].1, Outcome::Reloaded { .. }));
    let before = misses();
    let d = reload.evaluate(&input).await;
    assert!(d.allowed, "under B the signature verifies: {:?}", d.message);
    assert!(misses() > before, "verified afresh under B, not answered from A's cached rejection");
    assert!(reload.stale().is_empty());

    std::fs::write(&path, &a_json).unwrap();
    assert!(matches!(reload.poll()[0].1, Outcome::Reloaded { .. }));
    assert!(!reload.evaluate(&input).await.allowed, "back under A: denied again, B's verdict not served");
}
