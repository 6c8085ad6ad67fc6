//! Running a sweep's tasks: the manifest, per-task locks, skip / resume /
//! start, and the local pool of `--jobs N` workers.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};

use super::file::{Sweep, Task};
use crate::output::write_atomic;
use crate::session::ProgressMode;
use crate::spec::{RunConfig, SpecCache, TaskConfig, TaskPlan};

/// A task with its resolved plan.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The task.
    pub task: Task,
    /// Its run's configuration for `run_task`.
    pub config: TaskConfig,
    /// Its folder name and resolved configuration.
    pub plan: TaskPlan,
}

/// The entries a sweep folder may hold (docs/sweeps.md).
const OWN: &[&str] = &[
    "sweep.json",
    "sweep.toml",
    "runs",
    "locks",
    "failed",
    "slurm",
];

/// Resolves every task (all checks of `bilevel run`), refusing two tasks of
/// one configuration.
pub fn plan(sweep: &Sweep) -> Result<Vec<Planned>> {
    let mut cache = SpecCache::new();
    let mut out: Vec<Planned> = Vec::with_capacity(sweep.tasks.len());
    for t in &sweep.tasks {
        let config = TaskConfig {
            run: RunConfig {
                spec: t.spec.clone(),
                algorithm: Some(t.solver.to_string()),
                set: t.set_args(),
                seed: Some(t.seed),
                iterations: t.budget.iterations,
                epochs: t.budget.epochs,
                out: None,
                folder: crate::runfolder::FolderMode::New,
                progress: ProgressMode::Quiet,
                plots: false,
                color: false,
                threads: None,
            },
            oracle_calls: t.budget.oracle_calls,
        };
        let plan = cache
            .plan(&config)
            .with_context(|| format!("{}: task {} ({})", sweep.path.display(), t.id, label(t)))?;
        if let Some(o) = out.iter().find(|o| o.plan.folder == plan.folder) {
            bail!(
                "{}: tasks {} ({}) and {} ({}) have the same resolved configuration (folder {}): \
                 a sweep runs each configuration once; remove the duplicate",
                sweep.path.display(),
                o.task.id,
                label(&o.task),
                t.id,
                label(t),
                plan.folder
            );
        }
        out.push(Planned {
            task: t.clone(),
            config,
            plan,
        });
    }
    Ok(out)
}

/// `solver s1 [eta=0.01]`, for messages.
pub fn label(t: &Task) -> String {
    let set = t.set_args();
    let spec = t
        .spec
        .file_stem()
        .map_or(String::new(), |s| s.to_string_lossy().into_owned());
    if set.is_empty() {
        format!("{spec} {} s{}", t.solver, t.seed)
    } else {
        format!("{spec} {} s{} [{}]", t.solver, t.seed, set.join(" "))
    }
}

/// The manifest `sweep.json` (docs/sweeps.md).
pub fn manifest(sweep: &Sweep, planned: &[Planned]) -> serde_json::Value {
    let tasks: Vec<serde_json::Value> = planned
        .iter()
        .map(|p| {
            let set: serde_json::Map<String, serde_json::Value> = p
                .task
                .set
                .iter()
                .map(|(k, v)| (k.clone(), toml_json(v)))
                .collect();
            serde_json::json!({
                "id": p.task.id,
                "folder": format!("runs/{}", p.plan.folder),
                "spec": p.task.spec.display().to_string(),
                "solver": p.task.solver,
                "seed": p.task.seed,
                "set": set,
                "budget": {
                    "iterations": p.task.budget.iterations,
                    "epochs": p.task.budget.epochs,
                    "oracle_calls": p.task.budget.oracle_calls,
                },
                "config": p.plan.config,
            })
        })
        .collect();
    serde_json::json!({
        "format": 1,
        "sweep": sweep.path.display().to_string(),
        "sweep_sha256": sweep.sha256,
        "bilevel_version": env!("CARGO_PKG_VERSION"),
        "tasks": tasks,
    })
}

