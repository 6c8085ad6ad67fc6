//! Unit tests of the parser: error codes, positions and limits.

use crate::{parse, Code};

fn codes(src: &str) -> Vec<Code> {
    match parse(src) {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(|d| d.code).collect(),
    }
}

#[test]
fn toy_spec_parses() {
    let src = include_str!("../../examples/specs/toy_quadratic.bilevel");
    let f = parse(src).expect("toy parses");
    assert_eq!(f.name, "toy_quadratic");
    assert_eq!(f.decls.len(), 12);
}

#[test]
fn syntax_errors_have_codes() {
    assert_eq!(codes("bilevel \"a\"\nlowr { }"), [Code::E0001]);
    assert_eq!(codes("bilevel \"a\" data data = csv(\"x\")"), [Code::E0105]);
    assert_eq!(codes("bilevel \"a\" let a = 1.e5"), [Code::E0003]);
    assert_eq!(codes("bilevel \"a\" let a = 1e999"), [Code::E0003]);
    assert_eq!(codes("bilevel \"a\" let a = exp(x"), [Code::E0001]);
}

#[test]
fn limits_are_enforced_before_recursion() {
    let deep = format!(
        "bilevel \"a\" let a = {}x{}",
        "(".repeat(100),
        ")".repeat(100)
    );
    assert_eq!(codes(&deep), [Code::E0601]);
    let negs = format!("bilevel \"a\" let a = {}x", "-".repeat(50_000));
    assert_eq!(codes(&negs), [Code::E0601]);
    let pows = format!("bilevel \"a\" let a = x{}", "^x".repeat(50_000));
    assert_eq!(codes(&pows), [Code::E0601]);
    let long = format!("bilevel \"a\" let a = x{}", "+x".repeat(50_000));
    assert_eq!(codes(&long), [Code::E0602]);
    let many = format!("bilevel \"a\" {}", "let a = 1\n".repeat(1001));
    assert_eq!(codes(&many), [Code::E0603]);
    let big = format!("bilevel \"a\" #{}", "x".repeat(crate::MAX_FILE_BYTES));
    assert_eq!(codes(&big), [Code::E0604]);
}
