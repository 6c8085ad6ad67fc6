//! Calls one oracle of the compiled quadratic spec or of the core's
//! hand-written `Quadratic` (the pair `benches/dsl.rs` times) a given number
//! of times, for instruction counts under callgrind (which, unlike wall time
//! on a shared machine, do not depend on load):
//!
//! ```text
//! cargo build --release -p bilevel-dsl --example oracle_insns
//! valgrind --tool=callgrind --toggle-collect='*oracle_insns*iterate*' \
//!   --dump-after='*oracle_insns*iterate*' \
//!   target/release/examples/oracle_insns D ORACLES compiled|hand ITERS
//! ```
//!
//! `D` is 100 or 1000 (`examples/specs/quadratic_d{D}.bilevel`), `ORACLES` a
//! comma-separated list of `grad_x_f`, `grad_y_f`, `grad_y_g`, `grad_x_g`,
//! `hvp_yy`, `jvp_xy`, `f_value`, `g_value`, or `all` (the first six). The
//! instance, points and samples are the bench's. Each oracle is called once
//! outside the measured loop first (the compiled oracle builds its sweep plan
//! on a mode's first call), then `ITERS` times in `iterate`; with
//! `--dump-after` callgrind writes one profile per oracle, in the order given,
//! so one process (one instance build, slow at d = 1000 under callgrind)
//! counts them all. Prints a checksum per oracle so that the calls cannot be
//! dropped.

use std::hint::black_box;
use std::path::Path;

use bilevel_core::oracle::{
    CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, LowerValue, Oracle, UpperGradX, UpperGradY,
    UpperValue,
};
use bilevel_core::testing::Quadratic;
use bilevel_dsl::Compiled;

/// The oracles this driver can call.
const ORACLES: [&str; 8] = [
    "grad_x_f", "grad_y_f", "grad_y_g", "grad_x_g", "hvp_yy", "jvp_xy", "f_value", "g_value",
];

/// Points of the bench.
struct Points {
    x: Vec<f64>,
    y: Vec<f64>,
    v: Vec<f64>,
}

/// One call of oracle `name`; returns a value to keep (the output's first
/// entry or the objective).
fn call<O>(
    o: &mut O,
    name: &str,
    p: &Points,
    lo: &O::Sample,
    up: &O::Sample,
    out: &mut [f64],
) -> f64
where
    O: UpperGradX<f64>
        + UpperGradY<f64>
        + LowerGradY<f64>
        + LowerGradX<f64>
        + LowerHvp<f64>
        + CrossJvp<f64>
        + UpperValue<f64>
        + LowerValue<f64>,
{
    let (x, y, v) = (
        black_box(&p.x[..]),
        black_box(&p.y[..]),
        black_box(&p.v[..]),
    );
    match name {
        "grad_x_f" => o.grad_x_f(x, y, up, out),
        "grad_y_f" => o.grad_y_f(x, y, up, out),
        "grad_y_g" => o.grad_y_g(x, y, lo, out),
        "grad_x_g" => o.grad_x_g(x, y, lo, out),
        "hvp_yy" => o.hvp_yy(x, y, v, lo, out),
        "jvp_xy" => o.jvp_xy(x, y, v, lo, out),
        "f_value" => return o.f_value(x, y, up),
        _ => return o.g_value(x, y, lo),
    }
    out[0]
}

/// The measured loop (callgrind collects only inside it).
#[inline(never)]
fn iterate<O>(o: &mut O, name: &str, p: &Points, lo: &O::Sample, up: &O::Sample, n: u64) -> f64
where
    O: UpperGradX<f64>
        + UpperGradY<f64>
        + LowerGradY<f64>
        + LowerGradX<f64>
        + LowerHvp<f64>
        + CrossJvp<f64>
        + UpperValue<f64>
        + LowerValue<f64>,
{
    repeat(o, name, p, lo, up, n)
}

/// Every oracle of `names`: one call not measured, then `n` in [`iterate`].
fn each<O>(
    o: &mut O,
    names: &[&str],
    p: &Points,
    lo: &O::Sample,
    up: &O::Sample,
    n: u64,
) -> Vec<f64>
where
    O: UpperGradX<f64>
        + UpperGradY<f64>
        + LowerGradY<f64>
        + LowerGradX<f64>
        + LowerHvp<f64>
        + CrossJvp<f64>
        + UpperValue<f64>
        + LowerValue<f64>,
{
    names
        .iter()
        .map(|name| {
            repeat(o, name, p, lo, up, 1);
            iterate(o, name, p, lo, up, n)
        })
        .collect()
}

/// `n` calls of oracle `name`.
#[inline(never)]
fn repeat<O>(o: &mut O, name: &str, p: &Points, lo: &O::Sample, up: &O::Sample, n: u64) -> f64
where
    O: UpperGradX<f64>
        + UpperGradY<f64>
        + LowerGradY<f64>
        + LowerGradX<f64>
        + LowerHvp<f64>
        + CrossJvp<f64>
        + UpperValue<f64>
        + LowerValue<f64>,
{
    let mut out = vec![0.0; p.x.len()];
    let mut acc = 0.0;
    for _ in 0..n {
        acc += call(o, name, p, lo, up, &mut out);
    }
    acc + out.iter().sum::<f64>()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: oracle_insns D ORACLES compiled|hand ITERS";
    let [d, name, side, iters] = args.as_slice() else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let (Ok(d), Ok(iters)) = (d.parse::<usize>(), iters.parse::<u64>()) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let names: Vec<&str> = if name == "all" {
        ORACLES[..6].to_vec()
    } else {
        name.split(',').collect()
    };
    if !names.iter().all(|n| ORACLES.contains(n)) || !matches!(side.as_str(), "compiled" | "hand") {
        eprintln!("{usage}; ORACLES `all` or a list of {ORACLES:?}");
        std::process::exit(2);
    }
    let p = Points {
        x: (0..d).map(|i| (i as f64 * 0.37).sin()).collect(),
        y: (0..d).map(|i| (i as f64 * 0.11).cos()).collect(),
        v: (0..d).map(|i| (i as f64 * 0.53).sin()).collect(),
    };
    let mut rng = <bilevel_core::DefaultRng as rand_core::SeedableRng>::seed_from_u64(1);
    let r = if side == "compiled" {
        let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs");
        let path = specs.join(format!("quadratic_d{d}.bilevel"));
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
                eprintln!("{}", bilevel_dsl::render(&e, "quadratic", &src));
                std::process::exit(1);
            }
        };
        let (lo, up) = (
            o.sample(Level::Lower, &mut rng),
            o.sample(Level::Upper, &mut rng),
        );
        each(&mut o, &names, &p, &lo, &up, iters)
    } else {
        let Ok(mut o) = Quadratic::<f64, Vec<f64>>::random(d, 10.0, 0.0, 1) else {
            eprintln!("no instance of dimension {d}");
            std::process::exit(1);
        };
        let s = o.sample(Level::Lower, &mut rng);
        each(&mut o, &names, &p, &s, &s, iters)
    };
    for (name, r) in names.iter().zip(r) {
        println!("{d} {name} {side} {iters}: checksum {r:e}");
    }
}
