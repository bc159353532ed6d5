//! `vouch serve`: the admission webhooks. Configuration from flags over an optional YAML file, validated
//! before any port is bound (every problem listed, exit 2); SIGTERM or SIGINT drains and exits 0.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::server::config::RawServeConfig;

use super::exit::{EXIT_ERROR, EXIT_OK};
use super::registry_args::RegistryArgs;

/// Arguments; every one can also be given in `--config` (camelCase keys). Flags win.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// YAML file with the same settings (camelCase keys, e.g. `tlsCert`, `timeoutBudget`).
    #[arg(long, env = "VOUCH_SERVE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Serving certificate chain (PEM); reloaded when it changes.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// Private key of the serving certificate (PEM).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Require callers of /validate and /mutate to present a client certificate issued by one of these CAs
    /// (PEM bundle; the API server's, see docs/operations.md); reloaded when it changes.
    #[arg(long)]
    pub client_ca: Option<PathBuf>,
    /// How often the certificate files, --client-ca, --policy-dir and --trusted-root are checked for
    /// changes, e.g. `5s`.
    #[arg(long)]
    pub tls_reload_interval: Option<String>,
    /// HTTPS address of /validate and /mutate [default: 0.0.0.0:8443].
    #[arg(long)]
    pub listen: Option<String>,
    /// Plain-HTTP address of /healthz, /readyz and /metrics [default: 0.0.0.0:8080].
    #[arg(long)]
    pub health_listen: Option<String>,
    /// Read policies from this directory (YAML) instead of the cluster.
    #[arg(long)]
    pub policy_dir: Option<PathBuf>,
    /// Extractors for custom kinds and extra init-container fetcher profiles (YAML; docs/extractors.md).
    #[arg(long)]
    pub extraction_config: Option<PathBuf>,
    /// Dry-run audit mode: nothing is denied, every would-be denial is recorded.
    #[arg(long)]
    pub dry_run: bool,
    /// Artifacts no policy covers: allow, warn or deny [default: allow].
    #[arg(long)]
    pub no_match: Option<String>,
    /// Objects the mutating webhook pins to digests: all (every kind checked) or pods (Pods only: workload
    /// controllers are validated but not changed, so GitOps tools see no drift) [default: all].
    #[arg(long, value_parser = ["all", "pods"])]
    pub pin_scope: Option<String>,
    /// Registries, credentials and trust root (the trusted root is reloaded when it changes).
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// With --tuf-mirror: time between refreshes of the trusted root (1m – 7d) [default: 24h].
    #[arg(long, requires = "tuf_mirror")]
    pub tuf_refresh: Option<String>,
    /// Key-based signatures need no Rekor entry (cosign's `--insecure-ignore-tlog`).
    #[arg(long)]
    pub insecure_ignore_tlog: bool,
    /// Per-request time budget, below the webhook's timeoutSeconds [default: 8s].
    #[arg(long)]
    pub timeout_budget: Option<String>,
    /// Largest AdmissionReview body accepted [default: 8388608].
    #[arg(long)]
    pub max_body_bytes: Option<u64>,
    /// Use the Kubernetes API (in-cluster or kubeconfig) for policies, namespace labels, pull secrets and
    /// status [default: true without --policy-dir or --bundle, false with either]. Without it, namespace
    /// labels are unknown: policies with a namespaceSelector apply everywhere, judged by their failurePolicy.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub kube: Option<bool>,
    /// Time in-flight requests get after SIGTERM [default: 20s].
    #[arg(long)]
    pub shutdown_grace: Option<String>,
    /// Most verdicts (and tag resolutions) kept in memory; size for the distinct digests admitted per
    /// 5 minutes [default: 10000].
    #[arg(long)]
    pub cache_capacity: Option<u64>,
    /// With --kube: re-verify every running Pod this often (one replica, by a Lease), and at once when the
    /// policies or trust root change; `0` turns the scanner off [default: 1h].
    #[arg(long)]
    pub scan_interval: Option<String>,
    /// Registry requests per second at most for the scanner's verifications (admission is not paced)
    /// [default: 20].
    #[arg(long)]
    pub scan_max_registry_rps: Option<u32>,
    /// Verify from this offline bundle only (zero network); its policies apply unless --policy-dir.
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// The bundle's public key (PEM); required with --bundle unless --bundle-allow-unsigned.
    #[arg(long)]
    pub bundle_key: Option<PathBuf>,
    /// Accept a bundle without checking who made it (no --bundle-key). Its policies are then unauthenticated.
    #[arg(long)]
    pub bundle_allow_unsigned: bool,
    /// With --kube: a custom resource kind whose admitted objects get the SupplyChainVerified condition in
    /// their status, as GROUP/VERSION/KIND=PLURAL (e.g. kars.azure.com/v1alpha1/KarsSandbox=karssandboxes);
    /// repeatable.
    #[arg(long = "status-target", value_name = "GROUP/VERSION/KIND=PLURAL")]
    pub status_targets: Vec<String>,
    /// Send decision events (denials, warnings, audit findings, scan drift) as CloudEvents 1.0 in HTTP binary
    /// mode to this http(s) URL; a slow or dead sink never delays admission (drops are counted).
    #[arg(long, value_name = "URL")]
    pub events_sink: Option<String>,
    /// With --events-sink: time limit of one delivery (100ms – 60s) [default: 2s].
    #[arg(long, requires = "events_sink")]
    pub events_timeout: Option<String>,
    /// Share verdicts with the other replicas through Redis or Valkey: redis://[:PASSWORD@]HOST:PORT[/DB] or
    /// rediss://… (TLS). Optional; when Redis is down or slow each replica decides on its own.
    #[arg(long, env = "VOUCH_SHARED_CACHE", value_name = "URL", hide_env_values = true)]
    pub shared_cache: Option<String>,
    /// The HMAC key all replicas share, which seals shared-cache entries (at least 32 bytes; required with
    /// --shared-cache).
    #[arg(long, value_name = "PATH")]
    pub shared_cache_key_file: Option<PathBuf>,
    /// Timeout of each Redis call, e.g. `100ms` (5ms – 1s) [default: 100ms].
    #[arg(long)]
    pub shared_cache_timeout: Option<String>,
    /// With a rediss:// --shared-cache: the CA certificates (PEM) the server's certificate must lead to,
    /// instead of the system's roots (a Redis with a private CA).
    #[arg(long, value_name = "PATH")]
    pub shared_cache_ca_file: Option<PathBuf>,
    /// Export traces (OpenTelemetry, OTLP over HTTP/protobuf) to this collector base URL, e.g.
    /// http://otel-collector:4318 (`/v1/traces` is appended); the standard OTEL_EXPORTER_OTLP_ENDPOINT and
    /// OTEL_* variables work too. Off by default; a slow or dead collector never delays admission.
    #[arg(long, value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

