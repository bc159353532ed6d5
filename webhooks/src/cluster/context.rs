//! What admission needs to know about the cluster beyond the request: namespace labels and pull credentials.
//!
//! [`ClusterContext`] is object safe (methods return boxed futures) so the server holds an
//! `Arc<dyn ClusterContext>`: [`KubeContext`] in a cluster, [`NoCluster`] in file mode.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use kube::{Api, Client};
use vouch_attest::registry::Credentials;

use super::error::KubeError;

/// Secret type whose `.dockerconfigjson` key holds `{"auths": {...}}`.
pub const DOCKER_CONFIG_JSON_TYPE: &str = "kubernetes.io/dockerconfigjson";
/// Legacy secret type whose `.dockercfg` key holds the registry map.
pub const DOCKER_CFG_TYPE: &str = "kubernetes.io/dockercfg";
/// Most pull secret names read per pod (pod's and service account's together); the rest are ignored.
pub const MAX_PULL_SECRETS: usize = 32;

/// Namespace labels of an object's namespace.
pub type Labels = BTreeMap<String, String>;

/// Cluster facts the admission path looks up.
pub trait ClusterContext: Send + Sync {
    /// Labels of namespace `ns` (for namespace selectors of policies); `None` when this context cannot
    /// know them (no cluster), which the engine must never read as "no label matches".
    fn namespace_labels<'a>(&'a self, ns: &'a str) -> BoxFuture<'a, Result<Option<Labels>, KubeError>>;

    /// The `vouch.dev/` annotations of namespace `ns` (e.g. `vouch.dev/egress-allowlist`); none by default.
    fn namespace_annotations<'a>(&'a self, _ns: &'a str) -> BoxFuture<'a, Result<Labels, KubeError>> {
        Box::pin(async { Ok(Labels::new()) })
    }

    /// Registry credentials from the pod spec's `imagePullSecrets` and those of its service account
    /// (`serviceAccountName`, default `default`), pod's first; missing secrets are skipped.
    /// `pod_spec` is a Pod's `spec` or a workload template's `spec.template.spec` (a CronJob's
    /// `spec.jobTemplate.spec.template.spec`). Errors mean the API could not be read (network, RBAC) or
    /// the spec is malformed; the caller applies its failure policy.
    fn pull_credentials<'a>(
        &'a self,
        ns: &'a str,
        pod_spec: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<Credentials, KubeError>>;
}

/// No cluster (file mode): namespace labels unknown, no vouch annotations, anonymous pulls.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCluster;

impl ClusterContext for NoCluster {
    fn namespace_labels<'a>(&'a self, _ns: &'a str) -> BoxFuture<'a, Result<Option<Labels>, KubeError>> {
        Box::pin(async { Ok(None) })
    }

    fn pull_credentials<'a>(
        &'a self,
        _ns: &'a str,
        _pod_spec: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<Credentials, KubeError>> {
        Box::pin(async { Ok(Credentials::anonymous()) })
    }
}

/// How long looked-up cluster facts are reused, and how many are kept.
#[derive(Debug, Clone)]
pub struct ContextCacheConfig {
    /// Time to live of namespace labels, service accounts and secrets.
    pub ttl: Duration,
    /// Most entries per cache.
    pub max_entries: u64,
}

impl Default for ContextCacheConfig {
    fn default() -> Self {
        // Short: a rotated pull secret or relabelled namespace is seen within seconds.
        Self { ttl: Duration::from_secs(15), max_entries: 10_000 }
    }
}

type NsName = (String, String);

/// Prefix of the namespace annotations kept (`vouch.dev/egress-allowlist`, ...).
const VOUCH_ANNOTATION_PREFIX: &str = "vouch.dev/";

/// What is kept of a namespace: its labels and vouch's annotations (one read serves both).
#[derive(Debug, Default)]
struct NamespaceMeta {
    labels: Labels,
    annotations: Labels,
}

/// In-cluster [`ClusterContext`]: reads through the kube client, caches briefly.
#[derive(Clone)]
pub struct KubeContext {
    client: Client,
    labels: moka::future::Cache<String, Arc<NamespaceMeta>>,
    service_accounts: moka::future::Cache<NsName, Arc<Vec<String>>>,
    // `None` caches "missing, not a pull secret, or unparseable" so a bad reference is not re-read per request.
    secrets: moka::future::Cache<NsName, Option<Arc<Credentials>>>,
}

