//! Tests on real entries from the Sigstore conformance suite, and on tampered copies of them.

use super::*;
use crate::dsse::Envelope;
use crate::keys::PublicKey;
use crate::sigstore_verify::testutil::{conformance, Conformance};

/// What one conformance case gives the tlog step.
struct Case {
    entry: TlogEntry,
    signature: Option<Vec<u8>>,
    dsse: Option<Envelope>,
    material: Vec<u8>,
    digest: Digest,
    root: TrustRoot,
    require_proof: bool,
}

impl Case {
    /// Case `name` of the suite; a missing case or file fails the test.
    fn load(suite: &Conformance, name: &str) -> Self {
        let dir = suite.case(name);
        let bundle: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("bundle.sigstore.json")).unwrap()).unwrap();
        let vm = &bundle["verificationMaterial"];
        let entry: TlogEntry = serde_json::from_value(vm["tlogEntries"][0].clone()).unwrap();
        let b64 = |v: &serde_json::Value| entry::b64_decode(v.as_str().unwrap()).unwrap();
        let material = if let Some(c) = vm.get("certificate") {
            b64(&c["rawBytes"])
        } else if let Some(chain) = vm.get("x509CertificateChain") {
            b64(&chain["certificates"][0]["rawBytes"])
        } else {
            let pem = std::fs::read_to_string(dir.join("key.pub"))
                .unwrap_or_else(|e| panic!("{name}: no certificate in the bundle and no key.pub: {e}"));
            PublicKey::from_pem(&pem).unwrap().to_spki_der()
        };
        let artifact =
            if dir.join("artifact").exists() { dir.join("artifact") } else { suite.dir().join("a.txt") };
        let root = match std::fs::read(dir.join("trusted_root.json")) {
            Ok(bytes) => {
                // Only the tlogs matter here; CT log keys some roots hold (PKCS#1 RSA) are not our concern.
                let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                json["ctlogs"] = serde_json::json!([]);
                TrustRoot::from_json(&serde_json::to_vec(&json).unwrap()).unwrap()
            }
            Err(_) => TrustRoot::public_good().unwrap(),
        };
        Self {
            entry,
            signature: bundle.get("messageSignature").map(|m| b64(&m["signature"])),
            dsse: bundle.get("dsseEnvelope").map(|e| serde_json::from_value(e.clone()).unwrap()),
            material,
            digest: Digest::sha256_of(&std::fs::read(artifact).unwrap()),
            root,
            require_proof: !bundle["mediaType"].as_str().unwrap().contains("version=0.1"),
        }
    }

    fn expected(&self) -> ExpectedContent<'_> {
        ExpectedContent {
            signature: self.signature.as_deref(),
            artifact_digest: Some(&self.digest),
            dsse: self.dsse.as_ref(),
            verification_material: &self.material,
        }
    }

    fn verify(&self) -> Result<VerifiedTlogEntry, TlogError> {
        self.verify_entry(&self.entry)
    }

    fn verify_entry(&self, entry: &TlogEntry) -> Result<VerifiedTlogEntry, TlogError> {
        verify_entry(entry, &self.expected(), &self.root, self.require_proof)
    }
}

/// Conformance cases whose transparency-log entry is sound (they pass, or fail for another reason).
const SOUND: &[&str] = &[
    "happy-path-v0.1",
    "happy-path-v0.3",
    "bundle-with-root-cert_fail",
    "integrated-time-in-future_fail",
    "intoto-set-outside-signing-cert-validity_fail",
    "intoto-with-custom-trust-root",
    "invalid-ct-key_fail",
    "managed-key-and-trusted-root",
    "message-digest-mismatch_fail",
    "rekor2-checkpoint-multiple-cosigs",
    "rekor2-checkpoint-origin-not-first",
    "rekor2-checkpoint-two-sigs-from-origin",
    "rekor2-timestamp-outside-trust-root-tsa-validity_fail",
    "rekor2-timestamp-payload-mismatch_fail",
    "rekor2-timestamp-untrusted-tsa-without-embedded-cert_fail",
    "rekor2-timestamp-with-expired-cert-chain",
    "rekor2-timestamp-without-embedded-cert",
    "trust-root-tlog-validity-end-inclusive",
];

