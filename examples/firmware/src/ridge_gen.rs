//! The on-device job: ridge regression on scikit-learn's diabetes table whose
//! per-feature regularisation is tuned on validation data by a bilevel solver,
//! with the oracle GENERATED from `examples/specs/firmware_ridge.bilevel`
//! (`bilevel codegen` as a library in `build.rs`, f32, module `ridge_f32`).
//!
//! This module is `no_std`, heap-free and shared verbatim by the firmware
//! (`examples/firmware/src/main.rs`) and the host test
//! (`examples/codegen/tests/firmware_job.rs`, through `#[path]`); both reach
//! the generated module as `crate::gen::ridge_f32` (the firmware includes it
//! from its `OUT_DIR`, the host test takes `bilevel_codegen_check::ridge_f32`,
//! generated from the same spec with the same options), so both run the same
//! oracle, configuration and seed, and must produce the same bits.
//!
//! # The problem (the spec)
//!
//! With training rows (aᵢ, tᵢ), validation rows (âₖ, t̂ₖ) standardised in the
//! spec with the training statistics, weights w ∈ ℝ¹⁰ (the lower variable y)
//! and log-regularisation λ ∈ ℝ¹⁰ (the upper variable x):
//!
//! ```text
//! g(λ, w) = 1/(2n) Σᵢ (aᵢᵀw − tᵢ)² + ½ Σⱼ exp(λⱼ) wⱼ²     (training, n = 295)
//! f(λ, w) = 1/(2m) Σₖ (âₖᵀw − t̂ₖ)²                      (validation, m = 147)
//! ```
//!
//! The raw table is compiled in as exact integer codes (7,367 B); the
//! minibatches of [`BATCH`] rows are drawn with replacement by the generated
//! `Oracle::sample` with the core's generator. Everything here that is not
//! the solvers' oracle (the full validation loss, the exact ridge fit Φ) is
//! computed through the generated oracle too, on chunks of the tables.

use bilevel_core::solver::{BoRep, BoRepConfig, LowerOutput, Slip, SlipConfig, WarmStart};
use bilevel_core::{
    run, Budget, Counted, DefaultRng, Error, LowerGradY, LowerHvp, Observe, Real, Report,
    UpperValue,
};
use rand_core::SeedableRng;

use crate::gen::ridge_f32 as g;

/// Features per row.
pub const D: usize = g::DIM_Y;
/// Training rows.
pub const N_TRAIN: usize = g::D0_ROWS;
/// Validation rows.
pub const N_VAL: usize = g::D1_ROWS;
/// Feature names, in column order (the spec's table header).
pub const FEATURES: [&str; D] = [
    "age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6",
];

// λ and w have one entry per feature.
const _: () = assert!(g::DIM_X == D);

/// Rows per minibatch (training and validation alike: the spec's `batch`).
pub const BATCH: usize = 32;

/// Seed of both runs (firmware and host test).
pub const SEED: u64 = 0x00B1_1EE7;

/// Outer iterations of both runs.
pub const ITERS: u64 = 2_000;

/// Initial log-regularisation λ₀ (the spec's `init zeros`).
pub const LAMBDA0: [f32; D] = g::X0;

/// Initial weights w₀.
pub const W0: [f32; D] = g::Y0;

/// The generated oracle.
pub type Ridge = g::Problem;

/// Copies a slice into a fixed-size array (shorter inputs leave zeros).
#[inline]
fn load(s: &[f32]) -> [f32; D] {
    let mut a = [0.0; D];
    for (d, &v) in a.iter_mut().zip(s) {
        *d = v;
    }
    a
}

/// A minibatch of rows `start..start + len` of table `source` (0 training,
/// 1 validation), `len` at most [`BATCH`].
fn chunk(source: usize, start: usize, len: usize) -> g::Sample {
    let mut rows = [0_u64; BATCH];
    for (k, r) in rows.iter_mut().enumerate() {
        *r = (start + k) as u64;
    }
    let mut s = g::Sample::new();
    s.set(source, &rows[..len.min(BATCH)]);
    s
}

/// Calls `each(sample, weight)` for consecutive chunks of table `source`
/// (`n` rows), weight = chunk rows / n: a mean over the table is the
/// weighted sum of the generated oracle's chunk means.
fn chunks(source: usize, n: usize, mut each: impl FnMut(&g::Sample, f32)) {
    let mut start = 0;
    while start < n {
        let len = BATCH.min(n - start);
        each(&chunk(source, start, len), len as f32 / n as f32);
        start += len;
    }
}

