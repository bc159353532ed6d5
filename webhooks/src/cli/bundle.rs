//! `vouch bundle create|verify`: offline verification bundles for air-gapped sites.
//!
//! `create` runs the same engine as the webhooks over the given references (or every artifact of the
//! given manifests) with a registry client that records every read, then writes what was read, the
//! policies and the trusted root into one signed bundle. `verify` checks a bundle and lists what it
//! covers. Exit codes: 0 ok, 1 the bundle was refused (a check failed), 2 usage, configuration or I/O.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::json;
use vouch_attest::cache::CacheConfig;
use vouch_attest::offline::{
    write_bundle, BundleError, BundleSpec, CoveredArtifact, OfflineBundle, OpenOptions, Recorder,
};
use vouch_attest::registry::{ManifestKind, RegistryClient, RegistryConfig};
use vouch_attest::trust_root::TrustRoot;
use vouch_attest::verify::{ArtifactVerifier, VerifierConfig, VerifyOptions};
use vouch_attest::{ArtifactRef, PublicKey, SigningKey};
use vouch_policies::manifests::{ManifestObject, ManifestReader, NamespaceFacts, NAMESPACE_NAME_LABEL};
use vouch_policies::{
    AdmissionInput, Decision, Engine, EngineConfig, ExtractionConfig, FindingResult, GroupVersionKind,
    Operation, PolicySet,
};

use super::exit::{EXIT_ERROR, EXIT_OK, EXIT_REJECTED};
use super::registry_args::{positive_duration, FlagFileError, RegistryArgs};
use crate::server::config::parse_duration;

/// Default lifetime of a bundle.
pub const DEFAULT_EXPIRY: &str = "30d";
/// Default cap on what one bundle records (manifests and blobs).
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024 * 1024;
/// Largest policy or key file read.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Bundle commands.
#[derive(Debug, Subcommand)]
pub enum BundleCommand {
    /// On a connected machine: verify references (or the artifacts of manifests) and record everything
    /// verification read, with the policies and the trusted root, into one bundle file.
    Create(Box<CreateArgs>),
    /// Check a bundle's integrity and signature and list what it covers.
    Verify(VerifyArgs),
}

/// `vouch bundle create` arguments.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// References to cover (`registry/repository[:tag][@digest]`).
    pub references: Vec<String>,
    /// Also cover every artifact the manifests in these files or directories reference (`-` = stdin).
    #[arg(short = 'f', long = "filename")]
    pub files: Vec<String>,
    /// Policy file or directory (YAML); repeatable. The bundle carries them.
    #[arg(long = "policy", required = true)]
    pub policies: Vec<PathBuf>,
    /// Where to write the bundle.
    #[arg(short = 'o', long)]
    pub output: PathBuf,
    /// Sign the bundle with this ECDSA P-256 private key (PKCS#8 PEM).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Lifetime of the bundle, e.g. `30d`, `12h`.
    #[arg(long, default_value = DEFAULT_EXPIRY)]
    pub expires: String,
    /// Public keys (PEM) to carry along for reference; repeatable.
    #[arg(long = "carry-key")]
    pub carry_keys: Vec<PathBuf>,
    /// Extractors for custom kinds and extra fetcher profiles (YAML; as `vouch serve` and `vouch check`).
    #[arg(long)]
    pub extraction_config: Option<PathBuf>,
    /// Also record image layers and configs (not needed for verification).
    #[arg(long)]
    pub include_layers: bool,
    /// Namespace of objects without one, and of the references given directly.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Registries, credentials and the trust root in use (the bundle carries it).
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Key-based signatures need no Rekor entry (cosign's `--insecure-ignore-tlog`).
    #[arg(long)]
    pub insecure_ignore_tlog: bool,
    /// Time allowed for each object's verification.
    #[arg(long, default_value = "60s", value_parser = positive_duration)]
    pub timeout_budget: Duration,
    /// Most bytes of manifests and blobs recorded.
    #[arg(long, default_value_t = DEFAULT_MAX_BYTES)]
    pub max_bytes: u64,
}

/// Output format of `bundle verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// For people.
    Text,
    /// For programs.
    Json,
}

/// `vouch bundle verify` arguments.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The bundle file.
    pub bundle: PathBuf,
    /// The bundle's public key (PEM): the bundle must be signed with it.
    #[arg(long)]
    pub bundle_key: Option<PathBuf>,
    /// Without --bundle-key, list a signed bundle without checking its signature.
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub output: ListFormat,
}

