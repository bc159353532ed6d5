//! Trust roots kept fresh through TUF: Sigstore's public-good repository or a private mirror.
//!
//! A [`TufTrustSource`] is given a mirror, a TUF `root.json` it trusts (shipped out of band: vouch embeds
//! the public-good one), the name of the target that holds the `trusted_root.json`, and a cache directory.
//! [`TufTrustSource::refresh`] runs the TUF client workflow with [`tough`] (root rotation, then timestamp,
//! snapshot and targets, each checked for signatures, thresholds, versions, hashes and expiry), fetches the
//! target and reads it as a [`TrustRoot`]. A refresh that fails returns the reason and changes nothing: the
//! root in force stays in force. Each good result is written under the cache directory, so a restart with
//! the mirror out of reach starts from the last good root, and tough's metadata there (the newest root,
//! timestamp and snapshot seen) makes a rollback to older metadata fail after a restart too.
//!
//! Fetches go through vouch's own HTTP client: TLS verified, a timeout on every request and on the whole
//! refresh, plain HTTP only for hosts named in [`TufConfig::insecure_hosts`] (tests on loopback).

mod transport;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tough::schema::{Root, Signed};
use tough::{IntoVec, RepositoryLoader, TargetName};
use url::Url;

use crate::digest::Digest;
use crate::trust_root::{TrustRoot, TrustRootError, MAX_TRUST_ROOT_BYTES};
use transport::HttpsTransport;

/// The name that stands for Sigstore's public-good repository wherever a mirror is given (`--tuf-mirror
/// public-good`, `TrustRoot.spec.tuf.mirror: public-good`): trusted from [`PUBLIC_GOOD_TUF_ROOT`].
pub const PUBLIC_GOOD_NAME: &str = "public-good";

/// The Sigstore public-good TUF repository.
pub const PUBLIC_GOOD_MIRROR: &str = "https://tuf-repo-cdn.sigstore.dev";

/// The public-good repository's TUF `root.json` (version 12), as shipped in sigstore-rs 0.15: the anchor
/// from which newer roots are followed.
pub const PUBLIC_GOOD_TUF_ROOT: &[u8] = include_bytes!("../../data/sigstore-public-good.tuf-root.json");

/// The target that holds the Sigstore trusted root.
pub const DEFAULT_TARGET: &str = "trusted_root.json";

/// Time allowed for one refresh (every request, and all of them together), unless configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest TUF `root.json` accepted (as anchor or from the mirror).
const MAX_ROOT_BYTES: u64 = 1024 * 1024;

/// Where and how to follow a TUF repository.
#[derive(Clone)]
pub struct TufConfig {
    /// Base URL of the repository: metadata at the top, targets under `targets/` (Sigstore's layout).
    pub mirror: String,
    /// A TUF `root.json` trusted out of band; newer roots are followed from it.
    pub root: Vec<u8>,
    /// The target holding the `trusted_root.json`.
    pub target: String,
    /// Where the last good trusted root and tough's metadata are kept across restarts.
    pub cache_dir: PathBuf,
    /// Time allowed for each request and for a whole refresh.
    pub timeout: Duration,
    /// Hosts (`host` or `host:port`) that may be fetched over plain HTTP. Empty outside tests.
    pub insecure_hosts: Vec<String>,
}

impl std::fmt::Debug for TufConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TufConfig")
            .field("mirror", &self.mirror)
            .field("root", &format_args!("{} bytes", self.root.len()))
            .field("target", &self.target)
            .field("cache_dir", &self.cache_dir)
            .field("timeout", &self.timeout)
            .field("insecure_hosts", &self.insecure_hosts)
            .finish()
    }
}

impl TufConfig {
    /// The Sigstore public-good repository, anchored on the embedded root, cached under `cache_dir`.
    #[must_use]
    pub fn public_good(cache_dir: PathBuf) -> Self {
        Self {
            mirror: PUBLIC_GOOD_MIRROR.into(),
            root: PUBLIC_GOOD_TUF_ROOT.to_vec(),
            target: DEFAULT_TARGET.into(),
            cache_dir,
            timeout: DEFAULT_TIMEOUT,
            insecure_hosts: Vec::new(),
        }
    }
}

