//! The second check of a model signature: the signed statement. Its predicate must be what model-signing
//! writes (a `files` or `shards` serialization with SHA-256, normal relative resource paths, each listed
//! once), and its subject must be the SHA-256 over the concatenated resource digests, in the listed order.
//! Also: comparing the signed resources with model files known by their SHA-256 (an OCI model's layers).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::digest::{Digest, DigestAlgorithm};
use crate::intoto::Statement;

use super::{ModelLimits, ModelSignatureError};

type Result<T, E = ModelSignatureError> = std::result::Result<T, E>;

/// Paths model-signing always ignores when verifying (git metadata).
const GIT_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// How the model was turned into resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    /// One resource per file: `path`.
    Files,
    /// One resource per shard: `path:start:end`, shards of `shard_size` bytes.
    Shards { shard_size: u64 },
}

/// One signed resource: its name and SHA-256.
#[derive(Debug, Clone)]
pub(super) struct Resource {
    pub(super) name: String,
    pub(super) digest: Digest,
}

/// One signed shard of a file.
#[derive(Debug, Clone)]
pub(super) struct Shard {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) digest: Digest,
}

/// A well-formed, self-consistent model-signing statement (whose signature the caller has verified).
#[derive(Debug)]
pub(super) struct SignedModel {
    pub(super) subject_digest: Digest,
    pub(super) method: Method,
    pub(super) ignore: IgnoreSet,
    pub(super) resources: Vec<Resource>,
}

#[derive(Deserialize)]
struct RawPredicate {
    serialization: RawSerialization,
    resources: Vec<RawResource>,
}

#[derive(Deserialize)]
struct RawSerialization {
    method: String,
    hash_type: String,
    /// model-signing writes the predicate through protobuf's Struct, so numbers arrive as floats (`1024.0`).
    #[serde(default)]
    shard_size: Option<serde_json::Value>,
    #[serde(default)]
    ignore_paths: Vec<String>,
}

#[derive(Deserialize)]
struct RawResource {
    name: String,
    algorithm: String,
    digest: String,
}

impl SignedModel {
    /// Check the statement's predicate and that its subject is the digest of its resources.
    pub(super) fn from_statement(statement: &Statement, limits: &ModelLimits) -> Result<Self> {
        let subject_digest = super::bundle::subject_digest(statement)?;
        let predicate = RawPredicate::deserialize(&statement.predicate)
            .map_err(|e| ModelSignatureError::MalformedPredicate { reason: e.to_string() })?;
        let serialization = predicate.serialization;
        if serialization.hash_type != "sha256" {
            return Err(ModelSignatureError::UnsupportedHashType {
                hash_type: serialization.hash_type.chars().take(100).collect(),
            });
        }
        let (method, algorithm) = match serialization.method.as_str() {
            "files" => (Method::Files, "sha256".to_owned()),
            "shards" => {
                let shard_size =
                    serialization.shard_size.as_ref().and_then(whole_number).ok_or_else(|| {
                        ModelSignatureError::MalformedPredicate {
                            reason: "shard serialization without a positive whole shard_size".into(),
                        }
                    })?;
                (Method::Shards { shard_size }, format!("sha256-sharded-{shard_size}"))
            }
            other => {
                return Err(ModelSignatureError::UnsupportedSerialization {
                    method: other.chars().take(100).collect(),
                })
            }
        };
        let ignore = IgnoreSet::new(&serialization.ignore_paths)?;

        if predicate.resources.is_empty() {
            return Err(ModelSignatureError::MalformedPredicate {
                reason: "the signature covers no resources".into(),
            });
        }
        if predicate.resources.len() > limits.max_files {
            return Err(ModelSignatureError::TooManyFiles { max: limits.max_files });
        }
        let mut resources = Vec::with_capacity(predicate.resources.len());
        let mut root = Sha256::new();
        let mut seen = BTreeSet::new();
        for raw in predicate.resources {
            let invalid = |reason: String| ModelSignatureError::InvalidResource {
                name: raw.name.chars().take(200).collect(),
                reason,
            };
            if raw.algorithm != algorithm {
                return Err(invalid(format!("algorithm {:?}, expected {algorithm:?}", raw.algorithm)));
            }
            let digest: Digest = format!("sha256:{}", raw.digest.to_ascii_lowercase())
                .parse()
                .map_err(|e| invalid(format!("{e}")))?;
            if !seen.insert(raw.name.clone()) {
                return Err(invalid("listed twice".into()));
            }
            root.update(digest.to_bytes());
            resources.push(Resource { name: raw.name, digest });
        }
        let computed = Digest::from_bytes(DigestAlgorithm::Sha256, &root.finalize())
            .map_err(|e| ModelSignatureError::MalformedPredicate { reason: e.to_string() })?;
        if computed != subject_digest {
            return Err(ModelSignatureError::SubjectDigestMismatch { signed: subject_digest, computed });
        }
        Ok(Self { subject_digest, method, ignore, resources })
    }

