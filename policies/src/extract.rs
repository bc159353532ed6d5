//! The artifacts an admitted object names: containers, initContainers, ephemeralContainers and image
//! volumes of Pods and of the pod templates of the built-in workload kinds, each with the JSON pointer of its
//! image field (for pinning) and a name (for messages).
//!
//! Objects come from outside: a field of the wrong type or an oversized list is an [`ExtractError`], never a
//! panic, and only the fixed paths below are read (no recursion over the object).

use std::collections::BTreeSet;

use serde_json::Value;

use crate::decision::{ArtifactKind, ArtifactLocation};
use crate::engine::AdmissionInput;
use crate::Operation;

/// Most entries read from one list (containers, volumes, ...).
pub const MAX_LIST_ENTRIES: usize = 256;
/// Longest image string accepted.
pub const MAX_IMAGE_LEN: usize = 4096;

/// An image named by the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedArtifact {
    /// Where it is named.
    pub location: ArtifactLocation,
    /// The image as written.
    pub image: String,
}

/// What admission has to verify for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extraction {
    /// Nothing to verify, and why (DELETE, a status update, a kind that names no images, ...).
    Skip(String),
    /// These artifacts (possibly none, e.g. an UPDATE that changed no image).
    Artifacts(Vec<ExtractedArtifact>),
}

/// The object cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The request carries no object although the operation needs one.
    #[error("the request has no object")]
    NoObject,
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
}

/// JSON pointer of the pod spec for a built-in workload kind, `None` for kinds that name no images.
pub fn pod_spec_pointer(group: &str, kind: &str) -> Option<&'static str> {
    match (group, kind) {
        ("", "Pod") => Some("/spec"),
        ("", "ReplicationController")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job") => Some("/spec/template/spec"),
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// What to verify for an admission request: DELETE, CONNECT and subresources other than
/// `ephemeralcontainers` are skipped; on UPDATE, artifacts whose image also appears in the old object are
/// skipped (they were verified when admitted).
pub fn extract(input: &AdmissionInput) -> Result<Extraction, ExtractError> {
    if matches!(input.operation, Operation::Delete | Operation::Connect) {
        return Ok(Extraction::Skip(format!("{:?} is not checked", input.operation).to_lowercase()));
    }
    let ephemeral = match input.sub_resource.as_deref() {
        None | Some("") => false,
        Some("ephemeralcontainers") => true,
        Some(other) => return Ok(Extraction::Skip(format!("subresource {other} is not checked"))),
    };
    let spec = if ephemeral { Some("/spec") } else { pod_spec_pointer(&input.kind.group, &input.kind.kind) };
    let Some(spec) = spec else {
        return Ok(Extraction::Skip(format!("kind {} names no images", input.kind.kind)));
    };
    let object = input.object.as_ref().ok_or(ExtractError::NoObject)?;
    let mut artifacts = from_pod_spec(object, spec)?;
    if input.operation == Operation::Update {
        if let Some(old) = &input.old_object {
            // An unreadable old object verifies everything afresh (fail closed).
            let before: BTreeSet<String> =
                from_pod_spec(old, spec).unwrap_or_default().into_iter().map(|a| a.image).collect();
            artifacts.retain(|a| !before.contains(&a.image));
        }
    }
    Ok(Extraction::Artifacts(artifacts))
}

/// Every artifact of the pod spec found at `spec_pointer` in `object` (an absent spec names none).
pub fn from_pod_spec(object: &Value, spec_pointer: &str) -> Result<Vec<ExtractedArtifact>, ExtractError> {
    let Some(spec) = walk(object, spec_pointer)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (field, kind) in [
        ("initContainers", ArtifactKind::InitContainer),
        ("containers", ArtifactKind::Container),
        ("ephemeralContainers", ArtifactKind::EphemeralContainer),
    ] {
        let list_pointer = format!("{spec_pointer}/{field}");
        for (i, entry) in list(spec.get(field), &list_pointer)?.iter().enumerate() {
            let pointer = format!("{list_pointer}/{i}");
            let entry = object_at(entry, &pointer)?;
            let name = name_of(entry, &pointer, i)?;
            if let Some(image) = string_at(entry.get("image"), &format!("{pointer}/image"))? {
                out.push(artifact(kind, name, format!("{pointer}/image"), image)?);
            }
        }
    }
    let volumes_pointer = format!("{spec_pointer}/volumes");
    for (i, entry) in list(spec.get("volumes"), &volumes_pointer)?.iter().enumerate() {
        let pointer = format!("{volumes_pointer}/{i}");
        let entry = object_at(entry, &pointer)?;
        let Some(image) = entry.get("image").filter(|v| !v.is_null()) else {
            continue;
        };
        let name = name_of(entry, &pointer, i)?;
        let image_pointer = format!("{pointer}/image");
        let image = object_at(image, &image_pointer)?;
        let reference_pointer = format!("{image_pointer}/reference");
        if let Some(reference) = string_at(image.get("reference"), &reference_pointer)? {
            out.push(artifact(ArtifactKind::ImageVolume, name, reference_pointer, reference)?);
        }
    }
    Ok(out)
}

fn artifact(
    kind: ArtifactKind,
    name: String,
    pointer: String,
    image: &str,
) -> Result<ExtractedArtifact, ExtractError> {
    if image.len() > MAX_IMAGE_LEN {
        return Err(ExtractError::ImageTooLong { pointer, max: MAX_IMAGE_LEN });
    }
    Ok(ExtractedArtifact { location: ArtifactLocation { kind, name, pointer }, image: image.to_owned() })
}

/// The value at `pointer` (object segments only); `None` when a segment is absent or null.
fn walk<'a>(
    root: &'a Value,
    pointer: &str,
) -> Result<Option<&'a serde_json::Map<String, Value>>, ExtractError> {
    let mut current = object_at(root, "")?;
    let mut path = String::new();
    for segment in pointer.split('/').skip(1) {
        path.push('/');
        path.push_str(segment);
        match current.get(segment) {
            None | Some(Value::Null) => return Ok(None),
            Some(v) => current = object_at(v, &path)?,
        }
    }
    Ok(Some(current))
}

fn object_at<'a>(v: &'a Value, pointer: &str) -> Result<&'a serde_json::Map<String, Value>, ExtractError> {
    v.as_object().ok_or_else(|| wrong(pointer, "an object", v))
}

fn list<'a>(v: Option<&'a Value>, pointer: &str) -> Result<&'a [Value], ExtractError> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) if items.len() > MAX_LIST_ENTRIES => Err(ExtractError::TooMany {
            pointer: pointer.to_owned(),
            count: items.len(),
            max: MAX_LIST_ENTRIES,
        }),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(wrong(pointer, "an array", other)),
    }
}

/// A string field; absent, null or empty means "not set".
fn string_at<'a>(v: Option<&'a Value>, pointer: &str) -> Result<Option<&'a str>, ExtractError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong(pointer, "a string", other)),
    }
}

/// The entry's `name`, or `#<index>` when unnamed (mutating admission runs before validation).
fn name_of(
    entry: &serde_json::Map<String, Value>,
    pointer: &str,
    index: usize,
) -> Result<String, ExtractError> {
    Ok(string_at(entry.get("name"), &format!("{pointer}/name"))?
        .map_or_else(|| format!("#{index}"), |n| n.chars().take(253).collect()))
}

fn wrong(pointer: &str, expected: &'static str, found: &Value) -> ExtractError {
    let found = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    ExtractError::WrongType {
        pointer: if pointer.is_empty() { "/".into() } else { pointer.to_owned() },
        expected,
        found,
    }
}
