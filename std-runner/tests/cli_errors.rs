//! Bad input of every kind, given to the real `bilevel` binary: a missing
//! file, a spec that does not check, bad data, a bad flag value, an output
//! folder that cannot be written. Each ends with a non-zero exit code (1, or
//! 2 for usage errors found by the argument parser) and a message that names
//! the culprit, never with a panic or a backtrace — even with
//! `RUST_BACKTRACE=1`, under which a panic would print one.
#![allow(missing_docs)]

use std::path::Path;
use std::process::Command;

/// Where the cases run: a copy of the toy spec (`toy.bilevel`), a copy of
/// the logistic-regression spec with its validation data
/// (`hpo.bilevel`, `data/logreg_val.csv`), a regular file in the way of any
/// folder (`afile`) and a finished short run (`done`).
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs");
    let d = dir.path();
    std::fs::copy(specs.join("toy_quadratic.bilevel"), d.join("toy.bilevel")).unwrap();
    std::fs::copy(specs.join("hpo_logreg.bilevel"), d.join("hpo.bilevel")).unwrap();
    std::fs::create_dir(d.join("data")).unwrap();
    std::fs::copy(
        specs.join("data/logreg_val.csv"),
        d.join("data/logreg_val.csv"),
    )
    .unwrap();
    std::fs::write(d.join("afile"), "not a folder\n").unwrap();
    std::fs::write(
        d.join("bad.bilevel"),
        "bilevel \"bad\" version 1\nupper { var x: vector[2] init zeros\n",
    )
    .unwrap();
    dir
}

/// Writes the training data of `hpo.bilevel`: the real file with its third
/// data row replaced by `row`.
fn train_data_with(dir: &Path, row: &str) {
    let specs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs");
    let real = std::fs::read_to_string(specs.join("data/logreg_train.csv")).unwrap();
    let mut lines: Vec<&str> = real.lines().collect();
    lines[3] = row;
    std::fs::write(dir.join("data/logreg_train.csv"), lines.join("\n") + "\n").unwrap();
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn bilevel(dir: &Path, args: &[&str]) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_bilevel"))
        .current_dir(dir)
        .args(args)
        .env("RUST_BACKTRACE", "1")
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

/// Runs `args` in `dir` and checks: exit code `code`, every one of `needles`
/// in the message (stderr, or stdout for `check`'s diagnostics), no panic, no
/// backtrace.
fn fails(dir: &Path, args: &[&str], code: i32, needles: &[&str]) -> Outcome {
    let o = bilevel(dir, args);
    let shown = format!(
        "bilevel {}\n--- stdout\n{}--- stderr\n{}",
        args.join(" "),
        o.stdout,
        o.stderr
    );
    assert_eq!(o.code, Some(code), "{shown}");
    let msg = format!("{}{}", o.stdout, o.stderr);
    for n in needles {
        assert!(msg.contains(n), "`{n}` missing in:\n{shown}");
    }
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE", "src/", ".rs:"] {
        assert!(!o.stderr.contains(bad), "`{bad}` in stderr:\n{shown}");
    }
    // `check` prints diagnostics on stdout (they are its output); every
    // other failure speaks on stderr.
    let channel = if args[0] == "check" { &msg } else { &o.stderr };
    assert!(!channel.trim().is_empty(), "no message:\n{shown}");
    o
}

#[test]
fn missing_files() {
    let w = workspace();
    let d = w.path();
    for cmd in [
        &["check", "nope.bilevel"][..],
        &["run", "nope.bilevel"],
        &["compare", "nope.bilevel", "--algorithms", "slip"],
    ] {
        fails(d, cmd, 1, &["cannot read nope.bilevel", "No such file"]);
    }
    // `check` of several files stops at the missing one, naming it.
    fails(
        d,
        &["check", "toy.bilevel", "nope.bilevel"],
        1,
        &["nope.bilevel"],
    );
    fails(
        d,
        &["plot", "no-such-run"],
        1,
        &["no-such-run", "not a run folder"],
    );
    // The spec's data file is missing.
    let o = fails(
        d,
        &["run", "hpo.bilevel", "--out", "r"],
        1,
        &[
            "cannot read data file `data/logreg_train.csv`",
            "hpo.bilevel:",
        ],
    );
    assert!(o.stdout.is_empty(), "{}", o.stdout);
    assert!(!d.join("r").exists(), "no run folder for a spec that fails");
}

