//! benchopt's logistic-regression and data-cleaning specs through the real
//! `bilevel` binary: `check` certifies them, and a short `run` of each
//! writes a trace whose stationarity metrics converged and fell.

mod support;

use support::{finished, ok, run, specs, text, whole_lines};

const SPECS: [&str; 3] = [
    "benchopt_logreg_binary.bilevel",
    "benchopt_logreg_multinomial.bilevel",
    "benchopt_datacleaning.bilevel",
];

#[test]
fn check_certifies_the_benchopt_specs() {
    let dir = specs();
    let mut args = vec!["check", "--format", "json"];
    args.extend(SPECS);
    let o = run(&dir, &args);
    ok(&o);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let files = j.as_array().cloned().unwrap_or_else(|| vec![j.clone()]);
    assert_eq!(files.len(), SPECS.len(), "{}", text(&o));
    for f in &files {
        assert_eq!(f["ok"], true, "{f}");
        let verdict = f["summary"]["analysis"]["verdict"]
            .as_str()
            .or_else(|| f["analysis"]["verdict"].as_str())
            .unwrap_or_else(|| panic!("no verdict in {f}"));
        assert!(verdict.starts_with("strongly convex"), "{verdict}");
    }
}

#[test]
fn short_runs_log_converged_stationarity_metrics_that_fall() {
    for (name, algorithm, iters) in [
        ("benchopt_logreg_binary.bilevel", "bo-rep", "400"),
        ("benchopt_logreg_multinomial.bilevel", "soba", "400"),
        ("benchopt_datacleaning.bilevel", "bo-rep", "200"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        let spec = specs().join(name);
        let o = run(
            tmp.path(),
            &[
                "run",
                spec.to_str().unwrap(),
                "--algorithm",
                algorithm,
                "--iterations",
                iters,
                "--no-plots",
                "--out",
                out.to_str().unwrap(),
            ],
        );
        finished(&o);
        let recs = whole_lines(&out.join("trace.jsonl"));
        assert!(recs.len() >= 2, "{name}: {}", text(&o));
        for r in &recs {
            assert!(
                r.metrics["stationarity_converged"].to_bits() == 1.0f64.to_bits(),
                "{name}: {r:?}"
            );
            assert!(r.metrics["stationarity_calls"] > 0.0, "{name}");
        }
        let (first, last) = (&recs[0], recs.last().unwrap());
        assert!(
            last.metrics["grad_phi_sq"] < first.metrics["grad_phi_sq"],
            "{name}: grad_phi_sq {} -> {}",
            first.metrics["grad_phi_sq"],
            last.metrics["grad_phi_sq"]
        );
        assert!(last.metrics["inner_distance"].is_finite(), "{name}");
    }
}
