//! Oracles generated at build time from the example specs (see `build.rs`):
//! one module per spec and scalar type, e.g. [`toy_f64`].
#![no_std]

include!(concat!(env!("OUT_DIR"), "/toy_f64.rs"));
include!(concat!(env!("OUT_DIR"), "/toy_f32.rs"));
include!(concat!(env!("OUT_DIR"), "/quad100_f64.rs"));
include!(concat!(env!("OUT_DIR"), "/quad100_f32.rs"));
include!(concat!(env!("OUT_DIR"), "/hpo_f64.rs"));
include!(concat!(env!("OUT_DIR"), "/hpo_f32.rs"));
include!(concat!(env!("OUT_DIR"), "/hyperclean_f64.rs"));
include!(concat!(env!("OUT_DIR"), "/hyperclean_f32.rs"));
include!(concat!(env!("OUT_DIR"), "/ridge_f64.rs"));
include!(concat!(env!("OUT_DIR"), "/ridge_f32.rs"));
include!(concat!(env!("OUT_DIR"), "/matmat_f64.rs"));
include!(concat!(env!("OUT_DIR"), "/matmat_f32.rs"));
