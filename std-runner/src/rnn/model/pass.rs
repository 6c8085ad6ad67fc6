//! One chunk's pass: the packed layout of its sequences, the state each
//! sweep keeps, and sweep 1, the forward sweep (hidden states, pooling,
//! head, logits).

use std::ops::Range;

use bilevel_dsl::TokenBatch;

use super::super::config::{Cell, DenseLayout, LayerLayout, Pool, RnnConfig};
use super::super::gemm::{add_row_bias, gemm, gemm_packed, Mat, Packed, Scalar, Scratch};
use super::{LossCurvature, RnnModel};

/// Where the cotangent of the logits comes from.
pub(super) enum Cotangent<'a, T> {
    /// Given for the whole batch (u̇ = 0 when `du` is `None`).
    Given { u: &'a [T], du: Option<&'a [T]> },
    /// Computed per example from the logits and their tangent.
    Loss(&'a dyn LossCurvature<T>),
}

/// One chunk's results, in the chunk's (sorted) row order.
pub(super) struct ChunkOut<T> {
    pub(super) examples: Vec<usize>,
    pub(super) z: Vec<T>,
    pub(super) dz: Vec<T>,
    pub(super) grad: Vec<T>,
    pub(super) hvp: Vec<T>,
}

/// Packed layout of one chunk: row `off[t] + i` is step t of the i-th
/// longest sequence; `n[t]` sequences are live at step t.
pub(super) struct Packing {
    pub(super) order: Vec<usize>,
    pub(super) lens: Vec<usize>,
    pub(super) off: Vec<usize>,
    pub(super) n: Vec<usize>,
    pub(super) rows: usize,
}

impl Packing {
    pub(super) fn new(batch: &TokenBatch<'_>, examples: Range<usize>) -> Self {
        let mut order: Vec<usize> = examples.collect();
        order.sort_by_key(|&e| std::cmp::Reverse(batch.sequence(e).len()));
        let lens: Vec<usize> = order.iter().map(|&e| batch.sequence(e).len()).collect();
        let steps = lens.first().copied().unwrap_or(0);
        let n: Vec<usize> = (0..steps)
            .map(|t| lens.iter().take_while(|&&l| l > t).count())
            .collect();
        let mut off = vec![0];
        for &k in &n {
            off.push(off.last().copied().unwrap_or(0) + k);
        }
        let rows = off.last().copied().unwrap_or(0);
        Packing {
            order,
            lens,
            off,
            n,
            rows,
        }
    }

    pub(super) fn steps(&self) -> usize {
        self.n.len()
    }

    /// Rows with a predecessor: `off[1]..rows`.
    pub(super) fn first_prev(&self) -> usize {
        self.off.get(1).copied().unwrap_or(self.rows)
    }

    /// For every row with a predecessor, its predecessor's row of `src`
    /// (`width` columns): `(rows − off[1]) × width`.
    pub(super) fn gather_prev<T: Scalar>(
        &self,
        src: &[T],
        width: usize,
        scratch: &Scratch<T>,
    ) -> Vec<T> {
        let mut out = scratch.empty((self.rows - self.first_prev()) * width);
        for t in 1..self.steps() {
            let s = self.off[t - 1] * width;
            out.extend_from_slice(&src[s..s + self.n[t] * width]);
        }
        out
    }

    /// `dst[pred(r)] += src[r − off[1]]` for every row r with a predecessor.
    pub(super) fn scatter_prev_add<T: Scalar>(&self, src: &[T], dst: &mut [T], width: usize) {
        let base = self.first_prev();
        for t in 1..self.steps() {
            let s = (self.off[t] - base) * width;
            let d = self.off[t - 1] * width;
            let len = self.n[t] * width;
            for (x, &y) in dst[d..d + len].iter_mut().zip(&src[s..s + len]) {
                *x += y;
            }
        }
    }
}

pub(super) fn tanh_d<T: Scalar>(y: T) -> T {
    T::ONE - y * y
}

/// `out[r] = x[r]·(1 − y[r]²)` over `rows`: `x` through the derivative of
/// tanh at its outputs `y` (the Elman cell's tangent and adjoint step).
pub(super) fn tanh_d_rows<T: Scalar>(rows: Range<usize>, x: &[T], y: &[T], out: &mut [T]) {
    for ((o, &xv), &yv) in out[rows.clone()]
        .iter_mut()
        .zip(&x[rows.clone()])
        .zip(&y[rows])
    {
        *o = xv * tanh_d(yv);
    }
}

