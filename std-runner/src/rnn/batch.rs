//! Owned batches of variable-length token sequences, viewed as the dsl's
//! [`TokenBatch`].

use bilevel_dsl::TokenBatch;

/// Token sequences stored back to back with their offsets: the owned form
/// of a [`TokenBatch`]. No padding is stored; each sequence keeps its own
/// length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnedBatch {
    tokens: Vec<u32>,
    offsets: Vec<usize>,
}

impl OwnedBatch {
    /// An empty batch.
    pub fn new() -> Self {
        OwnedBatch {
            tokens: Vec::new(),
            offsets: vec![0],
        }
    }

    /// A batch of the given sequences, each cut to at most `max_len`
    /// tokens (its first `max_len`).
    pub fn from_sequences<S: AsRef<[u32]>>(seqs: &[S], max_len: usize) -> Self {
        let mut b = OwnedBatch::new();
        for s in seqs {
            b.push(s.as_ref(), max_len);
        }
        b
    }

    /// Appends one sequence, cut to at most `max_len` tokens.
    pub fn push(&mut self, seq: &[u32], max_len: usize) {
        let n = seq.len().min(max_len);
        self.tokens.extend_from_slice(&seq[..n]);
        self.offsets.push(self.tokens.len());
    }

    /// Number of sequences.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// `true` when the batch holds no sequence.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total number of tokens.
    pub fn num_tokens(&self) -> usize {
        self.tokens.len()
    }

    /// The borrowed view the model backends take.
    pub fn view(&self) -> TokenBatch<'_> {
        TokenBatch {
            tokens: &self.tokens,
            offsets: &self.offsets,
        }
    }

    /// The batch of the sequences at `indices` of `self`, in that order.
    #[must_use]
    pub fn select(&self, indices: &[usize]) -> OwnedBatch {
        let v = self.view();
        let mut b = OwnedBatch::new();
        for &i in indices {
            b.push(v.sequence(i), usize::MAX);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_keep_their_lengths() {
        let b = OwnedBatch::from_sequences(&[vec![1, 2, 3], vec![], vec![4, 5, 6, 7]], 3);
        let v = b.view();
        assert_eq!(v.len(), 3);
        assert_eq!(v.sequence(0), &[1, 2, 3]);
        assert!(v.sequence(1).is_empty());
        assert_eq!(v.sequence(2), &[4, 5, 6]);
        assert_eq!(b.num_tokens(), 6);
        let s = b.select(&[2, 0]);
        assert_eq!(s.view().sequence(0), &[4, 5, 6]);
        assert_eq!(s.view().sequence(1), &[1, 2, 3]);
    }
}
