//! `bilevel compare` — every solver × seed of one spec, in parallel — and
//! `bilevel compare --resume DIR`, which finishes a comparison that was
//! stopped (a signal, `kill -9`, a full disk): the comparison's own
//! settings are read from `DIR/compare.json`; finished runs are kept as
//! they are, stopped ones continue from their checkpoints (as `bilevel run
//! --resume` does), runs that never started (or left no checkpoint) start;
//! then the table, the overlays and the JSON output are rebuilt. The
//! result equals the uninterrupted comparison's (decision 104).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{
    checkpoint, config_hash, execute, load, pool_size, resolve_loaded, resolved_config, watch_for,
    Loaded, Plan, Resolved, RunConfig,
};
use crate::aggregate::{self, RunTrace};
use crate::compare::{jobs, run_jobs, Job};
use crate::output::write_atomic;
use crate::runfolder::{self, FolderKind, FolderMode};
use crate::session::{ProgressMode, RunSummary};
use crate::watch::Watch;

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
    /// Seeds per solver (seeds `seed..seed + seeds`); `None`: 3, or with
    /// `resume` the comparison's own.
    pub seeds: Option<u64>,
    /// Worker threads (0: one per core); `None`: the first spec's
    /// `run { threads }`, else one per core.
    pub threads: Option<usize>,
    /// `--resume DIR`: finish the comparison in DIR. The spec, algorithms,
    /// seeds, `--set` and budgets are DIR's `compare.json`'s; any of them
    /// given here must agree with it.
    pub resume: Option<PathBuf>,
}

/// What `bilevel compare` produced.
#[derive(Debug)]
pub struct CompareOutcome {
    /// The comparison folder (one run folder per job, `table.md`,
    /// `table.csv`, `plots/`).
    pub out: PathBuf,
    /// The Markdown table.
    pub table: String,
    /// The table's rows.
    pub rows: Vec<aggregate::TableRow>,
    /// Jobs that failed, with their errors.
    pub failures: Vec<(Job, String)>,
    /// Runs whose `expect` block was violated.
    pub violated: usize,
    /// Runs that broke down (`non_finite`, `diverged`).
    pub breakdowns: usize,
    /// Runs stopped by a signal (termination `interrupted`).
    pub interrupted: usize,
    /// With `--resume`: how many runs were kept, resumed and started.
    pub resumed: Option<(usize, usize, usize)>,
}

impl CompareOutcome {
    /// What `bilevel compare` prints: the table, failed jobs, the folder.
    pub fn report(&self) -> String {
        let mut t = self.table.clone();
        if let Some((kept, resumed, started)) = self.resumed {
            let _ = writeln!(
                t,
                "resumed: {kept} runs kept (finished), {resumed} resumed from their checkpoints, \
                 {started} started"
            );
        }
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
    let seeds = cfg.seeds.unwrap_or(DEFAULT_SEEDS);
    let mut key = Vec::new();
    for r in resolved {
        key.extend_from_slice(config_hash(r)?.as_bytes());
    }
    key.extend_from_slice(format!("seeds {seeds}").as_bytes());
    Ok(PathBuf::from("runs").join(format!(
        "{}-compare-{}",
        bilevel_dsl::path_safe_name(&resolved[0].name),
        runfolder::short_hash(&key)
    )))
}

/// Seeds per solver when `--seeds` is not given.
pub const DEFAULT_SEEDS: u64 = 3;

/// The file in a comparison folder that records the comparison's settings.
pub const RECORD: &str = "compare.json";

/// `compare.json`: what `bilevel compare --resume DIR` continues with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompareRecord {
    /// The spec file, as given (relative to the folder the comparison
    /// started in).
    pub spec: PathBuf,
    /// `--algorithms`, as given (`SOLVER` or `SOLVER@SPEC`).
    pub algorithms: Vec<String>,
    /// Seeds per solver.
    pub seeds: u64,
    /// The first seed, resolved (`--seed`, else the spec's).
    pub seed: u64,
    /// `--set`, as given.
    pub set: Vec<String>,
    /// `--iterations`, if given.
    pub iterations: Option<u64>,
    /// `--epochs`, if given.
    pub epochs: Option<u64>,
    /// SHA-256 of the spec of each entry of `algorithms`, in its order: a
    /// spec edited since the comparison started is refused on resume.
    pub spec_sha256: Vec<String>,
    /// The `bilevel` version that started the comparison.
    pub bilevel_version: String,
}

