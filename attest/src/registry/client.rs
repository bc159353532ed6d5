//! The registry client: every call capped in size and time, reads retried on transient failures.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::RegistryOperation;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use super::manifest::{
    bare_media_type, parse_manifest, Descriptor, ImageIndex, ManifestKind, MANIFEST_MEDIA_TYPES, OCI_INDEX,
};
use super::{
    Credentials, FailureCounts, FailureKind, FetchedManifest, RegistryAuth, RegistryConfig, RegistryError,
    RegistryStats,
};
use crate::digest::Digest;
use crate::offline::{OfflineStore, Recorder};
use crate::reference::ArtifactRef;

/// How long a registry token (or the knowledge that none is needed) is reused; registries issue tokens
/// for 60 s at least (distribution's minimum), so this never sends an expired one.
const AUTH_REUSE: Duration = Duration::from_secs(50);
/// Repositories whose authorization is remembered at most.
const MAX_CACHED_AUTH: usize = 4096;
/// First backoff between retries; doubled each time, at most [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Pages of a referrers answer followed at most.
const MAX_REFERRER_PAGES: usize = 16;
/// Redirects followed at most (blob downloads redirect to storage).
const MAX_REDIRECTS: usize = 5;
/// Times the referrers tag index update is retried when a concurrent writer overwrote it.
const REFERRERS_TAG_ATTEMPTS: usize = 3;
/// Longest `Retry-After` taken from a registry (the call's own budget usually caps it sooner).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Client for OCI distribution registries; cheap to clone, clones share connections, tokens and counters.
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
    backend: Backend,
    /// Keeps every successful read (for offline bundles); `None` normally.
    recorder: Option<Recorder>,
    auth_cache: Mutex<HashMap<AuthKey, CachedAuth>>,
    // Shared with clients derived by `with_credentials`, so statistics cover them too.
    calls: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    retries: Arc<AtomicU64>,
    http_requests: Arc<AtomicU64>,
    failures: Arc<[AtomicU64; FailureKind::ALL.len()]>,
}

/// Where reads go: the network, or an offline bundle (which has no HTTP client to open sockets with).
enum Backend {
    Network { oci: oci_client::Client, http: reqwest::Client },
    Offline(OfflineStore),
}

/// A failed HTTP attempt, with the wait the registry asked for (`Retry-After`) on 429 and 503.
struct Failed {
    error: RegistryError,
    retry_after: Option<Duration>,
}

