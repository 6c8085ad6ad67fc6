//! `bilevel best … --write-spec SPEC --out NEW.bilevel`: the winners written
//! back as the spec's `algorithm` blocks. A solver's block keeps its other
//! entries; the swept keys take the winner's values (added when the block
//! lacks them); a solver without a block gets one after the last
//! `algorithm` block (else before `run`, else at the end). The new file must
//! pass `bilevel check`, or nothing is written.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use bilevel_dsl::ast::{DeclKind, Opts};
use serde_json::Value;

/// A hyperparameter value in the language's literal syntax.
fn literal(v: &Value) -> String {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:?}"),
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        Value::String(s) => match s.as_str() {
            "inf" | "-inf" | "nan" => s.clone(),
            _ => format!("{s:?}"),
        },
        other => other.to_string(),
    }
}

/// Edits of one existing block: each swept key's value replaced in place,
/// keys the block lacks appended after its last entry.
fn block_edits(o: &Opts, set: &[(String, Value)], edits: &mut Vec<(usize, usize, String)>) {
    let mut extra: Vec<String> = Vec::new();
    for (k, v) in set {
        match o.entries.iter().find(|(n, _)| n.name == *k) {
            Some((_, old)) => edits.push((old.span.start, old.span.end, literal(v))),
            None => extra.push(format!("{k} = {}", literal(v))),
        }
    }
    if extra.is_empty() {
        return;
    }
    match o.entries.last() {
        Some((_, last)) => edits.push((
            last.span.end,
            last.span.end,
            format!(", {}", extra.join(", ")),
        )),
        None => edits.push((
            o.span.start,
            o.span.end,
            format!("{{ {} }}", extra.join(", ")),
        )),
    }
}

fn new_block(solver: &str, set: &[(String, Value)]) -> String {
    let body: Vec<String> = set
        .iter()
        .map(|(k, v)| format!("{k} = {}", literal(v)))
        .collect();
    format!(
        "algorithm {} {{ {} }}\n",
        solver.replace('-', "_"),
        body.join(", ")
    )
}

/// The spec's text with `winners` (solver → keys and values) written into
/// its `algorithm` blocks.
pub fn rewrite(src: &str, winners: &BTreeMap<String, Vec<(String, Value)>>) -> Result<String> {
    let file = bilevel_dsl::parse(src).map_err(|d| {
        anyhow::anyhow!(
            "the spec does not parse ({} diagnostics): run `bilevel check` on it",
            d.len()
        )
    })?;
    // (start, end, replacement), applied back to front.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    let mut after_algo: Option<usize> = None;
    let mut before_run: Option<usize> = None;
    for d in &file.decls {
        match &d.kind {
            DeclKind::Algorithm(a) => {
                after_algo = Some(d.span.end);
                let name = a.name.name.replace('_', "-");
                if let Some((solver, set)) = winners.get_key_value(&name) {
                    block_edits(&a.opts, set, &mut edits);
                    done.push(solver);
                }
            }
            DeclKind::Run(_) => {
                before_run.get_or_insert(d.span.start);
            }
            _ => {}
        }
    }
    let mut new_blocks = String::new();
    for (solver, set) in winners {
        // A solver with nothing swept keeps the spec's block, or none.
        if !done.contains(&solver.as_str()) && !set.is_empty() {
            new_blocks.push_str(&new_block(solver, set));
        }
    }
    if !new_blocks.is_empty() {
        match (after_algo, before_run) {
            (Some(p), _) => edits.push((p, p, format!("\n{}", new_blocks.trim_end()))),
            (None, Some(p)) => edits.push((p, p, format!("{new_blocks}\n"))),
            (None, None) => edits.push((src.len(), src.len(), format!("\n{new_blocks}"))),
        }
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut out = src.to_string();
    for (s, e, t) in edits {
        out.replace_range(s..e, &t);
    }
    Ok(out)
}

/// Writes the rewritten spec to `out` after checking it; refuses to
/// overwrite an existing file or the spec itself.
pub fn write_spec(
    spec: &Path,
    out: &Path,
    winners: &BTreeMap<String, Vec<(String, Value)>>,
) -> Result<String> {
    if out.exists() {
        bail!(
            "{} exists: choose a new file (the spec is never overwritten)",
            out.display()
        );
    }
    let src =
        std::fs::read_to_string(spec).with_context(|| format!("cannot read {}", spec.display()))?;
    let text = rewrite(&src, winners)?;
    // Checked from a temporary file beside `out`, so relative data paths
    // resolve as they will for the written spec.
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.check.bilevel",
        out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, &text).with_context(|| format!("cannot write {}", tmp.display()))?;
    let checked = crate::spec::check_files(std::slice::from_ref(&tmp), false, false);
    let _ = std::fs::remove_file(&tmp);
    let (report, ok) = checked?;
    if !ok {
        bail!("the spec with the winners does not check, nothing written:\n{report}");
    }
    crate::output::write_atomic(out, text.as_bytes())?;
    Ok(text)
}
