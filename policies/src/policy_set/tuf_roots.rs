//! TrustRoots that follow a TUF repository (`spec.tuf`): before a policy set is compiled, [`TufRoots`]
//! obtains each one's trusted root with vouch-attest's TUF client ([`TufTrustSource`]) and puts it into
//! [`PolicyResources::tuf_trusted_roots`], where compilation reads it.
//!
//! A repository is refreshed when its root in force is older than [`TufRootsConfig::refresh`] (so the
//! policy watch's frequent rebuilds do not fetch each time); a refresh that fails keeps the last good root
//! in force (also across restarts: it is cached on disk), and with none the TrustRoot is reported with the
//! reason and left out. Each repository gets its own cache directory, keyed by mirror, target and the TUF
//! root it is trusted from, so two TrustRoots never share rollback state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vouch_attest::digest::Digest;
use vouch_attest::tuf::{
    TufConfig, TufTrustSource, DEFAULT_TARGET, PUBLIC_GOOD_MIRROR, PUBLIC_GOOD_NAME, PUBLIC_GOOD_TUF_ROOT,
};

use super::{PolicyResources, Secrets};
use crate::crd::TufSpec;

/// How TUF TrustRoots are followed.
#[derive(Debug, Clone)]
pub struct TufRootsConfig {
    /// Under it, one directory per repository: the last good trusted root and the TUF metadata.
    pub cache_dir: PathBuf,
    /// A root in force older than this is refreshed at the next resolution.
    pub refresh: Duration,
    /// Time allowed for each request and for a whole refresh.
    pub timeout: Duration,
    /// Hosts that may be fetched over plain HTTP. Empty outside tests.
    pub insecure_hosts: Vec<String>,
}

/// The TUF clients of the TrustRoots in use, kept between resolutions.
#[derive(Debug)]
pub struct TufRoots {
    config: TufRootsConfig,
    sources: Mutex<BTreeMap<String, Arc<TufTrustSource>>>,
}

impl TufRoots {
    /// No network until [`Self::resolve`].
    pub fn new(config: TufRootsConfig) -> Self {
        Self { config, sources: Mutex::new(BTreeMap::new()) }
    }

    /// Obtain the trusted root of every TrustRoot in `resources` with `spec.tuf` (its `root.secretRef` read
    /// from `secrets`) into [`PolicyResources::tuf_trusted_roots`]. Clients of repositories no longer named
    /// are dropped.
    pub async fn resolve(&self, resources: &mut PolicyResources, secrets: &Secrets) {
        let mut resolved = BTreeMap::new();
        let mut in_use = BTreeMap::new();
        for t in &resources.trust_roots {
            let Some(tuf) = &t.spec.tuf else { continue };
            let name = t.metadata.name.clone().unwrap_or_default();
            let result = match self.source_for(tuf, secrets) {
                Ok((key, source)) => {
                    in_use.insert(key, source.clone());
                    self.trusted_root(&name, &source).await
                }
                Err(e) => Err(e),
            };
            resolved.insert(name, result);
        }
        *self.sources.lock().unwrap_or_else(|e| e.into_inner()) = in_use;
        resources.tuf_trusted_roots = resolved;
    }

    /// The client for `tuf` (made on first use), keyed by what identifies the repository.
    fn source_for(&self, tuf: &TufSpec, secrets: &Secrets) -> Result<(String, Arc<TufTrustSource>), String> {
        let public_good = tuf.mirror == PUBLIC_GOOD_NAME || tuf.mirror == PUBLIC_GOOD_MIRROR;
        let mirror =
            if tuf.mirror == PUBLIC_GOOD_NAME { PUBLIC_GOOD_MIRROR.to_owned() } else { tuf.mirror.clone() };
        let root = match tuf.root.as_ref().map(|r| (&r.inline, &r.secret_ref)) {
            Some((Some(inline), None)) => inline.clone().into_bytes(),
            Some((None, Some(r))) => {
                let ns = r.namespace.as_deref().ok_or("root.secretRef: namespace is required")?;
                secrets
                    .get(ns, &r.name, r.key.as_deref().unwrap_or("root.json"))
                    .map_err(|e| format!("root.secretRef: {e}"))?
                    .to_vec()
            }
            Some(_) => return Err("root: exactly one of inline or secretRef is required".into()),
            None if public_good => PUBLIC_GOOD_TUF_ROOT.to_vec(),
            None => {
                return Err(format!(
                    "root is required for mirror {mirror} (the root.json it is trusted from)"
                ))
            }
        };
        let target = tuf.target_name.clone().unwrap_or_else(|| DEFAULT_TARGET.to_owned());
        let mut identity = Vec::new();
        for part in [mirror.as_bytes(), target.as_bytes(), &root] {
            identity.extend_from_slice(&(part.len() as u64).to_be_bytes());
            identity.extend_from_slice(part);
        }
        let key = Digest::sha256_of(&identity).hex()[..16].to_owned();
        if let Some(source) = self.sources.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok((key, source.clone()));
        }
        let config = TufConfig {
            mirror,
            root,
            target,
            cache_dir: self.config.cache_dir.join(format!("trustroot-{key}")),
            timeout: self.config.timeout,
            insecure_hosts: self.config.insecure_hosts.clone(),
        };
        let source = TufTrustSource::new(config).map_err(|e| e.to_string())?;
        Ok((key, Arc::new(source)))
    }

    /// The root in force if it is fresh, else a refreshed one, else the last good one (with a warning).
    async fn trusted_root(&self, name: &str, source: &TufTrustSource) -> Result<Vec<u8>, String> {
        if let Some(c) = source.current().filter(|c| c.is_fresh(self.config.refresh, chrono::Utc::now())) {
            return Ok(c.json.to_vec());
        }
        match source.refresh().await {
            Ok(root) => Ok(root.json.to_vec()),
            Err(e) => match source.current() {
                Some(last) => {
                    tracing::warn!(trust_root = name, error = %e, fetched_at = %last.fetched_at,
                        metadata_expires = %last.metadata_expires, "TUF refresh failed; the last good trusted root stays in force");
                    Ok(last.json.to_vec())
                }
                None => Err(format!("{e}; and no last good trusted root is cached")),
            },
        }
    }
}
