//! The sweeps: a forward loop over the arena (values and tangents) and a
//! reverse loop (adjoints and adjoint tangents), each dispatching every
//! node to its operation's rules.

use super::{
    elementwise, leaf, linalg, loss, model, reduction, sample, Inputs, Mode, Node, NodeId, Op,
    Plan, Tape, Workspace,
};

/// What a node's forward rules read and write.
pub(super) struct Fwd<'a, 'i> {
    /// The tape of the node.
    pub tape: &'a Tape,
    /// The node.
    pub node: &'a Node,
    /// Values of the nodes before this one.
    pub val: &'a [Vec<f64>],
    /// Tangents of the nodes before this one.
    pub tan: &'a [Vec<f64>],
    /// The node's value.
    pub out: &'a mut Vec<f64>,
    /// The node's tangent.
    pub tout: &'a mut Vec<f64>,
    /// The node's scratch buffer.
    pub aux: &'a mut Vec<f64>,
    /// The node's adjoint (resized by model calls).
    pub adj: &'a mut Vec<f64>,
    /// The node's adjoint tangent (resized by model calls).
    pub adt: &'a mut Vec<f64>,
    /// The workspace of a reduction's body.
    pub sub: &'a mut Option<Workspace>,
    /// The sweep's inputs.
    pub inp: &'a Inputs<'i>,
    /// The sweep's mode.
    pub mode: Mode,
    /// The samples of the enclosing reductions, outermost first.
    pub ctx: &'a mut Vec<usize>,
    /// Compute the value (model calls and products skip it otherwise).
    pub do_val: bool,
    /// Compute the tangent.
    pub tangent: bool,
}

impl<'a> Fwd<'a, '_> {
    /// The value of argument `k`.
    pub fn a(&self, k: usize) -> &'a [f64] {
        &self.val[self.node.args[k]]
    }
    /// The tangent of argument `k`.
    pub fn ta(&self, k: usize) -> &'a [f64] {
        &self.tan[self.node.args[k]]
    }
    /// The node of argument `k`.
    pub fn arg(&self, k: usize) -> &'a Node {
        &self.tape.nodes[self.node.args[k]]
    }
}

/// What a node's reverse rules read and write.
pub(super) struct Rev<'a, 'i> {
    /// The tape of the node.
    pub tape: &'a Tape,
    /// The node.
    pub node: &'a Node,
    /// Its id.
    pub i: NodeId,
    /// The sweep's mode.
    pub mode: Mode,
    /// The sweep's plan (`None`: everything).
    pub plan: Option<&'a Plan>,
    /// The node's adjoint ā.
    pub g: &'a [f64],
    /// The node's adjoint tangent ǡ.
    pub gt: &'a [f64],
    /// Values of every node.
    pub val: &'a [Vec<f64>],
    /// Tangents of every node.
    pub tan: &'a [Vec<f64>],
    /// Scratch buffers of every node (as the forward pass left them).
    pub aux: &'a [Vec<f64>],
    /// Adjoints of every node (the arguments' accumulate).
    pub adj: &'a mut [Vec<f64>],
    /// Adjoint tangents of every node.
    pub adt: &'a mut [Vec<f64>],
    /// Which adjoints are live.
    pub live_adj: &'a mut [bool],
    /// Which adjoint tangents are live.
    pub live_adt: &'a mut [bool],
    /// The workspace of a reduction's body.
    pub sub: &'a mut Option<Workspace>,
    /// The sweep's inputs.
    pub inp: &'a Inputs<'i>,
    /// The samples of the enclosing reductions, outermost first.
    pub ctx: &'a mut Vec<usize>,
    /// Per argument: its adjoint is propagated.
    pub act: &'a [bool],
}

