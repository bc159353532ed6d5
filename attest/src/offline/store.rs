//! The offline source: answers reads from a bundle's recording. It has no HTTP client at all, so it
//! cannot open a connection.

use std::future::ready;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::digest::Digest;
use crate::reference::ArtifactRef;
use crate::registry::{
    verify_digest, ArtifactSource, Credentials, Descriptor, FetchedManifest, Reading, RegistryClient,
    RegistryConfig, RegistryError,
};

use super::recording::{referrers_key, tag_key, Recording};

/// What an offline client answers from; cheap to clone.
#[derive(Debug, Clone)]
pub struct OfflineStore {
    content: Arc<Recording>,
    /// After this nothing is answered: a long-running server must not outlive its bundle's expiry.
    expires: Option<DateTime<Utc>>,
}

/// A reference the bundle does not cover: transient-class (like an unreachable registry), so that the
/// policy's failure policy decides.
pub fn not_in_bundle(r: &ArtifactRef, what: impl std::fmt::Display) -> RegistryError {
    RegistryError::Unreachable {
        registry: r.registry().to_owned(),
        reason: format!("{what} is not in the offline bundle"),
    }
}

impl RegistryClient {
    /// A client that answers reads from an offline bundle's content only. It has no HTTP client, so it
    /// cannot reach any network; what the bundle does not cover fails as unreachable ("not in the
    /// offline bundle") and pushes fail.
    pub fn offline(config: RegistryConfig, store: OfflineStore) -> Self {
        Self::with_source(config, Arc::new(store))
    }
}

impl OfflineStore {
    /// A store over checked content (from [`super::OfflineBundle`] or a recording).
    pub fn new(content: Arc<Recording>) -> Self {
        Self { content, expires: None }
    }

    /// The same store refusing every read after `expires` (transient-class, so failure policies decide).
    pub fn with_expiry(self, expires: DateTime<Utc>) -> Self {
        Self { expires: Some(expires), ..self }
    }

    fn check_expiry(&self, r: &ArtifactRef) -> Result<(), RegistryError> {
        match self.expires {
            Some(expires) if Utc::now() > expires => Err(RegistryError::Unreachable {
                registry: r.registry().to_owned(),
                reason: format!("the offline bundle expired at {expires}"),
            }),
            _ => Ok(()),
        }
    }

    /// The content answered from.
    pub fn content(&self) -> &Recording {
        &self.content
    }

    /// The digest a tag pointed to when the bundle was made; a digest reference names its own.
    fn digest_of(&self, r: &ArtifactRef) -> Result<Digest, RegistryError> {
        self.check_expiry(r)?;
        if let Some(d) = r.digest() {
            return Ok(d.clone());
        }
        match self.content.tags.get(&tag_key(r)) {
            Some(Some(d)) => Ok(d.clone()),
            Some(None) => Err(RegistryError::NotFound { reference: r.to_string() }),
            None => Err(not_in_bundle(r, format!("tag {}", tag_key(r)))),
        }
    }

    /// The manifest `r` names (by digest, or by the tag's recorded digest).
    fn manifest(&self, r: &ArtifactRef, max_bytes: usize) -> Result<FetchedManifest, RegistryError> {
        let digest = self.digest_of(r)?;
        let Some(m) = self.content.manifests.get(&digest) else {
            return Err(not_in_bundle(r, format!("manifest {digest} of {}", r.repository_name())));
        };
        if m.bytes.len() > max_bytes {
            return Err(RegistryError::TooLarge { what: format!("manifest {r}"), limit: max_bytes });
        }
        // Checked when the bundle was read; checked again because it is cheap and this is a trust boundary.
        verify_digest(&digest, &m.bytes)?;
        Ok(FetchedManifest { digest, media_type: m.media_type.clone(), bytes: m.bytes.clone() })
    }

    /// A blob by digest, at most `max_bytes`.
    fn blob(&self, r: &ArtifactRef, digest: &Digest, max_bytes: usize) -> Result<Vec<u8>, RegistryError> {
        self.check_expiry(r)?;
        let Some(bytes) = self.content.blobs.get(digest) else {
            return Err(not_in_bundle(r, format!("blob {digest} of {}", r.repository_name())));
        };
        if bytes.len() > max_bytes {
            return Err(RegistryError::TooLarge {
                what: format!("blob {digest} of {}", r.repository_name()),
                limit: max_bytes,
            });
        }
        verify_digest(digest, bytes)?;
        Ok(bytes.clone())
    }

