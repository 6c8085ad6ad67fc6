//! Soundness of the strong-convexity certificate.
//!
//! A property test generates random lower objectives over the constructs
//! that matter for curvature (sums; scalings by constants, parameters and
//! x; `quad` with random, near-singular and large-κ `spd` matrices;
//! `norm2sq`, `sq_loss`, squares and other powers; indexing, matrix rows
//! and data-dependent gathers; exp, softplus, logistic and log-sum-exp
//! terms; a matrix variable; sample means). For every spec the checker
//! accepts, the dense Hessian of g in y is built from the compiled HVP
//! (one product per unit vector) at random points and minibatches, and its
//! smallest eigenvalue (nalgebra's symmetric eigen-decomposition) must be
//! at least the certified μ minus `TOL · max(1, ‖H‖_F)`; a "convex" verdict
//! must have λ_min ≥ −TOL · max(1, ‖H‖_F). Regression tests pin every
//! unsound family and false alarm of issue 14.

use std::fmt::Write as _;
use std::path::PathBuf;

use crate::support;

use bilevel_core::oracle::{Level, Oracle};
use bilevel_core::DefaultRng;
use bilevel_dsl::Compiled;
use bilevel_dsl::Verdict;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rand_core::SeedableRng;

/// Rounding tolerance of the comparison, relative to ‖H‖_F: it covers the
/// HVP's and the eigen-solver's rounding, not the certificate's (which
/// rounds μ down itself).
const TOL: f64 = 1e-9;

/// Generated specs per run (each checked at 3 points).
const CASES: u32 = 4000;

/// A folder with a 3-row table, for gathers `y[s.index]` over batches of 2.
fn data_dir() -> PathBuf {
    support::table_dir(
        "convexity-prop",
        "f1,f2,y\n0.5,-1.0,1\n1.5,0.25,0\n-0.75,2.0,1\n",
    )
}

fn head(p: &str, q: &str, m: &str) -> String {
    format!(
        "bilevel \"prop\" version 1\n\
         param P: matrix[3, 3] = {p}\n\
         param Q: matrix[2, 2] = {q}\n\
         param M: matrix[3, 3] = {m}\n\
         param c: vector[3] = [0.5, -1.0, 0.25]\n\
         param c2: vector[2] = [1.0, -2.0]\n\
         param r: scalar = 0.25\n\
         param rn: scalar = -0.5\n\
         let ly = y[1]\n\
         let lq = 0.5 * norm2sq(y - c)\n\
         data d = csv(\"d.csv\") {{ header = true, label = \"y\", features = all_except([\"y\"]), batch = 2, sampler = shuffle, seed = 3 }}\n\
         upper {{ var x: vector[2] init zeros  minimize norm2sq(x) + norm2sq(y) }}\n"
    )
}

fn matrix3() -> impl Strategy<Value = String> {
    prop_oneof![
        (0usize..5, 1u64..50).prop_map(|(k, s)| {
            let kappa = [1.0, 10.0, 1e8, 1e15, 1e17][k];
            format!("spd(kappa = {kappa:e}, seed = {s})")
        }),
        (0usize..4).prop_map(|k| {
            let d = [0.0, 1e-15, 1e-9, 1e-3][k];
            format!(
                "[[1.0, 1.0, 0.0], [1.0, {:?}, 0.0], [0.0, 0.0, 2.0]]",
                1.0 + d
            )
        }),
        prop::array::uniform9(-4i32..5).prop_map(|v| {
            let e: Vec<String> = v
                .iter()
                .map(|x| format!("{:?}", f64::from(*x) * 0.5))
                .collect();
            format!(
                "[[{}, {}, {}], [{}, {}, {}], [{}, {}, {}]]",
                e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8]
            )
        }),
        Just("[[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [3.0, 6.0, 9.0]]".to_string()),
        Just("eye".to_string()),
    ]
}

fn matrix2() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[[2.0, 0.5], [0.5, 1.0]]".to_string()),
        Just("[[1.0, 1.0], [1.0, 1.0]]".to_string()),
        Just("[[1.0, 3.0], [-1.0, 1.0]]".to_string()),
        (1u64..20).prop_map(|s| format!("spd(kappa = 100, seed = {s})")),
    ]
}

