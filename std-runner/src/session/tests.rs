//! Tests of observed runs: the files a run writes, determinism, stops and
//! breakdowns.

use bilevel_core::solver::{Slip, SlipConfig};
use bilevel_core::testing::{toy, CoshUpper};
use bilevel_core::{Counted, DefaultRng};
use rand_core::SeedableRng;

use std::path::Path;

use super::*;
use crate::output::read_trace;

const X_STAR: [f64; 2] = [2120.0 / 2729.0, -3900.0 / 2729.0];

struct ToyEval;
impl Evaluate for ToyEval {
    fn metric_names(&self) -> Vec<String> {
        vec!["dist_to_x_star".into(), "x0".into()]
    }
    fn evaluate(&mut self, x: &[f64], _y: &[f64]) -> Vec<f64> {
        vec![bilevel_core::kernels::dist(x, &X_STAR), x[0]]
    }
}

fn opts(out: &Path, iters: u64, stop: bool) -> SessionOptions {
    SessionOptions {
        out: out.to_path_buf(),
        eval_every: 100,
        budget: Budget::iters(iters),
        progress: ProgressMode::Quiet,
        stop: Arc::new(AtomicBool::new(stop)),
        plots: true,
        watch: None,
    }
}

fn slip() -> Slip<f64, [f64; 2], [f64; 2]> {
    let cfg = SlipConfig {
        eta: 0.01,
        eta_decay: 1.0,
        eta_decay_steps: 100.0,
        gamma: 0.3,
        nu: 0.3,
        ..SlipConfig::default()
    };
    Slip::new(cfg, [0.0; 2], [0.0; 2]).unwrap()
}

/// SLIP on the toy for `iters` iterations with `seed`, observed into `out`
/// (stopped at once when `stop`).
fn toy_run(out: &Path, seed: u64, iters: u64, stop: bool) -> RunSummary {
    let mut o = Counted::new(toy::<f64>(0.035));
    let mut rng = DefaultRng::seed_from_u64(seed);
    observe_run(
        &mut slip(),
        &mut o,
        ToyEval,
        &mut rng,
        seed,
        &opts(out, iters, stop),
    )
    .unwrap()
}

#[test]
fn a_run_writes_trace_summary_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let s = toy_run(dir.path(), 1, 1000, false);
    assert_eq!(s.termination, "max_iters");
    assert_eq!(s.iters, 1000);
    let trace = read_trace(&dir.path().join("trace.jsonl")).unwrap();
    // Iterations 0, 100, …, 1000.
    assert_eq!(trace.len(), 11);
    assert_eq!(trace.last().unwrap().iter, 1000);
    assert!(trace.last().unwrap().metrics["dist_to_x_star"] < trace[0].metrics["dist_to_x_star"]);
    let summary: RunSummary =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary, s);
    assert_eq!(summary.oracle_calls, 3 + 5 * 1000);
    for stem in [
        "dist_to_x_star_vs_iters",
        "dist_to_x_star_vs_calls",
        "x0_vs_iters",
    ] {
        assert!(
            dir.path()
                .join("plots")
                .join(format!("{stem}.svg"))
                .exists(),
            "{stem}"
        );
        assert!(
            dir.path()
                .join("plots")
                .join(format!("{stem}.png"))
                .exists(),
            "{stem}"
        );
    }
    assert!(!dir.path().join("trace.jsonl.part").exists());
}

#[test]
fn same_seed_gives_the_same_trace_apart_from_wall_time() {
    let strip = |dir: &Path| {
        read_trace(&dir.join("trace.jsonl"))
            .unwrap()
            .into_iter()
            .map(|mut r| {
                r.wall_s = 0.0;
                serde_json::to_string(&r).unwrap()
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for d in [&a, &b] {
        toy_run(d.path(), 9, 500, false);
    }
    assert_eq!(strip(a.path()), strip(b.path()));
}

struct Phi(CoshUpper<f64>);
impl Evaluate for Phi {
    fn metric_names(&self) -> Vec<String> {
        vec!["phi".into()]
    }
    fn evaluate(&mut self, x: &[f64], _y: &[f64]) -> Vec<f64> {
        vec![self.0.phi(x)]
    }
}

#[test]
fn stop_flag_and_breakdown_still_leave_valid_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Counted::new(toy::<f64>(0.035));
    let mut rng = DefaultRng::seed_from_u64(1);
    let s = observe_run(
        &mut slip(),
        &mut o,
        ToyEval,
        &mut rng,
        1,
        &opts(dir.path(), 1000, true),
    )
    .unwrap();
    assert_eq!(s.termination, "interrupted");
    assert_eq!(
        read_trace(&dir.path().join("trace.jsonl")).unwrap().len(),
        1
    );

    // A plain (unnormalised) step on the cosh problem breaks down.
    let cfg = SlipConfig {
        eta: 0.05,
        gamma: 0.5,
        nu: 0.5,
        warm_steps: 30,
        normalize: false,
        ..SlipConfig::default()
    };
    let mut s = Slip::new(cfg, [8.0; 2], [0.0; 2]).unwrap();
    let problem = CoshUpper::new(2, 1.0, 0.0);
    let mut o = Counted::new(problem);
    let dir = tempfile::tempdir().unwrap();
    let mut o2 = opts(dir.path(), 1000, false);
    o2.eval_every = 1;
    let sum = observe_run(&mut s, &mut o, Phi(problem), &mut rng, 1, &o2).unwrap();
    assert!(
        sum.termination == "non_finite" || sum.termination == "diverged",
        "{}",
        sum.termination
    );
    let trace = read_trace(&dir.path().join("trace.jsonl")).unwrap();
    assert_eq!(trace.last().unwrap().iter, sum.iters);
    assert!(dir.path().join("summary.json").exists());
}
