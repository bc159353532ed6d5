//! Why a registry operation failed.

use std::time::Duration;

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
    #[error("registry {registry} did not answer within {after:?}")]
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
    /// A manifest or blob is larger than allowed.
    #[error("{what} is larger than the limit of {limit} bytes")]
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
    #[error("protocol error for {reference}: {reason}")]
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

impl RegistryError {
    /// Whether trying again later may succeed (network trouble, timeouts, 5xx and 429 answers).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } => true,
            Self::Server { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_network_and_server_trouble_only() {
        let transient = [
            RegistryError::Unreachable { registry: "r".into(), reason: "refused".into() },
            RegistryError::Timeout { registry: "r".into(), after: Duration::from_secs(1) },
            RegistryError::Server { reference: "r/a".into(), status: 503 },
            RegistryError::Server { reference: "r/a".into(), status: 429 },
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
}
