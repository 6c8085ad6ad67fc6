//! Model calls: `model(θ)` on the token sequences of the current minibatch,
//! one row of outputs per sequence. The rules call the backend
//! ([`crate::backend::ModelBackend`], the model interface the runner
//! implements): `forward` for the value, `jvp` for the tangent, `vjp` for
//! the adjoint and, in a second-order sweep, `reverse_second` for the
//! adjoint and the adjoint tangent together (`Jᵀh̄` and
//! `Jᵀȟ̄ + Σᵢ h̄ᵢ ∇²hᵢ θ̇` in one product).

use super::kernels::acc_into;
use super::sweep::{Fwd, Rev};
use super::{Op, SampleSource};
use crate::backend::TokenBatch;

/// Most sequences per forward call of a model (whole-data evaluations are
/// cut into chunks of this size; outputs are per sequence, so the bits do not
/// change).
const MODEL_CHUNK: usize = 256;

/// The token sequences of the current minibatch of data source `data`, as
/// concatenated tokens and offsets.
fn gather_tokens(src: &dyn SampleSource, data: usize) -> (Vec<u32>, Vec<usize>) {
    let n = src.batch_len(data);
    let mut tokens = Vec::new();
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0);
    for i in 0..n {
        tokens.extend_from_slice(src.tokens(data, i));
        offsets.push(tokens.len());
    }
    (tokens, offsets)
}

/// Value h(θ) and tangent J θ̇, chunk by chunk (the buffers are resized to
/// the minibatch first).
pub(super) fn forward(f: &mut Fwd<'_, '_>) {
    let Op::Model { model, data } = f.node.op else {
        return;
    };
    let Some(backend) = f.inp.models.get(model) else {
        return;
    };
    let (tokens, offsets) = gather_tokens(f.inp.data, data);
    let batch = TokenBatch {
        tokens: &tokens,
        offsets: &offsets,
    };
    let len = batch.len() * f.node.cols;
    f.out.resize(len, 0.0);
    f.tout.resize(len, 0.0);
    f.adj.resize(len, 0.0);
    f.adt.resize(len, 0.0);
    let theta = f.a(0);
    // Per-sequence outputs: evaluated in chunks to bound the
    // model's memory on whole-data batches (same bits).
    let c = f.node.cols;
    let mut start = 0;
    while start < batch.len() {
        let end = (start + MODEL_CHUNK).min(batch.len());
        let base = offsets[start];
        let sub_off: Vec<usize> = offsets[start..=end].iter().map(|o| o - base).collect();
        let sub = TokenBatch {
            tokens: &tokens[base..offsets[end]],
            offsets: &sub_off,
        };
        if f.do_val {
            backend.forward(theta, &sub, &mut f.out[start * c..end * c]);
        }
        if f.tangent {
            backend.jvp(theta, &sub, f.ta(0), &mut f.tout[start * c..end * c]);
        }
        start = end;
    }
}

/// θ̄ += Jᵀ h̄ (adjoint) and θ̌ += Jᵀ ȟ̄ + Σᵢ h̄ᵢ ∇²hᵢ θ̇ (adjoint tangent),
/// on the whole minibatch, as far as the plan needs them: one
/// [`crate::backend::ModelBackend::reverse_second`] call when θ has a
/// tangent, else the separate products.
pub(super) fn reverse(r: &mut Rev<'_, '_>) {
    let Op::Model { model, data } = r.node.op else {
        return;
    };
    let n = r.node.args[0];
    if !r.act[0] {
        return;
    }
    let Some(backend) = r.inp.models.get(model) else {
        return;
    };
    let (tokens, offsets) = gather_tokens(r.inp.data, data);
    let batch = TokenBatch {
        tokens: &tokens,
        offsets: &offsets,
    };
    let theta = r.a(0);
    // A second-order sweep with θ's tangent: both rules in one backend
    // product (the adjoint only when the plan needs it).
    let fused = r.second() && r.need_t(n);
    if let Some(t) = r.tanof(0).filter(|_| fused) {
        if r.adj[n].len() == theta.len() && r.adt[n].len() == theta.len() {
            let udot = r.gt_nz().then_some(r.gt);
            let grad = r.need_a(n).then_some(&mut r.adj[n][..]);
            backend.reverse_second(theta, &batch, r.g, udot, t, grad, &mut r.adt[n]);
            return;
        }
    }
    let mut tmp = vec![0.0; theta.len()];
    if r.need_a(n) {
        backend.vjp(theta, &batch, r.g, &mut tmp);
        acc_into(&mut r.adj[n], &tmp, 1.0);
    }
    if r.second() && r.need_t(n) {
        if r.gt_nz() {
            backend.vjp(theta, &batch, r.gt, &mut tmp);
            acc_into(&mut r.adt[n], &tmp, 1.0);
        }
        if let Some(t) = r.tanof(0) {
            backend.curvature(theta, &batch, r.g, t, &mut tmp);
            acc_into(&mut r.adt[n], &tmp, 1.0);
        }
    }
}
