//! [`AnyFiniteSum`]: every solver of the registry that needs a finite-sum
//! oracle ([`FiniteSum`]: the sample of index i on each level, `count(level)`)
//! and caller memory proportional to the sample counts, chosen by registry
//! name at run time (feature `alloc`: the memory is a `Vec` allocated once in
//! [`AnyFiniteSum::build`]; the step loop never allocates).
//!
//! [`AnySolver`](super::AnySolver) runs on the standard oracle set; these
//! solvers need more of the oracle and sizes only the oracle knows (n lower
//! and m upper samples), so they are built here, from those sizes. A solver
//! whose registry entry needs [`FiniteSum`] is added to the list at the end
//! of this file with one line and a `FiniteBuild` impl (how it is sized and
//! constructed: SABA from caller memory and the counts, SRBA from its
//! configuration and x_0, y_0 alone), and every caller of `AnyFiniteSum`
//! (the runner) runs it.
//!
//! ```
//! use bilevel_core::solver::AnyFiniteSum;
//! use bilevel_core::{run, testing, Budget, Counted, DefaultRng};
//! use rand_core::SeedableRng;
//!
//! let n = 4;
//! let mut o = Counted::new(testing::FiniteQuadratic::new(testing::q3::<f64>(0.0), n, 0.3, 7));
//! let mut s = AnyFiniteSum::<f64, Vec<f64>, Vec<f64>>::build("saba", &[], vec![0.0; 2], vec![0.0; 2], n, n)?;
//! let mut rng = DefaultRng::seed_from_u64(1);
//! run(&mut s, &mut o, &mut rng, &Budget::iters(10), &mut ())?;
//! assert_eq!(s.info().name, "saba");
//! assert!(AnyFiniteSum::<f64, Vec<f64>, Vec<f64>>::handles("SABA"));
//! # Ok::<(), bilevel_core::Error>(())
//! ```

extern crate alloc;

use alloc::vec::Vec;

use rand_core::Rng;

