//! A kube client answered by kube's tower-test mock: every request recorded (method, path, content type,
//! body) and answered by the test. No API server runs here.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::pin::pin;
use std::sync::{Arc, Mutex};

use axum::http::{Request, Response};
use futures::channel::mpsc;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};

/// One request as the mock saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub content_type: String,
    pub body: Value,
}

impl Seen {
    pub fn path(&self) -> &str {
        self.uri.split('?').next().unwrap()
    }
}

/// What the mock answers: a status and JSON body, or `None` to leave the request hanging (a watch).
pub type Answer = Option<(u16, Value)>;

/// What the mock server answers, watches included.
pub enum Reply {
    /// A status code and a JSON body.
    Json(u16, Value),
    /// Never answered.
    Hang,
    /// A watch: each value sent is one event line (`{"type": ..., "object": ...}`) of an open response.
    Watch(mpsc::UnboundedReceiver<Value>),
}

pub type MockBody = UnsyncBoxBody<Bytes, Infallible>;

/// A kube client whose every request is recorded and answered by `answer`.
pub fn mock_client(
    answer: impl Fn(&Seen) -> Answer + Send + Sync + 'static,
) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    mock_server(move |seen| match answer(seen) {
        Some((code, body)) => Reply::Json(code, body),
        None => Reply::Hang,
    })
}

/// A kube client whose every request is recorded and answered by `reply`, which may stream watch events.
pub fn mock_server(
    reply: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
) -> (Client, Arc<Mutex<Vec<Seen>>>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<MockBody>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut handle = pin!(handle);
        let mut hanging = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let uri = request.uri().to_string();
            let content_type = request
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let bytes = request.into_body().collect().await.unwrap().to_bytes();
            let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
            let seen = Seen { method, uri, content_type, body };
            log.lock().unwrap().push(seen.clone());
            let response = Response::builder().header("content-type", "application/json");
            match reply(&seen) {
                Reply::Json(code, body) => {
                    let body = Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())).boxed_unsync();
                    send.send_response(response.status(code).body(body).unwrap());
                }
                Reply::Watch(events) => {
                    let lines = events.map(|event| {
                        let mut line = serde_json::to_vec(&event).unwrap();
                        line.push(b'\n');
                        Ok::<_, Infallible>(Frame::data(Bytes::from(line)))
                    });
                    send.send_response(
                        response.status(200).body(StreamBody::new(lines).boxed_unsync()).unwrap(),
                    );
                }
                Reply::Hang => hanging.push(send),
            }
        }
    });
    (Client::new(service, "default"), seen)
}

pub fn status_body(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": reason, "reason": reason, "code": code})
}

pub fn not_found() -> Answer {
    Some((404, status_body(404, "NotFound")))
}

pub fn paths(seen: &Arc<Mutex<Vec<Seen>>>) -> Vec<String> {
    seen.lock().unwrap().iter().map(|s| format!("{} {}", s.method, s.path())).collect()
}
