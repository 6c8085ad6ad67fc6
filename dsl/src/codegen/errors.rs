//! The diagnostics of code generation, one constructor each.

use crate::ast::Span;
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

/// E0710: a `--data` choice names a data source the spec does not declare.
pub(super) fn ring_unknown_source(name: &str, data: &[DataDef], at: Span) -> Diagnostic {
    let names: Vec<&str> = data.iter().map(|d| d.name.as_str()).collect();
    Diagnostic::new(
        Code::E0710,
        format!("option `--data`: no data source `{name}` in this spec"),
        at,
        "the objectives read the data sources declared with `data`",
    )
    .with_note(if names.is_empty() {
        "the spec declares no data source".to_string()
    } else {
        format!("its data sources: {}", names.join(", "))
    })
    .with_help(
        "name a declared table source, e.g. `--data train:ring=64`, or omit the source for all",
    )
}

/// E0710: a `--data` ring choice names a synthetic source.
pub(super) fn ring_not_a_table(def: &DataDef) -> Diagnostic {
    Diagnostic::new(
        Code::E0710,
        format!(
            "option `--data`: data source `{}` is synthetic, not a table: it cannot be a ring",
            def.name
        ),
        def.span,
        "drawn by the generated code itself",
    )
    .with_note("a ring holds rows of a table source that the firmware measures")
}

/// E0710: a `--data` choice names a table the objectives do not read.
pub(super) fn ring_unused(def: &DataDef) -> Diagnostic {
    Diagnostic::new(
        Code::E0710,
        format!(
            "option `--data`: data source `{}` is not read by the objectives",
            def.name
        ),
        def.span,
        "declared, but no `upper`/`lower` objective reduces over it",
    )
    .with_note("the generated oracle has no code for it: a choice for it would be ignored")
}

/// E0711: a ring of capacity 0.
pub(super) fn ring_capacity_zero(def: &DataDef) -> Diagnostic {
    Diagnostic::new(
        Code::E0711,
        format!("option `--data`: the ring of `{}` has capacity 0", def.name),
        def.span,
        "a ring of this source",
    )
    .with_note("a ring needs room for at least one minibatch")
    .with_help(format!(
        "give a capacity of at least `batch` ({}), e.g. `ring={}`",
        def.batch,
        def.batch.max(1)
    ))
}

/// E0712: a minibatch larger than the ring's capacity.
pub(super) fn ring_batch_over_capacity(def: &DataDef, cap: usize) -> Diagnostic {
    Diagnostic::new(
        Code::E0712,
        format!(
            "option `--data`: minibatch of `{}` ({} rows) larger than its ring's capacity ({cap})",
            def.name, def.batch
        ),
        def.span,
        format!("batch = {}", def.batch),
    )
    .with_note("a minibatch is drawn from the rows one ring holds")
    .with_help(format!(
        "give the ring a capacity of at least {} (`{}:ring={}`), or lower `batch`",
        def.batch, def.name, def.batch
    ))
}

/// E0713: the spec reads a fact of the whole data set of a ring source.
pub(super) fn ring_whole_data(def: &DataDef, fact: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0713,
        format!(
            "option `--data`: `{fact}` needs the whole data set of `{}`, which a ring does not have",
            def.name
        ),
        at,
        "fixed when the table is read; a ring's rows change at run time",
    )
    .with_secondary(def.span, "made a ring by `--data`")
    .with_note("a ring's row count changes with every push, and a ring has no row numbers that last")
    .with_help("keep this source `const`, or write the spec without it")
}

/// E0714: `s.index` of a ring source.
pub(super) fn ring_index(def: &DataDef) -> Diagnostic {
    Diagnostic::new(
        Code::E0714,
        format!(
            "option `--data`: an objective reads `s.index` of `{}`, which a ring does not keep",
            def.name
        ),
        def.span,
        "made a ring by `--data`",
    )
    .with_note("a ring's slot is reused when it wraps: it is not a row's identity (per-sample variables need the whole table)")
    .with_help("keep this source `const`")
}

/// E0715: a load-time transform of the whole table on a ring source.
pub(super) fn ring_load_transform(def: &DataDef, what: &str) -> Diagnostic {
    Diagnostic::new(
        Code::E0715,
        format!(
            "option `--data`: `{what}` of `{}` transforms the whole table when it is read; a ring's rows arrive at run time",
            def.name
        ),
        def.span,
        format!("has `{what}`"),
    )
    .with_help("keep this source `const`, or apply the transform on the device before `push`")
}
