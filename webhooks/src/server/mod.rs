//! The admission webhook server behind `vouch serve`.
//!
//! - [`router`]: POST /validate and /mutate (AdmissionReview v1), testable with `tower::ServiceExt::oneshot`;
//! - [`health_router`]: /healthz, /readyz and /metrics, served on a separate plain-HTTP port;
//! - [`serve_https`]: the TLS accept loop (rustls, reloaded certificate) with a graceful drain; failed
//!   handshakes counted and logged by reason ([`handshake`]);
//! - [`reload`]: `--policy-dir` and `--trusted-root` reloaded while serving, the last good kept;
//! - [`run`]: everything wired from a validated [`config::ServeConfig`].
//!
//! Evaluation knows nothing of HTTP: handlers read the review, look up cluster facts, ask the
//! [`Evaluator`] (the policy engine) within the time budget, and write the decision back.

pub mod admission;
pub mod client_ca;
pub mod config;
pub mod dev_pki;
pub mod file_watch;
pub mod handshake;
pub mod metrics;
pub mod reload;
pub mod run;
pub mod tls;
pub mod tuf_refresh;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::future::BoxFuture;
use tracing::Instrument as _;
use vouch_attest::registry::Credentials;
use vouch_policies::{AdmissionInput, Decision, ObjectJson};

use crate::cluster::ClusterContext;
use crate::telemetry::propagation::TraceHeaders;
use admission::{operation_name, parse_review, ClusterFacts, ResponseReview};
use metrics::Metrics;

/// Extra time the server waits beyond the engine's own budget before answering without it.
const BACKSTOP_SLACK: Duration = Duration::from_millis(500);
/// Time a client gets to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What decides: the policy engine in production, a scripted stand-in in tests.
pub trait Evaluator: Send + Sync + 'static {
    /// Policies and trust roots are loaded.
    fn is_ready(&self) -> bool;
    /// Decide; never fails (failures are findings, per the policies' failure policy).
    fn evaluate<'a>(&'a self, input: &'a AdmissionInput) -> BoxFuture<'a, Decision>;
    /// Reloaded configuration that was refused while the last good one stays in force, one line per
    /// source naming the file and the error (shown by /readyz; empty when all is in force).
    fn stale_configuration(&self) -> Vec<String> {
        Vec::new()
    }
    /// The configuration in force, one line per watched source (shown by /readyz).
    fn configuration_in_force(&self) -> Vec<String> {
        Vec::new()
    }
}

impl Evaluator for vouch_policies::Engine {
    fn is_ready(&self) -> bool {
        vouch_policies::Engine::is_ready(self)
    }

    fn evaluate<'a>(&'a self, input: &'a AdmissionInput) -> BoxFuture<'a, Decision> {
        Box::pin(vouch_policies::Engine::evaluate(self, input))
    }
}

/// Where admission results go after the response (status conditions, reports); never blocks.
pub trait StatusSink: Send + Sync + 'static {
    /// Hand over the findings of one admitted or denied request (not called for dry-run requests).
    fn submit(&self, input: &AdmissionInput, decision: &Decision);
}

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The policy engine.
    pub evaluator: Arc<dyn Evaluator>,
    /// Namespace labels and pull credentials.
    pub cluster: Arc<dyn ClusterContext>,
    /// Status and report writer (`None`: disabled, e.g. file mode).
    pub status: Option<Arc<dyn StatusSink>>,
    /// Metrics.
    pub metrics: Metrics,
    /// The engine's per-request budget; the server answers without it shortly after.
    pub budget: Duration,
    /// Global dry-run: the server's own fallbacks do not deny either.
    pub dry_run: bool,
    /// Which objects /mutate changes; others are answered "allowed, no patch" without evaluation.
    pub pin_scope: admission::PinScope,
    /// Where decision events go (`--events-sink`); `None`: nowhere.
    pub events: Option<crate::cloudevents::EventSink>,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// Set once the HTTPS listener accepts connections with a loaded certificate.
    pub serving: Arc<AtomicBool>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("budget", &self.budget)
            .field("dry_run", &self.dry_run)
            .field("pin_scope", &self.pin_scope)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

