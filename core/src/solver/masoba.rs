//! MA-SOBA: SOBA with a moving average on the hypergradient estimate
//! (Chen, Xiao, Balasubramanian, 2023, arXiv:2306.12067).
//!
//! # Update rule
//!
//! ```text
//! for t = 0, 1, …:               (every right-hand side at (x_t, y_t, z_t))
//!     y_{t+1} = y_t − β ∇ᵧG(x_t, y_t; φ_t)
//!     z_{t+1} = z_t − γ (∇²ᵧᵧG(x_t, y_t; φ'_t) z_t − ∇ᵧF(x_t, y_t; ξ_t))
//!     x_{t+1} = x_t − α h_t
//!     h_{t+1} = (1 − θ) h_t + θ (∇ₓF(x_t, y_t; ξ_t) − ∇²ₓᵧG(x_t, y_t; φ'_t) z_t)
//! ```
//! φ_t (y step), φ'_t (HVP and cross term) and ξ_t (both upper gradients) are
//! fresh: five oracle calls per iteration. h_0 = 0, so the first x step is
//! zero. In the paper's form x moves along the *previous* average h_t; the
//! official SLIP-repo code moves along the new one (`new_average = true`).
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//!
//! # Defaults
//!
//! The SLIP README's SNLI command for MA-SOBA: inner (y) step 5e-2, outer
//! step 5e-2, EMA β = 0.9 (θ = 1 − β = 0.1), ν (z step) 1e-2; constant steps
//! (the official code). The paper's optional projection of z is not used by
//! any official code and is left out.
//!
//! # References
//!
//! Xuxing Chen, Tesi Xiao, Krishnakumar Balasubramanian. *Optimal Algorithms
//! for Stochastic Bilevel Optimization under Relaxed Smoothness Conditions.*
//! arXiv:2306.12067, 2023.

use rand_core::Rng;

use super::common::{decayed, solver_config, DECAY_MAX, FINITE, NONNEG, POS, UNIT};
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy, fill};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`MaSoba`]; validated by [`MaSoba::new`] against [`INFO`].
    pub struct MaSobaConfig;
    info INFO {
        name: "ma-soba",
        title: "MA-SOBA",
        summary: "SOBA with a moving average of the hypergradient estimate",
        reference: "Chen, Xiao, Balasubramanian. Optimal Algorithms for Stochastic Bilevel Optimization under Relaxed Smoothness Conditions. arXiv:2306.12067",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    outer_lr: f64 = 5e-2, real(POS, FINITE, "> 0"), "α: step on x";
    inner_lr: f64 = 5e-2, real(POS, FINITE, "> 0"), "β: SGD step on y";
    z_lr: f64 = 1e-2, real(POS, FINITE, "> 0"), "γ (ν in the code): SGD step on z";
    theta: f64 = 0.1, real(POS, UNIT, "in (0, 1]"), "θ: averaging weight of the new estimate (1 − β_EMA)";
    outer_decay: f64 = 0.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "α_t = α (t+1)^(−p)";
    new_average: bool = false, boolean(), "move x along h_{t+1} (official code) instead of h_t (paper)";
}

