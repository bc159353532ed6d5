//! The registry client callers use: every read goes to an [`ArtifactSource`] (the network, an offline
//! bundle, a recording), within the configured size limits, and is counted; pushes go to the registry
//! behind the source, when there is one.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::error::{protocol, subject_digest};
use super::manifest::{parse_manifest, Descriptor, ManifestKind};
use super::source::{ArtifactSource, Reading};
use super::{
    Credentials, FailureCounts, FailureKind, FetchedManifest, RegistryConfig, RegistryError, RegistryStats,
    RemoteRegistry,
};
use crate::digest::Digest;
use crate::reference::ArtifactRef;

/// Client for OCI distribution registries, or for what stands in for one; cheap to clone, clones share
/// connections, tokens and counters.
///
/// `RegistryClient::offline` and `RegistryClient::recording` are defined in the `offline` module, beside
/// the sources they read through.
#[derive(Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient").field("config", &self.inner.config).finish()
    }
}

struct Inner {
    config: RegistryConfig,
    source: Arc<dyn ArtifactSource>,
    // Shared with clients derived by `with_credentials`, so statistics cover them too.
    counters: Arc<CallCounters>,
}

/// Calls made through a client, and how they failed.
#[derive(Default)]
struct CallCounters {
    calls: AtomicU64,
    errors: AtomicU64,
    failures: [AtomicU64; FailureKind::ALL.len()],
}

