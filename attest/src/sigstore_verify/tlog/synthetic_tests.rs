//! Tests on entries made here by a miniature log (P-256 Rekor v1 style, Ed25519 Rekor v2 style), to reach
//! the paths the conformance data cannot: validly signed checkpoints for another tree, witness-only
//! checkpoints, dsse entries, hashedrekord 0.0.2 over DSSE, wrong content types.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use sha2::{Digest as _, Sha256};

use super::entry::b64_encode;
use super::merkle::reference::{mth, path};
use super::*;
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::keys::{PublicKey, SigningKey};
use crate::trust_root::{TransparencyLog, Validity};

const V2_NAME: &str = "log.example.test";

enum LogKey {
    Ecdsa(SigningKey),
    Ed25519(Ed25519KeyPair),
}

impl LogKey {
    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        match self {
            Self::Ecdsa(k) => k.sign(msg),
            Self::Ed25519(k) => k.sign(msg).as_ref().to_vec(),
        }
    }
}

/// A log with its key, as the trust root would list it.
struct MiniLog {
    key: LogKey,
    log: TransparencyLog,
    /// Name on signature lines.
    name: String,
    /// Key hint on signature lines.
    hint: [u8; 4],
    /// Checkpoint origin.
    origin: String,
}

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

impl MiniLog {
    /// Rekor v1 style: P-256, log id = SHA-256 of the key DER, origin `<name> - <tree id>`.
    fn v1() -> Self {
        let sk = SigningKey::generate();
        let public_key = sk.public_key();
        let der = public_key.to_spki_der();
        let log_id = sha256(&[&der]);
        Self {
            hint: [log_id[0], log_id[1], log_id[2], log_id[3]],
            log: TransparencyLog {
                base_url: "https://rekor.example.test".into(),
                log_id,
                public_key,
                public_key_der: der,
                key_details: "PKIX_ECDSA_P256_SHA_256".into(),
                valid_for: Validity::default(),
            },
            key: LogKey::Ecdsa(sk),
            name: "rekor.example.test".into(),
            origin: "rekor.example.test - 1234567890".into(),
        }
    }

    /// Rekor v2 style: Ed25519, log id = c2sp key id, origin = base URL host.
    fn v2(seed: u8) -> Self {
        let sk = Ed25519KeyPair::from_seed_unchecked(&[seed; 32]).unwrap();
        let der = sk.public_key().as_der().unwrap().as_ref().to_vec();
        let log_id = sha256(&[V2_NAME.as_bytes(), b"\n", &[1], sk.public_key().as_ref()]);
        Self {
            hint: [log_id[0], log_id[1], log_id[2], log_id[3]],
            log: TransparencyLog {
                base_url: format!("https://{V2_NAME}"),
                log_id,
                public_key: PublicKey::from_spki_der(&der).unwrap(),
                public_key_der: der,
                key_details: "PKIX_ED25519".into(),
                valid_for: Validity::default(),
            },
            key: LogKey::Ed25519(sk),
            name: V2_NAME.into(),
            origin: V2_NAME.into(),
        }
    }

    fn sig_line(&self, text: &str) -> String {
        let mut blob = self.hint.to_vec();
        blob.extend(self.key.sign(text.as_bytes()));
        format!("\u{2014} {} {}\n", self.name, b64_encode(&blob))
    }

    /// A checkpoint for (size, root) signed by this log, with extra signature lines after it.
    fn checkpoint(&self, size: usize, root: &[u8], extra: &[String]) -> String {
        let text = format!("{}\n{size}\n{}\n", self.origin, b64_encode(root));
        let mut note = format!("{text}\n{}", self.sig_line(&text));
        for line in extra {
            note.push_str(line);
        }
        note
    }

