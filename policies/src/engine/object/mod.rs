//! The admitted object (or old object) as the engine reads it: [`ObjectJson`].
//!
//! The webhook reads the object within its one pass over the request body and builds only what extraction,
//! matching and pull-secret look-ups read ([`ObjectJson::read`]): for kinds with a pod spec a pruned value
//! ([`pruned`] lists what is kept), for every other kind the whole object. The body is kept (no copy), and
//! whoever needs all of the object (Rego conditions, compliance profiles, the status writer's fingerprint)
//! asks for [`ObjectJson::whole`], parsed from it once, when first asked. `vouch check`, `bundle` and `scan`
//! have a [`serde_json::Value`] already: [`ObjectJson::from_value`] keeps it as the one view.

/// A [`serde::de::Visitor`]'s methods for JSON scalars, each read into the [`Value`] it is (the pruned and
/// the whole reads share them).
macro_rules! scalar_values {
    () => {
        fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
            Ok(Value::from(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
    };
}

mod pruned;
mod whole;

use std::sync::OnceLock;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, Deserializer, Visitor};
use serde_json::Value;

use crate::GroupVersionKind;

/// The object cannot be read as JSON (nesting deeper than the parser allows, in a part read late).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the object is not readable JSON: {reason}")]
pub struct UnreadableObject {
    /// The parser's message, with line and column.
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
    /// `Some` when `read` is pruned: where the whole object is, and the whole object once parsed.
    unread: Option<Unread>,
}

#[derive(Clone)]
struct Unread {
    /// The JSON document holding the object (the request body, or the object's own text).
    source: Bytes,
    /// The object's member path in `source` (`[]`: the document is the object).
    at: &'static [&'static str],
    whole: OnceLock<Result<Value, UnreadableObject>>,
}

impl ObjectJson {
    /// An object already read whole: [`Self::read`] and [`Self::whole`] are this value.
    #[must_use]
    pub fn from_value(object: Value) -> Self {
        Self { read: object, unread: None }
    }

    /// An object of `kind` from its JSON text `raw`, read as [`Self::seed`] reads it.
    pub fn from_json(raw: Bytes, kind: &GroupVersionKind) -> Result<Self, UnreadableObject> {
        let mut de = serde_json::Deserializer::from_slice(&raw);
        let object = Self::seed(Some(kind), raw.clone(), &[]).deserialize(&mut de)?;
        de.end()?;
        Ok(object.unwrap_or_else(|| Self::from_value(Value::Null)))
    }

    /// Reads an object of `kind` (`None`: not known yet) at member path `at` of the JSON document `source`
    /// while that document is being read (`null`: no object): kinds with a pod spec pruned (the rest
    /// skipped, its syntax still checked, nothing built; `metadata.managedFields` never kept), other kinds
    /// whole without `metadata.managedFields`. [`Self::whole`] reads the object from `source` at `at`.
    #[must_use]
    pub fn seed(kind: Option<&GroupVersionKind>, source: Bytes, at: &'static [&'static str]) -> ObjectSeed {
        ObjectSeed { shape: kind.and_then(pruned::shape_of), source, at }
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
            Some(u) => u.whole.get_or_init(|| whole::read_at(&u.source, u.at)).as_ref().map_err(Clone::clone),
        }
    }
}

/// Reads an [`ObjectJson`] (or `null`) inside a JSON document: see [`ObjectJson::seed`].
pub struct ObjectSeed {
    shape: Option<&'static pruned::Keep>,
    source: Bytes,
    at: &'static [&'static str],
}

impl<'de> DeserializeSeed<'de> for ObjectSeed {
    type Value = Option<ObjectJson>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<ObjectJson>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed {
    type Value = Option<ObjectJson>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Kubernetes object or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Ok(Some(match self.shape {
            Some(shape) => ObjectJson {
                read: pruned::read(d, shape)?,
                unread: Some(Unread { source: self.source, at: self.at, whole: OnceLock::new() }),
            },
            None => ObjectJson::from_value(whole::read(d)?),
        }))
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
