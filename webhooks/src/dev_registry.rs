//! A real OCI registry on loopback for tests, demos and the quickstart: Debian's `docker-registry`
//! (the CNCF distribution registry v2) started on a free 127.0.0.1 port with a temporary configuration,
//! filesystem storage in a temporary directory and, optionally, htpasswd basic auth.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// Environment variable naming the registry binary to use.
pub const REGISTRY_BINARY_ENV: &str = "VOUCH_DOCKER_REGISTRY";
/// Where Debian's package installs the registry.
const DEBIAN_REGISTRY_BINARY: &str = "/usr/bin/docker-registry";
/// How long the registry may take to answer `GET /v2/` after start.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Ports tried before giving up (another process may grab the free port we picked).
const START_ATTEMPTS: usize = 3;
/// [`DevRegistry::settle`]: the log is settled once it has not grown for this long.
pub const SETTLE_QUIET: Duration = Duration::from_millis(500);
/// [`DevRegistry::settle`] gives up after this long.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(10);

/// A running `docker-registry` on 127.0.0.1; the process is killed when this is dropped.
#[derive(Debug)]
pub struct DevRegistry {
    child: Option<Child>,
    port: u16,
    log_path: PathBuf,
    // Kept for its Drop: removes storage, config, htpasswd and log.
    _dir: tempfile::TempDir,
}

impl DevRegistry {
    /// Start a registry that allows anonymous pull and push; returns once `GET /v2/` answers.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_inner(None).await
    }

    /// Start a registry that requires HTTP basic auth with `user` and `pass` (htpasswd, bcrypt).
    pub async fn start_with_basic_auth(user: &str, pass: &str) -> anyhow::Result<Self> {
        if user.is_empty() || user.contains(':') || user.contains('\n') {
            bail!("user name {user:?} cannot go into an htpasswd file");
        }
        let hash = bcrypt::hash(pass, 5).context("hashing the registry password")?;
        Self::start_inner(Some(format!("{user}:{hash}\n"))).await
    }

    /// Registry access that may use plain HTTP to this registry, and to no other.
    pub fn registry_config(&self) -> vouch_attest::registry::RegistryConfig {
        vouch_attest::registry::RegistryConfig {
            insecure_registries: vec![self.host()],
            ..vouch_attest::registry::RegistryConfig::default()
        }
    }

    /// A client of this registry (see [`Self::registry_config`]).
    pub fn client(&self) -> anyhow::Result<vouch_attest::registry::RegistryClient> {
        Ok(vouch_attest::registry::RegistryClient::new(self.registry_config())?)
    }

    /// `127.0.0.1:PORT`, usable as the registry part of references.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Everything the registry has logged so far (stdout and stderr).
    pub fn access_log(&self) -> String {
        std::fs::read(&self.log_path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// How many requests with this method and a path containing `path_contains` the registry served,
    /// counted from its access log lines (`"GET /v2/... HTTP/1.1" 200 ...`).
    pub fn count_requests(&self, method: &str, path_contains: &str) -> usize {
        count_in_log(&self.access_log(), method, path_contains)
    }

    /// Waits until the log has not grown for [`SETTLE_QUIET`] (polled every 50 ms), at most
    /// [`SETTLE_LIMIT`]; returns whether it settled. The registry writes a request's access line once it
    /// has answered, so a count taken as soon as the client has the last answer can miss requests.
    #[must_use = "a log still growing gives a count too low"]
    pub async fn settle(&self) -> bool {
        let size = || std::fs::metadata(&self.log_path).map_or(0, |m| m.len());
        let started = Instant::now();
        let (mut last, mut since) = (size(), Instant::now());
        while started.elapsed() < SETTLE_LIMIT {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = size();
            if now != last {
                (last, since) = (now, Instant::now());
            } else if since.elapsed() >= SETTLE_QUIET {
                return true;
            }
        }
        false
    }

    /// Kill the registry now (for "registry down" tests); idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine: either way it is not running afterwards.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn start_inner(htpasswd: Option<String>) -> anyhow::Result<Self> {
        let binary = registry_binary()?;
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            match Self::spawn_once(&binary, htpasswd.as_deref()).await {
                Ok(registry) => return Ok(registry),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("registry did not start")))
    }

    async fn spawn_once(binary: &Path, htpasswd: Option<&str>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("vouch-dev-registry-")
            .tempdir()
            .context("creating a temporary directory for the registry")?;
        let port = free_port()?;
        let auth = match htpasswd {
            Some(line) => {
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, line).context("writing htpasswd")?;
                format!("auth:\n  htpasswd:\n    realm: vouch-dev-registry\n    path: {}\n", path.display())
            }
            None => String::new(),
        };
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).context("creating registry storage")?;
        let config = format!(
            "version: 0.1\n\
             log:\n  level: info\n  formatter: text\n\
             storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
             \x20 maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: vouch-dev-registry-{port}\n{auth}",
            storage = storage.display(),
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).context("writing registry config")?;
        let log_path = dir.path().join("registry.log");
        let log = File::create(&log_path).context("creating registry log")?;
        let log_err = log.try_clone().context("sharing registry log")?;

        let mut command = Command::new(binary);
        command.arg("serve").arg(&config_path).stdin(Stdio::null()).stdout(log).stderr(log_err);
        // REGISTRY_* variables override the config file: keep the caller's environment out.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("REGISTRY_") {
                command.env_remove(&name);
            }
        }
        let child = command.spawn().with_context(|| format!("starting {}", binary.display()))?;
        let mut registry = Self { child: Some(child), port, log_path, _dir: dir };
        registry.wait_until_ready().await?;
        Ok(registry)
    }

    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().context("checking the registry process")? {
                    self.child = None;
                    bail!("registry exited with {status} before answering; its log:\n{}", self.access_log());
                }
            }
            let probe =
                tokio::task::spawn_blocking(move || probe_v2(addr)).await.context("probing the registry")?;
            if probe {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                self.stop();
                bail!(
                    "registry did not answer GET /v2/ within {START_TIMEOUT:?}; its log:\n{}",
                    self.access_log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for DevRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `VOUCH_DOCKER_REGISTRY`, else `docker-registry` on PATH, else Debian's location.
fn registry_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(REGISTRY_BINARY_ENV) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        bail!("{REGISTRY_BINARY_ENV}={} is not a file", path.display());
    }
    if let Some(paths) = std::env::var_os("PATH") {
        if let Some(found) =
            std::env::split_paths(&paths).map(|dir| dir.join("docker-registry")).find(|p| p.is_file())
        {
            return Ok(found);
        }
    }
    let debian = PathBuf::from(DEBIAN_REGISTRY_BINARY);
    if debian.is_file() {
        return Ok(debian);
    }
    bail!(
        "docker-registry not found (set {REGISTRY_BINARY_ENV}, put it on PATH, or `apt-get install docker-registry`)"
    )
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free loopback port")?;
    Ok(listener.local_addr().context("reading the free port")?.port())
}

