//! Data sources: csv and tsv files with a header (label encodings, feature
//! selection, weights), synthetic generators, minibatch samplers, and
//! load-time checks that name file, line and column.

// Load errors are diagnostics (code, spans, notes); they occur once per load.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bilevel_core::random::{below, mix64, normal, uniform, DefaultRng};
use rand_core::{Rng, SeedableRng};

use crate::ast::Span;
use crate::diag::{Code, Diagnostic};
use crate::hir::{
    DataDef, DataFacts, Deferred, Features, LabelEncoding, Sampler, SourceKind, Spec, TextSource,
};
use crate::tape::{Field, SampleSource};

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
    /// Token ids of every row's text, concatenated (empty without a text
    /// column); row `r` is `tokens[offsets[r]..offsets[r + 1]]`.
    pub tokens: Arc<[u32]>,
    /// `rows + 1` offsets into `tokens` (empty without a text column).
    pub offsets: Arc<[usize]>,
    /// The vocabulary's words without `<unk>`: token id `k + 1` is
    /// `vocab[k]`, id 0 is `<unk>` (empty without a text column).
    pub vocab: Arc<[String]>,
    /// Group number per row (empty without a group column).
    pub groups: Vec<u32>,
    /// Group names, sorted; number `k` is `group_names[k]`.
    pub group_names: Vec<String>,
    /// Labels that label noise changed, before the change: (row, label).
    pub corrupted: Vec<(usize, f64)>,
}

