//! The on-device job: ridge regression on scikit-learn's diabetes table whose
//! per-feature regularisation is tuned on validation data by a bilevel solver.
//!
//! This module is `no_std`, heap-free and shared verbatim by the firmware
//! (`examples/firmware/src/main.rs`) and the host test
//! (`examples/tests/firmware_ridge.rs`, through `#[path]`), so both run the
//! same oracle, configuration and seed, and must produce the same bits.
//!
//! # The problem
//!
//! With training rows (aᵢ, tᵢ), validation rows (âₖ, t̂ₖ), weights w ∈ ℝ¹⁰
//! (the lower variable y) and log-regularisation λ ∈ ℝ¹⁰ (the upper variable
//! x):
//!
//! ```text
//! g(λ, w) = 1/(2n) Σᵢ (aᵢᵀw − tᵢ)² + ½ Σⱼ exp(λⱼ) wⱼ²     (training, n = 295)
//! f(λ, w) = 1/(2m) Σₖ (âₖᵀw − t̂ₖ)²                      (validation, m = 147)
//! ```
//!
//! The table is stored losslessly as integer codes (`data.rs`) and
//! standardised on the fly with training statistics ([`features`],
//! [`target`]), so the model needs no intercept. The stochastic oracles use minibatches of
//! [`BATCH`] rows drawn with replacement:
//!
//! ```text
//! ∇ᵧG(λ, w; B)    = (1/|B|) Σ_{i∈B} aᵢ (aᵢᵀw − tᵢ) + exp(λ) ⊙ w
//! ∇²ᵧᵧG(λ, w; B)·v = (1/|B|) Σ_{i∈B} aᵢ (aᵢᵀv) + exp(λ) ⊙ v
//! ∇²ₓᵧG(λ, w)·v   = exp(λ) ⊙ w ⊙ v        (∂/∂λⱼ of ⟨∇ᵧG, v⟩; no data)
//! ∇ᵧF(λ, w; V)    = (1/|V|) Σ_{k∈V} âₖ (âₖᵀw − t̂ₖ)
//! ∇ₓF             = 0                     (f does not depend on λ directly)
//! ```

pub mod data;

use bilevel_core::solver::{BoRep, BoRepConfig, LowerOutput, Slip, SlipConfig, WarmStart};
use bilevel_core::{
    run, Budget, Counted, CrossJvp, DefaultRng, Error, Level, LowerGradY, LowerHvp, LowerValue,
    Observe, Oracle, Real, Report, UpperGradX, UpperGradY, UpperValue,
};
use rand_core::{Rng, SeedableRng};

use data::Row;
pub use data::{D, FEATURES, N_TRAIN, N_VAL};

// The written-out arithmetic below is for exactly ten features.
const _: () = assert!(D == 10);

/// Rows per minibatch (training and validation alike).
pub const BATCH: usize = 32;

/// Seed of both runs (firmware and host test).
pub const SEED: u64 = 0x00B1_1EE7;

/// Outer iterations of both runs.
pub const ITERS: u64 = 2_000;

/// Initial log-regularisation λ₀ (every feature penalised by exp(0) = 1).
pub const LAMBDA0: [f32; D] = [0.0; D];

/// Initial weights w₀.
pub const W0: [f32; D] = [0.0; D];

/// Which data a minibatch indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Train,
    Val,
}

/// Minibatch row indices derived from a sample seed: a 64-bit linear
/// congruential stream (Knuth's MMIX constants) whose high 32 bits are mapped
/// to `0..n` by a multiply-shift. Drawn with replacement; a handful of
/// instructions per index on a Cortex-M4.
#[derive(Debug, Clone)]
struct Batch {
    state: u64,
    n: u64,
    left: usize,
}

impl Batch {
    fn new(seed: u64, n: usize) -> Self {
        Batch {
            state: seed,
            n: n as u64,
            left: BATCH,
        }
    }
}

impl Iterator for Batch {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        self.state = self
            .state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        Some((((self.state >> 32) * self.n) >> 32) as usize)
    }
}

/// The rows of one part of the table.
fn part(p: Part) -> &'static [Row] {
    match p {
        Part::Train => &data::TRAIN,
        Part::Val => &data::VAL,
    }
}

