//! Per-coordinate bounds on the **diagonal** of a Hessian, from above and
//! from below ([`DiagBounds`]), used to *refute* an assumption.
//!
//! For an expression e (the sum of its elements), `upper` u means
//! ∂²e/∂yᵢ² ≤ u(i) for every x, every y, every minibatch and every
//! coordinate i; `lower` l means ∂²e/∂yᵢ² ≥ l(i). Then eᵢᵀ∇²g eᵢ ≤ u(i),
//! so λ_min(∇²ᵧᵧ g) ≤ u(i) everywhere, and an assumed modulus m > u(i) of
//! the variable holding coordinate i is false at every (x, y): E0308.
//!
//! A [`Side`] is a sum of covers, each multiplied by a factor known exactly
//! at check time ([`DKey::One`]) or at load time ([`DKey::Diag`]: the
//! diagonal entry of a stored matrix), plus "unbounded" (+∞ for `upper`,
//! −∞ for `lower`) on whole lower variables (`inf`, one bit per variable as
//! in `dep_y`). Terms whose curvature is known exactly (squares of
//! selections, `norm2sq`, `sq_loss`, `quad` of a selection) bound both
//! sides; convex terms of unknown size bound only `lower` (by 0), concave
//! ones only `upper` (by 0), anything else neither. `abs` holds the sum of
//! the absolute values of the contributions, which bounds the rounding of
//! the float sums (the test of a refutation leaves a margin relative to it).

use std::collections::BTreeMap;

use super::cover::Cover;

/// What multiplies a cover in a [`Side`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DKey {
    /// The number 1.
    One,
    /// At coordinate i: the diagonal entry (i − start, i − start) of the
    /// stored parameter `p` (`quad(P, s)` with s starting at `start`).
    Diag(usize, usize),
}

/// One side of a bound on the Hessian's diagonal (see the module docs).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Side {
    /// Coefficients by factor (any sign).
    pub val: BTreeMap<DKey, Cover>,
    /// Sums of the absolute values of the contributions to `val`.
    pub abs: BTreeMap<DKey, Cover>,
    /// Bit v: unbounded on lower variable v (bit 63: on every v ≥ 63).
    pub inf: u64,
}

fn add_map(a: &BTreeMap<DKey, Cover>, b: &BTreeMap<DKey, Cover>) -> BTreeMap<DKey, Cover> {
    let mut out = a.clone();
    for (k, c) in b {
        let s = match out.get(k) {
            Some(m) => m.add(c),
            None => c.clone(),
        };
        if s.is_zero() {
            out.remove(k);
        } else {
            out.insert(*k, s);
        }
    }
    out
}

fn scale_map(a: &BTreeMap<DKey, Cover>, k: f64) -> BTreeMap<DKey, Cover> {
    a.iter()
        .map(|(key, c)| (*key, c.scale(k)))
        .filter(|(_, c)| !c.is_zero())
        .collect()
}

impl Side {
    /// Bounded by 0 everywhere.
    pub fn zero() -> Side {
        Side::default()
    }

    /// Unbounded on the variables of `dep`.
    pub fn unbounded(dep: u64) -> Side {
        Side {
            inf: dep,
            ..Side::default()
        }
    }

    /// `key · cover` exactly.
    pub fn exact(key: DKey, cover: Cover) -> Side {
        if cover.is_zero() {
            return Side::zero();
        }
        let abs = cover.abs();
        Side {
            val: BTreeMap::from([(key, cover)]),
            abs: BTreeMap::from([(key, abs)]),
            inf: 0,
        }
    }

    /// The sum of two bounds of the same side.
    pub fn add(&self, o: &Side) -> Side {
        Side {
            val: add_map(&self.val, &o.val),
            abs: add_map(&self.abs, &o.abs),
            inf: self.inf | o.inf,
        }
    }

    /// Multiplied by `k ≥ 0` (the same side).
    fn scale(&self, k: f64) -> Side {
        if k == 0.0 {
            return Side::zero();
        }
        Side {
            val: scale_map(&self.val, k),
            abs: scale_map(&self.abs, k),
            inf: self.inf,
        }
    }

