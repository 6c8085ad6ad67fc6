//! Regression tests of issue 14's defects: each input once crashed, was
//! accepted with a wrong meaning, or was refused although valid.

use bilevel_core::oracle::{Level, LowerGradY, LowerValue, Oracle};
use bilevel_core::DefaultRng;
use bilevel_dsl::Compiled;
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
        Err(d) => panic!("{}", bilevel_dsl::render(&d, "nest", src)),
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

#[test]
fn synthetic_normal_mean_is_used_even_with_zero_std() {
    let src = |mean: &str, std: &str| {
        format!(
            "bilevel \"m\" version 1\n\
             data d = synth.normal(dim = 2, mean = {mean}, std = {std}) {{ batch = 2, seed = 1 }}\n\
             upper {{ var x: vector[2] init zeros  minimize norm2sq(x) + norm2sq(y) }}\n\
             lower {{ var y: vector[2] init zeros  minimize mean over s in d {{ dot(y, s.z) }} + 0.5 * norm2sq(y - x) }}\n"
        )
    };
    for (mean, std) in [("100", "0"), ("100", "0.0"), ("-3.5", "0"), ("7", "1e-300")] {
        let s = src(mean, std);
        let mut c = Compiled::from_source(&s, std::path::Path::new(".")).expect("compiles");
        let mut rng = DefaultRng::seed_from_u64(2);
        let b = c.sample(Level::Lower, &mut rng);
        let mut gy = vec![0.0; 2];
        c.grad_y_g(&[0.0, 0.0], &[0.0, 0.0], &b, &mut gy);
        let m: f64 = mean.parse().unwrap();
        // ∇ᵧg at y = x = 0 is the mean draw.
        for g in &gy {
            assert!(
                (g - m).abs() <= 1e-9 * m.abs(),
                "mean {mean}, std {std}: ∇g {gy:?}"
            );
        }
        let p = c.population(Level::Lower);
        c.grad_y_g(&[0.0, 0.0], &[0.0, 0.0], &p, &mut gy);
        for g in &gy {
            assert!(
                (g - m).abs() <= 1e-9 * m.abs(),
                "population, mean {mean}: ∇g {gy:?}"
            );
        }
    }
}

/// The codes of the diagnostics of `src` (errors only), or `[]` when it checks.
fn error_codes(src: &str) -> Vec<&'static str> {
    match bilevel_dsl::check_source(src) {
        Ok(_) => Vec::new(),
        Err(d) => d
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.code.as_str())
            .collect(),
    }
}

fn with_g(head: &str, g: &str) -> String {
    format!(
        "bilevel \"t\" version 1\n{head}\n\
         upper {{ var x: vector[2] init zeros  minimize norm2sq(x) + norm2sq(y) }}\n\
         lower {{ var y: vector[2] init zeros  minimize {g} + 0.5 * norm2sq(y - x) }}\n"
    )
}

#[test]
fn class_indices_known_at_check_time_are_in_range() {
    for (class, ok) in [("0", true), ("1", true), ("2", false), ("5", false)] {
        let src = with_g("", &format!("softmax_xent(y, {class})"));
        let codes = error_codes(&src);
        assert_eq!(codes.is_empty(), ok, "class {class}: {codes:?}");
        if !ok {
            assert_eq!(codes, ["E0201"], "class {class}");
        }
    }
    let src = with_g("let acc = correct(y, 3)", "sum(y)");
    assert_eq!(error_codes(&src), ["E0201"]);
}

#[test]
fn constant_domain_errors_are_caught_at_check_time() {
    for g in [
        "log(-1.0) * sum(y)",
        "sum(y) + log(0)",
        "sqrt(-2) * sum(y)",
        "sum(y) / 0",
        "sum(y) * (-8) ^ 0.5",
        "sum(log([1.0, -1.0]) * y)",
        "sum(y) * log(c)",
    ] {
        let src = with_g("param c: scalar = 0 - 3", g);
        assert_eq!(error_codes(&src), ["E0205"], "{g}");
    }
    // The same in f.
    let src = "bilevel \"t\" version 1\n\
               upper { var x: vector[2] init zeros  minimize norm2sq(x) + log(-1.0) }\n\
               lower { var y: vector[2] init zeros  minimize 0.5 * norm2sq(y - x) }\n";
    assert_eq!(error_codes(src), ["E0205"]);
    // Valid constants stay valid.
    for g in [
        "log(2.0) * sum(y)",
        "sqrt(0) + sum(y)",
        "sum(y) * (-8) ^ 2",
        "sum(y) / 2",
    ] {
        assert!(error_codes(&with_g("", g)).is_empty(), "{g}");
    }
}

