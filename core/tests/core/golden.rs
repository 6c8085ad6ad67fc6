//! Deterministic reference traces (`algorithms.md` §7.4) and exact
//! hypergradients (§7.2), in f64.

use approx::assert_relative_eq;
use bilevel_core::solver::{
    hypergradient, BoRep, BoRepConfig, LowerOutput, Slip, SlipConfig, Solver, SolverState,
    WarmStart,
};
use bilevel_core::testing::{q1, q2, q3, toy, Quadratic};
use bilevel_core::{Counted, DefaultRng, Oracle};
use rand_core::SeedableRng;

const TOL: f64 = 1e-13;

fn close(actual: &[f64], expected: &[f64], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}");
    for (a, e) in actual.iter().zip(expected) {
        assert_relative_eq!(*a, *e, epsilon = TOL, max_relative = TOL);
    }
}

/// BO-REP on Q3 with σ = 0, x₀ = y_init = z₀ = 0: Epoch-SGD (K0 = 2, T1 = 2,
/// θ1 = 0.2, B1 = 10), then I = 2, N = 2, γ = 0.1, R = 10, averaged output,
/// ν = 0.1, β = 0.9, η = 0.05.
#[test]
fn borep_reference_trace() {
    let cfg = BoRepConfig {
        eta: 0.05,
        beta: 0.9,
        nu: 0.1,
        gamma: 0.1,
        period: 2,
        inner_steps: 2,
        radius: 10.0,
        lower_output: LowerOutput::Average,
        warm_start: WarmStart::EpochSgd,
        warm_epochs: 2,
        warm_len: 2,
        warm_lr: 0.2,
        warm_radius: 10.0,
        ..BoRepConfig::default()
    };
    // Epoch-SGD alone: one epoch gives (−0.27, 0.29), two give the value below.
    for (epochs, expected) in [
        (1, [-0.27, 0.29]),
        (2, [-0.403_128_859_375, 0.487_886_015_625]),
    ] {
        let mut o = q3::<f64>(0.0);
        let mut s = BoRep::new(
            BoRepConfig {
                warm_epochs: epochs,
                ..cfg
            },
            [0.0; 2],
            [0.0; 2],
        )
        .unwrap();
        s.init(&mut o, &mut DefaultRng::seed_from_u64(0)).unwrap();
        close(s.y(), &expected, "epoch-sgd");
    }

    let mut o = q3::<f64>(0.0);
    let mut s = BoRep::new(cfg, [0.0; 2], [0.0; 2]).unwrap();
    let mut rng = DefaultRng::seed_from_u64(0);
    s.init(&mut o, &mut rng).unwrap();
    // (x, y used, z, m) after iterations 1..4.
    let rows: [[[f64; 2]; 4]; 4] = [
        [
            [0.011_350_450_982_395_4, -0.048_694_632_789_417_8],
            [-0.466_188_995_878_906, 0.592_463_598_886_719],
            [-0.146_618_899_587_891, 0.118_492_719_777_344],
            [-0.023_309_449_793_945_3, 0.1],
        ],
        [
            [0.018_256_101_968_190_4, -0.098_215_456_535_215_7],
            [-0.466_188_995_878_906, 0.592_463_598_886_719],
            [-0.269_271_132_697_951, 0.232_467_112_556_348],
            [-0.028_491_019_551_467_5, 0.204_310_753_678_187],
        ],
        [
            [0.021_882_267_880_688_6, -0.148_083_792_388_491],
            [-0.514_165_339_879_258, 0.671_946_343_505_224],
            [-0.377_543_990_675_694, 0.357_073_226_636_655],
            [-0.022_597_461_123_669_6, 0.310_768_400_547_379],
        ],
        [
            [0.022_609_702_929_049_7, -0.198_078_500_490_953],
            [-0.514_165_339_879_258, 0.671_946_343_505_224],
            [-0.470_211_274_466_279, 0.474_632_372_207_819],
            [-0.006_103_356_149_627_25, 0.419_467_703_451_242],
        ],
    ];
    let mut prev = [0.0; 2];
    for (t, [x, y, z, m]) in rows.iter().enumerate() {
        s.step(&mut o, &mut rng).unwrap();
        close(s.x(), x, "x");
        close(s.y(), y, "y");
        close(s.z(), z, "z");
        close(s.momentum(), m, "m");
        // Each normalised step moves x by exactly η.
        assert_relative_eq!(
            bilevel_core::kernels::dist(s.x(), &prev),
            0.05,
            epsilon = 1e-15
        );
        prev.copy_from_slice(s.x());
        assert_eq!(s.iter(), t as u64 + 1);
    }
}

