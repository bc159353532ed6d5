//! The last check of a model signature over a directory on disk: the regular files under the model root
//! (less ignored paths and the signature file itself) must be exactly the signed resources, each file (or
//! each shard of it) hashing to the signed SHA-256. The walk does not follow symbolic links, refuses
//! special files, and stays within [`ModelLimits`]; files are hashed as streams.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::{Digest, DigestAlgorithm};

use super::statement::{check_digest, compare_names, missing, IgnoreSet, Method, Shard, SignedModel};
use super::{ModelLimits, ModelSignatureError};

type Result<T, E = ModelSignatureError> = std::result::Result<T, E>;

/// Check the files under `root` against `signed`; returns the number of signed files.
pub(super) fn check_directory(
    root: &Path,
    signed: &SignedModel,
    bundle_json: &[u8],
    limits: &ModelLimits,
) -> Result<usize> {
    let mut files = walk_model(root, &signed.ignore, limits)?;
    drop_signature_file(&mut files, signed, bundle_json)?;
    let total: u64 = files.values().map(|f| f.size).fold(0, u64::saturating_add);
    if total > limits.max_total_bytes {
        return Err(ModelSignatureError::ModelTooLarge { bytes: total, max: limits.max_total_bytes });
    }
    match signed.method {
        Method::Files => {
            let expected = signed.expected_files()?;
            compare_names(expected.keys(), files.keys())?;
            for (name, digest) in &expected {
                let file = files.get(name).ok_or_else(|| missing(name, 1))?;
                let actual = hash_range(&file.path, 0, file.size)?;
                check_digest(name, digest, &actual)?;
            }
            Ok(expected.len())
        }
        Method::Shards { shard_size } => {
            let expected = signed.expected_shards(shard_size)?;
            // model-signing records no shards for empty files, so they are not part of the model.
            let non_empty: BTreeMap<&String, &ModelFile> = files.iter().filter(|(_, f)| f.size > 0).collect();
            compare_names(expected.keys(), non_empty.keys().copied())?;
            for (name, shards) in &expected {
                let file = non_empty.get(name).ok_or_else(|| missing(name, 1))?;
                check_shards(name, file, shard_size, shards)?;
            }
            Ok(expected.len())
        }
    }
}

/// A regular file found in the model directory.
#[derive(Debug)]
struct ModelFile {
    path: PathBuf,
    size: u64,
}

/// All regular files under `root` that are not ignored, by `/`-separated relative path.
fn walk_model(root: &Path, ignore: &IgnoreSet, limits: &ModelLimits) -> Result<BTreeMap<String, ModelFile>> {
    let io = |path: &Path, e: std::io::Error| ModelSignatureError::Io {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let meta = std::fs::metadata(root).map_err(|e| io(root, e))?;
    if !meta.is_dir() {
        return Err(io(root, std::io::Error::other("not a directory")));
    }
    let mut files = BTreeMap::new();
    let mut pending: Vec<(PathBuf, String, usize)> = vec![(root.to_owned(), String::new(), 0)];
    while let Some((dir, rel_dir, depth)) = pending.pop() {
        if depth > limits.max_depth {
            return Err(ModelSignatureError::TooDeep { max: limits.max_depth, path: rel_dir });
        }
        for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let entry = entry.map_err(|e| io(&dir, e))?;
            let name = entry.file_name();
            let name = name.to_str().ok_or_else(|| ModelSignatureError::NonUtf8Path {
                path: entry.path().to_string_lossy().into_owned(),
            })?;
            let rel = if rel_dir.is_empty() { name.to_owned() } else { format!("{rel_dir}/{name}") };
            if ignore.covers(&rel) {
                continue;
            }
            // `file_type` does not follow symbolic links.
            let file_type = entry.file_type().map_err(|e| io(&entry.path(), e))?;
            if file_type.is_symlink() {
                return Err(ModelSignatureError::Symlink { path: rel });
            } else if file_type.is_dir() {
                pending.push((entry.path(), rel, depth + 1));
            } else if file_type.is_file() {
                if files.len() >= limits.max_files {
                    return Err(ModelSignatureError::TooManyFiles { max: limits.max_files });
                }
                let size = entry.metadata().map_err(|e| io(&entry.path(), e))?.len();
                files.insert(rel, ModelFile { path: entry.path(), size });
            } else {
                return Err(ModelSignatureError::SpecialFile { path: rel });
            }
        }
    }
    Ok(files)
}

