//! Registry credentials from Docker config JSON (the content of a `kubernetes.io/dockerconfigjson` secret).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;

use super::RegistryError;

/// Largest Docker config JSON accepted (secrets are limited to 1 MiB by Kubernetes too).
const MAX_DOCKER_CONFIG_BYTES: usize = 1024 * 1024;

/// How to authenticate to one registry; anonymous access is the absence of a `RegistryAuth`.
#[derive(Clone, PartialEq, Eq)]
pub enum RegistryAuth {
    /// HTTP basic credentials (also exchanged for a bearer token when the registry asks for one).
    Basic {
        /// User name.
        username: String,
        /// Password or access token.
        password: String,
    },
    /// A registry bearer token used as is.
    Bearer {
        /// The token.
        token: String,
    },
}

impl fmt::Debug for RegistryAuth {
    // Never print secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => {
                f.debug_struct("Basic").field("username", username).field("password", &"<redacted>").finish()
            }
            Self::Bearer { .. } => f.debug_struct("Bearer").field("token", &"<redacted>").finish(),
        }
    }
}

impl RegistryAuth {
    /// The same credentials in oci-client's terms.
    pub(crate) fn to_oci(&self) -> oci_client::secrets::RegistryAuth {
        match self {
            Self::Basic { username, password } => {
                oci_client::secrets::RegistryAuth::Basic(username.clone(), password.clone())
            }
            Self::Bearer { token } => oci_client::secrets::RegistryAuth::Bearer(token.clone()),
        }
    }
}

/// Credentials for any number of registries, keyed by normalised registry host[:port].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    by_registry: BTreeMap<String, RegistryAuth>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("registries", &self.by_registry.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct DockerConfig {
    auths: Option<BTreeMap<String, AuthEntry>>,
}

#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
    registrytoken: Option<String>,
}

