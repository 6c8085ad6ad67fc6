//! Dense matrix products on row-major slices, through `ndarray`'s
//! `general_mat_mul` (which calls the tuned `matrixmultiply` kernels for
//! `f32` and `f64`).
//!
//! Every matrix is a row-major slice with an explicit shape; a transposed
//! operand is a transposed view, never a copy. Results are deterministic:
//! a large product is cut into blocks of [`COL_BLOCK`] output columns that
//! run in parallel, and the cut depends on the shape only, never on the
//! number of threads, so each entry's summation order is fixed.

use bilevel_core::Real;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView2, ArrayViewMut2, Axis, LinalgScalar};
use rayon::prelude::*;

/// Output columns per unit of parallel work inside one product.
const COL_BLOCK: usize = 128;
/// Products with fewer multiply-adds than this run on one thread.
const PAR_WORK: usize = 1 << 18;

/// The scalar type of the RNN backend: a core [`Real`] that `ndarray` can
/// multiply (`f32` and `f64`), with the activation functions the model
/// uses.
pub trait Scalar: Real + LinalgScalar {
    /// The hyperbolic tangent used by the model's cells and head. For `f64`
    /// it is `libm`'s (the accuracy reference, used by the finite-difference
    /// tests); for `f32` a vectorisable rational approximation accurate to
    /// an absolute error below 1e-6 (Eigen's rational approximation).
    #[must_use]
    fn act_tanh(self) -> Self;
    /// The logistic function σ(x) = 1/(1 + e⁻ˣ) of the LSTM gates, written
    /// as (1 + tanh(x/2))/2 through [`Scalar::act_tanh`].
    #[must_use]
    fn act_sigmoid(self) -> Self;
}

impl Scalar for f64 {
    #[inline]
    fn act_tanh(self) -> Self {
        libm::tanh(self)
    }
    #[inline]
    fn act_sigmoid(self) -> Self {
        0.5 + 0.5 * libm::tanh(0.5 * self)
    }
}

impl Scalar for f32 {
    #[inline]
    fn act_tanh(self) -> Self {
        fast_tanh_f32(self)
    }
    #[inline]
    fn act_sigmoid(self) -> Self {
        0.5 + 0.5 * fast_tanh_f32(0.5 * self)
    }
}

/// tanh for `f32` as a 13/6-degree rational function on [−7.9053, 7.9053]
/// (beyond it tanh rounds to ±1 in `f32`), the coefficients of Eigen's
/// `generic_fast_tanh_float`. Branch-free apart from the clamp, so loops
/// over it vectorise; the error is below 1e-6 everywhere (tested).
#[inline]
pub fn fast_tanh_f32(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_6e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = x2 * A13 + A11;
    let p = x2 * p + A9;
    let p = x2 * p + A7;
    let p = x2 * p + A5;
    let p = x2 * p + A3;
    let p = x2 * p + A1;
    let p = x * p;
    let q = x2 * B6 + B4;
    let q = x2 * q + B2;
    let q = x2 * q + B0;
    p / q
}

/// A row-major matrix operand: `rows × cols` values of `data`, optionally
/// used transposed.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    trans: bool,
}

impl<'a, T: Scalar> Mat<'a, T> {
    /// The matrix stored row-major in `data` (`rows × cols`).
    pub(crate) fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        debug_assert_eq!(data.len(), rows * cols);
        Mat {
            data,
            rows,
            cols,
            trans: false,
        }
    }

    /// The same storage, used transposed.
    pub(crate) fn t(self) -> Self {
        Mat {
            trans: !self.trans,
            ..self
        }
    }

    fn view(&self) -> ArrayView2<'a, T> {
        let v = ArrayView2::from_shape((self.rows, self.cols), self.data)
            .expect("matrix shape matches its storage");
        if self.trans {
            v.reversed_axes()
        } else {
            v
        }
    }
}

