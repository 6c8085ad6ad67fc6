//! The RNN text-classification backend: tokenizer and vocabulary, word
//! vectors, the vendored text data sets, batches of variable-length token
//! sequences, and a 2-layer recurrent classifier (Elman or LSTM cells,
//! max-pooling over time, linear or MLP head) with exact gradients,
//! Jacobian-vector products and curvature products through time. The model
//! implements [`bilevel_dsl::ModelBackend`], so specs use it like
//! any other model.
//!
//! ```
//! use bilevel_dsl::{ModelBackend, TokenBatch};
//! use bilevel_runner::rnn::{RnnConfig, RnnModel};
//!
//! let cfg = RnnConfig { hidden: 8, embed: 4, ..RnnConfig::new(10, 2) };
//! let model = RnnModel::<f64>::new(cfg, None, 1)?;
//! let mut theta = vec![0.0; model.num_params()];
//! model.init_params(7, &mut theta);
//! // Two sequences, of lengths 3 and 1.
//! let batch = TokenBatch { tokens: &[1, 2, 3, 4], offsets: &[0, 3, 4] };
//! let mut logits = vec![0.0; 2 * model.num_outputs()];
//! model.forward(&theta, &batch, &mut logits);
//! assert!(logits.iter().all(|z| z.is_finite()));
//! # Ok::<(), bilevel_runner::rnn::RnnError>(())
//! ```

pub mod batch;
mod cache;
pub mod config;
pub mod data;
mod gemm;
pub mod model;
pub mod registry;
pub mod tokenizer;

pub use batch::OwnedBatch;
pub use config::{Cell, Head, Layout, Pool, RnnConfig};
pub use gemm::Scalar;
pub use model::{mean_softmax_xent, LossCurvature, RnnModel};
pub use registry::RnnRegistry;
pub use tokenizer::{tokenize, Vocab};

/// Errors of the RNN backend: bad configuration, bad batch, bad data file.
#[derive(Debug, thiserror::Error)]
pub enum RnnError {
    /// An invalid model configuration.
    #[error("rnn configuration: {0}")]
    Config(String),
    /// An invalid batch (offsets or token ids).
    #[error("rnn batch: {0}")]
    Batch(String),
    /// A malformed data file, with the line (1-based) where it was found.
    #[error("{file}:{line}: {message}")]
    Data {
        /// The file's path as given.
        file: String,
        /// 1-based line number (0 when the error concerns the whole file).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A file could not be read.
    #[error("{file}: {source}")]
    Io {
        /// The file's path as given.
        file: String,
        /// The underlying error.
        source: std::io::Error,
    },
}
