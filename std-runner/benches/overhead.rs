//! The runner's overhead per iteration: the toy spec's run with the run
//! folder machinery (trace lines with upper and lower loss on the whole data at
//! the spec's cadence, progress log lines, summary) against the bare core
//! loop on the same compiled oracle, solver and seed, measured side by side,
//! each at the spec's iteration count and at twice it. The difference of the
//! two lengths cancels the fixed cost of a run (creating the folder, the
//! fsyncs of the trace and the summary), so the per-iteration overhead is
//! ((observed₂ − observed₁) − (bare₂ − bare₁)) / (bare₂ − bare₁).
//!
//! `cargo bench -p bilevel-runner --bench overhead`
#![allow(missing_docs)]

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bilevel_core::registry::ParamValue;
use bilevel_core::solver::AnySolver;
use bilevel_core::{run, Budget, Counted, DefaultRng, Level, LowerValue, UpperValue};
use bilevel_dsl::check::Setting;
use bilevel_dsl::compiled::Compiled;
use bilevel_runner::session::{observe_run, Evaluate, ProgressMode, SessionOptions};
use criterion::{criterion_group, criterion_main, Criterion};
use rand_core::SeedableRng;

struct Losses(Compiled);

impl Evaluate for Losses {
    fn metric_names(&self) -> Vec<String> {
        vec!["upper_loss".into(), "lower_loss".into()]
    }
    fn evaluate(&mut self, x: &[f64], y: &[f64]) -> Vec<f64> {
        let up = self.0.population(Level::Upper);
        let lo = self.0.population(Level::Lower);
        vec![self.0.f_value(x, y, &up), self.0.g_value(x, y, &lo)]
    }
}

fn solver(c: &Compiled) -> AnySolver<f64, Vec<f64>, Vec<f64>> {
    let algo = c
        .program()
        .spec
        .algorithm
        .as_ref()
        .expect("the toy spec names an algorithm");
    let overrides: Vec<(&str, ParamValue<'_>)> = algo
        .settings
        .iter()
        .map(|(k, v)| {
            let v = match v {
                Setting::Real(r) => ParamValue::Real(*r),
                Setting::Int(i) => ParamValue::Int(*i),
                Setting::Bool(b) => ParamValue::Bool(*b),
                Setting::Str(s) => ParamValue::Str(s),
            };
            (k.as_str(), v)
        })
        .collect();
    AnySolver::build(algo.info.name, &overrides, c.initial_x(), c.initial_y())
        .expect("valid settings")
}

fn benches(cr: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs");
    let src = std::fs::read_to_string(dir.join("toy_quadratic.bilevel")).expect("toy spec");
    let compiled = Compiled::from_source(&src, &dir).expect("the toy spec checks");
    let run_spec = &compiled.program().spec.run;
    let iters = run_spec.iterations.expect("the toy spec sets iterations");
    let every = run_spec.eval_every.expect("the toy spec sets eval_every");
    let out = tempfile::tempdir().expect("temporary folder");
    let mut g = cr.benchmark_group("toy_spec_run");
    for iters in [iters, 2 * iters] {
        g.bench_function(format!("bare_core_loop/{iters}"), |b| {
            b.iter(|| {
                let mut s = solver(&compiled);
                let mut o = Counted::new(compiled.clone());
                let mut rng = DefaultRng::seed_from_u64(42);
                run(&mut s, &mut o, &mut rng, &Budget::iters(iters), &mut ()).expect("runs")
            });
        });
        g.bench_function(format!("observed_run/{iters}"), |b| {
            b.iter(|| {
                let mut s = solver(&compiled);
                let mut o = Counted::new(compiled.clone());
                let mut rng = DefaultRng::seed_from_u64(42);
                let opts = SessionOptions {
                    out: out.path().to_path_buf(),
                    eval_every: every,
                    budget: Budget::iters(iters),
                    progress: ProgressMode::Log,
                    stop: Arc::new(AtomicBool::new(false)),
                    plots: false,
                };
                observe_run(
                    &mut s,
                    &mut o,
                    Losses(compiled.clone()),
                    &mut rng,
                    42,
                    &opts,
                )
                .expect("runs")
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = overhead;
    config = Criterion::default().sample_size(15).measurement_time(Duration::from_secs(6));
    targets = benches
}
criterion_main!(overhead);
