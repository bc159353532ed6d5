//! `vouch check` as users run it: the built binary against a real registry on loopback (Debian's
//! docker-registry) with images signed by our own code. Proves the exit codes (0 clean, 1 violations or
//! warnings with --fail-on-warn, 2 errors), every input form (files, directories, stdin, multi-document
//! YAML as helm prints it, JSON, List kinds) and every output format parsed back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod check_support;

use check_support::{deployment, pod_json, write, Fixture};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_follow_violations_and_warnings() {
    let fx = Fixture::start().await;
    let dir = fx.subdir("m");
    let signed = write(&dir, "signed.yaml", &deployment("web", Some("shop"), &fx.image("demo/app:1.0")));
    let unsigned = write(&dir, "unsigned.yaml", &deployment("rogue", None, &fx.image("demo/unsigned:1.0")));
    let soft = write(&dir, "soft.yaml", &deployment("tool", None, &fx.image("soft/tool:1.0")));

    // Signed: 0, the passed requirement shown, the summary line.
    let r = fx.check(&["-f", &signed], None).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&format!("✓ Deployment shop/web ({signed}#1): allowed")), "{}", r.stdout);
    assert!(r.stdout.contains("pass [enforce] container app: image "), "{}", r.stdout);
    assert!(r.stdout.ends_with("1 object, 1 artifact, 0 denied, 0 warnings\n"), "{}", r.stdout);

    // Unsigned under an enforce policy: 1, with the webhook's exact denial message.
    let r = fx.check(&["-f", &unsigned], None).await;
    assert_eq!(r.code, 1, "{r:?}");
    let digest = fx.unsigned.digest().unwrap().to_string();
    let expected = format!(
        "✗ Deployment default/rogue ({unsigned}#1): denied\n    FAIL [enforce] container app: image {}@{digest} : policy prod-signed: signature: no signature verifies against key cosign-prod",
        fx.image("demo/unsigned:1.0")
    );
    assert!(r.stdout.contains(&expected), "{}\nexpected: {expected}", r.stdout);
    assert!(r.stdout.ends_with("1 object, 1 artifact, 1 denied, 0 warnings\n"), "{}", r.stdout);

    // Warn mode: printed, 0; 1 with --fail-on-warn.
    let r = fx.check(&["-f", &soft], None).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("! Deployment default/tool"), "{}", r.stdout);
    assert!(r.stdout.contains("    warning: "), "{}", r.stdout);
    let r = fx.check(&["-f", &soft, "--fail-on-warn"], None).await;
    assert_eq!(r.code, 1, "{r:?}");

    // --dry-run: everything audited, nothing fails.
    let r = fx.check(&["-f", &unsigned, "--dry-run"], None).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("    audit: container app"), "{}", r.stdout);

    // Several files at once: the worst outcome decides.
    let r = fx.check(&["-f", &signed, "-f", &soft, "-f", &unsigned], None).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.ends_with("3 objects, 3 artifacts, 1 denied, 1 warning\n"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_directories_lists_and_skipped_kinds() {
    let fx = Fixture::start().await;
    // helm template output on stdin: comments, empty documents, a ConfigMap (skipped).
    let helm = format!(
        "---\n# Source: app/templates/empty.yaml\n---\n# Source: app/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata: {{a: b}}\n---\n# Source: app/templates/deploy.yaml\n{}---\n",
        deployment("web", None, &fx.image("demo/app:1.0"))
    );
    let r = fx.check(&["-f", "-", "-v"], Some(&helm)).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("- ConfigMap default/cfg (-#"), "{}", r.stdout);
    assert!(r.stdout.contains("✓ Deployment default/web (-#"), "{}", r.stdout);
    assert!(r.stdout.ends_with("2 objects, 1 artifact, 0 denied, 0 warnings, 1 skipped\n"), "{}", r.stdout);

    // A directory, recursively: YAML, a JSON List of Pods, a CronJob, a hidden directory ignored.
    let dir = fx.subdir("repo");
    write(&dir, "apps/web.yaml", &deployment("web", Some("shop"), &fx.image("demo/app:1.0")));
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
        pod_json("a", &fx.image("demo/app:1.0")),
        pod_json("b", &fx.image("demo/unsigned:1.0")),
    ]});
    write(&dir, "apps/pods.json", &list.to_string());
    let cron = format!(
        "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: nightly}}\nspec:\n  schedule: '@daily'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers:\n            - {{name: job, image: {}}}\n",
        fx.image("demo/app:1.0")
    );
    write(&dir, "jobs/cron.yml", &cron);
    write(&dir, ".git/config.yaml", "not: [a manifest");
    let hex = fx.signed.digest().unwrap().to_string().replace("sha256:", "");
    let signature_tag = format!("/manifests/sha256-{hex}.sig");
    let fetched_before = fx.registry.count_requests("GET", &signature_tag);
    let r = fx.check(&["-f", &dir.to_string_lossy(), "-o", "json"], None).await;
    assert_eq!(r.code, 1, "{r:?}");
    let report: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["schema"], "vouch.dev/check/v1");
    assert_eq!(report["exitCode"], 1);
    let objects = report["objects"].as_array().unwrap();
    let seen: Vec<(String, String, String)> = objects
        .iter()
        .map(|o| {
            let name = format!("{} {}", o["kind"].as_str().unwrap(), o["name"].as_str().unwrap());
            (name, o["pointer"].as_str().unwrap().to_owned(), o["outcome"].as_str().unwrap().to_owned())
        })
        .collect();
    let expect = |n: &str, p: &str, o: &str| (n.to_owned(), p.to_owned(), o.to_owned());
    assert_eq!(
        seen,
        [
            expect("Pod a", "/items/0", "allowed"),
            expect("Pod b", "/items/1", "denied"),
            expect("Deployment web", "", "allowed"),
            expect("CronJob nightly", "", "allowed"),
        ]
    );
    assert!(objects[0]["file"].as_str().unwrap().ends_with("apps/pods.json"));
    assert_eq!(report["summary"]["objects"], 4);
    assert_eq!(report["summary"]["denied"], 1);
    assert_eq!(report["summary"]["artifacts"], 4);
    assert_eq!(report["summary"]["distinctArtifacts"], 2);
    let finding = &objects[1]["decision"]["findings"][0];
    assert_eq!(finding["policy"], "prod-signed");
    assert_eq!(finding["result"], "fail");
    assert_eq!(finding["artifact"]["pointer"], "/spec/containers/0/image");
    // The signed image, named by three objects, was verified once (cache + single-flight): its
    // signature tag was fetched once by this run.
    let fetched = fx.registry.count_requests("GET", &signature_tag) - fetched_before;
    assert_eq!(fetched, 1, "{}", fx.registry.access_log());
}

