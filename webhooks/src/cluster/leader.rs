//! Leader election on a `coordination.k8s.io/v1` Lease, so that one replica (the leader) does the
//! background work the others must not repeat, and another takes over when it dies.
//!
//! The algorithm is client-go's (`tools/leaderelection` with a `LeaseLock`), over `Api<Lease>`:
//!
//! - Every `renew_every`, read the Lease. Nobody holds it (or there is none): take it. We hold it: renew
//!   it. Another replica holds it: take it only once its record has not changed for its
//!   `leaseDurationSeconds`, timed by this replica's own clock from when it first saw that record (never
//!   by comparing the holder's `renewTime` with our wall clock, so clock skew between nodes cannot cause
//!   an early takeover).
//! - Every write is a create, or a replace carrying the `resourceVersion` just read: of two replicas
//!   racing for the Lease, the API server lets one write and answers the other 409 Conflict.
//! - Taking the Lease from another holder, or from nobody, increments `leaseTransitions`.
//! - The leader stops leading once it has gone `renew_deadline` without a successful renewal (API errors,
//!   a request that hangs, a 409). `renew_deadline` is shorter than the lease duration, so it has stopped
//!   before any other replica may take over. If its record is still on the Lease afterwards, it takes it
//!   back on a later round (through a resourceVersion-checked write, so never alongside another leader).
//! - On shutdown the leader releases the Lease (clears the holder), so that another replica can take
//!   over at once instead of after the lease duration.
//!
//! RBAC: `get`, `create` and `update` on `leases` in `coordination.k8s.io`, in the Lease's namespace.
//!
//! ```no_run
//! # async fn run(client: kube::Client) -> Result<(), vouch_webhooks::cluster::LeaderConfigError> {
//! use vouch_webhooks::cluster::{replica_name, spawn_leader_election, LeaderConfig};
//!
//! let config = LeaderConfig::new("vouch-system", "vouch-scanner", replica_name());
//! let shutdown = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! let election = spawn_leader_election(client, config, shutdown)?;
//! let mut leading = election.leading.clone();
//! tokio::spawn(async move {
//!     // Each time this replica becomes the leader: scan until it is not the leader any more.
//!     while leading.wait_for(|leads| *leads).await.is_ok() {
//!         // ... start the scan ...
//!         let _ = leading.wait_for(|leads| !*leads).await;
//!         // ... stop the scan ...
//!     }
//! });
//! // After shutdown the task releases the Lease: wait for that before exiting.
//! let _ = election.task.await;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Where the Lease is, who this replica is, and the timing of the election.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderConfig {
    /// Namespace of the Lease (the release namespace).
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity, unique among the replicas (the pod name).
    pub identity: String,
    /// How long a holder keeps the Lease without renewing it before another replica may take it
    /// (written to `leaseDurationSeconds`, so whole seconds).
    pub lease_duration: Duration,
    /// How long the leader goes on leading without a successful renewal; shorter than `lease_duration`
    /// by a margin for a slow write and scheduling delays.
    pub renew_deadline: Duration,
    /// How often the leader renews and the other replicas try to take the Lease.
    pub renew_every: Duration,
}

impl LeaderConfig {
    /// client-go's default lease duration.
    pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
    /// client-go's default renew deadline.
    pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
    /// client-go's default retry period.
    pub const DEFAULT_RENEW_EVERY: Duration = Duration::from_secs(2);

