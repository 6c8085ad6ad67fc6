//! ALSET: alternating stochastic gradient descent (Chen, Sun, Yin, NeurIPS
//! 2021).
//!
//! # Update rule
//!
//! ```text
//! for k = 0, 1, …:
//!     y ← T SGD steps y ← y − β ∇ᵧG(x_k, y; φ_k^t) from the previous y
//!     draw n ~ U{0, …, Q−1};  v = ∇ᵧF(x_k, y; ξ)
//!     v ← Π_{i=1..n} (I − c ∇²ᵧᵧG(x_k, y; ζ_i)) v;  v ← Q·c·v          (HIA)
//!     ĝ = ∇ₓF(x_k, y; ξ) − ∇²ₓᵧG(x_k, y; ζ') v
//!     x_{k+1} = x_k − α ĝ
//! ```
//! Constant steps, O(1) warm-started inner steps: BSA without the decays.
//! The paper allows any hypergradient estimator whose bias is O(c^Q); the
//! randomised HIA of Ghadimi and Wang is used, as in the paper's analysis.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//!
//! # Defaults
//!
//! ALSET is not in benchopt and the paper fixes only orders (T = O(1), α
//! constant, β = Θ(1/√K)). Chosen here: T = 1 (the "alternating" form that
//! gives the method its name), α = β = c = 0.1 and Q = 10 (benchopt's values
//! for the neighbouring methods).
//!
//! # References
//!
//! Tianyi Chen, Yuejiao Sun, Wotao Yin. *Closing the Gap: Tighter Analysis of
//! Alternating Stochastic Gradient Methods for Bilevel Problems.* NeurIPS 2021.

use rand_core::Rng;

use super::common::{
    decayed, hia_hypergradient, lower_sgd, solver_config, DECAY_MAX, FINITE, NONNEG, POS,
};
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy};
use crate::oracle::{CrossJvp, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`Alset`]; validated by [`Alset::new`] against [`INFO`].
    pub struct AlsetConfig;
    info INFO {
        name: "alset",
        title: "ALSET",
        summary: "alternating SGD: a few warm-started steps on y, randomized Neumann hypergradient, constant steps",
        reference: "Chen, Sun, Yin. Closing the Gap: Tighter Analysis of Alternating Stochastic Gradient Methods for Bilevel Problems. NeurIPS 2021",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    outer_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "α: step on x";
    outer_decay: f64 = 0.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "α_k = α (k+1)^(−p)";
    inner_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "β: SGD step on y";
    inner_steps: u64 = 1, int(1, 1_000_000, "in [1, 10^6]"), "T: SGD steps on y per iteration";
    hessian_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "c: HIA step (< 1/L_g)";
    neumann_terms: u64 = 10, int(1, 1_000_000, "in [1, 10^6]"), "Q: HIA truncation";
}

/// The ALSET solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct Alset<T, BX, BY> {
    cfg: AlsetConfig,
    x: BX,
    gx: BX,
    cross: BX,
    y: BY,
    y_init: BY,
    b: BY,
    hv: BY,
    v: BY,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> Alset<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and y_0.
    pub fn new(cfg: AlsetConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        Ok(Alset {
            cfg,
            gx: zeros_like(&x0),
            cross: zeros_like(&x0),
            x: x0,
            b: zeros_like(&y0),
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
    pub const fn config(&self) -> &AlsetConfig {
        &self.cfg
    }

    /// The last hypergradient estimate ĝ.
    pub fn direction(&self) -> &[T] {
        self.gx.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for Alset<T, BX, BY> {
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

impl<T, BX, BY, O> Solver<T, O> for Alset<T, BX, BY>
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
        let k = self.iter;
        let beta = T::from_f64(c.inner_lr);
        lower_sgd(
            oracle,
            rng,
            self.x.as_ref(),
            self.y.as_mut(),
            self.b.as_mut(),
            c.inner_steps,
            beta,
        );
        hia_hypergradient(
            oracle,
            rng,
            self.x.as_ref(),
            self.y.as_ref(),
            T::from_f64(c.hessian_lr),
            c.neumann_terms,
            true,
            (self.b.as_mut(), self.hv.as_mut(), self.v.as_mut()),
            (self.gx.as_mut(), self.cross.as_mut()),
        );
        let alpha: T = decayed(c.outer_lr, c.outer_decay, k);
        axpy(-alpha, self.gx.as_ref(), self.x.as_mut());
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for Alset<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, gx, cross, y, y_init, b, hv, v; f64 ; u64 iter; bool initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ParamValue;

    #[test]
    fn neumann_terms_must_be_positive() {
        let mut c = AlsetConfig::default();
        assert!(c.set("neumann_terms", ParamValue::Int(0)).is_err());
        assert!(c.set("neumann_terms", ParamValue::Int(4)).is_ok());
        assert_eq!(c.get("neumann_terms"), Some(ParamValue::Int(4)));
    }
}
