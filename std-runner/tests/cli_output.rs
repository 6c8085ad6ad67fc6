//! Issue 15 §4 and §5 on the real `bilevel` binary: nothing on the command
//! line or in a spec is accepted and then ignored, and what the command
//! prints and writes is honest (JSON output, the final x, data hashes,
//! plots that do not mix problems, examples in the help texts and README
//! that work).
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the runner sits in the workspace")
        .to_path_buf()
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    fn shown(&self, args: &[&str]) -> String {
        format!(
            "bilevel {}\n--- exit {:?}\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

fn bilevel(dir: &Path, args: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_bilevel"))
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("start bilevel");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs and asserts exit 0.
fn ok(dir: &Path, args: &[&str]) -> Outcome {
    let o = bilevel(dir, args);
    assert_eq!(o.code, Some(0), "{}", o.shown(args));
    o
}

/// Runs a short run, which finishes but may violate the spec's `expect`
/// block (exit 3 then): asserts that it wrote its folder.
fn ran(dir: &Path, args: &[&str]) -> Outcome {
    let o = bilevel(dir, args);
    assert!(
        matches!(o.code, Some(0 | 3)) && o.stdout.contains("run folder: "),
        "{}",
        o.shown(args)
    );
    o
}

/// Runs a short comparison, whose runs finish but may violate the spec's
/// `expect` block (exit 3 then).
fn compared(dir: &Path, args: &[&str]) -> Outcome {
    let o = bilevel(dir, args);
    assert!(matches!(o.code, Some(0 | 3)), "{}", o.shown(args));
    assert!(!o.stderr.contains("panicked"), "{}", o.shown(args));
    o
}

/// Runs and asserts exit 1 with every needle in the message, no panic.
fn refused(dir: &Path, args: &[&str], needles: &[&str]) -> Outcome {
    let o = bilevel(dir, args);
    let shown = o.shown(args);
    assert_eq!(o.code, Some(1), "{shown}");
    let msg = format!("{}{}", o.stdout, o.stderr);
    for n in needles {
        assert!(msg.contains(n), "`{n}` missing:\n{shown}");
    }
    assert!(!o.stderr.contains("panicked"), "{shown}");
    o
}

/// A folder with the toy spec (`toy.bilevel`) and the logistic-regression
/// spec with its data (`hpo.bilevel`, `data/`).
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let specs = root().join("examples/specs");
    let d = dir.path();
    std::fs::copy(specs.join("toy_quadratic.bilevel"), d.join("toy.bilevel")).unwrap();
    std::fs::copy(specs.join("hpo_logreg.bilevel"), d.join("hpo.bilevel")).unwrap();
    std::fs::create_dir(d.join("data")).unwrap();
    for f in ["logreg_train.csv", "logreg_val.csv"] {
        std::fs::copy(specs.join("data").join(f), d.join("data").join(f)).unwrap();
    }
    dir
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn sha256(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn set_for_a_solver_not_run_or_given_twice_is_refused() {
    let w = workspace();
    let d = w.path();
    // The toy's own solver is bo-rep: a slip setting would do nothing.
    refused(
        d,
        &[
            "run",
            "toy.bilevel",
            "--set",
            "slip:eta=0.5",
            "--iterations",
            "5",
        ],
        &["--set slip:eta=0.5", "`slip` is not run here", "bo-rep"],
    );
    refused(
        d,
        &[
            "compare",
            "toy.bilevel",
            "--algorithms",
            "bo-rep,slip",
            "--set",
            "soba:eta=0.1",
            "--iterations",
            "5",
        ],
        &[
            "--set soba:eta=0.1",
            "`soba` is not run here",
            "bo-rep, slip",
        ],
    );
    for (a, b) in [("eta=0.1", "eta=0.2"), ("eta=0.1", "bo-rep:eta=0.1")] {
        refused(
            d,
            &[
                "run",
                "toy.bilevel",
                "--set",
                a,
                "--set",
                b,
                "--iterations",
                "5",
            ],
            &["both set `eta` of `bo-rep`", a, b],
        );
    }
    for v in ["inf", "-inf", "nan"] {
        let kv = format!("eta={v}");
        let o = refused(
            d,
            &["run", "toy.bilevel", "--set", &kv, "--iterations", "5"],
            &["must be a finite number"],
        );
        assert!(!o.stderr.contains("expected > 0"), "{}", o.stderr);
    }
    // None of them started a run.
    assert!(!d.join("runs").exists());
    // …but applies to a run of slip.
    ran(
        d,
        &[
            "run",
            "toy.bilevel",
            "--algorithm",
            "slip",
            "--set",
            "slip:eta=0.5",
            "--iterations",
            "5",
            "--out",
            "s",
            "--no-plots",
        ],
    );
    let config = json(&std::fs::read_to_string(d.join("s/config.json")).unwrap());
    assert_eq!(config["hyperparameters"]["eta"], 0.5);
}

#[test]
fn compare_no_plots_draws_nothing() {
    let w = workspace();
    let d = w.path();
    let args = [
        "compare",
        "toy.bilevel",
        "--algorithms",
        "bo-rep,slip",
        "--seeds",
        "1",
        "--iterations",
        "20",
        "--out",
        "c",
        "--no-plots",
    ];
    compared(d, &args);
    let mut found = Vec::new();
    let mut stack = vec![d.join("c")];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() {
                stack.push(e.clone());
            }
            let plot = e
                .extension()
                .is_some_and(|x| x.eq_ignore_ascii_case("png") || x.eq_ignore_ascii_case("svg"));
            if plot || e.file_name().is_some_and(|n| n == "plots") {
                found.push(e.display().to_string());
            }
        }
    }
    assert!(found.is_empty(), "{found:?}");
    assert!(d.join("c/table.md").exists());
}

/// A way to spoil the training table, and what the error must say.
type Case<'a> = (Box<dyn Fn() + 'a>, Vec<&'a str>);

#[test]
fn bad_tables_and_tolerances_are_refused_with_their_reason() {
    let w = workspace();
    let d = w.path();
    let train = d.join("data/logreg_train.csv");
    let real = std::fs::read_to_string(&train).unwrap();
    let cases: Vec<Case<'_>> = vec![
        (
            Box::new(|| {
                std::fs::write(&train, real.replacen("f3", "f1", 1)).unwrap();
            }),
            vec![
                "column `f1` appears twice",
                "columns 1 and 3",
                "hpo.bilevel:6",
            ],
        ),
        (
            Box::new(|| std::fs::write(&train, "").unwrap()),
            vec!["has no header line", "y, w, the feature columns"],
        ),
        (
            Box::new(|| std::fs::write(&train, "# only a comment\n").unwrap()),
            vec!["has no header line"],
        ),
        (
            Box::new(|| {
                std::fs::remove_file(&train).unwrap();
                std::fs::create_dir(&train).unwrap();
            }),
            vec!["is a directory, not a file"],
        ),
    ];
    for (make, needles) in cases {
        if train.is_dir() {
            std::fs::remove_dir(&train).unwrap();
        }
        make();
        refused(d, &["check", "hpo.bilevel"], &needles);
        refused(d, &["run", "hpo.bilevel", "--iterations", "5"], &needles);
    }
    std::fs::remove_dir(&train).unwrap();
    std::fs::write(&train, &real).unwrap();
    // A negative tolerance: refused by check and run, at its line.
    let toy = std::fs::read_to_string(d.join("toy.bilevel")).unwrap();
    let line = toy.lines().position(|l| l.contains("x ~=")).unwrap() + 1;
    std::fs::write(d.join("neg.bilevel"), toy.replacen("tol 5e-2", "tol -1", 1)).unwrap();
    let at = format!("neg.bilevel:{line}:");
    for cmd in [
        &["check", "neg.bilevel"][..],
        &["run", "neg.bilevel", "--iterations", "5"],
    ] {
        refused(d, cmd, &["E0407", "the tolerance of `x` is -1", &at]);
    }
    assert!(!d.join("runs").exists());
}

#[test]
fn run_log_threads_and_data_hashes_are_honoured() {
    let w = workspace();
    let d = w.path();
    // `run { log = "runs/hpo.jsonl" }`: the trace is copied there.
    let o = ran(
        d,
        &[
            "run",
            "hpo.bilevel",
            "--iterations",
            "30",
            "--out",
            "r",
            "--no-plots",
        ],
    );
    assert!(
        o.stdout.contains("trace copied to runs/hpo.jsonl"),
        "{}",
        o.stdout
    );
    assert_eq!(
        std::fs::read(d.join("runs/hpo.jsonl")).unwrap(),
        std::fs::read(d.join("r/trace.jsonl")).unwrap()
    );
    let config = json(&std::fs::read_to_string(d.join("r/config.json")).unwrap());
    assert_eq!(config["log"], "runs/hpo.jsonl");
    // Every data file's SHA-256, computed here independently.
    let hashes = config["data_sha256"].as_object().unwrap();
    assert_eq!(hashes.len(), 2, "{hashes:?}");
    for f in ["data/logreg_train.csv", "data/logreg_val.csv"] {
        assert_eq!(hashes[f], sha256(&d.join(f)), "{f}");
    }
    // `run { threads = 3 }` sizes the pool; --threads wins over it; the
    // results do not depend on it.
    let spec = std::fs::read_to_string(d.join("toy.bilevel")).unwrap();
    std::fs::write(
        d.join("t3.bilevel"),
        spec.replace("eval_every = 500,", "eval_every = 50, threads = 3,"),
    )
    .unwrap();
    let strip = |dir: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("trace.jsonl"))
            .unwrap()
            .lines()
            .map(|l| {
                let mut v = json(l);
                v["wall_s"] = serde_json::Value::Null;
                v
            })
            .collect()
    };
    for (args, want) in [
        (&["--out", "a"][..], 3),
        (&["--out", "b", "--threads", "1"], 1),
        (&["--out", "c", "--threads", "2"], 2),
    ] {
        let mut all = vec!["run", "t3.bilevel", "--iterations", "300", "--no-plots"];
        all.extend_from_slice(args);
        bilevel(d, &all);
        let config = json(&std::fs::read_to_string(d.join(args[1]).join("config.json")).unwrap());
        assert_eq!(config["threads"], want, "{args:?}");
    }
    assert_eq!(strip(&d.join("a")), strip(&d.join("b")));
    assert_eq!(strip(&d.join("a")), strip(&d.join("c")));
    // In a comparison each job's trace gets its own log file.
    compared(
        d,
        &[
            "compare",
            "hpo.bilevel",
            "--algorithms",
            "slip,soba",
            "--seeds",
            "2",
            "--iterations",
            "10",
            "--out",
            "cmp",
            "--no-plots",
        ],
    );
    for job in ["slip-s7", "slip-s8", "soba-s7", "soba-s8"] {
        assert_eq!(
            std::fs::read(d.join(format!("runs/hpo-{job}.jsonl"))).unwrap(),
            std::fs::read(d.join("cmp").join(job).join("trace.jsonl")).unwrap(),
            "{job}"
        );
    }
}