/// Run a bundle command.
pub fn run(command: BundleCommand) -> ExitCode {
    match command {
        BundleCommand::Create(args) => create(*args),
        BundleCommand::Verify(args) => verify(args),
    }
}

/// A usage, configuration or I/O problem (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A value cannot be used.
    #[error("{0}")]
    Invalid(String),
}

fn read_capped(path: &Path) -> Result<Vec<u8>, UsageError> {
    use std::io::Read as _;
    let err = |source| UsageError::Read { path: path.to_path_buf(), source };
    let mut bytes = Vec::new();
    std::fs::File::open(path).map_err(err)?.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(err)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(UsageError::Invalid(format!("{} is larger than {MAX_FILE_BYTES} bytes", path.display())));
    }
    Ok(bytes)
}

fn read_text(path: &Path) -> Result<String, UsageError> {
    String::from_utf8(read_capped(path)?)
        .map_err(|_| UsageError::Invalid(format!("{} is not UTF-8", path.display())))
}

/// Read the bundle public key (PEM).
pub fn read_bundle_key(path: &Path) -> Result<PublicKey, UsageError> {
    PublicKey::from_pem(&read_text(path)?)
        .map_err(|e| UsageError::Invalid(format!("{}: not a public key: {e}", path.display())))
}

/// Policy files of `--policy` arguments: (unique name, YAML). A directory gives its `*.yaml`, `*.yml`
/// and `*.json` files (not hidden, sorted, not recursive, as `vouch serve --policy-dir` reads them).
pub fn read_policy_files(paths: &[PathBuf]) -> Result<Vec<(String, String)>, UsageError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let err = |source| UsageError::Read { path: path.clone(), source };
            let mut found = Vec::new();
            for entry in std::fs::read_dir(path).map_err(err)? {
                let p = entry.map_err(err)?.path();
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let wanted = [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e));
                if !name.starts_with('.') && wanted && p.is_file() {
                    found.push(p);
                }
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for file in files {
        let base = file.file_name().and_then(|n| n.to_str()).unwrap_or("policy.yaml").to_owned();
        let mut name = base.clone();
        let mut n = 1;
        while out.iter().any(|(existing, _)| *existing == name) {
            n += 1;
            name = format!("{n}-{base}");
        }
        out.push((name, read_text(&file)?));
    }
    Ok(out)
}

/// The policies of `files` compiled, and the policy-language features they use (the bundle lists them).
fn policy_set_from(files: &[(String, String)]) -> (PolicySet, Vec<String>) {
    let mut resources = vouch_policies::PolicyResources::default();
    for (name, yaml) in files {
        resources.add_yaml_str(yaml, name);
    }
    let features = resources.policy_features().into_iter().map(str::to_owned).collect();
    (PolicySet::compile(resources, &vouch_policies::Secrets::none()), features)
}

/// A pod naming `references` as containers: the same input an admission request for it would give.
fn pod_of(references: &[String], namespace: &str) -> AdmissionInput {
    let containers: Vec<_> =
        references.iter().enumerate().map(|(i, r)| json!({"name": format!("c{i}"), "image": r})).collect();
    let pod = GroupVersionKind { group: String::new(), version: "v1".into(), kind: "Pod".into() };
    AdmissionInput::new(Operation::Create, pod, Some(namespace), "vouch-bundle-create")
        .with_uid("vouch-bundle-create")
        .with_object(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "vouch-bundle-create", "namespace": namespace},
            "spec": {"containers": containers}}))
}

fn create(args: CreateArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(create_bundle(&args)) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Why `bundle create` failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Arguments or files.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The bundle could not be written.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Verification could not be carried out, so the bundle would be incomplete.
    #[error("{0}")]
    Incomplete(String),
}

