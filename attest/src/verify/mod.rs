//! The artifact verifier: one entry point that turns (reference, authority, requirement) into a cached
//! [`Verdict`]. Built once per configuration (one registry client, one Sigstore verifier, one cache) and
//! shared; the CLI, the webhooks and the benchmarks all call [`ArtifactVerifier::verify`].
//!
//! A tag is resolved once and the DIGEST is verified and cached. A rejection (verified "no") is a
//! [`Verdict`] with an `Err(Rejection)` outcome, never an error; registry trouble is a [`VerifyError`],
//! which the caller's failure policy turns into allow or deny.
//!
//! The verdict types ([`Signer`], [`Source`], [`Facts`], [`Verdict`], [`Rejection`], ...) live in the
//! leaf module [`crate::verdict`] and are re-exported here.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::cache::{CacheConfig, CacheStats, VerdictCache, VerdictKey};
use crate::cosign::{CosignError, SignatureLayer};
use crate::digest::Digest;
use crate::model::{fetch_model, ModelError, ModelFacts};
use crate::reference::ArtifactRef;
use crate::registry::{
    Credentials, Descriptor, ManifestKind, Platform, RegistryClient, RegistryConfig, RegistryError,
    RegistryStats,
};
use crate::shared_cache::{SharedCache, SharedCacheStats};
use crate::sigstore_verify::{Authority, Matcher, VerificationPolicy, Verifier};
use crate::trust_root::TrustRoot;

mod gather;
mod notation;

pub use crate::verdict::{
    AttestationFacts, Facts, ModelSignatureFacts, Rejection, SbomSource, SignatureFacts, Signer, Source,
    Verdict,
};

/// What is asked of an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Requirement {
    /// A signature by the authority (cosign `.sig` or a cosign v3 bundle referrer).
    Signature,
    /// An attestation of this predicate type signed by the authority.
    Attestation {
        /// e.g. `https://slsa.dev/provenance/v1`.
        predicate_type: String,
    },
    /// A valid CycloneDX SBOM (attested by the authority, a cosign `.sbom` attachment or an OCI referrer).
    Sbom,
    /// An OpenSSF model signature (model-signing v1.0) by the authority over exactly the model's files,
    /// found as a Sigstore bundle referrer of the model manifest or as `model.sig` inside the model.
    ModelSignature,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Signature => f.write_str("signature"),
            Self::Attestation { predicate_type } => write!(f, "attestation:{predicate_type}"),
            Self::Sbom => f.write_str("sbom"),
            Self::ModelSignature => f.write_str("model-signature"),
        }
    }
}

/// Verification choices that are not part of the authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Key-based signatures must have a verified Rekor entry (cosign's default; `false` = `--insecure-ignore-tlog`).
    pub require_tlog_for_keys: bool,
    /// Keyless certificates must carry a verified SCT.
    pub require_sct: bool,
    /// Most candidates (layers, referrers) examined per source, bounding the work one artifact can cause.
    pub max_candidates: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self { require_tlog_for_keys: true, require_sct: true, max_candidates: 16 }
    }
}

/// Everything an [`ArtifactVerifier`] is built from.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Registry access.
    pub registry: RegistryConfig,
    /// Sigstore trust root (Fulcio, Rekor, CT logs, TSAs).
    pub trust_root: TrustRoot,
    /// Verdict cache bounds.
    pub cache: CacheConfig,
    /// Tlog/SCT requirements and work bounds.
    pub options: VerifyOptions,
}

/// One platform's verdict from [`ArtifactVerifier::verify_platforms`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformVerdict {
    /// The platform the index lists (absent if the index does not say).
    pub platform: Option<Platform>,
    /// The platform manifest's own verdict.
    pub verdict: Verdict,
}

/// Verification could not be carried out (as opposed to a rejection).
#[derive(Debug, Clone, thiserror::Error)]
pub enum VerifyError {
    /// The registry failed (transient or not: see [`VerifyError::is_transient`]); the failure policy decides.
    #[error("{0}")]
    Registry(Arc<RegistryError>),
    /// The configuration cannot be used.
    #[error("invalid verifier configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The model artifact could not be read (malformed manifest or config, or registry trouble).
    #[error("{0}")]
    Model(Arc<ModelError>),
    /// `verify_platforms` was asked about something that is not an image index.
    #[error("{reference} is not an image index")]
    NotAnIndex {
        /// The reference.
        reference: String,
    },
}

