//! The strong-convexity analysis of g in y as it is computed today: the
//! curvature, sign and modulus attributes ([`Attr`]) carried by every checked
//! expression, and the final verdict. Kept in one place so it can be replaced
//! as a whole.

use std::collections::BTreeMap;

use crate::ast::{BinOp, Call, ExprKind, LevelKind, Span};
use crate::hir::{fmt_num, Analysis, Deferred, Dim, Hir, Shape, Verdict};
use crate::hir::{Builtin, HirKind};

use super::{errors, Checker, Def};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Curv {
    Const,
    Affine,
    Convex,
    Concave,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sign {
    Pos,
    Nonneg,
    Zero,
    Nonpos,
    Neg,
    Unknown,
}

impl Sign {
    pub(super) fn of(v: f64) -> Sign {
        if v > 0.0 {
            Sign::Pos
        } else if v < 0.0 {
            Sign::Neg
        } else if v == 0.0 {
            Sign::Zero
        } else {
            Sign::Unknown
        }
    }
    pub(super) fn nonneg(self) -> bool {
        matches!(self, Sign::Pos | Sign::Nonneg | Sign::Zero)
    }
    pub(super) fn nonpos(self) -> bool {
        matches!(self, Sign::Neg | Sign::Nonpos | Sign::Zero)
    }
    pub(super) fn neg(self) -> Sign {
        match self {
            Sign::Pos => Sign::Neg,
            Sign::Nonneg => Sign::Nonpos,
            Sign::Nonpos => Sign::Nonneg,
            Sign::Neg => Sign::Pos,
            s => s,
        }
    }
    pub(super) fn mul(self, o: Sign) -> Sign {
        use Sign::{Neg, Nonneg, Nonpos, Pos, Unknown, Zero};
        match (self, o) {
            (Zero, _) | (_, Zero) => Zero,
            (Unknown, _) | (_, Unknown) => Unknown,
            (Pos, s) | (s, Pos) => s,
            (Neg, s) | (s, Neg) => s.neg(),
            (Nonneg, Nonneg) | (Nonpos, Nonpos) => Nonneg,
            (Nonneg, Nonpos) | (Nonpos, Nonneg) => Nonpos,
        }
    }
    pub(super) fn add(self, o: Sign) -> Sign {
        if self.nonneg() && o.nonneg() {
            if self == Sign::Pos || o == Sign::Pos {
                Sign::Pos
            } else {
                Sign::Nonneg
            }
        } else if self.nonpos() && o.nonpos() {
            if self == Sign::Neg || o == Sign::Neg {
                Sign::Neg
            } else {
                Sign::Nonpos
            }
        } else {
            Sign::Unknown
        }
    }
}

/// A lower bound on a modulus: a numeric part, plus symbolic factors.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Mu {
    /// Numeric value when fully known at check time.
    pub(super) value: Option<f64>,
    /// The symbolic form.
    pub(super) text: String,
    /// Depends on an upper variable.
    pub(super) dep_x: bool,
    /// λ_min factors to fill in at load time: (param, factor, span).
    pub(super) psd: Vec<(usize, f64, Span)>,
}

impl Mu {
    pub(super) fn num(v: f64, text: impl Into<String>) -> Mu {
        Mu {
            value: Some(v),
            text: text.into(),
            dep_x: false,
            psd: Vec::new(),
        }
    }
    pub(super) fn scale(&self, k: &Attr, ktext: &str) -> Mu {
        let value = match (self.value, k.konst) {
            (Some(v), Some(c)) => Some(v * c),
            _ => None,
        };
        let text = match k.konst {
            Some(c) if (c - 1.0).abs() < f64::EPSILON => self.text.clone(),
            Some(c) => format!("{}*{}", fmt_num(c), paren(&self.text)),
            None => format!("{}*{}", paren(ktext), paren(&self.text)),
        };
        let psd = match k.konst {
            Some(c) => self.psd.iter().map(|&(p, f, s)| (p, f * c, s)).collect(),
            None => Vec::new(),
        };
        Mu {
            value,
            text,
            dep_x: self.dep_x || k.dep_x != 0 || k.konst.is_none(),
            psd,
        }
    }
    pub(super) fn add(&self, o: &Mu) -> Mu {
        Mu {
            value: match (self.value, o.value) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            },
            text: format!("{} + {}", self.text, o.text),
            dep_x: self.dep_x || o.dep_x,
            psd: self.psd.iter().chain(&o.psd).copied().collect(),
        }
    }
}

