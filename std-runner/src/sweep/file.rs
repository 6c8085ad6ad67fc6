//! The sweep file (TOML, docs/sweeps.md): parsing with spans, checks against
//! the registry, and the expansion into tasks in a stable order.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bilevel_core::registry::{self, ParamValue, SolverInfo};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::{Spanned, Value};

/// A checked sweep file, expanded.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The sweep file, absolute.
    pub path: PathBuf,
    /// Its text.
    pub source: String,
    /// SHA-256 of its text, hex.
    pub sha256: String,
    /// The tasks, by id.
    pub tasks: Vec<Task>,
}

/// The budgets of `[budget]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Outer iterations.
    pub iterations: Option<u64>,
    /// Epochs.
    pub epochs: Option<u64>,
    /// Gradient and product calls.
    pub oracle_calls: Option<u64>,
}

/// One task: a spec, a solver, the grid point's settings and a seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// Its id (its position in the expansion).
    pub id: usize,
    /// The spec, absolute.
    pub spec: PathBuf,
    /// The solver's registry name.
    pub solver: &'static str,
    /// The seed.
    pub seed: u64,
    /// The settings the sweep gives, in file order.
    pub set: Vec<(String, Value)>,
    /// Budget overrides.
    pub budget: Budget,
}

impl Task {
    /// The settings as `--set key=value` strings (reals in a form that reads
    /// back to the same bits).
    pub fn set_args(&self) -> Vec<String> {
        self.set
            .iter()
            .map(|(k, v)| match v {
                Value::Float(f) => format!("{k}={f:?}"),
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect()
    }
}

/// A map that keeps its keys' order and spans.
#[derive(Debug, Default)]
struct Ordered<V>(Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<Spanned<String>>()? {
                    out.push((k, m.next_value()?));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V2(std::marker::PhantomData))
    }
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    specs: Spanned<Vec<Spanned<String>>>,
    seeds: Spanned<Value>,
    #[serde(default)]
    budget: Option<Spanned<Budget>>,
    #[serde(default)]
    grid: Option<Ordered<Spanned<Value>>>,
    solvers: Spanned<Ordered<Ordered<Spanned<Value>>>>,
}

/// Errors found in a sweep file, rendered `FILE:LINE:COL: error: …` with the
/// source line and a caret.
#[derive(Debug)]
pub struct SweepErrors {
    /// The rendered diagnostics.
    pub rendered: String,
}

impl std::fmt::Display for SweepErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.rendered.trim_end())
    }
}

impl std::error::Error for SweepErrors {}

/// Collects diagnostics with their spans.
struct Diags<'a> {
    file: &'a Path,
    src: &'a str,
    out: String,
    n: usize,
}

impl Diags<'_> {
    fn error(&mut self, span: Option<Range<usize>>, msg: &str) {
        self.n += 1;
        let start = span.as_ref().map_or(0, |s| s.start.min(self.src.len()));
        let before = &self.src[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.src[line_start..start].chars().count() + 1;
        let _ = writeln!(
            self.out,
            "{}:{line}:{col}: error: {msg}",
            self.file.display()
        );
        if span.is_some() {
            let text = self.src[line_start..].lines().next().unwrap_or("");
            let width = span.map_or(1, |s| {
                self.src[start..s.end.min(self.src.len())]
                    .lines()
                    .next()
                    .map_or(1, |l| l.chars().count().max(1))
            });
            let _ = writeln!(
                self.out,
                "  | {text}\n  | {}{}",
                " ".repeat(col - 1),
                "^".repeat(width)
            );
        }
    }

    fn finish(self) -> Result<()> {
        if self.n == 0 {
            Ok(())
        } else {
            Err(SweepErrors { rendered: self.out }.into())
        }
    }
}

/// Reads, checks and expands the sweep file `path`.
pub fn load(path: &Path) -> Result<Sweep> {
    let source = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the sweep file {}", path.display()))?;
    let abs = crate::spec::absolute(path)?;
    let mut d = Diags {
        file: path,
        src: &source,
        out: String::new(),
        n: 0,
    };
    let raw: Raw = match toml::from_str(&source) {
        Ok(r) => r,
        Err(e) => {
            d.error(e.span(), e.message());
            d.finish()?;
            unreachable!("an error was recorded");
        }
    };
    let tasks = expand(&raw, &abs, &mut d);
    d.finish()?;
    Ok(Sweep {
        path: abs,
        sha256: format!("{:x}", Sha256::digest(source.as_bytes())),
        source,
        tasks,
    })
}

