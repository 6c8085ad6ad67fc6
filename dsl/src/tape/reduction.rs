//! Reductions to a scalar: `sum`, `mean`, `norm2sq`, `norm2`, `dot`,
//! `quad` and `sq_loss`. ā and ǡ of the node are scalars (`g0`).

/// `sum(a)` and `mean(a)` (k = 1 or 1/len): linear.
pub(super) mod sum {
    use super::super::sweep::{Fwd, Rev};
    use super::super::Op;

    fn scale(op: &Op, len: usize) -> f64 {
        if matches!(op, Op::Mean) {
            1.0 / len.max(1) as f64
        } else {
            1.0
        }
    }

    /// c = k Σ a.
    pub fn value(f: &mut Fwd<'_, '_>) {
        let k = scale(&f.node.op, f.a(0).len());
        f.out[0] = k * f.a(0).iter().sum::<f64>();
    }

    /// ċ = k Σ ȧ.
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        let k = scale(&f.node.op, f.a(0).len());
        f.tout[0] = k * f.ta(0).iter().sum::<f64>();
    }

    /// ā += k c̄.
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let n = r.node.args[0];
        let k = scale(&r.node.op, r.adj[n].len());
        let (g0, _) = r.g0();
        r.adj[n].iter_mut().for_each(|v| *v += k * g0);
    }

    /// ǡ += k ċ̄.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let n = r.node.args[0];
        let k = scale(&r.node.op, r.adj[n].len());
        let (_, gt0) = r.g0();
        r.adt[n].iter_mut().for_each(|v| *v += k * gt0);
    }
}

/// `norm2sq(a)` = ‖a‖².
pub(super) mod norm2sq {
    use super::super::sweep::{Fwd, Rev};

    /// c = Σ a².
    pub fn value(f: &mut Fwd<'_, '_>) {
        f.out[0] = f.a(0).iter().map(|v| v * v).sum();
    }

    /// ċ = 2 aᵀȧ.
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        f.tout[0] = 2.0 * f.a(0).iter().zip(f.ta(0)).map(|(v, t)| v * t).sum::<f64>();
    }

    /// ā += 2 c̄ a.
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let x = r.a(0);
        let (g0, _) = r.g0();
        for (d, v) in r.adj[r.node.args[0]].iter_mut().zip(x.iter()) {
            *d += 2.0 * g0 * v;
        }
    }

    /// ǡ += 2 ċ̄ a + 2 c̄ ȧ.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let x = r.a(0);
        let tx = r.tanof(0);
        let (g0, gt0) = r.g0();
        for (k, d) in r.adt[r.node.args[0]].iter_mut().enumerate() {
            *d += 2.0 * gt0 * x[k] + tx.map_or(0.0, |t| 2.0 * g0 * t[k]);
        }
    }
}

/// `norm2(a)` = ‖a‖ (derivatives 0 at a = 0).
pub(super) mod norm2 {
    use super::super::sweep::{Fwd, Rev};

    /// c = √(Σ a²).
    pub fn value(f: &mut Fwd<'_, '_>) {
        f.out[0] = f.a(0).iter().map(|v| v * v).sum::<f64>().sqrt();
    }

    /// ċ = aᵀȧ / c.
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        let r = f.out[0];
        f.tout[0] = if r > 0.0 {
            f.a(0).iter().zip(f.ta(0)).map(|(v, t)| v * t).sum::<f64>() / r
        } else {
            0.0
        };
    }

    /// ā += c̄ a / c.
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let x = r.a(0);
        let c = r.val[r.i][0];
        if c > 0.0 {
            let (g0, _) = r.g0();
            for (d, v) in r.adj[r.node.args[0]].iter_mut().zip(x.iter()) {
                *d += g0 * v / c;
            }
        }
    }

    /// ǡ += ċ̄ a / c + c̄ (ȧ / c − a (aᵀȧ) / c³).
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let x = r.a(0);
        let tx = r.tanof(0);
        let c = r.val[r.i][0];
        if c > 0.0 {
            let (g0, gt0) = r.g0();
            let xt: f64 = tx.map_or(0.0, |t| x.iter().zip(t).map(|(a, b)| a * b).sum());
            for (k, d) in r.adt[r.node.args[0]].iter_mut().enumerate() {
                let t = tx.map_or(0.0, |t| t[k]);
                *d += gt0 * x[k] / c + g0 * (t / c - x[k] * xt / (c * c * c));
            }
        }
    }
}

