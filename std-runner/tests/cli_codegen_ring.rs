//! `bilevel codegen … --data [SOURCE:]const|ring[=CAPACITY]` through the
//! real binary: a ring module is the library's (same options), parses and
//! reports its rings; what cannot be a ring ends with a coded diagnostic at
//! the source's (or the fact's) line and column, exit 1, nothing written;
//! a malformed `--data` value is a usage error naming the option (exit 2).
#![allow(missing_docs)]

mod support;

use std::path::Path;
use std::process::Output;

use bilevel_dsl::CodegenOptions;
use support::{ok, run, specs, text};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn codegen(spec: &str, out: &Path, extra: &[&str]) -> Output {
    let out = out.to_str().expect("utf-8 temp path");
    let mut args = vec!["codegen", spec, "--out", out];
    args.extend_from_slice(extra);
    run(&specs(), &args)
}

/// `spec:line:col` of the first occurrence of `what` in the spec.
fn located(spec: &str, what: &str) -> String {
    let src = std::fs::read_to_string(specs().join(spec)).unwrap();
    let (ln, line) = src
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(what) && !l.trim_start().starts_with('#'))
        .unwrap_or_else(|| panic!("{what} in {spec}"));
    format!("{spec}:{}:{}", ln + 1, line.find(what).unwrap() + 1)
}

#[test]
fn a_ring_module_is_the_librarys_and_reports_its_rings() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen");
    let o = codegen(
        "firmware_ridge.bilevel",
        &out,
        &[
            "--scalar",
            "f32",
            "--data",
            "ring=64",
            "--data",
            "val:ring=40",
        ],
    );
    ok(&o);
    let file = out.join("firmware_ridge.rs");
    let code = std::fs::read_to_string(&file).unwrap();
    let spec = specs().join("firmware_ridge.bilevel");
    let src = std::fs::read_to_string(&spec).unwrap();
    let opts = CodegenOptions {
        scalar: bilevel_dsl::Scalar::F32,
        data: vec!["ring=64".parse().unwrap(), "val:ring=40".parse().unwrap()],
        ..CodegenOptions::default()
    };
    // The facade reads data relative to the spec's path: give it the real
    // one; the binary's header names the path as given.
    let g = bilevel_dsl::codegen(&src, &spec, &opts).unwrap();
    let shown = spec.display().to_string();
    assert_eq!(code, g.code.replace(&shown, "firmware_ridge.bilevel"));
    assert!(code.contains("pub const TRAIN_CAPACITY: usize = 64;"));
    assert!(code.contains("pub const VAL_CAPACITY: usize = 40;"));
    // (64 + 40) rows x (10 features + label) x 4 B, + 16 per ring.
    assert_eq!(g.ring_bytes, (64 + 40) * 11 * 4 + 32);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!("sample rings {} B", g.ring_bytes)),
        "{stdout}"
    );
    // No table of the data is compiled in.
    assert!(!code.contains("D0_ROWS") && !code.contains("D1_ROWS"));
    let rustfmt = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let f = std::process::Command::new(rustfmt)
        .args(["--edition", "2021", "--emit", "stdout"])
        .arg(&file)
        .output()
        .expect("rustfmt runs");
    assert!(f.status.success(), "the module parses");
}

/// (spec, arguments, [(code, where it points: text on the line)]).
type Case = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

#[test]
fn what_cannot_be_a_ring_gets_a_located_code_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[Case] = &[
        (
            "firmware_ridge.bilevel",
            &["--data", "train:ring=0"],
            &[("E0711", "train = csv")],
        ),
        (
            "firmware_ridge.bilevel",
            &["--data", "ring=16"],
            &[("E0712", "train = csv"), ("E0712", "val = csv")],
        ),
        (
            "firmware_ridge.bilevel",
            &["--data", "tain:ring"],
            &[("E0710", "bilevel \"")],
        ),
        (
            "hyperclean.bilevel",
            &["--data", "ring"],
            &[("E0714", "train = tsv"), ("E0713", "train.rows")],
        ),
    ];
    for (k, (spec, args, want)) in cases.iter().enumerate() {
        let out = dir.path().join(format!("gen{k}"));
        let o = codegen(spec, &out, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        let e = stderr(&o);
        for (code, at) in *want {
            assert!(e.contains(&format!("error[{code}]")), "{args:?}: {e}");
            let loc = located(spec, at);
            assert!(e.contains(&loc), "{args:?}: no {loc} in {e}");
        }
        assert!(e.contains("`--data`"), "{args:?}: names the option: {e}");
        assert!(!e.contains("panicked"), "{e}");
        assert!(!out.exists(), "{args:?}: nothing written");
    }
}

#[test]
fn a_malformed_data_value_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("gen");
    for bad in [
        "rings", "ring=", "ring=-3", "ring=x", ":ring", "train:", "tables",
    ] {
        let o = codegen("firmware_ridge.bilevel", &out, &["--data", bad]);
        assert_eq!(o.status.code(), Some(2), "--data {bad:?}: {}", text(&o));
        assert!(stderr(&o).contains("--data"), "{}", text(&o));
        assert!(!out.exists());
    }
}

/// Source names that are Rust keywords, or that differ only in case or
/// underscores, still give a module that parses, with one ring type each.
#[test]
fn keyword_and_clashing_source_names_give_a_module_that_parses() {
    let dir = tempfile::tempdir().unwrap();
    let csv: String = std::iter::once("a,b,y\n".to_string())
        .chain((0..12).map(|r| format!("{r},{},{}\n", r % 3, r % 2)))
        .collect();
    std::fs::write(dir.path().join("t.csv"), csv).unwrap();
    let src = r#"bilevel "names" version 1
data move = csv("t.csv") { header = true, label = "y", features = ["a", "b"], batch = 2, seed = 1 }
data my_data = csv("t.csv") { header = true, label = "y", features = ["a", "b"], batch = 2, seed = 2 }
data myData = csv("t.csv") { header = true, label = "y", features = ["a", "b"], batch = 2, seed = 3 }
upper {
  var x: vector[2] init zeros
  minimize mean over s in move { 0.5 * sq_loss(dot(w, s.x), s.y) } + 0.5 * norm2sq(x)
}
lower {
  var w: vector[2] init zeros
  minimize mean over s in my_data { 0.5 * sq_loss(dot(w, s.x), s.y) }
           + mean over s in myData { 0.5 * sq_loss(dot(w, s.x), s.y) } + 0.5 * norm2sq(w - x)
}
"#;
    std::fs::write(dir.path().join("names.bilevel"), src).unwrap();
    let out = dir.path().join("gen");
    let o = run(
        dir.path(),
        &[
            "codegen",
            "names.bilevel",
            "--out",
            out.to_str().unwrap(),
            "--data",
            "ring",
        ],
    );
    ok(&o);
    let file = out.join("names.rs");
    let code = std::fs::read_to_string(&file).unwrap();
    for item in [
        "pub r#move: MoveRing",
        "MyData1Ring",
        "MyData2Ring",
        "MY_DATA_CAPACITY",
        "MYDATA_CAPACITY",
    ] {
        assert!(code.contains(item), "no {item}");
    }
    let rustfmt = std::env::var_os("RUSTFMT").unwrap_or_else(|| "rustfmt".into());
    let f = std::process::Command::new(rustfmt)
        .args(["--edition", "2021", "--emit", "stdout"])
        .arg(&file)
        .output()
        .expect("rustfmt runs");
    assert!(f.status.success(), "{}", String::from_utf8_lossy(&f.stderr));
}
