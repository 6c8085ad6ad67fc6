//! Regression tests of issue 14's defects: each input once crashed, was
//! accepted with a wrong meaning, or was refused although valid.

use bilevel_core::oracle::{Level, LowerGradY, LowerValue, Oracle};
use bilevel_core::DefaultRng;
use bilevel_dsl::compiled::Compiled;
use rand_core::SeedableRng;

/// A spec with two synthetic sources `d` and `e` and lower objective `g`.
fn spec(lets: &str, g: &str) -> String {
    format!(
        "bilevel \"nest\" version 1\n\
         data d = synth.normal(dim = 3, std = 1.0) {{ batch = 4, seed = 3 }}\n\
         data e = synth.normal(dim = 3, std = 1.0) {{ batch = 3, seed = 4 }}\n\
         {lets}\n\
         upper {{ var x: vector[3] init zeros  minimize norm2sq(x) + norm2sq(y) }}\n\
         lower {{ var y: vector[3] init zeros  minimize {g} + 0.5 * norm2sq(y - x) }}\n"
    )
}

/// g and ∇ᵧg at a fixed point on the first lower minibatch of seed 11.
fn eval(src: &str) -> (f64, Vec<f64>) {
    let mut c = match Compiled::from_source(src, std::path::Path::new(".")) {
        Ok(c) => c,
        Err(d) => panic!("{}", bilevel_dsl::diag::render(&d, "nest", src)),
    };
    let mut rng = DefaultRng::seed_from_u64(11);
    let b = c.sample(Level::Lower, &mut rng);
    let (x, y) = ([0.2, -0.1, 0.4], [0.7, -0.3, 0.25]);
    let mut gy = vec![0.0; 3];
    c.grad_y_g(&x, &y, &b, &mut gy);
    (c.g_value(&x, &y, &b), gy)
}

fn assert_same(a: &str, b: &str) {
    let (ga, da) = eval(a);
    let (gb, db) = eval(b);
    let close = |p: f64, q: f64| (p - q).abs() <= 1e-12 * (1.0 + p.abs().max(q.abs()));
    assert!(close(ga, gb), "g {ga} vs {gb}\n{a}\n{b}");
    for (p, q) in da.iter().zip(&db) {
        assert!(close(*p, *q), "grad {da:?} vs {db:?}\n{a}\n{b}");
    }
}

#[test]
fn nested_reduction_whose_body_ignores_the_outer_sample() {
    // Once an index out of bounds in the lowering (lower.rs:170).
    assert_same(
        &spec("", "mean over s in d { mean over t in d { dot(y, t.z) } }"),
        &spec("", "mean over t in d { dot(y, t.z) }"),
    );
    assert_same(
        &spec("", "sum over s in e { mean over t in d { dot(y, t.z) } }"),
        &spec("", "3 * mean over t in d { dot(y, t.z) }"),
    );
    // The innermost body uses the outermost sample only.
    assert_same(
        &spec(
            "",
            "mean over s in d { mean over t in e { mean over u in d { dot(y, s.z) * sum(u.z) } } }",
        ),
        &spec(
            "",
            "(mean over s in d { dot(y, s.z) }) * (mean over u in d { sum(u.z) })",
        ),
    );
    // A reduction hoisted out of a loop next to one that stays in it.
    assert_same(
        &spec(
            "",
            "mean over s in d { dot(y, s.z) + mean over t in e { dot(y, t.z) } }",
        ),
        &spec(
            "",
            "mean over s in d { dot(y, s.z) } + mean over t in e { dot(y, t.z) }",
        ),
    );
    // A `let` holding a reduction, used inside another reduction.
    assert_same(
        &spec(
            "let m = mean over u in e { u.z }",
            "mean over s in d { dot(y, s.z) * sum(m) }",
        ),
        &spec(
            "",
            "(mean over s in d { dot(y, s.z) }) * sum(mean over u in e { u.z })",
        ),
    );
}
