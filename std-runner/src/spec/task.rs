//! One task of a sweep (`bilevel sweep`): a run of a spec with a solver,
//! settings, a seed and budgets, into a run folder named as `bilevel run`
//! names its default folders. Specs are loaded once per sweep.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use super::{
    checkpoint, config_hash, execute, load, pool_size, resolve_loaded, resolved_config, watch_for,
    Loaded, Plan, Resolved, RunConfig, RunOutcome,
};
use crate::runfolder::{self, FolderKind, FolderMode};

/// A sweep task: the settings of `bilevel run` plus an oracle-call budget
/// that replaces the spec's.
#[derive(Debug, Clone)]
pub struct TaskConfig {
    /// The run's settings (spec, solver, `--set`, seed, iterations, epochs).
    pub run: RunConfig,
    /// Gradient and product calls; `None`: the spec's `oracle_calls`.
    pub oracle_calls: Option<u64>,
}

/// What a task resolves to before it runs.
#[derive(Debug, Clone)]
pub struct TaskPlan {
    /// The run folder's name: `PROBLEM-SOLVER-sSEED-HASH`, as `bilevel run`.
    pub folder: String,
    /// The resolved configuration (`config.json` without `threads`).
    pub config: serde_json::Value,
}

/// Specs loaded (read, checked, compiled) once for many tasks.
#[derive(Default)]
pub struct SpecCache {
    loaded: Vec<Loaded>,
}

impl SpecCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&mut self, cfg: &RunConfig) -> Result<Loaded> {
        if let Some(l) = self.loaded.iter().find(|l| l.spec == cfg.spec) {
            return Ok(l.clone());
        }
        let l = load(cfg)?;
        self.loaded.push(l.clone());
        Ok(l)
    }

    /// Resolves `t` (every check of `bilevel run` before it starts): its
    /// folder name and resolved configuration.
    pub fn plan(&mut self, t: &TaskConfig) -> Result<TaskPlan> {
        let l = self.get(&t.run)?;
        let r = resolve_task(l, t)?;
        let mut config = serde_json::to_value(resolved_config(&r))?;
        if let Some(m) = config.as_object_mut() {
            m.remove("threads");
        }
        Ok(TaskPlan {
            folder: folder_name(&r)?,
            config,
        })
    }
}

/// The default run-folder name of `bilevel run` for `r`.
fn folder_name(r: &Resolved) -> Result<String> {
    Ok(format!(
        "{}-{}-s{}-{}",
        bilevel_dsl::path_safe_name(&r.name),
        r.info.name,
        r.seed,
        config_hash(r)?
    ))
}

/// Resolves a task: the run's resolution, then the oracle-call budget.
fn resolve_task(l: Loaded, t: &TaskConfig) -> Result<Resolved> {
    let mut r = resolve_loaded(l, &t.run, None, &[])?;
    if r.compiled.program().spec.run.log.is_some() {
        bail!(
            "{}: the spec's `run {{ log }}` names one file for every task of the sweep, which \
             each would overwrite; remove it (each task's trace is in its run folder)",
            r.spec.display()
        );
    }
    if let Some(c) = t.oracle_calls {
        r.budget = r.budget.with_oracle_calls(c);
        r.warm_calls = crate::preflight::check_warm_start(r.info, &r.settings, Some(c))?;
    }
    Ok(r)
}

/// Runs task `t` into `out`: from the start (`resume` false; earlier run
/// files there are cleared), or from the checkpoint in `out`. The folder is
/// claimed as `bilevel run` claims it (a run in progress there is refused).
pub fn run_task(
    t: &TaskConfig,
    out: &Path,
    resume: bool,
    stop: Arc<AtomicBool>,
) -> Result<RunOutcome> {
    let mut plan = Plan::default();
    let (cfg, r, _lock) = if resume {
        let lock = runfolder::claim(out, FolderKind::Run, FolderMode::Resume, "--resume")?;
        let (c, eval_every) = checkpoint::resume_config(&t.run, out)?;
        plan.resume = Some(checkpoint::read(out)?);
        let task = TaskConfig {
            run: c,
            oracle_calls: t.oracle_calls,
        };
        let mut r = resolve_task(load(&task.run)?, &task)?;
        r.eval_every = eval_every;
        (task.run, r, lock)
    } else {
        let lock = runfolder::claim(out, FolderKind::Run, FolderMode::Force, "--out")?;
        let r = resolve_task(load(&t.run)?, t)?;
        (t.run.clone(), r, lock)
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(pool_size(cfg.threads, &r.compiled))
        .build()
        .context("cannot start the worker threads")?;
    let watch = watch_for(&r, stop, String::new());
    pool.install(|| execute(&r, &cfg, out, watch, &plan))
}

/// The spec path of a task relative to nothing: absolute, so that a task
/// runs the same from any working directory (Slurm's is the submitter's).
pub fn absolute(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).with_context(|| format!("cannot find {}", p.display()))
}
