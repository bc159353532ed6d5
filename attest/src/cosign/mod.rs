//! cosign's registry formats: signatures (`sha256-<hex>.sig`), attestations (`.att`), SBOM attachments
//! (`.sbom`), and Sigstore bundles stored as OCI 1.1 referrers (cosign v3).
//!
//! Verification converts every cosign signature layer into a Sigstore [`crate::sigstore_verify::Bundle`]
//! and runs it through the one bundle [`crate::sigstore_verify::Verifier`], so chain, identity, SCT, SET
//! and timestamp checks are the same code for every format. What cosign adds on top is checked here: the
//! simple-signing payload must name the digest being verified, and an attestation's statement must cover it.
//!
//! Image indexes: a signature is about exactly the manifest whose digest its payload names. Verifying an
//! index digest therefore accepts a valid signature on the index itself (as `cosign verify` does);
//! signatures on the platform manifests are checked per platform by
//! [`crate::verify::ArtifactVerifier::verify_platforms`], never borrowed across the two levels.

mod attach;
mod layers;
mod payload;
mod sign;
mod verify;

pub use attach::{attach_sbom, push_bundle_referrer, push_notation_signature, push_sbom_referrer};
pub use layers::{
    layer_annotations, RekorBundle, SignatureLayer, BUNDLE_ANNOTATION, CERTIFICATE_ANNOTATION,
    CHAIN_ANNOTATION, PREDICATE_TYPE_ANNOTATION, RFC3161_ANNOTATION, SIGNATURE_ANNOTATION,
};
pub use payload::{SimpleSigningPayload, SIMPLE_SIGNING_TYPE};
pub use sign::{
    attest_with_key, push_attestation_layer, push_signature_layer, sign_image_with_key, signature_tag,
};
pub use verify::{
    verify_attestation_layer, verify_bundle_json, verify_signature_layer, BundleClaim, VerifiedAttestation,
    VerifiedSignature,
};

use crate::digest::Digest;

/// Media type of a simple-signing payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Media type of an attestation layer (a DSSE envelope).
pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Artifact type (and layer media type) of a Sigstore bundle v0.3 referrer.
pub const BUNDLE_ARTIFACT_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Predicate type of a cosign v3 image signature (a DSSE in-toto statement naming the image digest).
pub const COSIGN_SIGN_PREDICATE_V1: &str = "https://sigstore.dev/cosign/sign/v1";
/// Tag suffix of signatures.
pub const SIGNATURE_SUFFIX: &str = "sig";
/// Tag suffix of attestations.
pub const ATTESTATION_SUFFIX: &str = "att";
/// Tag suffix of SBOM attachments.
pub const SBOM_SUFFIX: &str = "sbom";
/// Largest simple-signing payload blob fetched.
pub const MAX_SIGNATURE_BLOB_BYTES: usize = payload::MAX_PAYLOAD_BYTES;
/// Largest DSSE envelope or bundle blob fetched.
pub const MAX_ENVELOPE_BLOB_BYTES: usize = 32 * 1024 * 1024;

/// Why a cosign signature, attestation or attachment could not be made or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum CosignError {
    /// The reference has no digest; cosign material is attached to digests only.
    #[error("{reference} is not pinned to a digest")]
    NotPinned {
        /// The reference.
        reference: String,
    },
    /// Something read from the registry is larger than allowed.
    #[error("{what} larger than {limit} bytes")]
    TooLarge {
        /// What was read.
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// The simple-signing payload is malformed.
    #[error("malformed simple signing payload: {reason}")]
    BadPayload {
        /// What is wrong.
        reason: String,
    },
    /// The signed payload is about another image.
    #[error("signed payload names image {signed}, not the verified {expected}")]
    PayloadDigestMismatch {
        /// The digest in the payload.
        signed: Digest,
        /// The digest being verified.
        expected: Digest,
    },
    /// The signature does not verify and the Rekor entry shows a different payload was signed.
    #[error("payload {stored} differs from the payload {logged} recorded in the transparency log: changed after signing")]
    PayloadChanged {
        /// SHA-256 of the payload in the log entry.
        logged: Digest,
        /// SHA-256 of the payload stored in the registry.
        stored: Digest,
    },
    /// A layer annotation is malformed.
    #[error("malformed annotation {annotation}: {reason}")]
    BadAnnotation {
        /// The annotation key.
        annotation: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A keyless authority was asked, but the signature carries no certificate.
    #[error("signature has no signing certificate (signed with a key), but a keyless identity is required")]
    NoCertificate,
    /// No Rekor entry, but the policy requires one (always for keyless).
    #[error("signature has no transparency log entry (no Rekor bundle annotation), and one is required")]
    MissingTlogEntry,
    /// The layer, manifest or bundle is not what cosign writes.
    #[error("unexpected {what}: {reason}")]
    Unexpected {
        /// What was looked at.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The certificate's subject (SAN) is not an accepted identity.
    #[error(
        "certificate identity {subject:?} (issuer {issuer:?}) is not an accepted signer; expected {expected}"
    )]
    IdentityNotAccepted {
        /// The certificate's SAN.
        subject: String,
        /// The certificate's OIDC issuer.
        issuer: String,
        /// The accepted identities.
        expected: String,
    },
    /// The subject is accepted, but not from this OIDC issuer.
    #[error("certificate identity {subject:?} was issued by OIDC issuer {issuer:?}, which is not accepted for it; expected {expected}")]
    IssuerNotAccepted {
        /// The certificate's SAN.
        subject: String,
        /// The certificate's OIDC issuer.
        issuer: String,
        /// The accepted identities.
        expected: String,
    },
    /// The Sigstore bundle verifier rejected it (message names the failed check).
    #[error("{0}")]
    Sigstore(#[from] crate::sigstore_verify::VerifyError),
    /// A DSSE envelope is malformed.
    #[error("malformed DSSE envelope: {0}")]
    Envelope(#[from] crate::dsse::DsseError),
    /// The in-toto statement is malformed or about another artifact.
    #[error("{0}")]
    Statement(#[from] crate::intoto::InTotoError),
    /// The attestation has another predicate type than the one required.
    #[error("attestation predicate type is {found:?}, not {wanted:?}")]
    PredicateType {
        /// Found.
        found: String,
        /// Required.
        wanted: String,
    },
    /// A Sigstore bundle is malformed.
    #[error("malformed Sigstore bundle: {0}")]
    Bundle(#[from] crate::sigstore_verify::BundleError),
    /// An SBOM is malformed or invalid.
    #[error("{0}")]
    Sbom(#[from] crate::sbom::SbomError),
    /// The registry failed.
    #[error("{0}")]
    Registry(#[from] crate::registry::RegistryError),
}
