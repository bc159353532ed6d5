//! TLS for the webhook port: rustls with the aws-lc-rs provider only, TLS 1.2 and 1.3, and a certificate
//! that is reloaded from its files while serving.
//!
//! Kubernetes updates a mounted Secret by swapping a `..data` symlink, which file watches on the
//! certificate itself miss; so the CONTENTS of the configured paths are polled, and a new pair is used only
//! once it parses and its key matches its certificate. A bad pair keeps the last good one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest as _, Sha256};

use super::client_ca::ReloadingClientCa;

/// Largest certificate chain or key file read (a chain of a few certificates is a few KiB).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Why a certificate/key pair cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than anything a certificate or key file should be.
    #[error("{path} is larger than {max} bytes")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// No PEM certificate in the certificate file.
    #[error("{path}: no PEM certificate found")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A PEM section of the certificate file does not decode.
    #[error("{path}: invalid PEM certificate: {reason}")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No usable private key in the key file.
    #[error("{path}: no PEM private key found (PKCS#8, PKCS#1 or SEC1): {reason}")]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM decoder said.
        reason: String,
    },
    /// The key is not one the aws-lc-rs provider can sign with.
    #[error("{path}: unsupported private key: {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key is not the key of the certificate (e.g. read in the middle of a rotation).
    #[error("the key in {key} does not match the certificate in {cert}: {reason}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The rustls configuration cannot be built.
    #[error("cannot build the TLS configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

/// The aws-lc-rs provider, installed as the process default (once; later calls are harmless).
pub fn install_crypto_provider() -> Arc<CryptoProvider> {
    // Err means some provider is installed already; vouch never installs another, and builds its own
    // configurations with an explicit provider anyway.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

pub(super) fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|source| TlsError::Read { path: path.into(), source })?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| TlsError::Read { path: path.into(), source })?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge { path: path.into(), max: MAX_PEM_BYTES });
    }
    Ok(bytes)
}

/// Where the serving certificate chain and its key live (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key of the leaf.
    pub key: PathBuf,
}

/// A loaded pair and the SHA-256 of the file contents it came from.
struct Loaded {
    key: CertifiedKey,
    contents: [u8; 32],
}

fn contents_hash(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((cert.len() as u64).to_be_bytes());
    h.update(cert);
    h.update(key);
    h.finalize().into()
}

/// Read both files; `Ok(None)` when their contents hash to `unchanged`.
fn load_pair(
    paths: &CertPaths,
    provider: &CryptoProvider,
    unchanged: Option<[u8; 32]>,
) -> Result<Option<Loaded>, ([u8; 32], TlsError)> {
    let no_hash = [0u8; 32];
    let cert_pem = read_bounded(&paths.cert).map_err(|e| (no_hash, e))?;
    let key_pem = read_bounded(&paths.key).map_err(|e| (no_hash, e))?;
    let contents = contents_hash(&cert_pem, &key_pem);
    if unchanged == Some(contents) {
        return Ok(None);
    }
    parse_pair(paths, provider, &cert_pem, &key_pem)
        .map(|key| Some(Loaded { key, contents }))
        .map_err(|e| (contents, e))
}

fn parse_pair(
    paths: &CertPaths,
    provider: &CryptoProvider,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate { path: paths.cert.clone(), reason: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: paths.cert.clone() });
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| TlsError::NoKey { path: paths.key.clone(), reason: e.to_string() })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::BadKey { path: paths.key.clone(), reason: e.to_string() })?;
    let certified = CertifiedKey::new(chain, signing_key);
    // Fail closed: a key whose consistency cannot be checked is not served either.
    certified.keys_match().map_err(|e| TlsError::Mismatch {
        cert: paths.cert.clone(),
        key: paths.key.clone(),
        reason: e.to_string(),
    })?;
    Ok(certified)
}

/// What one poll of the certificate files found.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// Same contents as last time.
    Unchanged,
    /// A new, valid pair is now served.
    Reloaded,
    /// The files changed but the new pair is unusable; the previous pair is still served.
    Rejected(TlsError),
}

/// The serving certificate: a rustls resolver over an atomically swapped pair, reloaded from its files.
pub struct ReloadingCert {
    paths: CertPaths,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    /// Contents last looked at (good or bad), so a bad pair is reported once, not at every poll.
    seen: Mutex<[u8; 32]>,
    reloads: AtomicU64,
    reload_errors: AtomicU64,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("paths", &self.paths)
            .field("leaf_sha256", &self.leaf_fingerprint())
            .finish()
    }
}