/// Why a TUF repository's metadata was refused; also the `result` label of the refresh metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Metadata older than metadata already trusted (a rollback).
    Rollback,
    /// Metadata past its expiry (a freeze, or a repository not kept up).
    Expired,
    /// Signatures missing, invalid or under the role's threshold.
    Signature,
    /// Metadata that does not match what the metadata above it names (mix-and-match).
    Inconsistent,
    /// Metadata that is not TUF metadata of the expected shape or size.
    Malformed,
    /// The local clock went back in time since the last refresh.
    Clock,
}

impl Refusal {
    /// A short stable name (metric label, logs).
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Rollback => "rollback",
            Self::Expired => "expired",
            Self::Signature => "signature",
            Self::Inconsistent => "mix_and_match",
            Self::Malformed => "malformed",
            Self::Clock => "clock",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rollback => "rollback to older metadata",
            Self::Expired => "expired metadata",
            Self::Signature => "signatures under threshold",
            Self::Inconsistent => "inconsistent metadata (mix-and-match)",
            Self::Malformed => "malformed metadata",
            Self::Clock => "system clock went backwards",
        })
    }
}

/// Why a TUF trust root could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum TufError {
    /// The configuration cannot be used (bad URL, bad anchor root, unusable cache directory).
    #[error("tuf configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The repository answered with metadata the TUF workflow refuses.
    #[error("tuf repository {mirror} refused: {refusal}: {detail}")]
    Refused {
        /// The mirror.
        mirror: String,
        /// Which check failed.
        refusal: Refusal,
        /// tough's account of it.
        detail: String,
    },
    /// The repository could not be read (network, HTTP status).
    #[error("tuf repository {mirror} unreachable: {detail}")]
    Unreachable {
        /// The mirror.
        mirror: String,
        /// What failed.
        detail: String,
    },
    /// The refresh did not complete in time.
    #[error("tuf repository {mirror}: no complete refresh within {after:?}")]
    Timeout {
        /// The mirror.
        mirror: String,
        /// The time allowed.
        after: Duration,
    },
    /// The repository does not list the target.
    #[error("tuf repository {mirror} has no target {target:?}")]
    TargetMissing {
        /// The mirror.
        mirror: String,
        /// The target asked for.
        target: String,
    },
    /// The target was fetched and verified but is not a usable trusted root.
    #[error("target {target:?} of tuf repository {mirror} is not a trusted root: {reason}")]
    BadTarget {
        /// The mirror.
        mirror: String,
        /// The target.
        target: String,
        /// What is wrong with it.
        reason: TrustRootError,
    },
    /// The cache directory could not be read or written.
    #[error("tuf cache {path}: {reason}")]
    Cache {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

impl TufError {
    /// The `result` label of `vouch_tuf_refresh_total` for this failure.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Config { .. } => "config",
            Self::Refused { refusal, .. } => refusal.as_str(),
            Self::Unreachable { .. } => "unreachable",
            Self::Timeout { .. } => "timeout",
            Self::TargetMissing { .. } => "target_missing",
            Self::BadTarget { .. } => "bad_target",
            Self::Cache { .. } => "cache",
        }
    }
}

/// A trust root obtained through TUF, with what the TUF metadata said about it.
#[derive(Debug, Clone)]
pub struct TufTrustRoot {
    /// The parsed trusted root.
    pub trust_root: Arc<TrustRoot>,
    /// The target's bytes, as fetched (for a bundle to record the root it was made with).
    pub json: Arc<[u8]>,
    /// When the first of the TUF metadata in force (root, timestamp, snapshot, targets) expires: after it,
    /// this root is kept but no longer vouched for by the repository.
    pub metadata_expires: DateTime<Utc>,
    /// Which role expires first (`root`, `timestamp`, `snapshot`, `targets`).
    pub expiring_role: String,
    /// Version of the TUF root in force.
    pub root_version: u64,
    /// Version of the targets metadata that listed the target.
    pub targets_version: u64,
    /// When it was fetched.
    pub fetched_at: DateTime<Utc>,
}

