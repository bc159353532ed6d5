//! `--policy-dir` and `--trusted-root` reloaded while serving, the way the serving certificate is
//! ([`super::file_watch`]): the files are read every interval and compared by content, so a Kubernetes
//! ConfigMap or Secret volume update (a new `..<timestamp>` directory, then an atomic swap of the `..data`
//! symlink) is seen like an in-place rewrite.
//!
//! New content is compiled completely before it is put in force, then swapped in atomically (evaluations
//! under way finish with what they started with). Content that cannot be read or does not compile is
//! refused as a whole: the last good configuration stays in force, the refusal is logged once per distinct
//! content, counted (`vouch_config_reload_errors_total`), flagged (`vouch_config_stale` 1) and named, with
//! the file and the error, in the body of /readyz, which keeps answering 200: the last good policies keep
//! enforcing, and making every replica unready over one bad ConfigMap would hand every admission to the
//! webhook's `failurePolicy`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use sha2::{Digest as _, Sha256};
use vouch_attest::trust_root::{TrustRoot, MAX_TRUST_ROOT_BYTES};
use vouch_attest::Digest;
use vouch_policies::policy_set::{MAX_FILES, MAX_FILE_BYTES};
use vouch_policies::{AdmissionInput, Decision, Engine, PolicyResources, PolicySet, Secrets};

use super::file_watch;
use super::Evaluator;

/// Longest reason /readyz shows for one source (the log carries every problem).
const MAX_SHOWN_REASON: usize = 2048;

/// A configuration source that is reloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--policy-dir`.
    Policies,
    /// `--trusted-root`.
    TrustedRoot,
}

impl Source {
    /// The metric label and the name /readyz uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Policies => "policies",
            Self::TrustedRoot => "trusted_root",
        }
    }
}

/// Policies read from a directory, all of which compiled.
#[derive(Debug)]
pub struct DirPolicies {
    /// The compiled policies.
    pub set: PolicySet,
    /// `sha256:` over the names and contents of the files they came from.
    pub fingerprint: String,
}

/// One file of a policy directory: its name and its text, or why it cannot be read.
type DirFile = (String, Result<String, String>);

/// The policy files of `dir` as [`PolicySet::load_dir`] picks them: `.yaml`, `.yml` and `.json` directly in
/// it, hidden entries (a mounted volume's `..data`) skipped and symlinks followed, sorted by name.
fn read_policy_dir(dir: &Path) -> Result<Vec<DirFile>, String> {
    let dir_err = |e: std::io::Error| format!("cannot read the directory: {e}");
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(dir_err)? {
        let path = entry.map_err(dir_err)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        let wanted = [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e));
        if name.starts_with('.') || !wanted || !path.is_file() {
            continue;
        }
        if paths.len() >= MAX_FILES {
            return Err(format!("more than {MAX_FILES} policy files"));
        }
        paths.push((name, path));
    }
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|(name, path)| {
            let text = read_bounded(&path, MAX_FILE_BYTES)
                .and_then(|b| String::from_utf8(b).map_err(|_| "not UTF-8 text".to_owned()));
            (name, text)
        })
        .collect())
}

/// [`file_watch::read_bounded`], the error as /readyz and the log show it.
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    file_watch::read_bounded(path, max).map_err(|e| e.to_string())
}

