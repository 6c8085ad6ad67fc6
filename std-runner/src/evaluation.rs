//! The metrics of spec runs, computed on a thread of their own so that a
//! long evaluation (a large evaluation set, an RNN spec) answers a stop
//! request: the run's thread waits for the result and gives the evaluation
//! up when Ctrl-C, SIGTERM or SIGHUP arrives while it runs
//! ([`Evaluate::evaluate_or_stop`]; docs/decisions.md 62).
//!
//! The evaluation thread runs the same computation on its own copy of the
//! compiled spec, in a worker pool of the run's size, so the values are the
//! same bits as on the run's thread. An evaluation given up still finishes
//! on its thread; its result is dropped (the run is ending).
//!
//! Test-only: with [`DELAY_VAR`]`=MS` in the environment each evaluation
//! first sleeps MS milliseconds (`MS@K`: each after the first K), which
//! makes a slow evaluation for the signal tests of the real binary (like
//! `BILEVEL_FAULT_WRITE_BYTES`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use anyhow::{anyhow, Result};
use bilevel_core::{Level, LowerValue, UpperValue};
use bilevel_dsl::Compiled;

use crate::session::Evaluate;

/// The test-only slow-down of evaluations (milliseconds per evaluation).
pub const DELAY_VAR: &str = "BILEVEL_TEST_EVAL_DELAY_MS";

/// How often a waiting run looks at its stop flag.
const POLL: Duration = Duration::from_millis(20);

/// The metrics of spec runs: the upper and lower objectives on the whole data
/// (noise-free for synthetic sources), then the spec's `run { metrics }`.
pub struct SpecEval {
    /// The spec, for the metric names and the epoch count.
    c: Compiled,
    /// The run's epoch budget, if any.
    max_epochs: Option<u64>,
    requests: Sender<(Vec<f64>, Vec<f64>)>,
    results: Receiver<Vec<f64>>,
    /// Evaluations sent whose result has not been received (one given up).
    in_flight: usize,
    /// The unconverged-stationarity warning was printed.
    warned: bool,
}

/// One evaluation at (x, y) on the whole-data batches.
fn values(
    c: &mut Compiled,
    (upper, lower): (&bilevel_dsl::Batch, &bilevel_dsl::Batch),
    x: &[f64],
    y: &[f64],
) -> Vec<f64> {
    let mut v = vec![c.f_value(x, y, upper), c.g_value(x, y, lower)];
    v.extend(c.metrics(x, y));
    v.extend(stationarity_values(c, (upper, lower), x, y));
    v
}

/// The trace fields of the built-in stationarity metrics, in the order of
/// [`stationarity_names`] (none when the spec asks for neither).
fn stationarity_values(
    c: &mut Compiled,
    batches: (&bilevel_dsl::Batch, &bilevel_dsl::Batch),
    x: &[f64],
    y: &[f64],
) -> Vec<f64> {
    let (phi, dist) = c.stationarity_requested();
    if !phi && !dist {
        return Vec::new();
    }
    let start = std::time::Instant::now();
    let s = c.stationarity(x, y, batches, c.stationarity_tol(), phi);
    let mut v = Vec::new();
    if phi {
        v.push(s.grad_phi_sq);
    }
    if dist {
        v.push(s.inner_distance);
    }
    v.push(s.lower_grad);
    if phi {
        v.push(s.adjoint_residual);
    }
    v.extend([
        f64::from(u8::from(s.converged)),
        s.calls as f64,
        s.tol,
        start.elapsed().as_secs_f64(),
    ]);
    v
}

/// The trace fields of the built-in stationarity metrics the spec asks for:
/// the metrics, the residuals the solves reached, whether both reached the
/// tolerance (1 or 0), the whole-data sweeps and seconds they took, and the
/// tolerance (docs/language.md "Stationarity metrics").
pub fn stationarity_names(c: &Compiled) -> Vec<String> {
    let (phi, dist) = c.stationarity_requested();
    if !phi && !dist {
        return Vec::new();
    }
    let mut v = Vec::new();
    if phi {
        v.push(bilevel_dsl::stationarity::GRAD_PHI_SQ);
    }
    if dist {
        v.push(bilevel_dsl::stationarity::INNER_DISTANCE);
    }
    v.push("stationarity_lower_grad");
    if phi {
        v.push("stationarity_adjoint_residual");
    }
    v.extend([
        CONVERGED,
        "stationarity_calls",
        "stationarity_tol",
        "stationarity_seconds",
    ]);
    v.into_iter().map(String::from).collect()
}

/// The trace field that says whether the stationarity solves converged.
pub const CONVERGED: &str = "stationarity_converged";

/// The test-only delay and the evaluations it spares, validated (a value
/// that is not `MS` or `MS@K` is an error, not ignored).
fn delay() -> Result<Option<(Duration, u64)>> {
    let Ok(v) = std::env::var(DELAY_VAR) else {
        return Ok(None);
    };
    let (ms, after) = v.trim().split_once('@').unwrap_or((v.trim(), "0"));
    match (ms.parse::<u64>(), after.parse::<u64>()) {
        (Ok(ms), Ok(k)) => Ok(Some((Duration::from_millis(ms), k))),
        _ => Err(anyhow!(
            "{DELAY_VAR}={v}: expected MS or MS@K (milliseconds per evaluation, after the first K)"
        )),
    }
}

