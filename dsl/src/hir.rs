//! The checked program: every type the checker produces and the later stages
//! (loading, lowering, compiling, summaries) consume. A [`Spec`] is a fully
//! resolved file; a [`Hir`] is one resolved, typed expression.

use std::collections::BTreeMap;
use std::fmt;

use bilevel_core::registry::{ParamValue, SolverInfo};

use crate::ast::{BinOp, Cmp, LevelKind, RedOp, Span};
use crate::diag::Diagnostic;

/// Most elements in one declared tensor (E0204).
pub const MAX_ELEMENTS: u64 = 1 << 24;
/// Most numbers held by all parameters together (E0204): 128 MiB.
pub const MAX_PARAM_ELEMENTS: usize = 1 << 24;
/// Largest minibatch of a data source.
pub const MAX_BATCH: u64 = 1 << 20;
/// Most variables per level.
pub const MAX_VARS: usize = 64;

/// A dimension: known, or named and bound when data is loaded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A known size.
    Known(u64),
    /// A size known only after data is loaded.
    Sym(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
        }
    }
}

impl Dim {
    /// The size when known.
    pub fn known(&self) -> Option<u64> {
        match self {
            Dim::Known(n) => Some(*n),
            Dim::Sym(_) => None,
        }
    }
}

/// A shape: `[]` scalar, `[n]` vector, `[m, n]` matrix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    /// The scalar shape.
    pub fn scalar() -> Self {
        Shape(Vec::new())
    }
    /// The rank (0, 1 or 2).
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    /// Number of elements when every dim is known.
    pub fn len(&self) -> Option<usize> {
        self.0.iter().try_fold(1usize, |a, d| {
            a.checked_mul(usize::try_from(d.known()?).ok()?)
        })
    }
    /// `true` when the shape is known to hold no element.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
    /// `(rows, cols)` with vectors as columns and scalars as 1 × 1.
    pub fn rows_cols(&self) -> (usize, usize) {
        let k = |d: &Dim| d.known().unwrap_or(0) as usize;
        match self.0.as_slice() {
            [] => (1, 1),
            [n] => (k(n), 1),
            [m, n, ..] => (k(m), k(n)),
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [] => f.write_str("scalar"),
            [n] => write!(f, "vector[{n}]"),
            [m, n] => write!(f, "matrix[{m}, {n}]"),
            ds => {
                f.write_str("tensor[")?;
                for (i, d) in ds.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{d}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// Data facts bound at load time: `train.rows`, `train.features`, …
pub type DataFacts = BTreeMap<String, u64>;

/// The kind of a data source.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// A delimited text file with a header (`csv` or `tsv`).
    Table {
        /// The path as written (relative to the spec's folder).
        path: String,
        /// `,` or `\t`.
        delimiter: u8,
    },
    /// Gaussian samples `z ~ N(mean, std² I)` of dimension `dim`.
    SynthNormal {
        /// Dimension.
        dim: Dim,
        /// Standard deviation.
        std: f64,
        /// Mean of every coordinate.
        mean: f64,
    },
    /// Uniform samples `z ~ U[low, high)^dim`.
    SynthUniform {
        /// Dimension.
        dim: Dim,
        /// Lower end.
        low: f64,
        /// Upper end.
        high: f64,
    },
}

/// How labels are encoded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LabelEncoding {
    /// The number as written.
    Raw,
    /// `{0, 1}` (or `{-1, 1}`) mapped to `{-1, +1}`.
    Pm1,
    /// Class indices `0..k`.
    Class(u64),
}

/// Which feature columns are used.
#[derive(Debug, Clone, PartialEq)]
pub enum Features {
    /// Every column except label and weight.
    All,
    /// Every column except these (and label and weight).
    AllExcept(Vec<String>),
    /// Exactly these columns, in this order.
    List(Vec<String>),
}

/// How minibatches are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampler {
    /// Epochs over a random permutation.
    Shuffle,
    /// Independent draws with replacement.
    Replace,
    /// In order, wrapping around.
    Sequential,
}

impl Sampler {
    /// The name used in specs.
    pub const fn name(self) -> &'static str {
        match self {
            Sampler::Shuffle => "shuffle",
            Sampler::Replace => "replace",
            Sampler::Sequential => "sequential",
        }
    }
}

