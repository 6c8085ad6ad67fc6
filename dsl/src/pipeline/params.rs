//! Stage 6: parameter values, each evaluated once from the values of the
//! parameters it refers to (no copies), under a cap on their total size.

use super::{errors, Stage};
use crate::compiled::init_values;
use crate::hir::{Hir, HirKind, Init, Spec, MAX_PARAM_ELEMENTS};

fn param_refs(h: &Hir, out: &mut Vec<usize>) {
    let mut stack = vec![h];
    while let Some(h) = stack.pop() {
        if let HirKind::Param(i) = h.kind {
            out.push(i);
        }
        h.push_children(&mut stack);
    }
}

/// The value of every parameter of `spec`, in declaration order.
pub(super) fn evaluate(spec: &Spec) -> Stage<Vec<Vec<f64>>> {
    let n = spec.params.len();
    let total: usize = spec.params.iter().filter_map(|p| p.shape.len()).sum();
    if total > MAX_PARAM_ELEMENTS {
        return Err(vec![errors::params_too_large(total, MAX_PARAM_ELEMENTS)]);
    }
    // Values in place (empty until evaluated): each parameter reads the
    // values it refers to without copying them.
    let mut vals: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut done = vec![false; n];
    let mut progress = true;
    while progress {
        progress = false;
        for i in 0..n {
            if done[i] {
                continue;
            }
            let p = &spec.params[i];
            let mut refs = Vec::new();
            if let Init::Expr(h) = &p.value {
                param_refs(h, &mut refs);
            }
            if refs.iter().all(|&r| done.get(r).copied().unwrap_or(false)) {
                let v = init_values(&p.value, &p.shape, spec, &vals);
                if v.iter().any(|x| !x.is_finite()) {
                    return Err(vec![errors::param_not_finite(&p.name, p.span)]);
                }
                vals[i] = v;
                done[i] = true;
                progress = true;
            }
        }
    }
    Ok(vals)
}

/// Whether each parameter is a square matrix whose stored value is exactly
/// symmetric (bit for bit), so the lowering may use the symmetric rules.
pub(super) fn symmetric(spec: &Spec, params: &[Vec<f64>]) -> Vec<bool> {
    spec.params
        .iter()
        .zip(params)
        .map(|(p, v)| {
            let (r, c) = p.shape.rows_cols();
            p.shape.rank() == 2
                && r == c
                && (0..r).all(|i| (0..i).all(|j| v[i * c + j].to_bits() == v[j * c + i].to_bits()))
        })
        .collect()
}
