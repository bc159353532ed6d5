//! The policy watch: ClusterSupplyChainPolicy, SupplyChainPolicy, TrustRoot and ComplianceProfile resources
//! are reflected from
//! the cluster; whenever their specs change (and on a periodic resync, which also picks up rotated secrets)
//! they are compiled into a [`PolicySet`] that replaces the engine's, and every resource's status is
//! brought up to date: `observedGeneration`, a `Ready` condition carrying all compile problems, and, on
//! policies, this replica's evaluation counts.
//!
//! Every replica runs this watch and writes the same conditions, but counts are each replica's own: they
//! go into `status.replicaCounts.<pod name>`, written with a JSON merge patch that names only that key
//! (a merge patch leaves the other keys of a map alone), so replicas never overwrite each other's figures.
//! A replica rewrites its entry when its counts change and at least every [`WatchConfig::counts_heartbeat`];
//! an entry not rewritten for [`WatchConfig::counts_expiry`] belongs to a replica that is gone, and
//! whichever replica writes next removes it, guarded by the resourceVersion it judged by.
//!
//! Status writes change only `status`, which leaves `metadata.generation` alone; the watch keys its rebuilds
//! on generations, so its own writes do not make it rebuild.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use vouch_policies::crd::{
    ClusterSupplyChainPolicy, ComplianceProfile, ComplianceProfileStatus, Condition, PolicyCounts,
    PolicyStatus, ReplicaCounts, SupplyChainPolicy, TrustRoot, TrustRootStatus,
};
use vouch_policies::{Engine, PolicyResources, PolicySet, Secrets, TufRoots};

use super::status::PolicyCounters;

/// Kind names as [`PolicySet::problems_of`] knows them.
const CLUSTER_POLICY: &str = "ClusterSupplyChainPolicy";
const POLICY: &str = "SupplyChainPolicy";
const TRUST_ROOT: &str = "TrustRoot";
const PROFILE: &str = "ComplianceProfile";
/// A change is compiled at the latest this many debounce periods after the first event.
const MAX_DEBOUNCE_ROUNDS: u32 = 20;

/// Secret data by (namespace, name).
type SecretData = BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>;
/// What TUF gave each TrustRoot with `spec.tuf`, by name.
type TufResults = BTreeMap<String, Result<Vec<u8>, String>>;

/// Policy watch settings.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Quiet time after a change before compiling (a `kubectl apply` of many policies compiles once).
    pub debounce: Duration,
    /// Recompile and refresh statuses (counts) this often even without changes.
    pub resync: Duration,
    /// This replica rewrites its entry in a policy's `status.replicaCounts` at least this often (at the
    /// first resync after it is due), even when its counts did not change: the others see it is alive.
    pub counts_heartbeat: Duration,
    /// Other replicas' entries not rewritten for this long (by this replica's clock) are removed: their
    /// replica is gone. Never less than two heartbeats and a resync, so a live replica's entry does not
    /// expire between its writes; the margin also absorbs clock differences between nodes.
    pub counts_expiry: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            debounce: Duration::from_millis(250),
            resync: Duration::from_secs(60),
            counts_heartbeat: Duration::from_secs(5 * 60),
            counts_expiry: Duration::from_secs(15 * 60),
        }
    }
}

impl WatchConfig {
    /// [`Self::counts_expiry`], raised to two heartbeats and a resync if it is less.
    fn effective_expiry(&self) -> Duration {
        let least = self.counts_heartbeat.saturating_mul(2).saturating_add(self.resync);
        self.counts_expiry.max(least)
    }
}

/// The name this replica's counts go under in policy status: the pod name (`POD_NAME`, which the chart
/// sets from `metadata.name`; else `HOSTNAME`, which is the pod name in a pod), else the host name.
pub fn replica_name() -> String {
    let from_env = |var| std::env::var(var).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    from_env("POD_NAME")
        .or_else(|| from_env("HOSTNAME"))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "vouch".to_owned())
}

