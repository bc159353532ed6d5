//! `vouch scan` as auditors run it: the built binary over a `kubectl get pods -A -o json` dump, against a
//! real registry on loopback (Debian's docker-registry) with images signed by our own code. What is verified
//! is what runs (the status `imageID`), a tag re-pointed after the Pod started is reported, a tampered
//! signature fails, and a re-scan with `--baseline` after a signature is deleted and a policy key changes
//! lists exactly the workloads that drifted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod check_support;

use std::collections::BTreeMap;

use check_support::{mode_policy, vouch, write, Fixture, Run};
use serde_json::{json, Value};
use vouch_attest::cosign::{
    layer_annotations, push_signature_layer, sign_image_with_key, signature_tag, SimpleSigningPayload,
    SIGNATURE_SUFFIX, SIMPLE_SIGNING_MEDIA_TYPE,
};
use vouch_attest::{ArtifactRef, SigningKey};
use vouch_webhooks::cli::demo::push_demo_image;

/// A running Pod as the API returns it: spec image, and the status naming the digest it runs (`None`: the
/// Pod has no status yet).
fn running_pod(name: &str, namespace: &str, image: &str, image_id: Option<&str>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{name}")},
        "spec": {"containers": [{"name": "app", "image": image}]},
    });
    if let Some(id) = image_id {
        pod["status"] = json!({"phase": "Running", "containerStatuses": [
            {"name": "app", "image": image, "imageID": id, "ready": true, "restartCount": 0}
        ]});
    }
    pod
}

fn pod_list(pods: Vec<Value>) -> String {
    json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": pods})
        .to_string()
}

/// `vouch scan` with `policies`, the registry over plain HTTP, plus `args`.
async fn scan(fx: &Fixture, policies: &std::path::Path, args: &[&str]) -> Run {
    let mut all: Vec<String> = vec![
        "scan".into(),
        "--policy".into(),
        policies.to_string_lossy().into_owned(),
        "--insecure-registry".into(),
        fx.host.clone(),
    ];
    all.extend(args.iter().map(|s| (*s).to_owned()));
    vouch(&all, None).await
}

fn workload<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["workloads"].as_array().unwrap().iter().find(|w| w["name"] == name).unwrap_or_else(|| {
        panic!("no workload {name} in {report:#}");
    })
}

