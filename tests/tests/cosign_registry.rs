//! cosign signatures, attestations, SBOMs and bundle referrers against a real `docker-registry` on
//! loopback, signed by vouch's own code AND by an independent hand-written cosign writer. Each failure
//! case asserts the reason, and the reasons are distinct.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use vouch_attest::cosign;
use vouch_attest::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use vouch_attest::intoto::{Predicate, CYCLONEDX_BOM, SLSA_PROVENANCE_V1, STATEMENT_V1};
use vouch_attest::registry::{RegistryClient, OCI_INDEX, OCI_MANIFEST};
use vouch_attest::sigstore_verify::{
    Authority, Bundle, BundleContent, CertificateIdentity, Signer as BundleSigner, VerificationMaterial,
};
use vouch_attest::verify::{ArtifactVerifier, Requirement, Signer, Source, Verdict};
use vouch_attest::{ArtifactRef, Digest, SigningKey};
use vouch_tests::fake_sigstore::{unix, FakeSigstore, San};
use vouch_tests::fixture::{ago, fake_sigstore_verifier, rejection, testdata};
use vouch_tests::handwritten_cosign as hw;
use vouch_webhooks::dev_registry::DevRegistry;

const ISSUER: &str = "https://issuer.vouch-test.invalid";
const IDENTITY: &str = "builder@vouch-test.invalid";

struct Env {
    registry: DevRegistry,
    sigstore: FakeSigstore,
    verifier: ArtifactVerifier,
}

impl Env {
    async fn start() -> Self {
        let registry = DevRegistry::start().await.unwrap();
        let sigstore = FakeSigstore::new().unwrap();
        let verifier = fake_sigstore_verifier(&registry.host(), &sigstore);
        Self { registry, sigstore, verifier }
    }

    fn client(&self) -> &RegistryClient {
        self.verifier.registry()
    }

    /// Push a small single-layer image to `repo:tag`; returns the reference pinned to its digest.
    async fn push_image(&self, repo: &str, seed: &str) -> ArtifactRef {
        let r: ArtifactRef = format!("{}/{repo}:{seed}", self.registry.host()).parse().unwrap();
        let (bytes, _) = image_manifest(self.client(), &r, seed).await;
        let d = self.client().push_manifest(&r, &bytes, OCI_MANIFEST).await.unwrap();
        r.with_digest(d)
    }

    async fn verify(&self, r: &ArtifactRef, authority: &Authority, req: &Requirement) -> Verdict {
        self.verifier.verify(r, authority, req).await.unwrap()
    }
}

/// An image manifest (config + one layer, both pushed) for `seed`; returns its bytes and digest.
async fn image_manifest(client: &RegistryClient, r: &ArtifactRef, seed: &str) -> (Vec<u8>, Digest) {
    let layer = format!("layer of {seed}").into_bytes();
    let layer_digest = client.push_blob(r, &layer).await.unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.to_string()]}
    }))
    .unwrap();
    let config_digest = client.push_blob(r, &config).await.unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest.to_string(), "size": layer.len()}]
    }))
    .unwrap();
    let d = Digest::sha256_of(&manifest);
    (manifest, d)
}

fn keyless(subject: &str, issuer: &str) -> Authority {
    Authority::Keyless { identities: vec![CertificateIdentity::exact(subject, issuer)] }
}

#[tokio::test]
async fn key_signatures_from_vouch_and_from_the_handwritten_writer_verify() {
    let env = Env::start().await;
    let by_vouch = env.push_image("app", "a").await;
    let by_hand = env.push_image("app", "b").await;
    let key = SigningKey::generate();
    cosign::sign_image_with_key(env.client(), &by_vouch, &key, BTreeMap::new()).await.unwrap();
    let p256_key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    hw::sign(env.client(), &by_hand, &by_hand.digest().unwrap().to_string(), &p256_key).await.unwrap();

    let authority = Authority::Key(key.public_key());
    let v = env.verify(&by_vouch, &authority, &Requirement::Signature).await;
    let facts = v.outcome.expect("vouch-signed image verifies");
    assert_eq!(facts.signatures.len(), 1);
    assert_eq!(facts.signatures[0].signer, Signer::Key { fingerprint: key.public_key().fingerprint() });
    assert!(matches!(&facts.signatures[0].source, Source::CosignTag { tag, .. } if tag.ends_with(".sig")));

    let hand_key = vouch_attest::PublicKey::from_pem(&hw::public_key_pem(&p256_key)).unwrap();
    let v = env.verify(&by_hand, &Authority::Key(hand_key), &Requirement::Signature).await;
    assert!(v.is_verified(), "hand-written cosign signature: {:?}", v.outcome);

    // A tag reference is resolved once and the digest is what is reported.
    let tagged: ArtifactRef = format!("{}/app:a", env.registry.host()).parse().unwrap();
    let v = env.verify(&tagged, &authority, &Requirement::Signature).await;
    assert_eq!(v.reference.digest(), by_vouch.digest());
    assert!(v.is_verified());
}

