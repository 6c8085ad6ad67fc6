//! The curvature rules: one bottom-up pass over the checked HIR of g that
//! gives every sub-expression a curvature in y, a sign, its value when it
//! is a y-free scalar, the selection structure of affine expressions, and a
//! per-coordinate [`Credit`] (a lower bound on the Hessian of the sum of
//! its elements). `let`s and parameters are analysed once each.

use crate::ast::{LevelKind, Span};
use crate::hir::{Field, Hir, HirKind, Init, ParamDef, VarDef};

use super::cover::{cap, Credit};
use super::diag::DiagBounds;

/// Curvature in y.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curv {
    /// Does not depend on y.
    Const,
    /// Affine in y.
    Affine,
    /// Convex in y.
    Convex,
    /// Concave in y.
    Concave,
    /// Not known.
    Unknown,
}

/// The sign of a value (elementwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// > 0.
    Pos,
    /// ≥ 0.
    Nonneg,
    /// = 0.
    Zero,
    /// ≤ 0.
    Nonpos,
    /// < 0.
    Neg,
    /// Not known.
    Unknown,
}

impl Sign {
    pub(super) fn of(v: f64) -> Sign {
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
    pub(super) fn nonneg(self) -> bool {
        matches!(self, Sign::Pos | Sign::Nonneg | Sign::Zero)
    }
    pub(super) fn nonpos(self) -> bool {
        matches!(self, Sign::Neg | Sign::Nonpos | Sign::Zero)
    }
    pub(super) fn neg(self) -> Sign {
        match self {
            Sign::Pos => Sign::Neg,
            Sign::Nonneg => Sign::Nonpos,
            Sign::Nonpos => Sign::Nonneg,
            Sign::Neg => Sign::Pos,
            s => s,
        }
    }
    pub(super) fn mul(self, o: Sign) -> Sign {
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
    pub(super) fn add(self, o: Sign) -> Sign {
        if self.nonneg() && o.nonneg() {
            if self == Sign::Pos || o == Sign::Pos {
                Sign::Pos
            } else if self == Sign::Zero && o == Sign::Zero {
                Sign::Zero
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

/// A y-free scalar: `num · sym`, where `sym` (when present) is a function
/// of x, data or parameters shown as text, with its sign.
#[derive(Debug, Clone, PartialEq)]
pub struct Factor {
    /// The numeric part.
    pub num: f64,
    /// The symbolic part and its sign.
    pub sym: Option<(String, Sign)>,
}

impl Factor {
    pub(super) fn num(v: f64) -> Factor {
        Factor { num: v, sym: None }
    }
    pub(super) fn sym(text: &str, sign: Sign) -> Factor {
        Factor {
            num: 1.0,
            sym: Some((cap(text), sign)),
        }
    }
    pub(super) fn sign(&self) -> Sign {
        let s = Sign::of(self.num);
        match &self.sym {
            None => s,
            Some((_, t)) => s.mul(*t),
        }
    }
    pub(super) fn mul(&self, o: &Factor) -> Factor {
        let sym = match (&self.sym, &o.sym) {
            (None, s) | (s, None) => s.clone(),
            (Some((a, sa)), Some((b, sb))) => Some((cap(&format!("{a}*{b}")), sa.mul(*sb))),
        };
        Factor {
            num: self.num * o.num,
            sym,
        }
    }
    pub(super) fn recip(&self) -> Factor {
        Factor {
            num: 1.0 / self.num,
            sym: self.sym.as_ref().map(|(t, s)| {
                let s = match s {
                    Sign::Pos | Sign::Neg => *s,
                    _ => Sign::Unknown,
                };
                (cap(&format!("1/({t})")), s)
            }),
        }
    }
    /// The credit of `cover` scaled by this factor when it is > 0 for all x,
    /// or `None` when its sign is not proven positive.
    pub(super) fn scale_credit(
        &self,
        c: &Credit,
        lambda: &dyn Fn(usize) -> String,
    ) -> Option<Credit> {
        match &self.sym {
            None if self.num > 0.0 => Some(c.scale(self.num)),
            Some((t, Sign::Pos)) if self.num > 0.0 => {
                Some(c.scale(self.num).scale_positive(t, lambda))
            }
            _ => None,
        }
    }
    /// The square (a coefficient of a quadratic).
    pub(super) fn square(&self) -> Factor {
        let sym = self.sym.as_ref().map(|(t, s)| {
            let s = match s {
                Sign::Pos | Sign::Neg => Sign::Pos,
                _ => Sign::Nonneg,
            };
            (cap(&format!("({t})^2")), s)
        });
        Factor {
            num: self.num * self.num,
            sym,
        }
    }
}

/// Which coordinates of y the elements of an affine expression select.
#[derive(Debug, Clone, PartialEq)]
pub enum Map {
    /// Element k is coordinate `start + k` (row-major slice of a variable).
    Range(usize, usize),
    /// One coordinate per element, not known at check time.
    Dynamic,
}

/// The structure of an affine expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Lin {
    /// Not affine in y, or y-free.
    No,
    /// Affine with no known structure.
    General,
    /// Element k is `coef · y[map(k)] + (y-free)`.
    Select(Factor, Map),
    /// The vector `coef · M · y[start..start + len] + (y-free)`, M the
    /// stored matrix parameter (index) of `len` columns.
    Mapped(Factor, usize, usize, usize),
}

/// What the analysis knows about one expression.
#[derive(Debug, Clone)]
pub struct Info {
    /// Curvature in y of every element.
    pub curv: Curv,
    /// Sign of every element.
    pub sign: Sign,
    /// The value, for y-free scalars.
    pub factor: Option<Factor>,
    /// Bit v: depends on lower variable v.
    pub dep_y: u64,
    /// Affine structure.
    pub lin: Lin,
    /// A lower bound on the Hessian of the sum of the elements.
    pub credit: Credit,
    /// Bounds on the diagonal of the Hessian of the sum of the elements.
    pub diag: DiagBounds,
    /// Every element is C² in y.
    pub smooth: bool,
}

impl Info {
    pub(super) fn konst(f: Factor, sign: Sign) -> Info {
        Info {
            curv: Curv::Const,
            sign,
            factor: Some(f),
            dep_y: 0,
            lin: Lin::No,
            credit: Credit::default(),
            diag: DiagBounds::zero(),
            smooth: true,
        }
    }
    pub(super) fn unknown(dep_y: u64) -> Info {
        Info {
            curv: Curv::Unknown,
            sign: Sign::Unknown,
            factor: None,
            dep_y,
            lin: Lin::No,
            credit: Credit::default(),
            diag: DiagBounds::unknown(dep_y),
            smooth: true,
        }
    }
    pub(super) fn affine(&self) -> bool {
        self.curv == Curv::Affine
    }
    pub(super) fn yfree(&self) -> bool {
        self.curv == Curv::Const
    }
    pub(super) fn convexish(&self) -> bool {
        matches!(self.curv, Curv::Affine | Curv::Convex)
    }
}

pub(super) fn add_curv(a: Curv, b: Curv) -> Curv {
    use Curv::{Affine, Concave, Const, Convex, Unknown};
    match (a, b) {
        (Const, x) | (x, Const) => x,
        (Unknown, _) | (_, Unknown) | (Convex, Concave) | (Concave, Convex) => Unknown,
        (Affine, x) | (x, Affine) => x,
        (Convex, Convex) => Convex,
        (Concave, Concave) => Concave,
    }
}

pub(super) fn neg_curv(c: Curv) -> Curv {
    match c {
        Curv::Convex => Curv::Concave,
        Curv::Concave => Curv::Convex,
        c => c,
    }
}

/// The pass over g.
pub struct Walker<'a> {
    /// The source text (for the text of symbolic factors).
    pub src: &'a str,
    /// `let` definitions.
    pub lets: &'a [Option<&'a Hir>],
    /// Parameters.
    pub params: &'a [Option<&'a ParamDef>],
    /// Offsets of the lower variables in y (when their sizes are known).
    pub offsets: Vec<Option<(usize, usize)>>,
    /// Analysed `let`s.
    let_memo: Vec<Option<Info>>,
    /// Analysed parameters.
    param_memo: Vec<Option<Info>>,
    /// Data sources of the enclosing sample reductions, innermost last.
    scope: Vec<usize>,
    /// Non-finite constants or coefficients: where, and what.
    pub overflows: Vec<(Span, String)>,
    /// Parameters that must be PSD for convexity (`quad`), with a use.
    pub quads: Vec<(usize, Span)>,
    /// Weight fields used: (data, span).
    pub weights: Vec<(usize, Span)>,
    /// Congruent products credited through λ_min(Mᵀ·sym(P)·M): (P or I,
    /// M, a use); entry j is credit key `Lambda(params.len() + j)`.
    pub congruent: Vec<(Option<usize>, usize, Span)>,
    /// Expressions analysed (bounds the rounding error of credits).
    pub nodes: usize,
}

impl<'a> Walker<'a> {
    /// A pass over expressions with these definitions.
    pub fn new(
        src: &'a str,
        lets: &'a [Option<&'a Hir>],
        params: &'a [Option<&'a ParamDef>],
        lower: &[VarDef],
    ) -> Self {
        let mut off = 0usize;
        let mut known = true;
        let offsets = lower
            .iter()
            .map(|v| {
                let len = v.shape.len().filter(|_| known);
                if let Some((l, e)) = len.and_then(|l| off.checked_add(l).map(|e| (l, e))) {
                    let r = (off, l);
                    off = e;
                    Some(r)
                } else {
                    known = false;
                    None
                }
            })
            .collect();
        Walker {
            src,
            lets,
            params,
            offsets,
            let_memo: vec![None; lets.len()],
            param_memo: vec![None; params.len()],
            scope: Vec::new(),
            overflows: Vec::new(),
            quads: Vec::new(),
            weights: Vec::new(),
            congruent: Vec::new(),
            nodes: 0,
        }
    }

