//! `bilevel codegen SPEC --out DIR [--scalar f32|f64] [--name NAME] [--force]`
//! through the real binary: what it writes (the same module as the library
//! facade, a header naming the spec and the generator's version, the scalar
//! and name asked for, sizes as reported), that the module parses, that a
//! non-empty folder is refused without `--force` and only the module is
//! replaced with it, and that a spec that cannot become code (a `model`) or
//! a bad flag value ends with a coded, located diagnostic or a usage error
//! and writes nothing. That the generated code compiles and agrees with the
//! interpreter is `examples/codegen` (`cargo test -p bilevel-codegen-check`).
#![allow(missing_docs)]

mod support;

use std::path::Path;
use std::process::Output;

use bilevel_dsl::{CodegenOptions, Scalar};
use support::{ok, run, specs, text};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `rustfmt` (from `RUSTFMT`, else the one on `PATH`, as `cargo fmt` uses)
/// parses `file`: exit 0 when it parses, non-zero on a syntax error.
fn parses(file: &Path) -> bool {
    let rustfmt = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let o = std::process::Command::new(rustfmt)
        .args(["--edition", "2021", "--emit", "stdout"])
        .arg(file)
        .output()
        .expect("rustfmt (part of the toolchain CI uses for `cargo fmt`) runs");
    o.status.success()
}

/// The generated module's `pub const NAME: usize = N;`.
fn const_usize(code: &str, name: &str) -> usize {
    let pre = format!("pub const {name}: usize = ");
    let line = code
        .lines()
        .find_map(|l| l.trim().strip_prefix(pre.as_str()))
        .unwrap_or_else(|| panic!("no {name} in the module"));
    line.trim_end_matches(';').parse().expect("a number")
}

/// Runs `bilevel codegen` in the examples' spec folder (so the spec's data
/// paths resolve), writing under `out`.
fn codegen(spec: &str, out: &Path, extra: &[&str]) -> Output {
    let out = out.to_str().expect("utf-8 temp path");
    let mut args = vec!["codegen", spec, "--out", out];
    args.extend_from_slice(extra);
    run(&specs(), &args)
}

fn library(spec: &str, scalar: Scalar, name: Option<&str>) -> bilevel_dsl::Generated {
    let src = std::fs::read_to_string(specs().join(spec)).unwrap();
    let opts = CodegenOptions {
        scalar,
        name: name.map(str::to_string),
        libm: false,
        ..CodegenOptions::default()
    };
    // The facade reads data relative to the spec's path: give it the real one.
    let g = bilevel_dsl::codegen(&src, &specs().join(spec), &opts);
    g.unwrap_or_else(|_| panic!("{spec} generates"))
}

#[test]
fn writes_the_module_with_its_header_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    for (spec, scalar) in [
        ("toy_quadratic.bilevel", Scalar::F64),
        ("hpo_logreg.bilevel", Scalar::F64),
        ("firmware_ridge.bilevel", Scalar::F32),
    ] {
        let out = dir.path().join(spec);
        let o = codegen(spec, &out, &["--scalar", scalar.name()]);
        ok(&o);
        let files: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(files.len(), 1, "{spec}: one module file, got {files:?}");
        let file = out.join(&files[0]);
        let code = std::fs::read_to_string(&file).unwrap();
        let want = library(spec, scalar, None);
        assert_eq!(files[0], format!("{}.rs", want.name), "{spec}");
        // Same generator, same spec: the same module, but for the spec's
        // path, which the module names as it was given.
        let abs = specs().join(spec).display().to_string();
        assert!(
            code == want.code.replace(&abs, spec),
            "{spec}: CLI ≠ library"
        );
        let first = code.lines().next().unwrap();
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            first.contains(&format!("bilevel-dsl {version}")) && first.contains(spec),
            "{spec}: header {first:?}"
        );
        let hash = format!(
            "{:016x}",
            fnv1a(&std::fs::read(specs().join(spec)).unwrap())
        );
        assert!(code.lines().nth(1).unwrap().contains(&hash), "{spec}: hash");
        assert!(
            code.contains(&format!("pub type T = {};", scalar.name())),
            "{spec}: scalar"
        );
        assert!(
            code.contains(&format!("pub mod {} {{", want.name)),
            "{spec}"
        );
        // The report tells the sizes the module has.
        let bytes = const_usize(&code, "WORKSPACE_BYTES");
        assert_eq!(bytes, want.workspace_bytes, "{spec}");
        let report = stdout(&o);
        assert!(
            report.contains(&format!("workspace {bytes} B"))
                && report.contains(&format!("x: {} and y: {} numbers", want.dim_x, want.dim_y))
                && report.contains(&file.display().to_string()),
            "{spec}: report {report}"
        );
        assert_eq!(const_usize(&code, "DIM_X"), want.dim_x, "{spec}");
        assert_eq!(const_usize(&code, "DIM_Y"), want.dim_y, "{spec}");
        assert!(parses(&file), "{spec}: the module does not parse");
    }
}

