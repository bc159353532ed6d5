//! The files of a model artifact, by path relative to the model root, with their SHA-256: what an OpenSSF
//! model signature covers. A raw layer is one file (its path from `org.cncf.model.filepath`, its digest the
//! layer's); a tar layer is fetched, decompressed and unpacked in memory within [`MAX_UNPACKED_MODEL_BYTES`].

use std::collections::BTreeMap;
use std::io::Read;

use sha2::{Digest as _, Sha256};

use super::{LayerArchive, ModelError, ModelFacts, ModelLayer};
use crate::digest::{Digest, DigestAlgorithm};
use crate::reference::ArtifactRef;
use crate::registry::{RegistryClient, RegistryError};

/// Most bytes read to list a model's files: tar layers as downloaded plus as unpacked.
pub const MAX_UNPACKED_MODEL_BYTES: u64 = 512 * 1024 * 1024;
/// Most files a model may have.
pub const MAX_MODEL_FILES: usize = 100_000;
/// The name model-signing gives a signature kept inside the model.
pub const SIGNATURE_FILE: &str = "model.sig";

/// The model's files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelFiles {
    /// Relative path → SHA-256 of the content.
    pub files: BTreeMap<String, Digest>,
    /// The content of a `model.sig` at the model root, if there is one (a candidate signature).
    pub signature_file: Option<Vec<u8>>,
}

/// List the files of `model` (the facts of `pinned`), fetching tar layers and a root `model.sig`.
pub async fn model_files(
    registry: &RegistryClient,
    pinned: &ArtifactRef,
    model: &ModelFacts,
) -> Result<ModelFiles, ModelError> {
    let reference = pinned.to_string();
    let tar_bytes: u64 = model
        .layers
        .iter()
        .filter(|l| l.archive != LayerArchive::Raw)
        .map(|l| l.size)
        .fold(0, u64::saturating_add);
    if tar_bytes > MAX_UNPACKED_MODEL_BYTES {
        return Err(ModelError::TooLarge {
            reference,
            reason: format!(
                "its archive layers total {tar_bytes} bytes, more than the limit of {MAX_UNPACKED_MODEL_BYTES}"
            ),
        });
    }
    let mut out = ModelFiles::default();
    let mut budget = MAX_UNPACKED_MODEL_BYTES - tar_bytes;
    for layer in &model.layers {
        let layer_err = |reason: String| ModelError::Layer {
            reference: reference.clone(),
            digest: layer.digest.clone(),
            reason,
        };
        match layer.archive {
            LayerArchive::Raw => {
                let path = raw_path(layer).map_err(layer_err)?;
                if layer.digest.algorithm() != DigestAlgorithm::Sha256 {
                    return Err(layer_err("raw layer digest is not SHA-256".into()));
                }
                if path == SIGNATURE_FILE {
                    let cap = super::signing::MAX_BUNDLE_BYTES;
                    out.signature_file = Some(fetch_layer(registry, pinned, layer, cap).await?);
                }
                insert(&mut out.files, path, layer.digest.clone()).map_err(layer_err)?;
            }
            archive => {
                let cap = usize::try_from(layer.size).unwrap_or(usize::MAX);
                let blob = fetch_layer(registry, pinned, layer, cap).await?;
                let mut left = budget;
                let entries = tokio::task::spawn_blocking(move || {
                    let r = unpack(&blob, archive, &mut left);
                    (r, left)
                })
                .await
                .map_err(|e| layer_err(format!("unpacking stopped: {e}")))?;
                let (entries, left) = entries;
                budget = left;
                let entries = entries.map_err(|e| match e {
                    UnpackError::Budget => ModelError::TooLarge {
                        reference: reference.clone(),
                        reason: format!("its files unpack to more than {MAX_UNPACKED_MODEL_BYTES} bytes"),
                    },
                    UnpackError::Invalid(reason) => layer_err(reason),
                })?;
                for entry in entries {
                    if entry.path == SIGNATURE_FILE {
                        out.signature_file = entry.content;
                    }
                    insert(&mut out.files, entry.path, entry.digest).map_err(layer_err)?;
                }
            }
        }
        if out.files.len() > MAX_MODEL_FILES {
            return Err(ModelError::TooLarge {
                reference,
                reason: format!("more than {MAX_MODEL_FILES} files"),
            });
        }
    }
    Ok(out)
}