impl From<RegistryError> for Failed {
    fn from(error: RegistryError) -> Self {
        Self { error, retry_after: None }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Pull,
    Push,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AuthKey {
    registry: String,
    repository: String,
    op: Op,
}

struct CachedAuth {
    header: Option<HeaderValue>,
    until: Instant,
}

/// A registry answer with its body read (within a cap).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One HTTP request to make against a repository.
struct Req<'a> {
    r: &'a ArtifactRef,
    op: Op,
    method: Method,
    url: String,
    accept: Option<String>,
    body: Option<(Vec<u8>, String)>,
    limit: usize,
    what: String,
}

impl RegistryClient {
    /// Build a client; fails only on an unusable TLS or HTTP configuration.
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        let insecure: Vec<String> = config.insecure_registries.iter().map(|r| normalize_host(r)).collect();
        let config = RegistryConfig { insecure_registries: insecure, ..config };
        let oci = oci_client_for(&config)?;
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            // Never follow a redirect from HTTPS down to plain HTTP.
            let downgrade =
                attempt.url().scheme() == "http" && attempt.previous().iter().any(|u| u.scheme() == "https");
            if downgrade {
                attempt.error("redirect from https to http refused")
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .read_timeout(config.timeout)
            .redirect(redirects)
            .user_agent(concat!("vouch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RegistryError::Config { reason: e.to_string() })?;
        Ok(Self::from_parts(config, Backend::Network { oci, http }, None))
    }

    /// A client that also records every successful read into `recorder` (to build an offline bundle
    /// from exactly what verification read).
    pub fn recording(config: RegistryConfig, recorder: Recorder) -> Result<Self, RegistryError> {
        let client = Self::new(config)?;
        let inner = Arc::into_inner(client.inner)
            .ok_or_else(|| RegistryError::Config { reason: "client shared while being built".into() })?;
        Ok(Self { inner: Arc::new(Inner { recorder: Some(recorder), ..inner }) })
    }

    /// A client that answers reads from an offline bundle's content only. It has no HTTP client, so it
    /// cannot reach any network; what the bundle does not cover fails as unreachable ("not in the
    /// offline bundle") and pushes fail.
    pub fn offline(config: RegistryConfig, store: OfflineStore) -> Self {
        Self::from_parts(config, Backend::Offline(store), None)
    }

    /// Whether this client reads from an offline bundle.
    pub fn is_offline(&self) -> bool {
        matches!(self.inner.backend, Backend::Offline(_))
    }

    fn from_parts(config: RegistryConfig, backend: Backend, recorder: Option<Recorder>) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                backend,
                recorder,
                auth_cache: Mutex::new(HashMap::new()),
                calls: Arc::new(AtomicU64::new(0)),
                errors: Arc::new(AtomicU64::new(0)),
                retries: Arc::new(AtomicU64::new(0)),
                http_requests: Arc::new(AtomicU64::new(0)),
                failures: Arc::new(std::array::from_fn(|_| AtomicU64::new(0))),
            }),
        }
    }

    /// A client that uses `extra` credentials first (where `extra` and the configured credentials both
    /// name a registry, `extra` wins) and the configured ones otherwise. It shares this client's
    /// connections and counters, but not its tokens: tokens obtained with one set of credentials are
    /// never used for another.
    pub fn with_credentials(&self, extra: &Credentials) -> Result<Self, RegistryError> {
        let mut credentials = extra.clone();
        credentials.merge(self.inner.config.credentials.clone());
        let config = RegistryConfig { credentials, ..self.inner.config.clone() };
        let backend = match &self.inner.backend {
            Backend::Network { http, .. } => {
                Backend::Network { oci: oci_client_for(&config)?, http: http.clone() }
            }
            Backend::Offline(store) => Backend::Offline(store.clone()),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                backend,
                recorder: self.inner.recorder.clone(),
                auth_cache: Mutex::new(HashMap::new()),
                calls: self.inner.calls.clone(),
                errors: self.inner.errors.clone(),
                retries: self.inner.retries.clone(),
                http_requests: self.inner.http_requests.clone(),
                failures: self.inner.failures.clone(),
            }),
        })
    }

    /// The configuration in force (insecure registries normalised).
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// Counters since the client was built.
    pub fn stats(&self) -> RegistryStats {
        RegistryStats {
            calls: self.inner.calls.load(Ordering::Relaxed),
            errors: self.inner.errors.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
            http_requests: self.inner.http_requests.load(Ordering::Relaxed),
            failures: FailureCounts(std::array::from_fn(|i| self.inner.failures[i].load(Ordering::Relaxed))),
        }
    }

    /// The digest a reference names: its own digest when it has one, else what its tag points to now.
    pub async fn resolve(&self, r: &ArtifactRef) -> Result<Digest, RegistryError> {
        if let Some(d) = r.digest() {
            return Ok(d.clone());
        }
        self.counted(async {
            if let Backend::Offline(store) = &self.inner.backend {
                return store.resolve(r);
            }
            let resolved = self.resolve_online(r).await;
            self.record_tag(r, resolved.as_ref());
            resolved
        })
        .await
    }

    async fn resolve_online(&self, r: &ArtifactRef) -> Result<Digest, RegistryError> {
        let ans = self
            .with_retries(r, true, || {
                self.send(Req { method: Method::HEAD, ..self.manifest_req(r, manifest_path_ref(r)) })
            })
            .await?;
        let definite =
            [StatusCode::OK, StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN, StatusCode::NOT_FOUND];
        if definite.contains(&ans.status) {
            check_status(r, &ans, &[StatusCode::OK])?;
        }
        match ans.header("docker-content-digest").filter(|_| ans.status == StatusCode::OK) {
            Some(d) => {
                d.parse::<Digest>().map_err(|e| protocol(r, format!("bad Docker-Content-Digest header: {e}")))
            }
            // Registries need not send the header, and some mishandle HEAD: hash the manifest itself,
            // which must be one (a tag is never pinned to the digest of whatever came back).
            None => {
                let fetched = self.fetch_manifest_uncounted(r).await?;
                fetched.parse()?;
                Ok(fetched.digest)
            }
        }
    }

    /// Fetch a manifest by the reference's digest (the bytes must hash to it) or, lacking one, by tag.
    pub async fn fetch_manifest(&self, r: &ArtifactRef) -> Result<FetchedManifest, RegistryError> {
        self.counted(self.fetch_manifest_uncounted(r)).await
    }

    /// Fetch and parse a manifest in one go.
    pub async fn fetch_parsed_manifest(
        &self,
        r: &ArtifactRef,
    ) -> Result<(FetchedManifest, ManifestKind), RegistryError> {
        // One call: an answer that is not a manifest is a failed call (and counted as one).
        self.counted(async {
            let fetched = self.fetch_manifest_uncounted(r).await?;
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
        self.counted(async {
            let limit = max_bytes.min(self.inner.config.max_blob_bytes);
            if let Backend::Offline(store) = &self.inner.backend {
                return store.blob(r, digest, limit);
            }
            let req = || Req {
                r,
                op: Op::Pull,
                method: Method::GET,
                url: format!("{}/blobs/{digest}", self.repo_url(r)),
                accept: None,
                body: None,
                limit,
                what: format!("blob {digest} of {}", r.repository_name()),
            };
            let ans = self.with_retries(r, true, || self.send(req())).await?;
            check_status(r, &ans, &[StatusCode::OK])?;
            verify_digest(digest, &ans.body)?;
            if let Some(rec) = &self.inner.recorder {
                rec.blob(digest, &ans.body);
            }
            Ok(ans.body)
        })
        .await
    }

    /// Upload a blob to the repository `r` names (skipped when the registry has it already).
    pub async fn push_blob(&self, r: &ArtifactRef, bytes: &[u8]) -> Result<Digest, RegistryError> {
        self.counted(async {
            let digest = Digest::sha256_of(bytes);
            let head = || Req {
                r,
                op: Op::Push,
                method: Method::HEAD,
                url: format!("{}/blobs/{digest}", self.repo_url(r)),
                accept: None,
                body: None,
                limit: 0,
                what: format!("blob {digest}"),
            };
            let exists = self.with_retries(r, true, || self.send(head())).await?;
            if exists.status == StatusCode::OK {
                return Ok(digest);
            }
            // Let oci-client authenticate its own requests with the same credentials.
            let (oci, _) = self.network(r)?;
            let oci_ref = oci_reference(r);
            let oci_auth = self.oci_auth(r);
            self.inner.http_requests.fetch_add(1, Ordering::Relaxed);
            oci.store_auth_if_needed(oci_ref.resolve_registry(), &oci_auth).await;
            let digest_text = digest.to_string();
            let upload = oci.push_blob(&oci_ref, bytes.to_vec(), &digest_text);
            match tokio::time::timeout(self.inner.config.timeout, upload).await {
                Ok(Ok(_location)) => Ok(digest),
                Ok(Err(e)) => Err(map_oci_error(r, e, self.inner.config.timeout)),
                Err(_) => Err(RegistryError::Timeout {
                    registry: r.registry().to_owned(),
                    after: self.inner.config.timeout,
                }),
            }
        })
        .await
    }

    /// Upload a manifest to `r`'s tag (or digest, which the bytes must hash to); returns its digest.
    pub async fn push_manifest(
        &self,
        r: &ArtifactRef,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        self.counted(async { self.put_manifest(r, bytes, media_type).await.map(|(d, _)| d) }).await
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
            if let Backend::Offline(store) = &self.inner.backend {
                return store.referrers(subject, artifact_type);
            }
            let mut found = match self.referrers_api(subject, digest, artifact_type).await? {
                Some(list) => list,
                None => match self.referrers_tag_index(subject, digest).await? {
                    Some(index) => index.manifests,
                    None => Vec::new(),
                },
            };
            if let Some(rec) = &self.inner.recorder {
                let key = crate::offline::referrers_key(subject, digest, artifact_type);
                rec.referrers(key, &found);
            }
            // Filter here too: registries may ignore the filter.
            if let Some(t) = artifact_type {
                found.retain(|d| d.artifact_type.as_deref() == Some(t));
            }
            Ok(found)
        })
        .await
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
            let subject_digest = subject_digest(subject)?.clone();
            let kind = parse_manifest(&subject.to_string(), media_type, manifest)?;
            match kind.subject() {
                Some(s) if s.digest == subject_digest => {}
                Some(s) => {
                    return Err(invalid_ref(
                        subject,
                        format!("the manifest's subject is {}, not {subject_digest}", s.digest),
                    ))
                }
                None => return Err(invalid_ref(subject, "the manifest has no subject".to_owned())),
            }
            let digest = Digest::sha256_of(manifest);
            let target = subject_repo(subject)?.with_digest(digest.clone());
            let (_, api_supported) = self.put_manifest(&target, manifest, media_type).await?;
            if api_supported {
                return Ok(digest);
            }
            let entry = Descriptor {
                media_type: bare_media_type(media_type).to_owned(),
                digest: digest.clone(),
                size: manifest.len() as u64,
                artifact_type: Some(artifact_type.to_owned()),
                annotations: kind.annotations().clone(),
                platform: None,
            };
            let tag_ref = subject_repo(subject)?
                .with_tag(&subject_digest.cosign_tag_stem())
                .map_err(|e| invalid_ref(subject, e.reason))?;
            for _ in 0..REFERRERS_TAG_ATTEMPTS {
                let mut index = self
                    .referrers_tag_index(subject, &subject_digest)
                    .await?
                    .unwrap_or_else(ImageIndex::empty);
                if index.manifests.iter().any(|d| d.digest == digest) {
                    return Ok(digest);
                }
                index.manifests.push(entry.clone());
                let body = serde_json::to_vec(&index)
                    .map_err(|e| protocol(subject, format!("cannot encode referrers index: {e}")))?;
                self.put_manifest(&tag_ref, &body, OCI_INDEX).await?;
                // Read back: a concurrent writer may have replaced the index with one lacking our entry.
                let written = self.referrers_tag_index(subject, &subject_digest).await?;
                if written.is_some_and(|i| i.manifests.iter().any(|d| d.digest == digest)) {
                    return Ok(digest);
                }
            }
            Err(protocol(
                subject,
                "the referrers tag index kept being overwritten by concurrent writers".to_owned(),
            ))
        })
        .await
    }

    // ---- internals ----

    async fn counted<T>(
        &self,
        call: impl Future<Output = Result<T, RegistryError>>,
    ) -> Result<T, RegistryError> {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let result = call.await;
        if let Err(e) = &result {
            self.inner.errors.fetch_add(1, Ordering::Relaxed);
            self.inner.failures[e.kind() as usize].fetch_add(1, Ordering::Relaxed);
            tracing::debug!(error = %e, kind = %e.kind(), "registry call failed");
        }
        result
    }

    async fn fetch_manifest_uncounted(&self, r: &ArtifactRef) -> Result<FetchedManifest, RegistryError> {
        if let Backend::Offline(store) = &self.inner.backend {
            return store.manifest(r, self.inner.config.max_manifest_bytes);
        }
        let fetched = self.fetch_manifest_online(r).await;
        if let Some(rec) = &self.inner.recorder {
            if let Ok(m) = &fetched {
                rec.manifest(&m.digest, &m.media_type, &m.bytes);
            }
            self.record_tag(r, fetched.as_ref().map(|m| &m.digest));
        }
        fetched
    }

    /// Record a tag look-up: its digest, or that the registry definitely does not have it.
    fn record_tag(&self, r: &ArtifactRef, result: Result<&Digest, &RegistryError>) {
        if let Some(rec) = &self.inner.recorder {
            match result {
                Ok(d) => rec.tag(r, Some(d)),
                Err(RegistryError::NotFound { .. }) => rec.tag(r, None),
                Err(_) => {}
            }
        }
    }

    async fn fetch_manifest_online(&self, r: &ArtifactRef) -> Result<FetchedManifest, RegistryError> {
        let ans =
            self.with_retries(r, true, || self.send(self.manifest_req(r, manifest_path_ref(r)))).await?;
        check_status(r, &ans, &[StatusCode::OK])?;
        let digest = match r.digest() {
            Some(expected) => {
                verify_digest(expected, &ans.body)?;
                expected.clone()
            }
            None => {
                let actual = Digest::sha256_of(&ans.body);
                // A registry that names another digest than what it served is not to be trusted.
                if let Some(claimed) = ans.header("docker-content-digest") {
                    let claimed: Digest = claimed
                        .parse()
                        .map_err(|e| protocol(r, format!("bad Docker-Content-Digest header: {e}")))?;
                    verify_digest(&claimed, &ans.body)?;
                }
                actual
            }
        };
        let media_type = match ans
            .header("content-type")
            .map(bare_media_type)
            .filter(|m| MANIFEST_MEDIA_TYPES.contains(m))
        {
            Some(m) => m.to_owned(),
            None => body_media_type(&ans.body).unwrap_or_default(),
        };
        Ok(FetchedManifest { digest, media_type, bytes: ans.body })
    }

    fn manifest_req<'a>(&self, r: &'a ArtifactRef, reference: String) -> Req<'a> {
        Req {
            r,
            op: Op::Pull,
            method: Method::GET,
            url: format!("{}/manifests/{reference}", self.repo_url(r)),
            accept: Some(MANIFEST_MEDIA_TYPES.join(", ")),
            body: None,
            limit: self.inner.config.max_manifest_bytes,
            what: format!("manifest {r}"),
        }
    }

    /// PUT a manifest; returns its digest and whether the registry announced referrers support.
    async fn put_manifest(
        &self,
        r: &ArtifactRef,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(Digest, bool), RegistryError> {
        let limit = self.inner.config.max_manifest_bytes;
        if bytes.len() > limit {
            return Err(RegistryError::TooLarge { what: format!("manifest for {r}"), limit });
        }
        let digest = Digest::sha256_of(bytes);
        if let Some(expected) = r.digest() {
            verify_digest(expected, bytes)?;
        }
        let reference = match (r.tag(), r.digest()) {
            (Some(t), _) => t.to_owned(),
            (None, Some(d)) => d.to_string(),
            (None, None) => return Err(invalid_ref(r, "a manifest push needs a tag or a digest".to_owned())),
        };
        let req = || Req {
            r,
            op: Op::Push,
            method: Method::PUT,
            url: format!("{}/manifests/{reference}", self.repo_url(r)),
            accept: None,
            body: Some((bytes.to_vec(), bare_media_type(media_type).to_owned())),
            limit: 0,
            what: format!("manifest push to {r}"),
        };
        // A manifest PUT is idempotent: same bytes, same result.
        let ans = self.with_retries(r, true, || self.send(req())).await?;
        check_status(r, &ans, &[StatusCode::CREATED, StatusCode::OK])?;
        if let Some(claimed) = ans.header("docker-content-digest") {
            if claimed != digest.to_string() && claimed.starts_with("sha256:") {
                return Err(RegistryError::DigestMismatch {
                    expected: digest.to_string(),
                    actual: claimed.to_owned(),
                });
            }
        }
        let api_supported = ans.header("oci-subject").is_some();
        Ok((digest, api_supported))
    }

    /// The referrers API answer, or `None` when the registry lacks the API.
    async fn referrers_api(
        &self,
        subject: &ArtifactRef,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        let mut url = reqwest::Url::parse(&format!("{}/referrers/{digest}", self.repo_url(subject)))
            .map_err(|e| invalid_ref(subject, format!("cannot build referrers URL: {e}")))?;
        if let Some(t) = artifact_type {
            url.query_pairs_mut().append_pair("artifactType", t);
        }
        let mut next = Some(url.to_string());
        let mut found = Vec::new();
        let mut pages = 0;
        while let Some(page_url) = next.take() {
            pages += 1;
            if pages > MAX_REFERRER_PAGES {
                return Err(protocol(subject, format!("more than {MAX_REFERRER_PAGES} pages of referrers")));
            }
            let req = || Req {
                r: subject,
                op: Op::Pull,
                method: Method::GET,
                url: page_url.clone(),
                accept: Some(OCI_INDEX.to_owned()),
                body: None,
                limit: self.inner.config.max_manifest_bytes,
                what: format!("referrers of {subject}"),
            };
            let ans = self.with_retries(subject, true, || self.send(req())).await?;
            // 404 and 405 mean no referrers API (a registry with it answers 200 even for unknown subjects).
            if pages == 1 && matches!(ans.status, StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED) {
                return Ok(None);
            }
            check_status(subject, &ans, &[StatusCode::OK])?;
            match parse_manifest(&subject.to_string(), OCI_INDEX, &ans.body)? {
                ManifestKind::Index(index) => found.extend(index.manifests),
                ManifestKind::Image(_) => {
                    return Err(protocol(subject, "referrers answer is not an image index".to_owned()))
                }
            }
            next = ans.header("link").and_then(next_link).map(|link| self.absolute_url(subject, &link));
        }
        Ok(Some(found))
    }

    /// The referrers tag schema index (`sha256-<hex>`), `None` when the tag does not exist.
    async fn referrers_tag_index(
        &self,
        subject: &ArtifactRef,
        digest: &Digest,
    ) -> Result<Option<ImageIndex>, RegistryError> {
        let tag_ref = subject_repo(subject)?
            .with_tag(&digest.cosign_tag_stem())
            .map_err(|e| invalid_ref(subject, e.reason))?;
        match self.fetch_manifest_uncounted(&tag_ref).await {
            Ok(fetched) => match fetched.parse()? {
                ManifestKind::Index(index) => Ok(Some(index)),
                ManifestKind::Image(_) => Err(protocol(
                    &tag_ref,
                    "the referrers tag holds an image manifest, not an index".to_owned(),
                )),
            },
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Run `attempt` until it succeeds, fails for good, retries run out or the call's time is up.
    async fn with_retries<T, F, Fut>(
        &self,
        r: &ArtifactRef,
        idempotent: bool,
        mut attempt: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failed>>,
    {
        let budget = self.inner.config.timeout;
        let deadline = tokio::time::Instant::now() + budget;
        let timeout = || RegistryError::Timeout { registry: r.registry().to_owned(), after: budget };
        let mut backoff = FIRST_BACKOFF;
        let mut tries = 0u32;
        loop {
            let result = match tokio::time::timeout_at(deadline, attempt()).await {
                Ok(result) => result,
                Err(_) => return Err(timeout()),
            };
            match result {
                Err(Failed { error, retry_after })
                    if idempotent && error.is_transient() && tries < self.inner.config.retries =>
                {
                    // The registry's own Retry-After wins over our backoff, but never past the call's budget.
                    let wait = retry_after.map_or(backoff, |asked| asked.max(backoff));
                    if tokio::time::Instant::now() + wait >= deadline {
                        return Err(error);
                    }
                    tries += 1;
                    self.inner.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %error, tries, wait_ms = wait.as_millis() as u64, "retrying registry request");
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(failed) => return Err(failed.error),
                Ok(v) => return Ok(v),
            }
        }
    }

    /// One HTTP exchange, authenticated; a 401 with a reused token is retried once with a fresh one.
    async fn send(&self, req: Req<'_>) -> Result<Answer, Failed> {
        let (header, reused) = self.authorization(req.r, req.op).await?;
        let ans = self.send_once(&req, header.as_ref()).await?;
        if ans.status == StatusCode::UNAUTHORIZED && reused {
            self.forget_auth(req.r, req.op);
            let (header, _) = self.authorization(req.r, req.op).await?;
            return self.send_once(&req, header.as_ref()).await;
        }
        Ok(ans)
    }

    async fn send_once(&self, req: &Req<'_>, auth: Option<&HeaderValue>) -> Result<Answer, Failed> {
        let (_, http) = self.network(req.r)?;
        self.inner.http_requests.fetch_add(1, Ordering::Relaxed);
        let mut builder = http.request(req.method.clone(), &req.url);
        if let Some(a) = auth {
            builder = builder.header(AUTHORIZATION, a.clone());
        }
        if let Some(accept) = &req.accept {
            builder = builder.header(ACCEPT, accept);
        }
        if let Some((body, content_type)) = &req.body {
            builder = builder.header(CONTENT_TYPE, content_type).body(body.clone());
        }
        let mut response = builder.send().await.map_err(|e| self.classify(req.r, &e))?;
        let status = response.status();
        // Server trouble is an error here so that the retry loop sees it.
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after =
                matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE)
                    .then(|| response.headers().get(reqwest::header::RETRY_AFTER))
                    .flatten()
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, chrono::Utc::now()));
            let error = if status == StatusCode::TOO_MANY_REQUESTS {
                RegistryError::Throttled { reference: req.r.to_string(), retry_after }
            } else {
                status_error(req.r, status.as_u16())
            };
            return Err(Failed { error, retry_after });
        }
        let headers = response.headers().clone();
        // Bodies of failures and of HEAD are not needed; only a successful GET's body is read, capped.
        if !status.is_success() || req.method == Method::HEAD || req.method == Method::PUT {
            return Ok(Answer { status, headers, body: Vec::new() });
        }
        let too_large = || Failed::from(RegistryError::TooLarge { what: req.what.clone(), limit: req.limit });
        if response.content_length().is_some_and(|len| len > req.limit as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(req.r, &e))? {
            if body.len() + chunk.len() > req.limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, headers, body })
    }

    /// The Authorization header for `r`'s repository (none for anonymous access without a token), and
    /// whether it came from the cache.
    async fn authorization(
        &self,
        r: &ArtifactRef,
        op: Op,
    ) -> Result<(Option<HeaderValue>, bool), RegistryError> {
        let key = AuthKey { registry: r.registry().to_owned(), repository: r.repository().to_owned(), op };
        if let Ok(cache) = self.inner.auth_cache.lock() {
            if let Some(cached) = cache.get(&key).filter(|c| c.until > Instant::now()) {
                return Ok((cached.header.clone(), true));
            }
        }
        let creds = self.inner.config.credentials.for_registry(r.registry());
        let oci_op = match op {
            Op::Pull => RegistryOperation::Pull,
            Op::Push => RegistryOperation::Push,
        };
        let (oci, _) = self.network(r)?;
        self.inner.http_requests.fetch_add(1, Ordering::Relaxed);
        let token = oci
            .auth(&oci_reference(r), &self.oci_auth(r), oci_op)
            .await
            .map_err(|e| map_oci_error(r, e, self.inner.config.timeout))?;
        let header = match (token, creds) {
            (Some(token), _) | (None, Some(RegistryAuth::Bearer { token })) => {
                Some(format!("Bearer {token}"))
            }
            (None, Some(RegistryAuth::Basic { username, password })) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            (None, None) => None,
        };
        let header = header
            .map(|h| {
                HeaderValue::from_str(&h).map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
            })
            .transpose()
            .map_err(|_| RegistryError::InvalidCredentials {
                reason: format!("credentials for {} are not a valid header", r.registry()),
            })?;
        if let Ok(mut cache) = self.inner.auth_cache.lock() {
            // Bound the cache: drop expired entries, and everything if that is not enough.
            if cache.len() >= MAX_CACHED_AUTH {
                let now = Instant::now();
                cache.retain(|_, c| c.until > now);
                if cache.len() >= MAX_CACHED_AUTH {
                    cache.clear();
                }
            }
            cache.insert(key, CachedAuth { header: header.clone(), until: Instant::now() + AUTH_REUSE });
        }
        Ok((header, false))
    }

    /// The HTTP clients, or an error for an offline client (which has none).
    fn network(&self, r: &ArtifactRef) -> Result<(&oci_client::Client, &reqwest::Client), RegistryError> {
        match &self.inner.backend {
            Backend::Network { oci, http } => Ok((oci, http)),
            // Only writes get here (reads are answered by the store): nothing can be written to a bundle.
            Backend::Offline(_) => Err(RegistryError::Unreachable {
                registry: r.registry().to_owned(),
                reason: format!("{r}: an offline client has no network access"),
            }),
        }
    }

    fn forget_auth(&self, r: &ArtifactRef, op: Op) {
        let key = AuthKey { registry: r.registry().to_owned(), repository: r.repository().to_owned(), op };
        if let Ok(mut cache) = self.inner.auth_cache.lock() {
            cache.remove(&key);
        }
    }

    fn oci_auth(&self, r: &ArtifactRef) -> oci_client::secrets::RegistryAuth {
        self.inner
            .config
            .credentials
            .for_registry(r.registry())
            .map_or(oci_client::secrets::RegistryAuth::Anonymous, |a| a.to_oci())
    }

    fn scheme(&self, registry: &str) -> &'static str {
        if self.inner.config.insecure_registries.iter().any(|i| i == registry) {
            "http"
        } else {
            "https"
        }
    }

    /// `https://registry/v2/<repository>`, with Docker Hub's API host.
    fn repo_url(&self, r: &ArtifactRef) -> String {
        let host = oci_reference(r).resolve_registry().to_owned();
        format!("{}://{host}/v2/{}", self.scheme(r.registry()), r.repository())
    }

    fn absolute_url(&self, r: &ArtifactRef, link: &str) -> String {
        if link.starts_with('/') {
            let host = oci_reference(r).resolve_registry().to_owned();
            format!("{}://{host}{link}", self.scheme(r.registry()))
        } else {
            link.to_owned()
        }
    }

    fn classify(&self, r: &ArtifactRef, e: &reqwest::Error) -> RegistryError {
        transport_error(r, e, self.scheme(r.registry()) == "https", self.inner.config.timeout)
    }
}

