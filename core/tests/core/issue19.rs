//! Issue 19's solvers (AdamBO as its official code does it, MRBO, VRBO,
//! SUSTAIN, BOME, SRBA): estimators at the exact solution against closed
//! forms, and the pieces of each update that the shared convergence and
//! determinism tests of `baselines.rs` do not pin down.

use bilevel_core::kernels::dist;
use bilevel_core::solver::{
    AdamBo, AdamBoConfig, Mrbo, MrboConfig, Solver, SolverState, Sustain, SustainConfig, Vrbo,
    VrboConfig,
};
use bilevel_core::testing::q3;
use bilevel_core::{DefaultRng, UpperGradY};
use rand_core::SeedableRng;

type M2 = [[f64; 2]; 2];

/// Q3's lower Hessian A = ∇²ᵧᵧG.
const A: M2 = [[2.0, 0.5], [0.5, 1.0]];

fn mat_vec(m: M2, v: [f64; 2]) -> [f64; 2] {
    [
        m[0][0] * v[0] + m[0][1] * v[1],
        m[1][0] * v[0] + m[1][1] * v[1],
    ]
}

fn solve(m: M2, v: [f64; 2]) -> [f64; 2] {
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    [
        (m[1][1] * v[0] - m[0][1] * v[1]) / det,
        (-m[1][0] * v[0] + m[0][0] * v[1]) / det,
    ]
}

fn q3_exact_point() -> ([f64; 2], [f64; 2], [f64; 2]) {
    let cf = q3::<f64>(0.0).closed_form().unwrap();
    let x0 = [0.3, -0.7];
    let y = cf.y_star(&x0);
    let g = cf.grad_phi(&x0);
    (x0, [y[0], y[1]], [g[0], g[1]])
}

/// AdamBO's `exact_series = false` is the official code's sum
/// η(p_Q + Σ_{j=1}^{Q} p_j), p_j = (I − ηA)^j b: checked against explicit
/// matrix powers and against its closed form A⁻¹(I − M^{Q+1})b − ηb + ηM^Q b.
/// With `exact_series = true` and many terms the direction is ∇Φ at y*.
#[test]
fn adambo_series_match_the_official_code_and_the_closed_form() {
    let (x0, ys, g) = q3_exact_point();
    let (eta, q) = (0.3, 7u64);
    let mut b = [0.0; 2];
    let mut o = q3::<f64>(0.0);
    o.grad_y_f(&x0, &ys, &0, &mut b);
    let m: M2 = [
        [1.0 - eta * A[0][0], -eta * A[0][1]],
        [-eta * A[1][0], 1.0 - eta * A[1][1]],
    ];
    let mut p = b;
    let mut sum = [0.0; 2];
    for _ in 0..q {
        p = mat_vec(m, p);
        sum = [sum[0] + p[0], sum[1] + p[1]];
    }
    let official = [eta * (p[0] + sum[0]), eta * (p[1] + sum[1])];
    let mut pq1 = mat_vec(m, p);
    pq1 = [b[0] - pq1[0], b[1] - pq1[1]];
    let inv = solve(A, pq1);
    let closed = [
        inv[0] - eta * b[0] + eta * p[0],
        inv[1] - eta * b[1] + eta * p[1],
    ];
    assert!(dist(&official, &closed) < 1e-14, "{official:?} {closed:?}");
    let cfg = AdamBoConfig {
        inner_steps: 0,
        warm_steps: 0,
        neumann_lr: eta,
        hessian_q: q,
        ..AdamBoConfig::default()
    };
    let mut s = AdamBo::new(cfg, x0, ys).unwrap();
    let mut r = DefaultRng::seed_from_u64(0);
    s.init(&mut o, &mut r).unwrap();
    s.step(&mut o, &mut r).unwrap();
    assert!(dist(s.v(), &official) < 1e-14, "{:?}", s.v());
    // The exact series with 200 terms at η = 0.5: v = z*, direction = ∇Φ.
    let cfg = AdamBoConfig {
        inner_steps: 0,
        warm_steps: 0,
        neumann_lr: 0.5,
        hessian_q: 200,
        exact_series: true,
        ..AdamBoConfig::default()
    };
    let mut s = AdamBo::new(cfg, x0, ys).unwrap();
    s.init(&mut o, &mut r).unwrap();
    s.step(&mut o, &mut r).unwrap();
    assert!(
        dist(s.direction(), &g) < 1e-10,
        "{:?} vs {g:?}",
        s.direction()
    );
    // The official sum at the same settings is biased by η·J b (the dropped
    // j = 0 term): the direction is not ∇Φ.
    let cfg = AdamBoConfig {
        exact_series: false,
        ..cfg
    };
    let mut s = AdamBo::new(cfg, x0, ys).unwrap();
    s.init(&mut o, &mut r).unwrap();
    s.step(&mut o, &mut r).unwrap();
    assert!(dist(s.direction(), &g) > 1e-3);
}

