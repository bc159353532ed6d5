//! Policy CRDs (ClusterSupplyChainPolicy, SupplyChainPolicy, TrustRoot, ComplianceProfile, List) from
//! YAML/JSON text to a compiled policy set; and the extraction configuration file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_policies::extract::ExtractionConfig;
use vouch_policies::{PolicyResources, PolicySet, Secrets};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let resources = PolicyResources::from_yaml_str(text, "fuzz.yaml");
    let _ = resources.secret_refs();
    let set = PolicySet::compile(resources, &Secrets::none());
    let _ = set.problems();
    for p in set.policies() {
        let _ = p.display_name();
    }
    if let Ok(config) = ExtractionConfig::from_yaml_str(text) {
        let _ = config.compile();
    }
});
