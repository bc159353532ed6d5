//! Answers to a review, built with kube's `AdmissionResponse`: the validating webhook's (denial status,
//! warnings, audit annotations, each bounded) and the mutating webhook's (the [`pin_patch`] through
//! `with_patch`, base64 in the review).

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use kube::core::admission::{AdmissionResponse, META_KIND};
use kube::core::response::{StatusCause, StatusDetails};
use kube::core::{Status, TypeMeta};
use serde_json::{json, Value};
use vouch_policies::{Decision, Finding};

use super::patch::pin_patch;
use super::API_VERSION;

/// Prefix of audit annotation keys (`audit-0`, `audit-1`, ...). Unprefixed on purpose: kube-apiserver
/// prefixes each key with the webhook's name (`validate.vouch.dev/audit-0`) and drops keys that would then
/// hold a second `/`.
pub const AUDIT_ANNOTATION_PREFIX: &str = "audit-";
/// Largest audit annotation value, in bytes.
pub const MAX_AUDIT_VALUE_BYTES: usize = 1024;
/// Most audit annotations per response (the rest are counted in one more annotation).
pub const MAX_AUDIT_ANNOTATIONS: usize = 32;
/// Most warnings per response (the API server truncates large numbers of warnings anyway).
pub const MAX_WARNINGS: usize = 32;
/// Largest warning, in bytes (the API server truncates warnings over 256 characters).
pub const MAX_WARNING_BYTES: usize = 256;

/// What the response of a review says, as a JSON AdmissionReview ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseReview {
    /// The AdmissionReview JSON.
    pub body: Value,
    /// Whether it admits the object.
    pub allowed: bool,
    /// How many JSON patch operations it carries.
    pub patch_ops: usize,
}

fn truncate_utf8(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let marker = "…";
    let mut end = max.saturating_sub(marker.len());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{marker}", s.get(..end).unwrap_or_default())
}

/// kube's response for `uid`: allowed, status `Success`, `admission.k8s.io/v1`.
fn allowed_response(uid: &str) -> AdmissionResponse {
    // `AdmissionResponse::from(&request)` needs the typed request, which the engine's input has taken by
    // now (only the uid is carried over anyway); `invalid` is kube's constructor without one (the struct is
    // non-exhaustive), and all it sets is overwritten here.
    let mut r = AdmissionResponse::invalid("");
    r.types = TypeMeta { api_version: API_VERSION.to_owned(), kind: META_KIND.to_owned() };
    r.uid = uid.to_owned();
    r.allowed = true;
    r.result = Status::success();
    r
}

/// The AdmissionReview JSON of `response`, through kube's `into_review`, but for the patch bytes.
///
/// kube serializes `AdmissionResponse::patch` (`Vec<u8>`) as an array of numbers (kube-rs/kube#1781); the
/// API documents base64 (how Go writes `[]byte`), and vouch has always sent base64, so the bytes kube's
/// `with_patch` wrote are taken out and written as base64 (`patchType` stays kube's).
fn review_json(mut response: AdmissionResponse) -> Value {
    let patch = response.patch.take();
    let mut body = serde_json::to_value(response.into_review()).unwrap_or_else(|_| json!({}));
    if let (Some(patch), Some(r)) = (patch, body.get_mut("response").and_then(Value::as_object_mut)) {
        r.insert("patch".into(), Value::String(STANDARD.encode(patch)));
    }
    body
}

/// The validating webhook's answer: deny (HTTP 200, allowed false, code 403) with the engine's message,
/// warnings, and audit annotations for would-be denials.
pub fn validate_response(uid: &str, decision: &Decision) -> ResponseReview {
    let mut r = allowed_response(uid);
    if !decision.allowed {
        // kube's `deny` sets `allowed` and the message; the code and reason are vouch's (without a code
        // of at least 400 the API server answers the client 400 Bad Request).
        r.result = Status::failure("", "Forbidden").with_code(403);
        r.result.details = causes(&decision.causes);
        r = r.deny(decision.message.as_deref().unwrap_or("denied by vouch policy"));
    }
    r.warnings = warnings(&decision.warnings);
    r.audit_annotations = audit_annotations(&decision.audit);
    ResponseReview { allowed: r.allowed, body: review_json(r), patch_ops: 0 }
}

/// Most causes sent with a denial, and longest cause message, in bytes.
pub const MAX_CAUSES: usize = 32;
const MAX_CAUSE_MESSAGE_BYTES: usize = 1024;

