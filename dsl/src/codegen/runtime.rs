//! The helpers every generated module carries, over its scalar `T`: the
//! product kernel, index clamping, the stable logistic functions, the
//! derivative triples of the elementwise functions and the softmax rules.
//! Each is a literal copy of the interpreter's (`tape/kernels.rs`,
//! `tape/elementwise.rs`, `tape/loss.rs`) with `f64` replaced by `T`, so
//! the two compute the same operations in the same order.

/// The helpers' source text.
pub(super) const RUNTIME: &str = r"
/// The first `N` elements of an argument as an array: one length check per
/// call instead of one per element of the written-out code (a slice shorter
/// than `N` panics here, as its first out-of-range element would).
#[inline(always)]
fn fixed<const N: usize>(s: &[T]) -> &[T; N] {
    match <&[T; N]>::try_from(&s[..N]) {
        Ok(a) => a,
        Err(_) => unreachable!(),
    }
}

/// [`fixed`] for an output.
#[inline(always)]
fn fixed_mut<const N: usize>(s: &mut [T]) -> &mut [T; N] {
    match <&mut [T; N]>::try_from(&mut s[..N]) {
        Ok(a) => a,
        Err(_) => unreachable!(),
    }
}
/// C += α op(A) op(B) (`tape/kernels.rs::gemm`).
#[allow(clippy::too_many_arguments, dead_code)]
#[inline]
fn gemm(alpha: T, a: &[T], (ar, ac): (usize, usize), ta: bool, b: &[T], (br, bc): (usize, usize), tb: bool, c: &mut [T]) {
    use bilevel_core::kernels::{axpy, dot};
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let n = if tb { br } else { bc };
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let c = &mut c[..m * n];
    match (ta, n, k) {
        // Mat-vec: 64 rows at a time through the core's `matvec` (each row's
        // sum is `dot`'s, in its AVX2 build where the CPU has one).
        (false, 1, _) => {
            let bv = &b[..k];
            let mut sums = [0.0 as T; 64];
            for (cc, ac) in c.chunks_mut(64).zip(a[..m * k].chunks(64 * k)) {
                let sums = &mut sums[..cc.len()];
                bilevel_core::kernels::matvec(ac, bv, sums);
                for (ci, &si) in cc.iter_mut().zip(sums.iter()) {
                    *ci += alpha * si;
                }
            }
        }
        // Transposed mat-vec: rows of A scaled by α bₚ, each run of non-zero
        // scales through the core's `matvec_t_add` (zero scales skipped).
        (true, 1, _) => {
            let mut scales = [0.0 as T; 64];
            for (bc, ac) in b[..k].chunks(64).zip(a[..k * m].chunks(64 * m)) {
                let scales = &mut scales[..bc.len()];
                for (s, &bp) in scales.iter_mut().zip(bc) {
                    *s = alpha * bp;
                }
                let mut p = 0;
                while p < scales.len() {
                    if scales[p] == 0.0 {
                        p += 1;
                        continue;
                    }
                    let q = scales[p..].iter().position(|&s| s == 0.0).map_or(scales.len(), |r| p + r);
                    bilevel_core::kernels::matvec_t_add(&ac[p * m..q * m], &scales[p..q], c);
                    p = q;
                }
            }
        }
        (_, _, 1) => {
            let bv = &b[..n];
            for (&ai, crow) in a[..m].iter().zip(c.chunks_exact_mut(n)) {
                let s = alpha * ai;
                if s != 0.0 {
                    axpy(s, bv, crow);
                }
            }
        }
        _ => {
            // Every output is the core's fixed-order dot of a row of op(A)
            // with a column of op(B), read in place: term p goes to lane
            // p mod 16 in increasing p, then the halving tree (the
            // interpreter packs and calls `dot`; same additions, same bits).
            for i in 0..m {
                for j in 0..n {
                    let mut acc = [0.0 as T; 16];
                    for p in 0..k {
                        let x = if ta { a[p * ac + i] } else { a[i * ac + p] };
                        let y = if tb { b[j * bc + p] } else { b[p * bc + j] };
                        acc[p % 16] += x * y;
                    }
                    let mut w = 8;
                    while w > 0 {
                        for l in 0..w {
                            acc[l] += acc[l + w];
                        }
                        w /= 2;
                    }
                    c[i * n + j] += alpha * acc[0];
                }
            }
        }
    }
}

/// A stored index value clamped into `0..len` (`tape/kernels.rs::to_index`).
#[allow(dead_code)]
#[inline]
fn to_index(v: T, len: usize) -> usize {
    if v.is_finite() && v >= 0.0 {
        (v as usize).min(len.saturating_sub(1))
    } else {
        0
    }
}

