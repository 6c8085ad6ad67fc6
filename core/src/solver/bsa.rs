//! BSA: bilevel stochastic approximation (Ghadimi and Wang, 2018).
//!
//! # Update rule
//!
//! ```text
//! for k = 0, 1, …:
//!     y ← t_k SGD steps y ← y − β_k ∇ᵧG(x_k, y; ζ) from the previous y,
//!         t_k = ⌈T (k+1)^s⌉, β_k = β (k+1)^(−1/2)
//!     draw n ~ U{0, …, Q−1};  v = ∇ᵧF(x_k, y; ξ)
//!     v ← Π_{i=1..n} (I − c ∇²ᵧᵧG(x_k, y; ζ_i)) v;  v ← Q·c·v          (HIA)
//!     ĝ = ∇ₓF(x_k, y; ξ) − ∇²ₓᵧG(x_k, y; ζ_0) v
//!     x_{k+1} = x_k − α_k ĝ,  α_k = α (k+1)^(−1/2)
//! ```
//! Every sample is fresh except ξ, shared by the two upper gradients. The
//! paper grows t_k with k; benchopt keeps it constant (s = 0, the default).
//! The order (inner loop first, then the hypergradient at the new y) is the
//! paper's; benchopt steps x first and runs the inner loop at x_{k+1}.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//!
//! # Defaults
//!
//! benchopt's `bsa`: 10 inner steps, Q = 10, steps 0.1, inner and outer steps
//! decaying as (k+1)^(−1/2), constant HIA step.
//!
//! # References
//!
//! Saeed Ghadimi, Mengdi Wang. *Approximation Methods for Bilevel
//! Programming.* arXiv:1802.02246, 2018.

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
    /// Hyperparameters of [`Bsa`]; validated by [`Bsa::new`] against [`INFO`].
    pub struct BsaConfig;
    info INFO {
        name: "bsa",
        title: "BSA",
        summary: "inner SGD loop, randomized Neumann hypergradient, decaying SGD on x",
        reference: "Ghadimi, Wang. Approximation Methods for Bilevel Programming. arXiv:1802.02246",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    outer_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "α: step on x";
    outer_decay: f64 = 0.5, real(NONNEG, DECAY_MAX, "in [0, 2]"), "α_k = α (k+1)^(−p)";
    inner_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "β: inner SGD step on y";
    inner_decay: f64 = 0.5, real(NONNEG, DECAY_MAX, "in [0, 2]"), "β_k = β (k+1)^(−p)";
    inner_steps: u64 = 10, int(0, 1_000_000, "in [0, 10^6]"), "T: inner SGD steps (at k = 0)";
    inner_growth: f64 = 0.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "s: t_k = ⌈T (k+1)^s⌉";
    hessian_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "c: HIA step (< 1/L_g)";
    neumann_terms: u64 = 10, int(1, 1_000_000, "in [1, 10^6]"), "Q: HIA truncation";
}

/// The BSA solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct Bsa<T, BX, BY> {
    cfg: BsaConfig,
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

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> Bsa<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and y_0.
    pub fn new(cfg: BsaConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        Ok(Bsa {
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
    pub const fn config(&self) -> &BsaConfig {
        &self.cfg
    }

    /// The last hypergradient estimate ĝ.
    pub fn direction(&self) -> &[T] {
        self.gx.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for Bsa<T, BX, BY> {
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

impl<T, BX, BY, O> Solver<T, O> for Bsa<T, BX, BY>
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
        let beta: T = decayed(c.inner_lr, c.inner_decay, k);
        let steps = if c.inner_growth > 0.0 {
            ceil_u64(c.inner_steps as f64 * Real::powf(k as f64 + 1.0, c.inner_growth))
        } else {
            c.inner_steps
        };
        lower_sgd(
            oracle,
            rng,
            self.x.as_ref(),
            self.y.as_mut(),
            self.b.as_mut(),
            steps,
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

/// ⌈v⌉ for a non-negative finite `v` (saturating), without float intrinsics.
fn ceil_u64(v: f64) -> u64 {
    let floor = v as u64;
    if (floor as f64) < v {
        floor.saturating_add(1)
    } else {
        floor
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for Bsa<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, gx, cross, y, y_init, b, hv, v; f64 ; u64 iter; bool initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ParamValue;

    #[test]
    fn inner_steps_grow_by_the_ceiling() {
        assert_eq!(ceil_u64(10.0), 10);
        assert_eq!(ceil_u64(10.2), 11);
        assert_eq!(ceil_u64(0.0), 0);
    }

    #[test]
    fn neumann_terms_must_be_positive() {
        let mut c = BsaConfig::default();
        assert!(c.set("neumann_terms", ParamValue::Int(0)).is_err());
        assert!(c.set("neumann_terms", ParamValue::Int(4)).is_ok());
        assert_eq!(c.get("neumann_terms"), Some(ParamValue::Int(4)));
    }
}
