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

#[cfg(test)]
mod noise_tests;

use rand_core::SeedableRng;

use crate::random::{mix64, normal, DefaultRng};
use crate::Real;

/// The standard normal generator of a test problem's oracle noise
/// ([`Quadratic::with_noise_normal`]; `docs/decisions.md` 120).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoiseNormal {
    /// [`crate::random::normal`]: Box–Muller, one output of each pair
    /// (two words, a `log`, a `sqrt` and a `cos` per draw). The default,
    /// which every committed noisy result was computed with.
    #[default]
    BoxMuller,
    /// Marsaglia's polar method with both outputs used ([`polar_pair`]):
    /// per accepted pair two words, one `libm` `log`, one `sqrt` and one
    /// division, no trigonometry; about a quarter of the instructions per
    /// draw. Other bits than [`NoiseNormal::BoxMuller`].
    Polar,
}

/// Adds σ·N(0, I) noise to `out`, drawn from a stream derived from the sample
/// seed and a per-oracle salt: the same sample gives the same noise for the
/// same oracle, and independent noise across oracles.
pub(crate) fn add_noise<T: Real>(out: &mut [T], sigma: T, seed: u64, salt: u64) {
    add_noise_with(out, sigma, seed, salt, NoiseNormal::BoxMuller);
}

/// [`add_noise`] with the draws of `gen`.
pub(crate) fn add_noise_with<T: Real>(
    out: &mut [T],
    sigma: T,
    seed: u64,
    salt: u64,
    gen: NoiseNormal,
) {
    if sigma <= T::ZERO {
        return;
    }
    let mut rng = DefaultRng::seed_from_u64(mix64(seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)));
    match gen {
        NoiseNormal::BoxMuller => {
            for o in out {
                *o += sigma * T::from_f64(normal(&mut rng));
            }
        }
        NoiseNormal::Polar => {
            let (pairs, last) = out.as_chunks_mut::<2>();
            for p in pairs {
                let (a, b) = polar_pair(&mut rng);
                p[0] += sigma * T::from_f64(a);
                p[1] += sigma * T::from_f64(b);
            }
            if let Some(o) = last.first_mut() {
                *o += sigma * T::from_f64(polar_pair(&mut rng).0);
            }
        }
    }
}

/// Two independent standard normal draws by Marsaglia's polar method:
/// u, v uniform in (−1, 1) from 53-bit words (`2·uniform − 1`), redrawn
/// until 0 < s = u² + v² < 1 (probability π/4), then `(u·f, v·f)` with
/// `f = √(−2 ln s / s)`. Only IEEE `+ − × ÷ √` and `libm::log` (the same
/// pure-Rust code on every target), so the same bits on x86_64 and the
/// Cortex-M4F.
#[inline]
pub fn polar_pair<R: rand_core::Rng + ?Sized>(rng: &mut R) -> (f64, f64) {
    loop {
        let u = 2.0 * crate::random::uniform(rng) - 1.0;
        let v = 2.0 * crate::random::uniform(rng) - 1.0;
        let s = u * u + v * v;
        if s < 1.0 && s > 0.0 {
            let f = libm::sqrt(-2.0 * libm::log(s) / s);
            return (u * f, v * f);
        }
    }
}
