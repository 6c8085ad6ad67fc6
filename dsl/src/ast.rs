//! The syntax tree: owned, with byte spans, free of pest types.

use std::fmt;

/// A byte range `start..end` of the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end`.
    pub const fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// The smallest span covering both.
    #[must_use]
    pub fn join(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// A name with its span.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where it is written.
    pub span: Span,
}

/// A dotted path such as `s.x`.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    /// The segments.
    pub parts: Vec<Ident>,
    /// The whole path.
    pub span: Span,
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(&p.name)?;
        }
        Ok(())
    }
}

/// A whole `.bilevel` file.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    /// The problem's name from the header.
    pub name: String,
    /// The header's span.
    pub header_span: Span,
    /// The language version, if given.
    pub version: Option<f64>,
    /// Top-level declarations in source order.
    pub decls: Vec<Decl>,
}

/// A top-level declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Decl {
    /// What is declared.
    pub kind: DeclKind,
    /// The whole declaration.
    pub span: Span,
}

/// The kinds of declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum DeclKind {
    /// `dims { … }`.
    Dims(Vec<DimBind>),
    /// `data name = source(…) { … }`.
    Data(DataDecl),
    /// `param name: type = expr`.
    Param(ParamDecl),
    /// `model name: kind { … }`.
    Model(ModelDecl),
    /// `let name = expr`.
    Let(LetDecl),
    /// `upper { … }` or `lower { … }`.
    Level(LevelBlock),
    /// `assume fact(…)`.
    Assume(Call),
    /// `algorithm name { … }`.
    Algorithm(AlgoBlock),
    /// `run { … }`.
    Run(Opts),
    /// `expect { … }`.
    Expect(Vec<Expectation>),
}

/// `name = dim_expr` in a `dims` block.
#[derive(Debug, Clone, PartialEq)]
pub struct DimBind {
    /// The dimension's name.
    pub name: Ident,
    /// Its definition.
    pub value: DimExpr,
}

/// Flat dimension arithmetic: `terms[0] op terms[1] …`, evaluated with the
/// usual precedence of `*` over `+` and `-`.
#[derive(Debug, Clone, PartialEq)]
pub struct DimExpr {
    /// The atoms.
    pub atoms: Vec<DimAtom>,
    /// The operators between atoms (`atoms.len() - 1` of them).
    pub ops: Vec<char>,
    /// The whole expression.
    pub span: Span,
}

/// A dimension atom.
#[derive(Debug, Clone, PartialEq)]
pub enum DimAtom {
    /// A literal size.
    Num(u64, Span),
    /// A named dimension or a data fact such as `train.features`.
    Path(Path),
}

/// A data source declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct DataDecl {
    /// The source's name.
    pub name: Ident,
    /// The source constructor, e.g. `csv("file.csv")`.
    pub source: Call,
    /// The options block.
    pub opts: Option<Opts>,
}

/// A parameter declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDecl {
    /// The parameter's name.
    pub name: Ident,
    /// Its declared type.
    pub ty: TypeExpr,
    /// Its value or initialiser.
    pub value: Expr,
}

/// A model declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDecl {
    /// The model's name.
    pub name: Ident,
    /// The backend kind, e.g. `rnn`.
    pub kind: Ident,
    /// Backend options.
    pub opts: Opts,
}

/// A `let` binding.
#[derive(Debug, Clone, PartialEq)]
pub struct LetDecl {
    /// The bound name.
    pub name: Ident,
    /// Its definition.
    pub value: Expr,
}

/// Which level a block declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LevelKind {
    /// The upper level (objective f, variable x).
    Upper,
    /// The lower level (objective g, variable y).
    Lower,
}

impl LevelKind {
    /// `"upper"` or `"lower"`.
    pub const fn name(self) -> &'static str {
        match self {
            LevelKind::Upper => "upper",
            LevelKind::Lower => "lower",
        }
    }
}

/// An `upper` or `lower` block.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelBlock {
    /// Which level.
    pub level: LevelKind,
    /// The keyword's span.
    pub level_span: Span,
    /// Its variables.
    pub vars: Vec<VarDecl>,
    /// Its objective.
    pub objective: Expr,
}

