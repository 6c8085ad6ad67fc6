//! `.bilevel` specs on the command line: `check`, `run` and `compare`.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use bilevel_core::registry::{self, ParamValue, SolverInfo};
use bilevel_core::{Budget, Counted, DefaultRng};
use bilevel_dsl::Diagnostic;
use bilevel_dsl::Setting;
use bilevel_dsl::{Compiled, ExpectOutcome};
use rand_core::SeedableRng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::checkpoint::{self, Checkpoint};
use crate::evaluation::SpecEval;
use crate::output::write_atomic;
use crate::runfolder::{self, FolderKind, FolderMode};
use crate::session::{observe_run_with, Position, ProgressMode, RunSummary, SessionOptions};
use crate::watch::{Limits, Watch, Watched};

mod comparison;
mod solver;
mod task;
pub use comparison::{
    compare_spec, CompareConfig, CompareOutcome, CompareRecord, RECORD as COMPARE_RECORD,
};
pub use solver::{needs_finite_sum, RunSolver, MAX_MEMORY_ENTRIES};
pub use task::{absolute, run_task, SpecCache, TaskConfig, TaskPlan};

/// The solver type of spec runs.
type Solver = RunSolver;
/// The oracle type of spec runs.
type Oracle = Counted<Watched<Compiled>>;

/// Checkpoint settings of `bilevel run`: the cadence and the folder to resume.
#[derive(Debug, Clone, Default)]
pub struct CheckpointSettings {
    /// Write a checkpoint every this many iterations (0: only when the run
    /// stops); `None`: at every trace line (the spec's `eval_every`).
    pub every: Option<u64>,
    /// Continue the run in this folder from its checkpoint
    /// (`bilevel run --resume DIR`).
    pub resume: Option<PathBuf>,
}

/// What `execute` does about checkpoints.
#[derive(Debug, Default)]
struct Plan {
    every: Option<u64>,
    resume: Option<Checkpoint>,
}

/// A spec that did not check: its diagnostics, rendered like a compiler's.
#[derive(Debug)]
pub struct SpecErrors {
    /// The rendered diagnostics (source lines, carets, help).
    pub rendered: String,
    /// The diagnostics as JSON, for tools.
    pub json: serde_json::Value,
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rendered.trim_end())
    }
}

impl std::error::Error for SpecErrors {}

fn read_spec(path: &Path) -> Result<(String, String, PathBuf)> {
    let src =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path.display().to_string();
    let base = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    Ok((src, name, base))
}

fn spec_errors(diags: &[Diagnostic], name: &str, src: &str, color: bool) -> SpecErrors {
    SpecErrors {
        rendered: bilevel_dsl::render_with(diags, name, src, color),
        json: bilevel_dsl::to_json(diags, name, src),
    }
}

/// `bilevel check`: for each file, its summary (text or JSON) or its
/// diagnostics. Returns the text to print and whether every file checked.
pub fn check_files(paths: &[PathBuf], json: bool, color: bool) -> Result<(String, bool)> {
    let mut out = String::new();
    let mut all_ok = true;
    let mut values = Vec::new();
    for p in paths {
        // A file that cannot be read is reported like a spec that does not
        // check, and the others are still checked (and, with `json`, still
        // reported as JSON).
        let (src, name, base) = match read_spec(p) {
            Ok(r) => r,
            Err(e) => {
                all_ok = false;
                let msg = format!("{e:#}");
                if json {
                    values.push(serde_json::json!({
                        "file": p.display().to_string(), "ok": false, "error": msg,
                    }));
                } else {
                    let _ = writeln!(
                        out,
                        "error: {msg}
"
                    );
                }
                continue;
            }
        };
        let checked =
            bilevel_dsl::summarize_with(&src, &base, &crate::rnn::RnnRegistry).and_then(|s| {
                let refused = crate::provenance::refusals(&s.program.spec);
                if refused.is_empty() {
                    Ok(s)
                } else {
                    Err(refused)
                }
            });
        match checked {
            Ok(s) if json => {
                values.push(serde_json::json!({ "file": name, "ok": true, "summary": s.json() }));
            }
            Ok(s) => {
                out.push_str(&s.text());
                out.push('\n');
            }
            Err(d) => {
                all_ok = false;
                let e = spec_errors(&d, &name, &src, color);
                if json {
                    values.push(
                        serde_json::json!({ "file": name, "ok": false, "diagnostics": e.json }),
                    );
                } else {
                    out.push_str(&e.rendered);
                }
            }
        }
    }
    if json {
        out = serde_json::to_string_pretty(&values)? + "\n";
    }
    Ok((out, all_ok))
}