/// 1/(1+e⁻ᵘ), without overflow.
#[allow(dead_code)]
#[inline]
fn sigmoid(u: T) -> T {
    if u >= 0.0 {
        1.0 / (1.0 + (-u).exp())
    } else {
        let e = u.exp();
        e / (1.0 + e)
    }
}

/// ln(1+eᵘ), without overflow.
#[allow(dead_code)]
#[inline]
fn softplus(u: T) -> T {
    if u > 30.0 {
        u + (-u).exp().ln_1p()
    } else {
        u.exp().ln_1p()
    }
}

/// `logistic_loss`'s gradient (∂z, ∂y) and Hessian (zz, yy, zy).
#[allow(dead_code, clippy::type_complexity)]
#[inline]
fn logistic_derivs(z: T, y: T) -> ((T, T), (T, T, T)) {
    let u = -y * z;
    let s = sigmoid(u);
    let h = s * (1.0 - s);
    ((-y * s, -z * s), (y * y * h, z * z * h, -s + y * z * h))
}

/// aux = softmax(z); returns logsumexp(z) − z[c].
#[allow(dead_code)]
fn softmax_value(z: &[T], aux: &mut [T], c: Option<usize>) -> T {
    let m = z.iter().copied().fold(T::NEG_INFINITY, T::max);
    let se: T = z.iter().map(|v| (v - m).exp()).sum();
    let lse = m + se.ln();
    for (p, v) in aux.iter_mut().zip(z) {
        *p = (v - lse).exp();
    }
    lse - c.map_or(0.0, |c| z[c])
}

/// ċ = softmax(z)ᵀż − ż[c].
#[allow(dead_code)]
fn softmax_tangent(p: &[T], tz: &[T], c: Option<usize>) -> T {
    p.iter().zip(tz).map(|(p, t)| p * t).sum::<T>() - c.map_or(0.0, |c| tz[c])
}

/// z̄ += c̄ (p − e_c).
#[allow(dead_code)]
fn softmax_adjoint(p: &[T], c: Option<usize>, g0: T, d: &mut [T]) {
    for (k, d) in d.iter_mut().enumerate() {
        *d += g0 * (p[k] - if c == Some(k) { 1.0 } else { 0.0 });
    }
}

/// ž += ċ̄ (p − e_c) + c̄ (diag(p) − ppᵀ) ż.
#[allow(dead_code)]
fn softmax_adjoint_tangent(p: &[T], c: Option<usize>, (g0, gt0): (T, T), tz: Option<&[T]>, d: &mut [T]) {
    let ptz: T = tz.map_or(0.0, |t| p.iter().zip(t).map(|(a, b)| a * b).sum());
    for (k, d) in d.iter_mut().enumerate() {
        let hv = tz.map_or(0.0, |t| p[k] * t[k] - p[k] * ptz);
        *d += gt0 * (p[k] - if c == Some(k) { 1.0 } else { 0.0 }) + g0 * hv;
    }
}

/// `correct(z, label)` (`tape/loss.rs`).
#[allow(dead_code)]
fn correct(z: &[T], l: T) -> T {
    let right = if z.len() == 1 {
        (z[0] > 0.0) == (l > 0.0)
    } else {
        let mut best = 0;
        for (k, v) in z.iter().enumerate() {
            if *v > z[best] {
                best = k;
            }
        }
        z.iter().all(|v| !v.is_nan()) && best == to_index(l, z.len())
    };
    if right { 1.0 } else { 0.0 }
}
";

/// The derivative triple f(a), f′(a), f″(a) of each function
/// (`Func::derivs` in `tape/elementwise.rs`), as a generated function.
pub(super) fn derivs_fn(f: crate::tape::Func) -> String {
    use crate::tape::Func;
    let body = match f {
        Func::Exp => "let e = a.exp();\n    (e, e, e)",
        Func::Log => "(a.ln(), 1.0 / a, -1.0 / (a * a))",
        Func::Sqrt => "let s = a.sqrt();\n    (s, 0.5 / s, -0.25 / (s * a))",
        Func::Sigmoid => {
            "let s = sigmoid(a);\n    (s, s * (1.0 - s), s * (1.0 - s) * (1.0 - 2.0 * s))"
        }
        Func::Softplus => "let s = sigmoid(a);\n    (softplus(a), s, s * (1.0 - s))",
        Func::Tanh => "let t = a.tanh();\n    (t, 1.0 - t * t, -2.0 * t * (1.0 - t * t))",
        Func::Abs => "(a.abs(), if a > 0.0 { 1.0 } else if a < 0.0 { -1.0 } else { 0.0 }, 0.0)",
        Func::Cos => "(a.cos(), -a.sin(), -a.cos())",
        Func::Sin => "(a.sin(), a.cos(), -a.sin())",
    };
    format!(
        "/// {n}(a) and its first two derivatives.\n#[inline]\nfn d_{n}(a: T) -> (T, T, T) {{\n    {body}\n}}\n",
        n = f.name()
    )
}
