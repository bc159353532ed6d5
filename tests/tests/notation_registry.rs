//! Notary Project (Notation) signatures against a real `docker-registry` on loopback: vouch's own JWS
//! signer signs an image with a test CA's leaf and pushes the signature as `notation sign` does (a referrer
//! found through the referrers API or its tag-schema fallback); the verifier admits it under the right
//! trust store and identity and refuses it, with the reason, otherwise.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use vouch_attest::cosign::push_notation_signature;
use vouch_attest::notation::sign::sign_jws;
use vouch_attest::notation::verify::{CheckResult, JWS_MEDIA_TYPE};
use vouch_attest::notation::{
    Check, CrlStore, Level, NotationAuthority, TargetArtifact, TrustStore, TrustedIdentity,
};
use vouch_attest::sigstore_verify::Authority;
use vouch_attest::verify::{ArtifactVerifier, Requirement, Signer, Source, Verdict};
use vouch_attest::ArtifactRef;
use vouch_tests::fixture::{push_image, rejection, verifier};
use vouch_tests::notation::{sign_and_push, NotationCa};
use vouch_webhooks::dev_registry::DevRegistry;

const RELEASE: &str = "CN=release,O=vouch-test,ST=WA,C=US";
const RELEASE_ID: &str = "x509.subject: C=US, ST=WA, O=vouch-test, CN=release";

fn notation(ca: &NotationCa, identity: &str, level: Level) -> Authority {
    with_crls(ca, identity, level, CrlStore::default())
}

fn with_crls(ca: &NotationCa, identity: &str, level: Level, crls: CrlStore) -> Authority {
    Authority::Notation(Arc::new(NotationAuthority {
        trust_store: TrustStore::from_pem(&ca.trust_store_pem()).unwrap(),
        tsa_trust_store: None,
        crls,
        identities: vec![identity.parse::<TrustedIdentity>().unwrap()],
        level,
    }))
}

async fn signature(v: &ArtifactVerifier, image: &ArtifactRef, authority: &Authority) -> Verdict {
    v.verify(image, authority, &Requirement::Signature).await.unwrap()
}

#[tokio::test]
async fn a_notation_jws_by_vouchs_signer_verifies_as_an_x509_signer_with_revocation_not_claimed() {
    let registry = DevRegistry::start().await.unwrap();
    let v = verifier(&registry.host());
    let image = push_image(v.registry(), &registry.host(), "notation/app", "v1").await;
    let ca = NotationCa::new("vouch test notation root").unwrap();
    let signer = ca.issue_current(RELEASE).unwrap();
    let sig = sign_and_push(v.registry(), &image, &signer, None).await.unwrap();

    let facts = signature(&v, &image, &notation(&ca, RELEASE_ID, Level::Strict)).await.outcome.unwrap();
    assert_eq!(facts.signatures.len(), 1);
    let s = &facts.signatures[0];
    assert!(
        matches!(&s.signer, Signer::X509 { subject, fingerprint }
        if subject == RELEASE && *fingerprint == vouch_attest::Digest::sha256_of(&signer.chain[0])),
        "{:?}",
        s.signer
    );
    assert_eq!(s.source, Source::Referrer { manifest: sig });
    let revocation = s.checks.iter().find(|c| c.check == Check::Revocation).unwrap();
    assert_eq!(revocation.result, CheckResult::Skipped, "revocation is never claimed");
    assert!(s
        .checks
        .iter()
        .filter(|c| c.check != Check::Revocation)
        .all(|c| c.result == CheckResult::Passed));
    // `*` accepts any signer the store vouches for.
    assert!(signature(&v, &image, &notation(&ca, "*", Level::Strict)).await.is_verified());
}

fn revocation(verdict: &Verdict) -> (CheckResult, String) {
    let facts = verdict.outcome.as_ref().unwrap();
    let c = facts.signatures[0].checks.iter().find(|c| c.check == Check::Revocation).unwrap();
    (c.result, c.reason.clone().unwrap_or_default())
}

