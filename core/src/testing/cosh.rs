//! An upper level with unbounded smoothness.

use rand_core::Rng;

use super::add_noise;
use crate::kernels::{axpy, copy, fill, scale};
use crate::oracle::{
    CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, LowerValue, Oracle, UpperGradX, UpperGradY,
    UpperValue,
};
use crate::Real;

/// A bilevel problem whose upper level grows like cosh: (L0, L1)-smooth
/// (‖∇²‖ ≤ L0 + L1‖∇‖) but not Lipschitz smooth.
///
/// ```text
/// g(x, y) = ½‖y‖² − xᵀy                      y*(x) = x,  μ = 1
/// f(x, y) = Σᵢ cosh(yᵢ) + ½‖x − t‖²          Φ(x) = Σᵢ cosh(xᵢ) + ½‖x − t‖²
/// ∇Φ(x)   = sinh(x) + x − t
/// ```
/// Φ''(x) = cosh(x) + 1 ≤ 2 + |Φ'(x) + t − x|, so the local smoothness grows
/// with the gradient. From x₀ = 8 a plain step of size 0.1 overshoots by
/// sinh(8)/10 ≈ 149 and then overflows; a normalised step moves 0.1 at a time.
///
/// Every coordinate has the same target `t`; the minimiser solves
/// sinh(x) + x = t, see [`CoshUpper::x_star`].
#[derive(Debug, Clone, Copy)]
pub struct CoshUpper<T> {
    d: usize,
    t: T,
    sigma: T,
}

impl<T: Real> CoshUpper<T> {
    /// Dimension `d`, target `t`, oracle noise σ.
    pub fn new(d: usize, t: T, sigma: T) -> Self {
        CoshUpper { d, t, sigma }
    }

    /// The minimiser's common coordinate: the root of sinh(x) + x = t (Newton,
    /// in f64).
    pub fn x_star(&self) -> f64 {
        let t = self.t.to_f64();
        let mut x = libm::asinh(t) * 0.5;
        for _ in 0..60 {
            let fx = libm::sinh(x) + x - t;
            x -= fx / (libm::cosh(x) + 1.0);
        }
        x
    }

    /// Φ(x).
    pub fn phi(&self, x: &[T]) -> f64 {
        let t = self.t.to_f64();
        x.iter()
            .map(|&v| {
                let v = v.to_f64();
                libm::cosh(v) + 0.5 * (v - t) * (v - t)
            })
            .sum()
    }

    /// ‖∇Φ(x)‖.
    pub fn grad_phi_norm(&self, x: &[T]) -> f64 {
        let t = self.t.to_f64();
        libm::sqrt(
            x.iter()
                .map(|&v| {
                    let v = v.to_f64();
                    let g = libm::sinh(v) + v - t;
                    g * g
                })
                .sum(),
        )
    }
}

fn sinh<T: Real>(v: T) -> T {
    let e = v.exp();
    (e - T::ONE / e) * T::from_f64(0.5)
}

impl<T: Real> Oracle<T> for CoshUpper<T> {
    /// A noise seed.
    type Sample = u64;
    fn dim_x(&self) -> usize {
        self.d
    }
    fn dim_y(&self) -> usize {
        self.d
    }
    fn sample<R: Rng + ?Sized>(&mut self, _level: Level, rng: &mut R) -> u64 {
        rng.next_u64()
    }
}

impl<T: Real> LowerGradY<T> for CoshUpper<T> {
    fn grad_y_g(&mut self, x: &[T], y: &[T], s: &u64, out: &mut [T]) {
        copy(y, out);
        axpy(-T::ONE, x, out);
        add_noise(out, self.sigma, *s, 3);
    }
}

impl<T: Real> LowerGradX<T> for CoshUpper<T> {
    fn grad_x_g(&mut self, _x: &[T], y: &[T], s: &u64, out: &mut [T]) {
        copy(y, out);
        scale(-T::ONE, out);
        add_noise(out, self.sigma, *s, 4);
    }
}

impl<T: Real> LowerHvp<T> for CoshUpper<T> {
    fn hvp_yy(&mut self, _x: &[T], _y: &[T], v: &[T], s: &u64, out: &mut [T]) {
        copy(v, out);
        add_noise(out, self.sigma, *s, 5);
    }
}

impl<T: Real> CrossJvp<T> for CoshUpper<T> {
    fn jvp_xy(&mut self, _x: &[T], _y: &[T], v: &[T], s: &u64, out: &mut [T]) {
        copy(v, out);
        scale(-T::ONE, out);
        add_noise(out, self.sigma, *s, 6);
    }
}

impl<T: Real> UpperGradY<T> for CoshUpper<T> {
    fn grad_y_f(&mut self, _x: &[T], y: &[T], s: &u64, out: &mut [T]) {
        for (o, &v) in out.iter_mut().zip(y) {
            *o = sinh(v);
        }
        add_noise(out, self.sigma, *s, 2);
    }
}

impl<T: Real> UpperGradX<T> for CoshUpper<T> {
    fn grad_x_f(&mut self, x: &[T], _y: &[T], s: &u64, out: &mut [T]) {
        fill(out, -self.t);
        axpy(T::ONE, x, out);
        add_noise(out, self.sigma, *s, 1);
    }
}

impl<T: Real> UpperValue<T> for CoshUpper<T> {
    fn f_value(&mut self, x: &[T], y: &[T], _s: &u64) -> T {
        let half = T::from_f64(0.5);
        let mut s = T::ZERO;
        for (&xi, &yi) in x.iter().zip(y) {
            let e = yi.exp();
            s += (e + T::ONE / e) * half + half * (xi - self.t) * (xi - self.t);
        }
        s
    }
}

impl<T: Real> LowerValue<T> for CoshUpper<T> {
    fn g_value(&mut self, x: &[T], y: &[T], _s: &u64) -> T {
        let half = T::from_f64(0.5);
        let mut s = T::ZERO;
        for (&xi, &yi) in x.iter().zip(y) {
            s += half * yi * yi - xi * yi;
        }
        s
    }
}
