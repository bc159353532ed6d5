//! Why an egress allowlist could not be read, published or fetched.

use super::endpoint::EndpointError;
use super::kars::CanonicalRule;
use crate::registry::RegistryError;

/// A failure reading, publishing or fetching an egress allowlist; each variant names the check that failed.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The document is larger than allowed.
    #[error("egress allowlist is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: usize,
    },
    /// A document file could not be read.
    #[error("cannot read egress allowlist {path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The document is not JSON.
    #[error("egress allowlist is not JSON: {reason}")]
    NotJson {
        /// The parser's complaint.
        reason: String,
    },
    /// The document does not match `egress-allowlist.v1.schema.json`.
    #[error("egress allowlist does not match the egress-allowlist v1 schema: {}", violations.join("; "))]
    Schema {
        /// One line per violation (`/hosts/2/ports/0: 0 is less than the minimum of 1`), the first few only.
        violations: Vec<String>,
    },
    /// More entries than allowed (hosts and CIDRs together).
    #[error("egress allowlist has {count} entries, more than the limit of {limit}")]
    TooManyEntries {
        /// Hosts plus CIDRs.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// An entry that matches the schema but is not a valid host name or network.
    #[error("egress allowlist entry {pointer} ({value:?}) is invalid: {reason}")]
    InvalidEntry {
        /// JSON pointer of the value (`/hosts/3/host`).
        pointer: String,
        /// The value as written (shortened).
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A kars egress allowlist that is not in kars's canonical form (`policy-canonical-format.md`).
    #[error(
        "kars egress allowlist is not canonical (rule {rule} of kars's policy-canonical-format): {}",
        at_line(*.line, .detail)
    )]
    NonCanonical {
        /// The rule broken.
        rule: CanonicalRule,
        /// The 1-based line (0 when the rule concerns the document as a whole).
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// A declared endpoint cannot be read.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// A reference without a digest: a tag can be moved after verification, so it is never fetched.
    #[error("egress allowlist reference {reference} is not pinned to a digest (tags are not fetched)")]
    NotPinned {
        /// The reference.
        reference: String,
    },
    /// The manifest is not an egress allowlist (of the format asked for).
    #[error("{reference} is not an egress allowlist: its artifactType is {found}, not {expected}")]
    WrongArtifactType {
        /// The reference.
        reference: String,
        /// What was found (`none`, `an image index`, the artifact type).
        found: String,
        /// The egress allowlist artifact type.
        expected: &'static str,
    },
    /// The manifest is an egress allowlist but not a well-formed one (layers).
    #[error("egress allowlist {reference} is malformed: {reason}")]
    Malformed {
        /// The reference.
        reference: String,
        /// What is wrong with the manifest or its layer.
        reason: String,
    },
    /// The published document itself is invalid.
    #[error("egress allowlist {reference} is invalid: {problem}")]
    InvalidDocument {
        /// The reference.
        reference: String,
        /// What is wrong with the document.
        problem: Box<EgressError>,
    },
    /// The registry failed (including content that does not hash to its digest).
    #[error("{0}")]
    Registry(#[from] RegistryError),
}

/// `line N: detail`, or the detail alone for line 0.
fn at_line(line: usize, detail: &str) -> String {
    if line == 0 {
        detail.to_owned()
    } else {
        format!("line {line}: {detail}")
    }
}
