//! The model's last forward sweep, kept for the next call on the same θ and
//! batch.
//!
//! One oracle call through a spec asks the backend for several products at
//! one θ and one batch (the tape's forward phase: logits and Jv; its reverse
//! phase: Jᵀu, Jᵀu̇ and the curvature term), and a joint call asks for more.
//! Each product starts with the same forward sweep through time. The cache
//! keeps the per-chunk forward state of the last call, keyed by θ (bit for
//! bit), the tokens, the offsets and the chunk size; a call with the same key
//! takes it instead of recomputing. The forward sweep is deterministic, so a
//! cached state has exactly the bits a fresh one would: results do not
//! depend on the cache.

use std::sync::Mutex;

use super::gemm::Scalar;

/// What identifies a forward sweep.
struct Key<T> {
    theta: Vec<T>,
    tokens: Vec<u32>,
    offsets: Vec<usize>,
    chunk: usize,
}

impl<T: Scalar> Key<T> {
    fn matches(&self, theta: &[T], tokens: &[u32], offsets: &[usize], chunk: usize) -> bool {
        self.chunk == chunk
            && self.tokens == tokens
            && self.offsets == offsets
            && self.theta.len() == theta.len()
            && self
                .theta
                .iter()
                .zip(theta)
                .all(|(a, b)| a.to_f64().to_bits() == b.to_f64().to_bits())
    }
}

/// The last call's forward states, one per chunk (`F`), with their key.
pub(crate) struct FwdCache<T, F> {
    slot: Mutex<Option<(Key<T>, Vec<F>)>>,
    /// Forward sweeps computed (misses): for tests and measurements.
    computed: std::sync::atomic::AtomicU64,
}

impl<T, F> Default for FwdCache<T, F> {
    fn default() -> Self {
        FwdCache {
            slot: Mutex::new(None),
            computed: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// A clone starts empty (as the model's scratch pool does).
impl<T, F> Clone for FwdCache<T, F> {
    fn clone(&self) -> Self {
        FwdCache::default()
    }
}

impl<T, F> std::fmt::Debug for FwdCache<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FwdCache").finish_non_exhaustive()
    }
}

impl<T: Scalar, F> FwdCache<T, F> {
    /// Takes the cached states when the key matches (`chunks` of them),
    /// else `chunks` times `None`. The slot is left empty either way; a
    /// concurrent caller on the same model simply recomputes.
    pub fn take(
        &self,
        theta: &[T],
        tokens: &[u32],
        offsets: &[usize],
        chunk: usize,
        chunks: usize,
    ) -> (Vec<Option<F>>, Option<Vec<F>>) {
        let old = self.slot.lock().ok().and_then(|mut s| s.take());
        match old {
            Some((key, states))
                if states.len() == chunks && key.matches(theta, tokens, offsets, chunk) =>
            {
                (states.into_iter().map(Some).collect(), None)
            }
            other => (
                (0..chunks).map(|_| None).collect(),
                other.map(|(_, states)| states),
            ),
        }
    }

    /// Stores the states of a call (replacing whatever is there).
    pub fn put(
        &self,
        theta: &[T],
        tokens: &[u32],
        offsets: &[usize],
        chunk: usize,
        states: Vec<F>,
    ) {
        let key = Key {
            theta: theta.to_vec(),
            tokens: tokens.to_vec(),
            offsets: offsets.to_vec(),
            chunk,
        };
        if let Ok(mut s) = self.slot.lock() {
            *s = Some((key, states));
        }
    }

    /// Counts `n` forward sweeps computed.
    pub fn note_computed(&self, n: u64) {
        self.computed
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Forward sweeps computed so far (cache misses, per chunk).
    pub fn computed(&self) -> u64 {
        self.computed.load(std::sync::atomic::Ordering::Relaxed)
    }
}
