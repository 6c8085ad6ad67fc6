//! Pieces shared by the meta-learning solvers (MAML, FOMAML, ANIL, UFOM).
//!
//! Meta-learning runs on the ordinary oracle traits: **one sample is one
//! task**, drawn with [`Level::Upper`](crate::Level::Upper); the lower
//! objective G(x, φ; task) is the task's support (training) loss and the upper
//! objective F(x, φ; task) its query (test) loss, both at the adapted
//! parameters φ. Inner adaptation is φ_{j+1} = φ_j − α ∇ᵧG(x, φ_j; task) with
//! the same task throughout, so the adaptation of one task is deterministic
//! given its sample and can be replayed.

use crate::kernels::{axpy, copy};
use crate::oracle::{LowerGradY, LowerHvp};
use crate::Real;

/// `steps` adaptation steps of `phi` on the task `s`; when `trajectory` is
/// given, φ_0..φ_{steps−1} are stored in it (rows of length dy).
pub(crate) fn adapt<T, O>(
    oracle: &mut O,
    x: &[T],
    s: &O::Sample,
    alpha: T,
    steps: usize,
    (phi, grad): (&mut [T], &mut [T]),
    trajectory: Option<&mut [T]>,
) where
    T: Real,
    O: LowerGradY<T>,
{
    let dy = phi.len();
    match trajectory {
        Some(traj) => {
            for row in traj[..steps * dy].chunks_exact_mut(dy) {
                copy(phi, row);
                oracle.grad_y_g(x, phi, s, grad);
                axpy(-alpha, grad, phi);
            }
        }
        None => {
            for _ in 0..steps {
                oracle.grad_y_g(x, phi, s, grad);
                axpy(-alpha, grad, phi);
            }
        }
    }
}

/// Reverse pass of the exact meta-gradient through a stored trajectory:
/// `v ← Π_{j=N−1..0} (I − α ∇²ᵧᵧG(x, φ_j; s)) v`.
pub(crate) fn reverse<T, O>(
    oracle: &mut O,
    x: &[T],
    s: &O::Sample,
    alpha: T,
    trajectory: &[T],
    (v, hv): (&mut [T], &mut [T]),
) where
    T: Real,
    O: LowerHvp<T>,
{
    let dy = v.len();
    for phi in trajectory.chunks_exact(dy).rev() {
        oracle.hvp_yy(x, phi, v, s, hv);
        axpy(-alpha, hv, v);
    }
}
