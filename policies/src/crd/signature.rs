//! `requirements.signature`: `true` (as always), or rules saying which authorities may sign, how many
//! must, and which signed annotations the signature must carry.
//!
//! One field, two forms. A structural CRD schema gives every field exactly one `type` and forbids `type`
//! inside `anyOf`/`oneOf`, so "boolean or object" cannot be described to the API server: the field is
//! declared `x-kubernetes-preserve-unknown-fields` (any value is stored) and vouch checks its shape when it
//! compiles the policy. A value of neither form does not fail loading (which would drop the policy, or
//! stall a watch on every policy): it is kept as [`SignatureRequirement::Invalid`], and compiling reports it
//! — the policy is then invalid (`Ready=False`) and the images it names are denied, never left unguarded.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `requirements.signature`: a flag, or rules (which imply the signature is required).
#[derive(Debug, Clone, PartialEq)]
pub enum SignatureRequirement {
    /// `signature: true` (any authority of the policy may satisfy it) or `false` (no signature required).
    Required(bool),
    /// `signature: {authorities, minAuthorities, annotations}`.
    Rules(SignatureRules),
    /// A value of neither form, as written, with why it is not one.
    Invalid {
        /// The value as written.
        value: serde_json::Value,
        /// What is wrong with it.
        problem: String,
    },
}

impl Default for SignatureRequirement {
    fn default() -> Self {
        Self::Required(false)
    }
}

impl SignatureRequirement {
    /// Whether a signature is asked for (an invalid value counts: it must not pass as "nothing asked").
    pub fn is_required(&self) -> bool {
        !matches!(self, Self::Required(false))
    }
}

/// Who must have signed an image, and what the signature must say.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignatureRules {
    /// Names of the policy's authorities that may satisfy the requirement (default: all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorities: Vec<String>,
    /// How many distinct authorities (of those eligible) must each have a verified signature (default 1;
    /// at most the number of eligible authorities). Distinct signers: one key or identity counts once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_authorities: Option<u32>,
    /// Annotations the signed payload must carry (cosign `sign -a key=value`), by key: the exact value,
    /// or, written `^…$`, a regular expression the whole value must match. Unsigned manifest annotations
    /// never count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

const SHAPE: &str = "must be true, false, or an object with authorities, minAuthorities and annotations";

impl<'de> Deserialize<'de> for SignatureRequirement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(match value {
            serde_json::Value::Null => Self::Required(false),
            serde_json::Value::Bool(b) => Self::Required(b),
            serde_json::Value::Object(_) => match serde_json::from_value::<SignatureRules>(value.clone()) {
                Ok(rules) => Self::Rules(rules),
                Err(e) => Self::Invalid { value, problem: e.to_string() },
            },
            other => Self::Invalid { value: other, problem: SHAPE.to_owned() },
        })
    }
}

impl Serialize for SignatureRequirement {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Required(b) => s.serialize_bool(*b),
            Self::Rules(r) => r.serialize(s),
            Self::Invalid { value, .. } => value.serialize(s),
        }
    }
}

impl JsonSchema for SignatureRequirement {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "SignatureRequirement".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // No `type`: see the module documentation (vouch checks the shape when it compiles the policy).
        schemars::json_schema!({
            "description": "A signature by an authority: true, or {authorities: [names], minAuthorities: N, annotations: {key: value or ^regexp$}} (docs/policy-reference.md). Checked by vouch, not by the API server.",
            "x-kubernetes-preserve-unknown-fields": true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> SignatureRequirement {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn both_forms_parse_and_serialise_back_as_written() {
        assert_eq!(parse("true"), SignatureRequirement::Required(true));
        assert_eq!(parse("false"), SignatureRequirement::Required(false));
        let rules = parse("{authorities: [a, b], minAuthorities: 2, annotations: {team: payments}}");
        let SignatureRequirement::Rules(r) = &rules else { panic!("{rules:?}") };
        assert_eq!((r.authorities.len(), r.min_authorities), (2, Some(2)));
        assert_eq!(r.annotations["team"], "payments");
        let back = serde_json::to_value(&rules).unwrap();
        assert_eq!(
            back,
            serde_json::json!({"authorities": ["a", "b"], "minAuthorities": 2, "annotations": {"team": "payments"}})
        );
        assert!(rules.is_required());
        assert!(!SignatureRequirement::default().is_required());
    }

    #[test]
    fn a_value_of_neither_form_is_kept_with_its_problem_and_still_counts_as_required() {
        let typo = parse("{authoritiez: [a]}");
        let SignatureRequirement::Invalid { problem, value } = &typo else { panic!("{typo:?}") };
        assert!(problem.contains("unknown field `authoritiez`"), "{problem}");
        assert_eq!(value, &serde_json::json!({"authoritiez": ["a"]}));
        assert!(typo.is_required(), "fails closed");
        let text = parse("\"yes\"");
        assert!(
            matches!(&text, SignatureRequirement::Invalid { problem, .. } if problem == SHAPE),
            "{text:?}"
        );
        let negative = parse("{minAuthorities: -1}");
        assert!(matches!(negative, SignatureRequirement::Invalid { .. }), "{negative:?}");
    }
}
