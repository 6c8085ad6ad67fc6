#![allow(missing_docs)]
//! The lane-structured kernels against the memory-bandwidth floor (issue 16).
//!
//! On the dense quadratic family (`testing::Quadratic`, κ = 10, σ = 0.1),
//! d ∈ {100, 1000}, f64 and f32, one thread:
//!
//! * `iter/<solver>/<T>/d<d>`: one BO-REP, SLIP and StocBio iteration;
//!   `iter/<solver>-sigma0/…` the same without oracle noise (σ = 0), which
//!   separates the time of the Gaussian noise generation;
//! * `floor/<solver>/<T>/d<d>`: the memory-bandwidth floor of that
//!   iteration: the d × d matrices the solver's oracle calls read over 60
//!   iterations (recorded by a logging oracle: ∇ᵧg reads A and C, ∇ᵧf F
//!   and K, ∇ₓf H and K, both upper gradients jointly H, F and K,
//!   ∇²ᵧᵧg·v A, ∇²ₓᵧg·v C, ∇ᵧg with both products jointly A, A and C),
//!   each streamed once in the
//!   same order and summed with independent lanes so that the adds never
//!   wait, divided by 60;
//! * `matvec/<T>/d<d>/{chain,lanes,lanes-portable,transposed}`: one d × d
//!   matrix–vector product with the single left-to-right chain the kernels
//!   used before issue 16 (copied here), with `kernels::matvec` (its AVX2
//!   build where the CPU has it), with `kernels::matvec` in the portable
//!   build (`kernels::set_wide(false)`, same bits), and `kernels::matvec_t`.
//!
//! The quadratic serves the joint hooks `try_grads_f` (one read of K for
//! both upper gradients) and `try_grad_hvp_jvp` (one read of C); the trace
//! logs the reads the served hooks make, so the floor counts the passes
//! actually made.
//!
//! `cargo bench -p bilevel-core --bench kernels`

use std::hint::black_box;
use std::time::{Duration, Instant};

