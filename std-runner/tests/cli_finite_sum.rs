//! Finite-sum solvers (SABA) through the real `bilevel`: SABA converges on
//! the toy as a finite sum to the closed-form solution; specs whose levels
//! are not finite sums over a table are refused with the reason, naming the
//! level, by `run`, `compare` and `sweep`; SABA in a comparison and a sweep;
//! the same bits on 1 and 2 threads. SRBA converges there too, and the data
//! source's `sampler` orders the sample indices both draw (`sequential`
//! uses no randomness; `shuffle` and `replace` differ). SABA and SRBA in a
//! comparison are named and equal their own runs; a sweep of both stopped by
//! SIGTERM resumes to the uninterrupted sweep.
#![allow(missing_docs)]

use std::path::Path;

mod support;
use support::{ok, run, specs, strip, text};

/// The closed-form x* of the toy: (2120, −3900) / 2729.
const X_STAR: [f64; 2] = [2120.0 / 2729.0, -3900.0 / 2729.0];

/// A folder with the finite-sum toy and its data table.
fn finite_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::copy(
        specs().join("data/toy_noise.tsv"),
        dir.path().join("data/toy_noise.tsv"),
    )
    .unwrap();
    std::fs::copy(
        specs().join("toy_finite_sum.bilevel"),
        dir.path().join("toy.bilevel"),
    )
    .unwrap();
    dir
}

#[test]
fn saba_converges_on_the_finite_sum_toy_to_the_closed_form_solution() {
    let d = finite_dir();
    // The spec's budget (10,000 iterations) and `expect` (tol 1e-3 on x, y).
    let o = run(
        d.path(),
        &["run", "toy.bilevel", "--no-plots", "--out", "r"],
    );
    ok(&o);
    let s = support::summary(&d.path().join("r"));
    assert_eq!(s.solver, "saba");
    let err =
        s.x.iter()
            .zip(X_STAR)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
    assert!(err < 1e-3, "|x - x*| = {err:e}: {:?}", s.x);
    // The samples SABA took by index are counted: 2 per iteration, each a
    // window of 8 of the 48 rows (epochs = lower samples · 8/48).
    let t = support::whole_lines(&d.path().join("r/trace.jsonl"));
    let last = t.last().unwrap();
    assert_eq!(last.iter, 10_000);
    assert!(
        (last.epoch - 10_000.0 * 8.0 / 48.0).abs() < 1e-6,
        "{:?}",
        last.epoch
    );
    // So an epoch budget ends: 2 epochs = 2 · 48/8 lower samples.
    let o = run(
        d.path(),
        &[
            "run",
            "toy.bilevel",
            "--epochs",
            "2",
            "--no-plots",
            "--out",
            "e",
        ],
    );
    support::finished(&o);
    let s = support::summary(&d.path().join("e"));
    assert_eq!((s.termination.as_str(), s.iters), ("epoch_budget", 12));
}

/// max |x − x*| of the summary in `dir`.
fn x_error(dir: &Path) -> f64 {
    let s = support::summary(dir);
    s.x.iter()
        .zip(X_STAR)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
}

#[test]
fn srba_converges_on_the_finite_sum_toy_to_the_closed_form_solution() {
    let d = finite_dir();
    let o = run(
        d.path(),
        &[
            "run",
            "toy.bilevel",
            "--algorithm",
            "srba",
            "--no-plots",
            "--out",
            "r",
        ],
    );
    ok(&o);
    let s = support::summary(&d.path().join("r"));
    assert_eq!((s.solver.as_str(), s.iters), ("srba", 10_000));
    // Measured 3.3e-7 at the spec's 10,000 iterations (defaults ρ = 0.1).
    let err = x_error(&d.path().join("r"));
    assert!(err < 1e-5, "|x - x*| = {err:e}: {:?}", s.x);
}

