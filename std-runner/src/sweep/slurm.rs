//! `--slurm`: an sbatch job-array script in `DIR/slurm/`, submitted with
//! `sbatch` unless `--dry-run`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::output::write_atomic;

/// The options of `--slurm`.
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` (Slurm's format, e.g. `01:00:00`).
    pub time: Option<String>,
    /// At most this many array elements at once (`%K`).
    pub max_parallel: Option<u64>,
    /// Tasks per array element (at least 1).
    pub tasks_per_job: u64,
    /// Write the script, do not submit.
    pub dry_run: bool,
}

/// Single-quotes a word for bash.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A value of an `#SBATCH` line: no spaces, quotes or newlines (sbatch
/// does not parse shell quoting there).
fn directive(flag: &str, v: &str) -> Result<String> {
    if v.is_empty()
        || v.chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '"' || c == '#')
    {
        bail!("{flag} `{v}`: not a Slurm value (no spaces, quotes or #)");
    }
    Ok(v.to_string())
}

/// The job-array script for `n` tasks of `file` in `dir` (both absolute).
pub fn script(bin: &Path, file: &Path, dir: &Path, n: usize, o: &SlurmOptions) -> Result<String> {
    let m = o.tasks_per_job.max(1) as usize;
    let elements = n.div_ceil(m);
    let mut s = String::from("#!/bin/bash\n");
    let _ = writeln!(s, "# Written by `bilevel sweep --slurm`: {elements} array elements of {m} task(s), {n} tasks.");
    let _ = writeln!(s, "#SBATCH --job-name=bilevel-sweep");
    let mut array = format!("0-{}", elements - 1);
    if let Some(k) = o.max_parallel {
        let _ = write!(array, "%{k}");
    }
    let _ = writeln!(s, "#SBATCH --array={array}");
    let _ = writeln!(
        s,
        "#SBATCH --output={}",
        directive("--out", &format!("{}/slurm/%A_%a.out", dir.display()))?
    );
    let _ = writeln!(s, "#SBATCH --open-mode=append");
    let _ = writeln!(s, "#SBATCH --requeue");
    let _ = writeln!(s, "#SBATCH --ntasks=1");
    if let Some(p) = &o.partition {
        let _ = writeln!(s, "#SBATCH --partition={}", directive("--partition", p)?);
    }
    if let Some(t) = &o.time {
        let _ = writeln!(s, "#SBATCH --time={}", directive("--time", t)?);
        // SIGTERM to the batch shell (bilevel, by exec) 60 s before the
        // limit: the task checkpoints and a requeue resumes it.
        let _ = writeln!(s, "#SBATCH --signal=B:TERM@60");
    }
    let _ = writeln!(s, "set -eu");
    let _ = writeln!(s, "first=$(( SLURM_ARRAY_TASK_ID * {m} ))");
    let _ = writeln!(s, "last=$(( first + {} ))", m - 1);
    let _ = writeln!(s, "if [ \"$last\" -gt {} ]; then last={}; fi", n - 1, n - 1);
    let _ = writeln!(s, "echo \"bilevel sweep: array element $SLURM_ARRAY_TASK_ID (job $SLURM_JOB_ID, restart ${{SLURM_RESTART_COUNT:-0}}): tasks $first-$last\"");
    // exec: bilevel is the batch step's process and gets Slurm's SIGTERM
    // (pre-emption, requeue, time limit) itself; it stops at the next
    // iteration with its checkpoint written.
    let _ = writeln!(
        s,
        "exec {} sweep {} --out {} --task \"$first-$last\"",
        quote(&bin.display().to_string()),
        quote(&file.display().to_string()),
        quote(&dir.display().to_string())
    );
    Ok(s)
}

/// Writes the script into `dir/slurm/sweep.sbatch` and, unless a dry run,
/// submits it; returns what to print.
pub fn submit(file: &Path, dir: &Path, n: usize, o: &SlurmOptions) -> Result<String> {
    if n == 0 {
        bail!("the sweep has no tasks");
    }
    let bin = std::env::current_exe().context("cannot find the bilevel binary's path")?;
    let dir =
        std::fs::canonicalize(dir).with_context(|| format!("cannot find {}", dir.display()))?;
    std::fs::create_dir_all(dir.join("slurm")).context("cannot create the slurm folder")?;
    let text = script(&bin, file, &dir, n, o)?;
    let path: PathBuf = dir.join("slurm").join("sweep.sbatch");
    write_atomic(&path, text.as_bytes())?;
    if o.dry_run {
        return Ok(format!(
            "{}\n(dry run: not submitted) script written to {}\n",
            text.trim_end(),
            path.display()
        ));
    }
    let out = Command::new("sbatch")
        .arg("--parsable")
        .arg(&path)
        .output()
        .context("cannot run sbatch (is Slurm installed and on PATH?)")?;
    if !out.status.success() {
        bail!(
            "sbatch {} failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let id = String::from_utf8_lossy(&out.stdout)
        .trim()
        .split(';')
        .next()
        .unwrap_or("")
        .to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!(
            "sbatch printed no job id: `{}`",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    let m = o.tasks_per_job.max(1) as usize;
    let record = serde_json::json!({
        "job_id": id,
        "tasks": n,
        "array_elements": n.div_ceil(m),
        "tasks_per_job": m,
        "script": path.display().to_string(),
    });
    write_atomic(
        &dir.join("slurm").join(format!("{id}.json")),
        &serde_json::to_vec_pretty(&record)?,
    )?;
    Ok(format!("{id}\n"))
}
