//! The recurrent text classifier and its exact first- and second-order
//! products (hand-derived forward-over-reverse through time).
//!
//! One pass over a chunk of sequences runs up to four sweeps:
//! 1. forward (hidden states, pooling, head, logits h);
//! 2. tangent forward (ḣ = J v, the JVP);
//! 3. reverse (Jᵀu, the VJP, for a cotangent u of the logits);
//! 4. tangent reverse: the derivative of sweep 3 along v with the cotangent
//!    moving as u̇, i.e. `Jᵀu̇ + Σᵢ uᵢ ∇²hᵢ v`.
//!
//! Sequences are packed as in PyTorch's packed sequences: inside a chunk
//! they are sorted by decreasing length (stable), so at step t the live
//! sequences are a prefix of the chunk and every product runs over exactly
//! the live rows. Padding never enters a computation.

use std::ops::Range;

use bilevel_dsl::{ModelBackend, TokenBatch};
use rand_core::SeedableRng;
use rayon::prelude::*;

use super::cache::FwdCache;
use super::config::{Cell, DenseLayout, LayerLayout, Layout, Pool, RnnConfig};
use super::gemm::{
    add_col_sums, add_row_bias, gemm, gemm_packed, transpose, Mat, Packed, Scalar, Scratch,
};
use super::RnnError;

/// The recurrent classifier: configuration, parameter layout and the fixed
/// word vectors (when they are not trained).
///
/// The [`ModelBackend`] methods take slices whose lengths the trait fixes
/// (θ and tangents: [`ModelBackend::num_params`]; logits and cotangents:
/// batch length × [`ModelBackend::num_outputs`]) and a batch whose token ids
/// are below the vocabulary size. These are caller contracts: a wrong
/// length or an out-of-range token id panics. Batches built from untrusted
/// input should go through [`RnnModel::check_batch`] first, which returns
/// an error instead.
#[derive(Debug, Clone)]
pub struct RnnModel<T> {
    cfg: RnnConfig,
    layout: Layout,
    /// `vocab × embed` word vectors: the fixed table, or the initial value
    /// of θ's embedding block when the vectors are trained.
    vectors: Vec<T>,
    /// Reused buffers of the intermediates (a clone starts empty).
    scratch: Scratch<T>,
    /// The last call's forward sweep, reused by the next call on the same θ
    /// and batch ([`super::cache`]; a clone starts empty).
    fwd_cache: FwdCache<T, Forward<T>>,
}

/// Batches of at most this many sequences keep their forward sweep for the
/// next call (minibatches; a whole-data batch would hold all its
/// activations).
const CACHE_MAX_SEQS: usize = 256;

/// Per-example loss callback of [`RnnModel::loss_hvp`]: given the example's
/// index in the batch, its logits z and their tangent ż, write u = ∂ℓ/∂z and
/// u̇ = ∇²ℓ(z) ż.
pub trait LossCurvature<T>: Sync {
    /// Writes `u` and `du` for example `example`.
    fn apply(&self, example: usize, z: &[T], dz: &[T], u: &mut [T], du: &mut [T]);
}

impl<T, F> LossCurvature<T> for F
where
    F: Fn(usize, &[T], &[T], &mut [T], &mut [T]) + Sync,
{
    fn apply(&self, example: usize, z: &[T], dz: &[T], u: &mut [T], du: &mut [T]) {
        self(example, z, dz, u, du);
    }
}

