//! Which runs are averaged together: runs of one problem (the spec's
//! SHA-256), one solver and one set of hyperparameters, as their
//! `config.json` records them. Runs of different problems that share a
//! solver name are never one curve or one table row; when a plot or table
//! mixes problems or settings, each group's label says which it is.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::aggregate::RunTrace;

/// What identifies a run's configuration, read from its `config.json`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunIdentity {
    /// The problem's name (`bilevel "NAME"`).
    pub problem: String,
    /// The spec's SHA-256.
    pub spec_sha256: String,
    /// Every hyperparameter as resolved, `key=value`, in the file's order.
    pub hyperparameters: Vec<String>,
}

/// Reads the identity of a run folder from its `config.json`; `None` when
/// the folder has none (a run of an older version, or files copied by hand).
pub fn read_identity(dir: &Path) -> Result<Option<RunIdentity>> {
    let p = dir.join("config.json");
    if !p.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?;
    let v: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a run configuration", p.display()))?;
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let hyperparameters = v
        .get("hyperparameters")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, x)| format!("{k}={x}")).collect())
        .unwrap_or_default();
    Ok(Some(RunIdentity {
        problem: text("problem"),
        spec_sha256: text("spec_sha256"),
        hyperparameters,
    }))
}

/// The key runs are grouped by: spec hash, solver, hyperparameters.
fn key(r: &RunTrace) -> (Option<&str>, &str, Option<&[String]>) {
    (
        r.identity.as_ref().map(|i| i.spec_sha256.as_str()),
        r.solver.as_str(),
        r.identity.as_ref().map(|i| i.hyperparameters.as_slice()),
    )
}

/// Groups runs by problem (spec hash), solver and hyperparameters, in order
/// of first appearance, each with its label: the solver's name, then
/// ` @ PROBLEM` when the runs span more than one problem (with the hash's
/// first 8 digits when two specs share a name), then the hyperparameters
/// that differ between groups of one solver and problem.
pub fn by_group(runs: &[RunTrace]) -> Vec<(String, Vec<&RunTrace>)> {
    let mut groups: Vec<Vec<&RunTrace>> = Vec::new();
    for r in runs {
        match groups.iter_mut().find(|g| key(g[0]) == key(r)) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    let mut specs: Vec<Option<&str>> = groups.iter().map(|g| key(g[0]).0).collect();
    specs.sort_unstable();
    specs.dedup();
    let mixed_problems = specs.len() > 1;
    let problem = |r: &RunTrace| -> String {
        let Some(id) = &r.identity else {
            return "unknown problem".to_string();
        };
        let same_name = runs.iter().any(|o| {
            o.identity
                .as_ref()
                .is_some_and(|j| j.problem == id.problem && j.spec_sha256 != id.spec_sha256)
        });
        if same_name {
            let short: String = id.spec_sha256.chars().take(8).collect();
            format!("{} #{short}", id.problem)
        } else {
            id.problem.clone()
        }
    };
    let labels: Vec<String> = groups
        .iter()
        .map(|g| {
            let r = g[0];
            let mut label = r.solver.clone();
            if mixed_problems {
                label = format!("{label} @ {}", problem(r));
            }
            // Hyperparameters that differ from another group of the same
            // problem and solver.
            let (spec, solver, hyper) = key(r);
            let mine = hyper.unwrap_or_default();
            let mut differ: Vec<&String> = Vec::new();
            for o in &groups {
                let (s2, v2, h2) = key(o[0]);
                if s2 == spec && v2 == solver && h2 != hyper {
                    let theirs = h2.unwrap_or_default();
                    differ.extend(mine.iter().filter(|kv| !theirs.contains(kv)));
                }
            }
            differ.sort_unstable();
            differ.dedup();
            if !differ.is_empty() {
                let list: Vec<&str> = differ.iter().map(|s| s.as_str()).collect();
                label = format!("{label} [{}]", list.join(", "));
            }
            label
        })
        .collect();
    labels.into_iter().zip(groups).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(solver: &str, problem: &str, hash: &str, eta: &str) -> RunTrace {
        RunTrace {
            solver: solver.into(),
            summary: None,
            records: Vec::new(),
            expect: None,
            identity: Some(RunIdentity {
                problem: problem.into(),
                spec_sha256: hash.into(),
                hyperparameters: vec![format!("eta={eta}"), "beta=0.9".into()],
            }),
        }
    }

    fn labels(runs: &[RunTrace]) -> Vec<(String, usize)> {
        by_group(runs)
            .into_iter()
            .map(|(l, g)| (l, g.len()))
            .collect()
    }

    #[test]
    fn one_problem_and_setting_keeps_plain_solver_names() {
        let runs = [
            run("bo-rep", "toy", "aa", "0.1"),
            run("slip", "toy", "aa", "0.1"),
            run("bo-rep", "toy", "aa", "0.1"),
        ];
        assert_eq!(labels(&runs), [("bo-rep".into(), 2), ("slip".into(), 1)]);
    }

    #[test]
    fn problems_sharing_a_solver_are_not_averaged() {
        let runs = [
            run("bo-rep", "toy", "aa", "0.1"),
            run("bo-rep", "hyper_cleaning", "bb", "0.1"),
            run("bo-rep", "toy", "aa", "0.1"),
        ];
        assert_eq!(
            labels(&runs),
            [
                ("bo-rep @ toy".into(), 2),
                ("bo-rep @ hyper_cleaning".into(), 1)
            ]
        );
        // Two versions of one spec (same name, other text): the hash tells.
        let runs = [
            run("slip", "toy", "aa11223344", "0.1"),
            run("slip", "toy", "bb55667788", "0.1"),
        ];
        assert_eq!(
            labels(&runs),
            [
                ("slip @ toy #aa112233".into(), 1),
                ("slip @ toy #bb556677".into(), 1)
            ]
        );
        // A folder without config.json is a group of its own.
        let mut old = run("slip", "toy", "aa", "0.1");
        old.identity = None;
        let runs = [run("slip", "toy", "aa", "0.1"), old];
        assert_eq!(
            labels(&runs),
            [
                ("slip @ toy".into(), 1),
                ("slip @ unknown problem".into(), 1)
            ]
        );
    }

    #[test]
    fn other_hyperparameters_are_other_groups_named_by_the_difference() {
        let runs = [
            run("slip", "toy", "aa", "0.1"),
            run("slip", "toy", "aa", "0.02"),
            run("bo-rep", "toy", "aa", "0.02"),
        ];
        assert_eq!(
            labels(&runs),
            [
                ("slip [eta=0.1]".into(), 1),
                ("slip [eta=0.02]".into(), 1),
                ("bo-rep".into(), 1)
            ]
        );
    }
}
