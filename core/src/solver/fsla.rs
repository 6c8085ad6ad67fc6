//! FSLA: fully single-loop algorithm with recursive (STORM) momentum on the
//! hypergradient (Li, Gu, Huang, AAAI 2022).
//!
//! # Update rule
//!
//! ```text
//! for t = 0, 1, …:
//!     y_{t+1} = y_t − α_t ∇ᵧG(x_t, y_t; ζ_t)
//!     z_{t+1} = z_t − α_t (∇²ᵧᵧG(x_t, y_{t+1}; ζ'_t) z_t − ∇ᵧF(x_t, y_{t+1}; ξ_t))
//!     ĝ_new = ∇ₓF(x_t, y_{t+1}; ξ'_t) − ∇²ₓᵧG(x_t, y_{t+1}; ζ''_t) z_{t+1}
//!     ĝ_old = ∇ₓF(x_{t−1}, y_t; ξ'_t) − ∇²ₓᵧG(x_{t−1}, y_t; ζ''_t) z_t     (same ξ'_t, ζ''_t)
//!     d_t = ĝ_new + (1 − η_t)(d_{t−1} − ĝ_old)          (d_0 = ĝ_new)
//!     x_{t+1} = x_t − γ_t d_t
//! α_t = α (t+1)^(−p),  η_t = min(1, η (t+1)^(−p)),  γ_t = γ (t+1)^(−p)
//! ```
//! Seven oracle calls per iteration (five at t = 0).
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//!
//! # Defaults
//!
//! benchopt's `fsla`: all three rates base 0.1, decaying as (t+1)^(−1/2).
//!
//! # References
//!
//! Junyi Li, Bin Gu, Heng Huang. *A Fully Single Loop Algorithm for Bilevel
//! Optimization without Hessian Inverse.* AAAI 2022.

use rand_core::Rng;

use super::common::{decayed, solver_config, DECAY_MAX, FINITE, NONNEG, POS};
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`Fsla`]; validated by [`Fsla::new`] against [`INFO`].
    pub struct FslaConfig;
    info INFO {
        name: "fsla",
        title: "FSLA",
        summary: "single loop with STORM recursive momentum on the hypergradient",
        reference: "Li, Gu, Huang. A Fully Single Loop Algorithm for Bilevel Optimization without Hessian Inverse. AAAI 2022",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    inner_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "α: step on y and z";
    outer_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "γ: step on x";
    momentum: f64 = 0.1, real(POS, FINITE, "> 0"), "η: STORM weight of the new estimate (capped at 1)";
    decay: f64 = 0.5, real(NONNEG, DECAY_MAX, "in [0, 2]"), "p: every rate decays as (t+1)^(−p)";
}

