#![allow(missing_docs)]
//! The lane-structured kernels against the memory-bandwidth floor (issue 16).
//!
//! On the dense quadratic family (`testing::Quadratic`, κ = 10, σ = 0.1),
//! d ∈ {100, 1000}, f64 and f32, one thread:
//!
//! * `iter/<solver>/<T>/d<d>`: one BO-REP, SLIP and StocBio iteration;
//!   `iter/<solver>-polar/…` the same run continued with the noise drawn by
//!   the polar method (`NoiseNormal::Polar`, decision 120) instead of
//!   Box–Muller; `iter/<solver>-sigma0/…` the same run continued without
//!   oracle noise (σ = 0), which separates the time of the Gaussian noise
//!   generation;
//! * `floor/<solver>/<T>/d<d>`: the memory-bandwidth floor of that
//!   iteration: the d × d matrices the solver's oracle calls read over 60
//!   iterations (recorded by a logging oracle on a copy: ∇ᵧg reads A and C,
//!   ∇ᵧf F and K, ∇ₓf H and K, both upper gradients jointly H, F and K,
//!   ∇²ᵧᵧg·v A, ∇²ₓᵧg·v C, ∇ᵧg with both products jointly A, A and C; the
//!   count per iteration checked against the one read off the solver code),
//!   each streamed once in the same order **from the iteration's own
//!   oracle** (the same allocation, in the same process, right before its
//!   iterations) and summed with independent lanes so that the adds never
//!   wait, divided by 60;
//! * `noise/normal/d<d>/draws`: d standard normal draws alone
//!   (Box–Muller), `noise/polar/d<d>/draws` d draws by the polar method, and
//!   `noise/add/<T>/d<d>/vector` the noise of one oracle output (a seeded
//!   stream, then d draws added);
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

use bilevel_core::solver::{
    BoRep, BoRepConfig, Slip, SlipConfig, Solver, StocBio, StocBioConfig, WarmStart,
};
use bilevel_core::testing::{polar_pair, NoiseNormal, Quadratic};
use bilevel_core::{kernels, random};
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

/// The scalar types of the bench, with the floor's streaming read.
trait Stream: Real {
    /// The sum of every entry of `m`: one streaming read, in eight
    /// independent vector accumulators (pulp's dispatch: AVX2 registers
    /// where the CPU has them, as the kernels' products), so that the adds
    /// never wait on each other and the read runs at the memory's speed.
    fn stream_sum(m: &[Self]) -> Self;
}

macro_rules! stream_impl {
    ($t:ty, $as_simd:ident, $splat:ident, $add:ident, $reduce:ident) => {
        impl Stream for $t {
            fn stream_sum(m: &[$t]) -> $t {
                struct Sum<'a>(&'a [$t]);
                impl pulp::WithSimd for Sum<'_> {
                    type Output = $t;
                    #[inline(always)]
                    fn with_simd<S: pulp::Simd>(self, simd: S) -> $t {
                        let (head, tail) = S::$as_simd(self.0);
                        let (blocks, rest) = pulp::as_arrays::<8, _>(head);
                        let mut acc = [simd.$splat(0.0); 8];
                        for b in blocks {
                            for k in 0..8 {
                                acc[k] = simd.$add(acc[k], b[k]);
                            }
                        }
                        for (a, &v) in acc.iter_mut().zip(rest) {
                            *a = simd.$add(*a, v);
                        }
                        let lanes: $t = acc.iter().map(|&a| simd.$reduce(a)).sum();
                        lanes + tail.iter().sum::<$t>()
                    }
                }
                pulp::Arch::new().dispatch(Sum(m))
            }
        }
    };
}
stream_impl!(f64, as_simd_f64s, splat_f64s, add_f64s, reduce_sum_f64s);
stream_impl!(f32, as_simd_f32s, splat_f32s, add_f32s, reduce_sum_f32s);

