//! Writing admission results back into the cluster, after admission and off its path.
//!
//! [`StatusWriter::submit`] only `try_send`s into a bounded channel: when the worker falls behind, events
//! are dropped and counted (`vouch_status_dropped_total`), never waited for. The [`StatusWorker`] batches
//! them: every `flush_interval` or `flush_max_events` events it server-side-applies one OpenReports report
//! per touched namespace (denials included), and sets a `vouch.dev/Verified` condition on admitted Pods and
//! a `SupplyChainVerified` condition plus `status.attestations` on admitted custom resources of configured
//! kinds (each retried with backoff in its own task, since at CREATE the object is not stored yet when
//! admission runs).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind as KubeGvk, Patch, PatchParams};
use kube::{Api, Client};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::sync::{mpsc, Semaphore};
use vouch_policies::crd::PolicyCounts;
use vouch_policies::{AdmissionInput, Decision, Finding, FindingResult};

use super::error::KubeError;
use super::fingerprint;
use super::reports::{
    merge_results, report_object, truncate, ReportBook, REPORT_GROUP, REPORT_NAME, REPORT_VERSION,
};

/// Condition type set on Pods.
pub const POD_CONDITION: &str = "vouch.dev/Verified";
/// Condition type set on configured custom resources.
pub const TARGET_CONDITION: &str = "SupplyChainVerified";
/// Upper bound of [`StatusConfig::max_in_flight`].
const MAX_IN_FLIGHT: usize = 10_000;
/// Field manager of every write.
pub const FIELD_MANAGER: &str = "vouch";
/// Most entries in a custom resource's `status.attestations`.
const MAX_ATTESTATIONS: usize = 100;
/// Longest condition message.
const MAX_CONDITION_MESSAGE: usize = 1024;

/// The object an admission result is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// `group/version` or `v1`.
    pub api_version: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name (the generated one in the validating webhook).
    pub name: String,
    /// metadata.uid when the object had one (validating webhook); guards against writing to a namesake.
    pub uid: Option<String>,
    /// What the stored object must still show for a result to be written to its status (see
    /// [`fingerprint`]); `None`: nothing is written to it.
    pub fingerprint: Option<String>,
}

impl ObjectRef {
    /// The API group (empty for the core group).
    pub fn group(&self) -> &str {
        self.api_version.rsplit_once('/').map_or("", |(g, _)| g)
    }
}

/// One admission result to write back.
#[derive(Debug, Clone)]
pub struct StatusEvent {
    /// The object.
    pub object: ObjectRef,
    /// Whether it was admitted.
    pub allowed: bool,
    /// Every (artifact, policy, requirement) result.
    pub findings: Vec<Finding>,
    /// Dry-run requests are never written back.
    pub dry_run: bool,
}

impl StatusEvent {
    /// The event for an evaluated admission request.
    pub fn from_admission(input: &AdmissionInput, decision: &Decision) -> Self {
        let uid = input
            .object
            .as_ref()
            .and_then(|o| o.pointer("/metadata/uid"))
            .and_then(serde_json::Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        let kind = &input.kind;
        let api_version = if kind.group.is_empty() {
            kind.version.clone()
        } else {
            format!("{}/{}", kind.group, kind.version)
        };
        Self {
            object: ObjectRef {
                api_version,
                kind: kind.kind.clone(),
                namespace: input.namespace.clone().filter(|n| !n.is_empty()),
                name: input.name.clone(),
                uid,
                // Set by [`StatusWriter::submit_admission`], only for objects whose status is written.
                fingerprint: None,
            },
            allowed: decision.allowed,
            findings: decision.findings.clone(),
            dry_run: input.dry_run,
        }
    }
}

/// A custom resource kind whose status receives the verification result.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusTarget {
    /// API group.
    pub group: String,
    /// Version used to write.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Resource (plural) name.
    pub plural: String,
}

/// How often and how much is retried for an object that may not exist yet.
#[derive(Debug, Clone)]
pub struct RetryConfig {
    /// Attempts in all (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time.
    pub initial_backoff: Duration,
}

