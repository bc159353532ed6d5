//! The registry and trust-root flags `verify`, `check`, `scan`, `bundle create` and `serve` share, read once
//! into what the verifier needs, and the parser of duration flags (`8s`, `500ms`, `2m`; a bare number is
//! seconds). The trust root comes from `--trusted-root`, from a TUF repository (`--tuf-mirror`), from
//! Sigstore's public-good TUF repository by default when the verification needs Sigstore trust material
//! (`vouch verify`: [`TrustSource::PublicGoodDefault`]), or is the embedded public-good root.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use vouch_attest::registry::{Credentials, RegistryConfig};
use vouch_attest::trust_root::{TrustRoot, PUBLIC_GOOD_JSON};
use vouch_attest::tuf::{
    is_fresh, TufConfig, TufTrustRoot, TufTrustSource, DEFAULT_TARGET, DEFAULT_TIMEOUT, PUBLIC_GOOD_MIRROR,
    PUBLIC_GOOD_NAME, PUBLIC_GOOD_TUF_ROOT,
};

/// Largest trusted_root.json read (the public-good root is about 10 KiB).
pub const MAX_TRUSTED_ROOT_BYTES: u64 = 16 * 1024 * 1024;
/// Largest TUF root.json read (`--tuf-root`).
pub const MAX_TUF_ROOT_BYTES: u64 = 1024 * 1024;
/// `--tuf-mirror` value that turns TUF off: the embedded public-good root, never any network.
pub const TUF_OFF: &str = "off";
/// A public-good root cached by an earlier run is used without asking the mirror for this long.
pub const DEFAULT_TUF_FRESH: Duration = Duration::from_secs(24 * 3600);
/// The bound on the one refresh the public-good default tries (an explicit `--tuf-mirror` waits longer).
pub const DEFAULT_TUF_TIMEOUT: Duration = Duration::from_secs(5);
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
    /// root cached under --tuf-cache. `off`: the embedded root, no network. Unset: `vouch verify` follows
    /// public-good when the verification needs Sigstore trust material (keyless, or a tlog check), using a
    /// cached root younger than 24h as is, else one refresh of at most 5s, falling back with a warning.
    #[arg(long, conflicts_with = "trusted_root")]
    pub tuf_mirror: Option<String>,
    /// The TUF root.json a private mirror is trusted from (obtained out of band); newer roots are followed.
    #[arg(long, requires = "tuf_mirror")]
    pub tuf_root: Option<PathBuf>,
    /// Where the last good trusted roots and the TUF metadata are kept, for --tuf-mirror, for the public-good
    /// default of `vouch verify` and for policies' TrustRoots with spec.tuf [default: $XDG_CACHE_HOME/vouch/tuf, else ~/.cache/vouch/tuf].
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
        self.trusted_root_json_for(false)
    }

    /// Where the trusted root comes from, `needs_sigstore` saying whether the verification needs Sigstore
    /// trust material at all (a keyless identity, or a key signature whose tlog entry is checked).
    #[must_use]
    pub fn trust_source(&self, needs_sigstore: bool) -> TrustSource {
        match (&self.trusted_root, self.tuf_mirror.as_deref()) {
            (Some(_), _) => TrustSource::File,
            (None, Some(TUF_OFF)) => TrustSource::Embedded,
            (None, Some(_)) => TrustSource::Tuf,
            (None, None) if needs_sigstore => TrustSource::PublicGoodDefault,
            (None, None) => TrustSource::Embedded,
        }
    }

    /// [`Self::trusted_root_json`], following Sigstore's public-good TUF repository by default when
    /// `needs_sigstore` ([`Self::trust_source`]).
    pub fn trusted_root_json_for(&self, needs_sigstore: bool) -> Result<Vec<u8>, FlagFileError> {
        match (self.trust_source(needs_sigstore), &self.trusted_root, self.tuf_config()?) {
            (TrustSource::File, Some(path), _) => read_capped(path, MAX_TRUSTED_ROOT_BYTES),
            (TrustSource::Tuf, _, Some(tuf)) => self.trusted_root_from_tuf(tuf),
            (TrustSource::PublicGoodDefault, _, _) => {
                let cache_dir = self.tuf_cache.clone().or_else(crate::server::config::default_tuf_cache);
                let (json, warning) = public_good_default(
                    cache_dir
                        .map(|dir| TufConfig { timeout: DEFAULT_TUF_TIMEOUT, ..TufConfig::public_good(dir) }),
                    Utc::now(),
                );
                if let Some(w) = warning {
                    eprintln!("warning: {w}");
                }
                Ok(json)
            }
            _ => Ok(PUBLIC_GOOD_JSON.as_bytes().to_vec()),
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
        let Some(mirror) = self.tuf_mirror.as_ref().filter(|m| *m != TUF_OFF) else { return Ok(None) };
        let flag = |flag: &str, reason: String| FlagFileError { path: flag.into(), reason };
        let public_good = mirror == PUBLIC_GOOD_NAME;
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
        match (refresh_blocking(&source), source.current()) {
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
        self.trust_root_for(false)
    }

    /// The trust root in force, following public-good TUF by default when `needs_sigstore`
    /// ([`Self::trust_source`]).
    pub fn trust_root_for(&self, needs_sigstore: bool) -> Result<TrustRoot, FlagFileError> {
        let json = self.trusted_root_json_for(needs_sigstore)?;
        TrustRoot::from_json(&json).map_err(|e| FlagFileError {
            path: match (self.trust_source(needs_sigstore), &self.trusted_root) {
                (TrustSource::File, Some(path)) => path.clone(),
                (TrustSource::Tuf | TrustSource::PublicGoodDefault, _) => "--tuf-mirror".into(),
                _ => "<embedded trust root>".into(),
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

/// Where the trusted root in force comes from ([`RegistryArgs::trust_source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustSource {
    /// `--trusted-root FILE`: that file, no network.
    File,
    /// `--tuf-mirror public-good|URL`: refreshed from that repository, the last good root kept.
    Tuf,
    /// Nothing asked for and Sigstore trust material needed: the public-good repository, as
    /// [`public_good_default`] does (a fresh cached root, else one short refresh, else a fallback).
    PublicGoodDefault,
    /// `--tuf-mirror off`, or no Sigstore trust material needed: the root embedded in vouch, no network.
    Embedded,
}

/// Whether the public-good default asks the mirror: not when a root cached by an earlier run was fetched
/// less than [`DEFAULT_TUF_FRESH`] ago and its TUF metadata has not expired.
#[must_use]
pub fn default_needs_refresh(cached: Option<(DateTime<Utc>, DateTime<Utc>)>, now: DateTime<Utc>) -> bool {
    !cached.is_some_and(|(fetched_at, expires)| is_fresh(fetched_at, expires, DEFAULT_TUF_FRESH, now))
}

/// The public-good default ([`TrustSource::PublicGoodDefault`]) with the repository `tuf` (`None`: no cache
/// directory): the cached root when fresh ([`default_needs_refresh`]), else one refresh bounded by
/// `tuf.timeout`; when that fails, the last good cached root, else the embedded one, with the warning to
/// print naming why. Never an error: offline use goes on with the best root at hand.
pub fn public_good_default(tuf: Option<TufConfig>, now: DateTime<Utc>) -> (Vec<u8>, Option<String>) {
    let embedded = || PUBLIC_GOOD_JSON.as_bytes().to_vec();
    let hint = "(--tuf-mirror off: never ask; --trusted-root FILE: use that root)";
    let Some(tuf) = tuf else {
        let why = "no TUF cache directory (neither XDG_CACHE_HOME nor HOME is set, and no --tuf-cache)";
        return (embedded(), Some(format!("{why}; using the trusted root embedded in vouch {hint}")));
    };
    let source = match TufTrustSource::new(tuf) {
        Ok(s) => s,
        Err(e) => return (embedded(), Some(format!("{e}; using the trusted root embedded in vouch {hint}"))),
    };
    let cached = source.current();
    if !default_needs_refresh(cached.as_ref().map(|c| (c.fetched_at, c.metadata_expires)), now) {
        if let Some(root) = cached {
            return (root.json.to_vec(), None);
        }
    }
    match (refresh_blocking(&source), cached) {
        (Ok(root), _) => (root.json.to_vec(), None),
        (Err(e), Some(last)) => (
            last.json.to_vec(),
            Some(format!("{e}; using the last good trusted root (fetched {}) {hint}", last.fetched_at)),
        ),
        (Err(e), None) => (
            embedded(),
            Some(format!("{e}; nothing cached: using the trusted root embedded in vouch {hint}")),
        ),
    }
}

/// One refresh of `source` ([`block_on_own_thread`]).
fn refresh_blocking(source: &TufTrustSource) -> Result<Arc<TufTrustRoot>, String> {
    block_on_own_thread(source.refresh())?.map_err(|e| e.to_string())
}

/// Run `work` to completion on a thread and runtime of its own, so a command may call it whether or not it
/// is inside an async runtime. The runtime is left behind, not waited for, so a name lookup stuck in a
/// blocking thread cannot outlast the work's own timeouts. `Err`: no runtime could be started, or the work
/// panicked.
pub fn block_on_own_thread<F: std::future::Future + Send>(work: F) -> Result<F::Output, String>
where
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the async runtime: {e}"))?;
            let out = rt.block_on(work);
            rt.shutdown_background();
            Ok(out)
        })
        .join()
        .map_err(|_| "the thread running it panicked".to_owned())?
    })
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

    #[test]
    fn public_good_tuf_is_the_default_only_when_sigstore_material_is_needed_and_nothing_else_is_named() {
        let file = RegistryArgs { trusted_root: Some("root.json".into()), ..Default::default() };
        let mirror = |m: &str| RegistryArgs { tuf_mirror: Some(m.into()), ..Default::default() };
        for needs in [true, false] {
            assert_eq!(file.trust_source(needs), TrustSource::File);
            assert_eq!(mirror(TUF_OFF).trust_source(needs), TrustSource::Embedded);
            assert_eq!(mirror(PUBLIC_GOOD_NAME).trust_source(needs), TrustSource::Tuf);
            assert_eq!(mirror("https://tuf.example.com").trust_source(needs), TrustSource::Tuf);
        }
        assert_eq!(RegistryArgs::default().trust_source(true), TrustSource::PublicGoodDefault);
        assert_eq!(RegistryArgs::default().trust_source(false), TrustSource::Embedded);
        // `off` is not a mirror URL: no --tuf-root asked for, no TUF configuration.
        assert!(mirror(TUF_OFF).tuf_config().unwrap().is_none());
        assert_eq!(mirror(TUF_OFF).trusted_root_json_for(true).unwrap(), PUBLIC_GOOD_JSON.as_bytes());
    }

    #[test]
    fn a_cached_root_is_used_without_network_while_fresh_and_unexpired() {
        let now = Utc::now();
        let h = chrono::Duration::hours;
        assert!(default_needs_refresh(None, now), "nothing cached");
        assert!(!default_needs_refresh(Some((now - h(1), now + h(100))), now));
        assert!(!default_needs_refresh(Some((now - h(23), now + h(100))), now));
        assert!(default_needs_refresh(Some((now - h(25), now + h(100))), now), "older than 24h");
        assert!(default_needs_refresh(Some((now - h(1), now - h(1))), now), "TUF metadata expired");
        assert!(default_needs_refresh(Some((now + h(2), now + h(100))), now), "fetched in the future");
    }

    #[test]
    fn the_default_falls_back_to_the_embedded_root_with_one_warning_and_does_not_hang() {
        let (json, warning) = public_good_default(None, Utc::now());
        assert_eq!(json, PUBLIC_GOOD_JSON.as_bytes());
        assert!(warning.unwrap().contains("no TUF cache directory"));

        // The public-good repository's configuration, its mirror an unused loopback port.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let tuf = TufConfig {
            mirror: format!("http://127.0.0.1:{port}"),
            timeout: DEFAULT_TUF_TIMEOUT,
            insecure_hosts: vec![format!("127.0.0.1:{port}")],
            ..TufConfig::public_good(dir.path().to_path_buf())
        };
        let started = std::time::Instant::now();
        let (json, warning) = public_good_default(Some(tuf), Utc::now());
        assert!(started.elapsed() < Duration::from_secs(30), "took {:?}", started.elapsed());
        assert_eq!(json, PUBLIC_GOOD_JSON.as_bytes());
        let warning = warning.unwrap();
        assert!(warning.contains("using the trusted root embedded in vouch"), "{warning}");
        assert!(warning.contains(&format!("127.0.0.1:{port}")), "names the mirror: {warning}");
        assert!(!warning.contains('\n'), "one line: {warning}");
    }
}
