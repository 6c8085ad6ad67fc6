//! The real `bilevel`, stopped where a stop is hardest: during a slow
//! evaluation (made slow by the test-only `BILEVEL_TEST_EVAL_DELAY_MS`), by
//! a second signal during the graceful stop, and `compare --force` with one
//! run folder in use. Also what a folder holding a stopped run says, and
//! the comparison's overall progress bar on a terminal.
#![cfg(unix)]
#![allow(missing_docs)]

mod support;

use std::path::Path;

use support::*;

const DELAY: &str = "BILEVEL_TEST_EVAL_DELAY_MS";
/// Ten minutes: an evaluation that only a stop request ends in a test.
const FOREVER: &str = "600000";

/// The checkpoint's header, as JSON.
fn checkpoint_position(run: &Path) -> bilevel_runner::session::Position {
    bilevel_runner::checkpoint::read(run)
        .unwrap()
        .header
        .position
}

/// Stops a toy run during its evaluation number `k + 1` (iteration 500·k)
/// with SIGTERM, then resumes it without the delay: the resumed run is the
/// uninterrupted one.
fn stop_during_evaluation(k: u64) {
    let d = toy_dir();
    let base = ["run", "toy.bilevel", "--iterations", "2000", "--no-plots"];
    let full = [&base[..], &["--out", "full"]].concat();
    finished(&run(d.path(), &full));
    let args = [&base[..], &["--out", "run"]].concat();
    let delay = format!("{FOREVER}@{k}");
    let mut child = spawn_logged(d.path(), &args, "err.txt", &[(DELAY, &delay)]);
    let err = || read(&d.path().join("err.txt"));
    // The evaluation shows progress (a line once it has lasted 5 s).
    let at = format!("evaluating at iter {}", 500 * k);
    wait_for(&at, || err().contains(&at));
    kill(&child, "-TERM");
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(143), "{}", err());
    assert!(!err().contains("panicked"), "{}", err());
    let r = d.path().join("run");
    let s = summary(&r);
    assert_eq!((s.termination.as_str(), s.iters), ("interrupted", 500 * k));
    // The trace holds the evaluations that finished, whole, and no more.
    let trace = whole_lines(&r.join("trace.jsonl"));
    assert_eq!(trace.len() as u64, k, "{trace:?}");
    assert_eq!(
        s.final_metrics,
        trace.last().map(|t| t.metrics.clone()).unwrap_or_default()
    );
    let p = checkpoint_position(&r);
    assert!(p.pending_eval && p.iter == 500 * k, "{p:?}");
    // Resumed without the delay: the evaluation given up comes first.
    finished(&run(d.path(), &["run", "--resume", "run", "--no-plots"]));
    assert!(
        strip(&r) == strip(&d.path().join("full")),
        "resumed after a stop during evaluation {k}"
    );
}

#[test]
fn a_stop_during_a_slow_evaluation_ends_the_run_and_resume_completes_it() {
    stop_during_evaluation(2);
}

#[test]
fn a_stop_during_the_first_evaluation_keeps_a_resumable_run() {
    stop_during_evaluation(0);
}

#[test]
fn a_stop_during_the_last_evaluation_keeps_a_resumable_run() {
    // Iteration 2000: the budget's end, its evaluation given up.
    stop_during_evaluation(4);
}

/// Two `bilevel run --resume` of one folder at once: the second is refused
/// while the first holds the folder, which then ends with the uninterrupted
/// run.
#[test]
fn of_two_resumes_of_one_folder_at_once_one_is_refused() {
    let d = toy_dir();
    let base = ["run", "toy.bilevel", "--iterations", "2000", "--no-plots"];
    finished(&run(d.path(), &[&base[..], &["--out", "full"]].concat()));
    let args = [&base[..], &["--out", "run"]].concat();
    let delay = format!("{FOREVER}@1");
    let mut child = spawn_logged(d.path(), &args, "err0.txt", &[(DELAY, &delay)]);
    let err = || read(&d.path().join("err0.txt"));
    wait_for("the slow evaluation", || {
        err().contains("evaluating at iter 500")
    });
    kill(&child, "-TERM");
    assert_eq!(wait_exit(&mut child).code(), Some(143), "{}", err());
    // The first resume is slow (1 s per evaluation): it holds the folder.
    let resume = ["run", "--resume", "run", "--no-plots"];
    let mut first = spawn_logged(d.path(), &resume, "err1.txt", &[(DELAY, "1000")]);
    let owner = format!("pid {}", first.id());
    let lock = d.path().join("run/.bilevel.lock");
    wait_for("the first resume's lock", || read(&lock).contains(&owner));
    let o = run(d.path(), &resume);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("in use by another bilevel run ({owner})")),
        "{}",
        text(&o)
    );
    let status = wait_exit(&mut first);
    assert!(
        matches!(status.code(), Some(0 | 3)),
        "{}",
        read(&d.path().join("err1.txt"))
    );
    assert!(strip(&d.path().join("run")) == strip(&d.path().join("full")));
}