/// One swept or fixed hyperparameter of a solver.
struct Axis<'a> {
    key: &'a str,
    values: Vec<Value>,
}

fn expand(raw: &Raw, file: &Path, d: &mut Diags<'_>) -> Vec<Task> {
    let base = file.parent().unwrap_or_else(|| Path::new("."));
    let mut specs = Vec::new();
    if raw.specs.get_ref().is_empty() {
        d.error(
            Some(raw.specs.span()),
            "`specs` is empty: name at least one spec",
        );
    }
    for s in raw.specs.get_ref() {
        let p = base.join(s.get_ref());
        match std::fs::canonicalize(&p) {
            Ok(a) if a.is_file() => specs.push(a),
            _ => d.error(
                Some(s.span()),
                &format!(
                    "cannot find the spec {} (paths are relative to the sweep file)",
                    p.display()
                ),
            ),
        }
    }
    let seeds = seeds(&raw.seeds, d);
    let budget = raw.budget.as_ref().map_or_else(Budget::default, |b| {
        let v = *b.get_ref();
        for (name, x) in [
            ("iterations", v.iterations),
            ("epochs", v.epochs),
            ("oracle_calls", v.oracle_calls),
        ] {
            if x == Some(0) {
                d.error(
                    Some(b.span()),
                    &format!("`budget.{name}` must be at least 1"),
                );
            }
        }
        v
    });
    let solvers = solver_axes(raw, d);
    let mut tasks = Vec::new();
    for spec in &specs {
        for (info, axes) in &solvers {
            for point in product(axes) {
                for &seed in &seeds {
                    tasks.push(Task {
                        id: tasks.len(),
                        spec: spec.clone(),
                        solver: info.name,
                        seed,
                        set: point.clone(),
                        budget,
                    });
                }
            }
        }
    }
    tasks
}

/// `seeds = [..]` or `seeds = { first, count }`.
fn seeds(v: &Spanned<Value>, d: &mut Diags<'_>) -> Vec<u64> {
    let span = Some(v.span());
    let mut out: Vec<u64> = Vec::new();
    match v.get_ref() {
        Value::Array(a) => {
            for x in a {
                match x.as_integer().and_then(|i| u64::try_from(i).ok()) {
                    Some(s) if out.contains(&s) => {
                        d.error(span.clone(), &format!("seed {s} is listed twice"));
                    }
                    Some(s) => out.push(s),
                    None => d.error(
                        span.clone(),
                        &format!("seeds are non-negative integers, not `{x}`"),
                    ),
                }
            }
        }
        Value::Table(t) => {
            let get = |k: &str| {
                t.get(k)
                    .and_then(Value::as_integer)
                    .and_then(|i| u64::try_from(i).ok())
            };
            let unknown: Vec<&String> = t
                .keys()
                .filter(|k| *k != "first" && *k != "count")
                .collect();
            match (get("first"), get("count"), unknown.is_empty()) {
                (Some(f), Some(c), true) if c >= 1 && f.checked_add(c).is_some() => {
                    out.extend(f..f + c);
                }
                _ => d.error(
                    span.clone(),
                    "`seeds = { first = S, count = N }` takes two non-negative integers, N >= 1",
                ),
            }
        }
        other => d.error(
            span.clone(),
            &format!("`seeds` is a list of integers or {{ first, count }}, not `{other}`"),
        ),
    }
    if out.is_empty() && d.n == 0 {
        d.error(span, "`seeds` is empty: give at least one seed");
    }
    out
}

