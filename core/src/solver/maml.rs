//! MAML: model-agnostic meta-learning with the exact multi-step meta-gradient
//! (Finn, Abbeel, Levine, ICML 2017; the multi-step analysis of Ji, Yang,
//! Liang, JMLR 2022).
//!
//! # Update rule
//!
//! ```text
//! for k = 0, 1, …:
//!     for each of B tasks T_i (fresh samples):
//!         φ_0 = x;  φ_{j+1} = φ_j − α ∇L_{S_i}(φ_j),  j < N        (store φ_0..φ_{N−1})
//!         G_i = Π_{j=0}^{N−1} (I − α ∇²L_{S_i}(φ_j)) ∇L_{Q_i}(φ_N)   (reverse pass)
//!     x ← x − β_k (1/B) Σ_i G_i
//! ```
//! Expressed over the standard oracles (see the `metacommon` notes in the
//! [`solver`](super) docs): a sample is a task, ∇L_S = ∇ᵧG, ∇²L_S·v =
//! ∇²ᵧᵧG·v, ∇L_Q = ∇ᵧF, with x passed as the first argument and φ as y. MAML
//! adapts *all* parameters, so dx = dy and x is the starting point of
//! adaptation; a direct dependence of G or F on x is not differentiated (use
//! [`Anil`](super::Anil) for a shared body x with an adapted head).
//!
//! # Memory
//!
//! The N adaptation iterates live in caller-supplied memory `BM` of at least
//! N·dy entries ([`Maml::new`]). [`Ufom`](super::Ufom) computes the same exact
//! gradient in O(1) memory by replaying the adaptation.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradY`], [`LowerGradY`], [`LowerHvp`]; a sample is a task.
//!
//! # Defaults
//!
//! The SLIP README's MAML command: α = 1e-2, β = 1e-2, N = 5; B = 20 tasks
//! per meta-batch (the SLIP repo's task batch).
//!
//! # References
//!
//! Chelsea Finn, Pieter Abbeel, Sergey Levine. *Model-Agnostic Meta-Learning
//! for Fast Adaptation of Deep Networks.* ICML 2017. Kaiyi Ji, Junjie Yang,
//! Yingbin Liang. *Theoretical Convergence of Multi-Step Model-Agnostic
//! Meta-Learning.* JMLR 2022.

use rand_core::Rng;

use super::common::{decayed, solver_config, DECAY_MAX, FINITE, NONNEG, POS};
use super::metacommon::{adapt, reverse};
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy, fill, scale};
use crate::oracle::{Level, LowerGradY, LowerHvp, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`Maml`]; validated by [`Maml::new`] against [`INFO`].
    pub struct MamlConfig;
    info INFO {
        name: "maml",
        title: "MAML",
        summary: "meta-learning: exact meta-gradient through N adaptation steps (iterates in caller memory)",
        reference: "Finn, Abbeel, Levine. Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks. ICML 2017",
        oracles: [GradYF, GradYG, HvpYY],
    }
    inner_lr: f64 = 1e-2, real(POS, FINITE, "> 0"), "α: adaptation step";
    inner_steps: u64 = 5, int(1, 1_000_000, "in [1, 10^6]"), "N: adaptation steps";
    outer_lr: f64 = 1e-2, real(POS, FINITE, "> 0"), "β: meta step";
    outer_decay: f64 = 0.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "β_k = β (k+1)^(−p)";
    meta_batch: u64 = 20, int(1, 1_000_000, "in [1, 10^6]"), "B: tasks per meta-step";
}

/// The MAML solver over buffers `BX` (meta-parameters, dx = dy), `BY`
/// (adapted parameters) and `BM` (trajectory memory, at least N·dy entries).
#[derive(Debug, Clone)]
pub struct Maml<T, BX, BY, BM> {
    cfg: MamlConfig,
    x: BX,
    g: BX,
    phi: BY,
    grad: BY,
    v: BY,
    memory: BM,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>, BM: Buffer<T>> Maml<T, BX, BY, BM> {
    /// Validates `cfg` and builds the solver from the meta-parameters x_0, a
    /// buffer `y0` of the adapted parameters' shape, and the trajectory memory.
    pub fn new(cfg: MamlConfig, x0: BX, y0: BY, memory: BM) -> Result<Self, Error> {
        cfg.validate()?;
        check_len("y", y0.as_ref().len(), x0.as_ref().len())?;
        let needed = (cfg.inner_steps as usize).saturating_mul(y0.as_ref().len());
        if memory.as_ref().len() < needed {
            return Err(Error::InsufficientMemory {
                needed,
                found: memory.as_ref().len(),
            });
        }
        Ok(Maml {
            cfg,
            g: zeros_like(&x0),
            x: x0,
            grad: zeros_like(&y0),
            v: zeros_like(&y0),
            phi: y0,
            memory,
            iter: 0,
            initialized: false,
            _t: core::marker::PhantomData,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &MamlConfig {
        &self.cfg
    }

    /// The last meta-gradient estimate (1/B) Σ G_i.
    pub fn direction(&self) -> &[T] {
        self.g.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>, BM: Buffer<T>> SolverState<T> for Maml<T, BX, BY, BM> {
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

impl<T, BX, BY, BM, O> Solver<T, O> for Maml<T, BX, BY, BM>
where
    T: Real,
    BX: Buffer<T>,
    BY: Buffer<T>,
    BM: Buffer<T>,
    O: UpperGradY<T> + LowerGradY<T> + LowerHvp<T>,
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
        let n = c.inner_steps as usize;
        let dy = self.phi.as_ref().len();
        fill(self.g.as_mut(), T::ZERO);
        for _ in 0..c.meta_batch {
            let task = oracle.sample(Level::Upper, rng);
            let x = self.x.as_ref();
            copy(x, self.phi.as_mut());
            let traj = &mut self.memory.as_mut()[..n * dy];
            adapt(
                oracle,
                x,
                &task,
                alpha,
                n,
                (self.phi.as_mut(), self.grad.as_mut()),
                Some(traj),
            );
            oracle.grad_y_f(x, self.phi.as_ref(), &task, self.v.as_mut());
            reverse(
                oracle,
                x,
                &task,
                alpha,
                &self.memory.as_ref()[..n * dy],
                (self.v.as_mut(), self.grad.as_mut()),
            );
            axpy(T::ONE, self.v.as_ref(), self.g.as_mut());
        }
        scale(T::ONE / T::from_f64(c.meta_batch as f64), self.g.as_mut());
        let beta: T = decayed(c.outer_lr, c.outer_decay, self.iter);
        axpy(-beta, self.g.as_ref(), self.x.as_mut());
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>, BM: Buffer<T>> crate::state::VisitState<T>
    for Maml<T, BX, BY, BM>
{
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, g, phi, grad, v, memory; f64 ; u64 iter; bool initialized);
    }
}
