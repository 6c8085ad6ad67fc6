//! Losses on scores and logits: `logistic_loss`, `softmax_xent` and
//! `logsumexp`, and the `correct` metric (derivative 0).

use super::kernels::to_index;

/// `logistic_loss(z, y)` = ln(1 + e^(−y z)), scalar score z and label y.
pub(super) mod logistic {
    use super::super::kernels::{sigmoid, softplus};
    use super::super::sweep::{Fwd, Rev};

    /// Gradient (∂z, ∂y) and Hessian (zz, yy, zy) at (z, y).
    fn derivs(z: f64, y: f64) -> ((f64, f64), (f64, f64, f64)) {
        let u = -y * z;
        let s = sigmoid(u);
        let h = s * (1.0 - s);
        ((-y * s, -z * s), (y * y * h, z * z * h, -s + y * z * h))
    }

    /// c = softplus(−y z).
    pub fn value(f: &mut Fwd<'_, '_>) {
        let (z, y) = (f.a(0)[0], f.a(1)[0]);
        f.out[0] = softplus(-y * z);
    }

    /// ċ = −y σ(−y z) ż − z σ(−y z) ẏ.
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        let (z, y) = (f.a(0)[0], f.a(1)[0]);
        let s = sigmoid(-y * z);
        f.tout[0] = -y * s * f.ta(0)[0] - z * s * f.ta(1)[0];
    }

    /// z̄ += c̄ ∂z, ȳ += c̄ ∂y.
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let ((gz, gy), _) = derivs(r.a(0)[0], r.a(1)[0]);
        let (g0, _) = r.g0();
        if r.act[0] {
            r.adj[r.node.args[0]][0] += g0 * gz;
        }
        if r.act[1] {
            r.adj[r.node.args[1]][0] += g0 * gy;
        }
    }

    /// ž += ċ̄ ∂z + c̄ (H ṫ)_z, y̌ += ċ̄ ∂y + c̄ (H ṫ)_y.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let ((gz, gy), (hzz, hyy, hzy)) = derivs(r.a(0)[0], r.a(1)[0]);
        let tz = r.tanof(0).map_or(0.0, |t| t[0]);
        let ty = r.tanof(1).map_or(0.0, |t| t[0]);
        let (g0, gt0) = r.g0();
        if r.act[0] {
            r.adt[r.node.args[0]][0] += gt0 * gz + g0 * (hzz * tz + hzy * ty);
        }
        if r.act[1] {
            r.adt[r.node.args[1]][0] += gt0 * gy + g0 * (hzy * tz + hyy * ty);
        }
    }
}

/// `logsumexp(z)` and `softmax_xent(z, c)` = logsumexp(z) − z[c]; `aux`
/// holds softmax(z), computed by the value rule.
pub(super) mod softmax {
    use super::super::sweep::{Fwd, Rev};
    use super::super::{Node, Op};
    use super::to_index;

    /// The class c of `softmax_xent` (none for `logsumexp`).
    fn class(node: &Node, val: &[Vec<f64>], len: usize) -> Option<usize> {
        matches!(node.op, Op::SoftmaxXent).then(|| to_index(val[node.args[1]][0], len))
    }

    /// aux = softmax(z), c = logsumexp(z) − z[c].
    pub fn value(f: &mut Fwd<'_, '_>) {
        let z = f.a(0);
        let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let se: f64 = z.iter().map(|v| (v - m).exp()).sum();
        let lse = m + se.ln();
        for (p, v) in f.aux.iter_mut().zip(z) {
            *p = (v - lse).exp();
        }
        let c = class(f.node, f.val, z.len());
        f.out[0] = lse - c.map_or(0.0, |c| z[c]);
    }

    /// ċ = softmax(z)ᵀż − ż[c].
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        let c = class(f.node, f.val, f.a(0).len());
        let tz = f.ta(0);
        f.tout[0] =
            f.aux.iter().zip(tz).map(|(p, t)| p * t).sum::<f64>() - c.map_or(0.0, |c| tz[c]);
    }

    /// z̄ += c̄ (p − e_c).
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let p = &r.aux[r.i];
        let c = class(r.node, r.val, p.len());
        let (g0, _) = r.g0();
        for (k, d) in r.adj[r.node.args[0]].iter_mut().enumerate() {
            *d += g0 * (p[k] - if c == Some(k) { 1.0 } else { 0.0 });
        }
    }

    /// ž += ċ̄ (p − e_c) + c̄ (diag(p) − ppᵀ) ż.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let p = &r.aux[r.i];
        let c = class(r.node, r.val, p.len());
        let (g0, gt0) = r.g0();
        let tz = r.tanof(0);
        let ptz: f64 = tz.map_or(0.0, |t| p.iter().zip(t).map(|(a, b)| a * b).sum());
        for (k, d) in r.adt[r.node.args[0]].iter_mut().enumerate() {
            let hv = tz.map_or(0.0, |t| p[k] * t[k] - p[k] * ptz);
            *d += gt0 * (p[k] - if c == Some(k) { 1.0 } else { 0.0 }) + g0 * hv;
        }
    }
}

/// `correct(z, label)`: 1 for a right prediction, else 0; derivative 0
/// (no reverse rule).
pub(super) mod correct {
    use super::super::sweep::Fwd;
    use super::to_index;

    /// Sign agreement for a score, first-maximum argmax for logits (NaN
    /// logits are never right).
    pub fn value(f: &mut Fwd<'_, '_>) {
        let (z, l) = (f.a(0), f.a(1)[0]);
        f.out[0] = if z.len() == 1 {
            f64::from(u8::from((z[0] > 0.0) == (l > 0.0)))
        } else {
            // First maximum wins ties; NaN logits are never right.
            let mut best = 0;
            for (k, v) in z.iter().enumerate() {
                if *v > z[best] {
                    best = k;
                }
            }
            f64::from(u8::from(
                z.iter().all(|v| !v.is_nan()) && best == to_index(l, z.len()),
            ))
        };
    }

    /// ċ = 0.
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        f.tout[0] = 0.0;
    }
}
