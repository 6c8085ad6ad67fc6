//! The arguments of `bilevel sweep` (flattened into the command line by
//! `main.rs`) and their dispatch.

use std::path::PathBuf;

use anyhow::Result;

use super::{command, Mode, SlurmOptions, SweepResult};

/// `bilevel sweep FILE --out DIR [...]`.
#[derive(Debug, Clone, clap::Args)]
pub struct SweepArgs {
    /// The sweep file (TOML, docs/sweeps.md).
    pub file: PathBuf,
    /// The sweep folder: sweep.json, runs/NAME per task, locks, failed.
    #[arg(long)]
    pub out: PathBuf,
    /// Local workers running tasks side by side (each task's results do not
    /// depend on it).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..1025))]
    pub jobs: u64,
    /// Run only these tasks: ids and ranges, e.g. `3`, `0-5`, `1,4` (what
    /// each Slurm array element runs); DIR/sweep.json must list the same tasks.
    #[arg(long, value_name = "IDS", conflicts_with_all = ["status", "slurm"])]
    pub task: Option<String>,
    /// Show done / running / failed / missing per solver; runs nothing.
    #[arg(long, conflicts_with = "slurm")]
    pub status: bool,
    /// Output format of `--status`.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text, requires = "status")]
    pub format: StatusFormat,
    /// Write a Slurm job-array script into DIR/slurm and submit it with
    /// sbatch (prints the job id).
    #[arg(long)]
    pub slurm: bool,
    /// Slurm partition.
    #[arg(long, requires = "slurm")]
    pub partition: Option<String>,
    /// Slurm time limit per array element (e.g. 01:00:00); SIGTERM comes 60 s
    /// before it and the element checkpoints.
    #[arg(long, requires = "slurm")]
    pub time: Option<String>,
    /// At most K array elements at once (`--array=0-(n-1)%K`).
    #[arg(long, value_name = "K", requires = "slurm", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_parallel: Option<u64>,
    /// Tasks run one after the other by each array element.
    #[arg(long, value_name = "M", requires = "slurm", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub tasks_per_job: u64,
    /// Write the script, do not submit it.
    #[arg(long, requires = "slurm")]
    pub dry_run: bool,
}

/// Formats of `--status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    /// A table.
    Text,
    /// JSON.
    Json,
}

/// Runs `bilevel sweep` with `a`.
pub fn run(a: &SweepArgs) -> Result<SweepResult> {
    let mode = if a.status {
        Mode::Status {
            json: a.format == StatusFormat::Json,
        }
    } else if a.slurm {
        if a.jobs != 1 {
            anyhow::bail!("--jobs applies to local runs; with --slurm, use --max-parallel");
        }
        Mode::Slurm(SlurmOptions {
            partition: a.partition.clone(),
            time: a.time.clone(),
            max_parallel: a.max_parallel,
            tasks_per_job: a.tasks_per_job,
            dry_run: a.dry_run,
        })
    } else {
        Mode::Run {
            ids: None,
            jobs: a.jobs as usize,
        }
    };
    command(&a.file, &a.out, a.task.as_deref(), mode)
}