impl TufTrustRoot {
    /// Whether this root may be used without asking the repository again ([`is_fresh`]).
    pub fn is_fresh(&self, max_age: Duration, now: DateTime<Utc>) -> bool {
        is_fresh(self.fetched_at, self.metadata_expires, max_age, now)
    }
}

/// Whether a root fetched at `fetched_at`, vouched for until `metadata_expires`, may be used at `now` without
/// asking the repository again: fetched less than `max_age` ago (a fetch time in the future — a clock set
/// back — proves nothing) and its TUF metadata not yet expired.
pub fn is_fresh(
    fetched_at: DateTime<Utc>,
    metadata_expires: DateTime<Utc>,
    max_age: Duration,
    now: DateTime<Utc>,
) -> bool {
    let max_age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    fetched_at <= now && now - fetched_at < max_age && now < metadata_expires
}

/// What is written beside the cached trusted root.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CacheState {
    mirror: String,
    target: String,
    sha256: String,
    metadata_expires: DateTime<Utc>,
    expiring_role: String,
    root_version: u64,
    targets_version: u64,
    fetched_at: DateTime<Utc>,
}

/// A trusted root kept fresh from a TUF repository, the last good one kept in force.
#[derive(Debug)]
pub struct TufTrustSource {
    config: TufConfig,
    mirror: Url,
    target: TargetName,
    transport: HttpsTransport,
    /// This repository's directory under the cache directory.
    dir: PathBuf,
    current: Mutex<Option<Arc<TufTrustRoot>>>,
    /// One refresh at a time: tough's datastore is not shared between loads.
    refreshing: tokio::sync::Mutex<()>,
}

impl TufTrustSource {
    /// Check the configuration and read the last good root from the cache, if any. No network.
    pub fn new(config: TufConfig) -> Result<Self, TufError> {
        let bad = |reason: String| TufError::Config { reason };
        let mut mirror =
            Url::parse(&config.mirror).map_err(|e| bad(format!("mirror {:?}: {e}", config.mirror)))?;
        if !mirror.path().ends_with('/') {
            mirror.set_path(&format!("{}/", mirror.path()));
        }
        let transport = HttpsTransport::new(config.timeout, &config.insecure_hosts).map_err(bad)?;
        if !transport.allows(&mirror) {
            return Err(bad(format!(
                "mirror {} must be https (plain http only for a host named as insecure)",
                config.mirror
            )));
        }
        let target = TargetName::new(config.target.clone())
            .map_err(|e| bad(format!("target name {:?}: {e}", config.target)))?;
        read_tuf_root(&config.root).map_err(|e| bad(format!("trusted TUF root: {e}")))?;
        // One directory per repository, so two mirrors never share rollback state.
        let key = Digest::sha256_of(mirror.as_str().as_bytes()).hex().to_owned();
        let dir = config.cache_dir.join(format!(
            "{}-{}",
            transport::host_of(&mirror).replace(':', "_"),
            &key[..16]
        ));
        let metadata = dir.join("metadata");
        std::fs::create_dir_all(&metadata)
            .map_err(|e| TufError::Cache { path: metadata.clone(), reason: e.to_string() })?;
        let source = Self {
            current: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            mirror,
            target,
            transport,
            dir,
            config,
        };
        match source.read_cache() {
            Ok(Some(last)) => source.put(Arc::new(last)),
            Ok(None) => {}
            // A damaged cache is not fatal: the next refresh replaces it.
            Err(e) => tracing::warn!(error = %e, "tuf cache ignored"),
        }
        Ok(source)
    }

