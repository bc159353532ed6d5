//! Public keys (PEM/SPKI) for ECDSA P-256/P-384, Ed25519 and RSA, and the one signing key vouch makes itself.

use der::Decode;
use signature::hazmat::PrehashVerifier;
use spki::{DecodePublicKey, EncodePublicKey, SubjectPublicKeyInfoOwned};

use crate::digest::{Digest, DigestAlgorithm};

/// Why a key could not be read or a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The PEM or DER could not be decoded.
    #[error("cannot read public key: {0}")]
    Malformed(String),
    /// The key type or curve is not one vouch accepts.
    #[error("unsupported public key algorithm {0}")]
    Unsupported(String),
    /// The signature bytes are not a signature for this key type.
    #[error("malformed {key} signature")]
    MalformedSignature {
        /// Key kind, e.g. `ecdsa-p256`.
        key: &'static str,
    },
    /// The signature is well formed but does not verify.
    #[error("signature does not verify against {key} key {fingerprint}")]
    BadSignature {
        /// Key kind.
        key: &'static str,
        /// SHA-256 of the key's SPKI DER.
        fingerprint: String,
    },
    /// Ed25519 needs the whole message; only a digest was given.
    #[error("{key} cannot verify a signature over a bare digest")]
    NeedsMessage {
        /// Key kind.
        key: &'static str,
    },
}

/// A verification key.
#[derive(Clone, Debug)]
pub enum PublicKey {
    /// ECDSA on NIST P-256 (SHA-256).
    EcdsaP256(p256::ecdsa::VerifyingKey),
    /// ECDSA on NIST P-384 (SHA-384; SHA-256 also accepted, as cosign signs so).
    EcdsaP384(p384::ecdsa::VerifyingKey),
    /// Ed25519 (pure).
    Ed25519(ed25519_dalek::VerifyingKey),
    /// RSA, PKCS#1 v1.5 or PSS with SHA-256.
    Rsa(rsa::RsaPublicKey),
}

const OID_EC: const_oid::ObjectIdentifier = const_oid::db::rfc5912::ID_EC_PUBLIC_KEY;
const OID_P256: const_oid::ObjectIdentifier = const_oid::db::rfc5912::SECP_256_R_1;
const OID_P384: const_oid::ObjectIdentifier = const_oid::db::rfc5912::SECP_384_R_1;
const OID_ED25519: const_oid::ObjectIdentifier = const_oid::db::rfc8410::ID_ED_25519;
const OID_RSA: const_oid::ObjectIdentifier = const_oid::db::rfc5912::RSA_ENCRYPTION;

