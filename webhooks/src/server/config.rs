//! `vouch serve` configuration: raw values (flags over an optional YAML file) validated once into a typed
//! [`ServeConfig`], with every bad value reported at once, before any port is bound.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use vouch_policies::NoMatchAction;

use super::admission::PinScope;
use super::tls::CertPaths;
use crate::cluster::StatusTarget;

/// Default HTTPS address of the webhooks.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8443";
/// Default plain-HTTP address of /healthz, /readyz and /metrics.
pub const DEFAULT_HEALTH_LISTEN: &str = "0.0.0.0:8080";
/// Default per-request time budget: below the webhook's `timeoutSeconds` (10 s in the chart).
pub const DEFAULT_TIMEOUT_BUDGET: Duration = Duration::from_secs(8);
/// Default largest admission review body (kube-apiserver objects are at most ~3 MiB in etcd).
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Default interval between certificate file polls.
pub const DEFAULT_TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// Default time in-flight requests get after SIGTERM.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// The API server's hard limit on `timeoutSeconds`.
const MAX_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(30);
const MIN_BODY_BYTES: usize = 4 * 1024;
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
/// Default most verdicts held in memory (the verifier's own default).
pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;
/// Most verdicts `--cache-capacity` may ask for: the cache's 64 MiB weight bound holds this many 1 KiB verdicts.
const MAX_CACHE_CAPACITY: u64 = 65_536;
/// Time between scans of what runs (`--scan-interval`).
pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(3600);
const MIN_SCAN_INTERVAL: Duration = Duration::from_secs(10);
const MAX_SCAN_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Registry requests per second at most for a scan (`--scan-max-registry-rps`).
pub const DEFAULT_SCAN_MAX_REGISTRY_RPS: u32 = 20;
const MAX_SCAN_REGISTRY_RPS: u32 = 10_000;
/// Largest configuration file read.
const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;
/// `--tuf-refresh` default: Sigstore's timestamp metadata lives days, its trusted root changes in months.
pub const DEFAULT_TUF_REFRESH: Duration = Duration::from_secs(24 * 3600);
const MIN_TUF_REFRESH: Duration = Duration::from_secs(60);
const MAX_TUF_REFRESH: Duration = Duration::from_secs(7 * 24 * 3600);

/// `$XDG_CACHE_HOME/vouch/tuf`, else `$HOME/.cache/vouch/tuf`: the default `--tuf-cache`.
pub fn default_tuf_cache() -> Option<PathBuf> {
    let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    nonempty("XDG_CACHE_HOME")
        .or_else(|| nonempty("HOME").map(|h| h.join(".cache")))
        .map(|c| c.join("vouch").join("tuf"))
}

/// Default timeout of one shared-cache (Redis) call (`--shared-cache-timeout`).
pub const DEFAULT_SHARED_CACHE_TIMEOUT: Duration = vouch_attest::shared_cache::DEFAULT_OP_TIMEOUT;
const MIN_SHARED_CACHE_TIMEOUT: Duration = Duration::from_millis(5);
const MAX_SHARED_CACHE_TIMEOUT: Duration = Duration::from_secs(1);

