//! The integration tests of `bilevel-dsl`, in one test binary.

mod ad;
mod adversarial;
mod assumptions;
mod benchopt_problems;
mod benchopt_quadratic;
mod codegen;
mod codegen_ring;
mod convexity;
mod defects;
mod e2e;
mod finite_sum;
mod joint;
mod models;
mod robust;
mod snapshots;
mod stationarity;
mod support;