impl VerifyError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Registry(e) => e.is_transient(),
            Self::Model(e) => e.is_transient(),
            _ => false,
        }
    }
}

impl From<RegistryError> for VerifyError {
    fn from(e: RegistryError) -> Self {
        Self::Registry(Arc::new(e))
    }
}

/// The kind of an authority, as traces name it: `key`, `keyless` or `notation`.
pub fn authority_kind(authority: &Authority) -> &'static str {
    match authority {
        Authority::Key(_) => "key",
        Authority::Keyless { .. } => "keyless",
        Authority::Notation(_) => "notation",
    }
}

/// A stable string naming an authority, for cache keys: `key:<spki sha256>`, `notation:` + level, trust
/// stores and identities ([`crate::notation::NotationAuthority::fingerprint`]), or
/// `keyless:` + the sorted identities (exact values quoted, regular expressions between slashes), each with
/// its claims when it has any (so an identity without claims keeps the fingerprint it always had).
pub fn authority_fingerprint(authority: &Authority) -> String {
    match authority {
        Authority::Key(k) => format!("key:{}", k.fingerprint()),
        Authority::Notation(n) => n.fingerprint(),
        Authority::Keyless { identities } => {
            let show = |m: &Matcher| match m {
                Matcher::Exact(s) => format!("exact:{s:?}"),
                Matcher::Regex(r) => format!("regex:{:?}", r.as_str()),
            };
            let mut ids: Vec<String> = identities
                .iter()
                .map(|i| {
                    let mut s = format!("subject={};issuer={}", show(&i.subject), show(&i.issuer));
                    if !i.claims.is_empty() {
                        let claims: Vec<String> =
                            i.claims.iter().map(|(c, m)| format!("{c}={}", show(m))).collect();
                        s.push_str(&format!(";claims={{{}}}", claims.join(",")));
                    }
                    s
                })
                .collect();
            ids.sort();
            ids.dedup();
            format!("keyless:[{}]", ids.join(","))
        }
    }
}

/// `|trust-root:…|tlog-for-keys:…|sct:…|candidates:…`: what a verdict depends on besides the authority.
fn cache_scope(trust_root: &Digest, options: &VerifyOptions) -> String {
    format!(
        "|trust-root:{trust_root}|tlog-for-keys:{}|sct:{}|candidates:{}",
        options.require_tlog_for_keys, options.require_sct, options.max_candidates
    )
}

struct Inner {
    registry: RegistryClient,
    /// Tag -> digest, single-flight, short-lived: a burst of admissions naming one tag resolves it once.
    tags: moka::future::Cache<ArtifactRef, Digest>,
    /// Model facts by manifest digest (content-addressed, so shared by every fork), single-flight.
    models: moka::future::Cache<Digest, Option<Arc<ModelFacts>>>,
    sigstore: Verifier,
    cache: VerdictCache<Verdict>,
    /// The optional L2 shared by replicas, asked on an L1 miss.
    shared: Option<SharedCache>,
    trust_root_fingerprint: Digest,
    options: VerifyOptions,
    /// The part of every cache key that this verifier fixes (trust root and options), built once.
    cache_scope: String,
    /// Verifiers derived by [`ArtifactVerifier::with_credentials`], most recently made last.
    derived: std::sync::Mutex<Vec<(Credentials, ArtifactVerifier)>>,
}

/// Verifiers for distinct credential sets kept by [`ArtifactVerifier::with_credentials`].
const MAX_DERIVED: usize = 64;
/// Model facts kept at most (each holds a config of at most [`crate::model::MAX_MODEL_CONFIG_BYTES`]).
const MAX_CACHED_MODELS: u64 = 1024;

/// The verifier: build once, clone freely (clones share client, verifier and cache).
#[derive(Clone)]
pub struct ArtifactVerifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for ArtifactVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArtifactVerifier")
            .field("trust_root", &self.inner.trust_root_fingerprint.to_string())
            .field("cache", &self.inner.cache.stats())
            .finish()
    }
}

/// Layers of a cosign tag manifest, each fetched or with the reason it could not be used.
type Layers = Vec<(Descriptor, Result<SignatureLayer, CosignError>)>;

