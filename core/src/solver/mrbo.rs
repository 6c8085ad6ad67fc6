//! MRBO: momentum-based recursive bilevel optimizer (Yang, Ji, Liang,
//! NeurIPS 2021), as benchopt's `solvers/mrbo.py` implements it.
//!
//! # Update rule
//!
//! ```text
//! for t = 0, 1, …:          (ζ_t, ξ_t fresh; every B_j fresh, shared by both points)
//!     g^y_t  = ∇ᵧG(x_t, y_t; ζ_t)
//!     v_t    = η_h Σ_{q=0}^{Q} Π_{j≤q} (I − η_h ∇²ᵧᵧG(x_t, y_t; B_j)) ∇ᵧF(x_t, y_t; ξ_t)   (SHIA)
//!     g^x_t  = ∇ₓF(x_t, y_t; ξ_t) − ∇²ₓᵧG(x_t, y_t; ζ_t) v_t
//!     (g^y_{t−1}', g^x_{t−1}': the same formulas at (x_{t−1}, y_{t−1}) with the same samples)
//!     d_t = g^y_t + (1 − η_t)(d_{t−1} − g^y_{t−1}')
//!     u_t = η_t g^x_t + (1 − η_t)(u_{t−1} + g^x_t − g^x_{t−1}')
//!     d_0 = g^y_0,  u_0 = g^x_0
//!     y_{t+1} = y_t − β_t d_t,   x_{t+1} = x_t − α_t u_t
//! β_t = ρ (t+1)^(−1/3),  α_t = (ρ/r) (t+1)^(−1/3),  η_t = η (t+1)^(−2/3)
//! ```
//! Calls per iteration (t ≥ 1): 2 ∇ᵧG, 2 joint ∇ₓF/∇ᵧF, 2Q HVPs, 2 cross products.
//!
//! # Paper and benchopt, and which is followed
//!
//! benchopt is followed: SHIA with Q products (the paper's Algorithm 3 of
//! StocBio), the same sample for the current and the previous point in every
//! product, the same lower sample for ∇ᵧG and the cross term, schedules with
//! exponents (1/3, 0, 2/3, 1/3) on (β, η_h, η, α). Two differences: (1) the
//! paper's step sizes are `β_t = β/(w+t)^{1/3}` with `η_t = c·α_t²`; benchopt
//! (and this file) use the simpler `(t+1)^{−p}` forms. (2) benchopt starts the
//! "previous point" and both directions at zero, so its first step evaluates
//! the old gradients at (0, 0); here, as in the paper (d_0, u_0 are plain
//! stochastic estimates), the first iteration uses the current estimates only.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//!
//! # Defaults
//!
//! benchopt's: ρ = 0.1, r = 1, η = 0.5, η_h = ρ = 0.1, Q = 10.
//!
//! # References
//!
//! Junjie Yang, Kaiyi Ji, Yingbin Liang. *Provably Faster Algorithms for
//! Bilevel Optimization.* NeurIPS 2021. benchopt/benchmark_bilevel `mrbo`.

use rand_core::Rng;

use super::common::{solver_config, FINITE, POS};
use super::storm::{storm_solver, Hia, Storm, StormParams};
use super::{check_len, Buffer, Solver, SolverState};
use crate::oracle::{CrossJvp, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`Mrbo`]; validated by [`Mrbo::new`] against [`INFO`].
    pub struct MrboConfig;
    info INFO {
        name: "mrbo",
        title: "MRBO",
        summary: "recursive momentum (STORM) on y and x, SHIA Neumann hypergradient",
        reference: "Yang, Ji, Liang. Provably Faster Algorithms for Bilevel Optimization. NeurIPS 2021",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    step_size: f64 = 0.1, real(POS, FINITE, "> 0"), "ρ: y step β_t = ρ (t+1)^(−1/3)";
    outer_ratio: f64 = 1.0, real(POS, FINITE, "> 0"), "r: x step α_t = (ρ/r) (t+1)^(−1/3)";
    eta: f64 = 0.5, real(POS, (1.0, false), "in (0, 1]"), "η: momentum weight η_t = η (t+1)^(−2/3)";
    hia_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "η_h: Neumann step (< 1/L_g)";
    n_shia_steps: u64 = 10, int(0, 1_000_000, "in [0, 10^6]"), "Q: SHIA products";
}

/// The MRBO solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct Mrbo<T, BX, BY> {
    cfg: MrboConfig,
    st: Storm<T, BX, BY>,
}

storm_solver!(Mrbo, MrboConfig, |c| StormParams {
    step_size: c.step_size,
    outer_ratio: c.outer_ratio,
    eta: c.eta,
    hia_lr: c.hia_lr,
    hia_steps: c.n_shia_steps,
    hia: Hia::Shia,
});

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn step_before_init_is_an_error_and_eta_is_checked() {
        let mut o = crate::testing::q1::<f64>(0.0);
        let mut s = Mrbo::new(MrboConfig::default(), [0.0_f64], [0.0_f64]).unwrap();
        let mut rng = crate::DefaultRng::seed_from_u64(0);
        assert_eq!(s.step(&mut o, &mut rng), Err(Error::NotInitialized));
        let bad = MrboConfig {
            eta: 1.5,
            ..MrboConfig::default()
        };
        assert!(Mrbo::<f64, [f64; 1], [f64; 1]>::new(bad, [0.0], [0.0]).is_err());
    }
}
