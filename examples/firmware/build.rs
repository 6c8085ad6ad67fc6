//! With feature `generated`, generates the job's oracle from
//! `examples/specs/firmware_ridge.bilevel` (f32, module `ridge_f32`, into
//! `OUT_DIR`: nothing generated is checked in); always puts memory.x (and an
//! empty device.x) on the linker search path and passes the linker scripts.
//!
//! The host test (`examples/codegen/tests/firmware_job.rs`) compiles the
//! same module from the same spec and options in `bilevel-codegen-check`'s
//! build script, so the firmware and the host run the same code.
//!
//! The scripts go through `cargo:rustc-link-arg` rather than `rustflags` in a
//! config file: a `RUSTFLAGS` environment variable (as CI often sets) silently
//! replaces config rustflags, which links an empty image that locks up QEMU.

use std::{env, fs, path::PathBuf};

/// The job's spec, relative to this crate.
#[cfg(feature = "generated")]
const SPEC: &str = "../specs/firmware_ridge.bilevel";

/// Writes the generated oracle `ridge_f32.rs` into `out`.
#[cfg(feature = "generated")]
fn generate(out: &std::path::Path) {
    use bilevel_dsl::{codegen, CodegenOptions, Scalar};
    let dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let spec = dir.join(SPEC);
    let src = fs::read_to_string(&spec).expect("the job's spec is readable");
    let opts = CodegenOptions {
        scalar: Scalar::F32,
        name: Some("ridge_f32".into()),
        libm: true,
        ..CodegenOptions::default()
    };
    let g = codegen(&src, &spec, &opts)
        .unwrap_or_else(|d| panic!("{SPEC}: {}", bilevel_dsl::render(&d, SPEC, &src)));
    fs::write(out.join("ridge_f32.rs"), g.code).expect("OUT_DIR is writable");
    println!("cargo:rerun-if-changed={}", spec.display());
    for t in ["diabetes_raw_train.csv", "diabetes_raw_val.csv"] {
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("../specs/data").join(t).display()
        );
    }
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    #[cfg(feature = "generated")]
    generate(&out);
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("OUT_DIR is writable");
    // cortex-m-rt's `device` feature INCLUDEs device.x, where a device crate
    // PROVIDEs its interrupt handlers' names; src/vectors.rs needs none.
    fs::write(
        out.join("device.x"),
        "/* no named interrupt handlers: see src/vectors.rs */\n",
    )
    .expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg=-Tlink.x");
    if env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        println!("cargo:rustc-link-arg=-Tdefmt.x");
    }
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
}
