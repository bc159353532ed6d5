//! `vouch serve` configuration: raw values (flags over an optional YAML file) validated once into a typed
//! [`ServeConfig`], with every bad value reported at once, before any port is bound.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use vouch_policies::NoMatchAction;

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
}

impl fmt::Debug for SharedCacheSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCacheSettings")
            .field("url", &vouch_attest::shared_cache::redacted(&self.url))
            .field("key_file", &self.key_file)
            .field("timeout", &self.timeout)
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
    /// Verdicts shared with the other replicas through Redis/Valkey; `None`: each replica on its own.
    pub shared_cache: Option<SharedCacheSettings>,
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
            shared_cache: None,
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
    /// `--shared-cache` (`redis://…` or `rediss://…`).
    pub shared_cache: Option<String>,
    /// `--shared-cache-key-file`.
    pub shared_cache_key_file: Option<PathBuf>,
    /// `--shared-cache-timeout`.
    pub shared_cache_timeout: Option<String>,
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
            shared_cache: over.shared_cache.or(self.shared_cache),
            shared_cache_key_file: over.shared_cache_key_file.or(self.shared_cache_key_file),
            shared_cache_timeout: over.shared_cache_timeout.or(self.shared_cache_timeout),
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
                    shared_cache,
                },
                bundle,
            )),
            _ => Err(ConfigError { problems }),
        }
    }
}