/// A checked data source.
#[derive(Debug, Clone, PartialEq)]
pub struct DataDef {
    /// Its name.
    pub name: String,
    /// Where it is declared.
    pub span: Span,
    /// What it is.
    pub kind: SourceKind,
    /// Minibatch size.
    pub batch: u64,
    /// Sampler.
    pub sampler: Sampler,
    /// Seed mixed into its draws.
    pub seed: u64,
    /// Label column.
    pub label: Option<(String, Span)>,
    /// Label encoding.
    pub encoding: LabelEncoding,
    /// Weight column.
    pub weight: Option<(String, Span)>,
    /// Feature columns.
    pub features: Features,
    /// Span of the features option (for load-time messages).
    pub features_span: Span,
    /// A token-sequence column (`s.text`).
    pub text: Option<TextSource>,
    /// A group column (`s.group`, `name.groups`): distinct values, sorted,
    /// numbered from 0.
    pub group: Option<(String, Span)>,
    /// Keep only a fraction range of a seeded permutation of the rows.
    pub split: Option<Split>,
    /// Replace labels with another class at random (fixed per row).
    pub label_noise: Option<LabelNoise>,
}

/// A token-sequence column of a table.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSource {
    /// The text column.
    pub column: String,
    /// Where the column is named.
    pub span: Span,
    /// The vocabulary file (one word per line, first field; GloVe text
    /// files qualify), relative to the spec's folder.
    pub vocab: String,
    /// Where the vocabulary is named.
    pub vocab_span: Span,
    /// Longest sequence kept (longer texts are cut at the end).
    pub max_len: u64,
}

/// Rows `[from·n, to·n)` of a permutation of the table's rows drawn from
/// `seed`: sources with the same file and seed and disjoint ranges are
/// disjoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Split {
    /// Start of the range, in `[0, 1)`.
    pub from: f64,
    /// End of the range, in `(from, 1]`.
    pub to: f64,
    /// Seed of the permutation.
    pub seed: u64,
}

/// Symmetric label noise: with probability `p` a row's class `c` becomes
/// `(c + 1 + u) mod k`, `u` uniform in `0..k-1` (the official code's rule),
/// drawn once per row at load time from `seed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelNoise {
    /// Corruption probability.
    pub p: f64,
    /// Seed of the draws.
    pub seed: u64,
}

/// A checked `model` declaration; a backend builds it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDef {
    /// Its name.
    pub name: String,
    /// Where it is declared.
    pub span: Span,
    /// The backend kind (e.g. `rnn`).
    pub kind: String,
    /// Where the kind is written.
    pub kind_span: Span,
    /// Options as written: key, value (numbers, names and strings as text),
    /// span of the value.
    pub options: Vec<(String, String, Span)>,
}

/// A field of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// Features `s.x` (tables) or the draw `s.z` (synthetic).
    X,
    /// The label `s.y` / `s.label`.
    Label,
    /// The weight `s.weight`.
    Weight,
    /// The row index `s.index`.
    Index,
    /// The token sequence `s.text` (input of models only).
    Text,
    /// The group number `s.group`.
    Group,
}

/// A checked variable.
#[derive(Debug, Clone, PartialEq)]
pub struct VarDef {
    /// Its name.
    pub name: String,
    /// Where it is declared.
    pub span: Span,
    /// Its shape.
    pub shape: Shape,
    /// Its initial value.
    pub init: Init,
    /// The model whose parameters it holds (`params(model)`): its
    /// `glorot(seed = s)` init is the backend's own initialisation.
    pub model: Option<usize>,
}

/// A constant or initial value.
#[derive(Debug, Clone, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// The identity matrix.
    Eye,
    /// Independent normal draws.
    Normal {
        /// Standard deviation.
        std: f64,
        /// Seed.
        seed: u64,
    },
    /// Independent uniform draws in `[low, high)`.
    Uniform {
        /// Lower end.
        low: f64,
        /// Upper end.
        high: f64,
        /// Seed.
        seed: u64,
    },
    /// Glorot-uniform draws.
    Glorot {
        /// Seed.
        seed: u64,
    },
    /// A random symmetric positive definite matrix with eigenvalues
    /// log-spaced in `[1/kappa, 1]`.
    Spd {
        /// Condition number.
        kappa: f64,
        /// Seed.
        seed: u64,
    },
    /// A constant expression.
    Expr(Box<Hir>),
}