#[tokio::test]
async fn failures_have_distinct_clear_reasons() {
    let env = Env::start().await;
    let key = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let authority = Authority::Key(vouch_attest::PublicKey::from_pem(&hw::public_key_pem(&key)).unwrap());
    let repo: ArtifactRef = format!("{}/fail", env.registry.host()).parse().unwrap();
    let mut reasons = Vec::new();

    // Wrong key.
    let img = env.push_image("fail", "wrong-key").await;
    let other = p256::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    hw::sign(env.client(), &repo, &img.digest().unwrap().to_string(), &other).await.unwrap();
    let r = rejection(&env.verify(&img, &authority, &Requirement::Signature).await);
    assert!(r.contains("message signature does not verify"), "{r}");
    reasons.push(("wrong key", r));

    // A validly signed payload that names another digest.
    let img = env.push_image("fail", "other-digest").await;
    let elsewhere = format!("sha256:{}", hex::encode(Sha256::digest(b"some other manifest")));
    let p = hw::payload(&repo.repository_name(), &elsewhere);
    let layer = hw::Layer { signature_b64: hw::sign_b64(&key, &p), blob: p };
    hw::write_signature_manifest(env.client(), &repo, &img.digest().unwrap().to_string(), &[layer])
        .await
        .unwrap();
    let r = rejection(&env.verify(&img, &authority, &Requirement::Signature).await);
    assert!(r.contains(&format!("signed payload names image {elsewhere}")), "{r}");
    reasons.push(("payload names another digest", r));

    // A real signature of image A copied to image B's signature tag.
    let a = env.push_image("fail", "original").await;
    let b = env.push_image("fail", "copy-target").await;
    hw::sign(env.client(), &repo, &a.digest().unwrap().to_string(), &key).await.unwrap();
    assert!(env.verify(&a, &authority, &Requirement::Signature).await.is_verified());
    let a_sig = cosign::signature_tag(&a, "sig").unwrap();
    let fetched = env.client().fetch_manifest(&a_sig).await.unwrap();
    let b_sig = cosign::signature_tag(&b, "sig").unwrap();
    env.client().push_manifest(&b_sig, &fetched.bytes, &fetched.media_type).await.unwrap();
    let r = rejection(&env.verify(&b, &authority, &Requirement::Signature).await);
    assert!(
        r.contains(&format!(
            "signed payload names image {}, not the verified {}",
            a.digest().unwrap(),
            b.digest().unwrap()
        )),
        "{r}"
    );
    reasons.push(("signature copied to another image", r));

    // Unsigned.
    let img = env.push_image("fail", "unsigned").await;
    let r = rejection(&env.verify(&img, &authority, &Requirement::Signature).await);
    assert!(r.starts_with("nothing found (looked in sha256-"), "{r}");
    reasons.push(("unsigned", r));

    // Keyless failures (no SCT: `issue` leaves carry none, require_sct = false).
    let t = unix(ago(3000));
    let good_leaf = env.sigstore.issue(&San::Email(IDENTITY.into()), ISSUER, ago(3600), ago(2400)).unwrap();

    let img = env.push_image("fail", "wrong-identity").await;
    env.sigstore.sign_image(env.client(), &img, &good_leaf, Some(t)).await.unwrap();
    let r = rejection(
        &env.verify(&img, &keyless("someone-else@vouch-test.invalid", ISSUER), &Requirement::Signature).await,
    );
    assert!(r.contains("is not an accepted signer"), "{r}");
    reasons.push(("wrong identity", r));

    let r = rejection(
        &env.verify(&img, &keyless(IDENTITY, "https://other-issuer.invalid"), &Requirement::Signature).await,
    );
    assert!(r.contains("was issued by OIDC issuer"), "{r}");
    reasons.push(("wrong issuer", r));

    let img = env.push_image("fail", "expired").await;
    let expired = env.sigstore.issue(&San::Email(IDENTITY.into()), ISSUER, ago(7200), ago(6600)).unwrap();
    env.sigstore.sign_image(env.client(), &img, &expired, Some(t)).await.unwrap();
    let r = rejection(&env.verify(&img, &keyless(IDENTITY, ISSUER), &Requirement::Signature).await);
    assert!(r.contains("is not valid at"), "{r}");
    reasons.push(("expired certificate", r));

    let img = env.push_image("fail", "no-tlog").await;
    env.sigstore.sign_image(env.client(), &img, &good_leaf, None).await.unwrap();
    let r = rejection(&env.verify(&img, &keyless(IDENTITY, ISSUER), &Requirement::Signature).await);
    assert!(r.contains("no transparency log entry"), "{r}");
    reasons.push(("missing tlog entry", r));

    // Tampered payload: P signed and logged, P' stored (the identity edited after signing).
    let img = env.push_image("fail", "tampered").await;
    let signed = cosign::SimpleSigningPayload::for_artifact(&img, BTreeMap::new()).unwrap();
    let mut edited = signed.clone();
    edited.docker_reference = "evil.example/other".into();
    env.sigstore
        .push_signed(env.client(), &img, &signed.to_json(), &edited.to_json(), &good_leaf, Some(t))
        .await
        .unwrap();
    let r = rejection(&env.verify(&img, &keyless(IDENTITY, ISSUER), &Requirement::Signature).await);
    assert!(r.contains("recorded in the transparency log: changed after signing"), "{r}");
    reasons.push(("tampered payload", r));

    // Each failure is told apart by its reason: no case's marker appears in another case's reason.
    let markers = [
        "message signature does not verify".to_owned(),
        format!("signed payload names image {elsewhere}"),
        format!("signed payload names image {}, not the verified", a.digest().unwrap()),
        "nothing found (looked in".to_owned(),
        "is not an accepted signer".to_owned(),
        "was issued by OIDC issuer".to_owned(),
        "is not valid at".to_owned(),
        "no transparency log entry".to_owned(),
        "changed after signing".to_owned(),
    ];
    assert_eq!(markers.len(), reasons.len());
    for (i, (name, r)) in reasons.iter().enumerate() {
        eprintln!("{name}: {r}");
        assert!(r.contains(&markers[i]), "{name}: {r}");
        for (j, (other, other_reason)) in reasons.iter().enumerate() {
            if i != j {
                assert!(!other_reason.contains(&markers[i]), "{other} also says {:?}", markers[i]);
            }
        }
    }
}