/// Settings of `bilevel run` (and of each job of `bilevel compare`).
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The spec file.
    pub spec: PathBuf,
    /// Solver name; `None`: the spec's `algorithm` block.
    pub algorithm: Option<String>,
    /// `key=value` hyperparameter overrides, applied after the spec's.
    pub set: Vec<String>,
    /// RNG seed; `None`: the spec's, else 0.
    pub seed: Option<u64>,
    /// Outer iterations; `None`: the spec's, else 1000.
    pub iterations: Option<u64>,
    /// Epochs. Given with or without `iterations`, the command line's
    /// budget replaces the spec's `iterations` and `epochs` (its
    /// `oracle_calls` still applies).
    pub epochs: Option<u64>,
    /// The run folder; `None`: `runs/<spec name>-<solver>-s<seed>-<hash>`,
    /// with a short hash of the resolved configuration.
    pub out: Option<PathBuf>,
    /// What the run may find in its folder ([`FolderMode`]): nothing,
    /// an earlier run to clear (`--force`), or a run to resume.
    pub folder: FolderMode,
    /// Progress display on stderr.
    pub progress: ProgressMode,
    /// Render plots at the end.
    pub plots: bool,
    /// Colour in diagnostics.
    pub color: bool,
    /// Worker threads of the run's pool (0: one per core); `None`: the
    /// spec's `run { threads }`, else one per core.
    pub threads: Option<usize>,
}

/// What `bilevel run` produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The spec file the run used (for `--resume DIR` without one, the
    /// spec named in DIR's `config.json`).
    pub spec: PathBuf,
    /// The run folder.
    pub out: PathBuf,
    /// The summary written to `summary.json`.
    pub summary: RunSummary,
    /// The `expect` block's outcomes (empty without one).
    pub expectations: Vec<ExpectOutcome>,
    /// Where the trace was copied (the spec's `run { log }`), if anywhere.
    pub log: Option<PathBuf>,
}

impl RunOutcome {
    /// `true` when every expectation holds.
    pub fn expectations_hold(&self) -> bool {
        self.expectations.iter().all(|e| e.ok)
    }
}

use crate::settings::as_param;
pub use crate::settings::parse_setting;

/// Solvers whose samples are tasks (one group of every data source).
const META_SOLVERS: &[&str] = &["maml", "anil", "fomaml", "ufom"];

/// A compiled spec with its solver choice and settings resolved.
#[derive(Clone)]
struct Resolved {
    /// The spec file, as given.
    spec: PathBuf,
    compiled: Compiled,
    name: String,
    src_hash: String,
    data_sha256: BTreeMap<String, String>,
    /// A job of `bilevel compare` (its `run { log }` file is per job).
    in_compare: bool,
    info: &'static SolverInfo,
    settings: Vec<(String, Setting)>,
    seed: u64,
    budget: Budget,
    eval_every: u64,
    epochs: Option<u64>,
    /// Gradient calls of the warm start, when the solver has one.
    warm_calls: Option<u64>,
}

/// A spec read, checked, loaded and compiled: the part of [`Resolved`] that
/// does not depend on the solver.
#[derive(Clone)]
struct Loaded {
    spec: PathBuf,
    name: String,
    compiled: Compiled,
    src_hash: String,
    data_sha256: BTreeMap<String, String>,
}

