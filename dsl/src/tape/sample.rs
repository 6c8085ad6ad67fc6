//! Sample reductions `mean over s in D { … }` / `sum over …`: a node
//! holding a sub-tape (the body) that runs once per sample of the
//! minibatch. The value and tangent are k Σₛ body(s) (k = 1/n for a mean);
//! the reverse rule runs the body's forward and reverse sweeps per sample,
//! seeding the body's output with k ā (and k ǡ) and collecting the
//! adjoints of the nodes the body reads from outside (`Outer` nodes sum
//! over samples, `Row` nodes send sample s's adjoint to row s).

use super::kernels::acc_into;
use super::sweep::{Fwd, Rev};
use super::{Mode, Op, Tape, Workspace};

/// Copies the outer values (and tangents) the body reads into its
/// workspace, once per reduction. Fixed values (constants: the parameter
/// tables a body indexes) were copied when the workspace was allocated
/// ([`Workspace::new`]) and are not copied again.
fn copy_outer(
    body: &Tape,
    sub: &mut Workspace,
    vals: &[Vec<f64>],
    tans: &[Vec<f64>],
    tangent: bool,
) {
    for (j, n) in body.nodes.iter().enumerate() {
        match n.op {
            Op::Outer(p) => {
                if !sub.fixed[j] {
                    sub.val[j].copy_from_slice(&vals[p]);
                }
                if tangent && n.dep_y {
                    sub.tan[j].copy_from_slice(&tans[p]);
                }
            }
            Op::Row(p) => {
                // Values, then tangents (zero when not seeded).
                let aux = &mut sub.aux[j];
                aux.clear();
                aux.extend_from_slice(&vals[p]);
                if tangent && n.dep_y && tans[p].len() == vals[p].len() {
                    aux.extend_from_slice(&tans[p]);
                } else {
                    aux.resize(2 * vals[p].len(), 0.0);
                }
            }
            _ => {}
        }
    }
}

/// Value and tangent: the body's output summed over the samples, scaled.
pub(super) fn forward(f: &mut Fwd<'_, '_>) {
    let Op::Reduce { mean, data, body } = &f.node.op else {
        return;
    };
    let n = f.inp.data.batch_len(*data);
    let Some(sub) = f.sub.as_mut() else { return };
    copy_outer(body, sub, f.val, f.tan, f.tangent);
    f.out.fill(0.0);
    f.tout.fill(0.0);
    let k = if *mean { 1.0 / n.max(1) as f64 } else { 1.0 };
    let mode = if f.tangent {
        f.mode
    } else {
        Mode {
            tangent: false,
            ..f.mode
        }
    };
    for s in 0..n {
        f.ctx.push(s);
        body.forward(sub, f.inp, mode, f.ctx, None);
        f.ctx.pop();
        for (o, v) in f.out.iter_mut().zip(&sub.val[body.output]) {
            *o += k * v;
        }
        if f.tangent {
            for (o, v) in f.tout.iter_mut().zip(&sub.tan[body.output]) {
                *o += k * v;
            }
        }
    }
}

/// Adjoint and adjoint tangent together: one reverse sweep of the body per
/// sample (after re-running its forward sweep for that sample).
pub(super) fn reverse(r: &mut Rev<'_, '_>) {
    let Op::Reduce { mean, data, body } = &r.node.op else {
        return;
    };
    let second = r.second();
    let nsamp = r.inp.data.batch_len(*data);
    let k = if *mean {
        1.0 / nsamp.max(1) as f64
    } else {
        1.0
    };
    let Some(mut sub) = r.sub.take() else {
        return;
    };
    // Outer values and tangents are still in `sub` from the forward pass.
    // Only the adjoints this sweep accumulates and reads are zeroed: those
    // of active `Outer` nodes (an inactive one's is never read), and their
    // adjoint tangents only in a second-order sweep.
    for (j, bn) in body.nodes.iter().enumerate() {
        if matches!(bn.op, Op::Outer(_)) && Tape::active(bn, r.mode) {
            sub.adj[j].fill(0.0);
            if second {
                sub.adt[j].fill(0.0);
            }
        }
    }
    for s in 0..nsamp {
        r.ctx.push(s);
        body.forward(&mut sub, r.inp, r.mode, r.ctx, None);
        seed_body(body, &mut sub, r.g, r.gt, k, second);
        body.reverse_from(&mut sub, r.inp, r.mode, r.ctx, None);
        r.ctx.pop();
        send_rows(r, body, &sub, s);
    }
    for (j, bn) in body.nodes.iter().enumerate() {
        if let Op::Outer(p) = bn.op {
            if Tape::active(&r.tape.nodes[p], r.mode) {
                r.touch(p);
                acc_into(&mut r.adj[p], &sub.adj[j], 1.0);
                if second {
                    acc_into(&mut r.adt[p], &sub.adt[j], 1.0);
                }
            }
        }
    }
    *r.sub = Some(sub);
}

/// Resets the body's adjoints for one sample, except at `Outer` nodes
/// (which accumulate over samples), and seeds its output with k ā, k ǡ.
fn seed_body(body: &Tape, sub: &mut Workspace, g: &[f64], gt: &[f64], k: f64, second: bool) {
    for j in 0..body.nodes.len() {
        if matches!(body.nodes[j].op, Op::Outer(_)) {
            sub.live_adj[j] = true;
            sub.live_adt[j] = second;
        } else {
            sub.live_adj[j] = false;
            sub.live_adt[j] = false;
        }
    }
    let o = body.output;
    // An `Outer` output accumulates over samples; any other
    // output is seeded afresh.
    let keep = if matches!(body.nodes[o].op, Op::Outer(_)) {
        1.0
    } else {
        0.0
    };
    for (d, v) in sub.adj[o].iter_mut().zip(g) {
        *d = keep * *d + k * v;
    }
    if second {
        for (d, v) in sub.adt[o].iter_mut().zip(gt) {
            *d = keep * *d + k * v;
        }
    }
    sub.live_adj[o] = true;
    sub.live_adt[o] = second;
}

/// `Row` nodes of the body send sample `s`'s adjoints to row `s` of their
/// model node.
fn send_rows(r: &mut Rev<'_, '_>, body: &Tape, sub: &Workspace, s: usize) {
    let second = r.second();
    for (j, bn) in body.nodes.iter().enumerate() {
        let Op::Row(p) = bn.op else { continue };
        if !Tape::active(&r.tape.nodes[p], r.mode) || !sub.live_adj[j] {
            continue;
        }
        r.touch(p);
        let w = sub.adj[j].len();
        if let Some(dst) = r.adj[p].get_mut(s * w..(s + 1) * w) {
            for (d, v) in dst.iter_mut().zip(&sub.adj[j]) {
                *d += v;
            }
        }
        if second && sub.live_adt[j] {
            if let Some(dst) = r.adt[p].get_mut(s * w..(s + 1) * w) {
                for (d, v) in dst.iter_mut().zip(&sub.adt[j]) {
                    *d += v;
                }
            }
        }
    }
}
