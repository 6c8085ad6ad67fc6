#![allow(missing_docs)]
//! The lane-structured kernels against the memory-bandwidth floor (issue 16).
//!
//! On the dense quadratic family (`testing::Quadratic`, κ = 10, σ = 0.1),
//! d ∈ {100, 1000}, f64 and f32, one thread:
//!
//! * `iter/<solver>/<T>/d<d>`: one BO-REP, SLIP and StocBio iteration;
//! * `floor/<T>/d<d>`: one streaming read of the six d × d matrices of the
//!   same instance (A, B, C, F, H, K, in storage order), summed with
//!   independent lanes so that the adds never wait; a sixth of it is the
//!   floor of one matrix pass, and an iteration's floor is that times its
//!   matrix passes (printed once per solver at start-up, counted with
//!   `Counted` over 60 iterations: ∇ᵧg, ∇ₓg, ∇ᵧf, ∇ₓf read two matrices
//!   each, ∇²ᵧᵧg·v and ∇²ₓᵧg·v one);
//! * `matvec/<T>/d<d>/{chain,lanes}`: one d × d matrix–vector product with
//!   the single left-to-right chain the kernels used before issue 16 (copied
//!   here) and with `kernels::matvec`, side by side.
//!
//! `cargo bench -p bilevel-core --bench kernels`

use std::hint::black_box;
use std::time::Duration;

use bilevel_core::kernels;
use bilevel_core::solver::{
    BoRep, BoRepConfig, Slip, SlipConfig, Solver, StocBio, StocBioConfig, WarmStart,
};
use bilevel_core::testing::Quadratic;
use bilevel_core::{Counted, DefaultRng, Oracle, Real};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand_core::SeedableRng;

/// The reduction of the kernels before issue 16: one chain of adds.
fn chain_dot<T: Real>(x: &[T], y: &[T]) -> T {
    let mut s = T::ZERO;
    for (&a, &b) in x.iter().zip(y) {
        s += a * b;
    }
    s
}

fn chain_matvec<T: Real>(m: &[T], v: &[T], out: &mut [T]) {
    for (o, row) in out.iter_mut().zip(m.chunks_exact(v.len())) {
        *o = chain_dot(row, v);
    }
}

/// Sum of every entry with 16 independent partial sums: one streaming read.
fn stream_sum<T: Real>(m: &[T]) -> T {
    let (chunks, tail) = m.as_chunks::<16>();
    let mut acc = [T::ZERO; 16];
    for c in chunks {
        for k in 0..16 {
            acc[k] += c[k];
        }
    }
    for (a, &v) in acc.iter_mut().zip(tail) {
        *a += v;
    }
    acc.iter().fold(T::ZERO, |s, &a| s + a)
}

const MATRICES: [&str; 6] = ["A", "B", "C", "F", "H", "K"];

fn borep_cfg() -> BoRepConfig {
    BoRepConfig {
        warm_start: WarmStart::None,
        ..BoRepConfig::default()
    }
}

/// Matrix passes per iteration of `solver` on `q`, averaged over 60 steps.
fn passes<T: Real, S: Solver<T, Counted<Quadratic<T, Vec<T>>>>>(
    mut solver: S,
    q: &Quadratic<T, Vec<T>>,
) -> f64 {
    let mut o = Counted::new(q.clone());
    let mut rng = DefaultRng::seed_from_u64(1);
    solver.init(&mut o, &mut rng).unwrap();
    o.reset();
    let k = 60;
    for _ in 0..k {
        solver.step(&mut o, &mut rng).unwrap();
    }
    let c = o.counts();
    let two = c.grad_x_f + c.grad_y_f + c.grad_y_g + c.grad_x_g;
    (2 * two + c.hvp_yy + c.jvp_xy) as f64 / f64::from(k)
}

fn bench_solver<T, O, S>(c: &mut Criterion, name: &str, id: &str, mut solver: S, mut oracle: O)
where
    T: Real,
    O: Oracle<T>,
    S: Solver<T, O>,
{
    let mut rng = DefaultRng::seed_from_u64(1);
    solver.init(&mut oracle, &mut rng).unwrap();
    let mut g = c.benchmark_group(format!("iter/{name}"));
    g.bench_function(BenchmarkId::from_parameter(id), |b| {
        b.iter(|| {
            solver.step(&mut oracle, &mut rng).unwrap();
            black_box(solver.x()[0])
        });
    });
    g.finish();
}

fn bench_dtype<T: Real>(c: &mut Criterion) {
    for d in [100_usize, 1000] {
        let q = Quadratic::<T, Vec<T>>::random(d, 10.0, 0.1, 7).unwrap();
        let zeros = vec![T::ZERO; d];
        let id = format!("{}/d{d}", T::NAME);
        let borep = || BoRep::new(borep_cfg(), zeros.clone(), zeros.clone()).unwrap();
        let slip = || Slip::new(SlipConfig::default(), zeros.clone(), zeros.clone()).unwrap();
        let stocbio =
            || StocBio::new(StocBioConfig::default(), zeros.clone(), zeros.clone()).unwrap();
        eprintln!(
            "matrix passes per iteration at {id}: borep {:.3}, slip {:.3}, stocbio {:.3}",
            passes(borep(), &q),
            passes(slip(), &q),
            passes(stocbio(), &q)
        );

        let mut g = c.benchmark_group("floor");
        let mats: Vec<&[T]> = MATRICES
            .iter()
            .map(|n| q.coefficients(n).unwrap())
            .collect();
        g.bench_function(BenchmarkId::from_parameter(&id), |b| {
            b.iter(|| {
                let mut s = T::ZERO;
                for m in &mats {
                    s += stream_sum(black_box(m));
                }
                black_box(s)
            });
        });
        g.finish();

        let mut g = c.benchmark_group("matvec");
        let a = q.coefficients("A").unwrap();
        let v: Vec<T> = (0..d)
            .map(|i| T::from_f64(1.0 / (1.0 + i as f64)))
            .collect();
        let mut out = vec![T::ZERO; d];
        g.bench_function(BenchmarkId::new(&id, "chain"), |b| {
            b.iter(|| {
                chain_matvec(black_box(a), black_box(&v), &mut out);
                black_box(out[0])
            });
        });
        g.bench_function(BenchmarkId::new(&id, "lanes"), |b| {
            b.iter(|| {
                kernels::matvec(black_box(a), black_box(&v), &mut out);
                black_box(out[0])
            });
        });
        g.finish();

        bench_solver(c, "borep", &id, borep(), q.clone());
        bench_solver(c, "slip", &id, slip(), q.clone());
        bench_solver(c, "stocbio", &id, stocbio(), q);
    }
}

fn benches(c: &mut Criterion) {
    bench_dtype::<f64>(c);
    bench_dtype::<f32>(c);
}

criterion_group! {
    name = kernels_bench;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(kernels_bench);
