//! Checkpoints and `bilevel run --resume DIR`: a run stopped anywhere — by
//! an iteration limit, by Ctrl-C (SIGINT), by `kill -9` — and resumed gives
//! the same `trace.jsonl` and `summary.json` as the run that was never
//! stopped, apart from wall time: for every solver of the registry on the
//! toy (the finite-sum solvers on the toy as a finite sum), on a spec with
//! data (shuffled minibatches over epochs; SABA's SAGA tables, indexed by
//! row) and on the RNN specs (a model). Corrupt, truncated and foreign checkpoints are
//! refused with errors that say why.
//!
//! The signal tests run the real binary and wait, polling, for the trace to
//! grow (no fixed sleeps).
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bilevel_core::registry::SOLVERS;
use bilevel_core::solver::FINITE_SUM;
use bilevel_runner::session::{ProgressMode, RunSummary};
use bilevel_runner::spec::{run_spec_with, CheckpointSettings, RunConfig};

mod support;
use support::{ok, specs, strip};

const META: &[&str] = &["maml", "anil", "fomaml", "ufom"];

/// A copy of an example spec in `dir` with its data paths made absolute and
/// `edit` applied.
fn spec_copy(dir: &Path, name: &str, edit: &[(&str, &str)]) -> PathBuf {
    let src = specs().join(name);
    let mut text = std::fs::read_to_string(&src).unwrap();
    let base = src.parent().unwrap().canonicalize().unwrap();
    for q in ["tsv(\"", "csv(\""] {
        text = text.replace(q, &format!("{q}{}/", base.display()));
    }
    for (a, b) in edit {
        assert!(text.contains(a), "{name} has no `{a}`");
        text = text.replace(a, b);
    }
    let out = dir.join(Path::new(name).file_name().unwrap());
    std::fs::write(&out, text).unwrap();
    out
}

fn cfg(spec: &Path, algorithm: &str, set: &[String], iters: Option<u64>, out: &Path) -> RunConfig {
    RunConfig {
        spec: spec.to_path_buf(),
        algorithm: Some(algorithm.to_string()),
        set: set.to_vec(),
        seed: Some(3),
        iterations: iters,
        epochs: None,
        out: Some(out.to_path_buf()),
        progress: ProgressMode::Quiet,
        plots: false,
        color: false,
        folder: bilevel_runner::runfolder::FolderMode::New,
        threads: None,
    }
}

fn stopped() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

/// Runs `algorithm` uninterrupted for `total` iterations, then for each
/// stop: a run limited to `stop` iterations resumed (through the library,
/// as `bilevel run --resume` does) with the full budget; and one run
/// stopped and resumed at every stop in turn. Every resumed run must equal
/// the uninterrupted one.
fn check_resumes(spec: &Path, algorithm: &str, set: &[String], total: u64, stops: &[u64]) {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    run_spec_with(
        &cfg(spec, algorithm, set, Some(total), &full),
        &CheckpointSettings::default(),
        stopped(),
    )
    .unwrap_or_else(|e| panic!("{algorithm}: {e:#}"));
    let want = strip(&full);
    assert!(
        want.0.len() >= 2,
        "{algorithm}: {} trace lines",
        want.0.len()
    );
    let resume = |dir: &Path, iters: u64| {
        let ck = CheckpointSettings {
            every: None,
            resume: Some(dir.to_path_buf()),
        };
        let mut c = cfg(Path::new(""), algorithm, &[], Some(iters), dir);
        c.algorithm = None;
        c.seed = None;
        run_spec_with(&c, &ck, stopped())
            .unwrap_or_else(|e| panic!("{algorithm} resumed in {}: {e:#}", dir.display()));
    };
    for &stop in stops {
        let dir = tmp.path().join(format!("stop{stop}"));
        run_spec_with(
            &cfg(spec, algorithm, set, Some(stop), &dir),
            &CheckpointSettings::default(),
            stopped(),
        )
        .unwrap();
        resume(&dir, total);
        assert!(
            strip(&dir) == want,
            "{algorithm} stopped at {stop}, resumed"
        );
    }
    if stops.len() < 2 {
        return;
    }
    // Stopped and resumed at every stop in turn.
    let chain = tmp.path().join("chain");
    run_spec_with(
        &cfg(spec, algorithm, set, Some(stops[0]), &chain),
        &CheckpointSettings::default(),
        stopped(),
    )
    .unwrap();
    for &stop in &stops[1..] {
        resume(&chain, stop);
    }
    resume(&chain, total);
    assert!(
        strip(&chain) == want,
        "{algorithm} resumed at each of {stops:?}"
    );
}