impl RawServeConfig {
    /// `--shared-cache*`: a Redis URL (never echoed with its password) and the HMAC key file it needs.
    fn shared_cache_settings(
        &self,
        bad: &mut impl FnMut(&'static str, String),
    ) -> Option<SharedCacheSettings> {
        let timeout = duration_in(
            self.shared_cache_timeout.as_deref(),
            DEFAULT_SHARED_CACHE_TIMEOUT,
            (MIN_SHARED_CACHE_TIMEOUT, MAX_SHARED_CACHE_TIMEOUT),
            "--shared-cache-timeout",
            bad,
        );
        let Some(url) = self.shared_cache.as_deref().filter(|u| !u.is_empty()) else {
            for (set, field) in [
                (self.shared_cache_key_file.is_some(), "--shared-cache-key-file"),
                (self.shared_cache_timeout.is_some(), "--shared-cache-timeout"),
            ] {
                if set {
                    bad(field, "given without --shared-cache".into());
                }
            }
            return None;
        };
        if let Err(reason) = vouch_attest::shared_cache::check_url(url) {
            bad("--shared-cache", reason);
        }
        if self.bundle.is_some() {
            // A bundle's verdicts come from the bundle's contents, not the registry's: never mix them.
            bad(
                "--shared-cache",
                "cannot be used with --bundle (verdicts from a bundle are not shared)".into(),
            );
        }
        let Some(key_file) = self.shared_cache_key_file.clone() else {
            bad(
                "--shared-cache-key-file",
                "required with --shared-cache: the HMAC key all replicas share (e.g. 48 random bytes, base64)"
                    .into(),
            );
            return None;
        };
        optional_file(Some(&key_file), "--shared-cache-key-file", bad);
        Some(SharedCacheSettings { url: url.to_owned(), key_file, timeout: timeout? })
    }

    /// `--tuf-*`: a mirror excludes `--trusted-root` and `--bundle`; a private one needs `--tuf-root`.
    fn tuf_settings(
        &self,
        with_bundle: bool,
        bad: &mut impl FnMut(&'static str, String),
    ) -> Option<TufSettings> {
        let refresh = duration_in(
            self.tuf_refresh.as_deref(),
            DEFAULT_TUF_REFRESH,
            (MIN_TUF_REFRESH, MAX_TUF_REFRESH),
            "--tuf-refresh",
            bad,
        );
        let Some(mirror) = &self.tuf_mirror else {
            for (set, field) in [
                (self.tuf_root.is_some(), "--tuf-root"),
                (self.tuf_cache.is_some(), "--tuf-cache"),
                (self.tuf_refresh.is_some(), "--tuf-refresh"),
            ] {
                if set {
                    bad(field, "given without --tuf-mirror".into());
                }
            }
            return None;
        };
        if self.trusted_root.is_some() {
            bad("--tuf-mirror", "cannot be used with --trusted-root (one source of trusted root)".into());
        }
        if with_bundle {
            bad("--tuf-mirror", "cannot be used with --bundle (a bundle carries its trusted root)".into());
        }
        optional_file(self.tuf_root.as_deref(), "--tuf-root", bad);
        let public_good = mirror == vouch_attest::tuf::PUBLIC_GOOD_NAME;
        if !public_good && self.tuf_root.is_none() {
            bad(
                "--tuf-root",
                format!("required with --tuf-mirror {mirror} (the root.json it is trusted from)"),
            );
        }
        let cache_dir = self.tuf_cache.clone().or_else(default_tuf_cache);
        if cache_dir.is_none() {
            bad("--tuf-cache", "required: neither XDG_CACHE_HOME nor HOME is set".into());
        }
        Some(TufSettings {
            mirror: if public_good { vouch_attest::tuf::PUBLIC_GOOD_MIRROR.into() } else { mirror.clone() },
            root: self.tuf_root.clone(),
            cache_dir: cache_dir?,
            refresh: refresh?,
        })
    }
}

/// `--bundle` with its key: a key is required unless unsigned bundles are explicitly allowed, because the
/// bundle's policies decide what is admitted.
fn bundle_source(
    bundle: Option<PathBuf>,
    key: Option<PathBuf>,
    allow_unsigned: bool,
    bad: &mut impl FnMut(&'static str, String),
) -> Option<BundleSource> {
    let Some(path) = bundle else {
        if key.is_some() {
            bad("--bundle-key", "given without --bundle".into());
        }
        return None;
    };
    if !path.is_file() {
        bad("--bundle", format!("{} is not a readable file", path.display()));
    }
    optional_file(key.as_deref(), "--bundle-key", bad);
    if key.is_none() && !allow_unsigned {
        bad(
            "--bundle-key",
            "required with --bundle (the bundle's public key); --bundle-allow-unsigned accepts a bundle \
             without checking who made it"
                .into(),
        );
    }
    Some(BundleSource { path, key, allow_unsigned })
}

fn address(s: &str) -> Result<SocketAddr, String> {
    s.parse().map_err(|_| format!("{s:?} is not an address of the form IP:PORT (e.g. 0.0.0.0:8443)"))
}

fn required_file(
    p: Option<PathBuf>,
    field: &'static str,
    bad: &mut impl FnMut(&'static str, String),
) -> Option<PathBuf> {
    match p {
        None => {
            bad(field, "required (the webhooks are served over HTTPS only)".into());
            None
        }
        Some(p) if !p.is_file() => {
            bad(field, format!("{} is not a readable file", p.display()));
            None
        }
        Some(p) => Some(p),
    }
}

fn optional_file(p: Option<&Path>, field: &'static str, bad: &mut impl FnMut(&'static str, String)) {
    if let Some(p) = p {
        if !p.is_file() {
            bad(field, format!("{} is not a readable file", p.display()));
        }
    }
}

fn registry_host(r: &str) -> Result<(), String> {
    let ok = !r.is_empty()
        && !r.contains("://")
        && !r.contains('/')
        && r.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if ok {
        Ok(())
    } else {
        Err(format!("{r:?}: expected host[:port], without scheme or path"))
    }
}

/// `8s`, `500ms`, `2m`, `1h` or plain seconds (`8`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = number.parse().map_err(|_| format!("{s:?} is not a duration (e.g. 8s, 500ms, 2m)"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs).ok_or_else(|| format!("{s:?} is too long")),
        "h" => n.checked_mul(3600).map(Duration::from_secs).ok_or_else(|| format!("{s:?} is too long")),
        _ => Err(format!("{s:?} is not a duration (e.g. 8s, 500ms, 2m, 1h)")),
    }
}

fn duration_in(
    s: Option<&str>,
    default: Duration,
    (min, max): (Duration, Duration),
    field: &'static str,
    bad: &mut impl FnMut(&'static str, String),
) -> Option<Duration> {
    let Some(s) = s else { return Some(default) };
    match parse_duration(s) {
        Ok(d) if d >= min && d <= max => Some(d),
        Ok(_) => {
            bad(field, format!("{s}: must be between {min:?} and {max:?}"));
            None
        }
        Err(m) => {
            bad(field, m);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("tls.crt");
        let key = dir.path().join("tls.key");
        std::fs::write(&cert, "x").unwrap();
        std::fs::write(&key, "x").unwrap();
        (dir, cert, key)
    }

    #[test]
    fn tuf_settings_resolve_public_good_and_refuse_contradictions() {
        let (dir, cert, key) = files();
        let base = RawServeConfig {
            tls_cert: Some(cert.clone()),
            tls_key: Some(key),
            policy_dir: Some(dir.path().into()),
            tuf_cache: Some(dir.path().join("cache")),
            ..Default::default()
        };
        let c =
            RawServeConfig { tuf_mirror: Some(vouch_attest::tuf::PUBLIC_GOOD_NAME.into()), ..base.clone() }
                .validate()
                .unwrap();
        let tuf = c.tuf.unwrap();
        assert_eq!(tuf.mirror, vouch_attest::tuf::PUBLIC_GOOD_MIRROR);
        assert_eq!((tuf.root, tuf.refresh), (None, DEFAULT_TUF_REFRESH), "the embedded TUF root, daily");

        let err = RawServeConfig {
            tuf_mirror: Some("https://tuf.example.com".into()),
            trusted_root: Some(cert),
            tuf_refresh: Some("10s".into()),
            ..base.clone()
        }
        .validate()
        .unwrap_err();
        let fields: Vec<_> = err.problems.iter().map(|p| p.field).collect();
        assert_eq!(fields, ["--tuf-refresh", "--tuf-mirror", "--tuf-root"], "{err}");

        let err = RawServeConfig { tuf_refresh: Some("1h".into()), ..base }.validate().unwrap_err();
        assert_eq!(err.problems[0].message, "given without --tuf-mirror");
    }

    #[test]
    fn defaults_apply_and_kube_is_off_with_a_policy_dir() {
        let (dir, cert, key) = files();
        let c = RawServeConfig {
            tls_cert: Some(cert),
            tls_key: Some(key),
            policy_dir: Some(dir.path().into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(c.health_listen, DEFAULT_HEALTH_LISTEN.parse().unwrap());
        assert_eq!(c.timeout_budget, DEFAULT_TIMEOUT_BUDGET);
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.no_match, NoMatchAction::Allow);
        assert!(!c.kube);
        assert!(!c.dry_run);
    }

    #[test]
    fn a_bundle_needs_its_key_and_supplies_the_policies() {
        let (dir, cert, key) = files();
        let bundle = dir.path().join("b.tar");
        std::fs::write(&bundle, "x").unwrap();
        let base = RawServeConfig { tls_cert: Some(cert), tls_key: Some(key), ..Default::default() };
        let err = RawServeConfig { bundle: Some(bundle.clone()), ..base.clone() }
            .validate_with_bundle()
            .unwrap_err();
        assert_eq!(err.problems.iter().map(|p| p.field).collect::<Vec<_>>(), ["--bundle-key"]);
        let with_key =
            RawServeConfig { bundle: Some(bundle.clone()), bundle_key: Some(bundle.clone()), ..base.clone() };
        let (c, source) = with_key.clone().validate_with_bundle().unwrap();
        // Policies come from the bundle: no cluster needed.
        assert!(!c.kube);
        let expected =
            BundleSource { path: bundle.clone(), key: Some(bundle.clone()), allow_unsigned: false };
        assert_eq!(source, Some(expected));
        // A caller that cannot serve from a bundle is told so instead of the bundle being dropped.
        assert_eq!(with_key.validate().unwrap_err().problems[0].field, "--bundle");
        let unsigned = RawServeConfig {
            bundle: Some(bundle.clone()),
            bundle_allow_unsigned: Some(true),
            ..base.clone()
        };
        assert!(unsigned.validate_with_bundle().unwrap().1.unwrap().allow_unsigned);
        let err = RawServeConfig { bundle_key: Some(bundle), policy_dir: Some(dir.path().into()), ..base }
            .validate_with_bundle()
            .unwrap_err();
        assert_eq!(err.problems.iter().map(|p| p.field).collect::<Vec<_>>(), ["--bundle-key"]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = RawServeConfig {
            listen: Some("8443".into()),
            health_listen: Some("nowhere".into()),
            tls_cert: None,
            tls_key: Some("/nonexistent/tls.key".into()),
            no_match: Some("maybe".into()),
            kube: Some(false),
            timeout_budget: Some("45s".into()),
            max_body_bytes: Some(10),
            insecure_registries: Some(vec!["http://reg.local/x".into()]),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        let fields: Vec<_> = err.problems.iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "--listen",
                "--health-listen",
                "--tls-cert",
                "--tls-key",
                "--policy-dir",
                "--no-match",
                "--insecure-registry",
                "--timeout-budget",
                "--max-body-bytes"
            ]
        );
        let text = err.to_string();
        assert!(text.contains("\"maybe\": expected allow, warn or deny"), "{text}");
        assert!(text.contains("/nonexistent/tls.key is not a readable file"), "{text}");
    }

    #[test]
    fn cache_capacity_defaults_to_the_verifier_default_and_is_bounded() {
        let (dir, cert, key) = files();
        let base = RawServeConfig {
            tls_cert: Some(cert),
            tls_key: Some(key),
            policy_dir: Some(dir.path().into()),
            ..Default::default()
        };
        assert_eq!(base.clone().validate().unwrap().cache_capacity, 10_000);
        let set = RawServeConfig { cache_capacity: Some(64), ..base.clone() };
        assert_eq!(set.validate().unwrap().cache_capacity, 64);
        for bad in [0, MAX_CACHE_CAPACITY + 1] {
            let err = RawServeConfig { cache_capacity: Some(bad), ..base.clone() }.validate().unwrap_err();
            assert_eq!(err.problems.iter().map(|p| p.field).collect::<Vec<_>>(), ["--cache-capacity"]);
        }
    }

    #[test]
    fn a_shared_cache_needs_a_redis_url_and_its_key_file_and_never_echoes_the_password() {
        let (dir, cert, key) = files();
        let key_file = dir.path().join("hmac.key");
        std::fs::write(&key_file, "k".repeat(48)).unwrap();
        let base = RawServeConfig {
            tls_cert: Some(cert),
            tls_key: Some(key),
            policy_dir: Some(dir.path().into()),
            ..Default::default()
        };
        assert!(base.clone().validate().unwrap().shared_cache.is_none());
        let url = "redis://:s3cret@redis.vouch.svc:6379/0";
        let on = RawServeConfig {
            shared_cache: Some(url.into()),
            shared_cache_key_file: Some(key_file.clone()),
            ..base.clone()
        };
        let c = on.clone().validate().unwrap().shared_cache.unwrap();
        assert_eq!((c.url.as_str(), c.timeout), (url, DEFAULT_SHARED_CACHE_TIMEOUT));
        assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");

        let fields = |raw: RawServeConfig| {
            let err = raw.validate().unwrap_err();
            assert!(!err.to_string().contains("s3cret"), "{err}");
            err.problems.iter().map(|p| p.field).collect::<Vec<_>>()
        };
        let no_key = RawServeConfig { shared_cache_key_file: None, ..on.clone() };
        assert_eq!(fields(no_key), ["--shared-cache-key-file"]);
        let http = RawServeConfig { shared_cache: Some("http://:s3cret@redis:6379".into()), ..on.clone() };
        assert_eq!(fields(http), ["--shared-cache"]);
        let missing = RawServeConfig { shared_cache_key_file: Some(dir.path().join("nope")), ..on.clone() };
        assert_eq!(fields(missing), ["--shared-cache-key-file"]);
        let slow = RawServeConfig { shared_cache_timeout: Some("5s".into()), ..on.clone() };
        assert_eq!(fields(slow), ["--shared-cache-timeout"]);
        let orphan = RawServeConfig { shared_cache_key_file: Some(key_file), ..base.clone() };
        assert_eq!(fields(orphan), ["--shared-cache-key-file"]);
    }

    #[test]
    fn same_port_for_health_and_webhooks_is_refused() {
        let (dir, cert, key) = files();
        let err = RawServeConfig {
            listen: Some("0.0.0.0:8443".into()),
            health_listen: Some("127.0.0.1:8443".into()),
            tls_cert: Some(cert),
            tls_key: Some(key),
            policy_dir: Some(dir.path().into()),
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert!(err.problems[0].message.contains("separate ports"));
    }

    #[test]
    fn flags_override_the_file() {
        let file: RawServeConfig =
            serde_yaml::from_str("listen: 0.0.0.0:9443\ndryRun: true\nnoMatch: warn\ntimeoutBudget: 5s\n")
                .unwrap();
        let flags = RawServeConfig { listen: Some("127.0.0.1:1443".into()), ..Default::default() };
        let merged = file.overlay(flags);
        assert_eq!(merged.listen.as_deref(), Some("127.0.0.1:1443"));
        assert_eq!(merged.dry_run, Some(true));
        assert_eq!(merged.no_match.as_deref(), Some("warn"));
        assert!(serde_yaml::from_str::<RawServeConfig>("lisen: x\n").is_err(), "unknown keys are rejected");
    }

    #[test]
    fn status_targets_come_from_flags_or_the_file_and_need_the_cluster() {
        let (dir, cert, key) = files();
        let base = RawServeConfig {
            tls_cert: Some(cert),
            tls_key: Some(key),
            policy_dir: Some(dir.path().into()),
            kube: Some(true),
            ..Default::default()
        };
        let flag = |s: &str| RawStatusTarget::Text(s.to_owned());
        let kars = StatusTarget {
            group: "kars.azure.com".into(),
            version: "v1alpha1".into(),
            kind: "KarsSandbox".into(),
            plural: "karssandboxes".into(),
        };
        let c = RawServeConfig {
            status_targets: Some(vec![flag("kars.azure.com/v1alpha1/KarsSandbox=karssandboxes")]),
            ..base.clone()
        }
        .validate()
        .unwrap();
        assert_eq!(c.status_targets, vec![kars.clone()]);
        // The file: strings or objects; flags replace the file's list.
        let file: RawServeConfig = serde_yaml::from_str(
            "statusTargets:\n  - kars.azure.com/v1alpha1/KarsSandbox=karssandboxes\n  - {group: ml.example.com, version: v1, kind: ModelDeployment, plural: modeldeployments}\n",
        )
        .unwrap();
        let merged = RawServeConfig { status_targets: file.status_targets.clone(), ..base.clone() };
        let c = merged.clone().validate().unwrap();
        assert_eq!(c.status_targets.len(), 2);
        assert_eq!(c.status_targets[1].kind, "ModelDeployment");
        let over = RawServeConfig {
            status_targets: Some(vec![flag("a.example.com/v1/A=as")]),
            ..Default::default()
        };
        assert_eq!(merged.overlay(over).validate().unwrap().status_targets.len(), 1);
        assert!(serde_yaml::from_str::<RawServeConfig>(
            "statusTargets: [{group: a, version: v1, kind: A, plural: as, extra: 1}]\n"
        )
        .is_err());

        for (bad, why) in [
            ("kars.azure.com/v1alpha1/KarsSandbox", "expected GROUP/VERSION/KIND=PLURAL"),
            ("kars.azure.com/KarsSandbox=karssandboxes", "expected GROUP/VERSION/KIND=PLURAL"),
            ("v1/Pod=pods", "expected GROUP/VERSION/KIND=PLURAL"),
            ("/v1/Pod=pods", "not an API group of custom resources"),
            ("kars/v1alpha1/KarsSandbox=karssandboxes", "not an API group of custom resources"),
            ("kars.azure.com/1/KarsSandbox=karssandboxes", "not an API version"),
            ("kars.azure.com/v1alpha1/karsSandbox=karssandboxes", "not a Kind"),
            ("kars.azure.com/v1alpha1/KarsSandbox=KarsSandboxes", "not a resource name"),
        ] {
            let e = RawServeConfig { status_targets: Some(vec![flag(bad)]), ..base.clone() }
                .validate()
                .unwrap_err();
            assert_eq!(e.problems[0].field, "--status-target", "{bad}");
            assert!(e.problems[0].message.contains(why), "{bad}: {}", e.problems[0].message);
        }
        let twice = vec![
            flag("kars.azure.com/v1alpha1/KarsSandbox=karssandboxes"),
            flag("kars.azure.com/v1/KarsSandbox=karssandboxes"),
        ];
        let e = RawServeConfig { status_targets: Some(twice), ..base.clone() }.validate().unwrap_err();
        assert!(e.problems[0].message.contains("given twice"), "{e}");
        let e = RawServeConfig {
            status_targets: Some(vec![flag("kars.azure.com/v1alpha1/KarsSandbox=karssandboxes")]),
            kube: Some(false),
            ..base
        }
        .validate()
        .unwrap_err();
        assert!(e.problems[0].message.contains("needs --kube"), "{e}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("8s").unwrap(), Duration::from_secs(8));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("3h").unwrap(), Duration::from_secs(3 * 3600));
        assert!(parse_duration("3d").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn the_scanner_defaults_to_hourly_paced_at_20_and_refuses_intervals_out_of_range() {
        let (dir, cert, key) = files();
        let base = RawServeConfig {
            tls_cert: Some(cert),
            tls_key: Some(key),
            policy_dir: Some(dir.path().into()),
            ..RawServeConfig::default()
        };
        let c = base.clone().validate().unwrap();
        assert_eq!((c.scan_interval, c.scan_max_registry_rps), (Duration::from_secs(3600), 20));
        let off = RawServeConfig { scan_interval: Some("0".into()), ..base.clone() }.validate().unwrap();
        assert!(off.scan_interval.is_zero());
        let set = RawServeConfig {
            scan_interval: Some("30m".into()),
            scan_max_registry_rps: Some(5),
            ..base.clone()
        };
        let c = set.validate().unwrap();
        assert_eq!((c.scan_interval, c.scan_max_registry_rps), (Duration::from_secs(1800), 5));
        for (interval, rps, field) in [
            (Some("5s"), None, "--scan-interval"),
            (Some("8d"), None, "--scan-interval"),
            (None, Some(0), "--scan-max-registry-rps"),
        ] {
            let bad = RawServeConfig {
                scan_interval: interval.map(Into::into),
                scan_max_registry_rps: rps,
                ..base.clone()
            };
            let e = bad.validate().unwrap_err();
            assert!(e.problems.iter().any(|p| p.field == field), "{e:?}");
        }
    }
}
