//! How tough fetches: over vouch's reqwest (rustls, the same TLS roots as registry access), with a
//! per-request timeout, no redirect from HTTPS down to HTTP, and plain HTTP only for hosts named as insecure.

use std::time::Duration;

use futures::TryStreamExt;
use tough::{Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

/// A tough [`Transport`] over reqwest.
#[derive(Debug, Clone)]
pub(super) struct HttpsTransport {
    http: reqwest::Client,
    /// `host` or `host:port`, lower case: the only hosts fetched over plain HTTP.
    insecure_hosts: Vec<String>,
}

impl HttpsTransport {
    pub(super) fn new(timeout: Duration, insecure_hosts: &[String]) -> Result<Self, String> {
        let redirects = crate::registry::redirect_policy();
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .timeout(timeout)
            .redirect(redirects)
            .user_agent(concat!("vouch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self { http, insecure_hosts: insecure_hosts.iter().map(|h| normalize_host(h)).collect() })
    }

    /// Whether `url` may be fetched: HTTPS always, HTTP only for a host named as insecure.
    pub(super) fn allows(&self, url: &Url) -> bool {
        match url.scheme() {
            "https" => true,
            "http" => self.insecure_hosts.iter().any(|h| *h == host_of(url)),
            _ => false,
        }
    }
}

/// `host` or `host:port` of a URL, lower case.
pub(super) fn host_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// `http://Host:8080/x` → `host:8080`.
pub(super) fn normalize_host(s: &str) -> String {
    let s = s.trim();
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    s.split('/').next().unwrap_or_default().to_ascii_lowercase()
}

#[tough::async_trait]
impl Transport for HttpsTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        if !self.allows(&url) {
            return Err(TransportError::new(TransportErrorKind::UnsupportedUrlScheme, url));
        }
        let response = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| TransportError::new_with_cause(TransportErrorKind::Other, url.as_str(), e))?;
        let status = response.status();
        // tough ends its walk through N.root.json files on "not found"; mirrors on object stores answer 403.
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::FORBIDDEN {
            return Err(TransportError::new(TransportErrorKind::FileNotFound, url));
        }
        if !status.is_success() {
            return Err(TransportError::new_with_cause(
                TransportErrorKind::Other,
                url.as_str(),
                format!("HTTP {status}"),
            ));
        }
        let stream = response
            .bytes_stream()
            .map_err(move |e| TransportError::new_with_cause(TransportErrorKind::Other, url.as_str(), e));
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_named_hosts() {
        let t = HttpsTransport::new(Duration::from_secs(1), &["http://127.0.0.1:8080/".into()]).unwrap();
        assert!(t.allows(&Url::parse("https://tuf-repo-cdn.sigstore.dev/timestamp.json").unwrap()));
        assert!(t.allows(&Url::parse("http://127.0.0.1:8080/timestamp.json").unwrap()));
        assert!(!t.allows(&Url::parse("http://127.0.0.1:8081/timestamp.json").unwrap()));
        assert!(!t.allows(&Url::parse("http://tuf-repo-cdn.sigstore.dev/timestamp.json").unwrap()));
        assert!(!t.allows(&Url::parse("file:///etc/passwd").unwrap()));
    }
}
