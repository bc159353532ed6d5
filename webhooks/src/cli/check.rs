//! `vouch check`: GitOps pre-sync and CI checks of manifests against policies, with no cluster. The
//! manifests are read ([`vouch_policies::manifests`]), each object becomes the CREATE admission input the
//! webhook would build, and the same [`Engine`] decides (same extraction, verification, cache and
//! decision code); only the front (files instead of AdmissionReviews) and the back (reports instead of
//! responses) differ.
//!
//! Exit codes: 0 no violations; 1 violations in enforce-mode policies (or warnings with `--fail-on-warn`);
//! 2 errors (unreadable manifests, invalid policies, bad flags).

mod bundle_source;
mod error;
pub mod junit;
mod policies;
pub mod report;
pub mod sarif;
pub mod text;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt as _;
use vouch_attest::verify::{ArtifactVerifier, VerifierConfig, VerifyOptions};
use vouch_policies::extract::{extract_with, Extracted};
use vouch_policies::manifests::{ManifestObject, ManifestReader, NamespaceFacts, NAMESPACE_NAME_LABEL};
use vouch_policies::{Engine, EngineConfig, ExtractionConfig, NoMatchAction};

pub use error::CheckError;
pub use policies::{compile_policies, load_policies};
pub use report::{CheckReport, ObjectReport, Outcome};

use super::bundle_args::BundleArgs;
use super::exit::EXIT_ERROR;
use super::registry_args::{positive_duration, RegistryArgs};

/// Objects evaluated at once (the verifier's cache and single-flight verify each image once).
pub const CONCURRENCY: usize = 8;
/// Default time budget of one object's evaluation.
pub const DEFAULT_TIMEOUT_BUDGET: Duration = Duration::from_secs(30);

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A readable summary.
    Text,
    /// The report as JSON (schema `vouch.dev/check/v1`).
    Json,
    /// SARIF 2.1.0 (code scanning).
    Sarif,
    /// JUnit XML (CI test reports).
    Junit,
}

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Files or directories of manifests (YAML or JSON, recursively); `-` for stdin. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
    /// Policy file or directory (ClusterSupplyChainPolicy, SupplyChainPolicy, TrustRoot). Repeatable.
    #[arg(short = 'p', long = "policy")]
    pub policies: Vec<PathBuf>,
    /// The offline bundle to verify from (`--bundle`, `--bundle-key`, `--bundle-allow-unsigned`).
    #[command(flatten)]
    pub offline: BundleArgs,
    /// Extractors for custom kinds and extra init-container fetcher profiles (YAML; as `vouch serve`).
    #[arg(long)]
    pub extraction_config: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Warnings (warn-mode findings) fail the check too (exit 1).
    #[arg(long)]
    pub fail_on_warn: bool,
    /// Namespace of objects that do not name one.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Labels of namespaces not defined in the manifests, e.g. `env=prod,team=shop`.
    #[arg(long, value_delimiter = ',')]
    pub namespace_labels: Vec<String>,
    /// Artifacts no policy covers: allow, warn or deny.
    #[arg(long, value_enum, default_value_t = NoMatch::Allow)]
    pub no_match: NoMatch,
    /// Registries, credentials and trust root (live verification; not with --bundle).
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Time budget of one object's evaluation, e.g. `30s`.
    #[arg(long, default_value = "30s", value_parser = positive_duration)]
    pub timeout_budget: Duration,
    /// Dry run: every policy acts as audit; findings are reported, nothing fails.
    #[arg(long)]
    pub dry_run: bool,
    /// Text output: also list the objects that were skipped.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// `--no-match` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NoMatch {
    /// Admit silently.
    Allow,
    /// Admit with a warning.
    Warn,
    /// Deny.
    Deny,
}

impl From<NoMatch> for NoMatchAction {
    fn from(n: NoMatch) -> Self {
        match n {
            NoMatch::Allow => Self::Allow,
            NoMatch::Warn => Self::Warn,
            NoMatch::Deny => Self::Deny,
        }
    }
}

/// Options of an evaluation (what the webhook gets from its cluster, here from flags).
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    /// Namespace of objects without one.
    pub default_namespace: String,
    /// Labels of namespaces the manifests do not define (`--namespace-labels`); `None`: unknown, so a
    /// policy's namespaceSelector cannot be evaluated for them and its findings go to its failure policy.
    pub namespace_labels: Option<BTreeMap<String, String>>,
    /// Objects evaluated at once.
    pub concurrency: usize,
}

impl Default for EvaluateOptions {
    fn default() -> Self {
        Self { default_namespace: "default".into(), namespace_labels: None, concurrency: CONCURRENCY }
    }
}

