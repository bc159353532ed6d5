//! A scan's report: every [`WorkloadRecord`], totals overall and per namespace, and the drift from an
//! earlier report. The JSON output of `vouch scan` is this structure (schema `vouch.dev/scan/v1`,
//! documented in docs/continuous-verification.md), and `--baseline` reads it back.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::drift::Drift;
use super::record::{ScanOutcome, WorkloadRecord};

/// The `apiVersion` of a [`ScanReport`].
pub const SCHEMA: &str = "vouch.dev/scan/v1";
/// The `kind` of a [`ScanReport`].
pub const KIND: &str = "ScanReport";
/// The largest baseline read (a report of 100,000 workloads is well under this).
pub const MAX_BASELINE_BYTES: u64 = 512 * 1024 * 1024;

/// Workloads by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Workloads scanned.
    pub workloads: usize,
    /// Compliant.
    pub compliant: usize,
    /// Compliant with warnings.
    pub warned: usize,
    /// Not compliant.
    pub non_compliant: usize,
    /// Could not be verified.
    pub unverified: usize,
    /// Named nothing to verify.
    pub skipped: usize,
    /// Artifacts (images…) named by the workloads.
    pub artifacts: usize,
}

impl Totals {
    /// Count `w`.
    pub fn add(&mut self, w: &WorkloadRecord) {
        self.workloads += 1;
        self.artifacts += w.artifacts.len();
        *match w.outcome {
            ScanOutcome::Compliant => &mut self.compliant,
            ScanOutcome::Warned => &mut self.warned,
            ScanOutcome::NonCompliant => &mut self.non_compliant,
            ScanOutcome::Unverified => &mut self.unverified,
            ScanOutcome::Skipped => &mut self.skipped,
        } += 1;
    }

    /// Workloads that fail (non-compliant or unverified).
    pub fn failing(&self) -> usize {
        self.non_compliant + self.unverified
    }
}

/// What a scan found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    /// [`SCHEMA`].
    pub api_version: String,
    /// [`KIND`].
    pub kind: String,
    /// When the scan ended (RFC 3339).
    pub scanned_at: String,
    /// What was scanned: the files given, or `cluster`.
    pub scope: Vec<String>,
    /// Totals over every workload.
    pub totals: Totals,
    /// Totals per namespace (`""` for cluster-scoped objects).
    pub namespaces: BTreeMap<String, Totals>,
    /// Every workload, in the order read.
    pub workloads: Vec<WorkloadRecord>,
    /// The comparison with `--baseline`, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
}

impl ScanReport {
    /// The report of `workloads`, scanned from `scope`, finished now.
    pub fn new(scope: Vec<String>, workloads: Vec<WorkloadRecord>) -> Self {
        let mut totals = Totals::default();
        let mut namespaces: BTreeMap<String, Totals> = BTreeMap::new();
        for w in &workloads {
            totals.add(w);
            namespaces.entry(w.namespace.clone().unwrap_or_default()).or_default().add(w);
        }
        Self {
            api_version: SCHEMA.into(),
            kind: KIND.into(),
            scanned_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            scope,
            totals,
            namespaces,
            workloads,
            drift: None,
        }
    }

    /// Compare with `baseline` (an earlier report) and keep the drift in the report.
    pub fn compare_with(&mut self, baseline: &ScanReport, baseline_name: &str) {
        self.drift = Some(Drift::between(baseline, self, baseline_name));
    }

    /// 0 when nothing fails, 1 when a workload is non-compliant or unverified.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.totals.failing() > 0)
    }

    /// `scanned 12 workloads (30 artifacts): 9 compliant, 1 warned, 2 non-compliant, 0 unverified, 0
    /// skipped`, with the drift's counts when there is one.
    pub fn summary_line(&self) -> String {
        let t = &self.totals;
        let mut line = format!(
            "scanned {} workloads ({} artifacts): {} compliant, {} warned, {} non-compliant, {} unverified, {} skipped",
            t.workloads, t.artifacts, t.compliant, t.warned, t.non_compliant, t.unverified, t.skipped
        );
        if let Some(d) = &self.drift {
            line += &format!(
                "; since the baseline: {} newly failing, {} newly passing, {} unchanged, {} new, {} gone",
                d.newly_failing.len(),
                d.newly_passing.len(),
                d.unchanged.len(),
                d.added.len(),
                d.removed.len()
            );
        }
        line
    }

    /// Read an earlier report (`--baseline`); the error names the file and what is wrong.
    pub fn read_baseline(path: &Path) -> Result<Self, String> {
        use std::io::Read as _;
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut text = String::new();
        file.take(MAX_BASELINE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if text.len() as u64 > MAX_BASELINE_BYTES {
            return Err(format!("{}: larger than {MAX_BASELINE_BYTES} bytes", path.display()));
        }
        let report: Self = serde_json::from_str(&text).map_err(|e| {
            format!("{}: not a vouch scan report (JSON of `vouch scan -o json`): {e}", path.display())
        })?;
        if report.api_version != SCHEMA || report.kind != KIND {
            return Err(format!(
                "{}: apiVersion {:?} kind {:?}, expected {SCHEMA} {KIND}",
                path.display(),
                report.api_version,
                report.kind
            ));
        }
        Ok(report)
    }
}