#[tokio::test]
async fn keyless_signature_with_set_and_no_sct_verifies() {
    let env = Env::start().await;
    let img = env.push_image("keyless", "v1").await;
    let leaf = env
        .sigstore
        .issue(
            &San::Uri("https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main".into()),
            ISSUER,
            ago(3600),
            ago(3000),
        )
        .unwrap();
    let integrated = unix(ago(3300));
    env.sigstore.sign_image(env.client(), &img, &leaf, Some(integrated)).await.unwrap();
    let authority = Authority::Keyless {
        identities: vec![CertificateIdentity::new(
            vouch_attest::sigstore_verify::Matcher::regex("https://github.com/org/repo/.*").unwrap(),
            vouch_attest::sigstore_verify::Matcher::Exact(ISSUER.into()),
        )],
    };
    let v = env.verify(&img, &authority, &Requirement::Signature).await;
    let facts = v.outcome.expect("keyless signature verifies");
    let s = &facts.signatures[0];
    assert!(
        matches!(&s.signer, Signer::Certificate { subject, issuer } if subject.starts_with("https://github.com/org/repo/") && issuer == ISSUER)
    );
    assert!(s.rekor_log_index.is_some());
    assert_eq!(s.signing_time.map(|t| t.timestamp()), Some(integrated));
}

