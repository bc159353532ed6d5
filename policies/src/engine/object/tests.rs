use serde_json::json;

use super::*;

fn gvk(group: &str, version: &str, kind: &str) -> GroupVersionKind {
    GroupVersionKind { group: group.into(), version: version.into(), kind: kind.into() }
}

fn pod() -> GroupVersionKind {
    gvk("", "v1", "Pod")
}

fn from_text(text: &str, kind: &GroupVersionKind) -> Result<ObjectJson, UnreadableObject> {
    ObjectJson::from_json(Bytes::copy_from_slice(text.as_bytes()), kind)
}

const POD: &str = r#"{"apiVersion":"v1","kind":"Pod",
  "metadata":{"name":"web","generateName":"web-","namespace":"prod","uid":"u1","labels":{"app":"web"},
    "annotations":{"vouch.dev/egress":"api.example.com:443"},
    "managedFields":[{"manager":"kubectl","fieldsV1":{"f:spec":{}}}]},
  "spec":{"serviceAccountName":"builder","imagePullSecrets":[{"name":"regcred"}],"nodeName":"n1",
    "initContainers":[{"name":"fetch","image":"ghcr.io/kitops/init:1","args":["unpack"],"env":[{"name":"A","value":"b"}]}],
    "containers":[{"name":"app","image":"reg.example/app:1.0","resources":{"limits":{"cpu":"1"}},"env":[{"name":"X","value":"y"}]}],
    "volumes":[{"name":"model","image":{"reference":"reg.example/m:1"},"csi":{"driver":"d"},"hostPath":{"path":"/x"}}]},
  "status":{"phase":"Pending"}}"#;

#[test]
fn a_pod_is_read_pruned_at_once_and_whole_when_asked() {
    let o = from_text(POD, &pod()).unwrap();
    let read = o.read();
    assert_eq!(
        read["metadata"],
        json!({"name": "web", "generateName": "web-", "namespace": "prod", "uid": "u1", "labels": {"app": "web"},
               "annotations": {"vouch.dev/egress": "api.example.com:443"}})
    );
    assert_eq!(read["spec"]["containers"], json!([{"name": "app", "image": "reg.example/app:1.0"}]));
    assert_eq!(read["spec"]["initContainers"][0]["env"][0]["value"], "b", "init containers are kept whole");
    assert_eq!(
        read["spec"]["volumes"],
        json!([{"name": "model", "image": {"reference": "reg.example/m:1"}, "csi": {"driver": "d"}}])
    );
    assert_eq!(read["spec"]["imagePullSecrets"], json!([{"name": "regcred"}]));
    assert_eq!(read["spec"]["serviceAccountName"], "builder");
    assert!(read.get("status").is_none() && read["spec"].get("nodeName").is_none());

    let whole = o.whole().unwrap();
    let mut expected: Value = serde_json::from_str(POD).unwrap();
    expected["metadata"].as_object_mut().unwrap().remove("managedFields");
    assert_eq!(whole, &expected, "the whole object, without managedFields");
    assert_eq!(whole["spec"]["containers"][0]["resources"]["limits"]["cpu"], "1");
    assert!(std::ptr::eq(whole, o.whole().unwrap()), "parsed once");
}

