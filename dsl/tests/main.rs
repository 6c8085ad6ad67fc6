//! The integration tests of `bilevel-dsl`, in one test binary.

mod ad;
mod e2e;
mod robust;
mod snapshots;
