//! `.bilevel` specs on the command line: `check`, `run` and `compare`.

use std::fmt;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bilevel_core::registry::{self, ParamValue, SolverInfo};
use bilevel_core::solver::AnySolver;
use bilevel_core::{Budget, Counted, DefaultRng, Level, LowerValue, UpperValue};
use bilevel_dsl::compiled::{Compiled, ExpectOutcome};
use bilevel_dsl::hir::Setting;
use bilevel_dsl::Diagnostic;
use rand_core::SeedableRng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::aggregate::{self, RunTrace};
use crate::compare::{jobs, run_jobs, Job};
use crate::output::write_atomic;
use crate::runfolder::{self, FolderKind, FolderMode};
use crate::session::{observe_run, Evaluate, ProgressMode, RunSummary, SessionOptions};
use crate::watch::{Limits, Watch, Watched};

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
        rendered: bilevel_dsl::diag::render_with(diags, name, src, color),
        json: bilevel_dsl::diag::to_json(diags, name, src),
    }
}

/// `bilevel check`: for each file, its summary (text or JSON) or its
/// diagnostics. Returns the text to print and whether every file checked.
pub fn check_files(paths: &[PathBuf], json: bool, color: bool) -> Result<(String, bool)> {
    let mut out = String::new();
    let mut all_ok = true;
    let mut values = Vec::new();
    for p in paths {
        let (src, name, base) = read_spec(p)?;
        match bilevel_dsl::summary::summarize_with(&src, &base, &crate::rnn::RnnRegistry) {
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
}

/// What `bilevel run` produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The run folder.
    pub out: PathBuf,
    /// The summary written to `summary.json`.
    pub summary: RunSummary,
    /// The `expect` block's outcomes (empty without one).
    pub expectations: Vec<ExpectOutcome>,
}

impl RunOutcome {
    /// `true` when every expectation holds.
    pub fn expectations_hold(&self) -> bool {
        self.expectations.iter().all(|e| e.ok)
    }

    /// What `bilevel run` prints: termination, final metrics, each
    /// expectation with expected and actual values, the run folder.
    pub fn report(&self, spec: &Path) -> String {
        let s = &self.summary;
        let mut t = format!(
            "{} on {}: {} after {} iterations, {} oracle calls, {:.2}s\n",
            s.solver,
            spec.display(),
            s.termination,
            s.iters,
            s.oracle_calls,
            s.wall_s
        );
        for (k, v) in &s.final_metrics {
            let _ = writeln!(t, "  {k} = {v:.6e}");
        }
        for e in &self.expectations {
            let verdict = if e.ok { "ok" } else { "VIOLATED" };
            let _ = writeln!(
                t,
                "  expect {}: {verdict} (expected {:?}, got {:?})",
                e.text, e.expected, e.actual
            );
        }
        if let Some(b) = &s.breakdown {
            let _ = writeln!(t, "  breakdown: {b}");
        }
        let _ = writeln!(t, "run folder: {}", self.out.display());
        t
    }
}

/// Parses one `key=value` override into an owned setting: `true`/`false`,
/// an integer, a real (`inf` allowed), or a name.
pub fn parse_setting(kv: &str) -> Result<(String, Setting)> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| anyhow!("--set `{kv}`: expected key=value"))?;
    let (k, v) = (k.trim(), v.trim());
    if k.is_empty() || v.is_empty() {
        bail!("--set `{kv}`: expected key=value");
    }
    let val = if v == "true" || v == "false" {
        Setting::Bool(v == "true")
    } else if let Ok(i) = v.parse::<i64>() {
        Setting::Int(i)
    } else if let Ok(r) = v.parse::<f64>() {
        Setting::Real(r)
    } else {
        Setting::Str(v.to_string())
    };
    Ok((k.to_string(), val))
}

fn as_param(s: &Setting) -> ParamValue<'_> {
    match s {
        Setting::Real(v) => ParamValue::Real(*v),
        Setting::Int(v) => ParamValue::Int(*v),
        Setting::Bool(v) => ParamValue::Bool(*v),
        Setting::Str(v) => ParamValue::Str(v),
    }
}

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
}

fn load(cfg: &RunConfig) -> Result<Loaded> {
    let (src, name, base) = read_spec(&cfg.spec)?;
    let compiled = Compiled::from_source_with(&src, &base, &crate::rnn::RnnRegistry)
        .map_err(|d| spec_errors(&d, &name, &src, cfg.color))?;
    Ok(Loaded {
        spec: cfg.spec.clone(),
        name,
        compiled,
        src_hash: format!("{:x}", Sha256::digest(src.as_bytes())),
    })
}