/// `bilevel compare`: every algorithm × seed on the same spec, in parallel,
/// each deterministic for its seed; a table and overlay plots.
/// Each run gets its own folder inside the comparison folder, which is
/// locked and must be new or empty (or cleared with `--force`). With
/// `cfg.resume`, the comparison in that folder is finished instead (module
/// docs).
pub fn compare_spec(cfg: &CompareConfig, stop: &Arc<AtomicBool>) -> Result<CompareOutcome> {
    let Some(dir) = &cfg.resume else {
        let resolved = resolve_all(cfg)?;
        let out = compare_folder(cfg, &resolved)?;
        // Held until the table and plots are written.
        let _lock = runfolder::claim(&out, FolderKind::Compare, cfg.base.folder, "--out")?;
        let record = CompareRecord {
            spec: cfg.base.spec.clone(),
            algorithms: cfg.algorithms.clone(),
            seeds: cfg.seeds.unwrap_or(DEFAULT_SEEDS),
            seed: resolved[0].seed,
            set: cfg.base.set.clone(),
            iterations: cfg.base.iterations,
            epochs: cfg.base.epochs,
            spec_sha256: resolved.iter().map(|r| r.src_hash.clone()).collect(),
            bilevel_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        write_atomic(&out.join(RECORD), &serde_json::to_vec_pretty(&record)?)
            .map_err(|e| anyhow::Error::new(crate::exit::IoFailure(e)))?;
        return run_comparison(cfg, &resolved, out, false, stop);
    };
    // The folder first: one in use by another process is refused before
    // anything is read.
    let _lock = runfolder::claim(dir, FolderKind::Compare, FolderMode::Resume, "--resume")?;
    let record = read_record(dir)?;
    let c = recorded_config(cfg, &record, dir)?;
    let resolved = resolve_all(&c)?;
    // Before any run starts: a spec edited since would mix runs of two
    // problems in one table.
    let hashes: Vec<String> = resolved.iter().map(|r| r.src_hash.clone()).collect();
    if hashes != record.spec_sha256 {
        let i = (0..hashes.len())
            .find(|&i| record.spec_sha256.get(i) != Some(&hashes[i]))
            .unwrap_or(0);
        bail!(
            "--resume {}: {} has changed since the comparison started (its SHA-256 was {}, \
             is {}); restore it, or rerun the comparison with --force",
            dir.display(),
            resolved[i].spec.display(),
            record
                .spec_sha256
                .get(i)
                .map_or("not recorded", String::as_str),
            hashes[i]
        );
    }
    // The plots of the stopped comparison are drawn again at the end.
    runfolder::clear_plots(&dir.join("plots"))?;
    run_comparison(&c, &resolved, dir.clone(), true, stop)
}

/// Reads `DIR/compare.json`.
fn read_record(dir: &Path) -> Result<CompareRecord> {
    let path = dir.join(RECORD);
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "--resume {}: cannot read {} (a comparison folder holds it from its start; one \
             written by an earlier bilevel cannot be resumed: rerun it with --force)",
            dir.display(),
            path.display()
        )
    })?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a comparison record", path.display()))
}

