//! One constructor per diagnostic of the checker, in the style of rustc's
//! `errors.rs`: the wording of every message lives here.

use crate::ast::{Ident, LevelKind, Span};
use crate::diag::{Code, Diagnostic};
use crate::hir::{fmt_num, Shape, MAX_ELEMENTS, MAX_VARS};

mod blocks;
pub(crate) mod convexity;

pub(super) use blocks::*;

// ----- blocks and declarations ---------------------------------------------

/// E0103: a second `upper`/`lower` block.
pub(super) fn second_level_block(level: LevelKind, at: Span, first: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0103,
        format!("a second `{}` block", level.name()),
        at,
        "repeated here",
    )
    .with_secondary(first, "first block")
    .with_help("put every variable of a level into one block")
}

/// E0103: no `upper`/`lower` block.
pub(super) fn missing_level_block(level: LevelKind, header: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0103,
        format!("the spec has no `{}` block", level.name()),
        header,
        "in this spec",
    )
    .with_help(format!("add `{} {{ var …: … minimize … }}`", level.name()))
}

/// E0103: a level block without a variable.
pub(super) fn level_without_vars(level: LevelKind, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0103,
        format!("the `{}` block declares no variable", level.name()),
        at,
        "no `var` in this block",
    )
    .with_help("declare its variable with `var name: type`")
}

/// E0603: more than [`MAX_VARS`] variables in one level.
pub(super) fn too_many_vars(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0603,
        format!("more than {MAX_VARS} variables in one level"),
        at,
        "too many variables",
    )
}

/// E0103: two `algorithm` blocks for one solver.
pub(super) fn second_algorithm_block(solver: &str, at: Span, first: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0103,
        format!("a second `algorithm` block for `{solver}`"),
        at,
        "repeated here",
    )
    .with_secondary(first, "first block")
    .with_help("merge the settings into one block per solver")
}

/// E0103: two `run` blocks.
pub(super) fn second_run_block(at: Span, first: Span) -> Diagnostic {
    Diagnostic::new(Code::E0103, "a second `run` block", at, "repeated here")
        .with_secondary(first, "first block")
}

/// E0405: an `expect` block without `run { seed = … }`.
pub(super) fn expect_without_seed(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0405,
        "an `expect` block needs a fixed seed",
        at,
        "expectations are checked on a seeded run",
    )
    .with_help("add `run { seed = 42 }`")
}

// ----- names and scopes ----------------------------------------------------

/// E0102: a name declared twice; `(l, c)` is the first declaration's position.
pub(super) fn declared_twice(
    name: &str,
    at: Span,
    first: Span,
    (l, c): (usize, usize),
) -> Diagnostic {
    Diagnostic::new(
        Code::E0102,
        format!("`{name}` is declared twice"),
        at,
        "declared again here",
    )
    .with_secondary(first, "first declared here")
    .with_help(format!("rename one of them (the first is at {l}:{c})"))
}

/// E0106: a cycle among params and lets (`names` quoted, in cycle order).
pub(super) fn cyclic_definitions(names: &[String], first: &Ident, rest: &[Span]) -> Diagnostic {
    let mut d = Diagnostic::new(
        Code::E0106,
        format!(
            "cyclic definitions: {} -> `{}`",
            names.join(" -> "),
            first.name
        ),
        first.span,
        "defined in terms of itself",
    );
    for &s in rest {
        d = d.with_secondary(s, "part of the cycle");
    }
    d.with_help("break the cycle: one of these definitions must not use the others")
}

/// E0101: an undeclared name, with the most similar declared one (its name,
/// what it is and where it is declared).
pub(super) fn undeclared_name(
    name: &str,
    at: Span,
    similar: Option<(&str, &str, (usize, usize))>,
) -> Diagnostic {
    let d = Diagnostic::new(
        Code::E0101,
        format!("undeclared name `{name}`"),
        at,
        "not found in this file",
    );
    match similar {
        Some((n, what, (l, c))) => {
            let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            d.with_help(format!(
                "{article} {what} with a similar name exists: `{n}` (declared at {l}:{c})"
            ))
        }
        None => d,
    }
}

