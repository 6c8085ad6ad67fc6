//! VRBO: variance-reduced bilevel optimizer, SARAH/SPIDER-type recursive
//! estimates with periodic large-batch refreshes (Yang, Ji, Liang,
//! NeurIPS 2021), after benchopt's `solvers/vrbo.py`.
//!
//! # Update rule
//!
//! ```text
//! period P = max(1, ⌊period_frac · 2B⌋)      (benchopt: ⌊period_frac (n_in + n_out)/batch⌋)
//! for k = 0, 1, …:
//!     if k mod P = 0:                      (large batch: B samples per estimate)
//!         d = ∇ᵧG(x, y; S_B);  v = η_h Σ_{q=0}^{Q} (I − η_h ∇²ᵧᵧG(x, y; S_B))^q ∇ᵧF(x, y; S_B)
//!         u = ∇ₓF(x, y; S_B) − ∇²ₓᵧG(x, y; S_B) v;   (x̄, ȳ) = (x, y)
//!     x ← x − α u
//!     repeat m times:                      (ζ, ξ, B_j fresh, shared by both points)
//!         d ← d + ∇ᵧG(x, y; ζ) − ∇ᵧG(x̄, ȳ; ζ)
//!         u ← u + ĝ(x, y) − ĝ(x̄, ȳ),  ĝ = ∇ₓF(·; ξ) − ∇²ₓᵧG(·; ζ) SHIA(·)
//!         (x̄, ȳ) ← (x, y);   y ← y − β d
//! β = ρ, η_h as set, α = ρ/r, all constant.
//! ```
//! Calls: a refresh costs B(1 joint ∇F + 1 ∇ᵧG + 1 cross) + QB HVPs; each of
//! the m inner steps 2 ∇ᵧG, 2 joint ∇F, 2Q HVPs, 2 cross products.
//!
//! # Paper and benchopt, and which is followed
//!
//! - benchopt's refresh uses the full data set; an oracle here is a stream of
//!   samples, so a refresh averages B fresh samples per estimate (the
//!   paper's large batch S₁), with fresh B samples for each of the Q Hessian
//!   products. `period_frac` keeps benchopt's meaning with B samples per
//!   level standing for the full batch (benchopt's simulated problem: 1024
//!   samples per level in batches of 64 is B = 16, and period_frac = 128
//!   gives its period, 4096).
//! - The recursion's previous point is the point at which the directions
//!   were last valid (the paper's SARAH recursion, which also accounts for
//!   the x step). benchopt evaluates the old terms at (x_{k+1}, y_old): it
//!   ignores the x step and, right after a refresh, subtracts a gradient at
//!   the y before the last inner step. This file follows the paper there.
//! - benchopt ties the Neumann step to the inner step (η_h = ρ); here η_h is
//!   its own parameter with the same default.
//!
//! # Requirements on the oracle
//!
//! [`UpperGradX`], [`UpperGradY`], [`LowerGradY`], [`LowerHvp`], [`CrossJvp`].
//!
//! # Defaults
//!
//! benchopt's: ρ = 0.1, r = 1, η_h = 0.1, Q = 10 (`n_shia_steps`), m = 10,
//! period_frac = 128; B = 16 (see above).
//!
//! # References
//!
//! Junjie Yang, Kaiyi Ji, Yingbin Liang. *Provably Faster Algorithms for
//! Bilevel Optimization.* NeurIPS 2021. benchopt/benchmark_bilevel `vrbo`.

use rand_core::Rng;

use super::common::{solver_config, FINITE, POS};
use super::storm::{joint_hia, Hia, NeumannBufs};
use super::{check_len, zeros_like, Buffer, Solver, SolverState};
use crate::kernels::{axpy, copy, fill, scale};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::registry::Configure;
use crate::{Error, Real};

solver_config! {
    /// Hyperparameters of [`Vrbo`]; validated by [`Vrbo::new`] against [`INFO`].
    pub struct VrboConfig;
    info INFO {
        name: "vrbo",
        title: "VRBO",
        summary: "recursive (SARAH) estimates of the y and x directions, periodic large-batch refresh, SHIA",
        reference: "Yang, Ji, Liang. Provably Faster Algorithms for Bilevel Optimization. NeurIPS 2021",
        oracles: [GradXF, GradYF, GradYG, HvpYY, JvpXY],
    }
    step_size: f64 = 0.1, real(POS, FINITE, "> 0"), "ρ: y step β = ρ";
    outer_ratio: f64 = 1.0, real(POS, FINITE, "> 0"), "r: x step α = ρ/r";
    hia_lr: f64 = 0.1, real(POS, FINITE, "> 0"), "η_h: Neumann step (< 1/L_g)";
    n_shia_steps: u64 = 10, int(0, 1_000_000, "in [0, 10^6]"), "Q: SHIA products";
    n_inner_steps: u64 = 10, int(1, 1_000_000, "in [1, 10^6]"), "m: recursive inner steps per outer iteration";
    period_frac: f64 = 128.0, real(POS, FINITE, "> 0"), "refresh period P = max(1, ⌊period_frac·2B⌋) outer iterations";
    big_batch: u64 = 16, int(1, 1_000_000, "in [1, 10^6]"), "B: samples averaged per estimate at a refresh";
}

