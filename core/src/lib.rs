//! `bilevel-core`: stochastic bilevel optimization without `std` and without a
//! heap.
//!
//! A bilevel problem is min_x Φ(x) = f(x, y*(x)) with y*(x) = argmin_y g(x, y),
//! where f and g are expectations over data, so only stochastic oracles exist.
//! This crate holds every algorithm, written once against small oracle traits
//! ([`oracle`]) and plain slices, so that the same code runs fixed-size on a
//! Cortex-M microcontroller (`[T; N]` buffers) and with 10^5+ parameters on a
//! desktop (`Vec<T>` buffers, feature `alloc`).
//!
//! * [`solver`]: BO-REP and SLIP (normalised momentum for upper levels with
//!   unbounded smoothness) and every baseline the papers compare against
//!   (StocBio, AID-CG, AID-Neumann, ITD, TTSA, SOBA, MA-SOBA, FSLA, AmIGO, BSA,
//!   ALSET, SABA, F2SA, AccBO, AdamBO, MAML, ANIL, FOMAML, UFOM), each with a
//!   validated config whose defaults are the papers' values; `AnySolver`
//!   builds any of them by registry name.
//! * [`registry`]: every solver's name, hyperparameter schema and oracles.
//! * [`run()`]: the allocation-free run loop with budgets, termination reasons
//!   and observers; [`RunLoop`] drives it one iteration at a time.
//! * [`state`]: every solver's, the generator's and the counters' whole
//!   state through a visitor, for checkpoints and `--resume`.
//! * `testing` (feature `testing`): closed-form test problems.
//!
//! ```
//! use bilevel_core::solver::{Slip, SlipConfig};
//! use bilevel_core::{run, testing, Budget, Counted, DefaultRng};
//! use rand_core::SeedableRng;
//!
//! let mut oracle = Counted::new(testing::toy::<f64>(0.05));
//! let cfg = SlipConfig { eta: 0.01, gamma: 0.2, nu: 0.2, ..SlipConfig::default() };
//! let mut slip = Slip::new(cfg, [0.0_f64; 2], [0.0_f64; 2])?;
//! let mut rng = DefaultRng::seed_from_u64(7);
//! let report = run(&mut slip, &mut oracle, &mut rng, &Budget::iters(3000), &mut ())?;
//! let x_star = [2120.0 / 2729.0, -3900.0 / 2729.0];
//! let err = bilevel_core::kernels::dist(slip.x(), &x_star);
//! assert!(err < 0.05, "‖x − x*‖ = {err} after {} calls", report.counts.oracle_calls());
//! # use bilevel_core::solver::SolverState;
//! # Ok::<(), bilevel_core::Error>(())
//! ```
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod error;
pub mod kernels;
pub mod oracle;
pub mod random;
mod real;
pub mod registry;
mod run;
pub mod solver;
pub mod state;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::Error;
pub use oracle::{
    CallCounter, Counted, Counts, CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, LowerValue,
    Oracle, OracleKind, UpperGradX, UpperGradY, UpperValue,
};
/// The generator traits of the oracle interface (`Oracle::sample` takes an
/// `rand_core::Rng`), re-exported so code generated against the core needs
/// no other dependency.
pub use rand_core;
pub use random::DefaultRng;
pub use real::Real;
pub use run::{
    run, Budget, Control, Every, Observe, Progress, Report, RunLoop, Target, Termination,
};
pub use solver::{Solver, SolverState};
