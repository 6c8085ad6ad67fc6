//! The recursive-momentum (STORM) core shared by MRBO and SUSTAIN, and the
//! joint Hessian-inverse approximations (one sample per product, shared by
//! the current and the previous point) that MRBO, SUSTAIN and VRBO use, as in
//! benchopt's `joint_shia_jax` and `joint_hia_jax`.

use rand_core::Rng;

use super::common::decayed;
use super::{zeros_like, Buffer};
use crate::kernels::{axpy, copy, scale};
use crate::oracle::{CrossJvp, Level, LowerGradY, LowerHvp, UpperGradX, UpperGradY};
use crate::{random, Real};

/// Which Hessian-inverse approximation a STORM solver uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hia {
    /// StocBio's SHIA: `η Σ_{q=0}^{Q} p_q` (MRBO, VRBO).
    Shia,
    /// Ghadimi–Wang's randomised HIA: `Q·c·p_k`, k ~ U{0, …, Q−1} (SUSTAIN).
    Random,
}

/// One point's Neumann buffers: the right-hand side b (in), the running
/// product p, the HVP scratch and the output.
pub(crate) struct NeumannBufs<'a, T> {
    pub b: &'a [T],
    pub p: &'a mut [T],
    pub hv: &'a mut [T],
    pub out: &'a mut [T],
}

/// The Hessian-inverse approximation at (x, y) and, when `old` is given, at
/// the old point with the same sample for each product (benchopt's joint
/// SHIA / HIA). `c` is the Neumann step, `q` the number of products (SHIA)
/// or of terms (HIA).
#[allow(clippy::too_many_arguments)]
pub(crate) fn joint_hia<T, O, R>(
    oracle: &mut O,
    rng: &mut R,
    kind: Hia,
    (c, q): (T, u64),
    (x, y, cur): (&[T], &[T], NeumannBufs<'_, T>),
    mut old: Option<(&[T], &[T], NeumannBufs<'_, T>)>,
) where
    T: Real,
    O: LowerHvp<T>,
    R: Rng + ?Sized,
{
    let steps = match kind {
        Hia::Shia => q,
        Hia::Random => random::below(rng, q),
    };
    copy(cur.b, cur.p);
    copy(cur.b, cur.out);
    if let Some((_, _, o)) = old.as_mut() {
        copy(o.b, o.p);
        copy(o.b, o.out);
    }
    for _ in 0..steps {
        let s = oracle.sample(Level::Lower, rng);
        oracle.hvp_yy(x, y, cur.p, &s, cur.hv);
        axpy(-c, cur.hv, cur.p);
        axpy(T::ONE, cur.p, cur.out);
        if let Some((xo, yo, o)) = old.as_mut() {
            oracle.hvp_yy(xo, yo, o.p, &s, o.hv);
            axpy(-c, o.hv, o.p);
            axpy(T::ONE, o.p, o.out);
        }
    }
    let f = match kind {
        Hia::Shia => c,
        Hia::Random => T::from_f64(q as f64) * c,
    };
    let fin = |n: NeumannBufs<'_, T>| {
        if kind == Hia::Random {
            copy(n.p, n.out);
        }
        scale(f, n.out);
    };
    fin(cur);
    if let Some((_, _, o)) = old {
        fin(o);
    }
}

/// The settings of one STORM step.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StormParams {
    pub step_size: f64,
    pub outer_ratio: f64,
    pub eta: f64,
    pub hia_lr: f64,
    pub hia_steps: u64,
    pub hia: Hia,
}

