//! `vouch scan`: re-verify what is already running, for auditors and CI. Reads live objects (a `kubectl get
//! pods -A -o json` dump, YAML streams, directories) or lists Pods from the cluster a page at a time, and
//! judges each with the webhook's engine at the digest it runs ([`crate::scan`]). `--baseline` compares
//! with an earlier JSON report.
//!
//! Exit codes: 0 every workload compliant; 1 some workload non-compliant or unverified; 2 usage or input
//! errors (the file and position named).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use vouch_attest::verify::ArtifactVerifier;
use vouch_policies::manifests::ManifestObject;
use vouch_policies::{Engine, EngineConfig};

use super::bundle_args::BundleArgs;
use super::check::{
    extraction_config, parse_labels, verifier_config, CheckError, NoMatch, OutputFormat, PolicySource,
};
use super::exit::EXIT_ERROR;
use super::registry_args::{positive_duration, RegistryArgs};
use crate::scan::cluster::{load_policies, namespace_facts, PodPages, PAGE_SIZE};
use crate::scan::input::{InputPages, PAGE_SIZE as INPUT_PAGE_SIZE};
use crate::scan::{render, ScanOptions, ScanReport, Scanner, WorkloadRecord};

/// Arguments.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// Files or directories of live objects (YAML or JSON, `List`s too, recursively); `-` for stdin.
    #[arg(short = 'f', long = "filename", required_unless_present = "cluster", conflicts_with = "cluster")]
    pub files: Vec<String>,
    /// List the Pods from the cluster (in-cluster config or kubeconfig), a page at a time.
    #[arg(long)]
    pub cluster: bool,
    /// Kubeconfig file for --cluster (default: $KUBECONFIG, ~/.kube/config, or in-cluster).
    #[arg(long, requires = "cluster")]
    pub kubeconfig: Option<PathBuf>,
    /// Only these namespaces (repeatable): listed from the cluster, or kept from the files.
    #[arg(short = 'n', long = "namespace")]
    pub namespaces: Vec<String>,
    /// Policy file or directory (repeatable). With --cluster the cluster's policies are used unless given.
    #[arg(short = 'p', long = "policy")]
    pub policies: Vec<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// An earlier `vouch scan -o json` report: list newly failing, newly passing and unchanged workloads.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// The offline bundle to verify from (`--bundle`, `--bundle-key`, `--bundle-allow-unsigned`).
    #[command(flatten)]
    pub offline: BundleArgs,
    /// Extractors for custom kinds and extra init-container fetcher profiles (YAML; as `vouch serve`).
    #[arg(long)]
    pub extraction_config: Option<PathBuf>,
    /// Namespace of objects in the files that name none.
    #[arg(long, default_value = "default")]
    pub default_namespace: String,
    /// Labels of namespaces neither the files nor the cluster describe, e.g. `env=prod,team=shop`.
    #[arg(long, value_delimiter = ',')]
    pub namespace_labels: Vec<String>,
    /// Artifacts no policy covers: allow, warn or deny.
    #[arg(long, value_enum, default_value_t = NoMatch::Allow)]
    pub no_match: NoMatch,
    /// Registries, credentials and trust root (live verification; not with --bundle).
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Time budget of one workload's verification, e.g. `30s`.
    #[arg(long, default_value = "30s", value_parser = positive_duration)]
    pub timeout_budget: Duration,
    /// Pods asked for per page with --cluster.
    #[arg(long, default_value_t = PAGE_SIZE, value_parser = clap::value_parser!(u32).range(1..=5000))]
    pub page_size: u32,
    /// Text output: every workload and what runs, not only those that are not compliant.
    #[arg(short = 'v', long)]
    pub verbose: bool,
}

