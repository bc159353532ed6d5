//! A TCP proxy of our own to put in front of a real registry on loopback and make it misbehave: pass
//! through, delay, drop, reset, truncate, throttle (HTTP 429 with `Retry-After`), oversized or endless
//! bodies, garbage, flapping, or never answering — switchable at run time with [`FaultProxy::set`].
//!
//! Every connection carries exactly one request: the proxy reads the request head, asks the registry to
//! close after answering (`Connection: close`), and passes the answer back, so a fault chosen when a
//! connection is accepted applies to exactly one request, and [`FaultProxy::connections`] counts requests.
//! Pipelined requests are not supported (HTTP clients do not pipeline).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Largest request head read (the registry client's heads are well under 8 KiB).
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Bytes of garbage written by [`Fault::Garbage`] and [`Fault::GarbageBody`].
const GARBAGE_BYTES: usize = 4096;

/// What the proxy does to the connections it accepts from now on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Pass requests and answers through unchanged.
    PassThrough,
    /// Wait this long after accepting a connection before reading the request, then pass through.
    DelayConnection(Duration),
    /// Pass the request on, and hold the registry's answer back this long before passing it through.
    DelayResponse(Duration),
    /// Read the request and close the connection without answering (a clean FIN).
    Drop,
    /// Read the request and reset the connection (RST: `SO_LINGER` 0).
    Reset,
    /// Pass through, but cut the answer after this many bytes (head included) and close.
    Truncate(usize),
    /// Answer the next `requests` requests with HTTP 429 and this `Retry-After` value, then pass through.
    Throttle {
        /// How many requests are refused.
        requests: u32,
        /// The `Retry-After` header value (delay-seconds or an HTTP date).
        retry_after: String,
    },
    /// Answer HTTP 200 with a manifest media type and an endless body of filler; `declared` is the
    /// `Content-Length` sent (huge, or lying about what follows), none: no length, body until close.
    Oversized {
        /// The `Content-Length` header, if any.
        declared: Option<u64>,
    },
    /// Answer with random bytes that are not HTTP, then close.
    Garbage,
    /// Answer HTTP 200 with a manifest media type and a body of random bytes, then close.
    GarbageBody,
    /// Alternate per connection: the first connection gets `bad`, the next passes through, and so on.
    Flapping(Box<Fault>),
    /// Read the request and never answer (the connection stays open until the client gives up).
    Silent,
}

/// What one connection gets, decided when it is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Pass(Passing),
    Drop,
    Reset,
    Throttled(String),
    Oversized(Option<u64>),
    Garbage,
    GarbageBody,
    Silent,
}

/// How a passed-through request is delayed or cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Passing {
    delay_connection: Duration,
    delay_response: Duration,
    cut_after: Option<usize>,
}

impl Action {
    const PASS: Action = Action::Pass(Passing {
        delay_connection: Duration::ZERO,
        delay_response: Duration::ZERO,
        cut_after: None,
    });

    fn is_fault(&self) -> bool {
        *self != Self::PASS
    }
}

#[derive(Debug)]
struct Mode {
    fault: Fault,
    /// Requests still to be throttled under [`Fault::Throttle`].
    throttle_left: u32,
    /// Connections seen under the current [`Fault::Flapping`].
    flaps: u64,
}

#[derive(Debug)]
struct State {
    upstream: SocketAddr,
    mode: Mutex<Mode>,
    connections: AtomicU64,
    faulted: AtomicU64,
}

