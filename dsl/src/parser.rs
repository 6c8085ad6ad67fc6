//! pest grammar → owned AST, with limits enforced before any recursive pass.

#![allow(missing_docs)] // the derived `Rule` enum documents the grammar's rules.

use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::sync::{LazyLock, Once};

use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use pest::Parser as _;

use crate::ast::{
    AlgoBlock, Arg, BinOp, Call, Cmp, DataDecl, Decl, DeclKind, DimAtom, DimBind, DimExpr,
    Expectation, Expr, ExprKind, File, Ident, LetDecl, LevelBlock, LevelKind, ModelDecl, Opts,
    ParamDecl, Path, RedOp, Span, TypeExpr, Value, ValueKind, VarDecl,
};
use crate::diag::{did_you_mean, Code, Diagnostic};

/// Largest accepted file, in bytes (E0604).
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// Deepest nesting of brackets and braces (E0601).
pub const MAX_NESTING: usize = 64;
/// Longest run of prefix `-` or of right-associative `^` (E0601).
pub const MAX_CHAIN: usize = 32;
/// Most tokens (operands and operators) in one top-level expression (E0602).
pub const MAX_EXPR_TOKENS: usize = 512;
/// Most numbers, signs and brackets inside the array literals of one
/// expression (E0602): a 256 × 256 matrix fits. They do not count against
/// [`MAX_EXPR_TOKENS`].
pub const MAX_LITERAL_TOKENS: usize = 1 << 18;
/// Most top-level declarations (E0603).
pub const MAX_DECLS: usize = 1000;

/// Words that cannot be used as names.
pub const RESERVED: &[&str] = &[
    "bilevel",
    "version",
    "dims",
    "data",
    "param",
    "model",
    "upper",
    "lower",
    "var",
    "let",
    "minimize",
    "init",
    "over",
    "in",
    "algorithm",
    "run",
    "expect",
    "assume",
    "tol",
    "true",
    "false",
    "scalar",
    "vector",
    "matrix",
    "tensor",
    "params",
];

const DECL_KEYWORDS: &[&str] = &[
    "dims",
    "data",
    "param",
    "model",
    "let",
    "upper",
    "lower",
    "assume",
    "algorithm",
    "run",
    "expect",
];

#[derive(pest_derive::Parser)]
#[grammar = "bilevel.pest"]
struct BilevelParser;

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    PrattParser::new()
        .op(Op::infix(Rule::add, Assoc::Left) | Op::infix(Rule::sub, Assoc::Left))
        .op(Op::infix(Rule::mul, Assoc::Left)
            | Op::infix(Rule::div, Assoc::Left)
            | Op::infix(Rule::matmul, Assoc::Left))
        .op(Op::prefix(Rule::neg))
        .op(Op::infix(Rule::pow, Assoc::Right))
        .op(Op::postfix(Rule::transpose) | Op::postfix(Rule::index))
});

static PEST_SETTINGS: Once = Once::new();

/// The span of a pair without trailing whitespace.
fn span_of(p: &Pair<'_, Rule>) -> Span {
    let s = p.as_span();
    Span::new(s.start(), s.start() + p.as_str().trim_end().len())
}

/// Parses a spec into its syntax tree, or returns every syntax-level
/// diagnostic found (syntax errors stop at the first one).
pub fn parse(src: &str) -> Result<File, Vec<Diagnostic>> {
    PEST_SETTINGS.call_once(|| {
        // A cumulative budget on rule calls bounds parse time (not depth).
        pest::set_call_limit(NonZeroUsize::new(50_000_000));
    });
    if src.len() > MAX_FILE_BYTES {
        return Err(vec![Diagnostic::file_level(
            Code::E0604,
            format!(
                "file is {} bytes; the limit is {MAX_FILE_BYTES} bytes",
                src.len()
            ),
        )
        .with_help(
            "split the data into a csv or tsv file and refer to it with `data`",
        )]);
    }
    if let Some(d) = check_nesting(src) {
        return Err(vec![d]);
    }
    let mut pairs = match BilevelParser::parse(Rule::file, src) {
        Ok(p) => p,
        Err(e) => return Err(vec![syntax_error(&e, src)]),
    };
    let Some(file) = pairs.next() else {
        return Err(vec![Diagnostic::file_level(Code::E0001, "empty parse")]);
    };
    let b = Builder {
        diags: RefCell::new(Vec::new()),
    };
    let f = b.file(file);
    let diags = b.diags.into_inner();
    if diags.is_empty() {
        Ok(f)
    } else {
        Err(diags)
    }
}

