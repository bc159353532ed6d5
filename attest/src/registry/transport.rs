//! HTTP to registries: requests with token authentication, bounded retries within one time budget,
//! capped bodies, and failures named by what went wrong. What the requests mean is the `remote` module's.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::RegistryOperation;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};

use super::error::protocol;
use super::pacer::pace;
use super::{Credentials, RegistryAuth, RegistryConfig, RegistryError};
use crate::digest::Digest;
use crate::reference::ArtifactRef;

/// How long a registry token (or the knowledge that none is needed) is reused; registries issue tokens
/// for 60 s at least (distribution's minimum), so this never sends an expired one.
const AUTH_REUSE: Duration = Duration::from_secs(50);
/// Repositories whose authorization is remembered at most.
const MAX_CACHED_AUTH: usize = 4096;
/// First backoff between retries; doubled each time, at most [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Redirects followed at most (blob downloads redirect to storage).
const MAX_REDIRECTS: usize = 5;
/// Longest `Retry-After` taken from a registry (the call's own budget usually caps it sooner).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The HTTP side of a registry client: connections, tokens, retries, body limits.
pub(super) struct Transport {
    config: RegistryConfig,
    /// oci-client, for its token dance and blob uploads.
    oci: oci_client::Client,
    /// Every other request; shared with transports derived by [`Transport::with_credentials`].
    http: reqwest::Client,
    auth_cache: Mutex<HashMap<AuthKey, CachedAuth>>,
    counters: Arc<HttpCounters>,
}

/// HTTP requests sent and attempts retried (shared by transports derived from one another).
#[derive(Debug, Default)]
pub(super) struct HttpCounters {
    pub(super) requests: AtomicU64,
    pub(super) retries: AtomicU64,
}

/// A failed HTTP attempt, with the wait the registry asked for (`Retry-After`) on 429 and 503.
pub(super) struct Failed {
    error: RegistryError,
    retry_after: Option<Duration>,
}

impl From<RegistryError> for Failed {
    fn from(error: RegistryError) -> Self {
        Self { error, retry_after: None }
    }
}

/// Whether a request reads or writes (tokens are scoped by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Op {
    Pull,
    Push,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AuthKey {
    registry: String,
    repository: String,
    op: Op,
}

struct CachedAuth {
    header: Option<HeaderValue>,
    until: Instant,
}

/// A registry answer with its body read (within a cap).
pub(super) struct Answer {
    pub(super) status: StatusCode,
    headers: HeaderMap,
    pub(super) body: Vec<u8>,
}

impl Answer {
    /// A header's value, when it is text.
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One HTTP request to make against a repository.
pub(super) struct Req<'a> {
    pub(super) r: &'a ArtifactRef,
    pub(super) op: Op,
    pub(super) method: Method,
    pub(super) url: String,
    pub(super) accept: Option<String>,
    pub(super) body: Option<(Vec<u8>, String)>,
    /// Largest body read.
    pub(super) limit: usize,
    /// What is read, for a too-large error.
    pub(super) what: String,
}