fn load(cfg: &RunConfig) -> Result<Loaded> {
    let (src, name, base) = read_spec(&cfg.spec)?;
    let compiled = Compiled::from_source_with(&src, &base, &crate::rnn::RnnRegistry)
        .map_err(|d| spec_errors(&d, &name, &src, cfg.color))?;
    let refused = crate::provenance::refusals(&compiled.program().spec);
    if !refused.is_empty() {
        return Err(spec_errors(&refused, &name, &src, cfg.color).into());
    }
    let data_sha256 = crate::provenance::data_sha256(&compiled.program().spec, &base)?;
    Ok(Loaded {
        spec: cfg.spec.clone(),
        name,
        compiled,
        src_hash: format!("{:x}", Sha256::digest(src.as_bytes())),
        data_sha256,
    })
}

fn resolve(cfg: &RunConfig, algorithm: Option<&str>) -> Result<Resolved> {
    resolve_loaded(load(cfg)?, cfg, algorithm, &[])
}

/// Refuses budgets that could never be used up ([`crate::preflight`]);
/// returns the warm start's gradient calls.
fn refuse_unreachable(
    cfg: &RunConfig,
    epochs: Option<u64>,
    compiled: &Compiled,
    spec_path: &Path,
    info: &SolverInfo,
    settings: &[(String, Setting)],
    budget: &Budget,
) -> Result<Option<u64>> {
    let src = std::fs::read_to_string(spec_path).unwrap_or_default();
    crate::preflight::check_epochs(
        epochs,
        cfg.epochs.is_some(),
        compiled.epochs_per_lower_sample(),
        spec_path,
        &src,
    )?;
    crate::preflight::check_warm_start(
        info,
        settings,
        (budget.max_oracle_calls != u64::MAX).then_some(budget.max_oracle_calls),
    )
}

/// Chooses the solver and its settings for a loaded spec.
///
/// `listed` holds every solver of the command (those of a comparison), for
/// which `SOLVER:KEY=VALUE` overrides are accepted; empty: only this one.
fn resolve_loaded(
    loaded: Loaded,
    cfg: &RunConfig,
    algorithm: Option<&str>,
    listed: &[&'static SolverInfo],
) -> Result<Resolved> {
    let Loaded {
        spec: spec_path,
        name,
        compiled,
        src_hash,
        data_sha256,
    } = loaded;
    let spec = &compiled.program().spec;
    let spec_algo = spec.algorithm.as_ref();
    let info = match algorithm.or(cfg.algorithm.as_deref()) {
        Some(a) => registry::find(a).ok_or_else(|| {
            let names: Vec<&str> = registry::SOLVERS.iter().map(|s| s.name).collect();
            anyhow!("unknown algorithm `{a}`; available: {}", names.join(", "))
        })?,
        None => spec_algo.map(|a| a.info).ok_or_else(|| {
            anyhow!("{name} has no `algorithm` block: choose one with --algorithm")
        })?,
    };
    // The spec's block for this solver, if it has one.
    let mut settings: Vec<(String, Setting)> = spec
        .algorithms
        .iter()
        .find(|a| a.info.name == info.name)
        .map(|a| a.settings.clone())
        .unwrap_or_default();
    let in_compare = !listed.is_empty();
    let listed = if listed.is_empty() {
        std::slice::from_ref(&info)
    } else {
        listed
    };
    for (k, v) in crate::settings::overrides(&cfg.set, info, listed)? {
        settings.retain(|(n, _)| *n != k);
        settings.push((k, v));
    }
    let run = spec.run.clone();
    let mut compiled = compiled;
    if META_SOLVERS.contains(&info.name) {
        compiled
            .use_tasks()
            .map_err(|e| anyhow!("{name}: {}: {e}", info.name))?;
    }
    solver::prepare(&mut compiled, info.name).map_err(|e| anyhow!("{name}: {e:#}"))?;
    let seed = cfg.seed.or(run.seed).unwrap_or(0);
    // The command line's budget replaces the spec's. In the spec an
    // iteration budget wins over an epoch budget. An epoch budget stops the
    // run through the observer; without an iteration budget, iterations are
    // then unlimited.
    let (iterations, epochs) = match (cfg.iterations, cfg.epochs) {
        (None, None) => match run.iterations {
            Some(i) => (Some(i), None),
            None => (None, run.epochs),
        },
        given => given,
    };
    let iters = iterations.unwrap_or(if epochs.is_some() { u64::MAX } else { 1000 });
    let mut budget = Budget::iters(iters);
    if let Some(c) = run.oracle_calls {
        budget = budget.with_oracle_calls(c);
    }
    let warm_calls =
        refuse_unreachable(cfg, epochs, &compiled, &spec_path, info, &settings, &budget)?;
    let eval_every = run.eval_every.unwrap_or_else(|| {
        if epochs.is_some() {
            10
        } else {
            (iters / 100).max(1)
        }
    });
    Ok(Resolved {
        spec: spec_path,
        name: compiled.program().spec.name.clone(),
        compiled,
        src_hash,
        data_sha256,
        in_compare,
        info,
        settings,
        seed,
        budget,
        eval_every,
        epochs,
        warm_calls,
    })
}

#[derive(Serialize)]
struct ResolvedConfig<'a> {
    spec: String,
    spec_sha256: &'a str,
    /// SHA-256 of each data file the spec reads, by its path in the spec.
    data_sha256: &'a BTreeMap<String, String>,
    problem: &'a str,
    algorithm: &'a str,
    hyperparameters: serde_json::Map<String, serde_json::Value>,
    seed: u64,
    iterations: Option<u64>,
    epochs: Option<u64>,
    oracle_calls: Option<u64>,
    eval_every: u64,
    /// Where the spec's `run { log }` has the trace copied, if anywhere.
    log: Option<PathBuf>,
    /// Worker threads of the pool the run executes in.
    threads: usize,
    bilevel_version: &'static str,
}

