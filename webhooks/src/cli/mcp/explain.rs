//! `explain_denial`: a denial as the API server shows it (the message, or the whole AdmissionReview /
//! `kubectl` error text) back into its parts — object, and per failed requirement the artifact, reference,
//! policy, requirement and reason — with what usually fixes it.
//!
//! vouch writes every denial line as `<object>: <artifact kind> <name>: image <reference> : policy <p>:
//! <requirement>: <reason>` (findings joined by `; `); this reads that form and names each cause with the
//! reason code vouch's own outputs carry ([`ReasonCode`]). The reason itself is returned as written.

use regex::Regex;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use vouch_policies::{ArtifactKind, ReasonCode};

/// One failed requirement read from a denial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExplainedFinding {
    /// `container`, `initContainer`, `fetcher`, ... and its name, e.g. `container app`.
    pub artifact: String,
    /// The reference as verified (`name:tag@sha256:…` once resolved).
    pub reference: String,
    /// The policy that asked.
    pub policy: String,
    /// `signature`, `attestation <type>`, `sbom`, a compliance profile, ...
    pub requirement: String,
    /// Why, as vouch wrote it.
    pub reason: String,
    /// The reason code (docs/reasons.md), from the requirement and the reason.
    pub cause: &'static str,
    /// What usually fixes it.
    pub remediation: &'static str,
}

/// A denial, explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The object denied, as vouch named it (`Pod shop/web`), when the message names one.
    pub object: Option<String>,
    /// Each failed requirement.
    pub findings: Vec<ExplainedFinding>,
    /// Parts of the message that are not a requirement's finding (an unreadable object, an image no
    /// policy covers, a time budget), each with its cause and remediation.
    pub other: Vec<ExplainedLine>,
}

/// A denial line that is not a requirement's finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExplainedLine {
    /// The line as written.
    pub text: String,
    /// The kind of failure.
    pub cause: &'static str,
    /// What usually fixes it.
    pub remediation: &'static str,
}

/// Longest input read, in bytes.
pub const MAX_INPUT: usize = 256 * 1024;

/// The artifact kinds as denial lines name them, as a regex alternation.
fn kinds() -> String {
    ArtifactKind::ALL.iter().map(|k| regex::escape(&k.to_string())).collect::<Vec<_>>().join("|")
}

/// The denial message in `input`: an AdmissionReview (or its `response`), a Status, or the text itself
/// (`kubectl`'s `admission webhook "validate.vouch.dev" denied the request: …` included).
pub fn denial_message(input: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(input) {
        for pointer in ["/response/status/message", "/status/message", "/message"] {
            if let Some(m) = v.pointer(pointer).and_then(Value::as_str) {
                return m.to_owned();
            }
        }
    }
    match input.split_once("denied the request: ") {
        Some((_, rest)) => rest.trim().to_owned(),
        None => input.trim().to_owned(),
    }
}

/// Explain a denial message (see [`denial_message`] for what `input` may be).
pub fn explain(input: &str) -> Result<Explanation, String> {
    if input.len() > MAX_INPUT {
        return Err(format!("the input is larger than {MAX_INPUT} bytes"));
    }
    let message = denial_message(input);
    if message.is_empty() {
        return Err("no denial message found in the input".into());
    }
    let kinds = kinds();
    let finding = Regex::new(&format!(
        r"(?:^|; )(?P<artifact>(?:{kinds}) [^:;]*): image (?P<reference>\S+) : policy (?P<policy>[^:]+): (?P<requirement>[^:]+): "
    ))
    .map_err(|e| e.to_string())?;
    let kind = Regex::new(&format!(r"^(?:{kinds}) ")).map_err(|e| e.to_string())?;
    let (object, message) = split_object(&message, &kind);
    let head = message.clone();
    let starts: Vec<_> = finding.captures_iter(&message).collect();
    let mut findings = Vec::new();
    for (i, c) in starts.iter().enumerate() {
        let Some(whole) = c.get(0) else { continue };
        let end = starts.get(i + 1).and_then(|n| n.get(0)).map_or(message.len(), |m| m.start());
        let reason = message[whole.end()..end].trim().to_owned();
        let (cause, remediation) = classify(c["requirement"].trim(), &reason);
        findings.push(ExplainedFinding {
            artifact: c["artifact"].to_owned(),
            reference: c["reference"].to_owned(),
            policy: c["policy"].trim().to_owned(),
            requirement: c["requirement"].trim().to_owned(),
            reason,
            cause,
            remediation,
        });
    }
    let mut other = Vec::new();
    if findings.is_empty() {
        for line in head.split("; ").map(str::trim).filter(|l| !l.is_empty()) {
            let requirement =
                line.rsplit(" : ").next().and_then(|r| r.split(": ").next()).unwrap_or_default();
            let (cause, remediation) = classify(requirement, line);
            other.push(ExplainedLine { text: line.to_owned(), cause, remediation });
        }
    }
    Ok(Explanation { object, findings, other })
}