impl ArtifactVerifier {
    /// Build the registry client, the Sigstore verifier and the cache.
    pub fn new(config: VerifierConfig) -> Result<Self, VerifyError> {
        if config.options.max_candidates == 0 {
            return Err(VerifyError::Config { reason: "max_candidates must be at least 1".into() });
        }
        let registry = RegistryClient::new(config.registry.clone())?;
        Self::with_registry_client(config, registry)
    }

    /// Like [`Self::new`] around a registry client built elsewhere (an offline bundle's, a recording
    /// one); `config.registry` is not used to build another.
    pub fn with_registry_client(
        config: VerifierConfig,
        registry: RegistryClient,
    ) -> Result<Self, VerifyError> {
        if config.options.max_candidates == 0 {
            return Err(VerifyError::Config { reason: "max_candidates must be at least 1".into() });
        }
        let trust_root_fingerprint = config.trust_root.fingerprint().clone();
        let tags = moka::future::Cache::builder()
            .max_capacity(config.cache.max_entries.max(1))
            .time_to_live(config.cache.tag_ttl)
            .build();
        let models = moka::future::Cache::builder()
            .max_capacity(config.cache.max_entries.clamp(1, MAX_CACHED_MODELS))
            .time_to_live(config.cache.success_ttl)
            .build();
        Ok(Self {
            inner: Arc::new(Inner {
                registry,
                tags,
                models,
                sigstore: Verifier::new(config.trust_root),
                cache: VerdictCache::new(&config.cache),
                shared: None,
                cache_scope: cache_scope(&trust_root_fingerprint, &config.options),
                trust_root_fingerprint,
                options: config.options,
                derived: std::sync::Mutex::new(Vec::new()),
            }),
        })
    }