#[test]
fn seeds_must_be_whole_numbers_at_least_zero() {
    for (seed, ok) in [("0", true), ("7", true), ("0 - 5", false), ("1.5", false)] {
        let src = format!(
            "bilevel \"t\" version 1\n\
             upper {{ var x: vector[2] init normal(std = 1, seed = {seed})  minimize norm2sq(x) + norm2sq(y) }}\n\
             lower {{ var y: vector[2] init zeros  minimize 0.5 * norm2sq(y - x) }}\n"
        );
        let codes = error_codes(&src);
        assert_eq!(codes.is_empty(), ok, "seed {seed}: {codes:?}");
    }
}

#[test]
fn only_version_one_is_accepted() {
    for (v, ok) in [
        ("1", true),
        ("1.0", true),
        ("2", false),
        ("0.5", false),
        ("99", false),
    ] {
        let src = with_g("", "sum(y)").replace("version 1", &format!("version {v}"));
        let codes = error_codes(&src);
        assert_eq!(codes.is_empty(), ok, "version {v}: {codes:?}");
        if !ok {
            assert_eq!(codes, ["E0002"]);
        }
    }
}

#[test]
fn algorithm_names_take_dashes_or_underscores() {
    for name in ["bo-rep", "bo_rep", "BO-REP"] {
        let src = format!("{}algorithm {name} {{ }}\n", with_g("", "sum(y)"));
        let spec = bilevel_dsl::check_source(&src)
            .unwrap_or_else(|d| panic!("{name}: {}", bilevel_dsl::render(&d, "t", &src)));
        assert_eq!(spec.algorithm.expect("algorithm").info.name, "bo-rep");
    }
}

#[test]
fn byte_order_mark_and_every_line_end_parse_alike() {
    let base = format!("# a comment\n{}", with_g("", "sum(y)"));
    for variant in [
        format!("\u{feff}{base}"),
        base.replace('\n', "\r\n"),
        base.replace('\n', "\r"),
        format!("\u{feff}{}", base.replace('\n', "\r")),
    ] {
        assert!(error_codes(&variant).is_empty(), "{variant:?}");
    }
    // An error on line 5 is reported on line 5 whatever the line ends, and
    // the help points at line 4.
    let bad = format!("# c\n{}", with_g("", "sum(q)"));
    for variant in [
        bad.clone(),
        bad.replace('\n', "\r"),
        format!("\u{feff}{}", bad.replace('\n', "\r\n")),
    ] {
        let d = bilevel_dsl::check_source(&variant).expect_err("undeclared q");
        let text = bilevel_dsl::render(&d, "t.bilevel", &variant);
        assert!(text.contains("t.bilevel:5:51"), "{text}");
        assert!(text.contains("declared at 4:13"), "{text}");
    }
}

#[test]
fn a_23_by_23_matrix_literal_is_accepted() {
    let n = 23;
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let r: Vec<String> = (0..n)
                .map(|j| {
                    if i == j {
                        "2.0".into()
                    } else {
                        format!("-{}", 0.01 * f64::from(i + j))
                    }
                })
                .collect();
            format!("[{}]", r.join(", "))
        })
        .collect();
    let src = format!(
        "bilevel \"big\" version 1\n\
         param P: matrix[{n}, {n}] = [{}]\n\
         upper {{ var x: vector[{n}] init zeros  minimize norm2sq(x) + norm2sq(y) }}\n\
         lower {{ var y: vector[{n}] init zeros  minimize quad(P, y) - dot(x, y) }}\n",
        rows.join(", ")
    );
    assert!(error_codes(&src).is_empty(), "{:?}", error_codes(&src));
    // Literals stay bounded: beyond the limit they are refused with E0602.
    let huge = format!(
        "bilevel \"huge\" version 1\nparam v: vector[300000] = [{}]\n",
        vec!["1"; 300_000].join(",")
    );
    assert!(error_codes(&huge).contains(&"E0602"));
}

#[test]
fn per_call_work_of_nested_reductions_is_bounded_at_check_time() {
    let src = |batch: u32, depth: usize| {
        let mut body = "dot(y, s0.z)".to_string();
        for k in (0..depth).rev() {
            body = format!("mean over s{k} in d {{ {body} }}");
        }
        format!(
            "bilevel \"w\" version 1\n\
             data d = synth.normal(dim = 2) {{ batch = {batch} }}\n\
             upper {{ var x: vector[2] init zeros  minimize norm2sq(x) + norm2sq(y) }}\n\
             lower {{ var y: vector[2] init zeros  minimize {body} + 0.5 * norm2sq(y - x) }}\n"
        )
    };
    // 1000 + 1000² body evaluations: accepted; 1000³: refused, with the estimate.
    assert!(error_codes(&src(1000, 2)).is_empty());
    let s = src(1000, 3);
    let d = bilevel_dsl::check_source(&s).expect_err("too much work");
    assert_eq!(d[0].code.as_str(), "E0605");
    assert!(d[0].message.contains("1.001e9"), "{}", d[0].message);
    // The bound is on the product of batch sizes, not on the nesting.
    assert!(error_codes(&src(2, 20)).is_empty());
    assert_eq!(error_codes(&src(4, 14)), ["E0605"]);
}

