//! Data sources: csv and tsv files with a header (label encodings, feature
//! selection, weights), synthetic generators, minibatch samplers, and
//! load-time checks that name file, line and column.

// Load errors are diagnostics (code, spans, notes); they occur once per load.
#![allow(clippy::result_large_err, clippy::too_many_lines)]

use std::path::Path;

use bilevel_core::random::{below, mix64, normal, uniform, DefaultRng};
use rand_core::{Rng, SeedableRng};

use crate::check::{
    DataDef, DataFacts, Deferred, Features, Field, LabelEncoding, Sampler, SourceKind, Spec,
};
use crate::diag::{Code, Diagnostic};
use crate::tape::SampleSource;

/// A loaded table: features row-major, labels and weights per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The file as written in the spec.
    pub file: String,
    /// Feature column names, in order.
    pub feature_names: Vec<String>,
    /// Rows.
    pub rows: usize,
    /// Features per row.
    pub features: usize,
    /// Features, `rows × features`.
    pub x: Vec<f64>,
    /// Encoded labels (empty without a label column).
    pub labels: Vec<f64>,
    /// Weights (empty without a weight column).
    pub weights: Vec<f64>,
}

/// Every data source, loaded (tables) or described (synthetic).
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Per data source: the table, or `None` for synthetic sources.
    pub tables: Vec<Option<Table>>,
    /// Facts such as `train.rows` and `train.features`.
    pub facts: DataFacts,
}

/// Loads the tables of `spec`'s data sources from `base` (the spec's
/// folder). Returns the data and warnings, or errors naming file and line.
pub fn load(spec: &Spec, base: &Path) -> Result<(Loaded, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut out = Loaded::default();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for (i, d) in spec.data.iter().enumerate() {
        match &d.kind {
            SourceKind::Table { path, delimiter } => {
                let needs_nonneg = spec
                    .analysis
                    .deferred
                    .iter()
                    .any(|f| matches!(f, Deferred::NonnegWeights { data, .. } if *data == i));
                match load_table(d, path, *delimiter, base, needs_nonneg) {
                    Ok(t) => {
                        out.facts.insert(format!("{}.rows", d.name), t.rows as u64);
                        out.facts
                            .insert(format!("{}.features", d.name), t.features as u64);
                        if let LabelEncoding::Class(k) = d.encoding {
                            out.facts.insert(format!("{}.classes", d.name), k);
                        }
                        if d.batch as usize > t.rows {
                            warnings.push(
                                Diagnostic::new(
                                    Code::W0507,
                                    format!(
                                        "batch {} is larger than `{}` ({} rows)",
                                        d.batch, d.name, t.rows
                                    ),
                                    d.span,
                                    "the batch is clamped to the data set",
                                )
                                .with_note(format!("{path} has {} rows", t.rows)),
                            );
                        }
                        out.tables.push(Some(t));
                    }
                    Err(e) => {
                        errors.push(e);
                        out.tables.push(None);
                    }
                }
            }
            _ => out.tables.push(None),
        }
    }
    if errors.is_empty() {
        Ok((out, warnings))
    } else {
        Err(errors)
    }
}

