//! "Never panics, never overflows the stack": arbitrary strings, token soup
//! shaped like the grammar, mutated example specs and pathological nesting
//! all go through parse → check → load → lower → one oracle call, and must
//! return diagnostics or an oracle, never abort. Runs on a thread with the
//! default 2 MiB test stack, like `cargo test`.

use std::path::{Path, PathBuf};

use bilevel_core::oracle::{Level, LowerGradY, Oracle};
use bilevel_core::DefaultRng;
use bilevel_dsl::Compiled;
use proptest::prelude::*;
use rand_core::SeedableRng;

fn specs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs")
}

/// Every phase, then one sampled oracle call when the spec compiles.
fn pipeline(src: &str) {
    let _ = bilevel_dsl::check_source(src);
    if let Ok(mut c) = Compiled::from_source(src, &specs()) {
        let mut rng = DefaultRng::seed_from_u64(1);
        let s = c.sample(Level::Lower, &mut rng);
        let (x, y) = (c.initial_x(), c.initial_y());
        let mut out = vec![0.0; c.dim_y()];
        c.grad_y_g(&x, &y, &s, &mut out);
    }
}

/// Runs `f` on a thread with a 2 MiB stack and propagates its panic.
fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    let h = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("thread");
    if let Err(e) = h.join() {
        std::panic::resume_unwind(e);
    }
}

const TOKENS: &[&str] = &[
    "bilevel",
    "\"p\"",
    "version",
    "1",
    "dims",
    "data",
    "param",
    "model",
    "let",
    "upper",
    "lower",
    "var",
    "minimize",
    "init",
    "algorithm",
    "run",
    "expect",
    "assume",
    "mean",
    "sum",
    "over",
    "in",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    "=",
    "+",
    "-",
    "*",
    "/",
    "@",
    "^",
    "'",
    "~=",
    ">=",
    "tol",
    "x",
    "y",
    "s",
    "s.x",
    "s.z",
    "n",
    "d",
    "H",
    "scalar",
    "vector[n]",
    "matrix[n, n]",
    "vector[2]",
    "zeros",
    "exp",
    "log",
    "quad",
    "dot",
    "norm2sq",
    "softmax_xent",
    "logistic_loss",
    "synth.normal",
    "csv",
    "\"data/logreg_train.csv\"",
    "dim",
    "std",
    "batch",
    "seed",
    "slip",
    "bo_rep",
    "eta",
    "0.5",
    "2",
    "1e-3",
    "-1",
    "true",
    "#",
    "\n",
    "1e999",
    "1.e5",
    "1000000000",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..120).prop_map(|t| t.join(" "))
}