impl PublicKey {
    /// Read a `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY` (PKCS#1) PEM block.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = pem_rfc7468_decode(pem)?;
        match label.as_str() {
            "PUBLIC KEY" => Self::from_spki_der(&der),
            "RSA PUBLIC KEY" => {
                use rsa::pkcs1::DecodeRsaPublicKey;
                rsa::RsaPublicKey::from_pkcs1_der(&der)
                    .map(Self::Rsa)
                    .map_err(|e| KeyError::Malformed(e.to_string()))
            }
            other => Err(KeyError::Malformed(format!("expected a PUBLIC KEY PEM block, found {other:?}"))),
        }
    }

    /// Read a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki =
            SubjectPublicKeyInfoOwned::from_der(der).map_err(|e| KeyError::Malformed(e.to_string()))?;
        let alg = spki.algorithm.oid;
        let malformed = |e: spki::Error| KeyError::Malformed(e.to_string());
        if alg == OID_EC {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
                .ok_or_else(|| KeyError::Malformed("EC key without a named curve".into()))?;
            if curve == OID_P256 {
                return p256::ecdsa::VerifyingKey::from_public_key_der(der)
                    .map(Self::EcdsaP256)
                    .map_err(malformed);
            }
            if curve == OID_P384 {
                return p384::ecdsa::VerifyingKey::from_public_key_der(der)
                    .map(Self::EcdsaP384)
                    .map_err(malformed);
            }
            return Err(KeyError::Unsupported(format!("EC curve {curve}")));
        }
        if alg == OID_ED25519 {
            return ed25519_dalek::VerifyingKey::from_public_key_der(der)
                .map(Self::Ed25519)
                .map_err(malformed);
        }
        if alg == OID_RSA {
            let key = rsa::RsaPublicKey::from_public_key_der(der).map_err(malformed)?;
            use rsa::traits::PublicKeyParts;
            if key.size() < 256 {
                return Err(KeyError::Unsupported("RSA keys shorter than 2048 bits".into()));
            }
            return Ok(Self::Rsa(key));
        }
        Err(KeyError::Unsupported(alg.to_string()))
    }

    /// The key as DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let der = match self {
            Self::EcdsaP256(k) => k.to_public_key_der(),
            Self::EcdsaP384(k) => k.to_public_key_der(),
            Self::Ed25519(k) => k.to_public_key_der(),
            Self::Rsa(k) => k.to_public_key_der(),
        };
        der.map(|d| d.into_vec()).unwrap_or_default()
    }

    /// The key as a `PUBLIC KEY` PEM block.
    pub fn to_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.to_spki_der())
    }

    /// SHA-256 of the SPKI DER: a stable name for the key in logs, cache keys and messages.
    pub fn fingerprint(&self) -> Digest {
        Digest::sha256_of(&self.to_spki_der())
    }

    /// Short kind name, e.g. `ecdsa-p256`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::EcdsaP256(_) => "ecdsa-p256",
            Self::EcdsaP384(_) => "ecdsa-p384",
            Self::Ed25519(_) => "ed25519",
            Self::Rsa(_) => "rsa",
        }
    }

    fn bad(&self) -> KeyError {
        KeyError::BadSignature { key: self.kind(), fingerprint: self.fingerprint().to_string() }
    }

    /// Verify `sig` over `msg`. ECDSA signatures may be ASN.1 DER (cosign) or fixed-size `r||s`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        match self {
            Self::Ed25519(k) => {
                let sig = ed25519_dalek::Signature::from_slice(sig)
                    .map_err(|_| KeyError::MalformedSignature { key: self.kind() })?;
                k.verify_strict(msg, &sig).map_err(|_| self.bad())
            }
            Self::EcdsaP256(_) => {
                self.verify_prehashed(DigestAlgorithm::Sha256, &DigestAlgorithm::Sha256.hash(msg), sig)
            }
            Self::EcdsaP384(_) => self
                .verify_prehashed(DigestAlgorithm::Sha384, &DigestAlgorithm::Sha384.hash(msg), sig)
                .or_else(|_| {
                    self.verify_prehashed(DigestAlgorithm::Sha256, &DigestAlgorithm::Sha256.hash(msg), sig)
                }),
            Self::Rsa(_) => {
                self.verify_prehashed(DigestAlgorithm::Sha256, &DigestAlgorithm::Sha256.hash(msg), sig)
            }
        }
    }

    /// Verify `sig` over a message known only by its `digest` (hashedrekord with a `sha256:` artifact).
    pub fn verify_prehashed(&self, alg: DigestAlgorithm, digest: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        if digest.len() != alg.hex_len() / 2 {
            return Err(self.bad());
        }
        match self {
            Self::Ed25519(_) => Err(KeyError::NeedsMessage { key: self.kind() }),
            Self::EcdsaP256(k) => {
                let sig = p256::ecdsa::Signature::from_der(sig)
                    .or_else(|_| p256::ecdsa::Signature::from_slice(sig))
                    .map_err(|_| KeyError::MalformedSignature { key: self.kind() })?;
                k.verify_prehash(digest, &sig).map_err(|_| self.bad())
            }
            Self::EcdsaP384(k) => {
                let sig = p384::ecdsa::Signature::from_der(sig)
                    .or_else(|_| p384::ecdsa::Signature::from_slice(sig))
                    .map_err(|_| KeyError::MalformedSignature { key: self.kind() })?;
                k.verify_prehash(digest, &sig).map_err(|_| self.bad())
            }
            Self::Rsa(k) => {
                let ok = match alg {
                    DigestAlgorithm::Sha256 => rsa_verify::<sha2::Sha256>(k, digest, sig),
                    DigestAlgorithm::Sha384 => rsa_verify::<sha2::Sha384>(k, digest, sig),
                    DigestAlgorithm::Sha512 => rsa_verify::<sha2::Sha512>(k, digest, sig),
                };
                if ok {
                    Ok(())
                } else {
                    Err(self.bad())
                }
            }
        }
    }
}

fn rsa_verify<D>(k: &rsa::RsaPublicKey, digest: &[u8], sig: &[u8]) -> bool
where
    D: sha2::Digest
        + der::oid::AssociatedOid
        + sha2::digest::FixedOutputReset
        + Clone
        + Send
        + Sync
        + 'static,
{
    k.verify(rsa::Pkcs1v15Sign::new::<D>(), digest, sig).is_ok()
        || k.verify(rsa::Pss::new::<D>(), digest, sig).is_ok()
}

