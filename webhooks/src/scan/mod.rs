//! Continuous verification: re-verify what is already running. A scan reads live objects (a `kubectl get
//! -o json` dump, manifests, or the cluster's API), pins each Pod's containers to the digest they run
//! ([`running`]), lets the same [`Engine`] as the webhook judge them, and writes a [`WorkloadRecord`] per
//! object. [`report`] totals them and compares with an earlier scan ([`drift`]); `vouch scan` prints them
//! and the in-cluster scanner writes reports, conditions and events from them.
//!
//! What runs, not what the spec says: a Pod's container is verified at the digest its status names
//! (`imageID`). When the spec's tag (or digest) now names something else, the workload is reported with a
//! note: the tag moved since the Pod started. When what runs is one platform's manifest of the index the
//! spec names, the index is verified (its signature covers its platforms by digest). Objects that run
//! nothing yet (not Pods, Pods not started) are verified at what their spec names now, and the records say
//! so ([`DigestSource::Spec`]).

pub mod cluster;
pub mod drift;
pub mod input;
pub mod record;
pub mod render;
pub mod report;
pub mod running;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt as _;
use vouch_attest::{ArtifactRef, Digest};
use vouch_policies::extract::{extract_with, Extracted};
use vouch_policies::manifests::{ManifestObject, NamespaceFacts, NAMESPACE_NAME_LABEL};
use vouch_policies::{Engine, Finding};

use crate::cluster::ClusterContext;

pub use record::{ArtifactRecord, DigestSource, ResultRecord, ScanOutcome, WorkloadRecord};
pub use report::ScanReport;
use running::{pin_to_running, RunningImage};

/// Objects scanned at once by default (the verifier's cache and single flight verify each digest once).
pub const CONCURRENCY: usize = 8;
/// Index manifests remembered per scanner (to tell a platform manifest of an index from a moved tag).
const MAX_CACHED_INDEXES: u64 = 4096;

/// Options of a scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Namespace of objects that name none.
    pub default_namespace: String,
    /// What is known of namespaces (from the cluster); Namespace objects among the input add to it.
    pub namespaces: BTreeMap<String, NamespaceFacts>,
    /// Labels of namespaces neither describes; `None`: unknown (see `vouch check`).
    pub namespace_labels: Option<BTreeMap<String, String>>,
    /// Objects scanned at once.
    pub concurrency: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            default_namespace: "default".into(),
            namespaces: BTreeMap::new(),
            namespace_labels: None,
            concurrency: CONCURRENCY,
        }
    }
}

/// One object scanned: its record, and the engine's decision it was made from (whose findings the
/// in-cluster scanner writes to reports and conditions).
#[derive(Debug, Clone)]
pub struct Judged {
    /// The record.
    pub record: WorkloadRecord,
    /// The decision.
    pub decision: vouch_policies::Decision,
}

/// Scans objects with one engine (its policies, verifier and cache).
#[derive(Clone)]
pub struct Scanner {
    engine: Engine,
    /// Where a Pod's image pull credentials come from (its and its service account's imagePullSecrets),
    /// as admission reads them; `None`: anonymous pulls and the configured credentials only.
    cluster: Option<Arc<dyn ClusterContext>>,
    /// Platform manifests of index digests seen, single-flight.
    indexes: moka::future::Cache<Digest, Arc<Vec<Digest>>>,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner").finish_non_exhaustive()
    }
}

impl Scanner {
    /// A scanner judging with `engine`.
    pub fn new(engine: Engine) -> Self {
        Self { engine, cluster: None, indexes: moka::future::Cache::new(MAX_CACHED_INDEXES) }
    }

