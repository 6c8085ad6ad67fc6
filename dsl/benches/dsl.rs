//! Criterion benchmarks: compiled-oracle time of all six oracles (∇ₓf, ∇ᵧf,
//! ∇ᵧg, ∇ₓg, ∇²ᵧᵧg·v, ∇²ₓᵧg·v) on the d = 100 and d = 1000 quadratic specs
//! against the hand-written oracle of the core
//! (`bilevel_core::testing::Quadratic`, noise off), and parse + check time of
//! every example spec. Instruction counts of the same calls:
//! `examples/oracle_insns.rs`.
//!
//! ```text
//! cargo bench -p bilevel-dsl --bench dsl
//! ```

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use bilevel_core::oracle::{
    CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, Oracle, UpperGradX, UpperGradY,
};
use bilevel_core::testing::Quadratic;
use bilevel_dsl::{check_source, Compiled};
use criterion::{criterion_group, criterion_main, Criterion};

fn specs() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs")
}

fn oracles(c: &mut Criterion) {
    for d in [100usize, 1000] {
        let src =
            std::fs::read_to_string(specs().join(format!("quadratic_d{d}.bilevel"))).expect("spec");
        let mut dsl = match Compiled::from_source(&src, &specs()) {
            Ok(c) => c,
            Err(e) => panic!("{}", bilevel_dsl::render(&e, "quadratic", &src)),
        };
        let mut hand = Quadratic::<f64, Vec<f64>>::random(d, 10.0, 0.0, 1).expect("instance");
        let x: Vec<f64> = (0..d).map(|i| (i as f64 * 0.37).sin()).collect();
        let y: Vec<f64> = (0..d).map(|i| (i as f64 * 0.11).cos()).collect();
        let v: Vec<f64> = (0..d).map(|i| (i as f64 * 0.53).sin()).collect();
        let mut out = vec![0.0; d];
        let mut rng = <bilevel_core::DefaultRng as rand_core::SeedableRng>::seed_from_u64(1);
        let (sd_lo, sd_up) = (
            dsl.sample(Level::Lower, &mut rng),
            dsl.sample(Level::Upper, &mut rng),
        );
        let sh = hand.sample(Level::Lower, &mut rng);
        let mut g = c.benchmark_group(format!("oracle_d{d}"));
        g.warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .sample_size(20);
        g.bench_function("grad_y_g/compiled", |b| {
            b.iter(|| dsl.grad_y_g(black_box(&x), black_box(&y), &sd_lo, &mut out));
        });
        g.bench_function("grad_y_g/hand", |b| {
            b.iter(|| hand.grad_y_g(black_box(&x), black_box(&y), &sh, &mut out));
        });
        g.bench_function("grad_x_g/compiled", |b| {
            b.iter(|| dsl.grad_x_g(black_box(&x), black_box(&y), &sd_lo, &mut out));
        });
        g.bench_function("grad_x_g/hand", |b| {
            b.iter(|| hand.grad_x_g(black_box(&x), black_box(&y), &sh, &mut out));
        });
        g.bench_function("grad_x_f/compiled", |b| {
            b.iter(|| dsl.grad_x_f(black_box(&x), black_box(&y), &sd_up, &mut out));
        });
        g.bench_function("grad_x_f/hand", |b| {
            b.iter(|| hand.grad_x_f(black_box(&x), black_box(&y), &sh, &mut out));
        });
        g.bench_function("grad_y_f/compiled", |b| {
            b.iter(|| dsl.grad_y_f(black_box(&x), black_box(&y), &sd_up, &mut out));
        });
        g.bench_function("grad_y_f/hand", |b| {
            b.iter(|| hand.grad_y_f(black_box(&x), black_box(&y), &sh, &mut out));
        });
        g.bench_function("hvp_yy/compiled", |b| {
            b.iter(|| {
                dsl.hvp_yy(
                    black_box(&x),
                    black_box(&y),
                    black_box(&v),
                    &sd_lo,
                    &mut out,
                );
            });
        });
        g.bench_function("hvp_yy/hand", |b| {
            b.iter(|| hand.hvp_yy(black_box(&x), black_box(&y), black_box(&v), &sh, &mut out));
        });
        g.bench_function("jvp_xy/compiled", |b| {
            b.iter(|| {
                dsl.jvp_xy(
                    black_box(&x),
                    black_box(&y),
                    black_box(&v),
                    &sd_lo,
                    &mut out,
                );
            });
        });
        g.bench_function("jvp_xy/hand", |b| {
            b.iter(|| hand.jvp_xy(black_box(&x), black_box(&y), black_box(&v), &sh, &mut out));
        });
        g.finish();
    }
}

fn parse_check(c: &mut Criterion) {
    let mut names: Vec<_> = std::fs::read_dir(specs())
        .expect("specs")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "bilevel"))
        .collect();
    names.sort();
    let mut g = c.benchmark_group("parse_check");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20);
    for p in names {
        let src = std::fs::read_to_string(&p).expect("spec");
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        g.bench_function(name, |b| b.iter(|| check_source(black_box(&src)).is_ok()));
    }
    g.finish();
}

criterion_group!(benches, oracles, parse_check);
criterion_main!(benches);
