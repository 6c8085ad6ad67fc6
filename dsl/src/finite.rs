//! The finite-sum view of a compiled spec, for SAGA-type solvers (SABA):
//! [`bilevel_core::solver::FiniteSum`] on [`Compiled`](crate::Compiled).
//!
//! A level is a finite sum when its objective is an average over the rows
//! of one data table, `c(x, y) + mean over s in T { body }` up to affine
//! combinations (sums, differences, scalings by terms that do not read the
//! data): then g = (1/n) Σᵢ Gᵢ with Gᵢ the objective on sample i. Sample i
//! of the level is the window of the source's `batch` rows starting at row
//! i, cyclically (rows i, i+1, …, i+b−1 mod n): every row lies in exactly b
//! windows, so the average over the n windows of the minibatch objective is
//! exactly the objective on the whole table, for any b ≤ n (b = 1 is the
//! paper's one sample per index). A level that reads no data is a finite sum
//! of one term. Anything else is refused with the reason, naming the level:
//! a synthetic source (fresh draws, an expectation), two tables, `sum over`,
//! a nested average over the same table, a non-affine function of the mean
//! (`log(mean over …)`), or a model's outputs used outside the average.

use bilevel_core::oracle::Level;

use crate::compiled::Program;
use crate::data::{Batch, SourceBatch};
use crate::tape::{Op, Tape};

/// One level's samples: the table and the window of rows of each sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiniteLevel {
    /// The data source the level averages over (`None`: the level reads no
    /// data, one sample).
    pub source: Option<usize>,
    /// Its rows: the number of samples (1 without a source).
    pub rows: usize,
    /// Rows per sample (the source's `batch`, at most `rows`).
    pub window: usize,
}

impl FiniteLevel {
    /// The number of samples (≥ 1).
    pub fn count(&self) -> usize {
        self.rows.max(1)
    }

    /// Sample `i`: rows i … i+window−1 (mod rows) of the source, the other
    /// sources unused.
    pub(crate) fn sample(&self, sources: usize, i: usize) -> Batch {
        let mut b = vec![SourceBatch::Unused; sources];
        if let Some(d) = self.source {
            let n = self.rows.max(1);
            let rows = (0..self.window).map(|k| (i + k) % n).collect();
            b[d] = SourceBatch::Rows(rows);
        }
        Batch { sources: b }
    }
}

/// Both levels' samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiniteSumLayout {
    /// The upper level's (f).
    pub upper: FiniteLevel,
    /// The lower level's (g).
    pub lower: FiniteLevel,
}

impl FiniteSumLayout {
    /// The level's samples.
    pub fn level(&self, level: Level) -> &FiniteLevel {
        match level {
            Level::Upper => &self.upper,
            Level::Lower => &self.lower,
        }
    }
}

/// The finite-sum layout of both levels, or why a level is not a finite sum
/// over a table (the message names the level).
pub(crate) fn layout(p: &Program) -> Result<FiniteSumLayout, String> {
    Ok(FiniteSumLayout {
        upper: level(p, &p.f, "upper level (f)")?,
        lower: level(p, &p.g, "lower level (g)")?,
    })
}

fn sources(t: &Tape, out: &mut Vec<usize>) {
    for n in &t.nodes {
        if let Op::Reduce { data, body, .. } = &n.op {
            if !out.contains(data) {
                out.push(*data);
            }
            sources(body, out);
        }
    }
}

fn level(p: &Program, t: &Tape, what: &str) -> Result<FiniteLevel, String> {
    let mut used = Vec::new();
    sources(t, &mut used);
    let defs = &p.spec.data;
    let name = |d: usize| defs.get(d).map_or("?", |d| d.name.as_str());
    let d = match used[..] {
        [] => {
            return Ok(FiniteLevel {
                source: None,
                rows: 1,
                window: 0,
            })
        }
        [d] => d,
        _ => {
            let names: Vec<String> = used.iter().map(|&d| format!("`{}`", name(d))).collect();
            return Err(format!(
                "the {what} averages over {} data sources ({}): a finite sum has one table per level",
                used.len(),
                names.join(", ")
            ));
        }
    };
    let Some(Some(table)) = p.loaded.tables.get(d) else {
        return Err(format!(
            "the {what} averages over `{}`, a synthetic source: its samples are fresh random draws (an expectation), not the rows of a finite table",
            name(d)
        ));
    };
    if table.rows == 0 {
        return Err(format!(
            "the {what} averages over `{}`, which has no rows",
            name(d)
        ));
    }
    affine(t, d, &format!("the {what}"), name(d))?;
    let batch = usize::try_from(defs[d].batch).unwrap_or(usize::MAX);
    Ok(FiniteLevel {
        source: Some(d),
        rows: table.rows,
        window: batch.clamp(1, table.rows),
    })
}

/// Checks that the tape's output is affine in its averages over source `d`.
fn affine(t: &Tape, d: usize, what: &str, name: &str) -> Result<(), String> {
    let mut dep = vec![false; t.nodes.len()];
    for (i, n) in t.nodes.iter().enumerate() {
        let args: Vec<bool> = n
            .args
            .iter()
            .map(|&a| dep.get(a).copied().unwrap_or(false))
            .collect();
        let k = args.iter().filter(|&&b| b).count();
        if let Some(&a) = n
            .args
            .iter()
            .find(|&&a| matches!(t.nodes.get(a).map(|m| &m.op), Some(Op::Model { .. })))
        {
            return Err(format!(
                "{what} uses the outputs of a model over `{name}` outside `mean over` (node %{a}): not a finite sum of per-row terms"
            ));
        }
        let linear = match &n.op {
            Op::Reduce { mean, body, .. } => {
                if !*mean {
                    return Err(format!(
                        "{what} is a `sum over` `{name}`: a finite sum needs `mean over` (a minibatch of a sum has another scale)"
                    ));
                }
                let mut inner = Vec::new();
                sources(body, &mut inner);
                if !inner.is_empty() {
                    return Err(format!(
                        "{what} nests averages over `{name}`: not a finite sum of per-row terms"
                    ));
                }
                let reads_dep = body.nodes.iter().any(|b| match b.op {
                    Op::Outer(q) => dep.get(q).copied().unwrap_or(false),
                    _ => false,
                });
                if reads_dep {
                    return Err(format!(
                        "{what} averages over `{name}` a term that reads another average over it: not a finite sum of per-row terms"
                    ));
                }
                dep[i] = true;
                continue;
            }
            Op::Model { data, .. } => {
                if *data != d {
                    return Err(format!(
                        "{what} runs a model over another data source than `{name}`: not a finite sum over one table"
                    ));
                }
                dep[i] = true;
                continue;
            }
            _ if k == 0 => continue,
            Op::Add | Op::Sub | Op::Neg | Op::Sum | Op::Mean | Op::Transpose => true,
            // Linear in the first argument only (an index or a divisor
            // that reads the data is not).
            Op::Index | Op::Div => args.first() == Some(&true) && k == 1,
            Op::Mul | Op::Dot | Op::MatMul { .. } => k == 1,
            _ => false,
        };
        if !linear {
            return Err(format!(
                "{what} applies `{}` to its average over `{name}`: not an affine function of the mean, so not a finite sum of per-row terms",
                op_name(&n.op)
            ));
        }
        dep[i] = true;
    }
    Ok(())
}

fn op_name(op: &Op) -> String {
    match op {
        Op::Unary(f) => f.name().to_string(),
        Op::Pow(p) => format!("^{p}"),
        other => {
            let s = format!("{other:?}").to_lowercase();
            s.split(['(', ' ', '{']).next().unwrap_or("").to_string()
        }
    }
}