pub(super) fn sigmoid<T: Scalar>(x: T) -> T {
    x.act_sigmoid()
}

/// Primal state of one recurrent layer.
#[derive(Default)]
pub(super) struct LayerFwd<T> {
    /// Hidden states, rows × hidden.
    pub(super) h: Vec<T>,
    /// Predecessor hidden states of rows `off[1]..`.
    pub(super) hprev: Vec<T>,
    /// LSTM: gate activations (i, f, g, o), rows × 4·hidden.
    pub(super) gates: Vec<T>,
    /// LSTM: cell states, rows × hidden.
    pub(super) c: Vec<T>,
    /// LSTM: tanh of the cell states.
    pub(super) k: Vec<T>,
}

/// Tangent state of one recurrent layer.
#[derive(Default)]
pub(super) struct LayerTan<T> {
    pub(super) dh: Vec<T>,
    pub(super) dhprev: Vec<T>,
    pub(super) dgates: Vec<T>,
    pub(super) dc: Vec<T>,
    pub(super) dk: Vec<T>,
}

/// Reverse state of one recurrent layer.
#[derive(Default)]
pub(super) struct LayerRev<T> {
    /// Total adjoint of the hidden states (after the recurrent terms).
    pub(super) g: Vec<T>,
    /// LSTM: total adjoint of the cell states.
    pub(super) gc: Vec<T>,
    /// Adjoint of the pre-activations, rows × gates·hidden.
    pub(super) delta: Vec<T>,
    /// The weight-gradient operands, kept when a tangent reverse sweep
    /// follows (it multiplies δᵀ and the packed inputs again).
    pub(super) ops: Option<WeightOps<T>>,
}

/// A layer's input x and predecessor states h₋₁, packed as the right-hand
/// sides of the weight-gradient products δᵀx and δᵀh₋₁ (`None` for a zero
/// input tangent, or when no row has a predecessor).
pub(super) struct PackedInputs<T> {
    pub(super) x: Option<Packed<T>>,
    pub(super) hprev: Option<Packed<T>>,
}

impl<T: Scalar> PackedInputs<T> {
    pub(super) fn recycle(self, sc: &Scratch<T>) {
        sc.put_all(self.x.into_iter().chain(self.hprev).map(Packed::into_vec));
    }
}

/// The operands of a layer's weight-gradient products: δᵀ row-major
/// (gates·hidden × rows) and the packed inputs.
pub(super) struct WeightOps<T> {
    pub(super) dt: Vec<T>,
    pub(super) inputs: PackedInputs<T>,
}

impl<T: Scalar> WeightOps<T> {
    pub(super) fn recycle(self, sc: &Scratch<T>) {
        sc.put(self.dt);
        self.inputs.recycle(sc);
    }
}

/// The recurrent matrices of every layer, packed once per call for the
/// per-step products of all chunks: `fwd[l]` is Uₗᵀ (hidden × gates·hidden,
/// for h₋₁·Uᵀ in the forward and tangent sweeps), `rev[l]` is Uₗ (for δ₊₁·U
/// in the reverse sweeps; empty when no reverse sweep runs).
pub(super) struct Packs<T> {
    pub(super) fwd: Vec<Packed<T>>,
    pub(super) rev: Vec<Packed<T>>,
}

impl<T: Scalar> Packs<T> {
    pub(super) fn new(model: &RnnModel<T>, theta: &[T], reverse: bool) -> Self {
        let h = model.cfg.hidden;
        let gh = model.cfg.cell.gates() * h;
        let layers = &model.layout.layers;
        let u = |l: &LayerLayout| Mat::new(&theta[l.u.clone()], gh, h);
        let sc = &model.scratch;
        Packs {
            fwd: layers
                .iter()
                .map(|l| Packed::new_in(u(l).t(), sc))
                .collect(),
            rev: if reverse {
                layers.iter().map(|l| Packed::new_in(u(l), sc)).collect()
            } else {
                Vec::new()
            },
        }
    }
}

/// A tangent forward sweep: (dx0, per-layer tangents, head tangents
/// `dacts`).
pub(super) type Tangent<T> = (Vec<T>, Vec<LayerTan<T>>, Vec<Vec<T>>);

/// A tangent forward sweep with its direction v.
pub(super) type KeptTangent<T> = (Vec<T>, Tangent<T>);

