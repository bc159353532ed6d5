//! Registry access against a real registry process (Debian's docker-registry) on loopback.
#![allow(clippy::unwrap_used, clippy::panic)] // test helpers: a panic is a failing test

use std::time::{Duration, Instant};

use base64::Engine as _;
use vouch_attest::registry::{
    Credentials, Descriptor, ImageIndex, ImageManifest, ManifestKind, Platform, RegistryClient,
    RegistryConfig, RegistryError, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST,
};
use vouch_attest::{ArtifactRef, Digest};
use vouch_webhooks::dev_registry::DevRegistry;

const BUNDLE_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
const SBOM_TYPE: &str = "application/vnd.cyclonedx+json";

fn client(registry: &DevRegistry, tweak: impl FnOnce(&mut RegistryConfig)) -> RegistryClient {
    let mut config = RegistryConfig {
        insecure_registries: vec![registry.host()],
        timeout: Duration::from_secs(5),
        ..RegistryConfig::default()
    };
    tweak(&mut config);
    RegistryClient::new(config).unwrap()
}

fn reference(registry: &DevRegistry, rest: &str) -> ArtifactRef {
    format!("{}/{rest}", registry.host()).parse().unwrap()
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: Digest::sha256_of(bytes),
        size: bytes.len() as u64,
        artifact_type: None,
        annotations: Default::default(),
        platform: None,
    }
}

/// Push a one-layer image for `arch` by digest and return (manifest bytes, digest, layer bytes).
async fn push_image(client: &RegistryClient, repo: &ArtifactRef, arch: &str) -> (Vec<u8>, Digest, Vec<u8>) {
    let config =
        format!(r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#);
    let layer = format!("layer for {arch}").into_bytes();
    let config_digest = client.push_blob(repo, config.as_bytes()).await.unwrap();
    let layer_digest = client.push_blob(repo, &layer).await.unwrap();
    assert_eq!(config_digest, Digest::sha256_of(config.as_bytes()));
    assert_eq!(layer_digest, Digest::sha256_of(&layer));
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: None,
        config: descriptor("application/vnd.oci.image.config.v1+json", config.as_bytes()),
        layers: vec![descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
        subject: None,
        annotations: Default::default(),
    };
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = Digest::sha256_of(&bytes);
    let pushed = client.push_manifest(&repo.with_digest(digest.clone()), &bytes, OCI_MANIFEST).await.unwrap();
    assert_eq!(pushed, digest);
    (bytes, digest, layer)
}

/// An artifact manifest (empty config, one layer) whose subject is `subject`.
async fn push_artifact_blobs(
    client: &RegistryClient,
    repo: &ArtifactRef,
    subject: &Descriptor,
    artifact_type: &str,
    payload: &[u8],
) -> Vec<u8> {
    client.push_blob(repo, b"{}").await.unwrap();
    client.push_blob(repo, payload).await.unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: Some(artifact_type.to_owned()),
        config: descriptor(OCI_EMPTY, b"{}"),
        layers: vec![descriptor(artifact_type, payload)],
        subject: Some(subject.clone()),
        annotations: [("org.opencontainers.image.created".to_owned(), "2026-11-22T00:00:00Z".to_owned())]
            .into(),
    };
    serde_json::to_vec(&manifest).unwrap()
}

