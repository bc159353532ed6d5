//! Shared by the server integration tests and the benchmark: a minimal HTTP/1.1 client over rustls
//! (aws-lc-rs) trusting one test CA, that also reports which certificate the server presented.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A client trusting exactly `ca_der`.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    addr: SocketAddr,
}

/// One HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

impl TlsClient {
    /// A client for `addr` trusting `ca_der` only.
    pub fn new(ca_der: &[u8], addr: SocketAddr) -> Self {
        Self::build(ca_der, addr, None)
    }

    /// [`Self::new`], presenting a client certificate (PEM chain and PKCS#8 key), as the API server does
    /// to a webhook that requires one.
    pub fn with_client_cert(ca_der: &[u8], addr: SocketAddr, cert_pem: &str, key_pem: &str) -> Self {
        Self::build(ca_der, addr, Some((cert_pem, key_pem)))
    }

    fn build(ca_der: &[u8], addr: SocketAddr, client: Option<(&str, &str)>) -> Self {
        use rustls::pki_types::pem::PemObject as _;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca_der.to_vec())).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some((cert_pem, key_pem)) => {
                let chain =
                    CertificateDer::pem_slice_iter(cert_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
                let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Every connection does a full handshake, so it sees the certificate served now (a resumed
        // session would report the certificate of the session it resumes).
        config.resumption = rustls::client::Resumption::disabled();
        Self { connector: TlsConnector::from(Arc::new(config)), addr }
    }

    /// Open a connection (handshake included); returns it with the leaf certificate the server showed.
    pub async fn connect(&self) -> anyhow::Result<(Conn, Vec<u8>)> {
        let tcp = TcpStream::connect(self.addr).await.context("connecting")?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("localhost").unwrap();
        let tls = self.connector.connect(name, tcp).await.context("TLS handshake")?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default();
        Ok((Conn { tls, buf: Vec::new() }, leaf))
    }

    /// One request on a fresh connection; returns the response and the leaf certificate.
    pub async fn post(&self, path: &str, body: &[u8]) -> anyhow::Result<(HttpResponse, Vec<u8>)> {
        self.post_with_headers(path, &[], body).await
    }

    /// [`Self::post`] with extra request headers (e.g. `traceparent`).
    pub async fn post_with_headers(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<(HttpResponse, Vec<u8>)> {
        let (mut conn, leaf) = self.connect().await?;
        let r = conn.post_with_headers(path, headers, body).await?;
        Ok((r, leaf))
    }
}

/// A kept-alive HTTP/1.1 connection.
pub struct Conn {
    tls: TlsStream<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    /// POST `body` (JSON) to `path` and read one response (Content-Length framed).
    pub async fn post(&mut self, path: &str, body: &[u8]) -> anyhow::Result<HttpResponse> {
        self.post_with_headers(path, &[], body).await
    }

    /// [`Self::post`] with extra request headers.
    pub async fn post_with_headers(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<HttpResponse> {
        let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        );
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        self.tls.write_all(&request).await?;
        self.tls.flush().await?;
        self.read_response().await
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.tls.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed mid-response");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn read_response(&mut self) -> anyhow::Result<HttpResponse> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status: u16 = head.split(' ').nth(1).context("status line")?.parse()?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse().ok())?
            })
            .context("response without Content-Length")?;
        while self.buf.len() < head_end + length {
            self.fill().await?;
        }
        let body = self.buf[head_end..head_end + length].to_vec();
        self.buf.drain(..head_end + length);
        Ok(HttpResponse { status, body })
    }
}

/// GET `path` over plain HTTP/1.0 (the health port); returns status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await?;
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status: u16 = text.split(' ').nth(1).context("status line")?.parse()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

/// An AdmissionReview fixture with `REGISTRY_HOST` replaced by `host`.
pub fn fixture(name: &str, host: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/admission/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap().replace("REGISTRY_HOST", host).into_bytes()
}

/// A directory laid out as kubelet lays out a Secret volume: `..<version>/` with the files, `..data` a
/// symlink to it, and `tls.crt` / `tls.key` symlinks through `..data`.
pub struct SecretVolume {
    pub dir: tempfile::TempDir,
    version: usize,
}

impl SecretVolume {
    /// A volume holding `cert` and `key`.
    pub fn new(cert: &str, key: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut v = Self { dir, version: 0 };
        v.update(cert, key);
        std::os::unix::fs::symlink("..data/tls.crt", v.dir.path().join("tls.crt")).unwrap();
        std::os::unix::fs::symlink("..data/tls.key", v.dir.path().join("tls.key")).unwrap();
        v
    }

