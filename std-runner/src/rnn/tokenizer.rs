//! A GloVe-style tokenizer and the vocabulary that maps words to token ids:
//! the `.bilevel` language's own ([`bilevel_dsl::tokenize`], [`bilevel_dsl::Vocab`]), so that specs and
//! the backend tokenize alike.

pub use bilevel_dsl::{tokenize, Vocab, UNK};
