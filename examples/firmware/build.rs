//! Puts memory.x (and an empty device.x) on the linker search path and passes the linker scripts.
//!
//! The scripts go through `cargo:rustc-link-arg` rather than `rustflags` in a
//! config file: a `RUSTFLAGS` environment variable (as CI often sets) silently
//! replaces config rustflags, which links an empty image that locks up QEMU.

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
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
