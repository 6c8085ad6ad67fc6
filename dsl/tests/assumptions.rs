//! Soundness of the refutation of `assume strongly_convex` (E0308).
//!
//! E0308 claims: at the coordinate c it names, ∂²g/∂c² ≤ b < m for every x,
//! y and minibatch, so λ_min(∇²ᵧᵧ g) < m everywhere. A property test
//! generates random lower objectives in y (squares of coordinates and
//! selections, `norm2sq`, `sq_loss`, `quad` with stored matrices, negative
//! and x-dependent factors, negative parameters, `let`s, gathers, `mean
//! over` and `sum over`, powers, exp/softplus/logsumexp/log/cos terms, a
//! matrix variable) with a random assumed m. For every spec the checker
//! refutes, the same g is compiled with the assumption moved to a dummy
//! variable z (so that it compiles), the dense Hessian in y is built from
//! the compiled HVP at random points and minibatches, and both the smallest
//! eigenvalue and the smallest diagonal entry must be below m (up to
//! `TOL · max(1, ‖H‖_F)` of HVP rounding). For every spec it accepts with
//! "assumed", nothing is claimed.

use std::path::PathBuf;

use crate::support;

use bilevel_core::oracle::{Level, Oracle};
use bilevel_core::DefaultRng;
use bilevel_dsl::{Code, Compiled};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rand_core::SeedableRng;

/// Rounding tolerance of the HVP and eigen-solver, relative to ‖H‖_F.
const TOL: f64 = 1e-9;

/// Generated specs per run.
const CASES: u32 = 3000;

fn data_dir() -> PathBuf {
    support::table_dir(
        "assumptions-prop",
        "f1,f2,y\n0.5,-1.0,1\n1.5,0.25,0\n-0.75,2.0,2\n",
    )
}

fn head(p: &str) -> String {
    format!(
        "bilevel \"assume\" version 1\n\
         param P: matrix[3, 3] = {p}\n\
         param Q: matrix[2, 2] = [[2.0, 0.5], [0.5, 1.0]]\n\
         param c: vector[3] = [0.5, -1.0, 0.25]\n\
         param r: scalar = -0.5\n\
         param h: scalar = 0.75\n\
         let a1 = y[1]\n\
         let sq0 = (y[0]) ^ 2\n\
         data d = csv(\"d.csv\") {{ header = true, label = \"y\", features = all_except([\"y\"]), batch = 2, sampler = shuffle, seed = 3 }}\n\
         upper {{ var x: vector[2] init zeros  minimize norm2sq(x) + norm2sq(y) }}\n"
    )
}

fn matrix3() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("eye".to_string()),
        (1u64..30).prop_map(|s| format!("spd(kappa = 10, seed = {s})")),
        Just("[[3.0, 1.0, 0.0], [1.0, 0.5, 0.0], [0.0, 0.0, 1.0]]".to_string()),
        Just("[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]".to_string()),
    ]
}

fn coef() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("1.0"),
        Just("0.5"),
        Just("2.0"),
        Just("-1.0"),
        Just("-0.25"),
        Just("-10.0"),
        Just("1e-3"),
        Just("r"),
        Just("h"),
        Just("(0.1 + 0.2)"),
        Just("(-h)"),
        Just("exp(x[0])"),
        Just("x[1]"),
    ]
    .prop_map(str::to_string)
}