/// Fetch a layer (at most `cap` bytes, digest-checked). Only transient registry trouble stays a registry
/// error; a layer that is missing, too large or not what its digest says makes the model uncheckable.
async fn fetch_layer(
    registry: &RegistryClient,
    pinned: &ArtifactRef,
    layer: &ModelLayer,
    cap: usize,
) -> Result<Vec<u8>, ModelError> {
    match registry.fetch_blob(pinned, &layer.digest, cap).await {
        Ok(blob) => Ok(blob),
        Err(e) if e.is_transient() => Err(ModelError::Registry(e)),
        Err(RegistryError::TooLarge { limit, .. }) => Err(ModelError::TooLarge {
            reference: pinned.to_string(),
            reason: format!("layer {} is larger than the {limit} bytes that may be fetched", layer.digest),
        }),
        Err(e) => Err(ModelError::Layer {
            reference: pinned.to_string(),
            digest: layer.digest.clone(),
            reason: format!("cannot be fetched: {e}"),
        }),
    }
}

/// The file a raw layer holds.
fn raw_path(layer: &ModelLayer) -> Result<String, String> {
    let path = layer.path.as_deref().ok_or_else(|| {
        format!("raw layer has no {} annotation, so its file has no name", super::FILEPATH_ANNOTATION)
    })?;
    normalise_path(path)
}

fn insert(files: &mut BTreeMap<String, Digest>, path: String, digest: Digest) -> Result<(), String> {
    if files.contains_key(&path) {
        return Err(format!("file {path:?} appears twice in the model"));
    }
    files.insert(path, digest);
    Ok(())
}

/// `./a/b` → `a/b`; absolute paths, `..` and empty components are refused.
fn normalise_path(path: &str) -> Result<String, String> {
    let trimmed = path.trim_start_matches("./").trim_end_matches('/');
    let bad = trimmed.is_empty()
        || trimmed.starts_with('/')
        || trimmed.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(format!(
            "file path {:?} is not a relative path in normal form",
            path.chars().take(200).collect::<String>()
        ));
    }
    Ok(trimmed.to_owned())
}

/// One regular file of a tar layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub path: String,
    pub digest: Digest,
    /// The content, kept only for a root `model.sig` small enough to be a signature.
    pub content: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UnpackError {
    /// The byte budget ran out.
    Budget,
    /// The layer is not a valid archive of regular files and directories.
    Invalid(String),
}

/// A reader that fails once more than `left` bytes were read, charging what it reads to `left`.
struct Budgeted<'a, R> {
    inner: R,
    left: &'a mut u64,
    exceeded: bool,
}

impl<R: Read> Read for Budgeted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.checked_sub(n as u64) {
            Some(rest) => {
                *self.left = rest;
                Ok(n)
            }
            None => {
                self.exceeded = true;
                Err(std::io::Error::other("model unpack budget exceeded"))
            }
        }
    }
}

/// Decompress and unpack a tar layer, hashing every regular file; `left` is the remaining byte budget.
pub(crate) fn unpack(blob: &[u8], archive: LayerArchive, left: &mut u64) -> Result<Vec<Entry>, UnpackError> {
    let decompressed: Box<dyn Read + '_> = match archive {
        LayerArchive::Tar => Box::new(blob),
        LayerArchive::TarGzip => Box::new(flate2::read::GzDecoder::new(blob)),
        LayerArchive::TarZstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(blob)
                .map_err(|e| UnpackError::Invalid(format!("not a zstd stream: {e}")))?,
        ),
        LayerArchive::Raw => return Err(UnpackError::Invalid("a raw layer is not an archive".into())),
    };
    let mut reader = Budgeted { inner: decompressed, left, exceeded: false };
    let result = read_tar(&mut reader);
    if reader.exceeded {
        return Err(UnpackError::Budget);
    }
    result.map_err(UnpackError::Invalid)
}

