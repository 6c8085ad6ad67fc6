//! Matrix operations: products `op(A) op(B)`, transposes and indexing
//! (`a[i]`, `A[i]`, `A[i, j]`).

use super::kernels::to_index;
use super::Node;

/// The offset into `base` (argument 0 of the [`super::Op::Index`] node
/// `node`) that the node reads from, its indices clamped into range.
pub(super) fn index_offset(base: &Node, node: &Node, vals: &[Vec<f64>]) -> usize {
    let i0 = vals[node.args[1]][0];
    match node.args.len() {
        2 if base.cols == 1 => to_index(i0, base.rows),
        2 => to_index(i0, base.rows) * base.cols,
        _ => {
            let j = to_index(vals[node.args[2]][0], base.cols);
            to_index(i0, base.rows) * base.cols + j
        }
    }
}

/// `op(A) op(B)` with optional transposes.
pub(super) mod matmul {
    use super::super::kernels::{gemm, gemm_to, Operand};
    use super::super::sweep::{Fwd, Rev};
    use super::super::{Node, Op};

    /// The transposes of A and B.
    fn flags(op: &Op) -> (bool, bool) {
        match op {
            Op::MatMul { ta, tb } => (*ta, *tb),
            _ => (false, false),
        }
    }

    fn shape(n: &Node) -> (usize, usize) {
        (n.rows, n.cols)
    }

    /// C = op(A) op(B) (when the value is asked for).
    pub fn value(f: &mut Fwd<'_, '_>) {
        if !f.do_val {
            return;
        }
        let (ta, tb) = flags(&f.node.op);
        let (sa, sb) = (shape(f.arg(0)), shape(f.arg(1)));
        gemm_to(
            1.0,
            Operand::new(f.a(0), sa, ta),
            Operand::new(f.a(1), sb, tb),
            f.out,
        );
    }

    /// Ċ = op(Ȧ) op(B) + op(A) op(Ḃ).
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        let (ta, tb) = flags(&f.node.op);
        let (na, nb) = (f.arg(0), f.arg(1));
        let (sa, sb) = (shape(na), shape(nb));
        f.tout.fill(0.0);
        if na.dep_y {
            gemm(
                1.0,
                Operand::new(f.ta(0), sa, ta),
                Operand::new(f.a(1), sb, tb),
                f.tout,
            );
        }
        if nb.dep_y {
            gemm(
                1.0,
                Operand::new(f.a(0), sa, ta),
                Operand::new(f.ta(1), sb, tb),
                f.tout,
            );
        }
    }

    /// The product's shapes and transposes, and its two pull-backs.
    struct Pull {
        ta: bool,
        tb: bool,
        sa: (usize, usize),
        sb: (usize, usize),
        sc: (usize, usize),
    }

    impl Pull {
        fn of(r: &Rev<'_, '_>) -> Self {
            let (ta, tb) = flags(&r.node.op);
            Pull {
                ta,
                tb,
                sa: shape(r.arg(0)),
                sb: shape(r.arg(1)),
                sc: shape(r.node),
            }
        }

        /// Ā += C̄ op(B)ᵀ (or its transpose when A is read transposed).
        fn grad_a(&self, dst: &mut [f64], cbar: &[f64], b: &[f64]) {
            if self.ta {
                // A stored k×m: Ā = op(B) C̄ᵀ.
                let c = Operand::new(cbar, self.sc, true);
                gemm(1.0, Operand::new(b, self.sb, self.tb), c, dst);
            } else {
                let c = Operand::new(cbar, self.sc, false);
                gemm(1.0, c, Operand::new(b, self.sb, !self.tb), dst);
            }
        }

        /// B̄ += op(A)ᵀ C̄ (or its transpose when B is read transposed).
        fn grad_b(&self, dst: &mut [f64], cbar: &[f64], a: &[f64]) {
            if self.tb {
                let c = Operand::new(cbar, self.sc, true);
                gemm(1.0, c, Operand::new(a, self.sa, self.ta), dst);
            } else {
                let c = Operand::new(cbar, self.sc, false);
                gemm(1.0, Operand::new(a, self.sa, !self.ta), c, dst);
            }
        }
    }

    /// Ā += C̄ op(B)ᵀ, B̄ += op(A)ᵀ C̄ (as far as the plan needs them).
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let pull = Pull::of(r);
        let (va, vb) = (r.a(0), r.a(1));
        let (na, nb) = (r.node.args[0], r.node.args[1]);
        if r.act[0] && r.need_a(na) {
            pull.grad_a(&mut r.adj[na], r.g, vb);
        }
        if r.act[1] && r.need_a(nb) {
            pull.grad_b(&mut r.adj[nb], r.g, va);
        }
    }

    /// Ǎ += Č̄ op(B)ᵀ + C̄ op(Ḃ)ᵀ, B̌ += op(A)ᵀ Č̄ + op(Ȧ)ᵀ C̄.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let pull = Pull::of(r);
        let (va, vb) = (r.a(0), r.a(1));
        let (tva, tvb) = (r.tanof(0), r.tanof(1));
        let (na, nb) = (r.node.args[0], r.node.args[1]);
        let gt_nz = r.gt_nz();
        if r.act[0] && r.need_t(na) {
            if gt_nz {
                pull.grad_a(&mut r.adt[na], r.gt, vb);
            }
            if let Some(t) = tvb {
                pull.grad_a(&mut r.adt[na], r.g, t);
            }
        }
        if r.act[1] && r.need_t(nb) {
            if gt_nz {
                pull.grad_b(&mut r.adt[nb], r.gt, va);
            }
            if let Some(t) = tva {
                pull.grad_b(&mut r.adt[nb], r.g, t);
            }
        }
    }
}

