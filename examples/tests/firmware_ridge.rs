//! Host side of the firmware's job (`examples/firmware`): the same oracle
//! source, configuration and seed, compiled for x86_64.
//!
//! * The oracle's derivatives agree with finite differences of its values.
//! * BO-REP and SLIP end on exactly the golden bits that the firmware checks
//!   on the emulated Cortex-M4F (`ridge::GOLDEN_BOREP`, `ridge::GOLDEN_SLIP`).
//! * The adaptation helps: the exact ridge fit at the adapted λ has a lower
//!   validation loss than at the initial λ, and than with the best penalty
//!   shared by all features (on a grid).

// The module is shared with the firmware through `#[path]`, so the firmware's
// package (its own workspace, for thumbv7em-none-eabihf) and this test compile
// the very same file; the firmware uses a few items this test does not.
#[path = "../firmware/src/ridge/mod.rs"]
#[allow(dead_code, unused_imports)]
mod ridge;

use bilevel_core::{
    CrossJvp, Level, LowerGradY, LowerHvp, LowerValue, Oracle, UpperGradX, UpperGradY, UpperValue,
};
use rand_core::SeedableRng;
use ridge::{Ridge, D};

/// A reproducible test point: λ in [−2, 1], w and v in [−0.5, 0.5].
fn point(seed: u64) -> ([f32; D], [f32; D], [f32; D]) {
    let mut rng = bilevel_core::DefaultRng::seed_from_u64(seed);
    let mut u =
        |lo: f64, hi: f64| (lo + (hi - lo) * bilevel_core::random::uniform(&mut rng)) as f32;
    let lambda = std::array::from_fn(|_| u(-2.0, 1.0));
    let w = std::array::from_fn(|_| u(-0.5, 0.5));
    let v = std::array::from_fn(|_| u(-0.5, 0.5));
    (lambda, w, v)
}

fn with(a: &[f32; D], j: usize, delta: f32) -> [f32; D] {
    let mut b = *a;
    b[j] += delta;
    b
}

fn axpy(a: &[f32; D], t: f32, v: &[f32; D]) -> [f32; D] {
    std::array::from_fn(|j| a[j] + t * v[j])
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    let scale = want.iter().fold(1e-3_f64, |m, w| m.max(w.abs()));
    for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(g) - w).abs() / scale;
        assert!(
            err < tol,
            "{what}[{j}]: oracle {g}, finite differences {w} (rel. error {err:e})"
        );
    }
}

