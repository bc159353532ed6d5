//! A real `redis-server` (Debian's package) on a free 127.0.0.1 port for the shared-cache tests and
//! benches: no persistence (`--save '' --appendonly no`), killed when dropped; optionally serving TLS too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// Environment variable naming the redis-server binary to use.
pub const REDIS_BINARY_ENV: &str = "VOUCH_REDIS_SERVER";
/// How long the server may take to answer PING after start.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Ports tried before giving up (another process may grab the free port we picked).
const START_ATTEMPTS: usize = 3;

/// A running `redis-server` on 127.0.0.1.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    tls: Option<Tls>,
    _dir: tempfile::TempDir,
}

/// TLS beside the plain port: the server's certificate and key files, and the TLS port.
#[derive(Debug, Clone)]
struct Tls {
    cert: PathBuf,
    key: PathBuf,
    port: u16,
}

impl RedisServer {
    /// Start one; returns once it answers PING.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(None)
    }

    /// Start one that also serves TLS with the certificate and key in these PEM files (clients are not
    /// asked for certificates); [`Self::tls_url`] names it.
    pub fn start_tls(cert: PathBuf, key: PathBuf) -> anyhow::Result<Self> {
        Self::start_with(Some((cert, key)))
    }

    fn start_with(tls: Option<(PathBuf, PathBuf)>) -> anyhow::Result<Self> {
        let binary = redis_binary()?;
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            let tls = match &tls {
                Some((cert, key)) => Some(Tls { cert: cert.clone(), key: key.clone(), port: free_port()? }),
                None => None,
            };
            match Self::spawn_once(&binary, tls) {
                Ok(server) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `rediss://127.0.0.1:TLS_PORT`, when started with [`Self::start_tls`].
    pub fn tls_url(&self) -> Option<String> {
        self.tls.as_ref().map(|t| format!("rediss://127.0.0.1:{}", t.port))
    }

    /// Kill the server now (Redis down, Redis killed mid-use); idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start a killed server again on the same port (empty: nothing was persisted).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let dir = tempfile::Builder::new().prefix("vouch-redis-").tempdir().context("temporary directory")?;
        let restarted = Self::spawn_on(&redis_binary()?, self.port, self.tls.clone(), dir)?;
        *self = restarted;
        Ok(())
    }

    fn spawn_once(binary: &PathBuf, tls: Option<Tls>) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("vouch-redis-").tempdir().context("temporary directory")?;
        Self::spawn_on(binary, free_port()?, tls, dir)
    }

    fn spawn_on(
        binary: &PathBuf,
        port: u16,
        tls: Option<Tls>,
        dir: tempfile::TempDir,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "yes", "--dir"])
            .arg(dir.path());
        if let Some(t) = &tls {
            command.args(["--tls-port", &t.port.to_string(), "--tls-auth-clients", "no", "--tls-cert-file"]);
            command.arg(&t.cert).arg("--tls-key-file").arg(&t.key);
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut server = Self { child: Some(child), port, tls, _dir: dir };
        let started = Instant::now();
        loop {
            if let Some(status) = server.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                server.child = None;
                bail!("redis-server exited with {status} before answering PING (port {port} taken?)");
            }
            if ping(port) {
                return Ok(server);
            }
            if started.elapsed() > START_TIMEOUT {
                server.kill();
                bail!("redis-server did not answer PING within {START_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr())?.port())
}

fn ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// `VOUCH_REDIS_SERVER`, else `redis-server` as Debian installs it.
fn redis_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os(REDIS_BINARY_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/redis-server"));
    if !path.is_file() {
        bail!(
            "{} not found: install Debian's redis-server (scripts/setup.sh) or set {REDIS_BINARY_ENV}",
            path.display()
        );
    }
    Ok(path)
}