/// Leave out an unsigned file that is the signature bundle itself (model-signing's tools skip the signature
/// file when it lies inside the model, without always recording it in `ignore_paths`).
fn drop_signature_file(
    files: &mut BTreeMap<String, ModelFile>,
    signed: &SignedModel,
    bundle_json: &[u8],
) -> Result<()> {
    let signed_paths = signed.signed_paths();
    let candidates: Vec<String> = files
        .iter()
        .filter(|(name, f)| f.size == bundle_json.len() as u64 && !signed_paths.contains(name.as_str()))
        .map(|(name, _)| name.clone())
        .collect();
    for name in candidates {
        let Some(file) = files.get(&name) else {
            continue;
        };
        let io =
            |e: std::io::Error| ModelSignatureError::Io { path: file.path.clone(), reason: e.to_string() };
        // The size equals the bundle's, which is capped, so reading the file whole is bounded.
        if std::fs::read(&file.path).map_err(io)? == bundle_json {
            files.remove(&name);
        }
    }
    Ok(())
}

/// The shards model-signing makes of a file of `size` bytes must be exactly the signed ones, each matching.
fn check_shards(name: &str, file: &ModelFile, shard_size: u64, signed: &[Shard]) -> Result<()> {
    let mut bounds = Vec::new();
    let mut start = 0;
    while start < file.size {
        let end = start.saturating_add(shard_size).min(file.size);
        bounds.push((start, end));
        start = end;
    }
    let signed_bounds: Vec<(u64, u64)> = signed.iter().map(|s| (s.start, s.end)).collect();
    if bounds != signed_bounds {
        let signed_size = signed.last().map_or(0, |s| s.end);
        return Err(ModelSignatureError::FileDigestMismatch {
            name: name.to_owned(),
            expected: format!("{} shards over {signed_size} bytes", signed.len()),
            actual: format!("{} bytes", file.size),
        });
    }
    for shard in signed {
        let actual = hash_range(&file.path, shard.start, shard.end)?;
        if actual != shard.digest {
            return Err(ModelSignatureError::FileDigestMismatch {
                name: format!("{name}:{}:{}", shard.start, shard.end),
                expected: shard.digest.to_string(),
                actual: actual.to_string(),
            });
        }
    }
    Ok(())
}

