//! Model signatures made the way `model_signing sign key` makes them, for the unit tests.

use std::collections::BTreeMap;

use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
use crate::keys::SigningKey;
use crate::sigstore_verify::{VerificationPolicy, Verifier};
use crate::trust_root::TrustRoot;

use super::MODEL_SIGNATURE_PREDICATE_V1;

/// A resource as model-signing lists it: name, algorithm, digest.
pub(super) type Resource = (String, String, Digest);

/// The verifier the tests use (the trust root is not consulted for key signatures without a log entry).
pub(super) fn verifier() -> Verifier {
    Verifier::new(TrustRoot::public_good().unwrap())
}

/// The key policy for `model_signing sign key` signatures: the key, no transparency log.
pub(super) fn key_policy(key: &SigningKey) -> VerificationPolicy {
    VerificationPolicy::key(key.public_key()).without_tlog()
}

/// The `files` serialization, with the signature file among the ignored paths.
pub(super) fn files_serialization() -> serde_json::Value {
    json!({"method": "files", "hash_type": "sha256", "allow_symlinks": false, "ignore_paths": ["model.sig"]})
}

/// Whole-file resources of `files`.
pub(super) fn whole_files(files: &BTreeMap<String, Digest>) -> Vec<Resource> {
    files.iter().map(|(n, d)| (n.clone(), "sha256".to_owned(), d.clone())).collect()
}

/// The subject model-signing computes: SHA-256 over the concatenated resource digests, in hex.
pub(super) fn subject_of(resources: &[Resource]) -> String {
    let mut root = Sha256::new();
    for (_, _, d) in resources {
        root.update(d.to_bytes());
    }
    hex::encode(root.finalize())
}

/// A `files` signature of `predicate_type` over `resources` that does not list its own file among the
/// ignored paths (model-signing leaves it out all the same).
pub(super) fn bundle_over(key: &SigningKey, resources: &[Resource], predicate_type: &str) -> Vec<u8> {
    let serialization =
        json!({"method": "files", "hash_type": "sha256", "allow_symlinks": false, "ignore_paths": [".git"]});
    signed_bundle(key, serialization, resources, &subject_of(resources), predicate_type)
}

/// A model-signing v1.0 signature over `resources` with `serialization` as given.
pub(super) fn bundle(key: &SigningKey, serialization: serde_json::Value, resources: &[Resource]) -> Vec<u8> {
    signed_bundle(key, serialization, resources, &subject_of(resources), MODEL_SIGNATURE_PREDICATE_V1)
}

/// A model-signing v1.0 signature over `resources` claiming the subject `subject_hex`.
pub(super) fn bundle_with_subject(
    key: &SigningKey,
    serialization: serde_json::Value,
    resources: &[Resource],
    subject_hex: &str,
) -> Vec<u8> {
    signed_bundle(key, serialization, resources, subject_hex, MODEL_SIGNATURE_PREDICATE_V1)
}

/// Sigstore bundle v0.3 with model-signing's key hint (SHA-256 of the PEM key), no log entry, and a DSSE
/// envelope over the statement.
fn signed_bundle(
    key: &SigningKey,
    serialization: serde_json::Value,
    resources: &[Resource],
    subject_hex: &str,
    predicate_type: &str,
) -> Vec<u8> {
    let resources: Vec<_> = resources
        .iter()
        .map(|(name, alg, d)| json!({"name": name, "algorithm": alg, "digest": d.hex()}))
        .collect();
    let statement = json!({
        "_type": crate::intoto::STATEMENT_V1,
        "subject": [{"name": "model", "digest": {"sha256": subject_hex}}],
        "predicateType": predicate_type,
        "predicate": {"serialization": serialization, "resources": resources},
    });
    let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &serde_json::to_vec(&statement).unwrap(), key);
    let hint = Digest::sha256_of(key.public_key().to_pem().as_bytes());
    serde_json::to_vec(&json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": hint.hex()}, "tlogEntries": []},
        "dsseEnvelope": envelope,
    }))
    .unwrap()
}