impl Table {
    /// The token ids of row `r`.
    pub fn text(&self, r: usize) -> &[u32] {
        match (self.offsets.get(r), self.offsets.get(r + 1)) {
            (Some(&a), Some(&b)) => &self.tokens[a..b],
            _ => &[],
        }
    }
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
    let mut vocabs: HashMap<String, Arc<[String]>> = HashMap::new();
    for (i, d) in spec.data.iter().enumerate() {
        match &d.kind {
            SourceKind::Table { path, delimiter } => {
                let needs_nonneg = spec
                    .analysis
                    .deferred
                    .iter()
                    .any(|f| matches!(f, Deferred::NonnegWeights { data, .. } if *data == i));
                let vocab = match &d.text {
                    Some(t) => match load_vocab(t, base, &mut vocabs) {
                        Ok(v) => Some(v),
                        Err(e) => {
                            errors.push(e);
                            out.tables.push(None);
                            continue;
                        }
                    },
                    None => None,
                };
                match load_table(d, path, *delimiter, base, needs_nonneg, vocab.as_ref()) {
                    Ok(t) => {
                        out.facts.insert(format!("{}.rows", d.name), t.rows as u64);
                        out.facts
                            .insert(format!("{}.features", d.name), t.features as u64);
                        if d.group.is_some() {
                            out.facts
                                .insert(format!("{}.groups", d.name), t.group_names.len() as u64);
                        }
                        if d.text.is_some() {
                            out.facts
                                .insert(format!("{}.vocab", d.name), t.vocab.len() as u64 + 1);
                        }
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

/// Reads the vocabulary file of a text column (once per file and load).
fn load_vocab(
    t: &TextSource,
    base: &Path,
    cache: &mut HashMap<String, Arc<[String]>>,
) -> Result<Arc<[String]>, Diagnostic> {
    if let Some(v) = cache.get(&t.vocab) {
        return Ok(v.clone());
    }
    let path = &t.vocab;
    let bytes = crate::text::read_file(&base.join(path)).map_err(|e| {
        Diagnostic::new(
            Code::E0501,
            format!("cannot read vocabulary file `{path}`"),
            t.vocab_span,
            "this vocabulary",
        )
        .with_note(format!("{path}: {}", io_reason(&e)))
        .with_help("paths are relative to the spec's folder")
    })?;
    let words = crate::text::parse_words(&bytes).map_err(|(line, msg)| {
        Diagnostic::new(
            Code::E0503,
            format!("bad vocabulary file `{path}`"),
            t.vocab_span,
            "this vocabulary",
        )
        .with_note(format!("{path}:{line}: {msg}"))
    })?;
    if words.is_empty() {
        return Err(Diagnostic::new(
            Code::E0504,
            format!("vocabulary file `{path}` has no words"),
            t.vocab_span,
            "this vocabulary",
        ));
    }
    let v: Arc<[String]> = words.into();
    cache.insert(t.vocab.clone(), v.clone());
    Ok(v)
}

/// The columns of a table that a data source reads.
struct Columns {
    label: Option<usize>,
    weight: Option<usize>,
    text: Option<usize>,
    group: Option<usize>,
    features: Vec<usize>,
}

/// The index of every column `d` names in `header` (E0502 for a missing
/// one, with a suggestion).
fn columns(d: &DataDef, path: &str, header: &[String]) -> Result<Columns, Diagnostic> {
    let col = |name: &str, span| -> Result<usize, Diagnostic> {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| missing_column(name, span, path, header))
    };
    let opt = |c: &Option<(String, Span)>| c.as_ref().map(|(n, s)| col(n, *s)).transpose();
    let label = opt(&d.label)?;
    let weight = opt(&d.weight)?;
    let text = d
        .text
        .as_ref()
        .map(|t| col(&t.column, t.span))
        .transpose()?;
    let group = opt(&d.group)?;
    let features: Vec<usize> = match &d.features {
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
                    Some(c) != label
                        && Some(c) != weight
                        && Some(c) != text
                        && Some(c) != group
                        && !except.contains(&header[c].as_str())
                })
                .collect()
        }
    };
    Ok(Columns {
        label,
        weight,
        text,
        group,
        features,
    })
}

/// E0502: a column the spec names is not in the file's header.
fn missing_column(name: &str, span: Span, path: &str, header: &[String]) -> Diagnostic {
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
}

/// E0501: the data file cannot be read.
fn unreadable_file(path: &str, at: Span, e: &std::io::Error) -> Diagnostic {
    Diagnostic::new(
        Code::E0501,
        format!("cannot read data file `{path}`"),
        at,
        "this data source",
    )
    .with_note(format!("{path}: {}", io_reason(e)))
    .with_help("paths are relative to the spec's folder")
}

/// E0503: the header cannot be read.
fn unreadable_header(path: &str, at: Span, e: &csv::Error) -> Diagnostic {
    Diagnostic::new(
        Code::E0503,
        format!("cannot read the header of `{path}`"),
        at,
        "this data source",
    )
    .with_note(e.to_string())
}

/// E0503: a record cannot be parsed as CSV.
fn unparsable_record(path: &str, at: Span, e: &csv::Error) -> Diagnostic {
    Diagnostic::new(
        Code::E0503,
        format!("cannot parse `{path}`"),
        at,
        "this data source",
    )
    .with_note(e.to_string())
}

/// E0504: a row has another number of cells than the header.
fn ragged_row(path: &str, at: Span, line: u64, cells: usize, header: usize) -> Diagnostic {
    Diagnostic::new(
        Code::E0504,
        format!("ragged row in `{path}`"),
        at,
        "this data source",
    )
    .with_note(format!(
        "{path}:{line} has {cells} cells, the header has {header}"
    ))
}

/// E0503: a cell is not a finite number.
fn bad_cell(path: &str, at: Span, line: u64, column: &str, cell: &str) -> Diagnostic {
    Diagnostic::new(
        Code::E0503,
        format!("bad cell in `{path}`"),
        at,
        "this data source",
    )
    .with_note(format!(
        "{path}:{line}, column `{column}`: `{cell}` is not a finite number"
    ))
}

/// E0506: a label outside the range its encoding allows.
fn label_out_of_range(d: &DataDef, path: &str, line: u64, column: &str, v: f64) -> Diagnostic {
    let expect = match d.encoding {
        LabelEncoding::Class(k) => format!("a class in 0..{k}"),
        _ => "0, 1 or -1".to_string(),
    };
    let span = d.label.as_ref().map_or(d.span, |l| l.1);
    Diagnostic::new(
        Code::E0506,
        format!("label out of range in `{path}`"),
        span,
        format!("column `{column}`"),
    )
    .with_note(format!("{path}:{line} has label {v}; expected {expect}"))
}

/// E0505: a negative weight where convexity relies on weights ≥ 0.
fn negative_weight(d: &DataDef, path: &str, line: u64, column: &str, v: f64) -> Diagnostic {
    let span = d.weight.as_ref().map_or(d.span, |w| w.1);
    Diagnostic::new(
        Code::E0505,
        "negative sample weight makes the lower level nonconvex",
        span,
        format!("column `{column}`"),
    )
    .with_note(format!(
        "{path}:{line} has {column} = {v}; convexity of g relied on weights >= 0"
    ))
}

/// E0504: the file holds only a header.
fn no_rows(path: &str, at: Span) -> Diagnostic {
    Diagnostic::new(
        Code::E0504,
        format!("`{path}` has no data rows"),
        at,
        "this data source",
    )
    .with_note(format!("{path} holds only a header"))
}

/// A label encoded as the data source says, or `None` when out of range.
fn encode_label(enc: LabelEncoding, v: f64) -> Option<f64> {
    match enc {
        LabelEncoding::Raw => Some(v),
        LabelEncoding::Pm1 => match (v.fract().abs() < f64::MIN_POSITIVE, v as i64) {
            (true, 1) => Some(1.0),
            (true, 0 | -1) => Some(-1.0),
            _ => None,
        },
        LabelEncoding::Class(k) => (v.fract() == 0.0 && v >= 0.0 && v < k as f64).then_some(v),
    }
}

/// How the rows of one table are read, and what they are read into.
struct Reader<'a> {
    d: &'a DataDef,
    path: &'a str,
    header: &'a [String],
    cols: Columns,
    needs_nonneg: bool,
    vocab_ids: Option<crate::text::Vocab>,
    max_len: usize,
    tokens: Vec<u32>,
    offsets: Vec<usize>,
    group_raw: Vec<String>,
}

impl Reader<'_> {
    /// Appends one record to `t`.
    fn row(&mut self, t: &mut Table, rec: &csv::StringRecord) -> Result<(), Diagnostic> {
        let (d, path, header, at) = (self.d, self.path, self.header, self.d.span);
        let line = rec.position().map_or(0, csv::Position::line);
        if rec.len() != header.len() {
            return Err(ragged_row(path, at, line, rec.len(), header.len()));
        }
        let cell = |c: usize| -> Result<f64, Diagnostic> {
            let s = rec.get(c).unwrap_or("").trim();
            match s.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(bad_cell(path, at, line, &header[c], s)),
            }
        };
        for &c in &self.cols.features {
            t.x.push(cell(c)?);
        }
        if let Some(c) = self.cols.label {
            let v = cell(c)?;
            let Some(enc) = encode_label(d.encoding, v) else {
                return Err(label_out_of_range(d, path, line, &header[c], v));
            };
            t.labels.push(enc);
        }
        if let Some(c) = self.cols.weight {
            let v = cell(c)?;
            if self.needs_nonneg && v < 0.0 {
                return Err(negative_weight(d, path, line, &header[c], v));
            }
            t.weights.push(v);
        }
        if let (Some(c), Some(v)) = (self.cols.text, &self.vocab_ids) {
            let ids = v.encode(rec.get(c).unwrap_or(""), true);
            self.tokens.extend(ids.iter().take(self.max_len));
            self.offsets.push(self.tokens.len());
        }
        if let Some(c) = self.cols.group {
            self.group_raw
                .push(rec.get(c).unwrap_or("").trim().to_string());
        }
        t.rows += 1;
        Ok(())
    }

    /// Completes `t` after the last record: groups, tokens, split, label
    /// noise.
    fn finish(self, t: &mut Table) -> Result<(), Diagnostic> {
        let d = self.d;
        if self.cols.group.is_some() {
            let mut names = self.group_raw.clone();
            names.sort_unstable();
            names.dedup();
            t.groups = self
                .group_raw
                .iter()
                .map(|g| names.binary_search(g).map_or(0, |k| k as u32))
                .collect();
            t.group_names = names;
        }
        t.tokens = self.tokens.into();
        t.offsets = self.offsets.into();
        if let Some(sp) = &d.split {
            select_rows(t, sp);
        }
        if let (Some(noise), LabelEncoding::Class(k)) = (&d.label_noise, d.encoding) {
            let mut rng = DefaultRng::seed_from_u64(mix64(noise.seed ^ 0x1abe_1000_0000_0001));
            for (r, l) in t.labels.iter_mut().enumerate() {
                if uniform(&mut rng) < noise.p && k >= 2 {
                    let shift = 1 + below(&mut rng, k - 1);
                    t.corrupted.push((r, *l));
                    *l = ((*l as u64 + shift) % k) as f64;
                }
            }
        }
        if t.rows == 0 {
            return Err(no_rows(self.path, d.span));
        }
        Ok(())
    }
}

