//! Why a registry operation failed.

use std::time::Duration;

use crate::digest::Digest;
use crate::reference::ArtifactRef;

/// A failed registry operation; every variant names what it was about.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached (DNS, connection refused, TLS failure, connection reset).
    #[error("registry {registry} is unreachable: {reason}")]
    Unreachable {
        /// Registry host[:port].
        registry: String,
        /// What went wrong, without credentials.
        reason: String,
    },
    /// A call did not complete within the configured timeout.
    #[error("registry {registry} timed out: no answer within {after:?}")]
    Timeout {
        /// Registry host[:port].
        registry: String,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The manifest, blob or tag does not exist.
    #[error("{reference} not found")]
    NotFound {
        /// What was looked up.
        reference: String,
    },
    /// The registry refused the credentials (or their absence).
    #[error("registry {registry} refused the credentials (HTTP 401)")]
    Unauthorized {
        /// Registry host[:port].
        registry: String,
    },
    /// The credentials were accepted but do not allow this operation.
    #[error("access to {reference} denied (HTTP 403)")]
    Denied {
        /// What was accessed.
        reference: String,
    },
    /// The registry reset the connection (TCP RST) before answering in full.
    #[error("registry {registry} reset the connection")]
    Reset {
        /// Registry host[:port].
        registry: String,
    },
    /// The registry closed the connection before its answer was complete (no answer, or a cut one).
    #[error("registry {registry} closed the connection before answering in full: {reason}")]
    ClosedEarly {
        /// Registry host[:port].
        registry: String,
        /// What was missing, without credentials.
        reason: String,
    },
    /// What came back is not HTTP at all: not a registry response.
    #[error("registry {registry} sent something that is not HTTP (not a registry response): {reason}")]
    NotHttp {
        /// Registry host[:port].
        registry: String,
        /// What the HTTP parser found wrong.
        reason: String,
    },
    /// The registry throttled the request (HTTP 429) and retrying within the budget did not help.
    #[error("registry throttled the request for {reference} (HTTP 429{})", retry_note(.retry_after))]
    Throttled {
        /// What was accessed.
        reference: String,
        /// The wait the registry asked for (`Retry-After`), if it said.
        retry_after: Option<Duration>,
    },
    /// A manifest or blob is larger than allowed.
    #[error("{what} is too large: the body is over the limit of {limit} bytes")]
    TooLarge {
        /// What was being read.
        what: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// Content does not hash to the digest it was addressed by.
    #[error("content digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest asked for.
        expected: String,
        /// The digest of what was received.
        actual: String,
    },
    /// The registry speaks plain HTTP but is not listed as insecure.
    #[error("registry {registry} does not speak TLS and is not listed in insecure registries")]
    InsecureNotAllowed {
        /// Registry host[:port].
        registry: String,
    },
    /// The registry answered with a status that could not be retried away (5xx, 429).
    #[error("registry answered HTTP {status} for {reference}")]
    Server {
        /// What was accessed.
        reference: String,
        /// The HTTP status code.
        status: u16,
    },
    /// The registry's answer breaks the distribution or image specification.
    #[error("not a valid registry response for {reference}: {reason}")]
    Protocol {
        /// What was accessed.
        reference: String,
        /// What is wrong with the answer.
        reason: String,
    },
    /// The caller's reference cannot be used for this operation.
    #[error("invalid reference {reference} for this operation: {reason}")]
    InvalidReference {
        /// The reference.
        reference: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A Docker config JSON could not be read.
    #[error("invalid docker config JSON: {reason}")]
    InvalidCredentials {
        /// What is wrong (never the secret itself).
        reason: String,
    },
    /// The client could not be built from its configuration.
    #[error("invalid registry client configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

fn retry_note(retry_after: &Option<Duration>) -> String {
    retry_after.map(|d| format!(", asked to retry after {d:?}")).unwrap_or_default()
}

/// What kind of failure a registry call ended in: the label of the registry failure metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureKind {
    /// No answer within the time allowed.
    Timeout,
    /// Could not connect (refused, DNS, TLS handshake) or an offline bundle lacks it.
    Unreachable,
    /// Connection reset.
    Reset,
    /// Connection closed before the answer was complete (dropped or truncated).
    ClosedEarly,
    /// HTTP 429.
    Throttled,
    /// HTTP 5xx.
    ServerError,
    /// A body over the size limit.
    TooLarge,
    /// Not HTTP, or HTTP that is not a valid registry answer (unparsable manifest, bad header).
    InvalidResponse,
    /// Content that does not hash to its digest.
    DigestMismatch,
    /// 404: the manifest, blob or tag does not exist (usual for an unsigned image's signature tag).
    NotFound,
    /// 401 or 403.
    Refused,
    /// Anything else (plain HTTP not allowed, bad reference, credentials or configuration).
    Other,
}

impl FailureKind {
    /// Every kind, in label order.
    pub const ALL: [FailureKind; 12] = [
        Self::Timeout,
        Self::Unreachable,
        Self::Reset,
        Self::ClosedEarly,
        Self::Throttled,
        Self::ServerError,
        Self::TooLarge,
        Self::InvalidResponse,
        Self::DigestMismatch,
        Self::NotFound,
        Self::Refused,
        Self::Other,
    ];

    /// The metric label value, e.g. `timeout`, `closed_early`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Unreachable => "unreachable",
            Self::Reset => "reset",
            Self::ClosedEarly => "closed_early",
            Self::Throttled => "throttled",
            Self::ServerError => "server_error",
            Self::TooLarge => "too_large",
            Self::InvalidResponse => "invalid_response",
            Self::DigestMismatch => "digest_mismatch",
            Self::NotFound => "not_found",
            Self::Refused => "refused",
            Self::Other => "other",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RegistryError {
    /// Whether trying again later may succeed (network trouble, timeouts, 5xx and 429 answers).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. }
            | Self::Timeout { .. }
            | Self::Reset { .. }
            | Self::ClosedEarly { .. }
            | Self::NotHttp { .. }
            | Self::Throttled { .. } => true,
            Self::Server { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// What kind of failure this is (for metrics).
    pub fn kind(&self) -> FailureKind {
        match self {
            Self::Timeout { .. } => FailureKind::Timeout,
            Self::Unreachable { .. } => FailureKind::Unreachable,
            Self::Reset { .. } => FailureKind::Reset,
            Self::ClosedEarly { .. } => FailureKind::ClosedEarly,
            Self::Throttled { .. } => FailureKind::Throttled,
            Self::Server { status: 429, .. } => FailureKind::Throttled,
            Self::Server { .. } => FailureKind::ServerError,
            Self::TooLarge { .. } => FailureKind::TooLarge,
            Self::NotHttp { .. } | Self::Protocol { .. } => FailureKind::InvalidResponse,
            Self::DigestMismatch { .. } => FailureKind::DigestMismatch,
            Self::NotFound { .. } => FailureKind::NotFound,
            Self::Unauthorized { .. } | Self::Denied { .. } => FailureKind::Refused,
            Self::InsecureNotAllowed { .. }
            | Self::InvalidReference { .. }
            | Self::InvalidCredentials { .. }
            | Self::Config { .. } => FailureKind::Other,
        }
    }
}

/// `bytes` must hash to `expected`: a source never hands out content that is not what was asked for.
pub(crate) fn verify_digest(expected: &Digest, bytes: &[u8]) -> Result<(), RegistryError> {
    if expected.matches(bytes) {
        Ok(())
    } else {
        Err(RegistryError::DigestMismatch {
            expected: expected.to_string(),
            actual: Digest::of(expected.algorithm(), bytes).to_string(),
        })
    }
}

/// An answer about `r` that breaks the distribution or image specification.
pub(crate) fn protocol(r: &ArtifactRef, reason: String) -> RegistryError {
    RegistryError::Protocol { reference: r.to_string(), reason }
}

/// `r` cannot be used for the operation.
pub(crate) fn invalid_ref(r: &ArtifactRef, reason: String) -> RegistryError {
    RegistryError::InvalidReference { reference: r.to_string(), reason }
}

/// The digest of a referrers subject, which must have one.
pub(crate) fn subject_digest(subject: &ArtifactRef) -> Result<&Digest, RegistryError> {
    subject.digest().ok_or_else(|| invalid_ref(subject, "referrers need a digest reference".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_check_names_expected_and_actual() {
        let expected = Digest::sha256_of(b"the real manifest");
        assert!(verify_digest(&expected, b"the real manifest").is_ok());
        let e = verify_digest(&expected, b"a tampered manifest").unwrap_err();
        let RegistryError::DigestMismatch { expected: exp, actual } = e else { panic!("wrong error") };
        assert_eq!(exp, expected.to_string());
        assert_eq!(actual, Digest::sha256_of(b"a tampered manifest").to_string());
    }

    #[test]
    fn transient_errors_are_network_and_server_trouble_only() {
        let transient = [
            RegistryError::Unreachable { registry: "r".into(), reason: "refused".into() },
            RegistryError::Timeout { registry: "r".into(), after: Duration::from_secs(1) },
            RegistryError::Server { reference: "r/a".into(), status: 503 },
            RegistryError::Server { reference: "r/a".into(), status: 429 },
            RegistryError::Reset { registry: "r".into() },
            RegistryError::ClosedEarly { registry: "r".into(), reason: "eof".into() },
            RegistryError::NotHttp { registry: "r".into(), reason: "invalid HTTP version".into() },
            RegistryError::Throttled { reference: "r/a".into(), retry_after: None },
        ];
        for e in transient {
            assert!(e.is_transient(), "{e}");
        }
        let permanent = [
            RegistryError::NotFound { reference: "r/a:1".into() },
            RegistryError::Unauthorized { registry: "r".into() },
            RegistryError::DigestMismatch { expected: "a".into(), actual: "b".into() },
            RegistryError::InsecureNotAllowed { registry: "r".into() },
            RegistryError::TooLarge { what: "manifest".into(), limit: 1 },
        ];
        for e in permanent {
            assert!(!e.is_transient(), "{e}");
        }
    }

    #[test]
    fn messages_name_the_cause_and_kinds_have_distinct_labels() {
        let throttled = RegistryError::Throttled {
            reference: "r/a:1".into(),
            retry_after: Some(Duration::from_secs(30)),
        };
        assert_eq!(
            throttled.to_string(),
            "registry throttled the request for r/a:1 (HTTP 429, asked to retry after 30s)"
        );
        assert_eq!(throttled.kind(), FailureKind::Throttled);
        let timeout = RegistryError::Timeout { registry: "r".into(), after: Duration::from_secs(2) };
        assert_eq!(timeout.to_string(), "registry r timed out: no answer within 2s");
        let labels: std::collections::BTreeSet<_> = FailureKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(labels.len(), FailureKind::ALL.len());
    }
}
