//! Who must have signed what, against a real `docker-registry` on loopback with keys of our own test
//! signer: per-requirement authorities (the right key of the wrong authority is refused), thresholds
//! (`minAuthorities`, distinct signers, the denial naming who signed and who did not), signed annotations
//! (in the signed payload, never the manifest's own), `excludeImages` and `requireDigest`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use vouch_attest::cosign;
use vouch_attest::intoto::{SLSA_PROVENANCE_V1, STATEMENT_V1};
use vouch_attest::registry::{RegistryClient, OCI_MANIFEST};
use vouch_attest::verify::ArtifactVerifier;
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_policies::{Decision, Engine, EngineConfig, FindingResult, NoMatchAction, PolicySet};
use vouch_tests::fixture::{indent, pod_input, push_image, tag_of, verifier};
use vouch_webhooks::dev_registry::DevRegistry;

/// Three approvers' keys and a registry.
struct World {
    registry: DevRegistry,
    verifier: ArtifactVerifier,
    keys: BTreeMap<&'static str, SigningKey>,
}

async fn world() -> World {
    let registry = DevRegistry::start().await.unwrap();
    let verifier = verifier(&registry.host());
    let keys = ["alice", "bob", "carol"].into_iter().map(|n| (n, SigningKey::generate())).collect();
    World { registry, verifier, keys }
}

impl World {
    fn client(&self) -> &RegistryClient {
        self.verifier.registry()
    }

    /// A fresh image `acme/<repo>:1` signed by the named keys (with signed `annotations` each).
    async fn image(&self, repo: &str, signers: &[&str], annotations: &[(&str, &str)]) -> ArtifactRef {
        let img = push_image(self.client(), &self.registry.host(), &format!("acme/{repo}"), "1").await;
        let annotations: BTreeMap<String, serde_json::Value> =
            annotations.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        for s in signers {
            cosign::sign_image_with_key(self.client(), &img, &self.keys[s], annotations.clone())
                .await
                .unwrap();
        }
        img
    }

    /// A policy over `HOST/acme/**` whose authorities are the named keys (each authority named like its
    /// key; `alice-again` holds alice's key too), with `extra` spec lines after the requirements.
    fn policy(&self, name: &str, authorities: &[&str], requirements: &str, extra: &str) -> String {
        let mut auths = String::new();
        for a in authorities {
            let key = if *a == "alice-again" { &self.keys["alice"] } else { &self.keys[a] };
            auths.push_str(&format!(
                "    - name: {a}\n      key:\n        requireTlog: false\n        pem: |\n{}",
                indent(&key.public_key().to_pem(), 10)
            ));
        }
        format!(
            "---\napiVersion: vouch.dev/v1alpha1\nkind: ClusterSupplyChainPolicy\nmetadata:\n  name: {name}\nspec:\n  \
             images: [\"{}/acme/**\"]\n  authorities:\n{auths}  requirements:\n{}{}",
            self.registry.host(),
            indent(requirements, 4),
            indent(extra, 2),
        )
    }

    fn engine(&self, yaml: &str, no_match: NoMatchAction) -> Engine {
        engine(yaml, no_match, self.verifier.clone())
    }
}

fn engine(yaml: &str, no_match: NoMatchAction, verifier: ArtifactVerifier) -> Engine {
    let set = PolicySet::from_yaml_str(yaml);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let config = EngineConfig { budget: Duration::from_secs(10), no_match, ..EngineConfig::default() };
    Engine::new(config, set, verifier)
}

async fn decide(e: &Engine, image: &str) -> Decision {
    e.evaluate(&pod_input("default", "web", &[("app", image)])).await
}

fn denial(d: &Decision) -> String {
    assert!(!d.allowed, "expected a denial: {d:?}");
    d.message.clone().unwrap()
}