impl<'a> Rev<'a, '_> {
    /// Second-order sweep.
    pub fn second(&self) -> bool {
        self.mode.second
    }
    /// The adjoint of node `n` is needed.
    pub fn need_a(&self, n: NodeId) -> bool {
        self.plan.is_none_or(|p| p.need_a[n])
    }
    /// The adjoint tangent of node `n` is needed.
    pub fn need_t(&self, n: NodeId) -> bool {
        self.plan.is_none_or(|p| p.need_t[n])
    }
    /// This node's adjoint tangent can be non-zero.
    pub fn gt_nz(&self) -> bool {
        self.plan.is_none_or(|p| p.tnz[self.i])
    }
    /// The value of argument `k`.
    pub fn a(&self, k: usize) -> &'a [f64] {
        &self.val[self.node.args[k]]
    }
    /// The node of argument `k`.
    pub fn arg(&self, k: usize) -> &'a Node {
        &self.tape.nodes[self.node.args[k]]
    }
    /// The tangent of argument `k`, when the sweep computed it.
    pub fn tanof(&self, k: usize) -> Option<&'a [f64]> {
        let n = self.node.args[k];
        (self.mode.tangent && self.tape.nodes[n].dep_y && self.plan.is_none_or(|p| p.tan[n]))
            .then(|| self.tan[n].as_slice())
    }
    /// ā and ǡ of a scalar node.
    pub fn g0(&self) -> (f64, f64) {
        (self.g[0], self.gt.first().copied().unwrap_or(0.0))
    }
    /// Marks node `n`'s adjoint (and adjoint tangent) live, zeroing them first.
    pub fn touch(&mut self, n: NodeId) {
        touch(
            self.live_adj,
            self.live_adt,
            self.adj,
            self.adt,
            n,
            self.mode.second,
        );
    }
}

