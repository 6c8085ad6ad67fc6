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
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bilevel_core::{
    Budget, CallCounter, Control, Counts, Observe, Oracle, Progress, RunLoop, Solver, Termination,
};
use indicatif::{ProgressBar, ProgressStyle};
use rand_core::Rng;
use serde::{Deserialize, Serialize};

use crate::aggregate::{plot_runs, RunTrace};
use crate::exit::IoFailure;
use crate::output::{nonfinite, write_atomic, CallsRecord, TraceRecord, TraceWriter};
use crate::watch::{Limits, Phase, Watch};

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

struct RunObserver<'a, E> {
    evaluator: E,
    names: Vec<String>,
    trace: TraceWriter,
    every: u64,
    start: Instant,
    stop: &'a AtomicBool,
    bar: Option<ProgressBar>,
    log_every: u64,
    max_iters: u64,
    records: Vec<TraceRecord>,
    error: Option<anyhow::Error>,
    last_logged: u64,
    watch: Arc<Watch>,
    /// What broke (a non-finite metric or oracle output), first seen.
    breakdown: Option<String>,
    /// Trace lines before the one `observe_final` wrote (the lines a
    /// checkpoint at the stop counts).
    lines_before_final: Option<usize>,
    /// A stop request came during an evaluation, which was given up: the
    /// run ends at that iteration without its trace line (a resume
    /// evaluates it first).
    abandoned: bool,
}

impl<'a, E: Evaluate> RunObserver<'a, E> {
    /// The observer of a run with `opts`: the trace file created (or, with
    /// `resume`, continued from the kept lines), the progress display chosen.
    /// Also returns the run loop's start iteration of a resumed run.
    fn new(
        evaluator: E,
        opts: &'a SessionOptions,
        watch: Arc<Watch>,
        resume: Option<Resumed>,
    ) -> Result<(Self, Option<u64>)> {
        let max_iters = opts.budget.max_iters;
        let bar = (opts.progress == ProgressMode::Bar).then(|| make_bar(&watch));
        let names = evaluator.metric_names();
        let io = |e| anyhow::Error::new(IoFailure(e));
        let (trace, records, start, last_logged, start_iter) = match resume {
            None => (
                TraceWriter::create(&opts.out).map_err(io)?,
                Vec::new(),
                Instant::now(),
                0,
                None,
            ),
            Some(r) => {
                let now = Instant::now();
                let spent = Duration::try_from_secs_f64(r.position.elapsed_s).unwrap_or_default();
                (
                    TraceWriter::resume(&opts.out, &r.kept).map_err(io)?,
                    r.records,
                    now.checked_sub(spent).unwrap_or(now),
                    r.position.last_logged,
                    Some(r.position.start_iter),
                )
            }
        };
        let obs = RunObserver {
            evaluator,
            names,
            trace,
            every: opts.eval_every.max(1),
            start,
            stop: &opts.stop,
            bar,
            log_every: if opts.progress == ProgressMode::Log {
                if max_iters == u64::MAX {
                    // No iteration budget (epochs): log at every trace line.
                    opts.eval_every.max(1)
                } else {
                    (max_iters / 10).max(1)
                }
            } else {
                0
            },
            max_iters,
            records,
            error: None,
            last_logged,
            watch,
            breakdown: None,
            lines_before_final: None,
            abandoned: false,
        };
        Ok((obs, start_iter))
    }
}

