//! `vouch scan --cluster` against kube's tower-test mock API server (no API server runs here) and a real
//! loopback registry: Pods are listed a page at a time (`limit`, then `continue`), the policies come from the
//! cluster's vouch resources, namespace labels from its Namespaces; API errors stop the scan with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod check_support;
mod kube_mock_support;

use check_support::Fixture;
use clap::Parser as _;
use kube_mock_support::{mock_client, paths, status_body, Answer};
use serde_json::{json, Value};
use vouch_attest::ArtifactRef;
use vouch_webhooks::cli::demo_webhook::key_policy;
use vouch_webhooks::cli::scan::{scan_with, ScanArgs};
use vouch_webhooks::scan::ScanOutcome;

#[derive(clap::Parser)]
struct Command {
    #[command(flatten)]
    args: ScanArgs,
}

fn args(fx: &Fixture, extra: &[&str]) -> ScanArgs {
    let mut all = vec!["scan", "--cluster", "--insecure-registry", &fx.host, "--page-size", "2"];
    all.extend_from_slice(extra);
    Command::try_parse_from(all).unwrap().args
}

fn list(kind: &str, items: Vec<Value>, continue_token: Option<&str>) -> Answer {
    let mut metadata = json!({"resourceVersion": "7"});
    if let Some(t) = continue_token {
        metadata["continue"] = json!(t);
    }
    Some((
        200,
        json!({"apiVersion": "v1", "kind": format!("{kind}List"), "metadata": metadata, "items": items}),
    ))
}

fn pod(name: &str, namespace: &str, image: &str, running: &ArtifactRef) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")},
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {"containerStatuses": [{
            "name": "app", "image": image, "ready": true, "restartCount": 0,
            "imageID": format!("{}@{}", running.repository_name(), running.digest().unwrap()),
        }]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_cluster_scan_pages_pods_and_takes_the_clusters_policies() {
    let fx = Fixture::start().await;
    let policy: Value =
        serde_yaml::from_str(&key_policy("cluster-signed", "cosign-cluster", &fx.host, &fx.key)).unwrap();
    let (web, rogue, other) = (
        pod("web", "shop", &fx.image("demo/app:1.0"), &fx.signed),
        pod("rogue", "shop", &fx.image("demo/unsigned:1.0"), &fx.unsigned),
        pod("api", "team", &fx.image("demo/app:1.0"), &fx.signed),
    );
    let (client, seen) = mock_client(move |s| match (s.method.as_str(), s.path()) {
        ("GET", "/api/v1/pods") if s.uri.contains("continue=page-2") => {
            list("Pod", vec![other.clone()], None)
        }
        ("GET", "/api/v1/pods") => list("Pod", vec![web.clone(), rogue.clone()], Some("page-2")),
        ("GET", "/api/v1/namespaces/shop/pods") => list("Pod", vec![web.clone(), rogue.clone()], None),
        ("GET", "/api/v1/namespaces") => list(
            "Namespace",
            vec![
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"env": "prod"}}}),
            ],
            None,
        ),
        ("GET", "/apis/vouch.dev/v1alpha1/clustersupplychainpolicies") => {
            list("ClusterSupplyChainPolicy", vec![policy.clone()], None)
        }
        ("GET", p) if p.starts_with("/apis/vouch.dev/v1alpha1/") => list("Thing", vec![], None),
        _ => Some((404, status_body(404, "NotFound"))),
    });

    let report = scan_with(&args(&fx, &["-o", "json"]), Some(client.clone())).await.unwrap();
    let outcomes: Vec<(String, ScanOutcome)> =
        report.workloads.iter().map(|w| (w.name.clone(), w.outcome)).collect();
    assert_eq!(
        outcomes,
        [
            ("web".to_owned(), ScanOutcome::Compliant),
            ("rogue".to_owned(), ScanOutcome::NonCompliant),
            ("api".to_owned(), ScanOutcome::Compliant)
        ]
    );
    // The cluster's policy judged them (the fixture's policy files were not given).
    assert!(
        report.workloads[1].reasons[0].contains("policy cluster-signed: signature"),
        "{:?}",
        report.workloads[1]
    );
    assert_eq!(report.scope, ["cluster"]);
    let requests: Vec<String> =
        seen.lock().unwrap().iter().map(|s| format!("{} {}", s.method, s.uri)).collect();
    let pod_lists: Vec<&String> = requests.iter().filter(|r| r.starts_with("GET /api/v1/pods")).collect();
    assert_eq!(pod_lists.len(), 2, "{requests:#?}");
    assert!(pod_lists[0].contains("limit=2") && !pod_lists[0].contains("continue"), "{requests:#?}");
    assert!(pod_lists[1].contains("limit=2") && pod_lists[1].contains("continue=page-2"), "{requests:#?}");
    for kind in ["clustersupplychainpolicies", "supplychainpolicies", "trustroots", "complianceprofiles"] {
        assert!(paths(&seen).contains(&format!("GET /apis/vouch.dev/v1alpha1/{kind}")), "{requests:#?}");
    }

    // --namespace: only that namespace is listed.
    seen.lock().unwrap().clear();
    let report = scan_with(&args(&fx, &["-n", "shop"]), Some(client)).await.unwrap();
    assert_eq!(report.totals.workloads, 2);
    assert!(paths(&seen).contains(&"GET /api/v1/namespaces/shop/pods".to_owned()), "{:?}", paths(&seen));
    assert!(!paths(&seen).contains(&"GET /api/v1/pods".to_owned()), "{:?}", paths(&seen));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_cluster_scan_stops_with_the_reason_when_pods_cannot_be_listed() {
    let fx = Fixture::start().await;
    let policies = fx.policies.to_string_lossy().into_owned();
    let (client, seen) = mock_client(|s| match s.path() {
        "/api/v1/pods" => Some((403, status_body(403, "Forbidden"))),
        _ => list("Namespace", vec![], None),
    });
    let e = scan_with(&args(&fx, &["--policy", &policies]), Some(client)).await.unwrap_err().to_string();
    assert!(e.contains("cannot read Pod") && e.contains("Forbidden"), "{e}");
    // --policy given: the cluster's policies are not read.
    assert!(!paths(&seen).iter().any(|p| p.contains("vouch.dev")), "{:?}", paths(&seen));
}