/// MRBO at (x, y*(x)) with σ = 0: the first direction is the SHIA
/// hypergradient, ∇Φ(x) up to the (1 − η_h μ)^{Q+1} truncation. SUSTAIN's
/// randomised estimate averages to ∇Φ over many draws (unbiased for the
/// Q-term series).
#[test]
fn storm_estimators_at_the_exact_solution() {
    let (x0, ys, g) = q3_exact_point();
    let mut o = q3::<f64>(0.0);
    let mut r = DefaultRng::seed_from_u64(0);
    let cfg = MrboConfig {
        hia_lr: 0.5,
        n_shia_steps: 200,
        ..MrboConfig::default()
    };
    let mut s = Mrbo::new(cfg, x0, ys).unwrap();
    s.init(&mut o, &mut r).unwrap();
    s.step(&mut o, &mut r).unwrap();
    assert!(
        dist(s.direction(), &g) < 1e-10,
        "{:?} vs {g:?}",
        s.direction()
    );
    let cfg = SustainConfig {
        hia_lr: 0.5,
        n_hia_steps: 20,
        ..SustainConfig::default()
    };
    let n = 40_000;
    let mut mean = [0.0; 2];
    for _ in 0..n {
        let mut s = Sustain::new(cfg, x0, ys).unwrap();
        s.init(&mut o, &mut r).unwrap();
        s.step(&mut o, &mut r).unwrap();
        mean[0] += s.direction()[0] / f64::from(n);
        mean[1] += s.direction()[1] / f64::from(n);
    }
    assert!(dist(&mean, &g) < 0.1, "mean {mean:?}, ∇Φ {g:?}");
}

/// Without noise the STORM recursion is exact: the previous point's terms,
/// evaluated with the same samples, cancel the old direction, so
/// u_t = g^x_t at every step (MRBO; SUSTAIN with Q = 1, where its random
/// truncation k_t is always 0: with Q > 1, k_t changes between iterations
/// and u_t ≠ g^x_t even without noise). A wrong old point, sample or sign
/// breaks this.
#[test]
fn storm_momentum_is_the_current_estimate_without_noise() {
    let mut o = q3::<f64>(0.0);
    let mut r = DefaultRng::seed_from_u64(3);
    let mut m = Mrbo::new(MrboConfig::default(), [0.3, -0.7], [0.1, 0.2]).unwrap();
    let q1 = SustainConfig {
        n_hia_steps: 1,
        ..SustainConfig::default()
    };
    let mut s = Sustain::new(q1, [0.3, -0.7], [0.1, 0.2]).unwrap();
    m.init(&mut o, &mut r).unwrap();
    s.init(&mut o, &mut r).unwrap();
    for t in 0..50 {
        m.step(&mut o, &mut r).unwrap();
        s.step(&mut o, &mut r).unwrap();
        assert!(dist(m.momentum(), m.direction()) < 1e-12, "mrbo t = {t}");
        assert!(dist(s.momentum(), s.direction()) < 1e-12, "sustain t = {t}");
    }
    assert!(m.iter() == 50 && m.x() != [0.3, -0.7]);
    // With noise they differ (the recursion is doing something).
    let mut o = q3::<f64>(0.3);
    let mut m = Mrbo::new(MrboConfig::default(), [0.3, -0.7], [0.1, 0.2]).unwrap();
    m.init(&mut o, &mut r).unwrap();
    m.step(&mut o, &mut r).unwrap();
    m.step(&mut o, &mut r).unwrap();
    assert!(dist(m.momentum(), m.direction()) > 1e-6);
}