/// `Pod shop/web: rest` → (`Pod shop/web`, `rest`), when the message starts with an object's kind and name
/// (not with an artifact, `container app: …`).
fn split_object(message: &str, artifact: &Regex) -> (Option<String>, String) {
    match message.split_once(": ") {
        Some((object, rest))
            if object.split(' ').count() == 2 && !object.contains(';') && !artifact.is_match(message) =>
        {
            (Some(object.to_owned()), rest.to_owned())
        }
        _ => (None, message.to_owned()),
    }
}

/// The code and remediation of a requirement's reason ([`ReasonCode::classify`], the same rule every
/// output of vouch uses).
fn classify(requirement: &str, reason: &str) -> (&'static str, &'static str) {
    let code = ReasonCode::classify(requirement, None, reason);
    (code.as_str(), code.remediation())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "Pod shop/web: container app: image reg.example/shop/app:1.0@sha256:aaaa : policy prod-signed: signature: no signature verifies against key cosign-prod (the only candidate failed: sha256-aaaa.sig: signature does not verify); initContainer fetch: image reg.example/tools/fetch:2@sha256:bbbb : policy prod-signed: signature: no signature verifies against key cosign-prod (nothing found (looked in sha256-bbbb.sig, referrers))";

    #[test]
    fn each_failed_requirement_is_read_with_its_reason_as_written() {
        let e = explain(TWO).unwrap();
        assert_eq!(e.object.as_deref(), Some("Pod shop/web"));
        assert_eq!(e.findings.len(), 2, "{e:#?}");
        assert_eq!(e.findings[0].artifact, "container app");
        assert_eq!(e.findings[0].reference, "reg.example/shop/app:1.0@sha256:aaaa");
        assert_eq!(e.findings[0].policy, "prod-signed");
        assert_eq!(e.findings[0].requirement, "signature");
        assert!(e.findings[0].reason.ends_with("signature does not verify)"), "{:?}", e.findings[0].reason);
        assert_eq!(e.findings[0].cause, "SignatureInvalid");
        assert_eq!(e.findings[1].artifact, "initContainer fetch");
        assert_eq!(e.findings[1].cause, "SignatureMissing");
    }

    #[test]
    fn the_message_is_found_in_a_review_a_status_or_kubectl_text() {
        let review = serde_json::json!({"response": {"allowed": false, "status": {"message": TWO}}});
        assert_eq!(denial_message(&review.to_string()), TWO);
        let kubectl =
            format!("Error from server: admission webhook \"validate.vouch.dev\" denied the request: {TWO}");
        assert_eq!(denial_message(&kubectl), TWO);
        assert_eq!(explain(&kubectl).unwrap().findings.len(), 2);
    }

    #[test]
    fn lines_that_are_not_findings_are_still_explained() {
        let e = explain("Pod shop/web: container app: image reg.example/x:1 : policy: no policy covers this image; container b: image reg.example/y:1 : reference: not a valid reference: bad").unwrap();
        assert!(e.findings.is_empty());
        assert_eq!(e.other.len(), 2, "{e:#?}");
        assert_eq!(e.other[0].cause, "NoPolicy");
        assert_eq!(e.other[1].cause, "ReferenceInvalid");
        assert!(explain("").is_err());
        assert!(explain(&"x".repeat(MAX_INPUT + 1)).is_err());
    }
}
