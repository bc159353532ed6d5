//! Checks: every requirement of one policy for one artifact — resolve the tag once, ask the verifier
//! whether the requirement's eligible authorities satisfy each requirement (signature with its threshold and
//! signed annotations, attestation with its Rego condition, SBOM, model signature), check the compliance
//! profiles that apply — as findings; and the `digest` finding of `requireDigest`.

use vouch_attest::registry::Credentials;
use vouch_attest::verify::{ArtifactVerifier, Facts, Requirement, Signer};
use vouch_attest::{ArtifactRef, Digest};

use super::matching::profile_labels;
use super::{
    cannot_verify, compliance, verifier_key, AdmissionInput, ArtifactCheck, Engine, Loaded, ObjectJson,
};
use crate::crd::{Mode, SignatureFormat};
use crate::decision::{ArtifactKind, ArtifactLocation, Finding, FindingResult};
use crate::extract::ExtractedArtifact;
use crate::policy_set::{CompiledAuthority, CompiledPolicy, CompiledRequirement};

impl Engine {
    /// Every requirement of `policy` for one artifact.
    pub(super) async fn check_policy(
        &self,
        loaded: &Loaded,
        policy: &CompiledPolicy,
        artifact: &ExtractedArtifact,
        reference: &ArtifactRef,
        input: &AdmissionInput,
    ) -> Vec<Finding> {
        let mut credentials = input.pull_credentials.clone();
        if let Some(c) = &policy.credentials {
            credentials.merge(c.clone());
        }
        let all = |result, reason: String, shown: &str, digest: Option<Digest>| {
            every_check(policy, artifact, input, shown, digest, result, &reason)
        };
        let resolved = match loaded.base.with_credentials(&credentials) {
            Ok(v) => v.resolve(reference).await,
            Err(e) => Err(e),
        };
        let pinned = match resolved {
            Ok(p) => p,
            Err(e) if e.is_transient() => {
                return all(FindingResult::Error, cannot_verify(&e), &artifact.image, None)
            }
            Err(e) => {
                return all(
                    FindingResult::Fail,
                    format!("cannot resolve the image: {e}"),
                    &artifact.image,
                    None,
                )
            }
        };
        let shown = pinned.to_string();
        let digest = pinned.digest().cloned();
        if let Some(declared) = &artifact.artifact_type {
            // A reference made of parts declares what the artifact is: it must be that, or nothing of it is
            // verified (a signed tool policy is not an egress allowlist, however well signed).
            let registry = match loaded.base.with_credentials(&credentials) {
                Ok(v) => v.registry().clone(),
                Err(e) => return all(FindingResult::Fail, e.to_string(), &shown, digest),
            };
            match self.artifact_type_of(&registry, &pinned).await {
                Ok(found) if found.as_deref() == Some(declared.as_str()) => {}
                Ok(found) => {
                    let found = found.unwrap_or_else(|| "none".to_owned());
                    let reason =
                        format!("the object declares artifactType {declared}, but the artifact's is {found}");
                    return all(FindingResult::Fail, reason, &shown, digest);
                }
                Err(e) if e.is_transient() => {
                    return all(FindingResult::Error, cannot_verify(&e), &shown, digest)
                }
                Err(e) => {
                    let reason = format!("cannot read the artifact's manifest for its artifactType: {e}");
                    return all(FindingResult::Fail, reason, &shown, digest);
                }
            }
        }
        let at = ArtifactCheck { loaded, policy, artifact, pinned: &pinned, input };
        let checks = policy.requirements.iter().map(|req| self.check_requirement(at, req, &credentials));
        let mut findings: Vec<Finding> = futures::future::join_all(checks).await;
        let profiles = compliance::profiles_for(policy, input);
        if !profiles.is_empty() {
            let verifier = match loaded.base.with_credentials(&credentials) {
                Ok(v) => v,
                Err(e) => return all(FindingResult::Fail, e.to_string(), &shown, digest),
            };
            for name in profiles {
                // On the heap: only profiles need it, and every check would carry it by value.
                let o = Box::pin(self.check_profile(at, &name, &verifier)).await;
                let label = format!("compliance {name}");
                findings.push(base_finding(policy, artifact, &shown, None, label, o.result, o.reason));
            }
        }
        for f in &mut findings {
            f.reference.clone_from(&shown);
            f.digest.clone_from(&digest);
        }
        findings
    }

