//! Names and scopes: declarations, resolution of paths (sample fields, data
//! facts, dims, params, lets, variables) and the dependency order of params
//! and lets.

use crate::ast::{Expr, ExprKind, Ident, LevelKind, Path, Span};
use crate::diag::did_you_mean;
use crate::hir::{sample_fields, Field, Hir, HirKind, Shape};

use super::convexity::Attr;
use super::{errors, push_children, Checker, Def, MAX_SUGGESTIONS};

impl Checker<'_> {
    pub(super) fn declare(&mut self, id: &Ident, def: Def) {
        if let Some((_, first)) = self.names.get(&id.name) {
            let (l, c) = self.map.line_col(first.start);
            let d = errors::declared_twice(&id.name, id.span, *first, (l, c));
            self.err(d);
        } else {
            self.names.insert(id.name.clone(), (def, id.span));
        }
    }

    /// Orders params and lets so that each comes after what it uses;
    /// reports cycles (E0106). Iterative (no recursion over definitions).
    pub(super) fn definition_order(
        &mut self,
        params: &[&crate::ast::ParamDecl],
        lets: &[&crate::ast::LetDecl],
    ) -> Vec<Def> {
        let nodes: Vec<(Def, &Expr, &Ident)> = params
            .iter()
            .enumerate()
            .map(|(i, p)| (Def::Param(i), &p.value, &p.name))
            .chain(
                lets.iter()
                    .enumerate()
                    .map(|(i, l)| (Def::Let(i), &l.value, &l.name)),
            )
            .collect();
        let index_of = |d: Def| nodes.iter().position(|(n, _, _)| *n == d);
        let deps: Vec<Vec<(usize, Span)>> = nodes
            .iter()
            .map(|(_, e, _)| {
                let mut out = Vec::new();
                let mut stack = vec![*e];
                while let Some(e) = stack.pop() {
                    match &e.kind {
                        ExprKind::Path(p) if p.parts.len() == 1 => {
                            if let Some((d @ (Def::Param(_) | Def::Let(_)), _)) =
                                self.names.get(&p.parts[0].name)
                            {
                                if let Some(j) = index_of(*d) {
                                    out.push((j, p.span));
                                }
                            }
                        }
                        _ => push_children(e, &mut stack),
                    }
                }
                out
            })
            .collect();
        // Kahn's algorithm.
        let n = nodes.len();
        let mut indeg = vec![0usize; n];
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, ds) in deps.iter().enumerate() {
            for &(j, _) in ds {
                indeg[i] += 1;
                users[j].push(i);
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).rev().collect();
        let mut order = Vec::new();
        while let Some(i) = ready.pop() {
            order.push(nodes[i].0);
            for &u in &users[i] {
                indeg[u] -= 1;
                if indeg[u] == 0 {
                    ready.push(u);
                }
            }
        }
        if order.len() < n {
            // Report one cycle: walk dependencies among the remaining nodes.
            let start = (0..n).find(|&i| indeg[i] > 0).unwrap_or(0);
            let mut path = vec![start];
            let mut cur = start;
            let mut seen = vec![false; n];
            seen[start] = true;
            let cycle_start = loop {
                let Some(&(next, _)) = deps[cur].iter().find(|(j, _)| indeg[*j] > 0) else {
                    break start;
                };
                if seen[next] {
                    break next;
                }
                seen[next] = true;
                path.push(next);
                cur = next;
            };
            let pos = path.iter().position(|&p| p == cycle_start).unwrap_or(0);
            let cyc = &path[pos..];
            let names: Vec<String> = cyc
                .iter()
                .map(|&i| format!("`{}`", nodes[i].2.name))
                .collect();
            let first = nodes[cyc[0]].2;
            let rest: Vec<Span> = cyc[1..].iter().map(|&i| nodes[i].2.span).collect();
            let d = errors::cyclic_definitions(&names, first, &rest);
            self.err(d);
        }
        order
    }

    pub(super) fn resolve_error(&mut self, p: &Path) {
        let name = p.to_string();
        // Each suggestion compares the name with every declared one: at
        // most MAX_SUGGESTIONS of them per file keep the work linear.
        if self.suggestions >= MAX_SUGGESTIONS {
            let d = errors::undeclared_name(&name, p.span, None);
            self.err(d);
            return;
        }
        self.suggestions += 1;
        let mut cands: Vec<(String, Span, &'static str)> = self
            .names
            .iter()
            .map(|(n, (d, s))| {
                let what = match d {
                    Def::Dim(_) => "dimension",
                    Def::Param(_) => "param",
                    Def::Let(_) => "let",
                    Def::Data(_) => "data",
                    Def::Model(_) => "model",
                    Def::Var(LevelKind::Upper, _) => "upper variable",
                    Def::Var(LevelKind::Lower, _) => "lower variable",
                };
                (n.clone(), *s, what)
            })
            .collect();
        cands.extend(
            self.scope
                .iter()
                .map(|(n, _)| (n.clone(), p.span, "sample")),
        );
        cands.sort_by(|a, b| a.0.cmp(&b.0));
        let similar = did_you_mean(&name, cands.iter().map(|c| c.0.as_str()))
            .and_then(|best| cands.iter().find(|c| c.0 == best))
            .map(|(n, s, what)| (n.as_str(), *what, self.map.line_col(s.start)));
        let d = errors::undeclared_name(&name, p.span, similar);
        self.err(d);
    }

    pub(super) fn path(&mut self, p: &Path, span: Span) -> Option<Attr> {
        let first = &p.parts[0].name;
        let hir = |kind: HirKind, shape: Shape| Hir { kind, shape, span };
        // Sample variables shadow everything.
        if let Some(depth) = self.scope.iter().rev().position(|(n, _)| n == first) {
            let data_idx = self.scope[self.scope.len() - 1 - depth].1;
            let Some(field) = p.parts.get(1) else {
                let d = errors::sample_not_value(first, span);
                self.err(d);
                return None;
            };
            let def = self.data.get(data_idx).cloned().flatten()?;
            let fields: Vec<_> = sample_fields(&def)
                .into_iter()
                .map(|(n, f, sh, b)| {
                    (
                        n,
                        f,
                        Shape(sh.0.iter().map(|d| self.bind_fact(d)).collect()),
                        b.map(|d| self.bind_fact(&d)),
                    )
                })
                .collect();
            let Some((_, f, shape, bound)) = fields.iter().find(|(n, ..)| *n == field.name) else {
                let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
                let d = errors::unknown_field(&def.name, &field.name, field.span, &names);
                self.err(d);
                return None;
            };
            if p.parts.len() > 2 {
                let d = errors::field_subfield(p.parts[2].span);
                self.err(d);
                return None;
            }
            let mut a = Attr::leaf(hir(HirKind::Field(depth, *f), shape.clone()));
            a.int_bound.clone_from(bound);
            if *f == Field::Text && !self.allow_text {
                let d = errors::text_not_number(first, span);
                self.err(d);
                return None;
            }
            return Some(a);
        }
        if p.parts.len() == 2 {
            if let Some(key) = self.data_fact_name(p) {
                let dim = match self.facts.and_then(|f| f.get(&key)) {
                    Some(v) => Some(*v),
                    None => self
                        .dims
                        .iter()
                        .find(|(_, _, o)| o.as_deref() == Some(key.as_str()))
                        .and_then(|(_, d, _)| d.known()),
                };
                let mut a = Attr::leaf(hir(
                    HirKind::Const(dim.unwrap_or(0) as f64),
                    Shape::scalar(),
                ));
                a.konst = dim.map(|v| v as f64);
                if dim.is_none() {
                    let d = errors::fact_after_loading(&key, span);
                    self.err(d);
                    return None;
                }
                return Some(a);
            }
        }
        let Some(&(def, _)) = self.names.get(first) else {
            self.resolve_error(p);
            return None;
        };
        if p.parts.len() > 1 {
            self.resolve_error(p);
            return None;
        }
        match def {
            Def::Dim(i) => {
                let d = self.dims.get(i)?.1.clone();
                let Some(v) = d.known() else {
                    let diag = errors::dim_not_known(first, span);
                    self.err(diag);
                    return None;
                };
                let mut a = Attr::leaf(hir(HirKind::Const(v as f64), Shape::scalar()));
                a.konst = Some(v as f64);
                Some(a)
            }
            Def::Param(i) => {
                let (pd, attr) = self.params.get(i)?.as_ref()?;
                let mut a = attr.clone();
                a.hir = hir(HirKind::Param(i), pd.shape.clone());
                Some(a)
            }
            Def::Let(i) => {
                let mut a = self.lets.get(i)?.clone()?;
                a.hir = Hir {
                    kind: HirKind::Let(i),
                    shape: a.hir.shape.clone(),
                    span,
                };
                Some(a)
            }
            Def::Var(level, i) => {
                if self.in_const {
                    let d = errors::const_depends_on_var(span);
                    self.err(d);
                    return None;
                }
                let shape = match level {
                    LevelKind::Upper => self.upper.get(i)?.shape.clone(),
                    LevelKind::Lower => self.lower.get(i)?.shape.clone(),
                };
                let mut a = Attr::leaf(hir(HirKind::Var(level, i), shape));
                match level {
                    LevelKind::Upper => {
                        a.dep_x = 1 << i;
                    }
                    LevelKind::Lower => {
                        a.dep_y = 1 << i;
                    }
                }
                Some(a)
            }
            Def::Data(_) => {
                let d = errors::data_not_value(first, span);
                self.err(d);
                None
            }
            Def::Model(_) => {
                let d = errors::model_not_value(first, span);
                self.err(d);
                None
            }
        }
    }
}
