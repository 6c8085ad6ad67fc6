//! StocBio: stochastic approximate implicit differentiation with a truncated
//! Neumann series (Ji, Yang, Liang, ICML 2021).
//!
//! # Update rule
//!
//! ```text
//! for k = 0, 1, …:
//!     y ← T SGD steps y ← y − α ∇ᵧG(x_k, y; S_t) from the previous y (warm start)
//!     v_0 = ∇ᵧF(x_k, y; D_F)
//!     v_Q = η Σ_{q=0}^{Q} Π_{j} (I − η ∇²ᵧᵧG(x_k, y; B_j)) v_0      (empty product = I)
//!         = p ← v_0; s ← v_0; for j = 1..Q: p ← p − η ∇²ᵧᵧG(x_k, y; B_j) p; s ← s + p; v_Q = η s
//!     ĝ = ∇ₓF(x_k, y; D_F) − ∇²ₓᵧG(x_k, y; D_G) v_Q
//!     x_{k+1} = x_k − β ĝ
//! ```
//! S_t, D_F, D_G and every B_j are fresh and independent. For a fixed Hessian
//! A the series equals A⁻¹(I − (I − ηA)^{Q+1})∇ᵧF: the estimator is biased by
//! at most (1 − ημ)^{Q+1}‖v_0‖/μ, consistent as Q → ∞. This is the correct
//! formula; the stocBiO/SLIP repositories compute `η·p_Q + Σ_{j≥1} p_j`
//! (dropping v_0, about 1/η too large), which is not reproduced.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//! Per iteration: T ∇ᵧG, Q HVPs, one each of ∇ᵧF, ∇ₓF, ∇²ₓᵧG·v.
//!
//! # Defaults
//!
//! benchopt's `stocbio`: α = η = β = 0.1, T = 10, Q = 10, constant steps.
//!
//! # References
//!
//! Kaiyi Ji, Junjie Yang, Yingbin Liang. *Bilevel Optimization: Convergence
//! Analysis and Enhanced Design.* ICML 2021. JunjieYang97/stocBiO.

use rand_core::Rng;

use super::common::{
    decayed, lower_sgd, neumann_sum, solver_config, DECAY_MAX, FINITE, NONNEG, POS,
};
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`StocBio`]; validated by [`StocBio::new`] against [`INFO`].
    pub struct StocBioConfig;
    info INFO {
        name: "stocbio",
        title: "StocBio",
        summary: "warm-started inner SGD, Neumann-series hypergradient, SGD on x",
        reference: "Ji, Yang, Liang. Bilevel Optimization: Convergence Analysis and Enhanced Design. ICML 2021",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    inner_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "α: inner SGD step on y";
    inner_steps: u64 = 10, int(0, 1_000_000, "in [0, 10^6]"), "T: inner SGD steps per iteration";
    hessian_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "η: Neumann-series step (< 1/L_g)";
    neumann_steps: u64 = 10, int(0, 1_000_000, "in [0, 10^6]"), "Q: Neumann-series terms after the first";
    outer_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "β: SGD step on x";
    outer_decay: f64 = 0.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "β_k = β (k+1)^(−p)";
}

/// The StocBio solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct StocBio<T, BX, BY> {
    cfg: StocBioConfig,
    x: BX,
    gx: BX,
    cross: BX,
    y: BY,
    y_init: BY,
    grad: BY,
    p: BY,
    hv: BY,
    v: BY,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> StocBio<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and y_0.
    pub fn new(cfg: StocBioConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        Ok(StocBio {
            cfg,
            gx: zeros_like(&x0),
            cross: zeros_like(&x0),
            x: x0,
            grad: zeros_like(&y0),
            p: zeros_like(&y0),
            hv: zeros_like(&y0),
            v: zeros_like(&y0),
            y_init: y0.clone(),
            y: y0,
            iter: 0,
            initialized: false,
            _t: core::marker::PhantomData,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &StocBioConfig {
        &self.cfg
    }

    /// The last Neumann-series vector v_Q.
    pub fn v(&self) -> &[T] {
        self.v.as_ref()
    }

    /// The last hypergradient estimate ĝ.
    pub fn direction(&self) -> &[T] {
        self.gx.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for StocBio<T, BX, BY> {
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

impl<T, BX, BY, O> Solver<T, O> for StocBio<T, BX, BY>
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
            self.grad.as_mut(),
            c.inner_steps,
            T::from_f64(c.inner_lr),
        );
        let (x, y) = (self.x.as_ref(), self.y.as_ref());
        let d_f = oracle.sample(Level::Upper, rng);
        // ∇ₓF is needed only after the Neumann sum but shares its point and
        // sample with ∇ᵧF: one joint call (gx is not touched in between).
        crate::oracle::grads_f(oracle, x, y, &d_f, self.gx.as_mut(), self.grad.as_mut());
        neumann_sum(
            oracle,
            rng,
            x,
            y,
            self.grad.as_ref(),
            T::from_f64(c.hessian_lr),
            c.neumann_steps,
            None,
            (self.p.as_mut(), self.hv.as_mut(), self.v.as_mut()),
        );
        let d_g = oracle.sample(Level::Lower, rng);
        oracle.jvp_xy(x, y, self.v.as_ref(), &d_g, self.cross.as_mut());
        axpy(-T::ONE, self.cross.as_ref(), self.gx.as_mut());
        let beta: T = decayed(c.outer_lr, c.outer_decay, self.iter);
        axpy(-beta, self.gx.as_ref(), self.x.as_mut());
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for StocBio<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, gx, cross, y, y_init, grad, p, hv, v; f64 ; u64 iter; bool initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ParamValue;

    #[test]
    fn integer_parameters_are_checked() {
        let mut c = StocBioConfig::default();
        assert!(c.set("neumann_steps", ParamValue::Int(-1)).is_err());
        assert!(c.set("neumann_steps", ParamValue::Real(3.0)).is_err());
        assert!(c.set("neumann_steps", ParamValue::Int(3)).is_ok());
        assert_eq!(c.neumann_steps, 3);
    }
}
