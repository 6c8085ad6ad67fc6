//! Unbounded smoothness: on an upper level with cosh growth, BO-REP and SLIP
//! stay finite and converge, while the same methods with a plain
//! (unnormalised) step of the same size blow up. This is the papers'
//! motivation, shown.

use bilevel_core::solver::{BoRep, BoRepConfig, Slip, SlipConfig, SolverState, WarmStart};
use bilevel_core::testing::CoshUpper;
use bilevel_core::{run, Budget, Counted, DefaultRng, Report, Termination};
use rand_core::SeedableRng;

const D: usize = 4;
const X0: f64 = 8.0;

fn borep(normalize: bool) -> BoRep<f64, [f64; D], [f64; D]> {
    let cfg = BoRepConfig {
        eta: 0.05,
        eta_decay: 1.0,
        eta_decay_steps: 200.0,
        beta: 0.9,
        gamma: 0.5,
        nu: 0.5,
        warm_start: WarmStart::Plain,
        warm_len: 30,
        warm_lr: 0.5,
        normalize,
        ..BoRepConfig::default()
    };
    BoRep::new(cfg, [X0; D], [0.0; D]).unwrap()
}

fn slip(normalize: bool) -> Slip<f64, [f64; D], [f64; D]> {
    let cfg = SlipConfig {
        eta: 0.05,
        eta_decay: 1.0,
        eta_decay_steps: 200.0,
        beta: 0.9,
        gamma: 0.5,
        nu: 0.5,
        warm_steps: 30,
        normalize,
        ..SlipConfig::default()
    };
    Slip::new(cfg, [X0; D], [0.0; D]).unwrap()
}

fn go<S: bilevel_core::Solver<f64, Counted<CoshUpper<f64>>>>(
    s: &mut S,
    sigma: f64,
    seed: u64,
) -> Report {
    let mut o = Counted::new(CoshUpper::new(D, 1.0, sigma));
    let mut rng = DefaultRng::seed_from_u64(seed);
    run(s, &mut o, &mut rng, &Budget::iters(4_000), &mut ()).unwrap()
}

#[test]
fn normalised_methods_converge_where_plain_steps_diverge() {
    let problem = CoshUpper::<f64>::new(D, 1.0, 0.0);
    let x_star = problem.x_star();
    assert!((x_star.sinh() + x_star - 1.0).abs() < 1e-12);
    // Noise-free: within the oscillation of the last steps (η_T/(1 − β) ≈ 0.024);
    // σ = 0.1 on every oracle: the noise floor of the
    // decaying normalised step after 4 000 iterations.
    for (sigma, tol) in [(0.0, 1e-2), (0.1, 5e-2)] {
        for seed in 0..3 {
            let mut b = borep(true);
            let r = go(&mut b, sigma, seed);
            assert_eq!(r.termination, Termination::MaxIters);
            let err = b.x().iter().map(|v| (v - x_star).abs()).fold(0.0, f64::max);
            assert!(
                err < tol,
                "BO-REP σ={sigma} seed {seed}: max |x − x*| = {err}"
            );

            let mut s = slip(true);
            let r = go(&mut s, sigma, seed);
            assert_eq!(r.termination, Termination::MaxIters);
            let err = s.x().iter().map(|v| (v - x_star).abs()).fold(0.0, f64::max);
            assert!(
                err < tol,
                "SLIP σ={sigma} seed {seed}: max |x − x*| = {err}"
            );
        }
    }
    // Same step sizes, same schedule, no normalisation: numerical breakdown,
    // reported as a termination reason (not a panic), within a few iterations.
    let mut b = borep(false);
    let r = go(&mut b, 0.0, 0);
    assert!(r.termination.is_breakdown(), "{:?}", r.termination);
    assert!(r.iters < 100, "{} iterations", r.iters);
    let mut s = slip(false);
    let r = go(&mut s, 0.0, 0);
    assert!(r.termination.is_breakdown(), "{:?}", r.termination);
    assert!(r.iters < 100, "{} iterations", r.iters);
}
