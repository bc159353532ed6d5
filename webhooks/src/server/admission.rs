//! AdmissionReview in and out: reading `admission.k8s.io/v1` reviews exactly as kube-apiserver sends them,
//! and turning a [`Decision`] into the response — denial status, warnings, audit annotations and, for the
//! mutating webhook, a JSON patch (RFC 6902, base64 in the review) that pins verified images.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::{DynamicResourceScope, ObjectMeta, Resource, Status, TypeMeta};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use vouch_attest::registry::Credentials;
use vouch_policies::{AdmissionInput, Decision, Finding, FindingResult};

/// The only AdmissionReview version served.
pub const API_VERSION: &str = "admission.k8s.io/v1";
/// Annotation the mutating webhook sets: a compact JSON summary of what was verified.
pub const VERIFIED_ANNOTATION: &str = "vouch.dev/verified";
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
/// Largest `vouch.dev/verified` value, in bytes.
pub const MAX_SUMMARY_BYTES: usize = 8 * 1024;

/// Why a request body is not an AdmissionReview this server can answer (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON (or nested deeper than the parser allows).
    #[error("request body is not JSON: {reason}")]
    NotJson {
        /// The parser's message, with line and column.
        reason: String,
    },
    /// JSON, but not an object.
    #[error("request body is not a JSON object")]
    NotAnObject,
    /// Another apiVersion (e.g. v1beta1).
    #[error("unsupported apiVersion {found:?}: expected {API_VERSION} (set admissionReviewVersions: [v1])")]
    ApiVersion {
        /// What the body said.
        found: String,
    },
    /// Not an AdmissionReview.
    #[error("unsupported kind {found:?}: expected AdmissionReview")]
    Kind {
        /// What the body said.
        found: String,
    },
    /// An AdmissionReview without `request`.
    #[error("AdmissionReview has no request")]
    NoRequest,
    /// `request` does not have the shape of an AdmissionRequest.
    #[error("invalid AdmissionReview request: {reason}")]
    InvalidRequest {
        /// What is wrong.
        reason: String,
    },
}

/// A review as read: the typed request, and the object and old object as the raw JSON sent.
#[derive(Debug)]
pub struct Review {
    /// The request (its `object` and `oldObject` are in the fields below instead).
    pub request: AdmissionRequest<ReadSeparately>,
    /// `request.object`, untouched.
    pub object: Option<Value>,
    /// `request.oldObject`, untouched.
    pub old_object: Option<Value>,
}

/// Stands in for the object inside the typed request: the typed pass skips it (no typed copy of a large
/// object is built), and [`parse_review`] reads it once, as JSON, into [`Review::object`].
#[derive(Debug, Clone, Default)]
pub struct ReadSeparately {
    meta: ObjectMeta,
}

impl<'de> Deserialize<'de> for ReadSeparately {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d)?;
        Ok(Self::default())
    }
}

impl Resource for ReadSeparately {
    type DynamicType = ();
    type Scope = DynamicResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

/// The body's top level, read in one pass: what is checked, and the request.
enum Top {
    NotAnObject,
    Review { api_version: Option<Value>, kind: Option<Value>, request: Option<RequestRead> },
}

impl<'de> Deserialize<'de> for Top {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

/// Answers `$none` for every JSON value but an object (a sequence is skipped without recursion).
macro_rules! not_an_object {
    ($none:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($none)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
}

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let (mut api_version, mut kind, mut request) = (None, None, None);
        // A repeated key counts with its last value, as in a JSON object read whole.
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "apiVersion" => api_version = Some(map.next_value()?),
                "kind" => kind = Some(map.next_value()?),
                "request" => request = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Top::Review { api_version, kind, request })
    }

    fn visit_unit<E: de::Error>(self) -> Result<Top, E> {
        Ok(Top::NotAnObject)
    }

    not_an_object!(Top::NotAnObject);
}

/// `request` as read in the same pass: its fields typed, the object and old object as JSON values.
enum RequestRead {
    Null,
    NotAnObject,
    /// A field is missing or repeated.
    Invalid(String),
    Read(Box<Review>),
}

impl<'de> Deserialize<'de> for RequestRead {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RequestVisitor)
    }
}

struct RequestVisitor;

