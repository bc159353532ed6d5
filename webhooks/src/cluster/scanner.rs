//! The in-cluster scanner of `vouch serve --scan-interval`: every interval, and at once when the policies or
//! trust root in force change, the replica holding the scanner's Lease lists every Pod a page at a time and
//! judges it at the digest it runs ([`crate::scan`]), with the webhook's engine (its policies, verifier and
//! verdict cache). Registry requests made for the scan are paced (`--scan-max-registry-rps`); admission's
//! are not. What it writes, for everything running:
//! - an OpenReports report per namespace, `vouch-scan` (source `vouch-scan`), replaced whole by each scan so
//!   Pods that are gone leave it;
//! - the Pod condition `vouch.dev/Verified`, re-evaluated (written only when it changes);
//! - a Warning Event with reason `VerificationDrift` on each Pod that passed before (its condition was
//!   True, or the last scan passed it) and is non-compliant now, naming why. A Pod that only could not be
//!   verified (a registry outage) gets none: that is not drift.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Event;

use crate::cloudevents::CloudEvent;
use kube::api::PostParams;
use kube::{Api, Client};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::{json, Value};
use tokio::sync::watch;
use vouch_attest::registry::{paced, Pacer};
use vouch_policies::manifests::ManifestObject;
use vouch_policies::Engine;

use super::error::{error_chain, KubeError};
use super::event::ObjectRef;
use super::fingerprint;
use super::object_status::{
    condition_parts, write_object_status, ObjectUpdate, RetryConfig, StatusSchemas, POD_CONDITION,
};
use super::reports::{truncate, write_report_of, ReportBook, SCAN_REPORT};
use crate::scan::cluster::{namespace_facts, PodPages, PAGE_SIZE};
use crate::scan::report::Totals;
use crate::scan::{Judged, ScanOptions, ScanOutcome, Scanner};

/// Reason of the Event on a workload that drifted.
pub const DRIFT_REASON: &str = "VerificationDrift";
/// Pods whose last outcome is remembered at most (to tell drift without a condition to read).
const MAX_REMEMBERED: usize = 200_000;
/// Wait before trying again when the engine has no policies yet or a scan failed.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// Longest Event message.
const MAX_EVENT_MESSAGE: usize = 1024;

/// Scanner settings.
#[derive(Debug, Clone)]
pub struct ScannerConfig {
    /// Time between scans (from the end of one to the start of the next).
    pub interval: Duration,
    /// Registry requests per second at most, for the scan's verifications.
    pub max_registry_rps: std::num::NonZeroU32,
    /// Pods listed per page.
    pub page_size: u32,
    /// Results kept per namespace report.
    pub max_report_entries: usize,
    /// Write the `vouch-scan` reports.
    pub reports: bool,
    /// Re-evaluate the Pod condition.
    pub pod_conditions: bool,
    /// Emit `VerificationDrift` Events.
    pub events: bool,
    /// Retries and time limit of each Pod condition write.
    pub retry: RetryConfig,
    /// Longest wait for one write.
    pub write_timeout: Duration,
    /// This replica's name (Events' `reportingInstance`).
    pub replica: String,
}

impl Default for ScannerConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(3600),
            max_registry_rps: std::num::NonZeroU32::new(20).unwrap_or(std::num::NonZeroU32::MIN),
            page_size: PAGE_SIZE,
            max_report_entries: 1000,
            reports: true,
            pod_conditions: true,
            events: true,
            retry: RetryConfig { attempts: 3, initial_backoff: Duration::from_millis(500) },
            write_timeout: Duration::from_secs(10),
            replica: String::new(),
        }
    }
}

/// The scanner's metrics.
#[derive(Debug, Clone)]
pub struct ScanMetrics {
    /// Scans by result (`success`, `failure`).
    pub runs: Family<Vec<(String, String)>, Counter>,
    /// When the last scan succeeded (seconds since the epoch).
    pub last_success: Gauge<f64, AtomicU64>,
    /// Workloads of the last successful scan, by result (`compliant`, `nonCompliant`, …).
    pub workloads: Family<Vec<(String, String)>, Gauge>,
    /// How long scans take.
    pub duration: Histogram,
    /// `VerificationDrift` Events emitted.
    pub drift_events: Counter,
}

impl Default for ScanMetrics {
    fn default() -> Self {
        let buckets = [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0];
        Self {
            runs: Family::default(),
            last_success: Gauge::default(),
            workloads: Family::default(),
            duration: Histogram::new(buckets),
            drift_events: Counter::default(),
        }
    }
}