/// `true` when `a` and `b` hold the same bits.
fn same_bits<T: Scalar>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_f64().to_bits() == y.to_f64().to_bits())
}

/// Returns a tangent sweep's buffers to the pool.
fn recycle_tangent<T: Scalar>(sc: &Scratch<T>, (v, (dx0, tans, dacts)): KeptTangent<T>) {
    sc.put(v);
    sc.put(dx0);
    sc.put_all(
        tans.into_iter()
            .flat_map(|t| [t.dh, t.dhprev, t.dgates, t.dc, t.dk]),
    );
    sc.put_all(dacts);
}

/// One chunk's forward sweep, kept between calls ([`FwdCache`]), with its
/// last tangent forward sweep (the tape asks for Jv in its forward phase and
/// for the second-order reverse product along the same v in its reverse
/// phase).
pub(super) struct Forward<T> {
    pub(super) pk: Packing,
    pub(super) x0: Vec<T>,
    pub(super) fwd: Vec<LayerFwd<T>>,
    pub(super) pooled: Vec<T>,
    pub(super) pool_row: Vec<usize>,
    pub(super) acts: Vec<Vec<T>>,
    pub(super) tan: Option<KeptTangent<T>>,
}

impl<T: Scalar> Forward<T> {
    /// Returns the buffers to the pool.
    pub(super) fn recycle(self, sc: &Scratch<T>) {
        sc.put(self.x0);
        sc.put_all(
            self.fwd
                .into_iter()
                .flat_map(|f| [f.h, f.hprev, f.gates, f.c, f.k]),
        );
        sc.put_all(self.acts);
        if let Some(t) = self.tan {
            recycle_tangent(sc, t);
        }
    }
}

/// One chunk's pass: parameters, packing and every stored intermediate.
pub(super) struct Pass<'a, T> {
    pub(super) model: &'a RnnModel<T>,
    pub(super) theta: &'a [T],
    pub(super) packs: &'a Packs<T>,
    pub(super) batch: &'a TokenBatch<'a>,
    pub(super) pk: Packing,
    /// Input rows of the first layer (word vectors).
    pub(super) x0: Vec<T>,
    pub(super) fwd: Vec<LayerFwd<T>>,
    /// Pooled encoding (n × hidden) and for each entry the row it came from
    /// (`usize::MAX` for an empty sequence).
    pub(super) pooled: Vec<T>,
    pub(super) pool_row: Vec<usize>,
    /// Head activations: `acts[0]` is the pooled encoding, `acts[k]` the
    /// output of dense layer k; the last one is the logits.
    pub(super) acts: Vec<Vec<T>>,
    /// The last tangent forward sweep on this forward sweep, with its v.
    pub(super) tan: Option<KeptTangent<T>>,
}

impl<'a, T: Scalar> Pass<'a, T> {
    pub(super) fn new(
        model: &'a RnnModel<T>,
        theta: &'a [T],
        packs: &'a Packs<T>,
        batch: &'a TokenBatch<'a>,
        examples: Range<usize>,
        cached: Option<Forward<T>>,
    ) -> Self {
        if let Some(f) = cached {
            return Pass {
                model,
                theta,
                packs,
                batch,
                pk: f.pk,
                x0: f.x0,
                fwd: f.fwd,
                pooled: f.pooled,
                pool_row: f.pool_row,
                acts: f.acts,
                tan: f.tan,
            };
        }
        let pk = Packing::new(batch, examples);
        let x0 = gather_rows(model, theta, batch, &pk);
        Pass {
            model,
            theta,
            packs,
            batch,
            pk,
            x0,
            fwd: Vec::new(),
            pooled: Vec::new(),
            pool_row: Vec::new(),
            acts: Vec::new(),
            tan: None,
        }
    }

    /// The forward sweep's state, for the cache.
    pub(super) fn into_forward(self) -> Forward<T> {
        Forward {
            pk: self.pk,
            x0: self.x0,
            fwd: self.fwd,
            pooled: self.pooled,
            pool_row: self.pool_row,
            acts: self.acts,
            tan: self.tan,
        }
    }

    pub(super) fn cfg(&self) -> &RnnConfig {
        &self.model.cfg
    }

