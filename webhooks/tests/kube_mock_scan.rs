//! `vouch scan --cluster` against kube's tower-test mock API server (no API server runs here) and a real
//! loopback registry: Pods are listed a page at a time (`limit`, then `continue`), the policies come from the
//! cluster's vouch resources, namespace labels from its Namespaces; API errors stop the scan with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod check_support;
mod kube_mock_support;
mod python_receiver;

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

/// The webhook's engine over the fixture's policies and registry.
fn engine(fx: &Fixture) -> vouch_policies::Engine {
    use vouch_attest::verify::{ArtifactVerifier, VerifierConfig};
    let verifier = ArtifactVerifier::new(VerifierConfig {
        registry: fx.registry.registry_config(),
        trust_root: vouch_attest::trust_root::TrustRoot::public_good().unwrap(),
        cache: Default::default(),
        options: Default::default(),
    })
    .unwrap();
    let policies = vouch_policies::PolicySet::load_dir(&fx.policies).unwrap();
    vouch_policies::Engine::new(vouch_policies::EngineConfig::default(), policies, verifier)
}

fn with_condition(mut pod: Value, status: &str, reason: &str, message: &str) -> Value {
    pod["status"]["conditions"] =
        json!([{"type": "vouch.dev/Verified", "status": status, "reason": reason, "message": message}]);
    pod
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_scanner_writes_whole_reports_changed_conditions_and_drift_events() {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;
    use vouch_webhooks::cluster::scanner::{ClusterScanner, ScanMetrics, ScannerConfig, DRIFT_REASON};

    let fx = Fixture::start().await;
    // web: signed, its condition already says so (not written again). rogue: unsigned, but its condition
    // says it passed (an image re-pointed since, a key rotated): drift. fresh: signed, no condition yet.
    // old: a namespace whose only Pod goes away before the second scan.
    let web = with_condition(
        pod("web", "shop", &fx.image("demo/app:1.0"), &fx.signed),
        "True",
        "Verified",
        "1 of 1 requirements met",
    );
    let rogue = with_condition(
        pod("rogue", "shop", &fx.image("demo/unsigned:1.0"), &fx.unsigned),
        "True",
        "Verified",
        "1 of 1 requirements met",
    );
    let fresh = pod("fresh", "shop", &fx.image("demo/app:1.0"), &fx.signed);
    let leaving = pod("leaving", "old", &fx.image("demo/app:1.0"), &fx.signed);
    let pods = Arc::new(Mutex::new(vec![web, rogue.clone(), fresh.clone(), leaving]));
    let listed = Arc::clone(&pods);
    let (client, seen) = mock_client(move |s| {
        let by_name =
            |name: &str| listed.lock().unwrap().iter().find(|p| p["metadata"]["name"] == name).cloned();
        match (s.method.as_str(), s.path()) {
            ("GET", "/api/v1/pods") => list("Pod", listed.lock().unwrap().clone(), None),
            ("GET", "/api/v1/namespaces") => list("Namespace", vec![], None),
            ("GET", p) | ("PATCH", p) if p.ends_with("/status") && p.starts_with("/api/v1/namespaces/") => {
                let name = p.trim_end_matches("/status").rsplit('/').next().unwrap();
                by_name(name).map(|pod| (200, pod))
            }
            ("POST", p) if p.ends_with("/events") => Some((201, s.body.clone())),
            ("GET", p) if p.contains("/reports/vouch-scan") => Some((404, status_body(404, "NotFound"))),
            ("PATCH", p) if p.contains("/reports/vouch-scan") => Some((200, s.body.clone())),
            _ => Some((404, status_body(404, "NotFound"))),
        }
    });
    let (_leader_tx, leader) = tokio::sync::watch::channel(true);
    let metrics = ScanMetrics::default();
    let config = ScannerConfig { replica: "vouch-0".into(), ..ScannerConfig::default() };
    // With --events-sink, drift is also a CloudEvent (received by the CloudEvents SDK), when it is installed.
    let receiver = python_receiver::Receiver::cloudevents();
    let sink = receiver.as_ref().map(|r| {
        let config = vouch_webhooks::cloudevents::EventsConfig {
            sink: format!("http://127.0.0.1:{}/", r.port).parse().unwrap(),
            source: "/vouch/vouch-0".into(),
            queue: 16,
            timeout: Duration::from_secs(2),
        };
        vouch_webhooks::cloudevents::EventSink::spawn(config).unwrap().0
    });
    let scanner =
        ClusterScanner::new(client, engine(&fx), config, metrics.clone(), leader).with_events(sink.clone());

    let summary = scanner.scan_once().await.unwrap();
    assert_eq!((summary.totals.compliant, summary.totals.non_compliant), (3, 1), "{summary:?}");
    if let Some(receiver) = &receiver {
        let drift = receiver.next();
        assert_eq!(drift["type"], "dev.vouch.scan.drift", "{drift}");
        assert_eq!(drift["subject"], "/api/v1/namespaces/shop/pods/rogue");
        assert_eq!(drift["source"], "/vouch/vouch-0");
        assert_eq!(drift["data"]["outcome"], "nonCompliant", "{drift}");
        assert_eq!(drift["data"]["name"], "rogue", "{drift}");
        receiver.nothing_more();
    }
    let requests = seen.lock().unwrap().clone();
    let writes: Vec<String> =
        requests.iter().filter(|s| s.method != "GET").map(|s| format!("{} {}", s.method, s.path())).collect();
    // Conditions: rogue's changes to False, fresh and leaving get their first; web's is unchanged.
    let status_patches: Vec<&String> = writes.iter().filter(|w| w.ends_with("/status")).collect();
    assert_eq!(
        status_patches,
        [
            "PATCH /api/v1/namespaces/shop/pods/rogue/status",
            "PATCH /api/v1/namespaces/shop/pods/fresh/status",
            "PATCH /api/v1/namespaces/old/pods/leaving/status"
        ],
        "{writes:#?}"
    );
    let rogue_patch =
        requests.iter().find(|s| s.method == "PATCH" && s.path().ends_with("rogue/status")).unwrap();
    let condition = &rogue_patch.body["status"]["conditions"][0];
    assert_eq!(
        (condition["status"].as_str(), condition["reason"].as_str()),
        (Some("False"), Some("VerificationFailed"))
    );
    // One drift Event, on rogue only, naming why.
    let events: Vec<&kube_mock_support::Seen> = requests.iter().filter(|s| s.method == "POST").collect();
    assert_eq!(events.len(), 1, "{writes:#?}");
    assert_eq!(events[0].path(), "/api/v1/namespaces/shop/events");
    let event = &events[0].body;
    assert_eq!(event["reason"], DRIFT_REASON);
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["involvedObject"]["name"], "rogue");
    assert_eq!(event["involvedObject"]["uid"], "uid-rogue");
    assert_eq!(event["reportingInstance"], "vouch-0");
    assert!(
        event["message"].as_str().unwrap().contains("no signature verifies against key cosign-prod"),
        "{event}"
    );
    // Reports: one per namespace, the scanner's own, results for each Pod.
    let report = |ns: &str| {
        requests
            .iter()
            .rev()
            .find(|s| {
                s.method == "PATCH"
                    && s.path() == format!("/apis/openreports.io/v1alpha1/namespaces/{ns}/reports/vouch-scan")
            })
            .map(|s| s.body.clone())
    };
    let shop = report("shop").expect("a shop report");
    assert_eq!(shop["source"], "vouch-scan");
    assert_eq!(shop["metadata"]["name"], "vouch-scan");
    assert_eq!(shop["results"].as_array().unwrap().len(), 3, "{shop:#}");
    assert_eq!(shop["summary"]["fail"], 1);
    assert!(shop["results"].as_array().unwrap().iter().all(|r| r["source"] == "vouch-scan"));
    assert_eq!(report("old").unwrap()["results"].as_array().unwrap().len(), 1);
    assert_eq!(metrics.runs_of("success"), 1);
    assert_eq!(metrics.workloads_of("nonCompliant"), 1);
    assert_eq!(metrics.workloads_of("compliant"), 3);

    // Second scan: the conditions now read as written; the Pod in `old` is gone, so its report is emptied;
    // rogue fails again but did not pass before: no second Event.
    {
        let mut pods = pods.lock().unwrap();
        pods.retain(|p| p["metadata"]["name"] != "leaving");
        let written = |name: &str| {
            requests
                .iter()
                .find(|s| s.method == "PATCH" && s.path().ends_with(&format!("/{name}/status")))
                .unwrap()
                .body["status"]["conditions"][0]
                .clone()
        };
        for p in pods.iter_mut() {
            let name = p["metadata"]["name"].as_str().unwrap().to_owned();
            if name != "web" {
                p["status"]["conditions"] = json!([written(&name)]);
            }
        }
    }
    seen.lock().unwrap().clear();
    let summary = scanner.scan_once().await.unwrap();
    assert_eq!((summary.conditions_written, summary.drift_events), (0, 0), "{summary:?}");
    let requests = seen.lock().unwrap().clone();
    assert!(!requests.iter().any(|s| s.method == "POST"), "no second Event");
    let old = requests
        .iter()
        .find(|s| s.method == "PATCH" && s.path().ends_with("/namespaces/old/reports/vouch-scan"))
        .expect("the old namespace's report is rewritten");
    assert_eq!(old.body["results"].as_array().unwrap().len(), 0);
    assert_eq!(metrics.runs_of("success"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_scanner_scans_only_while_leading_and_again_when_policies_change() {
    use std::time::Duration;
    use vouch_webhooks::cluster::scanner::{ClusterScanner, ScanMetrics, ScannerConfig};

    let fx = Fixture::start().await;
    let web = pod("web", "shop", &fx.image("demo/app:1.0"), &fx.signed);
    let (client, seen) = mock_client(move |s| match (s.method.as_str(), s.path()) {
        ("GET", "/api/v1/pods") => list("Pod", vec![web.clone()], None),
        ("GET", "/api/v1/namespaces") => list("Namespace", vec![], None),
        ("GET", p) if p.ends_with("/status") => Some((404, status_body(404, "NotFound"))),
        ("GET", p) if p.contains("/reports/") => Some((404, status_body(404, "NotFound"))),
        ("PATCH", p) if p.contains("/reports/") => Some((200, s.body.clone())),
        _ => Some((404, status_body(404, "NotFound"))),
    });
    let scans = || paths(&seen).iter().filter(|p| *p == "GET /api/v1/pods").count();
    let engine = engine(&fx);
    let (leader_tx, leader) = tokio::sync::watch::channel(false);
    let metrics = ScanMetrics::default();
    let config = ScannerConfig {
        interval: Duration::from_secs(3600),
        pod_conditions: false,
        ..ScannerConfig::default()
    };
    let task = ClusterScanner::new(client, engine.clone(), config, metrics.clone(), leader).spawn();
    let settle = || tokio::time::sleep(Duration::from_millis(500));
    let until = |n: usize| {
        let metrics = metrics.clone();
        async move {
            for _ in 0..200 {
                if metrics.runs_of("success") as usize >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("no scan {n}");
        }
    };

    settle().await;
    assert_eq!(scans(), 0, "not leading: no scan");
    leader_tx.send(true).unwrap();
    until(1).await;
    assert_eq!(scans(), 1, "leading: one scan at once, the next an interval later");
    settle().await;
    assert_eq!(scans(), 1);
    // The policies in force change: a scan at once. A resync of the same set does not count.
    engine.refresh_policies(vouch_policies::PolicySet::load_dir(&fx.policies).unwrap());
    settle().await;
    assert_eq!(scans(), 1, "a resync is no change");
    engine.replace_policies(vouch_policies::PolicySet::load_dir(&fx.policies).unwrap());
    until(2).await;
    assert_eq!(scans(), 2);
    // Leadership lost: a change no longer makes this replica scan.
    leader_tx.send(false).unwrap();
    settle().await;
    engine.replace_policies(vouch_policies::PolicySet::load_dir(&fx.policies).unwrap());
    settle().await;
    assert_eq!(scans(), 2, "not leading any more: no scan");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_cluster_scan_pulls_with_the_pods_image_pull_secrets() {
    use base64::Engine as _;
    use std::collections::BTreeMap;
    use vouch_attest::cosign::sign_image_with_key;
    use vouch_attest::registry::{Credentials, RegistryClient};
    use vouch_webhooks::cli::demo::push_demo_image;
    use vouch_webhooks::dev_registry::DevRegistry;

    let registry = DevRegistry::start_with_basic_auth("puller", "s3cret").await.unwrap();
    let host = registry.host();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let docker_config = json!({"auths": {host.clone(): {"auth": b64("puller:s3cret")}}}).to_string();
    let auth = Credentials::from_docker_config_json(docker_config.as_bytes()).unwrap();
    let client = RegistryClient::new(vouch_attest::registry::RegistryConfig {
        credentials: auth,
        ..registry.registry_config()
    })
    .unwrap();
    let key = vouch_attest::SigningKey::generate();
    let image = push_demo_image(&client, &host, "demo/private", "1.0", b"private\n").await.unwrap();
    sign_image_with_key(&client, &image, &key, BTreeMap::new()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.yaml"), key_policy("private-signed", "cosign-private", &host, &key))
        .unwrap();
    let policies = dir.path().to_string_lossy().into_owned();

    let mut private = pod("private", "shop", &format!("{host}/demo/private:1.0"), &image);
    private["spec"]["imagePullSecrets"] = json!([{"name": "regcred"}]);
    let with_secret = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let serve_secret = with_secret.clone();
    let (client, seen) = mock_client(move |s| match (s.method.as_str(), s.path()) {
        ("GET", "/api/v1/pods") => list("Pod", vec![private.clone()], None),
        ("GET", "/api/v1/namespaces") => list("Namespace", vec![], None),
        ("GET", "/api/v1/namespaces/shop/serviceaccounts/default") => Some((
            200,
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "shop"}}),
        )),
        ("GET", "/api/v1/namespaces/shop/secrets/regcred")
            if serve_secret.load(std::sync::atomic::Ordering::SeqCst) =>
        {
            Some((
                200,
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred", "namespace": "shop"},
                   "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": b64(&docker_config)}}),
            ))
        }
        _ => Some((404, status_body(404, "NotFound"))),
    });
    let args = |extra: &[&str]| {
        let mut all = vec!["scan", "--cluster", "--insecure-registry", &host, "--policy", &policies];
        all.extend_from_slice(extra);
        Command::try_parse_from(all).unwrap().args
    };
    let report = scan_with(&args(&[]), Some(client.clone())).await.unwrap();
    assert_eq!(report.workloads[0].outcome, ScanOutcome::Compliant, "{:?}", report.workloads[0]);
    assert!(
        paths(&seen).contains(&"GET /api/v1/namespaces/shop/secrets/regcred".to_owned()),
        "{:?}",
        paths(&seen)
    );
    // Without the secret the registry refuses the pull: not compliant, and the reason says why.
    with_secret.store(false, std::sync::atomic::Ordering::SeqCst);
    let report = scan_with(&args(&[]), Some(client)).await.unwrap();
    let w = &report.workloads[0];
    assert!(!w.outcome.passes(), "{w:?}");
    assert!(w.reasons[0].contains("refused the credentials (HTTP 401)"), "{w:?}");
}
