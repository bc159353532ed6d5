//! OpenReports (`openreports.io/v1alpha1`): one `Report` named [`REPORT_NAME`] per namespace (a
//! `ClusterReport` for cluster-scoped objects), holding the latest result per resource, artifact, policy and
//! requirement, capped so a busy namespace cannot grow it without bound.
//!
//! Each flush reads the stored report, merges the new results in and applies the whole report guarded by
//! the resourceVersion it read: results written by another replica, or before a restart, are kept.

use std::collections::{BTreeMap, HashMap};

use kube::api::{ApiResource, DynamicObject, GroupVersionKind as KubeGvk, Patch, PatchParams};
use kube::{Api, Client};
use serde::Serialize;
use vouch_policies::crd::Mode;
use vouch_policies::{Finding, FindingResult};

use super::error::KubeError;
use super::event::ObjectRef;

/// API group of OpenReports.
pub const REPORT_GROUP: &str = "openreports.io";
/// API version of OpenReports.
pub const REPORT_VERSION: &str = "v1alpha1";
/// Name of vouch's report in each namespace (and of its ClusterReport).
pub const REPORT_NAME: &str = "vouch";
/// Field manager of the report writes (server-side apply).
pub const FIELD_MANAGER: &str = "vouch";
/// `source` of every result.
pub const SOURCE: &str = "vouch";
/// Which of vouch's reports: admission results ([`ADMISSION_REPORT`]) or the scanner's ([`SCAN_REPORT`]),
/// side by side in each namespace under their own names and sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportKind {
    /// `metadata.name` of the report in each namespace (and of the ClusterReport).
    pub name: &'static str,
    /// `source` of the report and of each result.
    pub source: &'static str,
}

/// The admission webhook's reports: the latest result per resource, merged across replicas and restarts.
pub const ADMISSION_REPORT: ReportKind = ReportKind { name: REPORT_NAME, source: SOURCE };
/// The scanner's reports: what the last scan found running, written whole (stale entries go).
pub const SCAN_REPORT: ReportKind = ReportKind { name: "vouch-scan", source: "vouch-scan" };

/// Longest message kept per result.
const MAX_MESSAGE_CHARS: usize = 1024;

/// Identity of one result: later results for the same key replace earlier ones. Read back from stored
/// results too, so it uses only what a result carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct EntryKey {
    resource: String,
    artifact: String,
    policy: String,
    rule: String,
}

impl EntryKey {
    /// The key of a result as stored (`None` for entries not shaped like ours).
    fn of(result: &serde_json::Value) -> Option<Self> {
        let text = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_str).map(str::to_owned);
        let resource = result.get("resources")?.get(0)?;
        let resource = match text(resource.get("uid")) {
            Some(uid) => uid,
            None => format!(
                "{}/{}/{}",
                text(resource.get("kind"))?,
                text(resource.get("namespace")).unwrap_or_default(),
                text(resource.get("name"))?
            ),
        };
        Some(Self {
            resource,
            artifact: text(result.pointer("/properties/artifact")).unwrap_or_default(),
            policy: text(result.get("policy"))?,
            rule: text(result.get("rule"))?,
        })
    }
}

/// Results recorded since the last flush, per namespace (`None`: cluster-scoped objects), bounded.
#[derive(Debug)]
pub struct ReportBook {
    kind: ReportKind,
    max_entries: usize,
    pending: HashMap<Option<String>, Vec<serde_json::Value>>,
}

impl ReportBook {
    /// An empty book holding at most `max_entries` pending results per namespace (the oldest go first).
    pub fn new(max_entries: usize) -> Self {
        Self::of_kind(ADMISSION_REPORT, max_entries)
    }

    /// An empty book for the reports of `kind`.
    pub fn of_kind(kind: ReportKind, max_entries: usize) -> Self {
        Self { kind, max_entries: max_entries.max(1), pending: HashMap::new() }
    }

    /// Record the findings for `object` at `timestamp` (seconds since the epoch).
    pub fn record(&mut self, object: &ObjectRef, findings: &[Finding], timestamp: i64) {
        let pending = self.pending.entry(object.namespace.clone()).or_default();
        for finding in findings {
            if let Ok(value) = serde_json::to_value(ReportResult::new(self.kind, object, finding, timestamp))
            {
                pending.push(value);
            }
        }
        if pending.len() > self.max_entries {
            let excess = pending.len() - self.max_entries;
            pending.drain(..excess);
        }
    }

    /// Namespaces with pending results.
    pub fn namespaces(&self) -> Vec<Option<String>> {
        self.pending.iter().filter(|(_, v)| !v.is_empty()).map(|(k, _)| k.clone()).collect()
    }

    /// Whether anything waits to be written.
    pub fn has_pending(&self) -> bool {
        self.pending.values().any(|v| !v.is_empty())
    }

    /// Take the pending results of `namespace`.
    pub fn take(&mut self, namespace: &Option<String>) -> Vec<serde_json::Value> {
        self.pending.remove(namespace).unwrap_or_default()
    }

