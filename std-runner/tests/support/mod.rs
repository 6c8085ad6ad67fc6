//! Helpers shared by the tests of the real `bilevel` binary (`cli_*.rs`):
//! spawning it, temporary folders with the example specs, reading a run's
//! summary and trace back, and comparing runs apart from wall-time fields.
//! Each test file takes what it needs (`mod support;`), so some helpers go
//! unused in some files.
#![allow(dead_code, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use bilevel_runner::output::{read_trace, TraceRecord};
use bilevel_runner::session::RunSummary;

/// A limit on every wait that only a broken build reaches.
pub const LIMIT: Duration = Duration::from_secs(180);
/// How often waits poll.
pub const POLL: Duration = Duration::from_millis(20);

/// The example specs.
pub fn specs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs")
}

/// A fresh folder holding the toy spec as `toy.bilevel`.
pub fn toy_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        specs().join("toy_quadratic.bilevel"),
        dir.path().join("toy.bilevel"),
    )
    .unwrap();
    dir
}

/// `bilevel ARGS` in `dir`, stdin closed.
pub fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bilevel"));
    c.current_dir(dir).args(args).stdin(Stdio::null());
    c
}

/// Runs `bilevel ARGS` in `dir` to its end.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    cmd(dir, args).output().expect("run bilevel")
}

/// Exit code, stdout and stderr of an output, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts a successful exit.
pub fn ok(o: &Output) {
    assert!(o.status.success(), "{}", text(o));
}

/// Asserts a run or comparison that ended by itself: success, or exit 3
/// (the toy's `expect` is violated by some solvers' default settings).
pub fn finished(o: &Output) {
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", text(o));
}

/// Starts `bilevel ARGS` in `dir` with stderr to `dir/NAME`.
pub fn spawn_logged(dir: &Path, args: &[&str], name: &str, env: &[(&str, &str)]) -> Child {
    let mut c = cmd(dir, args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(name)).unwrap())
        .spawn()
        .expect("start bilevel")
}

/// The text of a file, empty while it does not exist.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits, polling, until `ok()`; panics after [`LIMIT`].
pub fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// Complete lines in a file (0 while it does not exist).
pub fn lines_in(path: &Path) -> usize {
    read(path).matches('\n').count()
}

/// Sends `sig` (`-TERM`) to the child.
pub fn kill(child: &Child, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

/// Waits for the child's exit; kills it and panics after [`LIMIT`].
pub fn wait_exit(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("bilevel did not stop in {LIMIT:?}");
        }
        std::thread::sleep(POLL);
    }
}

/// A run folder's summary.
pub fn summary(dir: &Path) -> RunSummary {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

/// Every line of a trace file is a whole record and the file ends with a
/// newline (or is empty); iterations increase.
pub fn whole_lines(path: &Path) -> Vec<TraceRecord> {
    let bytes = std::fs::read(path).unwrap();
    if !bytes.is_empty() {
        assert_eq!(bytes.last(), Some(&b'\n'), "{}", path.display());
    }
    let recs: Vec<TraceRecord> = String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .collect();
    for w in recs.windows(2) {
        assert!(w[0].iter < w[1].iter, "{:?}", (w[0].iter, w[1].iter));
    }
    recs
}

/// A run folder's trace lines and summary with the wall-time fields
/// zeroed: what must be identical between an uninterrupted and a resumed
/// run.
pub fn strip(dir: &Path) -> (Vec<String>, String) {
    let trace = read_trace(&dir.join("trace.jsonl"))
        .unwrap_or_else(|e| panic!("{}: {e:#}", dir.display()))
        .into_iter()
        .map(|mut r| {
            r.wall_s = 0.0;
            serde_json::to_string(&r).unwrap()
        })
        .collect();
    let mut s = summary(dir);
    s.wall_s = 0.0;
    (trace, serde_json::to_string(&s).unwrap())
}

/// Runs `args` on a pseudo-terminal (`script`), so that progress is a bar;
/// its output with carriage returns as newlines. `None` when `script` is
/// missing.
pub fn on_a_terminal(dir: &Path, args: &str) -> Option<String> {
    let line = format!("{} {args}", env!("CARGO_BIN_EXE_bilevel"));
    let o = Command::new("script")
        .current_dir(dir)
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&o.stdout).replace('\r', "\n"))
}
