//! The policy custom resources (group `vouch.dev`, version `v1alpha1`): [`ClusterSupplyChainPolicy`]
//! (cluster-scoped), [`SupplyChainPolicy`] (applies only in its own namespace) and [`TrustRoot`]. The same
//! types are read from files (`PolicySet::load_dir`) and from the cluster.

mod policy;
mod profile;
mod signature;
mod status;
mod trust_root;

pub use policy::{
    AttestationRequirement, AuthoritySpec, ClusterSupplyChainPolicy, ClusterSupplyChainPolicySpec,
    CredentialsSpec, EgressRules, FailurePolicy, FetcherRules, IdentitySpec, KeySpec, KeylessSpec,
    LabelSelector, LabelSelectorOperator, LabelSelectorRequirement, MatchSpec, Mode, NotationCrlSpec,
    NotationLevel, NotationSpec, NotationTrustStoreSpec, NotationTrustStoreType, PolicySpec,
    RequirementsSpec, SbomRequirement, SecretKeyRef, SignatureFormat, SupplyChainPolicy,
    SupplyChainPolicySpec,
};
pub use profile::{
    AnnotationRule, AnnotationSource, AttestationRule, ComplianceProfile, ComplianceProfileSpec,
    ComplianceProfileStatus, ModelRule, SbomRule,
};
pub use signature::{SignatureRequirement, SignatureRules};
pub use status::{Condition, PolicyCounts, PolicyStatus, ReplicaCounts, TrustRootStatus};
pub use trust_root::{TrustRoot, TrustRootSpec, TufRootSource, TufSpec};

/// The API group of every vouch resource.
pub const GROUP: &str = "vouch.dev";
/// The version served.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every vouch resource.
pub const API_VERSION: &str = "vouch.dev/v1alpha1";
