//! The solver of a spec run: one of the core's standard solvers
//! ([`AnySolver`]) or a finite-sum one ([`AnyFiniteSum`], SABA), built from
//! the compiled spec's finite-sum view. Every registry solver runs, resumes
//! and checkpoints through this one type.

use anyhow::{anyhow, bail, Result};
use bilevel_core::oracle::{
    CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, UpperGradX, UpperGradY,
};
use bilevel_core::registry::ParamValue;
use bilevel_core::solver::{AnyFiniteSum, AnySolver, FiniteSum, Solver, SolverState};
use bilevel_core::state::{StateVisitor, VisitState};
use bilevel_core::Error;
use bilevel_dsl::Compiled;
use rand_core::Rng;

/// Entries of solver memory (f64) a run may allocate: 2²⁸ (2 GiB). A
/// finite-sum solver keeps memory per sample; beyond this the run is
/// refused with the size instead of failing to allocate.
pub const MAX_MEMORY_ENTRIES: usize = 1 << 28;

/// The solver of a spec run.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum RunSolver {
    /// A solver of the standard oracle set.
    Any(AnySolver<f64, Vec<f64>, Vec<f64>>),
    /// A finite-sum solver, on the spec's finite-sum view.
    Finite(AnyFiniteSum<f64, Vec<f64>, Vec<f64>>),
}

/// `true` when the solver `name` needs the finite-sum view.
pub fn needs_finite_sum(name: &str) -> bool {
    AnyFiniteSum::<f64, Vec<f64>, Vec<f64>>::handles(name)
}

/// Switches the finite-sum view of `c` on for solver `name` when it needs
/// one; errors (naming the level) when the spec is not a finite sum.
pub fn prepare(c: &mut Compiled, name: &str) -> Result<()> {
    if needs_finite_sum(name) {
        c.use_finite_sum().map_err(|e| {
            anyhow!("{name} needs each level to be a finite sum over a data table, and {e}")
        })?;
    }
    Ok(())
}

impl RunSolver {
    /// Builds solver `name` with `overrides` from the spec's initial point;
    /// a finite-sum solver is sized from `c`'s sample counts (`c` must have
    /// been [`prepare`]d).
    pub fn build(name: &str, overrides: &[(&str, ParamValue<'_>)], c: &Compiled) -> Result<Self> {
        let (x0, y0) = (c.initial_x(), c.initial_y());
        if !needs_finite_sum(name) {
            return AnySolver::build(name, overrides, x0, y0)
                .map(RunSolver::Any)
                .map_err(|e| anyhow!("{name}: {e}"));
        }
        let (n, m) = (c.count(Level::Lower), c.count(Level::Upper));
        if n == 0 || m == 0 {
            bail!("{name}: the spec's finite-sum view is not switched on");
        }
        type A = AnyFiniteSum<f64, Vec<f64>, Vec<f64>>;
        let need = A::memory_needed(name, n, m, x0.len(), y0.len()).unwrap_or(usize::MAX);
        if need > MAX_MEMORY_ENTRIES {
            bail!(
                "{name}: its memory for {n} lower and {m} upper samples (dim x {}, dim y {}) is {need} reals, over the limit of {MAX_MEMORY_ENTRIES} (2 GiB)",
                x0.len(),
                y0.len()
            );
        }
        A::build(name, overrides, x0, y0, n, m)
            .map(RunSolver::Finite)
            .map_err(|e| anyhow!("{name}: {e}"))
    }
}

impl SolverState<f64> for RunSolver {
    fn x(&self) -> &[f64] {
        match self {
            RunSolver::Any(s) => s.x(),
            RunSolver::Finite(s) => s.x(),
        }
    }
    fn y(&self) -> &[f64] {
        match self {
            RunSolver::Any(s) => s.y(),
            RunSolver::Finite(s) => s.y(),
        }
    }
    fn iter(&self) -> u64 {
        match self {
            RunSolver::Any(s) => s.iter(),
            RunSolver::Finite(s) => s.iter(),
        }
    }
}

impl VisitState<f64> for RunSolver {
    fn visit_state(&mut self, v: &mut dyn StateVisitor<f64>) {
        match self {
            RunSolver::Any(s) => s.visit_state(v),
            RunSolver::Finite(s) => s.visit_state(v),
        }
    }
}

impl<O> Solver<f64, O> for RunSolver
where
    O: UpperGradX<f64>
        + UpperGradY<f64>
        + LowerGradY<f64>
        + LowerGradX<f64>
        + LowerHvp<f64>
        + CrossJvp<f64>
        + FiniteSum<f64>,
{
    fn name(&self) -> &'static str {
        match self {
            RunSolver::Any(s) => s.info().name,
            RunSolver::Finite(s) => s.info().name,
        }
    }
    fn init<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
        match self {
            RunSolver::Any(s) => s.init(oracle, rng),
            RunSolver::Finite(s) => s.init(oracle, rng),
        }
    }
    fn step<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
        match self {
            RunSolver::Any(s) => s.step(oracle, rng),
            RunSolver::Finite(s) => s.step(oracle, rng),
        }
    }
}