fn setting_json(v: ParamValue<'_>) -> serde_json::Value {
    match v {
        ParamValue::Real(r) if r.is_finite() => serde_json::json!(r),
        ParamValue::Real(r) => serde_json::json!(if r > 0.0 { "inf" } else { "-inf" }),
        ParamValue::Int(i) => serde_json::json!(i),
        ParamValue::Bool(b) => serde_json::json!(b),
        ParamValue::Str(s) => serde_json::json!(s),
    }
}

/// Where the spec's `run { log = PATH }` puts a copy of the trace: PATH,
/// relative to the working directory (like the default run folders under
/// `runs/`). Within a comparison (run folders `…/SOLVER-sSEED`) each job
/// gets its own file, `STEM-SOLVER-sSEED.EXT`, so that no run overwrites
/// another's.
fn log_path(r: &Resolved) -> Option<PathBuf> {
    let log = PathBuf::from(r.compiled.program().spec.run.log.as_ref()?);
    if !r.in_compare {
        return Some(log);
    }
    let job = format!("{}-s{}", r.info.name, r.seed);
    let stem = log
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let name = match log.extension() {
        Some(e) => format!("{stem}-{job}.{}", e.to_string_lossy()),
        None => format!("{stem}-{job}"),
    };
    Some(log.with_file_name(name))
}

/// Copies a finished trace to the spec's `log` path (atomically; its folder
/// is created).
fn copy_trace(trace: &Path, log: &Path) -> Result<()> {
    let bytes = std::fs::read(trace).with_context(|| format!("cannot read {}", trace.display()))?;
    if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create {} for the spec's `run {{ log }}`",
                dir.display()
            )
        })?;
    }
    write_atomic(log, &bytes).context("the spec's `run { log }`")
}

