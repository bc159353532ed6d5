//! Public keys (PEM/SPKI) for ECDSA P-256/P-384, Ed25519 and RSA, verified with aws-lc-rs, and the one
//! signing key vouch makes itself.

use std::sync::{Arc, OnceLock};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ParsedPublicKey, VerificationAlgorithm};
use der::{Decode, Encode, Reader};
use spki::{EncodePublicKey, SubjectPublicKeyInfoOwned};

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

/// The algorithm family of a verification key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 (SHA-256).
    EcdsaP256,
    /// ECDSA on NIST P-384 (SHA-384; SHA-256 also accepted, as cosign signs so).
    EcdsaP384,
    /// Ed25519 (pure).
    Ed25519,
    /// RSA (at least 2048 bits), PKCS#1 v1.5 or PSS.
    Rsa,
}

impl KeyAlgorithm {
    /// Short kind name, e.g. `ecdsa-p256`.
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
            Self::Ed25519 => "ed25519",
            Self::Rsa => "rsa",
        }
    }
}

/// A verification key. Signatures are checked by aws-lc-rs (the crypto provider rustls already uses);
/// the key is parsed into aws-lc-rs form once per scheme it is used with, and clones share that work, so a
/// key kept in a trust root is parsed once for the life of the root.
#[derive(Clone)]
pub struct PublicKey(Arc<KeyMaterial>);

struct KeyMaterial {
    algorithm: KeyAlgorithm,
    /// SubjectPublicKeyInfo DER, canonical (as aws-lc-rs re-encodes it).
    spki: Vec<u8>,
    /// The subjectPublicKey bits (an Ed25519 key's 32 bytes; checkpoint key hints use them).
    raw: Vec<u8>,
    fingerprint: Digest,
    /// aws-lc-rs keys, one slot per [`Scheme::slot`], filled on first use.
    parsed: [OnceLock<Option<ParsedPublicKey>>; SCHEME_SLOTS],
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({}, {})", self.kind(), self.fingerprint())
    }
}

/// How a signature is checked: the padding or curve scheme and its digest.
#[derive(Clone, Copy, Debug)]
enum Scheme {
    /// ECDSA, ASN.1 DER signature (fixed-size `r||s` is converted first).
    Ecdsa(DigestAlgorithm),
    RsaPkcs1(DigestAlgorithm),
    /// RSASSA-PSS with MGF1 of the same digest and a salt as long as the digest.
    RsaPss(DigestAlgorithm),
    Ed25519,
}

const SCHEME_SLOTS: usize = 6;

fn digest_index(d: DigestAlgorithm) -> usize {
    match d {
        DigestAlgorithm::Sha256 => 0,
        DigestAlgorithm::Sha384 => 1,
        DigestAlgorithm::Sha512 => 2,
    }
}

impl Scheme {
    /// The cache slot of this scheme (schemes of one key family never share a slot).
    fn slot(self) -> usize {
        match self {
            Self::Ecdsa(d) | Self::RsaPkcs1(d) => digest_index(d),
            Self::RsaPss(d) => 3 + digest_index(d),
            Self::Ed25519 => 0,
        }
    }

