//! `vouch serve --tuf-mirror`: the Sigstore trusted root kept fresh from a TUF repository while serving.
//!
//! At start the repository is read once; if that fails, the last good root cached by an earlier run is used,
//! else (public good only) the root embedded in vouch, each with a warning; a private mirror with nothing
//! cached stops the server before it binds a port. Then every `--tuf-refresh` the repository is read again: a
//! new root is put in force with [`Engine::replace_trust_root`] (verdicts are cached under the root's
//! fingerprint, so none made under the old root is served); a failed refresh changes nothing. Each refresh
//! is counted by result (`vouch_tuf_refresh_total{result}`), and the expiry of the TUF metadata vouching for
//! the root in force is exported (`vouch_tuf_metadata_expiry_timestamp_seconds`) for an alert.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use vouch_attest::trust_root::TrustRoot;
use vouch_attest::tuf::{TufError, TufTrustSource};
use vouch_attest::Digest;
use vouch_policies::Engine;

/// What is in force, and how refreshes went.
#[derive(Debug)]
pub struct TufRefresh {
    source: TufTrustSource,
    /// Whether the embedded root may stand in when nothing was ever fetched (public good only).
    embedded_fallback: bool,
    /// Fingerprint of the root put in force last.
    in_force: Mutex<Option<Digest>>,
    /// Refreshes by result label (`ok`, or [`TufError::label`]).
    results: Mutex<BTreeMap<&'static str, u64>>,
}

impl TufRefresh {
    /// Follow `source`; `embedded_fallback` for the public-good repository.
    #[must_use]
    pub fn new(source: TufTrustSource, embedded_fallback: bool) -> Arc<Self> {
        Arc::new(Self {
            source,
            embedded_fallback,
            in_force: Mutex::new(None),
            results: Mutex::new(BTreeMap::from([("ok", 0)])),
        })
    }

    fn count(&self, label: &'static str) {
        *self.results.lock().unwrap_or_else(|e| e.into_inner()).entry(label).or_default() += 1;
    }

    /// The root to start with: fetched now, else the last good one cached, else (public good) the embedded
    /// one. `Err` only when there is none of these.
    pub async fn initial(&self) -> Result<TrustRoot, TufError> {
        let root = match self.source.refresh().await {
            Ok(fetched) => {
                self.count("ok");
                tracing::info!(
                    mirror = %self.source.config().mirror,
                    fingerprint = %fetched.trust_root.fingerprint(),
                    root_version = fetched.root_version,
                    metadata_expires = %fetched.metadata_expires,
                    "trusted root fetched through TUF"
                );
                (*fetched.trust_root).clone()
            }
            Err(e) => {
                self.count(e.label());
                match (self.source.current(), self.embedded_fallback) {
                    (Some(last), _) => {
                        tracing::warn!(
                            error = %e,
                            fetched_at = %last.fetched_at,
                            metadata_expires = %last.metadata_expires,
                            "TUF refresh failed at start; using the last good trusted root cached"
                        );
                        (*last.trust_root).clone()
                    }
                    (None, true) => {
                        tracing::warn!(error = %e, "TUF refresh failed at start and nothing is cached; using the trusted root embedded in vouch");
                        TrustRoot::public_good()
                            .map_err(|reason| TufError::Config { reason: reason.to_string() })?
                    }
                    (None, false) => return Err(e),
                }
            }
        };
        *self.in_force.lock().unwrap_or_else(|e| e.into_inner()) = Some(root.fingerprint().clone());
        Ok(root)
    }

    /// Read the repository once; a new root goes into `engine`. Returns whether the root in force changed.
    pub async fn refresh_into(&self, engine: &Engine) -> Result<bool, TufError> {
        let fetched = match self.source.refresh().await {
            Ok(f) => f,
            Err(e) => {
                self.count(e.label());
                tracing::error!(
                    mirror = %self.source.config().mirror,
                    error = %e,
                    reason = e.label(),
                    "TUF refresh failed; the trusted root in force stays"
                );
                return Err(e);
            }
        };
        self.count("ok");
        let fingerprint = fetched.trust_root.fingerprint().clone();
        let mut in_force = self.in_force.lock().unwrap_or_else(|e| e.into_inner());
        if in_force.as_ref() == Some(&fingerprint) {
            return Ok(false);
        }
        engine.replace_trust_root((*fetched.trust_root).clone());
        tracing::info!(
            mirror = %self.source.config().mirror,
            fingerprint = %fingerprint,
            root_version = fetched.root_version,
            metadata_expires = %fetched.metadata_expires,
            "new trusted root from TUF put in force"
        );
        *in_force = Some(fingerprint);
        Ok(true)
    }

    /// Refresh every `every` until the task is aborted.
    pub fn spawn(self: &Arc<Self>, engine: Engine, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is now: start-up just refreshed
            loop {
                ticks.tick().await;
                let _ = this.refresh_into(&engine).await;
            }
        })
    }

    /// Register `vouch_tuf_refresh_total{result}` and `vouch_tuf_metadata_expiry_timestamp_seconds`.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        registry.register_collector(Box::new(TufMetrics(Arc::clone(self))));
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Debug)]
struct TufMetrics(Arc<TufRefresh>);

impl Collector for TufMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let results = self.0.results.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut m = encoder.encode_descriptor(
            "vouch_tuf_refresh",
            "Trusted root refreshes from the TUF repository, by result (ok, or why refused or failed).",
            None,
            MetricType::Counter,
        )?;
        for (result, n) in results {
            ConstCounter::new(n).encode(m.encode_family(&ResultLabels { result })?)?;
        }
        // Only once something was fetched (now or by an earlier run): the embedded root has no TUF metadata.
        if let Some(last) = self.0.source.current() {
            let m = encoder.encode_descriptor(
                "vouch_tuf_metadata_expiry_timestamp_seconds",
                "When the TUF metadata vouching for the trusted root in force expires (Unix seconds).",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(last.metadata_expires.timestamp()).encode(m)?;
        }
        Ok(())
    }
}