/// `status.details.causes`: per enforced failure its reason code, denial line and field (Kubernetes' Status
/// convention; `status.reason` stays `Forbidden`, which clients test for).
fn causes(causes: &[vouch_policies::Cause]) -> Option<StatusDetails> {
    if causes.is_empty() {
        return None;
    }
    Some(StatusDetails {
        name: String::new(),
        group: String::new(),
        kind: String::new(),
        uid: String::new(),
        causes: causes
            .iter()
            .take(MAX_CAUSES)
            .map(|c| StatusCause {
                reason: c.reason.to_string(),
                message: truncate_utf8(&c.message, MAX_CAUSE_MESSAGE_BYTES),
                field: c.field.clone(),
            })
            .collect(),
        retry_after_seconds: 0,
    })
}

fn warnings(ws: &[String]) -> Option<Vec<String>> {
    if ws.is_empty() {
        return None;
    }
    let mut out: Vec<String> =
        ws.iter().take(MAX_WARNINGS).map(|w| truncate_utf8(w, MAX_WARNING_BYTES)).collect();
    if ws.len() > MAX_WARNINGS {
        out.push(format!("vouch: {} more warning(s) not shown", ws.len() - MAX_WARNINGS));
    }
    Some(out)
}

/// `audit-<n>` = one finding per key, each value at most 1 KiB.
pub fn audit_annotations(audit: &[Finding]) -> HashMap<String, String> {
    let mut out: HashMap<String, String> = audit
        .iter()
        .take(MAX_AUDIT_ANNOTATIONS)
        .enumerate()
        .map(|(i, f)| {
            (format!("{AUDIT_ANNOTATION_PREFIX}{i}"), truncate_utf8(&f.to_string(), MAX_AUDIT_VALUE_BYTES))
        })
        .collect();
    if audit.len() > MAX_AUDIT_ANNOTATIONS {
        out.insert(
            format!("{AUDIT_ANNOTATION_PREFIX}truncated"),
            format!("{} more finding(s) not shown", audit.len() - MAX_AUDIT_ANNOTATIONS),
        );
    }
    out
}

