//! One run of one solver on one problem, observed: the run folder with the
//! resolved config, the trace, the summary and the plots; progress on stderr
//! (in the run's own budget: iterations, epochs or oracle calls, and through
//! the warm start and long evaluations); a stop request (Ctrl-C, SIGTERM,
//! SIGHUP) and numerical breakdown — non-finite iterates, metrics or oracle
//! outputs — end the run with a valid trace and summary. A failed write ends
//! it with an [`IoFailure`] and leaves the `.part` trace of complete lines.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use bilevel_core::{Budget, CallCounter, Counts, Oracle, Solver, Termination};
use rand_core::Rng;
use serde::{Deserialize, Serialize};

use crate::aggregate::{plot_runs, RunTrace};
use crate::exit::IoFailure;
use crate::output::{nonfinite, write_atomic, CallsRecord, TraceRecord};
use crate::watch::{Limits, Phase, Watch};

mod observer;
mod progress;
#[cfg(test)]
mod tests;

use observer::{drive, RunObserver};
use progress::tick;

/// Computes the metrics of a run at an iterate (losses on evaluation data,
/// accuracies, distance to a known solution).
pub trait Evaluate {
    /// Metric names, in the order [`Evaluate::evaluate`] returns them. The
    /// first one is shown in the progress line.
    fn metric_names(&self) -> Vec<String>;
    /// Metric values at (x, y).
    fn evaluate(&mut self, x: &[f64], y: &[f64]) -> Vec<f64>;
    /// [`Evaluate::evaluate`], given up (`None`) when `stop` is set while
    /// it runs; one begun with `stop` already set runs to its end. The
    /// default cannot be interrupted: it evaluates.
    fn evaluate_or_stop(&mut self, x: &[f64], y: &[f64], stop: &AtomicBool) -> Option<Vec<f64>> {
        let _ = stop;
        Some(self.evaluate(x, y))
    }
    /// Passes over the lower-level training data so far (0 when there is no
    /// finite data set).
    fn epoch(&self, _counts: &Counts) -> f64 {
        0.0
    }
    /// `true` when an epoch budget is used up: the run then stops as
    /// `epoch_budget` (checked after every iteration).
    fn epochs_done(&self, _counts: &Counts) -> bool {
        false
    }
    /// The epoch budget, for progress displays (`None`: no epoch budget).
    fn epoch_budget(&self) -> Option<u64> {
        None
    }
}

/// How progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A progress bar (when stderr is a terminal).
    Bar,
    /// Plain log lines, about ten per run.
    Log,
    /// Nothing.
    Quiet,
}

impl ProgressMode {
    /// A bar on a terminal, log lines otherwise.
    pub fn auto() -> Self {
        if std::io::stderr().is_terminal() {
            ProgressMode::Bar
        } else {
            ProgressMode::Log
        }
    }
}

/// Settings of one observed run.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The run folder (created if missing).
    pub out: PathBuf,
    /// Evaluate and write a trace line every this many iterations (and at
    /// the start and the end).
    pub eval_every: u64,
    /// Iterations, oracle calls, divergence threshold.
    pub budget: Budget,
    /// Progress display.
    pub progress: ProgressMode,
    /// Set to `true` (e.g. by a Ctrl-C handler) to stop the run cleanly.
    pub stop: Arc<AtomicBool>,
    /// Render the plots at the end.
    pub plots: bool,
    /// The run's live state, shared with the caller (a comparison's progress
    /// bar, the [`Watched`](crate::watch::Watched) oracle); `None`: the
    /// session makes its own.
    pub watch: Option<Arc<Watch>>,
}

/// `summary.json`: how a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Solver registry name.
    pub solver: String,
    /// RNG seed.
    pub seed: u64,
    /// Why the run stopped (`max_iters`, `oracle_budget`, `target_reached`,
    /// `non_finite`, `diverged`, or `interrupted` when the session's stop
    /// flag — Ctrl-C — ended it).
    pub termination: String,
    /// Outer iterations taken.
    pub iters: u64,
    /// Gradient and product calls.
    pub oracle_calls: u64,
    /// Calls by kind.
    pub calls: CallsRecord,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// Metrics at the last evaluation.
    #[serde(
        serialize_with = "nonfinite::serialize_map",
        deserialize_with = "nonfinite::deserialize_map"
    )]
    pub final_metrics: BTreeMap<String, f64>,
    /// Final x.
    #[serde(
        serialize_with = "nonfinite::serialize_vec",
        deserialize_with = "nonfinite::deserialize_vec"
    )]
    pub x: Vec<f64>,
    /// What broke, when the run broke down (`non_finite`, `diverged`): the
    /// quantity, its value, and where (initialisation or iteration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<String>,
}

