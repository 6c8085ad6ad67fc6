//! The observer of a run ([`RunObserver`]: trace lines, progress, stop
//! requests and breakdowns) and the run loop with checkpoints ([`drive`]).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bilevel_core::{CallCounter, Control, Observe, Oracle, Progress, RunLoop, Solver, Termination};
use indicatif::ProgressBar;
use rand_core::Rng;

use super::progress::{eta, make_bar, set_bar};
use super::{termination_name, Evaluate, Position, ProgressMode, Resumed, Save, SessionOptions};
use crate::exit::IoFailure;
use crate::output::{CallsRecord, TraceRecord, TraceWriter};
use crate::watch::{Phase, Watch};

/// The observer of one run: evaluates and writes the trace lines, shows
/// progress, and turns stop requests and breakdowns into a stop.
pub(super) struct RunObserver<'a, E> {
    pub(super) evaluator: E,
    pub(super) names: Vec<String>,
    pub(super) trace: TraceWriter,
    pub(super) every: u64,
    pub(super) start: Instant,
    pub(super) stop: &'a AtomicBool,
    pub(super) bar: Option<ProgressBar>,
    pub(super) log_every: u64,
    pub(super) max_iters: u64,
    pub(super) records: Vec<TraceRecord>,
    pub(super) error: Option<anyhow::Error>,
    pub(super) last_logged: u64,
    pub(super) watch: Arc<Watch>,
    /// What broke (a non-finite metric or oracle output), first seen.
    pub(super) breakdown: Option<String>,
    /// Trace lines before the one `observe_final` wrote (the lines a
    /// checkpoint at the stop counts).
    pub(super) lines_before_final: Option<usize>,
    /// A stop request came during an evaluation, which was given up: the
    /// run ends at that iteration without its trace line (a resume
    /// evaluates it first).
    pub(super) abandoned: bool,
}

impl<'a, E: Evaluate> RunObserver<'a, E> {
    /// The observer of a run with `opts`: the trace file created (or, with
    /// `resume`, continued from the kept lines), the progress display chosen.
    /// Also returns the run loop's start iteration of a resumed run.
    pub(super) fn new(
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

/// The run loop with checkpoints: mid-run ones every `every` iterations
/// (a failed save stops the run, its error reported), one at the end.
pub(super) fn drive<S, O, E, R>(
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
