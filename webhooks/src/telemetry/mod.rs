//! Logs and traces of `vouch serve`: one `tracing` subscriber for both, so a trace's spans are the spans
//! the JSON logs name.
//!
//! - Logs: JSON lines on stderr, filtered by `RUST_LOG` (default `info`).
//! - Traces ([`otlp`]): off unless `--otlp-endpoint` or an `OTEL_EXPORTER_OTLP_*ENDPOINT` variable is set.
//!   When off, no OpenTelemetry layer is installed at all and the spans below `admission` (all at debug
//!   level) are disabled where they are written. When on, they go to an OpenTelemetry layer of their own
//!   (the log filter does not see them) and from there, batched, to the collector.
//! - Incoming trace context ([`propagation`]): an admission request's W3C `traceparent` becomes the
//!   parent of its `admission` span.
//!
//! Span names: `admission` → `evaluate` → `verify` (one per artifact, authority and requirement) →
//! `registry_request` / `registry_auth` (one per HTTP exchange with a registry).

pub mod otlp;
pub mod propagation;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

pub use otlp::{ExportTarget, TelemetryError};

/// What [`init`] installed; [`Telemetry::shutdown`] sends the spans still queued.
#[derive(Debug)]
#[must_use = "dropping it without shutdown() loses the spans still queued"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether traces are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Export what is queued (bounded by the exporter's timeout) and stop the export thread. Call it outside
    /// the async runtime (it blocks), but while the runtime still exists (the export runs on it).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "traces not all exported at shutdown");
            }
        }
    }
}

/// Install the process's subscriber: JSON logs, and OpenTelemetry traces to `target` when there is one.
/// Exports run on `runtime` (the server's). A second call installs nothing (the first subscriber stays).
pub fn init(
    target: Option<ExportTarget>,
    runtime: &tokio::runtime::Handle,
) -> Result<Telemetry, TelemetryError> {
    let filter = log_filter();
    let Some(target) = target else {
        // Exactly the subscriber vouch had before traces existed: nothing of OpenTelemetry on this path.
        let _ = tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
            .try_init();
        return Ok(Telemetry { provider: None });
    };
    let provider = otlp::tracer_provider(&target, runtime)?;
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let traces = otlp::layer(&provider);
    let _ = tracing_subscriber::registry().with(logs).with(traces).try_init();
    tracing::info!(endpoint = %target, "exporting traces over OTLP/HTTP");
    Ok(Telemetry { provider: Some(provider) })
}

/// `RUST_LOG`, else `info`.
fn log_filter() -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
}