/// Proves: blobs and a manifest pushed by tag resolve to the manifest's digest, and fetching by that digest
/// returns the exact bytes, which parse; blobs come back digest-checked and capped.
#[tokio::test]
async fn push_resolve_and_fetch_an_image_by_digest() {
    let registry = DevRegistry::start().await.unwrap();
    let client = client(&registry, |_| {});
    let repo = reference(&registry, "demo/app");
    let (bytes, digest, layer) = push_image(&client, &repo, "amd64").await;
    let tagged = repo.with_tag("v1").unwrap();
    assert_eq!(client.push_manifest(&tagged, &bytes, OCI_MANIFEST).await.unwrap(), digest);

    assert_eq!(client.resolve(&tagged).await.unwrap(), digest);
    let fetched = client.fetch_manifest(&tagged.with_digest(digest.clone())).await.unwrap();
    assert_eq!(fetched.digest, digest);
    assert_eq!(fetched.bytes, bytes);
    assert_eq!(fetched.media_type, OCI_MANIFEST);
    let ManifestKind::Image(manifest) = fetched.parse().unwrap() else {
        panic!("expected an image manifest")
    };
    assert_eq!(manifest.layers[0].digest, Digest::sha256_of(&layer));

    let blob = client.fetch_blob(&repo, &manifest.layers[0].digest, 1024).await.unwrap();
    assert_eq!(blob, layer);
    let capped = client.fetch_blob(&repo, &manifest.layers[0].digest, layer.len() - 1).await.unwrap_err();
    assert!(matches!(capped, RegistryError::TooLarge { .. }), "{capped}");

    let missing = client.resolve(&repo.with_tag("nope").unwrap()).await.unwrap_err();
    assert!(matches!(missing, RegistryError::NotFound { .. }), "{missing}");
    let stats = client.stats();
    assert!(stats.calls >= 8 && stats.errors == 2, "{stats:?}");
}

/// Proves: a pushed image index resolves, and its two platform manifests are listed with their platforms.
#[tokio::test]
async fn image_index_lists_its_platform_manifests() {
    let registry = DevRegistry::start().await.unwrap();
    let client = client(&registry, |_| {});
    let repo = reference(&registry, "demo/multi");
    let mut manifests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let (bytes, _, _) = push_image(&client, &repo, arch).await;
        let mut d = descriptor(OCI_MANIFEST, &bytes);
        d.platform = Some(Platform {
            architecture: arch.into(),
            os: "linux".into(),
            os_version: None,
            os_features: vec![],
            variant: None,
        });
        manifests.push(d);
    }
    let index = ImageIndex { manifests, ..ImageIndex::empty() };
    let index_bytes = serde_json::to_vec(&index).unwrap();
    let tagged = repo.with_tag("multi").unwrap();
    let index_digest = client.push_manifest(&tagged, &index_bytes, OCI_INDEX).await.unwrap();

    assert_eq!(client.resolve(&tagged).await.unwrap(), index_digest);
    let platforms = client.platform_manifests(&repo.with_digest(index_digest)).await.unwrap();
    let archs: Vec<_> =
        platforms.iter().map(|d| d.platform.as_ref().unwrap().architecture.as_str()).collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    // Each listed manifest is fetchable by its digest and is an image.
    for d in &platforms {
        let (_, kind) = client.fetch_parsed_manifest(&repo.with_digest(d.digest.clone())).await.unwrap();
        assert!(matches!(kind, ManifestKind::Image(_)));
    }
}

