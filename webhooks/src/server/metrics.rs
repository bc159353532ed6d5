//! Prometheus metrics of the webhook server, served as OpenMetrics text on the health port.
//!
//! Counters kept elsewhere (the verdict cache, the registry client, certificate reloads) are read at
//! scrape time, so they are never out of step with their source.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use vouch_attest::verify::ArtifactVerifier;

use super::client_ca::ReloadingClientCa;
use super::handshake::{HandshakeFailure, HandshakeFailures};
use super::tls::ReloadingCert;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of `vouch_admission_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// `validate` or `mutate`.
    pub endpoint: &'static str,
    /// CREATE, UPDATE, DELETE, CONNECT, or INVALID for a request that could not be read.
    pub operation: &'static str,
}

/// Labels of `vouch_decisions_total` (one per finding: artifact x policy x requirement).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DecisionLabels {
    /// pass, fail or error.
    pub result: String,
    /// The policy's name.
    pub policy: String,
    /// enforce, warn or audit.
    pub mode: String,
}

/// Labels of `vouch_admission_responses_total` and `vouch_admission_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ResponseLabels {
    /// `validate` or `mutate`.
    pub endpoint: &'static str,
    /// allowed, denied, or invalid (HTTP 4xx).
    pub outcome: &'static str,
}

/// Labels of `vouch_admission_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct EndpointLabels {
    /// `validate` or `mutate`.
    pub endpoint: &'static str,
}

/// Labels of `vouch_registry_failures_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FailureLabels {
    /// timeout, unreachable, reset, closed_early, throttled, server_error, too_large, invalid_response,
    /// digest_mismatch, not_found, refused or other.
    pub kind: &'static str,
}

/// Labels of `vouch_tls_handshake_failures_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HandshakeLabels {
    /// no_client_certificate, untrusted_client_certificate, server_certificate_rejected or other.
    pub reason: &'static str,
}

/// Where scrape-time counters come from; attached once the server has built them.
#[derive(Debug, Default)]
struct Sources {
    verifier: OnceLock<ArtifactVerifier>,
    cert: OnceLock<Arc<ReloadingCert>>,
    client_ca: OnceLock<Arc<ReloadingClientCa>>,
    handshakes: Arc<HandshakeFailures>,
}

fn const_counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let counter = ConstCounter::new(value);
    let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
    counter.encode(metric)
}