    /// The model's buffer pool.
    pub(super) fn sc(&self) -> &'a Scratch<T> {
        &self.model.scratch
    }

    /// `n` zeros from the pool.
    pub(super) fn zeros(&self, n: usize) -> Vec<T> {
        self.model.scratch.zeros(n)
    }

    pub(super) fn run(
        mut self,
        tangent: Option<&[T]>,
        cot: Option<&Cotangent<'_, T>>,
        want_grad: bool,
        want_hvp: bool,
    ) -> (ChunkOut<T>, Forward<T>) {
        // A pass built from the cache has its forward sweep already.
        if self.acts.is_empty() {
            self.forward();
        }
        let nseq = self.pk.order.len();
        let c = self.cfg().outputs();
        let z = self.acts.last().cloned().unwrap_or_default();
        let tan = tangent.map(|v| self.tangent_for(v));
        let dz = tan
            .as_ref()
            .and_then(|t| t.1 .2.last().cloned())
            .unwrap_or_default();
        let mut out = ChunkOut {
            examples: self.pk.order.clone(),
            z,
            dz,
            grad: Vec::new(),
            hvp: Vec::new(),
        };
        let Some(cot) = cot else {
            self.keep_tangent(tan);
            return (out, self.into_forward());
        };
        // Cotangent rows in the chunk's order.
        let mut u = vec![T::ZERO; nseq * c];
        let mut du = vec![T::ZERO; nseq * c];
        let mut has_du = false;
        match cot {
            Cotangent::Given { u: gu, du: gdu } => {
                for (i, &e) in self.pk.order.iter().enumerate() {
                    u[i * c..(i + 1) * c].copy_from_slice(&gu[e * c..(e + 1) * c]);
                    if let Some(gdu) = gdu {
                        du[i * c..(i + 1) * c].copy_from_slice(&gdu[e * c..(e + 1) * c]);
                        has_du = true;
                    }
                }
            }
            Cotangent::Loss(f) => {
                let zero = vec![T::ZERO; c];
                for (i, &e) in self.pk.order.iter().enumerate() {
                    let r = i * c..(i + 1) * c;
                    let dzr = if out.dz.is_empty() {
                        &zero[..]
                    } else {
                        &out.dz[r.clone()]
                    };
                    let (ur, dur) = (&mut u[r.clone()], &mut du[r.clone()]);
                    f.apply(e, &out.z[r], dzr, ur, dur);
                }
                has_du = tangent.is_some();
            }
        }
        let total = self.model.layout.total;
        // The weight gradients are skipped when only the HVP is wanted: the
        // tangent reverse sweep needs the adjoints δ, not δᵀx.
        let mut grad = if want_grad {
            self.zeros(total)
        } else {
            Vec::new()
        };
        let rev = self.reverse(&u, want_grad.then_some(&mut grad[..]), want_hvp);
        out.grad = grad;
        if want_hvp {
            let v = tangent.expect("the hvp needs a tangent");
            let tan = &tan.as_ref().expect("tangent sweep ran").1;
            let mut hvp = self.zeros(total);
            self.tangent_reverse(v, tan, &rev, &u, has_du.then_some(&du[..]), &mut hvp);
            out.hvp = hvp;
        }
        let sc = self.sc();
        let (revs, head_gs) = rev;
        for r in revs {
            sc.put_all([r.g, r.gc, r.delta]);
            if let Some(ops) = r.ops {
                ops.recycle(sc);
            }
        }
        sc.put_all(head_gs);
        self.keep_tangent(tan);
        (out, self.into_forward())
    }

    /// The tangent forward sweep along `v`: the kept one when it was along
    /// the same v (bit for bit; the sweep is deterministic, so the bits are
    /// those of a fresh one), else a fresh one.
    fn tangent_for(&mut self, v: &[T]) -> KeptTangent<T> {
        match self.tan.take() {
            Some(kept) if same_bits(&kept.0, v) => kept,
            stale => {
                if let Some(t) = stale {
                    recycle_tangent(self.sc(), t);
                }
                let mut key = self.sc().empty(v.len());
                key.extend_from_slice(v);
                (key, self.tangent_forward(v))
            }
        }
    }

    /// Keeps this call's tangent sweep (when it ran) for the next call.
    fn keep_tangent(&mut self, tan: Option<KeptTangent<T>>) {
        if let Some(t) = tan {
            if let Some(old) = self.tan.replace(t) {
                recycle_tangent(self.sc(), old);
            }
        }
    }

    pub(super) fn param(&self, r: &Range<usize>) -> &'a [T] {
        &self.theta[r.clone()]
    }

    pub(super) fn layer_input(&self, l: usize) -> &[T] {
        if l == 0 {
            &self.x0
        } else {
            &self.fwd[l - 1].h
        }
    }

    // ---------------------------------------------------------------- forward

    pub(super) fn forward(&mut self) {
        let layers = self.model.layout.layers.clone();
        for (l, lay) in layers.iter().enumerate() {
            let f = self.layer_forward(l, lay);
            self.fwd.push(f);
        }
        self.pool();
        let mut acts = vec![self.pooled.clone()];
        for d in &self.model.layout.head {
            let x = acts.last().map_or(&[][..], |a| &a[..]);
            let y = self.dense_forward(d, x);
            acts.push(y);
        }
        self.acts = acts;
    }

    pub(super) fn layer_forward(&self, l: usize, lay: &LayerLayout) -> LayerFwd<T> {
        let h = self.cfg().hidden;
        let gh = self.cfg().cell.gates() * h;
        let pk = &self.pk;
        let (w, b) = (self.param(&lay.w), self.param(&lay.b));
        // Pre-activations of every step at once: x·Wᵀ + b; the recurrent
        // terms are added step by step.
        let x = self.layer_input(l);
        // Overwritten by the product (accumulate = false).
        let mut pre = self.sc().overwritten(pk.rows * gh);
        gemm(
            Mat::new(x, pk.rows, lay.input),
            Mat::new(w, gh, lay.input).t(),
            &mut pre,
            false,
            self.sc(),
        );
        add_row_bias(&mut pre, b);
        let lstm = self.cfg().cell == Cell::Lstm;
        let state = || self.zeros(if lstm { pk.rows * h } else { 0 });
        let mut st = LayerFwd {
            h: self.zeros(pk.rows * h),
            c: state(),
            k: state(),
            ..LayerFwd::default()
        };
        let (cs, ks) = (&mut st.c, &mut st.k);
        self.through_time(l, false, &mut pre, &mut st.h, |t, pre, hs| {
            let r0 = pk.off[t];
            let nt = pk.n[t];
            if !lstm {
                for (y, &a) in hs[r0 * h..(r0 + nt) * h].iter_mut().zip(&pre[r0 * h..]) {
                    *y = a.act_tanh();
                }
                return;
            }
            for i in 0..nt {
                let r = r0 + i;
                let pr = (t > 0).then(|| pk.off[t - 1] + i);
                let gates = &mut pre[r * gh..(r + 1) * gh];
                for j in 0..h {
                    let gi = sigmoid(gates[j]);
                    let gf = sigmoid(gates[h + j]);
                    let gg = gates[2 * h + j].act_tanh();
                    let go = sigmoid(gates[3 * h + j]);
                    gates[j] = gi;
                    gates[h + j] = gf;
                    gates[2 * h + j] = gg;
                    gates[3 * h + j] = go;
                    let cp = pr.map_or(T::ZERO, |p| cs[p * h + j]);
                    let cv = gf * cp + gi * gg;
                    let kv = cv.act_tanh();
                    cs[r * h + j] = cv;
                    ks[r * h + j] = kv;
                    hs[r * h + j] = go * kv;
                }
            }
        });
        if lstm {
            st.gates = pre;
        } else {
            self.sc().put(pre);
        }
        st.hprev = pk.gather_prev(&st.h, h, self.sc());
        st
    }

    /// One recurrence through time over the layer's packed rows. Forward
    /// (`backward == false`), for t = 0, 1, …: adds `src[t−1]·Uᵀ` to
    /// `dst[t]` (the pre-activations), then `step(t, dst, src)` computes the
    /// states `src[t]`. Backward, for t = T−1, …, 0: adds `src[t+1]·U` to
    /// `dst[t]` (the adjoint of the hidden states), then `step` computes the
    /// adjoint of the pre-activations `src[t]`. `dst[t]` and `src[t]` are
    /// the rows of step t; only the rows live at both steps take part.
    pub(super) fn through_time(
        &self,
        l: usize,
        backward: bool,
        dst: &mut [T],
        src: &mut [T],
        mut step: impl FnMut(usize, &mut [T], &mut [T]),
    ) {
        let pk = &self.pk;
        let packed = if backward {
            &self.packs.rev[l]
        } else {
            &self.packs.fwd[l]
        };
        let (kw, nw) = (packed.k(), packed.n());
        let steps = pk.steps();
        for i in 0..steps {
            let (t, q) = if backward {
                (steps - 1 - i, steps - i)
            } else {
                (i, i.wrapping_sub(1))
            };
            if i > 0 {
                let cnt = pk.n[t.max(q)];
                gemm_packed(
                    &src[pk.off[q] * kw..][..cnt * kw],
                    kw,
                    cnt,
                    packed,
                    &mut dst[pk.off[t] * nw..][..cnt * nw],
                    true,
                );
            }
            step(t, dst, src);
        }
    }

    pub(super) fn pool(&mut self) {
        let h = self.cfg().hidden;
        let pk = &self.pk;
        let top = &self.fwd.last().expect("at least one layer").h;
        let nseq = pk.order.len();
        let mut pooled = vec![T::ZERO; nseq * h];
        let mut rows = vec![usize::MAX; nseq * h];
        for i in 0..nseq {
            let len = pk.lens[i];
            if len == 0 {
                continue;
            }
            match self.cfg().pool {
                Pool::Last => {
                    let r = pk.off[len - 1] + i;
                    pooled[i * h..(i + 1) * h].copy_from_slice(&top[r * h..(r + 1) * h]);
                    rows[i * h..(i + 1) * h].fill(r);
                }
                Pool::Max => {
                    pooled[i * h..(i + 1) * h].copy_from_slice(&top[i * h..(i + 1) * h]);
                    rows[i * h..(i + 1) * h].fill(i);
                    for t in 1..len {
                        let r = pk.off[t] + i;
                        for j in 0..h {
                            let y = top[r * h + j];
                            if y > pooled[i * h + j] {
                                pooled[i * h + j] = y;
                                rows[i * h + j] = r;
                            }
                        }
                    }
                }
            }
        }
        self.pooled = pooled;
        self.pool_row = rows;
    }

    pub(super) fn dense_forward(&self, d: &DenseLayout, x: &[T]) -> Vec<T> {
        let n = self.pk.order.len();
        let mut y = vec![T::ZERO; n * d.output];
        gemm(
            Mat::new(x, n, d.input),
            Mat::new(self.param(&d.w), d.output, d.input).t(),
            &mut y,
            false,
            self.sc(),
        );
        add_row_bias(&mut y, self.param(&d.b));
        if d.tanh {
            for v in &mut y {
                *v = v.act_tanh();
            }
        }
        y
    }
}

