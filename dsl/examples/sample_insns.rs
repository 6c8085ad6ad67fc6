//! Runs SOBA iterations (or one oracle) on the compiled benchopt quadratic
//! (`examples/specs/benchopt_quadratic.bilevel`: finite sums of 1,024
//! samples, d = 100, batch 64, `sampler = shuffle`), for instruction counts
//! of its sample reductions under callgrind (`benches/sample_reduce.rs`
//! times the same oracle calls):
//!
//! ```text
//! cargo build --release -p bilevel-dsl --example sample_insns
//! valgrind --tool=callgrind --toggle-collect='*sample_insns*iterate*' \
//!   target/release/examples/sample_insns WHAT ITERS
//! ```
//!
//! `WHAT` is `soba` (ITERS SOBA iterations at the registry defaults from the
//! spec's x₀, y₀, each drawing its two minibatches: the lead's profile of
//! issue 19) or one of `grad_y_g`, `hvp_yy`, `jvp_xy`, `grad_x_f`,
//! `grad_y_f` (ITERS calls on one fixed minibatch). Prints a checksum so
//! that the calls cannot be dropped.

use std::hint::black_box;
use std::path::Path;

use bilevel_core::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, Oracle, UpperGradX, UpperGradY};
use bilevel_core::solver::{Soba, SobaConfig, Solver, SolverState};
use bilevel_core::DefaultRng;
use bilevel_dsl::Compiled;

/// The oracles this driver can call one at a time.
const ORACLES: [&str; 5] = ["grad_y_g", "hvp_yy", "jvp_xy", "grad_x_f", "grad_y_f"];

/// The measured loop (callgrind collects only inside it).
#[inline(never)]
fn iterate(o: &mut Compiled, what: &str, n: u64, rng: &mut DefaultRng) -> f64 {
    let (x0, y0) = (o.initial_x(), o.initial_y());
    if what == "soba" {
        let Ok(mut s) = Soba::<f64, Vec<f64>, Vec<f64>>::new(SobaConfig::default(), x0, y0) else {
            return f64::NAN;
        };
        if s.init(o, rng).is_err() {
            return f64::NAN;
        }
        for _ in 0..n {
            if s.step(o, rng).is_err() {
                return f64::NAN;
            }
        }
        return s.x().iter().chain(s.y()).sum();
    }
    let v: Vec<f64> = (0..y0.len()).map(|i| (i as f64 * 0.53).sin()).collect();
    let (lo, up) = (o.sample(Level::Lower, rng), o.sample(Level::Upper, rng));
    let (x, y) = (black_box(&x0[..]), black_box(&y0[..]));
    let mut out = vec![0.0; y0.len().max(x0.len())];
    let mut acc = 0.0;
    for _ in 0..n {
        match what {
            "grad_y_g" => o.grad_y_g(x, y, &lo, &mut out),
            "hvp_yy" => o.hvp_yy(x, y, black_box(&v), &lo, &mut out),
            "jvp_xy" => o.jvp_xy(x, y, black_box(&v), &lo, &mut out),
            "grad_x_f" => o.grad_x_f(x, y, &up, &mut out),
            _ => o.grad_y_f(x, y, &up, &mut out),
        }
        acc += out[0];
    }
    acc
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: sample_insns soba|ORACLE ITERS";
    let [what, iters] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let Ok(iters) = iters.parse::<u64>() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    if what != "soba" && !ORACLES.contains(&what.as_str()) {
        eprintln!("{usage}; ORACLE one of {ORACLES:?}");
        std::process::exit(2);
    }
    let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs");
    let path = specs.join("benchopt_quadratic.bilevel");
    let src = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            std::process::exit(2);
        }
    };
    let mut o = match Compiled::from_source(&src, &specs) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", bilevel_dsl::render(&e, "benchopt_quadratic", &src));
            std::process::exit(1);
        }
    };
    let mut rng = <DefaultRng as rand_core::SeedableRng>::seed_from_u64(1);
    let r = iterate(&mut o, what, iters, &mut rng);
    println!("{what} {iters}: checksum {r:e}");
}
