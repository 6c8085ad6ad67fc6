//! The tensor tape (IR): an SSA arena of matrix, vector and elementwise
//! operations in topological order, with exact AD.
//!
//! * forward: values (and, seeded with ẏ = v, tangents of nodes that depend
//!   on y);
//! * reverse: adjoints ā (gradients), and in forward-over-reverse mode the
//!   adjoint tangents ǡ = d/dε ā(y + εv), giving ∇²ᵧᵧg·v at y and ∇²ₓᵧg·v at x
//!   in one sweep.
//!
//! A sample reduction (`mean over s in D { … }`) is a node holding a
//! sub-tape that is evaluated once per sample of the minibatch; the tape is
//! recorded once and evaluated for every minibatch. Every pass is a loop over
//! the arena; recursion happens only into sub-tapes, whose depth is the
//! reduction nesting of the source (bounded by the parser's limits).

use std::fmt::Write as _;

use crate::backend::{ModelBackend, TokenBatch};
use crate::hir::{Builtin, Field};

/// Most sequences per forward call of a model (whole-data evaluations are
/// cut into chunks of this size; outputs are per sequence, so the bits do not
/// change).
const MODEL_CHUNK: usize = 256;

/// A node id within one tape.
pub type NodeId = usize;

/// Which variable an input reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarKind {
    /// The upper variable x.
    X,
    /// The lower variable y.
    Y,
}

/// An operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A constant (row-major values).
    Const(Vec<f64>),
    /// A slice `offset..offset+len` of x or y.
    Var(VarKind, usize),
    /// A node of the enclosing tape (sub-tapes only).
    Outer(NodeId),
    /// A field of the sample bound by the reduction that opened tape level
    /// `level` (1-based) over data source `data`.
    Field(usize, usize, Field),
    /// a + b (a scalar operand broadcasts).
    Add,
    /// a − b.
    Sub,
    /// a ⊙ b.
    Mul,
    /// a ⊘ b.
    Div,
    /// −a.
    Neg,
    /// aᵖ for a constant p.
    Pow(f64),
    /// An elementwise function.
    Unary(Builtin),
    /// Σ a.
    Sum,
    /// mean of a.
    Mean,
    /// ‖a‖².
    Norm2sq,
    /// ‖a‖.
    Norm2,
    /// aᵀb.
    Dot,
    /// yᵀPy (args: P, y); `sym` when P is symmetric.
    Quad {
        /// P = Pᵀ.
        sym: bool,
    },
    /// ln(1 + e^(−y z)) (args: z, y).
    LogisticLoss,
    /// `logsumexp(z) − z[c]` (args: z, c).
    SoftmaxXent,
    /// ½‖a − b‖².
    SqLoss,
    /// ln Σ eᶻ.
    Logsumexp,
    /// 1 for a right prediction, else 0 (args: z, label); derivative 0.
    Correct,
    /// op(A) op(B) with optional transposes.
    MatMul {
        /// Transpose A.
        ta: bool,
        /// Transpose B.
        tb: bool,
    },
    /// Aᵀ.
    Transpose,
    /// `a[i]` or `a[i, j]` (args: a, i, j); vector → scalar, matrix → row or
    /// element.
    Index,
    /// Model `model` on the current minibatch of data source `data` (arg:
    /// its parameters): one row of outputs per sample, `batch × outputs`
    /// (the buffers are resized to the minibatch at every sweep).
    Model {
        /// The model (index into [`Inputs::models`]).
        model: usize,
        /// The data source whose token sequences are the inputs.
        data: usize,
    },
    /// Row `s` of a [`Op::Model`] node of the enclosing tape, `s` being the
    /// sample of the reduction that runs this sub-tape (sub-tapes only).
    Row(NodeId),
    /// A sample reduction over data source `data`.
    Reduce {
        /// Mean (`true`) or sum.
        mean: bool,
        /// The data source.
        data: usize,
        /// The per-sample body.
        body: Box<Tape>,
    },
}

/// A node: operation, arguments, shape (rows × cols; vectors are columns).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The operation.
    pub op: Op,
    /// Argument nodes.
    pub args: Vec<NodeId>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
    /// Depends on x.
    pub dep_x: bool,
    /// Depends on y.
    pub dep_y: bool,
}

impl Node {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }
    /// `true` for an empty node.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A recorded tape with one scalar output.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tape {
    /// Nodes in topological order.
    pub nodes: Vec<Node>,
    /// The output node.
    pub output: NodeId,
}

/// What a sweep computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)]
pub struct Mode {
    /// Seed tangents ẏ = v.
    pub tangent: bool,
    /// Reverse adjoints for nodes depending on x.
    pub wrt_x: bool,
    /// Reverse adjoints for nodes depending on y.
    pub wrt_y: bool,
    /// Propagate adjoint tangents (forward-over-reverse).
    pub second: bool,
    /// With `second`: the variables' adjoints (first-order gradients) are
    /// read too, not only their adjoint tangents. Without `second` they are
    /// always computed.
    pub first: bool,
}

impl Mode {
    /// Values only.
    pub const VALUE: Mode = Mode {
        tangent: false,
        wrt_x: false,
        wrt_y: false,
        second: false,
        first: false,
    };
}

/// Where a field's values come from, per sample.
pub trait SampleSource {
    /// Number of samples of data source `data` in the current minibatch.
    fn batch_len(&self, data: usize) -> usize;
    /// Writes field `field` of sample `i` of data source `data` into `out`.
    fn field(&self, data: usize, i: usize, field: Field, out: &mut [f64]);
    /// The token sequence (`s.text`) of sample `i` of data source `data`
    /// (empty when the source has no text).
    fn tokens(&self, _data: usize, _i: usize) -> &[u32] {
        &[]
    }
}

/// Buffers of one tape (and, recursively, of its sub-tapes), allocated once.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    val: Vec<Vec<f64>>,
    tan: Vec<Vec<f64>>,
    adj: Vec<Vec<f64>>,
    adt: Vec<Vec<f64>>,
    aux: Vec<Vec<f64>>,
    live_adj: Vec<bool>,
    live_adt: Vec<bool>,
    sub: Vec<Option<Workspace>>,
}

impl Workspace {
    /// Allocates every buffer of `tape`.
    pub fn new(tape: &Tape) -> Self {
        let n = tape.nodes.len();
        let buf = |t: &Tape| {
            t.nodes
                .iter()
                .map(|x| vec![0.0; x.len()])
                .collect::<Vec<_>>()
        };
        let mut val = buf(tape);
        for (i, node) in tape.nodes.iter().enumerate() {
            if let Op::Const(c) = &node.op {
                val[i].clone_from(c);
            }
        }
        Workspace {
            val,
            tan: buf(tape),
            adj: buf(tape),
            adt: buf(tape),
            aux: tape
                .nodes
                .iter()
                .map(|x| match x.op {
                    // P y for `quad`; the softmax of the logits otherwise.
                    Op::Quad { .. } => vec![0.0; tape.nodes[x.args[1]].len()],
                    Op::SoftmaxXent | Op::Logsumexp => vec![0.0; tape.nodes[x.args[0]].len()],
                    _ => Vec::new(),
                })
                .collect(),
            live_adj: vec![false; n],
            live_adt: vec![false; n],
            sub: tape
                .nodes
                .iter()
                .map(|x| match &x.op {
                    Op::Reduce { body, .. } => Some(Workspace::new(body)),
                    _ => None,
                })
                .collect(),
        }
    }