/// Watches the policy resources and keeps the engine's policies and their statuses current.
pub struct PolicyWatch {
    client: Client,
    engine: Engine,
    config: WatchConfig,
    counters: Option<ReplicaCounters>,
    tuf: Option<std::sync::Arc<TufRoots>>,
}

/// This replica's evaluation counts and the name they are written under.
#[derive(Debug, Clone)]
struct ReplicaCounters {
    replica: String,
    counters: PolicyCounters,
}

/// A policy by namespace (`None`: a cluster policy) and name, as [`PolicyCounters`] keys it.
type PolicyKey = (Option<String>, String);

/// Since when this replica has had each policy in force, and which object (uid) that was.
#[derive(Debug, Default)]
struct InForceSince(BTreeMap<PolicyKey, (Option<String>, String)>);

impl InForceSince {
    /// When this replica put the policy `key` (object `uid`) in force: `now` the first time it is seen, and
    /// again (its counts starting from 0) when another object took the name.
    fn since(&mut self, key: &PolicyKey, uid: Option<&str>, now: &str, counters: &PolicyCounters) -> String {
        match self.0.get(key) {
            Some((known, since)) if known.as_deref() == uid => return since.clone(),
            Some(_) => counters.forget(key.0.as_deref(), &key.1),
            None => {}
        }
        self.0.insert(key.clone(), (uid.map(str::to_owned), now.to_owned()));
        now.to_owned()
    }

    /// Forget the policies not in `present`, and their counts.
    fn retain(&mut self, present: &BTreeSet<PolicyKey>, counters: &PolicyCounters) {
        self.0.retain(|key, _| {
            let keep = present.contains(key);
            if !keep {
                counters.forget(key.0.as_deref(), &key.1);
            }
            keep
        });
    }
}

impl std::fmt::Debug for PolicyWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyWatch").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Start the policy watch with default settings on the current tokio runtime.
pub fn spawn_policy_watch(client: Client, engine: Engine) -> tokio::task::JoinHandle<()> {
    PolicyWatch::new(client, engine).spawn()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    ClusterPolicy = 0,
    Policy = 1,
    TrustRoot = 2,
    Profile = 3,
}