#[tokio::test]
async fn index_and_platform_signatures_are_each_checked_on_their_own() {
    let env = Env::start().await;
    let host = env.registry.host();
    let repo: ArtifactRef = format!("{host}/multi:latest").parse().unwrap();
    let (amd, amd_d) = image_manifest(env.client(), &repo, "amd64").await;
    let (arm, arm_d) = image_manifest(env.client(), &repo, "arm64").await;
    env.client().push_manifest(&repo.with_tag("amd64").unwrap(), &amd, OCI_MANIFEST).await.unwrap();
    env.client().push_manifest(&repo.with_tag("arm64").unwrap(), &arm, OCI_MANIFEST).await.unwrap();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd_d.to_string(), "size": amd.len(), "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": OCI_MANIFEST, "digest": arm_d.to_string(), "size": arm.len(), "platform": {"architecture": "arm64", "os": "linux"}}
        ]
    }))
    .unwrap();
    let index_d = env.client().push_manifest(&repo, &index, OCI_INDEX).await.unwrap();
    let key = SigningKey::generate();
    let authority = Authority::Key(key.public_key());
    let index_ref = repo.with_digest(index_d);

    // Only the amd64 platform is signed: the index itself is not verified by a platform's signature.
    cosign::sign_image_with_key(env.client(), &repo.with_digest(amd_d.clone()), &key, BTreeMap::new())
        .await
        .unwrap();
    assert!(!env.verify(&index_ref, &authority, &Requirement::Signature).await.is_verified());

    // Signing the index: the index digest verifies; each platform still needs its own signature.
    env.verifier.invalidate_cache();
    cosign::sign_image_with_key(env.client(), &index_ref, &key, BTreeMap::new()).await.unwrap();
    assert!(env.verify(&index_ref, &authority, &Requirement::Signature).await.is_verified());
    let per_platform =
        env.verifier.verify_platforms(&index_ref, &authority, &Requirement::Signature).await.unwrap();
    let summary: Vec<(String, bool)> = per_platform
        .iter()
        .map(|p| (p.platform.as_ref().unwrap().architecture.clone(), p.verdict.is_verified()))
        .collect();
    assert_eq!(summary, vec![("amd64".into(), true), ("arm64".into(), false)]);
    assert_eq!(per_platform[1].verdict.reference.digest(), Some(&arm_d));
    // An image manifest is not an index.
    assert!(env
        .verifier
        .verify_platforms(&repo.with_digest(amd_d), &authority, &Requirement::Signature)
        .await
        .is_err());
}

#[tokio::test]
async fn slsa_provenance_attestation_is_exposed_to_the_caller() {
    let env = Env::start().await;
    let img = env.push_image("attested", "v1").await;
    let key = SigningKey::generate();
    let statement = serde_json::json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": img.repository_name(), "digest": {"sha256": img.digest().unwrap().hex()}}],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {"buildType": "https://vouch-test.invalid/build/v1", "externalParameters": {}, "resolvedDependencies": []},
            "runDetails": {"builder": {"id": "https://vouch-test.invalid/builder"}}
        }
    });
    cosign::attest_with_key(env.client(), &img, &key, &statement).await.unwrap();
    let authority = Authority::Key(key.public_key());
    let req = Requirement::Attestation { predicate_type: SLSA_PROVENANCE_V1.into() };
    let facts = env.verify(&img, &authority, &req).await.outcome.expect("attestation verifies");
    assert_eq!(facts.attestations.len(), 1);
    match facts.attestations[0].predicate_kind() {
        Predicate::SlsaProvenanceV1(p) => {
            assert_eq!(p.builder_id, "https://vouch-test.invalid/builder")
        }
        other => panic!("expected SLSA provenance v1, got {other:?}"),
    }
    // Another predicate type is not satisfied by it, and says why.
    let req = Requirement::Attestation { predicate_type: "https://spdx.dev/Document".into() };
    let r = rejection(&env.verify(&img, &authority, &req).await);
    assert!(
        r.contains("predicate type \"https://slsa.dev/provenance/v1\", not \"https://spdx.dev/Document\""),
        "{r}"
    );
    // Another key does not verify it.
    let other = Authority::Key(SigningKey::generate().public_key());
    let req = Requirement::Attestation { predicate_type: SLSA_PROVENANCE_V1.into() };
    assert!(!env.verify(&img, &other, &req).await.is_verified());
}