use bilevel_core::kernels;
use bilevel_core::solver::{
    BoRep, BoRepConfig, Slip, SlipConfig, Solver, StocBio, StocBioConfig, WarmStart,
};
use bilevel_core::testing::Quadratic;
use bilevel_core::{
    CrossJvp, DefaultRng, Level, LowerGradY, LowerHvp, Oracle, Real, UpperGradX, UpperGradY,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rand_core::{Rng, SeedableRng};

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

/// The quadratic oracle, logging which matrices each call reads (indices
/// into [`MATRICES`]), in call order.
struct Trace<T: Real> {
    q: Quadratic<T, Vec<T>>,
    log: Vec<usize>,
}

impl<T: Real> Oracle<T> for Trace<T> {
    type Sample = u64;
    fn dim_x(&self) -> usize {
        self.q.dim_x()
    }
    fn dim_y(&self) -> usize {
        self.q.dim_y()
    }
    fn sample<R: Rng + ?Sized>(&mut self, l: Level, rng: &mut R) -> u64 {
        self.q.sample(l, rng)
    }
}

macro_rules! traced_grad {
    ($($tr:ident :: $m:ident => [$($mat:expr),*]),*) => {$(
        impl<T: Real> $tr<T> for Trace<T> {
            fn $m(&mut self, x: &[T], y: &[T], s: &u64, out: &mut [T]) {
                self.log.extend([$($mat),*]);
                self.q.$m(x, y, s, out);
            }
        }
    )*};
}
// A, B, C, F, H, K = 0..6 (the oracle's products, `testing::Quadratic`).
traced_grad!(
    UpperGradY::grad_y_f => [3, 5],
    LowerGradY::grad_y_g => [0, 2]
);

impl<T: Real> UpperGradX<T> for Trace<T> {
    fn grad_x_f(&mut self, x: &[T], y: &[T], s: &u64, out: &mut [T]) {
        self.log.extend([4, 5]);
        self.q.grad_x_f(x, y, s, out);
    }
    // The quadratic serves both upper gradients with one read of K.
    fn try_grads_f(&mut self, x: &[T], y: &[T], s: &u64, gx: &mut [T], gy: &mut [T]) -> bool {
        let served = self.q.try_grads_f(x, y, s, gx, gy);
        if served {
            self.log.extend([4, 3, 5]);
        }
        served
    }
}

impl<T: Real> LowerHvp<T> for Trace<T> {
    fn hvp_yy(&mut self, x: &[T], y: &[T], v: &[T], s: &u64, out: &mut [T]) {
        self.log.push(0);
        self.q.hvp_yy(x, y, v, s, out);
    }
    fn try_hvp_jvp(
        &mut self,
        x: &[T],
        y: &[T],
        v: &[T],
        s: &u64,
        out: (&mut [T], &mut [T]),
    ) -> bool {
        let served = self.q.try_hvp_jvp(x, y, v, s, out);
        assert!(!served, "the trace does not know this hook's reads");
        served
    }
    // ∇ᵧg, A·v and C·v with one read of C.
    fn try_grad_hvp_jvp(
        &mut self,
        x: &[T],
        y: &[T],
        v: &[T],
        s: &u64,
        out: (&mut [T], &mut [T], &mut [T]),
    ) -> bool {
        let served = self.q.try_grad_hvp_jvp(x, y, v, s, out);
        if served {
            self.log.extend([0, 0, 2]);
        }
        served
    }
}
impl<T: Real> CrossJvp<T> for Trace<T> {
    fn jvp_xy(&mut self, x: &[T], y: &[T], v: &[T], s: &u64, out: &mut [T]) {
        self.log.push(2);
        self.q.jvp_xy(x, y, v, s, out);
    }
}

/// Steps over which the matrix reads are recorded.
const TRACE_STEPS: u32 = 60;

/// The matrices `solver` reads in [`TRACE_STEPS`] iterations on `q`, in order.
fn reads<T: Real, S: Solver<T, Trace<T>>>(mut solver: S, q: &Quadratic<T, Vec<T>>) -> Vec<usize> {
    let mut o = Trace {
        q: q.clone(),
        log: Vec::new(),
    };
    let mut rng = DefaultRng::seed_from_u64(1);
    solver.init(&mut o, &mut rng).unwrap();
    o.log.clear();
    for _ in 0..TRACE_STEPS {
        solver.step(&mut o, &mut rng).unwrap();
    }
    o.log
}

/// The floor of one iteration: the recorded reads streamed in order, timed
/// over [`TRACE_STEPS`] iterations' worth and divided by it.
fn bench_floor<T: Real>(c: &mut Criterion, name: &str, id: &str, mats: &[&[T]], log: &[usize]) {
    let mut g = c.benchmark_group(format!("floor/{name}"));
    g.bench_function(BenchmarkId::from_parameter(id), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let mut s = T::ZERO;
                for &m in log {
                    s += stream_sum(black_box(mats[m]));
                }
                black_box(s);
            }
            start.elapsed() / TRACE_STEPS
        });
    });
    g.finish();
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
        let mats: Vec<&[T]> = MATRICES
            .iter()
            .map(|n| q.coefficients(n).unwrap())
            .collect();
        for (name, log) in [
            ("borep", reads(borep(), &q)),
            ("slip", reads(slip(), &q)),
            ("stocbio", reads(stocbio(), &q)),
        ] {
            eprintln!(
                "{name} at {id}: {:.3} matrix passes per iteration",
                log.len() as f64 / f64::from(TRACE_STEPS)
            );
            bench_floor(c, name, &id, &mats, &log);
        }

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
        // The same product in the portable (baseline x86_64) build of the
        // kernels: the bits are equal, only the vector width differs.
        kernels::set_wide(false);
        g.bench_function(BenchmarkId::new(&id, "lanes-portable"), |b| {
            b.iter(|| {
                kernels::matvec(black_box(a), black_box(&v), &mut out);
                black_box(out[0])
            });
        });
        kernels::set_wide(true);
        let mut out_t = vec![T::ZERO; d];
        g.bench_function(BenchmarkId::new(&id, "transposed"), |b| {
            b.iter(|| {
                kernels::matvec_t(black_box(a), black_box(&v), &mut out_t);
                black_box(out_t[0])
            });
        });
        g.finish();

        bench_solver(c, "borep", &id, borep(), q.clone());
        bench_solver(c, "slip", &id, slip(), q.clone());
        bench_solver(c, "stocbio", &id, stocbio(), q.clone());
        // The same iterations without the oracle noise (σ = 0 skips the
        // Box–Muller draws): the difference is the noise generation's time.
        let quiet = q.with_sigma(T::ZERO);
        bench_solver(c, "borep-sigma0", &id, borep(), quiet.clone());
        bench_solver(c, "slip-sigma0", &id, slip(), quiet.clone());
        bench_solver(c, "stocbio-sigma0", &id, stocbio(), quiet);
    }
}

fn benches(c: &mut Criterion) {
    eprintln!(
        "AVX2 build of the products: {}",
        if kernels::wide_active() {
            "active"
        } else {
            "not available"
        }
    );
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
