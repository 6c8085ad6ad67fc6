//! Blocks and settings: `algorithm` blocks against the core's registry, the
//! `run` block and its metrics, and `expect` blocks.

use std::collections::HashMap;

use bilevel_core::registry;

use crate::ast::{Cmp, LevelKind, Opts, Span, Value, ValueKind};
use crate::diag::did_you_mean;
use crate::hir::{AlgoDef, ExpectDef, ExpectTarget, Hir, HirKind, RunDef, Setting, SourceKind};

use super::{errors, Checker, Def};

impl Checker<'_> {
    pub(super) fn algorithm(&mut self, a: &crate::ast::AlgoBlock, span: Span) -> Option<AlgoDef> {
        let Some(info) = registry::find(&a.name.name) else {
            let names: Vec<&str> = registry::SOLVERS.iter().map(|s| s.name).collect();
            let norm = a.name.name.replace('_', "-");
            let similar = did_you_mean(&norm, names.iter().copied());
            let d = errors::unknown_algorithm(&a.name.name, a.name.span, similar, &names);
            self.err(d);
            return None;
        };
        let mut settings: Vec<(String, Setting)> = Vec::new();
        let mut seen: HashMap<&str, Span> = HashMap::new();
        let mut ok = true;
        for (k, v) in &a.opts.entries {
            if let Some(first) = seen.get(k.name.as_str()) {
                let d = errors::set_twice(&k.name, k.span, *first);
                self.err(d);
                ok = false;
                continue;
            }
            seen.insert(&k.name, k.span);
            let Some(p) = info.param(&k.name) else {
                let names: Vec<&str> = info.params.iter().map(|p| p.name).collect();
                let similar = did_you_mean(&k.name, names.iter().copied());
                let owner = registry::SOLVERS
                    .iter()
                    .find(|s| s.name != info.name && s.param(&k.name).is_some())
                    .map(|s| s.name);
                let d = errors::unknown_hyperparameter(
                    info.name, &names, &k.name, k.span, similar, owner,
                );
                self.err(d);
                ok = false;
                continue;
            };
            let setting = match &v.kind {
                ValueKind::Num { value, int: true } if value.abs() < 9.0e15 => {
                    Setting::Int(*value as i64)
                }
                ValueKind::Num { value, .. } => Setting::Real(*value),
                ValueKind::Bool(b) => Setting::Bool(*b),
                ValueKind::Str(s) => Setting::Str(s.clone()),
                ValueKind::Path(p) => {
                    let s = p.to_string();
                    if s == "inf" {
                        Setting::Real(f64::INFINITY)
                    } else {
                        Setting::Str(s)
                    }
                }
                _ => {
                    let d = errors::setting_wrong_type(p, v.span);
                    self.err(d);
                    ok = false;
                    continue;
                }
            };
            if let Err(e) = p.check(setting.as_param()) {
                let expected = match e {
                    bilevel_core::Error::WrongType { expected, .. } => expected,
                    _ => p.range,
                };
                let d = errors::setting_invalid(p, info.name, &e, expected, v.span);
                self.err(d);
                ok = false;
                continue;
            }
            settings.push((k.name.clone(), setting));
        }
        ok.then_some(AlgoDef {
            info,
            settings,
            span,
        })
    }

    pub(super) fn run_block(&mut self, o: &Opts) -> RunDef {
        const KEYS: &[&str] = &[
            "iterations",
            "epochs",
            "oracle_calls",
            "seed",
            "eval_every",
            "log",
            "threads",
            "metrics",
            "stationarity_tol",
        ];
        let mut r = RunDef::default();
        for (k, v) in &o.entries {
            let int = |v: &Value| match v.kind {
                ValueKind::Num { value, int: true } if (0.0..1.8e19).contains(&value) => {
                    Some(value as u64)
                }
                _ => None,
            };
            let bad = |this: &mut Self, what: &str| {
                let d = errors::run_setting_type(&k.name, what, v.span);
                this.err(d);
            };
            match k.name.as_str() {
                "iterations" | "epochs" | "oracle_calls" | "seed" | "eval_every" | "threads" => {
                    let Some(n) = int(v) else {
                        bad(self, "a whole number");
                        continue;
                    };
                    if n == 0 && k.name != "seed" {
                        bad(self, "a whole number >= 1");
                        continue;
                    }
                    match k.name.as_str() {
                        "iterations" => r.iterations = Some(n),
                        "epochs" => r.epochs = Some(n),
                        "oracle_calls" => r.oracle_calls = Some(n),
                        "seed" => r.seed = Some(n),
                        "eval_every" => r.eval_every = Some(n),
                        _ => r.threads = Some(n),
                    }
                }
                "stationarity_tol" => match v.kind {
                    ValueKind::Num { value, .. } if value > 0.0 && value <= 1e-2 => {
                        r.stationarity_tol = Some(value);
                    }
                    _ => bad(self, "a number in (0, 1e-2]"),
                },
                "log" => match &v.kind {
                    ValueKind::Str(s) => r.log = Some(s.clone()),
                    _ => bad(self, "a string"),
                },
                "metrics" => match &v.kind {
                    ValueKind::List(items) => {
                        for i in items {
                            let name = match &i.kind {
                                ValueKind::Path(p) => p.to_string(),
                                ValueKind::Str(s) => s.clone(),
                                _ => {
                                    bad(self, "a list of names");
                                    continue;
                                }
                            };
                            if self.metric_ok(&name, i.span) {
                                r.metrics.push(name);
                            }
                        }
                    }
                    _ => bad(self, "a list of names"),
                },
                other => {
                    let similar = did_you_mean(other, KEYS.iter().copied());
                    let d = errors::unknown_run_setting(other, k.span, similar, KEYS);
                    self.err(d);
                }
            }
        }
        if r.iterations.is_some() && r.epochs.is_some() {
            let d = errors::iterations_and_epochs(o.span);
            self.err(d);
        }
        r
    }

    /// An epoch budget needs a data table in the lower level: g (with the
    /// `let`s it uses) must reduce over a `csv`/`tsv` source, as the run
    /// counts epochs of the first such source (E0408 at the setting).
    pub(super) fn epochs_reachable(&mut self, epochs: u64, o: &Opts, g: &Hir) {
        let mut seen = vec![false; self.lets.len()];
        let mut stack = vec![g];
        while let Some(h) = stack.pop() {
            match &h.kind {
                HirKind::Reduce(_, d, _) => {
                    let table = self
                        .data
                        .get(*d)
                        .and_then(Option::as_ref)
                        .is_some_and(|d| matches!(d.kind, SourceKind::Table { .. }));
                    if table {
                        return;
                    }
                }
                HirKind::Let(i) if !seen.get(*i).copied().unwrap_or(true) => {
                    seen[*i] = true;
                    if let Some(Some(a)) = self.lets.get(*i) {
                        stack.push(&a.hir);
                    }
                }
                _ => {}
            }
            h.push_children(&mut stack);
        }
        let at = o
            .entries
            .iter()
            .rev()
            .find(|(k, _)| k.name == "epochs")
            .map_or(o.span, |(k, v)| k.span.join(v.span));
        let d = errors::epochs_without_table(epochs, at, g.span);
        self.err(d);
    }

    /// A metric must name a scalar `let`.
    pub(super) fn metric_ok(&mut self, name: &str, span: Span) -> bool {
        let builtin = crate::stationarity::BUILTIN_METRICS.contains(&name);
        if builtin && self.names.contains_key(name) {
            let d = errors::metric_name_taken(name, span);
            self.err(d);
            return false;
        }
        if builtin {
            return true;
        }
        if let Some(&(Def::Let(i), _)) = self.names.get(name) {
            let shape = match self.lets.get(i) {
                Some(Some(a)) => a.shape().clone(),
                _ => return false,
            };
            if shape.rank() == 0 {
                return true;
            }
            let d = errors::metric_not_scalar(name, &shape, span);
            self.err(d);
            return false;
        }
        let mut lets: Vec<&str> = self
            .names
            .iter()
            .filter(|(_, (d, _))| matches!(d, Def::Let(_)))
            .map(|(n, _)| n.as_str())
            .chain(crate::stationarity::BUILTIN_METRICS.iter().copied())
            .collect();
        lets.sort_unstable();
        let similar = did_you_mean(name, lets.iter().copied());
        let d = errors::unknown_metric(name, span, similar);
        self.err(d);
        false
    }

    pub(super) fn expectation(&mut self, e: &crate::ast::Expectation) -> Option<ExpectDef> {
        let text = e.target.to_string();
        let target = match text.as_str() {
            "F" => ExpectTarget::F,
            "mu" => ExpectTarget::Mu,
            crate::stationarity::GRAD_PHI_SQ if !self.names.contains_key(&text) => {
                ExpectTarget::GradPhiSq
            }
            crate::stationarity::INNER_DISTANCE if !self.names.contains_key(&text) => {
                ExpectTarget::InnerDistance
            }
            _ => {
                if let Some((Def::Var(l, i), _)) = self.names.get(&text) {
                    ExpectTarget::Var(*l, *i)
                } else {
                    let diag = errors::expect_target(&text, e.target.span);
                    self.err(diag);
                    return None;
                }
            }
        };
        let values: Option<Vec<f64>> = match &e.value.kind {
            ValueKind::Num { value, .. } => Some(vec![*value]),
            ValueKind::List(items) => items
                .iter()
                .map(|i| match i.kind {
                    ValueKind::Num { value, .. } => Some(value),
                    _ => None,
                })
                .collect(),
            _ => None,
        };
        let Some(values) = values else {
            let diag = errors::expect_not_numeric(e.value.span);
            self.err(diag);
            return None;
        };
        let want = match &target {
            ExpectTarget::Var(LevelKind::Upper, i) => {
                self.upper.get(*i).and_then(|v| v.shape.len())
            }
            ExpectTarget::Var(LevelKind::Lower, i) => {
                self.lower.get(*i).and_then(|v| v.shape.len())
            }
            _ => Some(1),
        };
        if let Some(n) = want {
            if n != values.len() {
                let diag = errors::expect_length(&text, n, values.len(), e.value.span);
                self.err(diag);
                return None;
            }
        }
        let tol = match (e.cmp, e.tol) {
            (Cmp::Approx, None) => {
                let diag = errors::approx_without_tol(e.span);
                self.err(diag);
                return None;
            }
            (_, t) => t.unwrap_or(0.0),
        };
        Some(ExpectDef {
            target,
            cmp: e.cmp,
            values,
            tol,
            span: e.span,
            text,
        })
    }
}
