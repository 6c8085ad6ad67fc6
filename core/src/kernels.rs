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
//! is no FMA contraction (Rust never fuses `a * b + c` on its own).
//!
//! On x86_64 the matrix–vector products also have a build of the same loops
//! for AVX2 (`pulp`'s safe runtime dispatch, detected once and cached), used
//! when the CPU has it and the matrix has at least 256 entries: four `f64` or
//! eight `f32` lanes per register instead of two or four, the same IEEE
//! operations on the same lanes in the same order, so the same bits
//! (`docs/decisions.md` 74). In that build the row sums of a product run
//! four `f32` or two `f64` rows side by side in explicit AVX2 registers
//! (each row in its own sixteen lanes, the same order, so the same bits;
//! decision 119), and the transposed products add four
//! rows per sweep over `out` (`oⱼ ← (((oⱼ + a₀m₀ⱼ) + a₁m₁ⱼ) + a₂m₂ⱼ) + a₃m₃ⱼ`,
//! the additions of four row-by-row passes in their order) and
//! [`matvec_add_t_add`] reads its matrix once for both products.
//! [`set_wide`] switches the AVX2 build off and on (for tests and benches);
//! other targets, the Cortex-M4F among them, compile only the portable loops.

use crate::Real;

/// The AVX2 build of the product loops (x86_64 only; see the module
/// documentation).
#[cfg(target_arch = "x86_64")]
pub(crate) mod wide {
    use core::sync::atomic::{AtomicBool, Ordering};

    /// Cleared by [`super::set_wide`]`(false)`.
    pub(super) static ENABLED: AtomicBool = AtomicBool::new(true);

    /// Matrices with fewer entries take the portable loops (the dispatch
    /// costs a call and an atomic load; both compute the same bits).
    const MIN_ENTRIES: usize = 256;

    /// Runs `f` compiled for AVX2 (with `f`'s callees inlined) when enabled,
    /// `entries` ≥ [`MIN_ENTRIES`] and the CPU has AVX2 (pulp's V3 level,
    /// detected once and cached); returns whether it ran.
    #[allow(clippy::inline_always)] // `f` must be inlined into the AVX2 function
    #[inline(always)]
    pub(super) fn run(entries: usize, f: impl FnOnce(pulp::x86::V3)) -> bool {
        if entries < MIN_ENTRIES || !ENABLED.load(Ordering::Relaxed) {
            return false;
        }
        let Some(simd) = pulp::x86::V3::try_new() else {
            return false;
        };
        simd.vectorize(|| f(simd));
        true
    }

    /// `$name::<R>(simd, rows, v)`: the row sums `⟨rowsᵣ, v⟩` of `R` rows
    /// side by side in explicit AVX2 registers of `$w` lanes, each row in
    /// its own [`super::LANES`] partial sums in `reduce`'s order (register
    /// `q` of a row holds lanes `q·$w .. q·$w + $w`; entry `i` goes to lane
    /// `i mod 16`, in increasing `i`; a `vmulp` then a `vaddp`, no FMA),
    /// the tail of `n mod 16` entries into the first lanes, then the
    /// halving tree: the bits of `dot` for each row.
    macro_rules! dot_rows {
        ($name:ident, $t:ty, $w:literal, $splat:ident, $add:ident, $mul:ident) => {
            #[allow(clippy::inline_always)] // inlined into the AVX2 function
            #[inline(always)]
            pub(crate) fn $name<const R: usize>(
                simd: pulp::x86::V3,
                rows: [&[$t]; R],
                v: &[$t],
            ) -> [$t; R] {
                use pulp::Simd;
                const REGS: usize = super::LANES / $w;
                let n = v.len();
                let (vc, vt) = v.as_chunks::<{ super::LANES }>();
                let head = vc.len() * super::LANES;
                let chunks: [&[[$t; super::LANES]]; R] =
                    core::array::from_fn(|r| rows[r][..head].as_chunks().0);
                let mut acc = [[simd.$splat(0.0); REGS]; R];
                for (c, x) in vc.iter().enumerate() {
                    let x: [[$t; $w]; REGS] = pulp::cast(*x);
                    for r in 0..R {
                        let a: [[$t; $w]; REGS] = pulp::cast(chunks[r][c]);
                        for q in 0..REGS {
                            let p = simd.$mul(pulp::cast(a[q]), pulp::cast(x[q]));
                            acc[r][q] = simd.$add(acc[r][q], p);
                        }
                    }
                }
                let mut out = [0.0; R];
                for ((o, a), row) in out.iter_mut().zip(acc).zip(rows) {
                    let mut s: [$t; super::LANES] = pulp::cast(a);
                    for ((s, &m), &x) in s.iter_mut().zip(&row[head..n]).zip(vt) {
                        *s += m * x;
                    }
                    *o = super::combine(&mut s);
                }
                out
            }
        };
    }
    dot_rows!(dot_rows_f32, f32, 8, splat_f32s, add_f32s, mul_f32s);
    dot_rows!(dot_rows_f64, f64, 4, splat_f64s, add_f64s, mul_f64s);

