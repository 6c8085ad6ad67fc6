#![allow(missing_docs)]
//! Time per iteration of BO-REP and SLIP on the dense quadratic family with a
//! hand-written matrix oracle, d ∈ {10, 100, 1000}, f32 and f64; and the same
//! iteration on a null oracle (every call writes zeros), whose time is the
//! solver's own work outside the oracle calls.
//!
//! `cargo bench -p bilevel-core --bench iteration`

use std::hint::black_box;
use std::time::Duration;

use bilevel_core::solver::{BoRep, BoRepConfig, Slip, SlipConfig, Solver, WarmStart};
use bilevel_core::testing::Quadratic;
use bilevel_core::{
    CrossJvp, DefaultRng, Level, LowerGradY, LowerHvp, Oracle, Real, UpperGradX, UpperGradY,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand_core::{Rng, SeedableRng};

/// An oracle that does no arithmetic: every output is zero.
struct Null {
    d: usize,
}

impl<T: Real> Oracle<T> for Null {
    type Sample = u64;
    fn dim_x(&self) -> usize {
        self.d
    }
    fn dim_y(&self) -> usize {
        self.d
    }
    fn sample<R: Rng + ?Sized>(&mut self, _l: Level, rng: &mut R) -> u64 {
        rng.next_u64()
    }
}

macro_rules! null_grad {
    ($($tr:ident :: $m:ident),*) => {$(
        impl<T: Real> $tr<T> for Null {
            fn $m(&mut self, _x: &[T], _y: &[T], _s: &u64, out: &mut [T]) {
                out.fill(T::ZERO);
            }
        }
    )*};
}
null_grad!(
    UpperGradX::grad_x_f,
    UpperGradY::grad_y_f,
    LowerGradY::grad_y_g
);

impl<T: Real> LowerHvp<T> for Null {
    fn hvp_yy(&mut self, _x: &[T], _y: &[T], _v: &[T], _s: &u64, out: &mut [T]) {
        out.fill(T::ZERO);
    }
}
impl<T: Real> CrossJvp<T> for Null {
    fn jvp_xy(&mut self, _x: &[T], _y: &[T], _v: &[T], _s: &u64, out: &mut [T]) {
        out.fill(T::ZERO);
    }
}

fn borep_cfg() -> BoRepConfig {
    BoRepConfig {
        warm_start: WarmStart::None,
        ..BoRepConfig::default()
    }
}

fn bench_solver<T, O, S>(c: &mut Criterion, group: &str, id: &str, mut solver: S, mut oracle: O)
where
    T: Real,
    O: Oracle<T>,
    S: Solver<T, O>,
{
    let mut rng = DefaultRng::seed_from_u64(1);
    solver.init(&mut oracle, &mut rng).unwrap();
    let mut g = c.benchmark_group(group);
    g.bench_function(BenchmarkId::from_parameter(id), |b| {
        b.iter(|| {
            solver.step(&mut oracle, &mut rng).unwrap();
            black_box(solver.x()[0])
        });
    });
    g.finish();
}

fn bench_dtype<T: Real>(c: &mut Criterion) {
    for d in [10_usize, 100, 1000] {
        let q = Quadratic::<T, Vec<T>>::random(d, 10.0, 0.1, 7).unwrap();
        let zeros = vec![T::ZERO; d];
        let id = format!("{}/d{d}", T::NAME);
        let b = BoRep::new(borep_cfg(), zeros.clone(), zeros.clone()).unwrap();
        bench_solver(c, "borep/quadratic", &id, b, q.clone());
        let b = BoRep::new(borep_cfg(), zeros.clone(), zeros.clone()).unwrap();
        bench_solver::<T, _, _>(c, "borep/null", &id, b, Null { d });
        let s = Slip::new(SlipConfig::default(), zeros.clone(), zeros.clone()).unwrap();
        bench_solver(c, "slip/quadratic", &id, s, q);
        let s = Slip::new(SlipConfig::default(), zeros.clone(), zeros).unwrap();
        bench_solver::<T, _, _>(c, "slip/null", &id, s, Null { d });
    }
}

fn benches(c: &mut Criterion) {
    bench_dtype::<f64>(c);
    bench_dtype::<f32>(c);
}

criterion_group! {
    name = iteration;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(iteration);
