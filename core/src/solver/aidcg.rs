//! AID-CG: approximate implicit differentiation with conjugate gradient (Ji,
//! Yang, Liang, ICML 2021; hypertorch `CG`).
//!
//! # Update rule
//!
//! ```text
//! for k = 0, 1, …:
//!     y ← D steps y ← y − α ∇ᵧG(x_k, y; ζ_t) from the previous y (warm start)
//!     v ← N steps of CG on ∇²ᵧᵧG(x_k, y; ζ) v = ∇ᵧF(x_k, y; ξ) from the
//!         previous v (or 0), stopping when ‖r‖ ≤ tol
//!     ĝ = ∇ₓF(x_k, y; ξ) − ∇²ₓᵧG(x_k, y; ζ') v
//!     x_{k+1} = x_k − β ĝ
//! ```
//! The method is deterministic in the paper. With stochastic oracles, one
//! lower sample ζ is used for every HVP of one CG solve (CG needs one fixed
//! matrix: a minibatch Hessian), one upper sample ξ for both upper gradients
//! and a fresh ζ' for the cross term. CG stops early if pᵀAp ≤ 0.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//!
//! # Defaults
//!
//! The paper fixes orders only (D = Θ(κ), N = Θ(√κ) for CG); chosen here:
//! α = β = 0.1, D = 10, N = 10 (benchopt's values for its AID-type solvers),
//! warm start of v (Ji et al.'s "warm start strategy"), tol = 1e-10 (hypertorch).
//!
//! # References
//!
//! Kaiyi Ji, Junjie Yang, Yingbin Liang. *Bilevel Optimization: Convergence
//! Analysis and Enhanced Design.* ICML 2021. Linear solvers as in
//! prolearner/hypertorch (`CG`, `fixed_point`).

use rand_core::Rng;

use super::common::{
    conjugate_gradient, decayed, lower_sgd, solver_config, DECAY_MAX, FINITE, NONNEG, POS,
};
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy, fill};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`AidCg`]; validated by [`AidCg::new`] against [`INFO`].
    pub struct AidCgConfig;
    info INFO {
        name: "aid-cg",
        title: "AID-CG",
        summary: "warm-started inner GD, conjugate-gradient implicit hypergradient, GD on x",
        reference: "Ji, Yang, Liang. Bilevel Optimization: Convergence Analysis and Enhanced Design. ICML 2021",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    inner_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "α: inner step on y";
    inner_steps: u64 = 10, int(0, 1_000_000, "in [0, 10^6]"), "D: inner steps per iteration (warm-started)";
    cg_steps: u64 = 10, int(1, 1_000_000, "in [1, 10^6]"), "N: conjugate-gradient iterations";
    tol: f64 = 1e-10, real(NONNEG, FINITE, ">= 0"), "CG stops when the residual norm is at most this";
    warm_start: bool = true, boolean(), "start the linear solve from the previous v (else from 0)";
    outer_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "β: step on x";
    outer_decay: f64 = 0.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "β_k = β (k+1)^(−p)";
}

/// The AID-CG solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct AidCg<T, BX, BY> {
    cfg: AidCgConfig,
    x: BX,
    gx: BX,
    cross: BX,
    y: BY,
    y_init: BY,
    b: BY,
    v: BY,
    s1: BY,
    s2: BY,
    s3: BY,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> AidCg<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and y_0 (v_0 = 0).
    pub fn new(cfg: AidCgConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        Ok(AidCg {
            cfg,
            gx: zeros_like(&x0),
            cross: zeros_like(&x0),
            x: x0,
            b: zeros_like(&y0),
            v: zeros_like(&y0),
            s1: zeros_like(&y0),
            s2: zeros_like(&y0),
            s3: zeros_like(&y0),
            y_init: y0.clone(),
            y: y0,
            iter: 0,
            initialized: false,
            _t: core::marker::PhantomData,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &AidCgConfig {
        &self.cfg
    }

    /// The last linear-system solution v ≈ [∇²ᵧᵧg]⁻¹∇ᵧf.
    pub fn v(&self) -> &[T] {
        self.v.as_ref()
    }

    /// The last hypergradient estimate ĝ.
    pub fn direction(&self) -> &[T] {
        self.gx.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for AidCg<T, BX, BY> {
    fn x(&self) -> &[T] {
        self.x.as_ref()
    }
    fn y(&self) -> &[T] {
        self.y.as_ref()
    }
    fn iter(&self) -> u64 {
        self.iter
    }
}

impl<T, BX, BY, O> Solver<T, O> for AidCg<T, BX, BY>
where
    T: Real,
    BX: Buffer<T>,
    BY: Buffer<T>,
    O: UpperGradX<T> + UpperGradY<T> + LowerGradY<T> + LowerHvp<T> + CrossJvp<T>,
{
    fn name(&self) -> &'static str {
        INFO.name
    }

    fn init<R: Rng + ?Sized>(&mut self, oracle: &mut O, _rng: &mut R) -> Result<(), Error> {
        check_len("x", self.x.as_ref().len(), oracle.dim_x())?;
        check_len("y", self.y.as_ref().len(), oracle.dim_y())?;
        copy(self.y_init.as_ref(), self.y.as_mut());
        fill(self.v.as_mut(), T::ZERO);
        self.iter = 0;
        self.initialized = true;
        Ok(())
    }

    fn step<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
        if !self.initialized {
            return Err(Error::NotInitialized);
        }
        let c = self.cfg;
        lower_sgd(
            oracle,
            rng,
            self.x.as_ref(),
            self.y.as_mut(),
            self.b.as_mut(),
            c.inner_steps,
            T::from_f64(c.inner_lr),
        );
        let (x, y) = (self.x.as_ref(), self.y.as_ref());
        let xi = oracle.sample(Level::Upper, rng);
        // ∇ₓF shares ∇ᵧF's point and sample: one joint call (gx is not
        // touched until the cross term).
        crate::oracle::grads_f(oracle, x, y, &xi, self.gx.as_mut(), self.b.as_mut());
        if !c.warm_start {
            fill(self.v.as_mut(), T::ZERO);
        }
        let zeta = oracle.sample(Level::Lower, rng);
        conjugate_gradient(
            oracle,
            x,
            y,
            self.b.as_ref(),
            &zeta,
            c.cg_steps,
            T::from_f64(c.tol),
            (
                self.v.as_mut(),
                self.s1.as_mut(),
                self.s2.as_mut(),
                self.s3.as_mut(),
            ),
        );
        let zeta2 = oracle.sample(Level::Lower, rng);
        oracle.jvp_xy(x, y, self.v.as_ref(), &zeta2, self.cross.as_mut());
        axpy(-T::ONE, self.cross.as_ref(), self.gx.as_mut());
        let beta: T = decayed(c.outer_lr, c.outer_decay, self.iter);
        axpy(-beta, self.gx.as_ref(), self.x.as_mut());
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for AidCg<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, gx, cross, y, y_init, b, v, s1, s2, s3; f64 ; u64 iter; bool initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ParamValue;

    #[test]
    fn switches_round_trip() {
        let mut c = AidCgConfig::default();
        assert!(c.set("warm_start", ParamValue::Bool(false)).is_ok());
        assert_eq!(c.get("warm_start"), Some(ParamValue::Bool(false)));
        assert!(c.set("warm_start", ParamValue::Int(1)).is_err());
    }
}