    fn aws_algorithm(self, key: KeyAlgorithm) -> Option<&'static dyn VerificationAlgorithm> {
        use aws_lc_rs::signature as s;
        use DigestAlgorithm::{Sha256, Sha384, Sha512};
        Some(match (key, self) {
            (KeyAlgorithm::EcdsaP256, Self::Ecdsa(Sha256)) => &s::ECDSA_P256_SHA256_ASN1,
            (KeyAlgorithm::EcdsaP256, Self::Ecdsa(Sha384)) => &s::ECDSA_P256_SHA384_ASN1,
            (KeyAlgorithm::EcdsaP256, Self::Ecdsa(Sha512)) => &s::ECDSA_P256_SHA512_ASN1,
            (KeyAlgorithm::EcdsaP384, Self::Ecdsa(Sha256)) => &s::ECDSA_P384_SHA256_ASN1,
            (KeyAlgorithm::EcdsaP384, Self::Ecdsa(Sha384)) => &s::ECDSA_P384_SHA384_ASN1,
            (KeyAlgorithm::EcdsaP384, Self::Ecdsa(Sha512)) => &s::ECDSA_P384_SHA512_ASN1,
            (KeyAlgorithm::Rsa, Self::RsaPkcs1(Sha256)) => &s::RSA_PKCS1_2048_8192_SHA256,
            (KeyAlgorithm::Rsa, Self::RsaPkcs1(Sha384)) => &s::RSA_PKCS1_2048_8192_SHA384,
            (KeyAlgorithm::Rsa, Self::RsaPkcs1(Sha512)) => &s::RSA_PKCS1_2048_8192_SHA512,
            (KeyAlgorithm::Rsa, Self::RsaPss(Sha256)) => &s::RSA_PSS_2048_8192_SHA256,
            (KeyAlgorithm::Rsa, Self::RsaPss(Sha384)) => &s::RSA_PSS_2048_8192_SHA384,
            (KeyAlgorithm::Rsa, Self::RsaPss(Sha512)) => &s::RSA_PSS_2048_8192_SHA512,
            (KeyAlgorithm::Ed25519, Self::Ed25519) => &s::ED25519,
            _ => return None,
        })
    }

    /// The scheme a freshly read key is parsed with, to reject a malformed key when it is read.
    fn default_for(key: KeyAlgorithm) -> Self {
        match key {
            KeyAlgorithm::EcdsaP256 => Self::Ecdsa(DigestAlgorithm::Sha256),
            KeyAlgorithm::EcdsaP384 => Self::Ecdsa(DigestAlgorithm::Sha384),
            KeyAlgorithm::Ed25519 => Self::Ed25519,
            KeyAlgorithm::Rsa => Self::RsaPkcs1(DigestAlgorithm::Sha256),
        }
    }
}

