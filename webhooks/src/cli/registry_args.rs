//! The registry and trust-root flags `verify`, `check`, `scan`, `bundle create` and `serve` share, read once
//! into what the verifier needs, and the parser of duration flags (`8s`, `500ms`, `2m`; a bare number is
//! seconds). The trust root comes from `--trusted-root`, from a TUF repository (`--tuf-mirror`), or is the
//! embedded public-good root.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vouch_attest::registry::{Credentials, RegistryConfig};
use vouch_attest::trust_root::{TrustRoot, PUBLIC_GOOD_JSON};
use vouch_attest::tuf::{
    TufConfig, TufTrustSource, DEFAULT_TARGET, DEFAULT_TIMEOUT, PUBLIC_GOOD_MIRROR, PUBLIC_GOOD_TUF_ROOT,
};

/// Largest trusted_root.json read (the public-good root is about 10 KiB).
pub const MAX_TRUSTED_ROOT_BYTES: u64 = 16 * 1024 * 1024;
/// Largest TUF root.json read (`--tuf-root`).
pub const MAX_TUF_ROOT_BYTES: u64 = 1024 * 1024;
/// `--tuf-mirror` value naming Sigstore's public-good repository.
pub use crate::server::config::TUF_PUBLIC_GOOD as PUBLIC_GOOD;
/// Largest Docker config JSON read.
pub const MAX_AUTH_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Where registries are and who vouch is to them, and which Sigstore trust root is in force.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryArgs {
    /// Sigstore trusted_root.json (default: the embedded public-good root).
    #[arg(long)]
    pub trusted_root: Option<PathBuf>,
    /// Take the trusted root from a TUF repository: `public-good` (Sigstore's, trusted from the TUF root
    /// embedded in vouch) or the URL of a private mirror (with --tuf-root). A failed update uses the last good
    /// root cached under --tuf-cache.
    #[arg(long, conflicts_with = "trusted_root")]
    pub tuf_mirror: Option<String>,
    /// The TUF root.json a private mirror is trusted from (obtained out of band); newer roots are followed.
    #[arg(long, requires = "tuf_mirror")]
    pub tuf_root: Option<PathBuf>,
    /// Where the last good trusted roots and the TUF metadata are kept, for --tuf-mirror and for policies'
    /// TrustRoots with spec.tuf [default: $XDG_CACHE_HOME/vouch/tuf, else ~/.cache/vouch/tuf].
    #[arg(long)]
    pub tuf_cache: Option<PathBuf>,
    /// A registry or TUF mirror (host[:port]) reached over plain HTTP. Repeatable. Never use for hosts you do
    /// not run.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Docker config JSON with registry credentials (the content of a kubernetes.io/dockerconfigjson secret).
    #[arg(long, env = "VOUCH_REGISTRY_AUTH_FILE")]
    pub registry_auth_file: Option<PathBuf>,
}

/// A file named by a flag that cannot be used: which file, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct FlagFileError {
    /// The file.
    pub path: PathBuf,
    /// Why it cannot be used.
    pub reason: String,
}

impl RegistryArgs {
    /// The trusted root's JSON as given (`--trusted-root`), else from the TUF repository (`--tuf-mirror`),
    /// else the embedded public-good root's.
    pub fn trusted_root_json(&self) -> Result<Vec<u8>, FlagFileError> {
        match (&self.trusted_root, self.tuf_config()?) {
            (Some(path), _) => read_capped(path, MAX_TRUSTED_ROOT_BYTES),
            (None, Some(tuf)) => self.trusted_root_from_tuf(tuf),
            (None, None) => Ok(PUBLIC_GOOD_JSON.as_bytes().to_vec()),
        }
    }

    /// How TrustRoots with `spec.tuf` are followed: refreshed at every run (the last good root cached when
    /// the repository cannot be reached), cached under `--tuf-cache` or the default cache directory.
    pub fn tuf_roots(&self) -> vouch_policies::TufRoots {
        let cache_dir = self
            .tuf_cache
            .clone()
            .or_else(crate::server::config::default_tuf_cache)
            .unwrap_or_else(|| std::env::temp_dir().join("vouch-tuf"));
        vouch_policies::TufRoots::new(vouch_policies::TufRootsConfig {
            cache_dir,
            refresh: std::time::Duration::ZERO,
            timeout: DEFAULT_TIMEOUT,
            insecure_hosts: self.insecure_registries.clone(),
        })
    }

    /// The TUF repository named by `--tuf-mirror`, `--tuf-root` and `--tuf-cache`, if any.
    pub fn tuf_config(&self) -> Result<Option<TufConfig>, FlagFileError> {
        let Some(mirror) = &self.tuf_mirror else { return Ok(None) };
        let flag = |flag: &str, reason: String| FlagFileError { path: flag.into(), reason };
        let public_good = mirror == PUBLIC_GOOD;
        let root = match (&self.tuf_root, public_good) {
            (Some(path), _) => read_capped(path, MAX_TUF_ROOT_BYTES)?,
            (None, true) => PUBLIC_GOOD_TUF_ROOT.to_vec(),
            (None, false) => {
                return Err(flag(
                    "--tuf-root",
                    format!("required with --tuf-mirror {mirror} (the root.json it is trusted from)"),
                ))
            }
        };
        let cache_dir = match &self.tuf_cache {
            Some(dir) => dir.clone(),
            None => crate::server::config::default_tuf_cache().ok_or_else(|| {
                flag("--tuf-cache", "required: neither XDG_CACHE_HOME nor HOME is set".into())
            })?,
        };
        Ok(Some(TufConfig {
            mirror: if public_good { PUBLIC_GOOD_MIRROR.into() } else { mirror.clone() },
            root,
            target: DEFAULT_TARGET.into(),
            cache_dir,
            timeout: DEFAULT_TIMEOUT,
            insecure_hosts: self.insecure_registries.clone(),
        }))
    }