/// The settings of the comparison resumed in `dir`: its record's, with the
/// command line's output options (progress, plots, threads). A setting
/// given on the command line that differs from the record's is an error.
fn recorded_config(cfg: &CompareConfig, rec: &CompareRecord, dir: &Path) -> Result<CompareConfig> {
    let conflict = |flag: &str, given: String, recorded: String| {
        anyhow!(
            "--resume {}: {flag} {given} differs from the comparison's own {recorded} \
             (recorded in {}); resume without {flag}, or start a new comparison with --out",
            dir.display(),
            dir.join(RECORD).display()
        )
    };
    let spec = if cfg.base.spec.as_os_str().is_empty() {
        if !rec.spec.exists() {
            bail!(
                "cannot find {}, the spec of the comparison in {} (paths are relative to the \
                 folder the comparison started in): give it, as in `bilevel compare SPEC \
                 --resume {}`",
                rec.spec.display(),
                dir.display(),
                dir.display()
            );
        }
        rec.spec.clone()
    } else {
        let same = match (cfg.base.spec.canonicalize(), rec.spec.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            // The recorded path does not resolve from here (another working
            // folder): the spec given is used; each run's configuration
            // (the spec's SHA-256) is checked against the record's runs.
            (Ok(_), Err(_)) => true,
            _ => cfg.base.spec == rec.spec,
        };
        if !same {
            return Err(conflict(
                "the spec",
                cfg.base.spec.display().to_string(),
                rec.spec.display().to_string(),
            ));
        }
        cfg.base.spec.clone()
    };
    if !cfg.algorithms.is_empty() && cfg.algorithms != rec.algorithms {
        return Err(conflict(
            "--algorithms",
            cfg.algorithms.join(","),
            rec.algorithms.join(","),
        ));
    }
    for (flag, given, recorded) in [
        ("--seeds", cfg.seeds, Some(rec.seeds)),
        ("--seed", cfg.base.seed, Some(rec.seed)),
        ("--iterations", cfg.base.iterations, rec.iterations),
        ("--epochs", cfg.base.epochs, rec.epochs),
    ] {
        if given.is_some() && given != recorded {
            let show = |v: Option<u64>| v.map_or_else(|| "(none)".to_string(), |v| v.to_string());
            return Err(conflict(flag, show(given), show(recorded)));
        }
    }
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    if !cfg.base.set.is_empty() && sorted(&cfg.base.set) != sorted(&rec.set) {
        return Err(conflict(
            "--set",
            cfg.base.set.join(" "),
            if rec.set.is_empty() {
                "(none)".to_string()
            } else {
                rec.set.join(" ")
            },
        ));
    }
    Ok(CompareConfig {
        base: RunConfig {
            spec,
            set: rec.set.clone(),
            seed: Some(rec.seed),
            iterations: rec.iterations,
            epochs: rec.epochs,
            out: Some(dir.to_path_buf()),
            ..cfg.base.clone()
        },
        algorithms: rec.algorithms.clone(),
        seeds: Some(rec.seeds),
        threads: cfg.threads,
        resume: Some(dir.to_path_buf()),
    })
}

/// Loads each spec once and resolves every algorithm of the comparison up
/// front: no job starts on a typo, and jobs clone the result instead of
/// reloading.
fn resolve_all(cfg: &CompareConfig) -> Result<Vec<Resolved>> {
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
    // Every solver of the comparison, for `--set SOLVER:…` (a prefix naming
    // a solver not compared is an error, not a setting that does nothing).
    let listed = crate::report::select_solvers(&solvers)?;
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
        let r = resolve_loaded(l, c, Some(a), &listed)?;
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
    Ok(resolved)
}

/// How a job of a comparison began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Began {
    /// Ran from its start.
    Started,
    /// Continued from its checkpoint.
    Resumed,
    /// Finished earlier: its folder kept as it was.
    Kept,
}

/// Runs every job of the comparison into `out` (locked by the caller) and
/// collects the table and plots. With `resume`, each job's folder decides
/// what the job does ([`run_job`]).
fn run_comparison(
    cfg: &CompareConfig,
    resolved: &[Resolved],
    out: PathBuf,
    resume: bool,
    stop: &Arc<AtomicBool>,
) -> Result<CompareOutcome> {
    let solvers: Vec<String> = cfg
        .algorithms
        .iter()
        .map(|a| a.split_once('@').map_or(a.as_str(), |(s, _)| s).to_string())
        .collect();
    let first = &resolved[0];
    let js = jobs(
        &solvers,
        first.seed,
        cfg.seeds.unwrap_or(DEFAULT_SEEDS).max(1),
        &out,
    );
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
    let results = run_jobs(&js, pool_size(cfg.threads, &first.compiled), |job| {
        let k = solvers
            .iter()
            .position(|a| *a == job.solver)
            .ok_or_else(|| anyhow!("job for an unlisted solver `{}`", job.solver))?;
        let i = js.iter().position(|j| j == job).unwrap_or(0);
        let mut r = resolved[k].clone();
        r.seed = job.seed;
        let o = run_job(&r, &job_cfg, job, watches[i].clone(), resume);
        board.finished(&format!(
            "{} seed {}: {}",
            job.solver,
            job.seed,
            match &o {
                Ok((Began::Kept, s)) => format!("kept, finished earlier ({})", s.termination),
                Ok((began, s)) => format!(
                    "{}{} after {} iterations, {} oracle calls",
                    if *began == Began::Resumed {
                        "resumed, "
                    } else {
                        ""
                    },
                    s.termination,
                    s.iters,
                    s.oracle_calls
                ),
                Err(e) => format!("failed: {e:#}"),
            }
        ));
        o
    })?;
    board.end();
    let count = |b: Began| {
        results
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|(x, _)| *x == b))
            .count()
    };
    let counts = (
        count(Began::Kept),
        count(Began::Resumed),
        count(Began::Started),
    );
    let results = results.into_iter().map(|r| r.map(|(_, s)| s)).collect();
    let mut o = collect(out, &js, results, cfg.base.plots)?;
    o.resumed = resume.then_some(counts);
    Ok(o)
}

