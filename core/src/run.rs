//! The allocation-free run loop: budgets, termination reasons, observers.

use rand_core::Rng;

use crate::oracle::{CallCounter, Counts};
use crate::solver::{Solver, SolverState};
use crate::{kernels, Error, Oracle, Real};

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Termination {
    /// The iteration budget was used up.
    MaxIters,
    /// The oracle-call budget was used up.
    OracleBudget,
    /// An observer's target was reached.
    TargetReached,
    /// x or y stopped being finite (NaN or ±∞).
    NonFinite,
    /// ‖x‖ or ‖y‖ exceeded the divergence threshold.
    Diverged,
    /// An observer asked to stop (for example on Ctrl-C).
    Stopped,
    /// The epoch budget (passes over the lower level's training data,
    /// counted by an observer) was used up.
    EpochBudget,
}

impl Termination {
    /// Stable name used in result files.
    pub const fn name(self) -> &'static str {
        match self {
            Termination::MaxIters => "max_iters",
            Termination::OracleBudget => "oracle_budget",
            Termination::TargetReached => "target_reached",
            Termination::NonFinite => "non_finite",
            Termination::Diverged => "diverged",
            Termination::Stopped => "stopped",
            Termination::EpochBudget => "epoch_budget",
        }
    }

    /// `true` for numerical breakdown (`NonFinite`, `Diverged`).
    pub const fn is_breakdown(self) -> bool {
        matches!(self, Termination::NonFinite | Termination::Diverged)
    }
}

impl core::fmt::Display for Termination {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Limits of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Budget {
    /// Outer iterations (after the warm start).
    pub max_iters: u64,
    /// Gradient and product calls in all, warm start included
    /// ([`Counts::oracle_calls`]); `u64::MAX` for no limit.
    pub max_oracle_calls: u64,
    /// The run stops as [`Termination::Diverged`] when ‖x‖ or ‖y‖ exceeds this;
    /// `f64::INFINITY` for no limit.
    pub divergence: f64,
}

impl Budget {
    /// A budget of `max_iters` iterations, no call limit, divergence at 1e12.
    pub const fn iters(max_iters: u64) -> Self {
        Budget {
            max_iters,
            max_oracle_calls: u64::MAX,
            divergence: 1e12,
        }
    }

    /// The same budget with an oracle-call limit.
    #[must_use]
    pub const fn with_oracle_calls(mut self, calls: u64) -> Self {
        self.max_oracle_calls = calls;
        self
    }

    /// The same budget with a divergence threshold.
    #[must_use]
    pub const fn with_divergence(mut self, threshold: f64) -> Self {
        self.divergence = threshold;
        self
    }
}

/// What an observer sees.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a, T> {
    /// Outer iterations completed (0 right after init).
    pub iter: u64,
    /// The current upper variable.
    pub x: &'a [T],
    /// The current lower variable.
    pub y: &'a [T],
    /// Oracle calls so far, warm start included.
    pub counts: Counts,
}

/// An observer's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Control {
    /// Keep going.
    Continue,
    /// Stop with this reason.
    Stop(Termination),
}