impl Collector for Sources {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if let Some(v) = self.verifier.get() {
            let cache = v.cache_stats();
            let registry = v.registry_stats();
            const_counter(
                &mut encoder,
                "vouch_verdict_cache_hits",
                "Verdict cache look-ups answered from the cache.",
                cache.hits,
            )?;
            const_counter(
                &mut encoder,
                "vouch_verdict_cache_misses",
                "Verdict cache look-ups that ran a verification.",
                cache.misses,
            )?;
            const_counter(
                &mut encoder,
                "vouch_verdict_cache_evictions",
                "Verdicts evicted to keep the cache within --cache-capacity (expiry not counted).",
                cache.evictions,
            )?;
            let entries = ConstGauge::new(i64::try_from(cache.entries).unwrap_or(i64::MAX));
            let metric = encoder.encode_descriptor(
                "vouch_verdict_cache_entries",
                "Verdicts held in the cache now (approximate).",
                None,
                entries.metric_type(),
            )?;
            entries.encode(metric)?;
            if let Some(shared) = v.shared_cache_stats() {
                for (name, help, value) in [
                    ("vouch_shared_cache_hits", "Verdicts taken from the shared cache (Redis).", shared.hits),
                    ("vouch_shared_cache_misses", "Shared-cache look-ups that found no usable verdict and verified.", shared.misses),
                    ("vouch_shared_cache_errors", "Shared-cache (Redis) calls that failed or timed out.", shared.errors),
                    (
                        "vouch_shared_cache_rejected",
                        "Shared-cache entries ignored: bad HMAC, another key or generation, expired, unreadable.",
                        shared.rejected,
                    ),
                    (
                        "vouch_shared_cache_bypassed",
                        "Look-ups that skipped the shared cache because a call failed less than a second ago.",
                        shared.bypassed,
                    ),
                    (
                        "vouch_shared_cache_waits",
                        "Look-ups that waited for another replica verifying the same verdict.",
                        shared.waits,
                    ),
                ] {
                    const_counter(&mut encoder, name, help, value)?;
                }
            }
            const_counter(&mut encoder, "vouch_registry_calls", "Registry API calls made.", registry.calls)?;
            const_counter(
                &mut encoder,
                "vouch_registry_http_requests",
                "HTTP requests sent to registries: a call may take several (token, HEAD then GET, retries).",
                registry.http_requests,
            )?;
            const_counter(
                &mut encoder,
                "vouch_registry_retries",
                "HTTP requests repeated after a transient failure.",
                registry.retries,
            )?;
            const_counter(
                &mut encoder,
                "vouch_registry_errors",
                "Registry API calls that failed.",
                registry.errors,
            )?;
            // Every kind, zeros included, so that rate() and alerts see a series from the start.
            let mut family = encoder.encode_descriptor(
                "vouch_registry_failures",
                "Registry API calls that failed, by kind.",
                None,
                MetricType::Counter,
            )?;
            for (kind, count) in registry.failures.iter() {
                let labels = FailureLabels { kind: kind.as_str() };
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        if let Some(c) = self.cert.get() {
            const_counter(&mut encoder, "vouch_tls_reloads", "Serving certificate reloads.", c.reloads())?;
            const_counter(
                &mut encoder,
                "vouch_tls_reload_errors",
                "New serving certificates rejected (the previous one is kept).",
                c.reload_errors(),
            )?;
        }
        // Every reason, zeros included, so that rate() and alerts see a series from the start.
        let mut family = encoder.encode_descriptor(
            "vouch_tls_handshake_failures",
            "TLS handshakes on the webhook port that did not complete, by reason.",
            None,
            MetricType::Counter,
        )?;
        for reason in HandshakeFailure::ALL {
            let labels = HandshakeLabels { reason: reason.as_str() };
            ConstCounter::new(self.handshakes.count(reason)).encode(family.encode_family(&labels)?)?;
        }
        if let Some(c) = self.client_ca.get() {
            const_counter(
                &mut encoder,
                "vouch_client_ca_reloads",
                "Client CA bundle (--client-ca) reloads.",
                c.reloads(),
            )?;
            const_counter(
                &mut encoder,
                "vouch_client_ca_reload_errors",
                "New client CA bundles rejected (the previous CAs stay in force).",
                c.reload_errors(),
            )?;
        }
        Ok(())
    }
}

/// The server's metrics; clone freely (clones share the counters).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    sources: Arc<Sources>,
    requests: Family<RequestLabels, Counter>,
    responses: Family<ResponseLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    duration: Family<EndpointLabels, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh metrics with every family registered.
    pub fn new() -> Self {
        Self::with_extra(|_| {})
    }