fn load_table(
    d: &DataDef,
    path: &str,
    delimiter: u8,
    base: &Path,
    needs_nonneg: bool,
) -> Result<Table, Diagnostic> {
    let full = base.join(path);
    let at = d.span;
    let text = std::fs::read(&full).map_err(|e| {
        Diagnostic::new(
            Code::E0501,
            format!("cannot read data file `{path}`"),
            at,
            "this data source",
        )
        .with_note(format!("{path}: {}", io_reason(&e)))
        .with_help("paths are relative to the spec's folder")
    })?;
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_slice());
    let header: Vec<String> = match rdr.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(e) => {
            return Err(Diagnostic::new(
                Code::E0503,
                format!("cannot read the header of `{path}`"),
                at,
                "this data source",
            )
            .with_note(e.to_string()))
        }
    };
    let col = |name: &str, span| -> Result<usize, Diagnostic> {
        header.iter().position(|h| h == name).ok_or_else(|| {
            let mut dg = Diagnostic::new(
                Code::E0502,
                format!("column `{name}` is not in `{path}`"),
                span,
                format!("column `{name}`"),
            )
            .with_note(format!("{path}:1 has columns: {}", header.join(", ")));
            if let Some(s) = crate::diag::did_you_mean(name, header.iter().map(String::as_str)) {
                dg = dg.with_help(format!("did you mean `{s}`?"));
            }
            dg
        })
    };
    let label = match &d.label {
        Some((n, s)) => Some(col(n, *s)?),
        None => None,
    };
    let weight = match &d.weight {
        Some((n, s)) => Some(col(n, *s)?),
        None => None,
    };
    let feats: Vec<usize> = match &d.features {
        Features::List(names) => names
            .iter()
            .map(|n| col(n, d.features_span))
            .collect::<Result<_, _>>()?,
        Features::All | Features::AllExcept(_) => {
            let except: Vec<&str> = match &d.features {
                Features::AllExcept(v) => {
                    for n in v {
                        col(n, d.features_span)?;
                    }
                    v.iter().map(String::as_str).collect()
                }
                _ => Vec::new(),
            };
            (0..header.len())
                .filter(|&c| {
                    Some(c) != label && Some(c) != weight && !except.contains(&header[c].as_str())
                })
                .collect()
        }
    };
    let mut t = Table {
        file: path.to_string(),
        feature_names: feats.iter().map(|&c| header[c].clone()).collect(),
        rows: 0,
        features: feats.len(),
        x: Vec::new(),
        labels: Vec::new(),
        weights: Vec::new(),
    };
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            Diagnostic::new(
                Code::E0503,
                format!("cannot parse `{path}`"),
                at,
                "this data source",
            )
            .with_note(e.to_string())
        })?;
        let line = rec.position().map_or(0, csv::Position::line);
        if rec.len() != header.len() {
            return Err(Diagnostic::new(
                Code::E0504,
                format!("ragged row in `{path}`"),
                at,
                "this data source",
            )
            .with_note(format!(
                "{path}:{line} has {} cells, the header has {}",
                rec.len(),
                header.len()
            )));
        }
        let cell = |c: usize| -> Result<f64, Diagnostic> {
            let s = rec.get(c).unwrap_or("").trim();
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(Diagnostic::new(
                    Code::E0503,
                    format!("bad cell in `{path}`"),
                    at,
                    "this data source",
                )
                .with_note(format!(
                    "{path}:{line}, column `{}`: `{s}` is not a finite number",
                    header[c]
                ))),
            }
        };
        for &c in &feats {
            t.x.push(cell(c)?);
        }
        if let Some(c) = label {
            let v = cell(c)?;
            let span = d.label.as_ref().map_or(at, |l| l.1);
            let enc = match d.encoding {
                LabelEncoding::Raw => Some(v),
                LabelEncoding::Pm1 => match (v.fract().abs() < f64::MIN_POSITIVE, v as i64) {
                    (true, 1) => Some(1.0),
                    (true, 0 | -1) => Some(-1.0),
                    _ => None,
                },
                LabelEncoding::Class(k) => {
                    (v.fract() == 0.0 && v >= 0.0 && v < k as f64).then_some(v)
                }
            };
            let Some(enc) = enc else {
                let expect = match d.encoding {
                    LabelEncoding::Class(k) => format!("a class in 0..{k}"),
                    _ => "0, 1 or -1".to_string(),
                };
                return Err(Diagnostic::new(
                    Code::E0506,
                    format!("label out of range in `{path}`"),
                    span,
                    format!("column `{}`", header[c]),
                )
                .with_note(format!("{path}:{line} has label {v}; expected {expect}")));
            };
            t.labels.push(enc);
        }
        if let Some(c) = weight {
            let v = cell(c)?;
            if needs_nonneg && v < 0.0 {
                let span = d.weight.as_ref().map_or(at, |w| w.1);
                return Err(Diagnostic::new(
                    Code::E0505,
                    "negative sample weight makes the lower level nonconvex",
                    span,
                    format!("column `{}`", header[c]),
                )
                .with_note(format!(
                    "{path}:{line} has {} = {v}; convexity of g relied on weights >= 0",
                    header[c]
                )));
            }
            t.weights.push(v);
        }
        t.rows += 1;
    }
    if t.rows == 0 {
        return Err(Diagnostic::new(
            Code::E0504,
            format!("`{path}` has no data rows"),
            at,
            "this data source",
        )
        .with_note(format!("{path} holds only a header")));
    }
    Ok(t)
}

/// A platform-independent reason for an I/O error.
fn io_reason(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file",
        std::io::ErrorKind::PermissionDenied => "permission denied",
        _ => "cannot be read",
    }
}

/// The minibatch of one data source.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceBatch {
    /// The source is not used at this level.
    Unused,
    /// Row indices of a table.
    Rows(Vec<usize>),
    /// Seeds of synthetic draws.
    Draws(Vec<u64>),
    /// The noise-free mean of a synthetic source (one sample).
    Mean,
}