/// The mutating webhook's answer: always allowed (denying is the validating webhook's job, which sees the
/// pinned object and reaches the same verdict for the same digests), with the pin patch if any.
pub fn mutate_response(
    uid: &str,
    object: Option<&Value>,
    old_object: Option<&Value>,
    decision: &Decision,
) -> ResponseReview {
    let patch = object.map(|o| pin_patch(o, old_object, decision)).unwrap_or_default();
    let patch_ops = patch.len();
    if patch_ops == 0 {
        return ResponseReview { body: review_json(allowed_response(uid)), allowed: true, patch_ops };
    }
    match allowed_response(uid).with_patch(patch) {
        Ok(r) => ResponseReview { body: review_json(r), allowed: true, patch_ops },
        // Writing JSON values out cannot fail; were it to, nothing is pinned (the validating webhook judges
        // the object as it is).
        Err(e) => {
            tracing::error!(error = %e, "cannot write the pin patch; answering without it");
            ResponseReview { body: review_json(allowed_response(uid)), allowed: true, patch_ops: 0 }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::patch::tests::{finding, pinned_decision};
    use super::super::VERIFIED_ANNOTATION;
    use super::*;
    use vouch_policies::FindingResult;

    #[test]
    fn denial_carries_message_and_403() {
        let d = Decision {
            allowed: false,
            message: Some("container app: image x : policy p: no".into()),
            ..Decision::default()
        };
        let r = validate_response("u1", &d);
        assert!(!r.allowed);
        let resp = &r.body["response"];
        assert_eq!(r.body["apiVersion"], API_VERSION);
        assert_eq!(r.body["kind"], "AdmissionReview");
        assert_eq!(resp["uid"], "u1");
        assert_eq!(resp["allowed"], false);
        assert_eq!(resp["status"]["code"], 403);
        assert_eq!(resp["status"]["message"], "container app: image x : policy p: no");
        assert!(resp.get("patch").is_none());
    }

    #[test]
    fn audit_annotations_are_numbered_and_bounded() {
        let mut long = finding("/spec/containers/0/image", "audit-me", FindingResult::Fail);
        long.reason = "é".repeat(2000);
        let audit: Vec<Finding> = std::iter::repeat_n(long, MAX_AUDIT_ANNOTATIONS + 3).collect();
        let a = audit_annotations(&audit);
        assert_eq!(a.len(), MAX_AUDIT_ANNOTATIONS + 1);
        assert!(
            a["audit-0"].starts_with("container app: image reg.example/app:1.0@sha256:ab : policy audit-me")
        );
        assert!(a.values().all(|v| v.len() <= MAX_AUDIT_VALUE_BYTES));
        assert_eq!(a["audit-truncated"], "3 more finding(s) not shown");
    }

    #[test]
    fn nothing_to_patch_is_no_patch_and_no_patch_type() {
        let object = json!({"metadata": {}, "spec": {"containers": [{"image": "reg.example/app:1.0"}]}});
        let r = mutate_response("u", Some(&object), None, &Decision::allow());
        assert!(r.body["response"].get("patch").is_none());
        assert!(r.body["response"].get("patchType").is_none());
        assert_eq!(r.patch_ops, 0);
    }

    #[test]
    fn mutate_response_carries_a_base64_json_patch() {
        let object = json!({"metadata": {}, "spec": {"containers": [{"image": "reg.example/app:1.0"}]}});
        let r = mutate_response("u2", Some(&object), None, &pinned_decision());
        assert_eq!(r.patch_ops, 2);
        assert_eq!(r.body["response"]["patchType"], "JSONPatch");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(r.body["response"]["patch"].as_str().unwrap())
            .unwrap();
        let ops: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(ops[0]["op"], "replace");
        assert_eq!(ops[1]["path"], "/metadata/annotations");
    }

    /// The bytes the server sends (`axum::Json` writes `serde_json::to_vec` of the body) for each kind of
    /// answer, and the JSON patch inside: how answers are built may change, what the API server reads may not.
    #[test]
    fn answers_are_sent_byte_for_byte_as_pinned() {
        let denied = Decision {
            allowed: false,
            message: Some("container app: image reg.example/app:1.0 : policy p: unsigned".into()),
            warnings: vec!["w".repeat(300), "second".into()],
            audit: vec![finding("/spec/containers/0/image", "audit-me", FindingResult::Fail)],
            ..Decision::default()
        };
        let object = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": "reg.example/app:1.0"}]}});
        let annotated = json!({"metadata": {"annotations": {"team": "a"}}, "spec": object["spec"]});
        let bare = json!({"spec": object["spec"]});
        let forged = json!({"metadata": {"annotations": {VERIFIED_ANNOTATION: "{}"}}, "spec": {}});
        let earlier = json!({"metadata": {"annotations": {VERIFIED_ANNOTATION: "{\"verified\":[]}"}}});
        let long = format!("{}…", "w".repeat(253));
        let summary = r#"{\"verified\":[{\"image\":\"reg.example/app:1.0@sha256:ab\",\"policies\":[\"prod-signed\"],\"signers\":[\"key sha256:cd\"]}]}"#;
        let pin =
            r#"{"op":"replace","path":"/spec/containers/0/image","value":"reg.example/app:1.0@sha256:ab"}"#;
        // (what, answer, its body, the patch it carries)
        let cases: [(&str, ResponseReview, String, Option<String>); 8] = [
            (
                "allowed",
                validate_response("u1", &Decision::allow()),
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"allowed":true,"status":{"status":"Success"},"uid":"u1"}}"#.to_owned(),
                None,
            ),
            (
                "denied",
                validate_response("u2", &denied),
                format!(r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{{"allowed":false,"auditAnnotations":{{"audit-0":"container app: image reg.example/app:1.0@sha256:ab : policy audit-me: signature: signed by key cosign-prod"}},"status":{{"code":403,"message":"container app: image reg.example/app:1.0 : policy p: unsigned","reason":"Forbidden","status":"Failure"}},"uid":"u2","warnings":["{long}","second"]}}}}"#),
                None,
            ),
            (
                "pinned",
                mutate_response("u3", Some(&object), None, &pinned_decision()),
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"allowed":true,"patch":"W3sib3AiOiJyZXBsYWNlIiwicGF0aCI6Ii9zcGVjL2NvbnRhaW5lcnMvMC9pbWFnZSIsInZhbHVlIjoicmVnLmV4YW1wbGUvYXBwOjEuMEBzaGEyNTY6YWIifSx7Im9wIjoiYWRkIiwicGF0aCI6Ii9tZXRhZGF0YS9hbm5vdGF0aW9ucyIsInZhbHVlIjp7InZvdWNoLmRldi92ZXJpZmllZCI6IntcInZlcmlmaWVkXCI6W3tcImltYWdlXCI6XCJyZWcuZXhhbXBsZS9hcHA6MS4wQHNoYTI1NjphYlwiLFwicG9saWNpZXNcIjpbXCJwcm9kLXNpZ25lZFwiXSxcInNpZ25lcnNcIjpbXCJrZXkgc2hhMjU2OmNkXCJdfV19In19XQ==","patchType":"JSONPatch","status":{"status":"Success"},"uid":"u3"}}"#.to_owned(),
                Some(format!(r#"[{pin},{{"op":"add","path":"/metadata/annotations","value":{{"vouch.dev/verified":"{summary}"}}}}]"#)),
            ),
            (
                "pinned, annotated",
                mutate_response("u7", Some(&annotated), None, &pinned_decision()),
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"allowed":true,"patch":"W3sib3AiOiJyZXBsYWNlIiwicGF0aCI6Ii9zcGVjL2NvbnRhaW5lcnMvMC9pbWFnZSIsInZhbHVlIjoicmVnLmV4YW1wbGUvYXBwOjEuMEBzaGEyNTY6YWIifSx7Im9wIjoiYWRkIiwicGF0aCI6Ii9tZXRhZGF0YS9hbm5vdGF0aW9ucy92b3VjaC5kZXZ+MXZlcmlmaWVkIiwidmFsdWUiOiJ7XCJ2ZXJpZmllZFwiOlt7XCJpbWFnZVwiOlwicmVnLmV4YW1wbGUvYXBwOjEuMEBzaGEyNTY6YWJcIixcInBvbGljaWVzXCI6W1wicHJvZC1zaWduZWRcIl0sXCJzaWduZXJzXCI6W1wia2V5IHNoYTI1NjpjZFwiXX1dfSJ9XQ==","patchType":"JSONPatch","status":{"status":"Success"},"uid":"u7"}}"#.to_owned(),
                Some(format!(r#"[{pin},{{"op":"add","path":"/metadata/annotations/vouch.dev~1verified","value":"{summary}"}}]"#)),
            ),
            (
                "pinned, no metadata",
                mutate_response("u8", Some(&bare), None, &pinned_decision()),
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"allowed":true,"patch":"W3sib3AiOiJyZXBsYWNlIiwicGF0aCI6Ii9zcGVjL2NvbnRhaW5lcnMvMC9pbWFnZSIsInZhbHVlIjoicmVnLmV4YW1wbGUvYXBwOjEuMEBzaGEyNTY6YWIifSx7Im9wIjoiYWRkIiwicGF0aCI6Ii9tZXRhZGF0YSIsInZhbHVlIjp7ImFubm90YXRpb25zIjp7InZvdWNoLmRldi92ZXJpZmllZCI6IntcInZlcmlmaWVkXCI6W3tcImltYWdlXCI6XCJyZWcuZXhhbXBsZS9hcHA6MS4wQHNoYTI1NjphYlwiLFwicG9saWNpZXNcIjpbXCJwcm9kLXNpZ25lZFwiXSxcInNpZ25lcnNcIjpbXCJrZXkgc2hhMjU2OmNkXCJdfV19In19fV0=","patchType":"JSONPatch","status":{"status":"Success"},"uid":"u8"}}"#.to_owned(),
                Some(format!(r#"[{pin},{{"op":"add","path":"/metadata","value":{{"annotations":{{"vouch.dev/verified":"{summary}"}}}}}}]"#)),
            ),
            (
                "forged summary",
                mutate_response("u4", Some(&forged), None, &Decision::allow()),
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"allowed":true,"patch":"W3sib3AiOiJyZW1vdmUiLCJwYXRoIjoiL21ldGFkYXRhL2Fubm90YXRpb25zL3ZvdWNoLmRldn4xdmVyaWZpZWQifV0=","patchType":"JSONPatch","status":{"status":"Success"},"uid":"u4"}}"#.to_owned(),
                Some(r#"[{"op":"remove","path":"/metadata/annotations/vouch.dev~1verified"}]"#.to_owned()),
            ),
            (
                "set back",
                mutate_response("u6", Some(&forged), Some(&earlier), &Decision::allow()),
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"allowed":true,"patch":"W3sib3AiOiJyZXBsYWNlIiwicGF0aCI6Ii9tZXRhZGF0YS9hbm5vdGF0aW9ucy92b3VjaC5kZXZ+MXZlcmlmaWVkIiwidmFsdWUiOiJ7XCJ2ZXJpZmllZFwiOltdfSJ9XQ==","patchType":"JSONPatch","status":{"status":"Success"},"uid":"u6"}}"#.to_owned(),
                Some(r#"[{"op":"replace","path":"/metadata/annotations/vouch.dev~1verified","value":"{\"verified\":[]}"}]"#.to_owned()),
            ),
            (
                "nothing to patch",
                mutate_response("u5", Some(&object), None, &Decision::allow()),
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"allowed":true,"status":{"status":"Success"},"uid":"u5"}}"#.to_owned(),
                None,
            ),
        ];
        for (what, answer, body, patch) in cases {
            assert_eq!(String::from_utf8(serde_json::to_vec(&answer.body).unwrap()).unwrap(), body, "{what}");
            let sent = answer.body["response"]["patch"].as_str().map(|p| {
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(p).unwrap()).unwrap()
            });
            assert_eq!(sent, patch, "{what}");
        }
    }
}
