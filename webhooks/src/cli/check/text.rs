//! The readable output: one block per checked object with each requirement passed or failed, then the
//! summary line.

use std::fmt::Write as _;

use vouch_policies::crd::Mode;
use vouch_policies::FindingResult;

use super::report::{CheckReport, Outcome};

/// Render `report` for people. Skipped objects get one line each only with `verbose`.
pub fn render(report: &CheckReport, verbose: bool) -> String {
    let mut out = String::new();
    for o in &report.objects {
        if o.outcome == Outcome::Skipped {
            if verbose {
                let why = o.skip_reason.as_deref().unwrap_or_default();
                let _ = writeln!(out, "- {} ({}): skipped: {why}", o.label(), o.location());
            }
            continue;
        }
        let _ = writeln!(out, "{} {} ({}): {}", mark(o.outcome), o.label(), o.location(), o.outcome);
        // The denial message repeats the failed findings; shown only when no finding explains it (an
        // unreadable object, a bad reference, an image no policy covers under --no-match deny).
        let explained = o.failed_findings().any(|f| f.mode == Mode::Enforce);
        if let Some(message) = o.decision.message.as_ref().filter(|_| !explained) {
            for line in message.split("; ") {
                let _ = writeln!(out, "    denied: {line}");
            }
        }
        for f in &o.decision.findings {
            let sign = match f.result {
                FindingResult::Pass => "pass",
                FindingResult::Fail => "FAIL",
                FindingResult::Error => "ERROR",
            };
            let _ = writeln!(out, "    {sign} [{}] {}", f.mode, f);
        }
        for w in &o.decision.warnings {
            let _ = writeln!(out, "    warning: {w}");
        }
        for a in &o.decision.audit {
            let _ = writeln!(out, "    audit: {}", a);
        }
        let silent = o.decision.findings.is_empty() && o.decision.warnings.is_empty() && o.decision.allowed;
        if o.artifacts == 0 {
            let _ = writeln!(out, "    (names no images)");
        } else if silent && o.decision.audit.is_empty() {
            let _ = writeln!(out, "    (no policy covers its images)");
        }
    }
    let _ = writeln!(out, "{}", report.summary_line());
    out
}

fn mark(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Allowed => "✓",
        Outcome::Warned => "!",
        Outcome::Denied => "✗",
        Outcome::Skipped => "-",
    }
}
