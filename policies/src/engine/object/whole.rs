//! An object read whole from its JSON text, without `metadata.managedFields`: server-side apply's
//! bookkeeping, often half of a Pod's bytes, is nothing vouch decides on, so it is skipped while reading
//! rather than built and dropped (the scanner reads live objects the same way). Everything else is kept as
//! sent; a repeated key counts with its last value, as in a [`Value`] read whole.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::UnreadableObject;

/// The object at member path `at` of the JSON document `source` (`[]`: the document itself), read whole
/// without `metadata.managedFields` (serde_json's recursion limit applies). A repeated member counts with
/// its last value.
pub(super) fn read_at(source: &[u8], at: &[&str]) -> Result<Value, UnreadableObject> {
    let mut de = serde_json::Deserializer::from_slice(source);
    let value = AtPath(at).deserialize(&mut de)?;
    de.end()?;
    value.ok_or_else(|| UnreadableObject { reason: format!("no object at {}", at.join(".")) })
}

/// A JSON value read whole, without `metadata.managedFields`.
pub(super) fn read<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    d.deserialize_any(ObjectVisitor { metadata: false })
}

/// The value at a member path (`None`: absent), every other member skipped.
struct AtPath<'p>(&'p [&'p str]);

impl<'de> de::DeserializeSeed<'de> for AtPath<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        if self.0.is_empty() {
            read(d).map(Some)
        } else {
            d.deserialize_map(self)
        }
    }
}

impl<'de> Visitor<'de> for AtPath<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Value>, A::Error> {
        let Some((first, rest)) = self.0.split_first() else { return Ok(None) };
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == *first {
                found = map.next_value_seed(AtPath(rest))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Reads the object (`metadata: false`) or its metadata (`true`, where `managedFields` is skipped); any
/// other JSON value is read as it is.
struct ObjectVisitor {
    metadata: bool,
}

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if self.metadata && key == "managedFields" {
                out.remove(&key);
                map.next_value::<IgnoredAny>()?;
            } else if !self.metadata && key == "metadata" {
                let metadata = map.next_value_seed(MetadataSeed)?;
                out.insert(key, metadata);
            } else {
                let value = map.next_value::<Value>()?;
                out.insert(key, value);
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    scalar_values!();
}

/// `metadata` read by [`ObjectVisitor`] without its `managedFields`.
struct MetadataSeed;

impl<'de> de::DeserializeSeed<'de> for MetadataSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ObjectVisitor { metadata: true })
    }
}
