//! `bilevel sweep`: grids of solver × hyperparameter × seed from a sweep file
//! (docs/sweeps.md), one run folder per task named by the task's resolved
//! configuration, run on a local pool or as a Slurm job array. A finished
//! task is skipped, an interrupted one resumed from its checkpoint, and a
//! task is never run by two processes at once (a lock per task).

pub mod cli;
pub mod exec;
pub mod file;
pub mod slurm;
pub mod status;

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

pub use exec::{Outcome, Planned};
pub use file::{Sweep, SweepErrors, Task};
pub use slurm::SlurmOptions;

/// What `bilevel sweep` does.
#[derive(Debug, Clone)]
pub enum Mode {
    /// Run the tasks (all, or the ids given) on a pool of this many workers.
    Run {
        /// Task ids (`--task`); `None`: every task.
        ids: Option<Vec<usize>>,
        /// Workers.
        jobs: usize,
    },
    /// Print the status table (`json`: as JSON).
    Status {
        /// JSON instead of a table.
        json: bool,
    },
    /// Write (and submit) a Slurm job array.
    Slurm(SlurmOptions),
}

/// Parses `--task`: ids and ranges `A-B`, comma-separated, each below `n`.
pub fn parse_ids(spec: &str, n: usize) -> Result<Vec<usize>> {
    let mut out = Vec::new();
    for part in spec.split(',') {
        let part = part.trim();
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) else {
            bail!("--task {spec}: expected task ids such as 3, 0-5 or 1,4");
        };
        if a > b || b >= n {
            bail!(
                "--task {spec}: the sweep has tasks 0-{} ({n} tasks)",
                n.saturating_sub(1)
            );
        }
        for i in a..=b {
            if !out.contains(&i) {
                out.push(i);
            }
        }
    }
    Ok(out)
}

/// What a sweep command printed and its exit code.
#[derive(Debug)]
pub struct SweepResult {
    /// For stdout.
    pub text: String,
    /// The exit code ([`crate::exit`]): 1 when a task failed.
    pub code: u8,
}

/// `bilevel sweep FILE --out DIR` in `mode`; `task` is `--task`'s text.
pub fn command(file: &Path, dir: &Path, task: Option<&str>, mode: Mode) -> Result<SweepResult> {
    let sweep = file::load(file)?;
    let planned = exec::plan(&sweep)?;
    let n = planned.len();
    match mode {
        Mode::Status { json } => {
            if !dir.join("sweep.json").is_file() {
                bail!("--status: {} holds no sweep (no sweep.json)", dir.display());
            }
            Ok(SweepResult {
                text: status::status(dir, &planned, json),
                code: 0,
            })
        }
        Mode::Slurm(o) => {
            exec::prepare_dir(dir, &sweep, &planned, true)?;
            let text = slurm::submit(&sweep.path, dir, n, &o)?;
            Ok(SweepResult { text, code: 0 })
        }
        Mode::Run { ids, jobs } => {
            let ids = match (task, ids) {
                (Some(t), _) => parse_ids(t, n)?,
                (None, Some(ids)) => ids,
                (None, None) => (0..n).collect(),
            };
            exec::prepare_dir(dir, &sweep, &planned, task.is_none())?;
            let stop = crate::compare::interrupt_flag()?;
            let outcomes = exec::run_pool(dir, &planned, &ids, jobs, &stop);
            let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
            let ran = count(|o| matches!(o, Outcome::Ran { .. }));
            let failed = count(|o| matches!(o, Outcome::Failed(_)));
            // A signal that came after every task had ended interrupted
            // nothing: the tasks' outcomes decide (decision 103).
            let interrupted = count(|o| matches!(o, Outcome::Interrupted));
            let text = format!(
                "{} tasks: {ran} ran ({} resumed), {} done already, {} running elsewhere, {} interrupted, {failed} failed\nrun folders in {}\n",
                ids.len(),
                count(|o| matches!(o, Outcome::Ran { resumed: true, .. })),
                count(|o| matches!(o, Outcome::Done)),
                count(|o| matches!(o, Outcome::Busy)),
                interrupted,
                PathBuf::from(dir).join("runs").display()
            );
            let code = if interrupted > 0 {
                crate::signals::exit_code(
                    crate::signals::received().unwrap_or(crate::signals::SIGINT),
                )
            } else if failed > 0 {
                crate::exit::ERROR
            } else {
                0
            };
            Ok(SweepResult { text, code })
        }
    }
}
