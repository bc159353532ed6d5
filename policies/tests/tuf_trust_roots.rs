//! TrustRoots with `spec.tuf`: their trusted root obtained by [`TufRoots`] from a TUF repository made by
//! python-tuf (attest/tests/tuf/repo.py) on loopback, before compiling. A new target is followed once the
//! root in force is older than the refresh; a repository out of reach keeps the last good root (cached on
//! disk, across a new client too); with nothing cached, or a spec that is wrong, the TrustRoot is reported
//! with the reason and left out, and a TrustRoot no TUF client consulted is reported as such.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use vouch_attest::trust_root::PUBLIC_GOOD_JSON;
use vouch_policies::{PolicyResources, PolicySet, Secrets, TufRoots, TufRootsConfig};

#[path = "../../attest/tests/tuf_support/mod.rs"]
mod tuf_support;
use tuf_support::Mirror;

/// The public-good root minus its last `n` CT logs: distinct documents with a countable difference.
fn root_with_ctlogs_dropped(n: usize) -> Vec<u8> {
    let mut doc: Value = serde_json::from_str(PUBLIC_GOOD_JSON).unwrap();
    for _ in 0..n {
        doc["ctlogs"].as_array_mut().unwrap().pop();
    }
    serde_json::to_vec_pretty(&doc).unwrap()
}

fn ctlogs(json: &[u8]) -> usize {
    serde_json::from_slice::<Value>(json).unwrap()["ctlogs"].as_array().unwrap().len()
}

fn resources(yaml: &str) -> PolicyResources {
    let r = PolicyResources::from_yaml_str(yaml, "test");
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    r
}

fn tuf_trust_root(name: &str, mirror: &str, anchor: &[u8]) -> String {
    let anchor = serde_json::to_string(std::str::from_utf8(anchor).unwrap()).unwrap();
    format!(
        "apiVersion: vouch.dev/v1alpha1\nkind: TrustRoot\nmetadata: {{name: {name}}}\nspec:\n  tuf:\n    \
         mirror: {mirror}\n    root:\n      inline: {anchor}\n"
    )
}

fn roots(cache: &std::path::Path, host: &str, refresh: Duration) -> TufRoots {
    TufRoots::new(TufRootsConfig {
        cache_dir: cache.to_owned(),
        refresh,
        timeout: Duration::from_secs(10),
        insecure_hosts: vec![host.to_owned()],
    })
}

