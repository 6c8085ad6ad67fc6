//! Semantic checks: names and cycles, shapes with symbolic dims, level roles,
//! the strong-convexity analysis of g in y, the `algorithm` block against the
//! core's registry, run settings, data options and expectations. Every
//! problem is reported at once; the result is a resolved, typed tree (HIR)
//! that the lowering consumes.

mod blocks;
mod builtins;
mod convexity;
mod data;
mod dims;
mod errors;
mod expr;
mod init;
mod names;

use std::collections::HashMap;

use crate::ast::{
    self, DeclKind, Expr, ExprKind, File, LevelKind, Opts, Span, TypeExpr, Value, ValueKind,
};
use crate::diag::Diagnostic;
use crate::hir::{
    fmt_num, AlgoDef, DataDef, DataFacts, Dim, ExpectDef, Hir, HirKind, Init, ModelDef, ParamDef,
    RunDef, Shape, Spec, VarDef, MAX_VARS,
};
use crate::SourceMap;

use convexity::Attr;

/// The diagnostics of the convexity analysis (built there, worded here).
pub(crate) use errors::convexity as convexity_errors;

/// Most undeclared names per file that get a did-you-mean search (each
/// compares the name with every declared one); later ones get none.
pub const MAX_SUGGESTIONS: usize = 100;

/// Most evaluations of sample-reduction bodies per oracle call, estimated
/// at check time (E0605).
pub const MAX_BODY_EVALS: f64 = 1e8;

/// The language versions this checker implements (`version 1`).
pub const SUPPORTED_VERSIONS: &[f64] = &[1.0];

const INITIALISERS: &[&str] = &["zeros", "ones", "eye", "normal", "uniform", "glorot", "spd"];

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
    /// Undeclared names given a did-you-mean search so far.
    suggestions: usize,
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
        suggestions: 0,
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
}

/// The declarations of a file, grouped by kind, in source order.
#[derive(Default)]
struct Decls<'f> {
    dims: Vec<&'f ast::DimBind>,
    params: Vec<&'f ast::ParamDecl>,
    lets: Vec<&'f ast::LetDecl>,
    data: Vec<&'f ast::DataDecl>,
    levels: Vec<&'f ast::LevelBlock>,
    algos: Vec<(&'f ast::AlgoBlock, Span)>,
    runs: Vec<&'f Opts>,
    expects: Vec<(&'f [ast::Expectation], Span)>,
    assumes: Vec<&'f ast::Call>,
}

/// The `upper` and `lower` blocks (the first of each).
type Levels<'f> = [(LevelKind, Option<&'f ast::LevelBlock>); 2];

