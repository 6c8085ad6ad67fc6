//! Verified lower bounds on λ_min of a stored matrix.
//!
//! An estimate t (an eigen-solver's value, the generator's hint, or a
//! bisection) is only ever a guess; the bound is proven by a floating-point
//! Cholesky factorisation of B = fl(S − tI), S the symmetric part of the
//! stored matrix. If it runs to completion, R̂ᵀR̂ = B + ΔB with
//! |ΔB| ≤ γₙ₊₁|R̂ᵀ||R̂| (Higham, *Accuracy and Stability*, Thm 10.3), hence
//! λ_min(B) ≥ −γₙ₊₁‖R̂‖²_F ≥ −γₙ₊₁/(1 − γₙ₊₁) · tr(B). Forming S and B
//! perturbs each entry by at most 2u|·|, bounded in norm by
//! 2u(‖S‖_F + √n|t|). So λ_min(S) ≥ t − γₙ₊₁/(1 − γₙ₊₁)·tr(B) − 2u(‖S‖_F +
//! √n|t|), computed with an extra safety factor and rounded down.

/// Largest order whose λ_min is verified (a Cholesky costs n³/3 flops).
pub const MAX_ORDER: usize = 2048;

/// Largest order for which an eigen-solver gives the first estimate.
const EIGEN_ORDER: usize = 256;

/// Most multiply-adds spent verifying the λ_min of all the matrices of one
/// spec (2³⁰ ≈ 1.1·10⁹, well under a second): a Cholesky factorisation of
/// order n is charged n³/3, an eigen-decomposition 5n³. A matrix whose
/// verification would exceed what is left is not verified (λ_min ≥ −∞,
/// [`Bound::out_of_budget`]).
pub const MAX_VERIFY_WORK: f64 = (1u64 << 30) as f64;

/// What the verification found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    /// A proven lower bound on λ_min of the symmetric part (may be ≤ 0,
    /// and −∞ when nothing could be proven).
    pub lower: f64,
    /// `true` when S + τI is not positive definite for a τ of the order of
    /// the rounding error: the matrix is indefinite beyond rounding.
    pub indefinite: bool,
    /// That τ: when `indefinite`, λ_min < −τ.
    pub tau: f64,
    /// The estimate the verification started from (not a bound).
    pub estimate: Option<f64>,
    /// `true` when the work budget ran out before the verification ended
    /// (`lower` is then what was proven so far, `indefinite` unknown).
    pub out_of_budget: bool,
}

/// The symmetric part of the row-major `n × n` matrix `m`.
fn sym(m: &[f64], n: usize) -> Vec<f64> {
    let mut s = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            s[i * n + j] = 0.5 * m[i * n + j] + 0.5 * m[j * n + i];
        }
    }
    s
}

/// Cholesky of `b` in place (lower triangle); `false` when a pivot is not
/// positive (or not finite).
fn cholesky(b: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let mut d = b[j * n + j];
        for k in 0..j {
            d -= b[j * n + k] * b[j * n + k];
        }
        if !(d > 0.0 && d.is_finite()) {
            return false;
        }
        let d = d.sqrt();
        b[j * n + j] = d;
        for i in (j + 1)..n {
            let (ri, rj) = (i * n, j * n);
            let mut s = b[ri + j];
            for k in 0..j {
                s -= b[ri + k] * b[rj + k];
            }
            b[ri + j] = s / d;
        }
    }
    true
}

/// `Some(proven bound)` when the Cholesky of S − tI succeeds.
fn try_shift(s: &[f64], n: usize, t: f64, frob: f64) -> Option<f64> {
    let mut b = s.to_vec();
    let mut trace = 0.0;
    for i in 0..n {
        b[i * n + i] -= t;
        trace += b[i * n + i];
    }
    if !cholesky(&mut b, n) {
        return None;
    }
    let u = f64::EPSILON / 2.0;
    let nu = (n as f64 + 1.0) * u;
    let gamma = nu / (1.0 - nu);
    let chol = gamma / (1.0 - gamma) * trace;
    let form = 2.0 * u * (frob + (n as f64).sqrt() * t.abs());
    // Safety factor for the rounding of these bounds themselves, plus a
    // margin for underflow in the factorisation.
    let margin = (chol + form) * (1.0 + 1e-6) + (n as f64) * f64::MIN_POSITIVE * 16.0;
    Some((t - margin).next_down())
}

/// A proven lower bound on λ_min of the symmetric part of the row-major
/// `n × n` matrix `m`; `hint` is an estimate (e.g. `1/κ` of `spd`), never
/// trusted. No work budget: see [`lambda_min_bound_within`].
pub fn lambda_min_bound(m: &[f64], n: usize, hint: Option<f64>) -> Bound {
    let mut unlimited = f64::INFINITY;
    lambda_min_bound_within(m, n, hint, &mut unlimited)
}

