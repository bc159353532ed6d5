//! X.509 chains: a leaf (Fulcio signing certificate or TSA signer) checked up to a certificate authority of
//! the trust root, every signature verified, every certificate valid at the given times (not now).

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use const_oid::db::{rfc5280, rfc5912, rfc8410};
use const_oid::ObjectIdentifier;
use der::{Decode, Encode, Reader};
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages};
use x509_cert::Certificate;

use crate::digest::DigestAlgorithm;
use crate::keys::{KeyAlgorithm, PublicKey};
use crate::trust_root::{CertificateAuthority, Validity};

/// Extensions whose meaning vouch checks or reads, and which may therefore be critical.
const PROCESSED_EXTENSIONS: [ObjectIdentifier; 4] = [
    rfc5280::ID_CE_BASIC_CONSTRAINTS,
    rfc5280::ID_CE_KEY_USAGE,
    rfc5280::ID_CE_EXT_KEY_USAGE,
    rfc5280::ID_CE_SUBJECT_ALT_NAME,
];

/// Extended key usage: code signing (Fulcio leaves).
pub const EKU_CODE_SIGNING: ObjectIdentifier = rfc5280::ID_KP_CODE_SIGNING;
/// Extended key usage: time stamping (TSA signers).
pub const EKU_TIME_STAMPING: ObjectIdentifier = rfc5280::ID_KP_TIME_STAMPING;

/// Why a certificate or chain is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// Not DER X.509.
    #[error("malformed certificate: {reason}")]
    Malformed {
        /// Parser message.
        reason: String,
    },
    /// The certificate's public key is unusable.
    #[error("unsupported certificate public key: {reason}")]
    UnsupportedKey {
        /// What is wrong.
        reason: String,
    },
    /// No trusted CA issued this certificate.
    #[error("certificate chain does not lead to a trusted {what} (issuer {issuer})")]
    UntrustedIssuer {
        /// `Fulcio CA` or `timestamp authority`.
        what: &'static str,
        /// The certificate's issuer name.
        issuer: String,
    },
    /// A signature in the chain does not verify.
    #[error("signature of certificate {subject:?} does not verify with its issuer's key: {reason}")]
    BadSignature {
        /// The certificate whose signature failed.
        subject: String,
        /// Why.
        reason: String,
    },
    /// A certificate is not valid at a time the signature must hold.
    #[error("certificate {subject:?} is not valid at {time} (valid {not_before} to {not_after})")]
    NotValidAt {
        /// Certificate subject.
        subject: String,
        /// The signing time.
        time: DateTime<Utc>,
        /// Start of validity.
        not_before: DateTime<Utc>,
        /// End of validity.
        not_after: DateTime<Utc>,
    },
    /// The authority's trust-root validity does not contain the time.
    #[error("{what} {name:?} is not trusted at {time} (trust root validFor)")]
    AuthorityNotValidAt {
        /// `Fulcio CA` or `timestamp authority`.
        what: &'static str,
        /// CA name.
        name: String,
        /// The signing time.
        time: DateTime<Utc>,
    },
    /// The leaf lacks the required extended key usage.
    #[error("certificate {subject:?} lacks the {usage} extended key usage")]
    MissingKeyUsage {
        /// Certificate subject.
        subject: String,
        /// The usage required.
        usage: &'static str,
    },
    /// An issuing certificate is not a CA.
    #[error("certificate {subject:?} is used as an issuer but is not a CA (basicConstraints)")]
    NotACa {
        /// Certificate subject.
        subject: String,
    },
    /// The leaf claims to be a CA.
    #[error("leaf certificate {subject:?} is a CA certificate")]
    LeafIsCa {
        /// Certificate subject.
        subject: String,
    },
    /// No time to check validity against.
    #[error("no verified signing time to check the certificate against")]
    NoTime,
    /// A critical extension vouch does not process (RFC 5280 requires rejecting the certificate).
    #[error("certificate {subject:?} has critical extension {oid}, which vouch does not process")]
    UnknownCriticalExtension {
        /// Certificate subject.
        subject: String,
        /// The extension.
        oid: String,
    },
    /// An extension appears more than once (RFC 5280 forbids it; readers could disagree on which counts).
    #[error("certificate {subject:?} carries extension {oid} more than once")]
    DuplicateExtension {
        /// Certificate subject.
        subject: String,
        /// The extension.
        oid: String,
    },
    /// keyUsage does not allow what the certificate is used for.
    #[error("certificate {subject:?} keyUsage does not allow {usage}")]
    KeyUsageNotAllowed {
        /// Certificate subject.
        subject: String,
        /// The usage required.
        usage: &'static str,
    },
    /// A CA's pathLenConstraint is exceeded by the chain below it.
    #[error("certificate {subject:?} allows {max} intermediate CAs below it, the chain has {found}")]
    PathTooLong {
        /// The constraining CA.
        subject: String,
        /// Its pathLenConstraint.
        max: u8,
        /// Intermediate CAs below it.
        found: usize,
    },
}