/// Decide on every object with `engine`, `concurrency` at a time, results in input order. The admission
/// input of each object is what the webhook would build for its CREATE; Namespace objects among the
/// manifests give their namespace's labels (plus `kubernetes.io/metadata.name`, as the API server adds).
pub async fn evaluate_objects(
    engine: &Engine,
    objects: &[ManifestObject],
    options: &EvaluateOptions,
) -> (Vec<ObjectReport>, usize) {
    let defined: BTreeMap<String, NamespaceFacts> =
        objects.iter().filter_map(ManifestObject::namespace_facts).collect();
    let facts_of = |ns: &str| {
        defined.get(ns).cloned().unwrap_or_else(|| {
            let labels = options.namespace_labels.clone().map(|mut labels| {
                labels.insert(NAMESPACE_NAME_LABEL.to_owned(), ns.to_owned());
                labels
            });
            NamespaceFacts { labels, annotations: BTreeMap::new() }
        })
    };
    // The engine's own extraction (same configuration): what it skips is reported as skipped, and
    // artifacts are counted. An invalid configuration counts nothing; the engine fails those objects.
    let extraction = engine.extraction();
    let mut distinct = BTreeSet::new();
    let mut jobs = Vec::with_capacity(objects.len());
    for (i, object) in objects.iter().enumerate() {
        let ns = object.namespace_or(&options.default_namespace).unwrap_or_default();
        let input =
            object.to_input_with(format!("vouch-check-{i}"), &options.default_namespace, &facts_of(&ns));
        let (artifacts, skip) = match extraction.map(|c| extract_with(&input, c)) {
            Some(Ok(Extracted { skip: Some(why), .. })) => (0, Some(why)),
            Some(Ok(found)) => {
                distinct.extend(found.artifacts.iter().map(|a| a.image.clone()));
                (found.artifacts.len(), None)
            }
            Some(Err(_)) | None => (0, None),
        };
        jobs.push((object, input, artifacts, skip));
    }
    let reports = futures::stream::iter(jobs)
        .map(|(object, input, artifacts, skip)| async move {
            let decision = engine.evaluate(&input).await;
            ObjectReport::new(object, input.namespace.clone(), artifacts, skip, decision)
        })
        .buffered(options.concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    (reports, distinct.len())
}

/// Parse `k=v` pairs.
pub fn parse_labels(pairs: &[String]) -> Result<BTreeMap<String, String>, CheckError> {
    let mut out = BTreeMap::new();
    for pair in pairs.iter().filter(|p| !p.trim().is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(|| CheckError::Usage {
            flag: "--namespace-labels",
            reason: format!("{pair:?} is not key=value"),
        })?;
        if k.trim().is_empty() {
            return Err(CheckError::Usage {
                flag: "--namespace-labels",
                reason: format!("{pair:?} has no key"),
            });
        }
        out.insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(out)
}

/// The verifier from the registry flags (live registries).
pub fn verifier_config(registry: &RegistryArgs, budget: Duration) -> Result<VerifierConfig, CheckError> {
    Ok(VerifierConfig {
        registry: registry.registry_config(budget)?,
        trust_root: registry.trust_root()?,
        cache: Default::default(),
        options: VerifyOptions::default(),
    })
}

/// `--extraction-config`: the file's extractors, else the defaults.
pub fn extraction_config(path: Option<&std::path::Path>) -> Result<ExtractionConfig, CheckError> {
    match path {
        Some(path) => ExtractionConfig::read_file(path)
            .map_err(|reason| CheckError::Usage { flag: "--extraction-config", reason }),
        None => Ok(ExtractionConfig::default()),
    }
}

/// Where the policies and the verifier come from: `--policy` files and live registries, or an offline
/// bundle (its policies unless `--policy` is given).
#[derive(Debug, Clone, Copy)]
pub struct PolicySource<'a> {
    /// `--policy` files and directories.
    pub policies: &'a [PathBuf],
    /// The bundle flags.
    pub offline: &'a BundleArgs,
    /// Follows the TUF repositories of TrustRoots with `spec.tuf`.
    pub tuf: &'a vouch_policies::TufRoots,
}

impl PolicySource<'_> {
    /// The policies and verifier; `live` builds the verifier when there is no bundle. No policies at all
    /// (no `--policy`, no bundle) is a usage error.
    pub fn load(
        &self,
        budget: Duration,
        live: impl FnOnce(Duration) -> Result<ArtifactVerifier, CheckError>,
    ) -> Result<(vouch_policies::PolicySet, ArtifactVerifier), CheckError> {
        match &self.offline.bundle {
            Some(path) => {
                // As `vouch serve --bundle`: the bundle's policies decide, so who made it must be checked.
                if self.offline.bundle_key.is_none() && !self.offline.bundle_allow_unsigned {
                    return Err(CheckError::Usage {
                        flag: "--bundle-key",
                        reason:
                            "required with --bundle (or --bundle-allow-unsigned to accept a bundle without \
                                 checking who made it)"
                                .into(),
                    });
                }
                let source = bundle_source::open(path, self.offline.bundle_key.as_deref())?;
                let policies = if self.policies.is_empty() {
                    source.policies()?
                } else {
                    load_policies(self.policies, self.tuf)?
                };
                Ok((policies, source.verifier()?))
            }
            None => {
                if self.policies.is_empty() {
                    return Err(CheckError::Usage {
                        flag: "--policy",
                        reason: "no policies: give --policy FILE|DIR (or --bundle with policies)".into(),
                    });
                }
                Ok((load_policies(self.policies, self.tuf)?, live(budget)?))
            }
        }
    }
}

