//! Generates the oracle of every example spec that can be generated, in
//! `f64` and `f32`, into `OUT_DIR` (nothing generated is checked in: the
//! spec is the source, and editing it regenerates the code).

use std::path::PathBuf;
use std::{env, fs};

use bilevel_dsl::{codegen, CodegenOptions, Scalar};

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

fn main() {
    let root =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("../..");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (name, rel) in SPECS {
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
