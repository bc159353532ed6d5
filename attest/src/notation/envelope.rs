//! What JWS and COSE envelopes have in common once parsed: the signed attributes, the payload, the
//! signature with what it covers, the certificate chain and an optional RFC 3161 countersignature.

use chrono::{DateTime, Utc};

use super::{malformed, NotationError};
use crate::digest::DigestAlgorithm;
use crate::keys::PublicKey;

/// Media type of the signed payload (`cty` / COSE content type).
pub const PAYLOAD_CONTENT_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";

/// Signed attribute names (JWS protected header keys, COSE protected header labels).
pub const SIGNING_SCHEME: &str = "io.cncf.notary.signingScheme";
/// Signing time asserted by the signer (`notary.x509`).
pub const SIGNING_TIME: &str = "io.cncf.notary.signingTime";
/// Signing time asserted by a signing authority (`notary.x509.signingAuthority`).
pub const AUTHENTIC_SIGNING_TIME: &str = "io.cncf.notary.authenticSigningTime";
/// When the signature stops being valid.
pub const EXPIRY: &str = "io.cncf.notary.expiry";

/// Critical attributes vouch understands. Verification plugins (`io.cncf.notary.verificationPlugin`) are
/// not run here, so a signature that requires one is refused as having an unknown critical header.
pub const UNDERSTOOD_CRITICAL: [&str; 3] = [SIGNING_SCHEME, AUTHENTIC_SIGNING_TIME, EXPIRY];

/// Which trust model the signature was made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningScheme {
    /// `notary.x509`: a CA-issued certificate; signing time is only asserted (a timestamp makes it authentic).
    X509,
    /// `notary.x509.signingAuthority`: a signing authority vouches for `authenticSigningTime`.
    X509SigningAuthority,
}

impl SigningScheme {
    /// Parse the attribute value.
    pub fn parse(s: &str) -> Result<Self, NotationError> {
        match s {
            "notary.x509" => Ok(Self::X509),
            "notary.x509.signingAuthority" => Ok(Self::X509SigningAuthority),
            other => Err(malformed("signed attributes", format!("unknown signing scheme {other:?}"))),
        }
    }

    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X509 => "notary.x509",
            Self::X509SigningAuthority => "notary.x509.signingAuthority",
        }
    }
}

/// The signature algorithms the specification allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// ECDSA P-521 with SHA-512 (no P-521 keys are supported: such signatures are refused).
    Es512,
}

impl SignatureAlgorithm {
    /// From a JWS `alg`.
    pub fn from_jws(alg: &str) -> Result<Self, NotationError> {
        Ok(match alg {
            "PS256" => Self::Ps256,
            "PS384" => Self::Ps384,
            "PS512" => Self::Ps512,
            "ES256" => Self::Es256,
            "ES384" => Self::Es384,
            "ES512" => Self::Es512,
            other => {
                return Err(NotationError::Integrity(format!("unsupported signature algorithm {other:?}")))
            }
        })
    }

    /// The JWS name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Es512 => "ES512",
        }
    }

    fn digest(self) -> DigestAlgorithm {
        match self {
            Self::Ps256 | Self::Es256 => DigestAlgorithm::Sha256,
            Self::Ps384 | Self::Es384 => DigestAlgorithm::Sha384,
            Self::Ps512 | Self::Es512 => DigestAlgorithm::Sha512,
        }
    }

    /// Verify `sig` over `msg` with `key` under exactly this algorithm.
    pub fn verify(self, key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), NotationError> {
        let r = match self {
            Self::Ps256 | Self::Ps384 | Self::Ps512 => key.verify_rsa_pss(self.digest(), msg, sig),
            Self::Es256 | Self::Es384 | Self::Es512 => key.verify_ecdsa(self.digest(), msg, sig),
        };
        r.map_err(|e| NotationError::Integrity(format!("{} signature: {e}", self.name())))
    }
}

/// The signed attributes vouch reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAttributes {
    /// `io.cncf.notary.signingScheme`.
    pub signing_scheme: SigningScheme,
    /// `io.cncf.notary.signingTime` (`notary.x509`).
    pub signing_time: Option<DateTime<Utc>>,
    /// `io.cncf.notary.authenticSigningTime` (`notary.x509.signingAuthority`).
    pub authentic_signing_time: Option<DateTime<Utc>>,
    /// `io.cncf.notary.expiry`.
    pub expiry: Option<DateTime<Utc>>,
}

impl SignedAttributes {
    /// Check the attributes against the critical list and the scheme: every critical name understood and
    /// present, the scheme (and expiry / authentic signing time when present) marked critical, and the
    /// time attribute the scheme requires present.
    pub fn validate(&self, critical: &[String], present: &dyn Fn(&str) -> bool) -> Result<(), NotationError> {
        for (i, name) in critical.iter().enumerate() {
            if !UNDERSTOOD_CRITICAL.contains(&name.as_str()) {
                return Err(NotationError::UnknownCriticalHeader(name.clone()));
            }
            if critical[..i].contains(name) {
                return Err(malformed("signed attributes", format!("{name:?} is listed twice as critical")));
            }
            if !present(name) {
                return Err(malformed("signed attributes", format!("critical {name:?} is missing")));
            }
        }
        let must_be_critical = [
            (SIGNING_SCHEME, true),
            (EXPIRY, self.expiry.is_some()),
            (AUTHENTIC_SIGNING_TIME, self.authentic_signing_time.is_some()),
        ];
        for (name, required) in must_be_critical {
            if required && !critical.iter().any(|c| c == name) {
                return Err(malformed("signed attributes", format!("{name:?} is not marked critical")));
            }
        }
        match self.signing_scheme {
            SigningScheme::X509 if self.signing_time.is_none() => {
                Err(malformed("signed attributes", "notary.x509 requires io.cncf.notary.signingTime"))
            }
            SigningScheme::X509SigningAuthority if self.authentic_signing_time.is_none() => Err(malformed(
                "signed attributes",
                "notary.x509.signingAuthority requires io.cncf.notary.authenticSigningTime",
            )),
            _ => Ok(()),
        }
    }
}

/// A parsed envelope, JWS or COSE: nothing in it is verified yet.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The signature algorithm the protected header names.
    pub algorithm: SignatureAlgorithm,
    /// The signed attributes.
    pub attributes: SignedAttributes,
    /// The payload bytes (JSON `{"targetArtifact": ...}`).
    pub payload: Vec<u8>,
    /// Exactly the bytes the signature covers (JWS signing input, COSE Sig_structure).
    pub signing_input: Vec<u8>,
    /// The signature value (for JWS ECDSA: fixed-size `r||s`).
    pub signature: Vec<u8>,
    /// DER certificates, the signing certificate first.
    pub certificates: Vec<Vec<u8>>,
    /// An RFC 3161 timestamp token over [`Envelope::signature`], if any (unsigned attribute).
    pub timestamp: Option<Vec<u8>>,
}

/// Most certificates read from one envelope.
pub const MAX_CHAIN_CERTIFICATES: usize = 10;

/// Parse an RFC 3339 time attribute.
pub fn parse_time(name: &str, value: &str) -> Result<DateTime<Utc>, NotationError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| malformed("signed attributes", format!("{name} {value:?}: {e}")))
}
