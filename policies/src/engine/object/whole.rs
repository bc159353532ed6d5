//! An object read whole from its JSON text, without `metadata.managedFields`: server-side apply's
//! bookkeeping, often half of a Pod's bytes, is nothing vouch decides on, so it is skipped while reading
//! rather than built and dropped (the scanner reads live objects the same way). Everything else is kept as
//! sent; a repeated key counts with its last value, as in a [`Value`] read whole.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::UnreadableObject;

/// `raw` read whole, without `metadata.managedFields` (serde_json's recursion limit applies).
pub(super) fn read(raw: &[u8]) -> Result<Value, UnreadableObject> {
    let mut de = serde_json::Deserializer::from_slice(raw);
    let value = de.deserialize_any(ObjectVisitor { metadata: false })?;
    de.end()?;
    Ok(value)
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
}

/// `metadata` read by [`ObjectVisitor`] without its `managedFields`.
struct MetadataSeed;

impl<'de> de::DeserializeSeed<'de> for MetadataSeed {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ObjectVisitor { metadata: true })
    }
}