    /// Pull credentials of each Pod (and workload template) read through `cluster`, as admission does.
    pub fn with_cluster(mut self, cluster: Arc<dyn ClusterContext>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Scan `objects`, `options.concurrency` at once; results in input order. Namespace objects among them
    /// give their namespace's labels.
    pub async fn scan(&self, objects: &[ManifestObject], options: &ScanOptions) -> Vec<Judged> {
        let mut defined = options.namespaces.clone();
        defined.extend(objects.iter().filter_map(ManifestObject::namespace_facts));
        // The futures made up front (not in a `map` closure), so the spawned scanner task's future stays
        // `Send` for every lifetime (rust-lang/rust#102211).
        let jobs: Vec<_> = objects
            .iter()
            .map(|object| {
                let facts = facts_of(object, &defined, options);
                async move { self.scan_one(object, &facts, &options.default_namespace).await }
            })
            .collect();
        futures::stream::iter(jobs).buffered(options.concurrency.max(1)).collect().await
    }

    /// [`Self::scan`] keeping only the records, each object dropped once scanned (`vouch scan` over a large
    /// dump: neither the objects nor the decisions stay in memory longer than needed).
    pub async fn scan_records(
        &self,
        objects: Vec<ManifestObject>,
        options: &ScanOptions,
    ) -> Vec<WorkloadRecord> {
        let mut defined = options.namespaces.clone();
        defined.extend(objects.iter().filter_map(ManifestObject::namespace_facts));
        let jobs: Vec<_> = objects
            .into_iter()
            .map(|object| {
                let facts = facts_of(&object, &defined, options);
                async move { self.scan_one(&object, &facts, &options.default_namespace).await.record }
            })
            .collect();
        futures::stream::iter(jobs).buffered(options.concurrency.max(1)).collect().await
    }

    /// Scan one object, in its namespace (else `default_namespace`) described by `facts`.
    pub async fn scan_one(
        &self,
        object: &ManifestObject,
        facts: &NamespaceFacts,
        default_namespace: &str,
    ) -> Judged {
        let (pinned, images) = pin_to_running(&object.kind.kind, &object.object);
        let credentials =
            self.pull_credentials(object, object.namespace_or(default_namespace).as_deref()).await;
        // Tags are resolved (and indexes read) with the Pod's credentials, as verification will be.
        let verifier = self.engine.verifier().with_credentials(&credentials).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot use the pull credentials; resolving tags anonymously");
            self.engine.verifier().clone()
        });
        let mut notes = Vec::new();
        let mut running = BTreeMap::new();
        let mut to_verify = pinned;
        for image in &images {
            let Some(digest) = &image.running else { continue };
            let (verified, note) = self.what_to_verify(&verifier, image, digest).await;
            notes.extend(note.clone());
            if &verified != digest {
                let name = image.spec_image.split_once('@').map_or(image.spec_image.as_str(), |(n, _)| n);
                if let Some(field) = to_verify.pointer_mut(&image.pointer) {
                    *field = serde_json::Value::String(format!("{name}@{verified}"));
                }
            }
            running.insert(image.pointer.clone(), Running { image, verified, note });
        }
        // The pinned copy stands in for the object (not `..object.clone()`, which would copy the Pod again).
        let object = ManifestObject {
            origin: object.origin.clone(),
            kind: object.kind.clone(),
            namespace: object.namespace.clone(),
            name: object.name.clone(),
            object: to_verify,
        };
        let namespace = object.namespace_or(default_namespace);
        let uid = object
            .object
            .pointer("/metadata/uid")
            .and_then(serde_json::Value::as_str)
            .map_or_else(|| format!("vouch-scan-{}", object.origin), str::to_owned);
        let mut input = object.to_input_with(uid, default_namespace, facts);
        input.pull_credentials = credentials;
        // The engine's own extraction: an invalid configuration extracts nothing here, the engine fails it.
        let extracted = self.engine.extraction().map(|c| extract_with(&input, c));
        let api_version = if object.kind.group.is_empty() {
            object.kind.version.clone()
        } else {
            format!("{}/{}", object.kind.group, object.kind.version)
        };
        let mut record = WorkloadRecord {
            namespace,
            api_version,
            kind: object.kind.kind.clone(),
            name: object.name.clone(),
            source: object.origin.to_string(),
            outcome: ScanOutcome::Skipped,
            reasons: Vec::new(),
            artifacts: Vec::new(),
        };
        if let Some(Ok(Extracted { skip: Some(why), .. })) = &extracted {
            record.reasons.push(why.clone());
            return Judged { record, decision: vouch_policies::Decision::allow() };
        }
        // `requireDigest` is judged on the spec as written, not on the digest the scan pinned.
        let written = images.iter().map(|i| (i.pointer.clone(), i.spec_image.clone())).collect();
        let decision = self.engine.evaluate_as_written(&input, &written).await;
        (record.outcome, record.reasons) = record::classify(&decision, &self.engine.policies(), &notes);
        let artifacts = match extracted {
            Some(Ok(found)) => found.artifacts,
            _ => Vec::new(),
        };
        record.artifacts = artifact_records(&artifacts, &decision.findings, &running);
        Judged { record, decision }
    }

    /// The object's image pull credentials through the cluster (anonymous without one, or when they cannot be
    /// read: registry errors then become findings, as in admission).
    async fn pull_credentials(
        &self,
        object: &ManifestObject,
        namespace: Option<&str>,
    ) -> vouch_attest::registry::Credentials {
        let anonymous = vouch_attest::registry::Credentials::anonymous;
        let (Some(cluster), Some(ns)) = (&self.cluster, namespace) else { return anonymous() };
        let pointer = vouch_policies::extract::pod_spec_pointer(&object.kind.group, &object.kind.kind);
        let Some(spec) = pointer.and_then(|p| object.object.pointer(p)) else { return anonymous() };
        cluster.pull_credentials(ns, spec).await.unwrap_or_else(|e| {
            tracing::warn!(namespace = ns, name = %object.name, error = %e, "cannot read image pull secrets; trying anonymously");
            anonymous()
        })
    }

    /// The digest to verify for a container that runs `running`: that digest, or the index the spec names
    /// when `running` is one of its platforms; and a note when the spec names something else now.
    async fn what_to_verify(
        &self,
        verifier: &vouch_attest::verify::ArtifactVerifier,
        image: &RunningImage,
        running: &Digest,
    ) -> (Digest, Option<String>) {
        let Ok(spec) = image.spec_image.parse::<ArtifactRef>() else {
            return (running.clone(), None); // the engine reports the reference
        };
        let current = match spec.digest() {
            Some(d) => d.clone(),
            None => match verifier.resolve(&spec).await {
                Ok(r) => r.digest().cloned().unwrap_or_else(|| running.clone()),
                Err(e) => {
                    let note = format!(
                        "image {}: cannot tell whether the tag still names {running}, which runs: {e}",
                        image.spec_image
                    );
                    return (running.clone(), Some(note));
                }
            },
        };
        if &current == running || self.platforms_of(verifier, &spec, &current).await.contains(running) {
            return (current, None);
        }
        let note = match spec.digest() {
            Some(_) => format!(
                "image {}: runs {running}, which is not the digest the spec names (verified: what runs)",
                image.spec_image
            ),
            None => format!(
                "image {}: tag moved: it names {current} now, not {running}, which runs (verified: what runs)",
                image.spec_image
            ),
        };
        (running.clone(), Some(note))
    }

    /// The platform manifests of `digest` in `spec`'s repository; empty when it is not an index or cannot
    /// be read.
    async fn platforms_of(
        &self,
        verifier: &vouch_attest::verify::ArtifactVerifier,
        spec: &ArtifactRef,
        digest: &Digest,
    ) -> Arc<Vec<Digest>> {
        let r = spec.with_digest(digest.clone());
        let registry = verifier.registry();
        self.indexes
            .get_with(digest.clone(), async {
                let platforms = registry.platform_manifests(&r).await.unwrap_or_default();
                Arc::new(platforms.into_iter().map(|d| d.digest).collect())
            })
            .await
    }
}

