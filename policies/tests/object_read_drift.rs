//! The webhook reads an object with a pod spec pruned ([`ObjectJson::seed`], as `from_json` does); `vouch check`, `bundle`
//! and `scan` read it whole ([`ObjectJson::from_value`]). Proves that nothing the engine reads at once is
//! lost by the prune: for every admission review and manifest with a pod spec kept in the repository, and
//! for hostile hand-written ones (wrong types in kept and skipped fields, repeated keys, deep nesting in a
//! skipped field), extraction (artifacts with their pointers, fetcher problems, egress, errors), object
//! labels, the object's label in messages, the places other readers look (pull secrets, annotations, the
//! status writer's uid) and every pointer a pin would patch read the same from both; and the whole object
//! read late is the object as sent without `metadata.managedFields`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use vouch_policies::engine::{labels_of, object_label};
use vouch_policies::extract::{extract_with, pod_spec_pointer, CompiledExtraction, ExtractError};
use vouch_policies::{AdmissionInput, ExtractionConfig, GroupVersionKind, ObjectJson, Operation};

/// One object to read both ways: where it came from, its kind, operation, subresource, and its text.
struct Case {
    origin: String,
    kind: GroupVersionKind,
    operation: Operation,
    sub_resource: Option<String>,
    object: String,
    old_object: Option<String>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[derive(Deserialize)]
struct Review {
    request: Request,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    kind: GroupVersionKind,
    operation: Operation,
    sub_resource: Option<String>,
    object: Option<Value>,
    old_object: Option<Value>,
}

/// Every admission review under webhooks/tests/data (the object written out as JSON text again: the
/// reviews hold no repeated keys; the hand-written cases below test the text itself).
fn reviews() -> Vec<Case> {
    let dir = repo().join("webhooks/tests/data/admission");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let review: Review = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let r = review.request;
        let Some(object) = r.object else { continue };
        out.push(Case {
            origin: path.display().to_string(),
            kind: r.kind,
            operation: r.operation,
            sub_resource: r.sub_resource,
            object: object.to_string(),
            old_object: r.old_object.map(|o| o.to_string()),
        });
    }
    out
}

/// Every manifest with an apiVersion and kind in the YAML kept under `dirs` (as JSON text).
fn manifests(dirs: &[&str]) -> Vec<Case> {
    let mut out = Vec::new();
    let mut pending: Vec<PathBuf> = dirs.iter().map(|d| repo().join(d)).collect();
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let Ok(value) = Value::deserialize(document) else { continue };
            let (Some(api_version), Some(kind)) = (value["apiVersion"].as_str(), value["kind"].as_str())
            else {
                continue;
            };
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            out.push(Case {
                origin: format!("{} ({kind})", path.display()),
                kind: GroupVersionKind { group: group.into(), version: version.into(), kind: kind.into() },
                operation: Operation::Create,
                sub_resource: None,
                object: value.to_string(),
                old_object: None,
            });
        }
    }
    out
}

const POD: &str = r#"{"apiVersion":"v1","kind":"Pod",
 "metadata":{"name":"web","namespace":"prod","uid":"u-1","labels":{"app":"web"},
  "annotations":{"vouch.dev/egress":"api.example.com:443","vouch.dev/egress-allowlist":"reg.example/allow:1"},
  "managedFields":[{"manager":"kubectl","fieldsV1":{"f:spec":{}}}]},
 "spec":{"serviceAccountName":"sa","imagePullSecrets":[{"name":"regcred"}],
  "initContainers":[{"name":"fetch","image":"ghcr.io/kitops/kit:1","args":["unpack","reg.example/model:1"]}],
  "containers":[{"name":"app","image":"reg.example/app:1.0","resources":{"limits":{"cpu":"1"}}}],
  "volumes":[{"name":"m","image":{"reference":"reg.example/m:1"}},
   {"name":"c","csi":{"driver":"model.csi.modelpack.org","volumeAttributes":{"modelRef":"reg.example/q:1"}}}]},
 "status":{"phase":"Pending"}}"#;