/// A row's standardised features, (f32(qⱼ) − CENTERⱼ) · INV_SCALEⱼ: two
/// flops per feature (the integer-to-float conversion is exact). Written out
/// for the same reason as [`dot`].
#[allow(clippy::inline_always)] // hot loop body: must not become a call
#[inline(always)]
pub fn features(r: &Row) -> [f32; D] {
    use data::{CENTER as C, INV_SCALE as S};
    [
        (f32::from(r.0) - C[0]) * S[0],
        (f32::from(r.1) - C[1]) * S[1],
        (f32::from(r.2) - C[2]) * S[2],
        (f32::from(r.3) - C[3]) * S[3],
        (f32::from(r.4) - C[4]) * S[4],
        (f32::from(r.5) - C[5]) * S[5],
        (f32::from(r.6) - C[6]) * S[6],
        (f32::from(r.7) - C[7]) * S[7],
        (f32::from(r.8) - C[8]) * S[8],
        (f32::from(r.9) - C[9]) * S[9],
    ]
}

/// A row's standardised target (two flops).
#[allow(clippy::inline_always)] // hot loop body: must not become a call
#[inline(always)]
pub fn target(r: &Row) -> f32 {
    (f32::from(r.10) - data::T_CENTER) * data::T_INV_SCALE
}

/// Copies a slice into a fixed-size array (shorter inputs leave zeros), so
/// the hot loops below run on `[f32; D]` without bounds checks or panics.
#[inline]
fn load(s: &[f32]) -> [f32; D] {
    let mut a = [0.0; D];
    for (d, &v) in a.iter_mut().zip(s) {
        *d = v;
    }
    a
}

#[inline]
fn store(a: &[f32; D], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(a) {
        *o = v;
    }
}

/// aᵀb, summed left to right. Written out (as is [`data_term`]'s update)
/// because at `opt-level = "s"` LLVM keeps 10-trip loops rolled, which costs
/// three times the arithmetic in loop overhead on the Cortex-M4.
#[inline]
fn dot(a: &[f32; D], b: &[f32; D]) -> f32 {
    a[0] * b[0]
        + a[1] * b[1]
        + a[2] * b[2]
        + a[3] * b[3]
        + a[4] * b[4]
        + a[5] * b[5]
        + a[6] * b[6]
        + a[7] * b[7]
        + a[8] * b[8]
        + a[9] * b[9]
}

/// A row's centred feature codes, f32(qⱼ) − CENTERⱼ (one flop per feature):
/// [`features`] before the scaling, which [`data_term`] folds into `v` and
/// its result.
#[allow(clippy::inline_always)] // hot loop body: must not become a call
#[inline(always)]
fn centred(r: &Row) -> [f32; D] {
    use data::CENTER as C;
    [
        f32::from(r.0) - C[0],
        f32::from(r.1) - C[1],
        f32::from(r.2) - C[2],
        f32::from(r.3) - C[3],
        f32::from(r.4) - C[4],
        f32::from(r.5) - C[5],
        f32::from(r.6) - C[6],
        f32::from(r.7) - C[7],
        f32::from(r.8) - C[8],
        f32::from(r.9) - C[9],
    ]
}

/// (1/|B|) Σ_{i∈B} aᵢ (aᵢᵀv − c·tᵢ) over the minibatch `seed` of part `p`:
/// the data term of ∇ᵧG / ∇ᵧF (c = 1) and of the HVP (c = 0). Kept out of
/// line: it is the hot loop, called once per oracle call, and inlining it
/// into every call site of every solver would cost kilobytes of flash.
///
/// The rows are standardised on the fly, aᵢ = s ⊙ ãᵢ with the centred codes
/// ãᵢ = [`centred`] and s = [`data::INV_SCALE`]; the per-feature scale is
/// applied once per call rather than once per row: aᵢᵀv = ãᵢᵀ(s ⊙ v) and
/// Σ aᵢ rᵢ = s ⊙ Σ ãᵢ rᵢ.
#[inline(never)]
fn data_term(p: Part, seed: u64, v: &[f32; D], with_target: bool) -> [f32; D] {
    let rows = part(p);
    let s = data::INV_SCALE;
    let mut sv = [0.0; D];
    for ((o, &sj), &vj) in sv.iter_mut().zip(&s).zip(v) {
        *o = sj * vj;
    }
    let mut acc = [0.0; D];
    for i in Batch::new(seed, rows.len()) {
        let Some(q) = rows.get(i) else {
            continue;
        };
        let a = centred(q);
        // Branch-free (the HVP subtracts 0): a branch here makes LLVM
        // shuffle the 30 live registers around it on every row.
        let t = if with_target { target(q) } else { 0.0 };
        let r = dot(&a, &sv) - t;
        acc = [
            acc[0] + r * a[0],
            acc[1] + r * a[1],
            acc[2] + r * a[2],
            acc[3] + r * a[3],
            acc[4] + r * a[4],
            acc[5] + r * a[5],
            acc[6] + r * a[6],
            acc[7] + r * a[7],
            acc[8] + r * a[8],
            acc[9] + r * a[9],
        ];
    }
    let inv = 1.0 / BATCH as f32;
    for (a, &sj) in acc.iter_mut().zip(&s) {
        *a *= sj * inv;
    }
    acc
}

