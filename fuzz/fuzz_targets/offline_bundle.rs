//! An offline verification bundle (tar or tar.gz of an OCI layout) read from bytes: signed with a fixed
//! key, and unsigned (integrity only); then its contents as `bundle verify` and `serve --bundle` use them.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vouch_attest::offline::{OfflineBundle, OpenOptions};

fuzz_target!(
    init: {
        // `VOUCH_FUZZ_WRITE_SEEDS=DIR offline_bundle -runs=0` writes the seed bundles into DIR and exits.
        if let Some(dir) = std::env::var_os("VOUCH_FUZZ_WRITE_SEEDS") {
            let code = match vouch_fuzz::write_offline_seeds(Path::new(&dir)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("cannot write seeds: {e}");
                    1
                }
            };
            std::process::exit(code);
        }
    },
    |data: &[u8]| {
    let path = Path::new("fuzz.tar");
    let mut signed = OpenOptions::new(Some(vouch_fuzz::bundle_key().clone()));
    signed.now = vouch_fuzz::now();
    let mut unsigned = OpenOptions::new(None);
    unsigned.now = vouch_fuzz::now();
    unsigned.allow_unsigned = true;
    for options in [signed, unsigned] {
        let Ok(bundle) = OfflineBundle::from_bytes(path, data, &options) else { continue };
        let _ = bundle.contents();
        let _ = bundle.policies_yaml();
        let _ = bundle.keys_pem();
        let _ = bundle.trusted_root();
    }
}
);
