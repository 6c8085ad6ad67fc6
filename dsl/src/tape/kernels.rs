//! Numeric helpers shared by the rules: the product kernel, broadcasting,
//! index clamping and stable logistic functions.

use bilevel_core::kernels::{axpy, dot};

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
        // Matrix-vector: rows of A dotted with b.
        (false, 1, _) => {
            let bv = &b.v[..k];
            for (ci, row) in c.iter_mut().zip(a.v.chunks_exact(k)) {
                *ci += alpha * dot(row, bv);
            }
        }
        // Transposed matrix-vector: c += α Aᵀ b, by rows of A (axpy).
        (true, 1, _) => {
            for (&bp, row) in b.v[..k].iter().zip(a.v.chunks_exact(m)) {
                let s = alpha * bp;
                if s != 0.0 {
                    axpy(s, row, c);
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
