//! `bilevel report DIR`: tables and plots over a directory of run folders
//! (a sweep's, a comparison's, or folders gathered by hand), from whatever
//! has finished. Runs stopped early count up to their last trace line and
//! are marked partial; tasks a sweep's `manifest.json` lists without a
//! folder or without a trace are listed as missing. Across seeds the
//! figures are the median and the 20–80 % quantile band, against oracle
//! calls, epochs and wall time; groups are those of `bilevel plot` (spec
//! hash, solver, hyperparameters).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::aggregate::{load_run, Axis, RunTrace};
use crate::output::TraceRecord;
use crate::plot::{render, Figure, Series};

/// How deep below DIR run folders are looked for (a sweep's `runs/HASH`,
/// a comparison's folders inside a sweep folder).
const MAX_DEPTH: usize = 4;

/// A task that has no result to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// The task's id from the manifest, or the folder's path.
    pub task: String,
    /// Its folder, relative to DIR.
    pub folder: String,
    /// `no folder`, `no trace`, or why the folder could not be read.
    pub why: String,
}

/// Everything found below a directory.
#[derive(Debug, Default)]
pub struct Collected {
    /// Readable runs with their folders, in path order.
    pub runs: Vec<(PathBuf, RunTrace)>,
    /// Tasks without a result.
    pub missing: Vec<Missing>,
}

fn is_run_folder(d: &Path) -> bool {
    [
        "config.json",
        "trace.jsonl",
        "trace.jsonl.part",
        "summary.json",
    ]
    .iter()
    .any(|f| d.join(f).is_file())
}

fn has_trace(d: &Path) -> bool {
    d.join("trace.jsonl").is_file() || d.join("trace.jsonl.part").is_file()
}

/// Run folders below `dir` (itself included), sorted by path.
fn discover(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) -> Result<()> {
    if is_run_folder(dir) {
        found.push(dir.to_path_buf());
        return Ok(());
    }
    if depth == 0 {
        return Ok(());
    }
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let mut subs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subs.sort();
    for s in subs {
        discover(&s, depth - 1, found)?;
    }
    Ok(())
}

/// The tasks of `DIR/sweep.json`, the manifest `bilevel sweep` writes
/// (docs/sweeps.md): each an `id` and a `folder` relative to DIR. `None`
/// when there is no manifest (a comparison's folder, folders by hand).
pub fn read_manifest(dir: &Path) -> Result<Option<Vec<(String, String)>>> {
    let p = dir.join("sweep.json");
    if !p.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
    let v: Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not JSON", p.display()))?;
    let tasks = v
        .get("tasks")
        .and_then(Value::as_array)
        .with_context(|| format!("{}: field `tasks` (a list) is missing", p.display()))?;
    let mut out = Vec::new();
    for (i, t) in tasks.iter().enumerate() {
        let folder = t
            .get("folder")
            .and_then(Value::as_str)
            .with_context(|| format!("{}: field `tasks[{i}].folder` is missing", p.display()))?;
        let id = t.get("id").map_or_else(
            || i.to_string(),
            |x| x.as_str().map_or(x.to_string(), String::from),
        );
        out.push((id, folder.to_string()));
    }
    Ok(Some(out))
}

fn relative(dir: &Path, p: &Path) -> String {
    p.strip_prefix(dir).unwrap_or(p).display().to_string()
}

/// Reads every run below `dir` and lists what is missing.
pub fn collect(dir: &Path) -> Result<Collected> {
    if !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    let mut folders = Vec::new();
    discover(dir, MAX_DEPTH, &mut folders)?;
    let mut c = Collected::default();
    if let Some(tasks) = read_manifest(dir)? {
        for (id, folder) in tasks {
            let p = dir.join(&folder);
            let why = if !p.is_dir() {
                "no folder"
            } else if !has_trace(&p) {
                "no trace"
            } else {
                continue;
            };
            // The sweep's record of the task's last failed attempt.
            let name = Path::new(&folder).file_name().unwrap_or_default();
            let failed = std::fs::read_to_string(
                dir.join("failed")
                    .join(format!("{}.txt", name.to_string_lossy())),
            )
            .ok()
            .and_then(|t| t.lines().next().map(str::to_string));
            let why = failed.map_or_else(|| why.to_string(), |f| format!("{why}; failed: {f}"));
            c.missing.push(Missing {
                task: id,
                folder,
                why,
            });
        }
    }
    for f in folders {
        let rel = relative(dir, &f);
        if !has_trace(&f) {
            if !c
                .missing
                .iter()
                .any(|m| Path::new(&m.folder) == Path::new(&rel))
            {
                c.missing.push(Missing {
                    task: rel.clone(),
                    folder: rel,
                    why: "no trace".into(),
                });
            }
            continue;
        }
        match load_run(&f) {
            Ok(r) => c.runs.push((f, r)),
            Err(e) => c.missing.push(Missing {
                task: rel.clone(),
                folder: rel,
                why: format!("unreadable: {e:#}"),
            }),
        }
    }
    Ok(c)
}

