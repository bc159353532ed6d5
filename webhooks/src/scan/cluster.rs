//! Reading a cluster for a scan: Pods listed a page at a time (`limit`/`continue`), so a large cluster is
//! never in memory at once, and the policies in force (the four vouch kinds and the Secrets they name).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::ListParams;
use kube::{Api, Client};
use vouch_policies::crd::{ClusterSupplyChainPolicy, ComplianceProfile, SupplyChainPolicy, TrustRoot};
use vouch_policies::manifests::{ManifestReader, NamespaceFacts, NAMESPACE_NAME_LABEL};
use vouch_policies::{PolicyResources, PolicySet, Secrets, TufRoots};

use crate::cluster::KubeError;

/// Pods asked for per page.
pub const PAGE_SIZE: u32 = 250;
/// Where objects listed from the cluster say they were read.
pub const CLUSTER_SOURCE: &str = "cluster";

fn list_error(kind: &'static str, namespace: &str, source: kube::Error) -> KubeError {
    KubeError::Read { kind, namespace: namespace.to_owned(), name: "(list)".into(), source: Box::new(source) }
}

/// Pods of some namespaces (or all), a page at a time.
pub struct PodPages {
    client: Client,
    /// Namespaces still to list; `None` in the list means every namespace.
    scopes: Vec<Option<String>>,
    continue_token: Option<String>,
    page_size: u32,
    pages: usize,
    read: usize,
}

impl std::fmt::Debug for PodPages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodPages").field("scopes", &self.scopes).field("pages", &self.pages).finish()
    }
}

impl PodPages {
    /// Pods of `namespaces` (every namespace when empty), `page_size` per request.
    pub fn new(client: Client, namespaces: &[String], page_size: u32) -> Self {
        let mut scopes: Vec<Option<String>> = if namespaces.is_empty() {
            vec![None]
        } else {
            namespaces.iter().rev().map(|n| Some(n.clone())).collect()
        };
        scopes.dedup();
        Self { client, scopes, continue_token: None, page_size: page_size.max(1), pages: 0, read: 0 }
    }

    /// The next page of Pods as manifest objects (source [`CLUSTER_SOURCE`]); `None` when all are read.
    pub async fn next_page(
        &mut self,
    ) -> Result<Option<Vec<vouch_policies::manifests::ManifestObject>>, KubeError> {
        let Some(scope) = self.scopes.last().cloned() else { return Ok(None) };
        let api: Api<Pod> = match &scope {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let mut params = ListParams::default().limit(self.page_size);
        if let Some(token) = &self.continue_token {
            params = params.continue_token(token);
        }
        let list =
            api.list(&params).await.map_err(|e| list_error("Pod", scope.as_deref().unwrap_or(""), e))?;
        self.pages += 1;
        self.continue_token = list.metadata.continue_.filter(|t| !t.is_empty());
        if self.continue_token.is_none() {
            self.scopes.pop();
        }
        let mut reader = ManifestReader::new();
        for pod in list.items {
            self.read += 1;
            // Typed Pods serialise with their apiVersion and kind, as the API sends them.
            let value = serde_json::to_value(pod).unwrap_or_default();
            // A Pod the API returned is well formed; one that is not is left out rather than failing the page.
            let _ = reader.add_value(CLUSTER_SOURCE, self.read, String::new(), value);
        }
        Ok(Some(reader.finish()))
    }

    /// Pages read so far.
    pub fn pages(&self) -> usize {
        self.pages
    }
}

/// What every namespace's labels and annotations are (for policies' namespace selectors).
pub async fn namespace_facts(client: &Client) -> Result<BTreeMap<String, NamespaceFacts>, KubeError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut out = BTreeMap::new();
    let mut params = ListParams::default().limit(PAGE_SIZE);
    loop {
        let list = api.list(&params).await.map_err(|e| list_error("Namespace", "", e))?;
        for ns in list.items {
            let Some(name) = ns.metadata.name.clone() else { continue };
            let mut labels = ns.metadata.labels.unwrap_or_default();
            labels.insert(NAMESPACE_NAME_LABEL.to_owned(), name.clone());
            let annotations = ns.metadata.annotations.unwrap_or_default();
            out.insert(name, NamespaceFacts { labels: Some(labels), annotations });
        }
        match list.metadata.continue_.filter(|t| !t.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// The policies in force in the cluster, compiled with the Secrets they name (one that cannot be read is
/// left out, and compiling reports the policy that needs it).
pub async fn load_policies(client: &Client, tuf: &TufRoots) -> Result<PolicySet, KubeError> {
    async fn all<K>(client: &Client, kind: &'static str) -> Result<Vec<K>, KubeError>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api: Api<K> = Api::all(client.clone());
        Ok(api.list(&ListParams::default()).await.map_err(|e| list_error(kind, "", e))?.items)
    }
    let mut resources = PolicyResources {
        cluster_policies: all::<ClusterSupplyChainPolicy>(client, "ClusterSupplyChainPolicy").await?,
        policies: all::<SupplyChainPolicy>(client, "SupplyChainPolicy").await?,
        trust_roots: all::<TrustRoot>(client, "TrustRoot").await?,
        profiles: all::<ComplianceProfile>(client, "ComplianceProfile").await?,
        ..PolicyResources::default()
    };
    let mut secrets = Secrets::none();
    for (ns, name) in resources.secret_refs() {
        let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        match api.get_opt(&name).await {
            Ok(Some(secret)) => {
                let data = secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
                secrets.insert(&ns, &name, data);
            }
            Ok(None) => tracing::warn!(namespace = %ns, secret = %name, "policy secret not found"),
            Err(e) => {
                return Err(KubeError::Read { kind: "Secret", namespace: ns, name, source: Box::new(e) })
            }
        }
    }
    tuf.resolve(&mut resources, &secrets).await;
    Ok(PolicySet::compile(resources, &secrets))
}
