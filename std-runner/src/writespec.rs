//! `bilevel best … --write-spec SPEC --out NEW.bilevel`: the winners written
//! back as the spec's `algorithm` blocks. A solver's block keeps its other
//! entries; the swept keys take the winner's values (added when the block
//! lacks them); a solver without a block gets one after the last
//! `algorithm` block (else at the end). The new file must
//! pass `bilevel check`, or nothing is written.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use bilevel_dsl::Setting;
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

/// A checked setting in the language's literal syntax.
fn setting_literal(v: &Setting) -> String {
    match v {
        Setting::Real(f) if f.is_infinite() && *f > 0.0 => "inf".into(),
        Setting::Real(f) => format!("{f:?}"),
        Setting::Int(i) => i.to_string(),
        Setting::Bool(b) => b.to_string(),
        Setting::Str(s) => format!("{s:?}"),
    }
}

fn block(solver: &str, entries: &[(String, String)]) -> String {
    let body: Vec<String> = entries.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!(
        "algorithm {} {{ {} }}",
        solver.replace('-', "_"),
        body.join(", ")
    )
}

/// The spec's text with `winners` (solver → keys and values) written into
/// its `algorithm` blocks: a solver's block is rewritten on one line with
/// its settings as written and the swept keys' new values (appended when
/// the block lacks them); a solver without a block gets one after the last
/// `algorithm` block, else at the end.
pub fn rewrite(src: &str, winners: &BTreeMap<String, Vec<(String, Value)>>) -> Result<String> {
    let spec = bilevel_dsl::check_source(src).map_err(|d| {
        anyhow::anyhow!(
            "the spec does not check ({} diagnostics): run `bilevel check` on it",
            d.len()
        )
    })?;
    // (start, end, replacement), applied back to front.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut done: Vec<&str> = Vec::new();
    let mut after_algo: Option<usize> = None;
    for a in &spec.algorithms {
        let (s, e) = (a.span.start, a.span.end);
        if !src.get(s..e).is_some_and(|t| t.starts_with("algorithm")) {
            bail!(
                "cannot locate the `algorithm {}` block in the spec",
                a.info.name
            );
        }
        after_algo = Some(after_algo.map_or(e, |p: usize| p.max(e)));
        let Some((solver, set)) = winners.get_key_value(a.info.name) else {
            continue;
        };
        done.push(solver);
        if set.is_empty() {
            continue;
        }
        let mut entries: Vec<(String, String)> = a
            .settings
            .iter()
            .map(|(k, v)| (k.clone(), setting_literal(v)))
            .collect();
        for (k, v) in set {
            match entries.iter_mut().find(|(n, _)| n == k) {
                Some(x) => x.1 = literal(v),
                None => entries.push((k.clone(), literal(v))),
            }
        }
        edits.push((s, e, block(solver, &entries)));
    }
    let mut new_blocks = String::new();
    for (solver, set) in winners {
        // A solver with nothing swept keeps the spec's block, or none.
        if !done.contains(&solver.as_str()) && !set.is_empty() {
            let entries: Vec<(String, String)> =
                set.iter().map(|(k, v)| (k.clone(), literal(v))).collect();
            new_blocks.push('\n');
            new_blocks.push_str(&block(solver, &entries));
        }
    }
    if !new_blocks.is_empty() {
        match after_algo {
            Some(p) => edits.push((p, p, new_blocks)),
            None => edits.push((src.len(), src.len(), format!("{new_blocks}\n"))),
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