    /// The configuration in force.
    pub fn config(&self) -> &TufConfig {
        &self.config
    }

    /// The root in force: the last good refresh, or the one cached by an earlier run; `None` before either.
    pub fn current(&self) -> Option<Arc<TufTrustRoot>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn put(&self, root: Arc<TufTrustRoot>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Some(root);
    }

    /// Run the TUF workflow and fetch the target. On success the new root is in force and cached (a cache
    /// that cannot be written is logged, not fatal); on failure nothing changes and the reason is returned.
    pub async fn refresh(&self) -> Result<Arc<TufTrustRoot>, TufError> {
        let _one = self.refreshing.lock().await;
        let after = self.config.timeout;
        let fetched = tokio::time::timeout(after, self.fetch())
            .await
            .map_err(|_| TufError::Timeout { mirror: self.config.mirror.clone(), after })??;
        // A cache that cannot be written must not keep a verified root out of force: it only costs the
        // fallback after a restart.
        if let Err(e) = self.write_cache(&fetched) {
            tracing::warn!(error = %e, "the trusted root from TUF is in force but could not be cached");
        }
        let fetched = Arc::new(fetched);
        self.put(fetched.clone());
        Ok(fetched)
    }

    async fn fetch(&self) -> Result<TufTrustRoot, TufError> {
        let root = self.starting_root();
        let targets_url =
            self.mirror.join("targets/").map_err(|e| TufError::Config { reason: e.to_string() })?;
        let repo = RepositoryLoader::new(&root, self.mirror.clone(), targets_url)
            .transport(self.transport.clone())
            .datastore(self.dir.join("metadata"))
            .limits(tough::Limits { max_root_size: MAX_ROOT_BYTES, ..tough::Limits::default() })
            .load()
            .await
            .map_err(|e| self.classify(e))?;
        let missing = || TufError::TargetMissing {
            mirror: self.config.mirror.clone(),
            target: self.config.target.clone(),
        };
        let listed = repo.targets().signed.find_target(&self.target, false).map_err(|_| missing())?;
        if listed.length > MAX_TRUST_ROOT_BYTES as u64 {
            return Err(self.bad_target(TrustRootError::TooLarge));
        }
        let stream =
            repo.read_target(&self.target).await.map_err(|e| self.classify(e))?.ok_or_else(missing)?;
        let json: Vec<u8> = stream.into_vec().await.map_err(|e| self.classify(e))?;
        let trust_root = TrustRoot::from_json(&json).map_err(|e| self.bad_target(e))?;
        let (expires, role) = [
            (repo.root().signed.expires, "root"),
            (repo.timestamp().signed.expires, "timestamp"),
            (repo.snapshot().signed.expires, "snapshot"),
            (repo.targets().signed.expires, "targets"),
        ]
        .into_iter()
        .min_by_key(|(t, _)| *t)
        .unwrap_or((repo.root().signed.expires, "root"));
        Ok(TufTrustRoot {
            trust_root: Arc::new(trust_root),
            json: json.into(),
            metadata_expires: DateTime::from_timestamp(
                expires.as_second(),
                expires.subsec_nanosecond().max(0) as u32,
            )
            .unwrap_or_default(),
            expiring_role: role.into(),
            root_version: repo.root().signed.version.get(),
            targets_version: repo.targets().signed.version.get(),
            fetched_at: Utc::now(),
        })
    }

    /// The newest TUF root tough has verified (kept in its datastore) when it is at least as new as the
    /// configured one, else the configured one: rotations are not walked again, and a root the operator
    /// updated out of band wins over an older cached one.
    fn starting_root(&self) -> Vec<u8> {
        let anchor_version = read_tuf_root(&self.config.root).map(|r| r.signed.version.get()).unwrap_or(0);
        let cached = std::fs::read(self.dir.join("metadata").join("root.json")).ok();
        match cached {
            Some(bytes) => match read_tuf_root(&bytes) {
                Ok(r) if r.signed.version.get() >= anchor_version => bytes,
                _ => self.config.root.clone(),
            },
            None => self.config.root.clone(),
        }
    }