#[test]
fn sound_conformance_entries_verify() {
    let Some(suite) = conformance() else { return };
    for name in SOUND {
        let case = Case::load(&suite, name);
        let v = case.verify().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.log_index, case.entry.log_index, "{name}");
        assert_eq!(v.rekor_v2, name.starts_with("rekor2-"), "{name}");
        // Rekor v1 entries with a SET give a signed integrated time; Rekor v2 entries give none.
        assert_eq!(v.integrated_time.is_some(), !v.rekor_v2, "{name}");
    }
}

#[test]
fn integrated_time_comes_from_the_set() {
    let Some(suite) = conformance() else { return };
    let case = Case::load(&suite, "happy-path-v0.1");
    let v = case.verify().unwrap();
    assert_eq!(v.integrated_time.unwrap().timestamp(), 1689177396);
    assert_eq!(v.log_id, case.entry.log_id);
    assert_eq!(hex::encode(&v.log_id[..4]), "c0d23d6a");
}

/// Conformance failure cases the tlog step itself must reject, with the reason it must give.
#[test]
fn failing_conformance_entries_are_rejected_for_the_right_reason() {
    type IsExpected = fn(&TlogError) -> bool;
    let cases: &[(&str, IsExpected)] = &[
        ("checkpoint-bad-keyhint_fail", |e| matches!(e, TlogError::CheckpointNotSignedByLog { .. })),
        ("inclusion-proof-corrupted-hash_fail", |e| matches!(e, TlogError::BadInclusionProof(_))),
        ("intoto-log-entry-mismatch_fail", |e| {
            matches!(e, TlogError::BodyMismatch(_) | TlogError::MalformedBody(_))
        }),
        ("rekor2-checkpoint-missing-log-signature_fail", |e| {
            matches!(e, TlogError::CheckpointNotSignedByLog { .. })
        }),
        ("rekor2-checkpoint-missing-root-hash_fail", |e| matches!(e, TlogError::MalformedCheckpoint(_))),
        ("rekor2-dsse-mismatch-sig_fail", |e| matches!(e, TlogError::BodyMismatch("signature"))),
        ("rekor2-no-inclusion-proof_fail", |e| matches!(e, TlogError::MissingInclusionProof)),
        ("wrong-hashedrekord-entry_fail", |e| matches!(e, TlogError::BodyMismatch(_))),
        // Its entry records another signature, over another artifact.
        ("wrong-hashedrekord-artifact_fail", |e| matches!(e, TlogError::BodyMismatch(_))),
        // The envelope signature was swapped: the entry records the original one.
        ("rekor2-dsse-invalid-sig_fail", |e| matches!(e, TlogError::BodyMismatch("signature"))),
        ("signature-mismatch_fail", |e| matches!(e, TlogError::BodyMismatch("signature"))),
        ("dsse-mismatch-sig_fail", |e| matches!(e, TlogError::BodyMismatch("signature"))),
        ("dsse-invalid-sig_fail", |e| matches!(e, TlogError::BodyMismatch("signature"))),
    ];
    let Some(suite) = conformance() else { return };
    for (name, is_expected) in cases {
        let case = Case::load(&suite, name);
        let err = case.verify().expect_err(name);
        eprintln!("{name}: {err}");
        assert!(is_expected(&err), "{name}: unexpected error {err:?}");
    }
}

#[test]
fn negative_log_index_is_rejected_when_parsing() {
    let Some(suite) = conformance() else { return };
    let path = suite.case("bundle-negative-log-index_fail").join("bundle.sigstore.json");
    let bundle: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let err = serde_json::from_value::<TlogEntry>(bundle["verificationMaterial"]["tlogEntries"][0].clone())
        .unwrap_err();
    assert!(err.to_string().contains("logIndex is negative"), "{err}");
}