/// Each solver of `[solvers]` with its axes: `[grid]` keys it has, then its own.
fn solver_axes<'r>(raw: &'r Raw, d: &mut Diags<'_>) -> Vec<(&'static SolverInfo, Vec<Axis<'r>>)> {
    let mut out: Vec<(&'static SolverInfo, Vec<Axis<'r>>)> = Vec::new();
    let solvers = &raw.solvers.get_ref().0;
    if solvers.is_empty() {
        d.error(
            Some(raw.solvers.span()),
            "`[solvers]` is empty: name at least one solver, as `[solvers.slip]`",
        );
    }
    let grid = raw.grid.as_ref().map_or(&[][..], |g| &g.0[..]);
    for (name, keys) in solvers {
        let Some(info) = registry::find(name.get_ref()) else {
            let names: Vec<&str> = registry::SOLVERS.iter().map(|s| s.name).collect();
            d.error(
                Some(name.span()),
                &format!(
                    "unknown solver `{}`; available: {}",
                    name.get_ref(),
                    names.join(", ")
                ),
            );
            continue;
        };
        if out.iter().any(|(i, _)| i.name == info.name) {
            d.error(
                Some(name.span()),
                &format!("solver `{}` is listed twice", info.name),
            );
            continue;
        }
        let mut axes = Vec::new();
        for (k, v) in grid {
            if info.param(k.get_ref()).is_none() {
                continue;
            }
            if let Some((own, _)) = keys.0.iter().find(|(o, _)| o.get_ref() == k.get_ref()) {
                d.error(
                    Some(own.span()),
                    &format!(
                        "`{}` of `{}` is also in [grid]: give it in one place",
                        k.get_ref(),
                        info.name
                    ),
                );
                continue;
            }
            axes.push(axis(info, k, v, d));
        }
        for (k, v) in &keys.0 {
            if info.param(k.get_ref()).is_none() {
                let names: Vec<&str> = info.params.iter().map(|p| p.name).collect();
                d.error(
                    Some(k.span()),
                    &format!(
                        "`{}` has no hyperparameter `{}`; it accepts: {}",
                        info.name,
                        k.get_ref(),
                        names.join(", ")
                    ),
                );
                continue;
            }
            if axes
                .iter()
                .filter(|a: &&Axis<'_>| a.key == k.get_ref())
                .count()
                > 0
            {
                continue;
            }
            axes.push(axis(info, k, v, d));
        }
        out.push((info, axes));
    }
    for (k, _) in grid {
        let listed = solvers
            .iter()
            .filter_map(|(n, _)| registry::find(n.get_ref()));
        let users = listed.filter(|i| i.param(k.get_ref()).is_some()).count();
        if users == 0 {
            d.error(
                Some(k.span()),
                &format!(
                    "no solver of the sweep has a hyperparameter `{}`: the grid would do nothing",
                    k.get_ref()
                ),
            );
        }
    }
    out
}

/// The values of one key: a scalar, a list, or `{ log = [A, B], points = N }`,
/// each checked against the registry's range.
fn axis<'r>(
    info: &SolverInfo,
    key: &'r Spanned<String>,
    v: &Spanned<Value>,
    d: &mut Diags<'_>,
) -> Axis<'r> {
    let span = Some(v.span());
    let k = key.get_ref().as_str();
    let values: Vec<Value> = match v.get_ref() {
        Value::Array(a) => a.clone(),
        Value::Table(t) => match log_range(t) {
            Ok(vals) => vals,
            Err(msg) => {
                d.error(span, &format!("`{k}`: {msg}"));
                return Axis {
                    key: k,
                    values: Vec::new(),
                };
            }
        },
        scalar => vec![scalar.clone()],
    };
    if values.is_empty() {
        d.error(
            span.clone(),
            &format!(
                "`{k}` of `{}` has an empty list of values: the sweep would have no tasks",
                info.name
            ),
        );
    }
    let p = info.param(k).expect("checked by the caller");
    for (i, x) in values.iter().enumerate() {
        let pv = match x {
            Value::Integer(n) => ParamValue::Int(*n),
            Value::Float(f) => ParamValue::Real(*f),
            Value::Boolean(b) => ParamValue::Bool(*b),
            Value::String(s) => ParamValue::Str(s),
            other => {
                d.error(
                    span.clone(),
                    &format!("`{k}`: `{other}` is not a number, bool or name"),
                );
                continue;
            }
        };
        if let Err(e) = p.check(pv) {
            d.error(span.clone(), &format!("`{k}` of `{}`: {e}", info.name));
        }
        if values[..i].contains(x) {
            d.error(
                span.clone(),
                &format!("`{k}`: `{x}` is listed twice (its tasks would be the same run)"),
            );
        }
    }
    Axis { key: k, values }
}

/// `{ log = [A, B], points = N }`: N values from A to B, evenly spaced in log.
fn log_range(t: &toml::Table) -> Result<Vec<Value>, String> {
    const FORM: &str = "a range is `{ log = [A, B], points = N }` with 0 < A < B and N >= 2";
    if t.keys().any(|k| k != "log" && k != "points") {
        return Err(FORM.to_string());
    }
    let num = |v: &Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
    let ends = t
        .get("log")
        .and_then(Value::as_array)
        .filter(|a| a.len() == 2);
    let (Some(ends), Some(n)) = (ends, t.get("points").and_then(Value::as_integer)) else {
        return Err(FORM.to_string());
    };
    let (Some(a), Some(b)) = (num(&ends[0]), num(&ends[1])) else {
        return Err(FORM.to_string());
    };
    if !(a > 0.0 && b > a && b.is_finite() && n >= 2) || n > 10_000 {
        return Err(format!("{FORM} (at most 10000 points)"));
    }
    // libm, not the platform's: the same values on every machine of a cluster.
    let (la, lb) = (libm::log(a), libm::log(b));
    let last = (n - 1) as f64;
    Ok((0..n)
        .map(|i| {
            let v = match i {
                0 => a,
                i if i == n - 1 => b,
                i => libm::exp(la + (lb - la) * (i as f64 / last)),
            };
            Value::Float(v)
        })
        .collect())
}