    /// Log `body` as leaf 2 of a five-leaf tree; with a SET when the log is a v1 log.
    fn entry(&self, kind: &str, version: &str, body: Vec<u8>) -> TlogEntry {
        let mut leaves: Vec<Vec<u8>> =
            ["a", "b", "", "d", "e"].iter().map(|s| s.as_bytes().to_vec()).collect();
        leaves[2] = body.clone();
        let root = mth(&leaves);
        let v1 = matches!(self.key, LogKey::Ecdsa(_));
        let integrated_time = if v1 { 1_700_000_000 } else { 0 };
        let inclusion_promise = v1.then(|| {
            let payload = set::set_payload(&body, integrated_time, 2, &self.log.log_id).unwrap();
            self.key.sign(&payload)
        });
        TlogEntry {
            log_index: 2,
            log_id: self.log.log_id.clone(),
            kind: kind.into(),
            kind_version: version.into(),
            integrated_time,
            inclusion_promise,
            inclusion_proof: Some(InclusionProof {
                log_index: 2,
                root_hash: root.to_vec(),
                tree_size: 5,
                hashes: path(2, &leaves),
                checkpoint: self.checkpoint(5, &root, &[]),
            }),
            canonicalized_body: body,
        }
    }

    fn root(&self) -> TrustRoot {
        let mut root = TrustRoot::public_good().unwrap();
        root.tlogs.push(self.log.clone());
        root
    }
}

/// The signer of the artifact (not the log).
struct Signer {
    key: SigningKey,
    spki: Vec<u8>,
}

impl Signer {
    fn new() -> Self {
        let key = SigningKey::generate();
        let spki = key.public_key().to_spki_der();
        Self { key, spki }
    }

    fn verifier_v2(&self) -> serde_json::Value {
        serde_json::json!({"keyDetails": "PKIX_ECDSA_P256_SHA_256", "publicKey": {"rawBytes": b64_encode(&self.spki)}})
    }

    fn pem_b64(&self) -> String {
        b64_encode(crate::keys::pem_encode("PUBLIC KEY", &self.spki).as_bytes())
    }
}

fn json(v: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&v).unwrap()
}

fn hashedrekord_v2(digest: &[u8], sig: &[u8], signer: &Signer) -> Vec<u8> {
    json(serde_json::json!({"apiVersion": "0.0.2", "kind": "hashedrekord", "spec": {"hashedRekordV002": {
        "data": {"algorithm": "SHA2_256", "digest": b64_encode(digest)},
        "signature": {"content": b64_encode(sig), "verifier": signer.verifier_v2()}}}}))
}

fn message(artifact: &[u8], signer: &Signer) -> (Digest, Vec<u8>) {
    (Digest::sha256_of(artifact), signer.key.sign(artifact))
}

fn expect_message<'a>(digest: &'a Digest, sig: &'a [u8], signer: &'a Signer) -> ExpectedContent<'a> {
    ExpectedContent {
        signature: Some(sig),
        artifact_digest: Some(digest),
        dsse: None,
        verification_material: &signer.spki,
    }
}

fn expect_dsse<'a>(env: &'a Envelope, signer: &'a Signer) -> ExpectedContent<'a> {
    ExpectedContent {
        signature: None,
        artifact_digest: None,
        dsse: Some(env),
        verification_material: &signer.spki,
    }
}

