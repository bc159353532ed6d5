//! Finding and checking the material one requirement needs, for the digest being verified: cosign
//! signature layers and attestations (the `.sig`/`.att` tags), Sigstore bundles among the referrers (the
//! referrers API or its tag-schema fallback), model signatures inside model artifacts, SBOMs — each
//! candidate bounded, each verified against the authority's policy, the first that holds taken.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cosign::{
    self, BundleClaim, CosignError, SignatureLayer, BUNDLE_ARTIFACT_TYPE, DSSE_MEDIA_TYPE,
    SIMPLE_SIGNING_MEDIA_TYPE,
};
use crate::digest::Digest;
use crate::intoto::{Statement, CYCLONEDX_BOM};
use crate::model::files::{model_files, SIGNATURE_FILE};
use crate::model::signing::verify_model_bundle;
use crate::model::ModelError;
use crate::reference::ArtifactRef;
use crate::registry::{Descriptor, ManifestKind, RegistryError};
use crate::sbom::{CYCLONEDX_MEDIA_TYPE, MAX_SBOM_BYTES};
use crate::sigstore_verify::{Authority, VerificationPolicy, VerifiedBundle};

use super::*;

impl ArtifactVerifier {
    pub(super) async fn verify_uncached(
        &self,
        pinned: &ArtifactRef,
        authority: &Authority,
        requirement: &Requirement,
    ) -> Result<Verdict, VerifyError> {
        let digest = pinned
            .digest()
            .cloned()
            .ok_or_else(|| VerifyError::Config { reason: "unpinned reference".into() })?;
        if let Authority::Notation(notation) = authority {
            return self.verify_notation(pinned, &digest, notation, requirement).await;
        }
        let policy = self.policy(authority);
        let mut facts = Facts::default();
        let mut candidates = Vec::new();
        let mut searched = Vec::new();
        match requirement {
            Requirement::Signature => {
                let (tag, layers) = self.cosign_layers(pinned, cosign::SIGNATURE_SUFFIX).await?;
                searched.push(tag.clone());
                for (d, layer) in layers {
                    let source = Source::CosignTag { tag: tag.clone(), layer: d.digest.clone() };
                    match layer.and_then(|l| {
                        cosign::verify_signature_layer(&l, &digest, &self.inner.sigstore, &policy)
                    }) {
                        Ok(v) => facts.signatures.push(SignatureFacts {
                            annotations: v.payload.optional.clone(),
                            ..signature_facts(&v.verified, source)
                        }),
                        Err(e) => candidates.push(format!("{source}: {e}")),
                    }
                }
                searched.push("Sigstore bundle referrers".into());
                for (source, claim) in
                    self.bundle_referrers(pinned, &digest, &policy, &mut candidates).await?
                {
                    match claim {
                        (v, BundleClaim::Signature(annotations)) => facts
                            .signatures
                            .push(SignatureFacts { annotations, ..signature_facts(&v, source) }),
                        (_, BundleClaim::Attestation(st)) => candidates.push(format!(
                            "{source}: an attestation ({}), not an image signature",
                            st.predicate_type
                        )),
                    }
                }
                if !facts.signatures.is_empty() {
                    return Ok(verified(pinned, facts));
                }
            }
            Requirement::Attestation { predicate_type } => {
                let found =
                    self.attestations(pinned, &digest, &policy, &mut candidates, &mut searched).await?;
                for (source, v, st) in found {
                    if &st.predicate_type == predicate_type {
                        facts.attestations.push(attestation_facts(&v, st, source));
                    } else {
                        candidates.push(format!(
                            "{source}: predicate type {:?}, not {predicate_type:?}",
                            st.predicate_type
                        ));
                    }
                }
                if !facts.attestations.is_empty() {
                    return Ok(verified(pinned, facts));
                }
            }
            Requirement::Sbom => {
                if self
                    .find_sbom(pinned, &digest, &policy, &mut facts, &mut candidates, &mut searched)
                    .await?
                {
                    return Ok(verified(pinned, facts));
                }
            }
            Requirement::ModelSignature => {
                // Boxed: listing a model's files is a deep future, kept off every other requirement's.
                let search = Box::pin(self.find_model_signature(
                    pinned,
                    &policy,
                    &mut facts,
                    &mut candidates,
                    &mut searched,
                ));
                if let Err(reason) = search.await? {
                    return Ok(rejected(pinned, requirement, reason, candidates));
                }
                if facts.model_signature.is_some() {
                    return Ok(verified(pinned, facts));
                }
            }
        }
        Ok(rejected(pinned, requirement, rejection_reason(&candidates, &searched), candidates))
    }