#[test]
fn derivatives_match_finite_differences() {
    let mut o = Ridge;
    let mut rng = bilevel_core::DefaultRng::seed_from_u64(11);
    for trial in 0..5 {
        let (lambda, w, v) = point(100 + trial);
        let sl = o.sample(Level::Lower, &mut rng);
        let su = o.sample(Level::Upper, &mut rng);
        // G and F are quadratic in w: central differences are exact up to
        // rounding, so a large step keeps f32 cancellation small.
        let h = 0.05_f32;
        let mut got = [0.0; D];

        o.grad_y_g(&lambda, &w, &sl, &mut got);
        let fd: Vec<f64> = (0..D)
            .map(|j| {
                let p = o.g_value(&lambda, &with(&w, j, h), &sl);
                let m = o.g_value(&lambda, &with(&w, j, -h), &sl);
                f64::from(p - m) / f64::from(2.0 * h)
            })
            .collect();
        assert_close("grad_y_g", &got, &fd, 2e-3);

        o.grad_y_f(&lambda, &w, &su, &mut got);
        let fd: Vec<f64> = (0..D)
            .map(|j| {
                let p = o.f_value(&lambda, &with(&w, j, h), &su);
                let m = o.f_value(&lambda, &with(&w, j, -h), &su);
                f64::from(p - m) / f64::from(2.0 * h)
            })
            .collect();
        assert_close("grad_y_f", &got, &fd, 2e-3);

        // ∇ₓF = 0: F does not change with λ at all.
        o.grad_x_f(&lambda, &w, &su, &mut got);
        assert!(got.iter().all(|&g| g == 0.0), "grad_x_f = {got:?}");
        for j in 0..D {
            let a = o.f_value(&with(&lambda, j, 0.5), &w, &su);
            let b = o.f_value(&lambda, &w, &su);
            assert_eq!(a.to_bits(), b.to_bits(), "F depends on lambda[{j}]");
        }

        // HVP: directional difference of ∇ᵧG along v (exact for a quadratic).
        o.hvp_yy(&lambda, &w, &v, &sl, &mut got);
        let (mut gp, mut gm) = ([0.0; D], [0.0; D]);
        o.grad_y_g(&lambda, &axpy(&w, h, &v), &sl, &mut gp);
        o.grad_y_g(&lambda, &axpy(&w, -h, &v), &sl, &mut gm);
        let fd: Vec<f64> = (0..D)
            .map(|j| f64::from(gp[j] - gm[j]) / f64::from(2.0 * h))
            .collect();
        assert_close("hvp_yy", &got, &fd, 2e-3);

        // Cross term: ∂/∂λⱼ ⟨∇ᵧG(λ, w), v⟩ (smooth in λ: O(h²) error).
        o.jvp_xy(&lambda, &w, &v, &sl, &mut got);
        let hl = 1e-2_f32;
        let fd: Vec<f64> = (0..D)
            .map(|j| {
                let inner = |o: &mut Ridge, l: &[f32; D]| {
                    let mut g = [0.0; D];
                    o.grad_y_g(l, &w, &sl, &mut g);
                    g.iter()
                        .zip(&v)
                        .map(|(&a, &b)| f64::from(a) * f64::from(b))
                        .sum::<f64>()
                };
                let p = inner(&mut o, &with(&lambda, j, hl));
                let m = inner(&mut o, &with(&lambda, j, -hl));
                (p - m) / f64::from(2.0 * hl)
            })
            .collect();
        assert_close("jvp_xy", &got, &fd, 5e-3);
    }
}

#[test]
fn minibatches_follow_the_sample() {
    let mut o = Ridge;
    let (lambda, w, _) = point(7);
    let (mut a, mut b, mut c) = ([0.0; D], [0.0; D], [0.0; D]);
    o.grad_y_g(&lambda, &w, &42, &mut a);
    o.grad_y_g(&lambda, &w, &42, &mut b);
    o.grad_y_g(&lambda, &w, &43, &mut c);
    assert_eq!(
        a.map(f32::to_bits),
        b.map(f32::to_bits),
        "same sample, same minibatch"
    );
    assert_ne!(
        a.map(f32::to_bits),
        c.map(f32::to_bits),
        "another sample, another minibatch"
    );
}

#[test]
fn exact_ridge_solution_is_stationary() {
    // At w*(λ) the full-batch gradient of g vanishes: check it through the
    // normal equations' residual, accumulated in f64.
    let (lambda, _, _) = point(3);
    let w = ridge::ridge_solution(&lambda).expect("positive definite");
    let n = ridge::N_TRAIN as f64;
    for j in 0..D {
        let mut g = 0.0_f64;
        for q in &ridge::data::TRAIN {
            let (row, t) = (ridge::features(q), ridge::target(q));
            let r: f64 = row
                .iter()
                .zip(&w)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum::<f64>()
                - f64::from(t);
            g += r * f64::from(row[j]) / n;
        }
        g += f64::from(lambda[j]).exp() * f64::from(w[j]);
        assert!(g.abs() < 1e-4, "gradient[{j}] = {g:e} at w*(lambda)");
    }
}