#[tokio::test]
async fn sbom_is_found_as_attestation_as_sbom_tag_and_as_referrer() {
    let env = Env::start().await;
    // The test material is required (testdata() fails without it); a file missing from it fails too.
    let path = testdata().join("sbom/rust-rustdemo.cdx15.json");
    let sbom = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let key = SigningKey::generate();
    let authority = Authority::Key(key.public_key());

    let attested = env.push_image("sbom", "attested").await;
    let statement = serde_json::json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": "x", "digest": {"sha256": attested.digest().unwrap().hex()}}],
        "predicateType": CYCLONEDX_BOM,
        "predicate": serde_json::from_slice::<serde_json::Value>(&sbom).unwrap()
    });
    cosign::attest_with_key(env.client(), &attested, &key, &statement).await.unwrap();

    let tagged = env.push_image("sbom", "tagged").await;
    cosign::push_signature_layer(
        env.client(),
        &tagged,
        cosign::SBOM_SUFFIX,
        vouch_attest::sbom::CYCLONEDX_MEDIA_TYPE,
        &sbom,
        BTreeMap::new(),
    )
    .await
    .unwrap();

    let referred = env.push_image("sbom", "referred").await;
    cosign::push_sbom_referrer(env.client(), &referred, &sbom).await.unwrap();

    let unsbommed = env.push_image("sbom", "none").await;

    let mut seen = Vec::new();
    for img in [&attested, &tagged, &referred] {
        let facts = env.verify(img, &authority, &Requirement::Sbom).await.outcome.expect("sbom found");
        let s = facts.sbom.unwrap();
        assert_eq!(s.spec_version, "1.5");
        assert!(s.component_count > 0);
        seen.push(facts.sbom_source.unwrap());
    }
    assert!(seen[0].signer.is_some(), "the attested SBOM names its signer");
    assert!(matches!(&seen[1].source, Source::CosignTag { tag, .. } if tag.ends_with(".sbom")));
    assert!(matches!(&seen[2].source, Source::Referrer { .. }));
    let r = rejection(&env.verify(&unsbommed, &authority, &Requirement::Sbom).await);
    assert!(r.contains("nothing found") && r.contains("CycloneDX referrers"), "{r}");

    // attach_sbom writes both the tag and the referrer.
    let both = env.push_image("sbom", "both").await;
    cosign::attach_sbom(env.client(), &both, &sbom).await.unwrap();
    assert!(env.verify(&both, &authority, &Requirement::Sbom).await.is_verified());
}

#[tokio::test]
async fn cosign_v3_bundle_referrer_is_found_through_the_tag_schema_fallback() {
    let env = Env::start().await;
    let img = env.push_image("bundled", "v1").await;
    let key = SigningKey::generate();
    let statement = serde_json::json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": img.repository_name(), "digest": {"sha256": img.digest().unwrap().hex()}}],
        "predicateType": cosign::COSIGN_SIGN_PREDICATE_V1,
        "predicate": {}
    });
    let env_dsse = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &serde_json::to_vec(&statement).unwrap(), &key);
    let bundle = Bundle::new(
        vouch_attest::sigstore_verify::bundle::MEDIA_TYPE_V0_3.into(),
        VerificationMaterial {
            signer: BundleSigner::PublicKey { hint: String::new() },
            tlog_entries: vec![],
            timestamps: vec![],
        },
        BundleContent::Dsse(env_dsse),
    );
    let referrer = cosign::push_bundle_referrer(env.client(), &img, &bundle).await.unwrap();

    let authority = Authority::Key(key.public_key());
    let facts = env
        .verify(&img, &authority, &Requirement::Signature)
        .await
        .outcome
        .expect("bundle referrer verifies");
    assert!(matches!(facts.signatures[0].source, Source::Referrer { .. }));
    // Debian's registry has no referrers API: the referrers tag index was read.
    let stem = img.digest().unwrap().cosign_tag_stem();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        env.registry.count_requests("GET", &format!("/manifests/{stem}")) >= 1,
        "{}",
        env.registry.access_log()
    );

    // The same bundle does not verify another image, attached there the two ways an attacker who can push
    // would, and each rejection names the digest binding (never "nothing found").
    let img_digest = img.digest().unwrap();
    let referrers_tag = |r: &ArtifactRef| r.with_tag(&r.digest().unwrap().cosign_tag_stem()).unwrap();
    // 1. The first image's referrers tag index copied to the second's: it names the unchanged referrer
    //    manifest, whose subject is the first image.
    let copied_index = env.push_image("bundled", "v2").await;
    let index = env.client().fetch_manifest(&referrers_tag(&img)).await.unwrap();
    env.client().push_manifest(&referrers_tag(&copied_index), &index.bytes, &index.media_type).await.unwrap();
    let r = rejection(&env.verify(&copied_index, &authority, &Requirement::Signature).await);
    assert!(
        r.starts_with(&format!(
            "the only candidate failed: referrer {referrer}: unexpected referrer manifest: its subject is \
             {img_digest}, not this artifact"
        )),
        "{r}"
    );
    // 2. The bundle re-attached in a new referrer manifest whose subject is the second image: the manifest
    //    binds it there, the bundle's signed statement still names the first image.
    let reattached = env.push_image("bundled", "v3").await;
    let original = env.client().fetch_manifest(&img.with_digest(referrer.clone())).await.unwrap();
    let mut forged: serde_json::Value = serde_json::from_slice(&original.bytes).unwrap();
    let target = env.client().fetch_manifest(&reattached).await.unwrap();
    forged["subject"]["digest"] = reattached.digest().unwrap().to_string().into();
    forged["subject"]["size"] = target.bytes.len().into();
    let forged = serde_json::to_vec(&forged).unwrap();
    let forged_digest = env
        .client()
        .push_referrer(&reattached, &forged, OCI_MANIFEST, cosign::BUNDLE_ARTIFACT_TYPE)
        .await
        .unwrap();
    let r = rejection(&env.verify(&reattached, &authority, &Requirement::Signature).await);
    assert!(
        r.starts_with(&format!("the only candidate failed: referrer {forged_digest}: ")),
        "one candidate, the forged referrer: {r}"
    );
    assert!(
        r.contains(&format!(
            "in-toto statement does not cover {}; its subjects are: {:?} (sha256:{})",
            reattached.digest().unwrap(),
            img.repository_name(),
            img_digest.hex()
        )),
        "{r}"
    );
}

