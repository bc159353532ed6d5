//! Keyless identities: the Fulcio certificate's SAN and OIDC issuer, matched against a policy.

use std::fmt;

use const_oid::ObjectIdentifier;
use der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

/// Fulcio OIDC issuer (v2): DER UTF8String.
pub const OID_FULCIO_ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// Fulcio OIDC issuer (v1, deprecated): raw string bytes.
pub const OID_FULCIO_ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
/// Fulcio OtherName SAN for usernames: UTF8String.
pub const OID_FULCIO_OTHERNAME_SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.7");
/// Longest regular expression accepted in a policy.
pub const MAX_REGEX_LEN: usize = 4096;

/// Why the certificate's identity is not the expected one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// No SAN (URI, email or OtherName) could be read.
    #[error("certificate has no subject alternative name (URI, email or OtherName)")]
    NoSubject,
    /// No OIDC issuer extension.
    #[error("certificate has no OIDC issuer extension (1.3.6.1.4.1.57264.1.8 or .1.1)")]
    NoIssuer,
    /// An extension does not decode.
    #[error("certificate extension {oid} is malformed: {reason}")]
    Malformed {
        /// The extension.
        oid: String,
        /// What is wrong.
        reason: String,
    },
    /// Neither subject nor issuer match any accepted identity.
    #[error(
        "certificate identity {subject:?} issued by {issuer:?} matches none of the expected identities: {expected}"
    )]
    Mismatch {
        /// The certificate's SAN.
        subject: String,
        /// The certificate's OIDC issuer.
        issuer: String,
        /// The accepted identities, for the message.
        expected: String,
    },
    /// A policy regular expression does not compile.
    #[error("invalid identity regular expression {pattern:?}: {reason}")]
    BadRegex {
        /// The pattern.
        pattern: String,
        /// Compiler message.
        reason: String,
    },
}

/// A regular expression that only ever matches whole strings.
#[derive(Clone)]
pub struct AnchoredRegex {
    pattern: String,
    regex: regex::Regex,
}

impl AnchoredRegex {
    /// Compile `pattern` anchored at both ends (`^(?:pattern)$`).
    pub fn new(pattern: &str) -> Result<Self, IdentityError> {
        let bad =
            |reason: String| IdentityError::BadRegex { pattern: pattern.chars().take(200).collect(), reason };
        if pattern.len() > MAX_REGEX_LEN {
            return Err(bad("pattern too long".into()));
        }
        // The pattern must be a regular expression on its own: otherwise `x)|(?:.*` would close the
        // anchoring group early and match anything.
        regex::RegexBuilder::new(pattern).size_limit(1 << 20).build().map_err(|e| bad(e.to_string()))?;
        let regex = regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(1 << 20)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self { pattern: pattern.to_owned(), regex })
    }

    /// The pattern as given (without the added anchors).
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }
}

impl fmt::Debug for AnchoredRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnchoredRegex({:?})", self.pattern)
    }
}

/// How one value is matched.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Byte-for-byte equality.
    Exact(String),
    /// Whole-string regular expression match.
    Regex(AnchoredRegex),
}

impl Matcher {
    /// An anchored regular expression matcher.
    pub fn regex(pattern: &str) -> Result<Self, IdentityError> {
        AnchoredRegex::new(pattern).map(Self::Regex)
    }

    /// Whether `value` is accepted.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(s) => s == value,
            Self::Regex(r) => r.is_match(value),
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(s) => write!(f, "{s:?}"),
            Self::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

/// One accepted keyless signer: SAN and OIDC issuer must both match.
#[derive(Debug, Clone)]
pub struct CertificateIdentity {
    /// Matcher for the certificate's SAN (URI, email or OtherName).
    pub subject: Matcher,
    /// Matcher for the OIDC issuer extension.
    pub issuer: Matcher,
}

impl CertificateIdentity {
    /// Exact subject and issuer.
    pub fn exact(subject: &str, issuer: &str) -> Self {
        Self { subject: Matcher::Exact(subject.to_owned()), issuer: Matcher::Exact(issuer.to_owned()) }
    }
}

/// The identity a Fulcio certificate asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// Every SAN value (URI, email, Fulcio OtherName), in certificate order.
    pub subjects: Vec<String>,
    /// The OIDC issuer.
    pub issuer: String,
}