pub(super) fn paren(s: &str) -> String {
    if s.contains([' ', '+', '-', '*', '/']) && !(s.starts_with('(') && s.ends_with(')')) {
        format!("({s})")
    } else {
        s.to_string()
    }
}

#[derive(Debug, Clone)]
pub(super) struct Attr {
    pub(super) hir: Hir,
    /// Bit i: depends on upper variable i.
    pub(super) dep_x: u64,
    /// Bit i: depends on lower variable i.
    pub(super) dep_y: u64,
    pub(super) curv: Curv,
    pub(super) sign: Sign,
    pub(super) smooth: bool,
    /// Per lower variable: a lower bound on the modulus.
    pub(super) mu: BTreeMap<usize, Mu>,
    /// The expression is α·y_v + (y-free terms).
    pub(super) ycoef: Option<(usize, f64)>,
    /// The scalar value when known at check time.
    pub(super) konst: Option<f64>,
    /// An integer index bound (class labels, row indices).
    pub(super) int_bound: Option<Dim>,
    /// Weight fields used (deferred non-negativity).
    pub(super) weights: Vec<(usize, Span)>,
}

impl Attr {
    pub(super) fn leaf(hir: Hir) -> Attr {
        Attr {
            hir,
            dep_x: 0,
            dep_y: 0,
            curv: Curv::Const,
            sign: Sign::Unknown,
            smooth: true,
            mu: BTreeMap::new(),
            ycoef: None,
            konst: None,
            int_bound: None,
            weights: Vec::new(),
        }
    }
    pub(super) fn shape(&self) -> &Shape {
        &self.hir.shape
    }
}

pub(super) fn add_curv(a: Curv, b: Curv) -> Curv {
    use Curv::{Affine, Concave, Const, Convex, Unknown};
    match (a, b) {
        (Const | Affine, x) | (x, Const | Affine) => x,
        (Convex, Convex) => Convex,
        (Concave, Concave) => Concave,
        _ => Unknown,
    }
}

