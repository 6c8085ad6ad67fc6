//! Numeric helpers shared by the rules: the product kernel, broadcasting,
//! index clamping and stable logistic functions.

use bilevel_core::kernels::{axpy, dot, matvec, matvec_t_add};

/// One operand of [`gemm`]: values as stored (row-major), the stored shape
/// and whether the product reads it transposed.
#[derive(Clone, Copy)]
pub(super) struct Operand<'a> {
    /// The values.
    pub v: &'a [f64],
    /// Rows × columns as stored.
    pub shape: (usize, usize),
    /// Read transposed.
    pub t: bool,
}

impl<'a> Operand<'a> {
    /// `v` stored `shape`, read as stored (`t = false`) or transposed.
    pub fn new(v: &'a [f64], shape: (usize, usize), t: bool) -> Self {
        Operand { v, shape, t }
    }
}

/// C += α op(A) op(B), C row-major m × n, in a fixed order per output that
/// depends only on the shapes and transposes (never on blocking, threads or
/// the machine):
///
/// * an output that is the inner product of a stored row of A with a vector
///   (mat-vec, `op(A) = A`, n = 1) or of a row of op(A) with a column of
///   op(B) (mat-mat, inner dimension k ≥ 2) is `α · dot(row, col)` with the
///   core's fixed 16-lane [`dot`] (lane `p mod 16`, halving tree);
/// * a transposed mat-vec (`op(A) = Aᵀ`, n = 1) adds `(α bₚ) · A[p, ·]` row by
///   row in increasing p (an axpy per stored row of A, the order of the core's
///   `matvec_t_add`), skipping rows with α bₚ = 0;
/// * an outer product (k = 1) adds `(α aᵢ) · b` row by row, skipping α aᵢ = 0.
///
/// An empty product (k = 0) adds nothing.
pub(super) fn gemm(alpha: f64, a: Operand<'_>, b: Operand<'_>, c: &mut [f64]) {
    let (m, k) = if a.t { (a.shape.1, a.shape.0) } else { a.shape };
    let n = if b.t { b.shape.0 } else { b.shape.1 };
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let c = &mut c[..m * n];
    match (a.t, n, k) {
        // Matrix-vector: rows of A dotted with b, CHUNK rows at a time
        // through the core's `matvec` (each row's sum is `dot`'s, in its
        // AVX2 build where the CPU has one: the same bits, decision 74).
        (false, 1, _) => {
            let bv = &b.v[..k];
            let mut sums = [0.0; CHUNK];
            for (cc, ac) in c.chunks_mut(CHUNK).zip(a.v[..m * k].chunks(CHUNK * k)) {
                let sums = &mut sums[..cc.len()];
                matvec(ac, bv, sums);
                for (ci, &si) in cc.iter_mut().zip(sums.iter()) {
                    *ci += alpha * si;
                }
            }
        }
        // Transposed matrix-vector: c += α Aᵀ b, by rows of A (axpy), CHUNK
        // rows at a time, each run of rows with non-zero scales through the
        // core's `matvec_t_add` (the same adds in the same order, four rows
        // per sweep in its AVX2 build).
        (true, 1, _) => {
            let mut scales = [0.0; CHUNK];
            for (bc, ac) in b.v[..k].chunks(CHUNK).zip(a.v[..k * m].chunks(CHUNK * m)) {
                let scales = &mut scales[..bc.len()];
                for (s, &bp) in scales.iter_mut().zip(bc) {
                    *s = alpha * bp;
                }
                // A chunk without a zero scale is one call (a pass without
                // early exit, so it vectorises); otherwise each run of
                // consecutive non-zero scales in one call (rows with a zero
                // scale are skipped, as documented).
                if scales.iter().filter(|&&s| s == 0.0).count() == 0 {
                    matvec_t_add(ac, scales, c);
                    continue;
                }
                let mut p = 0;
                while p < scales.len() {
                    if scales[p] == 0.0 {
                        p += 1;
                        continue;
                    }
                    let q = scales[p..]
                        .iter()
                        .position(|&s| s == 0.0)
                        .map_or(scales.len(), |r| p + r);
                    matvec_t_add(&ac[p * m..q * m], &scales[p..q], c);
                    p = q;
                }
            }
        }
        // Outer product: row i of C += (α aᵢ) b.
        (_, _, 1) => {
            let bv = &b.v[..n];
            for (&ai, crow) in a.v[..m].iter().zip(c.chunks_exact_mut(n)) {
                let s = alpha * ai;
                if s != 0.0 {
                    axpy(s, bv, crow);
                }
            }
        }
        _ => gemm_blocked(alpha, a, b, (m, n, k), c),
    }
}

