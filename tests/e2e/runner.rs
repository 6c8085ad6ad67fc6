//! The runner on the example specs: `run` meets the toy's `expect` block,
//! results are reproducible, and bad input is an error that says what is
//! wrong.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bilevel_runner::output::read_trace;
use bilevel_runner::session::ProgressMode;
use bilevel_runner::spec::{check_files, compare_spec, run_spec, CompareConfig, RunConfig};

fn spec(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/specs")
        .join(name)
}

fn cfg(out: &Path) -> RunConfig {
    RunConfig {
        spec: spec("toy_quadratic.bilevel"),
        algorithm: None,
        set: Vec::new(),
        seed: None,
        iterations: None,
        epochs: None,
        out: Some(out.to_path_buf()),
        folder: bilevel_runner::runfolder::FolderMode::New,
        progress: ProgressMode::Quiet,
        plots: false,
        color: false,
        threads: None,
    }
}

fn no_stop() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

#[test]
fn toy_spec_meets_its_expect_block_with_its_own_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_spec(&cfg(dir.path()), no_stop()).unwrap();
    assert_eq!(o.summary.solver, "bo-rep");
    assert_eq!(o.summary.termination, "max_iters");
    assert_eq!(o.expectations.len(), 4);
    assert!(o.expectations_hold(), "{:?}", o.expectations);
    for f in ["config.json", "trace.jsonl", "summary.json", "expect.json"] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["seed"], 42);
    assert_eq!(config["hyperparameters"]["eta_decay_steps"], 100.0);
    assert_eq!(config["spec_sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn another_solver_and_overrides_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.algorithm = Some("slip".into());
    c.set = vec![
        "eta=0.01".into(),
        "eta_decay=1".into(),
        "eta_decay_steps=100".into(),
        "gamma=0.3".into(),
        "nu=0.3".into(),
    ];
    let o = run_spec(&c, no_stop()).unwrap();
    assert_eq!(o.summary.solver, "slip");
    assert!(o.expectations_hold(), "{:?}", o.expectations);
}

#[test]
fn same_seed_same_trace_apart_from_wall_time() {
    let strip = |d: &Path| -> Vec<String> {
        read_trace(&d.join("trace.jsonl"))
            .unwrap()
            .into_iter()
            .map(|mut r| {
                r.wall_s = 0.0;
                serde_json::to_string(&r).unwrap()
            })
            .collect()
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for d in [&a, &b] {
        let mut c = cfg(d.path());
        c.iterations = Some(1500);
        run_spec(&c, no_stop()).unwrap();
    }
    assert_eq!(strip(a.path()), strip(b.path()));
}

#[test]
fn compare_runs_every_algorithm_and_seed() {
    let dir = tempfile::tempdir().unwrap();
    let mut base = cfg(dir.path());
    base.iterations = Some(600);
    // The overlay plots are drawn only when asked for (`--no-plots` draws
    // nothing).
    base.plots = true;
    let c = CompareConfig {
        base,
        algorithms: vec!["bo-rep".into(), "slip".into(), "ma-soba".into()],
        seeds: Some(2),
        threads: Some(2),
        resume: None,
    };
    let o = compare_spec(&c, &no_stop()).unwrap();
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    assert!(
        o.table.contains("| bo-rep | 2 |") && o.table.contains("| ma-soba | 2 |"),
        "{}",
        o.table
    );
    assert!(dir.path().join("table.csv").exists());
    assert!(dir
        .path()
        .join("plots")
        .join("upper_loss_vs_calls.svg")
        .exists());
    assert!(dir.path().join("slip-s43").join("summary.json").exists());
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.spec = dir.path().join("missing.bilevel");
    let e = format!("{:#}", run_spec(&c, no_stop()).unwrap_err());
    assert!(
        e.contains("cannot read") && e.contains("missing.bilevel"),
        "{e}"
    );

    let mut c = cfg(dir.path());
    c.set = vec!["period=0".into()];
    let e = format!("{:#}", run_spec(&c, no_stop()).unwrap_err());
    assert!(e.contains("period") && e.contains(">= 1"), "{e}");

    let mut c = cfg(dir.path());
    c.algorithm = Some("newton".into());
    let e = format!("{:#}", run_spec(&c, no_stop()).unwrap_err());
    assert!(e.contains("unknown algorithm `newton`"), "{e}");

    let bad = dir.path().join("bad.bilevel");
    std::fs::write(
        &bad,
        "bilevel \"x\" version 1\nupper { var x: vector[2] init zeros\n",
    )
    .unwrap();
    let mut c = cfg(dir.path());
    c.spec = bad.clone();
    let e = run_spec(&c, no_stop()).unwrap_err().to_string();
    assert!(e.contains("bad.bilevel:"), "{e}");
    let (text, ok) = check_files(&[bad], false, false).unwrap();
    assert!(!ok && text.contains("error"), "{text}");

    let (text, ok) = check_files(&[spec("toy_quadratic.bilevel")], true, false).unwrap();
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v[0]["ok"], true);
}

#[test]
fn epochs_on_the_command_line_replace_the_specs_iteration_budget() {
    // hpo_logreg.bilevel has `iterations = 2000`; `--epochs 2` replaces it.
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.spec = spec("hpo_logreg.bilevel");
    c.epochs = Some(2);
    let o = run_spec(&c, no_stop()).unwrap();
    assert_eq!(o.summary.termination, "epoch_budget");
    assert!(o.summary.iters < 2000, "{} iterations", o.summary.iters);
    let trace = read_trace(&dir.path().join("trace.jsonl")).unwrap();
    let last = trace.last().unwrap();
    assert_eq!(last.iter, o.summary.iters);
    assert!(
        (2.0..2.5).contains(&last.epoch),
        "stopped at epoch {}",
        last.epoch
    );
    // Both given: whichever comes first.
    let dir2 = tempfile::tempdir().unwrap();
    let mut c2 = cfg(dir2.path());
    c2.spec = spec("hpo_logreg.bilevel");
    c2.epochs = Some(2);
    c2.iterations = Some(3);
    let o2 = run_spec(&c2, no_stop()).unwrap();
    assert_eq!(o2.summary.iters, 3);
    assert_eq!(o2.summary.termination, "max_iters");
}
