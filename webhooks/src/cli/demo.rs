//! `vouch demo`: the local demo. A real registry on loopback, an image signed with a fresh key by
//! vouch's cosign-compatible signer, the verdicts vouch reaches for it and for three bad cases, then the
//! admission webhook (`vouch serve`, embedded default policy) answering AdmissionReviews over TLS.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context as _;
use vouch_attest::cosign::{push_notation_signature, sign_image_with_key, signature_tag};
use vouch_attest::notation::sign::sign_jws;
use vouch_attest::notation::verify::JWS_MEDIA_TYPE;
use vouch_attest::notation::{Level, NotationAuthority, TargetArtifact, TrustStore, TrustedIdentity};
use vouch_attest::registry::{RegistryClient, OCI_MANIFEST};
use vouch_attest::sigstore_verify::Authority;
use vouch_attest::trust_root::TrustRoot;
use vouch_attest::verify::{ArtifactVerifier, Requirement, VerifierConfig, VerifyOptions};
use vouch_attest::{ArtifactRef, Digest, SigningKey};

use super::exit::{EXIT_ERROR, EXIT_OK, EXIT_REJECTED};
use crate::dev_registry::DevRegistry;

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the registry running after the demo (until Ctrl-C), to try `vouch verify` by hand.
    #[arg(long)]
    pub hold: bool,
}

/// Run the demo; exit 0 when every verdict is the expected one.
pub fn run(args: DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(demo(args)) {
        Ok(true) => ExitCode::from(EXIT_OK),
        Ok(false) => ExitCode::from(EXIT_REJECTED),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Push a minimal single-layer image built from `content` under `repository:tag`; returns it pinned.
pub async fn push_demo_image(
    client: &RegistryClient,
    host: &str,
    repository: &str,
    tag: &str,
    content: &[u8],
) -> anyhow::Result<ArtifactRef> {
    let r: ArtifactRef = format!("{host}/{repository}:{tag}").parse()?;
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/app"]},
        "rootfs": {"type": "layers", "diff_ids": [Digest::sha256_of(content).to_string()]}
    }))?;
    let config_digest = client.push_blob(&r, &config).await?;
    let layer_digest = client.push_blob(&r, content).await?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest.to_string(), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest.to_string(), "size": content.len()}]
    }))?;
    let digest = client.push_manifest(&r, &manifest, OCI_MANIFEST).await?;
    Ok(r.with_digest(digest))
}

/// Copy the config and layer blobs a manifest names from one repository to another.
async fn copy_blobs(
    client: &RegistryClient,
    from: &ArtifactRef,
    to: &ArtifactRef,
    manifest: &[u8],
) -> anyhow::Result<()> {
    let m: serde_json::Value = serde_json::from_slice(manifest)?;
    let config = m.get("config").into_iter();
    let layers = m.get("layers").and_then(|l| l.as_array()).into_iter().flatten();
    for desc in config.chain(layers) {
        let digest: Digest =
            desc.get("digest").and_then(|d| d.as_str()).context("descriptor without digest")?.parse()?;
        let blob = client.fetch_blob(from, &digest, 1024 * 1024).await?;
        client.push_blob(to, &blob).await?;
    }
    Ok(())
}

/// The subject of the demo's Notation signing certificate, and the trusted identity that names it.
const NOTATION_SUBJECT: &str = "CN=release,O=vouch-demo,ST=WA,C=US";
const NOTATION_IDENTITY: &str = "x509.subject: C=US, ST=WA, O=vouch-demo, CN=release";

/// What the demo's Notation signer leaves behind.
struct NotationDemo {
    trust_store_pem: String,
    /// A trust store directory laid out as `notation` keeps one (`truststore/x509/ca/<name>`).
    trust_store_dir: std::path::PathBuf,
    /// A current CRL of the demo CA (revoking nothing), for `--notation-crl`.
    crl_path: std::path::PathBuf,
}

