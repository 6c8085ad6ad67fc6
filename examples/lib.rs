//! Shared code of the examples: the toy problem solved with BO-REP and SLIP
//! through `bilevel-core` alone, so the example binary and the end-to-end
//! tests run exactly the same thing.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use bilevel_core::solver::{BoRep, BoRepConfig, Slip, SlipConfig, SolverState};
use bilevel_core::testing::toy;
use bilevel_core::{run, Budget, Counted, DefaultRng, Error, Report};
use rand_core::SeedableRng;

/// Per-sample noise std of the toy spec (0.1) over its minibatch of 8.
pub const TOY_SIGMA: f64 = 0.035_355_339_059_327_38;

/// The toy's closed-form solution x* = (2120, −3900)/2729.
pub const TOY_X_STAR: [f64; 2] = [2120.0 / 2729.0, -3900.0 / 2729.0];

/// Outer iterations of the toy runs.
pub const TOY_ITERS: u64 = 8_000;

/// BO-REP settings for the toy: decaying normalised step η_t = 0.01/(1 + t/100).
pub fn toy_borep_config() -> BoRepConfig {
    BoRepConfig {
        eta: 0.01,
        eta_decay: 1.0,
        eta_decay_steps: 100.0,
        beta: 0.9,
        gamma: 0.3,
        nu: 0.3,
        period: 2,
        inner_steps: 3,
        warm_lr: 0.3,
        ..BoRepConfig::default()
    }
}

/// SLIP settings for the toy.
pub fn toy_slip_config() -> SlipConfig {
    SlipConfig {
        eta: 0.01,
        eta_decay: 1.0,
        eta_decay_steps: 100.0,
        beta: 0.9,
        gamma: 0.3,
        nu: 0.3,
        ..SlipConfig::default()
    }
}

/// What one toy run produced.
#[derive(Debug, Clone)]
pub struct ToyOutcome {
    /// Solver name.
    pub solver: &'static str,
    /// Final x.
    pub x: [f64; 2],
    /// ‖x − x*‖ / ‖x*‖.
    pub rel_error: f64,
    /// The run report (termination, iterations, oracle calls).
    pub report: Report,
    /// Wall time of the run.
    pub elapsed: Duration,
}

fn rel_error(x: &[f64]) -> f64 {
    let n = bilevel_core::kernels::norm(&TOY_X_STAR);
    bilevel_core::kernels::dist(x, &TOY_X_STAR) / n
}

/// Solves the toy with BO-REP and with SLIP from x₀ = y₀ = 0.
pub fn solve_toy(seed: u64, iters: u64) -> Result<[ToyOutcome; 2], Error> {
    let budget = Budget::iters(iters);

    let mut oracle = Counted::new(toy::<f64>(TOY_SIGMA));
    let mut rng = DefaultRng::seed_from_u64(seed);
    let mut borep = BoRep::new(toy_borep_config(), [0.0; 2], [0.0; 2])?;
    let t = Instant::now();
    let report = run(&mut borep, &mut oracle, &mut rng, &budget, &mut ())?;
    let b = ToyOutcome {
        solver: "bo-rep",
        x: [borep.x()[0], borep.x()[1]],
        rel_error: rel_error(borep.x()),
        report,
        elapsed: t.elapsed(),
    };

    let mut oracle = Counted::new(toy::<f64>(TOY_SIGMA));
    let mut rng = DefaultRng::seed_from_u64(seed);
    let mut slip = Slip::new(toy_slip_config(), [0.0; 2], [0.0; 2])?;
    let t = Instant::now();
    let report = run(&mut slip, &mut oracle, &mut rng, &budget, &mut ())?;
    let s = ToyOutcome {
        solver: "slip",
        x: [slip.x()[0], slip.x()[1]],
        rel_error: rel_error(slip.x()),
        report,
        elapsed: t.elapsed(),
    };
    Ok([b, s])
}
