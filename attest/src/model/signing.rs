//! OpenSSF model signatures over OCI model artifacts. A model-signing bundle (Sigstore bundle v0.3, DSSE,
//! predicate `https://model_signing/signature/v1.0`) is verified with the Sigstore verifier under the
//! authority's policy (a key, or a keyless identity with its certificate chain and transparency log
//! entries), and its statement is then checked against the model's files: exactly the signed files, each
//! with the signed SHA-256.

use std::collections::{BTreeMap, BTreeSet};

use crate::digest::Digest;
use crate::intoto::Statement;
use crate::model_signing::{
    check_statement_against_files, ModelSigningError, MAX_BUNDLE_BYTES, MODEL_SIGNATURE_PREDICATE_V1,
};
use crate::sigstore_verify::{
    Artifact, Bundle, BundleContent, BundleError, VerificationPolicy, VerifiedBundle, Verifier,
};
use crate::verdict::{Signer, Source};

pub use crate::verdict::ModelSignatureFacts;

/// Why a model signature candidate does not verify, by the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelSignatureError {
    /// Larger than a signature may be.
    #[error("model signature bundle of {size} bytes exceeds the limit of {MAX_BUNDLE_BYTES} bytes")]
    TooLarge {
        /// Its size.
        size: usize,
    },
    /// Not a Sigstore bundle.
    #[error("not a Sigstore bundle: {0}")]
    Bundle(BundleError),
    /// A message signature cannot carry the model's file list.
    #[error("bundle holds a message signature; model signatures are DSSE envelopes")]
    NotDsse,
    /// The DSSE payload is not an in-toto statement with a SHA-256 subject.
    #[error("bundle payload is not a model signature statement: {0}")]
    Payload(String),
    /// Another kind of signature (e.g. a cosign image signature bundle).
    #[error("predicate type is {found:?}, not {MODEL_SIGNATURE_PREDICATE_V1}")]
    WrongPredicateType {
        /// The predicate type found.
        found: String,
    },
    /// The bundle does not verify under the authority (signature, certificate, identity, log, time).
    #[error("{0}")]
    Sigstore(crate::sigstore_verify::VerifyError),
    /// The signed statement does not match the model's files.
    #[error("{0}")]
    Model(ModelSigningError),
}

/// A verified model signature: the bundle's verification and the checked statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedModelSignature {
    /// What the Sigstore verifier established.
    pub verified: VerifiedBundle,
    /// Files covered.
    pub files: usize,
    /// The statement's subject digest.
    pub subject_digest: Digest,
}

impl VerifiedModelSignature {
    /// The facts, with the place the signature was found.
    pub fn facts(&self, source: Source) -> ModelSignatureFacts {
        ModelSignatureFacts {
            signer: Signer::from(&self.verified.signer),
            source,
            files: self.files,
            subject_digest: self.subject_digest.clone(),
            rekor_log_index: self.verified.tlog_entries.first().map(|e| e.log_index),
            signing_time: self.verified.signing_time,
        }
    }
}

/// Verify a model-signing bundle under `policy` and check it covers exactly `files` (path → SHA-256).
/// An unsigned file whose content is the bundle itself (a `model.sig` kept inside the model) is left out,
/// as model-signing leaves its signature file out.
pub fn verify_model_bundle(
    bundle_json: &[u8],
    files: &BTreeMap<String, Digest>,
    verifier: &Verifier,
    policy: &VerificationPolicy,
) -> Result<VerifiedModelSignature, ModelSignatureError> {
    if bundle_json.len() > MAX_BUNDLE_BYTES {
        return Err(ModelSignatureError::TooLarge { size: bundle_json.len() });
    }
    let bundle = Bundle::from_json(bundle_json).map_err(ModelSignatureError::Bundle)?;
    let BundleContent::Dsse(envelope) = &bundle.content else {
        return Err(ModelSignatureError::NotDsse);
    };
    // Read the (not yet verified) statement only to name the subject the verifier must find in it and to
    // fail fast on other predicates; everything is re-read from the verified payload below.
    let payload = envelope.payload_bytes().map_err(|e| ModelSignatureError::Payload(e.to_string()))?;
    let unverified =
        Statement::from_json(&payload).map_err(|e| ModelSignatureError::Payload(e.to_string()))?;
    check_predicate_type(&unverified)?;
    let subject = subject_digest(&unverified)?;
    let verified =
        verifier.verify(&bundle, Artifact::Digest(subject), policy).map_err(ModelSignatureError::Sigstore)?;
    let (_, verified_payload) = verified
        .dsse_payload
        .as_ref()
        .ok_or_else(|| ModelSignatureError::Payload("the verifier returned no DSSE payload".into()))?;
    let statement =
        Statement::from_json(verified_payload).map_err(|e| ModelSignatureError::Payload(e.to_string()))?;
    check_predicate_type(&statement)?;
    let files = without_signature_file(files, &statement, bundle_json);
    let checked = check_statement_against_files(&statement, &files).map_err(ModelSignatureError::Model)?;
    Ok(VerifiedModelSignature { verified, files: checked.files, subject_digest: checked.subject_digest })
}

fn check_predicate_type(statement: &Statement) -> Result<(), ModelSignatureError> {
    if statement.predicate_type == MODEL_SIGNATURE_PREDICATE_V1 {
        return Ok(());
    }
    Err(ModelSignatureError::WrongPredicateType {
        found: statement.predicate_type.chars().take(200).collect(),
    })
}

