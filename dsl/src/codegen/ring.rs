//! Run-time data: the sample ring. A table data source chosen with
//! [`DataChoice`] is not compiled into the image; the generated module has a
//! ring type of fixed capacity per such source (`TrainRing` for `train`),
//! which the firmware fills from its sensors (`push`, overwriting the oldest
//! row when full), and the sampler draws the minibatch from the ring's
//! current rows with the const-table path's rule (docs/codegen.md, "Run-time
//! data: the sample ring").

use std::fmt::Write as _;
use std::str::FromStr;

use super::errors;
use crate::compiled::Program;
use crate::diag::Diagnostic;
use crate::hir::{DataDef, LabelEncoding, Sampler};
use crate::tape::{Field, Op, Tape};

/// Where the rows of a table data source come from in the generated code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// Compiled into the image as `static` tables (the default).
    #[default]
    Const,
    /// A ring the firmware fills at run time; `None`: as many rows as the
    /// table read at generation time.
    Ring(Option<usize>),
}

/// One data choice: `storage` for the source named `source`, or for every
/// table source the objectives read (`None`). Later choices override
/// earlier ones. Parsed from the CLI's `--data` values: `const`, `ring`,
/// `ring=CAPACITY`, and the same prefixed with `SOURCE:` (e.g.
/// `train:ring=64`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataChoice {
    /// The data source, or `None` for all.
    pub source: Option<String>,
    /// Its storage.
    pub storage: Storage,
}

impl FromStr for DataChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (source, mode) = match s.split_once(':') {
            Some((src, m)) => {
                let ok = !src.is_empty()
                    && src.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !src.starts_with(|c: char| c.is_ascii_digit());
                if !ok {
                    return Err(format!("`{src}` is not a data source name"));
                }
                (Some(src.to_string()), m)
            }
            None => (None, s),
        };
        let storage = match mode.split_once('=') {
            None if mode == "const" => Storage::Const,
            None if mode == "ring" => Storage::Ring(None),
            Some(("ring", n)) => Storage::Ring(Some(n.parse().map_err(|_| {
                format!("ring capacity `{n}` is not a whole number")
            })?)),
            _ => {
                return Err(format!(
                    "`{s}`: expected const, ring, ring=CAPACITY, or SOURCE:… of these (e.g. train:ring=64)"
                ))
            }
        };
        Ok(DataChoice { source, storage })
    }
}

/// Resolves the choices against the spec: per data source, the ring's
/// capacity (`Some`) or `None` (const tables, synthetic, unused).
///
/// # Errors
/// E0710–E0715: what cannot be a ring, named.
pub(super) fn resolve(
    p: &Program,
    src: &str,
    choices: &[DataChoice],
    used: &[usize],
) -> Result<Vec<Option<usize>>, Vec<Diagnostic>> {
    let data = &p.spec.data;
    let tables = &p.loaded.tables;
    let is_table = |d: usize| tables.get(d).is_some_and(Option::is_some);
    let mut want: Vec<Option<Storage>> = vec![None; data.len()];
    let mut errs = Vec::new();
    for c in choices {
        match &c.source {
            None => {
                for &d in used.iter().filter(|&&d| is_table(d)) {
                    want[d] = Some(c.storage);
                }
            }
            Some(name) => match data.iter().position(|d| &d.name == name) {
                None => errs.push(errors::ring_unknown_source(name, data, header(src))),
                Some(d) if !is_table(d) => errs.push(errors::ring_not_a_table(&data[d])),
                Some(d) if !used.contains(&d) => errs.push(errors::ring_unused(&data[d])),
                Some(d) => want[d] = Some(c.storage),
            },
        }
    }
    let mut caps = vec![None; data.len()];
    for (d, w) in want.iter().enumerate() {
        let Some(Storage::Ring(cap)) = *w else {
            continue;
        };
        let def = &data[d];
        let rows = tables[d].as_ref().map_or(0, |t| t.rows);
        let cap = cap.unwrap_or(rows);
        if cap == 0 {
            errs.push(errors::ring_capacity_zero(def));
            continue;
        }
        if def.batch as usize > cap {
            errs.push(errors::ring_batch_over_capacity(def, cap));
            continue;
        }
        let before = errs.len();
        if def.split.is_some() {
            errs.push(errors::ring_load_transform(def, "split"));
        }
        if def.label_noise.is_some() {
            errs.push(errors::ring_load_transform(def, "label_noise"));
        }
        if uses_index(&p.f, d) || uses_index(&p.g, d) {
            errs.push(errors::ring_index(def));
        }
        errs.extend(
            whole_data_facts(src, &def.name)
                .into_iter()
                .map(|(span, fact)| errors::ring_whole_data(def, &fact, span)),
        );
        if errs.len() == before {
            caps[d] = Some(cap);
        }
    }
    if errs.is_empty() {
        Ok(caps)
    } else {
        Err(errs)
    }
}