impl Transport {
    /// Build the HTTP clients; fails only on an unusable TLS or HTTP configuration. Insecure registries
    /// are normalised (`http://Host:5000/` → `host:5000`).
    pub(super) fn new(config: RegistryConfig) -> Result<Self, RegistryError> {
        let insecure: Vec<String> = config.insecure_registries.iter().map(|r| normalize_host(r)).collect();
        let config = RegistryConfig { insecure_registries: insecure, ..config };
        let oci = oci_client_for(&config)?;
        let redirects = redirect_policy();
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .read_timeout(config.timeout)
            .redirect(redirects)
            .user_agent(concat!("vouch/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RegistryError::Config { reason: e.to_string() })?;
        Ok(Self::from_parts(config, oci, http, Arc::default()))
    }

    fn from_parts(
        config: RegistryConfig,
        oci: oci_client::Client,
        http: reqwest::Client,
        counters: Arc<HttpCounters>,
    ) -> Self {
        Self { config, oci, http, auth_cache: Mutex::new(HashMap::new()), counters }
    }

    /// A transport using `credentials` instead of the configured ones. It shares this one's connections
    /// and counters, but not its tokens: tokens obtained with one set of credentials are never used for
    /// another.
    pub(super) fn with_credentials(&self, credentials: Credentials) -> Result<Self, RegistryError> {
        let config = RegistryConfig { credentials, ..self.config.clone() };
        let oci = oci_client_for(&config)?;
        Ok(Self::from_parts(config, oci, self.http.clone(), self.counters.clone()))
    }

    /// The configuration in force (insecure registries normalised).
    pub(super) fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// HTTP requests sent and attempts retried so far.
    pub(super) fn counters(&self) -> &HttpCounters {
        &self.counters
    }

    /// Run `attempt` until it succeeds, fails for good, retries run out or the call's time is up.
    pub(super) async fn with_retries<T, F, Fut>(
        &self,
        r: &ArtifactRef,
        idempotent: bool,
        mut attempt: F,
    ) -> Result<T, RegistryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failed>>,
    {
        let budget = self.config.timeout;
        let deadline = tokio::time::Instant::now() + budget;
        let timeout = || RegistryError::Timeout { registry: r.registry().to_owned(), after: budget };
        let mut backoff = FIRST_BACKOFF;
        let mut tries = 0u32;
        loop {
            let result = match tokio::time::timeout_at(deadline, attempt()).await {
                Ok(result) => result,
                Err(_) => return Err(timeout()),
            };
            match result {
                Err(Failed { error, retry_after })
                    if idempotent && error.is_transient() && tries < self.config.retries =>
                {
                    // The registry's own Retry-After wins over our backoff, but never past the call's budget.
                    let wait = retry_after.map_or(backoff, |asked| asked.max(backoff));
                    if tokio::time::Instant::now() + wait >= deadline {
                        return Err(error);
                    }
                    tries += 1;
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %error, tries, wait_ms = wait.as_millis() as u64, "retrying registry request");
                    tokio::time::sleep(wait).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(failed) => return Err(failed.error),
                Ok(v) => return Ok(v),
            }
        }
    }

    /// One HTTP exchange, authenticated; a 401 with a reused token is retried once with a fresh one.
    pub(super) async fn send(&self, req: Req<'_>) -> Result<Answer, Failed> {
        let (header, reused) = self.authorization(req.r, req.op).await?;
        let ans = self.send_once(&req, header.as_ref()).await?;
        if ans.status == StatusCode::UNAUTHORIZED && reused {
            self.forget_auth(req.r, req.op);
            let (header, _) = self.authorization(req.r, req.op).await?;
            return self.send_once(&req, header.as_ref()).await;
        }
        Ok(ans)
    }

    async fn send_once(&self, req: &Req<'_>, auth: Option<&HeaderValue>) -> Result<Answer, Failed> {
        use tracing::Instrument as _;
        let span = request_span(&req.method, &req.url);
        let sent = self.exchange(req, auth, &span).instrument(span.clone()).await;
        if let Err(failed) = &sent {
            span.record("error", tracing::field::display(&failed.error));
        }
        sent
    }

    /// [`Self::send_once`] inside its span; records the status code in `span`.
    async fn exchange(
        &self,
        req: &Req<'_>,
        auth: Option<&HeaderValue>,
        span: &tracing::Span,
    ) -> Result<Answer, Failed> {
        self.before_request().await;
        let mut builder = self.http.request(req.method.clone(), &req.url);
        if let Some(a) = auth {
            builder = builder.header(AUTHORIZATION, a.clone());
        }
        if let Some(accept) = &req.accept {
            builder = builder.header(ACCEPT, accept);
        }
        if let Some((body, content_type)) = &req.body {
            builder = builder.header(CONTENT_TYPE, content_type).body(body.clone());
        }
        let mut response = builder.send().await.map_err(|e| self.classify(req.r, &e))?;
        let status = response.status();
        // As i64: tracing-opentelemetry would turn a u64 into text.
        span.record("http.response.status_code", i64::from(status.as_u16()));
        // Server trouble is an error here so that the retry loop sees it.
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            let retry_after =
                matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE)
                    .then(|| response.headers().get(reqwest::header::RETRY_AFTER))
                    .flatten()
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| retry_after(v, chrono::Utc::now()));
            let error = if status == StatusCode::TOO_MANY_REQUESTS {
                RegistryError::Throttled { reference: req.r.to_string(), retry_after }
            } else {
                status_error(req.r, status.as_u16())
            };
            return Err(Failed { error, retry_after });
        }
        let headers = response.headers().clone();
        // Bodies of failures and of HEAD are not needed; only a successful GET's body is read, capped.
        if !status.is_success() || req.method == Method::HEAD || req.method == Method::PUT {
            return Ok(Answer { status, headers, body: Vec::new() });
        }
        let too_large = || Failed::from(RegistryError::TooLarge { what: req.what.clone(), limit: req.limit });
        if response.content_length().is_some_and(|len| len > req.limit as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(req.r, &e))? {
            if body.len() + chunk.len() > req.limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, headers, body })
    }

    /// Count a request about to be sent and, inside a [`paced`](super::paced) scope, wait for its token.
    /// Called once per HTTP attempt (retries and token requests included); an oci-client call (token
    /// dance, upload) counts as one.
    async fn before_request(&self) {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        pace().await;
    }

    /// Upload a blob with oci-client (which authenticates its own requests with the same credentials),
    /// within the call's time budget.
    pub(super) async fn upload_blob(
        &self,
        r: &ArtifactRef,
        bytes: &[u8],
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let oci_ref = oci_reference(r);
        self.before_request().await;
        self.oci.store_auth_if_needed(oci_ref.resolve_registry(), &self.oci_auth(r)).await;
        let digest_text = digest.to_string();
        let upload = self.oci.push_blob(&oci_ref, bytes.to_vec(), &digest_text);
        match tokio::time::timeout(self.config.timeout, upload).await {
            Ok(Ok(_location)) => Ok(()),
            Ok(Err(e)) => Err(map_oci_error(r, e, self.config.timeout)),
            Err(_) => {
                Err(RegistryError::Timeout { registry: r.registry().to_owned(), after: self.config.timeout })
            }
        }
    }

    /// The Authorization header for `r`'s repository (none for anonymous access without a token), and
    /// whether it came from the cache.
    async fn authorization(
        &self,
        r: &ArtifactRef,
        op: Op,
    ) -> Result<(Option<HeaderValue>, bool), RegistryError> {
        let key = AuthKey { registry: r.registry().to_owned(), repository: r.repository().to_owned(), op };
        if let Ok(cache) = self.auth_cache.lock() {
            if let Some(cached) = cache.get(&key).filter(|c| c.until > Instant::now()) {
                return Ok((cached.header.clone(), true));
            }
        }
        let creds = self.config.credentials.for_registry(r.registry());
        let oci_op = match op {
            Op::Pull => RegistryOperation::Pull,
            Op::Push => RegistryOperation::Push,
        };
        self.before_request().await;
        let span = tracing::debug_span!(
            "registry_auth",
            otel.kind = "client",
            registry = r.registry(),
            repository = r.repository(),
            error = tracing::field::Empty,
        );
        let token = {
            use tracing::Instrument as _;
            let token =
                self.oci.auth(&oci_reference(r), &self.oci_auth(r), oci_op).instrument(span.clone()).await;
            token.map_err(|e| map_oci_error(r, e, self.config.timeout)).inspect_err(|e| {
                span.record("error", tracing::field::display(e));
            })?
        };
        let header = match (token, creds) {
            (Some(token), _) | (None, Some(RegistryAuth::Bearer { token })) => {
                Some(format!("Bearer {token}"))
            }
            (None, Some(RegistryAuth::Basic { username, password })) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            (None, None) => None,
        };
        let header = header
            .map(|h| {
                HeaderValue::from_str(&h).map(|mut v| {
                    v.set_sensitive(true);
                    v
                })
            })
            .transpose()
            .map_err(|_| RegistryError::InvalidCredentials {
                reason: format!("credentials for {} are not a valid header", r.registry()),
            })?;
        if let Ok(mut cache) = self.auth_cache.lock() {
            // Bound the cache: drop expired entries, and everything if that is not enough.
            if cache.len() >= MAX_CACHED_AUTH {
                let now = Instant::now();
                cache.retain(|_, c| c.until > now);
                if cache.len() >= MAX_CACHED_AUTH {
                    cache.clear();
                }
            }
            cache.insert(key, CachedAuth { header: header.clone(), until: Instant::now() + AUTH_REUSE });
        }
        Ok((header, false))
    }

    fn forget_auth(&self, r: &ArtifactRef, op: Op) {
        let key = AuthKey { registry: r.registry().to_owned(), repository: r.repository().to_owned(), op };
        if let Ok(mut cache) = self.auth_cache.lock() {
            cache.remove(&key);
        }
    }

    fn oci_auth(&self, r: &ArtifactRef) -> oci_client::secrets::RegistryAuth {
        self.config
            .credentials
            .for_registry(r.registry())
            .map_or(oci_client::secrets::RegistryAuth::Anonymous, |a| a.to_oci())
    }

    fn scheme(&self, registry: &str) -> &'static str {
        if self.config.insecure_registries.iter().any(|i| i == registry) {
            "http"
        } else {
            "https"
        }
    }

    /// `https://registry/v2/<repository>`, with Docker Hub's API host.
    pub(super) fn repo_url(&self, r: &ArtifactRef) -> String {
        let host = oci_reference(r).resolve_registry().to_owned();
        format!("{}://{host}/v2/{}", self.scheme(r.registry()), r.repository())
    }

    /// A link the registry gave (e.g. the next page), made absolute.
    pub(super) fn absolute_url(&self, r: &ArtifactRef, link: &str) -> String {
        if link.starts_with('/') {
            let host = oci_reference(r).resolve_registry().to_owned();
            format!("{}://{host}{link}", self.scheme(r.registry()))
        } else {
            link.to_owned()
        }
    }

    fn classify(&self, r: &ArtifactRef, e: &reqwest::Error) -> RegistryError {
        transport_error(r, e, self.scheme(r.registry()) == "https", self.config.timeout)
    }
}