/// What [`lambda_min_bound_within`] spends its budget on.
struct Verifier<'a> {
    s: Vec<f64>,
    n: usize,
    frob: f64,
    budget: &'a mut f64,
    out_of_budget: bool,
}

impl Verifier<'_> {
    /// Charges `cost`; `false` (and out of budget from then on) when less
    /// is left.
    fn charge(&mut self, cost: f64) -> bool {
        if self.out_of_budget || *self.budget < cost {
            self.out_of_budget = true;
            return false;
        }
        *self.budget -= cost;
        true
    }

    /// [`try_shift`] when the budget allows one more factorisation.
    fn shift(&mut self, t: f64) -> Option<f64> {
        let n = self.n as f64;
        if !self.charge(n * n * n / 3.0) {
            return None;
        }
        try_shift(&self.s, self.n, t, self.frob)
    }
}

/// [`lambda_min_bound`] that spends at most `budget` multiply-adds (and
/// deducts what it spends).
pub fn lambda_min_bound_within(m: &[f64], n: usize, hint: Option<f64>, budget: &mut f64) -> Bound {
    if n == 0 || m.len() != n * n || m.iter().any(|v| !v.is_finite()) || n > MAX_ORDER {
        return Bound {
            lower: f64::NEG_INFINITY,
            indefinite: false,
            tau: 0.0,
            estimate: None,
            out_of_budget: false,
        };
    }
    let s = sym(m, n);
    let frob = s.iter().map(|v| v * v).sum::<f64>().sqrt();
    let abs_trace: f64 = (0..n).map(|i| s[i * n + i].abs()).sum();
    // Gershgorin interval: in exact arithmetic it holds every eigenvalue.
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for i in 0..n {
        let r: f64 = (0..n).filter(|&j| j != i).map(|j| s[i * n + j].abs()).sum();
        lo = lo.min(s[i * n + i] - r);
        hi = hi.max(s[i * n + i]);
    }
    let mut v = Verifier {
        s,
        n,
        frob,
        budget,
        out_of_budget: false,
    };
    let cube = (n as f64).powi(3);
    let est = hint.or_else(|| {
        (n <= EIGEN_ORDER && v.charge(5.0 * cube)).then(|| {
            nalgebra::DMatrix::from_row_slice(n, n, &v.s)
                .symmetric_eigen()
                .eigenvalues
                .min()
        })
    });
    v.out_of_budget = false;
    // Tolerance of "indefinite beyond rounding".
    let tau = 16.0 * (n as f64 + 1.0) * f64::EPSILON * (abs_trace + frob) + f64::MIN_POSITIVE;
    let mut best: Option<f64> = None;
    if let Some(e) = est.filter(|e| e.is_finite()) {
        for t in [
            e - 4.0 * tau,
            e - 1e-9 * e.abs() - tau,
            e - 1e-6 * e.abs() - tau,
        ] {
            if let Some(b) = v.shift(t) {
                best = Some(b);
                break;
            }
        }
    }
    if best.is_none() {
        // Bisection on the shift between (just below) the Gershgorin bound
        // and the largest diagonal entry: each step is one Cholesky.
        let steps = if n <= EIGEN_ORDER { 40 } else { 8 };
        let mut a = lo - 1e-9 * lo.abs() - tau;
        best = v.shift(a);
        let mut b = hi.max(a);
        for _ in 0..steps {
            let t = 0.5 * (a + b);
            if let Some(w) = v.shift(t) {
                best = Some(best.map_or(w, |u: f64| u.max(w)));
                a = t;
            } else if v.out_of_budget {
                break;
            } else {
                b = t;
            }
        }
    }
    // λ_min ≥ best ≥ −τ is proven already: not indefinite beyond rounding,
    // and no factorisation of S + τI is needed.
    let indefinite = match best {
        Some(b) if b >= -tau => false,
        _ => {
            let psd = v.shift(-tau);
            if best.is_none() {
                best = psd;
            }
            psd.is_none() && !v.out_of_budget
        }
    };
    Bound {
        lower: best.unwrap_or(f64::NEG_INFINITY),
        indefinite,
        tau,
        estimate: est,
        out_of_budget: v.out_of_budget,
    }
}