/// The VRBO solver over buffers `BX` (dimension dx) and `BY` (dimension dy).
#[derive(Debug, Clone)]
pub struct Vrbo<T, BX, BY> {
    cfg: VrboConfig,
    x: BX,
    x_old: BX,
    dx: BX,
    gx: BX,
    gx_old: BX,
    cross: BX,
    tx: BX,
    y: BY,
    y_init: BY,
    y_old: BY,
    dy: BY,
    gy: BY,
    b: BY,
    b_old: BY,
    p: BY,
    p_old: BY,
    hv: BY,
    v: BY,
    v_old: BY,
    ty: BY,
    iter: u64,
    refreshes: u64,
    initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> Vrbo<T, BX, BY> {
    /// Validates `cfg` and builds the solver from x_0 and y_0.
    pub fn new(cfg: VrboConfig, x0: BX, y0: BY) -> Result<Self, Error> {
        cfg.validate()?;
        let z = |b: &BY| zeros_like(b);
        Ok(Vrbo {
            cfg,
            x_old: zeros_like(&x0),
            dx: zeros_like(&x0),
            gx: zeros_like(&x0),
            gx_old: zeros_like(&x0),
            cross: zeros_like(&x0),
            tx: zeros_like(&x0),
            x: x0,
            y_old: z(&y0),
            dy: z(&y0),
            gy: z(&y0),
            b: z(&y0),
            b_old: z(&y0),
            p: z(&y0),
            p_old: z(&y0),
            hv: z(&y0),
            v: z(&y0),
            v_old: z(&y0),
            ty: z(&y0),
            y_init: y0.clone(),
            y: y0,
            iter: 0,
            refreshes: 0,
            initialized: false,
            _t: core::marker::PhantomData,
        })
    }

    /// The configuration.
    pub const fn config(&self) -> &VrboConfig {
        &self.cfg
    }

    /// The refresh period P in outer iterations.
    pub fn period(&self) -> u64 {
        // `as` truncates (= floor for a positive value) and saturates: a huge
        // period never refreshes again.
        ((self.cfg.period_frac * 2.0 * self.cfg.big_batch as f64) as u64).max(1)
    }

    /// Large-batch refreshes taken so far.
    pub const fn refreshes(&self) -> u64 {
        self.refreshes
    }

    /// The recursive x direction u.
    pub fn direction(&self) -> &[T] {
        self.dx.as_ref()
    }

    /// The recursive y direction d.
    pub fn lower_direction(&self) -> &[T] {
        self.dy.as_ref()
    }

    /// The large-batch directions at (x, y): d, u, and (x̄, ȳ) = (x, y).
    fn refresh<O, R>(&mut self, oracle: &mut O, rng: &mut R)
    where
        O: UpperGradX<T> + UpperGradY<T> + LowerGradY<T> + LowerHvp<T> + CrossJvp<T>,
        R: Rng + ?Sized,
    {
        let c = self.cfg;
        let inv = T::ONE / T::from_f64(c.big_batch as f64);
        let (x, y) = (self.x.as_ref(), self.y.as_ref());
        fill(self.gx.as_mut(), T::ZERO);
        fill(self.b.as_mut(), T::ZERO);
        for _ in 0..c.big_batch {
            let xi = oracle.sample(Level::Upper, rng);
            crate::oracle::grads_f(oracle, x, y, &xi, self.tx.as_mut(), self.ty.as_mut());
            axpy(inv, self.tx.as_ref(), self.gx.as_mut());
            axpy(inv, self.ty.as_ref(), self.b.as_mut());
        }
        // SHIA with a large-batch Hessian per product.
        let eta = T::from_f64(c.hia_lr);
        copy(self.b.as_ref(), self.p.as_mut());
        copy(self.b.as_ref(), self.v.as_mut());
        for _ in 0..c.n_shia_steps {
            fill(self.hv.as_mut(), T::ZERO);
            for _ in 0..c.big_batch {
                let s = oracle.sample(Level::Lower, rng);
                oracle.hvp_yy(x, y, self.p.as_ref(), &s, self.ty.as_mut());
                axpy(inv, self.ty.as_ref(), self.hv.as_mut());
            }
            axpy(-eta, self.hv.as_ref(), self.p.as_mut());
            axpy(T::ONE, self.p.as_ref(), self.v.as_mut());
        }
        scale(eta, self.v.as_mut());
        fill(self.dy.as_mut(), T::ZERO);
        copy(self.gx.as_ref(), self.dx.as_mut());
        for _ in 0..c.big_batch {
            let s = oracle.sample(Level::Lower, rng);
            oracle.grad_y_g(x, y, &s, self.ty.as_mut());
            axpy(inv, self.ty.as_ref(), self.dy.as_mut());
            oracle.jvp_xy(x, y, self.v.as_ref(), &s, self.tx.as_mut());
            axpy(-inv, self.tx.as_ref(), self.dx.as_mut());
        }
        copy(x, self.x_old.as_mut());
        copy(y, self.y_old.as_mut());
        self.refreshes += 1;
    }

    /// One recursive inner step (see the module docs).
    fn inner_step<O, R>(&mut self, oracle: &mut O, rng: &mut R)
    where
        O: UpperGradX<T> + UpperGradY<T> + LowerGradY<T> + LowerHvp<T> + CrossJvp<T>,
        R: Rng + ?Sized,
    {
        let c = self.cfg;
        let (x, y) = (self.x.as_ref(), self.y.as_ref());
        let (xo, yo) = (self.x_old.as_ref(), self.y_old.as_ref());
        let zeta = oracle.sample(Level::Lower, rng);
        oracle.grad_y_g(x, y, &zeta, self.gy.as_mut());
        axpy(T::ONE, self.gy.as_ref(), self.dy.as_mut());
        oracle.grad_y_g(xo, yo, &zeta, self.gy.as_mut());
        axpy(-T::ONE, self.gy.as_ref(), self.dy.as_mut());
        let xi = oracle.sample(Level::Upper, rng);
        crate::oracle::grads_f(oracle, x, y, &xi, self.gx.as_mut(), self.b.as_mut());
        let (gxo, bo) = (self.gx_old.as_mut(), self.b_old.as_mut());
        crate::oracle::grads_f(oracle, xo, yo, &xi, gxo, bo);
        let cur = NeumannBufs {
            b: self.b.as_ref(),
            p: self.p.as_mut(),
            hv: self.hv.as_mut(),
            out: self.v.as_mut(),
        };
        let old = NeumannBufs {
            b: self.b_old.as_ref(),
            p: self.p_old.as_mut(),
            hv: self.ty.as_mut(),
            out: self.v_old.as_mut(),
        };
        let hc = (T::from_f64(c.hia_lr), c.n_shia_steps);
        joint_hia(oracle, rng, Hia::Shia, hc, (x, y, cur), Some((xo, yo, old)));
        oracle.jvp_xy(x, y, self.v.as_ref(), &zeta, self.cross.as_mut());
        axpy(-T::ONE, self.cross.as_ref(), self.gx.as_mut());
        oracle.jvp_xy(xo, yo, self.v_old.as_ref(), &zeta, self.cross.as_mut());
        axpy(-T::ONE, self.cross.as_ref(), self.gx_old.as_mut());
        axpy(T::ONE, self.gx.as_ref(), self.dx.as_mut());
        axpy(-T::ONE, self.gx_old.as_ref(), self.dx.as_mut());
        copy(x, self.x_old.as_mut());
        copy(y, self.y_old.as_mut());
        axpy(-T::from_f64(c.step_size), self.dy.as_ref(), self.y.as_mut());
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for Vrbo<T, BX, BY> {
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

impl<T, BX, BY, O> Solver<T, O> for Vrbo<T, BX, BY>
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
        self.iter = 0;
        self.refreshes = 0;
        self.initialized = true;
        Ok(())
    }

    fn step<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
        if !self.initialized {
            return Err(Error::NotInitialized);
        }
        if self.iter.is_multiple_of(self.period()) {
            self.refresh(oracle, rng);
        }
        let alpha = T::from_f64(self.cfg.step_size / self.cfg.outer_ratio);
        axpy(-alpha, self.dx.as_ref(), self.x.as_mut());
        for _ in 0..self.cfg.n_inner_steps {
            self.inner_step(oracle, rng);
        }
        self.iter += 1;
        Ok(())
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for Vrbo<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, x_old, dx, gx, gx_old, cross, tx, y, y_init, y_old, dy, gy, b, b_old, p, p_old, hv, v, v_old, ty; f64 ; u64 iter, refreshes; bool initialized);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_follows_period_frac_and_the_big_batch() {
        let s = |period_frac, big_batch| {
            let cfg = VrboConfig {
                period_frac,
                big_batch,
                ..VrboConfig::default()
            };
            Vrbo::<f64, [f64; 1], [f64; 1]>::new(cfg, [0.0], [0.0])
                .unwrap()
                .period()
        };
        assert_eq!(s(128.0, 16), 4096);
        assert_eq!(s(0.5, 3), 3);
        assert_eq!(s(0.01, 1), 1);
        assert!(VrboConfig::default().validate().is_ok());
        let bad = VrboConfig {
            period_frac: 0.0,
            ..VrboConfig::default()
        };
        assert!(Vrbo::<f64, [f64; 1], [f64; 1]>::new(bad, [0.0], [0.0]).is_err());
    }
}