/// What a job's folder holds when a comparison is resumed.
fn job_state(dir: &Path) -> Began {
    let termination = std::fs::read(dir.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["termination"].as_str().map(str::to_string));
    // `expect.json` is a run's last file: a run killed before it is
    // finished from its (final) checkpoint.
    let finished = termination.is_some_and(|t| t != "interrupted")
        && dir.join("trace.jsonl").is_file()
        && dir.join("expect.json").is_file();
    if finished {
        Began::Kept
    } else if dir.join(checkpoint::FILE).is_file() {
        Began::Resumed
    } else {
        Began::Started
    }
}

/// Runs one job of a comparison in its folder, locked for the job. Without
/// `resume` the folder is new (the comparison folder was new or cleared).
/// With it: a finished run is kept (its configuration must be the job's),
/// a run with a checkpoint continues from it, and any other starts again
/// (its run files cleared).
fn run_job(
    r: &Resolved,
    job_cfg: &RunConfig,
    job: &Job,
    watch: Arc<Watch>,
    resume: bool,
) -> Result<(Began, RunSummary)> {
    let began = if resume {
        job_state(&job.out)
    } else {
        Began::Started
    };
    let mode = match (resume, began) {
        (false, _) => FolderMode::New,
        (true, Began::Started) => FolderMode::Force,
        (true, _) => FolderMode::Resume,
    };
    let _lock = runfolder::claim(&job.out, FolderKind::Run, mode, "--out")?;
    let plan = match began {
        Began::Kept => {
            check_same(&job.out, r)?;
            let path = job.out.join("summary.json");
            let s = serde_json::from_slice(
                &std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
            )
            .with_context(|| format!("{}: not a run summary", path.display()))?;
            return Ok((Began::Kept, s));
        }
        Began::Resumed => Plan {
            every: None,
            resume: Some(checkpoint::read(&job.out)?),
        },
        Began::Started => Plan::default(),
    };
    let o = execute(r, job_cfg, &job.out, watch, &plan)?;
    Ok((began, o.summary))
}

/// A finished run kept by `--resume` must be of the job's configuration
/// (not a run of an edited spec, nor one put there by hand).
fn check_same(dir: &Path, r: &Resolved) -> Result<()> {
    let path = dir.join("config.json");
    let mut saved: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
    )
    .with_context(|| format!("{}: not a run configuration", path.display()))?;
    let mut now = serde_json::to_value(resolved_config(r))?;
    for v in [&mut saved, &mut now] {
        if let Some(m) = v.as_object_mut() {
            // The pool size does not change results; the spec is checked by
            // its SHA-256.
            m.remove("threads");
            m.remove("spec");
        }
    }
    if saved != now {
        bail!(
            "{} holds a finished run of another configuration than this comparison's ({}); \
             rerun the comparison with --force",
            dir.display(),
            checkpoint::first_difference(&saved, &now, "")
        );
    }
    Ok(())
}

/// Reads the finished runs of a comparison back, writes its table and
/// plots, and counts failures, breakdowns and violated expectations.
fn collect(
    out: PathBuf,
    js: &[Job],
    results: Vec<Result<RunSummary>>,
    plots: bool,
) -> Result<CompareOutcome> {
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
    if plots {
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
    }
    let interrupted = runs
        .iter()
        .filter(|r| {
            r.summary
                .as_ref()
                .is_some_and(|s| s.termination == "interrupted")
        })
        .count();
    Ok(CompareOutcome {
        out,
        table: aggregate::table_markdown(&rows),
        rows,
        failures,
        violated,
        breakdowns,
        interrupted,
        resumed: None,
    })
}