/// A minimal XML well-formedness check: one root, balanced and properly nested elements, quoted
/// attributes, known entities only, nothing but whitespace outside the root.
fn assert_well_formed_xml(xml: &str) {
    let body = xml.strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n").expect("XML declaration");
    let mut stack: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut rest = body;
    let check_text = |t: &str| {
        let mut s = t;
        while let Some(i) = s.find('&') {
            let after = &s[i + 1..];
            let end = after.find(';').unwrap_or_else(|| panic!("unterminated entity in {t:?}"));
            let entity = &after[..end];
            assert!(
                ["amp", "lt", "gt", "quot", "apos"].contains(&entity)
                    || entity.strip_prefix('#').is_some_and(|n| n.parse::<u32>().is_ok()),
                "unknown entity &{entity}; in {t:?}"
            );
            s = &after[end..];
        }
        assert!(!t.contains('<'), "stray < in {t:?}");
    };
    while let Some(start) = rest.find('<') {
        let text = &rest[..start];
        if stack.is_empty() {
            assert!(text.trim().is_empty(), "text outside the root: {text:?}");
        }
        check_text(text);
        let end = rest[start..].find('>').expect("unterminated tag") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
            continue;
        }
        let self_closing = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name = tag.split_whitespace().next().expect("tag name");
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "bad name {name:?}");
        // Attributes: name="value" pairs, values without < or raw quotes.
        let mut attrs = tag[name.len()..].trim();
        while !attrs.is_empty() {
            let eq = attrs.find("=\"").unwrap_or_else(|| panic!("bad attributes {attrs:?}"));
            let value_end = attrs[eq + 2..].find('"').expect("unterminated attribute") + eq + 2;
            check_text(&attrs[eq + 2..value_end]);
            attrs = attrs[value_end + 1..].trim_start();
        }
        if stack.is_empty() {
            roots += 1;
        }
        if !self_closing {
            stack.push(name.to_owned());
        }
    }
    assert!(rest.trim().is_empty() && stack.is_empty(), "unclosed elements {stack:?}");
    assert_eq!(roots, 1, "exactly one root element");
}

