//! The diagnostics of the pipeline's own stages (models, parameters,
//! workspace budget), one constructor each.

use crate::ast::Span;
use crate::backend::ModelRegistry;
use crate::diag::{Code, Diagnostic};
use crate::hir::ModelDef;

/// E0404: a `model` declaration but no registry of backends.
pub(super) fn no_backend(def: &ModelDef) -> Diagnostic {
    Diagnostic::new(
        Code::E0404,
        format!("no backend for model kind `{}`", def.kind),
        def.kind_span,
        "no model backend in this program",
    )
    .with_note("model backends plug in through `bilevel_dsl::backend::ModelRegistry`")
    .with_help("run the spec with the `bilevel` command, which registers its models")
}

/// E0203: one model reads two sources with different vocabularies.
pub(super) fn vocabularies_differ(def: &ModelDef, a: &str, b: &str) -> Diagnostic {
    Diagnostic::new(
        Code::E0203,
        format!(
            "model `{}` reads `{a}` and `{b}`, whose vocabularies differ",
            def.name
        ),
        def.span,
        "one vocabulary per model",
    )
    .with_help("give both data sources the same `vocab` file")
}

/// E0203: the model knows fewer tokens than its text's vocabulary.
pub(super) fn vocabulary_too_small(def: &ModelDef, knows: usize, needs: usize) -> Diagnostic {
    Diagnostic::new(
        Code::E0203,
        format!(
            "model `{}` knows {knows} tokens, its text has a vocabulary of {needs}",
            def.name
        ),
        def.span,
        "vocabulary too small",
    )
}

/// E0404: the registry refused to build the model (`key` is the option at
/// fault, empty for the kind).
pub(super) fn model_build_failed(
    def: &ModelDef,
    key: &str,
    msg: &str,
    reg: &dyn ModelRegistry,
) -> Diagnostic {
    let span = def
        .options
        .iter()
        .find(|(k, _, _)| k == key)
        .map_or(def.kind_span, |o| o.2);
    let d = Diagnostic::new(
        Code::E0404,
        format!("model `{}`: {msg}", def.name),
        span,
        if key.is_empty() {
            "cannot build this model".to_string()
        } else {
            format!("option `{key}`")
        },
    );
    if key.is_empty() {
        d.with_note(format!("model kinds: {}", reg.kinds().join(", ")))
    } else {
        d
    }
}

/// E0203: a parameter evaluates to NaN or an infinity.
pub(super) fn param_not_finite(name: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0203,
        format!("parameter `{name}` evaluates to a non-finite value"),
        at,
        "NaN or infinite",
    )
}

/// E0204: the parameters together hold more than `limit` numbers.
pub(super) fn params_too_large(total: usize, limit: usize) -> Diagnostic {
    Diagnostic::file_level(
        Code::E0204,
        format!("the parameters hold {total} numbers together; the limit is {limit}"),
    )
}

/// E0204: the oracles' workspaces would exceed `limit` numbers.
pub(super) fn workspace_too_large(need: usize, limit: usize) -> Diagnostic {
    Diagnostic::file_level(
        Code::E0204,
        format!("the oracles need {need} numbers of workspace; the limit is {limit}"),
    )
    .with_help("reduce the dimensions or the batch sizes")
}