/// The MA-SOBA solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct MaSoba<T, BX, BY> {
    cfg: MaSobaConfig,
    x: BX,
    h: BX,
    gx: BX,
    cross: BX,
    y: BY,
    y_init: BY,
    z: BY,
    z_init: BY,
    gy: BY,
    hz: BY,
    gyf: BY,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> MaSoba<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and y_0 (z_0 = 0, h_0 = 0).
    pub fn new(cfg: MaSobaConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        Ok(MaSoba {
            cfg,
            h: zeros_like(&x0),
            gx: zeros_like(&x0),
            cross: zeros_like(&x0),
            x: x0,
            z: zeros_like(&y0),
            z_init: zeros_like(&y0),
            gy: zeros_like(&y0),
            hz: zeros_like(&y0),
            gyf: zeros_like(&y0),
            y_init: y0.clone(),
            y: y0,
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
    pub const fn config(&self) -> &MaSobaConfig {
        &self.cfg
    }

    /// The linear-system variable z.
    pub fn z(&self) -> &[T] {
        self.z.as_ref()
    }

    /// The last estimate ∇ₓF − ∇²ₓᵧG·z_t (before averaging).
    pub fn direction(&self) -> &[T] {
        self.gx.as_ref()
    }

    /// The moving average h.
    pub fn average(&self) -> &[T] {
        self.h.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for MaSoba<T, BX, BY> {
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

impl<T, BX, BY, O> Solver<T, O> for MaSoba<T, BX, BY>
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
        copy(self.z_init.as_ref(), self.z.as_mut());
        fill(self.h.as_mut(), T::ZERO);
        self.iter = 0;
        self.initialized = true;
        Ok(())
    }

    fn step<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
        if !self.initialized {
            return Err(Error::NotInitialized);
        }
        let c = self.cfg;
        let alpha: T = decayed(c.outer_lr, c.outer_decay, self.iter);
        let (beta, gamma, theta) = (
            T::from_f64(c.inner_lr),
            T::from_f64(c.z_lr),
            T::from_f64(c.theta),
        );
        let phi = oracle.sample(Level::Lower, rng);
        let phi2 = oracle.sample(Level::Lower, rng);
        let xi = oracle.sample(Level::Upper, rng);
        let (x, y, z) = (self.x.as_ref(), self.y.as_ref(), self.z.as_ref());
        oracle.grad_y_g(x, y, &phi, self.gy.as_mut());
        let products = (self.hz.as_mut(), self.cross.as_mut());
        crate::oracle::hvp_jvp(oracle, x, y, z, &phi2, products);
        crate::oracle::grads_f(oracle, x, y, &xi, self.gx.as_mut(), self.gyf.as_mut());
        axpy(-T::ONE, self.cross.as_ref(), self.gx.as_mut());
        axpy(-beta, self.gy.as_ref(), self.y.as_mut());
        for ((zi, &h), &g) in self
            .z
            .as_mut()
            .iter_mut()
            .zip(self.hz.as_ref())
            .zip(self.gyf.as_ref())
        {
            *zi -= gamma * (h - g);
        }
        if !c.new_average {
            axpy(-alpha, self.h.as_ref(), self.x.as_mut());
        }
        for (hi, &g) in self.h.as_mut().iter_mut().zip(self.gx.as_ref()) {
            *hi = (T::ONE - theta) * *hi + theta * g;
        }
        if c.new_average {
            axpy(-alpha, self.h.as_ref(), self.x.as_mut());
        }
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for MaSoba<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, h, gx, cross, y, y_init, z, z_init, gy, hz, gyf; f64 ; u64 iter; bool initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ParamValue;

    #[test]
    fn theta_must_be_in_the_unit_interval() {
        let mut c = MaSobaConfig::default();
        assert!(c.set("theta", ParamValue::Real(0.0)).is_err());
        assert!(c.set("theta", ParamValue::Real(1.5)).is_err());
        assert!(c.set("theta", ParamValue::Real(1.0)).is_ok());
        assert!(c.set("new_average", ParamValue::Bool(true)).is_ok());
        assert_eq!(c.get("new_average"), Some(ParamValue::Bool(true)));
    }

    #[test]
    fn first_x_step_is_zero_in_the_paper_form() {
        let mut o = crate::testing::q3::<f64>(0.0);
        let mut s = MaSoba::new(MaSobaConfig::default(), [0.1_f64, 0.2], [0.0; 2]).unwrap();
        let mut rng = <crate::DefaultRng as rand_core::SeedableRng>::seed_from_u64(0);
        s.init(&mut o, &mut rng).unwrap();
        s.step(&mut o, &mut rng).unwrap();
        assert_eq!(s.x(), &[0.1, 0.2]);
        assert!(s.average().iter().any(|&h| h != 0.0));
    }
}