#[tokio::test]
async fn only_the_authorities_a_requirement_names_may_satisfy_it() {
    let w = world().await;
    let requirements = "signature: {authorities: [alice]}\nattestations:\n  - predicateType: https://slsa.dev/provenance/v1\n    authorities: [bob]\n";
    let e = w.engine(&w.policy("release", &["alice", "bob"], requirements, ""), NoMatchAction::Allow);

    // bob's key is an authority of the policy, but not one the signature requirement names.
    let by_bob = w.image("by-bob", &["bob"], &[]).await;
    attest(w.client(), &by_bob, &w.keys["bob"]).await;
    let m = denial(&decide(&e, &tag_of(&by_bob)).await);
    assert!(m.contains(": policy release: signature: no signature verifies against key alice ("), "{m}");
    assert!(!m.contains("key bob"), "bob is not asked for the signature: {m}");
    assert!(!m.contains("attestation"), "bob's provenance satisfies the attestation requirement: {m}");

    // The other way round: alice signed and attested; her provenance does not count, bob's is asked for.
    let by_alice = w.image("by-alice", &["alice"], &[]).await;
    attest(w.client(), &by_alice, &w.keys["alice"]).await;
    let m = denial(&decide(&e, &tag_of(&by_alice)).await);
    assert!(
        m.contains(": policy release: attestation https://slsa.dev/provenance/v1: no https://slsa.dev/provenance/v1 attestation verifies against key bob ("),
        "{m}"
    );
    assert!(
        !m.contains("policy release: signature:"),
        "alice's signature satisfies the signature requirement: {m}"
    );

    // Each signed by its own authority: allowed.
    let both = w.image("both", &["alice"], &[]).await;
    attest(w.client(), &both, &w.keys["bob"]).await;
    let d = decide(&e, &tag_of(&both)).await;
    assert!(d.allowed, "{:?}", d.message);
    let sig = d.findings.iter().find(|f| f.requirement == "signature").unwrap();
    assert_eq!(sig.reason, "verified against key alice");
}

async fn attest(client: &RegistryClient, img: &ArtifactRef, key: &SigningKey) {
    let statement = json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": img.repository_name(), "digest": {"sha256": img.digest().unwrap().hex()}}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {"buildDefinition": {"buildType": "https://vouch-test.invalid/build/v1"},
                      "runDetails": {"builder": {"id": "https://vouch-test.invalid/builder"}}}
    });
    cosign::attest_with_key(client, img, key, &statement).await.unwrap();
}

#[tokio::test]
async fn two_of_three_approvers_and_the_denial_names_who_signed_and_who_did_not() {
    let w = world().await;
    let yaml = w.policy("two-approvers", &["alice", "bob", "carol"], "signature: {minAuthorities: 2}", "");
    let e = w.engine(&yaml, NoMatchAction::Allow);

    let one = w.image("one", &["alice"], &[]).await;
    let m = denial(&decide(&e, &tag_of(&one)).await);
    let expected = format!(
        "Pod default/web: container app: image {}@{} : policy two-approvers: signature: 2 of 3 authorities must each have signed, 1 did: verified: key alice; not verified: no signature verifies against key bob (",
        tag_of(&one),
        one.digest().unwrap()
    );
    assert!(m.starts_with(&expected), "{m}\nexpected prefix: {expected}");
    assert!(m.contains("), no signature verifies against key carol ("), "{m}");

    let two = w.image("two", &["alice", "carol"], &[]).await;
    let d = decide(&e, &tag_of(&two)).await;
    assert!(d.allowed, "{:?}", d.message);
    let f = &d.findings[0];
    assert_eq!(f.result, FindingResult::Pass);
    assert_eq!(f.reason, "verified against key alice, key carol (2 of 3 authorities required)");
    let signers = format!(
        "key {}, key {}",
        w.keys["alice"].public_key().fingerprint(),
        w.keys["carol"].public_key().fingerprint()
    );
    assert_eq!(f.signer.as_deref(), Some(signers.as_str()));
    assert_eq!(d.pins.len(), 1, "a threshold met pins like any pass");
}

#[tokio::test]
async fn one_key_behind_two_authorities_counts_once() {
    let w = world().await;
    let yaml = w.policy("distinct", &["alice", "alice-again", "bob"], "signature: {minAuthorities: 2}", "");
    let e = w.engine(&yaml, NoMatchAction::Allow);
    let img = w.image("alias", &["alice"], &[]).await;
    let m = denial(&decide(&e, &tag_of(&img)).await);
    assert!(
        m.contains("2 of 3 authorities must each have signed, 1 did: verified: key alice; not verified: "),
        "{m}"
    );
    assert!(m.contains("key alice-again: its signer (key "), "{m}");
    assert!(m.contains(") already counts for another authority"), "{m}");
}

