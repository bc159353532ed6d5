//! One layer of a cosign `.sig` / `.att` manifest: the signed blob plus the annotations that carry the
//! signature, certificate, chain, Rekor bundle (SET) and RFC 3161 timestamp; and its conversion into a
//! Sigstore [`Bundle`] so that keyless checks run through the one bundle verifier.

use std::collections::BTreeMap;

use base64::Engine;
use der::Decode;
use serde::{Deserialize, Serialize};

use super::CosignError;
use crate::digest::{Digest, DigestAlgorithm};
use crate::keys::pem_decode_all;
use crate::registry::Descriptor;
use crate::sigstore_verify::tlog::TlogEntry;
use crate::sigstore_verify::{Bundle, BundleContent, Signer, VerificationMaterial};

/// Annotation holding the base64 signature over the layer blob.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Annotation holding the PEM signing certificate (keyless).
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// Annotation holding the PEM chain (intermediates, usually the root too).
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
/// Annotation holding the Rekor bundle (SET + entry) JSON.
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// Annotation holding an RFC 3161 timestamp JSON (`{"SignedRFC3161Timestamp": b64}`).
pub const RFC3161_ANNOTATION: &str = "dev.sigstore.cosign/rfc3161timestamp";
/// Annotation naming an attestation layer's predicate type.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// Largest certificate chain accepted in an annotation.
const MAX_CHAIN: usize = 10;

/// cosign's Rekor bundle annotation: the signed entry timestamp and what it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekorBundle {
    /// The SET: the log's signature over the canonical JSON of the payload below.
    pub signed_entry_timestamp: Vec<u8>,
    /// The canonicalized entry body (decoded from base64).
    pub body: Vec<u8>,
    /// When the log integrated the entry (Unix seconds).
    pub integrated_time: i64,
    /// The entry's index in the log.
    pub log_index: i64,
    /// The log id (SHA-256 of the log key), raw bytes.
    pub log_id: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct RawRekorBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    signed_entry_timestamp: String,
    #[serde(rename = "Payload")]
    payload: RawRekorPayload,
}

#[derive(Serialize, Deserialize)]
struct RawRekorPayload {
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logIndex")]
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

#[derive(Deserialize)]
struct RawTimestamp {
    #[serde(rename = "SignedRFC3161Timestamp")]
    signed_rfc3161_timestamp: String,
}

#[derive(Deserialize)]
struct BodyKind {
    kind: String,
    #[serde(rename = "apiVersion")]
    api_version: String,
}

fn b64(field: &'static str, s: &str) -> Result<Vec<u8>, CosignError> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| CosignError::BadAnnotation { annotation: field, reason: "not valid base64".into() })
}

impl RekorBundle {
    /// Parse the `dev.sigstore.cosign/bundle` annotation.
    pub fn from_json(text: &str) -> Result<Self, CosignError> {
        let bad = |reason: String| CosignError::BadAnnotation { annotation: BUNDLE_ANNOTATION, reason };
        let raw: RawRekorBundle = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if raw.payload.integrated_time < 0 || raw.payload.log_index < 0 {
            return Err(bad("negative integratedTime or logIndex".into()));
        }
        Ok(Self {
            signed_entry_timestamp: b64(BUNDLE_ANNOTATION, &raw.signed_entry_timestamp)?,
            body: b64(BUNDLE_ANNOTATION, &raw.payload.body)?,
            integrated_time: raw.payload.integrated_time,
            log_index: raw.payload.log_index,
            log_id: hex::decode(&raw.payload.log_id).map_err(|_| bad("logID is not hex".into()))?,
        })
    }

    /// Serialise as cosign does.
    pub fn to_json(&self) -> String {
        let e = &base64::engine::general_purpose::STANDARD;
        let raw = RawRekorBundle {
            signed_entry_timestamp: e.encode(&self.signed_entry_timestamp),
            payload: RawRekorPayload {
                body: e.encode(&self.body),
                integrated_time: self.integrated_time,
                log_index: self.log_index,
                log_id: hex::encode(&self.log_id),
            },
        };
        serde_json::to_string(&raw).unwrap_or_default()
    }

