//! Writing admission results back into the cluster, after admission and off its path.
//!
//! [`StatusWriter::submit`] only `try_send`s into a bounded channel: when the worker falls behind, events
//! are dropped and counted (`vouch_status_dropped_total`), never waited for. The [`StatusWorker`] batches
//! them: every `flush_interval` or `flush_max_events` events it server-side-applies one OpenReports report
//! per touched namespace (denials included; [`super::reports`]), and sets a `vouch.dev/Verified` condition
//! on admitted Pods and a `SupplyChainVerified` condition plus `status.attestations` on admitted custom
//! resources of configured kinds (each retried with backoff in its own task, since at CREATE the object is
//! not stored yet when admission runs; [`super::object_status`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, Semaphore};
use vouch_policies::crd::PolicyCounts;
use vouch_policies::{AdmissionInput, Decision, Finding, FindingResult};

use super::error::KubeError;
use super::event::{ObjectRef, StatusEvent};
use super::fingerprint;
use super::object_status::{
    write_object_status, ObjectUpdate, RetryConfig, StatusSchemas, StatusTarget, Written,
};
use super::reports::{worth_retrying, write_report, ReportBook};

/// Upper bound of [`StatusConfig::max_in_flight`].
const MAX_IN_FLIGHT: usize = 10_000;

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
            schemas: StatusSchemas::default(),
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
                // The whole object (a workload's fingerprint is of its whole spec); unreadable: none, so
                // no status is written.
                input.object.as_ref().and_then(|obj| fingerprint::of_object(&o.api_version, &o.kind, obj.whole().ok()?));
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
    /// What the targets' status schemas keep.
    schemas: StatusSchemas,
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
            let schemas = self.schemas.clone();
            tokio::spawn(async move {
                let outcome = write_object_status(&client, &update, &retry, timeout, &schemas).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::event::tests::input;
    use serde_json::json;
    use vouch_policies::crd::Mode;
    use vouch_policies::{ArtifactKind, ArtifactLocation};

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
