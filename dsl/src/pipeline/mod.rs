//! The one place that sequences the stages of the compiler, as a short list
//! of small passes (pest_meta style):
//!
//! 1. [`parse`](crate::parser::parse): source → AST;
//! 2. [`check`](crate::check::check) with symbolic data dims → [`Spec`];
//! 3. [`load`](crate::data::load) the data the spec names (from its folder);
//! 4. [`models`]: build the model backends and their size facts;
//! 5. `check` again, with the data's sizes bound;
//! 6. [`params`]: evaluate the parameters;
//! 7. `lower` f and g to tapes and bound their workspace (cheap, so
//!    before the next stage);
//! 8. `facts`: complete the convexity certificate with the stored values,
//!    within a work budget → [`Program`].
//!
//! [`Compiled`](crate::compiled::Compiled) then owns the program and its
//! workspaces. Every other module is one stage and calls no later one.

mod errors;
mod models;
mod params;

use std::path::Path;

use crate::backend::ModelRegistry;
use crate::compiled::Program;
use crate::data;
use crate::diag::Diagnostic;
use crate::hir::Spec;
use crate::lower::{self, Bound};
use crate::tape::{Op, Tape};

/// Most `f64` entries the workspaces of f and g may hold together (E0204).
pub const MAX_TAPE_ELEMENTS: usize = 1 << 25;

/// What a stage returns: its output, or every diagnostic that stops the
/// pipeline.
type Stage<T> = Result<T, Vec<Diagnostic>>;

/// Parses and checks `src` without loading data (symbolic data dims): what
/// `bilevel check` can say about a file alone.
///
/// # Errors
/// Every error (and warning) of parsing or checking.
pub fn check_source(src: &str) -> Stage<Spec> {
    let file = crate::parser::parse(src)?;
    crate::check::check(&file, src, None)
}

/// Runs every stage: parse, check, load data from `base` (the spec's
/// folder), check again with the data's sizes, evaluate parameters, verify
/// deferred facts, lower. Specs with `model` declarations need
/// [`build_with`] and a registry.
///
/// # Errors
/// The diagnostics of the first stage that fails.
pub fn build(src: &str, base: &Path) -> Stage<Program> {
    build_with(src, base, None)
}

/// [`build`] with a registry of model backends for `model` declarations.
///
/// # Errors
/// The diagnostics of the first stage that fails.
pub fn build_with(src: &str, base: &Path, registry: Option<&dyn ModelRegistry>) -> Stage<Program> {
    let file = crate::parser::parse(src)?;
    let symbolic = crate::check::check(&file, src, None)?;
    let (mut loaded, load_warnings) = data::load(&symbolic, base)?;
    let models = models::build(&symbolic, &mut loaded, base, registry)?;
    let mut spec = crate::check::check(&file, src, Some(&loaded.facts))?;
    let mut warnings = spec.warnings.clone();
    warnings.extend(load_warnings);
    let params = params::evaluate(&spec)?;
    // Lowering first: its size bound is cheap, the facts' verification not.
    let (f, g, dim_x, dim_y) = lower(&spec, &params)?;
    let (mu, lambda_min) = facts(&mut spec, &params, &mut warnings)?;
    crate::diag::sort(&mut warnings);
    Ok(Program {
        spec,
        loaded,
        params,
        mu,
        lambda_min,
        warnings,
        f,
        g,
        dim_x,
        dim_y,
        models,
    })
}

/// μ and the verified λ_min bound of each parameter used in `quad`.
type Facts = (Option<f64>, Vec<(String, f64)>);

/// Completes the certificate with the stored parameters
/// ([`crate::convexity::evaluate`]); a λ_min that cannot be verified positive
/// downgrades the verdict (W0301 in `warnings`).
fn facts(spec: &mut Spec, params: &[Vec<f64>], warnings: &mut Vec<Diagnostic>) -> Stage<Facts> {
    let a = &spec.analysis;
    let e = crate::convexity::evaluate(&a.certificate, &a.verdict, a.span, &spec.params, params)?;
    spec.analysis.verdict = e.verdict;
    warnings.extend(e.warnings);
    Ok((e.mu, e.lambda_min))
}

/// The tapes of f and g, the lengths of x and y; refused when their
/// workspaces would exceed [`MAX_TAPE_ELEMENTS`].
fn lower(spec: &Spec, params: &[Vec<f64>]) -> Stage<(Tape, Tape, usize, usize)> {
    let symmetric = params::symmetric(spec, params);
    let bound = Bound {
        params,
        symmetric: &symmetric,
    };
    let (f, g) = lower::lower(spec, &bound);
    let (_, _, dim_x, dim_y) = lower::layout(spec);
    let need = tape_elements(&f).saturating_add(tape_elements(&g));
    if need > MAX_TAPE_ELEMENTS {
        return Err(vec![errors::workspace_too_large(need, MAX_TAPE_ELEMENTS)]);
    }
    Ok((f, g, dim_x, dim_y))
}

/// Entries of every buffer of a tape's workspace (value, tangent, adjoint,
/// adjoint tangent and scratch), sub-tapes included.
fn tape_elements(t: &Tape) -> usize {
    let mut total = 0usize;
    let mut stack = vec![t];
    while let Some(t) = stack.pop() {
        for n in &t.nodes {
            total = total.saturating_add(n.rows.saturating_mul(n.cols).saturating_mul(5));
            if let Op::Reduce { body, .. } = &n.op {
                stack.push(body);
            }
        }
    }
    total
}
