//! Trace export over OTLP/HTTP (protobuf): where to (`--otlp-endpoint` or the standard `OTEL_*`
//! variables), and the exporter: the SDK's batch span processor (a bounded queue on a thread of its own,
//! spans dropped when it is full) sending with a reqwest client of vouch's TLS stack on the server's
//! runtime, each export bounded by a timeout. Admission only ever hands a finished span to the queue.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// `service.name` unless `OTEL_SERVICE_NAME` says otherwise.
pub const DEFAULT_SERVICE_NAME: &str = "vouch";
/// Time one export may take unless `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or `OTEL_EXPORTER_OTLP_TIMEOUT`
/// (milliseconds) say otherwise (the OpenTelemetry default).
pub const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The only OTLP protocol vouch speaks.
const HTTP_PROTOBUF: &str = "http/protobuf";

/// Where traces go: the collector's traces URL (`…/v1/traces`) and the setting that named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportTarget {
    /// The URL spans are POSTed to.
    pub url: reqwest::Url,
    /// `--otlp-endpoint`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub from: &'static str,
    /// Time one export may take.
    pub timeout: Duration,
    /// TLS to the collector beyond the system's roots: from `OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE`,
    /// `..._CLIENT_CERTIFICATE` and `..._CLIENT_KEY`.
    pub tls: ExportTls,
}

/// A file named by a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingFile {
    /// The variable that named it.
    pub setting: &'static str,
    /// The path.
    pub path: PathBuf,
}

/// Files for TLS to the collector (PEM), as the OpenTelemetry exporter specification names them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportTls {
    /// CA certificates trusted for the collector's certificate, besides the system's roots.
    pub ca: Option<SettingFile>,
    /// A client certificate (chain) and its private key, for a collector that asks for one.
    pub client: Option<(SettingFile, SettingFile)>,
}

impl fmt::Display for ExportTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the credentials a URL may carry.
        let mut shown = self.url.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        write!(f, "{shown} (from {})", self.from)
    }
}

/// Trace export cannot be set up as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelemetryError {
    /// A setting has a value vouch cannot use.
    #[error("{setting}: {value:?}: {reason}")]
    Setting {
        /// The flag or variable.
        setting: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The OpenTelemetry SDK refused the exporter.
    #[error("cannot set up the OTLP exporter: {reason}")]
    Exporter {
        /// The SDK's words.
        reason: String,
    },
}

/// Where traces go, from `--otlp-endpoint` (a base URL as `OTEL_EXPORTER_OTLP_ENDPOINT`: `/v1/traces` is
/// appended) over `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it is) over `OTEL_EXPORTER_OTLP_ENDPOINT`;
/// `None` (no export, no OpenTelemetry at all) when none is set or `OTEL_SDK_DISABLED=true`. `env` reads a
/// variable (`std::env::var` in the binary).
pub fn export_target(
    flag: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<ExportTarget>, TelemetryError> {
    let env = |name: &str| env(name).filter(|v| !v.trim().is_empty());
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let (from, value, append) = if let Some(url) = flag {
        ("--otlp-endpoint", url.to_owned(), true)
    } else if let Some(url) = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url, false)
    } else if let Some(url) = env("OTEL_EXPORTER_OTLP_ENDPOINT") {
        ("OTEL_EXPORTER_OTLP_ENDPOINT", url, true)
    } else {
        return Ok(None);
    };
    let bad = |setting: &'static str, value: &str, reason: String| TelemetryError::Setting {
        setting,
        value: value.to_owned(),
        reason,
    };
    for setting in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        if let Some(protocol) = env(setting) {
            if protocol.trim() != HTTP_PROTOBUF {
                return Err(bad(
                    setting,
                    &protocol,
                    format!("vouch exports traces over {HTTP_PROTOBUF} only"),
                ));
            }
            break;
        }
    }
    let mut url = reqwest::Url::parse(value.trim()).map_err(|e| bad(from, &value, e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(bad(from, &value, "must be an http:// or https:// URL".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(from, &value, "must have no query or fragment".into()));
    }
    if append {
        let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
        url.set_path(&path);
    }
    let mut timeout = DEFAULT_EXPORT_TIMEOUT;
    for setting in ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"] {
        if let Some(ms) = env(setting) {
            timeout = match ms.trim().parse::<u64>() {
                Ok(ms) if (1..=600_000).contains(&ms) => Duration::from_millis(ms),
                _ => return Err(bad(setting, &ms, "must be milliseconds between 1 and 600000".into())),
            };
            break;
        }
    }
    // The traces variable before the general one, as for the endpoint.
    let file = |traces: &'static str, general: &'static str| {
        [traces, general]
            .into_iter()
            .find_map(|setting| env(setting).map(|p| SettingFile { setting, path: PathBuf::from(p.trim()) }))
    };
    let client = match (
        file("OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
        file("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY"),
    ) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(one), None) | (None, Some(one)) => {
            let value = one.path.display().to_string();
            return Err(bad(
                one.setting,
                &value,
                "a client certificate needs its key and a key its certificate: set both".into(),
            ));
        }
    };
    let ca = file("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE");
    let tls = ExportTls { ca, client };
    Ok(Some(ExportTarget { url, from, timeout, tls }))
}

