//! Notary Project (Notation) signatures: envelopes ([`jws`], [`cose`]), the signed payload ([`payload`]),
//! trust stores and trusted identities ([`trust`]), verification levels ([`level`]) and the checker
//! ([`verify`]) that turns one envelope into a verified signer or a reason why not.
//!
//! A Notation signature is an OCI artifact (`artifactType` [`SIGNATURE_ARTIFACT_TYPE`]) whose subject is the
//! signed manifest and whose single layer is the envelope; [`crate::verify`] finds it among the referrers
//! exactly as it finds Sigstore bundles. Revocation: no OCSP responder or CRL distribution point is reached
//! from a webhook, so certificates are checked only against CRLs the authority carries ([`revocation`]); a
//! certificate without one is recorded as not checked, never as passed.
//!
//! ```no_run
//! use vouch_attest::notation::{verify, CrlStore, ExpectedTarget, NotationAuthority, TrustStore, TrustedIdentity, Level};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let authority = NotationAuthority {
//!     trust_store: TrustStore::from_pem(&std::fs::read_to_string("ca.pem")?)?,
//!     tsa_trust_store: None,
//!     crls: CrlStore::default(),
//!     identities: vec!["x509.subject: C=US, ST=WA, O=Notary, CN=release".parse::<TrustedIdentity>()?],
//!     level: Level::Strict,
//! };
//! let expected = ExpectedTarget {
//!     media_type: "application/vnd.oci.image.manifest.v1+json".into(),
//!     digest: "sha256:19dbd2e48e921426ee8ace4dc892edfb2ecdc1d1a72d5416c83670c30acecef0".parse()?,
//!     size: 481,
//! };
//! let envelope = std::fs::read("signature.jws")?;
//! let verified = verify::verify(verify::JWS_MEDIA_TYPE, &envelope, &expected, &authority, chrono::Utc::now())?;
//! println!("signed by {} ({})", verified.subject, verified.fingerprint);
//! # Ok(())
//! # }
//! ```

pub mod cose;
pub mod envelope;
pub mod jws;
pub mod level;
pub mod payload;
pub mod revocation;
pub mod sign;
#[cfg(test)]
pub(crate) mod test_pki;
pub mod trust;
pub mod verify;

pub use envelope::{Envelope, SignatureAlgorithm, SigningScheme};
pub use level::{Check, CheckAction, Level};
pub use payload::{ExpectedTarget, TargetArtifact};
pub use revocation::CrlStore;
pub use trust::{TrustStore, TrustStoreKind, TrustedIdentity};
pub use verify::{verify, NotationAuthority, VerifiedNotation};

/// `artifactType` of a Notation signature manifest.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.cncf.notary.signature";
/// Largest envelope read (certificate chains and a timestamp token included).
pub const MAX_ENVELOPE_BYTES: usize = 512 * 1024;

/// Why a Notation signature does not verify (or cannot be used).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotationError {
    /// The envelope, a header or the payload is not what the specification defines.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// `JWS envelope`, `COSE envelope`, `payload`, ...
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The envelope's media type is neither JWS nor COSE.
    #[error("unsupported envelope media type {0:?} (expected application/jose+json or application/cose)")]
    UnsupportedMediaType(String),
    /// A header is marked critical that vouch does not process: the specification requires refusing it.
    #[error("unknown critical header {0:?}")]
    UnknownCriticalHeader(String),
    /// The signature over the envelope does not verify, or the signer's key cannot be used (integrity).
    #[error("integrity: {0}")]
    Integrity(String),
    /// The payload names another artifact than the one verified.
    #[error("the signature is for another artifact: targetArtifact {field} is {found}, expected {expected}")]
    TargetMismatch {
        /// `digest`, `size` or `mediaType`.
        field: &'static str,
        /// What the manifest being verified has.
        expected: String,
        /// What the payload says.
        found: String,
    },
    /// The certificate chain does not lead to the trust store, or the signer is not a trusted identity.
    #[error("authenticity: {0}")]
    Authenticity(String),
    /// The certificates were not valid at the signing time that could be established.
    #[error("authentic timestamp: {0}")]
    AuthenticTimestamp(String),
    /// The signature's `io.cncf.notary.expiry` has passed.
    #[error("expiry: the signature expired at {expiry}")]
    Expired {
        /// The signed expiry.
        expiry: chrono::DateTime<chrono::Utc>,
    },
    /// A certificate is revoked, or a CRL given for its issuer cannot be used (revocation unavailable).
    #[error("revocation: {0}")]
    Revocation(String),
    /// A trust store, CRL or identity cannot be used.
    #[error("invalid Notation trust configuration: {0}")]
    Config(String),
}

fn malformed(what: &'static str, reason: impl std::fmt::Display) -> NotationError {
    NotationError::Malformed { what, reason: reason.to_string() }
}
