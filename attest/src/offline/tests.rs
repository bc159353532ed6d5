//! Round trip and every way a bundle is refused.

use std::io::Read as _;

use chrono::Duration;

use super::*;
use crate::keys::SigningKey;
use crate::reference::ArtifactRef;
use crate::registry::ArtifactSource as _;

fn sample() -> (BundleSpec, Digest) {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#.to_vec();
    let d = Digest::sha256_of(&manifest);
    let rec = Recorder::new(1 << 20);
    let r: ArtifactRef = "reg.example/app:1".parse().unwrap();
    rec.tag(&r, Some(&d));
    rec.tag(&r.with_tag(&format!("{}.sig", d.cosign_tag_stem())).unwrap(), None);
    rec.manifest(&d, crate::registry::OCI_MANIFEST, &manifest);
    rec.blob(&Digest::sha256_of(b"{}"), b"{}");
    let now = Utc::now();
    let spec = BundleSpec {
        recording: rec.snapshot().unwrap(),
        artifacts: vec![CoveredArtifact {
            reference: "reg.example/app:1".into(),
            digest: d.clone(),
            media_type: crate::registry::OCI_MANIFEST.into(),
        }],
        policies: vec![("p.yaml".into(), "kind: ClusterSupplyChainPolicy\n".into())],
        policy_features: vec![],
        trusted_root_json: Some(crate::trust_root::PUBLIC_GOOD_JSON.as_bytes().to_vec()),
        keys: vec![],
        created: now,
        expires: now + Duration::days(1),
    };
    (spec, d)
}

