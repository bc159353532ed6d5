//! A TUF repository made by python-tuf (the reference implementation, driven by `attest/tests/tuf/repo.py`)
//! and served on loopback by `python3 -m http.server`, for the TUF tests of attest and webhooks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vouch_attest::tuf::TufConfig;

/// The python-tuf driver (relative to either crate: `attest/..` and `webhooks/..` are the workspace).
fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../attest/tests/tuf/repo.py")
}

/// Whether python-tuf can be used; outside CI its absence skips the tests (saying so), under CI it fails.
pub fn python_tuf() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import tuf.api.metadata, securesystemslib.signer"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "python-tuf is missing under CI: scripts/setup.sh installs it"
        );
        eprintln!("skipping: python3 cannot import tuf (pip install tuf)");
    }
    ok
}

/// A python-tuf repository and the HTTP server that serves it on loopback.
pub struct Mirror {
    dir: tempfile::TempDir,
    port: u16,
    server: Option<Child>,
}

impl Mirror {
    /// A repository whose first trusted_root.json is `target`, served on a free loopback port.
    pub fn start(target: &[u8]) -> Option<Self> {
        if !python_tuf() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("initial.trusted_root.json");
        std::fs::write(&file, target).unwrap();
        let mut mirror = Self { dir, port: 0, server: None };
        mirror.run("init", Some(&file));
        mirror.serve();
        Some(mirror)
    }

    pub fn serve(&mut self) {
        self.port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let server = Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1", &self.port.to_string(), "--directory"])
            .arg(self.dir.path().join("repo"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.server = Some(server);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "http.server did not start on port {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    /// One of repo.py's commands.
    pub fn run(&self, command: &str, arg: Option<&Path>) {
        let mut cmd = Command::new("python3");
        cmd.arg(script()).arg(self.dir.path()).arg(command);
        if let Some(a) = arg {
            cmd.arg(a);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "repo.py {command}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Publish `target` as the new trusted_root.json.
    pub fn publish(&self, target: &[u8]) {
        let file = self.dir.path().join("next.trusted_root.json");
        std::fs::write(&file, target).unwrap();
        self.run("publish", Some(&file));
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT` (for `--insecure-registry`).
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where the repository's first root.json is (for `--tuf-root`).
    pub fn anchor_path(&self) -> std::path::PathBuf {
        self.dir.path().join("repo/1.root.json")
    }

    /// The repository's working directory (keys, metadata, `repo/` as served).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The repository's first root.json: the anchor a client is shipped with.
    pub fn anchor(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("repo/1.root.json")).unwrap()
    }

    pub fn config(&self, cache: &Path) -> TufConfig {
        TufConfig {
            mirror: self.url(),
            root: self.anchor(),
            target: "trusted_root.json".into(),
            cache_dir: cache.to_owned(),
            timeout: Duration::from_secs(10),
            insecure_hosts: vec![format!("127.0.0.1:{}", self.port)],
        }
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        self.stop();
    }
}