    /// The file paths the resources name (a shard's path without its `:start:end`).
    pub(super) fn signed_paths(&self) -> BTreeSet<&str> {
        self.resources
            .iter()
            .map(|r| match self.method {
                Method::Files => r.name.as_str(),
                Method::Shards { .. } => r.name.split(':').next().unwrap_or_default(),
            })
            .collect()
    }

    /// Resources of a `files` signature: file path → digest.
    pub(super) fn expected_files(&self) -> Result<BTreeMap<String, Digest>> {
        let mut out = BTreeMap::new();
        for r in &self.resources {
            check_relative_path(&r.name)
                .map_err(|reason| ModelSignatureError::InvalidResource { name: r.name.clone(), reason })?;
            out.insert(r.name.clone(), r.digest.clone());
        }
        Ok(out)
    }

    /// Resources of a `shards` signature: file path → shards (start, end, digest) in offset order.
    pub(super) fn expected_shards(&self, shard_size: u64) -> Result<BTreeMap<String, Vec<Shard>>> {
        let mut out: BTreeMap<String, Vec<Shard>> = BTreeMap::new();
        for r in &self.resources {
            let invalid =
                |reason: String| ModelSignatureError::InvalidResource { name: r.name.clone(), reason };
            let parts: Vec<&str> = r.name.split(':').collect();
            let [path, start, end] = parts.as_slice() else {
                return Err(invalid("expected path:start:end".into()));
            };
            check_relative_path(path).map_err(invalid)?;
            let start: u64 = start.parse().map_err(|_| invalid("start is not a number".into()))?;
            let end: u64 = end.parse().map_err(|_| invalid("end is not a number".into()))?;
            if end <= start || end - start > shard_size {
                return Err(invalid(format!("shard {start}..{end} is empty or larger than {shard_size}")));
            }
            out.entry((*path).to_owned()).or_default().push(Shard { start, end, digest: r.digest.clone() });
        }
        for shards in out.values_mut() {
            shards.sort_by_key(|s| s.start);
        }
        Ok(out)
    }

    /// Compare model files known by their SHA-256 (relative path → digest) with a `files` signature:
    /// the files, less ignored paths and an unsigned file whose content is the bundle itself (a `model.sig`
    /// kept inside the model), must be exactly the signed ones. Returns the number of signed files.
    pub(super) fn check_whole_files(
        &self,
        files: &BTreeMap<String, Digest>,
        bundle_json: &[u8],
        limits: &ModelLimits,
    ) -> Result<usize> {
        let bundle_digest = Digest::sha256_of(bundle_json);
        let signed_paths = self.signed_paths();
        let without_signature: BTreeMap<&String, &Digest> = files
            .iter()
            .filter(|(name, digest)| **digest != bundle_digest || signed_paths.contains(name.as_str()))
            .collect();
        if without_signature.len() > limits.max_files {
            return Err(ModelSignatureError::TooManyFiles { max: limits.max_files });
        }
        if let Method::Shards { .. } = self.method {
            return Err(ModelSignatureError::ShardsNeedFileContents);
        }
        let present: BTreeMap<&String, &Digest> =
            without_signature.into_iter().filter(|(name, _)| !self.ignore.covers(name)).collect();
        let expected = self.expected_files()?;
        compare_names(expected.keys(), present.keys().copied())?;
        for (name, digest) in &expected {
            let actual = present.get(name).ok_or_else(|| missing(name, 1))?;
            check_digest(name, digest, actual)?;
        }
        Ok(expected.len())
    }
}

/// Paths (relative to the model root) excluded from the model: the signed `ignore_paths` plus git metadata.
#[derive(Debug)]
pub(super) struct IgnoreSet(Vec<String>);