    /// The value of node `n` after a forward pass.
    pub fn value(&self, n: NodeId) -> &[f64] {
        &self.val[n]
    }
    /// The adjoint of node `n` after a reverse pass.
    pub fn adjoint(&self, n: NodeId) -> &[f64] {
        &self.adj[n]
    }
    /// The adjoint tangent of node `n` after a second-order pass.
    pub fn adjoint_tangent(&self, n: NodeId) -> &[f64] {
        &self.adt[n]
    }
    /// `true` when the adjoint of `n` was touched.
    pub fn adjoint_live(&self, n: NodeId) -> bool {
        self.live_adj[n]
    }
    /// `true` when the adjoint tangent of `n` was touched.
    pub fn adjoint_tangent_live(&self, n: NodeId) -> bool {
        self.live_adt[n]
    }
}

/// The inputs of a sweep.
pub struct Inputs<'a> {
    /// x.
    pub x: &'a [f64],
    /// y.
    pub y: &'a [f64],
    /// The tangent direction v (length of y) when `mode.tangent`.
    pub v: &'a [f64],
    /// The minibatch.
    pub data: &'a dyn SampleSource,
    /// The model backends, by model index.
    pub models: &'a [std::sync::Arc<dyn ModelBackend<f64>>],
}

fn sigmoid(u: f64) -> f64 {
    if u >= 0.0 {
        1.0 / (1.0 + (-u).exp())
    } else {
        let e = u.exp();
        e / (1.0 + e)
    }
}

fn softplus(u: f64) -> f64 {
    if u > 30.0 {
        u + (-u).exp().ln_1p()
    } else {
        u.exp().ln_1p()
    }
}

/// f, f′, f″ of an elementwise built-in.
fn unary(b: Builtin, a: f64) -> (f64, f64, f64) {
    match b {
        Builtin::Exp => {
            let e = a.exp();
            (e, e, e)
        }
        Builtin::Log => (a.ln(), 1.0 / a, -1.0 / (a * a)),
        Builtin::Sqrt => {
            let s = a.sqrt();
            (s, 0.5 / s, -0.25 / (s * a))
        }
        Builtin::Sigmoid => {
            let s = sigmoid(a);
            (s, s * (1.0 - s), s * (1.0 - s) * (1.0 - 2.0 * s))
        }
        Builtin::Softplus => {
            let s = sigmoid(a);
            (softplus(a), s, s * (1.0 - s))
        }
        Builtin::Tanh => {
            let t = a.tanh();
            (t, 1.0 - t * t, -2.0 * t * (1.0 - t * t))
        }
        Builtin::Abs => (
            a.abs(),
            if a > 0.0 {
                1.0
            } else if a < 0.0 {
                -1.0
            } else {
                0.0
            },
            0.0,
        ),
        Builtin::Cos => (a.cos(), -a.sin(), -a.cos()),
        Builtin::Sin => (a.sin(), a.cos(), -a.sin()),
        _ => (f64::NAN, f64::NAN, f64::NAN),
    }
}

/// C += α op(A) op(B); A is `ar × ac` as stored, B is `br × bc` as stored.
#[allow(clippy::too_many_arguments)]
fn gemm(
    alpha: f64,
    a: &[f64],
    (ar, ac): (usize, usize),
    ta: bool,
    b: &[f64],
    (br, bc): (usize, usize),
    tb: bool,
    c: &mut [f64],
) {
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let n = if tb { br } else { bc };
    let _ = br;
    let aat = |i: usize, p: usize| if ta { a[p * ac + i] } else { a[i * ac + p] };
    match (ta, tb, n) {
        // Matrix-vector: rows of A dotted with b.
        (false, _, 1) => {
            for (i, ci) in c.iter_mut().enumerate().take(m) {
                let row = &a[i * ac..i * ac + k];
                let mut s = 0.0;
                for (x, y) in row.iter().zip(b) {
                    s += x * y;
                }
                *ci += alpha * s;
            }
        }
        // Transposed matrix-vector: c += α Aᵀ b, by rows of A (axpy).
        (true, _, 1) => {
            for (p, &bp) in b.iter().enumerate().take(k) {
                let s = alpha * bp;
                if s == 0.0 {
                    continue;
                }
                let row = &a[p * ac..p * ac + m];
                for (ci, x) in c.iter_mut().zip(row) {
                    *ci += s * x;
                }
            }
        }
        _ => {
            for i in 0..m {
                for p in 0..k {
                    let s = alpha * aat(i, p);
                    if s == 0.0 {
                        continue;
                    }
                    let crow = &mut c[i * n..(i + 1) * n];
                    if tb {
                        for (j, cj) in crow.iter_mut().enumerate() {
                            *cj += s * b[j * bc + p];
                        }
                    } else {
                        let brow = &b[p * bc..(p + 1) * bc];
                        for (cj, x) in crow.iter_mut().zip(brow) {
                            *cj += s * x;
                        }
                    }
                }
            }
        }
    }
}

fn to_index(v: f64, len: usize) -> usize {
    if v.is_finite() && v >= 0.0 {
        (v as usize).min(len.saturating_sub(1))
    } else {
        0
    }
}

/// Sums `src` (broadcast source) into `dst` of length 1, or adds
/// elementwise, scaled by `k`.
fn acc_into(dst: &mut [f64], src: &[f64], k: f64) {
    if dst.len() == src.len() {
        for (d, s) in dst.iter_mut().zip(src) {
            *d += k * s;
        }
    } else if dst.len() == 1 {
        dst[0] += k * src.iter().sum::<f64>();
    } else if src.len() == 1 {
        for d in dst.iter_mut() {
            *d += k * src[0];
        }
    }
}

fn bc(v: &[f64], i: usize) -> f64 {
    if v.len() == 1 {
        v[0]
    } else {
        v[i]
    }
}

/// Which buffers a sweep of the top-level tape computes, per node: derived
/// once per (tape, mode) from activity, structural zeros and demand, so an
/// oracle call does only the work its outputs need (sub-tapes of sample
/// reductions are evaluated in full).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Compute the value.
    pub val: Vec<bool>,
    /// Compute the tangent.
    pub tan: Vec<bool>,
    /// Run the node's reverse rule.
    pub run: Vec<bool>,
    /// Its adjoint is needed.
    pub need_a: Vec<bool>,
    /// Its adjoint tangent is needed.
    pub need_t: Vec<bool>,
    /// Its adjoint tangent can be non-zero.
    pub tnz: Vec<bool>,
}

/// Parent nodes an operation reads: its arguments, or for a reduction the
/// nodes its body takes from outside.
fn reads(node: &Node) -> Vec<NodeId> {
    match &node.op {
        Op::Reduce { body, .. } => body
            .nodes
            .iter()
            .filter_map(|n| match n.op {
                Op::Outer(p) | Op::Row(p) => Some(p),
                _ => None,
            })
            .collect(),
        _ => node.args.clone(),
    }
}

