//! AdamBO as its official code does it (Gong, Hao, Liu, TMLR; code
//! `jhao6/d3x645`, `methods/adambo.py`): SGD on the lower variable, a
//! truncated Neumann-series hypergradient, Adam with weight decay on the upper
//! variable. No auxiliary z variable.
//!
//! # Update rule
//!
//! ```text
//! warm start: T0 SGD steps y ← y − γ ∇ᵧG(x_0, y; π̃) from y_init
//! for t = 0, 1, …:
//!     y ← T SGD steps y ← y − γ ∇ᵧG(x_t, y; π_k)          (π_T: the last sample)
//!     b  = ∇ᵧF(x_t, y; ξ_t),  p_0 = b,  p_j = (I − η_N ∇²ᵧᵧG(x_t, y; π_T)) p_{j−1}
//!     v  = η_N (p_Q + Σ_{j=1}^{Q} p_j)                     (exact_series = false)
//!        = η_N Σ_{j=0}^{Q} p_j                             (exact_series = true)
//!     ĝ  = ∇ₓF(x_t, y; ξ_t) − ∇²ₓᵧG(x_t, y; ζ_t) v  +  ω x_t   (ω: weight decay)
//!     m = β1 m + (1−β1) ĝ;  s = β2 s + (1−β2) ĝ ⊙ ĝ
//!     x_{t+1} = x_t − α (m/(1−β1^{t+1})) ⊘ (√(s/(1−β2^{t+1})) + λ)
//! ```
//! Calls per iteration: T ∇ᵧG, one joint ∇ₓF/∇ᵧF, Q HVPs, one cross product.
//!
//! # What the official code does, and where this file differs
//!
//! - `hypergradient()`: `v_0 = ∇ᵧF` (query batch); `G = y − η_N ∇ᵧG` on the
//!   last inner (support) batch; Q times `v_0 ← ∂(G·v_0)/∂y = (I − η_N H)v_0`,
//!   each result appended to `z_list`; then `v_Q = η_N (v_0 + Σ z_list)`.
//!   Since `v_0` was overwritten, that is `η_N (p_Q + Σ_{j=1}^{Q} p_j)`: the
//!   j = 0 term is dropped and p_Q counted twice. `exact_series = false`
//!   (the default) reproduces it; for a fixed Hessian A it equals
//!   `A⁻¹(I − ηA − (I − ηA)^{Q+1}) b + η (I − ηA)^Q b`, which tends to
//!   `A⁻¹b − η b` as Q → ∞ (bias η_N b, negligible at the code's η_N = 1e-4).
//!   `exact_series = true` is StocBio's correct series (consistent as Q → ∞).
//! - The Q HVPs share one sample, the last lower sample of the inner loop
//!   (the code's `s_batch`); with T = 0 a fresh one is drawn.
//! - The cross term: the code evaluates the lower loss on the query batch;
//!   an oracle here has no lower loss on upper samples, so a fresh lower
//!   sample ζ_t is used (independent of the HVPs' sample, as in the code).
//! - Adam is PyTorch's `Adam(weight_decay = 0.01)`: L2 decay added to the
//!   gradient (not AdamW), bias-corrected, `eps` added after the square root.
//! - The code runs `y_warm_start` inner passes at every outer step of its
//!   first epoch and `inner_update_step` after; the paper warm-starts y at
//!   x_0. Here: T0 warm-start steps at x_0 (the paper), then T per iteration.
//!   A code "step" is one pass over the task's support set; here it is one
//!   stochastic gradient. Tasks are averaged in the code; here one sample.
//!
//! VR-AdamBO (the ICLR 2025 submission's variance-reduced variant) is not
//! implemented: the official repository has no VR-AdamBO method and no
//! primary source available here gives its update.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//!
//! # Defaults
//!
//! The official code's `adambo` settings (BERT hyper-representation):
//! α = 5e-3, γ = 1e-4, T = 1, T0 = 3, Q = 3, η_N = 1e-4 (`Learner.__init__`
//! overrides the `--neumann_lr` flag with 1e-4), ω = 0.01, β = (0.9, 0.999),
//! λ = 1e-8 (`--lambd`). These are tuned for BERT; the quadratics need larger
//! γ and η_N (`testing::tuned`).
//!
//! # References
//!
//! Xiaochuan Gong, Jie Hao, Mingrui Liu. *Convergence of Adam for Bilevel
//! Optimization under Unbounded Smoothness.* arXiv:2503.03908 (TMLR).
//! Code: github.com/jhao6/d3x645, `methods/adambo.py`, `main.py`.

use rand_core::Rng;