fn atom() -> impl Strategy<Value = String> {
    prop_oneof![
        (0usize..3).prop_map(|i| format!("(y[{i}]) ^ 2")),
        (0usize..3).prop_map(|i| format!("y[{i}] * y[{i}]")),
        (0usize..3, 0usize..3).prop_map(|(i, j)| format!("y[{i}] * y[{j}]")),
        Just("norm2sq(y)".to_string()),
        Just("norm2sq(2.0 * y - c)".to_string()),
        Just("sum(y ^ 2)".to_string()),
        Just("mean(y ^ 2)".to_string()),
        Just("dot(y, y)".to_string()),
        Just("sq_loss(y, c)".to_string()),
        Just("quad(P, y)".to_string()),
        Just("quad(P, 0.5 * y + c)".to_string()),
        Just("quad(Q, Y[1])".to_string()),
        Just("norm2sq(Y[0])".to_string()),
        Just("norm2sq(Y)".to_string()),
        Just("(a1) ^ 2".to_string()),
        Just("sq0".to_string()),
        Just("(y[0] + y[1]) ^ 2".to_string()),
        (0usize..3).prop_map(|i| format!("(y[{i}]) ^ 4")),
        (0usize..3).prop_map(|i| format!("exp(y[{i}])")),
        (0usize..3).prop_map(|i| format!("softplus(y[{i}])")),
        (0usize..3).prop_map(|i| format!("cos(y[{i}])")),
        Just("logsumexp(y)".to_string()),
        Just("log(1.0 + exp(y[2]))".to_string()),
        (0usize..3).prop_map(|i| format!("log(y[{i}] + 3.5)")),
        (0usize..3).prop_map(|i| format!("sqrt(y[{i}] + 3.5)")),
        Just("mean over s in d { (y[s.index]) ^ 2 }".to_string()),
        Just("mean over s in d { s.x[0] * (y[0]) ^ 2 }".to_string()),
        Just("sum over s in d { (y[1]) ^ 2 }".to_string()),
        Just("sum over s in d { -(y[2]) ^ 2 }".to_string()),
        Just("mean over s in d { mean over t in d { 0.5 * norm2sq(y) } }".to_string()),
        Just("-(-(y[0]) ^ 2)".to_string()),
        Just("(norm2sq(y)) ^ 1.0".to_string()),
        Just("sum((M @ y) ^ 2)".to_string()),
    ]
}

fn objective() -> impl Strategy<Value = (String, String, String)> {
    let mu = prop_oneof![
        Just("0.01"),
        Just("0.5"),
        Just("1.0"),
        Just("1.9"),
        Just("2.0"),
        Just("2.5"),
        Just("10.0")
    ];
    (prop::collection::vec((coef(), atom()), 1..5), matrix3(), mu).prop_map(|(ts, p, mu)| {
        let g: Vec<String> = ts.iter().map(|(k, a)| format!("{k} * {a}")).collect();
        (g.join(" + "), p, mu.to_string())
    })
}

fn spec(g: &str, p: &str, assume_y: Option<&str>) -> String {
    let mut s = format!(
        "{}param M: matrix[3, 3] = [[1.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 2.0]]\n\
         lower {{ var y: vector[3] init zeros\n var Y: matrix[2, 2] init zeros\n var z: vector[2] init zeros\n \
         minimize {g} + norm2sq(z) - dot(x, z) - x[0] * sum(y) - x[1] * sum(Y) }}\n\
         assume strongly_convex(z, mu = 1.0)\n",
        head(p)
    );
    if let Some(m) = assume_y {
        s = s + "assume strongly_convex(y, mu = " + m + ")\n";
    }
    s
}

/// `Ok(true)` when the checker refuted the assumption (and the refutation
/// was verified), `Ok(false)` when it did not.
fn check_case(g: &str, p: &str, mu: &str, seed: u64) -> Result<bool, TestCaseError> {
    let with = spec(g, p, Some(mu));
    let refuted = match bilevel_dsl::build(&with, &data_dir()) {
        Ok(_) => None,
        Err(d) => d
            .iter()
            .find(|d| d.code == Code::E0308)
            .map(|d| d.message.clone()),
    };
    let Some(message) = refuted else {
        return Ok(false);
    };
    // The coordinate the refutation names: "… along `y[i]` …".
    let coord: usize = message
        .split("along `y[")
        .nth(1)
        .and_then(|t| t.split(']').next())
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| TestCaseError::fail(format!("no coordinate of y in {message:?}")))?;
    let without = spec(g, p, None);
    let mut c = match Compiled::from_source(&without, &data_dir()) {
        Ok(c) => c,
        Err(d) => {
            let r = bilevel_dsl::render(&d, "assume", &without);
            return Err(TestCaseError::fail(format!(
                "refuted, but the spec without the assumption is rejected:\n{r}"
            )));
        }
    };
    let m: f64 = mu.parse().expect("mu");
    let mut rng = DefaultRng::seed_from_u64(seed);
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 6.0 - 3.0
    };
    for _ in 0..3 {
        let x: Vec<f64> = (0..2).map(|_| next()).collect();
        let y: Vec<f64> = (0..9).map(|_| next()).collect();
        let batch = c.sample(Level::Lower, &mut rng);
        let h = support::dense_hessian(&mut c, &x, &y, &batch);
        // The y block: coordinates 0..3.
        let hy = h.view((0, 0), (3, 3)).into_owned();
        let tol = TOL * hy.norm().max(1.0);
        let lmin = hy.clone().symmetric_eigen().eigenvalues.min();
        let hcc = hy[(coord, coord)];
        prop_assert!(
            lmin < m + tol && hcc < m + tol,
            "refuted mu = {m} along y[{coord}], but λmin = {lmin}, H[{coord},{coord}] = {hcc} at x = {x:?}, y = {y:?}\n{message}\n{with}"
        );
    }
    Ok(true)
}