/// One resource's identity and spec generation: what a rebuild depends on.
type Fingerprint = BTreeSet<(&'static str, Option<String>, String, Option<String>, Option<i64>)>;

impl PolicyWatch {
    /// A watch over `client` feeding `engine`.
    pub fn new(client: Client, engine: Engine) -> Self {
        Self { client, engine, config: WatchConfig::default(), counters: None, tuf: None }
    }

    /// Use `config`.
    pub fn with_config(mut self, config: WatchConfig) -> Self {
        self.config = config;
        self
    }

    /// Write these evaluation counts (from the status writer) into policy status, as this replica's
    /// (`replica`, unique among the replicas: the pod name, see [`replica_name`]).
    pub fn with_counters(mut self, counters: PolicyCounters, replica: impl Into<String>) -> Self {
        self.counters = Some(ReplicaCounters { replica: replica.into(), counters });
        self
    }

    /// Follow the TUF repositories TrustRoots name (`spec.tuf`) with `tuf`, at every rebuild (each repository
    /// refreshed once its root is older than the configured refresh). Without, such TrustRoots are reported
    /// as not resolved.
    pub fn with_tuf_roots(mut self, tuf: std::sync::Arc<TufRoots>) -> Self {
        self.tuf = Some(tuf);
        self
    }

    /// Run on the current tokio runtime.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    /// Run until the watch streams end (they retry with backoff, so in practice until aborted).
    pub async fn run(self) {
        let (cluster_store, cluster_writer) = reflector::store::<ClusterSupplyChainPolicy>();
        let (policy_store, policy_writer) = reflector::store::<SupplyChainPolicy>();
        let (root_store, root_writer) = reflector::store::<TrustRoot>();
        let (profile_store, profile_writer) = reflector::store::<ComplianceProfile>();
        let cfg = watcher::Config::default;
        let mut events = futures::stream::select_all([
            tagged(
                Which::ClusterPolicy,
                reflector::reflector(
                    cluster_writer,
                    watcher(Api::all(self.client.clone()), cfg()).default_backoff(),
                ),
            ),
            tagged(
                Which::Policy,
                reflector::reflector(
                    policy_writer,
                    watcher(Api::all(self.client.clone()), cfg()).default_backoff(),
                ),
            ),
            tagged(
                Which::TrustRoot,
                reflector::reflector(
                    root_writer,
                    watcher(Api::all(self.client.clone()), cfg()).default_backoff(),
                ),
            ),
            tagged(
                Which::Profile,
                reflector::reflector(
                    profile_writer,
                    watcher(Api::all(self.client.clone()), cfg()).default_backoff(),
                ),
            ),
        ]);
        let stores = Stores {
            clusters: cluster_store,
            policies: policy_store,
            roots: root_store,
            profiles: profile_store,
        };
        let mut synced = [false; 4];
        let mut last: Option<Fingerprint> = None;
        let mut known_secrets = SecretData::new();
        let mut known_tuf = TufResults::new();
        let mut in_force_since = InForceSince::default();
        let mut resync = tokio::time::interval(self.config.resync.max(Duration::from_secs(1)));
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await;
        loop {
            let mut forced = false;
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok((which, init_done))) => {
                        if init_done {
                            synced[which as usize] = true;
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "policy watch error; retrying with backoff");
                        continue;
                    }
                    None => return,
                },
                _ = resync.tick() => forced = true,
            }
            if !synced.iter().all(|s| *s) {
                continue;
            }
            // Debounce: keep absorbing events until the stream is quiet (but not for ever: a flapping
            // object must not hold back every other change).
            let give_up =
                tokio::time::Instant::now() + self.config.debounce.saturating_mul(MAX_DEBOUNCE_ROUNDS);
            loop {
                if tokio::time::Instant::now() >= give_up {
                    break;
                }
                tokio::select! {
                    event = events.next() => match event {
                        Some(Ok((which, init_done))) => {
                            if init_done {
                                synced[which as usize] = true;
                            }
                        }
                        Some(Err(e)) => tracing::warn!(error = %e, "policy watch error; retrying with backoff"),
                        None => return,
                    },
                    _ = tokio::time::sleep(self.config.debounce) => break,
                }
            }
            let fingerprint = stores.fingerprint();
            let changed = last.as_ref() != Some(&fingerprint);
            if forced || changed {
                self.rebuild(&stores, &mut known_secrets, &mut known_tuf, &mut in_force_since, changed).await;
                last = Some(fingerprint);
            }
        }
    }

    /// Compile what the stores hold, put it in force, and update statuses. `changed`: the resources changed
    /// since the last rebuild; otherwise (a resync) only a change of the secrets they name or of what a TUF
    /// repository gave counts as one.
    async fn rebuild(
        &self,
        stores: &Stores,
        known_secrets: &mut SecretData,
        known_tuf: &mut TufResults,
        since: &mut InForceSince,
        changed: bool,
    ) {
        let mut resources = stores.resources();
        let secrets_before = known_secrets.clone();
        let secrets = self.fetch_secrets(&resources, known_secrets).await;
        if let Some(tuf) = &self.tuf {
            tuf.resolve(&mut resources, &secrets).await;
        }
        let tuf_changed = *known_tuf != resources.tuf_trusted_roots;
        if tuf_changed {
            known_tuf.clone_from(&resources.tuf_trusted_roots);
        }
        let changed = changed || *known_secrets != secrets_before || tuf_changed;
        let set = PolicySet::compile(resources, &secrets);
        tracing::info!(
            policies = set.policies().len(),
            trust_roots = set.trust_roots().len(),
            compliance_profiles = set.profiles().len(),
            rejected = set.problems().len(),
            "policies compiled from the cluster"
        );
        for problem in set.problems() {
            tracing::warn!(%problem, "policy left out");
        }
        // Taken before the set is in force: what is counted under it is counted since then.
        let now = Utc::now();
        if changed {
            self.engine.replace_policies(set);
        } else {
            self.engine.refresh_policies(set);
        }
        let set = self.engine.policies();
        self.write_statuses(stores, &set, since, now).await;
    }

    /// The secrets the resources name. A secret that cannot be read right now (network, server error)
    /// keeps its last known content, so an API hiccup does not take a working policy out of force; one that
    /// is gone is left out (compilation then reports it).
    async fn fetch_secrets(&self, resources: &PolicyResources, known: &mut SecretData) -> Secrets {
        let mut secrets = Secrets::none();
        let wanted = resources.secret_refs();
        known.retain(|key, _| wanted.contains(key));
        for (ns, name) in wanted {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
            let key = (ns.clone(), name.clone());
            match api.get_opt(&name).await {
                Ok(Some(secret)) => {
                    let data: BTreeMap<String, Vec<u8>> =
                        secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
                    known.insert(key.clone(), data);
                }
                Ok(None) => {
                    tracing::warn!(namespace = %ns, secret = %name, "policy secret not found");
                    known.remove(&key);
                }
                Err(e) => {
                    tracing::warn!(namespace = %ns, secret = %name, error = %e,
                        kept = known.contains_key(&key), "cannot read policy secret; keeping the last known content");
                }
            }
            if let Some(data) = known.get(&key) {
                secrets.insert(&ns, &name, data.clone());
            }
        }
        secrets
    }

    async fn write_statuses(
        &self,
        stores: &Stores,
        set: &PolicySet,
        since: &mut InForceSince,
        now_time: DateTime<Utc>,
    ) {
        let now = rfc3339(now_time);
        let mut present = BTreeSet::new();
        for p in stores.clusters.state() {
            let name = p.name_any();
            let key = (None, name.clone());
            let counts = self.counts_since(since, &key, p.meta().uid.as_deref(), &now);
            let patch =
                self.policy_status(set, CLUSTER_POLICY, &key, p.meta(), p.status.as_ref(), counts, now_time);
            present.insert(key);
            if let Some(patch) = patch {
                let api: Api<ClusterSupplyChainPolicy> = Api::all(self.client.clone());
                patch_policy_status(&api, &name, patch, CLUSTER_POLICY).await;
            }
        }
        for p in stores.policies.state() {
            let ns = p.namespace().unwrap_or_default();
            let name = p.name_any();
            let key = (Some(ns.clone()), name.clone());
            let counts = self.counts_since(since, &key, p.meta().uid.as_deref(), &now);
            let patch = self.policy_status(set, POLICY, &key, p.meta(), p.status.as_ref(), counts, now_time);
            present.insert(key);
            if let Some(patch) = patch {
                let api: Api<SupplyChainPolicy> = Api::namespaced(self.client.clone(), &ns);
                patch_policy_status(&api, &name, patch, POLICY).await;
            }
        }
        if let Some(c) = &self.counters {
            since.retain(&present, &c.counters);
        }
        for t in stores.roots.state() {
            let name = t.name_any();
            let problems = set.problems_of(TRUST_ROOT, None, &name);
            let generation = t.meta().generation;
            let old = t.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
            let desired = TrustRootStatus {
                observed_generation: generation,
                conditions: vec![keep_transition(Condition::ready(generation, &problems, &now), old)],
                fingerprint: set.trust_roots().get(&name).map(|r| r.root.fingerprint().to_string()),
            };
            if t.status.as_ref() != Some(&desired) {
                let api: Api<TrustRoot> = Api::all(self.client.clone());
                patch_status(&api, &name, &desired, TRUST_ROOT).await;
            }
        }
        for p in stores.profiles.state() {
            let name = p.name_any();
            let problems = set.problems_of(PROFILE, None, &name);
            let generation = p.meta().generation;
            let old = p.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
            let mut desired = ComplianceProfileStatus::ready(generation, &problems, &now);
            desired.conditions = desired.conditions.into_iter().map(|c| keep_transition(c, old)).collect();
            if p.status.as_ref() != Some(&desired) {
                let api: Api<ComplianceProfile> = Api::all(self.client.clone());
                patch_status(&api, &name, &desired, PROFILE).await;
            }
        }
    }

    /// This replica's counts of the policy `key` and since when it has had it in force (`None` without
    /// counters).
    fn counts_since(
        &self,
        since: &mut InForceSince,
        key: &PolicyKey,
        uid: Option<&str>,
        now: &str,
    ) -> Option<(String, PolicyCounts)> {
        let c = self.counters.as_ref()?;
        let since = since.since(key, uid, now, &c.counters);
        Some((since, c.counters.get(key.0.as_deref(), &key.1)))
    }

    /// The status write a policy needs, if any: the `Ready` condition and observed generation, and in
    /// `replicaCounts` this replica's entry when it changed or is due, and removals of expired entries.
    #[allow(clippy::too_many_arguments)]
    fn policy_status(
        &self,
        set: &PolicySet,
        kind: &str,
        (namespace, name): &PolicyKey,
        meta: &kube::api::ObjectMeta,
        current: Option<&PolicyStatus>,
        counts: Option<(String, PolicyCounts)>,
        now: DateTime<Utc>,
    ) -> Option<PolicyStatusPatch> {
        let problems = set.problems_of(kind, namespace.as_deref(), name);
        let old = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
        let generation = meta.generation;
        let conditions = vec![keep_transition(Condition::ready(generation, &problems, &rfc3339(now)), old)];
        let replica_counts = match (&self.counters, counts) {
            (Some(c), Some((since, counts))) => {
                let entries = current.map(|s| &s.replica_counts);
                let mine = ReplicaCounts { since, updated: rfc3339(now), counts };
                replica_counts_patch(entries.unwrap_or(&BTreeMap::new()), &c.replica, mine, now, &self.config)
            }
            _ => BTreeMap::new(),
        };
        let unchanged =
            current.is_some_and(|s| s.observed_generation == generation && s.conditions == conditions);
        if unchanged && replica_counts.is_empty() {
            return None;
        }
        Some(PolicyStatusPatch {
            observed_generation: generation,
            conditions,
            replica_counts,
            resource_version: meta.resource_version.clone(),
        })
    }
}

