//! Snapshots of the real `bilevel` binary: help texts, `check`, `algorithms`,
//! a short `run` and a short `compare` on the toy spec. Wall times, rates and
//! temporary paths are masked, so the snapshots hold on any machine.
//!
//! The snapshots live in `tests/snapshots/`. A missing or different snapshot
//! fails the test (and, outside CI, leaves a `.snap.new` beside it); after an
//! intended change of the command's output, review and accept with
//! `cargo insta review`, or `INSTA_UPDATE=always cargo test -p bilevel-runner --test cli`.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

use bilevel_runner::aggregate::load_run;
use bilevel_runner::output::read_trace;
use insta_cmd::assert_cmd_snapshot;

/// The workspace root: specs are given relative to it.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the runner sits in the workspace")
        .to_path_buf()
}

/// The binary, started in `dir`, with a fixed environment: no forced colour,
/// whatever the developer's shell sets.
fn bilevel(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bilevel"));
    c.current_dir(dir)
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env_remove("COLUMNS")
        .env("NO_COLOR", "1");
    c
}

/// A temporary folder holding a copy of the toy spec (synthetic data only),
/// so every path on the command line and in the output is relative.
fn toy_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary folder");
    std::fs::copy(
        root().join("examples/specs/toy_quadratic.bilevel"),
        dir.path().join("toy_quadratic.bilevel"),
    )
    .expect("copy the toy spec");
    dir
}

/// Masks what differs between runs and machines: wall times, rates and the
/// temporary folder.
fn masked(tmp: Option<&Path>) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    if let Some(t) = tmp {
        s.add_filter(&regex_escape(&t.display().to_string()), "[TMP]");
    }
    // `bilevel run`'s headline: "…, 1678 oracle calls, 0.14s".
    s.add_filter(r"oracle calls, \d+\.\d+s", "oracle calls, [TIME]s");
    // Progress log lines: "…  2129 it/s  0.1s".
    s.add_filter(r"\d+ it/s  \d+\.\ds", "[RATE] it/s  [TIME]s");
    // The comparison table's time column: "| 0.233 ± 0.033 |".
    s.add_filter(r"\| \d+\.\d{3} ± \d+\.\d{3} \|", "| [TIME] ± [TIME] |");
    s
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if r"\.+*?()|[]{}^$#&-~".contains(ch) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[test]
fn help_texts() {
    let _g = masked(None).bind_to_scope();
    assert_cmd_snapshot!("help", bilevel(&root()).arg("--help"));
    assert_cmd_snapshot!("run_help", bilevel(&root()).args(["run", "--help"]));
    assert_cmd_snapshot!("compare_help", bilevel(&root()).args(["compare", "--help"]));
    // No arguments at all: the short help, as a usage error.
    assert_cmd_snapshot!("no_arguments", &mut bilevel(&root()));
}

#[test]
fn check_toy_spec() {
    let _g = masked(None).bind_to_scope();
    assert_cmd_snapshot!(
        "check_toy",
        bilevel(&root()).args(["check", "examples/specs/toy_quadratic.bilevel"])
    );
    assert_cmd_snapshot!(
        "check_toy_json",
        bilevel(&root()).args([
            "check",
            "--format",
            "json",
            "examples/specs/toy_quadratic.bilevel"
        ])
    );
}

#[test]
fn check_bad_spec_fails_with_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.bilevel"),
        "bilevel \"bad\" version 1\n\
         upper {\n  var x: vector[2] init zeros\n  minimize norm2sq(x - z)\n}\n\
         lower {\n  var y: vector[2] init zeros\n  minimize norm2sq(y - x)\n}\n",
    )
    .unwrap();
    let _g = masked(Some(dir.path())).bind_to_scope();
    assert_cmd_snapshot!(
        "check_bad",
        bilevel(dir.path()).args(["check", "bad.bilevel"])
    );
    assert_cmd_snapshot!(
        "check_bad_json",
        bilevel(dir.path()).args(["check", "--format", "json", "bad.bilevel"])
    );
}

