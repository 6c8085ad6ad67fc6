//! Oracle calls and wall time to reach ‖x − x*‖/‖x*‖ ≤ 1e-2 on the d = 100,
//! κ = 10, σ = 0.1 quadratic for every solver of the registry, with the
//! hyperparameters of `testing::tuned::D100`; 5 seeds (seed s draws instance
//! s and runs with RNG seed s), x_0 = y_0 = 0, at most 2·10^7 oracle calls
//! per run. SABA and SRBA run on the finite-sum version of the same instance
//! (`FiniteQuadratic`, n = 1024, same x*). The meta-learning solvers optimise
//! a different objective and are listed as not applicable.
//!
//! ```text
//! cargo run --release -p bilevel-core --example baselines_table            # the table
//! cargo run --release -p bilevel-core --example baselines_table -- soba step_size=0.05
//! ```
//! With arguments: one solver, overrides `name=value` on top of the tuned
//! ones, and one line per seed (for tuning). Environment: `TARGET` (relative
//! error, default 1e-2), `BUDGET` (oracle calls per run), `SEEDS`.

use std::time::Instant;

use bilevel_core::registry::{self, Configure, ParamKind, ParamValue};
use bilevel_core::solver::{AnySolver, Saba, SabaConfig, Solver, Srba, SrbaConfig};
use bilevel_core::testing::{tuned, ClosedForm, FiniteQuadratic, Quadratic};
use bilevel_core::{run, Budget, Counted, DefaultRng, Oracle, Target, Termination};
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

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn one(name: &str, over: &[(&str, ParamValue<'_>)], seed: u64) -> Outcome {
    if name == "saba" {
        return one_saba(over, seed);
    }
    if name == "srba" {
        return one_srba(over, seed);
    }
    let q = Quadratic::<f64, Vec<f64>>::random(100, 10.0, 0.1, seed).expect("instance");
    let cf = q.closed_form().expect("closed form");
    let s = AnySolver::<f64, Vec<f64>, Vec<f64>>::build(name, over, vec![0.0; 100], vec![0.0; 100])
        .expect("build");
    measure(s, Counted::new(q), &cf, seed)
}

/// SABA on the finite-sum version (n = 1024 samples per level, antithetic
/// noise of the same σ) of the same instance: same x*.
fn one_saba(over: &[(&str, ParamValue<'_>)], seed: u64) -> Outcome {
    let n = 1024;
    let q = Quadratic::<f64, Vec<f64>>::random(100, 10.0, 0.0, seed).expect("instance");
    let cf = q.closed_form().expect("closed form");
    let o = Counted::new(FiniteQuadratic::new(q, n, 0.1, seed));
    let mut cfg = SabaConfig::default();
    for &(k, v) in over {
        cfg.set(k, v).expect("override");
    }
    let mem = Saba::<f64, Vec<f64>, Vec<f64>, Vec<f64>>::memory_needed(n, n, 100, 100);
    let s = Saba::new(cfg, vec![0.0; 100], vec![0.0; 100], vec![0.0; mem], n, n).expect("saba");
    measure(s, o, &cf, seed)
}

/// SRBA on the same finite-sum version as SABA.
fn one_srba(over: &[(&str, ParamValue<'_>)], seed: u64) -> Outcome {
    let n = 1024;
    let q = Quadratic::<f64, Vec<f64>>::random(100, 10.0, 0.0, seed).expect("instance");
    let cf = q.closed_form().expect("closed form");
    let o = Counted::new(FiniteQuadratic::new(q, n, 0.1, seed));
    let mut cfg = SrbaConfig::default();
    for &(k, v) in over {
        cfg.set(k, v).expect("override");
    }
    let s = Srba::new(cfg, vec![0.0; 100], vec![0.0; 100]).expect("srba");
    measure(s, o, &cf, seed)
}

fn measure<S, O>(mut s: S, mut o: Counted<O>, cf: &ClosedForm, seed: u64) -> Outcome
where
    O: Oracle<f64>,
    S: Solver<f64, Counted<O>>,
{
    let mut rng = DefaultRng::seed_from_u64(seed);
    let budget = Budget::iters(u64::MAX).with_oracle_calls(env("BUDGET", MAX_CALLS));
    let tgt = env("TARGET", TARGET);
    let mut target = Target(|x: &[f64], _: &[f64]| cf.rel_error(x) <= tgt);
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

fn range(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::INFINITY, 0.0_f64), |(lo, hi), &x| {
        (lo.min(x), hi.max(x))
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seeds = env("SEEDS", SEEDS);
    if let Some(name) = args.first() {
        let mut over: Vec<(&str, ParamValue<'_>)> = tuned::overrides(name).to_vec();
        for a in &args[1..] {
            let (k, v) = parse(name, a);
            over.retain(|(n, _)| *n != k);
            over.push((k, v));
        }
        for seed in 0..seeds {
            let r = one(name, &over, seed);
            println!(
                "{name} seed {seed}: reached {} calls {} iters {} time {:.3}s rel.err {:.2e}",
                r.reached, r.calls, r.iters, r.secs, r.err
            );
        }
        return;
    }
    let tgt = env("TARGET", TARGET);
    println!(
        "| solver | settings (non-default) | oracle calls to {tgt:e}: median [min, max] | wall time to {tgt:e}: median [min, max] | time per iteration (median) | reached |"
    );
    println!("|---|---|---|---|---|---|");
    for info in registry::SOLVERS {
        let buildable =
            AnySolver::<f64, Vec<f64>, Vec<f64>>::build(info.name, &[], vec![0.0], vec![0.0])
                .is_ok();
        if !buildable && info.name != "saba" && info.name != "srba" {
            println!(
                "| {} | — | not applicable: meta-learning objective (see the §7.5 toy tests) | — | — | — |",
                info.title
            );
            continue;
        }
        let over = tuned::overrides(info.name);
        let rs: Vec<Outcome> = (0..seeds).map(|s| one(info.name, over, s)).collect();
        let reached = rs.iter().filter(|r| r.reached).count();
        let mut calls: Vec<f64> = rs.iter().map(|r| r.calls as f64).collect();
        let mut secs: Vec<f64> = rs.iter().map(|r| r.secs).collect();
        let mut per_iter: Vec<f64> = rs
            .iter()
            .map(|r| r.secs / r.iters.max(1) as f64 * 1e6)
            .collect();
        let worst = rs.iter().map(|r| r.err).fold(0.0_f64, f64::max);
        let (cmin, cmax) = range(&calls);
        let (smin, smax) = range(&secs);
        let settings: Vec<String> = over.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let note = if reached == rs.len() {
            String::new()
        } else {
            format!(" (budget hit; worst final error {worst:.1e})")
        };
        println!(
            "| {} | {} | {:.3e} [{:.3e}, {:.3e}]{note} | {:.3} s [{:.3}, {:.3}] | {:.1} µs | {reached}/{seeds} |",
            info.title,
            settings.join(", "),
            median(&mut calls),
            cmin,
            cmax,
            median(&mut secs),
            smin,
            smax,
            median(&mut per_iter),
        );
    }
}