#[test]
fn json_output_of_run_and_compare() {
    let w = workspace();
    let d = w.path();
    let o = ok(
        d,
        &[
            "run",
            "toy.bilevel",
            "--algorithm",
            "slip",
            "--set",
            "eta=0.02",
            "--set",
            "eta_decay=0.5",
            "--seed",
            "3",
            "--out",
            "r",
            "--format",
            "json",
            "--no-plots",
        ],
    );
    let v = json(&o.stdout);
    let summary = json(&std::fs::read_to_string(d.join("r/summary.json")).unwrap());
    assert_eq!(v["solver"], "slip");
    assert_eq!(v["x"], summary["x"]);
    assert_eq!(v["iters"], summary["iters"]);
    assert_eq!(v["expectations_hold"], true);
    assert_eq!(v["run_folder"], "r");
    // The distance reported is the largest entry-wise gap, recomputed here.
    for e in v["expectations"].as_array().unwrap() {
        let (want, got) = (
            e["expected"].as_array().unwrap(),
            e["actual"].as_array().unwrap(),
        );
        let gap = want
            .iter()
            .zip(got)
            .map(|(a, b)| (a.as_f64().unwrap() - b.as_f64().unwrap()).abs())
            .fold(0.0, f64::max);
        assert!((e["max_abs_diff"].as_f64().unwrap() - gap).abs() <= 1e-15 * (1.0 + gap));
    }
    let o = compared(
        d,
        &[
            "compare",
            "toy.bilevel",
            "--algorithms",
            "bo-rep,slip",
            "--seeds",
            "2",
            "--iterations",
            "50",
            "--out",
            "c",
            "--format",
            "json",
            "--no-plots",
        ],
    );
    let v = json(&o.stdout);
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0]["solver"].clone(), rows[0]["runs"].clone()),
        ("bo-rep".into(), 2.into())
    );
    assert!(rows[1]["metrics"]["upper_loss"]["mean"].is_number());
    assert_eq!(v["failures"], serde_json::json!([]));
}

