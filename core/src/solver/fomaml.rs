//! FOMAML: first-order MAML, the meta-gradient without the Hessian product
//! (Finn, Abbeel, Levine, ICML 2017; "FOM" in the UFOM paper).
//!
//! # Update rule
//!
//! ```text
//! for k = 0, 1, …:
//!     for each of B tasks T_i (fresh samples):
//!         φ_0 = x;  φ_{j+1} = φ_j − α ∇L_{S_i}(φ_j),  j < N
//!         G_i = ∇L_{Q_i}(φ_N)
//!     x ← x − β_k (1/B) Σ_i G_i
//! ```
//! Tasks over the standard oracles as for [`Maml`](super::Maml): a sample is
//! a task, ∇L_S = ∇ᵧG, ∇L_Q = ∇ᵧF, dx = dy. **Biased by design**: it drops
//! Π(I − α∇²L_S), so its fixed point differs from MAML's (4.8706 instead of
//! 4.7350 on the §7.5 toy). O(1) memory.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradY`], [`LowerGradY`]; a sample is a task.
//!
//! # Defaults
//!
//! As [`Maml`](super::Maml): α = 1e-2, β = 1e-2, N = 5, B = 20.
//!
//! # References
//!
//! Chelsea Finn, Pieter Abbeel, Sergey Levine. *Model-Agnostic Meta-Learning
//! for Fast Adaptation of Deep Networks.* ICML 2017.

use rand_core::Rng;

use super::common::{decayed, solver_config, DECAY_MAX, FINITE, NONNEG, POS};
use super::metacommon::adapt;
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy, fill, scale};
use crate::oracle::{Level, LowerGradY, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`Fomaml`]; validated by [`Fomaml::new`] against [`INFO`].
    pub struct FomamlConfig;
    info INFO {
        name: "fomaml",
        title: "FOMAML",
        summary: "meta-learning: first-order meta-gradient (query gradient at the adapted parameters)",
        reference: "Finn, Abbeel, Levine. Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks. ICML 2017",
        oracles: [GradYF, GradYG],
    }
    inner_lr: f64 = 1e-2, real(POS, FINITE, "> 0"), "α: adaptation step";
    inner_steps: u64 = 5, int(0, 1_000_000, "in [0, 10^6]"), "N: adaptation steps";
    outer_lr: f64 = 1e-2, real(POS, FINITE, "> 0"), "β: meta step";
    outer_decay: f64 = 0.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "β_k = β (k+1)^(−p)";
    meta_batch: u64 = 20, int(1, 1_000_000, "in [1, 10^6]"), "B: tasks per meta-step";
}

/// The FOMAML solver over buffers `BX` (meta-parameters) and `BY` (adapted
/// parameters, dx = dy).
#[derive(Debug, Clone)]
pub struct Fomaml<T, BX, BY> {
    cfg: FomamlConfig,
    x: BX,
    g: BX,
    phi: BY,
    grad: BY,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> Fomaml<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and a buffer of the
    /// adapted parameters' shape.
    pub fn new(cfg: FomamlConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        check_len("y", y0.as_ref().len(), x0.as_ref().len())?;
        Ok(Fomaml {
            cfg,
            g: zeros_like(&x0),
            x: x0,
            grad: zeros_like(&y0),
            phi: y0,
            iter: 0,
            initialized: false,
            _t: core::marker::PhantomData,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &FomamlConfig {
        &self.cfg
    }

    /// The last meta-gradient estimate (1/B) Σ G_i.
    pub fn direction(&self) -> &[T] {
        self.g.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for Fomaml<T, BX, BY> {
    fn x(&self) -> &[T] {
        self.x.as_ref()
    }
    /// The parameters adapted to the last task of the last meta-batch.
    fn y(&self) -> &[T] {
        self.phi.as_ref()
    }
    fn iter(&self) -> u64 {
        self.iter
    }
}

impl<T, BX, BY, O> Solver<T, O> for Fomaml<T, BX, BY>
where
    T: Real,
    BX: Buffer<T>,
    BY: Buffer<T>,
    O: UpperGradY<T> + LowerGradY<T>,
{
    fn name(&self) -> &'static str {
        INFO.name
    }

    fn init<R: Rng + ?Sized>(&mut self, oracle: &mut O, _rng: &mut R) -> Result<(), Error> {
        check_len("x", self.x.as_ref().len(), oracle.dim_x())?;
        check_len("y", self.phi.as_ref().len(), oracle.dim_y())?;
        copy(self.x.as_ref(), self.phi.as_mut());
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
        fill(self.g.as_mut(), T::ZERO);
        for _ in 0..c.meta_batch {
            let task = oracle.sample(Level::Upper, rng);
            let x = self.x.as_ref();
            copy(x, self.phi.as_mut());
            adapt(
                oracle,
                x,
                &task,
                alpha,
                c.inner_steps as usize,
                (self.phi.as_mut(), self.grad.as_mut()),
                None,
            );
            oracle.grad_y_f(x, self.phi.as_ref(), &task, self.grad.as_mut());
            axpy(T::ONE, self.grad.as_ref(), self.g.as_mut());
        }
        scale(T::ONE / T::from_f64(c.meta_batch as f64), self.g.as_mut());
        let beta: T = decayed(c.outer_lr, c.outer_decay, self.iter);
        axpy(-beta, self.g.as_ref(), self.x.as_mut());
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for Fomaml<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, g, phi, grad; f64 ; u64 iter; bool initialized);
    }
}