    fn bad_target(&self, reason: TrustRootError) -> TufError {
        TufError::BadTarget { mirror: self.config.mirror.clone(), target: self.config.target.clone(), reason }
    }

    fn classify(&self, e: tough::error::Error) -> TufError {
        use tough::error::Error as E;
        let mirror = self.config.mirror.clone();
        let refusal = match &e {
            E::OlderMetadata { .. }
            | E::OlderSnapshotInTimestamp { .. }
            | E::SnapshotRoleRollback { .. }
            | E::SnapshotRoleMissing { .. } => Refusal::Rollback,
            E::ExpiredMetadata { .. } => Refusal::Expired,
            E::VerifyMetadata { .. } | E::VerifyRoleMetadata { .. } | E::VerifyTrustedMetadata { .. } => {
                Refusal::Signature
            }
            E::VersionMismatch { .. }
            | E::HashMismatch { .. }
            | E::MetaMissing { .. }
            | E::MissingSnapshotMeta { .. }
            | E::SnapshotTargetsMetaMissing { .. }
            | E::TimestampMetaLength { .. } => Refusal::Inconsistent,
            E::ParseMetadata { .. }
            | E::ParseTrustedMetadata { .. }
            | E::MaxSizeExceeded { .. }
            | E::MaxUpdatesExceeded { .. }
            | E::SpecVersion { .. } => Refusal::Malformed,
            E::SystemTimeSteppedBackward { .. } => Refusal::Clock,
            E::Transport { .. } => return TufError::Unreachable { mirror, detail: e.to_string() },
            E::DatastoreInit { .. }
            | E::DatastoreCreate { .. }
            | E::DatastoreOpen { .. }
            | E::DatastoreRemove { .. }
            | E::DatastoreSerialize { .. } => {
                return TufError::Cache { path: self.dir.join("metadata"), reason: e.to_string() }
            }
            _ => return TufError::Unreachable { mirror, detail: e.to_string() },
        };
        TufError::Refused { mirror, refusal, detail: e.to_string() }
    }

    fn read_cache(&self) -> Result<Option<TufTrustRoot>, TufError> {
        let state_path = self.dir.join("state.json");
        let cache = |path: &Path, reason: String| TufError::Cache { path: path.to_owned(), reason };
        let state = match std::fs::read(&state_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(cache(&state_path, e.to_string())),
        };
        let state: CacheState =
            serde_json::from_slice(&state).map_err(|e| cache(&state_path, e.to_string()))?;
        if state.mirror != self.config.mirror || state.target != self.config.target {
            return Ok(None);
        }
        let root_path = self.dir.join(DEFAULT_TARGET);
        let json = std::fs::read(&root_path).map_err(|e| cache(&root_path, e.to_string()))?;
        if Digest::sha256_of(&json).hex() != state.sha256 {
            return Err(cache(&root_path, "does not match the digest recorded in state.json".into()));
        }
        let trust_root = TrustRoot::from_json(&json).map_err(|e| cache(&root_path, e.to_string()))?;
        Ok(Some(TufTrustRoot {
            trust_root: Arc::new(trust_root),
            json: json.into(),
            metadata_expires: state.metadata_expires,
            expiring_role: state.expiring_role,
            root_version: state.root_version,
            targets_version: state.targets_version,
            fetched_at: state.fetched_at,
        }))
    }