/// E0202: a whole sample used as a value.
pub(super) fn sample_not_value(sample: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!("`{sample}` is a sample; use one of its fields"),
        at,
        "a whole sample is not a value",
    )
    .with_help(format!("write e.g. `{sample}.x`"))
}

/// E0101: a field the samples of a source do not have.
pub(super) fn unknown_field(source: &str, field: &str, at: Span, fields: &[&str]) -> Diagnostic {
    Diagnostic::new(
        Code::E0101,
        format!("samples of `{source}` have no field `{field}`"),
        at,
        "unknown field",
    )
    .with_help(format!("fields: {}", fields.join(", ")))
}

/// E0202: `s.x.y`.
pub(super) fn field_subfield(at: Span) -> Diagnostic {
    Diagnostic::new(Code::E0202, "fields have no sub-fields", at, "here")
}

/// E0202: `s.text` used as a number.
pub(super) fn text_not_number(sample: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!("`{sample}.text` is a token sequence, not a number"),
        at,
        "a token sequence",
    )
    .with_help(format!(
        "pass it to a model: `phi(theta, {sample}.text)` with `model phi: …`"
    ))
}

/// E0202: a data fact used as a number before it is bound in `dims`.
pub(super) fn fact_after_loading(key: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!("`{key}` is known only after loading; bind it in `dims` first"),
        at,
        "not a constant here",
    )
}

/// E0202: a symbolic dimension used as a number.
pub(super) fn dim_not_known(dim: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!("dimension `{dim}` is not known before data is loaded"),
        at,
        "used as a number",
    )
}

/// E0202: a variable inside a constant.
pub(super) fn const_depends_on_var(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        "a constant cannot depend on a variable",
        at,
        "a variable",
    )
}

/// E0202: a data source used as a value.
pub(super) fn data_not_value(source: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!("data source `{source}` is not a value"),
        at,
        "a data source",
    )
    .with_help(format!(
        "average over its samples: `mean over s in {source} {{ … }}`"
    ))
}

/// E0202: a model used as a value.
pub(super) fn model_not_value(model: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!("model `{model}` is not a value"),
        at,
        "a model",
    )
    .with_help(format!(
        "apply it to a sample's text: `{model}(theta, s.text)`"
    ))
}

// ----- dims and shapes -----------------------------------------------------

/// E0106: a dimension defined in terms of itself.
pub(super) fn dim_cycle(name: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0106,
        format!("dimension `{name}` is defined in terms of itself"),
        at,
        "part of a cycle",
    )
}

/// E0101: an undeclared dimension, with a similar declared one.
pub(super) fn undeclared_dim(name: &str, at: Span, similar: Option<&str>) -> Diagnostic {
    let d = Diagnostic::new(
        Code::E0101,
        format!("undeclared dimension `{name}`"),
        at,
        "not found in this file",
    );
    match similar {
        Some(s) => d.with_help(format!("a dimension with a similar name exists: `{s}`")),
        None => d.with_help("declare it in `dims { … }` or use `source.rows` / `source.features`"),
    }
}

/// E0204: dimension arithmetic below 0 or above 64 bits.
pub(super) fn dim_overflow(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0204,
        "dimension arithmetic overflows",
        at,
        "the result is negative or does not fit in 64 bits",
    )
    .with_help("sizes are whole numbers >= 0")
}

/// E0202: a tensor type of rank above 2.
pub(super) fn tensor_rank(rank: usize, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!("tensor of rank {rank} is not supported"),
        at,
        "only scalars, vectors and matrices are lowered",
    )
    .with_help("use `matrix[m, n]`, or one variable per slice")
}

/// E0101: `params(m)` of an undeclared model.
pub(super) fn undeclared_model(model: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0101,
        format!("undeclared model `{model}`"),
        at,
        "not found in this file",
    )
}

/// E0204: a declared type above [`MAX_ELEMENTS`] elements.
pub(super) fn too_many_elements(shape: &Shape, n: u64, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0204,
        format!("{shape} has {n} elements; the limit is {MAX_ELEMENTS}"),
        at,
        "too large",
    )
}