/// The wait a `Retry-After` value asks for: delay-seconds or an HTTP date (RFC 9110), at most
/// [`MAX_RETRY_AFTER`]; `None` when it cannot be read.
fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&chrono::Utc);
            (at - now).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// What went wrong below HTTP status level: timeout, refused, reset, an answer cut short, or bytes that
/// are not HTTP. `https`: whether TLS was spoken (a plain-HTTP answer to a ClientHello is told apart).
fn transport_error(r: &ArtifactRef, e: &reqwest::Error, https: bool, timeout: Duration) -> RegistryError {
    let registry = r.registry().to_owned();
    if e.is_timeout() {
        return RegistryError::Timeout { registry, after: timeout };
    }
    let reason = error_chain(e);
    // rustls reading a plain-HTTP answer to its ClientHello: the registry does not speak TLS.
    if https && (reason.contains("InvalidContentType") || reason.contains("corrupt message")) {
        return RegistryError::InsecureNotAllowed { registry };
    }
    if e.is_connect() {
        return RegistryError::Unreachable { registry, reason };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe => return RegistryError::Reset { registry },
                std::io::ErrorKind::UnexpectedEof => return RegistryError::ClosedEarly { registry, reason },
                _ => {}
            }
        }
        source = s.source();
    }
    // hyper's own descriptions (its error type is not ours to name): see hyper::Error's Display.
    if reason.contains("connection closed before message completed") || reason.contains("end of file") {
        RegistryError::ClosedEarly { registry, reason }
    } else if reason.contains("parsed")
        || reason.contains("message head is too large")
        || reason.contains("unexpected message")
        || reason.contains("invalid URI")
    {
        RegistryError::NotHttp { registry, reason }
    } else {
        RegistryError::Unreachable { registry, reason }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

fn map_oci_error(r: &ArtifactRef, e: OciDistributionError, timeout: Duration) -> RegistryError {
    let registry = r.registry().to_owned();
    match e {
        OciDistributionError::AuthenticationFailure(_) | OciDistributionError::UnauthorizedError { .. } => {
            RegistryError::Unauthorized { registry }
        }
        // oci-client only knows https-or-not per registry; the TLS check below is harmless for http.
        OciDistributionError::RequestError(e) => transport_error(r, &e, true, timeout),
        OciDistributionError::ServerError { code, .. } => status_error(r, code),
        OciDistributionError::RegistryError { envelope, .. } => protocol(
            r,
            format!(
                "registry error: {}",
                envelope.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ")
            ),
        ),
        other => protocol(r, other.to_string()),
    }
}

fn status_error(r: &ArtifactRef, status: u16) -> RegistryError {
    match status {
        401 => RegistryError::Unauthorized { registry: r.registry().to_owned() },
        403 => RegistryError::Denied { reference: r.to_string() },
        404 => RegistryError::NotFound { reference: r.to_string() },
        429 => RegistryError::Throttled { reference: r.to_string(), retry_after: None },
        s if s >= 500 => RegistryError::Server { reference: r.to_string(), status: s },
        s => protocol(r, format!("unexpected HTTP status {s}")),
    }
}

fn check_status(r: &ArtifactRef, ans: &Answer, expected: &[StatusCode]) -> Result<(), RegistryError> {
    if expected.contains(&ans.status) {
        Ok(())
    } else {
        Err(status_error(r, ans.status.as_u16()))
    }
}

fn verify_digest(expected: &Digest, bytes: &[u8]) -> Result<(), RegistryError> {
    if expected.matches(bytes) {
        Ok(())
    } else {
        Err(RegistryError::DigestMismatch {
            expected: expected.to_string(),
            actual: Digest::of(expected.algorithm(), bytes).to_string(),
        })
    }
}

fn protocol(r: &ArtifactRef, reason: String) -> RegistryError {
    RegistryError::Protocol { reference: r.to_string(), reason }
}

fn invalid_ref(r: &ArtifactRef, reason: String) -> RegistryError {
    RegistryError::InvalidReference { reference: r.to_string(), reason }
}

fn subject_digest(subject: &ArtifactRef) -> Result<&Digest, RegistryError> {
    subject.digest().ok_or_else(|| invalid_ref(subject, "referrers need a digest reference".to_owned()))
}

/// The repository of `r` without tag or digest.
fn subject_repo(r: &ArtifactRef) -> Result<ArtifactRef, RegistryError> {
    ArtifactRef::new(r.registry(), r.repository(), None, None).map_err(|e| invalid_ref(r, e.reason))
}

/// What goes after `/manifests/`: the digest when there is one (never trust a tag then), else the tag.
fn manifest_path_ref(r: &ArtifactRef) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    }
}