impl Checker<'_> {
    pub(super) fn assumes(&mut self, assumes: &[&Call]) -> Option<f64> {
        let mut mu = None;
        for a in assumes {
            let name = a.func.to_string();
            if name.as_str() == "strongly_convex" {
                let var_ok = matches!(
                    a.args.first().map(|x| &x.value.kind),
                    Some(ExprKind::Path(p)) if matches!(self.names.get(&p.to_string()), Some((Def::Var(LevelKind::Lower, _), _)))
                );
                let m = a
                    .args
                    .iter()
                    .find(|x| x.name.as_ref().is_some_and(|n| n.name == "mu"))
                    .and_then(|x| match x.value.kind {
                        ExprKind::Num(v) => Some(v),
                        _ => None,
                    });
                match (var_ok, m) {
                    (true, Some(v)) if v > 0.0 => mu = Some(v),
                    _ => {
                        let d = errors::invalid_assumption(a.span);
                        self.err(d);
                    }
                }
            } else {
                let d = errors::unknown_assumption(&name, a.func.span);
                self.err(d);
            }
        }
        mu
    }

    pub(super) fn analyse(
        &mut self,
        g: &Attr,
        b: &crate::ast::LevelBlock,
        assumed: Option<f64>,
    ) -> Analysis {
        let span = b.objective.span;
        if g.dep_y == 0 {
            let d = errors::g_without_y(span, b.vars.first().map_or("y", |v| v.name.name.as_str()));
            self.err(d);
        } else if g.dep_x == 0 {
            let d = errors::g_without_x(span);
            self.err(d);
        }
        let mut deferred: Vec<Deferred> = g
            .weights
            .iter()
            .map(|&(data, span)| Deferred::NonnegWeights { data, span })
            .collect();
        deferred.dedup();
        let n = self.lower.len();
        let mut mu_const = vec![0.0; n];
        let mut texts = Vec::new();
        let mut depends_x = false;
        let mut all_covered = true;
        for (v, mu_v) in mu_const.iter_mut().enumerate().take(n) {
            if let Some(m) = g.mu.get(&v) {
                if m.dep_x {
                    depends_x = true;
                }
                *mu_v = m.value.unwrap_or(0.0);
                for &(param, factor, span) in &m.psd {
                    deferred.push(Deferred::PsdParam {
                        param,
                        span,
                        factor,
                        var: v,
                    });
                }
                let positive =
                    m.value.is_some_and(|x| x > 0.0) || m.dep_x || m.psd.iter().any(|p| p.1 > 0.0);
                all_covered &= positive;
                texts.push(m.text.clone());
            } else {
                all_covered = false;
                texts.push("0".into());
            }
        }
        let mu_text = texts.join(", ");
        let lower_name = b.vars.first().map_or("y", |v| v.name.name.as_str());
        let verdict = if let Some(m) = assumed {
            let d = errors::assumed_not_proven(m, span);
            let _ = d;
            Verdict::Assumed
        } else if matches!(g.curv, Curv::Unknown | Curv::Concave) {
            let d = errors::not_provably_convex(lower_name, span);
            self.err(d);
            Verdict::Unknown
        } else if g.curv == Curv::Affine || !all_covered {
            let d = errors::not_strongly_convex(lower_name, span);
            self.err(d);
            Verdict::Convex
        } else if depends_x {
            let d = errors::mu_depends_on_x(&mu_text, span);
            self.err(d);
            Verdict::StronglyConvexDependsOnX
        } else {
            Verdict::StronglyConvex
        };
        if !g.smooth {
            let d = errors::not_smooth(span);
            self.err(d);
        }
        Analysis {
            verdict,
            mu_text,
            mu_const,
            smooth: g.smooth,
            deferred,
            assumed_mu: assumed,
        }
    }

    /// The attributes of built-in `b` applied to `args` (of result shape
    /// `shape`): dependencies, sign, constant value, curvature and modulus.
    pub(super) fn call_attr(&self, c: &Call, b: Builtin, args: &[Attr], shape: Shape) -> Attr {
        let span = c.span;
        let x = &args[0];
        let mut a = Attr::leaf(Hir {
            kind: HirKind::Call(b, args.iter().map(|a| a.hir.clone()).collect()),
            shape,
            span,
        });
        a.dep_x = args.iter().fold(0, |m, a| m | a.dep_x);
        a.dep_y = args.iter().fold(0, |m, a| m | a.dep_y);
        a.smooth = args.iter().all(|a| a.smooth);
        a.weights = args
            .iter()
            .flat_map(|a| a.weights.iter().copied())
            .collect();
        let all_const = a.dep_y == 0;
        if matches!(b, Builtin::Abs | Builtin::Norm2) && !all_const {
            a.smooth = false;
        }
        if b == Builtin::Correct {
            // Piecewise constant: no useful derivative, metrics only.
            a.smooth = false;
            a.curv = if all_const {
                Curv::Const
            } else {
                Curv::Unknown
            };
            return a;
        }
        a.sign = match b {
            Builtin::Exp | Builtin::Sigmoid | Builtin::Softplus => Sign::Pos,
            Builtin::Abs
            | Builtin::Norm2
            | Builtin::Norm2sq
            | Builtin::Sqrt
            | Builtin::LogisticLoss
            | Builtin::SoftmaxXent
            | Builtin::SqLoss
            | Builtin::Correct => Sign::Nonneg,
            Builtin::Sum | Builtin::Mean => x.sign,
            _ => Sign::Unknown,
        };
        if all_const {
            a.curv = Curv::Const;
            if let Some(v) = x.konst {
                a.konst = match b {
                    Builtin::Exp => Some(v.exp()),
                    Builtin::Log if v > 0.0 => Some(v.ln()),
                    Builtin::Sqrt if v >= 0.0 => Some(v.sqrt()),
                    Builtin::Abs => Some(v.abs()),
                    _ => None,
                };
            }
            return a;
        }
        self.builtin_curv(c, b, args, &mut a);
        a
    }

    /// The curvature and modulus of built-in `b` of `args` that depend on y.
    fn builtin_curv(&self, c: &Call, b: Builtin, args: &[Attr], a: &mut Attr) {
        let x = &args[0];
        let affine = |a: &Attr| matches!(a.curv, Curv::Affine | Curv::Const);
        let lin = |v: &Attr| v.ycoef;
        a.curv = match b {
            Builtin::Exp
            | Builtin::Softplus
            | Builtin::Logsumexp
            | Builtin::Abs
            | Builtin::Norm2
                if affine(x) =>
            {
                Curv::Convex
            }
            Builtin::Log | Builtin::Sqrt if affine(x) => Curv::Concave,
            Builtin::Sum | Builtin::Mean => {
                a.ycoef = None;
                if x.curv == Curv::Convex {
                    a.mu = x.mu.clone();
                    if b == Builtin::Mean {
                        if let Some(n) = x.shape().len().filter(|&n| n > 1) {
                            let k = Attr {
                                konst: Some(1.0 / n as f64),
                                sign: Sign::Pos,
                                ..Attr::leaf(x.hir.clone())
                            };
                            a.mu = x.mu.iter().map(|(v, m)| (*v, m.scale(&k, ""))).collect();
                        }
                    }
                }
                x.curv
            }
            Builtin::Norm2sq if affine(x) => {
                if let Some((v, c)) = lin(x) {
                    a.mu.insert(v, Mu::num(2.0 * c * c, fmt_num(2.0 * c * c)));
                }
                Curv::Convex
            }
            Builtin::SqLoss if affine(x) && args[1].dep_y == 0 => {
                if let Some((v, c)) = lin(x) {
                    a.mu.insert(v, Mu::num(c * c, fmt_num(c * c)));
                }
                Curv::Convex
            }
            Builtin::Dot => {
                let (p, q) = (&args[0], &args[1]);
                if (p.dep_y == 0 && affine(q)) || (q.dep_y == 0 && affine(p)) {
                    Curv::Affine
                } else {
                    Curv::Unknown
                }
            }
            Builtin::Quad if affine(&args[1]) => {
                if let (HirKind::Param(pi), Some((v, coef))) = (&args[0].hir.kind, lin(&args[1])) {
                    let pname = self
                        .params
                        .get(*pi)
                        .and_then(|p| p.as_ref())
                        .map_or("P", |p| p.0.name.as_str())
                        .to_string();
                    let factor = 2.0 * coef * coef;
                    let text = if (factor - 1.0).abs() < f64::EPSILON {
                        format!("λmin({pname})")
                    } else {
                        format!("{}*λmin({pname})", fmt_num(factor))
                    };
                    a.mu.insert(
                        v,
                        Mu {
                            value: None,
                            text,
                            dep_x: false,
                            psd: vec![(*pi, factor, c.args[0].value.span)],
                        },
                    );
                    Curv::Convex
                } else if let HirKind::Param(pi) = &args[0].hir.kind {
                    // Convex when P is PSD: record the fact with factor 0.
                    let v = args[1].dep_y.trailing_zeros() as usize;
                    a.mu.insert(
                        v,
                        Mu {
                            value: None,
                            text: "0".into(),
                            dep_x: false,
                            psd: vec![(*pi, 0.0, c.args[0].value.span)],
                        },
                    );
                    Curv::Convex
                } else {
                    Curv::Unknown
                }
            }
            Builtin::LogisticLoss | Builtin::SoftmaxXent if affine(x) && args[1].dep_y == 0 => {
                Curv::Convex
            }
            _ => Curv::Unknown,
        };
    }

    /// The attributes of `l op r` (of result shape `shape`): dependencies,
    /// sign, constant value, curvature and modulus.
    pub(super) fn binary_attr(
        &self,
        op: BinOp,
        (l, ls): (&Attr, Span),
        (r, rs): (&Attr, Span),
        shape: Shape,
        span: Span,
    ) -> Attr {
        let mut a = Attr::leaf(Hir {
            kind: HirKind::Binary(op, Box::new(l.hir.clone()), Box::new(r.hir.clone())),
            shape,
            span,
        });
        a.dep_x = l.dep_x | r.dep_x;
        a.dep_y = l.dep_y | r.dep_y;
        a.smooth = l.smooth && r.smooth;
        a.weights = l.weights.iter().chain(&r.weights).copied().collect();
        let lconst = l.dep_y == 0;
        let rconst = r.dep_y == 0;
        let (ltext, rtext) = (self.text(ls).to_string(), self.text(rs).to_string());
        match op {
            BinOp::Add | BinOp::Sub => add_sub(&mut a, op, l, r),
            BinOp::Mul | BinOp::Div => {
                a.konst = match (l.konst, r.konst) {
                    (Some(x), Some(y)) if op == BinOp::Mul => Some(x * y),
                    (Some(x), Some(y)) if y != 0.0 => Some(x / y),
                    _ => None,
                };
                a.sign = if op == BinOp::Div && !matches!(r.sign, Sign::Pos | Sign::Neg) {
                    Sign::Unknown
                } else {
                    l.sign.mul(r.sign)
                };
                if lconst && rconst {
                    a.curv = Curv::Const;
                } else if (rconst && op == BinOp::Div) || (op == BinOp::Mul && (lconst || rconst)) {
                    let (k, kt, v) = if op == BinOp::Mul && lconst {
                        (l.clone(), ltext.clone(), &r)
                    } else {
                        (r.clone(), rtext.clone(), &l)
                    };
                    let mut k = k;
                    if op == BinOp::Div {
                        k.konst = k.konst.filter(|&c| c != 0.0).map(|c| 1.0 / c);
                        k.sign = match k.sign {
                            Sign::Pos => Sign::Pos,
                            Sign::Neg => Sign::Neg,
                            _ => Sign::Unknown,
                        };
                    }
                    let kt = if op == BinOp::Div {
                        format!("1/{}", paren(&kt))
                    } else {
                        kt
                    };
                    a.curv = match v.curv {
                        Curv::Affine => Curv::Affine,
                        Curv::Convex if k.sign.nonneg() => Curv::Convex,
                        Curv::Convex if k.sign.nonpos() => Curv::Concave,
                        Curv::Concave if k.sign.nonneg() => Curv::Concave,
                        Curv::Concave if k.sign.nonpos() => Curv::Convex,
                        _ => Curv::Unknown,
                    };
                    if a.curv == Curv::Convex {
                        let strictly = matches!(k.sign, Sign::Pos);
                        for (var, m) in &v.mu {
                            if strictly {
                                a.mu.insert(*var, m.scale(&k, &kt));
                            }
                        }
                    }
                    a.ycoef = match (v.ycoef, k.konst) {
                        (Some((var, c)), Some(s)) if k.shape().rank() == 0 => Some((var, c * s)),
                        _ => None,
                    };
                } else {
                    a.curv = Curv::Unknown;
                }
            }
            BinOp::MatMul => {
                a.curv = if lconst && rconst {
                    Curv::Const
                } else if (lconst && r.curv == Curv::Affine) || (rconst && l.curv == Curv::Affine) {
                    Curv::Affine
                } else {
                    Curv::Unknown
                };
                a.sign = Sign::Unknown;
            }
            BinOp::Pow => {
                let p = r.konst.unwrap_or(1.0);
                a.konst = l.konst.map(|b| b.powf(p));
                a.smooth &= p.fract() == 0.0 && p >= 0.0 || p >= 2.0;
                if lconst {
                    a.curv = Curv::Const;
                    a.sign = if l.sign == Sign::Pos {
                        Sign::Pos
                    } else {
                        Sign::Unknown
                    };
                } else if (p - 2.0).abs() < f64::EPSILON && l.curv == Curv::Affine {
                    a.curv = Curv::Convex;
                    a.sign = Sign::Nonneg;
                    if let Some((v, c)) = l.ycoef {
                        a.mu.insert(v, Mu::num(2.0 * c * c, fmt_num(2.0 * c * c)));
                    }
                } else if (p - 1.0).abs() < f64::EPSILON {
                    a.curv = l.curv;
                    a.mu = l.mu.clone();
                    a.ycoef = l.ycoef;
                } else {
                    a.curv = Curv::Unknown;
                }
            }
        }
        if a.curv == Curv::Const {
            a.mu.clear();
        }
        a
    }
}

