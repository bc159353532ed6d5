//! DSSE envelopes (Dead Simple Signing Envelope): the wrapper of in-toto attestations and model signatures.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::keys::{KeyError, PublicKey};

/// Largest payload vouch will decode from an envelope.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;
/// Most signatures vouch tries on one envelope (each is a public-key operation).
pub const MAX_SIGNATURES: usize = 16;

/// Why an envelope could not be read or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    /// Not a DSSE envelope.
    #[error("malformed DSSE envelope: {0}")]
    Malformed(String),
    /// The envelope has no signatures.
    #[error("DSSE envelope has no signatures")]
    Unsigned,
    /// No signature verifies with the key.
    #[error("no DSSE signature verifies: {0}")]
    BadSignature(KeyError),
    /// More signatures than anyone signs with; refused before trying them one by one.
    #[error("DSSE envelope has {count} signatures, more than the limit of {max}")]
    TooManySignatures {
        /// Signatures in the envelope.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// One signature in an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DsseSignature {
    /// Base64 signature over the PAE.
    pub sig: String,
    /// Optional key id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
}

/// A DSSE envelope as JSON carries it (payload base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 payload.
    pub payload: String,
    /// Payload type, e.g. `application/vnd.in-toto+json`.
    pub payload_type: String,
    /// Signatures over `PAE(payloadType, payload)`.
    #[serde(default)]
    pub signatures: Vec<DsseSignature>,
}

/// The in-toto payload type.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

impl Envelope {
    /// Parse from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DsseError> {
        serde_json::from_slice(bytes).map_err(|e| DsseError::Malformed(e.to_string()))
    }

    /// The decoded payload bytes.
    pub fn payload_bytes(&self) -> Result<Vec<u8>, DsseError> {
        if self.payload.len() > MAX_PAYLOAD_BYTES * 4 / 3 + 4 {
            return Err(DsseError::Malformed("payload too large".into()));
        }
        base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .map_err(|e| DsseError::Malformed(format!("payload is not base64: {e}")))
    }

    /// The decoded signatures.
    pub fn signature_bytes(&self) -> Result<Vec<Vec<u8>>, DsseError> {
        self.signatures
            .iter()
            .map(|s| {
                base64::engine::general_purpose::STANDARD
                    .decode(&s.sig)
                    .map_err(|e| DsseError::Malformed(format!("signature is not base64: {e}")))
            })
            .collect()
    }

    /// The bytes that are signed: `PAE(payloadType, payload)`.
    pub fn pae(&self) -> Result<Vec<u8>, DsseError> {
        Ok(pae(&self.payload_type, &self.payload_bytes()?))
    }

    /// Verify that at least one signature verifies with `key`; returns the decoded payload.
    pub fn verify(&self, key: &PublicKey) -> Result<Vec<u8>, DsseError> {
        if self.signatures.is_empty() {
            return Err(DsseError::Unsigned);
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(DsseError::TooManySignatures { count: self.signatures.len(), max: MAX_SIGNATURES });
        }
        let payload = self.payload_bytes()?;
        let msg = pae(&self.payload_type, &payload);
        let mut last = None;
        for sig in self.signature_bytes()? {
            match key.verify(&msg, &sig) {
                Ok(()) => return Ok(payload),
                Err(e) => last = Some(e),
            }
        }
        Err(DsseError::BadSignature(last.unwrap_or(KeyError::MalformedSignature { key: key.kind() })))
    }

    /// Build a signed envelope with vouch's own key (tests, demo).
    pub fn sign(payload_type: &str, payload: &[u8], key: &crate::keys::SigningKey) -> Self {
        let sig = key.sign(&pae(payload_type, payload));
        Self {
            payload: base64::engine::general_purpose::STANDARD.encode(payload),
            payload_type: payload_type.to_owned(),
            signatures: vec![DsseSignature {
                sig: base64::engine::general_purpose::STANDARD.encode(sig),
                keyid: String::new(),
            }],
        }
    }
}

/// DSSE v1 pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload_type.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    #[test]
    fn pae_matches_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn sign_verify_and_detect_swaps() {
        let k = SigningKey::generate();
        let env = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{}", &k);
        assert_eq!(env.verify(&k.public_key()).unwrap(), b"{}");
        let mut other_type = env.clone();
        other_type.payload_type = "text/plain".into();
        assert!(matches!(other_type.verify(&k.public_key()), Err(DsseError::BadSignature(_))));
        let mut unsigned = env.clone();
        unsigned.signatures.clear();
        assert_eq!(unsigned.verify(&k.public_key()), Err(DsseError::Unsigned));
        assert!(Envelope::from_json(b"[]").is_err());
    }
}
