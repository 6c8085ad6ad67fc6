//! The diagnostics of code generation, one constructor each.

use crate::diag::{Code, Diagnostic};
use crate::hir::{DataDef, ModelDef};

/// E0701: a `model` call (a backend's code is not part of the spec).
pub(super) fn model_call(def: &ModelDef) -> Diagnostic {
    Diagnostic::new(
        Code::E0701,
        format!(
            "cannot generate code for model `{}` (kind `{}`)",
            def.name, def.kind
        ),
        def.span,
        "a model backend runs outside the spec",
    )
    .with_note("code generation emits the spec's own operations; a model's forward and backward passes live in its backend")
    .with_help("write the model's computation in the spec (products, elementwise functions), or run the spec with `bilevel run`")
}

/// E0702: a data field that has no fixed-size numeric form.
pub(super) fn field(def: &DataDef, field: &str) -> Diagnostic {
    Diagnostic::new(
        Code::E0702,
        format!(
            "cannot generate code for field `{field}` of data source `{}`",
            def.name
        ),
        def.span,
        "used by an objective",
    )
    .with_note("generated oracles read numeric features, labels, weights and row indices")
    .with_help("encode the column as numeric features")
}
