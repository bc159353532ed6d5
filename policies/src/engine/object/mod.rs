//! The admitted object (or old object) as the engine reads it: [`ObjectJson`].
//!
//! The webhook keeps the object's JSON text as sent (a slice of the request body) and builds at once only
//! what extraction, matching and pull-secret look-ups read ([`ObjectJson::read`]): for kinds with a pod spec
//! a pruned value ([`pruned`] lists what is kept), for every other kind the whole object. Whoever needs all
//! of it (Rego conditions, compliance profiles, the status writer's fingerprint) asks for
//! [`ObjectJson::whole`], parsed from the text once, when first asked. `vouch check`, `bundle` and `scan`
//! have a [`serde_json::Value`] already: [`ObjectJson::from_value`] keeps it as the one view.

mod pruned;
mod whole;

use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::Value;

use crate::GroupVersionKind;

/// The object cannot be read as JSON (nesting deeper than the parser allows, in a part read late).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the object is not readable JSON: {reason}")]
pub struct UnreadableObject {
    /// The parser's message, with line and column inside the object.
    pub reason: String,
}

impl From<serde_json::Error> for UnreadableObject {
    fn from(e: serde_json::Error) -> Self {
        Self { reason: e.to_string() }
    }
}

/// An admitted object: what the engine reads of it at once, and the whole of it when asked.
#[derive(Clone)]
pub struct ObjectJson {
    /// What extraction, labels, `generateName` and pull secrets read: pruned, or the whole object.
    read: Value,
    /// `Some` when `read` is pruned: the text it was read from, and the whole object parsed from it.
    unread: Option<Unread>,
}

#[derive(Clone)]
struct Unread {
    raw: Bytes,
    whole: OnceLock<Result<Value, UnreadableObject>>,
}

impl ObjectJson {
    /// An object already read whole: [`Self::read`] and [`Self::whole`] are this value.
    #[must_use]
    pub fn from_value(object: Value) -> Self {
        Self { read: object, unread: None }
    }

    /// An object of `kind` from its JSON text `raw` (a JSON object, as the API server sends it), without
    /// `metadata.managedFields`. Kinds with a pod spec are read pruned (the rest is skipped, its syntax
    /// still checked, nothing built) and the text is kept for [`Self::whole`]; other kinds are read whole.
    pub fn from_json(raw: Bytes, kind: &GroupVersionKind) -> Result<Self, UnreadableObject> {
        match pruned::shape_of(kind) {
            Some(shape) => {
                let read = pruned::read(&raw, shape)?;
                Ok(Self { read, unread: Some(Unread { raw, whole: OnceLock::new() }) })
            }
            None => Ok(Self::from_value(whole::read(&raw)?)),
        }
    }

    /// What extraction, matching, `generateName` and pull-secret look-ups read: for kinds with a pod spec
    /// only those fields (see docs/extractors.md), else the whole object.
    pub fn read(&self) -> &Value {
        &self.read
    }

    /// The whole object (without `metadata.managedFields` when it came as text), parsed on first use.
    pub fn whole(&self) -> Result<&Value, UnreadableObject> {
        match &self.unread {
            None => Ok(&self.read),
            Some(u) => u.whole.get_or_init(|| whole::read(&u.raw)).as_ref().map_err(Clone::clone),
        }
    }
}

impl std::fmt::Debug for ObjectJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectJson")
            .field("read", &self.read)
            .field("pruned", &self.unread.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests;