/// An ECDSA P-256 signing key: what `vouch` uses to sign test artifacts and the demo image.
/// Production signing is cosign's job; vouch verifies.
#[derive(Clone)]
pub struct SigningKey(p256::ecdsa::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret material.
        write!(f, "SigningKey(ecdsa-p256, {})", self.public_key().fingerprint())
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        Self(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng))
    }

    /// Read a PKCS#8 `PRIVATE KEY` PEM.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        use p256::pkcs8::DecodePrivateKey;
        p256::ecdsa::SigningKey::from_pkcs8_pem(pem).map(Self).map_err(|e| KeyError::Malformed(e.to_string()))
    }

    /// The key as PKCS#8 PEM.
    pub fn to_pkcs8_pem(&self) -> String {
        use p256::pkcs8::EncodePrivateKey;
        self.0.to_pkcs8_der().map(|d| pem_encode("PRIVATE KEY", d.as_bytes())).unwrap_or_default()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey::EcdsaP256(*self.0.verifying_key())
    }

    /// Sign `msg` (SHA-256), returning an ASN.1 DER signature as cosign does.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        use signature::Signer;
        let sig: p256::ecdsa::Signature = self.0.sign(msg);
        sig.to_der().as_bytes().to_vec()
    }
}

/// Encode DER as a PEM block with 64-column lines.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Decode the first PEM block in `text`, returning its label and DER.
pub fn pem_rfc7468_decode(text: &str) -> Result<(String, Vec<u8>), KeyError> {
    pem_decode_all(text)?.into_iter().next().ok_or_else(|| KeyError::Malformed("no PEM block found".into()))
}

/// Decode every PEM block in `text` (certificate chains), in order.
pub fn pem_decode_all(text: &str) -> Result<Vec<(String, Vec<u8>)>, KeyError> {
    use base64::Engine;
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end =
            after.find("-----").ok_or_else(|| KeyError::Malformed("unterminated PEM header".into()))?;
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_start
            .find(&end_marker)
            .ok_or_else(|| KeyError::Malformed(format!("missing END {label}")))?;
        let b64: String = body_start[..body_end].chars().filter(|c| !c.is_whitespace()).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| KeyError::Malformed(format!("PEM body: {e}")))?;
        out.push((label.to_owned(), der));
        rest = &body_start[body_end + end_marker.len()..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL_SIGNING_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7+cBuZXxkn9r1PGaZaRPFIrpoyxW
bZYQqBq0XSCYfzJzRbBdD/d1Uq9R7FCqx4eNkj7rLwqp/wDyEkzykOmiiw==
-----END PUBLIC KEY-----
";

    #[test]
    fn reads_independent_p256_key_and_round_trips_pem() {
        let k = PublicKey::from_pem(MODEL_SIGNING_KEY).unwrap();
        assert_eq!(k.kind(), "ecdsa-p256");
        assert_eq!(PublicKey::from_pem(&k.to_pem()).unwrap().fingerprint(), k.fingerprint());
    }

    #[test]
    fn sign_verify_and_reject_tampering() {
        let sk = SigningKey::generate();
        let pk = sk.public_key();
        let sig = sk.sign(b"payload");
        pk.verify(b"payload", &sig).unwrap();
        assert!(matches!(pk.verify(b"payloaD", &sig), Err(KeyError::BadSignature { .. })));
        assert!(matches!(pk.verify(b"payload", b"junk"), Err(KeyError::MalformedSignature { .. })));
        let other = SigningKey::generate().public_key();
        assert!(other.verify(b"payload", &sig).is_err());
        let digest = DigestAlgorithm::Sha256.hash(b"payload");
        pk.verify_prehashed(DigestAlgorithm::Sha256, &digest, &sig).unwrap();
        let sk2 = SigningKey::from_pkcs8_pem(&sk.to_pkcs8_pem()).unwrap();
        assert_eq!(sk2.public_key().fingerprint(), pk.fingerprint());
        assert!(!format!("{sk:?}").contains("PRIVATE"));
    }

    #[test]
    fn ed25519_and_rsa_keys() {
        let ed = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let pk = PublicKey::from_pem(&pem_encode(
            "PUBLIC KEY",
            ed.verifying_key().to_public_key_der().unwrap().as_bytes(),
        ))
        .unwrap();
        use ed25519_dalek::Signer;
        let sig = ed.sign(b"m").to_bytes();
        pk.verify(b"m", &sig).unwrap();
        assert!(pk.verify(b"n", &sig).is_err());
        assert!(matches!(
            pk.verify_prehashed(DigestAlgorithm::Sha256, &[0; 32], &sig),
            Err(KeyError::NeedsMessage { .. })
        ));

        let rsa_key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
        let pk = PublicKey::from_spki_der(rsa_key.to_public_key().to_public_key_der().unwrap().as_bytes())
            .unwrap();
        let digest = DigestAlgorithm::Sha256.hash(b"m");
        let sig = rsa_key.sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest).unwrap();
        pk.verify(b"m", &sig).unwrap();
        assert!(pk.verify(b"x", &sig).is_err());
    }

    #[test]
    fn rejects_garbage_and_unsupported() {
        assert!(matches!(PublicKey::from_pem("nope"), Err(KeyError::Malformed(_))));
        assert!(
            PublicKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err()
        );
    }
}
