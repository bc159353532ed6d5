//! An OCI/Docker manifest or index as the registry client reads it (with the Content-Type a registry
//! sent), then ModelPack / ModelKit recognition and the model config.
//!
//! Input: one byte choosing the Content-Type, the manifest, then (after a NUL byte, which JSON never
//! contains) the config blob.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_attest::model::{detect_format, model_facts};
use vouch_attest::registry::{
    parse_manifest, ManifestKind, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
};
use vouch_attest::ArtifactRef;

const CONTENT_TYPES: [&str; 6] = [
    "",
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
];
const REFERENCE: &str =
    "registry.example/models/m@sha256:0000000000000000000000000000000000000000000000000000000000000000";

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let content_type = CONTENT_TYPES[usize::from(selector) % CONTENT_TYPES.len()];
    let (manifest, config) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(parsed) = parse_manifest(REFERENCE, content_type, manifest) else { return };
    let _ = parsed.subject();
    let _ = parsed.annotations();
    match parsed {
        ManifestKind::Index(index) => {
            let _ = index.platform_manifests();
        }
        ManifestKind::Image(image) => {
            let Ok(pinned) = REFERENCE.parse::<ArtifactRef>() else { return };
            if let Ok(Some(format)) = detect_format(&pinned, &image) {
                let _ = model_facts(&pinned, format, &image, config);
            }
        }
    }
});