impl State {
    fn next_action(&self) -> Action {
        let Ok(mut mode) = self.mode.lock() else { return Action::Reset };
        let fault = match &mode.fault {
            Fault::Flapping(bad) => {
                let bad = (**bad).clone();
                mode.flaps += 1;
                if mode.flaps % 2 == 1 {
                    bad
                } else {
                    Fault::PassThrough
                }
            }
            other => other.clone(),
        };
        match fault {
            Fault::PassThrough | Fault::Flapping(_) => Action::PASS,
            Fault::DelayConnection(d) => Action::Pass(Passing { delay_connection: d, ..Passing::default() }),
            Fault::DelayResponse(d) => Action::Pass(Passing { delay_response: d, ..Passing::default() }),
            Fault::Truncate(n) => Action::Pass(Passing { cut_after: Some(n), ..Passing::default() }),
            Fault::Drop => Action::Drop,
            Fault::Reset => Action::Reset,
            Fault::Throttle { retry_after, .. } => {
                if mode.throttle_left > 0 {
                    mode.throttle_left -= 1;
                    Action::Throttled(retry_after)
                } else {
                    Action::PASS
                }
            }
            Fault::Oversized { declared } => Action::Oversized(declared),
            Fault::Garbage => Action::Garbage,
            Fault::GarbageBody => Action::GarbageBody,
            Fault::Silent => Action::Silent,
        }
    }
}

/// A running fault proxy on 127.0.0.1; stops (and closes every connection it holds) when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
}