/// Sign `image` as `notation sign` would, with a leaf of a fresh demo CA (JWS envelope, referrer of
/// artifact type `application/vnd.cncf.notary.signature`); the CA goes into a trust store under `dir`.
async fn notation_sign(
    client: &RegistryClient,
    image: &ArtifactRef,
    dir: &std::path::Path,
) -> anyhow::Result<NotationDemo> {
    let ca = crate::server::dev_pki::DevCa::new("vouch demo notation root")?;
    let leaf = ca.issue_code_signing(NOTATION_SUBJECT)?;
    let key = SigningKey::from_pkcs8_pem(&leaf.key_pem)?;
    let manifest = client.fetch_manifest(image).await?;
    let target = TargetArtifact {
        media_type: manifest.media_type.clone(),
        digest: manifest.digest.to_string(),
        size: u64::try_from(manifest.bytes.len())?,
        annotations: BTreeMap::new(),
    };
    let chain = [leaf.cert_der.clone(), ca.cert_der().to_vec()];
    let envelope = sign_jws(&key, &chain, &target, chrono::Utc::now(), None);
    let sig = push_notation_signature(client, image, JWS_MEDIA_TYPE, &envelope).await?;
    println!("  signed {} with Notation as {NOTATION_SUBJECT} (signature referrer {sig})", manifest.digest);
    let trust_store_dir = dir.join("notation/truststore/x509/ca/vouch-demo");
    std::fs::create_dir_all(&trust_store_dir)?;
    std::fs::write(trust_store_dir.join("vouch-demo-root.crt"), ca.cert_pem())?;
    let crl_path = dir.join("notation/vouch-demo-root.crl");
    std::fs::write(&crl_path, ca.empty_crl_der()?)?;
    Ok(NotationDemo { trust_store_pem: ca.cert_pem(), trust_store_dir, crl_path })
}

fn notation_authority(trust_store_pem: &str, identity: &str) -> anyhow::Result<Authority> {
    Ok(Authority::Notation(std::sync::Arc::new(NotationAuthority {
        trust_store: TrustStore::from_pem(trust_store_pem)?,
        tsa_trust_store: None,
        crls: Default::default(),
        identities: vec![identity.parse::<TrustedIdentity>()?],
        level: Level::Strict,
    })))
}

struct Case {
    what: &'static str,
    expect_verified: bool,
    verified: bool,
    detail: String,
}

