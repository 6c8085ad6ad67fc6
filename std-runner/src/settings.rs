//! `--set` overrides on the command line: parsing, the solver they apply to
//! and validation against the registry.
//!
//! Nothing given on the command line is silently dropped: a `SOLVER:KEY=VALUE`
//! entry must name a solver of this run (`run`) or of `--algorithms`
//! (`compare`), a key may be set once per solver, and a value outside a
//! hyperparameter's range is refused with the range and, for `inf` or `nan`,
//! the reason that it must be finite.

use anyhow::{anyhow, bail, Result};
use bilevel_core::registry::{self, ParamKind, ParamValue, SolverInfo};
use bilevel_dsl::Setting;

/// Parses one `key=value` override into an owned setting: `true`/`false`,
/// an integer, a real (`inf` and `nan` are parsed, then refused by the range
/// check unless the hyperparameter admits them), or a name.
pub fn parse_setting(kv: &str) -> Result<(String, Setting)> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| anyhow!("--set `{kv}`: expected key=value"))?;
    let (k, v) = (k.trim(), v.trim());
    if k.is_empty() || v.is_empty() {
        bail!("--set `{kv}`: expected key=value");
    }
    let val = if v == "true" || v == "false" {
        Setting::Bool(v == "true")
    } else if let Ok(i) = v.parse::<i64>() {
        Setting::Int(i)
    } else if let Ok(r) = v.parse::<f64>() {
        Setting::Real(r)
    } else {
        Setting::Str(v.to_string())
    };
    Ok((k.to_string(), val))
}

/// The registry's view of a setting.
pub fn as_param(s: &Setting) -> ParamValue<'_> {
    match s {
        Setting::Real(v) => ParamValue::Real(*v),
        Setting::Int(v) => ParamValue::Int(*v),
        Setting::Bool(v) => ParamValue::Bool(*v),
        Setting::Str(v) => ParamValue::Str(v),
    }
}

/// Splits `SOLVER:KEY=VALUE` into the solver it names and `KEY=VALUE`;
/// `None` for a plain `KEY=VALUE` (which applies to every solver).
fn target(kv: &str) -> Result<(Option<&'static SolverInfo>, &str)> {
    match kv.split_once(':') {
        Some((solver, rest)) if !solver.contains('=') => {
            let names: Vec<&str> = registry::SOLVERS.iter().map(|s| s.name).collect();
            let info = registry::find(solver.trim()).ok_or_else(|| {
                anyhow!(
                    "--set {kv}: unknown algorithm `{solver}`; available: {}",
                    names.join(", ")
                )
            })?;
            Ok((Some(info), rest))
        }
        _ => Ok((None, kv)),
    }
}

/// The command-line overrides for `info`, one of the solvers `listed` (the
/// solver of a `run`, or every solver of a `compare`), validated against the
/// registry, in the order given.
///
/// Errors: a `SOLVER:` prefix naming an unknown solver or one not in
/// `listed` (the setting would do nothing); a key `info` does not have; a
/// value of the wrong type or out of range (non-finite reals are told to be
/// finite); a key set twice for `info` (`eta=…` and `slip:eta=…` count as
/// the same key of `slip`).
pub fn overrides(
    set: &[String],
    info: &SolverInfo,
    listed: &[&SolverInfo],
) -> Result<Vec<(String, Setting)>> {
    let mut out: Vec<(String, Setting, &str)> = Vec::new();
    for kv in set {
        let (solver, rest) = target(kv)?;
        if let Some(s) = solver {
            if !listed.iter().any(|l| l.name == s.name) {
                let names: Vec<&str> = listed.iter().map(|l| l.name).collect();
                bail!(
                    "--set {kv}: `{}` is not run here (solvers of this command: {}); \
                     the setting would do nothing",
                    s.name,
                    names.join(", ")
                );
            }
            if s.name != info.name {
                continue;
            }
        }
        let (k, v) = parse_setting(rest)?;
        let p = info.param(&k).ok_or_else(|| {
            let names: Vec<&str> = info.params.iter().map(|p| p.name).collect();
            anyhow!(
                "--set {kv}: `{}` has no hyperparameter `{k}`; it accepts: {}",
                info.name,
                names.join(", ")
            )
        })?;
        if let Err(e) = p.check(as_param(&v)) {
            match v {
                Setting::Real(r) if !r.is_finite() && matches!(p.kind, ParamKind::Real) => bail!(
                    "--set {kv}: `{k}` must be a finite number ({}), not {r}",
                    p.range
                ),
                _ => bail!("--set {kv}: {e}"),
            }
        }
        if let Some((_, _, first)) = out.iter().find(|(n, _, _)| *n == k) {
            bail!(
                "--set {first} and --set {kv} both set `{k}` of `{}`: give it once",
                info.name
            );
        }
        out.push((k, v, kv.as_str()));
    }
    Ok(out.into_iter().map(|(k, v, _)| (k, v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str) -> &'static SolverInfo {
        registry::find(name).unwrap()
    }

    fn set(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    fn err(v: &[&str], solver: &str, listed: &[&str]) -> String {
        let listed: Vec<&SolverInfo> = listed.iter().map(|n| info(n)).collect();
        format!(
            "{:#}",
            overrides(&set(v), info(solver), &listed).expect_err("an error")
        )
    }

    #[test]
    fn a_prefix_for_a_solver_not_run_is_refused() {
        let e = err(&["slip:eta=0.5"], "bo-rep", &["bo-rep"]);
        assert!(e.contains("`slip` is not run here"), "{e}");
        let e = err(&["soba:eta=0.5"], "bo-rep", &["bo-rep", "slip"]);
        assert!(e.contains("bo-rep, slip"), "{e}");
        let e = err(&["nosuch:eta=0.5"], "bo-rep", &["bo-rep"]);
        assert!(e.contains("unknown algorithm `nosuch`"), "{e}");
        // A prefix of a listed solver applies to that solver only.
        let listed = [info("bo-rep"), info("slip")];
        let s = set(&["slip:eta=0.5", "bo_rep:eta=0.25"]);
        let o = overrides(&s, info("slip"), &listed).unwrap();
        assert_eq!(o, vec![("eta".to_string(), Setting::Real(0.5))]);
        let o = overrides(&s, info("bo-rep"), &listed).unwrap();
        assert_eq!(o, vec![("eta".to_string(), Setting::Real(0.25))]);
    }

    #[test]
    fn a_key_set_twice_is_refused_whatever_the_spelling() {
        for pair in [
            ["eta=0.1", "eta=0.2"],
            ["eta=0.1", "slip:eta=0.2"],
            ["SLIP:eta=0.1", " eta =0.1"],
        ] {
            let e = err(&pair, "slip", &["slip"]);
            assert!(e.contains("both set `eta` of `slip`"), "{pair:?}: {e}");
        }
        // The same key for two different solvers is no repeat.
        let listed = [info("bo-rep"), info("slip")];
        let s = set(&["slip:eta=0.5", "bo-rep:eta=0.25"]);
        assert!(overrides(&s, info("slip"), &listed).is_ok());
    }

    #[test]
    fn non_finite_values_are_told_to_be_finite() {
        for v in ["inf", "-inf", "nan", "NaN", "infinity"] {
            let e = err(&[&format!("eta={v}")], "slip", &["slip"]);
            assert!(e.contains("must be a finite number"), "{v}: {e}");
            assert!(!e.contains("expected > 0"), "{v}: {e}");
        }
        // A finite value out of range keeps the range message.
        let e = err(&["eta=-1"], "slip", &["slip"]);
        assert!(e.contains("expected"), "{e}");
    }
}