impl RegistryClient {
    /// Build a client for the network; fails only on an unusable TLS or HTTP configuration.
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        let remote = RemoteRegistry::new(config)?;
        Ok(Self::with_source(remote.config().clone(), Arc::new(remote)))
    }

    /// A client reading from `source` with the size limits of `config` (whose other settings are the
    /// source's business).
    pub fn with_source(config: RegistryConfig, source: Arc<dyn ArtifactSource>) -> Self {
        Self { inner: Arc::new(Inner { config, source, counters: Arc::default() }) }
    }

    /// Whether this client cannot reach any registry (it reads from an offline bundle).
    pub fn is_offline(&self) -> bool {
        self.inner.source.remote().is_none()
    }

    /// A client that uses `extra` credentials first (where `extra` and the configured credentials both
    /// name a registry, `extra` wins) and the configured ones otherwise. It shares this client's
    /// connections and counters, but not its tokens: tokens obtained with one set of credentials are
    /// never used for another.
    pub fn with_credentials(&self, extra: &Credentials) -> Result<Self, RegistryError> {
        let mut credentials = extra.clone();
        credentials.merge(self.inner.config.credentials.clone());
        let source = self.inner.source.with_credentials(&credentials)?;
        let config = RegistryConfig { credentials, ..self.inner.config.clone() };
        Ok(Self { inner: Arc::new(Inner { config, source, counters: self.inner.counters.clone() }) })
    }

    /// The configuration in force (insecure registries normalised).
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// Counters since the client was built.
    pub fn stats(&self) -> RegistryStats {
        let counters = &self.inner.counters;
        let http = self.inner.source.remote().map(RemoteRegistry::http_counters);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RegistryStats {
            calls: load(&counters.calls),
            errors: load(&counters.errors),
            retries: http.map_or(0, |h| load(&h.retries)),
            http_requests: http.map_or(0, |h| load(&h.requests)),
            failures: FailureCounts(std::array::from_fn(|i| load(&counters.failures[i]))),
        }
    }

    /// The digest a reference names: its own digest when it has one, else what its tag points to now.
    pub async fn resolve(&self, r: &ArtifactRef) -> Result<Digest, RegistryError> {
        if let Some(d) = r.digest() {
            return Ok(d.clone());
        }
        self.counted(self.inner.source.resolve(r)).await
    }

    /// Fetch a manifest by the reference's digest (the bytes must hash to it) or, lacking one, by tag.
    pub async fn fetch_manifest(&self, r: &ArtifactRef) -> Result<FetchedManifest, RegistryError> {
        self.counted(self.read_manifest(r)).await
    }

    /// Fetch and parse a manifest in one go.
    pub async fn fetch_parsed_manifest(
        &self,
        r: &ArtifactRef,
    ) -> Result<(FetchedManifest, ManifestKind), RegistryError> {
        // One call: an answer that is not a manifest is a failed call (and counted as one).
        self.counted(async {
            let fetched = self.read_manifest(r).await?;
            let kind = parse_manifest(&r.to_string(), &fetched.media_type, &fetched.bytes)?;
            Ok((fetched, kind))
        })
        .await
    }

    /// The platform image manifests of the index `r` names (attestation manifests left out).
    pub async fn platform_manifests(&self, r: &ArtifactRef) -> Result<Vec<Descriptor>, RegistryError> {
        match self.fetch_parsed_manifest(r).await? {
            (_, ManifestKind::Index(index)) => Ok(index.platform_manifests()),
            (_, ManifestKind::Image(_)) => Err(protocol(r, "is an image manifest, not an index".to_owned())),
        }
    }

    /// Fetch a blob of the repository `r` names; the bytes must hash to `digest`, and at most
    /// `max_bytes` (and the configured maximum) are read.
    pub async fn fetch_blob(
        &self,
        r: &ArtifactRef,
        digest: &Digest,
        max_bytes: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        let limit = max_bytes.min(self.inner.config.max_blob_bytes);
        self.counted(self.inner.source.fetch_blob(r, digest, limit)).await
    }

    /// Manifests that refer to `subject` (which must have a digest), optionally only those of one artifact
    /// type: the OCI 1.1 referrers API, or the referrers tag schema (`sha256-<hex>`) where the registry
    /// lacks the API.
    pub async fn referrers(
        &self,
        subject: &ArtifactRef,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        self.counted(async {
            let digest = subject_digest(subject)?;
            let mut found = self.inner.source.referrers(subject, digest, artifact_type).await?;
            // Filter here: sources may answer with more (registries may ignore the filter).
            if let Some(t) = artifact_type {
                found.retain(|d| d.artifact_type.as_deref() == Some(t));
            }
            Ok(found)
        })
        .await
    }

    /// Upload a blob to the repository `r` names (skipped when the registry has it already).
    pub async fn push_blob(&self, r: &ArtifactRef, bytes: &[u8]) -> Result<Digest, RegistryError> {
        self.counted(async { self.remote(r)?.push_blob(r, bytes).await }).await
    }

    /// Upload a manifest to `r`'s tag (or digest, which the bytes must hash to); returns its digest.
    pub async fn push_manifest(
        &self,
        r: &ArtifactRef,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        self.counted(async { self.remote(r)?.push_manifest(r, bytes, media_type).await }).await
    }

    /// Push a manifest whose `subject` is `subject` and make it discoverable by [`Self::referrers`]:
    /// where the registry does not announce referrers support (`OCI-Subject`), the referrers tag
    /// index `sha256-<hex>` is updated (read, add, write, read back).
    pub async fn push_referrer(
        &self,
        subject: &ArtifactRef,
        manifest: &[u8],
        media_type: &str,
        artifact_type: &str,
    ) -> Result<Digest, RegistryError> {
        self.counted(async {
            self.remote(subject)?.push_referrer(subject, manifest, media_type, artifact_type).await
        })
        .await
    }

    /// A manifest read within the configured maximum (uncounted: the caller counts).
    fn read_manifest<'a>(&'a self, r: &'a ArtifactRef) -> Reading<'a, FetchedManifest> {
        self.inner.source.fetch_manifest(r, self.inner.config.max_manifest_bytes)
    }

    /// The registry pushes go to, or an error for an offline client (which has none).
    fn remote(&self, r: &ArtifactRef) -> Result<&RemoteRegistry, RegistryError> {
        self.inner.source.remote().ok_or_else(|| RegistryError::Unreachable {
            registry: r.registry().to_owned(),
            reason: format!("{r}: an offline client has no network access"),
        })
    }

    async fn counted<T>(
        &self,
        call: impl Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        let counters = &self.inner.counters;
        counters.calls.fetch_add(1, Ordering::Relaxed);
        let result = call.await;
        if let Err(e) = &result {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            counters.failures[e.kind() as usize].fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, kind = %e.kind(), "registry call failed");
        }
        result
    }
}