/// Affine vector[3] expressions of y.
fn vec3(sampled: bool) -> BoxedStrategy<String> {
    let mut v = vec![
        Just("y".to_string()).boxed(),
        Just("(y - c)".to_string()).boxed(),
        Just("(2.5 * y)".to_string()).boxed(),
        Just("(-y)".to_string()).boxed(),
        Just("(y + x[0])".to_string()).boxed(),
        Just("(M @ y)".to_string()).boxed(),
        Just("(2.0 * (M @ y) - c)".to_string()).boxed(),
        Just("(-(M @ (y - c)))".to_string()).boxed(),
        Just("(y * c)".to_string()).boxed(),
        Just("(y / 4.0)".to_string()).boxed(),
        Just("(exp(x[1]) * y)".to_string()).boxed(),
    ];
    if sampled {
        v.push(Just("(y + s.x[0])".to_string()).boxed());
    }
    proptest::strategy::Union::new(v).boxed()
}

/// Affine vector[2] expressions of the matrix variable Y.
fn vec2() -> BoxedStrategy<String> {
    prop_oneof![
        Just("Y[0]".to_string()),
        Just("Y[1]".to_string()),
        Just("(Y[0] + Y[1])".to_string()),
        Just("(Y @ c2)".to_string()),
        Just("(Y' @ c2)".to_string()),
    ]
    .boxed()
}

/// Affine scalar expressions.
fn scal(sampled: bool) -> BoxedStrategy<String> {
    let mut v = vec![
        (0usize..3).prop_map(|k| format!("y[{k}]")).boxed(),
        (0usize..2, 0usize..2)
            .prop_map(|(i, j)| format!("Y[{i}, {j}]"))
            .boxed(),
        Just("(y[0] + y[1])".to_string()).boxed(),
        Just("dot(y, c)".to_string()).boxed(),
        Just("sum(y)".to_string()).boxed(),
        Just("(x[0] * y[1])".to_string()).boxed(),
        Just("(y[2] - Y[0, 1])".to_string()).boxed(),
    ];
    if sampled {
        v.push(Just("y[s.index]".to_string()).boxed());
        v.push(Just("dot(Y[0], s.x)".to_string()).boxed());
    }
    proptest::strategy::Union::new(v).boxed()
}

fn atom(sampled: bool) -> BoxedStrategy<String> {
    let v = vec3(sampled);
    let w = vec2();
    let s = scal(sampled);
    let pw = prop_oneof![
        Just("0.9999999999999999"),
        Just("1.0000000000000002"),
        Just("1.5"),
        Just("2.0"),
        Just("3.0"),
        Just("4.0"),
        Just("1.0")
    ];
    prop_oneof![
        v.clone().prop_map(|a| format!("norm2sq({a})")),
        w.clone().prop_map(|a| format!("norm2sq({a})")),
        v.clone().prop_map(|a| format!("sum({a} ^ 2)")),
        v.clone().prop_map(|a| format!("sum({a} * {a})")),
        v.clone().prop_map(|a| format!("mean({a} ^ 2)")),
        v.clone().prop_map(|a| format!("dot({a}, {a})")),
        v.clone().prop_map(|a| format!("quad(P, {a})")),
        w.clone().prop_map(|a| format!("quad(Q, {a})")),
        v.clone().prop_map(|a| format!("sq_loss({a}, c)")),
        s.clone().prop_map(|a| format!("({a}) ^ 2")),
        (s.clone(), pw.clone()).prop_map(|(a, p)| format!("({a}) ^ {p}")),
        (v.clone(), pw).prop_map(|(a, p)| format!("(norm2sq({a})) ^ {p}")),
        s.clone().prop_map(|a| format!("exp({a})")),
        s.clone().prop_map(|a| format!("softplus({a})")),
        s.clone().prop_map(|a| format!("logistic_loss({a}, 1.0)")),
        v.clone().prop_map(|a| format!("logsumexp({a})")),
        v.clone().prop_map(|a| format!("sum(exp({a}))")),
        s.clone().prop_map(|a| format!("cos({a})")),
        Just("norm2sq(Y)".to_string()),
        Just("sum(Y ^ 2)".to_string()),
        Just("exp(x[0]) * y[0] * y[0]".to_string()),
        Just("sum(exp(x[1]) * y * y)".to_string()),
        // Elementwise positive vector factors (decision 111) and a mixed-sign one.
        v.clone()
            .prop_map(|a| format!("sum(exp(x[0] * c) * {a} ^ 2)")),
        v.clone()
            .prop_map(|a| format!("sum(sigmoid(c) * ({a} * {a}))")),
        v.clone().prop_map(|a| format!("sum(c * {a} ^ 2)")),
        Just("(ly) ^ 2".to_string()),
        Just("(lq + lq)".to_string()),
        Just("mean over t in d { (y[0] - t.x[1]) ^ 2 + norm2sq(Y[1]) }".to_string()),
        Just("sum over t in d { 0.5 * norm2sq(y) + rn * (y[2]) ^ 2 }".to_string()),
        Just("mean over t in d { mean over u in d { dot(y, u.x[0] * y) } }".to_string()),
        Just("(-(rn * norm2sq(y)))".to_string()),
        Just("(norm2sq(y) / rn)".to_string()),
        Just("log(1.0 + exp(y[0]))".to_string()),
    ]
    .boxed()
}