/// A certificate kept as parsed structure and original DER.
#[derive(Debug, Clone)]
pub struct ParsedCert {
    /// The structure.
    pub cert: Certificate,
    /// The DER it was parsed from (signatures are over its TBS bytes).
    pub der: Vec<u8>,
    /// Its public key, read on first use and kept: a trust root's CA keys are read once, not per signature.
    key: OnceLock<Result<PublicKey, CertificateError>>,
}

impl ParsedCert {
    /// Parse DER.
    pub fn from_der(der: &[u8]) -> Result<Self, CertificateError> {
        let cert =
            Certificate::from_der(der).map_err(|e| CertificateError::Malformed { reason: e.to_string() })?;
        Ok(Self::from_parts(cert, der))
    }

    /// A certificate already decoded from `der`.
    pub(crate) fn from_parts(cert: Certificate, der: &[u8]) -> Self {
        Self { cert, der: der.to_vec(), key: OnceLock::new() }
    }

    /// Subject as an RFC 4514 string for messages; Fulcio leaves have an empty subject, so those are
    /// named by serial number.
    pub fn subject(&self) -> String {
        let s = self.cert.tbs_certificate.subject.to_string();
        if s.is_empty() {
            format!("serial {}", hex::encode(self.cert.tbs_certificate.serial_number.as_bytes()))
        } else {
            s
        }
    }

    /// The public key.
    pub fn public_key(&self) -> Result<PublicKey, CertificateError> {
        self.key
            .get_or_init(|| {
                let spki = self.spki_der()?;
                PublicKey::from_spki_der(&spki)
                    .map_err(|e| CertificateError::UnsupportedKey { reason: e.to_string() })
            })
            .clone()
    }

