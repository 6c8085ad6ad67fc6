//! SUSTAIN: stochastic bilevel algorithm with double momentum (Khanduri,
//! Zeng, Hong, Wai, Wang, Yang, NeurIPS 2021), as benchopt's
//! `solvers/sustain.py` implements it.
//!
//! # Update rule
//!
//! MRBO's ([`super::mrbo`]) with Ghadimi and Wang's randomised
//! Hessian-inverse approximation in place of SHIA:
//! ```text
//! k_t ~ U{0, …, Q−1};  v_t = Q c Π_{j=1}^{k_t} (I − c ∇²ᵧᵧG(x_t, y_t; B_j)) ∇ᵧF(x_t, y_t; ξ_t)
//! ```
//! the same k_t and B_j at the previous point, then the recursive-momentum
//! directions d_t, u_t and the steps of MRBO, with
//! β_t = ρ (t+1)^(−1/3), α_t = (ρ/r) (t+1)^(−1/3), η_t = η (t+1)^(−2/3).
//! Calls per iteration (t ≥ 1): 2 ∇ᵧG, 2 joint ∇ₓF/∇ᵧF, 2k_t HVPs, 2 cross products.
//!
//! # Paper and benchopt, and which is followed
//!
//! benchopt is followed (joint HIA with one draw of k_t and shared samples,
//! schedules with exponents (1/3, 0, 2/3, 1/3)). The paper's step sizes are
//! `α_t = κ/(w+t)^{1/3}` and momentum `η_{t+1} = c α_t²`, and it uses one
//! momentum parameter for each level; benchopt and this file use one η for
//! both, in the `(t+1)^{−p}` form. As for MRBO, the first iteration uses the
//! current estimates only (the paper's initialisation), where benchopt
//! evaluates the "old" terms at zero.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//!
//! # Defaults
//!
//! benchopt's: ρ = 0.1, r = 1, η = 0.5, c = ρ = 0.1, Q = 10.
//!
//! # References
//!
//! Prashant Khanduri, Siliang Zeng, Mingyi Hong, Hoi-To Wai, Zhaoran Wang,
//! Zhuoran Yang. *A Near-Optimal Algorithm for Stochastic Bilevel
//! Optimization via Double-Momentum.* NeurIPS 2021. benchopt `sustain`.

use rand_core::Rng;

use super::common::{solver_config, FINITE, POS};
use super::storm::{storm_solver, Hia, Storm, StormParams};
use super::{check_len, Buffer, Solver, SolverState};
use crate::oracle::{CrossJvp, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`Sustain`]; validated by [`Sustain::new`] against [`INFO`].
    pub struct SustainConfig;
    info INFO {
        name: "sustain",
        title: "SUSTAIN",
        summary: "double momentum (STORM) on y and x, randomised Neumann (HIA) hypergradient",
        reference: "Khanduri, Zeng, Hong, Wai, Wang, Yang. A Near-Optimal Algorithm for Stochastic Bilevel Optimization via Double-Momentum. NeurIPS 2021",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    step_size: f64 = 0.1, real(POS, FINITE, "> 0"), "ρ: y step β_t = ρ (t+1)^(−1/3)";
    outer_ratio: f64 = 1.0, real(POS, FINITE, "> 0"), "r: x step α_t = (ρ/r) (t+1)^(−1/3)";
    eta: f64 = 0.5, real(POS, (1.0, false), "in (0, 1]"), "η: momentum weight η_t = η (t+1)^(−2/3)";
    hia_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "c: Neumann step (< 1/L_g)";
    n_hia_steps: u64 = 10, int(1, 1_000_000, "in [1, 10^6]"), "Q: HIA terms (k ~ U{0..Q−1})";
}

/// The SUSTAIN solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct Sustain<T, BX, BY> {
    cfg: SustainConfig,
    st: Storm<T, BX, BY>,
}

storm_solver!(Sustain, SustainConfig, |c| StormParams {
    step_size: c.step_size,
    outer_ratio: c.outer_ratio,
    eta: c.eta,
    hia_lr: c.hia_lr,
    hia_steps: c.n_hia_steps,
    hia: Hia::Random,
});

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn step_before_init_is_an_error_and_eta_is_checked() {
        let mut o = crate::testing::q1::<f64>(0.0);
        let mut s = Sustain::new(SustainConfig::default(), [0.0_f64], [0.0_f64]).unwrap();
        let mut rng = crate::DefaultRng::seed_from_u64(0);
        assert_eq!(s.step(&mut o, &mut rng), Err(Error::NotInitialized));
        let bad = SustainConfig {
            eta: 1.5,
            ..SustainConfig::default()
        };
        assert!(Sustain::<f64, [f64; 1], [f64; 1]>::new(bad, [0.0], [0.0]).is_err());
    }
}