/// C = α op(A) op(B): the bits of `c.fill(0.0)` followed by [`gemm`], with
/// a mat-vec (`op(A) = A`, one column) written in one pass as `0 + α·sᵢ`
/// (what `+=` gives on a zero) instead of zeroing C first.
pub(super) fn gemm_to(alpha: f64, a: Operand<'_>, b: Operand<'_>, c: &mut [f64]) {
    let (m, k) = if a.t { (a.shape.1, a.shape.0) } else { a.shape };
    let n = if b.t { b.shape.0 } else { b.shape.1 };
    if a.t || n != 1 || m == 0 || k == 0 {
        c.fill(0.0);
        gemm(alpha, a, b, c);
        return;
    }
    let (c, tail) = c.split_at_mut(m);
    tail.fill(0.0);
    let bv = &b.v[..k];
    let mut sums = [0.0; CHUNK];
    for (cc, ac) in c.chunks_mut(CHUNK).zip(a.v[..m * k].chunks(CHUNK * k)) {
        let sums = &mut sums[..cc.len()];
        matvec(ac, bv, sums);
        for (ci, &si) in cc.iter_mut().zip(sums.iter()) {
            *ci = 0.0 + alpha * si;
        }
    }
}

/// Rows per call of the core's mat-vec kernels in [`gemm`] (their scratch
/// lives on the stack).
const CHUNK: usize = 64;

/// Bytes of packed columns of op(B) one panel of [`gemm_blocked`] keeps in
/// cache while every row of op(A) passes over it (half of a 256 KiB L2).
const PANEL_BYTES: usize = 128 * 1024;

/// The general product, k ≥ 2, n ≥ 2: rows of op(A) and columns of op(B) are
/// made contiguous (packed when stored strided), then every output is
/// `α · dot(row, col)`, computed panel of columns by panel (each sized to
/// [`PANEL_BYTES`], so it stays in cache while every row of op(A), itself in
/// L1, passes over it). The blocking only orders the outputs; each output's
/// own sum is one [`dot`], so the bits do not depend on it.
fn gemm_blocked(
    alpha: f64,
    a: Operand<'_>,
    b: Operand<'_>,
    (m, n, k): (usize, usize, usize),
    c: &mut [f64],
) {
    // Rows of op(A), m × k row-major.
    let ap;
    let arows: &[f64] = if a.t {
        ap = transpose_of(&a.v[..k * m], k, m);
        &ap
    } else {
        &a.v[..m * k]
    };
    // Columns of op(B) as rows, n × k row-major.
    let bp;
    let bcols: &[f64] = if b.t {
        &b.v[..n * k]
    } else {
        bp = transpose_of(&b.v[..k * n], k, n);
        &bp
    };
    let panel = (PANEL_BYTES / (8 * k)).clamp(1, n);
    for j0 in (0..n).step_by(panel) {
        let j1 = (j0 + panel).min(n);
        let cols = &bcols[j0 * k..j1 * k];
        for (row, crow) in arows.chunks_exact(k).zip(c.chunks_exact_mut(n)) {
            for (cij, col) in crow[j0..j1].iter_mut().zip(cols.chunks_exact(k)) {
                *cij += alpha * dot(row, col);
            }
        }
    }
}

/// The transpose (cols × rows) of the row-major `rows × cols` matrix `v`.
fn transpose_of(v: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; rows * cols];
    for (r, row) in v.chunks_exact(cols).enumerate() {
        for (cidx, &x) in row.iter().enumerate() {
            t[cidx * rows + r] = x;
        }
    }
    t
}

/// A stored index value clamped into `0..len` (0 for NaN or negatives).
pub(super) fn to_index(v: f64, len: usize) -> usize {
    if v.is_finite() && v >= 0.0 {
        (v as usize).min(len.saturating_sub(1))
    } else {
        0
    }
}

/// Sums `src` (broadcast source) into `dst` of length 1, or adds
/// elementwise, scaled by `k`.
#[inline]
pub(super) fn acc_into(dst: &mut [f64], src: &[f64], k: f64) {
    if dst.len() == src.len() {
        for (d, s) in dst.iter_mut().zip(src) {
            *d += k * s;
        }
    } else if dst.len() == 1 {
        dst[0] += k * src.iter().sum::<f64>();
    } else if src.len() == 1 {
        for d in dst.iter_mut() {
            *d += k * src[0];
        }
    }
}

/// Element `i` of `v`, a scalar broadcasting.
pub(super) fn bc(v: &[f64], i: usize) -> f64 {
    if v.len() == 1 {
        v[0]
    } else {
        v[i]
    }
}

/// 1/(1+e⁻ᵘ), without overflow.
pub(super) fn sigmoid(u: f64) -> f64 {
    if u >= 0.0 {
        1.0 / (1.0 + (-u).exp())
    } else {
        let e = u.exp();
        e / (1.0 + e)
    }
}