/// Everything the check needs, built from the flags before anything is evaluated.
#[derive(Debug)]
pub struct Prepared {
    /// The engine, with the policies in force and the verifier (live or from the bundle).
    pub engine: Engine,
    /// The objects read.
    pub objects: Vec<ManifestObject>,
    /// Namespace defaults and concurrency.
    pub options: EvaluateOptions,
}

/// Validate the flags, read manifests and policies, build the engine; nothing is verified yet.
pub fn prepare(args: &CheckArgs) -> Result<Prepared, CheckError> {
    let budget = args.timeout_budget;
    // Given at all (even as `--namespace-labels ''`): the labels of namespaces the manifests do not define
    // are known. Not given: unknown, as for `vouch serve` without cluster access.
    let namespace_labels =
        if args.namespace_labels.is_empty() { None } else { Some(parse_labels(&args.namespace_labels)?) };
    if args.namespace.trim().is_empty() {
        return Err(CheckError::Usage { flag: "--namespace", reason: "must not be empty".into() });
    }
    // Stdin unlocked: it is read (and locked) only for `-f -` (`vouch mcp` serves on stdin).
    let objects = ManifestReader::read_paths(&args.files, std::io::stdin())?;
    if objects.is_empty() {
        // Fail closed: an empty render (a failed `helm template` in a pipe) must not pass as clean.
        return Err(CheckError::Usage { flag: "--filename", reason: "no Kubernetes objects found".into() });
    }
    let extraction = extraction_config(args.extraction_config.as_deref())?;
    let engine_config = EngineConfig {
        dry_run: args.dry_run,
        no_match: args.no_match.into(),
        budget,
        extraction,
        ..EngineConfig::default()
    };
    let tuf = args.registry.tuf_roots();
    let source = PolicySource { policies: &args.policies, offline: &args.offline, tuf: &tuf };
    let verifier = |budget| Ok(ArtifactVerifier::new(verifier_config(&args.registry, budget)?)?);
    let (policies, verifier) = source.load(budget, verifier)?;
    if policies.policies().is_empty() {
        return Err(CheckError::Usage { flag: "--policy", reason: "no policies found".into() });
    }
    let options = EvaluateOptions {
        default_namespace: args.namespace.trim().to_owned(),
        namespace_labels,
        concurrency: CONCURRENCY,
    };
    Ok(Prepared { engine: Engine::new(engine_config, policies, verifier), objects, options })
}

/// Run the check: print the report on stdout, diagnostics on stderr, and exit 0, 1 or 2.
pub fn run(args: CheckArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let prepared = match runtime.block_on(async { prepare(&args) }) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let (objects, distinct) =
        runtime.block_on(evaluate_objects(&prepared.engine, &prepared.objects, &prepared.options));
    let report = CheckReport::new(objects, distinct, args.fail_on_warn);
    let rendered = match args.output {
        OutputFormat::Text => Ok(text::render(&report, args.verbose)),
        OutputFormat::Json => serde_json::to_string_pretty(&report),
        OutputFormat::Sarif => serde_json::to_string_pretty(&sarif::render(&report)),
        OutputFormat::Junit => Ok(junit::render(&report, args.fail_on_warn)),
    };
    let rendered = match rendered {
        Ok(r) if r.ends_with('\n') => r,
        Ok(r) => r + "\n",
        Err(e) => {
            eprintln!("error: cannot render the report: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(rendered.as_bytes()).and_then(|()| stdout.flush()) {
        eprintln!("error: cannot write the report: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    if args.output != OutputFormat::Text {
        // Machine-readable output on stdout; people still see the outcome.
        eprintln!("{}", report.summary_line());
    }
    ExitCode::from(report.exit_code)
}