#[test]
fn entries_round_trip_through_json() {
    let Some(suite) = conformance() else { return };
    for name in ["happy-path-v0.1", "rekor2-checkpoint-multiple-cosigs", "bundle-with-root-cert_fail"] {
        let case = Case::load(&suite, name);
        let json = serde_json::to_vec(&case.entry).unwrap();
        assert_eq!(TlogEntry::from_json(&json).unwrap(), case.entry, "{name}");
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert!(v["logIndex"].is_string(), "int64 written as a string");
    }
}

#[test]
fn tampering_with_any_part_is_detected() {
    let Some(suite) = conformance() else { return };
    let case = Case::load(&suite, "happy-path-v0.3");
    case.verify().unwrap();

    let mut e = case.entry.clone();
    e.inclusion_promise.as_mut().unwrap()[10] ^= 1;
    assert!(matches!(case.verify_entry(&e), Err(TlogError::BadSet { .. })));

    let mut e = case.entry.clone();
    e.integrated_time += 1;
    assert!(matches!(case.verify_entry(&e), Err(TlogError::BadSet { .. })));

    let mut e = case.entry.clone();
    e.log_index += 1;
    assert!(matches!(case.verify_entry(&e), Err(TlogError::BadSet { .. })));

    let mut e = case.entry.clone();
    e.inclusion_proof.as_mut().unwrap().hashes[3][5] ^= 0x80;
    assert!(matches!(case.verify_entry(&e), Err(TlogError::BadInclusionProof(_))));

    let mut e = case.entry.clone();
    e.inclusion_proof.as_mut().unwrap().log_index += 1;
    assert!(matches!(case.verify_entry(&e), Err(TlogError::BadInclusionProof(_))));

    // A root hash changed consistently in proof and checkpoint text: the audit path no longer leads to it.
    let mut e = case.entry.clone();
    let p = e.inclusion_proof.as_mut().unwrap();
    let old_root = entry::b64_encode(&p.root_hash);
    p.root_hash[0] ^= 1;
    p.checkpoint = p.checkpoint.replace(&old_root, &entry::b64_encode(&p.root_hash));
    let r = case.verify_entry(&e);
    assert!(matches!(r, Err(TlogError::BadInclusionProof(_))), "{r:?}");

    // An audit path rewritten with the root it leads to, in proof and checkpoint text alike: all that
    // still holds it back is the log's signature on the checkpoint.
    let mut e = case.entry.clone();
    let p = e.inclusion_proof.as_mut().unwrap();
    let old_root = entry::b64_encode(&p.root_hash);
    p.hashes[3][5] ^= 0x80;
    let leaf = leaf_hash(&e.canonicalized_body);
    let new_root = root_from_inclusion_proof(
        &leaf,
        u64::try_from(p.log_index).unwrap(),
        u64::try_from(p.tree_size).unwrap(),
        &p.hashes,
    )
    .unwrap();
    p.root_hash = new_root.to_vec();
    p.checkpoint = p.checkpoint.replace(&old_root, &entry::b64_encode(&new_root));
    let r = case.verify_entry(&e);
    assert!(matches!(r, Err(TlogError::BadCheckpointSignature { .. })), "{r:?}");

    // Flip one byte of the checkpoint signature.
    let mut e = case.entry.clone();
    let p = e.inclusion_proof.as_mut().unwrap();
    let (text, sig_line) = p.checkpoint.rsplit_once("\n\u{2014} ").unwrap();
    let (name, b64) = sig_line.trim_end().split_once(' ').unwrap();
    let mut blob = entry::b64_decode(b64).unwrap();
    let last = blob.len() - 3;
    blob[last] ^= 1;
    p.checkpoint = format!("{text}\n\u{2014} {name} {}\n", entry::b64_encode(&blob));
    assert!(matches!(case.verify_entry(&e), Err(TlogError::BadCheckpointSignature { .. })));

    // A checkpoint that is no signed note (an origin and a size, no root hash, no signature). A
    // well-signed checkpoint for another tree is in synthetic_tests (CheckpointMismatch).
    let mut e = case.entry.clone();
    e.inclusion_proof.as_mut().unwrap().checkpoint = "other\n1\n".to_owned();
    let r = case.verify_entry(&e);
    assert!(matches!(r, Err(TlogError::MalformedCheckpoint(_))), "{r:?}");

    // Change what the body records: the commitment check catches it first.
    let mut e = case.entry.clone();
    let body = String::from_utf8(e.canonicalized_body.clone()).unwrap();
    assert!(body.contains("a0cfc71271d6e278"));
    e.canonicalized_body = body.replace("a0cfc71271d6e278", "a0cfc71271d6e279").into_bytes();
    let r = case.verify_entry(&e);
    assert!(matches!(r, Err(TlogError::BodyMismatch(_))), "{r:?}");
    // Change the body's bytes but not what it records: everything signed over it breaks (the SET first).
    let mut e = case.entry.clone();
    e.canonicalized_body.push(b'\n');
    let r = case.verify_entry(&e);
    assert!(matches!(r, Err(TlogError::BadSet { .. })), "{r:?}");
    e.inclusion_promise = None;
    let r = case.verify_entry(&e);
    assert!(matches!(r, Err(TlogError::BadInclusionProof(_))), "{r:?}");

    // Unknown log.
    let mut e = case.entry.clone();
    e.log_id[0] ^= 1;
    assert!(matches!(case.verify_entry(&e), Err(TlogError::UnknownLog { .. })));

    // Kind/version disagreeing with the body.
    let mut e = case.entry.clone();
    e.kind = "intoto".into();
    assert!(matches!(case.verify_entry(&e), Err(TlogError::KindMismatch { .. })));
}