impl ServeArgs {
    fn raw(&self) -> RawServeConfig {
        RawServeConfig {
            listen: self.listen.clone(),
            health_listen: self.health_listen.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            client_ca: self.client_ca.clone(),
            tls_reload_interval: self.tls_reload_interval.clone(),
            policy_dir: self.policy_dir.clone(),
            extraction_config: self.extraction_config.clone(),
            // A bool flag can only switch on; the file can still set it.
            dry_run: self.dry_run.then_some(true),
            no_match: self.no_match.clone(),
            pin_scope: self.pin_scope.clone(),
            trusted_root: self.registry.trusted_root.clone(),
            insecure_registries: (!self.registry.insecure_registries.is_empty())
                .then(|| self.registry.insecure_registries.clone()),
            registry_auth_file: self.registry.registry_auth_file.clone(),
            insecure_ignore_tlog: self.insecure_ignore_tlog.then_some(true),
            timeout_budget: self.timeout_budget.clone(),
            max_body_bytes: self.max_body_bytes,
            kube: self.kube,
            shutdown_grace: self.shutdown_grace.clone(),
            cache_capacity: self.cache_capacity,
            scan_interval: self.scan_interval.clone(),
            scan_max_registry_rps: self.scan_max_registry_rps,
            bundle: self.bundle.clone(),
            bundle_key: self.bundle_key.clone(),
            bundle_allow_unsigned: self.bundle_allow_unsigned.then_some(true),
            tuf_mirror: self.registry.tuf_mirror.clone(),
            tuf_root: self.registry.tuf_root.clone(),
            tuf_cache: self.registry.tuf_cache.clone(),
            tuf_refresh: self.tuf_refresh.clone(),
            status_targets: (!self.status_targets.is_empty()).then(|| {
                self.status_targets
                    .iter()
                    .cloned()
                    .map(crate::server::config::RawStatusTarget::Text)
                    .collect()
            }),
            events_sink: self.events_sink.clone(),
            events_timeout: self.events_timeout.clone(),
            shared_cache: self.shared_cache.clone(),
            shared_cache_key_file: self.shared_cache_key_file.clone(),
            shared_cache_timeout: self.shared_cache_timeout.clone(),
            shared_cache_ca_file: self.shared_cache_ca_file.clone(),
            otlp_endpoint: self.otlp_endpoint.clone(),
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!(signal = "SIGINT", "shutting down");
    }
}

/// Run the command: exit 0 after a clean drain, 2 for configuration or start-up errors.
pub fn run(args: ServeArgs) -> ExitCode {
    let file = match &args.config {
        Some(path) => match RawServeConfig::from_yaml_file(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        },
        None => RawServeConfig::default(),
    };
    let (config, bundle) = match file.overlay(args.raw()).validate_with_bundle() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    // Logs (and traces, when configured) from here on; trace exports run on the server's runtime.
    let telemetry = match crate::telemetry::init(config.traces.clone(), runtime.handle()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let result = runtime.block_on(crate::server::run::run_with_bundle(config, bundle, shutdown_signal()));
    // The last spans go out while the runtime that sends them still exists.
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            tracing::error!(error = %e, "cannot start");
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