/// The span of one HTTP exchange with a registry: method, host and path (never the query or credentials
/// a URL may carry), status code once answered. A debug span: disabled, nothing parsed, when neither
/// traces nor debug logs are on.
fn request_span(method: &Method, url: &str) -> tracing::Span {
    let span = tracing::debug_span!(
        "registry_request",
        otel.kind = "client",
        http.request.method = %method,
        server.address = tracing::field::Empty,
        server.port = tracing::field::Empty,
        url.path = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        error = tracing::field::Empty,
    );
    if !span.is_disabled() {
        if let Ok(url) = reqwest::Url::parse(url) {
            if let Some(host) = url.host_str() {
                span.record("server.address", host);
            }
            if let Some(port) = url.port_or_known_default() {
                span.record("server.port", i64::from(port));
            }
            span.record("url.path", url.path());
        }
    }
    span
}

/// The wait a `Retry-After` value asks for: delay-seconds or an HTTP date (RFC 9110), at most
/// [`MAX_RETRY_AFTER`]; `None` when it cannot be read.
/// Redirects as vouch follows them: at most [`MAX_REDIRECTS`], and never from HTTPS down to plain HTTP (a
/// registry's blob storage, a TUF mirror's CDN).
pub(crate) fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let downgrade =
            attempt.url().scheme() == "http" && attempt.previous().iter().any(|u| u.scheme() == "https");
        if downgrade {
            attempt.error("redirect from https to http refused")
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

fn retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&chrono::Utc);
            (at - now).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// What went wrong below HTTP status level: timeout, refused, reset, an answer cut short, or bytes that
