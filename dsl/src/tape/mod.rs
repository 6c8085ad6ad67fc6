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
//!
//! The AD rules are laid out per operation, as CppAD's `var_op/*.hpp`
//! files are: one module per family of operations holds its value,
//! tangent (forward mode), adjoint (reverse mode) and adjoint-tangent
//! (forward-over-reverse) rules side by side —
//! `leaf` (variables, sample fields, rows of a model's output),
//! `elementwise` (arithmetic, powers, [`Func`]), `reduction` (sums, norms,
//! `dot`, `quad`), `loss` (losses and the `correct` metric), `linalg`
//! (products, transposes, indexing), `model` (model calls) and `sample`
//! (sample reductions), all under `dsl/src/tape/`. The sweeps in `sweep.rs`
//! are short loops over the arena that dispatch to those rules; `plan.rs`
//! decides per node which of them a sweep runs ([`Plan`]).
//!
//! The tape has its own vocabulary ([`Op`], [`Func`], [`Field`]) and does
//! not depend on the checker's types; `lower` translates the checked
//! program into it. Model calls go through [`crate::backend`], the model
//! interface the runner implements.

use std::fmt::Write as _;

use crate::backend::ModelBackend;

mod elementwise;
mod kernels;
mod leaf;
mod linalg;
mod loss;
mod model;
mod plan;
mod reduction;
mod sample;
mod sweep;

pub use plan::Plan;

/// A node id within one tape.
pub type NodeId = usize;

/// An elementwise function of the tape (`Op::Unary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    /// eˣ.
    Exp,
    /// ln x.
    Log,
    /// √x.
    Sqrt,
    /// 1/(1+e⁻ˣ).
    Sigmoid,
    /// ln(1+eˣ).
    Softplus,
    /// tanh x.
    Tanh,
    /// |x| (derivative 0 at 0).
    Abs,
    /// cos x.
    Cos,
    /// sin x.
    Sin,
}

impl Func {
    /// Its name in the source language (and in [`Tape::dump`]).
    pub const fn name(self) -> &'static str {
        match self {
            Func::Exp => "exp",
            Func::Log => "log",
            Func::Sqrt => "sqrt",
            Func::Sigmoid => "sigmoid",
            Func::Softplus => "softplus",
            Func::Tanh => "tanh",
            Func::Abs => "abs",
            Func::Cos => "cos",
            Func::Sin => "sin",
        }
    }
}

/// A field of a sample, as a [`SampleSource`] serves it.
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
    Unary(Func),
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
    /// Per node: its value is fixed when the workspace is allocated (a
    /// constant, or an `Outer` node of a fixed node, whose value is then
    /// copied in here once instead of at every reduction).
    fixed: Vec<bool>,
    sub: Vec<Option<Workspace>>,
}

impl Workspace {
    /// Allocates every buffer of `tape`.
    pub fn new(tape: &Tape) -> Self {
        Self::build(tape, None)
    }

    /// [`Workspace::new`]; for a sub-tape, `outer` holds the enclosing
    /// workspace's values and fixed flags, so that `Outer` nodes of fixed
    /// nodes get their values here.
    fn build(tape: &Tape, outer: Option<(&[Vec<f64>], &[bool])>) -> Self {
        let n = tape.nodes.len();
        let buf = |t: &Tape| {
            t.nodes
                .iter()
                .map(|x| vec![0.0; x.len()])
                .collect::<Vec<_>>()
        };
        let mut val = buf(tape);
        let mut fixed = vec![false; n];
        for (i, node) in tape.nodes.iter().enumerate() {
            match &node.op {
                Op::Const(c) => {
                    val[i].clone_from(c);
                    fixed[i] = true;
                }
                Op::Outer(p) => {
                    if let Some((pv, pf)) = outer {
                        if pf.get(*p).copied().unwrap_or(false) && pv[*p].len() == val[i].len() {
                            val[i].clone_from(&pv[*p]);
                            fixed[i] = true;
                        }
                    }
                }
                _ => {}
            }
        }
        let sub = tape
            .nodes
            .iter()
            .map(|x| match &x.op {
                Op::Reduce { body, .. } => Some(Workspace::build(body, Some((&val, &fixed)))),
                _ => None,
            })
            .collect();
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
            fixed,
            sub,
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

impl Tape {
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
                Op::Const(v) if v.len() == 1 => format!("const {}", fmt_num(v[0])),
                Op::Const(v) => format!("const[{}]", v.len()),
                Op::Var(VarKind::X, o) => format!("x[{o}..{}]", o + n.len()),
                Op::Var(VarKind::Y, o) => format!("y[{o}..{}]", o + n.len()),
                Op::Outer(p) => format!("outer %{p}"),
                Op::Row(p) => format!("row of %{p}"),
                Op::Model { model, data } => format!("model{model} over data{data}"),
                Op::Field(l, data, f) => format!("field {f:?} of data{data} (level {l})"),
                Op::Pow(p) => format!("pow {}", fmt_num(*p)),
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

/// A number as the dump prints it: integers without a fraction, others in
/// Rust's shortest round-trip form (the checker's messages use the same
/// format).
fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}
