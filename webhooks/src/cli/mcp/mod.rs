//! `vouch mcp`: a Model Context Protocol server on stdio (the official Rust SDK, `rmcp`) giving AI agents and
//! other MCP clients vouch's read-only answers as tools:
//!
//! - `verify_image`: verify one image by digest against a key or keyless identity, or against the policies;
//! - `check_manifests`: what admission would decide about manifests (YAML text or paths) — `vouch check`;
//! - `explain_denial`: a denial message or admission response → each failed requirement, its cause and what
//!   fixes it ([`explain`]);
//! - `list_policies`: the policies in force, as compiled, and their problems;
//! - `scan_summary`: totals and non-compliant workloads of a dump of live objects — `vouch scan -f`.
//!
//! Each tool runs the same code as its command; registries, credentials, trust root and policies are the
//! operator's choice at start (flags), never the client's. Outputs are bounded ([`MAX_LISTED`] items per list);
//! bad input is a tool error naming what is wrong.

pub mod explain;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{tool, tool_handler, tool_router, Json, ServerHandler, ServiceExt as _};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::check::{self, CheckArgs};
use super::exit::EXIT_ERROR;
use super::registry_args::{positive_duration, RegistryArgs};
use super::scan::ScanArgs;
use super::verify::{self, AuthorityArgs, VerifyArgs};

/// Items listed at most in any list of a tool's answer (objects, workloads, policies); the totals count all.
pub const MAX_LISTED: usize = 200;
/// Largest inline manifest text accepted.
const MAX_YAML: usize = 4 * 1024 * 1024;

/// `vouch mcp` flags.
#[derive(Debug, clap::Args)]
pub struct McpArgs {
    /// Policies (files or directories of ClusterSupplyChainPolicy, SupplyChainPolicy, TrustRoot) for
    /// check_manifests, scan_summary, list_policies and policy-based verify_image; repeatable.
    #[arg(long = "policy", value_name = "FILE|DIR")]
    pub policies: Vec<PathBuf>,
    /// Registries, credentials and trust root for every tool.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Per-object time budget of check_manifests and scan_summary, and per-call timeout of verify_image.
    #[arg(long, default_value = "30s", value_parser = positive_duration)]
    pub timeout_budget: Duration,
}

/// Run the server on stdin/stdout until the client closes it.
pub fn run(args: McpArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    runtime.block_on(async move {
        let server = VouchMcp::new(args);
        match server.serve(rmcp::transport::stdio()).await {
            Ok(running) => match running.waiting().await {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: mcp: {e}");
                    ExitCode::from(EXIT_ERROR)
                }
            },
            Err(e) => {
                eprintln!("error: mcp: {e}");
                ExitCode::from(EXIT_ERROR)
            }
        }
    })
}

/// The server: the operator's settings and the tools.
#[derive(Debug, Clone)]
pub struct VouchMcp {
    policies: Vec<PathBuf>,
    registry: RegistryArgs,
    budget: Duration,
    tool_router: ToolRouter<Self>,
}

