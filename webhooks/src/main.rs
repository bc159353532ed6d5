//! The `vouch` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    vouch_webhooks::cli::main()
}
