//! Adversarial cases against the verification core: material an attacker who controls a registry, a
//! signature layer or a bundle could hand vouch. Each test names the false accept (or unbounded work) it
//! guards against. All but the two marked "(guard)" were seen to fail before their fix; the guards pin
//! behaviour that was already right.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use sha2::{Digest as _, Sha256};

use vouch_attest::cosign::{SignatureLayer, SIMPLE_SIGNING_MEDIA_TYPE};
use vouch_attest::digest::Digest;
use vouch_attest::dsse::{DsseError, DsseSignature, Envelope, IN_TOTO_PAYLOAD_TYPE};
use vouch_attest::keys::{pem_encode, SigningKey};
use vouch_attest::registry::Descriptor;
use vouch_attest::sigstore_verify::{
    Artifact, Bundle, CertificateIdentity, Matcher, VerificationPolicy, Verifier, VerifyError,
};
use vouch_attest::trust_root::{TransparencyLog, TrustRoot, Validity};

const ID: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const GH: &str = "https://token.actions.githubusercontent.com";

#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: missing material under CI must fail
fn testdata() -> Option<PathBuf> {
    vouch_attest::testdata::locate().unwrap()
}

fn case(name: &str) -> Option<PathBuf> {
    testdata().map(|d| d.join("sigstore-conformance/bundle-verify").join(name))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn keyless() -> VerificationPolicy {
    VerificationPolicy::keyless(vec![CertificateIdentity::exact(ID, GH)])
}

/// A bundle with one genuine entry listed twice must not meet a threshold of two logs.
#[test]
fn duplicated_tlog_entry_does_not_count_twice_toward_the_threshold() {
    let Some(dir) = case("happy-path-v0.3") else { return };
    let artifact = std::fs::read(dir.join("../a.txt")).unwrap();
    let mut bundle = Bundle::from_json(&std::fs::read(dir.join("bundle.sigstore.json")).unwrap()).unwrap();
    let entry = bundle.verification_material.tlog_entries[0].clone();
    bundle.verification_material.tlog_entries.push(entry);
    let verifier = Verifier::new(TrustRoot::public_good().unwrap());
    let mut policy = keyless();
    // One copy or two: a threshold of one is met either way.
    verifier.verify(&bundle, Artifact::Bytes(&artifact), &policy).unwrap();
    policy.tlog_threshold = 2;
    let err = verifier.verify(&bundle, Artifact::Bytes(&artifact), &policy).unwrap_err();
    assert!(matches!(err, VerifyError::TlogThreshold { verified: 1, required: 2 }), "{err}");
}

/// `^(?:` + pattern + `)$` is only anchored if the pattern is a regular expression on its own: an
/// unbalanced pattern such as `x)|(?:.*` would otherwise match any identity.
#[test]
fn identity_regex_cannot_escape_its_anchors() {
    for pattern in ["x)|(?:.*", "https://github\\.com/good/.*)|(.*"] {
        assert!(Matcher::regex(pattern).is_err(), "{pattern} was accepted");
    }
    let ok = Matcher::regex("https://github\\.com/(good|fine)/.*").unwrap();
    assert!(ok.matches("https://github.com/good/x"));
    assert!(!ok.matches("https://evil.example/https://github.com/good/x"));
}

/// An envelope is checked signature by signature; a flood of signatures must be refused up front, not
/// tried one by one (a model signature bundle may be 32 MiB: hundreds of thousands of signatures).
#[test]
fn dsse_signature_flood_is_refused_without_trying_each() {
    let key = SigningKey::generate();
    let mut env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{}", &key);
    let junk = DsseSignature { sig: b64(&SigningKey::generate().sign(b"other")), keyid: String::new() };
    env.signatures = vec![junk; 20_000];
    let start = Instant::now();
    let err = env.verify(&key.public_key()).unwrap_err();
    assert!(matches!(err, DsseError::TooManySignatures { count: 20_000, .. }), "{err}");
    assert!(start.elapsed().as_millis() < 500, "took {:?}", start.elapsed());
    // A handful of signatures, the valid one last, still verifies.
    let good = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{}", &key).signatures.remove(0);
    env.signatures = vec![env.signatures[0].clone(), env.signatures[0].clone(), good];
    assert_eq!(env.verify(&key.public_key()).unwrap(), b"{}");
}

/// A layer whose blob is not the content its descriptor names is a lying registry, not a signature.
#[test]
fn cosign_layer_blob_must_be_the_descriptors_content() {
    let blob = b"{\"critical\":{}}".to_vec();
    let descriptor = |digest: Digest, size: u64| Descriptor {
        media_type: SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
        digest,
        size,
        artifact_type: None,
        annotations: BTreeMap::new(),
        platform: None,
    };
    let other = Digest::sha256_of(b"another blob");
    let err = SignatureLayer::from_parts(descriptor(other, blob.len() as u64), blob.clone()).unwrap_err();
    assert!(err.to_string().contains("digest"), "{err}");
    let err = SignatureLayer::from_parts(descriptor(Digest::sha256_of(&blob), 3), blob.clone()).unwrap_err();
    assert!(err.to_string().contains("size"), "{err}");
    SignatureLayer::from_parts(descriptor(Digest::sha256_of(&blob), blob.len() as u64), blob).unwrap();
}

/// A Rekor v1 log controlled by the test: P-256 key, single-entry trees, checkpoints without SETs.
struct TestLog {
    key: SigningKey,
    spki: Vec<u8>,
}

impl TestLog {
    fn new() -> Self {
        let key = SigningKey::generate();
        let spki = key.public_key().to_spki_der();
        Self { key, spki }
    }

    fn log_id(&self) -> Vec<u8> {
        Sha256::digest(&self.spki).to_vec()
    }

    fn trust(&self, valid_for: Validity) -> TransparencyLog {
        TransparencyLog {
            base_url: "https://rekor.test.example".into(),
            log_id: self.log_id(),
            public_key: self.key.public_key(),
            public_key_der: self.spki.clone(),
            key_details: "PKIX_ECDSA_P256_SHA_256".into(),
            valid_for,
        }
    }

    /// A bundle `tlogEntries` item for `body` with an inclusion proof and a signed checkpoint, no SET.
    fn entry_without_set(&self, body: &[u8], integrated_time: i64) -> serde_json::Value {
        let mut leaf = Sha256::new();
        leaf.update([0u8]);
        leaf.update(body);
        let root = leaf.finalize().to_vec();
        let text = format!("rekor.test.example - 42\n1\n{}\n", b64(&root));
        let mut blob = Sha256::digest(&self.spki)[..4].to_vec();
        blob.extend(self.key.sign(text.as_bytes()));
        let note = format!("{text}\n\u{2014} rekor.test.example {}\n", b64(&blob));
        serde_json::json!({
            "logIndex": "7",
            "logId": {"keyId": b64(&self.log_id())},
            "kindVersion": {"kind": "hashedrekord", "version": "0.0.1"},
            "integratedTime": integrated_time.to_string(),
            "inclusionProof": {
                "logIndex": "0",
                "rootHash": b64(&root),
                "treeSize": "1",
                "hashes": [],
                "checkpoint": {"envelope": note}
            },
            "canonicalizedBody": b64(body)
        })
    }
}

/// A Rekor v1 entry proven only by a checkpoint says nothing signed about when it was logged: its log
/// key must be valid at the verified (RFC 3161) signing time, as for Rekor v2 entries.
#[test]
fn rekor_v1_entry_without_set_needs_its_log_key_valid_at_the_timestamp() {
    let Some(dir) = case("rekor2-timestamp-without-embedded-cert") else { return };
    let artifact = std::fs::read(dir.join("../a.txt")).unwrap();
    let bundle_json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("bundle.sigstore.json")).unwrap()).unwrap();
    let root_json = std::fs::read(dir.join("trusted_root.json")).unwrap();
    let original = Bundle::from_json(&serde_json::to_vec(&bundle_json).unwrap()).unwrap();
    let tsa_time: DateTime<Utc> = Verifier::new(TrustRoot::from_json(&root_json).unwrap())
        .verify(&original, Artifact::Bytes(&artifact), &keyless())
        .unwrap()
        .timestamps[0];

    // The same signature, certificate and artifact, recorded as hashedrekord 0.0.1 in the test log.
    let cert = base64::engine::general_purpose::STANDARD
        .decode(bundle_json["verificationMaterial"]["certificate"]["rawBytes"].as_str().unwrap())
        .unwrap();
    let signature = bundle_json["messageSignature"]["signature"].as_str().unwrap();
    let body = serde_json::to_vec(&serde_json::json!({
        "apiVersion": "0.0.1",
        "kind": "hashedrekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": Digest::sha256_of(&artifact).hex()}},
            "signature": {
                "content": signature,
                "publicKey": {"content": b64(pem_encode("CERTIFICATE", &cert).as_bytes())}
            }
        }
    }))
    .unwrap();
    let log = TestLog::new();
    let logged_at = tsa_time - Duration::days(2);
    let mut forged = bundle_json.clone();
    forged["verificationMaterial"]["tlogEntries"] =
        serde_json::json!([log.entry_without_set(&body, logged_at.timestamp())]);
    let bundle = Bundle::from_json(&serde_json::to_vec(&forged).unwrap()).unwrap();

    let verifier_with = |valid_for: Validity| {
        let mut root = TrustRoot::from_json(&root_json).unwrap();
        root.tlogs.push(log.trust(valid_for));
        Verifier::new(root)
    };
    // Control: with the log key valid throughout, the hand-made entry verifies.
    let open = verifier_with(Validity { start: Some(logged_at - Duration::days(1)), end: None });
    open.verify(&bundle, Artifact::Bytes(&artifact), &keyless()).unwrap();
    // The log key retired a day before the only verified time: the claimed integrated time (inside the
    // window, but signed by nobody) must not make the entry count.
    let retired = verifier_with(Validity {
        start: Some(logged_at - Duration::days(1)),
        end: Some(tsa_time - Duration::days(1)),
    });
    let err = retired.verify(&bundle, Artifact::Bytes(&artifact), &keyless()).unwrap_err();
    assert!(err.to_string().contains("outside the validity of the key"), "{err}");
}