/// Status writer settings.
#[derive(Debug, Clone)]
pub struct StatusConfig {
    /// Events queued at most; more are dropped.
    pub queue_capacity: usize,
    /// Flush at least this often when something is pending.
    pub flush_interval: Duration,
    /// Flush once this many events are pending.
    pub flush_max_events: usize,
    /// Results kept per report.
    pub max_report_entries: usize,
    /// Write OpenReports reports.
    pub reports: bool,
    /// Set the condition on Pods.
    pub pod_conditions: bool,
    /// Custom resources that get a condition and attestations.
    pub targets: Vec<StatusTarget>,
    /// Retries for object status writes.
    pub retry: RetryConfig,
    /// Object status writes in flight at most (1..=10000); more are dropped.
    pub max_in_flight: usize,
    /// Longest wait for one write (a report read-merge-apply, one object status attempt), so a hanging
    /// API server cannot stall the worker.
    pub write_timeout: Duration,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 1024,
            flush_interval: Duration::from_secs(2),
            flush_max_events: 256,
            max_report_entries: 1000,
            reports: true,
            pod_conditions: true,
            targets: Vec::new(),
            retry: RetryConfig { attempts: 5, initial_backoff: Duration::from_millis(500) },
            max_in_flight: 64,
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Counters of the status writer, registered by the server next to its own metrics.
#[derive(Debug, Clone, Default)]
pub struct StatusMetrics {
    /// Events dropped because the queue was full.
    pub dropped: Counter,
    /// Writes by target (`report`, `pod`, `custom`) and outcome (`ok`, `error`, `retry`, `gave_up`,
    /// `dropped`, `stale`: the stored object is not the one reviewed, so nothing was written).
    pub writes: Family<Vec<(String, String)>, Counter>,
}

impl StatusMetrics {
    /// Register as `vouch_status_dropped_total` and `vouch_status_writes_total`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "vouch_status_dropped",
            "Status events dropped because the queue was full",
            self.dropped.clone(),
        );
        registry.register(
            "vouch_status_writes",
            "Status and report writes by target and outcome",
            self.writes.clone(),
        );
    }

    fn count(&self, target: &str, outcome: &str) {
        let labels =
            vec![("target".to_owned(), target.to_owned()), ("outcome".to_owned(), outcome.to_owned())];
        self.writes.get_or_create(&labels).inc();
    }

    /// Writes counted for `target` with `outcome` (for tests and diagnostics).
    pub fn writes_of(&self, target: &str, outcome: &str) -> u64 {
        let labels =
            vec![("target".to_owned(), target.to_owned()), ("outcome".to_owned(), outcome.to_owned())];
        self.writes.get_or_create(&labels).get()
    }
}

type CountsByPolicy = BTreeMap<(Option<String>, String), PolicyCounts>;

/// Per-policy evaluation counts, shared with the policy watch (which writes them into policy status).
/// Keyed by (policy namespace, policy name); `None` is a cluster policy.
#[derive(Debug, Clone, Default)]
pub struct PolicyCounters {
    inner: Arc<std::sync::Mutex<CountsByPolicy>>,
}

impl PolicyCounters {
    pub(crate) fn add(&self, findings: &[Finding]) {
        let Ok(mut map) = self.inner.lock() else { return };
        for f in findings.iter().filter(|f| !f.policy.is_empty()) {
            let c = map.entry((f.policy_namespace.clone(), f.policy.clone())).or_default();
            match f.result {
                FindingResult::Pass => c.passed += 1,
                FindingResult::Fail => c.failed += 1,
                FindingResult::Error => c.errors += 1,
            }
        }
    }

    /// Counts of one policy so far.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> PolicyCounts {
        self.inner
            .lock()
            .ok()
            .and_then(|m| m.get(&(namespace.map(str::to_owned), name.to_owned())).copied())
            .unwrap_or_default()
    }

    /// Start counting one policy from 0 again (it was deleted, or another object took its name).
    pub fn forget(&self, namespace: Option<&str>, name: &str) {
        if let Ok(mut map) = self.inner.lock() {
            map.remove(&(namespace.map(str::to_owned), name.to_owned()));
        }
    }
}

/// The objects whose own status is written: admitted Pods (when enabled) and configured custom kinds.
#[derive(Debug, Default)]
struct StatusedKinds {
    pod_conditions: bool,
    targets: Vec<StatusTarget>,
}

