//! Continuing the caller's trace: kube-apiserver sends the W3C Trace Context headers (`traceparent`,
//! `tracestate`) to webhooks when its own tracing is on. The `admission` span becomes a child of the span
//! they name; a missing or malformed `traceparent` starts a new trace, never an error.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// A request's W3C trace context headers, as sent (usually none); an axum extractor that never rejects.
#[derive(Debug, Clone, Default)]
pub struct TraceHeaders {
    traceparent: Option<HeaderValue>,
    tracestate: Option<HeaderValue>,
}

impl<S: Send + Sync> FromRequestParts<S> for TraceHeaders {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(Self::from_headers(&parts.headers))
    }
}

impl TraceHeaders {
    /// The headers of `headers` (values are shared, not copied).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let traceparent = headers.get(TRACEPARENT).cloned();
        let tracestate = traceparent.as_ref().and_then(|_| headers.get(TRACESTATE).cloned());
        Self { traceparent, tracestate }
    }

    /// The remote span the headers name; `None` when there is no `traceparent` or it is malformed.
    pub fn remote_context(&self) -> Option<opentelemetry::Context> {
        let traceparent = self.traceparent.as_ref()?.to_str().ok()?;
        let tracestate = self.tracestate.as_ref().and_then(|v| v.to_str().ok());
        let cx = TraceContextPropagator::new().extract(&Pair { traceparent, tracestate });
        cx.span().span_context().is_valid().then_some(cx)
    }

    /// Make `span` (not yet entered) a child of the remote span. Nothing happens without a `traceparent`,
    /// with a malformed one (the span starts a new trace), or when no OpenTelemetry layer records spans
    /// (export off: then not even the header is parsed).
    pub fn continue_trace(&self, span: &tracing::Span) {
        if self.traceparent.is_none() || !recorded_by_opentelemetry(span) {
            return;
        }
        if let Some(cx) = self.remote_context() {
            if let Err(e) = span.set_parent(cx) {
                tracing::debug!(error = %e, "cannot continue the caller's trace");
            }
        }
    }
}

/// Whether an OpenTelemetry layer records `span` (not yet entered). Asked by giving it the empty parent
/// it has anyway (the admission span starts outside any OpenTelemetry context): the layer's hook is
/// private, and only it accepts a parent.
fn recorded_by_opentelemetry(span: &tracing::Span) -> bool {
    span.set_parent(opentelemetry::Context::new()).is_ok()
}

/// The two headers as the propagator reads them.
struct Pair<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

impl Extractor for Pair<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => Some(self.traceparent),
            TRACESTATE => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        let mut keys = vec![TRACEPARENT];
        if self.tracestate.is_some() {
            keys.push(TRACESTATE);
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT_ID: &str = "00f067aa0ba902b7";

    /// Keeps what is exported.
    #[derive(Debug, Clone, Default)]
    struct Kept(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Kept {
        fn export(&self, batch: Vec<SpanData>) -> impl std::future::Future<Output = OTelSdkResult> + Send {
            self.0.lock().unwrap().extend(batch);
            std::future::ready(Ok(()))
        }
    }

    fn headers(traceparent: &str, tracestate: Option<&str>) -> TraceHeaders {
        let mut map = HeaderMap::new();
        map.insert(TRACEPARENT, HeaderValue::from_str(traceparent).unwrap());
        if let Some(s) = tracestate {
            map.insert(TRACESTATE, HeaderValue::from_str(s).unwrap());
        }
        TraceHeaders::from_headers(&map)
    }

    /// The `admission` span as exported after `continue_trace(headers)`, under a real OpenTelemetry layer.
    fn exported_admission(headers: &TraceHeaders) -> SpanData {
        let kept = Kept::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(kept.clone()).build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("admission");
            headers.continue_trace(&span);
            span.in_scope(|| {});
        });
        let spans = kept.0.lock().unwrap().clone();
        assert_eq!(spans.len(), 1, "{spans:?}");
        spans.into_iter().next().unwrap()
    }

    #[test]
    fn a_valid_traceparent_becomes_the_parent_and_tracestate_is_kept() {
        let h = headers(&format!("00-{TRACE_ID}-{PARENT_ID}-01"), Some("vendor=abc"));
        let span = exported_admission(&h);
        assert_eq!(span.span_context.trace_id(), TraceId::from_hex(TRACE_ID).unwrap());
        assert_eq!(span.parent_span_id, SpanId::from_hex(PARENT_ID).unwrap());
        assert!(span.parent_span_is_remote);
        assert_eq!(span.span_context.trace_state().header(), "vendor=abc");
    }

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace() {
        for bad in [
            "garbage",
            "00-not-hex-01",
            // All-zero trace id and span id are invalid per W3C Trace Context.
            &format!("00-00000000000000000000000000000000-{PARENT_ID}-01"),
            &format!("00-{TRACE_ID}-0000000000000000-01"),
            &format!("ff-{TRACE_ID}-{PARENT_ID}-01"),
            &format!("00-{TRACE_ID}-{PARENT_ID}"),
        ] {
            let h = headers(bad, Some("vendor=abc"));
            assert!(h.remote_context().is_none(), "{bad}");
            let span = exported_admission(&h);
            assert_eq!(span.parent_span_id, SpanId::INVALID, "{bad}: a root span");
            assert_ne!(span.span_context.trace_id(), TraceId::from_hex(TRACE_ID).unwrap(), "{bad}");
            assert!(span.span_context.is_valid(), "{bad}: a fresh trace id");
        }
    }

    #[test]
    fn without_a_traceparent_there_is_no_parent_and_tracestate_alone_is_ignored() {
        let mut map = HeaderMap::new();
        map.insert(TRACESTATE, HeaderValue::from_static("vendor=abc"));
        let h = TraceHeaders::from_headers(&map);
        assert!(h.remote_context().is_none());
        assert_eq!(exported_admission(&h).parent_span_id, SpanId::INVALID);
    }

    #[test]
    fn without_an_opentelemetry_layer_the_header_is_not_even_read() {
        let h = headers(&format!("00-{TRACE_ID}-{PARENT_ID}-01"), None);
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("admission");
            assert!(!recorded_by_opentelemetry(&span));
            h.continue_trace(&span);
        });
    }
}