/// Which webhook a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The validating webhook.
    Validate,
    /// The mutating webhook.
    Mutate,
}

impl Endpoint {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::Mutate => "mutate",
        }
    }
}

/// The webhook routes: POST /validate and POST /mutate, bodies bounded by `state.max_body_bytes`.
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/validate", post(validate))
        .route("/mutate", post(mutate))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// The health routes: GET /healthz (live), /readyz (engine ready and TLS serving), /metrics.
pub fn health_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> Response {
    let mut missing = Vec::new();
    if !state.evaluator.is_ready() {
        missing.push("policies or trust roots not loaded");
    }
    if !state.serving.load(Ordering::Acquire) {
        missing.push("webhook TLS listener not serving");
    }
    if missing.is_empty() {
        // Stale configuration does not make the server unready: the last good one keeps enforcing.
        (StatusCode::OK, ready_body(state.evaluator.as_ref())).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", missing.join("; "))).into_response()
    }
}

/// The /readyz body while ready: `ready`, each refused source (`stale: …`), then what is in force.
fn ready_body(evaluator: &dyn Evaluator) -> String {
    let stale = evaluator.stale_configuration();
    let mut body =
        String::from(if stale.is_empty() { "ready\n" } else { "ready, with stale configuration\n" });
    for line in stale {
        let _ = writeln!(body, "stale: {line}");
    }
    for line in evaluator.configuration_in_force() {
        let _ = writeln!(body, "in force: {line}");
    }
    body
}

async fn metrics_text(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.encode()).into_response()
}

async fn validate(
    State(state): State<AppState>,
    trace: TraceHeaders,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    admit(state, Endpoint::Validate, trace, body).await
}

async fn mutate(
    State(state): State<AppState>,
    trace: TraceHeaders,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    admit(state, Endpoint::Mutate, trace, body).await
}

fn bad_request(
    state: &AppState,
    endpoint: Endpoint,
    started: Instant,
    status: StatusCode,
    message: String,
) -> Response {
    state.metrics.request(endpoint.as_str(), "INVALID");
    state.metrics.response(endpoint.as_str(), "invalid", started.elapsed());
    tracing::warn!(endpoint = endpoint.as_str(), status = status.as_u16(), error = %message, "admission request rejected");
    (status, format!("{message}\n")).into_response()
}

/// Cluster facts for the engine; `Err` carries the message a fail-closed answer gives.
async fn cluster_facts(state: &AppState, review: &admission::Review) -> Result<ClusterFacts, String> {
    if !review.needs_cluster_facts() {
        return Ok(ClusterFacts::default());
    }
    let Some(ns) = review.request.namespace.as_deref().filter(|n| !n.is_empty()) else {
        return Ok(ClusterFacts::default());
    };
    let namespace_labels = state
        .cluster
        .namespace_labels(ns)
        .await
        .map_err(|e| format!("vouch: cannot read the labels of namespace {ns} to match policies: {e}"))?;
    // Same cached Namespace read as the labels; NetworkPolicy egress checks need the allowlist annotation.
    let namespace_annotations = state
        .cluster
        .namespace_annotations(ns)
        .await
        .map_err(|e| format!("vouch: cannot read the annotations of namespace {ns}: {e}"))?;
    let pull_credentials = match review.pod_spec() {
        Some(spec) => state.cluster.pull_credentials(ns, spec).await.unwrap_or_else(|e| {
            // Anonymous pulls may still work (public images); if not, the registry error is a finding
            // judged by the policy's failure policy.
            tracing::warn!(error = %e, "cannot read image pull secrets; trying anonymously");
            Credentials::anonymous()
        }),
        None => Credentials::anonymous(),
    };
    Ok(ClusterFacts { namespace_labels, namespace_annotations, pull_credentials })
}