impl std::fmt::Debug for KubeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeContext").finish_non_exhaustive()
    }
}

impl KubeContext {
    /// A context reading through `client` with the given cache settings.
    pub fn new(client: Client, cache: &ContextCacheConfig) -> Self {
        fn build<K, V>(c: &ContextCacheConfig) -> moka::future::Cache<K, V>
        where
            K: std::hash::Hash + Eq + Send + Sync + 'static,
            V: Clone + Send + Sync + 'static,
        {
            moka::future::Cache::builder().max_capacity(c.max_entries).time_to_live(c.ttl).build()
        }
        Self { client, labels: build(cache), service_accounts: build(cache), secrets: build(cache) }
    }

    async fn read_labels(&self, ns: &str) -> Result<Arc<NamespaceMeta>, KubeError> {
        let key = ns.to_owned();
        self.labels
            .try_get_with(key, async {
                let api: Api<Namespace> = Api::all(self.client.clone());
                match api.get_opt(ns).await {
                    Ok(Some(namespace)) => Ok(Arc::new(NamespaceMeta {
                        labels: namespace.metadata.labels.unwrap_or_default(),
                        // Only vouch's own annotations: the rest is not needed and may be large.
                        annotations: namespace
                            .metadata
                            .annotations
                            .unwrap_or_default()
                            .into_iter()
                            .filter(|(k, _)| k.starts_with(VOUCH_ANNOTATION_PREFIX))
                            .collect(),
                    })),
                    Ok(None) => Err(KubeError::NotFound { kind: "Namespace", name: ns.to_owned() }),
                    Err(source) => Err(read_error("Namespace", "", ns, source)),
                }
            })
            .await
            .map_err(unshare)
    }

    /// The pull secret names of service account `ns/name`; a missing account has none.
    async fn service_account_secrets(&self, ns: &str, name: &str) -> Result<Arc<Vec<String>>, KubeError> {
        let key = (ns.to_owned(), name.to_owned());
        self.service_accounts
            .try_get_with(key, async {
                let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
                match api.get_opt(name).await {
                    Ok(Some(sa)) => Ok(Arc::new(
                        sa.image_pull_secrets
                            .unwrap_or_default()
                            .into_iter()
                            .map(|r| r.name)
                            .filter(|n| !n.is_empty())
                            .take(MAX_PULL_SECRETS)
                            .collect(),
                    )),
                    Ok(None) => {
                        tracing::debug!(namespace = ns, service_account = name, "service account not found");
                        Ok(Arc::new(Vec::new()))
                    }
                    Err(source) => Err(read_error("ServiceAccount", ns, name, source)),
                }
            })
            .await
            .map_err(unshare)
    }

    /// Credentials of pull secret `ns/name`; `None` when it is missing or unusable (skipped, as kubelet does).
    async fn secret_credentials(&self, ns: &str, name: &str) -> Result<Option<Arc<Credentials>>, KubeError> {
        let key = (ns.to_owned(), name.to_owned());
        self.secrets
            .try_get_with(key, async {
                let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
                match api.get_opt(name).await {
                    Ok(Some(secret)) => Ok(credentials_from_secret(ns, name, &secret).map(Arc::new)),
                    Ok(None) => {
                        tracing::debug!(namespace = ns, secret = name, "pull secret not found; skipped");
                        Ok(None)
                    }
                    Err(source) => Err(read_error("Secret", ns, name, source)),
                }
            })
            .await
            .map_err(unshare)
    }
}

impl ClusterContext for KubeContext {
    fn namespace_labels<'a>(&'a self, ns: &'a str) -> BoxFuture<'a, Result<Option<Labels>, KubeError>> {
        Box::pin(async move { self.read_labels(ns).await.map(|m| Some(m.labels.clone())) })
    }

    fn namespace_annotations<'a>(&'a self, ns: &'a str) -> BoxFuture<'a, Result<Labels, KubeError>> {
        Box::pin(async move { self.read_labels(ns).await.map(|m| m.annotations.clone()) })
    }

