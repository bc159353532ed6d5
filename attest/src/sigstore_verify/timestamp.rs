//! RFC 3161 timestamps: a timestamp authority of the trust root vouches that a signature existed at genTime.

use chrono::{DateTime, NaiveDateTime, Utc};
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use const_oid::db::{rfc5911, rfc5912};
use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::{Decode, Encode, Reader, Tag};
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::certificate::{verify_leaf, verify_signature, ParsedAuthority, ParsedCert, EKU_TIME_STAMPING};
use crate::digest::DigestAlgorithm;

/// Largest timestamp accepted.
pub const MAX_TIMESTAMP_BYTES: usize = 64 * 1024;
/// Most certificates read from one token.
pub const MAX_EMBEDDED_CERTS: usize = 10;

const OID_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const OID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const OID_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const OID_SKI: ObjectIdentifier = const_oid::db::rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER;

/// Why a timestamp does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Larger than [`MAX_TIMESTAMP_BYTES`].
    #[error("timestamp of {size} bytes exceeds the limit of {MAX_TIMESTAMP_BYTES}")]
    TooLarge {
        /// Size found.
        size: usize,
    },
    /// Not an RFC 3161 TimeStampResp / TimeStampToken.
    #[error("malformed RFC 3161 timestamp: {0}")]
    Malformed(String),
    /// The response's status is not granted.
    #[error("timestamp response status is {0}, not granted")]
    NotGranted(u32),
    /// The timestamp is over something other than the bundle's signature.
    #[error("timestamp message imprint does not match the bundle signature")]
    ImprintMismatch,
    /// The signed attributes do not bind the TSTInfo.
    #[error("timestamp signed attributes: {0}")]
    BadSignedAttributes(String),
    /// No trusted TSA certificate verifies the token.
    #[error("timestamp is not signed by a trusted timestamp authority: {0}")]
    Untrusted(String),
}

/// A timestamp that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTimestamp {
    /// The TSA's genTime.
    pub time: DateTime<Utc>,
    /// The authority that vouched for it.
    pub authority: String,
    /// The chain that signed it (DER): the TSA signer, then the authority's certificates up to its root
    /// (for revocation checks of the TSA chain).
    pub chain: Vec<Vec<u8>>,
}

/// The parts of a TSTInfo vouch needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TstInfo {
    /// Hash algorithm of the imprint.
    pub imprint_algorithm: DigestAlgorithm,
    /// The hashed message.
    pub imprint: Vec<u8>,
    /// The time the TSA asserts.
    pub gen_time: DateTime<Utc>,
}

fn malformed(e: impl std::fmt::Display) -> TimestampError {
    TimestampError::Malformed(e.to_string())
}

/// The TimeStampToken (ContentInfo DER) inside a TimeStampResp, or the input if it already is a token.
fn token_bytes(der: &[u8]) -> Result<&[u8], TimestampError> {
    let mut r = der::SliceReader::new(der).map_err(malformed)?;
    let header = der::Header::decode(&mut r).map_err(malformed)?;
    header.tag.assert_eq(Tag::Sequence).map_err(malformed)?;
    if r.peek_tag().map_err(malformed)? == Tag::ObjectIdentifier {
        return Ok(der);
    }
    let status_info = r.tlv_bytes().map_err(malformed)?;
    let mut s = der::SliceReader::new(status_info).map_err(malformed)?;
    der::Header::decode(&mut s).map_err(malformed)?;
    let status = u32::decode(&mut s).map_err(malformed)?;
    if status > 1 {
        return Err(TimestampError::NotGranted(status));
    }
    if r.is_finished() {
        return Err(malformed("timestamp response without a token"));
    }
    r.tlv_bytes().map_err(malformed)
}

fn digest_for(oid: &ObjectIdentifier) -> Result<DigestAlgorithm, TimestampError> {
    match *oid {
        OID_SHA256 => Ok(DigestAlgorithm::Sha256),
        OID_SHA384 => Ok(DigestAlgorithm::Sha384),
        OID_SHA512 => Ok(DigestAlgorithm::Sha512),
        _ => Err(malformed(format!("unsupported hash algorithm {oid}"))),
    }
}

fn parse_generalized_time(bytes: &[u8]) -> Result<DateTime<Utc>, TimestampError> {
    let s = std::str::from_utf8(bytes).map_err(malformed)?;
    let s = s.strip_suffix('Z').ok_or_else(|| malformed("genTime is not UTC"))?;
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let t = NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S").map_err(malformed)?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("bad genTime fraction"));
    }
    let nanos: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<9}").parse().map_err(malformed)? };
    let t = t.and_utc() + chrono::Duration::nanoseconds(i64::from(nanos));
    Ok(t)
}