/// `dot(a, b)` = aᵀb.
pub(super) mod dot {
    use super::super::sweep::{Fwd, Rev};

    /// c = aᵀb.
    pub fn value(f: &mut Fwd<'_, '_>) {
        f.out[0] = f.a(0).iter().zip(f.a(1)).map(|(p, q)| p * q).sum();
    }

    /// ċ = ȧᵀb + aᵀḃ (the value is normalised by `+ 0.0`, turning −0 into
    /// +0, as it always was in tangent sweeps).
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        f.out[0] += 0.0;
        f.tout[0] = f.ta(0).iter().zip(f.a(1)).map(|(p, q)| p * q).sum::<f64>()
            + f.a(0).iter().zip(f.ta(1)).map(|(p, q)| p * q).sum::<f64>();
    }

    /// ā += c̄ b, b̄ += c̄ a.
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let (x, y) = (r.a(0), r.a(1));
        let (g0, _) = r.g0();
        if r.act[0] {
            for (d, v) in r.adj[r.node.args[0]].iter_mut().zip(y.iter()) {
                *d += g0 * v;
            }
        }
        if r.act[1] {
            for (d, v) in r.adj[r.node.args[1]].iter_mut().zip(x.iter()) {
                *d += g0 * v;
            }
        }
    }

    /// ǡ += ċ̄ b + c̄ ḃ, b̌ += ċ̄ a + c̄ ȧ.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let (x, y) = (r.a(0), r.a(1));
        let (tx, ty) = (r.tanof(0), r.tanof(1));
        let (g0, gt0) = r.g0();
        // ċ̄ is structurally zero unless the plan says otherwise: its term
        // is then left out (it would add ±0, or NaN for an infinite factor).
        let gt_nz = r.gt_nz();
        for (k, other, tother) in [(0, y, ty), (1, x, tx)] {
            let n = r.node.args[k];
            if !r.act[k] || !r.need_t(n) {
                continue;
            }
            let d = &mut r.adt[n];
            match (gt_nz, tother) {
                (true, Some(t)) => {
                    for ((d, o), t) in d.iter_mut().zip(other).zip(t) {
                        *d += gt0 * o + g0 * t;
                    }
                }
                (true, None) => {
                    for (d, o) in d.iter_mut().zip(other) {
                        *d += gt0 * o + 0.0;
                    }
                }
                (false, Some(t)) => {
                    for (d, t) in d.iter_mut().zip(t) {
                        *d += g0 * t;
                    }
                }
                (false, None) => {}
            }
        }
    }
}

/// `quad(P, y)` = yᵀPy; `aux` holds P y (or (P + Pᵀ) y / 2 when P is not
/// known symmetric), computed by the value rule and read by the others.
pub(super) mod quad {
    use super::super::kernels::{gemm, gemm_to, Operand};
    use super::super::sweep::{Fwd, Rev};
    use super::super::Op;

    fn symmetric(op: &Op) -> bool {
        matches!(op, Op::Quad { sym: true })
    }