impl Credentials {
    /// No credentials: every registry is accessed anonymously.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// Parse Docker config JSON: `{"auths": {"<registry>": {...}}}`, or the legacy `.dockercfg` form
    /// (the map of registries at the top level). Entries without usable credentials are skipped.
    pub fn from_docker_config_json(bytes: &[u8]) -> Result<Self, RegistryError> {
        if bytes.len() > MAX_DOCKER_CONFIG_BYTES {
            return Err(RegistryError::InvalidCredentials {
                reason: format!("larger than {MAX_DOCKER_CONFIG_BYTES} bytes"),
            });
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let is_modern = value.get("auths").is_some();
        let entries: BTreeMap<String, AuthEntry> = if is_modern {
            serde_json::from_value::<DockerConfig>(value)
                .map_err(|e| invalid(format!("malformed \"auths\": {e}")))?
                .auths
                .unwrap_or_default()
        } else {
            // Legacy .dockercfg: entries directly at the top level; non-object values are not entries.
            let serde_json::Value::Object(map) = value else {
                return Err(invalid("not a JSON object".to_owned()));
            };
            map.into_iter()
                .filter(|(_, v)| v.is_object())
                .map(|(k, v)| {
                    serde_json::from_value::<AuthEntry>(v)
                        .map(|e| (k.clone(), e))
                        .map_err(|e| invalid(format!("malformed entry {k:?}: {e}")))
                })
                .collect::<Result<_, _>>()?
        };
        let mut by_registry = BTreeMap::new();
        for (key, entry) in entries {
            let registry = normalize_registry_key(&key);
            if registry.is_empty() {
                return Err(invalid(format!("empty registry key {key:?}")));
            }
            if let Some(auth) = entry_to_auth(&key, entry)? {
                // The first entry for a registry wins, as for duplicates spelled differently
                // (`https://index.docker.io/v1/` and `docker.io`); BTreeMap order makes this deterministic.
                by_registry.entry(registry).or_insert(auth);
            }
        }
        Ok(Self { by_registry })
    }

    /// Add `other`'s registries; where both have credentials for a registry, `self`'s are kept
    /// (so the first pull secret listed wins).
    pub fn merge(&mut self, other: Credentials) {
        for (registry, auth) in other.by_registry {
            self.by_registry.entry(registry).or_insert(auth);
        }
    }

    /// Credentials for `registry` (host[:port] as in [`crate::ArtifactRef::registry`]); `None` means anonymous.
    pub fn for_registry(&self, registry: &str) -> Option<RegistryAuth> {
        self.by_registry.get(&normalize_registry_key(registry)).cloned()
    }

    /// Whether no registry has credentials.
    pub fn is_empty(&self) -> bool {
        self.by_registry.is_empty()
    }

    /// The registries that have credentials (normalised host[:port]).
    pub fn registries(&self) -> impl Iterator<Item = &str> {
        self.by_registry.keys().map(String::as_str)
    }
}

fn invalid(reason: String) -> RegistryError {
    RegistryError::InvalidCredentials { reason }
}

fn entry_to_auth(key: &str, entry: AuthEntry) -> Result<Option<RegistryAuth>, RegistryError> {
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    if let Some(token) = non_empty(entry.registrytoken) {
        return Ok(Some(RegistryAuth::Bearer { token }));
    }
    let (mut username, mut password) = (non_empty(entry.username), non_empty(entry.password));
    if let Some(encoded) = non_empty(entry.auth) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| invalid(format!("\"auth\" of {key:?} is not base64")))?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| invalid(format!("\"auth\" of {key:?} is not UTF-8")))?;
        let (user, pass) = decoded
            .split_once(':')
            .ok_or_else(|| invalid(format!("\"auth\" of {key:?} is not user:password")))?;
        username = Some(user.to_owned());
        password = Some(pass.to_owned());
    }
    // An identity token is an OAuth2 refresh token: registries (ACR, Harbor) take it as the basic password
    // at their token endpoint; Docker's placeholder user name is "<token>".
    if let Some(token) = non_empty(entry.identitytoken) {
        let username = username.unwrap_or_else(|| "<token>".to_owned());
        return Ok(Some(RegistryAuth::Basic { username, password: token }));
    }
    match (username, password) {
        (Some(username), Some(password)) => Ok(Some(RegistryAuth::Basic { username, password })),
        _ => Ok(None),
    }
}

