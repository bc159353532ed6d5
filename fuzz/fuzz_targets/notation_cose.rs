//! A Notary Project COSE_Sign1 envelope (`application/cose`): parsed by coset (duplicate labels, critical
//! headers, signed attributes as CBOR, x5chain, timestamp), then verified as the webhook verifies a signature
//! referrer — against fixed trust stores, CRLs and a fixed manifest at a fixed now, at every level that
//! verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_attest::notation::verify::{parse_envelope, verify, COSE_MEDIA_TYPE};

fuzz_target!(|data: &[u8]| {
    if parse_envelope(COSE_MEDIA_TYPE, data).is_err() {
        return;
    }
    for authority in vouch_fuzz::notation_authorities() {
        for target in vouch_fuzz::notation_targets() {
            let _ = verify(COSE_MEDIA_TYPE, data, target, authority, vouch_fuzz::now());
        }
    }
});
