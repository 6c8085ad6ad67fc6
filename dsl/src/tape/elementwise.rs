//! Elementwise operations: `a ± b`, `a ⊙ b`, `a ⊘ b`, `−a`, `aᵖ` and the
//! functions of [`Func`]. A scalar operand of a binary operation
//! broadcasts; its adjoint sums over the elements it was broadcast to.
//!
//! Each module holds, side by side, the value and tangent rules (forward)
//! and the adjoint and adjoint-tangent rules (reverse; ǡ = d/dε ā(y + εv)).

use super::kernels::{acc_into, bc, sigmoid, softplus};
use super::Func;

impl Func {
    /// f(a), f′(a), f″(a).
    pub(super) fn derivs(self, a: f64) -> (f64, f64, f64) {
        match self {
            Func::Exp => {
                let e = a.exp();
                (e, e, e)
            }
            Func::Log => (a.ln(), 1.0 / a, -1.0 / (a * a)),
            Func::Sqrt => {
                let s = a.sqrt();
                (s, 0.5 / s, -0.25 / (s * a))
            }
            Func::Sigmoid => {
                let s = sigmoid(a);
                (s, s * (1.0 - s), s * (1.0 - s) * (1.0 - 2.0 * s))
            }
            Func::Softplus => {
                let s = sigmoid(a);
                (softplus(a), s, s * (1.0 - s))
            }
            Func::Tanh => {
                let t = a.tanh();
                (t, 1.0 - t * t, -2.0 * t * (1.0 - t * t))
            }
            Func::Abs => (
                a.abs(),
                if a > 0.0 {
                    1.0
                } else if a < 0.0 {
                    -1.0
                } else {
                    0.0
                },
                0.0,
            ),
            Func::Cos => (a.cos(), -a.sin(), -a.cos()),
            Func::Sin => (a.sin(), a.cos(), -a.sin()),
        }
    }
}

/// `a + b` and `a − b` (s = ±1): linear, so ǡ propagates like ā.
pub(super) mod add {
    use super::super::sweep::{Fwd, Rev};
    use super::super::Op;
    use super::{acc_into, bc};

    fn sign(op: &Op) -> f64 {
        if matches!(op, Op::Add) {
            1.0
        } else {
            -1.0
        }
    }

    /// c = a + s b.
    pub fn value(f: &mut Fwd<'_, '_>) {
        let s = sign(&f.node.op);
        let (x, y) = (f.a(0), f.a(1));
        for (k, o) in f.out.iter_mut().enumerate() {
            *o = bc(x, k) + s * bc(y, k);
        }
    }

    /// ċ = ȧ + s ḃ.
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        let s = sign(&f.node.op);
        let (tx, ty) = (f.ta(0), f.ta(1));
        for (k, o) in f.tout.iter_mut().enumerate() {
            *o = bc(tx, k) + s * bc(ty, k);
        }
    }

    /// ā += c̄, b̄ += s c̄.
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let s = sign(&r.node.op);
        if r.act[0] {
            acc_into(&mut r.adj[r.node.args[0]], r.g, 1.0);
        }
        if r.act[1] {
            acc_into(&mut r.adj[r.node.args[1]], r.g, s);
        }
    }

    /// ǡ += ċ̄, b̌ += s ċ̄.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let s = sign(&r.node.op);
        if r.act[0] {
            acc_into(&mut r.adt[r.node.args[0]], r.gt, 1.0);
        }
        if r.act[1] {
            acc_into(&mut r.adt[r.node.args[1]], r.gt, s);
        }
    }
}

/// `a ⊙ b`.
pub(super) mod mul {
    use super::super::sweep::{Fwd, Rev};
    use super::{acc_into, bc};

    /// c = a b.
    pub fn value(f: &mut Fwd<'_, '_>) {
        let (x, y) = (f.a(0), f.a(1));
        for (k, o) in f.out.iter_mut().enumerate() {
            *o = bc(x, k) * bc(y, k);
        }
    }