fn resolve(cfg: &RunConfig, algorithm: Option<&str>) -> Result<Resolved> {
    resolve_loaded(load(cfg)?, cfg, algorithm)
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
fn resolve_loaded(loaded: Loaded, cfg: &RunConfig, algorithm: Option<&str>) -> Result<Resolved> {
    let Loaded {
        spec: spec_path,
        name,
        compiled,
        src_hash,
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
    for kv in &cfg.set {
        // `solver:key=value` applies to that solver only (for compare).
        let kv = match kv.split_once(':') {
            Some((solver, rest)) if !solver.contains('=') => {
                let target = registry::find(solver)
                    .ok_or_else(|| anyhow!("--set {kv}: unknown algorithm `{solver}`"))?;
                if target.name != info.name {
                    continue;
                }
                rest
            }
            _ => kv.as_str(),
        };
        let (k, v) = parse_setting(kv)?;
        let p = info.param(&k).ok_or_else(|| {
            let names: Vec<&str> = info.params.iter().map(|p| p.name).collect();
            anyhow!(
                "--set {k}: `{}` has no hyperparameter `{k}`; it accepts: {}",
                info.name,
                names.join(", ")
            )
        })?;
        p.check(as_param(&v))
            .map_err(|e| anyhow!("--set {kv}: {e}"))?;
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
        info,
        settings,
        seed,
        budget,
        eval_every,
        epochs,
        warm_calls,
    })
}

/// The metrics of spec runs: the upper and lower objectives on the whole data
/// (noise-free for synthetic sources).
struct SpecEval {
    c: Compiled,
    upper: bilevel_dsl::data::Batch,
    lower: bilevel_dsl::data::Batch,
    /// The run's epoch budget, if any.
    max_epochs: Option<u64>,
}

impl SpecEval {
    /// The whole-data batches are built once per run, not per evaluation.
    fn new(c: Compiled, max_epochs: Option<u64>) -> Self {
        let upper = c.population(Level::Upper);
        let lower = c.population(Level::Lower);
        SpecEval {
            c,
            upper,
            lower,
            max_epochs,
        }
    }
}

impl Evaluate for SpecEval {
    fn metric_names(&self) -> Vec<String> {
        let mut v = vec!["upper_loss".to_string(), "lower_loss".to_string()];
        v.extend(self.c.metric_names());
        v
    }
    fn evaluate(&mut self, x: &[f64], y: &[f64]) -> Vec<f64> {
        let mut v = vec![
            self.c.f_value(x, y, &self.upper),
            self.c.g_value(x, y, &self.lower),
        ];
        v.extend(self.c.metrics(x, y));
        v
    }
    fn epoch(&self, counts: &bilevel_core::Counts) -> f64 {
        // A task carries a minibatch of the lower level's data too.
        let draws = if self.c.uses_tasks() {
            counts.samples_upper
        } else {
            counts.samples_lower
        };
        draws as f64 * self.c.epochs_per_lower_sample()
    }
    fn epochs_done(&self, counts: &bilevel_core::Counts) -> bool {
        self.max_epochs
            .is_some_and(|m| self.epoch(counts) >= m as f64)
    }
    fn epoch_budget(&self) -> Option<u64> {
        self.max_epochs
    }
}

#[derive(Serialize)]
struct ResolvedConfig<'a> {
    spec: String,
    spec_sha256: &'a str,
    problem: &'a str,
    algorithm: &'a str,
    hyperparameters: serde_json::Map<String, serde_json::Value>,
    seed: u64,
    iterations: Option<u64>,
    epochs: Option<u64>,
    oracle_calls: Option<u64>,
    eval_every: u64,
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
        problem: &r.name,
        algorithm: r.info.name,
        hyperparameters: hyper,
        seed: r.seed,
        iterations: (r.budget.max_iters != u64::MAX).then_some(r.budget.max_iters),
        epochs: r.epochs,
        oracle_calls: (r.budget.max_oracle_calls != u64::MAX).then_some(r.budget.max_oracle_calls),
        eval_every: r.eval_every,
        bilevel_version: env!("CARGO_PKG_VERSION"),
    }
}