/// Parse a DER TSTInfo.
pub fn parse_tst_info(der: &[u8]) -> Result<TstInfo, TimestampError> {
    let mut r = der::SliceReader::new(der).map_err(malformed)?;
    let header = der::Header::decode(&mut r).map_err(malformed)?;
    header.tag.assert_eq(Tag::Sequence).map_err(malformed)?;
    let version = u8::decode(&mut r).map_err(malformed)?;
    if version != 1 {
        return Err(malformed(format!("TSTInfo version {version}")));
    }
    ObjectIdentifier::decode(&mut r).map_err(malformed)?; // policy
    let imprint = r.tlv_bytes().map_err(malformed)?;
    let mut m = der::SliceReader::new(imprint).map_err(malformed)?;
    der::Header::decode(&mut m).map_err(malformed)?;
    let alg = AlgorithmIdentifierOwned::decode(&mut m).map_err(malformed)?;
    let hashed = OctetString::decode(&mut m).map_err(malformed)?;
    let serial = der::Header::decode(&mut r).map_err(malformed)?;
    serial.tag.assert_eq(Tag::Integer).map_err(malformed)?;
    r.read_slice(serial.length).map_err(malformed)?;
    let gen = der::Header::decode(&mut r).map_err(malformed)?;
    gen.tag.assert_eq(Tag::GeneralizedTime).map_err(malformed)?;
    let gen_time = parse_generalized_time(r.read_slice(gen.length).map_err(malformed)?)?;
    let imprint_algorithm = digest_for(&alg.oid)?;
    if hashed.as_bytes().len() != imprint_algorithm.hex_len() / 2 {
        return Err(malformed("message imprint has the wrong length"));
    }
    Ok(TstInfo { imprint_algorithm, imprint: hashed.as_bytes().to_vec(), gen_time })
}

/// The signature algorithm to verify a SignerInfo with (CMS allows the bare key algorithm).
fn signature_algorithm(si: &SignerInfo) -> Result<ObjectIdentifier, TimestampError> {
    let alg = si.signature_algorithm.oid;
    let digest = digest_for(&si.digest_alg.oid)?;
    let ec = alg == rfc5912::ID_EC_PUBLIC_KEY;
    let rsa = alg == rfc5912::RSA_ENCRYPTION;
    Ok(match (ec, rsa, digest) {
        (true, _, DigestAlgorithm::Sha256) => rfc5912::ECDSA_WITH_SHA_256,
        (true, _, DigestAlgorithm::Sha384) => rfc5912::ECDSA_WITH_SHA_384,
        (true, _, DigestAlgorithm::Sha512) => rfc5912::ECDSA_WITH_SHA_512,
        (_, true, DigestAlgorithm::Sha256) => rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
        (_, true, DigestAlgorithm::Sha384) => rfc5912::SHA_384_WITH_RSA_ENCRYPTION,
        (_, true, DigestAlgorithm::Sha512) => rfc5912::SHA_512_WITH_RSA_ENCRYPTION,
        _ => alg,
    })
}

/// What the SignerInfo's signature covers: the DER signed attributes, after checking they bind the
/// TSTInfo. RFC 5652 5.3 requires signed attributes for any content but id-data, so a signature over
/// the bare TSTInfo is refused (it could be a signature by the TSA key over something else).
fn signed_content(si: &SignerInfo, tst_der: &[u8]) -> Result<Vec<u8>, TimestampError> {
    let bad = |m: &str| TimestampError::BadSignedAttributes(m.to_owned());
    let attrs = si.signed_attrs.as_ref().ok_or_else(|| bad("missing (required for a TSTInfo)"))?;
    let digest = digest_for(&si.digest_alg.oid)?;
    let single = |oid: ObjectIdentifier| {
        let attr =
            attrs.iter().find(|a| a.oid == oid).ok_or_else(|| bad(&format!("missing attribute {oid}")))?;
        if attr.values.len() != 1 {
            return Err(bad(&format!("attribute {oid} must have exactly one value")));
        }
        attr.values.get(0).cloned().ok_or_else(|| bad("empty attribute"))
    };
    let content_type = single(rfc5911::ID_CONTENT_TYPE)?
        .decode_as::<ObjectIdentifier>()
        .map_err(|_| bad("content-type is not an OID"))?;
    if content_type != OID_TST_INFO {
        return Err(bad("content-type is not id-ct-TSTInfo"));
    }
    let md = single(rfc5911::ID_MESSAGE_DIGEST)?
        .decode_as::<OctetString>()
        .map_err(|_| bad("message-digest is not an OCTET STRING"))?;
    if md.as_bytes() != digest.hash(tst_der).as_slice() {
        return Err(bad("message-digest does not match the TSTInfo"));
    }
    attrs.to_der().map_err(malformed)
}

