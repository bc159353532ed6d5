//! Reading a request body as an `admission.k8s.io/v1` AdmissionReview, exactly as kube-apiserver sends it:
//! bounded (one pass, serde_json's recursion limit, the object read once, pruned to what the engine reads
//! at once, the body kept for the rest: [`ObjectJson`]), and a body that is not one is named precisely
//! ([`ReviewError`], answered with HTTP 400). What the engine needs besides the review ([`ClusterFacts`]) is
//! added by [`Review::into_input`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::body::Bytes;
use kube::core::admission::{AdmissionRequest, Operation, META_KIND};
use kube::core::{DynamicResourceScope, ObjectMeta, Resource, TypeMeta};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use vouch_attest::registry::Credentials;
use vouch_policies::{AdmissionInput, ObjectJson};

use super::API_VERSION;

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

/// A review as read: the typed request, and the object and old object as the JSON sent.
#[derive(Debug)]
pub struct Review {
    /// The request (its `object` and `oldObject` are in the fields below instead).
    pub request: AdmissionRequest<ReadSeparately>,
    /// `request.object`: what is read of it at once (the whole of it from the body, when asked).
    pub object: Option<ObjectJson>,
    /// `request.oldObject`, the same way.
    pub old_object: Option<ObjectJson>,
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

/// Reads a [`Top`] from `body` (kept by the objects read, for their whole): seed and visitor in one.
struct TopVisitor<'b> {
    body: &'b Bytes,
}

impl<'de> DeserializeSeed<'de> for TopVisitor<'_> {
    type Value = Top;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Top, D::Error> {
        d.deserialize_any(self)
    }
}

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

impl<'de> Visitor<'de> for TopVisitor<'_> {
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
                "request" => request = Some(map.next_value_seed(RequestVisitor { body: self.body })?),
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

/// `request` as read in the same pass: its fields typed, the object and old object as [`ObjectJson`].
enum RequestRead {
    Null,
    NotAnObject,
    /// A field is missing or repeated.
    Invalid(String),
    Read(Box<Review>),
}

/// Reads a [`RequestRead`] from `body`: seed and visitor in one.
struct RequestVisitor<'b> {
    body: &'b Bytes,
}

