//! Convergence of BO-REP and SLIP to the closed-form x*, for 5 seeds, within a
//! stated oracle budget.

use bilevel_core::solver::{BoRep, BoRepConfig, Buffer, Slip, SlipConfig, SolverState};
use bilevel_core::testing::{toy, Quadratic};
use bilevel_core::{run, Budget, Counted, DefaultRng, Termination};
use rand_core::SeedableRng;

/// Noise of the toy spec: std 0.1 per sample, minibatch of 8.
const TOY_SIGMA: f64 = 0.035_355_339_059_327_38;

fn borep_cfg(eta: f64, tau: f64, lr: f64) -> BoRepConfig {
    BoRepConfig {
        eta,
        eta_decay: 1.0,
        eta_decay_steps: tau,
        gamma: lr,
        nu: lr,
        warm_lr: lr,
        ..BoRepConfig::default()
    }
}

fn slip_cfg(eta: f64, tau: f64, lr: f64) -> SlipConfig {
    SlipConfig {
        eta,
        eta_decay: 1.0,
        eta_decay_steps: tau,
        gamma: lr,
        nu: lr,
        ..SlipConfig::default()
    }
}

/// Runs a solver to its iteration budget and returns ‖x − x*‖/‖x*‖ and the
/// oracle calls used.
fn solve<S, B>(
    mut solver: S,
    mut oracle: Counted<Quadratic<f64, B>>,
    seed: u64,
    budget: Budget,
) -> (f64, u64)
where
    B: Buffer<f64>,
    S: bilevel_core::Solver<f64, Counted<Quadratic<f64, B>>>,
{
    let cf = oracle.inner().closed_form().unwrap();
    let mut rng = DefaultRng::seed_from_u64(seed);
    let report = run(&mut solver, &mut oracle, &mut rng, &budget, &mut ()).unwrap();
    assert!(
        matches!(
            report.termination,
            Termination::MaxIters | Termination::OracleBudget
        ),
        "{:?}",
        report.termination
    );
    assert!(report.counts.oracle_calls() <= budget.max_oracle_calls + 5);
    (cf.rel_error(solver.x()), report.counts.oracle_calls())
}

/// Toy (σ = 0.1 per sample, batch 8): ‖x − x*‖/‖x*‖ ≤ 1e-2 within 45 000
/// oracle calls (8 000 iterations; BO-REP uses 5.5 calls per iteration, SLIP 5).
#[test]
fn toy_reaches_one_percent_for_five_seeds() {
    let budget = Budget::iters(8_000).with_oracle_calls(45_000);
    for seed in 0..5 {
        let (e, calls) = solve(
            BoRep::new(borep_cfg(0.01, 100.0, 0.3), [0.0; 2], [0.0; 2]).unwrap(),
            Counted::new(toy(TOY_SIGMA)),
            seed,
            budget,
        );
        assert!(e <= 1e-2, "BO-REP seed {seed}: {e:.3e} after {calls} calls");
        let (e, calls) = solve(
            Slip::new(slip_cfg(0.01, 100.0, 0.3), [0.0; 2], [0.0; 2]).unwrap(),
            Counted::new(toy(TOY_SIGMA)),
            seed,
            budget,
        );
        assert!(e <= 1e-2, "SLIP seed {seed}: {e:.3e} after {calls} calls");
    }
}

/// d = 100, κ = 10, σ = 0.1 on every oracle: ‖x − x*‖/‖x*‖ ≤ 5e-2 within
/// 17 000 oracle calls (3 000 iterations), 5 seeds (a new instance per seed).
#[test]
fn quadratic_d100_reaches_five_percent_for_five_seeds() {
    let budget = Budget::iters(3_000).with_oracle_calls(17_000);
    for seed in 0..5 {
        let q = || Quadratic::<f64, Vec<f64>>::random(100, 10.0, 0.1, 100 + seed).unwrap();
        let (e, calls) = solve(
            BoRep::new(borep_cfg(0.1, 200.0, 0.5), vec![0.0; 100], vec![0.0; 100]).unwrap(),
            Counted::new(q()),
            seed,
            budget,
        );
        assert!(e <= 5e-2, "BO-REP seed {seed}: {e:.3e} after {calls} calls");
        let (e, calls) = solve(
            Slip::new(slip_cfg(0.1, 200.0, 0.5), vec![0.0; 100], vec![0.0; 100]).unwrap(),
            Counted::new(q()),
            seed,
            budget,
        );
        assert!(e <= 5e-2, "SLIP seed {seed}: {e:.3e} after {calls} calls");
    }
}

/// The same algorithms in f32 on fixed-size buffers, as on a microcontroller.
#[test]
fn toy_in_f32_on_arrays() {
    let mut oracle = Counted::new(toy::<f32>(TOY_SIGMA));
    let mut s = Slip::new(slip_cfg(0.01, 100.0, 0.3), [0.0_f32; 2], [0.0_f32; 2]).unwrap();
    let mut rng = DefaultRng::seed_from_u64(3);
    run(
        &mut s,
        &mut oracle,
        &mut rng,
        &Budget::iters(8_000),
        &mut (),
    )
    .unwrap();
    let x: Vec<f64> = s.x().iter().map(|&v| f64::from(v)).collect();
    let cf = toy::<f64>(0.0).closed_form().unwrap();
    assert!(cf.rel_error(&x) <= 1e-2, "{}", cf.rel_error(&x));

    let mut oracle = Counted::new(toy::<f32>(TOY_SIGMA));
    let mut b = BoRep::new(borep_cfg(0.01, 100.0, 0.3), [0.0_f32; 2], [0.0_f32; 2]).unwrap();
    run(
        &mut b,
        &mut oracle,
        &mut rng,
        &Budget::iters(8_000),
        &mut (),
    )
    .unwrap();
    let x: Vec<f64> = b.x().iter().map(|&v| f64::from(v)).collect();
    assert!(cf.rel_error(&x) <= 1e-2, "{}", cf.rel_error(&x));
}

/// The oracle budget stops a run exactly where it says.
#[test]
fn oracle_budget_stops_the_run() {
    let mut oracle = Counted::new(toy::<f64>(TOY_SIGMA));
    let mut s = Slip::new(SlipConfig::default(), [0.0; 2], [0.0; 2]).unwrap();
    let mut rng = DefaultRng::seed_from_u64(0);
    let budget = Budget::iters(u64::MAX).with_oracle_calls(1_000);
    let report = run(&mut s, &mut oracle, &mut rng, &budget, &mut ()).unwrap();
    assert_eq!(report.termination, Termination::OracleBudget);
    // 3 warm-start calls, then 5 per iteration: the loop stops at the first
    // check at or past the budget.
    assert_eq!(report.counts.oracle_calls(), 3 + 5 * report.iters);
    assert!(report.counts.oracle_calls() >= 1_000 && report.counts.oracle_calls() < 1_005);
}