/// The shared (L2) verdict cache on Redis/Valkey (`--shared-cache`).
#[derive(Clone, PartialEq, Eq)]
pub struct SharedCacheSettings {
    /// `redis://…` or `rediss://…`, possibly with a password.
    pub url: String,
    /// The file holding the HMAC key all replicas share (read at start).
    pub key_file: PathBuf,
    /// Timeout of each Redis call.
    pub timeout: Duration,
    /// The CA certificates of a `rediss://` server (read at start), instead of the system's roots.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for SharedCacheSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCacheSettings")
            .field("url", &vouch_attest::shared_cache::redacted(&self.url))
            .field("key_file", &self.key_file)
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The trusted root from a TUF repository, refreshed while serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TufSettings {
    /// The repository's base URL.
    pub mirror: String,
    /// The TUF root.json it is trusted from; `None`: the public-good root embedded in vouch.
    pub root: Option<PathBuf>,
    /// Where the last good root and the TUF metadata are kept.
    pub cache_dir: PathBuf,
    /// Time between refreshes.
    pub refresh: Duration,
}

/// The validated configuration of `vouch serve`; tests start from [`ServeConfig::loopback`].
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// HTTPS address of /validate and /mutate.
    pub listen: SocketAddr,
    /// Plain-HTTP address of /healthz, /readyz and /metrics.
    pub health_listen: SocketAddr,
    /// Serving certificate and key (PEM), reloaded when they change.
    pub tls: CertPaths,
    /// Callers must present a client certificate issued by a CA of this PEM bundle; `None`: anyone.
    pub client_ca: Option<PathBuf>,
    /// How often the certificate files, the policy directory and the trusted root are polled.
    pub tls_reload_interval: Duration,
    /// Policies from this directory (multi-document YAML); `None` = from the cluster.
    pub policy_dir: Option<PathBuf>,
    /// Extractors for custom kinds and extra fetcher profiles (YAML, docs/extractors.md); `None` = built-ins.
    pub extraction_config: Option<PathBuf>,
    /// Global dry-run: every policy acts as audit.
    pub dry_run: bool,
    /// What happens to an artifact no policy covers.
    pub no_match: NoMatchAction,
    /// Which objects the mutating webhook pins.
    pub pin_scope: PinScope,
    /// Sigstore trusted_root.json (default: the embedded public-good root).
    pub trusted_root: Option<PathBuf>,
    /// Registries reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Docker config JSON with registry credentials.
    pub registry_auth_file: Option<PathBuf>,
    /// Key-based signatures need no Rekor entry (cosign's `--insecure-ignore-tlog`).
    pub insecure_ignore_tlog: bool,
    /// Per-request time budget (below the webhook's timeoutSeconds).
    pub timeout_budget: Duration,
    /// Largest admission review body accepted (413 above).
    pub max_body_bytes: usize,
    /// Use a kube client (in-cluster or kubeconfig) for policies, pull secrets and status.
    pub kube: bool,
    /// Time in-flight requests get after SIGTERM before the process exits anyway.
    pub shutdown_grace: Duration,
    /// Most verdicts (and tag resolutions) kept in memory.
    pub cache_capacity: u64,
    /// Time between scans of what runs (with `kube`); zero: no scanner.
    pub scan_interval: Duration,
    /// Registry requests per second at most for a scan's verifications.
    pub scan_max_registry_rps: u32,
    /// The trusted root from a TUF repository instead of `trusted_root` or the embedded one.
    pub tuf: Option<TufSettings>,
    /// Custom resource kinds whose status receives the `SupplyChainVerified` condition (with `kube`).
    pub status_targets: Vec<StatusTarget>,
    /// Decision events (CloudEvents 1.0, binary mode) are POSTed here; `None`: none sent.
    pub events_sink: Option<reqwest::Url>,
    /// Time limit of one event delivery.
    pub events_timeout: Duration,
    /// Verdicts shared with the other replicas through Redis/Valkey; `None`: each replica on its own.
    pub shared_cache: Option<SharedCacheSettings>,
    /// Where traces are exported (`--otlp-endpoint` or the `OTEL_EXPORTER_OTLP_*` variables); `None`: no
    /// OpenTelemetry at all. Read by the process's telemetry set-up (`crate::telemetry::init`), not the server.
    pub traces: Option<crate::telemetry::ExportTarget>,
}

impl ServeConfig {
    /// How TrustRoots with `spec.tuf` are followed: in `--tuf-cache` and at `--tuf-refresh` when a mirror
    /// is configured, else under the default cache directory (the temporary directory when there is none)
    /// every [`DEFAULT_TUF_REFRESH`].
    pub fn tuf_roots_config(&self) -> vouch_policies::TufRootsConfig {
        let (cache_dir, refresh) = match &self.tuf {
            Some(t) => (t.cache_dir.clone(), t.refresh),
            None => (
                default_tuf_cache().unwrap_or_else(|| std::env::temp_dir().join("vouch-tuf")),
                DEFAULT_TUF_REFRESH,
            ),
        };
        vouch_policies::TufRootsConfig {
            cache_dir,
            refresh,
            timeout: vouch_attest::tuf::DEFAULT_TIMEOUT,
            insecure_hosts: self.insecure_registries.clone(),
        }
    }