use super::{Buffer, FiniteSum, Saba, SabaConfig, Solver, SolverState, Srba, SrbaConfig};
use crate::oracle::{CrossJvp, LowerGradX, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::{self, Configure, ParamValue, SolverInfo};
use crate::{Error, Real};

fn configured<C: Configure + Default>(overrides: &[(&str, ParamValue<'_>)]) -> Result<C, Error> {
    let mut c = C::default();
    for &(name, value) in overrides {
        c.set(name, value)?;
    }
    Ok(c)
}

/// How [`AnyFiniteSum`] sizes and builds one finite-sum solver: SABA takes
/// caller memory (its SAGA tables) and the sample counts, SRBA only the
/// configuration and the initial point (its buffers are dx and dy long; `init`
/// reads the counts from the oracle).
trait FiniteBuild<T: Real, BX: Buffer<T>, BY: Buffer<T>>: Sized {
    type Config: Configure + Default;
    /// Entries of the `Vec` memory `make` takes.
    fn memory_len(n: usize, m: usize, dx: usize, dy: usize) -> usize;
    fn make(
        cfg: Self::Config,
        x0: BX,
        y0: BY,
        memory: Vec<T>,
        n: usize,
        m: usize,
    ) -> Result<Self, Error>;
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> FiniteBuild<T, BX, BY> for Saba<T, BX, BY, Vec<T>> {
    type Config = SabaConfig;
    fn memory_len(n: usize, m: usize, dx: usize, dy: usize) -> usize {
        Self::memory_needed(n, m, dx, dy)
    }
    fn make(
        cfg: SabaConfig,
        x0: BX,
        y0: BY,
        memory: Vec<T>,
        n: usize,
        m: usize,
    ) -> Result<Self, Error> {
        Saba::new(cfg, x0, y0, memory, n, m)
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> FiniteBuild<T, BX, BY> for Srba<T, BX, BY> {
    type Config = SrbaConfig;
    fn memory_len(_: usize, _: usize, _: usize, _: usize) -> usize {
        0
    }
    fn make(cfg: SrbaConfig, x0: BX, y0: BY, _: Vec<T>, n: usize, m: usize) -> Result<Self, Error> {
        // As SABA: zero counts are an error when built, not only at `init`.
        if n == 0 || m == 0 {
            return Err(Error::InvalidParam {
                name: "samples",
                expected: "at least one sample on each level",
            });
        }
        Srba::new(cfg, x0, y0)
    }
}

macro_rules! any_finite_sum {
    ($( $variant:ident($solver:ty, $module:ident) ),* $(,)?) => {
        /// Registry names of the solvers [`AnyFiniteSum`] builds.
        pub const FINITE_SUM: &[&str] = &[$( super::$module::INFO.name ),*];

        /// One of the core's finite-sum solvers, chosen by name at run time,
        /// with its memory in a `Vec`.
        #[derive(Debug, Clone)]
        pub enum AnyFiniteSum<T, BX, BY> {
            $(
                #[doc = concat!("`", stringify!($solver), "` (its memory, if any, in a `Vec`).")]
                $variant($solver),
            )*
        }

        impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> AnyFiniteSum<T, BX, BY> {
            /// `true` when `name` (as [`registry::find`] reads it) is one of
            /// the solvers built here.
            pub fn handles(name: &str) -> bool {
                registry::find(name).is_some_and(|i| FINITE_SUM.contains(&i.name))
            }

            /// Entries of memory the solver `name` needs for `n` lower and
            /// `m` upper samples and dimensions `dx`, `dy` (`None` for a name
            /// not built here).
            pub fn memory_needed(name: &str, n: usize, m: usize, dx: usize, dy: usize) -> Option<usize> {
                let info = registry::find(name)?;
                $(
                    if info.name == super::$module::INFO.name {
                        return Some(<$solver as FiniteBuild<T, BX, BY>>::memory_len(n, m, dx, dy));
                    }
                )*
                None
            }

            /// Builds the solver registered as `name` from its default
            /// configuration with `overrides` applied in order, starting from
            /// x_0 and y_0, for an oracle with `n` lower and `m` upper
            /// samples (its [`FiniteSum::count`]s; `init` checks them).
            ///
            /// Errors: [`Error::UnknownSolver`] for a name not built here, the
            /// first override's error, or the solver's own (`n` or `m` zero).
            pub fn build(
                name: &str,
                overrides: &[(&str, ParamValue<'_>)],
                x0: BX,
                y0: BY,
                n: usize,
                m: usize,
            ) -> Result<Self, Error> {
                let info = registry::find(name).ok_or(Error::UnknownSolver)?;
                $(
                    if info.name == super::$module::INFO.name {
                        let cfg = configured(overrides)?;
                        let (dx, dy) = (x0.as_ref().len(), y0.as_ref().len());
                        let len = <$solver as FiniteBuild<T, BX, BY>>::memory_len(n, m, dx, dy);
                        let memory = alloc::vec![T::ZERO; len];
                        return <$solver as FiniteBuild<T, BX, BY>>::make(cfg, x0, y0, memory, n, m)
                            .map(AnyFiniteSum::$variant);
                    }
                )*
                Err(Error::UnknownSolver)
            }

            /// The registry entry of the solver inside.
            pub fn info(&self) -> &'static SolverInfo {
                match self {
                    $( AnyFiniteSum::$variant(_) => &super::$module::INFO, )*
                }
            }
        }

        impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for AnyFiniteSum<T, BX, BY> {
            fn x(&self) -> &[T] {
                match self {
                    $( AnyFiniteSum::$variant(s) => s.x(), )*
                }
            }
            fn y(&self) -> &[T] {
                match self {
                    $( AnyFiniteSum::$variant(s) => s.y(), )*
                }
            }
            fn iter(&self) -> u64 {
                match self {
                    $( AnyFiniteSum::$variant(s) => s.iter(), )*
                }
            }
        }

        impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T>
            for AnyFiniteSum<T, BX, BY>
        {
            fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
                match self {
                    $( AnyFiniteSum::$variant(s) => s.visit_state(v), )*
                }
            }
        }

        impl<T, BX, BY, O> Solver<T, O> for AnyFiniteSum<T, BX, BY>
        where
            T: Real,
            BX: Buffer<T>,
            BY: Buffer<T>,
            O: UpperGradX<T> + UpperGradY<T> + LowerGradY<T> + LowerGradX<T> + LowerHvp<T> + CrossJvp<T> + FiniteSum<T>,
        {
            fn name(&self) -> &'static str {
                self.info().name
            }

            fn init<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
                match self {
                    $( AnyFiniteSum::$variant(s) => s.init(oracle, rng), )*
                }
            }

            fn step<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
                match self {
                    $( AnyFiniteSum::$variant(s) => s.step(oracle, rng), )*
                }
            }
        }
    };
}

any_finite_sum! {
    Saba(Saba<T, BX, BY, Vec<T>>, saba),
    Srba(Srba<T, BX, BY>, srba),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::SOLVERS;

    type A = AnyFiniteSum<f64, Vec<f64>, Vec<f64>>;

    #[test]
    fn every_finite_sum_solver_is_in_the_registry_and_builds() {
        for name in FINITE_SUM {
            assert!(SOLVERS.iter().any(|s| s.name == *name), "{name}");
            let s = A::build(name, &[], vec![0.0; 2], vec![0.0; 3], 5, 4).unwrap();
            assert_eq!(s.info().name, *name);
            assert!(A::handles(name));
        }
        assert!(!A::handles("soba"));
        assert_eq!(
            A::build("soba", &[], vec![0.0], vec![0.0], 1, 1).err(),
            Some(Error::UnknownSolver)
        );
    }

    #[test]
    fn memory_is_sized_from_the_counts_and_zero_counts_are_errors() {
        assert_eq!(
            A::memory_needed("saba", 5, 4, 2, 3),
            Some(5 * (2 * 3 + 2) + 4 * (3 + 2))
        );
        assert!(A::build("saba", &[], vec![0.0; 2], vec![0.0; 3], 0, 4).is_err());
        // SRBA's buffers are dx and dy long: no memory, but zero counts are
        // refused at build time as SABA's are.
        assert_eq!(A::memory_needed("srba", 5, 4, 2, 3), Some(0));
        assert!(A::build("srba", &[], vec![0.0; 2], vec![0.0; 3], 4, 0).is_err());
        assert!(A::build(
            "srba",
            &[("period_frac", ParamValue::Real(-1.0))],
            vec![0.0],
            vec![0.0],
            1,
            1
        )
        .is_err());
        assert_eq!(
            A::build(
                "saba",
                &[("nope", ParamValue::Real(1.0))],
                vec![0.0],
                vec![0.0],
                1,
                1
            )
            .err(),
            Some(Error::UnknownParam)
        );
    }

    /// Each solver through `AnyFiniteSum` gives the bits of the solver built
    /// directly, on a random finite quadratic, for several seeds.
    #[test]
    fn built_by_name_gives_the_bits_of_the_solver_itself() {
        use crate::{testing, DefaultRng};
        use rand_core::SeedableRng;
        for seed in 0..6_u64 {
            let n = 4 + 2 * seed as usize;
            let problem = || testing::FiniteQuadratic::new(testing::q3::<f64>(0.0), n, 0.3, seed);
            let (x0, y0) = (vec![0.3, -0.2], vec![0.1, 0.4]);
            let mut a = A::build("srba", &[], x0.clone(), y0.clone(), n, n).unwrap();
            let mut b: Srba<f64, Vec<f64>, Vec<f64>> =
                Srba::new(SrbaConfig::default(), x0.clone(), y0.clone()).unwrap();
            let len = Saba::<f64, Vec<f64>, Vec<f64>, Vec<f64>>::memory_needed(n, n, 2, 2);
            let mut c = A::build("saba", &[], x0.clone(), y0.clone(), n, n).unwrap();
            let mut d = Saba::new(SabaConfig::default(), x0, y0, vec![0.0; len], n, n).unwrap();
            let (mut oa, mut ob, mut oc, mut od) = (problem(), problem(), problem(), problem());
            let mut r = [0_u64; 4].map(|_| DefaultRng::seed_from_u64(seed));
            a.init(&mut oa, &mut r[0]).unwrap();
            b.init(&mut ob, &mut r[1]).unwrap();
            c.init(&mut oc, &mut r[2]).unwrap();
            d.init(&mut od, &mut r[3]).unwrap();
            for _ in 0..25 {
                a.step(&mut oa, &mut r[0]).unwrap();
                b.step(&mut ob, &mut r[1]).unwrap();
                c.step(&mut oc, &mut r[2]).unwrap();
                d.step(&mut od, &mut r[3]).unwrap();
            }
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(a.x()), bits(b.x()), "srba, seed {seed}");
            assert_eq!(bits(c.x()), bits(d.x()), "saba, seed {seed}");
            assert!(a.x().iter().chain(c.x()).all(|v| v.is_finite()));
        }
    }
}