/// VRBO at (x, y*(x)) with σ = 0 and a negligible x step: the refresh's
/// large-batch SHIA direction is ∇Φ(x), and the recursive inner steps keep it
/// (the old-point terms cancel the new ones exactly without noise). The
/// refresh happens every P outer iterations.
#[test]
fn vrbo_direction_and_refresh_period() {
    let (x0, ys, g) = q3_exact_point();
    let mut o = q3::<f64>(0.0);
    let mut r = DefaultRng::seed_from_u64(0);
    let cfg = VrboConfig {
        hia_lr: 0.5,
        n_shia_steps: 200,
        outer_ratio: 1e12,
        big_batch: 2,
        n_inner_steps: 3,
        ..VrboConfig::default()
    };
    let mut s = Vrbo::new(cfg, x0, ys).unwrap();
    s.init(&mut o, &mut r).unwrap();
    s.step(&mut o, &mut r).unwrap();
    assert!(
        dist(s.direction(), &g) < 1e-9,
        "{:?} vs {g:?}",
        s.direction()
    );
    assert!(s.lower_direction().iter().all(|d| d.abs() < 1e-12));
    let cfg = VrboConfig {
        period_frac: 1.0,
        big_batch: 2,
        n_inner_steps: 1,
        ..VrboConfig::default()
    };
    let mut s = Vrbo::new(cfg, [0.0; 2], [0.0; 2]).unwrap();
    assert_eq!(s.period(), 4);
    let mut o = q3::<f64>(0.1);
    s.init(&mut o, &mut r).unwrap();
    for k in 1..=9u64 {
        s.step(&mut o, &mut r).unwrap();
        assert_eq!(s.refreshes(), k.div_ceil(4), "after {k} steps");
    }
}

/// BOME's multiplier rule on random points of Q3 (σ = 0, 200 draws):
/// λ ≥ 0; when λ > 0 the direction d = ∇F + λ∇q has ⟨d, ∇q⟩ = η‖∇q‖²
/// exactly, and when λ = 0, ⟨∇F, ∇q⟩ ≥ η‖∇q‖²; the step is (x, y) − (ρ/r, ρ) d.
#[test]
fn bome_multiplier_rule_on_random_points() {
    use bilevel_core::random;
    use bilevel_core::solver::{Bome, BomeConfig};
    let mut o = q3::<f64>(0.0);
    let mut r = DefaultRng::seed_from_u64(7);
    let cfg = BomeConfig {
        step_size: 0.1,
        outer_ratio: 2.0,
        eta: 0.7,
        n_inner_steps: 3,
    };
    let mut positive = 0;
    for _ in 0..200 {
        let mut u = || 4.0 * random::uniform(&mut r) - 2.0;
        let (x0, y0) = ([u(), u()], [u(), u()]);
        let mut s = Bome::new(cfg, x0, y0).unwrap();
        s.init(&mut o, &mut r).unwrap();
        s.step(&mut o, &mut r).unwrap();
        let ((fx, fy), (qx, qy), l) = (s.grad_f(), s.grad_q(), s.lambda());
        let d: Vec<f64> = fx
            .iter()
            .chain(fy)
            .zip(qx.iter().chain(qy))
            .map(|(f, q)| f + l * q)
            .collect();
        let q: Vec<f64> = qx.iter().chain(qy).copied().collect();
        let dq: f64 = d.iter().zip(&q).map(|(a, b)| a * b).sum();
        let qq: f64 = q.iter().map(|a| a * a).sum();
        assert!(l >= 0.0);
        if l > 0.0 {
            positive += 1;
            assert!(
                (dq - 0.7 * qq).abs() <= 1e-12 * (1.0 + qq),
                "{dq} vs {}",
                0.7 * qq
            );
        } else {
            assert!(dq >= 0.7 * qq - 1e-12);
        }
        for i in 0..2 {
            assert!((s.x()[i] - (x0[i] - 0.05 * d[i])).abs() < 1e-14);
            assert!((s.y()[i] - (y0[i] - 0.1 * d[2 + i])).abs() < 1e-14);
        }
    }
    // Both branches were exercised.
    assert!(positive > 10 && positive < 190, "{positive}");
}

