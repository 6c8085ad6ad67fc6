//! What a run was made of, beyond the spec text: the SHA-256 of every data
//! file the spec reads (tables, vocabularies, a model's word vectors), and
//! the runner's own refusals of settings that the language accepts but the
//! runner could not honour.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use bilevel_dsl::Cmp;
use bilevel_dsl::{Code, Diagnostic};
use bilevel_dsl::{SourceKind, Spec};
use sha2::{Digest, Sha256};

/// The files a spec reads, as written in it (relative to the spec's
/// folder), each once, in the order they appear: data tables, vocabularies
/// of text columns, and model options that name an existing file (such as
/// an RNN's `vectors`).
pub fn data_files(spec: &Spec, base: &Path) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |p: &str| {
        if !out.iter().any(|q| q == p) {
            out.push(p.to_string());
        }
    };
    for d in &spec.data {
        if let SourceKind::Table { path, .. } = &d.kind {
            add(path);
        }
        if let Some(t) = &d.text {
            add(&t.vocab);
        }
    }
    for m in &spec.models {
        for (_, value, _) in &m.options {
            if base.join(value).is_file() {
                add(value);
            }
        }
    }
    out
}

/// The SHA-256 (hex) of each of [`data_files`], keyed by the path as
/// written in the spec. The bytes hashed are the file's as stored (a
/// `.gz` file's compressed bytes).
pub fn data_sha256(spec: &Spec, base: &Path) -> Result<BTreeMap<String, String>> {
    data_files(spec, base)
        .into_iter()
        .map(|p| {
            let full = base.join(&p);
            let mut f = std::fs::File::open(&full)
                .with_context(|| format!("cannot read {} to hash it", full.display()))?;
            let mut h = Sha256::new();
            std::io::copy(&mut f, &mut h)
                .with_context(|| format!("cannot read {} to hash it", full.display()))?;
            Ok((p, format!("{:x}", h.finalize())))
        })
        .collect()
}

/// Diagnostics for what the language accepts but no run can honour: an
/// `expect` tolerance that is negative or not finite (`tol -1` would make
/// `~=` fail whatever the result, and `>=`/`<=` move the bound the wrong
/// way). They are errors: `check` and `run` refuse the spec.
pub fn refusals(spec: &Spec) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for e in &spec.expects {
        if !(e.tol >= 0.0 && e.tol.is_finite()) {
            let what = match e.cmp {
                Cmp::Approx => "`~=` would fail whatever the result",
                Cmp::Ge | Cmp::Le => "it would move the bound the wrong way",
            };
            out.push(
                Diagnostic::new(
                    Code::E0407,
                    format!("the tolerance of `{}` is {}: {what}", e.text, e.tol),
                    e.span,
                    "this expectation",
                )
                .with_help("a tolerance is a finite number >= 0, e.g. `tol 1e-2`"),
            );
        }
    }
    out
}