    /// The trusted root first, then the state naming its digest: a crash between the two leaves a state
    /// that does not match, which is ignored.
    fn write_cache(&self, root: &TufTrustRoot) -> Result<(), TufError> {
        let state = CacheState {
            mirror: self.config.mirror.clone(),
            target: self.config.target.clone(),
            sha256: Digest::sha256_of(&root.json).hex().to_owned(),
            metadata_expires: root.metadata_expires,
            expiring_role: root.expiring_role.clone(),
            root_version: root.root_version,
            targets_version: root.targets_version,
            fetched_at: root.fetched_at,
        };
        let state = serde_json::to_vec_pretty(&state)
            .map_err(|e| TufError::Cache { path: self.dir.join("state.json"), reason: e.to_string() })?;
        write_atomically(&self.dir.join(DEFAULT_TARGET), &root.json)?;
        write_atomically(&self.dir.join("state.json"), &state)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), TufError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| TufError::Cache { path: path.to_owned(), reason: e.to_string() })
}

/// A TUF `root.json`, checked to be signed by a threshold of its own root keys.
fn read_tuf_root(bytes: &[u8]) -> Result<Signed<Root>, String> {
    if bytes.len() as u64 > MAX_ROOT_BYTES {
        return Err(format!("larger than {MAX_ROOT_BYTES} bytes"));
    }
    let root: Signed<Root> = serde_json::from_slice(bytes).map_err(|e| format!("not a TUF root: {e}"))?;
    root.signed.verify_role(&root).map_err(|e| format!("not signed by its own root keys: {e}"))?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> TufConfig {
        TufConfig::public_good(dir.to_owned())
    }

    #[test]
    fn embedded_public_good_root_is_a_self_signed_tuf_root() {
        let root = read_tuf_root(PUBLIC_GOOD_TUF_ROOT).unwrap();
        assert_eq!(root.signed.version.get(), 12);
        assert!(root.signed.consistent_snapshot);
    }

    #[test]
    fn configuration_is_checked_without_network() {
        let dir = tempfile::tempdir().unwrap();
        let source = TufTrustSource::new(config(dir.path())).unwrap();
        assert!(source.current().is_none(), "nothing cached yet");

        let plain = TufConfig { mirror: "http://tuf.example.com".into(), ..config(dir.path()) };
        let e = TufTrustSource::new(plain).unwrap_err().to_string();
        assert!(e.contains("must be https"), "{e}");

        // Version 12 made 13: the signatures over the signed part no longer hold.
        let tampered =
            String::from_utf8_lossy(PUBLIC_GOOD_TUF_ROOT).replace("\"version\": 12", "\"version\": 13");
        assert_ne!(tampered.as_bytes(), PUBLIC_GOOD_TUF_ROOT);
        let tampered = tampered.into_bytes();
        let e =
            TufTrustSource::new(TufConfig { root: tampered, ..config(dir.path()) }).unwrap_err().to_string();
        assert!(e.contains("trusted TUF root"), "{e}");

        let e = TufTrustSource::new(TufConfig { target: "..".into(), ..config(dir.path()) }).unwrap_err();
        assert!(matches!(e, TufError::Config { .. }), "{e}");
    }

    #[test]
    fn a_damaged_cache_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let source = TufTrustSource::new(config(dir.path())).unwrap();
        let json = crate::trust_root::PUBLIC_GOOD_JSON.as_bytes();
        let good = TufTrustRoot {
            trust_root: Arc::new(TrustRoot::from_json(json).unwrap()),
            json: json.into(),
            metadata_expires: Utc::now(),
            expiring_role: "timestamp".into(),
            root_version: 12,
            targets_version: 3,
            fetched_at: Utc::now(),
        };
        source.write_cache(&good).unwrap();
        let again = TufTrustSource::new(config(dir.path())).unwrap();
        let cached = again.current().unwrap();
        assert_eq!(cached.trust_root.fingerprint(), good.trust_root.fingerprint());
        assert_eq!(cached.targets_version, 3);

        // Another mirror has its own directory: nothing cached there.
        let other = TufConfig { mirror: "https://tuf.example.com/".into(), ..config(dir.path()) };
        assert!(TufTrustSource::new(other).unwrap().current().is_none());

        std::fs::write(source.dir.join(DEFAULT_TARGET), b"{}").unwrap();
        assert!(TufTrustSource::new(config(dir.path())).unwrap().current().is_none());
    }
}