/// The resolved configuration written to `config.json`: every
/// hyperparameter as resolved (registry defaults, then the spec's and the
/// command line's settings), seed and budget.
fn resolved_config(r: &Resolved) -> ResolvedConfig<'_> {
    let mut hyper = serde_json::Map::new();
    for p in r.info.params {
        let v = r
            .settings
            .iter()
            .rev()
            .find(|(k, _)| *k == p.name)
            .map_or(p.default, |(_, v)| as_param(v));
        hyper.insert(p.name.to_string(), setting_json(v));
    }
    ResolvedConfig {
        spec: r.spec.display().to_string(),
        spec_sha256: &r.src_hash,
        data_sha256: &r.data_sha256,
        problem: &r.name,
        algorithm: r.info.name,
        hyperparameters: hyper,
        seed: r.seed,
        iterations: (r.budget.max_iters != u64::MAX).then_some(r.budget.max_iters),
        epochs: r.epochs,
        oracle_calls: (r.budget.max_oracle_calls != u64::MAX).then_some(r.budget.max_oracle_calls),
        eval_every: r.eval_every,
        log: log_path(r),
        threads: rayon::current_num_threads(),
        bilevel_version: env!("CARGO_PKG_VERSION"),
    }
}

/// A short hash of the resolved configuration (apart from the spec's path:
/// its contents' hash is in it), for default folder names.
fn config_hash(r: &Resolved) -> Result<String> {
    let mut c = resolved_config(r);
    c.spec = String::new();
    // The pool size does not change the results (nor the folder).
    c.threads = 0;
    Ok(runfolder::short_hash(&serde_json::to_vec(&c)?))
}

/// The live state of a run of `r`, with its budget, for progress displays.
fn watch_for(r: &Resolved, stop: Arc<AtomicBool>, label: String) -> Arc<Watch> {
    let limit = |v: u64| (v != u64::MAX).then_some(v);
    let limits = Limits {
        iters: limit(r.budget.max_iters),
        epochs: r.epochs,
        calls: limit(r.budget.max_oracle_calls),
        warm_calls: r.warm_calls,
    };
    Watch::new(stop, limits, label)
}

/// Runs `r` into the folder `out`, which the caller has claimed.
fn execute(
    r: &Resolved,
    cfg: &RunConfig,
    out: &Path,
    watch: Arc<Watch>,
    plan: &Plan,
) -> Result<RunOutcome> {
    let overrides: Vec<(&str, ParamValue<'_>)> = r
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), as_param(v)))
        .collect();
    let mut solver = Solver::build(r.info.name, &overrides, &r.compiled)?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the run folder {}", out.display()))?;
    let config = serde_json::to_value(resolved_config(r))?;
    if let Some(c) = &plan.resume {
        c.check_matches(&r.src_hash, r.info.name, &config)?;
    }
    let log = log_path(r);
    write_atomic(
        &out.join("config.json"),
        &serde_json::to_vec_pretty(&resolved_config(r))?,
    )
    .map_err(|e| anyhow::Error::new(crate::exit::IoFailure(e)))?;
    let opts = SessionOptions {
        out: out.to_path_buf(),
        eval_every: r.eval_every,
        budget: r.budget,
        progress: cfg.progress,
        stop: watch.stop_flag().clone(),
        plots: cfg.plots,
        watch: Some(watch.clone()),
    };
    let mut oracle = Counted::new(Watched::new(r.compiled.clone(), watch));
    let mut rng = DefaultRng::seed_from_u64(r.seed);
    let eval = SpecEval::new(r.compiled.clone(), r.epochs)?;
    let resumed = match &plan.resume {
        Some(c) => Some(checkpoint::restore(
            c,
            out,
            &mut solver,
            &mut oracle,
            &mut rng,
        )?),
        None => None,
    };
    let identity = checkpoint::identity(&config);
    let mut save = |s: &mut Solver, o: &mut Oracle, g: &mut DefaultRng, pos: &Position| {
        checkpoint::save(out, &r.src_hash, &identity, pos, s, o, g)
    };
    let summary = observe_run_with(
        &mut solver,
        &mut oracle,
        eval,
        &mut rng,
        r.seed,
        &opts,
        resumed,
        (plan.every.unwrap_or(r.eval_every), &mut save),
    )?;
    if let Some(log) = &log {
        copy_trace(&out.join("trace.jsonl"), log)?;
    }
    let mut checker = r.compiled.clone();
    let x = bilevel_core::SolverState::x(&solver).to_vec();
    let y = bilevel_core::SolverState::y(&solver).to_vec();
    let expectations = checker.check_expectations(&x, &y);
    write_atomic(
        &out.join("expect.json"),
        &serde_json::to_vec_pretty(
            &expectations
                .iter()
                .map(|e| serde_json::json!({"expect": e.text, "expected": e.expected, "actual": e.actual, "ok": e.ok}))
                .collect::<Vec<_>>(),
        )?,
    )
    .map_err(|e| anyhow::Error::new(crate::exit::IoFailure(e)))?;
    Ok(RunOutcome {
        spec: r.spec.clone(),
        out: out.to_path_buf(),
        summary,
        expectations,
        log,
    })
}

