//! What verification read from registries: recorded on the connected side, answered from offline.
//!
//! Keys are exact: tags by `registry/repository:tag`, referrers by `registry/repository@digest` and the
//! artifact-type filter asked for. Manifests and blobs are content-addressed (their bytes hash to their
//! key, checked when recorded and again when a bundle is read).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::digest::Digest;
use crate::reference::ArtifactRef;
use crate::registry::{
    ArtifactSource, Credentials, Descriptor, FetchedManifest, Reading, RegistryClient, RegistryConfig,
    RegistryError, RemoteRegistry,
};

/// A manifest as a registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedManifest {
    /// Media type the registry gave (or the body's).
    pub media_type: String,
    /// The bytes exactly as served.
    pub bytes: Vec<u8>,
}

/// The key of one referrers answer: the subject and the artifact-type filter asked for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferrersKey {
    /// `registry/repository@digest` of the subject.
    pub subject: String,
    /// The artifact type asked for (`None`: all referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

/// Everything read, in memory; what a bundle carries and what the offline backend answers from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recording {
    /// `registry/repository:tag` → digest, or `None` for a tag the registry definitely did not have.
    pub tags: BTreeMap<String, Option<Digest>>,
    /// Manifests by digest.
    pub manifests: BTreeMap<Digest, RecordedManifest>,
    /// Blobs (signature layers, attestations, SBOMs, configs; image layers only when asked) by digest.
    pub blobs: BTreeMap<Digest, Vec<u8>>,
    /// Referrers answers, unfiltered by the client.
    pub referrers: BTreeMap<ReferrersKey, Vec<Descriptor>>,
}

/// `registry/repository:tag` of a tag reference.
pub fn tag_key(r: &ArtifactRef) -> String {
    format!("{}:{}", r.repository_name(), r.tag().unwrap_or("latest"))
}

/// The key of a referrers answer for `subject` (pinned) and `artifact_type`.
pub fn referrers_key(subject: &ArtifactRef, digest: &Digest, artifact_type: Option<&str>) -> ReferrersKey {
    ReferrersKey {
        subject: format!("{}@{digest}", subject.repository_name()),
        artifact_type: artifact_type.map(str::to_owned),
    }
}

impl Recording {
    /// Bytes of content held (manifests and blobs).
    pub fn content_bytes(&self) -> u64 {
        let m: usize = self.manifests.values().map(|m| m.bytes.len()).sum();
        let b: usize = self.blobs.values().map(Vec::len).sum();
        (m + b) as u64
    }
}

/// Collects what a [`Recorded`] source reads successfully; cheap to clone (shared).
///
/// Content over `max_bytes` is not kept and marks the recording as overflowed, so that a bundle is never
/// silently incomplete.
#[derive(Debug, Clone)]
pub struct Recorder {
    inner: Arc<Mutex<RecorderState>>,
}

#[derive(Debug)]
struct RecorderState {
    recording: Recording,
    bytes: u64,
    max_bytes: u64,
    overflowed: bool,
}

/// The recording could not hold everything that was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("more than {max_bytes} bytes were read; raise the bundle size limit")]
pub struct RecordingOverflow {
    /// The limit.
    pub max_bytes: u64,
}

impl Recorder {
    /// A recorder keeping at most `max_bytes` of manifests and blobs.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(RecorderState {
                recording: Recording::default(),
                bytes: 0,
                max_bytes,
                overflowed: false,
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut RecorderState) -> T) -> Option<T> {
        self.inner.lock().ok().map(|mut s| f(&mut s))
    }

    /// A tag look-up answered with `digest` (`None`: definitely not found).
    pub fn tag(&self, r: &ArtifactRef, digest: Option<&Digest>) {
        if r.digest().is_some() {
            return;
        }
        self.with(|s| {
            // A later successful answer wins over an earlier "not found" (and never the other way).
            let entry = s.recording.tags.entry(tag_key(r)).or_insert(None);
            if digest.is_some() {
                *entry = digest.cloned();
            }
        });
    }

    /// A manifest read (its bytes hash to `digest`: the client checked).
    pub fn manifest(&self, digest: &Digest, media_type: &str, bytes: &[u8]) {
        self.with(|s| {
            if s.recording.manifests.contains_key(digest) || !s.reserve(bytes.len()) {
                return;
            }
            s.recording.manifests.insert(
                digest.clone(),
                RecordedManifest { media_type: media_type.to_owned(), bytes: bytes.to_vec() },
            );
        });
    }

    /// A blob read (its bytes hash to `digest`: the client checked).
    pub fn blob(&self, digest: &Digest, bytes: &[u8]) {
        self.with(|s| {
            if s.recording.blobs.contains_key(digest) || !s.reserve(bytes.len()) {
                return;
            }
            s.recording.blobs.insert(digest.clone(), bytes.to_vec());
        });
    }

    /// A referrers answer (before the client's own artifact-type filtering).
    pub fn referrers(&self, key: ReferrersKey, answer: &[Descriptor]) {
        self.with(|s| {
            s.recording.referrers.insert(key, answer.to_vec());
        });
    }

    /// Everything recorded so far, or an error when something could not be kept.
    pub fn snapshot(&self) -> Result<Recording, RecordingOverflow> {
        self.with(|s| {
            if s.overflowed {
                Err(RecordingOverflow { max_bytes: s.max_bytes })
            } else {
                Ok(s.recording.clone())
            }
        })
        .unwrap_or(Err(RecordingOverflow { max_bytes: 0 }))
    }
}