impl<'de> Visitor<'de> for RequestVisitor {
    type Value = RequestRead;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an AdmissionRequest")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RequestRead, A::Error> {
        let (mut uid, mut kind, mut resource, mut sub_resource) = (None, None, None, None);
        let (mut request_kind, mut request_resource, mut request_sub_resource) = (None, None, None);
        let (mut name, mut namespace, mut operation, mut user_info) = (None, None, None, None);
        let (mut object, mut old_object, mut dry_run, mut options) = (None, None, None, None);
        let mut repeated = None;
        // As a derived Deserialize reads AdmissionRequest: unknown fields ignored, a repeated one invalid.
        macro_rules! field {
            ($slot:ident, $name:literal) => {{
                if $slot.is_some() {
                    repeated.get_or_insert($name);
                    map.next_value::<IgnoredAny>()?;
                } else {
                    $slot = Some(map.next_value()?);
                }
            }};
        }
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "uid" => field!(uid, "uid"),
                "kind" => field!(kind, "kind"),
                "resource" => field!(resource, "resource"),
                "subResource" => field!(sub_resource, "subResource"),
                "requestKind" => field!(request_kind, "requestKind"),
                "requestResource" => field!(request_resource, "requestResource"),
                "requestSubResource" => field!(request_sub_resource, "requestSubResource"),
                "name" => field!(name, "name"),
                "namespace" => field!(namespace, "namespace"),
                "operation" => field!(operation, "operation"),
                "userInfo" => field!(user_info, "userInfo"),
                "object" => field!(object, "object"),
                "oldObject" => field!(old_object, "oldObject"),
                "dryRun" => field!(dry_run, "dryRun"),
                "options" => field!(options, "options"),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let object: Option<Value> = object.flatten();
        let old_object: Option<Value> = old_object.flatten();
        for (name, o) in [("object", &object), ("oldObject", &old_object)] {
            if o.as_ref().is_some_and(|o| !o.is_object()) {
                return Ok(RequestRead::Invalid(format!("{name} is not a JSON object")));
            }
        }
        if let Some(field) = repeated {
            return Ok(RequestRead::Invalid(format!("duplicate field `{field}`")));
        }
        let absent = [
            ("uid", uid.is_none()),
            ("kind", kind.is_none()),
            ("resource", resource.is_none()),
            ("operation", operation.is_none()),
            ("userInfo", user_info.is_none()),
        ];
        let (Some(uid), Some(kind), Some(resource), Some(operation), Some(user_info)) =
            (uid, kind, resource, operation, user_info)
        else {
            let field = absent.iter().find(|(_, a)| *a).map_or("uid", |(f, _)| f);
            return Ok(RequestRead::Invalid(format!("missing field `{field}`")));
        };
        let placeholder = |o: &Option<Value>| o.as_ref().map(|_| ReadSeparately::default());
        let request = AdmissionRequest {
            types: TypeMeta { api_version: API_VERSION.to_owned(), kind: "AdmissionReview".to_owned() },
            uid,
            kind,
            resource,
            sub_resource: sub_resource.flatten(),
            request_kind: request_kind.flatten(),
            request_resource: request_resource.flatten(),
            request_sub_resource: request_sub_resource.flatten(),
            name: name.unwrap_or_default(),
            namespace: namespace.flatten(),
            operation,
            user_info,
            object: placeholder(&object),
            old_object: placeholder(&old_object),
            dry_run: dry_run.unwrap_or_default(),
            options: options.flatten(),
        };
        Ok(RequestRead::Read(Box::new(Review { request, object, old_object })))
    }

    fn visit_unit<E: de::Error>(self) -> Result<RequestRead, E> {
        Ok(RequestRead::Null)
    }

    not_an_object!(RequestRead::NotAnObject);
}

