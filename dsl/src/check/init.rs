//! Constant values: initialisers (`zeros`, `normal(std = …)`, `spd(…)`, …)
//! and constant expressions of params and variable inits.

use std::collections::BTreeMap;

use crate::ast::{Expr, ExprKind, Span};
use crate::hir::{Hir, HirKind, Init, Shape};

use super::convexity::Attr;
use super::{compat, errors, Checker, INITIALISERS};

impl Checker<'_> {
    pub(super) fn init_value(
        &mut self,
        e: &Expr,
        shape: Option<&Shape>,
        name_span: Span,
    ) -> Option<(Init, Attr)> {
        let leaf = |s: &Shape| {
            Attr::leaf(Hir {
                kind: HirKind::Const(0.0),
                shape: s.clone(),
                span: e.span,
            })
        };
        let (name, args) = match &e.kind {
            ExprKind::Path(p)
                if p.parts.len() == 1 && INITIALISERS.contains(&p.parts[0].name.as_str()) =>
            {
                (p.parts[0].name.as_str(), &[][..])
            }
            ExprKind::Call(c)
                if c.func.parts.len() == 1
                    && INITIALISERS.contains(&c.func.parts[0].name.as_str()) =>
            {
                (c.func.parts[0].name.as_str(), c.args.as_slice())
            }
            _ => {
                let a = self.expr(e)?;
                if a.dep_x != 0 || a.dep_y != 0 {
                    let d = errors::init_depends_on_var(e.span);
                    self.err(d);
                    return None;
                }
                if let Some(s) = shape {
                    if !compat(a.shape(), s) && a.shape().rank() != 0 {
                        let d = errors::init_type_mismatch(a.shape(), s, e.span, name_span);
                        self.err(d);
                        return None;
                    }
                }
                let mut a = a;
                if let Some(s) = shape {
                    a.hir.shape = s.clone();
                }
                return Some((Init::Expr(Box::new(a.hir.clone())), a));
            }
        };
        let shape = shape?;
        let mut named: BTreeMap<&str, f64> = BTreeMap::new();
        for a in args {
            let Some(n) = &a.name else {
                let d = errors::init_unnamed_arg(name, a.value.span);
                self.err(d);
                return None;
            };
            let v = self.const_number(&a.value)?;
            named.insert(n.name.as_str(), v);
        }
        let allowed: &[&str] = match name {
            "normal" => &["std", "seed", "mean"],
            "uniform" => &["low", "high", "seed"],
            "glorot" => &["seed"],
            "spd" => &["kappa", "seed"],
            _ => &[],
        };
        for a in args {
            if let Some(n) = &a.name {
                if !allowed.contains(&n.name.as_str()) {
                    let d = errors::init_unknown_arg(name, &n.name, n.span, allowed);
                    self.err(d);
                    return None;
                }
            }
        }
        let seed = named.get("seed").copied().unwrap_or(0.0);
        if !(seed >= 0.0 && seed.fract() == 0.0 && seed < 1.8e19) {
            let at = args
                .iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == "seed"))
                .map_or(e.span, |a| a.value.span);
            self.err(errors::bad_seed(seed, at));
            return None;
        }
        let seed = seed as u64;
        let square = shape.rank() == 2 && shape.0[0] == shape.0[1];
        let init = match name {
            "zeros" => Init::Zeros,
            "ones" => Init::Ones,
            "eye" | "spd" if !square => {
                let d = errors::init_not_square(name, shape, e.span);
                self.err(d);
                return None;
            }
            "eye" => Init::Eye,
            "normal" => Init::Normal {
                std: named.get("std").copied().unwrap_or(1.0),
                seed,
            },
            "uniform" => Init::Uniform {
                low: named.get("low").copied().unwrap_or(0.0),
                high: named.get("high").copied().unwrap_or(1.0),
                seed,
            },
            "glorot" => Init::Glorot { seed },
            _ => {
                let kappa = named.get("kappa").copied().unwrap_or(10.0);
                if !(kappa >= 1.0 && kappa.is_finite()) {
                    let d = errors::spd_kappa(e.span);
                    self.err(d);
                    return None;
                }
                Init::Spd { kappa, seed }
            }
        };
        Some((init, leaf(shape)))
    }

    pub(super) fn const_number(&mut self, e: &Expr) -> Option<f64> {
        let a = self.expr(e)?;
        if let Some(v) = a.konst {
            return Some(v);
        }
        let d = errors::not_constant(e.span);
        self.err(d);
        None
    }
}
