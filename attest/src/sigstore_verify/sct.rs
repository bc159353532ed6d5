//! Embedded signed certificate timestamps (RFC 6962): proof that a CT log saw the Fulcio certificate.

use chrono::{DateTime, Utc};
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use sha2::{Digest as _, Sha256};

use super::certificate::ParsedCert;
use crate::trust_root::TrustRoot;

/// The embedded SCT list extension.
pub const OID_SCT_LIST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.2");
/// Most SCTs read from one certificate.
pub const MAX_SCTS: usize = 16;

/// Why the certificate's SCTs do not satisfy the policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SctError {
    /// The certificate has no SCT list.
    #[error("certificate carries no embedded signed certificate timestamps")]
    Missing,
    /// The SCT list does not decode.
    #[error("malformed SCT list: {0}")]
    Malformed(String),
    /// Fewer SCTs verified than required.
    #[error(
        "{verified} of {found} SCTs verified with a trusted CT log key, {required} required ({reasons})"
    )]
    NotEnough {
        /// SCTs that verified.
        verified: usize,
        /// SCTs found.
        found: usize,
        /// Required.
        required: usize,
        /// Why each failing SCT failed.
        reasons: String,
    },
}

/// One SCT as carried in the extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sct {
    /// SCT version (0 = v1).
    pub version: u8,
    /// SHA-256 of the CT log key.
    pub log_id: [u8; 32],
    /// Milliseconds since the epoch.
    pub timestamp: u64,
    /// Extensions (opaque).
    pub extensions: Vec<u8>,
    /// Hash algorithm (TLS code).
    pub hash_algorithm: u8,
    /// Signature algorithm (TLS code).
    pub signature_algorithm: u8,
    /// Signature bytes.
    pub signature: Vec<u8>,
}

struct Tls<'a>(&'a [u8]);

impl<'a> Tls<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SctError> {
        if self.0.len() < n {
            return Err(SctError::Malformed("truncated".into()));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, SctError> {
        Ok(self.take(1)?.first().copied().unwrap_or_default())
    }
    fn u16(&mut self) -> Result<usize, SctError> {
        let b: [u8; 2] = self.take(2)?.try_into().map_err(|_| SctError::Malformed("truncated".into()))?;
        Ok(usize::from(u16::from_be_bytes(b)))
    }
    fn u64(&mut self) -> Result<u64, SctError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn vec16(&mut self) -> Result<&'a [u8], SctError> {
        let n = self.u16()?;
        self.take(n)
    }
}

/// Parse the TLS-encoded SignedCertificateTimestampList from the extension value (an OCTET STRING).
pub fn parse_sct_list(extn_value: &[u8]) -> Result<Vec<Sct>, SctError> {
    let inner =
        der::asn1::OctetStringRef::from_der(extn_value).map_err(|e| SctError::Malformed(e.to_string()))?;
    let mut list = Tls(inner.as_bytes());
    let mut body = Tls(list.vec16()?);
    if !list.0.is_empty() {
        return Err(SctError::Malformed("trailing bytes after the SCT list".into()));
    }
    let mut out = Vec::new();
    while !body.0.is_empty() {
        if out.len() >= MAX_SCTS {
            return Err(SctError::Malformed(format!("more than {MAX_SCTS} SCTs")));
        }
        let mut sct = Tls(body.vec16()?);
        let version = sct.u8()?;
        let mut log_id = [0u8; 32];
        log_id.copy_from_slice(sct.take(32)?);
        let timestamp = sct.u64()?;
        let extensions = sct.vec16()?.to_vec();
        let hash_algorithm = sct.u8()?;
        let signature_algorithm = sct.u8()?;
        let signature = sct.vec16()?.to_vec();
        if !sct.0.is_empty() {
            return Err(SctError::Malformed("trailing bytes after an SCT".into()));
        }
        out.push(Sct {
            version,
            log_id,
            timestamp,
            extensions,
            hash_algorithm,
            signature_algorithm,
            signature,
        });
    }
    Ok(out)
}

/// The precertificate TBS the CT log signed: the leaf's TBS without the SCT list extension.
pub fn precert_tbs(leaf: &ParsedCert) -> Result<Vec<u8>, SctError> {
    let mut tbs = leaf.cert.tbs_certificate.clone();
    if let Some(exts) = tbs.extensions.as_mut() {
        exts.retain(|e| e.extn_id != OID_SCT_LIST);
    }
    tbs.to_der().map_err(|e| SctError::Malformed(e.to_string()))
}

