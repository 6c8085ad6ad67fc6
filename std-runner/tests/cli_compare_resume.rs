//! `bilevel compare --resume DIR` (decision 104) and a stop signal after a
//! run's final checkpoint (decision 103), through the real binary.
//!
//! A comparison stopped by SIGTERM (exit 143) or killed with `kill -9`, then
//! resumed, equals the comparison that was never stopped: every job's trace
//! and summary (apart from wall time) and the JSON output's rows. Finished
//! runs are kept byte for byte; settings given with `--resume` that differ
//! from the comparison's own are refused; a finished comparison resumed
//! exits with its own code and rebuilds its table and plots.
//!
//! Waits poll the run folders (no fixed sleeps). The deterministic signal
//! tests use the test-only `BILEVEL_FAULT=sigterm-after-final-checkpoint`
//! (and `…-twice-…`), which sends the process SIGTERM right after the first
//! run to end has written its final checkpoint.
#![cfg(unix)]
#![allow(missing_docs)]

use std::path::Path;
use std::process::{Output, Stdio};

mod support;
use support::{cmd, kill, lines_in, read, strip, summary, text, toy_dir, wait_exit, wait_for};

const ITERS: &str = "20000";

/// `compare toy.bilevel` of bo-rep and slip, two seeds each, into `out`.
fn compare_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "compare",
        "toy.bilevel",
        "--algorithms",
        "bo-rep,slip",
        "--seeds",
        "2",
        "--iterations",
        ITERS,
        "--no-plots",
        "--out",
        out,
    ];
    v.extend_from_slice(extra);
    v
}

const JOBS: [&str; 4] = ["bo-rep-s42", "bo-rep-s43", "slip-s42", "slip-s43"];

fn output(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = cmd(dir, args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run bilevel")
}

/// `v` without its wall-time fields (`wall_s`, the table's wall columns).
fn scrub(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| !k.starts_with("wall"));
            m.values_mut().for_each(scrub);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(scrub),
        _ => {}
    }
}

/// The JSON output's rows with the wall-time fields removed.
fn rows(o: &Output) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)));
    scrub(&mut v);
    // The folder differs between the two comparisons.
    if let Some(m) = v.as_object_mut() {
        m.remove("out");
    }
    v
}

/// An uninterrupted comparison into `full`: its exit code and JSON rows.
fn uninterrupted(d: &Path) -> (Option<i32>, serde_json::Value) {
    let o = output(d, &compare_args("full", &["--format", "json"]), &[]);
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", text(&o));
    (o.status.code(), rows(&o))
}

/// Every job of `cmp` equals the same job of `full` (trace and summary,
/// apart from wall time).
fn same_jobs(d: &Path, cmp: &str) {
    for job in JOBS {
        assert!(
            strip(&d.join(cmp).join(job)) == strip(&d.join("full").join(job)),
            "{cmp}/{job} differs from the uninterrupted comparison's"
        );
    }
}

/// The bytes of a run folder's trace and summary (wall times included).
fn bytes(run: &Path) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(run.join("trace.jsonl")).unwrap(),
        std::fs::read(run.join("summary.json")).unwrap(),
    )
}

/// SIGTERM while the second run (of four, one at a time) is under way:
/// exit 143, the first run finished, the second interrupted with its
/// checkpoint. `compare --resume` keeps the first byte for byte, resumes the
/// second from its checkpoint, starts the others, exits as the uninterrupted
/// comparison did, and equals it.
#[test]
fn sigterm_mid_comparison_then_resume_equals_the_uninterrupted_comparison() {
    let dir = toy_dir();
    let d = dir.path();
    let (code, want) = uninterrupted(d);
    let args = compare_args("cmp", &["--threads", "1"]);
    let mut child = cmd(d, &args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.join("err.txt")).unwrap())
        .spawn()
        .unwrap();
    let second = d.join("cmp").join(JOBS[1]);
    wait_for("the second run under way past a checkpoint", || {
        lines_in(&second.join("trace.jsonl.part")) >= 3 && second.join("checkpoint.bin").is_file()
    });
    // The comparison folder is locked: a resume while it runs is refused,
    // and touches nothing.
    let busy = output(d, &["compare", "--resume", "cmp"], &[]);
    assert_eq!(busy.status.code(), Some(1), "{}", text(&busy));
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("is in use by another bilevel run (pid "),
        "{}",
        text(&busy)
    );
    kill(&child, "-TERM");
    assert_eq!(
        wait_exit(&mut child).code(),
        Some(143),
        "{}",
        read(&d.join("err.txt"))
    );
    let first = d.join("cmp").join(JOBS[0]);
    assert_eq!(summary(&first).termination, "max_iters");
    assert_eq!(summary(&second).termination, "interrupted");
    let kept = bytes(&first);
    let o = output(d, &["compare", "--resume", "cmp", "--format", "json"], &[]);
    assert_eq!(o.status.code(), code, "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bo-rep seed 42: kept, finished earlier (max_iters)"),
        "{err}"
    );
    assert!(err.contains("bo-rep seed 43: resumed, max_iters"), "{err}");
    assert_eq!(bytes(&first), kept, "a finished run was rewritten");
    assert_eq!(rows(&o), want);
    same_jobs(d, "cmp");
    // The text report says what the resume did.
    let o = output(d, &["compare", "--resume", "cmp"], &[]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(
            "resumed: 4 runs kept (finished), 0 resumed from their checkpoints, 0 started"
        ),
        "{}",
        text(&o)
    );
}

