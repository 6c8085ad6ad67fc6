//! `bilevel-runner`: the library behind the `bilevel` command.
//!
//! Library first: every command is a function that tests call directly;
//! `main.rs` only parses arguments and prints.
#![forbid(unsafe_code)]

pub mod aggregate;
pub mod axis;
pub mod best;
pub mod checkpoint;
pub mod codegen;
pub mod compare;
pub mod evaluation;
pub mod exit;
pub mod fault;
pub mod groups;
pub mod iofault;
pub mod output;
pub mod plot;
pub mod preflight;
pub mod provenance;
pub mod report;
pub mod rnn;
pub mod runfolder;
pub mod session;
pub mod settings;
pub mod signals;
pub mod spec;
pub mod sweep;
pub mod sweepreport;
pub mod watch;
pub mod writespec;

use std::fmt::Write as _;

use bilevel_core::registry::{ParamKind, SolverInfo, SOLVERS};

/// Renders the solver registry as text: each solver's name, reference,
/// required oracles and hyperparameters with types, ranges and defaults.
pub fn algorithms_text(solvers: &[&SolverInfo]) -> String {
    let mut out = String::new();
    for (i, s) in solvers.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{} ({}): {}", s.name, s.title, s.summary);
        let _ = writeln!(out, "  reference: {}", s.reference);
        let oracles: Vec<&str> = s.oracles.iter().map(|o| o.name()).collect();
        let _ = writeln!(out, "  oracles:   {}", oracles.join(", "));
        let width = s.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
        for p in s.params {
            let kind = match p.kind {
                ParamKind::Choice(c) => c.join("|"),
                k => k.name().to_string(),
            };
            let _ = writeln!(
                out,
                "    {:<width$}  {:<8} default {:<10} {} ({})",
                p.name,
                kind,
                p.default.to_string(),
                p.doc,
                p.range
            );
        }
    }
    out
}

/// `bilevel plot`: reads run folders, writes overlay plots (one colour per
/// solver, a band for the spread over seeds) and the comparison table
/// (`table.md`, `table.csv`) into `out`. Returns the Markdown table.
pub fn plot_command(runs: &[std::path::PathBuf], out: &std::path::Path) -> anyhow::Result<String> {
    if runs.is_empty() {
        anyhow::bail!("no run folder given");
    }
    // The same folder twice would count as two seeds.
    let mut seen: Vec<(std::path::PathBuf, &std::path::PathBuf)> = Vec::new();
    for r in runs {
        let canon = std::fs::canonicalize(r).unwrap_or_else(|_| r.clone());
        if let Some((_, first)) = seen.iter().find(|(c, _)| *c == canon) {
            anyhow::bail!(
                "{} and {} are the same run folder: give each run once",
                first.display(),
                r.display()
            );
        }
        seen.push((canon, r));
    }
    let loaded = runs
        .iter()
        .map(|d| aggregate::load_run(d))
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    aggregate::plot_runs(out, &loaded)?;
    let rows = aggregate::table(&loaded);
    aggregate::write_table(out, &rows)?;
    Ok(aggregate::table_markdown(&rows))
}

/// The whole registry, rendered.
pub fn algorithms() -> String {
    algorithms_text(SOLVERS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_solver_and_parameter_is_listed() {
        let text = super::algorithms();
        for s in bilevel_core::registry::SOLVERS {
            assert!(text.contains(s.name), "{}", s.name);
            for p in s.params {
                assert!(text.contains(p.name), "{}.{}", s.name, p.name);
            }
        }
    }
}
