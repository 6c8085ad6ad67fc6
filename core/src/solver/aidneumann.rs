//! AID-Neumann: approximate implicit differentiation with a Neumann-series /
//! fixed-point solve (Ji, Yang, Liang, ICML 2021; hypertorch `fixed_point`).
//!
//! # Update rule
//!
//! ```text
//! for k = 0, 1, …:
//!     y ← D steps y ← y − α ∇ᵧG(x_k, y; ζ_t) from the previous y (warm start)
//!     v^{(0)} = previous v (or 0)
//!     v^{(i+1)} = (I − η ∇²ᵧᵧG(x_k, y; ζ)) v^{(i)} + ∇ᵧF(x_k, y; ξ),   i < N
//!     ĝ = ∇ₓF(x_k, y; ξ) − η ∇²ₓᵧG(x_k, y; ζ') v^{(N)}
//!     x_{k+1} = x_k − β ĝ
//! ```
//! From v^{(0)} = 0, η v^{(N)} = Σ_{q<N} η(I − ηA)^q ∇ᵧf → A⁻¹∇ᵧf. One lower
//! sample ζ for the whole solve (a fixed minibatch Hessian, as for CG), one
//! upper sample ξ for both upper gradients, a fresh ζ' for the cross term.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//!
//! # Defaults
//!
//! The paper fixes orders only (D = Θ(κ), N = Θ(√κ) for CG); chosen here:
//! α = β = 0.1, D = 10, N = 10 (benchopt's values for its AID-type solvers),
//! warm start of v (Ji et al.'s "warm start strategy"), Neumann step η = 0.1.
//!
//! # References
//!
//! Kaiyi Ji, Junjie Yang, Yingbin Liang. *Bilevel Optimization: Convergence
//! Analysis and Enhanced Design.* ICML 2021. Linear solvers as in
//! prolearner/hypertorch (`CG`, `fixed_point`).

use rand_core::Rng;

use super::common::{decayed, lower_sgd, solver_config, DECAY_MAX, FINITE, NONNEG, POS};
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy, fill};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`AidNeumann`]; validated by [`AidNeumann::new`] against [`INFO`].
    pub struct AidNeumannConfig;
    info INFO {
        name: "aid-neumann",
        title: "AID-Neumann",
        summary: "warm-started inner GD, Neumann-series (fixed-point) implicit hypergradient, GD on x",
        reference: "Ji, Yang, Liang. Bilevel Optimization: Convergence Analysis and Enhanced Design. ICML 2021",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    inner_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "α: inner step on y";
    inner_steps: u64 = 10, int(0, 1_000_000, "in [0, 10^6]"), "D: inner steps per iteration (warm-started)";
    hessian_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "η: fixed-point step (< 2/L_g)";
    neumann_steps: u64 = 10, int(1, 1_000_000, "in [1, 10^6]"), "N: fixed-point iterations";
    warm_start: bool = true, boolean(), "start the linear solve from the previous v (else from 0)";
    outer_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "β: step on x";
    outer_decay: f64 = 0.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "β_k = β (k+1)^(−p)";
}

/// The AID-Neumann solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct AidNeumann<T, BX, BY> {
    cfg: AidNeumannConfig,
    x: BX,
    gx: BX,
    cross: BX,
    y: BY,
    y_init: BY,
    b: BY,
    v: BY,
    s1: BY,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> AidNeumann<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and y_0 (v_0 = 0).
    pub fn new(cfg: AidNeumannConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        Ok(AidNeumann {
            cfg,
            gx: zeros_like(&x0),
            cross: zeros_like(&x0),
            x: x0,
            b: zeros_like(&y0),
            v: zeros_like(&y0),
            s1: zeros_like(&y0),
            y_init: y0.clone(),
            y: y0,
            iter: 0,
            initialized: false,
            _t: core::marker::PhantomData,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &AidNeumannConfig {
        &self.cfg
    }

    /// The last linear-system solution v ≈ [∇²ᵧᵧg]⁻¹∇ᵧf (unscaled: the hypergradient uses η·v).
    pub fn v(&self) -> &[T] {
        self.v.as_ref()
    }

    /// The last hypergradient estimate ĝ.
    pub fn direction(&self) -> &[T] {
        self.gx.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for AidNeumann<T, BX, BY> {
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

impl<T, BX, BY, O> Solver<T, O> for AidNeumann<T, BX, BY>
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
        let eta = T::from_f64(c.hessian_lr);
        for _ in 0..c.neumann_steps {
            oracle.hvp_yy(x, y, self.v.as_ref(), &zeta, self.s1.as_mut());
            for ((vi, &h), &bi) in self
                .v
                .as_mut()
                .iter_mut()
                .zip(self.s1.as_ref())
                .zip(self.b.as_ref())
            {
                *vi = *vi - eta * h + bi;
            }
        }
        let zeta2 = oracle.sample(Level::Lower, rng);
        oracle.jvp_xy(x, y, self.v.as_ref(), &zeta2, self.cross.as_mut());
        axpy(
            -T::from_f64(c.hessian_lr),
            self.cross.as_ref(),
            self.gx.as_mut(),
        );
        let beta: T = decayed(c.outer_lr, c.outer_decay, self.iter);
        axpy(-beta, self.gx.as_ref(), self.x.as_mut());
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for AidNeumann<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, gx, cross, y, y_init, b, v, s1; f64 ; u64 iter; bool initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ParamValue;

    #[test]
    fn switches_round_trip() {
        let mut c = AidNeumannConfig::default();
        assert!(c.set("warm_start", ParamValue::Bool(false)).is_ok());
        assert_eq!(c.get("warm_start"), Some(ParamValue::Bool(false)));
        assert!(c.set("warm_start", ParamValue::Int(1)).is_err());
    }
}