impl Tape {
    /// The plan of a sweep in `mode`; `value` asks for the output's value.
    #[allow(clippy::too_many_lines)]
    pub fn plan(&self, mode: Mode, value: bool) -> Plan {
        let n = self.nodes.len();
        let w = |k: NodeId| Self::active(&self.nodes[k], mode);
        let t = |k: NodeId| mode.tangent && self.nodes[k].dep_y;
        // Does the second-order term of `p` towards its argument `a` vanish?
        let so_term = |p: &Node, a: NodeId| -> bool {
            let other_t = p.args.iter().any(|&o| o != a && t(o));
            match p.op {
                Op::Mul | Op::Dot | Op::MatMul { .. } => {
                    other_t || (p.args.iter().filter(|&&o| o == a).count() > 1 && t(a))
                }
                Op::Quad { .. } => p.args.get(1).is_some_and(|&y| t(y)),
                Op::Div
                | Op::Pow(_)
                | Op::Unary(_)
                | Op::Norm2sq
                | Op::Norm2
                | Op::LogisticLoss
                | Op::SoftmaxXent
                | Op::Logsumexp
                | Op::SqLoss => p.args.iter().any(|&o| t(o)),
                Op::Reduce { .. } => mode.tangent && p.dep_y,
                Op::Model { .. } => t(a),
                _ => false,
            }
        };
        let rd: Vec<Vec<NodeId>> = self.nodes.iter().map(reads).collect();
        // Structural non-zeros of ā and ǡ, from the output down.
        let mut anz = vec![false; n];
        let mut tnz = vec![false; n];
        if n > 0 {
            anz[self.output] = w(self.output);
        }
        for p in (0..n).rev() {
            if !(anz[p] || tnz[p]) {
                continue;
            }
            for &a in &rd[p] {
                if w(a) {
                    anz[a] |= anz[p];
                    tnz[a] |= tnz[p] || (anz[p] && mode.second && so_term(&self.nodes[p], a));
                }
            }
        }
        // Demand, from the variables up.
        let mut need_a = vec![false; n];
        let mut need_t = vec![false; n];
        for (i, node) in self.nodes.iter().enumerate() {
            if let Op::Var(..) = node.op {
                if w(i) {
                    need_a[i] = !mode.second || mode.first;
                    need_t[i] = mode.second;
                }
            }
            for &a in &rd[i] {
                if !w(a) {
                    continue;
                }
                need_a[i] |= need_a[a];
                need_t[i] |= need_t[a];
                if need_t[a] && mode.second && so_term(node, a) {
                    need_a[i] = true;
                }
            }
        }
        let run: Vec<bool> = (0..n)
            .map(|p| (need_a[p] && anz[p]) || (need_t[p] && (tnz[p] || anz[p])))
            .collect();
        // Tangents used by second-order terms, then what computing them needs.
        let mut tan = vec![false; n];
        if mode.second {
            for p in 0..n {
                if !run[p] || !anz[p] {
                    continue;
                }
                let node = &self.nodes[p];
                for &a in &rd[p] {
                    if w(a) && need_t[a] && so_term(node, a) {
                        for &o in &rd[p] {
                            if t(o) {
                                tan[o] = true;
                            }
                        }
                        if matches!(node.op, Op::Reduce { .. }) {
                            tan[p] = true;
                        }
                    }
                }
            }
        }
        for p in (0..n).rev() {
            if tan[p] {
                for &a in &rd[p] {
                    if t(a) {
                        tan[a] = true;
                    }
                }
            }
        }
        // Values: the output's, those read by reverse rules and tangent
        // rules, then everything their computation reads.
        let mut val = vec![false; n];
        if value && n > 0 {
            val[self.output] = true;
        }
        for p in 0..n {
            let node = &self.nodes[p];
            let own = matches!(
                node.op,
                Op::Quad { .. } | Op::SoftmaxXent | Op::Logsumexp | Op::Norm2 | Op::Reduce { .. }
            );
            let linear = matches!(
                node.op,
                Op::Add | Op::Sub | Op::Neg | Op::Sum | Op::Mean | Op::Transpose
            );
            if (run[p] || tan[p]) && !linear {
                if own && !matches!(node.op, Op::Quad { .. }) {
                    val[p] = true;
                }
                match node.op {
                    Op::Mul | Op::Dot => {
                        // ā and ǡ of one factor read the other factor's
                        // value; the tangent reads both.
                        for (k, &a) in node.args.iter().enumerate() {
                            let other = node.args[1 - k.min(1)];
                            let needs = w(a)
                                && ((need_a[a] && anz[p] && run[p])
                                    || (need_t[a] && tnz[p] && run[p]));
                            if needs || (tan[p] && t(a)) {
                                val[other] = true;
                            }
                        }
                    }
                    Op::Quad { .. } => {
                        // The scratch P y serves ∇, the ǡ term and the tangent.
                        let y = node.args[1];
                        val[node.args[0]] = true;
                        if (run[p] && ((need_a[y] && anz[p]) || (need_t[y] && tnz[p]))) || tan[p] {
                            val[p] = true;
                        }
                    }
                    Op::MatMul { .. } => {
                        // Ā needs B, B̄ needs A; tangents need the other one.
                        let (a, b) = (node.args[0], node.args[1]);
                        let adj_a = run[p] && w(a) && (need_a[a] || need_t[a]);
                        let adj_b = run[p] && w(b) && (need_a[b] || need_t[b]);
                        if adj_a || (tan[p] && t(a)) {
                            val[b] = true;
                        }
                        if adj_b || (tan[p] && t(b)) {
                            val[a] = true;
                        }
                    }
                    _ => {
                        for &a in &rd[p] {
                            val[a] = true;
                        }
                    }
                }
            }
            if matches!(node.op, Op::Index) && (run[p] || tan[p]) {
                for &a in &node.args[1..] {
                    val[a] = true;
                }
            }
        }
        for p in (0..n).rev() {
            if val[p] {
                for &a in &rd[p] {
                    val[a] = true;
                }
            }
        }
        Plan {
            val,
            tan,
            run,
            need_a,
            need_t,
            tnz,
        }
    }
}

impl Tape {
    /// Forward pass: values, and tangents when `mode.tangent`.
    pub fn forward(
        &self,
        ws: &mut Workspace,
        inp: &Inputs<'_>,
        mode: Mode,
        ctx: &mut Vec<usize>,
        plan: Option<&Plan>,
    ) {
        self.forward_with(ws, inp, mode, ctx, plan);
    }

    fn forward_with(
        &self,
        ws: &mut Workspace,
        inp: &Inputs<'_>,
        mode: Mode,
        ctx: &mut Vec<usize>,
        plan: Option<&Plan>,
    ) {
        for (i, node) in self.nodes.iter().enumerate() {
            let do_val = plan.is_none_or(|p| p.val[i]);
            let tangent = mode.tangent && node.dep_y && plan.is_none_or(|p| p.tan[i]);
            if do_val || tangent {
                self.eval_node(i, node, ws, inp, mode, ctx, do_val, tangent);
            }
        }
    }