/// SRBA on finite sums: at (x, y*(x), z*(x)) of the population problem the
/// first (full-batch) x direction is ∇Φ(x); with constant steps the
/// recursive estimates converge to the exact x* (5 seeds, as SABA's test);
/// the period is ⌊period_frac (n + m)⌋.
#[test]
fn srba_finite_sum_exact_direction_and_convergence() {
    use bilevel_core::solver::{Srba, SrbaConfig};
    use bilevel_core::testing::FiniteQuadratic;
    let n = 16;
    let cf = q3::<f64>(0.0).closed_form().unwrap();
    let x0 = [0.3, -0.7];
    let (ys, zs) = (cf.y_star(&x0), cf.z_star(&x0));
    let g = cf.grad_phi(&x0);
    let mut o = FiniteQuadratic::new(q3::<f64>(0.0), n, 0.1, 0);
    let mut s = Srba::new(SrbaConfig::default(), x0, [ys[0], ys[1]])
        .unwrap()
        .with_z0(&zs)
        .unwrap();
    let mut r = DefaultRng::seed_from_u64(0);
    s.init(&mut o, &mut r).unwrap();
    assert_eq!(s.period(), 16);
    s.step(&mut o, &mut r).unwrap();
    assert!(
        dist(s.direction(), &g) < 1e-12,
        "{:?} vs {g:?}",
        s.direction()
    );
    let x_star = [-111.0 / 179.0, -203.0 / 179.0];
    for seed in 0..5 {
        let mut o = FiniteQuadratic::new(q3::<f64>(0.0), n, 0.1, seed);
        let cfg = SrbaConfig {
            step_size: 0.05,
            ..SrbaConfig::default()
        };
        let mut s = Srba::new(cfg, [0.0; 2], [0.0; 2]).unwrap();
        let mut r = DefaultRng::seed_from_u64(seed);
        s.init(&mut o, &mut r).unwrap();
        for _ in 0..20_000 {
            s.step(&mut o, &mut r).unwrap();
        }
        let err = dist(s.x(), &x_star);
        assert!(err < 1e-8, "seed {seed}: {err:e}");
    }
}

/// SRBA on the finite-sum d = 100 quadratic (n = 1024 per level, same x* as
/// `Quadratic::random(100, 10, ·, seed)`): relative error 0.1 within 3·10^5
/// oracle calls for 5 seeds, at `testing::tuned::D100`'s step ρ = 0.5.
#[test]
fn srba_d100_finite_sum_converges() {
    use bilevel_core::solver::{Srba, SrbaConfig};
    use bilevel_core::testing::{FiniteQuadratic, Quadratic};
    use bilevel_core::{run, Budget, Counted, Target, Termination};
    let n = 1024;
    for seed in 0..5 {
        let q = Quadratic::<f64, Vec<f64>>::random(100, 10.0, 0.0, seed).unwrap();
        let cf = q.closed_form().unwrap();
        let mut o = Counted::new(FiniteQuadratic::new(q, n, 0.1, seed));
        let cfg = SrbaConfig {
            step_size: 0.5,
            ..SrbaConfig::default()
        };
        let mut s = Srba::new(cfg, vec![0.0; 100], vec![0.0; 100]).unwrap();
        let mut r = DefaultRng::seed_from_u64(seed);
        let mut target = Target(|x: &[f64], _: &[f64]| cf.rel_error(x) <= 0.1);
        let b = Budget::iters(u64::MAX).with_oracle_calls(300_000);
        let rep = run(&mut s, &mut o, &mut r, &b, &mut target).unwrap();
        assert_eq!(
            rep.termination,
            Termination::TargetReached,
            "seed {seed}: {} after {} calls",
            cf.rel_error(s.x()),
            rep.counts.oracle_calls()
        );
    }
}