impl StatusedKinds {
    fn of(config: &StatusConfig) -> Arc<Self> {
        Arc::new(Self { pod_conditions: config.pod_conditions, targets: config.targets.clone() })
    }

    /// The configured custom kind `object` is, if any.
    fn target_of(&self, object: &ObjectRef) -> Option<StatusTarget> {
        self.targets.iter().find(|t| t.group == object.group() && t.kind == object.kind).cloned()
    }

    /// Whether `object`'s own status is written (else only reports are).
    fn writes_status_of(&self, object: &ObjectRef) -> bool {
        let is_pod = object.kind == "Pod" && object.api_version == "v1";
        (is_pod && self.pod_conditions) || self.target_of(object).is_some()
    }
}

/// The admission side: hands events to the worker without ever waiting.
#[derive(Debug, Clone)]
pub struct StatusWriter {
    tx: Option<mpsc::Sender<StatusEvent>>,
    metrics: StatusMetrics,
    counters: PolicyCounters,
    kinds: Arc<StatusedKinds>,
}

impl StatusWriter {
    /// A writer that writes nothing (file mode).
    pub fn disabled() -> Self {
        Self {
            tx: None,
            metrics: StatusMetrics::default(),
            counters: PolicyCounters::default(),
            kinds: Arc::default(),
        }
    }

    /// A writer and its worker, not yet running (see [`StatusWorker::run`]).
    pub fn new(config: StatusConfig) -> (Self, StatusWorker) {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let metrics = StatusMetrics::default();
        let counters = PolicyCounters::default();
        let kinds = StatusedKinds::of(&config);
        let writer = Self {
            tx: Some(tx),
            metrics: metrics.clone(),
            counters: counters.clone(),
            kinds: Arc::clone(&kinds),
        };
        let worker = StatusWorker {
            rx,
            book: ReportBook::new(config.max_report_entries),
            config,
            kinds,
            metrics,
            counters,
        };
        (writer, worker)
    }

    /// A writer whose worker runs on the current tokio runtime; the task ends once every writer is dropped.
    pub fn spawn(client: Client, config: StatusConfig) -> (Self, tokio::task::JoinHandle<()>) {
        let (writer, worker) = Self::new(config);
        (writer, tokio::spawn(worker.run(client)))
    }

    /// Queue the result of an admission (see [`Self::submit`]). Nothing is built for a dry run, a result
    /// without findings or a writer that writes nothing; the object's fingerprint (what the status write
    /// must find again) is computed only for an admitted object whose own status is written.
    pub fn submit_admission(&self, input: &AdmissionInput, decision: &Decision) -> bool {
        if self.tx.is_none() || input.dry_run || decision.findings.is_empty() {
            return false;
        }
        let mut event = StatusEvent::from_admission(input, decision);
        if event.allowed && self.kinds.writes_status_of(&event.object) {
            let o = &event.object;
            event.object.fingerprint =
                input.object.as_ref().and_then(|obj| fingerprint::of_object(&o.api_version, &o.kind, obj));
        }
        self.submit(event)
    }

