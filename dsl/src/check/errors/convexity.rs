//! Diagnostics of the convexity analysis (`crate::convexity`): the
//! certificate's verdicts and the facts it could not verify (one
//! constructor each, as in the parent module).

use crate::ast::Span;
use crate::diag::{Code, Diagnostic};
use crate::hir::fmt_num;

/// E0305: a coefficient of g overflows f64.
pub(crate) fn coefficient_overflow(what: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0305,
        format!("a coefficient of the lower objective is not finite: {what}"),
        at,
        "overflows f64",
    )
    .with_note("a certificate built on an infinite or NaN coefficient would be meaningless")
    .with_help("rescale the objective so that its constants stay within f64")
}

/// W0304: g has a term that is not twice differentiable in y.
pub(crate) fn not_twice_differentiable(g: Span) -> Diagnostic {
    Diagnostic::new(
        Code::W0304,
        "the lower objective has a term that is not twice differentiable",
        g,
        "contains `abs` or `norm2` of a lower variable",
    )
    .with_note("Hessian-vector products are then defined only almost everywhere")
    .with_help("use `norm2sq` or `softplus` for a smooth alternative")
}

/// E0306: `assume strongly_convex(name, mu = m)` where the analysis proves
/// g affine or concave (`what`) in `name`.
pub(crate) fn assumption_contradicts(
    name: &str,
    what: &str,
    mu: f64,
    assumption: Span,
    g: Span,
) -> Diagnostic {
    Diagnostic::new(
        Code::E0306,
        format!("the assumption contradicts the analysis: the lower objective is {what} in `{name}`"),
        assumption,
        format!("assumes mu = {} > 0", fmt_num(mu)),
    )
    .with_secondary(g, format!("proven {what} in `{name}`"))
    .with_note("a function that is affine or concave in a direction has no positive modulus of strong convexity in it")
}

/// E0308: `assume strongly_convex(name, mu = m)` where the analysis proves
/// ∂²g/∂c² ≤ `bound` < m at coordinate `coord` of y for every x and y;
/// `at_load` when the bound uses stored parameter values.
pub(crate) fn assumption_exceeds_curvature(
    name: &str,
    coord: &str,
    bound: f64,
    mu: f64,
    (assumption, g): (Span, Span),
    at_load: bool,
) -> Diagnostic {
    let b = if bound.abs() >= 1e-3 && bound.abs() < 1e9 {
        let t = format!("{bound:.6}");
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{bound:.3e}")
    };
    Diagnostic::new(
        Code::E0308,
        format!(
            "the assumption contradicts the analysis: the curvature of the lower objective along `{coord}` is at most {b} < mu = {}",
            fmt_num(mu)
        ),
        assumption,
        format!("assumes mu = {}", fmt_num(mu)),
    )
    .with_secondary(g, format!("∂²g/∂{coord}² ≤ {b} for every x and every `{name}`"))
    .with_note(format!(
        "λmin(∇²g) ≤ eᵀ∇²g e for the unit vector e of `{coord}`, so g is not {}-strongly convex in `{name}` anywhere",
        fmt_num(mu)
    ))
    .with_note(if at_load {
        "the bound is exact up to rounding (margin included) and uses the stored values of the matrices in `quad`"
    } else {
        "the bound is exact up to rounding (margin included): it comes from terms whose curvature is known (squares, norm2sq, sq_loss, quad of a selection) and their signs"
    })
    .with_help(if bound > 0.0 {
        format!("a valid mu is at most {b} (and at most λmin, which may be smaller): assume less, or add curvature along `{coord}`")
    } else {
        format!("no positive mu holds along `{coord}`: remove the assumption, or add curvature along it")
    })
}

