//! Stable reason codes: one enumeration for every place a decision is read by a program — admission
//! responses (`status.details.causes[].reason`), `vouch check` / `vouch scan` JSON (`reasonCode`,
//! `remediation` beside each finding's `reason` text), CloudEvents data, and `vouch mcp`'s `explain_denial`.
//!
//! A finding's code follows from what was asked (its requirement) and how it failed (its result and the
//! verifier's reason). The reason text stays as written; the code is for programs, `docs/reasons.md` for
//! people. Codes are never renamed; new ones may be added, and a program must treat an unknown code like
//! `Other`.

use std::fmt;

use serde::Serialize;

use crate::decision::{Finding, FindingResult};

/// Why a requirement is not met (or `Verified` when it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ReasonCode {
    /// The requirement is met.
    Verified,
    /// No signature was found for the digest.
    SignatureMissing,
    /// Signatures exist, but none verifies against the policy's authorities.
    SignatureInvalid,
    /// A signature or bundle names another digest than the one verified.
    DigestMismatch,
    /// Fewer distinct authorities signed than the requirement's `minAuthorities`.
    TooFewSigners,
    /// A signature verifies but does not carry the signed annotations the requirement names.
    AnnotationMismatch,
    /// A keyless signature is by an identity or OIDC issuer the policy does not accept.
    IdentityMismatch,
    /// The signing certificate lacks a claim (Fulcio extension) the policy requires.
    ClaimMismatch,
    /// The transparency-log (Rekor) entry is missing or does not verify.
    TlogMissing,
    /// A certificate was not valid at the signing time, or the chain does not lead to the trust root.
    CertificateExpired,
    /// A certificate of the signing (or timestamp) chain is revoked, or a CRL given for it cannot be used.
    CertificateRevoked,
    /// No attestation of the required predicate type verifies.
    AttestationMissing,
    /// An attestation verifies but the policy's Rego condition rejects it.
    ConditionFailed,
    /// No SBOM was found.
    SbomMissing,
    /// An SBOM was found but is not a valid CycloneDX document.
    SbomInvalid,
    /// A compliance profile's requirements are not met.
    ProfileViolation,
    /// A declared egress destination is not covered by a verified allowlist.
    EgressNotAllowed,
    /// What an init-container fetcher pulls cannot be verified before it runs.
    FetcherUnverifiable,
    /// The tag now names another digest than the one running (scan).
    TagMoved,
    /// A reference by tag where the policy requires a digest.
    DigestRequired,
    /// The registry (or another source) could not be read.
    RegistryUnreachable,
    /// Verification did not finish within the time budget.
    Timeout,
    /// The image reference (or the object) cannot be read.
    ReferenceInvalid,
    /// The namespace's labels are unknown, so a namespaceSelector cannot be evaluated.
    NamespaceUnknown,
    /// No policy covers the image.
    NoPolicy,
    /// The policy's authority cannot be used (a key that does not load, a trust root that is missing).
    PolicyUnusable,
    /// None of the above.
    Other,
}

impl ReasonCode {
    /// Every code, in documentation order.
    pub const ALL: [Self; 27] = [
        Self::Verified,
        Self::SignatureMissing,
        Self::SignatureInvalid,
        Self::TooFewSigners,
        Self::AnnotationMismatch,
        Self::DigestMismatch,
        Self::IdentityMismatch,
        Self::ClaimMismatch,
        Self::TlogMissing,
        Self::CertificateExpired,
        Self::CertificateRevoked,
        Self::AttestationMissing,
        Self::ConditionFailed,
        Self::SbomMissing,
        Self::SbomInvalid,
        Self::ProfileViolation,
        Self::EgressNotAllowed,
        Self::FetcherUnverifiable,
        Self::TagMoved,
        Self::DigestRequired,
        Self::RegistryUnreachable,
        Self::Timeout,
        Self::ReferenceInvalid,
        Self::NamespaceUnknown,
        Self::NoPolicy,
        Self::PolicyUnusable,
        Self::Other,
    ];