/// Read a body as an `admission.k8s.io/v1` AdmissionReview with a request.
///
/// One pass: the request's fields go straight into their types, the object (and old object) into one
/// JSON value each, everything else is skipped without being built. A body that does not read is read
/// again whole ([`diagnose`]) to say precisely what is wrong with it.
pub fn parse_review(body: &[u8]) -> Result<Review, ReviewError> {
    // serde_json's recursion limit (128) turns hostile nesting into an error, not a stack overflow.
    let top: Top = match serde_json::from_slice(body) {
        Ok(top) => top,
        Err(e) => return Err(diagnose(body, e)),
    };
    let Top::Review { api_version, kind, request } = top else {
        return Err(ReviewError::NotAnObject);
    };
    let api_version = api_version.as_ref().and_then(Value::as_str).unwrap_or_default();
    if api_version != API_VERSION {
        return Err(ReviewError::ApiVersion { found: api_version.to_owned() });
    }
    let kind = kind.as_ref().and_then(Value::as_str).unwrap_or_default();
    if kind != "AdmissionReview" {
        return Err(ReviewError::Kind { found: kind.to_owned() });
    }
    let review = match request {
        None | Some(RequestRead::Null) => return Err(ReviewError::NoRequest),
        Some(RequestRead::NotAnObject) => {
            return Err(ReviewError::InvalidRequest { reason: "request is not a JSON object".into() })
        }
        Some(RequestRead::Invalid(reason)) => return Err(ReviewError::InvalidRequest { reason }),
        Some(RequestRead::Read(review)) => *review,
    };
    if review.request.uid.is_empty() {
        return Err(ReviewError::InvalidRequest { reason: "request.uid is empty".into() });
    }
    Ok(review)
}

/// Why a body that failed the one-pass read is not a review, checked in the documented order on the whole
/// body read as JSON (`first` is the one-pass reader's error, used when no check names anything else).
fn diagnose(body: &[u8], first: serde_json::Error) -> ReviewError {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return ReviewError::NotJson { reason: e.to_string() },
    };
    if !value.is_object() {
        return ReviewError::NotAnObject;
    }
    let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let api_version = text("apiVersion");
    if api_version != API_VERSION {
        return ReviewError::ApiVersion { found: api_version };
    }
    let kind = text("kind");
    if kind != "AdmissionReview" {
        return ReviewError::Kind { found: kind };
    }
    match value.get("request") {
        None | Some(Value::Null) => ReviewError::NoRequest,
        Some(r) if !r.is_object() => {
            ReviewError::InvalidRequest { reason: "request is not a JSON object".into() }
        }
        Some(r) => {
            for name in ["object", "oldObject"] {
                if r.get(name).is_some_and(|o| !o.is_null() && !o.is_object()) {
                    return ReviewError::InvalidRequest { reason: format!("{name} is not a JSON object") };
                }
            }
            ReviewError::InvalidRequest { reason: first.to_string() }
        }
    }
}

/// The operation as Kubernetes spells it.
pub fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

impl Review {
    /// Whether verification can be skipped without looking anything up (DELETE, CONNECT, status and
    /// other subresources except `ephemeralcontainers`). The engine decides the same; this only saves
    /// cluster look-ups.
    pub fn needs_cluster_facts(&self) -> bool {
        let op_checked = matches!(self.request.operation, Operation::Create | Operation::Update);
        let sub_checked = match self.request.sub_resource.as_deref() {
            None | Some("") | Some("ephemeralcontainers") => true,
            Some(_) => false,
        };
        op_checked && sub_checked && self.object.is_some()
    }

    /// The pod spec inside the object, for pull secrets (Pod, pod templates, CronJob).
    pub fn pod_spec(&self) -> Option<&Value> {
        let kind = &self.request.kind;
        let pointer = vouch_policies::extract::pod_spec_pointer(&kind.group, &kind.kind)?;
        self.object.as_ref()?.pointer(pointer)
    }

    /// The engine's input, with cluster facts looked up by the caller.
    pub fn into_input(self, facts: ClusterFacts) -> AdmissionInput {
        let ClusterFacts { namespace_labels, namespace_annotations, pull_credentials } = facts;
        let r = self.request;
        AdmissionInput {
            uid: r.uid,
            operation: r.operation,
            kind: r.kind,
            resource: r.resource.resource,
            sub_resource: r.sub_resource.filter(|s| !s.is_empty()),
            namespace: r.namespace.filter(|n| !n.is_empty()),
            name: r.name,
            object: self.object,
            old_object: self.old_object,
            namespace_labels,
            namespace_annotations,
            dry_run: r.dry_run,
            pull_credentials,
        }
    }
}

/// What the engine needs from the cluster besides the review: looked up by the server per request.
#[derive(Debug, Clone, Default)]
pub struct ClusterFacts {
    /// Labels of the object's namespace (policy namespace selectors); `None`: unknown (no cluster access).
    pub namespace_labels: Option<BTreeMap<String, String>>,
    /// vouch.dev/* annotations of the object's namespace (e.g. the egress allowlist of its NetworkPolicies).
    pub namespace_annotations: BTreeMap<String, String>,
    /// The pod's and its service account's image pull credentials.
    pub pull_credentials: Credentials,
}

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

