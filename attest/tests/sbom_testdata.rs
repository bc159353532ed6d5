//! The real CycloneDX documents in the shared test material parse and validate, with the facts that an
//! independent reading (python3's json module) gives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use vouch_attest::intoto::{Predicate, Statement, CYCLONEDX_BOM, STATEMENT_V1};
use vouch_attest::sbom::{self, SbomError};
use vouch_attest::Digest;

/// The shared test material, or None (skip) when absent outside CI.
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests: missing material under CI must fail
fn testdata() -> Option<PathBuf> {
    vouch_attest::testdata::locate().unwrap()
}

/// (file, specVersion, serialNumber, components incl. nested, sha256) — computed with python3 -c json.
const EXPECTED: [(&str, &str, Option<&str>, usize, &str); 3] = [
    (
        "npm-project.cdx.json",
        "1.6",
        None,
        54,
        "335f2f050870e6037aab0720a1e1640e33daa89e6c2aa0011b1bf32ac72927bf",
    ),
    (
        "py-sigstore-venv.cdx.json",
        "1.6",
        None,
        56,
        "f831c76621135f2db909cf7641ad1dd0814fd638bcfc04262988fae914949a07",
    ),
    (
        "rust-rustdemo.cdx15.json",
        "1.5",
        Some("urn:uuid:f04fd70c-623c-42d0-836c-4b57586af0f8"),
        14,
        "ed405faa0d26c5a40abca8cb4a705c861276e90663798b55b42bb150a5d4f621",
    ),
];

#[test]
fn real_sboms_parse_and_validate() {
    let Some(dir) = testdata() else { return };
    for (file, version, serial, components, sha) in EXPECTED {
        let bytes = std::fs::read(dir.join("sbom").join(file)).unwrap();
        let facts = sbom::parse_cyclonedx(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(facts.spec_version, version, "{file}");
        assert_eq!(facts.serial_number.as_deref(), serial, "{file}");
        assert_eq!(facts.component_count, components, "{file}");
        assert_eq!(facts.digest, format!("sha256:{sha}").parse::<Digest>().unwrap(), "{file}");
    }
}

#[test]
fn real_sbom_broken_in_one_place_is_rejected_with_its_pointer() {
    let Some(dir) = testdata() else { return };
    let bytes = std::fs::read(dir.join("sbom/npm-project.cdx.json")).unwrap();
    let mut doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    doc["components"][3].as_object_mut().unwrap().remove("name");
    let err = sbom::parse_cyclonedx(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
    let SbomError::SchemaInvalid { violations, .. } = &err else { panic!("{err}") };
    assert!(violations.iter().any(|v| v.pointer == "/components/3"), "{err}");

    // Claiming an unsupported version is refused even though the content is fine.
    doc = serde_json::from_slice(&bytes).unwrap();
    doc["specVersion"] = "1.3".into();
    let err = sbom::parse_cyclonedx(&serde_json::to_vec(&doc).unwrap()).unwrap_err();
    assert!(matches!(err, SbomError::UnsupportedSpecVersion { .. }), "{err}");
}

#[test]
fn real_sbom_as_in_toto_predicate() {
    let Some(dir) = testdata() else { return };
    let bytes = std::fs::read(dir.join("sbom/rust-rustdemo.cdx15.json")).unwrap();
    let bom: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let statement = serde_json::json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": "img", "digest": {"sha256": "ab".repeat(32)}}],
        "predicateType": CYCLONEDX_BOM,
        "predicate": bom,
    });
    let statement = Statement::from_json(&serde_json::to_vec(&statement).unwrap()).unwrap();
    let Predicate::CycloneDx(predicate) = statement.predicate_kind() else {
        panic!("not typed as CycloneDX")
    };
    let facts = sbom::from_predicate(&predicate).unwrap();
    assert_eq!((facts.spec_version.as_str(), facts.component_count), ("1.5", 14));
}