impl IgnoreSet {
    fn new(signed: &[String]) -> Result<Self> {
        let mut paths: Vec<String> = GIT_PATHS.iter().map(|p| (*p).to_owned()).collect();
        for p in signed {
            let trimmed = p.trim_start_matches("./").trim_end_matches('/');
            // An ignore path that escapes or is the model root would exclude everything: refuse it.
            check_relative_path(trimmed).map_err(|reason| ModelSignatureError::MalformedPredicate {
                reason: format!("ignore path {:?}: {reason}", p.chars().take(200).collect::<String>()),
            })?;
            paths.push(trimmed.to_owned());
        }
        Ok(Self(paths))
    }

    /// Whether `rel` (a `/`-separated relative path) is an ignored path or lies under one.
    pub(super) fn covers(&self, rel: &str) -> bool {
        self.0
            .iter()
            .any(|p| rel == p || rel.strip_prefix(p.as_str()).is_some_and(|rest| rest.starts_with('/')))
    }
}

/// A positive whole number given as a JSON integer or as a float without fraction (`1024.0`).
fn whole_number(value: &serde_json::Value) -> Option<u64> {
    // 2^53: beyond it floats no longer name every integer.
    const MAX_EXACT: f64 = 9_007_199_254_740_992.0;
    let n = match value.as_u64() {
        Some(n) => n,
        None => {
            let f = value.as_f64()?;
            if !(f.is_finite() && f.fract() == 0.0 && f > 0.0 && f <= MAX_EXACT) {
                return None;
            }
            // Exact: a whole float in (0, 2^53].
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = f as u64;
            n
        }
    };
    (n > 0).then_some(n)
}

/// A relative POSIX path in normal form: no leading `/`, no empty, `.` or `..` components.
fn check_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.starts_with('/') {
        return Err("absolute path".into());
    }
    if path.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err("path is not in normal form (empty, '.' or '..' component)".into());
    }
    Ok(())
}

/// Fail on the first signed name that is absent, then on the first present name that is not signed.
pub(super) fn compare_names<'a, 'b>(
    expected: impl Iterator<Item = &'a String>,
    present: impl Iterator<Item = &'b String>,
) -> Result<()> {
    let expected: BTreeSet<&str> = expected.map(String::as_str).collect();
    let present: BTreeSet<&str> = present.map(String::as_str).collect();
    let missing_names: Vec<&&str> = expected.difference(&present).collect();
    if let Some(first) = missing_names.first() {
        return Err(missing(first, missing_names.len()));
    }
    let extra: Vec<&&str> = present.difference(&expected).collect();
    if let Some(first) = extra.first() {
        return Err(ModelSignatureError::UnexpectedFile { name: (**first).to_owned(), count: extra.len() });
    }
    Ok(())
}

pub(super) fn missing(name: &str, count: usize) -> ModelSignatureError {
    ModelSignatureError::MissingFile { name: name.to_owned(), count }
}

