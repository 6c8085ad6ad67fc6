//! Per-coordinate curvature credits: a piecewise-constant, non-negative
//! function over the flattened coordinates of all lower variables
//! ([`Cover`]), and a sum of such functions, each multiplied by a factor
//! that is a number, a verified λ_min of a parameter (known at load time)
//! or a positive function of x ([`Credit`]).
//!
//! A credit `c` of a term t means ∇²ᵧᵧ t ⪰ diag(c) everywhere. Credits of
//! sums add; this is sound because diag(c₁) + diag(c₂) = diag(c₁ + c₂).
//! Every credit value is ≥ 0 (only positive factors scale a credit), so the
//! rounding error of the float arithmetic that builds them is relative.

use std::collections::BTreeMap;

/// A piecewise-constant function over coordinates `0..`: sorted, disjoint
/// half-open segments `(start, end, value)` with value > 0; zero elsewhere.
/// Normalised after every operation, so its size is bounded by the number
/// of distinct segment ends, not by how often a term is reused.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cover {
    segs: Vec<(usize, usize, f64)>,
}

impl Cover {
    /// `value` on `start..end`, zero elsewhere.
    pub fn range(start: usize, end: usize, value: f64) -> Cover {
        if start >= end || value == 0.0 {
            return Cover::default();
        }
        Cover {
            segs: vec![(start, end, value)],
        }
    }

    /// `true` when zero everywhere.
    pub fn is_zero(&self) -> bool {
        self.segs.is_empty()
    }

    /// The segments (sorted, disjoint).
    pub fn segments(&self) -> &[(usize, usize, f64)] {
        &self.segs
    }

    /// Pointwise product with a constant `k ≥ 0`.
    pub fn scale(&self, k: f64) -> Cover {
        if k == 0.0 {
            return Cover::default();
        }
        Cover {
            segs: self.segs.iter().map(|&(a, b, v)| (a, b, v * k)).collect(),
        }
    }

    /// Pointwise absolute value.
    pub fn abs(&self) -> Cover {
        Cover {
            segs: self.segs.iter().map(|&(a, b, v)| (a, b, v.abs())).collect(),
        }
    }

    /// Pointwise sum.
    pub fn add(&self, o: &Cover) -> Cover {
        if o.is_zero() {
            return self.clone();
        }
        if self.is_zero() {
            return o.clone();
        }
        let mut cuts: Vec<usize> = self
            .segs
            .iter()
            .chain(&o.segs)
            .flat_map(|&(a, b, _)| [a, b])
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut segs: Vec<(usize, usize, f64)> = Vec::with_capacity(cuts.len());
        for w in cuts.windows(2) {
            let v = self.at(w[0]) + o.at(w[0]);
            if v == 0.0 {
                continue;
            }
            match segs.last_mut() {
                Some(last) if last.1 == w[0] && last.2.to_bits() == v.to_bits() => last.1 = w[1],
                _ => segs.push((w[0], w[1], v)),
            }
        }
        Cover { segs }
    }

    /// The value at coordinate `i`.
    pub fn at(&self, i: usize) -> f64 {
        let k = self.segs.partition_point(|s| s.1 <= i);
        match self.segs.get(k) {
            Some(&(a, _, v)) if a <= i => v,
            _ => 0.0,
        }
    }

    /// The largest value (0 when zero everywhere).
    pub fn max(&self) -> f64 {
        self.segs.iter().map(|s| s.2).fold(0.0, f64::max)
    }
}

/// What multiplies a [`Cover`] in a [`Credit`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// The number 1.
    One,
    /// λ_min of the symmetric part of a parameter, verified at load time.
    Lambda(usize),
    /// A function of x (and parameters) that is > 0 for every x, shown as
    /// this text. It never enters a numeric μ.
    Positive(String),
}

/// A lower bound on a Hessian in y: ∇² ⪰ diag(Σ_k value(k) · cover_k).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Credit {
    /// The covers by factor.
    pub parts: BTreeMap<Key, Cover>,
}

impl Credit {
    /// `value` times one cover.
    pub fn of(key: Key, cover: Cover) -> Credit {
        let mut parts = BTreeMap::new();
        if !cover.is_zero() {
            parts.insert(key, cover);
        }
        Credit { parts }
    }

    /// `true` when no coordinate is credited.
    pub fn is_zero(&self) -> bool {
        self.parts.is_empty()
    }

    /// The sum of two credits.
    pub fn add(&self, o: &Credit) -> Credit {
        let mut parts = self.parts.clone();
        for (k, c) in &o.parts {
            let sum = match parts.get(k) {
                Some(mine) => mine.add(c),
                None => c.clone(),
            };
            parts.insert(k.clone(), sum);
        }
        Credit { parts }
    }

    /// Multiplied by a number `k ≥ 0`.
    pub fn scale(&self, k: f64) -> Credit {
        if k == 0.0 {
            return Credit::default();
        }
        Credit {
            parts: self
                .parts
                .iter()
                .map(|(key, c)| (key.clone(), c.scale(k)))
                .collect(),
        }
    }

    /// Multiplied by a positive function of x shown as `text`: every part
    /// becomes a [`Key::Positive`] part.
    pub fn scale_positive(&self, text: &str, lambda: &dyn Fn(usize) -> String) -> Credit {
        let mut out = Credit::default();
        for (key, c) in &self.parts {
            let t = match key {
                Key::One => text.to_string(),
                Key::Lambda(p) => format!("{text}*{}", lambda(*p)),
                Key::Positive(s) => format!("{text}*{s}"),
            };
            out = out.add(&Credit::of(Key::Positive(cap(&t)), c.clone()));
        }
        out
    }

    /// The largest numeric coefficient of any part (to detect overflow).
    pub fn max_coefficient(&self) -> f64 {
        self.parts.values().map(Cover::max).fold(0.0, f64::max)
    }

    /// Every segment end of every part, sorted, with 0 and `n`.
    pub fn cuts(&self, n: usize) -> Vec<usize> {
        let mut cuts: Vec<usize> = vec![0, n];
        for c in self.parts.values() {
            for &(a, b, _) in c.segments() {
                cuts.push(a.min(n));
                cuts.push(b.min(n));
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        cuts
    }
}

/// Longest symbolic factor text kept; longer ones are abbreviated, so text
/// never grows with the depth of `let` chains.
pub const MAX_TEXT: usize = 80;

/// `t`, or an abbreviation when it is longer than [`MAX_TEXT`].
pub fn cap(t: &str) -> String {
    if t.len() <= MAX_TEXT {
        t.to_string()
    } else {
        "(a positive function of x)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::{Cover, Credit, Key};

    #[test]
    fn covers_add_pointwise_and_stay_normalised() {
        let a = Cover::range(0, 4, 1.0);
        let b = Cover::range(2, 6, 2.0);
        let s = a.add(&b);
        assert_eq!(s.segments(), &[(0, 2, 1.0), (2, 4, 3.0), (4, 6, 2.0)]);
        assert_eq!(s.at(1).to_bits(), 1.0f64.to_bits());
        assert_eq!(s.at(6).to_bits(), 0.0f64.to_bits());
        // Doubling a cover does not grow it.
        let mut d = s.clone();
        for _ in 0..60 {
            d = d.add(&d);
        }
        assert_eq!(d.segments().len(), 3);
        let c = Credit::of(Key::One, a).add(&Credit::of(Key::Lambda(0), b));
        assert_eq!(c.cuts(8), vec![0, 2, 4, 6, 8]);
    }
}