    /// `true` when the bound is 0 everywhere.
    pub fn is_zero(&self) -> bool {
        self.val.is_empty() && self.inf == 0
    }

    /// `true` when unbounded on lower variable `v`.
    pub fn unbounded_on(&self, v: usize) -> bool {
        self.inf & (1u64 << v.min(63)) != 0
    }

    /// Every segment end of every part, sorted.
    pub fn cuts(&self) -> Vec<usize> {
        let mut cuts: Vec<usize> = Vec::new();
        for c in self.val.values().chain(self.abs.values()) {
            for &(a, b, _) in c.segments() {
                cuts.push(a);
                cuts.push(b);
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        cuts
    }

    /// The largest absolute coefficient (to detect overflow).
    pub fn max_coefficient(&self) -> f64 {
        self.abs.values().map(Cover::max).fold(0.0, f64::max)
    }
}

/// Both sides of a bound on the diagonal of the Hessian of an expression.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DiagBounds {
    /// ∂²/∂yᵢ² ≤ upper(i).
    pub upper: Side,
    /// ∂²/∂yᵢ² ≥ lower(i).
    pub lower: Side,
}

impl DiagBounds {
    /// Hessian 0 (constants and affine expressions).
    pub fn zero() -> DiagBounds {
        DiagBounds::default()
    }

    /// Nothing known on the variables of `dep`.
    pub fn unknown(dep: u64) -> DiagBounds {
        DiagBounds {
            upper: Side::unbounded(dep),
            lower: Side::unbounded(dep),
        }
    }

    /// Convex: diagonal ≥ 0, no upper bound.
    pub fn convex(dep: u64) -> DiagBounds {
        DiagBounds {
            upper: Side::unbounded(dep),
            lower: Side::zero(),
        }
    }

    /// Concave: diagonal ≤ 0, no lower bound.
    pub fn concave(dep: u64) -> DiagBounds {
        DiagBounds {
            upper: Side::zero(),
            lower: Side::unbounded(dep),
        }
    }

    /// The diagonal is exactly `key · cover`.
    pub fn exact(key: DKey, cover: Cover) -> DiagBounds {
        let s = Side::exact(key, cover);
        DiagBounds {
            upper: s.clone(),
            lower: s,
        }
    }

    /// The bounds of a sum.
    pub fn add(&self, o: &DiagBounds) -> DiagBounds {
        DiagBounds {
            upper: self.upper.add(&o.upper),
            lower: self.lower.add(&o.lower),
        }
    }

    /// The bounds of `k · e` for a number `k` (either sign; a negative
    /// factor swaps the sides).
    pub fn scale(&self, k: f64) -> DiagBounds {
        if k >= 0.0 {
            DiagBounds {
                upper: self.upper.scale(k),
                lower: self.lower.scale(k),
            }
        } else {
            self.neg().scale(-k)
        }
    }

    /// The bounds of `−e`.
    pub fn neg(&self) -> DiagBounds {
        let flip = |s: &Side| Side {
            val: scale_map(&s.val, -1.0),
            abs: s.abs.clone(),
            inf: s.inf,
        };
        DiagBounds {
            upper: flip(&self.lower),
            lower: flip(&self.upper),
        }
    }

    /// The bounds of a sum of at least one copy of e (a `sum over` a
    /// minibatch of ≥ 1 samples): an upper bound ≤ 0 and a lower bound
    /// ≥ 0 survive; anything else becomes unbounded on `dep`.
    pub fn at_least_once(&self, dep: u64) -> DiagBounds {
        let nonpos = |s: &Side| {
            s.inf == 0
                && s.val
                    .iter()
                    .all(|(k, c)| *k == DKey::One && c.segments().iter().all(|x| x.2 <= 0.0))
        };
        let nonneg = |s: &Side| {
            s.inf == 0
                && s.val
                    .iter()
                    .all(|(k, c)| *k == DKey::One && c.segments().iter().all(|x| x.2 >= 0.0))
        };
        DiagBounds {
            upper: if nonpos(&self.upper) {
                self.upper.clone()
            } else {
                Side::unbounded(dep)
            },
            lower: if nonneg(&self.lower) {
                self.lower.clone()
            } else {
                Side::unbounded(dep)
            },
        }
    }
}

/// A coordinate where an assumed modulus is refuted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refuted {
    /// The coordinate of y.
    pub coord: usize,
    /// The proven upper bound on ∂²g/∂y_coord² (rounded up).
    pub bound: f64,
}