/// The ridge bilevel problem on the diabetes table (the data are `static`s,
/// so the oracle itself holds nothing).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ridge;

impl Oracle<f32> for Ridge {
    /// The seed from which the minibatch's row indices are derived.
    type Sample = u64;

    fn dim_x(&self) -> usize {
        D
    }

    fn dim_y(&self) -> usize {
        D
    }

    fn sample<R: Rng + ?Sized>(&mut self, _level: Level, rng: &mut R) -> u64 {
        rng.next_u64()
    }
}

impl UpperGradX<f32> for Ridge {
    fn grad_x_f(&mut self, _x: &[f32], _y: &[f32], _s: &u64, out: &mut [f32]) {
        out.fill(0.0);
    }
}

impl UpperGradY<f32> for Ridge {
    fn grad_y_f(&mut self, _x: &[f32], y: &[f32], s: &u64, out: &mut [f32]) {
        store(&data_term(Part::Val, *s, &load(y), true), out);
    }
}

impl LowerGradY<f32> for Ridge {
    fn grad_y_g(&mut self, x: &[f32], y: &[f32], s: &u64, out: &mut [f32]) {
        let (lambda, w) = (load(x), load(y));
        let mut g = data_term(Part::Train, *s, &w, true);
        for ((gj, &lj), &wj) in g.iter_mut().zip(&lambda).zip(&w) {
            *gj += Real::exp(lj) * wj;
        }
        store(&g, out);
    }
}

impl LowerHvp<f32> for Ridge {
    fn hvp_yy(&mut self, x: &[f32], _y: &[f32], v: &[f32], s: &u64, out: &mut [f32]) {
        let (lambda, v) = (load(x), load(v));
        let mut h = data_term(Part::Train, *s, &v, false);
        for ((hj, &lj), &vj) in h.iter_mut().zip(&lambda).zip(&v) {
            *hj += Real::exp(lj) * vj;
        }
        store(&h, out);
    }
}

impl CrossJvp<f32> for Ridge {
    fn jvp_xy(&mut self, x: &[f32], y: &[f32], v: &[f32], _s: &u64, out: &mut [f32]) {
        let (lambda, w, v) = (load(x), load(y), load(v));
        let mut c = [0.0; D];
        for (((cj, &lj), &wj), &vj) in c.iter_mut().zip(&lambda).zip(&w).zip(&v) {
            *cj = Real::exp(lj) * wj * vj;
        }
        store(&c, out);
    }
}

/// Mean of ½(aᵀw − t)² over the minibatch `seed` of part `p`.
fn batch_half_sq(p: Part, seed: u64, w: &[f32]) -> f32 {
    let rows = part(p);
    let w = load(w);
    let mut s = 0.0;
    for i in Batch::new(seed, rows.len()) {
        if let Some(q) = rows.get(i) {
            let r = dot(&features(q), &w) - target(q);
            s += r * r;
        }
    }
    0.5 * s / BATCH as f32
}

impl UpperValue<f32> for Ridge {
    /// F(λ, w; V): the validation minibatch's loss.
    fn f_value(&mut self, _x: &[f32], y: &[f32], s: &u64) -> f32 {
        batch_half_sq(Part::Val, *s, y)
    }
}

impl LowerValue<f32> for Ridge {
    /// G(λ, w; B): the training minibatch's loss plus the penalty.
    fn g_value(&mut self, x: &[f32], y: &[f32], s: &u64) -> f32 {
        let (lambda, w) = (load(x), load(y));
        let mut pen = 0.0;
        for (&lj, &wj) in lambda.iter().zip(&w) {
            pen += Real::exp(lj) * wj * wj;
        }
        batch_half_sq(Part::Train, *s, y) + 0.5 * pen
    }
}