#[tokio::test]
async fn crls_given_decide_revocation_per_level_and_the_finding_says_what_was_checked() {
    let registry = DevRegistry::start().await.unwrap();
    let v = verifier(&registry.host());
    let image = push_image(v.registry(), &registry.host(), "notation/app", "crl").await;
    let ca = NotationCa::new("vouch test notation root").unwrap();
    let signer = ca.issue_current(RELEASE).unwrap();
    sign_and_push(v.registry(), &image, &signer, None).await.unwrap();
    let crls = |der: Vec<u8>| CrlStore::from_bytes(&der).unwrap();
    let root = "CN=vouch test notation root,O=vouch-test,ST=WA,C=US";

    // A current CRL from the root that does not list the leaf: passed, and the finding names the CRL.
    let clean = with_crls(&ca, RELEASE_ID, Level::Strict, crls(ca.crl(&[]).unwrap()));
    let verdict = signature(&v, &image, &clean).await;
    assert_eq!(
        revocation(&verdict),
        (CheckResult::Passed, format!("checked against the CRL from {root}, not revoked"))
    );

    // The leaf revoked: strict denies with the reason; audit admits and records the failure.
    let revoked = crls(ca.crl(&[&signer]).unwrap());
    let reason =
        rejection(&signature(&v, &image, &with_crls(&ca, RELEASE_ID, Level::Strict, revoked.clone())).await);
    assert!(reason.contains(&format!("revocation: certificate {RELEASE} (serial")), "{reason}");
    assert!(
        reason.contains("is revoked: revoked at") && reason.contains("(reason keyCompromise)"),
        "{reason}"
    );
    let audited = signature(&v, &image, &with_crls(&ca, RELEASE_ID, Level::Audit, revoked)).await;
    let (result, why) = revocation(&audited);
    assert_eq!(result, CheckResult::FailedLogged, "{why}");
    assert!(why.contains("is revoked"), "{why}");

    // A CRL in the root's name but signed by another key is not trusted: revocation unavailable.
    let impostor = NotationCa::new("vouch test notation root").unwrap();
    let forged = crls(impostor.crl(&[]).unwrap());
    let reason = rejection(&signature(&v, &image, &with_crls(&ca, RELEASE_ID, Level::Strict, forged)).await);
    assert!(reason.contains("revocation unavailable") && reason.contains("is not trusted"), "{reason}");

    // An out-of-date CRL is never a pass.
    let now = chrono::Utc::now();
    let stale =
        crls(ca.crl_valid(&[], now - chrono::Duration::days(9), now - chrono::Duration::days(2)).unwrap());
    let reason =
        rejection(&signature(&v, &image, &with_crls(&ca, RELEASE_ID, Level::Strict, stale.clone())).await);
    assert!(reason.contains("is out of date"), "{reason}");
    let (result, _) =
        revocation(&signature(&v, &image, &with_crls(&ca, RELEASE_ID, Level::Permissive, stale)).await);
    assert_eq!(result, CheckResult::FailedLogged);

    // CRLs of another CA only: the leaf's issuer has none, so revocation is not checked (and says why).
    let other = NotationCa::new("another root").unwrap();
    let verdict =
        signature(&v, &image, &with_crls(&ca, RELEASE_ID, Level::Strict, crls(other.crl(&[]).unwrap())))
            .await;
    assert_eq!(revocation(&verdict), (CheckResult::Skipped, format!("no CRL for {root}")));
}

#[tokio::test]
async fn wrong_identity_wrong_trust_store_and_another_images_signature_are_refused_with_reasons() {
    let registry = DevRegistry::start().await.unwrap();
    let v = verifier(&registry.host());
    let host = registry.host();
    let image = push_image(v.registry(), &host, "notation/app", "a").await;
    let other = push_image(v.registry(), &host, "notation/app", "b").await;
    let ca = NotationCa::new("vouch test notation root").unwrap();
    let signer = ca.issue_current(RELEASE).unwrap();
    sign_and_push(v.registry(), &image, &signer, None).await.unwrap();

    let wrong_id = notation(&ca, "x509.subject: C=US, ST=WA, O=vouch-test, CN=nightly", Level::Strict);
    let reason = rejection(&signature(&v, &image, &wrong_id).await);
    assert!(reason.contains("is not a trusted identity"), "{reason}");
    let other_ca = NotationCa::new("vouch test notation root").unwrap();
    let reason = rejection(&signature(&v, &image, &notation(&other_ca, RELEASE_ID, Level::Strict)).await);
    assert!(reason.contains("no certificate of the signature's chain is in the trust store"), "{reason}");

    // A valid signature for `image`, pushed as a referrer of `other`: it names another artifact.
    let manifest = v.registry().fetch_manifest(&image).await.unwrap();
    let target = TargetArtifact {
        media_type: manifest.media_type,
        digest: manifest.digest.to_string(),
        size: manifest.bytes.len() as u64,
        annotations: Default::default(),
    };
    let envelope = sign_jws(&signer.key, &signer.chain, &target, chrono::Utc::now(), None);
    push_notation_signature(v.registry(), &other, JWS_MEDIA_TYPE, &envelope).await.unwrap();
    let reason = rejection(&signature(&v, &other, &notation(&ca, RELEASE_ID, Level::Strict)).await);
    assert!(reason.contains("the signature is for another artifact: targetArtifact digest"), "{reason}");

    // An unsigned image: nothing found, and where vouch looked.
    let unsigned = push_image(v.registry(), &host, "notation/app", "c").await;
    let reason = rejection(&signature(&v, &unsigned, &notation(&ca, RELEASE_ID, Level::Strict)).await);
    assert!(reason.contains("nothing found (looked in Notation signature referrers)"), "{reason}");
}

