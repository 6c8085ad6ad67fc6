//! The `bilevel check` summary of a spec, as text and as JSON, so the
//! runner only prints it.

use std::fmt::Write as _;
use std::path::Path;

use bilevel_core::OracleKind;

use crate::compiled::Program;
use crate::diag::Diagnostic;
use crate::hir::{fmt_num, Init, LabelEncoding, Sampler, SourceKind, Verdict};
use crate::pipeline::{build, build_with};

/// What `bilevel check` prints for a valid spec.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The program the summary describes.
    pub program: Program,
}

/// Checks a spec completely (parse, check, load data from `base`, verify
/// deferred facts, lower) and returns its summary, or every diagnostic.
pub fn summarize(src: &str, base: &Path) -> Result<Summary, Vec<Diagnostic>> {
    build(src, base).map(|program| Summary { program })
}

/// [`summarize`] with a registry of model backends for `model`
/// declarations.
pub fn summarize_with(
    src: &str,
    base: &Path,
    registry: &dyn crate::backend::ModelRegistry,
) -> Result<Summary, Vec<Diagnostic>> {
    build_with(src, base, Some(registry)).map(|program| Summary { program })
}

fn init_text(i: &Init) -> String {
    match i {
        Init::Zeros => "zeros".into(),
        Init::Ones => "ones".into(),
        Init::Eye => "eye".into(),
        Init::Normal { std, seed } => format!("normal(std = {}, seed = {seed})", fmt_num(*std)),
        Init::Uniform { low, high, seed } => {
            format!(
                "uniform(low = {}, high = {}, seed = {seed})",
                fmt_num(*low),
                fmt_num(*high)
            )
        }
        Init::Glorot { seed } => format!("glorot(seed = {seed})"),
        Init::Spd { kappa, seed } => format!("spd(kappa = {}, seed = {seed})", fmt_num(*kappa)),
        Init::Expr(_) => "constant expression".into(),
    }
}

/// Rounds to 6 significant digits so that summaries are stable across
/// platforms.
fn sig6(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return fmt_num(v);
    }
    let s = format!("{v:.6e}");
    let parsed: f64 = s.parse().unwrap_or(v);
    fmt_num(parsed)
}