    /// Fresh metrics, plus whatever `register` adds (e.g. the status writer's counters).
    pub fn with_extra(register: impl FnOnce(&mut Registry)) -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let responses = Family::<ResponseLabels, Counter>::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        // 1 ms .. ~16 s: a cache hit is sub-millisecond, a cold verification seconds.
        let duration = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register("vouch_admission_requests", "Admission reviews received.", requests.clone());
        registry.register("vouch_admission_responses", "Admission responses by outcome.", responses.clone());
        registry.register(
            "vouch_decisions",
            "Policy findings by result, policy and mode.",
            decisions.clone(),
        );
        registry.register(
            "vouch_admission_duration_seconds",
            "Time from reading an admission review to writing the response.",
            duration.clone(),
        );
        register(&mut registry);
        let sources = Arc::new(Sources::default());
        registry.register_collector(Box::new(Arc::clone(&sources)));
        Self { registry: Arc::new(registry), sources, requests, responses, decisions, duration }
    }

    /// Read cache and registry counters from this verifier at scrape time (first call wins).
    pub fn attach_verifier(&self, verifier: ArtifactVerifier) {
        let _ = self.sources.verifier.set(verifier);
    }

    /// Read certificate reload counters from this resolver at scrape time (first call wins).
    pub fn attach_cert(&self, cert: Arc<ReloadingCert>) {
        let _ = self.sources.cert.set(cert);
    }

    /// Read the client CA bundle's reload counters at scrape time (`--client-ca`).
    pub fn attach_client_ca(&self, client_ca: Arc<ReloadingClientCa>) {
        let _ = self.sources.client_ca.set(client_ca);
    }

    /// Where the TLS accept loop counts failed handshakes (`vouch_tls_handshake_failures_total`).
    pub fn handshake_failures(&self) -> Arc<HandshakeFailures> {
        Arc::clone(&self.sources.handshakes)
    }

    /// Count one admission review (static labels: nothing is allocated per request).
    pub fn request(&self, endpoint: &'static str, operation: &'static str) {
        self.requests.get_or_create(&RequestLabels { endpoint, operation }).inc();
    }

    /// Count one response and its latency.
    pub fn response(&self, endpoint: &'static str, outcome: &'static str, elapsed: Duration) {
        self.responses.get_or_create(&ResponseLabels { endpoint, outcome }).inc();
        self.duration.get_or_create(&EndpointLabels { endpoint }).observe(elapsed.as_secs_f64());
    }

    /// Count one finding.
    pub fn decision(&self, result: &str, policy: &str, mode: &str) {
        self.decisions
            .get_or_create(&DecisionLabels {
                result: result.into(),
                policy: policy.into(),
                mode: mode.into(),
            })
            .inc();
    }

    /// Everything, as OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            // Writing to a String cannot fail; an encoder bug must not take the health port down.
            out = "# EOF\n".into();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_as_documented() {
        let m = Metrics::new();
        m.request("validate", "CREATE");
        m.request("validate", "CREATE");
        m.decision("fail", "prod-signed", "enforce");
        m.response("validate", "denied", Duration::from_millis(3));
        let text = m.encode();
        assert!(
            text.contains(r#"vouch_admission_requests_total{endpoint="validate",operation="CREATE"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vouch_decisions_total{result="fail",policy="prod-signed",mode="enforce"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"vouch_admission_responses_total{endpoint="validate",outcome="denied"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"vouch_admission_duration_seconds_count{endpoint="validate"} 1"#), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn registry_failures_are_counted_by_kind() {
        // Nothing listens on port 1: every call fails as unreachable, none as anything else.
        let verifier = ArtifactVerifier::new(vouch_attest::verify::VerifierConfig {
            registry: vouch_attest::registry::RegistryConfig {
                insecure_registries: vec!["127.0.0.1:1".into()],
                timeout: Duration::from_secs(2),
                retries: 0,
                ..Default::default()
            },
            trust_root: vouch_attest::trust_root::TrustRoot::public_good().unwrap(),
            cache: Default::default(),
            options: Default::default(),
        })
        .unwrap();
        let r: vouch_attest::ArtifactRef = "127.0.0.1:1/acme/app:1".parse().unwrap();
        assert!(verifier.resolve(&r).await.is_err());
        let m = Metrics::new();
        m.attach_verifier(verifier);
        let text = m.encode();
        assert!(text.contains(r#"vouch_registry_failures_total{kind="unreachable"} 1"#), "{text}");
        assert!(text.contains(r#"vouch_registry_failures_total{kind="timeout"} 0"#), "{text}");
        assert!(text.contains("vouch_registry_errors_total 1"), "{text}");
    }

    #[test]
    fn handshake_failures_are_listed_by_reason_zeros_included() {
        let m = Metrics::new();
        let peer = "192.0.2.1:1234".parse().unwrap();
        m.handshake_failures().record(
            peer,
            HandshakeFailure::NoClientCertificate,
            &"peer sent no certificates",
        );
        let text = m.encode();
        for (reason, n) in [
            ("no_client_certificate", 1),
            ("untrusted_client_certificate", 0),
            ("server_certificate_rejected", 0),
            ("other", 0),
        ] {
            let line = format!(r#"vouch_tls_handshake_failures_total{{reason="{reason}"}} {n}"#);
            assert!(text.contains(&line), "{line} in {text}");
        }
    }

    #[test]
    fn extra_metrics_are_encoded_with_ours() {
        let extra = Counter::<u64>::default();
        let m = Metrics::with_extra(|r| r.register("vouch_status_dropped", "Dropped.", extra.clone()));
        extra.inc();
        assert!(m.encode().contains("vouch_status_dropped_total 1"), "{}", m.encode());
    }
}
