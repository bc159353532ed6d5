//! Pins: each verified artifact's field rewritten to `prefix + reference@digest + suffix`. Several artifacts
//! may sit in one field (a fetcher script naming two references): their digests are all written into the
//! one value, and an artifact that did not pass leaves its part as written.

use std::collections::BTreeMap;

use vouch_attest::Digest;

use crate::decision::Pin;
use crate::extract::ExtractedArtifact;

/// The artifacts of one field: the value as written and, per artifact (by where its reference ends in
/// the value), the digest to insert and whether every enforced finding passed.
#[derive(Debug, Default)]
struct Field {
    from: String,
    parts: BTreeMap<usize, (Option<Digest>, bool)>,
}

/// Pins being collected for one decision.
#[derive(Debug, Default)]
pub(super) struct Pins {
    fields: BTreeMap<String, Field>,
}

impl Pins {
    /// Record a finding for `artifact` (any mode): a pass with a digest makes it pinnable, a
    /// failure anywhere keeps it as written.
    pub(super) fn record(&mut self, artifact: &ExtractedArtifact, passed: bool, digest: Option<&Digest>) {
        // Not named in the object (a namespace's allowlist), or already pinned: nothing to write.
        if artifact.location.pointer.is_empty() || artifact.image.contains('@') {
            return;
        }
        let from = format!("{}{}{}", artifact.prefix, artifact.image, artifact.suffix);
        let field = self
            .fields
            .entry(artifact.location.pointer.clone())
            .or_insert_with(|| Field { from: from.clone(), parts: BTreeMap::new() });
        if field.from != from {
            // Two artifacts at one pointer must describe the same value; if not, pin nothing there.
            field.parts.insert(usize::MAX, (None, false));
            return;
        }
        let end = artifact.prefix.len() + artifact.image.len();
        let part = field.parts.entry(end).or_insert((None, true));
        part.1 &= passed;
        if passed && part.0.is_none() {
            part.0 = digest.cloned();
        }
    }

    /// The pins: one per field with at least one artifact that passed with a digest.
    pub(super) fn into_pins(self) -> Vec<Pin> {
        let mut out = Vec::new();
        for (pointer, field) in self.fields {
            if field.parts.contains_key(&usize::MAX) {
                continue;
            }
            let mut to = field.from.clone();
            let mut changed = false;
            // Right to left, so earlier offsets stay valid.
            for (end, (digest, ok)) in field.parts.iter().rev() {
                if let (Some(digest), true) = (digest, ok) {
                    if to.is_char_boundary(*end) && *end <= to.len() {
                        to.insert_str(*end, &format!("@{digest}"));
                        changed = true;
                    }
                }
            }
            if changed {
                out.push(Pin { pointer, from: field.from, to });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::{ArtifactKind, ArtifactLocation};

    fn artifact(pointer: &str, prefix: &str, image: &str, suffix: &str) -> ExtractedArtifact {
        ExtractedArtifact {
            location: ArtifactLocation {
                kind: ArtifactKind::Fetcher,
                name: "f".into(),
                pointer: pointer.into(),
            },
            image: image.into(),
            prefix: prefix.into(),
            suffix: suffix.into(),
            artifact_type: None,
        }
    }

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64)).parse().unwrap()
    }

    #[test]
    fn prefix_and_suffix_are_kept() {
        let mut pins = Pins::default();
        pins.record(&artifact("/spec/x", "oci://", "r.io/m:1", ""), true, Some(&digest('a')));
        let p = pins.into_pins();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].from, "oci://r.io/m:1");
        assert_eq!(p[0].to, format!("oci://r.io/m:1@{}", digest('a')));
    }

    #[test]
    fn two_references_in_one_script_are_both_pinned_and_a_failed_one_is_left() {
        let script = "oras pull r.io/a:1 && oras pull r.io/b:2 -o /m";
        let a = artifact("/c/0/args/1", "oras pull ", "r.io/a:1", " && oras pull r.io/b:2 -o /m");
        let b = artifact("/c/0/args/1", "oras pull r.io/a:1 && oras pull ", "r.io/b:2", " -o /m");
        let mut pins = Pins::default();
        pins.record(&a, true, Some(&digest('a')));
        pins.record(&b, true, Some(&digest('b')));
        let p = pins.into_pins();
        assert_eq!(p[0].from, script);
        let (da, db) = (digest('a'), digest('b'));
        assert_eq!(p[0].to, format!("oras pull r.io/a:1@{da} && oras pull r.io/b:2@{db} -o /m"));

        let mut pins = Pins::default();
        pins.record(&a, true, Some(&digest('a')));
        pins.record(&b, false, Some(&digest('b')));
        assert_eq!(pins.into_pins()[0].to, format!("oras pull r.io/a:1@{da} && oras pull r.io/b:2 -o /m"));
    }

    #[test]
    fn a_failure_in_any_policy_prevents_the_pin_and_unnamed_artifacts_are_never_pinned() {
        let mut pins = Pins::default();
        let a = artifact("/spec/containers/0/image", "", "r.io/a:1", "");
        pins.record(&a, true, Some(&digest('a')));
        pins.record(&a, false, None);
        pins.record(&artifact("", "", "r.io/list:1", ""), true, Some(&digest('c')));
        assert!(pins.into_pins().is_empty());
    }
}
