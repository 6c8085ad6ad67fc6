//! The real `bilevel` binary and its run folders, budgets and breakdowns:
//! concurrent runs into one folder (one wins, the trace stays whole), reuse
//! refused without `--force`, `--force` clearing only run files, default
//! names per resolved configuration, `bilevel plot` after an aborted rerun,
//! write failures (injected, and a real 64 KiB tmpfs when mounting is
//! allowed; a file-size limit), unreachable budgets, a warm start stopped by SIGTERM,
//! breakdowns' exit code and report, and `compare`'s expect column.
#![cfg(unix)]
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::*;

fn long_run(dir: &Path, out: &str, extra: &[&str]) -> Child {
    let mut args = vec![
        "run",
        "toy.bilevel",
        "--iterations",
        "1000000000",
        "--no-plots",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    cmd(dir, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_second_run_into_a_busy_folder_is_refused_and_the_trace_stays_whole() {
    let d = toy_dir();
    let mut first = long_run(d.path(), "run", &[]);
    let part = d.path().join("run/trace.jsonl.part");
    wait_for("two trace lines", || lines_in(&part) >= 2);
    for extra in [&[][..], &["--force"][..]] {
        let mut args = vec!["run", "toy.bilevel", "--iterations", "5", "--out", "run"];
        args.extend_from_slice(extra);
        let o = run(d.path(), &args);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let msg = format!("in use by another bilevel run (pid {})", first.id());
        assert!(text(&o).contains(&msg), "{}", text(&o));
    }
    kill(&first, "-INT");
    assert_eq!(first.wait().unwrap().code(), Some(130));
    whole_lines(&d.path().join("run/trace.jsonl"));
    assert_eq!(summary(&d.path().join("run")).termination, "interrupted");
}

#[test]
fn of_runs_started_together_into_one_folder_exactly_one_runs() {
    let d = toy_dir();
    let kids: Vec<Child> = (0..4)
        .map(|_| {
            cmd(
                d.path(),
                &[
                    "run",
                    "toy.bilevel",
                    "--iterations",
                    "3000",
                    "--no-plots",
                    "--out",
                    "run",
                ],
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let outs: Vec<Output> = kids
        .into_iter()
        .map(|k| k.wait_with_output().unwrap())
        .collect();
    // 0 or 3 (a violated `expect`): the run ran.
    let ran = |o: &&Output| matches!(o.status.code(), Some(0 | 3));
    assert_eq!(
        outs.iter().filter(ran).count(),
        1,
        "{}",
        outs.iter().map(text).collect::<String>()
    );
    for o in outs.iter().filter(|o| !ran(o)) {
        assert_eq!(o.status.code(), Some(1), "{}", text(o));
        let t = text(o);
        assert!(
            t.contains("in use by another") || t.contains("already holds a run"),
            "{t}"
        );
    }
    let trace = whole_lines(&d.path().join("run/trace.jsonl"));
    assert_eq!(trace.last().unwrap().iter, 3000);
    assert_eq!(summary(&d.path().join("run")).iters, 3000);
}

#[test]
fn reruns_need_force_which_clears_only_run_files() {
    let d = toy_dir();
    let short = ["run", "toy.bilevel", "--iterations", "20", "--out", "run"];
    assert_eq!(run(d.path(), &short).status.code(), Some(3));
    std::fs::write(d.path().join("run/notes.txt"), "mine").unwrap();
    let o = run(d.path(), &short);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("already holds a run") && text(&o).contains("--force"));
    // An aborted rerun with --force: killed after two trace lines.
    let mut again = long_run(d.path(), "run", &["--force"]);
    let part = d.path().join("run/trace.jsonl.part");
    wait_for("two trace lines", || lines_in(&part) >= 2);
    kill(&again, "-KILL");
    let _ = again.wait();
    let mut left: Vec<String> = std::fs::read_dir(d.path().join("run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    // The killed run's own checkpoint may or may not have been written when
    // the kill came (one is written after each trace line): it is the new
    // run's, so it is not an earlier run's leftover; nor is the temporary
    // file of that checkpoint's atomic write when the kill lands inside it.
    left.retain(|f| f != "checkpoint.bin" && !f.starts_with(".checkpoint.bin.tmp-"));
    // Nothing of the first run survives beside the new trace; notes.txt does.
    assert_eq!(
        left,
        [
            ".bilevel.lock",
            "config.json",
            "notes.txt",
            "trace.jsonl.part"
        ]
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("run/config.json")).unwrap()).unwrap();
    assert_eq!(config["iterations"], 1_000_000_000_u64);
    // `bilevel plot` reports the aborted run as it is: unfinished.
    let o = run(d.path(), &["plot", "run", "--out", "plots"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("unfinished"), "{}", text(&o));
    // A folder that is not a run folder is refused even with --force.
    std::fs::create_dir(d.path().join("paper")).unwrap();
    std::fs::write(d.path().join("paper/config.json"), "{}").unwrap();
    let o = run(
        d.path(),
        &[
            "run",
            "toy.bilevel",
            "--iterations",
            "5",
            "--out",
            "paper",
            "--force",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not a run folder"), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(d.path().join("paper/config.json")).unwrap(),
        "{}"
    );
}

#[test]
fn default_folders_differ_by_resolved_configuration() {
    let d = toy_dir();
    let mut folders = Vec::new();
    for eta in ["0.02", "0.03", "0.02"] {
        let set = format!("eta={eta}");
        let o = run(
            d.path(),
            &[
                "run",
                "toy.bilevel",
                "--iterations",
                "10",
                "--no-plots",
                "--set",
                &set,
            ],
        );
        folders.push((o.status.code(), text(&o)));
    }
    // Run folders only: `runs/toy.jsonl` is the spec's `run { log }` copy.
    let names: Vec<PathBuf> = std::fs::read_dir(d.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    for n in &names {
        let name = n.file_name().unwrap().to_string_lossy().into_owned();
        let hash = name.strip_prefix("toy_quadratic-bo-rep-s42-").expect(&name);
        assert!(
            hash.len() == 8 && hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{name}"
        );
    }
    assert_eq!(folders[0].0, Some(3), "{}", folders[0].1);
    assert_eq!(folders[1].0, Some(3), "{}", folders[1].1);
    // The same configuration again finds its own finished run.
    assert_eq!(folders[2].0, Some(1), "{}", folders[2].1);
    assert!(
        folders[2].1.contains("already holds a run"),
        "{}",
        folders[2].1
    );
}

#[test]
fn injected_write_failures_keep_whole_lines_and_exit_5() {
    let d = toy_dir();
    // A few limits, from inside config.json to deep into the trace.
    for (k, limit) in [100_u64, 1_500, 2_222, 4_097, 9_001]
        .into_iter()
        .enumerate()
    {
        let out = format!("run{k}");
        let o = cmd(
            d.path(),
            &[
                "run",
                "toy.bilevel",
                "--iterations",
                "100000",
                "--no-plots",
                "--out",
                &out,
            ],
        )
        .env("BILEVEL_FAULT_WRITE_BYTES", limit.to_string())
        .output()
        .unwrap();
        assert_eq!(o.status.code(), Some(5), "limit {limit}: {}", text(&o));
        assert!(text(&o).contains("no space left on device"), "{}", text(&o));
        let dir = d.path().join(&out);
        assert!(!dir.join("trace.jsonl").exists());
        assert!(!dir.join("summary.json").exists());
        let part = dir.join("trace.jsonl.part");
        if part.exists() {
            let recs = whole_lines(&part);
            let bytes = std::fs::metadata(&part).unwrap().len();
            let config = std::fs::metadata(dir.join("config.json")).unwrap().len();
            assert!(config + bytes <= limit, "{config} + {bytes} > {limit}");
            assert!(!recs.is_empty() || limit < 4_000);
        } else {
            // The limit hit config.json: no torn config either.
            assert!(!dir.join("config.json").exists());
        }
        for e in std::fs::read_dir(&dir).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".tmp-"), "{name}");
        }
    }
    let o = cmd(
        d.path(),
        &["run", "toy.bilevel", "--iterations", "5", "--out", "bad"],
    )
    .env("BILEVEL_FAULT_WRITE_BYTES", "lots")
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        text(&o).contains("expected a number of bytes"),
        "{}",
        text(&o)
    );
}

#[test]
fn a_full_tmpfs_keeps_whole_lines_and_exits_5() {
    let d = toy_dir();
    let mnt = d.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: mounting a tmpfs is not permitted here");
        return;
    }
    let o = run(
        d.path(),
        &[
            "run",
            "toy.bilevel",
            "--iterations",
            "100000000",
            "--no-plots",
            "--out",
            "small/run",
        ],
    );
    let part = mnt.join("run/trace.jsonl.part");
    let checked = std::panic::catch_unwind(|| {
        assert_eq!(o.status.code(), Some(5), "{}", text(&o));
        assert!(text(&o).contains("No space left on device"), "{}", text(&o));
        assert!(whole_lines(&part).len() > 10);
        assert!(!mnt.join("run/trace.jsonl").exists());
    });
    let _ = Command::new("umount").arg(&mnt).status();
    checked.unwrap();
}

#[test]
fn unreachable_budgets_are_refused_at_once() {
    let d = toy_dir();
    let start = Instant::now();
    let o = run(
        d.path(),
        &["run", "toy.bilevel", "--epochs", "3", "--out", "e"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--epochs 3: toy.bilevel cannot have an epoch budget"));
    let spec = std::fs::read_to_string(d.path().join("toy.bilevel"))
        .unwrap()
        .replace("run { iterations = 8000,", "run { epochs = 3,");
    std::fs::write(d.path().join("ep.bilevel"), &spec).unwrap();
    let line = spec.lines().position(|l| l.starts_with("run {")).unwrap() + 1;
    for sub in ["run", "compare"] {
        let mut args = vec![sub, "ep.bilevel", "--out", "e"];
        if sub == "compare" {
            args.extend(["--algorithms", "slip"]);
        }
        let o = run(d.path(), &args);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        // `bilevel check`'s E0408, at the setting.
        let at = format!("ep.bilevel:{line}:7");
        assert!(text(&o).contains("error[E0408]"), "{}", text(&o));
        assert!(text(&o).contains(&at), "{at}\n{}", text(&o));
    }
    let o = run(
        d.path(),
        &[
            "run",
            "toy.bilevel",
            "--set",
            "warm_epochs=40",
            "--out",
            "w",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("warm_epochs=40"), "{}", text(&o));
    assert!(start.elapsed() < Duration::from_secs(60));
    assert!(!d.path().join("e").exists() && !d.path().join("w").exists());
}

#[test]
fn a_long_warm_start_shows_progress_and_stops_on_sigterm() {
    let d = toy_dir();
    // 4·(2³⁰ − 1) warm-start steps: accepted, and far too long to finish.
    let mut child = cmd(
        d.path(),
        &[
            "run",
            "toy.bilevel",
            "--set",
            "warm_epochs=30",
            "--no-plots",
            "--out",
            "w",
        ],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(d.path().join("err.txt")).unwrap())
    .spawn()
    .unwrap();
    let err = || std::fs::read_to_string(d.path().join("err.txt")).unwrap_or_default();
    wait_for("a warm-start progress line", || {
        err().contains("warm start ")
    });
    assert!(err().contains("/4294967292 calls"), "{}", err());
    kill(&child, "-TERM");
    let start = Instant::now();
    let status = child.wait().unwrap();
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(status.code(), Some(143), "{}", err());
    let s = summary(&d.path().join("w"));
    assert_eq!((s.termination.as_str(), s.iters), ("interrupted", 0));
    whole_lines(&d.path().join("w/trace.jsonl"));
}

#[test]
fn breakdowns_exit_4_and_say_what_broke() {
    let d = toy_dir();
    let toy = std::fs::read_to_string(d.path().join("toy.bilevel")).unwrap();
    // A NaN objective with a finite iterate and finite gradients: log of a
    // negative value that depends on x only in name (a constant one is
    // refused by `check` as E0205).
    let nan = toy.replace(
        "+ 0.5 * rho * norm2sq(x)\n}",
        "+ 0.5 * rho * norm2sq(x) + log(0.0 * norm2sq(x) - 0.2)\n}",
    );
    assert_ne!(nan, toy);
    std::fs::write(d.path().join("nan.bilevel"), nan).unwrap();
    let o = run(
        d.path(),
        &["run", "nan.bilevel", "--iterations", "50", "--out", "n"],
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let s = summary(&d.path().join("n"));
    assert_eq!(s.termination, "non_finite");
    assert!(
        s.breakdown.as_deref().unwrap().contains("upper_loss = NaN"),
        "{s:?}"
    );
    assert!(
        text(&o).contains("breakdown: metric upper_loss = NaN"),
        "{}",
        text(&o)
    );
    // A comparison with a run that broke down exits 4 too.
    let o = run(
        d.path(),
        &[
            "compare",
            "nan.bilevel",
            "--algorithms",
            "bo-rep,slip",
            "--seeds",
            "1",
            "--iterations",
            "50",
            "--out",
            "cn",
        ],
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("non_finite×1"), "{}", text(&o));
    // A warm start that overflows: y is not finite after initialisation.
    let o = run(
        d.path(),
        &[
            "run",
            "toy.bilevel",
            "--iterations",
            "50",
            "--out",
            "i",
            "--set",
            "warm_lr=1e200",
            "--set",
            "warm_start=plain",
        ],
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let b = summary(&d.path().join("i")).breakdown.unwrap();
    assert!(
        b.starts_with("y[") && b.contains("after the initialisation"),
        "{b}"
    );
    assert!(
        b.contains("grad_y_g returned") && b.contains("warm start"),
        "{b}"
    );
    // Divergence.
    let o = run(
        d.path(),
        &[
            "run",
            "toy.bilevel",
            "--iterations",
            "50",
            "--out",
            "v",
            "--set",
            "eta=1e300",
        ],
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert_eq!(summary(&d.path().join("v")).termination, "diverged");
}

#[test]
fn compare_shows_expect_results_and_fails_when_one_is_violated() {
    let d = toy_dir();
    let args = [
        "compare",
        "toy.bilevel",
        "--algorithms",
        "bo-rep",
        "--seeds",
        "2",
        "--iterations",
        "50",
        "--out",
        "cmp",
        "--threads",
        "1",
    ];
    let o = run(d.path(), &args);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("| 0/2 ok, 2 VIOLATED |"), "{}", text(&o));
    assert!(text(&o).contains("[2/2] bo-rep seed 43"), "{}", text(&o));
    // The full budget meets the expectations: exit 0.
    let mut full = args.to_vec();
    full[7] = "8000";
    let o = run(d.path(), &full);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    // It names both ways on: resume the comparison, or replace it.
    assert!(
        text(&o).contains("holds a comparison")
            && text(&o).contains("`bilevel compare --resume cmp`")
            && text(&o).contains("--force"),
        "{}",
        text(&o)
    );
    full.push("--force");
    let o = run(d.path(), &full);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("| 2/2 ok |"), "{}", text(&o));
    let csv = std::fs::read_to_string(d.path().join("cmp/table.csv")).unwrap();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",expect_ok,expect_runs"),
        "{csv}"
    );
}

#[test]
fn progress_counts_the_budget_the_run_has() {
    let d = toy_dir();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs/hpo_logreg.bilevel");
    let spec = spec.to_string_lossy().into_owned();
    let o = run(
        d.path(),
        &["run", &spec, "--epochs", "3", "--no-plots", "--out", "h"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!err.contains(&u64::MAX.to_string()), "{err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("iter 0  epoch ") && first.contains("/3  upper_loss"),
        "{err}"
    );
    assert!(first.contains("  eta "), "{err}");
}

#[test]
fn compare_shows_the_runs_under_way_and_stops_on_sigterm() {
    let d = toy_dir();
    let mut child = cmd(
        d.path(),
        &[
            "compare",
            "toy.bilevel",
            "--algorithms",
            "bo-rep,slip",
            "--seeds",
            "1",
            "--iterations",
            "1000000000",
            "--threads",
            "2",
            "--no-plots",
            "--out",
            "cmp",
        ],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(d.path().join("err.txt")).unwrap())
    .spawn()
    .unwrap();
    let err = || std::fs::read_to_string(d.path().join("err.txt")).unwrap_or_default();
    // A status line every 5 s: runs done of all, and each run's progress.
    wait_for("a status line", || err().contains("running: "));
    let status = err();
    let line = status.lines().find(|l| l.contains("running: ")).unwrap();
    assert!(line.starts_with("[0/2 runs done] running: "), "{line}");
    assert!(
        line.contains("bo-rep s42 ") && line.contains("slip s42 "),
        "{line}"
    );
    assert!(line.contains("/1000000000 iters"), "{line}");
    kill(&child, "-TERM");
    assert_eq!(child.wait().unwrap().code(), Some(143), "{}", err());
    for job in ["bo-rep-s42", "slip-s42"] {
        let s = summary(&d.path().join("cmp").join(job));
        assert_eq!(s.termination, "interrupted", "{job}");
        whole_lines(&d.path().join("cmp").join(job).join("trace.jsonl"));
    }
    assert!(d.path().join("cmp/table.md").exists());
}

#[test]
fn the_progress_bar_counts_epochs_or_iterations() {
    let d = toy_dir();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs/hpo_logreg.bilevel");
    let Some(bar) = on_a_terminal(
        d.path(),
        &format!("run {} --epochs 30 --no-plots --out h", spec.display()),
    ) else {
        eprintln!("skipped: no `script` to make a terminal");
        return;
    };
    assert!(bar.contains("/30  upper_loss"), "{bar}");
    assert!(!bar.contains(&u64::MAX.to_string()), "{bar}");
    assert!(!bar.contains("iters"), "{bar}");
    let bar = on_a_terminal(
        d.path(),
        "run toy.bilevel --iterations 3000 --no-plots --out t",
    )
    .unwrap();
    assert!(bar.contains("/3000 iters"), "{bar}");
}

/// A file-size limit (`ulimit -f`, as batch schedulers set) is a write
/// failure like a full disk, not a death by SIGXFSZ with a torn trace line:
/// exit 5, the `.part` trace cut back to whole lines, no summary; and once
/// the limit is lifted, `--resume` gives the uninterrupted run.
#[test]
fn a_file_size_limit_exits_5_with_whole_lines_and_the_run_resumes() {
    let d = toy_dir();
    let args = |out: &'static str| {
        [
            "run",
            "toy.bilevel",
            "--iterations",
            "40000",
            "--no-plots",
            "--out",
            out,
        ]
    };
    finished(&run(d.path(), &args("full")));
    let full = d.path().join("full");
    assert!(std::fs::metadata(full.join("trace.jsonl")).unwrap().len() > 8 * 1024);
    // 8 blocks: 4 KiB (512-byte blocks, POSIX sh) or 8 KiB (bash): more
    // than config.json and a checkpoint, less than the whole trace.
    let o = Command::new("sh")
        .arg("-c")
        .arg("ulimit -f 8 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_bilevel"))
        .args(args("lim"))
        .current_dir(d.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(text(&o).contains("File too large"), "{}", text(&o));
    let lim = d.path().join("lim");
    assert!(!lim.join("trace.jsonl").exists());
    assert!(!lim.join("summary.json").exists());
    let kept = whole_lines(&lim.join("trace.jsonl.part"));
    assert!(kept.len() > 3, "{} lines", kept.len());
    let o = run(d.path(), &["run", "--resume", "lim", "--no-plots"]);
    finished(&o);
    assert_eq!(strip(&lim), strip(&full));
}

/// A NaN objective that appears mid-run, with a finite iterate (the term's
/// gradient is 0 × a finite value once ‖x‖² > 1; its value is NaN): exit 4,
/// `non_finite` at the iteration of the first NaN trace line, the lines
/// before it finite.
#[test]
fn a_nan_that_appears_mid_run_exits_4_at_its_iteration() {
    let d = toy_dir();
    let toy = std::fs::read_to_string(d.path().join("toy.bilevel")).unwrap();
    let nan = toy.replace(
        "+ 0.5 * rho * norm2sq(x)\n",
        "+ 0.5 * rho * norm2sq(x) + 0.0 * log(1.0 - norm2sq(x))\n",
    );
    assert_ne!(nan, toy);
    std::fs::write(d.path().join("nan.bilevel"), nan).unwrap();
    let o = run(
        d.path(),
        &["run", "nan.bilevel", "--no-plots", "--out", "n"],
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let s = summary(&d.path().join("n"));
    let trace = whole_lines(&d.path().join("n/trace.jsonl"));
    let first_nan = trace
        .iter()
        .position(|r| r.metrics.values().any(|v| !v.is_finite()))
        .expect("a NaN line");
    assert!(first_nan > 0, "NaN from the start: {trace:?}");
    let at = trace[first_nan].iter;
    assert_eq!((s.termination.as_str(), s.iters), ("non_finite", at));
    assert_eq!(first_nan + 1, trace.len(), "the run stops at the breakdown");
    assert!(s.x.iter().all(|v| v.is_finite()), "{:?}", s.x);
    let b = s.breakdown.unwrap();
    assert!(b.contains(&format!("= NaN at iteration {at}")), "{b}");
}
