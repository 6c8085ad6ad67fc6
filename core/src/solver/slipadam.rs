//! SLIP-Adam: SLIP's warm start and z-based lower/auxiliary SGD updates with
//! bias-corrected Adam on x. A variant kept from this project's first AdamBO
//! attempt (written before AdamBO's official code, `jhao6/d3x645`, was
//! located): it is *not* AdamBO (see [`super::adambo`], which follows that
//! code: Neumann-series hypergradient, no z). It is worth keeping because it
//! is the single-loop z-based method (SOBA/SLIP family) with an adaptive upper
//! step, the cheapest of the adaptive methods per iteration (five calls) and
//! among the fastest on the d = 100 quadratic (BENCHMARKS.md).
//!
//! # Update rule
//!
//! ```text
//! warm start: T0 SGD steps y ← y − γ ∇ᵧG(x_0, y; π̃) from y_init
//! for t = 0, 1, …:                    (every right-hand side at (x_t, y_t, z_t))
//!     y_{t+1} = y_t − γ ∇ᵧG(x_t, y_t; π_t)
//!     z_{t+1} = z_t − ν (∇²ᵧᵧG(x_t, y_t; ζ_t) z_t − ∇ᵧF(x_t, y_t; ξ_t))
//!     ĝ_t     = ∇ₓF(x_t, y_t; ξ̄_t) − ∇²ₓᵧG(x_t, y_t; ζ̄_t) z_t
//!     m_{t+1} = β1 m_t + (1−β1) ĝ_t;   v_{t+1} = β2 v_t + (1−β2) ĝ_t ⊙ ĝ_t
//!     x_{t+1} = x_t − η m̂ ⊘ (√v̂ + λ),  m̂ = m_{t+1}/(1−β1^{t+1}),  v̂ = v_{t+1}/(1−β2^{t+1})
//! ```
//! SLIP's warm start and y, z lines with Adam in place of normalised
//! momentum; π_t, ζ_t, ξ_t, ξ̄_t, ζ̄_t are fresh: five calls per iteration.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//!
//! # Defaults
//!
//! Adam's usual η = 1e-3, β1 = 0.9, β2 = 0.999, λ = 1e-8; γ = 5e-2, ν = 1e-2,
//! T0 = 3 as in SLIP's README (the same group's hyper-representation setup).
//!
//! # References
//!
//! Xiaochuan Gong, Jie Hao, Mingrui Liu. *SLIP* (ICML 2024, arXiv 2412.20017)
//! for the y/z lines; Kingma and Ba, *Adam* (ICLR 2015) for the x line.

use rand_core::Rng;

use super::common::{lower_sgd, solver_config, FINITE, POS};
use super::zbased::hypergradient;
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy, fill};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`SlipAdam`]; validated by [`SlipAdam::new`] against [`INFO`].
    pub struct SlipAdamConfig;
    info INFO {
        name: "slip-adam",
        title: "SLIP-Adam",
        summary: "SLIP's SGD warm start and SGD on y and z, Adam on x (not AdamBO: see adambo)",
        reference: "SLIP (Gong, Hao, Liu, ICML 2024) y/z updates with Adam (Kingma, Ba, ICLR 2015) on x; a variant, not AdamBO",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    lr: f64 = 1e-3, real(POS, FINITE, "> 0"), "η: Adam step on x";
    beta1: f64 = 0.9, real((0.0, false), (1.0, true), "in [0, 1)"), "β1: first-moment decay";
    beta2: f64 = 0.999, real((0.0, false), (1.0, true), "in [0, 1)"), "β2: second-moment decay";
    eps: f64 = 1e-8, real(POS, FINITE, "> 0"), "λ: Adam's denominator offset";
    gamma: f64 = 5e-2, real(POS, FINITE, "> 0"), "γ: SGD step on y";
    nu: f64 = 1e-2, real(POS, FINITE, "> 0"), "ν: SGD step on z";
    warm_steps: u64 = 3, int(0, 1_000_000, "in [0, 10^6]"), "T0: warm-start SGD steps at x_0";
}