impl Checker<'_> {
    /// The passes in order: names, dims, data, variable shapes, params and
    /// lets, variable inits, objectives, the analysis of g, blocks.
    fn run(&mut self, file: &File) -> Option<Spec> {
        if let Some(v) = file.version.filter(|v| !SUPPORTED_VERSIONS.contains(v)) {
            self.err(errors::unsupported_version(v, file.header_span));
        }
        let decls = self.collect(file);
        let levels = self.levels(file, &decls.levels);
        self.dims_pass(&decls.dims);
        for d in &decls.data {
            let def = self.data_def(d);
            self.data.push(def);
        }
        self.var_shapes(&levels);
        self.definitions(&decls.params, &decls.lets);
        self.var_inits(&levels);
        let [(_, upper_block), (_, lower_block)] = levels;
        let f = upper_block.and_then(|b| self.objective(&b.objective, LevelKind::Upper));
        let g = lower_block.and_then(|b| self.objective(&b.objective, LevelKind::Lower));
        for (obj, level) in [(&f, LevelKind::Upper), (&g, LevelKind::Lower)] {
            if let Some(o) = obj {
                self.bound_work(&o.hir, level);
            }
        }
        let assumed = self.assumes(&decls.assumes);
        let analysis = match (&g, lower_block) {
            (Some(g), Some(b)) => Some(self.analyse(g, b, &assumed)),
            _ => None,
        };
        let algorithms = self.algorithms(&decls.algos);
        let run = match decls.runs.as_slice() {
            [] => RunDef::default(),
            [first, rest @ ..] => {
                for r in rest {
                    let d = errors::second_run_block(r.span, first.span);
                    self.err(d);
                }
                self.run_block(first)
            }
        };
        // With `iterations` too, E0405 already refuses the pair.
        if let (Some(e), None, Some(o), Some(g)) =
            (run.epochs, run.iterations, decls.runs.first(), &g)
        {
            self.epochs_reachable(e, o, &g.hir);
        }
        let expects = self.expect_blocks(&decls.expects, &run);
        let (f, g, analysis) = (f?, g?, analysis?);
        let params = self
            .params
            .iter()
            .map(|p| p.as_ref().map(|(d, _)| d.clone()))
            .collect::<Option<Vec<_>>>()?;
        let lets = self
            .lets
            .iter()
            .zip(&decls.lets)
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
            algorithm: algorithms.first().cloned(),
            algorithms,
            run,
            expects,
            analysis,
            warnings: Vec::new(),
            models: self.models.clone(),
        })
    }

    /// Declares every name of the file and groups the declarations.
    fn collect<'f>(&mut self, file: &'f File) -> Decls<'f> {
        let mut out = Decls::default();
        for d in &file.decls {
            match &d.kind {
                DeclKind::Dims(b) => {
                    for bind in b {
                        self.declare(&bind.name, Def::Dim(out.dims.len()));
                        out.dims.push(bind);
                    }
                }
                DeclKind::Param(p) => {
                    self.declare(&p.name, Def::Param(out.params.len()));
                    out.params.push(p);
                }
                DeclKind::Let(l) => {
                    self.declare(&l.name, Def::Let(out.lets.len()));
                    out.lets.push(l);
                }
                DeclKind::Data(x) => {
                    self.declare(&x.name, Def::Data(out.data.len()));
                    out.data.push(x);
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
                DeclKind::Level(l) => out.levels.push(l),
                DeclKind::Algorithm(a) => out.algos.push((a, d.span)),
                DeclKind::Run(r) => out.runs.push(r),
                DeclKind::Expect(e) => out.expects.push((e, d.span)),
                DeclKind::Assume(a) => out.assumes.push(a),
            }
        }
        out
    }

    /// The first `upper` and `lower` blocks (repeats, missing blocks and
    /// empty blocks reported); declares their variables.
    fn levels<'f>(&mut self, file: &File, levels: &[&'f ast::LevelBlock]) -> Levels<'f> {
        let mut upper_block = None;
        let mut lower_block = None;
        for l in levels {
            let slot = match l.level {
                LevelKind::Upper => &mut upper_block,
                LevelKind::Lower => &mut lower_block,
            };
            if let Some(first) = slot {
                let first: &&ast::LevelBlock = first;
                let d = errors::second_level_block(l.level, l.level_span, first.level_span);
                self.err(d);
            } else {
                *slot = Some(*l);
            }
        }
        let out = [
            (LevelKind::Upper, upper_block),
            (LevelKind::Lower, lower_block),
        ];
        for (kind, blk) in out {
            match blk {
                None => {
                    let d = errors::missing_level_block(kind, file.header_span);
                    self.err(d);
                }
                Some(b) if b.vars.is_empty() => {
                    let d = errors::level_without_vars(kind, b.level_span);
                    self.err(d);
                }
                Some(b) if b.vars.len() > MAX_VARS => {
                    let d = errors::too_many_vars(b.level_span);
                    self.err(d);
                }
                Some(b) => {
                    for (i, v) in b.vars.iter().enumerate() {
                        self.declare(&v.name, Def::Var(kind, i));
                    }
                }
            }
        }
        out
    }

    /// The variables with their shapes (inits later, once params are known).
    fn var_shapes(&mut self, levels: &Levels<'_>) {
        for &(kind, blk) in levels {
            let Some(b) = blk else { continue };
            for v in &b.vars {
                let s = self.type_shape(&v.ty);
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

    /// Params and lets in dependency order (cycles → E0106).
    fn definitions(&mut self, params: &[&ast::ParamDecl], lets: &[&ast::LetDecl]) {
        let mut total = 0u64;
        self.params = vec![None; params.len()];
        self.lets = vec![None; lets.len()];
        let order = self.definition_order(params, lets);
        for def in order {
            match def {
                Def::Param(i) => {
                    let p = params[i];
                    let shape = self.type_shape(&p.ty);
                    let n = shape.as_ref().and_then(Shape::len).unwrap_or(0);
                    let before = total;
                    total = total.saturating_add(n as u64);
                    if total > crate::hir::MAX_PARAM_ELEMENTS as u64 {
                        // Reported once; later params are not evaluated.
                        if before <= crate::hir::MAX_PARAM_ELEMENTS as u64 {
                            self.err(errors::params_too_large(total, p.name.span));
                        }
                        continue;
                    }
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
                    let l = lets[i];
                    self.lets[i] = self.expr(&l.value);
                }
                _ => {}
            }
        }
    }

    /// The variables' initial values.
    fn var_inits(&mut self, levels: &Levels<'_>) {
        for &(kind, blk) in levels {
            let Some(b) = blk else { continue };
            for (i, v) in b.vars.iter().enumerate() {
                let Some(e) = &v.init else { continue };
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

    /// Refuses an objective whose sample reductions evaluate their bodies
    /// more than [`MAX_BODY_EVALS`] times per oracle call (E0605). The
    /// estimate multiplies the minibatch sizes of nested reductions and adds
    /// those of `let`s once (they are evaluated once per call); it is an
    /// upper bound, as loop-invariant parts are hoisted when lowered.
    fn bound_work(&mut self, h: &Hir, level: LevelKind) {
        let evals = self.body_evals(h, &mut vec![None; self.lets.len()]);
        if evals > MAX_BODY_EVALS {
            self.err(errors::too_much_work(level, evals, h.span));
        }
    }

    /// Body evaluations of the sample reductions in `h` per call; `lets`
    /// memoises those of `let`s (counted once, where first used).
    fn body_evals(&self, h: &Hir, lets: &mut Vec<Option<f64>>) -> f64 {
        match &h.kind {
            HirKind::Reduce(_, d, body) => {
                let batch = self
                    .data
                    .get(*d)
                    .and_then(Option::as_ref)
                    .map_or(1.0, |d| d.batch as f64);
                batch * (1.0 + self.body_evals(body, lets))
            }
            HirKind::Let(i) => {
                if lets.get(*i).is_some_and(Option::is_some) {
                    return 0.0;
                }
                let Some(Some(a)) = self.lets.get(*i) else {
                    return 0.0;
                };
                let hir = a.hir.clone();
                lets[*i] = Some(0.0);
                let e = self.body_evals(&hir, lets);
                lets[*i] = Some(e);
                e
            }
            _ => {
                let mut kids = Vec::new();
                h.push_children(&mut kids);
                kids.iter().map(|k| self.body_evals(k, lets)).sum()
            }
        }
    }

    /// The `algorithm` blocks: the first is the default solver; further
    /// blocks (one per solver) hold the settings `bilevel compare` uses.
    fn algorithms(&mut self, algos: &[(&ast::AlgoBlock, Span)]) -> Vec<AlgoDef> {
        let mut algorithms: Vec<AlgoDef> = Vec::new();
        for (a, span) in algos {
            let Some(def) = self.algorithm(a, *span) else {
                continue;
            };
            if let Some(first) = algorithms.iter().find(|d| d.info.name == def.info.name) {
                let d = errors::second_algorithm_block(def.info.name, a.name.span, first.span);
                self.err(d);
                continue;
            }
            algorithms.push(def);
        }
        algorithms
    }

    /// The expectations of every `expect` block (each needs a seed).
    fn expect_blocks(
        &mut self,
        blocks: &[(&[ast::Expectation], Span)],
        run: &RunDef,
    ) -> Vec<ExpectDef> {
        let mut out = Vec::new();
        for (block, span) in blocks {
            for e in *block {
                if let Some(d) = self.expectation(e) {
                    out.push(d);
                }
            }
            if run.seed.is_none() {
                let d = errors::expect_without_seed(*span);
                self.err(d);
            }
        }
        out
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
