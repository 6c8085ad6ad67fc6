//! Golden tests (insta): the `bilevel check` summary of every example spec,
//! the lowered IR of every example spec, and the rendered diagnostics of
//! every error fixture. Snapshots are committed; under `CI=true` a missing
//! or changed snapshot fails.

use std::path::Path;

use bilevel_dsl::render;
use bilevel_dsl::summarize;

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn check_summary_of_every_example_spec() {
    insta::glob!("../../examples/specs", "*.bilevel", |path| {
        let src = std::fs::read_to_string(path).expect("readable");
        let base = path.parent().expect("folder");
        let out = match summarize(&src, base) {
            Ok(s) => s.text(),
            Err(d) => render(&d, &name_of(path), &src),
        };
        insta::assert_snapshot!(out);
    });
}

#[test]
fn lowered_ir_of_every_example_spec() {
    insta::glob!("../../examples/specs", "*.bilevel", |path| {
        let src = std::fs::read_to_string(path).expect("readable");
        let base = path.parent().expect("folder");
        let out = match bilevel_dsl::build(&src, base) {
            Ok(p) => format!("# f\n{}\n# g\n{}", p.f.dump(), p.g.dump()),
            Err(d) => render(&d, &name_of(path), &src),
        };
        insta::assert_snapshot!(out);
    });
}

#[test]
fn rendered_diagnostics_of_every_error_fixture() {
    insta::glob!("fixtures/err", "*.bilevel", |path| {
        let src = std::fs::read_to_string(path).expect("readable");
        let base = path.parent().expect("folder");
        let out = match summarize(&src, base) {
            Ok(s) => format!(
                "valid, with warnings:\n{}",
                render(&s.program.warnings, &name_of(path), &src)
            ),
            Err(d) => render(&d, &name_of(path), &src),
        };
        insta::assert_snapshot!(out);
    });
}

#[test]
fn rendered_diagnostics_of_generated_limit_inputs() {
    let head = "bilevel \"limits\" version 1\n";
    let many = format!(
        "{head}{}",
        "let a = 1.0\n".repeat(bilevel_dsl::MAX_DECLS + 1)
    );
    let d = bilevel_dsl::parse(&many).expect_err("too many declarations");
    insta::assert_snapshot!(
        "e0603_too_many_declarations",
        render(&d, "many.bilevel", &many)
    );
    let big = format!("{head}# {}\n", "x".repeat(bilevel_dsl::MAX_FILE_BYTES));
    let d = bilevel_dsl::parse(&big).expect_err("file too large");
    insta::assert_snapshot!("e0604_file_too_large", render(&d, "big.bilevel", &big));
}

/// Every diagnostic code is documented in `docs/language.md` and shown by at
/// least one committed snapshot.
#[test]
fn every_code_is_documented_and_has_a_fixture() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("../docs/language.md")).expect("docs");
    let mut snaps = String::new();
    for e in std::fs::read_dir(root.join("tests/snapshots")).expect("snapshots") {
        let p = e.expect("entry").path();
        if p.to_string_lossy().contains("diagnostics") || p.to_string_lossy().contains("__e06") {
            snaps.push_str(&std::fs::read_to_string(p).expect("snapshot"));
        }
    }
    let fixtures = std::fs::read_dir(root.join("tests/fixtures/err"))
        .expect("fixtures")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "bilevel"))
        })
        .count();
    assert!(fixtures >= 30, "{fixtures} error fixtures");
    for code in bilevel_dsl::Code::ALL {
        let c = code.as_str();
        assert!(docs.contains(&format!("| {c} |")), "{c} is not documented");
        assert!(
            snaps.contains(&format!("[{c}]")),
            "{c} has no fixture snapshot"
        );
    }
}