/// The state of MRBO / SUSTAIN: iterates, the previous iterates, the two
/// recursive-momentum directions, and scratch.
#[derive(Debug, Clone)]
pub(crate) struct Storm<T, BX, BY> {
    pub x: BX,
    pub x_old: BX,
    pub dx: BX,
    pub gx: BX,
    pub gx_old: BX,
    pub cross: BX,
    pub y: BY,
    pub y_init: BY,
    pub y_old: BY,
    pub dy: BY,
    pub gy: BY,
    pub b: BY,
    pub b_old: BY,
    pub p: BY,
    pub p_old: BY,
    pub hv: BY,
    pub v: BY,
    pub v_old: BY,
    pub iter: u64,
    pub initialized: bool,
    _t: core::marker::PhantomData<T>,
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> Storm<T, BX, BY> {
    pub(crate) fn new(x0: BX, y0: BY) -> Self {
        Storm {
            x_old: zeros_like(&x0),
            dx: zeros_like(&x0),
            gx: zeros_like(&x0),
            gx_old: zeros_like(&x0),
            cross: zeros_like(&x0),
            x: x0,
            y_old: zeros_like(&y0),
            dy: zeros_like(&y0),
            gy: zeros_like(&y0),
            b: zeros_like(&y0),
            b_old: zeros_like(&y0),
            p: zeros_like(&y0),
            p_old: zeros_like(&y0),
            hv: zeros_like(&y0),
            v: zeros_like(&y0),
            v_old: zeros_like(&y0),
            y_init: y0.clone(),
            y: y0,
            iter: 0,
            initialized: false,
            _t: core::marker::PhantomData,
        }
    }

    pub(crate) fn reset(&mut self) {
        copy(self.y_init.as_ref(), self.y.as_mut());
        self.iter = 0;
        self.initialized = true;
    }

    /// The y direction: `dy ← g + (1−η)(dy − g_old)` (plain g at t = 0).
    fn lower_direction<O, R>(&mut self, oracle: &mut O, rng: &mut R, eta: T) -> O::Sample
    where
        O: LowerGradY<T>,
        R: Rng + ?Sized,
    {
        let zeta = oracle.sample(Level::Lower, rng);
        let (x, y) = (self.x.as_ref(), self.y.as_ref());
        oracle.grad_y_g(x, y, &zeta, self.gy.as_mut());
        if self.iter == 0 {
            copy(self.gy.as_ref(), self.dy.as_mut());
        } else {
            // hv is free here: it holds ∇ᵧG at the old point.
            let (xo, yo) = (self.x_old.as_ref(), self.y_old.as_ref());
            oracle.grad_y_g(xo, yo, &zeta, self.hv.as_mut());
            let k = T::ONE - eta;
            for ((d, &g), &go) in self
                .dy
                .as_mut()
                .iter_mut()
                .zip(self.gy.as_ref())
                .zip(self.hv.as_ref())
            {
                *d = g + k * (*d - go);
            }
        }
        zeta
    }

    /// One MRBO / SUSTAIN iteration (see those files for the rule).
    pub(crate) fn step<O, R>(&mut self, oracle: &mut O, rng: &mut R, c: StormParams)
    where
        O: UpperGradX<T> + UpperGradY<T> + LowerGradY<T> + LowerHvp<T> + CrossJvp<T>,
        R: Rng + ?Sized,
    {
        let t = self.iter;
        let inner_lr: T = decayed(c.step_size, 1.0 / 3.0, t);
        let outer_lr: T = decayed(c.step_size / c.outer_ratio, 1.0 / 3.0, t);
        let eta: T = decayed(c.eta, 2.0 / 3.0, t);
        let first = t == 0;
        let zeta = self.lower_direction(oracle, rng, eta);
        let xi = oracle.sample(Level::Upper, rng);
        let (x, y) = (self.x.as_ref(), self.y.as_ref());
        let (xo, yo) = (self.x_old.as_ref(), self.y_old.as_ref());
        crate::oracle::grads_f(oracle, x, y, &xi, self.gx.as_mut(), self.b.as_mut());
        if !first {
            let (gx, b) = (self.gx_old.as_mut(), self.b_old.as_mut());
            crate::oracle::grads_f(oracle, xo, yo, &xi, gx, b);
        }
        let cur = NeumannBufs {
            b: self.b.as_ref(),
            p: self.p.as_mut(),
            hv: self.hv.as_mut(),
            out: self.v.as_mut(),
        };
        // The old system's HVP scratch: gy is free after the y direction.
        let old = (!first).then(|| {
            let bufs = NeumannBufs {
                b: self.b_old.as_ref(),
                p: self.p_old.as_mut(),
                hv: self.gy.as_mut(),
                out: self.v_old.as_mut(),
            };
            (xo, yo, bufs)
        });
        let hc = (T::from_f64(c.hia_lr), c.hia_steps);
        joint_hia(oracle, rng, c.hia, hc, (x, y, cur), old);
        oracle.jvp_xy(x, y, self.v.as_ref(), &zeta, self.cross.as_mut());
        axpy(-T::ONE, self.cross.as_ref(), self.gx.as_mut());
        if first {
            copy(self.gx.as_ref(), self.dx.as_mut());
        } else {
            oracle.jvp_xy(xo, yo, self.v_old.as_ref(), &zeta, self.cross.as_mut());
            axpy(-T::ONE, self.cross.as_ref(), self.gx_old.as_mut());
            let k = T::ONE - eta;
            for ((d, &g), &go) in self
                .dx
                .as_mut()
                .iter_mut()
                .zip(self.gx.as_ref())
                .zip(self.gx_old.as_ref())
            {
                *d = eta * g + k * (*d + g - go);
            }
        }
        copy(self.x.as_ref(), self.x_old.as_mut());
        copy(self.y.as_ref(), self.y_old.as_mut());
        axpy(-inner_lr, self.dy.as_ref(), self.y.as_mut());
        axpy(-outer_lr, self.dx.as_ref(), self.x.as_mut());
        self.iter += 1;
    }
}

impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T> for Storm<T, BX, BY> {
    fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
        crate::state::visit!(self, v; reals x, x_old, dx, gx, gx_old, cross, y, y_init, y_old, dy, gy, b, b_old, p, p_old, hv, v, v_old; f64 ; u64 iter; bool initialized);
    }
}

