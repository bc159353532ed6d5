//! SARIF 2.1.0 (OASIS), as code-scanning services read it: one result per finding that did not pass
//! (`ruleId` = `<policy>/<requirement>`, level by mode), plus one per denial or warning that no finding
//! explains (an unreadable object, a bad reference, no policy covering an image). Locations: the manifest
//! file, and a logical location `file#document/json-pointer` of the image field.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::report::{level, CheckReport, ObjectReport, Outcome};

/// The SARIF version written.
pub const VERSION: &str = "2.1.0";
/// The schema URI written.
pub const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";
/// Rule of a denial no finding explains.
pub const RULE_DENIED: &str = "vouch/denied";
/// Rule of a warning no finding explains.
pub const RULE_WARNING: &str = "vouch/warning";

/// Render `report` as a SARIF log.
pub fn render(report: &CheckReport) -> Value {
    let mut rules: BTreeMap<String, String> = BTreeMap::new();
    let mut results = Vec::new();
    for o in &report.objects {
        if o.outcome == Outcome::Skipped {
            continue;
        }
        let mut explained_denial = false;
        let mut explained_warning = false;
        for f in o.failed_findings() {
            let rule = if f.policy.is_empty() {
                format!("vouch/{}", f.requirement)
            } else {
                format!("{}/{}", f.policy, f.requirement)
            };
            rules.entry(rule.clone()).or_insert_with(|| match f.policy.as_str() {
                "" => format!("vouch: {}", f.requirement),
                p => format!("policy {p}: {}", f.requirement),
            });
            let lvl = effective_level(o, f);
            explained_denial |= lvl == "error";
            explained_warning |= lvl == "warning";
            let text = format!("{}: {}", o.label(), f);
            results.push(result(&rule, lvl, &text, o, &f.artifact.pointer));
        }
        if !o.decision.allowed && !explained_denial {
            rules.entry(RULE_DENIED.into()).or_insert_with(|| "vouch: object denied".into());
            let text = o.decision.message.clone().unwrap_or_else(|| format!("{}: denied", o.label()));
            results.push(result(RULE_DENIED, "error", &text, o, ""));
        }
        if !explained_warning {
            for w in &o.decision.warnings {
                rules.entry(RULE_WARNING.into()).or_insert_with(|| "vouch: admission warning".into());
                results.push(result(RULE_WARNING, "warning", w, o, ""));
            }
        }
    }
    log(&rules, results, serde_json::Map::new())
}

/// A SARIF log of one vouch run: `rules` (id → short description) as the driver's rules, each result's
/// `ruleIndex` set from its `ruleId`, and `run_extra` added to the run (e.g. `automationDetails`).
pub fn log(
    rules: &BTreeMap<String, String>,
    mut results: Vec<Value>,
    run_extra: serde_json::Map<String, Value>,
) -> Value {
    let rule_index: BTreeMap<&str, usize> = rules.keys().enumerate().map(|(i, r)| (r.as_str(), i)).collect();
    for r in &mut results {
        let index = r["ruleId"].as_str().and_then(|id| rule_index.get(id)).copied();
        if let (Some(obj), Some(i)) = (r.as_object_mut(), index) {
            obj.insert("ruleIndex".into(), json!(i));
        }
    }
    let rules: Vec<Value> =
        rules.iter().map(|(id, text)| json!({"id": id, "shortDescription": {"text": text}})).collect();
    let mut run = json!({
        "tool": {"driver": {
            "name": "vouch",
            "version": env!("CARGO_PKG_VERSION"),
            "informationUri": "https://github.com/vouch-dev/vouch",
            "rules": rules,
        }},
        "columnKind": "unicodeCodePoints",
        "results": results,
    });
    if let Some(obj) = run.as_object_mut() {
        obj.extend(run_extra);
    }
    json!({"$schema": SCHEMA_URI, "version": VERSION, "runs": [run]})
}

/// The level by mode, except that an enforce-mode error its policy's `failurePolicy: Ignore` turned into an
/// admission warning is a warning here too.
fn effective_level(o: &ObjectReport, f: &vouch_policies::Finding) -> &'static str {
    let ignored = f.result == vouch_policies::FindingResult::Error
        && o.decision
            .warnings
            .iter()
            .any(|w| w.contains(&f.reason) && w.ends_with("(allowed: failurePolicy Ignore)"));
    if ignored {
        "warning"
    } else {
        level(f.mode)
    }
}