fn non_meta_solvers() -> Vec<&'static str> {
    SOLVERS
        .iter()
        .map(|s| s.name)
        .filter(|n| !META.contains(n))
        .collect()
}

#[test]
fn every_solver_resumed_on_the_toy_gives_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec_copy(
        tmp.path(),
        "toy_quadratic.bilevel",
        &[("eval_every = 500", "eval_every = 25")],
    );
    // The finite-sum solvers (SABA) on the toy as a finite sum (its noise a
    // table of rows): the synthetic toy is refused for them.
    let finite = spec_copy(
        tmp.path(),
        "toy_finite_sum.bilevel",
        &[("eval_every = 500", "eval_every = 25")],
    );
    for a in non_meta_solvers() {
        let spec = if FINITE_SUM.contains(&a) {
            &finite
        } else {
            &spec
        };
        // Off the cadence (1, 299) and on it (75).
        check_resumes(spec, a, &[], 300, &[1, 75, 299]);
    }
}

/// The finite-sum solvers with their sample indices in shuffled passes of
/// 48 and in order (the data source's `sampler`): stopped inside a pass, at
/// its end and just after, and resumed, as the uninterrupted run.
#[test]
fn finite_sum_solvers_resumed_on_ordered_indices_give_the_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    for sampler in ["shuffle", "sequential"] {
        let to = format!("sampler = {sampler}");
        let spec = spec_copy(
            tmp.path(),
            "toy_finite_sum.bilevel",
            &[
                ("eval_every = 500", "eval_every = 25"),
                ("sampler = replace", &to),
            ],
        );
        for a in FINITE_SUM {
            // SABA's step 0.1 diverges on reshuffled passes here.
            let set = ["step_size=0.02".to_string()];
            check_resumes(&spec, a, &set, 200, &[1, 47, 48, 49, 130]);
        }
    }
}

#[test]
fn every_solver_resumed_on_shuffled_data_gives_the_uninterrupted_run() {
    // 180 rows in minibatches of 32: a new shuffle every 6 draws, so the
    // checkpoints fall inside epochs and at their ends.
    let tmp = tempfile::tempdir().unwrap();
    let spec = spec_copy(
        tmp.path(),
        "hyperclean.bilevel",
        &[("eval_every = 100", "eval_every = 7")],
    );
    for a in non_meta_solvers() {
        check_resumes(&spec, a, &[], 40, &[3, 14, 29]);
    }
}

#[test]
fn meta_and_model_solvers_resumed_on_the_rnn_specs_give_the_uninterrupted_run() {
    let rnn = specs().join("rnn");
    let small: Vec<String> = ["meta_batch=2", "inner_steps=2"]
        .iter()
        .map(|s| (*s).to_string())
        .collect();
    check_resumes(&rnn.join("hyperrep.bilevel"), "anil", &small, 4, &[1, 3]);
    // MAML, FOMAML and UFOM adapt all of x (dim x = dim y): their own
    // formulation of the problem.
    for a in ["maml", "fomaml", "ufom"] {
        check_resumes(&rnn.join("hyperrep_maml.bilevel"), a, &small, 4, &[2]);
    }
    // A model run by a non-meta solver on the model's data.
    check_resumes(&rnn.join("hyperclean.bilevel"), "slip", &[], 4, &[2]);
    // SABA on a model: the RNN hyper-cleaning spec made small (2 % of the
    // rows, a 1-layer RNN of 4 units), its SAGA tables over the rows.
    let tmp = tempfile::tempdir().unwrap();
    let data = specs().join("../../data").canonicalize().unwrap();
    let abs = format!("\"{}/", data.display());
    let tiny = spec_copy(
        tmp.path(),
        "rnn/hyperclean.bilevel",
        &[
            ("split = [0.0, 0.6]", "split = [0.0, 0.02]"),
            ("split = [0.6, 0.8]", "split = [0.6, 0.61]"),
            ("hidden = 64, layers = 2", "hidden = 4, layers = 1"),
            ("vocab = \"../../../data/", &format!("vocab = {abs}")),
            ("vectors = \"../../../data/", &format!("vectors = {abs}")),
        ],
    );
    check_resumes(&tiny, "saba", &[], 4, &[1, 3]);
}

// ---- The real binary: signals, kill -9, bad checkpoints. ----

fn err_text(o: &Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(!e.contains("panicked"), "{e}");
    e
}