#[test]
fn every_refuted_assumption_is_false_at_the_points_tried() {
    use proptest::test_runner::{Config, TestRunner};
    use std::cell::Cell;
    let refuted = Cell::new(0u32);
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        ..Config::default()
    });
    let result = runner.run(&(objective(), any::<u64>()), |((g, p, mu), seed)| {
        if check_case(&g, &p, &mu, seed)? {
            refuted.set(refuted.get() + 1);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let r = refuted.get();
    eprintln!("{CASES} specs: {r} assumptions refuted (E0308), each verified at 3 points");
    assert!(
        r >= CASES / 10,
        "only {r} of {CASES} refuted: the generator does not exercise E0308"
    );
}

// ---------------------------------------------------------------------------
// Regressions: what is refuted, what is not.

fn lower(
    g: &str,
    decls: &str,
    mu: &str,
) -> Result<bilevel_dsl::Program, Vec<bilevel_dsl::Diagnostic>> {
    let src = format!(
        "bilevel \"reg\" version 1\n{decls}\n\
         upper {{ var x: vector[2] init zeros  minimize norm2sq(x) + norm2sq(y) }}\n\
         lower {{ var y: vector[2] init zeros  minimize {g} }}\n\
         assume strongly_convex(y, mu = {mu})\n"
    );
    bilevel_dsl::build(&src, &data_dir())
}

fn codes(r: &Result<bilevel_dsl::Program, Vec<bilevel_dsl::Diagnostic>>) -> Vec<Code> {
    match r {
        Ok(p) => p.warnings.iter().map(|d| d.code).collect(),
        Err(d) => d.iter().map(|d| d.code).collect(),
    }
}

#[test]
fn contradictions_are_errors_and_unknowns_are_notes() {
    // Indefinite along y[1].
    let r = lower("(y[0])^2 - (y[1])^2 + dot(x, y)", "", "1.0");
    assert!(codes(&r).contains(&Code::E0308), "{:?}", codes(&r));
    // mu above the exact curvature 1 of 0.5 * norm2sq(y).
    let r = lower("0.5 * norm2sq(y) - dot(x, y)", "", "10.0");
    assert!(codes(&r).contains(&Code::E0308), "{:?}", codes(&r));
    // ... but mu = 1 is exactly right (the margin is on the safe side).
    let r = lower("0.5 * norm2sq(y) - dot(x, y)", "", "1.0");
    assert!(r.is_ok(), "{:?}", codes(&r));
    // A stored matrix's diagonal, at load time: sym(H)[1,1] = 1 < 1.5.
    let h = "param H: matrix[2, 2] = [[2.0, 0.5], [0.5, 1.0]]";
    let r = lower("0.5 * quad(H, y) - dot(x, y)", h, "1.5");
    assert!(codes(&r).contains(&Code::E0308), "{:?}", codes(&r));
    let r = lower("0.5 * quad(H, y) - dot(x, y)", h, "0.75");
    assert!(r.is_ok(), "{:?}", codes(&r));
    // Terms of unknown size along the coordinate: cannot refute (N0307).
    for g in [
        "0.5 * norm2sq(y) + sum(exp(y)) - dot(x, y)",
        "exp(x[0]) * norm2sq(y) - dot(x, y)",
        "0.5 * norm2sq(y) + 0.1 * sum(cos(y)) - dot(x, y)",
        "(y[0] + y[1])^2 - dot(x, y)",
    ] {
        let r = lower(g, "", "5.0");
        assert!(codes(&r).contains(&Code::N0307), "{g}: {:?}", codes(&r));
    }
    // A sum over a batch of 2 doubles the curvature: 2 * 2 = 4 ≥ 3.
    let d = "data d = csv(\"d.csv\") { header = true, label = \"y\", features = all_except([\"y\"]), batch = 2, sampler = shuffle, seed = 3 }";
    let r = lower("sum over s in d { norm2sq(y) } - dot(x, y)", d, "3.0");
    assert!(r.is_ok(), "{:?}", codes(&r));
    // A negative parameter as a factor is a number.
    let r = lower(
        "norm2sq(y) + q * (y[1])^2 - dot(x, y)",
        "param q: scalar = -1.5",
        "1.0",
    );
    assert!(codes(&r).contains(&Code::E0308), "{:?}", codes(&r));
}