    fn text(&self, span: Span) -> String {
        let t = self.src.get(span.start..span.end).unwrap_or("?");
        t.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The name of parameter `p` for texts.
    pub fn lambda_text(&self, p: usize) -> String {
        format!("λmin({})", self.key_name(p))
    }

    /// The name of credit key `p`: a parameter, or a congruent product
    /// such as `M'*P*M`.
    pub fn key_name(&self, p: usize) -> String {
        let name = |q: usize| {
            self.params
                .get(q)
                .and_then(|d| d.map(|d| d.name.clone()))
                .unwrap_or_else(|| format!("#{q}"))
        };
        match p
            .checked_sub(self.params.len())
            .and_then(|j| self.congruent.get(j))
        {
            Some(&(Some(q), m, _)) => format!("{}'*{}*{}", name(m), name(q), name(m)),
            Some(&(None, m, _)) => format!("{}'*{}", name(m), name(m)),
            None => name(p),
        }
    }

    /// The credit key of λ_min(Mᵀ·sym(P)·M) (P = I when `None`).
    pub(super) fn congruent_key(&mut self, p: Option<usize>, m: usize, span: Span) -> usize {
        let j = if let Some(j) = self.congruent.iter().position(|c| c.0 == p && c.1 == m) {
            j
        } else {
            self.congruent.push((p, m, span));
            self.congruent.len() - 1
        };
        self.params.len() + j
    }

    /// Analyses every `let` and parameter that `h` reaches, deepest first,
    /// so that the recursive pass never nests through definitions.
    fn prepare(&mut self, h: &'a Hir) {
        #[derive(Clone, Copy)]
        enum Def {
            Let(usize),
            Param(usize),
        }
        let mut todo: Vec<(Def, bool)> = Vec::new();
        let refs = |h: &Hir, out: &mut Vec<(Def, bool)>| {
            let mut stack = vec![h];
            while let Some(e) = stack.pop() {
                match &e.kind {
                    HirKind::Let(i) => out.push((Def::Let(*i), false)),
                    HirKind::Param(i) => out.push((Def::Param(*i), false)),
                    _ => e.push_children(&mut stack),
                }
            }
        };
        refs(h, &mut todo);
        while let Some((d, expanded)) = todo.pop() {
            let (done, body): (bool, Option<&'a Hir>) = match d {
                Def::Let(i) => (
                    self.let_memo.get(i).is_none_or(Option::is_some),
                    self.lets.get(i).copied().flatten(),
                ),
                Def::Param(i) => (
                    self.param_memo.get(i).is_none_or(Option::is_some),
                    self.params
                        .get(i)
                        .copied()
                        .flatten()
                        .and_then(|p| match &p.value {
                            Init::Expr(h) => Some(&**h),
                            _ => None,
                        }),
                ),
            };
            if done {
                continue;
            }
            if expanded {
                let info = match d {
                    Def::Let(_) => body.map_or_else(|| Info::unknown(0), |b| self.expr(b)),
                    Def::Param(i) => self.param_info(i),
                };
                match d {
                    Def::Let(i) => self.let_memo[i] = Some(info),
                    Def::Param(i) => self.param_memo[i] = Some(info),
                }
            } else {
                todo.push((d, true));
                if let Some(b) = body {
                    refs(b, &mut todo);
                }
            }
        }
    }

    /// Analyses g (or any expression).
    pub fn analyse(&mut self, h: &'a Hir) -> Info {
        self.prepare(h);
        self.expr(h)
    }

    fn param_info(&mut self, i: usize) -> Info {
        let Some(p) = self.params.get(i).copied().flatten() else {
            return Info::unknown(0);
        };
        let scalar = p.shape.rank() == 0;
        let sym = || Factor::sym(&p.name, Sign::Unknown);
        let (sign, factor) = match &p.value {
            Init::Zeros => (Sign::Zero, Factor::num(0.0)),
            Init::Ones => (Sign::Pos, Factor::num(1.0)),
            Init::Eye => (Sign::Nonneg, sym()),
            Init::Uniform { low, .. } if *low > 0.0 => (Sign::Pos, sym()),
            Init::Uniform { low, .. } if *low >= 0.0 => (Sign::Nonneg, sym()),
            Init::Expr(h) => {
                let info = self.expr(h);
                let f = match info.factor {
                    Some(f) if f.sym.is_none() => f,
                    _ => Factor::sym(&p.name, info.sign),
                };
                (info.sign, f)
            }
            _ => (Sign::Unknown, sym()),
        };
        let factor = match factor.sym {
            Some(_) => Factor::sym(&p.name, sign),
            None => factor,
        };
        Info::konst(factor, sign).scalar_only(scalar)
    }

    pub(super) fn expr(&mut self, h: &Hir) -> Info {
        self.nodes += 1;
        let info = match &h.kind {
            HirKind::Const(c) => Info::konst(Factor::num(*c), Sign::of(*c)),
            HirKind::Array(v) => {
                let s = v
                    .iter()
                    .map(|&x| Sign::of(x))
                    .reduce(|a, b| if a == b { a } else { a.add(b) })
                    .unwrap_or(Sign::Zero);
                Info::konst(Factor::num(0.0), s).scalar_only(false)
            }
            HirKind::Var(LevelKind::Upper, _) => Info::konst(
                Factor::sym(&self.text(h.span), Sign::Unknown),
                Sign::Unknown,
            )
            .scalar_only(h.shape.rank() == 0),
            HirKind::Var(LevelKind::Lower, v) => {
                let lin = match self.offsets.get(*v).copied().flatten() {
                    Some((o, l)) => Lin::Select(Factor::num(1.0), Map::Range(o, l)),
                    None => Lin::General,
                };
                Info {
                    curv: Curv::Affine,
                    sign: Sign::Unknown,
                    factor: None,
                    dep_y: 1u64 << (*v).min(63),
                    lin,
                    credit: Credit::default(),
                    diag: DiagBounds::zero(),
                    smooth: true,
                }
            }
            HirKind::Param(i) => self
                .param_memo
                .get(*i)
                .cloned()
                .flatten()
                .unwrap_or_else(|| Info::unknown(0)),
            HirKind::Let(i) => self
                .let_memo
                .get(*i)
                .cloned()
                .flatten()
                .unwrap_or_else(|| Info::unknown(0)),
            HirKind::Field(depth, f) => {
                let data = self
                    .scope
                    .len()
                    .checked_sub(depth + 1)
                    .and_then(|k| self.scope.get(k))
                    .copied();
                let sign = match f {
                    Field::Weight => {
                        if let Some(d) = data {
                            self.weights.push((d, h.span));
                        }
                        Sign::Nonneg
                    }
                    Field::Index | Field::Group => Sign::Nonneg,
                    _ => Sign::Unknown,
                };
                Info::konst(Factor::sym(&self.text(h.span), sign), sign)
                    .scalar_only(h.shape.rank() == 0)
            }
            HirKind::Neg(a) => {
                let a = self.expr(a);
                negate(a)
            }
            HirKind::Transpose(a) => {
                let mut a = self.expr(a);
                if a.yfree() {
                    a.factor = a.factor.filter(|_| h.shape.rank() == 0);
                } else if a.affine() {
                    a.lin = Lin::General;
                }
                a
            }
            HirKind::Reduce(op, data, body) => {
                self.scope.push(*data);
                let mut b = self.expr(body);
                self.scope.pop();
                // A mean over a minibatch keeps per-sample diagonal bounds;
                // a sum of B ≥ 1 samples only those of the right sign.
                if *op == crate::ast::RedOp::Sum {
                    b.diag = b.diag.at_least_once(b.dep_y);
                }
                if b.yfree() {
                    b.factor = Some(Factor::sym(&self.text(h.span), b.sign));
                } else if b.affine() {
                    b.lin = Lin::General;
                }
                b
            }
            HirKind::Model { theta, .. } => {
                let t = self.expr(theta);
                if t.yfree() {
                    Info::konst(
                        Factor::sym(&self.text(h.span), Sign::Unknown),
                        Sign::Unknown,
                    )
                } else {
                    Info::unknown(t.dep_y)
                }
            }
            HirKind::Index(a, idx) => self.index(h, a, idx),
            HirKind::Binary(op, a, b) => self.binary(h, *op, a, b),
            HirKind::Call(f, args) => self.call(h, *f, args),
        };
        self.check_finite(h, info)
    }

    /// Records a non-finite constant or coefficient (E0305).
    fn check_finite(&mut self, h: &Hir, info: Info) -> Info {
        if let Some(f) = &info.factor {
            if !f.num.is_finite() && f.sym.is_none() {
                let what = format!("`{}` evaluates to {}", self.text(h.span), f.num);
                self.overflows.push((h.span, what));
                return Info::unknown(info.dep_y);
            }
        }
        if let Lin::Select(f, _) | Lin::Mapped(f, ..) = &info.lin {
            if !f.num.is_finite() {
                let what = format!("the coefficient of `{}` is not finite", self.text(h.span));
                self.overflows.push((h.span, what));
                return Info::unknown(info.dep_y);
            }
        }
        if !(info.diag.upper.max_coefficient().is_finite()
            && info.diag.lower.max_coefficient().is_finite())
        {
            return Info {
                diag: DiagBounds::unknown(info.dep_y),
                ..info
            };
        }
        if !info.credit.max_coefficient().is_finite() {
            let what = format!("the curvature of `{}` overflows", self.text(h.span));
            self.overflows.push((h.span, what));
            return Info::unknown(info.dep_y);
        }
        info
    }

    fn index(&mut self, h: &Hir, a: &Hir, idx: &[Hir]) -> Info {
        let ai = self.expr(a);
        let ids: Vec<Info> = idx.iter().map(|i| self.expr(i)).collect();
        let dep = ids.iter().fold(ai.dep_y, |d, i| d | i.dep_y);
        if ids.iter().any(|i| !i.yfree()) {
            return Info::unknown(dep);
        }
        if ai.yfree() {
            let mut r = ai;
            r.factor = (h.shape.rank() == 0).then(|| Factor::sym(&self.text(h.span), r.sign));
            return r;
        }
        match ai.curv {
            Curv::Affine => {
                let lin = match &ai.lin {
                    Lin::Select(k, Map::Range(start, len)) => {
                        let consts: Option<Vec<usize>> = ids
                            .iter()
                            .map(|i| match &i.factor {
                                Some(Factor { num, sym: None })
                                    if num.fract() == 0.0 && *num >= 0.0 && *num < 9e15 =>
                                {
                                    Some(*num as usize)
                                }
                                _ => None,
                            })
                            .collect();
                        let map = consts
                            .and_then(|c| sub_range(&a.shape, *start, *len, &c))
                            .unwrap_or(Map::Dynamic);
                        Lin::Select(k.clone(), map)
                    }
                    Lin::Select(k, Map::Dynamic) => Lin::Select(k.clone(), Map::Dynamic),
                    _ => Lin::General,
                };
                Info {
                    lin,
                    sign: Sign::Unknown,
                    ..ai
                }
            }
            // Some elements of a convex (concave) expression: each element's
            // diagonal is ≥ 0 (≤ 0), so dropping elements keeps the upper
            // (lower) bound of the sum and 0 bounds the other side.
            Curv::Convex => Info {
                credit: Credit::default(),
                diag: DiagBounds {
                    upper: ai.diag.upper.clone(),
                    lower: super::diag::Side::zero(),
                },
                ..ai
            },
            Curv::Concave => Info {
                credit: Credit::default(),
                diag: DiagBounds {
                    upper: super::diag::Side::zero(),
                    lower: ai.diag.lower.clone(),
                },
                ..ai
            },
            _ => Info::unknown(dep),
        }
    }
}

/// The sub-range of a row-major slice `start..start+len` of shape `shape`
/// selected by constant indices, when they are in bounds.
fn sub_range(shape: &crate::hir::Shape, start: usize, len: usize, idx: &[usize]) -> Option<Map> {
    let dims: Vec<usize> = shape
        .0
        .iter()
        .map(|d| d.known().map(|v| v as usize))
        .collect::<Option<_>>()?;
    if dims.iter().product::<usize>() != len {
        return None;
    }
    match (dims.as_slice(), idx) {
        ([n], [i]) if i < n => Some(Map::Range(start + i, 1)),
        ([r, c], [i]) if i < r => Some(Map::Range(start + i * c, *c)),
        ([r, c], [i, j]) if i < r && j < c => Some(Map::Range(start + i * c + j, 1)),
        _ => None,
    }
}

/// `-a`.
pub(super) fn negate(a: Info) -> Info {
    Info {
        curv: neg_curv(a.curv),
        sign: a.sign.neg(),
        factor: a.factor.map(|f| Factor {
            num: -f.num,
            sym: f.sym,
        }),
        lin: match a.lin {
            Lin::Select(k, m) => Lin::Select(
                Factor {
                    num: -k.num,
                    sym: k.sym,
                },
                m,
            ),
            Lin::Mapped(k, m, s, l) => Lin::Mapped(
                Factor {
                    num: -k.num,
                    sym: k.sym,
                },
                m,
                s,
                l,
            ),
            l => l,
        },
        credit: Credit::default(),
        diag: a.diag.neg(),
        ..a
    }
}

impl Info {
    /// Drops the scalar value of a non-scalar constant.
    fn scalar_only(mut self, scalar: bool) -> Info {
        if !scalar {
            self.factor = None;
        }
        self
    }
}
