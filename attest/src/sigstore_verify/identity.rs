//! Keyless identities: the Fulcio certificate's SAN, OIDC issuer and claims, matched against a policy.

use std::collections::BTreeMap;
use std::fmt;

use const_oid::ObjectIdentifier;
use der::Decode;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::Certificate;

use super::claims::{read_claims, Claim, ClaimValue};

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
    /// Subject and issuer match an accepted identity, but a claim it constrains does not.
    #[error(
        "certificate identity {subject:?} issued by {issuer:?} does not carry the required claims: {}",
        failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    ClaimMismatch {
        /// The certificate's SAN.
        subject: String,
        /// The certificate's OIDC issuer.
        issuer: String,
        /// Each claim that did not match, for every identity whose subject and issuer matched.
        failures: Vec<ClaimFailure>,
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

/// Why one claim of an accepted identity did not match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimFailure {
    /// The certificate's value is another.
    Mismatch {
        /// The claim.
        claim: Claim,
        /// The certificate's value.
        found: String,
        /// What the policy accepts (`"exact"` or `/regex/`).
        expected: String,
    },
    /// The certificate has no such extension.
    Absent {
        /// The claim.
        claim: Claim,
        /// What the policy accepts.
        expected: String,
    },
    /// The extension is there but cannot be read.
    Malformed {
        /// The claim.
        claim: Claim,
        /// What is wrong.
        reason: String,
    },
}

impl fmt::Display for ClaimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Mismatch { claim, found, expected } => {
                write!(f, "claim {claim}: {found:?} does not match {expected}")
            }
            Self::Absent { claim, expected } => write!(
                f,
                "claim {claim} is absent (the certificate has no extension {}); expected {expected}",
                claim.oid()
            ),
            Self::Malformed { claim, reason } => {
                write!(f, "claim {claim}: extension {} is malformed: {reason}", claim.oid())
            }
        }
    }
}

/// One accepted keyless signer: SAN and OIDC issuer must both match, and every claim given.
#[derive(Debug, Clone)]
pub struct CertificateIdentity {
    /// Matcher for the certificate's SAN (URI, email or OtherName).
    pub subject: Matcher,
    /// Matcher for the OIDC issuer extension.
    pub issuer: Matcher,
    /// Matchers for Fulcio certificate extensions; all must match (none: any values, or none at all).
    pub claims: BTreeMap<Claim, Matcher>,
}

impl CertificateIdentity {
    /// Subject and issuer, no claims.
    #[must_use]
    pub fn new(subject: Matcher, issuer: Matcher) -> Self {
        Self { subject, issuer, claims: BTreeMap::new() }
    }

    /// Exact subject and issuer.
    #[must_use]
    pub fn exact(subject: &str, issuer: &str) -> Self {
        Self::new(Matcher::Exact(subject.to_owned()), Matcher::Exact(issuer.to_owned()))
    }

    /// The same identity, also requiring `claim` to match (replacing an earlier matcher for it).
    #[must_use]
    pub fn with_claim(mut self, claim: Claim, matcher: Matcher) -> Self {
        self.claims.insert(claim, matcher);
        self
    }
}

impl fmt::Display for CertificateIdentity {
    /// `"subject" from "issuer"`, then ` with claim=matcher, …` when claims are constrained.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} from {}", self.subject, self.issuer)?;
        for (i, (claim, m)) in self.claims.iter().enumerate() {
            write!(f, "{}{claim}={m}", if i == 0 { " with " } else { ", " })?;
        }
        Ok(())
    }
}

