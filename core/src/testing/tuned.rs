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
    ("slip", &[("eta", Real(0.02))]),
    ("soba", &[]),
    ("ma-soba", &[]),
    (
        "stocbio",
        &[
            ("hessian_lr", Real(1.0)),
            ("neumann_steps", Int(30)),
            ("outer_lr", Real(1.0)),
            ("outer_decay", Real(0.5)),
        ],
    ),
    (
        "ttsa",
        &[("hessian_lr", Real(1.0)), ("neumann_terms", Int(50))],
    ),
    (
        "f2sa",
        &[
            ("inner_lr", Real(0.01)),
            ("inner_decay", Real(0.0)),
            ("lower_lr", Real(0.5)),
            ("lower_decay", Real(0.0)),
            ("outer_lr", Real(0.01)),
            ("outer_decay", Real(0.0)),
            ("lambda0", Real(50.0)),
            ("lambda_step", Real(0.0)),
        ],
    ),
    (
        "aid-cg",
        &[
            ("cg_steps", Int(5)),
            ("warm_start", ParamValue::Bool(false)),
            ("outer_lr", Real(1.0)),
            ("outer_decay", Real(0.5)),
        ],
    ),
    ("aid-neumann", &[]),
    (
        "itd",
        &[
            ("inner_lr", Real(1.0)),
            ("inner_steps", Int(30)),
            ("outer_lr", Real(1.0)),
            ("outer_decay", Real(1.0)),
        ],
    ),
    ("amigo", &[]),
    (
        "bsa",
        &[("hessian_lr", Real(1.0)), ("neumann_terms", Int(50))],
    ),
    (
        "alset",
        &[
            ("hessian_lr", Real(1.0)),
            ("neumann_terms", Int(30)),
            ("inner_steps", Int(5)),
            ("outer_lr", Real(0.3)),
            ("outer_decay", Real(0.5)),
        ],
    ),
    ("fsla", &[]),
    (
        "accbo",
        &[
            ("outer_lr", Real(0.003)),
            ("inner_lr", Real(0.5)),
            ("hessian_lr", Real(1.0)),
            ("neumann_terms", Int(30)),
            ("beta", Real(0.995)),
        ],
    ),
    (
        "adambo",
        &[
            ("outer_lr", Real(0.01)),
            ("weight_decay", Real(0.0)),
            ("inner_lr", Real(0.5)),
            ("neumann_lr", Real(1.0)),
            ("hessian_q", Int(30)),
            ("exact_series", ParamValue::Bool(true)),
        ],
    ),
    ("slip-adam", &[]),
    (
        "mrbo",
        &[
            ("step_size", Real(1.0)),
            ("hia_lr", Real(1.0)),
            ("n_shia_steps", Int(30)),
        ],
    ),
    (
        "sustain",
        &[
            ("step_size", Real(1.0)),
            ("hia_lr", Real(1.0)),
            ("n_hia_steps", Int(50)),
        ],
    ),
    (
        "vrbo",
        &[
            ("step_size", Real(0.5)),
            ("hia_lr", Real(1.0)),
            ("n_shia_steps", Int(30)),
            ("period_frac", Real(0.5)),
        ],
    ),
    (
        "bome",
        &[("step_size", Real(0.2)), ("n_inner_steps", Int(50))],
    ),
    ("srba", &[("step_size", Real(0.5))]),
];