    /// The layers of `sha256-<hex>.<suffix>` (none when the tag does not exist), blobs fetched and capped.
    async fn cosign_layers(
        &self,
        pinned: &ArtifactRef,
        suffix: &str,
    ) -> Result<(String, Layers), VerifyError> {
        let tag_ref = cosign::signature_tag(pinned, suffix)
            .map_err(|e| VerifyError::Config { reason: e.to_string() })?;
        let tag = tag_ref.tag().unwrap_or_default().to_owned();
        let manifest = match self.inner.registry.fetch_parsed_manifest(&tag_ref).await {
            Ok((_, ManifestKind::Image(m))) => m,
            Ok((_, ManifestKind::Index(_))) => {
                let d = Descriptor {
                    media_type: crate::registry::OCI_INDEX.to_owned(),
                    digest: Digest::sha256_of(b""),
                    size: 0,
                    artifact_type: None,
                    annotations: Default::default(),
                    platform: None,
                };
                let err = CosignError::Unexpected {
                    what: "cosign tag",
                    reason: format!("{tag} is an index, not a signature manifest"),
                };
                return Ok((tag, vec![(d, Err(err))]));
            }
            Err(RegistryError::NotFound { .. }) => return Ok((tag, Vec::new())),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for d in manifest.layers.into_iter().take(self.inner.options.max_candidates) {
            let cap = if d.media_type == SIMPLE_SIGNING_MEDIA_TYPE {
                cosign::MAX_SIGNATURE_BLOB_BYTES
            } else if d.media_type == CYCLONEDX_MEDIA_TYPE {
                MAX_SBOM_BYTES
            } else {
                cosign::MAX_ENVELOPE_BLOB_BYTES
            };
            let layer = match self.inner.registry.fetch_blob(&tag_ref, &d.digest, cap).await {
                Ok(blob) => SignatureLayer::from_parts(d.clone(), blob),
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => Err(CosignError::Registry(e)),
            };
            out.push((d, layer));
        }
        Ok((tag, out))
    }

    /// Verified Sigstore bundle referrers of the artifact; failures go to `candidates`.
    async fn bundle_referrers(
        &self,
        pinned: &ArtifactRef,
        digest: &Digest,
        policy: &VerificationPolicy,
        candidates: &mut Vec<String>,
    ) -> Result<Vec<(Source, (VerifiedBundle, BundleClaim))>, VerifyError> {
        let mut out = Vec::new();
        for (source, blob) in
            self.referrer_blobs(pinned, BUNDLE_ARTIFACT_TYPE, cosign::MAX_ENVELOPE_BLOB_BYTES).await?
        {
            match blob.and_then(|b| cosign::verify_bundle_json(&b, digest, &self.inner.sigstore, policy)) {
                Ok(v) => out.push((source, v)),
                Err(e) => candidates.push(format!("{source}: {e}")),
            }
        }
        Ok(out)
    }

    /// The first layer blob of each referrer of `artifact_type`.
    async fn referrer_blobs(
        &self,
        pinned: &ArtifactRef,
        artifact_type: &str,
        cap: usize,
    ) -> Result<Vec<(Source, Result<Vec<u8>, CosignError>)>, VerifyError> {
        let layers = self.referrer_layers(pinned, artifact_type, cap).await?;
        Ok(layers.into_iter().map(|(source, layer)| (source, layer.map(|(_, blob)| blob))).collect())
    }

    /// The first layer of each referrer of `artifact_type`, as (media type, blob); at most
    /// `max_candidates` referrers, each bound to this artifact by its own `subject`.
    pub(super) async fn referrer_layers(
        &self,
        pinned: &ArtifactRef,
        artifact_type: &str,
        cap: usize,
    ) -> Result<Vec<(Source, Result<(String, Vec<u8>), CosignError>)>, VerifyError> {
        let list = self.inner.registry.referrers(pinned, Some(artifact_type)).await?;
        let subject = pinned.digest();
        let mut out = Vec::new();
        for d in list.into_iter().take(self.inner.options.max_candidates) {
            let source = Source::Referrer { manifest: d.digest.clone() };
            let manifest_ref = pinned.with_digest(d.digest.clone());
            let blob = match self.inner.registry.fetch_parsed_manifest(&manifest_ref).await {
                // A referrers list (the tag-schema index is writable by anyone who can push) may name a
                // manifest about another artifact: only the manifest's own subject binds it to this one,
                // and for unsigned material (an SBOM referrer) nothing else does.
                Ok((_, ManifestKind::Image(m))) if m.subject.as_ref().map(|s| &s.digest) != subject => {
                    Err(CosignError::Unexpected {
                        what: "referrer manifest",
                        reason: match &m.subject {
                            Some(s) => format!("its subject is {}, not this artifact", s.digest),
                            None => "it has no subject".into(),
                        },
                    })
                }
                Ok((_, ManifestKind::Image(m))) => match m.layers.first() {
                    Some(layer) => {
                        match self.inner.registry.fetch_blob(&manifest_ref, &layer.digest, cap).await {
                            Ok(b) => Ok((layer.media_type.clone(), b)),
                            Err(e) if e.is_transient() => return Err(e.into()),
                            Err(e) => Err(CosignError::Registry(e)),
                        }
                    }
                    None => {
                        Err(CosignError::Unexpected { what: "referrer manifest", reason: "no layers".into() })
                    }
                },
                Ok((_, ManifestKind::Index(_))) => Err(CosignError::Unexpected {
                    what: "referrer manifest",
                    reason: "an index, not an artifact manifest".into(),
                }),
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => Err(CosignError::Registry(e)),
            };
            out.push((source, blob));
        }
        Ok(out)
    }

    /// Verified attestations (cosign `.att` layers and bundle referrers), any predicate type.
    async fn attestations(
        &self,
        pinned: &ArtifactRef,
        digest: &Digest,
        policy: &VerificationPolicy,
        candidates: &mut Vec<String>,
        searched: &mut Vec<String>,
    ) -> Result<Vec<(Source, VerifiedBundle, Statement)>, VerifyError> {
        let mut out = Vec::new();
        let (tag, layers) = self.cosign_layers(pinned, cosign::ATTESTATION_SUFFIX).await?;
        searched.push(tag.clone());
        for (d, layer) in layers {
            let source = Source::CosignTag { tag: tag.clone(), layer: d.digest.clone() };
            if d.media_type != DSSE_MEDIA_TYPE {
                candidates.push(format!("{source}: not a DSSE envelope layer ({})", d.media_type));
                continue;
            }
            match layer
                .and_then(|l| cosign::verify_attestation_layer(&l, digest, &self.inner.sigstore, policy))
            {
                Ok(v) => out.push((source, v.verified, v.statement)),
                Err(e) => candidates.push(format!("{source}: {e}")),
            }
        }
        searched.push("Sigstore bundle referrers".into());
        for (source, (v, claim)) in self.bundle_referrers(pinned, digest, policy, candidates).await? {
            if let BundleClaim::Attestation(st) = claim {
                out.push((source, v, st));
            }
        }
        Ok(out)
    }

    /// Look for a model signature by the authority over the model's files: Sigstore bundle referrers of
    /// the model manifest, then a `model.sig` inside the model. `Ok(Err(reason))`: the artifact cannot
    /// carry a model signature at all (not a model, or its files cannot be listed).
    async fn find_model_signature(
        &self,
        pinned: &ArtifactRef,
        policy: &VerificationPolicy,
        facts: &mut Facts,
        candidates: &mut Vec<String>,
        searched: &mut Vec<String>,
    ) -> Result<Result<(), String>, VerifyError> {
        let model = match self.model(pinned).await {
            Ok(Some(m)) => m,
            Ok(None) => {
                return Ok(Err("not a model artifact (neither a ModelPack nor a ModelKit manifest)".into()))
            }
            // A malformed model is a rejection; registry trouble is for the failure policy.
            Err(VerifyError::Model(e)) if !matches!(*e, ModelError::Registry(_)) => {
                return Ok(Err(e.to_string()))
            }
            Err(e) => return Err(e),
        };
        let files = match model_files(&self.inner.registry, pinned, &model).await {
            Ok(f) => f,
            Err(e @ ModelError::Registry(_)) => return Err(VerifyError::Model(Arc::new(e))),
            Err(e) => return Ok(Err(format!("the model's files cannot be listed: {e}"))),
        };
        searched.push("Sigstore bundle referrers".into());
        let mut found: Vec<(Source, Result<Vec<u8>, String>)> = self
            .referrer_blobs(pinned, BUNDLE_ARTIFACT_TYPE, crate::model::signing::MAX_BUNDLE_BYTES)
            .await?
            .into_iter()
            .map(|(source, blob)| (source, blob.map_err(|e| e.to_string())))
            .collect();
        searched.push(format!("{SIGNATURE_FILE} in the model"));
        if let Some(sig) = &files.signature_file {
            found.push((Source::ModelFile { path: SIGNATURE_FILE.into() }, Ok(sig.clone())));
        }
        for (source, blob) in found {
            match blob.and_then(|b| {
                verify_model_bundle(&b, &files.files, &self.inner.sigstore, policy).map_err(|e| e.to_string())
            }) {
                Ok(v) => {
                    let sig = v.facts(source.clone());
                    facts.signatures.push(SignatureFacts {
                        signer: sig.signer.clone(),
                        source,
                        rekor_log_index: sig.rekor_log_index,
                        signing_time: sig.signing_time,
                        annotations: BTreeMap::new(),
                        checks: Vec::new(),
                        valid_until: None,
                    });
                    facts.model_signature = Some(sig);
                    return Ok(Ok(()));
                }
                Err(e) => candidates.push(format!("{source}: {e}")),
            }
        }
        Ok(Ok(()))
    }

    /// Look for a valid SBOM: an attested CycloneDX statement, then the `.sbom` tag, then referrers.
    async fn find_sbom(
        &self,
        pinned: &ArtifactRef,
        digest: &Digest,
        policy: &VerificationPolicy,
        facts: &mut Facts,
        candidates: &mut Vec<String>,
        searched: &mut Vec<String>,
    ) -> Result<bool, VerifyError> {
        for (source, v, st) in self.attestations(pinned, digest, policy, candidates, searched).await? {
            if st.predicate_type != CYCLONEDX_BOM {
                continue;
            }
            match crate::sbom::from_predicate(&st.predicate) {
                Ok(sbom) => {
                    facts.sbom = Some(sbom);
                    facts.sbom_source =
                        Some(SbomSource { source: source.clone(), signer: Some(Signer::from(&v.signer)) });
                    facts.attestations.push(attestation_facts(&v, st, source));
                    return Ok(true);
                }
                Err(e) => candidates.push(format!("{source}: {e}")),
            }
        }
        let (tag, layers) = self.cosign_layers(pinned, cosign::SBOM_SUFFIX).await?;
        searched.push(tag.clone());
        for (d, layer) in layers {
            let source = Source::CosignTag { tag: tag.clone(), layer: d.digest.clone() };
            if d.media_type != CYCLONEDX_MEDIA_TYPE {
                candidates.push(format!("{source}: not a CycloneDX JSON layer ({})", d.media_type));
                continue;
            }
            match layer.and_then(|l| crate::sbom::parse_cyclonedx(&l.blob).map_err(CosignError::from)) {
                Ok(sbom) => {
                    facts.sbom = Some(sbom);
                    facts.sbom_source = Some(SbomSource { source, signer: None });
                    return Ok(true);
                }
                Err(e) => candidates.push(format!("{source}: {e}")),
            }
        }
        searched.push("CycloneDX referrers".into());
        for (source, blob) in self.referrer_blobs(pinned, CYCLONEDX_MEDIA_TYPE, MAX_SBOM_BYTES).await? {
            match blob.and_then(|b| crate::sbom::parse_cyclonedx(&b).map_err(CosignError::from)) {
                Ok(sbom) => {
                    facts.sbom = Some(sbom);
                    facts.sbom_source = Some(SbomSource { source, signer: None });
                    return Ok(true);
                }
                Err(e) => candidates.push(format!("{source}: {e}")),
            }
        }
        Ok(false)
    }
}

/// One sentence for a rejection: nothing found (and where it was looked for), or the first failure.
pub(super) fn rejection_reason(candidates: &[String], searched: &[String]) -> String {
    match candidates.first() {
        None => format!("nothing found (looked in {})", searched.join(", ")),
        Some(first) if candidates.len() == 1 => format!("the only candidate failed: {first}"),
        Some(first) => format!("none of {} candidates verified; first: {first}", candidates.len()),
    }
}

pub(super) fn verified(pinned: &ArtifactRef, facts: Facts) -> Verdict {
    Verdict { reference: pinned.clone(), outcome: Ok(facts) }
}

pub(super) fn rejected(
    pinned: &ArtifactRef,
    requirement: &Requirement,
    reason: String,
    candidates: Vec<String>,
) -> Verdict {
    Verdict {
        reference: pinned.clone(),
        outcome: Err(Rejection { requirement: requirement.to_string(), reason, candidates }),
    }
}

fn signature_facts(v: &VerifiedBundle, source: Source) -> SignatureFacts {
    SignatureFacts {
        signer: Signer::from(&v.signer),
        source,
        rekor_log_index: v.tlog_entries.first().map(|e| e.log_index),
        signing_time: v.signing_time,
        annotations: BTreeMap::new(),
        checks: Vec::new(),
        valid_until: None,
    }
}

fn attestation_facts(v: &VerifiedBundle, st: Statement, source: Source) -> AttestationFacts {
    AttestationFacts {
        predicate_type: st.predicate_type,
        predicate: st.predicate,
        signer: Signer::from(&v.signer),
        source,
        rekor_log_index: v.tlog_entries.first().map(|e| e.log_index),
        signing_time: v.signing_time,
    }
}