/// `verify_image` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct VerifyImageParams {
    /// The image, `registry/repository[:tag][@sha256:…]`; a tag is resolved once and the digest verified.
    pub reference: String,
    /// A PEM public key (ECDSA P-256/P-384, Ed25519, RSA) that must have signed.
    pub key_pem: Option<String>,
    /// Keyless: the certificate identity (SAN), exactly.
    pub certificate_identity: Option<String>,
    /// Keyless: the certificate identity as a regular expression matching the whole SAN.
    pub certificate_identity_regexp: Option<String>,
    /// Keyless: the OIDC issuer, exactly.
    pub certificate_oidc_issuer: Option<String>,
    /// Keyless: the OIDC issuer as a regular expression.
    pub certificate_oidc_issuer_regexp: Option<String>,
    /// Notation: the trust store's CA (or signing authority) certificates, PEM.
    pub notation_trust_store_pem: Option<String>,
    /// Notation: trusted identities, `x509.subject: C=…, ST=…, O=…[, CN=…]` or `*`.
    #[serde(default, deserialize_with = "strings")]
    pub notation_identities: Option<Vec<String>>,
    /// Notation: `strict` (default), `permissive`, `audit` or `skip`.
    pub notation_level: Option<String>,
    /// Notation: CRLs the signing (and TSA) chain is checked against, PEM (`X509 CRL` blocks); without
    /// them revocation is reported as not checked.
    pub notation_crls_pem: Option<String>,
    /// Notation: the TSA trust store's certificates, PEM, so that an RFC 3161 timestamp counts.
    pub notation_tsa_trust_store_pem: Option<String>,
    /// What to require: `signature` (default), `sbom`, or `attestation:<predicate type>`.
    pub require: Option<String>,
    /// Key-signed images need no Rekor entry (cosign's --insecure-ignore-tlog).
    #[serde(default, deserialize_with = "flag")]
    #[schemars(with = "Option<bool>")]
    pub insecure_ignore_tlog: Option<bool>,
    /// Instead of a key or identity: judge the image as a Pod running it would be judged by the server's
    /// policies (this one only, when named).
    pub policy: Option<String>,
    /// With `policy`: the namespace the Pod would run in (default `default`).
    pub namespace: Option<String>,
}

/// `check_manifests` arguments: `yaml` or `paths`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct CheckManifestsParams {
    /// Manifests as text (multi-document YAML or JSON, as `helm template` / `kustomize build` print them).
    pub yaml: Option<String>,
    /// Files or directories of manifests.
    pub paths: Option<Vec<String>>,
    /// Namespace of objects that name none (default `default`).
    pub namespace: Option<String>,
}

/// `explain_denial` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ExplainDenialParams {
    /// The denial: the message, `kubectl`'s error text, or the AdmissionReview / response JSON.
    pub denial: String,
}

/// `scan_summary` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ScanSummaryParams {
    /// Dumps of live objects (`kubectl get pods -A -o json`), files or directories.
    pub paths: Vec<String>,
}

/// `list_policies` arguments (none).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListPoliciesParams {}

/// One policy, as compiled.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicySummary {
    /// Name.
    pub name: String,
    /// Namespace (SupplyChainPolicy), none for cluster policies.
    pub namespace: Option<String>,
    /// Enforce, Warn or Audit.
    pub mode: String,
    /// Fail or Ignore.
    pub failure_policy: String,
    /// Image globs covered.
    pub images: Vec<String>,
    /// Authorities, as messages name them.
    pub authorities: Vec<String>,
    /// Requirements.
    pub requirements: Vec<String>,
}

/// `list_policies` answer.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyList {
    /// Policies in force (at most [`MAX_LISTED`]).
    pub policies: Vec<PolicySummary>,
    /// How many policies there are.
    pub policies_total: usize,
    /// Problems: policies (or parts) that could not be compiled (at most [`MAX_LISTED`]).
    pub problems: Vec<String>,
    /// How many problems there are.
    pub problems_total: usize,
}

/// A boolean, also as the strings `true`/`false` (clients that send every argument as a string).
fn flag<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flag {
        Bool(bool),
        Text(String),
    }
    match Option::<Flag>::deserialize(d)? {
        None => Ok(None),
        Some(Flag::Bool(b)) => Ok(Some(b)),
        Some(Flag::Text(t)) => match t.as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            other => Err(serde::de::Error::custom(format!("{other:?}: expected true or false"))),
        },
    }
}

/// A list of strings as clients send it: a list, a JSON list in a string (the MCP Inspector's CLI sends an
/// optional list so), or one string for a list of one.
fn strings<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Strings {
        List(Vec<String>),
        Text(String),
    }
    match Option::<Strings>::deserialize(d)? {
        None => Ok(None),
        Some(Strings::List(list)) => Ok(Some(list)),
        Some(Strings::Text(t)) if t.trim_start().starts_with('[') => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{t:?}: not a JSON list of strings: {e}"))),
        Some(Strings::Text(t)) => Ok(Some(vec![t])),
    }
}

