//! Why `vouch check` could not run (exit 2).

use std::path::PathBuf;

use crate::cli::registry_args::FlagFileError;

/// Why the check could not run (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// A flag has an unusable value.
    #[error("{flag}: {reason}")]
    Usage {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The manifests cannot be read.
    #[error("manifests: {0}")]
    Manifests(#[from] vouch_policies::manifests::ManifestError),
    /// A file named by a flag cannot be read or used.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Policies that do not compile.
    #[error("invalid policies:\n  {}", problems.join("\n  "))]
    Policies {
        /// Each resource's problems.
        problems: Vec<String>,
    },
    /// The verifier cannot be built.
    #[error("verifier: {0}")]
    Verifier(#[from] vouch_attest::verify::VerifyError),
    /// The offline bundle cannot be used.
    #[error("bundle {path}: {reason}")]
    Bundle {
        /// The bundle.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

impl From<FlagFileError> for CheckError {
    fn from(e: FlagFileError) -> Self {
        Self::File { path: e.path, reason: e.reason }
    }
}