/// The RFC 6962 `digitally-signed` struct for a precert entry.
pub fn signed_data(sct: &Sct, issuer_key_hash: &[u8; 32], tbs: &[u8]) -> Result<Vec<u8>, SctError> {
    let tbs_len = u32::try_from(tbs.len())
        .ok()
        .filter(|l| *l < (1 << 24))
        .ok_or_else(|| SctError::Malformed("TBS too large".into()))?;
    let ext_len = u16::try_from(sct.extensions.len())
        .map_err(|_| SctError::Malformed("extensions too large".into()))?;
    let mut out = Vec::with_capacity(tbs.len() + 64);
    out.push(sct.version);
    out.push(0); // signature_type = certificate_timestamp
    out.extend_from_slice(&sct.timestamp.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes()); // entry_type = precert_entry
    out.extend_from_slice(issuer_key_hash);
    out.extend_from_slice(tbs_len.to_be_bytes().get(1..).unwrap_or_default());
    out.extend_from_slice(tbs);
    out.extend_from_slice(&ext_len.to_be_bytes());
    out.extend_from_slice(&sct.extensions);
    Ok(out)
}

/// Verify the leaf's embedded SCTs with the trust root's CT logs: SCTs from at least `threshold`
/// distinct logs must verify; returns that number of logs. `issuer` is the certificate that issued the leaf.
pub fn verify_scts(
    leaf: &ParsedCert,
    issuer: &ParsedCert,
    trust_root: &TrustRoot,
    threshold: usize,
) -> Result<usize, SctError> {
    let ext = leaf.extension(OID_SCT_LIST).ok_or(SctError::Missing)?;
    let scts = parse_sct_list(ext)?;
    let tbs = precert_tbs(leaf)?;
    let issuer_spki = issuer.spki_der().map_err(|e| SctError::Malformed(e.to_string()))?;
    let issuer_key_hash: [u8; 32] = Sha256::digest(&issuer_spki).into();
    // Counted per CT log: the same SCT listed twice (or two from one log) is one log's word.
    let mut logs: Vec<[u8; 32]> = Vec::new();
    let mut reasons = Vec::new();
    for sct in &scts {
        match verify_one(sct, &issuer_key_hash, &tbs, trust_root) {
            Ok(()) if !logs.contains(&sct.log_id) => logs.push(sct.log_id),
            Ok(()) => {}
            Err(reason) => reasons.push(format!("SCT from log {}: {reason}", hex::encode(sct.log_id))),
        }
    }
    let verified = logs.len();
    if verified < threshold.max(1) {
        return Err(SctError::NotEnough {
            verified,
            found: scts.len(),
            required: threshold.max(1),
            reasons: if reasons.is_empty() { "no SCTs".into() } else { reasons.join("; ") },
        });
    }
    Ok(verified)
}

