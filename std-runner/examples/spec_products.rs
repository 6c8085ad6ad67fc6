//! Counts what one lower-level product through a spec costs: N calls of
//! `grad_y_g` or `hvp_yy` on one lower sample, alternating between two points
//! so that no call finds the model's forward sweep of the call before
//! (each call pays its whole cost), for callgrind (the calls are in
//! `measure`; collect only there with `--toggle-collect='*measure*'`).
//!
//! ```text
//! cargo build --release -p bilevel-runner --example spec_products
//! RAYON_NUM_THREADS=1 valgrind --tool=callgrind --toggle-collect='*spec_products*measure*' \
//!     target/release/examples/spec_products SPEC grad|hvp N
//! ```
//! Prints a hash of the last output's bits.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::process::ExitCode;

use bilevel_core::oracle::{Level, LowerGradY, LowerHvp, Oracle};
use bilevel_core::DefaultRng;
use bilevel_dsl::Compiled;
use bilevel_runner::rnn::RnnRegistry;
use rand_core::SeedableRng;

#[inline(never)]
fn measure(
    c: &mut Compiled,
    hvp: bool,
    n: usize,
    s: &<Compiled as Oracle<f64>>::Sample,
    out: &mut [f64],
) {
    let (x, y0) = (c.initial_x(), c.initial_y());
    let ys: Vec<Vec<f64>> = (0..2)
        .map(|k| y0.iter().map(|w| w * (1.0 + 0.01 * f64::from(k))).collect())
        .collect();
    let v: Vec<f64> = (0..y0.len())
        .map(|k| ((k % 7) as f64 - 3.0) * 0.01)
        .collect();
    for i in 0..n {
        let y = &ys[i % 2];
        if hvp {
            c.hvp_yy(&x, y, &v, s, out);
        } else {
            c.grad_y_g(&x, y, s, out);
        }
    }
}

fn main_inner(args: &[String]) -> Result<(), String> {
    let [spec, what, n] = args else {
        return Err("usage: spec_products SPEC grad|hvp N".into());
    };
    let hvp = match what.as_str() {
        "grad" => false,
        "hvp" => true,
        other => return Err(format!("`{other}`: grad or hvp")),
    };
    let n: usize = n.parse().map_err(|e| format!("N `{n}`: {e}"))?;
    let path = Path::new(spec);
    let src = std::fs::read_to_string(path).map_err(|e| format!("{spec}: {e}"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut c = Compiled::from_source_with(&src, base, &RnnRegistry)
        .map_err(|d| format!("{spec}: {} diagnostics, first: {:?}", d.len(), d.first()))?;
    let mut rng = DefaultRng::seed_from_u64(1);
    let s = c.sample(Level::Lower, &mut rng);
    let mut out = vec![0.0; c.initial_y().len()];
    measure(&mut c, hvp, n, &s, &mut out);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for v in &out {
        v.to_bits().hash(&mut h);
    }
    println!("{what} n={n} bits={:016x}", h.finish());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match main_inner(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spec_products: {e}");
            ExitCode::FAILURE
        }
    }
}
