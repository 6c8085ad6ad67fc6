//! `bilevel sweep FILE --out DIR --status`: done / running / failed /
//! missing per solver.

use std::fmt::Write as _;
use std::path::Path;

use std::fs::{File, TryLockError};

use super::exec::{run_dir, termination, Planned};

/// A task's state in the sweep folder (docs/sweeps.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Its run folder holds a finished run.
    Done,
    /// A process holds its lock.
    Running,
    /// Its last attempt failed.
    Failed,
    /// Not started, or interrupted (resumable).
    Missing,
}

impl State {
    /// Its name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            State::Done => "done",
            State::Running => "running",
            State::Failed => "failed",
            State::Missing => "missing",
        }
    }
}

/// The state of task `p` in `dir`.
pub fn state(dir: &Path, p: &Planned) -> State {
    if termination(&run_dir(dir, p)).is_some_and(|t| t != "interrupted") {
        return State::Done;
    }
    if held(&dir.join("locks").join(format!("{}.lock", p.plan.folder))) {
        return State::Running;
    }
    if dir
        .join("failed")
        .join(format!("{}.txt", p.plan.folder))
        .is_file()
    {
        return State::Failed;
    }
    State::Missing
}

/// The status table (text) or JSON of every task.
pub fn status(dir: &Path, planned: &[Planned], json: bool) -> String {
    let states: Vec<State> = planned.iter().map(|p| state(dir, p)).collect();
    let mut solvers: Vec<&str> = Vec::new();
    for p in planned {
        if !solvers.contains(&p.task.solver) {
            solvers.push(p.task.solver);
        }
    }
    let all = [State::Done, State::Running, State::Failed, State::Missing];
    let count = |s: Option<&str>, st: State| {
        planned
            .iter()
            .zip(&states)
            .filter(|(p, x)| **x == st && s.is_none_or(|s| p.task.solver == s))
            .count()
    };
    if json {
        let per: Vec<serde_json::Value> = solvers
            .iter()
            .map(|s| {
                let mut m = serde_json::Map::new();
                m.insert("solver".into(), serde_json::json!(s));
                for st in all {
                    m.insert(st.name().into(), serde_json::json!(count(Some(s), st)));
                }
                serde_json::Value::Object(m)
            })
            .collect();
        let tasks: Vec<serde_json::Value> = planned
            .iter()
            .zip(&states)
            .map(|(p, st)| {
                serde_json::json!({"id": p.task.id, "solver": p.task.solver, "folder": format!("runs/{}", p.plan.folder), "state": st.name()})
            })
            .collect();
        let v = serde_json::json!({"solvers": per, "tasks": tasks});
        return serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
    }
    let w = solvers.iter().map(|s| s.len()).max().unwrap_or(0).max(6);
    let mut t = format!(
        "{:w$}  {:>5} {:>8} {:>7} {:>8}\n",
        "solver", "done", "running", "failed", "missing"
    );
    let mut row = |name: &str, s: Option<&str>| {
        let _ = writeln!(
            t,
            "{name:w$}  {:>5} {:>8} {:>7} {:>8}",
            count(s, State::Done),
            count(s, State::Running),
            count(s, State::Failed),
            count(s, State::Missing)
        );
    };
    for s in &solvers {
        row(s, Some(s));
    }
    row("total", None);
    for (p, st) in planned.iter().zip(&states) {
        if *st == State::Failed {
            let msg =
                std::fs::read_to_string(dir.join("failed").join(format!("{}.txt", p.plan.folder)))
                    .unwrap_or_default();
            let _ = write!(t, "failed: {msg}");
        }
    }
    t
}

/// `true` when a process holds the lock file (probed with a shared lock,
/// released at once, the file left as it is).
fn held(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    matches!(f.try_lock_shared(), Err(TryLockError::WouldBlock))
}
