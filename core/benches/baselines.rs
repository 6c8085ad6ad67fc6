//! Time per iteration of every baseline on the d = 100, κ = 10, σ = 0.1
//! quadratic, with the tuned settings of `testing::tuned::D100` (the
//! settings of the `baselines_table` example and `BASELINES-FIGURES.md`).
//! SABA and SRBA run on the finite-sum version of the same instance (n = 1024;
//! SRBA with the step 0.5 of its convergence test in `core/tests`).
//!
//! ```text
//! cargo bench -p bilevel-core --bench baselines
//! ```

use std::hint::black_box;

use bilevel_core::registry::SOLVERS;
use bilevel_core::solver::{AnySolver, Saba, SabaConfig, Solver, Srba, SrbaConfig};
use bilevel_core::testing::{tuned, FiniteQuadratic, Quadratic};
use bilevel_core::DefaultRng;
use criterion::{criterion_group, criterion_main, Criterion};
use rand_core::SeedableRng;

fn per_iteration(c: &mut Criterion) {
    let mut group = c.benchmark_group("iteration_d100");
    for info in SOLVERS {
        let Ok(mut s) = AnySolver::<f64, Vec<f64>, Vec<f64>>::build(
            info.name,
            tuned::overrides(info.name),
            vec![0.0; 100],
            vec![0.0; 100],
        ) else {
            continue;
        };
        let mut o = Quadratic::<f64, Vec<f64>>::random(100, 10.0, 0.1, 0).expect("instance");
        let mut rng = DefaultRng::seed_from_u64(0);
        s.init(&mut o, &mut rng).expect("init");
        group.bench_function(info.name, |b| {
            b.iter(|| s.step(black_box(&mut o), &mut rng).expect("step"));
        });
    }
    let n = 1024;
    let q = Quadratic::<f64, Vec<f64>>::random(100, 10.0, 0.0, 0).expect("instance");
    let mut o = FiniteQuadratic::new(q, n, 0.1, 0);
    let mem = Saba::<f64, Vec<f64>, Vec<f64>, Vec<f64>>::memory_needed(n, n, 100, 100);
    let mut s = Saba::new(
        SabaConfig::default(),
        vec![0.0; 100],
        vec![0.0; 100],
        vec![0.0; mem],
        n,
        n,
    )
    .expect("saba");
    let mut rng = DefaultRng::seed_from_u64(0);
    s.init(&mut o, &mut rng).expect("init");
    group.bench_function("saba", |b| {
        b.iter(|| s.step(black_box(&mut o), &mut rng).expect("step"));
    });
    let q = Quadratic::<f64, Vec<f64>>::random(100, 10.0, 0.0, 0).expect("instance");
    let mut o = FiniteQuadratic::new(q, n, 0.1, 0);
    let cfg = SrbaConfig {
        step_size: 0.5,
        ..SrbaConfig::default()
    };
    let mut s = Srba::new(cfg, vec![0.0; 100], vec![0.0; 100]).expect("srba");
    let mut rng = DefaultRng::seed_from_u64(0);
    s.init(&mut o, &mut rng).expect("init");
    group.bench_function("srba", |b| {
        b.iter(|| s.step(black_box(&mut o), &mut rng).expect("step"));
    });
    group.finish();
}

criterion_group!(benches, per_iteration);
criterion_main!(benches);
