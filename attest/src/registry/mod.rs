//! Registry access: resolving tags, fetching manifests and blobs (digest-checked, size-capped), pushing,
//! and OCI 1.1 referrers with the referrers tag-schema fallback.
//!
//! What verification reads comes from an [`ArtifactSource`]: a [`RemoteRegistry`] over the network, or
//! an offline bundle's store (the `offline` module). [`RegistryClient`] is what callers hold: it reads
//! through its source within the configured limits, counts calls, and pushes to the remote registry.
//!
//! HTTP goes through oci-client's stack (reqwest + rustls/aws-lc-rs); oci-client does the token dance and
//! blob uploads, while reads are made here so that every body is capped while it is read and every call
//! has a timeout and bounded retries. Plain HTTP is used only for registries listed as insecure.
//!
//! Background work paces its requests with a [`Pacer`] in a [`paced`] scope; nothing else is paced.

mod auth;
mod client;
mod error;
mod manifest;
mod pacer;
mod remote;
mod source;
mod transport;
pub(crate) use transport::redirect_policy;

use std::time::Duration;

pub use auth::{Credentials, RegistryAuth};
pub use client::RegistryClient;
pub(crate) use error::verify_digest;
pub use error::{FailureKind, RegistryError};
pub use manifest::{
    parse_manifest, Descriptor, ImageIndex, ImageManifest, ManifestKind, Platform, DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST, MANIFEST_MEDIA_TYPES, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST,
};
pub use pacer::{paced, Pacer};
pub use remote::RemoteRegistry;
pub use source::{ArtifactSource, Reading};

use crate::digest::Digest;

/// How the registry client behaves; build it as a literal or from [`RegistryConfig::default`].
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Registries (host[:port]) that may be reached over plain HTTP; nothing else ever is.
    pub insecure_registries: Vec<String>,
    /// Time allowed for one call: connect, request, reading the body, and any retries.
    pub timeout: Duration,
    /// Retries of idempotent reads on 5xx, 429 and connection errors (with exponential backoff).
    pub retries: u32,
    /// Largest manifest read.
    pub max_manifest_bytes: usize,
    /// Largest blob read (callers may pass a smaller cap per call).
    pub max_blob_bytes: usize,
    /// Credentials per registry.
    pub credentials: Credentials,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            timeout: Duration::from_secs(10),
            retries: 2,
            max_manifest_bytes: 4 * 1024 * 1024,
            max_blob_bytes: 64 * 1024 * 1024,
            credentials: Credentials::anonymous(),
        }
    }
}

/// Counters of a client since it was built (shared by its clones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStats {
    /// Calls made (API operations, not HTTP requests).
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// HTTP attempts repeated after a transient failure.
    pub retries: u64,
    /// HTTP requests sent (token requests and uploads included); always 0 for an offline client.
    pub http_requests: u64,
    /// Failed calls by kind (they add up to `errors`).
    pub failures: FailureCounts,
}

/// Failed registry calls counted by [`FailureKind`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureCounts(pub(crate) [u64; FailureKind::ALL.len()]);

impl FailureCounts {
    /// Failed calls of this kind.
    pub fn get(&self, kind: FailureKind) -> u64 {
        self.0[kind as usize]
    }

    /// Every kind with its count (zeros included), in [`FailureKind::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (FailureKind, u64)> + '_ {
        FailureKind::ALL.iter().map(|k| (*k, self.get(*k)))
    }
}

/// A manifest as fetched: its bytes, their digest and the media type the registry gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// Digest of `bytes` (checked against the reference's digest when it had one).
    pub digest: Digest,
    /// Media type (Content-Type, or the body's mediaType when the registry gave none).
    pub media_type: String,
    /// The manifest exactly as served.
    pub bytes: Vec<u8>,
}

impl FetchedManifest {
    /// Parse into an image manifest or an index.
    pub fn parse(&self) -> Result<ManifestKind, RegistryError> {
        parse_manifest(&self.digest.to_string(), &self.media_type, &self.bytes)
    }
}