    /// Whether [`run`] would run a large product in the AVX2 build.
    pub(super) fn active() -> bool {
        ENABLED.load(Ordering::Relaxed) && pulp::x86::V3::try_new().is_some()
    }
}

/// Enables (the default) or disables the AVX2 build of the matrix–vector
/// products on x86_64. Both compute the same bits (`docs/decisions.md` 74);
/// this exists so that tests can compare them and benches can time them side
/// by side. It affects every thread.
#[cfg(target_arch = "x86_64")]
pub fn set_wide(enabled: bool) {
    wide::ENABLED.store(enabled, core::sync::atomic::Ordering::Relaxed);
}

/// Whether the matrix–vector products with at least 256 entries currently
/// run in the AVX2 build (enabled by [`set_wide`] and supported by the CPU).
#[cfg(target_arch = "x86_64")]
pub fn wide_active() -> bool {
    wide::active()
}

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
    #[cfg(target_arch = "x86_64")]
    if wide::run(m.len(), |simd| rows_set(simd, m, v, out)) {
        return;
    }
    for (o, row) in out.iter_mut().zip(m.chunks_exact(cols)) {
        *o = dot(row, v);
    }
}

/// Rows per group of the AVX2 row sums ([`Real::v3_dot_rows`]): four
/// `f32` rows (eight `ymm` accumulators) or two `f64` rows (also eight),
/// which with `v`'s chunk fit in the sixteen `ymm` registers. Walking the
/// rows side by side gives that many independent chains of adds (a single
/// `f32` row has only two `ymm` accumulators, whose add latency bounded the
/// product) and loads each chunk of `v` once for the group.
#[cfg(target_arch = "x86_64")]
const fn group_rows<T>() -> usize {
    if size_of::<T>() <= 4 {
        4
    } else {
        2
    }
}

/// `put(outᵣ, ⟨mᵣ, v⟩)` for every row `r`, [`Real::v3_dot_rows`] over
/// groups of `R` rows, the last `rows mod R` one by one (for the AVX2
/// build). Every row sum is the bits of [`dot`].
#[cfg(target_arch = "x86_64")]
#[allow(clippy::inline_always)]
#[inline(always)]
fn rows_group<T: Real, const R: usize>(
    simd: pulp::x86::V3,
    m: &[T],
    v: &[T],
    out: &mut [T],
    put: impl Fn(&mut T, T),
) {
    let cols = v.len();
    let (ob, ot) = out.as_chunks_mut::<R>();
    let (mb, mt) = m.split_at(ob.len() * R * cols);
    for (o, block) in ob.iter_mut().zip(mb.chunks_exact(R * cols)) {
        let rows: [&[T]; R] = core::array::from_fn(|r| &block[r * cols..(r + 1) * cols]);
        let s = T::v3_dot_rows(simd, rows, v);
        for (o, s) in o.iter_mut().zip(s) {
            put(o, s);
        }
    }
    for (o, row) in ot.iter_mut().zip(mt.chunks_exact(cols)) {
        put(o, reduce(row, v, |a, b| a * b));
    }
}

/// [`rows_group`] with [`group_rows`] rows per group.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::inline_always)]
#[inline(always)]
fn rows_each<T: Real>(
    simd: pulp::x86::V3,
    m: &[T],
    v: &[T],
    out: &mut [T],
    put: impl Fn(&mut T, T),
) {
    if group_rows::<T>() == 4 {
        rows_group::<T, 4>(simd, m, v, out, put);
    } else {
        rows_group::<T, 2>(simd, m, v, out, put);
    }
}

/// [`matvec`]'s rows (for the AVX2 build, where everything must inline).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::inline_always)]
#[inline(always)]
fn rows_set<T: Real>(simd: pulp::x86::V3, m: &[T], v: &[T], out: &mut [T]) {
    rows_each(simd, m, v, out, |o, s| *o = s);
}

