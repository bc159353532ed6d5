//! OpenReports (`openreports.io/v1alpha1`): one `Report` named [`REPORT_NAME`] per namespace (a
//! `ClusterReport` for cluster-scoped objects), holding the latest result per resource, artifact, policy and
//! requirement, capped so a busy namespace cannot grow it without bound.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use vouch_policies::crd::Mode;
use vouch_policies::{Finding, FindingResult};

use super::status::ObjectRef;

/// API group of OpenReports.
pub const REPORT_GROUP: &str = "openreports.io";
/// API version of OpenReports.
pub const REPORT_VERSION: &str = "v1alpha1";
/// Name of vouch's report in each namespace (and of its ClusterReport).
pub const REPORT_NAME: &str = "vouch";
/// `source` of every result.
pub const SOURCE: &str = "vouch";
/// Longest message kept per result.
const MAX_MESSAGE_CHARS: usize = 1024;

/// Identity of one result: later results for the same key replace earlier ones.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct EntryKey {
    resource: String,
    artifact: String,
    policy: String,
    rule: String,
}

#[derive(Debug, Default)]
struct NamespaceBook {
    entries: HashMap<EntryKey, (u64, ReportResult)>,
    // Insertion sequence -> key, to evict the oldest when over the cap.
    order: BTreeMap<u64, EntryKey>,
}

/// Results per namespace (`None`: cluster-scoped objects), bounded per namespace.
#[derive(Debug)]
pub struct ReportBook {
    max_entries: usize,
    seq: u64,
    namespaces: HashMap<Option<String>, NamespaceBook>,
}

impl ReportBook {
    /// An empty book keeping at most `max_entries` results per report.
    pub fn new(max_entries: usize) -> Self {
        Self { max_entries: max_entries.max(1), seq: 0, namespaces: HashMap::new() }
    }

    /// Record the findings for `object` at `timestamp` (seconds since the epoch).
    pub fn record(&mut self, object: &ObjectRef, findings: &[Finding], timestamp: i64) {
        let book = self.namespaces.entry(object.namespace.clone()).or_default();
        for finding in findings {
            let key = EntryKey {
                resource: object.key(),
                artifact: finding.artifact.pointer.clone(),
                policy: policy_name(finding),
                rule: finding.requirement.clone(),
            };
            self.seq += 1;
            let result = ReportResult::new(object, finding, timestamp);
            if let Some((old_seq, _)) = book.entries.insert(key.clone(), (self.seq, result)) {
                book.order.remove(&old_seq);
            }
            book.order.insert(self.seq, key);
            while book.entries.len() > self.max_entries {
                let Some((_, oldest)) = book.order.pop_first() else { break };
                book.entries.remove(&oldest);
            }
        }
    }

    /// The report for `namespace` as it should be applied, or `None` when nothing was recorded there.
    pub fn report(&self, namespace: Option<&str>) -> Option<serde_json::Value> {
        let book = self.namespaces.get(&namespace.map(str::to_owned))?;
        // Oldest first, so the list is stable between flushes except for what changed.
        let results: Vec<&ReportResult> =
            book.order.values().filter_map(|k| book.entries.get(k)).map(|(_, r)| r).collect();
        let mut summary = Summary::default();
        for r in &results {
            summary.add(r.result);
        }
        let mut metadata = serde_json::json!({
            "name": REPORT_NAME,
            "labels": {"app.kubernetes.io/managed-by": "vouch"},
        });
        if let (Some(ns), Some(map)) = (namespace, metadata.as_object_mut()) {
            map.insert("namespace".into(), ns.into());
        }
        Some(serde_json::json!({
            "apiVersion": format!("{REPORT_GROUP}/{REPORT_VERSION}"),
            "kind": if namespace.is_some() { "Report" } else { "ClusterReport" },
            "metadata": metadata,
            "source": SOURCE,
            "summary": summary,
            "results": results,
        }))
    }

    /// Number of results held for `namespace`.
    pub fn len(&self, namespace: Option<&str>) -> usize {
        self.namespaces.get(&namespace.map(str::to_owned)).map_or(0, |b| b.entries.len())
    }
}

/// `name` for cluster policies, `namespace/name` for namespaced ones (the two may share a name).
fn policy_name(f: &Finding) -> String {
    match &f.policy_namespace {
        Some(ns) => format!("{ns}/{}", f.policy),
        None => f.policy.clone(),
    }
}

/// OpenReports result values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportOutcome {
    /// Requirement met.
    Pass,
    /// Not met, in enforce or audit mode.
    Fail,
    /// Not met, in warn mode.
    Warn,
    /// Could not be verified.
    Error,
    /// Not evaluated.
    Skip,
}

impl ReportOutcome {
    /// The outcome of a finding: a failure in warn mode is a warning.
    pub fn of(f: &Finding) -> Self {
        match (f.result, f.mode) {
            (FindingResult::Pass, _) => Self::Pass,
            (FindingResult::Fail, Mode::Warn) => Self::Warn,
            (FindingResult::Fail, _) => Self::Fail,
            (FindingResult::Error, _) => Self::Error,
        }
    }
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    pass: u64,
    fail: u64,
    warn: u64,
    error: u64,
    skip: u64,
}

