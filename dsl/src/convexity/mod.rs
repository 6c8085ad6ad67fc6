//! The strong-convexity certificate of g in y.
//!
//! One pass over the checked HIR of g (`rules.rs`) bounds the Hessian of
//! every term below by a diagonal matrix over the flattened coordinates of
//! the lower variables ([`cover`]): a term credits only the coordinates it
//! covers, with the multiplicity it covers them (`norm2sq(Y[0])` credits
//! row 0, `(y[0] + y[1])^2` credits nothing, a gather `y[s.index]` credits
//! nothing because its coordinates are not known at check time). Credits
//! are numbers, λ_min of a stored matrix verified at load time by a
//! Cholesky factorisation with a rounding-error margin ([`matrix`]), or
//! positive functions of x. μ is the smallest credited value over all
//! coordinates, rounded down by a relative margin that covers the rounding
//! of the credit arithmetic.

mod calls;
pub mod cover;
pub mod diag;
pub mod matrix;
mod rules;

use crate::ast::Span;
use crate::check::convexity_errors as errors;
use crate::diag::Diagnostic;
use crate::hir::{fmt_num, Hir, ParamDef, VarDef, Verdict};

pub use cover::{Credit, Key};
pub use rules::Curv;

/// What the analysis needs from the checker.
pub struct Input<'a> {
    /// The source text.
    pub src: &'a str,
    /// `let` definitions by index.
    pub lets: &'a [Option<&'a Hir>],
    /// Parameters by index.
    pub params: &'a [Option<&'a ParamDef>],
    /// The lower variables.
    pub lower: &'a [VarDef],
    /// The lower objective.
    pub g: &'a Hir,
    /// Its span (where diagnostics point).
    pub span: Span,
    /// `assume strongly_convex(v, mu = m)`: (variable, m, span).
    pub assumptions: &'a [(usize, f64, Span)],
}

/// The certificate as proven at check time, completed at load time.
#[derive(Debug, Clone, PartialEq)]
pub struct Certificate {
    /// The Hessian of g is ⪰ diag(credit).
    pub credit: Credit,
    /// Each lower variable: name and (offset, length) when known.
    pub vars: Vec<(String, Option<(usize, usize)>)>,
    /// Number of coordinates of y, when known.
    pub n: Option<usize>,
    /// Parameters whose PSD-ness convexity relies on, with a use.
    pub quads: Vec<(usize, Span)>,
    /// Congruent products λ_min(Mᵀ·sym(P)·M) credited (P = I when `None`):
    /// entry j is credit key `Lambda(param_count + j)`.
    pub congruent: Vec<(Option<usize>, usize)>,
    /// Number of parameters (the first congruent key).
    pub param_count: usize,
    /// Assumed moduli by lower variable.
    pub assumed: Vec<Option<f64>>,
    /// Where each assumption is stated.
    pub assumed_at: Vec<Option<Span>>,
    /// Upper bounds on the diagonal of ∇²ᵧᵧ g (refute assumptions, E0308).
    pub upper: diag::Side,
    /// Each lower variable's (rank, columns), for coordinate names.
    pub layout: Vec<(usize, usize)>,
    /// Where g is (diagnostics at load time).
    pub g_span: Span,
    /// Relative rounding margin applied to numeric μ.
    pub margin: f64,
    /// Names of the parameters (for texts).
    pub param_names: Vec<String>,
}

/// The result of the check-time analysis.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The verdict (final unless a λ_min fails to verify at load time).
    pub verdict: Verdict,
    /// The symbolic μ.
    pub mu_text: String,
    /// Every term is C².
    pub smooth: bool,
    /// Weight fields used (non-negativity is verified at load time).
    pub weights: Vec<(usize, Span)>,
    /// The certificate.
    pub cert: Certificate,
    /// Diagnostics (errors, warnings, notes).
    pub diags: Vec<Diagnostic>,
}

/// Per interval of coordinates: what is credited there.
struct Piece {
    start: usize,
    end: usize,
    one: f64,
    lambda: Vec<(usize, f64)>,
    positive: Vec<(String, f64)>,
}

fn pieces(credit: &Credit, n: usize) -> Vec<Piece> {
    let cuts = credit.cuts(n);
    cuts.windows(2)
        .filter(|w| w[0] < w[1])
        .map(|w| {
            let mut p = Piece {
                start: w[0],
                end: w[1],
                one: 0.0,
                lambda: Vec::new(),
                positive: Vec::new(),
            };
            for (k, c) in &credit.parts {
                let v = c.at(w[0]);
                if v == 0.0 {
                    continue;
                }
                match k {
                    Key::One => p.one += v,
                    Key::Lambda(q) => p.lambda.push((*q, v)),
                    Key::Positive(t) => p.positive.push((t.clone(), v)),
                }
            }
            p
        })
        .collect()
}

