//! `bilevel best DIR --by METRIC`: each solver's best configuration over
//! the run folders below DIR, by the median over seeds of a named metric
//! (final, or at a given epoch, oracle-call count or iteration), and
//! `--write-spec` to write the winners back as a spec's `algorithm` blocks.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::aggregate::RunTrace;
use crate::output::TraceRecord;
use crate::sweepreport::{collect, quantile};

/// Where along the runs the metric is read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum At {
    /// The last evaluation at or before this many epochs.
    Epoch(f64),
    /// The last evaluation at or before this many oracle calls.
    Calls(f64),
    /// The last evaluation at or before this iteration.
    Iterations(f64),
}

impl At {
    /// Parses `epoch|calls|iterations` and a value.
    pub fn parse(kind: &str, value: f64) -> Result<At> {
        if !value.is_finite() || value < 0.0 {
            bail!("--at {kind} {value}: the value must be a finite number ≥ 0");
        }
        Ok(match kind {
            "epoch" | "epochs" => At::Epoch(value),
            "calls" | "oracle_calls" => At::Calls(value),
            "iterations" | "iters" => At::Iterations(value),
            _ => bail!("--at {kind}: expected epoch, calls or iterations"),
        })
    }
    fn read(self, t: &TraceRecord) -> f64 {
        match self {
            At::Epoch(_) => t.epoch,
            At::Calls(_) => t.oracle_calls as f64,
            At::Iterations(_) => t.iter as f64,
        }
    }
    fn value(self) -> f64 {
        match self {
            At::Epoch(v) | At::Calls(v) | At::Iterations(v) => v,
        }
    }
}

/// Options of `bilevel best`.
#[derive(Debug, Clone)]
pub struct BestOptions {
    /// The metric ranked by.
    pub by: String,
    /// Where it is read; `None`: each finished run's last evaluation.
    pub at: Option<At>,
    /// `Some(true)`: higher is better; `Some(false)`: lower; `None`: from the
    /// metric's name (`loss`, `error` → lower; `accuracy` → higher).
    pub maximize: Option<bool>,
    /// Allow a metric whose name says `test`.
    pub allow_test: bool,
}

/// Whether a metric's name marks it as a test metric (`test` as a word of
/// the name, split at `_`, `-`, `.`).
pub fn is_test_metric(name: &str) -> bool {
    name.split(['_', '-', '.'])
        .any(|w| w.eq_ignore_ascii_case("test"))
}

fn direction(o: &BestOptions) -> Result<bool> {
    if let Some(m) = o.maximize {
        return Ok(m);
    }
    let words: Vec<String> =
        o.by.split(['_', '-', '.'])
            .map(str::to_ascii_lowercase)
            .collect();
    let has = |ws: &[&str]| words.iter().any(|w| ws.contains(&w.as_str()));
    match (
        has(&["loss", "error", "err", "dist", "gap", "regret", "objective"]),
        has(&["accuracy", "acc", "auc", "score", "reward"]),
    ) {
        (true, false) => Ok(false),
        (false, true) => Ok(true),
        _ => bail!(
            "--by {}: cannot tell from the name whether lower or higher is better; give --min or --max",
            o.by
        ),
    }
}

/// One configuration of one solver on one spec.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Solver registry name.
    pub solver: String,
    /// Problem name and spec hash.
    pub problem: String,
    /// The spec's SHA-256.
    pub spec_sha256: String,
    /// Resolved hyperparameters (`config.json`).
    pub hyperparameters: serde_json::Map<String, Value>,
    /// The median score over the runs that count (NaN: none counts).
    pub score: f64,
    /// Runs that count, and runs left out with why.
    pub counted: usize,
    /// Runs left out (unfinished, does not reach `--at`, metric missing).
    pub left_out: Vec<String>,
}

/// One run's score: `Ok(v)`, or why it is left out. A run that broke down
/// scores the worst value.
fn score(r: &RunTrace, o: &BestOptions, worst: f64) -> Result<f64, &'static str> {
    let broke = r
        .summary
        .as_ref()
        .is_some_and(|s| matches!(s.termination.as_str(), "diverged" | "non_finite"));
    let rec = match o.at {
        None => {
            if crate::sweepreport::partial(r) {
                return Err("unfinished");
            }
            r.records.last()
        }
        Some(at) => {
            let reached = r.records.iter().any(|t| at.read(t) >= at.value());
            if !reached {
                if broke {
                    return Ok(worst);
                }
                return Err(if crate::sweepreport::partial(r) {
                    "unfinished before --at"
                } else {
                    "ended before --at"
                });
            }
            r.records.iter().rev().find(|t| at.read(t) <= at.value())
        }
    };
    if broke {
        return Ok(worst);
    }
    let Some(rec) = rec else {
        return Err("no evaluation at or before --at");
    };
    match rec.metrics.get(&o.by) {
        Some(v) if v.is_finite() => Ok(*v),
        Some(_) => Ok(worst),
        None => Err("metric not recorded"),
    }
}