impl<'de> DeserializeSeed<'de> for RequestVisitor<'_> {
    type Value = RequestRead;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RequestRead, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RequestVisitor<'_> {
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
        // The object and old object are read with their seed (`ObjectJson::seed`), the rest typed.
        let body = self.body;
        macro_rules! field {
            (@read $slot:ident, $name:literal, $read:expr) => {{
                if $slot.is_some() {
                    repeated.get_or_insert($name);
                    map.next_value::<IgnoredAny>()?;
                } else {
                    $slot = Some($read);
                }
            }};
            ($slot:ident, $name:literal) => {
                field!(@read $slot, $name, map.next_value()?)
            };
            // The object and the old object, with their seed; their whole is at `request.<name>`.
            ($slot:ident, $name:literal, object) => {
                field!(@read $slot, $name, {
                    map.next_value_seed(ObjectJson::seed(kind.as_ref(), body.clone(), &["request", $name]))?
                })
            };
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
                // Pruned to what the engine reads at once when the kind has a pod spec and comes first
                // (kube-apiserver writes `kind` before `object`); else read whole.
                "object" => field!(object, "object", object),
                "oldObject" => field!(old_object, "oldObject", object),
                "dryRun" => field!(dry_run, "dryRun"),
                "options" => field!(options, "options"),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let (object, old_object): (Option<ObjectJson>, Option<ObjectJson>) =
            (object.flatten(), old_object.flatten());
        for (name, o) in [("object", &object), ("oldObject", &old_object)] {
            if o.as_ref().is_some_and(|o| !o.read().is_object()) {
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
        let placeholder = |o: &Option<ObjectJson>| o.as_ref().map(|_| ReadSeparately::default());
        let request = AdmissionRequest {
            types: TypeMeta { api_version: API_VERSION.to_owned(), kind: META_KIND.to_owned() },
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
/// One pass: the request's fields go straight into their types, the object (and old object) is read as
/// [`ObjectJson::seed`] says (pruned for kinds with a pod spec, without `metadata.managedFields`; `body`
/// is kept for its whole), everything else is skipped without being built. A body that does not read is
/// read again whole ([`diagnose`]) to say precisely what is wrong with it.
pub fn parse_review(body: &Bytes) -> Result<Review, ReviewError> {
    // serde_json's recursion limit (128) turns hostile nesting into an error, not a stack overflow.
    let mut de = serde_json::Deserializer::from_slice(body);
    let read = TopVisitor { body }.deserialize(&mut de).and_then(|top| de.end().map(|()| top));
    let top = match read {
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
    if kind != META_KIND {
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
    if kind != META_KIND {
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
        vouch_policies::extract::value_at(self.object.as_ref()?.read(), pointer)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// [`parse_review`] of a body given as text.
    fn parse(body: &str) -> Result<Review, ReviewError> {
        parse_review(&Bytes::copy_from_slice(body.as_bytes()))
    }

    const POD_CREATE: &str = r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"705ab4f5-6393-11e8-b7cc-42010a800002","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},"name":"web","namespace":"prod","operation":"CREATE","userInfo":{"username":"admin","groups":["system:authenticated"]},"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"prod"},"spec":{"containers":[{"name":"app","image":"reg.example/app:1.0"}]}},"oldObject":null,"dryRun":false,"options":{"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions"}}}"#;

    #[test]
    fn reads_a_review_as_the_api_server_sends_it() {
        let review = parse(POD_CREATE).unwrap();
        assert_eq!(review.request.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(review.request.kind.kind, "Pod");
        assert!(review.needs_cluster_facts());
        assert_eq!(review.pod_spec().unwrap()["containers"][0]["name"], "app");
        let input = review.into_input(ClusterFacts::default());
        assert_eq!(input.namespace.as_deref(), Some("prod"));
        assert_eq!(input.resource, "pods");
        assert_eq!(input.object.unwrap().read()["spec"]["containers"][0]["image"], "reg.example/app:1.0");
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
            let err = parse(body).unwrap_err().to_string();
            assert!(err.contains(want), "{body}: {err}");
        }
        // Hostile nesting is an error, never a stack overflow: skipped parts are skipped without recursion,
        // the parts read as JSON values stop at serde_json's recursion limit.
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let deep = nest(10_000);
        assert_eq!(parse(&deep).unwrap_err(), ReviewError::NotAnObject);
        let skipped =
            POD_CREATE.replacen(r#""uid":"#, &format!(r#""unknownField":{},"uid":"#, nest(10_000)), 1);
        assert!(parse(&skipped).is_ok(), "an unknown field is skipped, however deep");
        let in_object = format!(
            r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"x","object":{{"a":{}}}}}}}"#,
            nest(10_000)
        );
        assert!(parse(&in_object).unwrap_err().to_string().contains("recursion limit"));
    }

    #[test]
    fn one_pass_reading_keeps_the_request_and_the_object_intact() {
        let review = parse(POD_CREATE).unwrap();
        assert_eq!(review.request.types.api_version, API_VERSION);
        assert_eq!(review.request.types.kind, "AdmissionReview");
        assert_eq!(review.request.operation, Operation::Create);
        assert_eq!(review.request.name, "web");
        assert_eq!(review.request.user_info.username.as_deref(), Some("admin"));
        let placeholder = review.request.object.as_ref().unwrap();
        assert!(placeholder.meta().name.is_none(), "the typed request holds no copy of the object");
        let expected: Value = serde_json::from_str(POD_CREATE).unwrap();
        let object = review.object.as_ref().unwrap();
        assert_eq!(Some(object.whole().unwrap()), expected.pointer("/request/object"));
        assert_eq!(object.read(), object.whole().unwrap(), "a Pod with nothing more than is read at once");
        assert!(review.old_object.is_none(), "oldObject: null is no old object");
        // A repeated key counts with its last value, as when the whole body is read as one JSON value.
        let twice = POD_CREATE.replacen(
            r#""kind":"AdmissionReview","#,
            r#""kind":"Pod","kind":"AdmissionReview","#,
            1,
        );
        assert!(parse(&twice).is_ok());
        // A repeated object is ambiguous: rejected.
        let two_objects = POD_CREATE.replacen(r#""object":{"#, r#""object":{},"object":{"#, 1);
        assert!(parse(&two_objects).unwrap_err().to_string().contains("duplicate field"));
        // Invalid UTF-8 inside the request is not JSON.
        let mut bad = POD_CREATE.as_bytes().to_vec();
        let at = POD_CREATE.find("web").unwrap();
        bad[at] = 0xff;
        assert!(parse_review(&Bytes::from(bad)).is_err());
    }

    #[test]
    fn the_object_is_read_pruned_in_the_one_pass_and_whole_from_the_body_when_asked() {
        let sized = POD_CREATE.replacen(
            r#""image":"reg.example/app:1.0"}]}}"#,
            r#""image":"reg.example/app:1.0","resources":{"limits":{"cpu":"1"}}}],"nodeName":"n1"}}"#,
            1,
        );
        assert_ne!(sized, POD_CREATE, "the fixture changed");
        let review = parse(&sized).unwrap_or_else(|e| panic!("{e}: {sized}"));
        let object = review.object.as_ref().unwrap();
        assert!(object.read().pointer("/spec/containers/0/resources").is_none(), "pruned at once");
        assert!(object.read().pointer("/spec/nodeName").is_none());
        let expected: Value = serde_json::from_str(&sized).unwrap();
        assert_eq!(
            Some(object.whole().unwrap()),
            expected.pointer("/request/object"),
            "whole, from the body"
        );
        // A request whose kind comes after the object is read whole at once (nothing to prune by yet).
        let kind_last =
            sized.replacen(r#""kind":{"group":"","version":"v1","kind":"Pod"},"#, "", 1).replacen(
                r#""dryRun":false"#,
                r#""dryRun":false,"kind":{"group":"","version":"v1","kind":"Pod"}"#,
                1,
            );
        let review = parse(&kind_last).unwrap();
        let object = review.object.as_ref().unwrap();
        assert_eq!(object.read().pointer("/spec/containers/0/resources/limits/cpu"), Some(&Value::from("1")));
        // A repeated top-level request counts with its last value, for the whole object too.
        let twice = format!(r#"{{"request":{{"uid":"first"}},{}"#, &sized[1..]);
        let review = parse(&twice).unwrap();
        assert_eq!(review.request.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(review.object.unwrap().whole().unwrap()["spec"]["nodeName"], "n1");
    }

    #[test]
    fn managed_fields_are_skipped_and_everything_else_kept_as_sent() {
        let managed = r#"[{"manager":"kubectl","operation":"Update","fieldsV1":{"f:spec":{}}}]"#;
        let with = POD_CREATE
            .replacen(
                r#""metadata":{"name":"web","namespace":"prod"}"#,
                &format!(r#""metadata":{{"name":"web","managedFields":{managed},"namespace":"prod","labels":{{"a":"b"}},"labels":{{"a":"c"}}}}"#),
                1,
            )
            .replacen(
                r#""oldObject":null"#,
                &format!(
                    r#""oldObject":{{"metadata":{{"managedFields":{managed},"n":[1,-2,3.5,true,null,"s"]}},"spec":{{"managedFields":1}}}}"#
                ),
                1,
            );
        assert!(with.contains("managedFields"), "the fixture changed");
        let review = parse(&with).unwrap();
        let object = review.object.unwrap();
        let object = object.whole().unwrap();
        let mut expected: Value = serde_json::from_str(&with).unwrap();
        let metadata = expected.pointer_mut("/request/object/metadata").unwrap().as_object_mut().unwrap();
        assert!(metadata.remove("managedFields").is_some());
        assert_eq!(Some(object), expected.pointer("/request/object"));
        assert_eq!(object["metadata"]["labels"]["a"], "c", "a repeated key counts with its last value");
        let old = review.old_object.unwrap();
        let old = old.whole().unwrap();
        assert_eq!(old["metadata"], serde_json::json!({"n": [1, -2, 3.5, true, null, "s"]}));
        assert_eq!(old["spec"]["managedFields"], 1, "only metadata.managedFields is skipped");
        // A metadata that is not an object is kept as sent (the engine names it).
        let odd = POD_CREATE.replacen(
            r#""metadata":{"name":"web","namespace":"prod"}"#,
            r#""metadata":[1,{"x":2}]"#,
            1,
        );
        let review = parse(&odd).unwrap();
        assert_eq!(review.object.unwrap().read()["metadata"], serde_json::json!([1, {"x": 2}]));
        // An object that is not an object is still refused.
        let scalar = POD_CREATE.replacen(r#""oldObject":null"#, r#""oldObject":"x""#, 1);
        assert!(parse(&scalar).unwrap_err().to_string().contains("oldObject is not a JSON object"));
    }
}