#[test]
fn on_the_fly_standardisation_uses_training_statistics() {
    // The integer codes, standardised in f32 with the training constants,
    // give training columns (and the target) of mean 0 and variance 1 up to
    // f32 rounding; the validation part only shares the constants.
    let n = ridge::N_TRAIN as f64;
    let mut mean = [0.0_f64; D + 1];
    let mut sq = [0.0_f64; D + 1];
    for q in &ridge::data::TRAIN {
        let a = ridge::features(q);
        let col = a.iter().copied().chain([ridge::target(q)]);
        for ((m, s), v) in mean.iter_mut().zip(&mut sq).zip(col) {
            *m += f64::from(v) / n;
            *s += f64::from(v) * f64::from(v) / n;
        }
    }
    for (j, (&m, &s)) in mean.iter().zip(&sq).enumerate() {
        assert!(m.abs() < 1e-5, "column {j}: training mean {m:e}");
        assert!(
            (s - m * m - 1.0).abs() < 1e-5,
            "column {j}: variance {}",
            s - m * m
        );
    }
    // Spot checks against the raw file (data/diabetes/diabetes_data_raw.csv.gz):
    // row 0 is `59 2 32.1 101.0 157 93.2 38.0 4.0 4.8598 87`, target 151.
    // Codes are value x 10^scale - offset (see data.rs's header).
    let r0 = ridge::data::TRAIN[0];
    assert_eq!(
        r0,
        ridge::data::Row(
            59 - 19,
            2 - 1,
            141, // 32.1 x 10 - 180
            10100 - 6200,
            157 - 97,
            932 - 416,
            380 - 220,
            400 - 200,
            48598 - 32581,
            87 - 58,
            151 - 25
        )
    );
    // Row 2 (`72 2 30.5 93.0 156 93.6 41.0 4.0 4.6728 85`, target 141) is the
    // first validation row.
    assert_eq!(
        ridge::data::VAL[0],
        ridge::data::Row(
            72 - 19,
            1,
            125, // 30.5 x 10 - 180
            9300 - 6200,
            156 - 97,
            936 - 416,
            410 - 220,
            400 - 200,
            46728 - 32581,
            85 - 58,
            141 - 25
        )
    );
}

/// The firmware's golden check, on the host: same bits, and Φ went down.
fn check(name: &str, o: &ridge::Outcome, golden: &[u32; 2 * D]) {
    assert_eq!(
        o.report.iters,
        ridge::ITERS,
        "{name} stopped early: {:?}",
        o.report.termination
    );
    let bits = o.bits();
    assert!(
        bits == *golden,
        "{name}: result bits differ from the golden value the firmware checks:\n got      {bits:#010x?}\n expected {golden:#010x?}"
    );
    let phi0 = ridge::phi(&ridge::LAMBDA0).expect("positive definite at lambda0");
    let phi = ridge::phi(&o.lambda).expect("positive definite at the adapted lambda");
    let w0 = ridge::ridge_solution(&ridge::LAMBDA0).expect("positive definite at lambda0");
    println!(
        "{name}: Phi(lambda0) = {phi0}, Phi(lambda) = {phi}, val loss of the solver's w = {}, of w*(lambda0) = {}",
        ridge::val_loss(&o.w),
        ridge::val_loss(&w0)
    );
    assert!(
        phi < 0.95 * phi0,
        "{name}: Phi {phi} not clearly below Phi(lambda0) = {phi0}"
    );
    assert!(
        ridge::val_loss(&o.w) < ridge::val_loss(&w0),
        "{name}: the solver's own w does not beat the ridge fit at lambda0"
    );
}

#[test]
fn borep_golden_bits_and_improvement() {
    let o = ridge::run_borep(ridge::ITERS, &mut ()).expect("valid config");
    check("bo-rep", &o, &ridge::GOLDEN_BOREP);
}

#[test]
fn slip_golden_bits_and_improvement() {
    let o = ridge::run_slip(ridge::ITERS, &mut ()).expect("valid config");
    check("slip", &o, &ridge::GOLDEN_SLIP);
}
