//! Helpers of the sweep tests: writing sweep files, running `bilevel
//! sweep`, and reading every task's summary without its wall time.
#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The toy spec without `run { log }`, copied into `dir`.
pub fn toy_spec(dir: &Path) -> PathBuf {
    let p = dir.join("toy.bilevel");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sweeps/toy_sweep.bilevel"),
        &p,
    )
    .expect("copy the toy spec");
    p
}

/// A sweep file in `dir` over the toy spec with `body` after `specs`.
pub fn sweep_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    toy_spec(dir);
    let p = dir.join(name);
    std::fs::write(&p, format!("specs = [\"toy.bilevel\"]\n{body}")).unwrap();
    p
}

/// Two solvers with different keys (SLIP's `eta`, `eta_decay`; SOBA's
/// `step_size`), 2 seeds: 2·2·2 + 2·2 = 12 tasks.
pub const TWELVE: &str = "seeds = [3, 4]
[budget]
iterations = ITERS
[grid]
eta = [0.01, 0.03]
[solvers.slip]
eta_decay = [0.5, 1.0]
[solvers.soba]
step_size = { log = [1e-2, 1e-1], points = 2 }
";

pub fn bilevel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bilevel"))
        .args(args)
        .output()
        .expect("run bilevel")
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every task folder's `summary.json` without `wall_s`, by folder name.
pub fn summaries(dir: &Path) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir.join("runs")).expect("runs/") {
        let e = e.unwrap();
        let Ok(b) = std::fs::read(e.path().join("summary.json")) else {
            continue;
        };
        let mut v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        v.as_object_mut().unwrap().remove("wall_s");
        out.insert(e.file_name().to_string_lossy().into_owned(), v);
    }
    out
}

/// The folders listed in `sweep.json`, in task order.
pub fn manifest_folders(dir: &Path) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("sweep.json")).unwrap()).unwrap();
    v["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t["folder"]
                .as_str()
                .unwrap()
                .trim_start_matches("runs/")
                .to_string()
        })
        .collect()
}

/// The trace of a run folder without wall-time fields.
pub fn trace(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("trace.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            if let Some(m) = v.as_object_mut() {
                m.retain(|k, _| !k.contains("wall"));
            }
            v
        })
        .collect()
}
