//! Wiring `vouch serve` together: certificate, verifier, policies, cluster context, both listeners,
//! then serving until shutdown and draining. Everything that can be wrong with the configuration is found
//! before any port is bound.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use rustls::server::danger::ClientCertVerifier;
use tokio::net::TcpListener;
use vouch_attest::cache::CacheConfig;
use vouch_attest::offline::{OfflineBundle, OpenOptions};
use vouch_attest::registry::{Credentials, RegistryConfig};
use vouch_attest::shared_cache::{SharedCache, SharedCacheConfig};
use vouch_attest::trust_root::TrustRoot;
use vouch_attest::verify::{ArtifactVerifier, VerifierConfig, VerifyOptions};
use vouch_policies::{Engine, EngineConfig, ExtractionConfig, PolicySet};

use super::client_ca::ReloadingClientCa;
use super::config::{BundleSource, ServeConfig, SharedCacheSettings, TufSettings};
use super::metrics::Metrics;
use super::reload::{self, ConfigReload};
use super::tls::{self, ReloadingCert, TlsError};
use super::tuf_refresh::TufRefresh;
use super::StatusSink;
use super::{health_router, router, serve_https, AppState};
use crate::cloudevents::{self, EventSink, EventsConfig};
use crate::cluster::scanner::{ClusterScanner, ScanMetrics, ScannerConfig};
use crate::cluster::{
    replica_name, spawn_leader_election, ClusterContext, ContextCacheConfig, KubeContext, LeaderConfig,
    NoCluster, PolicyWatch, StatusConfig, StatusWriter,
};

/// Time the status writer gets to flush after the server stopped.
const STATUS_FLUSH_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// Time the scanner's election gets to release its Lease after the server stopped.
const LEASE_RELEASE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// The Lease the replicas elect the scanning replica on, in their own namespace.
pub const SCANNER_LEASE: &str = "vouch-scanner";

/// The namespace this replica runs in: `POD_NAMESPACE` (the chart sets it), else the service account's
/// namespace file, else `default`.
pub fn own_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

/// The scanner, ready to start with the server.
struct ScannerSetup {
    client: kube::Client,
    engine: Engine,
    config: ScannerConfig,
    metrics: ScanMetrics,
    events: Option<EventSink>,
}

/// The scanner and its election, running.
struct ScannerRunning {
    stop: tokio::sync::oneshot::Sender<()>,
    election: tokio::task::JoinHandle<()>,
    scanner: tokio::task::JoinHandle<()>,
}

impl ScannerSetup {
    /// Start electing on [`SCANNER_LEASE`] and scanning while this replica leads.
    fn start(self) -> Option<ScannerRunning> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let lease = LeaderConfig::new(own_namespace(), SCANNER_LEASE, self.config.replica.clone());
        let election = match spawn_leader_election(self.client.clone(), lease, async {
            let _ = stopped.await;
        }) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "the scanner cannot elect a leader; not scanning");
                return None;
            }
        };
        let scanner = ClusterScanner::new(
            self.client,
            self.engine,
            self.config,
            self.metrics,
            election.leading.clone(),
        )
        .with_events(self.events);
        Some(ScannerRunning { stop, election: election.task, scanner: scanner.spawn() })
    }
}