impl RecorderState {
    fn reserve(&mut self, len: usize) -> bool {
        if self.bytes + len as u64 > self.max_bytes {
            self.overflowed = true;
            return false;
        }
        self.bytes += len as u64;
        true
    }
}

/// A source whose successful reads are kept by a [`Recorder`]: what verification read, exactly as it was
/// answered (referrers before the caller's artifact-type filtering), and "no such tag" answers too.
pub struct Recorded {
    source: Arc<dyn ArtifactSource>,
    recorder: Recorder,
}

impl RegistryClient {
    /// A client for the network that also records every successful read into `recorder` (to build an
    /// offline bundle from exactly what verification read).
    pub fn recording(config: RegistryConfig, recorder: Recorder) -> Result<Self, RegistryError> {
        let remote = RemoteRegistry::new(config)?;
        let config = remote.config().clone();
        Ok(Self::with_source(config, Arc::new(Recorded::new(Arc::new(remote), recorder))))
    }
}

impl Recorded {
    /// `source`, its reads kept by `recorder`.
    pub fn new(source: Arc<dyn ArtifactSource>, recorder: Recorder) -> Self {
        Self { source, recorder }
    }

    /// Record a tag look-up: its digest, or that the source definitely does not have it.
    fn record_tag(&self, r: &ArtifactRef, result: Result<&Digest, &RegistryError>) {
        match result {
            Ok(d) => self.recorder.tag(r, Some(d)),
            Err(RegistryError::NotFound { .. }) => self.recorder.tag(r, None),
            Err(_) => {}
        }
    }
}

impl ArtifactSource for Recorded {
    fn resolve<'a>(&'a self, r: &'a ArtifactRef) -> Reading<'a, Digest> {
        Box::pin(async move {
            let resolved = self.source.resolve(r).await;
            self.record_tag(r, resolved.as_ref());
            resolved
        })
    }

    fn fetch_manifest<'a>(&'a self, r: &'a ArtifactRef, max_bytes: usize) -> Reading<'a, FetchedManifest> {
        Box::pin(async move {
            let fetched = self.source.fetch_manifest(r, max_bytes).await;
            if let Ok(m) = &fetched {
                self.recorder.manifest(&m.digest, &m.media_type, &m.bytes);
            }
            self.record_tag(r, fetched.as_ref().map(|m| &m.digest));
            fetched
        })
    }

