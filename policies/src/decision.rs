//! What an evaluation decides: [`Decision`], with a [`Finding`] per (artifact, policy, requirement) and the
//! [`Pin`]s the mutating webhook applies.

use std::fmt;

use serde::Serialize;
use vouch_attest::Digest;

use crate::crd::Mode;
use crate::reason::ReasonCode;

/// The answer for one admission request.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    /// Whether the object may be admitted.
    pub allowed: bool,
    /// For denials: `<kind> <ns>/<name>: <artifact>: image <ref> : policy <p>: <requirement>: <reason>`,
    /// several failures joined with "; ".
    pub message: Option<String>,
    /// AdmissionResponse warnings (warn mode, fail-open, no-match warn).
    pub warnings: Vec<String>,
    /// Would-be denials recorded in audit mode / dry-run.
    pub audit: Vec<Finding>,
    /// Every (artifact, policy, requirement) result, pass or fail.
    pub findings: Vec<Finding>,
    /// Verified artifacts to pin to their digest.
    pub pins: Vec<Pin>,
    /// For denials: each enforced failure, for programs (the admission response's
    /// `status.details.causes`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<Cause>,
}

/// One reason a denial denies, as Kubernetes' `StatusCause` has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    /// The stable code.
    pub reason: ReasonCode,
    /// The denial line of this failure.
    pub message: String,
    /// The offending field, as a JSON path (`spec.initContainers[0].image`); empty when none applies.
    pub field: String,
}

impl Cause {
    /// The cause of a failed finding, with its denial line.
    pub fn of(finding: &Finding, message: String) -> Self {
        Self { reason: finding.code(), message, field: crate::reason::field_path(&finding.artifact.pointer) }
    }
}

impl Decision {
    /// Allowed, nothing to say.
    pub fn allow() -> Self {
        Self { allowed: true, ..Self::default() }
    }
}

/// Which kind of image field an artifact came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ArtifactKind {
    /// `containers[]`.
    Container,
    /// `initContainers[]`.
    InitContainer,
    /// `ephemeralContainers[]`.
    EphemeralContainer,
    /// `volumes[].image.reference`.
    ImageVolume,
    /// A CSI volume of the ModelPack driver (`model.csi.modelpack.org`, `volumeAttributes.modelRef`).
    ModelVolume,
    /// A KServe InferenceService `storageUri` (`oci://…`).
    StorageUri,
    /// What an init-container fetcher will pull at start-up.
    Fetcher,
    /// A custom-resource field found by a configured JSONPath extractor.
    Field,
    /// A reference to a signed egress allowlist.
    EgressAllowlist,
}

impl ArtifactKind {
    /// Every kind.
    pub const ALL: [Self; 9] = [
        Self::Container,
        Self::InitContainer,
        Self::EphemeralContainer,
        Self::ImageVolume,
        Self::ModelVolume,
        Self::StorageUri,
        Self::Fetcher,
        Self::Field,
        Self::EgressAllowlist,
    ];
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Container => "container",
            Self::InitContainer => "initContainer",
            Self::EphemeralContainer => "ephemeralContainer",
            Self::ImageVolume => "image volume",
            Self::ModelVolume => "model volume",
            Self::StorageUri => "storageUri",
            Self::Fetcher => "fetcher",
            Self::Field => "field",
            Self::EgressAllowlist => "egress allowlist",
        })
    }
}

/// Where an artifact is named in the object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactLocation {
    /// The kind of field.
    pub kind: ArtifactKind,
    /// The container or volume name.
    pub name: String,
    /// JSON pointer of the image string, e.g. `/spec/template/spec/containers/0/image`.
    pub pointer: String,
}

impl fmt::Display for ArtifactLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

/// Result of one requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FindingResult {
    /// Met.
    Pass,
    /// Not met (verified "no").
    Fail,
    /// Could not be verified (registry unreachable, budget exceeded).
    Error,
}

impl fmt::Display for FindingResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Error => "error",
        })
    }
}

/// One (artifact, policy, requirement) result. Serialized with its [`ReasonCode`] (`reasonCode`) and, when it
/// did not pass, the code's `remediation`.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Policy name (empty for findings without a policy, e.g. an unreadable reference).
    pub policy: String,
    /// The policy's namespace (SupplyChainPolicy), `None` for cluster policies.
    pub policy_namespace: Option<String>,
    /// The mode the finding was judged in (Audit under dry-run).
    pub mode: Mode,
    /// `signature`, `attestation <predicateType>`, `sbom`, or `reference`.
    pub requirement: String,
    /// Where the artifact is named.
    pub artifact: ArtifactLocation,
    /// The reference as verified (`name:tag@digest` once resolved, else as written).
    pub reference: String,
    /// The digest verified, when resolved.
    pub digest: Option<Digest>,
    /// Pass, fail or error.
    pub result: FindingResult,
    /// Why (for passes: which authority satisfied it).
    pub reason: String,
    /// Who signed (passes).
    pub signer: Option<String>,
    /// Rekor log index of the verified entry (passes).
    pub rekor_log_index: Option<i64>,
    /// Digest of the verified SBOM document (sbom passes).
    pub sbom_digest: Option<Digest>,
}

impl Finding {
    /// The stable code of this finding.
    pub fn code(&self) -> ReasonCode {
        ReasonCode::of(self)
    }
}

impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            policy: &'a str,
            policy_namespace: &'a Option<String>,
            mode: Mode,
            requirement: &'a str,
            artifact: &'a ArtifactLocation,
            reference: &'a str,
            digest: &'a Option<Digest>,
            result: FindingResult,
            reason: &'a str,
            reason_code: ReasonCode,
            #[serde(skip_serializing_if = "Option::is_none")]
            remediation: Option<&'static str>,
            signer: &'a Option<String>,
            rekor_log_index: Option<i64>,
            sbom_digest: &'a Option<Digest>,
        }
        let code = self.code();
        Wire {
            policy: &self.policy,
            policy_namespace: &self.policy_namespace,
            mode: self.mode,
            requirement: &self.requirement,
            artifact: &self.artifact,
            reference: &self.reference,
            digest: &self.digest,
            result: self.result,
            reason: &self.reason,
            reason_code: code,
            remediation: (self.result != FindingResult::Pass).then(|| code.remediation()),
            signer: &self.signer,
            rekor_log_index: self.rekor_log_index,
            sbom_digest: &self.sbom_digest,
        }
        .serialize(serializer)
    }
}

impl fmt::Display for Finding {
    /// One line: `container app: image reg/app:1@sha256:… : policy p: signature: <reason>` — the form of
    /// denial messages, warnings, audit annotations and `vouch check` outputs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: image {} : policy {}: {}: {}",
            self.artifact, self.reference, self.policy, self.requirement, self.reason
        )
    }
}

/// A verified artifact to pin: replace the string at `pointer` (`from`) with `to` (`name:tag@sha256:…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Pin {
    /// JSON pointer of the image field.
    pub pointer: String,
    /// The image as written.
    pub from: String,
    /// The image pinned to the verified digest.
    pub to: String,
}
