//! The artifacts an admitted object names, each with the JSON pointer of its field (for pinning) and a
//! name (for messages): containers, init/ephemeral containers, image volumes and ModelPack CSI volumes of
//! Pods and pod templates (`pod`), KServe InferenceService `storageUri`s (`kserve`), what init-container
//! fetchers will pull (`fetchers`), fields of custom kinds found by configured JSONPath extractors
//! (`jsonpath`, `config`), and egress declarations with their allowlists (`egress`).
//!
//! Objects come from outside: a field of the wrong type or an oversized list is an [`ExtractError`], never a
//! panic, and only fixed paths and configured JSONPath expressions without descendant segments are read (no
//! recursion over the object).
//!
//! Entry points: [`extract_with`] with an [`ExtractionConfig`] compiled once ([`ExtractionConfig::compile`]),
//! or [`extract_all`], which compiles it per call. See docs/extractors.md for every place read.

mod config;
mod egress;
mod fetchers;
mod git;
mod json;
mod jsonpath;
mod kserve;
mod pod;
mod shell;

use std::collections::BTreeSet;

use crate::decision::{ArtifactKind, ArtifactLocation};
use crate::engine::{AdmissionInput, ObjectJson, UnreadableObject};
use crate::Operation;

pub use config::{
    CompiledExtraction, DownloaderPattern, EndpointParts, EndpointPath, ExtractionConfig, FetcherProfile,
    FieldExtractor, ReferenceParts, ReferencePath,
};
pub use json::{escape_pointer_segment, unescape_pointer_segment, value_at};
pub use jsonpath::{normalized_path_to_pointer, CompiledPath, Hit};
pub use pod::{from_pod_spec, pod_spec_pointer};

/// Most entries read from one list (containers, volumes, env, JSONPath matches, endpoints, ...).
pub const MAX_LIST_ENTRIES: usize = 256;
/// Longest image or reference string accepted.
pub const MAX_IMAGE_LEN: usize = 4096;

/// An artifact named by the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedArtifact {
    /// Where it is named.
    pub location: ArtifactLocation,
    /// The reference as written (without `prefix` and `suffix`).
    pub image: String,
    /// Text before the reference inside the field (`oci://`, `docker://`, `--from=`, a script's start, or "").
    pub prefix: String,
    /// Text after the reference inside the field (mostly ""). The field's value is `prefix + image + suffix`;
    /// a pin writes `prefix + image@digest + suffix` at `location.pointer`.
    pub suffix: String,
    /// The artifact type the object declares for it (a reference made of parts with an `artifactType`
    /// part); the artifact's manifest must declare the same.
    pub artifact_type: Option<String>,
}

/// Everything an object names: artifacts to verify, fetchers that cannot be verified, egress to check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extracted {
    /// `Some(why)`: nothing to check (DELETE, status, a kind that names nothing, ...).
    pub skip: Option<String>,
    /// Images, models, fetched references and egress allowlist references.
    pub artifacts: Vec<ExtractedArtifact>,
    /// Fetchers (and non-OCI model sources) whose source cannot be verified, or that skip their own checks.
    pub fetcher_problems: Vec<FetcherProblem>,
    /// Declared egress, each with the allowlist that must cover it.
    pub egress: Vec<EgressDeclaration>,
}

/// A fetcher whose source cannot be verified, or which switched its own verification off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetcherProblem {
    /// The init container (kind `InitContainer`), or the `storageUri` / field naming a non-OCI source.
    pub location: ArtifactLocation,
    /// The fetcher's image as written ("" when the object names no fetcher image, e.g. a storageUri).
    pub fetcher_image: String,
    /// The fetcher profile that recognised it (`kitops-init`, `kit unpack`, a configured name, ...).
    pub profile: String,
    /// What is wrong.
    pub kind: FetcherProblemKind,
    /// One readable sentence naming the container and the source.
    pub message: String,
}

/// What is wrong with a fetcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetcherProblemKind {
    /// What it will fetch cannot be determined at admission (valueFrom, a variable, an unparseable script).
    UnknownSource,
    /// It fetches something that is not an OCI reference (https://, hf://, s3://, a local path, ...).
    NotOci {
        /// The source as written.
        source: String,
    },
    /// The fetcher's own signature verification is switched off.
    VerificationDisabled {
        /// How (which settings are missing).
        how: String,
    },
}

