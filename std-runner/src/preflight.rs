//! Budgets a run could never use up, refused before the run starts.
//!
//! - An epoch budget on a spec without data tables: its samples are
//!   synthetic, no epoch is ever counted, and the run would never end.
//! - A warm start longer than [`MAX_WARM_CALLS`] gradient calls (BO-REP's
//!   Epoch-SGD doubles its length `warm_epochs` times: `warm_epochs = 40`
//!   is ~4·2⁴⁰ steps), or longer than the run's whole oracle-call budget.
//!
//! The errors name where the budget came from: the flag, the `--set`, or the
//! spec's `run` block (file, line and column).

use std::path::Path;

use anyhow::{bail, Result};
use bilevel_core::registry::{ParamValue, SolverInfo};
use bilevel_dsl::Setting;

/// The longest warm start accepted, in gradient calls: 2³² ≈ 4.3·10⁹, a
/// day and a half at the 3.4·10⁴ calls per second measured for the toy
/// spec's warm start (debug build), and longer on real data
/// (docs/decisions.md).
pub const MAX_WARM_CALLS: u64 = 1 << 32;

/// Refuses an epoch budget on a spec whose lower level has no data table.
/// `flag`: the budget came from `--epochs` (else from the spec's `run`
/// block, found in `src` for its position).
pub fn check_epochs(
    epochs: Option<u64>,
    flag: bool,
    epochs_per_sample: f64,
    spec: &Path,
    src: &str,
) -> Result<()> {
    let Some(e) = epochs else {
        return Ok(());
    };
    if epochs_per_sample > 0.0 {
        return Ok(());
    }
    let why = "its lower level has no data table (the samples are synthetic), so no epoch \
               is ever counted and the run would never end; give an iteration budget \
               (--iterations, or `iterations` in the `run` block) instead";
    if flag {
        bail!(
            "--epochs {e}: {} cannot have an epoch budget: {why}",
            spec.display()
        );
    }
    let (line, col) = position_of_epochs(src).unwrap_or((1, 1));
    bail!(
        "{}:{line}:{col}: `epochs = {e}` in the `run` block: {why}",
        spec.display()
    );
}

/// The line and column of `epochs` inside the spec's `run` block.
fn position_of_epochs(src: &str) -> Option<(usize, usize)> {
    let mut in_run = false;
    for (i, line) in src.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let t = code.trim_start();
        if t.starts_with("run") && t[3..].trim_start().starts_with('{') {
            in_run = true;
        }
        if in_run {
            if let Some(c) = find_word(code, "epochs") {
                return Some((i + 1, c + 1));
            }
            if code.contains('}') && !t.starts_with("run") {
                in_run = false;
            }
        }
    }
    None
}