fn verify_one(
    sct: &Sct,
    issuer_key_hash: &[u8; 32],
    tbs: &[u8],
    trust_root: &TrustRoot,
) -> Result<(), String> {
    if sct.version != 0 {
        return Err(format!("unsupported SCT version {}", sct.version));
    }
    let log = trust_root.ctlog(&sct.log_id).ok_or("CT log not in the trust root")?;
    let millis = i64::try_from(sct.timestamp).map_err(|_| "timestamp out of range")?;
    let time: DateTime<Utc> = DateTime::from_timestamp_millis(millis).ok_or("timestamp out of range")?;
    if !log.valid_for.contains(time) {
        return Err(format!("SCT time {time} outside the CT log key's validity"));
    }
    // hash_algorithm 4 = sha256; signature_algorithm 3 = ecdsa, 1 = rsa.
    if sct.hash_algorithm != 4 {
        return Err(format!("unsupported SCT hash algorithm {}", sct.hash_algorithm));
    }
    let data = signed_data(sct, issuer_key_hash, tbs).map_err(|e| e.to_string())?;
    let key = &log.public_key;
    let digest = crate::digest::DigestAlgorithm::Sha256;
    key.verify_prehashed(digest, &digest.hash(&data), &sct.signature).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigstore_verify::bundle::Bundle;
    use crate::sigstore_verify::certificate::ParsedAuthority;
    use crate::sigstore_verify::testutil::{conformance, Conformance};

    /// The real Fulcio leaf of a conformance case and the intermediate that issued it.
    fn leaf_and_issuer(suite: &Conformance) -> (ParsedCert, ParsedCert, TrustRoot) {
        let dir = suite.case("happy-path-v0.3");
        let bundle = Bundle::from_json(&std::fs::read(dir.join("bundle.sigstore.json")).unwrap()).unwrap();
        let leaf =
            ParsedCert::from_der(bundle.verification_material.signer.leaf_certificate().unwrap()).unwrap();
        let root = TrustRoot::public_good().unwrap();
        let cas = ParsedAuthority::parse_all(&root.certificate_authorities);
        let issuer = cas
            .iter()
            .filter_map(|a| a.chain().first())
            .find(|c| leaf.check_issued_by(c).is_ok())
            .unwrap()
            .clone();
        (leaf, issuer, root)
    }

    #[test]
    fn verifies_real_embedded_sct() {
        let Some(suite) = conformance() else { return };
        let (leaf, issuer, root) = leaf_and_issuer(&suite);
        let scts = parse_sct_list(leaf.extension(OID_SCT_LIST).unwrap()).unwrap();
        assert_eq!(scts.len(), 1);
        assert_eq!(verify_scts(&leaf, &issuer, &root, 1).unwrap(), 1);
        // Two SCTs cannot be had from one.
        assert!(matches!(
            verify_scts(&leaf, &issuer, &root, 2),
            Err(SctError::NotEnough { verified: 1, .. })
        ));
    }

    #[test]
    fn one_sct_listed_twice_counts_once() {
        let Some(suite) = conformance() else { return };
        let (mut leaf, issuer, root) = leaf_and_issuer(&suite);
        let value = leaf.extension(OID_SCT_LIST).unwrap().to_vec();
        let list = der::asn1::OctetStringRef::from_der(&value).unwrap().as_bytes().to_vec();
        let body = &list[2..];
        let doubled_body = [body, body].concat();
        let mut doubled = (doubled_body.len() as u16).to_be_bytes().to_vec();
        doubled.extend(doubled_body);
        let ext_value = der::asn1::OctetString::new(doubled).unwrap().to_der().unwrap();
        for e in leaf.cert.tbs_certificate.extensions.iter_mut().flatten() {
            if e.extn_id == OID_SCT_LIST {
                e.extn_value = der::asn1::OctetString::new(ext_value.clone()).unwrap();
            }
        }
        assert_eq!(parse_sct_list(leaf.extension(OID_SCT_LIST).unwrap()).unwrap().len(), 2);
        assert_eq!(verify_scts(&leaf, &issuer, &root, 1).unwrap(), 1);
        assert!(matches!(
            verify_scts(&leaf, &issuer, &root, 2),
            Err(SctError::NotEnough { verified: 1, found: 2, .. })
        ));
    }

    #[test]
    fn rejects_wrong_issuer_unknown_log_and_expired_log_key() {
        let Some(suite) = conformance() else { return };
        let (leaf, issuer, root) = leaf_and_issuer(&suite);
        // The issuer key hash is part of the signed data: the leaf itself is not the issuer.
        let r = verify_scts(&leaf, &leaf, &root, 1);
        assert!(matches!(r, Err(SctError::NotEnough { verified: 0, found: 1, .. })), "{r:?}");
        let mut no_logs = root.clone();
        no_logs.ctlogs.clear();
        let err = verify_scts(&leaf, &issuer, &no_logs, 1).unwrap_err();
        assert!(err.to_string().contains("not in the trust root"), "{err}");
        let mut expired = root.clone();
        for log in &mut expired.ctlogs {
            log.valid_for.end = Some(chrono::DateTime::from_timestamp(1_000_000_000, 0).unwrap());
        }
        let err = verify_scts(&leaf, &issuer, &expired, 1).unwrap_err();
        assert!(err.to_string().contains("validity"), "{err}");
    }

    #[test]
    fn tampered_certificate_breaks_the_sct() {
        let Some(suite) = conformance() else { return };
        let (leaf, issuer, root) = leaf_and_issuer(&suite);
        let mut tampered = leaf.clone();
        tampered.cert.tbs_certificate.serial_number =
            x509_cert::serial_number::SerialNumber::new(&[9]).unwrap();
        assert!(matches!(
            verify_scts(&tampered, &issuer, &root, 1),
            Err(SctError::NotEnough { verified: 0, .. })
        ));
    }

    #[test]
    fn malformed_lists_are_rejected() {
        let wrap = |b: &[u8]| der::asn1::OctetString::new(b.to_vec()).unwrap().to_der().unwrap();
        assert!(parse_sct_list(&wrap(&[0, 5, 1])).is_err());
        assert!(parse_sct_list(b"junk").is_err());
        assert_eq!(parse_sct_list(&wrap(&[0, 0])).unwrap(), vec![]);
    }
}