fn times(v: f64, t: &str) -> String {
    if v.to_bits() == 1.0f64.to_bits() {
        t.to_string()
    } else {
        format!("{}*{t}", fmt_num(v))
    }
}

impl Piece {
    fn text(&self, names: &[String]) -> String {
        let mut terms = Vec::new();
        if self.one > 0.0 {
            terms.push(fmt_num(self.one));
        }
        for &(p, v) in &self.lambda {
            let name = names.get(p).map_or("?", String::as_str);
            terms.push(times(v, &format!("λmin({name})")));
        }
        for (t, v) in &self.positive {
            terms.push(times(*v, t));
        }
        if terms.is_empty() {
            "0".into()
        } else {
            terms.join(" + ")
        }
    }
}

/// The symbolic μ: the credit of the least-credited coordinates.
fn mu_text(ps: &[Piece], names: &[String]) -> String {
    let mut texts: Vec<String> = Vec::new();
    for p in ps {
        let t = p.text(names);
        if !texts.contains(&t) {
            texts.push(t);
        }
    }
    match texts.len() {
        0 => "0".into(),
        1 => texts.remove(0),
        k if k <= 4 => format!("min({})", texts.join(", ")),
        _ => format!("min({}, …)", texts[..4].join(", ")),
    }
}

/// The name of coordinate `i` of y, e.g. `Y[1, 0]`.
fn coord_name(cert: &Certificate, i: usize) -> String {
    for ((name, r), &(rank, c)) in cert.vars.iter().zip(&cert.layout) {
        if let Some((o, l)) = r {
            if i >= *o && i < o + l {
                let k = i - o;
                return match rank {
                    0 => name.clone(),
                    1 => format!("{name}[{k}]"),
                    _ => format!("{name}[{}, {}]", k / c.max(1), k % c.max(1)),
                };
            }
        }
    }
    format!("coordinate {i}")
}

/// E0308 for the first assumption the upper diagonal bound refutes, with
/// `diag(p, j)` the stored diagonal entries when known (load time).
fn refute_assumptions(
    cert: &Certificate,
    diag: &dyn Fn(usize, usize) -> Option<f64>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (v, (a, at)) in cert.assumed.iter().zip(&cert.assumed_at).enumerate() {
        let (Some(m), Some(at), Some((_, Some(range)))) = (a, at, cert.vars.get(v)) else {
            continue;
        };
        let (o, l) = *range;
        if let Some(r) = diag::refute(&cert.upper, v, (o, o + l), *m, cert.margin, diag) {
            let any_stored = cert.upper.val.keys().any(|k| *k != diag::DKey::One);
            out.push(errors::assumption_exceeds_curvature(
                &cert.vars[v].0,
                &coord_name(cert, r.coord),
                r.bound,
                *m,
                (*at, cert.g_span),
                any_stored,
            ));
        }
    }
    out
}

/// Runs the check-time analysis.
pub fn analyse(inp: &Input<'_>) -> Outcome {
    let mut w = rules::Walker::new(inp.src, inp.lets, inp.params, inp.lower);
    let info = w.analyse(inp.g);
    let mut diags = Vec::new();
    let mut seen = Vec::new();
    for (span, what) in &w.overflows {
        if seen.contains(span) {
            continue;
        }
        seen.push(*span);
        diags.push(errors::coefficient_overflow(what, *span));
    }
    let vars: Vec<(String, Option<(usize, usize)>)> = inp
        .lower
        .iter()
        .zip(&w.offsets)
        .map(|(v, r)| (v.name.clone(), *r))
        .collect();
    let n = w
        .offsets
        .iter()
        .try_fold(0usize, |acc, r| r.map(|(_, l)| acc + l));
    let mut assumed = vec![None; inp.lower.len()];
    let mut assumed_at = vec![None; inp.lower.len()];
    for &(v, m, at) in inp.assumptions {
        if let (Some(a), Some(s)) = (assumed.get_mut(v), assumed_at.get_mut(v)) {
            *a = Some(m);
            *s = Some(at);
        }
    }
    let param_names: Vec<String> = (0..inp.params.len() + w.congruent.len())
        .map(|p| w.key_name(p))
        .collect();
    let cert = Certificate {
        credit: info.credit.clone(),
        vars,
        n,
        quads: w.quads.clone(),
        congruent: w.congruent.iter().map(|c| (c.0, c.1)).collect(),
        param_count: inp.params.len(),
        assumed,
        assumed_at,
        upper: info.diag.upper.clone(),
        layout: inp
            .lower
            .iter()
            .map(|v| (v.shape.rank(), v.shape.rows_cols().1))
            .collect(),
        g_span: inp.span,
        margin: 4.0 * (w.nodes as f64 + 16.0) * f64::EPSILON,
        param_names,
    };
    let ps = n.map(|n| pieces(&cert.credit, n)).unwrap_or_default();
    let text = mu_text(&ps, &cert.param_names);
    let verdict = if diags.is_empty() {
        verdict(inp, &info, &cert, &ps, &text, &mut diags)
    } else {
        Verdict::Unknown
    };
    if !info.smooth {
        diags.push(errors::not_twice_differentiable(inp.span));
    }
    let mut weights = w.weights.clone();
    weights.sort_by_key(|&(d, s)| (d, s.start));
    weights.dedup_by_key(|w| w.0);
    Outcome {
        verdict,
        mu_text: text,
        smooth: info.smooth,
        weights,
        cert,
        diags,
    }
}