pub(super) fn check_digest(name: &str, expected: &Digest, actual: &Digest) -> Result<()> {
    if expected == actual {
        return Ok(());
    }
    Err(ModelSignatureError::FileDigestMismatch {
        name: name.to_owned(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{bundle, bundle_with_subject, files_serialization, Resource};
    use super::*;
    use crate::dsse::Envelope;
    use crate::keys::SigningKey;
    use serde_json::json;

    /// The statement a bundle signs (its signature is not the point here).
    fn statement_of(bundle_json: &[u8]) -> Statement {
        let v: serde_json::Value = serde_json::from_slice(bundle_json).unwrap();
        let env: Envelope = serde_json::from_value(v["dsseEnvelope"].clone()).unwrap();
        Statement::from_dsse(&env).unwrap()
    }

    fn signed(serialization: serde_json::Value, resources: &[Resource]) -> Result<SignedModel> {
        let b = bundle(&SigningKey::generate(), serialization, resources);
        SignedModel::from_statement(&statement_of(&b), &ModelLimits::default())
    }

    fn resources() -> Vec<Resource> {
        [("a.bin", b"aaaa".as_slice()), ("empty", b""), ("sub/b.txt", b"hello")]
            .iter()
            .map(|(n, c)| ((*n).to_owned(), "sha256".to_owned(), Digest::sha256_of(c)))
            .collect()
    }

    #[test]
    fn statements_are_checked_against_file_digests() {
        let res = resources();
        let b = bundle(&SigningKey::generate(), files_serialization(), &res);
        let st = SignedModel::from_statement(&statement_of(&b), &ModelLimits::default()).unwrap();
        let files: BTreeMap<String, Digest> = res.iter().map(|(n, _, d)| (n.clone(), d.clone())).collect();
        let limits = ModelLimits::default();
        assert_eq!(st.check_whole_files(&files, &b, &limits).unwrap(), 3);

        let mut changed = files.clone();
        changed.insert("a.bin".into(), Digest::sha256_of(b"other"));
        assert!(matches!(
            st.check_whole_files(&changed, &b, &limits),
            Err(ModelSignatureError::FileDigestMismatch { name, .. }) if name == "a.bin"
        ));
        // Ignored paths are not model files; an unsigned file whose content is the bundle neither.
        let mut extra = files.clone();
        extra.insert("model.sig".into(), Digest::sha256_of(b"not the bundle"));
        extra.insert(".git/HEAD".into(), Digest::sha256_of(b"ref"));
        extra.insert("copy-of.sig".into(), Digest::sha256_of(&b));
        assert_eq!(st.check_whole_files(&extra, &b, &limits).unwrap(), 3);
        let few = ModelLimits { max_files: 2, ..ModelLimits::default() };
        assert_eq!(st.check_whole_files(&files, &b, &few), Err(ModelSignatureError::TooManyFiles { max: 2 }));
    }

    #[test]
    fn inconsistent_subject_digest_is_rejected() {
        let b = bundle_with_subject(
            &SigningKey::generate(),
            files_serialization(),
            &resources(),
            &"00".repeat(32),
        );
        let err = SignedModel::from_statement(&statement_of(&b), &ModelLimits::default()).unwrap_err();
        assert!(matches!(err, ModelSignatureError::SubjectDigestMismatch { .. }), "{err}");
    }

    #[test]
    fn unknown_methods_hashes_and_unsafe_ignore_paths_are_rejected() {
        let res = resources();
        let cases = [
            (
                json!({"method": "tarball", "hash_type": "sha256", "allow_symlinks": false}),
                "unsupported model serialization method \"tarball\"",
            ),
            (
                json!({"method": "files", "hash_type": "blake3", "allow_symlinks": false}),
                "unsupported model hash type \"blake3\"",
            ),
            (json!({"method": "files", "hash_type": "sha256", "ignore_paths": ["."]}), "ignore path \".\""),
            (
                json!({"method": "files", "hash_type": "sha256", "ignore_paths": ["../x"]}),
                "ignore path \"../x\"",
            ),
            (json!({"method": "shards", "hash_type": "sha256"}), "positive whole shard_size"),
        ];
        for (ser, want) in cases {
            let err = signed(ser.clone(), &res).unwrap_err();
            assert!(err.to_string().contains(want), "{ser}: {err}");
        }
        let mut twice = res.clone();
        twice.push(res[0].clone());
        let err = signed(files_serialization(), &twice).unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
        let err = signed(files_serialization(), &[]).unwrap_err();
        assert!(err.to_string().contains("covers no resources"), "{err}");
        // Resource names are paths in normal form.
        let traversal = vec![("../etc/passwd".to_string(), "sha256".to_string(), Digest::sha256_of(b"x"))];
        let err = signed(files_serialization(), &traversal).unwrap().expected_files().unwrap_err();
        assert!(matches!(err, ModelSignatureError::InvalidResource { .. }), "{err}");
        // Shards must be path:start:end within the shard size.
        let ser = json!({"method": "shards", "hash_type": "sha256", "shard_size": 10.0});
        let shard = |name: &str| (name.to_owned(), "sha256-sharded-10".to_owned(), Digest::sha256_of(b"x"));
        for bad in ["a.bin", "a.bin:0:11", "a.bin:5:5", "/a.bin:0:10", "a.bin:x:10"] {
            let err = signed(ser.clone(), &[shard(bad)]).unwrap().expected_shards(10).unwrap_err();
            assert!(matches!(err, ModelSignatureError::InvalidResource { .. }), "{bad}: {err}");
        }
        assert_eq!(signed(ser, &[shard("a.bin:0:10")]).unwrap().method, Method::Shards { shard_size: 10 });
    }
}