#[test]
fn the_xml_check_can_fail() {
    for bad in ["<a><b></a></b>", "<a x=1/>", "<a>&nbsp;</a>", "<a/><b/>", "<a>x<y</a>"] {
        let doc = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{bad}");
        assert!(std::panic::catch_unwind(|| assert_well_formed_xml(&doc)).is_err(), "{bad} passed");
    }
    assert_well_formed_xml("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a x=\"&amp;\"><b/>t&#10;</a>\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sarif_and_junit_outputs() {
    let fx = Fixture::start().await;
    let dir = fx.subdir("m");
    let text = format!(
        "{}---\n{}---\n{}",
        deployment("web", None, &fx.image("demo/app:1.0")),
        deployment("rogue", None, &fx.image("demo/unsigned:1.0")),
        deployment("tool", None, &fx.image("soft/tool:1.0"))
    );
    let file = write(&dir, "all & <more>.yaml", &text);

    let r = fx.check(&["-f", &file, "-o", "sarif"], None).await;
    assert_eq!(r.code, 1, "{r:?}");
    let sarif: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(sarif["runs"][0]["tool"]["driver"]["name"], "vouch");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2, "{results:#?}");
    let rules = sarif["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
    for r in results {
        let index = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], r["ruleId"]);
        assert!(r["message"]["text"].as_str().is_some_and(|t| !t.is_empty()));
        let uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str().unwrap();
        assert!(uri.ends_with("all%20&%20<more>.yaml"), "{uri}");
    }
    assert_eq!(results[0]["ruleId"], "prod-signed/signature");
    // The rogue Deployment is the second document: its first line follows the first document and `---`.
    let first_document_lines = deployment("web", None, "x").lines().count();
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        first_document_lines + 2,
        "{results:#?}"
    );
    assert_eq!(results[0]["level"], "error");
    let logical = &results[0]["locations"][0]["logicalLocations"][0];
    assert_eq!(logical["name"], "Deployment default/rogue");
    assert!(
        logical["fullyQualifiedName"]
            .as_str()
            .unwrap()
            .ends_with(".yaml#2/spec/template/spec/containers/0/image"),
        "{logical}"
    );
    assert_eq!(results[1]["ruleId"], "soft-signed/signature");
    assert_eq!(results[1]["level"], "warning");

    for fail_on_warn in [false, true] {
        let mut args = vec!["-f", file.as_str(), "-o", "junit"];
        if fail_on_warn {
            args.push("--fail-on-warn");
        }
        let r = fx.check(&args, None).await;
        assert_eq!(r.code, 1, "{r:?}");
        assert_well_formed_xml(&r.stdout);
        assert_eq!(r.stdout.matches("<testcase ").count(), 3, "{}", r.stdout);
        let failures = if fail_on_warn { 2 } else { 1 };
        assert_eq!(r.stdout.matches("<failure ").count(), failures, "{}", r.stdout);
        assert!(r.stdout.contains(&format!("tests=\"3\" failures=\"{failures}\"")), "{}", r.stdout);
        assert!(r.stdout.contains("all &amp; &lt;more&gt;.yaml"), "{}", r.stdout);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_exit_2_and_name_what_is_wrong() {
    let fx = Fixture::start().await;
    let dir = fx.subdir("m");
    let good = deployment("web", None, &fx.image("demo/app:1.0"));
    let bad = write(&dir, "bad.yaml", &format!("{good}---\napiVersion: v1\nkind: Pod\nmetadata: [oops\n"));
    let r = fx.check(&["-f", &bad], None).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains(&format!("error: manifests: {bad}: document 2: not valid YAML: ")),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "no report for unreadable input: {}", r.stdout);

    let nameless = write(&dir, "nameless.json", r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {}}"#);
    let r = fx.check(&["-f", &nameless], None).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains(&format!("{nameless}: document 1: metadata.name is missing")), "{}", r.stderr);

    let r = fx.check(&["-f", &dir.join("missing.yaml").to_string_lossy()], None).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("cannot read "), "{}", r.stderr);

    // A policy that does not compile: exit 2 with its problems, nothing evaluated.
    let ok = write(&dir, "ok.yaml", &good);
    let broken = write(&dir, "broken-policy.yaml", "apiVersion: vouch.dev/v1alpha1\nkind: ClusterSupplyChainPolicy\nmetadata: {name: nokey}\nspec:\n  images: ['**']\n  authorities: []\n");
    let r = check_support::vouch(&["check".into(), "-f".into(), ok.clone(), "--policy".into(), broken], None)
        .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("invalid policies:") && r.stderr.contains("nokey"), "{}", r.stderr);

    // No policies at all, a bad flag value.
    let r = check_support::vouch(&["check".into(), "-f".into(), ok.clone()], None).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--policy: no policies"), "{}", r.stderr);
    let r = fx.check(&["-f", &ok, "--namespace-labels", "novalue"], None).await;
    assert_eq!(r.code, 2, "{r:?}");
    let r = fx.check(&["-f", &ok, "-o", "yaml"], None).await;
    assert_eq!(r.code, 2, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_labels_reach_namespace_selectors() {
    let fx = Fixture::start().await;
    let dir = fx.subdir("m");
    // Only namespaces labelled env=prod are covered by this enforce policy.
    let policy = check_support::mode_policy("prod-only", &fx.image("soft/**"), "Enforce", &fx.key).replace(
        "  mode: Enforce\n",
        "  mode: Enforce\n  match:\n    namespaceSelector:\n      matchLabels: {env: prod}\n",
    );
    let policies = write(&dir, "policies/prod-only.yaml", &policy);
    let tool = write(&dir, "tool.yaml", &deployment("tool", Some("shop"), &fx.image("soft/tool:1.0")));
    let run = |extra: Vec<String>| {
        let mut args: Vec<String> =
            ["check", "-f", &tool, "--policy", &policies, "--insecure-registry", &fx.host]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        args.extend(extra);
        async move { check_support::vouch(&args, None).await }
    };
    // Labels not given: the selector cannot be evaluated, so the policy is applied and its failure policy
    // (Fail) denies; never "no policy applies".
    let unknown = run(vec![]).await;
    assert_eq!(unknown.code, 1, "{unknown:?}");
    assert!(unknown.stdout.contains("the labels of namespace shop are unknown"), "{}", unknown.stdout);
    assert_eq!(run(vec!["--namespace-labels".into(), "team=x".into()]).await.code, 0);
    assert_eq!(run(vec!["--namespace-labels".into(), String::new()]).await.code, 0, "known to be empty");
    assert_eq!(run(vec!["--namespace-labels".into(), "env=prod,team=x".into()]).await.code, 1);
    // A Namespace in the manifests gives its own labels.
    let ns = write(
        &dir,
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {env: prod}}\n",
    );
    assert_eq!(run(vec!["-f".into(), ns]).await.code, 1);
}