#[test]
fn specs_that_do_not_check() {
    let w = workspace();
    let d = w.path();
    // `check` prints the diagnostics on stdout and exits 1.
    let o = bilevel(d, &["check", "bad.bilevel"]);
    assert_eq!(o.code, Some(1), "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("error") && o.stdout.contains("bad.bilevel:"),
        "{}",
        o.stdout
    );
    assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    // `run` and `compare` print them on stderr.
    fails(d, &["run", "bad.bilevel"], 1, &["error", "bad.bilevel:"]);
    fails(
        d,
        &["compare", "bad.bilevel", "--algorithms", "slip,soba"],
        1,
        &["error", "bad.bilevel:"],
    );
    // Not a spec at all.
    fails(d, &["run", "afile"], 1, &["afile"]);
    // A folder given as a spec.
    fails(d, &["check", "data"], 1, &["cannot read data"]);
}

#[test]
fn bad_data() {
    let w = workspace();
    let d = w.path();
    // A cell that is not a number: file, line and column are named.
    train_data_with(d, "0.1,0.2,abc,0.4,0.5,1,0.7");
    for cmd in [&["check", "hpo.bilevel"][..], &["run", "hpo.bilevel"]] {
        fails(
            d,
            cmd,
            1,
            &[
                "data/logreg_train.csv:4",
                "`f3`",
                "`abc` is not a finite number",
            ],
        );
    }
    // A row with a cell too few.
    train_data_with(d, "0.1,0.2,0.3,0.4,0.5,1");
    fails(
        d,
        &["run", "hpo.bilevel"],
        1,
        &["ragged row", "data/logreg_train.csv:4"],
    );
    // A trace that is not one, given to `plot`.
    std::fs::create_dir(d.join("broken")).unwrap();
    std::fs::write(d.join("broken/trace.jsonl"), "{\"iter\": 0}\n").unwrap();
    fails(
        d,
        &["plot", "broken", "--out", "p"],
        1,
        &["broken/trace.jsonl:1", "not a trace record"],
    );
}

#[test]
fn bad_flag_values() {
    let w = workspace();
    let d = w.path();
    // Found by the argument parser: usage errors, exit 2.
    let cases: &[(&[&str], i32, &[&str])] = &[
        (
            &["run", "toy.bilevel", "--seed", "abc"],
            2,
            &["invalid value 'abc' for '--seed"],
        ),
        (
            &["run", "toy.bilevel", "--iterations", "0"],
            2,
            &["invalid value '0' for '--iterations"],
        ),
        (
            &[
                "compare",
                "toy.bilevel",
                "--algorithms",
                "slip",
                "--seeds",
                "0",
            ],
            2,
            &["invalid value '0' for '--seeds"],
        ),
        (
            &[
                "compare",
                "toy.bilevel",
                "--algorithms",
                "slip",
                "--threads",
                "x",
            ],
            2,
            &["invalid value 'x' for '--threads"],
        ),
        (
            &["check", "--format", "yaml", "toy.bilevel"],
            2,
            &["invalid value 'yaml' for '--format", "text, json"],
        ),
        (
            &["run", "toy.bilevel", "--bogus"],
            2,
            &["unexpected argument '--bogus'"],
        ),
        (&["compare", "toy.bilevel"], 2, &["--algorithms"]),
        (&["completions", "tcsh"], 2, &["invalid value 'tcsh'"]),
    ];
    for (args, code, needles) in cases {
        fails(d, args, *code, needles);
    }
    assert!(!d.join("runs").exists());
}

