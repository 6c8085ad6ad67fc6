//! `bilevel_dsl::codegen` with run-time data (`CodegenOptions::data`,
//! docs/codegen.md "the sample ring"): what a ring cannot hold is refused
//! with a coded diagnostic naming the option and the source (E0710–E0715);
//! what it can, gets a ring type per source chosen, the others stay tables.
//! (That the generated rings compile and give the const path's bits is
//! tested in `examples/codegen/tests/ring.rs`.)

use std::path::{Path, PathBuf};

use bilevel_dsl::{codegen, Code, CodegenOptions, DataChoice, Diagnostic, Generated, Storage};

fn specs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs")
}

fn opts(data: &[&str]) -> CodegenOptions {
    CodegenOptions {
        data: data.iter().map(|d| d.parse().expect(d)).collect(),
        ..CodegenOptions::default()
    }
}

/// Generates example spec `name` with the `--data` values `data`.
fn example(name: &str, data: &[&str]) -> (String, Result<Generated, Vec<Diagnostic>>) {
    let path = specs().join(name);
    let src = std::fs::read_to_string(&path).expect("spec");
    let r = codegen(&src, &path, &opts(data));
    (src, r)
}

/// Generates `src` (with the table `t.csv` beside it) with `data`.
fn inline(tag: &str, src: &str, data: &[&str]) -> Result<Generated, Vec<Diagnostic>> {
    let dir = std::env::temp_dir().join(format!("bilevel-ring-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let csv: String = std::iter::once("a,b,y\n".to_string())
        .chain((0..20).map(|r| format!("{r},{},{}\n", r % 3, r % 2)))
        .collect();
    std::fs::write(dir.join("t.csv"), csv).expect("csv");
    let path = dir.join("s.bilevel");
    let out = codegen(src, &path, &opts(data));
    let _ = std::fs::remove_dir_all(&dir);
    out
}

fn codes(e: &[Diagnostic]) -> Vec<Code> {
    e.iter().map(|d| d.code).collect()
}

const SMALL: &str = r#"bilevel "small" version 1
data train = csv("t.csv") { header = true, label = "y", features = ["a", "b"], batch = 4, seed = 1 }
data other = csv("t.csv") { header = true, label = "y", features = ["a", "b"], batch = 4, seed = 2 }
data noise = synth.normal(dim = 2, std = 0.1) { batch = 4, seed = 3 }
upper {
  var x: vector[2] init zeros
  minimize mean over s in noise { 0.5 * norm2sq(w - s.z) } + 0.5 * norm2sq(x)
}
lower {
  var w: vector[2] init zeros
  minimize mean over s in train { 0.5 * sq_loss(dot(w, s.x), s.y) } + 0.5 * norm2sq(w - x)
}
"#;

#[test]
fn a_source_that_is_not_a_read_table_is_refused_with_e0710() {
    let (src, r) = example("hpo_logreg.bilevel", &["tain:ring"]);
    let e = r.expect_err("refused");
    assert_eq!(codes(&e), [Code::E0710]);
    assert!(e[0].message.contains("`--data`") && e[0].message.contains("`tain`"));
    assert!(e[0].notes.iter().any(|n| n.contains("train, val")), "{e:?}");
    insta::assert_snapshot!(
        "diagnostics_e0710_unknown_source",
        bilevel_dsl::render(&e, "hpo_logreg.bilevel", &src)
    );
    for (what, name) in [("synthetic", "noise"), ("not read", "other")] {
        let e = inline("e0710", SMALL, &[&format!("{name}:ring")]).expect_err(name);
        assert_eq!(codes(&e), [Code::E0710], "{name}");
        assert!(e[0].message.contains(what), "{}", e[0].message);
        let span = e[0].primary.as_ref().expect("label").span;
        assert_eq!(&SMALL[span.start..span.end], name);
        assert!(SMALL[..span.end].ends_with(&format!("data {name}")));
    }
    // All-sources `ring` skips the synthetic and the unread source.
    let g = inline("e0710ok", SMALL, &["ring"]).expect("generated");
    assert!(g.code.contains("pub struct TrainRing"));
    assert!(!g.code.contains("OtherRing") && !g.code.contains("NoiseRing"));
}

#[test]
fn a_ring_of_capacity_0_is_refused_with_e0711() {
    let (src, r) = example("hpo_logreg.bilevel", &["train:ring=0"]);
    let e = r.expect_err("refused");
    assert_eq!(codes(&e), [Code::E0711]);
    insta::assert_snapshot!(
        "diagnostics_e0711_capacity_zero",
        bilevel_dsl::render(&e, "hpo_logreg.bilevel", &src)
    );
}

#[test]
fn a_batch_larger_than_the_ring_is_refused_with_e0712() {
    // train: batch 32, val: batch 64.
    let (src, r) = example("hpo_logreg.bilevel", &["ring=48"]);
    let e = r.expect_err("refused");
    assert_eq!(codes(&e), [Code::E0712]);
    assert!(e[0].message.contains("`val` (64 rows)") && e[0].message.contains("(48)"));
    insta::assert_snapshot!(
        "diagnostics_e0712_batch_over_capacity",
        bilevel_dsl::render(&e, "hpo_logreg.bilevel", &src)
    );
    // Exactly the batch fits; the capacity may exceed the table's rows.
    for cap in [64, 1000] {
        let (_, r) = example("hpo_logreg.bilevel", &[&format!("ring={cap}")]);
        let g = r.expect("generated");
        assert!(g
            .code
            .contains(&format!("pub const VAL_CAPACITY: usize = {cap};")));
    }
}

#[test]
fn whole_data_facts_and_row_identity_are_refused_with_e0713_e0714() {
    let (src, r) = example("hyperclean.bilevel", &["ring"]);
    let e = r.expect_err("refused");
    assert_eq!(codes(&e), [Code::E0714, Code::E0713], "{e:?}");
    let span = e[1].primary.as_ref().expect("label").span;
    assert_eq!(&src[span.start..span.end], "train.rows");
    insta::assert_snapshot!(
        "diagnostics_e0713_e0714_hyperclean",
        bilevel_dsl::render(&e, "hyperclean.bilevel", &src)
    );
    // val alone can be a ring.
    let (_, r) = example("hyperclean.bilevel", &["val:ring"]);
    assert!(r.expect("generated").code.contains("pub struct ValRing"));
    // A variable sized by the table's rows (the language admits data facts
    // as dimensions only: `x / n` with `n = train.rows` is E0202 before
    // loading, so no expression can take a full-data mean).
    let full = SMALL
        .replace(
            "var x: vector[2] init zeros",
            "var x: vector[2] init zeros\n  var u: vector[n] init zeros",
        )
        .replace("+ 0.5 * norm2sq(x)", "+ 0.5 * norm2sq(x) + norm2sq(u)")
        .replace("upper {", "dims { n = train.rows }\nupper {");
    assert_ne!(full, SMALL);
    let e = inline("e0713", &full, &["ring"]).expect_err("refused");
    assert_eq!(codes(&e), [Code::E0713], "{e:?}");
    assert!(e[0].message.contains("`train.rows`"));
    inline("e0713c", &full, &["const"]).expect("const tables have rows");
}

#[test]
fn load_time_transforms_are_refused_with_e0715() {
    let split = SMALL.replace(
        "batch = 4, seed = 1 }",
        "batch = 4, seed = 1, split = [0.0, 0.5] }",
    );
    assert_ne!(split, SMALL);
    let e = inline("e0715", &split, &["train:ring"]).expect_err("refused");
    assert_eq!(codes(&e), [Code::E0715]);
    assert!(e[0].message.contains("`split`"));
    insta::assert_snapshot!(
        "diagnostics_e0715_split",
        bilevel_dsl::render(&e, "s.bilevel", &split)
    );
}

#[test]
fn choices_apply_per_source_and_later_ones_override() {
    let (_, r) = example("hpo_logreg.bilevel", &["ring", "train:const"]);
    let g = r.expect("generated");
    assert!(g.code.contains("pub struct ValRing") && !g.code.contains("TrainRing"));
    assert!(
        g.code.contains("pub const D0_ROWS: usize = 240;"),
        "train stays a table"
    );
    assert!(!g.code.contains("D1_ROWS"), "val is not compiled in");
    // val: 160 rows x (5 features + label) x 8 B + 16.
    assert_eq!(g.ring_bytes, 160 * 6 * 8 + 16);
    let (_, r) = example("hpo_logreg.bilevel", &["val:ring=70", "ring=100"]);
    let g = r.expect("generated");
    assert!(g.code.contains("pub const TRAIN_CAPACITY: usize = 100;"));
    assert!(g.code.contains("pub const VAL_CAPACITY: usize = 100;"));
    let (_, r) = example("hpo_logreg.bilevel", &["const"]);
    let (_, d) = example("hpo_logreg.bilevel", &[]);
    assert_eq!(r.expect("const").code, d.expect("default").code);
    let c: DataChoice = "train:ring=8".parse().expect("parses");
    assert_eq!(c.storage, Storage::Ring(Some(8)));
}
