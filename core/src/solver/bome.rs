//! BOME: bilevel optimization made easy, a first-order method on the
//! value-function reformulation min F s.t. q(x, y) = G(x, y) − G(x, y*(x)) ≤ 0
//! (Ye, Liu, Wright, Stone, Liu, NeurIPS 2022), as benchopt's
//! `solvers/bome.py` implements it.
//!
//! # Update rule
//!
//! ```text
//! for t = 0, 1, …:
//!     ŷ = y; T times: ŷ ← ŷ − ρ ∇ᵧG(x, ŷ; ζ_k)                  (approximates y*(x))
//!     ∇q = (∇ₓG(x, y; ζ) − ∇ₓG(x, ŷ; ζ),  ∇ᵧG(x, y; ζ))
//!     φ  = η ‖∇q‖²                                              (choice_phi = grad_norm)
//!     λ  = max(φ − ⟨∇F(x, y; ξ), ∇q⟩, 0) / ‖∇q‖²               (λ = 0 when ∇q = 0)
//!     (x, y) ← (x, y) − (ρ/r, ρ) ⊙ (∇F + λ ∇q)
//! ```
//! Calls per iteration: T + 1 ∇ᵧG, 2 ∇ₓG, one joint ∇ₓF/∇ᵧF. No second
//! derivatives.
//!
//! # Paper and benchopt, and which is followed
//!
//! benchopt is followed: φ = η‖∇q‖² (its default `choice_phi = "grad_norm"`;
//! its other choice, φ = η q, needs values of G and is not implemented
//! here), constant steps, the inner GD warm-started at the current y.
//! benchopt runs BOME with full-batch oracles; here every gradient takes a
//! sample (fresh ζ_k per inner step; one ζ for the three gradients of ∇q,
//! so that ∇ₓq vanishes when ŷ = y; one ξ for ∇F), which is the paper's
//! stochastic variant. At ∇q = 0 benchopt divides 0 by 0 (NaN); here λ = 0.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerGradX`].
//!
//! # Defaults
//!
//! benchopt's: ρ = 0.1, r = 1, η = 0.5, T = 10.
//!
//! # References
//!
//! Mao Ye, Bo Liu, Stephen Wright, Peter Stone, Qiang Liu. *BOME! Bilevel
//! Optimization Made Easy: A Simple First-Order Approach.* NeurIPS 2022.
//! benchopt/benchmark_bilevel `bome`.

use rand_core::Rng;

use super::common::{solver_config, FINITE, POS};
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy, dot};
use crate::oracle::{Level, LowerGradX, LowerGradY, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`Bome`]; validated by [`Bome::new`] against [`INFO`].
    pub struct BomeConfig;
    info INFO {
        name: "bome",
        title: "BOME",
        summary: "first order: inner GD for the value function, then one step on F + λ q (λ from the BOME rule)",
        reference: "Ye, Liu, Wright, Stone, Liu. BOME! Bilevel Optimization Made Easy: A Simple First-Order Approach. NeurIPS 2022",
        oracles: [GradXF, GradYF, GradYG, GradXG],
    }
    step_size: f64 = 0.1, real(POS, FINITE, "> 0"), "ρ: step on y and of the inner GD";
    outer_ratio: f64 = 1.0, real(POS, FINITE, "> 0"), "r: the x step is ρ/r";
    eta: f64 = 0.5, real(POS, FINITE, "> 0"), "η: φ = η ‖∇q‖²";
    n_inner_steps: u64 = 10, int(0, 1_000_000, "in [0, 10^6]"), "T: inner GD steps for ŷ ≈ y*(x)";
}