/// are not HTTP. `https`: whether TLS was spoken (a plain-HTTP answer to a ClientHello is told apart).
fn transport_error(r: &ArtifactRef, e: &reqwest::Error, https: bool, timeout: Duration) -> RegistryError {
    let registry = r.registry().to_owned();
    if e.is_timeout() {
        return RegistryError::Timeout { registry, after: timeout };
    }
    let reason = error_chain(e);
    // rustls reading a plain-HTTP answer to its ClientHello: the registry does not speak TLS.
    if https && (reason.contains("InvalidContentType") || reason.contains("corrupt message")) {
        return RegistryError::InsecureNotAllowed { registry };
    }
    if e.is_connect() {
        return RegistryError::Unreachable { registry, reason };
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe => return RegistryError::Reset { registry },
                std::io::ErrorKind::UnexpectedEof => return RegistryError::ClosedEarly { registry, reason },
                _ => {}
            }
        }
        source = s.source();
    }
    // hyper's own descriptions (its error type is not ours to name): see hyper::Error's Display.
    if reason.contains("connection closed before message completed") || reason.contains("end of file") {
        RegistryError::ClosedEarly { registry, reason }
    } else if reason.contains("parsed")
        || reason.contains("message head is too large")
        || reason.contains("unexpected message")
        || reason.contains("invalid URI")
    {
        RegistryError::NotHttp { registry, reason }
    } else {
        RegistryError::Unreachable { registry, reason }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

fn map_oci_error(r: &ArtifactRef, e: OciDistributionError, timeout: Duration) -> RegistryError {
    let registry = r.registry().to_owned();
    match e {
        OciDistributionError::AuthenticationFailure(_) | OciDistributionError::UnauthorizedError { .. } => {
            RegistryError::Unauthorized { registry }
        }
        // oci-client only knows https-or-not per registry; the TLS check below is harmless for http.
        OciDistributionError::RequestError(e) => transport_error(r, &e, true, timeout),
        OciDistributionError::ServerError { code, .. } => status_error(r, code),
        OciDistributionError::RegistryError { envelope, .. } => protocol(
            r,
            format!(
                "registry error: {}",
                envelope.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ")
            ),
        ),
        other => protocol(r, other.to_string()),
    }
}

/// The error an HTTP status means.
fn status_error(r: &ArtifactRef, status: u16) -> RegistryError {
    match status {
        401 => RegistryError::Unauthorized { registry: r.registry().to_owned() },
        403 => RegistryError::Denied { reference: r.to_string() },
        404 => RegistryError::NotFound { reference: r.to_string() },
        429 => RegistryError::Throttled { reference: r.to_string(), retry_after: None },
        s if s >= 500 => RegistryError::Server { reference: r.to_string(), status: s },
        s => protocol(r, format!("unexpected HTTP status {s}")),
    }
}

/// The answer's status must be one of `expected`; any other is the error it means.
pub(super) fn check_status(
    r: &ArtifactRef,
    ans: &Answer,
    expected: &[StatusCode],
) -> Result<(), RegistryError> {
    if expected.contains(&ans.status) {
        Ok(())
    } else {
        Err(status_error(r, ans.status.as_u16()))
    }
}

/// `r` in oci-client's terms (a reference without tag or digest means `latest`).
fn oci_reference(r: &ArtifactRef) -> oci_client::Reference {
    let (registry, repository) = (r.registry().to_owned(), r.repository().to_owned());
    match (r.digest(), r.tag()) {
        (Some(d), _) => oci_client::Reference::with_digest(registry, repository, d.to_string()),
        (None, Some(t)) => oci_client::Reference::with_tag(registry, repository, t.to_owned()),
        (None, None) => oci_client::Reference::with_tag(registry, repository, "latest".to_owned()),
    }
}

/// `http://Host:5000/` → `host:5000`.
fn normalize_host(s: &str) -> String {
    let s = s.trim();
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    s.split('/').next().unwrap_or_default().to_ascii_lowercase()
}

/// The target of a `Link: <url>; rel="next"` header.
pub(super) fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_owned())
    })
}

