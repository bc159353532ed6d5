//! The `vouch` binary: everything lives in the library.

/// mimalloc: an admission review is parsed into many small allocations, freed when it is answered; glibc's
/// malloc spent a tenth of the hot path's time in its own bookkeeping (docs/dev/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    vouch_webhooks::cli::main()
}
