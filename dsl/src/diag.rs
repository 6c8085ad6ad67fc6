//! Diagnostics: codes, labelled spans, rendering as text (like a modern
//! compiler) and as JSON for tools.

use std::fmt::Write as _;

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term;

use crate::ast::Span;
use crate::SourceMap;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The spec cannot be compiled.
    Error,
    /// The spec compiles but something is probably wrong.
    Warning,
    /// Information worth knowing.
    Note,
}

impl Severity {
    /// `"error"`, `"warning"` or `"note"`.
    pub const fn name(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
}

macro_rules! codes {
    ($($variant:ident = $code:literal, $sev:ident, $summary:literal;)*) => {
        /// Every diagnostic code of the language (see `docs/language.md`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $(
                #[doc = $summary]
                $variant,
            )*
        }

        impl Code {
            /// Every code, in order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The code as written in messages, e.g. `"E0101"`.
            pub const fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// The severity every diagnostic with this code has.
            pub const fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev,)* }
            }

            /// One line saying what the code means.
            pub const fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary,)* }
            }
        }
    };
}

codes! {
    E0001 = "E0001", Error, "syntax error";
    E0002 = "E0002", Error, "unsupported language version";
    E0003 = "E0003", Error, "malformed number literal, or one that overflows f64";
    E0101 = "E0101", Error, "undeclared name";
    E0102 = "E0102", Error, "duplicate declaration";
    E0103 = "E0103", Error, "a required block is missing or repeated";
    E0104 = "E0104", Error, "unknown function, or wrong arguments to a built-in";
    E0105 = "E0105", Error, "reserved word used as a name";
    E0106 = "E0106", Error, "cyclic `let` definitions";
    E0107 = "E0107", Error, "the lower objective does not depend on any lower variable";
    W0108 = "W0108", Warning, "the lower objective does not depend on any upper variable";
    E0201 = "E0201", Error, "dimension mismatch";
    E0202 = "E0202", Error, "rank or type error";
    E0203 = "E0203", Error, "a value does not have its declared size";
    E0204 = "E0204", Error, "dimension arithmetic overflows, or a tensor is too large";
    E0205 = "E0205", Error, "a constant outside a function's domain (log, sqrt, division by zero, fractional power of a negative number)";
    W0301 = "W0301", Warning, "lower objective convex but not provably strongly convex";
    E0302 = "E0302", Error, "lower objective not provably convex";
    N0303 = "N0303", Note, "the strong-convexity modulus depends on the upper variable";
    W0304 = "W0304", Warning, "non-C² term in the lower objective";
    E0305 = "E0305", Error, "a coefficient of the lower objective is not finite";
    E0306 = "E0306", Error, "an assumption contradicts what the analysis proves";
    N0307 = "N0307", Note, "strong convexity is assumed, not proven";
    E0308 = "E0308", Error, "an assumed modulus exceeds the curvature the analysis proves in some direction";
    E0401 = "E0401", Error, "unknown algorithm";
    E0402 = "E0402", Error, "unknown hyperparameter for this algorithm";
    E0403 = "E0403", Error, "hyperparameter of the wrong type or out of range";
    E0404 = "E0404", Error, "the problem cannot provide an oracle (no model backend)";
    E0405 = "E0405", Error, "invalid or conflicting run settings";
    E0406 = "E0406", Error, "unknown data source kind, or invalid data option";
    E0407 = "E0407", Error, "invalid expectation";
    E0408 = "E0408", Error, "a run budget that can never be used up";
    E0501 = "E0501", Error, "data file missing or unreadable";
    E0502 = "E0502", Error, "column missing";
    E0503 = "E0503", Error, "non-numeric, NaN or infinite cell";
    E0504 = "E0504", Error, "ragged rows";
    E0505 = "E0505", Error, "a deferred convexity fact fails at load time";
    E0506 = "E0506", Error, "label out of range";
    W0507 = "W0507", Warning, "batch larger than the data set (clamped)";
    E0601 = "E0601", Error, "nesting or operator-chain limit exceeded";
    E0602 = "E0602", Error, "expression too long";
    E0603 = "E0603", Error, "too many declarations";
    E0604 = "E0604", Error, "file too large";
    E0605 = "E0605", Error, "sample reductions would evaluate their bodies too often per oracle call";
    E0701 = "E0701", Error, "code generation: a `model` call cannot be generated";
    E0702 = "E0702", Error, "code generation: a data field without a fixed numeric form (text, group)";
    E0710 = "E0710", Error, "code generation: a `--data` choice names no table source the objectives read";
    E0711 = "E0711", Error, "code generation: a sample ring of capacity 0";
    E0712 = "E0712", Error, "code generation: a minibatch larger than its sample ring";
    E0713 = "E0713", Error, "code generation: a ring source's whole-data fact (`rows`, `groups`, `vocab`)";
    E0714 = "E0714", Error, "code generation: `s.index` of a ring source";
    E0715 = "E0715", Error, "code generation: a load-time transform (`split`, `label_noise`) of a ring source";
}

