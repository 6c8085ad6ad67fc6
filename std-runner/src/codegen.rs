//! `bilevel codegen SPEC --out DIR`: a thin command over
//! [`bilevel_dsl::codegen`] that writes the generated `no_std` oracle module
//! to `DIR/NAME.rs` (docs/codegen.md).

use std::path::Path;

use anyhow::{bail, Context, Result};
use bilevel_dsl::{codegen, CodegenOptions, DataChoice, Scalar};

/// Generates the oracle of `spec` into `out` and returns the report, or the
/// rendered diagnostics with `false` (exit 1). A non-empty `out` is refused
/// unless `force`, which replaces only the module file. `data`: the
/// `--data` choices (const tables or run-time sample rings).
///
/// # Errors
/// The spec cannot be read, `out` is a file or not empty (without
/// `force`), or the module cannot be written.
pub fn run(
    spec: &Path,
    out: &Path,
    scalar: Scalar,
    name: Option<&str>,
    force: bool,
    data: &[DataChoice],
    color: bool,
) -> Result<(String, bool)> {
    let src =
        std::fs::read_to_string(spec).with_context(|| format!("cannot read {}", spec.display()))?;
    if out.exists() {
        if !out.is_dir() {
            bail!("{} exists and is not a folder", out.display());
        }
        let nonempty = std::fs::read_dir(out)
            .with_context(|| format!("cannot list {}", out.display()))?
            .next()
            .is_some();
        if nonempty && !force {
            bail!(
                "{} is not empty; choose an empty folder, or use --force to replace the generated module in it",
                out.display()
            );
        }
    }
    let opts = CodegenOptions {
        scalar,
        name: name.map(str::to_string),
        libm: false,
        data: data.to_vec(),
    };
    let g = match codegen(&src, spec, &opts) {
        Ok(g) => g,
        Err(diags) => {
            let shown = spec.display().to_string();
            return Ok((bilevel_dsl::render_with(&diags, &shown, &src, color), false));
        }
    };
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let file = out.join(format!("{}.rs", g.name));
    std::fs::write(&file, &g.code).with_context(|| format!("cannot write {}", file.display()))?;
    Ok((
        format!(
            "wrote {}: module `{}` ({}), x: {} and y: {} numbers\n  workspace {} B (largest sweep's buffers, on the stack while it runs), sampler state {} B, static tables (parameters, data) {} B{}\n  use: include!(\"{}.rs\"); then {}::Problem::new() implements the bilevel-core oracle traits\n",
            file.display(),
            g.name,
            scalar.name(),
            g.dim_x,
            g.dim_y,
            g.workspace_bytes,
            g.sampler_bytes,
            g.static_bytes,
            if g.ring_bytes > 0 {
                format!(", sample rings {} B (in Problem::rings, filled at run time)", g.ring_bytes)
            } else {
                String::new()
            },
            g.name,
            g.name
        ),
        true,
    ))
}