fn attestation_layer(envelope: &Envelope) -> SignatureLayer {
    let blob = serde_json::to_vec(envelope).unwrap();
    let descriptor = Descriptor {
        media_type: vouch_attest::cosign::DSSE_MEDIA_TYPE.to_owned(),
        digest: Digest::sha256_of(&blob),
        size: blob.len() as u64,
        artifact_type: None,
        annotations: BTreeMap::new(),
        platform: None,
    };
    SignatureLayer::from_parts(descriptor, blob).unwrap()
}

fn statement(subjects: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "_type": vouch_attest::intoto::STATEMENT_V1,
        "subject": subjects,
        "predicateType": "https://example.com/predicate",
        "predicate": {}
    }))
    .unwrap()
}

/// (guard) An attestation covers the image only through a `sha256` subject digest equal to the image's; other
/// algorithms, other spellings and other subjects do not stand in for it. Also: the envelope must say it
/// carries an in-toto statement.
#[test]
fn attestation_binds_by_sha256_subject_and_in_toto_payload_type() {
    use vouch_attest::cosign::verify_attestation_layer;
    let key = SigningKey::generate();
    let image = Digest::sha256_of(b"image");
    let verifier = Verifier::new(TrustRoot::public_good().unwrap());
    let policy = VerificationPolicy::key(key.public_key()).without_tlog();
    let verify = |payload_type: &str, subjects: serde_json::Value| {
        let env = Envelope::sign(payload_type, &statement(subjects), &key);
        verify_attestation_layer(&attestation_layer(&env), &image, &verifier, &policy)
    };
    let other = Digest::sha256_of(b"other").hex().to_owned();
    // Two subjects, the second is the image: accepted (a statement may attest several artifacts).
    verify(
        IN_TOTO_PAYLOAD_TYPE,
        serde_json::json!([{"name": "a", "digest": {"sha256": other}}, {"name": "b", "digest": {"sha256": image.hex()}}]),
    )
    .unwrap();
    for subjects in [
        serde_json::json!([{"name": "a", "digest": {"SHA256": image.hex()}}]),
        serde_json::json!([{"name": "a", "digest": {"sha512": image.hex()}}]),
        serde_json::json!([{"name": "a", "digest": {"sha256": other, "sha512": image.hex()}}]),
    ] {
        let err = verify(IN_TOTO_PAYLOAD_TYPE, subjects.clone()).unwrap_err();
        assert!(err.to_string().contains("in-toto"), "{subjects}: {err}");
    }
    let err =
        verify("application/json", serde_json::json!([{"digest": {"sha256": image.hex()}}])).unwrap_err();
    assert!(err.to_string().contains("payload type"), "{err}");
}