impl Summary {
    fn add(&mut self, r: ReportOutcome) {
        let slot = match r {
            ReportOutcome::Pass => &mut self.pass,
            ReportOutcome::Fail => &mut self.fail,
            ReportOutcome::Warn => &mut self.warn,
            ReportOutcome::Error => &mut self.error,
            ReportOutcome::Skip => &mut self.skip,
        };
        *slot += 1;
    }
}

#[derive(Debug, Clone, Serialize)]
struct Timestamp {
    seconds: i64,
    nanos: i32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceRef {
    api_version: String,
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    uid: Option<String>,
}

/// One entry of `results`.
#[derive(Debug, Clone, Serialize)]
struct ReportResult {
    source: &'static str,
    policy: String,
    rule: String,
    result: ReportOutcome,
    severity: &'static str,
    scored: bool,
    category: &'static str,
    timestamp: Timestamp,
    message: String,
    resources: Vec<ResourceRef>,
    properties: BTreeMap<String, String>,
}

impl ReportResult {
    fn new(object: &ObjectRef, f: &Finding, timestamp: i64) -> Self {
        let mut properties = BTreeMap::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                properties.insert(k.to_owned(), v);
            }
        };
        put("digest", f.digest.as_ref().map(ToString::to_string));
        put("signer", f.signer.clone());
        put("rekorLogIndex", f.rekor_log_index.map(|i| i.to_string()));
        put("sbomDigest", f.sbom_digest.as_ref().map(ToString::to_string));
        put("reference", Some(f.reference.clone()));
        put("artifact", Some(f.artifact.to_string()));
        put("mode", Some(f.mode.to_string()));
        Self {
            source: SOURCE,
            policy: policy_name(f),
            rule: f.requirement.clone(),
            result: ReportOutcome::of(f),
            severity: severity(f.mode),
            scored: true,
            category: "Supply Chain",
            timestamp: Timestamp { seconds: timestamp, nanos: 0 },
            message: truncate(&f.reason, MAX_MESSAGE_CHARS),
            resources: vec![ResourceRef {
                api_version: object.api_version.clone(),
                kind: object.kind.clone(),
                namespace: object.namespace.clone(),
                name: object.name.clone(),
                uid: object.uid.clone(),
            }],
            properties,
        }
    }
}

/// What a failure of the policy would cost: enforce blocks, warn warns, audit only records.
fn severity(mode: Mode) -> &'static str {
    match mode {
        Mode::Enforce => "high",
        Mode::Warn => "medium",
        Mode::Audit => "low",
    }
}

/// At most `max` characters, on a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", s.get(..i).unwrap_or_default()),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_policies::{ArtifactKind, ArtifactLocation};

    fn finding(mode: Mode, result: FindingResult) -> Finding {
        Finding {
            policy: "p".into(),
            policy_namespace: Some("team".into()),
            mode,
            requirement: "sbom".into(),
            artifact: ArtifactLocation {
                kind: ArtifactKind::Container,
                name: "app".into(),
                pointer: "/spec/containers/0/image".into(),
            },
            reference: "reg.example/app:1".into(),
            digest: None,
            result,
            reason: "r".into(),
            signer: None,
            rekor_log_index: None,
            sbom_digest: None,
        }
    }

    fn object(namespace: Option<&str>) -> ObjectRef {
        ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: namespace.map(str::to_owned),
            name: "d".into(),
            uid: None,
        }
    }

    #[test]
    fn outcome_follows_mode_and_result() {
        assert_eq!(ReportOutcome::of(&finding(Mode::Warn, FindingResult::Fail)), ReportOutcome::Warn);
        assert_eq!(ReportOutcome::of(&finding(Mode::Audit, FindingResult::Fail)), ReportOutcome::Fail);
        assert_eq!(ReportOutcome::of(&finding(Mode::Enforce, FindingResult::Error)), ReportOutcome::Error);
        assert_eq!(ReportOutcome::of(&finding(Mode::Warn, FindingResult::Pass)), ReportOutcome::Pass);
    }

    #[test]
    fn namespaced_policy_names_carry_their_namespace_and_severity_follows_mode() {
        let mut book = ReportBook::new(10);
        book.record(&object(Some("team")), &[finding(Mode::Warn, FindingResult::Fail)], 7);
        let report = book.report(Some("team")).unwrap();
        let r = &report["results"][0];
        assert_eq!(r["policy"], "team/p");
        assert_eq!(r["result"], "warn");
        assert_eq!(r["severity"], "medium");
        assert_eq!(r["timestamp"], serde_json::json!({"seconds": 7, "nanos": 0}));
        assert!(r["resources"][0].get("uid").is_none(), "no uid before the object has one");
        assert_eq!(report["summary"]["warn"], 1);
        assert!(book.report(Some("other")).is_none());
    }

    #[test]
    fn cluster_scoped_objects_go_to_a_cluster_report() {
        let mut book = ReportBook::new(10);
        book.record(&object(None), &[finding(Mode::Enforce, FindingResult::Pass)], 1);
        let report = book.report(None).unwrap();
        assert_eq!(report["kind"], "ClusterReport");
        assert!(report["metadata"].get("namespace").is_none());
        assert_eq!(book.len(None), 1);
    }

    #[test]
    fn truncate_respects_characters() {
        assert_eq!(truncate("äöü", 2), "äö…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