#[cfg(unix)]
mod signals {
    use std::fs::File;
    use std::process::{Child, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    const LIMIT: Duration = Duration::from_secs(180);
    const TOTAL: &str = "30000";

    fn start(dir: &Path, out: &str, extra: &[&str]) -> Child {
        let mut args = vec!["run", "toy.bilevel", "--iterations", TOTAL, "--no-plots"];
        args.extend_from_slice(extra);
        if !out.is_empty() {
            args.extend(["--out", out]);
        }
        Command::new(env!("CARGO_BIN_EXE_bilevel"))
            .current_dir(dir)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.join(format!("stderr-{}.txt", args.len()))).unwrap())
            .spawn()
            .expect("start bilevel")
    }

    /// Waits until the run folder's checkpoint exists and the trace holds
    /// `n` lines (so the run is under way, past a checkpoint).
    fn wait_for(child: &mut Child, run: &Path, n: usize) {
        let t = Instant::now();
        loop {
            let lines = std::fs::read_to_string(run.join("trace.jsonl.part"))
                .map_or(0, |t| t.matches('\n').count());
            // The lock file names this child once it has installed its
            // signal handlers and taken the folder (a resumed run's folder
            // still holds the killed run's lines until then).
            let owner = std::fs::read_to_string(run.join(".bilevel.lock"))
                .is_ok_and(|s| s.trim() == format!("pid {}", child.id()));
            if owner && lines >= n && run.join("checkpoint.bin").exists() {
                return;
            }
            assert!(child.try_wait().unwrap().is_none(), "bilevel ended early");
            assert!(t.elapsed() < LIMIT, "no {n} trace lines in {LIMIT:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(child: &mut Child, sig: &str) -> Option<i32> {
        let ok = Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
        let t = Instant::now();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s.code();
            }
            assert!(t.elapsed() < LIMIT, "bilevel did not stop");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn setup() -> (tempfile::TempDir, (Vec<String>, String)) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(
            specs().join("toy_quadratic.bilevel"),
            tmp.path().join("toy.bilevel"),
        )
        .unwrap();
        ok(&support::run(
            tmp.path(),
            &[
                "run",
                "toy.bilevel",
                "--iterations",
                TOTAL,
                "--no-plots",
                "--out",
                "full",
            ],
        ));
        let want = strip(&tmp.path().join("full"));
        (tmp, want)
    }

    #[test]
    fn ctrl_c_twice_then_resume_gives_the_uninterrupted_run() {
        let (tmp, want) = setup();
        let run = tmp.path().join("run");
        let mut child = start(tmp.path(), "run", &[]);
        wait_for(&mut child, &run, 2);
        assert_eq!(signal(&mut child, "-INT"), Some(130));
        let s: RunSummary =
            serde_json::from_slice(&std::fs::read(run.join("summary.json")).unwrap()).unwrap();
        assert_eq!(s.termination, "interrupted");
        // Resumed, interrupted again, resumed to the end.
        let mut child = Command::new(env!("CARGO_BIN_EXE_bilevel"))
            .current_dir(tmp.path())
            .args(["run", "--resume", "run", "--no-plots"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for(&mut child, &run, s.iters as usize / 500 + 3);
        assert_eq!(signal(&mut child, "-INT"), Some(130));
        let o = support::run(tmp.path(), &["run", "--resume", "run", "--no-plots"]);
        ok(&o);
        // The report names the spec the folder's config.json recorded.
        let said = String::from_utf8_lossy(&o.stdout);
        assert!(said.contains(" on toy.bilevel: "), "{said}");
        assert!(strip(&run) == want, "resumed twice after Ctrl-C");
    }

    #[test]
    fn kill_9_keeps_the_last_checkpoint_and_resume_gives_the_uninterrupted_run() {
        let (tmp, want) = setup();
        let run = tmp.path().join("run");
        let mut child = start(tmp.path(), "run", &["--checkpoint-every", "1000"]);
        wait_for(&mut child, &run, 4);
        assert_eq!(signal(&mut child, "-KILL"), None);
        assert!(!run.join("summary.json").exists());
        // The checkpoint is whole and mid-run.
        let c = bilevel_runner::checkpoint::read(&run).unwrap();
        assert!(
            c.header.position.stop.is_none() && c.header.position.iter.is_multiple_of(1000),
            "{:?}",
            c.header
        );
        // The spec is given again (its path is relative to the folder the
        // run started in; here the same).
        ok(&support::run(
            tmp.path(),
            &[
                "run",
                "toy.bilevel",
                "--resume",
                "run",
                "--no-plots",
                "--checkpoint-every",
                "1000",
            ],
        ));
        assert!(!run.join("trace.jsonl.part").exists());
        assert!(strip(&run) == want, "resumed after kill -9");
    }
    /// A crash inside the third checkpoint write (half the temporary file
    /// written, then abort) leaves the second checkpoint whole; `--resume`
    /// continues from it to the uninterrupted trace and summary.
    #[test]
    fn abort_inside_a_checkpoint_write_resumes_from_the_previous_checkpoint() {
        let (tmp, want) = setup();
        let run = tmp.path().join("run");
        let o = Command::new(env!("CARGO_BIN_EXE_bilevel"))
            .current_dir(tmp.path())
            .env("BILEVEL_FAULT", "abort-in-checkpoint:3")
            .args(["run", "toy.bilevel", "--iterations", TOTAL, "--no-plots"])
            .args(["--checkpoint-every", "1000", "--out", "run"])
            .output()
            .unwrap();
        assert!(!o.status.success(), "the injected abort did not happen");
        assert!(!run.join("summary.json").exists());
        let c = bilevel_runner::checkpoint::read(&run).unwrap();
        assert_eq!(c.header.position.iter, 2000, "{:?}", c.header);
        ok(&support::run(
            tmp.path(),
            &[
                "run",
                "--resume",
                "run",
                "--no-plots",
                "--checkpoint-every",
                "1000",
            ],
        ));
        assert!(
            strip(&run) == want,
            "resumed after a crash inside a checkpoint write"
        );
    }

    /// SABA (its SAGA tables in the checkpoint) killed with `kill -9`
    /// mid-run on the toy as a finite sum, then resumed twice (once after a
    /// Ctrl-C): the uninterrupted run's trace and summary.
    #[test]
    fn saba_after_kill_9_and_ctrl_c_resumes_to_the_uninterrupted_run() {
        finite_after_kill_9_and_ctrl_c("saba", &[]);
    }

    /// SRBA (its recursive directions, previous iterate and restart period
    /// in the checkpoint) with its sample indices in shuffled passes (the
    /// order and position in the checkpoint), as SABA.
    #[test]
    fn srba_on_shuffled_indices_after_kill_9_and_ctrl_c_resumes_to_the_uninterrupted_run() {
        finite_after_kill_9_and_ctrl_c("srba", &[("sampler = replace", "sampler = shuffle")]);
    }

    fn finite_after_kill_9_and_ctrl_c(algorithm: &str, edit: &[(&str, &str)]) {
        let tmp = tempfile::tempdir().unwrap();
        let spec = spec_copy(tmp.path(), "toy_finite_sum.bilevel", edit);
        let spec = spec.file_name().unwrap().to_str().unwrap().to_string();
        let run_args = |out: &str| {
            let mut a: Vec<String> = ["run", &spec, "--iterations", "60000", "--no-plots"]
                .iter()
                .map(|s| (*s).to_string())
                .collect();
            a.extend(
                [
                    "--algorithm",
                    algorithm,
                    "--checkpoint-every",
                    "1000",
                    "--out",
                    out,
                ]
                .map(String::from),
            );
            a
        };
        let full = run_args("full");
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let o = support::run(tmp.path(), &full);
        assert!(
            matches!(o.status.code(), Some(0 | 3)),
            "{}",
            support::text(&o)
        );
        let want = strip(&tmp.path().join("full"));
        let run = tmp.path().join("run");
        let args = run_args("run");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = format!("stderr-{algorithm}.txt");
        let mut child = support::spawn_logged(tmp.path(), &args, &log, &[]);
        wait_for(&mut child, &run, 4);
        assert_eq!(signal(&mut child, "-KILL"), None);
        assert!(!run.join("summary.json").exists());
        let c = bilevel_runner::checkpoint::read(&run).unwrap();
        assert_eq!(c.header.solver, algorithm);
        assert!(
            c.header.position.iter.is_multiple_of(1000),
            "{:?}",
            c.header
        );
        let resume = [
            "run",
            &spec,
            "--resume",
            "run",
            "--no-plots",
            "--checkpoint-every",
            "1000",
        ];
        let log = format!("stderr-{algorithm}2.txt");
        let mut child = support::spawn_logged(tmp.path(), &resume, &log, &[]);
        wait_for(&mut child, &run, c.header.position.trace_lines as usize + 2);
        assert_eq!(signal(&mut child, "-INT"), Some(130));
        let o = support::run(tmp.path(), &resume);
        assert!(
            matches!(o.status.code(), Some(0 | 3)),
            "{}",
            support::text(&o)
        );
        assert!(
            strip(&run) == want,
            "{algorithm} resumed after kill -9 and Ctrl-C"
        );
    }
}

/// A short run in `dir/run`, its checkpoint at the stop.
fn short_run(dir: &Path) -> PathBuf {
    std::fs::copy(
        specs().join("toy_quadratic.bilevel"),
        dir.join("toy.bilevel"),
    )
    .unwrap();
    ok(&support::run(
        dir,
        &[
            "run",
            "toy.bilevel",
            "--iterations",
            "700",
            "--no-plots",
            "--out",
            "run",
        ],
    ));
    dir.join("run")
}

#[test]
fn corrupt_truncated_and_missing_checkpoints_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let run = short_run(tmp.path());
    let ck = run.join("checkpoint.bin");
    let good = std::fs::read(&ck).unwrap();
    let resume = || support::run(tmp.path(), &["run", "--resume", "run", "--no-plots"]);
    std::fs::write(&ck, &good[..good.len() / 2]).unwrap();
    let e = err_text(&resume());
    assert!(
        e.contains("checkpoint.bin") && e.contains("truncated"),
        "{e}"
    );
    let mut bad = good.clone();
    let mid = bad.len() - 100;
    bad[mid] ^= 0x10;
    std::fs::write(&ck, &bad).unwrap();
    let e = err_text(&resume());
    assert!(e.contains("corrupt") && e.contains("checksum"), "{e}");
    std::fs::write(&ck, b"{\"not\": \"a checkpoint\"}").unwrap();
    let e = err_text(&resume());
    assert!(e.contains("not a bilevel checkpoint"), "{e}");
    std::fs::remove_file(&ck).unwrap();
    let e = err_text(&resume());
    assert!(e.contains("holds no checkpoint"), "{e}");
    // A trace shorter than the checkpoint counts: refused, nothing changed.
    std::fs::write(&ck, &good).unwrap();
    let trace = std::fs::read(run.join("trace.jsonl")).unwrap();
    std::fs::write(run.join("trace.jsonl"), &trace[..trace.len() / 3]).unwrap();
    let e = err_text(&resume());
    assert!(e.contains("whole lines, the checkpoint counts"), "{e}");
    assert!(run.join("summary.json").exists());
    let e = err_text(&support::run(tmp.path(), &["run", "--resume", "nowhere"]));
    assert!(
        e.contains("nowhere") && e.contains("no such run folder"),
        "{e}"
    );
}

#[test]
fn foreign_checkpoints_are_refused_naming_what_differs() {
    let tmp = tempfile::tempdir().unwrap();
    let run = short_run(tmp.path());
    let resume = |extra: &[&str]| {
        let mut a = vec!["run", "--resume", "run", "--no-plots"];
        a.extend_from_slice(extra);
        support::run(tmp.path(), &a)
    };
    let e = err_text(&resume(&["--set", "eta=0.5"]));
    assert!(
        e.contains("another configuration") && e.contains("hyperparameters.eta"),
        "{e}"
    );
    let e = err_text(&resume(&["--seed", "9"]));
    assert!(e.contains("`seed`"), "{e}");
    let e = err_text(&resume(&["--algorithm", "slip"]));
    assert!(e.contains("not `slip`"), "{e}");
    // The spec edited since: another hash.
    let spec = tmp.path().join("toy.bilevel");
    let text = std::fs::read_to_string(&spec).unwrap();
    std::fs::write(&spec, format!("{text}\n# edited\n")).unwrap();
    let e = err_text(&resume(&[]));
    assert!(e.contains("another spec"), "{e}");
    std::fs::write(&spec, &text).unwrap();
    // Another run's checkpoint copied in (another seed).
    ok(&support::run(
        tmp.path(),
        &[
            "run",
            "toy.bilevel",
            "--iterations",
            "600",
            "--seed",
            "5",
            "--no-plots",
            "--out",
            "other",
        ],
    ));
    std::fs::copy(
        tmp.path().join("other/checkpoint.bin"),
        run.join("checkpoint.bin"),
    )
    .unwrap();
    let e = err_text(&resume(&[]));
    assert!(e.contains("`seed`"), "{e}");
    // --out and --resume together are a usage error.
    let o = support::run(tmp.path(), &["run", "--resume", "run", "--out", "x"]);
    assert_eq!(o.status.code(), Some(2));
}