/// A checked parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDef {
    /// Its name.
    pub name: String,
    /// Where it is declared.
    pub span: Span,
    /// Its shape.
    pub shape: Shape,
    /// Its value.
    pub value: Init,
}

/// Built-in functions of expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// eˣ, elementwise.
    Exp,
    /// ln x, elementwise.
    Log,
    /// √x, elementwise.
    Sqrt,
    /// 1/(1+e⁻ˣ), elementwise.
    Sigmoid,
    /// ln(1+eˣ), elementwise.
    Softplus,
    /// tanh x, elementwise.
    Tanh,
    /// |x|, elementwise.
    Abs,
    /// cos x, elementwise.
    Cos,
    /// sin x, elementwise.
    Sin,
    /// Sum of elements.
    Sum,
    /// Mean of elements.
    Mean,
    /// ‖x‖² (Frobenius for matrices).
    Norm2sq,
    /// ‖x‖.
    Norm2,
    /// aᵀb.
    Dot,
    /// yᵀPy.
    Quad,
    /// ln(1 + e^(−y·z)).
    LogisticLoss,
    /// `−log softmax(z)[class]`.
    SoftmaxXent,
    /// ½‖a − b‖².
    SqLoss,
    /// ln Σ eˣⁱ.
    Logsumexp,
    /// 1 when a prediction is right, else 0: `argmax z = class` for logits,
    /// `sign z = sign label` for a score (labels ±1 or 0/1). Not
    /// differentiable: metrics only.
    Correct,
}

impl Builtin {
    /// Every built-in with its name.
    pub const ALL: &'static [(&'static str, Builtin)] = &[
        ("exp", Builtin::Exp),
        ("log", Builtin::Log),
        ("sqrt", Builtin::Sqrt),
        ("sigmoid", Builtin::Sigmoid),
        ("softplus", Builtin::Softplus),
        ("tanh", Builtin::Tanh),
        ("abs", Builtin::Abs),
        ("cos", Builtin::Cos),
        ("sin", Builtin::Sin),
        ("sum", Builtin::Sum),
        ("mean", Builtin::Mean),
        ("norm2sq", Builtin::Norm2sq),
        ("norm2", Builtin::Norm2),
        ("dot", Builtin::Dot),
        ("quad", Builtin::Quad),
        ("logistic_loss", Builtin::LogisticLoss),
        ("softmax_xent", Builtin::SoftmaxXent),
        ("sq_loss", Builtin::SqLoss),
        ("logsumexp", Builtin::Logsumexp),
        ("correct", Builtin::Correct),
    ];

    /// The name as written in specs.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, b)| *b == self)
            .map_or("?", |(n, _)| n)
    }

    /// Number of arguments.
    pub const fn arity(self) -> usize {
        match self {
            Builtin::Dot
            | Builtin::Quad
            | Builtin::LogisticLoss
            | Builtin::SoftmaxXent
            | Builtin::SqLoss
            | Builtin::Correct => 2,
            _ => 1,
        }
    }

    /// `true` for elementwise functions.
    pub const fn elementwise(self) -> bool {
        matches!(
            self,
            Builtin::Exp
                | Builtin::Log
                | Builtin::Sqrt
                | Builtin::Sigmoid
                | Builtin::Softplus
                | Builtin::Tanh
                | Builtin::Abs
                | Builtin::Cos
                | Builtin::Sin
        )
    }
}

/// A resolved, typed expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Hir {
    /// What it computes.
    pub kind: HirKind,
    /// Its shape.
    pub shape: Shape,
    /// Its source span.
    pub span: Span,
}

