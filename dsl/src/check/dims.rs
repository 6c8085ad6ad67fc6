//! Dimensions and shapes: the `dims` block (resolved in any order), data-fact
//! dims such as `train.features`, and declared types.

use crate::ast::{DimAtom, DimExpr, Path, Span, TypeExpr};
use crate::diag::did_you_mean;
use crate::hir::{Dim, Shape, MAX_ELEMENTS};

use super::{errors, Checker, Def};

impl Checker<'_> {
    pub(super) fn dims_pass(&mut self, binds: &[&crate::ast::DimBind]) {
        let n = binds.len();
        let mut vals: Vec<Option<(Dim, Option<String>)>> = vec![None; n];
        let mut progress = true;
        while progress {
            progress = false;
            for (i, b) in binds.iter().enumerate() {
                if vals[i].is_some() {
                    continue;
                }
                if let Some(v) = self.dim_value(&b.value, &vals, &b.name.name) {
                    vals[i] = Some(v);
                    progress = true;
                }
            }
        }
        for (i, b) in binds.iter().enumerate() {
            if let Some((d, origin)) = vals[i].take() {
                self.dims.push((b.name.name.clone(), d, origin));
            } else {
                // Report the first unresolved atom.
                self.report_dim_atoms(
                    &b.value,
                    &binds
                        .iter()
                        .map(|b| b.name.name.as_str())
                        .collect::<Vec<_>>(),
                );
                self.dims
                    .push((b.name.name.clone(), Dim::Sym(b.name.name.clone()), None));
            }
        }
    }

    pub(super) fn report_dim_atoms(&mut self, e: &DimExpr, dims: &[&str]) {
        for a in &e.atoms {
            if let DimAtom::Path(p) = a {
                let name = p.to_string();
                let ok = if p.parts.len() == 1 {
                    dims.contains(&name.as_str())
                } else {
                    self.data_fact_name(p).is_some()
                };
                if ok {
                    let d = errors::dim_cycle(&name, p.span);
                    self.err(d);
                } else {
                    let similar = did_you_mean(&name, dims.iter().copied());
                    let d = errors::undeclared_dim(&name, p.span, similar);
                    self.err(d);
                }
                return;
            }
        }
    }

    /// A data-fact dim (`train.features`) as the dim bound to it in `dims`,
    /// or its loaded value.
    pub(super) fn bind_fact(&self, d: &Dim) -> Dim {
        let Dim::Sym(key) = d else { return d.clone() };
        if let Some(v) = self.facts.and_then(|f| f.get(key)) {
            return Dim::Known(*v);
        }
        self.dims
            .iter()
            .find(|(_, _, o)| o.as_deref() == Some(key.as_str()))
            .map_or_else(|| d.clone(), |(_, v, _)| v.clone())
    }

    /// `train.rows` / `train.features` → the fact's key.
    pub(super) fn data_fact_name(&self, p: &Path) -> Option<String> {
        if p.parts.len() != 2 {
            return None;
        }
        let (src, fact) = (&p.parts[0].name, &p.parts[1].name);
        let ok = match self.names.get(src) {
            Some((Def::Data(_), _)) => {
                matches!(
                    fact.as_str(),
                    "rows" | "features" | "classes" | "groups" | "vocab"
                )
            }
            Some((Def::Model(_), _)) => matches!(fact.as_str(), "params" | "outputs"),
            _ => false,
        };
        ok.then(|| format!("{src}.{fact}"))
    }

    pub(super) fn dim_value(
        &mut self,
        e: &DimExpr,
        vals: &[Option<(Dim, Option<String>)>],
        own: &str,
    ) -> Option<(Dim, Option<String>)> {
        let mut atoms = Vec::new();
        let mut origin = None;
        for a in &e.atoms {
            atoms.push(match a {
                DimAtom::Num(n, _) => Dim::Known(*n),
                DimAtom::Path(p) => {
                    if p.parts.len() == 1 {
                        match self.names.get(&p.parts[0].name) {
                            Some((Def::Dim(i), _)) => vals.get(*i)?.as_ref()?.0.clone(),
                            _ => return None,
                        }
                    } else {
                        let key = self.data_fact_name(p)?;
                        origin = Some(key.clone());
                        match self.facts.and_then(|f| f.get(&key)) {
                            Some(v) => Dim::Known(*v),
                            None => Dim::Sym(own.to_string()),
                        }
                    }
                }
            });
        }
        // Evaluate with * before + and -; symbolic results stay symbolic.
        if atoms.iter().any(|a| a.known().is_none()) {
            return Some((Dim::Sym(own.to_string()), origin));
        }
        let nums: Vec<u64> = atoms.iter().filter_map(Dim::known).collect();
        let mut terms: Vec<(char, u64)> = vec![('+', nums[0])];
        for (op, &v) in e.ops.iter().zip(&nums[1..]) {
            if *op == '*' {
                let last = terms.last_mut()?;
                if let Some(p) = last.1.checked_mul(v) {
                    last.1 = p;
                } else {
                    self.dim_overflow(e.span);
                    return Some((Dim::Known(0), origin));
                }
            } else {
                terms.push((*op, v));
            }
        }
        let mut acc: u64 = 0;
        for (op, v) in terms {
            let r = if op == '-' {
                acc.checked_sub(v)
            } else {
                acc.checked_add(v)
            };
            if let Some(r) = r {
                acc = r;
            } else {
                self.dim_overflow(e.span);
                return Some((Dim::Known(0), origin));
            }
        }
        Some((Dim::Known(acc), origin))
    }

    pub(super) fn dim_overflow(&mut self, span: Span) {
        let d = errors::dim_overflow(span);
        self.err(d);
    }

    pub(super) fn dim_expr(&mut self, e: &DimExpr) -> Option<Dim> {
        if e.atoms.len() == 1 {
            if let DimAtom::Path(p) = &e.atoms[0] {
                if p.parts.len() == 1 {
                    let name = &p.parts[0].name;
                    if let Some(i) = self.dims.iter().position(|(n, _, _)| n == name) {
                        return Some(self.dims[i].1.clone());
                    }
                }
            }
        }
        let vals: Vec<Option<(Dim, Option<String>)>> = self
            .dims
            .iter()
            .map(|(_, d, o)| Some((d.clone(), o.clone())))
            .collect();
        let text = self.text(e.span).to_string();
        if let Some((d, _)) = self.dim_value(e, &vals, &text) {
            Some(d)
        } else {
            let names: Vec<String> = self.dims.iter().map(|(n, _, _)| n.clone()).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            self.report_dim_atoms(e, &refs);
            None
        }
    }

    pub(super) fn type_shape(&mut self, t: &TypeExpr) -> Option<Shape> {
        let shape = match t {
            TypeExpr::Scalar(_) => Shape::scalar(),
            TypeExpr::Vector(n, _) => Shape(vec![self.dim_expr(n)?]),
            TypeExpr::Matrix(m, n, _) => {
                let (m, n) = (self.dim_expr(m), self.dim_expr(n));
                Shape(vec![m?, n?])
            }
            TypeExpr::Tensor(ds, span) => {
                let d = errors::tensor_rank(ds.len(), *span);
                self.err(d);
                return None;
            }
            TypeExpr::Params(m, _) => {
                if matches!(self.names.get(&m.name), Some((Def::Model(_), _))) {
                    // The backend gives the length: bound with the facts.
                    Shape(vec![self.bind_fact(&Dim::Sym(format!("{}.params", m.name)))])
                } else {
                    let d = errors::undeclared_model(&m.name, m.span);
                    self.err(d);
                    return None;
                }
            }
        };
        if let Some(n) = shape
            .0
            .iter()
            .try_fold(1u64, |a, d| d.known().map_or(Some(a), |k| a.checked_mul(k)))
        {
            if n > MAX_ELEMENTS {
                let d = errors::too_many_elements(&shape, n, t.span());
                self.err(d);
                return None;
            }
        } else {
            let d = errors::elements_overflow(&shape, t.span());
            self.err(d);
            return None;
        }
        Some(shape)
    }
}