/// Scans brackets outside strings and comments; reports the first bracket
/// deeper than [`MAX_NESTING`].
fn check_nesting(src: &str) -> Option<Diagnostic> {
    let bytes = src.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Some(
                        Diagnostic::new(
                            Code::E0601,
                            format!("brackets nested more than {MAX_NESTING} deep"),
                            Span::new(i, i + 1),
                            format!("nesting level {depth}"),
                        )
                        .with_help("name intermediate results with `let`"),
                    );
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

fn describe(r: Rule) -> &'static str {
    match r {
        Rule::add
        | Rule::sub
        | Rule::mul
        | Rule::div
        | Rule::matmul
        | Rule::pow
        | Rule::transpose
        | Rule::index => "an operator",
        Rule::expr | Rule::neg | Rule::paren | Rule::call | Rule::reduction | Rule::array => {
            "an expression"
        }
        Rule::name | Rule::path | Rule::algo_name => "a name",
        Rule::number | Rule::signed_number => "a number",
        Rule::string | Rule::str_inner => "a string",
        Rule::boolean => "`true` or `false`",
        Rule::ty
        | Rule::scalar_ty
        | Rule::vector_ty
        | Rule::matrix_ty
        | Rule::tensor_ty
        | Rule::params_ty => "a type",
        Rule::dims_decl
        | Rule::data_decl
        | Rule::param_decl
        | Rule::model_decl
        | Rule::let_decl
        | Rule::level_block
        | Rule::assume_decl
        | Rule::algo_block
        | Rule::run_block
        | Rule::expect_block
        | Rule::level
        | Rule::kw_dims
        | Rule::kw_data
        | Rule::kw_param
        | Rule::kw_model
        | Rule::kw_let
        | Rule::kw_assume
        | Rule::kw_algorithm
        | Rule::kw_run
        | Rule::kw_expect => "a declaration",
        Rule::EOI => "end of file",
        Rule::lbrace => "`{`",
        Rule::rbrace => "`}`",
        Rule::lparen => "`(`",
        Rule::rparen => "`)`",
        Rule::lbracket => "`[`",
        Rule::rbracket => "`]`",
        Rule::comma => "`,`",
        Rule::colon => "`:`",
        Rule::equals => "`=`",
        Rule::kw_bilevel | Rule::header => "the header `bilevel \"name\"`",
        Rule::kw_version => "`version`",
        Rule::kw_var | Rule::var_decl => "`var`",
        Rule::kw_init => "`init`",
        Rule::kw_minimize | Rule::objective => "`minimize`",
        Rule::kw_tol => "`tol`",
        Rule::kw_over => "`over`",
        Rule::kw_in => "`in`",
        Rule::value | Rule::value_call | Rule::list | Rule::opts => "a value",
        Rule::kv | Rule::value_arg | Rule::arg => "`name = value`",
        Rule::expectation => "an expectation",
        Rule::cmp => "`~=`, `>=` or `<=`",
        Rule::dim_bind => "a dimension binding",
        Rule::dim_expr | Rule::dim_atom | Rule::dim_op => "a dimension",
        Rule::red_op => "`mean` or `sum`",
        _ => "a token",
    }
}

/// The token found at `pos`: a word, a number, or one character.
fn found_at(src: &str, pos: usize) -> (String, Span) {
    let rest = &src[pos.min(src.len())..];
    let Some(c) = rest.chars().next() else {
        return ("end of file".into(), Span::new(src.len(), src.len()));
    };
    let len = if c.is_ascii_alphanumeric() || c == '_' {
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
            .unwrap_or(rest.len())
    } else {
        c.len_utf8()
    };
    (format!("`{}`", &rest[..len]), Span::new(pos, pos + len))
}

