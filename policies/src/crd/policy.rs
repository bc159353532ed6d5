//! `ClusterSupplyChainPolicy` and `SupplyChainPolicy`: one spec, two scopes.

use std::collections::{BTreeMap, BTreeSet};

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::signature::SignatureRequirement;
use super::status::PolicyStatus;

/// What a policy requires of which artifacts, in which namespaces and objects.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    /// Globs over normalised references without tag or digest (`registry/repository`, e.g.
    /// `ghcr.io/acme/**`): `*` matches within one path segment, `**` across segments, `?` one character.
    pub images: Vec<String>,
    /// Globs (as `images`) of images the policy does not cover although `images` names them (a vendored
    /// sidecar): exclusion wins within this policy only; other policies that name the image still apply,
    /// and an image no policy covers gets the no-match action.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_images: Vec<String>,
    /// Deny references by tag (`requirement digest`): every covered image must be written with its digest
    /// (`repo@sha256:…` or `repo:tag@sha256:…`). For clusters that run without the mutating webhook, which
    /// would otherwise pin verified tags to their digests.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_digest: bool,
    /// Which objects the policy applies to (default: all).
    #[serde(default, rename = "match", skip_serializing_if = "MatchSpec::is_empty")]
    pub match_: MatchSpec,
    /// Who may sign: any authority satisfies a requirement unless the requirement names its own
    /// (`requirements.signature.authorities`, `requirements.attestations[].authorities`).
    pub authorities: Vec<AuthoritySpec>,
    /// What must be verified.
    #[serde(default)]
    pub requirements: RequirementsSpec,
    /// What a failed requirement does (default Enforce).
    #[serde(default)]
    pub mode: Mode,
    /// What happens when verification cannot be carried out (registry down or slower than the budget).
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    /// Pull credentials for the covered registries, in addition to the workload's imagePullSecrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsSpec>,
    /// Name of a ComplianceProfile every covered artifact must satisfy (besides one a workload selects by
    /// its `vouch.dev/compliance-profile` annotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_profile: Option<String>,
    /// How problems of init-container fetchers whose image the policy covers are judged (default: the
    /// policy's mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetchers: Option<FetcherRules>,
    /// Egress checks: the allowlist used for NetworkPolicies of namespaces without their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<EgressRules>,
}

impl PolicySpec {
    /// The policy-language features beyond the first policy format this policy uses (an offline bundle
    /// lists them, so a reader that does not know one refuses the bundle instead of ignoring the field).
    pub fn policy_features(&self) -> BTreeSet<&'static str> {
        use vouch_attest::offline::policy_features as f;
        let mut out = BTreeSet::new();
        if !matches!(self.requirements.signature, SignatureRequirement::Required(_)) {
            out.insert(f::SIGNATURE_RULES);
        }
        if self.requirements.attestations.iter().any(|a| !a.authorities.is_empty()) {
            out.insert(f::ATTESTATION_AUTHORITIES);
        }
        if !self.exclude_images.is_empty() {
            out.insert(f::EXCLUDE_IMAGES);
        }
        if self.require_digest {
            out.insert(f::REQUIRE_DIGEST);
        }
        if self.authorities.iter().any(|a| a.notation.is_some()) {
            out.insert(f::NOTATION_AUTHORITIES);
        }
        if self.authorities.iter().any(|a| a.notation.as_ref().is_some_and(|n| n.crls.is_some())) {
            out.insert(f::NOTATION_CRLS);
        }
        out
    }
}

/// Per-problem modes for init-container fetchers; an unset field uses the policy's mode.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FetcherRules {
    /// A fetcher whose source cannot be determined or is not an OCI reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unverifiable_source: Option<Mode>,
    /// A fetcher (the KitOps init container) whose own signature verification is switched off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_disabled: Option<Mode>,
}

/// Egress allowlist settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EgressRules {
    /// Reference of the signed egress allowlist for NetworkPolicies in namespaces without a
    /// `vouch.dev/egress-allowlist` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowlist: Option<String>,
}

macro_rules! policy_resource {
    ($spec:ident, $kind:literal, $short:literal, $($scope:tt)*) => {
        /// What the policy requires of which artifacts (the shared `PolicySpec`).
        #[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
        #[kube(group = "vouch.dev", version = "v1alpha1", kind = $kind, shortname = $short,
               status = "PolicyStatus", derive = "PartialEq", $($scope)*
               printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.mode"}"#,
               printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#)]
        #[serde(rename_all = "camelCase")]
        pub struct $spec {
            /// The policy.
            #[serde(flatten)]
            pub policy: PolicySpec,
        }
    };
}