#[test]
fn body_must_name_the_bundle_material() {
    let Some(suite) = conformance() else { return };
    let case = Case::load(&suite, "happy-path-v0.3");
    let other_sig = vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01];
    let exp = ExpectedContent { signature: Some(&other_sig), ..case.expected() };
    assert_eq!(verify_entry(&case.entry, &exp, &case.root, true), Err(TlogError::BodyMismatch("signature")));
    let other_key = crate::keys::SigningKey::generate().public_key().to_spki_der();
    let exp = ExpectedContent { verification_material: &other_key, ..case.expected() };
    assert_eq!(
        verify_entry(&case.entry, &exp, &case.root, true),
        Err(TlogError::BodyMismatch("certificate or public key"))
    );
    let other_digest = Digest::sha256_of(b"other");
    let exp = ExpectedContent { artifact_digest: Some(&other_digest), ..case.expected() };
    assert_eq!(
        verify_entry(&case.entry, &exp, &case.root, true),
        Err(TlogError::BodyMismatch("artifact digest"))
    );
    let exp = ExpectedContent { artifact_digest: None, ..case.expected() };
    assert!(matches!(verify_entry(&case.entry, &exp, &case.root, true), Err(TlogError::NothingToCompare(_))));
}

#[test]
fn rekor_v2_needs_a_proof_and_no_set_and_v1_needs_evidence() {
    let Some(suite) = conformance() else { return };
    let case = Case::load(&suite, "rekor2-checkpoint-multiple-cosigs");
    let mut e = case.entry.clone();
    e.inclusion_proof = None;
    // Even when the caller does not ask for a proof, a Rekor v2 entry has nothing else.
    assert_eq!(verify_entry(&e, &case.expected(), &case.root, false), Err(TlogError::MissingInclusionProof));
    let mut e = case.entry.clone();
    e.inclusion_proof.as_mut().unwrap().checkpoint.clear();
    assert_eq!(verify_entry(&e, &case.expected(), &case.root, false), Err(TlogError::MissingCheckpoint));
    let mut e = case.entry.clone();
    e.inclusion_promise = Some(vec![1, 2, 3]);
    assert!(matches!(
        verify_entry(&e, &case.expected(), &case.root, false),
        Err(TlogError::UnexpectedForRekorV2(_))
    ));

    let v1 = Case::load(&suite, "happy-path-v0.3");
    let mut e = v1.entry.clone();
    e.inclusion_promise = None;
    e.inclusion_proof = None;
    assert_eq!(verify_entry(&e, &v1.expected(), &v1.root, false), Err(TlogError::NoInclusionEvidence));
    // A proof alone suffices for v1, but gives no integrated time (it is not signed by it).
    let mut e = v1.entry.clone();
    e.inclusion_promise = None;
    let v = verify_entry(&e, &v1.expected(), &v1.root, true).unwrap();
    assert_eq!(v.integrated_time, None);
    // v0.1-style: SET alone, proof not required.
    let mut e = v1.entry.clone();
    e.inclusion_proof = None;
    assert!(verify_entry(&e, &v1.expected(), &v1.root, false).is_ok());
    assert_eq!(verify_entry(&e, &v1.expected(), &v1.root, true), Err(TlogError::MissingInclusionProof));
}