/// A short hash of the resolved configuration (apart from the spec's path:
/// its contents' hash is in it), for default folder names.
fn config_hash(r: &Resolved) -> Result<String> {
    let mut c = resolved_config(r);
    c.spec = String::new();
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
fn execute(r: &Resolved, cfg: &RunConfig, out: &Path, watch: Arc<Watch>) -> Result<RunOutcome> {
    let overrides: Vec<(&str, ParamValue<'_>)> = r
        .settings
        .iter()
        .map(|(k, v)| (k.as_str(), as_param(v)))
        .collect();
    let mut solver = AnySolver::<f64, Vec<f64>, Vec<f64>>::build(
        r.info.name,
        &overrides,
        r.compiled.initial_x(),
        r.compiled.initial_y(),
    )
    .map_err(|e| anyhow!("{}: {e}", r.info.name))?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the run folder {}", out.display()))?;
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
    let eval = SpecEval::new(r.compiled.clone(), r.epochs);
    let summary = observe_run(&mut solver, &mut oracle, eval, &mut rng, r.seed, &opts)?;
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
        out: out.to_path_buf(),
        summary,
        expectations,
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
    // Held until the run has written its last file.
    let _lock = runfolder::claim(&out, FolderKind::Run, cfg.folder, "--out")?;
    let pool = rayon::ThreadPoolBuilder::new()
        .build()
        .context("cannot start the worker threads")?;
    let watch = watch_for(&r, stop, String::new());
    pool.install(|| execute(&r, cfg, &out, watch))
}

/// Settings of `bilevel compare`.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// The spec and shared settings (its `algorithm`, `seed` and `out` are
    /// replaced per job).
    pub base: RunConfig,
    /// The solvers to compare; `SOLVER@SPEC` runs that solver on another
    /// spec file (a formulation of the same problem that the solver needs,
    /// such as dim x = dim y for MAML) within the same comparison.
    pub algorithms: Vec<String>,
    /// Seeds per solver (seeds `seed..seed + seeds`).
    pub seeds: u64,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

/// What `bilevel compare` produced.
#[derive(Debug)]
pub struct CompareOutcome {
    /// The comparison folder (one run folder per job, `table.md`,
    /// `table.csv`, `plots/`).
    pub out: PathBuf,
    /// The Markdown table.
    pub table: String,
    /// Jobs that failed, with their errors.
    pub failures: Vec<(Job, String)>,
    /// Runs whose `expect` block was violated.
    pub violated: usize,
    /// Runs that broke down (`non_finite`, `diverged`).
    pub breakdowns: usize,
}

impl CompareOutcome {
    /// What `bilevel compare` prints: the table, failed jobs, the folder.
    pub fn report(&self) -> String {
        let mut t = self.table.clone();
        for (job, err) in &self.failures {
            let _ = writeln!(t, "failed: {} seed {}: {err}", job.solver, job.seed);
        }
        let _ = writeln!(t, "\ntable, runs and plots in {}", self.out.display());
        t
    }

    /// The exit code ([`crate::exit`]): a failed job, else a breakdown, else
    /// a violated `expect`, else 0.
    pub fn exit_code(&self) -> u8 {
        if !self.failures.is_empty() {
            crate::exit::ERROR
        } else if self.breakdowns > 0 {
            crate::exit::BREAKDOWN
        } else if self.violated > 0 {
            crate::exit::EXPECT_VIOLATED
        } else {
            0
        }
    }
}

/// The comparison folder: `--out`, else `runs/PROBLEM-compare-HASH` with a
/// hash of every resolved configuration and the number of seeds.
fn compare_folder(cfg: &CompareConfig, resolved: &[Resolved]) -> Result<PathBuf> {
    if let Some(o) = &cfg.base.out {
        return Ok(o.clone());
    }
    let mut key = Vec::new();
    for r in resolved {
        key.extend_from_slice(config_hash(r)?.as_bytes());
    }
    key.extend_from_slice(format!("seeds {}", cfg.seeds).as_bytes());
    Ok(PathBuf::from("runs").join(format!(
        "{}-compare-{}",
        bilevel_dsl::path_safe_name(&resolved[0].name),
        runfolder::short_hash(&key)
    )))
}

/// `bilevel compare`: every algorithm × seed on the same spec, in parallel,
/// each deterministic for its seed; a table and overlay plots.
/// Each run gets its own folder inside the comparison folder, which is
/// locked and must be new or empty (or cleared with `--force`).
pub fn compare_spec(cfg: &CompareConfig, stop: &Arc<AtomicBool>) -> Result<CompareOutcome> {
    if cfg.algorithms.is_empty() {
        bail!("--algorithms: give at least one solver");
    }
    // `SOLVER@SPEC` entries name their own spec.
    let entries: Vec<(&str, RunConfig)> = cfg
        .algorithms
        .iter()
        .map(|a| match a.split_once('@') {
            Some((solver, spec)) => (
                solver,
                RunConfig {
                    spec: PathBuf::from(spec),
                    ..cfg.base.clone()
                },
            ),
            None => (a.as_str(), cfg.base.clone()),
        })
        .collect();
    let solvers: Vec<String> = entries.iter().map(|(s, _)| (*s).to_string()).collect();
    // Load (read, check, load the data, compile) each spec once and resolve
    // every algorithm up front: no job starts on a typo, and jobs clone the
    // result instead of reloading.
    let mut loaded: Vec<Loaded> = Vec::new();
    let mut resolved = Vec::with_capacity(entries.len());
    for (a, c) in &entries {
        let l = if let Some(l) = loaded.iter().find(|l| l.spec == c.spec) {
            l.clone()
        } else {
            let l = load(c)?;
            loaded.push(l.clone());
            l
        };
        let r = resolve_loaded(l, c, Some(a))?;
        // By the registry's name, so that spellings of one solver are caught.
        if resolved
            .iter()
            .any(|q: &Resolved| q.info.name == r.info.name)
        {
            bail!(
                "--algorithms: `{}` is listed twice (its runs would share folders and rows)",
                r.info.name
            );
        }
        resolved.push(r);
    }
    let first = &resolved[0];
    let out = compare_folder(cfg, &resolved)?;
    // Held until the table and plots are written.
    let _lock = runfolder::claim(&out, FolderKind::Compare, cfg.base.folder, "--out")?;
    let js = jobs(&solvers, first.seed, cfg.seeds.max(1), &out);
    let job_cfg = RunConfig {
        progress: ProgressMode::Quiet,
        plots: false,
        ..cfg.base.clone()
    };
    let watches: Vec<Arc<Watch>> = js
        .iter()
        .map(|job| {
            let k = solvers.iter().position(|a| *a == job.solver).unwrap_or(0);
            watch_for(
                &resolved[k],
                stop.clone(),
                format!("{} s{}", job.solver, job.seed),
            )
        })
        .collect();
    let board = crate::watch::Board::start(watches.clone(), cfg.base.progress);
    let results = run_jobs(&js, cfg.threads, |job| {
        let k = solvers
            .iter()
            .position(|a| *a == job.solver)
            .ok_or_else(|| anyhow!("job for an unlisted solver `{}`", job.solver))?;
        let i = js.iter().position(|j| j == job).unwrap_or(0);
        let mut r = resolved[k].clone();
        r.seed = job.seed;
        // The comparison folder was new or cleared: so is each run folder.
        let _lock = runfolder::claim(&job.out, FolderKind::Run, FolderMode::New, "--out")?;
        let o = execute(&r, &job_cfg, &job.out, watches[i].clone());
        board.finished(&format!(
            "{} seed {}: {}",
            job.solver,
            job.seed,
            match &o {
                Ok(o) => format!(
                    "{} after {} iterations, {} oracle calls",
                    o.summary.termination, o.summary.iters, o.summary.oracle_calls
                ),
                Err(e) => format!("failed: {e:#}"),
            }
        ));
        let o = o?;
        Ok(o.summary)
    })?;
    board.end();
    collect(out, &js, results)
}

/// Reads the finished runs of a comparison back, writes its table and
/// plots, and counts failures, breakdowns and violated expectations.
fn collect(out: PathBuf, js: &[Job], results: Vec<Result<RunSummary>>) -> Result<CompareOutcome> {
    let mut runs: Vec<RunTrace> = Vec::new();
    let mut failures = Vec::new();
    for (job, res) in js.iter().zip(results) {
        match res {
            Ok(_) => runs.push(aggregate::load_run(&job.out)?),
            Err(e) => failures.push((job.clone(), format!("{e:#}"))),
        }
    }
    if runs.is_empty() {
        bail!(
            "every job failed; the first: {}",
            failures.first().map_or("", |f| f.1.as_str())
        );
    }
    let violated = runs
        .iter()
        .filter(|r| r.expect.is_some_and(|(held, n)| held < n))
        .count();
    let breakdowns = runs
        .iter()
        .filter(|r| {
            r.summary
                .as_ref()
                .is_some_and(|s| matches!(s.termination.as_str(), "non_finite" | "diverged"))
        })
        .count();
    let rows = aggregate::table(&runs);
    aggregate::write_table(&out, &rows)?;
    // Runs that broke down may leave nothing finite to plot: noted, and
    // the table and exit code say what happened.
    match aggregate::plot_runs(&out.join("plots"), &runs) {
        Err(e) if breakdowns > 0 => {
            let line = format!("note: no comparison plots: {e:#}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), line.as_bytes());
        }
        r => {
            r?;
        }
    }
    Ok(CompareOutcome {
        out,
        table: aggregate::table_markdown(&rows),
        failures,
        violated,
        breakdowns,
    })
}
