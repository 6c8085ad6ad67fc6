//! Generates the oracle of every example spec that can be generated, in
//! `f64` and `f32`, into `OUT_DIR` (nothing generated is checked in: the
//! spec is the source, and editing it regenerates the code).

use std::path::PathBuf;
use std::{env, fs};

use bilevel_dsl::{codegen, CodegenOptions, DataChoice, Scalar};

/// (module name, spec path relative to the workspace root).
const SPECS: &[(&str, &str)] = &[
    ("toy", "examples/specs/toy_quadratic.bilevel"),
    ("quad100", "examples/specs/quadratic_d100.bilevel"),
    ("hpo", "examples/specs/hpo_logreg.bilevel"),
    ("hyperclean", "examples/specs/hyperclean.bilevel"),
    ("ridge", "examples/specs/firmware_ridge.bilevel"),
    // Not an example: matrix variables, for the general (and transposed)
    // matrix × matrix product, which no example spec uses.
    ("matmat", "examples/codegen/specs/matmat.bilevel"),
];

/// Run-time data (docs/codegen.md, "the sample ring"): (module name, spec,
/// `--data` choices). `hpo_ring` and `ridge_ring` have rings as large as
/// the tables (filled with the tables' rows, they must give the const
/// modules' bits); `ridge_ring40` has small rings, for wrap-around.
const RINGS: &[(&str, &str, &[&str])] = &[
    ("hpo_ring", "examples/specs/hpo_logreg.bilevel", &["ring"]),
    (
        "ridge_ring",
        "examples/specs/firmware_ridge.bilevel",
        &["ring"],
    ),
    // Mixed: train a const table, val (`class(3)` labels) a ring.
    (
        "hyperclean_valring",
        "examples/specs/hyperclean.bilevel",
        &["val:ring"],
    ),
    // The sequential sampler (test-only spec): const and ring modules.
    (
        "seq_const",
        "examples/codegen/specs/seq_logreg.bilevel",
        &["const"],
    ),
    (
        "seq_ring",
        "examples/codegen/specs/seq_logreg.bilevel",
        &["ring"],
    ),
    (
        "ridge_ring40",
        "examples/specs/firmware_ridge.bilevel",
        &["ring=40", "val:ring=33"],
    ),
];

fn main() {
    let root =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("../..");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let consts = SPECS.iter().map(|&(name, rel)| (name, rel, &[][..]));
    for (name, rel, data) in consts.chain(RINGS.iter().copied()) {
        let path = root.join(rel);
        println!("cargo:rerun-if-changed={}", path.display());
        let src = fs::read_to_string(&path).expect("example spec readable");
        for scalar in [Scalar::F64, Scalar::F32] {
            let opts = CodegenOptions {
                scalar,
                name: Some(format!("{name}_{}", scalar.name())),
                // The f32 modules are used through this no_std library only
                // (a firmware's view: libm, whatever the test links); the f64
                // ones are also included in a std test, whose bits must be
                // the interpreter's (std's methods).
                libm: scalar == Scalar::F32,
                data: data
                    .iter()
                    .map(|d| d.parse::<DataChoice>().expect("a --data value"))
                    .collect(),
            };
            let g = match codegen(&src, &path, &opts) {
                Ok(g) => g,
                Err(d) => panic!("{rel}: {}", bilevel_dsl::render(&d, rel, &src)),
            };
            fs::write(out.join(format!("{}.rs", g.name)), g.code).expect("OUT_DIR writable");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
