//! TLS for the webhook port: rustls with the aws-lc-rs provider only, TLS 1.2 and 1.3, and a certificate
//! that is reloaded from its files while serving.
//!
//! The files are polled by content ([`super::file_watch`]: Kubernetes swaps a mounted Secret's `..data`
//! symlink, which file watches on the certificate itself miss), and a new pair is used only once it parses
//! and its key matches its certificate. A bad pair keeps the last good one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest as _, Sha256};

use super::file_watch::{self, ReadError, ReloadOutcome, ReloadedFile, Reloading};

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

/// The whole of a PEM file, at most [`MAX_PEM_BYTES`].
pub(super) fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    file_watch::read_bounded(path, MAX_PEM_BYTES).map_err(|e| match e {
        ReadError::Io(source) => TlsError::Read { path: path.into(), source },
        ReadError::TooLarge { max } => TlsError::TooLarge { path: path.into(), max },
    })
}

/// Where the serving certificate chain and its key live (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key of the leaf.
    pub key: PathBuf,
}

/// The two files as read.
struct PairPem {
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// Read both files; the SHA-256 is over the contents of both.
fn read_pair(paths: &CertPaths) -> Result<(PairPem, [u8; 32]), TlsError> {
    let pem = PairPem { cert: read_pem(&paths.cert)?, key: read_pem(&paths.key)? };
    let mut h = Sha256::new();
    h.update((pem.cert.len() as u64).to_be_bytes());
    h.update(&pem.cert);
    h.update(&pem.key);
    Ok((pem, h.finalize().into()))
}

fn parse_pair(paths: &CertPaths, provider: &CryptoProvider, pem: PairPem) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(&pem.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate { path: paths.cert.clone(), reason: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: paths.cert.clone() });
    }
    let key = PrivateKeyDer::from_pem_slice(&pem.key)
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

/// The serving certificate: a rustls resolver over an atomically swapped pair, reloaded from its files.
pub struct ReloadingCert {
    paths: CertPaths,
    provider: Arc<CryptoProvider>,
    pair: Reloading<CertifiedKey>,
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
        let (pem, contents) = read_pair(&paths)?;
        let key = parse_pair(&paths, &provider, pem)?;
        Ok(Arc::new(Self { paths, provider, pair: Reloading::new(key, contents) }))
    }

    /// Read the files again and swap in the pair if it changed and is valid.
    pub fn reload_if_changed(&self) -> ReloadOutcome<TlsError> {
        self.pair
            .reload_if_changed(|| read_pair(&self.paths), |pem| parse_pair(&self.paths, &self.provider, pem))
    }

    /// Poll the files every `interval` until the returned task is aborted; logs every change.
    pub fn spawn_watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        file_watch::spawn_reload_watch(self, interval)
    }

    /// Hex SHA-256 of the leaf certificate served now (for logs and tests; not secret).
    pub fn leaf_fingerprint(&self) -> String {
        let current = self.pair.current();
        current.cert.first().map(|c| hex::encode(Sha256::digest(c.as_ref()))).unwrap_or_default()
    }

    /// Successful reloads since start.
    pub fn reloads(&self) -> u64 {
        self.pair.reloads()
    }

    /// Rejected new pairs (or unreadable files) since start.
    pub fn reload_errors(&self) -> u64 {
        self.pair.reload_errors()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pair.current_full())
    }
}

/// The webhook's rustls configuration: aws-lc-rs, TLS 1.3 and 1.2, ALPN h2 and http/1.1; a client
/// certificate that `client_verifier` accepts (the `--client-ca` bundle) required when given, else no
/// client auth.
pub fn server_config(
    cert: Arc<ReloadingCert>,
    client_verifier: Option<Arc<dyn ClientCertVerifier>>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config { reason: e.to_string() })?;
    let builder = match client_verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

impl ReloadedFile for ReloadingCert {
    const WHAT: &'static str = "serving certificate";
    type Error = TlsError;

    fn reload_if_changed(&self) -> ReloadOutcome<TlsError> {
        ReloadingCert::reload_if_changed(self)
    }

    fn path(&self) -> &Path {
        &self.paths.cert
    }

    fn in_force(&self) -> String {
        format!("leaf sha256:{}", self.leaf_fingerprint())
    }
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