async fn create_bundle(args: &CreateArgs) -> Result<String, CreateError> {
    let invalid = |m: String| CreateError::Usage(UsageError::Invalid(m));
    if args.references.is_empty() && args.files.is_empty() {
        return Err(invalid("nothing to cover: give references and/or -f manifests".into()));
    }
    let lifetime = parse_lifetime(&args.expires).map_err(|e| invalid(format!("--expires: {e}")))?;
    if lifetime.is_zero() {
        return Err(invalid("--expires: must be longer than zero".into()));
    }
    let budget = args.timeout_budget;
    let signing_key =
        match &args.key {
            Some(p) => Some(SigningKey::from_pkcs8_pem(&read_text(p)?).map_err(|e| {
                invalid(format!("{}: not an ECDSA P-256 PKCS#8 private key: {e}", p.display()))
            })?),
            None => None,
        };
    let flag_file = |e: FlagFileError| invalid(e.to_string());
    let trusted_root_json = args.registry.trusted_root_json().map_err(flag_file)?;
    let trust_root =
        TrustRoot::from_json(&trusted_root_json).map_err(|e| invalid(format!("trusted root: {e}")))?;
    let keys = args
        .carry_keys
        .iter()
        .map(|p| {
            let pem = read_text(p)?;
            PublicKey::from_pem(&pem).map_err(|e| UsageError::Invalid(format!("{}: {e}", p.display())))?;
            let label = p.file_name().and_then(|n| n.to_str()).unwrap_or("key.pem").to_owned();
            Ok((label, pem))
        })
        .collect::<Result<Vec<_>, UsageError>>()?;
    let policy_files = read_policy_files(&args.policies)?;
    let (policies, policy_features) = policy_set_from(&policy_files);
    if !policies.problems().is_empty() {
        let list: Vec<String> = policies
            .problems()
            .iter()
            .map(|p| format!("{} {}: {}", p.kind, p.name, p.problems.join("; ")))
            .collect();
        return Err(invalid(format!("the policies have problems:\n  {}", list.join("\n  "))));
    }

    let recorder = Recorder::new(args.max_bytes);
    // Each call keeps the client's own timeout; `budget` bounds each object's verification.
    let registry = args.registry.registry_config(RegistryConfig::default().timeout).map_err(flag_file)?;
    let client = RegistryClient::recording(registry.clone(), recorder.clone())
        .map_err(|e| invalid(format!("registry client: {e}")))?;
    let options =
        VerifyOptions { require_tlog_for_keys: !args.insecure_ignore_tlog, ..VerifyOptions::default() };
    let verifier = ArtifactVerifier::with_registry_client(
        VerifierConfig { registry, trust_root, cache: CacheConfig::default(), options },
        client.clone(),
    )
    .map_err(|e| invalid(format!("verifier: {e}")))?;
    let extraction = match &args.extraction_config {
        Some(path) => {
            ExtractionConfig::read_file(path).map_err(|e| invalid(format!("--extraction-config: {e}")))?
        }
        None => ExtractionConfig::default(),
    };
    let engine =
        Engine::new(EngineConfig { budget, extraction, ..EngineConfig::default() }, policies, verifier);

    // The inputs: one pod for the references given, and every object of the manifests.
    let mut inputs = Vec::new();
    if !args.references.is_empty() {
        inputs.push(pod_of(&args.references, &args.namespace));
    }
    if !args.files.is_empty() {
        let objects = ManifestReader::read_paths(&args.files, std::io::stdin())
            .map_err(|e| invalid(format!("manifests: {e}")))?;
        // The same inputs as `vouch check` builds: Namespace objects among the manifests give their
        // namespace's labels and annotations.
        let defined: BTreeMap<String, NamespaceFacts> =
            objects.iter().filter_map(ManifestObject::namespace_facts).collect();
        for (i, o) in objects.iter().enumerate() {
            let ns = o.namespace_or(&args.namespace).unwrap_or_default();
            let facts = defined.get(&ns).cloned().unwrap_or_else(|| NamespaceFacts {
                // Taken as known: a policy whose selector these labels do not match adds nothing to the
                // bundle (bundle create gathers material; it decides nothing).
                labels: Some(BTreeMap::from([(NAMESPACE_NAME_LABEL.to_owned(), ns.clone())])),
                annotations: BTreeMap::new(),
            });
            inputs.push(o.to_input_with(format!("bundle-{i}"), &args.namespace, &facts));
        }
    }

    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut covered: BTreeMap<String, CoveredArtifact> = BTreeMap::new();
    for input in &inputs {
        let decision = engine.evaluate(input).await;
        for f in &decision.findings {
            if matches!(f.result, FindingResult::Error) {
                errors.push(format!("{}: {} ({})", f.reference, f.reason, f.requirement));
            }
        }
        lines.extend(describe(input, &decision));
        for reference in artifact_references(&decision) {
            if covered.contains_key(&reference) {
                continue;
            }
            let Ok(r) = reference.parse::<ArtifactRef>() else { continue };
            // The covered artifact's manifest, read through the recording client so the bundle holds it.
            match client.fetch_manifest(&r).await {
                Ok(m) => {
                    if args.include_layers {
                        record_layers(&client, &r, &m.parse().ok()).await;
                    }
                    covered.insert(
                        reference.clone(),
                        CoveredArtifact { reference, digest: m.digest, media_type: m.media_type },
                    );
                }
                Err(e) => errors.push(format!("{reference}: {e}")),
            }
        }
    }
    // References given directly are covered even when no policy names them (no-match then decides the
    // same way on the air-gapped side, and the listing shows them).
    for reference in &args.references {
        let r = reference.parse::<ArtifactRef>().map_err(|e| invalid(format!("{reference}: {e}")))?;
        match client.fetch_manifest(&r).await {
            Ok(m) if covered.values().any(|a| a.digest == m.digest) => {}
            Ok(m) => {
                if args.include_layers {
                    record_layers(&client, &r, &m.parse().ok()).await;
                }
                let pinned = r.with_digest(m.digest.clone()).to_string();
                covered.insert(
                    pinned.clone(),
                    CoveredArtifact { reference: pinned, digest: m.digest, media_type: m.media_type },
                );
            }
            Err(e) => errors.push(format!("{reference}: {e}")),
        }
    }
    if !errors.is_empty() {
        return Err(CreateError::Incomplete(format!(
            "verification could not be carried out, the bundle would be incomplete:\n  {}",
            errors.join("\n  ")
        )));
    }
    let now = chrono::Utc::now();
    let expires =
        now + chrono::Duration::from_std(lifetime).map_err(|_| invalid("--expires: too long".into()))?;
    let spec = BundleSpec {
        recording: recorder.snapshot().map_err(BundleError::from)?,
        artifacts: covered.into_values().collect(),
        policies: policy_files,
        policy_features,
        trusted_root_json: Some(trusted_root_json),
        keys,
        created: now,
        expires,
    };
    let index = write_bundle(&spec, signing_key.as_ref(), &args.output)?;
    lines.push(format!(
        "wrote {}: {} artifacts, {} manifests, {} blobs, {} policy files, {}, expires {}",
        args.output.display(),
        index.artifacts.len(),
        index.manifests.len(),
        index.blobs.len() - index.manifests.len(),
        index.policies.len(),
        if signing_key.is_some() { "signed" } else { "UNSIGNED" },
        index.expires.to_rfc3339(),
    ));
    Ok(lines.join("\n"))
}

