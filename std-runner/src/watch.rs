//! The live state of one run, shared between the run's thread, its
//! progress display and a comparison's overall progress bar: the phase
//! (initialisation and warm start, iterations, evaluation), the iteration,
//! the oracle calls, and the first non-finite oracle output.
//!
//! [`Watched`] wraps a run's oracle: it counts calls into the [`Watch`]
//! (so a long warm start shows progress before the first iteration), answers
//! the core's [`Oracle::stop_requested`] from the stop flag (so a warm start
//! ends on Ctrl-C or SIGTERM), and checks every output for NaN and infinity
//! (so a breakdown says which oracle broke, and when).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use bilevel_core::oracle::{
    CrossJvp, Level, LowerGradX, LowerGradY, LowerHvp, Oracle, UpperGradX, UpperGradY, UpperValue,
};
use bilevel_core::{LowerValue, Real};
use rand_core::Rng;

/// What a run is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The solver's `init`: the warm start.
    Init = 0,
    /// Outer iterations.
    Iterating = 1,
    /// Evaluating the metrics on the whole data.
    Evaluating = 2,
    /// Ended.
    Done = 3,
    /// Not started yet (a comparison's job waiting for a thread).
    Waiting = 4,
}

/// The budget a run has, for progress displays: what its bar counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Outer iterations, if limited.
    pub iters: Option<u64>,
    /// Epochs, if limited.
    pub epochs: Option<u64>,
    /// Oracle calls, if limited.
    pub calls: Option<u64>,
    /// Oracle calls the warm start takes, when known.
    pub warm_calls: Option<u64>,
}

/// The live state of one run.
#[derive(Debug)]
pub struct Watch {
    stop: Arc<AtomicBool>,
    phase: AtomicU8,
    iter: AtomicU64,
    /// Epochs × 1000.
    epoch_milli: AtomicU64,
    calls: AtomicU64,
    nonfinite: Mutex<Option<String>>,
    /// The run's budget.
    pub limits: Limits,
    /// A label (`bo-rep s42`) for a comparison's display.
    pub label: String,
}

impl Watch {
    /// A run about to start, stopped by `stop`.
    pub fn new(stop: Arc<AtomicBool>, limits: Limits, label: String) -> Arc<Self> {
        Arc::new(Watch {
            stop,
            phase: AtomicU8::new(Phase::Waiting as u8),
            iter: 0.into(),
            epoch_milli: 0.into(),
            calls: 0.into(),
            nonfinite: Mutex::new(None),
            limits,
            label,
        })
    }