/// The attributes of `l + r` or `l - r` beyond dependencies.
fn add_sub(a: &mut Attr, op: BinOp, l: &Attr, r: &Attr) {
    let (lsh, rsh) = (l.shape(), r.shape());
    let (lconst, rconst) = (l.dep_y == 0, r.dep_y == 0);
    let sgn = if op == BinOp::Add { 1.0 } else { -1.0 };
    let rc = if op == BinOp::Sub {
        match r.curv {
            Curv::Convex => Curv::Concave,
            Curv::Concave => Curv::Convex,
            c => c,
        }
    } else {
        r.curv
    };
    a.curv = add_curv(l.curv, rc);
    a.sign = l.sign.add(if op == BinOp::Sub {
        r.sign.neg()
    } else {
        r.sign
    });
    a.konst = match (l.konst, r.konst) {
        (Some(x), Some(y)) => Some(x + sgn * y),
        _ => None,
    };
    a.ycoef = match (l.ycoef, r.ycoef, lconst, rconst) {
        (Some(c), None, _, true) => Some(c),
        (None, Some((v, c)), true, _) => Some((v, sgn * c)),
        (Some((v1, c1)), Some((v2, c2)), _, _) if v1 == v2 => Some((v1, c1 + sgn * c2)),
        _ => None,
    };
    if a.curv == Curv::Convex {
        a.mu = l.mu.clone();
        if op == BinOp::Add {
            for (v, m) in &r.mu {
                let merged = match a.mu.get(v) {
                    Some(prev) => prev.add(m),
                    None => m.clone(),
                };
                a.mu.insert(*v, merged);
            }
        }
    }
    if lsh.rank() == 0 && rsh.rank() > 0 || rsh.rank() == 0 && lsh.rank() > 0 {
        a.ycoef = None;
    }
}