impl FaultProxy {
    /// Listen on a free loopback port and pass everything through to `upstream` (e.g. a registry's
    /// `127.0.0.1:PORT`) until told otherwise.
    pub async fn start(upstream: &str) -> anyhow::Result<Self> {
        let upstream: SocketAddr = upstream.parse().with_context(|| format!("upstream {upstream:?}"))?;
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the fault proxy")?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream,
            mode: Mutex::new(Mode { fault: Fault::PassThrough, throttle_left: 0, flaps: 0 }),
            connections: AtomicU64::new(0),
            faulted: AtomicU64::new(0),
        });
        let (shutdown, closed) = watch::channel(false);
        let accept_state = Arc::clone(&state);
        tokio::spawn(async move {
            let mut stop = closed.clone();
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = stop.wait_for(|c| *c) => return,
                };
                let Ok((client, _)) = accepted else {
                    // Out of descriptors, say: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                accept_state.connections.fetch_add(1, Ordering::SeqCst);
                let action = accept_state.next_action();
                if action.is_fault() {
                    accept_state.faulted.fetch_add(1, Ordering::SeqCst);
                }
                let upstream = accept_state.upstream;
                let mut stop = closed.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = serve(client, upstream, action) => {}
                        _ = stop.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        Ok(Self { addr, state, shutdown })
    }

    /// `127.0.0.1:PORT`, usable as the registry part of references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Apply `fault` to connections accepted from now on (a throttle starts counting afresh, flapping
    /// starts with a bad connection).
    pub fn set(&self, fault: Fault) {
        if let Ok(mut mode) = self.state.mode.lock() {
            mode.throttle_left = match &fault {
                Fault::Throttle { requests, .. } => *requests,
                _ => 0,
            };
            mode.flaps = 0;
            mode.fault = fault;
        }
    }

    /// Connections (= requests) accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Connections that got a fault rather than a plain pass-through.
    pub fn faulted(&self) -> u64 {
        self.state.faulted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Handle one accepted connection; errors just end it (the client sees whatever it sees).
async fn serve(mut client: TcpStream, upstream: SocketAddr, action: Action) -> std::io::Result<()> {
    if let Action::Pass(p) = &action {
        tokio::time::sleep(p.delay_connection).await;
    }
    let Some((head, rest)) = read_head(&mut client).await? else { return Ok(()) };
    match action {
        Action::Pass(p) => forward(client, upstream, &head, &rest, p.delay_response, p.cut_after).await,
        Action::Drop => client.shutdown().await,
        Action::Reset => {
            client.set_zero_linger()?;
            drop(client);
            Ok(())
        }
        Action::Silent => {
            // Hold the connection until the client closes it.
            let mut sink = [0u8; 4096];
            while client.read(&mut sink).await? > 0 {}
            Ok(())
        }
        Action::Throttled(retry_after) => {
            let body = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#;
            let answer = format!(
                "HTTP/1.1 429 Too Many Requests\r\nRetry-After: {retry_after}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(answer.as_bytes()).await?;
            client.shutdown().await
        }
        Action::Oversized(declared) => {
            let length = declared.map(|n| format!("Content-Length: {n}\r\n")).unwrap_or_default();
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n{length}\
                 Connection: close\r\n\r\n"
            );
            client.write_all(answer.as_bytes()).await?;
            // Filler until the client stops reading or the declared length is reached.
            let filler = [b' '; 16 * 1024];
            let mut left = declared.unwrap_or(u64::MAX);
            while left > 0 {
                let n = filler.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                client.write_all(&filler[..n]).await?;
                left -= n as u64;
            }
            client.shutdown().await
        }
        Action::Garbage => {
            // Starts with bytes no HTTP status line can start with.
            let mut bytes = vec![0x00, 0xff];
            bytes.extend(random_bytes(GARBAGE_BYTES, head.len() as u64));
            client.write_all(&bytes).await?;
            client.shutdown().await
        }
        Action::GarbageBody => {
            let body = random_bytes(GARBAGE_BYTES, head.len() as u64 + 1);
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            client.write_all(answer.as_bytes()).await?;
            client.write_all(&body).await?;
            client.shutdown().await
        }
    }
}

/// The request head (through the blank line) and whatever body bytes came with it; `None` when the
/// client closed before sending a whole head.
async fn read_head(client: &mut TcpStream) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok(Some((buf, rest)));
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Ok(None);
        }
        let n = client.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The head with any `Connection`/`Keep-Alive` header replaced by `Connection: close`.
fn closing_head(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::with_capacity(text.len() + 20);
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or_default().trim().to_ascii_lowercase();
        if name == "connection" || name == "keep-alive" {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

/// Pass one request to `upstream` and its answer back, delayed and cut as asked.
async fn forward(
    client: TcpStream,
    upstream: SocketAddr,
    head: &[u8],
    rest: &[u8],
    delay_response: Duration,
    cut_after: Option<usize>,
) -> std::io::Result<()> {
    let Ok(server) = TcpStream::connect(upstream).await else {
        // Registry down behind the proxy: the client sees the connection closed without an answer.
        let mut client = client;
        return client.shutdown().await;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    server_write.write_all(&closing_head(head)).await?;
    server_write.write_all(rest).await?;
    // The rest of a request body (pushes), copied while the answer comes back.
    let body = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
    });
    let mut sent = 0usize;
    let mut first = true;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = server_read.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        if first {
            tokio::time::sleep(delay_response).await;
            first = false;
        }
        let take = cut_after.map_or(n, |cut| n.min(cut.saturating_sub(sent)));
        client_write.write_all(&chunk[..take]).await?;
        sent += take;
        if cut_after.is_some_and(|cut| sent >= cut) {
            break;
        }
    }
    body.abort();
    client_write.shutdown().await
}

/// Deterministic pseudo-random bytes (xorshift64*), different per `seed`.
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_asks_for_close() {
        let head = b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\n\r\n";
        assert_eq!(closing_head(head), b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec());
    }

    #[test]
    fn flapping_alternates_and_throttling_runs_out() {
        let state = State {
            upstream: "127.0.0.1:1".parse().unwrap(),
            mode: Mutex::new(Mode {
                fault: Fault::Flapping(Box::new(Fault::Reset)),
                throttle_left: 0,
                flaps: 0,
            }),
            connections: AtomicU64::new(0),
            faulted: AtomicU64::new(0),
        };
        let got: Vec<_> = (0..4).map(|_| state.next_action()).collect();
        assert_eq!(got, vec![Action::Reset, Action::PASS, Action::Reset, Action::PASS]);
        *state.mode.lock().unwrap() = Mode {
            fault: Fault::Throttle { requests: 2, retry_after: "1".into() },
            throttle_left: 2,
            flaps: 0,
        };
        let got: Vec<_> = (0..3).map(|_| state.next_action()).collect();
        assert_eq!(got, vec![Action::Throttled("1".into()), Action::Throttled("1".into()), Action::PASS]);
    }
}