impl StatusSink for StatusWriter {
    fn submit(&self, input: &vouch_policies::AdmissionInput, decision: &vouch_policies::Decision) {
        // Never waits: a full queue drops the event and counts it (vouch_status_dropped_total).
        StatusWriter::submit_admission(self, input, decision);
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The serving certificate cannot be used.
    #[error("serving certificate: {0}")]
    Tls(#[from] TlsError),
    /// A file named in the configuration cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file named in the configuration has unusable contents.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `--tuf-mirror`: no trusted root could be had (nothing fetched, nothing cached).
    #[error("trusted root from TUF: {reason}")]
    Tuf {
        /// Why.
        reason: String,
    },
    /// The CloudEvents sender cannot be built.
    #[error("--events-sink: {reason}")]
    Events {
        /// Why.
        reason: String,
    },
    /// The extraction configuration cannot be read or is invalid.
    #[error("extraction configuration: {reason}")]
    Extraction {
        /// What is wrong, naming the file.
        reason: String,
    },
    /// The policy directory cannot be read.
    #[error("policies: {0}")]
    Policies(#[from] vouch_policies::LoadError),
    /// The policy directory does not read or compile completely; nothing from it is put in force.
    #[error(
        "policies in {} do not all compile, none is put in force ({} problem(s)):\n  {}",
        dir.display(),
        problems.len(),
        problems.join("\n  ")
    )]
    PolicyProblems {
        /// The directory.
        dir: PathBuf,
        /// Every problem, naming the file or resource.
        problems: Vec<String>,
    },
    /// The offline bundle was refused (nothing from it is used).
    #[error("bundle {}: {source}", path.display())]
    Bundle {
        /// The bundle file.
        path: PathBuf,
        /// Why it was refused.
        source: vouch_attest::offline::BundleError,
    },
    /// The verifier cannot be built.
    #[error("verifier: {0}")]
    Verifier(#[from] vouch_attest::verify::VerifyError),
    /// No Kubernetes client (neither in-cluster nor a kubeconfig).
    #[error("cannot build a Kubernetes client (--kube): {reason}")]
    Kube {
        /// What kube said.
        reason: String,
    },
    /// A listener cannot be bound.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// `webhooks` or `health`.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn read(path: &PathBuf) -> Result<Vec<u8>, RunError> {
    std::fs::read(path).map_err(|source| RunError::Read { path: path.clone(), source })
}

/// `--extraction-config`, read and fully checked before any port is bound (built-ins only without it).
pub fn extraction_config(path: Option<&std::path::Path>) -> Result<ExtractionConfig, RunError> {
    match path {
        None => Ok(ExtractionConfig::default()),
        Some(path) => ExtractionConfig::read_file(path).map_err(|reason| RunError::Extraction { reason }),
    }
}

/// The verifier configuration from `vouch serve`'s settings.
pub fn verifier_config(config: &ServeConfig) -> Result<VerifierConfig, RunError> {
    let trust_root = match &config.trusted_root {
        Some(p) => {
            reload::load_trusted_root(p).map_err(|reason| RunError::Invalid { path: p.clone(), reason })?
        }
        None => TrustRoot::public_good()
            .map_err(|e| RunError::Invalid { path: "<embedded>".into(), reason: e.to_string() })?,
    };
    let credentials = match &config.registry_auth_file {
        Some(p) => Credentials::from_docker_config_json(&read(p)?)
            .map_err(|e| RunError::Invalid { path: p.clone(), reason: e.to_string() })?,
        None => Credentials::anonymous(),
    };
    Ok(VerifierConfig {
        registry: RegistryConfig {
            insecure_registries: config.insecure_registries.clone(),
            // One registry call (retries included) may take the whole request's budget: no per-call limit
            // below it. The engine's deadline (`EngineConfig::budget`, the same setting) ends the
            // evaluation first, so a silent registry reads "did not finish within the budget".
            timeout: config.timeout_budget,
            credentials,
            ..RegistryConfig::default()
        },
        trust_root,
        cache: vouch_attest::cache::CacheConfig { max_entries: config.cache_capacity, ..Default::default() },
        options: VerifyOptions {
            require_tlog_for_keys: !config.insecure_ignore_tlog,
            ..VerifyOptions::default()
        },
    })
}

/// `--shared-cache`: the HMAC key read (surrounding whitespace dropped, so a key file written by `echo` works
/// the same on every replica) and a client that connects on first use; Redis being down does not stop start-up.
/// A replica waits for another's verification a quarter of the request budget at most, so that it still
/// has the time to verify itself.
fn shared_cache(
    settings: &SharedCacheSettings,
    ttls: &CacheConfig,
    budget: std::time::Duration,
) -> Result<SharedCache, RunError> {
    let key = read(&settings.key_file)?;
    let key = key.trim_ascii().to_vec();
    let mut config = SharedCacheConfig::new(settings.url.clone(), key);
    config.op_timeout = settings.timeout;
    config.lock_wait = config.lock_wait.min(budget / 4);
    config.ca_pem = settings.ca_file.as_ref().map(read).transpose()?;
    let cache = SharedCache::new(&config, ttls).map_err(|e| {
        let path = match (&e, &settings.ca_file) {
            (vouch_attest::shared_cache::SharedCacheError::Ca { .. }, Some(ca)) => ca.clone(),
            _ => settings.key_file.clone(),
        };
        RunError::Invalid { path, reason: e.to_string() }
    })?;
    tracing::info!(
        url = %vouch_attest::shared_cache::redacted(&settings.url),
        generation = %config.generation,
        timeout = ?settings.timeout,
        "verdicts shared through Redis"
    );
    Ok(cache)
}

/// Open and check the configured bundle with its key (or without, when explicitly allowed).
fn open_bundle(source: &BundleSource) -> Result<OfflineBundle, RunError> {
    let key = match &source.key {
        Some(p) => {
            Some(vouch_attest::PublicKey::from_pem(&String::from_utf8_lossy(&read(p)?)).map_err(|e| {
                RunError::Invalid { path: p.clone(), reason: format!("not a public key: {e}") }
            })?)
        }
        None => None,
    };
    let options = OpenOptions { allow_unsigned: source.allow_unsigned, ..OpenOptions::new(key) };
    OfflineBundle::open_with(&source.path, &options)
        .map_err(|source_err| RunError::Bundle { path: source.path.clone(), source: source_err })
}

/// The verifier: over the network, or reading only from the bundle. With a bundle, `--trusted-root`
/// (when given) wins over the bundle's trusted root. Also gives the fingerprint of `--trusted-root` as read,
/// which its reload compares the file against.
fn build_verifier(
    config: &ServeConfig,
    bundle: Option<&OfflineBundle>,
    tuf_root: Option<TrustRoot>,
) -> Result<(ArtifactVerifier, Option<String>), RunError> {
    let mut verifier_config = verifier_config(config)?;
    if let Some(root) = tuf_root {
        verifier_config.trust_root = root;
    }
    let trusted_root =
        config.trusted_root.as_ref().map(|_| verifier_config.trust_root.fingerprint().to_string());
    let Some(bundle) = bundle else {
        let verifier = ArtifactVerifier::new(verifier_config.clone())?;
        let verifier = match &config.shared_cache {
            Some(settings) => verifier.with_shared_cache(shared_cache(
                settings,
                &verifier_config.cache,
                config.timeout_budget,
            )?),
            None => verifier,
        };
        return Ok((verifier, trusted_root));
    };
    if config.trusted_root.is_none() {
        if let Some(root) = bundle.trusted_root() {
            verifier_config.trust_root = root;
        }
    }
    let client = bundle.registry_client(verifier_config.registry.clone());
    Ok((ArtifactVerifier::with_registry_client(verifier_config, client)?, trusted_root))
}

/// Time a TUF refresh may take, the one at start included: well inside the chart's startupProbe (60s), so an
/// unreachable mirror delays start-up but never gets the pod restarted.
const TUF_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// `--tuf-mirror` at start: the repository read once (else the last good root cached, else for public good
/// the embedded root), before any port is bound.
async fn start_tuf(
    settings: &TufSettings,
    insecure_hosts: &[String],
) -> Result<(Arc<TufRefresh>, TrustRoot), RunError> {
    let root = match &settings.root {
        Some(path) => read(path)?,
        None => vouch_attest::tuf::PUBLIC_GOOD_TUF_ROOT.to_vec(),
    };
    let source = vouch_attest::tuf::TufTrustSource::new(vouch_attest::tuf::TufConfig {
        mirror: settings.mirror.clone(),
        root,
        target: vouch_attest::tuf::DEFAULT_TARGET.into(),
        cache_dir: settings.cache_dir.clone(),
        timeout: TUF_TIMEOUT,
        insecure_hosts: insecure_hosts.to_vec(),
    })
    .map_err(|e| RunError::Tuf { reason: e.to_string() })?;
    let refresh = TufRefresh::new(source, settings.root.is_none());
    let root = refresh
        .initial()
        .await
        .map_err(|e| RunError::Tuf { reason: format!("{e}; and no last good trusted root is cached") })?;
    Ok((refresh, root))
}

/// The policies a bundle carries, compiled as a policy directory would be.
pub fn bundle_policies(bundle: &OfflineBundle) -> PolicySet {
    let mut resources = vouch_policies::PolicyResources::default();
    for (name, yaml) in bundle.policies_yaml() {
        resources.add_yaml_str(&yaml, &name);
    }
    PolicySet::compile(resources, &vouch_policies::Secrets::none())
}

fn log_problems(set: &PolicySet) {
    for p in set.problems() {
        tracing::error!(
            kind = %p.kind,
            namespace = p.namespace.as_deref().unwrap_or_default(),
            name = %p.name,
            problems = %p.problems.join("; "),
            "policy not in force"
        );
    }
}

/// A server with everything loaded and both ports bound, not yet serving.
pub struct Server {
    config: ServeConfig,
    https: TcpListener,
    health: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    cert: Arc<ReloadingCert>,
    /// `--client-ca`, watched and reloaded.
    client_ca: Option<Arc<ReloadingClientCa>>,
    state: AppState,
    engine: Engine,
    /// `--policy-dir` and `--trusted-root`, watched and reloaded into the engine.
    reload: Arc<ConfigReload>,
    /// `--tuf-mirror`: the trusted root refreshed into the engine.
    tuf: Option<Arc<TufRefresh>>,
    /// Cluster tasks (policy watch, status worker), `None` in file mode.
    cluster_tasks: Option<ClusterTasks>,
}

struct ClusterTasks {
    watch: Option<tokio::task::JoinHandle<()>>,
    status: tokio::task::JoinHandle<()>,
    scanner: Option<ScannerSetup>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("https", &self.https_addr())
            .field("health", &self.health_addr())
            .finish()
    }
}

impl Server {
    /// Load the certificate, trust root, credentials and policies, build the engine and the cluster
    /// context, then bind both ports.
    pub async fn prepare(config: ServeConfig) -> Result<Self, RunError> {
        Self::prepare_with_bundle(config, None).await
    }