impl ScanMetrics {
    /// Register as `vouch_scan_runs_total`, `vouch_scan_last_success_timestamp_seconds`,
    /// `vouch_scan_workloads`, `vouch_scan_duration_seconds` and `vouch_scan_drift_events_total`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register("vouch_scan_runs", "Scans of what runs, by result", self.runs.clone());
        registry.register(
            "vouch_scan_last_success_timestamp_seconds",
            "When the last scan succeeded (Unix time)",
            self.last_success.clone(),
        );
        registry.register(
            "vouch_scan_workloads",
            "Workloads of the last successful scan, by result",
            self.workloads.clone(),
        );
        registry.register("vouch_scan_duration_seconds", "How long scans take", self.duration.clone());
        registry.register(
            "vouch_scan_drift_events",
            "VerificationDrift Events emitted on workloads that passed before and fail now",
            self.drift_events.clone(),
        );
    }

    fn label(key: &str, value: &str) -> Vec<(String, String)> {
        vec![(key.to_owned(), value.to_owned())]
    }

    /// Scans that ended with `result` (for tests and diagnostics).
    pub fn runs_of(&self, result: &str) -> u64 {
        self.runs.get_or_create(&Self::label("result", result)).get()
    }

    /// Workloads of the last successful scan with `result`.
    pub fn workloads_of(&self, result: &str) -> i64 {
        self.workloads.get_or_create(&Self::label("result", result)).get()
    }
}

/// What one scan found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Workloads by outcome.
    pub totals: Totals,
    /// Pod conditions written (changed).
    pub conditions_written: usize,
    /// Drift Events emitted.
    pub drift_events: usize,
    /// Namespace reports written.
    pub reports_written: usize,
}

/// The scanner: run it with [`ClusterScanner::spawn`], or one scan with [`ClusterScanner::scan_once`].
pub struct ClusterScanner {
    client: Client,
    engine: Engine,
    config: ScannerConfig,
    metrics: ScanMetrics,
    leader: watch::Receiver<bool>,
    pacer: Arc<Pacer>,
    /// Last outcome passed, by Pod uid.
    last: Mutex<HashMap<String, bool>>,
    /// Namespaces whose report the last scan wrote (emptied when their Pods are gone).
    reported: Mutex<BTreeSet<Option<String>>>,
    /// Where `dev.vouch.scan.drift` CloudEvents go (`--events-sink`).
    events: Option<crate::cloudevents::EventSink>,
}

impl std::fmt::Debug for ClusterScanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterScanner").field("config", &self.config).finish_non_exhaustive()
    }
}

impl ClusterScanner {
    /// A scanner judging with `engine`, scanning while `leader` is true.
    pub fn new(
        client: Client,
        engine: Engine,
        config: ScannerConfig,
        metrics: ScanMetrics,
        leader: watch::Receiver<bool>,
    ) -> Self {
        let pacer = Arc::new(Pacer::new(config.max_registry_rps));
        Self {
            client,
            engine,
            config,
            metrics,
            leader,
            pacer,
            last: Mutex::new(HashMap::new()),
            reported: Mutex::new(BTreeSet::new()),
            events: None,
        }
    }

    /// Also send a `dev.vouch.scan.drift` CloudEvent for each drifted Pod.
    #[must_use]
    pub fn with_events(mut self, events: Option<crate::cloudevents::EventSink>) -> Self {
        self.events = events;
        self
    }

