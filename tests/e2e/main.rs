//! End-to-end tests across the crates: one test binary, one module per area.

mod examples;
mod experiments;
mod registry;
mod runner;