/// What the server answers when it cannot get a decision: deny, or under dry-run allow with a warning.
fn fallback(state: &AppState, message: String) -> Decision {
    if state.dry_run {
        Decision {
            allowed: true,
            warnings: vec![format!("dry-run: would deny: {message}")],
            ..Decision::default()
        }
    } else {
        let cause = vouch_policies::Cause {
            reason: vouch_policies::ReasonCode::classify("", None, &message),
            message: message.clone(),
            field: String::new(),
        };
        Decision { allowed: false, message: Some(message), causes: vec![cause], ..Decision::default() }
    }
}

async fn admit(
    state: AppState,
    endpoint: Endpoint,
    trace: TraceHeaders,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let bytes = match body {
        Ok(b) => b,
        Err(rejection) => {
            let status = rejection.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("request body larger than {} bytes (--max-body-bytes)", state.max_body_bytes)
            } else {
                format!("cannot read the request body: {}", rejection.body_text())
            };
            return bad_request(&state, endpoint, started, status, message);
        }
    };
    let review = match parse_review(&bytes) {
        Ok(r) => r,
        Err(e) => return bad_request(&state, endpoint, started, StatusCode::BAD_REQUEST, e.to_string()),
    };
    let operation = operation_name(&review.request.operation);
    state.metrics.request(endpoint.as_str(), operation);
    if endpoint == Endpoint::Mutate
        && !state.pin_scope.covers(&review.request.kind.group, &review.request.kind.kind)
    {
        // Out of --pin-scope: nothing is pinned, so nothing is evaluated (/validate decides about the
        // object). A `vouch.dev/verified` value the request brings is still undone: it is vouch's alone.
        let response = admission::mutate_response(
            &review.request.uid,
            review.object.as_ref().map(ObjectJson::read),
            review.old_object.as_ref().map(ObjectJson::read),
            &Decision::allow(),
        );
        state.metrics.response(endpoint.as_str(), "allowed", started.elapsed());
        return (StatusCode::OK, axum::Json(response.body)).into_response();
    }
    let req = &review.request;
    let span = tracing::info_span!(
        "admission",
        endpoint = endpoint.as_str(),
        uid = %req.uid,
        kind = %req.kind.kind,
        namespace = req.namespace.as_deref().unwrap_or_default(),
        // Not `name`: JSON logs use that key for the span's own name.
        object_name = %req.name,
        operation,
        dry_run = req.dry_run,
        decision = tracing::field::Empty,
        reason = tracing::field::Empty,
    );
    trace.continue_trace(&span);
    async move {
        let uid = review.request.uid.clone();
        let request_dry_run = review.request.dry_run;
        let decision_and_input = match cluster_facts(&state, &review).await {
            Ok(facts) => {
                let input = review.into_input(facts);
                let deadline = state.budget + BACKSTOP_SLACK;
                // A debug span: disabled when neither traces nor debug logs are on.
                let evaluation =
                    state.evaluator.evaluate(&input).instrument(tracing::debug_span!("evaluate"));
                let decision = match tokio::time::timeout(deadline, evaluation).await {
                    Ok(d) => d,
                    Err(_) => fallback(
                        &state,
                        format!(
                            "vouch: no decision within the {:?} time budget; denied (fail closed)",
                            state.budget
                        ),
                    ),
                };
                (decision, Some(input))
            }
            Err(message) => (fallback(&state, message), None),
        };
        let (decision, input) = decision_and_input;
        let response: ResponseReview = match endpoint {
            Endpoint::Validate => admission::validate_response(&uid, &decision),
            Endpoint::Mutate => {
                // What is read at once holds every pointer a pin names (they come from extraction) and
                // the annotations: the patch needs no more, and is written even when the rest is unreadable.
                let object = input.as_ref().and_then(|i| i.object.as_ref()).map(ObjectJson::read);
                let old_object = input.as_ref().and_then(|i| i.old_object.as_ref()).map(ObjectJson::read);
                admission::mutate_response(&uid, object, old_object, &decision)
            }
        };
        // Findings are counted and reported once, by the validating webhook (the mutating one sees the
        // same evaluation, answered from the verdict cache).
        if endpoint == Endpoint::Validate {
            for f in &decision.findings {
                state.metrics.decision(&f.result.to_string(), &f.policy, &f.mode.to_string());
            }
            if let (Some(status), Some(input), false) = (&state.status, &input, request_dry_run) {
                status.submit(input, &decision);
            }
            if let (Some(events), Some(input), false) = (&state.events, &input, request_dry_run) {
                if let Some(event) =
                    crate::cloudevents::CloudEvent::admission(events.source(), input, &decision)
                {
                    events.emit(event);
                }
            }
        }
        let outcome = if response.allowed { "allowed" } else { "denied" };
        record_decision(&tracing::Span::current(), response.allowed, &decision);
        let elapsed = started.elapsed();
        state.metrics.response(endpoint.as_str(), outcome, elapsed);
        // One info line per denial, warning or audit finding; a plain allow is at debug (see it with
        // RUST_LOG=info,vouch_webhooks::server=debug): logging every allowed review costs throughput, and
        // /metrics counts them all anyway.
        macro_rules! decided {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    allowed = response.allowed,
                    denial = decision.message.as_deref().unwrap_or_default(),
                    warnings = decision.warnings.len(),
                    audit = decision.audit.len(),
                    findings = decision.findings.len(),
                    patch_ops = response.patch_ops,
                    duration_ms = elapsed.as_secs_f64() * 1000.0,
                    "admission decided"
                )
            };
        }
        if !response.allowed || !decision.warnings.is_empty() || !decision.audit.is_empty() {
            decided!(tracing::Level::INFO);
        } else {
            decided!(tracing::Level::DEBUG);
        }
        (StatusCode::OK, axum::Json(response.body)).into_response()
    }
    .instrument(span)
    .await
}