fn mutated_spec() -> impl Strategy<Value = String> {
    let names = [
        "toy_quadratic.bilevel",
        "hpo_logreg.bilevel",
        "hyperclean.bilevel",
        "quadratic_d100.bilevel",
    ];
    let sources: Vec<String> = names
        .iter()
        .map(|n| std::fs::read_to_string(specs().join(n)).expect("spec"))
        .collect();
    (
        prop::sample::select(sources),
        any::<prop::sample::Index>(),
        0usize..40,
        token_soup(),
    )
        .prop_map(|(src, at, len, soup)| {
            let mut cut = at.index(src.len().max(1));
            while !src.is_char_boundary(cut) {
                cut -= 1;
            }
            let mut end = (cut + len).min(src.len());
            while !src.is_char_boundary(end) {
                end -= 1;
            }
            let take: String = soup.chars().take(60).collect();
            format!("{}{}{}", &src[..cut], take, &src[end..])
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_never_panic(s in any::<String>()) {
        on_small_stack(move || pipeline(&s));
    }

    #[test]
    fn grammar_shaped_token_soup_never_panics(s in token_soup()) {
        on_small_stack(move || pipeline(&format!("bilevel \"p\" {s}")));
    }

    #[test]
    fn mutated_example_specs_never_panic(s in mutated_spec()) {
        on_small_stack(move || pipeline(&s));
    }
}

#[test]
fn pathological_nesting_and_chains_are_rejected_without_overflow() {
    on_small_stack(|| {
        let head = "bilevel \"p\"\nlet a = ";
        let cases = [
            format!("{head}{}x{}", "(".repeat(20_000), ")".repeat(20_000)),
            format!("{head}{}x", "-".repeat(20_000)),
            format!("{head}x{}", "^x".repeat(20_000)),
            format!("{head}x{}", "+x".repeat(20_000)),
            format!("{head}{}", "[".repeat(20_000)),
            format!("{head}{}0{}", "exp(".repeat(5_000), ")".repeat(5_000)),
            format!("{head}{}", "mean over s in d { ".repeat(5_000)),
            format!("{head}x{}", "'".repeat(20_000)),
            format!("{head}x{}", "[0]".repeat(20_000)),
        ];
        for c in &cases {
            let d = bilevel_dsl::parse(c).expect_err("rejected");
            assert!(d.iter().all(bilevel_dsl::Diagnostic::is_error));
            pipeline(c);
        }
        // Deep but legal nesting (at the limit) still parses and checks.
        let ok = format!(
            "bilevel \"p\"\nlet a = {}1.0{}\n",
            "(".repeat(bilevel_dsl::MAX_NESTING - 1),
            ")".repeat(bilevel_dsl::MAX_NESTING - 1)
        );
        assert!(bilevel_dsl::parse(&ok).is_ok());
    });
}

/// Replays the checked-in fuzz seed corpus and any crash artifacts through
/// the same pipeline as the fuzz target.
#[test]
fn fuzz_corpus_and_artifacts_replay() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut files = Vec::new();
    for dir in ["corpus/pipeline", "artifacts/pipeline"] {
        if let Ok(rd) = std::fs::read_dir(root.join(dir)) {
            files.extend(rd.filter_map(Result::ok).map(|e| e.path()));
        }
    }
    assert!(files.len() >= 10, "seed corpus missing: {}", files.len());
    files.sort();
    on_small_stack(move || {
        for f in files {
            let bytes = std::fs::read(&f).expect("readable");
            pipeline(&String::from_utf8_lossy(&bytes));
        }
    });
}

/// An overflowing gradient call does not poison a later HVP: the HVP sweep
/// does not compute `quad`'s scratch P y, and its rules no longer read the
/// stale (infinite) one left by the gradient call (0 · ∞ was NaN).
#[test]
fn hvp_after_an_overflowing_gradient_is_not_poisoned() {
    use bilevel_core::oracle::LowerHvp;
    let src = std::fs::read_to_string(specs().join("quadratic_d100.bilevel")).expect("spec");
    let mut used = Compiled::from_source(&src, &specs()).expect("compiles");
    let mut fresh = Compiled::from_source(&src, &specs()).expect("compiles");
    let mut rng = DefaultRng::seed_from_u64(1);
    let s = used.sample(Level::Lower, &mut rng);
    let d = used.dim_y();
    let (x, y) = (vec![0.3; d], vec![-0.2; d]);
    let v: Vec<f64> = (0..d).map(|i| (i as f64 * 0.53).sin()).collect();
    let mut g = vec![0.0; d];
    used.grad_y_g(&x, &vec![f64::MAX; d], &s, &mut g);
    assert!(
        g.iter().any(|t| !t.is_finite()),
        "the gradient call overflows"
    );
    let (mut h1, mut h2) = (vec![0.0; d], vec![0.0; d]);
    used.hvp_yy(&x, &y, &v, &s, &mut h1);
    fresh.hvp_yy(&x, &y, &v, &s, &mut h2);
    assert!(h1.iter().all(|t| t.is_finite()));
    for (a, b) in h1.iter().zip(&h2) {
        assert_eq!(a.to_bits(), b.to_bits());
    }
}