    /// The artifactType of the manifest at `pinned` (an index's own), fetched once per digest.
    async fn artifact_type_of(
        &self,
        registry: &vouch_attest::registry::RegistryClient,
        pinned: &ArtifactRef,
    ) -> Result<Option<String>, std::sync::Arc<vouch_attest::registry::RegistryError>> {
        let Some(digest) = pinned.digest().cloned() else {
            return Ok(None);
        };
        if let Some(found) = self.shared.artifact_types.get(&digest).await {
            return Ok(found);
        }
        // On the heap: a registry request's future is large, and the check would carry it by value.
        Box::pin(self.shared.artifact_types.try_get_with(digest, async {
            let (_, kind) = registry.fetch_parsed_manifest(pinned).await?;
            Ok::<_, vouch_attest::registry::RegistryError>(match kind {
                vouch_attest::registry::ManifestKind::Image(m) => m.artifact_type,
                vouch_attest::registry::ManifestKind::Index(i) => i.artifact_type,
            })
        }))
        .await
    }

    /// One requirement: any of its eligible authorities may satisfy it, or, for a signature with
    /// `minAuthorities: N`, N of them with distinct signers.
    async fn check_requirement(
        &self,
        at: ArtifactCheck<'_>,
        req: &CompiledRequirement,
        credentials: &Credentials,
    ) -> Finding {
        let ArtifactCheck { policy, artifact, pinned, .. } = at;
        let needed = match req {
            CompiledRequirement::Signature { min_authorities, .. } => (*min_authorities).max(1),
            _ => 1,
        };
        let eligible: Vec<&CompiledAuthority> = policy.authorities.iter().filter(|a| req.admits(a)).collect();
        let mut failures = Vec::new();
        let mut errors = Vec::new();
        // Each pass with its authority's label, in the policy's order.
        let mut passes: Vec<(&str, Finding)> = Vec::new();
        for auth in &eligible {
            let pass = match self.check_authority(at, req, auth, credentials).await {
                Ok(pass) => pass,
                Err(AuthorityOutcome::Failed(why)) => {
                    failures.push(why);
                    continue;
                }
                Err(AuthorityOutcome::CannotVerify(why)) => {
                    errors.push(why);
                    continue;
                }
            };
            // Distinct signers: one key or identity behind two authorities counts once.
            if passes.iter().any(|(_, p)| p.signer.is_some() && p.signer == pass.signer) {
                let signer = pass.signer.as_deref().unwrap_or_default();
                failures.push(format!(
                    "{}: its signer ({signer}) already counts for another authority",
                    auth.label
                ));
                continue;
            }
            passes.push((auth.label.as_str(), pass));
            if passes.len() >= needed {
                let mut pass = threshold_pass(passes, needed, eligible.len());
                pass.policy.clone_from(&policy.name);
                pass.policy_namespace.clone_from(&policy.namespace);
                pass.mode = if self.shared.config.dry_run { Mode::Audit } else { policy.mode };
                pass.artifact = artifact.location.clone();
                return pass;
            }
        }
        let (result, reason) = if !errors.is_empty() {
            (FindingResult::Error, errors.join(", "))
        } else if needed > 1 {
            let verified: Vec<&str> = passes.iter().map(|(label, _)| *label).collect();
            let verified = if verified.is_empty() { "none".to_owned() } else { verified.join(", ") };
            let reason = format!(
                "{needed} of {} authorities must each have signed, {} did: verified: {verified}; not verified: {}",
                eligible.len(),
                passes.len(),
                failures.join(", ")
            );
            (FindingResult::Fail, reason)
        } else {
            (FindingResult::Fail, failures.join(", "))
        };
        base_finding(
            policy,
            artifact,
            &pinned.to_string(),
            pinned.digest().cloned(),
            req.label(),
            result,
            reason,
        )
    }