fn base_response(uid: &str) -> AdmissionResponse {
    // Built through a request-less path: `AdmissionResponse::from(&request)` needs the typed request, and
    // only the uid is carried over anyway.
    let mut r = AdmissionResponse::invalid("");
    r.uid = uid.to_owned();
    r.allowed = true;
    r.result = Status::success();
    r
}

fn review_json(response: AdmissionResponse) -> Value {
    let mut body = serde_json::to_value(response.into_review()).unwrap_or_else(|_| json!({}));
    if let Some(obj) = body.as_object_mut() {
        obj.insert("apiVersion".into(), json!(API_VERSION));
        obj.insert("kind".into(), json!("AdmissionReview"));
    }
    body
}

/// The validating webhook's answer: deny (HTTP 200, allowed false, code 403) with the engine's message,
/// warnings, and audit annotations for would-be denials.
pub fn validate_response(uid: &str, decision: &Decision) -> ResponseReview {
    let mut r = base_response(uid);
    if !decision.allowed {
        let message = decision.message.clone().unwrap_or_else(|| "denied by vouch policy".into());
        r.allowed = false;
        r.result = Status::failure(&message, "Forbidden").with_code(403);
    }
    r.warnings = warnings(&decision.warnings);
    r.audit_annotations = audit_annotations(&decision.audit);
    ResponseReview { allowed: r.allowed, body: review_json(r), patch_ops: 0 }
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

/// One JSON patch operation (RFC 6902).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchOp {
    /// `add`, `replace` or `remove`.
    pub op: &'static str,
    /// JSON pointer (RFC 6901).
    pub path: String,
    /// The new value (none for `remove`).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub value: Value,
}

/// Escape one reference token for a JSON pointer (RFC 6901: `~` -> `~0`, `/` -> `~1`).
pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[derive(Serialize)]
struct SummaryEntry<'a> {
    image: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    policies: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    signers: Vec<&'a str>,
}

/// The `vouch.dev/verified` value: compact JSON, one entry per pinned image with the policies it passed and
/// who signed it; entries that do not fit in [`MAX_SUMMARY_BYTES`] are counted instead.
pub fn verified_summary(decision: &Decision, pinned: &[&vouch_policies::Pin]) -> String {
    let mut entries = Vec::new();
    for pin in pinned {
        let passes: Vec<&Finding> = decision
            .findings
            .iter()
            .filter(|f| f.result == FindingResult::Pass && f.artifact.pointer == pin.pointer)
            .collect();
        let mut policies: Vec<&str> =
            passes.iter().map(|f| f.policy.as_str()).filter(|p| !p.is_empty()).collect();
        policies.sort_unstable();
        policies.dedup();
        let mut signers: Vec<&str> = passes.iter().filter_map(|f| f.signer.as_deref()).collect();
        signers.sort_unstable();
        signers.dedup();
        entries.push(SummaryEntry { image: &pin.to, policies, signers });
    }
    let mut shown = entries.len();
    loop {
        let omitted = entries.len() - shown;
        let value = match entries.get(..shown) {
            Some(list) if omitted == 0 => json!({ "verified": list }),
            Some(list) => json!({ "verified": list, "omitted": omitted }),
            None => json!({ "omitted": omitted }),
        };
        let text = value.to_string();
        if text.len() <= MAX_SUMMARY_BYTES || shown == 0 {
            return text;
        }
        shown -= 1;
    }
}