/// `kill -9` while two runs are under way (two threads): no summaries, the
/// checkpoints whole; `compare --resume` finishes every run and equals the
/// uninterrupted comparison.
#[test]
fn kill_9_mid_comparison_then_resume_equals_the_uninterrupted_comparison() {
    let dir = toy_dir();
    let d = dir.path();
    let (code, want) = uninterrupted(d);
    let args = compare_args("cmp", &["--threads", "2"]);
    let mut child = cmd(d, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let under_way = |job: &str| {
        let run = d.join("cmp").join(job);
        lines_in(&run.join("trace.jsonl.part")) >= 3
            && run.join("checkpoint.bin").is_file()
            && !run.join("summary.json").exists()
    };
    // Which two run first is the pool's business.
    wait_for("two runs under way", || {
        JOBS.iter().filter(|j| under_way(j)).count() >= 2
    });
    kill(&child, "-KILL");
    assert_eq!(wait_exit(&mut child).code(), None);
    let ended = JOBS
        .iter()
        .filter(|j| d.join("cmp").join(j).join("summary.json").exists())
        .count();
    assert!(ended <= 2, "{ended} runs had ended");
    assert!(!d.join("cmp/table.md").exists());
    let o = output(d, &["compare", "--resume", "cmp", "--format", "json"], &[]);
    assert_eq!(o.status.code(), code, "{}", text(&o));
    assert_eq!(rows(&o), want);
    same_jobs(d, "cmp");
    assert!(d.join("cmp/table.md").is_file() && d.join("cmp/table.csv").is_file());
}

/// The deterministic SIGTERM: sent right after the first run's final
/// checkpoint, one thread. The first run ends `max_iters` with every file;
/// the others are interrupted (exit 143); a `--resume` stopped the same way
/// again, then a `--resume` to the end, give the uninterrupted comparison.
#[test]
fn sigterm_after_the_first_runs_end_then_resume_equals_the_uninterrupted_comparison() {
    let dir = toy_dir();
    let d = dir.path();
    let (code, want) = uninterrupted(d);
    let fault = [("BILEVEL_FAULT", "sigterm-after-final-checkpoint")];
    let o = output(d, &compare_args("cmp", &["--threads", "1"]), &fault);
    assert_eq!(o.status.code(), Some(143), "{}", text(&o));
    let first = d.join("cmp").join(JOBS[0]);
    assert_eq!(summary(&first).termination, "max_iters");
    assert!(first.join("expect.json").is_file());
    for job in &JOBS[1..] {
        assert_eq!(
            summary(&d.join("cmp").join(job)).termination,
            "interrupted",
            "{job}"
        );
    }
    // Resumed and stopped again the same way: the first run kept, the
    // second now the first to end, the others interrupted once more.
    let kept = bytes(&first);
    // One thread, as before (a resume's pool size is its own command
    // line's; results do not depend on it, the order runs end in does).
    let resume = [
        "compare",
        "--resume",
        "cmp",
        "--format",
        "json",
        "--threads",
        "1",
    ];
    let o = output(d, &resume, &fault);
    assert_eq!(o.status.code(), Some(143), "{}", text(&o));
    assert_eq!(bytes(&first), kept);
    assert_eq!(
        summary(&d.join("cmp").join(JOBS[1])).termination,
        "max_iters"
    );
    assert_eq!(
        summary(&d.join("cmp").join(JOBS[2])).termination,
        "interrupted"
    );
    let o = output(d, &resume, &[]);
    assert_eq!(o.status.code(), code, "{}", text(&o));
    assert_eq!(rows(&o), want);
    same_jobs(d, "cmp");
}

/// Settings given with `--resume` must be the comparison's own; the same
/// values are accepted. `--force` and `--out` do not go with `--resume`
/// (usage, exit 2); a folder without `compare.json` is refused; a new
/// comparison into the folder is refused with a pointer to `--resume`; a
/// kept run of an edited spec is refused, naming what differs.
#[test]
fn resume_refuses_settings_that_differ_from_the_comparisons_own() {
    let dir = toy_dir();
    let d = dir.path();
    let small = |out: &'static str| {
        vec![
            "compare",
            "toy.bilevel",
            "--algorithms",
            "bo-rep,slip",
            "--seeds",
            "2",
            "--iterations",
            "300",
            "--set",
            "slip:eta=0.02",
            "--no-plots",
            "--out",
            out,
        ]
    };
    let first = output(d, &small("cmp"), &[]);
    assert!(
        matches!(first.status.code(), Some(0 | 3)),
        "{}",
        text(&first)
    );
    std::fs::copy(d.join("toy.bilevel"), d.join("other.bilevel")).unwrap();
    let refused = |extra: &[&str], needle: &str| {
        let mut args = vec!["compare"];
        if !extra.contains(&"other.bilevel") {
            args.push("toy.bilevel");
        }
        args.extend_from_slice(&["--resume", "cmp"]);
        args.extend_from_slice(extra);
        let o = output(d, &args, &[]);
        let e = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(e.contains(needle), "{args:?}: {e}");
        assert!(
            e.contains("differs from the comparison's own"),
            "{args:?}: {e}"
        );
        assert!(!e.contains("panicked"), "{e}");
    };
    refused(&["--algorithms", "slip"], "--algorithms slip differs");
    refused(&["--algorithms", "slip,bo-rep"], "--algorithms slip,bo-rep");
    refused(
        &["--seeds", "3"],
        "--seeds 3 differs from the comparison's own 2",
    );
    refused(
        &["--seed", "7"],
        "--seed 7 differs from the comparison's own 42",
    );
    refused(&["--iterations", "301"], "--iterations 301 differs");
    refused(
        &["--epochs", "2"],
        "--epochs 2 differs from the comparison's own (none)",
    );
    refused(&["--set", "slip:eta=0.03"], "--set slip:eta=0.03 differs");
    refused(&["other.bilevel"], "the spec other.bilevel differs");
    let before: Vec<_> = JOBS.iter().map(|j| bytes(&d.join("cmp").join(j))).collect();
    // The same values, and output options, are accepted.
    let same = [
        "compare",
        "toy.bilevel",
        "--resume",
        "cmp",
        "--algorithms",
        "bo-rep,slip",
        "--seeds",
        "2",
        "--seed",
        "42",
        "--iterations",
        "300",
        "--set",
        "slip:eta=0.02",
        "--threads",
        "1",
    ];
    let o = output(d, &same, &[]);
    assert_eq!(o.status.code(), first.status.code(), "{}", text(&o));
    let after: Vec<_> = JOBS.iter().map(|j| bytes(&d.join("cmp").join(j))).collect();
    assert!(before == after, "a finished run was rewritten");
    for (extra, needle) in [
        (&["--force"][..], "--force"),
        (&["--out", "x"][..], "--out"),
    ] {
        let mut args = vec!["compare", "--resume", "cmp"];
        args.extend_from_slice(extra);
        let o = output(d, &args, &[]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(String::from_utf8_lossy(&o.stderr).contains(needle));
    }
    // A run folder is not a comparison.
    let o = output(d, &["compare", "--resume", "cmp/slip-s42"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("holds no comparison (no compare.json)"),
        "{}",
        text(&o)
    );
    // A new comparison into it points to --resume.
    let o = output(d, &small("cmp"), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("bilevel compare --resume cmp"),
        "{}",
        text(&o)
    );
    // The spec edited since: refused before any run starts (no run of the
    // edited spec beside the kept ones).
    let toy = read(&d.join("toy.bilevel"));
    std::fs::write(d.join("toy.bilevel"), format!("{toy}\n# edited\n")).unwrap();
    let o = output(d, &["compare", "--resume", "cmp"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("toy.bilevel has changed since the comparison started"),
        "{e}"
    );
    let after: Vec<_> = JOBS.iter().map(|j| bytes(&d.join("cmp").join(j))).collect();
    assert!(before == after, "a run was touched");
    // A kept run that is not the job's (its config.json edited by hand) is
    // refused, naming what differs.
    std::fs::write(d.join("toy.bilevel"), &toy).unwrap();
    let cfg = d.join("cmp").join(JOBS[0]).join("config.json");
    let text_cfg = read(&cfg);
    assert!(text_cfg.contains("\"seed\": 42"));
    std::fs::write(&cfg, text_cfg.replace("\"seed\": 42", "\"seed\": 41")).unwrap();
    let o = output(d, &["compare", "--resume", "cmp"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let e = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        e.contains("bo-rep seed 42") && e.contains("another configuration") && e.contains("seed"),
        "{}",
        text(&o)
    );
    // A torn or foreign record is an error naming the file, never a panic.
    for bad in ["{", "{\"spec\": 3}", ""] {
        std::fs::write(d.join("cmp/compare.json"), bad).unwrap();
        let o = output(d, &["compare", "--resume", "cmp"], &[]);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{bad:?}: {}", text(&o));
        assert!(
            e.contains("compare.json: not a comparison record"),
            "{bad:?}: {e}"
        );
        assert!(!e.contains("panicked"), "{e}");
    }
}

/// A finished comparison resumed: its own exit code, nothing rerun (the
/// runs' files byte for byte), and the table, overlays and JSON output
/// rebuilt — also when they were deleted; a run folder deleted by hand is
/// run again.
#[test]
fn resume_of_a_finished_comparison_keeps_every_run_and_rebuilds_the_outputs() {
    let dir = toy_dir();
    let d = dir.path();
    let args = [
        "compare",
        "toy.bilevel",
        "--algorithms",
        "bo-rep,slip",
        "--seeds",
        "2",
        "--iterations",
        "300",
        "--out",
        "cmp",
        "--format",
        "json",
    ];
    let first = output(d, &args, &[]);
    assert!(
        matches!(first.status.code(), Some(0 | 3)),
        "{}",
        text(&first)
    );
    let plots: Vec<_> = std::fs::read_dir(d.join("cmp/plots"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(!plots.is_empty());
    let table = read(&d.join("cmp/table.csv"));
    let before: Vec<_> = JOBS.iter().map(|j| bytes(&d.join("cmp").join(j))).collect();
    std::fs::remove_dir_all(d.join("cmp/plots")).unwrap();
    std::fs::remove_file(d.join("cmp/table.csv")).unwrap();
    std::fs::remove_file(d.join("cmp/table.md")).unwrap();
    let o = output(d, &["compare", "--resume", "cmp", "--format", "json"], &[]);
    assert_eq!(o.status.code(), first.status.code(), "{}", text(&o));
    // Kept runs: the same bytes, wall times included, so the same output.
    assert_eq!(o.stdout, first.stdout);
    assert_eq!(read(&d.join("cmp/table.csv")), table);
    assert!(d.join("cmp/table.md").is_file());
    for p in &plots {
        assert!(d.join("cmp/plots").join(p).is_file(), "{p:?} not redrawn");
    }
    let after: Vec<_> = JOBS.iter().map(|j| bytes(&d.join("cmp").join(j))).collect();
    assert!(before == after, "a finished run was rewritten");
    // A run folder removed by hand is run again: the same run, the same
    // rows; the other runs stay as they were.
    let last = d.join("cmp").join(JOBS[3]);
    let want = strip(&last);
    std::fs::remove_dir_all(&last).unwrap();
    let o = output(d, &["compare", "--resume", "cmp", "--format", "json"], &[]);
    assert_eq!(o.status.code(), first.status.code(), "{}", text(&o));
    assert!(strip(&last) == want, "the run done again differs");
    assert_eq!(rows(&o), rows(&first));
    let again: Vec<_> = JOBS[..3]
        .iter()
        .map(|j| bytes(&d.join("cmp").join(j)))
        .collect();
    assert!(before[..3] == again[..], "a finished run was rewritten");
}

/// A comparison whose every run ended before the signal: its own exit code
/// (not 143), a note on stderr, every file written.
#[test]
fn a_signal_after_every_run_of_a_comparison_ended_leaves_its_own_exit_code() {
    let dir = toy_dir();
    let d = dir.path();
    let args = [
        "compare",
        "toy.bilevel",
        "--algorithms",
        "slip",
        "--seeds",
        "1",
        "--iterations",
        "300",
        "--out",
    ];
    let plain = output(d, &[&args[..], &["plain"]].concat(), &[]);
    assert!(
        matches!(plain.status.code(), Some(0 | 3)),
        "{}",
        text(&plain)
    );
    let fault = [("BILEVEL_FAULT", "sigterm-after-final-checkpoint")];
    let o = output(d, &[&args[..], &["late"]].concat(), &fault);
    assert_eq!(o.status.code(), plain.status.code(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("SIGTERM arrived after every run of the comparison had ended"),
        "{}",
        text(&o)
    );
    assert!(d.join("late/plots").is_dir() && d.join("late/table.md").is_file());
    assert!(strip(&d.join("late/slip-s42")) == strip(&d.join("plain/slip-s42")));
}

/// Decision 103 for `run`: a SIGTERM after the final checkpoint leaves the
/// run's own exit code, a truthful summary and every file (plots too);
/// a second SIGTERM then ends the process at once (exit 143, no summary),
/// and `run --resume` does the finishing steps: the uninterrupted run's
/// files and exit code.
#[test]
fn a_signal_after_the_final_checkpoint_of_a_run() {
    let dir = toy_dir();
    let d = dir.path();
    let run = |out: &'static str, fault: &str| {
        let env: Vec<(&str, &str)> = if fault.is_empty() {
            vec![]
        } else {
            vec![("BILEVEL_FAULT", fault)]
        };
        output(
            d,
            &["run", "toy.bilevel", "--iterations", "2000", "--out", out],
            &env,
        )
    };
    let full = run("full", "");
    assert!(matches!(full.status.code(), Some(0 | 3)), "{}", text(&full));
    let pngs = |dir: &str| {
        let mut v: Vec<_> = std::fs::read_dir(d.join(dir).join("plots"))
            .map(|r| r.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    assert!(!pngs("full").is_empty());
    let o = run("once", "sigterm-after-final-checkpoint");
    assert_eq!(o.status.code(), full.status.code(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("note: SIGTERM arrived after the run had ended"),
        "{}",
        text(&o)
    );
    assert_eq!(summary(&d.join("once")).termination, "max_iters");
    assert_eq!(pngs("once"), pngs("full"));
    assert!(d.join("once/expect.json").is_file());
    assert!(strip(&d.join("once")) == strip(&d.join("full")));
    // Twice: the second signal ends the process before the summary.
    let o = run("twice", "sigterm-twice-after-final-checkpoint");
    assert_eq!(o.status.code(), Some(143), "{}", text(&o));
    let t = d.join("twice");
    assert!(!t.join("summary.json").exists() && !t.join("plots").exists());
    let c = bilevel_runner::checkpoint::read(&t).unwrap();
    assert_eq!(c.header.position.stop.as_deref(), Some("max_iters"));
    let o = output(d, &["run", "--resume", "twice"], &[]);
    assert_eq!(o.status.code(), full.status.code(), "{}", text(&o));
    assert_eq!(pngs("twice"), pngs("full"));
    assert!(strip(&t) == strip(&d.join("full")));
    // An unknown fault is refused, not ignored.
    let o = run("bad", "sigterm-after-final-checkpoint:3");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("unknown test-only fault"),
        "{}",
        text(&o)
    );
}

/// The absurd targets are refused for a comparison and its resume as for a
/// run: the file-system root and the current folder (nothing written there).
#[test]
fn a_comparison_into_the_root_or_the_current_folder_is_refused() {
    let dir = toy_dir();
    let d = dir.path();
    for (args, needle) in [
        (
            &[
                "compare",
                "toy.bilevel",
                "--algorithms",
                "slip",
                "--out",
                "/",
            ][..],
            "the file-system root cannot be a run folder",
        ),
        (
            &[
                "compare",
                "toy.bilevel",
                "--algorithms",
                "slip",
                "--out",
                ".",
            ][..],
            "it holds the current folder",
        ),
        (&["compare", "--resume", "/"][..], "the file-system root"),
        (
            &["run", "toy.bilevel", "--out", "/"][..],
            "the file-system root",
        ),
    ] {
        let o = output(d, args, &[]);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(needle),
            "{args:?}: {}",
            text(&o)
        );
    }
    assert!(!Path::new("/compare.json").exists() && !d.join("compare.json").exists());
}