#[test]
fn a_resume_stopped_again_during_the_pending_evaluation_stays_resumable() {
    let d = toy_dir();
    let base = ["run", "toy.bilevel", "--iterations", "1500", "--no-plots"];
    finished(&run(d.path(), &[&base[..], &["--out", "full"]].concat()));
    let args = [&base[..], &["--out", "run"]].concat();
    // The first run is slow from its second evaluation (iteration 500); the
    // resumed one from its first, the pending evaluation of iteration 500.
    let first = format!("{FOREVER}@1");
    let resume = vec!["run", "--resume", "run", "--no-plots"];
    for (i, (a, delay)) in [(args.clone(), &first[..]), (resume, FOREVER)]
        .iter()
        .enumerate()
    {
        let name = format!("err{i}.txt");
        let mut child = spawn_logged(d.path(), a, &name, &[(DELAY, delay)]);
        let err = || read(&d.path().join(&name));
        wait_for("the slow evaluation", || {
            err().contains("evaluating at iter 500")
        });
        kill(&child, "-INT");
        assert_eq!(wait_exit(&mut child).code(), Some(130), "{}", err());
        let p = checkpoint_position(&d.path().join("run"));
        assert!(p.pending_eval && p.iter == 500, "{p:?}");
    }
    finished(&run(d.path(), &["run", "--resume", "run", "--no-plots"]));
    assert!(strip(&d.path().join("run")) == strip(&d.path().join("full")));
}

#[test]
fn a_second_signal_during_the_graceful_stop_exits_at_once() {
    let d = toy_dir();
    // A warm start far too long to finish, stopped by the first signal;
    // the stop's evaluation (begun after the request) then takes forever,
    // and the second signal ends the process at once.
    let args = [
        "run",
        "toy.bilevel",
        "--set",
        "warm_epochs=30",
        "--no-plots",
        "--out",
        "w",
    ];
    let mut child = spawn_logged(d.path(), &args, "err.txt", &[(DELAY, FOREVER)]);
    let err = || read(&d.path().join("err.txt"));
    wait_for("the warm start", || err().contains("warm start "));
    kill(&child, "-TERM");
    wait_for("the stop's evaluation", || {
        err().contains("evaluating at iter 0")
    });
    assert!(child.try_wait().unwrap().is_none(), "{}", err());
    kill(&child, "-TERM");
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(143), "{}", err());
    assert!(err().contains("interrupted by SIGTERM"), "{}", err());
    // Killed in its graceful stop: no summary, the trace's whole lines kept.
    let w = d.path().join("w");
    assert!(!w.join("summary.json").exists());
    whole_lines(&w.join("trace.jsonl.part"));
    // And the second Ctrl-C the same way (exit 130).
    let mut child = spawn_logged(
        d.path(),
        &[
            "run",
            "toy.bilevel",
            "--set",
            "warm_epochs=30",
            "--no-plots",
            "--out",
            "w2",
        ],
        "err2.txt",
        &[(DELAY, FOREVER)],
    );
    let err = || read(&d.path().join("err2.txt"));
    wait_for("the warm start", || err().contains("warm start "));
    kill(&child, "-INT");
    wait_for("the stop's evaluation", || {
        err().contains("evaluating at iter 0")
    });
    kill(&child, "-INT");
    assert_eq!(wait_exit(&mut child).code(), Some(130), "{}", err());
}

#[test]
fn a_bad_test_delay_is_an_error() {
    let d = toy_dir();
    let o = cmd(
        d.path(),
        &["run", "toy.bilevel", "--iterations", "10", "--out", "r"],
    )
    .env(DELAY, "soon")
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("BILEVEL_TEST_EVAL_DELAY_MS=soon"),
        "{}",
        text(&o)
    );
}

