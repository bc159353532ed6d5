//! A DSSE envelope and the in-toto statement inside: decoded, PAE built, signatures checked with fixed
//! keys, statement read and its predicate typed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_attest::dsse::Envelope;
use vouch_attest::intoto::Statement;
use vouch_attest::Digest;

fuzz_target!(|data: &[u8]| {
    // The same bytes as a bare statement (attestation layers that carry no envelope).
    if let Ok(statement) = Statement::from_json(data) {
        let _ = statement.predicate_kind();
        let _ = statement.require_subject(&Digest::sha256_of(vouch_fuzz::ARTIFACT));
    }
    let Ok(envelope) = Envelope::from_json(data) else { return };
    let _ = envelope.payload_bytes();
    let _ = envelope.signature_bytes();
    let _ = envelope.pae();
    for key in [vouch_fuzz::managed_key(), vouch_fuzz::model_key()] {
        let _ = envelope.verify(key);
        let _ = Statement::from_verified_dsse(&envelope, key);
    }
    if let Ok(statement) = Statement::from_dsse(&envelope) {
        let _ = statement.predicate_kind();
        let _ = statement.covers(&Digest::sha256_of(vouch_fuzz::ARTIFACT));
    }
});