#[test]
fn rekor_v2_hashedrekord_with_ed25519_checkpoint_and_witnesses() {
    let log = MiniLog::v2(7);
    let root = log.root();
    let signer = Signer::new();
    let (digest, sig) = message(b"artifact", &signer);
    let entry = log.entry("hashedrekord", "0.0.2", hashedrekord_v2(&digest.to_bytes(), &sig, &signer));
    let expected = expect_message(&digest, &sig, &signer);

    let v = verify_entry(&entry, &expected, &root, true).unwrap();
    assert!(v.rekor_v2);
    assert_eq!(v.integrated_time, None);

    let proof = entry.inclusion_proof.as_ref().unwrap();
    let with_checkpoint = |cp: String| {
        let mut e = entry.clone();
        e.inclusion_proof.as_mut().unwrap().checkpoint = cp;
        verify_entry(&e, &expected, &root, true)
    };

    // A witness cosignature (another key and name) before or after the log's is ignored.
    let mut witness = MiniLog::v2(9);
    witness.name = "witness.example".into();
    let text = format!("{}\n5\n{}\n", log.origin, b64_encode(&proof.root_hash));
    let w_line = witness.sig_line(&text);
    assert!(with_checkpoint(log.checkpoint(5, &proof.root_hash, std::slice::from_ref(&w_line))).is_ok());
    assert!(with_checkpoint(format!("{text}\n{w_line}{}", log.sig_line(&text))).is_ok());

    // Only a witness signed: not enough.
    assert!(matches!(
        with_checkpoint(format!("{text}\n{w_line}")),
        Err(TlogError::CheckpointNotSignedByLog { .. })
    ));
    // The log's name but another key (hint differs): ignored, so unsigned.
    let mut impostor = MiniLog::v2(11);
    impostor.origin = log.origin.clone();
    assert!(matches!(
        with_checkpoint(format!("{text}\n{}", impostor.sig_line(&text))),
        Err(TlogError::CheckpointNotSignedByLog { .. })
    ));
    // The log's name and hint over a bad signature: an error, even next to a good one.
    let mut forged = impostor;
    forged.hint = log.hint;
    assert!(matches!(
        with_checkpoint(format!("{text}\n{}{}", log.sig_line(&text), forged.sig_line(&text))),
        Err(TlogError::BadCheckpointSignature { .. })
    ));
    // Validly signed checkpoints for another tree.
    assert_eq!(
        with_checkpoint(log.checkpoint(6, &proof.root_hash, &[])),
        Err(TlogError::CheckpointMismatch("tree size"))
    );
    assert_eq!(
        with_checkpoint(log.checkpoint(5, &[7u8; 32], &[])),
        Err(TlogError::CheckpointMismatch("root hash"))
    );
    // The proof's index must be the entry's own in Rekor v2.
    let mut e = entry.clone();
    e.log_index = 3;
    assert!(matches!(verify_entry(&e, &expected, &root, true), Err(TlogError::BadInclusionProof(_))));
}

#[test]
fn rekor_v2_hashedrekord_over_dsse_commits_to_pae_and_signature() {
    let log = MiniLog::v2(7);
    let root = log.root();
    let signer = Signer::new();
    let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"_type\":\"x\"}", &signer.key);
    let env_sig = env.signature_bytes().unwrap().remove(0);
    let pae_digest = Sha256::digest(env.pae().unwrap()).to_vec();
    let entry = log.entry("hashedrekord", "0.0.2", hashedrekord_v2(&pae_digest, &env_sig, &signer));
    assert!(verify_entry(&entry, &expect_dsse(&env, &signer), &root, true).is_ok());

    let mut other_type = env.clone();
    other_type.payload_type = "text/plain".into();
    assert_eq!(
        verify_entry(&entry, &expect_dsse(&other_type, &signer), &root, true),
        Err(TlogError::BodyMismatch("digest of the DSSE envelope"))
    );
    // ECDSA signing here is deterministic (RFC 6979): another key gives another signature.
    let resigned = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"_type\":\"x\"}", &Signer::new().key);
    assert_eq!(
        verify_entry(&entry, &expect_dsse(&resigned, &signer), &root, true),
        Err(TlogError::BodyMismatch("signature"))
    );
}

#[test]
fn rekor_v2_dsse_entry() {
    let log = MiniLog::v2(7);
    let root = log.root();
    let signer = Signer::new();
    let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"_type\":\"x\"}", &signer.key);
    let sig = env.signature_bytes().unwrap().remove(0);
    let body = json(serde_json::json!({"apiVersion": "0.0.2", "kind": "dsse", "spec": {"dsseV002": {
        "payloadHash": {"algorithm": "SHA2_256", "digest": b64_encode(&Sha256::digest(env.payload_bytes().unwrap()))},
        "signatures": [{"content": b64_encode(&sig), "verifier": signer.verifier_v2()}]}}}));
    let entry = log.entry("dsse", "0.0.2", body);
    let v = verify_entry(&entry, &expect_dsse(&env, &signer), &root, true).unwrap();
    assert!(v.rekor_v2);

    let other = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"_type\":\"y\"}", &signer.key);
    assert_eq!(
        verify_entry(&entry, &expect_dsse(&other, &signer), &root, true),
        Err(TlogError::BodyMismatch("payload hash"))
    );
    let other_signer = Signer::new();
    assert_eq!(
        verify_entry(&entry, &expect_dsse(&env, &other_signer), &root, true),
        Err(TlogError::BodyMismatch("certificate or public key"))
    );
    // A DSSE entry cannot stand for a message signature.
    let (digest, msg_sig) = message(b"artifact", &signer);
    assert!(matches!(
        verify_entry(&entry, &expect_message(&digest, &msg_sig, &signer), &root, true),
        Err(TlogError::WrongContentType { .. })
    ));
}