/// The patch for a decision: each pin whose pointer still holds the image as written becomes a `replace`,
/// plus the `vouch.dev/verified` annotation (creating `metadata.annotations` if absent). When nothing is
/// pinned, the annotation is vouch's alone all the same: a value the request brings (one vouch did not
/// write: absent from, or different in, the old object) is removed, or set back to the old value.
pub fn pin_patch(object: &Value, old_object: Option<&Value>, decision: &Decision) -> Vec<PatchOp> {
    // Fail closed on a pin that does not point at the image string it names: patch nothing there.
    let pinned: Vec<&vouch_policies::Pin> = decision
        .pins
        .iter()
        .filter(|p| {
            p.from != p.to && object.pointer(&p.pointer).and_then(Value::as_str) == Some(p.from.as_str())
        })
        .collect();
    if pinned.is_empty() {
        return unwritten_summary_patch(object, old_object).into_iter().collect();
    }
    let mut ops: Vec<PatchOp> = pinned
        .iter()
        .map(|p| PatchOp { op: "replace", path: p.pointer.clone(), value: json!(p.to) })
        .collect();
    let summary = verified_summary(decision, &pinned);
    let metadata = object.get("metadata");
    let annotation = match metadata.map(|m| m.get("annotations")) {
        None => PatchOp {
            op: "add",
            path: "/metadata".into(),
            value: json!({ "annotations": { VERIFIED_ANNOTATION: summary } }),
        },
        Some(Some(a)) if a.is_object() => PatchOp {
            op: "add",
            path: format!("/metadata/annotations/{}", escape_pointer_token(VERIFIED_ANNOTATION)),
            value: json!(summary),
        },
        // Absent or null: `add` of the whole map replaces a null member and creates an absent one.
        Some(_) => PatchOp {
            op: "add",
            path: "/metadata/annotations".into(),
            value: json!({ VERIFIED_ANNOTATION: summary }),
        },
    };
    ops.push(annotation);
    ops
}

fn verified_annotation(object: Option<&Value>) -> Option<&Value> {
    object?.get("metadata")?.get("annotations")?.get(VERIFIED_ANNOTATION)
}

/// Undo a `vouch.dev/verified` value this request brings (see [`pin_patch`]), if any.
fn unwritten_summary_patch(object: &Value, old_object: Option<&Value>) -> Option<PatchOp> {
    let brought = verified_annotation(Some(object))?;
    let old = verified_annotation(old_object);
    if old == Some(brought) {
        return None;
    }
    let path = format!("/metadata/annotations/{}", escape_pointer_token(VERIFIED_ANNOTATION));
    Some(match old {
        Some(old) => PatchOp { op: "replace", path, value: old.clone() },
        None => PatchOp { op: "remove", path, value: Value::Null },
    })
}