/// `bilevel run`: compiles the spec, runs the chosen solver and writes the
/// run folder (`config.json`, `trace.jsonl`, `summary.json`, `expect.json`,
/// `plots/`). Ctrl-C stops the run cleanly with `stop`.
///
/// The run executes on a worker of its own thread pool (`RAYON_NUM_THREADS`
/// threads, else one per core), as each job of `bilevel compare` does: a
/// model's parallel products then share the pool with the run instead of
/// waking a pool from outside at every call, which made two threads slower
/// than one on small models (BENCHMARKS.md, "The RNN through a spec").
pub fn run_spec(cfg: &RunConfig, stop: Arc<AtomicBool>) -> Result<RunOutcome> {
    run_spec_with(cfg, &CheckpointSettings::default(), stop)
}

/// [`run_spec`] with checkpoint settings: the cadence, and `--resume DIR`,
/// which continues the run in DIR from its checkpoint. A resumed run takes
/// its spec (unless `cfg.spec` names one), solver, hyperparameters, seed,
/// evaluation cadence and budgets from DIR's `config.json`; `--iterations`
/// and `--epochs` replace the budgets; any other setting given must agree
/// with the checkpoint's, else the checkpoint is refused as foreign.
pub fn run_spec_with(
    cfg: &RunConfig,
    ck: &CheckpointSettings,
    stop: Arc<AtomicBool>,
) -> Result<RunOutcome> {
    let mut plan = Plan {
        every: ck.every,
        resume: None,
    };
    let (cfg, r, out, _lock) = if let Some(dir) = &ck.resume {
        // Held until the run has written its last file; a folder in use by
        // another run is refused before anything is read.
        let lock = runfolder::claim(dir, FolderKind::Run, FolderMode::Resume, "--resume")?;
        let (c, eval_every) = checkpoint::resume_config(cfg, dir)?;
        // The checkpoint first: a folder without one is an error before any
        // spec is loaded.
        plan.resume = Some(checkpoint::read(dir)?);
        let mut r = resolve(&c, None)?;
        r.eval_every = eval_every;
        (c, r, dir.clone(), lock)
    } else {
        let r = resolve(cfg, None)?;
        let out = match &cfg.out {
            Some(o) => o.clone(),
            None => PathBuf::from("runs").join(format!(
                "{}-{}-s{}-{}",
                bilevel_dsl::path_safe_name(&r.name),
                r.info.name,
                r.seed,
                config_hash(&r)?
            )),
        };
        let lock = runfolder::claim(&out, FolderKind::Run, cfg.folder, "--out")?;
        (cfg.clone(), r, out, lock)
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(pool_size(cfg.threads, &r.compiled))
        .build()
        .context("cannot start the worker threads")?;
    let watch = watch_for(&r, stop, String::new());
    pool.install(|| execute(&r, &cfg, &out, watch, &plan))
}

/// The size of a run's or comparison's pool: the command line's
/// `--threads`, else the spec's `run { threads }`, else 0 (rayon's default:
/// `RAYON_NUM_THREADS`, else one per core).
fn pool_size(flag: Option<usize>, c: &Compiled) -> usize {
    flag.or_else(|| {
        c.program()
            .spec
            .run
            .threads
            .map(|t| usize::try_from(t).unwrap_or(usize::MAX))
    })
    .unwrap_or(0)
}
