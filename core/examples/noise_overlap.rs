//! What the quadratic's oracle noise costs inside an oracle call and alone.
//! One process, one instance (one allocation of the matrices), rounds
//! alternating:
//!
//! * `noisy`: `hvp_yy` with σ = 0.1 (the product, then its d draws);
//! * `apart`: `hvp_yy` with σ = 0 (the product alone), then d draws added to
//!   the output by this example;
//! * `product`: `hvp_yy` with σ = 0;
//! * `draws`: d draws added to a vector.
//!
//! Prints the minimum and the median over the rounds of each (the minimum
//! is the least disturbed by other processes on a shared machine). At
//! d = 1000 one f64 matrix (8 MB) stays in this machine's L3 between rounds;
//! at d = 2000 (32 MB) it streams from memory. Decision 115 used it to time
//! a block-wise noise (draws right after their rows), rejected.
//!
//! ```text
//! cargo run --release -p bilevel-core --example noise_overlap -- f64 1000 400
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use bilevel_core::random::{mix64, normal};
use bilevel_core::testing::Quadratic;
use bilevel_core::{DefaultRng, LowerHvp, Real};
use rand_core::SeedableRng;

fn draws<T: Real>(out: &mut [T], seed: u64) {
    let mut r = DefaultRng::seed_from_u64(mix64(seed));
    let sigma = T::from_f64(0.1);
    for o in out {
        *o += sigma * T::from_f64(normal(&mut r));
    }
}

fn time(f: impl FnOnce()) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

fn run<T: Real>(d: usize, rounds: usize) {
    let mut q = Quadratic::<T, Vec<T>>::random(d, 10.0, 0.1, 7).unwrap();
    let (x, v) = (vec![T::ZERO; d], vec![T::from_f64(0.5); d]);
    let mut out = vec![T::ZERO; d];
    let names = ["noisy", "apart", "product", "draws"];
    let mut t: [Vec<Duration>; 4] = Default::default();
    for r in 0..rounds as u64 {
        q = q.with_sigma(T::from_f64(0.1));
        t[0].push(time(|| q.hvp_yy(&x, &x, &v, &r, &mut out)));
        q = q.with_sigma(T::ZERO);
        t[1].push(time(|| {
            q.hvp_yy(&x, &x, &v, &r, &mut out);
            draws(&mut out, r);
        }));
        t[2].push(time(|| q.hvp_yy(&x, &x, &v, &r, &mut out)));
        t[3].push(time(|| draws(&mut out, r)));
        black_box(out[0]);
    }
    for (n, ts) in names.iter().zip(&mut t) {
        ts.sort();
        println!(
            "{} d = {d} {n:>8}: min {:>8.1} µs, median {:>8.1} µs",
            T::NAME,
            ts[0].as_secs_f64() * 1e6,
            ts[ts.len() / 2].as_secs_f64() * 1e6
        );
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let d: usize = a.get(2).map_or(1000, |s| s.parse().expect("d"));
    let rounds: usize = a.get(3).map_or(400, |s| s.parse().expect("rounds"));
    match a.get(1).map_or("f64", String::as_str) {
        "f32" => run::<f32>(d, rounds),
        _ => run::<f64>(d, rounds),
    }
}
