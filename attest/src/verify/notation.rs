//! Notation signatures of an image: referrers of artifact type `application/vnd.cncf.notary.signature`
//! (referrers API or its tag-schema fallback, capped like every other candidate), each envelope checked
//! against the manifest exactly as the registry serves it.

use std::sync::Arc;

use super::gather::{rejected, rejection_reason, verified};
use super::*;
use crate::notation::{
    self, ExpectedTarget, Level, NotationAuthority, MAX_ENVELOPE_BYTES, SIGNATURE_ARTIFACT_TYPE,
};

impl ArtifactVerifier {
    pub(super) async fn verify_notation(
        &self,
        pinned: &ArtifactRef,
        digest: &Digest,
        authority: &Arc<NotationAuthority>,
        requirement: &Requirement,
    ) -> Result<Verdict, VerifyError> {
        if *requirement != Requirement::Signature {
            let reason = format!(
                "a Notation authority vouches for image signatures only; {requirement} needs a cosign or Sigstore authority"
            );
            return Ok(rejected(pinned, requirement, reason, Vec::new()));
        }
        if authority.level == Level::Skip {
            // Notation's `skip`: nothing is verified and nothing is claimed.
            return Ok(verified(pinned, Facts::default()));
        }
        let (manifest, _) = self.inner.registry.fetch_parsed_manifest(pinned).await?;
        let expected = ExpectedTarget {
            media_type: manifest.media_type,
            digest: digest.clone(),
            size: u64::try_from(manifest.bytes.len()).unwrap_or(u64::MAX),
        };
        let now = chrono::Utc::now();
        let mut facts = Facts::default();
        let mut candidates = Vec::new();
        for (source, layer) in
            self.referrer_layers(pinned, SIGNATURE_ARTIFACT_TYPE, MAX_ENVELOPE_BYTES).await?
        {
            let checked = layer.map_err(|e| e.to_string()).and_then(|(media_type, blob)| {
                notation::verify(&media_type, &blob, &expected, authority, now).map_err(|e| e.to_string())
            });
            match checked {
                Ok(v) => facts.signatures.push(SignatureFacts {
                    signer: Signer::X509 { subject: v.subject, fingerprint: v.fingerprint },
                    source,
                    rekor_log_index: None,
                    signing_time: v.signing_time,
                    // Notation's signed annotations: the payload's targetArtifact.annotations
                    // (`notation sign --user-metadata k=v`).
                    annotations: v
                        .target
                        .annotations
                        .into_iter()
                        .map(|(k, value)| (k, serde_json::Value::String(value)))
                        .collect(),
                    checks: v.checks,
                    valid_until: v.valid_until,
                }),
                Err(e) => candidates.push(format!("{source}: {e}")),
            }
        }
        if !facts.signatures.is_empty() {
            return Ok(verified(pinned, facts));
        }
        let reason = rejection_reason(&candidates, &["Notation signature referrers".to_owned()]);
        Ok(rejected(pinned, requirement, reason, candidates))
    }
}