/// Watches a run. Every method has a no-op default; `()` observes nothing.
pub trait Observe<T> {
    /// After `init` (the warm start), before the first iteration.
    fn observe_init(&mut self, _p: &Progress<'_, T>) -> Control {
        Control::Continue
    }
    /// After each iteration.
    fn observe_iter(&mut self, _p: &Progress<'_, T>) -> Control {
        Control::Continue
    }
    /// Once, at the end, with the reason.
    fn observe_final(&mut self, _p: &Progress<'_, T>, _reason: Termination) {}
}

impl<T> Observe<T> for () {}

impl<T, A: Observe<T>, B: Observe<T>> Observe<T> for (A, B) {
    fn observe_init(&mut self, p: &Progress<'_, T>) -> Control {
        let a = self.0.observe_init(p);
        let b = self.1.observe_init(p);
        if a == Control::Continue {
            b
        } else {
            a
        }
    }
    fn observe_iter(&mut self, p: &Progress<'_, T>) -> Control {
        let a = self.0.observe_iter(p);
        let b = self.1.observe_iter(p);
        if a == Control::Continue {
            b
        } else {
            a
        }
    }
    fn observe_final(&mut self, p: &Progress<'_, T>, reason: Termination) {
        self.0.observe_final(p, reason);
        self.1.observe_final(p, reason);
    }
}

impl<T, O: Observe<T> + ?Sized> Observe<T> for &mut O {
    fn observe_init(&mut self, p: &Progress<'_, T>) -> Control {
        (**self).observe_init(p)
    }
    fn observe_iter(&mut self, p: &Progress<'_, T>) -> Control {
        (**self).observe_iter(p)
    }
    fn observe_final(&mut self, p: &Progress<'_, T>, reason: Termination) {
        (**self).observe_final(p, reason);
    }
}

/// Forwards `observe_iter` only every `n`-th iteration (and always the last).
#[derive(Debug, Clone)]
pub struct Every<O> {
    /// The cadence; 0 and 1 both mean every iteration.
    pub n: u64,
    /// The observer.
    pub inner: O,
}

impl<T, O: Observe<T>> Observe<T> for Every<O> {
    fn observe_init(&mut self, p: &Progress<'_, T>) -> Control {
        self.inner.observe_init(p)
    }
    fn observe_iter(&mut self, p: &Progress<'_, T>) -> Control {
        if self.n <= 1 || p.iter.is_multiple_of(self.n) {
            self.inner.observe_iter(p)
        } else {
            Control::Continue
        }
    }
    fn observe_final(&mut self, p: &Progress<'_, T>, reason: Termination) {
        self.inner.observe_final(p, reason);
    }
}

/// Stops the run as [`Termination::TargetReached`] when the predicate on (x, y)
/// holds.
#[derive(Debug, Clone)]
pub struct Target<F>(pub F);

impl<T, F: FnMut(&[T], &[T]) -> bool> Observe<T> for Target<F> {
    fn observe_iter(&mut self, p: &Progress<'_, T>) -> Control {
        if (self.0)(p.x, p.y) {
            Control::Stop(Termination::TargetReached)
        } else {
            Control::Continue
        }
    }
}

/// The outcome of [`run`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Report {
    /// Why the run stopped.
    pub termination: Termination,
    /// Outer iterations taken.
    pub iters: u64,
    /// Oracle calls, warm start included.
    pub counts: Counts,
}

fn progress<'a, T, S, O>(s: &'a S, o: &O) -> Progress<'a, T>
where
    T: Real,
    O: Oracle<T> + CallCounter,
    S: Solver<T, O>,
{
    Progress {
        iter: s.iter(),
        x: s.x(),
        y: s.y(),
        counts: o.call_counts(),
    }
}

fn breakdown<T: Real>(x: &[T], y: &[T], divergence: f64) -> Option<Termination> {
    if !kernels::all_finite(x) || !kernels::all_finite(y) {
        return Some(Termination::NonFinite);
    }
    if divergence.is_finite() {
        let lim = divergence * divergence;
        if kernels::norm2sq(x).to_f64() > lim || kernels::norm2sq(y).to_f64() > lim {
            return Some(Termination::Diverged);
        }
    }
    None
}

/// Runs `solver` on `oracle` until a budget, a target or a breakdown stops it.
///
/// The oracle must expose its call counts (wrap it in
/// [`Counted`](crate::Counted)). Nothing here allocates. This is
/// [`RunLoop::start`] followed by [`RunLoop::step`] until the run ends.
///
/// ```
/// # use bilevel_core::{run, Budget, Counted, Termination, DefaultRng};
/// # use bilevel_core::solver::{BoRep, BoRepConfig};
/// # use bilevel_core::testing::toy;
/// # use rand_core::SeedableRng;
/// let mut oracle = Counted::new(toy::<f64>(0.1));
/// let mut solver = BoRep::new(BoRepConfig::default(), [0.0_f64; 2], [0.0_f64; 2])?;
/// let mut rng = DefaultRng::seed_from_u64(42);
/// let report = run(&mut solver, &mut oracle, &mut rng, &Budget::iters(100), &mut ())?;
/// assert_eq!(report.termination, Termination::MaxIters);
/// # Ok::<(), bilevel_core::Error>(())
/// ```
pub fn run<T, S, O, R, W>(
    solver: &mut S,
    oracle: &mut O,
    rng: &mut R,
    budget: &Budget,
    observer: &mut W,
) -> Result<Report, Error>
where
    T: Real,
    O: Oracle<T> + CallCounter,
    S: Solver<T, O>,
    R: Rng + ?Sized,
    W: Observe<T> + ?Sized,
{
    let mut l = RunLoop::start(solver, oracle, rng, budget, observer)?;
    loop {
        if let Some(report) = l.step(solver, oracle, rng, observer)? {
            return Ok(report);
        }
    }
}