/// The Pod above with one piece of text replaced (each case must change it).
fn hostile() -> Vec<Case> {
    let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let deep = format!(r#""resources":{}"#, nest(5_000));
    let cases: Vec<(&str, &str, String)> = vec![
        ("unchanged", "", String::new()),
        ("containers not an array", r#""containers":["#, r#""containers":"x","c2":["#.into()),
        ("an image not a string", r#""image":"reg.example/app:1.0""#, r#""image":5"#.into()),
        ("a container not an object", r#""containers":["#, r#""containers":[1,"#.into()),
        (
            "init containers not an array",
            r#""initContainers":["#,
            r#""initContainers":{"a":1},"ic":["#.into(),
        ),
        ("a volume image not an object", r#"{"reference":"reg.example/m:1"}"#, r#""reg.example/m:1""#.into()),
        ("labels not a map", r#""labels":{"app":"web"}"#, r#""labels":["app"]"#.into()),
        (
            "metadata not an object",
            r#""metadata":{"name":"web","#,
            r#""metadata":[1],"m":{"name":"web","#.into(),
        ),
        (
            "spec not an object",
            r#""spec":{"serviceAccountName":"sa","#,
            r#""spec":7,"s":{"serviceAccountName":"sa","#.into(),
        ),
        (
            "wrong types in skipped fields",
            r#""resources":{"limits":{"cpu":"1"}}"#,
            r#""resources":7,"ports":"x""#.into(),
        ),
        ("a status that is not an object", r#""status":{"phase":"Pending"}"#, r#""status":[1,2]"#.into()),
        (
            "repeated keys in kept fields",
            r#""image":"reg.example/app:1.0""#,
            r#""image":"reg.example/first:1","image":"reg.example/app:1.0","name":"renamed""#.into(),
        ),
        (
            "a repeated containers list",
            r#""volumes":["#,
            r#""containers":[{"name":"b","image":"reg.example/b:2"}],"volumes":["#.into(),
        ),
        (
            "repeated annotations",
            r#""annotations":{"#,
            r#""annotations":{"vouch.dev/egress":"x:1"},"annotations":{"#.into(),
        ),
        ("a repeated skipped key", r#""status":{"#, r#""status":5,"status":{"#.into()),
        (
            "too many containers",
            r#""containers":["#,
            format!(r#""containers":[{}"#, r#"{"name":"n","image":"i"},"#.repeat(300)),
        ),
        (
            "an egress annotation with a bad endpoint",
            r#""api.example.com:443""#,
            r#""api.example.com:99999""#.into(),
        ),
        ("deep nesting in a skipped field", r#""resources":{"limits":{"cpu":"1"}}"#, deep),
    ];
    let pod = GroupVersionKind { group: String::new(), version: "v1".into(), kind: "Pod".into() };
    cases
        .into_iter()
        .map(|(name, from, to)| {
            let object = if from.is_empty() { POD.to_owned() } else { POD.replacen(from, &to, 1) };
            assert!(from.is_empty() || object != POD, "{name}: the fixture changed");
            Case {
                origin: format!("hand-written: {name}"),
                kind: pod.clone(),
                operation: Operation::Create,
                sub_resource: None,
                object,
                old_object: None,
            }
        })
        .collect()
}

/// The object as `vouch check` holds it: read whole, without managedFields (`None`: too deep to read).
fn whole_value(text: &str) -> Option<Value> {
    let mut v: Value = serde_json::from_str(text).ok()?;
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    Some(v)
}

fn input(case: &Case, object: ObjectJson, old: Option<ObjectJson>) -> AdmissionInput {
    let mut i = AdmissionInput::new(case.operation.clone(), case.kind.clone(), Some("prod"), "");
    i.sub_resource = case.sub_resource.clone();
    i.object = Some(object);
    i.old_object = old;
    i
}

/// Places other readers than extraction look at in what is read at once.
fn other_readers(kind: &GroupVersionKind) -> Vec<String> {
    let mut out: Vec<String> = ["name", "generateName", "namespace", "uid", "labels", "annotations"]
        .map(|f| format!("/metadata/{f}"))
        .into();
    if let Some(spec) = pod_spec_pointer(&kind.group, &kind.kind) {
        for f in ["imagePullSecrets", "serviceAccountName", "serviceAccount"] {
            out.push(format!("{spec}/{f}"));
        }
        if let Some(template) = spec.strip_suffix("/spec").filter(|t| !t.is_empty()) {
            out.push(format!("{template}/metadata/annotations"));
            out.push(format!("{template}/metadata/labels"));
        }
    }
    out
}

/// Reads `case` both ways under `config` and compares everything the engine reads at once; returns
/// whether the object has a pod spec (so was read pruned).
fn same_both_ways(case: &Case, config: &CompiledExtraction, config_name: &str) -> bool {
    let origin = format!("{} [{config_name}]", case.origin);
    let from_text = |t: &str| {
        ObjectJson::from_json(Bytes::from(t.to_owned()), &case.kind)
            .unwrap_or_else(|e| panic!("{origin}: {e}"))
    };
    let pruned = from_text(&case.object);
    let pruned_old = case.old_object.as_deref().map(from_text);
    let too_deep = whole_value(&case.object).is_none();
    let whole = match whole_value(&case.object) {
        Some(whole) => {
            assert_eq!(pruned.whole().unwrap(), &whole, "{origin}: the whole object read late");
            whole
        }
        None => {
            // Too deep to be read whole (only the hand-written case nesting in `resources`): the whole read
            // fails, and what is read at once equals the object without that field.
            let e = pruned.whole().unwrap_err();
            assert!(e.reason.contains("recursion limit"), "{origin}: {e}");
            let mut v = whole_value(POD).unwrap();
            v["spec"]["containers"][0].as_object_mut().unwrap().remove("resources");
            v
        }
    };
    let whole_old = case.old_object.as_deref().and_then(whole_value).map(ObjectJson::from_value);
    let a = input(case, pruned, pruned_old);
    let b = input(case, ObjectJson::from_value(whole), whole_old);

    let got = extract_with(&a, config);
    if too_deep && config_name == ON_PODS {
        // A configured extractor reads the whole object, which cannot be read: the object is unreadable.
        assert!(matches!(got, Err(ExtractError::Unreadable(_))), "{origin}: {got:?}");
        return true;
    }
    assert_eq!(got, extract_with(&b, config), "{origin}: extraction");
    assert_eq!(
        labels_of(a.object.as_ref()).to_map(),
        labels_of(b.object.as_ref()).to_map(),
        "{origin}: labels"
    );
    assert_eq!(object_label(&a), object_label(&b), "{origin}: object label");
    let (read, full) = (a.object.as_ref().unwrap().read(), b.object.as_ref().unwrap().read());
    for p in other_readers(&case.kind) {
        assert_eq!(read.pointer(&p), full.pointer(&p), "{origin}: {p}");
    }
    // The mutating webhook patches pins at these pointers in what is read at once.
    for artifact in got.iter().flat_map(|found| &found.artifacts) {
        let p = &artifact.location.pointer;
        assert!(read.pointer(p).is_some(), "{origin}: pin pointer {p} not read at once");
        assert_eq!(read.pointer(p), full.pointer(p), "{origin}: pin pointer {p}");
    }
    pod_spec_pointer(&case.kind.group, &case.kind.kind).is_some()
}

const ON_PODS: &str = "an extractor on Pods";

fn configs() -> Vec<(&'static str, CompiledExtraction)> {
    let kars = ExtractionConfig::read_file(&repo().join("charts/vouch/extractors/kars.yaml")).unwrap();
    // A configured extractor on a kind with a pod spec reads any field: it gets the whole object.
    let on_pods = ExtractionConfig::from_yaml_str(
        "extractors:\n  - apiVersion: v1\n    kind: Pod\n    paths: [\"$.spec.containers[*].resources.limits.image\"]\n",
    )
    .unwrap();
    [("built-in", ExtractionConfig::default()), ("kars", kars), (ON_PODS, on_pods)]
        .into_iter()
        .map(|(n, c)| (n, c.compile().unwrap()))
        .collect()
}

#[test]
fn every_object_with_a_pod_spec_reads_the_same_pruned_and_whole() {
    let mut cases = reviews();
    cases.extend(manifests(&["webhooks/tests/data", "docs/examples", "e2e/scenarios"]));
    cases.extend(hostile());
    let mut with_pod_spec = 0;
    for (name, config) in configs() {
        for case in &cases {
            if same_both_ways(case, &config, name) {
                with_pod_spec += 1;
            }
        }
    }
    // 9 reviews with an object, the example manifests and the hand-written Pods, under 3 configurations.
    assert!(with_pod_spec >= 3 * 30, "only {with_pod_spec} objects with a pod spec were compared");
}

#[test]
fn an_extractor_on_a_kind_with_a_pod_spec_sees_fields_the_prune_skips() {
    let on_pods = ExtractionConfig::from_yaml_str(
        "extractors:\n  - apiVersion: v1\n    kind: Pod\n    paths: [\"$.metadata.ownerReferences[*].name\"]\n",
    )
    .unwrap()
    .compile()
    .unwrap();
    let text = r#"{"metadata":{"name":"web","ownerReferences":[{"name":"reg.example/owner:1"}]},"spec":{"containers":[]}}"#;
    let pod = GroupVersionKind { group: String::new(), version: "v1".into(), kind: "Pod".into() };
    let object = ObjectJson::from_json(Bytes::from_static(text.as_bytes()), &pod).unwrap();
    assert!(object.read().pointer("/metadata/ownerReferences").is_none(), "pruned");
    let i = AdmissionInput::new(Operation::Create, pod, Some("prod"), "web");
    let i = AdmissionInput { object: Some(object), ..i };
    let found = extract_with(&i, &on_pods).unwrap();
    assert_eq!(found.artifacts.len(), 1, "{found:?}");
    assert_eq!(found.artifacts[0].image, "reg.example/owner:1");
}
