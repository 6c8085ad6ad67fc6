//! The checker's expression attributes beyond the HIR ([`Attr`]):
//! dependencies on x and y, constant values, signs, integer bounds and a
//! coarse curvature, and the hand-over to the strong-convexity certificate
//! of [`crate::convexity`], which works on the checked HIR of g and alone
//! decides the verdict and μ.

use crate::ast::{BinOp, Call, ExprKind, LevelKind, Span};
use crate::hir::{Analysis, Deferred, Dim, Hir, ParamDef, Shape};
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
    /// The `assume strongly_convex(v, mu = m)` facts: (lower variable, m, span).
    pub(super) fn assumes(&mut self, assumes: &[&Call]) -> Vec<(usize, f64, Span)> {
        let mut mu: Vec<(usize, f64, Span)> = Vec::new();
        for a in assumes {
            let name = a.func.to_string();
            if name.as_str() == "strongly_convex" {
                let var = match a.args.first().map(|x| &x.value.kind) {
                    Some(ExprKind::Path(p)) => match self.names.get(&p.to_string()) {
                        Some(&(Def::Var(LevelKind::Lower, v), _)) => Some(v),
                        _ => None,
                    },
                    _ => None,
                };
                let m = a
                    .args
                    .iter()
                    .find(|x| x.name.as_ref().is_some_and(|n| n.name == "mu"))
                    .and_then(|x| match x.value.kind {
                        ExprKind::Num(v) => Some(v),
                        _ => None,
                    });
                match (var, m) {
                    (Some(var), Some(v)) if v > 0.0 && v.is_finite() => {
                        if let Some(first) = mu.iter().find(|x| x.0 == var) {
                            let d = errors::assumption_twice(a.span, first.2);
                            self.err(d);
                        } else {
                            mu.push((var, v, a.span));
                        }
                    }
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

    /// The roles of g (E0107, W0108) and its certificate
    /// ([`crate::convexity`]).
    pub(super) fn analyse(
        &mut self,
        g: &Attr,
        b: &crate::ast::LevelBlock,
        assumed: &[(usize, f64, Span)],
    ) -> Analysis {
        let span = b.objective.span;
        if g.dep_y == 0 {
            let d = errors::g_without_y(span, b.vars.first().map_or("y", |v| v.name.name.as_str()));
            self.err(d);
        } else if g.dep_x == 0 {
            let d = errors::g_without_x(span);
            self.err(d);
        }
        let lets: Vec<Option<&Hir>> = self
            .lets
            .iter()
            .map(|l| l.as_ref().map(|a| &a.hir))
            .collect();
        let params: Vec<Option<&ParamDef>> = self
            .params
            .iter()
            .map(|p| p.as_ref().map(|(d, _)| d))
            .collect();
        let out = crate::convexity::analyse(&crate::convexity::Input {
            src: self.src,
            lets: &lets,
            params: &params,
            lower: &self.lower,
            g: &g.hir,
            span,
            assumptions: assumed,
        });
        for d in out.diags {
            self.err(d);
        }
        let deferred = out
            .weights
            .iter()
            .map(|&(data, span)| Deferred::NonnegWeights { data, span })
            .collect();
        Analysis {
            verdict: out.verdict,
            mu_text: out.mu_text,
            smooth: out.smooth,
            deferred,
            certificate: out.cert,
            span,
        }
    }

    /// The attributes of built-in `b` applied to `args` (of result shape
    /// `shape`): dependencies, sign, constant value, curvature and modulus.
    pub(super) fn call_attr(c: &Call, b: Builtin, args: &[Attr], shape: Shape) -> Attr {
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
        Self::builtin_curv(b, args, &mut a);
        a
    }

    /// The curvature and modulus of built-in `b` of `args` that depend on y.
    fn builtin_curv(b: Builtin, args: &[Attr], a: &mut Attr) {
        let x = &args[0];
        let affine = |a: &Attr| matches!(a.curv, Curv::Affine | Curv::Const);
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
            Builtin::Sum | Builtin::Mean => x.curv,
            Builtin::Norm2sq if affine(x) => Curv::Convex,
            Builtin::SqLoss if affine(x) && args[1].dep_y == 0 => Curv::Convex,
            Builtin::Dot => {
                let (p, q) = (&args[0], &args[1]);
                if (p.dep_y == 0 && affine(q)) || (q.dep_y == 0 && affine(p)) {
                    Curv::Affine
                } else {
                    Curv::Unknown
                }
            }
            Builtin::Quad if affine(&args[1]) && matches!(args[0].hir.kind, HirKind::Param(_)) => {
                Curv::Convex
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
        op: BinOp,
        (l, _): (&Attr, Span),
        (r, _): (&Attr, Span),
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
                    let (k, v) = if op == BinOp::Mul && lconst {
                        (l.clone(), &r)
                    } else {
                        (r.clone(), &l)
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
                    a.curv = match v.curv {
                        Curv::Affine => Curv::Affine,
                        Curv::Convex if k.sign.nonneg() => Curv::Convex,
                        Curv::Convex if k.sign.nonpos() => Curv::Concave,
                        Curv::Concave if k.sign.nonneg() => Curv::Concave,
                        Curv::Concave if k.sign.nonpos() => Curv::Convex,
                        _ => Curv::Unknown,
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
                } else if (p - 1.0).abs() < f64::EPSILON {
                    a.curv = l.curv;
                } else {
                    a.curv = Curv::Unknown;
                }
            }
        }
        a
    }
}

/// The attributes of `l + r` or `l - r` beyond dependencies.
fn add_sub(a: &mut Attr, op: BinOp, l: &Attr, r: &Attr) {
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
}
