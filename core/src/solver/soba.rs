//! SOBA: stochastic bilevel algorithm, one SGD step on each of y, z and x per
//! iteration (Dagréou, Ablin, Vaiter, Moreau, NeurIPS 2022).
//!
//! # Update rule
//!
//! ```text
//! for t = 0, 1, …:               (every right-hand side at (x_t, y_t, z_t))
//!     y_{t+1} = y_t − ρ_t ∇ᵧG(x_t, y_t; ζ_t)
//!     z_{t+1} = z_t − ρ_t (∇²ᵧᵧG(x_t, y_t; ζ_t) z_t − ∇ᵧF(x_t, y_t; ξ_t))
//!     x_{t+1} = x_t − γ_t (∇ₓF(x_t, y_t; ξ_t) − ∇²ₓᵧG(x_t, y_t; ζ_t) z_t)
//! ρ_t = ρ (t+1)^(−p_in),  γ_t = (ρ / r) (t+1)^(−p_out)
//! ```
//! One lower sample ζ_t is shared by ∇ᵧG, the HVP and the cross term (benchopt
//! computes the last two with one VJP) and one upper sample ξ_t by ∇ᵧF and
//! ∇ₓF: five oracle calls per iteration.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//!
//! # Defaults
//!
//! benchopt's SOBA: ρ = 0.1, outer ratio r = 1, both steps decaying as
//! 1/√(t+1) (`inner_decay = outer_decay = 0.5`). The paper's theory uses
//! t^(−2/5) and t^(−3/5); set the two exponents to get it. z_0 = 0 (the
//! paper); [`Soba::with_z0`] sets another start.
//!
//! # References
//!
//! Mathieu Dagréou, Pierre Ablin, Samuel Vaiter, Thomas Moreau. *A framework
//! for bilevel optimization that enables stochastic and global variance
//! reduction algorithms.* NeurIPS 2022. benchopt/benchmark_bilevel `soba`.

use rand_core::Rng;

use super::common::{decayed, solver_config, DECAY_MAX, FINITE, NONNEG, POS};
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`Soba`]; validated by [`Soba::new`] against [`INFO`].
    pub struct SobaConfig;
    info INFO {
        name: "soba",
        title: "SOBA",
        summary: "single loop: one SGD step on y, z and x per iteration, shared samples",
        reference: "Dagréou, Ablin, Vaiter, Moreau. A framework for bilevel optimization that enables stochastic and global variance reduction algorithms. NeurIPS 2022",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    step_size: f64 = 0.1, real(POS, FINITE, "> 0"), "ρ: step on y and z";
    outer_ratio: f64 = 1.0, real(POS, FINITE, "> 0"), "r: the x step is ρ/r";
    inner_decay: f64 = 0.5, real(NONNEG, DECAY_MAX, "in [0, 2]"), "p_in: ρ_t = ρ (t+1)^(−p_in)";
    outer_decay: f64 = 0.5, real(NONNEG, DECAY_MAX, "in [0, 2]"), "p_out: γ_t = (ρ/r) (t+1)^(−p_out)";
}

/// The SOBA solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct Soba<T, BX, BY> {
    cfg: SobaConfig,
    x: BX,
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

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> Soba<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and y_0 (z_0 = 0).
    pub fn new(cfg: SobaConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        Ok(Soba {
            cfg,
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
    pub const fn config(&self) -> &SobaConfig {
        &self.cfg
    }

    /// The linear-system variable z.
    pub fn z(&self) -> &[T] {
        self.z.as_ref()
    }

    /// The last x direction ∇ₓF − ∇²ₓᵧG·z_t.
    pub fn direction(&self) -> &[T] {
        self.gx.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for Soba<T, BX, BY> {
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

impl<T, BX, BY, O> Solver<T, O> for Soba<T, BX, BY>
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
        let rho: T = decayed(c.step_size, c.inner_decay, self.iter);
        let gamma: T = decayed(c.step_size / c.outer_ratio, c.outer_decay, self.iter);
        let zeta = oracle.sample(Level::Lower, rng);
        let xi = oracle.sample(Level::Upper, rng);
        let (x, y, z) = (self.x.as_ref(), self.y.as_ref(), self.z.as_ref());
        let lower = (self.gy.as_mut(), self.hz.as_mut(), self.cross.as_mut());
        crate::oracle::grad_hvp_jvp(oracle, x, y, z, &zeta, lower);
        crate::oracle::grads_f(oracle, x, y, &xi, self.gx.as_mut(), self.gyf.as_mut());
        axpy(-T::ONE, self.cross.as_ref(), self.gx.as_mut());
        axpy(-rho, self.gy.as_ref(), self.y.as_mut());
        for ((zi, &h), &g) in self
            .z
            .as_mut()
            .iter_mut()
            .zip(self.hz.as_ref())
            .zip(self.gyf.as_ref())
        {
            *zi -= rho * (h - g);
        }
        axpy(-gamma, self.gx.as_ref(), self.x.as_mut());
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for Soba<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, gx, cross, y, y_init, z, z_init, gy, hz, gyf; f64 ; u64 iter; bool initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ParamValue;

    #[test]
    fn config_is_validated() {
        let mut c = SobaConfig::default();
        assert!(c.set("step_size", ParamValue::Real(-1.0)).is_err());
        assert!(c.set("outer_ratio", ParamValue::Bool(true)).is_err());
        assert!(c.set("nope", ParamValue::Real(1.0)).is_err());
        assert!(c.set("inner_decay", ParamValue::Real(0.4)).is_ok());
        assert_eq!(c.get("inner_decay"), Some(ParamValue::Real(0.4)));
        let bad = SobaConfig {
            step_size: f64::NAN,
            ..SobaConfig::default()
        };
        assert!(Soba::<f64, [f64; 1], [f64; 1]>::new(bad, [0.0], [0.0]).is_err());
    }

    #[test]
    fn step_before_init_is_an_error() {
        let mut o = crate::testing::q1::<f64>(0.0);
        let mut s = Soba::new(SobaConfig::default(), [0.0_f64], [0.0_f64]).unwrap();
        let mut rng = crate::DefaultRng::seed_from_u64(0);
        assert_eq!(s.step(&mut o, &mut rng), Err(Error::NotInitialized));
    }
    use rand_core::SeedableRng;
}