/// N0307: strong convexity in `name` is assumed; `proven` is the modulus
/// text the analysis proves when it proves g convex.
pub(crate) fn assumed_not_proven(
    name: &str,
    mu: f64,
    assumption: Span,
    proven: Option<&str>,
) -> Diagnostic {
    let d = Diagnostic::new(
        Code::N0307,
        format!(
            "strong convexity in `{name}` is assumed, not proven: mu = {}",
            fmt_num(mu)
        ),
        assumption,
        "taken from `assume strongly_convex`",
    );
    match proven {
        Some(text) => d.with_note(format!(
            "the analysis proves g convex with mu >= {text}; the run uses the assumed value"
        )),
        None => d.with_note(
            "the analysis cannot prove g convex; the solvers' guarantees rest on this assumption",
        ),
    }
}

/// E0302: the analysis cannot prove g convex in the lower variable.
pub(crate) fn not_provably_convex(lower: &str, g: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0302,
        format!("the lower objective is not provably convex in `{lower}`"),
        g,
        "curvature unknown",
    )
    .with_note("the analysis is conservative (like CVXPY's DCP rules); this objective may still be convex")
    .with_help(format!("if g(x, ·) is strongly convex where it matters, add `assume strongly_convex({lower}, mu = …)`"))
}

/// W0301: g is convex but some coordinates get no curvature (`why`).
pub(crate) fn not_strongly_convex(lower: &str, why: String, g: Span) -> Diagnostic {
    Diagnostic::new(
        Code::W0301,
        format!("the lower objective is convex in `{lower}` but not provably strongly convex"),
        g,
        "no strongly convex term found",
    )
    .with_note(why)
    .with_note("the solvers assume g(x, ·) is μ-strongly convex; without it y*(x) may not be unique")
    .with_help(format!("add a ridge term such as `+ 0.5 * 1e-3 * norm2sq({lower})`, or state `assume strongly_convex({lower}, mu = …)`"))
}

/// N0303: the modulus depends on x (`text` is its formula).
pub(crate) fn mu_depends_on_x(text: &str, g: Span) -> Diagnostic {
    Diagnostic::new(
        Code::N0303,
        format!("the modulus of strong convexity depends on the upper variable: mu >= {text}"),
        g,
        "μ varies with x",
    )
    .with_note("no uniform bound: step sizes tuned for one x may be too large for another")
}

/// E0505: a matrix used in `quad` is not positive semidefinite; `estimate`
/// is its λmin when known, else the bound is `-tau`.
pub(crate) fn matrix_not_psd(
    name: &str,
    used: Span,
    declared: Span,
    estimate: Option<f64>,
    tau: f64,
) -> Diagnostic {
    Diagnostic::new(
        Code::E0505,
        format!("`{name}` is not positive semidefinite, so the lower level is not convex"),
        used,
        match estimate {
            Some(e) => format!("λmin({name}) ≈ {e:.6} < 0"),
            None => format!("λmin({name}) < -{tau:.1e}"),
        },
    )
    .with_secondary(declared, "declared here")
    .with_note("convexity of `quad(P, y)` relies on P ⪰ 0; a Cholesky factorisation of P + τI, τ far above its rounding error, fails")
}

/// W0301: the certified modulus with the stored matrices (`names`) is not
/// positive; `unverified` are those the work budget left unverified.
pub(crate) fn modulus_not_positive(g: Span, names: &[&str], unverified: &[&str]) -> Diagnostic {
    let mut d = Diagnostic::new(
        Code::W0301,
        "the lower objective is convex but not provably strongly convex",
        g,
        "its certified modulus is not positive",
    );
    if !names.is_empty() {
        d = d.with_note(format!(
            "λmin of {} could not be verified positive in the stored values",
            names.join(", ")
        ));
    }
    if !unverified.is_empty() {
        d = d.with_note(format!(
            "verifying {} would take more than {:e} multiply-adds (Cholesky factorisations of their order), so it was not done",
            unverified.join(", "),
            crate::convexity::matrix::MAX_VERIFY_WORK
        ));
    }
    d
}