#[tokio::test]
async fn signed_annotations_must_be_in_the_signed_payload() {
    let w = world().await;
    let requirements = "signature:\n  annotations: {team: payments, build: \"^ci-[0-9]+$\"}\n";
    let e = w.engine(&w.policy("annotated", &["alice"], requirements, ""), NoMatchAction::Allow);

    let good = w.image("good", &["alice"], &[("team", "payments"), ("build", "ci-1234")]).await;
    let d = decide(&e, &tag_of(&good)).await;
    assert!(d.allowed, "{:?}", d.message);

    // The regular expression must match the whole value.
    let bad_build = w.image("bad-build", &["alice"], &[("team", "payments"), ("build", "ci-12x")]).await;
    let m = denial(&decide(&e, &tag_of(&bad_build)).await);
    assert!(
        m.ends_with(
            r#": policy annotated: signature: key alice: no verified signature carries the signed annotations build=/^ci-[0-9]+$/, team="payments" (signed annotations found: {"build":"ci-12x","team":"payments"})"#
        ),
        "{m}"
    );

    // The same keys and values as the manifest's own (unsigned) annotations do not count.
    let unsigned_annotations = push_annotated_image(w.client(), &w.registry.host()).await;
    cosign::sign_image_with_key(w.client(), &unsigned_annotations, &w.keys["alice"], BTreeMap::new())
        .await
        .unwrap();
    let m = denial(&decide(&e, &tag_of(&unsigned_annotations)).await);
    assert!(m.ends_with("(signed annotations found: {})"), "{m}");

    // A second signature by the same key that carries them is enough.
    cosign::sign_image_with_key(
        w.client(),
        &unsigned_annotations,
        &w.keys["alice"],
        BTreeMap::from([("team".into(), json!("payments")), ("build".into(), json!("ci-7"))]),
    )
    .await
    .unwrap();
    // (A fresh verifier: the cached verdict predates the second signature.)
    let yaml = w.policy("annotated", &["alice"], requirements, "");
    let fresh = engine(&yaml, NoMatchAction::Allow, verifier(&w.registry.host()));
    assert!(decide(&fresh, &tag_of(&unsigned_annotations)).await.allowed);
}

/// An image whose manifest carries `team: payments` and `build: ci-1` as (unsigned) annotations.
async fn push_annotated_image(client: &RegistryClient, host: &str) -> ArtifactRef {
    let r: ArtifactRef = format!("{host}/acme/manifest-annotated:1").parse().unwrap();
    let layer = b"layer of manifest-annotated".to_vec();
    let layer_digest = client.push_blob(&r, &layer).await.unwrap();
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let config_digest = client.push_blob(&r, &config).await.unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest.to_string(), "size": layer.len()}],
        "annotations": {"team": "payments", "build": "ci-1"}
    }))
    .unwrap();
    let d = client.push_manifest(&r, &manifest, OCI_MANIFEST).await.unwrap();
    r.with_digest(d)
}

#[tokio::test]
async fn excluded_images_are_not_covered_by_that_policy_but_other_policies_still_apply() {
    let w = world().await;
    let host = w.registry.host();
    let sidecar = w.image("vendor/sidecar", &[], &[]).await;
    let exclude = format!("excludeImages: [\"{host}/acme/vendor/**\"]");
    let yaml = w.policy("acme", &["alice"], "signature: true", &exclude);

    // Excluded and no other policy: the no-match action decides.
    let allow = w.engine(&yaml, NoMatchAction::Allow);
    let d = decide(&allow, &tag_of(&sidecar)).await;
    assert!(d.allowed && d.findings.is_empty(), "{d:?}");
    let deny = w.engine(&yaml, NoMatchAction::Deny);
    let m = denial(&decide(&deny, &tag_of(&sidecar)).await);
    assert!(m.ends_with(&format!("image {} : policy: no policy covers this image", tag_of(&sidecar))), "{m}");
    // What is not excluded is still covered.
    let app = w.image("app", &[], &[]).await;
    assert!(denial(&decide(&allow, &tag_of(&app)).await).contains(": policy acme: signature: "));

    // Another policy naming the image still applies.
    let vendor = w.policy("vendor", &["bob"], "signature: true", "").replace("/acme/**", "/acme/vendor/**");
    let e = w.engine(&(yaml + &vendor), NoMatchAction::Allow);
    let m = denial(&decide(&e, &tag_of(&sidecar)).await);
    assert!(m.contains(": policy vendor: signature: no signature verifies against key bob ("), "{m}");
    assert!(!m.contains("policy acme"), "{m}");
}