async fn demo(args: DemoArgs) -> anyhow::Result<bool> {
    println!("vouch demo: starting Debian's docker-registry on loopback ...");
    let registry =
        DevRegistry::start().await.context("starting the registry (bash scripts/setup.sh installs it)")?;
    let host = registry.host();
    println!("  registry at http://{host} (plain HTTP is allowed for this loopback registry only)");

    let registry_config = registry.registry_config();
    let client = registry.client()?;
    let app = push_demo_image(&client, &host, "demo/app", "1.0", b"hello from a signed image\n").await?;
    let other = push_demo_image(&client, &host, "demo/other", "1.0", b"nobody signed me\n").await?;
    println!("  pushed {app}");
    println!("  pushed {other}");

    let key = SigningKey::generate();
    let dir = tempfile::tempdir()?;
    let pub_path = dir.path().join("cosign.pub");
    std::fs::write(&pub_path, key.public_key().to_pem())?;
    let sig = sign_image_with_key(&client, &app, &key, BTreeMap::new()).await?;
    println!(
        "  signed {} with a fresh ECDSA P-256 key {} (signature manifest {sig})",
        app.digest().map(ToString::to_string).unwrap_or_default(),
        key.public_key().fingerprint()
    );

    // The signature of `app`, copied onto `other`: same bytes, wrong subject.
    let app_sig_ref = signature_tag(&app, "sig")?;
    let app_sig = client.fetch_manifest(&app_sig_ref).await?;
    copy_blobs(&client, &app_sig_ref, &other, &app_sig.bytes).await?;
    client.push_manifest(&signature_tag(&other, "sig")?, &app_sig.bytes, &app_sig.media_type).await?;

    let verifier = ArtifactVerifier::new(VerifierConfig {
        registry: registry_config,
        trust_root: TrustRoot::public_good()?,
        cache: Default::default(),
        // Signed without a transparency log (nothing public is reachable here): cosign's
        // `--tlog-upload=false` / `--insecure-ignore-tlog`.
        options: VerifyOptions { require_tlog_for_keys: false, ..VerifyOptions::default() },
    })?;
    let right = Authority::Key(key.public_key());
    let wrong = Authority::Key(SigningKey::generate().public_key());
    let by_tag: ArtifactRef = format!("{host}/demo/app:1.0").parse()?;
    let other_by_tag: ArtifactRef = format!("{host}/demo/other:1.0").parse()?;

    let mut cases = Vec::new();
    for (what, image, authority, expect_verified) in [
        ("signed image, right key (by tag: resolved once, digest verified)", &by_tag, &right, true),
        ("signed image, another key", &by_tag, &wrong, false),
        ("image with a signature copied from another image", &other_by_tag, &right, false),
    ] {
        let verdict = verifier.verify(image, authority, &Requirement::Signature).await?;
        let detail = match &verdict.outcome {
            Ok(facts) => format!("{} ({} signature(s))", verdict.reference, facts.signatures.len()),
            Err(rejection) => rejection.to_string(),
        };
        cases.push(Case { what, expect_verified, verified: verdict.is_verified(), detail });
    }
    let notation = notation_sign(&client, &app, dir.path()).await?;
    for (what, identity, expect_verified) in [
        ("Notation-signed image, trusted identity", NOTATION_IDENTITY, true),
        (
            "Notation-signed image, another identity",
            "x509.subject: C=US, ST=WA, O=vouch-demo, CN=nightly",
            false,
        ),
    ] {
        let authority = notation_authority(&notation.trust_store_pem, identity)?;
        let verdict = verifier.verify(&by_tag, &authority, &Requirement::Signature).await?;
        let detail = match &verdict.outcome {
            Ok(facts) => facts.signatures.iter().map(|s| s.signer.to_string()).collect::<Vec<_>>().join(", "),
            Err(rejection) => rejection.to_string(),
        };
        cases.push(Case { what, expect_verified, verified: verdict.is_verified(), detail });
    }
    let unsigned = push_demo_image(&client, &host, "demo/unsigned", "1.0", b"no signature at all\n").await?;
    let verdict = verifier.verify(&unsigned, &right, &Requirement::Signature).await?;
    cases.push(Case {
        what: "unsigned image",
        expect_verified: false,
        verified: verdict.is_verified(),
        detail: verdict.outcome.as_ref().err().map(ToString::to_string).unwrap_or_default(),
    });

    println!();
    let mut all_as_expected = true;
    for c in &cases {
        let as_expected = c.verified == c.expect_verified;
        all_as_expected &= as_expected;
        println!(
            "{} {:<8} {}\n           {}",
            if as_expected { "ok  " } else { "FAIL" },
            if c.verified { "VERIFIED" } else { "REJECTED" },
            c.what,
            c.detail
        );
    }
    println!(
        "\nthe admission webhook, with the embedded default policy (images under demo/ need the demo key):"
    );
    for e in super::demo_webhook::run(dir.path(), &host, &key, &app).await? {
        all_as_expected &= e.as_expected;
        println!("{} {}\n           {}", if e.as_expected { "ok  " } else { "FAIL" }, e.what, e.detail);
    }

    let stats = verifier.registry_stats();
    let cache = verifier.cache_stats();
    println!(
        "\nregistry calls: {}; verdict cache: {} misses, {} hits",
        stats.calls, cache.misses, cache.hits
    );
    if args.hold {
        println!(
            "registry kept running; Ctrl-C to stop. Try:\n  vouch verify {by_tag} --key {} --insecure-registry {host} --insecure-ignore-tlog\n  vouch verify {by_tag} --notation-trust-store {} --notation-identity '{NOTATION_IDENTITY}' --insecure-registry {host}\n  vouch verify {by_tag} --notation-trust-store {} --notation-identity '{NOTATION_IDENTITY}' --notation-crl {} --insecure-registry {host}",
            pub_path.display(),
            notation.trust_store_dir.display(),
            notation.trust_store_dir.display(),
            notation.crl_path.display()
        );
        tokio::signal::ctrl_c().await?;
    }
    Ok(all_as_expected)
}
