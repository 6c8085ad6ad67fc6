//! Injected write failures, for the tests of what a full disk does to a run.
//!
//! With `BILEVEL_FAULT_WRITE_BYTES=N` in the environment, the run files
//! (trace lines and atomically written files) may take N bytes in all: the
//! write that would pass the limit writes the bytes up to it — a torn write,
//! as a full disk leaves — and then fails with "no space left on device".
//! Without the variable, writes go straight to the file.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable.
pub const VAR: &str = "BILEVEL_FAULT_WRITE_BYTES";

/// Bytes left, when the variable is set (a value that is not a byte count
/// is an error at the first write).
fn budget() -> &'static Result<Option<AtomicU64>, String> {
    static B: OnceLock<Result<Option<AtomicU64>, String>> = OnceLock::new();
    B.get_or_init(|| match std::env::var(VAR) {
        Err(_) => Ok(None),
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map(|n| Some(AtomicU64::new(n)))
            .map_err(|_| format!("{VAR}={v}: expected a number of bytes")),
    })
}

/// `w.write_all(bytes)`, within the injected budget if there is one.
pub fn write_all<W: Write + ?Sized>(w: &mut W, bytes: &[u8]) -> io::Result<()> {
    let left = match budget() {
        Ok(None) => return w.write_all(bytes),
        Ok(Some(left)) => left,
        Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidInput, e.clone())),
    };
    let n = bytes.len() as u64;
    let before = left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |l| {
            Some(l.saturating_sub(n))
        })
        .unwrap_or(0);
    if n <= before {
        return w.write_all(bytes);
    }
    w.write_all(&bytes[..before as usize])?;
    Err(io::Error::new(
        io::ErrorKind::StorageFull,
        format!("no space left on device (injected by {VAR})"),
    ))
}