/// The full validation loss f(·, w) = 1/(2m) Σₖ (âₖᵀw − t̂ₖ)², from the
/// generated f on chunks of the validation table. Out of line: [`phi`] and
/// the firmware's progress lines share one copy.
#[inline(never)]
pub fn val_loss(w: &[f32]) -> f32 {
    let mut o = Ridge::new();
    let mut f = 0.0;
    chunks(1, N_VAL, |s, k| f += k * o.f_value(&LAMBDA0, w, s));
    f
}

/// The exact lower-level solution w*(λ) = (AᵀA/n + diag(exp λ))⁻¹ Aᵀt/n on
/// the full training part, by Cholesky factorisation. g is quadratic in w:
/// its Hessian's columns are the generated HVPs ∇²ᵧᵧg·eⱼ and Aᵀt/n is
/// −∇ᵧg(λ, 0), both summed over chunks of the training table. `None` if the
/// matrix is not numerically positive definite.
pub fn ridge_solution(lambda: &[f32]) -> Option<[f32; D]> {
    let lambda = load(lambda);
    let mut o = Ridge::new();
    let mut h = [[0.0_f32; D]; D];
    let mut b = [0.0_f32; D];
    let mut col = [0.0_f32; D];
    chunks(0, N_TRAIN, |s, k| {
        o.grad_y_g(&lambda, &W0, s, &mut col);
        for (bj, &c) in b.iter_mut().zip(&col) {
            *bj -= k * c;
        }
        for (j, hj) in h.iter_mut().enumerate() {
            let mut e = [0.0_f32; D];
            e[j] = 1.0;
            o.hvp_yy(&lambda, &W0, &e, s, &mut col);
            for (v, &c) in hj.iter_mut().zip(&col) {
                *v += k * c;
            }
        }
    });
    // In-place Cholesky H = L Lᵀ (lower triangle of `h`).
    for j in 0..D {
        let row_j = h[j];
        let mut d = row_j[j];
        for &l in &row_j[..j] {
            d -= l * l;
        }
        if !(d > 0.0 && d.is_finite()) {
            return None;
        }
        let l = Real::sqrt(d);
        h[j][j] = l;
        for row_i in &mut h[j + 1..] {
            let mut s = row_i[j];
            for (&a, &b) in row_i[..j].iter().zip(&row_j[..j]) {
                s -= a * b;
            }
            row_i[j] = s / l;
        }
    }
    // Forward (L u = b) and back (Lᵀ w = u) substitution.
    for i in 0..D {
        for k in 0..i {
            b[i] -= h[i][k] * b[k];
        }
        b[i] /= h[i][i];
    }
    for i in (0..D).rev() {
        for k in i + 1..D {
            b[i] -= h[k][i] * b[k];
        }
        b[i] /= h[i][i];
    }
    Some(b)
}

/// Φ(λ) = f(λ, w*(λ)): the validation loss of the exact ridge fit at λ.
pub fn phi(lambda: &[f32]) -> Option<f32> {
    ridge_solution(lambda).map(|w| val_loss(&w))
}

/// The best single penalty shared by all features, for comparison: the
/// smallest Φ(c·1) over c ∈ {−12, −11.75, …, 3}, as (Φ, c).
pub fn best_uniform() -> Option<(f32, f32)> {
    let mut best: Option<(f32, f32)> = None;
    for k in -48_i16..=12 {
        let c = f32::from(k) * 0.25;
        if let Some(p) = phi(&[c; D]) {
            if best.is_none_or(|(b, _)| p < b) {
                best = Some((p, c));
            }
        }
    }
    best
}

/// BO-REP's settings for the job.
pub fn borep_config() -> BoRepConfig {
    BoRepConfig {
        eta: 0.02,
        beta: 0.9,
        nu: 0.1,
        gamma: 0.1,
        period: 2,
        inner_steps: 3,
        lower_output: LowerOutput::Average,
        warm_start: WarmStart::EpochSgd,
        warm_epochs: 4,
        warm_len: 8,
        warm_lr: 0.2,
        ..BoRepConfig::default()
    }
}

