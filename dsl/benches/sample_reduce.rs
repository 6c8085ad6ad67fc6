//! Criterion benchmark of one compiled-oracle call on benchopt's simulated
//! quadratic (`examples/specs/benchopt_quadratic.bilevel`: finite sums of
//! 1,024 samples, d = 100, batch 64): each call runs the sample
//! reduction's body once per sample of the minibatch, indexing rows of
//! 1,024 × 100 parameter tables, so the cost of the reduction itself
//! (`dsl/src/tape/sample.rs`: copying the tables the body reads, zeroing
//! their adjoints) shows here. The oracles are the ones SOBA calls per
//! iteration. Instruction counts of the same calls:
//! `examples/sample_insns.rs`.
//!
//! ```text
//! cargo bench -p bilevel-dsl --bench sample_reduce
//! ```

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use bilevel_core::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, Oracle, UpperGradX, UpperGradY};
use bilevel_dsl::Compiled;
use criterion::{criterion_group, criterion_main, Criterion};

fn oracles(c: &mut Criterion) {
    let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs");
    let src = std::fs::read_to_string(specs.join("benchopt_quadratic.bilevel")).expect("spec");
    let mut dsl = match Compiled::from_source(&src, &specs) {
        Ok(c) => c,
        Err(e) => panic!("{}", bilevel_dsl::render(&e, "benchopt_quadratic", &src)),
    };
    let d = 100;
    let x: Vec<f64> = (0..d).map(|i| (i as f64 * 0.37).sin()).collect();
    let y: Vec<f64> = (0..d).map(|i| (i as f64 * 0.11).cos()).collect();
    let v: Vec<f64> = (0..d).map(|i| (i as f64 * 0.53).sin()).collect();
    let mut out = vec![0.0; d];
    let mut rng = <bilevel_core::DefaultRng as rand_core::SeedableRng>::seed_from_u64(1);
    let (lo, up) = (
        dsl.sample(Level::Lower, &mut rng),
        dsl.sample(Level::Upper, &mut rng),
    );
    let mut g = c.benchmark_group("benchopt_quadratic_b64");
    g.warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    g.bench_function("grad_y_g", |b| {
        b.iter(|| dsl.grad_y_g(black_box(&x), black_box(&y), &lo, &mut out));
    });
    g.bench_function("hvp_yy", |b| {
        b.iter(|| dsl.hvp_yy(black_box(&x), black_box(&y), black_box(&v), &lo, &mut out));
    });
    g.bench_function("jvp_xy", |b| {
        b.iter(|| dsl.jvp_xy(black_box(&x), black_box(&y), black_box(&v), &lo, &mut out));
    });
    g.bench_function("grad_x_f", |b| {
        b.iter(|| dsl.grad_x_f(black_box(&x), black_box(&y), &up, &mut out));
    });
    g.bench_function("grad_y_f", |b| {
        b.iter(|| dsl.grad_y_f(black_box(&x), black_box(&y), &up, &mut out));
    });
    g.finish();
}

criterion_group!(benches, oracles);
criterion_main!(benches);