    /// Refresh from the repository; when that fails, the last good root cached, with a warning; for the
    /// public-good repository, with nothing cached, the embedded root, with a warning.
    fn trusted_root_from_tuf(&self, tuf: TufConfig) -> Result<Vec<u8>, FlagFileError> {
        let fail = |reason: String| FlagFileError { path: "--tuf-mirror".into(), reason };
        let public_good = tuf.mirror == PUBLIC_GOOD_MIRROR && self.tuf_root.is_none();
        let source = TufTrustSource::new(tuf).map_err(|e| fail(e.to_string()))?;
        // Its own thread and runtime: callers may or may not be inside one.
        let refreshed = std::thread::scope(|s| {
            s.spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| fail(format!("cannot start the async runtime: {e}")))
                    .map(|rt| rt.block_on(source.refresh()))
            })
            .join()
            .map_err(|_| fail("the TUF refresh thread panicked".into()))?
        })?;
        match (refreshed, source.current()) {
            (Ok(root), _) => Ok(root.json.to_vec()),
            (Err(e), Some(last)) => {
                eprintln!(
                    "warning: {e}; using the last good trusted root (fetched {}, TUF metadata expires {})",
                    last.fetched_at, last.metadata_expires
                );
                Ok(last.json.to_vec())
            }
            (Err(e), None) if public_good => {
                eprintln!("warning: {e}; nothing cached yet: using the trusted root embedded in vouch");
                Ok(PUBLIC_GOOD_JSON.as_bytes().to_vec())
            }
            (Err(e), None) => Err(fail(format!("{e}; and no last good trusted root is cached"))),
        }
    }

    /// The trust root in force.
    pub fn trust_root(&self) -> Result<TrustRoot, FlagFileError> {
        let json = self.trusted_root_json()?;
        TrustRoot::from_json(&json).map_err(|e| FlagFileError {
            path: match (&self.trusted_root, &self.tuf_mirror) {
                (Some(path), _) => path.clone(),
                (None, Some(_)) => "--tuf-mirror".into(),
                (None, None) => "<embedded trust root>".into(),
            },
            reason: e.to_string(),
        })
    }

    /// The registry credentials (`--registry-auth-file`), else none.
    pub fn credentials(&self) -> Result<Credentials, FlagFileError> {
        match &self.registry_auth_file {
            Some(path) => Credentials::from_docker_config_json(&read_capped(path, MAX_AUTH_FILE_BYTES)?)
                .map_err(|e| FlagFileError { path: path.clone(), reason: e.to_string() }),
            None => Ok(Credentials::anonymous()),
        }
    }

    /// The registry client's configuration: these registries and credentials, `timeout` per call.
    pub fn registry_config(&self, timeout: Duration) -> Result<RegistryConfig, FlagFileError> {
        Ok(RegistryConfig {
            insecure_registries: self.insecure_registries.clone(),
            timeout,
            credentials: self.credentials()?,
            ..RegistryConfig::default()
        })
    }
}

/// Read at most `max` bytes of `path`; more is an error, not a truncation.
pub fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, FlagFileError> {
    let err = |reason: String| FlagFileError { path: path.to_path_buf(), reason };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(|e| err(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(err(format!("larger than {max} bytes")));
    }
    Ok(bytes)
}

/// A duration flag (clap value parser): `8s`, `500ms`, `2m`, or a bare number of seconds; more than zero.
pub fn positive_duration(s: &str) -> Result<Duration, String> {
    match crate::server::config::parse_duration(s)? {
        d if d.is_zero() => Err("must be more than 0".into()),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_or_bare_seconds_and_refuse_zero() {
        assert_eq!(positive_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(positive_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(positive_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(positive_duration("0s"), Err("must be more than 0".into()));
        assert!(positive_duration("soon").unwrap_err().contains("not a duration"));
    }

    #[test]
    fn files_are_read_bounded_and_named_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("auth.json");
        std::fs::write(&big, vec![b' '; 11]).unwrap();
        let e = read_capped(&big, 10).unwrap_err();
        assert_eq!(e.to_string(), format!("{}: larger than 10 bytes", big.display()));
        let args =
            RegistryArgs { registry_auth_file: Some(dir.path().join("missing")), ..Default::default() };
        assert!(args.credentials().unwrap_err().to_string().contains("missing: cannot read: "));
        let garbage = dir.path().join("root.json");
        std::fs::write(&garbage, b"{").unwrap();
        let args = RegistryArgs { trusted_root: Some(garbage.clone()), ..Default::default() };
        assert!(args.trust_root().unwrap_err().to_string().starts_with(&garbage.display().to_string()));
        assert!(RegistryArgs::default().trust_root().is_ok(), "the embedded root");
    }
}
