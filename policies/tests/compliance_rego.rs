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