/// The full validation loss f(·, w) = 1/(2m) Σₖ (âₖᵀw − t̂ₖ)². Out of line:
/// [`phi`] and the firmware's progress lines share one copy.
#[inline(never)]
pub fn val_loss(w: &[f32]) -> f32 {
    let rows = part(Part::Val);
    let w = load(w);
    let mut s = 0.0;
    for q in rows {
        let r = dot(&features(q), &w) - target(q);
        s += r * r;
    }
    0.5 * s / rows.len() as f32
}

/// The exact lower-level solution w*(λ) = (AᵀA/n + diag(exp λ))⁻¹ Aᵀt/n on
/// the full training part, by Cholesky factorisation. `None` if the matrix is
/// not numerically positive definite (a λ far below the data's scale).
pub fn ridge_solution(lambda: &[f32]) -> Option<[f32; D]> {
    let lambda = load(lambda);
    let mut h = [[0.0_f32; D]; D];
    let mut b = [0.0_f32; D];
    for q in &data::TRAIN {
        let (row, t) = (features(q), target(q));
        for (j, &xj) in row.iter().enumerate() {
            b[j] += xj * t;
            for (hjk, &xk) in h[j].iter_mut().zip(&row) {
                *hjk += xj * xk;
            }
        }
    }
    let inv = 1.0 / N_TRAIN as f32;
    for (j, (hj, bj)) in h.iter_mut().zip(&mut b).enumerate() {
        for v in hj.iter_mut() {
            *v *= inv;
        }
        *bj *= inv;
        hj[j] += Real::exp(lambda[j]);
    }
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
    let mut oracle = Counted::new(Ridge);
    let mut rng = DefaultRng::seed_from_u64(SEED);
    let report = run(&mut solver, &mut oracle, &mut rng, &budget(iters), observer)?;
    Ok(outcome(solver.x(), solver.y(), report))
}

/// Runs SLIP for `iters` iterations from (λ₀, w₀) with [`SEED`].
pub fn run_slip<W: Observe<f32>>(iters: u64, observer: &mut W) -> Result<Outcome, Error> {
    use bilevel_core::SolverState;
    let mut solver = Slip::new(slip_config(), LAMBDA0, W0)?;
    let mut oracle = Counted::new(Ridge);
    let mut rng = DefaultRng::seed_from_u64(SEED);
    let report = run(&mut solver, &mut oracle, &mut rng, &budget(iters), observer)?;
    Ok(outcome(solver.x(), solver.y(), report))
}

/// The f32 bits of BO-REP's final (λ, w) after [`ITERS`] iterations with
/// [`SEED`], as computed on x86_64 by the host test; the firmware checks the
/// same constant on the Cortex-M4F.
pub const GOLDEN_BOREP: [u32; 2 * D] = [
    0x4037_028c,
    0x3e60_0d39,
    0xc00c_93f2,
    0xbf73_1766,
    0xbd2b_6baa,
    0x402b_ff09,
    0xc083_6682,
    0x3e53_54ed,
    0xc036_9207,
    0xc038_4e68,
    0xbb68_490b,
    0xbd9f_c320,
    0x3eaa_001a,
    0x3e09_713f,
    0xbd58_8e9e,
    0xbb27_3abe,
    0xbe11_ad59,
    0xbc89_a822,
    0x3e96_93b6,
    0x3d27_a477,
];

/// The f32 bits of SLIP's final (λ, w), as [`GOLDEN_BOREP`].
pub const GOLDEN_SLIP: [u32; 2 * D] = [
    0x4000_d0bc,
    0xbf86_9735,
    0xc015_2156,
    0xbf29_0dc3,
    0x3ea3_0d80,
    0x4013_cb83,
    0xc08f_17c5,
    0x3f8a_0e63,
    0xc009_dc1f,
    0xc026_bf0d,
    0x3c37_666b,
    0xbe0e_6a46,
    0x3ea8_ef03,
    0x3e04_c0cb,
    0x3a4d_fca0,
    0x3c9a_0ca0,
    0xbe2b_1ec1,
    0x3c3a_d474,
    0x3e96_0ec3,
    0x3d83_008e,
];
