//! Verifying one cosign layer or one bundle referrer against an artifact digest (offline: the material
//! has been fetched). Every signature check runs through the Sigstore bundle verifier.

use std::collections::BTreeMap;

use super::layers::SignatureLayer;
use super::payload::SimpleSigningPayload;
use super::{CosignError, COSIGN_SIGN_PREDICATE_V1, DSSE_MEDIA_TYPE, SIMPLE_SIGNING_MEDIA_TYPE};
use crate::digest::Digest;
use crate::dsse::Envelope;
use crate::intoto::Statement;
use crate::sigstore_verify::{
    Artifact, Authority, Bundle, BundleContent, IdentityError, VerificationPolicy, VerifiedBundle, Verifier,
    VerifyError,
};

/// A cosign image signature that verified.
#[derive(Debug, Clone)]
pub struct VerifiedSignature {
    /// What the bundle verifier established (signer, log entries, times).
    pub verified: VerifiedBundle,
    /// The signed payload (its digest is the artifact's).
    pub payload: SimpleSigningPayload,
}

/// A cosign attestation that verified.
#[derive(Debug, Clone)]
pub struct VerifiedAttestation {
    /// What the bundle verifier established.
    pub verified: VerifiedBundle,
    /// The statement, whose subject covers the artifact.
    pub statement: Statement,
}

/// What a verified bundle referrer says about the artifact.
#[derive(Debug, Clone)]
pub enum BundleClaim {
    /// A cosign v3 image signature (`https://sigstore.dev/cosign/sign/v1` statement), with the signed
    /// annotations of the subject that names the artifact.
    Signature(BTreeMap<String, serde_json::Value>),
    /// Any other in-toto statement about the artifact.
    Attestation(Statement),
}

fn is_keyless(policy: &VerificationPolicy) -> bool {
    matches!(policy.authority, Authority::Keyless { .. })
}

/// Checks cosign needs before the bundle verifier: a keyless authority needs a certificate and a log entry.
fn precheck(layer: &SignatureLayer, policy: &VerificationPolicy) -> Result<bool, CosignError> {
    let keyless = is_keyless(policy);
    if keyless && layer.certificate.is_none() {
        return Err(CosignError::NoCertificate);
    }
    if policy.require_tlog && layer.rekor_bundle.is_none() {
        return Err(CosignError::MissingTlogEntry);
    }
    Ok(keyless)
}

/// Verify a `.sig` layer: the signature over the payload blob (key or certificate, per `policy`), its log
/// entry and timestamps, then that the payload names `artifact` — a signature copied to another image fails.
pub fn verify_signature_layer(
    layer: &SignatureLayer,
    artifact: &Digest,
    verifier: &Verifier,
    policy: &VerificationPolicy,
) -> Result<VerifiedSignature, CosignError> {
    if layer.descriptor.media_type != SIMPLE_SIGNING_MEDIA_TYPE {
        return Err(CosignError::Unexpected {
            what: "signature layer",
            reason: format!("media type {:?}", layer.descriptor.media_type),
        });
    }
    let keyless = precheck(layer, policy)?;
    let bundle = layer.to_bundle(layer.message_signature()?, keyless)?;
    let verified = verifier.verify(&bundle, Artifact::Bytes(&layer.blob), policy).map_err(|e| {
        match (&e, logged_payload_hash(layer)) {
            // The log recorded what was signed: a different blob now means it was changed after signing.
            (VerifyError::Signature(_), Some(logged)) if logged != Digest::sha256_of(&layer.blob) => {
                CosignError::PayloadChanged { logged, stored: Digest::sha256_of(&layer.blob) }
            }
            _ => explain(e, policy),
        }
    })?;
    let payload = SimpleSigningPayload::from_json(&layer.blob)?;
    payload.require_digest(artifact)?;
    Ok(VerifiedSignature { verified, payload })
}

