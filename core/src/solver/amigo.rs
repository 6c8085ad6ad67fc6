//! AmIGO: amortized implicit gradient optimization (Arbel and Mairal, ICLR
//! 2022).
//!
//! # Update rule
//!
//! ```text
//! for k = 0, 1, …:
//!     y ← T steps y ← y − α_y ∇ᵧG(x_k, y; ζ_t) from the previous y (warm start)
//!     (g_x, g_y) = (∇ₓF, ∇ᵧF)(x_k, y; ξ_k)
//!     z ← M steps z ← z − α_z (∇²ᵧᵧG(x_k, y; ζ_j) z − g_y) from the previous z
//!     ĝ = g_x − ∇²ₓᵧG(x_k, y; ζ') z
//!     x_{k+1} = x_k − α_x ĝ
//! ```
//! Every ζ is fresh; ξ_k serves both upper gradients. "Amortized": both
//! inner loops are warm-started from the previous iteration.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//!
//! # Defaults
//!
//! benchopt's `amigo`: α_y = α_z = 0.1, α_x = 0.1 (outer ratio 1), T = M = 10,
//! constant steps.
//!
//! # References
//!
//! Michael Arbel, Julien Mairal. *Amortized Implicit Differentiation for
//! Stochastic Bilevel Optimization.* ICLR 2022.

use rand_core::Rng;

use super::common::{decayed, lower_sgd, solver_config, DECAY_MAX, FINITE, NONNEG, POS};
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`Amigo`]; validated by [`Amigo::new`] against [`INFO`].
    pub struct AmigoConfig;
    info INFO {
        name: "amigo",
        title: "AmIGO",
        summary: "warm-started SGD loops on y and on the linear system z, SGD on x",
        reference: "Arbel, Mairal. Amortized Implicit Differentiation for Stochastic Bilevel Optimization. ICLR 2022",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    inner_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "α_y: SGD step on y";
    inner_steps: u64 = 10, int(0, 1_000_000, "in [0, 10^6]"), "T: SGD steps on y per iteration";
    z_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "α_z: SGD step on z";
    z_steps: u64 = 10, int(0, 1_000_000, "in [0, 10^6]"), "M: SGD steps on z per iteration";
    outer_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "α_x: step on x";
    outer_decay: f64 = 0.0, real(NONNEG, DECAY_MAX, "in [0, 2]"), "α_x,k = α_x (k+1)^(−p)";
}

/// The AmIGO solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct Amigo<T, BX, BY> {
    cfg: AmigoConfig,
    x: BX,
    gx: BX,
    cross: BX,
    y: BY,
    y_init: BY,
    z: BY,
    z_init: BY,
    gy: BY,
    hz: BY,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> Amigo<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and y_0 (z_0 = 0).
    pub fn new(cfg: AmigoConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        Ok(Amigo {
            cfg,
            gx: zeros_like(&x0),
            cross: zeros_like(&x0),
            x: x0,
            z: zeros_like(&y0),
            z_init: zeros_like(&y0),
            gy: zeros_like(&y0),
            hz: zeros_like(&y0),
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
    pub const fn config(&self) -> &AmigoConfig {
        &self.cfg
    }

    /// The linear-system variable z.
    pub fn z(&self) -> &[T] {
        self.z.as_ref()
    }

    /// The last hypergradient estimate ĝ.
    pub fn direction(&self) -> &[T] {
        self.gx.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for Amigo<T, BX, BY> {
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

impl<T, BX, BY, O> Solver<T, O> for Amigo<T, BX, BY>
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
        self.iter = 0;
        self.initialized = true;
        Ok(())
    }

    fn step<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
        if !self.initialized {
            return Err(Error::NotInitialized);
        }
        let c = self.cfg;
        lower_sgd(
            oracle,
            rng,
            self.x.as_ref(),
            self.y.as_mut(),
            self.gy.as_mut(),
            c.inner_steps,
            T::from_f64(c.inner_lr),
        );
        let (x, y) = (self.x.as_ref(), self.y.as_ref());
        let xi = oracle.sample(Level::Upper, rng);
        crate::oracle::grads_f(oracle, x, y, &xi, self.gx.as_mut(), self.gy.as_mut());
        let az = T::from_f64(c.z_lr);
        for _ in 0..c.z_steps {
            let zeta = oracle.sample(Level::Lower, rng);
            oracle.hvp_yy(x, y, self.z.as_ref(), &zeta, self.hz.as_mut());
            for ((zi, &h), &g) in self
                .z
                .as_mut()
                .iter_mut()
                .zip(self.hz.as_ref())
                .zip(self.gy.as_ref())
            {
                *zi -= az * (h - g);
            }
        }
        let zeta = oracle.sample(Level::Lower, rng);
        oracle.jvp_xy(x, y, self.z.as_ref(), &zeta, self.cross.as_mut());
        axpy(-T::ONE, self.cross.as_ref(), self.gx.as_mut());
        let ax: T = decayed(c.outer_lr, c.outer_decay, self.iter);
        axpy(-ax, self.gx.as_ref(), self.x.as_mut());
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for Amigo<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, gx, cross, y, y_init, z, z_init, gy, hz; f64 ; u64 iter; bool initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ParamValue;

    #[test]
    fn z_steps_round_trip() {
        let mut c = AmigoConfig::default();
        assert!(c.set("z_steps", ParamValue::Int(3)).is_ok());
        assert_eq!(c.get("z_steps"), Some(ParamValue::Int(3)));
        assert!(c.set("z_lr", ParamValue::Real(0.0)).is_err());
    }
}
