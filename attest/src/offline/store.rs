//! The offline registry backend: answers a [`crate::registry::RegistryClient`]'s reads from a bundle's
//! recording. It has no HTTP client at all, so it cannot open a connection.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::digest::Digest;
use crate::reference::ArtifactRef;
use crate::registry::{Descriptor, FetchedManifest, RegistryError};

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
    pub fn resolve(&self, r: &ArtifactRef) -> Result<Digest, RegistryError> {
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
    pub fn manifest(&self, r: &ArtifactRef, max_bytes: usize) -> Result<FetchedManifest, RegistryError> {
        let digest = self.resolve(r)?;
        let Some(m) = self.content.manifests.get(&digest) else {
            return Err(not_in_bundle(r, format!("manifest {digest} of {}", r.repository_name())));
        };
        if m.bytes.len() > max_bytes {
            return Err(RegistryError::TooLarge { what: format!("manifest {r}"), limit: max_bytes });
        }
        // Checked when the bundle was read; checked again because it is cheap and this is a trust boundary.
        if !digest.matches(&m.bytes) {
            return Err(RegistryError::DigestMismatch {
                expected: digest.to_string(),
                actual: Digest::of(digest.algorithm(), &m.bytes).to_string(),
            });
        }
        Ok(FetchedManifest { digest, media_type: m.media_type.clone(), bytes: m.bytes.clone() })
    }

    /// A blob by digest, at most `max_bytes`.
    pub fn blob(&self, r: &ArtifactRef, digest: &Digest, max_bytes: usize) -> Result<Vec<u8>, RegistryError> {
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
        if !digest.matches(bytes) {
            return Err(RegistryError::DigestMismatch {
                expected: digest.to_string(),
                actual: Digest::of(digest.algorithm(), bytes).to_string(),
            });
        }
        Ok(bytes.clone())
    }

    /// The referrers of `subject` as recorded: the answer to the same question, or the unfiltered answer
    /// filtered here.
    pub fn referrers(
        &self,
        subject: &ArtifactRef,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        self.check_expiry(subject)?;
        let Some(digest) = subject.digest() else {
            return Err(RegistryError::InvalidReference {
                reference: subject.to_string(),
                reason: "referrers need a digest reference".to_owned(),
            });
        };
        let exact = self.content.referrers.get(&referrers_key(subject, digest, artifact_type));
        let all = || self.content.referrers.get(&referrers_key(subject, digest, None));
        let Some(list) = exact.or_else(all) else {
            return Err(not_in_bundle(subject, format!("the referrers of {subject}")));
        };
        let mut list = list.clone();
        if let Some(t) = artifact_type {
            list.retain(|d| d.artifact_type.as_deref() == Some(t));
        }
        Ok(list)
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

    #[test]
    fn answers_what_was_recorded() {
        let (s, d) = store();
        let tag: ArtifactRef = "reg.example/app:1".parse().unwrap();
        assert_eq!(s.resolve(&tag).unwrap(), d);
        assert_eq!(s.manifest(&tag, 1024).unwrap().digest, d);
        assert_eq!(s.blob(&tag, &Digest::sha256_of(b"blob"), 4).unwrap(), b"blob");
        assert!(matches!(s.blob(&tag, &Digest::sha256_of(b"blob"), 3), Err(RegistryError::TooLarge { .. })));
    }

    #[test]
    fn an_expired_store_answers_nothing() {
        let (s, d) = store();
        let tag: ArtifactRef = "reg.example/app:1".parse().unwrap();
        let live = s.clone().with_expiry(Utc::now() + chrono::Duration::hours(1));
        assert_eq!(live.resolve(&tag).unwrap(), d);
        let expired = s.with_expiry(Utc::now() - chrono::Duration::seconds(1));
        for e in [
            expired.resolve(&tag).unwrap_err(),
            expired.manifest(&tag.with_digest(d.clone()), 1024).unwrap_err(),
            expired.blob(&tag, &Digest::sha256_of(b"blob"), 4).unwrap_err(),
            expired.referrers(&tag.with_digest(d.clone()), None).unwrap_err(),
        ] {
            assert!(e.is_transient() && e.to_string().contains("the offline bundle expired"), "{e}");
        }
    }

    #[test]
    fn a_definite_404_stays_one_and_the_rest_is_not_covered() {
        let (s, _) = store();
        let missing: ArtifactRef = "reg.example/app:missing".parse().unwrap();
        assert!(matches!(s.manifest(&missing, 1024), Err(RegistryError::NotFound { .. })));
        let other: ArtifactRef = "reg.example/other:1".parse().unwrap();
        let e = s.manifest(&other, 1024).unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(e.to_string().contains("is not in the offline bundle"), "{e}");
        let pinned = other.with_digest(Digest::sha256_of(b"x"));
        let e = s.referrers(&pinned, None).unwrap_err();
        assert!(e.to_string().contains("referrers of"), "{e}");
    }
}
