//! The core's error type: small, `Copy`, no heap.

use core::fmt;

/// Why a solver could not be built or configured.
///
/// A numerical breakdown during a run is **not** an error: it is a
/// [`Termination`](crate::Termination) reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// A hyperparameter is outside its valid range.
    InvalidParam {
        /// Hyperparameter name, as in the registry.
        name: &'static str,
        /// What the valid range is.
        expected: &'static str,
    },
    /// A hyperparameter name that the solver does not have.
    UnknownParam,
    /// A hyperparameter given a value of the wrong type.
    WrongType {
        /// Hyperparameter name, as in the registry.
        name: &'static str,
        /// The type the registry declares.
        expected: &'static str,
    },
    /// No solver of that name is in the registry.
    UnknownSolver,
    /// A buffer's length does not match the problem's dimension.
    DimensionMismatch {
        /// Which buffer.
        what: &'static str,
        /// The problem's dimension.
        expected: usize,
        /// The buffer's length.
        found: usize,
    },
    /// The caller-supplied scratch memory is too small.
    InsufficientMemory {
        /// Entries needed.
        needed: usize,
        /// Entries supplied.
        found: usize,
    },
    /// `step` was called before `init`.
    NotInitialized,
    /// The oracle lacks a capability the solver needs.
    MissingOracle {
        /// The oracle kind, e.g. `"cross_jvp"`.
        oracle: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::InvalidParam { name, expected } => {
                write!(f, "invalid value for `{name}`: expected {expected}")
            }
            Error::UnknownParam => f.write_str("unknown hyperparameter"),
            Error::WrongType { name, expected } => {
                write!(f, "`{name}` takes a value of type {expected}")
            }
            Error::UnknownSolver => f.write_str("no solver of that name in the registry"),
            Error::DimensionMismatch {
                what,
                expected,
                found,
            } => write!(f, "`{what}` has length {found}, expected {expected}"),
            Error::InsufficientMemory { needed, found } => {
                write!(f, "scratch memory holds {found} entries, {needed} needed")
            }
            Error::NotInitialized => f.write_str("the solver was stepped before `init`"),
            Error::MissingOracle { oracle } => {
                write!(f, "the problem does not provide the `{oracle}` oracle")
            }
        }
    }
}

impl core::error::Error for Error {}
