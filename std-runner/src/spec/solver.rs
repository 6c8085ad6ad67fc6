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
    /// a finite-sum solver is sized from `c`'s sample counts (its
    /// finite-sum view switched on by `prepare` when the spec was resolved).
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
        memory_for(name, n, m, x0.len(), y0.len())?;
        AnyFiniteSum::build(name, overrides, x0, y0, n, m)
            .map(RunSolver::Finite)
            .map_err(|e| anyhow!("{name}: {e}"))
    }
}

/// The memory (reals) finite-sum solver `name` needs for `n` lower and `m`
/// upper samples; an error over [`MAX_MEMORY_ENTRIES`].
fn memory_for(name: &str, n: usize, m: usize, dx: usize, dy: usize) -> Result<usize> {
    let need = AnyFiniteSum::<f64, Vec<f64>, Vec<f64>>::memory_needed(name, n, m, dx, dy)
        .unwrap_or(usize::MAX);
    if need > MAX_MEMORY_ENTRIES {
        bail!(
            "{name}: its memory for {n} lower and {m} upper samples (dim x {dx}, dim y {dy}) is {need} reals, over the limit of {MAX_MEMORY_ENTRIES} (2 GiB)"
        );
    }
    Ok(need)
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::checkpoint::{decode, encode, Header, Restorer, Saver};
    use crate::session::Position;

    fn saba(n: usize, m: usize) -> RunSolver {
        RunSolver::Finite(
            AnyFiniteSum::build("saba", &[], vec![0.5; 3], vec![0.25; 2], n, m).unwrap(),
        )
    }

    fn bytes(s: &mut RunSolver) -> Vec<u8> {
        let mut saver = Saver::default();
        saver.section("solver/", s);
        let header = Header {
            bilevel_version: env!("CARGO_PKG_VERSION").into(),
            spec_sha256: "ab".into(),
            solver: "saba".into(),
            config: serde_json::json!({"algorithm": "saba"}),
            position: Position {
                iter: 0,
                start_iter: 0,
                trace_lines: 0,
                elapsed_s: 0.0,
                last_logged: 0,
                stop: None,
                pending_eval: false,
            },
        };
        encode(&header, &saver).unwrap()
    }

    /// The SAGA tables round-trip through the checkpoint format (large:
    /// 10⁵ samples), and tables of another size are a clear error naming the
    /// field and both sizes.
    #[test]
    fn saba_memory_round_trips_and_a_wrong_size_is_an_error() {
        let n = 100_000;
        let mut a = saba(n, 7);
        if let RunSolver::Finite(s) = &mut a {
            // Distinct bits everywhere the tables are.
            struct Fill(f64);
            impl StateVisitor<f64> for Fill {
                fn reals(&mut self, _: &'static str, v: &mut [f64]) {
                    for x in v {
                        self.0 += 0.001;
                        *x = self.0;
                    }
                }
                fn f64(&mut self, _: &'static str, _: &mut f64) {}
                fn u64(&mut self, _: &'static str, _: &mut u64) {}
                fn bool(&mut self, _: &'static str, _: &mut bool) {}
            }
            s.visit_state(&mut Fill(0.0));
        }
        let saved = bytes(&mut a);
        assert!(saved.len() > 8 * (n * (2 * 2 + 3)), "{} bytes", saved.len());
        let c = decode(Path::new("checkpoint.bin"), &saved).unwrap();
        let mut b = saba(n, 7);
        Restorer::new(&c).section("solver/", &mut b).unwrap();
        assert_eq!(bytes(&mut b), saved);
        let mut other = saba(n - 1, 7);
        let e = Restorer::new(&c)
            .section("solver/", &mut other)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("solver/memory") && e.contains(&format!("{} reals", (n - 1) * 7 + 7 * 5)),
            "{e}"
        );
    }

    #[test]
    fn a_finite_sum_solver_without_the_view_or_over_the_memory_limit_is_refused() {
        let toy = "bilevel \"t\" version 1\n\
            upper { var x: vector[2] init zeros  minimize norm2sq(x) + norm2sq(y) }\n\
            lower { var y: vector[2] init zeros  minimize norm2sq(y - x) }\n";
        let mut c = Compiled::from_source(toy, Path::new(".")).unwrap();
        let e = RunSolver::build("saba", &[], &c).unwrap_err().to_string();
        assert!(e.contains("not switched on"), "{e}");
        prepare(&mut c, "saba").unwrap();
        assert!(matches!(
            RunSolver::build("saba", &[], &c).unwrap(),
            RunSolver::Finite(_)
        ));
        assert!(matches!(
            RunSolver::build("soba", &[], &c).unwrap(),
            RunSolver::Any(_)
        ));
        assert_eq!(memory_for("saba", 10, 3, 2, 2).unwrap(), 10 * 6 + 3 * 4);
        let e = memory_for("saba", 1 << 26, 1, 2, 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("over the limit") && e.contains("67108864 lower"),
            "{e}"
        );
    }
}