#[tokio::test]
async fn levels_decide_what_an_expired_signature_or_certificate_does() {
    let registry = DevRegistry::start().await.unwrap();
    let v = verifier(&registry.host());
    let host = registry.host();
    let ca = NotationCa::new("vouch test notation root").unwrap();

    // The signature's own expiry has passed.
    let expired_sig = push_image(v.registry(), &host, "notation/app", "expired-sig").await;
    let signer = ca.issue_current(RELEASE).unwrap();
    let past = chrono::Utc::now() - chrono::Duration::hours(1);
    sign_and_push(v.registry(), &expired_sig, &signer, Some(past)).await.unwrap();
    let reason = rejection(&signature(&v, &expired_sig, &notation(&ca, RELEASE_ID, Level::Strict)).await);
    assert!(reason.contains("expiry: the signature expired at"), "{reason}");
    let facts =
        signature(&v, &expired_sig, &notation(&ca, RELEASE_ID, Level::Permissive)).await.outcome.unwrap();
    let expiry = facts.signatures[0].checks.iter().find(|c| c.check == Check::Expiry).unwrap();
    assert_eq!(expiry.result, CheckResult::FailedLogged);

    // The signing certificate expired (no timestamp): strict refuses, permissive records it.
    let expired_cert = push_image(v.registry(), &host, "notation/app", "expired-cert").await;
    let now = std::time::SystemTime::now();
    let day = std::time::Duration::from_secs(86_400);
    let old = ca.issue(RELEASE, now - 10 * day, now - day).unwrap();
    sign_and_push(v.registry(), &expired_cert, &old, None).await.unwrap();
    let reason = rejection(&signature(&v, &expired_cert, &notation(&ca, RELEASE_ID, Level::Strict)).await);
    assert!(reason.contains("authentic timestamp:") && reason.contains("is not valid at"), "{reason}");
    assert!(signature(&v, &expired_cert, &notation(&ca, RELEASE_ID, Level::Permissive)).await.is_verified());

    // Audit records even an untrusted signer; skip verifies nothing and claims no signer.
    let other_ca = NotationCa::new("another root").unwrap();
    let audit = signature(&v, &expired_cert, &notation(&other_ca, RELEASE_ID, Level::Audit)).await;
    let facts = audit.outcome.unwrap();
    let authenticity = facts.signatures[0].checks.iter().find(|c| c.check == Check::Authenticity).unwrap();
    assert_eq!(authenticity.result, CheckResult::FailedLogged);
    let skipped = signature(&v, &expired_cert, &notation(&other_ca, RELEASE_ID, Level::Skip)).await;
    assert!(skipped.outcome.unwrap().signatures.is_empty());
}

#[tokio::test]
async fn a_notation_authority_satisfies_signatures_only() {
    let registry = DevRegistry::start().await.unwrap();
    let v = verifier(&registry.host());
    let image = push_image(v.registry(), &registry.host(), "notation/app", "att").await;
    let ca = NotationCa::new("vouch test notation root").unwrap();
    sign_and_push(v.registry(), &image, &ca.issue_current(RELEASE).unwrap(), None).await.unwrap();
    let provenance = Requirement::Attestation { predicate_type: "https://slsa.dev/provenance/v1".into() };
    let verdict = v.verify(&image, &notation(&ca, RELEASE_ID, Level::Strict), &provenance).await.unwrap();
    let reason = rejection(&verdict);
    assert!(reason.contains("a Notation authority vouches for image signatures only"), "{reason}");
}

/// A policy over `host/notation/**` whose only authority is a Notation trust store with `identity`.
fn notation_policy(host: &str, ca: &NotationCa, identity: &str) -> String {
    format!(
        r#"apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata: {{name: notary-signed}}
spec:
  images: ["{host}/notation/**"]
  authorities:
    - name: release
      notation:
        trustStore:
          pem: |
{}        trustedIdentities: ["{identity}"]
  requirements: {{signature: true}}
"#,
        vouch_tests::fixture::indent(&ca.trust_store_pem(), 12)
    )
}

