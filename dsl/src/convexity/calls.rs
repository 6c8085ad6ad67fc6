//! Curvature rules of operators and built-in functions.

use crate::ast::BinOp;
use crate::hir::{Builtin, Hir, HirKind};

use super::cover::{cap, Cover, Credit, Key};
use super::diag::{DKey, DiagBounds};
use super::rules::{add_curv, neg_curv, negate, Curv, Factor, Info, Lin, Map, Sign, Walker};

/// Structural equality of two expressions, ignoring source positions.
pub fn same(a: &Hir, b: &Hir) -> bool {
    if a.shape != b.shape {
        return false;
    }
    match (&a.kind, &b.kind) {
        (HirKind::Const(x), HirKind::Const(y)) => x.to_bits() == y.to_bits(),
        (HirKind::Neg(x), HirKind::Neg(y)) | (HirKind::Transpose(x), HirKind::Transpose(y)) => {
            same(x, y)
        }
        (HirKind::Binary(o, x1, x2), HirKind::Binary(p, y1, y2)) => {
            o == p && same(x1, y1) && same(x2, y2)
        }
        (HirKind::Call(f, xs), HirKind::Call(g, ys)) => {
            f == g && xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same(x, y))
        }
        (HirKind::Index(x, xs), HirKind::Index(y, ys)) => {
            same(x, y) && xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same(x, y))
        }
        (HirKind::Reduce(..) | HirKind::Model { .. }, _) => false,
        (x, y) => x == y,
    }
}

/// The credit of a sum of squares `Σ_k (coef · y[map(k)] + c_k)²` times
/// `scale` (2 for norm2sq, 1 for sq_loss): 2·coef²·(multiplicity).
fn square_credit(coef: &Factor, map: &Map, scale: f64, lambda: &dyn Fn(usize) -> String) -> Credit {
    let Map::Range(start, len) = map else {
        return Credit::default();
    };
    let c = Credit::of(Key::One, Cover::range(*start, start + len, scale));
    coef.square().scale_credit(&c, lambda).unwrap_or_default()
}

/// The diagonal of the Hessian of that sum of squares: exactly
/// `scale · coef²` on the selected coordinates when coef is a number.
fn square_diag(coef: &Factor, map: &Map, scale: f64, dep: u64) -> DiagBounds {
    match (map, &coef.sym) {
        (Map::Range(start, len), None) => DiagBounds::exact(
            DKey::One,
            Cover::range(*start, start + len, scale * coef.num * coef.num),
        ),
        _ => DiagBounds::convex(dep),
    }
}

/// The diagonal bounds implied by a curvature alone.
fn by_curv(curv: Curv, dep: u64) -> DiagBounds {
    match curv {
        Curv::Const | Curv::Affine => DiagBounds::zero(),
        Curv::Convex => DiagBounds::convex(dep),
        Curv::Concave => DiagBounds::concave(dep),
        Curv::Unknown => DiagBounds::unknown(dep),
    }
}

