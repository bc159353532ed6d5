use super::*;

fn files() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    std::fs::write(&cert, "x").unwrap();
    std::fs::write(&key, "x").unwrap();
    (dir, cert, key)
}

#[test]
fn tuf_settings_resolve_public_good_and_refuse_contradictions() {
    let (dir, cert, key) = files();
    let base = RawServeConfig {
        tls_cert: Some(cert.clone()),
        tls_key: Some(key),
        policy_dir: Some(dir.path().into()),
        tuf_cache: Some(dir.path().join("cache")),
        ..Default::default()
    };
    let c = RawServeConfig { tuf_mirror: Some(vouch_attest::tuf::PUBLIC_GOOD_NAME.into()), ..base.clone() }
        .validate()
        .unwrap();
    let tuf = c.tuf.unwrap();
    assert_eq!(tuf.mirror, vouch_attest::tuf::PUBLIC_GOOD_MIRROR);
    assert_eq!((tuf.root, tuf.refresh), (None, DEFAULT_TUF_REFRESH), "the embedded TUF root, daily");

    let err = RawServeConfig {
        tuf_mirror: Some("https://tuf.example.com".into()),
        trusted_root: Some(cert),
        tuf_refresh: Some("10s".into()),
        ..base.clone()
    }
    .validate()
    .unwrap_err();
    let fields: Vec<_> = err.problems.iter().map(|p| p.field).collect();
    assert_eq!(fields, ["--tuf-refresh", "--tuf-mirror", "--tuf-root"], "{err}");

    let err = RawServeConfig { tuf_refresh: Some("1h".into()), ..base }.validate().unwrap_err();
    assert_eq!(err.problems[0].message, "given without --tuf-mirror");
}

#[test]
fn defaults_apply_and_kube_is_off_with_a_policy_dir() {
    let (dir, cert, key) = files();
    let c = RawServeConfig {
        tls_cert: Some(cert),
        tls_key: Some(key),
        policy_dir: Some(dir.path().into()),
        ..Default::default()
    }
    .validate()
    .unwrap();
    assert_eq!(c.listen, DEFAULT_LISTEN.parse().unwrap());
    assert_eq!(c.health_listen, DEFAULT_HEALTH_LISTEN.parse().unwrap());
    assert_eq!(c.timeout_budget, DEFAULT_TIMEOUT_BUDGET);
    assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    assert_eq!(c.no_match, NoMatchAction::Allow);
    assert_eq!(c.pin_scope, PinScope::All);
    assert!(!c.kube);
    assert!(!c.dry_run);
}

