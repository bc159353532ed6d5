//! An independent writer of cosign's signature format, so vouch's verifier is never only checked against
//! vouch's own signer: the payload is built with `serde_json::json!`, signed with p256 directly, and the
//! signature manifest is written by hand; only the registry client's push_blob/push_manifest are shared.

use base64::Engine;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{DerSignature, SigningKey};
use sha2::{Digest as _, Sha256};

use vouch_attest::registry::RegistryClient;
use vouch_attest::{ArtifactRef, Digest};

/// The simple-signing payload cosign writes for `repository` (no tag) and `digest` (`sha256:<hex>`).
pub fn payload(repository: &str, digest: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature"
        },
        "optional": null
    }))
    .unwrap_or_default()
}

/// ECDSA P-256 / SHA-256 signature, ASN.1 DER, base64 — what cosign puts in the signature annotation.
pub fn sign_b64(key: &SigningKey, message: &[u8]) -> String {
    let sig: DerSignature = key.sign(message);
    base64::engine::general_purpose::STANDARD.encode(sig.as_bytes())
}

/// One layer to write: the blob and its signature annotation value.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The payload bytes stored as the layer blob.
    pub blob: Vec<u8>,
    /// Base64 signature annotation.
    pub signature_b64: String,
}

/// Write (replace) the `sha256-<hex>.sig` manifest of `subject` (`repository@digest` is taken from
/// `subject`'s repository and `subject_digest`) with these layers.
pub async fn write_signature_manifest(
    client: &RegistryClient,
    repository: &ArtifactRef,
    subject_digest: &str,
    layers: &[Layer],
) -> anyhow::Result<String> {
    let tag = format!("{}.sig", subject_digest.replace(':', "-"));
    let tag_ref = repository.with_tag(&tag)?;
    let mut layer_json = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        client.push_blob(&tag_ref, &l.blob).await?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&l.blob)));
        diff_ids.push(digest.clone());
        layer_json.push(serde_json::json!({
            "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
            "size": l.blob.len(),
            "digest": digest,
            "annotations": {"dev.cosignproject.cosign/signature": l.signature_b64}
        }));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "", "os": "", "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids}
    }))?;
    client.push_blob(&tag_ref, &config).await?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": config.len(),
            "digest": format!("sha256:{}", hex::encode(Sha256::digest(&config)))
        },
        "layers": layer_json
    }))?;
    let d: Digest =
        client.push_manifest(&tag_ref, &manifest, "application/vnd.oci.image.manifest.v1+json").await?;
    Ok(d.to_string())
}

/// Sign `repository@digest` with `key` the way `cosign sign --key` does (without Rekor).
pub async fn sign(
    client: &RegistryClient,
    repository: &ArtifactRef,
    digest: &str,
    key: &SigningKey,
) -> anyhow::Result<String> {
    let p = payload(&repository.repository_name(), digest);
    let layer = Layer { signature_b64: sign_b64(key, &p), blob: p };
    write_signature_manifest(client, repository, digest, &[layer]).await
}

/// The PEM public key of `key`, as `cosign generate-key-pair` writes `cosign.pub`.
pub fn public_key_pem(key: &SigningKey) -> String {
    use p256::pkcs8::EncodePublicKey as _;
    key.verifying_key().to_public_key_pem(p256::pkcs8::LineEnding::LF).unwrap_or_default()
}
