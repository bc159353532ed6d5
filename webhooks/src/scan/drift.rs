//! Drift: how workloads changed between two scans. A workload is the same from one scan to the next when
//! its namespace, kind and name are; it fails when it is non-compliant or unverified.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::{ScanOutcome, WorkloadRecord};
use super::report::ScanReport;

/// One workload in the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftEntry {
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Its outcome in the baseline (absent: not in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<ScanOutcome>,
    /// Its outcome now (absent: not scanned now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<ScanOutcome>,
    /// Why it fails now (newly failing and new workloads).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl DriftEntry {
    /// `Pod shop/web-1`.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// The comparison of a scan with a baseline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drift {
    /// The baseline compared with (file name) and when it was scanned.
    pub baseline: String,
    /// When the baseline was scanned.
    pub baseline_scanned_at: String,
    /// Passed in the baseline, fail now.
    pub newly_failing: Vec<DriftEntry>,
    /// Failed in the baseline, pass now.
    pub newly_passing: Vec<DriftEntry>,
    /// Passed or failed in both (the outcome may have changed within, e.g. compliant to warned).
    pub unchanged: Vec<DriftEntry>,
    /// Not in the baseline.
    pub added: Vec<DriftEntry>,
    /// In the baseline, not scanned now.
    pub removed: Vec<DriftEntry>,
}

impl Drift {
    /// Compare `now` with `baseline` (named `baseline_name`).
    pub fn between(baseline: &ScanReport, now: &ScanReport, baseline_name: &str) -> Self {
        let before: BTreeMap<_, &WorkloadRecord> = baseline.workloads.iter().map(|w| (w.key(), w)).collect();
        let mut drift = Self {
            baseline: baseline_name.to_owned(),
            baseline_scanned_at: baseline.scanned_at.clone(),
            ..Self::default()
        };
        let mut seen = std::collections::BTreeSet::new();
        for w in &now.workloads {
            let key = w.key();
            if !seen.insert(key.clone()) {
                continue; // the same object twice in the input: judged once
            }
            let entry = |before: Option<ScanOutcome>, reasons: Vec<String>| DriftEntry {
                namespace: w.namespace.clone(),
                kind: w.kind.clone(),
                name: w.name.clone(),
                before,
                after: Some(w.outcome),
                reasons,
            };
            let failing_reasons = if w.outcome.passes() { Vec::new() } else { w.reasons.clone() };
            match before.get(&key) {
                None => drift.added.push(entry(None, failing_reasons)),
                Some(b) => match (b.outcome.passes(), w.outcome.passes()) {
                    (true, false) => drift.newly_failing.push(entry(Some(b.outcome), failing_reasons)),
                    (false, true) => drift.newly_passing.push(entry(Some(b.outcome), Vec::new())),
                    _ => drift.unchanged.push(entry(Some(b.outcome), Vec::new())),
                },
            }
        }
        for b in &baseline.workloads {
            if !seen.contains(&b.key()) {
                seen.insert(b.key());
                drift.removed.push(DriftEntry {
                    namespace: b.namespace.clone(),
                    kind: b.kind.clone(),
                    name: b.name.clone(),
                    before: Some(b.outcome),
                    after: None,
                    reasons: Vec::new(),
                });
            }
        }
        drift
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(name: &str, outcome: ScanOutcome) -> WorkloadRecord {
        WorkloadRecord {
            namespace: Some("shop".into()),
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: name.into(),
            source: "cluster".into(),
            outcome,
            reasons: if outcome.passes() { vec![] } else { vec![format!("{name} fails")] },
            artifacts: vec![],
        }
    }

    #[test]
    fn workloads_are_sorted_into_newly_failing_passing_unchanged_added_and_removed() {
        use ScanOutcome::*;
        let baseline = ScanReport::new(
            vec![],
            vec![
                workload("a", Compliant),
                workload("b", NonCompliant),
                workload("c", Compliant),
                workload("d", Warned),
                workload("gone", Compliant),
            ],
        );
        let now = ScanReport::new(
            vec![],
            vec![
                workload("a", NonCompliant),
                workload("b", Compliant),
                workload("c", Warned),
                workload("d", Unverified),
                workload("new", NonCompliant),
            ],
        );
        let d = Drift::between(&baseline, &now, "before.json");
        let names = |v: &[DriftEntry]| v.iter().map(|e| e.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&d.newly_failing), ["a", "d"]);
        assert_eq!(d.newly_failing[0].reasons, ["a fails"]);
        assert_eq!(d.newly_failing[1].before, Some(Warned));
        assert_eq!(names(&d.newly_passing), ["b"]);
        assert_eq!(names(&d.unchanged), ["c"]);
        assert_eq!(names(&d.added), ["new"]);
        assert_eq!(d.added[0].reasons, ["new fails"]);
        assert_eq!(names(&d.removed), ["gone"]);
        assert_eq!(d.baseline, "before.json");
    }
}
