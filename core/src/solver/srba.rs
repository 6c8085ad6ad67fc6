//! SRBA: stochastic recursive bilevel algorithm, SARAH-type recursive
//! estimates of the SOBA directions with periodic full-batch restarts, for
//! empirical risks (Dagréou, Moreau, Vaiter, Ablin, AISTATS 2024), as
//! benchopt's `solvers/srba.py` implements it.
//!
//! # Update rule
//!
//! For finite sums g = (1/n) Σ_i G_i and f = (1/m) Σ_j F_j, with
//! P = max(1, ⌊period_frac (n + m)⌋) (benchopt: ⌊period_frac (n + m)/batch⌋,
//! one sample per batch here) and constant steps:
//!
//! ```text
//! for t = 0, 1, …:
//!     if t mod P = 0:                               (full batch at (x_t, y_t, z_t))
//!         D_y = ∇ᵧg;  D_z = ∇²ᵧᵧg z − ∇ᵧf;  D_x = ∇ₓf − ∇²ₓᵧg z
//!     else:                 (i, j: FiniteSum::next_index; default U{0..n−1}, U{0..m−1})
//!         D_y += ∇ᵧG_i(x_t, y_t) − ∇ᵧG_i(x_{t−1}, y_{t−1})
//!         D_z += [∇²ᵧᵧG_i z − ∇ᵧF_j](t) − [∇²ᵧᵧG_i z − ∇ᵧF_j](t−1)
//!         D_x += [∇ₓF_j − ∇²ₓᵧG_i z](t) − [∇ₓF_j − ∇²ₓᵧG_i z](t−1)
//!     y_{t+1} = y_t − ρ D_y;  z_{t+1} = z_t − ρ D_z;  x_{t+1} = x_t − (ρ/r) D_x
//! ```
//! Calls: a restart costs n (∇ᵧG, HVP, cross) and m joint ∇F; other
//! iterations 2 joint (∇ᵧG, HVP, cross) and 2 joint ∇F.
//!
//! # Paper and benchopt, and which is followed
//!
//! benchopt is followed, with its sign convention turned around: benchopt's
//! v solves ∇²ᵧᵧg v = −∇ᵧf; here z = −v solves ∇²ᵧᵧg z = ∇ᵧf (as in SOBA and
//! SABA), which gives the same iterates. benchopt runs minibatches of 64
//! samples; here one sample index per level per iteration (a sample of a
//! [`FiniteSum`] oracle may itself be a minibatch). The paper's pseudo-code
//! was not checked beyond benchopt's implementation and docstring.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`]
//! and [`FiniteSum`], as SABA: built by name through
//! [`AnyFiniteSum`](super::AnyFiniteSum) (feature `alloc`), not `AnySolver`.
//!
//! # Defaults
//!
//! benchopt's `srba`: ρ = 0.1, r = 1, period_frac = 0.5.
//!
//! # References
//!
//! Mathieu Dagréou, Thomas Moreau, Samuel Vaiter, Pierre Ablin. *A Lower
//! Bound and a Near-Optimal Algorithm for Bilevel Empirical Risk
//! Minimization.* AISTATS 2024 (arXiv:2302.08766). benchopt `srba`.

use rand_core::Rng;

use super::common::{solver_config, FINITE, POS};
use super::{check_len, zeros_like, Buffer, FiniteSum, Solver, SolverState};
use crate::kernels::{axpy, copy, fill};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`Srba`]; validated by [`Srba::new`] against [`INFO`].
    pub struct SrbaConfig;
    info INFO {
        name: "srba",
        title: "SRBA",
        summary: "SOBA directions with SARAH recursive variance reduction and periodic full-batch restarts (finite sums)",
        reference: "Dagréou, Moreau, Vaiter, Ablin. A Lower Bound and a Near-Optimal Algorithm for Bilevel Empirical Risk Minimization. AISTATS 2024",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    step_size: f64 = 0.1, real(POS, FINITE, "> 0"), "ρ: step on y and z";
    outer_ratio: f64 = 1.0, real(POS, FINITE, "> 0"), "r: the x step is ρ/r";
    period_frac: f64 = 0.5, real(POS, FINITE, "> 0"), "restart period P = max(1, ⌊period_frac·(n + m)⌋)";
}

