//! Progress on stderr: the bar, its ETA, and the ticker that shows the
//! warm start and long evaluations, which no observer call reports.

use std::io::Write as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::watch::{Phase, Watch};

/// ` eta 12s` from progress `done` of `total` after `secs` seconds.
pub(super) fn eta(done: f64, total: f64, secs: f64) -> String {
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
pub(super) fn set_bar(bar: &ProgressBar, w: &Watch) {
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
pub(super) fn make_bar(w: &Watch) -> ProgressBar {
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
pub(super) fn tick(
    w: &Watch,
    bar: Option<&ProgressBar>,
    log: bool,
    done: &std::sync::mpsc::Receiver<()>,
) {
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
