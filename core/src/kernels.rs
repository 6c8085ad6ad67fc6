//! Slice kernels shared by every solver.
//!
//! Every reduction (inner products, norms, distances, the rows of a
//! matrix–vector product) runs in one fixed order, the same on every platform
//! and at every call, so results are the same bits everywhere:
//!
//! * [`LANES`] = 16 partial sums; entry `i` goes to lane `i mod 16`, and each
//!   lane adds its entries in increasing `i`, starting from `+0.0`;
//! * the lanes are then combined in a fixed halving tree: lane `k` += lane
//!   `k + 8` for `k < 8`, then `k + 4` for `k < 4`, then `k + 2`, then `k + 1`;
//!   lane 0 is the result.
//!
//! The lanes are independent chains, so on x86_64 LLVM keeps them in vector
//! registers (two, four or eight lanes per register) and the adds no longer
//! wait on each other; on a scalar FPU (the Cortex-M4F) the same code runs
//! lane by lane and computes the same IEEE operations in the same order. There
//! is no FMA contraction (Rust never fuses `a * b + c` on its own) and no
//! runtime dispatch (the order would not depend on the vector width, but a
//! `no_std` crate cannot detect CPU features; `docs/decisions.md` 47).

use crate::Real;

/// `y ← y + a·x`.
#[inline]
pub fn axpy<T: Real>(a: T, x: &[T], y: &mut [T]) {
    debug_assert_eq!(x.len(), y.len());
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `out ← a·x + b·y`.
#[inline]
pub fn lincomb<T: Real>(a: T, x: &[T], b: T, y: &[T], out: &mut [T]) {
    debug_assert_eq!(x.len(), out.len());
    debug_assert_eq!(y.len(), out.len());
    for ((o, &xi), &yi) in out.iter_mut().zip(x).zip(y) {
        *o = a * xi + b * yi;
    }
}

/// `x ← a·x`.
#[inline]
pub fn scale<T: Real>(a: T, x: &mut [T]) {
    for xi in x {
        *xi *= a;
    }
}

/// Sets every entry to `v`.
#[inline]
pub fn fill<T: Real>(x: &mut [T], v: T) {
    for xi in x {
        *xi = v;
    }
}

/// `dst ← src`.
#[inline]
pub fn copy<T: Real>(src: &[T], dst: &mut [T]) {
    dst.copy_from_slice(src);
}

/// Number of independent partial sums in every reduction (see the module
/// documentation for the order).
pub const LANES: usize = 16;

/// Adds `term(x[i], y[i])` into the lanes in the fixed order of the module
/// documentation (over the common length of `x` and `y`) and combines them.
// Inlined into each public kernel so that `term` is inlined too and the lane
// loop vectorises (and, at the firmware's `opt-level = "s"`, is not a call).
#[allow(clippy::inline_always)]
#[inline(always)]
fn reduce<T: Real>(x: &[T], y: &[T], term: impl Fn(T, T) -> T) -> T {
    let n = x.len().min(y.len());
    let (xc, xt) = x[..n].as_chunks::<LANES>();
    let (yc, yt) = y[..n].as_chunks::<LANES>();
    let mut acc = [T::ZERO; LANES];
    for (a, b) in xc.iter().zip(yc) {
        for k in 0..LANES {
            acc[k] += term(a[k], b[k]);
        }
    }
    for ((s, &a), &b) in acc.iter_mut().zip(xt).zip(yt) {
        *s += term(a, b);
    }
    combine(&mut acc)
}

/// The fixed halving tree over the lanes: lane `k` += lane `k + w` for
/// `w` = 8, 4, 2, 1 and `k < w`.
#[allow(clippy::inline_always)] // part of `reduce`'s body, see there
#[inline(always)]
fn combine<T: Real>(acc: &mut [T; LANES]) -> T {
    let mut w = LANES / 2;
    while w > 0 {
        for k in 0..w {
            acc[k] += acc[k + w];
        }
        w /= 2;
    }
    acc[0]
}

/// Inner product `⟨x, y⟩`, in the fixed lane order of the module
/// documentation.
#[inline]
pub fn dot<T: Real>(x: &[T], y: &[T]) -> T {
    debug_assert_eq!(x.len(), y.len());
    reduce(x, y, |a, b| a * b)
}

/// Squared Euclidean norm, `⟨x, x⟩` in the same lane order.
#[inline]
pub fn norm2sq<T: Real>(x: &[T]) -> T {
    dot(x, x)
}

/// Euclidean norm.
#[inline]
pub fn norm<T: Real>(x: &[T]) -> T {
    norm2sq(x).sqrt()
}

/// Euclidean distance `‖x − y‖`: the square root of the lane-ordered sum of
/// `(xᵢ − yᵢ)²`.
#[inline]
pub fn dist<T: Real>(x: &[T], y: &[T]) -> T {
    debug_assert_eq!(x.len(), y.len());
    reduce(x, y, |a, b| {
        let d = a - b;
        d * d
    })
    .sqrt()
}

/// `true` when every entry is finite.
#[inline]
pub fn all_finite<T: Real>(x: &[T]) -> bool {
    x.iter().all(|v| v.is_finite())
}

/// Projects `u` onto the Euclidean ball of radius `r` around `c`:
/// `u ← c + (u − c)·min(1, r/‖u − c‖)`. An infinite radius leaves `u` unchanged.
#[inline]
pub fn project_ball<T: Real>(u: &mut [T], c: &[T], r: T) {
    if !r.is_finite() {
        return;
    }
    let d = dist(u, c);
    if d > r {
        let s = r / d;
        for (ui, &ci) in u.iter_mut().zip(c) {
            *ui = ci + (*ui - ci) * s;
        }
    }
}

/// Dense row-major matrix–vector product `out ← M·v` with `M` of shape
/// `out.len() × v.len()`; each entry is the [`dot`] of a row with `v`.
#[inline]
pub fn matvec<T: Real>(m: &[T], v: &[T], out: &mut [T]) {
    let cols = v.len();
    debug_assert_eq!(m.len(), out.len() * cols);
    if cols == 0 {
        // No columns: every row's sum is empty (and `chunks_exact(0)` panics).
        fill(out, T::ZERO);
        return;
    }
    for (o, row) in out.iter_mut().zip(m.chunks_exact(cols)) {
        *o = dot(row, v);
    }
}

/// Dense row-major transposed product `out ← Mᵀ·v` with `M` of shape
/// `v.len() × out.len()`.
#[inline]
pub fn matvec_t<T: Real>(m: &[T], v: &[T], out: &mut [T]) {
    let cols = out.len();
    debug_assert_eq!(m.len(), v.len() * cols);
    fill(out, T::ZERO);
    if cols == 0 {
        return;
    }
    for (&vi, row) in v.iter().zip(m.chunks_exact(cols)) {
        axpy(vi, row, out);
    }
}

/// `out ← out + M·v`, with `M` row-major of shape `out.len() × v.len()`:
/// each entry adds the [`dot`] of a row with `v`.
#[inline]
pub fn matvec_add<T: Real>(m: &[T], v: &[T], out: &mut [T]) {
    let cols = v.len();
    debug_assert_eq!(m.len(), out.len() * cols);
    if cols == 0 {
        // No columns: nothing to add (and `chunks_exact(0)` panics).
        return;
    }
    for (o, row) in out.iter_mut().zip(m.chunks_exact(cols)) {
        *o += dot(row, v);
    }
}

/// `out ← out + Mᵀ·v`, with `M` row-major of shape `v.len() × out.len()`.
#[inline]
pub fn matvec_t_add<T: Real>(m: &[T], v: &[T], out: &mut [T]) {
    let cols = out.len();
    debug_assert_eq!(m.len(), v.len() * cols);
    if cols == 0 {
        return;
    }
    for (&vi, row) in v.iter().zip(m.chunks_exact(cols)) {
        axpy(vi, row, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    fn same(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_relative_eq!(*x, *y, epsilon = 1e-15);
        }
    }

    #[test]
    fn projection_lands_on_the_sphere() {
        let mut u = [3.0_f64, 4.0];
        project_ball(&mut u, &[0.0, 0.0], 1.0);
        assert_relative_eq!(u[0], 0.6, epsilon = 1e-15);
        assert_relative_eq!(u[1], 0.8, epsilon = 1e-15);
        let mut inside = [0.1_f64, 0.1];
        project_ball(&mut inside, &[0.0, 0.0], 1.0);
        assert_relative_eq!(inside[0], 0.1);
        project_ball(&mut u, &[0.0, 0.0], f64::INFINITY);
        assert_relative_eq!(u[1], 0.8);
    }

    #[test]
    fn matvec_and_transpose_agree_with_hand_values() {
        let m = [1.0_f64, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 × 3
        let mut out = [0.0; 2];
        matvec(&m, &[1.0, 0.0, -1.0], &mut out);
        same(&out, &[-2.0, -2.0]);
        let mut out_t = [0.0; 3];
        matvec_t(&m, &[1.0, -1.0], &mut out_t);
        same(&out_t, &[-3.0, -3.0, -3.0]);
    }

    #[test]
    fn norms_and_combinations() {
        assert_relative_eq!(norm(&[3.0_f32, 4.0]), 5.0);
        assert_relative_eq!(dist(&[1.0_f64, 1.0], &[4.0, 5.0]), 5.0);
        let mut y = [1.0_f64, 1.0];
        axpy(2.0, &[1.0, -1.0], &mut y);
        same(&y, &[3.0, -1.0]);
        let mut o = [0.0_f64; 2];
        lincomb(2.0, &[1.0, 2.0], -1.0, &[1.0, 1.0], &mut o);
        same(&o, &[1.0, 3.0]);
        assert!(!all_finite(&[1.0, f64::NAN]));
    }
}