fn aws_digest(d: DigestAlgorithm) -> &'static aws_lc_rs::digest::Algorithm {
    match d {
        DigestAlgorithm::Sha256 => &aws_lc_rs::digest::SHA256,
        DigestAlgorithm::Sha384 => &aws_lc_rs::digest::SHA384,
        DigestAlgorithm::Sha512 => &aws_lc_rs::digest::SHA512,
    }
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
            "RSA PUBLIC KEY" => Self::from_pkcs1_rsa_der(&der),
            other => Err(KeyError::Malformed(format!("expected a PUBLIC KEY PEM block, found {other:?}"))),
        }
    }

    /// Read a PKCS#1 `RSAPublicKey` (DER), as some trust roots carry RSA log keys.
    pub fn from_pkcs1_rsa_der(der: &[u8]) -> Result<Self, KeyError> {
        rsa_modulus_len(der)?;
        let spki = SubjectPublicKeyInfoOwned {
            algorithm: spki::AlgorithmIdentifierOwned {
                oid: OID_RSA,
                parameters: Some(der::asn1::Null.into()),
            },
            subject_public_key: der::asn1::BitString::from_bytes(der)
                .map_err(|e| KeyError::Malformed(e.to_string()))?,
        };
        Self::from_spki_der(&spki.to_der().map_err(|e| KeyError::Malformed(e.to_string()))?)
    }

    /// Read a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki =
            SubjectPublicKeyInfoOwned::from_der(der).map_err(|e| KeyError::Malformed(e.to_string()))?;
        let alg = spki.algorithm.oid;
        let algorithm = if alg == OID_EC {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<const_oid::ObjectIdentifier>().ok())
                .ok_or_else(|| KeyError::Malformed("EC key without a named curve".into()))?;
            if curve == OID_P256 {
                KeyAlgorithm::EcdsaP256
            } else if curve == OID_P384 {
                KeyAlgorithm::EcdsaP384
            } else {
                return Err(KeyError::Unsupported(format!("EC curve {curve}")));
            }
        } else if alg == OID_ED25519 {
            KeyAlgorithm::Ed25519
        } else if alg == OID_RSA {
            KeyAlgorithm::Rsa
        } else {
            return Err(KeyError::Unsupported(alg.to_string()));
        };
        let raw = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| KeyError::Malformed("subjectPublicKey is not a whole number of bytes".into()))?;
        if algorithm == KeyAlgorithm::Rsa && rsa_modulus_len(raw)? < 256 {
            return Err(KeyError::Unsupported("RSA keys shorter than 2048 bits".into()));
        }
        // Parse now, so a malformed key fails here and not at its first signature; the parsed key is kept.
        let scheme = Scheme::default_for(algorithm);
        let aws = scheme.aws_algorithm(algorithm).ok_or_else(|| KeyError::Unsupported(alg.to_string()))?;
        let parsed = ParsedPublicKey::new(aws, der)
            .map_err(|e| KeyError::Malformed(format!("{} key: {e}", algorithm.name())))?;
        // The canonical encoding (uncompressed EC point, RSA NULL parameters), so equivalent encodings of one
        // key have one fingerprint. An EC key already written so (every Fulcio leaf) is taken as it is.
        let canonical = if is_canonical_ec(algorithm, der, raw) {
            der.to_vec()
        } else {
            parsed
                .as_der()
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| KeyError::Malformed(format!("{} key cannot be re-encoded", algorithm.name())))?
        };
        let key = Self::from_parts(algorithm, canonical, raw.to_vec());
        let _ = key.0.parsed[scheme.slot()].set(Some(parsed));
        Ok(key)
    }

    /// A key from its canonical SPKI DER and subjectPublicKey bits, parsed on first use.
    fn from_parts(algorithm: KeyAlgorithm, spki: Vec<u8>, raw: Vec<u8>) -> Self {
        let fingerprint = Digest::sha256_of(&spki);
        Self(Arc::new(KeyMaterial { algorithm, spki, raw, fingerprint, parsed: Default::default() }))
    }

    /// The algorithm family.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.0.algorithm
    }

    /// The key as DER SubjectPublicKeyInfo.
    pub fn to_spki_der(&self) -> Vec<u8> {
        self.0.spki.clone()
    }

    /// The subjectPublicKey bits of the SPKI (for Ed25519, the 32-byte key).
    pub fn raw_bytes(&self) -> &[u8] {
        &self.0.raw
    }

    /// The key as a `PUBLIC KEY` PEM block.
    pub fn to_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.0.spki)
    }

    /// SHA-256 of the SPKI DER: a stable name for the key in logs, cache keys and messages.
    pub fn fingerprint(&self) -> Digest {
        self.0.fingerprint.clone()
    }

    /// Short kind name, e.g. `ecdsa-p256`.
    pub fn kind(&self) -> &'static str {
        self.0.algorithm.name()
    }

    fn bad(&self) -> KeyError {
        KeyError::BadSignature { key: self.kind(), fingerprint: self.0.fingerprint.to_string() }
    }

    /// The aws-lc-rs key for `scheme`, parsed once; `None` if the scheme does not fit the key.
    fn parsed(&self, scheme: Scheme) -> Option<&ParsedPublicKey> {
        let alg = scheme.aws_algorithm(self.0.algorithm)?;
        self.0.parsed[scheme.slot()].get_or_init(|| ParsedPublicKey::new(alg, &self.0.spki).ok()).as_ref()
    }

    /// An ECDSA signature as ASN.1 DER: DER as given, fixed-size `r||s` converted.
    fn ecdsa_der<'s>(&self, sig: &'s [u8]) -> Result<std::borrow::Cow<'s, [u8]>, KeyError> {
        let field = if self.0.algorithm == KeyAlgorithm::EcdsaP384 { 48 } else { 32 };
        if is_der_ecdsa_signature(sig) {
            Ok(std::borrow::Cow::Borrowed(sig))
        } else if sig.len() == 2 * field {
            Ok(std::borrow::Cow::Owned(fixed_to_der(&sig[..field], &sig[field..])))
        } else {
            Err(KeyError::MalformedSignature { key: self.kind() })
        }
    }

    /// Verify `sig` over `msg`. ECDSA signatures may be ASN.1 DER (cosign) or fixed-size `r||s`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        let check =
            |scheme: Scheme, sig: &[u8]| self.parsed(scheme).is_some_and(|k| k.verify_sig(msg, sig).is_ok());
        let ok = match self.0.algorithm {
            KeyAlgorithm::Ed25519 => {
                if sig.len() != 64 {
                    return Err(KeyError::MalformedSignature { key: self.kind() });
                }
                check(Scheme::Ed25519, sig)
            }
            KeyAlgorithm::EcdsaP256 => check(Scheme::Ecdsa(DigestAlgorithm::Sha256), &self.ecdsa_der(sig)?),
            KeyAlgorithm::EcdsaP384 => {
                let der = self.ecdsa_der(sig)?;
                check(Scheme::Ecdsa(DigestAlgorithm::Sha384), &der)
                    || check(Scheme::Ecdsa(DigestAlgorithm::Sha256), &der)
            }
            KeyAlgorithm::Rsa => {
                check(Scheme::RsaPkcs1(DigestAlgorithm::Sha256), sig)
                    || check(Scheme::RsaPss(DigestAlgorithm::Sha256), sig)
            }
        };
        if ok {
            Ok(())
        } else {
            Err(self.bad())
        }
    }

    /// Verify an RSASSA-PSS signature (MGF1 and salt length of `alg`, as JOSE/COSE `PS256/384/512` define it)
    /// over `msg`. Only that scheme: a PKCS#1 v1.5 signature does not pass.
    pub fn verify_rsa_pss(&self, alg: DigestAlgorithm, msg: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        if self.0.algorithm != KeyAlgorithm::Rsa {
            return Err(KeyError::Unsupported(format!("RSASSA-PSS with a {} key", self.kind())));
        }
        match self.parsed(Scheme::RsaPss(alg)) {
            Some(k) if k.verify_sig(msg, sig).is_ok() => Ok(()),
            _ => Err(self.bad()),
        }
    }

    /// Verify an ECDSA signature (DER or fixed-size `r||s`) over `msg` hashed with `alg`, on the curve
    /// JOSE/COSE pair with it (`ES256`: P-256, `ES384`: P-384); another curve is refused.
    pub fn verify_ecdsa(&self, alg: DigestAlgorithm, msg: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        let curve_fits = matches!(
            (self.0.algorithm, alg),
            (KeyAlgorithm::EcdsaP256, DigestAlgorithm::Sha256)
                | (KeyAlgorithm::EcdsaP384, DigestAlgorithm::Sha384)
        );
        if !curve_fits {
            return Err(KeyError::Unsupported(format!("ECDSA with {alg:?} on a {} key", self.kind())));
        }
        let der = self.ecdsa_der(sig)?;
        match self.parsed(Scheme::Ecdsa(alg)) {
            Some(k) if k.verify_sig(msg, &der).is_ok() => Ok(()),
            _ => Err(self.bad()),
        }
    }

    /// Verify `sig` over a message known only by its `digest` (hashedrekord with a `sha256:` artifact).
    /// RSA accepts PKCS#1 v1.5 or PSS.
    pub fn verify_prehashed(&self, alg: DigestAlgorithm, digest: &[u8], sig: &[u8]) -> Result<(), KeyError> {
        let schemes: &[Scheme] = match self.0.algorithm {
            KeyAlgorithm::Ed25519 => return Err(KeyError::NeedsMessage { key: self.kind() }),
            KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => &[Scheme::Ecdsa(alg)],
            KeyAlgorithm::Rsa => &[Scheme::RsaPkcs1(alg), Scheme::RsaPss(alg)],
        };
        self.verify_digest_with(schemes, alg, digest, sig)
    }

    /// Verify an RSA PKCS#1 v1.5 signature over `digest` only (an X.509 or CMS algorithm that names
    /// PKCS#1 v1.5: a PSS signature is another algorithm, not an equivalent).
    pub fn verify_prehashed_pkcs1(
        &self,
        alg: DigestAlgorithm,
        digest: &[u8],
        sig: &[u8],
    ) -> Result<(), KeyError> {
        self.verify_digest_with(&[Scheme::RsaPkcs1(alg)], alg, digest, sig)
    }

    fn verify_digest_with(
        &self,
        schemes: &[Scheme],
        alg: DigestAlgorithm,
        digest: &[u8],
        sig: &[u8],
    ) -> Result<(), KeyError> {
        let digest =
            aws_lc_rs::digest::Digest::import_less_safe(digest, aws_digest(alg)).map_err(|_| self.bad())?;
        let is_ecdsa = matches!(self.0.algorithm, KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384);
        let sig = if is_ecdsa { self.ecdsa_der(sig)? } else { std::borrow::Cow::Borrowed(sig) };
        let ok = schemes
            .iter()
            .any(|s| self.parsed(*s).is_some_and(|k| k.verify_digest_sig(&digest, &sig).is_ok()));
        if ok {
            Ok(())
        } else {
            Err(self.bad())
        }
    }
}