/// A bundle lifetime: `<n>d`, `<n>h`, `<n>w`, or anything [`parse_duration`] reads (`90m`, `3600s`).
fn parse_lifetime(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let unit = |suffix: &str, secs: u64| {
        s.strip_suffix(suffix).and_then(|n| n.parse::<u64>().ok()).and_then(|n| n.checked_mul(secs))
    };
    match unit("w", 7 * 86400).or_else(|| unit("d", 86400)).or_else(|| unit("h", 3600)) {
        Some(secs) => Ok(std::time::Duration::from_secs(secs)),
        None => parse_duration(s).map_err(|_| format!("{s:?} is not a lifetime (e.g. 30d, 12h, 2w)")),
    }
}

/// The references a decision verified (as resolved), in order, once each.
fn artifact_references(decision: &Decision) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in decision.findings.iter().chain(&decision.audit) {
        if f.reference.is_empty() || out.contains(&f.reference) {
            continue;
        }
        out.push(f.reference.clone());
    }
    out
}

/// Read an image's config and layers (of every platform of an index) through the recording client.
async fn record_layers(client: &RegistryClient, r: &ArtifactRef, kind: &Option<ManifestKind>) {
    let mut images = Vec::new();
    match kind {
        Some(ManifestKind::Image(m)) => images.push((r.clone(), m.clone())),
        Some(ManifestKind::Index(index)) => {
            for d in index.platform_manifests() {
                let platform = r.with_digest(d.digest.clone());
                if let Ok((_, ManifestKind::Image(m))) = client.fetch_parsed_manifest(&platform).await {
                    images.push((platform, m));
                }
            }
        }
        None => {}
    }
    for (image, m) in images {
        for d in std::iter::once(&m.config).chain(&m.layers) {
            if let Err(e) = client.fetch_blob(&image, &d.digest, usize::MAX).await {
                tracing::warn!(error = %e, blob = %d.digest, "layer not recorded");
            }
        }
    }
}