    #[allow(clippy::too_many_lines, clippy::too_many_arguments)]
    fn eval_node(
        &self,
        i: NodeId,
        node: &Node,
        ws: &mut Workspace,
        inp: &Inputs<'_>,
        mode: Mode,
        ctx: &mut Vec<usize>,
        do_val: bool,
        tangent: bool,
    ) {
        let (before, rest) = ws.val.split_at_mut(i);
        let out = &mut rest[0];
        let (tbefore, trest) = ws.tan.split_at_mut(i);
        let tout = &mut trest[0];
        let a = |k: usize| &before[node.args[k]];
        let ta = |k: usize| &tbefore[node.args[k]];
        match &node.op {
            // Outer values are copied once per reduction, by the caller.
            Op::Const(_) | Op::Outer(_) => {}
            Op::Row(_) => {
                // `aux` holds the outer node's values, then its tangents.
                let s = ctx.last().copied().unwrap_or(0);
                let w = out.len();
                let aux = &ws.aux[i];
                let half = aux.len() / 2;
                if let Some(src) = aux.get(s * w..(s + 1) * w) {
                    out.copy_from_slice(src);
                }
                if tangent {
                    if let Some(src) = aux.get(half + s * w..half + (s + 1) * w) {
                        tout.copy_from_slice(src);
                    }
                }
            }
            Op::Model { model, data } => {
                let Some(backend) = inp.models.get(*model) else {
                    return;
                };
                let (tokens, offsets) = gather_tokens(inp.data, *data);
                let batch = TokenBatch {
                    tokens: &tokens,
                    offsets: &offsets,
                };
                let len = batch.len() * node.cols;
                out.resize(len, 0.0);
                tout.resize(len, 0.0);
                ws.adj[i].resize(len, 0.0);
                ws.adt[i].resize(len, 0.0);
                let theta = a(0);
                // Per-sequence outputs: evaluated in chunks to bound the
                // model's memory on whole-data batches (same bits).
                let c = node.cols;
                let mut start = 0;
                while start < batch.len() {
                    let end = (start + MODEL_CHUNK).min(batch.len());
                    let base = offsets[start];
                    let sub_off: Vec<usize> =
                        offsets[start..=end].iter().map(|o| o - base).collect();
                    let sub = TokenBatch {
                        tokens: &tokens[base..offsets[end]],
                        offsets: &sub_off,
                    };
                    if do_val {
                        backend.forward(theta, &sub, &mut out[start * c..end * c]);
                    }
                    if tangent {
                        backend.jvp(theta, &sub, ta(0), &mut tout[start * c..end * c]);
                    }
                    start = end;
                }
            }
            Op::Var(kind, off) => {
                let src = match kind {
                    VarKind::X => inp.x,
                    VarKind::Y => inp.y,
                };
                let len = out.len();
                out.copy_from_slice(&src[*off..*off + len]);
                if tangent {
                    tout.copy_from_slice(&inp.v[*off..*off + len]);
                }
            }
            Op::Field(level, data, field) => {
                let idx = level
                    .checked_sub(1)
                    .and_then(|k| ctx.get(k))
                    .copied()
                    .unwrap_or(0);
                inp.data.field(*data, idx, *field, out);
            }
            Op::Add | Op::Sub => {
                let s = if node.op == Op::Add { 1.0 } else { -1.0 };
                let (x, y) = (a(0), a(1));
                for (k, o) in out.iter_mut().enumerate() {
                    *o = bc(x, k) + s * bc(y, k);
                }
                if tangent {
                    let (tx, ty) = (ta(0), ta(1));
                    for (k, o) in tout.iter_mut().enumerate() {
                        *o = bc(tx, k) + s * bc(ty, k);
                    }
                }
            }
            Op::Mul => {
                let (x, y) = (a(0), a(1));
                for (k, o) in out.iter_mut().enumerate() {
                    *o = bc(x, k) * bc(y, k);
                }
                if tangent {
                    let (tx, ty) = (ta(0), ta(1));
                    for (k, o) in tout.iter_mut().enumerate() {
                        *o = bc(tx, k) * bc(y, k) + bc(x, k) * bc(ty, k);
                    }
                }
            }
            Op::Div => {
                let (x, y) = (a(0), a(1));
                for (k, o) in out.iter_mut().enumerate() {
                    *o = bc(x, k) / bc(y, k);
                }
                if tangent {
                    let (tx, ty) = (ta(0), ta(1));
                    for (k, o) in tout.iter_mut().enumerate() {
                        let yk = bc(y, k);
                        *o = bc(tx, k) / yk - bc(x, k) * bc(ty, k) / (yk * yk);
                    }
                }
            }
            Op::Neg => {
                for (o, x) in out.iter_mut().zip(a(0)) {
                    *o = -x;
                }
                if tangent {
                    for (o, x) in tout.iter_mut().zip(ta(0)) {
                        *o = -x;
                    }
                }
            }
            Op::Pow(p) => {
                for (o, x) in out.iter_mut().zip(a(0)) {
                    *o = x.powf(*p);
                }
                if tangent {
                    for ((o, x), t) in tout.iter_mut().zip(a(0)).zip(ta(0)) {
                        *o = p * x.powf(p - 1.0) * t;
                    }
                }
            }
            Op::Unary(b) => {
                for (o, x) in out.iter_mut().zip(a(0)) {
                    *o = unary(*b, *x).0;
                }
                if tangent {
                    for ((o, x), t) in tout.iter_mut().zip(a(0)).zip(ta(0)) {
                        *o = unary(*b, *x).1 * t;
                    }
                }
            }
            Op::Sum | Op::Mean => {
                let k = if node.op == Op::Mean {
                    1.0 / a(0).len().max(1) as f64
                } else {
                    1.0
                };
                out[0] = k * a(0).iter().sum::<f64>();
                if tangent {
                    tout[0] = k * ta(0).iter().sum::<f64>();
                }
            }
            Op::Norm2sq => {
                out[0] = a(0).iter().map(|v| v * v).sum();
                if tangent {
                    tout[0] = 2.0 * a(0).iter().zip(ta(0)).map(|(v, t)| v * t).sum::<f64>();
                }
            }
            Op::Norm2 => {
                let r = a(0).iter().map(|v| v * v).sum::<f64>().sqrt();
                out[0] = r;
                if tangent {
                    tout[0] = if r > 0.0 {
                        a(0).iter().zip(ta(0)).map(|(v, t)| v * t).sum::<f64>() / r
                    } else {
                        0.0
                    };
                }
            }
            Op::Dot => {
                out[0] = a(0).iter().zip(a(1)).map(|(p, q)| p * q).sum();
                if tangent {
                    out[0] += 0.0;
                    tout[0] = ta(0).iter().zip(a(1)).map(|(p, q)| p * q).sum::<f64>()
                        + a(0).iter().zip(ta(1)).map(|(p, q)| p * q).sum::<f64>();
                }
            }
            Op::Quad { sym } => {
                // aux = P y (and, when not symmetric, (P + Pᵀ) y / 2).
                let (p, y) = (a(0), a(1));
                let n = y.len();
                let aux = &mut ws.aux[i];
                aux.fill(0.0);
                gemm(1.0, p, (n, n), false, y, (n, 1), false, aux);
                if !sym {
                    gemm(1.0, p, (n, n), true, y, (n, 1), false, aux);
                    for v in aux.iter_mut() {
                        *v *= 0.5;
                    }
                }
                out[0] = aux.iter().zip(y).map(|(s, v)| s * v).sum();
                if tangent {
                    tout[0] = 2.0 * aux.iter().zip(ta(1)).map(|(s, v)| s * v).sum::<f64>();
                }
            }
            Op::LogisticLoss => {
                let (z, y) = (a(0)[0], a(1)[0]);
                out[0] = softplus(-y * z);
                if tangent {
                    let s = sigmoid(-y * z);
                    tout[0] = -y * s * ta(0)[0] - z * s * ta(1)[0];
                }
            }
            Op::SoftmaxXent | Op::Logsumexp => {
                let z = a(0);
                let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let se: f64 = z.iter().map(|v| (v - m).exp()).sum();
                let lse = m + se.ln();
                let aux = &mut ws.aux[i];
                for (p, v) in aux.iter_mut().zip(z) {
                    *p = (v - lse).exp();
                }
                let c = if node.op == Op::SoftmaxXent {
                    Some(to_index(a(1)[0], z.len()))
                } else {
                    None
                };
                out[0] = lse - c.map_or(0.0, |c| z[c]);
                if tangent {
                    let tz = ta(0);
                    tout[0] = aux.iter().zip(tz).map(|(p, t)| p * t).sum::<f64>()
                        - c.map_or(0.0, |c| tz[c]);
                }
            }
            Op::Correct => {
                let (z, l) = (a(0), a(1)[0]);
                out[0] = if z.len() == 1 {
                    f64::from(u8::from((z[0] > 0.0) == (l > 0.0)))
                } else {
                    // First maximum wins ties; NaN logits are never right.
                    let mut best = 0;
                    for (k, v) in z.iter().enumerate() {
                        if *v > z[best] {
                            best = k;
                        }
                    }
                    f64::from(u8::from(
                        z.iter().all(|v| !v.is_nan()) && best == to_index(l, z.len()),
                    ))
                };
                if tangent {
                    tout[0] = 0.0;
                }
            }
            Op::SqLoss => {
                let (x, y) = (a(0), a(1));
                out[0] = 0.5 * x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum::<f64>();
                if tangent {
                    let (tx, ty) = (ta(0), ta(1));
                    tout[0] = x
                        .iter()
                        .zip(y)
                        .zip(tx.iter().zip(ty))
                        .map(|((p, q), (tp, tq))| (p - q) * (tp - tq))
                        .sum();
                }
            }
            Op::MatMul { ta: t_a, tb: t_b } => {
                let (na, nb) = (&self.nodes[node.args[0]], &self.nodes[node.args[1]]);
                if do_val {
                    out.fill(0.0);
                    gemm(
                        1.0,
                        a(0),
                        (na.rows, na.cols),
                        *t_a,
                        a(1),
                        (nb.rows, nb.cols),
                        *t_b,
                        out,
                    );
                }
                if tangent {
                    tout.fill(0.0);
                    if na.dep_y {
                        gemm(
                            1.0,
                            ta(0),
                            (na.rows, na.cols),
                            *t_a,
                            a(1),
                            (nb.rows, nb.cols),
                            *t_b,
                            tout,
                        );
                    }
                    if nb.dep_y {
                        gemm(
                            1.0,
                            a(0),
                            (na.rows, na.cols),
                            *t_a,
                            ta(1),
                            (nb.rows, nb.cols),
                            *t_b,
                            tout,
                        );
                    }
                }
            }
            Op::Transpose => {
                let src = &self.nodes[node.args[0]];
                for r in 0..src.rows {
                    for c in 0..src.cols {
                        out[c * src.rows + r] = a(0)[r * src.cols + c];
                        if tangent {
                            tout[c * src.rows + r] = ta(0)[r * src.cols + c];
                        }
                    }
                }
            }
            Op::Index => {
                let off = self.index_offset(node, before);
                let len = out.len();
                out.copy_from_slice(&a(0)[off..off + len]);
                if tangent {
                    tout.copy_from_slice(&ta(0)[off..off + len]);
                }
            }
            Op::Reduce { mean, data, body } => {
                let n = inp.data.batch_len(*data);
                let sub = ws.sub[i].as_mut();
                let Some(sub) = sub else { return };
                copy_outer(body, sub, before, tbefore, tangent);
                out.fill(0.0);
                tout.fill(0.0);
                let k = if *mean { 1.0 / n.max(1) as f64 } else { 1.0 };
                for s in 0..n {
                    ctx.push(s);
                    body.forward_with(
                        sub,
                        inp,
                        if tangent {
                            mode
                        } else {
                            Mode {
                                tangent: false,
                                ..mode
                            }
                        },
                        ctx,
                        None,
                    );
                    ctx.pop();
                    for (o, v) in out.iter_mut().zip(&sub.val[body.output]) {
                        *o += k * v;
                    }
                    if tangent {
                        for (o, v) in tout.iter_mut().zip(&sub.tan[body.output]) {
                            *o += k * v;
                        }
                    }
                }
            }
        }
    }

