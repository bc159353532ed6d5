//! Errors talking to the Kubernetes API.

/// A Kubernetes API call that failed; the cause is the `source`.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// Reading an object failed (network, authorisation, server error).
    #[error("cannot read {kind} {namespace}/{name}")]
    Read {
        /// Kind of the object, e.g. `Namespace`, `Secret`.
        kind: &'static str,
        /// Namespace (empty for cluster-scoped objects).
        namespace: String,
        /// Object name.
        name: String,
        /// What the client said.
        #[source]
        source: Box<kube::Error>,
    },
    /// An object that must exist does not.
    #[error("{kind} {name} not found")]
    NotFound {
        /// Kind of the object.
        kind: &'static str,
        /// Object name.
        name: String,
    },
    /// Writing (patching, applying) an object failed.
    #[error("cannot write {what}")]
    Write {
        /// What was written, e.g. `status of Pod ns/name`.
        what: String,
        /// What the client said.
        #[source]
        source: Box<kube::Error>,
    },
    /// A call took longer than allowed.
    #[error("{what} timed out")]
    Timeout {
        /// What was being done.
        what: String,
    },
    /// The pod spec handed in is not shaped like one.
    #[error("pod spec field {field} is malformed")]
    MalformedPodSpec {
        /// The offending field.
        field: &'static str,
    },
}

impl KubeError {
    /// Whether retrying later may help (network trouble, server overload, conflicts, object not there yet).
    pub fn is_transient(&self) -> bool {
        let source = match self {
            Self::Read { source, .. } | Self::Write { source, .. } => source,
            Self::NotFound { .. } | Self::Timeout { .. } => return true,
            Self::MalformedPodSpec { .. } => return false,
        };
        is_transient_kube(source)
    }
}

/// Transient: anything but a definite client-side rejection (4xx other than 404, 409, 429).
pub(crate) fn is_transient_kube(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => {
            let code = status.code;
            code == 404 || code == 409 || code == 429 || code >= 500
        }
        kube::Error::SerdeError(_) | kube::Error::BuildRequest(_) => false,
        _ => true,
    }
}

/// An error and its causes on one line (`a: b: c`), for logs and messages.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out += &format!(": {s}");
        source = s.source();
    }
    out
}