/// One line per finding of a decision.
fn describe(input: &AdmissionInput, decision: &Decision) -> Vec<String> {
    let object = format!("{} {}", input.kind.kind, input.name);
    let mut lines: Vec<String> = decision
        .findings
        .iter()
        .map(|f| {
            let result = match f.result {
                FindingResult::Pass => "pass",
                FindingResult::Fail => "FAIL",
                FindingResult::Error => "ERROR",
            };
            format!("{object}: {result} {} {} [{}]: {}", f.reference, f.requirement, f.policy, f.reason)
        })
        .collect();
    if !decision.allowed {
        lines.push(format!("{object}: would be denied: {}", decision.message.clone().unwrap_or_default()));
    }
    lines
}

fn verify(args: VerifyArgs) -> ExitCode {
    let key = match args.bundle_key.as_deref().map(read_bundle_key).transpose() {
        Ok(k) => k,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let options = OpenOptions { allow_unsigned: args.allow_unsigned, ..OpenOptions::new(key) };
    let bundle = match OfflineBundle::open_with(&args.bundle, &options) {
        Ok(b) => b,
        Err(BundleError::Io { path, source }) => {
            eprintln!("error: cannot read {}: {source}", path.display());
            return ExitCode::from(EXIT_ERROR);
        }
        Err(e) => {
            eprintln!("bundle {} REFUSED: {e}", args.bundle.display());
            return ExitCode::from(EXIT_REJECTED);
        }
    };
    let contents = bundle.contents();
    match args.output {
        ListFormat::Json => match serde_json::to_string_pretty(&contents) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        },
        ListFormat::Text => {
            let signature = match (&contents.signed_by, contents.signed) {
                (Some(fp), _) => format!("signature verified (key {fp})"),
                (None, true) => "signed, signature NOT checked (no --bundle-key)".to_owned(),
                (None, false) => "UNSIGNED (integrity checked only)".to_owned(),
            };
            println!("bundle {}: OK", args.bundle.display());
            println!("  {signature}");
            println!(
                "  created {}, expires {}",
                contents.created.to_rfc3339(),
                contents.expires.to_rfc3339()
            );
            println!(
                "  {} manifests, {} other blobs ({} bytes of content), {} tags, {} referrers answers",
                contents.manifests, contents.blobs, contents.content_bytes, contents.tags, contents.referrers
            );
            if let Some(root) = &contents.trusted_root {
                println!("  trusted root {root}");
            }
            println!(
                "  policies: {}",
                if contents.policies.is_empty() { "-".into() } else { contents.policies.join(", ") }
            );
            if !contents.keys.is_empty() {
                println!("  keys: {}", contents.keys.join(", "));
            }
            println!("  artifacts:");
            for a in &contents.artifacts {
                println!("    {} -> {} ({})", a.reference, a.digest, a.media_type);
            }
        }
    }
    ExitCode::from(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_files_get_unique_names_and_directories_are_listed_sorted() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("p.yaml"), "x: 1\n").unwrap();
        std::fs::write(a.join("o.yml"), "x: 2\n").unwrap();
        std::fs::write(a.join(".hidden.yaml"), "x: 3\n").unwrap();
        std::fs::write(a.join("notes.txt"), "x: 4\n").unwrap();
        std::fs::write(b.join("p.yaml"), "x: 5\n").unwrap();
        let files = read_policy_files(&[a, b]).unwrap();
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["o.yml", "p.yaml", "2-p.yaml"]);
        assert_eq!(files[2].1, "x: 5\n");
    }

    #[test]
    fn lifetimes_read_days_hours_weeks_and_short_durations() {
        assert_eq!(parse_lifetime("30d").unwrap().as_secs(), 30 * 86400);
        assert_eq!(parse_lifetime("12h").unwrap().as_secs(), 12 * 3600);
        assert_eq!(parse_lifetime("2w").unwrap().as_secs(), 14 * 86400);
        assert_eq!(parse_lifetime("90s").unwrap().as_secs(), 90);
        assert!(parse_lifetime("soon").unwrap_err().contains("not a lifetime"));
    }

    #[test]
    fn references_become_one_pod() {
        let input = pod_of(&["reg.example/a:1".into(), "reg.example/b:2".into()], "prod");
        let object = input.object.unwrap().read().clone();
        assert_eq!(object["spec"]["containers"][1]["image"], "reg.example/b:2");
        assert_eq!(input.namespace.as_deref(), Some("prod"));
        assert_eq!(
            input.namespace_labels.unwrap_or_default().get(NAMESPACE_NAME_LABEL).map(String::as_str),
            Some("prod")
        );
    }
}