#[test]
fn json_output_of_algorithms_and_check() {
    let w = workspace();
    let d = w.path();
    // `algorithms NAME --format json`, and every solver without a name.
    let one = json(&ok(d, &["algorithms", "SLIP", "--format", "json"]).stdout);
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["name"], "slip");
    let all = json(&ok(d, &["algorithms", "--format", "json"]).stdout);
    assert_eq!(
        all.as_array().unwrap().len(),
        bilevel_core::registry::SOLVERS.len()
    );
    let text = ok(d, &["algorithms", "bo_rep"]).stdout;
    assert!(
        text.starts_with("bo-rep (BO-REP)") && !text.contains("\nslip"),
        "{text}"
    );
    refused(
        d,
        &["algorithms", "newton"],
        &["unknown algorithm `newton`", "available:"],
    );
    // `check --format json` with a missing file still reports the others.
    let o = bilevel(
        d,
        &[
            "check",
            "--format",
            "json",
            "toy.bilevel",
            "nope.bilevel",
            "hpo.bilevel",
        ],
    );
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    let v = json(&o.stdout);
    let files: Vec<(&str, bool)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["file"].as_str().unwrap(), f["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        files,
        [
            ("toy.bilevel", true),
            ("nope.bilevel", false),
            ("hpo.bilevel", true)
        ]
    );
    assert!(v[1]["error"]
        .as_str()
        .unwrap()
        .contains("cannot read nope.bilevel"));
}