fn scale() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0.5"),
        Just("2.0"),
        Just("-1.0"),
        Just("0.0"),
        Just("1e-3"),
        Just("r"),
        Just("rn"),
        Just("(-rn)"),
        Just("exp(x[0])"),
        Just("x[0]"),
        Just("(x[0] ^ 2)"),
        Just("sigmoid(x[1])"),
        Just("(0.1 + 0.2)"),
    ]
    .prop_map(str::to_string)
}

fn term() -> impl Strategy<Value = String> {
    any::<bool>().prop_flat_map(|sampled| {
        (scale(), atom(sampled)).prop_map(move |(k, a)| {
            if sampled {
                format!("mean over s in d {{ {k} * {a} }}")
            } else {
                format!("{k} * {a}")
            }
        })
    })
}

/// The matrix M of `M @ y` (congruent credits λmin(MᵀPM), λmin(MᵀM)):
/// well conditioned, singular, near-singular, random, large κ.
fn matrix_m() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[[0.5, -0.2, 0.1], [0.3, 0.4, -0.6], [0.0, 0.9, 0.2]]".to_string()),
        Just("[[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 0.0, 1.0]]".to_string()),
        Just("[[1.0, 1.0, 0.0], [1.0, 1.000000001, 0.0], [0.0, 0.0, 1.0]]".to_string()),
        matrix3(),
    ]
}

fn objective() -> impl Strategy<Value = (String, String, String, String)> {
    let ridge = prop_oneof![
        Just(""),
        Just(" + 0.5 * norm2sq(y) + 0.5 * norm2sq(Y)"),
        Just(" + 1e-3 * norm2sq(y) + norm2sq(Y)"),
        Just(" + norm2sq(y) + 1e-6 * sum(Y ^ 2)"),
    ];
    (
        prop::collection::vec(term(), 1..5),
        ridge,
        matrix3(),
        matrix2(),
        matrix_m(),
    )
        .prop_map(|(ts, ridge, p, q, m)| {
            (
                format!("{}{ridge} - x[0] * sum(y) - x[1] * sum(Y)", ts.join(" + ")),
                p,
                q,
                m,
            )
        })
}

/// The smallest eigenvalue of the symmetrised dense Hessian of g in y at
/// (x, y) on `batch`, and ‖H‖_F.
fn lambda_min(c: &mut Compiled, x: &[f64], y: &[f64], batch: &bilevel_dsl::Batch) -> (f64, f64) {
    let s = support::dense_hessian(c, x, y, batch);
    let norm = s.norm();
    (s.symmetric_eigen().eigenvalues.min(), norm)
}

