//! `bilevel sweep --slurm` on a real Slurm cluster (`.ci/slurm.sh start`,
//! run by `.ci/run`, which sets `BILEVEL_SLURM=1`). Without that variable
//! the tests say they are skipped; with it they must run (no Slurm is a
//! failure, not a skip).
//!
//! (a) a 12-task sweep (two solvers with different keys, 2 seeds) submitted
//! as a job array gives every task's `summary.json` equal to the same sweep
//! run locally, apart from `wall_s`; (b) an array element requeued while it
//! runs (`scontrol requeue`: SIGTERM, then a restart) resumes from its
//! checkpoint to the uninterrupted result, trace included.
#![cfg(unix)]
#![allow(missing_docs)]

mod sweep_util;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sweep_util::{bilevel, manifest_folders, summaries, sweep_file, text, trace, TWELVE};

const LIMIT: Duration = Duration::from_secs(900);

fn enabled(test: &str) -> bool {
    if std::env::var("BILEVEL_SLURM").is_ok_and(|v| v == "1") {
        return true;
    }
    println!("{test}: skipped: no Slurm (set BILEVEL_SLURM=1 with a running cluster: `bash .ci/slurm.sh start` as root)");
    false
}

fn sh(cmd: &str, args: &[&str]) -> String {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Submits the sweep; returns the job id.
fn submit(file: &Path, dir: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "sweep",
        file.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
        "--slurm",
    ];
    args.extend_from_slice(extra);
    let o = bilevel(&args);
    assert!(o.status.success(), "{}", text(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(
        !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()),
        "job id: {}",
        text(&o)
    );
    id
}

/// Waits until job `id` has left the queue; `each` runs at every poll.
fn wait(id: &str, mut each: impl FnMut(&str)) {
    let start = Instant::now();
    loop {
        let q = sh("squeue", &["-h", "-j", id, "-o", "%i %T %r"]);
        if q.trim().is_empty() {
            return;
        }
        each(&q);
        assert!(
            start.elapsed() < LIMIT,
            "job {id} still queued after {LIMIT:?}:\n{q}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn slurm_logs(dir: &Path) -> String {
    let mut s = String::new();
    for e in std::fs::read_dir(dir.join("slurm")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "out") {
            s += &std::fs::read_to_string(&p).unwrap();
        }
    }
    s
}

#[test]
fn a_job_array_gives_the_local_sweeps_results_bit_for_bit() {
    if !enabled("a_job_array_gives_the_local_sweeps_results_bit_for_bit") {
        return;
    }
    let start = Instant::now();
    let tmp = tempfile::tempdir_in("/tmp").unwrap();
    let file = sweep_file(tmp.path(), "s.toml", &TWELVE.replace("ITERS", "1500"));
    let (cluster, local) = (tmp.path().join("cluster"), tmp.path().join("local"));
    let id = submit(
        &file,
        &cluster,
        &["--max-parallel", "2", "--tasks-per-job", "2"],
    );
    let script = std::fs::read_to_string(cluster.join("slurm/sweep.sbatch")).unwrap();
    assert!(script.contains("#SBATCH --array=0-5%2"), "{script}");
    wait(&id, |_| {});
    let logs = slurm_logs(&cluster);
    let o = bilevel(&[
        "sweep",
        file.to_str().unwrap(),
        "--out",
        cluster.to_str().unwrap(),
        "--status",
    ]);
    let st = String::from_utf8_lossy(&o.stdout);
    assert!(
        st.contains("total      12        0       0        0"),
        "{st}\n{logs}"
    );
    let o = bilevel(&[
        "sweep",
        file.to_str().unwrap(),
        "--out",
        local.to_str().unwrap(),
        "--jobs",
        "2",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let (c, l) = (summaries(&cluster), summaries(&local));
    assert_eq!(c.len(), 12, "{logs}");
    assert_eq!(c, l);
    assert_eq!(manifest_folders(&cluster), manifest_folders(&local));
    // Each task ran once: one "ran" line per task in the array's logs.
    assert_eq!(logs.matches(": ran (").count(), 12, "{logs}");
    println!(
        "slurm sweep of 12 tasks: {:.1} s wall (submission to local comparison)",
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn a_requeued_task_resumes_to_the_uninterrupted_result() {
    if !enabled("a_requeued_task_resumes_to_the_uninterrupted_result") {
        return;
    }
    let tmp = tempfile::tempdir_in("/tmp").unwrap();
    let file = sweep_file(
        tmp.path(),
        "s.toml",
        "seeds = [1]\n[budget]\niterations = 60000\n[solvers.slip]\neta = [0.02]\n",
    );
    let (cluster, local) = (tmp.path().join("cluster"), tmp.path().join("local"));
    let id = submit(&file, &cluster, &[]);
    let element = format!("{id}_0");
    // Until the task runs and has written a checkpoint.
    let start = Instant::now();
    loop {
        let ck = std::fs::read_dir(cluster.join("runs"))
            .ok()
            .and_then(|mut d| {
                d.find_map(|e| {
                    e.ok()
                        .map(|e| e.path().join("checkpoint.bin"))
                        .filter(|p| p.exists())
                })
            });
        if ck.is_some() {
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "no checkpoint:\n{}",
            slurm_logs(&cluster)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let o = Command::new("scontrol")
        .args(["requeue", &element])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "scontrol requeue: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // A requeued job waits (BeginTime) before it may start again: let it start now.
    wait(&id, |q| {
        if q.contains("BeginTime") {
            let _ = Command::new("scontrol")
                .args(["update", &format!("JobId={element}"), "StartTime=now"])
                .output();
        }
    });
    let logs = slurm_logs(&cluster);
    assert!(logs.contains("restart 1"), "not requeued:\n{logs}");
    assert!(
        logs.contains("interrupted (its checkpoint is kept)"),
        "{logs}"
    );
    assert!(
        logs.contains("resumed from its checkpoint (max_iters)"),
        "{logs}"
    );
    let o = bilevel(&[
        "sweep",
        file.to_str().unwrap(),
        "--out",
        local.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(summaries(&cluster), summaries(&local));
    let name = manifest_folders(&local).pop().unwrap();
    assert_eq!(
        trace(&cluster.join("runs").join(&name)),
        trace(&local.join("runs").join(&name))
    );
}
