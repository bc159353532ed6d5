#!/usr/bin/env python3
"""Play e2e/scenarios/*.yaml against a real cluster (called by e2e/run.sh in cluster mode).

Installs charts/vouch (helm upgrade --install), then for each scenario: pushes its artifacts to the test
registry (plain HTTP, OCI distribution API), signs the signed ones with `cosign sign --key` (no
transparency log), applies the scenario's policy (the run's cosign key as its authority) and waits until
vouch reports it Ready, applies the object with kubectl, and checks the expectations:
  allowed / denied (kubectl's error carries the webhook's message), message substrings, pinned fields of the
  stored object, warnings (kubectl prints them), audit records and reports (the namespace's OpenReports
  Report "vouch"), the status condition on the Pod.

Environment:
  E2E_REGISTRY       registry host[:port] as the cluster and vouch reach it (kind.sh: kind-registry:5000)
  E2E_PUSH_REGISTRY  the same registry as this machine reaches it (default: E2E_REGISTRY; kind.sh: localhost:5001)
  VOUCH_IMAGE        image vouch runs from (repository:tag or repository@sha256:...)
  HELM               helm binary (default: helm on PATH)
  E2E_ONLY           comma-separated scenario names to play (default: all)
Needs kubectl, helm 3, cosign and python3 with PyYAML.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE, SYSTEM_NS, NS = "vouch", "vouch-system", "vouch-e2e"
AUTHORITY = "e2e-key"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def run(*args, check=True, env=None, input=None):
    r = subprocess.run(args, capture_output=True, text=True, env=env, input=input)
    if check and r.returncode != 0:
        raise SystemExit(f"e2e: {' '.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


def kubectl(*args, check=True, input=None):
    return run("kubectl", *args, check=check, input=input)


# --- pushing artifacts (OCI distribution API over plain HTTP; the test registry needs no auth) ---

def push_blob(registry, repo, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    req = urllib.request.Request(f"http://{registry}/v2/{repo}/blobs/uploads/", method="POST")
    with urllib.request.urlopen(req) as r:
        location = r.headers["Location"]
    if location.startswith("/"):
        location = f"http://{registry}{location}"
    sep = "&" if "?" in location else "?"
    req = urllib.request.Request(f"{location}{sep}digest={digest}", data=data, method="PUT",
                                 headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(req).close()
    return digest


def push_manifest(registry, repo, tag, manifest):
    body = json.dumps(manifest).encode()
    req = urllib.request.Request(f"http://{registry}/v2/{repo}/manifests/{tag}", data=body, method="PUT",
                                 headers={"Content-Type": OCI_MANIFEST})
    urllib.request.urlopen(req).close()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def push_artifact(registry, a):
    repo, tag = a["repository"], a["tag"]
    artifact_type = None
    if a["kind"] == "image":
        layer = f"e2e image {repo} {tag}\n".encode()
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/app"]},
                             "rootfs": {"type": "layers",
                                        "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()
        config_type, layer_type = "application/vnd.oci.image.config.v1+json", "application/vnd.oci.image.layer.v1.tar"
    elif a["kind"] == "modelkit":
        layer = b"not really a model\n"
        config = json.dumps({"manifestVersion": "1.0.0", "package": {"name": repo.rsplit("/", 1)[-1], "version": tag},
                             "model": {"name": "sentiment", "path": "model.safetensors"}}).encode()
        config_type, layer_type = ("application/vnd.kitops.modelkit.config.v1+json",
                                   "application/vnd.kitops.modelkit.model.v1.tar")
    elif a["kind"] == "egressAllowlist":
        layer = json.dumps(a["document"]).encode()
        config = b"{}"
        config_type, layer_type = "application/vnd.oci.empty.v1+json", "application/vnd.vouch.egress-allowlist.layer.v1+json"
        artifact_type = "application/vnd.vouch.egress-allowlist.v1+json"
    else:
        raise SystemExit(f"e2e: unknown artifact kind {a['kind']}")
    manifest = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": push_blob(registry, repo, config), "size": len(config)},
        "layers": [{"mediaType": layer_type, "digest": push_blob(registry, repo, layer), "size": len(layer)}],
    }
    if artifact_type:
        manifest["artifactType"] = artifact_type
    return push_manifest(registry, repo, tag, manifest)


# --- scenarios ---

def substitute(value, subst):
    text = json.dumps(value)
    for k, v in subst.items():
        text = text.replace("${" + k + "}", v)
    if "${" in text:
        raise SystemExit(f"e2e: unresolved placeholder in {text}")
    return json.loads(text)


def poll(what, fn, timeout=60):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(2)
    return None


def pointer(obj, path):
    for part in path.strip("/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        obj = obj[int(part)] if isinstance(obj, list) else obj.get(part)
        if obj is None:
            return None
    return obj


def report_results(name, kind, report="vouch"):
    r = kubectl("get", "reports.openreports.io", report, "-n", NS, "-o", "json", check=False)
    if r.returncode != 0:
        return []
    return [x for x in json.loads(r.stdout).get("results", [])
            if any(res.get("name") == name and res.get("kind") == kind for res in x.get("resources", []))]


def helm_values(dry_run, registry, image):
    values = {"replicas": 1, "dryRun": dry_run, "server": {"insecureRegistries": [registry], "logLevel": "info"}}
    # The scenarios bring their own material: no dependence on reaching Sigstore's TUF CDN from the cluster.
    values["tuf"] = {"enabled": False}
    if "@" in image:
        repo, digest = image.split("@", 1)
        values["image"] = {"repository": repo, "digest": digest, "pullPolicy": "IfNotPresent"}
    else:
        repo, _, tag = image.rpartition(":")
        values["image"] = {"repository": repo, "tag": tag, "pullPolicy": "IfNotPresent"}
    return values


def install(helm, values, tmp):
    path = os.path.join(tmp, "values.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(values, f)
    run(helm, "upgrade", "--install", RELEASE, os.path.join(ROOT, "charts", "vouch"), "-n", SYSTEM_NS,
        "--create-namespace", "-f", path, "--wait", "--timeout", "5m")
    kubectl("-n", SYSTEM_NS, "rollout", "status", f"deploy/{RELEASE}", "--timeout=3m")


def play(s, ctx):
    problems = []
    subst = {"REGISTRY": ctx["registry"], "NAMESPACE": NS}
    for a in s.get("artifacts", []):
        digest = push_artifact(ctx["push_registry"], a)
        tagged = f"{a['repository']}:{a['tag']}"
        subst[a["name"]] = f"{ctx['registry']}/{tagged}"
        subst[a["name"] + "@"] = f"{ctx['registry']}/{tagged}@{digest}"
        if a["signed"]:
            run("cosign", "sign", "--key", ctx["key"], "--tlog-upload=false", "--allow-insecure-registry",
                "--yes", f"{ctx['push_registry']}/{a['repository']}@{digest}", env=ctx["cosign_env"])
    spec = substitute(s["policy"]["spec"], subst)
    spec.setdefault("authorities", [{"name": AUTHORITY, "key": {"pem": ctx["pub"], "requireTlog": False}}])
    policy = {"apiVersion": "vouch.dev/v1alpha1", "kind": "ClusterSupplyChainPolicy",
              "metadata": {"name": s["policy"]["name"]}, "spec": spec}
    kubectl("apply", "-f", "-", input=json.dumps(policy))
    name = s["policy"]["name"]

    def ready():
        r = kubectl("get", "clustersupplychainpolicy", name, "-o", "json", check=False)
        if r.returncode != 0:
            return False
        status = json.loads(r.stdout).get("status") or {}
        conds = [c for c in status.get("conditions", []) if c.get("type") == "Ready"]
        return conds and conds[0].get("status") == "True" and \
            status.get("observedGeneration") == json.loads(r.stdout)["metadata"]["generation"]
    if not poll("policy ready", ready):
        return [f"policy {name} did not become Ready"]

    obj = substitute(s["object"], subst)
    obj["metadata"]["namespace"] = NS
    kind, oname = obj["kind"], obj["metadata"]["name"]
    r = kubectl("apply", "-f", "-", check=False, input=json.dumps(obj))
    e = s["expect"]
    try:
        if e["allowed"] != (r.returncode == 0):
            problems.append(f"expected {'allowed' if e['allowed'] else 'denied'}, kubectl said: {r.stdout}{r.stderr}")
        if not e["allowed"]:
            if 'admission webhook "validate.vouch.dev" denied the request' not in r.stderr:
                problems.append(f"not denied by vouch: {r.stderr}")
            for want in e.get("message", []):
                want = substitute(want, subst)
                if want not in r.stderr:
                    problems.append(f"denial lacks {want!r}: {r.stderr}")
        for want in e.get("warnings", []):
            want = substitute(want, subst)
            if want not in r.stderr:
                problems.append(f"no warning contains {want!r}: {r.stderr}")
        if e["allowed"] and r.returncode == 0:
            stored = json.loads(kubectl("get", kind.lower(), oname, "-n", NS, "-o", "json").stdout)
            for path, want in (e.get("pinned") or {}).items():
                want = substitute(want, subst)
                if pointer(stored, path) != want:
                    problems.append(f"stored {path} is {pointer(stored, path)!r}, expected {want!r}")
        if e.get("audit"):
            # Would-be denials are recorded: the report holds a fail result for the object under the policy.
            found = poll("audit record", lambda: [x for x in report_results(oname, kind)
                                                   if x.get("policy") == name and x.get("result") == "fail"])
            if not found:
                problems.append(f"no fail result for {kind} {oname} under {name} in report {NS}/vouch")
        if e.get("report"):
            want = e["report"]
            found = poll("report", lambda: [x for x in report_results(oname, kind)
                                             if all(x.get(k) == v for k, v in want.items())])
            if not found:
                problems.append(f"no report result {want} for {kind} {oname}: {report_results(oname, kind)}")
        if e.get("status"):
            want = e["status"]

            def condition():
                got = kubectl("get", kind.lower(), oname, "-n", NS, "-o", "json", check=False)
                if got.returncode != 0:
                    return None
                conds = (json.loads(got.stdout).get("status") or {}).get("conditions", [])
                return [c for c in conds if c.get("type") == want["condition"] and c.get("status") == want["status"]]
            if not poll("status condition", condition):
                problems.append(f"no condition {want} on {kind} {oname}")
        if s.get("drift") and e["allowed"] and r.returncode == 0:
            problems += drift(s, ctx, policy, kind, oname)
    finally:
        kubectl("delete", kind.lower(), oname, "-n", NS, "--ignore-not-found", "--wait=false", check=False)
        kubectl("delete", "clustersupplychainpolicy", name, "--ignore-not-found", check=False)
    return problems


def drift(s, ctx, policy, kind, oname):
    """Change what the admitted object was judged by (the policy's key rotated), then wait for the scanner
    (a change in force makes it scan at once): the condition, the VerificationDrift Event, the vouch-scan
    report."""
    problems = []
    if s["drift"].get("rotateKey"):
        policy["spec"]["authorities"] = [{"name": AUTHORITY, "key": {"pem": ctx["other_pub"], "requireTlog": False}}]
        kubectl("apply", "-f", "-", input=json.dumps(policy))
    want = s["expect"].get("scan", {})

    def condition():
        got = kubectl("get", kind.lower(), oname, "-n", NS, "-o", "json", check=False)
        conds = (json.loads(got.stdout).get("status") or {}).get("conditions", []) if got.returncode == 0 else []
        return [c for c in conds if c.get("type") == "vouch.dev/Verified" and c.get("status") == want.get("condition")]
    if want.get("condition") and not poll("scanned condition", condition, timeout=180):
        problems.append(f"the scanner did not set vouch.dev/Verified={want['condition']} on {kind} {oname}")

    def event():
        got = kubectl("get", "events", "-n", NS, "-o", "json",
                      f"--field-selector=reason={want.get('event')},involvedObject.name={oname}", check=False)
        return json.loads(got.stdout).get("items") if got.returncode == 0 else None
    if want.get("event") and not poll("drift event", event, timeout=180):
        problems.append(f"no {want['event']} Event on {kind} {oname}")
    if want.get("report"):
        found = poll("scan report", lambda: [x for x in report_results(oname, kind, "vouch-scan")
                                              if all(x.get(k) == v for k, v in want["report"].items())], timeout=180)
        if not found:
            problems.append(f"no result {want['report']} for {kind} {oname} in report {NS}/vouch-scan")
    return problems


def main():
    registry = os.environ.get("E2E_REGISTRY")
    image = os.environ.get("VOUCH_IMAGE")
    if not registry or not image:
        raise SystemExit("e2e: cluster mode needs E2E_REGISTRY and VOUCH_IMAGE (e2e/kind.sh sets both up)")
    helm = os.environ.get("HELM", "helm")
    only = {n for n in os.environ.get("E2E_ONLY", "").split(",") if n}
    scenarios = []
    for path in sorted(os.listdir(os.path.join(ROOT, "e2e", "scenarios"))):
        if path.endswith(".yaml"):
            with open(os.path.join(ROOT, "e2e", "scenarios", path)) as f:
                s = yaml.safe_load(f)
            if not only or s["name"] in only:
                scenarios.append(s)
    with tempfile.TemporaryDirectory() as tmp:
        cosign_env = dict(os.environ, COSIGN_PASSWORD="")
        run("cosign", "generate-key-pair", "--output-key-prefix", os.path.join(tmp, "e2e"), env=cosign_env)
        with open(os.path.join(tmp, "e2e.pub")) as f:
            pub = f.read()
        # A second key: scenarios that rotate a policy's key to one that signed nothing.
        run("cosign", "generate-key-pair", "--output-key-prefix", os.path.join(tmp, "other"), env=cosign_env)
        with open(os.path.join(tmp, "other.pub")) as f:
            other_pub = f.read()
        ctx = {"registry": registry, "push_registry": os.environ.get("E2E_PUSH_REGISTRY", registry),
               "key": os.path.join(tmp, "e2e.key"), "pub": pub, "other_pub": other_pub, "cosign_env": cosign_env}
        dry = None
        kubectl("create", "namespace", NS, check=False)
        failed = []
        for s in scenarios:
            missing = [c for c in s.get("requiresCRDs", [])
                       if kubectl("get", "crd", c, check=False).returncode != 0]
            if missing:
                print(f"  not run  {s['name']}: the cluster lacks {', '.join(missing)}")
                continue
            want_dry = bool(s.get("dryRun"))
            if want_dry != dry:
                install(helm, helm_values(want_dry, registry, image), tmp)
                dry = want_dry
            problems = play(s, ctx)
            print(f"  {'ok  ' if not problems else 'FAIL'}  {s['name']}")
            for p in problems:
                print(f"        {p}")
            if problems:
                failed.append(s["name"])
        if dry:
            install(helm, helm_values(False, registry, image), tmp)
    if failed:
        print(f"e2e: {len(failed)} of {len(scenarios)} scenario(s) failed: {', '.join(failed)}")
        sys.exit(1)
    print(f"e2e: {len(scenarios)} scenario(s) passed in cluster mode")


if __name__ == "__main__":
    main()
