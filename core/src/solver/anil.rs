//! ANIL: almost no inner loop — only the head is adapted, the body is
//! meta-learned through the exact meta-gradient (Raghu, Raghu, Bengio,
//! Vinyals, ICLR 2020; analysis in Ji, Yang, Liang's multi-step MAML work).
//!
//! # Update rule
//!
//! ```text
//! meta-parameters: body x and head initialisation θ
//! for k = 0, 1, …:
//!     for each of B tasks T_i (fresh samples):
//!         θ_0 = θ;  θ_{j+1} = θ_j − α ∇_θ L_S(x, θ_j),  j < N            (store θ_0..θ_{N−1})
//!         v ← ∇_θ L_Q(x, θ_N);  g_x ← ∇ₓL_Q(x, θ_N)
//!         for j = N−1 down to 0:
//!             g_x ← g_x − α ∇²_{xθ} L_S(x, θ_j) v
//!             v   ← v − α ∇²_{θθ} L_S(x, θ_j) v
//!         (∂/∂x, ∂/∂θ) += (g_x, v) / B
//!     x ← x − β_k ∂/∂x;   θ ← θ − β_k ∂/∂θ
//! ```
//! Over the standard oracles: a sample is a task, x is the body, y the head;
//! L_S = G (support), L_Q = F (query). The body gradient is the ITD formula
//! (`algorithms.md` §5.2) with y⁰ = θ; [`SolverState::y`] is the meta-learned
//! head initialisation θ.
//!
//! # Memory
//!
//! The N head iterates live in caller-supplied memory `BM` of at least N·dy
//! entries ([`Anil::new`]).
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`];
//! a sample is a task.
//!
//! # Defaults
//!
//! The SLIP README's ANIL command: α = 1e-2, β = 5e-2, N = 5; B = 20 tasks.
//!
//! # References
//!
//! Aniruddh Raghu, Maithra Raghu, Samy Bengio, Oriol Vinyals. *Rapid Learning
//! or Feature Reuse? Towards Understanding the Effectiveness of MAML.* ICLR
//! 2020.

use rand_core::Rng;

use super::common::{decayed, solver_config, DECAY_MAX, FINITE, NONNEG, POS};
use super::metacommon::adapt;
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy, fill, scale};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`Anil`]; validated by [`Anil::new`] against [`INFO`].
    pub struct AnilConfig;
    info INFO {
        name: "anil",
        title: "ANIL",
        summary: "meta-learning: adapt only the head, exact meta-gradient for body and head (iterates in caller memory)",
        reference: "Raghu, Raghu, Bengio, Vinyals. Rapid Learning or Feature Reuse? Towards Understanding the Effectiveness of MAML. ICLR 2020",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    inner_lr: f64 = 1e-2, real(POS, FINITE, "> 0"), "α: head adaptation step";
    inner_steps: u64 = 5, int(1, 1_000_000, "in [1, 10^6]"), "N: adaptation steps";
    outer_lr: f64 = 5e-2, real(POS, FINITE, "> 0"), "β: meta step on body and head";
    outer_decay: f64 = 0.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "β_k = β (k+1)^(−p)";
    meta_batch: u64 = 20, int(1, 1_000_000, "in [1, 10^6]"), "B: tasks per meta-step";
}

/// The ANIL solver over buffers `BX` (body), `BY` (head) and `BM` (head
/// trajectory, at least N·dy entries).
#[derive(Debug, Clone)]
pub struct Anil<T, BX, BY, BM> {
    cfg: AnilConfig,
    x: BX,
    gx: BX,
    gx_task: BX,
    cross: BX,
    head: BY,
    head_init: BY,
    theta: BY,
    gh: BY,
    v: BY,
    grad: BY,
    memory: BM,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>, BM: Buffer<T>> Anil<T, BX, BY, BM> {
    /// Validates `cfg` and builds the solver from the body x_0, the head
    /// initialisation θ_0 and the trajectory memory.
    pub fn new(cfg: AnilConfig, x0: BX, head0: BY, memory: BM) -> Result<Self, Error> {
        cfg.validate()?;
        let needed = (cfg.inner_steps as usize).saturating_mul(head0.as_ref().len());
        if memory.as_ref().len() < needed {
            return Err(Error::InsufficientMemory {
                needed,
                found: memory.as_ref().len(),
            });
        }
        Ok(Anil {
            cfg,
            gx: zeros_like(&x0),
            gx_task: zeros_like(&x0),
            cross: zeros_like(&x0),
            x: x0,
            theta: zeros_like(&head0),
            gh: zeros_like(&head0),
            v: zeros_like(&head0),
            grad: zeros_like(&head0),
            head_init: head0.clone(),
            head: head0,
            memory,
            iter: 0,
            initialized: false,
            _t: core::marker::PhantomData,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &AnilConfig {
        &self.cfg
    }

    /// The last body meta-gradient ∂/∂x.
    pub fn direction(&self) -> &[T] {
        self.gx.as_ref()
    }

    /// The last head meta-gradient ∂/∂θ.
    pub fn head_direction(&self) -> &[T] {
        self.gh.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>, BM: Buffer<T>> SolverState<T> for Anil<T, BX, BY, BM> {
    fn x(&self) -> &[T] {
        self.x.as_ref()
    }
    /// The meta-learned head initialisation θ.
    fn y(&self) -> &[T] {
        self.head.as_ref()
    }
    fn iter(&self) -> u64 {
        self.iter
    }
}

impl<T, BX, BY, BM, O> Solver<T, O> for Anil<T, BX, BY, BM>
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
        check_len("y", self.head.as_ref().len(), oracle.dim_y())?;
        copy(self.head_init.as_ref(), self.head.as_mut());
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
        let dy = self.head.as_ref().len();
        fill(self.gx.as_mut(), T::ZERO);
        fill(self.gh.as_mut(), T::ZERO);
        for _ in 0..c.meta_batch {
            let task = oracle.sample(Level::Upper, rng);
            let x = self.x.as_ref();
            copy(self.head.as_ref(), self.theta.as_mut());
            let traj = &mut self.memory.as_mut()[..n * dy];
            adapt(
                oracle,
                x,
                &task,
                alpha,
                n,
                (self.theta.as_mut(), self.grad.as_mut()),
                Some(traj),
            );
            let (th, gx, v) = (self.theta.as_ref(), self.gx_task.as_mut(), self.v.as_mut());
            crate::oracle::grads_f(oracle, x, th, &task, gx, v);
            for th in self.memory.as_ref()[..n * dy].chunks_exact(dy).rev() {
                // Both products at (x, θ_k) with v before its update.
                let products = (self.grad.as_mut(), self.cross.as_mut());
                crate::oracle::hvp_jvp(oracle, x, th, self.v.as_ref(), &task, products);
                axpy(-alpha, self.cross.as_ref(), self.gx_task.as_mut());
                axpy(-alpha, self.grad.as_ref(), self.v.as_mut());
            }
            axpy(T::ONE, self.gx_task.as_ref(), self.gx.as_mut());
            axpy(T::ONE, self.v.as_ref(), self.gh.as_mut());
        }
        let inv_b = T::ONE / T::from_f64(c.meta_batch as f64);
        scale(inv_b, self.gx.as_mut());
        scale(inv_b, self.gh.as_mut());
        let beta: T = decayed(c.outer_lr, c.outer_decay, self.iter);
        axpy(-beta, self.gx.as_ref(), self.x.as_mut());
        axpy(-beta, self.gh.as_ref(), self.head.as_mut());
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>, BM: Buffer<T>> crate::state::VisitState<T>
    for Anil<T, BX, BY, BM>
{
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, gx, gx_task, cross, head, head_init, theta, gh, v, grad, memory; f64 ; u64 iter; bool initialized);
    }
}