    /// ċ = ȧ b + a ḃ.
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        let (x, y) = (f.a(0), f.a(1));
        let (tx, ty) = (f.ta(0), f.ta(1));
        for (k, o) in f.tout.iter_mut().enumerate() {
            *o = bc(tx, k) * bc(y, k) + bc(x, k) * bc(ty, k);
        }
    }

    /// ā += c̄ b, b̄ += c̄ a.
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let (x, y, g) = (r.a(0), r.a(1), r.g);
        for (k, other) in [(0, y), (1, x)] {
            if r.act[k] {
                pull(&mut r.adj[r.node.args[k]], g, |j| g[j] * bc(other, j));
            }
        }
    }

    /// ǡ += ċ̄ b + c̄ ḃ, b̌ += ċ̄ a + c̄ ȧ.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let (x, y, g, gt) = (r.a(0), r.a(1), r.g, r.gt);
        let (tx, ty) = (r.tanof(0), r.tanof(1));
        for (k, other, tother) in [(0, y, ty), (1, x, tx)] {
            if r.act[k] {
                pull(&mut r.adt[r.node.args[k]], g, |j| {
                    gt[j] * bc(other, j) + g[j] * tother.map_or(0.0, |t| bc(t, j))
                });
            }
        }
    }

    /// `dst += Σ term(j)` over the node's elements, reduced as
    /// [`acc_into`] does when `dst` is a broadcast scalar; added in place
    /// (without a temporary, same bits: `acc_into` scales by 1) otherwise.
    fn pull(dst: &mut [f64], g: &[f64], term: impl Fn(usize) -> f64) {
        if dst.len() == g.len() {
            for (j, d) in dst.iter_mut().enumerate() {
                *d += term(j);
            }
        } else {
            let t: Vec<f64> = (0..g.len()).map(term).collect();
            acc_into(dst, &t, 1.0);
        }
    }
}

/// `a ⊘ b`.
pub(super) mod div {
    use super::super::sweep::{Fwd, Rev};
    use super::{acc_into, bc};

    /// c = a / b.
    pub fn value(f: &mut Fwd<'_, '_>) {
        let (x, y) = (f.a(0), f.a(1));
        for (k, o) in f.out.iter_mut().enumerate() {
            *o = bc(x, k) / bc(y, k);
        }
    }

    /// ċ = ȧ / b − a ḃ / b².
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        let (x, y) = (f.a(0), f.a(1));
        let (tx, ty) = (f.ta(0), f.ta(1));
        for (k, o) in f.tout.iter_mut().enumerate() {
            let yk = bc(y, k);
            *o = bc(tx, k) / yk - bc(x, k) * bc(ty, k) / (yk * yk);
        }
    }

    /// ā += c̄ / b, b̄ += −c̄ a / b².
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let (x, y, g) = (r.a(0), r.a(1), r.g);
        let len = g.len();
        let mut da = vec![0.0; len];
        let mut db = vec![0.0; len];
        for k in 0..len {
            let (xa, yb) = (bc(x, k), bc(y, k));
            da[k] = g[k] / yb;
            db[k] = -g[k] * xa / (yb * yb);
        }
        if r.act[0] {
            acc_into(&mut r.adj[r.node.args[0]], &da, 1.0);
        }
        if r.act[1] {
            acc_into(&mut r.adj[r.node.args[1]], &db, 1.0);
        }
    }

    /// The tangents of the two adjoint rules.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let (x, y, g, gt) = (r.a(0), r.a(1), r.g, r.gt);
        let (tx, ty) = (r.tanof(0), r.tanof(1));
        let len = g.len();
        let mut dat = vec![0.0; len];
        let mut dbt = vec![0.0; len];
        for k in 0..len {
            let (xa, yb) = (bc(x, k), bc(y, k));
            let txa = tx.map_or(0.0, |t| bc(t, k));
            let tyb = ty.map_or(0.0, |t| bc(t, k));
            dat[k] = gt[k] / yb - g[k] * tyb / (yb * yb);
            dbt[k] = -gt[k] * xa / (yb * yb)
                - g[k] * (txa / (yb * yb) - 2.0 * xa * tyb / (yb * yb * yb));
        }
        if r.act[0] {
            acc_into(&mut r.adt[r.node.args[0]], &dat, 1.0);
        }
        if r.act[1] {
            acc_into(&mut r.adt[r.node.args[1]], &dbt, 1.0);
        }
    }
}

/// `−a`.
pub(super) mod neg {
    use super::super::sweep::{Fwd, Rev};
    use super::acc_into;

    /// c = −a.
    pub fn value(f: &mut Fwd<'_, '_>) {
        let a = f.a(0);
        for (o, x) in f.out.iter_mut().zip(a) {
            *o = -x;
        }
    }

