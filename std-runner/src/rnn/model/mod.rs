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
use super::config::{Layout, RnnConfig};
use super::gemm::{Packed, Scalar, Scratch};
use super::RnnError;
use pass::{ChunkOut, Cotangent, Forward, Packs, Pass};

mod pass;
mod reverse;
mod tangent;
mod tangent_reverse;

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
    /// One pass: the forward sweep (usually cached), the tangent forward
    /// sweep (cached by the tape's `jvp` before it), one reverse sweep (with
    /// the weight gradients only when `grad` is given) and the tangent
    /// reverse sweep with u̇ as the cotangent's tangent.
    fn reverse_second(
        &self,
        theta: &[T],
        batch: &TokenBatch<'_>,
        cotangent: &[T],
        cotangent_dot: Option<&[T]>,
        tangent: &[T],
        grad: Option<&mut [T]>,
        out: &mut [T],
    ) {
        self.check_shapes(theta, batch);
        let o = batch.len() * self.cfg.outputs();
        assert_eq!(cotangent.len(), o, "cotangent shape");
        if let Some(du) = cotangent_dot {
            assert_eq!(du.len(), o, "cotangent tangent shape");
        }
        let total = self.layout.total;
        assert_eq!(tangent.len(), total, "tangent length");
        assert_eq!(out.len(), total, "output length");
        let cot = Cotangent::Given {
            u: cotangent,
            du: cotangent_dot,
        };
        let mut g = grad.as_ref().map(|g| {
            assert_eq!(g.len(), total, "gradient length");
            self.scratch.zeros(total)
        });
        let mut h = self.scratch.zeros(total);
        self.run(
            theta,
            batch,
            Some(tangent),
            Some(&cot),
            None,
            None,
            g.as_deref_mut(),
            Some(&mut h),
        );
        for (dst, src) in [(grad, g), (Some(out), Some(h))] {
            if let (Some(dst), Some(src)) = (dst, src) {
                for (d, &s) in dst.iter_mut().zip(&src) {
                    *d += s;
                }
                self.scratch.put(src);
            }
        }
    }
    fn forward_sweeps(&self) -> Option<u64> {
        Some(self.fwd_cache.computed())
    }
}