/// SLIP on Q3 with σ = 0: T0 = 2, γ = ν = 0.1, β = 0.9, η = 0.05.
#[test]
fn slip_reference_trace() {
    let cfg = SlipConfig {
        eta: 0.05,
        beta: 0.9,
        nu: 0.1,
        gamma: 0.1,
        warm_steps: 2,
        ..SlipConfig::default()
    };
    let mut o = q3::<f64>(0.0);
    let mut s = Slip::new(cfg, [0.0; 2], [0.0; 2]).unwrap();
    let mut rng = DefaultRng::seed_from_u64(0);
    s.init(&mut o, &mut rng).unwrap();
    close(s.y(), &[-0.185, 0.195], "warm start");
    let rows: [[[f64; 2]; 4]; 3] = [
        [
            [0.004_605_339_745_837_83, -0.049_787_456_711_760_3],
            [-0.257_75, 0.284_75],
            [-0.118_5, 0.039],
            [-0.009_25, 0.1],
        ],
        [
            [0.006_887_315_854_867_04, -0.099_735_355_416_689],
            [-0.318_408_661_138_996, 0.364_183_754_328_824],
            [-0.222_294_733_012_708, 0.097_975],
            [-0.008_901_966_025_416_22, 0.194_846_254_328_824],
        ],
        [
            [0.007_064_401_091_444_09, -0.149_735_041_823_895],
            [-0.368_638_080_442_29, 0.433_712_276_411_223],
            [-0.314_231_036_731_323, 0.172_128_987_516_4],
            [-0.001_013_997_593_066_87, 0.286_300_330_004_908],
        ],
    ];
    for [x, y, z, m] in &rows {
        s.step(&mut o, &mut rng).unwrap();
        close(s.x(), x, "x");
        close(s.y(), y, "y");
        close(s.z(), z, "z");
        close(s.momentum(), m, "m");
    }
}

fn estimator_matches_closed_form<S: AsRef<[f64]> + AsMut<[f64]> + Clone>(
    o: &mut Quadratic<f64, S>,
    x: &[f64],
) -> f64 {
    let cf = o.closed_form().unwrap();
    let (y, z) = (cf.y_star(x), cf.z_star(x));
    let mut rng = DefaultRng::seed_from_u64(1);
    let (a, b) = (
        o.sample(bilevel_core::Level::Upper, &mut rng),
        o.sample(bilevel_core::Level::Lower, &mut rng),
    );
    let mut g = vec![0.0; x.len()];
    let mut scratch = vec![0.0; x.len()];
    hypergradient(o, x, &y, &z, (&a, &b), &mut g, &mut scratch);
    let exact = cf.grad_phi(x);
    g.iter()
        .zip(&exact)
        .map(|(u, v)| (u - v).abs())
        .fold(0.0, f64::max)
}

