//! README's first command ends in `vouch demo`: it must succeed on this machine, and show the verdicts and
//! the webhook's answers it promises.

use std::process::Command;

#[test]
fn demo_runs_and_every_verdict_is_the_expected_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch")).arg("demo").output().expect("run vouch demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "vouch demo failed:\n{stdout}\n{stderr}");
    assert!(!stdout.contains("FAIL"), "{stdout}");
    for expected in [
        "VERIFIED signed image, right key",
        "REJECTED signed image, another key",
        "REJECTED image with a signature copied from another image",
        "REJECTED unsigned image",
        "VERIFIED Notation-signed image, trusted identity",
        "CN=release,O=vouch-demo,ST=WA,C=US (certificate sha256:",
        "REJECTED Notation-signed image, another identity",
        "POST /mutate",
        "\"op\":\"replace\"",
        "denied: Pod demo/rogue: container app: image",
        "policy demo-signed: signature: no signature verifies against key demo-key",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
}