fn entries_of(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

struct Fixture {
    dir: tempfile::TempDir,
    key: SigningKey,
    good: PathBuf,
    digest: Digest,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate();
    let (spec, digest) = sample();
    let good = dir.path().join("good.tar");
    write_bundle(&spec, Some(&key), &good).unwrap();
    Fixture { dir, key, good, digest }
}

impl Fixture {
    /// A copy of the good bundle with its entries changed by `f`.
    fn tampered(&self, name: &str, f: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> PathBuf {
        let mut entries = entries_of(&self.good);
        f(&mut entries);
        let path = self.dir.path().join(name);
        write_tar(&path, &entries, 0).unwrap();
        path
    }

    fn open(&self, path: &Path) -> Result<OfflineBundle, BundleError> {
        OfflineBundle::open(path, Some(&self.key.public_key()))
    }
}

#[tokio::test]
async fn round_trip_keeps_everything_and_answers_offline() {
    let f = fixture();
    let b = f.open(&f.good).unwrap();
    assert!(b.is_authenticated());
    let c = b.contents();
    assert_eq!(c.artifacts.len(), 1);
    assert_eq!(c.signed_by, Some(f.key.public_key().fingerprint()));
    assert_eq!(c.policies, vec!["p.yaml".to_owned()]);
    assert_eq!(b.policies_yaml()[0].1, "kind: ClusterSupplyChainPolicy\n");
    assert!(b.trusted_root().is_some());
    let store = OfflineStore::new(Arc::new(b.content().clone()));
    let r: ArtifactRef = "reg.example/app:1".parse().unwrap();
    assert_eq!(store.resolve(&r).await.unwrap(), f.digest);
    let sig = r.with_tag(&format!("{}.sig", f.digest.cosign_tag_stem())).unwrap();
    let e = store.fetch_manifest(&sig, 1 << 20).await;
    assert!(matches!(e, Err(crate::registry::RegistryError::NotFound { .. })));
}

#[tokio::test]
async fn offline_client_answers_without_any_http_request() {
    let f = fixture();
    let b = f.open(&f.good).unwrap();
    let client = b.registry_client(RegistryConfig::default());
    assert!(client.is_offline());
    let r: ArtifactRef = "reg.example/app:1".parse().unwrap();
    assert_eq!(client.resolve(&r).await.unwrap(), f.digest);
    assert_eq!(client.fetch_manifest(&r).await.unwrap().digest, f.digest);
    let e = client.fetch_manifest(&"reg.example/elsewhere:1".parse().unwrap()).await.unwrap_err();
    assert!(e.is_transient() && e.to_string().contains("not in the offline bundle"), "{e}");
    let e = client.push_blob(&r, b"x").await.unwrap_err();
    assert!(e.to_string().contains("an offline client has no network access"), "{e}");
    let stats = client.stats();
    assert_eq!((stats.calls, stats.http_requests), (4, 0), "{stats:?}");
}

#[test]
fn unsigned_and_key_rules() {
    let f = fixture();
    let (spec, _) = sample();
    let unsigned = f.dir.path().join("unsigned.tar");
    write_bundle(&spec, None, &unsigned).unwrap();
    assert!(matches!(f.open(&unsigned), Err(BundleError::Unsigned)));
    // Without a key: an unsigned bundle is checked for integrity only; a signed one needs its key.
    let b = OfflineBundle::open(&unsigned, None).unwrap();
    assert!(!b.is_authenticated());
    assert!(matches!(OfflineBundle::open(&f.good, None), Err(BundleError::KeyNeeded)));
    let listing = OpenOptions { allow_unsigned: true, ..OpenOptions::new(None) };
    assert!(!OfflineBundle::open_with(&f.good, &listing).unwrap().is_authenticated());
    let wrong = SigningKey::generate().public_key();
    let e = OfflineBundle::open(&f.good, Some(&wrong)).unwrap_err();
    assert!(matches!(e, BundleError::BadSignature { .. }), "{e}");
}

#[test]
fn a_changed_byte_in_a_blob_is_refused() {
    let f = fixture();
    let path = f.tampered("byte.tar", |entries| {
        let blob = entries.iter_mut().find(|(n, _)| n.starts_with("blobs/")).unwrap();
        blob.1[0] ^= 1;
    });
    assert!(matches!(f.open(&path), Err(BundleError::BlobDigestMismatch { .. })));
}

#[test]
fn a_swapped_signature_is_refused() {
    let f = fixture();
    let (mut other, _) = sample();
    other.policies.push(("evil.yaml".into(), "allow: everything\n".into()));
    let other_path = f.dir.path().join("other.tar");
    write_bundle(&other, Some(&f.key), &other_path).unwrap();
    let other_sig = entries_of(&other_path).into_iter().find(|(n, _)| n == BUNDLE_SIG).unwrap();
    let path = f.tampered("swapped.tar", |entries| {
        let sig = entries.iter_mut().find(|(n, _)| n == BUNDLE_SIG).unwrap();
        *sig = other_sig;
    });
    assert!(matches!(f.open(&path), Err(BundleError::SignatureForOtherContent)));
}

#[test]
fn removed_added_and_duplicate_entries_are_refused() {
    let f = fixture();
    let removed = f.tampered("removed.tar", |entries| {
        let pos = entries.iter().position(|(n, _)| n.starts_with("blobs/")).unwrap();
        entries.remove(pos);
    });
    assert!(matches!(f.open(&removed), Err(BundleError::MissingBlob { .. })));
    let added = f.tampered("added.tar", |entries| {
        entries.push((blob_path(&Digest::sha256_of(b"extra")), b"extra".to_vec()));
    });
    assert!(matches!(f.open(&added), Err(BundleError::UnlistedBlob { .. })));
    let dup = f.tampered("dup.tar", |entries| {
        let first = entries.iter().find(|(n, _)| n.starts_with("blobs/")).unwrap().clone();
        entries.push(first);
    });
    assert!(matches!(f.open(&dup), Err(BundleError::DuplicateEntry { .. })));
    let odd = f.tampered("odd.tar", |entries| entries.push(("README".into(), b"hi".to_vec())));
    assert!(matches!(f.open(&odd), Err(BundleError::UnexpectedEntry { .. })));
    let no_index = f.tampered("noindex.tar", |entries| entries.retain(|(n, _)| n != INDEX_JSON));
    assert!(matches!(f.open(&no_index), Err(BundleError::MissingEntry { .. })));
}

#[test]
fn an_index_digest_mismatch_is_refused() {
    let f = fixture();
    let path = f.tampered("index.tar", |entries| {
        let index = entries.iter_mut().find(|(n, _)| n == INDEX_JSON).unwrap();
        index.1 = br#"{"schemaVersion":2,"manifests":[]}"#.to_vec();
    });
    assert!(matches!(f.open(&path), Err(BundleError::IndexDigestMismatch { .. })));
}

#[test]
fn expiry_and_future_creation_are_refused() {
    let f = fixture();
    let later =
        OpenOptions { now: Utc::now() + Duration::days(2), ..OpenOptions::new(Some(f.key.public_key())) };
    assert!(matches!(OfflineBundle::open_with(&f.good, &later), Err(BundleError::Expired { .. })));
    let earlier =
        OpenOptions { now: Utc::now() - Duration::days(1), ..OpenOptions::new(Some(f.key.public_key())) };
    assert!(matches!(OfflineBundle::open_with(&f.good, &earlier), Err(BundleError::NotYetValid { .. })));
}

/// Appends a raw tar header whose name is set byte for byte (the tar crate refuses `..` in set_path).
fn raw_entry(out: &mut Vec<u8>, name: &[u8], kind: tar::EntryType, body: &[u8]) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.set_size(body.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(kind);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

#[test]
fn traversal_and_links_are_refused() {
    let f = fixture();
    for (name, kind, what) in [
        (&b"../../etc/cron.d/evil"[..], tar::EntryType::Regular, "path traversal"),
        (&b"/etc/passwd"[..], tar::EntryType::Regular, "absolute path"),
        (&b"blobs/link"[..], tar::EntryType::Symlink, "not a regular file"),
        (&b"blobs/hard"[..], tar::EntryType::Link, "not a regular file"),
    ] {
        let mut bytes = Vec::new();
        raw_entry(&mut bytes, name, kind, b"x");
        bytes.extend_from_slice(&std::fs::read(&f.good).unwrap());
        let path = f.dir.path().join("raw.tar");
        std::fs::write(&path, bytes).unwrap();
        let e = f.open(&path).unwrap_err();
        assert!(matches!(e, BundleError::UnsafeEntry { .. }), "{e}");
        assert!(e.to_string().contains(what), "{e}");
    }
}

#[test]
fn limits_bound_what_is_read() {
    let f = fixture();
    let tight = OpenOptions {
        limits: BundleLimits { max_entry_bytes: 16, ..BundleLimits::default() },
        ..OpenOptions::new(Some(f.key.public_key()))
    };
    assert!(matches!(OfflineBundle::open_with(&f.good, &tight), Err(BundleError::TooLarge { .. })));
    let few = OpenOptions {
        limits: BundleLimits { max_entries: 2, ..BundleLimits::default() },
        ..OpenOptions::new(Some(f.key.public_key()))
    };
    assert!(matches!(OfflineBundle::open_with(&f.good, &few), Err(BundleError::TooLarge { .. })));
}

#[test]
fn gzip_bundles_are_read_too() {
    use std::io::Write as _;
    let f = fixture();
    let path = f.dir.path().join("good.tar.gz");
    let mut gz =
        flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::fast());
    gz.write_all(&std::fs::read(&f.good).unwrap()).unwrap();
    gz.finish().unwrap();
    assert_eq!(f.open(&path).unwrap().contents().artifacts[0].digest, f.digest);
}

#[test]
fn policy_features_are_listed_and_an_unknown_one_is_refused_not_ignored() {
    let f = fixture();
    let (mut spec, _) = sample();
    spec.policy_features =
        vec![policy_features::REQUIRE_DIGEST.into(), policy_features::SIGNATURE_RULES.into()];
    let known = f.dir.path().join("known.tar");
    write_bundle(&spec, Some(&f.key), &known).unwrap();
    let b = f.open(&known).unwrap();
    assert_eq!(b.index().policy_features, ["requireDigest", "signatureRules"]);
    // A feature of a newer vouch (signed like any other content): refused, naming it.
    spec.policy_features.push("fromTheFuture".into());
    let future = f.dir.path().join("future.tar");
    write_bundle(&spec, Some(&f.key), &future).unwrap();
    let e = f.open(&future).unwrap_err();
    assert!(matches!(&e, BundleError::UnknownPolicyFeature { feature } if feature == "fromTheFuture"), "{e}");
    assert!(e.to_string().contains("enforce less than the policy says"), "{e}");
    // A bundle whose policies use no feature has no `policyFeatures` key: older readers still read it.
    let plain = entries_of(&f.good).into_iter().find(|(n, _)| n == BUNDLE_JSON).unwrap().1;
    assert!(!String::from_utf8(plain).unwrap().contains("policyFeatures"));
}