/// Proves: on a registry without the referrers API, push_referrer writes the `sha256-<hex>` tag index and
/// referrers() finds the artifacts, filtered by artifact type.
#[tokio::test]
async fn referrers_round_trip_through_the_tag_schema_fallback() {
    let registry = DevRegistry::start().await.unwrap();
    let client = client(&registry, |_| {});
    let repo = reference(&registry, "demo/signed");
    let (subject_bytes, subject_digest, _) = push_image(&client, &repo, "amd64").await;
    let subject_ref = repo.with_digest(subject_digest.clone());
    let subject_desc = descriptor(OCI_MANIFEST, &subject_bytes);

    assert!(client.referrers(&subject_ref, None).await.unwrap().is_empty());

    let bundle = push_artifact_blobs(&client, &repo, &subject_desc, BUNDLE_TYPE, b"{\"bundle\":1}").await;
    let bundle_digest = client.push_referrer(&subject_ref, &bundle, OCI_MANIFEST, BUNDLE_TYPE).await.unwrap();
    let sbom =
        push_artifact_blobs(&client, &repo, &subject_desc, SBOM_TYPE, b"{\"bomFormat\":\"CycloneDX\"}").await;
    let sbom_digest = client.push_referrer(&subject_ref, &sbom, OCI_MANIFEST, SBOM_TYPE).await.unwrap();
    // Pushing the same referrer again does not duplicate it.
    client.push_referrer(&subject_ref, &sbom, OCI_MANIFEST, SBOM_TYPE).await.unwrap();

    let all = client.referrers(&subject_ref, None).await.unwrap();
    let digests: Vec<_> = all.iter().map(|d| d.digest.clone()).collect();
    assert_eq!(digests, [bundle_digest.clone(), sbom_digest.clone()]);
    assert_eq!(all[0].artifact_type.as_deref(), Some(BUNDLE_TYPE));
    assert_eq!(all[0].annotations["org.opencontainers.image.created"], "2026-11-22T00:00:00Z");
    let bundles = client.referrers(&subject_ref, Some(BUNDLE_TYPE)).await.unwrap();
    assert_eq!(bundles.len(), 1);
    assert_eq!(bundles[0].digest, bundle_digest);
    assert!(client.referrers(&subject_ref, Some("application/x-none")).await.unwrap().is_empty());

    // The fallback really is the tag schema: the tag exists and the API was asked first.
    let tag = repo.with_tag(&subject_digest.cosign_tag_stem()).unwrap();
    assert!(client.resolve(&tag).await.is_ok());
    assert!(registry.count_requests("GET", "/referrers/") >= 1, "{}", registry.access_log());

    // A manifest whose subject is another image is refused.
    let other = repo.with_digest(Digest::sha256_of(b"another"));
    let e = client.push_referrer(&other, &bundle, OCI_MANIFEST, BUNDLE_TYPE).await.unwrap_err();
    assert!(matches!(e, RegistryError::InvalidReference { .. }), "{e}");
}

/// Proves: basic auth from Docker config JSON works; wrong or missing credentials give Unauthorized.
#[tokio::test]
async fn basic_auth_accepts_right_credentials_only() {
    let registry = DevRegistry::start_with_basic_auth("alice", "s3cret").await.unwrap();
    let config_json = |user: &str, pass: &str| {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        format!(r#"{{"auths":{{"http://{}":{{"auth":"{auth}"}}}}}}"#, registry.host())
    };
    let with = |json: String| {
        let creds = Credentials::from_docker_config_json(json.as_bytes()).unwrap();
        client(&registry, move |c| c.credentials = creds)
    };
    let repo = reference(&registry, "private/app");
    let good = with(config_json("alice", "s3cret"));
    let (_, digest, _) = push_image(&good, &repo, "amd64").await;
    assert_eq!(good.fetch_manifest(&repo.with_digest(digest.clone())).await.unwrap().digest, digest);

    for bad in [
        client(&registry, |_| {}),
        with(config_json("alice", "wrong")),
        with(config_json("mallory", "s3cret")),
    ] {
        let e = bad.fetch_manifest(&repo.with_digest(digest.clone())).await.unwrap_err();
        assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
        let e = bad.push_blob(&repo, b"not allowed").await.unwrap_err();
        assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    }
}

/// Proves: a plain-HTTP registry not listed as insecure is refused with InsecureNotAllowed, and no HTTP
/// request reaches it (only a TLS hello it cannot parse).
#[tokio::test]
async fn plain_http_registry_not_listed_as_insecure_is_refused() {
    let registry = DevRegistry::start().await.unwrap();
    let client = client(&registry, |c| c.insecure_registries.clear());
    let r = reference(&registry, "demo/app:v1");
    let e = client.resolve(&r).await.unwrap_err();
    assert!(matches!(e, RegistryError::InsecureNotAllowed { .. }), "{e}");
    assert!(!e.is_transient());
    let log = registry.access_log();
    for method in ["GET", "HEAD"] {
        assert_eq!(registry.count_requests(method, "/v2/demo/"), 0, "{log}");
    }
    // The harness's readiness probe is the only request the registry ever served.
    assert!(registry.count_requests("GET", "/v2/") <= 1, "{log}");
}

/// Proves: a closed port gives Unreachable, after the configured retries, well within the timeout.
#[tokio::test]
async fn closed_port_is_unreachable_within_the_timeout() {
    let mut registry = DevRegistry::start().await.unwrap();
    let client = client(&registry, |c| c.timeout = Duration::from_secs(3));
    registry.stop();
    let started = Instant::now();
    let e = client.resolve(&reference(&registry, "demo/app:v1")).await.unwrap_err();
    assert!(matches!(e, RegistryError::Unreachable { .. }), "{e}");
    assert!(e.is_transient());
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let stats = client.stats();
    assert_eq!((stats.calls, stats.errors, stats.retries), (1, 1, 2), "{stats:?}");
}

/// Proves: a server that accepts but never answers gives Timeout after the configured time.
#[tokio::test]
async fn silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let client = RegistryClient::new(RegistryConfig {
        insecure_registries: vec![host.clone()],
        timeout: Duration::from_millis(600),
        ..RegistryConfig::default()
    })
    .unwrap();
    let started = Instant::now();
    let e = client.resolve(&format!("{host}/demo/app:v1").parse().unwrap()).await.unwrap_err();
    assert!(matches!(e, RegistryError::Timeout { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    held.abort();
}

/// A scripted HTTP server standing in for a misbehaving registry: `answer` gets the request head
/// (`GET /v2/... HTTP/1.1` and headers) and the server's own host, and returns the raw HTTP response.
/// Returns the host and the server task.
async fn fake_registry(
    answer: impl Fn(&str, &str) -> Vec<u8> + Send + Sync + 'static,
) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let answer = std::sync::Arc::new(answer);
    let own_host = host.clone();
    let server = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answer.clone();
            let own_host = own_host.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let _ = socket.write_all(&answer(&request, &own_host)).await;
            });
        }
    });
    (host, server)
}