/// Verify an `.att` layer: the DSSE envelope's signature, log entry and timestamps, and that the in-toto
/// statement's subject covers `artifact`.
pub fn verify_attestation_layer(
    layer: &SignatureLayer,
    artifact: &Digest,
    verifier: &Verifier,
    policy: &VerificationPolicy,
) -> Result<VerifiedAttestation, CosignError> {
    if layer.descriptor.media_type != DSSE_MEDIA_TYPE {
        return Err(CosignError::Unexpected {
            what: "attestation layer",
            reason: format!("media type {:?}", layer.descriptor.media_type),
        });
    }
    let keyless = precheck(layer, policy)?;
    let envelope = Envelope::from_json(&layer.blob)?;
    let bundle = layer.to_bundle(BundleContent::Dsse(envelope), keyless)?;
    let verified = verifier
        .verify(&bundle, Artifact::Digest(artifact.clone()), policy)
        .map_err(|e| explain(e, policy))?;
    let statement = statement_of(&verified)?;
    statement.require_subject(artifact)?;
    Ok(VerifiedAttestation { verified, statement })
}

/// Verify a Sigstore bundle found as a referrer of `artifact`. cosign v3 signs an image with a DSSE
/// in-toto statement whose subject is the image digest (predicate `https://sigstore.dev/cosign/sign/v1`);
/// that is what is accepted here. A message-signature bundle cannot be bound to the image and is rejected.
pub fn verify_bundle_json(
    bytes: &[u8],
    artifact: &Digest,
    verifier: &Verifier,
    policy: &VerificationPolicy,
) -> Result<(VerifiedBundle, BundleClaim), CosignError> {
    let bundle = Bundle::from_json(bytes)?;
    if !matches!(bundle.content, BundleContent::Dsse(_)) {
        return Err(CosignError::Unexpected {
            what: "bundle referrer",
            reason: "a message-signature bundle does not name the image; cosign v3 image signatures are DSSE statements"
                .into(),
        });
    }
    let verified = verifier
        .verify(&bundle, Artifact::Digest(artifact.clone()), policy)
        .map_err(|e| explain(e, policy))?;
    let statement = statement_of(&verified)?;
    statement.require_subject(artifact)?;
    let claim = if statement.predicate_type == COSIGN_SIGN_PREDICATE_V1 {
        let subject = statement.subjects.iter().find(|s| s.has_digest(artifact));
        BundleClaim::Signature(subject.map(|s| s.annotations.clone()).unwrap_or_default())
    } else {
        BundleClaim::Attestation(statement)
    };
    Ok((verified, claim))
}

/// The payload hash a hashedrekord entry recorded (only to explain a failure, never to accept).
fn logged_payload_hash(layer: &SignatureLayer) -> Option<Digest> {
    let body: serde_json::Value = serde_json::from_slice(&layer.rekor_bundle.as_ref()?.body).ok()?;
    let hash = body.pointer("/spec/data/hash")?;
    if hash.get("algorithm")?.as_str()? != "sha256" {
        return None;
    }
    format!("sha256:{}", hash.get("value")?.as_str()?).parse().ok()
}

/// Say whether the subject or the issuer was not accepted: the two are different misconfigurations.
fn explain(e: VerifyError, policy: &VerificationPolicy) -> CosignError {
    if let (
        VerifyError::Identity(IdentityError::Mismatch { subject, issuer, expected }),
        Authority::Keyless { identities },
    ) = (&e, &policy.authority)
    {
        let (subject, issuer, expected) = (subject.clone(), issuer.clone(), expected.clone());
        if identities.iter().any(|i| i.subject.matches(&subject)) {
            return CosignError::IssuerNotAccepted { subject, issuer, expected };
        }
        return CosignError::IdentityNotAccepted { subject, issuer, expected };
    }
    CosignError::Sigstore(e)
}

