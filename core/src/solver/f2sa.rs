//! F2SA: fully first-order stochastic approximation, the method BO-REP's
//! figures call "FSA" (Kwon, Kwon, Wright, Nowak, ICML 2023).
//!
//! # Update rule
//!
//! The value-function penalty min_x min_y f(x, y) + λ (g(x, y) − min_u g(x, u))
//! with a slowly growing multiplier λ, solved with gradients only:
//!
//! ```text
//! for k = 0, 1, …:
//!     repeat T times (fresh ξ, ζ, ζ'):
//!         y ← y − α_k (∇ᵧF(x_k, y; ξ) + λ_k ∇ᵧG(x_k, y; ζ))
//!         u ← u − γ_k ∇ᵧG(x_k, u; ζ')
//!     x_{k+1} = x_k − ξ_k (∇ₓF(x_k, y; ξ) + λ_k (∇ₓG(x_k, y; ζ) − ∇ₓG(x_k, u; ζ'')))
//!     λ_{k+1} = λ_k + δ_k
//! α_k = α (k+1)^(−5/7),  γ_k = γ (k+1)^(−4/7),  ξ_k = ξ (k+1)^(−4/7),  δ_k = Δλ (k+1)^(−6/7)
//! ```
//! ξ, ζ, ζ'' in the x step are fresh. [`SolverState::y`] is u, the estimate
//! of y*(x); [`F2sa::penalized`] is y, the minimiser of f + λg.
//!
//! The method is **biased by design**: for a finite λ its fixed point is the
//! minimiser of the penalised problem, O(1/λ) away from x*.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerGradX`]; no
//! second-order oracle.
//!
//! # Defaults
//!
//! benchopt's `f2sa`: steps 0.01, exponents 5/7 (y), 4/7 (u and x), λ_0 = 1,
//! Δλ = 0.1, T = 10. The spec reads benchopt's multiplier schedule as
//! δ_k ∝ (k+1)^(−1/7), which makes λ grow like k^(6/7) and α_k λ_k grow
//! without bound (the y step then diverges); the paper's theory has
//! λ_k ∝ k^(1/7) (α_k λ_k ≈ γ_k stays a valid step), i.e. δ_k ∝ (k+1)^(−6/7),
//! which is the default here. `lambda_decay` sets the exponent.
//!
//! # References
//!
//! Jeongyeol Kwon, Dohyun Kwon, Stephen Wright, Robert Nowak. *A Fully
//! First-Order Method for Stochastic Bilevel Optimization.* ICML 2023.

use rand_core::Rng;

use super::common::{decayed, solver_config, DECAY_MAX, FINITE, NONNEG, POS};
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy};
use crate::oracle::{Level, LowerGradX, LowerGradY, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`F2sa`]; validated by [`F2sa::new`] against [`INFO`].
    pub struct F2saConfig;
    info INFO {
        name: "f2sa",
        title: "F2SA",
        summary: "fully first-order: penalty with growing multiplier, SGD on the penalized and the lower problem",
        reference: "Kwon, Kwon, Wright, Nowak. A Fully First-Order Method for Stochastic Bilevel Optimization. ICML 2023",
        oracles: [GradXF, GradYF, GradYG, GradXG],
    }
    inner_lr: f64 = 0.01, real(POS, FINITE, "> 0"), "α: step on the penalized variable y";
    inner_decay: f64 = 5.0 / 7.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "α_k = α (k+1)^(−p)";
    lower_lr: f64 = 0.01, real(POS, FINITE, "> 0"), "γ: step on the lower variable u";
    lower_decay: f64 = 4.0 / 7.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "γ_k = γ (k+1)^(−p)";
    outer_lr: f64 = 0.01, real(POS, FINITE, "> 0"), "ξ: step on x";
    outer_decay: f64 = 4.0 / 7.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "ξ_k = ξ (k+1)^(−p)";
    inner_steps: u64 = 10, int(1, 1_000_000, "in [1, 10^6]"), "T: steps on y and u per iteration";
    lambda0: f64 = 1.0, real(POS, FINITE, "> 0"), "λ_0: initial multiplier";
    lambda_step: f64 = 0.1, real(NONNEG, FINITE, ">= 0"), "Δλ: multiplier increment";
    lambda_decay: f64 = 6.0 / 7.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "δ_k = Δλ (k+1)^(−p)";
}

