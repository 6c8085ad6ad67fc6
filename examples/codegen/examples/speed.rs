//! Oracle work, generated against interpreted, for instruction counts under
//! callgrind (BENCHMARKS.md): `speed <gen|interp> <toy|quad100|hpo|ridge> <calls>`
//! evaluates ∇ₓf, ∇ᵧf, ∇ᵧg and the joint ∇ᵧg, ∇²ᵧᵧg·v, ∇²ₓᵧg·v `calls`
//! times at one point on fixed minibatches; run it with 0 and with N calls
//! and divide the difference by N for the cost of one round.

use std::hint::black_box;
use std::path::Path;

use bilevel_core::oracle::{grad_hvp_jvp, Level, Oracle, UpperGradX, UpperGradY};
use bilevel_core::DefaultRng;
use bilevel_dsl::{Compiled, SourceBatch};
use rand_core::SeedableRng;

macro_rules! round {
    ($o:expr, $su:expr, $sl:expr, $x:expr, $y:expr, $calls:expr) => {{
        let (x, y): (Vec<f64>, Vec<f64>) = ($x, $y);
        let v = y.clone();
        let (mut gx, mut gy) = (vec![0.0; x.len()], vec![0.0; y.len()]);
        let (mut hv, mut jv, mut g2) = (vec![0.0; y.len()], vec![0.0; x.len()], vec![0.0; y.len()]);
        for _ in 0..$calls {
            $o.grad_x_f(black_box(&x), &y, $su, &mut gx);
            $o.grad_y_f(&x, black_box(&y), $su, &mut gy);
            grad_hvp_jvp($o, &x, &y, &v, $sl, (&mut g2, &mut hv, &mut jv));
            black_box((&gx, &gy, &g2, &hv, &jv));
        }
    }};
}

macro_rules! generated {
    ($m:path, $c:expr, $bu:expr, $bl:expr, $calls:expr) => {{
        use $m as m;
        let conv = |b: &bilevel_dsl::Batch| {
            let mut s = m::Sample::new();
            for (i, sb) in b.sources.iter().enumerate() {
                match sb {
                    SourceBatch::Rows(r) => {
                        let v: Vec<u64> = r.iter().map(|&r| r as u64).collect();
                        s.set(i, &v);
                    }
                    SourceBatch::Draws(d) => {
                        s.set(i, d);
                    }
                    _ => {}
                }
            }
            s
        };
        let (su, sl) = (conv(&$bu), conv(&$bl));
        let mut o = Box::new(m::Problem::new());
        round!(&mut *o, &su, &sl, $c.initial_x(), $c.initial_y(), $calls);
    }};
}

mod gen {
    include!(concat!(env!("OUT_DIR"), "/toy_f64.rs"));
    include!(concat!(env!("OUT_DIR"), "/quad100_f64.rs"));
    include!(concat!(env!("OUT_DIR"), "/hpo_f64.rs"));
    include!(concat!(env!("OUT_DIR"), "/ridge_f64.rs"));
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (which, spec, calls) = (
        a[1].as_str(),
        a[2].as_str(),
        a[3].parse::<usize>().expect("calls"),
    );
    let file = match spec {
        "toy" => "toy_quadratic.bilevel",
        "quad100" => "quadratic_d100.bilevel",
        "hpo" => "hpo_logreg.bilevel",
        _ => "firmware_ridge.bilevel",
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../specs")
        .join(file);
    let src = std::fs::read_to_string(&path).expect("spec");
    let mut c = Compiled::from_source(&src, path.parent().expect("folder")).expect("spec");
    let mut rng = DefaultRng::seed_from_u64(1);
    let bu = c.sample(Level::Upper, &mut rng);
    let bl = c.sample(Level::Lower, &mut rng);
    match (which, spec) {
        ("interp", _) => {
            let (x, y) = (c.initial_x(), c.initial_y());
            let mut o = c.clone();
            round!(&mut o, &bu, &bl, x, y, calls);
        }
        (_, "toy") => generated!(gen::toy_f64, c, bu, bl, calls),
        (_, "quad100") => generated!(gen::quad100_f64, c, bu, bl, calls),
        (_, "hpo") => generated!(gen::hpo_f64, c, bu, bl, calls),
        _ => generated!(gen::ridge_f64, c, bu, bl, calls),
    }
}
