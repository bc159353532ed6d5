//! vouch-policies: what is required of whom.
//!
//! - [`crd`]: the policy custom resources (the same types whether read from files or the cluster);
//! - [`PolicySet`]: policies validated and compiled once (keys parsed, regexes and Rego compiled, trust
//!   roots resolved), every problem of a bad policy reported at once without affecting the good ones;
//! - [`extract`]: the artifacts an admitted object names, with JSON pointers for patching;
//! - [`Engine`]: matches policies to artifacts, verifies through vouch-attest's `ArtifactVerifier`,
//!   evaluates Rego conditions, and turns the results into a [`Decision`] per mode and failure policy.

pub mod compliance;
pub mod crd;
pub mod decision;
pub mod engine;
pub mod extract;
pub mod glob;
pub mod manifests;
pub mod policy_set;
pub mod reason;
pub mod rego;
pub mod selector;

pub use decision::{ArtifactKind, ArtifactLocation, Cause, Decision, Finding, FindingResult, Pin};
pub use engine::{AdmissionInput, Engine, EngineConfig, NoMatchAction, ObjectJson, UnreadableObject};
pub use extract::ExtractionConfig;
pub use kube::core::admission::Operation;
pub use kube::core::GroupVersionKind;
pub use policy_set::{
    LoadError, PolicyProblem, PolicyResources, PolicySet, Secrets, TufRoots, TufRootsConfig,
};
pub use reason::ReasonCode;
