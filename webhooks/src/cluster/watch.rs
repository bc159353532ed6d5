//! The policy watch: ClusterSupplyChainPolicy, SupplyChainPolicy, TrustRoot and ComplianceProfile resources
//! are reflected from
//! the cluster; whenever their specs change (and on a periodic resync, which also picks up rotated secrets)
//! they are compiled into a [`PolicySet`] that replaces the engine's, and every resource's status is
//! brought up to date: `observedGeneration`, a `Ready` condition carrying all compile problems, and
//! evaluation counts.
//!
//! Status writes change only `status`, which leaves `metadata.generation` alone; the watch keys its rebuilds
//! on generations, so its own writes do not make it rebuild.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use vouch_policies::crd::{
    ClusterSupplyChainPolicy, ComplianceProfile, ComplianceProfileStatus, Condition, PolicyStatus,
    SupplyChainPolicy, TrustRoot, TrustRootStatus,
};
use vouch_policies::{Engine, PolicyResources, PolicySet, Secrets};

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

/// Policy watch settings.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Quiet time after a change before compiling (a `kubectl apply` of many policies compiles once).
    pub debounce: Duration,
    /// Recompile and refresh statuses (counts) this often even without changes.
    pub resync: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self { debounce: Duration::from_millis(250), resync: Duration::from_secs(60) }
    }
}

/// Watches the policy resources and keeps the engine's policies and their statuses current.
pub struct PolicyWatch {
    client: Client,
    engine: Engine,
    config: WatchConfig,
    counters: Option<PolicyCounters>,
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
        Self { client, engine, config: WatchConfig::default(), counters: None }
    }

    /// Use `config`.
    pub fn with_config(mut self, config: WatchConfig) -> Self {
        self.config = config;
        self
    }

    /// Write these evaluation counts (from the status writer) into policy status.
    pub fn with_counters(mut self, counters: PolicyCounters) -> Self {
        self.counters = Some(counters);
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
            if forced || last.as_ref() != Some(&fingerprint) {
                self.rebuild(&stores, &mut known_secrets).await;
                last = Some(fingerprint);
            }
        }
    }

    /// Compile what the stores hold, put it in force, and update statuses.
    async fn rebuild(&self, stores: &Stores, known_secrets: &mut SecretData) {
        let resources = stores.resources();
        let secrets = self.fetch_secrets(&resources, known_secrets).await;
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
        self.engine.replace_policies(set);
        let set = self.engine.policies();
        self.write_statuses(stores, &set).await;
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

    async fn write_statuses(&self, stores: &Stores, set: &PolicySet) {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for p in stores.clusters.state() {
            let desired = self.policy_status(
                set,
                CLUSTER_POLICY,
                None,
                &p.name_any(),
                p.meta().generation,
                p.status.as_ref(),
                &now,
            );
            if p.status.as_ref() != Some(&desired) {
                let api: Api<ClusterSupplyChainPolicy> = Api::all(self.client.clone());
                patch_status(&api, &p.name_any(), &desired, CLUSTER_POLICY).await;
            }
        }
        for p in stores.policies.state() {
            let ns = p.namespace().unwrap_or_default();
            let desired = self.policy_status(
                set,
                POLICY,
                Some(&ns),
                &p.name_any(),
                p.meta().generation,
                p.status.as_ref(),
                &now,
            );
            if p.status.as_ref() != Some(&desired) {
                let api: Api<SupplyChainPolicy> = Api::namespaced(self.client.clone(), &ns);
                patch_status(&api, &p.name_any(), &desired, POLICY).await;
            }
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

    #[allow(clippy::too_many_arguments)]
    fn policy_status(
        &self,
        set: &PolicySet,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        generation: Option<i64>,
        current: Option<&PolicyStatus>,
        now: &str,
    ) -> PolicyStatus {
        let problems = set.problems_of(kind, namespace, name);
        let old = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
        PolicyStatus {
            observed_generation: generation,
            conditions: vec![keep_transition(Condition::ready(generation, &problems, now), old)],
            counts: self.counters.as_ref().map(|c| c.get(namespace, name)),
        }
    }
}

/// Keep the previous transition time while the condition's status is unchanged (API conventions).
fn keep_transition(mut condition: Condition, old: &[Condition]) -> Condition {
    if let Some(prev) = old.iter().find(|c| c.type_ == condition.type_ && c.status == condition.status) {
        condition.last_transition_time = prev.last_transition_time.clone();
    }
    condition
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
