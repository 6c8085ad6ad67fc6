//! Products and indexing as generated code (`tape/linalg.rs`).

use super::emit::{Em, Ref};
use crate::tape::{NodeId, Op};

fn mut_slice(r: &Ref, len: usize) -> String {
    r.slice(len).replacen('&', "&mut ", 1)
}

/// `let off = …;`: the offset an [`Op::Index`] node reads (`index_offset`).
pub(super) fn index_offset(em: &mut Em<'_>, lvl: usize, i: NodeId, v: &[Ref]) {
    let tape = em.tape(lvl);
    let node = &tape.nodes[i];
    let base = &tape.nodes[node.args[0]];
    let i0 = v[1].at("0");
    let (rows, cols) = (base.rows, base.cols);
    let e = match node.args.len() {
        2 if cols == 1 => format!("to_index({i0}, {rows})"),
        2 => format!("to_index({i0}, {rows}) * {cols}"),
        _ => format!(
            "to_index({i0}, {rows}) * {cols} + to_index({}, {cols})",
            v[2].at("0")
        ),
    };
    em.line(&format!("let off = {e};"));
}

/// One gemm call: C += α op(A) op(B).
#[allow(clippy::too_many_arguments)]
fn gemm(
    em: &mut Em<'_>,
    alpha: &str,
    a: (&str, (usize, usize), bool),
    b: (&str, (usize, usize), bool),
    c: &str,
) {
    em.line(&format!(
        "gemm({alpha}, {}, ({}, {}), {}, {}, ({}, {}), {}, {c});",
        a.0, a.1 .0, a.1 .1, a.2, b.0, b.1 .0, b.1 .1, b.2
    ));
}

/// The shapes and transposes of a product node.
struct Pull {
    ta: bool,
    tb: bool,
    sa: (usize, usize),
    sb: (usize, usize),
    sc: (usize, usize),
}

impl Pull {
    fn of(em: &Em<'_>, lvl: usize, i: NodeId) -> Self {
        let tape = em.tape(lvl);
        let n = &tape.nodes[i];
        let (ta, tb) = match n.op {
            Op::MatMul { ta, tb } => (ta, tb),
            _ => (false, false),
        };
        let (a, b) = (&tape.nodes[n.args[0]], &tape.nodes[n.args[1]]);
        Pull {
            ta,
            tb,
            sa: (a.rows, a.cols),
            sb: (b.rows, b.cols),
            sc: (n.rows, n.cols),
        }
    }

    /// Ā += C̄ op(B)ᵀ (`Pull::grad_a`).
    fn grad_a(&self, em: &mut Em<'_>, dst: &str, cbar: &str, b: &str) {
        if self.ta {
            gemm(em, "1.0", (b, self.sb, self.tb), (cbar, self.sc, true), dst);
        } else {
            gemm(
                em,
                "1.0",
                (cbar, self.sc, false),
                (b, self.sb, !self.tb),
                dst,
            );
        }
    }

    /// B̄ += op(A)ᵀ C̄ (`Pull::grad_b`).
    fn grad_b(&self, em: &mut Em<'_>, dst: &str, cbar: &str, a: &str) {
        if self.tb {
            gemm(em, "1.0", (cbar, self.sc, true), (a, self.sa, self.ta), dst);
        } else {
            gemm(
                em,
                "1.0",
                (a, self.sa, !self.ta),
                (cbar, self.sc, false),
                dst,
            );
        }
    }
}

/// `matmul::value` (when asked for) and `matmul::tangent`.
pub(super) fn matmul_fwd(em: &mut Em<'_>, lvl: usize, i: NodeId, do_val: bool, tangent: bool) {
    let tape = em.tape(lvl);
    let node = &tape.nodes[i];
    let p = Pull::of(em, lvl, i);
    let (na, nb) = (node.args[0], node.args[1]);
    let (la, lb, n) = (tape.nodes[na].len(), tape.nodes[nb].len(), node.len());
    let (va, vb) = (em.val(lvl, na), em.val(lvl, nb));
    let (sa, sb) = (va.slice(la), vb.slice(lb));
    if do_val {
        let o = em.val(lvl, i);
        em.fill0(&o, n);
        gemm(
            em,
            "1.0",
            (&sa, p.sa, p.ta),
            (&sb, p.sb, p.tb),
            &mut_slice(&o, n),
        );
    }
    if tangent {
        let to = em.tan(lvl, i);
        em.fill0(&to, n);
        let dst = mut_slice(&to, n);
        if tape.nodes[na].dep_y {
            let t = em.tan(lvl, na).slice(la);
            gemm(em, "1.0", (&t, p.sa, p.ta), (&sb, p.sb, p.tb), &dst);
        }
        if tape.nodes[nb].dep_y {
            let t = em.tan(lvl, nb).slice(lb);
            gemm(em, "1.0", (&sa, p.sa, p.ta), (&t, p.sb, p.tb), &dst);
        }
    }
}

/// `matmul::adjoint` and (second order) `matmul::adjoint_tangent`.
pub(super) fn matmul_rev(em: &mut Em<'_>, lvl: usize, i: NodeId, act: &[bool]) {
    let tape = em.tape(lvl);
    let node = &tape.nodes[i];
    let p = Pull::of(em, lvl, i);
    let (na, nb) = (node.args[0], node.args[1]);
    let (la, lb, n) = (tape.nodes[na].len(), tape.nodes[nb].len(), node.len());
    let (va, vb) = (em.val(lvl, na).slice(la), em.val(lvl, nb).slice(lb));
    let gr = em.adj(lvl, i);
    let g_nz = !matches!(gr, Ref::Zero);
    let g = gr.slice(n);
    // Structurally zero adjoints (`zeros`) get no product and give none.
    if act[0] && em.need_a(lvl, na) && g_nz {
        let dr = em.adj(lvl, na);
        if !matches!(dr, Ref::Zero) {
            p.grad_a(em, &mut_slice(&dr, la), &g, &vb);
        }
    }
    if act[1] && em.need_a(lvl, nb) && g_nz {
        let dr = em.adj(lvl, nb);
        if !matches!(dr, Ref::Zero) {
            p.grad_b(em, &mut_slice(&dr, lb), &g, &va);
        }
    }
    if !em.mode.second {
        return;
    }
    let mode = em.mode;
    let gtr = em.adt(lvl, i);
    let gt_nz = em.gt_nz(lvl, i) && !matches!(gtr, Ref::Zero);
    let gt = gtr.slice(n);
    let (mut tva, mut tvb) = (em.tanof(lvl, na, mode), em.tanof(lvl, nb, mode));
    if !g_nz {
        (tva, tvb) = (None, None);
    }
    let (da, db) = (em.adt(lvl, na), em.adt(lvl, nb));
    if act[0] && em.need_t(lvl, na) && !matches!(da, Ref::Zero) {
        let d = mut_slice(&da, la);
        if gt_nz {
            p.grad_a(em, &d, &gt, &vb);
        }
        if let Some(t) = &tvb {
            p.grad_a(em, &d, &g, &t.slice(lb));
        }
    }
    if act[1] && em.need_t(lvl, nb) && !matches!(db, Ref::Zero) {
        let d = mut_slice(&db, lb);
        if gt_nz {
            p.grad_b(em, &d, &gt, &va);
        }
        if let Some(t) = &tva {
            p.grad_b(em, &d, &g, &t.slice(la));
        }
    }
}