/// E0204: a declared type whose element count overflows 64 bits.
pub(super) fn elements_overflow(shape: &Shape, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0204,
        format!("{shape} has more elements than fit in 64 bits"),
        at,
        "too large",
    )
}

// ----- constants and initialisers ------------------------------------------

/// E0202: an initial value that depends on a variable.
pub(super) fn init_depends_on_var(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        "an initial value cannot depend on a variable",
        at,
        "depends on a variable",
    )
}

/// E0203: an initial value of another shape than declared.
pub(super) fn init_type_mismatch(
    value: &Shape,
    declared: &Shape,
    at: Span,
    name: Span,
) -> Diagnostic {
    Diagnostic::new(
        Code::E0203,
        format!("the value is {value} but the declared type is {declared}"),
        at,
        format!("this is {value}"),
    )
    .with_secondary(name, format!("declared as {declared}"))
}

/// E0104: a positional argument to an initialiser.
pub(super) fn init_unnamed_arg(init: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0104,
        format!("`{init}` takes named arguments"),
        at,
        "name this argument",
    )
    .with_help(format!("write e.g. `{init}(std = 0.1, seed = 1)`"))
}

/// E0104: an argument an initialiser does not take.
pub(super) fn init_unknown_arg(init: &str, arg: &str, at: Span, allowed: &[&str]) -> Diagnostic {
    Diagnostic::new(
        Code::E0104,
        format!("`{init}` has no argument `{arg}`"),
        at,
        "unknown argument",
    )
    .with_help(if allowed.is_empty() {
        format!("`{init}` takes no arguments")
    } else {
        format!("`{init}` accepts: {}", allowed.join(", "))
    })
}

/// E0202: `eye` or `spd` of a non-square shape.
pub(super) fn init_not_square(init: &str, shape: &Shape, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!("`{init}` needs a square matrix, not {shape}"),
        at,
        "only for square matrices",
    )
}

/// E0202: `spd(kappa = …)` below 1.
pub(super) fn spd_kappa(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        "`spd` needs kappa >= 1",
        at,
        "condition number below 1",
    )
}

/// E0202: a number needed at check time.
pub(super) fn not_constant(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        "expected a constant number",
        at,
        "not a constant known at check time",
    )
}

// ----- expressions ---------------------------------------------------------

/// E0202: `correct` inside an objective.
pub(super) fn objective_uses_correct(level: LevelKind, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!(
            "the {} objective uses `correct`, which has no gradient",
            level.name()
        ),
        at,
        "piecewise constant",
    )
    .with_help("use `correct` in a `let` named in `run { metrics = [...] }`")
}

/// E0202: an objective that is not a scalar.
pub(super) fn objective_not_scalar(level: LevelKind, shape: &Shape, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!(
            "the {} objective must be a scalar, not {shape}",
            level.name()
        ),
        at,
        format!("this is {shape}"),
    )
    .with_help("reduce it with `sum(…)`, `mean(…)` or `norm2sq(…)`")
}

/// E0202: a string (`string`) or boolean used as a number.
pub(super) fn not_a_number(at: Span, string: bool) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        "expected a number, vector or matrix",
        at,
        if string { "a string" } else { "a boolean" },
    )
}

/// E0104: an initialiser inside an expression.
pub(super) fn initialiser_in_expr(init: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0104,
        format!("initialiser `{init}` used inside an expression"),
        at,
        "only after `init` or as a whole param value",
    )
}

/// E0202: transpose of a vector.
pub(super) fn transpose_undefined(shape: &Shape, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!("transpose of {shape} is not defined"),
        at,
        "vectors are columns; only matrices are transposed",
    )
    .with_help("`v @ M` multiplies a vector from the left")
}

/// E0202: a sample reduction inside a constant.
pub(super) fn const_reduction(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        "a constant cannot average over data",
        at,
        "a sample reduction",
    )
}