/// `c ← beta·c + a·b` where `c` is row-major `m × n`; `beta` is 0 (overwrite)
/// or 1 (accumulate).
pub(crate) fn gemm<T: Scalar>(a: Mat<'_, T>, b: Mat<'_, T>, c: &mut [T], accumulate: bool) {
    let av = a.view();
    let bv = b.view();
    let (m, k) = av.dim();
    let (k2, n) = bv.dim();
    assert_eq!(k, k2, "inner dimensions of a product");
    if m == 0 || n == 0 {
        return;
    }
    let mut cv = ArrayViewMut2::from_shape((m, n), &mut c[..m * n])
        .expect("output shape matches its storage");
    let beta = if accumulate { T::ONE } else { T::ZERO };
    if k == 0 {
        if !accumulate {
            cv.fill(T::ZERO);
        }
        return;
    }
    if n >= 2 * COL_BLOCK && m * n * k >= PAR_WORK {
        let blocks: Vec<_> = bv
            .axis_chunks_iter(Axis(1), COL_BLOCK)
            .zip(cv.axis_chunks_iter_mut(Axis(1), COL_BLOCK))
            .collect();
        blocks.into_par_iter().for_each(|(b, mut c)| {
            general_mat_mul(T::ONE, &av, &b, beta, &mut c);
        });
    } else {
        general_mat_mul(T::ONE, &av, &bv, beta, &mut cv);
    }
}

/// Adds the column sums of the row-major `rows × cols` matrix `a` to `out`
/// (rows summed in order).
pub(crate) fn add_col_sums<T: Scalar>(a: &[T], cols: usize, out: &mut [T]) {
    for row in a.chunks_exact(cols) {
        for (o, &x) in out.iter_mut().zip(row) {
            *o += x;
        }
    }
}

/// Adds `bias` to every row of the row-major matrix `a`.
pub(crate) fn add_row_bias<T: Scalar>(a: &mut [T], bias: &[T]) {
    for row in a.chunks_exact_mut(bias.len()) {
        for (x, &b) in row.iter_mut().zip(bias) {
            *x += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_tanh_is_accurate_and_odd() {
        let mut worst = 0.0_f64;
        for k in -200_000..=200_000 {
            let x = k as f32 * 1e-4;
            let e = (f64::from(fast_tanh_f32(x)) - f64::from(x).tanh()).abs();
            worst = worst.max(e);
            assert_eq!(fast_tanh_f32(-x).to_bits(), (-fast_tanh_f32(x)).to_bits());
        }
        assert!(worst < 1e-6, "max error {worst:e}");
        assert!((fast_tanh_f32(1e4) - 1.0).abs() < 1e-6);
        assert!((f64::from(0.3_f32.act_sigmoid()) - 1.0 / (1.0 + (-0.3_f64).exp())).abs() < 1e-6);
    }

    #[test]
    fn products_match_the_naive_loop() {
        // a: 2×3, b: 3×2 (given as its transpose, 2×3).
        let a = [1.0_f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bt = [1.0_f64, 0.0, -1.0, 2.0, 1.0, 0.5];
        let mut c = [10.0_f64; 4];
        gemm(Mat::new(&a, 2, 3), Mat::new(&bt, 2, 3).t(), &mut c, false);
        let want = [-2.0, 5.5, -2.0, 16.0];
        for (x, w) in c.iter().zip(want) {
            assert!((x - w).abs() < 1e-12, "{c:?}");
        }
        gemm(Mat::new(&a, 2, 3), Mat::new(&bt, 2, 3).t(), &mut c, true);
        for (x, w) in c.iter().zip(want) {
            assert!((x - 2.0 * w).abs() < 1e-12, "{c:?}");
        }
        // aᵀ·a is 3×3.
        let mut ata = [0.0_f64; 9];
        gemm(Mat::new(&a, 2, 3).t(), Mat::new(&a, 2, 3), &mut ata, false);
        assert!((ata[0] - 17.0).abs() < 1e-12 && (ata[8] - 45.0).abs() < 1e-12);
    }
}
