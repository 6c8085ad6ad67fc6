//! The MAML/FOMAML/UFOM toy of `algorithms.md` §7.5 (after the UFOM
//! repository's `toy/toy.py`), as a task-structured oracle.
//!
//! Tasks i ∈ {1, 2} with equal probability; each task's loss is
//! L_i(φ) = (a_i/2)(φ − c_i)² with a = (0.5, 1.5) and c = (0, 20/3) (the
//! toy's quadratic region; its cubic/linear extension beyond |φ − c_i| > 400
//! never matters). One sample is one task; the support loss G(x, φ; i) and
//! the query loss F(x, φ; i) are both L_i(φ), and x enters neither (the meta
//! parameter is only the starting point of adaptation), so every x-gradient
//! and the cross term are zero.
//!
//! With r = 10 inner steps of α = 0.01: θ*_MAML = 4.734988791597645 (exact
//! meta-gradient) and θ*_FOMAML = 4.870578066330365 (first-order bias).

use rand_core::Rng;

use crate::kernels::fill;
use crate::oracle::{
    CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, LowerValue, Oracle, UpperGradX, UpperGradY,
    UpperValue,
};
use crate::{random, Real};

/// Curvatures a_i of the two tasks.
pub const META_A: [f64; 2] = [0.5, 1.5];
/// Minimisers c_i = b_i/a_i of the two tasks, b = (0, 10).
pub const META_C: [f64; 2] = [0.0, 20.0 / 3.0];
/// The exact-meta-gradient fixed point for r = 10, α = 0.01.
pub const THETA_MAML: f64 = 4.734_988_791_597_645;
/// The first-order (FOMAML) fixed point for r = 10, α = 0.01.
pub const THETA_FOMAML: f64 = 4.870_578_066_330_365;

/// The two-task toy (or one of its tasks alone, for exact per-task values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaToy {
    only: Option<u8>,
}

impl MetaToy {
    /// Tasks 1 and 2 with equal probability.
    pub const fn new() -> Self {
        MetaToy { only: None }
    }

    /// Only task `i` (1 or 2; anything else is task 2).
    pub const fn single(i: u8) -> Self {
        MetaToy {
            only: Some(if i == 1 { 0 } else { 1 }),
        }
    }

    fn grad<T: Real>(task: u8, y: T) -> T {
        let i = usize::from(task);
        T::from_f64(META_A[i]) * (y - T::from_f64(META_C[i]))
    }

    fn value<T: Real>(task: u8, y: T) -> T {
        let i = usize::from(task);
        let d = y - T::from_f64(META_C[i]);
        T::from_f64(0.5 * META_A[i]) * d * d
    }
}

impl Default for MetaToy {
    fn default() -> Self {
        MetaToy::new()
    }
}

impl<T: Real> Oracle<T> for MetaToy {
    /// The task index (0 for task 1, 1 for task 2).
    type Sample = u8;
    fn dim_x(&self) -> usize {
        1
    }
    fn dim_y(&self) -> usize {
        1
    }
    fn sample<R: Rng + ?Sized>(&mut self, _level: Level, rng: &mut R) -> u8 {
        self.only.unwrap_or_else(|| random::below(rng, 2) as u8)
    }
}

impl<T: Real> LowerGradY<T> for MetaToy {
    fn grad_y_g(&mut self, _x: &[T], y: &[T], s: &u8, out: &mut [T]) {
        out[0] = Self::grad(*s, y[0]);
    }
}

impl<T: Real> UpperGradY<T> for MetaToy {
    fn grad_y_f(&mut self, _x: &[T], y: &[T], s: &u8, out: &mut [T]) {
        out[0] = Self::grad(*s, y[0]);
    }
}

impl<T: Real> LowerHvp<T> for MetaToy {
    fn hvp_yy(&mut self, _x: &[T], _y: &[T], v: &[T], s: &u8, out: &mut [T]) {
        out[0] = T::from_f64(META_A[usize::from(*s)]) * v[0];
    }
}

impl<T: Real> UpperGradX<T> for MetaToy {
    fn grad_x_f(&mut self, _x: &[T], _y: &[T], _s: &u8, out: &mut [T]) {
        fill(out, T::ZERO);
    }
}

impl<T: Real> LowerGradX<T> for MetaToy {
    fn grad_x_g(&mut self, _x: &[T], _y: &[T], _s: &u8, out: &mut [T]) {
        fill(out, T::ZERO);
    }
}

impl<T: Real> CrossJvp<T> for MetaToy {
    fn jvp_xy(&mut self, _x: &[T], _y: &[T], _v: &[T], _s: &u8, out: &mut [T]) {
        fill(out, T::ZERO);
    }
}

impl<T: Real> UpperValue<T> for MetaToy {
    fn f_value(&mut self, _x: &[T], y: &[T], s: &u8) -> T {
        Self::value(*s, y[0])
    }
}

impl<T: Real> LowerValue<T> for MetaToy {
    fn g_value(&mut self, _x: &[T], y: &[T], s: &u8) -> T {
        Self::value(*s, y[0])
    }
}
