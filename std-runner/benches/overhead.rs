//! The runner's overhead per iteration: the toy spec's run with the run
//! folder machinery (trace lines with upper and lower loss on the whole data at
//! the spec's cadence, progress log lines, summary) against the bare core
//! loop on the same compiled oracle, solver and seed.
//!
//! Two ways to measure:
//!
//! * wall time, with criterion: `cargo bench -p bilevel-runner --bench overhead`,
//!   each variant at the spec's iteration count and at twice it (the
//!   difference of the two lengths cancels the fixed cost of a run: creating
//!   the folder, the fsyncs of the trace and the summary);
//! * instructions, one variant per process, for a counter such as callgrind:
//!   `overhead --one-shot MODE ITERS` with MODE one of `setup` (read and
//!   compile the spec, build the solver: the part every variant shares),
//!   `bare` (setup, then the core loop), `observed` (setup, then the
//!   runner's observed session) and `command` (`bilevel run --no-plots` in
//!   process: the library call behind the command, with config.json and
//!   the `expect` checks). `tools/runner-overhead.sh` runs them under
//!   callgrind and prints the overhead.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use bilevel_core::registry::ParamValue;
use bilevel_core::solver::AnySolver;
use bilevel_core::{run, Budget, Counted, DefaultRng, Level, LowerValue, UpperValue};
use bilevel_dsl::Batch;
use bilevel_dsl::Compiled;
use bilevel_dsl::Setting;
use bilevel_runner::session::{observe_run, Evaluate, ProgressMode, SessionOptions};
use bilevel_runner::spec::{run_spec, RunConfig};
use criterion::Criterion;
use rand_core::SeedableRng;

/// The runner's metrics for spec runs: upper and lower loss on the whole data,
/// the whole-data batches built once per run (as `bilevel run` does).
struct Losses {
    c: Compiled,
    upper: Batch,
    lower: Batch,
}

impl Losses {
    fn new(c: Compiled) -> Self {
        let upper = c.population(Level::Upper);
        let lower = c.population(Level::Lower);
        Losses { c, upper, lower }
    }
}

impl Evaluate for Losses {
    fn metric_names(&self) -> Vec<String> {
        vec!["upper_loss".into(), "lower_loss".into()]
    }
    fn evaluate(&mut self, x: &[f64], y: &[f64]) -> Vec<f64> {
        vec![
            self.c.f_value(x, y, &self.upper),
            self.c.g_value(x, y, &self.lower),
        ]
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

fn spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs/toy_quadratic.bilevel")
}

fn compile() -> Compiled {
    let path = spec_path();
    let src = std::fs::read_to_string(&path).expect("toy spec");
    Compiled::from_source(&src, path.parent().expect("spec folder")).expect("the toy spec checks")
}

fn bare(compiled: &Compiled, iters: u64) -> u64 {
    let mut s = solver(compiled);
    let mut o = Counted::new(compiled.clone());
    let mut rng = DefaultRng::seed_from_u64(42);
    run(&mut s, &mut o, &mut rng, &Budget::iters(iters), &mut ())
        .expect("runs")
        .iters
}

fn observed(compiled: &Compiled, iters: u64, every: u64, out: &Path) -> u64 {
    let mut s = solver(compiled);
    let mut o = Counted::new(compiled.clone());
    let mut rng = DefaultRng::seed_from_u64(42);
    let opts = SessionOptions {
        out: out.to_path_buf(),
        eval_every: every,
        budget: Budget::iters(iters),
        progress: ProgressMode::Log,
        stop: Arc::new(AtomicBool::new(false)),
        plots: false,
        watch: None,
    };
    observe_run(
        &mut s,
        &mut o,
        Losses::new(compiled.clone()),
        &mut rng,
        42,
        &opts,
    )
    .expect("runs")
    .iters
}

fn command(iters: u64, out: &Path) -> u64 {
    let cfg = RunConfig {
        spec: spec_path(),
        algorithm: None,
        set: Vec::new(),
        seed: None,
        iterations: Some(iters),
        epochs: None,
        out: Some(out.to_path_buf()),
        // Run after run into the same folder.
        folder: bilevel_runner::runfolder::FolderMode::Force,
        progress: ProgressMode::Log,
        plots: false,
        color: false,
        threads: None,
    };
    run_spec(&cfg, Arc::new(AtomicBool::new(false)))
        .expect("runs")
        .summary
        .iters
}

/// `--one-shot MODE ITERS`: one variant, once, for an instruction counter.
fn one_shot(mode: &str, iters: u64) {
    let out = tempfile::tempdir().expect("temporary folder");
    let done = match mode {
        "setup" => {
            let c = compile();
            std::hint::black_box(solver(&c));
            0
        }
        "bare" => bare(&compile(), iters),
        "observed" => {
            let c = compile();
            let every = c.program().spec.run.eval_every.expect("eval_every");
            observed(&c, iters, every, out.path())
        }
        "command" => command(iters, out.path()),
        other => {
            eprintln!("unknown mode `{other}`: setup, bare, observed or command");
            std::process::exit(2);
        }
    };
    println!("{mode} {done}");
}

fn benches(cr: &mut Criterion) {
    let compiled = compile();
    let run_spec = &compiled.program().spec.run;
    let iters = run_spec.iterations.expect("the toy spec sets iterations");
    let every = run_spec.eval_every.expect("the toy spec sets eval_every");
    let out = tempfile::tempdir().expect("temporary folder");
    let mut g = cr.benchmark_group("toy_spec_run");
    for iters in [iters, 2 * iters] {
        g.bench_function(format!("bare_core_loop/{iters}"), |b| {
            b.iter(|| bare(&compiled, iters));
        });
        g.bench_function(format!("observed_run/{iters}"), |b| {
            b.iter(|| observed(&compiled, iters, every, out.path()));
        });
    }
    g.finish();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--one-shot") {
        let (Some(mode), Some(Ok(iters))) = (args.get(2), args.get(3).map(|s| s.parse::<u64>()))
        else {
            eprintln!("usage: overhead --one-shot setup|bare|observed|command ITERS");
            std::process::exit(2);
        };
        one_shot(mode, iters);
        return;
    }
    let mut c = Criterion::default()
        .sample_size(15)
        .measurement_time(Duration::from_secs(6))
        .configure_from_args();
    benches(&mut c);
    c.final_summary();
}