fn subject_digest(statement: &Statement) -> Result<Digest, ModelSignatureError> {
    let [subject] = statement.subjects.as_slice() else {
        return Err(ModelSignatureError::Payload(format!(
            "expected exactly one subject, found {}",
            statement.subjects.len()
        )));
    };
    let hex = subject
        .digest
        .get("sha256")
        .ok_or_else(|| ModelSignatureError::Payload("subject has no sha256 digest".into()))?;
    format!("sha256:{}", hex.to_ascii_lowercase())
        .parse()
        .map_err(|e| ModelSignatureError::Payload(format!("subject digest: {e}")))
}

/// `files` less unsigned files whose content is the bundle.
fn without_signature_file(
    files: &BTreeMap<String, Digest>,
    statement: &Statement,
    bundle_json: &[u8],
) -> BTreeMap<String, Digest> {
    let bundle_digest = Digest::sha256_of(bundle_json);
    let signed: BTreeSet<&str> = statement
        .predicate
        .get("resources")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|x| x.get("name").and_then(|n| n.as_str())).collect())
        .unwrap_or_default();
    files
        .iter()
        .filter(|(name, digest)| **digest != bundle_digest || signed.contains(name.as_str()))
        .map(|(n, d)| (n.clone(), d.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsse::{Envelope, IN_TOTO_PAYLOAD_TYPE};
    use crate::keys::SigningKey;
    use crate::trust_root::TrustRoot;
    use serde_json::json;
    use sha2::{Digest as _, Sha256};

    /// A model-signing bundle over `files`, as `model_signing sign key` writes it.
    fn bundle(key: &SigningKey, files: &BTreeMap<String, Digest>, predicate_type: &str) -> Vec<u8> {
        let mut root = Sha256::new();
        for d in files.values() {
            root.update(d.to_bytes());
        }
        let resources: Vec<_> =
            files.iter().map(|(n, d)| json!({"name": n, "algorithm": "sha256", "digest": d.hex()})).collect();
        let statement = json!({
            "_type": crate::intoto::STATEMENT_V1,
            "subject": [{"name": "model", "digest": {"sha256": hex::encode(root.finalize())}}],
            "predicateType": predicate_type,
            "predicate": {"serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": false,
                "ignore_paths": [".git"]}, "resources": resources},
        });
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, &serde_json::to_vec(&statement).unwrap(), key);
        serde_json::to_vec(&json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": "x"}, "tlogEntries": []},
            "dsseEnvelope": env,
        }))
        .unwrap()
    }

    fn files() -> BTreeMap<String, Digest> {
        [("a.safetensors", b"weights".as_slice()), ("cfg/config.json", b"{}")]
            .iter()
            .map(|(n, c)| ((*n).to_owned(), Digest::sha256_of(c)))
            .collect()
    }

    fn verifier() -> Verifier {
        Verifier::new(TrustRoot::public_good().unwrap())
    }

    #[test]
    fn key_signature_over_the_files_verifies_and_names_failures() {
        let key = SigningKey::generate();
        let b = bundle(&key, &files(), MODEL_SIGNATURE_PREDICATE_V1);
        let policy = VerificationPolicy::key(key.public_key()).without_tlog();
        let v = verify_model_bundle(&b, &files(), &verifier(), &policy).unwrap();
        assert_eq!(v.files, 2);
        let facts = v.facts(Source::Referrer { manifest: Digest::sha256_of(b"r") });
        assert_eq!(facts.signer, Signer::Key { fingerprint: key.public_key().fingerprint() });

        // The signature file inside the model is not a model file.
        let mut with_sig = files();
        with_sig.insert("model.sig".into(), Digest::sha256_of(&b));
        assert!(verify_model_bundle(&b, &with_sig, &verifier(), &policy).is_ok());

        let other = VerificationPolicy::key(SigningKey::generate().public_key()).without_tlog();
        let err = verify_model_bundle(&b, &files(), &verifier(), &other).unwrap_err();
        assert!(matches!(err, ModelSignatureError::Sigstore(_)), "{err}");
        assert!(err.to_string().contains("signature"), "{err}");

        let mut changed = files();
        changed.insert("a.safetensors".into(), Digest::sha256_of(b"other"));
        let err = verify_model_bundle(&b, &changed, &verifier(), &policy).unwrap_err();
        assert!(err.to_string().contains("model file \"a.safetensors\" was modified"), "{err}");

        let mut added = files();
        added.insert("extra.bin".into(), Digest::sha256_of(b"x"));
        let err = verify_model_bundle(&b, &added, &verifier(), &policy).unwrap_err();
        assert!(err.to_string().contains("\"extra.bin\" is not covered by the signature"), "{err}");

        let mut removed = files();
        removed.remove("cfg/config.json");
        let err = verify_model_bundle(&b, &removed, &verifier(), &policy).unwrap_err();
        assert!(err.to_string().contains("is signed but missing"), "{err}");
    }

    #[test]
    fn other_predicates_and_message_signatures_are_not_model_signatures() {
        let key = SigningKey::generate();
        let policy = VerificationPolicy::key(key.public_key()).without_tlog();
        let b = bundle(&key, &files(), "https://sigstore.dev/cosign/sign/v1");
        let err = verify_model_bundle(&b, &files(), &verifier(), &policy).unwrap_err();
        assert!(matches!(err, ModelSignatureError::WrongPredicateType { .. }), "{err}");
        let err = verify_model_bundle(b"{}", &files(), &verifier(), &policy).unwrap_err();
        assert!(matches!(err, ModelSignatureError::Bundle(_)), "{err}");
        // The tlog is required unless the policy drops it.
        let b = bundle(&key, &files(), MODEL_SIGNATURE_PREDICATE_V1);
        let err = verify_model_bundle(&b, &files(), &verifier(), &VerificationPolicy::key(key.public_key()))
            .unwrap_err();
        assert!(err.to_string().contains("transparency log"), "{err}");
    }
}
