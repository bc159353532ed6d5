//! Receivers written in Python on loopback, for the tests of what vouch sends out: CloudEvents
//! (tests/cloudevents/receiver.py, on the CloudEvents Python SDK) and OTLP traces (tests/otlp/receiver.py,
//! decoding with OpenTelemetry's protobuf bindings). A receiver script prints its port, then one JSON line
//! per thing it received.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running receiver: its port, and the lines it printed as they come.
pub struct Receiver {
    child: Child,
    /// Its loopback port.
    pub port: u16,
    lines: mpsc::Receiver<Value>,
}

impl Receiver {
    /// The CloudEvents SDK receiver; `None` (outside CI) when the SDK is not installed.
    pub fn cloudevents() -> Option<Self> {
        Self::start(
            "cloudevents/receiver.py",
            "cloudevents.core.bindings.http",
            "PyPI cloudevents (2.x)",
            &[],
        )
    }

    /// The OTLP/HTTP trace receiver; `None` (outside CI) when the bindings are not installed.
    pub fn otlp() -> Option<Self> {
        Self::otlp_with(&[])
    }

    /// The OTLP/HTTP trace receiver with these environment variables (`RECEIVER_TLS_CERT`,
    /// `RECEIVER_TLS_KEY`, `RECEIVER_CLIENT_CA`: see tests/otlp/receiver.py).
    pub fn otlp_with(env: &[(&str, &str)]) -> Option<Self> {
        Self::start(
            "otlp/receiver.py",
            "opentelemetry.proto.collector.trace.v1.trace_service_pb2",
            "PyPI opentelemetry-proto (and protobuf)",
            env,
        )
    }

    /// Start tests/`script` once `module` imports; `None` outside CI when it does not (scripts/setup.sh
    /// installs `package`); in CI a missing package fails the run instead of skipping.
    fn start(script: &str, module: &str, package: &str, env: &[(&str, &str)]) -> Option<Self> {
        let script = format!("{}/tests/{script}", env!("CARGO_MANIFEST_DIR"));
        let ok = Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            assert!(std::env::var_os("CI").is_none(), "{package} is not installed");
            eprintln!("skipped: {package} not installed; bash scripts/setup.sh");
            return None;
        }
        let mut child = Command::new("python3")
            .arg(script)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout: ChildStdout = child.stdout.take().unwrap();
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        reader.read_line(&mut first).unwrap();
        let port = first.trim().parse().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                    break;
                }
            }
        });
        Some(Self { child, port, lines })
    }

    /// The next line, waiting up to 20 s (a bound on a hang, not a speed requirement).
    pub fn next(&self) -> Value {
        self.lines.recv_timeout(Duration::from_secs(20)).expect("something reaches the receiver")
    }

    /// Nothing arrives within half a second.
    pub fn nothing_more(&self) {
        assert!(self.lines.recv_timeout(Duration::from_millis(500)).is_err(), "nothing further");
    }

    /// Every line received until `done` holds for all of them, waiting up to 30 s in all (a bound on a
    /// hang, not a speed requirement); `Err` with what did come when it never holds. A line with an
    /// `error` (the receiver refused what it got) fails the test.
    pub fn until(&self, done: impl Fn(&[Value]) -> bool) -> Result<Vec<Value>, Vec<Value>> {
        let until = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        while !done(&got) {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    assert!(line.get("error").is_none(), "the receiver refused what it got: {line}");
                    got.push(line);
                }
                Err(_) => return Err(got),
            }
        }
        Ok(got)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
