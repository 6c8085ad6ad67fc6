//! The real `bilevel run`, stopped mid-way: Ctrl-C (SIGINT), SIGTERM and
//! SIGHUP end it cleanly with a complete run folder whose termination is
//! `interrupted` (exit 130, 143, 129); SIGKILL
//! leaves the `.part` trace made of whole lines and an intact `config.json`.
//! The files are read back with the runner's own readers.
//!
//! No fixed sleeps: the test waits, polling, until the trace holds two
//! evaluations (so the run is under way and the Ctrl-C handler installed),
//! with a generous time limit that only a broken build would reach.
#![cfg(unix)]
#![allow(missing_docs)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

use bilevel_runner::aggregate::load_run;
use bilevel_runner::output::{read_trace, TraceRecord};
use bilevel_runner::session::RunSummary;

mod support;
use support::{kill as signal, LIMIT, POLL};

/// A run of the toy spec far too long to end by itself (evaluated every 500
/// iterations, as the spec says), started in a fresh folder. Its stdout and
/// stderr go to files in that folder.
fn start_long_run(dir: &Path) -> Child {
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs/toy_quadratic.bilevel"),
        dir.join("toy.bilevel"),
    )
    .expect("copy the toy spec");
    Command::new(env!("CARGO_BIN_EXE_bilevel"))
        .current_dir(dir)
        .args([
            "run",
            "toy.bilevel",
            "--iterations",
            "1000000000",
            "--no-plots",
            "--out",
            "run",
        ])
        .stdin(Stdio::null())
        .stdout(File::create(dir.join("stdout.txt")).unwrap())
        .stderr(File::create(dir.join("stderr.txt")).unwrap())
        .spawn()
        .expect("start bilevel")
}

fn stderr_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default()
}

/// Waits until `path` holds at least `n` complete lines.
fn wait_for_lines(child: &mut Child, dir: &Path, path: &Path, n: usize) {
    let start = Instant::now();
    loop {
        // Missing until the run folder exists; lines are counted by their
        // ends, so a line being written does not count.
        let lines = std::fs::read_to_string(path).map_or(0, |t| t.matches('\n').count());
        if lines >= n {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "bilevel ended ({status}) before writing {n} trace lines:\n{}",
                stderr_of(dir)
            );
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("no {n} trace lines in {LIMIT:?}:\n{}", stderr_of(dir));
        }
        std::thread::sleep(POLL);
    }
}

fn wait_for_exit(child: &mut Child, dir: &Path) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            panic!("bilevel did not stop in {LIMIT:?}:\n{}", stderr_of(dir));
        }
        std::thread::sleep(POLL);
    }
}

/// Iterations evaluated: 0, 500, 1000, … (the spec's cadence), then maybe
/// the last iteration.
fn assert_cadence(trace: &[TraceRecord]) {
    assert!(trace.len() >= 2, "{} records", trace.len());
    for (k, r) in trace.iter().enumerate().take(trace.len() - 1) {
        assert_eq!(r.iter, 500 * k as u64);
    }
    for w in trace.windows(2) {
        assert!(w[0].iter < w[1].iter && w[0].oracle_calls < w[1].oracle_calls);
    }
    for r in trace {
        assert!(r.metrics["upper_loss"].is_finite(), "{r:?}");
    }
}

fn run_folder(dir: &Path) -> PathBuf {
    dir.join("run")
}

fn config(run: &Path) -> serde_json::Value {
    let bytes = std::fs::read(run.join("config.json")).expect("config.json");
    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("config.json is whole JSON");
    assert_eq!(v["iterations"], 1_000_000_000_u64);
    assert_eq!(v["algorithm"], "bo-rep");
    assert_eq!(v["seed"], 42);
    v
}

