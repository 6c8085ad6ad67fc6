//! Measures what the joint oracle calls save: N iterations of a solver on a
//! compiled spec (RNN models included), with the compiled oracle's joint
//! hooks on (`joint`) or declined (`separate`, every output its own sweep),
//! for counting instructions under callgrind (the iterations are in
//! `iterate`; collect only there with `--toggle-collect='*iterate*'`).
//!
//! ```text
//! cargo run --release -p bilevel-runner --example joint_calls -- \
//!     SPEC SOLVER ITERS joint|separate [KEY=VALUE ...]
//! ```
//! Prints the oracle call counts and a hash of the final iterate's bits.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::process::ExitCode;

use bilevel_core::registry::ParamValue;
use bilevel_core::solver::{AnySolver, Solver, SolverState};
use bilevel_core::{Counted, DefaultRng};
use bilevel_dsl::Compiled;
use bilevel_runner::rnn::RnnRegistry;
use rand_core::SeedableRng;

type Oracle = Counted<Compiled>;
type Any = AnySolver<f64, Vec<f64>, Vec<f64>>;

#[inline(never)]
fn iterate(s: &mut Any, o: &mut Oracle, rng: &mut DefaultRng, iters: u64) -> Result<(), String> {
    for _ in 0..iters {
        Solver::<f64, Oracle>::step(s, o, rng).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn value(v: &str) -> ParamValue<'_> {
    if let Ok(i) = v.parse::<i64>() {
        ParamValue::Int(i)
    } else if let Ok(r) = v.parse::<f64>() {
        ParamValue::Real(r)
    } else if let Ok(b) = v.parse::<bool>() {
        ParamValue::Bool(b)
    } else {
        ParamValue::Str(v)
    }
}

fn main_inner(args: &[String]) -> Result<(), String> {
    let [spec, solver, iters, mode, settings @ ..] = args else {
        return Err("usage: joint_calls SPEC SOLVER ITERS joint|separate [KEY=VALUE ...]".into());
    };
    let separate = match mode.as_str() {
        "joint" => false,
        "separate" => true,
        other => return Err(format!("mode `{other}`: joint or separate")),
    };
    let iters: u64 = iters.parse().map_err(|e| format!("ITERS `{iters}`: {e}"))?;
    let mut over = Vec::new();
    for kv in settings {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("setting `{kv}`: KEY=VALUE"))?;
        over.push((k, value(v)));
    }
    let path = Path::new(spec);
    let src = std::fs::read_to_string(path).map_err(|e| format!("{spec}: {e}"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut c = Compiled::from_source_with(&src, base, &RnnRegistry)
        .map_err(|d| format!("{spec}: {} diagnostics, first: {:?}", d.len(), d.first()))?;
    c.set_separate_calls(separate);
    let mut s =
        Any::build(solver, &over, c.initial_x(), c.initial_y()).map_err(|e| e.to_string())?;
    let mut o = Counted::new(c);
    let mut rng = DefaultRng::seed_from_u64(1);
    Solver::<f64, Oracle>::init(&mut s, &mut o, &mut rng).map_err(|e| e.to_string())?;
    let warm = *o.counts();
    iterate(&mut s, &mut o, &mut rng, iters)?;
    let n = *o.counts();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for v in s.x().iter().chain(s.y()) {
        v.to_bits().hash(&mut h);
    }
    println!(
        "{solver} {mode} iters={iters} calls(after init)={} grad_x_f={} grad_y_f={} grad_y_g={} hvp_yy={} jvp_xy={} bits={:016x}",
        n.oracle_calls() - warm.oracle_calls(),
        n.grad_x_f - warm.grad_x_f,
        n.grad_y_f - warm.grad_y_f,
        n.grad_y_g - warm.grad_y_g,
        n.hvp_yy - warm.hvp_yy,
        n.jvp_xy - warm.jvp_xy,
        h.finish()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match main_inner(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("joint_calls: {e}");
            ExitCode::FAILURE
        }
    }
}