    /// Queue `event`; returns whether it was queued. Dry runs and results without findings are not written;
    /// a full queue drops the event and counts it.
    pub fn submit(&self, event: StatusEvent) -> bool {
        let Some(tx) = &self.tx else { return false };
        if event.dry_run || event.findings.is_empty() {
            return false;
        }
        match tx.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.dropped.inc();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Whether anything is written.
    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// The writer's counters.
    pub fn metrics(&self) -> &StatusMetrics {
        &self.metrics
    }

    /// Per-policy counts, for policy status.
    pub fn policy_counters(&self) -> PolicyCounters {
        self.counters.clone()
    }
}

/// The background side: batches events and writes them.
#[derive(Debug)]
pub struct StatusWorker {
    rx: mpsc::Receiver<StatusEvent>,
    config: StatusConfig,
    kinds: Arc<StatusedKinds>,
    metrics: StatusMetrics,
    counters: PolicyCounters,
    book: ReportBook,
}

/// What to write to one object's status.
#[derive(Debug, Clone)]
struct ObjectUpdate {
    object: ObjectRef,
    allowed: bool,
    findings: Vec<Finding>,
    target: Option<StatusTarget>,
}

impl StatusWorker {
    /// Run until every [`StatusWriter`] is dropped, then flush what is pending and return.
    pub async fn run(mut self, client: Client) {
        let mut ticker = tokio::time::interval(self.config.flush_interval.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let permits = self.config.max_in_flight.clamp(1, MAX_IN_FLIGHT);
        let in_flight = Arc::new(Semaphore::new(permits));
        let mut batch = Batch::default();
        loop {
            tokio::select! {
                event = self.rx.recv() => match event {
                    Some(event) => {
                        self.absorb(&mut batch, event);
                        if batch.events >= self.config.flush_max_events.max(1) {
                            self.flush(&client, &in_flight, std::mem::take(&mut batch)).await;
                        }
                    }
                    None => {
                        self.flush(&client, &in_flight, batch).await;
                        // Let object writes in flight finish (bounded by their retries).
                        let _ = in_flight.acquire_many(u32::try_from(permits).unwrap_or(1)).await;
                        return;
                    }
                },
                _ = ticker.tick() => {
                    if batch.events > 0 || self.book.has_pending() {
                        self.flush(&client, &in_flight, std::mem::take(&mut batch)).await;
                    }
                }
            }
        }
    }

    fn absorb(&mut self, batch: &mut Batch, event: StatusEvent) {
        if event.dry_run {
            return;
        }
        batch.events += 1;
        self.counters.add(&event.findings);
        if self.config.reports {
            self.book.record(&event.object, &event.findings, chrono::Utc::now().timestamp());
        }
        // A denied object was not stored (CREATE) or not changed (UPDATE): its status is not ours to set.
        if event.allowed && self.kinds.writes_status_of(&event.object) {
            let target = self.kinds.target_of(&event.object);
            let key = (event.object.kind.clone(), event.object.namespace.clone(), event.object.name.clone());
            // The latest result per object wins within a batch.
            batch.objects.insert(
                key,
                ObjectUpdate {
                    object: event.object,
                    allowed: event.allowed,
                    findings: event.findings,
                    target,
                },
            );
        }
    }

    async fn flush(&mut self, client: &Client, in_flight: &Arc<Semaphore>, batch: Batch) {
        for namespace in self.book.namespaces() {
            let new = self.book.take(&namespace);
            let max = self.book.max_entries();
            let write = write_report(client, namespace.as_deref(), &new, max);
            let result = match tokio::time::timeout(self.config.write_timeout, write).await {
                Ok(result) => result,
                Err(_) => {
                    Err(KubeError::Timeout { what: format!("report {}", namespace.as_deref().unwrap_or("")) })
                }
            };
            match result {
                Ok(()) => self.metrics.count("report", "ok"),
                Err(e) => {
                    let retry = worth_retrying(&e);
                    self.metrics.count("report", if retry { "retry" } else { "error" });
                    tracing::warn!(namespace = namespace.as_deref().unwrap_or(""), error = %e,
                        cause = %source_text(&e), will_retry = retry, "cannot write report");
                    if retry {
                        self.book.restore(namespace, new);
                    }
                }
            }
        }
        for update in batch.objects.into_values() {
            let what = if update.target.is_some() { "custom" } else { "pod" };
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                self.metrics.count(what, "dropped");
                continue;
            };
            let (client, metrics, retry) = (client.clone(), self.metrics.clone(), self.config.retry.clone());
            let timeout = self.config.write_timeout;
            tokio::spawn(async move {
                let outcome = write_object_status(&client, &update, &retry, timeout).await;
                match outcome {
                    Ok(Written::Ok) => metrics.count(what, "ok"),
                    Ok(Written::Stale) => {
                        metrics.count(what, "stale");
                        tracing::info!(kind = %update.object.kind, name = %update.object.name,
                            "not writing status: the stored object is not the one reviewed");
                    }
                    Err(e) => {
                        let outcome = if e.is_transient() { "gave_up" } else { "error" };
                        metrics.count(what, outcome);
                        tracing::debug!(kind = %update.object.kind, name = %update.object.name, error = %e,
                            cause = %source_text(&e), "cannot write object status");
                    }
                }
                drop(permit);
            });
        }
    }
}

#[derive(Debug, Default)]
struct Batch {
    events: usize,
    objects: BTreeMap<(String, Option<String>, String), ObjectUpdate>,
}

fn source_text(e: &KubeError) -> String {
    std::error::Error::source(e).map(ToString::to_string).unwrap_or_default()
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
async fn write_report(
    client: &Client,
    namespace: Option<&str>,
    new: &[serde_json::Value],
    max_entries: usize,
) -> Result<(), KubeError> {
    let resource = report_resource(namespace.is_some());
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let what = || format!("report {}/{REPORT_NAME}", namespace.unwrap_or(""));
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut attempt = 1;
    loop {
        let stored = api
            .get_opt(REPORT_NAME)
            .await
            .map_err(|source| KubeError::Write { what: what(), source: Box::new(source) })?;
        let (results, version) = match &stored {
            Some(report) => (
                report.data.get("results").and_then(|r| r.as_array()).cloned().unwrap_or_default(),
                report.metadata.resource_version.clone(),
            ),
            None => (Vec::new(), None),
        };
        let merged = merge_results(&results, new, max_entries);
        let report = report_object(namespace, &merged, version.as_deref());
        match api.patch(REPORT_NAME, &params, &Patch::Apply(&report)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < REPORT_CONFLICT_ATTEMPTS => attempt += 1,
            Err(source) => return Err(KubeError::Write { what: what(), source: Box::new(source) }),
        }
    }
}

/// Whether a failed report write should be tried again with the next flush (not for missing permissions,
/// a missing CRD, or an invalid report).
fn worth_retrying(e: &KubeError) -> bool {
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

/// What became of an object status write that did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written {
    /// The status was written.
    Ok,
    /// The stored object is not the reviewed one (another uid, other images or spec): nothing written.
    Stale,
}

/// Write one object's status, retrying while it may not exist yet or the server is busy.
async fn write_object_status(
    client: &Client,
    update: &ObjectUpdate,
    retry: &RetryConfig,
    timeout: Duration,
) -> Result<Written, KubeError> {
    let mut backoff = retry.initial_backoff;
    let mut attempt = 1;
    let what = || format!("status of {} {}", update.object.kind, update.object.name);
    loop {
        let write = async {
            match &update.target {
                None => patch_pod_condition(client, update).await,
                Some(target) => patch_custom_status(client, target, update).await,
            }
        };
        let result = tokio::time::timeout(timeout, write)
            .await
            .unwrap_or_else(|_| Err(KubeError::Timeout { what: what() }));
        match result {
            Err(e) if e.is_transient() && attempt < retry.attempts.max(1) => {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// `(status, reason, message)` of the condition for an object's findings.
fn condition_parts(update: &ObjectUpdate) -> (&'static str, &'static str, String) {
    let failed: Vec<&Finding> = update.findings.iter().filter(|f| f.result != FindingResult::Pass).collect();
    let total = update.findings.len();
    match failed.first() {
        None => ("True", "Verified", format!("{total} of {total} requirements met")),
        Some(first) => {
            let reason = if failed.iter().all(|f| f.result == FindingResult::Error) {
                "VerificationError"
            } else {
                "VerificationFailed"
            };
            // Warn and audit modes (and fail-open) admit objects that did not verify: say so.
            let admitted = if update.allowed { "admitted; " } else { "" };
            let message = format!(
                "{admitted}{} of {total} requirements not met; first: {}: image {}: policy {}: {}: {}",
                failed.len(),
                first.artifact,
                first.reference,
                first.policy,
                first.requirement,
                first.reason
            );
            ("False", reason, truncate(&message, MAX_CONDITION_MESSAGE))
        }
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Strategic merge patch of pods/status: conditions merge by `type`, so other conditions stay. Written
/// only to the Pod reviewed (same uid and images), guarded by its resourceVersion.
async fn patch_pod_condition(client: &Client, update: &ObjectUpdate) -> Result<Written, KubeError> {
    let object = &update.object;
    let ns = object.namespace.as_deref().unwrap_or("default");
    let api: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), ns);
    let current = match api.get_status(&object.name).await {
        Ok(current) => current,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(KubeError::NotFound { kind: "Pod", name: object.name.clone() });
        }
        Err(source) => {
            return Err(KubeError::Read {
                kind: "Pod",
                namespace: ns.to_owned(),
                name: object.name.clone(),
                source: Box::new(source),
            })
        }
    };
    let stored = serde_json::to_value(&current).unwrap_or_default();
    if !is_the_reviewed_object(object, current.metadata.uid.as_deref(), &stored) {
        return Ok(Written::Stale);
    }
    let (status, reason, message) = condition_parts(update);
    let mut patch = json!({
        "status": {"conditions": [{
            "type": POD_CONDITION,
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now_rfc3339(),
        }]}
    });
    if let Some(map) = patch.as_object_mut() {
        // metadata.uid is immutable: a namesake pod with another uid rejects the patch; the resourceVersion
        // makes a Pod changed since it was read a conflict (retried: read and compared again).
        let mut metadata = json!({"resourceVersion": current.metadata.resource_version});
        if let Some(uid) = &object.uid {
            metadata["uid"] = json!(uid);
        }
        map.insert("metadata".into(), metadata);
    }
    api.patch_status(&object.name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map(|_| Written::Ok)
        .map_err(|source| KubeError::Write {
            what: format!("status of Pod {ns}/{}", object.name),
            source: Box::new(source),
        })
}

/// Whether the stored object (its uid and JSON) is the one a result is about: the same uid when both have
/// one, and the same fingerprint (which the reviewed object must have had).
fn is_the_reviewed_object(object: &ObjectRef, stored_uid: Option<&str>, stored: &serde_json::Value) -> bool {
    if let (Some(want), Some(have)) = (object.uid.as_deref(), stored_uid) {
        if want != have {
            return false;
        }
    }
    let Some(want) = &object.fingerprint else { return false };
    fingerprint::of_object(&object.api_version, &object.kind, stored).as_ref() == Some(want)
}

/// Read-modify-write of a custom resource's status (merge patch guarded by resourceVersion), replacing
/// only our condition and `attestations`.
async fn patch_custom_status(
    client: &Client,
    target: &StatusTarget,
    update: &ObjectUpdate,
) -> Result<Written, KubeError> {
    let object = &update.object;
    let gvk = KubeGvk::gvk(&target.group, &target.version, &target.kind);
    let resource = ApiResource::from_gvk_with_plural(&gvk, &target.plural);
    let api: Api<DynamicObject> = match &object.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    let what =
        || format!("status of {} {}/{}", target.kind, object.namespace.as_deref().unwrap_or(""), object.name);
    let current = match api.get_status(&object.name).await {
        Ok(current) => current,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(KubeError::NotFound { kind: "custom resource", name: object.name.clone() });
        }
        Err(source) => return Err(KubeError::Write { what: what(), source: Box::new(source) }),
    };
    // `data` holds everything but apiVersion, kind and metadata: the spec is where the fingerprint looks.
    if !is_the_reviewed_object(object, current.metadata.uid.as_deref(), &current.data) {
        return Ok(Written::Stale);
    }
    let (status, reason, message) = condition_parts(update);
    let now = now_rfc3339();
    let old_conditions = current.data.pointer("/status/conditions").and_then(|c| c.as_array()).cloned();
    let mut conditions: Vec<serde_json::Value> = Vec::new();
    let mut transition = now.clone();
    for c in old_conditions.unwrap_or_default() {
        if c.get("type").and_then(|t| t.as_str()) == Some(TARGET_CONDITION) {
            // Keep the transition time while the status does not change.
            if c.get("status").and_then(|s| s.as_str()) == Some(status) {
                if let Some(t) = c.get("lastTransitionTime").and_then(|t| t.as_str()) {
                    transition = t.to_owned();
                }
            }
        } else {
            conditions.push(c);
        }
    }
    conditions.push(json!({
        "type": TARGET_CONDITION, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": transition,
    }));
    let attestations: Vec<serde_json::Value> =
        update.findings.iter().take(MAX_ATTESTATIONS).map(attestation_entry).collect();
    let patch = json!({
        "metadata": {"resourceVersion": current.metadata.resource_version},
        "status": {"conditions": conditions, "attestations": attestations},
    });
    api.patch_status(&object.name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(|_| Written::Ok)
        .map_err(|source| KubeError::Write { what: what(), source: Box::new(source) })
}

fn attestation_entry(f: &Finding) -> serde_json::Value {
    let mut entry = json!({
        "policy": f.policy,
        "requirement": f.requirement,
        "artifact": f.artifact.to_string(),
        "reference": f.reference,
        "result": f.result.to_string(),
    });
    if let Some(map) = entry.as_object_mut() {
        if let Some(ns) = &f.policy_namespace {
            map.insert("policyNamespace".into(), ns.clone().into());
        }
        if let Some(d) = &f.digest {
            map.insert("digest".into(), d.to_string().into());
        }
        if let Some(s) = &f.signer {
            map.insert("signer".into(), s.clone().into());
        }
        if let Some(i) = f.rekor_log_index {
            map.insert("rekorLogIndex".into(), i.into());
        }
        if let Some(d) = &f.sbom_digest {
            map.insert("sbomDigest".into(), d.to_string().into());
        }
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use vouch_policies::crd::Mode;
    use vouch_policies::{ArtifactKind, ArtifactLocation, GroupVersionKind, Operation};

    fn pass_finding() -> Finding {
        Finding {
            policy: "p".into(),
            policy_namespace: None,
            mode: Mode::Enforce,
            requirement: "signature".into(),
            artifact: ArtifactLocation {
                kind: ArtifactKind::Container,
                name: "app".into(),
                pointer: "/spec/containers/0/image".into(),
            },
            reference: "r/a@sha256:aa".into(),
            digest: None,
            result: FindingResult::Pass,
            reason: "signed".into(),
            signer: None,
            rekor_log_index: None,
            sbom_digest: None,
        }
    }

    fn input(group: &str, object: serde_json::Value, dry_run: bool) -> AdmissionInput {
        let kind = GroupVersionKind { group: group.into(), version: "v1".into(), kind: "Thing".into() };
        AdmissionInput { dry_run, ..AdmissionInput::new(Operation::Create, kind, Some("ns"), "t") }
            .with_uid("req")
            .with_object(object)
    }

    #[test]
    fn event_from_admission_takes_uid_and_api_version() {
        let decision = Decision::allow();
        let e = StatusEvent::from_admission(&input("", json!({"metadata": {"uid": "u"}}), false), &decision);
        assert_eq!(e.object.api_version, "v1");
        assert_eq!(e.object.group(), "");
        assert_eq!(e.object.uid.as_deref(), Some("u"));
        let e = StatusEvent::from_admission(&input("apps", json!({"metadata": {}}), true), &decision);
        assert_eq!(e.object.api_version, "apps/v1");
        assert_eq!(e.object.group(), "apps");
        assert_eq!(e.object.uid, None);
        assert!(e.dry_run);
    }

    #[test]
    fn submit_admission_fingerprints_what_the_status_write_must_find_again() {
        let decision = Decision { findings: vec![pass_finding()], ..Decision::allow() };
        let (writer, mut worker) = StatusWriter::new(StatusConfig::default());
        let mut pod =
            input("", json!({"spec": {"containers": [{"name": "app", "image": "r/a@sha256:aa"}]}}), false);
        pod.kind.kind = "Pod".into();
        assert!(writer.submit_admission(&pod, &decision));
        let e = worker.rx.try_recv().unwrap();
        let stored =
            json!({"spec": {"nodeName": "n1", "containers": [{"name": "app", "image": "r/a@sha256:aa"}]}});
        assert_eq!(e.object.fingerprint, fingerprint::of_object("v1", "Pod", &stored));
        assert!(e.object.fingerprint.is_some());
        // No spec: nothing to compare, so nothing will be written to the object.
        let mut bare_pod = input("", json!({"metadata": {}}), false);
        bare_pod.kind.kind = "Pod".into();
        assert!(writer.submit_admission(&bare_pod, &decision));
        assert_eq!(worker.rx.try_recv().unwrap().object.fingerprint, None);
        // A kind whose status is not written (reports only): no fingerprint computed on the request path.
        let deployment = input("apps", json!({"spec": {"replicas": 1}}), false);
        assert!(writer.submit_admission(&deployment, &decision));
        assert_eq!(worker.rx.try_recv().unwrap().object.fingerprint, None);
        // A dry run is not queued at all.
        assert!(!writer.submit_admission(&input("", json!({}), true), &decision));
        assert!(worker.rx.try_recv().is_err());
    }
}