fn load_table(
    d: &DataDef,
    path: &str,
    delimiter: u8,
    base: &Path,
    needs_nonneg: bool,
    vocab: Option<&Arc<[String]>>,
) -> Result<Table, Diagnostic> {
    let full = base.join(path);
    let at = d.span;
    let text = crate::text::read_file(&full).map_err(|e| unreadable_file(path, at, &e))?;
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(text.as_slice());
    let header: Vec<String> = match rdr.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(e) => return Err(unreadable_header(path, at, &e)),
    };
    header_ok(d, path, &header)?;
    let cols = columns(d, path, &header)?;
    let mut t = Table {
        file: path.to_string(),
        feature_names: cols.features.iter().map(|&c| header[c].clone()).collect(),
        rows: 0,
        features: cols.features.len(),
        x: Vec::new(),
        labels: Vec::new(),
        weights: Vec::new(),
        tokens: Arc::from(Vec::new()),
        offsets: Arc::from(Vec::new()),
        vocab: vocab.cloned().unwrap_or_else(|| Arc::from(Vec::new())),
        groups: Vec::new(),
        group_names: Vec::new(),
        corrupted: Vec::new(),
    };
    let mut reader = Reader {
        d,
        path,
        header: &header,
        offsets: if cols.text.is_some() {
            vec![0]
        } else {
            Vec::new()
        },
        cols,
        needs_nonneg,
        vocab_ids: vocab.map(|w| crate::text::Vocab::new(w.iter().cloned())),
        max_len: d.text.as_ref().map_or(0, |t| t.max_len as usize),
        tokens: Vec::new(),
        group_raw: Vec::new(),
    };
    for rec in rdr.records() {
        let rec = rec.map_err(|e| unparsable_record(path, at, &e))?;
        reader.row(&mut t, &rec)?;
    }
    reader.finish(&mut t)?;
    Ok(t)
}