    fn pull_credentials<'a>(
        &'a self,
        ns: &'a str,
        pod_spec: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<Credentials, KubeError>> {
        Box::pin(async move {
            let refs = PullSecretRefs::from_pod_spec(pod_spec)?;
            let mut names = refs.pod_secrets;
            let sa_secrets = self.service_account_secrets(ns, &refs.service_account).await?;
            for name in sa_secrets.iter() {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            names.truncate(MAX_PULL_SECRETS);
            let mut credentials = Credentials::anonymous();
            for name in &names {
                if let Some(found) = self.secret_credentials(ns, name).await? {
                    // First listed wins per registry: pod's secrets before the service account's.
                    credentials.merge((*found).clone());
                }
            }
            Ok(credentials)
        })
    }
}

fn read_error(kind: &'static str, namespace: &str, name: &str, source: kube::Error) -> KubeError {
    KubeError::Read { kind, namespace: namespace.to_owned(), name: name.to_owned(), source: Box::new(source) }
}

/// moka shares one error among concurrent waiters; rebuild an owned one keeping the facts.
fn unshare(e: Arc<KubeError>) -> KubeError {
    match Arc::try_unwrap(e) {
        Ok(e) => e,
        Err(shared) => match &*shared {
            KubeError::Read { kind, namespace, name, source } => KubeError::Read {
                kind,
                namespace: namespace.clone(),
                name: name.clone(),
                source: Box::new(clone_kube_error(source)),
            },
            KubeError::NotFound { kind, name } => KubeError::NotFound { kind, name: name.clone() },
            KubeError::Write { what, source } => {
                KubeError::Write { what: what.clone(), source: Box::new(clone_kube_error(source)) }
            }
            KubeError::MalformedPodSpec { field } => KubeError::MalformedPodSpec { field },
            KubeError::Timeout { what } => KubeError::Timeout { what: what.clone() },
        },
    }
}

/// kube::Error is not Clone: keep API statuses exactly, other causes as their message.
fn clone_kube_error(e: &kube::Error) -> kube::Error {
    match e {
        kube::Error::Api(status) => kube::Error::Api(status.clone()),
        other => kube::Error::Service(other.to_string().into()),
    }
}

/// Pull secret references in a pod spec.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PullSecretRefs {
    pod_secrets: Vec<String>,
    service_account: String,
}

impl PullSecretRefs {
    fn from_pod_spec(spec: &serde_json::Value) -> Result<Self, KubeError> {
        let mut pod_secrets = Vec::new();
        match spec.get("imagePullSecrets") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Array(items)) => {
                for item in items.iter().take(MAX_PULL_SECRETS) {
                    let name = match item.get("name") {
                        None | Some(serde_json::Value::Null) => continue,
                        Some(serde_json::Value::String(name)) => name,
                        Some(_) => {
                            return Err(KubeError::MalformedPodSpec { field: "imagePullSecrets[].name" })
                        }
                    };
                    if !name.is_empty() && !pod_secrets.contains(name) {
                        pod_secrets.push(name.clone());
                    }
                }
            }
            Some(_) => return Err(KubeError::MalformedPodSpec { field: "imagePullSecrets" }),
        }
        // `serviceAccount` is the deprecated alias the API server still accepts.
        let mut service_account = "default".to_owned();
        for field in ["serviceAccount", "serviceAccountName"] {
            match spec.get(field) {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::String(s)) if s.is_empty() => {}
                Some(serde_json::Value::String(s)) => service_account = s.clone(),
                Some(_) => {
                    let field =
                        if field == "serviceAccount" { "serviceAccount" } else { "serviceAccountName" };
                    return Err(KubeError::MalformedPodSpec { field });
                }
            }
        }
        Ok(Self { pod_secrets, service_account })
    }
}