/// Checks one generated spec; `Ok(None)` when the checker rejects it,
/// `Ok(Some(certified))` when accepted.
fn check_case(
    g: &str,
    (p, q, m): (&str, &str, &str),
    seed: u64,
) -> Result<Option<(bool, bool)>, TestCaseError> {
    let src = format!(
        "{}lower {{ var y: vector[3] init zeros\n var Y: matrix[2, 2] init zeros\n minimize {g} }}\n",
        head(p, q, m)
    );
    let Ok(mut c) = Compiled::from_source(&src, &data_dir()) else {
        return Ok(None);
    };
    let verdict = c.program().spec.analysis.verdict.clone();
    let mu = c.program().mu;
    let mut rng = DefaultRng::seed_from_u64(seed);
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
    };
    for _ in 0..3 {
        let x: Vec<f64> = (0..2).map(|_| next()).collect();
        let y: Vec<f64> = (0..7).map(|_| next()).collect();
        let batch = c.sample(Level::Lower, &mut rng);
        let (l, norm) = lambda_min(&mut c, &x, &y, &batch);
        let tol = TOL * norm.max(1.0);
        match (&verdict, mu) {
            (Verdict::StronglyConvex, Some(m)) => {
                prop_assert!(m > 0.0, "μ = {m} with a strongly convex verdict\n{src}");
                prop_assert!(
                    l >= m - tol,
                    "λmin = {l} < certified μ = {m} at x = {x:?}, y = {y:?}\n{src}"
                );
            }
            (Verdict::StronglyConvexDependsOnX | Verdict::Convex, None) => {
                prop_assert!(
                    l >= -tol,
                    "λmin = {l} < 0 with verdict {verdict:?} at x = {x:?}, y = {y:?}\n{src}"
                );
            }
            (v, m) => prop_assert!(false, "unexpected verdict {v:?} with μ {m:?}\n{src}"),
        }
    }
    let congruent = mu.is_some() && c.program().spec.analysis.mu_text.contains("M'");
    Ok(Some((mu.is_some(), congruent)))
}

