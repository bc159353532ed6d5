//! A signed egress allowlist document (vouch's JSON, and the same bytes as a kars canonical-YAML
//! allowlist), and endpoints as workloads declare them checked against it.
//!
//! Input: the allowlist document, then (after a NUL byte) endpoints, one a line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_attest::egress::{Allowlist, Endpoint, KarsAllowlist};

const ENDPOINTS: [&str; 5] =
    ["api.example.com:443", "10.1.2.3", "10.0.0.0/8:5432", "[2001:db8::1]:53", "*.internal.example"];

fuzz_target!(|data: &[u8]| {
    let (document, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let written: Vec<&str> =
        std::str::from_utf8(rest).map(|s| s.lines().take(256).collect()).unwrap_or_default();
    for w in &written {
        if let Ok(endpoint) = w.parse::<Endpoint>() {
            let _ = endpoint.port();
        }
    }
    if let Ok(kars) = KarsAllowlist::parse(document) {
        // A canonical document is its own canonical form.
        assert_eq!(kars.to_canonical_yaml().as_bytes(), document.strip_prefix(b"---\n").unwrap_or(document));
        let _ = kars.uncovered(&ENDPOINTS);
        let _ = kars.uncovered(&written);
        for e in ENDPOINTS {
            if let Ok(endpoint) = e.parse::<Endpoint>() {
                let _ = kars.covers(&endpoint);
            }
        }
    }
    let Ok(list) = Allowlist::parse(document) else { return };
    let _ = list.to_json();
    let _ = list.uncovered(&ENDPOINTS);
    let _ = list.uncovered(&written);
    for e in ENDPOINTS {
        if let Ok(endpoint) = e.parse::<Endpoint>() {
            let _ = list.covers(&endpoint);
        }
    }
});
