//! The generated oracles against the interpreted compiled oracle, for every
//! example spec `build.rs` generates: on 100 random points and minibatches,
//! all oracles (both gradients of f, ∇ᵧg, ∇ₓg, ∇²ᵧᵧg·v, ∇²ₓᵧg·v, the values
//! and the joint calls) agree — the f64 module included here (a std crate,
//! so it calls std's elementary functions like the interpreter) to the bit,
//! the no_std f64 module of the library (libm) to 1e-12 relative, the f32
//! modules to a stated tolerance — the generated sampler draws the same
//! minibatches, and whole BO-REP and SLIP runs give the same iterates.

use std::path::{Path, PathBuf};

use bilevel_core::oracle::{
    grad_hvp_jvp, grads_f, hvp_jvp, CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, LowerValue,
    Oracle, UpperGradX, UpperGradY, UpperValue,
};
use bilevel_core::random::normal;
use bilevel_core::solver::{BoRep, BoRepConfig, Slip, SlipConfig, Solver, SolverState};
use bilevel_core::DefaultRng;
use bilevel_dsl::{Batch, Compiled, SourceBatch};
use rand_core::SeedableRng;

mod gen {
    include!(concat!(env!("OUT_DIR"), "/toy_f64.rs"));
    include!(concat!(env!("OUT_DIR"), "/quad100_f64.rs"));
    include!(concat!(env!("OUT_DIR"), "/hpo_f64.rs"));
    include!(concat!(env!("OUT_DIR"), "/hyperclean_f64.rs"));
    include!(concat!(env!("OUT_DIR"), "/ridge_f64.rs"));
    include!(concat!(env!("OUT_DIR"), "/matmat_f64.rs"));
}

fn spec_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../specs")
        .join(name)
}

fn interp(name: &str) -> Compiled {
    let path = spec_path(name);
    let src = std::fs::read_to_string(&path).expect("spec");
    Compiled::from_source(&src, path.parent().expect("folder")).expect("spec compiles")
}

/// Every output of one oracle evaluation, in a fixed order.
type Outputs = Vec<Vec<f64>>;

/// Evaluates every oracle of `o` at (x, y, v) on the minibatches.
macro_rules! outputs {
    ($o:expr, $t:ty, $x:expr, $y:expr, $v:expr, $su:expr, $sl:expr) => {{
        let o = $o;
        let cv = |a: &[f64]| a.iter().map(|&v| v as $t).collect::<Vec<$t>>();
        let (x, y, v) = (cv($x), cv($y), cv($v));
        let (dx, dy) = (x.len(), y.len());
        let mut r: Vec<Vec<$t>> = Vec::new();
        let mut b = vec![0.0 as $t; dx];
        o.grad_x_f(&x, &y, $su, &mut b);
        r.push(b.clone());
        let mut b = vec![0.0 as $t; dy];
        o.grad_y_f(&x, &y, $su, &mut b);
        r.push(b.clone());
        let (mut gx, mut gy) = (vec![0.0 as $t; dx], vec![0.0 as $t; dy]);
        grads_f(o, &x, &y, $su, &mut gx, &mut gy);
        r.push(gx);
        r.push(gy);
        let mut b = vec![0.0 as $t; dy];
        o.grad_y_g(&x, &y, $sl, &mut b);
        r.push(b);
        let mut b = vec![0.0 as $t; dx];
        o.grad_x_g(&x, &y, $sl, &mut b);
        r.push(b);
        let mut b = vec![0.0 as $t; dy];
        o.hvp_yy(&x, &y, &v, $sl, &mut b);
        r.push(b);
        let mut b = vec![0.0 as $t; dx];
        o.jvp_xy(&x, &y, &v, $sl, &mut b);
        r.push(b);
        let (mut hv, mut jv) = (vec![0.0 as $t; dy], vec![0.0 as $t; dx]);
        hvp_jvp(o, &x, &y, &v, $sl, (&mut hv, &mut jv));
        r.push(hv);
        r.push(jv);
        let (mut gy, mut hv, mut jv) = (
            vec![0.0 as $t; dy],
            vec![0.0 as $t; dy],
            vec![0.0 as $t; dx],
        );
        grad_hvp_jvp(o, &x, &y, &v, $sl, (&mut gy, &mut hv, &mut jv));
        r.push(gy);
        r.push(hv);
        r.push(jv);
        r.push(vec![o.f_value(&x, &y, $su)]);
        r.push(vec![o.g_value(&x, &y, $sl)]);
        r.into_iter()
            .map(|v| v.into_iter().map(f64::from).collect::<Vec<f64>>())
            .collect::<Outputs>()
    }};
}

/// The minibatch as the generated `Sample` type.
macro_rules! to_sample {
    ($m:expr, $b:expr) => {{
        let mut s = $m();
        for (i, sb) in $b.sources.iter().enumerate() {
            match sb {
                SourceBatch::Rows(r) => {
                    let v: Vec<u64> = r.iter().map(|&r| r as u64).collect();
                    assert!(s.set(i, &v));
                }
                SourceBatch::Draws(d) => assert!(s.set(i, d)),
                _ => {}
            }
        }
        s
    }};
}