/// Sends `sig` to a long run once it is under way and checks the complete
/// run folder it leaves and its exit code.
fn stops_cleanly_on(sig: &str, code: i32, says: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_long_run(dir.path());
    let run = run_folder(dir.path());
    wait_for_lines(&mut child, dir.path(), &run.join("trace.jsonl.part"), 2);
    signal(&child, sig);
    let status = wait_for_exit(&mut child, dir.path());
    let err = stderr_of(dir.path());
    assert_eq!(status.code(), Some(code), "{status}\n{err}");
    assert!(err.contains(says), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    config(&run);
    // The trace was renamed into place: no `.part` left.
    assert!(!run.join("trace.jsonl.part").exists());
    let trace = read_trace(&run.join("trace.jsonl")).unwrap();
    assert_cadence(&trace);
    let summary: RunSummary =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary.termination, "interrupted");
    assert!(summary.iters < 1_000_000_000);
    // The last record is the state at the stop, as the summary says.
    let last = trace.last().unwrap();
    assert_eq!(last.iter, summary.iters);
    assert_eq!(last.oracle_calls, summary.oracle_calls);
    assert_eq!(summary.final_metrics, last.metrics);
    let loaded = load_run(&run).unwrap();
    assert_eq!(loaded.summary.as_ref(), Some(&summary));
    assert_eq!(loaded.records, trace);
    // The expectations were still checked and written.
    let expect: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("expect.json")).unwrap()).unwrap();
    assert_eq!(expect.as_array().map(Vec::len), Some(4));
    let out = std::fs::read_to_string(dir.path().join("stdout.txt")).unwrap();
    assert!(out.contains("interrupted after"), "{out}");
    // And a checkpoint at the stop, from which the run continues.
    let c = bilevel_runner::checkpoint::read(&run).unwrap();
    assert_eq!(c.header.position.stop.as_deref(), Some("interrupted"));
    assert_eq!(c.header.position.iter, summary.iters);
    let more = (summary.iters + 1000).to_string();
    let o = Command::new(env!("CARGO_BIN_EXE_bilevel"))
        .current_dir(dir.path())
        .args(["run", "--resume"])
        .arg(&run)
        .args(["--iterations", &more, "--no-plots"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(matches!(o.status.code(), Some(0 | 3)), "{o:?}");
    let resumed: RunSummary =
        serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        (resumed.termination.as_str(), resumed.iters),
        ("max_iters", summary.iters + 1000)
    );
}

#[test]
fn ctrl_c_stops_the_run_cleanly() {
    stops_cleanly_on("-INT", 130, "interrupted: finishing the current iteration");
}

#[test]
fn sigterm_stops_the_run_like_ctrl_c() {
    stops_cleanly_on("-TERM", 143, "interrupted by SIGTERM");
}

#[test]
fn sighup_stops_the_run_like_ctrl_c() {
    stops_cleanly_on("-HUP", 129, "interrupted by SIGHUP");
}

#[test]
fn sigkill_leaves_whole_trace_lines_and_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = start_long_run(dir.path());
    let pid = child.id();
    let run = run_folder(dir.path());
    let part = run.join("trace.jsonl.part");
    wait_for_lines(&mut child, dir.path(), &part, 2);
    signal(&child, "-KILL");
    let status = wait_for_exit(&mut child, dir.path());
    assert_eq!(status.code(), None, "killed by a signal: {status}");

    config(&run);
    assert!(!run.join("trace.jsonl").exists());
    assert!(!run.join("summary.json").exists());
    // No temporary file of an atomic write is left behind, except one the
    // killed run itself was writing when the signal came (a kill -9 inside a
    // checkpoint write cannot be cleaned up; the file is never read, and the
    // previous checkpoint, if any, is whole).
    let own = format!(".tmp-{pid}");
    for e in std::fs::read_dir(&run).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp-") || name.ends_with(&own), "{name}");
    }
    // Each line is written whole: the file ends with a newline and every line
    // is a trace record on its own.
    let bytes = std::fs::read(&part).unwrap();
    assert_eq!(bytes.last(), Some(&b'\n'));
    let text = String::from_utf8(bytes).unwrap();
    let strict: Vec<TraceRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let trace = read_trace(&part).unwrap();
    assert_eq!(trace, strict);
    assert_cadence(&trace);
    let loaded = load_run(&run).unwrap();
    assert!(loaded.summary.is_none());
    assert_eq!(loaded.records, trace);

    // `bilevel plot` takes the killed run folder as it is.
    let plot = Command::new(env!("CARGO_BIN_EXE_bilevel"))
        .current_dir(dir.path())
        .args(["plot", "run", "--out", "plots"])
        .output()
        .unwrap();
    assert!(
        plot.status.success(),
        "{}",
        String::from_utf8_lossy(&plot.stderr)
    );
    assert!(dir.path().join("plots/upper_loss_vs_iters.svg").exists());
    assert!(dir.path().join("plots/table.md").exists());
}