/// ln(1+eᵘ), without overflow.
pub(super) fn softplus(u: f64) -> f64 {
    if u > 30.0 {
        u + (-u).exp().ln_1p()
    } else {
        u.exp().ln_1p()
    }
}

#[cfg(test)]
mod tests {
    use super::{gemm, gemm_to, Operand};
    use proptest::prelude::*;

    /// The 16-lane order written out independently of the core: entry `p`
    /// into lane `p mod 16`, each lane from +0 upwards, then the halving tree.
    fn lanes(x: &[f64], y: &[f64]) -> f64 {
        let mut acc = [0.0_f64; 16];
        for p in 0..x.len() {
            acc[p % 16] += x[p] * y[p];
        }
        for w in [8, 4, 2, 1] {
            for k in 0..w {
                acc[k] += acc[k + w];
            }
        }
        acc[0]
    }

    /// Element (i, j) of op(M), M stored `rows × cols`.
    fn at(v: &[f64], cols: usize, t: bool, i: usize, j: usize) -> f64 {
        if t {
            v[j * cols + i]
        } else {
            v[i * cols + j]
        }
    }

    /// The documented order of every output of `c + α op(A) op(B)`.
    fn reference(
        alpha: f64,
        (a, ta): (&[f64], bool),
        (b, tb): (&[f64], bool),
        (m, n, k): (usize, usize, usize),
        c0: &[f64],
    ) -> Vec<f64> {
        let acols = if ta { m } else { k };
        let bcols = if tb { k } else { n };
        let mut c = c0.to_vec();
        if k == 0 {
            return c;
        }
        if ta && n == 1 {
            // Transposed mat-vec: rows p of the stored A, scaled by α bₚ.
            for p in 0..k {
                let s = alpha * b[p];
                for i in 0..m {
                    if s != 0.0 {
                        c[i] += s * a[p * m + i];
                    }
                }
            }
            return c;
        }
        if k == 1 && n > 1 {
            // Outer product: rows i of C, scaled by α aᵢ.
            for i in 0..m {
                let s = alpha * a[i];
                for j in 0..n {
                    if s != 0.0 {
                        c[i * n + j] += s * b[j];
                    }
                }
            }
            return c;
        }
        for i in 0..m {
            for j in 0..n {
                let row: Vec<f64> = (0..k).map(|p| at(a, acols, ta, i, p)).collect();
                let col: Vec<f64> = (0..k).map(|p| at(b, bcols, tb, p, j)).collect();
                c[i * n + j] += alpha * lanes(&row, &col);
            }
        }
        c
    }