/// The kinds of resolved expression.
#[derive(Debug, Clone, PartialEq)]
pub enum HirKind {
    /// A scalar constant.
    Const(f64),
    /// A constant array (row-major).
    Array(Vec<f64>),
    /// A variable of a level.
    Var(LevelKind, usize),
    /// A parameter.
    Param(usize),
    /// A `let` binding.
    Let(usize),
    /// A field of the sample bound `depth` reductions out (0: innermost).
    Field(usize, Field),
    /// Prefix minus.
    Neg(Box<Hir>),
    /// A binary operator.
    Binary(BinOp, Box<Hir>, Box<Hir>),
    /// A built-in call.
    Call(Builtin, Vec<Hir>),
    /// Indexing `a[i]` or `a[i, j]`.
    Index(Box<Hir>, Vec<Hir>),
    /// Transpose.
    Transpose(Box<Hir>),
    /// A sample reduction over data source `data`.
    Reduce(RedOp, usize, Box<Hir>),
    /// Model `model` applied to parameters `theta` and the token sequence
    /// of the sample bound `depth` reductions out (0: innermost).
    Model {
        /// The model.
        model: usize,
        /// Its parameters (no sample fields).
        theta: Box<Hir>,
        /// The sample whose `text` is the input.
        depth: usize,
    },
}

impl Hir {
    /// Pushes the direct sub-expressions of `self` onto `stack` (a `let`'s
    /// definition is not a sub-expression).
    pub fn push_children<'h>(&'h self, stack: &mut Vec<&'h Hir>) {
        match &self.kind {
            HirKind::Neg(x) | HirKind::Transpose(x) | HirKind::Reduce(_, _, x) => stack.push(x),
            HirKind::Binary(_, a, b) => {
                stack.push(a);
                stack.push(b);
            }
            HirKind::Call(_, a) => stack.extend(a),
            HirKind::Index(a, i) => {
                stack.push(a);
                stack.extend(i);
            }
            HirKind::Model { theta, .. } => stack.push(theta),
            HirKind::Const(_)
            | HirKind::Array(_)
            | HirKind::Var(..)
            | HirKind::Param(_)
            | HirKind::Let(_)
            | HirKind::Field(..) => {}
        }
    }
}

/// Verdict of the strong-convexity analysis.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Strongly convex with a certified modulus.
    StronglyConvex,
    /// Strongly convex with a modulus that depends on x.
    StronglyConvexDependsOnX,
    /// Convex, μ = 0.
    Convex,
    /// Unknown or nonconvex.
    Unknown,
    /// Not analysed; stated by `assume strongly_convex`.
    Assumed,
}

/// A fact the analysis relies on that is verified when data and parameters
/// are loaded.
#[derive(Debug, Clone, PartialEq)]
pub enum Deferred {
    /// The weights of data source `data` are non-negative.
    NonnegWeights {
        /// The source.
        data: usize,
        /// Where the weight is used.
        span: Span,
    },
}

/// The strong-convexity analysis of g in y (the crate's `convexity` module).
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The verdict.
    pub verdict: Verdict,
    /// Symbolic μ: the credit of the least-credited coordinates of y.
    pub mu_text: String,
    /// `true` when every term of g is C².
    pub smooth: bool,
    /// Facts to verify at load time.
    pub deferred: Vec<Deferred>,
    /// The per-coordinate certificate, completed at load time.
    pub certificate: crate::convexity::Certificate,
    /// Where g is written.
    pub span: Span,
}

/// A checked algorithm block.
#[derive(Debug, Clone)]
pub struct AlgoDef {
    /// The registry entry.
    pub info: &'static SolverInfo,
    /// Settings as written (validated).
    pub settings: Vec<(String, Setting)>,
    /// Where it is declared.
    pub span: Span,
}

/// An owned hyperparameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting {
    /// A real.
    Real(f64),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A name.
    Str(String),
}

impl Setting {
    /// As the registry's value type.
    pub fn as_param(&self) -> ParamValue<'_> {
        match self {
            Setting::Real(v) => ParamValue::Real(*v),
            Setting::Int(v) => ParamValue::Int(*v),
            Setting::Bool(v) => ParamValue::Bool(*v),
            Setting::Str(s) => ParamValue::Str(s),
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.as_param(), f)
    }
}