/// A container that runs a digest: its image, the digest verified for it, and the scan's note about it.
struct Running<'a> {
    image: &'a RunningImage,
    verified: Digest,
    note: Option<String>,
}

/// What is known of `object`'s namespace: defined among the objects, else the labels given (plus the name
/// label the API server adds), else unknown.
fn facts_of(
    object: &ManifestObject,
    defined: &BTreeMap<String, NamespaceFacts>,
    options: &ScanOptions,
) -> NamespaceFacts {
    let ns = object.namespace_or(&options.default_namespace).unwrap_or_default();
    defined.get(&ns).cloned().unwrap_or_else(|| NamespaceFacts {
        labels: options.namespace_labels.clone().map(|mut labels| {
            labels.insert(NAMESPACE_NAME_LABEL.to_owned(), ns.clone());
            labels
        }),
        annotations: BTreeMap::new(),
    })
}

/// A record per extracted artifact with the findings about it, then one per place only findings name
/// (a fetcher, an egress declaration).
fn artifact_records(
    artifacts: &[vouch_policies::extract::ExtractedArtifact],
    findings: &[Finding],
    running: &BTreeMap<String, Running<'_>>,
) -> Vec<ArtifactRecord> {
    let mut records: Vec<ArtifactRecord> = artifacts
        .iter()
        .map(|a| {
            let run = running.get(&a.location.pointer);
            // Several references in one field (a fetcher's script): told apart by the reference.
            let shared = artifacts.iter().filter(|b| b.location == a.location).count() > 1;
            let name = a.image.split_once('@').map_or(a.image.as_str(), |(n, _)| n);
            let results = findings
                .iter()
                .filter(|f| f.artifact == a.location && (!shared || f.reference.starts_with(name)))
                .map(ResultRecord::of)
                .chain(run.and_then(|r| r.note.clone()).map(ResultRecord::note))
                .collect::<Vec<_>>();
            let verified_digest = run.map(|r| r.verified.clone()).or_else(|| {
                findings.iter().find(|f| f.artifact == a.location).and_then(|f| f.digest.clone())
            });
            ArtifactRecord {
                container: a.location.name.clone(),
                field: a.location.kind.to_string(),
                pointer: a.location.pointer.clone(),
                reference: run.map_or_else(|| a.image.clone(), |r| r.image.spec_image.clone()),
                running_digest: run.and_then(|r| r.image.running.clone()),
                digest_source: if run.is_some() { DigestSource::Running } else { DigestSource::Spec },
                verified_digest,
                results,
            }
        })
        .collect();
    for f in findings {
        if artifacts.iter().any(|a| a.location == f.artifact) {
            continue;
        }
        let result = ResultRecord::of(f);
        match records.iter_mut().find(|r| r.pointer == f.artifact.pointer && r.container == f.artifact.name) {
            Some(r) => r.results.push(result),
            None => records.push(ArtifactRecord {
                container: f.artifact.name.clone(),
                field: f.artifact.kind.to_string(),
                pointer: f.artifact.pointer.clone(),
                reference: f.reference.clone(),
                running_digest: None,
                digest_source: DigestSource::Spec,
                verified_digest: f.digest.clone(),
                results: vec![result],
            }),
        }
    }
    records
}