    /// Whether one authority satisfies `req`: a pass finding, or why not (a failure, or registry trouble).
    async fn check_authority(
        &self,
        at: ArtifactCheck<'_>,
        req: &CompiledRequirement,
        auth: &CompiledAuthority,
        credentials: &Credentials,
    ) -> Result<Finding, AuthorityOutcome> {
        use AuthorityOutcome::{CannotVerify, Failed};
        let ArtifactCheck { loaded, pinned, input, .. } = at;
        let verifier =
            match loaded.verifiers.get(&verifier_key(auth)).map(|v| v.with_credentials(credentials)) {
                Some(Ok(v)) => v,
                Some(Err(e)) => return Err(Failed(format!("{}: {e}", auth.label))),
                None => return Err(Failed(format!("{}: no verifier for this authority", auth.label))),
            };
        let requirement = match (auth.format, req) {
            (SignatureFormat::Cosign, CompiledRequirement::Signature { .. }) => Requirement::Signature,
            (SignatureFormat::Cosign, CompiledRequirement::Attestation { predicate_type, .. }) => {
                Requirement::Attestation { predicate_type: predicate_type.clone() }
            }
            (SignatureFormat::Cosign, CompiledRequirement::Sbom) => Requirement::Sbom,
            // A model-signing authority signs a model's files: it stands for the signature of models.
            (SignatureFormat::ModelSigning, CompiledRequirement::Signature { .. }) => {
                match verifier.model(pinned).await {
                    Ok(Some(_)) => Requirement::ModelSignature,
                    Ok(None) => {
                        return Err(Failed(format!(
                            "{}: signs models only, and this is not a model (ModelPack or ModelKit)",
                            auth.label
                        )))
                    }
                    Err(e) if e.is_transient() => return Err(CannotVerify(cannot_verify(&e))),
                    Err(e) => return Err(Failed(format!("{}: cannot read the model: {e}", auth.label))),
                }
            }
            (SignatureFormat::ModelSigning, _) => {
                return Err(Failed(format!(
                    "{}: a modelSigning authority satisfies only the signature requirement of models",
                    auth.label
                )))
            }
        };
        let verdict = match verifier.verify(pinned, &auth.authority, &requirement).await {
            Ok(v) => v,
            Err(e) if e.is_transient() => return Err(CannotVerify(cannot_verify(&e))),
            Err(e) => return Err(Failed(format!("{}: {e}", auth.label))),
        };
        let facts = match verdict.outcome {
            Ok(facts) => facts,
            Err(rejection) => return Err(Failed(rejected(req, auth, &rejection.reason))),
        };
        self.judge(req, auth, &facts, pinned, input, &verifier).await.map_err(Failed)
    }