/// Read `file`, or say which setting named a file that cannot be read.
fn read_setting_file(file: &SettingFile) -> Result<Vec<u8>, TelemetryError> {
    std::fs::read(&file.path).map_err(|e| TelemetryError::Setting {
        setting: file.setting,
        value: file.path.display().to_string(),
        reason: format!("cannot read it: {e}"),
    })
}

/// The reqwest client the exporter sends with: the target's timeout, no redirects, and its TLS files.
fn export_client(target: &ExportTarget) -> Result<reqwest::Client, TelemetryError> {
    let bad = |file: &SettingFile, reason: String| TelemetryError::Setting {
        setting: file.setting,
        value: file.path.display().to_string(),
        reason,
    };
    let mut builder = reqwest::Client::builder()
        .timeout(target.timeout)
        .connect_timeout(target.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("vouch/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &target.tls.ca {
        let certs = reqwest::Certificate::from_pem_bundle(&read_setting_file(ca)?)
            .map_err(|e| bad(ca, format!("not PEM certificates: {e}")))?;
        if certs.is_empty() {
            return Err(bad(ca, "holds no PEM certificate".into()));
        }
        builder = builder.tls_certs_merge(certs);
    }
    if let Some((cert, key)) = &target.tls.client {
        let mut pem = read_setting_file(cert)?;
        pem.push(b'\n');
        pem.extend(read_setting_file(key)?);
        let identity = reqwest::Identity::from_pem(&pem)
            .map_err(|e| bad(cert, format!("with {}: not a PEM certificate and key: {e}", key.setting)))?;
        builder = builder.identity(identity);
    }
    builder.build().map_err(|e| TelemetryError::Exporter { reason: e.to_string() })
}

/// The tracer provider exporting to `target` in batches (queue, batch size and delay from the standard
/// `OTEL_BSP_*` variables, the sampler from `OTEL_TRACES_SAMPLER`/`_ARG`, resource attributes from
/// `OTEL_RESOURCE_ATTRIBUTES`, as the SDK reads them).
pub fn tracer_provider(
    target: &ExportTarget,
    runtime: &tokio::runtime::Handle,
) -> Result<SdkTracerProvider, TelemetryError> {
    let client = export_client(target)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(target.url.as_str())
        .with_timeout(target.timeout)
        .with_http_client(OnRuntime { client, runtime: runtime.clone() })
        .build()
        .map_err(|e| TelemetryError::Exporter { reason: e.to_string() })?;
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// The layer turning vouch's spans into OpenTelemetry spans: every span of vouch's crates down to debug
/// level (`evaluate`, `verify`, `registry_request` are debug spans, so logs at `info` never see them), and
/// their events at info and above as span events. Nothing of other crates (the exporter's own HTTP
/// client among them).
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let tracer = provider.tracer("vouch");
    tracing_opentelemetry::layer().with_tracer(tracer).with_location(false).with_threads(false).with_filter(
        tracing_subscriber::filter::filter_fn(traced)
            .with_max_level_hint(tracing_subscriber::filter::LevelFilter::DEBUG),
    )
}

/// Whether a span or event goes into traces.
fn traced(meta: &tracing::Metadata<'_>) -> bool {
    traced_kind(meta.target(), *meta.level(), meta.is_span())
}

fn traced_kind(target: &str, level: tracing::Level, span: bool) -> bool {
    let ours = target.starts_with("vouch_");
    ours && if span { level <= tracing::Level::DEBUG } else { level <= tracing::Level::INFO }
}

/// Sends each export on the server's tokio runtime (the batch processor runs exports on its own thread,
/// outside any runtime, where reqwest cannot run).
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: opentelemetry_http::Request<opentelemetry_http::Bytes>,
    ) -> Result<opentelemetry_http::Response<opentelemetry_http::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        self.runtime
            .spawn(async move { opentelemetry_http::HttpClient::send_bytes(&client, request).await })
            .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(flag: Option<&str>, vars: &[(&str, &str)]) -> Result<Option<ExportTarget>, TelemetryError> {
        export_target(flag, |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn nothing_set_means_no_export() {
        assert_eq!(target(None, &[]), Ok(None));
        assert_eq!(
            target(None, &[("OTEL_SERVICE_NAME", "x"), ("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]),
            Ok(None)
        );
    }

    #[test]
    fn the_flag_is_a_base_url_and_wins_over_the_variables() {
        let t = target(
            Some("http://collector:4318/"),
            &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://other:4318/v1/traces")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.url.as_str(), "http://collector:4318/v1/traces");
        assert_eq!(t.from, "--otlp-endpoint");
        assert_eq!(t.timeout, DEFAULT_EXPORT_TIMEOUT);
        let t = target(Some("https://gw.example/otlp"), &[]).unwrap().unwrap();
        assert_eq!(t.url.as_str(), "https://gw.example/otlp/v1/traces");
    }

    #[test]
    fn the_traces_variable_is_used_as_it_is_and_before_the_general_one() {
        let t = target(
            None,
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://d:4318"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!((t.url.as_str(), t.from), ("http://c:4318/custom", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"));
        assert_eq!(t.timeout, Duration::from_millis(2500));
        let t = target(None, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://d:4318")]).unwrap().unwrap();
        assert_eq!(t.url.as_str(), "http://d:4318/v1/traces");
    }

    #[test]
    fn sdk_disabled_turns_export_off() {
        let vars = [("OTEL_SDK_DISABLED", "TRUE"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://d:4318")];
        assert_eq!(target(Some("http://c:4318"), &vars), Ok(None));
    }

    #[test]
    fn unusable_settings_are_named_with_their_value() {
        let err = target(Some("collector:4318"), &[]).unwrap_err();
        assert!(matches!(&err, TelemetryError::Setting { setting: "--otlp-endpoint", .. }), "{err}");
        let err = target(Some("ftp://c/"), &[]).unwrap_err().to_string();
        assert!(err.contains("http:// or https://"), "{err}");
        let err = target(Some("http://c:4318"), &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(err.to_string().starts_with("OTEL_EXPORTER_OTLP_PROTOCOL: \"grpc\""), "{err}");
        let ok = target(Some("http://c:4318"), &[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")]);
        assert!(ok.unwrap().is_some());
        let err = target(Some("http://c:4318"), &[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "10s")]).unwrap_err();
        assert!(err.to_string().contains("milliseconds"), "{err}");
    }

    #[test]
    fn tls_files_come_from_the_traces_variables_before_the_general_ones() {
        let t = target(
            Some("https://c:4318"),
            &[
                ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/etc/otel/traces-ca.pem"),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/etc/otel/ca.pem"),
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/etc/otel/client.pem"),
                ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "/etc/otel/client-key.pem"),
            ],
        )
        .unwrap()
        .unwrap();
        let ca = t.tls.ca.unwrap();
        assert_eq!(
            (ca.setting, ca.path.to_str().unwrap()),
            ("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/etc/otel/traces-ca.pem")
        );
        let (cert, key) = t.tls.client.unwrap();
        assert_eq!(cert.setting, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE");
        assert_eq!(key.setting, "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY");
        assert_eq!(target(Some("https://c:4318"), &[]).unwrap().unwrap().tls, ExportTls::default());
        // A certificate without its key (or the reverse) is refused, naming the one given.
        let err = target(Some("https://c"), &[("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/k.pem")]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("OTEL_EXPORTER_OTLP_CLIENT_KEY: \"/k.pem\": a client certificate needs its key"),
            "{err}"
        );
    }

    #[test]
    fn tls_files_that_cannot_be_used_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_owned()
        };
        let ca = crate::server::dev_pki::DevCa::new("otlp test ca").unwrap();
        let client = ca.issue_client("vouch").unwrap();
        let (ca_pem, cert, key) = (
            write("ca.pem", &ca.cert_pem()),
            write("client.pem", &client.cert_pem),
            write("key.pem", &client.key_pem),
        );
        let not_pem = write("not.pem", "not a certificate");
        let client_of = |ca: &str, cert: &str, key: &str| {
            let vars = [
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca),
                ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", key),
            ];
            export_client(&target(Some("https://c:4318"), &vars).unwrap().unwrap())
        };
        client_of(&ca_pem, &cert, &key).unwrap();
        let err = client_of("/nonexistent/ca.pem", &cert, &key).unwrap_err().to_string();
        assert!(
            err.starts_with("OTEL_EXPORTER_OTLP_CERTIFICATE: \"/nonexistent/ca.pem\": cannot read it"),
            "{err}"
        );
        let err = client_of(&not_pem, &cert, &key).unwrap_err().to_string();
        assert!(
            err.starts_with("OTEL_EXPORTER_OTLP_CERTIFICATE:") && err.contains("no PEM certificate"),
            "{err}"
        );
        let err = client_of(&ca_pem, &cert, &not_pem).unwrap_err().to_string();
        assert!(
            err.starts_with("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE:")
                && err.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"),
            "{err}"
        );
    }

    #[test]
    fn the_shown_target_hides_credentials() {
        let t = target(Some("https://user:secret@gw.example"), &[]).unwrap().unwrap();
        let shown = t.to_string();
        assert!(!shown.contains("secret") && !shown.contains("user"), "{shown}");
        assert!(shown.contains("gw.example/v1/traces"), "{shown}");
    }

    #[test]
    fn only_vouch_spans_down_to_debug_and_vouch_events_down_to_info_are_traced() {
        use tracing::Level;
        assert!(traced_kind("vouch_attest::registry::transport", Level::DEBUG, true));
        assert!(!traced_kind("vouch_attest::registry::transport", Level::TRACE, true));
        assert!(traced_kind("vouch_webhooks::server", Level::INFO, false));
        assert!(!traced_kind("vouch_webhooks::server", Level::DEBUG, false));
        assert!(!traced_kind("reqwest::connect", Level::INFO, true));
        assert!(!traced_kind("opentelemetry_sdk", Level::WARN, false));
    }
}