/// Normwise relative error ‖a − b‖∞ / max(‖b‖∞, tiny).
fn rel(a: &[f64], b: &[f64]) -> f64 {
    let d = a
        .iter()
        .zip(b)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max);
    let s = b.iter().map(|q| q.abs()).fold(0.0, f64::max);
    d / s.max(1e-300)
}

/// Random (x, y, v): normal entries with the given scale around x0, y0.
fn point(
    rng: &mut DefaultRng,
    x0: &[f64],
    y0: &[f64],
    scale: f64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut r = |b: &[f64]| {
        b.iter()
            .map(|&c| c + scale * normal(rng))
            .collect::<Vec<_>>()
    };
    let x = r(x0);
    let y = r(y0);
    let v = r(&vec![0.0; y0.len()]);
    (x, y, v)
}

/// Checks one spec: 100 points; returns (bit-identical f64 outputs, total,
/// worst f64 rel error of the no_std module, worst f32 rel error).
macro_rules! agree {
    ($spec:literal, $std:path, $lib64:path, $lib32:path, $tol32:expr) => {{
        use $lib32 as m32;
        use $lib64 as m64;
        use $std as ms;
        let mut c = interp($spec);
        let mut g = Box::new(ms::Problem::new());
        let mut g64 = Box::new(m64::Problem::new());
        let mut g32 = Box::new(m32::Problem::new());
        let mut rng = DefaultRng::seed_from_u64(2026);
        let (x0, y0) = (c.initial_x(), c.initial_y());
        let (mut same, mut total, mut worst64, mut worst32) = (0usize, 0usize, 0.0f64, 0.0f64);
        for k in 0..100 {
            // The generated sampler draws what the interpreter's does.
            let mut r1 = DefaultRng::seed_from_u64(k);
            let mut r2 = DefaultRng::seed_from_u64(k);
            let bu: Batch = c.sample(Level::Upper, &mut r1);
            let bl: Batch = c.sample(Level::Lower, &mut r1);
            let su = g.sample(Level::Upper, &mut r2);
            let sl = g.sample(Level::Lower, &mut r2);
            assert_eq!(su, to_sample!(ms::Sample::new, bu), "{}: upper minibatch {k}", $spec);
            assert_eq!(sl, to_sample!(ms::Sample::new, bl), "{}: lower minibatch {k}", $spec);
            let (x, y, v) = point(&mut rng, &x0, &y0, 0.5);
            let want = outputs!(&mut c, f64, &x, &y, &v, &bu, &bl);
            let got = outputs!(&mut *g, f64, &x, &y, &v, &su, &sl);
            let (lu, ll) = (to_sample!(m64::Sample::new, bu), to_sample!(m64::Sample::new, bl));
            let got64 = outputs!(&mut *g64, f64, &x, &y, &v, &lu, &ll);
            let (mu, ml) = (to_sample!(m32::Sample::new, bu), to_sample!(m32::Sample::new, bl));
            let got32 = outputs!(&mut *g32, f32, &x, &y, &v, &mu, &ml);
            for (j, w) in want.iter().enumerate() {
                total += 1;
                let bits = |a: &[f64]| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                if bits(&got[j]) == bits(w) {
                    same += 1;
                }
                let e = rel(&got[j], w);
                assert!(e <= 1e-12, "{}: output {j} at point {k}: rel {e:e}", $spec);
                let e64 = rel(&got64[j], w);
                assert!(e64 <= 1e-12, "{}: no_std f64 output {j} at point {k}: rel {e64:e}", $spec);
                worst64 = worst64.max(e64);
                let e32 = rel(&got32[j], w);
                assert!(e32 <= $tol32, "{}: f32 output {j} at point {k}: rel {e32:e}", $spec);
                worst32 = worst32.max(e32);
            }
        }
        eprintln!("{}: {same}/{total} f64 outputs bit-identical; no_std f64 worst rel {worst64:e}; f32 worst rel {worst32:e}", $spec);
        (same, total)
    }};
}

#[test]
fn toy_agrees() {
    let (same, total) = agree!(
        "toy_quadratic.bilevel",
        gen::toy_f64,
        bilevel_codegen_check::toy_f64,
        bilevel_codegen_check::toy_f32,
        1e-4
    );
    assert_eq!(same, total);
}

#[test]
fn quadratic_d100_agrees() {
    let (same, total) = agree!(
        "quadratic_d100.bilevel",
        gen::quad100_f64,
        bilevel_codegen_check::quad100_f64,
        bilevel_codegen_check::quad100_f32,
        1e-4
    );
    assert_eq!(same, total);
}

