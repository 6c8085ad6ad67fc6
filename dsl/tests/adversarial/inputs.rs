//! Adversarial `.bilevel` inputs of issue 14 §4: the small files that once
//! took minutes or gigabytes, and one generated file of just under 1 MiB
//! for each worst shape (shared by the test `adversarial`, the benchmark
//! `check_adversarial` and the example `adversarial`, which writes them to
//! a folder for `/usr/bin/time -v bilevel check`).

/// Largest generated file, in bytes: just under the parser's 1 MiB limit.
pub const TARGET: usize = (1 << 20) - 4096;

/// The head and the two levels every generated spec shares; `decls` go
/// between the header and the levels, `g` is the lower objective's extra
/// term (y is `vector[n]`).
fn spec(decls: &str, n: usize, g: &str) -> String {
    format!(
        "bilevel \"adversarial\" version 1\n{decls}\n\
         upper {{ var x: vector[{n}] init zeros  minimize norm2sq(x) + norm2sq(y) }}\n\
         lower {{ var y: vector[{n}] init zeros  minimize {g} + 0.5 * norm2sq(y - x) }}\n"
    )
}

/// Repeats `line(k)` for k = 0, 1, … while the total stays under `budget`
/// bytes and there are fewer than `max` lines.
fn lines(budget: usize, max: usize, line: impl Fn(usize) -> String) -> (String, usize) {
    let mut out = String::new();
    let mut k = 0;
    while k < max {
        let l = line(k);
        if out.len() + l.len() + 1 > budget {
            break;
        }
        out.push_str(&l);
        out.push('\n');
        k += 1;
    }
    (out, k)
}

/// `let a0 = 0.5 * norm2sq(y); let a1 = a0 + a0; …` up to a26 (once > 120 s
/// and 3 GB: the μ text doubled at each level).
fn doubling_lets(levels: usize, name: &str) -> (String, usize) {
    let pad = |k: usize| format!("{name}{k}");
    let mut out = format!("let {} = 0.5 * norm2sq(y)\n", pad(0));
    for k in 1..levels {
        let (a, b) = (pad(k), pad(k - 1));
        out += &["let ", &a, " = ", &b, " + ", &b, "\n"].concat();
    }
    (out, levels)
}

/// The small inputs of §4, as filed.
fn filed() -> Vec<(&'static str, String)> {
    let (chain, _) = doubling_lets(27, "a");
    let long = "a".repeat(500_000);
    let params: Vec<String> = (0..12)
        .map(|k| format!("param P{k}: matrix[4096, 4096] = zeros"))
        .collect();
    let params = params.join("\n");
    let nested = "bilevel \"w\" version 1\n\
         data d = synth.normal(dim = 2) { batch = 1000 }\n\
         upper { var x: vector[2] init zeros  minimize norm2sq(x) + norm2sq(y) }\n\
         lower { var y: vector[2] init zeros  minimize mean over s0 in d { mean over s1 in d { mean over s2 in d { dot(y, s0.z) } } } + 0.5 * norm2sq(y - x) }\n"
        .to_string();
    vec![
        ("filed_let_chain_a26", spec(&chain, 2, "a26")),
        (
            "filed_long_name",
            spec(
                &format!("param {long}b: scalar = 1"),
                2,
                &format!("{long}c * sum(y)"),
            ),
        ),
        ("filed_params_4096sq_x12", spec(&params, 2, "sum(y)")),
        ("filed_nested_batch_1000", nested),
    ]
}

