//! An OTLP/HTTP trace receiver decoding with OpenTelemetry's protobuf bindings (tests/otlp/receiver.py), for
//! the tests of `--otlp-endpoint`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The receiver: its port, and the spans it printed as they come.
pub struct Receiver {
    child: Child,
    /// Its loopback port.
    pub port: u16,
    lines: mpsc::Receiver<Value>,
}

impl Receiver {
    /// Start it; `None` (outside CI) when the bindings are not installed.
    pub fn start() -> Option<Self> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/otlp/receiver.py");
        let ok = Command::new("python3")
            .args(["-c", "import opentelemetry.proto.collector.trace.v1.trace_service_pb2"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            // scripts/setup.sh installs them; in CI missing bindings fail the run instead of skipping.
            assert!(std::env::var_os("CI").is_none(), "PyPI opentelemetry-proto is not installed");
            eprintln!(
                "skipped: PyPI opentelemetry-proto (and protobuf) not installed; bash scripts/setup.sh"
            );
            return None;
        }
        let mut child = Command::new("python3").arg(script).stdout(Stdio::piped()).spawn().unwrap();
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

    /// Every span received until `done` holds for all of them, waiting up to 30 s in all (a bound on a
    /// hang, not a speed requirement); `Err` with what did come when it never holds.
    pub fn spans_until(&self, done: impl Fn(&[Value]) -> bool) -> Result<Vec<Value>, Vec<Value>> {
        let until = Instant::now() + Duration::from_secs(30);
        let mut spans = Vec::new();
        while !done(&spans) {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(span) => {
                    assert!(span.get("error").is_none(), "the receiver refused an export: {span}");
                    spans.push(span);
                }
                Err(_) => return Err(spans),
            }
        }
        Ok(spans)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
