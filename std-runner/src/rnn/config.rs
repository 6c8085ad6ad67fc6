//! The model's configuration and the layout of its flat parameter vector.

use std::ops::Range;

use super::RnnError;

/// The recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Elman cell: hₜ = tanh(W xₜ + U hₜ₋₁ + b), as `torch.nn.RNN` (the
    /// official code).
    Elman,
    /// LSTM cell with gates in PyTorch's order (input, forget, cell, output).
    Lstm,
}

impl Cell {
    /// Pre-activations per hidden unit: 1 (Elman) or 4 (LSTM).
    pub fn gates(self) -> usize {
        match self {
            Cell::Elman => 1,
            Cell::Lstm => 4,
        }
    }
}

/// How the top layer's hidden states become one vector per sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// Coordinate-wise maximum over the sequence's time steps (official
    /// code); ties go to the earliest step.
    Max,
    /// The hidden state at the sequence's last step.
    Last,
}

/// What maps the pooled encoding to the outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// No head: the outputs are the pooled encoding itself (`hidden`
    /// outputs), for specs that put their own head on top.
    Features,
    /// One linear layer to `classes` logits (the papers' form).
    Linear,
    /// The official code's 3-layer tanh MLP: Linear(hidden → width) → tanh →
    /// Linear(width → width) → tanh → Linear(width → classes).
    Mlp {
        /// Width of the two hidden layers.
        width: usize,
    },
}

/// Configuration of the recurrent text classifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RnnConfig {
    /// Vocabulary size (token ids are `0..vocab`).
    pub vocab: usize,
    /// Word-vector dimension.
    pub embed: usize,
    /// Hidden units per recurrent layer.
    pub hidden: usize,
    /// Number of stacked recurrent layers.
    pub layers: usize,
    /// Recurrent cell.
    pub cell: Cell,
    /// Pooling over time.
    pub pool: Pool,
    /// Output head.
    pub head: Head,
    /// Number of classes (ignored by [`Head::Features`]).
    pub classes: usize,
    /// `true`: the word vectors are part of θ (initialised from the given
    /// vectors); `false`: they are fixed, as in the official code.
    pub train_embeddings: bool,
    /// Sequences per unit of parallel work. The batch is cut into
    /// consecutive chunks of this size whatever the thread count, and the
    /// chunks' contributions are summed in chunk order, so results do not
    /// depend on the number of threads.
    pub chunk: usize,
}

impl RnnConfig {
    /// The official architecture at CPU scale: word vectors of dimension 50
    /// (fixed), 2 Elman layers of 256 units, max-pooling, a linear head,
    /// chunks of 32 sequences.
    pub fn new(vocab: usize, classes: usize) -> Self {
        RnnConfig {
            vocab,
            embed: 50,
            hidden: 256,
            layers: 2,
            cell: Cell::Elman,
            pool: Pool::Max,
            head: Head::Linear,
            classes,
            train_embeddings: false,
            chunk: 32,
        }
    }

