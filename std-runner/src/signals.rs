//! Stop requests from the operating system.
//!
//! SIGINT (Ctrl-C), SIGTERM (a batch scheduler's pre-emption, `kill`) and
//! SIGHUP (a closed terminal or SSH session) all do the same: they set the
//! process-wide stop flag, the runs finish their current iteration and write
//! a complete trace and summary (termination `interrupted`), and the command
//! exits with 128 + the signal's number (130, 143, 129), as shells report a
//! process ended by that signal. A second signal of any of the three ends the
//! process at once with the same convention.
//!
//! The signals are read on a thread of their own (`signal-hook`'s iterator):
//! nothing runs in the signal handler but the library's self-pipe write.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::Result;

/// SIGHUP's number.
pub const SIGHUP: i32 = 1;
/// SIGINT's number.
pub const SIGINT: i32 = 2;
/// SIGTERM's number.
pub const SIGTERM: i32 = 15;

/// The first stop signal received (0: none yet).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The process-wide stop flag, once [`install`] ran.
static FLAG: OnceLock<Result<Arc<AtomicBool>, String>> = OnceLock::new();

/// Installs the handlers once and returns the process-wide stop flag (the
/// same flag on every call).
pub fn install() -> Result<Arc<AtomicBool>> {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        spawn(flag.clone()).map_err(|e| format!("cannot install the signal handlers: {e}"))?;
        Ok(flag)
    })
    .clone()
    .map_err(anyhow::Error::msg)
}

#[cfg(unix)]
fn spawn(flag: Arc<AtomicBool>) -> std::io::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                on_signal(sig, &flag);
            }
        })?;
    Ok(())
}

#[cfg(not(unix))]
fn spawn(flag: Arc<AtomicBool>) -> std::io::Result<()> {
    signal_hook::flag::register(SIGINT, flag).map(|_| ())
}

/// First signal: record it, set the flag, say so. Second: exit at once.
fn on_signal(sig: i32, flag: &AtomicBool) {
    let _ = RECEIVED.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    if flag.swap(true, Ordering::SeqCst) {
        std::process::exit(exit_code(sig).into());
    }
    let msg = if sig == SIGINT {
        "interrupted: finishing the current iteration and writing results (Ctrl-C again to abort)\n"
            .to_string()
    } else {
        format!(
            "interrupted by {}: finishing the current iteration and writing results (send it again to abort)\n",
            name(sig)
        )
    };
    // Ignore a closed stderr (a closed terminal is what SIGHUP reports).
    let _ = std::io::Write::write_all(&mut std::io::stderr(), msg.as_bytes());
}

/// Makes a file-size limit (`ulimit -f`, `RLIMIT_FSIZE`, as batch
/// schedulers set) an I/O error like a full disk: by default the kernel ends
/// a process that writes past the limit with SIGXFSZ, leaving a torn trace
/// line and no summary. With a handler installed (one that does nothing),
/// the write fails with `EFBIG` instead, the trace is cut back to its
/// complete lines and the run ends with exit code 5.
pub fn file_size_limit_is_an_error() -> Result<()> {
    #[cfg(unix)]
    signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        Arc::new(AtomicBool::new(false)),
    )
    .map_err(|e| anyhow::anyhow!("cannot install the SIGXFSZ handler: {e}"))?;
    Ok(())
}

/// `true` once [`install`] has installed the handlers.
pub fn installed() -> bool {
    FLAG.get().is_some_and(Result::is_ok)
}

/// The first stop signal received, if any.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The exit code of a process stopped by `sig`: 128 + its number.
pub fn exit_code(sig: i32) -> u8 {
    u8::try_from(128 + sig).unwrap_or(u8::MAX)
}

/// The signal's name (`SIGTERM`).
pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGHUP => "SIGHUP",
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(super::exit_code(super::SIGINT), 130);
        assert_eq!(super::exit_code(super::SIGTERM), 143);
        assert_eq!(super::exit_code(super::SIGHUP), 129);
        assert_eq!(
            (super::SIGHUP, super::SIGINT, super::SIGTERM),
            (
                signal_hook::consts::SIGHUP,
                signal_hook::consts::SIGINT,
                signal_hook::consts::SIGTERM
            )
        );
    }
}
