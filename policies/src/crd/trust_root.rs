//! `TrustRoot`: Sigstore trust material (Fulcio CAs, Rekor and CT log keys, TSAs) for keyless authorities.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::policy::SecretKeyRef;
use super::status::TrustRootStatus;

/// A Sigstore `trusted_root.json`, inline or from a secret: exactly one of `trustedRootJSON` or `secretRef`.
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
}