impl<E: Evaluate> RunObserver<'_, E> {
    fn record(&mut self, p: &Progress<'_, f64>) {
        if self.abandoned || self.records.last().is_some_and(|r| r.iter == p.iter) {
            return;
        }
        let phase = self.watch.phase();
        self.watch.set_phase(Phase::Evaluating);
        let values = self.evaluator.evaluate_or_stop(p.x, p.y, self.stop);
        self.watch.set_phase(phase);
        let Some(values) = values else {
            self.abandoned = true;
            return;
        };
        if self.breakdown.is_none() {
            if let Some((n, v)) = self.names.iter().zip(&values).find(|(_, v)| !v.is_finite()) {
                self.breakdown = Some(format!("metric {n} = {v} at iteration {}", p.iter));
            }
        }
        let calls = CallsRecord::from(&p.counts);
        let rec = TraceRecord {
            iter: p.iter,
            epoch: self.evaluator.epoch(&p.counts),
            oracle_calls: calls.total(),
            calls,
            wall_s: self.start.elapsed().as_secs_f64(),
            metrics: self.names.iter().cloned().zip(values).collect(),
        };
        if let Err(e) = self.trace.append(&rec) {
            self.error.get_or_insert(e);
        }
        self.records.push(rec);
        self.show(p);
    }

    fn headline(&self) -> String {
        let Some(r) = self.records.last() else {
            return String::new();
        };
        let metric = self
            .names
            .first()
            .and_then(|n| r.metrics.get(n).map(|v| format!("{n} {v:.6e}")))
            .unwrap_or_default();
        // A budget in epochs or calls is shown beside the count.
        let epochs = self
            .watch
            .limits
            .epochs
            .map_or_else(String::new, |e| format!("/{e}"));
        let calls = match (self.watch.limits.iters, self.watch.limits.calls) {
            (None, Some(c)) => format!("/{c}"),
            _ => String::new(),
        };
        format!(
            "epoch {:.2}{epochs}  {metric}  calls {}{calls}",
            r.epoch, r.oracle_calls
        )
    }

    fn show(&mut self, p: &Progress<'_, f64>) {
        if let Some(bar) = &self.bar {
            set_bar(bar, &self.watch);
            bar.set_message(self.headline());
        } else if self.log_every > 0 && (p.iter >= self.last_logged + self.log_every || p.iter == 0)
        {
            self.last_logged = p.iter;
            let secs = self.start.elapsed().as_secs_f64();
            let rate = if secs > 0.0 {
                p.iter as f64 / secs
            } else {
                0.0
            };
            // One write per line (stderr is unbuffered: `eprintln!` would
            // issue one system call per formatted piece, and lines of
            // parallel runs could interleave). A closed stderr is no reason
            // to stop a run.
            let line = if self.max_iters == u64::MAX {
                // No iteration budget: the epoch or call budget is in the
                // headline, and an ETA from it.
                let eta = self
                    .watch
                    .fraction()
                    .map_or_else(String::new, |(d, t, _)| eta(d, t, secs));
                format!(
                    "iter {}  {}  {:.0} it/s  {:.1}s{eta}\n",
                    p.iter,
                    self.headline(),
                    rate,
                    secs
                )
            } else {
                format!(
                    "iter {}/{}  {}  {:.0} it/s  {:.1}s\n",
                    p.iter,
                    self.max_iters,
                    self.headline(),
                    rate,
                    secs
                )
            };
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }
}

impl<E: Evaluate> Observe<f64> for RunObserver<'_, E> {
    fn observe_init(&mut self, p: &Progress<'_, f64>) -> Control {
        self.watch.set_iter(p.iter, self.evaluator.epoch(&p.counts));
        self.watch.set_phase(Phase::Iterating);
        self.record(p);
        self.control()
    }
    fn observe_iter(&mut self, p: &Progress<'_, f64>) -> Control {
        self.watch.set_iter(p.iter, self.evaluator.epoch(&p.counts));
        if p.iter.is_multiple_of(self.every) {
            self.record(p);
        } else if let Some(bar) = &self.bar {
            set_bar(bar, &self.watch);
        }
        if self.evaluator.epochs_done(&p.counts) {
            return Control::Stop(Termination::EpochBudget);
        }
        self.control()
    }
    fn observe_final(&mut self, p: &Progress<'_, f64>, _reason: Termination) {
        self.watch.set_iter(p.iter, self.evaluator.epoch(&p.counts));
        self.lines_before_final = Some(self.records.len());
        self.record(p);
        self.watch.set_phase(Phase::Done);
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl<E> RunObserver<'_, E> {
    fn control(&mut self) -> Control {
        if self.breakdown.is_none() {
            self.breakdown = self.watch.nonfinite();
        }
        if self.error.is_some() || self.stop.load(Ordering::Relaxed) {
            Control::Stop(Termination::Stopped)
        } else if self.breakdown.is_some() {
            Control::Stop(Termination::NonFinite)
        } else {
            Control::Continue
        }
    }
}