    /// `vouch serve`'s defaults, but listening on 127.0.0.1 on ports the system picks: for tests, benches
    /// and programs that embed the server. Set other fields with struct update syntax.
    pub fn loopback(tls: CertPaths, policy_dir: Option<PathBuf>) -> Self {
        let loopback = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
        Self {
            listen: loopback,
            health_listen: loopback,
            tls,
            client_ca: None,
            tls_reload_interval: DEFAULT_TLS_RELOAD_INTERVAL,
            policy_dir,
            extraction_config: None,
            dry_run: false,
            no_match: NoMatchAction::Allow,
            pin_scope: PinScope::All,
            trusted_root: None,
            insecure_registries: Vec::new(),
            registry_auth_file: None,
            insecure_ignore_tlog: false,
            timeout_budget: DEFAULT_TIMEOUT_BUDGET,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            kube: false,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            scan_interval: Duration::ZERO,
            scan_max_registry_rps: DEFAULT_SCAN_MAX_REGISTRY_RPS,
            tuf: None,
            status_targets: Vec::new(),
            events_sink: None,
            events_timeout: crate::cloudevents::DEFAULT_TIMEOUT,
            shared_cache: None,
            traces: None,
        }
    }
}

/// An offline bundle to serve from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSource {
    /// The bundle file.
    pub path: PathBuf,
    /// Its public key (PEM); the bundle must be signed with it.
    pub key: Option<PathBuf>,
    /// Accept a bundle without checking a signature (no key): its policies are then unauthenticated.
    pub allow_unsigned: bool,
}

/// Raw values, all optional: what the YAML file (camelCase keys) and the flags give.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawServeConfig {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--health-listen`.
    pub health_listen: Option<String>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--client-ca`.
    pub client_ca: Option<PathBuf>,
    /// `--tls-reload-interval`.
    pub tls_reload_interval: Option<String>,
    /// `--policy-dir`.
    pub policy_dir: Option<PathBuf>,
    /// `--extraction-config`.
    pub extraction_config: Option<PathBuf>,
    /// `--dry-run`.
    pub dry_run: Option<bool>,
    /// `--no-match`.
    pub no_match: Option<String>,
    /// `--pin-scope` (`all` or `pods`).
    pub pin_scope: Option<String>,
    /// `--trusted-root`.
    pub trusted_root: Option<PathBuf>,
    /// `--insecure-registry` (repeatable).
    pub insecure_registries: Option<Vec<String>>,
    /// `--registry-auth-file`.
    pub registry_auth_file: Option<PathBuf>,
    /// `--insecure-ignore-tlog`.
    pub insecure_ignore_tlog: Option<bool>,
    /// `--timeout-budget`.
    pub timeout_budget: Option<String>,
    /// `--max-body-bytes`.
    pub max_body_bytes: Option<u64>,
    /// `--kube`.
    pub kube: Option<bool>,
    /// `--shutdown-grace`.
    pub shutdown_grace: Option<String>,
    /// `--cache-capacity`.
    pub cache_capacity: Option<u64>,
    /// `--scan-interval`.
    pub scan_interval: Option<String>,
    /// `--scan-max-registry-rps`.
    pub scan_max_registry_rps: Option<u32>,
    /// `--bundle`.
    pub bundle: Option<PathBuf>,
    /// `--bundle-key`.
    pub bundle_key: Option<PathBuf>,
    /// `--bundle-allow-unsigned`.
    pub bundle_allow_unsigned: Option<bool>,
    /// `--tuf-mirror` (`public-good` or a URL).
    pub tuf_mirror: Option<String>,
    /// `--tuf-root`.
    pub tuf_root: Option<PathBuf>,
    /// `--tuf-cache`.
    pub tuf_cache: Option<PathBuf>,
    /// `--tuf-refresh`.
    pub tuf_refresh: Option<String>,
    /// `--status-target` (repeatable): `GROUP/VERSION/KIND=PLURAL` strings, or in the file objects
    /// `{group, version, kind, plural}`.
    pub status_targets: Option<Vec<RawStatusTarget>>,
    /// `--events-sink` (an http or https URL).
    pub events_sink: Option<String>,
    /// `--events-timeout`.
    pub events_timeout: Option<String>,
    /// `--shared-cache` (`redis://…` or `rediss://…`).
    pub shared_cache: Option<String>,
    /// `--shared-cache-key-file`.
    pub shared_cache_key_file: Option<PathBuf>,
    /// `--shared-cache-timeout`.
    pub shared_cache_timeout: Option<String>,
    /// `--shared-cache-ca-file`.
    pub shared_cache_ca_file: Option<PathBuf>,
    /// `--otlp-endpoint` (an http or https base URL; `/v1/traces` is appended).
    pub otlp_endpoint: Option<String>,
}

