//! The `bilevel` command. All logic lives in the library; this file parses
//! arguments, prints results to stdout and errors to stderr.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use std::io::IsTerminal as _;

use bilevel_runner::runfolder::FolderMode;
use bilevel_runner::session::ProgressMode;
use bilevel_runner::spec::{CompareConfig, RunConfig};
use bilevel_runner::{exit, signals};
use clap::{CommandFactory, Parser, Subcommand};

/// Examples and exit codes, after the top-level help.
const AFTER_HELP: &str = "\
Examples:
  bilevel check examples/specs/toy_quadratic.bilevel
  bilevel run examples/specs/toy_quadratic.bilevel --out runs/toy
  bilevel run examples/specs/toy_quadratic.bilevel --algorithm slip --set eta=0.02 --set eta_decay=0.5 --seed 3 --out runs/toy-slip
  bilevel compare examples/specs/toy_quadratic.bilevel --algorithms bo-rep,slip --set slip:eta=0.02 --set slip:eta_decay=0.5 --seeds 3 --out runs/toy-compare
  bilevel run --resume runs/toy-slip
  bilevel compare --resume runs/toy-compare
  bilevel plot runs/toy runs/toy-slip --out runs/plots

Exit status: 0 success; 1 error (bad input, a spec that does not check, a
refused run folder, a failed job); 2 bad usage; 3 a violated `expect`; 4 a
breakdown (non_finite, diverged); 5 the run's files could not be written (disk
full); 130, 143, 129 stopped by Ctrl-C, SIGTERM, SIGHUP (the files written are
complete; continue with --resume). A signal that comes after a run has ended
leaves its own code.";