fn oci_reference(r: &ArtifactRef) -> oci_client::Reference {
    let (registry, repository) = (r.registry().to_owned(), r.repository().to_owned());
    match (r.digest(), r.tag()) {
        (Some(d), _) => oci_client::Reference::with_digest(registry, repository, d.to_string()),
        (None, Some(t)) => oci_client::Reference::with_tag(registry, repository, t.to_owned()),
        (None, None) => oci_client::Reference::with_tag(registry, repository, "latest".to_owned()),
    }
}

fn body_media_type(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
    }
    serde_json::from_slice::<Probe>(body).ok()?.media_type
}

/// `http://Host:5000/` → `host:5000`.
fn normalize_host(s: &str) -> String {
    let s = s.trim();
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    s.split('/').next().unwrap_or_default().to_ascii_lowercase()
}

/// The target of a `Link: <url>; rel="next"` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

/// oci-client (used for its token dance and uploads) configured like the client; it keeps credentials and
/// tokens of its own, so every credential set gets its own.
fn oci_client_for(config: &RegistryConfig) -> Result<oci_client::Client, RegistryError> {
    let oci_config = ClientConfig {
        protocol: ClientProtocol::HttpsExcept(config.insecure_registries.clone()),
        read_timeout: Some(config.timeout),
        connect_timeout: Some(config.timeout),
        use_monolithic_push: true,
        ..ClientConfig::default()
    };
    oci_client::Client::try_from(oci_config).map_err(|e| RegistryError::Config { reason: e.to_string() })
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
    fn link_header_next_is_found() {
        assert_eq!(
            next_link(r#"</v2/a/referrers/sha256:x?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/referrers/sha256:x?n=2&last=b")
        );
        assert_eq!(
            next_link(r#"<https://a/1>; rel="prev", <https://a/3>; rel=next"#).as_deref(),
            Some("https://a/3")
        );
        assert_eq!(next_link(r#"<https://a/1>; rel="prev""#), None);
    }

    #[test]
    fn statuses_map_to_distinct_errors() {
        let r: ArtifactRef = "reg.example/app:1".parse().unwrap();
        assert!(matches!(status_error(&r, 401), RegistryError::Unauthorized { .. }));
        assert!(matches!(status_error(&r, 403), RegistryError::Denied { .. }));
        assert!(matches!(status_error(&r, 404), RegistryError::NotFound { .. }));
        assert!(status_error(&r, 503).is_transient());
        assert!(status_error(&r, 429).is_transient());
        assert!(!status_error(&r, 400).is_transient());
    }

    #[test]
    fn insecure_hosts_are_normalised_and_only_they_use_http() {
        let client = RegistryClient::new(RegistryConfig {
            insecure_registries: vec!["http://LocalHost:5000/".into()],
            ..RegistryConfig::default()
        })
        .unwrap();
        let plain: ArtifactRef = "localhost:5000/a:1".parse().unwrap();
        let tls: ArtifactRef = "localhost:5001/a:1".parse().unwrap();
        assert_eq!(client.repo_url(&plain), "http://localhost:5000/v2/a");
        assert_eq!(client.repo_url(&tls), "https://localhost:5001/v2/a");
        let hub: ArtifactRef = "nginx".parse().unwrap();
        assert_eq!(client.repo_url(&hub), "https://index.docker.io/v2/library/nginx");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_capped() {
        let now = chrono::DateTime::parse_from_rfc2822("Sun, 22 Nov 2026 06:00:00 GMT").unwrap().to_utc();
        assert_eq!(retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("Sun, 22 Nov 2026 06:00:07 GMT", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("Sun, 22 Nov 2026 05:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", now), None);
    }

    /// A loopback server answering scripted responses in order (the last one repeats), recording when
    /// each manifest request came.
    async fn scripted(answers: Vec<String>) -> (String, Arc<Mutex<Vec<Instant>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let answer = if head.starts_with("GET /v2/ ") {
                    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                } else {
                    let mut log = log.lock().unwrap();
                    log.push(Instant::now());
                    answers[(log.len() - 1).min(answers.len() - 1)].clone()
                };
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (host, seen)
    }

    fn busy(status: &str, retry_after: &str) -> String {
        format!("HTTP/1.1 {status}\r\nRetry-After: {retry_after}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    }

    #[tokio::test]
    async fn retry_after_is_waited_for_within_the_budget() {
        let body = "{}";
        let ok = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (host, seen) = scripted(vec![busy("429 Too Many Requests", "1"), ok]).await;
        let client = RegistryClient::new(RegistryConfig {
            insecure_registries: vec![host.clone()],
            timeout: Duration::from_secs(5),
            retries: 2,
            ..RegistryConfig::default()
        })
        .unwrap();
        let fetched = client.fetch_manifest(&format!("{host}/a/b:1").parse().unwrap()).await.unwrap();
        assert_eq!(fetched.bytes, body.as_bytes());
        let times = seen.lock().unwrap().clone();
        assert_eq!(times.len(), 2);
        // Our own first backoff is 100 ms; the registry asked for a second.
        assert!(times[1] - times[0] >= Duration::from_millis(950), "{:?}", times[1] - times[0]);
    }

    #[tokio::test]
    async fn retry_after_beyond_the_budget_fails_at_once() {
        let (host, seen) = scripted(vec![busy("503 Service Unavailable", "30")]).await;
        let client = RegistryClient::new(RegistryConfig {
            insecure_registries: vec![host.clone()],
            timeout: Duration::from_secs(3),
            retries: 2,
            ..RegistryConfig::default()
        })
        .unwrap();
        let started = Instant::now();
        let e = client.fetch_manifest(&format!("{host}/a/b:1").parse().unwrap()).await.unwrap_err();
        assert!(matches!(e, RegistryError::Server { status: 503, .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn digest_references_use_the_digest_not_the_tag() {
        let d = Digest::sha256_of(b"x");
        let r: ArtifactRef = format!("reg.example/app:1@{d}").parse().unwrap();
        assert_eq!(manifest_path_ref(&r), d.to_string());
        assert_eq!(manifest_path_ref(&"reg.example/app".parse().unwrap()), "latest");
    }
}