/// The span of the `bilevel "name"` line's keyword (a diagnostic about
/// the spec as a whole points there).
fn header(src: &str) -> crate::ast::Span {
    let mut at = 0;
    for line in src.split_inclusive('\n') {
        if line.starts_with("bilevel") {
            return crate::ast::Span::new(at, at + "bilevel".len());
        }
        at += line.len();
    }
    crate::ast::Span::new(0, 0)
}

/// `true` when a reduction over `d` reads `s.index` (the row's identity).
fn uses_index(t: &Tape, d: usize) -> bool {
    t.nodes.iter().any(|n| match &n.op {
        Op::Field(_, src, Field::Index) => *src == d,
        Op::Reduce { body, .. } => uses_index(body, d),
        _ => false,
    })
}

/// The facts of the whole data set (`SRC.rows`, `SRC.groups`, `SRC.vocab`)
/// the source text reads for source `name`, with their spans: a ring has no
/// fixed row count. Comments and strings are skipped.
fn whole_data_facts(src: &str, name: &str) -> Vec<(crate::ast::Span, String)> {
    let b = src.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += 1;
                }
                i += 1;
            }
            c if word(c) => {
                let start = i;
                while i < b.len() && word(b[i]) {
                    i += 1;
                }
                let blank = |k: &mut usize| {
                    while *k < b.len() && matches!(b[*k], b' ' | b'\t') {
                        *k += 1;
                    }
                };
                let mut dot = i;
                blank(&mut dot);
                if &src[start..i] != name || dot >= b.len() || b[dot] != b'.' {
                    continue;
                }
                let mut f0 = dot + 1;
                blank(&mut f0);
                let mut f1 = f0;
                while f1 < b.len() && word(b[f1]) {
                    f1 += 1;
                }
                let fact = &src[f0..f1];
                if matches!(fact, "rows" | "groups" | "vocab") {
                    out.push((crate::ast::Span::new(start, f1), format!("{name}.{fact}")));
                }
                i = f1;
            }
            _ => i += 1,
        }
    }
    out
}

/// A source name made a type name: `train` → `Train`, `my_data` → `MyData`.
fn camel(name: &str) -> String {
    let mut s = String::new();
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut c = part.chars();
        if let Some(f) = c.next() {
            s.push(f.to_ascii_uppercase());
            s.extend(c);
        }
    }
    if s.is_empty() {
        s.push_str("Source");
    }
    s
}

/// What the generated code knows of one ring source.
struct RingSrc<'a> {
    d: usize,
    def: &'a DataDef,
    /// The field of `Rings`.
    field: String,
    /// The type's stem (`Train`) and the consts' (`TRAIN`), unique.
    camel: String,
    upper: String,
    cap: usize,
    width: usize,
    labels: bool,
    weights: bool,
}

impl RingSrc<'_> {
    fn ty(&self) -> String {
        format!("{}Ring", self.camel)
    }
    fn upper(&self) -> String {
        self.upper.clone()
    }
}