/// Endpoints a workload declares it reaches, and the allowlist that must cover them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressDeclaration {
    /// Where declared: `annotation vouch.dev/egress`, `spec.allowedEndpoints`, `NetworkPolicy egress[0].to[1]`.
    pub location: String,
    /// As written (`api.example.com:443`, `10.0.0.0/8`, `10.0.0.0/8:5432`).
    pub endpoints: Vec<String>,
    /// Index into [`Extracted::artifacts`] of the allowlist reference that must cover them; `None` = the
    /// namespace's allowlist (the engine resolves it).
    pub allowlist: Option<usize>,
}

/// The object cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The request carries no object although the operation needs one.
    #[error("the request has no object")]
    NoObject,
    /// The object's JSON cannot be read whole (configured extractors read it whole).
    #[error(transparent)]
    Unreadable(#[from] UnreadableObject),
    /// A field has the wrong JSON type.
    #[error("{pointer}: expected {expected}, found {found}")]
    WrongType {
        /// Where.
        pointer: String,
        /// What the field must be.
        expected: &'static str,
        /// What it is.
        found: &'static str,
    },
    /// A list is longer than [`MAX_LIST_ENTRIES`].
    #[error("{pointer}: {count} entries, more than the {max} read")]
    TooMany {
        /// Where.
        pointer: String,
        /// How many entries.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An image string is longer than [`MAX_IMAGE_LEN`].
    #[error("{pointer}: image longer than {max} characters")]
    ImageTooLong {
        /// Where.
        pointer: String,
        /// The limit.
        max: usize,
    },
    /// Another string (an endpoint, a CIDR) is longer than the limit for it.
    #[error("{pointer}: value longer than {max} characters")]
    ValueTooLong {
        /// Where.
        pointer: String,
        /// The limit.
        max: usize,
    },
    /// A part of a reference or endpoint made of parts is missing.
    #[error("{pointer}: missing (a part of the object {path} selects)")]
    MissingPart {
        /// Where it should be.
        pointer: String,
        /// The JSONPath that selected the object.
        path: String,
    },
    /// A part of a reference made of parts would change what the reference means.
    #[error("{pointer}: {reason}")]
    InvalidPart {
        /// Where.
        pointer: String,
        /// Why.
        reason: String,
    },
    /// A configured JSONPath expression could not be evaluated on the object.
    #[error("JSONPath {path}: {reason}")]
    JsonPath {
        /// The expression.
        path: String,
        /// Why.
        reason: String,
    },
    /// The extraction configuration is invalid (only from [`extract_all`], which compiles it per call).
    #[error("invalid extraction configuration: {}", problems.join("; "))]
    Config {
        /// Every problem.
        problems: Vec<String>,
    },
}

/// Everything an object names, with `config` compiled for this call; callers that extract often should
/// compile once ([`ExtractionConfig::compile`]) and call [`extract_with`].
pub fn extract_all(input: &AdmissionInput, config: &ExtractionConfig) -> Result<Extracted, ExtractError> {
    let compiled = config.compile().map_err(|problems| ExtractError::Config { problems })?;
    extract_with(input, &compiled)
}

/// Everything an object names. DELETE, CONNECT and subresources other than `ephemeralcontainers` are
/// skipped. On UPDATE, artifacts whose reference also appears in the old object are dropped (verified when
/// admitted) unless an egress declaration needs them; fetcher problems and egress declarations are always
/// reported. The `ephemeralcontainers` subresource reports only the pod spec's artifacts: nothing else of
/// a running Pod can change through it.
pub fn extract_with(input: &AdmissionInput, config: &CompiledExtraction) -> Result<Extracted, ExtractError> {
    if let Some(why) = skipped_request(input) {
        return Ok(Extracted { skip: Some(why), ..Extracted::default() });
    }
    let ephemeral = is_ephemeral(input);
    let Some(places) = Places::of(&input.kind, ephemeral, config) else {
        return Ok(Extracted {
            skip: Some(format!("kind {} names no artifacts", input.kind.kind)),
            ..Extracted::default()
        });
    };
    let object = input.object.as_ref().ok_or(ExtractError::NoObject)?;
    let mut found = places.extract(places.view(object)?, config)?;
    if input.operation == Operation::Update {
        if let Some(old) = &input.old_object {
            // An unreadable old object verifies everything afresh (fail closed).
            if let Ok(before) = places.view(old).and_then(|old| places.extract(old, config)) {
                let before: BTreeSet<String> = before.artifacts.into_iter().map(|a| a.image).collect();
                drop_unchanged(&mut found, &before);
            }
        }
    }
    Ok(found)
}

/// The places read for one kind of object.
struct Places<'a> {
    ephemeral: bool,
    pod_spec: Option<&'static str>,
    inference: bool,
    network_policy: bool,
    extractors: Vec<&'a config::CompiledExtractor>,
}