#[test]
fn final_x_of_small_problems_is_printed_with_its_distance() {
    let w = workspace();
    let d = w.path();
    let o = bilevel(
        d,
        &[
            "run",
            "toy.bilevel",
            "--iterations",
            "200",
            "--out",
            "r",
            "--no-plots",
        ],
    );
    let summary = json(&std::fs::read_to_string(d.join("r/summary.json")).unwrap());
    let x: Vec<f64> = summary["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let line = o
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("final x = "))
        .unwrap_or_else(|| panic!("{}", o.stdout));
    let shown: Vec<f64> = line
        .split_once('[')
        .unwrap()
        .1
        .trim_end_matches(']')
        .split(", ")
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(shown.len(), x.len());
    for (a, b) in shown.iter().zip(&x) {
        assert!((a - b).abs() <= 1e-6 * b.abs(), "{a} {b}");
    }
    let expect_x = o.stdout.lines().find(|l| l.contains("expect x:")).unwrap();
    let want = [0.776_841, -1.429_095];
    let gap = want
        .iter()
        .zip(&x)
        .map(|(w, v)| (w - v).abs())
        .fold(0.0, f64::max);
    assert!(
        expect_x.contains(&format!("max |got - expected| = {gap:.3e}")),
        "{expect_x}"
    );
    // A problem with 100 upper entries does not print its x.
    std::fs::copy(
        root().join("examples/specs/quadratic_d100.bilevel"),
        d.join("q.bilevel"),
    )
    .unwrap();
    let o = bilevel(
        d,
        &[
            "run",
            "q.bilevel",
            "--iterations",
            "3",
            "--out",
            "q",
            "--no-plots",
        ],
    );
    assert!(o.stdout.contains("run folder: q"), "{}", o.shown(&[]));
    assert!(!o.stdout.contains("final x"), "{}", o.stdout);
}

