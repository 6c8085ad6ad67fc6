//! Sweep 2, the tangent forward sweep: ḣ = J v through the layers and the head.

use super::super::config::{Cell, DenseLayout, LayerLayout};
use super::super::gemm::{add_row_bias, gemm, Mat, Scalar};
use super::pass::{gather_table, tanh_d, tanh_d_rows, LayerTan, Pass};

impl<T: Scalar> Pass<'_, T> {
    /// Returns (dx0, per-layer tangents, head tangents `dacts`).
    pub(super) fn tangent_forward(&self, v: &[T]) -> (Vec<T>, Vec<LayerTan<T>>, Vec<Vec<T>>) {
        let dx0 = if self.cfg().train_embeddings {
            gather_table(
                v,
                &self.model.layout.embedding,
                self.cfg().embed,
                self.batch,
                &self.pk,
                self.sc(),
            )
        } else {
            Vec::new()
        };
        let mut tans: Vec<LayerTan<T>> = Vec::new();
        for (l, lay) in self.model.layout.layers.iter().enumerate() {
            let dx = if l == 0 {
                &dx0[..]
            } else {
                &tans[l - 1].dh[..]
            };
            let t = self.layer_tangent(l, lay, v, dx);
            tans.push(t);
        }
        let h = self.cfg().hidden;
        let top = &tans.last().expect("at least one layer").dh;
        let dpooled: Vec<T> = self
            .pool_row
            .iter()
            .enumerate()
            .map(|(k, &r)| {
                if r == usize::MAX {
                    T::ZERO
                } else {
                    top[r * h + k % h]
                }
            })
            .collect();
        let mut dacts = vec![dpooled];
        for (k, d) in self.model.layout.head.iter().enumerate() {
            let dx = dacts.last().map_or(&[][..], |a| &a[..]);
            let dy = self.dense_tangent(d, v, &self.acts[k], dx, &self.acts[k + 1]);
            dacts.push(dy);
        }
        (dx0, tans, dacts)
    }

    /// `dx` is empty when the input's tangent is zero (fixed word vectors).
    pub(super) fn layer_tangent(
        &self,
        l: usize,
        lay: &LayerLayout,
        v: &[T],
        dx: &[T],
    ) -> LayerTan<T> {
        let h = self.cfg().hidden;
        let gh = self.cfg().cell.gates() * h;
        let pk = &self.pk;
        let st = &self.fwd[l];
        let w = self.param(&lay.w);
        let (dw, du, db) = (&v[lay.w.clone()], &v[lay.u.clone()], &v[lay.b.clone()]);
        let x = self.layer_input(l);
        // Overwritten by the first product (accumulate = false).
        let mut da = self.sc().overwritten(pk.rows * gh);
        gemm(
            Mat::new(x, pk.rows, lay.input),
            Mat::new(dw, gh, lay.input).t(),
            &mut da,
            false,
            self.sc(),
        );
        if !dx.is_empty() {
            gemm(
                Mat::new(dx, pk.rows, lay.input),
                Mat::new(w, gh, lay.input).t(),
                &mut da,
                true,
                self.sc(),
            );
        }
        add_row_bias(&mut da, db);
        let fp = pk.first_prev();
        gemm(
            Mat::new(&st.hprev, pk.rows - fp, h),
            Mat::new(du, gh, h).t(),
            &mut da[fp * gh..],
            true,
            self.sc(),
        );
        let lstm = self.cfg().cell == Cell::Lstm;
        let state = || self.zeros(if lstm { pk.rows * h } else { 0 });
        let mut tan = LayerTan {
            dh: self.zeros(pk.rows * h),
            dc: state(),
            dk: state(),
            ..LayerTan::default()
        };
        let (dc, dk) = (&mut tan.dc, &mut tan.dk);
        self.through_time(l, false, &mut da, &mut tan.dh, |t, da, dh| {
            let r0 = pk.off[t];
            let nt = pk.n[t];
            if !lstm {
                tanh_d_rows(r0 * h..(r0 + nt) * h, da, &st.h, dh);
                return;
            }
            for i in 0..nt {
                let r = r0 + i;
                let pr = (t > 0).then(|| pk.off[t - 1] + i);
                let g = &st.gates[r * gh..(r + 1) * gh];
                let dg = &mut da[r * gh..(r + 1) * gh];
                for j in 0..h {
                    let (gi, gf, gg, go) = (g[j], g[h + j], g[2 * h + j], g[3 * h + j]);
                    let di = gi * (T::ONE - gi) * dg[j];
                    let df = gf * (T::ONE - gf) * dg[h + j];
                    let dgg = tanh_d(gg) * dg[2 * h + j];
                    let dgo = go * (T::ONE - go) * dg[3 * h + j];
                    dg[j] = di;
                    dg[h + j] = df;
                    dg[2 * h + j] = dgg;
                    dg[3 * h + j] = dgo;
                    let (cp, dcp) =
                        pr.map_or((T::ZERO, T::ZERO), |p| (st.c[p * h + j], dc[p * h + j]));
                    let dcv = df * cp + gf * dcp + di * gg + gi * dgg;
                    let kv = st.k[r * h + j];
                    let dkv = tanh_d(kv) * dcv;
                    dc[r * h + j] = dcv;
                    dk[r * h + j] = dkv;
                    dh[r * h + j] = dgo * kv + go * dkv;
                }
            }
        });
        if lstm {
            tan.dgates = da;
        } else {
            self.sc().put(da);
        }
        tan.dhprev = pk.gather_prev(&tan.dh, h, self.sc());
        tan
    }

    pub(super) fn dense_tangent(
        &self,
        d: &DenseLayout,
        v: &[T],
        x: &[T],
        dx: &[T],
        y: &[T],
    ) -> Vec<T> {
        let n = self.pk.order.len();
        let mut dy = vec![T::ZERO; n * d.output];
        gemm(
            Mat::new(dx, n, d.input),
            Mat::new(self.param(&d.w), d.output, d.input).t(),
            &mut dy,
            false,
            self.sc(),
        );
        gemm(
            Mat::new(x, n, d.input),
            Mat::new(&v[d.w.clone()], d.output, d.input).t(),
            &mut dy,
            true,
            self.sc(),
        );
        add_row_bias(&mut dy, &v[d.b.clone()]);
        if d.tanh {
            for (t, &yv) in dy.iter_mut().zip(y) {
                *t *= tanh_d(yv);
            }
        }
        dy
    }
}