/// The data source's `sampler` is not ignored by the finite-sum solvers: in
/// order (`sequential`) the run uses no randomness, so seeds 1 and 2 give
/// the same trace; reshuffled passes and uniform draws depend on the seed
/// and differ from each other; every order converges in the spec's 10,000
/// iterations (SABA at step 0.02:
/// at 0.1 it diverges on ordered passes, which is reported).
#[test]
fn the_sources_sampler_orders_the_finite_sum_sample_indices() {
    let d = finite_dir();
    let base = std::fs::read_to_string(d.path().join("toy.bilevel")).unwrap();
    assert_eq!(base.matches("sampler = replace").count(), 2);
    for sampler in ["shuffle", "sequential", "replace"] {
        let text = base.replace("sampler = replace", &format!("sampler = {sampler}"));
        std::fs::write(d.path().join(format!("{sampler}.bilevel")), text).unwrap();
    }
    let trace = |sampler: &str, algorithm: &str, seed: &str| {
        let out = format!("{sampler}-{algorithm}-{seed}");
        let spec = format!("{sampler}.bilevel");
        let o = run(
            d.path(),
            &[
                "run",
                &spec,
                "--algorithm",
                algorithm,
                "--set",
                "step_size=0.02",
                "--seed",
                seed,
                "--no-plots",
                "--out",
                &out,
            ],
        );
        ok(&o);
        let dir = d.path().join(&out);
        let err = x_error(&dir);
        // Measured at most 1.2e-5 (SRBA; SABA 4.7e-6 uniform, 3.3e-7 ordered).
        assert!(err < 1e-4, "{out}: |x - x*| = {err:e}");
        strip(&dir).0
    };
    for a in ["saba", "srba"] {
        assert!(
            trace("sequential", a, "1") == trace("sequential", a, "2"),
            "{a}"
        );
        let (s1, s2) = (trace("shuffle", a, "1"), trace("shuffle", a, "2"));
        let r1 = trace("replace", a, "1");
        assert!(
            s1 != s2 && s1 != r1 && r1 != trace("replace", a, "2"),
            "{a}"
        );
    }
    // SABA at its default step on reshuffled passes: a reported divergence.
    let o = run(
        d.path(),
        &["run", "shuffle.bilevel", "--no-plots", "--out", "diverged"],
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("divergence"), "{}", text(&o));
}

fn refused(dir: &Path, args: &[&str], needles: &[&str]) {
    let o = run(dir, args);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(!e.contains("panicked"), "{e}");
    for n in needles {
        assert!(e.contains(n), "{args:?}: no {n:?} in\n{e}");
    }
}

#[test]
fn specs_that_are_not_finite_sums_are_refused_naming_the_level() {
    let d = finite_dir();
    let src = std::fs::read_to_string(d.path().join("toy.bilevel")).unwrap();
    let variant = |name: &str, from: &str, to: &str| {
        assert!(src.contains(from), "{from}");
        std::fs::write(d.path().join(name), src.replace(from, to)).unwrap();
    };
    let lower = "mean over s in xi { 0.5 * quad(H, y) - dot(y, B @ x + s.x) }";
    let upper = "mean over s in zeta { 0.5 * norm2sq(y - c - s.x) }";
    variant("log.bilevel", upper, &format!("log(1.0 + {upper})"));
    variant(
        "sum.bilevel",
        lower,
        &lower.replace("mean over", "sum over"),
    );
    variant(
        "two.bilevel",
        lower,
        &format!("{lower} + mean over t in zeta {{ 0.0 * dot(y, t.x) }}"),
    );
    std::fs::copy(
        specs().join("toy_quadratic.bilevel"),
        d.path().join("synth.bilevel"),
    )
    .unwrap();
    let saba = ["--algorithm", "saba", "--no-plots"];
    let cases: &[(&str, &[&str])] = &[
        (
            "synth.bilevel",
            &["the upper level (f) averages over `zeta`, a synthetic source"],
        ),
        (
            "log.bilevel",
            &[
                "the upper level (f) applies `log`",
                "not an affine function of the mean",
            ],
        ),
        ("sum.bilevel", &["the lower level (g) is a `sum over` `xi`"]),
        (
            "two.bilevel",
            &["the lower level (g) averages over 2 data sources (`xi`, `zeta`)"],
        ),
    ];
    for (spec, needles) in cases {
        let mut args = vec!["run", spec];
        args.extend_from_slice(&saba);
        let mut all = vec!["saba needs each level to be a finite sum over a data table"];
        all.extend_from_slice(needles);
        refused(d.path(), &args, &all);
        // Other solvers still run them.
        let o = run(
            d.path(),
            &[
                "run",
                spec,
                "--algorithm",
                "soba",
                "--iterations",
                "20",
                "--no-plots",
            ],
        );
        support::finished(&o);
    }
    refused(
        d.path(),
        &[
            "compare",
            "synth.bilevel",
            "--algorithms",
            "soba,saba",
            "--no-plots",
        ],
        &["saba needs each level to be a finite sum", "`zeta`"],
    );
    std::fs::write(
        d.path().join("s.toml"),
        "specs = [\"synth.bilevel\"]\nseeds = [1]\n[budget]\niterations = 10\n[solvers.saba]\n",
    )
    .unwrap();
    refused(
        d.path(),
        &["sweep", "s.toml", "--out", "sw"],
        &["saba needs each level to be a finite sum", "`zeta`"],
    );
}