/// ` eta 12s` from progress `done` of `total` after `secs` seconds.
fn eta(done: f64, total: f64, secs: f64) -> String {
    if done <= 0.0 || secs <= 0.0 || done >= total {
        return String::new();
    }
    let left = (total - done) * secs / done;
    format!(
        "  eta {}",
        indicatif::HumanDuration(Duration::from_secs_f64(left))
    )
}

/// Moves a bar to the run's progress in its budget (in thousandths of an
/// epoch for an epoch budget).
fn set_bar(bar: &ProgressBar, w: &Watch) {
    if let Some((done, _, unit)) = w.fraction() {
        bar.set_position(if unit == "epochs" {
            (done * 1000.0) as u64
        } else {
            done as u64
        });
    }
}

/// A progress bar over the run's budget: iterations, else epochs, else
/// oracle calls.
fn make_bar(w: &Watch) -> ProgressBar {
    // An epoch budget counts thousandths of an epoch: the message shows the
    // epochs themselves (`epoch 1.23/20`), the bar how far and the ETA.
    let (len, count) = match w.fraction() {
        Some((_, t, "epochs")) => ((t * 1000.0) as u64, ""),
        Some((_, t, "calls")) => (t as u64, "{pos}/{len} calls  "),
        Some((_, t, _)) => (t as u64, "{pos}/{len} iters  "),
        None => (0, "{pos} iters  "),
    };
    let bar = ProgressBar::new(len);
    let template =
        format!("{{spinner}} [{{elapsed_precise}}] {{bar:30}} {count}eta {{eta}}  {{msg}}");
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Shows the warm start's and long evaluations' progress, which no observer
/// call reports, until `done` is dropped: on the bar, or as a log line every
/// few seconds.
fn tick(w: &Watch, bar: Option<&ProgressBar>, log: bool, done: &std::sync::mpsc::Receiver<()>) {
    let start = Instant::now();
    let period = if bar.is_some() {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(5)
    };
    // An evaluation is shown once it has lasted a whole period.
    let mut last = None;
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(period) {
        let now = (w.phase(), w.iter());
        let shown = now.0 == Phase::Init || (now.0 == Phase::Evaluating && last == Some(now));
        last = Some(now);
        if !shown {
            continue;
        }
        if let Some(bar) = bar {
            bar.set_message(w.describe());
        } else if log {
            let line = format!("{}  {:.1}s\n", w.describe(), start.elapsed().as_secs_f64());
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }
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

/// The run loop with checkpoints: mid-run ones every `every` iterations
/// (a failed save stops the run, its error reported), one at the end.
fn drive<S, O, E, R>(
    solver: &mut S,
    oracle: &mut O,
    rng: &mut R,
    opts: &SessionOptions,
    obs: &mut RunObserver<'_, E>,
    (resume_at, pending): (Option<u64>, bool),
    (every, save): (u64, Save<'_, S, O, R>),
) -> Result<bilevel_core::Report>
where
    O: Oracle<f64> + CallCounter,
    S: Solver<f64, O>,
    E: Evaluate,
    R: Rng + ?Sized,
{
    let core = |e: bilevel_core::Error| anyhow::anyhow!("{e}");
    let mut l = match resume_at {
        None => RunLoop::start(solver, oracle, rng, &opts.budget, obs).map_err(core)?,
        Some(start_iter) => RunLoop::resume(solver, &opts.budget, start_iter),
    };
    if pending {
        // The stopped run gave up this iteration's evaluation: it comes first.
        let counts = oracle.call_counts();
        obs.watch
            .set_iter(solver.iter(), obs.evaluator.epoch(&counts));
        obs.watch.set_phase(Phase::Iterating);
        obs.record(&Progress {
            iter: solver.iter(),
            x: solver.x(),
            y: solver.y(),
            counts,
        });
        if obs.abandoned {
            // Given up again: the same checkpoint, still pending.
            let pos = obs.position(solver.iter(), l.start_iter(), Some("interrupted".into()));
            obs.trace.sync()?;
            save(solver, oracle, rng, &pos)?;
            return Ok(bilevel_core::Report {
                termination: Termination::Stopped,
                iters: solver.iter().saturating_sub(l.start_iter()),
                counts: oracle.call_counts(),
            });
        }
    }
    loop {
        let Some(report) = l.step(solver, oracle, rng, obs).map_err(core)? else {
            if every > 0 && solver.iter().is_multiple_of(every) && obs.error.is_none() {
                let pos = obs.position(solver.iter(), l.start_iter(), None);
                if let Err(e) = obs
                    .trace
                    .sync()
                    .and_then(|()| save(solver, oracle, rng, &pos))
                {
                    obs.error = Some(e);
                }
            }
            continue;
        };
        // After a failed trace write the trace may lack lines a checkpoint
        // would count: the last good checkpoint stays.
        // A stop during the warm start leaves no resumable state.
        // (A stop during the first evaluation came after a whole warm start:
        // that state is resumable, its evaluation pending.)
        let in_warm_start = resume_at.is_none()
            && report.iters == 0
            && opts.stop.load(Ordering::SeqCst)
            && !obs.abandoned;
        if obs.error.is_none() && !in_warm_start {
            let stop = if obs.abandoned {
                "interrupted".to_string()
            } else {
                termination_name(report.termination, &opts.stop)
            };
            let pos = obs.position(solver.iter(), l.start_iter(), Some(stop));
            obs.trace.sync()?;
            save(solver, oracle, rng, &pos)?;
        }
        return Ok(report);
    }
}

impl<E> RunObserver<'_, E> {
    fn position(&self, iter: u64, start_iter: u64, stop: Option<String>) -> Position {
        let lines = match (&stop, self.lines_before_final) {
            (Some(_), Some(n)) => n,
            _ => self.records.len(),
        };
        Position {
            iter,
            start_iter,
            trace_lines: lines as u64,
            elapsed_s: self.start.elapsed().as_secs_f64(),
            last_logged: self.last_logged,
            stop,
            pending_eval: self.abandoned,
        }
    }
}

#[cfg(test)]
mod tests {
    use bilevel_core::solver::{Slip, SlipConfig};
    use bilevel_core::testing::{toy, CoshUpper};
    use bilevel_core::{Counted, DefaultRng};
    use rand_core::SeedableRng;

    use std::path::Path;

    use super::*;
    use crate::output::read_trace;

    const X_STAR: [f64; 2] = [2120.0 / 2729.0, -3900.0 / 2729.0];

    struct ToyEval;
    impl Evaluate for ToyEval {
        fn metric_names(&self) -> Vec<String> {
            vec!["dist_to_x_star".into(), "x0".into()]
        }
        fn evaluate(&mut self, x: &[f64], _y: &[f64]) -> Vec<f64> {
            vec![bilevel_core::kernels::dist(x, &X_STAR), x[0]]
        }
    }

    fn opts(out: &Path, iters: u64, stop: bool) -> SessionOptions {
        SessionOptions {
            out: out.to_path_buf(),
            eval_every: 100,
            budget: Budget::iters(iters),
            progress: ProgressMode::Quiet,
            stop: Arc::new(AtomicBool::new(stop)),
            plots: true,
            watch: None,
        }
    }

    fn slip() -> Slip<f64, [f64; 2], [f64; 2]> {
        let cfg = SlipConfig {
            eta: 0.01,
            eta_decay: 1.0,
            eta_decay_steps: 100.0,
            gamma: 0.3,
            nu: 0.3,
            ..SlipConfig::default()
        };
        Slip::new(cfg, [0.0; 2], [0.0; 2]).unwrap()
    }

    #[test]
    fn a_run_writes_trace_summary_and_plots() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Counted::new(toy::<f64>(0.035));
        let mut rng = DefaultRng::seed_from_u64(1);
        let s = observe_run(
            &mut slip(),
            &mut o,
            ToyEval,
            &mut rng,
            1,
            &opts(dir.path(), 1000, false),
        )
        .unwrap();
        assert_eq!(s.termination, "max_iters");
        assert_eq!(s.iters, 1000);
        let trace = read_trace(&dir.path().join("trace.jsonl")).unwrap();
        // Iterations 0, 100, …, 1000.
        assert_eq!(trace.len(), 11);
        assert_eq!(trace.last().unwrap().iter, 1000);
        assert!(
            trace.last().unwrap().metrics["dist_to_x_star"] < trace[0].metrics["dist_to_x_star"]
        );
        let summary: RunSummary =
            serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(summary, s);
        assert_eq!(summary.oracle_calls, 3 + 5 * 1000);
        for stem in [
            "dist_to_x_star_vs_iters",
            "dist_to_x_star_vs_calls",
            "x0_vs_iters",
        ] {
            assert!(
                dir.path()
                    .join("plots")
                    .join(format!("{stem}.svg"))
                    .exists(),
                "{stem}"
            );
            assert!(
                dir.path()
                    .join("plots")
                    .join(format!("{stem}.png"))
                    .exists(),
                "{stem}"
            );
        }
        assert!(!dir.path().join("trace.jsonl.part").exists());
    }

    #[test]
    fn same_seed_gives_the_same_trace_apart_from_wall_time() {
        let strip = |dir: &Path| {
            read_trace(&dir.join("trace.jsonl"))
                .unwrap()
                .into_iter()
                .map(|mut r| {
                    r.wall_s = 0.0;
                    serde_json::to_string(&r).unwrap()
                })
                .collect::<Vec<_>>()
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for d in [&a, &b] {
            let mut o = Counted::new(toy::<f64>(0.035));
            let mut rng = DefaultRng::seed_from_u64(9);
            observe_run(
                &mut slip(),
                &mut o,
                ToyEval,
                &mut rng,
                9,
                &opts(d.path(), 500, false),
            )
            .unwrap();
        }
        assert_eq!(strip(a.path()), strip(b.path()));
    }

    struct Phi(CoshUpper<f64>);
    impl Evaluate for Phi {
        fn metric_names(&self) -> Vec<String> {
            vec!["phi".into()]
        }
        fn evaluate(&mut self, x: &[f64], _y: &[f64]) -> Vec<f64> {
            vec![self.0.phi(x)]
        }
    }

    #[test]
    fn stop_flag_and_breakdown_still_leave_valid_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Counted::new(toy::<f64>(0.035));
        let mut rng = DefaultRng::seed_from_u64(1);
        let s = observe_run(
            &mut slip(),
            &mut o,
            ToyEval,
            &mut rng,
            1,
            &opts(dir.path(), 1000, true),
        )
        .unwrap();
        assert_eq!(s.termination, "interrupted");
        assert_eq!(
            read_trace(&dir.path().join("trace.jsonl")).unwrap().len(),
            1
        );

        // A plain (unnormalised) step on the cosh problem breaks down.
        let cfg = SlipConfig {
            eta: 0.05,
            gamma: 0.5,
            nu: 0.5,
            warm_steps: 30,
            normalize: false,
            ..SlipConfig::default()
        };
        let mut s = Slip::new(cfg, [8.0; 2], [0.0; 2]).unwrap();
        let problem = CoshUpper::new(2, 1.0, 0.0);
        let mut o = Counted::new(problem);
        let dir = tempfile::tempdir().unwrap();
        let mut o2 = opts(dir.path(), 1000, false);
        o2.eval_every = 1;
        let sum = observe_run(&mut s, &mut o, Phi(problem), &mut rng, 1, &o2).unwrap();
        assert!(
            sum.termination == "non_finite" || sum.termination == "diverged",
            "{}",
            sum.termination
        );
        let trace = read_trace(&dir.path().join("trace.jsonl")).unwrap();
        assert_eq!(trace.last().unwrap().iter, sum.iters);
        assert!(dir.path().join("summary.json").exists());
    }
}