/// The FSLA solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct Fsla<T, BX, BY> {
    cfg: FslaConfig,
    x: BX,
    x_prev: BX,
    d: BX,
    g_new: BX,
    g_old: BX,
    cross: BX,
    y: BY,
    y_prev: BY,
    y_init: BY,
    z: BY,
    z_prev: BY,
    z_init: BY,
    gy: BY,
    hz: BY,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> Fsla<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and y_0 (z_0 = 0).
    pub fn new(cfg: FslaConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        Ok(Fsla {
            cfg,
            x_prev: zeros_like(&x0),
            d: zeros_like(&x0),
            g_new: zeros_like(&x0),
            g_old: zeros_like(&x0),
            cross: zeros_like(&x0),
            x: x0,
            y_prev: zeros_like(&y0),
            z: zeros_like(&y0),
            z_prev: zeros_like(&y0),
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
    pub const fn config(&self) -> &FslaConfig {
        &self.cfg
    }

    /// The linear-system variable z.
    pub fn z(&self) -> &[T] {
        self.z.as_ref()
    }

    /// The last plain estimate ĝ_new (before the recursive momentum).
    pub fn direction(&self) -> &[T] {
        self.g_new.as_ref()
    }

    /// The momentum direction d_t.
    pub fn momentum(&self) -> &[T] {
        self.d.as_ref()
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for Fsla<T, BX, BY> {
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

impl<T, BX, BY, O> Solver<T, O> for Fsla<T, BX, BY>
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
        let t = self.iter;
        let alpha: T = decayed(c.inner_lr, c.decay, t);
        let gamma: T = decayed(c.outer_lr, c.decay, t);
        let eta: T = decayed::<T>(c.momentum, c.decay, t).min(T::ONE);
        // y_t and z_t become the "previous" point of the next iteration's ĝ_old.
        copy(self.y.as_ref(), self.y_prev.as_mut());
        core::mem::swap(&mut self.z, &mut self.z_prev);
        let x = self.x.as_ref();
        let zeta = oracle.sample(Level::Lower, rng);
        oracle.grad_y_g(x, self.y_prev.as_ref(), &zeta, self.gy.as_mut());
        axpy(-alpha, self.gy.as_ref(), self.y.as_mut());
        let (zeta1, xi) = (
            oracle.sample(Level::Lower, rng),
            oracle.sample(Level::Upper, rng),
        );
        oracle.hvp_yy(
            x,
            self.y.as_ref(),
            self.z_prev.as_ref(),
            &zeta1,
            self.hz.as_mut(),
        );
        oracle.grad_y_f(x, self.y.as_ref(), &xi, self.gy.as_mut());
        for (((zn, &zo), &h), &g) in self
            .z
            .as_mut()
            .iter_mut()
            .zip(self.z_prev.as_ref())
            .zip(self.hz.as_ref())
            .zip(self.gy.as_ref())
        {
            *zn = zo - alpha * (h - g);
        }
        let (xi2, zeta2) = (
            oracle.sample(Level::Upper, rng),
            oracle.sample(Level::Lower, rng),
        );
        oracle.grad_x_f(x, self.y.as_ref(), &xi2, self.g_new.as_mut());
        oracle.jvp_xy(
            x,
            self.y.as_ref(),
            self.z.as_ref(),
            &zeta2,
            self.cross.as_mut(),
        );
        axpy(-T::ONE, self.cross.as_ref(), self.g_new.as_mut());
        if t == 0 {
            copy(self.g_new.as_ref(), self.d.as_mut());
        } else {
            // ĝ_old at (x_{t−1}, y_t, z_t) with the same samples.
            let xp = self.x_prev.as_ref();
            oracle.grad_x_f(xp, self.y_prev.as_ref(), &xi2, self.g_old.as_mut());
            oracle.jvp_xy(
                xp,
                self.y_prev.as_ref(),
                self.z_prev.as_ref(),
                &zeta2,
                self.cross.as_mut(),
            );
            axpy(-T::ONE, self.cross.as_ref(), self.g_old.as_mut());
            let keep = T::ONE - eta;
            for ((di, &gn), &go) in self
                .d
                .as_mut()
                .iter_mut()
                .zip(self.g_new.as_ref())
                .zip(self.g_old.as_ref())
            {
                *di = gn + keep * (*di - go);
            }
        }
        copy(self.x.as_ref(), self.x_prev.as_mut());
        axpy(-gamma, self.d.as_ref(), self.x.as_mut());
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for Fsla<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, x_prev, d, g_new, g_old, cross, y, y_prev, y_init, z, z_prev, z_init, gy, hz; f64 ; u64 iter; bool initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn first_direction_is_the_plain_estimate() {
        let mut o = crate::testing::q3::<f64>(0.0);
        let mut s = Fsla::new(FslaConfig::default(), [0.3_f64, -0.7], [0.0; 2]).unwrap();
        let mut rng = crate::DefaultRng::seed_from_u64(0);
        s.init(&mut o, &mut rng).unwrap();
        s.step(&mut o, &mut rng).unwrap();
        assert_eq!(s.momentum(), s.direction());
    }
}