fn toml_json(v: &toml::Value) -> serde_json::Value {
    match v {
        toml::Value::Integer(i) => serde_json::json!(i),
        toml::Value::Float(f) => serde_json::json!(f),
        toml::Value::Boolean(b) => serde_json::json!(b),
        other => serde_json::json!(other.to_string().trim_matches('"')),
    }
}

/// Takes the sweep folder: refuses a folder that holds anything but a
/// sweep's files; with `write`, writes the manifest and the file's copy;
/// else (`--task`) requires the manifest to list the same tasks.
pub fn prepare_dir(dir: &Path, sweep: &Sweep, planned: &[Planned], write: bool) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("--out {}: not a folder", dir.display());
    }
    if dir.is_dir() {
        let foreign: Vec<String> = fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| !(OWN.contains(&n.as_str()) || n.starts_with('.') && n.contains(".tmp-")))
            .collect();
        if !foreign.is_empty() {
            bail!(
                "--out {}: not a sweep folder (it holds {}); choose a new or empty folder",
                dir.display(),
                foreign.join(", ")
            );
        }
    }
    let m = manifest(sweep, planned);
    let path = dir.join("sweep.json");
    if !write {
        let old: serde_json::Value = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .with_context(|| format!("--task: {} holds no sweep.json; run the sweep once without --task (or with --slurm)", dir.display()))?;
        let folders = |v: &serde_json::Value| -> Vec<serde_json::Value> {
            v["tasks"].as_array().map_or_else(Vec::new, |t| {
                t.iter().map(|t| t["folder"].clone()).collect()
            })
        };
        if folders(&old) != folders(&m) {
            bail!(
                "--task: {} was written for another version of the sweep file (its tasks differ); \
                 task ids would name other runs: submit the sweep again, or use a new --out",
                path.display()
            );
        }
        return Ok(());
    }
    for sub in ["runs", "locks", "failed"] {
        fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("cannot create {}", dir.join(sub).display()))?;
    }
    write_atomic(&path, &serde_json::to_vec_pretty(&m)?)?;
    write_atomic(&dir.join("sweep.toml"), sweep.source.as_bytes())?;
    Ok(())
}

/// How one task went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It ran to its end here (`resumed`: from a checkpoint).
    Ran {
        /// Continued from a checkpoint.
        resumed: bool,
        /// Its termination.
        termination: String,
    },
    /// Already done: skipped.
    Done,
    /// Another process holds its lock: skipped.
    Busy,
    /// Stopped by a signal; its checkpoint is kept.
    Interrupted,
    /// It failed; the error is in `failed/NAME.txt`.
    Failed(String),
}