#[test]
fn checkpoint_from_a_wrong_origin_is_rejected() {
    let Some(suite) = conformance() else { return };
    let case = Case::load(&suite, "rekor2-checkpoint-multiple-cosigs");
    let mut e = case.entry.clone();
    let p = e.inclusion_proof.as_mut().unwrap();
    p.checkpoint = p.checkpoint.replacen("log2025-alpha1.rekor.sigstage.dev\n", "evil.example\n", 1);
    assert!(matches!(
        verify_entry(&e, &case.expected(), &case.root, true),
        Err(TlogError::CheckpointOrigin { .. })
    ));
}

#[test]
fn log_key_validity_is_enforced_and_end_inclusive() {
    let Some(suite) = conformance() else { return };
    let case = Case::load(&suite, "trust-root-tlog-validity-end-inclusive");
    // The entry was integrated exactly at the end of the key's validity: accepted.
    case.verify().unwrap();
    let mut root = case.root.clone();
    for log in &mut root.tlogs {
        if let Some(end) = log.valid_for.end {
            log.valid_for.end = Some(end - chrono::Duration::seconds(1));
        }
    }
    assert!(matches!(
        verify_entry(&case.entry, &case.expected(), &root, false),
        Err(TlogError::LogKeyNotValid { .. })
    ));
}

#[test]
fn verify_set_serves_cosign_bundle_annotations() {
    let Some(suite) = conformance() else { return };
    let case = Case::load(&suite, "happy-path-v0.1");
    let e = &case.entry;
    let set = e.inclusion_promise.as_ref().unwrap();
    let log = verify_set(set, &e.canonicalized_body, e.integrated_time, e.log_index, &e.log_id, &case.root)
        .unwrap();
    assert_eq!(log.log_id, e.log_id);
    assert!(matches!(
        verify_set(set, b"{}", e.integrated_time, e.log_index, &e.log_id, &case.root),
        Err(TlogError::BadSet { .. })
    ));
    let r = verify_set(set, &e.canonicalized_body, e.integrated_time, -1, &e.log_id, &case.root);
    assert!(matches!(&r, Err(TlogError::Malformed(m)) if m.contains("logIndex is negative")), "{r:?}");
}

#[test]
fn hashedrekord_v1_entry_cannot_stand_for_a_dsse_envelope() {
    let Some(suite) = conformance() else { return };
    let case = Case::load(&suite, "happy-path-v0.3");
    let env = Envelope::sign(crate::dsse::IN_TOTO_PAYLOAD_TYPE, b"{}", &crate::keys::SigningKey::generate());
    let exp = ExpectedContent { dsse: Some(&env), ..case.expected() };
    assert!(matches!(
        verify_entry(&case.entry, &exp, &case.root, true),
        Err(TlogError::WrongContentType { .. })
    ));
}