policy_resource!(ClusterSupplyChainPolicySpec, "ClusterSupplyChainPolicy", "cscp",);
policy_resource!(SupplyChainPolicySpec, "SupplyChainPolicy", "scp", namespaced,);

/// Which objects a policy applies to; every field given must match.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchSpec {
    /// Namespace names or globs (`team-*`); empty = every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Labels of the object's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Labels of the object itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_selector: Option<LabelSelector>,
    /// Kinds (`Pod`, `Deployment`, `CronJob`, ...); empty = every supported kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
}

impl MatchSpec {
    /// Whether nothing is constrained.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// A Kubernetes label selector: all of `matchLabels` and all of `matchExpressions` must hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One set-based label requirement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// How the label relates to `values`.
    pub operator: LabelSelectorOperator,
    /// Values for In / NotIn (must be empty for Exists / DoesNotExist).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Label selector operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LabelSelectorOperator {
    /// The label's value is one of `values`.
    In,
    /// The label is absent or its value is none of `values`.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// A named authority: exactly one of `key`, `keyless` or `notation`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthoritySpec {
    /// Name used in messages (`no signature verifies against key cosign-prod`).
    pub name: String,
    /// A long-lived public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeySpec>,
    /// Fulcio certificate identities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyless: Option<KeylessSpec>,
    /// A Notary Project (Notation) trust store and trusted identities: satisfies the signature requirement
    /// with Notation signatures (referrers of artifact type `application/vnd.cncf.notary.signature`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notation: Option<NotationSpec>,
    /// What the authority signs: cosign signatures (default), or OpenSSF model-signing signatures of
    /// models (then it satisfies the signature requirement of model artifacts only).
    #[serde(default, skip_serializing_if = "SignatureFormat::is_default")]
    pub signature_format: SignatureFormat,
}

/// A Notation trust policy statement for one authority.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotationSpec {
    /// The certificates the signing certificate's chain must lead to.
    pub trust_store: NotationTrustStoreSpec,
    /// Timestamp authorities for RFC 3161 countersignatures; without it a signature's timestamp is not used
    /// and certificates must be valid now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsa_trust_store: Option<NotationTrustStoreSpec>,
    /// Accepted signers, any may match: `x509.subject: C=…, ST=…, O=…, CN=…` (every attribute named must
    /// be in the signing certificate's subject; C, ST and O are required) or `*`.
    pub trusted_identities: Vec<String>,
    /// Verification level (default `strict`).
    #[serde(default)]
    pub level: NotationLevel,
    /// CRLs of the CAs that issued the signing and TSA certificates, for the revocation check (vouch
    /// downloads no CRL and asks no OCSP responder). Without them revocation is recorded as not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crls: Option<NotationCrlSpec>,
}

/// CRLs, inline or from a secret: exactly one of `pem` or `secretRef`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotationCrlSpec {
    /// One or more PEM `X509 CRL` blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
    /// A secret holding the CRLs as PEM, or one CRL as DER (default key `crl.pem`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
}

/// PEM certificates, inline or from a secret: exactly one of `pem` or `secretRef`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotationTrustStoreSpec {
    /// One or more PEM `CERTIFICATE` blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
    /// A secret holding the PEM (default key `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// The store's type: `ca` (default; signatures of scheme `notary.x509`) or `signingAuthority`
    /// (`notary.x509.signingAuthority`). Ignored for `tsaTrustStore`.
    #[serde(default, rename = "type")]
    pub store_type: NotationTrustStoreType,
}

/// What a Notation trust store's certificates vouch for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NotationTrustStoreType {
    /// Certificate authorities.
    #[default]
    Ca,
    /// Signing authorities.
    SigningAuthority,
}

/// Notation's verification levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NotationLevel {
    /// Every check enforced (revocation against the CRLs given; without CRLs it is recorded as not checked).
    #[default]
    Strict,
    /// Integrity and authenticity enforced; timestamp, expiry and revocation failures recorded.
    Permissive,
    /// Only integrity enforced; everything else recorded.
    Audit,
    /// Nothing verified: the authority is satisfied without a signature.
    Skip,
}