/// Rust's keywords (strict and reserved, 2021): a source so named is a
/// raw identifier as a field (`r#type`), or gets a `_` where that is not
/// allowed (`self_`).
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn",
    "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let",
    "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return",
    "static", "struct", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use",
    "virtual", "where", "while", "yield",
];

/// Source `name` as a field of `Rings`.
fn field(name: &str) -> String {
    if matches!(name, "self" | "Self" | "super" | "crate" | "_") {
        format!("{name}_")
    } else if KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_string()
    }
}

fn ring_sources<'a>(p: &'a Program, caps: &[Option<usize>]) -> Vec<RingSrc<'a>> {
    let mut v: Vec<RingSrc<'a>> = caps
        .iter()
        .enumerate()
        .filter_map(|(d, c)| {
            let cap = (*c)?;
            let t = p.loaded.tables.get(d)?.as_ref()?;
            let name = &p.spec.data[d].name;
            Some(RingSrc {
                d,
                def: &p.spec.data[d],
                field: field(name),
                camel: camel(name),
                upper: name.to_uppercase(),
                cap,
                width: t.features,
                labels: !t.labels.is_empty(),
                weights: !t.weights.is_empty(),
            })
        })
        .collect();
    // `my_data` and `myData` would both be `MyDataRing`, `val` and `Val`
    // both `VAL_…`: such names get the source's number.
    let camels: Vec<String> = v.iter().map(|r| r.camel.clone()).collect();
    let uppers: Vec<String> = v.iter().map(|r| r.upper.clone()).collect();
    let many = |all: &[String], x: &String| all.iter().filter(|o| *o == x).count() > 1;
    for r in &mut v {
        let d = r.d;
        if many(&camels, &r.camel) {
            r.camel = format!("{}{d}", r.camel);
        }
        if many(&uppers, &r.upper) {
            r.upper = format!("{}_{d}", r.upper);
        }
    }
    v
}

/// `true` when some source is a ring.
pub(super) fn any(caps: &[Option<usize>]) -> bool {
    caps.iter().any(Option::is_some)
}

/// The extra parameter of every sweep function and the bindings at its
/// entry that make a ring's columns read as the const path's tables
/// (`D0_X`, `D0_L`, `D0_W`): the emitter's code is the same for both.
pub(super) fn sweep_parts(p: &Program, caps: &[Option<usize>]) -> (String, String) {
    let rings = ring_sources(p, caps);
    if rings.is_empty() {
        return (String::new(), String::new());
    }
    let mut decl = String::new();
    for r in &rings {
        let (d, n) = (r.d, &r.field);
        let _ = writeln!(decl, "    let D{d}_X = &rg.{n}.x;");
        if r.labels {
            let _ = writeln!(decl, "    let D{d}_L = &rg.{n}.l;");
        }
        if r.weights {
            let _ = writeln!(decl, "    let D{d}_W = &rg.{n}.w;");
        }
    }
    (", rg: &Rings".into(), decl)
}

/// The label check of `push` for the source's encoding (the loader's
/// `encode_label`, in `T`).
fn label_code(enc: LabelEncoding) -> (&'static str, String) {
    match enc {
        LabelEncoding::Raw => ("the number as the objectives read it", String::new()),
        LabelEncoding::Pm1 => (
            "0 or -1 (stored as -1) or 1 (`label_encoding = pm1`)",
            "        let label: T = if label == 1.0 { 1.0 } else if label == 0.0 || label == -1.0 { -1.0 } else { return Err(RowError::Label) };\n".into(),
        ),
        LabelEncoding::Class(k) => (
            "a class index 0, 1, … (`label_encoding = class(k)`)",
            format!("        if !(label >= 0.0 && label < {k}.0 && label == (label as u64) as T) {{ return Err(RowError::Label); }}\n"),
        ),
    }
}