    /// [`Self::prepare`], verifying from the offline `bundle` only when one is given (its policies apply
    /// unless `config.policy_dir` is set; no policy watch then). The bundle is opened and fully checked
    /// before anything else is done with it.
    pub async fn prepare_with_bundle(
        config: ServeConfig,
        bundle: Option<BundleSource>,
    ) -> Result<Self, RunError> {
        let provider = tls::install_crypto_provider();
        let cert = ReloadingCert::load(config.tls.clone(), Arc::clone(&provider))?;
        let client_ca = match &config.client_ca {
            Some(path) => Some(ReloadingClientCa::load(path.clone(), Arc::clone(&provider))?),
            None => None,
        };
        let client_verifier = client_ca.clone().map(|ca| ca as Arc<dyn ClientCertVerifier>);
        let tls = tls::server_config(Arc::clone(&cert), client_verifier, provider)?;
        let bundle = bundle.as_ref().map(open_bundle).transpose()?;
        if let Some(b) = &bundle {
            let c = b.contents();
            tracing::info!(
                bundle = %b.path().display(),
                artifacts = c.artifacts.len(),
                authenticated = b.is_authenticated(),
                expires = %c.expires,
                "verifying from the offline bundle only"
            );
        }
        let tuf = match &config.tuf {
            Some(settings) => Some(start_tuf(settings, &config.insecure_registries).await?),
            None => None,
        };
        let (verifier, trusted_root_fingerprint) =
            build_verifier(&config, bundle.as_ref(), tuf.as_ref().map(|(_, root)| root.clone()))?;
        let tuf = tuf.map(|(refresh, _)| refresh);

        let mut policy_dir_fingerprint = None;
        let policies = match (&config.policy_dir, &bundle) {
            (Some(dir), _) => {
                // Nothing to fall back on at start: a directory that does not compile completely stops here.
                let loaded = reload::load_policy_dir(dir)
                    .map_err(|problems| RunError::PolicyProblems { dir: dir.clone(), problems })?;
                tracing::info!(
                    dir = %dir.display(),
                    policies = loaded.set.policies().len(),
                    fingerprint = %loaded.fingerprint,
                    "policies loaded from files"
                );
                policy_dir_fingerprint = Some(loaded.fingerprint);
                Some(loaded.set)
            }
            (None, Some(b)) => {
                let set = bundle_policies(b);
                log_problems(&set);
                tracing::info!(policies = set.policies().len(), "policies loaded from the bundle");
                Some(set)
            }
            (None, None) => None,
        };
        let engine_config = EngineConfig {
            dry_run: config.dry_run,
            no_match: config.no_match,
            budget: config.timeout_budget,
            extraction: extraction_config(config.extraction_config.as_deref())?,
            ..EngineConfig::default()
        };
        let engine = match policies {
            Some(set) => Engine::new(engine_config, set, verifier.clone()),
            // From the cluster: not ready (/readyz 503) until the watch's first complete list.
            None => Engine::new_pending(engine_config, verifier.clone()),
        };
        if !config.kube {
            reload::warn_unevaluable_selectors(&engine.policies());
        }
        let reload = if config.kube { ConfigReload::new } else { ConfigReload::without_namespace_labels };
        let reload = reload(
            engine.clone(),
            config.policy_dir.clone().zip(policy_dir_fingerprint),
            config.trusted_root.clone().zip(trusted_root_fingerprint),
        );
        let events = match &config.events_sink {
            Some(sink) => {
                let events_config = EventsConfig {
                    sink: sink.clone(),
                    source: format!("/vouch/{}", replica_name()),
                    queue: cloudevents::DEFAULT_QUEUE,
                    timeout: config.events_timeout,
                };
                let shown = cloudevents::shown(&events_config.sink);
                let (sink, _sender) = EventSink::spawn(events_config)
                    .map_err(|e| RunError::Events { reason: e.to_string() })?;
                tracing::info!(sink = %shown, "decision events go to the CloudEvents sink");
                Some(sink)
            }
            None => None,
        };
        let metrics;
        let cluster: Arc<dyn ClusterContext>;
        let mut status_sink: Option<Arc<dyn StatusSink>> = None;
        let mut cluster_tasks = None;
        if config.kube {
            let client =
                kube::Client::try_default().await.map_err(|e| RunError::Kube { reason: e.to_string() })?;
            cluster = Arc::new(KubeContext::new(client.clone(), &ContextCacheConfig::default()));
            let status_config =
                StatusConfig { targets: config.status_targets.clone(), ..StatusConfig::default() };
            let (status, status_task) = StatusWriter::spawn(client.clone(), status_config);
            // Policies from files or a bundle win; otherwise the cluster's policies are watched into the engine.
            let watch = (config.policy_dir.is_none() && bundle.is_none()).then(|| {
                PolicyWatch::new(client.clone(), engine.clone())
                    .with_counters(status.policy_counters(), replica_name())
                    .with_tuf_roots(Arc::new(vouch_policies::TufRoots::new(config.tuf_roots_config())))
                    .spawn()
            });
            let scanner = (!config.scan_interval.is_zero()).then(|| ScannerSetup {
                client: client.clone(),
                engine: engine.clone(),
                config: ScannerConfig {
                    interval: config.scan_interval,
                    max_registry_rps: std::num::NonZeroU32::new(config.scan_max_registry_rps)
                        .unwrap_or(std::num::NonZeroU32::MIN),
                    replica: replica_name(),
                    ..ScannerConfig::default()
                },
                metrics: ScanMetrics::default(),
                events: events.clone(),
            });
            metrics = Metrics::with_extra(|r| {
                status.metrics().register(r);
                reload.register(r);
                if let Some(e) = &events {
                    e.register(r);
                }
                if let Some(t) = &tuf {
                    t.register(r);
                }
                if let Some(s) = &scanner {
                    s.metrics.register(r);
                }
            });
            status_sink = Some(Arc::new(status));
            cluster_tasks = Some(ClusterTasks { watch, status: status_task, scanner });
        } else {
            cluster = Arc::new(NoCluster);
            metrics = Metrics::with_extra(|r| {
                reload.register(r);
                if let Some(e) = &events {
                    e.register(r);
                }
                if let Some(t) = &tuf {
                    t.register(r);
                }
            });
        }
        metrics.attach_verifier(verifier);
        metrics.attach_cert(Arc::clone(&cert));
        if let Some(ca) = &client_ca {
            metrics.attach_client_ca(Arc::clone(ca));
        }
        let state = AppState {
            evaluator: reload.clone(),
            cluster,
            status: status_sink,
            metrics,
            budget: config.timeout_budget,
            dry_run: config.dry_run,
            pin_scope: config.pin_scope,
            events,
            max_body_bytes: config.max_body_bytes,
            serving: Arc::new(AtomicBool::new(false)),
        };
        let bind = |what, addr| async move {
            TcpListener::bind(addr).await.map_err(|source| RunError::Bind { what, addr, source })
        };
        let health = bind("health", config.health_listen).await?;
        let https = bind("webhooks", config.listen).await?;
        Ok(Self { config, https, health, tls, cert, client_ca, state, engine, reload, tuf, cluster_tasks })
    }

