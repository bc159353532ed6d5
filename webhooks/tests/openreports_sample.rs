//! The OpenReports objects the status writer builds (`webhooks/src/cluster/reports.rs`: `ReportBook`,
//! `merge_results`, `report_object`, as `write_report` calls them), written out to
//! `charts/vouch/ci/openreports-written.json`, where `scripts/chart-test.sh` validates every one of them
//! against the Report/ClusterReport CRDs the chart installs. This test fails while that file is not what
//! the code builds now, so a change to the reports reaches the chart's schema check;
//! `VOUCH_UPDATE_REPORT_SAMPLE=1 cargo test -p vouch-webhooks --test openreports_sample` rewrites it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use serde_json::Value;
use vouch_policies::crd::Mode;
use vouch_policies::{ArtifactKind, ArtifactLocation, Finding, FindingResult};
use vouch_webhooks::cluster::reports::{merge_results, report_object, ReportBook};
use vouch_webhooks::cluster::ObjectRef;

const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SBOM_DIGEST: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// A finding with every optional field set when it passed.
fn finding(policy_namespace: Option<&str>, mode: Mode, requirement: &str, result: FindingResult) -> Finding {
    let pass = result == FindingResult::Pass;
    Finding {
        policy: "prod-signed".into(),
        policy_namespace: policy_namespace.map(str::to_owned),
        mode,
        requirement: requirement.into(),
        artifact: ArtifactLocation {
            kind: ArtifactKind::Container,
            name: "app".into(),
            pointer: "/spec/containers/0/image".into(),
        },
        reference: format!("reg.example/app:1@{DIGEST}"),
        digest: Some(DIGEST.parse().unwrap()),
        result,
        reason: match result {
            FindingResult::Pass => "signed by key cosign-prod".into(),
            FindingResult::Fail => "no signature verifies against key cosign-prod".into(),
            FindingResult::Error => "cannot verify: registry reg.example is unreachable".into(),
        },
        signer: pass.then(|| "key sha256:1234".to_owned()),
        rekor_log_index: pass.then_some(42),
        sbom_digest: (pass && requirement == "sbom").then(|| SBOM_DIGEST.parse().unwrap()),
    }
}

fn object(
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    uid: Option<&str>,
) -> ObjectRef {
    ObjectRef {
        api_version: api_version.into(),
        kind: kind.into(),
        namespace: namespace.map(str::to_owned),
        name: name.into(),
        uid: uid.map(str::to_owned),
        fingerprint: None,
    }
}

/// A namespace's Report (every outcome, cluster and namespaced policies, objects with and without a uid,
/// merged with a stored result) and a ClusterReport, built as the status writer builds them.
fn written_reports() -> Vec<Value> {
    let mut book = ReportBook::new(100);
    let pod = object("v1", "Pod", Some("prod"), "web", Some("uid-web"));
    book.record(
        &pod,
        &[
            finding(None, Mode::Enforce, "signature", FindingResult::Pass),
            finding(None, Mode::Enforce, "sbom", FindingResult::Pass),
            finding(
                Some("prod"),
                Mode::Warn,
                "attestation https://slsa.dev/provenance/v1",
                FindingResult::Fail,
            ),
        ],
        1_760_000_000,
    );
    let deployment = object("apps/v1", "Deployment", Some("prod"), "api", None);
    book.record(
        &deployment,
        &[
            finding(None, Mode::Enforce, "signature", FindingResult::Fail),
            finding(None, Mode::Audit, "sbom", FindingResult::Error),
        ],
        1_760_000_001,
    );
    let prod = Some("prod".to_owned());
    let stored = book.take(&prod);
    let job = object("batch/v1", "Job", Some("prod"), "migrate", Some("uid-migrate"));
    book.record(&job, &[finding(None, Mode::Audit, "signature", FindingResult::Fail)], 1_760_000_002);
    let merged = merge_results(&stored, &book.take(&prod), 100);
    let report = report_object(Some("prod"), &merged, Some("7"));

    let runtime =
        object("serving.kserve.io/v1alpha1", "ClusterServingRuntime", None, "triton", Some("uid-t"));
    book.record(&runtime, &[finding(None, Mode::Enforce, "signature", FindingResult::Pass)], 1_760_000_003);
    let cluster_report = report_object(None, &merge_results(&[], &book.take(&None), 100), None);
    vec![report, cluster_report]
}

#[test]
fn checked_in_report_sample_is_what_the_status_writer_builds() {
    let reports = written_reports();
    assert_eq!(reports[0]["kind"], "Report");
    assert_eq!(reports[1]["kind"], "ClusterReport");
    let outcomes: Vec<&str> =
        reports[0]["results"].as_array().unwrap().iter().map(|r| r["result"].as_str().unwrap()).collect();
    for outcome in ["pass", "fail", "warn", "error"] {
        assert!(outcomes.contains(&outcome), "the sample covers {outcome}: {outcomes:?}");
    }
    let text = format!("{}\n", serde_json::to_string_pretty(&reports).unwrap());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../charts/vouch/ci/openreports-written.json");
    if std::env::var("VOUCH_UPDATE_REPORT_SAMPLE").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with VOUCH_UPDATE_REPORT_SAMPLE=1)", path.display()));
    assert!(
        on_disk == text,
        "{} is not what reports.rs builds now: run VOUCH_UPDATE_REPORT_SAMPLE=1 cargo test -p vouch-webhooks \
         --test openreports_sample, then scripts/chart-test.sh (which validates it against the chart's CRDs)",
        path.display()
    );
}