    /// The same entry as a Sigstore bundle `tlogEntries` item (v0.1 style: SET, no inclusion proof).
    pub fn to_tlog_entry(&self) -> Result<TlogEntry, CosignError> {
        let kind: BodyKind = serde_json::from_slice(&self.body).map_err(|e| CosignError::BadAnnotation {
            annotation: BUNDLE_ANNOTATION,
            reason: format!("entry body is not a Rekor entry: {e}"),
        })?;
        Ok(TlogEntry {
            log_index: self.log_index,
            log_id: self.log_id.clone(),
            kind: kind.kind,
            kind_version: kind.api_version,
            integrated_time: self.integrated_time,
            inclusion_promise: Some(self.signed_entry_timestamp.clone()),
            inclusion_proof: None,
            canonicalized_body: self.body.clone(),
        })
    }
}

/// A signature or attestation layer with its annotations decoded.
#[derive(Debug, Clone)]
pub struct SignatureLayer {
    /// The layer's descriptor in the signature manifest.
    pub descriptor: Descriptor,
    /// The signed blob (simple-signing payload or DSSE envelope JSON), digest-checked on fetch.
    pub blob: Vec<u8>,
    /// The signature over the blob (empty for DSSE layers, whose signature is inside the envelope).
    pub signature: Vec<u8>,
    /// The signing certificate (DER), for keyless signatures.
    pub certificate: Option<Vec<u8>>,
    /// The chain from the annotation (DER), leaf excluded, as given (may include the root).
    pub chain: Vec<Vec<u8>>,
    /// The Rekor bundle, when the signature was logged.
    pub rekor_bundle: Option<RekorBundle>,
    /// An RFC 3161 timestamp (DER), when one was attached.
    pub timestamp: Option<Vec<u8>>,
}

fn pem_certs(annotation: &'static str, text: &str) -> Result<Vec<Vec<u8>>, CosignError> {
    let blocks =
        pem_decode_all(text).map_err(|e| CosignError::BadAnnotation { annotation, reason: e.to_string() })?;
    if blocks.len() > MAX_CHAIN {
        return Err(CosignError::BadAnnotation {
            annotation,
            reason: format!("{} certificates, more than {MAX_CHAIN}", blocks.len()),
        });
    }
    Ok(blocks.into_iter().filter(|(label, _)| label == "CERTIFICATE").map(|(_, der)| der).collect())
}

impl SignatureLayer {
    /// Decode a layer's annotations; `blob` must be the layer's content (the registry client checks its digest).
    pub fn from_parts(descriptor: Descriptor, blob: Vec<u8>) -> Result<Self, CosignError> {
        // Checked again here, so that no caller can pair annotations with content they do not describe.
        let unexpected = |reason: String| CosignError::Unexpected { what: "signature layer", reason };
        if u64::try_from(blob.len()).ok() != Some(descriptor.size) {
            return Err(unexpected(format!(
                "blob has {} bytes, the descriptor's size is {}",
                blob.len(),
                descriptor.size
            )));
        }
        let actual = Digest::of(descriptor.digest.algorithm(), &blob);
        if actual != descriptor.digest {
            return Err(unexpected(format!(
                "blob digest {actual} is not the descriptor's digest {}",
                descriptor.digest
            )));
        }
        let ann = &descriptor.annotations;
        let signature = match ann.get(SIGNATURE_ANNOTATION) {
            Some(s) if !s.is_empty() => b64(SIGNATURE_ANNOTATION, s)?,
            _ => Vec::new(),
        };
        let certificate = match ann.get(CERTIFICATE_ANNOTATION).filter(|s| !s.trim().is_empty()) {
            Some(pem) => Some(pem_certs(CERTIFICATE_ANNOTATION, pem)?.into_iter().next().ok_or(
                CosignError::BadAnnotation {
                    annotation: CERTIFICATE_ANNOTATION,
                    reason: "no CERTIFICATE PEM block".into(),
                },
            )?),
            None => None,
        };
        let chain = match ann.get(CHAIN_ANNOTATION) {
            Some(pem) => pem_certs(CHAIN_ANNOTATION, pem)?,
            None => Vec::new(),
        };
        let rekor_bundle = ann.get(BUNDLE_ANNOTATION).map(|s| RekorBundle::from_json(s)).transpose()?;
        let timestamp = match ann.get(RFC3161_ANNOTATION) {
            Some(s) => {
                let raw: RawTimestamp = serde_json::from_str(s).map_err(|e| CosignError::BadAnnotation {
                    annotation: RFC3161_ANNOTATION,
                    reason: e.to_string(),
                })?;
                Some(b64(RFC3161_ANNOTATION, &raw.signed_rfc3161_timestamp)?)
            }
            None => None,
        };
        Ok(Self { descriptor, blob, signature, certificate, chain, rekor_bundle, timestamp })
    }

    /// The layer as a Sigstore bundle v0.1 (chain of leaf + intermediates, SET entry, timestamps).
    ///
    /// `keyless` picks the signer material: the certificate chain, or a bare key hint (the key comes from
    /// the policy; a certificate on a layer verified with a key is ignored, as cosign does).
    pub fn to_bundle(&self, content: BundleContent, keyless: bool) -> Result<Bundle, CosignError> {
        let signer = if keyless {
            let leaf = self.certificate.clone().ok_or(CosignError::NoCertificate)?;
            let mut chain = vec![leaf];
            // The root comes from the trust root; a bundle chain must not carry it.
            chain.extend(self.chain.iter().filter(|der| !is_self_issued(der)).cloned());
            Signer::Chain(chain)
        } else {
            Signer::PublicKey { hint: String::new() }
        };
        let tlog_entries = match &self.rekor_bundle {
            Some(b) => vec![b.to_tlog_entry()?],
            None => Vec::new(),
        };
        Ok(Bundle::new(
            crate::sigstore_verify::bundle::MEDIA_TYPE_V0_1.to_owned(),
            VerificationMaterial {
                signer,
                tlog_entries,
                timestamps: self.timestamp.iter().cloned().collect(),
            },
            content,
        ))
    }