/// The first [`MAX_LISTED`] of `items`, and how many there were.
fn bounded<T>(mut items: Vec<T>) -> (Vec<T>, usize) {
    let total = items.len();
    items.truncate(MAX_LISTED);
    (items, total)
}

impl VouchMcp {
    /// A server with the operator's settings.
    pub fn new(args: McpArgs) -> Self {
        Self {
            policies: args.policies,
            registry: args.registry,
            budget: args.timeout_budget,
            tool_router: Self::tool_router(),
        }
    }

    fn need_policies(&self) -> Result<(), String> {
        if self.policies.is_empty() {
            return Err("this server was started without --policy: no policies to use".into());
        }
        Ok(())
    }

    /// `vouch check` on `paths`, as JSON.
    async fn check_paths(&self, paths: &[String], namespace: Option<&str>) -> Result<Value, String> {
        self.need_policies()?;
        if paths.is_empty() || paths.iter().any(|p| p == "-") {
            return Err("give manifest text or at least one path (not -)".into());
        }
        let mut argv = vec!["check".to_owned()];
        for p in paths {
            argv.extend(["--filename".to_owned(), p.clone()]);
        }
        for p in &self.policies {
            argv.extend(["--policy".to_owned(), p.display().to_string()]);
        }
        argv.extend(["--namespace".to_owned(), namespace.unwrap_or("default").to_owned()]);
        argv.extend(["--timeout-budget".to_owned(), format!("{}ms", self.budget.as_millis())]);
        let mut args = parse::<CheckArgs>(&argv)?;
        args.registry = self.registry.clone();
        on_own_runtime(move || async move {
            let prepared = check::prepare(&args).map_err(|e| e.to_string())?;
            let (objects, distinct) =
                check::evaluate_objects(&prepared.engine, &prepared.objects, &prepared.options).await;
            let report = check::CheckReport::new(objects, distinct, false);
            let mut value = serde_json::to_value(&report).map_err(|e| e.to_string())?;
            truncate_list(&mut value, "objects");
            Ok(value)
        })
        .await
    }
}

/// Run what `make` builds on a runtime of its own, on a blocking thread: the check and scan futures borrow
/// across awaits in ways the server's task cannot hold, and their CPU work stays off its threads.
async fn on_own_runtime<T, F>(make: impl FnOnce() -> F + Send + 'static) -> Result<T, String>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, String>>,
{
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let out = rt.block_on(make());
        rt.shutdown_background();
        out
    })
    .await
    .map_err(|e| format!("the work stopped: {e}"))?
}

/// Keep at most [`MAX_LISTED`] items of `value[key]`, saying how many there were.
fn truncate_list(value: &mut Value, key: &str) {
    if let Some(list) = value.get_mut(key).and_then(Value::as_array_mut) {
        let total = list.len();
        if total > MAX_LISTED {
            list.truncate(MAX_LISTED);
            value[format!("{key}Total")] = json!(total);
            value[format!("{key}Truncated")] = json!(true);
        }
    }
}

/// A clap parse of `argv` for a subcommand's flags, errors as one line.
fn parse<T: clap::Args>(argv: &[String]) -> Result<T, String> {
    #[derive(clap::Parser)]
    struct Wrapper<A: clap::Args> {
        #[command(flatten)]
        args: A,
    }
    <Wrapper<T> as clap::Parser>::try_parse_from(argv)
        .map(|w| w.args)
        .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_owned())
}

/// A Pod running `image` in `namespace`, for a policy-based verify_image.
fn pod_manifest(image: &str, namespace: &str) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "verify-image", "namespace": namespace},
        "spec": {"containers": [{"name": "image", "image": image}]},
    })
    .to_string()
}