/// The mutating webhook's answer: always allowed (denying is the validating webhook's job, which sees the
/// pinned object and reaches the same verdict for the same digests), with the pin patch if any.
pub fn mutate_response(
    uid: &str,
    object: Option<&Value>,
    old_object: Option<&Value>,
    decision: &Decision,
) -> ResponseReview {
    let r = base_response(uid);
    let ops = object.map(|o| pin_patch(o, old_object, decision)).unwrap_or_default();
    let mut body = review_json(r);
    if !ops.is_empty() {
        let patch = serde_json::to_vec(&ops).unwrap_or_default();
        if let Some(resp) = body.get_mut("response").and_then(Value::as_object_mut) {
            resp.insert("patch".into(), json!(base64::engine::general_purpose::STANDARD.encode(patch)));
            resp.insert("patchType".into(), json!("JSONPatch"));
        }
    }
    ResponseReview { body, allowed: true, patch_ops: ops.len() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_policies::{ArtifactKind, ArtifactLocation, Pin};

    const POD_CREATE: &str = r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},"name":"web","namespace":"prod","operation":"CREATE","userInfo":{"username":"admin","groups":["system:authenticated"]},"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"prod"},"spec":{"containers":[{"name":"app","image":"reg.example/app:1.0"}]}},"oldObject":null,"dryRun":false,"options":{"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions"}}}"#;

    fn finding(pointer: &str, policy: &str, result: FindingResult) -> Finding {
        Finding {
            policy: policy.into(),
            policy_namespace: None,
            mode: Default::default(),
            requirement: "signature".into(),
            artifact: ArtifactLocation {
                kind: ArtifactKind::Container,
                name: "app".into(),
                pointer: pointer.into(),
            },
            reference: "reg.example/app:1.0@sha256:ab".into(),
            digest: None,
            result,
            reason: "signed by key cosign-prod".into(),
            signer: Some("key sha256:cd".into()),
            rekor_log_index: None,
            sbom_digest: None,
        }
    }

    #[test]
    fn reads_a_review_as_the_api_server_sends_it() {
        let review = parse_review(POD_CREATE.as_bytes()).unwrap();
        assert_eq!(review.request.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(review.request.kind.kind, "Pod");
        assert!(review.needs_cluster_facts());
        assert_eq!(review.pod_spec().unwrap()["containers"][0]["name"], "app");
        let input = review.into_input(ClusterFacts::default());
        assert_eq!(input.namespace.as_deref(), Some("prod"));
        assert_eq!(input.resource, "pods");
        assert_eq!(input.object.unwrap()["spec"]["containers"][0]["image"], "reg.example/app:1.0");
        assert!(input.old_object.is_none());
    }

    #[test]
    fn malformed_reviews_are_named_precisely() {
        let cases: [(&str, &str); 7] = [
            ("{", "request body is not JSON"),
            ("[]", "not a JSON object"),
            (
                r#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{}}"#,
                "unsupported apiVersion \"admission.k8s.io/v1beta1\"",
            ),
            (r#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#, "unsupported kind \"Pod\""),
            (r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#, "has no request"),
            (
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x"}}"#,
                "invalid AdmissionReview request",
            ),
            (
                r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"x","object":"str"}}"#,
                "object is not a JSON object",
            ),
        ];
        for (body, want) in cases {
            let err = parse_review(body.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(want), "{body}: {err}");
        }
        // Hostile nesting is an error, never a stack overflow: skipped parts are skipped without recursion,
        // the parts read as JSON values stop at serde_json's recursion limit.
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let deep = nest(10_000);
        assert_eq!(parse_review(deep.as_bytes()).unwrap_err(), ReviewError::NotAnObject);
        let skipped =
            POD_CREATE.replacen(r#""uid":"#, &format!(r#""unknownField":{},"uid":"#, nest(10_000)), 1);
        assert!(parse_review(skipped.as_bytes()).is_ok(), "an unknown field is skipped, however deep");
        let in_object = format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"x","object":{{"a":{}}}}}}}"#,
            nest(10_000)
        );
        assert!(parse_review(in_object.as_bytes()).unwrap_err().to_string().contains("recursion limit"));
    }

    #[test]
    fn one_pass_reading_keeps_the_request_and_the_object_intact() {
        let review = parse_review(POD_CREATE.as_bytes()).unwrap();
        assert_eq!(review.request.types.api_version, API_VERSION);
        assert_eq!(review.request.types.kind, "AdmissionReview");
        assert_eq!(review.request.operation, Operation::Create);
        assert_eq!(review.request.name, "web");
        assert_eq!(review.request.user_info.username.as_deref(), Some("admin"));
        let placeholder = review.request.object.as_ref().unwrap();
        assert!(placeholder.meta().name.is_none(), "the typed request holds no copy of the object");
        let expected: Value = serde_json::from_str(POD_CREATE).unwrap();
        assert_eq!(review.object.as_ref(), expected.pointer("/request/object"));
        assert!(review.old_object.is_none(), "oldObject: null is no old object");
        // A repeated key counts with its last value, as when the whole body is read as one JSON value.
        let twice = POD_CREATE.replacen(
            r#""kind":"AdmissionReview","#,
            r#""kind":"Pod","kind":"AdmissionReview","#,
            1,
        );
        assert!(parse_review(twice.as_bytes()).is_ok());
        // A repeated object is ambiguous: rejected.
        let two_objects = POD_CREATE.replacen(r#""object":{"#, r#""object":{},"object":{"#, 1);
        assert!(parse_review(two_objects.as_bytes()).unwrap_err().to_string().contains("duplicate field"));
        // Invalid UTF-8 inside the request is not JSON.
        let mut bad = POD_CREATE.as_bytes().to_vec();
        let at = POD_CREATE.find("web").unwrap();
        bad[at] = 0xff;
        assert!(parse_review(&bad).is_err());
    }

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

    fn pinned_decision() -> Decision {
        Decision {
            allowed: true,
            findings: vec![finding("/spec/containers/0/image", "prod-signed", FindingResult::Pass)],
            pins: vec![Pin {
                pointer: "/spec/containers/0/image".into(),
                from: "reg.example/app:1.0".into(),
                to: "reg.example/app:1.0@sha256:ab".into(),
            }],
            ..Decision::default()
        }
    }

    #[test]
    fn patch_pins_and_creates_the_annotations_map() {
        let object = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "app", "image": "reg.example/app:1.0"}]}});
        let ops = pin_patch(&object, None, &pinned_decision());
        assert_eq!(ops.len(), 2);
        assert_eq!(
            ops[0],
            PatchOp {
                op: "replace",
                path: "/spec/containers/0/image".into(),
                value: json!("reg.example/app:1.0@sha256:ab")
            }
        );
        assert_eq!(ops[1].op, "add");
        assert_eq!(ops[1].path, "/metadata/annotations");
        let summary: Value =
            serde_json::from_str(ops[1].value[VERIFIED_ANNOTATION].as_str().unwrap()).unwrap();
        assert_eq!(summary["verified"][0]["image"], "reg.example/app:1.0@sha256:ab");
        assert_eq!(summary["verified"][0]["policies"][0], "prod-signed");
    }

    #[test]
    fn patch_adds_to_existing_annotations_with_an_escaped_key() {
        let object = json!({"metadata": {"annotations": {"a": "b"}}, "spec": {"containers": [{"image": "reg.example/app:1.0"}]}});
        let ops = pin_patch(&object, None, &pinned_decision());
        assert_eq!(ops[1].path, "/metadata/annotations/vouch.dev~1verified");
        assert_eq!(escape_pointer_token("a~b/c"), "a~0b~1c");
    }

    #[test]
    fn no_patch_when_nothing_to_pin_or_the_pin_is_stale() {
        let object = json!({"metadata": {}, "spec": {"containers": [{"image": "reg.example/other:2"}]}});
        assert!(pin_patch(&object, None, &pinned_decision()).is_empty(), "pointer no longer holds `from`");
        assert!(pin_patch(&object, None, &Decision::allow()).is_empty());
        let r = mutate_response("u", Some(&object), None, &Decision::allow());
        assert!(r.body["response"].get("patch").is_none());
        assert!(r.body["response"].get("patchType").is_none());
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

    #[test]
    fn a_summary_vouch_did_not_write_is_removed_or_set_back() {
        let forged =
            json!({"verified": [{"image": "reg.example/evil@sha256:ab", "policies": ["prod-signed"]}]})
                .to_string();
        let object = json!({
            "metadata": {"annotations": {VERIFIED_ANNOTATION: forged, "team": "a"}},
            "spec": {"containers": [{"image": "reg.example/evil@sha256:ab"}]}
        });
        // CREATE (no old object), nothing to pin: the forged summary goes.
        let ops = pin_patch(&object, None, &Decision::allow());
        assert_eq!(
            ops,
            vec![PatchOp {
                op: "remove",
                path: "/metadata/annotations/vouch.dev~1verified".into(),
                value: Value::Null
            }]
        );
        let wire = serde_json::to_value(&ops).unwrap();
        assert_eq!(wire, json!([{"op": "remove", "path": "/metadata/annotations/vouch.dev~1verified"}]));
        // UPDATE changing vouch's earlier summary: set back to it.
        let mut old = object.clone();
        old["metadata"]["annotations"][VERIFIED_ANNOTATION] = json!("{\"verified\":[]}");
        let ops = pin_patch(&object, Some(&old), &Decision::allow());
        assert_eq!((ops[0].op, &ops[0].value), ("replace", &json!("{\"verified\":[]}")));
        // UPDATE keeping it unchanged (written by vouch at CREATE): left alone.
        assert!(pin_patch(&object, Some(&object), &Decision::allow()).is_empty());
        // Something pinned: vouch's own summary replaces whatever was there.
        let mut tagged = object.clone();
        tagged["spec"]["containers"][0]["image"] = json!("reg.example/app:1.0");
        let ops = pin_patch(&tagged, None, &pinned_decision());
        assert_eq!((ops[1].op, ops[1].path.as_str()), ("add", "/metadata/annotations/vouch.dev~1verified"));
        assert!(ops[1].value.as_str().unwrap().contains("reg.example/app:1.0@sha256:ab"));
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

    #[test]
    fn summary_stays_within_its_bound() {
        let mut d = pinned_decision();
        let pin = d.pins[0].clone();
        d.pins =
            (0..500).map(|i| Pin { pointer: format!("/spec/containers/{i}/image"), ..pin.clone() }).collect();
        let refs: Vec<&Pin> = d.pins.iter().collect();
        let s = verified_summary(&d, &refs);
        assert!(s.len() <= MAX_SUMMARY_BYTES);
        let v: Value = serde_json::from_str(&s).unwrap();
        assert!(v["omitted"].as_u64().unwrap() > 0);
    }
}