#[test]
fn algorithms_lists_the_registry() {
    let _g = masked(None).bind_to_scope();
    assert_cmd_snapshot!("algorithms", bilevel(&root()).arg("algorithms"));
}

#[test]
fn short_run_on_the_toy_spec() {
    let dir = toy_dir();
    let _g = masked(Some(dir.path())).bind_to_scope();
    // 300 of the spec's 8000 iterations: too few for its `expect` block, so
    // the run reports what differed and exits 1.
    assert_cmd_snapshot!(
        "run_toy_short",
        bilevel(dir.path()).args([
            "run",
            "toy_quadratic.bilevel",
            "--iterations",
            "300",
            "--out",
            "run"
        ])
    );
    let run = dir.path().join("run");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["iterations"], 300);
    assert_eq!(config["seed"], 42);
    // Evaluations at 0 and at the end (the spec evaluates every 500).
    let trace = read_trace(&run.join("trace.jsonl")).unwrap();
    assert_eq!(
        trace.iter().map(|r| r.iter).collect::<Vec<_>>(),
        vec![0, 300]
    );
    let loaded = load_run(&run).unwrap();
    let summary = loaded.summary.expect("summary.json");
    assert_eq!(summary.termination, "max_iters");
    assert_eq!(summary.iters, 300);
    let expect: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("expect.json")).unwrap()).unwrap();
    assert_eq!(expect.as_array().map(Vec::len), Some(4));
    for ext in ["svg", "png"] {
        let p = run.join("plots").join(format!("upper_loss_vs_iters.{ext}"));
        assert!(std::fs::metadata(&p).unwrap().len() > 0, "{}", p.display());
    }
}

#[test]
fn short_compare_on_the_toy_spec() {
    let dir = toy_dir();
    let _g = masked(Some(dir.path())).bind_to_scope();
    // One worker thread: the per-job lines on stderr come in job order.
    assert_cmd_snapshot!(
        "compare_toy_short",
        bilevel(dir.path()).args([
            "compare",
            "toy_quadratic.bilevel",
            "--algorithms",
            "bo-rep,slip",
            "--seeds",
            "2",
            "--iterations",
            "300",
            "--threads",
            "1",
            "--out",
            "cmp"
        ])
    );
    let cmp = dir.path().join("cmp");
    for job in ["bo-rep-s42", "bo-rep-s43", "slip-s42", "slip-s43"] {
        let r = load_run(&cmp.join(job)).unwrap();
        assert_eq!(r.summary.expect(job).iters, 300, "{job}");
    }
    let csv = std::fs::read_to_string(cmp.join("table.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(cmp.join("table.md").exists());
    assert!(cmp.join("plots").join("upper_loss_vs_calls.svg").exists());
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

#[test]
fn a_hostile_problem_name_cannot_move_the_default_run_folder() {
    // Issue 14: `bilevel "../../../escaped"` made `run` write outside `runs/`.
    let dir = tempfile::tempdir().expect("temporary folder");
    let work = dir.path().join("a/b/c");
    std::fs::create_dir_all(&work).unwrap();
    let toy = std::fs::read_to_string(root().join("examples/specs/toy_quadratic.bilevel")).unwrap();
    let header = toy.lines().find(|l| l.starts_with("bilevel ")).unwrap();
    let hostile = toy.replacen(header, "bilevel \"../../../escaped\" version 1", 1);
    std::fs::write(work.join("hostile.bilevel"), hostile).unwrap();
    let out = bilevel(&work)
        .args(["run", "hostile.bilevel", "--iterations", "20"])
        .output()
        .unwrap();
    assert!(out.status.code().is_some(), "{out:?}");
    let files = files_under(dir.path());
    assert!(!files.is_empty());
    for f in &files {
        assert!(
            f.starts_with("a/b/c/runs") || f == Path::new("a/b/c/hostile.bilevel"),
            "{} written outside the run folder",
            f.display()
        );
    }
    assert!(
        files.iter().any(|f| f.ends_with("trace.jsonl")),
        "{files:?}"
    );
}
