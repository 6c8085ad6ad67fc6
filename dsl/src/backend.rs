//! The model-backend trait: how a model (such as the RNN text classifier of
//! `bilevel-runner`) plugs into a spec without the dsl knowing the model.
//!
//! A backend is a differentiable map from a flat parameter vector θ (length
//! [`ModelBackend::num_params`]) and a batch of examples to logits
//! (`batch_len × num_outputs`, row-major). The dsl composes losses on top
//! of the logits and splits θ between the upper and lower variables, so a
//! backend provides only products with the model's Jacobian J = ∂h/∂θ and
//! with its second derivative:
//!
//! ```text
//! HVP of L(h(θ)) = Jᵀ ∇²L (J v) + Σᵢ (∂L/∂hᵢ) ∇²hᵢ v
//!                = vjp(θ, ∇²L · jvp(θ, v)) + curvature(θ, ∇L, v)
//! ```
//! and any block of that Hessian (∇²ᵧᵧ, ∇²ₓᵧ) is the same product restricted to
//! coordinates. All products are exact (no finite differences).

use bilevel_core::Real;

/// A batch of token sequences: sequence `i` is
/// `tokens[offsets[i]..offsets[i + 1]]` (variable lengths; a backend must
/// give the same result as if each sequence were alone).
#[derive(Debug, Clone, Copy)]
pub struct TokenBatch<'a> {
    /// Token ids of all sequences, concatenated.
    pub tokens: &'a [u32],
    /// `len + 1` offsets into `tokens`, non-decreasing, starting at 0.
    pub offsets: &'a [usize],
}

impl TokenBatch<'_> {
    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    /// `true` when the batch holds no sequence.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The tokens of sequence `i`.
    pub fn sequence(&self, i: usize) -> &[u32] {
        &self.tokens[self.offsets[i]..self.offsets[i + 1]]
    }
}

/// A differentiable model with exact first- and second-order products.
///
/// Every method writes into caller-provided slices; implementations may use
/// internal scratch and threads but must be deterministic for a given input
/// regardless of thread count.
pub trait ModelBackend<T: Real>: Send + Sync {
    /// A short name for diagnostics (e.g. `"rnn"`).
    fn name(&self) -> &str;
    /// Length of θ.
    fn num_params(&self) -> usize;
    /// Logits per example (number of classes).
    fn num_outputs(&self) -> usize;
    /// Vocabulary size: the largest valid token id plus one.
    fn vocab_size(&self) -> usize;
    /// Writes an initial θ drawn from `seed` (same seed, same bits).
    fn init_params(&self, seed: u64, theta: &mut [T]);
    /// Logits h(θ; batch), `batch.len() × num_outputs`, row-major.
    fn forward(&self, theta: &[T], batch: &TokenBatch<'_>, logits: &mut [T]);
    /// Jᵀu: `cotangent` has the logits' shape; `grad` has length `num_params`.
    fn vjp(&self, theta: &[T], batch: &TokenBatch<'_>, cotangent: &[T], grad: &mut [T]);
    /// Jv: `tangent` has length `num_params`; `out` has the logits' shape.
    fn jvp(&self, theta: &[T], batch: &TokenBatch<'_>, tangent: &[T], out: &mut [T]);
    /// Σᵢ uᵢ ∇²hᵢ(θ) v, the curvature term of the Hessian of u·h at θ in
    /// direction v: `cotangent` (u) has the logits' shape, `tangent` (v) and
    /// `out` have length `num_params`.
    fn curvature(
        &self,
        theta: &[T],
        batch: &TokenBatch<'_>,
        cotangent: &[T],
        tangent: &[T],
        out: &mut [T],
    );
    /// The reverse rules of a model call in one product: adds Jᵀu to `grad`
    /// (when given) and `Jᵀu̇ + Σᵢ uᵢ ∇²hᵢ(θ) v` to `out`, where u is
    /// `cotangent`, u̇ is `cotangent_dot` (zero when `None`) and v is
    /// `tangent`. `cotangent` and `cotangent_dot` have the logits' shape;
    /// `tangent`, `grad` and `out` have length `num_params`. This is what
    /// the tape's reverse phase asks of a model in a second-order sweep (the
    /// adjoint and the adjoint tangent of θ).
    ///
    /// The default composes the separate products in the order the tape
    /// has always called them, `grad += vjp(u)`, `out += vjp(u̇)`,
    /// `out += curvature(u, v)`, each from its own sweep, so a backend
    /// without it computes the bits it always did. A backend that overrides
    /// it computes all in one forward, tangent forward, reverse and tangent
    /// reverse sweep; its sums are then ordered differently from the
    /// default's, within rounding.
    #[allow(clippy::too_many_arguments)]
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
        let mut tmp = vec![T::ZERO; theta.len()];
        if let Some(grad) = grad {
            self.vjp(theta, batch, cotangent, &mut tmp);
            add_to(grad, &tmp);
        }
        if let Some(udot) = cotangent_dot {
            self.vjp(theta, batch, udot, &mut tmp);
            add_to(out, &tmp);
        }
        self.curvature(theta, batch, cotangent, tangent, &mut tmp);
        add_to(out, &tmp);
    }
    /// Forward sweeps the backend has computed so far, when it counts them
    /// (a backend that reuses its forward sweep between products on the same
    /// θ and batch reports how often it did not). For tests and measurements;
    /// default `None` (not counted).
    fn forward_sweeps(&self) -> Option<u64> {
        None
    }
}

/// `dst += src`, element by element.
fn add_to<T: Real>(dst: &mut [T], src: &[T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// What a registry gets to build a model: the spec's folder (model options
/// name files relative to it) and the vocabulary of the text the model
/// reads.
#[derive(Debug, Clone, Copy)]
pub struct ModelContext<'a> {
    /// The spec's folder.
    pub base: &'a std::path::Path,
    /// The words of the vocabulary file of the data the model is applied
    /// to, without `<unk>`: token id `k + 1` is `vocab[k]`, id 0 is
    /// `<unk>`. Empty when the model is not applied to any text.
    pub vocab: &'a [String],
}

/// Builds model backends from `model` declarations. The runner registers
/// its RNN; tests register small reference models.
pub trait ModelRegistry {
    /// The kinds this registry builds (for diagnostics).
    fn kinds(&self) -> Vec<String>;
    /// Builds the backend of `model`.
    ///
    /// # Errors
    /// A message for the user when the kind is unknown or an option is
    /// invalid: `(option key or empty, message)`, so the diagnostic can
    /// point at the option.
    fn build(
        &self,
        model: &crate::hir::ModelDef,
        ctx: &ModelContext<'_>,
    ) -> Result<std::sync::Arc<dyn ModelBackend<f64>>, (String, String)>;
}

/// The model backends of a compiled spec, by model index.
#[derive(Clone, Default)]
pub struct Models(pub Vec<std::sync::Arc<dyn ModelBackend<f64>>>);

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.0
                    .iter()
                    .map(|m| (m.name(), m.num_params(), m.num_outputs())),
            )
            .finish()
    }
}