#[test]
fn plot_keeps_problems_apart() {
    let w = workspace();
    let d = w.path();
    for (spec, out) in [("toy.bilevel", "t1"), ("hpo.bilevel", "h1")] {
        ran(
            d,
            &[
                "run",
                spec,
                "--algorithm",
                "bo-rep",
                "--iterations",
                "20",
                "--out",
                out,
                "--no-plots",
            ],
        );
    }
    ran(
        d,
        &[
            "run",
            "toy.bilevel",
            "--iterations",
            "20",
            "--seed",
            "5",
            "--out",
            "t2",
            "--no-plots",
        ],
    );
    let o = ok(d, &["plot", "t1", "h1", "t2", "--out", "p"]);
    assert!(
        o.stdout.contains("| bo-rep @ toy_quadratic | 2 |"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("| bo-rep @ hpo_logistic_l2 | 1 |"),
        "{}",
        o.stdout
    );
    let svg = std::fs::read_to_string(d.join("p/upper_loss_vs_iters.svg")).unwrap();
    assert!(svg.contains("bo-rep @ toy_quadratic (2 seeds)"), "legend");
    // One problem: plain names.
    let o = ok(d, &["plot", "t1", "t2", "--out", "p1"]);
    assert!(o.stdout.contains("| bo-rep | 2 |"), "{}", o.stdout);
    // Another setting of the same solver is its own row, named by it.
    ran(
        d,
        &[
            "run",
            "toy.bilevel",
            "--set",
            "eta=0.02",
            "--iterations",
            "20",
            "--out",
            "t3",
            "--no-plots",
        ],
    );
    let o = ok(d, &["plot", "t1", "t3", "--out", "p2"]);
    assert!(
        o.stdout.contains("| bo-rep [eta=0.01] | 1 |"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("| bo-rep [eta=0.02] | 1 |"),
        "{}",
        o.stdout
    );
    refused(
        d,
        &["plot", "t1", "./t1", "--out", "p3"],
        &["the same run folder"],
    );
}

/// Every `bilevel …` example of the help texts and of README's command
/// blocks, run in order in one folder that links to the repository's
/// `examples/` and `data/`: each exits 0, and every run it writes meets its
/// spec's `expect` block.
#[test]
fn examples_in_help_and_readme_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for link in ["examples", "data"] {
        std::os::unix::fs::symlink(root().join(link), d.join(link)).unwrap();
    }
    let help = |args: &[&str]| ok(d, args).stdout;
    let mut commands: Vec<String> = Vec::new();
    // `bilevel --help`: the lines of its "Examples:" section.
    let top = help(&["--help"]);
    let examples = top
        .split_once("Examples:\n")
        .expect("an Examples section")
        .1;
    commands.extend(
        examples
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.trim().to_string()),
    );
    // Each subcommand's `Example: `…``.
    for sub in [
        "check",
        "run",
        "compare",
        "algorithms",
        "plot",
        "completions",
    ] {
        let text = help(&[sub, "--help"]);
        let ex = text
            .split_once("Example: `")
            .and_then(|(_, r)| r.split_once('`'))
            .unwrap_or_else(|| panic!("`bilevel {sub} --help` has no example"))
            .0;
        commands.push(ex.to_string());
    }
    // README's command blocks: `bilevel …` lines without placeholders, and
    // `cargo run … -p bilevel-runner -- …`.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut in_block = false;
    let mut from_readme = 0;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_block = line.starts_with("```sh") || line.starts_with("```bash");
            continue;
        }
        let cmd = line.split(" #").next().unwrap_or("").trim();
        let cmd = match cmd.split_once("-p bilevel-runner -- ") {
            Some((_, rest)) if cmd.starts_with("cargo run") => format!("bilevel {rest}"),
            _ => cmd.to_string(),
        };
        let placeholder = cmd.split_whitespace().any(|w| {
            w.chars().any(|c| c.is_ascii_uppercase()) && !w.contains('/')
                || w.contains('…')
                || w.starts_with('[')
        });
        if in_block && cmd.starts_with("bilevel ") && !placeholder {
            commands.push(cmd);
            from_readme += 1;
        }
    }
    assert!(from_readme >= 3, "README examples found: {from_readme}");
    assert!(commands.len() >= 12, "{commands:?}");
    // A command shown twice (in the overview and in its subcommand's help)
    // runs once.
    let mut seen: Vec<&String> = Vec::new();
    for c in &commands {
        if seen.contains(&c) {
            continue;
        }
        seen.push(c);
        // A redirection is the shell's business: the command's output is
        // checked here instead.
        let c = c.split(" > ").next().unwrap();
        let words: Vec<String> = c
            .split_whitespace()
            .skip(1)
            .flat_map(|w| {
                if w.contains('*') {
                    glob(d, w)
                } else {
                    vec![w.to_string()]
                }
            })
            .collect();
        let args: Vec<&str> = words.iter().map(String::as_str).collect();
        let o = ok(d, &args);
        assert!(!o.stdout.contains("VIOLATED"), "{}", o.shown(&args));
    }
    // Every run folder written meets its expectations.
    let mut checked = 0;
    let mut stack = vec![d.join("runs")];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() {
                stack.push(e);
            } else if e.file_name().is_some_and(|n| n == "expect.json") {
                let v = json(&std::fs::read_to_string(&e).unwrap());
                for x in v.as_array().unwrap() {
                    assert_eq!(x["ok"], true, "{}: {x}", e.display());
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "{checked} runs checked");
}

/// `dir/*.ext` expanded, sorted (the README's `examples/specs/*.bilevel`).
fn glob(root: &Path, pattern: &str) -> Vec<String> {
    let (folder, file) = pattern.rsplit_once('/').unwrap_or((".", pattern));
    let (pre, post) = file.split_once('*').unwrap();
    let mut out: Vec<String> = std::fs::read_dir(root.join(folder))
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            (n.starts_with(pre) && n.ends_with(post)).then(|| format!("{folder}/{n}"))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "{pattern} matches nothing");
    out
}