/// `sha256:` over what was read (names, texts and read errors alike, so an unchanged error is seen as
/// unchanged content and not reported again).
fn dir_fingerprint(files: &Result<Vec<DirFile>, String>) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    match files {
        Err(e) => field(format!("error:{e}").as_bytes()),
        Ok(files) => {
            for (name, text) in files {
                field(name.as_bytes());
                match text {
                    Ok(t) => field(format!("text:{t}").as_bytes()),
                    Err(e) => field(format!("error:{e}").as_bytes()),
                }
            }
        }
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Compile what was read; every problem of every file at once. A file without any document is a problem
/// too (an emptied file is more likely an accident than a way to remove policies: remove the file).
fn compile_dir(dir: &Path, files: Result<Vec<DirFile>, String>) -> Result<PolicySet, Vec<String>> {
    let files = files.map_err(|e| vec![e])?;
    let mut problems = Vec::new();
    let mut resources = PolicyResources { base_dir: Some(dir.to_owned()), ..PolicyResources::default() };
    for (name, text) in &files {
        match text {
            Ok(text) => {
                let before = resources.len() + resources.problems.len();
                resources.add_yaml_str(text, name);
                if resources.len() + resources.problems.len() == before {
                    problems
                        .push(format!("{name}: no policy documents (remove the file to remove policies)"));
                }
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    let set = PolicySet::compile(resources, &Secrets::none());
    problems.extend(set.problems().iter().map(ToString::to_string));
    if problems.is_empty() {
        Ok(set)
    } else {
        Err(problems)
    }
}

/// Read and compile the policies of `dir`; `Err` lists every problem (nothing from the directory may be
/// put in force then).
pub fn load_policy_dir(dir: &Path) -> Result<DirPolicies, Vec<String>> {
    let files = read_policy_dir(dir);
    let fingerprint = dir_fingerprint(&files);
    compile_dir(dir, files).map(|set| DirPolicies { set, fingerprint })
}

/// Read and parse a Sigstore `trusted_root.json`; its fingerprint is the one its verdicts are cached under.
pub fn load_trusted_root(path: &Path) -> Result<TrustRoot, String> {
    let bytes = read_bounded(path, MAX_TRUST_ROOT_BYTES as u64)?;
    TrustRoot::from_json(&bytes).map_err(|e| e.to_string())
}

/// What one look at a source found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Same content as last time (good or bad).
    Unchanged,
    /// New content, now in force.
    Reloaded {
        /// Its fingerprint.
        fingerprint: String,
    },
    /// New content that was refused; the last good one stays in force.
    Rejected {
        /// Every problem, joined.
        reason: String,
    },
}

#[derive(Debug)]
struct WatchState {
    /// Fingerprint of the content last looked at, good or bad (a bad one is reported once).
    seen: String,
    /// Fingerprint of the content in force.
    in_force: String,
    /// Why the content on disk is not in force; `None` when it is.
    stale: Option<String>,
}

#[derive(Debug)]
struct Watched {
    source: Source,
    path: PathBuf,
    state: Mutex<WatchState>,
    reloads: AtomicU64,
    errors: AtomicU64,
}

impl Watched {
    fn new(source: Source, path: PathBuf, in_force: String) -> Self {
        Self {
            source,
            path,
            state: Mutex::new(WatchState { seen: in_force.clone(), in_force, stale: None }),
            reloads: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// Read the source; if its content changed, compile it and put it in force when good.
    fn poll(&self, engine: &Engine) -> Outcome {
        let Ok(mut state) = self.state.lock() else { return Outcome::Unchanged };
        let (fingerprint, compiled) = match self.source {
            Source::Policies => {
                let files = read_policy_dir(&self.path);
                let fingerprint = dir_fingerprint(&files);
                if fingerprint == state.seen {
                    return Outcome::Unchanged;
                }
                let compiled =
                    compile_dir(&self.path, files).map(Compiled::Policies).map_err(|p| p.join("; "));
                (fingerprint, compiled)
            }
            Source::TrustedRoot => {
                let bytes = read_bounded(&self.path, MAX_TRUST_ROOT_BYTES as u64);
                // The same fingerprint as the root's own (its verdicts' cache key) when readable.
                let fingerprint = match &bytes {
                    Ok(b) => Digest::sha256_of(b).to_string(),
                    Err(e) => Digest::sha256_of(format!("error:{e}").as_bytes()).to_string(),
                };
                if fingerprint == state.seen {
                    return Outcome::Unchanged;
                }
                let compiled = bytes
                    .and_then(|b| TrustRoot::from_json(&b).map_err(|e| e.to_string()))
                    .map(Compiled::TrustRoot);
                (fingerprint, compiled)
            }
        };
        state.seen.clone_from(&fingerprint);
        match compiled {
            Ok(new) => {
                match new {
                    Compiled::Policies(set) => engine.replace_policies(set),
                    Compiled::TrustRoot(root) => engine.replace_trust_root(root),
                }
                state.in_force.clone_from(&fingerprint);
                state.stale = None;
                self.reloads.fetch_add(1, Ordering::Relaxed);
                Outcome::Reloaded { fingerprint }
            }
            Err(reason) => {
                state.stale = Some(reason.clone());
                self.errors.fetch_add(1, Ordering::Relaxed);
                Outcome::Rejected { reason }
            }
        }
    }

    fn in_force(&self) -> String {
        self.state.lock().map(|s| s.in_force.clone()).unwrap_or_default()
    }
}

/// Say, at warn, which policies have a namespace selector that cannot be evaluated because namespace labels
/// cannot be read (`vouch serve` without cluster access): they are applied to every namespace's objects,
/// and what they find wrong is judged by their failure policy (deny by default), never skipped.
pub fn warn_unevaluable_selectors(set: &PolicySet) {
    let names: Vec<&str> =
        set.policies().iter().filter(|p| p.namespace_selector.is_some()).map(|p| p.name.as_str()).collect();
    if !names.is_empty() {
        tracing::warn!(
            policies = %names.join(", "),
            "namespace labels cannot be read without cluster access (--kube): these policies' \
             namespaceSelector cannot be evaluated, so they apply in every namespace and their findings \
             are judged by their failurePolicy (Fail: deny)"
        );
    }
}

/// New content, compiled completely.
enum Compiled {
    Policies(PolicySet),
    TrustRoot(TrustRoot),
}

/// The engine, with the files it was configured from watched and reloaded into it. It is the webhooks'
/// [`Evaluator`]: it decides with the engine and tells /readyz what is in force and what was refused.
#[derive(Debug)]
pub struct ConfigReload {
    engine: Engine,
    watched: Vec<Watched>,
    /// Whether namespace labels can be read (a cluster client); if not, every policy set put in force
    /// is checked for namespace selectors, which then cannot be evaluated (see [`warn_unevaluable_selectors`]).
    namespace_labels_known: bool,
}

impl ConfigReload {
    /// Watch `policy_dir` and `trusted_root` (each with the fingerprint of the content already in force in
    /// `engine`), reloading them into `engine`.
    pub fn new(
        engine: Engine,
        policy_dir: Option<(PathBuf, String)>,
        trusted_root: Option<(PathBuf, String)>,
    ) -> Arc<Self> {
        Self::build(engine, policy_dir, trusted_root, true)
    }

    /// [`Self::new`] for a server that cannot read namespace labels (no cluster access): a reloaded policy
    /// set with namespace selectors is reported as at start-up.
    pub fn without_namespace_labels(
        engine: Engine,
        policy_dir: Option<(PathBuf, String)>,
        trusted_root: Option<(PathBuf, String)>,
    ) -> Arc<Self> {
        Self::build(engine, policy_dir, trusted_root, false)
    }

    fn build(
        engine: Engine,
        policy_dir: Option<(PathBuf, String)>,
        trusted_root: Option<(PathBuf, String)>,
        namespace_labels_known: bool,
    ) -> Arc<Self> {
        let watched = [(Source::Policies, policy_dir), (Source::TrustedRoot, trusted_root)]
            .into_iter()
            .filter_map(|(source, w)| w.map(|(path, fp)| Watched::new(source, path, fp)))
            .collect();
        Arc::new(Self { engine, watched, namespace_labels_known })
    }

    /// Whether any file is watched.
    pub fn watches_anything(&self) -> bool {
        !self.watched.is_empty()
    }

    /// Look at every watched source once (reads files: call from a blocking thread).
    pub fn poll(&self) -> Vec<(Source, Outcome)> {
        self.watched.iter().map(|w| (w.source, w.poll(&self.engine))).collect()
    }

    /// Poll every `interval` until the returned task is aborted; logs every change once.
    pub fn spawn_watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        let report = Arc::clone(self);
        file_watch::spawn_polling(
            interval,
            "configuration",
            move || this.poll(),
            move |outcomes| {
                for ((source, outcome), w) in outcomes.into_iter().zip(&report.watched) {
                    let (source, path) = (source.as_str(), w.path.display());
                    match outcome {
                        Outcome::Unchanged => {}
                        Outcome::Reloaded { fingerprint } => {
                            tracing::info!(source, path = %path, fingerprint = %fingerprint, "configuration reloaded");
                            if !report.namespace_labels_known {
                                warn_unevaluable_selectors(&report.engine.policies());
                            }
                        }
                        Outcome::Rejected { reason } => tracing::error!(
                            source,
                            path = %path,
                            error = %reason,
                            in_force = %w.in_force(),
                            "new configuration refused; the last good one stays in force"
                        ),
                    }
                }
            },
        )
    }

    /// One line per refused source: what, where, why, and what stays in force; empty when every watched
    /// file is in force.
    pub fn stale(&self) -> Vec<String> {
        self.watched
            .iter()
            .filter_map(|w| {
                let state = w.state.lock().ok()?;
                let reason = state.stale.as_deref()?;
                let mut shown: String = reason.chars().take(MAX_SHOWN_REASON).collect();
                if shown.len() < reason.len() {
                    shown.push_str(" …");
                }
                Some(format!(
                    "{}: {}: {shown} (the last good one, {}, stays in force)",
                    w.source.as_str(),
                    w.path.display(),
                    state.in_force
                ))
            })
            .collect()
    }

    /// One line per watched source: what is in force, from where.
    pub fn in_force(&self) -> Vec<String> {
        self.watched
            .iter()
            .map(|w| format!("{}: {} {}", w.source.as_str(), w.path.display(), w.in_force()))
            .collect()
    }

    /// Register `vouch_config_stale`, `vouch_config_reloads_total` and `vouch_config_reload_errors_total`
    /// (labelled by `source`) in `registry`, read at scrape time.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        registry.register_collector(Box::new(ReloadMetrics(Arc::clone(self))));
    }
}

impl Evaluator for ConfigReload {
    fn is_ready(&self) -> bool {
        self.engine.is_ready()
    }

    fn evaluate<'a>(&'a self, input: &'a AdmissionInput) -> BoxFuture<'a, Decision> {
        Box::pin(self.engine.evaluate(input))
    }

    fn stale_configuration(&self) -> Vec<String> {
        self.stale()
    }

    fn configuration_in_force(&self) -> Vec<String> {
        self.in_force()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

/// Reads one counter of a watched source.
type CounterOf = fn(&Watched) -> u64;

#[derive(Debug)]
struct ReloadMetrics(Arc<ConfigReload>);

impl Collector for ReloadMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let watched = &self.0.watched;
        if watched.is_empty() {
            return Ok(());
        }
        let mut m = encoder.encode_descriptor(
            "vouch_config_stale",
            "1 while the configuration on disk is refused and the last good one is in force.",
            None,
            MetricType::Gauge,
        )?;
        for w in watched {
            let stale = w.state.lock().map(|s| s.stale.is_some()).unwrap_or(false);
            ConstGauge::new(i64::from(stale))
                .encode(m.encode_family(&SourceLabels { source: w.source.as_str() })?)?;
        }
        let counters: [(&str, &str, CounterOf); 2] = [
            ("vouch_config_reloads", "Configuration reloads put in force.", |w| {
                w.reloads.load(Ordering::Relaxed)
            }),
            ("vouch_config_reload_errors", "New configuration refused (the last good one is kept).", |w| {
                w.errors.load(Ordering::Relaxed)
            }),
        ];
        for (name, help, value) in counters {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for w in watched {
                ConstCounter::new(value(w))
                    .encode(m.encode_family(&SourceLabels { source: w.source.as_str() })?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ready_body;
    use vouch_attest::trust_root::PUBLIC_GOOD_JSON;
    use vouch_attest::verify::{ArtifactVerifier, VerifierConfig};
    use vouch_policies::EngineConfig;

    const POLICY: &str = "apiVersion: vouch.dev/v1alpha1\nkind: ClusterSupplyChainPolicy\nmetadata: {name: NAME}\n\
        spec:\n  images: [\"reg.example/**\"]\n  authorities: [{name: k, keyless: {identities: [{subject: \"a@b.c\", issuer: \"https://i.example\"}]}}]\n  requirements: {signature: true}\n";

    fn policy(name: &str) -> String {
        POLICY.replace("NAME", name)
    }

    fn engine(set: PolicySet) -> Engine {
        let verifier = ArtifactVerifier::new(VerifierConfig {
            registry: Default::default(),
            trust_root: TrustRoot::public_good().unwrap(),
            cache: Default::default(),
            options: Default::default(),
        })
        .unwrap();
        Engine::new(EngineConfig::default(), set, verifier)
    }

    fn names(e: &Engine) -> Vec<String> {
        e.policies().policies().iter().map(|p| p.name.clone()).collect()
    }

    #[test]
    fn a_directory_loads_only_when_every_file_compiles() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), policy("a")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a policy").unwrap();
        let good = load_policy_dir(dir.path()).unwrap();
        assert_eq!(good.set.policies().len(), 1);
        assert!(good.fingerprint.starts_with("sha256:"), "{}", good.fingerprint);

        std::fs::write(dir.path().join("b.yaml"), "{{{ garbage").unwrap();
        std::fs::write(dir.path().join("c.yaml"), "").unwrap();
        let problems = load_policy_dir(dir.path()).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems.iter().any(|p| p.contains("b.yaml") && p.contains("not valid YAML")),
            "{problems:?}"
        );
        assert!(problems.iter().any(|p| p.starts_with("c.yaml: no policy documents")), "{problems:?}");
        assert!(load_policy_dir(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn garbage_is_refused_once_and_the_last_good_set_stays() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.yaml"), policy("first")).unwrap();
        let loaded = load_policy_dir(dir.path()).unwrap();
        let engine = engine(loaded.set);
        let reload =
            ConfigReload::new(engine.clone(), Some((dir.path().into(), loaded.fingerprint.clone())), None);
        assert_eq!(reload.poll(), [(Source::Policies, Outcome::Unchanged)]);

        std::fs::write(dir.path().join("p.yaml"), "spec: [unterminated").unwrap();
        match &reload.poll()[0].1 {
            Outcome::Rejected { reason } => assert!(reason.contains("p.yaml"), "{reason}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(reload.poll()[0].1, Outcome::Unchanged, "the same garbage is not reported again");
        assert_eq!(names(&engine), ["first"]);
        let stale = reload.stale();
        assert_eq!(stale.len(), 1);
        assert!(stale[0].starts_with(&format!("policies: {}: ", dir.path().display())), "{stale:?}");
        assert!(stale[0].contains("p.yaml#1: not valid YAML"), "{stale:?}");
        assert!(stale[0].contains(&loaded.fingerprint), "{stale:?}");
        assert!(ready_body(reload.as_ref()).starts_with("ready, with stale configuration\nstale: policies: "));
        let mut registry = Registry::default();
        reload.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("vouch_config_stale{source=\"policies\"} 1"), "{text}");
        assert!(text.contains("vouch_config_reload_errors_total{source=\"policies\"} 1"), "{text}");

        std::fs::write(dir.path().join("p.yaml"), policy("second")).unwrap();
        assert!(matches!(reload.poll()[0].1, Outcome::Reloaded { .. }));
        assert_eq!(names(&engine), ["second"]);
        assert!(reload.stale().is_empty());
        assert_eq!(ready_body(reload.as_ref()).lines().next(), Some("ready"));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("vouch_config_stale{source=\"policies\"} 0"), "{text}");
        assert!(text.contains("vouch_config_reloads_total{source=\"policies\"} 1"), "{text}");
    }

    #[test]
    fn a_trusted_root_is_reloaded_and_garbage_kept_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trusted_root.json");
        std::fs::write(&path, PUBLIC_GOOD_JSON).unwrap();
        let root = load_trusted_root(&path).unwrap();
        let engine = engine(PolicySet::from_yaml_str(&policy("p")));
        let reload =
            ConfigReload::new(engine.clone(), None, Some((path.clone(), root.fingerprint().to_string())));
        assert_eq!(reload.poll(), [(Source::TrustedRoot, Outcome::Unchanged)]);

        std::fs::write(&path, "{\"mediaType\": 7").unwrap();
        assert!(matches!(reload.poll()[0].1, Outcome::Rejected { .. }));
        assert!(reload.in_force()[0].ends_with(&root.fingerprint().to_string()));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(reload.poll()[0].1, Outcome::Rejected { .. }), "a vanished file is refused");
        assert_eq!(reload.poll()[0].1, Outcome::Unchanged, "and reported once");

        // The same root, written differently: another document, another fingerprint.
        let value: serde_json::Value = serde_json::from_str(PUBLIC_GOOD_JSON).unwrap();
        std::fs::write(&path, serde_json::to_vec(&value).unwrap()).unwrap();
        match reload.poll()[0].1.clone() {
            Outcome::Reloaded { fingerprint } => assert_ne!(fingerprint, root.fingerprint().to_string()),
            other => panic!("{other:?}"),
        }
        assert!(reload.stale().is_empty());
        assert_eq!(names(&engine), ["p"], "policies are untouched by a trust root reload");
    }
}