impl ReloadingCert {
    /// Load the pair now; an unusable pair at start is an error (nothing to fall back on).
    pub fn load(paths: CertPaths, provider: Arc<CryptoProvider>) -> Result<Arc<Self>, TlsError> {
        let loaded = match load_pair(&paths, &provider, None) {
            Ok(Some(l)) => l,
            Ok(None) => return Err(TlsError::Config { reason: "certificate files vanished".into() }),
            Err((_, e)) => return Err(e),
        };
        Ok(Arc::new(Self {
            paths,
            provider,
            current: ArcSwap::from_pointee(loaded.key),
            seen: Mutex::new(loaded.contents),
            reloads: AtomicU64::new(0),
            reload_errors: AtomicU64::new(0),
        }))
    }

    /// Read the files again and swap in the pair if it changed and is valid.
    pub fn reload_if_changed(&self) -> ReloadOutcome {
        let Ok(mut seen) = self.seen.lock() else {
            return ReloadOutcome::Unchanged;
        };
        match load_pair(&self.paths, &self.provider, Some(*seen)) {
            Ok(None) => ReloadOutcome::Unchanged,
            Ok(Some(loaded)) => {
                self.current.store(Arc::new(loaded.key));
                *seen = loaded.contents;
                self.reloads.fetch_add(1, Ordering::Relaxed);
                ReloadOutcome::Reloaded
            }
            Err((contents, e)) => {
                // An unreadable file (contents unknown) is retried and reported at every poll.
                if contents != [0u8; 32] {
                    *seen = contents;
                }
                self.reload_errors.fetch_add(1, Ordering::Relaxed);
                ReloadOutcome::Rejected(e)
            }
        }
    }

    /// Poll the files every `interval` until the returned task is aborted; logs every change.
    pub fn spawn_watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        spawn_reload_watch(self, interval)
    }

    /// Hex SHA-256 of the leaf certificate served now (for logs and tests; not secret).
    pub fn leaf_fingerprint(&self) -> String {
        let current = self.current.load();
        current.cert.first().map(|c| hex::encode(Sha256::digest(c.as_ref()))).unwrap_or_default()
    }

    /// Successful reloads since start.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Rejected new pairs (or unreadable files) since start.
    pub fn reload_errors(&self) -> u64 {
        self.reload_errors.load(Ordering::Relaxed)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The webhook's rustls configuration: aws-lc-rs, TLS 1.3 and 1.2, ALPN h2 and http/1.1; a client
/// certificate from `client_ca` required when given, else no client auth.
pub fn server_config(
    cert: Arc<ReloadingCert>,
    client_ca: Option<Arc<ReloadingClientCa>>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config { reason: e.to_string() })?;
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(ca),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl ReloadedFile for ReloadingCert {
    const WHAT: &'static str = "serving certificate";

    fn reload_if_changed(&self) -> ReloadOutcome {
        ReloadingCert::reload_if_changed(self)
    }

    fn path(&self) -> &Path {
        &self.paths.cert
    }

    fn in_force(&self) -> String {
        format!("leaf sha256:{}", self.leaf_fingerprint())
    }
}

/// A file read again and again while serving, whose last good content stays in force.
pub(crate) trait ReloadedFile: Send + Sync + 'static {
    /// What it is, for logs.
    const WHAT: &'static str;
    /// Read it again; use the new content if it changed and is good.
    fn reload_if_changed(&self) -> ReloadOutcome;
    /// Where it is read from.
    fn path(&self) -> &Path;
    /// What is in force now, for logs (never secret).
    fn in_force(&self) -> String;
}

/// Poll `file` every `interval` until the returned task is aborted, logging every change.
pub(crate) fn spawn_reload_watch<F: ReloadedFile>(
    file: &Arc<F>,
    interval: Duration,
) -> tokio::task::JoinHandle<()> {
    let (this, report) = (Arc::clone(file), Arc::clone(file));
    spawn_polling(
        interval,
        F::WHAT,
        move || this.reload_if_changed(),
        move |outcome| {
            let (what, path) = (F::WHAT, report.path().display());
            // Described only when something changed (a leaf fingerprint is a SHA-256 per poll otherwise).
            match outcome {
                ReloadOutcome::Unchanged => {}
                ReloadOutcome::Reloaded => {
                    tracing::info!(what, path = %path, in_force = report.in_force(), "reloaded")
                }
                ReloadOutcome::Rejected(e) => tracing::error!(
                    what,
                    path = %path,
                    error = %e,
                    in_force = report.in_force(),
                    "new content rejected; the previous one stays in force"
                ),
            }
        },
    )
}

