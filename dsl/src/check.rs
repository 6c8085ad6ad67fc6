//! Semantic checks: names and cycles, shapes with symbolic dims, level roles,
//! the strong-convexity analysis of g in y, the `algorithm` block against the
//! core's registry, run settings, data options and expectations. Every
//! problem is reported at once; the result is a resolved, typed tree (HIR)
//! that the lowering consumes.

// The checker's passes are long matches over the language's constructs.
#![allow(clippy::too_many_lines)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use bilevel_core::registry::{self, ParamValue, SolverInfo};

use crate::ast::{
    BinOp, Call, Cmp, DeclKind, DimAtom, DimExpr, Expr, ExprKind, File, Ident, LevelKind, Opts,
    Path, RedOp, Span, TypeExpr, Value, ValueKind,
};
use crate::diag::{did_you_mean, Code, Diagnostic};
use crate::SourceMap;

/// Most elements in one declared tensor (E0204).
pub const MAX_ELEMENTS: u64 = 1 << 24;
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

const INITIALISERS: &[&str] = &["zeros", "ones", "eye", "normal", "uniform", "glorot", "spd"];

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

/// The strong-convexity analysis of g in y (see [`crate::convexity`]).
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

// ---------------------------------------------------------------------------
// Analysis attributes.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curv {
    Const,
    Affine,
    Convex,
    Concave,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sign {
    Pos,
    Nonneg,
    Zero,
    Nonpos,
    Neg,
    Unknown,
}

impl Sign {
    fn of(v: f64) -> Sign {
        if v > 0.0 {
            Sign::Pos
        } else if v < 0.0 {
            Sign::Neg
        } else if v == 0.0 {
            Sign::Zero
        } else {
            Sign::Unknown
        }
    }
    fn nonneg(self) -> bool {
        matches!(self, Sign::Pos | Sign::Nonneg | Sign::Zero)
    }
    fn nonpos(self) -> bool {
        matches!(self, Sign::Neg | Sign::Nonpos | Sign::Zero)
    }
    fn neg(self) -> Sign {
        match self {
            Sign::Pos => Sign::Neg,
            Sign::Nonneg => Sign::Nonpos,
            Sign::Nonpos => Sign::Nonneg,
            Sign::Neg => Sign::Pos,
            s => s,
        }
    }
    fn mul(self, o: Sign) -> Sign {
        use Sign::{Neg, Nonneg, Nonpos, Pos, Unknown, Zero};
        match (self, o) {
            (Zero, _) | (_, Zero) => Zero,
            (Unknown, _) | (_, Unknown) => Unknown,
            (Pos, s) | (s, Pos) => s,
            (Neg, s) | (s, Neg) => s.neg(),
            (Nonneg, Nonneg) | (Nonpos, Nonpos) => Nonneg,
            (Nonneg, Nonpos) | (Nonpos, Nonneg) => Nonpos,
        }
    }
    fn add(self, o: Sign) -> Sign {
        if self.nonneg() && o.nonneg() {
            if self == Sign::Pos || o == Sign::Pos {
                Sign::Pos
            } else {
                Sign::Nonneg
            }
        } else if self.nonpos() && o.nonpos() {
            if self == Sign::Neg || o == Sign::Neg {
                Sign::Neg
            } else {
                Sign::Nonpos
            }
        } else {
            Sign::Unknown
        }
    }
}

/// Formats a number compactly (shortest round-trip form).
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

#[derive(Debug, Clone)]
struct Attr {
    hir: Hir,
    /// Bit i: depends on upper variable i.
    dep_x: u64,
    /// Bit i: depends on lower variable i.
    dep_y: u64,
    curv: Curv,
    sign: Sign,
    smooth: bool,
    /// The scalar value when known at check time.
    konst: Option<f64>,
    /// An integer index bound (class labels, row indices).
    int_bound: Option<Dim>,
    /// Weight fields used (deferred non-negativity).
    weights: Vec<(usize, Span)>,
}

impl Attr {
    fn leaf(hir: Hir) -> Attr {
        Attr {
            hir,
            dep_x: 0,
            dep_y: 0,
            curv: Curv::Const,
            sign: Sign::Unknown,
            smooth: true,
            konst: None,
            int_bound: None,
            weights: Vec::new(),
        }
    }
    fn shape(&self) -> &Shape {
        &self.hir.shape
    }
}

// ---------------------------------------------------------------------------
// The checker.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Def {
    Dim(usize),
    Param(usize),
    Let(usize),
    Data(usize),
    Model(usize),
    Var(LevelKind, usize),
}

struct Checker<'a> {
    src: &'a str,
    map: SourceMap<'a>,
    facts: Option<&'a DataFacts>,
    diags: Vec<Diagnostic>,
    names: HashMap<String, (Def, Span)>,
    dims: Vec<(String, Dim, Option<String>)>,
    data: Vec<Option<DataDef>>,
    params: Vec<Option<(ParamDef, Attr)>>,
    lets: Vec<Option<Attr>>,
    upper: Vec<VarDef>,
    lower: Vec<VarDef>,
    models: Vec<ModelDef>,
    /// Sample variables in scope, innermost last: (name, data index).
    scope: Vec<(String, usize)>,
    /// Nested sample reductions inside initialisers are not allowed.
    in_const: bool,
    /// Set while resolving a model's input (where `s.text` is allowed).
    allow_text: bool,
}

/// Checks a parsed file; `facts` binds data-derived dims (after loading).
pub fn check(file: &File, src: &str, facts: Option<&DataFacts>) -> Result<Spec, Vec<Diagnostic>> {
    let mut c = Checker {
        src,
        map: SourceMap::new(src),
        facts,
        diags: Vec::new(),
        names: HashMap::new(),
        dims: Vec::new(),
        data: Vec::new(),
        params: Vec::new(),
        lets: Vec::new(),
        upper: Vec::new(),
        lower: Vec::new(),
        models: Vec::new(),
        scope: Vec::new(),
        in_const: false,
        allow_text: false,
    };
    let spec = c.run(file);
    let mut diags = c.diags;
    crate::diag::sort(&mut diags);
    match spec {
        Some(mut s) if !diags.iter().any(Diagnostic::is_error) => {
            s.warnings = diags;
            Ok(s)
        }
        _ => Err(diags),
    }
}

