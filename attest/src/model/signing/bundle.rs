//! The first check of a model signature: the Sigstore bundle, verified by vouch's Sigstore verifier under
//! the authority's policy, yielding the signed in-toto statement.

use crate::digest::Digest;
use crate::intoto::Statement;
use crate::sigstore_verify::{Artifact, Bundle, BundleContent, VerificationPolicy, VerifiedBundle, Verifier};

use super::{ModelSignatureError, MAX_BUNDLE_BYTES, MODEL_SIGNATURE_PREDICATE_V1};

type Result<T, E = ModelSignatureError> = std::result::Result<T, E>;

/// Verify `bundle_json` under `policy` and return what the verifier established with the signed
/// statement, which is a model-signing v1.0 statement with one SHA-256 subject.
pub(super) fn verify_bundle(
    bundle_json: &[u8],
    verifier: &Verifier,
    policy: &VerificationPolicy,
) -> Result<(VerifiedBundle, Statement)> {
    if bundle_json.len() > MAX_BUNDLE_BYTES {
        return Err(ModelSignatureError::BundleTooLarge { size: bundle_json.len(), max: MAX_BUNDLE_BYTES });
    }
    let bundle = Bundle::from_json(bundle_json).map_err(ModelSignatureError::Bundle)?;
    let BundleContent::Dsse(envelope) = &bundle.content else {
        return Err(ModelSignatureError::NotDsse);
    };
    // Read the (not yet verified) statement only to name the subject the verifier must find in it and to
    // fail fast on other predicates; everything is re-read from the verified payload below.
    let payload = envelope.payload_bytes().map_err(payload_error)?;
    let unverified = Statement::from_json(&payload).map_err(payload_error)?;
    check_predicate_type(&unverified)?;
    let subject = subject_digest(&unverified)?;
    let verified =
        verifier.verify(&bundle, Artifact::Digest(subject), policy).map_err(ModelSignatureError::Sigstore)?;
    let (_, verified_payload) = verified.dsse_payload.as_ref().ok_or_else(|| {
        ModelSignatureError::Payload { reason: "the verifier returned no DSSE payload".into() }
    })?;
    let statement = Statement::from_json(verified_payload).map_err(payload_error)?;
    check_predicate_type(&statement)?;
    Ok((verified, statement))
}

fn payload_error(e: impl std::fmt::Display) -> ModelSignatureError {
    ModelSignatureError::Payload { reason: e.to_string() }
}

fn check_predicate_type(statement: &Statement) -> Result<()> {
    if statement.predicate_type == MODEL_SIGNATURE_PREDICATE_V1 {
        return Ok(());
    }
    Err(ModelSignatureError::WrongPredicateType {
        found: statement.predicate_type.chars().take(200).collect(),
    })
}

/// The statement's one subject digest, which must be SHA-256.
pub(super) fn subject_digest(statement: &Statement) -> Result<Digest> {
    let [subject] = statement.subjects.as_slice() else {
        return Err(payload_error(format_args!(
            "expected exactly one subject, found {}",
            statement.subjects.len()
        )));
    };
    let hex = subject.digest.get("sha256").ok_or_else(|| payload_error("subject has no sha256 digest"))?;
    format!("sha256:{}", hex.to_ascii_lowercase())
        .parse()
        .map_err(|e| payload_error(format_args!("subject digest: {e}")))
}
