//! `bilevel-dsl`: the `.bilevel` language.
//!
//! This crate turns a `.bilevel` file into oracles that every solver of
//! `bilevel-core` can run. Source positions are reported as 1-based line and
//! column, computed by [`SourceMap`].
//!
//! # Stages
//!
//! The compiler is a short pipeline of small stages, each a private
//! module that calls no later one: `parser` (source → AST), `check` (AST →
//! checked [`Spec`], with `convexity` for the strong-convexity
//! certificate), `data` (loading the tables), `lower` (spec → tapes),
//! `tape` (the AD interpreter), `compiled` (the [`Compiled`] oracle) and
//! `summary` (what `bilevel check` prints). Only the `pipeline` module
//! sequences them (parse → check → load → models → check again →
//! parameters → lower → facts), behind [`build_with`].
//!
//! # Facade
//!
//! Everything a user of the crate needs is re-exported here:
//! - building: [`check_source`], [`build`], [`build_with`],
//!   [`Compiled`] (the oracle), [`Program`], [`ExpectOutcome`];
//! - the checked spec: [`Spec`] and the types it is made of ([`Setting`],
//!   [`DataDef`], [`ModelDef`], [`Verdict`], …);
//! - diagnostics: [`Diagnostic`], [`Code`], [`Severity`], [`render`],
//!   [`render_with`], [`to_json`], [`SourceMap`];
//! - `bilevel check`'s report: [`Summary`], [`summarize`],
//!   [`summarize_with`];
//! - data: [`Batch`], [`SourceBatch`], [`SamplerState`], [`View`],
//!   [`SampleSource`], and the tokenizer ([`tokenize`], [`Vocab`]);
//! - model backends: the [`backend`] module ([`ModelBackend`],
//!   [`ModelRegistry`], …), the plug-in interface of `model`
//!   declarations;
//! - the limits every input is held to ([`MAX_FILE_BYTES`],
//!   [`MAX_PARAM_ELEMENTS`], …).
#![forbid(unsafe_code)]

mod ast;
pub mod backend;
mod check;
mod codegen;
mod compiled;
mod convexity;
mod data;
mod diag;
mod finite;
mod hir;
mod lower;
mod parser;
#[cfg(test)]
mod parser_tests;
mod pipeline;
pub mod stationarity;
mod summary;
mod tape;
mod text;

pub use ast::{Cmp, Span};
pub use backend::{ModelBackend, ModelContext, ModelRegistry, Models, TokenBatch};
pub use check::{MAX_BODY_EVALS, MAX_SUGGESTIONS, SUPPORTED_VERSIONS};
pub use codegen::{codegen, CodegenOptions, DataChoice, Generated, Scalar, Storage};
pub use compiled::{spd, Compiled, ExpectOutcome, Program};
pub use convexity::matrix::{
    lambda_min_bound, lambda_min_bound_within, Bound as LambdaBound, MAX_ORDER, MAX_VERIFY_WORK,
};
pub use data::{Batch, Loaded, SamplerState, SourceBatch, Table, View};
pub use diag::{render, render_with, short, to_json, Code, Diagnostic, Label, Severity};
pub use finite::{FiniteLevel, FiniteSumLayout};
pub use hir::{
    fmt_num, AlgoDef, Analysis, DataDef, DataFacts, Dim, ExpectDef, ExpectTarget, Features, Init,
    LabelEncoding, LabelNoise, ModelDef, ParamDef, RunDef, Sampler, Setting, Shape, SourceKind,
    Spec, Split, TextSource, VarDef, Verdict, MAX_BATCH, MAX_ELEMENTS, MAX_PARAM_ELEMENTS,
    MAX_VARS,
};
pub use parser::{
    parse, MAX_CHAIN, MAX_DECLS, MAX_EXPR_TOKENS, MAX_FILE_BYTES, MAX_LITERAL_TOKENS, MAX_NESTING,
    RESERVED,
};
pub use pipeline::{build, build_with, check_source, MAX_TAPE_ELEMENTS};
pub use summary::{summarize, summarize_with, Summary};
pub use tape::{Field, SampleSource};
pub use text::{tokenize, Vocab, UNK};