/// `image` (pinned) signed by `key` with a payload changed after signing: the signature no longer
/// verifies over what is stored.
async fn push_tampered_signature(fx: &Fixture, image: &ArtifactRef, key: &SigningKey) {
    let client = fx.registry.client().unwrap();
    let annotations = BTreeMap::from([("build".to_owned(), json!("1"))]);
    let payload = SimpleSigningPayload::for_artifact(image, annotations).unwrap().to_json();
    let signature = key.sign(&payload);
    let text = String::from_utf8(payload).unwrap();
    assert!(text.contains("\"build\":\"1\""), "{text}");
    let tampered = text.replace("\"build\":\"1\"", "\"build\":\"2\"");
    let annotations = layer_annotations(&signature, None, None, None);
    push_signature_layer(
        &client,
        image,
        SIGNATURE_SUFFIX,
        SIMPLE_SIGNING_MEDIA_TYPE,
        tampered.as_bytes(),
        annotations,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_runs_is_verified_moved_tags_are_reported_and_tampered_signatures_fail() {
    let fx = Fixture::start().await;
    let client = fx.registry.client().unwrap();
    // demo/moving:1.0 first names an unsigned image (which the Pod started with), then is re-pointed to a
    // signed one.
    let old = push_demo_image(&client, &fx.host, "demo/moving", "1.0", b"moving: old\n").await.unwrap();
    let new = push_demo_image(&client, &fx.host, "demo/moving", "1.0", b"moving: new\n").await.unwrap();
    sign_image_with_key(&client, &new, &fx.key, BTreeMap::new()).await.unwrap();
    let tampered = push_demo_image(&client, &fx.host, "demo/tampered", "1.0", b"tampered\n").await.unwrap();
    push_tampered_signature(&fx, &tampered, &fx.key).await;

    let id = |r: &ArtifactRef| format!("{}@{}", r.repository_name(), r.digest().unwrap());
    let dump = pod_list(vec![
        running_pod("web", "shop", &fx.image("demo/app:1.0"), Some(&id(&fx.signed))),
        running_pod("rogue", "shop", &fx.image("demo/unsigned:1.0"), Some(&id(&fx.unsigned))),
        running_pod(
            "moved",
            "shop",
            &fx.image("demo/moving:1.0"),
            Some(&format!("docker-pullable://{}", id(&old))),
        ),
        running_pod("forged", "ops", &fx.image("demo/tampered:1.0"), Some(&id(&tampered))),
        running_pod("pending", "ops", &fx.image("demo/app:1.0"), None),
    ]);
    let dir = fx.subdir("dump");
    let file = write(&dir, "pods.json", &dump);

    let r = scan(&fx, &fx.policies, &["-f", &file, "-o", "json"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["apiVersion"], "vouch.dev/scan/v1");
    assert_eq!(report["kind"], "ScanReport");

    let web = workload(&report, "web");
    assert_eq!(web["outcome"], "compliant", "{web:#}");
    assert_eq!(web["namespace"], "shop");
    let artifact = &web["artifacts"][0];
    assert_eq!(artifact["container"], "app");
    assert_eq!(artifact["reference"], fx.image("demo/app:1.0"));
    assert_eq!(artifact["runningDigest"], fx.signed.digest().unwrap().to_string());
    assert_eq!(artifact["digestSource"], "running");
    assert_eq!(artifact["results"][0]["policy"], "prod-signed");
    assert_eq!(artifact["results"][0]["requirement"], "signature");
    assert_eq!(artifact["results"][0]["result"], "pass");

    let rogue = workload(&report, "rogue");
    assert_eq!(rogue["outcome"], "nonCompliant", "{rogue:#}");
    assert_eq!(rogue["artifacts"][0]["results"][0]["result"], "fail");
    assert!(
        rogue["reasons"][0].as_str().unwrap().contains("no signature verifies against key cosign-prod"),
        "{rogue:#}"
    );

    // The tag now names a signed image, but the Pod runs the old, unsigned one: that is what is judged.
    let moved = workload(&report, "moved");
    assert_eq!(moved["outcome"], "nonCompliant", "{moved:#}");
    let artifact = &moved["artifacts"][0];
    assert_eq!(artifact["runningDigest"], old.digest().unwrap().to_string());
    assert_eq!(artifact["verifiedDigest"], old.digest().unwrap().to_string());
    let results = artifact["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["requirement"] == "signature" && r["result"] == "fail"), "{moved:#}");
    let note = results.iter().find(|r| r["requirement"] == "running digest").expect("a moved-tag note");
    assert_eq!(note["result"], "warn");
    let text = note["reason"].as_str().unwrap();
    assert!(text.contains("tag moved") && text.contains(&new.digest().unwrap().to_string()), "{text}");

    let forged = workload(&report, "forged");
    assert_eq!(forged["outcome"], "nonCompliant", "{forged:#}");
    assert_eq!(forged["artifacts"][0]["results"][0]["result"], "fail");

    // No status: the spec's tag, resolved now, and the record says so.
    let pending = workload(&report, "pending");
    assert_eq!(pending["outcome"], "compliant", "{pending:#}");
    assert_eq!(pending["artifacts"][0]["digestSource"], "spec");
    assert!(pending["artifacts"][0].get("runningDigest").is_none(), "{pending:#}");
    assert_eq!(pending["artifacts"][0]["verifiedDigest"], fx.signed.digest().unwrap().to_string());

    assert_eq!(report["totals"]["workloads"], 5);
    assert_eq!(report["totals"]["compliant"], 2);
    assert_eq!(report["totals"]["nonCompliant"], 3);
    assert_eq!(report["namespaces"]["shop"]["nonCompliant"], 2);
    assert_eq!(report["namespaces"]["ops"]["compliant"], 1);
    assert_eq!(report["namespaces"]["ops"]["nonCompliant"], 1);
    assert!(
        r.stderr.contains("scanned 5 workloads (5 artifacts): 2 compliant, 0 warned, 3 non-compliant"),
        "{}",
        r.stderr
    );

    // Text: the failing workloads and why; the compliant ones only with -v.
    let r = scan(&fx, &fx.policies, &["-f", &file]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("Pod shop/rogue: non-compliant\n  container app: image "), "{}", r.stdout);
    assert!(r.stdout.contains("Pod shop/moved: non-compliant"), "{}", r.stdout);
    assert!(!r.stdout.contains("Pod shop/web:"), "{}", r.stdout);
    let r = scan(&fx, &fx.policies, &["-f", &file, "-v"]).await;
    assert!(r.stdout.contains("Pod shop/web: compliant"), "{}", r.stdout);
    assert!(r.stdout.contains("runs nothing yet: verified what the spec names now"), "{}", r.stdout);

    // SARIF and JUnit parse and carry the failures.
    let r = scan(&fx, &fx.policies, &["-f", &file, "-o", "sarif"]).await;
    let sarif: Value = serde_json::from_str(&r.stdout).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    let errors = results.iter().filter(|r| r["level"] == "error").count();
    assert_eq!(errors, 3, "{sarif:#}");
    assert!(
        results.iter().any(|r| r["ruleId"] == "vouch/running-digest" && r["level"] == "warning"),
        "{sarif:#}"
    );
    let r = scan(&fx, &fx.policies, &["-f", &file, "-o", "junit"]).await;
    assert!(r.stdout.contains("<testsuites name=\"vouch scan\" tests=\"5\" failures=\"3\""), "{}", r.stdout);

    // Only one namespace.
    let r = scan(&fx, &fx.policies, &["-f", &file, "-o", "json", "-n", "ops"]).await;
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["totals"]["workloads"], 2, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescan_with_a_baseline_lists_exactly_the_workloads_that_drifted() {
    let fx = Fixture::start().await;
    let client = fx.registry.client().unwrap();
    let doomed = push_demo_image(&client, &fx.host, "demo/doomed", "1.0", b"doomed\n").await.unwrap();
    sign_image_with_key(&client, &doomed, &fx.key, BTreeMap::new()).await.unwrap();
    let team_key = SigningKey::generate();
    let tool = push_demo_image(&client, &fx.host, "team/tool", "2.0", b"team tool\n").await.unwrap();
    sign_image_with_key(&client, &tool, &team_key, BTreeMap::new()).await.unwrap();
    let policies = fx.subdir("policies-now");
    std::fs::copy(fx.policies.join("prod-signed.yaml"), policies.join("prod-signed.yaml")).unwrap();
    let team_policy =
        |key: &SigningKey| mode_policy("team-signed", &format!("{}/team/**", fx.host), "Audit", key);
    std::fs::write(policies.join("team-signed.yaml"), team_policy(&team_key)).unwrap();

    let id = |r: &ArtifactRef| format!("{}@{}", r.repository_name(), r.digest().unwrap());
    let dump = pod_list(vec![
        running_pod("web", "shop", &fx.image("demo/app:1.0"), Some(&id(&fx.signed))),
        running_pod("doomed", "shop", &fx.image("demo/doomed:1.0"), Some(&id(&doomed))),
        running_pod("tool", "team", &fx.image("team/tool:2.0"), Some(&id(&tool))),
        running_pod("rogue", "shop", &fx.image("demo/unsigned:1.0"), Some(&id(&fx.unsigned))),
    ]);
    let dir = fx.subdir("drift");
    let file = write(&dir, "pods.json", &dump);
    let r = scan(&fx, &policies, &["-f", &file, "-o", "json"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    let baseline = write(&dir, "baseline.json", &r.stdout);
    let before: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(before["totals"]["compliant"], 3, "{before:#}");

    // Drift: the signature of demo/doomed is deleted from the registry, and team-signed's key rotates
    // (in audit mode: a scan judges compliance whatever the mode).
    let sig = signature_tag(&doomed, SIGNATURE_SUFFIX).unwrap();
    let sig_digest = client.resolve(&sig).await.unwrap();
    let deleted = reqwest::Client::new()
        .delete(format!("http://{}/v2/demo/doomed/manifests/{sig_digest}", fx.host))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 202, "the registry deletes manifests");
    std::fs::write(policies.join("team-signed.yaml"), team_policy(&SigningKey::generate())).unwrap();

    let r = scan(&fx, &policies, &["-f", &file, "-o", "json", "--baseline", &baseline]).await;
    assert_eq!(r.code, 1, "{r:?}");
    let now: Value = serde_json::from_str(&r.stdout).unwrap();
    let drift = &now["drift"];
    let names = |list: &str| -> Vec<String> {
        drift[list].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names("newlyFailing"), ["doomed", "tool"], "{drift:#}");
    assert_eq!(names("unchanged"), ["web", "rogue"], "{drift:#}");
    assert!(names("newlyPassing").is_empty() && names("added").is_empty() && names("removed").is_empty());
    let doomed_entry = &drift["newlyFailing"][0];
    assert_eq!(doomed_entry["before"], "compliant");
    assert_eq!(doomed_entry["after"], "nonCompliant");
    assert!(
        doomed_entry["reasons"][0].as_str().unwrap().contains("policy prod-signed: signature: "),
        "{drift:#}"
    );
    let tool_entry = &drift["newlyFailing"][1];
    assert!(
        tool_entry["reasons"][0]
            .as_str()
            .unwrap()
            .contains("no signature verifies against key cosign-team-signed"),
        "{drift:#}"
    );
    assert_eq!(drift["baseline"], baseline);
    assert!(
        r.stderr.contains("since the baseline: 2 newly failing, 0 newly passing, 2 unchanged"),
        "{}",
        r.stderr
    );

    // Every output format carries the drift.
    let r = scan(&fx, &policies, &["-f", &file, "--baseline", &baseline]).await;
    assert!(
        r.stdout.contains("  newly failing: Pod shop/doomed (compliant -> non-compliant)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("  newly failing: Pod team/tool (compliant -> non-compliant)"), "{}", r.stdout);
    assert!(r.stdout.contains("  unchanged: 2 workloads"), "{}", r.stdout);
    let r = scan(&fx, &policies, &["-f", &file, "-o", "sarif", "--baseline", &baseline]).await;
    let sarif: Value = serde_json::from_str(&r.stdout).unwrap();
    let states: Vec<(String, String)> = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["message"]["text"].as_str().unwrap().to_owned(),
                r["baselineState"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(states.len(), 3, "{states:?}");
    for (text, state) in &states {
        let expected = if text.contains("rogue") { "unchanged" } else { "new" };
        assert_eq!(state, expected, "{text}");
    }
    let r = scan(&fx, &policies, &["-f", &file, "-o", "junit", "--baseline", &baseline]).await;
    assert!(
        r.stdout.contains(&format!("<testsuite name=\"drift since {baseline}\" tests=\"2\" failures=\"2\"")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("name=\"Pod shop/doomed\" time=\"0\">\n      <failure type=\"newlyFailing\""),
        "{}",
        r.stdout
    );
}

/// `requireDigest` is about the manifest: a Pod whose spec names a tag fails it although the scan verifies the
/// digest that runs (admission would deny that Pod today); a Pod whose spec names the digest passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_digest_is_judged_on_the_spec_as_written_not_on_the_running_digest() {
    let fx = Fixture::start().await;
    let policies = fx.subdir("digest-policies");
    let policy = mode_policy("digests", &format!("{}/demo/*", fx.host), "Enforce", &fx.key);
    write(&policies, "digests.yaml", &format!("{policy}  requireDigest: true\n"));
    let digest = fx.signed.digest().unwrap().to_string();
    let id = format!("{}@{digest}", fx.signed.repository_name());
    let by_digest = format!("{}@{digest}", fx.image("demo/app"));
    let dump = pod_list(vec![
        running_pod("tagged", "shop", &fx.image("demo/app:1.0"), Some(&id)),
        running_pod("pinned", "shop", &by_digest, Some(&id)),
    ]);
    let file = write(&fx.subdir("digest-dump"), "pods.json", &dump);

    let r = scan(&fx, &policies, &["-f", &file, "-o", "json"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    let tagged = workload(&report, "tagged");
    assert_eq!(tagged["outcome"], "nonCompliant", "{tagged:#}");
    let results = tagged["artifacts"][0]["results"].as_array().unwrap();
    let digest_result = results.iter().find(|x| x["requirement"] == "digest").unwrap();
    assert_eq!(digest_result["result"], "fail", "{tagged:#}");
    assert_eq!(digest_result["reasonCode"], "DigestRequired", "{tagged:#}");
    assert!(digest_result["reason"].as_str().unwrap().contains("names a tag, not a digest"), "{tagged:#}");
    // The signature is still verified on what runs, and passes.
    let signature = results.iter().find(|x| x["requirement"] == "signature").unwrap();
    assert_eq!(signature["result"], "pass", "{tagged:#}");

    let pinned = workload(&report, "pinned");
    assert_eq!(pinned["outcome"], "compliant", "{pinned:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_input_exits_2_naming_the_file() {
    let fx = Fixture::start().await;
    let dir = fx.subdir("bad");
    let broken =
        write(&dir, "broken.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n[not, an, object\n");
    let r = scan(&fx, &fx.policies, &["-f", &broken]).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("broken.yaml") && r.stderr.contains("document 2"), "{}", r.stderr);

    // An empty dump (a failed `kubectl get` in a pipe) is not a clean cluster.
    let empty = write(&dir, "empty.json", &pod_list(vec![]));
    let r = scan(&fx, &fx.policies, &["-f", &empty]).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no Kubernetes objects found"), "{}", r.stderr);

    let pods = write(
        &dir,
        "pods.json",
        &pod_list(vec![running_pod("web", "shop", &fx.image("demo/app:1.0"), None)]),
    );
    for (name, text, says) in [
        ("missing.json", None, "missing.json"),
        ("garbage.json", Some("{\"not\": \"a report\"}"), "not a vouch scan report"),
        ("other.json", Some("{\"apiVersion\": \"vouch.dev/check/v1\", \"kind\": \"ScanReport\", \"scannedAt\": \"\", \"scope\": [], \"totals\": {\"workloads\":0,\"compliant\":0,\"warned\":0,\"nonCompliant\":0,\"unverified\":0,\"skipped\":0,\"artifacts\":0}, \"namespaces\": {}, \"workloads\": []}"), "expected vouch.dev/scan/v1"),
    ] {
        let path = match text {
            Some(t) => write(&dir, name, t),
            None => dir.join(name).to_string_lossy().into_owned(),
        };
        let r = scan(&fx, &fx.policies, &["-f", &pods, "--baseline", &path]).await;
        assert_eq!(r.code, 2, "{name}: {r:?}");
        assert!(r.stderr.contains("--baseline") && r.stderr.contains(says), "{name}: {}", r.stderr);
    }
    // No policies at all.
    let r = vouch(&["scan".into(), "-f".into(), pods.clone()], None).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--policy"), "{}", r.stderr);
    // Neither files nor --cluster: clap's usage error.
    let r = vouch(&["scan".into()], None).await;
    assert_eq!(r.code, 2, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_bundle_scan_needs_no_registry() {
    let mut fx = Fixture::start().await;
    let dir = fx.subdir("offline");
    let bundle_key = SigningKey::generate();
    let (key_path, pub_path) = (dir.join("bundle.key"), dir.join("bundle.pub"));
    std::fs::write(&key_path, bundle_key.to_pkcs8_pem()).unwrap();
    std::fs::write(&pub_path, bundle_key.public_key().to_pem()).unwrap();
    let bundle = dir.join("site.tar");
    let s = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let created = vouch(
        &[
            "bundle".into(),
            "create".into(),
            fx.image("demo/app:1.0"),
            fx.image("demo/unsigned:1.0"),
            "--policy".into(),
            s(&fx.policies.join("prod-signed.yaml")),
            "--key".into(),
            s(&key_path),
            "--insecure-registry".into(),
            fx.host.clone(),
            "-o".into(),
            s(&bundle),
        ],
        None,
    )
    .await;
    assert_eq!(created.code, 0, "{created:?}");
    let id = |r: &ArtifactRef| format!("{}@{}", r.repository_name(), r.digest().unwrap());
    let file = write(
        &dir,
        "pods.json",
        &pod_list(vec![
            running_pod("web", "shop", &fx.image("demo/app:1.0"), Some(&id(&fx.signed))),
            running_pod("rogue", "shop", &fx.image("demo/unsigned:1.0"), Some(&id(&fx.unsigned))),
        ]),
    );
    fx.registry.stop();
    let args: Vec<String> =
        ["scan", "-f", &file, "--bundle", &s(&bundle), "--bundle-key", &s(&pub_path), "-o", "json"]
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
    let r = vouch(&args, None).await;
    assert_eq!(r.code, 1, "{r:?}");
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(workload(&report, "web")["outcome"], "compliant", "{report:#}");
    assert_eq!(workload(&report, "rogue")["outcome"], "nonCompliant", "{report:#}");
    assert_eq!(report["totals"]["unverified"], 0, "nothing needed the stopped registry: {report:#}");
}