/// SLIP's settings for the job.
pub fn slip_config() -> SlipConfig {
    SlipConfig {
        eta: 0.02,
        beta: 0.9,
        nu: 0.1,
        gamma: 0.1,
        warm_steps: 50,
        ..SlipConfig::default()
    }
}

/// What one run produced.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Final log-regularisation λ.
    pub lambda: [f32; D],
    /// Final weights w.
    pub w: [f32; D],
    /// Termination, iterations and oracle calls.
    pub report: Report,
}

impl Outcome {
    /// The f32 bits of λ followed by those of w: the golden value.
    pub fn bits(&self) -> [u32; 2 * D] {
        let mut b = [0; 2 * D];
        for (o, v) in b.iter_mut().zip(self.lambda.iter().chain(&self.w)) {
            *o = v.to_bits();
        }
        b
    }
}

/// The budget of both runs: [`ITERS`] iterations, no divergence check (it
/// would cost soft-float `f64` work per iteration on the device).
pub fn budget(iters: u64) -> Budget {
    Budget::iters(iters).with_divergence(f64::INFINITY)
}

fn outcome(x: &[f32], y: &[f32], report: Report) -> Outcome {
    Outcome {
        lambda: load(x),
        w: load(y),
        report,
    }
}

/// Runs BO-REP for `iters` iterations from (λ₀, w₀) with [`SEED`].
pub fn run_borep<W: Observe<f32>>(iters: u64, observer: &mut W) -> Result<Outcome, Error> {
    use bilevel_core::SolverState;
    let mut solver = BoRep::new(borep_config(), LAMBDA0, W0)?;
    let mut oracle = Counted::new(Ridge::new());
    let mut rng = DefaultRng::seed_from_u64(SEED);
    let report = run(&mut solver, &mut oracle, &mut rng, &budget(iters), observer)?;
    Ok(outcome(solver.x(), solver.y(), report))
}

/// Runs SLIP for `iters` iterations from (λ₀, w₀) with [`SEED`].
pub fn run_slip<W: Observe<f32>>(iters: u64, observer: &mut W) -> Result<Outcome, Error> {
    use bilevel_core::SolverState;
    let mut solver = Slip::new(slip_config(), LAMBDA0, W0)?;
    let mut oracle = Counted::new(Ridge::new());
    let mut rng = DefaultRng::seed_from_u64(SEED);
    let report = run(&mut solver, &mut oracle, &mut rng, &budget(iters), observer)?;
    Ok(outcome(solver.x(), solver.y(), report))
}

/// The f32 bits of BO-REP's final (λ, w) after [`ITERS`] iterations with
/// [`SEED`], as computed on x86_64 by the host test
/// (`examples/codegen/tests/firmware_job.rs`); the firmware checks the same
/// constant on the Cortex-M4F. The module is generated with
/// `CodegenOptions::libm` on both sides, so the host test calls `libm` as
/// the device does, not std's `expf` (docs/decisions.md 113).
pub const GOLDEN_BOREP: [u32; 2 * D] = [
    0x4039_3aac,
    0xbfbc_1e32,
    0xc054_af1e,
    0xc011_4e78,
    0x3ef6_204a,
    0x4007_38c6,
    0xc089_ce35,
    0x3f2a_3557,
    0x3e01_193e,
    0xc044_be07,
    0xbb95_6000,
    0xbe08_03b0,
    0x3ebc_b8d2,
    0x3e69_48dc,
    0x3c1f_3886,
    0xbad9_45a0,
    0xbe3b_862b,
    0x3c80_f020,
    0x3db8_cecf,
    0x3d9a_c7e6,
];

/// The f32 bits of SLIP's final (λ, w), as [`GOLDEN_BOREP`].
pub const GOLDEN_SLIP: [u32; 2 * D] = [
    0x4012_33d5,
    0xbd9d_4a95,
    0xc052_1499,
    0xbf91_8381,
    0xbdbd_52c6,
    0x4009_bb83,
    0xc08c_8b1d,
    0x3ef3_336e,
    0xc001_ee0d,
    0xc03e_35ff,
    0x3b6c_78c8,
    0xbd55_ee36,
    0x3ea5_dd16,
    0x3e0d_bf53,
    0xbd28_7163,
    0xbbd1_f848,
    0xbe0f_e359,
    0x3b89_2e28,
    0x3e9c_022a,
    0x3c4f_f799,
];
