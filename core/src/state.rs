//! The whole state of a run, visited field by field, for checkpoints.
//!
//! Everything a later iteration reads is reachable through [`VisitState`]:
//! each solver's iterates, momentum, auxiliary variables, scratch buffers,
//! counters, schedules and warm-start flags; the random generator
//! ([`DefaultRng`]); the oracle-call counters
//! ([`Counts`]). A visit walks the fields in a fixed order with their names
//! and hands each one out as a mutable slice or scalar, so one visitor
//! saves them (reads) and another restores them (writes) into an object built
//! the same way. Nothing here allocates: the core stays `no_std` and the
//! caller chooses the encoding.
//!
//! A solver restored this way continues with the same bits as one that was
//! never stopped; [`RunLoop::resume`](crate::RunLoop::resume) continues the
//! run loop itself.
//!
//! ```
//! use bilevel_core::solver::{Slip, SlipConfig};
//! use bilevel_core::state::{StateVisitor, VisitState};
//! use bilevel_core::{run, testing, Budget, Counted, DefaultRng};
//! use rand_core::SeedableRng;
//!
//! /// Counts the real entries of a state.
//! struct Len(usize);
//! impl StateVisitor<f64> for Len {
//!     fn reals(&mut self, _name: &'static str, v: &mut [f64]) {
//!         self.0 += v.len();
//!     }
//!     fn f64(&mut self, _name: &'static str, _v: &mut f64) {}
//!     fn u64(&mut self, _name: &'static str, _v: &mut u64) {}
//!     fn bool(&mut self, _name: &'static str, _v: &mut bool) {}
//! }
//! let mut s = Slip::new(SlipConfig::default(), [0.0; 2], [0.0; 2])?;
//! let mut len = Len(0);
//! s.visit_state(&mut len);
//! assert!(len.0 >= 4, "x and y at least");
//! # Ok::<(), bilevel_core::Error>(())
//! ```

use crate::oracle::Counts;
use crate::random::DefaultRng;