    /// The referrers of `subject` as recorded: the answer to the same question, or else the answer for
    /// every artifact type (which the caller filters).
    fn referrers_of(
        &self,
        subject: &ArtifactRef,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        self.check_expiry(subject)?;
        let exact = self.content.referrers.get(&referrers_key(subject, digest, artifact_type));
        let all = || self.content.referrers.get(&referrers_key(subject, digest, None));
        match exact.or_else(all) {
            Some(list) => Ok(list.clone()),
            None => Err(not_in_bundle(subject, format!("the referrers of {subject}"))),
        }
    }
}

impl ArtifactSource for OfflineStore {
    fn resolve<'a>(&'a self, r: &'a ArtifactRef) -> Reading<'a, Digest> {
        Box::pin(ready(self.digest_of(r)))
    }

    fn fetch_manifest<'a>(&'a self, r: &'a ArtifactRef, max_bytes: usize) -> Reading<'a, FetchedManifest> {
        Box::pin(ready(self.manifest(r, max_bytes)))
    }

    fn fetch_blob<'a>(
        &'a self,
        r: &'a ArtifactRef,
        digest: &'a Digest,
        max_bytes: usize,
    ) -> Reading<'a, Vec<u8>> {
        Box::pin(ready(self.blob(r, digest, max_bytes)))
    }

    fn referrers<'a>(
        &'a self,
        subject: &'a ArtifactRef,
        digest: &'a Digest,
        artifact_type: Option<&'a str>,
    ) -> Reading<'a, Vec<Descriptor>> {
        Box::pin(ready(self.referrers_of(subject, digest, artifact_type)))
    }

    /// Credentials do not matter to a bundle: the same store.
    fn with_credentials(&self, _: &Credentials) -> Result<Arc<dyn ArtifactSource>, RegistryError> {
        Ok(Arc::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offline::recording::{RecordedManifest, Recording};

    fn store() -> (OfflineStore, Digest) {
        let bytes = br#"{"schemaVersion":2}"#.to_vec();
        let d = Digest::sha256_of(&bytes);
        let mut rec = Recording::default();
        rec.tags.insert("reg.example/app:1".into(), Some(d.clone()));
        rec.tags.insert("reg.example/app:missing".into(), None);
        rec.manifests.insert(d.clone(), RecordedManifest { media_type: "m".into(), bytes });
        rec.blobs.insert(Digest::sha256_of(b"blob"), b"blob".to_vec());
        (OfflineStore::new(Arc::new(rec)), d)
    }

    #[tokio::test]
    async fn answers_what_was_recorded() {
        let (s, d) = store();
        let tag: ArtifactRef = "reg.example/app:1".parse().unwrap();
        let blob = Digest::sha256_of(b"blob");
        assert_eq!(s.resolve(&tag).await.unwrap(), d);
        assert_eq!(s.fetch_manifest(&tag, 1024).await.unwrap().digest, d);
        assert_eq!(s.fetch_blob(&tag, &blob, 4).await.unwrap(), b"blob");
        assert!(matches!(s.fetch_blob(&tag, &blob, 3).await, Err(RegistryError::TooLarge { .. })));
    }

    #[tokio::test]
    async fn an_expired_store_answers_nothing() {
        let (s, d) = store();
        let tag: ArtifactRef = "reg.example/app:1".parse().unwrap();
        let live = s.clone().with_expiry(Utc::now() + chrono::Duration::hours(1));
        assert_eq!(live.resolve(&tag).await.unwrap(), d);
        let expired = s.with_expiry(Utc::now() - chrono::Duration::seconds(1));
        let pinned = tag.with_digest(d.clone());
        for e in [
            expired.resolve(&tag).await.unwrap_err(),
            expired.fetch_manifest(&pinned, 1024).await.unwrap_err(),
            expired.fetch_blob(&tag, &Digest::sha256_of(b"blob"), 4).await.unwrap_err(),
            expired.referrers(&pinned, &d, None).await.unwrap_err(),
        ] {
            assert!(e.is_transient() && e.to_string().contains("the offline bundle expired"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_definite_404_stays_one_and_the_rest_is_not_covered() {
        let (s, _) = store();
        let missing: ArtifactRef = "reg.example/app:missing".parse().unwrap();
        assert!(matches!(s.fetch_manifest(&missing, 1024).await, Err(RegistryError::NotFound { .. })));
        let other: ArtifactRef = "reg.example/other:1".parse().unwrap();
        let e = s.fetch_manifest(&other, 1024).await.unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(e.to_string().contains("is not in the offline bundle"), "{e}");
        let x = Digest::sha256_of(b"x");
        let e = s.referrers(&other.with_digest(x.clone()), &x, None).await.unwrap_err();
        assert!(e.to_string().contains("referrers of"), "{e}");
    }
}