    fn values(len: usize) -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(
            prop_oneof![4 => -10.0..10.0_f64, 1 => Just(0.0), 1 => -1e-8..1e-8_f64],
            len,
        )
    }

    type Case = (
        usize,
        usize,
        usize,
        bool,
        bool,
        f64,
        Vec<f64>,
        Vec<f64>,
        Vec<f64>,
    );

    /// Shapes around the lane width (k up to 70), transposes, values with
    /// zeros and tiny entries, α, and a starting C.
    fn case() -> impl Strategy<Value = Case> {
        (
            0usize..9,
            0usize..9,
            0usize..70,
            any::<bool>(),
            any::<bool>(),
        )
            .prop_flat_map(|(m, n, k, ta, tb)| {
                (
                    Just((m, n, k, ta, tb)),
                    prop_oneof![Just(1.0), Just(-0.5), -3.0..3.0_f64],
                    values(m * k),
                    values(k * n),
                    values(m * n),
                )
            })
            .prop_map(|((m, n, k, ta, tb), al, a, b, c)| (m, n, k, ta, tb, al, a, b, c))
    }

    /// Mat-vecs and transposed mat-vecs over several of `gemm`'s row chunks
    /// (and its AVX2 threshold), with and without zero scales in a chunk,
    /// have the documented order's bits.
    #[test]
    fn chunked_mat_vecs_are_the_documented_order() {
        let val = |i: usize| ((i * 7919 % 1000) as f64 - 500.0) / 97.0;
        for (m, k, zeros) in [
            (150, 100, false),
            (150, 100, true),
            (63, 5, true),
            (200, 3, false),
        ] {
            for ta in [false, true] {
                let a: Vec<f64> = (0..m * k).map(val).collect();
                let b: Vec<f64> = (0..k)
                    .map(|p| {
                        if zeros && p % 37 == 3 {
                            0.0
                        } else {
                            val(p + 11)
                        }
                    })
                    .collect();
                let c0: Vec<f64> = (0..m).map(|i| val(i + 5)).collect();
                let sa = if ta { (k, m) } else { (m, k) };
                let mut c = c0.clone();
                gemm(
                    -0.7,
                    Operand::new(&a, sa, ta),
                    Operand::new(&b, (k, 1), false),
                    &mut c,
                );
                let want = reference(-0.7, (&a, ta), (&b, false), (m, 1, k), &c0);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&c),
                    bits(&want),
                    "{m} × {k}, transposed {ta}, zeros {zeros}"
                );
            }
        }
    }

    /// `gemm_to` has the bits of zeroing C and then `gemm`, for every
    /// product kind, with zero rows (signed zeros in C), infinities and a
    /// stale C.
    #[test]
    fn gemm_to_is_zeroing_then_gemm() {
        let val = |i: usize| match i % 11 {
            0 => 0.0,
            1 => -0.0,
            2 if i.is_multiple_of(3) => f64::INFINITY,
            _ => ((i * 7919 % 1000) as f64 - 500.0) / 97.0,
        };
        for (m, n, k) in [
            (150, 1, 100),
            (70, 1, 3),
            (5, 4, 1),
            (6, 5, 7),
            (0, 1, 4),
            (4, 1, 0),
        ] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                // Stored row 1 is zero: its sum is +0, times α < 0 a −0.
                let a: Vec<f64> = (0..m * k)
                    .map(|i| if i / k == 1 { 0.0 } else { val(i) })
                    .collect();
                let b: Vec<f64> = (0..k * n).map(|p| val(p + 5)).collect();
                let sa = if ta { (k, m) } else { (m, k) };
                let sb = if tb { (n, k) } else { (k, n) };
                for alpha in [1.0, -0.5] {
                    let stale: Vec<f64> = (0..m * n).map(|i| val(i + 3) + 1.0).collect();
                    let (mut want, mut got) = (stale.clone(), stale);
                    want.fill(0.0);
                    gemm(
                        alpha,
                        Operand::new(&a, sa, ta),
                        Operand::new(&b, sb, tb),
                        &mut want,
                    );
                    gemm_to(
                        alpha,
                        Operand::new(&a, sa, ta),
                        Operand::new(&b, sb, tb),
                        &mut got,
                    );
                    let bits = |v: &[f64]| {
                        v.iter()
                            .map(|x| {
                                if x.is_nan() {
                                    f64::NAN.to_bits()
                                } else {
                                    x.to_bits()
                                }
                            })
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(bits(&got), bits(&want), "{m}×{n}×{k}, {ta} {tb}, α {alpha}");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every output has the bits of its documented fixed order, whatever
        /// the blocking, and is close to the exact sum.
        #[test]
        fn gemm_is_the_documented_order((m, n, k, ta, tb, alpha, a, b, c0) in case()) {
            let sa = if ta { (k, m) } else { (m, k) };
            let sb = if tb { (n, k) } else { (k, n) };
            let mut c = c0.clone();
            gemm(alpha, Operand::new(&a, sa, ta), Operand::new(&b, sb, tb), &mut c);
            let want = reference(alpha, (&a, ta), (&b, tb), (m, n, k), &c0);
            for (got, want) in c.iter().zip(&want) {
                prop_assert_eq!(got.to_bits(), want.to_bits(), "{} vs {}", got, want);
            }
            // An independent check of the value: the plain sum, to rounding.
            for i in 0..m {
                for j in 0..n {
                    let (mut s, mut mag) = (0.0_f64, 0.0_f64);
                    for p in 0..k {
                        let t = alpha
                            * at(&a, sa.1, ta, i, p)
                            * at(&b, sb.1, tb, p, j);
                        s += t;
                        mag += t.abs();
                    }
                    let exact = c0[i * n + j] + s;
                    let tol = 1e-13 * (mag + c0[i * n + j].abs()) + 1e-300;
                    prop_assert!((c[i * n + j] - exact).abs() <= tol);
                }
            }
        }
    }

    /// A mat-mat product is, column by column, the mat-vec of the same
    /// operands bit for bit (both are one lane-ordered dot per output).
    #[test]
    fn mat_mat_columns_are_mat_vecs() {
        let (m, n, k) = (7, 5, 37);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.731).sin()).collect();
        let bt: Vec<f64> = (0..n * k).map(|i| (i as f64 * 0.377).cos()).collect();
        let mut c = vec![0.0; m * n];
        gemm(
            0.7,
            Operand::new(&a, (m, k), false),
            Operand::new(&bt, (n, k), true),
            &mut c,
        );
        for j in 0..n {
            let col = &bt[j * k..(j + 1) * k];
            let mut cv = vec![0.0; m];
            gemm(
                0.7,
                Operand::new(&a, (m, k), false),
                Operand::new(col, (k, 1), false),
                &mut cv,
            );
            for i in 0..m {
                assert_eq!(c[i * n + j].to_bits(), cv[i].to_bits());
            }
        }
    }
}