/// E0202: a reduction over something that is not a data source.
pub(super) fn not_data_source(name: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!("`{name}` is not a data source"),
        at,
        "expected a data source",
    )
}

/// E0202: an array literal element that is not a number.
pub(super) fn array_not_literal(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        "array literals hold numbers only",
        at,
        "not a literal",
    )
    .with_help("build vectors from variables with arithmetic, e.g. `a * e1 + b * e2`")
}

/// E0201: array rows of different shapes.
pub(super) fn array_rows_differ(first: &Shape, this: &Shape, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0201,
        format!("array rows differ: {first} and {this}"),
        at,
        format!("this is {this}"),
    )
}

/// E0202: an array literal of rank above 2.
pub(super) fn array_rank(inner: &Shape, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!("arrays of {inner} are not supported"),
        at,
        "rank above 2",
    )
}

/// E0202: more indices than axes.
pub(super) fn too_many_indices(n: usize, shape: &Shape, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!("{n} index(es) into {shape}"),
        at,
        "too many indices",
    )
}

/// E0202: an index that is neither a whole constant nor an index field.
pub(super) fn not_an_index(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        "an index must be a whole-number constant or an index field such as `s.index`",
        at,
        "not an index",
    )
}

/// E0201: a constant index past the end of its axis.
pub(super) fn index_out_of_range(index: f64, len: u64, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0201,
        format!("index {} is out of range for length {len}", fmt_num(index)),
        at,
        "out of range",
    )
    .with_note("indices start at 0")
}

/// E0201: an index field whose range exceeds the axis.
pub(super) fn index_range_exceeds(values: u64, len: u64, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0201,
        format!("index ranges over {values} values but the axis has length {len}"),
        at,
        "may be out of range",
    )
}

/// E0202: `a @ b` of two vectors.
pub(super) fn matmul_vectors(at: Span) -> Diagnostic {
    Diagnostic::new(Code::E0202, "`@` of two vectors", at, "vector @ vector")
        .with_help("write `dot(a, b)` for the inner product")
}

/// E0202: `@` with a scalar operand.
pub(super) fn matmul_scalar(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        "`@` needs vectors or matrices",
        at,
        "a scalar operand",
    )
    .with_help("use `*` to scale")
}

/// E0202: a non-constant exponent.
pub(super) fn exponent_not_constant(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        "the exponent of `^` must be a constant number",
        at,
        "not a constant",
    )
    .with_help("write `exp(b * log(a))` for a variable exponent")
}

/// E0201: operands of an operator (`what`) whose shapes do not fit; each
/// operand as (source text, shape). `matmul` adds the product's rule,
/// `swap` suggests the operands the other way round.
pub(super) fn shape_mismatch(
    what: &str,
    (lt, l): (&str, &Shape),
    (rt, r): (&str, &Shape),
    at: Span,
    matmul: bool,
    swap: bool,
) -> Diagnostic {
    let d = Diagnostic::new(
        Code::E0201,
        format!("dimension mismatch in {what}"),
        at,
        format!("`{lt}` is {l}, `{rt}` is {r}"),
    );
    if !matmul {
        return d.with_note("elementwise operators need equal shapes; scalars broadcast");
    }
    let d =
        d.with_note("`A @ B` needs cols(A) == rows(B); a vector on the left multiplies as a row");
    if swap {
        d.with_help(format!("write `{rt} @ {lt}` (matrix times vector)"))
    } else {
        d
    }
}

// ----- calls ---------------------------------------------------------------

/// E0104: an unknown function; `init` when it is an initialiser, else the
/// most similar built-in.
pub(super) fn unknown_function(
    name: &str,
    at: Span,
    init: bool,
    similar: Option<&str>,
) -> Diagnostic {
    let d = Diagnostic::new(
        Code::E0104,
        format!("unknown function `{name}`"),
        at,
        "not a built-in",
    );
    if init {
        d.with_help("initialisers are allowed only after `init` or as a whole param value")
    } else if let Some(s) = similar {
        d.with_help(format!("did you mean `{s}`?"))
    } else {
        d
    }
}

