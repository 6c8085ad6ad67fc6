//! Data options: `csv`/`tsv` tables and synthetic sources with their
//! batch, sampler, label, feature, text, split and noise options.

use crate::ast::{Call, ExprKind, Ident, Span, Value, ValueKind};
use crate::diag::did_you_mean;
use crate::hir::{
    DataDef, Dim, Features, LabelEncoding, LabelNoise, Sampler, SourceKind, Split, TextSource,
    MAX_BATCH,
};

use super::{errors, Checker};

impl Checker<'_> {
    /// The kind of source `src` names, with its arguments.
    fn source_kind(&mut self, src: &Call) -> Option<SourceKind> {
        let kind_name = src.func.to_string();
        let named = |key: &str| {
            src.args
                .iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == key))
        };
        Some(match kind_name.as_str() {
            "csv" | "tsv" => {
                let path = match src.args.as_slice() {
                    [a] if a.name.is_none() => match &a.value.kind {
                        ExprKind::Str(s) => Some(s.clone()),
                        _ => None,
                    },
                    _ => None,
                };
                let Some(path) = path else {
                    let diag = errors::table_path(&kind_name, src.span);
                    self.err(diag);
                    return None;
                };
                SourceKind::Table {
                    path,
                    delimiter: if kind_name == "csv" { b',' } else { b'\t' },
                }
            }
            "synth.normal" | "synth.uniform" => {
                let allowed: &[&str] = if kind_name == "synth.normal" {
                    &["dim", "std", "mean"]
                } else {
                    &["dim", "low", "high"]
                };
                for a in &src.args {
                    let ok = a
                        .name
                        .as_ref()
                        .is_some_and(|n| allowed.contains(&n.name.as_str()));
                    if !ok {
                        let diag = errors::synth_args(&kind_name, allowed, a.value.span);
                        self.err(diag);
                        return None;
                    }
                }
                let dim = match named("dim") {
                    Some(a) => match &a.value.kind {
                        ExprKind::Num(v) if v.fract() == 0.0 && *v >= 0.0 => Dim::Known(*v as u64),
                        ExprKind::Path(p) if p.parts.len() == 1 => {
                            let found = self
                                .dims
                                .iter()
                                .find(|(n, _, _)| *n == p.parts[0].name)
                                .map(|x| x.1.clone());
                            if let Some(x) = found {
                                x
                            } else {
                                self.resolve_error(p);
                                return None;
                            }
                        }
                        _ => {
                            let diag = errors::synth_dim(a.value.span);
                            self.err(diag);
                            return None;
                        }
                    },
                    None => Dim::Known(1),
                };
                let mut num = |key: &str, default: f64| -> Option<f64> {
                    match named(key) {
                        None => Some(default),
                        Some(a) => {
                            let v = self.const_number(&a.value)?;
                            Some(v)
                        }
                    }
                };
                if kind_name == "synth.normal" {
                    let std = num("std", 1.0)?;
                    let mean = num("mean", 0.0)?;
                    if !(std >= 0.0 && std.is_finite()) {
                        let a = named("std").map_or(src.span, |a| a.value.span);
                        let diag = errors::synth_std(a);
                        self.err(diag);
                        return None;
                    }
                    SourceKind::SynthNormal { dim, std, mean }
                } else {
                    let low = num("low", 0.0)?;
                    let high = num("high", 1.0)?;
                    if !(low < high && (high - low).is_finite()) {
                        let diag = errors::synth_range(src.span);
                        self.err(diag);
                        return None;
                    }
                    SourceKind::SynthUniform { dim, low, high }
                }
            }
            _ => {
                let kinds = ["csv", "tsv", "synth.normal", "synth.uniform"];
                let similar = did_you_mean(&kind_name, kinds);
                let diag = errors::unknown_source(&kind_name, src.func.span, similar, &kinds);
                self.err(diag);
                return None;
            }
        })
    }

    pub(super) fn data_def(&mut self, d: &crate::ast::DataDecl) -> Option<DataDef> {
        let kind = self.source_kind(&d.source)?;
        let table = matches!(kind, SourceKind::Table { .. });
        let mut def = DataDef {
            name: d.name.name.clone(),
            span: d.name.span,
            kind,
            batch: 1,
            sampler: Sampler::Shuffle,
            seed: 0,
            label: None,
            encoding: LabelEncoding::Raw,
            weight: None,
            features: Features::All,
            features_span: d.name.span,
            text: None,
            group: None,
            split: None,
            label_noise: None,
        };
        let mut ok = true;
        let mut pending = Pending::default();
        let keys: &[&str] = if table {
            &[
                "batch",
                "sampler",
                "seed",
                "header",
                "label",
                "label_encoding",
                "features",
                "weight",
                "text",
                "vocab",
                "max_len",
                "group",
                "split",
                "split_seed",
                "label_noise",
                "noise_seed",
            ]
        } else {
            &["batch", "seed"]
        };
        if let Some(opts) = &d.opts {
            for (k, v) in &opts.entries {
                if !keys.contains(&k.name.as_str()) {
                    let similar = did_you_mean(&k.name, keys.iter().copied());
                    let diag = errors::unknown_data_option(&k.name, k.span, similar, keys);
                    self.err(diag);
                    ok = false;
                    continue;
                }
                let res = data_option(&mut def, &mut pending, k, v);
                if let Err(what) = res {
                    let diag = errors::data_option_value(&k.name, what, v.span);
                    self.err(diag);
                    ok = false;
                }
            }
        }
        if matches!(def.encoding, LabelEncoding::Pm1 | LabelEncoding::Class(_))
            && def.label.is_none()
        {
            let diag = errors::encoding_without_label(d.name.span);
            self.err(diag);
            ok = false;
        }
        let Pending {
            text,
            vocab,
            max_len,
            features_given,
            split_range,
            split_seed,
            noise,
            noise_seed,
        } = pending;
        match (text, vocab) {
            (Some((column, span)), Some((vocab, vocab_span))) => {
                def.text = Some(TextSource {
                    column,
                    span,
                    vocab,
                    vocab_span,
                    max_len,
                });
                if !features_given {
                    // Text tables rarely hold numeric features.
                    def.features = Features::List(Vec::new());
                }
            }
            (Some((_, span)), None) => {
                let diag = errors::text_without_vocab(span);
                self.err(diag);
                ok = false;
            }
            (None, Some((_, span))) => {
                let diag = errors::vocab_without_text(span);
                self.err(diag);
                ok = false;
            }
            (None, None) => {}
        }
        if let Some((from, to)) = split_range {
            def.split = Some(Split {
                from,
                to,
                seed: split_seed,
            });
        }
        if let Some(p) = noise {
            if !matches!(def.encoding, LabelEncoding::Class(k) if k >= 2) {
                let diag = errors::noise_without_classes(d.name.span);
                self.err(diag);
                ok = false;
            }
            def.label_noise = Some(LabelNoise {
                p,
                seed: noise_seed,
            });
        }
        ok.then_some(def)
    }
}