fn hyper_of(dir: &Path) -> serde_json::Map<String, Value> {
    std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| v.get("hyperparameters").and_then(Value::as_object).cloned())
        .unwrap_or_default()
}

/// Every configuration found below `dir`, scored, and each (spec, solver)'s
/// winner: the best median; ties go to the configuration whose
/// hyperparameters, as JSON text, sort first.
pub fn rank(dir: &Path, o: &BestOptions) -> Result<(Vec<Candidate>, Vec<usize>)> {
    if is_test_metric(&o.by) && !o.allow_test {
        bail!(
            "--by {}: a test metric must not choose hyperparameters (it would leak the test set into the choice); rank by a validation metric, or pass --allow-test-metric",
            o.by
        );
    }
    let maximize = direction(o)?;
    let worst = if maximize {
        f64::NEG_INFINITY
    } else {
        f64::INFINITY
    };
    let c = collect(dir)?;
    if c.runs.is_empty() {
        bail!("{} holds no run with a trace", dir.display());
    }
    let seen = c
        .runs
        .iter()
        .any(|(_, r)| r.records.iter().any(|t| t.metrics.contains_key(&o.by)));
    if !seen {
        let mut names: Vec<&String> = c
            .runs
            .iter()
            .flat_map(|(_, r)| r.records.iter().flat_map(|t| t.metrics.keys()))
            .collect();
        names.sort();
        names.dedup();
        let list: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        bail!(
            "--by {}: no run records this metric; the runs record: {}",
            o.by,
            list.join(", ")
        );
    }
    let mut cands: Vec<(Candidate, Vec<f64>)> = Vec::new();
    for (d, r) in &c.runs {
        let id = r.identity.clone().unwrap_or_default();
        let hyper = hyper_of(d);
        let pos = cands.iter().position(|(k, _)| {
            k.solver == r.solver && k.spec_sha256 == id.spec_sha256 && k.hyperparameters == hyper
        });
        let i = pos.unwrap_or_else(|| {
            cands.push((
                Candidate {
                    solver: r.solver.clone(),
                    problem: id.problem.clone(),
                    spec_sha256: id.spec_sha256.clone(),
                    hyperparameters: hyper,
                    score: f64::NAN,
                    counted: 0,
                    left_out: Vec::new(),
                },
                Vec::new(),
            ));
            cands.len() - 1
        });
        match score(r, o, worst) {
            Ok(v) => cands[i].1.push(v),
            Err(why) => {
                let rel = d.strip_prefix(dir).unwrap_or(d).display().to_string();
                cands[i].0.left_out.push(format!("{rel}: {why}"));
            }
        }
    }
    let mut out: Vec<Candidate> = cands
        .into_iter()
        .map(|(mut k, v)| {
            k.counted = v.len();
            k.score = quantile(&v, 0.5);
            k
        })
        .collect();
    out.sort_by(|a, b| {
        (
            &a.spec_sha256,
            &a.solver,
            Value::Object(a.hyperparameters.clone()).to_string(),
        )
            .cmp(&(
                &b.spec_sha256,
                &b.solver,
                Value::Object(b.hyperparameters.clone()).to_string(),
            ))
    });
    let mut winners: Vec<usize> = Vec::new();
    for (i, k) in out.iter().enumerate() {
        if k.counted == 0 {
            continue;
        }
        let better = |a: f64, b: f64| if maximize { a > b } else { a < b };
        match winners
            .iter_mut()
            .find(|w| out[**w].solver == k.solver && out[**w].spec_sha256 == k.spec_sha256)
        {
            // Candidates are sorted: the first of equal scores stays.
            Some(w) => {
                if better(k.score, out[*w].score) {
                    *w = i;
                }
            }
            None => winners.push(i),
        }
    }
    Ok((out, winners))
}

