//! The exit codes every subcommand shares: 0 ok, 1 not verified / violations, 2 usage, configuration or
//! I/O error.

/// Exit code: verified / no violations.
pub const EXIT_OK: u8 = 0;
/// Exit code: not verified / violations found.
pub const EXIT_REJECTED: u8 = 1;
/// Exit code: usage, configuration or I/O error.
pub const EXIT_ERROR: u8 = 2;
