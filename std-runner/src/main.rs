//! The `bilevel` command. All logic lives in the library; this file parses
//! arguments, prints results to stdout and errors to stderr.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// Stochastic bilevel optimization: run and compare BO-REP, SLIP and baselines.
#[derive(Debug, Parser)]
#[command(name = "bilevel", version, about, arg_required_else_help = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the solvers: names, hyperparameters with defaults and ranges, oracles.
    Algorithms,
    /// Plot existing runs: one colour per solver, a band for the spread over seeds.
    ///
    /// Example: `bilevel plot runs/toy-bo-rep-s0 runs/toy-slip-s0 --out runs/plots`
    Plot {
        /// Run folders (each holding trace.jsonl, or trace.jsonl.part of a killed run).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Where to write the plots and table.md/table.csv.
        #[arg(long, default_value = "plots")]
        out: PathBuf,
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

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let text = match cli.command {
        Command::Algorithms => bilevel_runner::algorithms(),
        Command::Plot { runs, out } => {
            let table = bilevel_runner::plot_command(&runs, &out)?;
            format!("{table}\nplots and tables written to {}\n", out.display())
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
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(ExitCode::SUCCESS),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
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
        for cmd in ["algorithms", "plot", "completions"] {
            assert!(text.contains(cmd), "{cmd}");
        }
    }

    #[test]
    fn cli_definition_is_valid() {
        super::Cli::command().debug_assert();
    }
}