/// The first coordinate in `start..end` where `upper` (with `diag(p, j)`,
/// the diagonal entry j of parameter p, when it is known) is proven below
/// `mu`: bound + margin·(|contributions| + mu) < mu. `None` when no
/// coordinate is refuted (or a factor is unknown where it matters).
pub fn refute(
    upper: &Side,
    var: usize,
    (start, end): (usize, usize),
    mu: f64,
    margin: f64,
    diag: &dyn Fn(usize, usize) -> Option<f64>,
) -> Option<Refuted> {
    if upper.unbounded_on(var) || start >= end {
        return None;
    }
    let mut cuts = upper.cuts();
    cuts.push(start);
    cuts.push(end);
    cuts.retain(|&c| c >= start && c <= end);
    cuts.sort_unstable();
    cuts.dedup();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let has_diag = upper
            .abs
            .iter()
            .any(|(k, c)| matches!(k, DKey::Diag(..)) && c.at(a) != 0.0);
        // Without a stored factor the piece is constant: one test.
        let last = if has_diag { b } else { a + 1 };
        for i in a..last {
            if let Some(r) = refute_at(upper, i, mu, margin, diag) {
                return Some(r);
            }
        }
    }
    None
}

fn refute_at(
    upper: &Side,
    i: usize,
    mu: f64,
    margin: f64,
    diag: &dyn Fn(usize, usize) -> Option<f64>,
) -> Option<Refuted> {
    let (mut v, mut a) = (0.0f64, 0.0f64);
    // `abs` is nonzero wherever `val` is (and also where contributions
    // cancelled), so its keys are the ones to visit.
    for (k, c) in &upper.abs {
        let abs = c.at(i);
        if abs == 0.0 {
            continue;
        }
        let coef = upper.val.get(k).map_or(0.0, |c| c.at(i));
        let f = match *k {
            DKey::One => 1.0,
            DKey::Diag(p, s) => diag(p, i.checked_sub(s)?)?,
        };
        if !f.is_finite() {
            return None;
        }
        v += coef * f;
        a += abs * f.abs();
    }
    let bound = (v + margin * (a + mu) + f64::MIN_POSITIVE).next_up();
    (bound.is_finite() && bound < mu).then_some(Refuted { coord: i, bound })
}

#[cfg(test)]
mod tests {
    use super::{refute, Cover, DKey, DiagBounds, Side};

    #[test]
    fn sides_swap_under_negation_and_refute_below_mu() {
        // (y0)^2 − (y1)^2: diagonal exactly (2, −2).
        let a = DiagBounds::exact(DKey::One, Cover::range(0, 1, 2.0));
        let b = DiagBounds::exact(DKey::One, Cover::range(1, 2, 2.0)).neg();
        let g = a.add(&b);
        let none = |_: usize, _: usize| None;
        let r = refute(&g.upper, 0, (0, 2), 1.0, 1e-14, &none).expect("refuted");
        assert_eq!(r.coord, 1);
        assert!(r.bound < -1.99);
        // 2 ≥ 1.5 at coordinate 0 is no contradiction.
        assert!(refute(&a.upper, 0, (0, 1), 1.5, 1e-14, &none).is_none());
        // Unbounded: never refuted.
        let u = g.add(&DiagBounds::convex(1));
        assert!(refute(&u.upper, 0, (0, 2), 1.0, 1e-14, &none).is_none());
        // Cancellation: 1 − 1 + 1e-20 is within the margin of mu = 0 + …
        let c = Side::exact(DKey::One, Cover::range(0, 1, 1.0)).add(
            &DiagBounds::exact(DKey::One, Cover::range(0, 1, 1.0))
                .neg()
                .upper,
        );
        assert!(refute(&c, 0, (0, 1), 1e-20, 1e-14, &none).is_none());
    }
}
