//! `bilevel report` and `bilevel best` on run folders made by the real
//! `bilevel run`: a report with a missing task and a killed (partial) run,
//! the best step size on the toy whose answer is known, a test metric
//! refused, and the winners written back as a spec that checks and runs
//! with them.
#![cfg(unix)]
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use bilevel_runner::output::read_trace;
use serde_json::Value;

fn toy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs/toy_quadratic.bilevel")
}

fn bilevel(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bilevel"))
        .current_dir(cwd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("start bilevel")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "bilevel failed ({}):\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// A finished slip run of the toy in `dir/name` (exit 0, or 3 when the
/// spec's `expect` does not hold at this short budget).
fn slip_run(dir: &Path, name: &str, eta: &str, seed: u64, iterations: u64) {
    let spec = toy();
    let o = bilevel(
        dir,
        &[
            "run",
            spec.to_str().unwrap(),
            "--algorithm",
            "slip",
            "--set",
            &format!("eta={eta}"),
            "--seed",
            &seed.to_string(),
            "--iterations",
            &iterations.to_string(),
            "--no-plots",
            "--out",
            name,
        ],
    );
    assert!(
        matches!(o.status.code(), Some(0 | 3)),
        "bilevel run failed ({}):\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A slip run killed (SIGKILL) once its `.part` trace holds 3 lines.
fn killed_run(dir: &Path, name: &str) {
    let spec = toy();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bilevel"))
        .current_dir(dir)
        .args([
            "run",
            spec.to_str().unwrap(),
            "--algorithm",
            "slip",
            "--set",
            "eta=0.08",
            "--seed",
            "7",
            "--iterations",
            "1000000000",
            "--no-plots",
            "--out",
            name,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let part = dir.join(name).join("trace.jsonl.part");
    let start = Instant::now();
    while std::fs::read_to_string(&part).map_or(0, |t| t.matches('\n').count()) < 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the long run ended by itself"
        );
        assert!(start.elapsed() < Duration::from_secs(180), "no trace lines");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!dir.join(name).join("summary.json").exists());
}

/// Equal up to the rounding of interpolating between two order statistics.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

fn last_upper(dir: &Path) -> f64 {
    let t = if dir.join("trace.jsonl").exists() {
        dir.join("trace.jsonl")
    } else {
        dir.join("trace.jsonl.part")
    };
    read_trace(&t).unwrap().last().unwrap().metrics["upper_loss"]
}

#[test]
fn report_marks_the_missing_task_and_the_partial_run() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("sweep");
    std::fs::create_dir(&d).unwrap();
    slip_run(&d, "a", "0.08", 1, 1500);
    slip_run(&d, "b", "0.08", 2, 1500);
    slip_run(&d, "c", "0.02", 1, 1500);
    killed_run(&d, "k");
    let manifest = serde_json::json!({"tasks": [
        {"id": "t0", "folder": "a"}, {"id": "t1", "folder": "b"}, {"id": "t2", "folder": "c"},
        {"id": "t3", "folder": "k"}, {"id": "t4", "folder": "never-started"},
    ]});
    // The manifest `bilevel sweep` writes (docs/sweeps.md), by hand here.
    std::fs::write(d.join("sweep.json"), manifest.to_string()).unwrap();
    let out = tmp.path().join("rep");
    let j = json(&ok(&bilevel(
        tmp.path(),
        &[
            "report",
            "sweep",
            "--out",
            out.to_str().unwrap(),
            "--format",
            "json",
        ],
    )));
    assert_eq!(j["runs"], 4);
    assert_eq!(j["partial"], 1);
    let missing = j["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0]["task"], "t4");
    assert_eq!(missing[0]["why"], "no folder");
    // Two groups: eta 0.08 (two finished runs and the killed one), eta 0.02.
    let groups = j["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{groups:?}");
    let g = groups
        .iter()
        .find(|g| g["group"].as_str().unwrap().contains("eta=0.08"))
        .unwrap();
    assert_eq!(g["runs"], 3);
    assert_eq!(g["partial"], 1);
    assert_eq!(g["terminations"]["partial"], 1);
    let want = median(
        ["a", "b", "k"]
            .iter()
            .map(|n| last_upper(&d.join(n)))
            .collect(),
    );
    let got = g["final_metrics"]["upper_loss"]["median"].as_f64().unwrap();
    assert!(close(got, want), "{got} vs {want}");
    let q20 = g["final_metrics"]["upper_loss"]["q20"].as_f64().unwrap();
    let q80 = g["final_metrics"]["upper_loss"]["q80"].as_f64().unwrap();
    assert!(q20 <= got && got <= q80);
    for f in [
        "report.md",
        "report.json",
        "upper_loss_vs_calls.png",
        "upper_loss_vs_wall.svg",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("1 partial*") && md.contains("t4 (never-started): no folder"),
        "{md}"
    );
    // A folder that started but wrote no trace is listed too.
    std::fs::create_dir(d.join("empty")).unwrap();
    std::fs::write(d.join("empty/config.json"), "{}").unwrap();
    let j = json(&ok(&bilevel(
        tmp.path(),
        &[
            "report",
            "sweep",
            "--no-plots",
            "--out",
            out.to_str().unwrap(),
            "--format",
            "json",
        ],
    )));
    let whys: Vec<&str> = j["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["why"].as_str().unwrap())
        .collect();
    assert_eq!(whys, ["no folder", "no trace"]);
}

/// Step sizes 1e-4 (barely moves from x = 0), 0.02 (oscillates at this
/// budget) and 0.08 (converges to x* of the toy), two seeds each.
fn eta_grid(d: &Path) {
    for (i, eta) in ["0.0001", "0.02", "0.08"].iter().enumerate() {
        for seed in [1, 2] {
            slip_run(d, &format!("r{i}-s{seed}"), eta, seed, 1500);
        }
    }
}

fn summary_x(d: &Path) -> Vec<f64> {
    let s = json(&std::fs::read_to_string(d.join("summary.json")).unwrap());
    s["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[test]
fn best_picks_the_known_best_step_and_writes_a_spec_that_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("grid");
    std::fs::create_dir(&d).unwrap();
    eta_grid(&d);
    let j = json(&ok(&bilevel(
        tmp.path(),
        &["best", "grid", "--format", "json"],
    )));
    let cands = j["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 3);
    let best: Vec<&Value> = cands.iter().filter(|c| c["best"] == true).collect();
    assert_eq!(best.len(), 1);
    assert_eq!(best[0]["swept"]["eta"], 0.08);
    // Independently: the winner's runs end nearest the toy's x*, and its
    // median final upper loss is the smallest, read from the folders.
    let xstar = [2120.0 / 2729.0, -3900.0 / 2729.0];
    let dist = |i: usize| {
        median(
            (1..=2)
                .map(|s| {
                    let x = summary_x(&d.join(format!("r{i}-s{s}")));
                    ((x[0] - xstar[0]).powi(2) + (x[1] - xstar[1]).powi(2)).sqrt()
                })
                .collect(),
        )
    };
    assert!(dist(2) < 0.1 && dist(2) < dist(1) && dist(2) < dist(0));
    let med = |i: usize| {
        median(
            (1..=2)
                .map(|s| last_upper(&d.join(format!("r{i}-s{s}"))))
                .collect(),
        )
    };
    let score = best[0]["score"].as_f64().unwrap();
    assert!(close(score, med(2)), "{score} vs {}", med(2));
    // --max ranks the other way: the step that barely moves wins.
    let j = json(&ok(&bilevel(
        tmp.path(),
        &["best", "grid", "--max", "--format", "json"],
    )));
    let w: Vec<&Value> = j["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["best"] == true)
        .collect();
    assert_eq!(w[0]["swept"]["eta"], 0.0001);
    // At iteration 500 the value is read from that evaluation.
    let j = json(&ok(&bilevel(
        tmp.path(),
        &[
            "best",
            "grid",
            "--at",
            "iterations",
            "500",
            "--format",
            "json",
        ],
    )));
    let c = j["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["swept"]["eta"] == 0.0001)
        .unwrap()
        .clone();
    let at500 = |s: u64| {
        read_trace(&d.join(format!("r0-s{s}/trace.jsonl")))
            .unwrap()
            .iter()
            .find(|t| t.iter == 500)
            .unwrap()
            .metrics["upper_loss"]
    };
    let score = c["score"].as_f64().unwrap();
    assert!(close(score, median(vec![at500(1), at500(2)])), "{score}");

    // Written back: the spec checks, keeps the rest, and runs with the winner.
    let spec = toy();
    let new = tmp.path().join("tuned.bilevel");
    let text = ok(&bilevel(
        tmp.path(),
        &[
            "best",
            "grid",
            "--write-spec",
            spec.to_str().unwrap(),
            "--out",
            new.to_str().unwrap(),
        ],
    ));
    assert!(text.contains("it checks"), "{text}");
    let written = std::fs::read_to_string(&new).unwrap();
    let original = std::fs::read_to_string(&spec).unwrap();
    assert!(
        written.contains("algorithm slip { eta = 0.08 }"),
        "{written}"
    );
    assert_eq!(
        written.replace("\nalgorithm slip { eta = 0.08 }", ""),
        original
    );
    ok(&bilevel(tmp.path(), &["check", new.to_str().unwrap()]));
    let o = bilevel(
        tmp.path(),
        &[
            "run",
            new.to_str().unwrap(),
            "--algorithm",
            "slip",
            "--iterations",
            "10",
            "--no-plots",
            "--out",
            "check-run",
        ],
    );
    assert!(matches!(o.status.code(), Some(0 | 3)), "{o:?}");
    let cfg = json(&std::fs::read_to_string(tmp.path().join("check-run/config.json")).unwrap());
    assert_eq!(cfg["hyperparameters"]["eta"], 0.08);
    // Never overwritten; a spec the runs are not of is refused.
    let again = bilevel(
        tmp.path(),
        &[
            "best",
            "grid",
            "--write-spec",
            spec.to_str().unwrap(),
            "--out",
            new.to_str().unwrap(),
        ],
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
    let other = bilevel(
        tmp.path(),
        &[
            "best",
            "grid",
            "--write-spec",
            new.to_str().unwrap(),
            "--out",
            "other.bilevel",
        ],
    );
    assert_eq!(other.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&other.stderr).contains("no run below"));
    assert!(!tmp.path().join("other.bilevel").exists());
}

#[test]
fn a_test_metric_is_refused_unless_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("grid");
    std::fs::create_dir(&d).unwrap();
    slip_run(&d, "a", "0.08", 1, 600);
    for m in ["test_loss", "test_accuracy", "heldout-test-error"] {
        let o = bilevel(tmp.path(), &["best", "grid", "--by", m]);
        assert_eq!(o.status.code(), Some(1), "{m}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("test metric") && err.contains("--allow-test-metric"),
            "{err}"
        );
    }
    // Asked for, it is ranked (here: not recorded by the toy, which says so).
    let o = bilevel(
        tmp.path(),
        &["best", "grid", "--by", "test_loss", "--allow-test-metric"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no run records this metric"));
    // A name that only contains the letters is not a test metric.
    let o = bilevel(tmp.path(), &["best", "grid", "--by", "latest_loss"]);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("test metric"));
    // A metric whose direction the name does not tell needs --min/--max.
    let o = bilevel(tmp.path(), &["best", "grid", "--by", "ridge"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--min or --max"));
}

/// The real `bilevel sweep`, told to run only some tasks: the others are
/// missing, named by the sweep's task ids; `best` over the sweep folder.
#[test]
fn report_and_best_over_a_real_sweep_folder() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sweeps/toy_sweep.bilevel"),
        tmp.path().join("toy_sweep.bilevel"),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("s.toml"),
        "specs = [\"toy_sweep.bilevel\"]\nseeds = [1, 2]\n[budget]\niterations = 1500\n[solvers.slip]\neta = [0.0001, 0.08]\n",
    )
    .unwrap();
    // The dry run writes sw/sweep.json (and the job script), runs nothing.
    ok(&bilevel(
        tmp.path(),
        &["sweep", "s.toml", "--out", "sw", "--slurm", "--dry-run"],
    ));
    let o = bilevel(
        tmp.path(),
        &["sweep", "s.toml", "--out", "sw", "--task", "0-2"],
    );
    assert!(matches!(o.status.code(), Some(0 | 3)), "{o:?}");
    let j = json(&ok(&bilevel(
        tmp.path(),
        &["report", "sw", "--no-plots", "--format", "json"],
    )));
    assert_eq!(j["runs"], 3);
    let missing = j["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0]["task"], "3");
    assert_eq!(missing[0]["why"], "no folder");
    let j = json(&ok(&bilevel(
        tmp.path(),
        &["best", "sw", "--format", "json"],
    )));
    let w: Vec<&Value> = j["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["best"] == true)
        .collect();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0]["swept"]["eta"], 0.08);
}