/// (guard) A keyless cosign layer is never verified without its transparency log entry, whatever the policy says.
#[test]
fn keyless_cosign_layer_cannot_drop_the_tlog_requirement() {
    use vouch_attest::cosign::{layer_annotations, verify_signature_layer};
    let Some(dir) = case("happy-path-v0.3") else { return };
    let bundle = Bundle::from_json(&std::fs::read(dir.join("bundle.sigstore.json")).unwrap()).unwrap();
    let cert = bundle.verification_material.signer.leaf_certificate().unwrap().to_vec();
    let blob = b"{}".to_vec();
    let annotations = layer_annotations(b"sig", Some(&pem_encode("CERTIFICATE", &cert)), None, None);
    let descriptor = Descriptor {
        media_type: SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
        digest: Digest::sha256_of(&blob),
        size: blob.len() as u64,
        artifact_type: None,
        annotations,
        platform: None,
    };
    let layer = SignatureLayer::from_parts(descriptor, blob).unwrap();
    let mut policy = keyless();
    policy.require_tlog = false;
    let verifier = Verifier::new(TrustRoot::public_good().unwrap());
    let err = verify_signature_layer(&layer, &Digest::sha256_of(b"image"), &verifier, &policy).unwrap_err();
    assert!(err.to_string().contains("without transparency log"), "{err}");
}