/// The admission span's `decision` (`allowed`, `warned` or `denied`) and, unless plainly allowed, its
/// `reason`: the distinct reason codes of the denial's causes, else of the findings that warned or were
/// recorded for audit, comma-separated.
fn record_decision(span: &tracing::Span, allowed: bool, decision: &Decision) {
    let plain = decision.warnings.is_empty() && decision.audit.is_empty();
    span.record(
        "decision",
        if !allowed {
            "denied"
        } else if plain {
            "allowed"
        } else {
            "warned"
        },
    );
    if (allowed && plain) || span.is_disabled() {
        return;
    }
    let mut codes: Vec<&'static str> = Vec::new();
    let denial = decision.causes.iter().map(|c| c.reason);
    let noted = decision
        .findings
        .iter()
        .chain(&decision.audit)
        .filter(|f| f.result != vouch_policies::FindingResult::Pass)
        .map(vouch_policies::Finding::code);
    let found: Vec<_> = if allowed { noted.collect() } else { denial.collect() };
    for code in found {
        if !codes.contains(&code.as_str()) {
            codes.push(code.as_str());
        }
    }
    if !codes.is_empty() {
        span.record("reason", codes.join(","));
    }
}

/// Serve `app` over TLS on `listener` until `shutdown` completes, then stop accepting and give open
/// connections `grace` to finish their requests. `serving` is set while connections are accepted; a
/// handshake that fails is counted and logged in `handshakes`.
pub async fn serve_https(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    serving: Arc<AtomicBool>,
    handshakes: Arc<handshake::HandshakeFailures>,
    shutdown: impl std::future::Future<Output = ()>,
    grace: Duration,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    serving.store(true, Ordering::Release);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let handshakes = Arc::clone(&handshakes);
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    handshakes.record(peer, handshake::HandshakeFailure::classify(&e), &e);
                    return;
                }
                Err(_) => {
                    let e = format!("not completed within {} s", HANDSHAKE_TIMEOUT.as_secs());
                    handshakes.record(peer, handshake::HandshakeFailure::Other, &e);
                    return;
                }
            };
            let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    serving.store(false, Ordering::Release);
    drop(listener);
    tracing::info!(open_connections = graceful.count(), grace_seconds = grace.as_secs_f64(), "draining");
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections drained"),
        Err(_) => tracing::warn!("grace period over; closing the remaining connections"),
    }
}
