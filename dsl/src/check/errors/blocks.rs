//! Diagnostics of the `algorithm`, `run` and `expect` blocks and of data
//! sources (one constructor each, as in the parent module).

use std::fmt;

use bilevel_core::registry::ParamSpec;

use crate::ast::Span;
use crate::diag::{Code, Diagnostic};
use crate::hir::Shape;

// ----- algorithm, run and expect blocks ------------------------------------

/// E0401: an algorithm the registry does not know.
pub(in crate::check) fn unknown_algorithm(
    name: &str,
    at: Span,
    similar: Option<&str>,
    names: &[&str],
) -> Diagnostic {
    let mut d = Diagnostic::new(
        Code::E0401,
        format!("unknown algorithm `{name}`"),
        at,
        "not a registered algorithm",
    );
    if let Some(s) = similar {
        d = d.with_help(format!("did you mean `{s}`?"));
    }
    d.with_note(format!("available: {}", names.join(", ")))
}

/// E0102: a setting given twice.
pub(in crate::check) fn set_twice(key: &str, at: Span, first: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0102,
        format!("`{key}` is set twice"),
        at,
        "set again here",
    )
    .with_secondary(first, "first set here")
}

/// E0402: a hyperparameter the solver does not have; `owner` is another
/// solver that has it.
pub(in crate::check) fn unknown_hyperparameter(
    solver: &str,
    names: &[&str],
    key: &str,
    at: Span,
    similar: Option<&str>,
    owner: Option<&str>,
) -> Diagnostic {
    let d = Diagnostic::new(
        Code::E0402,
        format!("`{solver}` has no hyperparameter `{key}`"),
        at,
        "unknown hyperparameter",
    );
    let d = match similar {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d.with_help(format!("`{solver}` accepts: {}", names.join(", "))),
    };
    match owner {
        Some(other) => d.with_note(format!("`{key}` belongs to `{other}`")),
        None => d,
    }
}

/// E0403: a hyperparameter value of the wrong literal type.
pub(in crate::check) fn setting_wrong_type(p: &ParamSpec, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0403,
        format!("`{}` takes a {} value", p.name, p.kind.name()),
        at,
        "not a literal of that type",
    )
    .with_note(format!("valid: {}", p.range))
}

/// E0403: a hyperparameter value the registry rejects.
pub(in crate::check) fn setting_invalid(
    p: &ParamSpec,
    solver: &str,
    e: &impl fmt::Display,
    expected: &str,
    at: Span,
) -> Diagnostic {
    Diagnostic::new(
        Code::E0403,
        format!("hyperparameter `{}` is invalid for `{solver}`: {e}", p.name),
        at,
        format!("expected {expected}"),
    )
    .with_note(format!("`{}`: {}", p.name, p.doc))
}

/// E0405: a run setting of the wrong kind of value.
pub(in crate::check) fn run_setting_type(key: &str, what: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0405,
        format!("run setting `{key}` takes {what}"),
        at,
        format!("expected {what}"),
    )
}

/// E0405: an unknown run setting.
pub(in crate::check) fn unknown_run_setting(
    key: &str,
    at: Span,
    similar: Option<&str>,
    keys: &[&str],
) -> Diagnostic {
    let d = Diagnostic::new(
        Code::E0405,
        format!("unknown run setting `{key}`"),
        at,
        "not a run setting",
    );
    match similar {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d.with_help(format!("run settings: {}", keys.join(", "))),
    }
}

/// E0405: both `iterations` and `epochs`.
pub(in crate::check) fn iterations_and_epochs(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0405,
        "`iterations` and `epochs` both set",
        at,
        "conflicting budgets",
    )
    .with_help("keep one of them")
}

/// E0408: an epoch budget on a spec whose lower level samples no data
/// table (epochs count passes over a table; synthetic sources have none).
pub(in crate::check) fn epochs_without_table(epochs: u64, at: Span, g: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0408,
        format!("`epochs = {epochs}` can never be reached: the lower level samples no data table"),
        at,
        "an epoch budget",
    )
    .with_secondary(g, "reduces over no data table")
    .with_note("an epoch is one pass over the lower level's first data table; synthetic sources have no size, so the epoch counter would stay at 0 and the run never end")
    .with_help("give an iteration budget instead, e.g. `iterations = 1000`")
}

/// E0405: a metric that is not a scalar.
pub(in crate::check) fn metric_not_scalar(name: &str, shape: &Shape, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0405,
        format!("metric `{name}` is {shape}, not a scalar"),
        at,
        "not a scalar",
    )
    .with_help("reduce it with `mean over s in D { … }`, `sum(…)` or `norm2(…)`")
}

/// E0405: a metric that is not a `let`.
pub(in crate::check) fn unknown_metric(name: &str, at: Span, similar: Option<&str>) -> Diagnostic {
    let d = Diagnostic::new(
        Code::E0405,
        format!("unknown metric `{name}`"),
        at,
        "not a `let`",
    )
    .with_note(
        "metrics are scalar `let`s or the built-in `grad_phi_sq` and `inner_distance`, \
         evaluated on the whole data at every trace line",
    );
    match similar {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d,
    }
}