/// `Aᵀ`: a permutation, so every rule moves elements.
pub(super) mod transpose {
    use super::super::sweep::{Fwd, Rev};

    /// Cᵀ = A.
    pub fn value(f: &mut Fwd<'_, '_>) {
        let src = f.arg(0);
        let a = f.a(0);
        for r in 0..src.rows {
            for c in 0..src.cols {
                f.out[c * src.rows + r] = a[r * src.cols + c];
            }
        }
    }

    /// Ċᵀ = Ȧ.
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        let src = f.arg(0);
        let a = f.ta(0);
        for r in 0..src.rows {
            for c in 0..src.cols {
                f.tout[c * src.rows + r] = a[r * src.cols + c];
            }
        }
    }

    /// Ā += C̄ᵀ.
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let src = r.arg(0);
        let dst = &mut r.adj[r.node.args[0]];
        for i in 0..src.rows {
            for c in 0..src.cols {
                dst[i * src.cols + c] += r.g[c * src.rows + i];
            }
        }
    }

    /// Ǎ += Č̄ᵀ.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let src = r.arg(0);
        let dst = &mut r.adt[r.node.args[0]];
        for i in 0..src.rows {
            for c in 0..src.cols {
                dst[i * src.cols + c] += r.gt[c * src.rows + i];
            }
        }
    }
}

/// `a[i]`, `A[i]` (a row) and `A[i, j]`: a slice of argument 0 at an
/// offset read from the index arguments (no derivative in the indices).
pub(super) mod index {
    use super::super::sweep::{Fwd, Rev};
    use super::index_offset;

    /// c = a[off..off + len].
    pub fn value(f: &mut Fwd<'_, '_>) {
        let off = index_offset(f.arg(0), f.node, f.val);
        let len = f.out.len();
        let a = f.a(0);
        f.out.copy_from_slice(&a[off..off + len]);
    }

    /// ċ = ȧ[off..off + len].
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        let off = index_offset(f.arg(0), f.node, f.val);
        let len = f.out.len();
        let ta = f.ta(0);
        f.tout.copy_from_slice(&ta[off..off + len]);
    }

    /// ā[off..] += c̄.
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let off = index_offset(r.arg(0), r.node, r.val);
        let dst = &mut r.adj[r.node.args[0]];
        for (k, v) in r.g.iter().enumerate() {
            dst[off + k] += v;
        }
    }

    /// ǡ[off..] += ċ̄.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let off = index_offset(r.arg(0), r.node, r.val);
        let dst = &mut r.adt[r.node.args[0]];
        for (k, v) in r.gt.iter().enumerate() {
            dst[off + k] += v;
        }
    }
}
