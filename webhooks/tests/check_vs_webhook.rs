//! `vouch check` decides what the webhook decides. The same objects and the same policy directory go to
//! the webhook (the `vouch serve` server built by `Server::prepare`, its /validate router driven with
//! AdmissionReviews shaped as kube-apiserver sends them) and to check (the function the command uses, and
//! the binary): for every object the allow/deny, the denial message and the warnings are equal, and the
//! webhook's answer for check's decision is byte-for-byte the webhook's own answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod check_support;

use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use check_support::{deployment, mode_policy, write, Fixture};
use clap::Parser as _;
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;
use vouch_policies::manifests::{resource_of, ManifestObject};
use vouch_webhooks::cli::check::{evaluate_objects, prepare, CheckArgs, Outcome};
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::server::admission::validate_response;
use vouch_webhooks::server::config::ServeConfig;
use vouch_webhooks::server::dev_pki::DevCa;
use vouch_webhooks::server::router;
use vouch_webhooks::server::run::Server;
use vouch_webhooks::server::tls::CertPaths;

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: CheckArgs,
}

/// The AdmissionReview kube-apiserver sends for creating `o` in `namespace` (it fills in the namespace).
fn review(uid: &str, o: &ManifestObject, namespace: &str) -> Value {
    let mut object = o.object.clone();
    object["metadata"]["namespace"] = json!(namespace);
    let gvk = json!({"group": o.kind.group, "version": o.kind.version, "kind": o.kind.kind});
    let gvr =
        json!({"group": o.kind.group, "version": o.kind.version, "resource": resource_of(&o.kind.kind)});
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid, "kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
            "name": o.name, "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "argocd", "groups": ["system:authenticated"]},
            "object": object, "oldObject": null, "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_and_webhook_decide_the_same() {
    let fx = Fixture::start().await;
    // A policy for namespaces labelled env=prod only. Neither the webhook without cluster access nor check
    // without --namespace-labels can know the labels of `shop`: both must apply it (its failurePolicy Fail
    // denies the unsigned image) and never read the unknown selector as "no policy applies".
    let _unsigned =
        push_demo_image(&fx.registry.client().unwrap(), &fx.host, "sel/app", "1.0", b"sel\n").await.unwrap();
    std::fs::write(
        fx.policies.join("prod-namespaces.yaml"),
        mode_policy("prod-namespaces", &fx.image("sel/**"), "Enforce", &fx.key).replace(
            "  mode: Enforce\n",
            "  mode: Enforce\n  match:\n    namespaceSelector:\n      matchLabels: {env: prod}\n",
        ),
    )
    .unwrap();
    let dir = fx.subdir("manifests");
    let bad_reference = "UPPER/Case::bad";
    let manifests = [
        deployment("web", Some("shop"), &fx.image("demo/app:1.0")),
        deployment("pinned", None, &format!("{}", fx.signed)),
        deployment("rogue", Some("shop"), &fx.image("demo/unsigned:1.0")),
        deployment("tool", None, &fx.image("soft/tool:1.0")),
        deployment("elsewhere", None, &fx.image("other/thing:1.0")),
        deployment("bad", None, bad_reference),
        deployment("selected", Some("shop"), &fx.image("sel/app:1.0")),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\n".to_owned(),
        format!(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: nightly}}\nspec:\n  schedule: '@daily'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          initContainers: [{{name: init, image: {}}}]\n          containers: [{{name: job, image: {}}}]\n",
            fx.image("demo/app:1.0"),
            fx.image("demo/unsigned:1.0")
        ),
        // A Pod (as JSON, which is YAML too) with a signed and a warn-mode container.
        serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mixed"}, "spec": {"containers": [
            {"name": "side", "image": fx.image("soft/tool:1.0")},
            {"name": "app", "image": fx.image("demo/app:1.0")},
        ]}})
        .to_string()
            + "\n",
    ];
    let file = write(&dir, "all.yaml", &manifests.join("---\n"));
    let policies = fx.policies.to_string_lossy().into_owned();

    for no_match in ["allow", "warn", "deny"] {
        // The webhook, as `vouch serve --policy-dir ... --no-match ...` builds it.
        let ca = DevCa::new("check-vs-webhook").unwrap();
        let pair = ca.issue_server(&["localhost"], &[]).unwrap();
        let tls_dir = tempfile::tempdir().unwrap();
        std::fs::write(tls_dir.path().join("tls.crt"), &pair.cert_pem).unwrap();
        std::fs::write(tls_dir.path().join("tls.key"), &pair.key_pem).unwrap();
        let server = Server::prepare(ServeConfig {
            no_match: match no_match {
                "allow" => vouch_policies::NoMatchAction::Allow,
                "warn" => vouch_policies::NoMatchAction::Warn,
                _ => vouch_policies::NoMatchAction::Deny,
            },
            insecure_registries: vec![fx.host.clone()],
            shutdown_grace: Duration::from_secs(1),
            ..ServeConfig::loopback(
                CertPaths { cert: tls_dir.path().join("tls.crt"), key: tls_dir.path().join("tls.key") },
                Some(fx.policies.clone()),
            )
        })
        .await
        .unwrap();
        let app = router(server.state().clone());

        // check, through the function the command uses.
        let cli = Cli::try_parse_from([
            "check",
            "-f",
            &file,
            "--policy",
            &policies,
            "--insecure-registry",
            &fx.host,
            "--no-match",
            no_match,
            "--timeout-budget",
            "8s",
        ])
        .unwrap();
        let prepared = prepare(&cli.args).unwrap();
        let (reports, _) = evaluate_objects(&prepared.engine, &prepared.objects, &prepared.options).await;
        assert_eq!(reports.len(), 10);

        let mut outcomes = Vec::new();
        for (i, (object, report)) in prepared.objects.iter().zip(&reports).enumerate() {
            let uid = format!("00000000-0000-0000-0000-{i:012}");
            let ns = report.namespace.clone().unwrap();
            let body = serde_json::to_vec(&review(&uid, object, &ns)).unwrap();
            let request = Request::post("/validate")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let answer: Value =
                serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
            let webhook = &answer["response"];
            let what = format!("{} (--no-match {no_match})", report.label());
            assert_eq!(webhook["allowed"], json!(report.decision.allowed), "{what}: {webhook}");
            assert_eq!(
                webhook["status"]["message"].as_str(),
                report.decision.message.as_deref(),
                "{what}: {webhook}"
            );
            let webhook_warnings: Vec<&str> = webhook["warnings"]
                .as_array()
                .map(|w| w.iter().map(|w| w.as_str().unwrap()).collect())
                .unwrap_or_default();
            assert_eq!(webhook_warnings.len(), report.decision.warnings.len(), "{what}: {webhook}");
            for (w, c) in webhook_warnings.iter().zip(&report.decision.warnings) {
                // The webhook shortens warnings to what the API server shows; the text is check's.
                assert!(c.starts_with(w.trim_end_matches('…')), "{what}: {w} vs {c}");
            }
            // And the whole answer is what the webhook makes of check's decision.
            assert_eq!(answer, validate_response(&uid, &report.decision).body, "{what}");
            if report.name == "selected" {
                let message = report.decision.message.as_deref().unwrap_or_default();
                assert!(message.contains("policy prod-namespaces: signature: "), "{message}");
                assert!(message.contains("the labels of namespace shop are unknown"), "{message}");
            }
            outcomes.push((report.name.clone(), report.outcome));
        }
        let expected_elsewhere = match no_match {
            "allow" => Outcome::Allowed,
            "warn" => Outcome::Warned,
            _ => Outcome::Denied,
        };
        assert_eq!(
            outcomes,
            [
                ("web".to_owned(), Outcome::Allowed),
                ("pinned".to_owned(), Outcome::Allowed),
                ("rogue".to_owned(), Outcome::Denied),
                ("tool".to_owned(), Outcome::Warned),
                ("elsewhere".to_owned(), expected_elsewhere),
                ("bad".to_owned(), Outcome::Denied),
                ("selected".to_owned(), Outcome::Denied),
                ("cfg".to_owned(), Outcome::Skipped),
                ("nightly".to_owned(), Outcome::Denied),
                ("mixed".to_owned(), Outcome::Warned),
            ],
            "--no-match {no_match}"
        );

        // The binary agrees with the function.
        let run = fx
            .check(&["-f", &file, "--no-match", no_match, "-o", "json", "--timeout-budget", "8s"], None)
            .await;
        assert_eq!(run.code, 1, "{run:?}");
        let json: Value = serde_json::from_str(&run.stdout).unwrap();
        for (o, report) in json["objects"].as_array().unwrap().iter().zip(&reports) {
            assert_eq!(o["decision"]["allowed"], json!(report.decision.allowed));
            assert_eq!(o["decision"]["message"].as_str(), report.decision.message.as_deref());
            assert_eq!(o["decision"]["warnings"], json!(report.decision.warnings));
        }
    }
}
