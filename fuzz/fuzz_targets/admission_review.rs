//! An AdmissionReview body as /validate and /mutate read it, then the extraction of artifacts from the
//! object (built-in kinds and the documented CRD/fetcher configuration), and the whole object read late.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_policies::engine::object_label;
use vouch_policies::extract::extract_with;
use vouch_webhooks::server::admission::{parse_review, ClusterFacts};

fuzz_target!(|data: &[u8]| {
    let Ok(review) = parse_review(&bytes::Bytes::copy_from_slice(data)) else { return };
    let _ = review.needs_cluster_facts();
    let _ = review.pod_spec();
    let input = review.into_input(ClusterFacts::default());
    if let Some(object) = &input.object {
        let _ = object.whole();
    }
    let _ = object_label(&input);
    for config in vouch_fuzz::extractions() {
        let _ = extract_with(&input, config);
    }
});