/// E0104: a named argument to a built-in.
pub(super) fn builtin_named_arg(name: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0104,
        format!("`{name}` takes no named arguments"),
        at,
        "named argument",
    )
}

/// E0104: a built-in called with the wrong number of arguments.
pub(super) fn builtin_arity(name: &str, arity: usize, given: usize, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0104,
        format!("`{name}` takes {arity} argument(s), {given} given"),
        at,
        "wrong number of arguments",
    )
}

/// E0201: `dot`/`sq_loss` of different shapes.
pub(super) fn builtin_shapes_differ(name: &str, a: &Shape, b: &Shape, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0201,
        format!("`{name}` needs equal shapes, not {a} and {b}"),
        at,
        "shapes differ",
    )
}

/// E0201: `quad(P, y)` with P not square or y of another length.
pub(super) fn quad_shapes(p: &Shape, v: &Shape, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0201,
        format!("`quad(P, y)` needs P square and y of matching length, not {p} and {v}"),
        at,
        "shapes do not fit",
    )
}

/// E0202: `quad` of a matrix that depends on a variable.
pub(super) fn quad_matrix_not_constant(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        "the matrix of `quad` must be constant",
        at,
        "depends on a variable",
    )
}

/// E0201: `logistic_loss` of non-scalars.
pub(super) fn logistic_loss_shapes(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0201,
        "`logistic_loss(z, y)` takes two scalars",
        at,
        "not scalars",
    )
}

/// E0201: `correct` of the wrong shapes.
pub(super) fn correct_shapes(z: &Shape, label: &Shape, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0201,
        format!("`correct(z, label)` takes logits or a score and a label, not {z} and {label}"),
        at,
        "wrong shapes",
    )
}

/// E0201: `softmax_xent` of the wrong shapes.
pub(super) fn softmax_xent_shapes(z: &Shape, class: &Shape, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0201,
        format!("`softmax_xent(logits, class)` takes a vector and a class, not {z} and {class}"),
        at,
        "wrong shapes",
    )
}

/// E0202: the class of `softmax_xent` is not a class.
pub(super) fn softmax_class_not_class(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        "the class of `softmax_xent` must be a class label or a whole number",
        at,
        "not a class",
    )
    .with_help("encode the label with `label_encoding = class(k)`")
}

/// E0201: a label with `classes` values against `logits` logits.
pub(super) fn class_count_differs(classes: u64, logits: u64, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0201,
        format!("{classes} classes but {logits} logits"),
        at,
        "class count differs",
    )
}

fn model_usage(model: &str) -> String {
    format!("write `{model}(theta, s.text)` with `theta: params({model})`")
}

/// E0104: a model applied to other than (parameters, token sequence).
pub(super) fn model_arguments(model: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0104,
        format!("model `{model}` takes its parameters and a token sequence"),
        at,
        "wrong arguments",
    )
    .with_help(model_usage(model))
}

/// E0202: a model input that is not `s.text`.
pub(super) fn model_input_not_text(model: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!("the input of model `{model}` must be a sample's token sequence"),
        at,
        "not `s.text`",
    )
    .with_help(model_usage(model))
}

/// E0201: model parameters of the wrong length.
pub(super) fn model_params_shape(model: &str, want: &Shape, got: &Shape, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0201,
        format!("model `{model}` takes {want} parameters, not {got}"),
        at,
        format!("this is {got}"),
    )
    .with_help(model_usage(model))
}

/// E0202: model parameters that read a sample.
pub(super) fn model_params_use_sample(model: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!("the parameters of model `{model}` cannot depend on a sample"),
        at,
        "uses a sample field",
    )
    .with_help("models are evaluated once per minibatch with one parameter vector")
}

// ----- assumptions and the analysis ----------------------------------------

/// E0104: a malformed `assume strongly_convex`.
pub(super) fn invalid_assumption(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0104,
        "`assume strongly_convex` needs a lower variable and `mu = <positive number>`",
        at,
        "invalid assumption",
    )
    .with_help("write `assume strongly_convex(y, mu = 1e-3)`")
}

