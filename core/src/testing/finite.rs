//! A finite-sum version of a [`Quadratic`] instance, for SAGA-type methods
//! ([`FiniteSum`]).

use rand_core::Rng;

use super::{add_noise, Quadratic};
use crate::oracle::{
    CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, Oracle, UpperGradX, UpperGradY,
};
use crate::solver::{Buffer, FiniteSum};
use crate::{random, OracleKind, Real};

/// `n` samples per level; sample i's oracles are the exact quadratic's plus a
/// fixed noise vector σ·ε_{i,kind}, with antithetic pairs (sample i + n/2
/// carries −ε_i), so the finite sum's average is exactly the noise-free
/// instance and x* is unchanged. `n` is even (odd `n` is rounded up).
#[derive(Debug, Clone)]
pub struct FiniteQuadratic<T, S> {
    inner: Quadratic<T, S>,
    n: usize,
    sigma: T,
    seed: u64,
}

impl<T: Real, S: Buffer<T>> FiniteQuadratic<T, S> {
    /// Wraps `q` (its own noise is switched off) with `n` samples of noise
    /// level `sigma`; `seed` fixes the noise vectors.
    pub fn new(q: Quadratic<T, S>, n: usize, sigma: f64, seed: u64) -> Self {
        let n = n.max(2).div_ceil(2) * 2;
        FiniteQuadratic {
            inner: q.with_sigma(T::ZERO),
            n,
            sigma: T::from_f64(sigma),
            seed,
        }
    }

    /// The noise-free instance.
    pub fn inner(&self) -> &Quadratic<T, S> {
        &self.inner
    }

    fn noise(&self, out: &mut [T], i: usize, kind: OracleKind) {
        let half = self.n / 2;
        let pair = (i % half) as u64;
        let seed = random::mix64(self.seed ^ pair.wrapping_mul(0xa076_1d64_78bd_642f));
        if i < half {
            add_noise(out, self.sigma, seed, kind as u64 + 1);
        } else {
            // out − σε = −((−out) + σε).
            for o in out.iter_mut() {
                *o = -*o;
            }
            add_noise(out, self.sigma, seed, kind as u64 + 1);
            for o in out.iter_mut() {
                *o = -*o;
            }
        }
    }
}

impl<T: Real, S: Buffer<T>> Oracle<T> for FiniteQuadratic<T, S> {
    /// The sample index.
    type Sample = usize;
    fn dim_x(&self) -> usize {
        self.inner.dim_x()
    }
    fn dim_y(&self) -> usize {
        self.inner.dim_y()
    }
    fn sample<R: Rng + ?Sized>(&mut self, _level: Level, rng: &mut R) -> usize {
        random::below(rng, self.n as u64) as usize
    }
}

impl<T: Real, S: Buffer<T>> FiniteSum<T> for FiniteQuadratic<T, S> {
    fn count(&self, _level: Level) -> usize {
        self.n
    }
    fn sample_at(&mut self, _level: Level, i: usize) -> usize {
        i
    }
}

macro_rules! finite_grad {
    ($tr:ident, $method:ident, $kind:ident) => {
        impl<T: Real, S: Buffer<T>> $tr<T> for FiniteQuadratic<T, S> {
            fn $method(&mut self, x: &[T], y: &[T], s: &usize, out: &mut [T]) {
                self.inner.$method(x, y, &0, out);
                self.noise(out, *s, OracleKind::$kind);
            }
        }
    };
}
macro_rules! finite_product {
    ($tr:ident, $method:ident, $kind:ident) => {
        impl<T: Real, S: Buffer<T>> $tr<T> for FiniteQuadratic<T, S> {
            fn $method(&mut self, x: &[T], y: &[T], v: &[T], s: &usize, out: &mut [T]) {
                self.inner.$method(x, y, v, &0, out);
                self.noise(out, *s, OracleKind::$kind);
            }
        }
    };
}
finite_grad!(UpperGradX, grad_x_f, GradXF);
finite_grad!(UpperGradY, grad_y_f, GradYF);
finite_grad!(LowerGradY, grad_y_g, GradYG);
finite_grad!(LowerGradX, grad_x_g, GradXG);
finite_product!(LowerHvp, hvp_yy, HvpYY);
finite_product!(CrossJvp, jvp_xy, JvpXY);
