//! Integration tests of `bilevel-core`: one test binary, one module per area.

mod core {
    pub mod baselines;
    pub mod config;
    pub mod convergence;
    pub mod determinism;
    pub mod golden;
    pub mod issue19;
    pub mod joint;
    pub mod kernels;
    pub mod unbounded;
}
