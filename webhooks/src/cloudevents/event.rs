//! The events: CloudEvents 1.0 attributes, their JSON data, and the binary-mode HTTP request.
//!
//! | type | when | data |
//! | --- | --- | --- |
//! | `dev.vouch.admission.denied` | the validating webhook denied a review | the review's object, decision and the findings that did not pass |
//! | `dev.vouch.admission.warned` | admitted with warnings | same |
//! | `dev.vouch.admission.audited` | admitted, with audit findings only | same |
//! | `dev.vouch.scan.drift` | the scanner finds a Pod that passed before failing now | the workload's scan record |
//!
//! `subject` is the object's API path (`/apis/apps/v1/namespaces/shop/deployments/web`), `id` unique per
//! process and source, `time` when vouch decided.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use vouch_policies::{AdmissionInput, Decision, FindingResult};

use crate::scan::WorkloadRecord;
use crate::server::admission::operation_name;

/// An admission review was denied.
pub const DENIED: &str = "dev.vouch.admission.denied";
/// An admission review was admitted with warnings.
pub const WARNED: &str = "dev.vouch.admission.warned";
/// An admission review was admitted with audit findings (and no warnings).
pub const AUDITED: &str = "dev.vouch.admission.audited";
/// A running workload that passed before fails now.
pub const DRIFT: &str = "dev.vouch.scan.drift";

/// One event, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    /// `id`: unique for this source.
    pub id: String,
    /// `type`: [`DENIED`], [`WARNED`], [`AUDITED`] or [`DRIFT`].
    pub event_type: &'static str,
    /// `source`: which vouch sent it.
    pub source: String,
    /// `subject`: the object's API path.
    pub subject: String,
    /// `time`.
    pub time: DateTime<Utc>,
    /// The data, sent as `application/json`.
    pub data: Value,
}

/// A new id: the process's start time and a counter, so ids never repeat for one source.
fn next_id() -> String {
    static START: OnceLock<i64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let start = START.get_or_init(|| Utc::now().timestamp_nanos_opt().unwrap_or_default());
    format!("{start:x}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The API path of an object: `/api/v1/namespaces/NS/pods/NAME`, `/apis/GROUP/VERSION/RESOURCE/NAME`.
pub fn api_path(group: &str, version: &str, resource: &str, namespace: Option<&str>, name: &str) -> String {
    let mut path =
        if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
    if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
        path.push_str(&format!("/namespaces/{ns}"));
    }
    path.push_str(&format!("/{resource}/{name}"));
    path
}

impl CloudEvent {
    /// The event for a decision of the validating webhook, if it is one to tell: denied, warned, or audited.
    pub fn admission(source: &str, input: &AdmissionInput, decision: &Decision) -> Option<Self> {
        let event_type = if !decision.allowed {
            DENIED
        } else if !decision.warnings.is_empty() {
            WARNED
        } else if !decision.audit.is_empty() {
            AUDITED
        } else {
            return None;
        };
        let findings: Vec<_> = decision.findings.iter().filter(|f| f.result != FindingResult::Pass).collect();
        let data = json!({
            "uid": input.uid,
            "operation": operation_name(&input.operation),
            "kind": {"group": input.kind.group, "version": input.kind.version, "kind": input.kind.kind},
            "namespace": input.namespace,
            "name": input.name,
            "allowed": decision.allowed,
            "message": decision.message,
            "warnings": decision.warnings,
            "findings": findings,
        });
        Some(Self {
            id: next_id(),
            event_type,
            source: source.to_owned(),
            subject: api_path(
                &input.kind.group,
                &input.kind.version,
                &input.resource,
                input.namespace.as_deref(),
                &input.name,
            ),
            time: Utc::now(),
            data,
        })
    }

    /// The event for a Pod the scanner found drifted (passed before, non-compliant now).
    pub fn drift(source: &str, namespace: &str, pod: &str, record: &WorkloadRecord) -> Self {
        Self {
            id: next_id(),
            event_type: DRIFT,
            source: source.to_owned(),
            subject: api_path("", "v1", "pods", Some(namespace), pod),
            time: Utc::now(),
            data: serde_json::to_value(record).unwrap_or(Value::Null),
        }
    }

    /// POST it in binary content mode: attributes as `ce-` headers, the data as the JSON body. `Err` names
    /// why it was not delivered (`sink_timeout`, `sink_error`).
    pub(super) async fn post(&self, http: &reqwest::Client, sink: reqwest::Url) -> Result<(), &'static str> {
        let body = serde_json::to_vec(&self.data).map_err(|_| "sink_error")?;
        let response = http
            .post(sink)
            .header("ce-specversion", "1.0")
            .header("ce-id", &self.id)
            .header("ce-source", &self.source)
            .header("ce-type", self.event_type)
            .header("ce-subject", &self.subject)
            .header("ce-time", self.time.to_rfc3339_opts(SecondsFormat::Millis, true))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| if e.is_timeout() { "sink_timeout" } else { "sink_error" })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err("sink_error")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_paths_follow_the_kubernetes_api() {
        assert_eq!(api_path("", "v1", "pods", Some("shop"), "web"), "/api/v1/namespaces/shop/pods/web");
        assert_eq!(
            api_path("apps", "v1", "deployments", Some("shop"), "web"),
            "/apis/apps/v1/namespaces/shop/deployments/web"
        );
        assert_eq!(api_path("example.com", "v1", "widgets", None, "w"), "/apis/example.com/v1/widgets/w");
    }

    #[test]
    fn ids_do_not_repeat() {
        let (a, b) = (next_id(), next_id());
        assert_ne!(a, b);
    }

    #[test]
    fn a_plain_allow_is_not_an_event() {
        let input = AdmissionInput::new(
            kube::core::admission::Operation::Create,
            kube::core::GroupVersionKind::gvk("", "v1", "Pod"),
            Some("shop"),
            "web",
        );
        assert!(CloudEvent::admission("/vouch/a", &input, &Decision::allow()).is_none());
        let denied = Decision { allowed: false, message: Some("no".into()), ..Decision::default() };
        let e = CloudEvent::admission("/vouch/a", &input, &denied).unwrap();
        assert_eq!(e.event_type, DENIED);
        assert_eq!(e.data["message"], "no");
        let warned = Decision { allowed: true, warnings: vec!["w".into()], ..Decision::default() };
        assert_eq!(CloudEvent::admission("/vouch/a", &input, &warned).unwrap().event_type, WARNED);
    }
}
