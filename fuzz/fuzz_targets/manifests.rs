//! Kubernetes manifests as `vouch check` reads them (YAML or JSON, multi-document, List kinds), then the
//! engine input and the artifact extraction for every object.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use vouch_policies::extract::extract_with;
use vouch_policies::manifests::ManifestReader;

fuzz_target!(|data: &[u8]| {
    let mut reader = ManifestReader::new();
    if reader.add_reader("fuzz.yaml", data).is_err() {
        return;
    }
    for object in reader.finish() {
        let _ = object.namespace_facts();
        let input = object.to_input("fuzz".into(), "default", BTreeMap::new());
        for config in vouch_fuzz::extractions() {
            let _ = extract_with(&input, config);
        }
    }
});