    /// Put results that could not be written back in front of newer ones (still bounded).
    pub fn restore(&mut self, namespace: Option<String>, mut results: Vec<serde_json::Value>) {
        let pending = self.pending.entry(namespace).or_default();
        results.append(pending);
        if results.len() > self.max_entries {
            let excess = results.len() - self.max_entries;
            results.drain(..excess);
        }
        *pending = results;
    }

    /// The most results a report keeps.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }
}

/// `stored` (the report as read) updated with `new`: the latest result per resource, artifact, policy and
/// requirement, oldest first, at most `max` (the oldest dropped).
pub fn merge_results(
    stored: &[serde_json::Value],
    new: &[serde_json::Value],
    max: usize,
) -> Vec<serde_json::Value> {
    // (timestamp, sequence) orders results; a later result (new ones come after stored ones) replaces an
    // earlier one with its key.
    let mut latest: HashMap<EntryKey, usize> = HashMap::new();
    let mut items: Vec<(i64, usize, &serde_json::Value, Option<EntryKey>)> = Vec::new();
    for (seq, result) in stored.iter().chain(new).enumerate() {
        let ts = result.pointer("/timestamp/seconds").and_then(serde_json::Value::as_i64).unwrap_or(0);
        let key = EntryKey::of(result);
        if let Some(k) = &key {
            latest.insert(k.clone(), seq);
        }
        items.push((ts, seq, result, key));
    }
    items.retain(|(_, seq, _, key)| key.as_ref().is_none_or(|k| latest.get(k) == Some(seq)));
    items.sort_by_key(|(t, s, _, _)| (*t, *s));
    let skip = items.len().saturating_sub(max.max(1));
    items.into_iter().skip(skip).map(|(_, _, r, _)| r.clone()).collect()
}

/// The whole report object for `namespace` with `results`; `resource_version` makes the write conditional
/// on the report not having changed since it was read.
pub fn report_object(
    namespace: Option<&str>,
    results: &[serde_json::Value],
    resource_version: Option<&str>,
) -> serde_json::Value {
    report_object_of(ADMISSION_REPORT, namespace, results, resource_version)
}

/// [`report_object`] for the reports of `kind`.
pub fn report_object_of(
    kind: ReportKind,
    namespace: Option<&str>,
    results: &[serde_json::Value],
    resource_version: Option<&str>,
) -> serde_json::Value {
    let mut summary = Summary::default();
    for r in results {
        summary.add_text(r.get("result").and_then(serde_json::Value::as_str).unwrap_or_default());
    }
    let mut metadata = serde_json::json!({
        "name": kind.name,
        "labels": {"app.kubernetes.io/managed-by": "vouch"},
    });
    if let Some(map) = metadata.as_object_mut() {
        if let Some(ns) = namespace {
            map.insert("namespace".into(), ns.into());
        }
        if let Some(rv) = resource_version {
            map.insert("resourceVersion".into(), rv.into());
        }
    }
    serde_json::json!({
        "apiVersion": format!("{REPORT_GROUP}/{REPORT_VERSION}"),
        "kind": if namespace.is_some() { "Report" } else { "ClusterReport" },
        "metadata": metadata,
        "source": kind.source,
        "summary": summary,
        "results": results,
    })
}

fn report_resource(namespaced: bool) -> ApiResource {
    let kind = if namespaced { "Report" } else { "ClusterReport" };
    let plural = if namespaced { "reports" } else { "clusterreports" };
    ApiResource::from_gvk_with_plural(&KubeGvk::gvk(REPORT_GROUP, REPORT_VERSION, kind), plural)
}

/// Attempts at a report write when another writer got in between (409 on the resourceVersion).
const REPORT_CONFLICT_ATTEMPTS: u32 = 3;

/// Read the stored report, merge `new` in, and server-side apply the whole of it guarded by the
/// resourceVersion read (vouch owns the report; force takes over fields another manager may have set).
pub(crate) async fn write_report(
    client: &Client,
    namespace: Option<&str>,
    new: &[serde_json::Value],
    max_entries: usize,
) -> Result<(), KubeError> {
    write_report_of(ADMISSION_REPORT, client, namespace, new, max_entries, true).await
}

/// [`write_report`] for the reports of `kind`; `merge: false` replaces the stored results with `new`
/// (still guarded by the resourceVersion read).
pub(crate) async fn write_report_of(
    kind: ReportKind,
    client: &Client,
    namespace: Option<&str>,
    new: &[serde_json::Value],
    max_entries: usize,
    merge: bool,
) -> Result<(), KubeError> {
    let resource = report_resource(namespace.is_some());
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let what = || format!("report {}/{}", namespace.unwrap_or(""), kind.name);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut attempt = 1;
    loop {
        let stored = api
            .get_opt(kind.name)
            .await
            .map_err(|source| KubeError::Write { what: what(), source: Box::new(source) })?;
        let (results, version) = match &stored {
            Some(report) => (
                report.data.get("results").and_then(|r| r.as_array()).cloned().unwrap_or_default(),
                report.metadata.resource_version.clone(),
            ),
            None => (Vec::new(), None),
        };
        let stored = if merge { results.as_slice() } else { &[] };
        let merged = merge_results(stored, new, max_entries);
        let report = report_object_of(kind, namespace, &merged, version.as_deref());
        match api.patch(kind.name, &params, &Patch::Apply(&report)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < REPORT_CONFLICT_ATTEMPTS => attempt += 1,
            Err(source) => return Err(KubeError::Write { what: what(), source: Box::new(source) }),
        }
    }
}