fn statement_of(verified: &VerifiedBundle) -> Result<Statement, CosignError> {
    let (_, payload) = verified
        .dsse_payload
        .as_ref()
        .ok_or_else(|| CosignError::Unexpected { what: "verified envelope", reason: "no payload".into() })?;
    Ok(Statement::from_json(payload)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosign::layers::layer_annotations;
    use crate::keys::SigningKey;
    use crate::registry::Descriptor;
    use crate::trust_root::TrustRoot;

    fn verifier() -> Verifier {
        Verifier::new(TrustRoot::public_good().unwrap())
    }

    fn layer(media_type: &str, blob: &[u8], annotations: BTreeMap<String, String>) -> SignatureLayer {
        let d = Descriptor {
            media_type: media_type.to_owned(),
            digest: Digest::sha256_of(blob),
            size: blob.len() as u64,
            artifact_type: None,
            annotations,
            platform: None,
        };
        SignatureLayer::from_parts(d, blob.to_vec()).unwrap()
    }

    fn signed(key: &SigningKey, image: &Digest) -> SignatureLayer {
        let r = format!("reg.example/app@{image}").parse().unwrap();
        let payload = SimpleSigningPayload::for_artifact(&r, BTreeMap::new()).unwrap().to_json();
        let sig = key.sign(&payload);
        layer(SIMPLE_SIGNING_MEDIA_TYPE, &payload, layer_annotations(&sig, None, None, None))
    }

    #[test]
    fn key_signature_verifies_and_binds_to_the_digest() {
        let key = SigningKey::generate();
        let image = Digest::sha256_of(b"image");
        let policy = VerificationPolicy::key(key.public_key()).without_tlog();
        let l = signed(&key, &image);
        let ok = verify_signature_layer(&l, &image, &verifier(), &policy).unwrap();
        assert_eq!(ok.payload.manifest_digest, image);
        let other = Digest::sha256_of(b"other image");
        let err = verify_signature_layer(&l, &other, &verifier(), &policy).unwrap_err();
        assert!(matches!(err, CosignError::PayloadDigestMismatch { .. }), "{err}");
    }

    #[test]
    fn wrong_key_tlog_and_keyless_needs_are_distinct_failures() {
        let key = SigningKey::generate();
        let image = Digest::sha256_of(b"image");
        let l = signed(&key, &image);
        let wrong = VerificationPolicy::key(SigningKey::generate().public_key()).without_tlog();
        let err = verify_signature_layer(&l, &image, &verifier(), &wrong).unwrap_err();
        assert!(matches!(err, CosignError::Sigstore(_)), "{err}");
        let with_tlog = VerificationPolicy::key(key.public_key());
        let err = verify_signature_layer(&l, &image, &verifier(), &with_tlog).unwrap_err();
        assert!(matches!(err, CosignError::MissingTlogEntry), "{err}");
        let keyless = VerificationPolicy::keyless(vec![]);
        let err = verify_signature_layer(&l, &image, &verifier(), &keyless).unwrap_err();
        assert!(matches!(err, CosignError::NoCertificate), "{err}");
    }

    #[test]
    fn key_attestation_verifies_subject() {
        let key = SigningKey::generate();
        let image = Digest::sha256_of(b"image");
        let statement = serde_json::json!({
            "_type": crate::intoto::STATEMENT_V1,
            "subject": [{"name": "reg.example/app", "digest": {"sha256": image.hex()}}],
            "predicateType": crate::intoto::SLSA_PROVENANCE_V1,
            "predicate": {"buildDefinition": {"buildType": "https://example/build"}, "runDetails": {"builder": {"id": "https://example/builder"}}}
        });
        let env =
            Envelope::sign(crate::dsse::IN_TOTO_PAYLOAD_TYPE, &serde_json::to_vec(&statement).unwrap(), &key);
        let l = layer(DSSE_MEDIA_TYPE, &serde_json::to_vec(&env).unwrap(), BTreeMap::new());
        let policy = VerificationPolicy::key(key.public_key()).without_tlog();
        let ok = verify_attestation_layer(&l, &image, &verifier(), &policy).unwrap();
        assert_eq!(ok.statement.predicate_type, crate::intoto::SLSA_PROVENANCE_V1);
        let err = verify_attestation_layer(&l, &Digest::sha256_of(b"x"), &verifier(), &policy).unwrap_err();
        assert!(err.to_string().contains("does not cover") || err.to_string().contains("subject"), "{err}");
    }
}