fn read_tar<R: Read>(reader: R) -> Result<Vec<Entry>, String> {
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    let entries = archive.entries().map_err(|e| format!("not a tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("bad tar entry: {e}"))?;
        let raw_path = entry.path().map_err(|e| format!("bad tar entry path: {e}"))?;
        let name =
            raw_path.to_str().ok_or_else(|| format!("tar entry path {raw_path:?} is not UTF-8"))?.to_owned();
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(format!("tar entry {name:?} is a link; links are not followed"));
        }
        if !(kind.is_file() || kind.is_contiguous()) {
            return Err(format!("tar entry {name:?} is neither a regular file nor a directory"));
        }
        let path = normalise_path(&name)?;
        let keep = path == SIGNATURE_FILE && entry.size() <= super::signing::MAX_BUNDLE_BYTES as u64;
        let mut hasher = Sha256::new();
        let mut content = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = entry.read(&mut buf).map_err(|e| format!("cannot read tar entry {name:?}: {e}"))?;
            if n == 0 {
                break;
            }
            let chunk = buf.get(..n).unwrap_or_default();
            hasher.update(chunk);
            if keep {
                content.extend_from_slice(chunk);
            }
        }
        let digest = Digest::from_bytes(DigestAlgorithm::Sha256, &hasher.finalize())
            .map_err(|e| format!("cannot hash tar entry {name:?}: {e}"))?;
        out.push(Entry { path, digest, content: keep.then_some(content) });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(content.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, *content).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn tar_and_gzip_layers_list_their_files() {
        let tar = tar_of(&[("./weights/a.bin", b"aaaa"), ("b.json", b"{}")]);
        for (blob, archive) in [(tar.clone(), LayerArchive::Tar), (gzip(&tar), LayerArchive::TarGzip)] {
            let mut left = 1 << 20;
            let entries = unpack(&blob, archive, &mut left).unwrap();
            let got: Vec<(&str, Digest)> =
                entries.iter().map(|e| (e.path.as_str(), e.digest.clone())).collect();
            assert_eq!(
                got,
                vec![("weights/a.bin", Digest::sha256_of(b"aaaa")), ("b.json", Digest::sha256_of(b"{}"))]
            );
            assert!(left < 1 << 20, "bytes are charged to the budget");
        }
    }

    #[test]
    fn budget_links_and_escapes_are_refused() {
        let tar = tar_of(&[("big.bin", &[0u8; 4096])]);
        let mut left = 1000;
        assert_eq!(unpack(&tar, LayerArchive::Tar, &mut left), Err(UnpackError::Budget));

        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "link", "/etc/passwd").unwrap();
        let link = b.into_inner().unwrap();
        let err = unpack(&link, LayerArchive::Tar, &mut (1 << 20)).unwrap_err();
        assert!(matches!(&err, UnpackError::Invalid(r) if r.contains("is a link")), "{err:?}");

        // The tar crate refuses to write "..", so patch the name into the header bytes.
        let mut escape = tar_of(&[("xx/evil", b"x")]);
        escape[..7].copy_from_slice(b"../evil");
        let mut h = tar::Header::new_old();
        h.as_mut_bytes().copy_from_slice(&escape[..512]);
        h.set_cksum();
        escape[..512].copy_from_slice(h.as_bytes());
        let err = unpack(&escape, LayerArchive::Tar, &mut (1 << 20)).unwrap_err();
        assert!(matches!(&err, UnpackError::Invalid(r) if r.contains("normal form")), "{err:?}");

        let err = unpack(b"garbage", LayerArchive::TarZstd, &mut (1 << 20)).unwrap_err();
        assert!(matches!(&err, UnpackError::Invalid(r) if r.contains("zstd")), "{err:?}");
    }

    #[test]
    fn paths_are_normalised_or_refused() {
        assert_eq!(normalise_path("./a/b").unwrap(), "a/b");
        assert_eq!(normalise_path("dir/").unwrap(), "dir");
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "."] {
            assert!(normalise_path(bad).is_err(), "{bad}");
        }
    }
}
