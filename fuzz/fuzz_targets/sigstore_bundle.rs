//! A Sigstore bundle (v0.1-v0.3, message signature or DSSE): parsed, then verified for a fixed artifact
//! against fixed trust roots under keyless and key-based policies. The verifier must return errors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_attest::sigstore_verify::{Artifact, Bundle};
use vouch_attest::Digest;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::from_json(data) else { return };
    let _ = bundle.to_json();
    let now = vouch_fuzz::now();
    for (verifier, policy) in vouch_fuzz::policies() {
        let _ = verifier.verify_at(&bundle, Artifact::Bytes(vouch_fuzz::ARTIFACT), policy, now);
        let digest = Digest::sha256_of(vouch_fuzz::ARTIFACT);
        let _ = verifier.verify_at(&bundle, Artifact::Digest(digest), policy, now);
    }
});
