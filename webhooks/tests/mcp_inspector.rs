//! `vouch mcp` driven by the official MCP Inspector in CLI mode (npm `@modelcontextprotocol/inspector`,
//! installed by scripts/setup.sh): the tools are listed with their input schemas, and each is called against
//! images in the real loopback registry, signed by our code — a round trip an agent makes: a manifest is
//! denied, the denial is explained, the verdict for the signed image says who signed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use vouch_attest::cosign::sign_image_with_key;
use vouch_attest::SigningKey;
use vouch_tests::notation::{sign_and_push, NotationCa};
use vouch_webhooks::cli::demo::push_demo_image;
use vouch_webhooks::cli::demo_webhook::key_policy;
use vouch_webhooks::dev_registry::DevRegistry;

fn inspector() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    let bin = cache.join("vouch-tools/mcp-inspector/node_modules/.bin/mcp-inspector");
    if bin.exists() {
        return Some(bin);
    }
    assert!(std::env::var_os("CI").is_none(), "the MCP Inspector is not installed (scripts/setup.sh)");
    eprintln!("skipped: the MCP Inspector is not installed ({})", bin.display());
    None
}

struct Mcp {
    inspector: PathBuf,
    server: Vec<String>,
    home: tempfile::TempDir,
}

impl Mcp {
    /// One Inspector CLI call (`--method ...`), its JSON answer.
    async fn call(&self, method_args: &[&str]) -> Value {
        let mut cmd = tokio::process::Command::new(&self.inspector);
        cmd.arg("--cli").args(&self.server).args(method_args);
        // vouch's own caches go to a private directory.
        cmd.env("XDG_CACHE_HOME", self.home.path()).kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .expect("the Inspector finishes")
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "inspector {method_args:?}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }

    async fn tool(&self, name: &str, args: &[(&str, &str)]) -> Value {
        let mut argv = vec!["--method".to_owned(), "tools/call".into(), "--tool-name".into(), name.into()];
        for (k, v) in args {
            argv.extend(["--tool-arg".to_owned(), format!("{k}={v}")]);
        }
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.call(&refs).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_inspector_lists_and_calls_every_tool() {
    let Some(inspector) = inspector() else { return };
    let registry = DevRegistry::start().await.unwrap();
    let host = registry.host();
    let client = registry.client().unwrap();
    let signed = push_demo_image(&client, &host, "demo/app", "1.0", b"signed app\n").await.unwrap();
    let unsigned =
        push_demo_image(&client, &host, "demo/unsigned", "1.0", b"nobody signed me\n").await.unwrap();
    let key = SigningKey::generate();
    sign_image_with_key(&client, &signed, &key, BTreeMap::new()).await.unwrap();
    let notation_ca = NotationCa::new("mcp notation root").unwrap();
    let notary = notation_ca.issue_current("CN=release,O=vouch-test,ST=WA,C=US").unwrap();
    sign_and_push(&client, &signed, &notary, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("prod.yaml"), key_policy("prod-signed", "cosign-prod", &host, &key))
        .unwrap();
    let mcp = Mcp {
        inspector,
        server: vec![
            env!("CARGO_BIN_EXE_vouch").into(),
            "mcp".into(),
            "--policy".into(),
            policies.display().to_string(),
            "--insecure-registry".into(),
            host.clone(),
        ],
        home: tempfile::tempdir().unwrap(),
    };

    // The tools, each with an input schema.
    let listed = mcp.call(&["--method", "tools/list"]).await;
    let mut names: Vec<&str> =
        listed["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["check_manifests", "explain_denial", "list_policies", "scan_summary", "verify_image"]);
    for t in listed["tools"].as_array().unwrap() {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
    }
    let verify_schema =
        &listed["tools"].as_array().unwrap().iter().find(|t| t["name"] == "verify_image").unwrap();
    assert_eq!(verify_schema["inputSchema"]["required"], json!(["reference"]));

    // list_policies: the policy as compiled.
    let got = mcp.tool("list_policies", &[]).await;
    assert_eq!(got["isError"], false, "{got}");
    assert_eq!(got["structuredContent"]["policiesTotal"], 1, "{got}");
    let policy = &got["structuredContent"]["policies"][0];
    assert_eq!(policy["name"], "prod-signed");
    assert_eq!(policy["authorities"][0], "key cosign-prod");
    assert_eq!(policy["requirements"], json!(["signature"]));

    // check_manifests: a Pod running the unsigned image is denied.
    let pod = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: shop}}\nspec:\n  containers:\n    - name: app\n      image: {host}/demo/unsigned:1.0\n"
    );
    let got = mcp.tool("check_manifests", &[("yaml", &pod)]).await;
    assert_eq!(got["isError"], false, "{got}");
    let report = &got["structuredContent"];
    assert_eq!(report["summary"]["denied"], 1, "{report}");
    let object = &report["objects"][0];
    let denial = object["decision"]["message"].as_str().expect("the denial message").to_owned();
    assert!(denial.contains("cosign-prod"), "{denial}");

    // explain_denial: the denial as kubectl shows it, back into its parts.
    let kubectl =
        format!("Error from server: admission webhook \"validate.vouch.dev\" denied the request: {denial}");
    let got = mcp.tool("explain_denial", &[("denial", &kubectl)]).await;
    assert_eq!(got["isError"], false, "{got}");
    let explained = &got["structuredContent"];
    assert_eq!(explained["object"], "Pod shop/web", "{explained}");
    let finding = &explained["findings"][0];
    assert_eq!(finding["artifact"], "container app");
    assert_eq!(finding["policy"], "prod-signed");
    assert_eq!(finding["requirement"], "signature");
    assert_eq!(finding["cause"], "SignatureMissing", "{finding}");
    assert!(finding["reference"].as_str().unwrap().starts_with(&format!("{host}/demo/unsigned:1.0@sha256:")));
    assert!(finding["remediation"].as_str().unwrap().contains("sign"), "{finding}");

    // verify_image with the key: the signed image verifies, naming the key; the unsigned one does not.
    let pem = key.public_key().to_pem();
    let got = mcp
        .tool(
            "verify_image",
            &[("reference", &signed.to_string()), ("key_pem", &pem), ("insecure_ignore_tlog", "true")],
        )
        .await;
    assert_eq!(got["isError"], false, "{got}");
    let verdict = &got["structuredContent"];
    assert!(verdict["outcome"]["Ok"]["signatures"][0]["signer"].to_string().contains("key"), "{verdict}");
    let got = mcp
        .tool(
            "verify_image",
            &[("reference", &unsigned.to_string()), ("key_pem", &pem), ("insecure_ignore_tlog", "true")],
        )
        .await;
    assert_eq!(got["isError"], false, "a verified 'no' is an answer, not an error: {got}");
    assert!(got["structuredContent"]["outcome"].get("Err").is_some(), "{got}");
    // verify_image of the Notation signature: trust store, identity and CRL as notation verify takes them;
    // a CRL listing the signer revokes it.
    let crl_pem = |revoked: &[&vouch_tests::notation::NotationSigner]| {
        vouch_attest::keys::pem_encode("X509 CRL", &notation_ca.crl(revoked).unwrap())
    };
    let (store, reference) = (notation_ca.trust_store_pem(), signed.to_string());
    let mut verdicts = Vec::new();
    for crls in [crl_pem(&[]), crl_pem(&[&notary])] {
        let args = [
            ("reference", reference.as_str()),
            ("notation_trust_store_pem", store.as_str()),
            ("notation_identities", r#"["x509.subject: C=US, ST=WA, O=vouch-test, CN=release"]"#),
            ("notation_crls_pem", crls.as_str()),
        ];
        let got = mcp.tool("verify_image", &args).await;
        assert_eq!(got["isError"], false, "{got}");
        verdicts.push(got["structuredContent"].clone());
    }
    let verdict = &verdicts[0];
    let signature = &verdict["outcome"]["Ok"]["signatures"][0];
    assert_eq!(signature["signer"]["kind"], "x509", "{verdict}");
    let revocation =
        signature["checks"].as_array().unwrap().iter().find(|c| c["check"] == "revocation").unwrap();
    assert_eq!(revocation["result"], "passed", "{verdict}");
    assert!(signature["validUntil"].is_string(), "the CRL's nextUpdate bounds the verdict: {verdict}");
    let verdict = &verdicts[1];
    let why = verdict["outcome"]["Err"].to_string();
    assert!(why.contains("is revoked"), "{verdict}");
    // verify_image by policy: judged as a Pod running it would be.
    let got = mcp
        .tool("verify_image", &[("reference", &format!("{host}/demo/app:1.0")), ("policy", "prod-signed")])
        .await;
    assert_eq!(got["structuredContent"]["summary"]["denied"], 0, "{got}");

    // scan_summary: a dump of running Pods (what runs is verified by its digest).
    let dump = dir.path().join("pods.json");
    let running = |name: &str, image: &str, digest: &str| {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop", "uid": name},
               "spec": {"containers": [{"name": "app", "image": image}]},
               "status": {"containerStatuses": [{"name": "app", "image": image, "imageID": format!("{image}@{digest}")}]}})
    };
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        running("good", &format!("{host}/demo/app:1.0"), &signed.digest().unwrap().to_string()),
        running("bad", &format!("{host}/demo/unsigned:1.0"), &unsigned.digest().unwrap().to_string()),
    ]});
    std::fs::write(&dump, list.to_string()).unwrap();
    let got = mcp.tool("scan_summary", &[("paths", &json!([dump.display().to_string()]).to_string())]).await;
    assert_eq!(got["isError"], false, "{got}");
    let summary = &got["structuredContent"];
    assert_eq!(summary["notCompliantTotal"], 1, "{summary}");
    assert_eq!(summary["notCompliant"][0]["name"], "bad");

    // Bad input is a tool error that says what is wrong.
    let got = mcp.tool("check_manifests", &[]).await;
    assert_eq!(got["isError"], true, "{got}");
    assert!(got["content"][0]["text"].as_str().unwrap().contains("give manifest text"), "{got}");
    let got = mcp.tool("explain_denial", &[("denial", " ")]).await;
    assert_eq!(got["isError"], true, "{got}");
}