#[test]
fn a_bundle_needs_its_key_and_supplies_the_policies() {
    let (dir, cert, key) = files();
    let bundle = dir.path().join("b.tar");
    std::fs::write(&bundle, "x").unwrap();
    let base = RawServeConfig { tls_cert: Some(cert), tls_key: Some(key), ..Default::default() };
    let err =
        RawServeConfig { bundle: Some(bundle.clone()), ..base.clone() }.validate_with_bundle().unwrap_err();
    assert_eq!(err.problems.iter().map(|p| p.field).collect::<Vec<_>>(), ["--bundle-key"]);
    let with_key =
        RawServeConfig { bundle: Some(bundle.clone()), bundle_key: Some(bundle.clone()), ..base.clone() };
    let (c, source) = with_key.clone().validate_with_bundle().unwrap();
    // Policies come from the bundle: no cluster needed.
    assert!(!c.kube);
    let expected = BundleSource { path: bundle.clone(), key: Some(bundle.clone()), allow_unsigned: false };
    assert_eq!(source, Some(expected));
    // A caller that cannot serve from a bundle is told so instead of the bundle being dropped.
    assert_eq!(with_key.validate().unwrap_err().problems[0].field, "--bundle");
    let unsigned =
        RawServeConfig { bundle: Some(bundle.clone()), bundle_allow_unsigned: Some(true), ..base.clone() };
    assert!(unsigned.validate_with_bundle().unwrap().1.unwrap().allow_unsigned);
    let err = RawServeConfig { bundle_key: Some(bundle), policy_dir: Some(dir.path().into()), ..base }
        .validate_with_bundle()
        .unwrap_err();
    assert_eq!(err.problems.iter().map(|p| p.field).collect::<Vec<_>>(), ["--bundle-key"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = RawServeConfig {
        listen: Some("8443".into()),
        health_listen: Some("nowhere".into()),
        tls_cert: None,
        tls_key: Some("/nonexistent/tls.key".into()),
        no_match: Some("maybe".into()),
        pin_scope: Some("deployments".into()),
        kube: Some(false),
        timeout_budget: Some("45s".into()),
        max_body_bytes: Some(10),
        insecure_registries: Some(vec!["http://reg.local/x".into()]),
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    let fields: Vec<_> = err.problems.iter().map(|p| p.field).collect();
    assert_eq!(
        fields,
        [
            "--listen",
            "--health-listen",
            "--tls-cert",
            "--tls-key",
            "--policy-dir",
            "--no-match",
            "--pin-scope",
            "--insecure-registry",
            "--timeout-budget",
            "--max-body-bytes"
        ]
    );
    let text = err.to_string();
    assert!(text.contains("\"maybe\": expected allow, warn or deny"), "{text}");
    assert!(text.contains("\"deployments\": expected all or pods"), "{text}");
    assert!(text.contains("/nonexistent/tls.key is not a readable file"), "{text}");
}

#[test]
fn cache_capacity_defaults_to_the_verifier_default_and_is_bounded() {
    let (dir, cert, key) = files();
    let base = RawServeConfig {
        tls_cert: Some(cert),
        tls_key: Some(key),
        policy_dir: Some(dir.path().into()),
        ..Default::default()
    };
    assert_eq!(base.clone().validate().unwrap().cache_capacity, 10_000);
    let set = RawServeConfig { cache_capacity: Some(64), ..base.clone() };
    assert_eq!(set.validate().unwrap().cache_capacity, 64);
    for bad in [0, MAX_CACHE_CAPACITY + 1] {
        let err = RawServeConfig { cache_capacity: Some(bad), ..base.clone() }.validate().unwrap_err();
        assert_eq!(err.problems.iter().map(|p| p.field).collect::<Vec<_>>(), ["--cache-capacity"]);
    }
}

#[test]
fn same_port_for_health_and_webhooks_is_refused() {
    let (dir, cert, key) = files();
    let err = RawServeConfig {
        listen: Some("0.0.0.0:8443".into()),
        health_listen: Some("127.0.0.1:8443".into()),
        tls_cert: Some(cert),
        tls_key: Some(key),
        policy_dir: Some(dir.path().into()),
        ..Default::default()
    }
    .validate()
    .unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert!(err.problems[0].message.contains("separate ports"));
}

#[test]
fn flags_override_the_file() {
    let file: RawServeConfig = serde_yaml::from_str(
        "listen: 0.0.0.0:9443\ndryRun: true\nnoMatch: warn\npinScope: pods\ntimeoutBudget: 5s\n",
    )
    .unwrap();
    let flags = RawServeConfig { listen: Some("127.0.0.1:1443".into()), ..Default::default() };
    let merged = file.overlay(flags);
    assert_eq!(merged.listen.as_deref(), Some("127.0.0.1:1443"));
    assert_eq!(merged.dry_run, Some(true));
    assert_eq!(merged.no_match.as_deref(), Some("warn"));
    assert_eq!(merged.pin_scope.as_deref(), Some("pods"));
    assert!(serde_yaml::from_str::<RawServeConfig>("lisen: x\n").is_err(), "unknown keys are rejected");
}

#[test]
fn status_targets_come_from_flags_or_the_file_and_need_the_cluster() {
    let (dir, cert, key) = files();
    let base = RawServeConfig {
        tls_cert: Some(cert),
        tls_key: Some(key),
        policy_dir: Some(dir.path().into()),
        kube: Some(true),
        ..Default::default()
    };
    let flag = |s: &str| RawStatusTarget::Text(s.to_owned());
    let kars = StatusTarget {
        group: "kars.azure.com".into(),
        version: "v1alpha1".into(),
        kind: "KarsSandbox".into(),
        plural: "karssandboxes".into(),
    };
    let c = RawServeConfig {
        status_targets: Some(vec![flag("kars.azure.com/v1alpha1/KarsSandbox=karssandboxes")]),
        ..base.clone()
    }
    .validate()
    .unwrap();
    assert_eq!(c.status_targets, vec![kars.clone()]);
    // The file: strings or objects; flags replace the file's list.
    let file: RawServeConfig = serde_yaml::from_str(
        "statusTargets:\n  - kars.azure.com/v1alpha1/KarsSandbox=karssandboxes\n  - {group: ml.example.com, version: v1, kind: ModelDeployment, plural: modeldeployments}\n",
    )
    .unwrap();
    let merged = RawServeConfig { status_targets: file.status_targets.clone(), ..base.clone() };
    let c = merged.clone().validate().unwrap();
    assert_eq!(c.status_targets.len(), 2);
    assert_eq!(c.status_targets[1].kind, "ModelDeployment");
    let over =
        RawServeConfig { status_targets: Some(vec![flag("a.example.com/v1/A=as")]), ..Default::default() };
    assert_eq!(merged.overlay(over).validate().unwrap().status_targets.len(), 1);
    assert!(serde_yaml::from_str::<RawServeConfig>(
        "statusTargets: [{group: a, version: v1, kind: A, plural: as, extra: 1}]\n"
    )
    .is_err());

    for (bad, why) in [
        ("kars.azure.com/v1alpha1/KarsSandbox", "expected GROUP/VERSION/KIND=PLURAL"),
        ("kars.azure.com/KarsSandbox=karssandboxes", "expected GROUP/VERSION/KIND=PLURAL"),
        ("v1/Pod=pods", "expected GROUP/VERSION/KIND=PLURAL"),
        ("/v1/Pod=pods", "not an API group of custom resources"),
        ("kars/v1alpha1/KarsSandbox=karssandboxes", "not an API group of custom resources"),
        ("kars.azure.com/1/KarsSandbox=karssandboxes", "not an API version"),
        ("kars.azure.com/v1alpha1/karsSandbox=karssandboxes", "not a Kind"),
        ("kars.azure.com/v1alpha1/KarsSandbox=KarsSandboxes", "not a resource name"),
    ] {
        let e =
            RawServeConfig { status_targets: Some(vec![flag(bad)]), ..base.clone() }.validate().unwrap_err();
        assert_eq!(e.problems[0].field, "--status-target", "{bad}");
        assert!(e.problems[0].message.contains(why), "{bad}: {}", e.problems[0].message);
    }
    let twice = vec![
        flag("kars.azure.com/v1alpha1/KarsSandbox=karssandboxes"),
        flag("kars.azure.com/v1/KarsSandbox=karssandboxes"),
    ];
    let e = RawServeConfig { status_targets: Some(twice), ..base.clone() }.validate().unwrap_err();
    assert!(e.problems[0].message.contains("given twice"), "{e}");
    let e = RawServeConfig {
        status_targets: Some(vec![flag("kars.azure.com/v1alpha1/KarsSandbox=karssandboxes")]),
        kube: Some(false),
        ..base
    }
    .validate()
    .unwrap_err();
    assert!(e.problems[0].message.contains("needs --kube"), "{e}");
}

#[test]
fn durations_parse() {
    assert_eq!(parse_duration("8s").unwrap(), Duration::from_secs(8));
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
    assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
    assert_eq!(parse_duration("3h").unwrap(), Duration::from_secs(3 * 3600));
    assert!(parse_duration("3d").is_err());
    assert!(parse_duration("-1s").is_err());
}

#[test]
fn the_scanner_defaults_to_hourly_paced_at_20_and_refuses_intervals_out_of_range() {
    let (dir, cert, key) = files();
    let base = RawServeConfig {
        tls_cert: Some(cert),
        tls_key: Some(key),
        policy_dir: Some(dir.path().into()),
        ..RawServeConfig::default()
    };
    let c = base.clone().validate().unwrap();
    assert_eq!((c.scan_interval, c.scan_max_registry_rps), (Duration::from_secs(3600), 20));
    let off = RawServeConfig { scan_interval: Some("0".into()), ..base.clone() }.validate().unwrap();
    assert!(off.scan_interval.is_zero());
    let set =
        RawServeConfig { scan_interval: Some("30m".into()), scan_max_registry_rps: Some(5), ..base.clone() };
    let c = set.validate().unwrap();
    assert_eq!((c.scan_interval, c.scan_max_registry_rps), (Duration::from_secs(1800), 5));
    for (interval, rps, field) in [
        (Some("5s"), None, "--scan-interval"),
        (Some("8d"), None, "--scan-interval"),
        (None, Some(0), "--scan-max-registry-rps"),
    ] {
        let bad = RawServeConfig {
            scan_interval: interval.map(Into::into),
            scan_max_registry_rps: rps,
            ..base.clone()
        };
        let e = bad.validate().unwrap_err();
        assert!(e.problems.iter().any(|p| p.field == field), "{e:?}");
    }
}

#[test]
fn a_shared_cache_needs_a_redis_url_and_its_key_file_and_never_echoes_the_password() {
    let (dir, cert, key) = files();
    let key_file = dir.path().join("hmac.key");
    std::fs::write(&key_file, "k".repeat(48)).unwrap();
    let base = RawServeConfig {
        tls_cert: Some(cert),
        tls_key: Some(key),
        policy_dir: Some(dir.path().into()),
        ..Default::default()
    };
    assert!(base.clone().validate().unwrap().shared_cache.is_none());
    let url = "redis://:s3cret@redis.vouch.svc:6379/0";
    let on = RawServeConfig {
        shared_cache: Some(url.into()),
        shared_cache_key_file: Some(key_file.clone()),
        ..base.clone()
    };
    let c = on.clone().validate().unwrap().shared_cache.unwrap();
    assert_eq!((c.url.as_str(), c.timeout), (url, DEFAULT_SHARED_CACHE_TIMEOUT));
    assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");

    let fields = |raw: RawServeConfig| {
        let err = raw.validate().unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
        err.problems.iter().map(|p| p.field).collect::<Vec<_>>()
    };
    let no_key = RawServeConfig { shared_cache_key_file: None, ..on.clone() };
    assert_eq!(fields(no_key), ["--shared-cache-key-file"]);
    let http = RawServeConfig { shared_cache: Some("http://:s3cret@redis:6379".into()), ..on.clone() };
    assert_eq!(fields(http), ["--shared-cache"]);
    let missing = RawServeConfig { shared_cache_key_file: Some(dir.path().join("nope")), ..on.clone() };
    assert_eq!(fields(missing), ["--shared-cache-key-file"]);
    let slow = RawServeConfig { shared_cache_timeout: Some("5s".into()), ..on.clone() };
    assert_eq!(fields(slow), ["--shared-cache-timeout"]);
    let orphan = RawServeConfig { shared_cache_key_file: Some(key_file.clone()), ..base.clone() };
    assert_eq!(fields(orphan), ["--shared-cache-key-file"]);
    // A CA file: for rediss:// only, and it must be there.
    let ca_file = dir.path().join("redis-ca.pem");
    std::fs::write(&ca_file, "PEM").unwrap();
    let tls = RawServeConfig {
        shared_cache: Some("rediss://:s3cret@redis.vouch.svc:6379".into()),
        shared_cache_ca_file: Some(ca_file.clone()),
        ..on.clone()
    };
    assert_eq!(tls.clone().validate().unwrap().shared_cache.unwrap().ca_file, Some(ca_file.clone()));
    let plain = RawServeConfig { shared_cache_ca_file: Some(ca_file.clone()), ..on.clone() };
    assert_eq!(fields(plain), ["--shared-cache-ca-file"]);
    let gone = RawServeConfig { shared_cache_ca_file: Some(dir.path().join("nope.pem")), ..tls };
    assert_eq!(fields(gone), ["--shared-cache-ca-file"]);
    let orphan_ca = RawServeConfig { shared_cache_ca_file: Some(ca_file), ..base.clone() };
    assert_eq!(fields(orphan_ca), ["--shared-cache-ca-file"]);
}

#[test]
fn the_otlp_endpoint_comes_from_the_flag_or_the_file_and_a_bad_one_is_named() {
    let (dir, cert, key) = files();
    let base = RawServeConfig {
        tls_cert: Some(cert),
        tls_key: Some(key),
        policy_dir: Some(dir.path().into()),
        ..Default::default()
    };
    // (The OTEL_* variables of this test process are not set by the test harness.)
    assert_eq!(base.clone().validate().unwrap().traces, None, "off by default");
    let file: RawServeConfig = serde_yaml::from_str("otlpEndpoint: http://collector:4318").unwrap();
    let c = base.clone().overlay(file).validate().unwrap();
    let traces = c.traces.unwrap();
    assert_eq!(traces.url.as_str(), "http://collector:4318/v1/traces");
    assert_eq!(traces.from, "--otlp-endpoint");
    let err = RawServeConfig { otlp_endpoint: Some("collector:4318".into()), ..base }.validate().unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(err.problems[0].field, "--otlp-endpoint");
    assert!(err.problems[0].message.starts_with("\"collector:4318\": "), "{err}");
}