/// The summary's name of a termination: the core's name, except that a stop
/// requested through the stop flag (Ctrl-C) is `interrupted`.
fn termination_name(t: Termination, stop: &AtomicBool) -> String {
    if t == Termination::Stopped && stop.load(Ordering::Relaxed) {
        "interrupted".to_string()
    } else {
        t.name().to_string()
    }
}

/// What broke when the core stopped the run on a non-finite or diverged
/// iterate: the variable, the first bad entry, and when.
fn describe_breakdown(
    t: Termination,
    x: &[f64],
    y: &[f64],
    iters: u64,
    budget: &Budget,
) -> Option<String> {
    let when = if iters == 0 {
        "after the initialisation (warm start)".to_string()
    } else {
        format!("at iteration {iters}")
    };
    match t {
        Termination::NonFinite => {
            let (name, v) = if x.iter().all(|v| v.is_finite()) {
                ("y", y)
            } else {
                ("x", x)
            };
            let i = v.iter().position(|e| !e.is_finite())?;
            Some(format!("{name}[{i}] = {} {when}", v[i]))
        }
        Termination::Diverged => {
            let norm = |v: &[f64]| v.iter().map(|e| e * e).sum::<f64>().sqrt();
            let (nx, ny) = (norm(x), norm(y));
            let (name, n) = if nx >= ny { ("x", nx) } else { ("y", ny) };
            Some(format!(
                "‖{name}‖ = {n:.3e} exceeded the divergence threshold {:e} {when}",
                budget.divergence
            ))
        }
        _ => None,
    }
}

/// Where a run stands, for a checkpoint: what [`observe_run_with`] hands
/// its `save` callback, and what a checkpoint's header records.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Position {
    /// Outer iterations done.
    pub iter: u64,
    /// The run loop's start ([`bilevel_core::RunLoop::start_iter`]).
    pub start_iter: u64,
    /// Trace lines that belong to the run so far (a stop's off-cadence
    /// line excluded).
    pub trace_lines: u64,
    /// Seconds of run time so far.
    pub elapsed_s: f64,
    /// The iteration of the last log line.
    pub last_logged: u64,
    /// The termination's name when the run has ended.
    pub stop: Option<String>,
    /// The evaluation of iteration `iter` was given up (a stop request came
    /// during it): a resumed run evaluates it before its next iteration.
    #[serde(default)]
    pub pending_eval: bool,
}

/// The observer's state of a run being resumed (its solver, generator and
/// oracle are restored by the caller).
#[derive(Debug, Clone)]
pub struct Resumed {
    /// The trace lines kept, as bytes (whole lines).
    pub kept: Vec<u8>,
    /// The same lines, parsed.
    pub records: Vec<TraceRecord>,
    /// Where the run stood.
    pub position: Position,
}

/// Runs `solver` on `oracle`, observed, and writes the run folder: the
/// trace (`trace.jsonl`), `summary.json` and, with `opts.plots`, one plot per
/// metric against iterations, oracle calls and (when known) epochs. The
/// resolved configuration is the caller's to write (it knows the spec).
///
/// Any termination reason — budget, target, breakdown, Ctrl-C — ends with a
/// complete trace and summary; I/O failures are errors that name the file.
pub fn observe_run<S, O, E, R>(
    solver: &mut S,
    oracle: &mut O,
    evaluator: E,
    rng: &mut R,
    seed: u64,
    opts: &SessionOptions,
) -> Result<RunSummary>
where
    O: Oracle<f64> + CallCounter,
    S: Solver<f64, O>,
    E: Evaluate,
    R: Rng + ?Sized,
{
    observe_run_with(
        solver,
        oracle,
        evaluator,
        rng,
        seed,
        opts,
        None,
        (0, &mut |_, _, _, _| Ok(())),
    )
}

/// A checkpoint callback: saves the solver, the oracle and the generator at
/// a [`Position`].
pub type Save<'a, S, O, R> = &'a mut dyn FnMut(&mut S, &mut O, &mut R, &Position) -> Result<()>;

