//! Entry bodies (`canonicalizedBody`) and whether they record exactly what the bundle holds.
//!
//! Supported: hashedrekord 0.0.1 and intoto 0.0.2 and dsse 0.0.1 (Rekor v1); hashedrekord 0.0.2 and
//! dsse 0.0.2 (Rekor v2). A Rekor v2 hashedrekord may also record a DSSE envelope: its digest is then the
//! SHA-256 of the envelope's PAE and its signature the envelope's signature.

use serde::Deserialize;

use super::entry::b64_decode;
use super::{ExpectedContent, TlogError};
use crate::digest::DigestAlgorithm;
use crate::dsse::Envelope;
use crate::keys::PublicKey;

/// A digest recorded in a body.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hash {
    algorithm: DigestAlgorithm,
    value: Vec<u8>,
}

/// One signature recorded in a body with the key or certificate (DER) that verifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SignatureRecord {
    signature: Vec<u8>,
    material: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Spec {
    /// hashedrekord 0.0.1 or 0.0.2: a signature over a digest.
    HashedRekord { hash: Hash, sig: SignatureRecord },
    /// intoto 0.0.2: the envelope itself (payload optional: Rekor may drop it).
    Intoto { payload_type: String, payload: Option<Vec<u8>>, payload_hash: Hash, sigs: Vec<SignatureRecord> },
    /// dsse 0.0.1 or 0.0.2: the payload hash and signatures.
    Dsse { payload_hash: Hash, sigs: Vec<SignatureRecord> },
}

/// A parsed entry body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryBody {
    pub kind: String,
    pub version: String,
    spec: Spec,
}

fn bad(reason: impl Into<String>) -> TlogError {
    TlogError::MalformedBody(reason.into())
}

fn decode(field: &str, s: &str) -> Result<Vec<u8>, TlogError> {
    b64_decode(s).map_err(|_| bad(format!("{field} is not base64")))
}

/// Base64 of base64, as Rekor's intoto type stores envelope bytes.
fn decode_twice(field: &str, s: &str) -> Result<Vec<u8>, TlogError> {
    let inner = decode(field, s)?;
    let inner = std::str::from_utf8(&inner).map_err(|_| bad(format!("{field} is not base64 of base64")))?;
    b64_decode(inner).map_err(|_| bad(format!("{field} is not base64 of base64")))
}

/// DER from base64 of a PEM `CERTIFICATE` or `PUBLIC KEY` block.
fn pem_material(field: &str, b64_pem: &str) -> Result<Vec<u8>, TlogError> {
    let pem = decode(field, b64_pem)?;
    let pem = std::str::from_utf8(&pem).map_err(|_| bad(format!("{field} is not PEM")))?;
    let (label, der) = crate::keys::pem_rfc7468_decode(pem).map_err(|e| bad(format!("{field}: {e}")))?;
    if label != "CERTIFICATE" && label != "PUBLIC KEY" {
        return Err(bad(format!("{field} is a {label} PEM block, not a certificate or public key")));
    }
    Ok(der)
}

fn v1_algorithm(name: &str) -> Result<DigestAlgorithm, TlogError> {
    match name {
        "sha256" => Ok(DigestAlgorithm::Sha256),
        "sha384" => Ok(DigestAlgorithm::Sha384),
        "sha512" => Ok(DigestAlgorithm::Sha512),
        other => Err(bad(format!("unsupported hash algorithm {other:?}"))),
    }
}

fn v2_algorithm(name: &str) -> Result<DigestAlgorithm, TlogError> {
    match name {
        "SHA2_256" => Ok(DigestAlgorithm::Sha256),
        "SHA2_384" => Ok(DigestAlgorithm::Sha384),
        "SHA2_512" => Ok(DigestAlgorithm::Sha512),
        other => Err(bad(format!("unsupported hash algorithm {other:?}"))),
    }
}