    fn index_offset(&self, node: &Node, vals: &[Vec<f64>]) -> usize {
        let base = &self.nodes[node.args[0]];
        let i0 = vals[node.args[1]][0];
        match node.args.len() {
            2 if base.cols == 1 => to_index(i0, base.rows),
            2 => to_index(i0, base.rows) * base.cols,
            _ => {
                let j = to_index(vals[node.args[2]][0], base.cols);
                to_index(i0, base.rows) * base.cols + j
            }
        }
    }

    /// Reverse pass after [`Tape::forward`] with the same `mode`: seeds
    /// ā = `seed` (and ǡ = 0) at the output.
    pub fn reverse(
        &self,
        ws: &mut Workspace,
        inp: &Inputs<'_>,
        mode: Mode,
        ctx: &mut Vec<usize>,
        seed: f64,
        plan: Option<&Plan>,
    ) {
        for k in 0..self.nodes.len() {
            ws.live_adj[k] = false;
            ws.live_adt[k] = false;
        }
        let o = self.output;
        ws.adj[o].fill(0.0);
        ws.adt[o].fill(0.0);
        if let Some(v) = ws.adj[o].first_mut() {
            *v = seed;
        }
        ws.live_adj[o] = true;
        self.reverse_from(ws, inp, mode, ctx, plan);
    }

    fn active(node: &Node, mode: Mode) -> bool {
        (mode.wrt_x && node.dep_x) || (mode.wrt_y && node.dep_y)
    }

    /// Marks `n`'s adjoint (and adjoint tangent) live, zeroing them first.
    fn touch(ws: &mut Workspace, n: NodeId, second: bool) {
        if !ws.live_adj[n] {
            ws.live_adj[n] = true;
            ws.adj[n].fill(0.0);
        }
        if second && !ws.live_adt[n] {
            ws.live_adt[n] = true;
            ws.adt[n].fill(0.0);
        }
    }

    fn reverse_from(
        &self,
        ws: &mut Workspace,
        inp: &Inputs<'_>,
        mode: Mode,
        ctx: &mut Vec<usize>,
        plan: Option<&Plan>,
    ) {
        for i in (0..self.nodes.len()).rev() {
            let node = &self.nodes[i];
            if !ws.live_adj[i] || !Self::active(node, mode) || plan.is_some_and(|p| !p.run[i]) {
                continue;
            }
            for &arg in &node.args {
                if Self::active(&self.nodes[arg], mode) {
                    Self::touch(ws, arg, mode.second);
                }
            }
            if !ws.live_adt[i] {
                ws.adt[i].fill(0.0);
                ws.live_adt[i] = mode.second;
            }
            self.vjp(i, node, ws, inp, mode, ctx, plan);
        }
    }

