//! Expressions: literals, arrays, indexing, operators, sample reductions and
//! the objectives, with their shapes.

use crate::ast::{BinOp, Expr, ExprKind, LevelKind, Span};
use crate::hir::{Dim, Hir, HirKind, Shape};

use super::convexity::Attr;
use super::{compat, dims_eq, errors, Checker, Def, INITIALISERS};

impl Checker<'_> {
    pub(super) fn objective(&mut self, e: &Expr, level: LevelKind) -> Option<Attr> {
        let a = self.expr(e)?;
        if let Some(at) = self.find_correct(&a.hir) {
            let d = errors::objective_uses_correct(level, at);
            self.err(d);
            return None;
        }
        if a.shape().rank() != 0 {
            let d = errors::objective_not_scalar(level, a.shape(), e.span);
            self.err(d);
            return None;
        }
        Some(a)
    }

    pub(super) fn expr(&mut self, e: &Expr) -> Option<Attr> {
        let span = e.span;
        match &e.kind {
            ExprKind::Num(v) => {
                let mut a = Attr::leaf(Hir {
                    kind: HirKind::Const(*v),
                    shape: Shape::scalar(),
                    span,
                });
                a.konst = Some(*v);
                Some(a)
            }
            ExprKind::Bool(_) | ExprKind::Str(_) => {
                let d = errors::not_a_number(span, matches!(e.kind, ExprKind::Str(_)));
                self.err(d);
                None
            }
            ExprKind::Path(p) => {
                if p.parts.len() == 1
                    && INITIALISERS.contains(&p.parts[0].name.as_str())
                    && !self.names.contains_key(&p.parts[0].name)
                {
                    let d = errors::initialiser_in_expr(&p.parts[0].name, span);
                    self.err(d);
                    return None;
                }
                self.path(p, span)
            }
            ExprKind::Array(items) => self.array(items, span),
            ExprKind::Call(c) => self.call(c),
            ExprKind::Neg(x) => {
                let mut a = self.expr(x)?;
                a.hir = Hir {
                    shape: a.hir.shape.clone(),
                    kind: HirKind::Neg(Box::new(a.hir)),
                    span,
                };
                a.konst = a.konst.map(|v| -v);
                Some(a)
            }
            ExprKind::Transpose(x) => {
                let mut a = self.expr(x)?;
                let shape = match a.shape().0.as_slice() {
                    [] => Shape::scalar(),
                    [m, n] => Shape(vec![n.clone(), m.clone()]),
                    _ => {
                        let d = errors::transpose_undefined(a.shape(), span);
                        self.err(d);
                        return None;
                    }
                };
                a.hir = Hir {
                    kind: HirKind::Transpose(Box::new(a.hir)),
                    shape,
                    span,
                };
                Some(a)
            }
            ExprKind::Index(x, idx) => self.index(x, idx, span),
            ExprKind::Binary(op, l, r) => {
                let (la, ra) = (self.expr(l), self.expr(r));
                self.binary(*op, &la?, &ra?, span, l.span, r.span)
            }
            ExprKind::Reduce {
                op,
                var,
                source,
                body,
            } => {
                if self.in_const {
                    let d = errors::const_reduction(span);
                    self.err(d);
                    return None;
                }
                let data_idx = if source.parts.len() == 1 {
                    match self.names.get(&source.parts[0].name) {
                        Some((Def::Data(i), _)) => Some(*i),
                        Some(_) => {
                            let d = errors::not_data_source(&source.to_string(), source.span);
                            self.err(d);
                            return None;
                        }
                        None => None,
                    }
                } else {
                    None
                };
                let Some(data_idx) = data_idx else {
                    self.resolve_error(source);
                    return None;
                };
                self.data.get(data_idx).cloned().flatten()?;
                self.scope.push((var.name.clone(), data_idx));
                let body_a = self.expr(body);
                self.scope.pop();
                let mut a = body_a?;
                a.hir = Hir {
                    shape: a.hir.shape.clone(),
                    kind: HirKind::Reduce(*op, data_idx, Box::new(a.hir)),
                    span,
                };
                a.konst = None;
                a.int_bound = None;
                Some(a)
            }
        }
    }

    pub(super) fn array(&mut self, items: &[Expr], span: Span) -> Option<Attr> {
        let mut vals = Vec::new();
        let mut inner: Option<Shape> = None;
        let mut ok = true;
        for it in items {
            let Some(a) = self.expr(it) else {
                ok = false;
                continue;
            };
            let flat = match &a.hir.kind {
                _ if a.shape().rank() == 0 && a.konst.is_some() && a.dep_x == 0 && a.dep_y == 0 => {
                    vec![a.konst.unwrap_or(0.0)]
                }
                HirKind::Array(v) => v.clone(),
                _ => {
                    let d = errors::array_not_literal(it.span);
                    self.err(d);
                    ok = false;
                    continue;
                }
            };
            match &inner {
                None => inner = Some(a.shape().clone()),
                Some(s) if !compat(s, a.shape()) => {
                    let d = errors::array_rows_differ(s, a.shape(), it.span);
                    self.err(d);
                    ok = false;
                    continue;
                }
                Some(_) => {}
            }
            vals.extend(flat);
        }
        if !ok {
            return None;
        }
        let n = Dim::Known(items.len() as u64);
        let shape = match inner {
            None => Shape(vec![n]),
            Some(s) if s.rank() == 0 => Shape(vec![n]),
            Some(s) if s.rank() == 1 => Shape(vec![n, s.0[0].clone()]),
            Some(s) => {
                let d = errors::array_rank(&s, span);
                self.err(d);
                return None;
            }
        };
        Some(Attr::leaf(Hir {
            kind: HirKind::Array(vals),
            shape,
            span,
        }))
    }

    pub(super) fn index(&mut self, x: &Expr, idx: &[Expr], span: Span) -> Option<Attr> {
        let base = self.expr(x);
        let mut ids = Vec::new();
        for i in idx {
            ids.push(self.expr(i));
        }
        let mut a = base?;
        let ids: Vec<Attr> = ids.into_iter().collect::<Option<_>>()?;
        let rank = a.shape().rank();
        if ids.len() > rank || rank == 0 {
            let d = errors::too_many_indices(ids.len(), a.shape(), span);
            self.err(d);
            return None;
        }
        for (k, (i, e)) in ids.iter().zip(idx).enumerate() {
            let bound = a.shape().0[k].clone();
            let integral = i.konst.is_some_and(|v| v.fract() == 0.0 && v >= 0.0);
            if i.shape().rank() != 0
                || i.dep_x != 0
                || i.dep_y != 0
                || !(integral || i.int_bound.is_some())
            {
                let d = errors::not_an_index(e.span);
                self.err(d);
                return None;
            }
            if let (Some(v), Some(n)) = (i.konst, bound.known()) {
                if v >= n as f64 {
                    let d = errors::index_out_of_range(v, n, e.span);
                    self.err(d);
                    return None;
                }
            }
            if let (Some(ib), Some(n)) = (&i.int_bound, bound.known()) {
                if let Some(m) = ib.known() {
                    if m > n {
                        let d = errors::index_range_exceeds(m, n, e.span);
                        self.err(d);
                        return None;
                    }
                }
            } else if let (Some(ib), None) = (&i.int_bound, bound.known()) {
                if ib != &bound && ib.known().is_none() {
                    // Symbolic bounds are compared again once data is loaded.
                }
            }
        }
        let shape = Shape(a.shape().0[ids.len()..].to_vec());
        let hirs = ids.iter().map(|i| i.hir.clone()).collect();
        a.hir = Hir {
            kind: HirKind::Index(Box::new(a.hir), hirs),
            shape,
            span,
        };
        a.konst = None;
        Some(a)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn binary(
        &mut self,
        op: BinOp,
        l: &Attr,
        r: &Attr,
        span: Span,
        ls: Span,
        rs: Span,
    ) -> Option<Attr> {
        let (lsh, rsh) = (l.shape().clone(), r.shape().clone());
        let shape = match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => {
                if lsh.rank() == 0 {
                    rsh.clone()
                } else if rsh.rank() == 0 || compat(&lsh, &rsh) {
                    lsh.clone()
                } else {
                    self.mismatch(op, &lsh, &rsh, span, ls, rs);
                    return None;
                }
            }
            BinOp::MatMul => match (lsh.0.as_slice(), rsh.0.as_slice()) {
                ([m, k1], [k2, n]) if dims_eq(k1, k2) => Shape(vec![m.clone(), n.clone()]),
                ([m, k1], [k2]) if dims_eq(k1, k2) => Shape(vec![m.clone()]),
                ([k1], [k2, n]) if dims_eq(k1, k2) => Shape(vec![n.clone()]),
                ([_], [_]) => {
                    let d = errors::matmul_vectors(span);
                    self.err(d);
                    return None;
                }
                ([], _) | (_, []) => {
                    let d = errors::matmul_scalar(span);
                    self.err(d);
                    return None;
                }
                _ => {
                    self.mismatch(op, &lsh, &rsh, span, ls, rs);
                    return None;
                }
            },
            BinOp::Pow => {
                if r.shape().rank() != 0 || r.dep_x != 0 || r.dep_y != 0 || r.konst.is_none() {
                    let d = errors::exponent_not_constant(rs);
                    self.err(d);
                    return None;
                }
                lsh.clone()
            }
        };
        if op == BinOp::Div && r.konst == Some(0.0) && r.dep_x == 0 && r.dep_y == 0 {
            self.err(errors::division_by_zero(rs));
            return None;
        }
        if let (BinOp::Pow, Some(b), Some(p)) = (op, l.konst, r.konst) {
            if b < 0.0 && p.fract() != 0.0 && l.dep_x == 0 && l.dep_y == 0 {
                self.err(errors::fractional_power_of_negative(b, p, span));
                return None;
            }
        }
        Some(Self::binary_attr(op, (l, ls), (r, rs), shape, span))
    }

    pub(super) fn mismatch(
        &mut self,
        op: BinOp,
        l: &Shape,
        r: &Shape,
        span: Span,
        ls: Span,
        rs: Span,
    ) {
        let (lt, rt) = (self.text(ls).to_string(), self.text(rs).to_string());
        let what = match op {
            BinOp::MatMul => "matrix product",
            BinOp::Add => "`+`",
            BinOp::Sub => "`-`",
            BinOp::Mul => "`*`",
            BinOp::Div => "`/`",
            BinOp::Pow => "`^`",
        };
        let swap =
            op == BinOp::MatMul && l.rank() == 1 && r.rank() == 2 && dims_eq(&l.0[0], &r.0[1]);
        let d = errors::shape_mismatch(what, (&lt, l), (&rt, r), span, op == BinOp::MatMul, swap);
        self.err(d);
    }
}
