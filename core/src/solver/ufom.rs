//! UFOM: unbiased first-order meta-learning, a randomised debiasing of
//! FOMAML (Likhosherstov, Song, Choromanski, Davis, Weller, ICML 2021).
//!
//! # Update rule
//!
//! ```text
//! for k = 0, 1, …:
//!     for each of B tasks T (fresh samples):
//!         φ_0 = x;  φ_{j+1} = φ_j − α ∇L_S(φ_j),  j < r
//!         F_r = ∇L_Q(φ_r)                                         (FOMAML)
//!         draw ω ~ Bernoulli(q)
//!         if ω:  E_r = Π_{j=0}^{r−1} (I − α ∇²L_S(φ_j)) F_r       (exact, replayed)
//!                ĝ = F_r + (1/q)(E_r − F_r)
//!         else:  ĝ = F_r
//!     x ← x − β_k (1/B) Σ ĝ
//! ```
//! E\[ĝ\] = E_r: unbiased for the MAML meta-gradient, at expected cost
//! O(r + q r²). Tasks over the standard oracles as for [`Maml`](super::Maml).
//!
//! # Memory
//!
//! O(1), as in the paper: E_r is computed backwards, replaying the
//! adaptation from φ_0 = x to φ_j for each j = r−1..0 (the task's sample is
//! fixed, so the replay is exact), r(r−1)/2 extra gradient calls and r HVPs
//! per exact draw. (The official code stores the trajectory instead.)
//!
//! # Adaptive q (`adaptive = true`)
//!
//! The official code's rule: q = 0.05 until the first exact draw; then, with
//! bias-corrected EMAs (decay 0.99) of D² = ‖ĝ − E_r‖² (divided by 10, as in
//! the code) and V² = ‖E_r‖² updated on exact draws, C_det = r + 1 and
//! C_rnd = ((r − 1)/2 + 1)·r: q = 1 if D² ≥ ½ C_rnd V²/(C_det + C_rnd), else
//! the root in (0, 1) of (V² − D²) C_rnd q² − D² C_rnd q − 2 D² C_det = 0,
//! floored at 0.05.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradY`], [`LowerGradY`], [`LowerHvp`]; a sample is a task.
//!
//! # Defaults
//!
//! The paper's few-shot configs: α = 0.005, r = 10, β = 0.1, B = 5. The fixed
//! q = 0.1 (used when `adaptive = false`) is chosen here; the paper's grid is
//! {0 (FOMAML), adaptive, 1 (exact)}.
//!
//! # References
//!
//! Valerii Likhosherstov, Xingyou Song, Krzysztof Choromanski, Jared Davis,
//! Adrian Weller. *Debiasing a First-order Heuristic for Approximate Bi-level
//! Optimization.* ICML 2021, arXiv:2106.02487. xingyousong/ufom.

use rand_core::Rng;

use super::common::{decayed, solver_config, DECAY_MAX, FINITE, NONNEG, POS, UNIT};
use super::metacommon::adapt;
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy, dist, fill, norm2sq, scale};
use crate::oracle::{Level, LowerGradY, LowerHvp, UpperGradY};
use crate::registry::Configure;
use crate::{random, Error, Real};

const Q_MIN: f64 = 0.05;
const EMA: f64 = 0.99;

solver_config! {
    /// Hyperparameters of [`Ufom`]; validated by [`Ufom::new`] against [`INFO`].
    pub struct UfomConfig;
    info INFO {
        name: "ufom",
        title: "UFOM",
        summary: "meta-learning: first-order meta-gradient debiased by a random exact correction (O(1) memory)",
        reference: "Likhosherstov, Song, Choromanski, Davis, Weller. Debiasing a First-order Heuristic for Approximate Bi-level Optimization. ICML 2021",
        oracles: [GradYF, GradYG, HvpYY],
    }
    inner_lr: f64 = 0.005, real(POS, FINITE, "> 0"), "α: adaptation step";
    inner_steps: u64 = 10, int(1, 1_000_000, "in [1, 10^6]"), "r: adaptation steps";
    outer_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "β: meta step";
    outer_decay: f64 = 0.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "β_k = β (k+1)^(−p)";
    meta_batch: u64 = 5, int(1, 1_000_000, "in [1, 10^6]"), "B: tasks per meta-step";
    exact_prob: f64 = 0.1, real(POS, UNIT, "in (0, 1]"), "q: probability of the exact correction";
    adaptive: bool = false, boolean(), "choose q adaptively (the official code's rule)";
}