#[tokio::test]
async fn two_hundred_concurrent_identical_verifications_fetch_once() {
    let env = Env::start().await;
    let img = env.push_image("busy", "v1").await;
    let key = SigningKey::generate();
    cosign::sign_image_with_key(env.client(), &img, &key, BTreeMap::new()).await.unwrap();
    let authority = Authority::Key(key.public_key());

    let count = |r: &DevRegistry| r.count_requests("GET", "/v2/") + r.count_requests("HEAD", "/v2/");
    let settle = || tokio::time::sleep(Duration::from_millis(300));

    // One verification with a fresh verifier: the set of fetches one verification makes.
    settle().await;
    let before = count(&env.registry);
    let single = fake_sigstore_verifier(&env.registry.host(), &env.sigstore);
    assert!(single.verify(&img, &authority, &Requirement::Signature).await.unwrap().is_verified());
    settle().await;
    let one_set = count(&env.registry) - before;
    assert!(one_set >= 2, "a verification fetches the .sig manifest and its layer");

    // 200 concurrent identical calls on another fresh verifier: the same fetches, once.
    let busy = fake_sigstore_verifier(&env.registry.host(), &env.sigstore);
    let before = count(&env.registry);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (v, r, a) = (busy.clone(), img.clone(), authority.clone());
        tasks.push(tokio::spawn(async move { v.verify(&r, &a, &Requirement::Signature).await }));
    }
    for t in tasks {
        assert!(t.await.unwrap().unwrap().is_verified());
    }
    settle().await;
    assert_eq!(count(&env.registry) - before, one_set);
    let stats = busy.cache_stats();
    assert_eq!((stats.misses, stats.hits), (1, 199));
}

#[tokio::test]
async fn two_hundred_concurrent_verifications_by_tag_resolve_the_tag_once() {
    let env = Env::start().await;
    let img = env.push_image("busytag", "v1").await;
    let key = SigningKey::generate();
    cosign::sign_image_with_key(env.client(), &img, &key, BTreeMap::new()).await.unwrap();
    let authority = Authority::Key(key.public_key());
    let by_tag: ArtifactRef = img.with_tag("v1").unwrap();
    assert!(by_tag.digest().is_none());

    let resolutions = |r: &DevRegistry| {
        r.count_requests("HEAD", "/manifests/v1") + r.count_requests("GET", "/manifests/v1")
    };
    let settle = || tokio::time::sleep(Duration::from_millis(300));
    settle().await;
    let before = resolutions(&env.registry);
    let busy = fake_sigstore_verifier(&env.registry.host(), &env.sigstore);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (v, r, a) = (busy.clone(), by_tag.clone(), authority.clone());
        tasks.push(tokio::spawn(async move { v.verify(&r, &a, &Requirement::Signature).await }));
    }
    for t in tasks {
        let verdict = t.await.unwrap().unwrap();
        assert!(verdict.is_verified());
        assert_eq!(verdict.reference.digest(), img.digest(), "the tag's digest is what was verified");
    }
    settle().await;
    assert_eq!(resolutions(&env.registry) - before, 1, "{}", env.registry.access_log());
}