fn sid_matches(sid: &SignerIdentifier, cert: &ParsedCert) -> bool {
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            ias.issuer == cert.cert.tbs_certificate.issuer
                && ias.serial_number == cert.cert.tbs_certificate.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => cert
            .extension(OID_SKI)
            .and_then(|v| OctetString::from_der(v).ok())
            .is_some_and(|v| v.as_bytes() == ski.0.as_bytes()),
    }
}

/// The CMS SignedData of a timestamp token (a bare token or a TimeStampResp), bounded in size.
fn signed_data(der: &[u8]) -> Result<SignedData, TimestampError> {
    if der.len() > MAX_TIMESTAMP_BYTES {
        return Err(TimestampError::TooLarge { size: der.len() });
    }
    let token = ContentInfo::from_der(token_bytes(der)?).map_err(malformed)?;
    if token.content_type != OID_SIGNED_DATA {
        return Err(malformed("token is not CMS SignedData"));
    }
    token.content.decode_as().map_err(malformed)
}

/// The certificates a timestamp token carries (at most [`MAX_EMBEDDED_CERTS`]), for callers that complete a
/// TSA chain from a trust store holding only roots (Notation's `tsa` stores).
pub fn embedded_certificates(der: &[u8]) -> Result<Vec<ParsedCert>, TimestampError> {
    let sd = signed_data(der)?;
    let mut out = Vec::new();
    for choice in sd.certificates.iter().flat_map(|c| c.0.iter()).take(MAX_EMBEDDED_CERTS) {
        if let CertificateChoices::Certificate(c) = choice {
            out.push(ParsedCert::from_der(&c.to_der().map_err(malformed)?).map_err(malformed)?);
        }
    }
    Ok(out)
}

