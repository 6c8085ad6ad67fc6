//! The plan of a sweep: which of its rules a sweep runs at each node of the
//! top-level tape, derived once per (tape, mode) from activity, structural
//! zeros and demand.

use super::{Mode, Node, NodeId, Op, Tape};

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
    /// The mode the plan was made for.
    pub mode: Mode,
    /// The nodes the forward sweep visits (`val` or `tan`), in increasing
    /// order.
    pub fwd: Vec<NodeId>,
    /// The nodes the reverse sweep visits (`run`), in decreasing order.
    pub rev: Vec<NodeId>,
    /// Per node, per argument: the argument's adjoint is propagated in
    /// `mode` (node `i`'s flags are `act[act_at[i]..act_at[i + 1]]`).
    pub act: Vec<bool>,
    /// Offsets into `act`, one per node and one past the end.
    pub act_at: Vec<usize>,
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

/// A tape and a mode, with what every node reads.
struct Planner<'a> {
    tape: &'a Tape,
    mode: Mode,
    rd: Vec<Vec<NodeId>>,
    /// A reduction's reverse rule recomputes its body per sample and reads
    /// neither its own value nor its own tangent (generated code); the
    /// interpreter's plan (`false`) computes both in the forward sweep.
    recompute: bool,
}

impl Planner<'_> {
    /// Node `k`'s adjoint is propagated.
    fn w(&self, k: NodeId) -> bool {
        Tape::active(&self.tape.nodes[k], self.mode)
    }

    /// Node `k` has a tangent.
    fn t(&self, k: NodeId) -> bool {
        self.mode.tangent && self.tape.nodes[k].dep_y
    }

    /// Does the second-order term of `p` towards its argument `a` not
    /// vanish (does ǡ of `a` get a term from ā of `p` and a tangent)?
    fn so_term(&self, p: &Node, a: NodeId) -> bool {
        let other_t = p.args.iter().any(|&o| o != a && self.t(o));
        match p.op {
            Op::Mul | Op::Dot | Op::MatMul { .. } => {
                other_t || (p.args.iter().filter(|&&o| o == a).count() > 1 && self.t(a))
            }
            Op::Quad { .. } => p.args.get(1).is_some_and(|&y| self.t(y)),
            Op::Div
            | Op::Pow(_)
            | Op::Unary(_)
            | Op::Norm2sq
            | Op::Norm2
            | Op::LogisticLoss
            | Op::SoftmaxXent
            | Op::Logsumexp
            | Op::SqLoss => p.args.iter().any(|&o| self.t(o)),
            Op::Reduce { .. } => self.mode.tangent && p.dep_y,
            Op::Model { .. } => self.t(a),
            _ => false,
        }
    }

    /// Structural non-zeros of ā and ǡ, from the output down.
    fn nonzeros(&self) -> (Vec<bool>, Vec<bool>) {
        let n = self.tape.nodes.len();
        let mut anz = vec![false; n];
        let mut tnz = vec![false; n];
        if n > 0 {
            anz[self.tape.output] = self.w(self.tape.output);
        }
        for p in (0..n).rev() {
            if !(anz[p] || tnz[p]) {
                continue;
            }
            for &a in &self.rd[p] {
                if self.w(a) {
                    anz[a] |= anz[p];
                    tnz[a] |= tnz[p]
                        || (anz[p] && self.mode.second && self.so_term(&self.tape.nodes[p], a));
                }
            }
        }
        (anz, tnz)
    }

    /// Demand of ā and ǡ, from the variables up.
    fn demand(&self) -> (Vec<bool>, Vec<bool>) {
        let mode = self.mode;
        let n = self.tape.nodes.len();
        let mut need_a = vec![false; n];
        let mut need_t = vec![false; n];
        for (i, node) in self.tape.nodes.iter().enumerate() {
            if let Op::Var(..) = node.op {
                if self.w(i) {
                    need_a[i] = !mode.second || mode.first;
                    need_t[i] = mode.second;
                }
            }
            for &a in &self.rd[i] {
                if !self.w(a) {
                    continue;
                }
                need_a[i] |= need_a[a];
                need_t[i] |= need_t[a];
                if need_t[a] && mode.second && self.so_term(node, a) {
                    need_a[i] = true;
                }
            }
        }
        (need_a, need_t)
    }

    /// Tangents used by second-order terms, then what computing them needs.
    fn tangents(&self, run: &[bool], anz: &[bool], need_t: &[bool]) -> Vec<bool> {
        let n = self.tape.nodes.len();
        let mut tan = vec![false; n];
        if self.mode.second {
            for p in 0..n {
                if !run[p] || !anz[p] {
                    continue;
                }
                let node = &self.tape.nodes[p];
                for &a in &self.rd[p] {
                    if self.w(a) && need_t[a] && self.so_term(node, a) {
                        for &o in &self.rd[p] {
                            if self.t(o) {
                                tan[o] = true;
                            }
                        }
                        if matches!(node.op, Op::Reduce { .. }) && !self.recompute {
                            tan[p] = true;
                        }
                    }
                }
            }
        }
        for p in (0..n).rev() {
            if tan[p] {
                for &a in &self.rd[p] {
                    if self.t(a) {
                        tan[a] = true;
                    }
                }
            }
        }
        tan
    }

    /// Values: the output's (when `value`), those read by reverse rules and
    /// tangent rules, then everything their computation reads.
    fn values(&self, plan: &Plan, anz: &[bool], value: bool) -> Vec<bool> {
        let n = self.tape.nodes.len();
        let mut val = vec![false; n];
        if value && n > 0 {
            val[self.tape.output] = true;
        }
        for p in 0..n {
            self.values_read_by(p, plan, anz, &mut val);
        }
        for p in (0..n).rev() {
            if val[p] {
                for &a in &self.rd[p] {
                    val[a] = true;
                }
            }
        }
        val
    }

    /// Marks the values node `p`'s own reverse and tangent rules read.
    fn values_read_by(&self, p: NodeId, plan: &Plan, anz: &[bool], val: &mut [bool]) {
        let Plan {
            tan,
            run,
            need_a,
            need_t,
            tnz,
            ..
        } = plan;
        let (w, t) = (|k| self.w(k), |k| self.t(k));
        let node = &self.tape.nodes[p];
        let own = matches!(
            node.op,
            Op::Quad { .. } | Op::SoftmaxXent | Op::Logsumexp | Op::Norm2 | Op::Reduce { .. }
        );
        let linear = matches!(
            node.op,
            Op::Add | Op::Sub | Op::Neg | Op::Sum | Op::Mean | Op::Transpose
        );
        if (run[p] || tan[p]) && !linear {
            let recomputed = self.recompute && matches!(node.op, Op::Reduce { .. });
            if own && !matches!(node.op, Op::Quad { .. }) && !recomputed {
                val[p] = true;
            }
            match node.op {
                Op::Mul | Op::Dot => {
                    // ā and ǡ of one factor read the other factor's
                    // value; the tangent reads both.
                    for (k, &a) in node.args.iter().enumerate() {
                        let other = node.args[1 - k.min(1)];
                        let needs = w(a)
                            && ((need_a[a] && anz[p] && run[p]) || (need_t[a] && tnz[p] && run[p]));
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
                    for &a in &self.rd[p] {
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
}

impl Tape {
    /// The plan of a sweep in `mode`; `value` asks for the output's value.
    pub fn plan(&self, mode: Mode, value: bool) -> Plan {
        self.plan_with(mode, value, false)
    }

    /// The plan of a generated sweep, whose reductions' reverse rules
    /// recompute their bodies: a reduction's value and tangent are computed
    /// in the forward sweep only when the output or another rule reads them.
    pub fn plan_recompute(&self, mode: Mode, value: bool) -> Plan {
        self.plan_with(mode, value, true)
    }

    fn plan_with(&self, mode: Mode, value: bool, recompute: bool) -> Plan {
        let planner = Planner {
            tape: self,
            mode,
            rd: self.nodes.iter().map(reads).collect(),
            recompute,
        };
        let (anz, tnz) = planner.nonzeros();
        let (need_a, need_t) = planner.demand();
        let run: Vec<bool> = (0..self.nodes.len())
            .map(|p| (need_a[p] && anz[p]) || (need_t[p] && (tnz[p] || anz[p])))
            .collect();
        let tan = planner.tangents(&run, &anz, &need_t);
        let rev = (0..self.nodes.len()).rev().filter(|&p| run[p]).collect();
        let mut act_at = vec![0];
        let mut act = Vec::new();
        for node in &self.nodes {
            act.extend(node.args.iter().map(|&a| planner.w(a)));
            act_at.push(act.len());
        }
        let mut plan = Plan {
            val: Vec::new(),
            tan,
            run,
            need_a,
            need_t,
            tnz,
            mode,
            fwd: Vec::new(),
            rev,
            act,
            act_at,
        };
        plan.val = planner.values(&plan, &anz, value);
        plan.fwd = (0..self.nodes.len())
            .filter(|&p| plan.val[p] || plan.tan[p])
            .collect();
        plan
    }
}
