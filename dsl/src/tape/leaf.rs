//! Leaves: variables, sample fields and rows of a model's output. They
//! have a value and a tangent and no reverse rule (their adjoints are read
//! by the caller: the oracle for variables, the enclosing reduction for
//! rows). Constants and `Outer` nodes have no rule at all: constants are
//! written when the workspace is allocated, outer values are copied in by
//! the reduction that runs the sub-tape ([`super::sample`]).

use super::sweep::Fwd;
use super::{Op, VarKind};

/// `x[off..]` or `y[off..]`: the value reads the variable, the tangent
/// reads the direction v (only y is seeded).
pub(super) fn var(f: &mut Fwd<'_, '_>) {
    let Op::Var(kind, off) = f.node.op else {
        return;
    };
    let src = match kind {
        VarKind::X => f.inp.x,
        VarKind::Y => f.inp.y,
    };
    let len = f.out.len();
    f.out.copy_from_slice(&src[off..off + len]);
    if f.tangent {
        f.tout.copy_from_slice(&f.inp.v[off..off + len]);
    }
}

/// A field of the sample of the reduction that opened tape `level`; its
/// tangent is zero (data does not depend on y).
pub(super) fn field(f: &mut Fwd<'_, '_>) {
    let Op::Field(level, data, field) = f.node.op else {
        return;
    };
    let idx = level
        .checked_sub(1)
        .and_then(|k| f.ctx.get(k))
        .copied()
        .unwrap_or(0);
    f.inp.data.field(data, idx, field, f.out);
}

/// Row s of a model's output in the enclosing tape: `aux` holds the outer
/// node's values, then its tangents (copied in by the reduction).
pub(super) fn row(f: &mut Fwd<'_, '_>) {
    let s = f.ctx.last().copied().unwrap_or(0);
    let w = f.out.len();
    let aux = &*f.aux;
    let half = aux.len() / 2;
    if let Some(src) = aux.get(s * w..(s + 1) * w) {
        f.out.copy_from_slice(src);
    }
    if f.tangent {
        if let Some(src) = aux.get(half + s * w..half + (s + 1) * w) {
            f.tout.copy_from_slice(src);
        }
    }
}
