//! The integration tests of `bilevel-dsl`, in one test binary.

mod e2e;
mod snapshots;