    /// The Lease `namespace/lease_name` for `identity`, with client-go's default timing (15 s lease,
    /// 10 s renew deadline, a round every 2 s).
    #[must_use]
    pub fn new(
        namespace: impl Into<String>,
        lease_name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            lease_name: lease_name.into(),
            identity: identity.into(),
            lease_duration: Self::DEFAULT_LEASE_DURATION,
            renew_deadline: Self::DEFAULT_RENEW_DEADLINE,
            renew_every: Self::DEFAULT_RENEW_EVERY,
        }
    }

    /// Every problem with this configuration (empty names, timing out of order), all at once.
    pub fn validate(&self) -> Result<(), LeaderConfigError> {
        let mut problems = Vec::new();
        for (field, value) in
            [("namespace", &self.namespace), ("lease name", &self.lease_name), ("identity", &self.identity)]
        {
            if value.trim().is_empty() {
                problems.push(format!("{field} is empty"));
            }
        }
        if self.lease_duration.is_zero() {
            problems.push("lease duration is zero".to_owned());
        } else if self.lease_duration.subsec_nanos() != 0 {
            problems
                .push(format!("lease duration {:?} is not a whole number of seconds", self.lease_duration));
        } else if i32::try_from(self.lease_duration.as_secs()).is_err() {
            problems.push(format!("lease duration {:?} is too long", self.lease_duration));
        }
        if self.renew_every.is_zero() {
            problems.push("renew_every is zero".to_owned());
        }
        if !(self.renew_every < self.renew_deadline && self.renew_deadline < self.lease_duration) {
            problems.push(format!(
                "renew_every ({:?}) < renew_deadline ({:?}) < lease_duration ({:?}) does not hold",
                self.renew_every, self.renew_deadline, self.lease_duration
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LeaderConfigError { problems })
        }
    }

    /// `leaseDurationSeconds` as written (validated to fit).
    fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// A [`LeaderConfig`] that cannot be used; every problem is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid leader election config: {}", problems.join("; "))]
pub struct LeaderConfigError {
    /// What is wrong, one entry per problem.
    pub problems: Vec<String>,
}

/// A running election.
#[derive(Debug)]
pub struct LeaderElection {
    /// `true` while this replica leads. Turns false when another replica took the Lease, when renewing
    /// failed for `renew_deadline`, and on shutdown.
    pub leading: watch::Receiver<bool>,
    /// The election task; it ends after shutdown, once the Lease is released (await it before exiting).
    pub task: JoinHandle<()>,
}

/// Start electing a leader on the Lease `config` names, until `shutdown` completes; then release the
/// Lease if this replica holds it. Fails only on an invalid `config` (before anything is spawned).
pub fn spawn_leader_election(
    client: Client,
    config: LeaderConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<LeaderElection, LeaderConfigError> {
    config.validate()?;
    let (tx, leading) = watch::channel(false);
    let api = Api::<Lease>::namespaced(client, &config.namespace);
    let task = tokio::spawn(Election::new(api, config, tx).run(shutdown));
    Ok(LeaderElection { leading, task })
}

/// What one round found.
enum Round {
    /// This replica holds the Lease now (acquired or renewed).
    Holding,
    /// Another replica holds it, and its record has not expired.
    Held,
    /// Another replica wrote the Lease between this replica's read and write (409 Conflict): nothing
    /// changed for this replica; the next round reads again.
    Conflict,
    /// The API server could not be asked or answered with an error (or the round took too long).
    Failed(String),
}

struct Election {
    api: Api<Lease>,
    config: LeaderConfig,
    tx: watch::Sender<bool>,
    /// The record last seen (its resourceVersion) and when this replica first saw it.
    observed: Option<(String, Instant)>,
    /// While leading: when the last successful renewal started (the write came after it).
    renewed: Option<Instant>,
    /// The Lease as this replica last wrote it (for the release).
    written: Option<Lease>,
}

impl Election {
    fn new(api: Api<Lease>, config: LeaderConfig, tx: watch::Sender<bool>) -> Self {
        Self { api, config, tx, observed: None, renewed: None, written: None }
    }

    async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut next_round = Instant::now();
        loop {
            let step_down_at = self.renewed.map(|at| at + self.config.renew_deadline);
            let round = async {
                tokio::time::sleep_until(next_round).await;
                let started = Instant::now();
                let found =
                    match tokio::time::timeout(self.config.renew_every, self.try_acquire_or_renew()).await {
                        Ok(found) => found,
                        Err(_) => Round::Failed(format!("no answer within {:?}", self.config.renew_every)),
                    };
                (started, found)
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = sleep_until_some(step_down_at) => {
                    self.stop_leading("could not renew the lease within the renew deadline");
                }
                (started, found) = round => {
                    next_round = started + self.config.renew_every;
                    match found {
                        Round::Holding => self.lead(started),
                        Round::Held => self.stop_leading("another replica holds the lease"),
                        // A leader that keeps failing steps down at its renew deadline (the arm above).
                        Round::Conflict => {
                            tracing::debug!(lease = %self.config.lease_name, "lease written by another replica meanwhile");
                        }
                        Round::Failed(reason) => {
                            tracing::warn!(lease = %self.config.lease_name, %reason, "leader election round failed");
                        }
                    }
                }
            }
        }
        if self.renewed.is_some() {
            self.release().await;
            self.stop_leading("shutting down");
        }
    }

    /// Read the Lease and take or renew it if this replica may.
    async fn try_acquire_or_renew(&mut self) -> Round {
        let name = self.config.lease_name.clone();
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let current = match self.api.get_opt(&name).await {
            Ok(lease) => lease,
            Err(e) => {
                return Round::Failed(format!("cannot read lease {}/{name}: {e}", self.config.namespace))
            }
        };
        let Some(current) = current else {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(name.clone()), ..ObjectMeta::default() },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(self.config.lease_duration_seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return self.written(self.api.create(&PostParams::default(), &lease).await);
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        let ours = holder == Some(self.config.identity.as_str());
        let observed_at = self.observe(&current);
        if holder.is_some() && !ours {
            let duration = spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .map_or(self.config.lease_duration, Duration::from_secs);
            if observed_at + duration > Instant::now() {
                return Round::Held;
            }
        }
        let lease = Lease {
            // The resourceVersion read: a write by anyone since makes this replace fail with 409.
            metadata: current.metadata,
            spec: Some(LeaseSpec {
                holder_identity: Some(self.config.identity.clone()),
                lease_duration_seconds: Some(self.config.lease_duration_seconds()),
                acquire_time: if ours { spec.acquire_time } else { Some(now.clone()) },
                renew_time: Some(now),
                lease_transitions: if ours {
                    spec.lease_transitions
                } else {
                    Some(spec.lease_transitions.unwrap_or(0).saturating_add(1))
                },
                ..spec
            }),
        };
        self.written(self.api.replace(&name, &PostParams::default(), &lease).await)
    }

    /// When this replica first saw the Lease as it is now (by resourceVersion).
    fn observe(&mut self, lease: &Lease) -> Instant {
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        match &self.observed {
            Some((seen, at)) if *seen == version && !version.is_empty() => *at,
            _ => {
                let now = Instant::now();
                self.observed = Some((version, now));
                now
            }
        }
    }

    /// The outcome of a create or replace of the Lease with this replica as holder.
    fn written(&mut self, result: Result<Lease, kube::Error>) -> Round {
        match result {
            Ok(lease) => {
                self.observe(&lease);
                self.written = Some(lease);
                Round::Holding
            }
            // Another replica wrote first (409 on replace; 409 AlreadyExists on create).
            Err(kube::Error::Api(status)) if status.code == 409 => Round::Conflict,
            Err(e) => Round::Failed(format!(
                "cannot write lease {}/{}: {e}",
                self.config.namespace, self.config.lease_name
            )),
        }
    }

    fn lead(&mut self, renewal_started: Instant) {
        if self.renewed.is_none() {
            tracing::info!(lease = %self.config.lease_name, identity = %self.config.identity, "leading");
        }
        self.renewed = Some(renewal_started);
        self.publish(true);
    }

    fn stop_leading(&mut self, reason: &str) {
        if self.renewed.take().is_some() {
            tracing::info!(lease = %self.config.lease_name, identity = %self.config.identity, reason, "stopped leading");
        }
        self.publish(false);
    }

    /// Tell the receivers, only when the value changes (a renewal is no news).
    fn publish(&self, leading: bool) {
        self.tx.send_if_modified(|current| std::mem::replace(current, leading) != leading);
    }

    /// Clear the holder of the Lease this replica last wrote (a 409 means someone else wrote since: it is
    /// not ours to release). Bounded by `renew_every`; a failure only delays the next leader.
    async fn release(&mut self) {
        let Some(mut lease) = self.written.take() else { return };
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            // client-go's release: the record expires at once for anyone still timing it.
            spec.lease_duration_seconds = Some(1);
            spec.acquire_time = Some(now.clone());
            spec.renew_time = Some(now);
        }
        let params = PostParams::default();
        let release = self.api.replace(&self.config.lease_name, &params, &lease);
        match tokio::time::timeout(self.config.renew_every, release).await {
            Ok(Ok(_)) => tracing::debug!(lease = %self.config.lease_name, "released the lease"),
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.config.lease_name, error = %e, "could not release the lease")
            }
            Err(_) => tracing::warn!(lease = %self.config.lease_name, "releasing the lease timed out"),
        }
    }
}