/// Run the scan: the report on stdout, diagnostics on stderr; exit 0, 1 or 2.
pub fn run(args: ScanArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let report = match runtime.block_on(scan(&args)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    // Written as it is rendered: a report of many workloads is not held twice in memory.
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let written = match args.output {
        OutputFormat::Text => stdout.write_all(render::text(&report, args.verbose).as_bytes()),
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut stdout, &report).map_err(std::io::Error::from)
        }
        OutputFormat::Sarif => {
            serde_json::to_writer_pretty(&mut stdout, &render::sarif(&report)).map_err(std::io::Error::from)
        }
        OutputFormat::Junit => stdout.write_all(render::junit(&report).as_bytes()),
    };
    let newline =
        if args.output == OutputFormat::Json || args.output == OutputFormat::Sarif { "\n" } else { "" };
    if let Err(e) = written.and_then(|()| stdout.write_all(newline.as_bytes())).and_then(|()| stdout.flush())
    {
        eprintln!("error: cannot write the report: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
    if args.output != OutputFormat::Text {
        eprintln!("{}", report.summary_line());
    }
    ExitCode::from(report.exit_code())
}

/// Everything but printing: read the baseline, build the engine, scan, compare.
pub async fn scan(args: &ScanArgs) -> Result<ScanReport, CheckError> {
    let client = if args.cluster { Some(kube_client(args.kubeconfig.as_deref()).await?) } else { None };
    scan_with(args, client).await
}

/// [`scan`] with the cluster's client given (`None`: the files are scanned).
pub async fn scan_with(args: &ScanArgs, client: Option<kube::Client>) -> Result<ScanReport, CheckError> {
    let baseline = match &args.baseline {
        Some(path) => Some((
            ScanReport::read_baseline(path)
                .map_err(|reason| CheckError::Usage { flag: "--baseline", reason })?,
            path.display().to_string(),
        )),
        None => None,
    };
    if args.default_namespace.trim().is_empty() {
        return Err(CheckError::Usage { flag: "--default-namespace", reason: "must not be empty".into() });
    }
    let namespace_labels =
        if args.namespace_labels.is_empty() { None } else { Some(parse_labels(&args.namespace_labels)?) };
    let engine = engine(args, client.as_ref()).await?;
    let mut scanner = Scanner::new(engine);
    if let Some(client) = &client {
        let cluster =
            crate::cluster::KubeContext::new(client.clone(), &crate::cluster::ContextCacheConfig::default());
        scanner = scanner.with_cluster(std::sync::Arc::new(cluster));
    }
    let mut options = ScanOptions {
        default_namespace: args.default_namespace.trim().to_owned(),
        namespace_labels,
        ..ScanOptions::default()
    };
    let (scope, workloads) = match &client {
        None => {
            let mut pages = InputPages::open(args.files.clone(), INPUT_PAGE_SIZE);
            let (mut read, mut workloads) = (0, Vec::new());
            while let Some(page) = pages.next_page().await {
                let mut page = page?;
                read += page.len();
                // Namespace objects describe their namespace for what follows them.
                options.namespaces.extend(page.iter().filter_map(ManifestObject::namespace_facts));
                if !args.namespaces.is_empty() {
                    page.retain(|o| {
                        o.namespace_or(&options.default_namespace)
                            .is_some_and(|ns| args.namespaces.contains(&ns))
                    });
                }
                workloads.extend(scanner.scan_records(page, &options).await);
            }
            if workloads.is_empty() {
                // Fail closed: an empty dump (a failed `kubectl get` in a pipe) must not pass as compliant.
                let reason = if read == 0 {
                    "no Kubernetes objects found".to_owned()
                } else {
                    format!("no Kubernetes objects found in namespaces {}", args.namespaces.join(", "))
                };
                return Err(CheckError::Usage { flag: "--filename", reason });
            }
            (args.files.clone(), workloads)
        }
        Some(client) => {
            match namespace_facts(client).await {
                Ok(facts) => options.namespaces = facts,
                Err(e) => eprintln!("warning: {e}; policies with a namespaceSelector cannot be evaluated"),
            }
            let mut pages = PodPages::new(client.clone(), &args.namespaces, args.page_size);
            let mut workloads: Vec<WorkloadRecord> = Vec::new();
            while let Some(page) = pages.next_page().await.map_err(cluster_error)? {
                workloads.extend(scanner.scan_records(page, &options).await);
            }
            (vec!["cluster".to_owned()], workloads)
        }
    };
    let mut report = ScanReport::new(scope, workloads);
    if let Some((baseline, name)) = baseline {
        report.compare_with(&baseline, &name);
    }
    Ok(report)
}

/// The engine: policies from `--policy`, the bundle, or (with --cluster and neither) the cluster.
async fn engine(args: &ScanArgs, client: Option<&kube::Client>) -> Result<Engine, CheckError> {
    let budget = args.timeout_budget;
    let engine_config = EngineConfig {
        no_match: args.no_match.into(),
        budget,
        extraction: extraction_config(args.extraction_config.as_deref())?,
        ..EngineConfig::default()
    };
    let live = |budget| Ok(ArtifactVerifier::new(verifier_config(&args.registry, budget)?)?);
    let tuf = args.registry.tuf_roots();
    let (policies, verifier) = match client {
        Some(client) if args.policies.is_empty() && args.offline.bundle.is_none() => {
            let policies = load_policies(client, &tuf).await.map_err(cluster_error)?;
            for problem in policies.problems() {
                eprintln!("warning: policy left out: {problem}");
            }
            (policies, live(budget)?)
        }
        _ => {
            PolicySource { policies: &args.policies, offline: &args.offline, tuf: &tuf }.load(budget, live)?
        }
    };
    if policies.policies().is_empty() {
        return Err(CheckError::Usage { flag: "--policy", reason: "no policies found".into() });
    }
    Ok(Engine::new(engine_config, policies, verifier))
}

async fn kube_client(kubeconfig: Option<&std::path::Path>) -> Result<kube::Client, CheckError> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| CheckError::File { path: path.to_owned(), reason: e.to_string() })?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| CheckError::File { path: path.to_owned(), reason: e.to_string() })?
        }
        None => kube::Config::infer().await.map_err(|e| CheckError::Usage {
            flag: "--cluster",
            reason: format!("no cluster configuration: {e}"),
        })?,
    };
    kube::Client::try_from(config)
        .map_err(|e| CheckError::Usage { flag: "--cluster", reason: format!("cannot build a client: {e}") })
}

fn cluster_error(e: crate::cluster::KubeError) -> CheckError {
    CheckError::Usage { flag: "--cluster", reason: crate::cluster::error::error_chain(&e) }
}
