//! `vouch scan` outputs other than JSON: readable text, SARIF 2.1.0 (with each result's `baselineState`
//! when a baseline was given) and JUnit XML (with a `drift` test suite when a baseline was given).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::drift::{Drift, DriftEntry};
use super::record::{ScanOutcome, WorkloadRecord};
use super::report::ScanReport;
use crate::cli::check::junit::escape;

/// Text: each workload that is not compliant with its reasons (every workload with `verbose`), the drift,
/// and the summary line.
pub fn text(report: &ScanReport, verbose: bool) -> String {
    let mut out = String::new();
    for w in &report.workloads {
        if !verbose && matches!(w.outcome, ScanOutcome::Compliant | ScanOutcome::Skipped) {
            continue;
        }
        let _ = writeln!(out, "{}: {}", w.label(), w.outcome);
        for r in &w.reasons {
            let _ = writeln!(out, "  {r}");
        }
        if verbose {
            for a in &w.artifacts {
                let running = a.running_digest.as_ref().map_or_else(
                    || "runs nothing yet: verified what the spec names now".to_owned(),
                    |d| format!("runs {d}"),
                );
                let _ = writeln!(out, "  {} {}: {} ({running})", a.field, a.container, a.reference);
            }
        }
    }
    if let Some(d) = &report.drift {
        let _ = writeln!(out, "since the baseline {} (scanned {}):", d.baseline, d.baseline_scanned_at);
        let list = |out: &mut String, what: &str, entries: &[DriftEntry]| {
            for e in entries {
                let before = e.before.map_or_else(|| "-".to_owned(), |o| o.to_string());
                let after = e.after.map_or_else(|| "-".to_owned(), |o| o.to_string());
                let _ = writeln!(out, "  {what}: {} ({before} -> {after})", e.label());
                for r in &e.reasons {
                    let _ = writeln!(out, "    {r}");
                }
            }
        };
        list(&mut out, "newly failing", &d.newly_failing);
        list(&mut out, "newly passing", &d.newly_passing);
        list(&mut out, "new", &d.added);
        list(&mut out, "gone", &d.removed);
        let _ = writeln!(out, "  unchanged: {} workloads", d.unchanged.len());
    }
    out + &report.summary_line() + "\n"
}

/// SARIF: a result per requirement that did not pass (rule `<policy>/<requirement>`; a scan note is rule
/// `vouch/running-digest`), and one per reason of a failing workload no requirement explains (rule
/// `vouch/<outcome>`). With a baseline, `baselineState` says `new` (newly failing, or a new workload) or
/// `unchanged`, and workloads that pass now but failed in the baseline get an `absent` result.
pub fn sarif(report: &ScanReport) -> Value {
    let mut rules: BTreeMap<String, String> = BTreeMap::new();
    let mut results = Vec::new();
    let state = baseline_states(report.drift.as_ref());
    for w in &report.workloads {
        if matches!(w.outcome, ScanOutcome::Compliant | ScanOutcome::Skipped) {
            continue;
        }
        let baseline = state.get(&(w.namespace.clone(), w.kind.clone(), w.name.clone())).copied();
        let mut explained = false;
        for a in &w.artifacts {
            for r in a.results.iter().filter(|r| r.result != "pass") {
                let rule = match r.policy.as_str() {
                    "" => format!("vouch/{}", r.requirement.replace(' ', "-")),
                    p => format!("{p}/{}", r.requirement),
                };
                rules.entry(rule.clone()).or_insert_with(|| match r.policy.as_str() {
                    "" => format!("vouch: {}", r.requirement),
                    p => format!("policy {p}: {}", r.requirement),
                });
                let level =
                    if r.result == "warn" || w.outcome == ScanOutcome::Warned { "warning" } else { "error" };
                explained |= level == "error";
                let text = format!(
                    "{}: {} {}: image {}: {}",
                    w.label(),
                    a.field,
                    a.container,
                    a.reference,
                    r.reason
                );
                results.push(sarif_result(&rule, level, &text, w, &a.pointer, baseline));
            }
        }
        if !w.outcome.passes() && !explained {
            let rule = format!("vouch/{}", w.outcome);
            rules.entry(rule.clone()).or_insert_with(|| format!("vouch: workload {}", w.outcome));
            for reason in &w.reasons {
                results.push(sarif_result(
                    &rule,
                    "error",
                    &format!("{}: {reason}", w.label()),
                    w,
                    "",
                    baseline,
                ));
            }
        }
    }
    if let Some(d) = &report.drift {
        for e in &d.newly_passing {
            let rule = "vouch/fixed".to_owned();
            rules.entry(rule.clone()).or_insert_with(|| "vouch: failed in the baseline, passes now".into());
            let mut r = json!({
                "ruleId": rule, "level": "none", "baselineState": "absent",
                "message": {"text": format!("{}: failed in the baseline, passes now", e.label())},
                "locations": [{"logicalLocations": [logical(&e.namespace, &e.kind, &e.name, "")]}],
            });
            if let Some(obj) = r.as_object_mut() {
                obj.insert("partialFingerprints".into(), json!({"vouchWorkload/v1": e.label()}));
            }
            results.push(r);
        }
    }
    let mut extra = serde_json::Map::new();
    extra.insert("automationDetails".into(), json!({"id": format!("vouch-scan/{}", report.scanned_at)}));
    crate::cli::check::sarif::log(&rules, results, extra)
}