impl CertIdentity {
    /// Read SANs and the OIDC issuer from a certificate.
    pub fn from_certificate(cert: &Certificate) -> Result<Self, IdentityError> {
        let mut subjects = Vec::new();
        let mut issuer_v2 = None;
        let mut issuer_v1 = None;
        for ext in cert.tbs_certificate.extensions.iter().flatten() {
            let bad = |reason: String| IdentityError::Malformed { oid: ext.extn_id.to_string(), reason };
            let value = ext.extn_value.as_bytes();
            if ext.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME {
                let san = SubjectAltName::from_der(value).map_err(|e| bad(e.to_string()))?;
                for name in san.0 {
                    match name {
                        GeneralName::UniformResourceIdentifier(u) => subjects.push(u.as_str().to_owned()),
                        GeneralName::Rfc822Name(e) => subjects.push(e.as_str().to_owned()),
                        GeneralName::OtherName(o) if o.type_id == OID_FULCIO_OTHERNAME_SAN => {
                            let s = o
                                .value
                                .decode_as::<der::asn1::Utf8StringRef<'_>>()
                                .map_err(|e| bad(e.to_string()))?;
                            subjects.push(s.as_str().to_owned());
                        }
                        _ => {}
                    }
                }
            } else if ext.extn_id == OID_FULCIO_ISSUER_V2 {
                let s = der::asn1::Utf8StringRef::from_der(value).map_err(|e| bad(e.to_string()))?;
                issuer_v2 = Some(s.as_str().to_owned());
            } else if ext.extn_id == OID_FULCIO_ISSUER_V1 {
                let s = std::str::from_utf8(value).map_err(|e| bad(e.to_string()))?;
                issuer_v1 = Some(s.to_owned());
            }
        }
        if subjects.is_empty() {
            return Err(IdentityError::NoSubject);
        }
        if let (Some(v2), Some(v1)) = (&issuer_v2, &issuer_v1) {
            if v2 != v1 {
                return Err(IdentityError::Malformed {
                    oid: OID_FULCIO_ISSUER_V2.to_string(),
                    reason: format!(
                        "OIDC issuer {v2:?} differs from the deprecated issuer extension's {v1:?}"
                    ),
                });
            }
        }
        let issuer = issuer_v2.or(issuer_v1).ok_or(IdentityError::NoIssuer)?;
        Ok(Self { subjects, issuer })
    }

    /// The first SAN, for reports.
    pub fn subject(&self) -> &str {
        self.subjects.first().map(String::as_str).unwrap_or_default()
    }

