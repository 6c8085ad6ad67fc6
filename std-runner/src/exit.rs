//! Exit codes of the `bilevel` command, and the error type that marks a
//! failed write of a run's files.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | error: bad input, a spec that does not check, a refused run folder, a failed job |
//! | 2 | bad usage (unknown flag, missing argument) |
//! | 3 | a run ended normally but violated its spec's `expect` block |
//! | 4 | a run broke down (`non_finite`, `diverged`) |
//! | 5 | a run's files could not be written (disk full, I/O error) |
//! | 129, 130, 143 | stopped by SIGHUP, SIGINT (Ctrl-C), SIGTERM; the files are complete |

use std::fmt;

/// Bad input or another error (`anyhow` errors in general).
pub const ERROR: u8 = 1;
/// Bad usage (clap's own code).
pub const USAGE: u8 = 2;
/// A violated `expect`.
pub const EXPECT_VIOLATED: u8 = 3;
/// A numerical breakdown (`non_finite`, `diverged`).
pub const BREAKDOWN: u8 = 4;
/// A run's files could not be written.
pub const IO_FAILURE: u8 = 5;

/// A write of a run's files failed: the run stopped, what was written stays
/// (the trace's `.part` file with its complete lines) and nothing torn was
/// renamed into place. Exit code [`IO_FAILURE`].
#[derive(Debug)]
pub struct IoFailure(pub anyhow::Error);

impl fmt::Display for IoFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.0)
    }
}

impl std::error::Error for IoFailure {}

/// The exit code of an error: [`IO_FAILURE`] when a run's files could not be
/// written, else [`ERROR`].
pub fn of_error(e: &anyhow::Error) -> u8 {
    if e.chain().any(<dyn std::error::Error>::is::<IoFailure>) {
        IO_FAILURE
    } else {
        ERROR
    }
}

/// The exit code of a finished run: breakdown before a violated `expect`.
pub fn of_run(termination: &str, expectations_hold: bool) -> u8 {
    if termination == "non_finite" || termination == "diverged" {
        BREAKDOWN
    } else if !expectations_hold {
        EXPECT_VIOLATED
    } else {
        0
    }
}
