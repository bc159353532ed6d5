//! Decision events as CloudEvents 1.0 over HTTP (binary content mode), for automation that acts on vouch's
//! answers: `vouch serve --events-sink URL`.
//!
//! - [`event`]: what is sent — one event per denied, warned or audited admission review and per workload
//!   the scanner finds drifted, with the structured findings as data;
//! - [`EventSink`]: a bounded queue in front of one sender task. Admission only ever `try_send`s: a slow or
//!   dead sink never delays an answer; what does not fit, or fails, is dropped and counted
//!   (`vouch_events_dropped_total{reason}`), never retried into a backlog.

pub mod event;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

pub use event::CloudEvent;

/// Events held for sending at most; more are dropped (`reason="queue_full"`).
pub const DEFAULT_QUEUE: usize = 1024;
/// Longest wait for the sink to answer one event.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Events sent at once.
const CONCURRENCY: usize = 4;
/// Events taken from the queue per round.
const BATCH: usize = 64;

/// Where and how events are sent.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// The sink (`http://` or `https://`; https verified against the system's roots).
    pub sink: reqwest::Url,
    /// The CloudEvents `source` of every event.
    pub source: String,
    /// Events held at most.
    pub queue: usize,
    /// Time limit of one delivery.
    pub timeout: Duration,
}

/// Labels of `vouch_events_dropped_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DropLabels {
    /// `queue_full`, `sink_error` (not 2xx, or unreachable) or `sink_timeout`.
    reason: &'static str,
}

#[derive(Debug, Default)]
struct Counters {
    sent: Counter,
    dropped: Family<DropLabels, Counter>,
}

/// The sending end: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::Sender<CloudEvent>,
    source: Arc<str>,
    counters: Arc<Counters>,
}

/// The sink as logs may show it: no user, password or query (they may hold a token).
pub fn shown(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

impl EventSink {
    /// Start the sender task (it ends when every [`EventSink`] is dropped, after sending what is queued).
    pub fn spawn(config: EventsConfig) -> Result<(Self, tokio::task::JoinHandle<()>), reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let (tx, rx) = mpsc::channel(config.queue.max(1));
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(deliver(rx, http, config.sink, Arc::clone(&counters)));
        Ok((Self { tx, source: config.source.into(), counters }, task))
    }

    /// The `source` attribute events get.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Queue `event`, or drop it (counted) when the queue is full.
    pub fn emit(&self, event: CloudEvent) {
        if self.tx.try_send(event).is_err() {
            self.counters.dropped.get_or_create(&DropLabels { reason: "queue_full" }).inc();
        }
    }

    /// `vouch_events_sent_total` and `vouch_events_dropped_total{reason}`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "vouch_events_sent",
            "CloudEvents delivered to --events-sink.",
            self.counters.sent.clone(),
        );
        registry.register(
            "vouch_events_dropped",
            "CloudEvents not delivered: queue full, sink error or timeout (never retried).",
            self.counters.dropped.clone(),
        );
    }
}

async fn deliver(
    mut rx: mpsc::Receiver<CloudEvent>,
    http: reqwest::Client,
    sink: reqwest::Url,
    counters: Arc<Counters>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        futures::stream::iter(batch.drain(..))
            .for_each_concurrent(CONCURRENCY, |event| {
                let (http, sink, counters) = (&http, &sink, &counters);
                async move {
                    let outcome = event.post(http, sink.clone()).await;
                    match outcome {
                        Ok(()) => {
                            counters.sent.inc();
                        }
                        Err(reason) => {
                            tracing::debug!(event_type = event.event_type, reason, "CloudEvent dropped");
                            counters.dropped.get_or_create(&DropLabels { reason }).inc();
                        }
                    }
                }
            })
            .await;
    }
}
