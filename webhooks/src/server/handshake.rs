//! TLS handshakes the webhook port did not complete: counted by reason
//! (`vouch_tls_handshake_failures_total{reason}`) and logged at warn, naming the peer and the reason, at
//! most once per reason every [`LOG_EVERY`]; the next line says how many were held back in between.
//!
//! Without this, a caller turned away for its client certificate (`--client-ca`) left no trace on vouch's
//! side, and an operator chasing "failed calling webhook" saw nothing. Only the reason and rustls' own error
//! text are logged, never certificate contents.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustls::AlertDescription;

/// At most one log line per reason this often.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a handshake did not complete. A fixed set: the metric's label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// `--client-ca` is set and the caller presented no client certificate.
    NoClientCertificate,
    /// The caller's client certificate was refused: not from a `--client-ca` CA, expired, or not for
    /// client authentication.
    UntrustedClientCertificate,
    /// The caller refused vouch's serving certificate (it sent a certificate alert: unknown CA, bad or
    /// expired certificate), e.g. a `caBundle` in the webhook configuration that does not match.
    ServerCertificateRejected,
    /// Anything else: a protocol error, no common version or cipher suite, plain HTTP, a connection
    /// closed before the handshake ended, or a handshake not done within the time allowed.
    Other,
}

impl HandshakeFailure {
    /// Every reason, in the order the metric lists them.
    pub const ALL: [Self; 4] = [
        Self::NoClientCertificate,
        Self::UntrustedClientCertificate,
        Self::ServerCertificateRejected,
        Self::Other,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoClientCertificate => "no_client_certificate",
            Self::UntrustedClientCertificate => "untrusted_client_certificate",
            Self::ServerCertificateRejected => "server_certificate_rejected",
            Self::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// Classify what the TLS acceptor returned (tokio-rustls wraps rustls' error in an `io::Error`).
    pub fn classify(error: &std::io::Error) -> Self {
        match error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            Some(e) => Self::of_rustls(e),
            None => Self::Other,
        }
    }

    /// Classify a rustls error seen by the server side of a handshake.
    pub fn of_rustls(error: &rustls::Error) -> Self {
        match error {
            rustls::Error::NoCertificatesPresented => Self::NoClientCertificate,
            // A server verifies no certificate but its client's.
            rustls::Error::InvalidCertificate(_) => Self::UntrustedClientCertificate,
            rustls::Error::AlertReceived(
                AlertDescription::BadCertificate
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnknownCA,
            ) => Self::ServerCertificateRejected,
            _ => Self::Other,
        }
    }
}

/// Lets through one log line per reason every `every`, counting the ones it holds back.
#[derive(Debug)]
struct LogLimiter {
    every: Duration,
    slots: [Mutex<Slot>; HandshakeFailure::ALL.len()],
}

#[derive(Debug, Default)]
struct Slot {
    last_line: Option<Instant>,
    held_back: u64,
}

impl LogLimiter {
    /// At most one line per reason every `every`.
    fn new(every: Duration) -> Self {
        Self { every, slots: Default::default() }
    }

    /// Whether a line for `reason` may be written at `now`: `Some(n)` with the number of lines held back
    /// since the last one, or `None` (this one is held back and counted).
    #[must_use]
    fn admit(&self, reason: HandshakeFailure, now: Instant) -> Option<u64> {
        let mut slot = self.slots[reason.index()].lock().unwrap_or_else(PoisonError::into_inner);
        match slot.last_line {
            Some(last) if now.saturating_duration_since(last) < self.every => {
                slot.held_back += 1;
                None
            }
            _ => {
                slot.last_line = Some(now);
                Some(std::mem::take(&mut slot.held_back))
            }
        }
    }
}

/// Handshake failures of one server: a counter per reason and the rate-limited log line.
#[derive(Debug)]
pub struct HandshakeFailures {
    counts: [AtomicU64; HandshakeFailure::ALL.len()],
    limiter: LogLimiter,
}

impl Default for HandshakeFailures {
    fn default() -> Self {
        Self { counts: Default::default(), limiter: LogLimiter::new(LOG_EVERY) }
    }
}

impl HandshakeFailures {
    /// Count a handshake with `peer` that failed for `reason`, and log it unless a line for the same reason
    /// was written less than [`LOG_EVERY`] ago. `error` is rustls' (or the timeout's) own text.
    pub fn record(&self, peer: SocketAddr, reason: HandshakeFailure, error: &dyn std::fmt::Display) {
        self.record_at(peer, reason, error, Instant::now());
    }