/// Scratch of `add_directions`: ∇ᵧG, HVP, cross (dx), ∇ₓF (dx), ∇ᵧF.
type Scratch<'a, T> = (
    &'a mut [T],
    &'a mut [T],
    &'a mut [T],
    &'a mut [T],
    &'a mut [T],
);

/// The SRBA solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct Srba<T, BX, BY> {
    cfg: SrbaConfig,
    x: BX,
    x_old: BX,
    dx: BX,
    gx: BX,
    cross: BX,
    y: BY,
    y_init: BY,
    y_old: BY,
    z: BY,
    z_init: BY,
    z_old: BY,
    dy: BY,
    dz: BY,
    gy: BY,
    hz: BY,
    gyf: BY,
    period: u64,
    iter: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> Srba<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and y_0 (z_0 = 0).
    pub fn new(cfg: SrbaConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        let z = |b: &BY| zeros_like(b);
        Ok(Srba {
            cfg,
            x_old: zeros_like(&x0),
            dx: zeros_like(&x0),
            gx: zeros_like(&x0),
            cross: zeros_like(&x0),
            x: x0,
            y_old: z(&y0),
            z: z(&y0),
            z_init: z(&y0),
            z_old: z(&y0),
            dy: z(&y0),
            dz: z(&y0),
            gy: z(&y0),
            hz: z(&y0),
            gyf: z(&y0),
            y_init: y0.clone(),
            y: y0,
            period: 1,
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
    pub const fn config(&self) -> &SrbaConfig {
        &self.cfg
    }

    /// The restart period P (set by `init` from the oracle's sample counts).
    pub const fn period(&self) -> u64 {
        self.period
    }

    /// The linear-system variable z.
    pub fn z(&self) -> &[T] {
        self.z.as_ref()
    }

    /// The recursive x direction D_x.
    pub fn direction(&self) -> &[T] {
        self.dx.as_ref()
    }

    /// Adds `sign` × the SOBA directions of samples (i, j) at (x, y, z).
    #[allow(clippy::too_many_arguments)]
    fn add_directions<
        O: UpperGradX<T> + UpperGradY<T> + LowerGradY<T> + LowerHvp<T> + CrossJvp<T>,
    >(
        oracle: &mut O,
        (x, y, z): (&[T], &[T], &[T]),
        (si, sj): (Option<&O::Sample>, Option<&O::Sample>),
        sign: T,
        scratch: Scratch<'_, T>,
        (dy, dz, dx): (&mut [T], &mut [T], &mut [T]),
    ) {
        let (gy, hz, cross, gx, gyf) = scratch;
        if let Some(si) = si {
            crate::oracle::grad_hvp_jvp(oracle, x, y, z, si, (&mut *gy, &mut *hz, &mut *cross));
            axpy(sign, gy, dy);
            axpy(sign, hz, dz);
            axpy(-sign, cross, dx);
        }
        if let Some(sj) = sj {
            crate::oracle::grads_f(oracle, x, y, sj, gx, gyf);
            axpy(-sign, gyf, dz);
            axpy(sign, gx, dx);
        }
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for Srba<T, BX, BY> {
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

impl<T, BX, BY, O> Solver<T, O> for Srba<T, BX, BY>
where
    T: Real,
    BX: Buffer<T>,
    BY: Buffer<T>,
    O: UpperGradX<T> + UpperGradY<T> + LowerGradY<T> + LowerHvp<T> + CrossJvp<T> + FiniteSum<T>,
{
    fn name(&self) -> &'static str {
        INFO.name
    }

    fn init<R: Rng + ?Sized>(&mut self, oracle: &mut O, _rng: &mut R) -> Result<(), Error> {
        check_len("x", self.x.as_ref().len(), oracle.dim_x())?;
        check_len("y", self.y.as_ref().len(), oracle.dim_y())?;
        let (n, m) = (oracle.count(Level::Lower), oracle.count(Level::Upper));
        if n == 0 || m == 0 {
            return Err(Error::InvalidParam {
                name: "samples",
                expected: "at least one sample on each level",
            });
        }
        // `as` truncates (= floor for a positive value) and saturates: a huge
        // period never restarts again.
        self.period = ((self.cfg.period_frac * (n + m) as f64) as u64).max(1);
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
        let (n, m) = (oracle.count(Level::Lower), oracle.count(Level::Upper));
        let cur = (self.x.as_ref(), self.y.as_ref(), self.z.as_ref());
        let scratch = (
            self.gy.as_mut(),
            self.hz.as_mut(),
            self.cross.as_mut(),
            self.gx.as_mut(),
            self.gyf.as_mut(),
        );
        let dirs = (self.dy.as_mut(), self.dz.as_mut(), self.dx.as_mut());
        if self.iter.is_multiple_of(self.period) {
            fill(dirs.0, T::ZERO);
            fill(dirs.1, T::ZERO);
            fill(dirs.2, T::ZERO);
            let (gy, hz, cross, gx, gyf) = scratch;
            for i in 0..n {
                let s = oracle.sample_at(Level::Lower, i);
                let sc = (&mut *gy, &mut *hz, &mut *cross, &mut *gx, &mut *gyf);
                let d = (&mut *dirs.0, &mut *dirs.1, &mut *dirs.2);
                let w = T::ONE / T::from_f64(n as f64);
                Self::add_directions(oracle, cur, (Some(&s), None), w, sc, d);
            }
            for j in 0..m {
                let s = oracle.sample_at(Level::Upper, j);
                let sc = (&mut *gy, &mut *hz, &mut *cross, &mut *gx, &mut *gyf);
                let d = (&mut *dirs.0, &mut *dirs.1, &mut *dirs.2);
                let w = T::ONE / T::from_f64(m as f64);
                Self::add_directions(oracle, cur, (None, Some(&s)), w, sc, d);
            }
        } else {
            let i = oracle.next_index(Level::Lower, rng);
            let j = oracle.next_index(Level::Upper, rng);
            let (si, sj) = (
                oracle.sample_at(Level::Lower, i),
                oracle.sample_at(Level::Upper, j),
            );
            let (gy, hz, cross, gx, gyf) = scratch;
            let sc = (&mut *gy, &mut *hz, &mut *cross, &mut *gx, &mut *gyf);
            let d = (&mut *dirs.0, &mut *dirs.1, &mut *dirs.2);
            Self::add_directions(oracle, cur, (Some(&si), Some(&sj)), T::ONE, sc, d);
            let old = (
                self.x_old.as_ref(),
                self.y_old.as_ref(),
                self.z_old.as_ref(),
            );
            let sc = (gy, hz, cross, gx, gyf);
            Self::add_directions(oracle, old, (Some(&si), Some(&sj)), -T::ONE, sc, dirs);
        }
        copy(self.x.as_ref(), self.x_old.as_mut());
        copy(self.y.as_ref(), self.y_old.as_mut());
        copy(self.z.as_ref(), self.z_old.as_mut());
        let rho = T::from_f64(self.cfg.step_size);
        axpy(-rho, self.dy.as_ref(), self.y.as_mut());
        axpy(-rho, self.dz.as_ref(), self.z.as_mut());
        let alpha = T::from_f64(self.cfg.step_size / self.cfg.outer_ratio);
        axpy(-alpha, self.dx.as_ref(), self.x.as_mut());
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for Srba<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, x_old, dx, gx, cross, y, y_init, y_old, z, z_init, z_old, dy, dz, gy, hz, gyf; f64 ; u64 period, iter; bool initialized);
    }
}
