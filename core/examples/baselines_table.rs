//! Oracle calls and wall time to reach ‖x − x*‖/‖x*‖ ≤ 1e-2 on the d = 100,
//! κ = 10, σ = 0.1 quadratic, for every solver that [`AnySolver`] builds,
//! with the hyperparameters of [`testing::tuned::D100`]; 5 seeds (seed s
//! draws instance s and runs with RNG seed s), x_0 = y_0 = 0.
//!
//! ```text
//! cargo run --release -p bilevel-core --example baselines_table            # the table
//! cargo run --release -p bilevel-core --example baselines_table -- soba step_size=0.05
//! ```
//! With arguments: one solver, overrides `name=value` on top of the tuned
//! ones, and one line per seed (for tuning).

use std::time::Instant;

use bilevel_core::registry::{self, ParamKind, ParamValue};
use bilevel_core::solver::{AnySolver, SolverState};
use bilevel_core::testing::{tuned, Quadratic};
use bilevel_core::{run, Budget, Counted, DefaultRng, Target, Termination};
use rand_core::SeedableRng;

const SEEDS: u64 = 5;
const TARGET: f64 = 1e-2;
const MAX_CALLS: u64 = 20_000_000;

struct Outcome {
    calls: u64,
    iters: u64,
    secs: f64,
    reached: bool,
    err: f64,
}

fn one(name: &str, over: &[(&str, ParamValue<'_>)], seed: u64) -> Outcome {
    let q = Quadratic::<f64, Vec<f64>>::random(100, 10.0, 0.1, seed).expect("instance");
    let cf = q.closed_form().expect("closed form");
    let mut o = Counted::new(q);
    let mut s =
        AnySolver::<f64, Vec<f64>, Vec<f64>>::build(name, over, vec![0.0; 100], vec![0.0; 100])
            .expect("build");
    let mut rng = DefaultRng::seed_from_u64(seed);
    let max_calls = std::env::var("BUDGET")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(MAX_CALLS);
    let budget = Budget::iters(u64::MAX).with_oracle_calls(max_calls);
    let mut target = Target(|x: &[f64], _: &[f64]| cf.rel_error(x) <= TARGET);
    let t0 = Instant::now();
    let rep = run(&mut s, &mut o, &mut rng, &budget, &mut target).expect("run");
    let secs = t0.elapsed().as_secs_f64();
    Outcome {
        calls: rep.counts.oracle_calls(),
        iters: rep.iters,
        secs,
        reached: rep.termination == Termination::TargetReached,
        err: cf.rel_error(s.x()),
    }
}

fn parse<'a>(name: &str, arg: &'a str) -> (&'a str, ParamValue<'a>) {
    let (k, v) = arg.split_once('=').expect("override as name=value");
    let info = registry::find(name).expect("solver");
    let spec = info.param(k).expect("parameter");
    let value = match spec.kind {
        ParamKind::Real => ParamValue::Real(v.parse().expect("real")),
        ParamKind::Int => ParamValue::Int(v.parse().expect("integer")),
        ParamKind::Bool => ParamValue::Bool(v.parse().expect("bool")),
        ParamKind::Choice(_) => ParamValue::Str(v),
    };
    (k, value)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(name) = args.first() {
        let mut over: Vec<(&str, ParamValue<'_>)> = tuned::overrides(name).to_vec();
        for a in &args[1..] {
            let (k, v) = parse(name, a);
            over.retain(|(n, _)| *n != k);
            over.push((k, v));
        }
        let seeds = std::env::var("SEEDS")
            .ok()
            .and_then(|b| b.parse().ok())
            .unwrap_or(SEEDS);
        for seed in 0..seeds {
            let r = one(name, &over, seed);
            println!(
                "{name} seed {seed}: reached {} calls {} iters {} time {:.3}s rel.err {:.2e}",
                r.reached, r.calls, r.iters, r.secs, r.err
            );
        }
        return;
    }
    println!("| solver | settings (non-default) | oracle calls to 1e-2: median [min, max] | wall time to 1e-2: median [min, max] | reached |");
    println!("|---|---|---|---|---|");
    for info in registry::SOLVERS {
        if AnySolver::<f64, Vec<f64>, Vec<f64>>::build(info.name, &[], vec![0.0], vec![0.0])
            .is_err()
        {
            continue;
        }
        let over = tuned::overrides(info.name);
        let rs: Vec<Outcome> = (0..SEEDS).map(|s| one(info.name, over, s)).collect();
        let reached = rs.iter().filter(|r| r.reached).count();
        let mut calls: Vec<f64> = rs.iter().map(|r| r.calls as f64).collect();
        let mut secs: Vec<f64> = rs.iter().map(|r| r.secs).collect();
        let (cmin, cmax) = (
            calls.iter().copied().fold(f64::INFINITY, f64::min),
            calls.iter().copied().fold(0.0, f64::max),
        );
        let (smin, smax) = (
            secs.iter().copied().fold(f64::INFINITY, f64::min),
            secs.iter().copied().fold(0.0, f64::max),
        );
        let settings: Vec<String> = over.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "| {} | {} | {:.3e} [{:.3e}, {:.3e}] | {:.3} s [{:.3}, {:.3}] | {reached}/{SEEDS} |",
            info.title,
            settings.join(", "),
            median(&mut calls),
            cmin,
            cmax,
            median(&mut secs),
            smin,
            smax,
        );
    }
}
