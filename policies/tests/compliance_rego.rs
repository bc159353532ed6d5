//! The compliance Rego shipped in policies/rego/compliance/: every `test_*` rule of every `*_test.rego`
//! evaluated through regorus (as `opa test` would) against the shipped modules, and a failing one named.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

fn rego_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rego/compliance")
}

/// `(file name, text)` of the modules in the directory, sorted by name.
fn modules(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rego"))
        .map(|p| {
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// The names of the `test_*` rules a module defines (rule heads start a line).
fn test_rules(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("test_"))
        .map(|l| l.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect())
        .collect();
    names.dedup();
    names
}

fn package_of(text: &str) -> String {
    let line = text.lines().find(|l| l.starts_with("package ")).expect("a package line");
    line.trim_start_matches("package ").trim().to_owned()
}

/// Failures of every test rule of every test module in `dir` (each test module with all non-test modules).
fn run_rego_tests(dir: &Path) -> (usize, Vec<String>) {
    let all = modules(dir);
    let (tests, shipped): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|(name, _)| name.ends_with("_test.rego"));
    assert!(!shipped.is_empty(), "no modules in {}", dir.display());
    let mut run = 0;
    let mut failures = Vec::new();
    for (file, text) in &tests {
        let mut engine = regorus::Engine::new();
        for (name, module) in &shipped {
            engine.add_policy(name.clone(), module.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        engine.add_policy(file.clone(), text.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
        let package = package_of(text);
        let rules = test_rules(text);
        assert!(!rules.is_empty(), "{file} defines no test_ rules");
        for rule in rules {
            run += 1;
            match engine.eval_rule(format!("data.{package}.{rule}")) {
                Ok(regorus::Value::Bool(true)) => {}
                Ok(v) => failures.push(format!("{file}: {rule} is {v}, not true")),
                Err(e) => failures.push(format!("{file}: {rule} failed: {e}")),
            }
        }
    }
    (run, failures)
}

#[test]
fn every_rego_test_rule_passes() {
    let (run, failures) = run_rego_tests(&rego_dir());
    assert!(failures.is_empty(), "{} of {run} Rego tests failed:\n{}", failures.len(), failures.join("\n"));
    assert!(run >= 20, "only {run} Rego tests found");
}

#[test]
fn every_shipped_module_has_tests() {
    let all = modules(&rego_dir());
    for (name, _) in all.iter().filter(|(n, _)| !n.ends_with("_test.rego")) {
        let test = name.replace(".rego", "_test.rego");
        assert!(all.iter().any(|(n, _)| *n == test), "{name} has no {test}");
    }
}

#[test]
fn the_runner_names_a_failing_test() {
    // The runner itself must be able to fail: a test module with one passing and one failing rule.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.rego"), "package m\nimport rego.v1\nx := 1\n").unwrap();
    std::fs::write(
        dir.path().join("m_test.rego"),
        "package m_test\nimport rego.v1\nimport data.m\ntest_ok if m.x == 1\ntest_wrong if m.x == 2\n",
    )
    .unwrap();
    let (run, failures) = run_rego_tests(dir.path());
    assert_eq!(run, 2);
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(failures[0].contains("m_test.rego: test_wrong"), "{failures:?}");
}

/// The fenced block after `<!-- example NAME -->` in docs/compliance.md.
fn doc_example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/compliance.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let marker = format!("<!-- example {name} -->");
    let after = &doc[doc.find(&marker).unwrap_or_else(|| panic!("{marker} missing")) + marker.len()..];
    let start = after.find("```").unwrap();
    let body = &after[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_owned()
}

fn doc_profile(name: &str) -> vouch_policies::compliance::CompiledProfile {
    let p: vouch_policies::crd::ComplianceProfile = serde_yaml::from_str(&doc_example(name)).unwrap();
    assert_eq!(p.metadata.name.as_deref(), Some(name));
    vouch_policies::compliance::CompiledProfile::compile(name, &p.spec).unwrap()
}

fn doc_input(name: &str) -> serde_json::Value {
    serde_json::from_str(&doc_example(name)).unwrap()
}

fn doc_lines(name: &str) -> Vec<String> {
    doc_example(name).lines().map(str::to_owned).collect()
}

#[test]
fn docs_examples_evaluate_as_documented() {
    let regulated = doc_profile("regulated-v1");
    let models = doc_profile("models-v1");
    let custom = doc_profile("custom-v1");
    let image = doc_input("image-input");
    let model = doc_input("model-input");
    assert_eq!(
        regulated.evaluate(&image).unwrap(),
        Vec::<String>::new(),
        "the image complies with regulated-v1"
    );
    assert_eq!(models.evaluate(&model).unwrap(), doc_lines("models-v1-violations"));
    assert_eq!(custom.evaluate(&image).unwrap(), doc_lines("custom-v1-violations"));
    // models-v1 requires a model: the image is refused; regulated-v1 finds everything missing on the model.
    assert_eq!(
        models.evaluate(&image).unwrap(),
        [
            "manifest annotation org.cncf.model.openness is missing",
            "the artifact is not a model (no ModelPack or ModelKit config was found)"
        ]
    );
    let v = regulated.evaluate(&model).unwrap();
    assert!(
        v.contains(&"no verified attestation of type https://slsa.dev/provenance/v1".to_owned()),
        "{v:?}"
    );
    assert!(v.contains(&"a verified SBOM is required but none was found".to_owned()), "{v:?}");
    assert!(custom.evaluate(&model).unwrap().is_empty(), "paramSize is stated; not a prod namespace");
}

#[test]
fn the_documented_module_test_passes() {
    // The `*_test.rego` example of the docs, run against the custom-v1 module it tests.
    let dir = tempfile::tempdir().unwrap();
    let p: vouch_policies::crd::ComplianceProfile = serde_yaml::from_str(&doc_example("custom-v1")).unwrap();
    std::fs::write(dir.path().join("two_signers.rego"), &p.spec.rego[0]).unwrap();
    std::fs::write(
        dir.path().join("lib.rego"),
        std::fs::read_to_string(rego_dir().join("lib.rego")).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.path().join("two_signers_test.rego"), doc_example("custom-v1-test")).unwrap();
    let (run, failures) = run_rego_tests(dir.path());
    assert_eq!((run, failures), (2, vec![]));
}

/// JSON pointers of every value in `v`.
fn pointers(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                pointers(x, format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

#[test]
fn the_shipped_modules_never_fail_on_odd_input() {
    // Every rule at once; any member of the documents replaced by a value of another type must give
    // violations (or none), never an evaluation error (which would hide what is wrong).
    let mut spec =
        serde_yaml::from_str::<vouch_policies::crd::ComplianceProfile>(&doc_example("regulated-v1"))
            .unwrap()
            .spec;
    spec.model = serde_yaml::from_str::<vouch_policies::crd::ComplianceProfile>(&doc_example("models-v1"))
        .unwrap()
        .spec
        .model;
    spec.model.as_mut().unwrap().required = false;
    spec.model.as_mut().unwrap().denied_file_extensions = vec![".onnx".into()];
    spec.sbom.as_mut().unwrap().required = true;
    let profile = vouch_policies::compliance::CompiledProfile::compile("all", &spec).unwrap();
    let odd = [
        serde_json::Value::Null,
        serde_json::json!(1),
        serde_json::json!("s"),
        serde_json::json!({}),
        serde_json::json!([1, {"a": null}]),
    ];
    let mut checked = 0;
    let mut failures = Vec::new();
    for doc in [doc_input("image-input"), doc_input("model-input")] {
        let mut paths = Vec::new();
        pointers(&doc, String::new(), &mut paths);
        for path in paths.iter().filter(|p| !p.is_empty()) {
            for value in &odd {
                let mut changed = doc.clone();
                *changed.pointer_mut(path).unwrap() = value.clone();
                if let Err(e) = profile.evaluate(&changed) {
                    failures.push(format!("{path} = {value}: {e}"));
                }
                checked += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 400, "{checked}");
}
