//! A fixed number of BO-REP, SLIP or StocBio iterations on a d-dimensional
//! dense quadratic (σ = 0.1), for instruction counts under callgrind: the
//! difference of two runs with different step counts is the exact count of
//! those iterations, independent of the machine's load. The instance has the
//! shapes of `benches/kernels.rs`'s (`Quadratic::random`) but cheap entries
//! (A = I + a small symmetric perturbation, C and K small, F = I, H = 2I):
//! an iteration executes the same instructions whatever the entries, and
//! `Quadratic::random`'s eigendecompositions at d = 1000 would take minutes
//! under valgrind.
//!
//! ```text
//! cargo build --release -p bilevel-core --example kernels_profile
//! valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/examples/kernels_profile borep f64 1000 20
//! callgrind_annotate --inclusive=yes cg.out | head -40
//! ```
//! Arguments: solver (`borep`, `slip`, `stocbio`), scalar (`f64`, `f32`),
//! d, the number of iterations after `init`, and optionally the noise's
//! normal generator (`boxmuller`, the default, or `polar`; decision 120).

use std::hint::black_box;

use bilevel_core::random::uniform;
use bilevel_core::solver::{
    BoRep, BoRepConfig, Slip, SlipConfig, Solver, StocBio, StocBioConfig, WarmStart,
};
use bilevel_core::testing::{quadratic_len, NoiseNormal, Quadratic, QuadraticParts};
use bilevel_core::{DefaultRng, Real};
use rand_core::SeedableRng;

fn steps<T: Real, S: Solver<T, Quadratic<T, Vec<T>>>>(mut s: S, q: Quadratic<T, Vec<T>>, n: u64) {
    let mut q = q;
    let mut rng = DefaultRng::seed_from_u64(1);
    s.init(&mut q, &mut rng).expect("init");
    for _ in 0..n {
        s.step(&mut q, &mut rng).expect("step");
    }
    black_box(s.x()[0]);
}

fn run<T: Real>(solver: &str, d: usize, n: u64, normal: NoiseNormal) {
    let q = instance::<T>(d).with_noise_normal(normal);
    let z = vec![T::ZERO; d];
    match solver {
        "borep" => {
            let cfg = BoRepConfig {
                warm_start: WarmStart::None,
                ..BoRepConfig::default()
            };
            steps(BoRep::new(cfg, z.clone(), z).expect("solver"), q, n);
        }
        "slip" => steps(
            Slip::new(SlipConfig::default(), z.clone(), z).expect("solver"),
            q,
            n,
        ),
        "stocbio" => steps(
            StocBio::new(StocBioConfig::default(), z.clone(), z).expect("solver"),
            q,
            n,
        ),
        other => panic!("unknown solver {other} (borep, slip, stocbio)"),
    }
}

fn instance<T: Real>(d: usize) -> Quadratic<T, Vec<T>> {
    let mut rng = DefaultRng::seed_from_u64(7);
    let mut rand = |s: f64| -> Vec<f64> {
        (0..d * d)
            .map(|_| s * (uniform(&mut rng) - 0.5) / (d as f64))
            .collect()
    };
    let mut a = rand(1.0);
    for i in 0..d {
        for j in 0..i {
            a[i * d + j] = a[j * d + i];
        }
        a[i * d + i] += 1.0;
    }
    let (c, k) = (rand(0.2), rand(0.1));
    let eye = |s: f64| -> Vec<f64> {
        (0..d * d)
            .map(|i| if i % (d + 1) == 0 { s } else { 0.0 })
            .collect()
    };
    let (f, h, lin) = (eye(1.0), eye(2.0), vec![0.5; d]);
    let parts = QuadraticParts {
        a: &a,
        b: &f,
        c: &c,
        f: &f,
        h: &h,
        k: &k,
        a_lin: &lin,
        b_lin: &lin,
        f_lin: &lin,
        h_lin: &lin,
        f_const: 0.0,
    };
    Quadratic::from_parts(d, d, &parts, 0.1, vec![T::ZERO; quadratic_len(d, d)]).expect("instance")
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let solver = a.get(1).map_or("borep", String::as_str);
    let d: usize = a.get(3).map_or(1000, |s| s.parse().expect("d"));
    let n: u64 = a.get(4).map_or(20, |s| s.parse().expect("steps"));
    let normal = match a.get(5).map_or("boxmuller", String::as_str) {
        "boxmuller" => NoiseNormal::BoxMuller,
        "polar" => NoiseNormal::Polar,
        other => panic!("unknown normal generator {other} (boxmuller, polar)"),
    };
    match a.get(2).map_or("f64", String::as_str) {
        "f32" => run::<f32>(solver, d, n, normal),
        "f64" => run::<f64>(solver, d, n, normal),
        other => panic!("unknown scalar {other} (f64, f32)"),
    }
}
