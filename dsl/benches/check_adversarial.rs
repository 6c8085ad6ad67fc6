//! Criterion benchmark of `bilevel check` (the full pipeline:
//! [`bilevel_dsl::summarize`]) on the adversarial inputs of issue 14 §4:
//! the small files that once took minutes or gigabytes and one generated
//! file of just under 1 MiB per worst shape (`tests/adversarial/inputs.rs`).
//! Goal: each under 2 s (and 512 MiB, measured with `/usr/bin/time -v`,
//! see BENCHMARKS.md).
//!
//! ```text
//! cargo bench -p bilevel-dsl --bench check_adversarial
//! ```

#[path = "../tests/adversarial/inputs.rs"]
mod inputs;

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

fn check_adversarial(c: &mut Criterion) {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut g = c.benchmark_group("check_adversarial");
    g.warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    for (name, src) in inputs::all() {
        g.bench_function(name, |b| {
            b.iter(|| black_box(bilevel_dsl::summarize(black_box(&src), base).is_ok()));
        });
    }
    g.finish();
}

criterion_group!(benches, check_adversarial);
criterion_main!(benches);