/// The run loop of [`run`], one iteration per call, so that a caller can
/// save the whole state between iterations (solver and generator through
/// [`VisitState`](crate::state::VisitState), counters, its own observer)
/// and later continue with [`RunLoop::resume`]. A run driven this way has
/// the same bits as [`run`], stopped and resumed or not.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunLoop {
    budget: Budget,
    start_iter: u64,
    reason: Option<Termination>,
    done: bool,
}

impl RunLoop {
    /// Initialises the solver (its warm start), checks the iterate and calls
    /// the observer's `observe_init`.
    pub fn start<T, S, O, R, W>(
        solver: &mut S,
        oracle: &mut O,
        rng: &mut R,
        budget: &Budget,
        observer: &mut W,
    ) -> Result<Self, Error>
    where
        T: Real,
        O: Oracle<T> + CallCounter,
        S: Solver<T, O>,
        R: Rng + ?Sized,
        W: Observe<T> + ?Sized,
    {
        solver.init(oracle, rng)?;
        let mut reason = breakdown(solver.x(), solver.y(), budget.divergence);
        if reason.is_none() {
            if let Control::Stop(r) = observer.observe_init(&progress(solver, oracle)) {
                reason = Some(r);
            }
        }
        Ok(RunLoop {
            budget: *budget,
            start_iter: solver.iter(),
            reason,
            done: false,
        })
    }

    /// Continues a run whose solver, generator and oracle counters were
    /// restored to their state between two iterations: no `init`, no
    /// `observe_init`. `start_iter` is [`RunLoop::start_iter`] of the run
    /// that was saved; `budget` may differ from that run's (a longer run
    /// continues, a shorter one ends at its next step). A restored iterate
    /// that is not finite or beyond the divergence threshold ends the run
    /// at the first step, as it would have ended the original.
    pub fn resume<T, S>(solver: &S, budget: &Budget, start_iter: u64) -> Self
    where
        T: Real,
        S: SolverState<T> + ?Sized,
    {
        RunLoop {
            budget: *budget,
            start_iter,
            reason: breakdown(solver.x(), solver.y(), budget.divergence),
            done: false,
        }
    }

    /// The solver's iteration count when the run started (after the warm
    /// start): iterations of this run are counted from there.
    pub const fn start_iter(&self) -> u64 {
        self.start_iter
    }

    /// Takes one iteration, or ends the run when a budget, the observer or
    /// a breakdown says so: then `observe_final` is called and the report
    /// returned. Calls after the end return the report again without
    /// stepping or observing.
    pub fn step<T, S, O, R, W>(
        &mut self,
        solver: &mut S,
        oracle: &mut O,
        rng: &mut R,
        observer: &mut W,
    ) -> Result<Option<Report>, Error>
    where
        T: Real,
        O: Oracle<T> + CallCounter,
        S: Solver<T, O>,
        R: Rng + ?Sized,
        W: Observe<T> + ?Sized,
    {
        if self.reason.is_none() {
            if solver.iter().saturating_sub(self.start_iter) >= self.budget.max_iters {
                self.reason = Some(Termination::MaxIters);
            } else if oracle.call_counts().oracle_calls() >= self.budget.max_oracle_calls {
                self.reason = Some(Termination::OracleBudget);
            } else {
                solver.step(oracle, rng)?;
                self.reason = breakdown(solver.x(), solver.y(), self.budget.divergence);
                if self.reason.is_none() {
                    if let Control::Stop(r) = observer.observe_iter(&progress(solver, oracle)) {
                        self.reason = Some(r);
                    }
                }
            }
        }
        let Some(termination) = self.reason else {
            return Ok(None);
        };
        let p = progress(solver, oracle);
        if !self.done {
            self.done = true;
            observer.observe_final(&p, termination);
        }
        Ok(Some(Report {
            termination,
            iters: solver.iter().saturating_sub(self.start_iter),
            counts: p.counts,
        }))
    }
}