/// The `q` quantile (0 ≤ q ≤ 1) of `v`, linear between order statistics;
/// NaN for no values. Non-finite values sort to the ends (NaN last).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    if lo == hi || s[lo].total_cmp(&s[hi]).is_eq() {
        return s[lo];
    }
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// Median and 20–80 % quantiles.
fn spread(v: &[f64]) -> (f64, f64, f64) {
    (quantile(v, 0.5), quantile(v, 0.2), quantile(v, 0.8))
}

/// Whether a run stopped early: killed or still running (no summary yet),
/// or stopped by a signal (termination `interrupted`).
pub fn partial(r: &RunTrace) -> bool {
    r.summary
        .as_ref()
        .is_none_or(|s| s.termination == "interrupted")
}

/// x axes of the report's plots.
const AXES: [Axis; 3] = [
    ("calls", "oracle calls", |t| t.oracle_calls as f64),
    ("epochs", "epochs", |t| t.epoch),
    ("wall", "wall time (s)", |t| t.wall_s),
];

/// Median curve of `metric` against `axis` over a group's runs, aligned by
/// iteration, with the 20–80 % band where more than one run has a value.
fn median_curve(group: &[&RunTrace], metric: &str, axis: fn(&TraceRecord) -> f64) -> Series {
    let at = crate::aggregate::align_by_iter(group, metric, axis);
    let mut s = Series::default();
    for (xs, ys) in at.values() {
        let x = quantile(xs, 0.5);
        let (m, lo, hi) = spread(ys);
        s.points.push((x, m));
        if ys.len() > 1 {
            s.band.push((x, lo, hi));
        }
    }
    s
}

fn legend(name: &str, g: &[&RunTrace]) -> String {
    let n = g.len();
    let p = g.iter().filter(|r| partial(r)).count();
    let runs = if n == 1 {
        "1 run".into()
    } else {
        format!("{n} runs")
    };
    if p > 0 {
        format!("{name} ({runs}, {p} partial)")
    } else {
        format!("{name} ({runs})")
    }
}

/// Writes `METRIC_vs_{calls,epochs,wall}.{svg,png}` into `out`.
fn plots(out: &Path, runs: &[RunTrace]) -> Result<Vec<PathBuf>> {
    let mut metrics: Vec<&String> = runs
        .iter()
        .flat_map(|r| r.records.iter().flat_map(|t| t.metrics.keys()))
        .collect();
    metrics.sort();
    metrics.dedup();
    let has_epochs = runs.iter().any(|r| r.records.iter().any(|t| t.epoch > 0.0));
    let groups = crate::groups::by_group(runs);
    let mut written = Vec::new();
    for m in metrics {
        let values: Vec<f64> = runs
            .iter()
            .flat_map(|r| r.records.iter().filter_map(|t| t.metrics.get(m).copied()))
            .filter(|v| v.is_finite())
            .collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        for (tag, label, axis) in AXES {
            if tag == "epochs" && !has_epochs {
                continue;
            }
            let series: Vec<Series> = groups
                .iter()
                .map(|(name, g)| Series {
                    label: legend(name, g),
                    ..median_curve(g, m, axis)
                })
                .collect();
            let title = format!("{m} vs {label} (median, 20-80 % band)");
            let fig = Figure {
                title: &title,
                x_label: label,
                y_label: m,
                log_y: lo > 0.0 && hi > 10.0 * lo,
                series: &series,
            };
            let stem = out.join(format!("{m}_vs_{tag}"));
            render(&fig, &stem)?;
            written.push(stem);
        }
    }
    Ok(written)
}