    /// Checks that every size is positive.
    pub fn validate(&self) -> Result<(), RnnError> {
        let positive = [
            ("vocab", self.vocab),
            ("embed", self.embed),
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("chunk", self.chunk),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(RnnError::Config(format!("{name} must be positive")));
            }
        }
        if self.head != Head::Features && self.classes == 0 {
            return Err(RnnError::Config("classes must be positive".into()));
        }
        if let Head::Mlp { width: 0 } = self.head {
            return Err(RnnError::Config("mlp width must be positive".into()));
        }
        Ok(())
    }

    /// A configuration from a spec's `model NAME: rnn { key = value, … }`
    /// options, given as `(key, value)` text pairs. Keys: `vocab`, `embed`,
    /// `hidden`, `layers`, `classes`, `chunk`, `width` (the MLP's width) and
    /// `cell` (`elman` | `lstm`), `pool` (`max` | `last`), `head`
    /// (`linear` | `mlp` | `features`), `embeddings` (`fixed` |
    /// `trainable`). Unset keys keep [`RnnConfig::new`]'s defaults; `vocab`
    /// is required, and `classes` unless the head is `features`. The MLP
    /// width defaults to `hidden`. Unknown keys and bad values are errors.
    pub fn from_options(options: &[(&str, &str)]) -> Result<Self, RnnError> {
        let mut cfg = RnnConfig::new(0, 0);
        let mut width = None;
        let mut head = "linear";
        let mut seen_vocab = false;
        let mut seen_classes = false;
        for &(key, value) in options {
            let num = || {
                value.parse::<usize>().map_err(|_| {
                    RnnError::Config(format!("{key} = {value}: expected a non-negative integer"))
                })
            };
            let choice = |allowed: &[&str]| {
                if allowed.contains(&value) {
                    Ok(())
                } else {
                    Err(RnnError::Config(format!(
                        "{key} = {value}: expected one of {}",
                        allowed.join(", ")
                    )))
                }
            };
            match key {
                "vocab" => {
                    cfg.vocab = num()?;
                    seen_vocab = true;
                }
                "embed" => cfg.embed = num()?,
                "hidden" => cfg.hidden = num()?,
                "layers" => cfg.layers = num()?,
                "classes" => {
                    cfg.classes = num()?;
                    seen_classes = true;
                }
                "chunk" => cfg.chunk = num()?,
                "width" => width = Some(num()?),
                "cell" => {
                    choice(&["elman", "lstm"])?;
                    cfg.cell = if value == "lstm" {
                        Cell::Lstm
                    } else {
                        Cell::Elman
                    };
                }
                "pool" => {
                    choice(&["max", "last"])?;
                    cfg.pool = if value == "last" {
                        Pool::Last
                    } else {
                        Pool::Max
                    };
                }
                "head" => {
                    choice(&["linear", "mlp", "features"])?;
                    head = value;
                }
                "embeddings" => {
                    choice(&["fixed", "trainable"])?;
                    cfg.train_embeddings = value == "trainable";
                }
                _ => {
                    return Err(RnnError::Config(format!(
                        "unknown option `{key}` (known: vocab, embed, hidden, layers, classes, \
                         chunk, width, cell, pool, head, embeddings)"
                    )))
                }
            }
        }
        cfg.head = match head {
            "mlp" => Head::Mlp {
                width: width.unwrap_or(cfg.hidden),
            },
            "features" => Head::Features,
            _ => Head::Linear,
        };
        if !seen_vocab {
            return Err(RnnError::Config("option `vocab` is required".into()));
        }
        if !seen_classes && cfg.head != Head::Features {
            return Err(RnnError::Config(
                "option `classes` is required unless head = features".into(),
            ));
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Number of outputs per example.
    pub fn outputs(&self) -> usize {
        match self.head {
            Head::Features => self.hidden,
            Head::Linear | Head::Mlp { .. } => self.classes,
        }
    }
}

/// Where one recurrent layer's parameters sit in θ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerLayout {
    /// Input weights W, `(gates·hidden) × input`, row-major.
    pub w: Range<usize>,
    /// Recurrent weights U, `(gates·hidden) × hidden`, row-major.
    pub u: Range<usize>,
    /// Bias b, `gates·hidden`.
    pub b: Range<usize>,
    /// Input width (embedding for the first layer, hidden otherwise).
    pub input: usize,
}

/// One dense layer of the head: `y = act(W x + b)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenseLayout {
    /// Weights, `output × input`, row-major.
    pub w: Range<usize>,
    /// Bias, `output`.
    pub b: Range<usize>,
    /// Input width.
    pub input: usize,
    /// Output width.
    pub output: usize,
    /// `true` for tanh, `false` for the identity.
    pub tanh: bool,
}

/// Layout of θ: `[word vectors (if trainable)] [layer 1] … [layer L] [head]`.
/// The head comes last, so "everything but the head" (the papers'
/// hyper-representation) and "the head" are two contiguous ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The word vectors, `vocab × embed` (empty when fixed).
    pub embedding: Range<usize>,
    /// The recurrent layers, bottom first.
    pub layers: Vec<LayerLayout>,
    /// The head's dense layers, in order (none for [`Head::Features`]).
    pub head: Vec<DenseLayout>,
    /// Length of θ.
    pub total: usize,
}

impl Layout {
    /// The layout for a (validated) configuration.
    pub fn new(cfg: &RnnConfig) -> Self {
        let mut at = 0;
        let mut take = |n: usize| {
            let r = at..at + n;
            at += n;
            r
        };
        let embedding = take(if cfg.train_embeddings {
            cfg.vocab * cfg.embed
        } else {
            0
        });
        let g = cfg.cell.gates() * cfg.hidden;
        let layers = (0..cfg.layers)
            .map(|l| {
                let input = if l == 0 { cfg.embed } else { cfg.hidden };
                LayerLayout {
                    w: take(g * input),
                    u: take(g * cfg.hidden),
                    b: take(g),
                    input,
                }
            })
            .collect();
        let mut dense = |input: usize, output: usize, tanh: bool| DenseLayout {
            w: take(output * input),
            b: take(output),
            input,
            output,
            tanh,
        };
        let head = match cfg.head {
            Head::Features => Vec::new(),
            Head::Linear => vec![dense(cfg.hidden, cfg.classes, false)],
            Head::Mlp { width } => vec![
                dense(cfg.hidden, width, true),
                dense(width, width, true),
                dense(width, cfg.classes, false),
            ],
        };
        Layout {
            embedding,
            layers,
            head,
            total: at,
        }
    }