/// The BO-REP/SLIP estimator ∇ₓF − ∇²ₓᵧG·z at exact y*, z* equals ∇Φ.
#[test]
fn hypergradient_at_exact_solution_is_exact() {
    // Q3 at x₀ = (3/10, −7/10): ∇Φ = (579/490, 267/98), exactly.
    let mut o = q3::<f64>(0.0);
    let cf = o.closed_form().unwrap();
    let x0 = [0.3, -0.7];
    close(
        &cf.grad_phi(&x0),
        &[579.0 / 490.0, 267.0 / 98.0],
        "closed form",
    );
    close(&cf.y_star(&x0), &[-22.0 / 35.0, 43.0 / 70.0], "y*");
    close(&cf.z_star(&x0), &[-293.0 / 245.0, 179.0 / 98.0], "z*");
    assert_relative_eq!(cf.phi(&x0), 1713.0 / 2450.0, epsilon = TOL);
    assert!(estimator_matches_closed_form(&mut o, &x0) < 1e-10);

    // The same at random points of the d = 100, κ = 10 family.
    let mut big = Quadratic::<f64, Vec<f64>>::random(100, 10.0, 0.0, 3).unwrap();
    let x: Vec<f64> = (0..100).map(|i| (f64::from(i) * 0.37).sin()).collect();
    assert!(estimator_matches_closed_form(&mut big, &x) < 1e-10);

    // Central finite differences of Φ agree with the closed-form ∇Φ.
    let h = 1e-6;
    let g = cf.grad_phi(&x0);
    for i in 0..2 {
        let (mut p, mut m) = (x0, x0);
        p[i] += h;
        m[i] -= h;
        let fd = (cf.phi(&p) - cf.phi(&m)) / (2.0 * h);
        assert_relative_eq!(fd, g[i], epsilon = 1e-8);
    }
}

/// Exact answers of the instances of §7.2 and of the toy spec.
#[test]
fn closed_forms_of_the_instances() {
    let c1 = q1::<f64>(0.0).closed_form().unwrap();
    close(&c1.x_star, &[0.5], "Q1 x*");
    assert_relative_eq!(c1.phi(&c1.x_star), 0.25, epsilon = TOL);
    let c2 = q2::<f64>(0.0).closed_form().unwrap();
    close(&c2.x_star, &[0.4, 0.5], "Q2 x*");
    close(&c2.y_star(&c2.x_star), &[0.2, 0.5], "Q2 y*");
    close(&c2.z_star(&c2.x_star), &[-0.4, -0.5], "Q2 z*");
    assert_relative_eq!(c2.phi(&c2.x_star), 0.65, epsilon = TOL);
    let c3 = q3::<f64>(0.0).closed_form().unwrap();
    close(&c3.x_star, &[-111.0 / 179.0, -203.0 / 179.0], "Q3 x*");
    close(
        &c3.y_star(&c3.x_star),
        &[26.0 / 179.0, -37.0 / 179.0],
        "Q3 y*",
    );
    close(
        &c3.z_star(&c3.x_star),
        &[-98.0 / 179.0, -25.0 / 179.0],
        "Q3 z*",
    );
    assert_relative_eq!(c3.phi(&c3.x_star), -78.0 / 179.0, epsilon = TOL);
    let ct = toy::<f64>(0.0).closed_form().unwrap();
    close(&ct.x_star, &[2120.0 / 2729.0, -3900.0 / 2729.0], "toy x*");
    assert_relative_eq!(ct.mu, 1.5 - 0.5_f64.sqrt(), epsilon = TOL);
    // F at the solution without noise, as the toy spec's expect block states.
    assert_relative_eq!(ct.phi(&ct.x_star), 0.201_173, epsilon = 1e-6);
}

/// The counting wrapper sees every call: BO-REP makes 4 upper-half calls per
/// iteration plus N lower calls every I iterations.
#[test]
fn borep_oracle_calls_per_iteration() {
    let cfg = BoRepConfig {
        period: 3,
        inner_steps: 5,
        warm_start: WarmStart::Plain,
        warm_len: 7,
        ..BoRepConfig::default()
    };
    let mut o = Counted::new(q3::<f64>(0.1));
    let mut s = BoRep::new(cfg, [0.0; 2], [0.0; 2]).unwrap();
    let mut rng = DefaultRng::seed_from_u64(0);
    s.init(&mut o, &mut rng).unwrap();
    assert_eq!(o.counts().grad_y_g, 7);
    for _ in 0..6 {
        s.step(&mut o, &mut rng).unwrap();
    }
    let c = o.counts();
    assert_eq!((c.grad_x_f, c.grad_y_f, c.hvp_yy, c.jvp_xy), (6, 6, 6, 6));
    assert_eq!(c.grad_y_g, 7 + 2 * 5);
    assert_eq!(c.samples_upper + c.samples_lower, 7 + 10 + 6 * 4);
}