/// [`matvec_add`]'s rows (for the AVX2 build).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::inline_always)]
#[inline(always)]
fn rows_add<T: Real>(simd: pulp::x86::V3, m: &[T], v: &[T], out: &mut [T]) {
    rows_each(simd, m, v, out, |o, s| *o += s);
}

/// `out ← out + Mᵀ·v` four rows per sweep over `out` (for the AVX2 build):
/// `oⱼ ← (((oⱼ + v₀m₀ⱼ) + v₁m₁ⱼ) + v₂m₂ⱼ) + v₃m₃ⱼ`, the same additions in the
/// same order as one [`axpy`] per row; the last `rows mod 4` rows by
/// [`axpy`]'s loop.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::inline_always)]
#[inline(always)]
fn rows_t_add<T: Real>(m: &[T], v: &[T], out: &mut [T]) {
    let cols = out.len();
    let (vb, vt) = v.as_chunks::<4>();
    let (mb, mt) = m.split_at(vb.len() * 4 * cols);
    for (a, block) in vb.iter().zip(mb.chunks_exact(4 * cols)) {
        let (r0, rest) = block.split_at(cols);
        let (r1, rest) = rest.split_at(cols);
        let (r2, r3) = rest.split_at(cols);
        for ((((o, &b0), &b1), &b2), &b3) in out.iter_mut().zip(r0).zip(r1).zip(r2).zip(r3) {
            *o = *o + a[0] * b0 + a[1] * b1 + a[2] * b2 + a[3] * b3;
        }
    }
    for (&vi, row) in vt.iter().zip(mt.chunks_exact(cols)) {
        for (yi, &xi) in out.iter_mut().zip(row) {
            *yi += vi * xi;
        }
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
    #[cfg(target_arch = "x86_64")]
    if wide::run(m.len(), |_| rows_t_add(m, v, out)) {
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
    #[cfg(target_arch = "x86_64")]
    if wide::run(m.len(), |simd| rows_add(simd, m, v, out)) {
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
    #[cfg(target_arch = "x86_64")]
    if wide::run(m.len(), |_| rows_t_add(m, v, out)) {
        return;
    }
    for (&vi, row) in v.iter().zip(m.chunks_exact(cols)) {
        axpy(vi, row, out);
    }
}

/// Both products of one matrix: `out ← out + M·v` and `out_t ← out_t + Mᵀ·w`,
/// with `M` row-major of shape `out.len() × v.len()`, `w` of length
/// `out.len()` and `out_t` of length `v.len()`. The results are the bits of
/// [`matvec_add`]`(m, v, out)` and [`matvec_t_add`]`(m, w, out_t)`; in the AVX2
/// build (module documentation) `M` is read from memory once, in blocks of
/// four rows (the block's four row sums, then its four-row sweep over
/// `out_t` while the rows are in cache); elsewhere the two calls make two
/// passes.
#[inline]
pub fn matvec_add_t_add<T: Real>(m: &[T], v: &[T], out: &mut [T], w: &[T], out_t: &mut [T]) {
    let cols = v.len();
    debug_assert_eq!(m.len(), out.len() * cols);
    debug_assert_eq!(w.len(), out.len());
    debug_assert_eq!(out_t.len(), cols);
    if cols == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if wide::run(m.len(), |simd| both_add(simd, m, v, out, w, out_t)) {
        return;
    }
    matvec_add(m, v, out);
    matvec_t_add(m, w, out_t);
}

/// [`matvec_add_t_add`] in one read of `m` (for the AVX2 build).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::inline_always)]
#[inline(always)]
fn both_add<T: Real>(
    simd: pulp::x86::V3,
    m: &[T],
    v: &[T],
    out: &mut [T],
    w: &[T],
    out_t: &mut [T],
) {
    let cols = v.len();
    let (ob, ot) = out.as_chunks_mut::<4>();
    let (mb, mt) = m.split_at(ob.len() * 4 * cols);
    let (wb, wt) = w.split_at(ob.len() * 4);
    for ((o, block), wv) in ob
        .iter_mut()
        .zip(mb.chunks_exact(4 * cols))
        .zip(wb.chunks_exact(4))
    {
        rows_add(simd, block, v, o);
        rows_t_add(block, wv, out_t);
    }
    rows_add(simd, mt, v, ot);
    rows_t_add(mt, wt, out_t);
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