/// Checked `run` settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunDef {
    /// Outer iterations.
    pub iterations: Option<u64>,
    /// Epochs (of the lower level's first data source).
    pub epochs: Option<u64>,
    /// Oracle-call budget.
    pub oracle_calls: Option<u64>,
    /// RNG seed.
    pub seed: Option<u64>,
    /// Evaluation cadence.
    pub eval_every: Option<u64>,
    /// Trace file.
    pub log: Option<String>,
    /// Worker threads.
    pub threads: Option<u64>,
    /// Metrics to log.
    pub metrics: Vec<String>,
    /// Tolerance of the stationarity metrics' solves (`grad_phi_sq`,
    /// `inner_distance`; default `stationarity::DEFAULT_TOL`).
    pub stationarity_tol: Option<f64>,
}

/// What an expectation compares.
#[derive(Debug, Clone, PartialEq)]
pub enum ExpectTarget {
    /// A variable of a level.
    Var(LevelKind, usize),
    /// The upper objective without noise.
    F,
    /// The certified modulus μ.
    Mu,
    /// ‖∇Φ(x)‖² on the whole data (`grad_phi_sq`; met only when its solves
    /// converged).
    GradPhiSq,
    /// ‖y − y*(x)‖² on the whole data (`inner_distance`; likewise).
    InnerDistance,
}

/// A checked expectation.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectDef {
    /// What is compared.
    pub target: ExpectTarget,
    /// How.
    pub cmp: Cmp,
    /// The expected values (one for scalars).
    pub values: Vec<f64>,
    /// Tolerance of `~=`.
    pub tol: f64,
    /// The source line.
    pub span: Span,
    /// The target as written.
    pub text: String,
}

/// A checked spec: everything resolved, ready to load data and lower.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The problem's name.
    pub name: String,
    /// Language version.
    pub version: Option<f64>,
    /// Dimensions in declaration order with their values and origins.
    pub dims: Vec<(String, Dim, Option<String>)>,
    /// Parameters.
    pub params: Vec<ParamDef>,
    /// `let` bindings in dependency order.
    pub lets: Vec<(String, Hir)>,
    /// Data sources.
    pub data: Vec<DataDef>,
    /// Upper variables.
    pub upper: Vec<VarDef>,
    /// Lower variables.
    pub lower: Vec<VarDef>,
    /// The upper objective f.
    pub f: Hir,
    /// The lower objective g.
    pub g: Hir,
    /// The first `algorithm` block: the default solver.
    pub algorithm: Option<AlgoDef>,
    /// Every `algorithm` block (one per solver), the default first.
    pub algorithms: Vec<AlgoDef>,
    /// Run settings.
    pub run: RunDef,
    /// Expectations.
    pub expects: Vec<ExpectDef>,
    /// The analysis of g.
    pub analysis: Analysis,
    /// Warnings and notes.
    pub warnings: Vec<Diagnostic>,
    /// Declared models (each needs a backend).
    pub models: Vec<ModelDef>,
}

/// Formats a number compactly (shortest round-trip form).
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// The fields of a source's samples: name, field, shape, integer bound.
pub fn sample_fields(d: &DataDef) -> Vec<(&'static str, Field, Shape, Option<Dim>)> {
    match &d.kind {
        SourceKind::SynthNormal { dim, .. } | SourceKind::SynthUniform { dim, .. } => {
            vec![("z", Field::X, Shape(vec![dim.clone()]), None)]
        }
        SourceKind::Table { .. } => {
            let feat = Dim::Sym(format!("{}.features", d.name));
            let rows = Dim::Sym(format!("{}.rows", d.name));
            let mut v = vec![
                ("x", Field::X, Shape(vec![feat]), None),
                ("index", Field::Index, Shape::scalar(), Some(rows)),
            ];
            if d.label.is_some() {
                let bound = match d.encoding {
                    LabelEncoding::Class(k) => Some(Dim::Known(k)),
                    _ => None,
                };
                v.push(("y", Field::Label, Shape::scalar(), bound.clone()));
                v.push(("label", Field::Label, Shape::scalar(), bound));
            }
            if d.weight.is_some() {
                v.push(("weight", Field::Weight, Shape::scalar(), None));
            }
            if d.text.is_some() {
                v.push(("text", Field::Text, Shape::scalar(), None));
            }
            if d.group.is_some() {
                let groups = Dim::Sym(format!("{}.groups", d.name));
                v.push(("group", Field::Group, Shape::scalar(), Some(groups)));
            }
            v
        }
    }
}