fn verdict(
    inp: &Input<'_>,
    info: &rules::Info,
    cert: &Certificate,
    ps: &[Piece],
    text: &str,
    diags: &mut Vec<Diagnostic>,
) -> Verdict {
    let span = inp.span;
    let lower_name = inp.lower.first().map_or("y", |v| v.name.as_str());
    if !inp.assumptions.is_empty() {
        let mut ok = true;
        // At check time only exact numbers count; stored matrices wait for
        // `evaluate`.
        let refuted = refute_assumptions(cert, &|_, _| None);
        for &(v, m, aspan) in inp.assumptions {
            let name = inp.lower.get(v).map_or("y", |d| d.name.as_str());
            let depends = v < 64 && info.dep_y & (1u64 << v) != 0;
            if depends && matches!(info.curv, Curv::Affine | Curv::Concave) {
                let what = if info.curv == Curv::Affine {
                    "affine"
                } else {
                    "concave"
                };
                diags.push(errors::assumption_contradicts(name, what, m, aspan, span));
                ok = false;
            } else if let Some(d) = refuted
                .iter()
                .find(|d| d.primary.as_ref().is_some_and(|l| l.span == aspan))
            {
                diags.push(d.clone());
                ok = false;
            } else {
                let proven = matches!(info.curv, Curv::Convex | Curv::Affine).then_some(text);
                diags.push(errors::assumed_not_proven(name, m, aspan, proven));
            }
        }
        return if ok {
            Verdict::Assumed
        } else {
            Verdict::Unknown
        };
    }
    if matches!(info.curv, Curv::Unknown | Curv::Concave) {
        diags.push(errors::not_provably_convex(lower_name, span));
        return Verdict::Unknown;
    }
    let numeric = |p: &Piece| p.one > 0.0 || p.lambda.iter().any(|l| l.1 > 0.0);
    let uncovered = if cert.n.is_none() {
        Some("the sizes of the lower variables are not known yet".to_string())
    } else {
        ps.iter()
            .find(|p| !numeric(p) && p.positive.is_empty())
            .map(|p| {
                format!("no term gives curvature to `{}`", coord_name(cert, p.start))
                    + &if p.end - p.start > 1 {
                        format!(" nor to the {} coordinates after it", p.end - p.start - 1)
                    } else {
                        String::new()
                    }
            })
    };
    if let Some(why) = uncovered {
        diags.push(errors::not_strongly_convex(lower_name, why, span));
        return Verdict::Convex;
    }
    if ps.iter().all(numeric) {
        return Verdict::StronglyConvex;
    }
    diags.push(errors::mu_depends_on_x(text, span));
    Verdict::StronglyConvexDependsOnX
}

/// The certificate completed with the stored parameters.
#[derive(Debug, Clone)]
pub struct Evaluated {
    /// The certified (or assumed) μ, when positive.
    pub mu: Option<f64>,
    /// The verified λ_min lower bound of every parameter used in `quad`.
    pub lambda_min: Vec<(String, f64)>,
    /// The verdict, downgraded when a λ_min could not be verified positive.
    pub verdict: Verdict,
    /// Warnings (W0301 after a downgrade).
    pub warnings: Vec<Diagnostic>,
}