    /// The bound webhook address (useful with port 0).
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https.local_addr().ok()
    }

    /// The bound health address.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health.local_addr().ok()
    }

    /// The engine (to swap policies in tests and from the cluster watch).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The handlers' shared state.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` completes, then drain within the configured grace period.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let Self {
            config,
            https,
            health,
            tls,
            cert,
            client_ca,
            state,
            engine,
            reload,
            tuf,
            mut cluster_tasks,
        } = self;
        let tuf_task = tuf.zip(config.tuf.as_ref()).map(|(t, s)| t.spawn(engine.clone(), s.refresh));
        let scanner = cluster_tasks.as_mut().and_then(|t| t.scanner.take()).and_then(ScannerSetup::start);
        let bound = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        let (https_addr, health_addr) = (bound(&https), bound(&health));
        let watch = cert.spawn_watch(config.tls_reload_interval);
        let client_ca_watch = client_ca.map(|ca| ca.spawn_watch(config.tls_reload_interval));
        let reload_watch = reload.watches_anything().then(|| reload.spawn_watch(config.tls_reload_interval));
        let (health_stop, health_stopped) = tokio::sync::oneshot::channel::<()>();
        let health_app = health_router(state.clone());
        let health_task = tokio::spawn(async move {
            let stopped = async {
                let _ = health_stopped.await;
            };
            if let Err(e) = axum::serve(health, health_app).with_graceful_shutdown(stopped).await {
                tracing::error!(error = %e, "health server failed");
            }
        });
        tracing::info!(
            webhooks = %https_addr,
            health = %health_addr,
            dry_run = config.dry_run,
            kube = config.kube,
            client_certificates = if config.client_ca.is_some() { "required" } else { "not asked" },
            "serving"
        );
        let serving = Arc::clone(&state.serving);
        let handshakes = state.metrics.handshake_failures();
        serve_https(https, tls, router(state), serving, handshakes, shutdown, config.shutdown_grace).await;
        watch.abort();
        if let Some(w) = client_ca_watch {
            w.abort();
        }
        if let Some(w) = reload_watch {
            w.abort();
        }
        if let Some(t) = tuf_task {
            t.abort();
        }
        let _ = health_stop.send(());
        let _ = health_task.await;
        if let Some(s) = scanner {
            s.scanner.abort();
            let _ = s.stop.send(());
            if tokio::time::timeout(LEASE_RELEASE_GRACE, s.election).await.is_err() {
                tracing::warn!("the scanner's Lease was not released in time; another replica takes over when it expires");
            }
        }
        if let Some(tasks) = cluster_tasks {
            if let Some(w) = tasks.watch {
                w.abort();
            }
            // Every writer clone went with the routers; the worker flushes what is queued and ends.
            if tokio::time::timeout(STATUS_FLUSH_GRACE, tasks.status).await.is_err() {
                tracing::warn!("status writer did not finish flushing in time");
            }
        }
        tracing::info!("stopped");
    }
}

/// Prepare and serve until `shutdown`.
pub async fn run(
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    run_with_bundle(config, None, shutdown).await
}

/// Prepare (from `bundle` when given) and serve until `shutdown`.
pub async fn run_with_bundle(
    config: ServeConfig,
    bundle: Option<BundleSource>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), RunError> {
    Server::prepare_with_bundle(config, bundle).await?.run(shutdown).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extraction_configuration_is_read_and_checked_before_serving() {
        assert_eq!(extraction_config(None).unwrap(), ExtractionConfig::default());
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("extraction.yaml");
        std::fs::write(&good, "fetchers:\n  - name: puller\n    image: reg.example/puller\n    env: SRC\n")
            .unwrap();
        assert_eq!(extraction_config(Some(&good)).unwrap().fetchers[0].name, "puller");

        let bad = dir.path().join("bad.yaml");
        std::fs::write(&bad, "extractors:\n  - apiVersion: x/v1\n    kind: K\n    paths: ['not a path']\n")
            .unwrap();
        let e = extraction_config(Some(&bad)).unwrap_err().to_string();
        assert!(e.starts_with(&format!("extraction configuration: {}: ", bad.display())), "{e}");
        assert!(e.contains("extractors[0] (x/v1 K)"), "{e}");
    }
}
