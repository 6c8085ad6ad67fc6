//! Test-only faults of the checkpoint writes, chosen by `BILEVEL_FAULT`
//! (never set it outside tests): a crash inside a checkpoint write, and a
//! stop signal right after a run's final checkpoint (decision 103). An
//! unknown value is refused when the command starts ([`check_fault`]).

use std::fs::File;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::checkpoint::FILE;

/// A test-only fault (`BILEVEL_FAULT`); never set it outside tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `abort-in-checkpoint:N`: the N-th checkpoint write of the process
    /// writes half of its bytes to the temporary file and then aborts the
    /// process (as a crash or power loss inside the write would).
    AbortInCheckpoint(u64),
    /// `sigterm-after-final-checkpoint` (1) and
    /// `sigterm-twice-after-final-checkpoint` (2): once the first run of the
    /// process to end has written its final checkpoint, the process sends
    /// itself SIGTERM, once (the finishing steps — summary, plots,
    /// `expect.json` — then run with the stop flag set) or twice (the
    /// second ends the process at once, before any finishing step).
    SigtermAfterFinalCheckpoint(u8),
}

/// The fault `BILEVEL_FAULT` names, if it is set. Any other value is
/// refused (an error at the first checkpoint), so a mistyped fault never
/// passes silently.
fn fault() -> Result<Option<Fault>> {
    let Ok(v) = std::env::var("BILEVEL_FAULT") else {
        return Ok(None);
    };
    if let Some(n) = v
        .strip_prefix("abort-in-checkpoint:")
        .and_then(|n| n.trim().parse::<u64>().ok())
    {
        return Ok(Some(Fault::AbortInCheckpoint(n)));
    }
    match v.as_str() {
        "sigterm-after-final-checkpoint" => Ok(Some(Fault::SigtermAfterFinalCheckpoint(1))),
        "sigterm-twice-after-final-checkpoint" => Ok(Some(Fault::SigtermAfterFinalCheckpoint(2))),
        _ => bail!(
            "BILEVEL_FAULT={v:?}: unknown test-only fault (expected abort-in-checkpoint:N, \
             sigterm-after-final-checkpoint or sigterm-twice-after-final-checkpoint)"
        ),
    }
}

/// Refuses a `BILEVEL_FAULT` value that names no fault (checked when the
/// command starts, so that a mistyped fault is an error before any run).
pub fn check_fault() -> Result<()> {
    fault().map(|_| ())
}

/// [`Fault::AbortInCheckpoint`].
pub(crate) fn abort_if_injected(dir: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let Some(Fault::AbortInCheckpoint(n)) = fault()? else {
        return Ok(());
    };
    if COUNT.fetch_add(1, Ordering::SeqCst) + 1 == n {
        let tmp = dir.join(format!(".{FILE}.tmp-{}", std::process::id()));
        if let Ok(mut f) = File::create(&tmp) {
            let _ = f.write_all(&bytes[..bytes.len() / 2]);
            let _ = f.sync_all();
        }
        std::process::abort();
    }
    Ok(())
}

/// [`Fault::SigtermAfterFinalCheckpoint`], after a final checkpoint: sends
/// SIGTERM and waits until the signal thread has set the stop flag, so
/// that what follows sees it (deterministically); after a second SIGTERM,
/// waits for the process to end.
pub(crate) fn signal_if_injected() -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    let Some(Fault::SigtermAfterFinalCheckpoint(times)) = fault()? else {
        return Ok(());
    };
    if DONE.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    if !crate::signals::installed() {
        bail!("BILEVEL_FAULT: no signal handlers are installed to receive SIGTERM");
    }
    let start = std::time::Instant::now();
    for k in 0..times {
        signal_hook::low_level::raise(crate::signals::SIGTERM)
            .context("BILEVEL_FAULT: cannot send SIGTERM")?;
        if k + 1 == times && times > 1 {
            // The second signal ends the process on the signal thread.
            loop {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        while crate::signals::received().is_none() {
            if start.elapsed().as_secs() > 60 {
                bail!("BILEVEL_FAULT: SIGTERM was not received");
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    Ok(())
}
