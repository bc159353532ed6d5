//! What verification reads, wherever it comes from: a registry over the network ([`RemoteRegistry`],
//! implemented here), an offline bundle, or either with every successful read recorded (both in the
//! `offline` module, which builds on this one). A [`super::RegistryClient`] reads through one of these.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Credentials, Descriptor, FetchedManifest, RegistryError, RemoteRegistry};
use crate::digest::Digest;
use crate::reference::ArtifactRef;

/// One read of an [`ArtifactSource`], under way.
pub type Reading<'a, T> = BoxFuture<'a, Result<T, RegistryError>>;

/// Where references are resolved and manifests, blobs and referrers are read from.
///
/// Every answer is checked by the source: content hashes to the digest it was asked by, and nothing over
/// `max_bytes` is read. What a source does not have is [`RegistryError::NotFound`] only when that is
/// definite; a source that cannot tell (unreachable, or an offline bundle that does not cover it) fails
/// with a transient error, so that failure policies decide.
pub trait ArtifactSource: Send + Sync {
    /// The digest `r` names: its own digest when it has one, else what its tag points to.
    fn resolve<'a>(&'a self, r: &'a ArtifactRef) -> Reading<'a, Digest>;

    /// The manifest `r` names, by its digest (the bytes must hash to it) or, lacking one, by its tag.
    fn fetch_manifest<'a>(&'a self, r: &'a ArtifactRef, max_bytes: usize) -> Reading<'a, FetchedManifest>;

    /// The blob `digest` of the repository `r` names.
    fn fetch_blob<'a>(
        &'a self,
        r: &'a ArtifactRef,
        digest: &'a Digest,
        max_bytes: usize,
    ) -> Reading<'a, Vec<u8>>;

    /// Manifests that refer to `digest` in `subject`'s repository. `artifact_type` narrows the question,
    /// but a source may answer with more (registries may ignore the filter): the caller filters.
    fn referrers<'a>(
        &'a self,
        subject: &'a ArtifactRef,
        digest: &'a Digest,
        artifact_type: Option<&'a str>,
    ) -> Reading<'a, Vec<Descriptor>>;

    /// The same source using `credentials` instead of its own (a source that needs none returns itself).
    fn with_credentials(&self, credentials: &Credentials) -> Result<Arc<dyn ArtifactSource>, RegistryError>;

    /// The registry behind this source, which pushes go to; `None` for a source that cannot be written
    /// to (an offline bundle).
    fn remote(&self) -> Option<&RemoteRegistry> {
        None
    }
}

/// The network's answers: the distribution API, with the referrers tag schema where a registry lacks the
/// referrers API (its reads of the tag index are its own, not the caller's).
impl ArtifactSource for RemoteRegistry {
    fn resolve<'a>(&'a self, r: &'a ArtifactRef) -> Reading<'a, Digest> {
        Box::pin(self.resolve_tag(r))
    }

    fn fetch_manifest<'a>(&'a self, r: &'a ArtifactRef, max_bytes: usize) -> Reading<'a, FetchedManifest> {
        Box::pin(self.get_manifest(r, max_bytes))
    }

    fn fetch_blob<'a>(
        &'a self,
        r: &'a ArtifactRef,
        digest: &'a Digest,
        max_bytes: usize,
    ) -> Reading<'a, Vec<u8>> {
        Box::pin(self.get_blob(r, digest, max_bytes))
    }

    fn referrers<'a>(
        &'a self,
        subject: &'a ArtifactRef,
        digest: &'a Digest,
        artifact_type: Option<&'a str>,
    ) -> Reading<'a, Vec<Descriptor>> {
        Box::pin(self.find_referrers(subject, digest, artifact_type))
    }

    fn with_credentials(&self, credentials: &Credentials) -> Result<Arc<dyn ArtifactSource>, RegistryError> {
        Ok(Arc::new(self.with_other_credentials(credentials)?))
    }

    fn remote(&self) -> Option<&RemoteRegistry> {
        Some(self)
    }
}