/// E0104: `assume strongly_convex` stated twice for one variable.
pub(super) fn assumption_twice(at: Span, first: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0104,
        "`assume strongly_convex` is stated twice for one variable",
        at,
        "stated again here",
    )
    .with_secondary(first, "first stated here")
}

/// E0104: an unknown assumption.
pub(super) fn unknown_assumption(name: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0104,
        format!("unknown assumption `{name}`"),
        at,
        "not a known fact",
    )
    .with_help("the known assumption is `strongly_convex(y, mu = …)`")
}

/// E0107: g does not depend on y (`lower` names the first lower variable).
pub(super) fn g_without_y(at: Span, lower: &str) -> Diagnostic {
    Diagnostic::new(
        Code::E0107,
        "the lower objective does not depend on any lower variable",
        at,
        "constant in the lower variables",
    )
    .with_note("y*(x) = argmin_y g(x, y) is undefined when g does not depend on y")
    .with_help(format!("use `{lower}` in the lower objective"))
}

/// W0108: g does not depend on x.
pub(super) fn g_without_x(at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::W0108,
        "the lower objective does not depend on any upper variable",
        at,
        "constant in the upper variables",
    )
    .with_note("y* does not move with x, so the hypergradient is just ∇ₓf")
}

// ----- values known at check time ------------------------------------------

/// E0205: `log`/`sqrt` of a constant outside its domain.
pub(super) fn domain_error(func: &str, v: f64, at: Span) -> Diagnostic {
    let domain = match func {
        "log" => "positive numbers",
        "sqrt" => "numbers >= 0",
        _ => "numbers",
    };
    Diagnostic::new(
        Code::E0205,
        format!("`{func}` of {}: the result is not a number", fmt_num(v)),
        at,
        format!("`{func}` is defined for {domain}"),
    )
}

/// E0205: division by a constant zero.
pub(super) fn division_by_zero(at: Span) -> Diagnostic {
    Diagnostic::new(Code::E0205, "division by zero", at, "this is 0")
}

/// E0205: a fractional power of a negative constant.
pub(super) fn fractional_power_of_negative(b: f64, p: f64, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0205,
        format!(
            "{} ^ {}: a fractional power of a negative number is not a real number",
            fmt_num(b),
            fmt_num(p)
        ),
        at,
        "not a real number",
    )
}

/// E0201: a class index known at check time outside `0..classes`.
pub(super) fn class_out_of_range(v: f64, classes: u64, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0201,
        format!("class {} is out of range for {classes} logits", fmt_num(v)),
        at,
        "out of range",
    )
    .with_note(format!(
        "classes are whole numbers 0 to {}",
        classes.saturating_sub(1)
    ))
}

/// E0202: a `seed` that is not a whole number >= 0.
pub(super) fn bad_seed(v: f64, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0202,
        format!("`seed` must be a whole number >= 0, not {}", fmt_num(v)),
        at,
        "not a seed",
    )
}

/// E0002: a language version this checker does not implement.
pub(super) fn unsupported_version(v: f64, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0002,
        format!("unsupported language version {}", fmt_num(v)),
        at,
        "in this header",
    )
    .with_help("this checker implements `version 1`")
}

/// E0605: nested sample reductions that evaluate their bodies too often.
pub(super) fn too_much_work(level: LevelKind, evals: f64, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0605,
        format!(
            "the {} objective evaluates sample-reduction bodies about {evals:.3e} times per oracle call; the limit is {:.0e}",
            level.name(),
            super::MAX_BODY_EVALS
        ),
        at,
        "nested sample reductions",
    )
    .with_note("each nested `mean over` multiplies the work by its minibatch size")
    .with_help("reduce the batch sizes, or compute the inner average once in a `let`")
}

/// E0204: the parameters together hold too many numbers.
pub(super) fn params_too_large(total: u64, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0204,
        format!(
            "the parameters up to this one hold {total} numbers; the limit for all parameters is {}",
            crate::hir::MAX_PARAM_ELEMENTS
        ),
        at,
        "parameter memory limit reached here",
    )
    .with_help("load large matrices from a csv file with `data`")
}