#[test]
fn rekor_v1_dsse_entry_with_set_and_proof() {
    let log = MiniLog::v1();
    let root = log.root();
    let signer = Signer::new();
    let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"_type\":\"x\"}", &signer.key);
    let sig = env.signature_bytes().unwrap().remove(0);
    let body = json(serde_json::json!({"apiVersion": "0.0.1", "kind": "dsse", "spec": {
        "envelopeHash": {"algorithm": "sha256", "value": hex::encode([0u8; 32])},
        "payloadHash": {"algorithm": "sha256", "value": hex::encode(Sha256::digest(env.payload_bytes().unwrap()))},
        "signatures": [{"signature": b64_encode(&sig), "verifier": signer.pem_b64()}]}}));
    let entry = log.entry("dsse", "0.0.1", body);
    let v = verify_entry(&entry, &expect_dsse(&env, &signer), &root, true).unwrap();
    assert!(!v.rekor_v2);
    assert_eq!(v.integrated_time.unwrap().timestamp(), 1_700_000_000);

    // Validly signed v1 checkpoints for another tree.
    let proof = entry.inclusion_proof.as_ref().unwrap();
    let mut e = entry.clone();
    e.inclusion_proof.as_mut().unwrap().checkpoint = log.checkpoint(5, &[1u8; 32], &[]);
    assert_eq!(
        verify_entry(&e, &expect_dsse(&env, &signer), &root, true),
        Err(TlogError::CheckpointMismatch("root hash"))
    );
    let mut e = entry.clone();
    e.inclusion_proof.as_mut().unwrap().checkpoint = log.checkpoint(4, &proof.root_hash, &[]);
    assert_eq!(
        verify_entry(&e, &expect_dsse(&env, &signer), &root, true),
        Err(TlogError::CheckpointMismatch("tree size"))
    );
    // A v1 checkpoint signed under another name is not the log's.
    let mut e = entry.clone();
    let mut other_name = log;
    other_name.name = "someone.else".into();
    e.inclusion_proof.as_mut().unwrap().checkpoint = other_name.checkpoint(5, &proof.root_hash, &[]);
    assert!(matches!(
        verify_entry(&e, &expect_dsse(&env, &signer), &root, true),
        Err(TlogError::CheckpointNotSignedByLog { .. })
    ));
}

#[test]
fn envelopes_must_carry_exactly_one_signature() {
    let log = MiniLog::v2(7);
    let root = log.root();
    let signer = Signer::new();
    let mut env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{}", &signer.key);
    let sig = env.signature_bytes().unwrap().remove(0);
    let body = json(serde_json::json!({"apiVersion": "0.0.2", "kind": "dsse", "spec": {"dsseV002": {
        "payloadHash": {"algorithm": "SHA2_256", "digest": b64_encode(&Sha256::digest(b"{}"))},
        "signatures": [{"content": b64_encode(&sig), "verifier": signer.verifier_v2()}]}}}));
    let entry = log.entry("dsse", "0.0.2", body);
    env.signatures.push(env.signatures[0].clone());
    assert!(matches!(
        verify_entry(&entry, &expect_dsse(&env, &signer), &root, true),
        Err(TlogError::NothingToCompare(_))
    ));
}

#[test]
fn unsupported_kinds_are_named() {
    let log = MiniLog::v2(7);
    let root = log.root();
    let signer = Signer::new();
    let (digest, sig) = message(b"artifact", &signer);
    let body = json(serde_json::json!({"apiVersion": "0.0.1", "kind": "rekord", "spec": {}}));
    let entry = log.entry("rekord", "0.0.1", body);
    assert_eq!(
        verify_entry(&entry, &expect_message(&digest, &sig, &signer), &root, true),
        Err(TlogError::UnsupportedKind { kind: "rekord".into(), version: "0.0.1".into() })
    );
}