#[test]
fn hpo_logreg_agrees() {
    let (same, total) = agree!(
        "hpo_logreg.bilevel",
        gen::hpo_f64,
        bilevel_codegen_check::hpo_f64,
        bilevel_codegen_check::hpo_f32,
        1e-4
    );
    assert_eq!(same, total);
}

#[test]
fn hyperclean_agrees() {
    let (same, total) = agree!(
        "hyperclean.bilevel",
        gen::hyperclean_f64,
        bilevel_codegen_check::hyperclean_f64,
        bilevel_codegen_check::hyperclean_f32,
        1e-4
    );
    assert_eq!(same, total);
}

/// BO-REP and SLIP, 200 iterations each with the same generator seed, on
/// the interpreter and on the generated oracle: the iterates after every
/// step are the same bits (the generated code runs the same operations in
/// the same order, and its sampler draws the same minibatches).
macro_rules! traces {
    ($spec:literal, $std:path) => {{
        use $std as ms;
        let iters = 200;
        let c = interp($spec);
        let (x0, y0) = (c.initial_x(), c.initial_y());
        assert_eq!(x0.as_slice(), &ms::X0[..]);
        assert_eq!(y0.as_slice(), &ms::Y0[..]);
        let borep = || {
            let cfg = BoRepConfig {
                eta: 0.01,
                gamma: 0.1,
                nu: 0.1,
                ..BoRepConfig::default()
            };
            BoRep::new(cfg, x0.clone(), y0.clone()).expect("solver")
        };
        let slip = || {
            let cfg = SlipConfig {
                eta: 0.01,
                gamma: 0.1,
                nu: 0.1,
                ..SlipConfig::default()
            };
            Slip::new(cfg, x0.clone(), y0.clone()).expect("solver")
        };
        let (mut a, mut b) = (borep(), borep());
        let (mut oa, mut ob) = (c.clone(), Box::new(ms::Problem::new()));
        let (mut ra, mut rb) = (DefaultRng::seed_from_u64(7), DefaultRng::seed_from_u64(7));
        a.init(&mut oa, &mut ra).expect("init");
        b.init(&mut *ob, &mut rb).expect("init");
        for t in 0..iters {
            a.step(&mut oa, &mut ra).expect("step");
            b.step(&mut *ob, &mut rb).expect("step");
            assert_eq!(bits(a.x()), bits(b.x()), "{} bo-rep x at {t}", $spec);
            assert_eq!(bits(a.y()), bits(b.y()), "{} bo-rep y at {t}", $spec);
        }
        let (mut a, mut b) = (slip(), slip());
        let (mut oa, mut ob) = (c.clone(), Box::new(ms::Problem::new()));
        let (mut ra, mut rb) = (DefaultRng::seed_from_u64(8), DefaultRng::seed_from_u64(8));
        a.init(&mut oa, &mut ra).expect("init");
        b.init(&mut *ob, &mut rb).expect("init");
        for t in 0..iters {
            a.step(&mut oa, &mut ra).expect("step");
            b.step(&mut *ob, &mut rb).expect("step");
            assert_eq!(bits(a.x()), bits(b.x()), "{} slip x at {t}", $spec);
            assert_eq!(bits(a.y()), bits(b.y()), "{} slip y at {t}", $spec);
        }
        assert!(a.x().iter().all(|v| v.is_finite()));
    }};
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn toy_runs_give_the_interpreters_trace() {
    traces!("toy_quadratic.bilevel", gen::toy_f64);
}

#[test]
fn quadratic_d100_runs_give_the_interpreters_trace() {
    traces!("quadratic_d100.bilevel", gen::quad100_f64);
}

#[test]
fn hpo_logreg_runs_give_the_interpreters_trace() {
    traces!("hpo_logreg.bilevel", gen::hpo_f64);
}

#[test]
fn hyperclean_runs_give_the_interpreters_trace() {
    traces!("hyperclean.bilevel", gen::hyperclean_f64);
}

#[test]
fn firmware_ridge_agrees() {
    let (same, total) = agree!(
        "firmware_ridge.bilevel",
        gen::ridge_f64,
        bilevel_codegen_check::ridge_f64,
        bilevel_codegen_check::ridge_f32,
        1e-4
    );
    assert_eq!(same, total);
}

#[test]
fn firmware_ridge_runs_give_the_interpreters_trace() {
    traces!("firmware_ridge.bilevel", gen::ridge_f64);
}

/// `examples/codegen/specs/matmat.bilevel`: matrix variables, so the general
/// matrix × matrix product with every transpose combination the rules
/// produce (both factors variables, and a parameter with a variable).
#[test]
fn matmat_agrees() {
    let (same, total) = agree!(
        "../codegen/specs/matmat.bilevel",
        gen::matmat_f64,
        bilevel_codegen_check::matmat_f64,
        bilevel_codegen_check::matmat_f32,
        1e-4
    );
    assert_eq!(same, total);
}

#[test]
fn matmat_runs_give_the_interpreters_trace() {
    traces!("../codegen/specs/matmat.bilevel", gen::matmat_f64);
}