/// One ring type.
fn ring_type(out: &mut String, r: &RingSrc<'_>, file: &str) {
    let (ty, up, n, w, cap) = (r.ty(), r.upper(), &r.def.name, r.width, r.cap);
    let _ = writeln!(
        out,
        "// data `{n}`: a run-time ring of {cap} rows x {w} features (filled by the firmware; \
         the table {file} was read at generation time for its width only)\n\
         /// Capacity (rows) of the ring of `{n}`.\npub const {up}_CAPACITY: usize = {cap};\n\
         /// Features per row of `{n}`.\npub const {up}_FEATURES: usize = {w};\n\
         /// Minibatch size of `{n}` (its `batch`): [`{ty}::ready`] once the ring holds as many rows.\n\
         pub const {up}_BATCH: usize = {b};\n",
        b = r.def.batch
    );
    let mut fields = format!("    x: [T; {up}_CAPACITY * {up}_FEATURES],\n");
    let mut init = format!("x: [Z; {up}_CAPACITY * {up}_FEATURES], ");
    let mut args = format!("x: &[T; {up}_FEATURES]");
    let mut check = String::from(
        "        if x.iter().any(|v| !v.is_finite()) { return Err(RowError::NonFinite); }\n",
    );
    let mut store = format!(
        "        self.x[slot * {up}_FEATURES..(slot + 1) * {up}_FEATURES].copy_from_slice(x);\n"
    );
    let mut docs = format!("`x`: the {w} features");
    if r.labels {
        let (what, code) = label_code(r.def.encoding);
        let _ = writeln!(fields, "    l: [T; {up}_CAPACITY],");
        let _ = write!(init, "l: [Z; {up}_CAPACITY], ");
        args.push_str(", label: T");
        check.push_str("        if !label.is_finite() { return Err(RowError::NonFinite); }\n");
        check.push_str(&code);
        store.push_str("        self.l[slot] = label;\n");
        let _ = write!(docs, "; `label`: {what}");
    }
    if r.weights {
        let _ = writeln!(fields, "    w: [T; {up}_CAPACITY],");
        let _ = write!(init, "w: [Z; {up}_CAPACITY], ");
        args.push_str(", weight: T");
        check.push_str("        if !weight.is_finite() { return Err(RowError::NonFinite); }\n");
        store.push_str("        self.w[slot] = weight;\n");
        docs.push_str("; `weight`: the row's weight");
    }
    let _ = write!(
        out,
        r"/// The run-time rows of data source `{n}`: a ring of [`{up}_CAPACITY`] rows.
/// Rows occupy slots `0..len()`; when full, [`{ty}::push`] overwrites the
/// oldest row. The sampler draws each minibatch from the rows present (see
/// `Problem`'s `Oracle::sample`).
#[derive(Clone)]
pub struct {ty} {{
{fields}    len: usize,
    next: usize,
}}

impl {ty} {{
    /// An empty ring.
    pub const fn new() -> Self {{
        {ty} {{ {init}len: 0, next: 0 }}
    }}

    /// Appends one row ({docs}); when the ring is full, the oldest row is
    /// overwritten and `Ok(true)` returned. A row with a non-finite cell or
    /// a label outside the spec's encoding is refused and nothing changes.
    ///
    /// # Errors
    /// [`RowError::NonFinite`], [`RowError::Label`].
    pub fn push(&mut self, {args}) -> Result<bool, RowError> {{
{check}        let slot = self.next;
{store}        self.next = if slot + 1 == {up}_CAPACITY {{ 0 }} else {{ slot + 1 }};
        let full = self.len == {up}_CAPACITY;
        if !full {{
            self.len += 1;
        }}
        Ok(full)
    }}

    /// Rows held.
    pub const fn len(&self) -> usize {{
        self.len
    }}

    /// `true` when no row is held.
    pub const fn is_empty(&self) -> bool {{
        self.len == 0
    }}

    /// `true` when the next push overwrites the oldest row.
    pub const fn is_full(&self) -> bool {{
        self.len == {up}_CAPACITY
    }}

    /// The fixed capacity, [`{up}_CAPACITY`].
    pub const fn capacity(&self) -> usize {{
        {up}_CAPACITY
    }}

    /// `true` when the ring holds at least a minibatch ([`{up}_BATCH`] rows):
    /// from then on every minibatch has its full size.
    pub const fn ready(&self) -> bool {{
        self.len >= {up}_BATCH
    }}

    /// Forgets every row (the storage is not cleared; the sampler starts over).
    pub fn clear(&mut self) {{
        self.len = 0;
        self.next = 0;
    }}
}}

impl Default for {ty} {{
    fn default() -> Self {{
        Self::new()
    }}
}}

"
    );
}