/// Keeps the rows whose position in a seeded permutation of `0..rows` falls
/// in `[from·rows, to·rows)`, in file order.
fn select_rows(t: &mut Table, sp: &crate::hir::Split) {
    let n = t.rows;
    let mut perm: Vec<usize> = (0..n).collect();
    let mut rng = DefaultRng::seed_from_u64(mix64(sp.seed ^ 0x5711_7000_0000_0001));
    for k in (1..n).rev() {
        let j = below(&mut rng, k as u64 + 1) as usize;
        perm.swap(k, j);
    }
    let lo = ((sp.from * n as f64).floor() as usize).min(n);
    let hi = ((sp.to * n as f64).floor() as usize).clamp(lo, n);
    let mut keep: Vec<usize> = perm[lo..hi].to_vec();
    keep.sort_unstable();
    let f = t.features;
    t.x = keep
        .iter()
        .flat_map(|&r| t.x[r * f..(r + 1) * f].iter().copied())
        .collect();
    if !t.labels.is_empty() {
        t.labels = keep.iter().map(|&r| t.labels[r]).collect();
    }
    if !t.weights.is_empty() {
        t.weights = keep.iter().map(|&r| t.weights[r]).collect();
    }
    if !t.groups.is_empty() {
        t.groups = keep.iter().map(|&r| t.groups[r]).collect();
    }
    if !t.offsets.is_empty() {
        let mut tokens = Vec::new();
        let mut offsets = vec![0];
        for &r in &keep {
            tokens.extend_from_slice(t.text(r));
            offsets.push(tokens.len());
        }
        t.tokens = tokens.into();
        t.offsets = offsets.into();
    }
    t.rows = keep.len();
}