    /// The stop flag.
    pub fn stop_flag(&self) -> &Arc<AtomicBool> {
        &self.stop
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Relaxed) {
            0 => Phase::Init,
            1 => Phase::Iterating,
            2 => Phase::Evaluating,
            3 => Phase::Done,
            _ => Phase::Waiting,
        }
    }

    /// Enters a phase.
    pub fn set_phase(&self, p: Phase) {
        self.phase.store(p as u8, Ordering::Relaxed);
    }

    /// Records the iteration and epoch reached.
    pub fn set_iter(&self, iter: u64, epoch: f64) {
        self.iter.store(iter, Ordering::Relaxed);
        self.epoch_milli
            .store((epoch * 1000.0) as u64, Ordering::Relaxed);
    }

    /// Iterations completed.
    pub fn iter(&self) -> u64 {
        self.iter.load(Ordering::Relaxed)
    }

    /// Epochs completed.
    pub fn epoch(&self) -> f64 {
        self.epoch_milli.load(Ordering::Relaxed) as f64 / 1000.0
    }

    /// Oracle calls through the watched oracle.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The first non-finite oracle output, described.
    pub fn nonfinite(&self) -> Option<String> {
        self.nonfinite.lock().ok().and_then(|g| g.clone())
    }

    fn note_nonfinite(&self, what: &str, index: Option<usize>, value: f64) {
        let Ok(mut g) = self.nonfinite.lock() else {
            return;
        };
        if g.is_some() {
            return;
        }
        let at = match self.phase() {
            Phase::Init | Phase::Waiting => "during the warm start (initialisation)".to_string(),
            _ => format!("in iteration {}", self.iter() + 1),
        };
        let entry = index.map_or_else(String::new, |i| format!(" (entry {i})"));
        *g = Some(format!(
            "{what} returned {value}{entry} at oracle call {} {at}",
            self.calls()
        ));
    }

    /// Progress in the run's budget, as (done, total, unit): iterations,
    /// else epochs, else oracle calls.
    pub fn fraction(&self) -> Option<(f64, f64, &'static str)> {
        if let Some(n) = self.limits.iters {
            Some((self.iter() as f64, n as f64, "iters"))
        } else if let Some(e) = self.limits.epochs {
            Some((self.epoch(), e as f64, "epochs"))
        } else {
            self.limits
                .calls
                .map(|c| (self.calls() as f64, c as f64, "calls"))
        }
    }

    /// One line for displays: the phase and the progress in the budget.
    pub fn describe(&self) -> String {
        match self.phase() {
            Phase::Init => match self.limits.warm_calls {
                Some(w) => format!("warm start {}/{w} calls", self.calls()),
                None => format!("warm start {} calls", self.calls()),
            },
            Phase::Evaluating => format!("evaluating at iter {}", self.iter()),
            Phase::Done => "done".to_string(),
            Phase::Waiting => "waiting".to_string(),
            Phase::Iterating => match self.fraction() {
                Some((d, t, "epochs")) => format!("epoch {d:.2}/{t}"),
                Some((d, t, unit)) => format!("{d}/{t} {unit}"),
                None => format!("iter {}", self.iter()),
            },
        }
    }
}

/// A comparison's overall progress: runs done of all, and the progress of
/// the runs under way — a bar on a terminal, else a line per finished run
/// (`[3/12] …`) and a status line every few seconds.
#[derive(Debug)]
pub struct Board {
    shared: Arc<BoardState>,
    ticker: Mutex<Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
}

#[derive(Debug)]
struct BoardState {
    watches: Vec<Arc<Watch>>,
    done: std::sync::atomic::AtomicUsize,
    bar: Option<indicatif::ProgressBar>,
    mode: crate::session::ProgressMode,
}