/// The hyperparameters that differ between the candidates of a solver on a
/// spec (the swept keys), with the winner's values.
pub fn swept(all: &[Candidate], w: &Candidate) -> Vec<(String, Value)> {
    let mine = &w.hyperparameters;
    let mut keys: Vec<&String> = Vec::new();
    for k in all
        .iter()
        .filter(|k| k.solver == w.solver && k.spec_sha256 == w.spec_sha256)
    {
        for (key, v) in &k.hyperparameters {
            if mine.get(key) != Some(v) && !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    mine.iter()
        .filter(|(k, _)| keys.contains(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn fmt_score(v: f64) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.6e}")
    }
}

/// The ranking as JSON.
pub fn best_json(all: &[Candidate], winners: &[usize], o: &BestOptions) -> Value {
    let cand = |k: &Candidate, i: usize| {
        json!({
            "solver": k.solver, "problem": k.problem, "spec_sha256": k.spec_sha256,
            "hyperparameters": k.hyperparameters,
            "swept": swept(all, k).into_iter().collect::<serde_json::Map<_, _>>(),
            "score": if k.score.is_finite() { json!(k.score) } else { json!(fmt_score(k.score)) },
            "runs_counted": k.counted, "left_out": k.left_out,
            "best": winners.contains(&i),
        })
    };
    json!({
        "by": o.by,
        "at": o.at.map(|a| format!("{a:?}")),
        "candidates": all.iter().enumerate().map(|(i, k)| cand(k, i)).collect::<Vec<_>>(),
    })
}

/// The ranking as text: each solver's candidates, the winner marked.
pub fn best_text(all: &[Candidate], winners: &[usize], o: &BestOptions) -> String {
    let mut s = String::new();
    let at =
        o.at.map_or_else(|| "final".to_string(), |a| format!("{a:?}"));
    let _ = writeln!(s, "ranked by median {} ({at}) over seeds", o.by);
    let mut last: Option<(&str, &str)> = None;
    for (i, k) in all.iter().enumerate() {
        if last != Some((&k.spec_sha256, &k.solver)) {
            let _ = writeln!(s, "\n{} @ {}:", k.solver, k.problem);
            last = Some((&k.spec_sha256, &k.solver));
        }
        let sw: Vec<String> = swept(all, k)
            .iter()
            .map(|(a, b)| format!("{a}={b}"))
            .collect();
        let mark = if winners.contains(&i) {
            "  <- best"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  {} [{}] runs {}{}{mark}",
            fmt_score(k.score),
            sw.join(", "),
            k.counted,
            if k.left_out.is_empty() {
                String::new()
            } else {
                format!(" (left out: {})", k.left_out.join("; "))
            }
        );
    }
    s
}

/// The winners of a solver map: solver → swept keys and values, for the
/// spec with this SHA-256.
pub fn winners_for(
    all: &[Candidate],
    winners: &[usize],
    sha: &str,
) -> BTreeMap<String, Vec<(String, Value)>> {
    winners
        .iter()
        .map(|&i| &all[i])
        .filter(|k| k.spec_sha256 == sha)
        .map(|k| (k.solver.clone(), swept(all, k)))
        .collect()
}

/// `bilevel best`: the ranking (text or JSON) and, with `write`
/// (SPEC, NEW), the spec with the winners of that spec's runs written to NEW.
pub fn best_command(
    dir: &Path,
    o: &BestOptions,
    as_json: bool,
    write: Option<(&Path, &Path)>,
) -> Result<String> {
    let (all, winners) = rank(dir, o)?;
    if winners.is_empty() {
        bail!(
            "no configuration below {} has a run that counts for --by {}",
            dir.display(),
            o.by
        );
    }
    let mut text = if as_json {
        serde_json::to_string_pretty(&best_json(&all, &winners, o))? + "\n"
    } else {
        best_text(&all, &winners, o)
    };
    if let Some((spec, out)) = write {
        let bytes = std::fs::read(spec)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", spec.display()))?;
        let sha = {
            use sha2::{Digest, Sha256};
            format!("{:x}", Sha256::digest(&bytes))
        };
        let w = winners_for(&all, &winners, &sha);
        if w.is_empty() {
            let mut shas: Vec<&str> = all.iter().map(|k| k.spec_sha256.as_str()).collect();
            shas.dedup();
            bail!(
                "no run below {} is of {} (SHA-256 {sha}); the runs' specs: {}",
                dir.display(),
                spec.display(),
                shas.join(", ")
            );
        }
        crate::writespec::write_spec(spec, out, &w)?;
        if !as_json {
            let names: Vec<&str> = w.keys().map(String::as_str).collect();
            let _ = writeln!(
                text,
                "\nwrote {} (algorithm blocks: {}); it checks",
                out.display(),
                names.join(", ")
            );
        }
    }
    Ok(text)
}

/// The command line's `best`: parses `--at AXIS VALUE` and the direction
/// flags, then [`best_command`].
pub fn cli(
    dir: &Path,
    by: &str,
    at: &[String],
    (min, max): (bool, bool),
    allow_test: bool,
    write: Option<(&Path, &Path)>,
    as_json: bool,
) -> Result<String> {
    let at = match at {
        [] => None,
        [axis, v] => {
            let x: f64 = v
                .parse()
                .map_err(|_| anyhow::anyhow!("--at {axis} {v}: {v:?} is not a number"))?;
            Some(At::parse(axis, x)?)
        }
        _ => bail!("--at takes two values: epoch|calls|iterations and a number"),
    };
    let o = BestOptions {
        by: by.to_string(),
        at,
        maximize: match (min, max) {
            (true, _) => Some(false),
            (_, true) => Some(true),
            _ => None,
        },
        allow_test,
    };
    best_command(dir, &o, as_json, write)
}