impl<'a> Checker<'a> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn text(&self, s: Span) -> &'a str {
        let e = s.end.min(self.src.len());
        self.src.get(s.start.min(e)..e).unwrap_or("")
    }

    fn declare(&mut self, id: &Ident, def: Def) {
        if let Some((_, first)) = self.names.get(&id.name) {
            let (l, c) = self.map.line_col(first.start);
            let d = Diagnostic::new(
                Code::E0102,
                format!("`{}` is declared twice", id.name),
                id.span,
                "declared again here",
            )
            .with_secondary(*first, "first declared here")
            .with_help(format!("rename one of them (the first is at {l}:{c})"));
            self.err(d);
        } else {
            self.names.insert(id.name.clone(), (def, id.span));
        }
    }

    #[allow(clippy::too_many_lines)]
    fn run(&mut self, file: &File) -> Option<Spec> {
        // 1. Collect names.
        let mut dim_binds = Vec::new();
        let mut params_ast = Vec::new();
        let mut lets_ast = Vec::new();
        let mut data_ast = Vec::new();
        let mut levels: Vec<&crate::ast::LevelBlock> = Vec::new();
        let mut algos = Vec::new();
        let mut runs = Vec::new();
        let mut expects = Vec::new();
        let mut assumes = Vec::new();
        for d in &file.decls {
            match &d.kind {
                DeclKind::Dims(b) => {
                    for bind in b {
                        self.declare(&bind.name, Def::Dim(dim_binds.len()));
                        dim_binds.push(bind);
                    }
                }
                DeclKind::Param(p) => {
                    self.declare(&p.name, Def::Param(params_ast.len()));
                    params_ast.push(p);
                }
                DeclKind::Let(l) => {
                    self.declare(&l.name, Def::Let(lets_ast.len()));
                    lets_ast.push(l);
                }
                DeclKind::Data(x) => {
                    self.declare(&x.name, Def::Data(data_ast.len()));
                    data_ast.push(x);
                }
                DeclKind::Model(m) => {
                    self.declare(&m.name, Def::Model(self.models.len()));
                    let options = m
                        .opts
                        .entries
                        .iter()
                        .map(|(k, v)| (k.name.clone(), option_text(v), v.span))
                        .collect();
                    self.models.push(ModelDef {
                        name: m.name.name.clone(),
                        span: m.name.span,
                        kind: m.kind.name.clone(),
                        kind_span: m.kind.span,
                        options,
                    });
                }
                DeclKind::Level(l) => levels.push(l),
                DeclKind::Algorithm(a) => algos.push((a, d.span)),
                DeclKind::Run(r) => runs.push(r),
                DeclKind::Expect(e) => expects.push((e, d.span)),
                DeclKind::Assume(a) => assumes.push(a),
            }
        }
        // Levels.
        let mut upper_block = None;
        let mut lower_block = None;
        for l in &levels {
            let slot = match l.level {
                LevelKind::Upper => &mut upper_block,
                LevelKind::Lower => &mut lower_block,
            };
            if let Some(first) = slot {
                let first: &&crate::ast::LevelBlock = first;
                let d = Diagnostic::new(
                    Code::E0103,
                    format!("a second `{}` block", l.level.name()),
                    l.level_span,
                    "repeated here",
                )
                .with_secondary(first.level_span, "first block")
                .with_help("put every variable of a level into one block");
                self.err(d);
            } else {
                *slot = Some(*l);
            }
        }
        for (kind, blk) in [
            (LevelKind::Upper, upper_block),
            (LevelKind::Lower, lower_block),
        ] {
            match blk {
                None => {
                    let d = Diagnostic::new(
                        Code::E0103,
                        format!("the spec has no `{}` block", kind.name()),
                        file.header_span,
                        "in this spec",
                    )
                    .with_help(format!("add `{} {{ var …: … minimize … }}`", kind.name()));
                    self.err(d);
                }
                Some(b) if b.vars.is_empty() => {
                    let d = Diagnostic::new(
                        Code::E0103,
                        format!("the `{}` block declares no variable", kind.name()),
                        b.level_span,
                        "no `var` in this block",
                    )
                    .with_help("declare its variable with `var name: type`");
                    self.err(d);
                }
                Some(b) if b.vars.len() > MAX_VARS => {
                    let d = Diagnostic::new(
                        Code::E0603,
                        format!("more than {MAX_VARS} variables in one level"),
                        b.level_span,
                        "too many variables",
                    );
                    self.err(d);
                }
                Some(b) => {
                    for (i, v) in b.vars.iter().enumerate() {
                        self.declare(&v.name, Def::Var(kind, i));
                    }
                }
            }
        }
        // 2. Dims (iteratively, in any order).
        self.dims_pass(&dim_binds);
        // 3. Data sources (need dims).
        for d in &data_ast {
            let def = self.data_def(d);
            self.data.push(def);
        }
        // 4. Variables' shapes (inits later).
        let mut var_shapes: Vec<(LevelKind, usize, Option<Shape>)> = Vec::new();
        for (kind, blk) in [
            (LevelKind::Upper, upper_block),
            (LevelKind::Lower, lower_block),
        ] {
            if let Some(b) = blk {
                for (i, v) in b.vars.iter().enumerate() {
                    let s = self.type_shape(&v.ty);
                    var_shapes.push((kind, i, s.clone()));
                    let def = VarDef {
                        name: v.name.name.clone(),
                        span: v.name.span,
                        shape: s.unwrap_or_else(Shape::scalar),
                        init: Init::Zeros,
                        model: match &v.ty {
                            TypeExpr::Params(m, _) => match self.names.get(&m.name) {
                                Some(&(Def::Model(k), _)) => Some(k),
                                _ => None,
                            },
                            _ => None,
                        },
                    };
                    match kind {
                        LevelKind::Upper => self.upper.push(def),
                        LevelKind::Lower => self.lower.push(def),
                    }
                }
            }
        }
        // 5. Params and lets in dependency order (cycles → E0106).
        self.params = vec![None; params_ast.len()];
        self.lets = vec![None; lets_ast.len()];
        let order = self.definition_order(&params_ast, &lets_ast);
        for def in order {
            match def {
                Def::Param(i) => {
                    let p = params_ast[i];
                    let shape = self.type_shape(&p.ty);
                    self.in_const = true;
                    let init = self.init_value(&p.value, shape.as_ref(), p.name.span);
                    self.in_const = false;
                    if let (Some(shape), Some((init, attr))) = (shape, init) {
                        let def = ParamDef {
                            name: p.name.name.clone(),
                            span: p.name.span,
                            shape,
                            value: init,
                        };
                        self.params[i] = Some((def, attr));
                    }
                }
                Def::Let(i) => {
                    let l = lets_ast[i];
                    self.lets[i] = self.expr(&l.value);
                }
                _ => {}
            }
        }
        // 6. Var inits.
        for (kind, blk) in [
            (LevelKind::Upper, upper_block),
            (LevelKind::Lower, lower_block),
        ] {
            if let Some(b) = blk {
                for (i, v) in b.vars.iter().enumerate() {
                    if let Some(e) = &v.init {
                        let shape = match kind {
                            LevelKind::Upper => self.upper.get(i).map(|d| d.shape.clone()),
                            LevelKind::Lower => self.lower.get(i).map(|d| d.shape.clone()),
                        };
                        self.in_const = true;
                        let init = self.init_value(e, shape.as_ref(), v.name.span);
                        self.in_const = false;
                        if let Some((init, _)) = init {
                            match kind {
                                LevelKind::Upper => self.upper[i].init = init,
                                LevelKind::Lower => self.lower[i].init = init,
                            }
                        }
                    }
                }
            }
        }
        // 7. Objectives.
        let f = upper_block.and_then(|b| self.objective(&b.objective, LevelKind::Upper));
        let g = lower_block.and_then(|b| self.objective(&b.objective, LevelKind::Lower));
        // 8. Roles and analysis.
        let assumed = self.assumes(&assumes);
        let analysis = match (&g, lower_block) {
            (Some(g), Some(b)) => Some(self.analyse(g, b, &assumed)),
            _ => None,
        };
        // 9. Algorithm, run, expectations.
        // The first block is the default solver; further blocks (one per
        // solver) hold the settings `bilevel compare` uses for them.
        let mut algorithms: Vec<AlgoDef> = Vec::new();
        for (a, span) in &algos {
            let Some(def) = self.algorithm(a, *span) else {
                continue;
            };
            if let Some(first) = algorithms.iter().find(|d| d.info.name == def.info.name) {
                let d = Diagnostic::new(
                    Code::E0103,
                    format!("a second `algorithm` block for `{}`", def.info.name),
                    a.name.span,
                    "repeated here",
                )
                .with_secondary(first.span, "first block")
                .with_help("merge the settings into one block per solver");
                self.err(d);
                continue;
            }
            algorithms.push(def);
        }
        let algorithm = algorithms.first().cloned();
        let run = match runs.as_slice() {
            [] => RunDef::default(),
            [first, rest @ ..] => {
                for r in rest {
                    let d = Diagnostic::new(
                        Code::E0103,
                        "a second `run` block",
                        r.span,
                        "repeated here",
                    )
                    .with_secondary(first.span, "first block");
                    self.err(d);
                }
                self.run_block(first)
            }
        };
        let mut expect_defs = Vec::new();
        for (block, span) in &expects {
            for e in *block {
                if let Some(d) = self.expectation(e) {
                    expect_defs.push(d);
                }
            }
            if run.seed.is_none() {
                let d = Diagnostic::new(
                    Code::E0405,
                    "an `expect` block needs a fixed seed",
                    *span,
                    "expectations are checked on a seeded run",
                )
                .with_help("add `run { seed = 42 }`");
                self.err(d);
            }
        }

        let (f, g, analysis) = (f?, g?, analysis?);
        let params = self
            .params
            .iter()
            .map(|p| p.as_ref().map(|(d, _)| d.clone()))
            .collect::<Option<Vec<_>>>()?;
        let lets = self
            .lets
            .iter()
            .zip(&lets_ast)
            .map(|(a, l)| a.as_ref().map(|a| (l.name.name.clone(), a.hir.clone())))
            .collect::<Option<Vec<_>>>()?;
        let data = self.data.iter().cloned().collect::<Option<Vec<_>>>()?;
        Some(Spec {
            name: file.name.clone(),
            version: file.version,
            dims: self.dims.clone(),
            params,
            lets,
            data,
            upper: self.upper.clone(),
            lower: self.lower.clone(),
            f: f.hir,
            g: g.hir,
            algorithm,
            algorithms,
            run,
            expects: expect_defs,
            analysis,
            warnings: Vec::new(),
            models: self.models.clone(),
        })
    }

    // ----- dims ---------------------------------------------------------

    fn dims_pass(&mut self, binds: &[&crate::ast::DimBind]) {
        let n = binds.len();
        let mut vals: Vec<Option<(Dim, Option<String>)>> = vec![None; n];
        let mut progress = true;
        while progress {
            progress = false;
            for (i, b) in binds.iter().enumerate() {
                if vals[i].is_some() {
                    continue;
                }
                if let Some(v) = self.dim_value(&b.value, &vals, &b.name.name) {
                    vals[i] = Some(v);
                    progress = true;
                }
            }
        }
        for (i, b) in binds.iter().enumerate() {
            if let Some((d, origin)) = vals[i].take() {
                self.dims.push((b.name.name.clone(), d, origin));
            } else {
                // Report the first unresolved atom.
                self.report_dim_atoms(
                    &b.value,
                    &binds
                        .iter()
                        .map(|b| b.name.name.as_str())
                        .collect::<Vec<_>>(),
                );
                self.dims
                    .push((b.name.name.clone(), Dim::Sym(b.name.name.clone()), None));
            }
        }
    }

    fn report_dim_atoms(&mut self, e: &DimExpr, dims: &[&str]) {
        for a in &e.atoms {
            if let DimAtom::Path(p) = a {
                let name = p.to_string();
                let ok = if p.parts.len() == 1 {
                    dims.contains(&name.as_str())
                } else {
                    self.data_fact_name(p).is_some()
                };
                if ok {
                    let d = Diagnostic::new(
                        Code::E0106,
                        format!("dimension `{name}` is defined in terms of itself"),
                        p.span,
                        "part of a cycle",
                    );
                    self.err(d);
                } else {
                    let mut d = Diagnostic::new(
                        Code::E0101,
                        format!("undeclared dimension `{name}`"),
                        p.span,
                        "not found in this file",
                    );
                    if let Some(s) = did_you_mean(&name, dims.iter().copied()) {
                        d = d.with_help(format!("a dimension with a similar name exists: `{s}`"));
                    } else {
                        d = d.with_help(
                            "declare it in `dims { … }` or use `source.rows` / `source.features`",
                        );
                    }
                    self.err(d);
                }
                return;
            }
        }
    }

    /// A data-fact dim (`train.features`) as the dim bound to it in `dims`,
    /// or its loaded value.
    fn bind_fact(&self, d: &Dim) -> Dim {
        let Dim::Sym(key) = d else { return d.clone() };
        if let Some(v) = self.facts.and_then(|f| f.get(key)) {
            return Dim::Known(*v);
        }
        self.dims
            .iter()
            .find(|(_, _, o)| o.as_deref() == Some(key.as_str()))
            .map_or_else(|| d.clone(), |(_, v, _)| v.clone())
    }

    /// `train.rows` / `train.features` → the fact's key.
    fn data_fact_name(&self, p: &Path) -> Option<String> {
        if p.parts.len() != 2 {
            return None;
        }
        let (src, fact) = (&p.parts[0].name, &p.parts[1].name);
        let ok = match self.names.get(src) {
            Some((Def::Data(_), _)) => {
                matches!(
                    fact.as_str(),
                    "rows" | "features" | "classes" | "groups" | "vocab"
                )
            }
            Some((Def::Model(_), _)) => matches!(fact.as_str(), "params" | "outputs"),
            _ => false,
        };
        ok.then(|| format!("{src}.{fact}"))
    }

    fn dim_value(
        &mut self,
        e: &DimExpr,
        vals: &[Option<(Dim, Option<String>)>],
        own: &str,
    ) -> Option<(Dim, Option<String>)> {
        let mut atoms = Vec::new();
        let mut origin = None;
        for a in &e.atoms {
            atoms.push(match a {
                DimAtom::Num(n, _) => Dim::Known(*n),
                DimAtom::Path(p) => {
                    if p.parts.len() == 1 {
                        match self.names.get(&p.parts[0].name) {
                            Some((Def::Dim(i), _)) => vals.get(*i)?.as_ref()?.0.clone(),
                            _ => return None,
                        }
                    } else {
                        let key = self.data_fact_name(p)?;
                        origin = Some(key.clone());
                        match self.facts.and_then(|f| f.get(&key)) {
                            Some(v) => Dim::Known(*v),
                            None => Dim::Sym(own.to_string()),
                        }
                    }
                }
            });
        }
        // Evaluate with * before + and -; symbolic results stay symbolic.
        if atoms.iter().any(|a| a.known().is_none()) {
            return Some((Dim::Sym(own.to_string()), origin));
        }
        let nums: Vec<u64> = atoms.iter().filter_map(Dim::known).collect();
        let mut terms: Vec<(char, u64)> = vec![('+', nums[0])];
        for (op, &v) in e.ops.iter().zip(&nums[1..]) {
            if *op == '*' {
                let last = terms.last_mut()?;
                if let Some(p) = last.1.checked_mul(v) {
                    last.1 = p;
                } else {
                    self.dim_overflow(e.span);
                    return Some((Dim::Known(0), origin));
                }
            } else {
                terms.push((*op, v));
            }
        }
        let mut acc: u64 = 0;
        for (op, v) in terms {
            let r = if op == '-' {
                acc.checked_sub(v)
            } else {
                acc.checked_add(v)
            };
            if let Some(r) = r {
                acc = r;
            } else {
                self.dim_overflow(e.span);
                return Some((Dim::Known(0), origin));
            }
        }
        Some((Dim::Known(acc), origin))
    }

    fn dim_overflow(&mut self, span: Span) {
        let d = Diagnostic::new(
            Code::E0204,
            "dimension arithmetic overflows",
            span,
            "the result is negative or does not fit in 64 bits",
        )
        .with_help("sizes are whole numbers >= 0");
        self.err(d);
    }

    fn dim_expr(&mut self, e: &DimExpr) -> Option<Dim> {
        if e.atoms.len() == 1 {
            if let DimAtom::Path(p) = &e.atoms[0] {
                if p.parts.len() == 1 {
                    let name = &p.parts[0].name;
                    if let Some(i) = self.dims.iter().position(|(n, _, _)| n == name) {
                        return Some(self.dims[i].1.clone());
                    }
                }
            }
        }
        let vals: Vec<Option<(Dim, Option<String>)>> = self
            .dims
            .iter()
            .map(|(_, d, o)| Some((d.clone(), o.clone())))
            .collect();
        let text = self.text(e.span).to_string();
        if let Some((d, _)) = self.dim_value(e, &vals, &text) {
            Some(d)
        } else {
            let names: Vec<String> = self.dims.iter().map(|(n, _, _)| n.clone()).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            self.report_dim_atoms(e, &refs);
            None
        }
    }

    fn type_shape(&mut self, t: &TypeExpr) -> Option<Shape> {
        let shape = match t {
            TypeExpr::Scalar(_) => Shape::scalar(),
            TypeExpr::Vector(n, _) => Shape(vec![self.dim_expr(n)?]),
            TypeExpr::Matrix(m, n, _) => {
                let (m, n) = (self.dim_expr(m), self.dim_expr(n));
                Shape(vec![m?, n?])
            }
            TypeExpr::Tensor(ds, span) => {
                let d = Diagnostic::new(
                    Code::E0202,
                    format!("tensor of rank {} is not supported", ds.len()),
                    *span,
                    "only scalars, vectors and matrices are lowered",
                )
                .with_help("use `matrix[m, n]`, or one variable per slice");
                self.err(d);
                return None;
            }
            TypeExpr::Params(m, _) => {
                if matches!(self.names.get(&m.name), Some((Def::Model(_), _))) {
                    // The backend gives the length: bound with the facts.
                    Shape(vec![self.bind_fact(&Dim::Sym(format!("{}.params", m.name)))])
                } else {
                    let d = Diagnostic::new(
                        Code::E0101,
                        format!("undeclared model `{}`", m.name),
                        m.span,
                        "not found in this file",
                    );
                    self.err(d);
                    return None;
                }
            }
        };
        if let Some(n) = shape
            .0
            .iter()
            .try_fold(1u64, |a, d| d.known().map_or(Some(a), |k| a.checked_mul(k)))
        {
            if n > MAX_ELEMENTS {
                let d = Diagnostic::new(
                    Code::E0204,
                    format!("{shape} has {n} elements; the limit is {MAX_ELEMENTS}"),
                    t.span(),
                    "too large",
                );
                self.err(d);
                return None;
            }
        } else {
            let d = Diagnostic::new(
                Code::E0204,
                format!("{shape} has more elements than fit in 64 bits"),
                t.span(),
                "too large",
            );
            self.err(d);
            return None;
        }
        Some(shape)
    }

    // ----- definitions order -------------------------------------------

    /// Orders params and lets so that each comes after what it uses;
    /// reports cycles (E0106). Iterative (no recursion over definitions).
    fn definition_order(
        &mut self,
        params: &[&crate::ast::ParamDecl],
        lets: &[&crate::ast::LetDecl],
    ) -> Vec<Def> {
        let nodes: Vec<(Def, &Expr, &Ident)> = params
            .iter()
            .enumerate()
            .map(|(i, p)| (Def::Param(i), &p.value, &p.name))
            .chain(
                lets.iter()
                    .enumerate()
                    .map(|(i, l)| (Def::Let(i), &l.value, &l.name)),
            )
            .collect();
        let index_of = |d: Def| nodes.iter().position(|(n, _, _)| *n == d);
        let deps: Vec<Vec<(usize, Span)>> = nodes
            .iter()
            .map(|(_, e, _)| {
                let mut out = Vec::new();
                let mut stack = vec![*e];
                while let Some(e) = stack.pop() {
                    match &e.kind {
                        ExprKind::Path(p) if p.parts.len() == 1 => {
                            if let Some((d @ (Def::Param(_) | Def::Let(_)), _)) =
                                self.names.get(&p.parts[0].name)
                            {
                                if let Some(j) = index_of(*d) {
                                    out.push((j, p.span));
                                }
                            }
                        }
                        _ => push_children(e, &mut stack),
                    }
                }
                out
            })
            .collect();
        // Kahn's algorithm.
        let n = nodes.len();
        let mut indeg = vec![0usize; n];
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, ds) in deps.iter().enumerate() {
            for &(j, _) in ds {
                indeg[i] += 1;
                users[j].push(i);
            }
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).rev().collect();
        let mut order = Vec::new();
        while let Some(i) = ready.pop() {
            order.push(nodes[i].0);
            for &u in &users[i] {
                indeg[u] -= 1;
                if indeg[u] == 0 {
                    ready.push(u);
                }
            }
        }
        if order.len() < n {
            // Report one cycle: walk dependencies among the remaining nodes.
            let start = (0..n).find(|&i| indeg[i] > 0).unwrap_or(0);
            let mut path = vec![start];
            let mut cur = start;
            let mut seen = vec![false; n];
            seen[start] = true;
            let cycle_start = loop {
                let Some(&(next, _)) = deps[cur].iter().find(|(j, _)| indeg[*j] > 0) else {
                    break start;
                };
                if seen[next] {
                    break next;
                }
                seen[next] = true;
                path.push(next);
                cur = next;
            };
            let pos = path.iter().position(|&p| p == cycle_start).unwrap_or(0);
            let cyc = &path[pos..];
            let names: Vec<String> = cyc
                .iter()
                .map(|&i| format!("`{}`", nodes[i].2.name))
                .collect();
            let first = nodes[cyc[0]].2;
            let mut d = Diagnostic::new(
                Code::E0106,
                format!(
                    "cyclic definitions: {} -> `{}`",
                    names.join(" -> "),
                    first.name
                ),
                first.span,
                "defined in terms of itself",
            );
            for &i in &cyc[1..] {
                d = d.with_secondary(nodes[i].2.span, "part of the cycle");
            }
            d = d.with_help("break the cycle: one of these definitions must not use the others");
            self.err(d);
        }
        order
    }

    // ----- initialisers -------------------------------------------------

    fn init_value(
        &mut self,
        e: &Expr,
        shape: Option<&Shape>,
        name_span: Span,
    ) -> Option<(Init, Attr)> {
        let leaf = |s: &Shape| {
            Attr::leaf(Hir {
                kind: HirKind::Const(0.0),
                shape: s.clone(),
                span: e.span,
            })
        };
        let (name, args) = match &e.kind {
            ExprKind::Path(p)
                if p.parts.len() == 1 && INITIALISERS.contains(&p.parts[0].name.as_str()) =>
            {
                (p.parts[0].name.as_str(), &[][..])
            }
            ExprKind::Call(c)
                if c.func.parts.len() == 1
                    && INITIALISERS.contains(&c.func.parts[0].name.as_str()) =>
            {
                (c.func.parts[0].name.as_str(), c.args.as_slice())
            }
            _ => {
                let a = self.expr(e)?;
                if a.dep_x != 0 || a.dep_y != 0 {
                    let d = Diagnostic::new(
                        Code::E0202,
                        "an initial value cannot depend on a variable",
                        e.span,
                        "depends on a variable",
                    );
                    self.err(d);
                    return None;
                }
                if let Some(s) = shape {
                    if !compat(a.shape(), s) && a.shape().rank() != 0 {
                        let d = Diagnostic::new(
                            Code::E0203,
                            format!("the value is {} but the declared type is {s}", a.shape()),
                            e.span,
                            format!("this is {}", a.shape()),
                        )
                        .with_secondary(name_span, format!("declared as {s}"));
                        self.err(d);
                        return None;
                    }
                }
                let mut a = a;
                if let Some(s) = shape {
                    a.hir.shape = s.clone();
                }
                return Some((Init::Expr(Box::new(a.hir.clone())), a));
            }
        };
        let shape = shape?;
        let mut named: BTreeMap<&str, f64> = BTreeMap::new();
        for a in args {
            let Some(n) = &a.name else {
                let d = Diagnostic::new(
                    Code::E0104,
                    format!("`{name}` takes named arguments"),
                    a.value.span,
                    "name this argument",
                )
                .with_help(format!("write e.g. `{name}(std = 0.1, seed = 1)`"));
                self.err(d);
                return None;
            };
            let v = self.const_number(&a.value)?;
            named.insert(n.name.as_str(), v);
        }
        let allowed: &[&str] = match name {
            "normal" => &["std", "seed", "mean"],
            "uniform" => &["low", "high", "seed"],
            "glorot" => &["seed"],
            "spd" => &["kappa", "seed"],
            _ => &[],
        };
        for a in args {
            if let Some(n) = &a.name {
                if !allowed.contains(&n.name.as_str()) {
                    let d = Diagnostic::new(
                        Code::E0104,
                        format!("`{name}` has no argument `{}`", n.name),
                        n.span,
                        "unknown argument",
                    )
                    .with_help(if allowed.is_empty() {
                        format!("`{name}` takes no arguments")
                    } else {
                        format!("`{name}` accepts: {}", allowed.join(", "))
                    });
                    self.err(d);
                    return None;
                }
            }
        }
        let seed = named.get("seed").copied().unwrap_or(0.0).max(0.0) as u64;
        let square = shape.rank() == 2 && shape.0[0] == shape.0[1];
        let init = match name {
            "zeros" => Init::Zeros,
            "ones" => Init::Ones,
            "eye" | "spd" if !square => {
                let d = Diagnostic::new(
                    Code::E0202,
                    format!("`{name}` needs a square matrix, not {shape}"),
                    e.span,
                    "only for square matrices",
                );
                self.err(d);
                return None;
            }
            "eye" => Init::Eye,
            "normal" => Init::Normal {
                std: named.get("std").copied().unwrap_or(1.0),
                seed,
            },
            "uniform" => Init::Uniform {
                low: named.get("low").copied().unwrap_or(0.0),
                high: named.get("high").copied().unwrap_or(1.0),
                seed,
            },
            "glorot" => Init::Glorot { seed },
            _ => {
                let kappa = named.get("kappa").copied().unwrap_or(10.0);
                if !(kappa >= 1.0 && kappa.is_finite()) {
                    let d = Diagnostic::new(
                        Code::E0202,
                        "`spd` needs kappa >= 1",
                        e.span,
                        "condition number below 1",
                    );
                    self.err(d);
                    return None;
                }
                Init::Spd { kappa, seed }
            }
        };
        let mut attr = leaf(shape);
        if matches!(init, Init::Zeros) {
            attr.sign = Sign::Zero;
        }
        Some((init, attr))
    }

    fn const_number(&mut self, e: &Expr) -> Option<f64> {
        let a = self.expr(e)?;
        if let Some(v) = a.konst {
            return Some(v);
        }
        let d = Diagnostic::new(
            Code::E0202,
            "expected a constant number",
            e.span,
            "not a constant known at check time",
        );
        self.err(d);
        None
    }

    // ----- expressions --------------------------------------------------

    fn objective(&mut self, e: &Expr, level: LevelKind) -> Option<Attr> {
        let a = self.expr(e)?;
        if let Some(at) = self.find_correct(&a.hir) {
            let d = Diagnostic::new(
                Code::E0202,
                format!(
                    "the {} objective uses `correct`, which has no gradient",
                    level.name()
                ),
                at,
                "piecewise constant",
            )
            .with_help("use `correct` in a `let` named in `run { metrics = [...] }`");
            self.err(d);
            return None;
        }
        if a.shape().rank() != 0 {
            let d = Diagnostic::new(
                Code::E0202,
                format!(
                    "the {} objective must be a scalar, not {}",
                    level.name(),
                    a.shape()
                ),
                e.span,
                format!("this is {}", a.shape()),
            )
            .with_help("reduce it with `sum(…)`, `mean(…)` or `norm2sq(…)`");
            self.err(d);
            return None;
        }
        Some(a)
    }

    fn resolve_error(&mut self, p: &Path) {
        let name = p.to_string();
        let mut cands: Vec<(String, Span, &'static str)> = self
            .names
            .iter()
            .map(|(n, (d, s))| {
                let what = match d {
                    Def::Dim(_) => "dimension",
                    Def::Param(_) => "param",
                    Def::Let(_) => "let",
                    Def::Data(_) => "data",
                    Def::Model(_) => "model",
                    Def::Var(LevelKind::Upper, _) => "upper variable",
                    Def::Var(LevelKind::Lower, _) => "lower variable",
                };
                (n.clone(), *s, what)
            })
            .collect();
        cands.extend(
            self.scope
                .iter()
                .map(|(n, _)| (n.clone(), p.span, "sample")),
        );
        cands.sort_by(|a, b| a.0.cmp(&b.0));
        let mut d = Diagnostic::new(
            Code::E0101,
            format!("undeclared name `{name}`"),
            p.span,
            "not found in this file",
        );
        if let Some(best) = did_you_mean(&name, cands.iter().map(|c| c.0.as_str())) {
            if let Some((n, s, what)) = cands.iter().find(|c| c.0 == best) {
                let (l, c) = self.map.line_col(s.start);
                let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                d = d.with_help(format!(
                    "{article} {what} with a similar name exists: `{n}` (declared at {l}:{c})"
                ));
            }
        }
        self.err(d);
    }

    fn path(&mut self, p: &Path, span: Span) -> Option<Attr> {
        let first = &p.parts[0].name;
        let hir = |kind: HirKind, shape: Shape| Hir { kind, shape, span };
        // Sample variables shadow everything.
        if let Some(depth) = self.scope.iter().rev().position(|(n, _)| n == first) {
            let data_idx = self.scope[self.scope.len() - 1 - depth].1;
            let Some(field) = p.parts.get(1) else {
                let d = Diagnostic::new(
                    Code::E0202,
                    format!("`{first}` is a sample; use one of its fields"),
                    span,
                    "a whole sample is not a value",
                )
                .with_help(format!("write e.g. `{first}.x`"));
                self.err(d);
                return None;
            };
            let def = self.data.get(data_idx).cloned().flatten()?;
            let fields: Vec<_> = sample_fields(&def)
                .into_iter()
                .map(|(n, f, sh, b)| {
                    (
                        n,
                        f,
                        Shape(sh.0.iter().map(|d| self.bind_fact(d)).collect()),
                        b.map(|d| self.bind_fact(&d)),
                    )
                })
                .collect();
            let Some((_, f, shape, bound)) = fields.iter().find(|(n, ..)| *n == field.name) else {
                let names: Vec<&str> = fields.iter().map(|f| f.0).collect();
                let d = Diagnostic::new(
                    Code::E0101,
                    format!("samples of `{}` have no field `{}`", def.name, field.name),
                    field.span,
                    "unknown field",
                )
                .with_help(format!("fields: {}", names.join(", ")));
                self.err(d);
                return None;
            };
            if p.parts.len() > 2 {
                let d = Diagnostic::new(
                    Code::E0202,
                    "fields have no sub-fields",
                    p.parts[2].span,
                    "here",
                );
                self.err(d);
                return None;
            }
            let mut a = Attr::leaf(hir(HirKind::Field(depth, *f), shape.clone()));
            a.int_bound.clone_from(bound);
            if *f == Field::Weight {
                a.sign = Sign::Nonneg;
                a.weights.push((data_idx, span));
            }
            if matches!(f, Field::Index | Field::Group) {
                a.sign = Sign::Nonneg;
            }
            if *f == Field::Text && !self.allow_text {
                let d = Diagnostic::new(
                    Code::E0202,
                    format!("`{first}.text` is a token sequence, not a number"),
                    span,
                    "a token sequence",
                )
                .with_help(format!(
                    "pass it to a model: `phi(theta, {first}.text)` with `model phi: …`"
                ));
                self.err(d);
                return None;
            }
            return Some(a);
        }
        if p.parts.len() == 2 {
            if let Some(key) = self.data_fact_name(p) {
                let dim = match self.facts.and_then(|f| f.get(&key)) {
                    Some(v) => Some(*v),
                    None => self
                        .dims
                        .iter()
                        .find(|(_, _, o)| o.as_deref() == Some(key.as_str()))
                        .and_then(|(_, d, _)| d.known()),
                };
                let mut a = Attr::leaf(hir(
                    HirKind::Const(dim.unwrap_or(0) as f64),
                    Shape::scalar(),
                ));
                a.konst = dim.map(|v| v as f64);
                a.sign = Sign::Nonneg;
                if dim.is_none() {
                    let d = Diagnostic::new(
                        Code::E0202,
                        format!("`{key}` is known only after loading; bind it in `dims` first"),
                        span,
                        "not a constant here",
                    );
                    self.err(d);
                    return None;
                }
                return Some(a);
            }
        }
        let Some(&(def, _)) = self.names.get(first) else {
            self.resolve_error(p);
            return None;
        };
        if p.parts.len() > 1 {
            self.resolve_error(p);
            return None;
        }
        match def {
            Def::Dim(i) => {
                let d = self.dims.get(i)?.1.clone();
                let Some(v) = d.known() else {
                    let diag = Diagnostic::new(
                        Code::E0202,
                        format!("dimension `{first}` is not known before data is loaded"),
                        span,
                        "used as a number",
                    );
                    self.err(diag);
                    return None;
                };
                let mut a = Attr::leaf(hir(HirKind::Const(v as f64), Shape::scalar()));
                a.konst = Some(v as f64);
                a.sign = Sign::of(v as f64);
                Some(a)
            }
            Def::Param(i) => {
                let (pd, attr) = self.params.get(i)?.as_ref()?;
                let mut a = attr.clone();
                a.hir = hir(HirKind::Param(i), pd.shape.clone());
                Some(a)
            }
            Def::Let(i) => {
                let mut a = self.lets.get(i)?.clone()?;
                a.hir = Hir {
                    kind: HirKind::Let(i),
                    shape: a.hir.shape.clone(),
                    span,
                };
                Some(a)
            }
            Def::Var(level, i) => {
                if self.in_const {
                    let d = Diagnostic::new(
                        Code::E0202,
                        "a constant cannot depend on a variable",
                        span,
                        "a variable",
                    );
                    self.err(d);
                    return None;
                }
                let shape = match level {
                    LevelKind::Upper => self.upper.get(i)?.shape.clone(),
                    LevelKind::Lower => self.lower.get(i)?.shape.clone(),
                };
                let mut a = Attr::leaf(hir(HirKind::Var(level, i), shape));
                match level {
                    LevelKind::Upper => {
                        a.dep_x = 1 << i;
                    }
                    LevelKind::Lower => {
                        a.dep_y = 1 << i;
                        a.curv = Curv::Affine;
                    }
                }
                Some(a)
            }
            Def::Data(_) => {
                let d = Diagnostic::new(
                    Code::E0202,
                    format!("data source `{first}` is not a value"),
                    span,
                    "a data source",
                )
                .with_help(format!(
                    "average over its samples: `mean over s in {first} {{ … }}`"
                ));
                self.err(d);
                None
            }
            Def::Model(_) => {
                let d = Diagnostic::new(
                    Code::E0202,
                    format!("model `{first}` is not a value"),
                    span,
                    "a model",
                )
                .with_help(format!(
                    "apply it to a sample's text: `{first}(theta, s.text)`"
                ));
                self.err(d);
                None
            }
        }
    }

    #[allow(clippy::too_many_lines)]
    fn expr(&mut self, e: &Expr) -> Option<Attr> {
        let span = e.span;
        match &e.kind {
            ExprKind::Num(v) => {
                let mut a = Attr::leaf(Hir {
                    kind: HirKind::Const(*v),
                    shape: Shape::scalar(),
                    span,
                });
                a.konst = Some(*v);
                a.sign = Sign::of(*v);
                Some(a)
            }
            ExprKind::Bool(_) | ExprKind::Str(_) => {
                let d = Diagnostic::new(
                    Code::E0202,
                    "expected a number, vector or matrix",
                    span,
                    if matches!(e.kind, ExprKind::Str(_)) {
                        "a string"
                    } else {
                        "a boolean"
                    },
                );
                self.err(d);
                None
            }
            ExprKind::Path(p) => {
                if p.parts.len() == 1
                    && INITIALISERS.contains(&p.parts[0].name.as_str())
                    && !self.names.contains_key(&p.parts[0].name)
                {
                    let d = Diagnostic::new(
                        Code::E0104,
                        format!(
                            "initialiser `{}` used inside an expression",
                            p.parts[0].name
                        ),
                        span,
                        "only after `init` or as a whole param value",
                    );
                    self.err(d);
                    return None;
                }
                self.path(p, span)
            }
            ExprKind::Array(items) => self.array(items, span),
            ExprKind::Call(c) => self.call(c),
            ExprKind::Neg(x) => {
                let mut a = self.expr(x)?;
                a.hir = Hir {
                    shape: a.hir.shape.clone(),
                    kind: HirKind::Neg(Box::new(a.hir)),
                    span,
                };
                a.curv = match a.curv {
                    Curv::Convex => Curv::Concave,
                    Curv::Concave => Curv::Convex,
                    c => c,
                };
                a.sign = a.sign.neg();
                a.konst = a.konst.map(|v| -v);
                                Some(a)
            }
            ExprKind::Transpose(x) => {
                let mut a = self.expr(x)?;
                let shape = match a.shape().0.as_slice() {
                    [] => Shape::scalar(),
                    [m, n] => Shape(vec![n.clone(), m.clone()]),
                    _ => {
                        let d = Diagnostic::new(
                            Code::E0202,
                            format!("transpose of {} is not defined", a.shape()),
                            span,
                            "vectors are columns; only matrices are transposed",
                        )
                        .with_help("`v @ M` multiplies a vector from the left");
                        self.err(d);
                        return None;
                    }
                };
                a.hir = Hir {
                    kind: HirKind::Transpose(Box::new(a.hir)),
                    shape,
                    span,
                };
                if a.curv != Curv::Const && a.curv != Curv::Affine {
                                    }
                Some(a)
            }
            ExprKind::Index(x, idx) => self.index(x, idx, span),
            ExprKind::Binary(op, l, r) => {
                let (la, ra) = (self.expr(l), self.expr(r));
                self.binary(*op, &la?, &ra?, span, l.span, r.span)
            }
            ExprKind::Reduce {
                op,
                var,
                source,
                body,
            } => {
                if self.in_const {
                    let d = Diagnostic::new(
                        Code::E0202,
                        "a constant cannot average over data",
                        span,
                        "a sample reduction",
                    );
                    self.err(d);
                    return None;
                }
                let data_idx = if source.parts.len() == 1 {
                    match self.names.get(&source.parts[0].name) {
                        Some((Def::Data(i), _)) => Some(*i),
                        Some(_) => {
                            let d = Diagnostic::new(
                                Code::E0202,
                                format!("`{source}` is not a data source"),
                                source.span,
                                "expected a data source",
                            );
                            self.err(d);
                            return None;
                        }
                        None => None,
                    }
                } else {
                    None
                };
                let Some(data_idx) = data_idx else {
                    self.resolve_error(source);
                    return None;
                };
                self.data.get(data_idx).cloned().flatten()?;
                self.scope.push((var.name.clone(), data_idx));
                let body_a = self.expr(body);
                self.scope.pop();
                let mut a = body_a?;
                a.hir = Hir {
                    shape: a.hir.shape.clone(),
                    kind: HirKind::Reduce(*op, data_idx, Box::new(a.hir)),
                    span,
                };
                a.konst = None;
                a.int_bound = None;
                Some(a)
            }
        }
    }

    fn array(&mut self, items: &[Expr], span: Span) -> Option<Attr> {
        let mut vals = Vec::new();
        let mut inner: Option<Shape> = None;
        let mut ok = true;
        for it in items {
            let Some(a) = self.expr(it) else {
                ok = false;
                continue;
            };
            let flat = match &a.hir.kind {
                _ if a.shape().rank() == 0 && a.konst.is_some() && a.dep_x == 0 && a.dep_y == 0 => {
                    vec![a.konst.unwrap_or(0.0)]
                }
                HirKind::Array(v) => v.clone(),
                _ => {
                    let d = Diagnostic::new(
                        Code::E0202,
                        "array literals hold numbers only",
                        it.span,
                        "not a literal",
                    )
                    .with_help(
                        "build vectors from variables with arithmetic, e.g. `a * e1 + b * e2`",
                    );
                    self.err(d);
                    ok = false;
                    continue;
                }
            };
            match &inner {
                None => inner = Some(a.shape().clone()),
                Some(s) if !compat(s, a.shape()) => {
                    let d = Diagnostic::new(
                        Code::E0201,
                        format!("array rows differ: {} and {}", s, a.shape()),
                        it.span,
                        format!("this is {}", a.shape()),
                    );
                    self.err(d);
                    ok = false;
                    continue;
                }
                Some(_) => {}
            }
            vals.extend(flat);
        }
        if !ok {
            return None;
        }
        let n = Dim::Known(items.len() as u64);
        let shape = match inner {
            None => Shape(vec![n]),
            Some(s) if s.rank() == 0 => Shape(vec![n]),
            Some(s) if s.rank() == 1 => Shape(vec![n, s.0[0].clone()]),
            Some(s) => {
                let d = Diagnostic::new(
                    Code::E0202,
                    format!("arrays of {s} are not supported"),
                    span,
                    "rank above 2",
                );
                self.err(d);
                return None;
            }
        };
        let mut a = Attr::leaf(Hir {
            kind: HirKind::Array(vals),
            shape,
            span,
        });
        a.sign = Sign::Unknown;
        Some(a)
    }

    fn index(&mut self, x: &Expr, idx: &[Expr], span: Span) -> Option<Attr> {
        let base = self.expr(x);
        let mut ids = Vec::new();
        for i in idx {
            ids.push(self.expr(i));
        }
        let mut a = base?;
        let ids: Vec<Attr> = ids.into_iter().collect::<Option<_>>()?;
        let rank = a.shape().rank();
        if ids.len() > rank || rank == 0 {
            let d = Diagnostic::new(
                Code::E0202,
                format!("{} index(es) into {}", ids.len(), a.shape()),
                span,
                "too many indices",
            );
            self.err(d);
            return None;
        }
        for (k, (i, e)) in ids.iter().zip(idx).enumerate() {
            let bound = a.shape().0[k].clone();
            let integral = i.konst.is_some_and(|v| v.fract() == 0.0 && v >= 0.0);
            if i.shape().rank() != 0
                || i.dep_x != 0
                || i.dep_y != 0
                || !(integral || i.int_bound.is_some())
            {
                let d = Diagnostic::new(
                    Code::E0202,
                    "an index must be a whole-number constant or an index field such as `s.index`",
                    e.span,
                    "not an index",
                );
                self.err(d);
                return None;
            }
            if let (Some(v), Some(n)) = (i.konst, bound.known()) {
                if v >= n as f64 {
                    let d = Diagnostic::new(
                        Code::E0201,
                        format!("index {} is out of range for length {n}", fmt_num(v)),
                        e.span,
                        "out of range",
                    )
                    .with_note("indices start at 0");
                    self.err(d);
                    return None;
                }
            }
            if let (Some(ib), Some(n)) = (&i.int_bound, bound.known()) {
                if let Some(m) = ib.known() {
                    if m > n {
                        let d = Diagnostic::new(
                            Code::E0201,
                            format!("index ranges over {m} values but the axis has length {n}"),
                            e.span,
                            "may be out of range",
                        );
                        self.err(d);
                        return None;
                    }
                }
            } else if let (Some(ib), None) = (&i.int_bound, bound.known()) {
                if ib != &bound && ib.known().is_none() {
                    // Symbolic bounds are compared again once data is loaded.
                }
            }
        }
        let shape = Shape(a.shape().0[ids.len()..].to_vec());
        let hirs = ids.iter().map(|i| i.hir.clone()).collect();
        a.hir = Hir {
            kind: HirKind::Index(Box::new(a.hir), hirs),
            shape,
            span,
        };
        a.konst = None;
        for i in &ids {
            a.weights.extend(i.weights.iter().copied());
        }
        Some(a)
    }

    #[allow(clippy::too_many_lines, clippy::too_many_arguments)]
    fn binary(
        &mut self,
        op: BinOp,
        l: &Attr,
        r: &Attr,
        span: Span,
        ls: Span,
        rs: Span,
    ) -> Option<Attr> {
        let (lsh, rsh) = (l.shape().clone(), r.shape().clone());
        let shape = match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div => {
                if lsh.rank() == 0 {
                    rsh.clone()
                } else if rsh.rank() == 0 || compat(&lsh, &rsh) {
                    lsh.clone()
                } else {
                    self.mismatch(op, &lsh, &rsh, span, ls, rs);
                    return None;
                }
            }
            BinOp::MatMul => match (lsh.0.as_slice(), rsh.0.as_slice()) {
                ([m, k1], [k2, n]) if dims_eq(k1, k2) => Shape(vec![m.clone(), n.clone()]),
                ([m, k1], [k2]) if dims_eq(k1, k2) => Shape(vec![m.clone()]),
                ([k1], [k2, n]) if dims_eq(k1, k2) => Shape(vec![n.clone()]),
                ([_], [_]) => {
                    let d =
                        Diagnostic::new(Code::E0202, "`@` of two vectors", span, "vector @ vector")
                            .with_help("write `dot(a, b)` for the inner product");
                    self.err(d);
                    return None;
                }
                ([], _) | (_, []) => {
                    let d = Diagnostic::new(
                        Code::E0202,
                        "`@` needs vectors or matrices",
                        span,
                        "a scalar operand",
                    )
                    .with_help("use `*` to scale");
                    self.err(d);
                    return None;
                }
                _ => {
                    self.mismatch(op, &lsh, &rsh, span, ls, rs);
                    return None;
                }
            },
            BinOp::Pow => {
                if r.shape().rank() != 0 || r.dep_x != 0 || r.dep_y != 0 || r.konst.is_none() {
                    let d = Diagnostic::new(
                        Code::E0202,
                        "the exponent of `^` must be a constant number",
                        rs,
                        "not a constant",
                    )
                    .with_help("write `exp(b * log(a))` for a variable exponent");
                    self.err(d);
                    return None;
                }
                lsh.clone()
            }
        };
        let mut a = Attr::leaf(Hir {
            kind: HirKind::Binary(op, Box::new(l.hir.clone()), Box::new(r.hir.clone())),
            shape,
            span,
        });
        a.dep_x = l.dep_x | r.dep_x;
        a.dep_y = l.dep_y | r.dep_y;
        a.smooth = l.smooth && r.smooth;
        a.weights = l.weights.iter().chain(&r.weights).copied().collect();
        let lconst = l.dep_y == 0;
        let rconst = r.dep_y == 0;
        match op {
            BinOp::Add | BinOp::Sub => {
                let sgn = if op == BinOp::Add { 1.0 } else { -1.0 };
                let rc = if op == BinOp::Sub {
                    match r.curv {
                        Curv::Convex => Curv::Concave,
                        Curv::Concave => Curv::Convex,
                        c => c,
                    }
                } else {
                    r.curv
                };
                a.curv = add_curv(l.curv, rc);
                a.sign = l.sign.add(if op == BinOp::Sub {
                    r.sign.neg()
                } else {
                    r.sign
                });
                a.konst = match (l.konst, r.konst) {
                    (Some(x), Some(y)) => Some(x + sgn * y),
                    _ => None,
                };
            }
            BinOp::Mul | BinOp::Div => {
                a.konst = match (l.konst, r.konst) {
                    (Some(x), Some(y)) if op == BinOp::Mul => Some(x * y),
                    (Some(x), Some(y)) if y != 0.0 => Some(x / y),
                    _ => None,
                };
                a.sign = if op == BinOp::Div && !matches!(r.sign, Sign::Pos | Sign::Neg) {
                    Sign::Unknown
                } else {
                    l.sign.mul(r.sign)
                };
                if lconst && rconst {
                    a.curv = Curv::Const;
                } else if (rconst && op == BinOp::Div) || (op == BinOp::Mul && (lconst || rconst)) {
                    let (k, v) = if op == BinOp::Mul && lconst {
                        (l.clone(), &r)
                    } else {
                        (r.clone(), &l)
                    };
                    let mut k = k;
                    if op == BinOp::Div {
                        k.konst = k.konst.filter(|&c| c != 0.0).map(|c| 1.0 / c);
                        k.sign = match k.sign {
                            Sign::Pos => Sign::Pos,
                            Sign::Neg => Sign::Neg,
                            _ => Sign::Unknown,
                        };
                    }
                    a.curv = match v.curv {
                        Curv::Affine => Curv::Affine,
                        Curv::Convex if k.sign.nonneg() => Curv::Convex,
                        Curv::Convex if k.sign.nonpos() => Curv::Concave,
                        Curv::Concave if k.sign.nonneg() => Curv::Concave,
                        Curv::Concave if k.sign.nonpos() => Curv::Convex,
                        _ => Curv::Unknown,
                    };
                } else {
                    a.curv = Curv::Unknown;
                }
            }
            BinOp::MatMul => {
                a.curv = if lconst && rconst {
                    Curv::Const
                } else if (lconst && r.curv == Curv::Affine) || (rconst && l.curv == Curv::Affine) {
                    Curv::Affine
                } else {
                    Curv::Unknown
                };
                a.sign = Sign::Unknown;
            }
            BinOp::Pow => {
                let p = r.konst.unwrap_or(1.0);
                a.konst = l.konst.map(|b| b.powf(p));
                a.smooth &= p.fract() == 0.0 && p >= 0.0 || p >= 2.0;
                if lconst {
                    a.curv = Curv::Const;
                    a.sign = if l.sign == Sign::Pos {
                        Sign::Pos
                    } else {
                        Sign::Unknown
                    };
                } else if (p - 2.0).abs() < f64::EPSILON && l.curv == Curv::Affine {
                    a.curv = Curv::Convex;
                    a.sign = Sign::Nonneg;
                } else if (p - 1.0).abs() < f64::EPSILON {
                    a.curv = l.curv;
                } else {
                    a.curv = Curv::Unknown;
                }
            }
        }
        Some(a)
    }

    fn mismatch(&mut self, op: BinOp, l: &Shape, r: &Shape, span: Span, ls: Span, rs: Span) {
        let (lt, rt) = (self.text(ls).to_string(), self.text(rs).to_string());
        let what = match op {
            BinOp::MatMul => "matrix product",
            BinOp::Add => "`+`",
            BinOp::Sub => "`-`",
            BinOp::Mul => "`*`",
            BinOp::Div => "`/`",
            BinOp::Pow => "`^`",
        };
        let mut d = Diagnostic::new(
            Code::E0201,
            format!("dimension mismatch in {what}"),
            span,
            format!("`{lt}` is {l}, `{rt}` is {r}"),
        );
        if op == BinOp::MatMul {
            d = d.with_note(
                "`A @ B` needs cols(A) == rows(B); a vector on the left multiplies as a row",
            );
            if l.rank() == 1 && r.rank() == 2 && dims_eq(&l.0[0], &r.0[1]) {
                d = d.with_help(format!("write `{rt} @ {lt}` (matrix times vector)"));
            }
        } else {
            d = d.with_note("elementwise operators need equal shapes; scalars broadcast");
        }
        self.err(d);
    }

    #[allow(clippy::too_many_lines)]
    fn call(&mut self, c: &Call) -> Option<Attr> {
        let name = c.func.to_string();
        let span = c.span;
        if let Some(&(Def::Model(m), _)) = self.names.get(&name) {
            return self.model_call(c, m);
        }
        let Some(&(_, b)) = Builtin::ALL.iter().find(|(n, _)| *n == name) else {
            let mut d = Diagnostic::new(
                Code::E0104,
                format!("unknown function `{name}`"),
                c.func.span,
                "not a built-in",
            );
            if INITIALISERS.contains(&name.as_str()) {
                d = d.with_help(
                    "initialisers are allowed only after `init` or as a whole param value",
                );
            } else if let Some(s) = did_you_mean(&name, Builtin::ALL.iter().map(|(n, _)| *n)) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            self.err(d);
            return None;
        };
        if let Some(a) = c.args.iter().find_map(|a| a.name.as_ref()) {
            let d = Diagnostic::new(
                Code::E0104,
                format!("`{name}` takes no named arguments"),
                a.span,
                "named argument",
            );
            self.err(d);
            return None;
        }
        if c.args.len() != b.arity() {
            let d = Diagnostic::new(
                Code::E0104,
                format!(
                    "`{name}` takes {} argument(s), {} given",
                    b.arity(),
                    c.args.len()
                ),
                span,
                "wrong number of arguments",
            );
            self.err(d);
            return None;
        }
        let mut args = Vec::new();
        for a in &c.args {
            args.push(self.expr(&a.value));
        }
        let args: Vec<Attr> = args.into_iter().collect::<Option<_>>()?;
        let x = &args[0];
        let scalar = Shape::scalar();
        let bad = |this: &mut Self, what: String, at: Span, label: String| {
            let d = Diagnostic::new(Code::E0201, what, at, label);
            this.err(d);
        };
        let shape = if b.elementwise() {
            x.shape().clone()
        } else {
            match b {
                Builtin::Dot | Builtin::SqLoss => {
                    if !compat(x.shape(), args[1].shape()) {
                        bad(
                            self,
                            format!(
                                "`{name}` needs equal shapes, not {} and {}",
                                x.shape(),
                                args[1].shape()
                            ),
                            span,
                            "shapes differ".into(),
                        );
                        return None;
                    }
                    scalar
                }
                Builtin::Quad => {
                    let (p, v) = (args[0].shape(), args[1].shape());
                    let ok = matches!((p.0.as_slice(), v.0.as_slice()), ([m, n], [k]) if dims_eq(m, n) && dims_eq(n, k));
                    if !ok {
                        bad(
                            self,
                            format!("`quad(P, y)` needs P square and y of matching length, not {p} and {v}"),
                            span,
                            "shapes do not fit".into(),
                        );
                        return None;
                    }
                    if args[0].dep_x != 0 || args[0].dep_y != 0 {
                        let d = Diagnostic::new(
                            Code::E0202,
                            "the matrix of `quad` must be constant",
                            c.args[0].value.span,
                            "depends on a variable",
                        );
                        self.err(d);
                        return None;
                    }
                    scalar
                }
                Builtin::LogisticLoss => {
                    if x.shape().rank() != 0 || args[1].shape().rank() != 0 {
                        bad(
                            self,
                            "`logistic_loss(z, y)` takes two scalars".into(),
                            span,
                            "not scalars".into(),
                        );
                        return None;
                    }
                    scalar
                }
                Builtin::Correct => {
                    if x.shape().rank() > 1 || args[1].shape().rank() != 0 {
                        bad(
                            self,
                            format!("`correct(z, label)` takes logits or a score and a label, not {} and {}", x.shape(), args[1].shape()),
                            span,
                            "wrong shapes".into(),
                        );
                        return None;
                    }
                    scalar
                }
                Builtin::SoftmaxXent => {
                    if x.shape().rank() != 1 || args[1].shape().rank() != 0 {
                        bad(
                            self,
                            format!("`softmax_xent(logits, class)` takes a vector and a class, not {} and {}", x.shape(), args[1].shape()),
                            span,
                            "wrong shapes".into(),
                        );
                        return None;
                    }
                    if args[1].int_bound.is_none()
                        && !args[1].konst.is_some_and(|v| v.fract() == 0.0 && v >= 0.0)
                    {
                        let d = Diagnostic::new(
                            Code::E0202,
                            "the class of `softmax_xent` must be a class label or a whole number",
                            c.args[1].value.span,
                            "not a class",
                        )
                        .with_help("encode the label with `label_encoding = class(k)`");
                        self.err(d);
                        return None;
                    }
                    if let (Some(ib), Some(k)) = (
                        args[1].int_bound.as_ref().and_then(Dim::known),
                        x.shape().0[0].known(),
                    ) {
                        if ib != k {
                            bad(
                                self,
                                format!("{ib} classes but {k} logits"),
                                span,
                                "class count differs".into(),
                            );
                            return None;
                        }
                    }
                    scalar
                }
                _ => scalar,
            }
        };
        let mut a = Attr::leaf(Hir {
            kind: HirKind::Call(b, args.iter().map(|a| a.hir.clone()).collect()),
            shape,
            span,
        });
        a.dep_x = args.iter().fold(0, |m, a| m | a.dep_x);
        a.dep_y = args.iter().fold(0, |m, a| m | a.dep_y);
        a.smooth = args.iter().all(|a| a.smooth);
        a.weights = args
            .iter()
            .flat_map(|a| a.weights.iter().copied())
            .collect();
        let all_const = a.dep_y == 0;
        let affine = |a: &Attr| matches!(a.curv, Curv::Affine | Curv::Const);
        if matches!(b, Builtin::Abs | Builtin::Norm2) && !all_const {
            a.smooth = false;
        }
        if b == Builtin::Correct {
            // Piecewise constant: no useful derivative, metrics only.
            a.smooth = false;
            a.curv = if all_const {
                Curv::Const
            } else {
                Curv::Unknown
            };
            return Some(a);
        }
        a.sign = match b {
            Builtin::Exp | Builtin::Sigmoid | Builtin::Softplus => Sign::Pos,
            Builtin::Abs
            | Builtin::Norm2
            | Builtin::Norm2sq
            | Builtin::Sqrt
            | Builtin::LogisticLoss
            | Builtin::SoftmaxXent
            | Builtin::SqLoss
            | Builtin::Correct => Sign::Nonneg,
            Builtin::Sum | Builtin::Mean => x.sign,
            _ => Sign::Unknown,
        };
        if all_const {
            a.curv = Curv::Const;
            if let Some(v) = x.konst {
                a.konst = match b {
                    Builtin::Exp => Some(v.exp()),
                    Builtin::Log if v > 0.0 => Some(v.ln()),
                    Builtin::Sqrt if v >= 0.0 => Some(v.sqrt()),
                    Builtin::Abs => Some(v.abs()),
                    _ => None,
                };
            }
            return Some(a);
        }
        a.curv = match b {
            Builtin::Exp
            | Builtin::Softplus
            | Builtin::Logsumexp
            | Builtin::Abs
            | Builtin::Norm2
                if affine(x) =>
            {
                Curv::Convex
            }
            Builtin::Log | Builtin::Sqrt if affine(x) => Curv::Concave,
            Builtin::Sum | Builtin::Mean => {
                x.curv
            }
            Builtin::Norm2sq if affine(x) => Curv::Convex,
            Builtin::SqLoss if affine(x) && args[1].dep_y == 0 => Curv::Convex,
            Builtin::Dot => {
                let (p, q) = (&args[0], &args[1]);
                if (p.dep_y == 0 && affine(q)) || (q.dep_y == 0 && affine(p)) {
                    Curv::Affine
                } else {
                    Curv::Unknown
                }
            }
            Builtin::Quad if affine(&args[1]) && matches!(args[0].hir.kind, HirKind::Param(_)) => {
                Curv::Convex
            }
            Builtin::LogisticLoss | Builtin::SoftmaxXent if affine(x) && args[1].dep_y == 0 => {
                Curv::Convex
            }
            _ => Curv::Unknown,
        };
        Some(a)
    }

    /// A metric must name a scalar `let`.
    fn metric_ok(&mut self, name: &str, span: Span) -> bool {
        if let Some(&(Def::Let(i), _)) = self.names.get(name) {
            let shape = match self.lets.get(i) {
                Some(Some(a)) => a.shape().clone(),
                _ => return false,
            };
            if shape.rank() == 0 {
                return true;
            }
            let d = Diagnostic::new(
                Code::E0405,
                format!("metric `{name}` is {shape}, not a scalar"),
                span,
                "not a scalar",
            )
            .with_help("reduce it with `mean over s in D { … }`, `sum(…)` or `norm2(…)`");
            self.err(d);
            return false;
        }
        let mut lets: Vec<&str> = self
            .names
            .iter()
            .filter(|(_, (d, _))| matches!(d, Def::Let(_)))
            .map(|(n, _)| n.as_str())
            .collect();
        lets.sort_unstable();
        let mut d = Diagnostic::new(
            Code::E0405,
            format!("unknown metric `{name}`"),
            span,
            "not a `let`",
        )
        .with_note("metrics are scalar `let`s, evaluated on the whole data at every trace line");
        if let Some(s) = did_you_mean(name, lets.iter().copied()) {
            d = d.with_help(format!("did you mean `{s}`?"));
        }
        self.err(d);
        false
    }

    /// The span of a `correct(…)` call in `h` or in the lets it uses.
    fn find_correct(&self, h: &Hir) -> Option<Span> {
        let mut stack = vec![h];
        let mut seen = vec![false; self.lets.len()];
        while let Some(h) = stack.pop() {
            match &h.kind {
                HirKind::Call(Builtin::Correct, _) => return Some(h.span),
                HirKind::Let(i) => {
                    if let (Some(false), Some(Some(l))) = (seen.get(*i), self.lets.get(*i)) {
                        seen[*i] = true;
                        if self.find_correct(&l.hir).is_some() {
                            return Some(h.span);
                        }
                    }
                }
                _ => h.push_children(&mut stack),
            }
        }
        None
    }

    /// `phi(theta, s.text)`: the model's outputs for one sample.
    fn model_call(&mut self, c: &Call, m: usize) -> Option<Attr> {
        let name = self.models.get(m)?.name.clone();
        let usage = format!("write `{name}(theta, s.text)` with `theta: params({name})`");
        if c.args.len() != 2 || c.args.iter().any(|a| a.name.is_some()) {
            let d = Diagnostic::new(
                Code::E0104,
                format!("model `{name}` takes its parameters and a token sequence"),
                c.span,
                "wrong arguments",
            )
            .with_help(usage);
            self.err(d);
            return None;
        }
        let theta = self.expr(&c.args[0].value)?;
        self.allow_text = true;
        let input = self.expr(&c.args[1].value);
        self.allow_text = false;
        let input = input?;
        let HirKind::Field(depth, Field::Text) = input.hir.kind else {
            let d = Diagnostic::new(
                Code::E0202,
                format!("the input of model `{name}` must be a sample's token sequence"),
                c.args[1].value.span,
                "not `s.text`",
            )
            .with_help(usage);
            self.err(d);
            return None;
        };
        let want = Shape(vec![self.bind_fact(&Dim::Sym(format!("{name}.params")))]);
        if !compat(theta.shape(), &want) {
            let d = Diagnostic::new(
                Code::E0201,
                format!(
                    "model `{name}` takes {want} parameters, not {}",
                    theta.shape()
                ),
                c.args[0].value.span,
                format!("this is {}", theta.shape()),
            )
            .with_help(usage);
            self.err(d);
            return None;
        }
        if mentions_field(&theta.hir) {
            let d = Diagnostic::new(
                Code::E0202,
                format!("the parameters of model `{name}` cannot depend on a sample"),
                c.args[0].value.span,
                "uses a sample field",
            )
            .with_help("models are evaluated once per minibatch with one parameter vector");
            self.err(d);
            return None;
        }
        let outputs = self.bind_fact(&Dim::Sym(format!("{name}.outputs")));
        let mut a = Attr::leaf(Hir {
            kind: HirKind::Model {
                model: m,
                theta: Box::new(theta.hir.clone()),
                depth,
            },
            shape: Shape(vec![outputs]),
            span: c.span,
        });
        a.dep_x = theta.dep_x;
        a.dep_y = theta.dep_y;
        // A model is nonlinear in its parameters: constant in y unless the
        // parameters are lower variables.
        a.curv = if theta.dep_y == 0 {
            Curv::Const
        } else {
            Curv::Unknown
        };
        Some(a)
    }

    // ----- roles and analysis ------------------------------------------

    fn assumes(&mut self, assumes: &[&Call]) -> Vec<(usize, f64, Span)> {
        let mut mu: Vec<(usize, f64, Span)> = Vec::new();
        for a in assumes {
            let name = a.func.to_string();
            if name.as_str() == "strongly_convex" {
                let var = match a.args.first().map(|x| &x.value.kind) {
                    Some(ExprKind::Path(p)) => match self.names.get(&p.to_string()) {
                        Some(&(Def::Var(LevelKind::Lower, v), _)) => Some(v),
                        _ => None,
                    },
                    _ => None,
                };
                let m = a
                    .args
                    .iter()
                    .find(|x| x.name.as_ref().is_some_and(|n| n.name == "mu"))
                    .and_then(|x| match x.value.kind {
                        ExprKind::Num(v) => Some(v),
                        _ => None,
                    });
                match (var, m) {
                    (Some(var), Some(v)) if v > 0.0 && v.is_finite() => {
                        if let Some(first) = mu.iter().find(|x| x.0 == var) {
                            let d = Diagnostic::new(
                                Code::E0104,
                                "`assume strongly_convex` is stated twice for one variable",
                                a.span,
                                "stated again here",
                            )
                            .with_secondary(first.2, "first stated here");
                            self.err(d);
                        } else {
                            mu.push((var, v, a.span));
                        }
                    }
                    _ => {
                        let d = Diagnostic::new(
                            Code::E0104,
                            "`assume strongly_convex` needs a lower variable and `mu = <positive number>`",
                            a.span,
                            "invalid assumption",
                        )
                        .with_help("write `assume strongly_convex(y, mu = 1e-3)`");
                        self.err(d);
                    }
                }
            } else {
                let d = Diagnostic::new(
                    Code::E0104,
                    format!("unknown assumption `{name}`"),
                    a.func.span,
                    "not a known fact",
                )
                .with_help("the known assumption is `strongly_convex(y, mu = …)`");
                self.err(d);
            }
        }
        mu
    }

    fn analyse(&mut self, g: &Attr, b: &crate::ast::LevelBlock, assumed: &[(usize, f64, Span)]) -> Analysis {
        let span = b.objective.span;
        if g.dep_y == 0 {
            let d = Diagnostic::new(
                Code::E0107,
                "the lower objective does not depend on any lower variable",
                span,
                "constant in the lower variables",
            )
            .with_note("y*(x) = argmin_y g(x, y) is undefined when g does not depend on y")
            .with_help(format!(
                "use `{}` in the lower objective",
                b.vars.first().map_or("y", |v| v.name.name.as_str())
            ));
            self.err(d);
        } else if g.dep_x == 0 {
            let d = Diagnostic::new(
                Code::W0108,
                "the lower objective does not depend on any upper variable",
                span,
                "constant in the upper variables",
            )
            .with_note("y* does not move with x, so the hypergradient is just ∇ₓf");
            self.err(d);
        }
        let lets: Vec<Option<&Hir>> = self.lets.iter().map(|l| l.as_ref().map(|a| &a.hir)).collect();
        let params: Vec<Option<&ParamDef>> = self
            .params
            .iter()
            .map(|p| p.as_ref().map(|(d, _)| d))
            .collect();
        let out = crate::convexity::analyse(&crate::convexity::Input {
            src: self.src,
            lets: &lets,
            params: &params,
            lower: &self.lower,
            g: &g.hir,
            span,
            assumptions: assumed,
        });
        for d in out.diags {
            self.err(d);
        }
        let deferred = out
            .weights
            .iter()
            .map(|&(data, span)| Deferred::NonnegWeights { data, span })
            .collect();
        Analysis {
            verdict: out.verdict,
            mu_text: out.mu_text,
            smooth: out.smooth,
            deferred,
            certificate: out.cert,
            span,
        }
    }

    // ----- algorithm, run, data, expect --------------------------------

    fn algorithm(&mut self, a: &crate::ast::AlgoBlock, span: Span) -> Option<AlgoDef> {
        let Some(info) = registry::find(&a.name.name) else {
            let names: Vec<&str> = registry::SOLVERS.iter().map(|s| s.name).collect();
            let mut d = Diagnostic::new(
                Code::E0401,
                format!("unknown algorithm `{}`", a.name.name),
                a.name.span,
                "not a registered algorithm",
            );
            let norm = a.name.name.replace('_', "-");
            if let Some(s) = did_you_mean(&norm, names.iter().copied()) {
                d = d.with_help(format!("did you mean `{s}`?"));
            }
            d = d.with_note(format!("available: {}", names.join(", ")));
            self.err(d);
            return None;
        };
        let mut settings: Vec<(String, Setting)> = Vec::new();
        let mut seen: HashMap<&str, Span> = HashMap::new();
        let mut ok = true;
        for (k, v) in &a.opts.entries {
            if let Some(first) = seen.get(k.name.as_str()) {
                let d = Diagnostic::new(
                    Code::E0102,
                    format!("`{}` is set twice", k.name),
                    k.span,
                    "set again here",
                )
                .with_secondary(*first, "first set here");
                self.err(d);
                ok = false;
                continue;
            }
            seen.insert(&k.name, k.span);
            let Some(p) = info.param(&k.name) else {
                let names: Vec<&str> = info.params.iter().map(|p| p.name).collect();
                let mut d = Diagnostic::new(
                    Code::E0402,
                    format!("`{}` has no hyperparameter `{}`", info.name, k.name),
                    k.span,
                    "unknown hyperparameter",
                );
                if let Some(s) = did_you_mean(&k.name, names.iter().copied()) {
                    d = d.with_help(format!("did you mean `{s}`?"));
                } else {
                    d = d.with_help(format!("`{}` accepts: {}", info.name, names.join(", ")));
                }
                if let Some(other) = registry::SOLVERS
                    .iter()
                    .find(|s| s.name != info.name && s.param(&k.name).is_some())
                {
                    d = d.with_note(format!("`{}` belongs to `{}`", k.name, other.name));
                }
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
                    let d = Diagnostic::new(
                        Code::E0403,
                        format!("`{}` takes a {} value", p.name, p.kind.name()),
                        v.span,
                        "not a literal of that type",
                    )
                    .with_note(format!("valid: {}", p.range));
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
                let d = Diagnostic::new(
                    Code::E0403,
                    format!(
                        "hyperparameter `{}` is invalid for `{}`: {e}",
                        p.name, info.name
                    ),
                    v.span,
                    format!("expected {expected}"),
                )
                .with_note(format!("`{}`: {}", p.name, p.doc));
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

    fn run_block(&mut self, o: &Opts) -> RunDef {
        const KEYS: &[&str] = &[
            "iterations",
            "epochs",
            "oracle_calls",
            "seed",
            "eval_every",
            "log",
            "threads",
            "metrics",
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
                let d = Diagnostic::new(
                    Code::E0405,
                    format!("run setting `{}` takes {what}", k.name),
                    v.span,
                    format!("expected {what}"),
                );
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
                    let mut d = Diagnostic::new(
                        Code::E0405,
                        format!("unknown run setting `{other}`"),
                        k.span,
                        "not a run setting",
                    );
                    d = match did_you_mean(other, KEYS.iter().copied()) {
                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                        None => d.with_help(format!("run settings: {}", KEYS.join(", "))),
                    };
                    self.err(d);
                }
            }
        }
        if r.iterations.is_some() && r.epochs.is_some() {
            let d = Diagnostic::new(
                Code::E0405,
                "`iterations` and `epochs` both set",
                o.span,
                "conflicting budgets",
            )
            .with_help("keep one of them");
            self.err(d);
        }
        r
    }

    #[allow(clippy::too_many_lines)]
    fn data_def(&mut self, d: &crate::ast::DataDecl) -> Option<DataDef> {
        let src = &d.source;
        let kind_name = src.func.to_string();
        let named = |key: &str| {
            src.args
                .iter()
                .find(|a| a.name.as_ref().is_some_and(|n| n.name == key))
        };
        let kind = match kind_name.as_str() {
            "csv" | "tsv" => {
                let path = match src.args.as_slice() {
                    [a] if a.name.is_none() => match &a.value.kind {
                        ExprKind::Str(s) => Some(s.clone()),
                        _ => None,
                    },
                    _ => None,
                };
                let Some(path) = path else {
                    let diag = Diagnostic::new(
                        Code::E0406,
                        format!("`{kind_name}` takes one file name"),
                        src.span,
                        "expected a string",
                    )
                    .with_help(format!("write `{kind_name}(\"data/train.{kind_name}\")`"));
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
                        let diag = Diagnostic::new(
                            Code::E0406,
                            format!(
                                "`{kind_name}` accepts named arguments {}",
                                allowed.join(", ")
                            ),
                            a.value.span,
                            "unexpected argument",
                        );
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
                            let diag = Diagnostic::new(
                                Code::E0406,
                                "`dim` must be a size",
                                a.value.span,
                                "not a size",
                            );
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
                        let diag = Diagnostic::new(
                            Code::E0406,
                            "`std` must be finite and >= 0",
                            a,
                            "invalid",
                        );
                        self.err(diag);
                        return None;
                    }
                    SourceKind::SynthNormal { dim, std, mean }
                } else {
                    let low = num("low", 0.0)?;
                    let high = num("high", 1.0)?;
                    if !(low < high && (high - low).is_finite()) {
                        let diag = Diagnostic::new(
                            Code::E0406,
                            "`low` must be below `high`",
                            src.span,
                            "empty range",
                        );
                        self.err(diag);
                        return None;
                    }
                    SourceKind::SynthUniform { dim, low, high }
                }
            }
            _ => {
                let mut diag = Diagnostic::new(
                    Code::E0406,
                    format!("unknown data source `{kind_name}`"),
                    src.func.span,
                    "not a data source",
                );
                let kinds = ["csv", "tsv", "synth.normal", "synth.uniform"];
                diag = match did_you_mean(&kind_name, kinds) {
                    Some(s) => diag.with_help(format!("did you mean `{s}`?")),
                    None => diag.with_help(format!("data sources: {}", kinds.join(", "))),
                };
                self.err(diag);
                return None;
            }
        };
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
        let mut text: Option<(String, Span)> = None;
        let mut vocab: Option<(String, Span)> = None;
        let mut max_len: u64 = 64;
        let mut features_given = false;
        let mut split_range: Option<(f64, f64)> = None;
        let mut split_seed = 0u64;
        let mut noise: Option<f64> = None;
        let mut noise_seed = 0u64;
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
                    let mut diag = Diagnostic::new(
                        Code::E0406,
                        format!("unknown data option `{}`", k.name),
                        k.span,
                        "not an option of this source",
                    );
                    diag = match did_you_mean(&k.name, keys.iter().copied()) {
                        Some(s) => diag.with_help(format!("did you mean `{s}`?")),
                        None => diag.with_help(format!("options: {}", keys.join(", "))),
                    };
                    self.err(diag);
                    ok = false;
                    continue;
                }
                let res: Result<(), &str> = match (k.name.as_str(), &v.kind) {
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
                    ("split_seed" | "noise_seed", ValueKind::Num { value, int: true })
                        if *value >= 0.0 =>
                    {
                        if k.name == "split_seed" {
                            split_seed = *value as u64;
                        } else {
                            noise_seed = *value as u64;
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
                        text = Some((c.clone(), v.span));
                        Ok(())
                    }
                    ("group", ValueKind::Str(c)) => {
                        def.group = Some((c.clone(), v.span));
                        Ok(())
                    }
                    ("vocab", ValueKind::Str(f)) => {
                        vocab = Some((f.clone(), v.span));
                        Ok(())
                    }
                    ("vocab", _) => Err("a file name in quotes"),
                    ("max_len", ValueKind::Num { value, int: true })
                        if (1.0..=65536.0).contains(value) =>
                    {
                        max_len = *value as u64;
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
                            split_range = Some((*a, *b));
                            Ok(())
                        }
                        _ => Err("`[from, to]` with 0 <= from < to <= 1"),
                    },
                    ("split", _) => Err("`[from, to]` with 0 <= from < to <= 1"),
                    ("label_noise", ValueKind::Num { value, .. }) if (0.0..1.0).contains(value) => {
                        noise = Some(*value);
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
                        features_given = true;
                        let strings = |items: &[Value]| -> Option<Vec<String>> {
                            items
                                .iter()
                                .map(|i| match &i.kind {
                                    ValueKind::Str(s) => Some(s.clone()),
                                    _ => None,
                                })
                                .collect()
                        };
                        match v2 {
                            ValueKind::Path(p) if p.to_string() == "all" => {
                                def.features = Features::All;
                                Ok(())
                            }
                            ValueKind::List(items) => match strings(items) {
                                Some(s) if !s.is_empty() => {
                                    def.features = Features::List(s);
                                    Ok(())
                                }
                                _ => Err("a non-empty list of column names"),
                            },
                            ValueKind::Call(p, args) if p.to_string() == "all_except" => {
                                match args.as_slice() {
                                    [(
                                        None,
                                        Value {
                                            kind: ValueKind::List(items),
                                            ..
                                        },
                                    )] => match strings(items) {
                                        Some(s) => {
                                            def.features = Features::AllExcept(s);
                                            Ok(())
                                        }
                                        None => Err("`all_except([\"col\", …])`"),
                                    },
                                    _ => Err("`all_except([\"col\", …])`"),
                                }
                            }
                            _ => Err("all, all_except([…]) or a list of column names"),
                        }
                    }
                    _ => Err("a valid value"),
                };
                if let Err(what) = res {
                    let diag = Diagnostic::new(
                        Code::E0406,
                        format!("invalid value for data option `{}`", k.name),
                        v.span,
                        format!("expected {what}"),
                    );
                    self.err(diag);
                    ok = false;
                }
            }
        }
        if matches!(def.encoding, LabelEncoding::Pm1 | LabelEncoding::Class(_))
            && def.label.is_none()
        {
            let diag = Diagnostic::new(
                Code::E0406,
                "`label_encoding` without a `label` column",
                d.name.span,
                "no label column",
            )
            .with_help("add `label = \"column\"`");
            self.err(diag);
            ok = false;
        }
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
                let diag = Diagnostic::new(
                    Code::E0406,
                    "a `text` column needs a `vocab` file",
                    span,
                    "no vocabulary",
                )
                .with_help("add `vocab = \"words.txt\"` (one word per line; GloVe files qualify)");
                self.err(diag);
                ok = false;
            }
            (None, Some((_, span))) => {
                let diag = Diagnostic::new(
                    Code::E0406,
                    "`vocab` without a `text` column",
                    span,
                    "nothing to tokenize",
                )
                .with_help("add `text = \"column\"`");
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
                let diag = Diagnostic::new(
                    Code::E0406,
                    "`label_noise` needs `label_encoding = class(k)` with k >= 2",
                    d.name.span,
                    "labels are not classes",
                );
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

    fn expectation(&mut self, e: &crate::ast::Expectation) -> Option<ExpectDef> {
        let text = e.target.to_string();
        let target = match text.as_str() {
            "F" => ExpectTarget::F,
            "mu" => ExpectTarget::Mu,
            _ => {
                if let Some((Def::Var(l, i), _)) = self.names.get(&text) {
                    ExpectTarget::Var(*l, *i)
                } else {
                    let diag = Diagnostic::new(
                    Code::E0407,
                    format!("cannot check `{text}`"),
                    e.target.span,
                    "not a variable, `F` or `mu`",
                )
                .with_help("expectations compare a variable, `F` (the noise-free upper objective) or `mu`");
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
            let diag = Diagnostic::new(
                Code::E0407,
                "expected a number or a list of numbers",
                e.value.span,
                "not numeric",
            );
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
                let diag = Diagnostic::new(
                    Code::E0407,
                    format!(
                        "`{text}` has {n} value(s), the expectation gives {}",
                        values.len()
                    ),
                    e.value.span,
                    "wrong length",
                );
                self.err(diag);
                return None;
            }
        }
        let tol = match (e.cmp, e.tol) {
            (Cmp::Approx, None) => {
                let diag =
                    Diagnostic::new(Code::E0407, "`~=` needs a tolerance", e.span, "no `tol`")
                        .with_help("append `tol 1e-2`");
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

/// Two dims are compatible unless both are known and differ; symbolic
/// dims are compared again, numerically, once data is loaded.
fn dims_eq(a: &Dim, b: &Dim) -> bool {
    match (a, b) {
        (Dim::Known(x), Dim::Known(y)) => x == y,
        _ => true,
    }
}

/// Shapes of equal rank whose dims are pairwise compatible.
fn compat(a: &Shape, b: &Shape) -> bool {
    a.rank() == b.rank() && a.0.iter().zip(&b.0).all(|(x, y)| dims_eq(x, y))
}

fn add_curv(a: Curv, b: Curv) -> Curv {
    use Curv::{Affine, Concave, Const, Convex, Unknown};
    match (a, b) {
        (Const | Affine, x) | (x, Const | Affine) => x,
        (Convex, Convex) => Convex,
        (Concave, Concave) => Concave,
        _ => Unknown,
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

/// Pushes the direct sub-expressions of `e` onto `stack`.
pub(crate) fn push_children<'e>(e: &'e Expr, stack: &mut Vec<&'e Expr>) {
    match &e.kind {
        ExprKind::Num(_) | ExprKind::Bool(_) | ExprKind::Str(_) | ExprKind::Path(_) => {}
        ExprKind::Array(items) => stack.extend(items),
        ExprKind::Call(c) => stack.extend(c.args.iter().map(|a| &a.value)),
        ExprKind::Neg(x) | ExprKind::Transpose(x) => stack.push(x),
        ExprKind::Binary(_, l, r) => {
            stack.push(l);
            stack.push(r);
        }
        ExprKind::Index(x, idx) => {
            stack.push(x);
            stack.extend(idx);
        }
        ExprKind::Reduce { body, .. } => stack.push(body),
    }
}

/// A model option's value as text: numbers as written, names, strings
/// without quotes, lists as `a,b`.
fn option_text(v: &Value) -> String {
    match &v.kind {
        ValueKind::Num { value, .. } => fmt_num(*value),
        ValueKind::Str(s) => s.clone(),
        ValueKind::Bool(b) => b.to_string(),
        ValueKind::Path(p) => p.to_string(),
        ValueKind::List(items) => items.iter().map(option_text).collect::<Vec<_>>().join(","),
        ValueKind::Call(p, args) => {
            let inner: Vec<String> = args
                .iter()
                .map(|(k, v)| match k {
                    Some(k) => format!("{}={}", k.name, option_text(v)),
                    None => option_text(v),
                })
                .collect();
            format!("{}({})", p, inner.join(","))
        }
        ValueKind::Opts(o) => o
            .entries
            .iter()
            .map(|(k, v)| format!("{}={}", k.name, option_text(v)))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// `true` when `h` reads a sample field.
fn mentions_field(h: &Hir) -> bool {
    let mut stack = vec![h];
    while let Some(h) = stack.pop() {
        if matches!(h.kind, HirKind::Field(..) | HirKind::Reduce(..)) {
            return true;
        }
        h.push_children(&mut stack);
    }
    false
}
