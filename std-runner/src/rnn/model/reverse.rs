//! Sweep 3, the reverse sweep: Jᵀu through the head, the pooling and the
//! layers, keeping what the tangent reverse sweep needs.

use super::super::config::{Cell, LayerLayout};
use super::super::gemm::{add_col_sums, gemm, gemm_packed, transpose, Mat, Packed, Scalar};
use super::pass::{scatter_table, tanh_d, tanh_d_rows, LayerRev, PackedInputs, Pass, WeightOps};

impl<T: Scalar> Pass<'_, T> {
    /// Accumulates Jᵀu into `grad` when given (without it only the adjoints
    /// are propagated); returns the reverse state of each layer
    /// and of the head for the tangent reverse sweep (with the
    /// weight-gradient operands when `keep`).
    pub(super) fn reverse(
        &self,
        u: &[T],
        mut grad: Option<&mut [T]>,
        keep: bool,
    ) -> (Vec<LayerRev<T>>, Vec<Vec<T>>) {
        let n = self.pk.order.len();
        let h = self.cfg().hidden;
        // Head: adjoints of each dense layer's pre-activation, last first.
        let mut gy = u.to_vec();
        let mut head_gs: Vec<Vec<T>> = Vec::new();
        for (k, d) in self.model.layout.head.iter().enumerate().rev() {
            let y = &self.acts[k + 1];
            let x = &self.acts[k];
            let mut gs = gy;
            if d.tanh {
                for (g, &yv) in gs.iter_mut().zip(y) {
                    *g *= tanh_d(yv);
                }
            }
            if let Some(grad) = grad.as_deref_mut() {
                gemm(
                    Mat::new(&gs, n, d.output).t(),
                    Mat::new(x, n, d.input),
                    &mut grad[d.w.clone()],
                    true,
                    self.sc(),
                );
                add_col_sums(&gs, d.output, &mut grad[d.b.clone()]);
            }
            let mut gx = vec![T::ZERO; n * d.input];
            gemm(
                Mat::new(&gs, n, d.output),
                Mat::new(self.param(&d.w), d.output, d.input),
                &mut gx,
                false,
                self.sc(),
            );
            head_gs.push(gs);
            gy = gx;
        }
        head_gs.reverse();
        // Pooling.
        let mut g_ext = self.zeros(self.pk.rows * h);
        for (k, &r) in self.pool_row.iter().enumerate() {
            if r != usize::MAX {
                g_ext[r * h + k % h] += gy[k];
            }
        }
        let layers = &self.model.layout.layers;
        let mut revs: Vec<LayerRev<T>> = Vec::with_capacity(layers.len());
        for (l, lay) in layers.iter().enumerate().rev() {
            // The embeddings' adjoint only feeds their gradient.
            let need_gx = l > 0 || (self.cfg().train_embeddings && grad.is_some());
            let (rev, gx) = self.layer_reverse(l, lay, g_ext, need_gx, keep, grad.as_deref_mut());
            revs.push(rev);
            g_ext = gx;
        }
        revs.reverse();
        if let Some(grad) = grad.filter(|_| self.cfg().train_embeddings) {
            scatter_table(
                &g_ext,
                &self.model.layout.embedding,
                self.cfg().embed,
                self.batch,
                &self.pk,
                grad,
            );
        }
        self.sc().put(g_ext);
        (revs, head_gs)
    }

    /// Returns the layer's reverse state (with its weight-gradient operands
    /// when `keep`) and the adjoint of its input (empty when `need_gx` is
    /// false).
    pub(super) fn layer_reverse(
        &self,
        l: usize,
        lay: &LayerLayout,
        mut g: Vec<T>,
        need_gx: bool,
        keep: bool,
        grad: Option<&mut [T]>,
    ) -> (LayerRev<T>, Vec<T>) {
        let h = self.cfg().hidden;
        let gh = self.cfg().cell.gates() * h;
        let pk = &self.pk;
        let st = &self.fwd[l];
        let lstm = self.cfg().cell == Cell::Lstm;
        let mut delta = self.zeros(pk.rows * gh);
        let mut gc = self.zeros(if lstm { pk.rows * h } else { 0 });
        self.through_time(l, true, &mut g, &mut delta, |t, g, delta| {
            let r0 = pk.off[t];
            let nt = pk.n[t];
            if !lstm {
                tanh_d_rows(r0 * h..(r0 + nt) * h, g, &st.h, delta);
                return;
            }
            for i in 0..nt {
                let r = r0 + i;
                let pr = (t > 0).then(|| pk.off[t - 1] + i);
                let nx = (t + 1 < pk.steps() && i < pk.n[t + 1]).then(|| pk.off[t + 1] + i);
                let gt = &st.gates[r * gh..(r + 1) * gh];
                for j in 0..h {
                    let (gi, gf, gg, go) = (gt[j], gt[h + j], gt[2 * h + j], gt[3 * h + j]);
                    let carry = nx.map_or(T::ZERO, |q| gc[q * h + j] * st.gates[q * gh + h + j]);
                    let ghv = g[r * h + j];
                    let kv = st.k[r * h + j];
                    let gov = ghv * kv;
                    let gcv = carry + ghv * go * tanh_d(kv);
                    gc[r * h + j] = gcv;
                    let cp = pr.map_or(T::ZERO, |p| st.c[p * h + j]);
                    let dl = &mut delta[r * gh..(r + 1) * gh];
                    dl[j] = gcv * gg * gi * (T::ONE - gi);
                    dl[h + j] = gcv * cp * gf * (T::ONE - gf);
                    dl[2 * h + j] = gcv * gi * tanh_d(gg);
                    dl[3 * h + j] = gov * go * (T::ONE - go);
                }
            }
        });
        let ops = (keep || grad.is_some()).then(|| WeightOps {
            dt: transpose(&delta, pk.rows, gh, self.sc()),
            inputs: self.pack_inputs(lay, self.layer_input(l), &st.hprev),
        });
        if let (Some(grad), Some(ops)) = (grad, &ops) {
            self.add_weight_grads(lay, &ops.dt, &ops.inputs, grad);
            add_col_sums(&delta, gh, &mut grad[lay.b.clone()]);
        }
        let ops = match ops {
            Some(ops) if !keep => {
                ops.recycle(self.sc());
                None
            }
            ops => ops,
        };
        let mut gx = Vec::new();
        if need_gx {
            gx = self.zeros(pk.rows * lay.input);
            self.add_input_adjoint(lay, &delta, self.param(&lay.w), &mut gx, false);
        }
        (LayerRev { g, gc, delta, ops }, gx)
    }

    /// Packs a layer's input `x` (nothing when empty, a zero input tangent)
    /// and the predecessor states `hprev` for [`Pass::add_weight_grads`].
    pub(super) fn pack_inputs(&self, lay: &LayerLayout, x: &[T], hprev: &[T]) -> PackedInputs<T> {
        let pk = &self.pk;
        let sc = self.sc();
        let fp = pk.first_prev();
        PackedInputs {
            x: (!x.is_empty()).then(|| Packed::new_in(Mat::new(x, pk.rows, lay.input), sc)),
            hprev: (pk.rows > fp)
                .then(|| Packed::new_in(Mat::new(hprev, pk.rows - fp, self.cfg().hidden), sc)),
        }
    }

    /// Adds a layer's weight gradients `δᵀx` to the W block and `δᵀ h₋₁`
    /// over the rows with a predecessor to the U block (the bias gradient,
    /// the column sums of δ, is the caller's).
    pub(super) fn add_weight_grads(
        &self,
        lay: &LayerLayout,
        dt: &[T],
        inputs: &PackedInputs<T>,
        out: &mut [T],
    ) {
        let gh = self.cfg().cell.gates() * self.cfg().hidden;
        let pk = &self.pk;
        if let Some(xp) = &inputs.x {
            gemm_packed(dt, pk.rows, gh, xp, &mut out[lay.w.clone()], true);
        }
        if let Some(hp) = &inputs.hprev {
            let fp = pk.first_prev();
            gemm_packed(&dt[fp..], pk.rows, gh, hp, &mut out[lay.u.clone()], true);
        }
    }

    /// `gx (+)= δ·w`: the adjoint of a layer's input for the adjoint `delta`
    /// of its pre-activations and input weights `w` (gates·hidden × input).
    pub(super) fn add_input_adjoint(
        &self,
        lay: &LayerLayout,
        delta: &[T],
        w: &[T],
        gx: &mut [T],
        accumulate: bool,
    ) {
        let gh = self.cfg().cell.gates() * self.cfg().hidden;
        gemm(
            Mat::new(delta, self.pk.rows, gh),
            Mat::new(w, gh, lay.input),
            gx,
            accumulate,
            self.sc(),
        );
    }
}