#[test]
fn compare_force_with_a_busy_run_folder_clears_nothing() {
    let d = toy_dir();
    let cmp = [
        "compare",
        "toy.bilevel",
        "--algorithms",
        "bo-rep,slip",
        "--seeds",
        "1",
        "--iterations",
        "300",
        "--no-plots",
        "--out",
        "cmp",
    ];
    finished(&run(d.path(), &cmp));
    let c = d.path().join("cmp");
    let before: Vec<_> = ["bo-rep-s42", "slip-s42"]
        .iter()
        .map(|j| strip(&c.join(j)))
        .collect();
    // Another run takes the last folder `--force` would clear.
    let mut busy = spawn_logged(
        d.path(),
        &[
            "run",
            "toy.bilevel",
            "--iterations",
            "1000000000",
            "--no-plots",
            "--force",
            "--out",
            "cmp/slip-s42",
        ],
        "busy.txt",
        &[],
    );
    let part = c.join("slip-s42/trace.jsonl.part");
    wait_for("the busy run", || lines_in(&part) >= 1);
    let o = run(d.path(), &[&cmp[..], &["--force"]].concat());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("in use by another bilevel run"),
        "{}",
        text(&o)
    );
    // Nothing was cleared: the other run folder and the table are whole.
    assert!(strip(&c.join("bo-rep-s42")) == before[0]);
    assert!(c.join("table.md").exists() && c.join("table.csv").exists());
    kill(&busy, "-TERM");
    assert_eq!(wait_exit(&mut busy).code(), Some(143));
    // With the folder free, --force clears and reruns both.
    finished(&run(d.path(), &[&cmp[..], &["--force"]].concat()));
    assert!(strip(&c.join("bo-rep-s42")) == before[0]);
    assert!(strip(&c.join("slip-s42")) == before[1]);
}

#[test]
fn a_folder_with_a_stopped_or_killed_run_says_how_to_continue_it() {
    let d = toy_dir();
    for (sig, says) in [("-TERM", "stopped run"), ("-KILL", "killed run")] {
        let args = [
            "run",
            "toy.bilevel",
            "--iterations",
            "1000000000",
            "--no-plots",
            "--out",
            "r",
        ];
        let mut child = spawn_logged(d.path(), &args, "err.txt", &[]);
        let r = d.path().join("r");
        wait_for("a checkpoint", || {
            lines_in(&r.join("trace.jsonl.part")) >= 2 && r.join("checkpoint.bin").exists()
        });
        kill(&child, sig);
        wait_exit(&mut child);
        let o = run(d.path(), &args);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let t = text(&o);
        assert!(
            t.contains(says) && t.contains("bilevel run --resume r") && t.contains("--force"),
            "{t}"
        );
        // The refusal touched nothing: the run continues (its trace grows
        // past the lines it kept).
        let part = r.join("trace.jsonl.part");
        let kept = lines_in(&part);
        let mut child = spawn_logged(
            d.path(),
            &["run", "--resume", "r", "--no-plots"],
            "e2.txt",
            &[],
        );
        wait_for("the resumed run", || lines_in(&part) > kept + 1);
        kill(&child, "-TERM");
        assert_eq!(wait_exit(&mut child).code(), Some(143));
        std::fs::remove_dir_all(&r).unwrap();
    }
}

#[test]
fn compare_shows_an_overall_bar_on_a_terminal() {
    let d = toy_dir();
    let Some(out) = on_a_terminal(
        d.path(),
        "compare toy.bilevel --algorithms bo-rep,slip --seeds 2 --iterations 20000 --threads 1 --no-plots --out c",
    ) else {
        eprintln!("skipped: no `script` to make a terminal");
        return;
    };
    // Runs done of all, and the run under way with its progress.
    assert!(out.contains("0/4 runs"), "{out}");
    assert!(out.contains("/4 runs") && out.contains("3/4 runs"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("/4 runs") && l.contains(" s4") && l.contains("/20000 iters")),
        "{out}"
    );
    // A line per finished run above the bar.
    assert!(out.contains("[4/4] "), "{out}");
}

#[test]
fn a_symlinked_run_folder_is_locked_as_the_folder_it_points_to() {
    let d = toy_dir();
    std::fs::create_dir(d.path().join("real")).unwrap();
    std::os::unix::fs::symlink("real", d.path().join("link")).unwrap();
    let long = [
        "run",
        "toy.bilevel",
        "--iterations",
        "1000000000",
        "--no-plots",
        "--out",
        "link",
    ];
    let mut child = spawn_logged(d.path(), &long, "err.txt", &[]);
    wait_for("the run through the link", || {
        lines_in(&d.path().join("real/trace.jsonl.part")) >= 1
    });
    let short = ["run", "toy.bilevel", "--iterations", "10", "--no-plots"];
    for out in ["real", "link"] {
        let o = run(d.path(), &[&short[..], &["--force", "--out", out]].concat());
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            text(&o).contains("in use by another bilevel run"),
            "{}",
            text(&o)
        );
    }
    kill(&child, "-TERM");
    assert_eq!(wait_exit(&mut child).code(), Some(143));
    finished(&run(
        d.path(),
        &[&short[..], &["--force", "--out", "real"]].concat(),
    ));
    assert_eq!(summary(&d.path().join("link")).iters, 10);
}