fn syntax_error(e: &pest::error::Error<Rule>, src: &str) -> Diagnostic {
    use pest::error::{ErrorVariant, InputLocation};
    let pos = match e.location {
        InputLocation::Pos(p) | InputLocation::Span((p, _)) => p,
    };
    let (found, span) = found_at(src, pos);
    let mut expected: Vec<&'static str> = Vec::new();
    let mut at_decl = false;
    match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => {
            for r in positives {
                let d = describe(*r);
                at_decl |= d == "a declaration";
                if !expected.contains(&d) {
                    expected.push(d);
                }
            }
        }
        ErrorVariant::CustomError { message } => {
            return Diagnostic::new(Code::E0001, message.clone(), span, "here");
        }
    }
    let list = match expected.len() {
        0 => "something else".to_string(),
        1 => expected[0].to_string(),
        n => format!("{} or {}", expected[..n - 1].join(", "), expected[n - 1]),
    };
    let mut d = Diagnostic::new(
        Code::E0001,
        format!("expected {list}, found {found}"),
        span,
        format!("expected {list}"),
    );
    if at_decl {
        let word = found.trim_matches('`');
        if let Some(k) = did_you_mean(word, DECL_KEYWORDS.iter().copied()) {
            d = d.with_help(format!("did you mean `{k}`?"));
        } else {
            d = d.with_help(format!(
                "a declaration starts with one of: {}",
                DECL_KEYWORDS.join(", ")
            ));
        }
    }
    d
}

struct Builder {
    diags: RefCell<Vec<Diagnostic>>,
}

fn is_punct(r: Rule) -> bool {
    matches!(
        r,
        Rule::lbrace
            | Rule::rbrace
            | Rule::lparen
            | Rule::rparen
            | Rule::lbracket
            | Rule::rbracket
            | Rule::comma
            | Rule::colon
            | Rule::equals
            | Rule::kw_bilevel
            | Rule::kw_version
            | Rule::kw_dims
            | Rule::kw_data
            | Rule::kw_param
            | Rule::kw_model
            | Rule::kw_let
            | Rule::kw_assume
            | Rule::kw_var
            | Rule::kw_init
            | Rule::kw_minimize
            | Rule::kw_algorithm
            | Rule::kw_run
            | Rule::kw_expect
            | Rule::kw_tol
            | Rule::kw_over
            | Rule::kw_in
    )
}

