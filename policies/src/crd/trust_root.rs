//! `TrustRoot`: Sigstore trust material (Fulcio CAs, Rekor and CT log keys, TSAs) for keyless authorities.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::policy::SecretKeyRef;
use super::status::TrustRootStatus;

/// A Sigstore `trusted_root.json`: inline, from a secret, or followed through a TUF repository — exactly one
/// of `trustedRootJSON`, `secretRef` or `tuf`.
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "vouch.dev",
    version = "v1alpha1",
    kind = "TrustRoot",
    shortname = "vtr",
    status = "TrustRootStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct TrustRootSpec {
    /// The trusted root JSON (Sigstore's `trusted_root.json` format).
    #[serde(default, rename = "trustedRootJSON", skip_serializing_if = "Option::is_none")]
    pub trusted_root_json: Option<String>,
    /// A secret holding it (key default `trusted_root.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// A TUF repository whose target is the trusted root, refreshed periodically; the last good root stays
    /// in force when a refresh fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuf: Option<TufSpec>,
}

/// Where a trusted root is followed through TUF.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TufSpec {
    /// Base URL of the repository (https; metadata at the top, targets under `targets/`), or `public-good`
    /// for Sigstore's own repository.
    pub mirror: String,
    /// The TUF `root.json` the repository is trusted from (trust on first use is never done). Optional only
    /// for `public-good`, whose root is embedded in vouch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<TufRootSource>,
    /// The target that holds the trusted root (default `trusted_root.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_name: Option<String>,
}

/// A TUF `root.json`: exactly one of `inline` or `secretRef`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TufRootSource {
    /// The root.json itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// A secret holding it (key default `root.json`; `namespace` required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}