/// Maps byte offsets of one source file to 1-based line and column numbers
/// (columns count Unicode scalar values, as editors do).
#[derive(Debug, Clone)]
pub struct SourceMap<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    /// Indexes the line starts of `text`.
    pub fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        let b = text.as_bytes();
        // `\n`, `\r\n` and a lone `\r` end a line.
        line_starts.extend(
            (0..b.len())
                .filter(|&i| b[i] == b'\n' || (b[i] == b'\r' && b.get(i + 1) != Some(&b'\n')))
                .map(|i| i + 1),
        );
        SourceMap { text, line_starts }
    }

    /// The 1-based (line, column) of byte `offset`; offsets past the end map to
    /// the end of the text, and offsets inside a multi-byte character to that
    /// character.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let col = self.text[start..]
            .char_indices()
            .take_while(|&(i, _)| start + i < offset)
            .count();
        (line + 1, col + 1)
    }

    /// The text of 1-based line `line`, without its line break.
    pub fn line(&self, line: usize) -> Option<&'a str> {
        let start = *self.line_starts.get(line.checked_sub(1)?)?;
        let rest = &self.text[start..];
        Some(rest.split(['\n', '\r']).next().unwrap_or(""))
    }
}

/// Longest name [`path_safe_name`] returns, in bytes.
pub const MAX_PATH_NAME: usize = 64;

/// A problem name made safe as one path component (run folders are named
/// after the problem): ASCII letters, digits, `-`, `_` and `.` are kept,
/// every other character becomes `_`, a leading `.` becomes `_`, at most
/// [`MAX_PATH_NAME`] bytes; an empty name is `spec`. The result never
/// contains a separator, is never `.` or `..`, and never starts with `.`
/// or `-`, so `runs/<name>-…` always stays inside `runs/`.
pub fn path_safe_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_PATH_NAME)
        .collect();
    if out.starts_with(['.', '-']) {
        out.replace_range(0..1, "_");
    }
    if out.is_empty() {
        out.push_str("spec");
    }
    out
}

/// `src` with every lone `\r` (a classic Mac OS line end) replaced by `\n`:
/// the same length, so byte spans stay valid.
pub(crate) fn lone_cr_to_lf(src: &str) -> std::borrow::Cow<'_, str> {
    let b = src.as_bytes();
    if !(0..b.len()).any(|i| b[i] == b'\r' && b.get(i + 1) != Some(&b'\n')) {
        return std::borrow::Cow::Borrowed(src);
    }
    let mut out = String::with_capacity(src.len());
    let mut it = src.chars().peekable();
    while let Some(c) = it.next() {
        out.push(if c == '\r' && it.peek() != Some(&'\n') {
            '\n'
        } else {
            c
        });
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::{path_safe_name, SourceMap};
    use proptest::prelude::*;
    use std::path::{Component, Path};

    proptest! {
        #[test]
        fn path_safe_names_stay_one_component(name in any::<String>(), tail in "[a-z0-9-]{0,12}") {
            let p = path_safe_name(&name);
            prop_assert!(!p.is_empty() && p.len() <= super::MAX_PATH_NAME);
            let joined = Path::new("runs").join(format!("{p}{tail}"));
            let comps: Vec<Component<'_>> = joined.components().collect();
            prop_assert_eq!(comps.len(), 2, "{:?}", joined);
            prop_assert!(matches!(comps[1], Component::Normal(_)), "{:?}", joined);
            prop_assert!(!p.starts_with('.') && !p.starts_with('-'));
        }
    }

    #[test]
    fn path_safe_names_of_hostile_names() {
        for (name, want) in [
            ("../../../escaped", "_._.._.._escaped"),
            ("/elsewhere/x", "_elsewhere_x"),
            ("..", "_."),
            ("", "spec"),
            ("toy_quadratic", "toy_quadratic"),
            ("C:\\x", "C__x"),
            ("μ-test", "_-test"),
        ] {
            assert_eq!(path_safe_name(name), want, "{name:?}");
        }
    }

    #[test]
    fn positions_are_one_based_and_unicode_aware() {
        let m = SourceMap::new("ab\nμx = 1\r\n\nend");
        assert_eq!(m.line_col(0), (1, 1));
        assert_eq!(m.line_col(2), (1, 3));
        assert_eq!(m.line_col(3), (2, 1));
        // 'μ' is two bytes; 'x' is the second character of line 2.
        assert_eq!(m.line_col(5), (2, 2));
        assert_eq!(m.line_col(1000), (4, 4));
        assert_eq!(m.line(2), Some("μx = 1"));
        assert_eq!(m.line(3), Some(""));
        assert_eq!(m.line(9), None);
        assert_eq!(m.line(0), None);
    }
}