    /// The code of a finding.
    pub fn of(finding: &Finding) -> Self {
        Self::classify(&finding.requirement, Some(finding.result), &finding.reason)
    }

    /// The code of a requirement's outcome: `requirement` as findings label it (`signature`, `attestation
    /// <type>`, `sbom`, `compliance <profile>`, `egress`, `fetcher`, `reference`, `policy`, `running
    /// digest`), `result` when known, and the reason as written. With no result, the reason's words decide.
    pub fn classify(requirement: &str, result: Option<FindingResult>, reason: &str) -> Self {
        if result == Some(FindingResult::Pass) {
            return Self::Verified;
        }
        let r = reason.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| r.contains(w));
        // What could not be decided, whatever was asked.
        if has(&["did not finish within", "time budget", "timed out", "deadline"]) {
            return Self::Timeout;
        }
        if has(&["labels are unknown", "labels of namespace", "namespace labels"]) {
            return Self::NamespaceUnknown;
        }
        if result == Some(FindingResult::Error) || has(&["cannot verify:", "cannot reach", "unreachable"]) {
            return Self::RegistryUnreachable;
        }
        let requirement = requirement.to_ascii_lowercase();
        match requirement.split(' ').next().unwrap_or_default() {
            "policy" if has(&["no policy covers"]) => return Self::NoPolicy,
            "reference" => return Self::ReferenceInvalid,
            "compliance" => return Self::ProfileViolation,
            "egress" => return Self::EgressNotAllowed,
            "fetcher" => return Self::FetcherUnverifiable,
            "running" => return Self::TagMoved,
            "digest" => return Self::DigestRequired,
            _ => {}
        }
        if has(&["no policy covers"]) {
            return Self::NoPolicy;
        }
        if has(&["not a valid reference", "cannot read the object", "invalid reference"]) {
            return Self::ReferenceInvalid;
        }
        if has(&["by tag", "requires a digest", "not pinned to a digest", "requiredigest"]) {
            return Self::DigestRequired;
        }
        if has(&["no verifier for this authority", "cannot load", "trust root", "trustroot"])
            && !has(&["does not lead to a trusted", "not trusted at"])
        {
            return Self::PolicyUnusable;
        }
        if has(&["authorities must each have signed"]) {
            return Self::TooFewSigners;
        }
        if has(&["carries the signed annotations"]) {
            return Self::AnnotationMismatch;
        }
        let attestation = requirement.starts_with("attestation");
        let sbom = requirement.starts_with("sbom");
        if attestation && has(&["condition not met", "condition evaluation", "condition not evaluated"]) {
            return Self::ConditionFailed;
        }
        if has(&["nothing found"]) {
            return if attestation {
                Self::AttestationMissing
            } else if sbom {
                Self::SbomMissing
            } else {
                Self::SignatureMissing
            };
        }
        if sbom {
            return if has(&["cyclonedx", "invalid", "malformed", "not a valid"]) {
                Self::SbomInvalid
            } else {
                Self::SbomMissing
            };
        }
        if has(&["does not carry the required claims", "claim"]) {
            return Self::ClaimMismatch;
        }
        if has(&[
            "certificate identity",
            "oidc issuer",
            "not an accepted signer",
            "keyless identity is required",
            "not a trusted identity",
        ]) {
            return Self::IdentityMismatch;
        }
        // Before the validity checks: a revocation reason may quote a CRL's validity times.
        if has(&["revocation:"]) {
            return Self::CertificateRevoked;
        }
        if has(&["transparency log", "rekor", "inclusion proof", "checkpoint"]) {
            return Self::TlogMissing;
        }
        if has(&[
            "is not valid at",
            "not trusted at",
            "does not lead to a trusted",
            "chain is in the trust store",
            "expired",
            "signing time",
        ]) {
            return Self::CertificateExpired;
        }
        if has(&[
            "does not match the artifact digest",
            "not the verified",
            "digest mismatch",
            "names image",
            "for another artifact",
        ]) {
            return Self::DigestMismatch;
        }
        if attestation {
            return Self::AttestationMissing;
        }
        if requirement.starts_with("signature") || has(&["signature"]) {
            return Self::SignatureInvalid;
        }
        Self::Other
    }

    /// The code as it is written (`SignatureMissing`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Verified => "Verified",
            Self::SignatureMissing => "SignatureMissing",
            Self::SignatureInvalid => "SignatureInvalid",
            Self::TooFewSigners => "TooFewSigners",
            Self::AnnotationMismatch => "AnnotationMismatch",
            Self::DigestMismatch => "DigestMismatch",
            Self::IdentityMismatch => "IdentityMismatch",
            Self::ClaimMismatch => "ClaimMismatch",
            Self::TlogMissing => "TlogMissing",
            Self::CertificateExpired => "CertificateExpired",
            Self::CertificateRevoked => "CertificateRevoked",
            Self::AttestationMissing => "AttestationMissing",
            Self::ConditionFailed => "ConditionFailed",
            Self::SbomMissing => "SbomMissing",
            Self::SbomInvalid => "SbomInvalid",
            Self::ProfileViolation => "ProfileViolation",
            Self::EgressNotAllowed => "EgressNotAllowed",
            Self::FetcherUnverifiable => "FetcherUnverifiable",
            Self::TagMoved => "TagMoved",
            Self::DigestRequired => "DigestRequired",
            Self::RegistryUnreachable => "RegistryUnreachable",
            Self::Timeout => "Timeout",
            Self::ReferenceInvalid => "ReferenceInvalid",
            Self::NamespaceUnknown => "NamespaceUnknown",
            Self::NoPolicy => "NoPolicy",
            Self::PolicyUnusable => "PolicyUnusable",
            Self::Other => "Other",
        }
    }

    /// What usually fixes it, in one sentence (docs/reasons.md says more).
    pub fn remediation(self) -> &'static str {
        match self {
            Self::Verified => "Nothing to do.",
            Self::SignatureMissing => {
                "Sign the image digest with an authority the policy trusts (`vouch sign` or `cosign sign IMAGE@DIGEST`)."
            }
            Self::SignatureInvalid => {
                "Signatures exist but none verifies against the policy's authorities: sign with the key or identity the policy names, or add the signer's authority to the policy."
            }
            Self::TooFewSigners => {
                "Have more of the policy's authorities sign the digest: the denial names which signed and which did not."
            }
            Self::AnnotationMismatch => {
                "Sign with the annotations the policy requires (`cosign sign -a key=value`); unsigned manifest annotations do not count."
            }
            Self::DigestMismatch => "Sign the digest that is deployed: the signature names another one (tags move).",
            Self::IdentityMismatch => {
                "Sign from the identity and OIDC issuer the policy accepts (e.g. the release workflow), or update the policy's identities."
            }
            Self::ClaimMismatch => {
                "Sign from the repository, ref or workflow the policy's claims name, or update the claims."
            }
            Self::TlogMissing => {
                "Sign with a transparency-log upload (cosign's default), or set requireTlog: false on a key authority whose key is offline by design."
            }
            Self::CertificateExpired => {
                "Re-sign: the signing time must fall inside the certificate's validity, proven by a Rekor entry or an RFC 3161 timestamp, under the trust root in force."
            }
            Self::CertificateRevoked => {
                "Re-sign with a certificate that is not revoked; if the CRL given to the Notation authority is out of date or not the issuer's, give its current CRL."
            }
            Self::AttestationMissing => {
                "Attach an attestation of the required predicate type to the image digest, signed by an authority the policy trusts (`vouch attest` or `cosign attest`)."
            }
            Self::ConditionFailed => {
                "The attestation verifies but its content fails the policy's Rego condition: rebuild to meet it, or review the condition."
            }
            Self::SbomMissing => "Attach a CycloneDX SBOM to the image digest (`vouch attach sbom` or `cosign attach sbom`).",
            Self::SbomInvalid => "Attach a valid CycloneDX (JSON) SBOM; the one found does not parse as CycloneDX.",
            Self::ProfileViolation => {
                "Meet the compliance profile's requirements, or name a profile the namespace allows."
            }
            Self::EgressNotAllowed => {
                "Cover the destination in the signed egress allowlist (re-signed by its authority), or remove it."
            }
            Self::FetcherUnverifiable => {
                "Make the init container fetch by digest from an OCI registry (or a signed artifact) so vouch can verify what it pulls."
            }
            Self::TagMoved => {
                "The tag was re-pointed after the Pod started: roll out again so what runs is what the tag names, or pin the digest."
            }
            Self::DigestRequired => "Reference the image by digest (name@sha256:…), e.g. from your build's output.",
            Self::RegistryUnreachable => {
                "Check that vouch can reach the registry (network policy, DNS) and its credentials (imagePullSecrets, --registry-auth-file); the policy's failurePolicy decides meanwhile."
            }
            Self::Timeout => {
                "Verification was too slow: retry; check registry latency; raise --timeout-budget (below the webhook's timeoutSeconds)."
            }
            Self::ReferenceInvalid => {
                "Fix the image reference: registry/repository[:tag][@sha256:…] with a lowercase repository."
            }
            Self::NamespaceUnknown => {
                "Run vouch with cluster access (--kube), or give `vouch check --namespace-labels`."
            }
            Self::NoPolicy => "Cover the image with a policy (spec.images), or set --no-match to allow or warn.",
            Self::PolicyUnusable => "Fix the policy: its authority's key or trust root cannot be used (see the policy's status).",
            Self::Other => {
                "Read the reason; `vouch verify IMAGE@DIGEST` with the policy's key or identity shows the verification step by step."
            }
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON path of a JSON pointer, as Kubernetes names fields in `status.details.causes[].field`:
/// `/spec/initContainers/0/env/1/value` → `spec.initContainers[0].env[1].value`.
pub fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for part in pointer.split('/').skip(1) {
        let part = crate::extract::unescape_pointer_segment(part);
        if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&part);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(requirement: &str, result: FindingResult, reason: &str) -> ReasonCode {
        ReasonCode::classify(requirement, Some(result), reason)
    }

    #[test]
    fn the_verifiers_reasons_map_to_their_codes() {
        use FindingResult::{Error, Fail, Pass};
        let cases = [
            ("signature", Pass, "verified against key k", ReasonCode::Verified),
            ("signature", Fail, "no signature verifies against key k (nothing found (looked in sha256-a.sig, referrers))", ReasonCode::SignatureMissing),
            ("signature", Fail, "no signature verifies against key k (the only candidate failed: sha256-a.sig: signature does not verify)", ReasonCode::SignatureInvalid),
            ("signature", Fail, "no signature verifies against keyless ci (the only candidate failed: x: certificate identity \"a\" issued by \"b\" matches none of the expected identities: c)", ReasonCode::IdentityMismatch),
            ("signature", Fail, "no signature verifies against keyless ci (the only candidate failed: x: certificate identity \"a\" issued by \"b\" does not carry the required claims: ref)", ReasonCode::ClaimMismatch),
            ("signature", Fail, "no signature verifies against key k (the only candidate failed: x: signature has no transparency log entry (no Rekor bundle annotation), and one is required)", ReasonCode::TlogMissing),
            ("signature", Fail, "no signature verifies against keyless ci (the only candidate failed: x: certificate: certificate \"a\" is not valid at 2026 (valid 2025 to 2025))", ReasonCode::CertificateExpired),
            ("signature", Fail, "no signature verifies against key k (the only candidate failed: x: signed payload names image sha256:b, not the verified sha256:a)", ReasonCode::DigestMismatch),
            ("attestation https://slsa.dev/provenance/v1", Fail, "no https://slsa.dev/provenance/v1 attestation verifies against key k (nothing found (looked in sha256-a.att))", ReasonCode::AttestationMissing),
            ("attestation https://slsa.dev/provenance/v1", Fail, "key k: condition not met: builder", ReasonCode::ConditionFailed),
            ("sbom", Fail, "no valid SBOM for key k (nothing found (looked in CycloneDX referrers))", ReasonCode::SbomMissing),
            ("sbom", Fail, "no valid SBOM for key k (the only candidate failed: x: not a valid CycloneDX document: y)", ReasonCode::SbomInvalid),
            ("signature", Error, "cannot verify: registry 127.0.0.1:1 unreachable: connection refused", ReasonCode::RegistryUnreachable),
            ("signature", Error, "cannot verify: verification did not finish within the budget of 8s", ReasonCode::Timeout),
            ("reference", Fail, "not a valid reference: bad", ReasonCode::ReferenceInvalid),
            ("policy", Fail, "no policy covers this image", ReasonCode::NoPolicy),
            ("compliance eu-ai-act", Fail, "profile eu-ai-act: missing annotation", ReasonCode::ProfileViolation),
            ("egress", Fail, "egress declared at x is not covered by the allowlist: y", ReasonCode::EgressNotAllowed),
            ("fetcher", Fail, "downloads from a URL that cannot be verified", ReasonCode::FetcherUnverifiable),
            ("running digest", Fail, "image x: tag moved", ReasonCode::TagMoved),
            ("digest", Fail, "the reference names a tag, not a digest; policy p requires references by digest (name@sha256:...)", ReasonCode::DigestRequired),
            ("signature", Fail, "2 of 3 authorities must each have signed, 1 did: verified: key alice; not verified: key bob (nothing found)", ReasonCode::TooFewSigners),
            ("signature", Fail, "key k: no verified signature carries the signed annotations env=prod (signed annotations found: {})", ReasonCode::AnnotationMismatch),
            ("signature", Error, "the labels of namespace shop are unknown", ReasonCode::NamespaceUnknown),
            ("signature", Fail, "no signature verifies against notation release (the only candidate failed: x: authenticity: signer CN=a is not a trusted identity (trusted: x509.subject: O=b))", ReasonCode::IdentityMismatch),
            ("signature", Fail, "no signature verifies against notation release (the only candidate failed: x: the signature is for another artifact: targetArtifact digest is a, expected b)", ReasonCode::DigestMismatch),
            ("signature", Fail, "no signature verifies against notation release (the only candidate failed: x: expiry: the signature expired at 2025)", ReasonCode::CertificateExpired),
            ("signature", Fail, "no signature verifies against notation release (the only candidate failed: x: revocation: certificate CN=a (serial 07) is revoked: revoked at 2026 (reason keyCompromise) according to the CRL from CN=r)", ReasonCode::CertificateRevoked),
            ("signature", Fail, "no signature verifies against notation release (the only candidate failed: x: revocation: revocation unavailable for CN=a: the CRL from CN=r is out of date (its nextUpdate 2025 has passed))", ReasonCode::CertificateRevoked),
        ];
        for (requirement, result, reason, want) in cases {
            assert_eq!(code(requirement, result, reason), want, "{requirement}: {reason}");
        }
    }

    #[test]
    fn every_code_has_a_name_and_a_remediation() {
        for c in ReasonCode::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
            assert!(c.remediation().ends_with('.'), "{c}");
        }
    }

    #[test]
    fn docs_reasons_md_lists_every_code() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reasons.md")).unwrap();
        for c in ReasonCode::ALL {
            assert!(doc.contains(&format!("| `{c}` |")), "docs/reasons.md does not list {c}");
        }
    }

    #[test]
    fn pointers_become_kubernetes_field_paths() {
        assert_eq!(field_path("/spec/initContainers/0/env/1/value"), "spec.initContainers[0].env[1].value");
        assert_eq!(
            field_path("/spec/template/spec/containers/2/image"),
            "spec.template.spec.containers[2].image"
        );
        assert_eq!(
            field_path("/metadata/annotations/vouch.dev~1egress"),
            "metadata.annotations.vouch.dev/egress"
        );
        assert_eq!(field_path(""), "");
    }
}