impl<'a> Places<'a> {
    /// `None` when the kind names nothing.
    fn of(
        kind: &'a crate::GroupVersionKind,
        ephemeral: bool,
        config: &'a CompiledExtraction,
    ) -> Option<Self> {
        if ephemeral {
            return Some(Self {
                ephemeral,
                pod_spec: Some("/spec"),
                inference: false,
                network_policy: false,
                extractors: Vec::new(),
            });
        }
        let places = Self {
            ephemeral,
            pod_spec: pod_spec_pointer(&kind.group, &kind.kind),
            inference: kserve::is_inference_service(&kind.group, &kind.kind),
            network_policy: egress::is_network_policy(&kind.group, &kind.kind),
            extractors: config.extractors_for(&kind.group, &kind.version, &kind.kind).collect(),
        };
        let any = places.pod_spec.is_some()
            || places.inference
            || places.network_policy
            || !places.extractors.is_empty();
        any.then_some(places)
    }

    /// What is read of `object`: what is read at once, or the whole object when configured JSONPath
    /// extractors (which may read any field) apply to its kind.
    fn view<'o>(&self, object: &'o ObjectJson) -> Result<&'o serde_json::Value, ExtractError> {
        if self.extractors.is_empty() {
            Ok(object.read())
        } else {
            Ok(object.whole()?)
        }
    }

    fn extract(
        &self,
        object: &serde_json::Value,
        config: &CompiledExtraction,
    ) -> Result<Extracted, ExtractError> {
        let mut out = Extracted::default();
        if let Some(spec) = self.pod_spec {
            out.artifacts.extend(from_pod_spec(object, spec)?);
            if self.ephemeral {
                return Ok(out);
            }
            fetchers::from_init_containers(object, spec, config, &mut out)?;
        }
        if self.inference {
            kserve::extract(object, config, &mut out)?;
        }
        if self.network_policy {
            egress::network_policy(object, &mut out)?;
        }
        for e in &self.extractors {
            egress::custom_kind(object, e, &mut out)?;
        }
        if self.pod_spec.is_some() || self.inference || !self.extractors.is_empty() {
            egress::annotations(object, template_metadata(self.pod_spec).as_deref(), &mut out)?;
        }
        Ok(out)
    }
}

/// Pointer of the pod template's metadata for a pod spec at `spec` (`None` for a Pod: it is the object's).
fn template_metadata(spec: Option<&str>) -> Option<String> {
    spec.and_then(|s| s.strip_suffix("/spec")).filter(|t| !t.is_empty()).map(|t| format!("{t}/metadata"))
}

/// Drop artifacts named unchanged before, keeping those an egress declaration refers to (re-indexed).
fn drop_unchanged(found: &mut Extracted, before: &BTreeSet<String>) {
    let needed: BTreeSet<usize> = found.egress.iter().filter_map(|d| d.allowlist).collect();
    let mut new_index = Vec::with_capacity(found.artifacts.len());
    let mut kept = Vec::new();
    for (i, a) in std::mem::take(&mut found.artifacts).into_iter().enumerate() {
        if needed.contains(&i) || !before.contains(&a.image) {
            new_index.push(Some(kept.len()));
            kept.push(a);
        } else {
            new_index.push(None);
        }
    }
    found.artifacts = kept;
    for d in &mut found.egress {
        d.allowlist = d.allowlist.and_then(|i| new_index.get(i).copied().flatten());
    }
}

fn skipped_request(input: &AdmissionInput) -> Option<String> {
    if matches!(input.operation, Operation::Delete | Operation::Connect) {
        return Some(format!("{:?} is not checked", input.operation).to_lowercase());
    }
    match input.sub_resource.as_deref() {
        None | Some("" | "ephemeralcontainers") => None,
        Some(other) => Some(format!("subresource {other} is not checked")),
    }
}

fn is_ephemeral(input: &AdmissionInput) -> bool {
    input.sub_resource.as_deref() == Some("ephemeralcontainers")
}

/// An artifact whose field value is `prefix + image + suffix`, with the reference's length bounded.
pub(crate) fn artifact(
    kind: ArtifactKind,
    name: String,
    pointer: String,
    image: &str,
    prefix: &str,
    suffix: &str,
) -> Result<ExtractedArtifact, ExtractError> {
    if image.len() > MAX_IMAGE_LEN {
        return Err(ExtractError::ImageTooLong { pointer, max: MAX_IMAGE_LEN });
    }
    Ok(ExtractedArtifact {
        location: ArtifactLocation { kind, name, pointer },
        image: image.to_owned(),
        prefix: prefix.to_owned(),
        suffix: suffix.to_owned(),
        artifact_type: None,
    })
}