/// E0405: a built-in metric name (`grad_phi_sq`, `inner_distance`) that a
/// declaration of the spec also uses, so `metrics` would be ambiguous.
pub(in crate::check) fn metric_name_taken(name: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0405,
        format!("metric `{name}` is ambiguous: it is built in and also declared in this spec"),
        at,
        "built-in metric name",
    )
    .with_help(format!(
        "rename the declaration `{name}`; `{name}` in `metrics` is the built-in stationarity metric"
    ))
}

/// E0407: an expectation on something that is not a variable, `F` or `mu`.
pub(in crate::check) fn expect_target(text: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0407,
        format!("cannot check `{text}`"),
        at,
        "not a variable, `F` or `mu`",
    )
    .with_help("expectations compare a variable, `F` (the noise-free upper objective) or `mu`")
}

/// E0407: an expected value that is not numeric.
pub(in crate::check) fn expect_not_numeric(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0407,
        "expected a number or a list of numbers",
        at,
        "not numeric",
    )
}

/// E0407: an expected value of the wrong length.
pub(in crate::check) fn expect_length(text: &str, n: usize, given: usize, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0407,
        format!("`{text}` has {n} value(s), the expectation gives {given}"),
        at,
        "wrong length",
    )
}

/// E0407: `~=` without `tol`.
pub(in crate::check) fn approx_without_tol(at: Span) -> Diagnostic {
    Diagnostic::new(Code::E0407, "`~=` needs a tolerance", at, "no `tol`")
        .with_help("append `tol 1e-2`")
}

// ----- data sources --------------------------------------------------------

/// E0406: `csv`/`tsv` without exactly one file name.
pub(in crate::check) fn table_path(kind: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0406,
        format!("`{kind}` takes one file name"),
        at,
        "expected a string",
    )
    .with_help(format!("write `{kind}(\"data/train.{kind}\")`"))
}

/// E0406: an argument a synthetic source does not take.
pub(in crate::check) fn synth_args(kind: &str, allowed: &[&str], at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0406,
        format!("`{kind}` accepts named arguments {}", allowed.join(", ")),
        at,
        "unexpected argument",
    )
}

/// E0406: `dim` of a synthetic source is not a size.
pub(in crate::check) fn synth_dim(at: Span) -> Diagnostic {
    Diagnostic::new(Code::E0406, "`dim` must be a size", at, "not a size")
}

/// E0406: `std` negative or not finite.
pub(in crate::check) fn synth_std(at: Span) -> Diagnostic {
    Diagnostic::new(Code::E0406, "`std` must be finite and >= 0", at, "invalid")
}

/// E0406: `low >= high`.
pub(in crate::check) fn synth_range(at: Span) -> Diagnostic {
    Diagnostic::new(Code::E0406, "`low` must be below `high`", at, "empty range")
}

/// E0406: an unknown kind of data source.
pub(in crate::check) fn unknown_source(
    kind: &str,
    at: Span,
    similar: Option<&str>,
    kinds: &[&str],
) -> Diagnostic {
    let d = Diagnostic::new(
        Code::E0406,
        format!("unknown data source `{kind}`"),
        at,
        "not a data source",
    );
    match similar {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d.with_help(format!("data sources: {}", kinds.join(", "))),
    }
}

/// E0406: an option the source does not take.
pub(in crate::check) fn unknown_data_option(
    key: &str,
    at: Span,
    similar: Option<&str>,
    keys: &[&str],
) -> Diagnostic {
    let d = Diagnostic::new(
        Code::E0406,
        format!("unknown data option `{key}`"),
        at,
        "not an option of this source",
    );
    match similar {
        Some(s) => d.with_help(format!("did you mean `{s}`?")),
        None => d.with_help(format!("options: {}", keys.join(", "))),
    }
}

/// E0406: an invalid value of a data option (`what` is expected).
pub(in crate::check) fn data_option_value(key: &str, what: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0406,
        format!("invalid value for data option `{key}`"),
        at,
        format!("expected {what}"),
    )
}

/// E0406: `label_encoding` without `label`.
pub(in crate::check) fn encoding_without_label(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0406,
        "`label_encoding` without a `label` column",
        at,
        "no label column",
    )
    .with_help("add `label = \"column\"`")
}

/// E0406: `text` without `vocab`.
pub(in crate::check) fn text_without_vocab(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0406,
        "a `text` column needs a `vocab` file",
        at,
        "no vocabulary",
    )
    .with_help("add `vocab = \"words.txt\"` (one word per line; GloVe files qualify)")
}

/// E0406: `vocab` without `text`.
pub(in crate::check) fn vocab_without_text(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0406,
        "`vocab` without a `text` column",
        at,
        "nothing to tokenize",
    )
    .with_help("add `text = \"column\"`")
}

/// E0406: `label_noise` without classes.
pub(in crate::check) fn noise_without_classes(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0406,
        "`label_noise` needs `label_encoding = class(k)` with k >= 2",
        at,
        "labels are not classes",
    )
}
