//! Sample reductions as generated code (`tape/sample.rs`): a loop over the
//! minibatch of the reduction's data source running the body's code.

use super::emit::Em;
use crate::tape::{Mode, NodeId, Op, Tape};

/// Opens the per-sample loop of the body at level `inner` over source `d`
/// (`n{inner}` samples), binding the row local of a table.
fn open_loop(em: &mut Em<'_>, inner: usize, d: usize) {
    em.open(&format!("for i{inner} in 0..n{inner} {{"));
    if em.synthetic(d).is_none() {
        em.line(&format!("let r{inner} = s.rows{d}[i{inner}] as usize;"));
        if let Some(&Some(t)) = em.tables.get(d).filter(|t| t.is_some_and(|t| t.compact)) {
            em.line(&format!("let xr{inner} = d{d}_x(r{inner});"));
            if t.labels {
                em.line(&format!("let lr{inner} = d{d}_l(r{inner});"));
            }
            if t.weights {
                em.line(&format!("let wr{inner} = d{d}_w(r{inner});"));
            }
        }
    }
}

/// `let n = batch length; let kk = 1/n or 1;`
fn scale(em: &mut Em<'_>, inner: usize, d: usize, mean: bool) {
    em.line(&format!("let n{inner} = {};", Em::batch_len(d)));
    if mean {
        em.line(&format!("let kk: T = 1.0 / (n{inner}.max(1) as T);"));
    } else {
        em.line("let kk: T = 1.0;");
    }
}

/// copy_outer: the body's Outer tangents (values are read in place).
fn copy_outer(em: &mut Em<'_>, lvl: usize, inner: usize, body: &Tape, tangent: bool) {
    for (j, bn) in body.nodes.iter().enumerate() {
        if let Op::Outer(p) = bn.op {
            if tangent && bn.dep_y {
                let (dst, src) = (em.tan(inner, j), em.tan(lvl, p));
                em.each(bn.len(), |k| format!("{} = {};", dst.at(k), src.at(k)));
            }
        }
    }
}

/// Value and tangent: k Σₛ body(s) (`sample::forward`).
pub(super) fn forward(em: &mut Em<'_>, lvl: usize, i: NodeId, mode: Mode, tangent: bool) {
    let tape = em.tape(lvl);
    let node = &tape.nodes[i];
    let Op::Reduce { mean, data, body } = &node.op else {
        return;
    };
    let n = node.len();
    em.open("{");
    let inner = em.push_body(lvl, i);
    scale(em, inner, *data, *mean);
    copy_outer(em, lvl, inner, body, tangent);
    let (o, to) = (em.val(lvl, i), em.tan(lvl, i));
    em.fill0(&o, n);
    em.fill0(&to, n);
    let sub = Mode { tangent, ..mode };
    open_loop(em, inner, *data);
    em.forward(inner, sub);
    let (bo, bt) = (em.val(inner, body.output), em.tan(inner, body.output));
    em.each(n, |k| format!("{} += kk * {};", o.at(k), bo.at(k)));
    if tangent {
        em.each(n, |k| format!("{} += kk * {};", to.at(k), bt.at(k)));
    }
    em.close();
    em.pop_body();
    em.close();
}

/// Adjoint and adjoint tangent: per sample, the body's forward and reverse
/// sweeps seeded with k ā, k ǡ; `Outer` adjoints summed over the samples
/// and added to the enclosing nodes' (`sample::reverse`).
pub(super) fn reverse(em: &mut Em<'_>, lvl: usize, i: NodeId) {
    let tape = em.tape(lvl);
    let node = &tape.nodes[i];
    let Op::Reduce { mean, data, body } = &node.op else {
        return;
    };
    let second = em.mode.second;
    let mode = em.mode;
    em.open("{");
    // The forward loop may not have run (`Tape::plan_recompute`): the body's
    // outer tangents are copied here too.
    let tangent = mode.tangent
        && node.dep_y
        && (!Em::top(lvl) || em.reduce_tan.get(i).copied().unwrap_or(true));
    let inner = em.push_body(lvl, i);
    scale(em, inner, *data, *mean);
    copy_outer(em, lvl, inner, body, tangent);
    for (j, bn) in body.nodes.iter().enumerate() {
        if matches!(bn.op, Op::Outer(_)) {
            let (a, d) = (em.adj(inner, j), em.adt(inner, j));
            em.fill0(&a, bn.len());
            em.fill0(&d, bn.len());
        }
    }
    open_loop(em, inner, *data);
    em.forward(inner, mode);
    // seed_body
    em.seed_live(inner);
    let o = body.output;
    let keep = if matches!(body.nodes[o].op, Op::Outer(_)) {
        "1.0"
    } else {
        "0.0"
    };
    let (g, gt) = (em.adj(lvl, i), em.adt(lvl, i));
    let (ba, bd) = (em.adj(inner, o), em.adt(inner, o));
    let len = body.nodes[o].len();
    em.each(len, |k| {
        format!("{} = {keep} * {} + kk * {};", ba.at(k), ba.at(k), g.at(k))
    });
    if second {
        em.each(len, |k| {
            format!("{} = {keep} * {} + kk * {};", bd.at(k), bd.at(k), gt.at(k))
        });
    }
    em.reverse_from(inner);
    em.close();
    for (j, bn) in body.nodes.iter().enumerate() {
        if let Op::Outer(p) = bn.op {
            if em.active(lvl, p) {
                em.touch(lvl, p);
                let (dst, src) = (em.adj(lvl, p), em.adj(inner, j));
                em.each(bn.len(), |k| format!("{} += {};", dst.at(k), src.at(k)));
                if second {
                    let (dst, src) = (em.adt(lvl, p), em.adt(inner, j));
                    em.each(bn.len(), |k| format!("{} += {};", dst.at(k), src.at(k)));
                }
            }
        }
    }
    em.pop_body();
    em.close();
}