#[test]
fn certified_mu_bounds_the_hessian_of_every_accepted_spec() {
    use proptest::test_runner::{Config, TestRunner};
    use std::cell::Cell;
    let (accepted, certified) = (Cell::new(0u32), Cell::new(0u32));
    let congruent = Cell::new(0u32);
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        ..Config::default()
    });
    let result = runner.run(&(objective(), any::<u64>()), |((g, p, q, m), seed)| {
        if let Some((cert, cong)) = check_case(&g, (&p, &q, &m), seed)? {
            accepted.set(accepted.get() + 1);
            certified.set(certified.get() + u32::from(cert));
            congruent.set(congruent.get() + u32::from(cong));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generator must exercise the certificate, not only the checker's
    // rejections.
    let (a, c) = (accepted.get(), certified.get());
    let k = congruent.get();
    eprintln!("{CASES} specs: {a} accepted, {c} certified with a μ, {k} of them through λmin(M'·P·M) or λmin(M'·M)");
    assert!(
        k >= CASES / 200,
        "only {k} certificates use a congruent credit"
    );
    assert!(a >= CASES / 4, "only {a} of {CASES} specs accepted");
    assert!(
        c >= CASES / 10,
        "only {c} of {CASES} specs certified with a μ"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn verified_lambda_min_is_a_lower_bound(
        v in prop::collection::vec(-3.0f64..3.0, 16),
        shift in prop_oneof![Just(0.0), Just(1e-12), Just(1e-6), -1.0f64..2.0],
        singular in any::<bool>(),
    ) {
        // S = AᵀA (+ shift·I), A 4×4, rank 3 when `singular`.
        let n = 4;
        let mut a = nalgebra::DMatrix::from_row_slice(n, n, &v);
        if singular {
            for j in 0..n {
                a[(3, j)] = a[(0, j)] + a[(1, j)];
            }
        }
        let s = a.transpose() * &a + nalgebra::DMatrix::identity(n, n) * shift;
        let m: Vec<f64> = (0..n * n).map(|k| s[(k / n, k % n)]).collect();
        let b = bilevel_dsl::lambda_min_bound(&m, n, None);
        let eig = s.clone().symmetric_eigen().eigenvalues.min();
        let scale = s.norm().max(1.0);
        prop_assert!(b.lower <= eig + 1e-12 * scale, "bound {} above λmin {eig}", b.lower);
        if eig > 1e-6 * scale {
            prop_assert!(b.lower > 0.0 && b.lower >= eig - 1e-6 * scale, "bound {} far below λmin {eig}", b.lower);
        }
        if b.indefinite {
            prop_assert!(eig < 0.0, "indefinite verdict for λmin {eig}");
        }
    }
}

// ---------------------------------------------------------------------------
// Regression fixtures: every unsound family and false alarm of issue 14 §2.

/// Builds a spec with upper `x: vector[3]`, scalar upper `t`, the given
/// extra declarations and lower block body.
fn build(decls: &str, lower: &str) -> Result<bilevel_dsl::Program, String> {
    let src = format!(
        "bilevel \"reg\" version 1\n\
         param c: vector[3] = [0.5, -1.0, 0.25]\n\
         data d = csv(\"d.csv\") {{ header = true, label = \"y\", features = all_except([\"y\"]), batch = 2, sampler = shuffle, seed = 3 }}\n\
         {decls}\n\
         upper {{ var x: vector[3] init zeros\n var t: scalar init 0  minimize norm2sq(x) + t * t }}\n\
         lower {{ {lower} }}\n"
    );
    bilevel_dsl::build(&src, &data_dir()).map_err(|d| bilevel_dsl::render(&d, "reg", &src))
}

fn verdict_of(decls: &str, lower: &str) -> (Verdict, Option<f64>) {
    let p = build(decls, lower).unwrap_or_else(|e| panic!("{e}"));
    (p.spec.analysis.verdict.clone(), p.mu)
}

fn error_of(decls: &str, lower: &str) -> String {
    match build(decls, lower) {
        Ok(p) => panic!("accepted with {:?}, mu {:?}", p.spec.analysis.verdict, p.mu),
        Err(e) => e,
    }
}

const Y3: &str = "var y: vector[3] init zeros\n";
const YM: &str = "var Y: matrix[2, 3] init zeros\n";

#[test]
fn indexing_and_gathers_credit_only_the_coordinates_they_cover() {
    for g in [
        "(y[0])^2 + dot(y, x)",
        "let_a ^ 2 + dot(y, x)",
        "mean over s in d { (y[s.index])^2 } + dot(y, x)",
        "(y[0] + y[1])^2 + (y[2])^2 + dot(y, x)",
        "norm2sq(y[0] + y[1]) + norm2sq(y[2]) + dot(y, x)",
    ] {
        let decls = "let let_a = y[2]";
        let (v, mu) = verdict_of(decls, &format!("{Y3} minimize {g}"));
        assert_eq!((v, mu), (Verdict::Convex, None), "{g}");
    }
    for g in [
        "norm2sq(Y[0]) + dot(Y[1], x)",
        "quad(P, Y[0]) + dot(Y[1], x)",
    ] {
        let decls = "param P: matrix[3, 3] = eye";
        let (v, mu) = verdict_of(decls, &format!("{YM} minimize {g}"));
        assert_eq!((v, mu), (Verdict::Convex, None), "{g}");
    }
    // Positive controls: every coordinate covered, with its multiplicity.
    let (v, mu) = verdict_of(
        "",
        &format!("{Y3} minimize (y[0])^2 + (y[1])^2 + (y[2])^2 + (y[2])^2 + dot(y, x)"),
    );
    assert_eq!(v, Verdict::StronglyConvex);
    let mu = mu.expect("mu");
    assert!(mu <= 2.0 && mu > 2.0 - 1e-12, "{mu}");
    let (v, mu) = verdict_of(
        "",
        &format!("{YM} minimize norm2sq(Y[0]) + 3.0 * norm2sq(Y[1]) + dot(Y[1], x)"),
    );
    assert_eq!(v, Verdict::StronglyConvex);
    assert!(mu.expect("mu") <= 2.0 && mu.expect("mu") > 2.0 - 1e-12);
}

#[test]
fn stored_matrices_are_verified_not_trusted() {
    // spd at κ = 1e17: the rounded matrix's λmin is not 1e-17; whatever is
    // certified is below the stored matrix's smallest eigenvalue.
    let decls = "param A: matrix[40, 40] = spd(kappa = 1e17, seed = 5)";
    let p = build(
        decls,
        "var y: vector[40] init zeros\n minimize 0.5 * quad(A, y) - x[0] * sum(y)",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let a = nalgebra::DMatrix::from_row_slice(40, 40, &p.params[1]);
    let eig = ((&a + a.transpose()) * 0.5)
        .symmetric_eigen()
        .eigenvalues
        .min();
    // The reported λmin is the verified bound (below the eigen-solver's
    // value), and μ never exceeds it: the generator's 1/κ is not used.
    let (_, bound) = p.lambda_min[0].clone();
    assert!(bound <= eig + 1e-12, "bound {bound} above λmin {eig}");
    assert!(
        p.mu.is_none_or(|mu| mu <= bound.max(0.0)),
        "mu {:?} above the verified bound {bound}",
        p.mu
    );
    // An exactly singular integer matrix is not strongly convex.
    let (v, mu) = verdict_of(
        "param P: matrix[2, 2] = [[1.0, 2.0], [2.0, 4.0]]",
        "var y: vector[2] init zeros\n minimize quad(P, y) - x[0] * sum(y)",
    );
    assert_eq!((v, mu), (Verdict::Convex, None));
    // Above n = 256 the check still runs: spd(κ = 10) certifies ≈ 0.1, an
    // indefinite matrix is refused.
    let p = build(
        "param A: matrix[300, 300] = spd(kappa = 10, seed = 2)",
        "var y: vector[300] init zeros\n minimize 0.5 * quad(A, y) - x[0] * sum(y)",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mu = p.mu.expect("mu");
    assert!(mu <= 0.1 + 1e-12 && mu > 0.1 * (1.0 - 1e-6), "{mu}");
    let e = error_of(
        "param A: matrix[300, 300] = normal(std = 1, seed = 2)",
        "var y: vector[300] init zeros\n minimize quad(A, y) + norm2sq(y) - x[0] * sum(y)",
    );
    assert!(e.contains("E0505"), "{e}");
}

#[test]
fn exponents_are_exact_and_overflow_is_an_error() {
    let e = error_of(
        "",
        &format!("{Y3} minimize (norm2sq(y))^0.9999999999999999 - dot(y, x)"),
    );
    assert!(e.contains("E0302"), "{e}");
    let (v, mu) = verdict_of("", &format!("{Y3} minimize (norm2sq(y))^1.0 - dot(y, x)"));
    assert_eq!(v, Verdict::StronglyConvex);
    assert!(mu.is_some_and(|m| m <= 2.0 && m > 2.0 - 1e-12));
    let (v, _) = verdict_of(
        "",
        &format!("{Y3} minimize (norm2sq(y))^1.0000000000000002 - dot(y, x)"),
    );
    assert_eq!(v, Verdict::Convex);
    for g in [
        "exp(1000.0) * norm2sq(y) - dot(y, x)",
        "1e308 * 10.0 * norm2sq(y) - dot(y, x)",
    ] {
        let e = error_of("", &format!("{Y3} minimize {g}"));
        assert!(e.contains("E0305"), "{g}: {e}");
    }
}

#[test]
fn assumptions_name_their_variable_apply_to_it_alone_and_cannot_contradict() {
    // Proven 1e-3, assumed 1: the run uses the assumption, and says so.
    let p = build(
        "assume strongly_convex(y, mu = 1.0)",
        &format!("{Y3} minimize 0.5 * 1e-3 * norm2sq(y) + sum(cos(y)) - dot(y, x)"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.spec.analysis.verdict, Verdict::Assumed);
    assert_eq!(p.mu, Some(1.0));
    assert!(p
        .warnings
        .iter()
        .any(|d| d.code == bilevel_dsl::Code::N0307));
    // Concave or affine in y: an assumption contradicts the analysis.
    for g in ["dot(y, x) - norm2sq(y)", "dot(y, x)"] {
        let e = error_of(
            "assume strongly_convex(y, mu = 1.0)",
            &format!("{Y3} minimize {g}"),
        );
        assert!(e.contains("E0306"), "{g}: {e}");
    }
    // An assumption on y says nothing about z.
    let p = build(
        "assume strongly_convex(y, mu = 1.0)",
        &format!("{Y3} var z: vector[2] init zeros\n minimize norm2sq(y) + sum(exp(z)) - dot(y, x) - t * sum(z)"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.mu, None);
    // It must name a lower variable.
    let e = error_of(
        "assume strongly_convex(x, mu = 1.0)",
        &format!("{Y3} minimize norm2sq(y) - dot(y, x)"),
    );
    assert!(e.contains("E0104"), "{e}");
}

#[test]
fn affine_terms_and_products_are_not_false_alarms() {
    let (v, mu) = verdict_of(
        "",
        &format!("{Y3} minimize 0.5 * norm2sq(y) - t * sum(y + c)"),
    );
    assert_eq!(v, Verdict::StronglyConvex);
    assert!(mu.is_some_and(|m| m <= 1.0 && m > 1.0 - 1e-12));
    let (v, _) = verdict_of(
        "",
        &format!("{Y3} minimize sum(exp(t) * y * y) - dot(y, x)"),
    );
    assert_eq!(v, Verdict::StronglyConvexDependsOnX);
    let (v, _) = verdict_of(
        "",
        &format!("{Y3} minimize sum(exp(t) * y ^ 2) - dot(y, x)"),
    );
    assert_eq!(v, Verdict::StronglyConvexDependsOnX);
}

#[test]
fn positive_vector_factors_scale_the_credit_and_others_do_not() {
    // benchopt's per-feature ridge ½ Σ exp(xⱼ) yⱼ² (decision 111).
    for g in [
        "0.5 * sum(exp(x) * y ^ 2) - dot(y, c)",
        "sum(y ^ 2 * exp(x)) - dot(y, c)",
        "sum(softplus(x) * (y * y)) + logsumexp(y)",
        "mean(sigmoid(x) * (y - c) ^ 2)",
    ] {
        let (v, mu) = verdict_of("", &format!("{Y3} minimize {g}"));
        assert_eq!(v, Verdict::StronglyConvexDependsOnX, "{g}");
        assert!(mu.is_none(), "{g}");
    }
    // A factor of unknown sign: not convex; only nonnegative: no credit.
    let e = error_of("", &format!("{Y3} minimize sum(x * y ^ 2)"));
    assert!(e.contains("E0302"), "{e}");
    let e = error_of("", &format!("{Y3} minimize sum(c * y ^ 2)"));
    assert!(e.contains("E0302"), "{e}");
    let (v, _) = verdict_of("", &format!("{Y3} minimize sum(x ^ 2 * y ^ 2)"));
    assert_eq!(v, Verdict::Convex);
    // A quotient by a positive vector is not given the rule.
    let (v, _) = verdict_of("", &format!("{Y3} minimize sum(y ^ 2 / exp(x))"));
    assert_eq!(v, Verdict::Convex);
}

#[test]
fn doubling_let_chains_stay_linear() {
    // a_{k+1} = a_k + a_k: the old μ text doubled at every level.
    let mut decls = String::from("let a0 = 0.5 * norm2sq(y)\n");
    for k in 1..=200 {
        let _ = writeln!(decls, "let a{k} = a{} + a{}", k - 1, k - 1);
    }
    let start = std::time::Instant::now();
    let p = build(&decls, &format!("{Y3} minimize a200 * 1e-60 - dot(y, x)"))
        .unwrap_or_else(|e| panic!("{e}"));
    let took = start.elapsed();
    assert_eq!(p.spec.analysis.verdict, Verdict::StronglyConvex);
    assert!(
        p.spec.analysis.mu_text.len() < 40,
        "{}",
        p.spec.analysis.mu_text
    );
    let want = 2f64.powi(200) * 1e-60;
    let mu = p.mu.expect("mu");
    assert!(mu <= want && mu > want * (1.0 - 1e-9), "{mu} vs {want}");
    assert!(took.as_secs_f64() < 10.0, "{took:?}");
}

#[test]
fn quadratic_forms_of_linear_maps_are_credited_by_their_congruent_product() {
    // Hessian Mᵀ·P·M = [[2, 2.5], [2.5, 4]] (λmin = 3 − √7.25 ≈ 0.3074).
    let decls = "param P: matrix[2, 2] = [[2.0, 0.5], [0.5, 1.0]]\n\
                 param M: matrix[2, 2] = [[1.0, 1.0], [0.0, 1.0]]\n\
                 param b: vector[2] = [0.5, -1.0]";
    let (v, mu) = verdict_of(
        decls,
        "var y: vector[2] init zeros\n minimize 0.5 * quad(P, M @ y + b) - x[0] * sum(y)",
    );
    assert_eq!(v, Verdict::StronglyConvex);
    let want = 3.0 - 7.25f64.sqrt();
    let mu = mu.expect("mu");
    assert!(mu <= want && mu > want - 1e-9, "{mu} vs {want}");
    // norm2sq(2 M y): 8·λmin(MᵀM) = 8·(3 − √5)/2.
    let (v, mu) = verdict_of(
        decls,
        "var y: vector[2] init zeros\n minimize norm2sq(2.0 * (M @ y)) - x[0] * sum(y)",
    );
    assert_eq!(v, Verdict::StronglyConvex);
    let want = 4.0 * (3.0 - 5f64.sqrt());
    let mu = mu.expect("mu");
    assert!(mu <= want && mu > want - 1e-9, "{mu} vs {want}");
    // A singular map: convex only.
    let (v, mu) = verdict_of(
        "param S: matrix[2, 2] = [[1.0, 2.0], [2.0, 4.0]]\nparam b: vector[2] = [0.5, -1.0]",
        "var y: vector[2] init zeros\n minimize sq_loss(S @ y, b) - x[0] * sum(y)",
    );
    assert_eq!((v, mu), (Verdict::Convex, None));
}