/// A status target as given: `GROUP/VERSION/KIND=PLURAL`, or (in the file) `{group, version, kind, plural}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RawStatusTarget {
    /// `kars.azure.com/v1alpha1/KarsSandbox=karssandboxes`.
    Text(String),
    /// The four parts.
    Parts(StatusTarget),
}

impl RawStatusTarget {
    /// The target, or why the value is not one.
    pub fn parse(&self) -> Result<StatusTarget, String> {
        let target = match self {
            Self::Parts(t) => t.clone(),
            Self::Text(text) => {
                let format = || {
                    format!("{text:?}: expected GROUP/VERSION/KIND=PLURAL (e.g. kars.azure.com/v1alpha1/KarsSandbox=karssandboxes)")
                };
                let (gvk, plural) = text.split_once('=').ok_or_else(format)?;
                let mut parts = gvk.split('/');
                match (parts.next(), parts.next(), parts.next(), parts.next()) {
                    (Some(group), Some(version), Some(kind), None) => StatusTarget {
                        group: group.to_owned(),
                        version: version.to_owned(),
                        kind: kind.to_owned(),
                        plural: plural.to_owned(),
                    },
                    _ => return Err(format()),
                }
            }
        };
        let shown = format!("{}/{}/{}={}", target.group, target.version, target.kind, target.plural);
        let dns = |s: &str, dots: bool| {
            !s.is_empty()
                && s.len() <= 253
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                })
                && (dots || !s.contains('.'))
        };
        if !dns(&target.group, true) || !target.group.contains('.') {
            return Err(format!(
                "{shown}: the group {:?} is not an API group of custom resources (a DNS name such as kars.azure.com; \
                 Pods have their own condition)",
                target.group
            ));
        }
        if !dns(&target.version, false) || !target.version.starts_with('v') {
            return Err(format!(
                "{shown}: the version {:?} is not an API version (v1, v1alpha1, …)",
                target.version
            ));
        }
        let kind_ok = target.kind.len() <= 63
            && target.kind.starts_with(|c: char| c.is_ascii_uppercase())
            && target.kind.bytes().all(|b| b.is_ascii_alphanumeric());
        if !kind_ok {
            return Err(format!("{shown}: the kind {:?} is not a Kind (KarsSandbox)", target.kind));
        }
        if !dns(&target.plural, false) {
            return Err(format!(
                "{shown}: the plural {:?} is not a resource name (karssandboxes)",
                target.plural
            ));
        }
        Ok(target)
    }
}

/// One bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The flag (and YAML key) concerned, e.g. `--tls-cert`.
    pub field: &'static str,
    /// What is wrong, keeping the value given.
    pub message: String,
}

/// Every bad value of a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in field order.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration ({} problem(s)):", self.problems.len())?;
        for p in &self.problems {
            write!(f, "\n  {}: {}", p.field, p.message)?;
        }
        Ok(())
    }
}