#[test]
fn bad_algorithms_and_hyperparameters() {
    let w = workspace();
    let d = w.path();
    // Validated against the registry: exit 1.
    let cases: &[(&[&str], i32, &[&str])] = &[
        (
            &["run", "toy.bilevel", "--algorithm", "newton"],
            1,
            &["unknown algorithm `newton`", "available: bo-rep, slip"],
        ),
        // A finite-sum solver on a spec whose levels are expectations over
        // synthetic draws: refused with the reason, naming the level, before
        // any run starts.
        (
            &["run", "toy.bilevel", "--algorithm", "saba"],
            1,
            &[
                "saba needs each level to be a finite sum over a data table",
                "the upper level (f) averages over `zeta`, a synthetic source",
            ],
        ),
        (
            &["compare", "toy.bilevel", "--algorithms", "slip,saba"],
            1,
            &["saba needs each level to be a finite sum", "`zeta`"],
        ),
        (
            &["compare", "toy.bilevel", "--algorithms", "slip,newton"],
            1,
            &["unknown algorithm `newton`"],
        ),
        (
            &["run", "toy.bilevel", "--set", "period=0"],
            1,
            &["--set period=0", "`period`", ">= 1"],
        ),
        (
            &["run", "toy.bilevel", "--set", "eta=-1"],
            1,
            &["--set eta=-1", "expected > 0"],
        ),
        (
            &["run", "toy.bilevel", "--set", "eta=nan"],
            1,
            &["--set eta=nan", "`eta`"],
        ),
        (
            &["run", "toy.bilevel", "--set", "eta=fast"],
            1,
            &["--set eta=fast", "type real"],
        ),
        (
            &["run", "toy.bilevel", "--set", "eta"],
            1,
            &["--set `eta`: expected key=value"],
        ),
        (
            &["run", "toy.bilevel", "--set", "nope=1"],
            1,
            &["has no hyperparameter `nope`", "it accepts: eta"],
        ),
        (
            &[
                "compare",
                "toy.bilevel",
                "--algorithms",
                "slip",
                "--set",
                "period=2",
            ],
            1,
            &["`slip` has no hyperparameter `period`"],
        ),
    ];
    for (args, code, needles) in cases {
        fails(d, args, *code, needles);
    }
    // None of them started a run.
    assert!(!d.join("runs").exists());
}

#[test]
fn unwritable_output() {
    let w = workspace();
    let d = w.path();
    // A regular file where a folder must go. (Permission bits would not do:
    // tests may run as root, who may write anywhere.)
    fails(
        d,
        &[
            "run",
            "toy.bilevel",
            "--iterations",
            "5",
            "--out",
            "afile/run",
        ],
        1,
        &["cannot create the run folder afile/run", "Not a directory"],
    );
    fails(
        d,
        &["run", "toy.bilevel", "--iterations", "5", "--out", "afile"],
        1,
        &["--out afile: not a folder"],
    );
    fails(
        d,
        &[
            "compare",
            "toy.bilevel",
            "--algorithms",
            "slip",
            "--seeds",
            "1",
            "--iterations",
            "5",
            "--out",
            "afile/cmp",
        ],
        1,
        &["afile/cmp"],
    );
    // `plot` of a good run into a place that cannot hold a folder.
    let o = bilevel(
        d,
        &[
            "run",
            "toy.bilevel",
            "--iterations",
            "5",
            "--no-plots",
            "--out",
            "done",
        ],
    );
    assert!(d.join("done/summary.json").exists(), "{}", o.stderr);
    fails(
        d,
        &["plot", "done", "--out", "afile/plots"],
        1,
        &["cannot create afile/plots", "Not a directory"],
    );
    // The file in the way is left as it was.
    assert_eq!(
        std::fs::read_to_string(d.join("afile")).unwrap(),
        "not a folder\n"
    );
}

/// Runs `args` in `dir` with stdout and stderr going to pipes whose reading
/// ends are already closed (`bilevel … | head` after `head` quit): every
/// write fails with a broken pipe. Returns the exit code.
fn with_closed_pipes(dir: &Path, args: &[&str]) -> Option<i32> {
    let (r1, w1) = std::io::pipe().unwrap();
    let (r2, w2) = std::io::pipe().unwrap();
    drop((r1, r2));
    Command::new(env!("CARGO_BIN_EXE_bilevel"))
        .current_dir(dir)
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdout(w1)
        .stderr(w2)
        .status()
        .expect("start bilevel")
        .code()
}

#[test]
fn closed_output_pipes_are_not_a_panic() {
    let w = workspace();
    let d = w.path();
    // A panic would exit with 101.
    assert_eq!(with_closed_pipes(d, &["algorithms"]), Some(0));
    assert_eq!(with_closed_pipes(d, &["run", "nope.bilevel"]), Some(1));
    // Progress lines and the report are lost; the run folder is not (5
    // iterations violate the spec's `expect`: exit 3).
    assert_eq!(
        with_closed_pipes(
            d,
            &["run", "toy.bilevel", "--iterations", "5", "--out", "r"]
        ),
        Some(3)
    );
    assert!(d.join("r/summary.json").exists());
}