/// The example PEM in docs/examples/gitops/policies (a public key with no private half anywhere).
const EXAMPLE_PEM_FIRST_LINE: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAExcrfShvmyylNem5XMMYlHTyaVI5g";

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The documented CI step (docs/examples/gitops/ci/check.sh: `kubectl kustomize … | vouch check -f -
/// --policy …`) runs as written on the documented example, with the example's registry and key swapped
/// for the loopback registry and a key of the test's: clean → 0; an unsigned tag → 1; a failed render → not 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_ci_pipeline_runs() {
    let kubectl = std::process::Command::new("kubectl").args(["version", "--client"]).output();
    if kubectl.is_err() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "kubectl is needed to render the example under CI"
        );
        eprintln!("skipped: kubectl not installed");
        return;
    }
    let fx = Fixture::start().await;
    let client = fx.registry.client().unwrap();
    let web =
        vouch_webhooks::cli::demo::push_demo_image(&client, &fx.host, "shop/web", "1.4.2", b"web 1.4.2\n")
            .await
            .unwrap();
    vouch_attest::cosign::sign_image_with_key(&client, &web, &fx.key, Default::default()).await.unwrap();
    vouch_webhooks::cli::demo::push_demo_image(&client, &fx.host, "shop/web", "1.4.3", b"web 1.4.3\n")
        .await
        .unwrap();

    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/gitops");
    let root = fx.subdir("repo");
    let gitops = root.join("docs/examples/gitops");
    copy_dir(&example, &gitops);
    let policy_path = gitops.join("policies/shop-signed.yaml");
    let policy = std::fs::read_to_string(&policy_path).unwrap();
    assert!(policy.contains(EXAMPLE_PEM_FIRST_LINE), "the example policy's key changed; update this test");
    let start = policy.find("          -----BEGIN PUBLIC KEY-----").unwrap();
    let end = policy.find("-----END PUBLIC KEY-----").unwrap() + "-----END PUBLIC KEY-----\n".len();
    let pem: String = fx.key.public_key().to_pem().lines().map(|l| format!("          {l}\n")).collect();
    let policy =
        format!("{}{pem}{}", &policy[..start], &policy[end..]).replace("registry.example.com", &fx.host);
    std::fs::write(&policy_path, policy).unwrap();
    let overlay = gitops.join("app/overlays/prod/kustomization.yaml");
    let kustomization = std::fs::read_to_string(&overlay).unwrap().replace("registry.example.com", &fx.host);
    std::fs::write(&overlay, &kustomization).unwrap();

    let script = gitops.join("ci/check.sh");
    let run = |extra_env: Vec<(&'static str, String)>| {
        let mut command = tokio::process::Command::new("bash");
        command
            .arg(&script)
            .current_dir(&root)
            .env("VOUCH", env!("CARGO_BIN_EXE_vouch"))
            .env("VOUCH_CHECK_ARGS", format!("--insecure-registry {}", fx.host));
        for (k, v) in extra_env {
            command.env(k, v);
        }
        async move { command.output().await.unwrap() }
    };
    let out = run(vec![]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("✓ Deployment shop/web (-#"), "{stdout}");
    assert!(stdout.contains("✓ CronJob shop/report (-#"), "{stdout}");
    assert!(stdout.ends_with("4 objects, 2 artifacts, 0 denied, 0 warnings, 2 skipped\n"), "{stdout}");

    std::fs::write(&overlay, kustomization.replace("\"1.4.2\"", "\"1.4.3\"")).unwrap();
    let out = run(vec![]).await;
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));

    // A render that fails must fail the step, not pass an empty input as clean.
    let out = run(vec![("RENDER", "false".to_owned())]).await;
    assert_ne!(out.status.code(), Some(0));
    let out = run(vec![("RENDER", "true".to_owned())]).await;
    assert_eq!(
        out.status.code(),
        Some(2),
        "empty input is an error: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `vouch check --bundle`: the decisions made from an offline bundle (registry stopped) are the ones made
/// online; an image the bundle does not cover is unverifiable and its policy's failurePolicy (Fail) denies;
/// a bundle that does not verify with --bundle-key is refused (exit 2) and nothing is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_from_an_offline_bundle_decides_as_online() {
    let mut fx = Fixture::start().await;
    let dir = fx.subdir("m");
    write(&dir, "signed.yaml", &deployment("web", Some("shop"), &fx.image("demo/app:1.0")));
    write(&dir, "unsigned.yaml", &deployment("rogue", None, &fx.image("demo/unsigned:1.0")));
    write(&dir, "soft.yaml", &deployment("tool", None, &fx.image("soft/tool:1.0")));
    let manifests = dir.to_string_lossy().into_owned();
    let bundle_key = vouch_attest::SigningKey::generate();
    let key_path = write(fx.dir.path(), "bundle.key", &bundle_key.to_pkcs8_pem());
    let pub_path = write(fx.dir.path(), "bundle.pub", &bundle_key.public_key().to_pem());
    let bundle = fx.dir.path().join("site.tar").to_string_lossy().into_owned();
    let policies = fx.policies.to_string_lossy().into_owned();
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let created = check_support::vouch(
        &args(&[
            "bundle",
            "create",
            "-f",
            &manifests,
            "--policy",
            &policies,
            "--key",
            &key_path,
            "--insecure-registry",
            &fx.host,
            "-o",
            &bundle,
        ]),
        None,
    )
    .await;
    assert_eq!(created.code, 0, "{created:?}");

    let online = fx.check(&["-f", &manifests, "-o", "json"], None).await;
    assert_eq!(online.code, 1, "{online:?}");
    let online: Value = serde_json::from_str(&online.stdout).unwrap();

    fx.registry.stop();
    let offline = check_support::vouch(
        &args(&["check", "-f", &manifests, "--bundle", &bundle, "--bundle-key", &pub_path, "-o", "json"]),
        None,
    )
    .await;
    assert_eq!(offline.code, 1, "{offline:?}");
    let offline: Value = serde_json::from_str(&offline.stdout).unwrap();
    assert_eq!(offline["objects"].as_array().unwrap().len(), 3);
    for (a, b) in online["objects"].as_array().unwrap().iter().zip(offline["objects"].as_array().unwrap()) {
        assert_eq!(a["outcome"], b["outcome"], "{a} vs {b}");
        assert_eq!(a["decision"]["message"], b["decision"]["message"]);
        assert_eq!(a["decision"]["warnings"], b["decision"]["warnings"]);
    }

    // Not covered by the bundle: unverifiable, denied by failurePolicy Fail.
    let other = write(&dir, "extra/other.yaml", &deployment("new", None, &fx.image("demo/new:2.0")));
    let r = check_support::vouch(
        &args(&["check", "-f", &other, "--bundle", &bundle, "--bundle-key", &pub_path]),
        None,
    )
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("not in the offline bundle"), "{}", r.stdout);

    // The wrong key: refused before anything is checked.
    let wrong =
        write(fx.dir.path(), "wrong.pub", &vouch_attest::SigningKey::generate().public_key().to_pem());
    let r = check_support::vouch(
        &args(&["check", "-f", &manifests, "--bundle", &bundle, "--bundle-key", &wrong]),
        None,
    )
    .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains(&format!("error: bundle {bundle}: ")), "{}", r.stderr);
    assert!(r.stdout.is_empty());
    // Without a key the bundle is refused unless unsigned bundles are explicitly accepted.
    let r = check_support::vouch(&args(&["check", "-f", &manifests, "--bundle", &bundle]), None).await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--bundle-key: required with --bundle"), "{}", r.stderr);
    // Accepting unsigned bundles does not skip the check of a signed one.
    let r = check_support::vouch(
        &args(&["check", "-f", &manifests, "--bundle", &bundle, "--bundle-allow-unsigned"]),
        None,
    )
    .await;
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("the bundle is signed: give its public key (--bundle-key)"), "{}", r.stderr);
    // Registry flags make no sense with a bundle.
    let r = check_support::vouch(
        &args(&["check", "-f", &manifests, "--bundle", &bundle, "--insecure-registry", &fx.host]),
        None,
    )
    .await;
    assert_eq!(r.code, 2, "{r:?}");
}