    /// Check against the accepted identities (any may match).
    pub fn check(&self, accepted: &[CertificateIdentity]) -> Result<(), IdentityError> {
        let ok = accepted
            .iter()
            .any(|id| id.issuer.matches(&self.issuer) && self.subjects.iter().any(|s| id.subject.matches(s)));
        if ok {
            return Ok(());
        }
        let expected = if accepted.is_empty() {
            "(none configured)".to_owned()
        } else {
            accepted
                .iter()
                .map(|id| format!("{} from {}", id.subject, id.issuer))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(IdentityError::Mismatch {
            subject: self.subject().to_owned(),
            issuer: self.issuer.clone(),
            expected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::sigstore_verify::bundle::Bundle;
    use crate::sigstore_verify::testutil::{conformance, TestCa};

    const WF: &str = "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main";
    const GH: &str = "https://token.actions.githubusercontent.com";

    fn id() -> CertIdentity {
        let ca = TestCa::new();
        let leaf = ca.leaf(&SigningKey::generate(), 0, 100, WF, GH);
        CertIdentity::from_certificate(&leaf.cert).unwrap()
    }

    #[test]
    fn reads_san_and_issuer_from_constructed_and_real_certificates() {
        let got = id();
        assert_eq!(got.subjects, vec![WF.to_owned()]);
        assert_eq!(got.issuer, GH);
        let Some(suite) = conformance() else { return };
        let dir = suite.case("happy-path-v0.3");
        let bundle = Bundle::from_json(&std::fs::read(dir.join("bundle.sigstore.json")).unwrap()).unwrap();
        let der = bundle.verification_material.signer.leaf_certificate().unwrap();
        let cert = Certificate::from_der(der).unwrap();
        let real = CertIdentity::from_certificate(&cert).unwrap();
        assert_eq!(real.issuer, GH);
        assert!(real.subject().starts_with("https://github.com/sigstore-conformance/"), "{}", real.subject());
    }

    #[test]
    fn exact_match_needs_both_subject_and_issuer() {
        let got = id();
        got.check(&[CertificateIdentity::exact(WF, GH)]).unwrap();
        let err = got.check(&[CertificateIdentity::exact(WF, "https://accounts.google.com")]).unwrap_err();
        assert!(matches!(err, IdentityError::Mismatch { .. }));
        assert!(err.to_string().contains("matches none"), "{err}");
        assert!(got.check(&[CertificateIdentity::exact("https://github.com/org/repo", GH)]).is_err());
        assert!(got.check(&[]).is_err());
        // Any accepted identity may match.
        got.check(&[CertificateIdentity::exact("x", "y"), CertificateIdentity::exact(WF, GH)]).unwrap();
    }

    #[test]
    fn regex_matches_are_anchored_to_the_whole_value() {
        let got = id();
        let re = |s: &str, i: &str| CertificateIdentity {
            subject: Matcher::regex(s).unwrap(),
            issuer: Matcher::regex(i).unwrap(),
        };
        got.check(&[re(r"https://github\.com/org/.*", r"https://token\.actions\.githubusercontent\.com")])
            .unwrap();
        // Unanchored substrings do not match.
        assert!(got.check(&[re(r"github\.com/org", ".*")]).is_err());
        assert!(got.check(&[re(".*", r"token\.actions")]).is_err());
        // An alternation cannot escape the anchors.
        assert!(got.check(&[re("x|https://github.com/org", ".*")]).is_err());
        assert!(matches!(Matcher::regex("("), Err(IdentityError::BadRegex { .. })));
        assert_eq!(Matcher::regex("a+").unwrap().to_string(), "/a+/");
    }

    #[test]
    fn deprecated_and_current_issuer_extensions_must_agree() {
        use crate::sigstore_verify::testutil::{ext, fulcio_issuer, make_cert, san_uri};
        let ca = TestCa::new();
        let key = SigningKey::generate();
        let with = |v1: &str, v2: &str| {
            let exts =
                vec![san_uri(WF), ext(OID_FULCIO_ISSUER_V1, v1.as_bytes().to_vec()), fulcio_issuer(v2)];
            let cert = make_cert("", "CN=test intermediate", &key, &ca.intermediate_key, 0, 10, exts);
            CertIdentity::from_certificate(&cert.cert)
        };
        assert_eq!(with(GH, GH).unwrap().issuer, GH);
        // Readers preferring either extension would see different issuers: refuse to pick one.
        let err = with("https://accounts.google.com", GH).unwrap_err();
        assert!(matches!(err, IdentityError::Malformed { .. }), "{err}");
        // The deprecated extension alone still names the issuer.
        let v1_only = make_cert(
            "",
            "CN=test intermediate",
            &key,
            &ca.intermediate_key,
            0,
            10,
            vec![san_uri(WF), ext(OID_FULCIO_ISSUER_V1, GH.as_bytes().to_vec())],
        );
        assert_eq!(CertIdentity::from_certificate(&v1_only.cert).unwrap().issuer, GH);
    }

    #[test]
    fn certificates_without_identity_are_rejected() {
        let ca = TestCa::new();
        let key = SigningKey::generate();
        let no_ext = crate::sigstore_verify::testutil::make_cert(
            "",
            "CN=x",
            &key,
            &ca.intermediate_key,
            0,
            10,
            vec![],
        );
        assert_eq!(CertIdentity::from_certificate(&no_ext.cert), Err(IdentityError::NoSubject));
        let no_issuer = crate::sigstore_verify::testutil::make_cert(
            "",
            "CN=x",
            &key,
            &key,
            0,
            10,
            vec![crate::sigstore_verify::testutil::san_uri(WF)],
        );
        assert_eq!(CertIdentity::from_certificate(&no_issuer.cert), Err(IdentityError::NoIssuer));
    }
}