/// The ring types, `RowError` and `Rings` (nothing without rings); returns
/// the rings' bytes.
pub(super) fn types(out: &mut String, p: &Program, caps: &[Option<usize>], size: usize) -> usize {
    let rings = ring_sources(p, caps);
    if rings.is_empty() {
        return 0;
    }
    out.push_str(
        r"/// Why a ring refused a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowError {
    /// A feature, label or weight is NaN or infinite (the loader refuses
    /// such cells too, E0503).
    NonFinite,
    /// The label is not one the spec's `label_encoding` accepts (E0506 at
    /// load time).
    Label,
}

",
    );
    let mut bytes = 0;
    let (mut fields, mut init, mut ready) = (String::new(), String::new(), Vec::new());
    for r in &rings {
        let file = p.loaded.tables[r.d]
            .as_ref()
            .map_or(String::new(), |t| t.file.clone());
        ring_type(out, r, &file);
        let cols = r.width + usize::from(r.labels) + usize::from(r.weights);
        bytes += r.cap * cols * size + 16;
        let _ = writeln!(
            fields,
            "    /// The rows of `{}`.\n    pub {}: {},",
            r.def.name,
            r.field,
            r.ty()
        );
        let _ = write!(init, "{}: {}::new(), ", r.field, r.ty());
        ready.push(format!("self.{}.ready()", r.field));
    }
    let _ = write!(
        out,
        r"/// The run-time data of every ring source (`Problem::rings`).
#[derive(Clone, Default)]
pub struct Rings {{
{fields}}}

impl Rings {{
    /// Empty rings.
    pub const fn new() -> Self {{
        Rings {{ {init}}}
    }}

    /// `true` when every ring holds at least its minibatch: step the solver
    /// only then (before, minibatches are smaller, and empty for an empty ring).
    pub const fn ready(&self) -> bool {{
        {}
    }}
}}

",
        ready.join(" && ")
    );
    bytes
}

/// The header line naming the rings (empty without rings).
pub(super) fn header_line(p: &Program, caps: &[Option<usize>], bytes: usize) -> String {
    let rings = ring_sources(p, caps);
    if rings.is_empty() {
        return String::new();
    }
    let names: Vec<String> = rings
        .iter()
        .map(|r| format!("`{}` ({} rows)", r.def.name, r.cap))
        .collect();
    format!(
        "// run-time data: sample rings {} = {bytes} bytes inside `Problem` (filled by the firmware)\n",
        names.join(", ")
    )
}

/// The sampler state of ring sources (row order, position, rows at the
/// last shuffle), in `data::sampler_fields`'s form.
pub(super) fn sampler_fields(p: &Program, caps: &[Option<usize>]) -> Vec<(String, String, String)> {
    let mut v = Vec::new();
    for r in ring_sources(p, caps) {
        let d = r.d;
        match r.def.sampler {
            Sampler::Shuffle => {
                v.push((
                    format!("perm{d}"),
                    format!("[u32; {}]", r.cap),
                    format!("[0; {}]", r.cap),
                ));
                v.push((format!("pos{d}"), "usize".into(), "usize::MAX".into()));
                v.push((format!("permn{d}"), "usize".into(), "0".into()));
            }
            Sampler::Sequential => {
                v.push((format!("pos{d}"), "usize".into(), "usize::MAX".into()));
            }
            Sampler::Replace => {}
        }
    }
    v
}