impl Walker<'_> {
    pub(super) fn binary(&mut self, h: &Hir, op: BinOp, a: &Hir, b: &Hir) -> Info {
        let (ai, bi) = (self.expr(a), self.expr(b));
        let dep = ai.dep_y | bi.dep_y;
        let smooth = ai.smooth && bi.smooth;
        if ai.yfree() && bi.yfree() {
            return self.fold(h, op, &ai, &bi);
        }
        let mut r = match op {
            BinOp::Add | BinOp::Sub => {
                let bi = if op == BinOp::Sub { negate(bi) } else { bi };
                let curv = add_curv(ai.curv, bi.curv);
                let lin = if curv == Curv::Affine {
                    match (&ai.lin, &bi.lin) {
                        (Lin::Select(..) | Lin::Mapped(..), Lin::No) if a.shape == h.shape => {
                            ai.lin.clone()
                        }
                        (Lin::No, Lin::Select(..) | Lin::Mapped(..)) if b.shape == h.shape => {
                            bi.lin.clone()
                        }
                        _ => Lin::General,
                    }
                } else {
                    Lin::No
                };
                Info {
                    curv,
                    sign: ai.sign.add(bi.sign),
                    factor: None,
                    dep_y: dep,
                    lin,
                    credit: ai.credit.add(&bi.credit),
                    diag: ai.diag.add(&bi.diag),
                    smooth,
                }
            }
            BinOp::Mul => self.product(a, b, &ai, &bi),
            BinOp::Div if bi.yfree() => {
                let k = bi.factor.as_ref().map(Factor::recip);
                let kinfo = Info {
                    factor: k,
                    sign: match bi.sign {
                        Sign::Pos | Sign::Neg => bi.sign,
                        _ => Sign::Unknown,
                    },
                    ..bi
                };
                self.scaled(&kinfo, b.shape.rank() == 0, &ai, None)
            }
            BinOp::MatMul if ai.yfree() && bi.affine() || bi.yfree() && ai.affine() => Info {
                lin: self.mapped(a, b, &bi),
                sign: Sign::Unknown,
                ..Info::unknown(dep)
            }
            .with_curv(Curv::Affine),
            BinOp::Pow => self.power(&ai, &bi),
            _ => Info::unknown(dep),
        };
        r.dep_y = dep;
        r.smooth &= smooth;
        r
    }

    /// Both sides y-free.
    fn fold(&self, h: &Hir, op: BinOp, a: &Info, b: &Info) -> Info {
        let sign = match op {
            BinOp::Add => a.sign.add(b.sign),
            BinOp::Sub => a.sign.add(b.sign.neg()),
            BinOp::Mul => a.sign.mul(b.sign),
            BinOp::Div => match b.sign {
                Sign::Pos | Sign::Neg => a.sign.mul(b.sign),
                _ => Sign::Unknown,
            },
            BinOp::Pow => match (a.sign, &b.factor) {
                (Sign::Pos, _) => Sign::Pos,
                (_, Some(Factor { num, sym: None })) if num.fract() == 0.0 && num % 2.0 == 0.0 => {
                    if a.sign == Sign::Neg {
                        Sign::Pos
                    } else {
                        Sign::Nonneg
                    }
                }
                (s, _) if s.nonneg() => Sign::Nonneg,
                _ => Sign::Unknown,
            },
            BinOp::MatMul => Sign::Unknown,
        };
        let scalar = h.shape.rank() == 0;
        let factor = match (&a.factor, &b.factor) {
            (Some(x), Some(y)) if scalar => Some(match (op, &x.sym, &y.sym) {
                (BinOp::Mul, ..) => x.mul(y),
                (BinOp::Div, ..) => x.mul(&y.recip()),
                (BinOp::Add, None, None) => Factor::num(x.num + y.num),
                (BinOp::Sub, None, None) => Factor::num(x.num - y.num),
                (BinOp::Pow, None, None) => Factor::num(x.num.powf(y.num)),
                _ => Factor::sym(&self.text_of(h), sign),
            }),
            _ if scalar => Some(Factor::sym(&self.text_of(h), sign)),
            _ => None,
        };
        let mut r = Info::konst(Factor::num(0.0), sign);
        r.factor = factor;
        r
    }

    /// `a * b` with at least one side depending on y.
    fn product(&mut self, a: &Hir, b: &Hir, ai: &Info, bi: &Info) -> Info {
        let dep = ai.dep_y | bi.dep_y;
        if ai.yfree() {
            return self.scaled(ai, a.shape.rank() == 0, bi, Some(a));
        }
        if bi.yfree() {
            return self.scaled(bi, b.shape.rank() == 0, ai, Some(b));
        }
        // Both depend on y: an elementwise square of one selection.
        if let (Lin::Select(k1, m1), Lin::Select(k2, m2)) = (&ai.lin, &bi.lin) {
            if m1 == m2 && a.shape == b.shape {
                let k = k1.mul(k2);
                return self.square_of(&k, m1, dep);
            }
        }
        if ai.affine() && bi.affine() && same(a, b) {
            return convex(dep, Credit::default(), Sign::Nonneg);
        }
        Info::unknown(dep)
    }

    /// `(k · y[map])²` elementwise, k possibly a product of two coefficients.
    fn square_of(&self, k: &Factor, map: &Map, dep: u64) -> Info {
        let lambda = |p: usize| self.lambda_text(p);
        match k.sign() {
            Sign::Pos => {
                let Map::Range(start, len) = map else {
                    return convex(dep, Credit::default(), Sign::Nonneg);
                };
                let c = Credit::of(Key::One, Cover::range(*start, start + len, 2.0));
                let credit = k.scale_credit(&c, &lambda).unwrap_or_default();
                let mut r = convex(dep, credit, Sign::Nonneg);
                if k.sym.is_none() {
                    r.diag = DiagBounds::exact(
                        DKey::One,
                        Cover::range(*start, start + len, 2.0 * k.num),
                    );
                }
                r
            }
            Sign::Nonneg | Sign::Zero => convex(dep, Credit::default(), Sign::Nonneg),
            _ => Info::unknown(dep),
        }
    }

    /// `k * e` (or `e / k`), k y-free; `scalar` when k is a scalar.
    ///
    /// `vector_factor` is k's expression when this is a product `k * e`
    /// (not a quotient): an elementwise factor that is a vector or matrix
    /// with every element > 0 for every x (`exp(lambda)`, benchopt's
    /// per-feature ridge `exp(lambda) * w^2`) scales the credit of a
    /// convex `e` by `min_i k_i`, a positive function of x. Sound because
    /// every element of e is convex, so Σᵢ kᵢ∇²eᵢ ⪰ (minᵢ kᵢ) Σᵢ∇²eᵢ.
    pub(super) fn scaled(
        &self,
        k: &Info,
        scalar: bool,
        e: &Info,
        vector_factor: Option<&Hir>,
    ) -> Info {
        let dep = e.dep_y;
        let sign = k.sign.mul(e.sign);
        let lambda = |p: usize| self.lambda_text(p);
        match e.curv {
            Curv::Affine => {
                let lin = match (&e.lin, &k.factor) {
                    (Lin::Select(c, m), Some(f)) if scalar => Lin::Select(c.mul(f), m.clone()),
                    (Lin::Mapped(c, m, s, l), Some(f)) if scalar => {
                        Lin::Mapped(c.mul(f), *m, *s, *l)
                    }
                    _ => Lin::General,
                };
                Info {
                    sign,
                    lin,
                    ..Info::unknown(dep)
                }
                .with_curv(Curv::Affine)
                .with_smooth(e.smooth)
            }
            Curv::Convex | Curv::Concave => {
                let curv = if k.sign.nonneg() {
                    e.curv
                } else if k.sign.nonpos() {
                    neg_curv(e.curv)
                } else {
                    return Info::unknown(dep);
                };
                let credit = match (&k.factor, curv) {
                    (Some(f), Curv::Convex) if scalar && e.curv == Curv::Convex => {
                        f.scale_credit(&e.credit, &lambda).unwrap_or_default()
                    }
                    (_, Curv::Convex) if !scalar && e.curv == Curv::Convex => match vector_factor {
                        Some(h) if k.sign == Sign::Pos => {
                            let text = cap(&format!("min({})", self.text_of(h)));
                            e.credit.scale_positive(&text, &lambda)
                        }
                        _ => Credit::default(),
                    },
                    _ => Credit::default(),
                };
                let diag = match &k.factor {
                    Some(Factor { num, sym: None }) if scalar => e.diag.scale(*num),
                    _ => by_curv(curv, dep),
                };
                Info {
                    curv,
                    sign,
                    credit,
                    diag,
                    smooth: e.smooth,
                    ..Info::unknown(dep)
                }
            }
            _ => Info::unknown(dep),
        }
    }

    fn power(&self, base: &Info, e: &Info) -> Info {
        let dep = base.dep_y;
        let Some(Factor { num: p, sym: None }) = e.factor.clone() else {
            return Info::unknown(dep);
        };
        // Exponents are exact values: 1 means 1, not "within ε of 1".
        if p.to_bits() == 1.0f64.to_bits() {
            return base.clone();
        }
        if p == 0.0 {
            return Info::konst(Factor::num(1.0), Sign::Pos);
        }
        let even = p.fract() == 0.0 && p % 2.0 == 0.0 && p > 0.0;
        if p.to_bits() == 2.0f64.to_bits() && base.affine() {
            return match &base.lin {
                Lin::Select(k, m) => self.square_of(&k.square(), m, dep).with_smooth(base.smooth),
                _ => convex(dep, Credit::default(), Sign::Nonneg),
            };
        }
        if even && base.affine() {
            return convex(dep, Credit::default(), Sign::Nonneg);
        }
        if p > 1.0 && base.curv == Curv::Convex && base.sign.nonneg() {
            return convex(dep, Credit::default(), Sign::Nonneg).with_smooth(base.smooth);
        }
        Info::unknown(dep)
    }

    fn text_of(&self, h: &Hir) -> String {
        self.src
            .get(h.span.start..h.span.end)
            .unwrap_or("?")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    pub(super) fn call(&mut self, h: &Hir, f: Builtin, args: &[Hir]) -> Info {
        let infos: Vec<Info> = args.iter().map(|a| self.expr(a)).collect();
        let dep = infos.iter().fold(0, |d, i| d | i.dep_y);
        let smooth = infos.iter().all(|i| i.smooth);
        if infos.iter().all(Info::yfree) {
            return self.fold_call(h, f, &infos);
        }
        let lambda = |p: usize| self.lambda_text(p);
        let x = &infos[0];
        let mut r = match f {
            Builtin::Exp | Builtin::Softplus | Builtin::Logsumexp if x.convexish() => {
                convex(dep, Credit::default(), Sign::Pos)
            }
            Builtin::Log | Builtin::Sqrt if matches!(x.curv, Curv::Affine | Curv::Concave) => {
                Info {
                    curv: Curv::Concave,
                    diag: DiagBounds::concave(dep),
                    ..Info::unknown(dep)
                }
            }
            Builtin::Abs | Builtin::Norm2 if x.affine() => {
                let mut c = convex(dep, Credit::default(), Sign::Nonneg);
                c.smooth = false;
                c
            }
            Builtin::Sum | Builtin::Mean => {
                let mut s = x.clone();
                if s.affine() {
                    s.lin = Lin::General;
                }
                if f == Builtin::Mean {
                    (s.credit, s.diag) = match args[0].shape.len() {
                        Some(n) if n > 0 => {
                            let k = 1.0 / n as f64;
                            (s.credit.scale(k), s.diag.scale(k))
                        }
                        _ => (Credit::default(), by_curv(s.curv, dep)),
                    };
                }
                s
            }
            Builtin::Norm2sq => match (&x.lin, x.curv) {
                (Lin::Select(k, m), Curv::Affine) => Info {
                    diag: square_diag(k, m, 2.0, dep),
                    ..convex(dep, square_credit(k, m, 2.0, &lambda), Sign::Nonneg)
                },
                (Lin::Mapped(k, m, s, l), Curv::Affine) => {
                    let credit = self.congruent_credit(None, (k, *m, *s, *l), 2.0, args[0].span);
                    convex(dep, credit, Sign::Nonneg)
                }
                (_, Curv::Affine) => convex(dep, Credit::default(), Sign::Nonneg),
                (_, Curv::Convex) if x.sign.nonneg() => {
                    convex(dep, Credit::default(), Sign::Nonneg)
                }
                _ => Info::unknown(dep),
            },
            Builtin::SqLoss => {
                let (a, b) = (&infos[0], negate(infos[1].clone()));
                let d_affine = add_curv(a.curv, b.curv) == Curv::Affine;
                let lin = match (&a.lin, &b.lin) {
                    (Lin::Select(..) | Lin::Mapped(..), Lin::No)
                        if args[0].shape == args[1].shape =>
                    {
                        a.lin.clone()
                    }
                    (Lin::No, Lin::Select(..) | Lin::Mapped(..))
                        if args[0].shape == args[1].shape =>
                    {
                        b.lin.clone()
                    }
                    _ => Lin::General,
                };
                match (d_affine, lin) {
                    (true, Lin::Select(k, m)) => Info {
                        diag: square_diag(&k, &m, 1.0, dep),
                        ..convex(dep, square_credit(&k, &m, 1.0, &lambda), Sign::Nonneg)
                    },
                    (true, Lin::Mapped(k, m, s, l)) => {
                        let credit = self.congruent_credit(None, (&k, m, s, l), 1.0, args[0].span);
                        convex(dep, credit, Sign::Nonneg)
                    }
                    (true, _) => convex(dep, Credit::default(), Sign::Nonneg),
                    _ => Info::unknown(dep),
                }
            }
            Builtin::Dot => self.dot(args, &infos, dep),
            Builtin::Quad => self.quad(args, &infos, dep),
            Builtin::LogisticLoss
                if (infos[0].affine() && infos[1].yfree())
                    || (infos[1].affine() && infos[0].yfree()) =>
            {
                convex(dep, Credit::default(), Sign::Pos)
            }
            Builtin::SoftmaxXent if infos[0].affine() && infos[1].yfree() => {
                convex(dep, Credit::default(), Sign::Nonneg)
            }
            _ => Info::unknown(dep),
        };
        r.dep_y = dep;
        r.smooth &= smooth;
        r
    }

    fn dot(&self, args: &[Hir], infos: &[Info], dep: u64) -> Info {
        let (a, b) = (&infos[0], &infos[1]);
        if a.yfree() || b.yfree() {
            let (k, e) = if a.yfree() { (a, b) } else { (b, a) };
            return match e.curv {
                Curv::Affine => Info {
                    lin: Lin::General,
                    ..Info::unknown(dep)
                }
                .with_curv(Curv::Affine),
                Curv::Convex if k.sign.nonneg() => convex(dep, Credit::default(), Sign::Unknown),
                Curv::Concave if k.sign.nonneg() => Info {
                    curv: Curv::Concave,
                    diag: DiagBounds::concave(dep),
                    ..Info::unknown(dep)
                },
                _ => Info::unknown(dep),
            };
        }
        if let (Lin::Select(k1, m1), Lin::Select(k2, m2)) = (&a.lin, &b.lin) {
            if m1 == m2 && args[0].shape == args[1].shape {
                return self.square_of(&k1.mul(k2), m1, dep);
            }
        }
        if a.affine() && b.affine() && same(&args[0], &args[1]) {
            return convex(dep, Credit::default(), Sign::Nonneg);
        }
        Info::unknown(dep)
    }

    fn quad(&mut self, args: &[Hir], infos: &[Info], dep: u64) -> Info {
        let (p, z) = (&infos[0], &infos[1]);
        let Some(param) = self.param_of(&args[0]) else {
            return Info::unknown(dep);
        };
        if !p.yfree() || !z.affine() {
            return Info::unknown(dep);
        }
        if !self.quads.iter().any(|q| q.0 == param) {
            self.quads.push((param, args[0].span));
        }
        // zᵀPz has Hessian 2·sym(P) in z ⪰ 2 λmin(P) I once P ⪰ 0 is verified.
        match &z.lin {
            // Hessian 2k²·sym(P) on the selection: its diagonal is exact.
            Lin::Select(k, Map::Range(start, len)) if k.sym.is_none() => {
                let cover = Cover::range(*start, start + len, 2.0 * k.num * k.num);
                Info {
                    diag: DiagBounds::exact(DKey::Diag(param, *start), cover.clone()),
                    ..convex(dep, Credit::of(Key::Lambda(param), cover), Sign::Unknown)
                }
            }
            Lin::Mapped(k, m, s, l) => {
                let (k, m, s, l) = (k.clone(), *m, *s, *l);
                let credit = self.congruent_credit(Some(param), (&k, m, s, l), 2.0, args[1].span);
                convex(dep, credit, Sign::Unknown)
            }
            _ => convex(dep, Credit::default(), Sign::Unknown),
        }
    }

    /// `a @ b` as a [`Lin::Mapped`] when a names a stored matrix parameter
    /// and b is a numeric-coefficient selection of a whole vector slice.
    fn mapped(&self, a: &Hir, b: &Hir, bi: &Info) -> Lin {
        let (Some(m), Lin::Select(k, Map::Range(s, l))) = (self.param_of(a), &bi.lin) else {
            return Lin::General;
        };
        let cols = a.shape.0.get(1).and_then(crate::hir::Dim::known);
        if a.shape.rank() != 2 || b.shape.rank() != 1 || cols != Some(*l as u64) {
            return Lin::General;
        }
        Lin::Mapped(k.clone(), m, *s, *l)
    }

    /// The credit `scale · coef² · λmin(Mᵀ·sym(P)·M)` (P = I when `None`) on
    /// the coordinates `s..s + l` of `coef · M · y[s..s + l] + b`, when coef
    /// is a number.
    fn congruent_credit(
        &mut self,
        p: Option<usize>,
        (k, m, s, l): (&Factor, usize, usize, usize),
        scale: f64,
        span: crate::ast::Span,
    ) -> Credit {
        if k.sym.is_some() {
            return Credit::default();
        }
        let key = self.congruent_key(p, m, span);
        Credit::of(
            Key::Lambda(key),
            Cover::range(s, s + l, scale * k.num * k.num),
        )
    }

    /// The parameter an expression names (through `let`s).
    fn param_of(&self, h: &Hir) -> Option<usize> {
        let mut h = h;
        for _ in 0..=self.lets.len() {
            match &h.kind {
                HirKind::Param(p) => return Some(*p),
                HirKind::Let(i) => h = self.lets.get(*i).copied().flatten()?,
                _ => return None,
            }
        }
        None
    }

    fn fold_call(&self, h: &Hir, f: Builtin, infos: &[Info]) -> Info {
        let x = &infos[0];
        let sign = match f {
            Builtin::Exp | Builtin::Sigmoid | Builtin::Softplus | Builtin::LogisticLoss => {
                Sign::Pos
            }
            Builtin::Sqrt
            | Builtin::Abs
            | Builtin::Norm2sq
            | Builtin::Norm2
            | Builtin::SqLoss
            | Builtin::SoftmaxXent
            | Builtin::Correct => Sign::Nonneg,
            Builtin::Sum | Builtin::Mean | Builtin::Tanh => x.sign,
            _ => Sign::Unknown,
        };
        let scalar = h.shape.rank() == 0;
        let num = match (&x.factor, args_scalar(infos)) {
            (Some(Factor { num, sym: None }), true) => match f {
                Builtin::Exp => Some(num.exp()),
                Builtin::Log => Some(num.ln()),
                Builtin::Sqrt => Some(num.sqrt()),
                Builtin::Sigmoid => Some(1.0 / (1.0 + (-num).exp())),
                Builtin::Softplus => Some(num.exp().ln_1p()),
                Builtin::Tanh => Some(num.tanh()),
                Builtin::Abs | Builtin::Norm2 => Some(num.abs()),
                Builtin::Cos => Some(num.cos()),
                Builtin::Sin => Some(num.sin()),
                Builtin::Sum | Builtin::Mean | Builtin::Logsumexp => Some(*num),
                Builtin::Norm2sq => Some(num * num),
                _ => None,
            },
            _ => None,
        };
        let factor = match num {
            Some(v) if scalar => Some(Factor::num(v)),
            _ if scalar => Some(Factor::sym(&self.text_of(h), sign)),
            _ => None,
        };
        let mut r = Info::konst(Factor::num(0.0), sign);
        r.factor = factor;
        r
    }
}

fn args_scalar(infos: &[Info]) -> bool {
    infos.len() == 1 && infos[0].factor.is_some()
}

/// A convex expression with a credit.
fn convex(dep: u64, credit: Credit, sign: Sign) -> Info {
    Info {
        curv: Curv::Convex,
        sign,
        credit,
        diag: DiagBounds::convex(dep),
        ..Info::unknown(dep)
    }
}

impl Info {
    fn with_curv(mut self, c: Curv) -> Info {
        self.curv = c;
        if matches!(c, Curv::Affine | Curv::Const) {
            self.diag = DiagBounds::zero();
        }
        self
    }
    fn with_smooth(mut self, s: bool) -> Info {
        self.smooth &= s;
        self
    }
}