/// The recorded matrix reads (`log`, indices into `mats`) streamed once each
/// in order.
fn floor_read<T: Stream>(mats: &[&[T]], log: &[usize]) -> T {
    let mut s = T::ZERO;
    for &m in log {
        s += T::stream_sum(black_box(mats[m]));
    }
    s
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

/// The matrix passes per iteration of the three solvers in their bench
/// configurations, counted from the solver code (and checked against the
/// trace, so the floor cannot silently drift from what the iteration reads):
///
/// * BO-REP: ∇²ᵧᵧg·z (A), ∇ᵧf (F, K), ∇ₓf (H, K; another sample than ∇ᵧf,
///   so not joint), ∇²ₓᵧg·z (C) every iteration, and N ∇ᵧg (A, C) every I
///   iterations: 6 + 2N/I = 9 (N = 3, I = 2);
/// * SLIP: ∇ᵧg (A, C) and the same six: 8;
/// * StocBio: T ∇ᵧg (A, C), ∇ₓf and ∇ᵧf jointly (H, F, K once), Q HVPs (A)
///   and one ∇²ₓᵧg·v (C): 2T + Q + 4 = 34 (T = Q = 10).
fn expected_passes(name: &str) -> f64 {
    match name {
        "borep" => {
            let c = borep_cfg();
            6.0 + 2.0 * c.inner_steps as f64 / c.period as f64
        }
        "slip" => 8.0,
        "stocbio" => {
            let c = StocBioConfig::default();
            2.0 * c.inner_steps as f64 + c.neumann_steps as f64 + 4.0
        }
        _ => unreachable!("solver {name}"),
    }
}

/// One solver on one instance: the floor, the iteration and the iteration
/// without noise, all on the same oracle value (the same allocation of the
/// matrices, the same process), one after the other:
///
/// * `floor/<name>/<id>`: the iteration's matrix reads (recorded over
///   [`TRACE_STEPS`] iterations by [`reads`] on a copy, checked against
///   [`expected_passes`]) streamed in order from the iteration's own
///   oracle, divided by [`TRACE_STEPS`];
/// * `iter/<name>/<id>`: one iteration on that oracle;
/// * `iter/<name>-polar/<id>`: the same oracle with the polar method's
///   draws for its noise (`NoiseNormal::Polar`, decision 120; moved, not
///   copied), continuing the same run;
/// * `iter/<name>-sigma0/<id>`: the same oracle with σ = 0 (no Gaussian
///   draws; moved, not copied, so still the same matrices), continuing the
///   same run: the difference to `iter` is the noise generation's time.
fn bench_case<T, S>(
    c: &mut Criterion,
    name: &str,
    id: &str,
    make: impl Fn() -> S,
    q: Quadratic<T, Vec<T>>,
) where
    T: Stream,
    S: Solver<T, Trace<T>> + Solver<T, Quadratic<T, Vec<T>>>,
{
    let log = reads(make(), &q);
    let passes = log.len() as f64 / f64::from(TRACE_STEPS);
    assert!(
        (passes - expected_passes(name)).abs() < 1e-9,
        "{name} at {id}: the trace records {passes} matrix passes per iteration, the solver code {}",
        expected_passes(name)
    );
    eprintln!("{name} at {id}: {passes} matrix passes per iteration");
    let mut oracle = q;
    let mut solver = make();
    let mut rng = DefaultRng::seed_from_u64(1);
    Solver::<T, Quadratic<T, Vec<T>>>::init(&mut solver, &mut oracle, &mut rng).unwrap();

    let mut g = c.benchmark_group(format!("floor/{name}"));
    let mats: Vec<&[T]> = MATRICES
        .iter()
        .map(|n| oracle.coefficients(n).unwrap())
        .collect();
    g.bench_function(BenchmarkId::from_parameter(id), |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(floor_read(&mats, &log));
            }
            start.elapsed() / TRACE_STEPS
        });
    });
    g.finish();

    let mut step = |c: &mut Criterion, group: String, oracle: &mut Quadratic<T, Vec<T>>| {
        let mut g = c.benchmark_group(group);
        g.bench_function(BenchmarkId::from_parameter(id), |b| {
            b.iter(|| {
                solver.step(oracle, &mut rng).unwrap();
                black_box(solver.x()[0])
            });
        });
        g.finish();
    };
    step(c, format!("iter/{name}"), &mut oracle);
    let mut polar = oracle.with_noise_normal(NoiseNormal::Polar);
    step(c, format!("iter/{name}-polar"), &mut polar);
    let mut quiet = polar.with_sigma(T::ZERO);
    step(c, format!("iter/{name}-sigma0"), &mut quiet);
}

/// The oracle noise alone: `draws` standard normal draws
/// (`random::normal`, Box–Muller through `libm`, as the quadratic's noise),
/// and the noise of one oracle output of length d (`Quadratic`'s
/// `add_noise`: a seeded stream, then σ·N(0, 1) added to each entry).
fn bench_noise<T: Real>(c: &mut Criterion, d: usize) {
    let mut g = c.benchmark_group("noise");
    let mut rng = DefaultRng::seed_from_u64(3);
    g.bench_function(BenchmarkId::new(format!("normal/d{d}"), "draws"), |b| {
        b.iter(|| {
            let mut s = 0.0;
            for _ in 0..d {
                s += random::normal(&mut rng);
            }
            black_box(s)
        });
    });
    g.bench_function(BenchmarkId::new(format!("polar/d{d}"), "draws"), |b| {
        b.iter(|| {
            let mut s = 0.0;
            for _ in 0..d / 2 {
                let (u, v) = polar_pair(&mut rng);
                s += u + v;
            }
            black_box(s)
        });
    });
    let mut out = vec![T::ZERO; d];
    let sigma = T::from_f64(0.1);
    let mut seed = 0_u64;
    g.bench_function(
        BenchmarkId::new(format!("add/{}/d{d}", T::NAME), "vector"),
        |b| {
            b.iter(|| {
                seed += 1;
                let mut r = DefaultRng::seed_from_u64(random::mix64(seed ^ 0x9e37_79b9_7f4a_7c15));
                for o in &mut out {
                    *o += sigma * T::from_f64(random::normal(&mut r));
                }
                black_box(out[0])
            });
        },
    );
    g.finish();
}

fn bench_dtype<T: Stream>(c: &mut Criterion) {
    for d in [100_usize, 1000] {
        let instance = || Quadratic::<T, Vec<T>>::random(d, 10.0, 0.1, 7).unwrap();
        let zeros = vec![T::ZERO; d];
        let id = format!("{}/d{d}", T::NAME);
        let borep = || BoRep::new(borep_cfg(), zeros.clone(), zeros.clone()).unwrap();
        let slip = || Slip::new(SlipConfig::default(), zeros.clone(), zeros.clone()).unwrap();
        let stocbio =
            || StocBio::new(StocBioConfig::default(), zeros.clone(), zeros.clone()).unwrap();
        bench_noise::<T>(c, d);

        let q = instance();
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

        // One instance per solver, each used by its floor and its iterations.
        bench_case(c, "borep", &id, borep, q);
        bench_case(c, "slip", &id, slip, instance());
        bench_case(c, "stocbio", &id, stocbio, instance());
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