/// One group's row: final values over its runs (a partial run's last line).
fn group_json(name: &str, g: &[&RunTrace], dirs: &BTreeMap<*const RunTrace, String>) -> Value {
    let mut finals: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut calls = Vec::new();
    let mut wall = Vec::new();
    let mut epochs = Vec::new();
    let mut terminations: BTreeMap<String, usize> = BTreeMap::new();
    for r in g {
        let t = r
            .summary
            .as_ref()
            .map_or("partial", |s| s.termination.as_str());
        *terminations.entry(t.to_string()).or_default() += 1;
        if let Some(last) = r.records.last() {
            for (k, &v) in &last.metrics {
                finals.entry(k).or_default().push(v);
            }
            calls.push(last.oracle_calls as f64);
            wall.push(last.wall_s);
            epochs.push(last.epoch);
        }
    }
    let q = |v: &[f64]| {
        let (m, lo, hi) = spread(v);
        json!({"median": num(m), "q20": num(lo), "q80": num(hi), "n": v.len()})
    };
    let first = g[0];
    let id = first.identity.clone().unwrap_or_default();
    json!({
        "group": name,
        "solver": first.solver,
        "problem": id.problem,
        "spec_sha256": id.spec_sha256,
        "hyperparameters": id.hyperparameters,
        "runs": g.len(),
        "partial": g.iter().filter(|r| partial(r)).count(),
        "terminations": terminations,
        "folders": g.iter().map(|r| dirs.get(&std::ptr::from_ref(*r)).cloned().unwrap_or_default()).collect::<Vec<_>>(),
        "final_metrics": finals.iter().map(|(k, v)| ((*k).to_string(), q(v))).collect::<serde_json::Map<_, _>>(),
        "oracle_calls": q(&calls),
        "epochs": q(&epochs),
        "wall_s": q(&wall),
    })
}