fn find_word(s: &str, w: &str) -> Option<usize> {
    s.match_indices(w).map(|(i, _)| i).find(|&i| {
        let before = s[..i].chars().next_back();
        let after = s[i + w.len()..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

/// A hyperparameter's value: the last setting, else the registry default.
fn value<'a>(
    info: &'a SolverInfo,
    settings: &'a [(String, Setting)],
    name: &str,
) -> Option<ParamValue<'a>> {
    if let Some((_, v)) = settings.iter().rev().find(|(k, _)| k == name) {
        return Some(match v {
            Setting::Real(r) => ParamValue::Real(*r),
            Setting::Int(i) => ParamValue::Int(*i),
            Setting::Bool(b) => ParamValue::Bool(*b),
            Setting::Str(s) => ParamValue::Str(s),
        });
    }
    info.param(name).map(|p| p.default)
}

fn int(v: Option<ParamValue<'_>>) -> u64 {
    match v {
        Some(ParamValue::Int(i)) => u64::try_from(i).unwrap_or(0),
        _ => 0,
    }
}

fn choice(v: Option<ParamValue<'_>>) -> &str {
    match v {
        Some(ParamValue::Str(s)) => s,
        _ => "",
    }
}

/// Gradient calls of the solver's warm start (`None` for solvers without
/// one), saturating at `u64::MAX`.
pub fn warm_start_calls(info: &SolverInfo, settings: &[(String, Setting)]) -> Option<u64> {
    let v = |n: &str| value(info, settings, n);
    match info.name {
        "bo-rep" => Some(match choice(v("warm_start")) {
            "none" => 0,
            "plain" => int(v("warm_len")),
            // Epochs of length T_1, 2·T_1, 4·T_1, …: T_1·(2^K0 − 1).
            _ => {
                let k = int(v("warm_epochs")).min(63) as u32;
                int(v("warm_len")).saturating_mul((1_u64 << k) - 1)
            }
        }),
        "slip" => Some(match choice(v("warm_start")) {
            "summed" => u64::from(int(v("warm_steps")) > 0),
            _ => int(v("warm_steps")),
        }),
        _ => None,
    }
}

/// Refuses a warm start that could not end: more than [`MAX_WARM_CALLS`]
/// calls, or more than the run's oracle-call budget.
pub fn check_warm_start(
    info: &SolverInfo,
    settings: &[(String, Setting)],
    oracle_calls: Option<u64>,
) -> Result<Option<u64>> {
    let Some(calls) = warm_start_calls(info, settings) else {
        return Ok(None);
    };
    let what = match info.name {
        "bo-rep" => "warm_len · (2^warm_epochs − 1)",
        _ => "warm_steps",
    };
    let given: Vec<String> = settings
        .iter()
        .filter(|(k, _)| k.starts_with("warm_"))
        .map(|(k, v)| format!("{k}={}", setting_text(v)))
        .collect();
    let given = if given.is_empty() {
        String::new()
    } else {
        format!(" ({})", given.join(", "))
    };
    if calls > MAX_WARM_CALLS {
        bail!(
            "{}: the warm start{given} would take {what} = {} gradient calls, more than the \
             {MAX_WARM_CALLS} accepted (it could not end in any reasonable time); lower {}",
            info.name,
            if calls == u64::MAX {
                "more than 1.8e19".to_string()
            } else {
                calls.to_string()
            },
            if info.name == "bo-rep" {
                "warm_epochs or warm_len"
            } else {
                "warm_steps"
            }
        );
    }
    if let Some(budget) = oracle_calls {
        if calls > budget {
            bail!(
                "{}: the warm start{given} takes {calls} gradient calls, more than the run's \
                 whole budget of {budget} oracle calls: no iteration would run",
                info.name
            );
        }
    }
    Ok(Some(calls))
}

fn setting_text(v: &Setting) -> String {
    match v {
        Setting::Real(r) => r.to_string(),
        Setting::Int(i) => i.to_string(),
        Setting::Bool(b) => b.to_string(),
        Setting::Str(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use bilevel_core::registry;

    use super::*;

    fn set(k: &str, v: Setting) -> Vec<(String, Setting)> {
        vec![(k.to_string(), v)]
    }

    #[test]
    fn warm_start_lengths_match_the_solvers() {
        let borep = registry::find("bo-rep").unwrap();
        // Defaults: T_1 = 4, K0 = 3: 4 + 8 + 16.
        assert_eq!(warm_start_calls(borep, &[]), Some(28));
        let e = check_warm_start(borep, &set("warm_epochs", Setting::Int(40)), None).unwrap_err();
        assert!(format!("{e}").contains("warm_epochs=40"), "{e}");
        assert!(check_warm_start(borep, &set("warm_epochs", Setting::Int(20)), None).is_ok());
        let e = check_warm_start(borep, &[], Some(10)).unwrap_err();
        assert!(format!("{e}").contains("budget of 10"), "{e}");
        let slip = registry::find("slip").unwrap();
        assert_eq!(
            warm_start_calls(slip, &set("warm_steps", Setting::Int(7))),
            Some(7)
        );
        let e = check_warm_start(slip, &set("warm_steps", Setting::Int(i64::MAX)), None);
        assert!(e.is_err());
        assert_eq!(warm_start_calls(registry::find("soba").unwrap(), &[]), None);
    }

    #[test]
    fn epochs_on_synthetic_data_name_the_run_block() {
        let src =
            "bilevel \"t\" version 1\n// run { epochs = 1 }\nrun {\n  seed = 1\n  epochs = 3\n}\n";
        let e = check_epochs(Some(3), false, 0.0, Path::new("t.bilevel"), src).unwrap_err();
        assert!(
            format!("{e}").starts_with("t.bilevel:5:3: `epochs = 3`"),
            "{e}"
        );
        let e = check_epochs(Some(3), true, 0.0, Path::new("t.bilevel"), src).unwrap_err();
        assert!(format!("{e}").starts_with("--epochs 3:"), "{e}");
        assert!(check_epochs(Some(3), true, 0.01, Path::new("t.bilevel"), src).is_ok());
        assert!(check_epochs(None, true, 0.0, Path::new("t.bilevel"), src).is_ok());
    }
}