/// Refuses a header that is empty (an empty file) or names a column twice
/// (a column chosen by name would be ambiguous).
fn header_ok(d: &DataDef, path: &str, header: &[String]) -> Result<(), Diagnostic> {
    if header.iter().all(String::is_empty) {
        let mut needed: Vec<&str> = [&d.label, &d.weight, &d.group]
            .into_iter()
            .flatten()
            .map(|(n, _)| n.as_str())
            .collect();
        needed.extend(d.text.as_ref().map(|t| t.column.as_str()));
        if let Features::List(names) = &d.features {
            needed.extend(names.iter().map(String::as_str));
        }
        if !matches!(d.features, Features::List(_)) {
            needed.push("the feature columns");
        }
        let needs = format!("a header line with {}", needed.join(", "));
        return Err(Diagnostic::new(
            Code::E0503,
            format!("`{path}` has no header line (the file is empty)"),
            d.span,
            "this data source",
        )
        .with_note(format!(
            "{path}:1 has no columns; this data source needs {needs}"
        )));
    }
    for (j, h) in header.iter().enumerate() {
        if let Some(i) = header[..j].iter().position(|g| g == h) {
            return Err(Diagnostic::new(
                Code::E0503,
                format!("column `{h}` appears twice in the header of `{path}`"),
                d.span,
                "this data source",
            )
            .with_note(format!(
                "{path}:1 has `{h}` as columns {} and {}",
                i + 1,
                j + 1
            ))
            .with_help("rename one of them: columns are chosen by name"));
        }
    }
    Ok(())
}

/// A platform-independent reason for an I/O error.
fn io_reason(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file",
        std::io::ErrorKind::PermissionDenied => "permission denied",
        std::io::ErrorKind::IsADirectory => "is a directory, not a file",
        std::io::ErrorKind::InvalidData => "not valid gzip data",
        std::io::ErrorKind::UnexpectedEof => "ends in the middle (truncated gzip data)",
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

/// The per-source sampler state: the current order of the rows (shuffled
/// each epoch by `shuffle`) and the position in it (`usize::MAX` before the
/// first draw).
#[derive(Debug, Clone, PartialEq, Eq)]
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

    /// The row order and the position, as [`SamplerState::from_parts`]
    /// takes them (for checkpoints).
    pub fn parts(&self) -> (&[usize], usize) {
        (&self.perm, self.pos)
    }

    /// A state from a row order and a position.
    ///
    /// # Errors
    /// `perm` is not a permutation of `0..rows`, or `pos` is neither in
    /// `0..=rows` nor `usize::MAX`.
    pub fn from_parts(rows: usize, perm: Vec<usize>, pos: usize) -> Result<Self, String> {
        if perm.len() != rows {
            return Err(format!(
                "{} rows in the order, the table has {rows}",
                perm.len()
            ));
        }
        let mut seen = vec![false; rows];
        for &r in &perm {
            match seen.get_mut(r) {
                Some(s) if !*s => *s = true,
                _ => return Err(format!("the row order is not a permutation of 0..{rows}")),
            }
        }
        if pos > rows && pos != usize::MAX {
            return Err(format!("position {pos} beyond the {rows} rows"));
        }
        Ok(SamplerState { perm, pos })
    }
}

/// The next row of a table of `n` rows under `sampler`: uniform with
/// replacement, in order (0, 1, …, n−1, 0, …), or the next entry of a
/// permutation drawn afresh (Fisher–Yates with `rng`) at the start of every
/// pass. A minibatch is `batch` such rows in a row; the finite-sum view's
/// sample indices are drawn one at a time (`Compiled`'s
/// `FiniteSum::next_index`). The position and order are in `state`, which the
/// run's checkpoint holds.
pub fn next_row<R: Rng + ?Sized>(
    sampler: Sampler,
    state: &mut SamplerState,
    n: usize,
    rng: &mut R,
) -> usize {
    match sampler {
        Sampler::Replace => below(rng, n as u64) as usize,
        Sampler::Sequential => {
            let r = if state.pos >= n { 0 } else { state.pos };
            state.pos = (r + 1) % n;
            r
        }
        Sampler::Shuffle => {
            if state.pos >= n {
                // Fisher–Yates with the run's generator.
                for k in (1..n).rev() {
                    let j = below(rng, k as u64 + 1) as usize;
                    state.perm.swap(k, j);
                }
                state.pos = 0;
            }
            let r = state.perm[state.pos];
            state.pos += 1;
            r
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
            let rows = (0..b).map(|_| next_row(d.sampler, state, n, rng)).collect();
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
    fn tokens(&self, data: usize, i: usize) -> &[u32] {
        match (self.batch.sources.get(data), self.loaded.tables.get(data)) {
            (Some(SourceBatch::Rows(rows)), Some(Some(t))) => {
                rows.get(i).map_or(&[][..], |&r| t.text(r))
            }
            _ => &[],
        }
    }

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
                    Field::Group => out[0] = t.groups.get(r).map_or(0.0, |&g| f64::from(g)),
                    Field::Text => {}
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