/// One file of just under 1 MiB per worst shape.
fn generated() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    // Doubling `let` chain as long as the declaration limit allows, with
    // names as long as the file allows.
    let (chain, k) = doubling_lets(997, &"l".repeat(TARGET / 3100));
    let last = format!("{}{}", "l".repeat(TARGET / 3100), k - 1);
    out.push(("let_chain_999_long_names", spec(&chain, 2, &last)));
    // One name of ~1 MiB, undeclared, next to a declared one of the same
    // length (did-you-mean).
    let long = "n".repeat(TARGET / 2 - 2000);
    out.push((
        "huge_name",
        spec(
            &format!("param {long}a: scalar = 1"),
            2,
            &format!("{long}b * sum(y)"),
        ),
    ));
    // Many misspelled names of the did-you-mean length limit, each
    // compared with every declared name.
    let name = |k: usize, c: char| format!("{c}{}{k:05}", "q".repeat(58));
    let (decls, _) = lines(TARGET / 2, 499, |k| {
        format!("param {}: scalar = 1", name(k, 'p'))
    });
    let (uses, _) = lines(TARGET / 2, 499, |k| format!("let u{k} = {}", name(k, 'r')));
    out.push(("many_misspelled_names", spec(&(decls + &uses), 2, "sum(y)")));
    // The widest literal: a 511 × 511 matrix (the literal limit counts
    // numbers and brackets), used in quad.
    let rows: Vec<String> = (0..511)
        .map(|i| {
            let r: Vec<&str> = (0..511).map(|j| if i == j { "2" } else { "0" }).collect();
            format!("[{}]", r.join(", "))
        })
        .collect();
    out.push((
        "wide_literal_511sq",
        spec(
            &format!("param P: matrix[511, 511] = [{}]", rows.join(", ")),
            511,
            "quad(P, y)",
        ),
    ));
    // Nested reductions at the nesting limit, in every `let`.
    let mut body = "dot(y, s0.z)".to_string();
    for k in (0..20).rev() {
        body = format!("mean over s{k} in d {{ {body} }}");
    }
    let (lets, k) = lines(TARGET - 600, 996, |k| format!("let r{k} = {body}"));
    let sum: Vec<String> = (0..k.min(100)).map(|i| format!("r{i}")).collect();
    out.push((
        "nested_reductions_in_every_let",
        spec(
            &format!("data d = synth.normal(dim = 2) {{ batch = 2 }}\n{lets}"),
            2,
            &sum.join(" + "),
        ),
    ));
    // Parentheses at the nesting limit, in every `let`.
    let depth = 60;
    let deep = format!("{}sum(y){}", "(".repeat(depth), ")".repeat(depth));
    let (lets, _) = lines(TARGET, 997, |k| format!("let p{k} = {deep}"));
    out.push(("deep_parentheses_in_every_let", spec(&lets, 2, "p0")));
    // As many declarations as allowed: synthetic sources, params, dims.
    let (data, _) = lines(TARGET / 3, 333, |k| {
        format!("data d{k} = synth.normal(dim = 4) {{ batch = 1000, seed = {k} }}")
    });
    let (params, _) = lines(TARGET / 3, 333, |k| {
        format!("param m{k}: matrix[64, 64] = spd(kappa = 10, seed = {k})")
    });
    let terms: Vec<String> = (0..60)
        .map(|k| format!("mean over s in d{k} {{ dot(y, s.z) }}"))
        .collect();
    out.push((
        "many_declarations",
        spec(&(data + &params), 4, &terms.join(" + ")),
    ));
    // Long expressions at the token limit in every `let`.
    let expr: Vec<String> = (0..31).map(|k| format!("{k}.5 * sum(y)")).collect();
    let expr = format!("({})", expr.join(" + "));
    let (lets, k) = lines(TARGET, 997, |k| format!("let e{k} = {expr} * {expr}"));
    out.push(("long_expressions", spec(&lets, 2, &format!("e{}", k - 1))));
    // One error per line: a thousand diagnostics to render.
    let pad: Vec<String> = (0..30).map(|k| format!("{k}.25 * sum(y)")).collect();
    let pad = pad.join(" + ");
    let (lets, _) = lines(TARGET, 997, |k| {
        format!("let w{k} = undeclared_{k} + {pad}")
    });
    out.push(("a_thousand_errors", spec(&lets, 2, "sum(y)")));
    // Verified λmin of the largest matrices the parameter cap allows, with
    // no hint (bisection) and with the `spd` hint.
    let ones: Vec<String> = (0..4)
        .map(|k| format!("param Q{k}: matrix[2048, 2048] = ones"))
        .collect();
    let ones = ones.join("\n");
    let g: Vec<String> = (0..4).map(|k| format!("quad(Q{k}, y)")).collect();
    out.push(("ones_2048sq_x4", spec(&ones, 2048, &g.join(" + "))));
    let quads: Vec<String> = (0..4)
        .map(|k| format!("param Q{k}: matrix[2048, 2048] = spd(kappa = 10, seed = {k})"))
        .collect();
    let quads = quads.join("\n");
    let g: Vec<String> = (0..4).map(|k| format!("quad(Q{k}, y)")).collect();
    out.push(("spd_2048sq_x4", spec(&quads, 2048, &g.join(" + "))));
    // The largest matrix verified alone, without a hint (bisection), and
    // many small ones: the verification budget bounds both.
    out.push((
        "ones_2048sq",
        spec("param Q: matrix[2048, 2048] = ones", 2048, "quad(Q, y)"),
    ));
    let small: Vec<String> = (0..100)
        .map(|k| format!("param S{k}: matrix[256, 256] = ones"))
        .collect();
    let g: Vec<String> = (0..100).map(|k| format!("quad(S{k}, y)")).collect();
    out.push((
        "ones_256sq_x100",
        spec(&small.join("\n"), 256, &g.join(" + ")),
    ));
    out
}

/// Every adversarial input: name, source.
pub fn all() -> Vec<(&'static str, String)> {
    let mut v = filed();
    v.extend(generated());
    v
}