#[derive(clap::Parser)]
struct CheckCli {
    #[command(flatten)]
    args: vouch_webhooks::cli::check::CheckArgs,
}

/// The Argo CD and Flux examples as written: the vouch container's arguments are a valid `vouch check`
/// command line, and the policy the Argo CD ConfigMap carries compiles and is the example policy.
#[test]
fn documented_hook_and_gate_jobs_are_valid_check_invocations() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples/gitops");
    let docs = |path: &str| -> Vec<serde_yaml::Value> {
        let text = std::fs::read_to_string(example.join(path)).unwrap();
        serde_yaml::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect()
    };
    let vouch_args = |job: &serde_yaml::Value| -> Vec<String> {
        let containers = job["spec"]["template"]["spec"]["containers"].as_sequence().unwrap();
        let vouch = containers
            .iter()
            .find(|c| c["image"].as_str().unwrap().starts_with("ghcr.io/vouch-dev/vouch"))
            .unwrap();
        vouch["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect()
    };
    use clap::Parser as _;
    let argocd = docs("argocd/presync-check.yaml");
    let job = argocd.iter().find(|d| d["kind"] == "Job").unwrap();
    assert_eq!(job["metadata"]["annotations"]["argocd.argoproj.io/hook"], "PreSync");
    let args = vouch_args(job);
    assert_eq!(args[0], "check");
    let cli = CheckCli::try_parse_from(&args).unwrap();
    assert_eq!(cli.args.files, ["/work/rendered.yaml"]);
    let flux_job = &docs("flux/gate/job.yaml")[0];
    let cli = CheckCli::try_parse_from(vouch_args(flux_job)).unwrap();
    assert_eq!(cli.args.policies, [std::path::PathBuf::from("/policies")]);

    let config_map = argocd.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let carried =
        vouch_policies::PolicySet::from_yaml_str(config_map["data"]["shop-signed.yaml"].as_str().unwrap());
    assert!(carried.problems().is_empty(), "{:?}", carried.problems());
    let example_policy = std::fs::read_to_string(example.join("policies/shop-signed.yaml")).unwrap();
    let example_policy = vouch_policies::PolicySet::from_yaml_str(&example_policy);
    assert!(example_policy.problems().is_empty(), "{:?}", example_policy.problems());
    let strip = |yaml: &str| -> serde_yaml::Value { serde_yaml::from_str(yaml).unwrap() };
    assert_eq!(
        strip(config_map["data"]["shop-signed.yaml"].as_str().unwrap()),
        strip(&std::fs::read_to_string(example.join("policies/shop-signed.yaml")).unwrap()),
        "the Argo CD ConfigMap carries the example policy"
    );
}

