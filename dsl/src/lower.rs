//! Lowering: the checked spec (HIR, with data-bound dims and parameter
//! values) → one tape for f and one for g.
//!
//! Sub-expressions of a sample body that do not use that body's sample are
//! hoisted out of the loop (to the tape of the outermost reduction whose
//! samples they use), so per-sample work is only what depends on the sample.

use std::collections::HashMap;

use crate::ast::{BinOp, LevelKind, RedOp};
use crate::hir::{Builtin, Hir, HirKind, Spec};
use crate::tape::{Node, NodeId, Op, Tape, VarKind};

/// Parameter values and facts the lowering needs.
#[derive(Debug, Clone)]
pub struct Bound<'a> {
    /// Parameter values (row-major), by parameter index.
    pub params: &'a [Vec<f64>],
    /// `true` for symmetric square parameters.
    pub symmetric: &'a [bool],
}

/// Offsets of each variable inside the flat x and y vectors.
pub fn layout(spec: &Spec) -> (Vec<usize>, Vec<usize>, usize, usize) {
    let offs = |vars: &[crate::hir::VarDef]| {
        let mut o = Vec::new();
        let mut acc = 0usize;
        for v in vars {
            o.push(acc);
            acc += v.shape.len().unwrap_or(0);
        }
        (o, acc)
    };
    let (xo, dx) = offs(&spec.upper);
    let (yo, dy) = offs(&spec.lower);
    (xo, yo, dx, dy)
}

struct Builder {
    nodes: Vec<Node>,
    outer: HashMap<NodeId, NodeId>,
    /// The data source of the reduction that opened this level.
    data: usize,
}

struct Lowerer<'a> {
    spec: &'a Spec,
    bound: &'a Bound<'a>,
    xo: Vec<usize>,
    yo: Vec<usize>,
    levels: Vec<Builder>,
    /// The tape level of each enclosing sample by source nesting (0: the
    /// top; a reduction hoisted out of a loop runs at a lower tape level
    /// than its source nesting).
    scope: Vec<usize>,
    memo: HashMap<(u8, usize, usize), NodeId>,
}

/// Lowers f and g.
pub fn lower(spec: &Spec, bound: &Bound<'_>) -> (Tape, Tape) {
    let (xo, yo, _, _) = layout(spec);
    let mut l = Lowerer {
        spec,
        bound,
        xo,
        yo,
        levels: Vec::new(),
        scope: vec![0],
        memo: HashMap::new(),
    };
    let f = l.tape(&spec.f);
    let g = l.tape(&spec.g);
    (f, g)
}

/// Lowers one standalone expression (no sample reductions needed at top).
pub fn lower_expr(spec: &Spec, bound: &Bound<'_>, h: &Hir) -> Tape {
    let (xo, yo, _, _) = layout(spec);
    let mut l = Lowerer {
        spec,
        bound,
        xo,
        yo,
        levels: Vec::new(),
        scope: vec![0],
        memo: HashMap::new(),
    };
    l.tape(h)
}

/// Bit set of the tape levels whose samples `h` uses; `s` is the source
/// nesting at `h`.
fn uses(h: &Hir, s: usize) -> u128 {
    match &h.kind {
        HirKind::Field(depth, _) => {
            let lv = s.saturating_sub(*depth);
            if lv < 128 {
                1u128 << lv
            } else {
                0
            }
        }
        HirKind::Const(_)
        | HirKind::Array(_)
        | HirKind::Var(..)
        | HirKind::Param(_)
        | HirKind::Let(_) => 0,
        HirKind::Neg(x) | HirKind::Transpose(x) => uses(x, s),
        HirKind::Binary(_, a, b) => uses(a, s) | uses(b, s),
        HirKind::Call(_, args) => args.iter().fold(0, |m, a| m | uses(a, s)),
        HirKind::Index(a, idx) => idx.iter().fold(uses(a, s), |m, a| m | uses(a, s)),
        HirKind::Model { theta, depth, .. } => {
            let lv = s.saturating_sub(*depth);
            uses(theta, s) | if lv < 128 { 1u128 << lv } else { 0 }
        }
        HirKind::Reduce(_, _, body) => {
            let inner = s + 1;
            let m = uses(body, inner);
            if inner < 128 {
                m & !(1u128 << inner)
            } else {
                m
            }
        }
    }
}

fn need(h: &Hir, s: usize) -> usize {
    let m = uses(h, s);
    if m == 0 {
        0
    } else {
        127 - m.leading_zeros() as usize
    }
}