/// Whether `sig` is a DER `SEQUENCE { INTEGER r, INTEGER s }` and nothing else.
fn is_der_ecdsa_signature(sig: &[u8]) -> bool {
    use der::asn1::UintRef;
    let Ok(mut reader) = der::SliceReader::new(sig) else { return false };
    let parsed = reader.sequence(|r| {
        UintRef::decode(r)?;
        UintRef::decode(r)?;
        Ok(())
    });
    parsed.and_then(|()| reader.finish(())).is_ok()
}

/// `r||s` as a DER ECDSA signature.
fn fixed_to_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn integer(out: &mut Vec<u8>, v: &[u8]) {
        let v = match v.iter().position(|b| *b != 0) {
            Some(i) => &v[i..],
            None => &[0u8][..],
        };
        let pad = v[0] & 0x80 != 0;
        out.push(0x02);
        out.push((v.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
    }
    // At most 2 × (2 + 49) bytes for P-384: short-form lengths throughout.
    let mut body = Vec::with_capacity(2 * (r.len() + 3));
    integer(&mut body, r);
    integer(&mut body, s);
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(0x30);
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    out
}

/// The modulus length in bytes of a PKCS#1 `RSAPublicKey`.
fn rsa_modulus_len(pkcs1: &[u8]) -> Result<usize, KeyError> {
    use der::asn1::UintRef;
    let malformed = |e: der::Error| KeyError::Malformed(format!("PKCS#1 RSA key: {e}"));
    let mut reader = der::SliceReader::new(pkcs1).map_err(malformed)?;
    let n = reader
        .sequence(|r| {
            let n = UintRef::decode(r)?;
            UintRef::decode(r)?;
            Ok(n.as_bytes().len())
        })
        .map_err(malformed)?;
    reader.finish(n).map_err(malformed)
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
        // p256 encodes the point uncompressed: the canonical SPKI already.
        let spki = self.0.verifying_key().to_public_key_der().map(|d| d.into_vec()).unwrap_or_default();
        let raw = self.0.verifying_key().to_encoded_point(false).as_bytes().to_vec();
        PublicKey::from_parts(KeyAlgorithm::EcdsaP256, spki, raw)
    }

    /// Sign `msg` (SHA-256), returning the fixed-size `r||s` signature JOSE (`ES256`) and COSE carry.
    pub fn sign_fixed(&self, msg: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer;
        let sig: p256::ecdsa::Signature = self.0.sign(msg);
        sig.to_bytes().to_vec()
    }

    /// Sign `msg` (SHA-256), returning an ASN.1 DER signature as cosign does.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer;
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

/// Whether `der` is the canonical SubjectPublicKeyInfo of the EC key with the uncompressed point `raw`:
/// the fixed prefix of its curve (algorithm, named curve, BIT STRING header), then the point.
fn is_canonical_ec(algorithm: KeyAlgorithm, der: &[u8], raw: &[u8]) -> bool {
    const P256: &[u8] = &[
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
        0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    const P384: &[u8] = &[
        0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81,
        0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
    ];
    let prefix = match algorithm {
        KeyAlgorithm::EcdsaP256 => P256,
        KeyAlgorithm::EcdsaP384 => P384,
        _ => return false,
    };
    raw.first() == Some(&0x04)
        && der.len() == prefix.len() + raw.len()
        && der.starts_with(prefix)
        && der.ends_with(raw)
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
        let body = &body_start[..body_end];
        // Whitespace as `char::is_whitespace` has it; PEM is ASCII, so bytes are enough there.
        let b64: Vec<u8> = if body.is_ascii() {
            // Line by line, not byte by byte.
            let mut b64 = Vec::with_capacity(body.len());
            for run in body.as_bytes().split(|b| matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')) {
                b64.extend_from_slice(run);
            }
            b64
        } else {
            body.chars().filter(|c| !c.is_whitespace()).collect::<String>().into_bytes()
        };
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
    fn ec_keys_already_canonical_are_recognised_as_aws_lc_encodes_them() {
        use aws_lc_rs::encoding::AsDer;
        for (alg, aws) in [
            (KeyAlgorithm::EcdsaP256, &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1),
            (KeyAlgorithm::EcdsaP384, &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1),
        ] {
            let signing = match alg {
                KeyAlgorithm::EcdsaP256 => &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                _ => &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            };
            let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(signing).unwrap();
            let raw = aws_lc_rs::signature::KeyPair::public_key(&pair).as_ref().to_vec();
            let parsed = aws_lc_rs::signature::ParsedPublicKey::new(aws, &raw).unwrap();
            let der = parsed.as_der().unwrap().as_ref().to_vec();
            assert!(is_canonical_ec(alg, &der, &raw), "{alg:?}");
            let key = PublicKey::from_spki_der(&der).unwrap();
            assert_eq!(key.to_spki_der(), der);
            // A compressed point, another curve's prefix, a truncated key: not taken as they are.
            let mut compressed = raw.clone();
            compressed[0] = 0x02;
            assert!(!is_canonical_ec(alg, &der, &compressed));
            let other = if alg == KeyAlgorithm::EcdsaP256 {
                KeyAlgorithm::EcdsaP384
            } else {
                KeyAlgorithm::EcdsaP256
            };
            assert!(!is_canonical_ec(other, &der, &raw));
            assert!(!is_canonical_ec(alg, &der[..der.len() - 1], &raw));
        }
    }

    #[test]
    fn pem_bodies_are_read_across_any_whitespace() {
        let der: Vec<u8> = (0u8..=200).collect();
        let pem = pem_encode("CERTIFICATE", &der);
        let crlf = pem.replace('\n', "\r\n");
        let spaced = pem.replacen("\n", "\n \t\x0b\x0c", 3);
        let unicode = pem.replacen("\n", "\n\u{a0}\u{2003}", 2);
        for text in [pem.as_str(), &crlf, &spaced, &unicode] {
            let (label, got) = pem_rfc7468_decode(text).unwrap();
            assert_eq!((label.as_str(), got.as_slice()), ("CERTIFICATE", der.as_slice()), "{text:?}");
        }
        assert!(pem_rfc7468_decode(&pem.replacen("\n", "\n*", 2)).is_err(), "not base64");
    }

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

    /// Key material made by the OpenSSL CLI (tests/data/openssl-keys/README.md).
    macro_rules! openssl {
        ($name:literal) => {
            include_bytes!(concat!("../tests/data/openssl-keys/", $name)).as_slice()
        };
    }

    fn openssl_key(pem: &[u8]) -> PublicKey {
        PublicKey::from_pem(std::str::from_utf8(pem).unwrap()).unwrap()
    }

    const MESSAGE: &[u8] = openssl!("message.txt");

    fn tampered(sig: &[u8]) -> Vec<u8> {
        let mut sig = sig.to_vec();
        let last = sig.len() - 1;
        sig[last] ^= 1;
        sig
    }

    #[test]
    fn p384_signature_by_openssl_verifies_and_tampering_or_another_key_fails() {
        let key = openssl_key(openssl!("p384.pub"));
        assert_eq!(key.kind(), "ecdsa-p384");
        let sig = openssl!("p384-sha384.sig");
        key.verify(MESSAGE, sig).unwrap();
        key.verify_prehashed(DigestAlgorithm::Sha384, &DigestAlgorithm::Sha384.hash(MESSAGE), sig).unwrap();
        assert!(matches!(key.verify(b"another message", sig), Err(KeyError::BadSignature { .. })));
        assert!(key.verify(MESSAGE, &tampered(sig)).is_err());
        let wrong = openssl_key(openssl!("p384-other.pub"));
        assert!(matches!(wrong.verify(MESSAGE, sig), Err(KeyError::BadSignature { .. })));
        // The digest given must be the one signed.
        let sha256 = DigestAlgorithm::Sha256.hash(MESSAGE);
        assert!(key.verify_prehashed(DigestAlgorithm::Sha256, &sha256, sig).is_err());
    }

    /// DER `r||s` halves of an ECDSA signature (for the fixed-size encoding).
    fn der_to_fixed(der: &[u8], field: usize) -> Vec<u8> {
        let mut reader = der::SliceReader::new(der).unwrap();
        let (r, s) = reader
            .sequence(|r| {
                Ok((
                    der::asn1::UintRef::decode(r)?.as_bytes().to_vec(),
                    der::asn1::UintRef::decode(r)?.as_bytes().to_vec(),
                ))
            })
            .unwrap();
        let mut out = vec![0; 2 * field];
        out[field - r.len()..field].copy_from_slice(&r);
        out[2 * field - s.len()..].copy_from_slice(&s);
        out
    }

    #[test]
    fn ecdsa_accepts_fixed_size_signatures_too() {
        let key = openssl_key(openssl!("p384.pub"));
        let fixed = der_to_fixed(openssl!("p384-sha384.sig"), 48);
        key.verify(MESSAGE, &fixed).unwrap();
        assert!(key.verify(MESSAGE, &tampered(&fixed)).is_err());
        let sk = SigningKey::generate();
        let fixed = der_to_fixed(&sk.sign(b"m"), 32);
        sk.public_key().verify(b"m", &fixed).unwrap();
        assert!(matches!(
            sk.public_key().verify(b"m", &fixed[..63]),
            Err(KeyError::MalformedSignature { .. })
        ));
    }

    #[test]
    fn rsa_pkcs1_and_pss_signatures_by_openssl_verify_and_tampering_or_another_key_fails() {
        let key = openssl_key(openssl!("rsa.pub"));
        assert_eq!(key.kind(), "rsa");
        // The PKCS#1 encoding of the same key is the same key.
        assert_eq!(openssl_key(openssl!("rsa-pkcs1.pub")).fingerprint(), key.fingerprint());
        let wrong = openssl_key(openssl!("rsa-other.pub"));
        for sig in [openssl!("rsa-pkcs1v15-sha256.sig"), openssl!("rsa-pss-sha256.sig")] {
            key.verify(MESSAGE, sig).unwrap();
            key.verify_prehashed(DigestAlgorithm::Sha256, &DigestAlgorithm::Sha256.hash(MESSAGE), sig)
                .unwrap();
            assert!(matches!(key.verify(b"another message", sig), Err(KeyError::BadSignature { .. })));
            assert!(key.verify(MESSAGE, &tampered(sig)).is_err());
            assert!(matches!(wrong.verify(MESSAGE, sig), Err(KeyError::BadSignature { .. })));
        }
        let pss384 = openssl!("rsa-pss-sha384.sig");
        let sha384 = DigestAlgorithm::Sha384.hash(MESSAGE);
        key.verify_prehashed(DigestAlgorithm::Sha384, &sha384, pss384).unwrap();
        assert!(key.verify_prehashed(DigestAlgorithm::Sha384, &sha384, &tampered(pss384)).is_err());
        // Where the algorithm names PKCS#1 v1.5, a PSS signature does not count.
        let sha256 = DigestAlgorithm::Sha256.hash(MESSAGE);
        key.verify_prehashed_pkcs1(DigestAlgorithm::Sha256, &sha256, openssl!("rsa-pkcs1v15-sha256.sig"))
            .unwrap();
        assert!(key
            .verify_prehashed_pkcs1(DigestAlgorithm::Sha256, &sha256, openssl!("rsa-pss-sha256.sig"))
            .is_err());
    }

    #[test]
    fn short_rsa_keys_are_refused() {
        let err = PublicKey::from_pem(std::str::from_utf8(openssl!("rsa-1024.pub")).unwrap()).unwrap_err();
        assert_eq!(err, KeyError::Unsupported("RSA keys shorter than 2048 bits".into()));
    }

    #[test]
    fn ed25519_signature_by_openssl_verifies_and_tampering_fails() {
        let key = openssl_key(openssl!("ed25519.pub"));
        assert_eq!(key.kind(), "ed25519");
        assert_eq!(key.raw_bytes().len(), 32);
        let sig = openssl!("ed25519.sig");
        key.verify(MESSAGE, sig).unwrap();
        assert!(matches!(key.verify(b"another message", sig), Err(KeyError::BadSignature { .. })));
        assert!(key.verify(MESSAGE, &tampered(sig)).is_err());
        assert!(matches!(key.verify(MESSAGE, &sig[..63]), Err(KeyError::MalformedSignature { .. })));
        assert!(matches!(
            key.verify_prehashed(DigestAlgorithm::Sha256, &[0; 32], sig),
            Err(KeyError::NeedsMessage { .. })
        ));
    }

    #[test]
    fn rejects_garbage_and_unsupported() {
        assert!(matches!(PublicKey::from_pem("nope"), Err(KeyError::Malformed(_))));
        assert!(
            PublicKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err()
        );
    }
}