/// `https://index.docker.io/v1/` → `docker.io`, `HTTP://Reg.Example:5000/path` → `reg.example:5000`.
fn normalize_registry_key(key: &str) -> String {
    let key = key.trim();
    let without_scheme = match key.split_once("://") {
        Some((_, rest)) => rest,
        None => key,
    };
    let host = without_scheme.split('/').next().unwrap_or_default().to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io".to_owned(),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn basic(u: &str, p: &str) -> Option<RegistryAuth> {
        Some(RegistryAuth::Basic { username: u.into(), password: p.into() })
    }

    #[test]
    fn reads_auth_field_and_splits_at_first_colon() {
        let json = format!(r#"{{"auths":{{"ghcr.io":{{"auth":"{}"}}}}}}"#, b64("alice:pa:ss"));
        let c = Credentials::from_docker_config_json(json.as_bytes()).unwrap();
        assert_eq!(c.for_registry("ghcr.io"), basic("alice", "pa:ss"));
        assert_eq!(c.for_registry("quay.io"), None);
    }

    #[test]
    fn reads_username_and_password() {
        let json = r#"{"auths":{"quay.io":{"username":"bob","password":"secret"}}}"#;
        let c = Credentials::from_docker_config_json(json.as_bytes()).unwrap();
        assert_eq!(c.for_registry("quay.io"), basic("bob", "secret"));
    }

    #[test]
    fn identity_token_is_a_refresh_token_for_basic_and_registry_token_is_bearer() {
        let json = r#"{"auths":{
            "acr.example.io":{"username":"00000000-0000-0000-0000-000000000000","identitytoken":"refresh"},
            "other.example":{"identitytoken":"idt"},
            "tok.example":{"registrytoken":"bearer-token","username":"ignored","password":"ignored"}}}"#;
        let c = Credentials::from_docker_config_json(json.as_bytes()).unwrap();
        assert_eq!(
            c.for_registry("acr.example.io"),
            basic("00000000-0000-0000-0000-000000000000", "refresh")
        );
        assert_eq!(c.for_registry("other.example"), basic("<token>", "idt"));
        assert_eq!(
            c.for_registry("tok.example"),
            Some(RegistryAuth::Bearer { token: "bearer-token".into() })
        );
    }

    #[test]
    fn docker_hub_aliases_all_mean_docker_io() {
        for key in ["https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io", "docker.io"] {
            let json = format!(r#"{{"auths":{{"{key}":{{"auth":"{}"}}}}}}"#, b64("u:p"));
            let c = Credentials::from_docker_config_json(json.as_bytes()).unwrap();
            assert_eq!(c.for_registry("docker.io"), basic("u", "p"), "{key}");
            let r: crate::ArtifactRef = "nginx:1".parse().unwrap();
            assert_eq!(c.for_registry(r.registry()), basic("u", "p"), "{key}");
        }
    }

    #[test]
    fn host_port_must_match_exactly_and_urls_with_paths_are_reduced_to_host() {
        let json = format!(
            r#"{{"auths":{{"https://reg.example:5000/v2/":{{"auth":"{}"}},"reg.example":{{"auth":"{}"}}}}}}"#,
            b64("port:p"),
            b64("noport:p")
        );
        let c = Credentials::from_docker_config_json(json.as_bytes()).unwrap();
        assert_eq!(c.for_registry("reg.example:5000"), basic("port", "p"));
        assert_eq!(c.for_registry("reg.example"), basic("noport", "p"));
        assert_eq!(c.for_registry("REG.example:5000"), basic("port", "p"));
        assert_eq!(c.for_registry("reg.example:5001"), None);
    }

    #[test]
    fn legacy_dockercfg_form_is_read() {
        let json = format!(r#"{{"reg.example":{{"auth":"{}","email":"x@y"}}}}"#, b64("u:p"));
        let c = Credentials::from_docker_config_json(json.as_bytes()).unwrap();
        assert_eq!(c.for_registry("reg.example"), basic("u", "p"));
    }

    #[test]
    fn entries_without_credentials_are_anonymous_and_bad_ones_are_errors() {
        let c = Credentials::from_docker_config_json(br#"{"auths":{"a.example":{}},"credsStore":"desktop"}"#)
            .unwrap();
        assert!(c.is_empty());
        for bad in [
            &br#"{"auths":{"a.example":{"auth":"%%%"}}}"#[..],
            br#"{"auths":{"a.example":{"auth":"bm9jb2xvbg=="}}}"#, // "nocolon"
            br#"{"auths":[]}"#,
            b"not json",
        ] {
            let e = Credentials::from_docker_config_json(bad).unwrap_err();
            assert!(matches!(e, RegistryError::InvalidCredentials { .. }), "{e}");
        }
    }

    #[test]
    fn merge_keeps_existing_and_adds_new() {
        let mut a = Credentials::from_docker_config_json(
            br#"{"auths":{"a.example":{"username":"a","password":"1"}}}"#,
        )
        .unwrap();
        let b = Credentials::from_docker_config_json(
            br#"{"auths":{"a.example":{"username":"x","password":"2"},"b.example":{"username":"b","password":"3"}}}"#,
        )
        .unwrap();
        a.merge(b);
        assert_eq!(a.for_registry("a.example"), basic("a", "1"));
        assert_eq!(a.for_registry("b.example"), basic("b", "3"));
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let c = Credentials::from_docker_config_json(
            br#"{"auths":{"a.example":{"username":"a","password":"hunter2"}}}"#,
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", c.for_registry("a.example")).contains("hunter2"));
    }
}