/// oci-client (used for its token dance and uploads) configured like the client; it keeps credentials and
/// tokens of its own, so every credential set gets its own.
fn oci_client_for(config: &RegistryConfig) -> Result<oci_client::Client, RegistryError> {
    let oci_config = ClientConfig {
        protocol: ClientProtocol::HttpsExcept(config.insecure_registries.clone()),
        read_timeout: Some(config.timeout),
        connect_timeout: Some(config.timeout),
        use_monolithic_push: true,
        ..ClientConfig::default()
    };
    oci_client::Client::try_from(oci_config).map_err(|e| RegistryError::Config { reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::RegistryClient;

    #[test]
    fn link_header_next_is_found() {
        assert_eq!(
            next_link(r#"</v2/a/referrers/sha256:x?n=2&last=b>; rel="next""#).as_deref(),
            Some("/v2/a/referrers/sha256:x?n=2&last=b")
        );
        assert_eq!(
            next_link(r#"<https://a/1>; rel="prev", <https://a/3>; rel=next"#).as_deref(),
            Some("https://a/3")
        );
        assert_eq!(next_link(r#"<https://a/1>; rel="prev""#), None);
    }

    #[test]
    fn statuses_map_to_distinct_errors() {
        let r: ArtifactRef = "reg.example/app:1".parse().unwrap();
        assert!(matches!(status_error(&r, 401), RegistryError::Unauthorized { .. }));
        assert!(matches!(status_error(&r, 403), RegistryError::Denied { .. }));
        assert!(matches!(status_error(&r, 404), RegistryError::NotFound { .. }));
        assert!(status_error(&r, 503).is_transient());
        assert!(status_error(&r, 429).is_transient());
        assert!(!status_error(&r, 400).is_transient());
    }

    #[test]
    fn insecure_hosts_are_normalised_and_only_they_use_http() {
        let transport = Transport::new(RegistryConfig {
            insecure_registries: vec!["http://LocalHost:5000/".into()],
            ..RegistryConfig::default()
        })
        .unwrap();
        let plain: ArtifactRef = "localhost:5000/a:1".parse().unwrap();
        let tls: ArtifactRef = "localhost:5001/a:1".parse().unwrap();
        assert_eq!(transport.repo_url(&plain), "http://localhost:5000/v2/a");
        assert_eq!(transport.repo_url(&tls), "https://localhost:5001/v2/a");
        let hub: ArtifactRef = "nginx".parse().unwrap();
        assert_eq!(transport.repo_url(&hub), "https://index.docker.io/v2/library/nginx");
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_capped() {
        let now = chrono::DateTime::parse_from_rfc2822("Sun, 22 Nov 2026 06:00:00 GMT").unwrap().to_utc();
        assert_eq!(retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("Sun, 22 Nov 2026 06:00:07 GMT", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("Sun, 22 Nov 2026 05:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", now), None);
    }

    /// A loopback server answering scripted responses in order (the last one repeats), recording when
    /// each manifest request came.
    async fn scripted(answers: Vec<String>) -> (String, Arc<Mutex<Vec<Instant>>>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 4096];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let answer = if head.starts_with("GET /v2/ ") {
                    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned()
                } else {
                    let mut log = log.lock().unwrap();
                    log.push(Instant::now());
                    answers[(log.len() - 1).min(answers.len() - 1)].clone()
                };
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (host, seen)
    }

    fn busy(status: &str, retry_after: &str) -> String {
        format!("HTTP/1.1 {status}\r\nRetry-After: {retry_after}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    }

    #[tokio::test]
    async fn retry_after_is_waited_for_within_the_budget() {
        let body = "{}";
        let ok = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (host, seen) = scripted(vec![busy("429 Too Many Requests", "1"), ok]).await;
        let client = RegistryClient::new(RegistryConfig {
            insecure_registries: vec![host.clone()],
            timeout: Duration::from_secs(5),
            retries: 2,
            ..RegistryConfig::default()
        })
        .unwrap();
        let fetched = client.fetch_manifest(&format!("{host}/a/b:1").parse().unwrap()).await.unwrap();
        assert_eq!(fetched.bytes, body.as_bytes());
        let times = seen.lock().unwrap().clone();
        assert_eq!(times.len(), 2);
        // Our own first backoff is 100 ms; the registry asked for a second.
        assert!(times[1] - times[0] >= Duration::from_millis(950), "{:?}", times[1] - times[0]);
    }

    #[tokio::test]
    async fn in_a_paced_scope_every_attempt_waits_for_a_token_retries_and_token_requests_included() {
        use crate::registry::{paced, Pacer};
        let body = "{}";
        let ok = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let unavailable =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let (host, seen) = scripted(vec![unavailable.to_owned(), ok]).await;
        let client = RegistryClient::new(RegistryConfig {
            insecure_registries: vec![host.clone()],
            timeout: Duration::from_secs(10),
            retries: 2,
            ..RegistryConfig::default()
        })
        .unwrap();
        let r: ArtifactRef = format!("{host}/a/b:1").parse().unwrap();
        // One request a second, burst of one: the token request passes, the manifest GET and its retry wait.
        let pacer = Arc::new(Pacer::new(std::num::NonZeroU32::MIN));
        paced(pacer.clone(), client.fetch_manifest(&r)).await.unwrap();
        assert_eq!(pacer.delayed_waits(), 2);
        let times = seen.lock().unwrap().clone();
        assert_eq!(times.len(), 2);
        // Our own backoff is 100 ms; the pacer holds the retry until its token, a second later.
        assert!(times[1] - times[0] >= Duration::from_millis(950), "{:?}", times[1] - times[0]);

        // The same client outside the scope is not paced.
        client.fetch_manifest(&r).await.unwrap();
        assert_eq!(pacer.delayed_waits(), 2);
    }

    #[tokio::test]
    async fn retry_after_beyond_the_budget_fails_at_once() {
        let (host, seen) = scripted(vec![busy("503 Service Unavailable", "30")]).await;
        let client = RegistryClient::new(RegistryConfig {
            insecure_registries: vec![host.clone()],
            timeout: Duration::from_secs(3),
            retries: 2,
            ..RegistryConfig::default()
        })
        .unwrap();
        let started = Instant::now();
        let e = client.fetch_manifest(&format!("{host}/a/b:1").parse().unwrap()).await.unwrap_err();
        assert!(matches!(e, RegistryError::Server { status: 503, .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
}