    /// Scan every interval and when what is in force changes, while this replica leads.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(mut self) {
        let mut changes = self.engine.in_force_changes();
        let mut next = tokio::time::Instant::now();
        loop {
            while !*self.leader.borrow_and_update() {
                if self.leader.changed().await.is_err() {
                    return;
                }
                next = tokio::time::Instant::now();
            }
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    tracing::info!("policies or trust root in force changed: scanning what runs");
                }
                changed = self.leader.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
            }
            if !*self.leader.borrow() {
                continue;
            }
            if !self.engine.is_ready() {
                next = tokio::time::Instant::now() + RETRY_AFTER.min(self.config.interval);
                continue;
            }
            changes.borrow_and_update();
            next = match self.scan_once().await {
                Ok(_) => tokio::time::Instant::now() + self.config.interval,
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), "scan failed; trying again");
                    tokio::time::Instant::now() + RETRY_AFTER.min(self.config.interval)
                }
            };
        }
    }

    /// One scan of every Pod; writes reports, conditions and Events, and the metrics.
    pub async fn scan_once(&self) -> Result<ScanSummary, KubeError> {
        let started = std::time::Instant::now();
        let result = self.scan_pages().await;
        self.metrics.duration.observe(started.elapsed().as_secs_f64());
        let outcome = if result.is_ok() { "success" } else { "failure" };
        self.metrics.runs.get_or_create(&ScanMetrics::label("result", outcome)).inc();
        if let Ok(summary) = &result {
            let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            self.metrics.last_success.set(now);
            let t = &summary.totals;
            for (name, n) in [
                ("compliant", t.compliant),
                ("warned", t.warned),
                ("nonCompliant", t.non_compliant),
                ("unverified", t.unverified),
                ("skipped", t.skipped),
            ] {
                self.metrics.workloads.get_or_create(&ScanMetrics::label("result", name)).set(n as i64);
            }
            tracing::info!(
                workloads = t.workloads,
                compliant = t.compliant,
                non_compliant = t.non_compliant,
                unverified = t.unverified,
                drift_events = summary.drift_events,
                conditions_written = summary.conditions_written,
                seconds = started.elapsed().as_secs_f64(),
                "scan of what runs finished"
            );
        }
        result
    }

    async fn scan_pages(&self) -> Result<ScanSummary, KubeError> {
        let cluster = super::KubeContext::new(self.client.clone(), &super::ContextCacheConfig::default());
        let scanner = Scanner::new(self.engine.clone()).with_cluster(Arc::new(cluster));
        // Paced requests wait for tokens within each evaluation's budget: keep the requests in flight (about
        // 6 per cold verification) within half of what the budget lets through at the paced rate.
        let budget = self.engine.config().budget.as_secs_f64();
        let rps = f64::from(self.config.max_registry_rps.get());
        let concurrency = ((rps * budget / 12.0) as usize).clamp(1, crate::scan::CONCURRENCY);
        let mut options = ScanOptions { concurrency, ..ScanOptions::default() };
        match namespace_facts(&self.client).await {
            Ok(facts) => options.namespaces = facts,
            Err(e) => {
                tracing::warn!(error = %error_chain(&e), "cannot list namespaces: namespace selectors cannot be evaluated")
            }
        }
        let mut pages = PodPages::new(self.client.clone(), &[], self.config.page_size);
        let mut book = ReportBook::of_kind(SCAN_REPORT, self.config.max_report_entries);
        let mut namespaces = BTreeSet::new();
        let mut summary = ScanSummary::default();
        let mut outcomes = HashMap::new();
        let timestamp = chrono::Utc::now().timestamp();
        while let Some(page) = pages.next_page().await? {
            if !*self.leader.borrow() {
                return Err(KubeError::Timeout { what: "scan (leadership lost)".into() });
            }
            let judged = paced(Arc::clone(&self.pacer), scanner.scan(&page, &options)).await;
            for (object, judged) in page.iter().zip(judged) {
                summary.totals.add(&judged.record);
                let object_ref = pod_ref(object);
                namespaces.insert(object_ref.namespace.clone());
                if judged.record.outcome == ScanOutcome::Skipped {
                    continue;
                }
                book.record(&object_ref, &judged.decision.findings, timestamp);
                let passed_before = self.passed_before(object, object_ref.uid.as_deref());
                if let Some(uid) = &object_ref.uid {
                    outcomes.insert(uid.clone(), judged.record.outcome.passes());
                }
                if self.config.pod_conditions && self.update_condition(object, &object_ref, &judged).await {
                    summary.conditions_written += 1;
                }
                let drifted = passed_before && judged.record.outcome == ScanOutcome::NonCompliant;
                if let (true, Some(events)) = (drifted, &self.events) {
                    let namespace = object_ref.namespace.as_deref().unwrap_or("default");
                    events.emit(CloudEvent::drift(
                        events.source(),
                        namespace,
                        &object_ref.name,
                        &judged.record,
                    ));
                }
                if self.config.events && drifted && self.drift_event(&object_ref, &judged).await {
                    summary.drift_events += 1;
                }
            }
        }
        if outcomes.len() <= MAX_REMEMBERED {
            if let Ok(mut last) = self.last.lock() {
                *last = outcomes;
            }
        }
        if self.config.reports {
            summary.reports_written = self.write_reports(&mut book, namespaces).await;
        }
        Ok(summary)
    }

    /// Whether the Pod passed before: its condition says so, or (without one) the last scan did.
    fn passed_before(&self, object: &ManifestObject, uid: Option<&str>) -> bool {
        match current_condition(&object.object) {
            Some((status, _, _)) => status == "True",
            None => uid.and_then(|u| self.last.lock().ok().and_then(|l| l.get(u).copied())).unwrap_or(false),
        }
    }

    /// Write the Pod's condition when it changes; whether it was written.
    async fn update_condition(
        &self,
        object: &ManifestObject,
        object_ref: &ObjectRef,
        judged: &Judged,
    ) -> bool {
        let update = ObjectUpdate {
            object: object_ref.clone(),
            allowed: judged.decision.allowed,
            findings: judged.decision.findings.clone(),
            target: None,
        };
        let (status, reason, message) = condition_parts(&update);
        if current_condition(&object.object)
            .is_some_and(|c| c == (status.into(), reason.into(), message.clone()))
        {
            return false;
        }
        let schemas = StatusSchemas::default();
        match write_object_status(
            &self.client,
            &update,
            &self.config.retry,
            self.config.write_timeout,
            &schemas,
        )
        .await
        {
            Ok(super::object_status::Written::Ok) => true,
            Ok(super::object_status::Written::Stale) => false,
            Err(e) => {
                tracing::warn!(pod = %object_ref.name, namespace = ?object_ref.namespace, error = %error_chain(&e),
                    "cannot write the scan's condition");
                false
            }
        }
    }

    /// A Warning Event `VerificationDrift` on the Pod, naming why it fails now; whether it was created.
    async fn drift_event(&self, pod: &ObjectRef, judged: &Judged) -> bool {
        let namespace = pod.namespace.clone().unwrap_or_else(|| "default".into());
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let message = truncate(
            &format!("passed before, fails now: {}", judged.record.reasons.join("; ")),
            MAX_EVENT_MESSAGE,
        );
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": format!("{}.", pod.name), "namespace": namespace},
            "involvedObject": {
                "apiVersion": pod.api_version, "kind": pod.kind, "name": pod.name,
                "namespace": namespace, "uid": pod.uid,
            },
            "type": "Warning",
            "reason": DRIFT_REASON,
            "message": message,
            "action": "Scan",
            "source": {"component": "vouch-scanner"},
            "reportingComponent": "vouch.dev/scanner",
            "reportingInstance": self.config.replica,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        });
        let Ok(event) = serde_json::from_value::<Event>(event) else { return false };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let params = PostParams::default();
        let create = api.create(&params, &event);
        match tokio::time::timeout(self.config.write_timeout, create).await {
            Ok(Ok(_)) => {
                self.metrics.drift_events.inc();
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(pod = %pod.name, namespace = %namespace, error = %e, "cannot create the drift Event");
                false
            }
            Err(_) => false,
        }
    }

    /// Write each namespace's report whole (the namespaces the last scan reported and have no Pods now get
    /// an empty one); how many were written.
    async fn write_reports(&self, book: &mut ReportBook, namespaces: BTreeSet<Option<String>>) -> usize {
        let previous = self.reported.lock().map(|r| r.clone()).unwrap_or_default();
        let mut written = 0;
        let mut reported = BTreeSet::new();
        for namespace in namespaces.union(&previous) {
            let results = book.take(namespace);
            if results.is_empty() && !previous.contains(namespace) {
                continue;
            }
            let max = book.max_entries();
            let write =
                write_report_of(SCAN_REPORT, &self.client, namespace.as_deref(), &results, max, false);
            match tokio::time::timeout(self.config.write_timeout, write).await {
                Ok(Ok(())) => {
                    written += 1;
                    if !results.is_empty() {
                        reported.insert(namespace.clone());
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(namespace = ?namespace, error = %error_chain(&e), "cannot write the scan report");
                    reported.insert(namespace.clone());
                }
                Err(_) => {
                    tracing::warn!(namespace = ?namespace, "writing the scan report timed out");
                    reported.insert(namespace.clone());
                }
            }
        }
        if let Ok(mut r) = self.reported.lock() {
            *r = reported;
        }
        written
    }
}

/// The Pod as reports, conditions and Events name it, with the fingerprint its condition write checks.
fn pod_ref(object: &ManifestObject) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "Pod".into(),
        namespace: object.namespace.clone(),
        name: object.name.clone(),
        uid: object.object.pointer("/metadata/uid").and_then(Value::as_str).map(str::to_owned),
        fingerprint: fingerprint::of_object("v1", "Pod", &object.object),
    }
}

/// The Pod's `vouch.dev/Verified` condition as listed: (status, reason, message).
fn current_condition(pod: &Value) -> Option<(String, String, String)> {
    let conditions = pod.pointer("/status/conditions")?.as_array()?;
    let c = conditions.iter().find(|c| c.get("type").and_then(Value::as_str) == Some(POD_CONDITION))?;
    let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    Some((text("status"), text("reason"), text("message")))
}