/// Gathers the word vectors of every packed row: from θ's embedding block
/// when trained, from the fixed table otherwise.
pub(super) fn gather_rows<T: Scalar>(
    model: &RnnModel<T>,
    theta: &[T],
    batch: &TokenBatch<'_>,
    pk: &Packing,
) -> Vec<T> {
    if model.cfg.train_embeddings {
        gather_table(
            theta,
            &model.layout.embedding,
            model.cfg.embed,
            batch,
            pk,
            &model.scratch,
        )
    } else {
        gather_table(
            &model.vectors,
            &(0..model.vectors.len()),
            model.cfg.embed,
            batch,
            pk,
            &model.scratch,
        )
    }
}

pub(super) fn gather_table<T: Scalar>(
    src: &[T],
    range: &Range<usize>,
    d: usize,
    batch: &TokenBatch<'_>,
    pk: &Packing,
    scratch: &Scratch<T>,
) -> Vec<T> {
    let table = &src[range.clone()];
    let mut x = scratch.empty(pk.rows * d);
    for t in 0..pk.steps() {
        for &e in &pk.order[..pk.n[t]] {
            let tok = batch.sequence(e)[t] as usize;
            x.extend_from_slice(&table[tok * d..(tok + 1) * d]);
        }
    }
    x
}

/// Adds every packed row of `g` to its token's row of the embedding block.
pub(super) fn scatter_table<T: Scalar>(
    g: &[T],
    range: &Range<usize>,
    d: usize,
    batch: &TokenBatch<'_>,
    pk: &Packing,
    out: &mut [T],
) {
    let table = &mut out[range.clone()];
    for t in 0..pk.steps() {
        for (i, &e) in pk.order[..pk.n[t]].iter().enumerate() {
            let tok = batch.sequence(e)[t] as usize;
            let r = pk.off[t] + i;
            for (o, &x) in table[tok * d..(tok + 1) * d]
                .iter_mut()
                .zip(&g[r * d..(r + 1) * d])
            {
                *o += x;
            }
        }
    }
}
