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
    #[inline]
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
#[inline]
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
        zero(&mut adj[n]);
    }
    if second && !live_adt[n] {
        live_adt[n] = true;
        zero(&mut adt[n]);
    }
}

/// Sets `v` to zeros (a scalar without a call of `memset`).
#[inline]
fn zero(v: &mut [f64]) {
    if let [x] = v {
        *x = 0.0;
    } else {
        v.fill(0.0);
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
        match plan {
            // The plan lists the nodes that compute anything.
            Some(p) => {
                for &i in &p.fwd {
                    self.forward_node(ws, inp, mode, ctx, plan, i);
                }
            }
            None => {
                for i in 0..self.nodes.len() {
                    self.forward_node(ws, inp, mode, ctx, plan, i);
                }
            }
        }
    }

    /// The forward rules of node `i`, when the plan asks for its value or
    /// tangent.
    #[inline]
    fn forward_node(
        &self,
        ws: &mut Workspace,
        inp: &Inputs<'_>,
        mode: Mode,
        ctx: &mut Vec<usize>,
        plan: Option<&Plan>,
        i: NodeId,
    ) {
        let node = &self.nodes[i];
        let do_val = plan.is_none_or(|p| p.val[i]);
        let tangent = mode.tangent && node.dep_y && plan.is_none_or(|p| p.tan[i]);
        if !(do_val || tangent) {
            return;
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
            ctx,
            do_val,
            tangent,
        };
        eval(&mut f);
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
        self.reverse_with(ws, inp, mode, ctx, seed, plan, true);
    }

    /// [`Tape::reverse`], with (`shortcut`) or without the scalar shortcut
    /// of [`Tape::scalar_reverse`] (the tests compare the two bit for bit).
    #[allow(clippy::too_many_arguments)]
    fn reverse_with(
        &self,
        ws: &mut Workspace,
        inp: &Inputs<'_>,
        mode: Mode,
        ctx: &mut Vec<usize>,
        seed: f64,
        plan: Option<&Plan>,
        shortcut: bool,
    ) {
        ws.live_adj.fill(false);
        ws.live_adt.fill(false);
        let o = self.output;
        ws.adj[o].fill(0.0);
        ws.adt[o].fill(0.0);
        if let Some(v) = ws.adj[o].first_mut() {
            *v = seed;
        }
        ws.live_adj[o] = true;
        self.reverse_loop(ws, inp, mode, ctx, plan, shortcut);
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
        self.reverse_loop(ws, inp, mode, ctx, plan, true);
    }

    /// The reverse loop; `shortcut` lets scalar nodes take
    /// [`Tape::scalar_reverse`].
    fn reverse_loop(
        &self,
        ws: &mut Workspace,
        inp: &Inputs<'_>,
        mode: Mode,
        ctx: &mut Vec<usize>,
        plan: Option<&Plan>,
        shortcut: bool,
    ) {
        match plan {
            // The plan's order lists only the nodes whose rule runs, and
            // holds every node's argument activity.
            Some(p) if p.mode == mode => {
                for &i in &p.rev {
                    let act = &p.act[p.act_at[i]..p.act_at[i + 1]];
                    self.reverse_node(ws, inp, mode, ctx, plan, i, act, shortcut);
                }
            }
            _ => {
                // Reused across nodes: one allocation per sweep.
                let mut act = Vec::new();
                for i in (0..self.nodes.len()).rev() {
                    act.clear();
                    act.extend(
                        self.nodes[i]
                            .args
                            .iter()
                            .map(|&a| Self::active(&self.nodes[a], mode)),
                    );
                    self.reverse_node(ws, inp, mode, ctx, plan, i, &act, shortcut);
                }
            }
        }
    }

    /// The reverse rules of node `i` when its adjoint is live and the plan
    /// runs it; `act` holds its arguments' activity in `mode`; `shortcut`
    /// lets a scalar node take [`Tape::scalar_reverse`].
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn reverse_node(
        &self,
        ws: &mut Workspace,
        inp: &Inputs<'_>,
        mode: Mode,
        ctx: &mut Vec<usize>,
        plan: Option<&Plan>,
        i: NodeId,
        act: &[bool],
        shortcut: bool,
    ) {
        let node = &self.nodes[i];
        if !ws.live_adj[i] || !Self::active(node, mode) || plan.is_some_and(|p| !p.run[i]) {
            return;
        }
        for (&arg, &on) in node.args.iter().zip(act) {
            if on {
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
            zero(&mut ws.adt[i]);
            ws.live_adt[i] = mode.second;
        }
        // Leaves have no reverse rule (`rev` does nothing for them).
        if matches!(
            node.op,
            Op::Const(_) | Op::Var(..) | Op::Outer(_) | Op::Row(_) | Op::Field(..)
        ) {
            return;
        }
        if shortcut && self.scalar_reverse(ws, mode, plan, i, act) {
            return;
        }
        // The arguments precede the node (topological order), so their
        // adjoints and this node's are disjoint parts of the buffers.
        let (adj, adj_i) = ws.adj.split_at_mut(i);
        let (adt, adt_i) = ws.adt.split_at_mut(i);
        let mut r = Rev {
            tape: self,
            node,
            i,
            mode,
            plan,
            g: &adj_i[0],
            gt: &adt_i[0],
            val: &ws.val,
            tan: &ws.tan,
            aux: &ws.aux,
            adj,
            adt,
            live_adj: &mut ws.live_adj[..i],
            live_adt: &mut ws.live_adt[..i],
            sub: &mut ws.sub[i],
            inp,
            ctx,
            act,
        };
        rev(&mut r);
    }
}

impl Tape {
    /// The reverse rules of a scalar `a ± b` or `a b` whose arguments are
    /// scalars, without building a [`Rev`]: the same operations in the same
    /// order as `elementwise::add` and `elementwise::mul` (through
    /// [`rev`]'s gating) do on length-1 buffers. Returns `false` for any
    /// other node.
    fn scalar_reverse(
        &self,
        ws: &mut Workspace,
        mode: Mode,
        plan: Option<&Plan>,
        i: NodeId,
        act: &[bool],
    ) -> bool {
        let node = &self.nodes[i];
        let &[a0, a1] = node.args.as_slice() else {
            return false;
        };
        let scalar = |n: NodeId| self.nodes[n].len() == 1;
        if !(scalar(i) && scalar(a0) && scalar(a1)) || act.len() != 2 {
            return false;
        }
        let need_a = |n: NodeId| plan.is_none_or(|p| p.need_a[n]);
        let first = (act[0] && need_a(a0)) || (act[1] && need_a(a1));
        let (g, gt) = (ws.adj[i][0], ws.adt[i].first().copied());
        match node.op {
            Op::Add | Op::Sub => {
                let s = if matches!(node.op, Op::Add) {
                    1.0
                } else {
                    -1.0
                };
                if first {
                    if act[0] {
                        ws.adj[a0][0] += 1.0 * g;
                    }
                    if act[1] {
                        ws.adj[a1][0] += s * g;
                    }
                }
                if mode.second {
                    let gt = ws.adt[i][0];
                    if act[0] {
                        ws.adt[a0][0] += 1.0 * gt;
                    }
                    if act[1] {
                        ws.adt[a1][0] += s * gt;
                    }
                }
            }
            Op::Mul => {
                let (x, y) = (ws.val[a0][0], ws.val[a1][0]);
                if first {
                    if act[0] {
                        ws.adj[a0][0] += g * y;
                    }
                    if act[1] {
                        ws.adj[a1][0] += g * x;
                    }
                }
                if mode.second {
                    let gt = gt.unwrap_or(0.0);
                    let tanof = |n: NodeId| {
                        (mode.tangent && self.nodes[n].dep_y && plan.is_none_or(|p| p.tan[n]))
                            .then(|| ws.tan[n][0])
                    };
                    let (tx, ty) = (tanof(a0), tanof(a1));
                    if act[0] {
                        ws.adt[a0][0] += gt * y + g * ty.unwrap_or(0.0);
                    }
                    if act[1] {
                        ws.adt[a1][0] += gt * x + g * tx.unwrap_or(0.0);
                    }
                }
            }
            _ => return false,
        }
        true
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

#[cfg(test)]
mod tests {
    use super::super::{
        Field, Inputs, Mode, Node, NodeId, Op, SampleSource, Tape, VarKind, Workspace,
    };

    /// No data: the tapes here have no sample fields.
    struct NoData;
    impl SampleSource for NoData {
        fn batch_len(&self, _: usize) -> usize {
            0
        }
        fn field(&self, _: usize, _: usize, _: Field, _: &mut [f64]) {}
    }

    /// A scalar tape of sums, differences and products over y, x and a
    /// constant c, with repeated arguments (`y y`, `a + a`).
    fn scalar_tape(c: f64) -> Tape {
        let spec: [(Op, &[NodeId]); 12] = [
            (Op::Var(VarKind::Y, 0), &[]),
            (Op::Var(VarKind::X, 0), &[]),
            (Op::Const(vec![c]), &[]),
            (Op::Mul, &[0, 1]),
            (Op::Mul, &[0, 0]),
            (Op::Sub, &[3, 2]),
            (Op::Add, &[4, 5]),
            (Op::Mul, &[6, 2]),
            (Op::Mul, &[7, 6]),
            (Op::Sub, &[8, 1]),
            (Op::Add, &[9, 9]),
            (Op::Mul, &[10, 3]),
        ];
        let mut nodes: Vec<Node> = Vec::new();
        for (op, args) in spec {
            let dep_x =
                matches!(op, Op::Var(VarKind::X, _)) || args.iter().any(|&a| nodes[a].dep_x);
            let dep_y =
                matches!(op, Op::Var(VarKind::Y, _)) || args.iter().any(|&a| nodes[a].dep_y);
            nodes.push(Node {
                op,
                args: args.to_vec(),
                rows: 1,
                cols: 1,
                dep_x,
                dep_y,
            });
        }
        Tape {
            output: nodes.len() - 1,
            nodes,
        }
    }

    /// The reverse sweep's scalar shortcut (`scalar_reverse`) gives the
    /// bits of the operations' own rules (NaN counted as one value), in
    /// every mode, with and without a plan, on signed zeros, infinities,
    /// NaN and subnormals.
    #[test]
    fn scalar_shortcut_has_the_rules_bits() {
        let special = [0.0, -0.0, 1.5, -2.5, f64::INFINITY, f64::NAN, 1e-310];
        let mut modes = Vec::new();
        for bits in 0..32u32 {
            let b = |k: u32| bits & (1 << k) != 0;
            let mode = Mode {
                tangent: b(0),
                wrt_x: b(1),
                wrt_y: b(2),
                second: b(3),
                first: b(4),
            };
            if (mode.wrt_x || mode.wrt_y) && (mode.tangent || !mode.second) {
                modes.push(mode);
            }
        }
        let data = NoData;
        let mut checked = 0usize;
        for &c in &special {
            let tape = scalar_tape(c);
            for &mode in &modes {
                let plan = tape.plan(mode, true);
                for plan in [None, Some(&plan)] {
                    let mut points = Vec::new();
                    for &x in &special {
                        for &y in &special {
                            points.extend(special.iter().map(|&v| (x, y, v)));
                        }
                    }
                    for (x, y, v) in points {
                        let (xs, ys, vs) = ([x], [y], [v]);
                        let inp = Inputs {
                            x: &xs,
                            y: &ys,
                            v: &vs,
                            data: &data,
                            models: &[],
                        };
                        let mut fast = Workspace::new(&tape);
                        let mut rules = Workspace::new(&tape);
                        for (ws, shortcut) in [(&mut fast, true), (&mut rules, false)] {
                            let mut ctx = Vec::new();
                            tape.forward(ws, &inp, mode, &mut ctx, plan);
                            tape.reverse_with(ws, &inp, mode, &mut ctx, 1.0, plan, shortcut);
                        }
                        for k in 0..tape.nodes.len() {
                            assert_eq!(fast.adjoint_live(k), rules.adjoint_live(k));
                            assert_eq!(fast.adjoint_tangent_live(k), rules.adjoint_tangent_live(k));
                            // Rust leaves the sign and payload of a NaN result
                            // unspecified (the compiler may commute an addition's
                            // operands), so every NaN counts as one value.
                            let bits = |s: &[f64]| {
                                s.iter()
                                    .map(|v| {
                                        if v.is_nan() {
                                            f64::NAN.to_bits()
                                        } else {
                                            v.to_bits()
                                        }
                                    })
                                    .collect::<Vec<_>>()
                            };
                            if fast.adjoint_live(k) {
                                assert_eq!(
                                    bits(fast.adjoint(k)),
                                    bits(rules.adjoint(k)),
                                    "ā of %{k}, {mode:?}, x {x} y {y} v {v} c {c}"
                                );
                            }
                            if fast.adjoint_tangent_live(k) {
                                assert_eq!(
                                    bits(fast.adjoint_tangent(k)),
                                    bits(rules.adjoint_tangent(k)),
                                    "ǡ of %{k}, {mode:?}, x {x} y {y} v {v} c {c}"
                                );
                            }
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 10_000);
    }
}