#[tokio::test]
async fn the_engine_admits_a_notation_signed_pod_and_denies_a_wrong_identity_by_name() {
    use vouch_policies::{Engine, EngineConfig, PolicySet};
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let v = verifier(&host);
    let image = push_image(v.registry(), &host, "notation/web", "1.0").await;
    let ca = NotationCa::new("vouch test notation root").unwrap();
    sign_and_push(v.registry(), &image, &ca.issue_current(RELEASE).unwrap(), None).await.unwrap();
    let by_tag = vouch_tests::fixture::tag_of(&image);
    let pod = vouch_tests::fixture::pod_input("default", "web", &[("app", &by_tag)]);

    let set = PolicySet::from_yaml_str(&notation_policy(&host, &ca, RELEASE_ID));
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let e = Engine::new(EngineConfig::default(), set, v.clone());
    let d = e.evaluate(&pod).await;
    assert!(d.allowed, "{:?}", d.message);
    let signer = d.findings[0].signer.clone().unwrap();
    assert!(signer.starts_with(&format!("{RELEASE} (certificate sha256:")), "{signer}");
    assert_eq!(d.pins[0].to, format!("{by_tag}@{}", image.digest().unwrap()));

    let nightly = "x509.subject: C=US, ST=WA, O=vouch-test, CN=nightly";
    let e = Engine::new(
        EngineConfig::default(),
        PolicySet::from_yaml_str(&notation_policy(&host, &ca, nightly)),
        v,
    );
    let d = e.evaluate(&pod).await;
    assert!(!d.allowed);
    let message = d.message.unwrap();
    assert!(
        message.contains("policy notary-signed: signature: no signature verifies against notation release (")
            && message.contains("is not a trusted identity"),
        "{message}"
    );
}

/// Proves: an offline bundle made while the engine verified a Notation-signed pod carries what Notation
/// verification reads (referrers, the signature manifest, the envelope): with the registry stopped, the
/// bundle alone admits the pod again under the same policy.
#[tokio::test]
async fn an_offline_bundle_carries_notation_signatures() {
    use vouch_attest::cache::CacheConfig;
    use vouch_attest::offline::{write_bundle, BundleSpec, CoveredArtifact, OfflineBundle, Recorder};
    use vouch_attest::registry::RegistryClient;
    use vouch_attest::trust_root::TrustRoot;
    use vouch_attest::verify::{VerifierConfig, VerifyOptions};
    use vouch_policies::{Engine, EngineConfig, PolicyResources, PolicySet, Secrets};

    let mut registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let pusher = registry.client().unwrap();
    let image = push_image(&pusher, &host, "notation/offline", "1.0").await;
    let ca = NotationCa::new("vouch test notation root").unwrap();
    sign_and_push(&pusher, &image, &ca.issue_current(RELEASE).unwrap(), None).await.unwrap();
    let policy = notation_policy(&host, &ca, RELEASE_ID);
    let pod = vouch_tests::fixture::pod_input("default", "web", &[("app", &image.to_string())]);
    let compile = |yaml: &str| {
        let mut resources = PolicyResources::default();
        resources.add_yaml_str(yaml, "notation.yaml");
        PolicySet::compile(resources, &Secrets::none())
    };

    let recorder = Recorder::new(16 << 20);
    let client = RegistryClient::recording(registry.registry_config(), recorder.clone()).unwrap();
    let config = VerifierConfig {
        registry: registry.registry_config(),
        trust_root: TrustRoot::public_good().unwrap(),
        cache: CacheConfig::default(),
        options: VerifyOptions::default(),
    };
    let online = ArtifactVerifier::with_registry_client(config, client.clone()).unwrap();
    let d = Engine::new(EngineConfig::default(), compile(&policy), online).evaluate(&pod).await;
    assert!(d.allowed, "{:?}", d.message);
    let m = client.fetch_manifest(&image).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("notation.bundle.tar");
    let created = chrono::Utc::now();
    let spec = BundleSpec {
        recording: recorder.snapshot().unwrap(),
        artifacts: vec![CoveredArtifact {
            reference: image.to_string(),
            digest: m.digest,
            media_type: m.media_type,
        }],
        policies: vec![("notation.yaml".into(), policy.clone())],
        policy_features: vec![vouch_attest::offline::policy_features::NOTATION_AUTHORITIES.into()],
        trusted_root_json: None,
        keys: Vec::new(),
        created,
        expires: created + chrono::Duration::days(1),
    };
    write_bundle(&spec, None, &bundle).unwrap();
    registry.stop();

    let offline = OfflineBundle::open(&bundle, None).unwrap();
    let verifier = offline.verifier(CacheConfig::default(), VerifyOptions::default()).unwrap();
    let engine =
        Engine::new(EngineConfig::default(), compile(&offline.policies_yaml()[0].1), verifier.clone());
    let d = engine.evaluate(&pod).await;
    assert!(d.allowed, "{:?}", d.message);
    assert!(d.findings[0].signer.as_deref().unwrap().starts_with(RELEASE), "{:?}", d.findings[0].signer);
    assert_eq!(verifier.registry_stats().http_requests, 0, "nothing left the process");
}
