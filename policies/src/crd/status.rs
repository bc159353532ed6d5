//! Status of the policy resources, written by the cluster integration.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Status of a SupplyChainPolicy / ClusterSupplyChainPolicy.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: True when the policy compiled and is in force; False with every problem in the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// What each vouch replica counted for this policy, by pod name: per replica and since that replica
    /// put the policy in force (`since`), never cluster totals. Each replica writes only its own entry; an
    /// entry not rewritten for a while (`updated`) belongs to a replica that is gone and is removed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub replica_counts: BTreeMap<String, ReplicaCounts>,
}

impl PolicyStatus {
    /// The `Ready` condition for `generation`: True without problems, else False listing them all.
    pub fn ready(generation: Option<i64>, problems: &[String], now: &str) -> Self {
        Self {
            observed_generation: generation,
            conditions: vec![Condition::ready(generation, problems, now)],
            replica_counts: BTreeMap::new(),
        }
    }
}

/// What one vouch replica counted for a policy: an entry of `status.replicaCounts`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCounts {
    /// RFC 3339 time from which this replica counts: when it put this policy in force (at its start, or
    /// when the policy was created). A restarted replica starts again from 0.
    pub since: String,
    /// RFC 3339 time this replica last wrote the entry: whenever its counts change, and at least every few
    /// minutes while it runs.
    pub updated: String,
    /// What this replica counted since `since`.
    #[serde(flatten)]
    pub counts: PolicyCounts,
}

/// Evaluation counts (per requirement result).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyCounts {
    /// Requirements met.
    pub passed: u64,
    /// Requirements not met.
    pub failed: u64,
    /// Verifications that could not be carried out.
    pub errors: u64,
}

/// A status condition (the shape of `metav1.Condition`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable details.
    #[serde(default)]
    pub message: String,
    /// RFC 3339 time of the last status change.
    pub last_transition_time: String,
    /// The generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// `Ready` True (reason `Compiled`) or False (reason `Invalid`, problems joined with "; ").
    pub fn ready(generation: Option<i64>, problems: &[String], now: &str) -> Self {
        let ok = problems.is_empty();
        Self {
            type_: "Ready".to_owned(),
            status: if ok { "True" } else { "False" }.to_owned(),
            reason: if ok { "Compiled" } else { "Invalid" }.to_owned(),
            message: if ok { "policy is in force".to_owned() } else { problems.join("; ") },
            last_transition_time: now.to_owned(),
            observed_generation: generation,
        }
    }
}

/// Status of a TrustRoot.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrustRootStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: True when the trust root parsed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// SHA-256 of the trust root in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}