#[test]
fn did_you_mean_is_bounded_on_long_names() {
    // A 500,000-character undeclared name next to a declared one of the
    // same length once took 437 s (quadratic edit distance).
    let long = "a".repeat(500_000);
    let src = format!(
        "bilevel \"long\" version 1\nparam {long}b: scalar = 1\n\
         upper {{ var x: vector[2] init zeros  minimize norm2sq(x) + norm2sq(y) }}\n\
         lower {{ var y: vector[2] init zeros  minimize {long}c * sum(y) + 0.5 * norm2sq(y - x) }}\n"
    );
    let d = bilevel_dsl::check_source(&src).expect_err("undeclared");
    let e = d
        .iter()
        .find(|d| d.code.as_str() == "E0101")
        .expect("E0101");
    assert!(e.help.is_none(), "no suggestion for a name over the cutoff");
    // Short names still get one.
    let src = with_g("param alpha: scalar = 1", "alpa * sum(y)");
    let d = bilevel_dsl::check_source(&src).expect_err("undeclared");
    assert!(d[0].help.as_deref().unwrap_or("").contains("`alpha`"));
}

#[test]
fn total_parameter_memory_is_capped() {
    // 12 parameters of 4096² once took 3 GB from a 1 KB file.
    let head = (0..12)
        .map(|k| format!("param P{k}: matrix[4096, 4096] = zeros"))
        .collect::<Vec<_>>()
        .join("\n");
    let src = with_g(&head, "sum(y)");
    let d = bilevel_dsl::check_source(&src).expect_err("over the cap");
    let e: Vec<_> = d.iter().filter(|d| d.code.as_str() == "E0204").collect();
    assert_eq!(e.len(), 1, "one diagnostic: {d:?}");
    assert!(e[0].message.contains("16777216"), "{}", e[0].message);
    // Up to the cap it is fine (one 4096² matrix is exactly 2^24 numbers).
    let src = with_g("param P: matrix[4096, 4096] = zeros", "sum(y)");
    assert!(error_codes(&src).is_empty());
}

#[test]
fn an_epoch_budget_needs_a_data_table_in_the_lower_level() {
    // Issue 15 §3: `run { epochs = 3 }` without a table in g once passed
    // `check` and then ran forever (no epoch is ever counted).
    let spec = |data: &str, lets: &str, term: &str, run: &str| {
        format!(
            "bilevel \"e\" version 1\n{data}\n{lets}\n\
             upper {{ var x: vector[2] init zeros  minimize norm2sq(x) + norm2sq(y) }}\n\
             lower {{ var y: vector[2] init zeros  minimize {term} + 0.5 * norm2sq(y - x) }}\n\
             run {{ {run} }}\n"
        )
    };
    let table =
        "data t = csv(\"data/t.csv\") { label = \"y\", features = [\"a\", \"b\"], batch = 2 }";
    let synth = "data s = synth.normal(dim = 2) { batch = 2 }";
    let both = format!("{table}\n{synth}");
    let cases = [
        // (data, lets, term of g, run, codes)
        ("", "", "sum(y)", "epochs = 3", vec!["E0408"]),
        (
            synth,
            "",
            "mean over r in s { dot(y, r.z) }",
            "epochs = 3",
            vec!["E0408"],
        ),
        // A table declared but read by f only does not count.
        (table, "", "sum(y)", "epochs = 1", vec!["E0408"]),
        (
            table,
            "",
            "mean over r in t { dot(y, r.x) }",
            "epochs = 3",
            vec![],
        ),
        // Through a `let`, and next to a synthetic source.
        (
            &both,
            "let m = mean over r in t { r.x }",
            "dot(y, m)",
            "epochs = 2",
            vec![],
        ),
        (
            &both,
            "let m = mean over r in s { r.z }",
            "dot(y, m)",
            "epochs = 2",
            vec!["E0408"],
        ),
        // Iteration budgets need no table; both budgets is E0405 alone.
        (synth, "", "sum(y)", "iterations = 5", vec![]),
        (
            "",
            "",
            "sum(y)",
            "iterations = 5, epochs = 3",
            vec!["E0405"],
        ),
    ];
    for (data, lets, term, run, want) in cases {
        let src = spec(data, lets, term, run);
        assert_eq!(error_codes(&src), want, "{src}");
    }
    // The error points at the setting.
    let src = spec(synth, "", "sum(y)", "seed = 1, epochs = 3");
    let d = bilevel_dsl::check_source(&src).expect_err("E0408");
    let text = bilevel_dsl::render(&d, "e.bilevel", &src);
    assert!(text.contains("e.bilevel:6:17"), "{text}");
}
