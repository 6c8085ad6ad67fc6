//! The compiled oracle's joint calls (one sweep for several outputs) against
//! the separate calls, output by output, for every example spec at random
//! points, directions and samples: bit for bit or within 1e-13 relative.

use std::fmt::Write as _;
use std::path::Path;

use bilevel_core::oracle::{
    self, CrossJvp, Level, LowerGradY, LowerHvp, Oracle, UpperGradX, UpperGradY,
};
use bilevel_core::{random, Counted, DefaultRng};
use bilevel_dsl::Compiled;
use rand_core::SeedableRng;

fn specs() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs");
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bilevel"))
        .collect();
    v.sort();
    assert!(v.len() >= 4, "example specs found: {v:?}");
    v
}

/// `got` equals `want` bit for bit or within 1e-13 of the vector's scale;
/// returns whether every component was bitwise equal.
fn agree(what: &str, got: &[f64], want: &[f64]) -> bool {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0_f64, |m, w| m.max(w.abs()));
    let mut bitwise = true;
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if g.to_bits() == w.to_bits() {
            continue;
        }
        bitwise = false;
        let tol = 1e-13 * w.abs().max(scale).max(f64::MIN_POSITIVE);
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: joint {g:e} vs separate {w:e} (scale {scale:e})"
        );
    }
    bitwise
}

fn jitter(base: &[f64], rng: &mut DefaultRng, s: f64) -> Vec<f64> {
    base.iter().map(|b| b + s * random::normal(rng)).collect()
}

/// Every example spec, 6 random (x, y, v) and fresh samples each: the joint
/// calls through the oracle helpers (as the solvers make them) equal the
/// separate calls, the hooks are taken, and `Counted` counts each output.
#[test]
fn joint_calls_equal_separate_calls_on_every_example_spec() {
    let mut report = String::new();
    for path in specs() {
        let src = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut c = Compiled::from_source(&src, path.parent().unwrap())
            .unwrap_or_else(|d| panic!("{name}: {d:?}"));
        let (x0, y0) = (c.initial_x(), c.initial_y());
        let (dx, dy) = (x0.len(), y0.len());
        let mut rng = DefaultRng::seed_from_u64(0x5eed ^ dx as u64 ^ (dy as u64) << 20);
        let mut all_bitwise = true;
        let cases = if dx * dy > 100_000 { 2 } else { 6 };
        for case in 0..cases {
            let what = format!("{name} case {case}");
            let x = jitter(&x0, &mut rng, 0.5);
            let y = jitter(&y0, &mut rng, 0.5);
            let v = jitter(&vec![0.0; dy], &mut rng, 1.0);
            let xi = c.sample(Level::Upper, &mut rng);
            let zeta = c.sample(Level::Lower, &mut rng);
            // Separate calls.
            let (mut gx, mut gyf) = (vec![0.0; dx], vec![0.0; dy]);
            c.grad_x_f(&x, &y, &xi, &mut gx);
            c.grad_y_f(&x, &y, &xi, &mut gyf);
            let (mut gyg, mut hv, mut jv) = (vec![0.0; dy], vec![0.0; dy], vec![0.0; dx]);
            c.grad_y_g(&x, &y, &zeta, &mut gyg);
            c.hvp_yy(&x, &y, &v, &zeta, &mut hv);
            c.jvp_xy(&x, &y, &v, &zeta, &mut jv);
            // Joint calls, through Counted as a run makes them; outputs
            // prefilled with NaN so an unwritten one fails.
            let mut o = Counted::new(c);
            let nan = |n| vec![f64::NAN; n];
            let (mut a, mut b) = (nan(dx), nan(dy));
            oracle::grads_f(&mut o, &x, &y, &xi, &mut a, &mut b);
            all_bitwise &= agree(&format!("{what} grad_x_f"), &a, &gx);
            all_bitwise &= agree(&format!("{what} grad_y_f"), &b, &gyf);
            let (mut h, mut j) = (nan(dy), nan(dx));
            oracle::hvp_jvp(&mut o, &x, &y, &v, &zeta, (&mut h, &mut j));
            all_bitwise &= agree(&format!("{what} hvp_yy (pair)"), &h, &hv);
            all_bitwise &= agree(&format!("{what} jvp_xy (pair)"), &j, &jv);
            let (mut g, mut h, mut j) = (nan(dy), nan(dy), nan(dx));
            oracle::grad_hvp_jvp(&mut o, &x, &y, &v, &zeta, (&mut g, &mut h, &mut j));
            all_bitwise &= agree(&format!("{what} grad_y_g (triple)"), &g, &gyg);
            all_bitwise &= agree(&format!("{what} hvp_yy (triple)"), &h, &hv);
            all_bitwise &= agree(&format!("{what} jvp_xy (triple)"), &j, &jv);
            let n = o.counts();
            assert_eq!(
                (n.grad_x_f, n.grad_y_f, n.grad_y_g, n.hvp_yy, n.jvp_xy),
                (1, 1, 1, 2, 2),
                "{what}: each output counts once"
            );
            // The hooks were taken: the inner oracle serves them itself.
            let (mut a2, mut b2) = (nan(dx), nan(dy));
            assert!(o.inner_mut().try_grads_f(&x, &y, &xi, &mut a2, &mut b2));
            c = o.into_inner();
            // Forced separate calls decline the hooks and give the old outputs.
            c.set_separate_calls(true);
            let (mut h2, mut j2) = (nan(dy), nan(dx));
            assert!(!c.try_hvp_jvp(&x, &y, &v, &zeta, (&mut h2, &mut j2)));
            let mut o = Counted::new(c);
            oracle::hvp_jvp(&mut o, &x, &y, &v, &zeta, (&mut h2, &mut j2));
            assert!(h2.iter().zip(&hv).all(|(p, q)| p.to_bits() == q.to_bits()));
            assert!(j2.iter().zip(&jv).all(|(p, q)| p.to_bits() == q.to_bits()));
            c = o.into_inner();
            c.set_separate_calls(false);
        }
        let _ = writeln!(report, "{name}: bitwise {all_bitwise}");
    }
    eprintln!("{report}");
}