fn http_answer(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn plain_client(host: &str, tweak: impl FnOnce(&mut RegistryConfig)) -> RegistryClient {
    let mut config = RegistryConfig {
        insecure_registries: vec![host.to_owned()],
        timeout: Duration::from_secs(5),
        ..RegistryConfig::default()
    };
    tweak(&mut config);
    RegistryClient::new(config).unwrap()
}

/// Proves: 503 answers are retried the configured number of times, then reported as a Server error.
#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let manifest_requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = manifest_requests.clone();
    let (host, server) = fake_registry(move |line, _| {
        if line.starts_with("GET /v2/ ") {
            http_answer("200 OK", &[], b"")
        } else {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            http_answer("503 Service Unavailable", &[], b"")
        }
    })
    .await;
    let client = plain_client(&host, |c| c.retries = 2);
    let e = client.fetch_manifest(&format!("{host}/demo/app:v1").parse().unwrap()).await.unwrap_err();
    assert!(matches!(e, RegistryError::Server { status: 503, .. }), "{e}");
    assert_eq!(manifest_requests.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(client.stats().retries, 2);
    server.abort();
}

/// Proves: a body without Content-Length is cut off at the cap while streaming (never buffered whole).
#[tokio::test]
async fn chunked_body_without_length_is_cut_at_the_cap() {
    let (host, server) = fake_registry(|line, _| {
        if line.starts_with("GET /v2/ ") {
            return http_answer("200 OK", &[], b"");
        }
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: {OCI_MANIFEST}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        for _ in 0..256 {
            out.extend_from_slice(format!("400\r\n{}\r\n", " ".repeat(1024)).as_bytes());
        }
        out.extend_from_slice(b"0\r\n\r\n");
        out
    })
    .await;
    let client = plain_client(&host, |c| c.max_manifest_bytes = 4096);
    let e = client.fetch_manifest(&format!("{host}/demo/app:v1").parse().unwrap()).await.unwrap_err();
    assert!(matches!(e, RegistryError::TooLarge { limit: 4096, .. }), "{e}");
    server.abort();
}

/// Proves: content that does not hash to the digest it was asked by is rejected (blob by digest, manifest
/// by digest, and a tag whose Docker-Content-Digest header names other content).
#[tokio::test]
async fn content_not_matching_its_digest_is_rejected() {
    let genuine = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let tampered = genuine.replace("\"layers\":[]", "\"layers\":[ ]");
    let genuine_digest = Digest::sha256_of(genuine.as_bytes());
    let claimed = genuine_digest.to_string();
    let served = tampered.clone();
    let (host, server) = fake_registry(move |line, _| {
        if line.starts_with("GET /v2/ ") {
            http_answer("200 OK", &[], b"")
        } else {
            let headers = [("Content-Type", OCI_MANIFEST), ("Docker-Content-Digest", claimed.as_str())];
            http_answer("200 OK", &headers, served.as_bytes())
        }
    })
    .await;
    let client = plain_client(&host, |_| {});
    let repo: ArtifactRef = format!("{host}/demo/app").parse().unwrap();
    let tampered_digest = Digest::sha256_of(tampered.as_bytes()).to_string();
    let by_digest = repo.with_digest(genuine_digest.clone());
    let e = client.fetch_blob(&repo, &genuine_digest, 4096).await.unwrap_err();
    assert!(
        matches!(&e, RegistryError::DigestMismatch { expected, actual } if *expected == genuine_digest.to_string() && *actual == tampered_digest),
        "{e}"
    );
    let e = client.fetch_manifest(&by_digest).await.unwrap_err();
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
    let e = client.fetch_manifest(&repo.with_tag("v1").unwrap()).await.unwrap_err();
    assert!(matches!(e, RegistryError::DigestMismatch { .. }), "{e}");
    server.abort();
}

/// Proves: a manifest larger than the configured cap is refused with TooLarge.
#[tokio::test]
async fn manifest_over_the_cap_is_too_large() {
    let registry = DevRegistry::start().await.unwrap();
    let pusher = client(&registry, |_| {});
    let repo = reference(&registry, "demo/big");
    pusher.push_blob(&repo, b"{}").await.unwrap();
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.to_owned()),
        artifact_type: Some("application/x-big".to_owned()),
        config: descriptor(OCI_EMPTY, b"{}"),
        layers: vec![],
        subject: None,
        annotations: [("filler".to_owned(), "x".repeat(8192))].into(),
    };
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let tagged = repo.with_tag("big").unwrap();
    pusher.push_manifest(&tagged, &bytes, OCI_MANIFEST).await.unwrap();

    let small = client(&registry, |c| c.max_manifest_bytes = 4096);
    let e = small.fetch_manifest(&tagged).await.unwrap_err();
    assert!(matches!(e, RegistryError::TooLarge { limit: 4096, .. }), "{e}");
    assert_eq!(pusher.fetch_manifest(&tagged).await.unwrap().bytes, bytes);
}

