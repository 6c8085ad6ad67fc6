//! The AVX2 row sums of `kernels::matvec` (decision 119: four `f32` or two
//! `f64` rows side by side in explicit registers) against the one-row loop
//! they replaced (decision 74's: `reduce`'s sixteen lanes per row, compiled
//! for AVX2 through pulp and left to LLVM's vectoriser; copied here), in one
//! process on one matrix, rounds alternating, with a streaming read of the
//! matrix (eight `ymm` accumulators, as the kernels bench's floor) beside
//! them. Checks that both give the same bits, then prints the minimum and
//! the median over the rounds of each (the minimum is the least disturbed
//! by other processes on a shared machine).
//!
//! ```text
//! cargo run --release -p bilevel-core --example rowsum_ab -- f32 1000 400
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use bilevel_core::kernels::{matvec, LANES};
use bilevel_core::random::uniform;
use bilevel_core::{DefaultRng, Real};
use rand_core::SeedableRng;

/// The one-row reduction of decision 74 (`kernels::reduce` before decision
/// 119): entry `i` into lane `i mod 16`, then the halving tree.
#[allow(clippy::inline_always)] // inlined into the AVX2 function, as in the kernels
#[inline(always)]
fn one_row<T: Real>(x: &[T], y: &[T]) -> T {
    let n = x.len().min(y.len());
    let (xc, xt) = x[..n].as_chunks::<LANES>();
    let (yc, yt) = y[..n].as_chunks::<LANES>();
    let mut acc = [T::ZERO; LANES];
    for (a, b) in xc.iter().zip(yc) {
        for k in 0..LANES {
            acc[k] += a[k] * b[k];
        }
    }
    for ((s, &a), &b) in acc.iter_mut().zip(xt).zip(yt) {
        *s += a * b;
    }
    let mut w = LANES / 2;
    while w > 0 {
        for k in 0..w {
            acc[k] += acc[k + w];
        }
        w /= 2;
    }
    acc[0]
}

/// `out ← M·v` by [`one_row`] per row, in an AVX2 function (pulp's V3, as
/// the kernels did).
fn old_matvec<T: Real>(simd: pulp::x86::V3, m: &[T], v: &[T], out: &mut [T]) {
    simd.vectorize(
        #[inline(always)]
        || {
            for (o, row) in out.iter_mut().zip(m.chunks_exact(v.len())) {
                *o = one_row(row, v);
            }
        },
    );
}

/// The sum of every entry of `m` in eight vector accumulators (one read).
fn stream<T: Real>(simd: pulp::x86::V3, m: &[T]) -> T {
    simd.vectorize(
        #[inline(always)]
        || {
            let (c, t) = m.as_chunks::<64>();
            let mut acc = [T::ZERO; 64];
            for b in c {
                for k in 0..64 {
                    acc[k] += b[k];
                }
            }
            acc.iter().copied().sum::<T>() + t.iter().copied().sum::<T>()
        },
    )
}

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn run<T: Real>(d: usize, rounds: usize) {
    let Some(simd) = pulp::x86::V3::try_new() else {
        eprintln!("this CPU has no AVX2: nothing to compare");
        return;
    };
    let mut rng = DefaultRng::seed_from_u64(7);
    let m: Vec<T> = (0..d * d)
        .map(|_| T::from_f64(uniform(&mut rng) - 0.5))
        .collect();
    let v: Vec<T> = (0..d)
        .map(|_| T::from_f64(uniform(&mut rng) - 0.5))
        .collect();
    let (mut a, mut b) = (vec![T::ZERO; d], vec![T::ZERO; d]);
    old_matvec(simd, &m, &v, &mut a);
    matvec(&m, &v, &mut b);
    assert!(
        a.iter()
            .zip(&b)
            .all(|(x, y)| x.to_f64().to_bits() == y.to_f64().to_bits()),
        "the two row sums differ in some bit"
    );
    let names = ["one row (old)", "row groups (new)", "stream read"];
    let mut t: [Vec<Duration>; 3] = Default::default();
    for _ in 0..rounds {
        t[0].push(time(|| old_matvec(simd, black_box(&m), &v, &mut a)));
        t[1].push(time(|| matvec(black_box(&m), &v, &mut b)));
        t[2].push(time(|| {
            black_box(stream(simd, black_box(&m)));
        }));
        black_box((a[0], b[0]));
    }
    for ts in &mut t {
        ts.sort();
    }
    for (n, ts) in names.iter().zip(&t) {
        println!(
            "{} d = {d} {n:>17}: min {:>8.1} µs, median {:>8.1} µs",
            T::NAME,
            ts[0].as_secs_f64() * 1e6,
            ts[ts.len() / 2].as_secs_f64() * 1e6
        );
    }
    println!(
        "{} d = {d} old / new: minima {:.3}, medians {:.3}; new / stream: minima {:.3}",
        T::NAME,
        t[0][0].as_secs_f64() / t[1][0].as_secs_f64(),
        t[0][rounds / 2].as_secs_f64() / t[1][rounds / 2].as_secs_f64(),
        t[1][0].as_secs_f64() / t[2][0].as_secs_f64()
    );
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let d: usize = a.get(2).map_or(1000, |s| s.parse().expect("d"));
    let rounds: usize = a.get(3).map_or(400, |s| s.parse().expect("rounds"));
    assert!(rounds > 0, "rounds must be positive");
    match a.get(1).map_or("f32", String::as_str) {
        "f32" => run::<f32>(d, rounds),
        "f64" => run::<f64>(d, rounds),
        other => panic!("unknown scalar {other} (f32, f64)"),
    }
}