/// The UFOM solver over buffers `BX` (meta-parameters) and `BY` (adapted
/// parameters, dx = dy).
#[derive(Debug, Clone)]
pub struct Ufom<T, BX, BY> {
    cfg: UfomConfig,
    x: BX,
    g: BX,
    phi: BY,
    grad: BY,
    f_r: BY,
    v: BY,
    d2: f64,
    v2: f64,
    exact_draws: u32,
    q: f64,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> Ufom<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and a buffer of the
    /// adapted parameters' shape.
    pub fn new(cfg: UfomConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        check_len("y", y0.as_ref().len(), x0.as_ref().len())?;
        Ok(Ufom {
            cfg,
            g: zeros_like(&x0),
            x: x0,
            grad: zeros_like(&y0),
            f_r: zeros_like(&y0),
            v: zeros_like(&y0),
            phi: y0,
            d2: 0.0,
            v2: 0.0,
            exact_draws: 0,
            q: cfg.exact_prob,
            iter: 0,
            initialized: false,
            _t: core::marker::PhantomData,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &UfomConfig {
        &self.cfg
    }

    /// The last meta-gradient estimate.
    pub fn direction(&self) -> &[T] {
        self.g.as_ref()
    }

    /// The probability q used for the next task.
    pub const fn exact_prob(&self) -> f64 {
        self.q
    }

    fn adapt_q(&mut self) {
        if !self.cfg.adaptive {
            self.q = self.cfg.exact_prob;
            return;
        }
        if self.exact_draws == 0 {
            self.q = Q_MIN;
            return;
        }
        let corr = 1.0 - Real::powf(EMA, f64::from(self.exact_draws));
        let d2 = self.d2 / corr / 10.0;
        let v2 = self.v2 / corr;
        let r = self.cfg.inner_steps as f64;
        let (c_det, c_rnd) = (r + 1.0, ((r - 1.0) / 2.0 + 1.0) * r);
        let a = (v2 - d2) * c_rnd;
        self.q = if d2 >= 0.5 * c_rnd * v2 / (c_det + c_rnd)
            || a.partial_cmp(&0.0) != Some(core::cmp::Ordering::Greater)
        {
            1.0
        } else {
            let b = -d2 * c_rnd;
            let c = -2.0 * d2 * c_det;
            let s = Real::sqrt(b * b - 4.0 * a * c);
            let (p1, p2) = ((-b - s) / (2.0 * a), (-b + s) / (2.0 * a));
            let q = if p1 > 0.0 && p1 < 1.0 { p1 } else { p2 };
            q.clamp(Q_MIN, 1.0)
        };
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for Ufom<T, BX, BY> {
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

impl<T, BX, BY, O> Solver<T, O> for Ufom<T, BX, BY>
where
    T: Real,
    BX: Buffer<T>,
    BY: Buffer<T>,
    O: UpperGradY<T> + LowerGradY<T> + LowerHvp<T>,
{
    fn name(&self) -> &'static str {
        INFO.name
    }

    fn init<R: Rng + ?Sized>(&mut self, oracle: &mut O, _rng: &mut R) -> Result<(), Error> {
        check_len("x", self.x.as_ref().len(), oracle.dim_x())?;
        check_len("y", self.phi.as_ref().len(), oracle.dim_y())?;
        copy(self.x.as_ref(), self.phi.as_mut());
        self.d2 = 0.0;
        self.v2 = 0.0;
        self.exact_draws = 0;
        self.adapt_q();
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
        let r = c.inner_steps as usize;
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
                r,
                (self.phi.as_mut(), self.grad.as_mut()),
                None,
            );
            oracle.grad_y_f(x, self.phi.as_ref(), &task, self.f_r.as_mut());
            let q = self.q;
            if random::bernoulli(rng, q) {
                // E_r backwards, replaying φ_j from φ_0 = x for j = r−1..0.
                copy(self.f_r.as_ref(), self.v.as_mut());
                for j in (0..r).rev() {
                    copy(x, self.phi.as_mut());
                    adapt(
                        oracle,
                        x,
                        &task,
                        alpha,
                        j,
                        (self.phi.as_mut(), self.grad.as_mut()),
                        None,
                    );
                    oracle.hvp_yy(
                        x,
                        self.phi.as_ref(),
                        self.v.as_ref(),
                        &task,
                        self.grad.as_mut(),
                    );
                    axpy(-alpha, self.grad.as_ref(), self.v.as_mut());
                }
                // ĝ = F_r + (E_r − F_r)/q, kept in `grad`.
                let inv_q = T::from_f64(1.0 / q);
                for ((gi, &e), &f) in self
                    .grad
                    .as_mut()
                    .iter_mut()
                    .zip(self.v.as_ref())
                    .zip(self.f_r.as_ref())
                {
                    *gi = f + inv_q * (e - f);
                }
                if c.adaptive {
                    let dd = dist(self.grad.as_ref(), self.v.as_ref()).to_f64();
                    self.d2 = EMA * self.d2 + (1.0 - EMA) * dd * dd;
                    self.v2 = EMA * self.v2 + (1.0 - EMA) * norm2sq(self.v.as_ref()).to_f64();
                    self.exact_draws = self.exact_draws.saturating_add(1);
                }
                axpy(T::ONE, self.grad.as_ref(), self.g.as_mut());
            } else {
                axpy(T::ONE, self.f_r.as_ref(), self.g.as_mut());
            }
            self.adapt_q();
        }
        scale(T::ONE / T::from_f64(c.meta_batch as f64), self.g.as_mut());
        let beta: T = decayed(c.outer_lr, c.outer_decay, self.iter);
        axpy(-beta, self.g.as_ref(), self.x.as_mut());
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for Ufom<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, g, phi, grad, f_r, v; f64 d2, v2, q; u64 iter; bool initialized);
        crate::state::visit_u32(v, "exact_draws", &mut self.exact_draws);
    }
}
