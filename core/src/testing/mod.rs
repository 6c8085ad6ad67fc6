//! Test problems with closed-form solutions (feature `testing`).
//!
//! * [`Quadratic`]: the dense quadratic bilevel family of `algorithms.md` §7.1,
//!   with additive Gaussian oracle noise. Fixed-size instances [`q1`], [`q2`],
//!   [`q3`] (exact rational answers, §7.2) and [`toy`] (the 2-D toy spec,
//!   x* = (2120, −3900)/2729) live in arrays; [`Quadratic::random`] (feature
//!   `alloc`) generates a d-dimensional instance with a chosen condition number
//!   and noise level.
//! * [`CoshUpper`]: an upper level that is (L0, L1)-smooth but not Lipschitz
//!   smooth (cosh growth), where normalised steps converge and plain steps with
//!   the same step size blow up.
//! * [`FiniteQuadratic`]: a finite-sum version of a quadratic instance
//!   (antithetic per-sample noise, same x*), for SABA.
//! * [`MetaToy`]: the two-task MAML/FOMAML/UFOM toy of §7.5 (a sample is a
//!   task; support and query losses are the task's loss).
//! * [`ClosedForm`] (feature `alloc`): x*, y*(x), z*(x), Φ and ∇Φ of a
//!   quadratic instance, computed densely with nalgebra.

mod cosh;
mod finite;
mod meta;
mod quadratic;
pub mod tuned;

pub use cosh::CoshUpper;
pub use finite::FiniteQuadratic;
pub use meta::{MetaToy, META_A, META_C, THETA_FOMAML, THETA_MAML};
#[cfg(feature = "alloc")]
pub use quadratic::ClosedForm;
pub use quadratic::{q1, q2, q3, quadratic_len, toy, Quadratic, QuadraticParts, Q_LEN_2X2};

use rand_core::SeedableRng;

use crate::random::{mix64, normal, DefaultRng};
use crate::Real;

/// Adds σ·N(0, I) noise to `out`, drawn from a stream derived from the sample
/// seed and a per-oracle salt: the same sample gives the same noise for the
/// same oracle, and independent noise across oracles.
pub(crate) fn add_noise<T: Real>(out: &mut [T], sigma: T, seed: u64, salt: u64) {
    if sigma <= T::ZERO {
        return;
    }
    let mut rng = DefaultRng::seed_from_u64(mix64(seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    for o in out {
        *o += sigma * T::from_f64(normal(&mut rng));
    }
}