/// `vouch check` carries the signer rules: `requireDigest` denies a tag (naming the container and the
/// reference) and admits the digest; `minAuthorities: 2` with one signer denies, naming who signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_digest_and_thresholds_reach_check() {
    let fx = Fixture::start().await;
    let second = vouch_attest::SigningKey::generate();
    let pem = |k: &vouch_attest::SigningKey| -> String {
        k.public_key().to_pem().lines().map(|l| format!("          {l}\n")).collect()
    };
    let policy = format!(
        "apiVersion: vouch.dev/v1alpha1
kind: ClusterSupplyChainPolicy
metadata:
  name: two-signers
spec:
  images: [\"{host}/demo/**\"]
  requireDigest: true
  authorities:
    - name: release
      key:
        requireTlog: false
        pem: |
{release}    - name: qa
      key:
        requireTlog: false
        pem: |
{qa}  requirements:
    signature: {{minAuthorities: 2}}
",
        host = fx.host,
        release = pem(&fx.key),
        qa = pem(&second),
    );
    let policies = fx.subdir("rules");
    write(&policies, "two-signers.yaml", &policy);
    let manifests = fx.subdir("rules-manifests");
    let tag = fx.image("demo/app:1.0");
    let by_tag = write(&manifests, "tag.yaml", &deployment("web", None, &tag));
    let run = |file: String| {
        let policies = policies.to_string_lossy().into_owned();
        let host = fx.host.clone();
        async move {
            let args: Vec<String> =
                ["check", "--policy", &policies, "--insecure-registry", &host, "-f", &file]
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect();
            check_support::vouch(&args, None).await
        }
    };
    let r = run(by_tag).await;
    assert_eq!(r.code, 1, "{r:?}");
    let digest_line = format!(
        "    FAIL [enforce] container app: image {tag} : policy two-signers: digest: the reference names a tag, not a digest; policy two-signers requires references by digest (name@sha256:...)"
    );
    assert!(r.stdout.contains(&digest_line), "{}\nexpected: {digest_line}", r.stdout);
    // Signed by release only: the threshold names who signed and who did not.
    assert!(
        r.stdout.contains(": policy two-signers: signature: 2 of 2 authorities must each have signed, 1 did: verified: key release; not verified: no signature verifies against key qa ("),
        "{}",
        r.stdout
    );

    // Pinned, and signed by qa too: allowed.
    vouch_attest::cosign::sign_image_with_key(
        &fx.registry.client().unwrap(),
        &fx.signed,
        &second,
        Default::default(),
    )
    .await
    .unwrap();
    let pinned = format!("{tag}@{}", fx.signed.digest().unwrap());
    let by_digest = write(&manifests, "digest.yaml", &deployment("web", None, &pinned));
    let r = run(by_digest).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("pass [enforce] container app: image "), "{}", r.stdout);
}