/// Run `poll` (which reads files) on a blocking thread every `interval`, after a first wait, and hand each
/// outcome to `report`, until the returned task is aborted. `what` names the files in an error log.
pub(crate) fn spawn_polling<T: Send + 'static>(
    interval: Duration,
    what: &'static str,
    poll: impl Fn() -> T + Send + Sync + 'static,
    mut report: impl FnMut(T) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let poll = Arc::new(poll);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let poll = Arc::clone(&poll);
            match tokio::task::spawn_blocking(move || poll()).await {
                Ok(outcome) => report(outcome),
                Err(e) => tracing::error!(error = %e, what, "reload task failed"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::dev_pki::DevCa;

    fn write_pair(dir: &Path, cert: &str, key: &str) -> CertPaths {
        std::fs::write(dir.join("tls.crt"), cert).unwrap();
        std::fs::write(dir.join("tls.key"), key).unwrap();
        CertPaths { cert: dir.join("tls.crt"), key: dir.join("tls.key") }
    }

    fn sha(der: &[u8]) -> String {
        hex::encode(Sha256::digest(der))
    }

    #[test]
    fn reloads_a_changed_pair_and_keeps_the_last_good_one() {
        let ca = DevCa::new("tls-test-ca").unwrap();
        let a = ca.issue_server(&["localhost"], &[]).unwrap();
        let b = ca.issue_server(&["localhost"], &[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let paths = write_pair(dir.path(), &a.cert_pem, &a.key_pem);
        let cert = ReloadingCert::load(paths, install_crypto_provider()).unwrap();
        assert_eq!(cert.leaf_fingerprint(), sha(&a.cert_der));
        assert!(matches!(cert.reload_if_changed(), ReloadOutcome::Unchanged));

        write_pair(dir.path(), &b.cert_pem, &b.key_pem);
        assert!(matches!(cert.reload_if_changed(), ReloadOutcome::Reloaded));
        assert_eq!(cert.leaf_fingerprint(), sha(&b.cert_der));

        // A's certificate with B's key: rejected, B still served, reported once.
        write_pair(dir.path(), &a.cert_pem, &b.key_pem);
        match cert.reload_if_changed() {
            ReloadOutcome::Rejected(TlsError::Mismatch { .. }) => {}
            other => panic!("expected a key mismatch, got {other:?}"),
        }
        assert!(matches!(cert.reload_if_changed(), ReloadOutcome::Unchanged), "same bad contents: not again");
        assert_eq!(cert.leaf_fingerprint(), sha(&b.cert_der));
        assert_eq!((cert.reloads(), cert.reload_errors()), (1, 1));

        write_pair(dir.path(), "garbage", &a.key_pem);
        assert!(matches!(cert.reload_if_changed(), ReloadOutcome::Rejected(TlsError::NoCertificate { .. })));
        assert_eq!(cert.leaf_fingerprint(), sha(&b.cert_der));
    }

    #[test]
    fn an_unusable_pair_at_start_is_an_error() {
        let ca = DevCa::new("tls-test-ca").unwrap();
        let a = ca.issue_server(&["localhost"], &[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let paths = write_pair(
            dir.path(),
            &a.cert_pem,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        let err = ReloadingCert::load(paths, install_crypto_provider()).unwrap_err();
        assert!(matches!(err, TlsError::BadKey { .. }), "{err}");
        let missing = CertPaths { cert: dir.path().join("nope.crt"), key: dir.path().join("nope.key") };
        let err = ReloadingCert::load(missing, install_crypto_provider()).unwrap_err();
        assert!(err.to_string().contains("nope.crt"), "{err}");
    }

    #[test]
    fn server_config_offers_tls12_and_tls13_only() {
        let ca = DevCa::new("tls-test-ca").unwrap();
        let a = ca.issue_server(&["localhost"], &[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let provider = install_crypto_provider();
        let cert =
            ReloadingCert::load(write_pair(dir.path(), &a.cert_pem, &a.key_pem), provider.clone()).unwrap();
        let config = server_config(cert, None, provider).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert!(config.crypto_provider().cipher_suites.iter().all(|s| matches!(
            s.version().version,
            rustls::ProtocolVersion::TLSv1_2 | rustls::ProtocolVersion::TLSv1_3
        )));
    }
}
