//! `bilevel sweep` run locally, on the real binary: results independent of
//! `--jobs`, equal to the same runs done by hand with `bilevel run`; a second
//! identical command runs nothing; a sweep killed by SIGTERM mid-task resumes
//! to the uninterrupted result; bad sweep files are diagnostics with
//! FILE:LINE:COL and nothing runs.
#![cfg(unix)]
#![allow(missing_docs)]

mod sweep_util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sweep_util::{bilevel, manifest_folders, summaries, sweep_file, text, trace, TWELVE};

#[test]
fn results_do_not_depend_on_jobs_and_a_second_run_does_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file(tmp.path(), "s.toml", &TWELVE.replace("ITERS", "600"));
    let f = file.to_str().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let o = bilevel(&["sweep", f, "--out", a.to_str().unwrap(), "--jobs", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = bilevel(&["sweep", f, "--out", b.to_str().unwrap(), "--jobs", "3"]);
    assert!(o.status.success(), "{}", text(&o));
    let (sa, sb) = (summaries(&a), summaries(&b));
    assert_eq!(sa.len(), 12);
    assert_eq!(sa, sb, "--jobs 1 and --jobs 3 differ");
    assert_eq!(manifest_folders(&a), manifest_folders(&b));
    for name in sa.keys() {
        assert_eq!(
            trace(&a.join("runs").join(name)),
            trace(&b.join("runs").join(name))
        );
    }
    // Again: nothing runs, no file of a finished task is rewritten.
    let before: Vec<_> = sa
        .keys()
        .map(|n| {
            std::fs::metadata(a.join("runs").join(n).join("summary.json"))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();
    let o = bilevel(&["sweep", f, "--out", a.to_str().unwrap(), "--jobs", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("12 tasks: 0 ran (0 resumed), 12 done already"),
        "{out}"
    );
    let after: Vec<_> = sa
        .keys()
        .map(|n| {
            std::fs::metadata(a.join("runs").join(n).join("summary.json"))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();
    assert_eq!(before, after);
    // Status: everything done, per solver.
    let o = bilevel(&[
        "sweep",
        f,
        "--out",
        a.to_str().unwrap(),
        "--status",
        "--format",
        "json",
    ]);
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", text(&o)));
    let per = v["solvers"].as_array().unwrap();
    assert_eq!(per.len(), 2);
    assert_eq!(
        (per[0]["done"].as_u64(), per[1]["done"].as_u64()),
        (Some(8), Some(4))
    );
}

#[test]
fn a_task_equals_the_same_run_by_hand_and_lands_in_its_default_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file(tmp.path(), "s.toml", "seeds = [5]\n[budget]\niterations = 700\n[solvers.soba]\nstep_size = [0.05]\nouter_ratio = 2\n");
    let dir = tmp.path().join("sw");
    let o = bilevel(&[
        "sweep",
        file.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new(env!("CARGO_BIN_EXE_bilevel"))
        .current_dir(tmp.path())
        .args([
            "run",
            "toy.bilevel",
            "--algorithm",
            "soba",
            "--set",
            "step_size=0.05",
            "--set",
            "outer_ratio=2",
            "--seed",
            "5",
            "--iterations",
            "700",
            "--no-plots",
        ])
        .output()
        .unwrap();
    // 3: the short run misses the spec's `expect` (a sweep records that, and goes on).
    assert!(matches!(o.status.code(), Some(0 | 3)), "{}", text(&o));
    let by_hand = summaries(tmp.path());
    let swept = summaries(&dir);
    assert_eq!(by_hand.len(), 1);
    assert_eq!(
        by_hand, swept,
        "the folder name or the result differs from `bilevel run`'s"
    );
}

#[test]
fn sigterm_mid_task_then_the_same_command_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file(
        tmp.path(),
        "s.toml",
        "seeds = [1]\n[budget]\niterations = 40000\n[solvers.slip]\neta = [0.02]\n",
    );
    let f = file.to_str().unwrap();
    let whole = tmp.path().join("whole");
    let o = bilevel(&["sweep", f, "--out", whole.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let cut = tmp.path().join("cut");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bilevel"))
        .args(["sweep", f, "--out", cut.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Until the task has written a checkpoint (it is under way).
    let start = Instant::now();
    let ck = loop {
        let found = std::fs::read_dir(cut.join("runs")).ok().and_then(|mut d| {
            d.find_map(|e| {
                e.ok()
                    .map(|e| e.path().join("checkpoint.bin"))
                    .filter(|p| p.exists())
            })
        });
        if let Some(p) = found {
            break p;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended before its first checkpoint"
        );
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(10));
    };
    let pid = i32::try_from(child.id()).unwrap();
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(143), "SIGTERM ends the sweep with 143");
    assert!(ck.exists(), "the checkpoint stays");
    let o = bilevel(&["sweep", f, "--out", cut.to_str().unwrap(), "--status"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("slip        0        0       0        1"),
        "{}",
        text(&o)
    );
    let o = bilevel(&["sweep", f, "--out", cut.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("resumed from its checkpoint"), "{err}");
    assert_eq!(summaries(&whole), summaries(&cut));
    let name = manifest_folders(&cut).pop().unwrap();
    assert_eq!(
        trace(&whole.join("runs").join(&name)),
        trace(&cut.join("runs").join(&name))
    );
}

/// Each bad file gives exit 1, the message, and its line:column; nothing is written.
#[test]
fn bad_sweep_files_are_diagnostics_with_line_and_column() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "seeds = [1]\n[solvers.slpi]\neta = [0.1]\n",
            "unknown solver `slpi`",
            ":3:10:",
        ),
        (
            "seeds = [1]\n[solvers.slip]\netta = [0.1]\n",
            "no hyperparameter `etta`",
            ":4:1:",
        ),
        (
            "seeds = [1]\n[solvers.slip]\neta = [0.1, -2.0]\n",
            "`eta` of `slip`",
            ":4:7:",
        ),
        (
            "seeds = [1]\n[solvers.slip]\neta = []\n",
            "empty list",
            ":4:7:",
        ),
        (
            "seeds = [1]\n[grid]\nstep_size = [0.1]\n[solvers.slip]\n",
            "no solver of the sweep has a hyperparameter `step_size`",
            ":4:1:",
        ),
        ("seeds = [1, 1]\n[solvers.slip]\n", "listed twice", ":2:9:"),
        (
            "seeds = [1]\n[solvers.soba]\nstep_size = { log = [0.1, 0.01], points = 3 }\n",
            "0 < A < B",
            ":4:13:",
        ),
        (
            "seeds = [1]\nbudgett = 3\n[solvers.slip]\n",
            "unknown field `budgett`",
            ":3:1:",
        ),
        (
            "seeds = [1]\n[budget]\niterations = 0\n[solvers.slip]\n",
            "at least 1",
            ":3:1:",
        ),
        (
            "seeds = [1]\n[grid]\neta = [0.1]\n[solvers.slip]\neta = [0.2]\n",
            "also in [grid]",
            ":6:1:",
        ),
        (
            "seeds = [1]\n[solvers.slip]\neta = [0.1, 0.1]\n",
            "listed twice",
            ":4:7:",
        ),
        ("seeds = [1]\n[solvers.slip]\neta = [0.1\n", "", ":4:"),
    ];
    for (body, want, pos) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let file = sweep_file(tmp.path(), "bad.toml", body);
        let dir = tmp.path().join("out");
        let o = bilevel(&[
            "sweep",
            file.to_str().unwrap(),
            "--out",
            dir.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{body}\n{}", text(&o));
        assert!(err.contains(want), "{body}: want {want}\n{err}");
        assert!(
            err.contains(&format!("bad.toml{pos}")),
            "{body}: want {pos}\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(!dir.exists(), "{body}: something was written");
    }
}

#[test]
fn a_folder_that_is_not_a_sweeps_and_stale_task_ids_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file(
        tmp.path(),
        "s.toml",
        "seeds = [1, 2]\n[budget]\niterations = 50\n[solvers.soba]\n",
    );
    let f = file.to_str().unwrap();
    let dir = tmp.path().join("mine");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("paper.tex"), "").unwrap();
    let o = bilevel(&["sweep", f, "--out", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not a sweep folder"),
        "{}",
        text(&o)
    );
    let dir = tmp.path().join("sw");
    let o = bilevel(&["sweep", f, "--out", dir.to_str().unwrap(), "--task", "1"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no sweep.json"),
        "{}",
        text(&o)
    );
    let o = bilevel(&[
        "sweep",
        f,
        "--out",
        dir.to_str().unwrap(),
        "--slurm",
        "--dry-run",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let script = std::fs::read_to_string(dir.join("slurm/sweep.sbatch")).unwrap();
    assert!(
        script.contains("#SBATCH --array=0-1\n") && script.contains("#SBATCH --requeue"),
        "{script}"
    );
    let o = bilevel(&["sweep", f, "--out", dir.to_str().unwrap(), "--task", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(summaries(&dir).len(), 1);
    let o = bilevel(&["sweep", f, "--out", dir.to_str().unwrap(), "--task", "2"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("tasks 0-1"),
        "{}",
        text(&o)
    );
    // The file edited after submission: the array's ids would name other runs.
    std::fs::write(
        &file,
        "specs = [\"toy.bilevel\"]\nseeds = [7, 1, 2]\n[budget]\niterations = 50\n[solvers.soba]\n",
    )
    .unwrap();
    let o = bilevel(&["sweep", f, "--out", dir.to_str().unwrap(), "--task", "0"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("another version of the sweep file"),
        "{}",
        text(&o)
    );
}

/// Decision 103 for a sweep: a SIGTERM after its only task's final
/// checkpoint interrupts nothing — the task ran to its end (summary
/// `max_iters`), the sweep exits 0 and the same command again runs
/// nothing.
#[test]
fn a_signal_after_the_last_tasks_final_checkpoint_leaves_exit_0() {
    let tmp = tempfile::tempdir().unwrap();
    let file = sweep_file(
        tmp.path(),
        "s.toml",
        "seeds = [5]\n[budget]\niterations = 300\n[solvers.soba]\nstep_size = [0.05]\n",
    );
    let dir = tmp.path().join("sw");
    let args = [
        "sweep",
        file.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ];
    let o = Command::new(env!("CARGO_BIN_EXE_bilevel"))
        .args(args)
        .env("BILEVEL_FAULT", "sigterm-after-final-checkpoint")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1 ran (0 resumed)"),
        "{}",
        text(&o)
    );
    let s = summaries(&dir);
    assert_eq!(s.len(), 1);
    assert!(s.values().all(|v| v["termination"] == "max_iters"), "{s:?}");
    let o = bilevel(&args);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("1 done already"),
        "{}",
        text(&o)
    );
}