    /// aux = P y (symmetrised), c = yᵀ aux.
    pub fn value(f: &mut Fwd<'_, '_>) {
        let (p, y) = (f.a(0), f.a(1));
        let n = y.len();
        let aux = &mut *f.aux;
        gemm_to(
            1.0,
            Operand::new(p, (n, n), false),
            Operand::new(y, (n, 1), false),
            aux,
        );
        if !symmetric(&f.node.op) {
            gemm(
                1.0,
                Operand::new(p, (n, n), true),
                Operand::new(y, (n, 1), false),
                aux,
            );
            for v in aux.iter_mut() {
                *v *= 0.5;
            }
        }
        f.out[0] = aux.iter().zip(y).map(|(s, v)| s * v).sum();
    }

    /// ċ = 2 auxᵀẏ.
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        f.tout[0] = 2.0 * f.aux.iter().zip(f.ta(1)).map(|(s, v)| s * v).sum::<f64>();
    }

    /// ȳ += 2 c̄ aux (∇ = (P + Pᵀ) y); P gets no adjoint.
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let (g0, _) = r.g0();
        let aux = &r.aux[r.i];
        for (d, s) in r.adj[r.node.args[1]].iter_mut().zip(aux) {
            *d += 2.0 * g0 * s;
        }
    }

    /// y̌ += 2 ċ̄ aux + c̄ (P + Pᵀ) ẏ.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let n = r.node.args[1];
        let (g0, gt0) = r.g0();
        // Without a non-zero ǡ the plan may not have computed aux.
        if r.gt_nz() {
            let aux = &r.aux[r.i];
            for (d, s) in r.adt[n].iter_mut().zip(aux) {
                *d += 2.0 * gt0 * s;
            }
        }
        if let Some(t) = r.tanof(1).filter(|_| r.need_t(n)) {
            let p = r.a(0);
            let m = t.len();
            let tv = Operand::new(t, (m, 1), false);
            if symmetric(&r.node.op) {
                gemm(2.0 * g0, Operand::new(p, (m, m), false), tv, &mut r.adt[n]);
            } else {
                gemm(g0, Operand::new(p, (m, m), false), tv, &mut r.adt[n]);
                gemm(g0, Operand::new(p, (m, m), true), tv, &mut r.adt[n]);
            }
        }
    }
}

/// `sq_loss(a, b)` = ½‖a − b‖².
pub(super) mod sq_loss {
    use super::super::sweep::{Fwd, Rev};

    /// c = ½ Σ (a − b)².
    pub fn value(f: &mut Fwd<'_, '_>) {
        let (x, y) = (f.a(0), f.a(1));
        f.out[0] = 0.5 * x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum::<f64>();
    }

    /// ċ = (a − b)ᵀ(ȧ − ḃ).
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        let (x, y) = (f.a(0), f.a(1));
        let (tx, ty) = (f.ta(0), f.ta(1));
        f.tout[0] = x
            .iter()
            .zip(y)
            .zip(tx.iter().zip(ty))
            .map(|((p, q), (tp, tq))| (p - q) * (tp - tq))
            .sum();
    }

    /// ā += c̄ (a − b), b̄ −= c̄ (a − b).
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let (x, y) = (r.a(0), r.a(1));
        let (g0, _) = r.g0();
        for (k, sign) in [(0usize, 1.0), (1, -1.0)] {
            if !r.act[k] {
                continue;
            }
            for (j, d) in r.adj[r.node.args[k]].iter_mut().enumerate() {
                *d += sign * g0 * (x[j] - y[j]);
            }
        }
    }

    /// ǡ += ċ̄ (a − b) + c̄ (ȧ − ḃ), b̌ −= the same.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let (x, y) = (r.a(0), r.a(1));
        let (tx, ty) = (r.tanof(0), r.tanof(1));
        let (g0, gt0) = r.g0();
        for (k, sign) in [(0usize, 1.0), (1, -1.0)] {
            if !r.act[k] {
                continue;
            }
            for (j, d) in r.adt[r.node.args[k]].iter_mut().enumerate() {
                let dt = tx.map_or(0.0, |t| t[j]) - ty.map_or(0.0, |t| t[j]);
                *d += sign * (gt0 * (x[j] - y[j]) + g0 * dt);
            }
        }
    }
}
