//! Several runs of one problem: loading run folders, averaging traces over
//! seeds, the comparison table (CSV and Markdown) and overlay plots with one
//! colour per solver and a band for the spread over seeds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::output::{read_trace, write_atomic, TraceRecord};
use crate::plot::{render, Figure, Series};
use crate::session::RunSummary;

/// One run read back from its folder.
#[derive(Debug, Clone)]
pub struct RunTrace {
    /// Solver name (from `summary.json`, else the folder name).
    pub solver: String,
    /// The run's summary, when the run finished writing it.
    pub summary: Option<RunSummary>,
    /// The trace records.
    pub records: Vec<TraceRecord>,
    /// Problem, spec hash and hyperparameters from `config.json`, when the
    /// folder has one: runs are averaged only within one of these.
    pub identity: Option<crate::groups::RunIdentity>,
    /// The `expect` block's outcome from `expect.json`, when the run checked
    /// one: (expectations that held, expectations).
    pub expect: Option<(usize, usize)>,
}

/// Reads a run folder: `trace.jsonl` (or the `.part` file of a killed run)
/// and, if present, `summary.json`.
pub fn load_run(dir: &Path) -> Result<RunTrace> {
    let done = dir.join("trace.jsonl");
    let part = dir.join("trace.jsonl.part");
    let trace = if done.exists() {
        done
    } else if part.exists() {
        part
    } else {
        bail!("{} holds no trace.jsonl: not a run folder", dir.display());
    };
    let records = read_trace(&trace)?;
    let summary_path = dir.join("summary.json");
    let summary = if summary_path.exists() {
        let bytes = std::fs::read(&summary_path)
            .with_context(|| format!("cannot read {}", summary_path.display()))?;
        Some(
            serde_json::from_slice::<RunSummary>(&bytes)
                .with_context(|| format!("{} is not a run summary", summary_path.display()))?,
        )
    } else {
        None
    };
    // A killed run has no summary: its solver is config.json's `algorithm`
    // (else the folder's name), so it joins its configuration's group.
    let solver = summary.as_ref().map_or_else(
        || {
            config_algorithm(dir).unwrap_or_else(|| {
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
        },
        |s| s.solver.clone(),
    );
    Ok(RunTrace {
        solver,
        summary,
        records,
        identity: crate::groups::read_identity(dir)?,
        expect: read_expect(dir)?,
    })
}

/// The `algorithm` field of a run folder's `config.json`, if readable.
fn config_algorithm(dir: &Path) -> Option<String> {
    let bytes = std::fs::read(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get("algorithm")?.as_str().map(String::from)
}

/// `expect.json` of a run folder: (held, total); `None` when the file is
/// missing or lists nothing.
fn read_expect(dir: &Path) -> Result<Option<(usize, usize)>> {
    let path = dir.join("expect.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(None);
    };
    let v: Vec<serde_json::Value> = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a list of expectations", path.display()))?;
    let held = v
        .iter()
        .filter(|e| e["ok"] == serde_json::json!(true))
        .count();
    Ok((!v.is_empty()).then_some((held, v.len())))
}

/// Mean and (population) standard deviation; `(NaN, NaN)` for no values.
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// Groups runs by solver name alone, keeping the order of first
/// appearance (plots and tables group by problem and settings too:
/// [`crate::groups::by_group`]).
pub fn by_solver(runs: &[RunTrace]) -> Vec<(String, Vec<&RunTrace>)> {
    let mut groups: Vec<(String, Vec<&RunTrace>)> = Vec::new();
    for r in runs {
        match groups.iter_mut().find(|(n, _)| *n == r.solver) {
            Some((_, g)) => g.push(r),
            None => groups.push((r.solver.clone(), vec![r])),
        }
    }
    groups
}

/// An x axis of the plots: file tag, label, and how to read it from a record.
pub(crate) type Axis = (&'static str, &'static str, fn(&TraceRecord) -> f64);

const AXES: [Axis; 4] = [
    ("iters", "iterations", |t| t.iter as f64),
    ("calls", "oracle calls", |t| t.oracle_calls as f64),
    ("epochs", "epochs", |t| t.epoch),
    ("wall", WALL_LABEL, |t| t.wall_s),
];

/// The wall-time axis: the runs' `wall_s` less the time their stationarity
/// metrics took ([`solver_wall_time`]).
const WALL_LABEL: &str = "wall time (s, stationarity metrics excluded)";

/// The trace fields of the stationarity metrics that are bookkeeping, not
/// curves worth a plot (they stay in the tables).
const UNPLOTTED: [&str; 4] = [
    "stationarity_converged",
    "stationarity_calls",
    "stationarity_tol",
    "stationarity_seconds",
];

/// The runs with each record's `wall_s` less the `stationarity_seconds` of
/// it and every earlier record: the trace's time includes the evaluations
/// (each record's own too), and the stationarity solves can take longer than
/// the solver, which would make a wall-time axis measure the metric.
fn solver_wall_time(runs: &[RunTrace]) -> Vec<RunTrace> {
    runs.iter()
        .map(|r| {
            let mut r = r.clone();
            let mut spent = 0.0;
            for t in &mut r.records {
                spent += t
                    .metrics
                    .get("stationarity_seconds")
                    .copied()
                    .filter(|v| v.is_finite())
                    .unwrap_or(0.0);
                t.wall_s = (t.wall_s - spent).max(0.0);
            }
            r
        })
        .collect()
}

/// The values of `metric` and of `axis` over a group's runs, aligned by
/// iteration (the evaluation cadence is the same for every seed): for each
/// iteration, (axis values, metric values) of the runs that have it.
pub(crate) fn align_by_iter(
    group: &[&RunTrace],
    metric: &str,
    axis: fn(&TraceRecord) -> f64,
) -> BTreeMap<u64, (Vec<f64>, Vec<f64>)> {
    let mut at: BTreeMap<u64, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for run in group {
        for t in &run.records {
            if let Some(&v) = t.metrics.get(metric) {
                let e = at.entry(t.iter).or_default();
                e.0.push(axis(t));
                e.1.push(v);
            }
        }
    }
    at
}

/// Seed-averaged curve of `metric` against `axis` for one solver: records
/// are aligned by iteration (the evaluation cadence is the same for every
/// seed); the band is mean ± one standard deviation.
fn averaged(group: &[&RunTrace], metric: &str, axis: fn(&TraceRecord) -> f64) -> Series {
    let at = align_by_iter(group, metric, axis);
    let mut s = Series::default();
    for (xs, ys) in at.values() {
        let x = mean_std(xs).0;
        let (m, sd) = mean_std(ys);
        s.points.push((x, m));
        if group.len() > 1 {
            s.band.push((x, m - sd, m + sd));
        }
    }
    s
}

/// Overlay plots into `dir`: for every metric and axis (epochs only when they
/// advance), one curve per solver averaged over its seeds with a band for
/// the spread. Returns the file stems written.
pub fn plot_runs(dir: &Path, runs: &[RunTrace]) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut metrics: Vec<&String> = runs
        .iter()
        .flat_map(|r| r.records.iter().flat_map(|t| t.metrics.keys()))
        .collect();
    metrics.sort();
    metrics.dedup();
    metrics.retain(|m| !UNPLOTTED.contains(&m.as_str()));
    let has_epochs = runs.iter().any(|r| r.records.iter().any(|t| t.epoch > 0.0));
    let groups = crate::groups::by_group(runs);
    let adjusted = solver_wall_time(runs);
    let wall_groups = crate::groups::by_group(&adjusted);
    let mut written = Vec::new();
    for m in metrics {
        // A log axis only for positive values spanning more than a decade:
        // within one decade it has no tick labels.
        let values: Vec<f64> = runs
            .iter()
            .flat_map(|r| r.records.iter().filter_map(|t| t.metrics.get(m).copied()))
            .filter(|v| v.is_finite())
            .collect();
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let all_positive = lo > 0.0 && hi > 10.0 * lo;
        for (tag, label, axis) in AXES {
            if tag == "epochs" && !has_epochs {
                continue;
            }
            let g = if tag == "wall" { &wall_groups } else { &groups };
            let series: Vec<Series> = g
                .iter()
                .map(|(name, g)| Series {
                    label: group_label(name, g),
                    stopped: broke_down(g),
                    ..averaged(g, m, axis)
                })
                .collect();
            let title = format!("{m} vs {label}");
            let fig = Figure {
                title: &title,
                x_label: label,
                y_label: m,
                log_y: all_positive,
                series: &series,
            };
            let stem = dir.join(format!("{m}_vs_{tag}"));
            render(&fig, &stem)?;
            written.push(stem);
        }
    }
    Ok(written)
}

/// A curve's legend: the group's label and how many seeds it averages
/// (`runs` when some seed appears twice).
fn group_label(name: &str, g: &[&RunTrace]) -> String {
    if g.len() < 2 {
        return name.to_string();
    }
    let mut seeds: Vec<u64> = g
        .iter()
        .filter_map(|r| r.summary.as_ref().map(|s| s.seed))
        .collect();
    seeds.sort_unstable();
    seeds.dedup();
    if seeds.len() == g.len() {
        format!("{name} ({} seeds)", g.len())
    } else {
        format!("{name} ({} runs)", g.len())
    }
}

/// How many runs of a group broke down (`diverged`, `non_finite`), as the
/// note of its curve's end mark.
fn broke_down(g: &[&RunTrace]) -> Option<String> {
    let mut reasons: Vec<&str> = g
        .iter()
        .filter_map(|r| r.summary.as_ref())
        .map(|s| s.termination.as_str())
        .filter(|t| matches!(*t, "diverged" | "non_finite"))
        .collect();
    if reasons.is_empty() {
        return None;
    }
    let n = reasons.len();
    reasons.sort_unstable();
    reasons.dedup();
    let what = reasons.join("/").replace('_', "-");
    Some(if g.len() > 1 {
        format!("{what}: {n} of {}", g.len())
    } else {
        what
    })
}

/// One row of the comparison table: a solver's final figures over its seeds.
#[derive(Debug, Clone, PartialEq)]
pub struct TableRow {
    /// Solver name.
    pub solver: String,
    /// Number of runs (seeds).
    pub runs: usize,
    /// Mean and std of each final metric, over the runs that did not break
    /// down (over all runs when every one did).
    pub metrics: BTreeMap<String, (f64, f64)>,
    /// Mean and std of the oracle calls.
    pub oracle_calls: (f64, f64),
    /// Mean and std of the wall time in seconds.
    pub wall_s: (f64, f64),
    /// Termination reasons and how many runs ended with each.
    pub terminations: BTreeMap<String, usize>,
    /// Runs whose whole `expect` block held, and runs that checked one.
    pub expect: (usize, usize),
}

/// The comparison table, one row per solver in order of appearance.
pub fn table(runs: &[RunTrace]) -> Vec<TableRow> {
    crate::groups::by_group(runs)
        .into_iter()
        .map(|(solver, g)| {
            let mut finals: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            let mut calls = Vec::new();
            let mut wall = Vec::new();
            let mut terminations = BTreeMap::new();
            // Final metrics of runs that broke down (diverged, non-finite)
            // would swamp the mean: they are left out unless every run broke
            // down; the termination column counts them.
            let broke = |r: &&RunTrace| {
                r.summary
                    .as_ref()
                    .is_some_and(|s| matches!(s.termination.as_str(), "diverged" | "non_finite"))
            };
            let all_broke = g.iter().all(broke);
            for r in &g {
                let reason = r
                    .summary
                    .as_ref()
                    .map_or_else(|| "unfinished".to_string(), |s| s.termination.clone());
                *terminations.entry(reason).or_insert(0) += 1;
                if broke(r) && !all_broke {
                    continue;
                }
                if let Some(last) = r.records.last() {
                    for (k, &v) in &last.metrics {
                        finals.entry(k.clone()).or_default().push(v);
                    }
                    calls.push(last.oracle_calls as f64);
                    wall.push(last.wall_s);
                }
            }
            let checked: Vec<(usize, usize)> = g.iter().filter_map(|r| r.expect).collect();
            let expect = (
                checked.iter().filter(|(h, n)| h == n).count(),
                checked.len(),
            );
            TableRow {
                expect,
                solver,
                runs: g.len(),
                metrics: finals.into_iter().map(|(k, v)| (k, mean_std(&v))).collect(),
                oracle_calls: mean_std(&calls),
                wall_s: mean_std(&wall),
                terminations,
            }
        })
        .collect()
}

fn metric_names(rows: &[TableRow]) -> Vec<String> {
    let mut names: Vec<String> = rows
        .iter()
        .flat_map(|r| r.metrics.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `2/3 ok`: runs whose `expect` block held, of those that checked one.
fn expect_cell(r: &TableRow) -> String {
    match r.expect {
        (_, 0) => "–".to_string(),
        (ok, n) if ok == n => format!("{ok}/{n} ok"),
        (ok, n) => format!("{ok}/{n} ok, {} VIOLATED", n - ok),
    }
}

fn terminations(r: &TableRow) -> String {
    r.terminations
        .iter()
        .map(|(k, n)| format!("{k}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The table as Markdown (mean ± std).
pub fn table_markdown(rows: &[TableRow]) -> String {
    let names = metric_names(rows);
    let mut out = String::from("| solver | runs |");
    for n in &names {
        let _ = write!(out, " {n} |");
    }
    out.push_str(" oracle calls | time (s) | termination | expect |\n|---|---|");
    out.push_str(&"---|".repeat(names.len() + 4));
    out.push('\n');
    for r in rows {
        let _ = write!(out, "| {} | {} |", r.solver, r.runs);
        for n in &names {
            match r.metrics.get(n) {
                Some((m, s)) => {
                    let _ = write!(out, " {m:.4e} ± {s:.1e} |");
                }
                None => out.push_str(" – |"),
            }
        }
        let _ = writeln!(
            out,
            " {:.0} ± {:.0} | {:.3} ± {:.3} | {} | {} |",
            r.oracle_calls.0,
            r.oracle_calls.1,
            r.wall_s.0,
            r.wall_s.1,
            terminations(r),
            expect_cell(r)
        );
    }
    out
}

/// The table as CSV: `solver,runs,<metric>_mean,<metric>_std,…`.
pub fn table_csv(rows: &[TableRow]) -> String {
    let names = metric_names(rows);
    let mut out = String::from("solver,runs");
    for n in &names {
        let _ = write!(out, ",{n}_mean,{n}_std");
    }
    out.push_str(
        ",oracle_calls_mean,oracle_calls_std,wall_s_mean,wall_s_std,terminations,expect_ok,expect_runs\n",
    );
    for r in rows {
        let _ = write!(out, "{},{}", r.solver, r.runs);
        for n in &names {
            let (m, s) = r.metrics.get(n).copied().unwrap_or((f64::NAN, f64::NAN));
            let _ = write!(out, ",{m},{s}");
        }
        let _ = writeln!(
            out,
            ",{},{},{},{},{},{},{}",
            r.oracle_calls.0,
            r.oracle_calls.1,
            r.wall_s.0,
            r.wall_s.1,
            terminations(r),
            r.expect.0,
            r.expect.1
        );
    }
    out
}

/// Writes `table.md` and `table.csv` into `dir`, atomically.
pub fn write_table(dir: &Path, rows: &[TableRow]) -> Result<()> {
    write_atomic(&dir.join("table.md"), table_markdown(rows).as_bytes())?;
    write_atomic(&dir.join("table.csv"), table_csv(rows).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{CallsRecord, TraceWriter};

    fn write_run(dir: &Path, solver: &str, scale: f64) {
        std::fs::create_dir_all(dir).unwrap();
        let mut w = TraceWriter::create(dir).unwrap();
        for i in 0..5_u32 {
            w.append(&TraceRecord {
                iter: u64::from(i) * 10,
                epoch: f64::from(i) * 0.5,
                oracle_calls: u64::from(i) * 50,
                calls: CallsRecord::default(),
                wall_s: f64::from(i) * 0.01,
                metrics: BTreeMap::from([("loss".to_string(), scale / (1.0 + f64::from(i)))]),
            })
            .unwrap();
        }
        w.finish().unwrap();
        let summary = RunSummary {
            solver: solver.into(),
            seed: 0,
            termination: "max_iters".into(),
            iters: 40,
            oracle_calls: 200,
            calls: CallsRecord::default(),
            wall_s: 0.04,
            final_metrics: BTreeMap::new(),
            x: vec![0.0],
            breakdown: None,
        };
        std::fs::write(
            dir.join("summary.json"),
            serde_json::to_vec(&summary).unwrap(),
        )
        .unwrap();
    }

    #[test]
    fn table_and_plots_over_seeds() {
        let dir = tempfile::tempdir().unwrap();
        write_run(&dir.path().join("a0"), "bo-rep", 1.0);
        write_run(&dir.path().join("a1"), "bo-rep", 3.0);
        write_run(&dir.path().join("b0"), "slip", 2.0);
        let runs: Vec<RunTrace> = ["a0", "a1", "b0"]
            .iter()
            .map(|n| load_run(&dir.path().join(n)).unwrap())
            .collect();
        let rows = table(&runs);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].runs, 2);
        // Final losses 1/5 and 3/5: mean 0.4, std 0.2.
        let (m, s) = rows[0].metrics["loss"];
        assert!((m - 0.4).abs() < 1e-12 && (s - 0.2).abs() < 1e-12);
        assert_eq!(rows[1].terminations["max_iters"], 1);
        let md = table_markdown(&rows);
        assert!(
            md.starts_with("| solver | runs | loss | oracle calls |"),
            "{md}"
        );
        assert!(md.contains("| bo-rep | 2 | 4.0000e-1 ± 2.0e-1 |"), "{md}");
        let csv = table_csv(&rows);
        assert!(
            csv.lines().nth(1).unwrap().starts_with("bo-rep,2,0.4"),
            "{csv}"
        );
        let stems = plot_runs(&dir.path().join("plots"), &runs).unwrap();
        assert_eq!(stems.len(), 4); // iterations, calls, epochs, wall time
        write_table(dir.path(), &rows).unwrap();
        assert!(dir.path().join("table.md").exists());
    }

    #[test]
    fn runs_that_broke_down_are_counted_but_not_averaged() {
        let dir = tempfile::tempdir().unwrap();
        write_run(&dir.path().join("a0"), "soba", 1.0);
        write_run(&dir.path().join("a1"), "soba", 1e17);
        let p = dir.path().join("a1").join("summary.json");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, text.replace("max_iters", "diverged")).unwrap();
        let runs: Vec<RunTrace> = ["a0", "a1"]
            .iter()
            .map(|n| load_run(&dir.path().join(n)).unwrap())
            .collect();
        let rows = table(&runs);
        assert_eq!(rows[0].runs, 2);
        let (m, sd) = rows[0].metrics["loss"];
        assert!((m - 0.2).abs() < 1e-15 && sd.abs() < 1e-15, "{m} {sd}");
        assert_eq!(rows[0].terminations["diverged"], 1);
        // When every run broke down, the row still has its values.
        let rows = table(&runs[1..]);
        assert!((rows[0].metrics["loss"].0 / (1e17 / 5.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_folder_without_a_trace_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_run(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a run folder"), "{err}");
    }
}