/// The task's lock file, locked; `None` when another process holds it.
pub fn try_lock(dir: &Path, name: &str) -> Result<Option<File>> {
    let path = dir.join("locks").join(format!("{name}.lock"));
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot create the lock file {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(None),
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    f.set_len(0)?;
    writeln!(f, "pid {}", std::process::id())?;
    Ok(Some(f))
}

/// The termination in a run folder's `summary.json`, if it has one.
pub fn termination(run: &Path) -> Option<String> {
    let b = fs::read(run.join("summary.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&b).ok()?;
    v["termination"].as_str().map(str::to_string)
}

/// Runs one task under its lock: skips it when done or busy, resumes it from
/// a checkpoint, else starts it.
pub fn run_one(dir: &Path, p: &Planned, threads: Option<usize>, stop: &Arc<AtomicBool>) -> Outcome {
    match run_locked(dir, p, threads, stop) {
        Ok(o) => o,
        Err(e) => {
            let msg = format!("{e:#}");
            let path = dir.join("failed").join(format!("{}.txt", p.plan.folder));
            let _ = write_atomic(&path, format!("task {}: {msg}\n", p.task.id).as_bytes());
            Outcome::Failed(msg)
        }
    }
}

fn run_locked(
    dir: &Path,
    p: &Planned,
    threads: Option<usize>,
    stop: &Arc<AtomicBool>,
) -> Result<Outcome> {
    // A `--status` probe holds the lock for an instant: try again before
    // taking the task for another process's.
    let mut lock = try_lock(dir, &p.plan.folder)?;
    for _ in 0..3 {
        if lock.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(30));
        lock = try_lock(dir, &p.plan.folder)?;
    }
    let Some(_lock) = lock else {
        return Ok(Outcome::Busy);
    };
    let run = dir.join("runs").join(&p.plan.folder);
    match termination(&run) {
        Some(t) if t != "interrupted" => {
            check_same(&run, p)?;
            return Ok(Outcome::Done);
        }
        _ => {}
    }
    if stop.load(Ordering::SeqCst) {
        return Ok(Outcome::Interrupted);
    }
    let resume = run.join(crate::checkpoint::FILE).is_file();
    let mut cfg = p.config.clone();
    cfg.run.threads = threads;
    let o = crate::spec::run_task(&cfg, &run, resume, stop.clone())?;
    if o.summary.termination == "interrupted" {
        return Ok(Outcome::Interrupted);
    }
    let _ = fs::remove_file(dir.join("failed").join(format!("{}.txt", p.plan.folder)));
    Ok(Outcome::Ran {
        resumed: resume,
        termination: o.summary.termination,
    })
}

/// A finished run in the task's folder must be the task's (not an edited
/// folder, nor a hash collision).
fn check_same(run: &Path, p: &Planned) -> Result<()> {
    let path = run.join("config.json");
    let mut c: serde_json::Value = serde_json::from_slice(
        &fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
    )
    .with_context(|| format!("{}: not a run configuration", path.display()))?;
    let mut want = p.plan.config.clone();
    for v in [&mut c, &mut want] {
        if let Some(m) = v.as_object_mut() {
            m.remove("threads");
            m.remove("spec");
        }
    }
    if c != want {
        bail!(
            "{} holds a finished run of another configuration than task {}; remove the folder to run the task",
            run.display(),
            p.task.id
        );
    }
    Ok(())
}

/// Runs `ids` on `jobs` workers (each task's results do not depend on
/// `jobs`: one seed, one folder, one pool per task). Prints a line per task
/// to stderr. Returns the outcomes in the order of `ids`.
pub fn run_pool(
    dir: &Path,
    planned: &[Planned],
    ids: &[usize],
    jobs: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<Outcome> {
    let jobs = jobs.clamp(1, ids.len().max(1));
    // One thread per task when tasks run side by side; else the spec's.
    let threads = (jobs > 1).then_some(1);
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new(vec![None; ids.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&id) = ids.get(i) else { break };
                let p = &planned[id];
                let o = run_one(dir, p, threads, stop);
                let line = format!("task {id} {}: {}\n", label(&p.task), describe(&o));
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
                results.lock().expect("no worker panics holding it")[i] = Some(o);
            });
        }
    });
    results
        .into_inner()
        .expect("workers ended")
        .into_iter()
        .map(|o| o.unwrap_or(Outcome::Interrupted))
        .collect()
}

/// One line about an outcome.
pub fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Ran {
            resumed: false,
            termination,
        } => format!("ran ({termination})"),
        Outcome::Ran {
            resumed: true,
            termination,
        } => format!("resumed from its checkpoint ({termination})"),
        Outcome::Done => "done already: skipped".to_string(),
        Outcome::Busy => "running in another process: skipped".to_string(),
        Outcome::Interrupted => "interrupted (its checkpoint is kept)".to_string(),
        Outcome::Failed(e) => format!("failed: {e}"),
    }
}

/// The run folder of a planned task.
pub fn run_dir(dir: &Path, p: &Planned) -> PathBuf {
    dir.join("runs").join(&p.plan.folder)
}