/// The F2SA solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct F2sa<T, BX, BY> {
    cfg: F2saConfig,
    x: BX,
    gx: BX,
    tmp_x: BX,
    y: BY,
    u: BY,
    y_init: BY,
    g1: BY,
    g2: BY,
    lambda: f64,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> F2sa<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and y_0 (y and u both
    /// start at y_0).
    pub fn new(cfg: F2saConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        Ok(F2sa {
            cfg,
            gx: zeros_like(&x0),
            tmp_x: zeros_like(&x0),
            x: x0,
            u: y0.clone(),
            g1: zeros_like(&y0),
            g2: zeros_like(&y0),
            y_init: y0.clone(),
            y: y0,
            lambda: cfg.lambda0,
            iter: 0,
            initialized: false,
            _t: core::marker::PhantomData,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &F2saConfig {
        &self.cfg
    }

    /// The penalized variable y ≈ argmin_y f + λ g.
    pub fn penalized(&self) -> &[T] {
        self.y.as_ref()
    }

    /// The current multiplier λ_k.
    pub const fn lambda(&self) -> f64 {
        self.lambda
    }

    /// The last x direction.
    pub fn direction(&self) -> &[T] {
        self.gx.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for F2sa<T, BX, BY> {
    fn x(&self) -> &[T] {
        self.x.as_ref()
    }
    fn y(&self) -> &[T] {
        self.u.as_ref()
    }
    fn iter(&self) -> u64 {
        self.iter
    }
}

impl<T, BX, BY, O> Solver<T, O> for F2sa<T, BX, BY>
where
    T: Real,
    BX: Buffer<T>,
    BY: Buffer<T>,
    O: UpperGradX<T> + UpperGradY<T> + LowerGradY<T> + LowerGradX<T>,
{
    fn name(&self) -> &'static str {
        INFO.name
    }

    fn init<R: Rng + ?Sized>(&mut self, oracle: &mut O, _rng: &mut R) -> Result<(), Error> {
        check_len("x", self.x.as_ref().len(), oracle.dim_x())?;
        check_len("y", self.y.as_ref().len(), oracle.dim_y())?;
        copy(self.y_init.as_ref(), self.y.as_mut());
        copy(self.y_init.as_ref(), self.u.as_mut());
        self.lambda = self.cfg.lambda0;
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
        let alpha: T = decayed(c.inner_lr, c.inner_decay, k);
        let gamma: T = decayed(c.lower_lr, c.lower_decay, k);
        let step_x: T = decayed(c.outer_lr, c.outer_decay, k);
        let lambda = T::from_f64(self.lambda);
        let x = self.x.as_ref();
        for _ in 0..c.inner_steps {
            let xi = oracle.sample(Level::Upper, rng);
            let zeta = oracle.sample(Level::Lower, rng);
            oracle.grad_y_f(x, self.y.as_ref(), &xi, self.g1.as_mut());
            oracle.grad_y_g(x, self.y.as_ref(), &zeta, self.g2.as_mut());
            axpy(lambda, self.g2.as_ref(), self.g1.as_mut());
            axpy(-alpha, self.g1.as_ref(), self.y.as_mut());
            let zeta_u = oracle.sample(Level::Lower, rng);
            oracle.grad_y_g(x, self.u.as_ref(), &zeta_u, self.g2.as_mut());
            axpy(-gamma, self.g2.as_ref(), self.u.as_mut());
        }
        let xi = oracle.sample(Level::Upper, rng);
        let zeta = oracle.sample(Level::Lower, rng);
        let zeta2 = oracle.sample(Level::Lower, rng);
        oracle.grad_x_f(x, self.y.as_ref(), &xi, self.gx.as_mut());
        oracle.grad_x_g(x, self.y.as_ref(), &zeta, self.tmp_x.as_mut());
        axpy(lambda, self.tmp_x.as_ref(), self.gx.as_mut());
        oracle.grad_x_g(x, self.u.as_ref(), &zeta2, self.tmp_x.as_mut());
        axpy(-lambda, self.tmp_x.as_ref(), self.gx.as_mut());
        axpy(-step_x, self.gx.as_ref(), self.x.as_mut());
        self.lambda += c.lambda_step * Real::powf(k as f64 + 1.0, -c.lambda_decay);
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for F2sa<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, gx, tmp_x, y, u, y_init, g1, g2; f64 lambda; u64 iter; bool initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn multiplier_grows_by_the_schedule() {
        let cfg = F2saConfig {
            lambda_step: 0.5,
            lambda_decay: 0.0,
            ..F2saConfig::default()
        };
        let mut o = crate::testing::q3::<f64>(0.0);
        let mut s = F2sa::new(cfg, [0.0_f64; 2], [0.0; 2]).unwrap();
        let mut rng = crate::DefaultRng::seed_from_u64(0);
        s.init(&mut o, &mut rng).unwrap();
        for _ in 0..4 {
            s.step(&mut o, &mut rng).unwrap();
        }
        assert!((s.lambda() - 3.0).abs() < 1e-12);
    }
}
