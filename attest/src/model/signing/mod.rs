//! OpenSSF model signatures (PyPI `model-signing` 1.x, predicate `https://model_signing/signature/v1.0`).
//!
//! A model signature is a Sigstore bundle holding a DSSE envelope whose in-toto statement lists every file
//! (or file shard) of the model with its SHA-256 in `predicate.resources`, and whose single subject digest
//! is the SHA-256 over the concatenated raw resource digests, in the listed order. It is checked in three
//! steps, one file each:
//!
//! 1. `bundle`: vouch's Sigstore verifier verifies the bundle under the authority's policy — a key (as
//!    `model_signing sign key` writes it: a public-key hint, usually no log entry, so the policy must not
//!    require one) or a keyless identity with its Fulcio chain, SCT and transparency-log entries;
//! 2. `statement`: the predicate is what model-signing writes (`files` or `shards`, SHA-256, normal
//!    relative paths) and the subject is the digest of the resources;
//! 3. the model's files are exactly the signed resources, each with the signed digest — known by their
//!    SHA-256 ([`verify_model_bundle`]: an OCI model's layers, see [`super::files`]) or read from a
//!    directory (`directory`, [`verify_model_directory`], which also checks `shards` signatures).
//!
//! Git metadata, the signature's `ignore_paths` and an unsigned file whose content is the bundle itself
//! (a `model.sig` kept inside the model) are not model files, as model-signing leaves them out.
//!
//! ```no_run
//! use vouch_attest::model::signing::verify_model_directory;
//! use vouch_attest::sigstore_verify::{VerificationPolicy, Verifier};
//! use vouch_attest::{trust_root::TrustRoot, PublicKey};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = PublicKey::from_pem(&std::fs::read_to_string("key.pub")?)?;
//! let verifier = Verifier::new(TrustRoot::public_good()?);
//! let policy = VerificationPolicy::key(key).without_tlog(); // model_signing logs no key signatures
//! let verified = verify_model_directory("model".as_ref(), &std::fs::read("model.sig")?, &verifier, &policy)?;
//! println!("{} files signed by {:?}", verified.files, verified.verified.signer);
//! # Ok(())
//! # }
//! ```

mod bundle;
mod directory;
mod error;
mod statement;
#[cfg(test)]
mod testutil;

use std::collections::BTreeMap;
use std::path::Path;

use crate::digest::Digest;
use crate::sigstore_verify::{VerificationPolicy, VerifiedBundle, Verifier};
use crate::verdict::{Signer, Source};

pub use crate::verdict::ModelSignatureFacts;
pub use error::ModelSignatureError;

use statement::SignedModel;

/// The model-signing v1.0 predicate type.
pub const MODEL_SIGNATURE_PREDICATE_V1: &str = "https://model_signing/signature/v1.0";

/// Largest signature bundle vouch will read.
pub const MAX_BUNDLE_BYTES: usize = 32 * 1024 * 1024;

/// Bounds on what is read to check a model signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelLimits {
    /// Most files (or signed resources) accepted.
    pub max_files: usize,
    /// Most bytes hashed in total (directories).
    pub max_total_bytes: u64,
    /// Deepest directory nesting walked.
    pub max_depth: usize,
}