    fn record_at(
        &self,
        peer: SocketAddr,
        reason: HandshakeFailure,
        error: &dyn std::fmt::Display,
        now: Instant,
    ) {
        self.counts[reason.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(suppressed) = self.limiter.admit(reason, now) {
            tracing::warn!(
                %peer,
                reason = reason.as_str(),
                error = %error,
                suppressed,
                "TLS handshake failed"
            );
        }
    }

    /// Handshakes that failed for `reason` since start.
    pub fn count(&self, reason: HandshakeFailure) -> u64 {
        self.counts[reason.index()].load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{CertificateError, PeerIncompatible};

    #[test]
    fn one_line_per_reason_per_period_and_the_next_says_how_many_were_held_back() {
        let limiter = LogLimiter::new(Duration::from_secs(10));
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_millis(secs * 1000);
        let (no_cert, untrusted) =
            (HandshakeFailure::NoClientCertificate, HandshakeFailure::UntrustedClientCertificate);

        assert_eq!(limiter.admit(no_cert, at(0)), Some(0), "the first one is logged");
        assert_eq!(limiter.admit(no_cert, at(1)), None);
        assert_eq!(limiter.admit(no_cert, at(9)), None);
        // Another reason has its own allowance.
        assert_eq!(limiter.admit(untrusted, at(5)), Some(0));
        // 10 s after the last line: logged, saying two were held back; the count starts again.
        assert_eq!(limiter.admit(no_cert, at(10)), Some(2));
        assert_eq!(limiter.admit(no_cert, at(19)), None);
        assert_eq!(limiter.admit(untrusted, at(14)), None);
        assert_eq!(limiter.admit(no_cert, at(20)), Some(1));
        assert_eq!(limiter.admit(untrusted, at(15)), Some(1));
        // After a quiet spell nothing is owed.
        assert_eq!(limiter.admit(no_cert, at(100)), Some(0));
    }

    #[test]
    fn every_failure_is_counted_whether_or_not_it_is_logged() {
        let failures = HandshakeFailures::default();
        let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..5 {
            failures.record_at(
                peer,
                HandshakeFailure::NoClientCertificate,
                &"x",
                t0 + Duration::from_secs(i),
            );
        }
        failures.record_at(peer, HandshakeFailure::Other, &"eof", t0);
        assert_eq!(failures.count(HandshakeFailure::NoClientCertificate), 5);
        assert_eq!(failures.count(HandshakeFailure::Other), 1);
        assert_eq!(failures.count(HandshakeFailure::UntrustedClientCertificate), 0);
        assert_eq!(failures.limiter.admit(HandshakeFailure::NoClientCertificate, t0 + LOG_EVERY), Some(4));
    }

    struct Sink(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The JSON log lines `f` writes (as `vouch serve` writes them).
    fn logged(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let buf = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&buf);
        let subscriber =
            tracing_subscriber::fmt().json().with_writer(move || Sink(std::sync::Arc::clone(&sink))).finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    #[test]
    fn the_log_line_names_peer_reason_error_and_what_was_held_back() {
        let failures = HandshakeFailures::default();
        let peer: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let t0 = Instant::now();
        let lines = logged(|| {
            for s in [0, 1, 2, 10] {
                let at = t0 + Duration::from_secs(s);
                failures.record_at(
                    peer,
                    HandshakeFailure::NoClientCertificate,
                    &"peer sent no certificates",
                    at,
                );
            }
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        for (line, suppressed) in lines.iter().zip([0, 2]) {
            assert_eq!(line["level"], "WARN");
            let f = &line["fields"];
            assert_eq!(f["message"], "TLS handshake failed");
            assert_eq!(f["peer"], "192.0.2.7:40000");
            assert_eq!(f["reason"], "no_client_certificate");
            assert_eq!(f["error"], "peer sent no certificates");
            assert_eq!(f["suppressed"], suppressed);
        }
        assert_eq!(failures.count(HandshakeFailure::NoClientCertificate), 4);
    }

    #[test]
    fn rustls_errors_are_classified() {
        use HandshakeFailure::*;
        let io = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        assert_eq!(
            HandshakeFailure::classify(&io(rustls::Error::NoCertificatesPresented)),
            NoClientCertificate
        );
        for e in
            [CertificateError::UnknownIssuer, CertificateError::Expired, CertificateError::InvalidPurpose]
        {
            let e = rustls::Error::InvalidCertificate(e);
            assert_eq!(HandshakeFailure::classify(&io(e)), UntrustedClientCertificate);
        }
        let alert = |d| io(rustls::Error::AlertReceived(d));
        assert_eq!(
            HandshakeFailure::classify(&alert(AlertDescription::UnknownCA)),
            ServerCertificateRejected
        );
        assert_eq!(
            HandshakeFailure::classify(&alert(AlertDescription::BadCertificate)),
            ServerCertificateRejected
        );
        assert_eq!(HandshakeFailure::classify(&alert(AlertDescription::ProtocolVersion)), Other);
        let e = rustls::Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon);
        assert_eq!(HandshakeFailure::classify(&io(e)), Other);
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert_eq!(HandshakeFailure::classify(&eof), Other);
        let labels: Vec<&str> = HandshakeFailure::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            labels,
            ["no_client_certificate", "untrusted_client_certificate", "server_certificate_rejected", "other"]
        );
        assert!(HandshakeFailure::ALL.iter().enumerate().all(|(i, r)| r.index() == i));
    }
}
