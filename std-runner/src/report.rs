//! What `run`, `compare` and `algorithms` print: text for people (with the
//! final x of small problems and each expectation's distance) and JSON for
//! tools (`--format json`), carrying the same facts.
//!
//! JSON has no NaN or infinity: non-finite numbers are the strings `"nan"`,
//! `"inf"` and `"-inf"`, as in the run folder's files.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Result};
use bilevel_core::registry::{self, ParamKind, ParamValue, SolverInfo};
use serde_json::{json, Value};

use crate::aggregate::TableRow;
use crate::spec::{CompareOutcome, RunOutcome};

/// Problems with at most this many upper-level entries get their final x
/// printed on the console.
pub const SMALL_X: usize = 10;

/// A number for JSON: finite values as numbers, others as strings.
pub fn num(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else if v.is_nan() {
        json!("nan")
    } else if v > 0.0 {
        json!("inf")
    } else {
        json!("-inf")
    }
}

fn nums(v: &[f64]) -> Value {
    Value::Array(v.iter().map(|&x| num(x)).collect())
}

/// The largest entry-wise distance |actual − expected| of an expectation
/// (what `~=` compares with its tolerance); NaN when the lengths differ or
/// a value is not finite.
pub fn distance(expected: &[f64], actual: &[f64]) -> f64 {
    if expected.len() != actual.len() {
        return f64::NAN;
    }
    expected
        .iter()
        .zip(actual)
        .map(|(w, a)| (a - w).abs())
        .fold(0.0, |m, d| {
            if d.is_nan() || m.is_nan() {
                f64::NAN
            } else {
                m.max(d)
            }
        })
}

/// `[a, b, …]` with six significant digits.
fn short(v: &[f64]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:.6e}")).collect();
    format!("[{}]", parts.join(", "))
}

impl RunOutcome {
    /// What `bilevel run` prints: termination, final metrics, the final x
    /// (problems with at most [`SMALL_X`] upper entries), each expectation
    /// with expected and actual values and their distance, the run folder.
    pub fn report(&self, spec: &Path) -> String {
        let s = &self.summary;
        let mut t = format!(
            "{} on {}: {} after {} iterations, {} oracle calls, {:.2}s\n",
            s.solver,
            spec.display(),
            s.termination,
            s.iters,
            s.oracle_calls,
            s.wall_s
        );
        for (k, v) in &s.final_metrics {
            let _ = writeln!(t, "  {k} = {v:.6e}");
        }
        if !s.x.is_empty() && s.x.len() <= SMALL_X {
            let _ = writeln!(t, "  final x = {}", short(&s.x));
        }
        for e in &self.expectations {
            let verdict = if e.ok { "ok" } else { "VIOLATED" };
            let _ = writeln!(
                t,
                "  expect {}: {verdict} (expected {:?}, got {:?}; max |got - expected| = {:.3e})",
                e.text,
                e.expected,
                e.actual,
                distance(&e.expected, &e.actual)
            );
        }
        if let Some(b) = &s.breakdown {
            let _ = writeln!(t, "  breakdown: {b}");
        }
        if let Some(log) = &self.log {
            let _ = writeln!(
                t,
                "trace copied to {} (the spec's `run {{ log }}`)",
                log.display()
            );
        }
        let _ = writeln!(t, "run folder: {}", self.out.display());
        t
    }

    /// `bilevel run --format json`: the summary, the expectations with
    /// their distances, the run folder and the trace copy, as one object.
    pub fn json(&self, spec: &Path) -> Value {
        let s = &self.summary;
        let metrics: serde_json::Map<String, Value> = s
            .final_metrics
            .iter()
            .map(|(k, &v)| (k.clone(), num(v)))
            .collect();
        let expectations: Vec<Value> = self
            .expectations
            .iter()
            .map(|e| {
                json!({
                    "expect": e.text,
                    "ok": e.ok,
                    "expected": nums(&e.expected),
                    "actual": nums(&e.actual),
                    "max_abs_diff": num(distance(&e.expected, &e.actual)),
                })
            })
            .collect();
        json!({
            "spec": spec.display().to_string(),
            "solver": s.solver,
            "seed": s.seed,
            "termination": s.termination,
            "iters": s.iters,
            "oracle_calls": s.oracle_calls,
            "calls": s.calls,
            "wall_s": s.wall_s,
            "final_metrics": metrics,
            "x": nums(&s.x),
            "expectations": expectations,
            "expectations_hold": self.expectations_hold(),
            "breakdown": s.breakdown,
            "log": self.log.as_ref().map(|p| p.display().to_string()),
            "run_folder": self.out.display().to_string(),
        })
    }
}

fn mean_std(v: (f64, f64)) -> Value {
    json!({ "mean": num(v.0), "std": num(v.1) })
}