/// Stochastic bilevel optimization: run and compare BO-REP, SLIP and baselines.
#[derive(Debug, Parser)]
#[command(
    name = "bilevel",
    version,
    about,
    arg_required_else_help = true,
    after_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check specs: diagnostics (exit 1), or a summary of each problem.
    ///
    /// Example: `bilevel check examples/specs/toy_quadratic.bilevel`
    Check {
        /// The .bilevel files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run a spec with one solver; writes a run folder with the resolved
    /// config, the trace, the summary and plots, and checks `expect`.
    ///
    /// Example: `bilevel run examples/specs/toy_quadratic.bilevel --algorithm slip --set eta=0.02 --set eta_decay=0.5 --seed 3`
    Run {
        /// The .bilevel file (with `--resume`: default, the spec recorded in
        /// the run folder's config.json).
        #[arg(required_unless_present = "resume")]
        file: Option<PathBuf>,
        #[command(flatten)]
        opts: RunOpts,
        /// Solver from the registry (`bilevel algorithms`); default: the spec's.
        #[arg(long)]
        algorithm: Option<String>,
        /// RNG seed; default: the spec's.
        #[arg(long)]
        seed: Option<u64>,
        /// The run folder (new or empty, see --force); default:
        /// runs/PROBLEM-SOLVER-sSEED-HASH, HASH from the resolved configuration.
        #[arg(long, conflicts_with = "resume")]
        out: Option<PathBuf>,
        /// Continue the run in DIR from its last checkpoint, with its spec,
        /// solver, settings, seed and budgets (`--iterations`/`--epochs`
        /// replace the budgets; other settings must match the checkpoint's).
        #[arg(long, value_name = "DIR")]
        resume: Option<PathBuf>,
        /// Write the run folder's checkpoint every N iterations (0: only
        /// when the run stops); default: at every trace line (eval_every).
        #[arg(long, value_name = "N")]
        checkpoint_every: Option<u64>,
    },
    /// Run every algorithm × seed on one spec in parallel: a table (CSV and
    /// Markdown) and overlay plots with a band for the seed spread.
    ///
    /// Example: `bilevel compare examples/specs/toy_quadratic.bilevel --algorithms bo-rep,slip --set slip:eta=0.02 --set slip:eta_decay=0.5 --seeds 3`
    Compare {
        /// The .bilevel file (with `--resume`: default, the spec recorded
        /// in the comparison folder's compare.json).
        #[arg(required_unless_present = "resume")]
        file: Option<PathBuf>,
        #[command(flatten)]
        opts: RunOpts,
        /// Comma-separated solvers from the registry; `SOLVER@SPEC` runs that
        /// solver on another spec file (e.g. `maml@other.bilevel`, a formulation
        /// the solver needs) in the same comparison.
        #[arg(long, value_delimiter = ',', required_unless_present = "resume")]
        algorithms: Vec<String>,
        /// Seeds per solver (at least 1) [default: 3].
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        seeds: Option<u64>,
        /// First seed; default: the spec's.
        #[arg(long)]
        seed: Option<u64>,
        /// The comparison folder (new or empty, see --force); default:
        /// runs/PROBLEM-compare-HASH, HASH from the resolved configurations.
        #[arg(long, conflicts_with = "resume")]
        out: Option<PathBuf>,
        /// Finish the comparison in DIR (stopped by a signal, killed, or out
        /// of disk space) with its own spec, algorithms, seeds, --set and
        /// budgets (from DIR/compare.json; any given must agree): finished
        /// runs are kept, stopped ones continue from their checkpoints, the
        /// others start; then the table and plots are rebuilt.
        #[arg(long, value_name = "DIR", conflicts_with = "force")]
        resume: Option<PathBuf>,
    },
    /// List the solvers: names, hyperparameters with defaults and ranges, oracles.
    ///
    /// Example: `bilevel algorithms slip --format json`
    Algorithms {
        /// Only these solvers (registry names; default: all).
        names: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Plot existing runs: one colour per solver, a band for the spread over seeds.
    ///
    /// Example: `bilevel plot runs/toy runs/toy-slip --out runs/plots`
    Plot {
        /// Run folders (each holding trace.jsonl, or trace.jsonl.part of a killed run).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Where to write the plots and table.md/table.csv.
        #[arg(long, default_value = "plots")]
        out: PathBuf,
    },
    /// Tables and plots over a directory of run folders (a sweep's or a
    /// comparison's), from whatever has finished: median and 20–80 % band
    /// over seeds; partial runs marked, missing tasks listed.
    ///
    /// Example: `bilevel report runs/sweep --out runs/sweep-report`
    Report {
        /// The directory holding the run folders (and a sweep's manifest.json).
        dir: PathBuf,
        /// Where report.md, report.json and the plots go; default DIR-report
        /// beside DIR (a sweep folder holds only the sweep's own files).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Do not render plots.
        #[arg(long)]
        no_plots: bool,
    },
    /// Each solver's best configuration below DIR by the median over seeds
    /// of a metric; optionally written back as a spec's `algorithm` blocks.
    ///
    /// Example: `bilevel best runs/sweep --by upper_loss --at epoch 2 --write-spec spec.bilevel --out tuned.bilevel`
    Best {
        /// The directory holding the run folders.
        dir: PathBuf,
        /// The metric ranked by (never a test metric unless --allow-test-metric).
        #[arg(long, default_value = "upper_loss")]
        by: String,
        /// Read the metric at the last evaluation at or before this point:
        /// `epoch N`, `calls N` or `iterations N`; default: each finished run's end.
        #[arg(long, num_args = 2, value_names = ["AXIS", "VALUE"])]
        at: Vec<String>,
        /// Lower is better (default for names with loss/error).
        #[arg(long, conflicts_with = "max")]
        min: bool,
        /// Higher is better (default for names with accuracy).
        #[arg(long)]
        max: bool,
        /// Allow ranking by a metric whose name says `test`.
        #[arg(long)]
        allow_test_metric: bool,
        /// Write the winners into a copy of this spec (with --out).
        #[arg(long, requires = "out", value_name = "SPEC")]
        write_spec: Option<PathBuf>,
        /// The new spec file written by --write-spec (must not exist).
        #[arg(long, requires = "write_spec", value_name = "NEW")]
        out: Option<PathBuf>,
        /// Output format on stdout.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run a sweep file (docs/sweeps.md): every spec × solver × grid point ×
    /// seed as a task with its own run folder in DIR/runs; finished tasks are
    /// skipped, interrupted ones resumed. Locally, or as a Slurm job array.
    ///
    /// Example: `bilevel sweep examples/sweeps/toy.toml --out runs/sweep-toy --jobs 2`
    Sweep(bilevel_runner::sweep::cli::SweepArgs),
    /// Generate a `no_std`, heap-free Rust oracle module from a spec, over
    /// f32 or f64, depending on bilevel-core only (docs/codegen.md).
    ///
    /// Example: `bilevel codegen examples/specs/firmware_ridge.bilevel --out gen --scalar f32`
    Codegen {
        /// The .bilevel file.
        spec: PathBuf,
        /// The folder for the module (`NAME.rs`); refused when not empty, unless --force.
        #[arg(long)]
        out: PathBuf,
        /// The scalar type.
        #[arg(long, value_enum, default_value_t = ScalarArg::F64)]
        scalar: ScalarArg,
        /// The module's name (default: the problem's name as an identifier).
        #[arg(long)]
        name: Option<String>,
        /// Replace the generated module in a non-empty folder.
        #[arg(long)]
        force: bool,
        /// Where table rows come from: `const` (compiled in, the default),
        /// `ring` or `ring=CAPACITY` (a sample ring the firmware fills at run
        /// time; capacity default: the table's rows), for every table source,
        /// or for one with `SOURCE:` before it (`train:ring=64`). Repeatable;
        /// later choices override earlier ones.
        #[arg(long = "data", value_name = "[SOURCE:]const|ring[=CAPACITY]", value_parser = parse_data)]
        data: Vec<bilevel_dsl::DataChoice>,
    },
    /// Print a shell completion script.
    ///
    /// Example: `bilevel completions bash > ~/.local/share/bash-completion/completions/bilevel`
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// One `--data` value of `codegen`.
fn parse_data(s: &str) -> Result<bilevel_dsl::DataChoice, String> {
    s.parse()
}

/// The scalar type of `codegen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ScalarArg {
    /// Single precision (microcontrollers).
    F32,
    /// Double precision.
    F64,
}

/// Output formats of `check`, `run`, `compare` and `algorithms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// Human-readable.
    Text,
    /// JSON, for tools.
    Json,
}

/// Options shared by `run` and `compare`.
#[derive(Debug, clap::Args)]
struct RunOpts {
    /// Override a hyperparameter (repeatable), validated against the registry;
    /// `SOLVER:KEY=VALUE` applies to one solver of a comparison.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Outer iterations (at least 1); replaces the spec's iteration and epoch
    /// budgets (with `--epochs`, the run stops at whichever comes first).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    iterations: Option<u64>,
    /// Epochs (passes over the lower level's training data, at least 1);
    /// replaces the spec's iteration and epoch budgets.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    epochs: Option<u64>,
    /// Do not render plots.
    #[arg(long)]
    no_plots: bool,
    /// Output format of the result on stdout (progress stays on stderr).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Worker threads (0: one per core); default: the spec's
    /// `run { threads }`, else one per core. The results do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Reuse a run folder that holds an earlier run: its run files
    /// (config, trace, summary, expect, checkpoint, plots) are removed first;
    /// other files stay. A folder that is not a run folder is still refused.
    #[arg(long)]
    force: bool,
}

fn run_config(
    file: PathBuf,
    opts: RunOpts,
    algorithm: Option<String>,
    seed: Option<u64>,
    out: Option<PathBuf>,
) -> RunConfig {
    RunConfig {
        spec: file,
        algorithm,
        set: opts.set,
        seed,
        iterations: opts.iterations,
        epochs: opts.epochs,
        out,
        folder: if opts.force {
            FolderMode::Force
        } else {
            FolderMode::New
        },
        progress: ProgressMode::auto(),
        plots: !opts.no_plots,
        color: std::io::stderr().is_terminal(),
        threads: opts.threads,
    }
}

/// Exit code of a run or comparison ended by a stop signal (128 + its
/// number, as shells report it); its files are complete, with termination
/// `interrupted`.
fn interrupted() -> ExitCode {
    ExitCode::from(signals::exit_code(
        signals::received().unwrap_or(signals::SIGINT),
    ))
}

/// Says on stderr that a stop signal came after `what` had ended (after
/// its final checkpoint): its results and files are complete, and the exit
/// code is the one it would have had without the signal (decision 103).
fn note_late_signal(stop: &std::sync::atomic::AtomicBool, what: &str) {
    if stop.load(Ordering::SeqCst) {
        let sig = signals::name(signals::received().unwrap_or(signals::SIGINT));
        let line = format!(
            "note: {sig} arrived after {what} had ended: the results are complete and every \
             file was written; the exit code is the run's own\n"
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// `bilevel compare`, also `--resume DIR`: the report and the exit code.
fn compare(cmd: Command) -> anyhow::Result<(String, ExitCode)> {
    let Command::Compare {
        file,
        opts,
        algorithms,
        seeds,
        seed,
        out,
        resume,
    } = cmd
    else {
        anyhow::bail!("not a compare command");
    };
    let format = opts.format;
    let base = run_config(file.unwrap_or_default(), opts, None, seed, out);
    let cfg = CompareConfig {
        threads: base.threads,
        base,
        algorithms,
        seeds,
        resume,
    };
    let stop = bilevel_runner::compare::interrupt_flag()?;
    let o = bilevel_runner::spec::compare_spec(&cfg, &stop)?;
    // As for `run`: a signal after every run had ended interrupted nothing.
    let code = if o.interrupted > 0 {
        interrupted()
    } else {
        note_late_signal(&stop, "every run of the comparison");
        ExitCode::from(o.exit_code())
    };
    let text = match format {
        Format::Text => o.report(),
        Format::Json => serde_json::to_string_pretty(&o.json())? + "\n",
    };
    Ok((text, code))
}

/// `bilevel codegen`: the runner's thin command over the dsl facade.
fn codegen(cmd: Command) -> anyhow::Result<(String, ExitCode)> {
    let Command::Codegen {
        spec,
        out,
        scalar,
        name,
        force,
        data,
    } = cmd
    else {
        anyhow::bail!("not a codegen command");
    };
    let scalar = match scalar {
        ScalarArg::F32 => bilevel_dsl::Scalar::F32,
        ScalarArg::F64 => bilevel_dsl::Scalar::F64,
    };
    let color = std::io::stderr().is_terminal();
    let (text, ok) =
        bilevel_runner::codegen::run(&spec, &out, scalar, name.as_deref(), force, &data, color)?;
    Ok((
        text,
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    ))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut code = ExitCode::SUCCESS;
    let text = match cli.command {
        Command::Check { files, format } => {
            let (text, ok) = bilevel_runner::spec::check_files(
                &files,
                format == Format::Json,
                std::io::stdout().is_terminal(),
            )?;
            if !ok {
                code = ExitCode::FAILURE;
            }
            text
        }
        Command::Run {
            file,
            opts,
            algorithm,
            seed,
            out,
            resume,
            checkpoint_every,
        } => {
            let format = opts.format;
            let cfg = run_config(file.unwrap_or_default(), opts, algorithm, seed, out);
            let ck = bilevel_runner::spec::CheckpointSettings {
                every: checkpoint_every,
                resume,
            };
            let stop = bilevel_runner::compare::interrupt_flag()?;
            let o = bilevel_runner::spec::run_spec_with(&cfg, &ck, stop.clone())?;
            // A signal after the final checkpoint interrupted nothing: the
            // summary's termination decides (decision 103).
            if o.summary.termination == "interrupted" {
                code = interrupted();
            } else {
                code = ExitCode::from(exit::of_run(&o.summary.termination, o.expectations_hold()));
                note_late_signal(&stop, "the run");
            }
            match format {
                Format::Text => o.report(&o.spec),
                Format::Json => serde_json::to_string_pretty(&o.json(&o.spec))? + "\n",
            }
        }
        cmd @ Command::Compare { .. } => {
            let (text, c) = compare(cmd)?;
            code = c;
            text
        }
        Command::Algorithms { names, format } => {
            let solvers = bilevel_runner::report::select_solvers(&names)?;
            match format {
                Format::Text => bilevel_runner::algorithms_text(&solvers),
                Format::Json => {
                    let v: Vec<_> = solvers
                        .iter()
                        .map(|s| bilevel_runner::report::solver_json(s))
                        .collect();
                    serde_json::to_string_pretty(&v)? + "\n"
                }
            }
        }
        Command::Plot { runs, out } => {
            let table = bilevel_runner::plot_command(&runs, &out)?;
            format!("{table}\nplots and tables written to {}\n", out.display())
        }
        Command::Report {
            dir,
            out,
            format,
            no_plots,
        } => {
            let out = out.unwrap_or_else(|| bilevel_runner::sweepreport::default_out(&dir));
            bilevel_runner::sweepreport::report_command(
                &dir,
                &out,
                format == Format::Json,
                !no_plots,
            )?
        }
        Command::Best {
            dir,
            by,
            at,
            min,
            max,
            allow_test_metric,
            write_spec,
            out,
            format,
        } => bilevel_runner::best::cli(
            &dir,
            &by,
            &at,
            (min, max),
            allow_test_metric,
            write_spec.as_deref().zip(out.as_deref()),
            format == Format::Json,
        )?,
        Command::Sweep(args) => {
            let r = bilevel_runner::sweep::cli::run(&args)?;
            code = ExitCode::from(r.code);
            r.text
        }
        cmd @ Command::Codegen { .. } => {
            let (text, c) = codegen(cmd)?;
            code = c;
            if c == ExitCode::SUCCESS {
                text
            } else {
                // The diagnostics are errors: stderr, as `run` prints them.
                eprint!("{text}");
                String::new()
            }
        }
        Command::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "bilevel", &mut buf);
            String::from_utf8(buf)?
        }
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A closed pipe (`bilevel algorithms | head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(code),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(code),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let started = signals::file_size_limit_is_an_error()
        .and_then(|()| bilevel_runner::fault::check_fault())
        .and_then(|()| run(cli));
    match started {
        Ok(code) => code,
        Err(e) => {
            let msg = if let Some(spec) = e.downcast_ref::<bilevel_runner::spec::SpecErrors>() {
                format!("{}\n", spec.rendered.trim_end())
            } else if let Some(s) = e.downcast_ref::<bilevel_runner::sweep::SweepErrors>() {
                format!("{}\n", s.rendered.trim_end())
            } else {
                format!("error: {e:#}\n")
            };
            // A closed stderr leaves only the exit code; `eprintln!` would panic.
            let _ = std::io::stderr().lock().write_all(msg.as_bytes());
            ExitCode::from(exit::of_error(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn completions_mention_every_command() {
        let mut buf = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut super::Cli::command(),
            "bilevel",
            &mut buf,
        );
        let text = String::from_utf8(buf).unwrap();
        for cmd in [
            "check",
            "run",
            "compare",
            "algorithms",
            "plot",
            "report",
            "best",
            "sweep",
            "completions",
        ] {
            assert!(text.contains(cmd), "{cmd}");
        }
    }

    #[test]
    fn cli_definition_is_valid() {
        super::Cli::command().debug_assert();
    }
}