    /// A simple-signing layer's content: a message signature over the blob.
    pub fn message_signature(&self) -> Result<BundleContent, CosignError> {
        if self.signature.is_empty() {
            return Err(CosignError::BadAnnotation {
                annotation: SIGNATURE_ANNOTATION,
                reason: "missing or empty".into(),
            });
        }
        Ok(BundleContent::MessageSignature {
            digest: Some((DigestAlgorithm::Sha256, Digest::sha256_of(&self.blob).to_bytes())),
            signature: self.signature.clone(),
        })
    }
}

/// Whether a DER certificate names itself as issuer (a root, which must come from the trust root).
fn is_self_issued(der: &[u8]) -> bool {
    x509_cert::Certificate::from_der(der)
        .map(|c| c.tbs_certificate.subject == c.tbs_certificate.issuer)
        .unwrap_or(false)
}

/// Annotations for a layer, built from its parts (used when signing).
pub fn layer_annotations(
    signature: &[u8],
    certificate_pem: Option<&str>,
    chain_pem: Option<&str>,
    rekor_bundle: Option<&RekorBundle>,
) -> BTreeMap<String, String> {
    let mut ann = BTreeMap::new();
    ann.insert(SIGNATURE_ANNOTATION.to_owned(), base64::engine::general_purpose::STANDARD.encode(signature));
    if let Some(c) = certificate_pem {
        ann.insert(CERTIFICATE_ANNOTATION.to_owned(), c.to_owned());
    }
    if let Some(c) = chain_pem {
        ann.insert(CHAIN_ANNOTATION.to_owned(), c.to_owned());
    }
    if let Some(b) = rekor_bundle {
        ann.insert(BUNDLE_ANNOTATION.to_owned(), b.to_json());
    }
    ann
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(annotations: BTreeMap<String, String>, blob: &[u8]) -> Descriptor {
        Descriptor {
            media_type: super::super::SIMPLE_SIGNING_MEDIA_TYPE.to_owned(),
            digest: Digest::sha256_of(blob),
            size: blob.len() as u64,
            artifact_type: None,
            annotations,
            platform: None,
        }
    }

    #[test]
    fn rekor_bundle_round_trips_and_becomes_a_set_entry() {
        let body = br#"{"apiVersion":"0.0.1","kind":"hashedrekord","spec":{}}"#.to_vec();
        let b = RekorBundle {
            signed_entry_timestamp: vec![1, 2, 3],
            body: body.clone(),
            integrated_time: 1_700_000_000,
            log_index: 42,
            log_id: vec![0xab; 32],
        };
        let json = b.to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["Payload"]["logIndex"], 42);
        assert_eq!(v["Payload"]["logID"], "ab".repeat(32));
        assert_eq!(RekorBundle::from_json(&json).unwrap(), b);
        let entry = b.to_tlog_entry().unwrap();
        assert_eq!((entry.kind.as_str(), entry.kind_version.as_str()), ("hashedrekord", "0.0.1"));
        assert_eq!(entry.inclusion_promise, Some(vec![1, 2, 3]));
        assert_eq!(entry.canonicalized_body, body);
    }

    #[test]
    fn decodes_annotations_and_rejects_garbage() {
        let blob = b"payload".to_vec();
        let ann = layer_annotations(b"sig", None, None, None);
        let layer = SignatureLayer::from_parts(descriptor(ann, &blob), blob.clone()).unwrap();
        assert_eq!(layer.signature, b"sig");
        assert!(layer.certificate.is_none() && layer.rekor_bundle.is_none());
        // A key-signed layer cannot become a keyless bundle.
        let content = layer.message_signature().unwrap();
        assert!(matches!(layer.to_bundle(content.clone(), true), Err(CosignError::NoCertificate)));
        let bundle = layer.to_bundle(content, false).unwrap();
        assert!(matches!(bundle.verification_material.signer, Signer::PublicKey { .. }));
        assert!(bundle.verification_material.tlog_entries.is_empty());

        let mut bad = BTreeMap::new();
        bad.insert(SIGNATURE_ANNOTATION.to_owned(), "***".to_owned());
        assert!(SignatureLayer::from_parts(descriptor(bad, &blob), blob.clone()).is_err());
        let mut bad = BTreeMap::new();
        bad.insert(BUNDLE_ANNOTATION.to_owned(), "{}".to_owned());
        let err = SignatureLayer::from_parts(descriptor(bad, &blob), blob.clone()).unwrap_err();
        assert!(err.to_string().contains(BUNDLE_ANNOTATION), "{err}");
        let mut empty_sig = BTreeMap::new();
        empty_sig.insert(SIGNATURE_ANNOTATION.to_owned(), String::new());
        let layer = SignatureLayer::from_parts(descriptor(empty_sig, &blob), blob).unwrap();
        assert!(layer.message_signature().is_err());
    }
}