fn row_json(r: &TableRow) -> Value {
    let metrics: serde_json::Map<String, Value> = r
        .metrics
        .iter()
        .map(|(k, &v)| (k.clone(), mean_std(v)))
        .collect();
    json!({
        "solver": r.solver,
        "runs": r.runs,
        "metrics": metrics,
        "oracle_calls": mean_std(r.oracle_calls),
        "wall_s": mean_std(r.wall_s),
        "terminations": r.terminations,
    })
}

impl CompareOutcome {
    /// `bilevel compare --format json`: one object per table row (mean and
    /// std of each final metric, calls, time, terminations), the failed
    /// jobs with their errors, and the comparison folder.
    pub fn json(&self) -> Value {
        let failures: Vec<Value> = self
            .failures
            .iter()
            .map(|(job, err)| {
                json!({
                    "solver": job.solver,
                    "seed": job.seed,
                    "run_folder": job.out.display().to_string(),
                    "error": err,
                })
            })
            .collect();
        json!({
            "rows": self.rows.iter().map(row_json).collect::<Vec<_>>(),
            "failures": failures,
            "violated": self.violated,
            "breakdowns": self.breakdowns,
            "exit_code": self.exit_code(),
            "out": self.out.display().to_string(),
        })
    }
}

fn param_value(v: ParamValue<'_>) -> Value {
    match v {
        ParamValue::Real(r) => num(r),
        ParamValue::Int(i) => json!(i),
        ParamValue::Bool(b) => json!(b),
        ParamValue::Str(s) => json!(s),
    }
}

/// One solver of the registry as JSON: names, reference, oracles and every
/// hyperparameter with its type (and choices), default, range and bounds.
pub fn solver_json(s: &SolverInfo) -> Value {
    let params: Vec<Value> = s
        .params
        .iter()
        .map(|p| {
            let mut v = json!({
                "name": p.name,
                "type": p.kind.name(),
                "default": param_value(p.default),
                "range": p.range,
                "doc": p.doc,
            });
            match p.kind {
                ParamKind::Choice(c) => v["choices"] = json!(c),
                ParamKind::Real | ParamKind::Int => {
                    v["min"] = num(p.min);
                    v["max"] = num(p.max);
                    v["min_exclusive"] = json!(p.min_exclusive);
                    v["max_exclusive"] = json!(p.max_exclusive);
                }
                ParamKind::Bool => {}
            }
            v
        })
        .collect();
    json!({
        "name": s.name,
        "title": s.title,
        "summary": s.summary,
        "reference": s.reference,
        "oracles": s.oracles.iter().map(|o| o.name()).collect::<Vec<_>>(),
        "hyperparameters": params,
    })
}

/// The solvers `names` name (registry spellings: `bo_rep` is `bo-rep`), in
/// the order given, each once; every solver when `names` is empty. An
/// unknown name is an error that lists the available ones.
pub fn select_solvers(names: &[String]) -> Result<Vec<&'static SolverInfo>> {
    if names.is_empty() {
        return Ok(registry::SOLVERS.to_vec());
    }
    let mut out: Vec<&'static SolverInfo> = Vec::new();
    for n in names {
        let Some(s) = registry::find(n) else {
            let all: Vec<&str> = registry::SOLVERS.iter().map(|s| s.name).collect();
            bail!("unknown algorithm `{n}`; available: {}", all.join(", "));
        };
        if !out.iter().any(|o| o.name == s.name) {
            out.push(s);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_is_the_largest_entry_wise_gap() {
        assert!((distance(&[1.0, 2.0], &[1.5, 1.0]) - 1.0).abs() < 1e-15);
        assert!(distance(&[1.0], &[1.0, 2.0]).is_nan());
        assert!(distance(&[1.0, 2.0], &[f64::NAN, 2.0]).is_nan());
        assert!(distance(&[1.0, 2.0], &[2.0, f64::NAN]).is_nan());
        assert!(distance(&[], &[]).abs() < f64::MIN_POSITIVE);
    }

    #[test]
    fn every_solver_round_trips_through_json() {
        for s in registry::SOLVERS {
            let v = solver_json(s);
            let text = serde_json::to_string(&v).unwrap();
            let back: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(back["name"], s.name);
            assert_eq!(
                back["hyperparameters"].as_array().map(Vec::len),
                Some(s.params.len())
            );
        }
        let e = select_solvers(&["newton".into()]).unwrap_err().to_string();
        assert!(
            e.contains("unknown algorithm `newton`") && e.contains("bo-rep"),
            "{e}"
        );
        let two = select_solvers(&["SLIP".into(), "bo_rep".into(), "slip".into()]).unwrap();
        assert_eq!(
            two.iter().map(|s| s.name).collect::<Vec<_>>(),
            ["slip", "bo-rep"]
        );
    }
}