/// Proves the bearer token dance: the registry's 401 challenge sends the client to the token realm with
/// its basic credentials, the token obtained authorizes the request, and it is reused for the next one;
/// without credentials the token endpoint refuses and the result is Unauthorized.
#[tokio::test]
async fn bearer_challenge_is_answered_with_a_token_from_the_realm() {
    let manifest =
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let token_requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = token_requests.clone();
    let basic = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    let (host, server) = fake_registry(move |request, own_host| {
        let head = request.to_ascii_lowercase();
        let challenge = format!(r#"Bearer realm="http://{own_host}/token",service="fake""#);
        let unauthorized = http_answer("401 Unauthorized", &[("WWW-Authenticate", &challenge)], b"");
        if request.starts_with("GET /token?") {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let scoped = head.contains("scope=repository%3ademo%2fapp%3apull");
            if scoped && head.contains(&format!("authorization: basic {}", basic.to_ascii_lowercase())) {
                return http_answer(
                    "200 OK",
                    &[("Content-Type", "application/json")],
                    br#"{"token":"good-token"}"#,
                );
            }
            return http_answer("401 Unauthorized", &[], b"");
        }
        if request.starts_with("GET /v2/demo/app/manifests/")
            && head.contains("authorization: bearer good-token")
        {
            return http_answer("200 OK", &[("Content-Type", OCI_INDEX)], manifest.as_bytes());
        }
        unauthorized
    })
    .await;
    let creds = Credentials::from_docker_config_json(
        format!(r#"{{"auths":{{"{host}":{{"username":"alice","password":"s3cret"}}}}}}"#).as_bytes(),
    )
    .unwrap();
    let client = plain_client(&host, |c| c.credentials = creds);
    let r: ArtifactRef = format!("{host}/demo/app:v1").parse().unwrap();
    for _ in 0..2 {
        let fetched = client.fetch_manifest(&r).await.unwrap();
        assert_eq!(fetched.bytes, manifest.as_bytes());
        assert_eq!(fetched.media_type, OCI_INDEX);
    }
    assert_eq!(token_requests.load(std::sync::atomic::Ordering::SeqCst), 1);

    let anonymous = plain_client(&host, |_| {});
    let e = anonymous.fetch_manifest(&r).await.unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    server.abort();
}

/// Proves: where the registry has the referrers API, its answer is used (all pages, following `Link`),
/// filtered by artifact type even when the registry ignores the filter, and the tag schema is not consulted.
#[tokio::test]
async fn referrers_api_is_used_with_pagination_and_filtering() {
    let subject = Digest::sha256_of(b"subject manifest");
    let (a, b) = (Digest::sha256_of(b"a"), Digest::sha256_of(b"b"));
    let entry = |d: &Digest, t: &str| {
        format!(r#"{{"mediaType":"{OCI_MANIFEST}","digest":"{d}","size":10,"artifactType":"{t}"}}"#)
    };
    let page1 = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#,
        entry(&a, BUNDLE_TYPE)
    );
    let page2 =
        format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{}]}}"#, entry(&b, SBOM_TYPE));
    let tag_lookups = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = tag_lookups.clone();
    let subject_path = format!("/v2/demo/app/referrers/{subject}");
    let (host, server) = fake_registry(move |request, _| {
        let line = request.lines().next().unwrap_or_default();
        if line.starts_with("GET /v2/ ") {
            http_answer("200 OK", &[], b"")
        } else if line.starts_with(&format!("GET {subject_path}?page=2")) {
            http_answer("200 OK", &[("Content-Type", OCI_INDEX)], page2.as_bytes())
        } else if line.starts_with(&format!("GET {subject_path}")) {
            let link = format!(r#"<{subject_path}?page=2>; rel="next""#);
            http_answer("200 OK", &[("Content-Type", OCI_INDEX), ("Link", &link)], page1.as_bytes())
        } else {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            http_answer("404 Not Found", &[], b"")
        }
    })
    .await;
    let client = plain_client(&host, |_| {});
    let r: ArtifactRef = format!("{host}/demo/app@{subject}").parse().unwrap();
    let all = client.referrers(&r, None).await.unwrap();
    assert_eq!(all.iter().map(|d| d.digest.clone()).collect::<Vec<_>>(), [a.clone(), b]);
    let bundles = client.referrers(&r, Some(BUNDLE_TYPE)).await.unwrap();
    assert_eq!(bundles.iter().map(|d| d.digest.clone()).collect::<Vec<_>>(), [a]);
    assert_eq!(tag_lookups.load(std::sync::atomic::Ordering::SeqCst), 0);
    // A tag reference cannot have referrers.
    let e = client.referrers(&format!("{host}/demo/app:v1").parse().unwrap(), None).await.unwrap_err();
    assert!(matches!(e, RegistryError::InvalidReference { .. }), "{e}");
    server.abort();
}

/// Proves: a registry that mishandles HEAD (405) or omits Docker-Content-Digest still resolves a tag,
/// to the digest of the manifest it serves.
#[tokio::test]
async fn resolve_falls_back_to_hashing_the_manifest() {
    let manifest =
        r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    for head_status in ["405 Method Not Allowed", "200 OK"] {
        let (host, server) = fake_registry(move |request, _| {
            if request.starts_with("GET /v2/ ") {
                http_answer("200 OK", &[], b"")
            } else if request.starts_with("HEAD ") {
                http_answer(head_status, &[("Content-Type", OCI_INDEX)], b"")
            } else {
                http_answer("200 OK", &[("Content-Type", OCI_INDEX)], manifest.as_bytes())
            }
        })
        .await;
        let client = plain_client(&host, |_| {});
        let digest = client.resolve(&format!("{host}/demo/app:v1").parse().unwrap()).await.unwrap();
        assert_eq!(digest, Digest::sha256_of(manifest.as_bytes()), "HEAD answered {head_status}");
        server.abort();
    }
}
