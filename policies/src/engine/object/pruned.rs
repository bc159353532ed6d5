//! What is read at once of an object with a pod spec: exactly what extraction (`extract::pod`, the
//! fetcher profiles, egress annotations), policy matching (labels), messages (`generateName`), compliance
//! profile selection (annotations) and pull-secret look-ups read; everything else is skipped while reading
//! (its syntax checked, nothing built). A field of another JSON type than the one pruned (a `containers`
//! that is not an array, an entry that is not an object) is kept whole, so extraction names it exactly as
//! it would in the whole object. `tests/object_read_drift.rs` holds every reader to this list.

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::GroupVersionKind;

/// What is kept of a JSON value.
#[derive(Debug)]
pub(super) enum Keep {
    /// The value as sent.
    Whole,
    /// Of an object, only these members (each kept as its shape says); any other JSON value whole.
    Members(&'static [(&'static str, Keep)]),
    /// Of an array, every entry as the shape says; any other JSON value whole.
    Entries(&'static Keep),
}

const WHOLE: Keep = Keep::Whole;
/// Object and pod-template metadata: names, uid (the status writer's target), labels (matching),
/// annotations (egress, compliance profile, the mutating webhook's `vouch.dev/verified`). Not
/// `managedFields`.
const METADATA: Keep = Keep::Members(&[
    ("name", WHOLE),
    ("uid", WHOLE),
    ("generateName", WHOLE),
    ("namespace", WHOLE),
    ("labels", WHOLE),
    ("annotations", WHOLE),
]);
/// Containers and ephemeral containers: their name and image.
const CONTAINER: Keep = Keep::Members(&[("name", WHOLE), ("image", WHOLE)]);
/// Volumes: image volumes and ModelPack CSI volumes.
const VOLUME: Keep = Keep::Members(&[("name", WHOLE), ("image", WHOLE), ("csi", WHOLE)]);
/// The pod spec. Init containers whole: fetcher profiles read their command, args, env and envFrom.
const POD_SPEC: Keep = Keep::Members(&[
    ("initContainers", WHOLE),
    ("containers", Keep::Entries(&CONTAINER)),
    ("ephemeralContainers", Keep::Entries(&CONTAINER)),
    ("volumes", Keep::Entries(&VOLUME)),
    ("imagePullSecrets", WHOLE),
    ("serviceAccountName", WHOLE),
    ("serviceAccount", WHOLE),
]);
const POD_TEMPLATE: Keep = Keep::Members(&[("metadata", METADATA), ("spec", POD_SPEC)]);

/// A Pod: pod spec at `/spec`.
const POD: Keep =
    Keep::Members(&[("apiVersion", WHOLE), ("kind", WHOLE), ("metadata", METADATA), ("spec", POD_SPEC)]);
/// Deployment, ReplicaSet, StatefulSet, DaemonSet, Job, ReplicationController: `/spec/template/spec`.
const WORKLOAD: Keep = Keep::Members(&[
    ("apiVersion", WHOLE),
    ("kind", WHOLE),
    ("metadata", METADATA),
    ("spec", Keep::Members(&[("template", POD_TEMPLATE)])),
]);
/// CronJob: `/spec/jobTemplate/spec/template/spec`.
const CRON_JOB: Keep = Keep::Members(&[
    ("apiVersion", WHOLE),
    ("kind", WHOLE),
    ("metadata", METADATA),
    (
        "spec",
        Keep::Members(&[(
            "jobTemplate",
            Keep::Members(&[("spec", Keep::Members(&[("template", POD_TEMPLATE)]))]),
        )]),
    ),
]);

/// What is kept of an object of `kind`; `None`: the kind has no pod spec, it is read whole.
pub(super) fn shape_of(kind: &GroupVersionKind) -> Option<&'static Keep> {
    match crate::extract::pod_spec_pointer(&kind.group, &kind.kind)? {
        "/spec" => Some(&POD),
        "/spec/template/spec" => Some(&WORKLOAD),
        "/spec/jobTemplate/spec/template/spec" => Some(&CRON_JOB),
        // A pod spec elsewhere: read whole until a shape says what to keep there.
        _ => None,
    }
}

/// A JSON value read as `shape` says (serde_json's recursion limit applies to what is kept).
pub(super) fn read<'de, D: Deserializer<'de>>(d: D, shape: &'static Keep) -> Result<Value, D::Error> {
    Pruned(shape).deserialize(d)
}

/// A JSON value read as its shape says.
struct Pruned(&'static Keep);

impl<'de> DeserializeSeed<'de> for Pruned {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            Keep::Whole => Value::deserialize(d),
            shape => d.deserialize_any(PrunedVisitor(shape)),
        }
    }
}

struct PrunedVisitor(&'static Keep);

impl<'de> Visitor<'de> for PrunedVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Keep::Members(members) = self.0 else {
            return Value::deserialize(MapAccessDeserializer::new(map));
        };
        let mut out = Map::new();
        // A repeated key counts with its last value, as in a Value read whole.
        while let Some(member) = map.next_key_seed(MemberOf(members))? {
            match member {
                Some((name, keep)) => {
                    let value = map.next_value_seed(Pruned(keep))?;
                    out.insert(name.to_owned(), value);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let Keep::Entries(entry) = self.0 else {
            return Value::deserialize(SeqAccessDeserializer::new(seq));
        };
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Pruned(entry))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    scalar_values!();
}

/// A member name: the kept member it names (name and shape), or `None` (skipped). Nothing is allocated.
struct MemberOf(&'static [(&'static str, Keep)]);

impl<'de> DeserializeSeed<'de> for MemberOf {
    type Value = Option<(&'static str, &'static Keep)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MemberOf {
    type Value = Option<(&'static str, &'static Keep)>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().find(|(name, _)| *name == v).map(|(name, keep)| (*name, keep)))
    }
}