#[tokio::test]
async fn require_digest_denies_references_by_tag_whatever_the_signatures() {
    let w = world().await;
    let img = w.image("pinned", &["alice"], &[]).await;
    let yaml =
        w.policy("digests", &["alice"], "signature: true", "requireDigest: true\nfailurePolicy: Ignore");
    let e = w.engine(&yaml, NoMatchAction::Allow);

    let tag = tag_of(&img);
    let m = denial(&decide(&e, &tag).await);
    assert_eq!(
        m,
        format!(
            "Pod default/web: container app: image {tag} : policy digests: digest: the reference names a tag, not a digest; policy digests requires references by digest (name@sha256:...)"
        )
    );
    let by_digest = format!("{tag}@{}", img.digest().unwrap());
    let d = decide(&e, &by_digest).await;
    assert!(d.allowed, "{:?}", d.message);
    assert_eq!(d.findings[0].requirement, "digest");
    assert_eq!(d.findings[0].result, FindingResult::Pass);

    // Only a digest asked for: the policy covers the image all the same.
    let only = w.policy("only-digests", &["alice"], "{}", "requireDigest: true");
    let e = w.engine(&only, NoMatchAction::Deny);
    assert!(
        denial(&decide(&e, &tag).await).contains(": policy only-digests: digest: the reference names a tag")
    );
    assert!(decide(&e, &by_digest).await.allowed);
}

/// A cosign v3 image signature (a Sigstore bundle referrer) signed by `key`, whose statement's subject
/// carries `annotations` (where cosign v3 puts `sign -a key=value`).
async fn push_v3_signature(
    client: &RegistryClient,
    img: &ArtifactRef,
    key: &SigningKey,
    annotations: serde_json::Value,
) {
    use vouch_attest::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
    use vouch_attest::sigstore_verify::{
        Bundle, BundleContent, Signer as BundleSigner, VerificationMaterial,
    };
    let statement = json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": img.repository_name(), "digest": {"sha256": img.digest().unwrap().hex()},
                     "annotations": annotations}],
        "predicateType": cosign::COSIGN_SIGN_PREDICATE_V1,
        "predicate": {}
    });
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &serde_json::to_vec(&statement).unwrap(), key);
    let bundle = Bundle::new(
        vouch_attest::sigstore_verify::bundle::MEDIA_TYPE_V0_3.into(),
        VerificationMaterial {
            signer: BundleSigner::PublicKey { hint: String::new() },
            tlog_entries: vec![],
            timestamps: vec![],
        },
        BundleContent::Dsse(envelope),
    );
    cosign::push_bundle_referrer(client, img, &bundle).await.unwrap();
}

#[tokio::test]
async fn signed_annotations_of_a_cosign_v3_bundle_signature_count_too() {
    let w = world().await;
    let requirements = "signature: {annotations: {team: payments}}";
    let e = w.engine(&w.policy("annotated", &["alice"], requirements, ""), NoMatchAction::Allow);
    let host = w.registry.host();

    let good = push_image(w.client(), &host, "acme/v3-good", "1").await;
    push_v3_signature(w.client(), &good, &w.keys["alice"], json!({"team": "payments"})).await;
    let d = decide(&e, &tag_of(&good)).await;
    assert!(d.allowed, "{:?}", d.message);

    let other = push_image(w.client(), &host, "acme/v3-other", "1").await;
    push_v3_signature(w.client(), &other, &w.keys["alice"], json!({"team": "web"})).await;
    let m = denial(&decide(&e, &tag_of(&other)).await);
    assert!(m.ends_with(r#"(signed annotations found: {"team":"web"})"#), "{m}");
}

#[tokio::test]
async fn policies_asking_different_annotations_share_verdicts_but_not_answers() {
    let w = world().await;
    let img = w.image("shared", &["alice"], &[("team", "payments")]).await;
    // One verifier (one verdict cache) under both engines; each asked twice, in both orders.
    let payments = w.engine(
        &w.policy("payments", &["alice"], "signature: {annotations: {team: payments}}", ""),
        NoMatchAction::Allow,
    );
    let web = w.engine(
        &w.policy("web", &["alice"], "signature: {annotations: {team: web}}", ""),
        NoMatchAction::Allow,
    );
    for _ in 0..2 {
        assert!(decide(&payments, &tag_of(&img)).await.allowed);
        assert!(denial(&decide(&web, &tag_of(&img)).await)
            .contains("policy web: signature: key alice: no verified signature carries"));
    }
    let stats = w.verifier.cache_stats();
    assert_eq!(stats.misses, 1, "one verification, then the cached verdict for every policy: {stats:?}");
}
