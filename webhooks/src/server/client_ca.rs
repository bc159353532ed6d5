//! Caller authentication on the webhook port (`--client-ca`): only a caller that presents a client
//! certificate issued by one of these CAs completes the TLS handshake, so only it reaches /validate and
//! /mutate. The kube-apiserver presents one when its admission configuration gives a kubeconfig for the
//! webhook (docs/operations.md, "Authenticating the API server"). Without it, anything that can reach the
//! Service can send reviews (docs/threat-model.md).
//!
//! The CA file is polled by content, like the serving certificate ([`super::file_watch`]): a new bundle is
//! used once it parses; a bundle that does not keeps the CAs in force (and is counted and logged).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use sha2::{Digest as _, Sha256};

use super::file_watch::{self, ReloadOutcome, ReloadedFile, Reloading};
use super::tls::{read_pem, TlsError};

/// The verifier in force and how many CA certificates it trusts.
struct InForce {
    verifier: Arc<dyn ClientCertVerifier>,
    cas: u64,
}

/// Client certificate verification against a CA bundle reloaded from its file.
pub struct ReloadingClientCa {
    path: PathBuf,
    provider: Arc<CryptoProvider>,
    bundle: Reloading<InForce>,
}

impl std::fmt::Debug for ReloadingClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingClientCa").field("path", &self.path).field("cas", &self.cas()).finish()
    }
}

/// The file's PEM and its SHA-256.
fn read_bundle(path: &Path) -> Result<(Vec<u8>, [u8; 32]), TlsError> {
    let pem = read_pem(path)?;
    let contents = Sha256::digest(&pem).into();
    Ok((pem, contents))
}

/// A verifier for the CA certificates in `pem`, and how many there are.
fn parse_bundle(path: &Path, pem: &[u8], provider: &Arc<CryptoProvider>) -> Result<InForce, TlsError> {
    let bad = |reason: String| TlsError::BadCertificate { path: path.into(), reason };
    let certs =
        CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.into() });
    }
    let count = certs.len() as u64;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| TlsError::Config { reason: format!("{}: {e}", path.display()) })?;
    Ok(InForce { verifier, cas: count })
}

impl ReloadingClientCa {
    /// Load the bundle now; an unusable bundle at start is an error (nothing to fall back on).
    pub fn load(path: PathBuf, provider: Arc<CryptoProvider>) -> Result<Arc<Self>, TlsError> {
        let (pem, contents) = read_bundle(&path)?;
        let in_force = parse_bundle(&path, &pem, &provider)?;
        Ok(Arc::new(Self { path, provider, bundle: Reloading::new(in_force, contents) }))
    }

    /// Read the file again and use the bundle if it changed and parses.
    pub fn reload_if_changed(&self) -> ReloadOutcome<TlsError> {
        self.bundle.reload_if_changed(
            || read_bundle(&self.path),
            |pem| parse_bundle(&self.path, &pem, &self.provider),
        )
    }

    /// Poll the file every `interval` until the returned task is aborted; logs every change.
    pub fn spawn_watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        file_watch::spawn_reload_watch(self, interval)
    }

    /// CA certificates in force.
    pub fn cas(&self) -> u64 {
        self.bundle.current().cas
    }

    /// Successful reloads since start.
    pub fn reloads(&self) -> u64 {
        self.bundle.reloads()
    }

    /// Rejected new bundles (or unreadable files) since start.
    pub fn reload_errors(&self) -> u64 {
        self.bundle.reload_errors()
    }
}

impl ReloadedFile for ReloadingClientCa {
    const WHAT: &'static str = "client CA bundle";
    type Error = TlsError;

    fn reload_if_changed(&self) -> ReloadOutcome<TlsError> {
        ReloadingClientCa::reload_if_changed(self)
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn in_force(&self) -> String {
        format!("{} CA certificate(s)", self.cas())
    }
}

impl ClientCertVerifier for ReloadingClientCa {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// No hints: a client picks its certificate by the hints when there are any (Go's crypto/tls sends
    /// none if none matches), and a bundle reloaded since the hint would turn away a valid caller.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.bundle.current().verifier.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.bundle.current().verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.bundle.current().verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.bundle.current().verifier.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::dev_pki::DevCa;

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::aws_lc_rs::default_provider())
    }

    fn verify(ca: &ReloadingClientCa, leaf_der: &[u8]) -> Result<ClientCertVerified, rustls::Error> {
        ca.verify_client_cert(&CertificateDer::from(leaf_der.to_vec()), &[], UnixTime::now())
    }

    #[test]
    fn accepts_its_cas_clients_only_and_reloads_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client-ca.crt");
        let (apiserver_ca, other_ca) = (DevCa::new("apiserver-ca").unwrap(), DevCa::new("other").unwrap());
        std::fs::write(&path, apiserver_ca.cert_pem()).unwrap();
        let ca = ReloadingClientCa::load(path.clone(), provider()).unwrap();
        let apiserver = apiserver_ca.issue_client("kube-apiserver").unwrap();
        let stranger = other_ca.issue_client("kube-apiserver").unwrap();
        assert!(verify(&ca, &apiserver.cert_der).is_ok());
        assert!(verify(&ca, &stranger.cert_der).is_err(), "another CA's client");
        let server_cert = apiserver_ca.issue_server(&["localhost"], &[]).unwrap();
        assert!(verify(&ca, &server_cert.cert_der).is_err(), "a serving certificate is not a client's");
        assert!(matches!(ca.reload_if_changed(), ReloadOutcome::Unchanged));

        // Garbage: refused once, the CAs in force stay.
        std::fs::write(&path, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
            .unwrap();
        assert!(matches!(ca.reload_if_changed(), ReloadOutcome::Rejected(_)));
        assert!(matches!(ca.reload_if_changed(), ReloadOutcome::Unchanged), "reported once");
        assert!(verify(&ca, &apiserver.cert_der).is_ok());
        std::fs::write(&path, "").unwrap();
        assert!(matches!(ca.reload_if_changed(), ReloadOutcome::Rejected(TlsError::NoCertificate { .. })));

        // Rotation to a bundle of both CAs, then to the other CA only.
        std::fs::write(&path, apiserver_ca.cert_pem() + &other_ca.cert_pem()).unwrap();
        assert!(matches!(ca.reload_if_changed(), ReloadOutcome::Reloaded));
        assert_eq!(ca.cas(), 2);
        assert!(verify(&ca, &apiserver.cert_der).is_ok() && verify(&ca, &stranger.cert_der).is_ok());
        std::fs::write(&path, other_ca.cert_pem()).unwrap();
        assert!(matches!(ca.reload_if_changed(), ReloadOutcome::Reloaded));
        assert!(verify(&ca, &apiserver.cert_der).is_err() && verify(&ca, &stranger.cert_der).is_ok());
        assert_eq!((ca.reloads(), ca.reload_errors()), (2, 2));
    }

    #[test]
    fn an_unusable_bundle_at_start_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        assert!(matches!(ReloadingClientCa::load(path.clone(), provider()), Err(TlsError::Read { .. })));
        std::fs::write(&path, "no PEM here").unwrap();
        let e = ReloadingClientCa::load(path, provider()).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate found"), "{e}");
    }
}