/// Whether an HTTP server answers `GET /v2/` with 200 or 401 (auth required) on `addr`.
fn probe_v2(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let request =
        format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: vouch-dev-registry-probe\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    if stream.read_exact(&mut head).is_err() {
        return false;
    }
    head.starts_with(b"HTTP/1.") && (head.ends_with(b"200") || head.ends_with(b"401"))
}

/// Count access-log request lines (`"METHOD PATH HTTP/x"`) with `method` whose path contains `path_contains`.
fn count_in_log(log: &str, method: &str, path_contains: &str) -> usize {
    let needle = format!("\"{method} ");
    log.lines()
        .filter_map(|line| {
            let start = line.find(&needle)? + needle.len();
            let rest = line.get(start..)?;
            let path = rest.split(' ').next()?;
            // Only Apache-style access lines: the request line ends with the protocol.
            rest.get(path.len()..)?.starts_with(" HTTP/").then_some(path)
        })
        .filter(|path| path.contains(path_contains))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_access_log_lines_by_method_and_path() {
        let log = r#"time="x" level=info msg="response completed" http.request.method=GET http.request.uri="/v2/a/manifests/1"
127.0.0.1 - - [22/Nov/2026:01:00:00 +0000] "GET /v2/a/manifests/1 HTTP/1.1" 200 512 "" "vouch/0.1.0"
127.0.0.1 - - [22/Nov/2026:01:00:00 +0000] "HEAD /v2/a/manifests/1 HTTP/1.1" 200 0 "" "vouch/0.1.0"
127.0.0.1 - - [22/Nov/2026:01:00:01 +0000] "GET /v2/a/blobs/sha256:ab HTTP/1.1" 200 3 "" "vouch/0.1.0"
127.0.0.1 - - [22/Nov/2026:01:00:01 +0000] "GET /v2/ HTTP/1.1" 401 87 "" "probe""#;
        assert_eq!(count_in_log(log, "GET", "/manifests/"), 1);
        assert_eq!(count_in_log(log, "HEAD", "/manifests/"), 1);
        assert_eq!(count_in_log(log, "GET", "/v2/"), 3);
        assert_eq!(count_in_log(log, "PUT", "/v2/"), 0);
    }
}