impl Summary {
    fn verdict_text(&self) -> (String, String) {
        let p = &self.program;
        let a = &p.spec.analysis;
        let lower = p
            .spec
            .lower
            .iter()
            .map(|v| v.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let verdict = match a.verdict {
            Verdict::StronglyConvex => format!("strongly convex in {lower}"),
            Verdict::StronglyConvexDependsOnX => {
                format!("strongly convex in {lower}, modulus depends on x")
            }
            Verdict::Convex => format!("convex in {lower}, not provably strongly convex"),
            Verdict::Unknown => format!("not provably convex in {lower}"),
            Verdict::Assumed => format!("strongly convex in {lower} (assumed)"),
        };
        let mu = match (a.verdict.clone(), p.mu) {
            (Verdict::Assumed, Some(m)) => format!("mu = {} (assumed)", sig6(m)),
            (_, Some(m)) => format!("mu >= {} = {}", a.mu_text, sig6(m)),
            (Verdict::StronglyConvexDependsOnX, None) => format!("mu >= {}", a.mu_text),
            _ => "mu = 0".into(),
        };
        (verdict, mu)
    }

    fn required(&self) -> Vec<OracleKind> {
        if let Some(a) = &self.program.spec.algorithm {
            a.info.oracles.to_vec()
        } else {
            let mut v: Vec<OracleKind> = bilevel_core::registry::SOLVERS
                .iter()
                .flat_map(|s| s.oracles.iter().copied())
                .collect();
            v.sort();
            v.dedup();
            v
        }
    }

    fn data_line(&self, i: usize) -> String {
        let p = &self.program;
        let d = &p.spec.data[i];
        let mut s = match (&d.kind, p.loaded.tables.get(i).and_then(Option::as_ref)) {
            (SourceKind::Table { path, delimiter }, Some(t)) => format!(
                "{} {path}  {} rows  {} features",
                if *delimiter == b',' { "csv" } else { "tsv" },
                t.rows,
                t.features
            ),
            (SourceKind::SynthNormal { dim, std, mean }, _) => {
                format!(
                    "synth.normal  dim {dim}  mean {}  std {}",
                    fmt_num(*mean),
                    fmt_num(*std)
                )
            }
            (SourceKind::SynthUniform { dim, low, high }, _) => {
                format!(
                    "synth.uniform  dim {dim}  [{}, {})",
                    fmt_num(*low),
                    fmt_num(*high)
                )
            }
            (SourceKind::Table { path, .. }, None) => format!("table {path} (not loaded)"),
        };
        let _ = write!(s, "  batch {}", d.batch);
        if matches!(d.kind, SourceKind::Table { .. }) {
            let _ = write!(
                s,
                "  {}",
                match d.sampler {
                    Sampler::Shuffle => "shuffle",
                    Sampler::Replace => "replace",
                    Sampler::Sequential => "sequential",
                }
            );
            if let Some((l, _)) = &d.label {
                let enc = match d.encoding {
                    LabelEncoding::Raw => "raw".to_string(),
                    LabelEncoding::Pm1 => "pm1".to_string(),
                    LabelEncoding::Class(k) => format!("class({k})"),
                };
                let _ = write!(s, "  label {l} ({enc})");
            }
            if let Some((w, _)) = &d.weight {
                let _ = write!(s, "  weight {w}");
            }
            if let Some(t) = &d.text {
                let _ = write!(s, "  text {} (max {} tokens)", t.column, t.max_len);
            }
            if let Some(t) = p.loaded.tables.get(i).and_then(Option::as_ref) {
                if !t.offsets.is_empty() {
                    let _ = write!(s, "  vocab {}", t.vocab.len() + 1);
                }
                if let Some((g, _)) = &d.group {
                    let _ = write!(s, "  {} groups of {g}", t.group_names.len());
                }
                if let Some(n) = &d.label_noise {
                    let _ = write!(
                        s,
                        "  label noise {} ({} changed)",
                        fmt_num(n.p),
                        t.corrupted.len()
                    );
                }
            }
            if let Some(sp) = &d.split {
                let _ = write!(
                    s,
                    "  split [{}, {}) of seed {}",
                    fmt_num(sp.from),
                    fmt_num(sp.to),
                    sp.seed
                );
            }
        }
        let _ = write!(s, "  seed {}", d.seed);
        s
    }

    /// The summary as text (the golden format of `bilevel check`).
    pub fn text(&self) -> String {
        let p = &self.program;
        let s = &p.spec;
        let mut out = String::new();
        let version = s
            .version
            .map_or(String::new(), |v| format!(" (language {})", fmt_num(v)));
        let _ = writeln!(out, "problem   {}{version}", s.name);
        for (label, vars) in [("upper", &s.upper), ("lower", &s.lower)] {
            for (k, v) in vars.iter().enumerate() {
                let head = if k == 0 { label } else { "" };
                let _ = writeln!(
                    out,
                    "{head:<9} {:<8} : {:<18} init {}",
                    v.name,
                    v.shape.to_string(),
                    init_text(&v.init)
                );
            }
        }
        let _ = writeln!(out, "sizes     dim x = {}, dim y = {}", p.dim_x, p.dim_y);
        for (k, (name, d, origin)) in s.dims.iter().enumerate() {
            let head = if k == 0 { "dims" } else { "" };
            let from = origin
                .as_ref()
                .map_or(String::new(), |o| format!("  (from {o})"));
            let _ = writeln!(out, "{head:<9} {name} = {d}{from}");
        }
        for (k, prm) in s.params.iter().enumerate() {
            let head = if k == 0 { "params" } else { "" };
            let _ = writeln!(
                out,
                "{head:<9} {:<8} : {:<18} {}",
                prm.name,
                prm.shape.to_string(),
                init_text(&prm.value)
            );
        }
        for i in 0..s.data.len() {
            let head = if i == 0 { "data" } else { "" };
            let _ = writeln!(out, "{head:<9} {:<8} {}", s.data[i].name, self.data_line(i));
        }
        for (k, (m, b)) in s.models.iter().zip(&p.models.0).enumerate() {
            let head = if k == 0 { "models" } else { "" };
            let _ = writeln!(
                out,
                "{head:<9} {:<8} {}  {} parameters  {} outputs  vocab {}",
                m.name,
                m.kind,
                b.num_params(),
                b.num_outputs(),
                b.vocab_size()
            );
        }
        let (verdict, mu) = self.verdict_text();
        let _ = writeln!(out, "analysis  g {verdict}");
        let _ = writeln!(out, "          {mu}");
        for (name, l) in &p.lambda_min {
            if *l == f64::NEG_INFINITY {
                let _ = writeln!(
                    out,
                    "          λmin({name}) not verified (order over {}, or over the work budget)",
                    crate::convexity::matrix::MAX_ORDER
                );
            } else {
                let _ = writeln!(out, "          λmin({name}) = {}", sig6(*l));
            }
        }
        let _ = writeln!(
            out,
            "          smooth: {}",
            if s.analysis.smooth { "C2" } else { "not C2" }
        );
        let req: Vec<&str> = self.required().iter().map(|o| o.name()).collect();
        let _ = writeln!(out, "oracles   {}", req.join("  "));
        if s.algorithms.is_empty() {
            let _ = writeln!(out, "algorithm (none: chosen at run time)");
        }
        for (k, a) in s.algorithms.iter().enumerate() {
            let settings: Vec<String> =
                a.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let head = if k == 0 { "algorithm" } else { "" };
            let tail = if k == 0 && s.algorithms.len() > 1 {
                "  (default)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "{head:<9} {} {}{tail}",
                a.info.name,
                settings.join(" ")
            );
        }
        let r = &s.run;
        let mut run = Vec::new();
        for (k, v) in [
            ("iterations", r.iterations),
            ("epochs", r.epochs),
            ("oracle_calls", r.oracle_calls),
            ("seed", r.seed),
            ("eval_every", r.eval_every),
            ("threads", r.threads),
        ] {
            if let Some(v) = v {
                run.push(format!("{k}={v}"));
            }
        }
        if let Some(l) = &r.log {
            run.push(format!("log={l:?}"));
        }
        if !r.metrics.is_empty() {
            run.push(format!("metrics=[{}]", r.metrics.join(", ")));
        }
        let _ = writeln!(out, "run       {}", run.join(" "));
        for (k, e) in s.expects.iter().enumerate() {
            let head = if k == 0 { "expect" } else { "" };
            let cmp = match e.cmp {
                crate::ast::Cmp::Approx => "~=",
                crate::ast::Cmp::Ge => ">=",
                crate::ast::Cmp::Le => "<=",
            };
            let vals: Vec<String> = e.values.iter().map(|v| fmt_num(*v)).collect();
            let tol = if e.tol > 0.0 {
                format!(" tol {}", fmt_num(e.tol))
            } else {
                String::new()
            };
            let _ = writeln!(out, "{head:<9} {} {cmp} [{}]{tol}", e.text, vals.join(", "));
        }
        for w in &p.warnings {
            let _ = writeln!(
                out,
                "{}[{}]: {}",
                w.severity().name(),
                w.code.as_str(),
                w.message
            );
        }
        out
    }

    /// The summary as JSON, for tools.
    pub fn json(&self) -> serde_json::Value {
        let p = &self.program;
        let s = &p.spec;
        let var = |v: &crate::hir::VarDef| serde_json::json!({"name": v.name, "type": v.shape.to_string(), "len": v.shape.len(), "init": init_text(&v.init)});
        let (verdict, mu_text) = self.verdict_text();
        serde_json::json!({
            "problem": s.name,
            "version": s.version,
            "upper": s.upper.iter().map(var).collect::<Vec<_>>(),
            "lower": s.lower.iter().map(var).collect::<Vec<_>>(),
            "dim_x": p.dim_x,
            "dim_y": p.dim_y,
            "dims": s.dims.iter().map(|(n, d, o)| serde_json::json!({"name": n, "value": d.known(), "from": o})).collect::<Vec<_>>(),
            "data": (0..s.data.len()).map(|i| {
                let d = &s.data[i];
                let t = p.loaded.tables.get(i).and_then(Option::as_ref);
                serde_json::json!({
                    "name": d.name,
                    "summary": self.data_line(i),
                    "rows": t.map(|t| t.rows),
                    "features": t.map(|t| t.features),
                    "batch": d.batch,
                    "seed": d.seed,
                })
            }).collect::<Vec<_>>(),
            "models": s.models.iter().zip(&p.models.0).map(|(m, b)| serde_json::json!({
                "name": m.name,
                "kind": m.kind,
                "params": b.num_params(),
                "outputs": b.num_outputs(),
                "vocab": b.vocab_size(),
            })).collect::<Vec<_>>(),
            "analysis": {
                "verdict": verdict,
                "mu": p.mu,
                "mu_text": mu_text,
                "smooth": s.analysis.smooth,
                "lambda_min": p.lambda_min.iter().map(|(n, l)| serde_json::json!({"param": n, "value": l})).collect::<Vec<_>>(),
            },
            "oracles": self.required().iter().map(|o| o.name()).collect::<Vec<_>>(),
            "algorithm": s.algorithm.as_ref().map(|a| serde_json::json!({
                "name": a.info.name,
                "settings": a.settings.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.to_string()))).collect::<serde_json::Map<_, _>>(),
            })),
            "algorithms": s.algorithms.iter().map(|a| serde_json::json!({
                "name": a.info.name,
                "settings": a.settings.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.to_string()))).collect::<serde_json::Map<_, _>>(),
            })).collect::<Vec<_>>(),
            "run": {
                "iterations": s.run.iterations, "epochs": s.run.epochs, "oracle_calls": s.run.oracle_calls,
                "seed": s.run.seed, "eval_every": s.run.eval_every, "log": s.run.log, "threads": s.run.threads,
                "metrics": s.run.metrics,
            },
            "expect": s.expects.iter().map(|e| serde_json::json!({"target": e.text, "values": e.values, "tol": e.tol})).collect::<Vec<_>>(),
            "warnings": p.warnings.iter().map(|w| serde_json::json!({"code": w.code.as_str(), "message": w.message})).collect::<Vec<_>>(),
        })
    }
}