    /// A verifier sharing this one's caches, changing registry client, trust root or options.
    fn fork(
        &self,
        registry: RegistryClient,
        sigstore: Verifier,
        trust_root_fingerprint: Digest,
        options: VerifyOptions,
        shared: Option<SharedCache>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                registry,
                tags: self.inner.tags.clone(),
                models: self.inner.models.clone(),
                sigstore,
                cache: self.inner.cache.clone(),
                shared,
                cache_scope: cache_scope(&trust_root_fingerprint, &options),
                trust_root_fingerprint,
                options,
                derived: std::sync::Mutex::new(Vec::new()),
            }),
        }
    }

    /// The same verifier with `extra` pull credentials in front of the configured ones (per-request
    /// imagePullSecrets, per-policy credentials). It shares the verdict and tag caches, the Sigstore
    /// verifier and the HTTP connections (verdicts are facts about digests, whoever fetched them), but
    /// not registry tokens. Derived verifiers are kept per credential set, so calling this per request
    /// is cheap.
    pub fn with_credentials(&self, extra: &Credentials) -> Result<Self, VerifyError> {
        if extra.is_empty() {
            return Ok(self.clone());
        }
        let mut derived = self
            .inner
            .derived
            .lock()
            .map_err(|_| VerifyError::Config { reason: "derived verifiers lock poisoned".into() })?;
        if let Some(pos) = derived.iter().position(|(c, _)| c == extra) {
            let entry = derived.remove(pos);
            let v = entry.1.clone();
            derived.push(entry);
            return Ok(v);
        }
        let registry = self.inner.registry.with_credentials(extra)?;
        let v = self.fork(
            registry,
            self.inner.sigstore.clone(),
            self.inner.trust_root_fingerprint.clone(),
            self.inner.options.clone(),
            self.inner.shared.clone(),
        );
        if derived.len() >= MAX_DERIVED {
            derived.remove(0);
        }
        derived.push((extra.clone(), v.clone()));
        Ok(v)
    }

    /// The same verifier against another Sigstore trust root (e.g. a private Sigstore named by a
    /// policy); caches are shared, and every cache key carries the trust root's fingerprint.
    pub fn with_trust_root(&self, trust_root: TrustRoot) -> Self {
        let fingerprint = trust_root.fingerprint().clone();
        self.fork(
            self.inner.registry.clone(),
            Verifier::new(trust_root),
            fingerprint,
            self.inner.options.clone(),
            self.inner.shared.clone(),
        )
    }

    /// The same verifier with other options (e.g. a key authority that does not require Rekor); caches
    /// are shared, and every cache key carries the options that decide a verdict.
    pub fn with_options(&self, options: VerifyOptions) -> Result<Self, VerifyError> {
        if options.max_candidates == 0 {
            return Err(VerifyError::Config { reason: "max_candidates must be at least 1".into() });
        }
        Ok(self.fork(
            self.inner.registry.clone(),
            self.inner.sigstore.clone(),
            self.inner.trust_root_fingerprint.clone(),
            options,
            self.inner.shared.clone(),
        ))
    }

    /// The same verifier (sharing its L1 cache) with a shared L2 cache asked on every L1 miss; verifiers
    /// derived from it later share it too. Build the shared cache with this verifier's cache TTLs.
    pub fn with_shared_cache(&self, shared: SharedCache) -> Self {
        self.fork(
            self.inner.registry.clone(),
            self.inner.sigstore.clone(),
            self.inner.trust_root_fingerprint.clone(),
            self.inner.options.clone(),
            Some(shared),
        )
    }

    /// The options in force.
    pub fn options(&self) -> &VerifyOptions {
        &self.inner.options
    }

    /// The registry client (shared; e.g. for signing in tests and demos).
    pub fn registry(&self) -> &RegistryClient {
        &self.inner.registry
    }

    /// The reference pinned to its digest: a digest reference as it is, a tag resolved once.
    pub async fn resolve(&self, r: &ArtifactRef) -> Result<ArtifactRef, VerifyError> {
        if r.digest().is_some() {
            return Ok(r.clone());
        }
        if let Some(digest) = self.inner.tags.get(r).await {
            return Ok(r.with_digest(digest));
        }
        // On the heap: a registry request's future is large, and every caller would carry it by value.
        Box::pin(self.resolve_tag(r)).await
    }

    /// [`Self::resolve`] of a tag not in the cache: one registry request for concurrent callers.
    async fn resolve_tag(&self, r: &ArtifactRef) -> Result<ArtifactRef, VerifyError> {
        use tracing::Instrument as _;
        let span = tracing::debug_span!("resolve", reference = %r, digest = tracing::field::Empty);
        let registry = &self.inner.registry;
        let digest = self
            .inner
            .tags
            .try_get_with(r.clone(), async { registry.resolve(r).await.map_err(Arc::new) })
            .instrument(span.clone())
            .await
            .map_err(|e: Arc<Arc<RegistryError>>| VerifyError::Registry((*e).clone()))?;
        span.record("digest", tracing::field::display(&digest));
        Ok(r.with_digest(digest))
    }

    /// Verify `requirement` of `r` against `authority`: resolves a tag once, verifies the digest, caches
    /// the verdict under digest + authority + trust root + requirement. Concurrent identical calls share
    /// one verification.
    pub async fn verify(
        &self,
        r: &ArtifactRef,
        authority: &Authority,
        requirement: &Requirement,
    ) -> Result<Verdict, VerifyError> {
        use tracing::Instrument as _;
        // A debug span: disabled (nothing formatted) unless traces are exported or debug logs are on.
        let span = tracing::debug_span!(
            "verify",
            reference = %r,
            digest = tracing::field::Empty,
            authority.kind = authority_kind(authority),
            requirement = %requirement,
            result = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let verified = self.verify_digest(r, authority, requirement).instrument(span.clone()).await;
        if !span.is_disabled() {
            match &verified {
                Ok(v) => {
                    if let Some(digest) = v.reference.digest() {
                        span.record("digest", tracing::field::display(digest));
                    }
                    span.record("result", if v.is_verified() { "verified" } else { "rejected" });
                }
                Err(e) => {
                    span.record("result", "error");
                    span.record("error", tracing::field::display(e));
                }
            }
        }
        verified
    }

    /// [`Self::verify`] without its span.
    async fn verify_digest(
        &self,
        r: &ArtifactRef,
        authority: &Authority,
        requirement: &Requirement,
    ) -> Result<Verdict, VerifyError> {
        let pinned = self.resolve(r).await?;
        let digest = pinned
            .digest()
            .cloned()
            .ok_or_else(|| VerifyError::Config { reason: "resolved reference without digest".into() })?;
        let key = VerdictKey {
            digest,
            authority: authority_fingerprint(authority) + &self.inner.cache_scope,
            requirement: requirement.to_string(),
        };
        // A hit is answered here; a miss goes on in a future of its own on the heap (the cache layers and
        // the verification are large, and every caller up to the handler would carry them by value).
        let mut verdict = match self.inner.cache.hit(&key).await {
            Some(v) => v,
            None => Box::pin(self.load_verdict(key, &pinned, authority, requirement)).await?,
        };
        // The verdict is about the digest; report it under the caller's name for it.
        verdict.reference = pinned;
        Ok(verdict)
    }

    /// The verdict of `key` when L1 did not have it: from the shared cache when there is one, else
    /// verified (once for concurrent callers).
    async fn load_verdict(
        &self,
        key: VerdictKey,
        pinned: &ArtifactRef,
        authority: &Authority,
        requirement: &Requirement,
    ) -> Result<Verdict, VerifyError> {
        // On the heap too: the shared cache's single flight carries this future by value (debug builds
        // overflow a test thread's stack otherwise).
        let verify = async { Box::pin(self.verify_uncached(pinned, authority, requirement)).await };
        let cached = match &self.inner.shared {
            None => self.inner.cache.get_or_verify(key, verify).await,
            Some(shared) => {
                self.inner.cache.get_or_load(key.clone(), shared.get_or_verify(&key, verify)).await
            }
        };
        cached.map_err(|e| (*e).clone())
    }

    /// Verify each platform manifest of the index `r` names, with the platform manifest's OWN signatures
    /// (a signature on the index is not borrowed by its platforms, nor the other way round).
    pub async fn verify_platforms(
        &self,
        r: &ArtifactRef,
        authority: &Authority,
        requirement: &Requirement,
    ) -> Result<Vec<PlatformVerdict>, VerifyError> {
        let pinned = self.resolve(r).await?;
        let index = match self.inner.registry.fetch_parsed_manifest(&pinned).await? {
            (_, ManifestKind::Index(i)) => i,
            (_, ManifestKind::Image(_)) => {
                return Err(VerifyError::NotAnIndex { reference: pinned.to_string() })
            }
        };
        let mut out = Vec::new();
        for d in index.platform_manifests() {
            let verdict = self.verify(&pinned.with_digest(d.digest.clone()), authority, requirement).await?;
            out.push(PlatformVerdict { platform: d.platform.clone(), verdict });
        }
        Ok(out)
    }

    /// The model facts of `r` (a tag is resolved once): `None` when it is not a ModelPack or ModelKit.
    /// Cached by digest; concurrent look-ups of one digest fetch once; failures are not cached.
    pub async fn model(&self, r: &ArtifactRef) -> Result<Option<Arc<ModelFacts>>, VerifyError> {
        let pinned = self.resolve(r).await?;
        let digest = pinned
            .digest()
            .cloned()
            .ok_or_else(|| VerifyError::Config { reason: "resolved reference without digest".into() })?;
        if let Some(facts) = self.inner.models.get(&digest).await {
            return Ok(facts);
        }
        Box::pin(self.fetch_model_once(digest, &pinned)).await
    }

    /// [`Self::model`] of a digest not in the cache: fetched once for concurrent callers.
    async fn fetch_model_once(
        &self,
        digest: Digest,
        pinned: &ArtifactRef,
    ) -> Result<Option<Arc<ModelFacts>>, VerifyError> {
        let registry = &self.inner.registry;
        self.inner
            .models
            .try_get_with(digest, async { fetch_model(registry, pinned).await.map(|m| m.map(Arc::new)) })
            .await
            // Registry trouble stays a `Model` error too (transient per `is_transient`): the registry
            // error cannot be moved out of the shared single-flight result.
            .map_err(VerifyError::Model)
    }

    /// Cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Shared-cache counters, when there is a shared cache.
    pub fn shared_cache_stats(&self) -> Option<SharedCacheStats> {
        self.inner.shared.as_ref().map(SharedCache::stats)
    }

    /// Registry counters.
    pub fn registry_stats(&self) -> RegistryStats {
        self.inner.registry.stats()
    }

    /// Drop every cached verdict.
    pub fn invalidate_cache(&self) {
        self.inner.cache.invalidate_all();
    }

    fn policy(&self, authority: &Authority) -> VerificationPolicy {
        let keyless = matches!(authority, Authority::Keyless { .. });
        VerificationPolicy {
            authority: authority.clone(),
            require_tlog: keyless || self.inner.options.require_tlog_for_keys,
            require_sct: keyless && self.inner.options.require_sct,
            tlog_threshold: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use crate::sigstore_verify::CertificateIdentity;

    #[test]
    fn authority_fingerprints_are_stable_and_distinct() {
        let k1 = SigningKey::generate().public_key();
        let k2 = SigningKey::generate().public_key();
        let a = authority_fingerprint(&Authority::Key(k1.clone()));
        assert_eq!(a, authority_fingerprint(&Authority::Key(k1)));
        assert_ne!(a, authority_fingerprint(&Authority::Key(k2)));
        let id1 = CertificateIdentity::exact("a@example.com", "https://issuer");
        let id2 = CertificateIdentity::new(
            Matcher::regex(".*@example.com").unwrap(),
            Matcher::Exact("https://issuer".into()),
        );
        let ab = authority_fingerprint(&Authority::Keyless { identities: vec![id1.clone(), id2.clone()] });
        let ba = authority_fingerprint(&Authority::Keyless { identities: vec![id2, id1.clone()] });
        assert_eq!(ab, ba, "order of identities does not matter");
        let only1 = authority_fingerprint(&Authority::Keyless { identities: vec![id1] });
        assert_ne!(ab, only1);
        // An exact value and a regex with the same text are different authorities.
        let exact = authority_fingerprint(&Authority::Keyless {
            identities: vec![CertificateIdentity::exact("x", "y")],
        });
        let regex = authority_fingerprint(&Authority::Keyless {
            identities: vec![CertificateIdentity::new(
                Matcher::regex("x").unwrap(),
                Matcher::Exact("y".into()),
            )],
        });
        assert_ne!(exact, regex);
    }

    #[test]
    fn claims_are_part_of_the_authority_fingerprint() {
        use crate::sigstore_verify::Claim;
        let base = CertificateIdentity::exact(
            "https://github.com/o/r/.github/workflows/r.yml@refs/heads/main",
            "https://gh",
        );
        let fp = |id: &CertificateIdentity| {
            authority_fingerprint(&Authority::Keyless { identities: vec![id.clone()] })
        };
        let main =
            base.clone().with_claim(Claim::SourceRepositoryRef, Matcher::Exact("refs/heads/main".into()));
        let dev =
            base.clone().with_claim(Claim::SourceRepositoryRef, Matcher::Exact("refs/heads/dev".into()));
        let main_re =
            base.clone().with_claim(Claim::SourceRepositoryRef, Matcher::regex("refs/heads/main").unwrap());
        let other_claim =
            base.clone().with_claim(Claim::GithubWorkflowRef, Matcher::Exact("refs/heads/main".into()));
        // Two policies differing only by claims never share a verdict.
        let all = [fp(&base), fp(&main), fp(&dev), fp(&main_re), fp(&other_claim)];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(fp(&main), fp(&main.clone()), "stable");
        // Claim order does not matter; an identity without claims keeps its old fingerprint.
        let ab = base
            .clone()
            .with_claim(Claim::BuildTrigger, Matcher::Exact("push".into()))
            .with_claim(Claim::RunnerEnvironment, Matcher::Exact("github-hosted".into()));
        let ba = base
            .clone()
            .with_claim(Claim::RunnerEnvironment, Matcher::Exact("github-hosted".into()))
            .with_claim(Claim::BuildTrigger, Matcher::Exact("push".into()));
        assert_eq!(fp(&ab), fp(&ba));
        assert_eq!(
            fp(&base),
            "keyless:[subject=exact:\"https://github.com/o/r/.github/workflows/r.yml@refs/heads/main\";issuer=exact:\"https://gh\"]"
        );
    }

    #[test]
    fn requirement_names() {
        assert_eq!(Requirement::Signature.to_string(), "signature");
        assert_eq!(
            Requirement::Attestation { predicate_type: "https://slsa.dev/provenance/v1".into() }.to_string(),
            "attestation:https://slsa.dev/provenance/v1"
        );
        assert_eq!(Requirement::ModelSignature.to_string(), "model-signature");
    }
}