/// A proven lower bound on λ_min(Mᵀ·sym(P)·M) (P = I when `p` is `None`),
/// M row-major `m × n`, P `m × m`: the product S is formed in floats and
/// verified like any stored matrix, then lowered by the rounding of the
/// product, |fl(S) − S| ≤ γ₂ₘ₊₄·|M|ᵀ|sym P||M| elementwise (two products
/// of inner dimension m, and the symmetric part), whose Frobenius norm
/// bounds its spectral norm. `None` when the budget does not cover it.
pub fn congruent_bound(
    m_vals: &[f64],
    (m, n): (usize, usize),
    p: Option<&[f64]>,
    budget: &mut f64,
) -> Option<Bound> {
    if m == 0 || n == 0 || m_vals.len() != m * n || p.is_some_and(|p| p.len() != m * m) {
        return None;
    }
    let (mf, nf) = (m as f64, n as f64);
    let cost = 2.0 * (mf * mf * nf + mf * nf * nf);
    if n > MAX_ORDER || *budget < cost {
        return None;
    }
    *budget -= cost;
    let sp = p.map(|p| sym(p, m));
    // T = sym(P)·M and its magnitude |sym P|·|M| (m × n).
    let (mut t, mut ta) = (vec![0.0; m * n], vec![0.0; m * n]);
    for i in 0..m {
        for j in 0..n {
            let (mut v, mut a) = (0.0, 0.0);
            if let Some(sp) = &sp {
                for k in 0..m {
                    v += sp[i * m + k] * m_vals[k * n + j];
                    a += (sp[i * m + k] * m_vals[k * n + j]).abs();
                }
            } else {
                v = m_vals[i * n + j];
                a = v.abs();
            }
            t[i * n + j] = v;
            ta[i * n + j] = a;
        }
    }
    // S = Mᵀ·T and E = |M|ᵀ·(|sym P|·|M|) (n × n).
    let (mut sm, mut e2) = (vec![0.0; n * n], 0.0f64);
    for i in 0..n {
        for j in 0..n {
            let (mut v, mut a) = (0.0, 0.0);
            for k in 0..m {
                v += m_vals[k * n + i] * t[k * n + j];
                a += m_vals[k * n + i].abs() * ta[k * n + j];
            }
            sm[i * n + j] = v;
            e2 += a * a;
        }
    }
    let u = f64::EPSILON / 2.0;
    let k = (2.0 * mf + 4.0) * u;
    let gamma = k / (1.0 - k);
    let err = gamma * e2.sqrt() * (1.0 + 1e-6);
    let mut b = lambda_min_bound_within(&sm, n, None, budget);
    b.lower = (b.lower - err).next_down();
    if !b.lower.is_finite() {
        b.lower = f64::NEG_INFINITY;
    }
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::{congruent_bound, lambda_min_bound};

    #[test]
    fn congruent_products_are_bounded_below_their_eigenvalue() {
        // M = [[1, 1], [0, 1]], P = diag(2, 1): MᵀPM = [[2, 2], [2, 3]],
        // λmin = (5 − √17)/2 ≈ 0.4384.
        let mut budget = f64::INFINITY;
        let b = congruent_bound(
            &[1.0, 1.0, 0.0, 1.0],
            (2, 2),
            Some(&[2.0, 0.0, 0.0, 1.0]),
            &mut budget,
        )
        .expect("in budget");
        let want = (5.0 - 17f64.sqrt()) / 2.0;
        assert!(b.lower <= want && b.lower > want - 1e-9, "{b:?}");
        // A rank-deficient M: no positive bound.
        let b =
            congruent_bound(&[1.0, 2.0, 2.0, 4.0], (2, 2), None, &mut budget).expect("in budget");
        assert!(b.lower <= 0.0, "{b:?}");
        // Out of budget: nothing.
        let mut none = 1.0;
        assert!(congruent_bound(&[1.0], (1, 1), None, &mut none).is_none());
    }

    #[test]
    fn bounds_are_below_the_eigenvalue_and_close_to_it() {
        // [[2, 1], [1, 2]]: eigenvalues 1 and 3.
        let b = lambda_min_bound(&[2.0, 1.0, 1.0, 2.0], 2, None);
        assert!(b.lower <= 1.0 && b.lower > 1.0 - 1e-8, "{b:?}");
        assert!(!b.indefinite);
        // A wrong hint is not trusted.
        let b = lambda_min_bound(&[2.0, 1.0, 1.0, 2.0], 2, Some(5.0));
        assert!(b.lower <= 1.0 && b.lower > 0.9, "{b:?}");
        // Exactly singular integer matrix: no positive bound.
        let b = lambda_min_bound(&[1.0, 2.0, 2.0, 4.0], 2, None);
        assert!(b.lower <= 0.0, "{b:?}");
        assert!(!b.indefinite);
        // Indefinite.
        let b = lambda_min_bound(&[1.0, 2.0, 2.0, 1.0], 2, None);
        assert!(b.lower <= -1.0 && b.indefinite, "{b:?}");
    }
}