    fn fetch_blob<'a>(
        &'a self,
        r: &'a ArtifactRef,
        digest: &'a Digest,
        max_bytes: usize,
    ) -> Reading<'a, Vec<u8>> {
        Box::pin(async move {
            let bytes = self.source.fetch_blob(r, digest, max_bytes).await?;
            self.recorder.blob(digest, &bytes);
            Ok(bytes)
        })
    }

    fn referrers<'a>(
        &'a self,
        subject: &'a ArtifactRef,
        digest: &'a Digest,
        artifact_type: Option<&'a str>,
    ) -> Reading<'a, Vec<Descriptor>> {
        Box::pin(async move {
            let found = self.source.referrers(subject, digest, artifact_type).await?;
            self.recorder.referrers(referrers_key(subject, digest, artifact_type), &found);
            Ok(found)
        })
    }

    /// The source with other credentials, recorded into the same recorder.
    fn with_credentials(&self, credentials: &Credentials) -> Result<Arc<dyn ArtifactSource>, RegistryError> {
        let source = self.source.with_credentials(credentials)?;
        Ok(Arc::new(Self::new(source, self.recorder.clone())))
    }

    /// Pushes go to the source's registry, unrecorded.
    fn remote(&self) -> Option<&RemoteRegistry> {
        self.source.remote()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_tags_content_and_overflow() {
        let rec = Recorder::new(10);
        let r: ArtifactRef = "reg.example/app:1".parse().unwrap();
        let d = Digest::sha256_of(b"12345");
        rec.tag(&r, None);
        assert_eq!(rec.snapshot().unwrap().tags.get("reg.example/app:1"), Some(&None));
        rec.tag(&r, Some(&d));
        rec.tag(&r, None);
        assert_eq!(rec.snapshot().unwrap().tags.get("reg.example/app:1"), Some(&Some(d.clone())));
        rec.blob(&d, b"12345");
        rec.manifest(&Digest::sha256_of(b"abcde"), "m", b"abcde");
        assert_eq!(rec.snapshot().unwrap().content_bytes(), 10);
        rec.blob(&Digest::sha256_of(b"x"), b"x");
        assert_eq!(rec.snapshot().unwrap_err(), RecordingOverflow { max_bytes: 10 });
    }

    /// What a recorded source answered is kept as answered; what it could not tell is not kept.
    #[tokio::test]
    async fn a_recorded_source_keeps_what_it_answered() {
        let manifest = br#"{"schemaVersion":2}"#.to_vec();
        let d = Digest::sha256_of(&manifest);
        let sbom = Descriptor {
            media_type: crate::registry::OCI_MANIFEST.into(),
            digest: Digest::sha256_of(b"sbom"),
            size: 4,
            artifact_type: Some("application/sbom".into()),
            annotations: BTreeMap::new(),
            platform: None,
        };
        let provenance = Descriptor { artifact_type: Some("application/provenance".into()), ..sbom.clone() };
        let r: ArtifactRef = "reg.example/app:1".parse().unwrap();
        let mut answers = Recording::default();
        answers.tags.insert(tag_key(&r), Some(d.clone()));
        answers.tags.insert("reg.example/app:gone".into(), None);
        answers.manifests.insert(d.clone(), RecordedManifest { media_type: "m".into(), bytes: manifest });
        answers.blobs.insert(Digest::sha256_of(b"blob"), b"blob".to_vec());
        answers.referrers.insert(referrers_key(&r, &d, None), vec![sbom.clone(), provenance.clone()]);
        let store = crate::offline::OfflineStore::new(Arc::new(answers.clone()));

        let rec = Recorder::new(1 << 20);
        let source = Recorded::new(Arc::new(store), rec.clone());
        assert!(source.remote().is_none());
        assert_eq!(source.resolve(&r).await.unwrap(), d);
        source.fetch_manifest(&r, 1024).await.unwrap();
        source.fetch_blob(&r, &Digest::sha256_of(b"blob"), 4).await.unwrap();
        let pinned = r.with_digest(d.clone());
        let found = source.referrers(&pinned, &d, Some("application/sbom")).await.unwrap();
        assert_eq!(found.len(), 2, "the source's answer, unfiltered");
        let gone: ArtifactRef = "reg.example/app:gone".parse().unwrap();
        assert!(matches!(source.resolve(&gone).await, Err(RegistryError::NotFound { .. })));
        let elsewhere: ArtifactRef = "reg.example/other:1".parse().unwrap();
        assert!(source.fetch_manifest(&elsewhere, 1024).await.unwrap_err().is_transient());

        let kept = rec.snapshot().unwrap();
        assert_eq!(kept.manifests, answers.manifests);
        assert_eq!(kept.blobs, answers.blobs);
        assert_eq!(kept.tags, answers.tags, "a definite 404 is kept, an unreachable tag is not");
        let key = referrers_key(&pinned, &d, Some("application/sbom"));
        assert_eq!(kept.referrers.get(&key), Some(&vec![sbom, provenance]));
    }

    #[test]
    fn digest_references_are_not_tags() {
        let rec = Recorder::new(10);
        let d = Digest::sha256_of(b"x");
        let r: ArtifactRef = format!("reg.example/app:1@{d}").parse().unwrap();
        rec.tag(&r, Some(&d));
        assert!(rec.snapshot().unwrap().tags.is_empty());
    }
}