fn hash(algorithm: DigestAlgorithm, value: Vec<u8>) -> Result<Hash, TlogError> {
    if value.len() * 2 != algorithm.hex_len() {
        return Err(bad(format!("{} digest has the wrong length", algorithm.name())));
    }
    Ok(Hash { algorithm, value })
}

// Rekor v1 shapes.

#[derive(Deserialize)]
struct HexHash {
    algorithm: String,
    value: String,
}

impl HexHash {
    fn to_hash(&self, field: &str) -> Result<Hash, TlogError> {
        let value = hex::decode(&self.value).map_err(|_| bad(format!("{field} value is not hex")))?;
        hash(v1_algorithm(&self.algorithm)?, value)
    }
}

#[derive(Deserialize)]
struct HashedRekordV001 {
    data: HashedRekordV001Data,
    signature: HashedRekordV001Signature,
}

#[derive(Deserialize)]
struct HashedRekordV001Data {
    hash: HexHash,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HashedRekordV001Signature {
    content: String,
    public_key: Content,
}

#[derive(Deserialize)]
struct Content {
    content: String,
}

#[derive(Deserialize)]
struct IntotoV002 {
    content: IntotoV002Content,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IntotoV002Content {
    envelope: IntotoV002Envelope,
    payload_hash: HexHash,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IntotoV002Envelope {
    #[serde(default)]
    payload: Option<String>,
    payload_type: String,
    signatures: Vec<IntotoV002Signature>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IntotoV002Signature {
    sig: String,
    public_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsseV001 {
    payload_hash: HexHash,
    signatures: Vec<DsseV001Signature>,
}

#[derive(Deserialize)]
struct DsseV001Signature {
    signature: String,
    verifier: String,
}

// Rekor v2 shapes.

#[derive(Deserialize)]
struct HashedRekordV002Spec {
    #[serde(rename = "hashedRekordV002")]
    v: HashedRekordV002,
}

#[derive(Deserialize)]
struct HashedRekordV002 {
    data: B64Hash,
    signature: SignatureV002,
}

#[derive(Deserialize)]
struct B64Hash {
    algorithm: String,
    digest: String,
}

impl B64Hash {
    fn to_hash(&self, field: &str) -> Result<Hash, TlogError> {
        hash(v2_algorithm(&self.algorithm)?, decode(field, &self.digest)?)
    }
}

#[derive(Deserialize)]
struct SignatureV002 {
    content: String,
    verifier: VerifierV002,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VerifierV002 {
    #[serde(default)]
    public_key: Option<RawBytes>,
    #[serde(default)]
    x509_certificate: Option<RawBytes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawBytes {
    raw_bytes: String,
}

impl SignatureV002 {
    fn to_record(&self) -> Result<SignatureRecord, TlogError> {
        let material = match (&self.verifier.public_key, &self.verifier.x509_certificate) {
            (Some(k), None) => decode("verifier.publicKey.rawBytes", &k.raw_bytes)?,
            (None, Some(c)) => decode("verifier.x509Certificate.rawBytes", &c.raw_bytes)?,
            _ => return Err(bad("verifier must hold exactly one of publicKey and x509Certificate")),
        };
        let signature = decode("signature.content", &self.content)?;
        if signature.is_empty() || material.is_empty() {
            return Err(bad("empty signature or verifier"));
        }
        Ok(SignatureRecord { signature, material })
    }
}

#[derive(Deserialize)]
struct DsseV002Spec {
    #[serde(rename = "dsseV002")]
    v: DsseV002,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DsseV002 {
    payload_hash: B64Hash,
    signatures: Vec<SignatureV002>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BodyTop {
    api_version: String,
    kind: String,
    /// Read by kind below, straight from the body's text.
    spec: Box<serde_json::value::RawValue>,
}

fn spec<T: serde::de::DeserializeOwned>(v: &serde_json::value::RawValue, what: &str) -> Result<T, TlogError> {
    serde_json::from_str(v.get()).map_err(|e| bad(format!("{what} spec: {e}")))
}

impl EntryBody {
    /// Parse a canonicalized body of a supported kind.
    pub fn parse(bytes: &[u8]) -> Result<Self, TlogError> {
        let top: BodyTop = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        let spec = match (top.kind.as_str(), top.api_version.as_str()) {
            ("hashedrekord", "0.0.1") => {
                let s: HashedRekordV001 = spec(&top.spec, "hashedrekord 0.0.1")?;
                let signature = decode("signature.content", &s.signature.content)?;
                if signature.is_empty() {
                    return Err(bad("empty signature"));
                }
                Spec::HashedRekord {
                    hash: s.data.hash.to_hash("data.hash")?,
                    sig: SignatureRecord {
                        signature,
                        material: pem_material(
                            "signature.publicKey.content",
                            &s.signature.public_key.content,
                        )?,
                    },
                }
            }
            ("hashedrekord", "0.0.2") => {
                let s: HashedRekordV002Spec = spec(&top.spec, "hashedrekord 0.0.2")?;
                Spec::HashedRekord { hash: s.v.data.to_hash("data.digest")?, sig: s.v.signature.to_record()? }
            }
            ("intoto", "0.0.2") => {
                let s: IntotoV002 = spec(&top.spec, "intoto 0.0.2")?;
                let env = s.content.envelope;
                Spec::Intoto {
                    payload_type: env.payload_type,
                    payload: env
                        .payload
                        .as_deref()
                        .map(|p| decode_twice("envelope.payload", p))
                        .transpose()?,
                    payload_hash: s.content.payload_hash.to_hash("payloadHash")?,
                    sigs: env
                        .signatures
                        .iter()
                        .map(|sig| {
                            Ok(SignatureRecord {
                                signature: decode_twice("envelope.signatures.sig", &sig.sig)?,
                                material: pem_material("envelope.signatures.publicKey", &sig.public_key)?,
                            })
                        })
                        .collect::<Result<_, TlogError>>()?,
                }
            }
            ("dsse", "0.0.1") => {
                let s: DsseV001 = spec(&top.spec, "dsse 0.0.1")?;
                Spec::Dsse {
                    payload_hash: s.payload_hash.to_hash("payloadHash")?,
                    sigs: s
                        .signatures
                        .iter()
                        .map(|sig| {
                            Ok(SignatureRecord {
                                signature: decode("signatures.signature", &sig.signature)?,
                                material: pem_material("signatures.verifier", &sig.verifier)?,
                            })
                        })
                        .collect::<Result<_, TlogError>>()?,
                }
            }
            ("dsse", "0.0.2") => {
                let s: DsseV002Spec = spec(&top.spec, "dsse 0.0.2")?;
                Spec::Dsse {
                    payload_hash: s.v.payload_hash.to_hash("payloadHash")?,
                    sigs: s.v.signatures.iter().map(SignatureV002::to_record).collect::<Result<_, _>>()?,
                }
            }
            _ => return Err(TlogError::UnsupportedKind { kind: top.kind, version: top.api_version }),
        };
        Ok(Self { kind: top.kind, version: top.api_version, spec })
    }

    /// Rekor v2 entry types.
    pub fn is_rekor_v2(&self) -> bool {
        self.version == "0.0.2" && (self.kind == "hashedrekord" || self.kind == "dsse")
    }

    fn wrong_content(&self, content: &'static str) -> TlogError {
        TlogError::WrongContentType { kind: self.kind.clone(), version: self.version.clone(), content }
    }

    /// Check that the body records exactly the bundle's content.
    pub fn check_matches(&self, expected: &ExpectedContent<'_>) -> Result<(), TlogError> {
        match (&self.spec, expected.dsse) {
            (Spec::HashedRekord { hash, sig }, None) => {
                let signature =
                    expected.signature.ok_or(TlogError::NothingToCompare("no message signature given"))?;
                let digest = expected
                    .artifact_digest
                    .ok_or(TlogError::NothingToCompare("no artifact digest given"))?;
                if sig.signature != signature {
                    return Err(TlogError::BodyMismatch("signature"));
                }
                if hash.algorithm != digest.algorithm() || hash.value != digest.to_bytes() {
                    return Err(TlogError::BodyMismatch("artifact digest"));
                }
                check_material(&sig.material, expected.verification_material)
            }
            (Spec::HashedRekord { hash, sig }, Some(env)) => {
                if !self.is_rekor_v2() {
                    return Err(self.wrong_content("DSSE envelope"));
                }
                let env_sig = single_signature(env)?;
                if sig.signature != env_sig {
                    return Err(TlogError::BodyMismatch("signature"));
                }
                let pae = env.pae().map_err(|e| TlogError::NothingToCompare(dsse_reason(&e)))?;
                if hash.algorithm != DigestAlgorithm::Sha256
                    || hash.value != DigestAlgorithm::Sha256.hash(&pae)
                {
                    return Err(TlogError::BodyMismatch("digest of the DSSE envelope"));
                }
                check_material(&sig.material, expected.verification_material)
            }
            (Spec::Intoto { .. } | Spec::Dsse { .. }, None) => Err(self.wrong_content("message signature")),
            (Spec::Intoto { payload_type, payload, payload_hash, sigs }, Some(env)) => {
                let env_payload =
                    env.payload_bytes().map_err(|e| TlogError::NothingToCompare(dsse_reason(&e)))?;
                if *payload_type != env.payload_type {
                    return Err(TlogError::BodyMismatch("payload type"));
                }
                if payload.as_ref().is_some_and(|p| *p != env_payload) {
                    return Err(TlogError::BodyMismatch("payload"));
                }
                check_payload_hash(payload_hash, &env_payload)?;
                check_signatures(sigs, env, expected.verification_material)
            }
            (Spec::Dsse { payload_hash, sigs }, Some(env)) => {
                let env_payload =
                    env.payload_bytes().map_err(|e| TlogError::NothingToCompare(dsse_reason(&e)))?;
                check_payload_hash(payload_hash, &env_payload)?;
                check_signatures(sigs, env, expected.verification_material)
            }
        }
    }
}

fn dsse_reason(e: &crate::dsse::DsseError) -> &'static str {
    match e {
        crate::dsse::DsseError::Malformed(_) => "the DSSE envelope is malformed",
        _ => "the DSSE envelope is unusable",
    }
}

/// A Sigstore bundle's envelope carries exactly one signature.
fn single_signature(env: &Envelope) -> Result<Vec<u8>, TlogError> {
    let sigs = env.signature_bytes().map_err(|e| TlogError::NothingToCompare(dsse_reason(&e)))?;
    match <[Vec<u8>; 1]>::try_from(sigs) {
        Ok([sig]) => Ok(sig),
        Err(_) => Err(TlogError::NothingToCompare("the DSSE envelope must carry exactly one signature")),
    }
}

fn check_payload_hash(recorded: &Hash, payload: &[u8]) -> Result<(), TlogError> {
    if recorded.value != recorded.algorithm.hash(payload) {
        return Err(TlogError::BodyMismatch("payload hash"));
    }
    Ok(())
}

fn check_signatures(recorded: &[SignatureRecord], env: &Envelope, material: &[u8]) -> Result<(), TlogError> {
    let env_sig = single_signature(env)?;
    let [only] = recorded else {
        return Err(TlogError::BodyMismatch("signature count"));
    };
    if only.signature != env_sig {
        return Err(TlogError::BodyMismatch("signature"));
    }
    check_material(&only.material, material)
}

/// Same certificate (byte for byte) or the same public key (compared re-encoded, so equivalent SPKI
/// encodings agree).
fn check_material(recorded: &[u8], expected: &[u8]) -> Result<(), TlogError> {
    if recorded == expected {
        return Ok(());
    }
    match (PublicKey::from_spki_der(recorded), PublicKey::from_spki_der(expected)) {
        (Ok(a), Ok(b)) if a.to_spki_der() == b.to_spki_der() && !a.to_spki_der().is_empty() => Ok(()),
        _ => Err(TlogError::BodyMismatch("certificate or public key")),
    }
}