/// A labelled span.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// The span in the spec's source.
    pub span: Span,
    /// The label's text.
    pub message: String,
}

/// One diagnostic: a code, a message, a primary label, secondary labels,
/// notes and a help line.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The code.
    pub code: Code,
    /// The headline.
    pub message: String,
    /// The main label (absent only for whole-file problems).
    pub primary: Option<Label>,
    /// Further labels.
    pub secondary: Vec<Label>,
    /// Notes (`= note: …`).
    pub notes: Vec<String>,
    /// A suggestion (`= help: …`).
    pub help: Option<String>,
}

impl Diagnostic {
    /// A diagnostic with a primary label.
    pub fn new(
        code: Code,
        message: impl Into<String>,
        span: Span,
        label: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            primary: Some(Label {
                span,
                message: label.into(),
            }),
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// A diagnostic about the whole file.
    pub fn file_level(code: Code, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            primary: None,
            secondary: Vec::new(),
            notes: Vec::new(),
            help: None,
        }
    }

    /// Adds a help line.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a note.
    #[must_use]
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Adds a secondary label.
    #[must_use]
    pub fn with_secondary(mut self, span: Span, message: impl Into<String>) -> Self {
        self.secondary.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// The severity (from the code).
    pub fn severity(&self) -> Severity {
        self.code.severity()
    }

    /// `true` for errors.
    pub fn is_error(&self) -> bool {
        self.severity() == Severity::Error
    }

    fn sort_key(&self) -> (usize, Code, usize) {
        let start = self.primary.as_ref().map_or(0, |l| l.span.start);
        (
            start,
            self.code,
            self.primary.as_ref().map_or(0, |l| l.span.end),
        )
    }
}

/// Sorts diagnostics by position, then code, so output is deterministic.
pub fn sort(diags: &mut [Diagnostic]) {
    diags.sort_by_key(Diagnostic::sort_key);
}

/// Clamps a span to the source and to character boundaries.
fn clamp(src: &str, span: Span) -> std::ops::Range<usize> {
    let fix = |mut i: usize| {
        i = i.min(src.len());
        while !src.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let (s, e) = (fix(span.start), fix(span.end));
    s..e.max(s)
}

fn to_codespan(d: &Diagnostic, src: &str) -> cs::Diagnostic<()> {
    let sev = match d.severity() {
        Severity::Error => cs::Severity::Error,
        Severity::Warning => cs::Severity::Warning,
        Severity::Note => cs::Severity::Note,
    };
    let mut labels = Vec::new();
    if let Some(p) = &d.primary {
        labels.push(cs::Label::primary((), clamp(src, p.span)).with_message(&p.message));
    }
    for s in &d.secondary {
        labels.push(cs::Label::secondary((), clamp(src, s.span)).with_message(&s.message));
    }
    let mut notes: Vec<String> = d.notes.iter().map(|n| format!("note: {n}")).collect();
    if let Some(h) = &d.help {
        notes.push(format!("help: {h}"));
    }
    cs::Diagnostic::new(sev)
        .with_code(d.code.as_str())
        .with_message(&d.message)
        .with_labels(labels)
        .with_notes(notes)
}

/// Renders diagnostics as plain text (no colour), as a compiler prints them:
/// headline, `file:line:col`, the source line with carets, notes and help.
pub fn render(diags: &[Diagnostic], file_name: &str, src: &str) -> String {
    render_with(diags, file_name, src, false)
}

/// Renders diagnostics, with ANSI colours when `color` is set (use it only
/// when printing to a terminal).
pub fn render_with(diags: &[Diagnostic], file_name: &str, src: &str, color: bool) -> String {
    // Lone `\r` line ends become `\n` (same length: spans stay valid).
    let text = crate::lone_cr_to_lf(src);
    let src: &str = &text;
    let file = SimpleFile::new(file_name, src);
    let config = term::Config::default();
    let mut out = String::new();
    for d in diags {
        let cd = to_codespan(d, src);
        if color {
            let mut buf = term::termcolor::Ansi::new(Vec::new());
            let styles = term::Styles::default();
            let mut w = term::StylesWriter::new(&mut buf, &styles);
            if term::emit_to_write_style(&mut w, &config, &file, &cd).is_ok() {
                out.push_str(&String::from_utf8_lossy(&buf.into_inner()));
            }
        } else if let Ok(s) = term::emit_into_string(&config, &file, &cd) {
            out.push_str(&s);
        }
    }
    out
}

/// The diagnostics as a JSON array: code, severity, message, file, labels
/// with byte spans and 1-based line and column, notes, help.
pub fn to_json(diags: &[Diagnostic], file_name: &str, src: &str) -> serde_json::Value {
    let map = SourceMap::new(src);
    let label = |l: &Label, primary: bool| {
        let r = clamp(src, l.span);
        let (line, col) = map.line_col(r.start);
        let (end_line, end_col) = map.line_col(r.end);
        serde_json::json!({
            "primary": primary,
            "start": r.start, "end": r.end,
            "line": line, "column": col,
            "end_line": end_line, "end_column": end_col,
            "message": l.message,
        })
    };
    serde_json::Value::Array(
        diags
            .iter()
            .map(|d| {
                let mut labels: Vec<serde_json::Value> =
                    d.primary.iter().map(|l| label(l, true)).collect();
                labels.extend(d.secondary.iter().map(|l| label(l, false)));
                serde_json::json!({
                    "code": d.code.as_str(),
                    "severity": d.severity().name(),
                    "message": d.message,
                    "file": file_name,
                    "labels": labels,
                    "notes": d.notes,
                    "help": d.help,
                })
            })
            .collect(),
    )
}

/// A one-line form `file:line:col: error[E0101]: message`, for logs.
pub fn short(d: &Diagnostic, file_name: &str, src: &str) -> String {
    let mut s = String::new();
    let (line, col) = d
        .primary
        .as_ref()
        .map_or((1, 1), |l| SourceMap::new(src).line_col(l.span.start));
    let _ = write!(
        s,
        "{file_name}:{line}:{col}: {}[{}]: {}",
        d.severity().name(),
        d.code.as_str(),
        d.message
    );
    s
}

/// Levenshtein distance, for "did you mean" suggestions.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Names longer than this (in characters) get no "did you mean": the edit
/// distance is quadratic in the length, and a typo of a 64-character name
/// is rare.
pub const MAX_SUGGEST_LEN: usize = 64;

/// The closest candidate within a small edit distance; names or candidates
/// over [`MAX_SUGGEST_LEN`] characters, and candidates whose length differs
/// by more than the allowed distance, are not compared (so the cost is at
/// most `MAX_SUGGEST_LEN²` per candidate).
pub(crate) fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let n = name.chars().count();
    if n > MAX_SUGGEST_LEN {
        return None;
    }
    let limit = (name.len() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| {
            let m = c.chars().count();
            m <= MAX_SUGGEST_LEN && m.abs_diff(n) <= limit
        })
        .map(|c| {
            (
                edit_distance(&name.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, c)| (d, c.len()))
        .map(|(_, c)| c)
}