/// The credentials in a pull secret, or `None` (logged at debug, never with content) when it is not one.
fn credentials_from_secret(ns: &str, name: &str, secret: &Secret) -> Option<Credentials> {
    let key = match secret.type_.as_deref() {
        Some(DOCKER_CONFIG_JSON_TYPE) => ".dockerconfigjson",
        Some(DOCKER_CFG_TYPE) => ".dockercfg",
        other => {
            tracing::debug!(namespace = ns, secret = name, secret_type = ?other, "not a pull secret type; skipped");
            return None;
        }
    };
    let Some(bytes) = secret.data.as_ref().and_then(|d| d.get(key)) else {
        tracing::debug!(namespace = ns, secret = name, key, "pull secret has no data under its key; skipped");
        return None;
    };
    match Credentials::from_docker_config_json(&bytes.0) {
        Ok(credentials) => Some(credentials),
        Err(_) => {
            // The parse error may quote secret content: name the secret only.
            tracing::warn!(
                namespace = ns,
                secret = name,
                "pull secret is not valid Docker config JSON; skipped"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pull_secret_refs_default_service_account_and_dedupe() {
        let refs = PullSecretRefs::from_pod_spec(&json!({
            "imagePullSecrets": [{"name": "a"}, {"name": "a"}, {}, {"name": ""}, {"name": "b"}],
        }))
        .unwrap();
        assert_eq!(refs.pod_secrets, vec!["a", "b"]);
        assert_eq!(refs.service_account, "default");
        let refs =
            PullSecretRefs::from_pod_spec(&json!({"serviceAccount": "old", "serviceAccountName": "new"}))
                .unwrap();
        assert_eq!(refs.service_account, "new");
        let refs = PullSecretRefs::from_pod_spec(&json!({"serviceAccount": "old"})).unwrap();
        assert_eq!(refs.service_account, "old");
    }

    #[test]
    fn pull_secret_refs_reject_wrong_types() {
        for spec in [
            json!({"imagePullSecrets": "a"}),
            json!({"imagePullSecrets": [{"name": 3}]}),
            json!({"serviceAccountName": ["x"]}),
        ] {
            let e = PullSecretRefs::from_pod_spec(&spec).unwrap_err();
            assert!(matches!(e, KubeError::MalformedPodSpec { .. }), "{spec}: {e}");
        }
    }

    #[test]
    fn pull_secret_refs_are_bounded() {
        let many: Vec<_> = (0..1000).map(|i| json!({"name": format!("s{i}")})).collect();
        let refs = PullSecretRefs::from_pod_spec(&json!({"imagePullSecrets": many})).unwrap();
        assert_eq!(refs.pod_secrets.len(), MAX_PULL_SECRETS);
    }

    fn secret(type_: &str, key: &str, value: &[u8]) -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": "s"},
            "type": type_,
            "data": {key: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, value)},
        }))
        .unwrap()
    }

    #[test]
    fn secret_types_and_keys() {
        let cfg = br#"{"auths":{"reg.example":{"username":"u","password":"p"}}}"#;
        let c =
            credentials_from_secret("ns", "s", &secret(DOCKER_CONFIG_JSON_TYPE, ".dockerconfigjson", cfg));
        assert!(c.unwrap().for_registry("reg.example").is_some());
        let legacy = br#"{"old.example":{"username":"u","password":"p"}}"#;
        let c = credentials_from_secret("ns", "s", &secret(DOCKER_CFG_TYPE, ".dockercfg", legacy));
        assert!(c.unwrap().for_registry("old.example").is_some());
        // Wrong key for the type, opaque secrets and garbage are skipped.
        assert!(
            credentials_from_secret("ns", "s", &secret(DOCKER_CONFIG_JSON_TYPE, ".dockercfg", cfg)).is_none()
        );
        assert!(credentials_from_secret("ns", "s", &secret("Opaque", ".dockerconfigjson", cfg)).is_none());
        assert!(credentials_from_secret(
            "ns",
            "s",
            &secret(DOCKER_CONFIG_JSON_TYPE, ".dockerconfigjson", b"{")
        )
        .is_none());
    }

    #[tokio::test]
    async fn no_cluster_knows_no_labels_and_pulls_anonymously() {
        let c = NoCluster;
        assert_eq!(c.namespace_labels("x").await.unwrap(), None, "unknown, not empty");
        assert!(c
            .pull_credentials("x", &json!({"imagePullSecrets": [{"name": "a"}]}))
            .await
            .unwrap()
            .is_empty());
    }
}