/// A JSON number, or the string the traces use for a non-finite value.
fn num(v: f64) -> Value {
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

/// The report as JSON: groups, missing tasks.
pub fn report_json(dir: &Path, c: &Collected) -> Value {
    let runs: Vec<RunTrace> = c.runs.iter().map(|(_, r)| r.clone()).collect();
    let mut dirs = BTreeMap::new();
    for (r, (p, _)) in runs.iter().zip(&c.runs) {
        dirs.insert(std::ptr::from_ref(r), relative(dir, p));
    }
    let groups: Vec<Value> = crate::groups::by_group(&runs)
        .iter()
        .map(|(n, g)| group_json(n, g, &dirs))
        .collect();
    json!({
        "dir": dir.display().to_string(),
        "runs": runs.len(),
        "partial": runs.iter().filter(|r| partial(r)).count(),
        "groups": groups,
        "missing": c.missing.iter().map(|m| json!({"task": m.task, "folder": m.folder, "why": m.why})).collect::<Vec<_>>(),
    })
}

fn cell(v: &Value) -> String {
    let f = |x: &Value| match x {
        Value::Number(n) => format!("{:.4e}", n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => s.clone(),
        _ => "–".into(),
    };
    if v["n"].as_u64().unwrap_or(0) == 0 {
        return "–".into();
    }
    format!("{} [{}, {}]", f(&v["median"]), f(&v["q20"]), f(&v["q80"]))
}

/// The report as text: one Markdown table (median [20 %, 80 %] of final
/// values), then the missing tasks.
pub fn report_text(j: &Value) -> String {
    let groups = j["groups"].as_array().cloned().unwrap_or_default();
    let mut metrics: Vec<String> = groups
        .iter()
        .filter_map(|g| g["final_metrics"].as_object())
        .flat_map(|m| m.keys().cloned())
        .collect();
    metrics.sort();
    metrics.dedup();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} runs ({} partial: stopped before their summary, counted up to their last trace line, marked *), {} missing",
        j["runs"], j["partial"], j["missing"].as_array().map_or(0, Vec::len)
    );
    let _ = writeln!(s);
    let _ = write!(
        s,
        "| group | runs | terminations | oracle calls | epochs | wall s |"
    );
    for m in &metrics {
        let _ = write!(s, " {m} |");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "|{}", "---|".repeat(6 + metrics.len()));
    for g in &groups {
        let p = g["partial"].as_u64().unwrap_or(0);
        let star = if p > 0 {
            format!(" ({p} partial*)")
        } else {
            String::new()
        };
        let terms = g["terminations"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, n)| format!("{k}×{n}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let _ = write!(
            s,
            "| {} | {}{star} | {terms} | {} | {} | {} |",
            g["group"].as_str().unwrap_or_default(),
            g["runs"],
            cell(&g["oracle_calls"]),
            cell(&g["epochs"]),
            cell(&g["wall_s"])
        );
        for m in &metrics {
            let _ = write!(s, " {} |", cell(&g["final_metrics"][m]));
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "\nCells: median [20 %, 80 %] over the group's runs of the value at each run's last trace line.");
    if let Some(missing) = j["missing"].as_array().filter(|m| !m.is_empty()) {
        let _ = writeln!(s, "\nMissing:");
        for m in missing {
            let _ = writeln!(
                s,
                "- {} ({}): {}",
                m["task"].as_str().unwrap_or_default(),
                m["folder"].as_str().unwrap_or_default(),
                m["why"].as_str().unwrap_or_default()
            );
        }
    }
    s
}

/// The default output folder: `DIR-report` beside DIR (`bilevel sweep`
/// refuses a sweep folder holding files not its own).
pub fn default_out(dir: &Path) -> PathBuf {
    // `.` or `runs/..` have no usable last component until resolved.
    let dir = &std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let name = dir
        .file_name()
        .map_or_else(|| "runs".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!("{name}-report"))
}

/// `bilevel report DIR --out OUT`: writes `report.md`, `report.json` and the
/// plots into `out`; returns the text (or JSON) for stdout.
pub fn report_command(dir: &Path, out: &Path, as_json: bool, plots_too: bool) -> Result<String> {
    let c = collect(dir)?;
    if c.runs.is_empty() && c.missing.is_empty() {
        anyhow::bail!(
            "{} holds no run folder (config.json, trace.jsonl) within {MAX_DEPTH} levels",
            dir.display()
        );
    }
    let j = report_json(dir, &c);
    let text = report_text(&j);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let pretty = serde_json::to_string_pretty(&j)? + "\n";
    crate::output::write_atomic(&out.join("report.json"), pretty.as_bytes())?;
    crate::output::write_atomic(&out.join("report.md"), text.as_bytes())?;
    if plots_too && !c.runs.is_empty() {
        let runs: Vec<RunTrace> = c.runs.into_iter().map(|(_, r)| r).collect();
        plots(out, &runs)?;
    }
    Ok(if as_json { pretty } else { text })
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_interpolate_between_order_statistics() {
        let v = [3.0, 1.0, 2.0, 5.0, 4.0];
        assert_eq!(quantile(&v, 0.5).to_bits(), 3.0f64.to_bits());
        assert!((quantile(&v, 0.2) - 1.8).abs() < 1e-12);
        assert!((quantile(&v, 0.8) - 4.2).abs() < 1e-12);
        assert!(quantile(&[], 0.5).is_nan());
        assert_eq!(quantile(&[7.0], 0.2).to_bits(), 7.0f64.to_bits());
    }

    /// Random lists (an xorshift generator): every quantile lies between the
    /// minimum and maximum, grows with q, ignores the order of the values,
    /// and the 0 and 1 quantiles are the extremes.
    #[test]
    fn quantiles_are_bounded_monotone_and_order_free() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..500 {
            let n = 1 + (next() % 9) as usize;
            let v: Vec<f64> = (0..n)
                .map(|_| (next() % 2001) as f64 / 100.0 - 10.0)
                .collect();
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut rev = v.clone();
            rev.reverse();
            let mut last = f64::NEG_INFINITY;
            for k in 0..=10 {
                let q = f64::from(k) / 10.0;
                let x = quantile(&v, q);
                assert!(lo <= x && x <= hi && x >= last, "{v:?} q={q}: {x}");
                assert_eq!(x.to_bits(), quantile(&rev, q).to_bits());
                last = x;
            }
            assert_eq!(quantile(&v, 0.0).to_bits(), lo.to_bits());
            assert_eq!(quantile(&v, 1.0).to_bits(), hi.to_bits());
        }
    }
}