#[test]
fn workload_kinds_keep_their_pod_template_and_other_kinds_are_read_whole() {
    let spec = r#"{"containers":[{"name":"a","image":"i","ports":[]}]}"#;
    let template = format!(r#"{{"metadata":{{"annotations":{{"k":"v"}},"x":1}},"spec":{spec}}}"#);
    let deployment = format!(r#"{{"kind":"Deployment","spec":{{"replicas":3,"template":{template}}}}}"#);
    let o = from_text(&deployment, &gvk("apps", "v1", "Deployment")).unwrap();
    assert_eq!(
        o.read()["spec"],
        json!({"template": {"metadata": {"annotations": {"k": "v"}}, "spec": {"containers": [{"name": "a", "image": "i"}]}}})
    );
    let cron = format!(r#"{{"spec":{{"schedule":"*","jobTemplate":{{"spec":{{"template":{template}}}}}}}}}"#);
    let o = from_text(&cron, &gvk("batch", "v1", "CronJob")).unwrap();
    assert_eq!(
        o.read().pointer("/spec/jobTemplate/spec/template/spec/containers/0"),
        Some(&json!({"name": "a", "image": "i"}))
    );
    assert!(o.read().pointer("/spec/schedule").is_none());
    assert_eq!(o.whole().unwrap().pointer("/spec/schedule"), Some(&json!("*")));

    let custom = r#"{"kind":"Model","metadata":{"name":"m","managedFields":[]},"spec":{"source":{"uri":"oci://r/m:1"}}}"#;
    let o = from_text(custom, &gvk("ai.example", "v1", "Model")).unwrap();
    assert_eq!(
        o.read(),
        &json!({"kind": "Model", "metadata": {"name": "m"}, "spec": {"source": {"uri": "oci://r/m:1"}}})
    );
    assert!(std::ptr::eq(o.read(), o.whole().unwrap()), "one value when nothing is pruned");
}

#[test]
fn fields_of_another_type_than_pruned_are_kept_as_sent() {
    let odd = r#"{"metadata":[1,{"name":"x"}],"spec":{"containers":{"name":"a","resources":{}},
        "ephemeralContainers":[1,"s",null,[{"a":1}],{"name":"e","image":7,"tty":true}],"volumes":"v"}}"#;
    let o = from_text(odd, &pod()).unwrap();
    let whole: Value = serde_json::from_str(odd).unwrap();
    assert_eq!(o.read()["metadata"], whole["metadata"]);
    assert_eq!(o.read()["spec"]["containers"], whole["spec"]["containers"]);
    assert_eq!(o.read()["spec"]["volumes"], "v");
    assert_eq!(
        o.read()["spec"]["ephemeralContainers"],
        json!([1, "s", null, [{"a": 1}], {"name": "e", "image": 7}])
    );
    let scalar_spec = from_text(r#"{"spec":"text"}"#, &pod()).unwrap();
    assert_eq!(scalar_spec.read(), &json!({"spec": "text"}));
}

#[test]
fn a_repeated_key_counts_with_its_last_value_in_both_reads() {
    let twice = r#"{"spec":{"containers":[{"name":"a","image":"first","image":"last"}],
        "containers":[{"name":"b","image":"second"}],"nodeName":"x","nodeName":"y"},
        "metadata":{"labels":{"a":"1"},"labels":{"a":"2"}}}"#;
    let o = from_text(twice, &pod()).unwrap();
    assert_eq!(o.read()["spec"]["containers"], json!([{"name": "b", "image": "second"}]));
    assert_eq!(o.read()["metadata"]["labels"]["a"], "2");
    let whole: Value = serde_json::from_str(twice).unwrap();
    assert_eq!(o.whole().unwrap(), &whole);
}

#[test]
fn deep_nesting_in_a_skipped_part_fails_only_the_whole_read() {
    let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let skipped =
        format!(r#"{{"spec":{{"containers":[{{"name":"a","image":"i","resources":{}}}]}}}}"#, nest(10_000));
    let o = from_text(&skipped, &pod()).unwrap();
    assert_eq!(o.read()["spec"]["containers"][0]["image"], "i");
    let e = o.whole().unwrap_err();
    assert!(e.to_string().starts_with("the object is not readable JSON: recursion limit exceeded"), "{e}");
    assert_eq!(o.whole().unwrap_err(), e, "the failure is kept, not parsed again");

    let kept = format!(r#"{{"spec":{{"initContainers":{}}}}}"#, nest(10_000));
    assert!(from_text(&kept, &pod()).unwrap_err().reason.contains("recursion limit"));
    let whole_kind = format!(r#"{{"spec":{}}}"#, nest(10_000));
    assert!(from_text(&whole_kind, &gvk("", "v1", "ConfigMap"))
        .unwrap_err()
        .reason
        .contains("recursion limit"));
    // Bad syntax anywhere, kept or skipped, is refused at once.
    for bad in [r#"{"spec":{"nodeName":tru}}"#, r#"{"status":{"a":1,}}"#, r#"{"spec":{}} x"#] {
        assert!(from_text(bad, &pod()).is_err(), "{bad}");
    }
}

#[test]
fn a_value_is_its_own_read_and_whole() {
    let v =
        json!({"metadata": {"managedFields": [1]}, "spec": {"containers": [{"name": "a", "resources": {}}]}});
    let o = ObjectJson::from_value(v.clone());
    assert_eq!(o.read(), &v);
    assert_eq!(o.whole().unwrap(), &v);
}