#[tool_router(router = tool_router)]
impl VouchMcp {
    /// verify_image
    #[tool(
        name = "verify_image",
        description = "Verify an image by digest: its signature (or an attestation, or an SBOM) by a PEM key or a keyless identity, as cosign verify does, or its Notation signature by a trust store and identities (CRLs optional), as notation verify does; or, with `policy`, judge a Pod running it by the server's policies. Returns the verdict (verified facts, or why not)."
    )]
    async fn verify_image(
        &self,
        Parameters(p): Parameters<VerifyImageParams>,
    ) -> Result<Json<Value>, String> {
        if p.policy.is_some() {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let path = dir.path().join("pod.json");
            let namespace = p.namespace.as_deref().unwrap_or("default");
            std::fs::write(&path, pod_manifest(&p.reference, namespace)).map_err(|e| e.to_string())?;
            let mut report = self.check_paths(&[path.display().to_string()], Some(namespace)).await?;
            if let (Some(name), Some(objects)) = (&p.policy, report["objects"].as_array_mut()) {
                for o in objects {
                    if let Some(findings) = o.pointer_mut("/decision/findings").and_then(Value::as_array_mut)
                    {
                        findings.retain(|f| f["policy"] == name.as_str());
                    }
                }
            }
            return Ok(Json(report));
        }
        let key_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // The PEM arguments as the files `vouch verify` reads, in a directory gone after the call.
        let file = |name: &str, pem: &Option<String>| -> Result<Option<PathBuf>, String> {
            let Some(pem) = pem else { return Ok(None) };
            let path = key_dir.path().join(name);
            std::fs::write(&path, pem).map_err(|e| e.to_string())?;
            Ok(Some(path))
        };
        let key = file("key.pem", &p.key_pem)?;
        let notation_trust_store = file("notation-ca.pem", &p.notation_trust_store_pem)?;
        let notation_tsa_trust_store = file("notation-tsa.pem", &p.notation_tsa_trust_store_pem)?;
        let notation_crl = file("notation-crls.pem", &p.notation_crls_pem)?.into_iter().collect();
        let args = VerifyArgs {
            image: p.reference.clone(),
            authority: AuthorityArgs {
                key,
                certificate_identity: p.certificate_identity,
                certificate_identity_regexp: p.certificate_identity_regexp,
                certificate_oidc_issuer: p.certificate_oidc_issuer,
                certificate_oidc_issuer_regexp: p.certificate_oidc_issuer_regexp,
                certificate_github_workflow_trigger: None,
                certificate_github_workflow_sha: None,
                certificate_github_workflow_name: None,
                certificate_github_workflow_repository: None,
                certificate_github_workflow_ref: None,
                notation_trust_store,
                notation_trust_store_type: "ca".into(),
                notation_tsa_trust_store,
                notation_identity: p.notation_identities.unwrap_or_default(),
                notation_level: p.notation_level.unwrap_or_else(|| "strict".into()),
                notation_crl,
            },
            require: p.require.unwrap_or_else(|| "signature".into()),
            registry: self.registry.clone(),
            timeout: self.budget,
            insecure_ignore_tlog: p.insecure_ignore_tlog.unwrap_or(false),
            output: verify::OutputFormat::Json,
        };
        let verdict = verify::verdict(&args).await?;
        serde_json::to_value(&verdict).map(Json).map_err(|e| e.to_string())
    }

    /// check_manifests
    #[tool(
        name = "check_manifests",
        description = "Decide about Kubernetes manifests (YAML text or paths) what vouch's admission webhook would, with the server's policies: per object allowed or denied, each finding, warnings. The report of `vouch check --output json`."
    )]
    async fn check_manifests(
        &self,
        Parameters(p): Parameters<CheckManifestsParams>,
    ) -> Result<Json<Value>, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut paths = p.paths.unwrap_or_default();
        if let Some(yaml) = &p.yaml {
            if yaml.len() > MAX_YAML {
                return Err(format!("yaml is larger than {MAX_YAML} bytes"));
            }
            let path = dir.path().join("manifests.yaml");
            std::fs::write(&path, yaml).map_err(|e| e.to_string())?;
            paths.push(path.display().to_string());
        }
        self.check_paths(&paths, p.namespace.as_deref()).await.map(Json)
    }

    /// explain_denial
    #[tool(
        name = "explain_denial",
        description = "Explain a vouch denial (the message, kubectl's error text, or the AdmissionReview/response JSON): the object, each failed requirement (artifact, reference, policy, requirement, reason as written), its cause and what usually fixes it."
    )]
    async fn explain_denial(
        &self,
        Parameters(p): Parameters<ExplainDenialParams>,
    ) -> Result<Json<explain::Explanation>, String> {
        explain::explain(&p.denial).map(Json)
    }

    /// list_policies
    #[tool(
        name = "list_policies",
        description = "The policies this server uses, as compiled: name, namespace, mode, failure policy, images, authorities, requirements; and any problems."
    )]
    async fn list_policies(
        &self,
        Parameters(_): Parameters<ListPoliciesParams>,
    ) -> Result<Json<PolicyList>, String> {
        self.need_policies()?;
        let tuf = self.registry.tuf_roots();
        let set = check::load_policies(&self.policies, &tuf).map_err(|e| e.to_string())?;
        let (policies, policies_total) = bounded(
            set.policies()
                .iter()
                .map(|p| PolicySummary {
                    name: p.name.clone(),
                    namespace: p.namespace.clone(),
                    mode: format!("{:?}", p.mode),
                    failure_policy: format!("{:?}", p.failure_policy),
                    images: p.images.iter().map(|g| g.as_str().to_owned()).collect(),
                    authorities: p.authorities.iter().map(|a| a.label.clone()).collect(),
                    requirements: p.requirements.iter().map(|r| r.label()).collect(),
                })
                .collect(),
        );
        let (problems, problems_total) = bounded(set.problems().iter().map(ToString::to_string).collect());
        Ok(Json(PolicyList { policies, policies_total, problems, problems_total }))
    }

    /// scan_summary
    #[tool(
        name = "scan_summary",
        description = "Scan dumps of live objects (kubectl get pods -A -o json) with the server's policies, verifying the digests that run: totals, totals per namespace, and the workloads that are not compliant with their reasons."
    )]
    async fn scan_summary(
        &self,
        Parameters(p): Parameters<ScanSummaryParams>,
    ) -> Result<Json<Value>, String> {
        self.need_policies()?;
        if p.paths.is_empty() || p.paths.iter().any(|p| p == "-") {
            return Err("give at least one path (not -)".into());
        }
        let mut argv = vec!["scan".to_owned()];
        for path in &p.paths {
            argv.extend(["--filename".to_owned(), path.clone()]);
        }
        for policy in &self.policies {
            argv.extend(["--policy".to_owned(), policy.display().to_string()]);
        }
        let mut args = parse::<ScanArgs>(&argv)?;
        args.registry = self.registry.clone();
        let report = super::scan::scan(&args).await.map_err(|e| e.to_string())?;
        let failing: Vec<_> = report.workloads.iter().filter(|w| !w.outcome.passes()).cloned().collect();
        let (failing, failing_total) = bounded(failing);
        Ok(Json(json!({
            "totals": report.totals,
            "namespaces": report.namespaces,
            "notCompliant": failing,
            "notCompliantTotal": failing_total,
        })))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for VouchMcp {
    fn get_info(&self) -> ServerConfig {
        let mut info = ServerConfig::new(ServerCapabilities::builder().enable_tools().build());
        info.instructions = Some(
            "vouch: supply-chain verification for Kubernetes. Read-only tools: verify_image, check_manifests, \
             explain_denial, list_policies, scan_summary."
                .into(),
        );
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_come_as_a_list_a_json_list_in_a_string_or_one_string() {
        let parse = |v: Value| {
            serde_json::from_value::<VerifyImageParams>(json!({"reference": "r", "notation_identities": v}))
                .map(|p| p.notation_identities)
        };
        let list = |items: &[&str]| Some(items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(parse(json!(["a", "b"])).unwrap(), list(&["a", "b"]));
        assert_eq!(parse(json!("[\"a\", \"b\"]")).unwrap(), list(&["a", "b"]));
        assert_eq!(parse(json!("*")).unwrap(), list(&["*"]));
        assert!(parse(json!("[not json")).unwrap_err().to_string().contains("not a JSON list"));
        let none = serde_json::from_value::<VerifyImageParams>(json!({"reference": "r"})).unwrap();
        assert_eq!(none.notation_identities, None);
    }
}
