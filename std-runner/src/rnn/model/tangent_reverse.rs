//! Sweep 4, the tangent reverse sweep: the derivative of sweep 3 along v,
//! `Jᵀu̇ + Σᵢ uᵢ ∇²hᵢ v`.

use super::super::config::{Cell, LayerLayout};
use super::super::gemm::{add_col_sums, gemm, transpose, Mat, Scalar};
use super::pass::{scatter_table, tanh_d, LayerRev, LayerTan, Pass};

impl<T: Scalar> Pass<'_, T> {
    /// Accumulates `Jᵀu̇ + Σᵢ uᵢ ∇²hᵢ v` into `out` (`du = None` means u̇ = 0).
    #[allow(clippy::type_complexity)]
    pub(super) fn tangent_reverse(
        &self,
        v: &[T],
        tan: &(Vec<T>, Vec<LayerTan<T>>, Vec<Vec<T>>),
        rev: &(Vec<LayerRev<T>>, Vec<Vec<T>>),
        u: &[T],
        du: Option<&[T]>,
        out: &mut [T],
    ) {
        let n = self.pk.order.len();
        let h = self.cfg().hidden;
        let (dx0, ltan, dacts) = tan;
        let (lrev, head_gs) = rev;
        // Head, last layer first. gy/dgy: adjoint of the layer's output and
        // its tangent.
        let mut gy = u.to_vec();
        let mut dgy = du.map_or_else(|| vec![T::ZERO; u.len()], <[T]>::to_vec);
        for (k, d) in self.model.layout.head.iter().enumerate().rev() {
            let (x, dx, y, dy) = (&self.acts[k], &dacts[k], &self.acts[k + 1], &dacts[k + 1]);
            let gs = &head_gs[k];
            let mut dgs = dgy;
            if d.tanh {
                for (((q, &gyv), &yv), &dyv) in dgs.iter_mut().zip(&gy).zip(y).zip(dy) {
                    *q = *q * tanh_d(yv) - (yv + yv) * dyv * gyv;
                }
            }
            let wg = &mut out[d.w.clone()];
            gemm(
                Mat::new(&dgs, n, d.output).t(),
                Mat::new(x, n, d.input),
                wg,
                true,
                self.sc(),
            );
            gemm(
                Mat::new(gs, n, d.output).t(),
                Mat::new(dx, n, d.input),
                wg,
                true,
                self.sc(),
            );
            add_col_sums(&dgs, d.output, &mut out[d.b.clone()]);
            let mut dgx = vec![T::ZERO; n * d.input];
            let (w, dw) = (self.param(&d.w), &v[d.w.clone()]);
            gemm(
                Mat::new(&dgs, n, d.output),
                Mat::new(w, d.output, d.input),
                &mut dgx,
                false,
                self.sc(),
            );
            gemm(
                Mat::new(gs, n, d.output),
                Mat::new(dw, d.output, d.input),
                &mut dgx,
                true,
                self.sc(),
            );
            // The layer input's adjoint feeds only the tanh rule of the
            // layer below (the pooled features have no such rule).
            if k > 0 {
                let mut gx = vec![T::ZERO; n * d.input];
                gemm(
                    Mat::new(gs, n, d.output),
                    Mat::new(w, d.output, d.input),
                    &mut gx,
                    false,
                    self.sc(),
                );
                gy = gx;
            }
            dgy = dgx;
        }
        // Pooling (the argmax rows are locally constant).
        let mut dg_ext = self.zeros(self.pk.rows * h);
        for (k, &r) in self.pool_row.iter().enumerate() {
            if r != usize::MAX {
                dg_ext[r * h + k % h] += dgy[k];
            }
        }
        for (l, lay) in self.model.layout.layers.iter().enumerate().rev() {
            let dx = if l == 0 {
                &dx0[..]
            } else {
                &ltan[l - 1].dh[..]
            };
            let need = l > 0 || self.cfg().train_embeddings;
            dg_ext =
                self.layer_tangent_reverse(l, lay, v, dx, &ltan[l], &lrev[l], dg_ext, need, out);
        }
        if self.cfg().train_embeddings {
            scatter_table(
                &dg_ext,
                &self.model.layout.embedding,
                self.cfg().embed,
                self.batch,
                &self.pk,
                out,
            );
        }
        self.sc().put(dg_ext);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn layer_tangent_reverse(
        &self,
        l: usize,
        lay: &LayerLayout,
        v: &[T],
        dx: &[T],
        tan: &LayerTan<T>,
        rev: &LayerRev<T>,
        mut dg: Vec<T>,
        need_dgx: bool,
        out: &mut [T],
    ) -> Vec<T> {
        let h = self.cfg().hidden;
        let gh = self.cfg().cell.gates() * h;
        let pk = &self.pk;
        let st = &self.fwd[l];
        let (dw, du) = (&v[lay.w.clone()], &v[lay.u.clone()]);
        let fp = pk.first_prev();
        // The terms Uᵀ-tangent: δₜ₊₁ U̇ added to the predecessor rows.
        let mut tmp = self.zeros((pk.rows - fp) * h);
        gemm(
            Mat::new(&rev.delta[fp * gh..], pk.rows - fp, gh),
            Mat::new(du, gh, h),
            &mut tmp,
            false,
            self.sc(),
        );
        pk.scatter_prev_add(&tmp, &mut dg, h);
        let lstm = self.cfg().cell == Cell::Lstm;
        let mut ddelta = self.zeros(pk.rows * gh);
        let mut dgc = self.zeros(if lstm { pk.rows * h } else { 0 });
        self.through_time(l, true, &mut dg, &mut ddelta, |t, dg, ddelta| {
            let r0 = pk.off[t];
            let nt = pk.n[t];
            if !lstm {
                for r in r0 * h..(r0 + nt) * h {
                    let y = st.h[r];
                    ddelta[r] = dg[r] * tanh_d(y) - (y + y) * tan.dh[r] * rev.g[r];
                }
                return;
            }
            let one = T::ONE;
            let two = T::ONE + T::ONE;
            for i in 0..nt {
                let r = r0 + i;
                let pr = (t > 0).then(|| pk.off[t - 1] + i);
                let nx = (t + 1 < pk.steps() && i < pk.n[t + 1]).then(|| pk.off[t + 1] + i);
                let gt = &st.gates[r * gh..(r + 1) * gh];
                let dgt = &tan.dgates[r * gh..(r + 1) * gh];
                for j in 0..h {
                    let (gi, gf, gg, go) = (gt[j], gt[h + j], gt[2 * h + j], gt[3 * h + j]);
                    let (di, df, dgg, dgo) = (dgt[j], dgt[h + j], dgt[2 * h + j], dgt[3 * h + j]);
                    let dcarry = nx.map_or(T::ZERO, |q| {
                        dgc[q * h + j] * st.gates[q * gh + h + j]
                            + rev.gc[q * h + j] * tan.dgates[q * gh + h + j]
                    });
                    let ghv = rev.g[r * h + j];
                    let dghv = dg[r * h + j];
                    let kv = st.k[r * h + j];
                    let dkv = tan.dk[r * h + j];
                    let gcv = rev.gc[r * h + j];
                    let gov = ghv * kv;
                    let dgov = dghv * kv + ghv * dkv;
                    let dgcv = dcarry + dghv * go * tanh_d(kv) + ghv * dgo * tanh_d(kv)
                        - two * ghv * go * kv * dkv;
                    dgc[r * h + j] = dgcv;
                    let (cp, dcp) =
                        pr.map_or((T::ZERO, T::ZERO), |p| (st.c[p * h + j], tan.dc[p * h + j]));
                    let gfv = gcv * cp;
                    let dgfv = dgcv * cp + gcv * dcp;
                    let giv = gcv * gg;
                    let dgiv = dgcv * gg + gcv * dgg;
                    let ggv = gcv * gi;
                    let dggv = dgcv * gi + gcv * di;
                    let dd = &mut ddelta[r * gh..(r + 1) * gh];
                    dd[j] = dgiv * gi * (one - gi) + giv * (one - two * gi) * di;
                    dd[h + j] = dgfv * gf * (one - gf) + gfv * (one - two * gf) * df;
                    dd[2 * h + j] = dggv * tanh_d(gg) - two * ggv * gg * dgg;
                    dd[3 * h + j] = dgov * go * (one - go) + gov * (one - two * go) * dgo;
                }
            }
        });
        // The derivative of the weight gradients δᵀx, δᵀh₋₁ and Σδ along v:
        // δ̇ᵀx + δᵀẋ and the same for h₋₁, with x and h₋₁ packed and δ
        // transposed by the reverse sweep.
        let sc = self.sc();
        let kept = rev
            .ops
            .as_ref()
            .expect("the reverse sweep kept its operands");
        let ddt = transpose(&ddelta, pk.rows, gh, sc);
        self.add_weight_grads(lay, &ddt, &kept.inputs, out);
        add_col_sums(&ddelta, gh, &mut out[lay.b.clone()]);
        let tops = self.pack_inputs(lay, dx, &tan.dhprev);
        self.add_weight_grads(lay, &kept.dt, &tops, out);
        sc.put(ddt);
        tops.recycle(sc);
        let mut dgx = Vec::new();
        if need_dgx {
            dgx = self.zeros(pk.rows * lay.input);
            self.add_input_adjoint(lay, &ddelta, self.param(&lay.w), &mut dgx, false);
            self.add_input_adjoint(lay, &rev.delta, dw, &mut dgx, true);
        }
        self.sc().put_all([tmp, ddelta, dgc, dg]);
        dgx
    }
}