/// Every combination of the axes' values, the last axis fastest.
fn product(axes: &[Axis<'_>]) -> Vec<Vec<(String, Value)>> {
    let mut out: Vec<Vec<(String, Value)>> = vec![Vec::new()];
    for a in axes {
        let mut next = Vec::with_capacity(out.len() * a.values.len());
        for p in &out {
            for v in &a.values {
                let mut q = p.clone();
                q.push((a.key.to_string(), v.clone()));
                next.push(q);
            }
        }
        out = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn load_text(dir: &Path, body: &str) -> Result<Sweep> {
        std::fs::write(dir.join("t.bilevel"), "").unwrap();
        let p = dir.join("s.toml");
        std::fs::write(&p, format!("specs = [\"t.bilevel\"]\n{body}")).unwrap();
        load(&p)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Any grid: the tasks are the full product, ids in order, the last
        /// key and then the seed varying fastest, and a second expansion is
        /// the same.
        #[test]
        fn the_expansion_is_the_ordered_product(
            counts in proptest::collection::vec(1usize..4, 1..4),
            seeds in 1usize..4,
            soba in any::<bool>(),
        ) {
            let keys = ["eta", "gamma", "nu"];
            let mut body = format!("seeds = {{ first = 7, count = {seeds} }}\n[solvers.slip]\n");
            for (k, n) in keys.iter().zip(&counts) {
                let vals: Vec<String> = (1..=*n).map(|i| format!("{:?}", i as f64 * 0.01)).collect();
                let _ = writeln!(body, "{k} = [{}]", vals.join(", "));
            }
            if soba {
                body += "[solvers.soba]\nstep_size = { log = [1e-3, 1e-1], points = 3 }\n";
            }
            let tmp = tempfile::tempdir().unwrap();
            let s = load_text(tmp.path(), &body).unwrap();
            let slip: usize = counts.iter().product::<usize>() * seeds;
            prop_assert_eq!(s.tasks.len(), slip + if soba { 3 * seeds } else { 0 });
            for (i, t) in s.tasks.iter().enumerate() {
                prop_assert_eq!(t.id, i);
                if i < slip {
                    prop_assert_eq!(t.solver, "slip");
                    prop_assert_eq!(t.seed, 7 + (i % seeds) as u64);
                    // Odometer digits, the last key fastest.
                    let mut rest = i / seeds;
                    for (k, n) in keys.iter().zip(&counts).rev() {
                        let (key, v) = t.set.iter().find(|(x, _)| x == k).unwrap();
                        prop_assert_eq!(key.as_str(), *k);
                        prop_assert_eq!(v, &Value::Float((rest % n + 1) as f64 * 0.01));
                        rest /= n;
                    }
                } else {
                    prop_assert_eq!(t.solver, "soba");
                }
            }
            let again = load(&s.path).unwrap();
            prop_assert_eq!(again.tasks, s.tasks);
        }
    }

    #[test]
    fn log_ranges_end_exactly_and_are_geometric() {
        let v = log_range(&toml::from_str("log = [0.001, 10.0]\npoints = 5").unwrap()).unwrap();
        let f: Vec<f64> = v.iter().map(|x| x.as_float().unwrap()).collect();
        assert_eq!(f[0].to_bits(), 0.001f64.to_bits());
        assert_eq!(f[4].to_bits(), 10.0f64.to_bits());
        for w in f.windows(2) {
            assert!((w[1] / w[0] - 10.0).abs() < 1e-12, "{f:?}");
        }
        for bad in [
            "log = [0.0, 1.0]\npoints = 3",
            "log = [1.0, 0.5]\npoints = 3",
            "log = [1.0, 2.0]\npoints = 1",
            "log = [1.0, 2.0]\npoints = 3\nx = 1",
        ] {
            assert!(log_range(&toml::from_str(bad).unwrap()).is_err(), "{bad}");
        }
    }
}