/// The identity a Fulcio certificate asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertIdentity {
    /// Every SAN value (URI, email, Fulcio OtherName), in certificate order.
    pub subjects: Vec<String>,
    /// The OIDC issuer.
    pub issuer: String,
    /// The Fulcio claim extensions present, each read in its own encoding (or why it could not be).
    pub claims: BTreeMap<Claim, ClaimValue>,
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
        Ok(Self { subjects, issuer, claims: read_claims(cert) })
    }

    /// The first SAN, for reports.
    pub fn subject(&self) -> &str {
        self.subjects.first().map(String::as_str).unwrap_or_default()
    }

    /// The claim's value, if the certificate carries it readably.
    pub fn claim(&self, claim: Claim) -> Option<&str> {
        self.claims.get(&claim).and_then(|v| v.as_deref().ok())
    }

    /// Why `matcher` rejects this certificate's `claim`, or `None` when it accepts it.
    fn claim_failure(&self, claim: Claim, matcher: &Matcher) -> Option<ClaimFailure> {
        match self.claims.get(&claim) {
            None => Some(ClaimFailure::Absent { claim, expected: matcher.to_string() }),
            Some(Err(reason)) => Some(ClaimFailure::Malformed { claim, reason: reason.clone() }),
            Some(Ok(v)) if matcher.matches(v) => None,
            Some(Ok(v)) => {
                Some(ClaimFailure::Mismatch { claim, found: v.clone(), expected: matcher.to_string() })
            }
        }
    }

    /// Check against the accepted identities: any may match; within one, subject, issuer and every claim.
    /// When subject and issuer match but claims do not, the error names each failing claim and its value.
    pub fn check(&self, accepted: &[CertificateIdentity]) -> Result<(), IdentityError> {
        let mut failures: Vec<ClaimFailure> = Vec::new();
        for id in accepted {
            if !(id.issuer.matches(&self.issuer) && self.subjects.iter().any(|s| id.subject.matches(s))) {
                continue;
            }
            let failed: Vec<ClaimFailure> =
                id.claims.iter().filter_map(|(c, m)| self.claim_failure(*c, m)).collect();
            if failed.is_empty() {
                return Ok(());
            }
            for f in failed {
                if !failures.contains(&f) {
                    failures.push(f);
                }
            }
        }
        if !failures.is_empty() {
            return Err(IdentityError::ClaimMismatch {
                subject: self.subject().to_owned(),
                issuer: self.issuer.clone(),
                failures,
            });
        }
        let expected = if accepted.is_empty() {
            "(none configured)".to_owned()
        } else {
            accepted.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
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
        let re = |s: &str, i: &str| {
            CertificateIdentity::new(Matcher::regex(s).unwrap(), Matcher::regex(i).unwrap())
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

    /// A leaf with the SAN, the issuer and `claims` (raw extensions as built by the test).
    fn with_claims(claims: Vec<x509_cert::ext::Extension>) -> CertIdentity {
        use crate::sigstore_verify::testutil::{make_cert, san_uri};
        let ca = TestCa::new();
        let mut exts = vec![san_uri(WF), crate::sigstore_verify::testutil::fulcio_issuer(GH)];
        exts.extend(claims);
        let cert =
            make_cert("", "CN=test intermediate", &SigningKey::generate(), &ca.intermediate_key, 0, 10, exts);
        CertIdentity::from_certificate(&cert.cert).unwrap()
    }

    fn ok(v: &str) -> ClaimValue {
        Ok(v.to_owned())
    }

    #[test]
    fn claims_are_read_in_each_extensions_own_encoding() {
        use crate::sigstore_verify::testutil::{fulcio_raw, fulcio_utf8};
        let got = with_claims(vec![
            // Deprecated GitHub extensions: raw UTF-8 bytes, no DER.
            fulcio_raw("1.3.6.1.4.1.57264.1.2", "push"),
            fulcio_raw("1.3.6.1.4.1.57264.1.5", "org/repo"),
            fulcio_raw("1.3.6.1.4.1.57264.1.6", "refs/heads/main"),
            // Current extensions: DER UTF8String.
            fulcio_utf8("1.3.6.1.4.1.57264.1.9", WF),
            fulcio_utf8("1.3.6.1.4.1.57264.1.12", "https://github.com/org/repo"),
            fulcio_utf8("1.3.6.1.4.1.57264.1.14", "refs/heads/main"),
            fulcio_utf8("1.3.6.1.4.1.57264.1.22", "public"),
        ]);
        let expected: BTreeMap<Claim, ClaimValue> = [
            (Claim::GithubWorkflowTrigger, ok("push")),
            (Claim::GithubWorkflowRepository, ok("org/repo")),
            (Claim::GithubWorkflowRef, ok("refs/heads/main")),
            (Claim::BuildSignerUri, ok(WF)),
            (Claim::SourceRepositoryUri, ok("https://github.com/org/repo")),
            (Claim::SourceRepositoryRef, ok("refs/heads/main")),
            (Claim::SourceRepositoryVisibilityAtSigning, ok("public")),
        ]
        .into_iter()
        .collect();
        assert_eq!(got.claims, expected);
        // The issuer is the issuer, not a claim.
        assert_eq!(got.issuer, GH);

        // A current extension written raw is not a DER UTF8String: kept as malformed, and only a policy
        // that names the claim is affected.
        let wrong = with_claims(vec![fulcio_raw("1.3.6.1.4.1.57264.1.14", "refs/heads/main")]);
        assert!(matches!(wrong.claims.get(&Claim::SourceRepositoryRef), Some(Err(_))));
        wrong.check(&[CertificateIdentity::exact(WF, GH)]).unwrap();
        let err = wrong
            .check(&[CertificateIdentity::exact(WF, GH)
                .with_claim(Claim::SourceRepositoryRef, Matcher::Exact("refs/heads/main".into()))])
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("claim sourceRepositoryRef: extension 1.3.6.1.4.1.57264.1.14 is malformed"),
            "{err}"
        );
        // A deprecated extension is read as raw bytes even when DER-encoded: the tag and length bytes are
        // then part of the value, which matches nothing a policy says.
        let der_legacy = with_claims(vec![fulcio_utf8("1.3.6.1.4.1.57264.1.6", "refs/heads/main")]);
        assert_ne!(der_legacy.claim(Claim::GithubWorkflowRef), Some("refs/heads/main"));
        // Twice the same extension: refused for that claim (readers could pick different ones).
        let twice = with_claims(vec![
            fulcio_utf8("1.3.6.1.4.1.57264.1.14", "refs/heads/main"),
            fulcio_utf8("1.3.6.1.4.1.57264.1.14", "refs/heads/dev"),
        ]);
        assert_eq!(
            twice.claims.get(&Claim::SourceRepositoryRef),
            Some(&Err("the extension appears twice".into()))
        );
    }

    #[test]
    fn every_claim_given_must_match_and_denials_name_the_claim_and_its_value() {
        use crate::sigstore_verify::testutil::{fulcio_raw, fulcio_utf8};
        let got = with_claims(vec![
            fulcio_raw("1.3.6.1.4.1.57264.1.6", "refs/heads/dev"),
            fulcio_utf8("1.3.6.1.4.1.57264.1.11", "github-hosted"),
            fulcio_utf8("1.3.6.1.4.1.57264.1.14", "refs/heads/dev"),
        ]);
        let id = || CertificateIdentity::exact(WF, GH);
        let exact = |s: &str| Matcher::Exact(s.to_owned());
        got.check(&[id().with_claim(Claim::SourceRepositoryRef, exact("refs/heads/dev"))]).unwrap();
        got.check(&[id()
            .with_claim(Claim::SourceRepositoryRef, exact("refs/heads/dev"))
            .with_claim(Claim::RunnerEnvironment, exact("github-hosted"))
            .with_claim(Claim::GithubWorkflowRef, exact("refs/heads/dev"))])
            .unwrap();

        // One claim off: the denial names it and the certificate's value.
        let err = got
            .check(&[id()
                .with_claim(Claim::RunnerEnvironment, exact("github-hosted"))
                .with_claim(Claim::SourceRepositoryRef, exact("refs/heads/main"))])
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "certificate identity {WF:?} issued by {GH:?} does not carry the required claims: \
                 claim sourceRepositoryRef: \"refs/heads/dev\" does not match \"refs/heads/main\""
            )
        );
        // Several off: each is named. An absent extension says so, with its OID.
        let err = got
            .check(&[id()
                .with_claim(Claim::SourceRepositoryRef, exact("refs/heads/main"))
                .with_claim(Claim::SourceRepositoryVisibilityAtSigning, exact("public"))])
            .unwrap_err();
        let IdentityError::ClaimMismatch { failures, .. } = &err else { panic!("{err}") };
        assert_eq!(
            failures,
            &vec![
                ClaimFailure::Mismatch {
                    claim: Claim::SourceRepositoryRef,
                    found: "refs/heads/dev".into(),
                    expected: "\"refs/heads/main\"".into()
                },
                ClaimFailure::Absent {
                    claim: Claim::SourceRepositoryVisibilityAtSigning,
                    expected: "\"public\"".into()
                },
            ]
        );
        assert!(
            err.to_string().contains(
                "claim sourceRepositoryVisibilityAtSigning is absent (the certificate has no extension \
                 1.3.6.1.4.1.57264.1.22); expected \"public\""
            ),
            "{err}"
        );

        // Claims are checked only for identities whose subject and issuer match; a wrong subject is still
        // a subject mismatch, whatever the claims.
        let err = got
            .check(&[CertificateIdentity::exact("https://github.com/other", GH)
                .with_claim(Claim::SourceRepositoryRef, exact("refs/heads/dev"))])
            .unwrap_err();
        assert!(matches!(err, IdentityError::Mismatch { .. }), "{err}");
        assert!(err.to_string().contains("with sourceRepositoryRef=\"refs/heads/dev\""), "{err}");
        // Any accepted identity may match: a second identity with the right claims admits.
        got.check(&[
            id().with_claim(Claim::SourceRepositoryRef, exact("refs/heads/main")),
            id().with_claim(Claim::SourceRepositoryRef, exact("refs/heads/dev")),
        ])
        .unwrap();
    }

    #[test]
    fn claim_regexes_are_anchored_like_subject_and_issuer() {
        use crate::sigstore_verify::testutil::fulcio_utf8;
        let got = with_claims(vec![fulcio_utf8("1.3.6.1.4.1.57264.1.14", "refs/tags/v1.2.3")]);
        let re = |p: &str| {
            got.check(&[CertificateIdentity::exact(WF, GH)
                .with_claim(Claim::SourceRepositoryRef, Matcher::regex(p).unwrap())])
        };
        re(r"refs/tags/v[0-9]+\.[0-9]+\.[0-9]+").unwrap();
        let err = re("refs/tags/v1").unwrap_err();
        assert!(
            err.to_string()
                .contains(r#"claim sourceRepositoryRef: "refs/tags/v1.2.3" does not match /refs/tags/v1/"#),
            "{err}"
        );
        assert!(re("v1.2.3").is_err());
        assert!(
            re("x|refs/tags/.*").is_ok(),
            "an alternation inside the anchors still matches the whole value"
        );
        assert!(Matcher::regex("x)|(?:.*").is_err(), "a pattern cannot close the anchoring group");
    }

    #[test]
    fn real_github_actions_certificate_carries_the_claims() {
        let Some(suite) = conformance() else { return };
        let dir = suite.case("happy-path-v0.3");
        let bundle = Bundle::from_json(&std::fs::read(dir.join("bundle.sigstore.json")).unwrap()).unwrap();
        let der = bundle.verification_material.signer.leaf_certificate().unwrap();
        let real = CertIdentity::from_certificate(&Certificate::from_der(der).unwrap()).unwrap();
        const REPO: &str = "sigstore-conformance/extremely-dangerous-public-oidc-beacon";
        // Deprecated (raw) and current (DER) extensions agree where they carry the same token claim.
        assert_eq!(real.claim(Claim::GithubWorkflowRepository), Some(REPO));
        assert_eq!(
            real.claim(Claim::SourceRepositoryUri),
            Some(format!("https://github.com/{REPO}").as_str())
        );
        assert_eq!(real.claim(Claim::GithubWorkflowRef), Some("refs/heads/main"));
        assert_eq!(real.claim(Claim::SourceRepositoryRef), Some("refs/heads/main"));
        assert_eq!(real.claim(Claim::GithubWorkflowTrigger), Some("workflow_dispatch"));
        assert_eq!(real.claim(Claim::BuildTrigger), Some("workflow_dispatch"));
        assert_eq!(real.claim(Claim::GithubWorkflowSha), real.claim(Claim::SourceRepositoryDigest));
        assert_eq!(real.claim(Claim::GithubWorkflowName), Some("Extremely dangerous OIDC beacon"));
        assert_eq!(real.claim(Claim::BuildSignerUri), Some(real.subject()));
        assert_eq!(real.claim(Claim::RunnerEnvironment), Some("github-hosted"));
        assert_eq!(real.claim(Claim::SourceRepositoryIdentifier), Some("632596897"));
        assert_eq!(
            real.claim(Claim::SourceRepositoryOwnerUri),
            Some("https://github.com/sigstore-conformance")
        );
        assert_eq!(real.claim(Claim::SourceRepositoryVisibilityAtSigning), Some("public"));
        assert!(real.claims.values().all(Result::is_ok), "{:?}", real.claims);
        // .2-.6 and .9-.22 (this certificate predates .23 and .24): nineteen claims.
        assert_eq!(real.claims.len(), 19);
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
