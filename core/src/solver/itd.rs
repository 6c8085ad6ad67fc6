//! ITD: iterative differentiation, reverse mode through D inner steps (Ji,
//! Yang, Liang, ICML 2021; Franceschi et al. 2017).
//!
//! # Update rule
//!
//! ```text
//! for k = 0, 1, …:
//!     y^0 = previous y^D (warm start, not differentiated) or y_0
//!     y^t = y^{t−1} − α ∇ᵧG(x_k, y^{t−1}; ζ),  t = 1..D        (store y^0..y^{D−1})
//!     v ← ∇ᵧF(x_k, y^D; ξ);  ĝ ← ∇ₓF(x_k, y^D; ξ)
//!     for t = D−1 down to 0:
//!         ĝ ← ĝ − α ∇²ₓᵧG(x_k, y^t; ζ) v
//!         v ← v − α ∇²ᵧᵧG(x_k, y^t; ζ) v
//!     x_{k+1} = x_k − β ĝ
//! ```
//! ĝ = d f(x, y^D(x))/dx exactly: automatic differentiation through the
//! unrolled loop. It is biased for ∇Φ by the inner error, consistent as
//! D → ∞.
//!
//! One lower sample ζ serves every inner step and every backward product of
//! one iteration (the inner problem is a fixed minibatch, so the reverse pass
//! differentiates exactly the forward pass, and no list of samples has to be
//! kept); one upper sample ξ serves both upper gradients.
//!
//! # Memory
//!
//! The D iterates y^0..y^{D−1} live in caller-supplied memory `BM` of at
//! least D·dy entries, passed to [`Itd::new`]; nothing else grows with D.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//! Per iteration: D ∇ᵧG, D HVPs, D cross products, one ∇ᵧF and one ∇ₓF.
//!
//! # Defaults
//!
//! α = β = 0.1, D = 10, warm start on (benchopt-like values; the paper fixes
//! only D = Θ(κ log 1/ε)).
//!
//! # References
//!
//! Kaiyi Ji, Junjie Yang, Yingbin Liang. *Bilevel Optimization: Convergence
//! Analysis and Enhanced Design.* ICML 2021 (ITD-BiO, Proposition 2).

use rand_core::Rng;

use super::common::{decayed, solver_config, DECAY_MAX, FINITE, NONNEG, POS};
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`Itd`]; validated by [`Itd::new`] against [`INFO`].
    pub struct ItdConfig;
    info INFO {
        name: "itd",
        title: "ITD",
        summary: "reverse-mode differentiation through D inner GD steps (iterates in caller memory)",
        reference: "Ji, Yang, Liang. Bilevel Optimization: Convergence Analysis and Enhanced Design. ICML 2021",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    inner_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "α: inner step on y";
    inner_steps: u64 = 10, int(1, 1_000_000, "in [1, 10^6]"), "D: unrolled inner steps";
    warm_start: bool = true, boolean(), "start each unroll from the previous y^D (else from y_0)";
    outer_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "β: step on x";
    outer_decay: f64 = 0.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "β_k = β (k+1)^(−p)";
}

/// The ITD solver over buffers `BX` (dx), `BY` (dy) and the trajectory memory
/// `BM` (at least D·dy entries).
#[derive(Debug, Clone)]
pub struct Itd<T, BX, BY, BM> {
    cfg: ItdConfig,
    x: BX,
    gx: BX,
    cross: BX,
    y: BY,
    y_init: BY,
    grad: BY,
    v: BY,
    hv: BY,
    memory: BM,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>, BM: Buffer<T>> Itd<T, BX, BY, BM> {
    /// Validates `cfg` and builds the solver from x_0, y_0 and the trajectory
    /// memory (`InsufficientMemory` when shorter than D·dy).
    pub fn new(cfg: ItdConfig, x0: BX, y0: BY, memory: BM) -> Result<Self, Error> {
        cfg.validate()?;
        let needed = Self::memory_needed(&cfg, y0.as_ref().len());
        if memory.as_ref().len() < needed {
            return Err(Error::InsufficientMemory {
                needed,
                found: memory.as_ref().len(),
            });
        }
        Ok(Itd {
            cfg,
            gx: zeros_like(&x0),
            cross: zeros_like(&x0),
            x: x0,
            grad: zeros_like(&y0),
            v: zeros_like(&y0),
            hv: zeros_like(&y0),
            memory,
            y_init: y0.clone(),
            y: y0,
            iter: 0,
            initialized: false,
            _t: core::marker::PhantomData,
        })
    }

    /// Entries of trajectory memory needed: D·dy.
    pub fn memory_needed(cfg: &ItdConfig, dy: usize) -> usize {
        (cfg.inner_steps as usize).saturating_mul(dy)
    }

    /// The configuration.
    pub const fn config(&self) -> &ItdConfig {
        &self.cfg
    }

    /// The last hypergradient estimate ĝ.
    pub fn direction(&self) -> &[T] {
        self.gx.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>, BM: Buffer<T>> SolverState<T> for Itd<T, BX, BY, BM> {
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

impl<T, BX, BY, BM, O> Solver<T, O> for Itd<T, BX, BY, BM>
where
    T: Real,
    BX: Buffer<T>,
    BY: Buffer<T>,
    BM: Buffer<T>,
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
        let alpha = T::from_f64(c.inner_lr);
        let dy = self.y.as_ref().len();
        let d = c.inner_steps as usize;
        if !c.warm_start {
            copy(self.y_init.as_ref(), self.y.as_mut());
        }
        let zeta = oracle.sample(Level::Lower, rng);
        let x = self.x.as_ref();
        let traj = &mut self.memory.as_mut()[..d * dy];
        for yt in traj.chunks_exact_mut(dy) {
            copy(self.y.as_ref(), yt);
            oracle.grad_y_g(x, self.y.as_ref(), &zeta, self.grad.as_mut());
            axpy(-alpha, self.grad.as_ref(), self.y.as_mut());
        }
        let xi = oracle.sample(Level::Upper, rng);
        let (y, gx, v) = (self.y.as_ref(), self.gx.as_mut(), self.v.as_mut());
        crate::oracle::grads_f(oracle, x, y, &xi, gx, v);
        for yt in self.memory.as_ref()[..d * dy].chunks_exact(dy).rev() {
            // Both products at (x, y_t) with v before its update.
            let products = (self.hv.as_mut(), self.cross.as_mut());
            crate::oracle::hvp_jvp(oracle, x, yt, self.v.as_ref(), &zeta, products);
            axpy(-alpha, self.cross.as_ref(), self.gx.as_mut());
            axpy(-alpha, self.hv.as_ref(), self.v.as_mut());
        }
        let beta: T = decayed(c.outer_lr, c.outer_decay, self.iter);
        axpy(-beta, self.gx.as_ref(), self.x.as_mut());
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>, BM: Buffer<T>> crate::state::VisitState<T>
    for Itd<T, BX, BY, BM>
{
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, gx, cross, y, y_init, grad, v, hv, memory; f64 ; u64 iter; bool initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_memory_is_an_error() {
        let cfg = ItdConfig {
            inner_steps: 3,
            ..ItdConfig::default()
        };
        let r = Itd::<f64, _, _, _>::new(cfg, [0.0; 2], [0.0; 2], [0.0; 5]);
        assert_eq!(
            r.err(),
            Some(Error::InsufficientMemory {
                needed: 6,
                found: 5
            })
        );
        assert!(Itd::<f64, _, _, _>::new(cfg, [0.0; 2], [0.0; 2], [0.0; 6]).is_ok());
    }
}