impl BoardState {
    /// The runs under way, each with its progress.
    fn running(&self) -> String {
        self.watches
            .iter()
            .filter(|w| !matches!(w.phase(), Phase::Waiting | Phase::Done))
            .map(|w| format!("{} {}", w.label, w.describe()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Board {
    /// Starts the display for the runs of `watches`.
    pub fn start(watches: Vec<Arc<Watch>>, mode: crate::session::ProgressMode) -> Self {
        use crate::session::ProgressMode;
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = indicatif::ProgressBar::new(watches.len() as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} runs  eta {eta}  {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        let shared = Arc::new(BoardState {
            watches,
            done: 0.into(),
            bar,
            mode,
        });
        let ticker = (mode != ProgressMode::Quiet).then(|| {
            let (tx, rx) = std::sync::mpsc::channel::<()>();
            let st = shared.clone();
            let period = if st.bar.is_some() {
                std::time::Duration::from_millis(250)
            } else {
                std::time::Duration::from_secs(5)
            };
            let h = std::thread::spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(period)
                {
                    let running = st.running();
                    if let Some(bar) = &st.bar {
                        bar.set_message(running);
                    } else if !running.is_empty() {
                        let line = format!(
                            "[{}/{} runs done] running: {running}\n",
                            st.done.load(Ordering::Relaxed),
                            st.watches.len()
                        );
                        let _ = std::io::Write::write_all(
                            &mut std::io::stderr().lock(),
                            line.as_bytes(),
                        );
                    }
                }
            });
            (tx, h)
        });
        Board {
            shared,
            ticker: Mutex::new(ticker),
        }
    }

    /// One run ended, as `line` says.
    pub fn finished(&self, line: &str) {
        use crate::session::ProgressMode;
        let done = self.shared.done.fetch_add(1, Ordering::Relaxed) + 1;
        let line = format!("[{done}/{}] {line}", self.shared.watches.len());
        if let Some(bar) = &self.shared.bar {
            bar.inc(1);
            bar.println(line);
        } else if self.shared.mode != ProgressMode::Quiet {
            // One write per line; a closed stderr must not stop the comparison.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr().lock(),
                format!("{line}\n").as_bytes(),
            );
        }
    }

    /// Ends the display.
    pub fn end(&self) {
        if let Some((tx, h)) = self.ticker.lock().ok().and_then(|mut t| t.take()) {
            drop(tx);
            let _ = h.join();
        }
        if let Some(bar) = &self.shared.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        self.end();
    }
}

/// An oracle watched by a [`Watch`] (module docs).
#[derive(Debug, Clone)]
pub struct Watched<O> {
    inner: O,
    watch: Arc<Watch>,
}

impl<O> Watched<O> {
    /// Wraps `inner`.
    pub fn new(inner: O, watch: Arc<Watch>) -> Self {
        Watched { inner, watch }
    }

    /// The wrapped oracle.
    pub fn inner_mut(&mut self) -> &mut O {
        &mut self.inner
    }

    fn called(&self) {
        self.watch.calls.fetch_add(1, Ordering::Relaxed);
    }

    fn check<T: Real>(&self, what: &str, out: &[T]) {
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            self.watch.note_nonfinite(what, Some(i), out[i].to_f64());
        }
    }
}

impl<T: Real, O: Oracle<T>> Oracle<T> for Watched<O> {
    type Sample = O::Sample;
    fn dim_x(&self) -> usize {
        self.inner.dim_x()
    }
    fn dim_y(&self) -> usize {
        self.inner.dim_y()
    }
    fn sample<R: Rng + ?Sized>(&mut self, level: Level, rng: &mut R) -> Self::Sample {
        self.inner.sample(level, rng)
    }
    fn stop_requested(&self) -> bool {
        self.watch.stop.load(Ordering::Relaxed) || self.inner.stop_requested()
    }
}

macro_rules! watched_grad {
    ($tr:ident, $method:ident, $name:literal) => {
        impl<T: Real, O: $tr<T>> $tr<T> for Watched<O> {
            fn $method(&mut self, x: &[T], y: &[T], s: &Self::Sample, out: &mut [T]) {
                self.called();
                self.inner.$method(x, y, s, out);
                self.check($name, out);
            }
        }
    };
}
macro_rules! watched_product {
    ($tr:ident, $method:ident, $name:literal) => {
        impl<T: Real, O: $tr<T>> $tr<T> for Watched<O> {
            fn $method(&mut self, x: &[T], y: &[T], v: &[T], s: &Self::Sample, out: &mut [T]) {
                self.called();
                self.inner.$method(x, y, v, s, out);
                self.check($name, out);
            }
        }
    };
}
watched_grad!(UpperGradY, grad_y_f, "grad_y_f");
watched_grad!(LowerGradY, grad_y_g, "grad_y_g");
watched_grad!(LowerGradX, grad_x_g, "grad_x_g");
watched_product!(CrossJvp, jvp_xy, "jvp_xy");

/// The joint hooks are forwarded (a watched oracle keeps its fused sweeps);
/// a joint call of k outputs counts k calls and checks each output.
impl<T: Real, O: UpperGradX<T>> UpperGradX<T> for Watched<O> {
    fn grad_x_f(&mut self, x: &[T], y: &[T], s: &Self::Sample, out: &mut [T]) {
        self.called();
        self.inner.grad_x_f(x, y, s, out);
        self.check("grad_x_f", out);
    }
    fn try_grads_f(
        &mut self,
        x: &[T],
        y: &[T],
        s: &Self::Sample,
        gx: &mut [T],
        gy: &mut [T],
    ) -> bool {
        let done = self.inner.try_grads_f(x, y, s, gx, gy);
        if done {
            self.called();
            self.called();
            self.check("grad_x_f", gx);
            self.check("grad_y_f", gy);
        }
        done
    }
}
impl<T: Real, O: LowerHvp<T>> LowerHvp<T> for Watched<O> {
    fn hvp_yy(&mut self, x: &[T], y: &[T], v: &[T], s: &Self::Sample, out: &mut [T]) {
        self.called();
        self.inner.hvp_yy(x, y, v, s, out);
        self.check("hvp_yy", out);
    }
    fn try_hvp_jvp(
        &mut self,
        x: &[T],
        y: &[T],
        v: &[T],
        s: &Self::Sample,
        (hv, jv): (&mut [T], &mut [T]),
    ) -> bool {
        let done = self.inner.try_hvp_jvp(x, y, v, s, (&mut *hv, &mut *jv));
        if done {
            self.called();
            self.called();
            self.check("hvp_yy", hv);
            self.check("jvp_xy", jv);
        }
        done
    }
    fn try_grad_hvp_jvp(
        &mut self,
        x: &[T],
        y: &[T],
        v: &[T],
        s: &Self::Sample,
        (gy, hv, jv): (&mut [T], &mut [T], &mut [T]),
    ) -> bool {
        let done = self
            .inner
            .try_grad_hvp_jvp(x, y, v, s, (&mut *gy, &mut *hv, &mut *jv));
        if done {
            for _ in 0..3 {
                self.called();
            }
            self.check("grad_y_g", gy);
            self.check("hvp_yy", hv);
            self.check("jvp_xy", jv);
        }
        done
    }
}

impl<T: Real, O: UpperValue<T>> UpperValue<T> for Watched<O> {
    fn f_value(&mut self, x: &[T], y: &[T], s: &Self::Sample) -> T {
        let v = self.inner.f_value(x, y, s);
        if !v.is_finite() {
            self.watch.note_nonfinite("f_value", None, v.to_f64());
        }
        v
    }
}
impl<T: Real, O: LowerValue<T>> LowerValue<T> for Watched<O> {
    fn g_value(&mut self, x: &[T], y: &[T], s: &Self::Sample) -> T {
        let v = self.inner.g_value(x, y, s);
        if !v.is_finite() {
            self.watch.note_nonfinite("g_value", None, v.to_f64());
        }
        v
    }
}

/// Samples by index pass through (they are samples, not oracle calls).
impl<T: Real, O: bilevel_core::solver::FiniteSum<T>> bilevel_core::solver::FiniteSum<T>
    for Watched<O>
{
    fn count(&self, level: Level) -> usize {
        self.inner.count(level)
    }
    fn sample_at(&mut self, level: Level, i: usize) -> Self::Sample {
        self.inner.sample_at(level, i)
    }
    fn next_index<R: Rng + ?Sized>(&mut self, level: Level, rng: &mut R) -> usize {
        self.inner.next_index(level, rng)
    }
}

#[cfg(test)]
mod tests {
    use bilevel_core::testing::toy;
    use bilevel_core::DefaultRng;
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn calls_stop_and_nonfinite_outputs_are_seen() {
        let stop = Arc::new(AtomicBool::new(false));
        let w = Watch::new(stop.clone(), Limits::default(), String::new());
        w.set_phase(Phase::Init);
        let mut o = Watched::new(toy::<f64>(0.0), w.clone());
        let mut rng = DefaultRng::seed_from_u64(1);
        let s = o.sample(Level::Lower, &mut rng);
        let mut out = [0.0; 2];
        o.grad_y_g(&[0.0; 2], &[0.0; 2], &s, &mut out);
        assert_eq!(w.calls(), 1);
        assert!(w.nonfinite().is_none());
        assert!(!Oracle::<f64>::stop_requested(&o));
        stop.store(true, Ordering::Relaxed);
        assert!(Oracle::<f64>::stop_requested(&o));
        // A NaN input makes a NaN output: noted once, with where.
        o.grad_y_g(&[f64::NAN, 0.0], &[0.0; 2], &s, &mut out);
        let msg = w.nonfinite().expect("noted");
        assert!(
            msg.contains("grad_y_g") && msg.contains("warm start"),
            "{msg}"
        );
        assert!(msg.contains("oracle call 2"), "{msg}");
    }
}