type Key = (Option<String>, String, String);

/// `new` or `unchanged` per failing workload, from the drift.
fn baseline_states(drift: Option<&Drift>) -> BTreeMap<Key, &'static str> {
    let mut out = BTreeMap::new();
    let Some(d) = drift else { return out };
    let key = |e: &DriftEntry| (e.namespace.clone(), e.kind.clone(), e.name.clone());
    for e in d.newly_failing.iter().chain(&d.added) {
        out.insert(key(e), "new");
    }
    for e in &d.unchanged {
        out.insert(key(e), "unchanged");
    }
    out
}

fn logical(namespace: &Option<String>, kind: &str, name: &str, pointer: &str) -> Value {
    let object = match namespace {
        Some(ns) => format!("{ns}/{kind}/{name}"),
        None => format!("{kind}/{name}"),
    };
    json!({"name": format!("{kind} {name}"), "fullyQualifiedName": format!("{object}{pointer}"), "kind": "object"})
}

fn sarif_result(
    rule: &str,
    level: &str,
    text: &str,
    w: &WorkloadRecord,
    pointer: &str,
    baseline: Option<&str>,
) -> Value {
    let mut location = json!({"logicalLocations": [logical(&w.namespace, &w.kind, &w.name, pointer)]});
    if let Some((file, _)) = w.source.split_once('#') {
        location["physicalLocation"] = json!({"artifactLocation": {"uri": file}});
    }
    let mut r = json!({
        "ruleId": rule,
        "level": level,
        "message": {"text": text},
        "locations": [location],
        "partialFingerprints": {"vouchWorkload/v1": format!("{}|{rule}|{pointer}", w.label())},
    });
    if let (Some(state), Some(obj)) = (baseline, r.as_object_mut()) {
        obj.insert("baselineState".into(), json!(state));
    }
    r
}

/// JUnit: a `<testsuite>` per namespace, a `<testcase>` per workload (`<failure>` when non-compliant or
/// unverified, `<skipped>` when it names nothing to verify, warnings in `<system-out>`); with a baseline, a
/// `drift` suite: a failing case per newly failing workload, a passing one per newly passing workload.
pub fn junit(report: &ScanReport) -> String {
    let mut namespaces: BTreeMap<String, Vec<&WorkloadRecord>> = BTreeMap::new();
    for w in &report.workloads {
        namespaces.entry(w.namespace.clone().unwrap_or_default()).or_default().push(w);
    }
    let t = &report.totals;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let (drift_tests, drift_failures) = report
        .drift
        .as_ref()
        .map_or((0, 0), |d| (d.newly_failing.len() + d.newly_passing.len(), d.newly_failing.len()));
    let _ = writeln!(
        out,
        "<testsuites name=\"vouch scan\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\">",
        t.workloads + drift_tests,
        t.failing() + drift_failures,
        t.skipped
    );
    for (ns, workloads) in namespaces {
        let failures = workloads.iter().filter(|w| !w.outcome.passes()).count();
        let skipped = workloads.iter().filter(|w| w.outcome == ScanOutcome::Skipped).count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\">",
            escape(if ns.is_empty() { "(cluster-scoped)" } else { &ns }),
            workloads.len()
        );
        for w in workloads {
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"0\"",
                escape(&ns),
                escape(&w.label())
            );
            let body = match w.outcome {
                ScanOutcome::Skipped => {
                    format!("      <skipped message=\"{}\"/>\n", escape(&w.reasons.join("; ")))
                }
                o if !o.passes() => format!(
                    "      <failure type=\"{o}\" message=\"{}\">{}</failure>\n",
                    escape(w.reasons.first().map_or("", String::as_str)),
                    escape(&w.reasons.join("\n"))
                ),
                ScanOutcome::Warned => {
                    format!("      <system-out>{}</system-out>\n", escape(&w.reasons.join("\n")))
                }
                _ => String::new(),
            };
            if body.is_empty() {
                out.push_str("/>\n");
            } else {
                out.push_str(">\n");
                out.push_str(&body);
                out.push_str("    </testcase>\n");
            }
        }
        out.push_str("  </testsuite>\n");
    }
    if let Some(d) = &report.drift {
        let _ = writeln!(
            out,
            "  <testsuite name=\"drift since {}\" tests=\"{drift_tests}\" failures=\"{drift_failures}\" errors=\"0\" skipped=\"0\">",
            escape(&d.baseline)
        );
        for e in &d.newly_failing {
            let _ = writeln!(
                out,
                "    <testcase classname=\"drift\" name=\"{}\" time=\"0\">\n      <failure type=\"newlyFailing\" message=\"{}\">{}</failure>\n    </testcase>",
                escape(&e.label()),
                escape(&format!("passed in the baseline, {} now", e.after.map_or_else(String::new, |o| o.to_string()))),
                escape(&e.reasons.join("\n"))
            );
        }
        for e in &d.newly_passing {
            let _ = writeln!(
                out,
                "    <testcase classname=\"drift\" name=\"{}\" time=\"0\"/>",
                escape(&e.label())
            );
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