/// The signature format an authority is checked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SignatureFormat {
    /// cosign signatures and attestations (the `.sig` tag, or a Sigstore bundle referrer).
    #[default]
    Cosign,
    /// OpenSSF model signing (model-signing v1.0 Sigstore bundles over the model's files).
    ModelSigning,
}

impl SignatureFormat {
    /// Whether this is the default (cosign).
    pub fn is_default(&self) -> bool {
        *self == Self::Cosign
    }
}

/// A public key, inline or from a secret: exactly one of `pem` or `secretRef`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeySpec {
    /// PEM-encoded public key (SubjectPublicKeyInfo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
    /// A secret holding the PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// Require a verified Rekor entry for signatures by this key (default true).
    #[serde(default = "default_true")]
    pub require_tlog: bool,
}

fn default_true() -> bool {
    true
}

/// A key of a secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Secret namespace: required for cluster-scoped resources; a SupplyChainPolicy may only name its own
    /// namespace (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Key within the secret's data (default `cosign.pub` for keys, `.dockerconfigjson` for
    /// credentials, `trusted_root.json` for trust roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Keyless (Fulcio) signing identities.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeylessSpec {
    /// Accepted identities; any may match.
    pub identities: Vec<IdentitySpec>,
    /// Name of a TrustRoot resource (default: the trust root vouch runs with, Sigstore public good unless
    /// configured otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_root_ref: Option<String>,
}

/// One accepted certificate identity: one of `subject`/`subjectRegExp` and one of `issuer`/`issuerRegExp`,
/// and optionally claims (Fulcio certificate extensions), each named in `claims` or in `claimsRegExp`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySpec {
    /// Exact certificate SAN (email, URI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Regular expression the whole SAN must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_reg_exp: Option<String>,
    /// Exact OIDC issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Regular expression the whole issuer must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_reg_exp: Option<String>,
    /// Fulcio certificate extensions that must have exactly these values, by claim name
    /// (`sourceRepositoryRef: refs/heads/main`; names in docs/policy-reference.md). All must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, String>,
    /// Fulcio certificate extensions whose whole value must match these regular expressions, by claim
    /// name. All must match; a claim is named here or in `claims`, not both.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims_reg_exp: BTreeMap<String, String>,
}

/// What must be verified; at least one requirement must be set.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequirementsSpec {
    /// A signature by an authority: `true`, or `{authorities: [names], minAuthorities: N, annotations:
    /// {key: value or ^regexp$}}`. A CRD schema cannot say "boolean or object", so the API server stores
    /// any value here and vouch checks it: a wrong shape makes the policy invalid (Ready=False), and the
    /// images it names are denied.
    #[serde(default)]
    pub signature: SignatureRequirement,
    /// Attestations by an authority, by predicate type, each optionally with a Rego condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attestations: Vec<AttestationRequirement>,
    /// A valid CycloneDX SBOM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<SbomRequirement>,
}

/// An attestation requirement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttestationRequirement {
    /// The in-toto predicate type, e.g. `https://slsa.dev/provenance/v1`.
    pub predicate_type: String,
    /// A Rego module that must define `allow` (true for some verified attestation of that type); it may
    /// define `deny` (a set of messages) or `reasons` for the denial message. Input: `predicateType`,
    /// `predicate`, `artifact` {reference, digest}, `object`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Names of the policy's authorities that may satisfy this requirement (default: all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorities: Vec<String>,
}

/// The SBOM requirement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SbomRequirement {
    /// Whether a valid SBOM is required.
    pub required: bool,
}

/// What a failed requirement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
pub enum Mode {
    /// Deny admission.
    #[default]
    Enforce,
    /// Admit with a warning.
    Warn,
    /// Admit and record.
    Audit,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Enforce => "enforce",
            Self::Warn => "warn",
            Self::Audit => "audit",
        })
    }
}

/// What happens when verification cannot be carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub enum FailurePolicy {
    /// Treat as a failed requirement (fail closed).
    #[default]
    Fail,
    /// Admit with a warning (fail open).
    Ignore,
}

/// Registry pull credentials: a `kubernetes.io/dockerconfigjson` secret in the cluster, or a Docker config
/// JSON file when policies are loaded from files.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSpec {
    /// The secret (key default `.dockerconfigjson`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// A Docker config JSON file (file mode; relative to the policy directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}
