//! Solves the toy bilevel problem with BO-REP and SLIP using `bilevel-core`
//! alone, and prints x, the error to the closed-form x*, the oracle calls and
//! the time.
//!
//! ```text
//! cargo run --release -p bilevel-examples --example toy [SEED]
//! ```

use std::process::ExitCode;

use bilevel_examples::{solve_toy, TOY_ITERS, TOY_X_STAR};

fn main() -> ExitCode {
    let seed = match std::env::args().nth(1).map(|s| s.parse::<u64>()) {
        None => 42,
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            eprintln!("error: SEED must be a non-negative integer: {e}");
            return ExitCode::from(2);
        }
    };
    println!("toy bilevel problem (examples/specs/toy_quadratic.bilevel), seed {seed}");
    println!(
        "closed form x* = (2120, -3900)/2729 = ({:.6}, {:.6})",
        TOY_X_STAR[0], TOY_X_STAR[1]
    );
    match solve_toy(seed, TOY_ITERS) {
        Ok(outcomes) => {
            println!(
                "{:<8} {:>11} {:>11} {:>12} {:>12} {:>10}  termination",
                "solver", "x[0]", "x[1]", "|x-x*|/|x*|", "oracle calls", "time"
            );
            for o in &outcomes {
                println!(
                    "{:<8} {:>11.6} {:>11.6} {:>12.3e} {:>12} {:>8.1}ms  {}",
                    o.solver,
                    o.x[0],
                    o.x[1],
                    o.rel_error,
                    o.report.counts.oracle_calls(),
                    o.elapsed.as_secs_f64() * 1e3,
                    o.report.termination
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