/// Verify an RFC 3161 timestamp over `signature` (the bundle's signature bytes) with the trust root's TSAs.
pub fn verify_timestamp(
    der: &[u8],
    signature: &[u8],
    authorities: &[ParsedAuthority],
) -> Result<VerifiedTimestamp, TimestampError> {
    let sd = signed_data(der)?;
    if sd.encap_content_info.econtent_type != OID_TST_INFO {
        return Err(malformed("token does not carry a TSTInfo"));
    }
    let tst_der = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| malformed("token has no TSTInfo content"))?
        .decode_as::<OctetString>()
        .map_err(malformed)?;
    let tst_der = tst_der.as_bytes();
    let tst = parse_tst_info(tst_der)?;
    if tst.imprint != tst.imprint_algorithm.hash(signature) {
        return Err(TimestampError::ImprintMismatch);
    }
    if sd.signer_infos.0.len() != 1 {
        return Err(malformed(format!("expected one signer, found {}", sd.signer_infos.0.len())));
    }
    let si = sd.signer_infos.0.get(0).ok_or_else(|| malformed("no signer"))?;
    let signed = signed_content(si, tst_der)?;
    let alg = signature_algorithm(si)?;

    let mut embedded = Vec::new();
    for choice in sd.certificates.iter().flat_map(|c| c.0.iter()).take(MAX_EMBEDDED_CERTS) {
        if let CertificateChoices::Certificate(c) = choice {
            let der = c.to_der().map_err(malformed)?;
            embedded.push(ParsedCert::from_der(&der).map_err(malformed)?);
        }
    }
    let mut last = String::from("no timestamp authority in the trust root issued the signing certificate");
    for authority in authorities {
        let candidates = embedded.iter().chain(authority.chain().first());
        for cert in candidates {
            if !sid_matches(&si.sid, cert) {
                continue;
            }
            let matched = verify_leaf(
                cert,
                std::slice::from_ref(authority),
                &[tst.gen_time],
                "timestamp authority",
                (EKU_TIME_STAMPING, "timeStamping"),
            );
            if let Err(e) = matched {
                last = e.to_string();
                continue;
            }
            let key = match cert.public_key() {
                Ok(k) => k,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            match verify_signature(&key, &alg, &signed, si.signature.as_bytes()) {
                Ok(()) => {
                    let chain = std::iter::once(cert)
                        .chain(authority.chain().iter().filter(|c| c.der != cert.der))
                        .map(|c| c.der.clone())
                        .collect();
                    return Ok(VerifiedTimestamp {
                        time: tst.gen_time,
                        authority: authority.name.clone(),
                        chain,
                    });
                }
                Err(e) => last = format!("signature does not verify: {e}"),
            }
        }
    }
    Err(TimestampError::Untrusted(last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sigstore_verify::bundle::{Bundle, BundleContent};
    use crate::sigstore_verify::testutil::{conformance, Conformance};
    use crate::trust_root::TrustRoot;

    /// Timestamp, signature it covers, and the case's TSAs.
    fn material(suite: &Conformance, name: &str) -> (Vec<u8>, Vec<u8>, Vec<ParsedAuthority>) {
        let dir = suite.case(name);
        let bundle = Bundle::from_json(&std::fs::read(dir.join("bundle.sigstore.json")).unwrap()).unwrap();
        let BundleContent::MessageSignature { signature, .. } = &bundle.content else {
            panic!("message signature")
        };
        let root = TrustRoot::from_json(&std::fs::read(dir.join("trusted_root.json")).unwrap()).unwrap();
        (
            bundle.verification_material.timestamps[0].clone(),
            signature.clone(),
            ParsedAuthority::parse_all(&root.timestamp_authorities),
        )
    }

    #[test]
    fn verifies_sigstore_tsa_timestamps_with_and_without_embedded_certs() {
        let Some(suite) = conformance() else { return };
        for name in ["rekor2-timestamp-without-embedded-cert", "rekor2-timestamp-with-expired-cert-chain"] {
            let (ts, sig, tsas) = material(&suite, name);
            let v = verify_timestamp(&ts, &sig, &tsas).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(v.time.timestamp() > 1_700_000_000, "{name}: {}", v.time);
        }
    }

    #[test]
    fn rejects_other_signatures_untrusted_tsas_and_times_outside_validity() {
        let Some(suite) = conformance() else { return };
        let (ts, sig, tsas) = material(&suite, "rekor2-timestamp-without-embedded-cert");
        assert_eq!(verify_timestamp(&ts, b"another signature", &tsas), Err(TimestampError::ImprintMismatch));
        assert!(matches!(verify_timestamp(&ts, &sig, &[]), Err(TimestampError::Untrusted(_))));
        let mut expired = tsas.clone();
        for a in &mut expired {
            a.valid_for.end = Some(chrono::DateTime::from_timestamp(1_600_000_000, 0).unwrap());
        }
        let err = verify_timestamp(&ts, &sig, &expired).unwrap_err();
        assert!(err.to_string().contains("not trusted at"), "{err}");
        // A flipped byte in the signature value.
        let mut bad = ts.clone();
        let n = bad.len();
        bad[n - 3] ^= 1;
        let r = verify_timestamp(&bad, &sig, &tsas);
        assert!(
            matches!(&r, Err(TimestampError::Untrusted(m)) if m.starts_with("signature does not verify")),
            "{r:?}"
        );
        assert!(matches!(
            verify_timestamp(b"\x30\x03\x02\x01\x02", &sig, &tsas),
            Err(TimestampError::Malformed(_))
        ));
    }

    #[test]
    fn signed_attributes_are_required() {
        let Some(suite) = conformance() else { return };
        let (ts, _, _) = material(&suite, "rekor2-timestamp-without-embedded-cert");
        let token = ContentInfo::from_der(token_bytes(&ts).unwrap()).unwrap();
        let sd: SignedData = token.content.decode_as().unwrap();
        let tst = sd.encap_content_info.econtent.as_ref().unwrap().decode_as::<OctetString>().unwrap();
        let mut si = sd.signer_infos.0.get(0).unwrap().clone();
        signed_content(&si, tst.as_bytes()).unwrap();
        // RFC 5652 5.3: a TSTInfo is not id-data, so its signer must sign attributes, never the bare
        // content (a signature by the TSA key over other bytes must not pass for a timestamp).
        si.signed_attrs = None;
        let err = signed_content(&si, tst.as_bytes()).unwrap_err();
        assert!(matches!(err, TimestampError::BadSignedAttributes(_)), "{err}");
    }

    #[test]
    fn generalized_time_with_fractions() {
        assert_eq!(parse_generalized_time(b"20250806190351Z").unwrap().timestamp(), 1_754_507_031);
        let t = parse_generalized_time(b"20250806190351.25Z").unwrap();
        assert_eq!(t.timestamp_subsec_millis(), 250);
        assert!(parse_generalized_time(b"20250806190351").is_err());
        assert!(parse_generalized_time(b"20250806190351.x1Z").is_err());
    }
}