/// Whether a failed report write should be tried again with the next flush (not for missing permissions,
/// a missing CRD, or an invalid report).
pub(crate) fn worth_retrying(e: &KubeError) -> bool {
    match e {
        KubeError::Write { source, .. } | KubeError::Read { source, .. } => match source.as_ref() {
            kube::Error::Api(s) => s.code == 409 || s.code == 429 || s.code >= 500,
            kube::Error::SerdeError(_) | kube::Error::BuildRequest(_) => false,
            _ => true,
        },
        KubeError::Timeout { .. } => true,
        KubeError::NotFound { .. } | KubeError::MalformedPodSpec { .. } => false,
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
    fn add_text(&mut self, result: &str) {
        let slot = match result {
            "pass" => &mut self.pass,
            "fail" => &mut self.fail,
            "warn" => &mut self.warn,
            "error" => &mut self.error,
            "skip" => &mut self.skip,
            _ => return,
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
    fn new(kind: ReportKind, object: &ObjectRef, f: &Finding, timestamp: i64) -> Self {
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
            source: kind.source,
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
            fingerprint: None,
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
        assert_eq!(book.namespaces(), vec![Some("team".to_owned())]);
        let results = book.take(&Some("team".to_owned()));
        assert!(!book.has_pending());
        let report = report_object(Some("team"), &results, Some("5"));
        assert_eq!(report["metadata"]["resourceVersion"], "5");
        let r = &report["results"][0];
        assert_eq!(r["policy"], "team/p");
        assert_eq!(r["result"], "warn");
        assert_eq!(r["severity"], "medium");
        assert_eq!(r["timestamp"], serde_json::json!({"seconds": 7, "nanos": 0}));
        assert!(r["resources"][0].get("uid").is_none(), "no uid before the object has one");
        assert_eq!(report["summary"]["warn"], 1);
        assert!(book.take(&Some("other".to_owned())).is_empty());
    }

    #[test]
    fn cluster_scoped_objects_go_to_a_cluster_report() {
        let mut book = ReportBook::new(10);
        book.record(&object(None), &[finding(Mode::Enforce, FindingResult::Pass)], 1);
        let report = report_object(None, &book.take(&None), None);
        assert_eq!(report["kind"], "ClusterReport");
        assert!(report["metadata"].get("namespace").is_none());
        assert!(report["metadata"].get("resourceVersion").is_none());
        assert_eq!(report["results"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn merge_keeps_the_latest_per_key_and_the_newest_under_the_cap() {
        let mut book = ReportBook::new(10);
        let ns = Some("team".to_owned());
        let mut other = object(Some("team"));
        other.name = "other".into();
        book.record(&other, &[finding(Mode::Enforce, FindingResult::Pass)], 1);
        book.record(&object(Some("team")), &[finding(Mode::Enforce, FindingResult::Pass)], 2);
        let stored = book.take(&ns);
        book.record(&object(Some("team")), &[finding(Mode::Enforce, FindingResult::Fail)], 3);
        let merged = merge_results(&stored, &book.take(&ns), 10);
        assert_eq!(merged.len(), 2, "the new result replaced the stored one for the same key");
        assert_eq!(merged[0]["resources"][0]["name"], "other");
        assert_eq!(merged[1]["result"], "fail");
        let capped = merge_results(&stored, &[], 1);
        assert_eq!(capped.len(), 1);
        assert_eq!(capped[0]["resources"][0]["name"], "d", "the newest is kept");
        // Entries not shaped like ours are kept as they are.
        let foreign = serde_json::json!({"policy": "x"});
        assert_eq!(merge_results(&[foreign.clone(), foreign], &[], 10).len(), 2);
    }

    #[test]
    fn pending_results_are_bounded_and_restored_in_front() {
        let mut book = ReportBook::new(2);
        let ns = Some("team".to_owned());
        for ts in 0..5 {
            book.record(&object(Some("team")), &[finding(Mode::Enforce, FindingResult::Pass)], ts);
        }
        let taken = book.take(&ns);
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[0]["timestamp"]["seconds"], 3);
        book.record(&object(Some("team")), &[finding(Mode::Enforce, FindingResult::Pass)], 9);
        book.restore(ns.clone(), taken);
        let again = book.take(&ns);
        assert_eq!(again.len(), 2);
        assert_eq!(again[1]["timestamp"]["seconds"], 9, "newer results survive a restore");
    }

    #[test]
    fn truncate_respects_characters() {
        assert_eq!(truncate("äöü", 2), "äö…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