/// FNV-1a 64, written out independently of the generator's.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn scalar_and_name_are_used() {
    let dir = tempfile::tempdir().unwrap();
    let o32 = dir.path().join("f32");
    ok(&codegen(
        "toy_quadratic.bilevel",
        &o32,
        &["--scalar", "f32", "--name", "my_toy"],
    ));
    let code = std::fs::read_to_string(o32.join("my_toy.rs")).unwrap();
    assert!(code.contains("pub mod my_toy {"));
    assert!(code.contains("pub type T = f32;") && !code.contains("pub type T = f64;"));
    assert!(code.lines().nth(2).unwrap().contains("scalar: f32"));
    // f32 halves every buffer of the f64 module.
    let o64 = dir.path().join("f64");
    ok(&codegen(
        "toy_quadratic.bilevel",
        &o64,
        &["--name", "my_toy"],
    ));
    let c64 = std::fs::read_to_string(o64.join("my_toy.rs")).unwrap();
    assert!(c64.contains("pub type T = f64;"), "f64 is the default");
    assert_eq!(
        2 * const_usize(&code, "WORKSPACE_BYTES"),
        const_usize(&c64, "WORKSPACE_BYTES")
    );
    assert!(parses(&o32.join("my_toy.rs")));
}

#[test]
fn a_non_empty_folder_needs_force_which_replaces_only_the_module() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine\n").unwrap();
    let o = codegen("toy_quadratic.bilevel", &out, &["--name", "m"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = stderr(&o);
    assert!(e.contains("not empty") && e.contains("--force"), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    assert!(
        !out.join("m.rs").exists(),
        "nothing written without --force"
    );
    std::fs::write(out.join("m.rs"), "stale\n").unwrap();
    ok(&codegen(
        "toy_quadratic.bilevel",
        &out,
        &["--name", "m", "--force"],
    ));
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine\n"
    );
    let code = std::fs::read_to_string(out.join("m.rs")).unwrap();
    assert!(
        code.starts_with("// Generated by bilevel-dsl"),
        "module replaced"
    );
    let n = std::fs::read_dir(&out).unwrap().count();
    assert_eq!(n, 2, "only the module was added");
    // An existing empty folder is fine without --force; a file is not.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    ok(&codegen("toy_quadratic.bilevel", &empty, &[]));
    let o = codegen("toy_quadratic.bilevel", &out.join("keep.txt"), &["--force"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("not a folder"), "{}", text(&o));
}

#[test]
fn a_model_spec_gets_e0701_at_its_declaration_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for spec in ["rnn/hpo.bilevel", "rnn/hyperclean.bilevel"] {
        let out = dir.path().join(spec.replace('/', "_"));
        let o = codegen(spec, &out, &["--scalar", "f32"]);
        assert_eq!(o.status.code(), Some(1), "{spec}: {}", text(&o));
        let e = stderr(&o);
        // The located line: the spec path and the line/column of the
        // model's name, found independently in the source.
        let src = std::fs::read_to_string(specs().join(spec)).unwrap();
        let (ln, line) = src
            .lines()
            .enumerate()
            .find(|(_, l)| l.starts_with("model "))
            .expect("the spec declares a model");
        let col = "model ".len() + 1;
        let loc = format!("{spec}:{}:{col}", ln + 1);
        assert!(e.contains("error[E0701]"), "{spec}: {e}");
        assert!(e.contains(&loc), "{spec}: no {loc} in {e}");
        let model = line["model ".len()..].split(':').next().unwrap().trim();
        assert!(e.contains(&format!("model `{model}`")), "{spec}: {e}");
        assert!(!e.contains("panicked"), "{spec}: {e}");
        assert!(stdout(&o).is_empty(), "{spec}: the diagnostic is on stderr");
        assert!(!out.exists(), "{spec}: nothing written on an error");
    }
}

#[test]
fn a_bad_scalar_or_missing_out_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen");
    for bad in ["f16", "F32", "double", ""] {
        let o = codegen("toy_quadratic.bilevel", &out, &["--scalar", bad]);
        assert_eq!(o.status.code(), Some(2), "--scalar {bad:?}: {}", text(&o));
        let e = stderr(&o);
        assert!(e.contains("--scalar") && e.contains("f32, f64"), "{e}");
        assert!(!out.exists());
    }
    let o = run(&specs(), &["codegen", "toy_quadratic.bilevel"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("--out"), "{}", text(&o));
    // A spec that does not exist: a run-time error naming it.
    let o = codegen("no_such.bilevel", &out, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("no_such.bilevel"), "{}", text(&o));
    assert!(!out.exists());
}