/// The BOME solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct Bome<T, BX, BY> {
    cfg: BomeConfig,
    x: BX,
    gfx: BX,
    gqx: BX,
    tx: BX,
    y: BY,
    y_init: BY,
    y_hat: BY,
    gfy: BY,
    gqy: BY,
    lambda: f64,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> Bome<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and y_0.
    pub fn new(cfg: BomeConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        Ok(Bome {
            cfg,
            gfx: zeros_like(&x0),
            gqx: zeros_like(&x0),
            tx: zeros_like(&x0),
            x: x0,
            y_hat: zeros_like(&y0),
            gfy: zeros_like(&y0),
            gqy: zeros_like(&y0),
            y_init: y0.clone(),
            y: y0,
            lambda: 0.0,
            iter: 0,
            initialized: false,
            _t: core::marker::PhantomData,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &BomeConfig {
        &self.cfg
    }

    /// The last multiplier λ.
    pub const fn lambda(&self) -> f64 {
        self.lambda
    }

    /// The last (∇ₓF, ∇ᵧF) at (x_t, y_t).
    pub fn grad_f(&self) -> (&[T], &[T]) {
        (self.gfx.as_ref(), self.gfy.as_ref())
    }

    /// The last (∇ₓq, ∇ᵧq) at (x_t, y_t).
    pub fn grad_q(&self) -> (&[T], &[T]) {
        (self.gqx.as_ref(), self.gqy.as_ref())
    }

    /// The last inner estimate ŷ ≈ y*(x_t).
    pub fn y_hat(&self) -> &[T] {
        self.y_hat.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for Bome<T, BX, BY> {
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

impl<T, BX, BY, O> Solver<T, O> for Bome<T, BX, BY>
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
        self.lambda = 0.0;
        self.iter = 0;
        self.initialized = true;
        Ok(())
    }

    fn step<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
        if !self.initialized {
            return Err(Error::NotInitialized);
        }
        let c = self.cfg;
        let rho = T::from_f64(c.step_size);
        let (x, y) = (self.x.as_ref(), self.y.as_ref());
        copy(y, self.y_hat.as_mut());
        for _ in 0..c.n_inner_steps {
            let s = oracle.sample(Level::Lower, rng);
            oracle.grad_y_g(x, self.y_hat.as_ref(), &s, self.gqy.as_mut());
            axpy(-rho, self.gqy.as_ref(), self.y_hat.as_mut());
        }
        let xi = oracle.sample(Level::Upper, rng);
        crate::oracle::grads_f(oracle, x, y, &xi, self.gfx.as_mut(), self.gfy.as_mut());
        let zeta = oracle.sample(Level::Lower, rng);
        oracle.grad_y_g(x, y, &zeta, self.gqy.as_mut());
        oracle.grad_x_g(x, y, &zeta, self.gqx.as_mut());
        oracle.grad_x_g(x, self.y_hat.as_ref(), &zeta, self.tx.as_mut());
        axpy(-T::ONE, self.tx.as_ref(), self.gqx.as_mut());
        let (gqx, gqy) = (self.gqx.as_ref(), self.gqy.as_ref());
        let sq = dot(gqx, gqx) + dot(gqy, gqy);
        let inner = dot(self.gfx.as_ref(), gqx) + dot(self.gfy.as_ref(), gqy);
        let phi = T::from_f64(c.eta) * sq;
        let lambda = if sq > T::ZERO && phi > inner {
            (phi - inner) / sq
        } else {
            T::ZERO
        };
        self.lambda = lambda.to_f64();
        // (x, y) ← (x, y) − (α, ρ) ⊙ (∇F + λ∇q), ∇F and ∇q kept for inspection.
        axpy(-rho, self.gfy.as_ref(), self.y.as_mut());
        axpy(-rho * lambda, gqy, self.y.as_mut());
        let alpha = T::from_f64(c.step_size / c.outer_ratio);
        axpy(-alpha, self.gfx.as_ref(), self.x.as_mut());
        axpy(-alpha * lambda, gqx, self.x.as_mut());
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for Bome<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, gfx, gqx, tx, y, y_init, y_hat, gfy, gqy; f64 lambda; u64 iter; bool initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn step_before_init_is_an_error() {
        let mut o = crate::testing::q3::<f64>(0.0);
        let mut s = Bome::new(BomeConfig::default(), [0.0_f64; 2], [0.0_f64; 2]).unwrap();
        let mut rng = crate::DefaultRng::seed_from_u64(0);
        assert_eq!(s.step(&mut o, &mut rng), Err(Error::NotInitialized));
    }
}