    /// A verified requirement: a pass, unless a Rego condition rejects every attestation.
    async fn judge(
        &self,
        req: &CompiledRequirement,
        auth: &CompiledAuthority,
        facts: &Facts,
        pinned: &ArtifactRef,
        input: &AdmissionInput,
        verifier: &ArtifactVerifier,
    ) -> Result<Finding, String> {
        let mut pass = Finding {
            policy: String::new(),
            policy_namespace: None,
            mode: Mode::Enforce,
            requirement: req.label(),
            artifact: ArtifactLocation {
                kind: ArtifactKind::Container,
                name: String::new(),
                pointer: String::new(),
            },
            reference: pinned.to_string(),
            digest: pinned.digest().cloned(),
            result: FindingResult::Pass,
            reason: format!("verified against {}", auth.label),
            signer: None,
            rekor_log_index: None,
            sbom_digest: facts.sbom.as_ref().map(|s| s.digest.clone()),
        };
        let first_signature = match req {
            CompiledRequirement::Signature { annotations, .. } if !annotations.is_empty() => {
                let carrying =
                    facts.signatures.iter().find(|s| annotations.iter().all(|a| a.is_met_by(&s.annotations)));
                match carrying {
                    Some(s) => Some(s),
                    None => return Err(missing_annotations(auth, annotations, &facts.signatures)),
                }
            }
            _ => facts.signatures.first(),
        };
        pass.signer = first_signature.map(|s| signer_text(&s.signer));
        pass.rekor_log_index = first_signature.and_then(|s| s.rekor_log_index);
        if let Some(m) = &facts.model_signature {
            pass.signer = Some(signer_text(&m.signer));
            pass.rekor_log_index = m.rekor_log_index;
            pass.reason = format!("model signature over {} files verified against {}", m.files, auth.label);
        }
        let CompiledRequirement::Attestation { condition: Some(condition), .. } = req else {
            if let Some(a) = facts.attestations.first() {
                pass.signer.get_or_insert_with(|| signer_text(&a.signer));
                pass.rekor_log_index = pass.rekor_log_index.or(a.rekor_log_index);
            }
            return Ok(pass);
        };
        let mut reasons = Vec::new();
        // Conditions may look at the model's metadata (null for other artifacts).
        let model = verifier.model(pinned).await.ok().flatten();
        // The whole object (not only what extraction reads); unreadable: the condition is not met.
        let object = match input.object.as_ref().map(ObjectJson::whole).transpose() {
            Ok(o) => o,
            Err(e) => return Err(format!("{}: condition not evaluated: {e}", auth.label)),
        };
        for a in &facts.attestations {
            let rego_input =
                condition_input(&a.predicate_type, &a.predicate, pinned, model.as_deref(), object);
            let permit = match self.shared.rego_permits.clone().acquire_owned().await {
                Ok(p) => p,
                Err(_) => {
                    return Err(format!("{}: condition not evaluated (engine shutting down)", auth.label))
                }
            };
            let c = condition.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                c.evaluate(&rego_input)
            })
            .await;
            match outcome {
                Ok(Ok(o)) if o.allow => {
                    pass.signer = Some(signer_text(&a.signer));
                    pass.rekor_log_index = a.rekor_log_index;
                    pass.reason = format!("verified against {}; condition met", auth.label);
                    return Ok(pass);
                }
                Ok(Ok(o)) if o.reasons.is_empty() => reasons.push("condition not met".to_owned()),
                Ok(Ok(o)) => reasons.push(format!("condition not met: {}", o.reasons.join(", "))),
                Ok(Err(e)) => reasons.push(e.to_string()),
                Err(e) => reasons.push(format!("condition evaluation failed: {e}")),
            }
        }
        reasons.dedup();
        Err(format!("{}: {}", auth.label, reasons.join(", ")))
    }
}

/// The input document of a policy's Rego condition, for one verified attestation of `pinned`: its
/// predicate type and predicate (as signed, untrusted in shape), the artifact (with the model's facts,
/// null for other artifacts) and the admitted object.
pub fn condition_input(
    predicate_type: &str,
    predicate: &serde_json::Value,
    pinned: &ArtifactRef,
    model: Option<&vouch_attest::model::ModelFacts>,
    object: Option<&serde_json::Value>,
) -> serde_json::Value {
    serde_json::json!({
        "predicateType": predicate_type,
        "predicate": predicate,
        "artifact": {
            "reference": pinned.to_string(),
            "digest": pinned.digest().map(ToString::to_string),
            "model": model,
        },
        "object": object,
    })
}

/// The failure text for a rejected requirement.
fn rejected(req: &CompiledRequirement, auth: &CompiledAuthority, reason: &str) -> String {
    match req {
        CompiledRequirement::Signature { .. } => {
            format!("no signature verifies against {} ({reason})", auth.label)
        }
        CompiledRequirement::Attestation { predicate_type, .. } => {
            format!("no {predicate_type} attestation verifies against {} ({reason})", auth.label)
        }
        CompiledRequirement::Sbom => format!("no valid SBOM for {} ({reason})", auth.label),
    }
}

/// Why an authority did not satisfy a requirement.
enum AuthorityOutcome {
    /// It did not (a failure: no signature, wrong signer, condition not met, ...).
    Failed(String),
    /// It could not be verified (registry trouble: the failure policy decides).
    CannotVerify(String),
}