/// Receives the fields of a state in a fixed order. Each method gets the
/// field's name (stable across versions of one layout) and mutable access:
/// a saving visitor reads, a restoring visitor writes.
pub trait StateVisitor<T> {
    /// A vector of the solver's scalar type (an iterate, a momentum, a
    /// scratch buffer; its length is fixed by the problem's dimensions).
    fn reals(&mut self, name: &'static str, v: &mut [T]);
    /// An `f64` scalar (a multiplier, a bias-correction power).
    fn f64(&mut self, name: &'static str, v: &mut f64);
    /// A counter or a schedule position.
    fn u64(&mut self, name: &'static str, v: &mut u64);
    /// A flag (warm start done, initialised).
    fn bool(&mut self, name: &'static str, v: &mut bool);
}

/// An object whose whole mutable state can be visited, always in the same
/// order, by a [`StateVisitor`].
pub trait VisitState<T> {
    /// Visits every field that later computations read.
    fn visit_state(&mut self, v: &mut dyn StateVisitor<T>);
}

/// Visits `u32` state through a `u64` (saturating on restore).
pub(crate) fn visit_u32<T>(v: &mut dyn StateVisitor<T>, name: &'static str, x: &mut u32) {
    let mut wide = u64::from(*x);
    v.u64(name, &mut wide);
    *x = u32::try_from(wide).unwrap_or(u32::MAX);
}

/// `visit!(self, v; reals a, b; f64 c; u64 d; bool e)` visits the named
/// fields in that order (any group may be empty).
macro_rules! visit {
    ($s:ident, $v:ident; reals $($r:ident),*; f64 $($f:ident),*; u64 $($u:ident),*; bool $($b:ident),*) => {{
        $( $v.reals(stringify!($r), $s.$r.as_mut()); )*
        $( $v.f64(stringify!($f), &mut $s.$f); )*
        $( $v.u64(stringify!($u), &mut $s.$u); )*
        $( $v.bool(stringify!($b), &mut $s.$b); )*
    }};
}
pub(crate) use visit;

impl<T> VisitState<T> for Counts {
    fn visit_state(&mut self, v: &mut dyn StateVisitor<T>) {
        let c = self;
        v.u64("grad_x_f", &mut c.grad_x_f);
        v.u64("grad_y_f", &mut c.grad_y_f);
        v.u64("grad_y_g", &mut c.grad_y_g);
        v.u64("grad_x_g", &mut c.grad_x_g);
        v.u64("hvp_yy", &mut c.hvp_yy);
        v.u64("jvp_xy", &mut c.jvp_xy);
        v.u64("f_value", &mut c.f_value);
        v.u64("g_value", &mut c.g_value);
        v.u64("samples_upper", &mut c.samples_upper);
        v.u64("samples_lower", &mut c.samples_lower);
    }
}

impl<T> VisitState<T> for DefaultRng {
    /// The four words of the xoshiro256++ state, `s0` … `s3`.
    fn visit_state(&mut self, v: &mut dyn StateVisitor<T>) {
        let bytes = self.state();
        let mut words = [0u64; 4];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
        for (w, name) in words.iter_mut().zip(["s0", "s1", "s2", "s3"]) {
            v.u64(name, w);
        }
        let mut seed = [0u8; 32];
        for (chunk, w) in seed.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        // An all-zero state (unreachable from a seed) is remapped by
        // `from_seed`; every reachable state round-trips exactly.
        *self = rand_core::SeedableRng::from_seed(seed);
    }
}

#[cfg(test)]
mod tests {
    use rand_core::{Rng, SeedableRng};

    use super::*;
    use crate::registry::SOLVERS;
    use crate::solver::{AnySolver, Saba, SabaConfig, FINITE_SUM};
    use crate::{testing, Budget, Counted, RunLoop, SolverState};

    /// One saved field: name and bits.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Field {
        Reals(&'static str, Vec<u64>),
        F64(&'static str, u64),
        U64(&'static str, u64),
        Bool(&'static str, bool),
    }

    #[derive(Default)]
    struct Save(Vec<Field>);
    impl StateVisitor<f64> for Save {
        fn reals(&mut self, name: &'static str, v: &mut [f64]) {
            self.0
                .push(Field::Reals(name, v.iter().map(|x| x.to_bits()).collect()));
        }
        fn f64(&mut self, name: &'static str, v: &mut f64) {
            self.0.push(Field::F64(name, v.to_bits()));
        }
        fn u64(&mut self, name: &'static str, v: &mut u64) {
            self.0.push(Field::U64(name, *v));
        }
        fn bool(&mut self, name: &'static str, v: &mut bool) {
            self.0.push(Field::Bool(name, *v));
        }
    }

    /// Writes saved fields back, checking names and lengths.
    struct Load(std::vec::IntoIter<Field>);
    impl StateVisitor<f64> for Load {
        fn reals(&mut self, name: &'static str, v: &mut [f64]) {
            match self.0.next() {
                Some(Field::Reals(n, bits)) if n == name && bits.len() == v.len() => {
                    for (x, b) in v.iter_mut().zip(bits) {
                        *x = f64::from_bits(b);
                    }
                }
                other => panic!("{name}: found {other:?}"),
            }
        }
        fn f64(&mut self, name: &'static str, v: &mut f64) {
            match self.0.next() {
                Some(Field::F64(n, b)) if n == name => *v = f64::from_bits(b),
                other => panic!("{name}: found {other:?}"),
            }
        }
        fn u64(&mut self, name: &'static str, v: &mut u64) {
            match self.0.next() {
                Some(Field::U64(n, b)) if n == name => *v = b,
                other => panic!("{name}: found {other:?}"),
            }
        }
        fn bool(&mut self, name: &'static str, v: &mut bool) {
            match self.0.next() {
                Some(Field::Bool(n, b)) if n == name => *v = b,
                other => panic!("{name}: found {other:?}"),
            }
        }
    }

    fn save<S: VisitState<f64> + ?Sized>(s: &mut S) -> Vec<Field> {
        let mut v = Save::default();
        s.visit_state(&mut v);
        v.0
    }

    fn load<S: VisitState<f64> + ?Sized>(s: &mut S, fields: Vec<Field>) {
        let mut v = Load(fields.into_iter());
        s.visit_state(&mut v);
        assert!(v.0.next().is_none(), "fields left over");
    }

    type Any = AnySolver<f64, Vec<f64>, Vec<f64>>;
    type Toy = Counted<testing::Quadratic<f64, [f64; testing::Q_LEN_2X2]>>;

    fn build(name: &str) -> Any {
        Any::build(
            name,
            testing::tuned::toy_overrides(name),
            vec![0.3, -0.2],
            vec![0.1, 0.4],
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// Drives a run loop `iters` more iterations (or to its end).
    fn drive(s: &mut Any, o: &mut Toy, rng: &mut DefaultRng, run: &mut RunLoop, iters: u64) {
        for _ in 0..iters {
            if run.step(s, o, rng, &mut ()).unwrap().is_some() {
                break;
            }
        }
    }

    /// Every solver of the registry, saved after k iterations and restored
    /// into a solver whose every buffer was scrambled by a run with another
    /// seed, continues with the same bits as the uninterrupted run: x, y and
    /// every field of its state, the generator and the counters.
    #[test]
    fn every_solver_restored_mid_run_continues_with_the_same_bits() {
        let budget = Budget::iters(40);
        for info in SOLVERS {
            if FINITE_SUM.contains(&info.name) {
                continue;
            }
            for k in [0_u64, 1, 7, 23] {
                // Uninterrupted.
                let mut s = build(info.name);
                let mut o: Toy = Counted::new(testing::toy(0.1));
                let mut rng = DefaultRng::seed_from_u64(5);
                let mut run = RunLoop::start(&mut s, &mut o, &mut rng, &budget, &mut ()).unwrap();
                drive(&mut s, &mut o, &mut rng, &mut run, k);
                let saved = (
                    save(&mut s),
                    save(&mut rng),
                    save(o.counts_mut()),
                    run.start_iter(),
                );
                drive(&mut s, &mut o, &mut rng, &mut run, u64::MAX);
                let want = (save(&mut s), save(&mut rng), save(o.counts_mut()));

                // A solver with other contents everywhere, then restored.
                let mut s2 = build(info.name);
                let mut o2: Toy = Counted::new(testing::toy(0.1));
                let mut rng2 = DefaultRng::seed_from_u64(99);
                let mut other =
                    RunLoop::start(&mut s2, &mut o2, &mut rng2, &budget, &mut ()).unwrap();
                drive(&mut s2, &mut o2, &mut rng2, &mut other, 3);
                load(&mut s2, saved.0);
                load(&mut rng2, saved.1);
                load(o2.counts_mut(), saved.2);
                let mut run2 = RunLoop::resume(&s2, &budget, saved.3);
                drive(&mut s2, &mut o2, &mut rng2, &mut run2, u64::MAX);
                let got = (save(&mut s2), save(&mut rng2), save(o2.counts_mut()));
                assert_eq!(got, want, "{} restored after {k} iterations", info.name);
                assert_eq!(s2.iter(), s.iter(), "{}", info.name);
            }
        }
    }

    #[test]
    fn saba_restored_mid_run_continues_with_the_same_bits() {
        use crate::Solver;
        let n = 4;
        let problem = || testing::FiniteQuadratic::new(testing::q3::<f64>(0.0), n, 0.3, 7);
        let mem = Saba::<f64, [f64; 2], [f64; 2], Vec<f64>>::memory_needed(n, n, 2, 2);
        let mk = || {
            let cfg = SabaConfig::default();
            Saba::new(cfg, [0.3, -0.2], [0.1, 0.4], vec![0.0; mem], n, n).unwrap()
        };
        let (mut s, mut o) = (mk(), problem());
        let mut rng = DefaultRng::seed_from_u64(3);
        s.init(&mut o, &mut rng).unwrap();
        for _ in 0..11 {
            s.step(&mut o, &mut rng).unwrap();
        }
        let saved = (save(&mut s), save(&mut rng));
        for _ in 0..19 {
            s.step(&mut o, &mut rng).unwrap();
        }
        let want = save(&mut s);
        let (mut s2, mut o2) = (mk(), problem());
        let mut rng2 = DefaultRng::seed_from_u64(1);
        s2.init(&mut o2, &mut rng2).unwrap();
        for _ in 0..5 {
            s2.step(&mut o2, &mut rng2).unwrap();
        }
        load(&mut s2, saved.0);
        load(&mut rng2, saved.1);
        for _ in 0..19 {
            s2.step(&mut o2, &mut rng2).unwrap();
        }
        assert_eq!(save(&mut s2), want);
    }

    #[test]
    fn srba_restored_mid_run_continues_with_the_same_bits() {
        use crate::solver::{Srba, SrbaConfig};
        use crate::Solver;
        let n = 4;
        let problem = || testing::FiniteQuadratic::new(testing::q3::<f64>(0.0), n, 0.3, 7);
        let mk = || Srba::new(SrbaConfig::default(), [0.3, -0.2], [0.1, 0.4]).unwrap();
        let (mut s, mut o) = (mk(), problem());
        let mut rng = DefaultRng::seed_from_u64(3);
        s.init(&mut o, &mut rng).unwrap();
        // Period 4: the save falls between two restarts.
        for _ in 0..11 {
            s.step(&mut o, &mut rng).unwrap();
        }
        let saved = (save(&mut s), save(&mut rng));
        for _ in 0..19 {
            s.step(&mut o, &mut rng).unwrap();
        }
        let want = save(&mut s);
        let (mut s2, mut o2) = (mk(), problem());
        let mut rng2 = DefaultRng::seed_from_u64(1);
        s2.init(&mut o2, &mut rng2).unwrap();
        for _ in 0..5 {
            s2.step(&mut o2, &mut rng2).unwrap();
        }
        load(&mut s2, saved.0);
        load(&mut rng2, saved.1);
        for _ in 0..19 {
            s2.step(&mut o2, &mut rng2).unwrap();
        }
        assert_eq!(save(&mut s2), want);
    }

    #[test]
    fn the_generator_round_trips_through_its_words() {
        let mut a = DefaultRng::seed_from_u64(17);
        for _ in 0..5 {
            a.next_u64();
        }
        let saved = save(&mut a);
        let mut b = DefaultRng::seed_from_u64(0);
        load(&mut b, saved);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn field_names_are_unique_within_each_solver() {
        for info in SOLVERS {
            if FINITE_SUM.contains(&info.name) {
                continue;
            }
            let fields = save(&mut build(info.name));
            let mut names: Vec<&str> = fields
                .iter()
                .map(|f| match f {
                    Field::Reals(n, _)
                    | Field::F64(n, _)
                    | Field::U64(n, _)
                    | Field::Bool(n, _) => *n,
                })
                .collect();
            let len = names.len();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), len, "{}", info.name);
        }
    }
}