use super::common::{lower_sgd, neumann_sum, solver_config, FINITE, NONNEG, POS};
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy, fill, scale};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`AdamBo`]; validated by [`AdamBo::new`] against [`INFO`].
    pub struct AdamBoConfig;
    info INFO {
        name: "adambo",
        title: "AdamBO",
        summary: "inner SGD, Neumann-series hypergradient, Adam with weight decay on x (official code)",
        reference: "Gong, Hao, Liu. Convergence of Adam for Bilevel Optimization under Unbounded Smoothness. arXiv:2503.03908 (TMLR); code jhao6/d3x645",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    outer_lr: f64 = 5e-3, real(POS, FINITE, "> 0"), "α: Adam step on x";
    beta1: f64 = 0.9, real((0.0, false), (1.0, true), "in [0, 1)"), "β1: first-moment decay";
    beta2: f64 = 0.999, real((0.0, false), (1.0, true), "in [0, 1)"), "β2: second-moment decay";
    eps: f64 = 1e-8, real(POS, FINITE, "> 0"), "λ: Adam's denominator offset";
    weight_decay: f64 = 0.01, real(NONNEG, FINITE, ">= 0"), "ω: L2 decay added to the x gradient (PyTorch Adam)";
    inner_lr: f64 = 1e-4, real(POS, FINITE, "> 0"), "γ: SGD step on y";
    inner_steps: u64 = 1, int(0, 1_000_000, "in [0, 10^6]"), "T: SGD steps on y per iteration";
    warm_steps: u64 = 3, int(0, 1_000_000, "in [0, 10^6]"), "T0: warm-start SGD steps at x_0";
    neumann_lr: f64 = 1e-4, real(POS, FINITE, "> 0"), "η_N: Neumann-series step (< 1/L_g)";
    hessian_q: u64 = 3, int(0, 1_000_000, "in [0, 10^6]"), "Q: Neumann products";
    exact_series: bool = false, boolean(), "false: the code's η(p_Q + Σ_{j≥1} p_j); true: η Σ_{j≥0} p_j";
}