impl<T: Scalar> RnnModel<T> {
    /// Builds the model. `vectors` holds `vocab × embed` word vectors
    /// (row i is token i; for example GloVe with random rows for words it
    /// lacks); `None` draws them uniformly in ±0.1 from `seed`.
    pub fn new(cfg: RnnConfig, vectors: Option<&[f32]>, seed: u64) -> Result<Self, RnnError> {
        cfg.validate()?;
        let n = cfg.vocab * cfg.embed;
        let vectors = match vectors {
            Some(v) if v.len() == n => v.iter().map(|&x| T::from_f64(f64::from(x))).collect(),
            Some(v) => {
                return Err(RnnError::Config(format!(
                    "word vectors: {} values given, vocab × embed = {n}",
                    v.len()
                )))
            }
            None => {
                let mut rng = bilevel_core::DefaultRng::seed_from_u64(seed);
                (0..n)
                    .map(|_| T::from_f64(0.2 * bilevel_core::random::uniform(&mut rng) - 0.1))
                    .collect()
            }
        };
        let layout = Layout::new(&cfg);
        Ok(RnnModel {
            cfg,
            layout,
            vectors,
            scratch: Scratch::default(),
            fwd_cache: FwdCache::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RnnConfig {
        &self.cfg
    }

    /// Forward sweeps through time computed so far, one per chunk of a
    /// call; a call on the θ and batch of the previous call reuses its
    /// sweep and adds none.
    pub fn forward_sweeps(&self) -> u64 {
        self.fwd_cache.computed()
    }

    /// The layout of θ.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Checks a batch: offsets start at 0, never decrease and end at the
    /// token count, and every token id is below the vocabulary size.
    pub fn check_batch(&self, batch: &TokenBatch<'_>) -> Result<(), RnnError> {
        let off = batch.offsets;
        if off.first() != Some(&0) || off.last() != Some(&batch.tokens.len()) {
            return Err(RnnError::Batch(
                "offsets must start at 0 and end at the token count".into(),
            ));
        }
        if off.windows(2).any(|w| w[0] > w[1]) {
            return Err(RnnError::Batch("offsets must not decrease".into()));
        }
        if let Some(p) = batch
            .tokens
            .iter()
            .position(|&t| t as usize >= self.cfg.vocab)
        {
            return Err(RnnError::Batch(format!(
                "token {} at position {p} is outside the vocabulary of {}",
                batch.tokens[p], self.cfg.vocab
            )));
        }
        Ok(())
    }

    /// The fused Hessian-vector product of a loss on top of the logits,
    /// `Σₑ ℓₑ(h(θ; xₑ))`, in one pass: writes the logits to `logits`, the
    /// loss's gradient to `grad` when given and its
    /// Hessian times `tangent` to `hvp`, i.e.
    /// `vjp(θ, u) ` and `vjp(θ, ∇²ℓ·jvp(θ, v)) + curvature(θ, u, v)`.
    /// Costs about one forward, one tangent forward, one reverse and one
    /// tangent reverse sweep; without `grad` the reverse sweep skips the
    /// weight gradients (about a ninth of the work).
    #[allow(clippy::too_many_arguments)]
    pub fn loss_hvp<L: LossCurvature<T>>(
        &self,
        theta: &[T],
        batch: &TokenBatch<'_>,
        tangent: &[T],
        loss: &L,
        logits: &mut [T],
        grad: Option<&mut [T]>,
        hvp: &mut [T],
    ) {
        self.check_shapes(theta, batch);
        assert_eq!(tangent.len(), self.layout.total, "tangent length");
        if let Some(grad) = &grad {
            assert_eq!(grad.len(), self.layout.total, "gradient length");
        }
        assert_eq!(hvp.len(), self.layout.total, "hvp length");
        assert_eq!(
            logits.len(),
            batch.len() * self.cfg.outputs(),
            "logits shape"
        );
        let cot = Cotangent::Loss(loss);
        self.run(
            theta,
            batch,
            Some(tangent),
            Some(&cot),
            Some(logits),
            None,
            grad,
            Some(hvp),
        );
    }

    /// The gradient of a loss on top of the logits, `Σₑ ℓₑ(h(θ; xₑ))`, in one
    /// forward and one reverse sweep: writes the logits to `logits` and the
    /// gradient to `grad`. The callback's `dz` is zero and its `du` is
    /// ignored.
    pub fn loss_grad<L: LossCurvature<T>>(
        &self,
        theta: &[T],
        batch: &TokenBatch<'_>,
        loss: &L,
        logits: &mut [T],
        grad: &mut [T],
    ) {
        self.check_shapes(theta, batch);
        assert_eq!(grad.len(), self.layout.total, "gradient length");
        assert_eq!(
            logits.len(),
            batch.len() * self.cfg.outputs(),
            "logits shape"
        );
        let cot = Cotangent::Loss(loss);
        self.run(
            theta,
            batch,
            None,
            Some(&cot),
            Some(logits),
            None,
            Some(grad),
            None,
        );
    }

    /// Mean softmax cross-entropy over the batch and its gradient (one
    /// forward and one reverse sweep). Returns the loss.
    pub fn softmax_xent_grad(
        &self,
        theta: &[T],
        batch: &TokenBatch<'_>,
        labels: &[u32],
        grad: &mut [T],
    ) -> T {
        assert_eq!(labels.len(), batch.len(), "one label per example");
        let scale = T::ONE / T::from_usize(batch.len().max(1));
        let f = |e: usize, z: &[T], dz: &[T], u: &mut [T], du: &mut [T]| {
            softmax_xent_parts(z, dz, labels[e] as usize, scale, u, du);
        };
        let mut logits = vec![T::ZERO; batch.len() * self.cfg.outputs()];
        self.loss_grad(theta, batch, &f, &mut logits, grad);
        mean_softmax_xent(&logits, labels, self.cfg.outputs())
    }

    /// Mean softmax cross-entropy over the batch, with its gradient (when
    /// `grad` is given) and its Hessian times `tangent` (exact; one fused
    /// pass). Returns the loss. `labels` holds one class per example.
    pub fn softmax_xent_hvp(
        &self,
        theta: &[T],
        batch: &TokenBatch<'_>,
        labels: &[u32],
        tangent: &[T],
        grad: Option<&mut [T]>,
        hvp: &mut [T],
    ) -> T {
        assert_eq!(labels.len(), batch.len(), "one label per example");
        let scale = T::ONE / T::from_usize(batch.len().max(1));
        let f = |e: usize, z: &[T], dz: &[T], u: &mut [T], du: &mut [T]| {
            softmax_xent_parts(z, dz, labels[e] as usize, scale, u, du);
        };
        let mut logits = vec![T::ZERO; batch.len() * self.cfg.outputs()];
        self.loss_hvp(theta, batch, tangent, &f, &mut logits, grad, hvp);
        mean_softmax_xent(&logits, labels, self.cfg.outputs())
    }

    fn check_shapes(&self, theta: &[T], batch: &TokenBatch<'_>) {
        assert_eq!(theta.len(), self.layout.total, "θ length");
        debug_assert!(self.check_batch(batch).is_ok(), "invalid batch");
    }

    /// Runs the requested sweeps over every chunk in parallel and reduces
    /// the chunks' results in chunk order.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        theta: &[T],
        batch: &TokenBatch<'_>,
        tangent: Option<&[T]>,
        cot: Option<&Cotangent<'_, T>>,
        logits: Option<&mut [T]>,
        dlogits: Option<&mut [T]>,
        grad: Option<&mut [T]>,
        hvp: Option<&mut [T]>,
    ) {
        let b = batch.len();
        let chunks: Vec<Range<usize>> = (0..b)
            .step_by(self.cfg.chunk)
            .map(|s| s..(s + self.cfg.chunk).min(b))
            .collect();
        let want_grad = grad.is_some();
        let want_hvp = hvp.is_some();
        let packs = Packs::new(self, theta, cot.is_some());
        let cacheable = b <= CACHE_MAX_SEQS;
        let (cached, stale) = if cacheable {
            let key = (batch.tokens, batch.offsets, self.cfg.chunk);
            self.fwd_cache
                .take(theta, key.0, key.1, key.2, chunks.len())
        } else {
            ((0..chunks.len()).map(|_| None).collect(), None)
        };
        for f in stale.into_iter().flatten() {
            f.recycle(&self.scratch);
        }
        let misses = cached.iter().filter(|c| c.is_none()).count() as u64;
        self.fwd_cache.note_computed(misses);
        let (outs, states): (Vec<ChunkOut<T>>, Vec<Forward<T>>) = chunks
            .into_par_iter()
            .zip(cached)
            .map(|(r, f)| {
                Pass::new(self, theta, &packs, batch, r, f).run(tangent, cot, want_grad, want_hvp)
            })
            .unzip();
        if cacheable {
            let key = (batch.tokens, batch.offsets, self.cfg.chunk);
            self.fwd_cache.put(theta, key.0, key.1, key.2, states);
        } else {
            for f in states {
                f.recycle(&self.scratch);
            }
        }
        let c = self.cfg.outputs();
        if let Some(z) = logits {
            for o in &outs {
                for (i, &e) in o.examples.iter().enumerate() {
                    z[e * c..(e + 1) * c].copy_from_slice(&o.z[i * c..(i + 1) * c]);
                }
            }
        }
        if let Some(dz) = dlogits {
            for o in &outs {
                for (i, &e) in o.examples.iter().enumerate() {
                    dz[e * c..(e + 1) * c].copy_from_slice(&o.dz[i * c..(i + 1) * c]);
                }
            }
        }
        for (out, want) in [(grad, 0), (hvp, 1)] {
            if let Some(out) = out {
                out.fill(T::ZERO);
                for o in &outs {
                    let part = if want == 0 { &o.grad } else { &o.hvp };
                    for (x, &p) in out.iter_mut().zip(part) {
                        *x += p;
                    }
                }
            }
        }
        let sc = &self.scratch;
        sc.put_all(outs.into_iter().flat_map(|o| [o.z, o.dz, o.grad, o.hvp]));
        sc.put_all(packs.fwd.into_iter().chain(packs.rev).map(Packed::into_vec));
    }

    /// Draws θ from `seed`: PyTorch's default initialisation (uniform in
    /// ±1/√fan-in for the recurrent layers and the head), the word vectors
    /// copied from the model's table when they are trained.
    fn init(&self, seed: u64, theta: &mut [T]) {
        assert_eq!(theta.len(), self.layout.total, "θ length");
        let mut rng = bilevel_core::DefaultRng::seed_from_u64(seed);
        let mut fill = |r: &Range<usize>, bound: f64, theta: &mut [T]| {
            for x in &mut theta[r.clone()] {
                *x = T::from_f64(bound * (2.0 * bilevel_core::random::uniform(&mut rng) - 1.0));
            }
        };
        theta[self.layout.embedding.clone()].copy_from_slice(if self.cfg.train_embeddings {
            &self.vectors
        } else {
            &[]
        });
        let k = 1.0 / (self.cfg.hidden as f64).sqrt();
        for l in &self.layout.layers {
            fill(&l.w, k, theta);
            fill(&l.u, k, theta);
            fill(&l.b, k, theta);
        }
        for d in &self.layout.head {
            let k = 1.0 / (d.input as f64).sqrt();
            fill(&d.w, k, theta);
            fill(&d.b, k, theta);
        }
    }
}

/// u = scale·(softmax(z) − e_y), u̇ = scale·(p ⊙ ż − p (pᵀż)).
fn softmax_xent_parts<T: Scalar>(
    z: &[T],
    dz: &[T],
    label: usize,
    scale: T,
    u: &mut [T],
    du: &mut [T],
) {
    let m = z.iter().copied().fold(z[0], T::max);
    let mut s = T::ZERO;
    for (p, &x) in u.iter_mut().zip(z) {
        *p = (x - m).exp();
        s += *p;
    }
    let mut pdz = T::ZERO;
    for (p, &d) in u.iter_mut().zip(dz) {
        *p /= s;
        pdz += *p * d;
    }
    for ((q, p), &d) in du.iter_mut().zip(u.iter()).zip(dz) {
        *q = scale * *p * (d - pdz);
    }
    for (i, p) in u.iter_mut().enumerate() {
        let y = if i == label { T::ONE } else { T::ZERO };
        *p = scale * (*p - y);
    }
}

/// Mean softmax cross-entropy of row-major logits (`labels.len() × c`).
pub fn mean_softmax_xent<T: Scalar>(logits: &[T], labels: &[u32], c: usize) -> T {
    let mut total = T::ZERO;
    for (z, &y) in logits.chunks_exact(c).zip(labels) {
        let m = z.iter().copied().fold(z[0], T::max);
        let s: T = z.iter().map(|&x| (x - m).exp()).sum();
        total += m + s.ln() - z[y as usize];
    }
    total / T::from_usize(labels.len().max(1))
}

impl<T: Scalar> ModelBackend<T> for RnnModel<T> {
    fn name(&self) -> &'static str {
        "rnn"
    }
    fn num_params(&self) -> usize {
        self.layout.total
    }
    fn num_outputs(&self) -> usize {
        self.cfg.outputs()
    }
    fn vocab_size(&self) -> usize {
        self.cfg.vocab
    }
    fn init_params(&self, seed: u64, theta: &mut [T]) {
        self.init(seed, theta);
    }
    fn forward(&self, theta: &[T], batch: &TokenBatch<'_>, logits: &mut [T]) {
        self.check_shapes(theta, batch);
        assert_eq!(
            logits.len(),
            batch.len() * self.cfg.outputs(),
            "logits shape"
        );
        self.run(theta, batch, None, None, Some(logits), None, None, None);
    }
    fn vjp(&self, theta: &[T], batch: &TokenBatch<'_>, cotangent: &[T], grad: &mut [T]) {
        self.check_shapes(theta, batch);
        assert_eq!(
            cotangent.len(),
            batch.len() * self.cfg.outputs(),
            "cotangent shape"
        );
        assert_eq!(grad.len(), self.layout.total, "gradient length");
        let cot = Cotangent::Given {
            u: cotangent,
            du: None,
        };
        self.run(theta, batch, None, Some(&cot), None, None, Some(grad), None);
    }
    fn jvp(&self, theta: &[T], batch: &TokenBatch<'_>, tangent: &[T], out: &mut [T]) {
        self.check_shapes(theta, batch);
        assert_eq!(tangent.len(), self.layout.total, "tangent length");
        assert_eq!(out.len(), batch.len() * self.cfg.outputs(), "output shape");
        self.run(
            theta,
            batch,
            Some(tangent),
            None,
            None,
            Some(out),
            None,
            None,
        );
    }
    fn curvature(
        &self,
        theta: &[T],
        batch: &TokenBatch<'_>,
        cotangent: &[T],
        tangent: &[T],
        out: &mut [T],
    ) {
        self.check_shapes(theta, batch);
        assert_eq!(
            cotangent.len(),
            batch.len() * self.cfg.outputs(),
            "cotangent shape"
        );
        assert_eq!(tangent.len(), self.layout.total, "tangent length");
        assert_eq!(out.len(), self.layout.total, "output length");
        let cot = Cotangent::Given {
            u: cotangent,
            du: None,
        };
        self.run(
            theta,
            batch,
            Some(tangent),
            Some(&cot),
            None,
            None,
            None,
            Some(out),
        );
    }
    fn forward_sweeps(&self) -> Option<u64> {
        Some(self.fwd_cache.computed())
    }
}

/// Where the cotangent of the logits comes from.
enum Cotangent<'a, T> {
    /// Given for the whole batch (u̇ = 0 when `du` is `None`).
    Given { u: &'a [T], du: Option<&'a [T]> },
    /// Computed per example from the logits and their tangent.
    Loss(&'a dyn LossCurvature<T>),
}

/// One chunk's results, in the chunk's (sorted) row order.
struct ChunkOut<T> {
    examples: Vec<usize>,
    z: Vec<T>,
    dz: Vec<T>,
    grad: Vec<T>,
    hvp: Vec<T>,
}

/// Packed layout of one chunk: row `off[t] + i` is step t of the i-th
/// longest sequence; `n[t]` sequences are live at step t.
struct Packing {
    order: Vec<usize>,
    lens: Vec<usize>,
    off: Vec<usize>,
    n: Vec<usize>,
    rows: usize,
}

impl Packing {
    fn new(batch: &TokenBatch<'_>, examples: Range<usize>) -> Self {
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

    fn steps(&self) -> usize {
        self.n.len()
    }

    /// Rows with a predecessor: `off[1]..rows`.
    fn first_prev(&self) -> usize {
        self.off.get(1).copied().unwrap_or(self.rows)
    }

    /// For every row with a predecessor, its predecessor's row of `src`
    /// (`width` columns): `(rows − off[1]) × width`.
    fn gather_prev<T: Scalar>(&self, src: &[T], width: usize, scratch: &Scratch<T>) -> Vec<T> {
        let mut out = scratch.empty((self.rows - self.first_prev()) * width);
        for t in 1..self.steps() {
            let s = self.off[t - 1] * width;
            out.extend_from_slice(&src[s..s + self.n[t] * width]);
        }
        out
    }

    /// `dst[pred(r)] += src[r − off[1]]` for every row r with a predecessor.
    fn scatter_prev_add<T: Scalar>(&self, src: &[T], dst: &mut [T], width: usize) {
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

fn tanh_d<T: Scalar>(y: T) -> T {
    T::ONE - y * y
}

/// `out[r] = x[r]·(1 − y[r]²)` over `rows`: `x` through the derivative of
/// tanh at its outputs `y` (the Elman cell's tangent and adjoint step).
fn tanh_d_rows<T: Scalar>(rows: Range<usize>, x: &[T], y: &[T], out: &mut [T]) {
    for ((o, &xv), &yv) in out[rows.clone()]
        .iter_mut()
        .zip(&x[rows.clone()])
        .zip(&y[rows])
    {
        *o = xv * tanh_d(yv);
    }
}

fn sigmoid<T: Scalar>(x: T) -> T {
    x.act_sigmoid()
}

/// Primal state of one recurrent layer.
#[derive(Default)]
struct LayerFwd<T> {
    /// Hidden states, rows × hidden.
    h: Vec<T>,
    /// Predecessor hidden states of rows `off[1]..`.
    hprev: Vec<T>,
    /// LSTM: gate activations (i, f, g, o), rows × 4·hidden.
    gates: Vec<T>,
    /// LSTM: cell states, rows × hidden.
    c: Vec<T>,
    /// LSTM: tanh of the cell states.
    k: Vec<T>,
}

/// Tangent state of one recurrent layer.
#[derive(Default)]
struct LayerTan<T> {
    dh: Vec<T>,
    dhprev: Vec<T>,
    dgates: Vec<T>,
    dc: Vec<T>,
    dk: Vec<T>,
}

/// Reverse state of one recurrent layer.
#[derive(Default)]
struct LayerRev<T> {
    /// Total adjoint of the hidden states (after the recurrent terms).
    g: Vec<T>,
    /// LSTM: total adjoint of the cell states.
    gc: Vec<T>,
    /// Adjoint of the pre-activations, rows × gates·hidden.
    delta: Vec<T>,
    /// The weight-gradient operands, kept when a tangent reverse sweep
    /// follows (it multiplies δᵀ and the packed inputs again).
    ops: Option<WeightOps<T>>,
}

/// A layer's input x and predecessor states h₋₁, packed as the right-hand
/// sides of the weight-gradient products δᵀx and δᵀh₋₁ (`None` for a zero
/// input tangent, or when no row has a predecessor).
struct PackedInputs<T> {
    x: Option<Packed<T>>,
    hprev: Option<Packed<T>>,
}

impl<T: Scalar> PackedInputs<T> {
    fn recycle(self, sc: &Scratch<T>) {
        sc.put_all(self.x.into_iter().chain(self.hprev).map(Packed::into_vec));
    }
}

/// The operands of a layer's weight-gradient products: δᵀ row-major
/// (gates·hidden × rows) and the packed inputs.
struct WeightOps<T> {
    dt: Vec<T>,
    inputs: PackedInputs<T>,
}

impl<T: Scalar> WeightOps<T> {
    fn recycle(self, sc: &Scratch<T>) {
        sc.put(self.dt);
        self.inputs.recycle(sc);
    }
}

/// The recurrent matrices of every layer, packed once per call for the
/// per-step products of all chunks: `fwd[l]` is Uₗᵀ (hidden × gates·hidden,
/// for h₋₁·Uᵀ in the forward and tangent sweeps), `rev[l]` is Uₗ (for δ₊₁·U
/// in the reverse sweeps; empty when no reverse sweep runs).
struct Packs<T> {
    fwd: Vec<Packed<T>>,
    rev: Vec<Packed<T>>,
}

impl<T: Scalar> Packs<T> {
    fn new(model: &RnnModel<T>, theta: &[T], reverse: bool) -> Self {
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

/// One chunk's forward sweep, kept between calls ([`FwdCache`]).
struct Forward<T> {
    pk: Packing,
    x0: Vec<T>,
    fwd: Vec<LayerFwd<T>>,
    pooled: Vec<T>,
    pool_row: Vec<usize>,
    acts: Vec<Vec<T>>,
}

impl<T: Scalar> Forward<T> {
    /// Returns the buffers to the pool.
    fn recycle(self, sc: &Scratch<T>) {
        sc.put(self.x0);
        sc.put_all(
            self.fwd
                .into_iter()
                .flat_map(|f| [f.h, f.hprev, f.gates, f.c, f.k]),
        );
        sc.put_all(self.acts);
    }
}

/// One chunk's pass: parameters, packing and every stored intermediate.
struct Pass<'a, T> {
    model: &'a RnnModel<T>,
    theta: &'a [T],
    packs: &'a Packs<T>,
    batch: &'a TokenBatch<'a>,
    pk: Packing,
    /// Input rows of the first layer (word vectors).
    x0: Vec<T>,
    fwd: Vec<LayerFwd<T>>,
    /// Pooled encoding (n × hidden) and for each entry the row it came from
    /// (`usize::MAX` for an empty sequence).
    pooled: Vec<T>,
    pool_row: Vec<usize>,
    /// Head activations: `acts[0]` is the pooled encoding, `acts[k]` the
    /// output of dense layer k; the last one is the logits.
    acts: Vec<Vec<T>>,
}

impl<'a, T: Scalar> Pass<'a, T> {
    fn new(
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
        }
    }

    /// The forward sweep's state, for the cache.
    fn into_forward(self) -> Forward<T> {
        Forward {
            pk: self.pk,
            x0: self.x0,
            fwd: self.fwd,
            pooled: self.pooled,
            pool_row: self.pool_row,
            acts: self.acts,
        }
    }

    fn cfg(&self) -> &RnnConfig {
        &self.model.cfg
    }

    /// The model's buffer pool.
    fn sc(&self) -> &'a Scratch<T> {
        &self.model.scratch
    }

    /// `n` zeros from the pool.
    fn zeros(&self, n: usize) -> Vec<T> {
        self.model.scratch.zeros(n)
    }

    fn run(
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
        let tan = tangent.map(|v| self.tangent_forward(v));
        let dz = tan
            .as_ref()
            .and_then(|t| t.2.last().cloned())
            .unwrap_or_default();
        let mut out = ChunkOut {
            examples: self.pk.order.clone(),
            z,
            dz,
            grad: Vec::new(),
            hvp: Vec::new(),
        };
        let Some(cot) = cot else {
            if let Some((dx0, tans, dacts)) = tan {
                self.recycle_tangent(dx0, tans, dacts);
            }
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
            let tan = tan.as_ref().expect("tangent sweep ran");
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
        if let Some((dx0, tans, dacts)) = tan {
            self.recycle_tangent(dx0, tans, dacts);
        }
        (out, self.into_forward())
    }

    /// Returns the tangent sweep's buffers to the pool.
    fn recycle_tangent(&self, dx0: Vec<T>, tans: Vec<LayerTan<T>>, dacts: Vec<Vec<T>>) {
        let sc = self.sc();
        sc.put(dx0);
        sc.put_all(
            tans.into_iter()
                .flat_map(|t| [t.dh, t.dhprev, t.dgates, t.dc, t.dk]),
        );
        sc.put_all(dacts);
    }

    fn param(&self, r: &Range<usize>) -> &'a [T] {
        &self.theta[r.clone()]
    }

    fn layer_input(&self, l: usize) -> &[T] {
        if l == 0 {
            &self.x0
        } else {
            &self.fwd[l - 1].h
        }
    }

    // ---------------------------------------------------------------- forward

    fn forward(&mut self) {
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

    fn layer_forward(&self, l: usize, lay: &LayerLayout) -> LayerFwd<T> {
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
    fn through_time(
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

    fn pool(&mut self) {
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

    fn dense_forward(&self, d: &DenseLayout, x: &[T]) -> Vec<T> {
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

    // --------------------------------------------------------- tangent forward

    /// Returns (dx0, per-layer tangents, head tangents `dacts`).
    fn tangent_forward(&self, v: &[T]) -> (Vec<T>, Vec<LayerTan<T>>, Vec<Vec<T>>) {
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
    fn layer_tangent(&self, l: usize, lay: &LayerLayout, v: &[T], dx: &[T]) -> LayerTan<T> {
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

    fn dense_tangent(&self, d: &DenseLayout, v: &[T], x: &[T], dx: &[T], y: &[T]) -> Vec<T> {
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

    // ----------------------------------------------------------------- reverse

    /// Accumulates Jᵀu into `grad` when given (without it only the adjoints
    /// are propagated); returns the reverse state of each layer
    /// and of the head for the tangent reverse sweep (with the
    /// weight-gradient operands when `keep`).
    fn reverse(
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
    fn layer_reverse(
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
    fn pack_inputs(&self, lay: &LayerLayout, x: &[T], hprev: &[T]) -> PackedInputs<T> {
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
    fn add_weight_grads(
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
    fn add_input_adjoint(
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

    // --------------------------------------------------------- tangent reverse

    /// Accumulates `Jᵀu̇ + Σᵢ uᵢ ∇²hᵢ v` into `out` (`du = None` means u̇ = 0).
    #[allow(clippy::type_complexity)]
    fn tangent_reverse(
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
    fn layer_tangent_reverse(
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

/// Gathers the word vectors of every packed row: from θ's embedding block
/// when trained, from the fixed table otherwise.
fn gather_rows<T: Scalar>(
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

fn gather_table<T: Scalar>(
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
fn scatter_table<T: Scalar>(
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
