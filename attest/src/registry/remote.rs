//! A registry over the network: the distribution API's reads (tags, manifests, blobs, the referrers API
//! with the referrers tag schema where a registry lacks it) and pushes, on top of [`super::transport`].

use std::sync::Arc;

use reqwest::{Method, StatusCode};

use super::error::{invalid_ref, protocol, subject_digest, verify_digest};
use super::manifest::{
    bare_media_type, parse_manifest, Descriptor, ImageIndex, ManifestKind, MANIFEST_MEDIA_TYPES, OCI_INDEX,
};
use super::transport::{check_status, next_link, HttpCounters, Op, Req, Transport};
use super::{Credentials, FetchedManifest, RegistryConfig, RegistryError};
use crate::digest::Digest;
use crate::reference::ArtifactRef;

/// Pages of a referrers answer followed at most.
const MAX_REFERRER_PAGES: usize = 16;
/// Times the referrers tag index update is retried when a concurrent writer overwrote it.
const REFERRERS_TAG_ATTEMPTS: usize = 3;

/// An OCI distribution registry reached over HTTP; cheap to clone, clones share connections, tokens and
/// counters.
#[derive(Clone)]
pub struct RemoteRegistry {
    transport: Arc<Transport>,
}

impl std::fmt::Debug for RemoteRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRegistry").field("config", self.config()).finish()
    }
}

impl RemoteRegistry {
    /// Build the HTTP clients; fails only on an unusable TLS or HTTP configuration.
    pub fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        Ok(Self { transport: Arc::new(Transport::new(config)?) })
    }

    /// The configuration in force (insecure registries normalised).
    pub fn config(&self) -> &RegistryConfig {
        self.transport.config()
    }

    pub(super) fn http_counters(&self) -> &HttpCounters {
        self.transport.counters()
    }

    /// The same registry reached with `credentials` instead of the configured ones (sharing connections
    /// and counters, not tokens).
    pub(super) fn with_other_credentials(&self, credentials: &Credentials) -> Result<Self, RegistryError> {
        Ok(Self { transport: Arc::new(self.transport.with_credentials(credentials.clone())?) })
    }

    /// Upload a blob to the repository `r` names (skipped when the registry has it already).
    pub async fn push_blob(&self, r: &ArtifactRef, bytes: &[u8]) -> Result<Digest, RegistryError> {
        let digest = Digest::sha256_of(bytes);
        let head = || Req {
            r,
            op: Op::Push,
            method: Method::HEAD,
            url: format!("{}/blobs/{digest}", self.transport.repo_url(r)),
            accept: None,
            body: None,
            limit: 0,
            what: format!("blob {digest}"),
        };
        let exists = self.transport.with_retries(r, true, || self.transport.send(head())).await?;
        if exists.status == StatusCode::OK {
            return Ok(digest);
        }
        self.transport.upload_blob(r, bytes, &digest).await?;
        Ok(digest)
    }

    /// Upload a manifest to `r`'s tag (or digest, which the bytes must hash to); returns its digest.
    pub async fn push_manifest(
        &self,
        r: &ArtifactRef,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        self.put_manifest(r, bytes, media_type).await.map(|(d, _)| d)
    }

    /// Push a manifest whose `subject` is `subject` and make it discoverable as a referrer: where the
    /// registry does not announce referrers support (`OCI-Subject`), the referrers tag index
    /// `sha256-<hex>` is updated (read, add, write, read back).
    pub async fn push_referrer(
        &self,
        subject: &ArtifactRef,
        manifest: &[u8],
        media_type: &str,
        artifact_type: &str,
    ) -> Result<Digest, RegistryError> {
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
            let mut index =
                self.referrers_tag_index(subject, &subject_digest).await?.unwrap_or_else(ImageIndex::empty);
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
    }

    pub(super) async fn resolve_tag(&self, r: &ArtifactRef) -> Result<Digest, RegistryError> {
        if let Some(d) = r.digest() {
            return Ok(d.clone());
        }
        let ans = self
            .transport
            .with_retries(r, true, || {
                self.transport.send(Req {
                    method: Method::HEAD,
                    ..self.manifest_req(r, self.config().max_manifest_bytes)
                })
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
                let fetched = self.get_manifest(r, self.config().max_manifest_bytes).await?;
                fetched.parse()?;
                Ok(fetched.digest)
            }
        }
    }

    pub(super) async fn get_manifest(
        &self,
        r: &ArtifactRef,
        limit: usize,
    ) -> Result<FetchedManifest, RegistryError> {
        let ans =
            self.transport.with_retries(r, true, || self.transport.send(self.manifest_req(r, limit))).await?;
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

    pub(super) async fn get_blob(
        &self,
        r: &ArtifactRef,
        digest: &Digest,
        limit: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        let req = || Req {
            r,
            op: Op::Pull,
            method: Method::GET,
            url: format!("{}/blobs/{digest}", self.transport.repo_url(r)),
            accept: None,
            body: None,
            limit,
            what: format!("blob {digest} of {}", r.repository_name()),
        };
        let ans = self.transport.with_retries(r, true, || self.transport.send(req())).await?;
        check_status(r, &ans, &[StatusCode::OK])?;
        verify_digest(digest, &ans.body)?;
        Ok(ans.body)
    }

    /// The referrers API's answer, or the referrers tag schema index where the registry lacks the API.
    pub(super) async fn find_referrers(
        &self,
        subject: &ArtifactRef,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>, RegistryError> {
        Ok(match self.referrers_api(subject, digest, artifact_type).await? {
            Some(list) => list,
            None => match self.referrers_tag_index(subject, digest).await? {
                Some(index) => index.manifests,
                None => Vec::new(),
            },
        })
    }

    /// GET the manifest `r` names, reading at most `limit` bytes of it.
    fn manifest_req<'a>(&self, r: &'a ArtifactRef, limit: usize) -> Req<'a> {
        Req {
            r,
            op: Op::Pull,
            method: Method::GET,
            url: format!("{}/manifests/{}", self.transport.repo_url(r), manifest_path_ref(r)),
            accept: Some(MANIFEST_MEDIA_TYPES.join(", ")),
            body: None,
            limit,
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
        let limit = self.config().max_manifest_bytes;
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
            url: format!("{}/manifests/{reference}", self.transport.repo_url(r)),
            accept: None,
            body: Some((bytes.to_vec(), bare_media_type(media_type).to_owned())),
            limit: 0,
            what: format!("manifest push to {r}"),
        };
        // A manifest PUT is idempotent: same bytes, same result.
        let ans = self.transport.with_retries(r, true, || self.transport.send(req())).await?;
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
        let mut url =
            reqwest::Url::parse(&format!("{}/referrers/{digest}", self.transport.repo_url(subject)))
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
                limit: self.config().max_manifest_bytes,
                what: format!("referrers of {subject}"),
            };
            let ans = self.transport.with_retries(subject, true, || self.transport.send(req())).await?;
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
            next = ans
                .header("link")
                .and_then(next_link)
                .map(|link| self.transport.absolute_url(subject, &link));
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
        match self.get_manifest(&tag_ref, self.config().max_manifest_bytes).await {
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

fn body_media_type(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
    }
    serde_json::from_slice::<Probe>(body).ok()?.media_type
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_references_use_the_digest_not_the_tag() {
        let d = Digest::sha256_of(b"x");
        let r: ArtifactRef = format!("reg.example/app:1@{d}").parse().unwrap();
        assert_eq!(manifest_path_ref(&r), d.to_string());
        assert_eq!(manifest_path_ref(&"reg.example/app".parse().unwrap()), "latest");
    }
}