/// A minibatch for every data source of one level: the oracle's sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Per data source.
    pub sources: Vec<SourceBatch>,
}

/// The per-source sampler state.
#[derive(Debug, Clone)]
pub struct SamplerState {
    perm: Vec<usize>,
    pos: usize,
}

impl SamplerState {
    /// A fresh state for `rows` rows.
    pub fn new(rows: usize) -> Self {
        SamplerState {
            perm: (0..rows).collect(),
            pos: usize::MAX,
        }
    }
}

/// Draws the minibatch of source `i` with `rng`.
pub fn draw<R: Rng + ?Sized>(
    d: &DataDef,
    table: Option<&Table>,
    state: &mut SamplerState,
    rng: &mut R,
) -> SourceBatch {
    let salt = mix64(d.seed ^ 0x5eed_0000_0000_0001);
    match table {
        None => SourceBatch::Draws((0..d.batch).map(|_| rng.next_u64() ^ salt).collect()),
        Some(t) => {
            let n = t.rows;
            let b = (d.batch as usize).min(n);
            let rows = match d.sampler {
                Sampler::Replace => (0..b).map(|_| below(rng, n as u64) as usize).collect(),
                Sampler::Sequential => {
                    let start = if state.pos >= n { 0 } else { state.pos };
                    let v = (0..b).map(|k| (start + k) % n).collect();
                    state.pos = (start + b) % n;
                    v
                }
                Sampler::Shuffle => {
                    let mut v = Vec::with_capacity(b);
                    while v.len() < b {
                        if state.pos >= n {
                            // Fisher–Yates with the run's generator.
                            for k in (1..n).rev() {
                                let j = below(rng, k as u64 + 1) as usize;
                                state.perm.swap(k, j);
                            }
                            state.pos = 0;
                        }
                        v.push(state.perm[state.pos]);
                        state.pos += 1;
                    }
                    v
                }
            };
            SourceBatch::Rows(rows)
        }
    }
}

/// A batch together with the data it indexes: implements [`SampleSource`].
pub struct View<'a> {
    /// The data source definitions.
    pub defs: &'a [DataDef],
    /// Loaded tables.
    pub loaded: &'a Loaded,
    /// The batch.
    pub batch: &'a Batch,
}

impl SampleSource for View<'_> {
    fn batch_len(&self, data: usize) -> usize {
        match self.batch.sources.get(data) {
            Some(SourceBatch::Rows(r)) => r.len(),
            Some(SourceBatch::Draws(r)) => r.len(),
            Some(SourceBatch::Mean) => 1,
            _ => 0,
        }
    }

    fn field(&self, data: usize, i: usize, field: Field, out: &mut [f64]) {
        let Some(def) = self.defs.get(data) else {
            return;
        };
        match (self.batch.sources.get(data), &def.kind) {
            (Some(SourceBatch::Rows(rows)), _) => {
                let (Some(&r), Some(Some(t))) = (rows.get(i), self.loaded.tables.get(data)) else {
                    return;
                };
                match field {
                    Field::X => out.copy_from_slice(&t.x[r * t.features..(r + 1) * t.features]),
                    Field::Label => out[0] = t.labels.get(r).copied().unwrap_or(0.0),
                    Field::Weight => out[0] = t.weights.get(r).copied().unwrap_or(1.0),
                    Field::Index => out[0] = r as f64,
                }
            }
            (Some(SourceBatch::Draws(seeds)), kind) => {
                let seed = seeds.get(i).copied().unwrap_or(0);
                let mut rng = DefaultRng::seed_from_u64(seed);
                match kind {
                    SourceKind::SynthNormal { std, mean, .. } => {
                        for o in out.iter_mut() {
                            *o = mean + std * normal(&mut rng);
                        }
                    }
                    SourceKind::SynthUniform { low, high, .. } => {
                        for o in out.iter_mut() {
                            *o = low + (high - low) * uniform(&mut rng);
                        }
                    }
                    SourceKind::Table { .. } => {}
                }
            }
            (Some(SourceBatch::Mean), kind) => {
                let m = match kind {
                    SourceKind::SynthNormal { mean, .. } => *mean,
                    SourceKind::SynthUniform { low, high, .. } => 0.5 * (low + high),
                    SourceKind::Table { .. } => 0.0,
                };
                out.fill(m);
            }
            _ => {}
        }
    }
}