/// [`observe_run`] with checkpoints: `save` is called every `every`
/// iterations (0: never mid-run) and once when the run ends, each time
/// after the trace lines it counts were synced; with `resume`, the run
/// continues from a restored state instead of starting (no warm start, the
/// trace continued from the kept lines).
#[allow(clippy::too_many_arguments)]
pub fn observe_run_with<S, O, E, R>(
    solver: &mut S,
    oracle: &mut O,
    evaluator: E,
    rng: &mut R,
    seed: u64,
    opts: &SessionOptions,
    resume: Option<Resumed>,
    (every, save): (u64, Save<'_, S, O, R>),
) -> Result<RunSummary>
where
    O: Oracle<f64> + CallCounter,
    S: Solver<f64, O>,
    E: Evaluate,
    R: Rng + ?Sized,
{
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create the run folder {}", opts.out.display()))?;
    let max_iters = opts.budget.max_iters;
    let watch = opts.watch.clone().unwrap_or_else(|| {
        let limit = |v: u64| (v != u64::MAX).then_some(v);
        let limits = Limits {
            iters: limit(max_iters),
            epochs: evaluator.epoch_budget(),
            calls: limit(opts.budget.max_oracle_calls),
            warm_calls: None,
        };
        Watch::new(opts.stop.clone(), limits, String::new())
    });
    watch.set_phase(Phase::Init);
    let pending = resume.as_ref().is_some_and(|r| r.position.pending_eval);
    let (mut obs, start_iter) = RunObserver::new(evaluator, opts, watch.clone(), resume)?;
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let report = std::thread::scope(|scope| {
        let (w, bar) = (&watch, obs.bar.clone());
        let log = opts.progress == ProgressMode::Log;
        // Nothing to show without a bar or a log (a comparison's jobs: its
        // board reads the watch).
        if bar.is_some() || log {
            scope.spawn(move || tick(w, bar.as_ref(), log, &done_rx));
        }
        let report = drive(
            solver,
            oracle,
            rng,
            opts,
            &mut obs,
            (start_iter, pending),
            (every, save),
        );
        drop(done_tx);
        report
    });
    // Every stop — budget, breakdown, Ctrl-C, SIGTERM, SIGHUP — wrote its
    // final checkpoint in `drive` (not a stop during the warm start, which
    // has no resumable state).
    let wall_s = obs.start.elapsed().as_secs_f64();
    let RunObserver {
        trace,
        records,
        error,
        breakdown,
        abandoned,
        ..
    } = obs;
    // After a failed write the `.part` file stays as it is: complete lines.
    if let Some(e) = error {
        let at = records.last().map_or(0, |r| r.iter);
        return Err(anyhow::Error::new(IoFailure(e.context(format!(
            "the run stopped at iteration {at}; the trace's complete lines are in {}",
            opts.out.join("trace.jsonl.part").display()
        )))));
    }
    trace
        .finish()
        .map_err(|e| anyhow::Error::new(IoFailure(e)))?;
    let mut report = report.map_err(|e| anyhow::anyhow!("{e}"))?;
    if abandoned {
        // A stop during the last evaluation (even the one at the budget's
        // end): the run was interrupted, its last iteration not evaluated.
        report.termination = Termination::Stopped;
    }
    // The core's reason (a non-finite or diverged iterate) first, else what
    // the observer saw (a non-finite metric or oracle output).
    let breakdown = describe_breakdown(
        report.termination,
        solver.x(),
        solver.y(),
        report.iters,
        &opts.budget,
    )
    .map(|d| match watch.nonfinite() {
        Some(o) => format!("{d}; first non-finite oracle output: {o}"),
        None => d,
    })
    .or(breakdown);
    write_summary(
        (solver.name(), solver.x(), seed),
        &report,
        records,
        wall_s,
        breakdown,
        opts,
    )
}

/// Writes `summary.json` (and the plots) of a run that ended.
fn write_summary(
    (solver, x, seed): (&str, &[f64], u64),
    report: &bilevel_core::Report,
    records: Vec<TraceRecord>,
    wall_s: f64,
    breakdown: Option<String>,
    opts: &SessionOptions,
) -> Result<RunSummary> {
    let last = records.last();
    let summary = RunSummary {
        solver: solver.to_string(),
        seed,
        termination: termination_name(report.termination, &opts.stop),
        iters: report.iters,
        oracle_calls: report.counts.oracle_calls(),
        calls: CallsRecord::from(&report.counts),
        wall_s,
        final_metrics: last.map(|r| r.metrics.clone()).unwrap_or_default(),
        x: x.to_vec(),
        breakdown,
    };
    let json = serde_json::to_vec_pretty(&summary).context("cannot encode the summary")?;
    write_atomic(&opts.out.join("summary.json"), &json)
        .map_err(|e| anyhow::Error::new(IoFailure(e)))?;
    if opts.plots && records.is_empty() {
        // Stopped during the first evaluation: nothing to plot.
        let _ = std::io::stderr()
            .lock()
            .write_all(b"note: no plots for this run: it stopped before its first trace line\n");
    } else if opts.plots {
        let run = RunTrace {
            solver: summary.solver.clone(),
            summary: Some(summary.clone()),
            records,
            identity: None,
            expect: None,
        };
        // A run that broke down may have nothing finite to plot: its summary
        // says what broke, and the missing plots are only noted.
        match plot_runs(&opts.out.join("plots"), std::slice::from_ref(&run)) {
            Err(e) if summary.breakdown.is_some() => {
                let line = format!("note: no plots for this run: {e:#}\n");
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            r => {
                r?;
            }
        }
    }
    Ok(summary)
}