/// Applies option `k = v` of a source to `def` (or to `p`, for options
/// that are combined after all are read); `Err` names what is expected.
fn data_option(
    def: &mut DataDef,
    p: &mut Pending,
    k: &Ident,
    v: &Value,
) -> Result<(), &'static str> {
    match (k.name.as_str(), &v.kind) {
        ("batch", ValueKind::Num { value, int: true })
            if (1.0..=MAX_BATCH as f64).contains(value) =>
        {
            def.batch = *value as u64;
            Ok(())
        }
        ("batch", _) => Err("a whole number in [1, 1048576]"),
        ("seed", ValueKind::Num { value, int: true }) if *value >= 0.0 => {
            def.seed = *value as u64;
            Ok(())
        }
        ("split_seed" | "noise_seed", ValueKind::Num { value, int: true }) if *value >= 0.0 => {
            if k.name == "split_seed" {
                p.split_seed = *value as u64;
            } else {
                p.noise_seed = *value as u64;
            }
            Ok(())
        }
        ("seed" | "split_seed" | "noise_seed", _) => Err("a whole number >= 0"),
        ("sampler", ValueKind::Path(p)) => match p.to_string().as_str() {
            "shuffle" => {
                def.sampler = Sampler::Shuffle;
                Ok(())
            }
            "replace" => {
                def.sampler = Sampler::Replace;
                Ok(())
            }
            "sequential" => {
                def.sampler = Sampler::Sequential;
                Ok(())
            }
            _ => Err("shuffle, replace or sequential"),
        },
        ("sampler", _) => Err("shuffle, replace or sequential"),
        ("header", ValueKind::Bool(true)) => Ok(()),
        ("header", _) => Err("`true` (files need a header row)"),
        ("label", ValueKind::Str(s)) => {
            def.label = Some((s.clone(), v.span));
            Ok(())
        }
        ("weight", ValueKind::Str(s)) => {
            def.weight = Some((s.clone(), v.span));
            Ok(())
        }
        ("text", ValueKind::Str(c)) => {
            p.text = Some((c.clone(), v.span));
            Ok(())
        }
        ("group", ValueKind::Str(c)) => {
            def.group = Some((c.clone(), v.span));
            Ok(())
        }
        ("vocab", ValueKind::Str(f)) => {
            p.vocab = Some((f.clone(), v.span));
            Ok(())
        }
        ("vocab", _) => Err("a file name in quotes"),
        ("max_len", ValueKind::Num { value, int: true }) if (1.0..=65536.0).contains(value) => {
            p.max_len = *value as u64;
            Ok(())
        }
        ("max_len", _) => Err("a whole number in [1, 65536]"),
        ("split", ValueKind::List(items)) => match items.as_slice() {
            [Value {
                kind: ValueKind::Num { value: a, .. },
                ..
            }, Value {
                kind: ValueKind::Num { value: b, .. },
                ..
            }] if 0.0 <= *a && a < b && *b <= 1.0 => {
                p.split_range = Some((*a, *b));
                Ok(())
            }
            _ => Err("`[from, to]` with 0 <= from < to <= 1"),
        },
        ("split", _) => Err("`[from, to]` with 0 <= from < to <= 1"),
        ("label_noise", ValueKind::Num { value, .. }) if (0.0..1.0).contains(value) => {
            p.noise = Some(*value);
            Ok(())
        }
        ("label_noise", _) => Err("a probability in [0, 1)"),
        ("label" | "weight" | "text" | "group", _) => Err("a column name in quotes"),
        ("label_encoding", ValueKind::Path(p)) if p.to_string() == "pm1" => {
            def.encoding = LabelEncoding::Pm1;
            Ok(())
        }
        ("label_encoding", ValueKind::Path(p)) if p.to_string() == "raw" => {
            def.encoding = LabelEncoding::Raw;
            Ok(())
        }
        ("label_encoding", ValueKind::Call(p, args)) if p.to_string() == "class" => {
            match args.as_slice() {
                [(
                    None,
                    Value {
                        kind: ValueKind::Num { value, int: true },
                        ..
                    },
                )] if *value >= 1.0 => {
                    def.encoding = LabelEncoding::Class(*value as u64);
                    Ok(())
                }
                _ => Err("`class(k)` with a whole number k >= 1"),
            }
        }
        ("label_encoding", _) => Err("raw, pm1 or class(k)"),
        ("features", v2) => {
            def.features_span = v.span;
            p.features_given = true;
            features_option(v2).map(|f| def.features = f)
        }
        _ => Err("a valid value"),
    }
}