    /// ċ = −ȧ.
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        let ta = f.ta(0);
        for (o, x) in f.tout.iter_mut().zip(ta) {
            *o = -x;
        }
    }

    /// ā −= c̄.
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        acc_into(&mut r.adj[r.node.args[0]], r.g, -1.0);
    }

    /// ǡ −= ċ̄.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        acc_into(&mut r.adt[r.node.args[0]], r.gt, -1.0);
    }
}

/// `aᵖ` for a constant p.
pub(super) mod pow {
    use super::super::sweep::{Fwd, Rev};
    use super::super::Op;
    use super::acc_into;

    fn exponent(op: &Op) -> f64 {
        match op {
            Op::Pow(p) => *p,
            _ => f64::NAN,
        }
    }

    /// c = aᵖ.
    pub fn value(f: &mut Fwd<'_, '_>) {
        let p = exponent(&f.node.op);
        let a = f.a(0);
        for (o, x) in f.out.iter_mut().zip(a) {
            *o = x.powf(p);
        }
    }

    /// ċ = p aᵖ⁻¹ ȧ.
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        let p = exponent(&f.node.op);
        let (a, ta) = (f.a(0), f.ta(0));
        for ((o, x), t) in f.tout.iter_mut().zip(a).zip(ta) {
            *o = p * x.powf(p - 1.0) * t;
        }
    }

    /// ā += c̄ p aᵖ⁻¹.
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let p = exponent(&r.node.op);
        let x = r.a(0);
        let d: Vec<f64> = x
            .iter()
            .zip(r.g)
            .map(|(x, g)| g * p * x.powf(p - 1.0))
            .collect();
        acc_into(&mut r.adj[r.node.args[0]], &d, 1.0);
    }

    /// ǡ += ċ̄ p aᵖ⁻¹ + c̄ p (p − 1) aᵖ⁻² ȧ.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let p = exponent(&r.node.op);
        let (x, g, gt) = (r.a(0), r.g, r.gt);
        let tx = r.tanof(0);
        let dt: Vec<f64> = (0..x.len())
            .map(|k| {
                gt[k] * p * x[k].powf(p - 1.0)
                    + tx.map_or(0.0, |t| g[k] * p * (p - 1.0) * x[k].powf(p - 2.0) * t[k])
            })
            .collect();
        acc_into(&mut r.adt[r.node.args[0]], &dt, 1.0);
    }
}

/// An elementwise function f of [`Func`].
pub(super) mod unary {
    use super::super::sweep::{Fwd, Rev};
    use super::super::{Func, Op};
    use super::acc_into;

    fn func(op: &Op) -> Func {
        match op {
            Op::Unary(b) => *b,
            // Unreachable: the sweeps dispatch only `Unary` here.
            _ => Func::Exp,
        }
    }

    /// c = f(a).
    pub fn value(f: &mut Fwd<'_, '_>) {
        let b = func(&f.node.op);
        let a = f.a(0);
        for (o, x) in f.out.iter_mut().zip(a) {
            *o = b.derivs(*x).0;
        }
    }

    /// ċ = f′(a) ȧ.
    pub fn tangent(f: &mut Fwd<'_, '_>) {
        let b = func(&f.node.op);
        let (a, ta) = (f.a(0), f.ta(0));
        for ((o, x), t) in f.tout.iter_mut().zip(a).zip(ta) {
            *o = b.derivs(*x).1 * t;
        }
    }

    /// ā += c̄ f′(a).
    pub fn adjoint(r: &mut Rev<'_, '_>) {
        let b = func(&r.node.op);
        let x = r.a(0);
        let mut d = vec![0.0; x.len()];
        for k in 0..x.len() {
            d[k] = r.g[k] * b.derivs(x[k]).1;
        }
        acc_into(&mut r.adj[r.node.args[0]], &d, 1.0);
    }

    /// ǡ += ċ̄ f′(a) + c̄ f″(a) ȧ.
    pub fn adjoint_tangent(r: &mut Rev<'_, '_>) {
        let b = func(&r.node.op);
        let x = r.a(0);
        let tx = r.tanof(0);
        let mut dt = vec![0.0; x.len()];
        for k in 0..x.len() {
            let (_, f1, f2) = b.derivs(x[k]);
            dt[k] = r.gt[k] * f1 + tx.map_or(0.0, |t| r.g[k] * f2 * t[k]);
        }
        acc_into(&mut r.adt[r.node.args[0]], &dt, 1.0);
    }
}
