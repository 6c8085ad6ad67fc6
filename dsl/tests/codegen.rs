//! `bilevel_dsl::codegen`: what cannot be generated gets a coded
//! diagnostic naming the construct (never broken output); the output names
//! its spec and generator and carries the spec's lines as comments. (The
//! agreement of the generated oracles with the interpreter is tested in
//! `examples/codegen`, which compiles them.)

use std::path::{Path, PathBuf};

use bilevel_dsl::{codegen, Code, CodegenOptions, Scalar};

fn specs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs")
}

#[test]
fn a_model_backend_is_refused_with_e0701_naming_the_model() {
    let path = specs().join("rnn/hpo.bilevel");
    let src = std::fs::read_to_string(&path).expect("spec");
    let err = codegen(&src, &path, &CodegenOptions::default()).expect_err("refused");
    assert_eq!(err[0].code, Code::E0701, "{err:?}");
    insta::assert_snapshot!(
        "diagnostics_e0701_model_call",
        bilevel_dsl::render(&err, "hpo.bilevel", &src)
    );
    assert!(err[0].message.contains("model `phi`"), "{}", err[0].message);
    let span = err[0].primary.as_ref().expect("label").span;
    assert!(
        src[span.start..span.end].contains("phi"),
        "{:?}",
        &src[span.start..span.end]
    );
}

#[test]
fn a_group_field_is_refused_with_e0702_naming_the_field() {
    let dir = std::env::temp_dir().join(format!("bilevel-codegen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("t.csv"), "a,y,g\n1,0,u\n2,1,v\n3,0,u\n4,1,v\n").expect("csv");
    let src = r#"bilevel "grouped" version 1
data train = csv("t.csv") { header = true, label = "y", group = "g", features = ["a"], batch = 2, seed = 1 }
dims { G = train.groups }
upper {
  var u: vector[G] init zeros
  minimize mean over s in train { u[s.group] * s.y } + norm2sq(w)
}
lower {
  var w: vector[1] init zeros
  minimize mean over s in train { 0.5 * norm2sq(w - s.x) }
}
"#;
    let path = dir.join("grouped.bilevel");
    let err = codegen(src, &path, &CodegenOptions::default()).expect_err("refused");
    assert!(
        err.iter()
            .any(|d| d.code == Code::E0702 && d.message.contains("s.group")),
        "{err:?}"
    );
    insta::assert_snapshot!(
        "diagnostics_e0702_group_field",
        bilevel_dsl::render(&err, "grouped.bilevel", src)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_output_names_spec_generator_scalar_and_quotes_the_objectives() {
    let path = specs().join("toy_quadratic.bilevel");
    let src = std::fs::read_to_string(&path).expect("spec");
    for (scalar, t) in [(Scalar::F64, "f64"), (Scalar::F32, "f32")] {
        let opts = CodegenOptions {
            scalar,
            name: Some("toy".into()),
            libm: false,
            ..CodegenOptions::default()
        };
        let g = codegen(&src, &path, &opts).expect("generated");
        assert_eq!(g.name, "toy");
        assert!(g.code.contains(&format!("pub type T = {t};")));
        assert!(g.code.contains("toy_quadratic.bilevel"));
        assert!(g.code.contains(env!("CARGO_PKG_VERSION")));
        assert!(g.code.contains("spec hash"));
        assert!(g
            .code
            .contains("minimize mean over s in xi { 0.5 * quad(H, y) - dot(y, B @ x + s.z) }"));
        assert!(g.code.contains("pub mod toy {"));
        assert!(!g.code.contains("std::"), "no_std output");
        assert!(g.workspace_bytes > 0 && g.dim_x == 2 && g.dim_y == 2);
    }
    // The same spec gives the same code.
    let a = codegen(&src, &path, &CodegenOptions::default()).expect("generated");
    let b = codegen(&src, &path, &CodegenOptions::default()).expect("generated");
    assert_eq!(a.code, b.code);
}

/// Is `w` a tangent, adjoint or adjoint-tangent buffer element or an output
/// element (`g_1_t4[k]`, `f_a2[0]`, `gy[…]`)?
fn derivative_lhs(w: &str) -> bool {
    let name = w.split('[').next().unwrap_or("");
    if !w.contains('[') {
        return false;
    }
    if matches!(name, "gx" | "gy" | "hv" | "jv") {
        return true;
    }
    let last = name.rsplit('_').next().unwrap_or("");
    (name.starts_with("f_") || name.starts_with("g_"))
        && last.len() > 1
        && matches!(last.as_bytes()[0], b't' | b'a' | b'd')
        && last[1..].bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn no_structurally_zero_term_survives_in_derivative_statements() {
    // docs/decisions.md 121: a term with a structurally zero factor (`Z`,
    // a tangent the sweep does not compute, `0.0`) is not generated.
    let zero_terms = [
        "Z * ", " * Z", "+ Z", "- Z", "0.0 * ", " * 0.0", "+ 0.0", "- 0.0",
    ];
    for spec in [
        "toy_quadratic",
        "quadratic_d100",
        "hpo_logreg",
        "hyperclean",
        "firmware_ridge",
    ] {
        let path = specs().join(format!("{spec}.bilevel"));
        let src = std::fs::read_to_string(&path).expect("spec");
        for scalar in [Scalar::F64, Scalar::F32] {
            let opts = CodegenOptions {
                scalar,
                name: None,
                libm: false,
                ..CodegenOptions::default()
            };
            let g = codegen(&src, &path, &opts).expect("generated");
            let mut checked = 0;
            for line in g.code.lines() {
                for st in line.trim().trim_start_matches("{ ").split("; ") {
                    let Some((lhs, rhs)) = st.split_once(" = ").or_else(|| st.split_once(" += "))
                    else {
                        continue;
                    };
                    let lhs = lhs.trim_end_matches(" +").trim_end_matches(" -");
                    if !derivative_lhs(lhs) {
                        continue;
                    }
                    checked += 1;
                    let rhs = format!(" {} ", rhs.trim_end_matches(';').trim_end_matches(" }"));
                    for z in zero_terms {
                        assert!(
                            !rhs.contains(z) || rhs.trim() == "Z",
                            "{spec} ({scalar:?}): structural zero `{z}` in `{st}`"
                        );
                    }
                }
            }
            assert!(checked > 0, "{spec}: no derivative statement found");
        }
    }
}
