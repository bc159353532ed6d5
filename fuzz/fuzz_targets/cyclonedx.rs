//! A CycloneDX document (SBOM attached as a layer, or as an in-toto predicate).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_attest::sbom::{from_predicate, parse_cyclonedx};

fuzz_target!(|data: &[u8]| {
    let _ = parse_cyclonedx(data);
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = from_predicate(&value);
    }
});