/// The AdamBO solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct AdamBo<T, BX, BY> {
    cfg: AdamBoConfig,
    x: BX,
    m: BX,
    s: BX,
    g: BX,
    cross: BX,
    y: BY,
    y_init: BY,
    gy: BY,
    b: BY,
    p: BY,
    hv: BY,
    v: BY,
    beta1_pow: f64,
    beta2_pow: f64,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> AdamBo<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and y_init.
    pub fn new(cfg: AdamBoConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        Ok(AdamBo {
            cfg,
            m: zeros_like(&x0),
            s: zeros_like(&x0),
            g: zeros_like(&x0),
            cross: zeros_like(&x0),
            x: x0,
            gy: zeros_like(&y0),
            b: zeros_like(&y0),
            p: zeros_like(&y0),
            hv: zeros_like(&y0),
            v: zeros_like(&y0),
            y_init: y0.clone(),
            y: y0,
            beta1_pow: 1.0,
            beta2_pow: 1.0,
            iter: 0,
            initialized: false,
            _t: core::marker::PhantomData,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &AdamBoConfig {
        &self.cfg
    }

    /// The last Neumann-series vector v.
    pub fn v(&self) -> &[T] {
        self.v.as_ref()
    }

    /// The last hypergradient estimate ∇ₓF − ∇²ₓᵧG·v (before weight decay).
    pub fn direction(&self) -> &[T] {
        self.g.as_ref()
    }

    /// The official code's series: `out = η (p_Q + Σ_{j=1}^{Q} p_j)`, all Q
    /// products with the one sample `s`.
    #[allow(clippy::too_many_arguments)]
    fn official_series<O: LowerHvp<T>>(
        oracle: &mut O,
        x: &[T],
        y: &[T],
        s: &O::Sample,
        eta: T,
        q: u64,
        (b, p, hv, out): (&[T], &mut [T], &mut [T], &mut [T]),
    ) {
        copy(b, p);
        fill(out, T::ZERO);
        for _ in 0..q {
            oracle.hvp_yy(x, y, p, s, hv);
            axpy(-eta, hv, p);
            axpy(T::ONE, p, out);
        }
        axpy(T::ONE, p, out);
        scale(eta, out);
    }

    fn adam(&mut self) {
        let c = self.cfg;
        self.beta1_pow *= c.beta1;
        self.beta2_pow *= c.beta2;
        let (b1, b2) = (T::from_f64(c.beta1), T::from_f64(c.beta2));
        let (c1, c2) = (
            T::from_f64(1.0 / (1.0 - self.beta1_pow)),
            T::from_f64(1.0 / (1.0 - self.beta2_pow)),
        );
        let (lr, eps, wd) = (
            T::from_f64(c.outer_lr),
            T::from_f64(c.eps),
            T::from_f64(c.weight_decay),
        );
        for (((xi, mi), si), &gi) in self
            .x
            .as_mut()
            .iter_mut()
            .zip(self.m.as_mut())
            .zip(self.s.as_mut())
            .zip(self.g.as_ref())
        {
            let g = gi + wd * *xi;
            *mi = b1 * *mi + (T::ONE - b1) * g;
            *si = b2 * *si + (T::ONE - b2) * g * g;
            *xi -= lr * (*mi * c1) / ((*si * c2).sqrt() + eps);
        }
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for AdamBo<T, BX, BY> {
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

impl<T, BX, BY, O> Solver<T, O> for AdamBo<T, BX, BY>
where
    T: Real,
    BX: Buffer<T>,
    BY: Buffer<T>,
    O: UpperGradX<T> + UpperGradY<T> + LowerGradY<T> + LowerHvp<T> + CrossJvp<T>,
{
    fn name(&self) -> &'static str {
        INFO.name
    }

    fn init<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
        check_len("x", self.x.as_ref().len(), oracle.dim_x())?;
        check_len("y", self.y.as_ref().len(), oracle.dim_y())?;
        copy(self.y_init.as_ref(), self.y.as_mut());
        fill(self.m.as_mut(), T::ZERO);
        fill(self.s.as_mut(), T::ZERO);
        self.beta1_pow = 1.0;
        self.beta2_pow = 1.0;
        lower_sgd(
            oracle,
            rng,
            self.x.as_ref(),
            self.y.as_mut(),
            self.gy.as_mut(),
            self.cfg.warm_steps,
            T::from_f64(self.cfg.inner_lr),
        );
        self.iter = 0;
        self.initialized = true;
        Ok(())
    }

    fn step<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
        if !self.initialized {
            return Err(Error::NotInitialized);
        }
        let c = self.cfg;
        let gamma = T::from_f64(c.inner_lr);
        let mut last = None;
        for _ in 0..c.inner_steps {
            let pi = oracle.sample(Level::Lower, rng);
            oracle.grad_y_g(self.x.as_ref(), self.y.as_ref(), &pi, self.gy.as_mut());
            axpy(-gamma, self.gy.as_ref(), self.y.as_mut());
            last = Some(pi);
        }
        let hs = match last {
            Some(s) => s,
            None => oracle.sample(Level::Lower, rng),
        };
        let (x, y) = (self.x.as_ref(), self.y.as_ref());
        let xi = oracle.sample(Level::Upper, rng);
        crate::oracle::grads_f(oracle, x, y, &xi, self.g.as_mut(), self.b.as_mut());
        let eta = T::from_f64(c.neumann_lr);
        if c.exact_series {
            let bufs = (self.p.as_mut(), self.hv.as_mut(), self.v.as_mut());
            let b = self.b.as_ref();
            neumann_sum(oracle, rng, x, y, b, eta, c.hessian_q, Some(&hs), bufs);
        } else {
            let bufs = (
                self.b.as_ref(),
                self.p.as_mut(),
                self.hv.as_mut(),
                self.v.as_mut(),
            );
            Self::official_series(oracle, x, y, &hs, eta, c.hessian_q, bufs);
        }
        let zeta = oracle.sample(Level::Lower, rng);
        oracle.jvp_xy(x, y, self.v.as_ref(), &zeta, self.cross.as_mut());
        axpy(-T::ONE, self.cross.as_ref(), self.g.as_mut());
        self.adam();
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for AdamBo<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, m, s, g, cross, y, y_init, gy, b, p, hv, v; f64 beta1_pow, beta2_pow; u64 iter; bool initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ParamValue;
    use rand_core::SeedableRng;

    #[test]
    fn parameters_are_checked() {
        let mut c = AdamBoConfig::default();
        assert!(c.set("exact_series", ParamValue::Bool(true)).is_ok());
        assert!(c.exact_series);
        assert!(c.set("exact_series", ParamValue::Real(1.0)).is_err());
        assert!(c.set("weight_decay", ParamValue::Real(-1.0)).is_err());
    }

    #[test]
    fn first_adam_step_moves_each_coordinate_by_about_lr() {
        let mut o = crate::testing::q3::<f64>(0.0);
        let cfg = AdamBoConfig {
            weight_decay: 0.0,
            ..AdamBoConfig::default()
        };
        let mut s = AdamBo::new(cfg, [0.3_f64, -0.7], [0.0; 2]).unwrap();
        let mut rng = crate::DefaultRng::seed_from_u64(0);
        s.init(&mut o, &mut rng).unwrap();
        s.step(&mut o, &mut rng).unwrap();
        for (x, x0) in s.x().iter().zip([0.3, -0.7]) {
            let d = (x - x0).abs();
            assert!(d > 0.99 * 5e-3 && d < 1.01 * 5e-3, "{d}");
        }
    }
}