impl SpecEval {
    /// Starts the evaluation thread. The whole-data batches are built once
    /// per run, not per evaluation. Call it on the run's pool: the
    /// evaluation pool gets as many threads.
    pub fn new(c: Compiled, max_epochs: Option<u64>) -> Result<Self> {
        let delay = delay()?;
        let threads = rayon::current_num_threads();
        let (req_tx, req_rx) = channel::<(Vec<f64>, Vec<f64>)>();
        let (res_tx, res_rx) = channel();
        let mut worker = c.clone();
        std::thread::Builder::new()
            .name("evaluation".into())
            .spawn(move || {
                let upper = worker.population(Level::Upper);
                let lower = worker.population(Level::Lower);
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("evaluation-{i}"))
                    .build()
                    .ok();
                for (k, (x, y)) in req_rx.into_iter().enumerate() {
                    if let Some((d, spared)) = delay {
                        if k as u64 >= spared {
                            std::thread::sleep(d);
                        }
                    }
                    let mut eval = || values(&mut worker, (&upper, &lower), &x, &y);
                    let v = match &pool {
                        Some(p) => p.install(eval),
                        None => eval(),
                    };
                    if res_tx.send(v).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| anyhow!("cannot start the evaluation thread: {e}"))?;
        Ok(SpecEval {
            c,
            max_epochs,
            requests: req_tx,
            results: res_rx,
            in_flight: 0,
            warned: false,
        })
    }

    /// Sends (x, y) to the evaluation thread, after the result of an
    /// evaluation given up earlier (if any) has come.
    fn send(&mut self, x: &[f64], y: &[f64]) -> bool {
        while self.in_flight > 0 {
            if self.results.recv().is_err() {
                return false;
            }
            self.in_flight -= 1;
        }
        self.in_flight = 1;
        self.requests.send((x.to_vec(), y.to_vec())).is_ok()
    }

    fn received(&mut self, v: Vec<f64>) -> Vec<f64> {
        self.in_flight = 0;
        self.warn_unconverged(&v);
        v
    }

    /// Says on stderr, once per run, that a stationarity evaluation did not
    /// converge (the trace's `stationarity_converged` is 0 at every such
    /// line, with the residuals reached).
    fn warn_unconverged(&mut self, v: &[f64]) {
        if self.warned {
            return;
        }
        let names = self.metric_names();
        let Some(k) = names.iter().position(|n| n == CONVERGED) else {
            return;
        };
        if v.get(k).is_some_and(|&c| c == 0.0) {
            self.warned = true;
            let field = |n: &str| {
                names
                    .iter()
                    .position(|m| m == n)
                    .and_then(|i| v.get(i))
                    .map_or_else(|| "-".into(), |x| format!("{x:.3e}"))
            };
            eprintln!(
                "warning: the stationarity metrics did not converge to tol {} (reached \
                 ||grad_y g|| = {}, adjoint residual {}); such trace lines have \
                 {CONVERGED} = 0 and their grad_phi_sq / inner_distance are not trustworthy",
                field("stationarity_tol"),
                field("stationarity_lower_grad"),
                field("stationarity_adjoint_residual"),
            );
        }
    }
}

/// Metrics that could not be computed (the evaluation thread is gone): NaN,
/// which the run reports as a breakdown naming the metric.
fn lost(n: usize) -> Vec<f64> {
    vec![f64::NAN; n]
}

impl Evaluate for SpecEval {
    fn metric_names(&self) -> Vec<String> {
        let mut v = vec!["upper_loss".to_string(), "lower_loss".to_string()];
        v.extend(self.c.metric_names());
        v.extend(stationarity_names(&self.c));
        v
    }
    fn evaluate(&mut self, x: &[f64], y: &[f64]) -> Vec<f64> {
        let n = self.metric_names().len();
        if !self.send(x, y) {
            return lost(n);
        }
        match self.results.recv() {
            Ok(v) => self.received(v),
            Err(_) => lost(n),
        }
    }
    fn evaluate_or_stop(&mut self, x: &[f64], y: &[f64], stop: &AtomicBool) -> Option<Vec<f64>> {
        // A stop requested before the evaluation began (the final line of a
        // stopped run) does not give it up: only one that arrives during it.
        if stop.load(Ordering::SeqCst) {
            return Some(self.evaluate(x, y));
        }
        let n = self.metric_names().len();
        if !self.send(x, y) {
            return Some(lost(n));
        }
        loop {
            match self.results.recv_timeout(POLL) {
                Ok(v) => return Some(self.received(v)),
                Err(RecvTimeoutError::Disconnected) => return Some(lost(n)),
                Err(RecvTimeoutError::Timeout) if stop.load(Ordering::SeqCst) => return None,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
    fn epoch(&self, counts: &bilevel_core::Counts) -> f64 {
        // A task carries a minibatch of the lower level's data too.
        let draws = if self.c.uses_tasks() {
            counts.samples_upper
        } else {
            counts.samples_lower
        };
        draws as f64 * self.c.epochs_per_lower_sample()
    }
    fn epochs_done(&self, counts: &bilevel_core::Counts) -> bool {
        self.max_epochs
            .is_some_and(|m| self.epoch(counts) >= m as f64)
    }
    fn epoch_budget(&self) -> Option<u64> {
        self.max_epochs
    }
}
