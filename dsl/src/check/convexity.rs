//! The checker's expression attributes beyond the HIR ([`Attr`]):
//! dependencies on x and y, constant values and integer bounds, and the
//! hand-over to the strong-convexity certificate
//! of [`crate::convexity`], which works on the checked HIR of g and alone
//! decides the verdict and μ.

use crate::ast::{BinOp, Call, ExprKind, LevelKind, Span};
use crate::hir::{Analysis, Deferred, Dim, Hir, ParamDef, Shape};
use crate::hir::{Builtin, HirKind};

use super::{errors, Checker, Def};

#[derive(Debug, Clone)]
pub(super) struct Attr {
    pub(super) hir: Hir,
    /// Bit i: depends on upper variable i.
    pub(super) dep_x: u64,
    /// Bit i: depends on lower variable i.
    pub(super) dep_y: u64,
    /// The scalar value when known at check time.
    pub(super) konst: Option<f64>,
    /// An integer index bound (class labels, row indices).
    pub(super) int_bound: Option<Dim>,
}

impl Attr {
    pub(super) fn leaf(hir: Hir) -> Attr {
        Attr {
            hir,
            dep_x: 0,
            dep_y: 0,
            konst: None,
            int_bound: None,
        }
    }
    pub(super) fn shape(&self) -> &Shape {
        &self.hir.shape
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
    /// `shape`): dependencies and constant value.
    pub(super) fn call_attr(c: &Call, b: Builtin, args: &[Attr], shape: Shape) -> Attr {
        let mut a = Attr::leaf(Hir {
            kind: HirKind::Call(b, args.iter().map(|a| a.hir.clone()).collect()),
            shape,
            span: c.span,
        });
        a.dep_x = args.iter().fold(0, |m, a| m | a.dep_x);
        a.dep_y = args.iter().fold(0, |m, a| m | a.dep_y);
        if a.dep_y == 0 && b != Builtin::Correct {
            if let Some(v) = args[0].konst {
                a.konst = match b {
                    Builtin::Exp => Some(v.exp()),
                    Builtin::Log if v > 0.0 => Some(v.ln()),
                    Builtin::Sqrt if v >= 0.0 => Some(v.sqrt()),
                    Builtin::Abs => Some(v.abs()),
                    _ => None,
                };
            }
        }
        a
    }

    /// The attributes of `l op r` (of result shape `shape`): dependencies
    /// and constant value.
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
        a.konst = match (op, l.konst, r.konst) {
            (BinOp::Add, Some(x), Some(y)) => Some(x + y),
            (BinOp::Sub, Some(x), Some(y)) => Some(x - y),
            (BinOp::Mul, Some(x), Some(y)) => Some(x * y),
            (BinOp::Div, Some(x), Some(y)) if y != 0.0 => Some(x / y),
            (BinOp::Pow, Some(x), Some(y)) => Some(x.powf(y)),
            _ => None,
        };
        a
    }
}