impl RawServeConfig {
    /// Read a YAML configuration file (camelCase keys, unknown keys rejected).
    pub fn from_yaml_file(path: &Path) -> Result<Self, ConfigError> {
        use std::io::Read as _;
        let problem =
            |message: String| ConfigError { problems: vec![ConfigProblem { field: "--config", message }] };
        let file =
            std::fs::File::open(path).map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?;
        let mut text = String::new();
        file.take(MAX_CONFIG_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))?;
        if text.len() as u64 > MAX_CONFIG_FILE_BYTES {
            return Err(problem(format!("{} is larger than {MAX_CONFIG_FILE_BYTES} bytes", path.display())));
        }
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(&text).map_err(|e| problem(format!("{}: {e}", path.display())))
    }

    /// Values set in `over` replace those in `self` (flags over file).
    pub fn overlay(self, over: Self) -> Self {
        Self {
            listen: over.listen.or(self.listen),
            health_listen: over.health_listen.or(self.health_listen),
            tls_cert: over.tls_cert.or(self.tls_cert),
            tls_key: over.tls_key.or(self.tls_key),
            client_ca: over.client_ca.or(self.client_ca),
            tls_reload_interval: over.tls_reload_interval.or(self.tls_reload_interval),
            policy_dir: over.policy_dir.or(self.policy_dir),
            extraction_config: over.extraction_config.or(self.extraction_config),
            dry_run: over.dry_run.or(self.dry_run),
            no_match: over.no_match.or(self.no_match),
            pin_scope: over.pin_scope.or(self.pin_scope),
            trusted_root: over.trusted_root.or(self.trusted_root),
            insecure_registries: over.insecure_registries.or(self.insecure_registries),
            registry_auth_file: over.registry_auth_file.or(self.registry_auth_file),
            insecure_ignore_tlog: over.insecure_ignore_tlog.or(self.insecure_ignore_tlog),
            timeout_budget: over.timeout_budget.or(self.timeout_budget),
            max_body_bytes: over.max_body_bytes.or(self.max_body_bytes),
            kube: over.kube.or(self.kube),
            shutdown_grace: over.shutdown_grace.or(self.shutdown_grace),
            cache_capacity: over.cache_capacity.or(self.cache_capacity),
            scan_interval: over.scan_interval.or(self.scan_interval),
            scan_max_registry_rps: over.scan_max_registry_rps.or(self.scan_max_registry_rps),
            bundle: over.bundle.or(self.bundle),
            bundle_key: over.bundle_key.or(self.bundle_key),
            bundle_allow_unsigned: over.bundle_allow_unsigned.or(self.bundle_allow_unsigned),
            tuf_mirror: over.tuf_mirror.or(self.tuf_mirror),
            tuf_root: over.tuf_root.or(self.tuf_root),
            tuf_cache: over.tuf_cache.or(self.tuf_cache),
            tuf_refresh: over.tuf_refresh.or(self.tuf_refresh),
            status_targets: over.status_targets.or(self.status_targets),
            events_sink: over.events_sink.or(self.events_sink),
            events_timeout: over.events_timeout.or(self.events_timeout),
            shared_cache: over.shared_cache.or(self.shared_cache),
            shared_cache_key_file: over.shared_cache_key_file.or(self.shared_cache_key_file),
            shared_cache_timeout: over.shared_cache_timeout.or(self.shared_cache_timeout),
            shared_cache_ca_file: over.shared_cache_ca_file.or(self.shared_cache_ca_file),
            otlp_endpoint: over.otlp_endpoint.or(self.otlp_endpoint),
        }
    }

    /// Check every value; all problems at once. Files are checked for existence only (their contents are
    /// read, and reported on, when the server starts).
    pub fn validate(self) -> Result<ServeConfig, ConfigError> {
        match self.validate_with_bundle()? {
            (config, None) => Ok(config),
            // Never drop a bundle silently: the caller would verify online with other policies.
            (_, Some(_)) => Err(ConfigError {
                problems: vec![ConfigProblem {
                    field: "--bundle",
                    message: "this caller cannot serve from a bundle (use validate_with_bundle)".into(),
                }],
            }),
        }
    }

    /// [`Self::validate`], also giving the offline bundle to serve from (`--bundle`), if any. The bundle
    /// is kept beside [`ServeConfig`] rather than in it so that configurations built as literals stay valid.
    pub fn validate_with_bundle(self) -> Result<(ServeConfig, Option<BundleSource>), ConfigError> {
        let mut problems = Vec::new();
        let mut bad = |field: &'static str, message: String| problems.push(ConfigProblem { field, message });
        let tuf = self.tuf_settings(self.bundle.is_some(), &mut bad);
        let shared_cache = self.shared_cache_settings(&mut bad);

        let listen =
            address(self.listen.as_deref().unwrap_or(DEFAULT_LISTEN)).map_err(|m| bad("--listen", m)).ok();
        let health_listen = address(self.health_listen.as_deref().unwrap_or(DEFAULT_HEALTH_LISTEN))
            .map_err(|m| bad("--health-listen", m))
            .ok();
        if let (Some(a), Some(b)) = (listen, health_listen) {
            if a.port() == b.port()
                && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
            {
                bad(
                    "--health-listen",
                    format!("{b} clashes with --listen {a}: health and webhooks need separate ports"),
                );
            }
        }
        let tls_cert = required_file(self.tls_cert, "--tls-cert", &mut bad);
        let tls_key = required_file(self.tls_key, "--tls-key", &mut bad);
        let tls_reload_interval = duration_in(
            self.tls_reload_interval.as_deref(),
            DEFAULT_TLS_RELOAD_INTERVAL,
            (Duration::from_millis(100), Duration::from_secs(3600)),
            "--tls-reload-interval",
            &mut bad,
        );
        if let Some(dir) = &self.policy_dir {
            if !dir.is_dir() {
                bad("--policy-dir", format!("{} is not a directory", dir.display()));
            }
        }
        let bundle = bundle_source(
            self.bundle.clone(),
            self.bundle_key.clone(),
            self.bundle_allow_unsigned.unwrap_or(false),
            &mut bad,
        );
        // Without a policy directory or a bundle, policies come from the cluster: --kube defaults on.
        let kube = self.kube.unwrap_or(self.policy_dir.is_none() && bundle.is_none());
        if !kube && self.policy_dir.is_none() && bundle.is_none() {
            bad(
                "--policy-dir",
                "no policies: give --policy-dir, --bundle, or --kube to read them from the cluster".into(),
            );
        }
        let no_match = match self.no_match.as_deref().unwrap_or("allow") {
            "allow" => Some(NoMatchAction::Allow),
            "warn" => Some(NoMatchAction::Warn),
            "deny" => Some(NoMatchAction::Deny),
            other => {
                bad("--no-match", format!("{other:?}: expected allow, warn or deny"));
                None
            }
        };
        let pin_scope = PinScope::parse(self.pin_scope.as_deref().unwrap_or("all")).unwrap_or_else(|e| {
            bad("--pin-scope", e);
            PinScope::All
        });
        optional_file(self.trusted_root.as_deref(), "--trusted-root", &mut bad);
        optional_file(self.client_ca.as_deref(), "--client-ca", &mut bad);
        optional_file(self.extraction_config.as_deref(), "--extraction-config", &mut bad);
        optional_file(self.registry_auth_file.as_deref(), "--registry-auth-file", &mut bad);
        let insecure_registries = self.insecure_registries.unwrap_or_default();
        for r in &insecure_registries {
            if let Err(m) = registry_host(r) {
                bad("--insecure-registry", m);
            }
        }
        let timeout_budget = duration_in(
            self.timeout_budget.as_deref(),
            DEFAULT_TIMEOUT_BUDGET,
            (Duration::from_millis(100), MAX_WEBHOOK_TIMEOUT - Duration::from_secs(1)),
            "--timeout-budget",
            &mut bad,
        );
        let max_body_bytes = match self.max_body_bytes {
            None => Some(DEFAULT_MAX_BODY_BYTES),
            Some(n) if (MIN_BODY_BYTES as u64..=MAX_BODY_BYTES as u64).contains(&n) => {
                usize::try_from(n).ok()
            }
            Some(n) => {
                bad(
                    "--max-body-bytes",
                    format!("{n}: must be between {MIN_BODY_BYTES} and {MAX_BODY_BYTES}"),
                );
                None
            }
        };
        let shutdown_grace = duration_in(
            self.shutdown_grace.as_deref(),
            DEFAULT_SHUTDOWN_GRACE,
            (Duration::ZERO, Duration::from_secs(600)),
            "--shutdown-grace",
            &mut bad,
        );
        let cache_capacity = match self.cache_capacity {
            None => DEFAULT_CACHE_CAPACITY,
            Some(n) if (1..=MAX_CACHE_CAPACITY).contains(&n) => n,
            Some(n) => {
                bad("--cache-capacity", format!("{n}: must be between 1 and {MAX_CACHE_CAPACITY}"));
                DEFAULT_CACHE_CAPACITY
            }
        };
        let events_sink = self.events_sink.as_deref().and_then(|s| match reqwest::Url::parse(s) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => Some(u),
            Ok(_) => {
                bad("--events-sink", format!("{s}: must be an http:// or https:// URL"));
                None
            }
            Err(e) => {
                bad("--events-sink", format!("{s}: {e}"));
                None
            }
        });
        if self.events_timeout.is_some() && self.events_sink.is_none() {
            bad("--events-timeout", "given without --events-sink".into());
        }
        let events_timeout = duration_in(
            self.events_timeout.as_deref(),
            crate::cloudevents::DEFAULT_TIMEOUT,
            (Duration::from_millis(100), Duration::from_secs(60)),
            "--events-timeout",
            &mut bad,
        )
        .unwrap_or(crate::cloudevents::DEFAULT_TIMEOUT);
        let scan_interval = match self.scan_interval.as_deref().map(parse_duration) {
            None => DEFAULT_SCAN_INTERVAL,
            Some(Ok(d)) if d.is_zero() || (MIN_SCAN_INTERVAL..=MAX_SCAN_INTERVAL).contains(&d) => d,
            Some(Ok(d)) => {
                bad(
                    "--scan-interval",
                    format!(
                        "{d:?}: must be 0 (off) or between {MIN_SCAN_INTERVAL:?} and {MAX_SCAN_INTERVAL:?}"
                    ),
                );
                DEFAULT_SCAN_INTERVAL
            }
            Some(Err(m)) => {
                bad("--scan-interval", m);
                DEFAULT_SCAN_INTERVAL
            }
        };
        let mut status_targets: Vec<StatusTarget> = Vec::new();
        for raw in self.status_targets.iter().flatten() {
            match raw.parse() {
                Ok(t) if status_targets.iter().any(|s| s.group == t.group && s.kind == t.kind) => {
                    bad("--status-target", format!("{}/{}: given twice", t.group, t.kind));
                }
                Ok(t) => status_targets.push(t),
                Err(m) => bad("--status-target", m),
            }
        }
        if !status_targets.is_empty() && !kube {
            bad(
                "--status-target",
                "needs --kube: the condition is written through the Kubernetes API".into(),
            );
        }
        // The OTEL_* variables count as much as the flag: they are vouch's configuration too.
        let traces = crate::telemetry::otlp::export_target(self.otlp_endpoint.as_deref(), |name| {
            std::env::var(name).ok()
        })
        .unwrap_or_else(|e| {
            match e {
                crate::telemetry::TelemetryError::Setting { setting, value, reason } => {
                    bad(setting, format!("{value:?}: {reason}"));
                }
                other @ crate::telemetry::TelemetryError::Exporter { .. } => {
                    bad("--otlp-endpoint", other.to_string());
                }
            }
            None
        });
        let scan_max_registry_rps = match self.scan_max_registry_rps {
            None => DEFAULT_SCAN_MAX_REGISTRY_RPS,
            Some(n) if (1..=MAX_SCAN_REGISTRY_RPS).contains(&n) => n,
            Some(n) => {
                bad("--scan-max-registry-rps", format!("{n}: must be between 1 and {MAX_SCAN_REGISTRY_RPS}"));
                DEFAULT_SCAN_MAX_REGISTRY_RPS
            }
        };

        match (
            listen,
            health_listen,
            tls_cert,
            tls_key,
            tls_reload_interval,
            no_match,
            timeout_budget,
            max_body_bytes,
            shutdown_grace,
        ) {
            (
                Some(listen),
                Some(health_listen),
                Some(cert),
                Some(key),
                Some(tls_reload_interval),
                Some(no_match),
                Some(timeout_budget),
                Some(max_body_bytes),
                Some(shutdown_grace),
            ) if problems.is_empty() => Ok((
                ServeConfig {
                    listen,
                    health_listen,
                    tls: CertPaths { cert, key },
                    client_ca: self.client_ca,
                    tls_reload_interval,
                    policy_dir: self.policy_dir,
                    extraction_config: self.extraction_config,
                    dry_run: self.dry_run.unwrap_or(false),
                    no_match,
                    pin_scope,
                    trusted_root: self.trusted_root,
                    insecure_registries,
                    registry_auth_file: self.registry_auth_file,
                    insecure_ignore_tlog: self.insecure_ignore_tlog.unwrap_or(false),
                    timeout_budget,
                    max_body_bytes,
                    kube,
                    shutdown_grace,
                    cache_capacity,
                    scan_interval,
                    scan_max_registry_rps,
                    tuf,
                    status_targets,
                    events_sink,
                    events_timeout,
                    shared_cache,
                    traces,
                },
                bundle,
            )),
            _ => Err(ConfigError { problems }),
        }
    }
}

mod fields;

pub use fields::parse_duration;
use fields::{address, bundle_source, duration_in, optional_file, registry_host, required_file};

#[cfg(test)]
mod tests;