/// Verifies λ_min of every `quad` matrix and computes μ.
pub fn evaluate(
    cert: &Certificate,
    verdict: &Verdict,
    span: Span,
    params: &[ParamDef],
    values: &[Vec<f64>],
) -> Result<Evaluated, Vec<Diagnostic>> {
    let mut lambdas: Vec<(usize, f64)> = Vec::new();
    let mut lambda_min = Vec::new();
    let mut refused = Vec::new();
    let mut budget = matrix::MAX_VERIFY_WORK;
    let mut unverified: Vec<String> = Vec::new();
    for &(p, use_span) in &cert.quads {
        let (Some(def), Some(vals)) = (params.get(p), values.get(p)) else {
            continue;
        };
        let (n, _) = def.shape.rows_cols();
        let hint = match def.value {
            crate::hir::Init::Spd { kappa, .. } => Some(1.0 / kappa),
            crate::hir::Init::Eye => Some(1.0),
            _ => None,
        };
        let b = matrix::lambda_min_bound_within(vals, n, hint, &mut budget);
        if b.out_of_budget {
            unverified.push(def.name.clone());
        }
        if b.indefinite {
            refused.push(errors::matrix_not_psd(
                &def.name, use_span, def.span, b.estimate, b.tau,
            ));
            continue;
        }
        lambdas.push((p, b.lower.max(0.0)));
        lambda_min.push((def.name.clone(), b.lower));
    }
    if *verdict == Verdict::Assumed {
        let diag_of = |p: usize, j: usize| {
            let (def, vals) = (params.get(p)?, values.get(p)?);
            let (n, c) = def.shape.rows_cols();
            (n == c && j < n)
                .then(|| vals.get(j * n + j).copied())
                .flatten()
        };
        refused.extend(refute_assumptions(cert, &diag_of));
    }
    for (j, &(p, m)) in cert.congruent.iter().enumerate() {
        let key = cert.param_count + j;
        let name = cert.param_names.get(key).cloned().unwrap_or_default();
        let (Some(mdef), Some(mv)) = (params.get(m), values.get(m)) else {
            continue;
        };
        let pv = match p {
            Some(p) => match values.get(p) {
                Some(v) => Some(v.as_slice()),
                None => continue,
            },
            None => None,
        };
        match matrix::congruent_bound(mv, mdef.shape.rows_cols(), pv, &mut budget) {
            Some(b) if !b.indefinite => {
                lambdas.push((key, b.lower.max(0.0)));
                lambda_min.push((name, b.lower));
            }
            Some(_) => lambdas.push((key, 0.0)),
            None => unverified.push(name),
        }
    }
    if !refused.is_empty() {
        return Err(refused);
    }
    let n = cert.n.unwrap_or(0);
    let ps = pieces(&cert.credit, n);
    let value = |p: &Piece| {
        let mut v = p.one;
        for &(q, k) in &p.lambda {
            let l = lambdas.iter().find(|l| l.0 == q).map_or(0.0, |l| l.1);
            v += k * l;
        }
        v
    };
    let down = |v: f64| (v * (1.0 - cert.margin)).next_down();
    let proven = ps.iter().map(value).fold(f64::INFINITY, f64::min);
    let mut warnings = Vec::new();
    let mut verdict = verdict.clone();
    let mu = match verdict {
        Verdict::StronglyConvex => Some(down(proven)),
        Verdict::Assumed => {
            let mut m = f64::INFINITY;
            for ((_, r), a) in cert.vars.iter().zip(&cert.assumed) {
                match (a, r) {
                    (Some(a), _) => m = m.min(*a),
                    (None, Some((o, l))) => {
                        for p in ps.iter().filter(|p| p.start < o + l && p.end > *o) {
                            m = m.min(down(value(p)));
                        }
                    }
                    (None, None) => m = 0.0,
                }
            }
            Some(m)
        }
        _ => None,
    };
    let mu = match mu {
        Some(m) if m > 0.0 && m.is_finite() => Some(m),
        Some(_) => {
            let mut names: Vec<&str> = cert
                .quads
                .iter()
                .filter_map(|q| params.get(q.0).map(|p| p.name.as_str()))
                .collect();
            names.extend(
                cert.param_names
                    .iter()
                    .skip(cert.param_count)
                    .map(String::as_str),
            );
            let unverified: Vec<&str> = unverified.iter().map(String::as_str).collect();
            warnings.push(errors::modulus_not_positive(span, &names, &unverified));
            verdict = Verdict::Convex;
            None
        }
        None => None,
    };
    Ok(Evaluated {
        mu,
        lambda_min,
        verdict,
        warnings,
    })
}