/// The meaningful children of a pair (punctuation and keywords dropped).
fn kids(p: Pair<'_, Rule>) -> impl Iterator<Item = Pair<'_, Rule>> {
    p.into_inner().filter(|c| !is_punct(c.as_rule()))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[allow(clippy::unused_self)]
impl Builder {
    fn err(&self, d: Diagnostic) {
        self.diags.borrow_mut().push(d);
    }

    fn file(&self, p: Pair<'_, Rule>) -> File {
        let mut name = String::new();
        let mut header_span = Span::default();
        let mut version = None;
        let mut decls = Vec::new();
        for c in kids(p) {
            match c.as_rule() {
                Rule::header => {
                    header_span = span_of(&c);
                    for h in kids(c) {
                        match h.as_rule() {
                            Rule::string => name = self.string(&h),
                            Rule::number => version = self.number(&h),
                            _ => {}
                        }
                    }
                }
                Rule::EOI => {}
                _ => {
                    if decls.len() == MAX_DECLS {
                        self.err(
                            Diagnostic::new(
                                Code::E0603,
                                format!("more than {MAX_DECLS} declarations"),
                                span_of(&c),
                                "this declaration is over the limit",
                            )
                            .with_help("put bulk values into data files"),
                        );
                        break;
                    }
                    if let Some(d) = self.decl(c) {
                        decls.push(d);
                    }
                }
            }
        }
        File {
            name,
            header_span,
            version,
            decls,
        }
    }

    fn string(&self, p: &Pair<'_, Rule>) -> String {
        let s = p.as_str();
        unescape(&s[1..s.len() - 1])
    }

    fn number(&self, p: &Pair<'_, Rule>) -> Option<f64> {
        let text = p.as_str();
        let digits = text.trim_start_matches('-');
        let malformed = digits.ends_with('.')
            || digits.contains(".e")
            || digits.contains(".E")
            || digits.ends_with(['e', 'E', '+', '-']);
        if malformed {
            let fixed = digits.replace(".e", ".0e").replace(".E", ".0E");
            self.err(
                Diagnostic::new(
                    Code::E0003,
                    format!("malformed number `{text}`"),
                    span_of(p),
                    "digits are needed after `.` and after the exponent",
                )
                .with_help(if fixed.ends_with('.') {
                    format!("write `{fixed}0`")
                } else if fixed == digits {
                    "write the exponent's digits, as in `1e-3`".to_string()
                } else {
                    format!("write `{fixed}`")
                }),
            );
            return None;
        }
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                self.err(Diagnostic::new(
                    Code::E0003,
                    format!("number `{text}` overflows f64"),
                    span_of(p),
                    "too large for a 64-bit float",
                ));
                None
            }
        }
    }

    fn ident(&self, p: &Pair<'_, Rule>) -> Ident {
        Ident {
            name: p.as_str().to_string(),
            span: span_of(p),
        }
    }

    /// A declared name: reserved words are rejected with E0105.
    fn decl_name(&self, p: &Pair<'_, Rule>) -> Ident {
        let id = self.ident(p);
        if RESERVED.contains(&id.name.as_str()) {
            self.err(
                Diagnostic::new(
                    Code::E0105,
                    format!("`{}` is a reserved word", id.name),
                    id.span,
                    "cannot be used as a name",
                )
                .with_help(format!("choose another name, such as `{}_`", id.name)),
            );
        }
        id
    }

    fn path(&self, p: Pair<'_, Rule>) -> Path {
        let span = span_of(&p);
        let parts = p.into_inner().map(|n| self.ident(&n)).collect();
        Path { parts, span }
    }

    fn decl(&self, p: Pair<'_, Rule>) -> Option<Decl> {
        let span = span_of(&p);
        let rule = p.as_rule();
        let mut it = kids(p);
        let kind = match rule {
            Rule::dims_decl => {
                let mut binds = Vec::new();
                for b in it {
                    let mut bi = kids(b);
                    let name = self.decl_name(&bi.next()?);
                    let value = self.dim_expr(bi.next()?)?;
                    binds.push(DimBind { name, value });
                }
                DeclKind::Dims(binds)
            }
            Rule::data_decl => {
                let name = self.decl_name(&it.next()?);
                let source = self.call(it.next()?)?;
                let opts = match it.next() {
                    Some(o) => Some(self.opts(o)?),
                    None => None,
                };
                DeclKind::Data(DataDecl { name, source, opts })
            }
            Rule::param_decl => {
                let name = self.decl_name(&it.next()?);
                let ty = self.ty(it.next()?)?;
                let value = self.top_expr(it.next()?)?;
                DeclKind::Param(ParamDecl { name, ty, value })
            }
            Rule::model_decl => {
                let name = self.decl_name(&it.next()?);
                let kind = self.ident(&it.next()?);
                let opts = self.opts(it.next()?)?;
                DeclKind::Model(ModelDecl { name, kind, opts })
            }
            Rule::let_decl => {
                let name = self.decl_name(&it.next()?);
                let value = self.top_expr(it.next()?)?;
                DeclKind::Let(LetDecl { name, value })
            }
            Rule::assume_decl => DeclKind::Assume(self.call(it.next()?)?),
            Rule::level_block => {
                let lv = it.next()?;
                let level = if lv.as_str() == "upper" {
                    LevelKind::Upper
                } else {
                    LevelKind::Lower
                };
                let level_span = span_of(&lv);
                let mut vars = Vec::new();
                let mut objective = None;
                for c in it {
                    match c.as_rule() {
                        Rule::var_decl => {
                            let mut vi = kids(c);
                            let name = self.decl_name(&vi.next()?);
                            let ty = self.ty(vi.next()?);
                            let init = match vi.next() {
                                Some(e) => self.top_expr(e),
                                None => None,
                            };
                            if let Some(ty) = ty {
                                vars.push(VarDecl { name, ty, init });
                            }
                        }
                        Rule::objective => objective = self.top_expr(kids(c).next()?),
                        _ => {}
                    }
                }
                DeclKind::Level(LevelBlock {
                    level,
                    level_span,
                    vars,
                    objective: objective?,
                })
            }
            Rule::algo_block => {
                let name = self.ident(&it.next()?);
                let opts = self.opts(it.next()?)?;
                DeclKind::Algorithm(AlgoBlock { name, opts })
            }
            Rule::run_block => DeclKind::Run(self.opts(it.next()?)?),
            Rule::expect_block => {
                let mut out = Vec::new();
                for e in it {
                    let espan = span_of(&e);
                    let mut ei = kids(e);
                    let target = self.path(ei.next()?);
                    let cmp = match ei.next()?.as_str() {
                        "~=" => Cmp::Approx,
                        ">=" => Cmp::Ge,
                        _ => Cmp::Le,
                    };
                    let value = self.value(ei.next()?)?;
                    let tol = match ei.next() {
                        Some(t) => Some(self.number(&t)?),
                        None => None,
                    };
                    out.push(Expectation {
                        target,
                        cmp,
                        value,
                        tol,
                        span: espan,
                    });
                }
                DeclKind::Expect(out)
            }
            r => unreachable!("rule {r:?} is not a declaration"),
        };
        Some(Decl { kind, span })
    }

    fn dim_expr(&self, p: Pair<'_, Rule>) -> Option<DimExpr> {
        let span = span_of(&p);
        let mut atoms = Vec::new();
        let mut ops = Vec::new();
        let mut ok = true;
        for c in p.into_inner() {
            match c.as_rule() {
                Rule::dim_op => ops.push(c.as_str().chars().next().unwrap_or('+')),
                Rule::dim_atom => {
                    let Some(a) = c.into_inner().next() else {
                        continue;
                    };
                    if a.as_rule() == Rule::number {
                        let s = span_of(&a);
                        if let Ok(n) = a.as_str().parse::<u64>() {
                            atoms.push(DimAtom::Num(n, s));
                        } else {
                            ok = false;
                            self.err(
                                Diagnostic::new(
                                    Code::E0003,
                                    format!("`{}` is not a valid size", a.as_str()),
                                    s,
                                    "sizes are whole numbers that fit in 64 bits",
                                )
                                .with_help("write a whole number such as `100`"),
                            );
                        }
                    } else {
                        atoms.push(DimAtom::Path(self.path(a)));
                    }
                }
                _ => {}
            }
        }
        ok.then_some(DimExpr { atoms, ops, span })
    }

    fn ty(&self, p: Pair<'_, Rule>) -> Option<TypeExpr> {
        let inner = p.into_inner().next()?;
        let span = span_of(&inner);
        let rule = inner.as_rule();
        let mut dims = Vec::new();
        let mut model = None;
        for c in kids(inner) {
            match c.as_rule() {
                Rule::dim_expr => dims.push(self.dim_expr(c)?),
                Rule::name => model = Some(self.ident(&c)),
                _ => {}
            }
        }
        let mut dims = dims.into_iter();
        Some(match rule {
            Rule::scalar_ty => TypeExpr::Scalar(span),
            Rule::vector_ty => TypeExpr::Vector(dims.next()?, span),
            Rule::matrix_ty => TypeExpr::Matrix(dims.next()?, dims.next()?, span),
            Rule::tensor_ty => TypeExpr::Tensor(dims.collect(), span),
            Rule::params_ty => TypeExpr::Params(model?, span),
            r => unreachable!("rule {r:?} is not a type"),
        })
    }

    fn opts(&self, p: Pair<'_, Rule>) -> Option<Opts> {
        let span = span_of(&p);
        let mut entries = Vec::new();
        for kv in kids(p) {
            let mut k = kids(kv);
            let key = self.ident(&k.next()?);
            let v = self.value(k.next()?)?;
            entries.push((key, v));
        }
        Some(Opts { entries, span })
    }

    fn value(&self, p: Pair<'_, Rule>) -> Option<Value> {
        let span = span_of(&p);
        let inner = p.into_inner().next()?;
        let kind = match inner.as_rule() {
            Rule::signed_number => {
                let t = inner.as_str();
                let int = !t.contains(['.', 'e', 'E']);
                ValueKind::Num {
                    value: self.number(&inner)?,
                    int,
                }
            }
            Rule::string => ValueKind::Str(self.string(&inner)),
            Rule::boolean => ValueKind::Bool(inner.as_str() == "true"),
            Rule::list => {
                let mut items = Vec::new();
                for v in kids(inner) {
                    items.push(self.value(v)?);
                }
                ValueKind::List(items)
            }
            Rule::opts => ValueKind::Opts(self.opts(inner)?),
            Rule::value_call => {
                let mut it = kids(inner);
                let func = self.path(it.next()?);
                let mut args = Vec::new();
                for a in it {
                    let mut ai = kids(a).peekable();
                    let name = match ai.peek() {
                        Some(n) if n.as_rule() == Rule::name => {
                            let n = ai.next()?;
                            Some(self.ident(&n))
                        }
                        _ => None,
                    };
                    args.push((name, self.value(ai.next()?)?));
                }
                ValueKind::Call(func, args)
            }
            Rule::path => ValueKind::Path(self.path(inner)),
            r => unreachable!("rule {r:?} is not a value"),
        };
        Some(Value { kind, span })
    }

    fn call(&self, p: Pair<'_, Rule>) -> Option<Call> {
        let span = span_of(&p);
        let mut it = kids(p);
        let func = self.path(it.next()?);
        let mut args = Vec::new();
        let mut ok = true;
        for a in it {
            let mut ai = kids(a).peekable();
            let name = match ai.peek() {
                Some(n) if n.as_rule() == Rule::name => {
                    let n = ai.next()?;
                    Some(self.ident(&n))
                }
                _ => None,
            };
            match self.expr(ai.next()?) {
                Some(value) => args.push(Arg { name, value }),
                None => ok = false,
            }
        }
        ok.then_some(Call { func, args, span })
    }

    /// A top-level expression: limits first, then the (recursive) Pratt pass.
    fn top_expr(&self, p: Pair<'_, Rule>) -> Option<Expr> {
        if let Some(d) = check_expr_limits(&p) {
            self.err(d);
            return None;
        }
        self.expr(p)
    }

    fn expr(&self, p: Pair<'_, Rule>) -> Option<Expr> {
        let res = PRATT
            .map_primary(|prim| self.primary(prim))
            .map_prefix(|op, rhs| {
                let rhs = rhs?;
                let span = span_of(&op).join(rhs.span);
                Some(Expr {
                    kind: ExprKind::Neg(Box::new(rhs)),
                    span,
                })
            })
            .map_postfix(|lhs, op| {
                let lhs = lhs?;
                let span = lhs.span.join(span_of(&op));
                let kind = match op.as_rule() {
                    Rule::transpose => ExprKind::Transpose(Box::new(lhs)),
                    Rule::index => {
                        let mut idx = Vec::new();
                        for e in kids(op) {
                            idx.push(self.expr(e)?);
                        }
                        ExprKind::Index(Box::new(lhs), idx)
                    }
                    r => unreachable!("rule {r:?} is not a postfix operator"),
                };
                Some(Expr { kind, span })
            })
            .map_infix(|lhs, op, rhs| {
                let (lhs, rhs) = (lhs?, rhs?);
                let bop = match op.as_rule() {
                    Rule::add => BinOp::Add,
                    Rule::sub => BinOp::Sub,
                    Rule::mul => BinOp::Mul,
                    Rule::div => BinOp::Div,
                    Rule::matmul => BinOp::MatMul,
                    Rule::pow => BinOp::Pow,
                    r => unreachable!("rule {r:?} is not an infix operator"),
                };
                let span = lhs.span.join(rhs.span);
                Some(Expr {
                    kind: ExprKind::Binary(bop, Box::new(lhs), Box::new(rhs)),
                    span,
                })
            })
            .parse(p.into_inner());
        res
    }

    fn primary(&self, p: Pair<'_, Rule>) -> Option<Expr> {
        let span = span_of(&p);
        let kind = match p.as_rule() {
            Rule::number => ExprKind::Num(self.number(&p)?),
            Rule::boolean => ExprKind::Bool(p.as_str() == "true"),
            Rule::string => ExprKind::Str(self.string(&p)),
            Rule::path => ExprKind::Path(self.path(p)),
            Rule::paren => return self.expr(kids(p).next()?),
            Rule::array => {
                let mut items = Vec::new();
                let mut ok = true;
                for e in kids(p) {
                    match self.expr(e) {
                        Some(x) => items.push(x),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                ExprKind::Array(items)
            }
            Rule::call => ExprKind::Call(self.call(p)?),
            Rule::reduction => {
                let mut it = kids(p);
                let op = if it.next()?.as_str() == "mean" {
                    RedOp::Mean
                } else {
                    RedOp::Sum
                };
                let var = self.decl_name(&it.next()?);
                let source = self.path(it.next()?);
                let body = self.expr(it.next()?)?;
                ExprKind::Reduce {
                    op,
                    var,
                    source,
                    body: Box::new(body),
                }
            }
            r => unreachable!("rule {r:?} is not a primary expression"),
        };
        Some(Expr { kind, span })
    }
}

/// Counts tokens and operator chains of one top-level expression without
/// recursion (pest's flattened pair stream is iterative).
fn check_expr_limits(p: &Pair<'_, Rule>) -> Option<Diagnostic> {
    let mut tokens = 0usize;
    let mut literal = 0usize;
    // End of the array literals seen so far: the flattened stream is in
    // source order, so a token starting before it lies inside one.
    let mut array_end = 0usize;
    for q in std::iter::once(p.clone()).chain(p.clone().into_inner().flatten()) {
        let start = q.as_span().start();
        if start < array_end && matches!(q.as_rule(), Rule::number | Rule::neg | Rule::array) {
            if q.as_rule() == Rule::array {
                array_end = array_end.max(q.as_span().end());
            }
            literal += 1;
            if literal > MAX_LITERAL_TOKENS {
                return Some(
                    Diagnostic::new(
                        Code::E0602,
                        format!("array literal has more than {MAX_LITERAL_TOKENS} numbers, signs and brackets"),
                        span_of(p),
                        "this literal is too long",
                    )
                    .with_help("load large matrices from a csv file with `data`"),
                );
            }
            continue;
        }
        if q.as_rule() == Rule::array {
            array_end = array_end.max(q.as_span().end());
        }
        match q.as_rule() {
            Rule::add
            | Rule::sub
            | Rule::mul
            | Rule::div
            | Rule::matmul
            | Rule::pow
            | Rule::neg
            | Rule::transpose
            | Rule::index
            | Rule::number
            | Rule::path
            | Rule::string
            | Rule::boolean
            | Rule::call
            | Rule::reduction
            | Rule::array => {
                tokens += 1;
                if tokens > MAX_EXPR_TOKENS {
                    return Some(
                        Diagnostic::new(
                            Code::E0602,
                            format!(
                                "expression has more than {MAX_EXPR_TOKENS} operands and operators"
                            ),
                            span_of(p),
                            "this expression is too long",
                        )
                        .with_help("split it into several `let` bindings"),
                    );
                }
            }
            Rule::expr => {
                let mut neg_run = 0usize;
                let mut pow_run = 0usize;
                for c in q.clone().into_inner() {
                    match c.as_rule() {
                        Rule::neg => neg_run += 1,
                        Rule::pow => pow_run += 1,
                        Rule::add | Rule::sub | Rule::mul | Rule::div | Rule::matmul => {
                            pow_run = 0;
                            neg_run = 0;
                        }
                        _ => neg_run = 0,
                    }
                    if neg_run > MAX_CHAIN || pow_run > MAX_CHAIN {
                        let what = if neg_run > MAX_CHAIN {
                            "prefix `-`"
                        } else {
                            "`^`"
                        };
                        return Some(
                            Diagnostic::new(
                                Code::E0601,
                                format!("more than {MAX_CHAIN} chained {what} operators"),
                                span_of(&c),
                                "operator chain limit reached here",
                            )
                            .with_help("use brackets or `let` bindings to shorten the chain"),
                        );
                    }
                }
            }
            _ => {}
        }
    }
    None
}