/// The SLIP-Adam solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct SlipAdam<T, BX, BY> {
    cfg: SlipAdamConfig,
    x: BX,
    m: BX,
    v: BX,
    g: BX,
    cross: BX,
    y: BY,
    y_next: BY,
    y_init: BY,
    z: BY,
    z_init: BY,
    gy: BY,
    hz: BY,
    gyf: BY,
    beta1_pow: f64,
    beta2_pow: f64,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SlipAdam<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and y_init (z_0 = 0).
    pub fn new(cfg: SlipAdamConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        Ok(SlipAdam {
            cfg,
            m: zeros_like(&x0),
            v: zeros_like(&x0),
            g: zeros_like(&x0),
            cross: zeros_like(&x0),
            x: x0,
            y_next: zeros_like(&y0),
            z: zeros_like(&y0),
            z_init: zeros_like(&y0),
            gy: zeros_like(&y0),
            hz: zeros_like(&y0),
            gyf: zeros_like(&y0),
            y_init: y0.clone(),
            y: y0,
            beta1_pow: 1.0,
            beta2_pow: 1.0,
            iter: 0,
            initialized: false,
            _t: core::marker::PhantomData,
        })
    }

    /// Starts z at `z0` instead of 0.
    pub fn with_z0(mut self, z0: &[T]) -> Result<Self, Error> {
        check_len("z0", z0.len(), self.z_init.as_ref().len())?;
        copy(z0, self.z_init.as_mut());
        Ok(self)
    }

    /// The configuration.
    pub const fn config(&self) -> &SlipAdamConfig {
        &self.cfg
    }

    /// The linear-system variable z.
    pub fn z(&self) -> &[T] {
        self.z.as_ref()
    }

    /// The last hypergradient estimate ĝ_t.
    pub fn direction(&self) -> &[T] {
        self.g.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for SlipAdam<T, BX, BY> {
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

impl<T, BX, BY, O> Solver<T, O> for SlipAdam<T, BX, BY>
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
        copy(self.z_init.as_ref(), self.z.as_mut());
        fill(self.m.as_mut(), T::ZERO);
        fill(self.v.as_mut(), T::ZERO);
        self.beta1_pow = 1.0;
        self.beta2_pow = 1.0;
        lower_sgd(
            oracle,
            rng,
            self.x.as_ref(),
            self.y.as_mut(),
            self.gy.as_mut(),
            self.cfg.warm_steps,
            T::from_f64(self.cfg.gamma),
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
        let (x, y, z) = (self.x.as_ref(), self.y.as_ref(), self.z.as_ref());
        let pi = oracle.sample(Level::Lower, rng);
        oracle.grad_y_g(x, y, &pi, self.gy.as_mut());
        copy(y, self.y_next.as_mut());
        axpy(
            -T::from_f64(c.gamma),
            self.gy.as_ref(),
            self.y_next.as_mut(),
        );
        let zeta = oracle.sample(Level::Lower, rng);
        oracle.hvp_yy(x, y, z, &zeta, self.hz.as_mut());
        let xi = oracle.sample(Level::Upper, rng);
        oracle.grad_y_f(x, y, &xi, self.gyf.as_mut());
        let xi_bar = oracle.sample(Level::Upper, rng);
        let zeta_bar = oracle.sample(Level::Lower, rng);
        hypergradient(
            oracle,
            x,
            y,
            z,
            (&xi_bar, &zeta_bar),
            self.g.as_mut(),
            self.cross.as_mut(),
        );
        let nu = T::from_f64(c.nu);
        for ((zi, &h), &g) in self
            .z
            .as_mut()
            .iter_mut()
            .zip(self.hz.as_ref())
            .zip(self.gyf.as_ref())
        {
            *zi -= nu * (h - g);
        }
        core::mem::swap(&mut self.y, &mut self.y_next);
        // Adam.
        self.beta1_pow *= c.beta1;
        self.beta2_pow *= c.beta2;
        let (b1, b2) = (T::from_f64(c.beta1), T::from_f64(c.beta2));
        let (c1, c2) = (
            T::from_f64(1.0 / (1.0 - self.beta1_pow)),
            T::from_f64(1.0 / (1.0 - self.beta2_pow)),
        );
        let (lr, eps) = (T::from_f64(c.lr), T::from_f64(c.eps));
        for (((xi, mi), vi), &g) in self
            .x
            .as_mut()
            .iter_mut()
            .zip(self.m.as_mut())
            .zip(self.v.as_mut())
            .zip(self.g.as_ref())
        {
            *mi = b1 * *mi + (T::ONE - b1) * g;
            *vi = b2 * *vi + (T::ONE - b2) * g * g;
            *xi -= lr * (*mi * c1) / ((*vi * c2).sqrt() + eps);
        }
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for SlipAdam<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, m, v, g, cross, y, y_next, y_init, z, z_init, gy, hz, gyf; f64 beta1_pow, beta2_pow; u64 iter; bool initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn first_adam_step_moves_each_coordinate_by_about_lr() {
        let mut o = crate::testing::q3::<f64>(0.0);
        let mut s = SlipAdam::new(SlipAdamConfig::default(), [0.3_f64, -0.7], [0.0; 2]).unwrap();
        let mut rng = crate::DefaultRng::seed_from_u64(0);
        s.init(&mut o, &mut rng).unwrap();
        s.step(&mut o, &mut rng).unwrap();
        assert!((s.x()[0] - 0.3).abs() > 0.99e-3 && (s.x()[0] - 0.3).abs() < 1.01e-3);
        assert!((s.x()[1] + 0.7).abs() > 0.99e-3 && (s.x()[1] + 0.7).abs() < 1.01e-3);
    }
}