/// SHA-256 of bytes `start..end` of the file, streamed.
fn hash_range(path: &Path, start: u64, end: u64) -> Result<Digest> {
    let io = |e: std::io::Error| ModelSignatureError::Io { path: path.to_owned(), reason: e.to_string() };
    let mut file = std::fs::File::open(path).map_err(io)?;
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut reader = file.take(end.saturating_sub(start));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut read_total = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        read_total += n as u64;
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    if read_total != end.saturating_sub(start) {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "file changed size while being read",
        )));
    }
    Digest::from_bytes(DigestAlgorithm::Sha256, &hasher.finalize())
        .map_err(|e| io(std::io::Error::other(e.to_string())))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{bundle, files_serialization, key_policy, verifier, Resource};
    use super::super::{verify_model_bundle, verify_model_directory, verify_model_directory_with_limits};
    use super::*;
    use crate::keys::SigningKey;
    use serde_json::json;

    fn model_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.bin"), vec![7u8; 25]).unwrap();
        std::fs::write(dir.path().join("sub/b.txt"), b"hello").unwrap();
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        dir
    }

    fn file_resources(dir: &Path) -> Vec<Resource> {
        ["a.bin", "empty", "sub/b.txt"]
            .iter()
            .map(|n| {
                (n.to_string(), "sha256".to_string(), Digest::sha256_of(&std::fs::read(dir.join(n)).unwrap()))
            })
            .collect()
    }

    fn verify(dir: &Path, bundle: &[u8], key: &SigningKey) -> Result<usize> {
        verify_model_directory(dir, bundle, &verifier(), &key_policy(key)).map(|v| v.files)
    }

    #[test]
    fn files_serialization_with_nested_dirs_and_ignored_signature() {
        let key = SigningKey::generate();
        let dir = model_dir();
        let b = bundle(&key, files_serialization(), &file_resources(dir.path()));
        // The signature file inside the model is ignored, as its signed ignore_paths say.
        std::fs::write(dir.path().join("model.sig"), &b).unwrap();
        assert_eq!(verify(dir.path(), &b, &key).unwrap(), 3);
    }

    #[test]
    fn shard_serialization_is_verified_per_shard() {
        let key = SigningKey::generate();
        let dir = model_dir();
        let shard = |name: &str, start: usize, end: usize| {
            let bytes = std::fs::read(dir.path().join(name)).unwrap();
            (
                format!("{name}:{start}:{end}"),
                "sha256-sharded-10".to_string(),
                Digest::sha256_of(&bytes[start..end]),
            )
        };
        // a.bin is 25 bytes: shards 0-10, 10-20, 20-25; the empty file has no shards.
        let resources = vec![
            shard("a.bin", 0, 10),
            shard("a.bin", 10, 20),
            shard("a.bin", 20, 25),
            shard("sub/b.txt", 0, 5),
        ];
        let ser =
            json!({"method": "shards", "hash_type": "sha256", "shard_size": 10, "allow_symlinks": false});
        let b = bundle(&key, ser, &resources);
        assert_eq!(verify(dir.path(), &b, &key).unwrap(), 2);

        let mut bytes = std::fs::read(dir.path().join("a.bin")).unwrap();
        bytes[15] ^= 0x80;
        std::fs::write(dir.path().join("a.bin"), &bytes).unwrap();
        let err = verify(dir.path(), &b, &key).unwrap_err();
        assert!(
            matches!(&err, ModelSignatureError::FileDigestMismatch { name, .. } if name == "a.bin:10:20"),
            "{err}"
        );

        bytes.push(0);
        std::fs::write(dir.path().join("a.bin"), &bytes).unwrap();
        let err = verify(dir.path(), &b, &key).unwrap_err();
        assert!(
            matches!(&err, ModelSignatureError::FileDigestMismatch { name, .. } if name == "a.bin"),
            "{err}"
        );

        assert_eq!(
            verify_model_bundle(&b, &BTreeMap::new(), &verifier(), &key_policy(&key)),
            Err(ModelSignatureError::ShardsNeedFileContents)
        );
    }

    #[test]
    fn limits_are_enforced() {
        let key = SigningKey::generate();
        let dir = model_dir();
        let b = bundle(&key, files_serialization(), &file_resources(dir.path()));
        let with = |limits: ModelLimits| {
            verify_model_directory_with_limits(dir.path(), &b, &verifier(), &key_policy(&key), &limits)
                .map(|v| v.files)
        };
        let few = ModelLimits { max_files: 2, ..ModelLimits::default() };
        assert_eq!(with(few), Err(ModelSignatureError::TooManyFiles { max: 2 }));
        let small = ModelLimits { max_total_bytes: 10, ..ModelLimits::default() };
        assert!(matches!(with(small), Err(ModelSignatureError::ModelTooLarge { bytes: 30, max: 10 })));
        let shallow = ModelLimits { max_depth: 0, ..ModelLimits::default() };
        assert!(matches!(with(shallow), Err(ModelSignatureError::TooDeep { .. })));
    }

    #[test]
    fn a_path_that_is_not_a_directory_is_an_io_error() {
        let key = SigningKey::generate();
        let dir = model_dir();
        let b = bundle(&key, files_serialization(), &file_resources(dir.path()));
        let err = verify(&dir.path().join("a.bin"), &b, &key).unwrap_err();
        assert!(err.is_io(), "{err}");
        assert!(err.to_string().contains("a.bin") && err.to_string().contains("not a directory"), "{err}");
    }
}