impl Default for ModelLimits {
    fn default() -> Self {
        Self { max_files: 100_000, max_total_bytes: 1 << 40, max_depth: 64 }
    }
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
    #[must_use]
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

/// Verify a model-signing bundle under `policy` and check it covers exactly `files` (relative path →
/// SHA-256 of the whole file, e.g. the files of an OCI model artifact). Only `files` signatures can be
/// checked this way; `shards` signatures need the contents ([`verify_model_directory`]).
pub fn verify_model_bundle(
    bundle_json: &[u8],
    files: &BTreeMap<String, Digest>,
    verifier: &Verifier,
    policy: &VerificationPolicy,
) -> Result<VerifiedModelSignature, ModelSignatureError> {
    let limits = ModelLimits::default();
    let (verified, statement) = bundle::verify_bundle(bundle_json, verifier, policy)?;
    let signed = SignedModel::from_statement(&statement, &limits)?;
    let files = signed.check_whole_files(files, bundle_json, &limits)?;
    Ok(VerifiedModelSignature { verified, files, subject_digest: signed.subject_digest })
}

/// Verify a model-signing bundle under `policy` over the model directory `model_dir`, with default
/// [`ModelLimits`]: the regular files under it must be exactly the signed ones, with the signed content.
pub fn verify_model_directory(
    model_dir: &Path,
    bundle_json: &[u8],
    verifier: &Verifier,
    policy: &VerificationPolicy,
) -> Result<VerifiedModelSignature, ModelSignatureError> {
    verify_model_directory_with_limits(model_dir, bundle_json, verifier, policy, &ModelLimits::default())
}

/// [`verify_model_directory`], reading at most `limits`.
pub fn verify_model_directory_with_limits(
    model_dir: &Path,
    bundle_json: &[u8],
    verifier: &Verifier,
    policy: &VerificationPolicy,
    limits: &ModelLimits,
) -> Result<VerifiedModelSignature, ModelSignatureError> {
    let (verified, statement) = bundle::verify_bundle(bundle_json, verifier, policy)?;
    let signed = SignedModel::from_statement(&statement, limits)?;
    let files = directory::check_directory(model_dir, &signed, bundle_json, limits)?;
    Ok(VerifiedModelSignature { verified, files, subject_digest: signed.subject_digest })
}

#[cfg(test)]
mod tests {
    use super::testutil::{bundle_over, key_policy, verifier, whole_files};
    use super::*;
    use crate::keys::SigningKey;
    use crate::sigstore_verify::testutil::TestCa;
    use crate::sigstore_verify::VerifyError;
    use base64::Engine as _;
    use serde_json::json;

    fn files() -> BTreeMap<String, Digest> {
        [("a.safetensors", b"weights".as_slice()), ("cfg/config.json", b"{}")]
            .iter()
            .map(|(n, c)| ((*n).to_owned(), Digest::sha256_of(c)))
            .collect()
    }

    #[test]
    fn key_signature_over_the_files_verifies_and_names_failures() {
        let key = SigningKey::generate();
        let b = bundle_over(&key, &whole_files(&files()), MODEL_SIGNATURE_PREDICATE_V1);
        let policy = key_policy(&key);
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
        let policy = key_policy(&key);
        let b = bundle_over(&key, &whole_files(&files()), "https://sigstore.dev/cosign/sign/v1");
        let err = verify_model_bundle(&b, &files(), &verifier(), &policy).unwrap_err();
        assert!(matches!(err, ModelSignatureError::WrongPredicateType { .. }), "{err}");
        let err = verify_model_bundle(b"{}", &files(), &verifier(), &policy).unwrap_err();
        assert!(matches!(err, ModelSignatureError::Bundle(_)), "{err}");
        // The tlog is required unless the policy drops it.
        let b = bundle_over(&key, &whole_files(&files()), MODEL_SIGNATURE_PREDICATE_V1);
        let err = verify_model_bundle(&b, &files(), &verifier(), &VerificationPolicy::key(key.public_key()))
            .unwrap_err();
        assert!(err.to_string().contains("transparency log"), "{err}");
        // Too large to be a signature: refused before it is parsed.
        let huge = vec![b' '; MAX_BUNDLE_BYTES + 1];
        assert!(matches!(
            verify_model_bundle(&huge, &files(), &verifier(), &policy),
            Err(ModelSignatureError::BundleTooLarge { .. })
        ));
    }

    #[test]
    fn keyless_bundles_are_not_taken_for_key_signatures() {
        let key = SigningKey::generate();
        let mut b: serde_json::Value =
            serde_json::from_slice(&bundle_over(&key, &whole_files(&files()), MODEL_SIGNATURE_PREDICATE_V1))
                .unwrap();
        // A well-formed Fulcio-style certificate for the same key: still not a key signature.
        let leaf = TestCa::new().leaf(&key, 0, 2_000_000_000, "https://ci.example/build", "https://issuer");
        let cert = base64::engine::general_purpose::STANDARD.encode(&leaf.der);
        b["verificationMaterial"] = json!({"certificate": {"rawBytes": cert}, "tlogEntries": []});
        let err =
            verify_model_bundle(&serde_json::to_vec(&b).unwrap(), &files(), &verifier(), &key_policy(&key))
                .unwrap_err();
        assert!(matches!(err, ModelSignatureError::Sigstore(VerifyError::Signer(_))), "{err}");
    }
}
