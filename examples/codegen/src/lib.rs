//! Oracles generated at build time from the example specs (see `build.rs`):
//! one module per spec and scalar type, e.g. [`toy_f64`].
#![no_std]

include!(concat!(env!("OUT_DIR"), "/toy_f64.rs"));
include!(concat!(env!("OUT_DIR"), "/toy_f32.rs"));
include!(concat!(env!("OUT_DIR"), "/quad100_f64.rs"));
include!(concat!(env!("OUT_DIR"), "/quad100_f32.rs"));
include!(concat!(env!("OUT_DIR"), "/hpo_f64.rs"));
include!(concat!(env!("OUT_DIR"), "/hpo_f32.rs"));
include!(concat!(env!("OUT_DIR"), "/hyperclean_f64.rs"));
include!(concat!(env!("OUT_DIR"), "/hyperclean_f32.rs"));
include!(concat!(env!("OUT_DIR"), "/ridge_f64.rs"));
include!(concat!(env!("OUT_DIR"), "/ridge_f32.rs"));
include!(concat!(env!("OUT_DIR"), "/matmat_f64.rs"));
include!(concat!(env!("OUT_DIR"), "/matmat_f32.rs"));
// Run-time data: sample rings the caller fills (docs/codegen.md).
include!(concat!(env!("OUT_DIR"), "/hpo_ring_f64.rs"));
include!(concat!(env!("OUT_DIR"), "/hpo_ring_f32.rs"));
include!(concat!(env!("OUT_DIR"), "/ridge_ring_f64.rs"));
include!(concat!(env!("OUT_DIR"), "/ridge_ring_f32.rs"));
include!(concat!(env!("OUT_DIR"), "/ridge_ring40_f64.rs"));
include!(concat!(env!("OUT_DIR"), "/ridge_ring40_f32.rs"));

/// A firmware's use of a sample ring, as docs/codegen.md shows it: the
/// rows come from a sensor at run time, nothing of the data is compiled
/// in. Built for `thumbv7em-none-eabihf` too (docs/codegen.md), and run on
/// the host by `tests/ring.rs`.
pub mod ring_demo {
    use crate::ridge_ring40_f32 as ridge;
    use bilevel_core::rand_core::SeedableRng;
    use bilevel_core::solver::{BoRep, BoRepConfig};
    use bilevel_core::{DefaultRng, Error, Solver, SolverState};

    /// One measured row: features and target; `val` says which data set
    /// it belongs to.
    pub struct Reading {
        /// The features.
        pub x: [f32; ridge::TRAIN_FEATURES],
        /// The target.
        pub y: f32,
        /// A validation row (else a training row).
        pub val: bool,
    }

    /// Fills the rings from `sensor` until both hold a minibatch, then runs
    /// `steps` BO-REP steps, pushing one new reading before each (the
    /// oldest row of a full ring is overwritten). Readings the ring refuses
    /// (a non-finite value) are skipped. Returns λ and the rows pushed. (Not
    /// generic, so that a `thumbv7em-none-eabihf` build of this library
    /// compiles it, with the solver on the ring oracle, to machine code.)
    ///
    /// # Errors
    /// The solver's (none for this problem's fixed dimensions).
    pub fn adapt(
        oracle: &mut ridge::Problem,
        sensor: &mut dyn FnMut() -> Reading,
        steps: u32,
    ) -> Result<([f32; ridge::DIM_X], u32), Error> {
        let mut pushed = 0u32;
        let mut push = |o: &mut ridge::Problem| {
            let r = sensor();
            let ring = if r.val {
                o.rings.val.push(&r.x, r.y)
            } else {
                o.rings.train.push(&r.x, r.y)
            };
            if ring.is_ok() {
                pushed += 1;
            }
        };
        while !oracle.ready() {
            push(oracle);
        }
        let cfg = BoRepConfig {
            eta: 0.01,
            gamma: 0.1,
            nu: 0.1,
            ..BoRepConfig::default()
        };
        let mut solver = BoRep::new(cfg, ridge::X0, ridge::Y0)?;
        let mut rng = DefaultRng::seed_from_u64(7);
        solver.init(oracle, &mut rng)?;
        for _ in 0..steps {
            push(oracle);
            solver.step(oracle, &mut rng)?;
        }
        let mut x = [0.0; ridge::DIM_X];
        x.copy_from_slice(solver.x());
        Ok((x, pushed))
    }
}
