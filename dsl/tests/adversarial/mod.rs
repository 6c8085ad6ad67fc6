//! Issue 14 §4: every adversarial input either checks or is refused with a
//! diagnostic (never a panic); what each must come to is stated here. Their
//! cost is measured by `benches/check_adversarial.rs` and `/usr/bin/time`
//! (BENCHMARKS.md), not asserted here.

pub mod inputs;

use std::path::Path;

/// The error codes `bilevel check` reports on `src` (full pipeline, data
/// from this crate's folder), or `[]` when it checks.
fn codes(src: &str) -> Vec<String> {
    match bilevel_dsl::summarize(src, Path::new(env!("CARGO_MANIFEST_DIR"))) {
        Ok(_) => Vec::new(),
        Err(d) => {
            let mut c: Vec<String> = d
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.code.as_str().to_string())
                .collect();
            c.dedup();
            c
        }
    }
}

#[test]
fn every_adversarial_input_checks_or_is_refused_with_a_diagnostic() {
    for (name, src) in inputs::all() {
        assert!(
            src.len() < bilevel_dsl::MAX_FILE_BYTES,
            "{name}: {} bytes",
            src.len()
        );
        let want: &[&str] = match name {
            "filed_let_chain_a26"
            | "let_chain_999_long_names"
            | "wide_literal_511sq"
            | "deep_parentheses_in_every_let"
            | "many_declarations"
            | "long_expressions"
            | "ones_2048sq"
            | "ones_256sq_x100" => &[],
            "filed_long_name" | "huge_name" | "many_misspelled_names" | "a_thousand_errors" => {
                &["E0101"]
            }
            "filed_params_4096sq_x12" | "ones_2048sq_x4" | "spd_2048sq_x4" => &["E0204"],
            "filed_nested_batch_1000" | "nested_reductions_in_every_let" => &["E0605"],
            other => panic!("{other}: state what it must come to"),
        };
        assert_eq!(codes(&src), want, "{name}");
    }
}

#[test]
fn matrices_past_the_verification_budget_get_no_credit() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    // One factorisation of order 2048 is over the whole budget: no credit
    // from Q, μ from the ridge alone (the true modulus is 1 + 2·0 = 1).
    let (_, src) = inputs::all()
        .into_iter()
        .find(|(n, _)| *n == "ones_2048sq")
        .expect("input");
    let s = bilevel_dsl::summarize(&src, base).expect("checks");
    let mu = s.program.mu.expect("mu");
    assert!(mu > 0.99 && mu <= 1.0, "mu {mu}");
    assert!(s.text().contains("λmin(Q) not verified"), "{}", s.text());
    // Without the ridge, W0301 says why.
    let src = "bilevel \"b\" version 1\nparam Q: matrix[2048, 2048] = eye\n\
               upper { var x: vector[2048] init zeros  minimize norm2sq(x) + norm2sq(y) }\n\
               lower { var y: vector[2048] init zeros  minimize quad(Q, y) - dot(x, y) }\n";
    let s = bilevel_dsl::summarize(src, base).expect("checks with a warning");
    assert!(s.program.mu.is_none());
    let w = s
        .program
        .warnings
        .iter()
        .find(|d| d.code.as_str() == "W0301")
        .expect("W0301");
    assert!(w.notes.iter().any(|n| n.contains("multiply-adds")), "{w:?}");
}
