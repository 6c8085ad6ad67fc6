//! The RNN through a spec: one oracle call of the compiled HPO spec
//! (`examples/specs/rnn/hpo.bilevel`, the whole classifier as the lower
//! variable, f32 model behind the f64 oracle) next to the backend's own
//! fused loss gradient and Hessian-vector product on the same minibatch.
//! Ratios of interest: spec gradient / backend gradient (the price of the
//! generic path) and spec HVP / spec gradient.

use std::path::Path;

use bilevel_core::oracle::{Level, LowerGradY, LowerHvp, Oracle};
use bilevel_core::DefaultRng;
use bilevel_dsl::Compiled;
use bilevel_dsl::SourceBatch;
use bilevel_dsl::TokenBatch;
use bilevel_runner::rnn::{RnnModel, RnnRegistry};
use criterion::{criterion_group, criterion_main, Criterion};
use rand_core::SeedableRng;

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs/rnn");
    let src = std::fs::read_to_string(dir.join("hpo.bilevel")).expect("spec");
    let mut comp = Compiled::from_source_with(&src, &dir, &RnnRegistry).expect("compiles");
    let mut rng = DefaultRng::seed_from_u64(1);
    let s = comp.sample(Level::Lower, &mut rng);
    let (x, y) = (comp.initial_x(), comp.initial_y());
    let v: Vec<f64> = (0..y.len())
        .map(|k| ((k % 7) as f64 - 3.0) * 0.01)
        .collect();
    let mut out = vec![0.0; y.len()];

    // The same minibatch for the backend: tokens and labels of the rows drawn.
    let p = comp.program();
    let SourceBatch::Rows(rows) = &s.sources[0] else {
        panic!("train is the lower source")
    };
    let t = p.loaded.tables[0].as_ref().expect("table");
    let mut tokens = Vec::new();
    let mut offsets = vec![0];
    for &r in rows {
        tokens.extend_from_slice(t.text(r));
        offsets.push(tokens.len());
    }
    let labels: Vec<u32> = rows.iter().map(|&r| t.labels[r] as u32).collect();
    let model = &p.models.0[0];
    let cfg = bilevel_runner::rnn::RnnConfig {
        vocab: model.vocab_size(),
        embed: 50,
        hidden: 64,
        layers: 2,
        classes: 2,
        ..bilevel_runner::rnn::RnnConfig::new(model.vocab_size(), 2)
    };
    let direct = RnnModel::<f32>::new(cfg, None, 1).expect("model");
    let theta: Vec<f32> = y.iter().map(|&w| w as f32).collect();
    let vf: Vec<f32> = v.iter().map(|&w| w as f32).collect();
    let batch = TokenBatch {
        tokens: &tokens,
        offsets: &offsets,
    };
    let (mut g32, mut h32) = (vec![0.0f32; theta.len()], vec![0.0f32; theta.len()]);

    // The measuring loop runs inside a pool of that many threads, as the
    // runner's jobs do.
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        let mut grp = c.benchmark_group(format!("spec_rnn_hpo_batch32_t{threads}"));
        grp.sample_size(20);
        grp.bench_function("spec_grad_y_g", |b| {
            pool.install(|| b.iter(|| comp.grad_y_g(&x, &y, &s, &mut out)));
        });
        grp.bench_function("spec_hvp_yy", |b| {
            pool.install(|| b.iter(|| comp.hvp_yy(&x, &y, &v, &s, &mut out)));
        });
        grp.bench_function("backend_grad", |b| {
            pool.install(|| b.iter(|| direct.softmax_xent_grad(&theta, &batch, &labels, &mut g32)));
        });
        grp.bench_function("backend_hvp", |b| {
            b.iter(|| {
                pool.install(|| {
                    direct.softmax_xent_hvp(&theta, &batch, &labels, &vf, None, &mut h32)
                })
            });
        });
        grp.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
