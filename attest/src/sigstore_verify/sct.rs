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
    // The certificate decoded as strict DER, so cutting the extension out of its bytes gives what encoding
    // the TBS without it gives; anything unexpected takes the encoding path.
    if let Some(tbs) = tbs_without_extension(&leaf.der, OID_SCT_LIST.as_bytes()) {
        return Ok(tbs);
    }
    encoded_precert_tbs(leaf)
}

/// [`precert_tbs`] by decoding and encoding again.
fn encoded_precert_tbs(leaf: &ParsedCert) -> Result<Vec<u8>, SctError> {
    let mut tbs = leaf.cert.tbs_certificate.clone();
    if let Some(exts) = tbs.extensions.as_mut() {
        exts.retain(|e| e.extn_id != OID_SCT_LIST);
    }
    tbs.to_der().map_err(|e| SctError::Malformed(e.to_string()))
}

/// One DER element at the start of `bytes`: (tag, header length, content length); single-byte tags and
/// definite lengths of up to four bytes only.
fn der_element(bytes: &[u8]) -> Option<(u8, usize, usize)> {
    let (&tag, rest) = bytes.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (header, len) = match first {
        0..=0x7f => (2, usize::from(first)),
        0x81..=0x84 => {
            let n = usize::from(first & 0x7f);
            let len = rest.get(..n)?.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (2 + n, len)
        }
        _ => return None,
    };
    (bytes.len() - header >= len).then_some((tag, header, len))
}

/// A DER header for `tag` with `len` content bytes.
fn der_header(tag: u8, len: usize, out: &mut Vec<u8>) {
    out.push(tag);
    match len {
        0..=0x7f => out.extend_from_slice(&[len as u8]),
        _ => {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }
}

/// The TBS of the certificate `cert` (DER) with the extension whose OID has the content bytes `oid` cut
/// out, or `None` when the certificate is not laid out as expected.
fn tbs_without_extension(cert: &[u8], oid: &[u8]) -> Option<Vec<u8>> {
    let (tag, header, _) = der_element(cert)?;
    let tbs_at = cert.get(header..).filter(|_| tag == 0x30)?;
    let (tag, header, len) = der_element(tbs_at)?;
    let tbs = tbs_at.get(header..header + len).filter(|_| tag == 0x30)?;
    // The TBS's fields, up to the explicit [3] extensions.
    let mut at = 0;
    let (before, extensions) = loop {
        let (tag, header, len) = der_element(tbs.get(at..)?)?;
        if tag == 0xa3 {
            let end = at + header + len;
            if end != tbs.len() {
                return None;
            }
            break (tbs.get(..at)?, tbs.get(at + header..end)?);
        }
        at += header + len;
    };
    let (tag, header, len) = der_element(extensions)?;
    let list =
        extensions.get(header..header + len).filter(|_| tag == 0x30 && header + len == extensions.len())?;
    let mut kept = Vec::with_capacity(list.len());
    let mut at = 0;
    while at < list.len() {
        let (tag, header, len) = der_element(list.get(at..)?)?;
        let extension = list.get(at..at + header + len).filter(|_| tag == 0x30)?;
        let (tag, oid_header, oid_len) = der_element(extension.get(header..)?)?;
        let id = extension.get(header + oid_header..header + oid_header + oid_len).filter(|_| tag == 0x06)?;
        if id != oid {
            kept.extend_from_slice(extension);
        }
        at += header + len;
    }
    let mut list = Vec::with_capacity(kept.len() + 4);
    der_header(0x30, kept.len(), &mut list);
    list.extend_from_slice(&kept);
    let mut explicit = Vec::with_capacity(list.len() + 4);
    der_header(0xa3, list.len(), &mut explicit);
    explicit.extend_from_slice(&list);
    let mut out = Vec::with_capacity(before.len() + explicit.len() + 4);
    der_header(0x30, before.len() + explicit.len(), &mut out);
    out.extend_from_slice(before);
    out.extend_from_slice(&explicit);
    Some(out)
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
    fn cutting_the_sct_list_out_of_the_der_equals_encoding_the_tbs_without_it() {
        // Every leaf certificate of the conformance cases (real Fulcio leaves, with and without SCTs).
        let Some(suite) = conformance() else { return };
        let mut compared = 0;
        for case in std::fs::read_dir(suite.dir()).unwrap() {
            let path = case.unwrap().path().join("bundle.sigstore.json");
            let Ok(bytes) = std::fs::read(&path) else { continue };
            let Ok(bundle) = Bundle::from_json(&bytes) else { continue };
            let Some(der) = bundle.verification_material.signer.leaf_certificate() else { continue };
            let leaf = ParsedCert::from_der(der).unwrap();
            let cut = tbs_without_extension(&leaf.der, OID_SCT_LIST.as_bytes()).expect("a plain DER layout");
            assert_eq!(cut, encoded_precert_tbs(&leaf).unwrap(), "{}", path.display());
            compared += 1;
        }
        assert!(compared >= 10, "only {compared} leaf certificates compared");
        // Built in code: only the SCT list (an extensions list left empty), a long TBS (two-byte lengths),
        // no SCT list at all; and an unexpected layout is left to the encoding path.
        let ca = crate::sigstore_verify::testutil::TestCa::new();
        let key = crate::SigningKey::generate();
        let long_san = format!("https://example.com/{}", "a".repeat(600));
        for san in ["https://example.com/w", long_san.as_str()] {
            let leaf = ca.leaf(&key, 0, 100, san, "https://issuer.example");
            let cut = tbs_without_extension(&leaf.der, OID_SCT_LIST.as_bytes()).unwrap();
            assert_eq!(cut, encoded_precert_tbs(&leaf).unwrap());
            let other = ObjectIdentifier::new_unwrap("2.5.29.17");
            let without_san = tbs_without_extension(&leaf.der, other.as_bytes()).unwrap();
            let mut tbs = leaf.cert.tbs_certificate.clone();
            tbs.extensions.as_mut().unwrap().retain(|e| e.extn_id != other);
            assert_eq!(without_san, tbs.to_der().unwrap());
        }
        let only_scts = crate::sigstore_verify::testutil::make_cert(
            "",
            "CN=test",
            &key,
            &key,
            0,
            100,
            vec![crate::sigstore_verify::testutil::ext(OID_SCT_LIST, vec![0x04, 0x02, 0x00, 0x00])],
        );
        let cut = tbs_without_extension(&only_scts.der, OID_SCT_LIST.as_bytes()).unwrap();
        assert_eq!(cut, encoded_precert_tbs(&only_scts).unwrap());
        assert!(cut.ends_with(&[0xa3, 0x02, 0x30, 0x00]), "an empty extensions list is kept, as encoded");
        assert_eq!(tbs_without_extension(&[0x30, 0x03, 0x02, 0x01, 0x00], b"x"), None);
        assert_eq!(tbs_without_extension(&[0x30, 0x85, 0, 0, 0, 0, 1], b"x"), None);
        assert_eq!(tbs_without_extension(&[], b"x"), None);
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
        let mut cert = leaf.cert.clone();
        cert.tbs_certificate.serial_number = x509_cert::serial_number::SerialNumber::new(&[9]).unwrap();
        let tampered = ParsedCert::from_der(&cert.to_der().unwrap()).unwrap();
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