/// A variable declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct VarDecl {
    /// The variable's name.
    pub name: Ident,
    /// Its type.
    pub ty: TypeExpr,
    /// Its initial value.
    pub init: Option<Expr>,
}

/// A declared type.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeExpr {
    /// `scalar`.
    Scalar(Span),
    /// `vector[n]`.
    Vector(DimExpr, Span),
    /// `matrix[m, n]`.
    Matrix(DimExpr, DimExpr, Span),
    /// `tensor[…]`.
    Tensor(Vec<DimExpr>, Span),
    /// `params(model)`.
    Params(Ident, Span),
}

impl TypeExpr {
    /// The type's span.
    pub fn span(&self) -> Span {
        match self {
            TypeExpr::Scalar(s)
            | TypeExpr::Vector(_, s)
            | TypeExpr::Matrix(_, _, s)
            | TypeExpr::Tensor(_, s)
            | TypeExpr::Params(_, s) => *s,
        }
    }
}

/// `algorithm name { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlgoBlock {
    /// The algorithm's registry name.
    pub name: Ident,
    /// Its hyperparameters.
    pub opts: Opts,
}

/// A `{ key = value, … }` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Opts {
    /// The entries in source order.
    pub entries: Vec<(Ident, Value)>,
    /// The whole block.
    pub span: Span,
}

impl Opts {
    /// The first entry named `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }
}

/// A literal configuration value.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The value.
    pub kind: ValueKind,
    /// Where it is written.
    pub span: Span,
}

/// The kinds of literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// A number; `int` is set when it was written without `.` or exponent.
    Num {
        /// The value.
        value: f64,
        /// Written as an integer.
        int: bool,
    },
    /// A string.
    Str(String),
    /// `true` or `false`.
    Bool(bool),
    /// `[a, b, …]`.
    List(Vec<Value>),
    /// `{ k = v, … }`.
    Opts(Opts),
    /// `f(a, k = b)`.
    Call(Path, Vec<(Option<Ident>, Value)>),
    /// A bare name such as `shuffle`.
    Path(Path),
}

/// One line of an `expect` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// What is compared: a variable, `F`, `mu`.
    pub target: Path,
    /// The comparison.
    pub cmp: Cmp,
    /// The expected value.
    pub value: Value,
    /// The tolerance of `~=`.
    pub tol: Option<f64>,
    /// The whole line.
    pub span: Span,
}

/// A comparison in an `expect` block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `~=`: within `tol`.
    Approx,
    /// `>=`.
    Ge,
    /// `<=`.
    Le,
}

/// A function call: `path(args…)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The function.
    pub func: Path,
    /// Positional and named arguments.
    pub args: Vec<Arg>,
    /// The whole call.
    pub span: Span,
}

/// A call argument.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// The name of a named argument.
    pub name: Option<Ident>,
    /// The argument.
    pub value: Expr,
}

/// An expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is written.
    pub span: Span,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `@`
    MatMul,
    /// `^`
    Pow,
}

impl BinOp {
    /// The operator's symbol.
    pub const fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
            BinOp::Pow => "^",
        }
    }
}

/// Reduction heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedOp {
    /// The sample mean.
    Mean,
    /// The sample sum.
    Sum,
}

/// The kinds of expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// A number literal.
    Num(f64),
    /// A boolean literal.
    Bool(bool),
    /// A string literal.
    Str(String),
    /// A (dotted) name.
    Path(Path),
    /// An array literal.
    Array(Vec<Expr>),
    /// A call.
    Call(Call),
    /// Prefix minus.
    Neg(Box<Expr>),
    /// A binary operation.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// Postfix transpose.
    Transpose(Box<Expr>),
    /// Postfix indexing.
    Index(Box<Expr>, Vec<Expr>),
    /// `mean over s in D { body }`.
    Reduce {
        /// `mean` or `sum`.
        op: RedOp,
        /// The sample variable.
        var: Ident,
        /// The data source.
        source: Path,
        /// The per-sample body.
        body: Box<Expr>,
    },
}
