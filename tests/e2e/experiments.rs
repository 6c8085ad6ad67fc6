//! The papers' three experiments as specs (`examples/specs/rnn/`), in tiny
//! configurations: every algorithm of each figure runs a few iterations
//! through `bilevel compare`, the run folders hold finite traces with the
//! spec's metrics against epochs, and a seed reproduces its trace.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bilevel_runner::output::read_trace;
use bilevel_runner::session::ProgressMode;
use bilevel_runner::spec::{check_files, compare_spec, CompareConfig, RunConfig};

fn spec(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/specs/rnn")
        .join(name)
}

fn tiny(name: &str, out: &Path, algorithms: &[&str]) -> CompareConfig {
    CompareConfig {
        base: RunConfig {
            spec: spec(name),
            algorithm: None,
            set: Vec::new(),
            seed: Some(1),
            iterations: Some(2),
            epochs: None,
            out: Some(out.to_path_buf()),
            folder: bilevel_runner::runfolder::FolderMode::New,
            progress: ProgressMode::Quiet,
            plots: false,
            color: false,
            threads: None,
        },
        algorithms: algorithms.iter().map(|s| (*s).to_string()).collect(),
        seeds: Some(1),
        threads: Some(2),
        resume: None,
    }
}

const METRICS: [&str; 6] = [
    "upper_loss",
    "lower_loss",
    "train_loss",
    "train_accuracy",
    "test_loss",
    "test_accuracy",
];

fn check_runs(dir: &Path, algorithms: &[&str]) {
    for a in algorithms {
        let run = dir.join(format!("{a}-s1"));
        let trace = read_trace(&run.join("trace.jsonl")).unwrap_or_else(|e| panic!("{a}: {e}"));
        assert!(trace.len() >= 2, "{a}: {} trace lines", trace.len());
        let last = trace.last().unwrap();
        assert!(last.epoch > 0.0, "{a}: no epochs");
        assert_eq!(last.iter, 2, "{a}");
        for m in METRICS {
            let v = last.metrics.get(m).copied().unwrap_or(f64::NAN);
            assert!(v.is_finite(), "{a}: {m} = {v}");
        }
        for m in ["train_accuracy", "test_accuracy"] {
            assert!((0.0..=1.0).contains(&last.metrics[m]), "{a}: {m}");
        }
    }
}

#[test]
fn the_three_experiment_specs_check() {
    let files: Vec<PathBuf> = [
        "hyperclean.bilevel",
        "hyperclean_p01.bilevel",
        "hpo.bilevel",
        "hyperrep.bilevel",
        "hyperrep_maml.bilevel",
    ]
    .iter()
    .map(|f| spec(f))
    .collect();
    let (out, ok) = check_files(&files, false, false).unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("models    phi      rnn"), "{out}");
}

#[test]
fn data_hyper_cleaning_runs_every_algorithm_of_its_figure() {
    let dir = tempfile::tempdir().unwrap();
    let algos = [
        "bo-rep", "slip", "stocbio", "ttsa", "f2sa", "soba", "ma-soba",
    ];
    compare_spec(
        &tiny("hyperclean.bilevel", dir.path(), &algos),
        &Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    check_runs(dir.path(), &algos);
}

#[test]
fn hyperparameter_optimization_runs_every_algorithm_of_its_figure() {
    let dir = tempfile::tempdir().unwrap();
    let algos = [
        "bo-rep", "slip", "stocbio", "ttsa", "f2sa", "soba", "ma-soba",
    ];
    compare_spec(
        &tiny("hpo.bilevel", dir.path(), &algos),
        &Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    check_runs(dir.path(), &algos);
}

#[test]
fn hyper_representation_runs_every_algorithm_of_its_figure_and_reproduces() {
    let dir = tempfile::tempdir().unwrap();
    // ANIL and MAML draw tasks (one product class per sample); MAML needs
    // dx = dy, so it runs on its own formulation of the problem, named in
    // the same comparison as `maml@SPEC`.
    let algos = [
        "bo-rep", "slip", "anil", "stocbio", "ttsa", "f2sa", "soba", "ma-soba", "maml",
    ];
    let mut cfg = tiny("hyperrep.bilevel", dir.path(), &algos);
    let maml = format!("maml@{}", spec("hyperrep_maml.bilevel").display());
    *cfg.algorithms.last_mut().unwrap() = maml;
    // Two tasks of two adaptation steps keep the tiny run tiny.
    cfg.base.set = ["anil", "maml"]
        .iter()
        .flat_map(|a| [format!("{a}:meta_batch=2"), format!("{a}:inner_steps=2")])
        .collect();
    compare_spec(&cfg, &Arc::new(AtomicBool::new(false))).unwrap();
    check_runs(dir.path(), &algos);
    // MAML's run records its own spec.
    let config = std::fs::read_to_string(dir.path().join("maml-s1/config.json")).unwrap();
    assert!(config.contains("hyperrep_maml.bilevel"), "{config}");
    // Its rows join the others in the comparison's table, each labelled
    // with the problem (formulation) it ran on.
    let table = std::fs::read_to_string(dir.path().join("table.md")).unwrap();
    assert!(
        table.contains("| maml @ rnn_hyper_representation_maml |"),
        "{table}"
    );
    assert!(
        table.contains("| anil @ rnn_hyper_representation |"),
        "{table}"
    );
    // The same seed again: the same trace apart from wall time.
    let again = tempfile::tempdir().unwrap();
    compare_spec(
        &tiny("hyperrep.bilevel", again.path(), &["slip"]),
        &Arc::new(AtomicBool::new(false)),
    )
    .unwrap();
    let strip = |d: &Path| -> Vec<String> {
        read_trace(&d.join("slip-s1").join("trace.jsonl"))
            .unwrap()
            .into_iter()
            .map(|mut r| {
                r.wall_s = 0.0;
                serde_json::to_string(&r).unwrap()
            })
            .collect()
    };
    assert_eq!(strip(dir.path()), strip(again.path()));
}

#[test]
fn a_solver_listed_twice_is_refused_before_any_run() {
    let dir = tempfile::tempdir().unwrap();
    let toy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs/toy_quadratic.bilevel");
    let mut cfg = tiny("hpo.bilevel", dir.path(), &["slip"]);
    cfg.base.spec.clone_from(&toy);
    cfg.algorithms = vec!["slip".into(), format!("SLIP@{}", toy.display())];
    let err = compare_spec(&cfg, &Arc::new(AtomicBool::new(false))).unwrap_err();
    assert!(
        format!("{err:#}").contains("`slip` is listed twice"),
        "{err:#}"
    );
    assert!(!dir.path().join("slip-s1").exists());
}