fn result(rule: &str, level: &str, text: &str, o: &ObjectReport, pointer: &str) -> Value {
    json!({
        "ruleId": rule,
        "level": level,
        "message": {"text": text},
        "locations": [{
            "physicalLocation": physical(o),
            "logicalLocations": [{
                "name": o.label(),
                "fullyQualifiedName": format!("{}{pointer}", o.location()),
                "kind": "object",
            }],
        }],
        "partialFingerprints": {"vouchObject/v1": format!("{}|{}|{}{pointer}", o.label(), rule, o.pointer)},
    })
}

/// The file, and the line where the object's document starts (SARIF lines are 1-based).
fn physical(o: &ObjectReport) -> Value {
    let mut location = json!({"artifactLocation": {"uri": uri(&o.file)}});
    if let (Some(line), Some(obj)) = (o.line, location.as_object_mut()) {
        obj.insert("region".into(), json!({"startLine": line}));
    }
    location
}

/// A relative URI for a path as given (SARIF wants `/` separators and percent-escapes for spaces).
fn uri(file: &str) -> String {
    if file == "-" {
        return "stdin".into();
    }
    let path = file.replace('\\', "/");
    let path = path.strip_prefix("./").unwrap_or(&path);
    path.replace('%', "%25").replace(' ', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::check::report::tests::{finding, objects};
    use vouch_policies::crd::Mode;
    use vouch_policies::{Decision, FindingResult};

    #[test]
    fn one_result_per_failed_finding_and_per_unexplained_denial() {
        let objects = objects();
        let ns = Some("default".to_owned());
        let failed = Decision {
            allowed: false,
            message: Some("Deployment default/web: ...".into()),
            findings: vec![
                finding("p", Mode::Enforce, FindingResult::Fail),
                finding("p", Mode::Enforce, FindingResult::Pass),
                finding("q", Mode::Warn, FindingResult::Error),
            ],
            ..Decision::default()
        };
        // A denial no finding explains (e.g. an image no policy covers under --no-match deny).
        let bare =
            Decision { allowed: false, message: Some("no policy covers".into()), ..Decision::default() };
        let reports = vec![
            ObjectReport::new(&objects[0], ns.clone(), 1, None, failed),
            ObjectReport::new(&objects[0], ns, 1, None, bare),
        ];
        let sarif = render(&CheckReport::new(reports, 1, false));
        let results = sarif["runs"][0]["results"].as_array().unwrap();
        let ids: Vec<(&str, &str)> =
            results.iter().map(|r| (r["ruleId"].as_str().unwrap(), r["level"].as_str().unwrap())).collect();
        assert_eq!(ids, [("p/signature", "error"), ("q/signature", "warning"), (RULE_DENIED, "error")]);
        let rules = sarif["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), 3);
        for r in results {
            assert_eq!(rules[r["ruleIndex"].as_u64().unwrap() as usize]["id"], r["ruleId"]);
            assert_eq!(r["locations"][0]["physicalLocation"]["region"]["startLine"], 1);
        }
        // An enforce-mode error admitted by failurePolicy Ignore is a warning, as the webhook makes it.
        let mut ignored = finding("r", Mode::Enforce, FindingResult::Error);
        ignored.reason = "cannot verify: registry r is unreachable: down".into();
        let decision = Decision {
            warnings: vec!["Deployment default/web: container app: r: signature: cannot verify: registry r is unreachable: down (allowed: failurePolicy Ignore)".into()],
            findings: vec![ignored],
            ..Decision::allow()
        };
        let report = ObjectReport::new(&objects[0], Some("default".into()), 1, None, decision);
        let sarif_ignored = render(&CheckReport::new(vec![report], 1, false));
        let levels: Vec<_> = sarif_ignored["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["level"].clone())
            .collect();
        assert_eq!(levels, ["warning"]);
        assert_eq!(
            results[0]["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
            "m.yaml#1/spec/template/spec/containers/0/image"
        );
    }
}