impl Lowerer<'_> {
    fn tape(&mut self, h: &Hir) -> Tape {
        self.memo.clear();
        self.scope = vec![0];
        self.levels = vec![Builder {
            nodes: Vec::new(),
            outer: HashMap::new(),
            data: 0,
        }];
        let out = self.node(h, 0, 0);
        let b = self.levels.pop().unwrap_or(Builder {
            nodes: Vec::new(),
            outer: HashMap::new(),
            data: 0,
        });
        Tape {
            nodes: b.nodes,
            output: out,
        }
    }

    fn push(
        &mut self,
        level: usize,
        op: Op,
        args: Vec<NodeId>,
        rows: usize,
        cols: usize,
    ) -> NodeId {
        let b = &mut self.levels[level];
        let (mut dx, mut dy) = match op {
            Op::Var(VarKind::X, _) => (true, false),
            Op::Var(VarKind::Y, _) => (false, true),
            _ => (false, false),
        };
        for &a in &args {
            dx |= b.nodes[a].dep_x;
            dy |= b.nodes[a].dep_y;
        }
        if let Op::Reduce { body, .. } = &op {
            let o = &body.nodes[body.output];
            dx = o.dep_x;
            dy = o.dep_y;
        }
        b.nodes.push(Node {
            op,
            args,
            rows,
            cols,
            dep_x: dx,
            dep_y: dy,
        });
        b.nodes.len() - 1
    }

    /// Brings node `id` of tape `from` into tape `to` (> from) through
    /// `Outer` nodes.
    fn lift(&mut self, mut id: NodeId, from: usize, to: usize) -> NodeId {
        for lv in from + 1..=to {
            if let Some(&o) = self.levels[lv].outer.get(&id) {
                id = o;
                continue;
            }
            let p = &self.levels[lv - 1].nodes[id];
            let (rows, cols, dx, dy) = (p.rows, p.cols, p.dep_x, p.dep_y);
            let b = &mut self.levels[lv];
            b.nodes.push(Node {
                op: Op::Outer(id),
                args: Vec::new(),
                rows,
                cols,
                dep_x: dx,
                dep_y: dy,
            });
            let new = b.nodes.len() - 1;
            b.outer.insert(id, new);
            id = new;
        }
        id
    }

    /// Lowers `h` (at source nesting `s`) for use in tape `level`.
    fn node(&mut self, h: &Hir, level: usize, s: usize) -> NodeId {
        let target = self.tape_level(need(h, s)).min(level);
        if target < level {
            let id = self.node_at(h, target, s);
            return self.lift(id, target, level);
        }
        self.node_at(h, level, s)
    }

    /// The tape level of the sample at source nesting `src`.
    fn tape_level(&self, src: usize) -> usize {
        self.scope.get(src).copied().unwrap_or(src)
    }

    fn const_value(&self, h: &Hir) -> f64 {
        match &h.kind {
            HirKind::Const(v) => *v,
            HirKind::Param(i) => self
                .bound
                .params
                .get(*i)
                .and_then(|v| v.first())
                .copied()
                .unwrap_or(f64::NAN),
            HirKind::Let(i) => self
                .spec
                .lets
                .get(*i)
                .map_or(f64::NAN, |l| self.const_value(&l.1)),
            HirKind::Neg(x) => -self.const_value(x),
            HirKind::Binary(op, a, b) => {
                let (a, b) = (self.const_value(a), self.const_value(b));
                match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                    BinOp::Pow => a.powf(b),
                    BinOp::MatMul => f64::NAN,
                }
            }
            HirKind::Call(b, args) => {
                let a = args.first().map_or(f64::NAN, |a| self.const_value(a));
                match b {
                    Builtin::Exp => a.exp(),
                    Builtin::Log => a.ln(),
                    Builtin::Sqrt => a.sqrt(),
                    Builtin::Abs => a.abs(),
                    _ => f64::NAN,
                }
            }
            _ => f64::NAN,
        }
    }

    /// A variable, parameter or `let` (memoised per tape level by `key`):
    /// built at the top tape and lifted to `level`.
    fn leaf(&mut self, h: &Hir, key: (u8, usize, usize), level: usize, s: usize) -> NodeId {
        if let Some(&n) = self.memo.get(&key) {
            return n;
        }
        let n = if level == 0 {
            self.leaf_at_top(h)
        } else {
            let id = self.node_at(h, 0, s);
            self.lift(id, 0, level)
        };
        self.memo.insert(key, n);
        n
    }

    /// [`Lowerer::leaf`] at the top tape.
    fn leaf_at_top(&mut self, h: &Hir) -> NodeId {
        let (rows, cols) = h.shape.rows_cols();
        match &h.kind {
            HirKind::Var(lv, i) => {
                let (kind, off) = match lv {
                    LevelKind::Upper => (VarKind::X, self.xo[*i]),
                    LevelKind::Lower => (VarKind::Y, self.yo[*i]),
                };
                self.push(0, Op::Var(kind, off), Vec::new(), rows, cols)
            }
            HirKind::Param(i) => {
                let v = self.bound.params.get(*i).cloned().unwrap_or_default();
                self.push(0, Op::Const(v), Vec::new(), rows, cols)
            }
            HirKind::Let(i) => {
                let spec = self.spec;
                match spec.lets.get(*i) {
                    Some((_, body)) => self.node(body, 0, 0),
                    None => self.push(0, Op::Const(vec![f64::NAN]), Vec::new(), 1, 1),
                }
            }
            _ => self.push(0, Op::Const(vec![f64::NAN]), Vec::new(), 1, 1),
        }
    }

    /// A call of builtin `b`.
    fn call_node(
        &mut self,
        b: Builtin,
        args: &[Hir],
        level: usize,
        s: usize,
        rows: usize,
        cols: usize,
    ) -> NodeId {
        let ids: Vec<NodeId> = args.iter().map(|a| self.node(a, level, s)).collect();
        let op = match b {
            Builtin::Sum => Op::Sum,
            Builtin::Mean => Op::Mean,
            Builtin::Norm2sq => Op::Norm2sq,
            Builtin::Norm2 => Op::Norm2,
            Builtin::Dot => Op::Dot,
            Builtin::Quad => {
                let sym = matches!(args[0].kind, HirKind::Param(i) if self.bound.symmetric.get(i).copied().unwrap_or(false));
                Op::Quad { sym }
            }
            Builtin::LogisticLoss => Op::LogisticLoss,
            Builtin::SoftmaxXent => Op::SoftmaxXent,
            Builtin::SqLoss => Op::SqLoss,
            Builtin::Logsumexp => Op::Logsumexp,
            Builtin::Correct => Op::Correct,
            e => Op::Unary(e),
        };
        self.push(level, op, ids, rows, cols)
    }

    /// A model applied to the sample of `depth`: one batched model node in
    /// the tape that runs the reduction over the sample, and its row per
    /// sample here.
    fn model_node(
        &mut self,
        model: usize,
        theta: &Hir,
        depth: usize,
        level: usize,
        s: usize,
        (rows, cols): (usize, usize),
    ) -> NodeId {
        let lv = self.tape_level(s.saturating_sub(depth)).min(level);
        let parent = lv.saturating_sub(1);
        let data = self.levels.get(lv).map_or(0, |b| b.data);
        let batch = self.spec.data.get(data).map_or(1, |d| d.batch as usize);
        let th = self.node(theta, parent, s);
        let m = self.push(parent, Op::Model { model, data }, vec![th], batch, rows);
        let (dx, dy) = {
            let n = &self.levels[parent].nodes[m];
            (n.dep_x, n.dep_y)
        };
        let r = self.push(lv, Op::Row(m), Vec::new(), rows, cols);
        let node = &mut self.levels[lv].nodes[r];
        node.dep_x = dx;
        node.dep_y = dy;
        self.lift(r, lv, level)
    }

    fn node_at(&mut self, h: &Hir, level: usize, s: usize) -> NodeId {
        let (rows, cols) = h.shape.rows_cols();
        match &h.kind {
            HirKind::Const(v) => self.push(level, Op::Const(vec![*v]), Vec::new(), 1, 1),
            HirKind::Array(v) => self.push(level, Op::Const(v.clone()), Vec::new(), rows, cols),
            HirKind::Var(lv, i) => {
                let key = (u8::from(*lv == LevelKind::Lower), *i, level);
                self.leaf(h, key, level, s)
            }
            HirKind::Param(i) => self.leaf(h, (2, *i, level), level, s),
            HirKind::Let(i) => self.leaf(h, (3, *i, level), level, s),
            HirKind::Field(depth, f) => {
                let lv = self.tape_level(s.saturating_sub(*depth));
                let data = self.levels.get(lv).map_or(0, |b| b.data);
                self.push(level, Op::Field(lv, data, *f), Vec::new(), rows, cols)
            }
            HirKind::Neg(x) => {
                let a = self.node(x, level, s);
                self.push(level, Op::Neg, vec![a], rows, cols)
            }
            HirKind::Transpose(x) => {
                let a = self.node(x, level, s);
                if x.shape.rank() == 0 {
                    return a;
                }
                self.push(level, Op::Transpose, vec![a], rows, cols)
            }
            HirKind::Binary(op, a, b) => {
                if *op == BinOp::MatMul {
                    return self.matmul(a, b, level, s, rows, cols);
                }
                if *op == BinOp::Pow {
                    let p = self.const_value(b);
                    let x = self.node(a, level, s);
                    return self.push(level, Op::Pow(p), vec![x], rows, cols);
                }
                let x = self.node(a, level, s);
                let y = self.node(b, level, s);
                let op = match op {
                    BinOp::Add => Op::Add,
                    BinOp::Sub => Op::Sub,
                    BinOp::Mul => Op::Mul,
                    _ => Op::Div,
                };
                self.push(level, op, vec![x, y], rows, cols)
            }
            HirKind::Call(b, args) => self.call_node(*b, args, level, s, rows, cols),
            HirKind::Index(a, idx) => {
                let mut ids = vec![self.node(a, level, s)];
                ids.extend(idx.iter().map(|i| self.node(i, level, s)));
                self.push(level, Op::Index, ids, rows, cols)
            }
            HirKind::Model {
                model,
                theta,
                depth,
            } => self.model_node(*model, theta, *depth, level, s, (rows, cols)),
            HirKind::Reduce(op, data, body) => {
                let tape = self.reduce_body(body, *data, level, s);
                self.push(
                    level,
                    Op::Reduce {
                        mean: *op == RedOp::Mean,
                        data: *data,
                        body: Box::new(tape),
                    },
                    Vec::new(),
                    rows,
                    cols,
                )
            }
        }
    }

    /// The body tape of a reduction over `data` that runs at tape `level`
    /// and source nesting `s`. When it was hoisted out of enclosing loops
    /// whose samples it does not use, the tapes of those loops are set
    /// aside while the body is built.
    fn reduce_body(&mut self, body: &Hir, data: usize, level: usize, s: usize) -> Tape {
        let inner = level + 1;
        let saved = self.levels.split_off(inner.min(self.levels.len()));
        let saved_memo: Vec<_> = self
            .memo
            .iter()
            .filter(|(k, _)| k.2 >= inner)
            .map(|(k, v)| (*k, *v))
            .collect();
        self.memo.retain(|k, _| k.2 < inner);
        let saved_scope = self.scope.split_off((s + 1).min(self.scope.len()));
        self.scope.resize(s + 1, 0);
        self.scope.push(inner);
        self.levels.push(Builder {
            nodes: Vec::new(),
            outer: HashMap::new(),
            data,
        });
        let out = self.node(body, inner, s + 1);
        // Memo entries of the popped level are no longer valid.
        self.memo.retain(|k, _| k.2 < inner);
        self.memo.extend(saved_memo);
        let b = self.levels.pop().unwrap_or(Builder {
            nodes: Vec::new(),
            outer: HashMap::new(),
            data,
        });
        self.levels.extend(saved);
        self.scope.truncate(s + 1);
        self.scope.extend(saved_scope);
        Tape {
            nodes: b.nodes,
            output: out,
        }
    }

    fn matmul(
        &mut self,
        a: &Hir,
        b: &Hir,
        level: usize,
        s: usize,
        rows: usize,
        cols: usize,
    ) -> NodeId {
        // Fold a transpose of a matrix operand into the product.
        let (a_inner, ta) = match &a.kind {
            HirKind::Transpose(x) if x.shape.rank() == 2 => (x.as_ref(), true),
            _ => (a, false),
        };
        let (b_inner, tb) = match &b.kind {
            HirKind::Transpose(x) if x.shape.rank() == 2 => (x.as_ref(), true),
            _ => (b, false),
        };
        let x = self.node(a_inner, level, s);
        let y = self.node(b_inner, level, s);
        if a.shape.rank() == 1 {
            // v @ M = Mᵀ v (M possibly already transposed).
            return self.push(
                level,
                Op::MatMul { ta: !tb, tb: false },
                vec![y, x],
                rows,
                cols,
            );
        }
        self.push(level, Op::MatMul { ta, tb }, vec![x, y], rows, cols)
    }
}