    #[allow(clippy::too_many_lines, clippy::too_many_arguments)]
    fn vjp(
        &self,
        i: NodeId,
        node: &Node,
        ws: &mut Workspace,
        inp: &Inputs<'_>,
        mode: Mode,
        ctx: &mut Vec<usize>,
        plan: Option<&Plan>,
    ) {
        let second = mode.second;
        let need_a = |n: NodeId| plan.is_none_or(|p| p.need_a[n]);
        let need_t = |n: NodeId| plan.is_none_or(|p| p.need_t[n]);
        let gt_nz = plan.is_none_or(|p| p.tnz[i]);
        let act: Vec<bool> = node
            .args
            .iter()
            .map(|&a| Self::active(&self.nodes[a], mode))
            .collect();
        // Take this node's adjoints out to avoid aliasing with the arguments'.
        let g = std::mem::take(&mut ws.adj[i]);
        let gt = std::mem::take(&mut ws.adt[i]);
        let val = &ws.val;
        let tan = &ws.tan;
        let tanof = |k: usize| -> Option<&Vec<f64>> {
            let n = node.args[k];
            (mode.tangent && self.nodes[n].dep_y && plan.is_none_or(|p| p.tan[n])).then(|| &tan[n])
        };
        macro_rules! add {
            ($k:expr, $f:expr) => {{
                let n = node.args[$k];
                let dst = &mut ws.adj[n];
                #[allow(clippy::redundant_closure_call)]
                ($f)(dst, false);
            }};
        }
        macro_rules! addt {
            ($k:expr, $f:expr) => {{
                if second {
                    let n = node.args[$k];
                    let dst = &mut ws.adt[n];
                    #[allow(clippy::redundant_closure_call)]
                    ($f)(dst, true);
                }
            }};
        }
        match &node.op {
            Op::Const(_)
            | Op::Var(..)
            | Op::Outer(_)
            | Op::Row(_)
            | Op::Field(..)
            | Op::Correct => {}
            Op::Model { model, data } => {
                let n = node.args[0];
                if act[0] {
                    if let Some(backend) = inp.models.get(*model) {
                        let (tokens, offsets) = gather_tokens(inp.data, *data);
                        let batch = TokenBatch {
                            tokens: &tokens,
                            offsets: &offsets,
                        };
                        let theta = &val[n];
                        let mut tmp = vec![0.0; theta.len()];
                        if need_a(n) {
                            backend.vjp(theta, &batch, &g, &mut tmp);
                            acc_into(&mut ws.adj[n], &tmp, 1.0);
                        }
                        if second && need_t(n) {
                            if gt_nz {
                                backend.vjp(theta, &batch, &gt, &mut tmp);
                                acc_into(&mut ws.adt[n], &tmp, 1.0);
                            }
                            if let Some(t) = tanof(0) {
                                backend.curvature(theta, &batch, &g, t, &mut tmp);
                                acc_into(&mut ws.adt[n], &tmp, 1.0);
                            }
                        }
                    }
                }
            }
            Op::Add | Op::Sub => {
                let s = if node.op == Op::Add { 1.0 } else { -1.0 };
                if act[0] {
                    let (g, gt) = (&g, &gt);
                    let n = node.args[0];
                    acc_into(&mut ws.adj[n], g, 1.0);
                    if second {
                        acc_into(&mut ws.adt[n], gt, 1.0);
                    }
                }
                if act[1] {
                    let n = node.args[1];
                    acc_into(&mut ws.adj[n], &g, s);
                    if second {
                        acc_into(&mut ws.adt[n], &gt, s);
                    }
                }
            }
            Op::Neg => {
                let n = node.args[0];
                acc_into(&mut ws.adj[n], &g, -1.0);
                if second {
                    acc_into(&mut ws.adt[n], &gt, -1.0);
                }
            }
            Op::Mul | Op::Div => {
                let (x, y) = (&val[node.args[0]], &val[node.args[1]]);
                let (tx, ty) = (tanof(0), tanof(1));
                let len = g.len();
                let div = node.op == Op::Div;
                // Partial derivatives and their tangents, per element.
                let mut da = vec![0.0; len];
                let mut db = vec![0.0; len];
                let mut dat = vec![0.0; len];
                let mut dbt = vec![0.0; len];
                for k in 0..len {
                    let (xa, yb) = (bc(x, k), bc(y, k));
                    let txa = tx.map_or(0.0, |t| bc(t, k));
                    let tyb = ty.map_or(0.0, |t| bc(t, k));
                    if div {
                        da[k] = g[k] / yb;
                        db[k] = -g[k] * xa / (yb * yb);
                        if second {
                            dat[k] = gt[k] / yb - g[k] * tyb / (yb * yb);
                            dbt[k] = -gt[k] * xa / (yb * yb)
                                - g[k] * (txa / (yb * yb) - 2.0 * xa * tyb / (yb * yb * yb));
                        }
                    } else {
                        da[k] = g[k] * yb;
                        db[k] = g[k] * xa;
                        if second {
                            dat[k] = gt[k] * yb + g[k] * tyb;
                            dbt[k] = gt[k] * xa + g[k] * txa;
                        }
                    }
                }
                if act[0] {
                    add!(0, |d: &mut Vec<f64>, _| acc_into(d, &da, 1.0));
                    addt!(0, |d: &mut Vec<f64>, _| acc_into(d, &dat, 1.0));
                }
                if act[1] {
                    add!(1, |d: &mut Vec<f64>, _| acc_into(d, &db, 1.0));
                    addt!(1, |d: &mut Vec<f64>, _| acc_into(d, &dbt, 1.0));
                }
            }
            Op::Pow(p) => {
                let x = &val[node.args[0]];
                let tx = tanof(0);
                let n = node.args[0];
                let d: Vec<f64> = x
                    .iter()
                    .zip(&g)
                    .map(|(x, g)| g * p * x.powf(p - 1.0))
                    .collect();
                let dt: Vec<f64> = if second {
                    (0..x.len())
                        .map(|k| {
                            gt[k] * p * x[k].powf(p - 1.0)
                                + tx.map_or(0.0, |t| {
                                    g[k] * p * (p - 1.0) * x[k].powf(p - 2.0) * t[k]
                                })
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                acc_into(&mut ws.adj[n], &d, 1.0);
                if second {
                    acc_into(&mut ws.adt[n], &dt, 1.0);
                }
            }
            Op::Unary(b) => {
                let x = &val[node.args[0]];
                let tx = tanof(0);
                let n = node.args[0];
                let mut d = vec![0.0; x.len()];
                let mut dt = vec![0.0; if second { x.len() } else { 0 }];
                for k in 0..x.len() {
                    let (_, f1, f2) = unary(*b, x[k]);
                    d[k] = g[k] * f1;
                    if second {
                        dt[k] = gt[k] * f1 + tx.map_or(0.0, |t| g[k] * f2 * t[k]);
                    }
                }
                acc_into(&mut ws.adj[n], &d, 1.0);
                if second {
                    acc_into(&mut ws.adt[n], &dt, 1.0);
                }
            }
            Op::Sum | Op::Mean => {
                let n = node.args[0];
                let k = if node.op == Op::Mean {
                    1.0 / ws.adj[n].len().max(1) as f64
                } else {
                    1.0
                };
                let (g0, gt0) = (g[0], gt.first().copied().unwrap_or(0.0));
                ws.adj[n].iter_mut().for_each(|v| *v += k * g0);
                if second {
                    ws.adt[n].iter_mut().for_each(|v| *v += k * gt0);
                }
            }
            Op::Norm2sq => {
                let n = node.args[0];
                let x = &val[n];
                let tx = tanof(0);
                let (g0, gt0) = (g[0], gt.first().copied().unwrap_or(0.0));
                for (d, v) in ws.adj[n].iter_mut().zip(x.iter()) {
                    *d += 2.0 * g0 * v;
                }
                if second {
                    for (k, d) in ws.adt[n].iter_mut().enumerate() {
                        *d += 2.0 * gt0 * x[k] + tx.map_or(0.0, |t| 2.0 * g0 * t[k]);
                    }
                }
            }
            Op::Norm2 => {
                let n = node.args[0];
                let x = &val[n];
                let tx = tanof(0);
                let r = val[i][0];
                if r > 0.0 {
                    let (g0, gt0) = (g[0], gt.first().copied().unwrap_or(0.0));
                    for (d, v) in ws.adj[n].iter_mut().zip(x.iter()) {
                        *d += g0 * v / r;
                    }
                    if second {
                        let xt: f64 = tx.map_or(0.0, |t| x.iter().zip(t).map(|(a, b)| a * b).sum());
                        for (k, d) in ws.adt[n].iter_mut().enumerate() {
                            let t = tx.map_or(0.0, |t| t[k]);
                            *d += gt0 * x[k] / r + g0 * (t / r - x[k] * xt / (r * r * r));
                        }
                    }
                }
            }
            Op::Dot => {
                let (x, y) = (&val[node.args[0]], &val[node.args[1]]);
                let (tx, ty) = (tanof(0), tanof(1));
                let (g0, gt0) = (g[0], gt.first().copied().unwrap_or(0.0));
                if act[0] {
                    let n = node.args[0];
                    for (d, v) in ws.adj[n].iter_mut().zip(y.iter()) {
                        *d += g0 * v;
                    }
                    if second {
                        for (k, d) in ws.adt[n].iter_mut().enumerate() {
                            *d += gt0 * y[k] + ty.map_or(0.0, |t| g0 * t[k]);
                        }
                    }
                }
                if act[1] {
                    let n = node.args[1];
                    for (d, v) in ws.adj[n].iter_mut().zip(x.iter()) {
                        *d += g0 * v;
                    }
                    if second {
                        for (k, d) in ws.adt[n].iter_mut().enumerate() {
                            *d += gt0 * x[k] + tx.map_or(0.0, |t| g0 * t[k]);
                        }
                    }
                }
            }
            Op::Quad { sym } => {
                // ∇ = (P + Pᵀ) y = 2 aux; ǡ += 2 ġ aux + ā (P + Pᵀ) ẏ.
                let n = node.args[1];
                let (g0, gt0) = (g[0], gt.first().copied().unwrap_or(0.0));
                let aux = &ws.aux[i];
                for (d, s) in ws.adj[n].iter_mut().zip(aux) {
                    *d += 2.0 * g0 * s;
                }
                if second {
                    for (d, s) in ws.adt[n].iter_mut().zip(aux) {
                        *d += 2.0 * gt0 * s;
                    }
                    if let Some(t) = tanof(1).filter(|_| need_t(n)) {
                        let p = &val[node.args[0]];
                        let m = t.len();
                        if *sym {
                            gemm(2.0 * g0, p, (m, m), false, t, (m, 1), false, &mut ws.adt[n]);
                        } else {
                            gemm(g0, p, (m, m), false, t, (m, 1), false, &mut ws.adt[n]);
                            gemm(g0, p, (m, m), true, t, (m, 1), false, &mut ws.adt[n]);
                        }
                    }
                }
            }
            Op::LogisticLoss => {
                let (z, y) = (val[node.args[0]][0], val[node.args[1]][0]);
                let u = -y * z;
                let s = sigmoid(u);
                let h = s * (1.0 - s);
                let (gz, gy) = (-y * s, -z * s);
                let (hzz, hyy, hzy) = (y * y * h, z * z * h, -s + y * z * h);
                let tz = tanof(0).map_or(0.0, |t| t[0]);
                let ty = tanof(1).map_or(0.0, |t| t[0]);
                let (g0, gt0) = (g[0], gt.first().copied().unwrap_or(0.0));
                if act[0] {
                    let n = node.args[0];
                    ws.adj[n][0] += g0 * gz;
                    if second {
                        ws.adt[n][0] += gt0 * gz + g0 * (hzz * tz + hzy * ty);
                    }
                }
                if act[1] {
                    let n = node.args[1];
                    ws.adj[n][0] += g0 * gy;
                    if second {
                        ws.adt[n][0] += gt0 * gy + g0 * (hzy * tz + hyy * ty);
                    }
                }
            }
            Op::SoftmaxXent | Op::Logsumexp => {
                let n = node.args[0];
                let p = &ws.aux[i];
                let c =
                    (node.op == Op::SoftmaxXent).then(|| to_index(val[node.args[1]][0], p.len()));
                let (g0, gt0) = (g[0], gt.first().copied().unwrap_or(0.0));
                for (k, d) in ws.adj[n].iter_mut().enumerate() {
                    *d += g0 * (p[k] - if c == Some(k) { 1.0 } else { 0.0 });
                }
                if second {
                    let tz = tanof(0);
                    let ptz: f64 = tz.map_or(0.0, |t| p.iter().zip(t).map(|(a, b)| a * b).sum());
                    for (k, d) in ws.adt[n].iter_mut().enumerate() {
                        let hv = tz.map_or(0.0, |t| p[k] * t[k] - p[k] * ptz);
                        *d += gt0 * (p[k] - if c == Some(k) { 1.0 } else { 0.0 }) + g0 * hv;
                    }
                }
            }
            Op::SqLoss => {
                let (x, y) = (&val[node.args[0]], &val[node.args[1]]);
                let (tx, ty) = (tanof(0), tanof(1));
                let (g0, gt0) = (g[0], gt.first().copied().unwrap_or(0.0));
                for (k, sign) in [(0usize, 1.0), (1, -1.0)] {
                    if !act[k] {
                        continue;
                    }
                    let n = node.args[k];
                    for (j, d) in ws.adj[n].iter_mut().enumerate() {
                        *d += sign * g0 * (x[j] - y[j]);
                    }
                    if second {
                        for (j, d) in ws.adt[n].iter_mut().enumerate() {
                            let dt = tx.map_or(0.0, |t| t[j]) - ty.map_or(0.0, |t| t[j]);
                            *d += sign * (gt0 * (x[j] - y[j]) + g0 * dt);
                        }
                    }
                }
            }
            Op::MatMul { ta, tb } => {
                let (na, nb) = (&self.nodes[node.args[0]], &self.nodes[node.args[1]]);
                let (sa, sb) = ((na.rows, na.cols), (nb.rows, nb.cols));
                let (cr, cc) = (node.rows, node.cols);
                // Ā += C̄ op(B)ᵀ (or its transpose), B̄ += op(A)ᵀ C̄ (or its transpose).
                let grad_a = |dst: &mut [f64], cbar: &[f64], b: &[f64]| {
                    if *ta {
                        // A stored k×m: Ā = op(B) C̄ᵀ.
                        gemm(1.0, b, sb, *tb, cbar, (cr, cc), true, dst);
                    } else {
                        gemm(1.0, cbar, (cr, cc), false, b, sb, !*tb, dst);
                    }
                };
                let grad_b = |dst: &mut [f64], cbar: &[f64], a: &[f64]| {
                    if *tb {
                        gemm(1.0, cbar, (cr, cc), true, a, sa, *ta, dst);
                    } else {
                        gemm(1.0, a, sa, !*ta, cbar, (cr, cc), false, dst);
                    }
                };
                let (va, vb) = (&val[node.args[0]], &val[node.args[1]]);
                let (tva, tvb) = (tanof(0), tanof(1));
                if act[0] {
                    let n = node.args[0];
                    if need_a(n) {
                        grad_a(&mut ws.adj[n], &g, vb);
                    }
                    if second && need_t(n) {
                        if gt_nz {
                            grad_a(&mut ws.adt[n], &gt, vb);
                        }
                        if let Some(t) = tvb {
                            grad_a(&mut ws.adt[n], &g, t);
                        }
                    }
                }
                if act[1] {
                    let n = node.args[1];
                    if need_a(n) {
                        grad_b(&mut ws.adj[n], &g, va);
                    }
                    if second && need_t(n) {
                        if gt_nz {
                            grad_b(&mut ws.adt[n], &gt, va);
                        }
                        if let Some(t) = tva {
                            grad_b(&mut ws.adt[n], &g, t);
                        }
                    }
                }
            }
            Op::Transpose => {
                let n = node.args[0];
                let src = &self.nodes[n];
                for r in 0..src.rows {
                    for c in 0..src.cols {
                        ws.adj[n][r * src.cols + c] += g[c * src.rows + r];
                        if second {
                            ws.adt[n][r * src.cols + c] += gt[c * src.rows + r];
                        }
                    }
                }
            }
            Op::Index => {
                let off = self.index_offset(node, val);
                let n = node.args[0];
                for (k, v) in g.iter().enumerate() {
                    ws.adj[n][off + k] += v;
                }
                if second {
                    for (k, v) in gt.iter().enumerate() {
                        ws.adt[n][off + k] += v;
                    }
                }
            }
            Op::Reduce { mean, data, body } => {
                let nsamp = inp.data.batch_len(*data);
                let k = if *mean {
                    1.0 / nsamp.max(1) as f64
                } else {
                    1.0
                };
                let Some(mut sub) = ws.sub[i].take() else {
                    ws.adj[i] = g;
                    ws.adt[i] = gt;
                    return;
                };
                // Outer values and tangents are still in `sub` from the forward pass.
                for (j, bn) in body.nodes.iter().enumerate() {
                    if matches!(bn.op, Op::Outer(_)) {
                        sub.adj[j].fill(0.0);
                        sub.adt[j].fill(0.0);
                    }
                }
                for s in 0..nsamp {
                    ctx.push(s);
                    body.forward_with(&mut sub, inp, mode, ctx, None);
                    // Reset adjoints except at Outer nodes (which accumulate).
                    for j in 0..body.nodes.len() {
                        if matches!(body.nodes[j].op, Op::Outer(_)) {
                            sub.live_adj[j] = true;
                            sub.live_adt[j] = second;
                        } else {
                            sub.live_adj[j] = false;
                            sub.live_adt[j] = false;
                        }
                    }
                    let o = body.output;
                    // An `Outer` output accumulates over samples; any other
                    // output is seeded afresh.
                    let keep = if matches!(body.nodes[o].op, Op::Outer(_)) {
                        1.0
                    } else {
                        0.0
                    };
                    for (d, v) in sub.adj[o].iter_mut().zip(&g) {
                        *d = keep * *d + k * v;
                    }
                    if second {
                        for (d, v) in sub.adt[o].iter_mut().zip(&gt) {
                            *d = keep * *d + k * v;
                        }
                    }
                    sub.live_adj[o] = true;
                    sub.live_adt[o] = second;
                    body.reverse_from(&mut sub, inp, mode, ctx, None);
                    ctx.pop();
                    // Row nodes send this sample's adjoints to their row.
                    for (j, bn) in body.nodes.iter().enumerate() {
                        let Op::Row(p) = bn.op else { continue };
                        if !Self::active(&self.nodes[p], mode) || !sub.live_adj[j] {
                            continue;
                        }
                        Self::touch(ws, p, second);
                        let w = sub.adj[j].len();
                        if let Some(dst) = ws.adj[p].get_mut(s * w..(s + 1) * w) {
                            for (d, v) in dst.iter_mut().zip(&sub.adj[j]) {
                                *d += v;
                            }
                        }
                        if second && sub.live_adt[j] {
                            if let Some(dst) = ws.adt[p].get_mut(s * w..(s + 1) * w) {
                                for (d, v) in dst.iter_mut().zip(&sub.adt[j]) {
                                    *d += v;
                                }
                            }
                        }
                    }
                }
                for (j, bn) in body.nodes.iter().enumerate() {
                    if let Op::Outer(p) = bn.op {
                        if Self::active(&self.nodes[p], mode) {
                            Self::touch(ws, p, second);
                            acc_into(&mut ws.adj[p], &sub.adj[j], 1.0);
                            if second {
                                acc_into(&mut ws.adt[p], &sub.adt[j], 1.0);
                            }
                        }
                    }
                }
                ws.sub[i] = Some(sub);
            }
        }
        ws.adj[i] = g;
        ws.adt[i] = gt;
    }

    /// Writes the tape as text, one node per line (stable: used in golden
    /// tests).
    pub fn dump(&self) -> String {
        let mut s = String::new();
        self.dump_into(&mut s, 0);
        let _ = writeln!(s, "output %{}", self.output);
        s
    }

    fn dump_into(&self, s: &mut String, indent: usize) {
        let pad = "  ".repeat(indent);
        for (i, n) in self.nodes.iter().enumerate() {
            let args: Vec<String> = n.args.iter().map(|a| format!("%{a}")).collect();
            let op = match &n.op {
                Op::Const(v) if v.len() == 1 => format!("const {}", crate::hir::fmt_num(v[0])),
                Op::Const(v) => format!("const[{}]", v.len()),
                Op::Var(VarKind::X, o) => format!("x[{o}..{}]", o + n.len()),
                Op::Var(VarKind::Y, o) => format!("y[{o}..{}]", o + n.len()),
                Op::Outer(p) => format!("outer %{p}"),
                Op::Row(p) => format!("row of %{p}"),
                Op::Model { model, data } => format!("model{model} over data{data}"),
                Op::Field(l, data, f) => format!("field {f:?} of data{data} (level {l})"),
                Op::Pow(p) => format!("pow {}", crate::hir::fmt_num(*p)),
                Op::Unary(b) => b.name().to_string(),
                Op::MatMul { ta, tb } => format!(
                    "matmul{}{}",
                    if *ta { " Aᵀ" } else { "" },
                    if *tb { " Bᵀ" } else { "" }
                ),
                Op::Quad { sym } => format!("quad{}", if *sym { " sym" } else { "" }),
                Op::Reduce { mean, data, .. } => {
                    format!("{} over data{data}", if *mean { "mean" } else { "sum" })
                }
                other => format!("{other:?}").to_lowercase(),
            };
            let dep = match (n.dep_x, n.dep_y) {
                (true, true) => " {x,y}",
                (true, false) => " {x}",
                (false, true) => " {y}",
                _ => "",
            };
            let _ = writeln!(
                s,
                "{pad}%{i} = {op}{}{} : {}x{}{dep}",
                if args.is_empty() { "" } else { " " },
                args.join(", "),
                n.rows,
                n.cols
            );
            if let Op::Reduce { body, .. } = &n.op {
                body.dump_into(s, indent + 1);
                let _ = writeln!(s, "{pad}  yield %{}", body.output);
            }
        }
    }
}

fn copy_outer(
    body: &Tape,
    sub: &mut Workspace,
    vals: &[Vec<f64>],
    tans: &[Vec<f64>],
    tangent: bool,
) {
    for (j, n) in body.nodes.iter().enumerate() {
        match n.op {
            Op::Outer(p) => {
                sub.val[j].copy_from_slice(&vals[p]);
                if tangent && n.dep_y {
                    sub.tan[j].copy_from_slice(&tans[p]);
                }
            }
            Op::Row(p) => {
                // Values, then tangents (zero when not seeded).
                let aux = &mut sub.aux[j];
                aux.clear();
                aux.extend_from_slice(&vals[p]);
                if tangent && n.dep_y && tans[p].len() == vals[p].len() {
                    aux.extend_from_slice(&tans[p]);
                } else {
                    aux.resize(2 * vals[p].len(), 0.0);
                }
            }
            _ => {}
        }
    }
}

/// The token sequences of the current minibatch of data source `data`, as
/// concatenated tokens and offsets.
fn gather_tokens(src: &dyn SampleSource, data: usize) -> (Vec<u32>, Vec<usize>) {
    let n = src.batch_len(data);
    let mut tokens = Vec::new();
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0);
    for i in 0..n {
        tokens.extend_from_slice(src.tokens(data, i));
        offsets.push(tokens.len());
    }
    (tokens, offsets)
}