async fn compile(tuf: &TufRoots, yaml: &str) -> PolicySet {
    let mut r = resources(yaml);
    tuf.resolve(&mut r, &Secrets::none()).await;
    PolicySet::compile(r, &Secrets::none())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tuf_trust_root_follows_its_repository_and_keeps_the_last_good_root() {
    let first = root_with_ctlogs_dropped(1);
    let Some(mut mirror) = Mirror::start(&first) else { return };
    let cache = tempfile::tempdir().unwrap();
    let yaml = tuf_trust_root("private", &mirror.url(), &mirror.anchor());

    // Refreshed at every resolution (refresh zero): the published root is the one in force.
    let tuf = roots(cache.path(), &mirror.host(), Duration::ZERO);
    let set = compile(&tuf, &yaml).await;
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    let compiled = &set.trust_roots()["private"].root;
    let embedded = vouch_attest::trust_root::TrustRoot::from_json(PUBLIC_GOOD_JSON.as_bytes()).unwrap();
    assert_ne!(compiled.fingerprint(), embedded.fingerprint(), "the mirror's root, not the embedded one");
    let mut r = resources(&yaml);
    tuf.resolve(&mut r, &Secrets::none()).await;
    assert_eq!(ctlogs(r.tuf_trusted_roots["private"].as_ref().unwrap()), ctlogs(&first));

    // A new target is followed.
    let second = root_with_ctlogs_dropped(2);
    mirror.publish(&second);
    let mut r = resources(&yaml);
    tuf.resolve(&mut r, &Secrets::none()).await;
    assert_eq!(ctlogs(r.tuf_trusted_roots["private"].as_ref().unwrap()), ctlogs(&second));

    // A client whose refresh is not due yet does not fetch: it keeps what it has.
    let lazy = roots(cache.path(), &mirror.host(), Duration::from_secs(3600));
    mirror.publish(&root_with_ctlogs_dropped(3));
    let mut r = resources(&yaml);
    lazy.resolve(&mut r, &Secrets::none()).await;
    assert_eq!(ctlogs(r.tuf_trusted_roots["private"].as_ref().unwrap()), ctlogs(&second), "cached, not due");

    // The repository out of reach: the last good root (from the disk cache, for a new client too).
    mirror.stop();
    let fresh_client = roots(cache.path(), &mirror.host(), Duration::ZERO);
    let set = compile(&fresh_client, &yaml).await;
    assert!(set.problems().is_empty(), "the last good root stays in force: {:?}", set.problems());
    let mut r = resources(&yaml);
    fresh_client.resolve(&mut r, &Secrets::none()).await;
    assert_eq!(ctlogs(r.tuf_trusted_roots["private"].as_ref().unwrap()), ctlogs(&second));

    // Nothing cached and out of reach: reported with the reason, left out.
    let empty = tempfile::tempdir().unwrap();
    let set = compile(&roots(empty.path(), &mirror.host(), Duration::ZERO), &yaml).await;
    assert!(set.trust_roots().is_empty());
    let problems = set.problems().iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(problems.contains("TrustRoot private: tuf: "), "{problems}");
    assert!(problems.contains("no last good trusted root is cached"), "{problems}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tuf_root_comes_from_a_secret_and_a_wrong_spec_is_named() {
    let Some(mirror) = Mirror::start(&root_with_ctlogs_dropped(1)) else { return };
    let cache = tempfile::tempdir().unwrap();
    let tuf = roots(cache.path(), &mirror.host(), Duration::ZERO);
    let from_secret = format!(
        "apiVersion: vouch.dev/v1alpha1\nkind: TrustRoot\nmetadata: {{name: from-secret}}\nspec:\n  tuf:\n    \
         mirror: {}\n    root:\n      secretRef: {{name: tuf-root, namespace: vouch-system}}\n",
        mirror.url()
    );
    let mut r = resources(&from_secret);
    assert!(r.secret_refs().contains(&("vouch-system".to_owned(), "tuf-root".to_owned())));
    let mut secrets = Secrets::none();
    secrets.insert("vouch-system", "tuf-root", BTreeMap::from([("root.json".to_owned(), mirror.anchor())]));
    tuf.resolve(&mut r, &secrets).await;
    let set = PolicySet::compile(r, &secrets);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    assert!(set.trust_roots().contains_key("from-secret"));

    // Another root.json than the repository's (another repository's, after its keys were rotated): the
    // mirror's metadata does not verify against it, nothing is trusted.
    let other = Mirror::start(&root_with_ctlogs_dropped(1)).unwrap();
    other.run("rotate-root", None);
    let rotated = std::fs::read(other.dir().join("repo/2.root.json")).unwrap();
    let wrong_anchor = tuf_trust_root("wrong-anchor", &mirror.url(), &rotated);
    let set = compile(&tuf, &wrong_anchor).await;
    assert!(set.trust_roots().is_empty());
    assert!(set.problems()[0].to_string().contains("TrustRoot wrong-anchor: tuf: "), "{:?}", set.problems());

    let cases = [
        (
            "spec:\n  tuf: {mirror: https://tuf.example.com}\n",
            "root is required for mirror https://tuf.example.com",
        ),
        (
            "spec:\n  tuf:\n    mirror: https://tuf.example.com\n    root: {inline: x, secretRef: {name: a}}\n",
            "root: exactly one of inline or secretRef is required",
        ),
        (
            "spec:\n  tuf:\n    mirror: https://tuf.example.com\n    root: {secretRef: {name: a}}\n",
            "root.secretRef: namespace is required",
        ),
        (
            "spec:\n  tuf:\n    mirror: https://tuf.example.com\n    root: {secretRef: {name: a, namespace: b}}\n",
            "root.secretRef: secret b/a is not available",
        ),
        (
            "spec:\n  tuf:\n    mirror: http://tuf.example.com\n    root: {inline: '{}'}\n",
            "must be https",
        ),
        (
            "spec:\n  trustedRootJSON: '{}'\n  tuf: {mirror: public-good}\n",
            "exactly one of trustedRootJSON, secretRef or tuf is required",
        ),
    ];
    for (spec, expected) in cases {
        let yaml =
            format!("apiVersion: vouch.dev/v1alpha1\nkind: TrustRoot\nmetadata: {{name: bad}}\n{spec}");
        let set = compile(&tuf, &yaml).await;
        let problems = set.problems().iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        assert!(set.trust_roots().is_empty() && problems.contains(expected), "{spec}: {problems}");
    }

    // Compiled without a TUF client (nothing resolved): said, not silently trusted or dropped.
    let set = PolicySet::compile(
        resources(&tuf_trust_root("unresolved", &mirror.url(), &mirror.anchor())),
        &Secrets::none(),
    );
    let problems = set.problems().iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
    assert!(problems.contains("was not consulted (no TUF client here)"), "{problems}");
}