    /// Publish a new pair the way kubelet does: a new timestamped directory, then an atomic rename of a
    /// fresh symlink over `..data`, then removal of the old directory.
    pub fn update(&mut self, cert: &str, key: &str) {
        self.version += 1;
        let name = format!("..2026_11_22_01_00_{:02}.{}", self.version, 1000 + self.version);
        let versioned = self.dir.path().join(&name);
        std::fs::create_dir(&versioned).unwrap();
        std::fs::write(versioned.join("tls.crt"), cert).unwrap();
        std::fs::write(versioned.join("tls.key"), key).unwrap();
        let tmp = self.dir.path().join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        let old = std::fs::read_link(self.dir.path().join("..data")).ok();
        std::fs::rename(&tmp, self.dir.path().join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.dir.path().join(old)).unwrap();
        }
    }

    /// The certificate path as configured (through the symlinks).
    pub fn cert(&self) -> std::path::PathBuf {
        self.dir.path().join("tls.crt")
    }

    /// The key path as configured.
    pub fn key(&self) -> std::path::PathBuf {
        self.dir.path().join("tls.key")
    }
}

/// What `vouch serve` reads from disk in a test: a serving certificate for `localhost` issued by a fresh
/// test CA (`tls.crt`, `tls.key`) and an empty `policies/` directory, in a temporary directory.
pub struct ServerFiles {
    /// The test CA (clients trust `ca.cert_der()`).
    pub ca: vouch_webhooks::server::dev_pki::DevCa,
    /// The temporary directory holding it all.
    pub dir: tempfile::TempDir,
}

impl ServerFiles {
    /// Issue the certificate (CA named `ca_name`) and create `policies/`.
    pub fn new(ca_name: &str) -> Self {
        let ca = vouch_webhooks::server::dev_pki::DevCa::new(ca_name).unwrap();
        let pair = ca.issue_server(&["localhost"], &[]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tls.crt"), &pair.cert_pem).unwrap();
        std::fs::write(dir.path().join("tls.key"), &pair.key_pem).unwrap();
        std::fs::create_dir(dir.path().join("policies")).unwrap();
        Self { ca, dir }
    }

    /// The serving certificate's paths.
    pub fn tls(&self) -> vouch_webhooks::server::tls::CertPaths {
        vouch_webhooks::server::tls::CertPaths {
            cert: self.dir.path().join("tls.crt"),
            key: self.dir.path().join("tls.key"),
        }
    }

    /// The policy directory.
    pub fn policies(&self) -> std::path::PathBuf {
        self.dir.path().join("policies")
    }
}

/// A loopback port free when asked (for a child process to listen on).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Pod CREATE review (tests/data/admission/pod-create.json) named `name`, uid `uid`, with one container
/// running `image`.
pub fn pod_create(host: &str, uid: &str, name: &str, image: &str, dry_run: bool) -> Vec<u8> {
    let mut review: serde_json::Value = serde_json::from_slice(&fixture("pod-create.json", host)).unwrap();
    review["request"]["uid"] = serde_json::json!(uid);
    review["request"]["name"] = serde_json::json!(name);
    review["request"]["dryRun"] = serde_json::json!(dry_run);
    review["request"]["object"]["metadata"]["name"] = serde_json::json!(name);
    review["request"]["object"]["spec"]["containers"][0]["image"] = serde_json::json!(image);
    serde_json::to_vec(&review).unwrap()
}

/// The loopback registry with `demo/app:1.0` signed by a fresh key and `demo/unsigned:1.0` not, and server
/// files (CA named `ca`) whose policy `prod-signed` requires that key's signature.
pub struct SignedAndUnsigned {
    pub registry: vouch_webhooks::dev_registry::DevRegistry,
    pub host: String,
    /// `<host>/demo/app:1.0`.
    pub signed: String,
    /// `<host>/demo/unsigned:1.0`.
    pub unsigned: String,
    pub files: ServerFiles,
}

impl SignedAndUnsigned {
    pub async fn start(ca: &str) -> Self {
        use vouch_webhooks::cli::demo::push_demo_image;
        let registry = vouch_webhooks::dev_registry::DevRegistry::start().await.unwrap();
        let host = registry.host();
        let client = registry.client().unwrap();
        let app = push_demo_image(&client, &host, "demo/app", "1.0", b"signed app\n").await.unwrap();
        push_demo_image(&client, &host, "demo/unsigned", "1.0", b"nobody signed me\n").await.unwrap();
        let key = vouch_attest::SigningKey::generate();
        vouch_attest::cosign::sign_image_with_key(&client, &app, &key, Default::default()).await.unwrap();
        let files = ServerFiles::new(ca);
        let policy = vouch_webhooks::cli::demo_webhook::key_policy("prod-signed", "cosign-prod", &host, &key);
        std::fs::write(files.policies().join("prod-signed.yaml"), policy).unwrap();
        let signed = format!("{host}/demo/app:1.0");
        let unsigned = format!("{host}/demo/unsigned:1.0");
        Self { registry, host, signed, unsigned, files }
    }
}

/// A child process (a `vouch serve`), killed when dropped: a failing test must not leave it running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