/// The pass of a requirement met by `passes` (label and pass per authority, distinct signers, at least
/// one): a single pass as it is, several as one naming every authority and signer.
fn threshold_pass(mut passes: Vec<(&str, Finding)>, needed: usize, eligible: usize) -> Finding {
    if passes.len() == 1 {
        return passes.remove(0).1;
    }
    let labels: Vec<&str> = passes.iter().map(|(label, _)| *label).collect();
    let reason =
        format!("verified against {} ({needed} of {eligible} authorities required)", labels.join(", "));
    let signers: Vec<&str> = passes.iter().filter_map(|(_, p)| p.signer.as_deref()).collect();
    let signer = (!signers.is_empty()).then(|| signers.join(", "));
    let mut pass = passes.remove(0).1;
    pass.reason = reason;
    pass.signer = signer;
    pass
}

/// Why a verified signature by `auth` does not count: none carries the required signed annotations.
fn missing_annotations(
    auth: &CompiledAuthority,
    wanted: &[crate::policy_set::SignedAnnotation],
    signatures: &[vouch_attest::verify::SignatureFacts],
) -> String {
    let wanted: Vec<String> = wanted.iter().map(|a| format!("{}={}", a.key, a.value)).collect();
    let found: Vec<String> = signatures
        .iter()
        .take(3)
        .map(|s| serde_json::to_string(&s.annotations).unwrap_or_default())
        .collect();
    format!(
        "{}: no verified signature carries the signed annotations {} (signed annotations found: {})",
        auth.label,
        wanted.join(", "),
        found.join(", ")
    )
}

/// The `digest` finding of a policy with `requireDigest`: the reference as written must name a digest.
pub(super) fn digest_finding(
    policy: &CompiledPolicy,
    artifact: &ExtractedArtifact,
    reference: &ArtifactRef,
) -> Finding {
    let (result, reason) = match reference.digest() {
        Some(d) => (FindingResult::Pass, format!("the reference names digest {d}")),
        None => (
            FindingResult::Fail,
            format!(
                "the reference names a tag, not a digest; policy {} requires references by digest (name@sha256:...)",
                policy.name
            ),
        ),
    };
    base_finding(
        policy,
        artifact,
        &artifact.image,
        reference.digest().cloned(),
        "digest".into(),
        result,
        reason,
    )
}

fn signer_text(s: &Signer) -> String {
    match s {
        Signer::Key { fingerprint } => format!("key {fingerprint}"),
        Signer::Certificate { subject, issuer } => format!("{subject} ({issuer})"),
        Signer::X509 { .. } => s.to_string(),
    }
}

/// One finding for every check `policy` makes of `artifact` (its requirements and the compliance profiles
/// that apply), all with one result and reason: when the artifact cannot be read or the budget ran out, no
/// check may pass unseen.
pub(super) fn every_check(
    policy: &CompiledPolicy,
    artifact: &ExtractedArtifact,
    input: &AdmissionInput,
    shown: &str,
    digest: Option<Digest>,
    result: FindingResult,
    reason: &str,
) -> Vec<Finding> {
    policy
        .requirements
        .iter()
        .map(|req| req.label())
        .chain(profile_labels(policy, input))
        .map(|label| base_finding(policy, artifact, shown, digest.clone(), label, result, reason.to_owned()))
        .collect()
}

pub(super) fn base_finding(
    policy: &CompiledPolicy,
    artifact: &ExtractedArtifact,
    reference: &str,
    digest: Option<Digest>,
    requirement: String,
    result: FindingResult,
    reason: String,
) -> Finding {
    Finding {
        policy: policy.name.clone(),
        policy_namespace: policy.namespace.clone(),
        mode: policy.mode,
        requirement,
        artifact: artifact.location.clone(),
        reference: reference.to_owned(),
        digest,
        result,
        reason,
        signer: None,
        rekor_log_index: None,
        sbom_digest: None,
    }
}