/// Sleep until `at`, or forever without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    //! The election against a fake API server for one Lease (kube's tower-test mock), in paused time: it
    //! keeps the Lease with resourceVersion semantics (409 on a stale replace) and records every request.
    use super::*;
    use hyper::{Request, Response};
    use kube::client::Body;
    use serde_json::{json, Value};
    use std::pin::pin;
    use std::sync::{Arc, Mutex};

    const PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/vouch-system/leases/vouch-scanner";
    const ME: &str = "vouch-0";

    /// One request as the fake saw it.
    #[derive(Debug, Clone)]
    struct Seen {
        method: String,
        path: String,
        body: Value,
        at: Instant,
    }

    /// How the fake fails every request, when it does.
    #[derive(Debug, Clone, Copy)]
    enum Fault {
        Status(u16),
        Hang,
    }

    #[derive(Default)]
    struct Store {
        lease: Option<Value>,
        version: u64,
        seen: Vec<Seen>,
        fault: Option<Fault>,
    }

    #[derive(Clone, Default)]
    struct FakeApi(Arc<Mutex<Store>>);

    impl FakeApi {
        /// Another replica's write: `holder` (none: released) with these transitions, as a new version.
        fn write(&self, holder: Option<&str>, transitions: i32) {
            let mut store = self.0.lock().unwrap();
            store.version += 1;
            let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
            store.lease = Some(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "vouch-scanner", "namespace": "vouch-system",
                             "resourceVersion": store.version.to_string()},
                "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "leaseTransitions": transitions,
                         "acquireTime": now, "renewTime": now},
            }));
        }

        fn fail(&self, fault: Option<Fault>) {
            self.0.lock().unwrap().fault = fault;
        }

        fn seen(&self) -> Vec<Seen> {
            self.0.lock().unwrap().seen.clone()
        }

        /// The writes (create, replace) this replica sent.
        fn writes(&self) -> Vec<Seen> {
            self.seen().into_iter().filter(|s| s.method != "GET").collect()
        }

        fn answer(&self, method: &str, path: &str, body: &Value) -> Option<(u16, Value)> {
            let mut store = self.0.lock().unwrap();
            match store.fault {
                Some(Fault::Hang) => return None,
                Some(Fault::Status(code)) => return Some((code, status(code, "InternalError"))),
                None => {}
            }
            let current = store.lease.as_ref().and_then(|l| l["metadata"]["resourceVersion"].as_str());
            let current = current.map(str::to_owned);
            match (method, path, current) {
                ("GET", PATH, Some(_)) => store.lease.clone().map(|l| (200, l)),
                ("GET", PATH, None) => Some((404, status(404, "NotFound"))),
                ("POST", p, None) if PATH.starts_with(p) => Some(store.accept(body, 201)),
                ("POST", _, Some(_)) => Some((409, status(409, "AlreadyExists"))),
                ("PUT", PATH, Some(v)) if body["metadata"]["resourceVersion"].as_str() == Some(&v) => {
                    Some(store.accept(body, 200))
                }
                ("PUT", PATH, _) => Some((409, status(409, "Conflict"))),
                _ => Some((400, status(400, "BadRequest"))),
            }
        }

        /// A kube client talking to this fake.
        fn client(&self) -> Client {
            let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
            let api = self.clone();
            tokio::spawn(async move {
                let mut handle = pin!(handle);
                let mut hanging = Vec::new();
                while let Some((request, send)) = handle.next_request().await {
                    let method = request.method().to_string();
                    let path = request.uri().path().to_owned();
                    let bytes = request.into_body().collect_bytes().await.unwrap();
                    let body =
                        if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
                    let answer = api.answer(&method, &path, &body);
                    api.0.lock().unwrap().seen.push(Seen { method, path, body, at: Instant::now() });
                    match answer {
                        Some((code, body)) => send.send_response(
                            Response::builder()
                                .status(code)
                                .header("content-type", "application/json")
                                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                                .unwrap(),
                        ),
                        None => hanging.push(send),
                    }
                }
            });
            Client::new(service, "default")
        }
    }

    impl Store {
        /// Store `body` as the next version and answer it.
        fn accept(&mut self, body: &Value, code: u16) -> (u16, Value) {
            self.version += 1;
            let mut lease = body.clone();
            lease["metadata"]["resourceVersion"] = json!(self.version.to_string());
            lease["metadata"]["namespace"] = json!("vouch-system");
            self.lease = Some(lease.clone());
            (code, lease)
        }
    }

    fn status(code: u16, reason: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": reason, "reason": reason, "code": code})
    }

    fn config() -> LeaderConfig {
        LeaderConfig {
            namespace: "vouch-system".into(),
            lease_name: "vouch-scanner".into(),
            identity: ME.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            renew_every: Duration::from_secs(2),
        }
    }

    /// An election against `api` and the sender that shuts it down.
    fn start(api: &FakeApi) -> (LeaderElection, tokio::sync::oneshot::Sender<()>) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let election = spawn_leader_election(api.client(), config(), async {
            let _ = stopped.await;
        })
        .unwrap();
        (election, stop)
    }

    /// Wait (in virtual time, at most two minutes of it) until `leading` is what the election says.
    async fn until_leading(election: &mut LeaderElection, leading: bool) {
        let wait = election.leading.wait_for(|l| *l == leading);
        let answer = tokio::time::timeout(Duration::from_secs(120), wait).await;
        assert!(answer.is_ok_and(|r| r.is_ok()), "leading never became {leading}");
    }

    fn spec(seen: &Seen) -> &Value {
        &seen.body["spec"]
    }

    #[tokio::test(start_paused = true)]
    async fn mock_creates_the_lease_when_there_is_none() {
        let api = FakeApi::default();
        let (mut election, _stop) = start(&api);
        until_leading(&mut election, true).await;
        let seen = api.seen();
        let requests: Vec<_> = seen.iter().map(|s| format!("{} {}", s.method, s.path)).collect();
        assert_eq!(
            requests,
            [
                format!("GET {PATH}"),
                "POST /apis/coordination.k8s.io/v1/namespaces/vouch-system/leases".to_owned()
            ]
        );
        let spec = spec(&seen[1]);
        assert_eq!(spec["holderIdentity"], ME);
        assert_eq!(spec["leaseDurationSeconds"], 15);
        assert_eq!(spec["leaseTransitions"], 0);
        assert!(spec["renewTime"].is_string() && spec["acquireTime"].is_string(), "{spec}");
    }

    #[tokio::test(start_paused = true)]
    async fn mock_acquires_a_lease_nobody_holds() {
        let api = FakeApi::default();
        api.write(None, 3);
        let (mut election, _stop) = start(&api);
        until_leading(&mut election, true).await;
        let writes = api.writes();
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert_eq!((writes[0].method.as_str(), writes[0].path.as_str()), ("PUT", PATH));
        assert_eq!(writes[0].body["metadata"]["resourceVersion"], "1", "a replace of the version read");
        assert_eq!(spec(&writes[0])["holderIdentity"], ME);
        assert_eq!(spec(&writes[0])["leaseTransitions"], 4, "a new holder is a transition");
    }

    #[tokio::test(start_paused = true)]
    async fn mock_does_not_acquire_a_lease_another_holder_keeps_renewing() {
        let api = FakeApi::default();
        api.write(Some("vouch-1"), 1);
        let (election, _stop) = start(&api);
        // The other replica renews every 2 s for a minute: four lease durations.
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            api.write(Some("vouch-1"), 1);
        }
        assert!(api.writes().is_empty(), "{:?}", api.writes());
        assert!(api.seen().len() >= 25, "it kept looking: {}", api.seen().len());
        assert!(!*election.leading.borrow());
        assert!(!election.leading.has_changed().unwrap(), "never led, not even briefly");
    }

    #[tokio::test(start_paused = true)]
    async fn mock_takes_over_a_lease_its_holder_stopped_renewing() {
        let api = FakeApi::default();
        api.write(Some("vouch-1"), 1);
        let started = Instant::now();
        let (mut election, _stop) = start(&api);
        until_leading(&mut election, true).await;
        let writes = api.writes();
        assert_eq!(writes.len(), 1, "{writes:?}");
        // Not before the record stood unchanged for its 15 s; at the first round after that.
        let waited = writes[0].at - started;
        assert!(waited >= Duration::from_secs(15) && waited <= Duration::from_secs(17), "{waited:?}");
        assert_eq!(writes[0].method, "PUT");
        assert_eq!(writes[0].body["metadata"]["resourceVersion"], "1");
        assert_eq!(spec(&writes[0])["holderIdentity"], ME);
        assert_eq!(spec(&writes[0])["leaseTransitions"], 2, "taking over is a transition");
    }

    #[tokio::test(start_paused = true)]
    async fn mock_renews_while_leading() {
        let api = FakeApi::default();
        let (mut election, _stop) = start(&api);
        until_leading(&mut election, true).await;
        election.leading.borrow_and_update();
        tokio::time::sleep(Duration::from_secs(31)).await;
        let writes = api.writes();
        // The create, then a replace every 2 s, each of the version the previous write made.
        assert_eq!(writes.len(), 16, "{writes:?}");
        let acquired = spec(&writes[0])["acquireTime"].clone();
        for (i, pair) in writes.windows(2).enumerate() {
            assert_eq!(pair[1].method, "PUT");
            assert_eq!(pair[1].at - pair[0].at, Duration::from_secs(2));
            assert_eq!(pair[1].body["metadata"]["resourceVersion"], (i + 1).to_string());
            assert_eq!(spec(&pair[1])["holderIdentity"], ME);
            assert_eq!(spec(&pair[1])["acquireTime"], acquired, "a renewal is no new acquisition");
            assert_eq!(spec(&pair[1])["leaseTransitions"], 0, "nor a transition");
        }
        assert!(*election.leading.borrow());
        assert!(!election.leading.has_changed().unwrap(), "leading throughout");
    }

    #[tokio::test(start_paused = true)]
    async fn mock_releases_the_lease_on_shutdown() {
        let api = FakeApi::default();
        let (mut election, stop) = start(&api);
        until_leading(&mut election, true).await;
        stop.send(()).unwrap();
        election.task.await.unwrap();
        assert!(!*election.leading.borrow());
        let writes = api.writes();
        let release = writes.last().unwrap();
        assert_eq!((release.method.as_str(), release.path.as_str()), ("PUT", PATH));
        assert_eq!(release.body["metadata"]["resourceVersion"], "1", "the version it wrote last");
        assert!(spec(release)["holderIdentity"].is_null(), "{}", release.body);
        assert_eq!(spec(release)["leaseTransitions"], 0);

        // Another replica takes the released Lease at its first look.
        let (mut next, _stop) = {
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let config = LeaderConfig { identity: "vouch-1".into(), ..config() };
            let election = spawn_leader_election(api.client(), config, async {
                let _ = stopped.await;
            })
            .unwrap();
            (election, stop)
        };
        let started = Instant::now();
        until_leading(&mut next, true).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn mock_steps_down_when_renewals_fail_for_the_renew_deadline() {
        for fault in [Fault::Status(500), Fault::Hang] {
            let api = FakeApi::default();
            let (mut election, _stop) = start(&api);
            until_leading(&mut election, true).await;
            let renewed = api.writes()[0].at;
            api.fail(Some(fault));
            until_leading(&mut election, false).await;
            // At the renew deadline: before the lease duration, when another replica may take over.
            assert_eq!(Instant::now() - renewed, Duration::from_secs(10), "{fault:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn mock_takes_the_lease_back_when_the_api_recovers_and_nobody_took_it() {
        let api = FakeApi::default();
        let (mut election, _stop) = start(&api);
        until_leading(&mut election, true).await;
        api.fail(Some(Fault::Status(503)));
        until_leading(&mut election, false).await;
        api.fail(None);
        until_leading(&mut election, true).await;
        let last = api.writes().pop().unwrap();
        assert_eq!(spec(&last)["leaseTransitions"], 0, "still its own lease: no transition");
    }

    #[tokio::test(start_paused = true)]
    async fn mock_stops_leading_when_another_replica_holds_the_lease() {
        let api = FakeApi::default();
        let (mut election, _stop) = start(&api);
        until_leading(&mut election, true).await;
        api.write(Some("vouch-1"), 1);
        until_leading(&mut election, false).await;
        let writes = api.writes().len();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(api.writes().len(), writes, "it does not write over a live holder");
    }

    #[tokio::test]
    async fn config_problems_are_all_reported_and_refuse_to_start() {
        assert_eq!(config().validate(), Ok(()));
        let bad = LeaderConfig {
            identity: " ".into(),
            lease_duration: Duration::from_millis(1500),
            renew_deadline: Duration::from_secs(20),
            ..config()
        };
        let e = bad.validate().unwrap_err();
        assert_eq!(e.problems.len(), 3, "{e}");
        assert!(e.to_string().contains("identity is empty"), "{e}");
        let api = FakeApi::default();
        assert_eq!(spawn_leader_election(api.client(), bad, async {}).unwrap_err(), e);
        tokio::task::yield_now().await;
        assert!(api.seen().is_empty());
    }
}