    /// The SubjectPublicKeyInfo as DER.
    pub fn spki_der(&self) -> Result<Vec<u8>, CertificateError> {
        self.cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| CertificateError::Malformed { reason: e.to_string() })
    }

    /// Start of validity.
    pub fn not_before(&self) -> DateTime<Utc> {
        to_chrono(self.cert.tbs_certificate.validity.not_before.to_unix_duration())
    }

    /// End of validity (inclusive, RFC 5280).
    pub fn not_after(&self) -> DateTime<Utc> {
        to_chrono(self.cert.tbs_certificate.validity.not_after.to_unix_duration())
    }

    /// Fail unless valid at `t`.
    pub fn check_valid_at(&self, t: DateTime<Utc>) -> Result<(), CertificateError> {
        let (nb, na) = (self.not_before(), self.not_after());
        if t < nb || t > na {
            return Err(CertificateError::NotValidAt {
                subject: self.subject(),
                time: t,
                not_before: nb,
                not_after: na,
            });
        }
        Ok(())
    }

    /// Whether the certificate names itself as issuer.
    pub fn is_self_issued(&self) -> bool {
        self.cert.tbs_certificate.subject == self.cert.tbs_certificate.issuer
    }

    /// Verify that `issuer` signed this certificate (names chain, signature verifies).
    pub fn check_issued_by(&self, issuer: &ParsedCert) -> Result<(), CertificateError> {
        let bad = |reason: String| CertificateError::BadSignature { subject: self.subject(), reason };
        if self.cert.tbs_certificate.issuer != issuer.cert.tbs_certificate.subject {
            return Err(bad("issuer name does not match the issuing certificate's subject".into()));
        }
        // RFC 5280 4.1.1.2: the signed algorithm and the one used to verify must be the same.
        if self.cert.tbs_certificate.signature != self.cert.signature_algorithm {
            return Err(bad("signatureAlgorithm differs from the algorithm inside the signed TBS".into()));
        }
        let tbs = tbs_bytes(&self.der).map_err(|e| bad(e.to_string()))?;
        let sig = self
            .cert
            .signature
            .as_bytes()
            .ok_or_else(|| bad("signature is not a whole number of bytes".into()))?;
        let key = issuer.public_key()?;
        verify_signature(&key, &self.cert.signature_algorithm.oid, tbs, sig).map_err(bad)
    }

    /// The extension with `oid`, if present (raw extnValue).
    pub fn extension(&self, oid: ObjectIdentifier) -> Option<&[u8]> {
        self.cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == oid)
            .map(|e| e.extn_value.as_bytes())
    }

    /// Fail on a critical extension vouch does not process (RFC 5280 4.2).
    pub fn check_critical_extensions(&self) -> Result<(), CertificateError> {
        let exts = self.cert.tbs_certificate.extensions.as_deref().unwrap_or_default();
        match exts.iter().find(|e| e.critical && !PROCESSED_EXTENSIONS.contains(&e.extn_id)) {
            Some(e) => Err(CertificateError::UnknownCriticalExtension {
                subject: self.subject(),
                oid: e.extn_id.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Fail on an extension present twice: readers that take the first or the last one would disagree
    /// (e.g. on the SAN or the OIDC issuer).
    pub fn check_unique_extensions(&self) -> Result<(), CertificateError> {
        let exts = self.cert.tbs_certificate.extensions.as_deref().unwrap_or_default();
        for (i, e) in exts.iter().enumerate() {
            if exts.iter().skip(i + 1).any(|other| other.extn_id == e.extn_id) {
                return Err(CertificateError::DuplicateExtension {
                    subject: self.subject(),
                    oid: e.extn_id.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Fail if keyUsage is present and lacks `usage` (absent keyUsage allows every usage).
    pub fn check_key_usage(&self, usage: KeyUsages, name: &'static str) -> Result<(), CertificateError> {
        let Some(value) = self.extension(rfc5280::ID_CE_KEY_USAGE) else {
            return Ok(());
        };
        match KeyUsage::from_der(value) {
            Ok(ku) if ku.0.contains(usage) => Ok(()),
            _ => Err(CertificateError::KeyUsageNotAllowed { subject: self.subject(), usage: name }),
        }
    }

    /// basicConstraints' pathLenConstraint, if any.
    pub fn path_len(&self) -> Option<u8> {
        self.extension(rfc5280::ID_CE_BASIC_CONSTRAINTS)
            .and_then(|v| BasicConstraints::from_der(v).ok())
            .and_then(|bc| bc.path_len_constraint)
    }

    /// Whether basicConstraints says CA=true.
    pub fn is_ca(&self) -> bool {
        self.extension(rfc5280::ID_CE_BASIC_CONSTRAINTS)
            .and_then(|v| BasicConstraints::from_der(v).ok())
            .is_some_and(|bc| bc.ca)
    }

    /// Fail unless the extended key usage lists `usage`.
    pub fn check_eku(&self, usage: ObjectIdentifier, name: &'static str) -> Result<(), CertificateError> {
        let ok = self
            .extension(rfc5280::ID_CE_EXT_KEY_USAGE)
            .and_then(|v| ExtendedKeyUsage::from_der(v).ok())
            .is_some_and(|eku| eku.0.contains(&usage));
        if ok {
            Ok(())
        } else {
            Err(CertificateError::MissingKeyUsage { subject: self.subject(), usage: name })
        }
    }
}

fn to_chrono(d: std::time::Duration) -> DateTime<Utc> {
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The raw TBSCertificate bytes of a DER certificate: exactly what the issuer signed.
pub fn tbs_bytes(der: &[u8]) -> der::Result<&[u8]> {
    let mut reader = der::SliceReader::new(der)?;
    let header = der::Header::decode(&mut reader)?;
    header.tag.assert_eq(der::Tag::Sequence)?;
    reader.tlv_bytes()
}

/// Verify `sig` over `msg` with `key` under the X.509/CMS signature algorithm `alg`.
pub fn verify_signature(
    key: &PublicKey,
    alg: &ObjectIdentifier,
    msg: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let hash = if *alg == rfc5912::ECDSA_WITH_SHA_256 || *alg == rfc5912::SHA_256_WITH_RSA_ENCRYPTION {
        DigestAlgorithm::Sha256
    } else if *alg == rfc5912::ECDSA_WITH_SHA_384 || *alg == rfc5912::SHA_384_WITH_RSA_ENCRYPTION {
        DigestAlgorithm::Sha384
    } else if *alg == rfc5912::ECDSA_WITH_SHA_512 || *alg == rfc5912::SHA_512_WITH_RSA_ENCRYPTION {
        DigestAlgorithm::Sha512
    } else if *alg == rfc8410::ID_ED_25519 {
        if key.algorithm() != KeyAlgorithm::Ed25519 {
            return Err(format!("algorithm {alg} does not fit a {} key", key.kind()));
        }
        return key.verify(msg, sig).map_err(|e| e.to_string());
    } else {
        return Err(format!("unsupported signature algorithm {alg}"));
    };
    let is_rsa_alg = [
        rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
        rfc5912::SHA_384_WITH_RSA_ENCRYPTION,
        rfc5912::SHA_512_WITH_RSA_ENCRYPTION,
    ]
    .contains(alg);
    let key_fits = match key.algorithm() {
        KeyAlgorithm::EcdsaP256 | KeyAlgorithm::EcdsaP384 => !is_rsa_alg,
        KeyAlgorithm::Rsa => is_rsa_alg,
        KeyAlgorithm::Ed25519 => false,
    };
    if !key_fits {
        return Err(format!("algorithm {alg} does not fit a {} key", key.kind()));
    }
    if key.algorithm() == KeyAlgorithm::Rsa {
        // The OID names PKCS#1 v1.5; a PSS signature is another algorithm, not an equivalent.
        return key
            .verify_prehashed_pkcs1(hash, &hash.hash(msg), sig)
            .map_err(|_| "RSA PKCS#1 v1.5 signature does not verify".into());
    }
    key.verify_prehashed(hash, &hash.hash(msg), sig).map_err(|e| e.to_string())
}

/// A certificate authority of the trust root with its chain parsed once.
#[derive(Debug, Clone)]
pub struct ParsedAuthority {
    /// Informational name.
    pub name: String,
    /// Leaf-most first, root last (private: the signature checks kept below are of this chain).
    chain: Vec<ParsedCert>,
    /// Trust-root validity window.
    pub valid_for: Validity,
    /// Whether each certificate of `chain` is signed by the next one (the last by itself when
    /// self-issued): checked on first use and kept, since the chain never changes.
    signatures: OnceLock<Vec<Result<(), CertificateError>>>,
}

impl ParsedAuthority {
    /// Parse every authority; those whose certificates do not parse are left out (never trusted).
    pub fn parse_all(cas: &[CertificateAuthority]) -> Vec<Self> {
        cas.iter()
            .filter_map(|ca| {
                let chain = ca
                    .chain
                    .iter()
                    .map(|d| ParsedCert::from_der(d))
                    .collect::<Result<Vec<_>, _>>();
                match chain {
                    Ok(chain) if !chain.is_empty() => Some(Self::new(
                        if ca.common_name.is_empty() { ca.uri.clone() } else { ca.common_name.clone() },
                        chain,
                        ca.valid_for,
                    )),
                    _ => {
                        tracing::warn!(authority = %ca.uri, "ignoring trust-root authority whose certificates do not parse");
                        None
                    }
                }
            })
            .collect()
    }

    /// An authority from its chain (leaf-most first).
    pub fn new(name: String, chain: Vec<ParsedCert>, valid_for: Validity) -> Self {
        Self { name, chain, valid_for, signatures: OnceLock::new() }
    }

    /// The chain, leaf-most first, root last.
    pub fn chain(&self) -> &[ParsedCert] {
        &self.chain
    }

    /// The signature check of each certificate of the chain by its issuer, done once.
    fn chain_signatures(&self) -> &[Result<(), CertificateError>] {
        self.signatures.get_or_init(|| {
            self.chain
                .iter()
                .enumerate()
                .map(|(i, cert)| match self.chain.get(i + 1) {
                    Some(issuer) => cert.check_issued_by(issuer),
                    None if cert.is_self_issued() => cert.check_issued_by(cert),
                    None => Ok(()),
                })
                .collect()
        })
    }

    /// Check the authority's own chain: each certificate issued by the next, issuers are CAs, the last one
    /// self-signed, all valid at every time in `times`, and the authority's validFor containing them.
    fn check_path(&self, what: &'static str, times: &[DateTime<Utc>]) -> Result<(), CertificateError> {
        for t in times {
            if !self.valid_for.contains(*t) {
                return Err(CertificateError::AuthorityNotValidAt {
                    what,
                    name: self.name.clone(),
                    time: *t,
                });
            }
        }
        for (cert, signed) in self.chain.iter().zip(self.chain_signatures()) {
            signed.clone()?;
            for t in times {
                cert.check_valid_at(*t)?;
            }
        }
        Ok(())
    }
}

/// The result of a successful chain check.
#[derive(Debug, Clone, Copy)]
pub struct ChainMatch<'a> {
    /// The authority the leaf chains to.
    pub authority: &'a ParsedAuthority,
    /// The certificate that issued the leaf (for SCT issuer key hashes); `None` when the leaf is the
    /// authority's own first certificate (TSA signers listed in the trust root).
    pub issuer: Option<&'a ParsedCert>,
}

/// Check that `leaf` chains to one of `authorities` with every certificate valid at each of `times`.
/// `what` names the authority kind in errors; `eku` is the usage the leaf must carry.
pub fn verify_leaf<'a>(
    leaf: &ParsedCert,
    authorities: &'a [ParsedAuthority],
    times: &[DateTime<Utc>],
    what: &'static str,
    eku: (ObjectIdentifier, &'static str),
) -> Result<ChainMatch<'a>, CertificateError> {
    if times.is_empty() {
        return Err(CertificateError::NoTime);
    }
    if leaf.is_ca() {
        return Err(CertificateError::LeafIsCa { subject: leaf.subject() });
    }
    leaf.check_eku(eku.0, eku.1)?;
    leaf.check_critical_extensions()?;
    leaf.check_unique_extensions()?;
    leaf.check_key_usage(KeyUsages::DigitalSignature, "digitalSignature")?;
    // The most specific failure among authorities whose first certificate is the leaf's issuer.
    let mut closest: Option<CertificateError> = None;
    for authority in authorities {
        let Some(first) = authority.chain.first() else { continue };
        let issuer = if first.der == leaf.der {
            None
        } else if leaf.cert.tbs_certificate.issuer == first.cert.tbs_certificate.subject {
            Some(first)
        } else {
            continue;
        };
        let attempt = (|| {
            if let Some(issuer) = issuer {
                if !issuer.is_ca() {
                    return Err(CertificateError::NotACa { subject: issuer.subject() });
                }
                leaf.check_issued_by(issuer)?;
            }
            for cert in authority.chain.iter().skip(1) {
                if !cert.is_ca() {
                    return Err(CertificateError::NotACa { subject: cert.subject() });
                }
            }
            // The CAs above the leaf: the whole chain, or all but the leaf itself when it is listed.
            let cas = if issuer.is_some() {
                authority.chain.as_slice()
            } else {
                authority.chain.get(1..).unwrap_or_default()
            };
            for (i, ca) in cas.iter().enumerate() {
                // Trust-root certificates are trusted material: only what they would forbid is checked.
                ca.check_critical_extensions()?;
                ca.check_key_usage(KeyUsages::KeyCertSign, "keyCertSign")?;
                if let Some(max) = ca.path_len() {
                    let below = cas.iter().take(i).filter(|c| !c.is_self_issued()).count();
                    if below > usize::from(max) {
                        return Err(CertificateError::PathTooLong {
                            subject: ca.subject(),
                            max,
                            found: below,
                        });
                    }
                }
            }
            for t in times {
                leaf.check_valid_at(*t)?;
            }
            authority.check_path(what, times)
        })();
        match attempt {
            Ok(()) => return Ok(ChainMatch { authority, issuer }),
            Err(e) => {
                // A signature failure is less telling than a validity failure on a matching chain.
                if closest.is_none() || !matches!(e, CertificateError::BadSignature { .. }) {
                    closest = Some(e);
                }
            }
        }
    }
    Err(closest.unwrap_or_else(|| CertificateError::UntrustedIssuer {
        what,
        issuer: leaf.cert.tbs_certificate.issuer.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::sigstore_verify::testutil::{at, basic_constraints, eku, ext, make_cert, san_uri, TestCa};
    use x509_cert::ext::pkix::{KeyUsage, KeyUsages};
    use x509_cert::ext::Extension;

    const CODE: (ObjectIdentifier, &str) = (EKU_CODE_SIGNING, "codeSigning");

    #[test]
    fn chain_verifies_at_signing_time_not_now() {
        let ca = TestCa::new();
        let leaf = ca.leaf(&SigningKey::generate(), 1000, 1600, "https://x", "https://issuer");
        let authorities = [ca.authority.clone()];
        let m = verify_leaf(&leaf, &authorities, &[at(1200)], "Fulcio CA", CODE).unwrap();
        assert_eq!(m.issuer.unwrap().subject(), "CN=test intermediate");
        // Every verified time must lie in the leaf's validity.
        let err = verify_leaf(&leaf, &authorities, &[at(1200), at(1700)], "Fulcio CA", CODE).unwrap_err();
        assert!(matches!(err, CertificateError::NotValidAt { .. }), "{err}");
        assert!(err.to_string().contains("is not valid at"));
        assert_eq!(
            verify_leaf(&leaf, &authorities, &[], "Fulcio CA", CODE).unwrap_err(),
            CertificateError::NoTime
        );
    }

    #[test]
    fn authority_validity_window_applies() {
        let mut ca = TestCa::new();
        ca.authority.valid_for = Validity { start: Some(at(1300)), end: None };
        let leaf = ca.leaf(&SigningKey::generate(), 1000, 1600, "https://x", "https://issuer");
        let err = verify_leaf(&leaf, std::slice::from_ref(&ca.authority), &[at(1200)], "Fulcio CA", CODE)
            .unwrap_err();
        assert!(matches!(err, CertificateError::AuthorityNotValidAt { .. }), "{err}");
    }

    #[test]
    fn rejects_untrusted_forged_and_misused_certificates() {
        let ca = TestCa::new();
        let other = TestCa::new();
        let key = SigningKey::generate();
        // Issued by another CA with the same names: the signature does not verify.
        let forged = other.leaf(&key, 1000, 1600, "https://x", "https://issuer");
        let err = verify_leaf(&forged, std::slice::from_ref(&ca.authority), &[at(1200)], "Fulcio CA", CODE)
            .unwrap_err();
        assert!(matches!(err, CertificateError::BadSignature { .. }), "{err}");
        // An issuer name no authority has.
        let stranger = make_cert("", "CN=elsewhere", &key, &key, 0, 2000, vec![eku(EKU_CODE_SIGNING)]);
        let err = verify_leaf(&stranger, std::slice::from_ref(&ca.authority), &[at(1200)], "Fulcio CA", CODE)
            .unwrap_err();
        assert!(err.to_string().contains("does not lead to a trusted Fulcio CA"), "{err}");
        // No code-signing usage.
        let no_eku = make_cert("", "CN=test intermediate", &key, &ca.intermediate_key, 0, 2000, vec![]);
        let err = verify_leaf(&no_eku, std::slice::from_ref(&ca.authority), &[at(1200)], "Fulcio CA", CODE)
            .unwrap_err();
        assert!(matches!(err, CertificateError::MissingKeyUsage { .. }), "{err}");
        // A CA certificate used as a leaf.
        let ca_leaf = make_cert(
            "CN=sub",
            "CN=test intermediate",
            &key,
            &ca.intermediate_key,
            0,
            2000,
            vec![basic_constraints(true), eku(EKU_CODE_SIGNING)],
        );
        let err = verify_leaf(&ca_leaf, std::slice::from_ref(&ca.authority), &[at(1200)], "Fulcio CA", CODE)
            .unwrap_err();
        assert!(matches!(err, CertificateError::LeafIsCa { .. }), "{err}");
        // An intermediate that is not a CA cannot issue.
        let mut chain = ca.authority.chain().to_vec();
        chain[0] = make_cert(
            "CN=test intermediate",
            "CN=test root",
            &ca.intermediate_key,
            &ca.root_key,
            0,
            2_000_000_000,
            vec![],
        );
        let not_ca = ParsedAuthority::new("test".into(), chain, Validity::default());
        let leaf = ca.leaf(&key, 1000, 1600, "https://x", "https://issuer");
        let err = verify_leaf(&leaf, &[not_ca], &[at(1200)], "Fulcio CA", CODE).unwrap_err();
        assert!(matches!(err, CertificateError::NotACa { .. }), "{err}");
    }

    /// A CA pair whose root and intermediate carry the given extensions.
    fn ca_with(root_exts: Vec<Extension>, intermediate_exts: Vec<Extension>) -> TestCa {
        let mut ca = TestCa::new();
        let root = make_cert(
            "CN=test root",
            "CN=test root",
            &ca.root_key,
            &ca.root_key,
            0,
            2_000_000_000,
            root_exts,
        );
        let intermediate = make_cert(
            "CN=test intermediate",
            "CN=test root",
            &ca.intermediate_key,
            &ca.root_key,
            0,
            2_000_000_000,
            intermediate_exts,
        );
        ca.authority = ParsedAuthority::new("test".into(), vec![intermediate, root], Validity::default());
        ca
    }

    fn leaf_with(ca: &TestCa, extra: Vec<Extension>) -> ParsedCert {
        let mut exts = vec![basic_constraints(false), eku(EKU_CODE_SIGNING), san_uri("https://x")];
        exts.extend(extra);
        make_cert("", "CN=test intermediate", &SigningKey::generate(), &ca.intermediate_key, 0, 2000, exts)
    }

    fn check(ca: &TestCa, leaf: &ParsedCert) -> Result<(), CertificateError> {
        verify_leaf(leaf, std::slice::from_ref(&ca.authority), &[at(1200)], "Fulcio CA", CODE).map(|_| ())
    }

    fn critical(mut e: Extension) -> Extension {
        e.critical = true;
        e
    }

    fn key_usage(usages: KeyUsages) -> Extension {
        ext(const_oid::db::rfc5280::ID_CE_KEY_USAGE, KeyUsage(usages.into()).to_der().unwrap())
    }

    fn ca_constraints(path_len: Option<u8>) -> Extension {
        critical(ext(
            const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS,
            BasicConstraints { ca: true, path_len_constraint: path_len }.to_der().unwrap(),
        ))
    }

    #[test]
    fn unknown_critical_and_duplicate_extensions_are_rejected() {
        let ca = TestCa::new();
        let unknown = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.99999.1");
        check(&ca, &leaf_with(&ca, vec![ext(unknown, vec![5, 0])])).unwrap();
        let err = check(&ca, &leaf_with(&ca, vec![critical(ext(unknown, vec![5, 0]))])).unwrap_err();
        assert!(matches!(err, CertificateError::UnknownCriticalExtension { .. }), "{err}");
        // CT precertificate poison: a precertificate is not a certificate.
        let poison = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.11129.2.4.3");
        let err = check(&ca, &leaf_with(&ca, vec![critical(ext(poison, vec![5, 0]))])).unwrap_err();
        assert!(matches!(err, CertificateError::UnknownCriticalExtension { .. }), "{err}");
        // In the trust root's chain as well.
        let odd = ca_with(
            vec![ca_constraints(None)],
            vec![ca_constraints(None), critical(ext(unknown, vec![5, 0]))],
        );
        let err = check(&odd, &leaf_with(&odd, vec![])).unwrap_err();
        assert!(matches!(err, CertificateError::UnknownCriticalExtension { .. }), "{err}");
        // A trust-root CA listing keyUsage twice (as some certificate builders do) is tolerated.
        let ku = || critical(key_usage(KeyUsages::KeyCertSign));
        let doubled = ca_with(vec![ca_constraints(None), ku(), ku()], vec![ca_constraints(None)]);
        check(&doubled, &leaf_with(&doubled, vec![])).unwrap();
        // Two SANs: which one is the identity?
        let err = check(&ca, &leaf_with(&ca, vec![san_uri("https://y")])).unwrap_err();
        assert!(matches!(err, CertificateError::DuplicateExtension { .. }), "{err}");
    }

    #[test]
    fn key_usage_must_allow_signing_and_issuing() {
        let ca = TestCa::new();
        check(&ca, &leaf_with(&ca, vec![critical(key_usage(KeyUsages::DigitalSignature))])).unwrap();
        let err =
            check(&ca, &leaf_with(&ca, vec![critical(key_usage(KeyUsages::KeyEncipherment))])).unwrap_err();
        assert!(matches!(err, CertificateError::KeyUsageNotAllowed { .. }), "{err}");
        let signing_only = ca_with(
            vec![ca_constraints(None)],
            vec![ca_constraints(None), critical(key_usage(KeyUsages::DigitalSignature))],
        );
        let err = check(&signing_only, &leaf_with(&signing_only, vec![])).unwrap_err();
        assert!(matches!(err, CertificateError::KeyUsageNotAllowed { .. }), "{err}");
        let issuing = ca_with(
            vec![ca_constraints(None)],
            vec![ca_constraints(None), critical(key_usage(KeyUsages::KeyCertSign))],
        );
        check(&issuing, &leaf_with(&issuing, vec![])).unwrap();
    }

    #[test]
    fn path_length_constraints_hold() {
        // The root allows no intermediate CA below it, yet one issued the leaf.
        let ca = ca_with(vec![ca_constraints(Some(0))], vec![ca_constraints(Some(0))]);
        let err = check(&ca, &leaf_with(&ca, vec![])).unwrap_err();
        assert!(matches!(err, CertificateError::PathTooLong { max: 0, found: 1, .. }), "{err}");
        let ok = ca_with(vec![ca_constraints(Some(1))], vec![ca_constraints(Some(0))]);
        check(&ok, &leaf_with(&ok, vec![])).unwrap();
    }

    #[test]
    fn inner_and_outer_signature_algorithms_must_agree() {
        let ca = TestCa::new();
        let leaf = leaf_with(&ca, vec![]);
        let mut cert = leaf.cert.clone();
        cert.tbs_certificate.signature.oid = rfc5912::ECDSA_WITH_SHA_384;
        let sig = ca.intermediate_key.sign(&cert.tbs_certificate.to_der().unwrap());
        cert.signature = der::asn1::BitString::from_bytes(&sig).unwrap();
        let mismatched = ParsedCert::from_der(&cert.to_der().unwrap()).unwrap();
        let err = check(&ca, &mismatched).unwrap_err();
        assert!(matches!(err, CertificateError::BadSignature { .. }), "{err}");
    }

    #[test]
    fn rsa_pkcs1_algorithm_does_not_accept_a_pss_signature() {
        // Signatures by the OpenSSL CLI (attest/tests/data/openssl-keys/README.md).
        let pk = PublicKey::from_pem(include_str!("../../tests/data/openssl-keys/rsa.pub")).unwrap();
        let msg = include_bytes!("../../tests/data/openssl-keys/message.txt");
        let pkcs1 = include_bytes!("../../tests/data/openssl-keys/rsa-pkcs1v15-sha256.sig");
        let pss = include_bytes!("../../tests/data/openssl-keys/rsa-pss-sha256.sig");
        verify_signature(&pk, &rfc5912::SHA_256_WITH_RSA_ENCRYPTION, msg, pkcs1).unwrap();
        assert!(verify_signature(&pk, &rfc5912::SHA_256_WITH_RSA_ENCRYPTION, msg, pss).is_err());
        assert!(verify_signature(&pk, &rfc5912::SHA_384_WITH_RSA_ENCRYPTION, msg, pkcs1).is_err());
        assert!(verify_signature(&pk, &rfc5912::ECDSA_WITH_SHA_256, msg, pkcs1).is_err());
    }

    #[test]
    fn tbs_bytes_is_what_was_signed_and_algorithms_must_fit_keys() {
        let key = SigningKey::generate();
        let cert = make_cert("CN=a", "CN=a", &key, &key, 0, 10, vec![]);
        let tbs = tbs_bytes(&cert.der).unwrap();
        assert_eq!(tbs, cert.cert.tbs_certificate.to_der().unwrap().as_slice());
        let sig = key.sign(b"m");
        let pk = key.public_key();
        verify_signature(&pk, &rfc5912::ECDSA_WITH_SHA_256, b"m", &sig).unwrap();
        assert!(verify_signature(&pk, &rfc5912::SHA_256_WITH_RSA_ENCRYPTION, b"m", &sig).is_err());
        assert!(verify_signature(&pk, &rfc8410::ID_ED_25519, b"m", &sig).is_err());
        assert!(verify_signature(&pk, &rfc5912::ECDSA_WITH_SHA_256, b"n", &sig).is_err());
        assert!(verify_signature(&pk, &rfc5912::ID_SHA_1, b"m", &sig).is_err());
    }
}