/// `(solver name, overrides)` for the 2-D toy ([`toy`](super::toy), μ ≈ 0.79,
/// L ≈ 2.2): Neumann steps below 1/L and enough terms that the truncation
/// bias is negligible; x steps small enough for the toy's noise.
pub const TOY: &[(&str, &[(&str, ParamValue<'static>)])] = &[
    (
        "bo-rep",
        &[
            ("eta", Real(0.01)),
            ("gamma", Real(0.2)),
            ("nu", Real(0.2)),
            ("eta_decay", Real(1.0)),
            ("eta_decay_steps", Real(500.0)),
        ],
    ),
    (
        "slip",
        &[
            ("eta", Real(0.01)),
            ("gamma", Real(0.2)),
            ("nu", Real(0.2)),
            ("eta_decay", Real(1.0)),
            ("eta_decay_steps", Real(500.0)),
        ],
    ),
    ("soba", &[("step_size", Real(0.3))]),
    (
        "ma-soba",
        &[
            ("outer_lr", Real(0.05)),
            ("inner_lr", Real(0.2)),
            ("z_lr", Real(0.2)),
        ],
    ),
    (
        "stocbio",
        &[
            ("hessian_lr", Real(0.4)),
            ("neumann_steps", Int(30)),
            ("outer_lr", Real(1.0)),
            ("outer_decay", Real(0.5)),
        ],
    ),
    (
        "ttsa",
        &[
            ("hessian_lr", Real(0.45)),
            ("neumann_terms", Int(10)),
            ("outer_lr", Real(0.3)),
        ],
    ),
    (
        "f2sa",
        &[
            ("inner_lr", Real(0.02)),
            ("inner_decay", Real(0.0)),
            ("lower_lr", Real(0.2)),
            ("lower_decay", Real(0.0)),
            ("outer_lr", Real(0.02)),
            ("outer_decay", Real(0.0)),
            ("lambda0", Real(20.0)),
            ("lambda_step", Real(0.0)),
        ],
    ),
    (
        "aid-cg",
        &[("outer_lr", Real(1.0)), ("outer_decay", Real(0.5))],
    ),
    (
        "aid-neumann",
        &[
            ("hessian_lr", Real(0.4)),
            ("outer_lr", Real(1.0)),
            ("outer_decay", Real(0.5)),
        ],
    ),
    (
        "itd",
        &[
            ("inner_lr", Real(0.4)),
            ("inner_steps", Int(30)),
            ("outer_lr", Real(1.0)),
            ("outer_decay", Real(0.5)),
        ],
    ),
    (
        "amigo",
        &[("outer_lr", Real(1.0)), ("outer_decay", Real(0.5))],
    ),
    (
        "bsa",
        &[
            ("hessian_lr", Real(0.45)),
            ("neumann_terms", Int(10)),
            ("outer_lr", Real(0.3)),
        ],
    ),
    (
        "alset",
        &[
            ("hessian_lr", Real(0.45)),
            ("neumann_terms", Int(10)),
            ("outer_lr", Real(0.3)),
            ("outer_decay", Real(0.5)),
        ],
    ),
    (
        "fsla",
        &[
            ("inner_lr", Real(0.5)),
            ("outer_lr", Real(0.5)),
            ("momentum", Real(0.5)),
        ],
    ),
    (
        "accbo",
        &[
            ("outer_lr", Real(0.003)),
            ("inner_lr", Real(0.2)),
            ("hessian_lr", Real(0.45)),
            ("neumann_terms", Int(6)),
            ("beta", Real(0.99)),
        ],
    ),
    (
        "adambo",
        &[
            ("outer_lr", Real(0.004)),
            ("weight_decay", Real(0.0)),
            ("inner_lr", Real(0.2)),
            ("neumann_lr", Real(0.4)),
            ("hessian_q", Int(20)),
            ("exact_series", ParamValue::Bool(true)),
        ],
    ),
    (
        "slip-adam",
        &[("lr", Real(0.004)), ("gamma", Real(0.2)), ("nu", Real(0.2))],
    ),
    (
        "mrbo",
        &[
            ("step_size", Real(0.5)),
            ("hia_lr", Real(0.4)),
            ("n_shia_steps", Int(20)),
        ],
    ),
    (
        "sustain",
        &[
            ("step_size", Real(0.5)),
            ("hia_lr", Real(0.4)),
            ("n_hia_steps", Int(20)),
        ],
    ),
    (
        "vrbo",
        &[
            ("step_size", Real(0.5)),
            ("hia_lr", Real(0.4)),
            ("n_shia_steps", Int(20)),
            ("n_inner_steps", Int(3)),
            ("period_frac", Real(0.5)),
        ],
    ),
];

/// The d = 100 overrides for `name` (empty when the solver is not listed).
pub fn overrides(name: &str) -> &'static [(&'static str, ParamValue<'static>)] {
    D100.iter()
        .find(|(n, _)| *n == name)
        .map_or(&[], |(_, o)| o)
}

/// The toy overrides for `name` (empty when the solver is not listed).
pub fn toy_overrides(name: &str) -> &'static [(&'static str, ParamValue<'static>)] {
    TOY.iter().find(|(n, _)| *n == name).map_or(&[], |(_, o)| o)
}