/// Options of a source combined once all are read.
struct Pending {
    text: Option<(String, Span)>,
    vocab: Option<(String, Span)>,
    max_len: u64,
    features_given: bool,
    split_range: Option<(f64, f64)>,
    split_seed: u64,
    noise: Option<f64>,
    noise_seed: u64,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            text: None,
            vocab: None,
            max_len: 64,
            features_given: false,
            split_range: None,
            split_seed: 0,
            noise: None,
            noise_seed: 0,
        }
    }
}

/// The `features` option: `all`, `all_except([…])` or a list of columns.
fn features_option(v: &ValueKind) -> Result<Features, &'static str> {
    let strings = |items: &[Value]| -> Option<Vec<String>> {
        items
            .iter()
            .map(|i| match &i.kind {
                ValueKind::Str(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    };
    match v {
        ValueKind::Path(p) if p.to_string() == "all" => Ok(Features::All),
        ValueKind::List(items) => match strings(items) {
            Some(s) if !s.is_empty() => Ok(Features::List(s)),
            _ => Err("a non-empty list of column names"),
        },
        ValueKind::Call(p, args) if p.to_string() == "all_except" => match args.as_slice() {
            [(
                None,
                Value {
                    kind: ValueKind::List(items),
                    ..
                },
            )] => strings(items)
                .map(Features::AllExcept)
                .ok_or("`all_except([\"col\", …])`"),
            _ => Err("`all_except([\"col\", …])`"),
        },
        _ => Err("all, all_except([…]) or a list of column names"),
    }
}