/// The draw of ring source `d` in `Oracle::sample`: the const path's rule
/// (`data::draw_code`) with the table's rows replaced by the ring's current
/// `n` rows; min(batch, n) samples.
pub(super) fn draw_code(def: &DataDef, d: usize) -> String {
    let (n, b) = (&field(&def.name), def.batch);
    let mut s = format!(
        "        // `{n}`: {:?}, from the ring's current rows\n        {{\n            let n = self.rings.{n}.len;\n            let b = if n < {b} {{ n }} else {{ {b} }};\n",
        def.sampler
    );
    match def.sampler {
        Sampler::Replace => {
            let _ = writeln!(
                s,
                "            for k in 0..b {{ out.rows{d}[k] = below(rng, n as u64) as u32; }}"
            );
        }
        Sampler::Sequential => {
            let _ = writeln!(
                s,
                "            if n > 0 {{\n                let start = if self.pos{d} >= n {{ 0 }} else {{ self.pos{d} }};\n                \
                 for k in 0..b {{ out.rows{d}[k] = ((start + k) % n) as u32; }}\n                \
                 self.pos{d} = (start + b) % n;\n            }}"
            );
        }
        Sampler::Shuffle => {
            let _ = writeln!(
                s,
                "            if n != self.permn{d} {{\n                // The ring's row count changed: a new order of its rows.\n                \
                 for k in 0..n {{ self.perm{d}[k] = k as u32; }}\n                self.permn{d} = n;\n                self.pos{d} = usize::MAX;\n            }}\n            \
                 for c in 0..b {{\n                if self.pos{d} >= n {{\n                    \
                 for k in (1..n).rev() {{\n                        let j = below(rng, k as u64 + 1) as usize;\n                        \
                 self.perm{d}.swap(k, j);\n                    }}\n                    self.pos{d} = 0;\n                }}\n                \
                 out.rows{d}[c] = self.perm{d}[self.pos{d}];\n                self.pos{d} += 1;\n            }}"
            );
        }
    }
    let _ = writeln!(s, "            out.len{d} = b;\n        }}");
    s
}

#[cfg(test)]
mod tests {
    use super::{whole_data_facts, DataChoice, Storage};

    #[test]
    fn data_choices_parse_and_bad_ones_are_refused() {
        let ok = [
            ("const", None, Storage::Const),
            ("ring", None, Storage::Ring(None)),
            ("ring=64", None, Storage::Ring(Some(64))),
            ("ring=0", None, Storage::Ring(Some(0))),
            ("train:ring=8", Some("train"), Storage::Ring(Some(8))),
            ("val:const", Some("val"), Storage::Const),
        ];
        for (s, src, st) in ok {
            let c: DataChoice = s.parse().expect(s);
            assert_eq!(c.source.as_deref(), src, "{s}");
            assert_eq!(c.storage, st, "{s}");
        }
        for bad in [
            "", "rings", "ring=", "ring=-1", "ring=x", ":ring", "1a:ring", "train:", "const=3",
        ] {
            assert!(bad.parse::<DataChoice>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn whole_data_facts_are_found_outside_comments_and_strings() {
        let src = "# train.rows\ndata train = csv(\"train.rows\")\ndims { n = train.rows, d = train.features }\nlet k = 1.0 / train . rows + xtrain.rows + train.groups";
        let f = whole_data_facts(src, "train");
        let names: Vec<&str> = f.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(names, ["train.rows", "train.rows", "train.groups"]);
        assert_eq!(&src[f[0].0.start..f[0].0.end], "train.rows");
        assert!(whole_data_facts(src, "val").is_empty());
    }
}