    /// The range of the head's parameters (empty for [`Head::Features`]).
    pub fn head_range(&self) -> Range<usize> {
        match (self.head.first(), self.head.last()) {
            (Some(first), Some(last)) => first.w.start..last.b.end,
            _ => self.total..self.total,
        }
    }

    /// The range of everything before the head (word vectors if trainable,
    /// and the recurrent encoder).
    pub fn body_range(&self) -> Range<usize> {
        0..self.head_range().start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_pytorch_up_to_the_second_bias() {
        // torch.nn.RNN(50, 256, 2) has 2·256 extra bias entries per layer
        // (b_ih and b_hh); we keep one bias per layer.
        let cfg = RnnConfig::new(100, 2);
        let l = Layout::new(&cfg);
        let torch = 256 * 50 + 256 * 256 + 2 * 256 + 2 * (256 * 256 + 256 * 256 + 2 * 256) / 2;
        assert_eq!(
            l.head_range().start,
            torch - 2 * 256,
            "one bias per layer instead of two"
        );
        assert_eq!(l.total, l.head_range().end);
        assert_eq!(l.head_range().len(), 2 * 256 + 2);
        let mlp = RnnConfig {
            head: Head::Mlp { width: 8 },
            train_embeddings: true,
            cell: Cell::Lstm,
            ..RnnConfig::new(10, 3)
        };
        let l = Layout::new(&mlp);
        assert_eq!(l.embedding, 0..500);
        assert_eq!(l.head_range().len(), 256 * 8 + 8 + 8 * 8 + 8 + 8 * 3 + 3);
        assert_eq!(l.body_range().end, l.head_range().start);
        assert_eq!(l.layers[1].u.len(), 4 * 256 * 256);
    }

    #[test]
    fn options_from_a_spec() {
        let cfg = RnnConfig::from_options(&[
            ("vocab", "20000"),
            ("embed", "64"),
            ("hidden", "128"),
            ("cell", "lstm"),
            ("pool", "last"),
            ("head", "mlp"),
            ("width", "32"),
            ("classes", "3"),
            ("embeddings", "trainable"),
        ])
        .unwrap();
        assert_eq!(cfg.cell, Cell::Lstm);
        assert_eq!(cfg.pool, Pool::Last);
        assert_eq!(cfg.head, Head::Mlp { width: 32 });
        assert!(cfg.train_embeddings);
        assert_eq!(
            (cfg.vocab, cfg.embed, cfg.hidden, cfg.layers),
            (20000, 64, 128, 2)
        );
        let f = RnnConfig::from_options(&[("vocab", "5"), ("head", "features")]).unwrap();
        assert_eq!(f.outputs(), 256);
        for (bad, msg) in [
            (
                &[("vocab", "5"), ("classes", "2"), ("cell", "gru")][..],
                "cell = gru",
            ),
            (&[("vocab", "x"), ("classes", "2")][..], "vocab = x"),
            (
                &[("vocab", "5"), ("classes", "2"), ("depth", "2")][..],
                "unknown option `depth`",
            ),
            (&[("classes", "2")][..], "`vocab` is required"),
            (&[("vocab", "5")][..], "`classes` is required"),
            (
                &[("vocab", "5"), ("classes", "2"), ("hidden", "0")][..],
                "hidden must be positive",
            ),
        ] {
            let e = RnnConfig::from_options(bad).unwrap_err().to_string();
            assert!(e.contains(msg), "{e}");
        }
    }

    #[test]
    fn zero_sizes_are_rejected() {
        assert!(RnnConfig::new(0, 2).validate().is_err());
        assert!(RnnConfig::new(5, 0).validate().is_err());
        let features = RnnConfig {
            head: Head::Features,
            ..RnnConfig::new(5, 0)
        };
        assert!(features.validate().is_ok());
        assert_eq!(features.outputs(), 256);
    }
}
