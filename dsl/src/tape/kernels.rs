//! Numeric helpers shared by the rules: the product kernel, broadcasting,
//! index clamping and stable logistic functions.

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

/// C += α op(A) op(B).
pub(super) fn gemm(alpha: f64, a: Operand<'_>, b: Operand<'_>, c: &mut [f64]) {
    let (ta, tb) = (a.t, b.t);
    let ((ar, ac), (br, bc)) = (a.shape, b.shape);
    let (a, b) = (a.v, b.v);
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let n = if tb { br } else { bc };
    let aat = |i: usize, p: usize| if ta { a[p * ac + i] } else { a[i * ac + p] };
    match (ta, tb, n) {
        // Matrix-vector: rows of A dotted with b.
        (false, _, 1) => {
            for (i, ci) in c.iter_mut().enumerate().take(m) {
                let row = &a[i * ac..i * ac + k];
                let mut s = 0.0;
                for (x, y) in row.iter().zip(b) {
                    s += x * y;
                }
                *ci += alpha * s;
            }
        }
        // Transposed matrix-vector: c += α Aᵀ b, by rows of A (axpy).
        (true, _, 1) => {
            for (p, &bp) in b.iter().enumerate().take(k) {
                let s = alpha * bp;
                if s == 0.0 {
                    continue;
                }
                let row = &a[p * ac..p * ac + m];
                for (ci, x) in c.iter_mut().zip(row) {
                    *ci += s * x;
                }
            }
        }
        _ => {
            for i in 0..m {
                for p in 0..k {
                    let s = alpha * aat(i, p);
                    if s == 0.0 {
                        continue;
                    }
                    let crow = &mut c[i * n..(i + 1) * n];
                    if tb {
                        for (j, cj) in crow.iter_mut().enumerate() {
                            *cj += s * b[j * bc + p];
                        }
                    } else {
                        let brow = &b[p * bc..(p + 1) * bc];
                        for (cj, x) in crow.iter_mut().zip(brow) {
                            *cj += s * x;
                        }
                    }
                }
            }
        }
    }
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