/// The plumbing of a solver that is a [`Storm`] core plus a configuration:
/// `new`, the accessors, and the `SolverState`, `Solver` and `VisitState`
/// impls, written once for MRBO and SUSTAIN. `$params` maps the
/// configuration `c` to the step's [`StormParams`].
macro_rules! storm_solver {
    ($name:ident, $cfg:ident, |$c:ident| $params:expr) => {
        impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> $name<T, BX, BY> {
            /// Validates `cfg` and builds the solver from x_0 and y_0.
            pub fn new(cfg: $cfg, x0: BX, y0: BY) -> Result<Self, Error> {
                cfg.validate()?;
                Ok($name {
                    cfg,
                    st: Storm::new(x0, y0),
                })
            }

            /// The configuration.
            pub const fn config(&self) -> &$cfg {
                &self.cfg
            }

            /// The last hypergradient estimate at (x_t, y_t), before the momentum.
            pub fn direction(&self) -> &[T] {
                self.st.gx.as_ref()
            }

            /// The recursive-momentum x direction u_t.
            pub fn momentum(&self) -> &[T] {
                self.st.dx.as_ref()
            }

            /// The last Hessian-inverse approximation v_t.
            pub fn v(&self) -> &[T] {
                self.st.v.as_ref()
            }
        }

        impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> SolverState<T> for $name<T, BX, BY> {
            fn x(&self) -> &[T] {
                self.st.x.as_ref()
            }
            fn y(&self) -> &[T] {
                self.st.y.as_ref()
            }
            fn iter(&self) -> u64 {
                self.st.iter
            }
        }

        impl<T, BX, BY, O> Solver<T, O> for $name<T, BX, BY>
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
                check_len("x", self.st.x.as_ref().len(), oracle.dim_x())?;
                check_len("y", self.st.y.as_ref().len(), oracle.dim_y())?;
                self.st.reset();
                Ok(())
            }

            fn step<R: Rng + ?Sized>(&mut self, oracle: &mut O, rng: &mut R) -> Result<(), Error> {
                if !self.st.initialized {
                    return Err(Error::NotInitialized);
                }
                let $c = self.cfg;
                self.st.step(oracle, rng, $params);
                Ok(())
            }
        }

        impl<T: Real, BX: Buffer<T>, BY: Buffer<T>> crate::state::VisitState<T>
            for $name<T, BX, BY>
        {
            fn visit_state(&mut self, v: &mut dyn crate::state::StateVisitor<T>) {
                self.st.visit_state(v);
            }
        }
    };
}
pub(crate) use storm_solver;