/// The changes to a policy's `status.replicaCounts` (`None`: remove the entry): this replica's entry
/// `mine` when it is missing, its counts or `since` differ, or it was written a heartbeat or more ago;
/// removal of other replicas' entries last written longer than the expiry ago (or at an unreadable time).
fn replica_counts_patch(
    current: &BTreeMap<String, ReplicaCounts>,
    replica: &str,
    mine: ReplicaCounts,
    now: DateTime<Utc>,
    config: &WatchConfig,
) -> BTreeMap<String, Option<ReplicaCounts>> {
    let age = |entry: &ReplicaCounts| {
        DateTime::parse_from_rfc3339(&entry.updated)
            .ok()
            .map(|t| now.signed_duration_since(t).to_std().unwrap_or(Duration::ZERO))
    };
    let mut patch = BTreeMap::new();
    let due = match current.get(replica) {
        None => true,
        Some(entry) => {
            entry.counts != mine.counts
                || entry.since != mine.since
                || age(entry).is_none_or(|a| a >= config.counts_heartbeat)
        }
    };
    if due {
        patch.insert(replica.to_owned(), Some(mine));
    }
    let expiry = config.effective_expiry();
    for (name, entry) in current {
        if name != replica && age(entry).is_none_or(|a| a > expiry) {
            patch.insert(name.clone(), None);
        }
    }
    patch
}