#[test]
fn saba_in_a_comparison_and_in_a_sweep_equals_its_own_run() {
    let d = finite_dir();
    let o = run(
        d.path(),
        &[
            "compare",
            "toy.bilevel",
            "--algorithms",
            "soba,saba",
            "--seeds",
            "2",
            "--iterations",
            "2000",
            "--no-plots",
            "--out",
            "cmp",
        ],
    );
    support::finished(&o);
    let table = std::fs::read_to_string(d.path().join("cmp/table.md")).unwrap();
    assert!(table.contains("saba") && table.contains("soba"), "{table}");
    std::fs::write(
        d.path().join("s.toml"),
        "specs = [\"toy.bilevel\"]\nseeds = [5]\n[budget]\niterations = 700\n[solvers.saba]\nstep_size = [0.05, 0.1]\n",
    )
    .unwrap();
    let o = run(d.path(), &["sweep", "s.toml", "--out", "sw", "--jobs", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    let runs: Vec<_> = std::fs::read_dir(d.path().join("sw/runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    // The sweep's task at step 0.05 equals the same run by hand.
    let o = run(
        d.path(),
        &[
            "run",
            "toy.bilevel",
            "--set",
            "step_size=0.05",
            "--seed",
            "5",
            "--iterations",
            "700",
            "--no-plots",
            "--out",
            "hand",
        ],
    );
    support::finished(&o);
    let hand = strip(&d.path().join("hand"));
    assert!(
        runs.iter().any(|r| strip(r) == hand),
        "no sweep task equals the run by hand"
    );
}

#[test]
fn saba_gives_the_same_bits_on_one_and_two_threads() {
    let d = finite_dir();
    for (t, out) in [("1", "t1"), ("2", "t2")] {
        let o = run(
            d.path(),
            &[
                "run",
                "toy.bilevel",
                "--iterations",
                "1500",
                "--threads",
                t,
                "--no-plots",
                "--out",
                out,
            ],
        );
        support::finished(&o);
    }
    assert!(strip(&d.path().join("t1")) == strip(&d.path().join("t2")));
    // And on the shuffled-minibatch spec with real data (hyper-cleaning).
    let hc = tempfile::tempdir().unwrap();
    std::fs::create_dir(hc.path().join("data")).unwrap();
    for f in ["clean_train.tsv", "clean_val.tsv"] {
        std::fs::copy(specs().join("data").join(f), hc.path().join("data").join(f)).unwrap();
    }
    let src = std::fs::read_to_string(specs().join("hyperclean.bilevel")).unwrap();
    // No `run { log }` copy outside the temporary folder.
    let src = src.replace(", log = \"runs/hyperclean.jsonl\"", "");
    std::fs::write(hc.path().join("hc.bilevel"), src).unwrap();
    for (t, out) in [("1", "t1"), ("2", "t2")] {
        let o = run(
            hc.path(),
            &[
                "run",
                "hc.bilevel",
                "--algorithm",
                "saba",
                "--iterations",
                "200",
                "--threads",
                t,
                "--no-plots",
                "--out",
                out,
            ],
        );
        support::finished(&o);
    }
    assert!(strip(&hc.path().join("t1")) == strip(&hc.path().join("t2")));
}

/// The comparison's run folders `SOLVER-sSEED` of `solver`.
fn compare_runs(cmp: &Path, solver: &str) -> Vec<(u64, std::path::PathBuf)> {
    let mut v: Vec<_> = std::fs::read_dir(cmp)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name()?.to_str()?.to_string();
            let seed = name.strip_prefix(&format!("{solver}-s"))?.parse().ok()?;
            Some((seed, p))
        })
        .collect();
    v.sort();
    v
}

/// SABA and SRBA through `compare`: the table and `--format json` name
/// both, each with its two seeds' runs, and each run folder is that
/// solver's own run (SRBA's equals `bilevel run --algorithm srba`, bits
/// apart from wall time).
#[test]
fn saba_and_srba_in_a_comparison_are_named_and_equal_their_own_runs() {
    let d = finite_dir();
    let o = run(
        d.path(),
        &[
            "compare",
            "toy.bilevel",
            "--algorithms",
            "saba,srba",
            "--seeds",
            "2",
            "--iterations",
            "1500",
            "--no-plots",
            "--format",
            "json",
            "--out",
            "cmp",
        ],
    );
    support::finished(&o);
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    let rows = v["rows"].as_array().unwrap();
    let named: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| (r["solver"].as_str().unwrap(), r["runs"].as_u64().unwrap()))
        .collect();
    assert_eq!(named, [("saba", 2), ("srba", 2)], "{v}");
    let table = std::fs::read_to_string(d.path().join("cmp/table.md")).unwrap();
    assert!(
        table.contains("| saba") && table.contains("| srba"),
        "{table}"
    );
    let cmp = d.path().join("cmp");
    for solver in ["saba", "srba"] {
        let runs = compare_runs(&cmp, solver);
        assert_eq!(runs.len(), 2, "{solver}: {runs:?}");
        for (seed, r) in &runs {
            let s = support::summary(r);
            assert_eq!((s.solver.as_str(), s.seed, s.iters), (solver, *seed, 1500));
        }
    }
    let (seed, srba) = &compare_runs(&cmp, "srba")[1];
    let seed = seed.to_string();
    let o = run(
        d.path(),
        &[
            "run",
            "toy.bilevel",
            "--algorithm",
            "srba",
            "--seed",
            &seed,
            "--iterations",
            "1500",
            "--no-plots",
            "--out",
            "hand",
        ],
    );
    support::finished(&o);
    assert!(strip(srba) == strip(&d.path().join("hand")));
}

/// A sweep of SABA and SRBA stopped by SIGTERM in a task, then run again
/// with the same command, ends with the summaries and traces of the sweep
/// that was never stopped.
#[cfg(unix)]
#[test]
fn a_sweep_of_saba_and_srba_stopped_by_sigterm_resumes_to_the_uninterrupted_one() {
    let d = finite_dir();
    std::fs::write(
        d.path().join("s.toml"),
        "specs = [\"toy.bilevel\"]\nseeds = [3]\n[budget]\niterations = 30000\n\
         [solvers.saba]\nstep_size = [0.1]\n[solvers.srba]\nstep_size = [0.1]\n",
    )
    .unwrap();
    let o = run(
        d.path(),
        &["sweep", "s.toml", "--out", "whole", "--jobs", "1"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let mut child = support::spawn_logged(
        d.path(),
        &["sweep", "s.toml", "--out", "cut", "--jobs", "1"],
        "err.txt",
        &[],
    );
    // Stopped once the first task has a checkpoint (it is under way).
    let runs = d.path().join("cut/runs");
    support::wait_for("a task's checkpoint", || {
        std::fs::read_dir(&runs)
            .is_ok_and(|mut r| r.any(|e| e.is_ok_and(|e| e.path().join("checkpoint.bin").exists())))
    });
    support::kill(&child, "-TERM");
    let st = support::wait_exit(&mut child);
    assert_eq!(
        st.code(),
        Some(143),
        "{}",
        support::read(&d.path().join("err.txt"))
    );
    let o = run(
        d.path(),
        &["sweep", "s.toml", "--out", "cut", "--jobs", "1"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let folders = |root: &str| {
        let mut v: Vec<String> = std::fs::read_dir(d.path().join(root).join("runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let names = folders("whole");
    assert_eq!(names, folders("cut"));
    assert_eq!(names.len(), 2, "{names:?}");
    for solver in ["saba", "srba"] {
        assert!(names.iter().any(|n| n.contains(solver)), "{names:?}");
    }
    for n in &names {
        let (a, b) = (
            d.path().join("whole/runs").join(n),
            d.path().join("cut/runs").join(n),
        );
        assert!(strip(&a) == strip(&b), "{n}");
    }
}
