//! Throughput of the RNN backend: forward + backward (one gradient of the
//! mean cross-entropy) and one exact Hessian-vector product, for the
//! default model (embedding 50, hidden 256, batch 32) and a larger one
//! (hidden 1024), with 1 and 2 threads. Sequences have lengths 20..=60
//! (mean 40 tokens), f32. `cargo bench -p bilevel-runner --bench rnn`.

use std::hint::black_box;
use std::time::Duration;

use bilevel_dsl::ModelBackend;
use bilevel_runner::rnn::{OwnedBatch, RnnConfig, RnnModel};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const BATCH: usize = 32;
const VOCAB: usize = 5000;

/// The benchmark batch: deterministic token ids, lengths 20..=60.
fn batch() -> OwnedBatch {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 33) as usize
    };
    let seqs: Vec<Vec<u32>> = (0..BATCH)
        .map(|_| {
            let len = 20 + next() % 41;
            (0..len).map(|_| (next() % VOCAB) as u32).collect()
        })
        .collect();
    OwnedBatch::from_sequences(&seqs, usize::MAX)
}

fn bench(c: &mut Criterion) {
    let b = batch();
    let labels: Vec<u32> = (0..BATCH as u32).map(|i| i % 2).collect();
    for hidden in [256, 1024] {
        let cfg = RnnConfig {
            hidden,
            ..RnnConfig::new(VOCAB, 2)
        };
        let model = RnnModel::<f32>::new(cfg, None, 1).expect("valid config");
        let n = model.num_params();
        let mut theta = vec![0.0; n];
        model.init_params(2, &mut theta);
        let v: Vec<f32> = (0..n).map(|i| ((i % 7) as f32 - 3.0) * 1e-2).collect();
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("thread pool");
            let mut g = c.benchmark_group(format!("rnn_h{hidden}_t{threads}"));
            g.sample_size(10)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(4));
            g.throughput(Throughput::Elements(b.num_tokens() as u64));
            let mut grad = vec![0.0; n];
            g.bench_function("forward_backward", |bch| {
                bch.iter(|| {
                    pool.install(|| model.softmax_xent_grad(&theta, &b.view(), &labels, &mut grad));
                    black_box(&grad);
                });
            });
            let mut hv = vec![0.0; n];
            // The Hessian-vector product alone, then fused with the gradient.
            g.bench_function("hvp", |bch| {
                bch.iter(|| {
                    pool.install(|| {
                        model.softmax_xent_hvp(&theta, &b.view(), &labels, &v, None, &mut hv)
                    });
                    black_box(&hv);
                });
            });
            g.bench_function("hvp_grad", |bch| {
                bch.iter(|| {
                    pool.install(|| {
                        let grad = Some(&mut grad[..]);
                        model.softmax_xent_hvp(&theta, &b.view(), &labels, &v, grad, &mut hv)
                    });
                    black_box((&hv, &grad));
                });
            });
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
