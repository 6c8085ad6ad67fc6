//! The `bilevel` command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Stochastic bilevel optimization: run and compare BO-REP, SLIP and baselines.
#[derive(Debug, Parser)]
#[command(name = "bilevel", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the solvers: names, hyperparameters with defaults and ranges, oracles.
    Algorithms,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Algorithms => print!("{}", bilevel_runner::algorithms()),
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        super::Cli::command().debug_assert();
    }
}