/// Marks `n`'s adjoint (and adjoint tangent) live, zeroing them first.
fn touch(
    live_adj: &mut [bool],
    live_adt: &mut [bool],
    adj: &mut [Vec<f64>],
    adt: &mut [Vec<f64>],
    n: NodeId,
    second: bool,
) {
    if !live_adj[n] {
        live_adj[n] = true;
        adj[n].fill(0.0);
    }
    if second && !live_adt[n] {
        live_adt[n] = true;
        adt[n].fill(0.0);
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
        for (i, node) in self.nodes.iter().enumerate() {
            let do_val = plan.is_none_or(|p| p.val[i]);
            let tangent = mode.tangent && node.dep_y && plan.is_none_or(|p| p.tan[i]);
            if !(do_val || tangent) {
                continue;
            }
            let (val, rest) = ws.val.split_at_mut(i);
            let (tan, trest) = ws.tan.split_at_mut(i);
            let mut f = Fwd {
                tape: self,
                node,
                val,
                tan,
                out: &mut rest[0],
                tout: &mut trest[0],
                aux: &mut ws.aux[i],
                adj: &mut ws.adj[i],
                adt: &mut ws.adt[i],
                sub: &mut ws.sub[i],
                inp,
                mode,
                ctx: &mut *ctx,
                do_val,
                tangent,
            };
            eval(&mut f);
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

    /// `true` when `node`'s adjoint is propagated in `mode`.
    pub(super) fn active(node: &Node, mode: Mode) -> bool {
        (mode.wrt_x && node.dep_x) || (mode.wrt_y && node.dep_y)
    }

    /// The reverse loop from the live adjoints down.
    pub(super) fn reverse_from(
        &self,
        ws: &mut Workspace,
        inp: &Inputs<'_>,
        mode: Mode,
        ctx: &mut Vec<usize>,
        plan: Option<&Plan>,
    ) {
        // Reused across nodes: one allocation per sweep, not one per node.
        let mut act = Vec::new();
        for i in (0..self.nodes.len()).rev() {
            let node = &self.nodes[i];
            if !ws.live_adj[i] || !Self::active(node, mode) || plan.is_some_and(|p| !p.run[i]) {
                continue;
            }
            for &arg in &node.args {
                if Self::active(&self.nodes[arg], mode) {
                    touch(
                        &mut ws.live_adj,
                        &mut ws.live_adt,
                        &mut ws.adj,
                        &mut ws.adt,
                        arg,
                        mode.second,
                    );
                }
            }
            if !ws.live_adt[i] {
                ws.adt[i].fill(0.0);
                ws.live_adt[i] = mode.second;
            }
            // Take this node's adjoints out to avoid aliasing with the arguments'.
            let g = std::mem::take(&mut ws.adj[i]);
            let gt = std::mem::take(&mut ws.adt[i]);
            act.clear();
            act.extend(
                node.args
                    .iter()
                    .map(|&a| Self::active(&self.nodes[a], mode)),
            );
            let mut r = Rev {
                tape: self,
                node,
                i,
                mode,
                plan,
                g: &g,
                gt: &gt,
                val: &ws.val,
                tan: &ws.tan,
                aux: &ws.aux,
                adj: &mut ws.adj,
                adt: &mut ws.adt,
                live_adj: &mut ws.live_adj,
                live_adt: &mut ws.live_adt,
                sub: &mut ws.sub[i],
                inp,
                ctx: &mut *ctx,
                act: &act,
            };
            rev(&mut r);
            ws.adj[i] = g;
            ws.adt[i] = gt;
        }
    }
}

/// Runs a node's forward rules: its value, then (when asked) its tangent.
fn eval(f: &mut Fwd<'_, '_>) {
    macro_rules! rules {
        ($m:path) => {{
            use $m as m;
            m::value(f);
            if f.tangent {
                m::tangent(f);
            }
        }};
    }
    match &f.node.op {
        // Outer values are copied once per reduction, by the caller.
        Op::Const(_) | Op::Outer(_) => {}
        Op::Row(_) => leaf::row(f),
        Op::Var(..) => leaf::var(f),
        Op::Field(..) => leaf::field(f),
        Op::Model { .. } => model::forward(f),
        Op::Reduce { .. } => sample::forward(f),
        Op::Add | Op::Sub => rules!(elementwise::add),
        Op::Mul => rules!(elementwise::mul),
        Op::Div => rules!(elementwise::div),
        Op::Neg => rules!(elementwise::neg),
        Op::Pow(_) => rules!(elementwise::pow),
        Op::Unary(_) => rules!(elementwise::unary),
        Op::Sum | Op::Mean => rules!(reduction::sum),
        Op::Norm2sq => rules!(reduction::norm2sq),
        Op::Norm2 => rules!(reduction::norm2),
        Op::Dot => rules!(reduction::dot),
        Op::Quad { .. } => rules!(reduction::quad),
        Op::SqLoss => rules!(reduction::sq_loss),
        Op::LogisticLoss => rules!(loss::logistic),
        Op::SoftmaxXent | Op::Logsumexp => rules!(loss::softmax),
        Op::Correct => rules!(loss::correct),
        Op::MatMul { .. } => rules!(linalg::matmul),
        Op::Transpose => rules!(linalg::transpose),
        Op::Index => rules!(linalg::index),
    }
}

/// Runs a node's reverse rules: its arguments' adjoints, then (in a
/// second-order sweep) their adjoint tangents.
fn rev(r: &mut Rev<'_, '_>) {
    macro_rules! rules {
        ($m:path) => {{
            use $m as m;
            // A rule writes only its arguments' adjoints: skip it when the
            // plan needs none of them (a second-order sweep that does not
            // ask for ∇ still reads ā where a second-order term does, and
            // the plan then needs it).
            if r.node
                .args
                .iter()
                .zip(r.act)
                .any(|(&a, &on)| on && r.need_a(a))
            {
                m::adjoint(r);
            }
            if r.second() {
                m::adjoint_tangent(r);
            }
        }};
    }
    match &r.node.op {
        Op::Const(_) | Op::Var(..) | Op::Outer(_) | Op::Row(_) | Op::Field(..) | Op::Correct => {}
        Op::Model { .. } => model::reverse(r),
        Op::Reduce { .. } => sample::reverse(r),
        Op::Add | Op::Sub => rules!(elementwise::add),
        Op::Mul => rules!(elementwise::mul),
        Op::Div => rules!(elementwise::div),
        Op::Neg => rules!(elementwise::neg),
        Op::Pow(_) => rules!(elementwise::pow),
        Op::Unary(_) => rules!(elementwise::unary),
        Op::Sum | Op::Mean => rules!(reduction::sum),
        Op::Norm2sq => rules!(reduction::norm2sq),
        Op::Norm2 => rules!(reduction::norm2),
        Op::Dot => rules!(reduction::dot),
        Op::Quad { .. } => rules!(reduction::quad),
        Op::SqLoss => rules!(reduction::sq_loss),
        Op::LogisticLoss => rules!(loss::logistic),
        Op::SoftmaxXent | Op::Logsumexp => rules!(loss::softmax),
        Op::MatMul { .. } => rules!(linalg::matmul),
        Op::Transpose => rules!(linalg::transpose),
        Op::Index => rules!(linalg::index),
    }
}