/// A merge patch of a policy's status.
#[derive(Debug, Clone)]
struct PolicyStatusPatch {
    observed_generation: Option<i64>,
    conditions: Vec<Condition>,
    /// Only the entries written (`Some`) or removed (`None`); the others are left alone.
    replica_counts: BTreeMap<String, Option<ReplicaCounts>>,
    /// The resourceVersion of the copy the removals were judged by.
    resource_version: Option<String>,
}

impl PolicyStatusPatch {
    /// Whether the patch removes other replicas' entries.
    fn removes(&self) -> bool {
        self.replica_counts.values().any(Option::is_none)
    }

    /// The patch without its removals.
    fn without_removals(mut self) -> Self {
        self.replica_counts.retain(|_, entry| entry.is_some());
        self
    }

    /// The merge patch; one that removes entries is guarded by the resourceVersion they were judged by (a
    /// replica that wrote since is alive and keeps its entry).
    fn to_json(&self) -> serde_json::Value {
        let mut status = json!({ "conditions": self.conditions });
        if let Some(generation) = self.observed_generation {
            status["observedGeneration"] = json!(generation);
        }
        if !self.replica_counts.is_empty() {
            status["replicaCounts"] = json!(self.replica_counts);
        }
        let mut patch = json!({ "status": status });
        if self.removes() {
            patch["metadata"] = json!({ "resourceVersion": self.resource_version });
        }
        patch
    }
}

fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Keep the previous transition time while the condition's status is unchanged (API conventions).
fn keep_transition(mut condition: Condition, old: &[Condition]) -> Condition {
    if let Some(prev) = old.iter().find(|c| c.type_ == condition.type_ && c.status == condition.status) {
        condition.last_transition_time = prev.last_transition_time.clone();
    }
    condition
}

/// Write a policy's status. When removals of expired entries meet a conflict, the copy they were judged by
/// is out of date (that replica may have written since): this replica's own entry is written without them,
/// and the next resync judges again.
async fn patch_policy_status<K>(api: &Api<K>, name: &str, patch: PolicyStatusPatch, kind: &str)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = PatchParams::default();
    match api.patch_status(name, &params, &Patch::Merge(patch.to_json())).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 && patch.removes() => {
            tracing::debug!(
                kind,
                name,
                "policy status changed since it was read; expired entries are kept for now"
            );
            let patch = patch.without_removals();
            if let Err(e) = api.patch_status(name, &params, &Patch::Merge(patch.to_json())).await {
                tracing::warn!(kind, name, error = %e, "cannot write status");
            }
        }
        Err(e) => tracing::warn!(kind, name, error = %e, "cannot write status"),
    }
}

async fn patch_status<K>(api: &Api<K>, name: &str, status: &impl serde::Serialize, kind: &str)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = Patch::Merge(json!({ "status": status }));
    if let Err(e) = api.patch_status(name, &PatchParams::default(), &patch).await {
        tracing::warn!(kind, name, error = %e, "cannot write status");
    }
}

struct Stores {
    clusters: Store<ClusterSupplyChainPolicy>,
    policies: Store<SupplyChainPolicy>,
    roots: Store<TrustRoot>,
    profiles: Store<ComplianceProfile>,
}

impl Stores {
    fn resources(&self) -> PolicyResources {
        PolicyResources {
            cluster_policies: self.clusters.state().iter().map(|p| (**p).clone()).collect(),
            policies: self.policies.state().iter().map(|p| (**p).clone()).collect(),
            trust_roots: self.roots.state().iter().map(|p| (**p).clone()).collect(),
            profiles: self.profiles.state().iter().map(|p| (**p).clone()).collect(),
            ..PolicyResources::default()
        }
    }

    fn fingerprint(&self) -> Fingerprint {
        let mut out = Fingerprint::new();
        let mut add = |kind: &'static str, meta: &kube::api::ObjectMeta| {
            out.insert((
                kind,
                meta.namespace.clone(),
                meta.name.clone().unwrap_or_default(),
                meta.uid.clone(),
                meta.generation,
            ));
        };
        for p in self.clusters.state() {
            add(CLUSTER_POLICY, p.meta());
        }
        for p in self.policies.state() {
            add(POLICY, p.meta());
        }
        for t in self.roots.state() {
            add(TRUST_ROOT, t.meta());
        }
        for p in self.profiles.state() {
            add(PROFILE, p.meta());
        }
        out
    }
}

/// Events of one watch, reduced to (which, whether the initial list is complete).
fn tagged<K, S>(
    which: Which,
    stream: S,
) -> futures::stream::BoxStream<'static, Result<(Which, bool), watcher::Error>>
where
    K: Send + 'static,
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
{
    stream.map(move |r| r.map(|e| (which, matches!(e, watcher::Event::InitDone)))).boxed()
}

#[cfg(test)]
mod tests;
