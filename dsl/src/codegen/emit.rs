//! The symbolic sweeps: the interpreter's forward and reverse loops
//! (`tape/sweep.rs`, `tape/sample.rs`) run at generation time, with the
//! plan and the adjoints' liveness (both static for a given tape and mode)
//! decided here, and every rule that would run written out as code.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::data::TableInfo;
use super::zeros::{self, Flags};
use crate::hir::{DataDef, SourceKind};
use crate::tape::{Field, Mode, NodeId, Op, Plan, Tape, VarKind};

/// Loops over at most this many elements are written out: the buffers are
/// locals of the sweep function, and with constant indices LLVM keeps them
/// in registers and drops the dead stores (a rolled 10-trip loop at
/// `opt-level = "s"` goes through memory on every element). The operations
/// and their order are the loop's, so the bits are the same.
pub(super) const UNROLL: usize = 16;

/// `(0..N).map(|k| E).sum::<T>()` (or `.sum()`) with N ≤ [`UNROLL`] becomes
/// `(E₀ + E₁ + … )`, Eⱼ being E with the identifier `k` replaced by j: the
/// same additions in the same order (`Iterator::sum` of floats starts from
/// −0.0, and −0.0 + e = e for every e).
pub(super) fn unroll_sums(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("(0..") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some((code, used)) = unroll_one(tail) {
            out.push_str(&code);
            rest = &tail[used..];
        } else {
            out.push_str("(0..");
            rest = &tail[4..];
        }
    }
    out.push_str(rest);
    out
}

/// One `(0..N).map(|k| E).sum…()` at the start of `s`: its written-out form
/// and the length it replaces.
fn unroll_one(s: &str) -> Option<(String, usize)> {
    let digits = s[4..].bytes().take_while(u8::is_ascii_digit).count();
    let n: usize = s[4..4 + digits].parse().ok()?;
    let head = 4 + digits;
    let body_at = head + ").map(|k| ".len();
    if !s[head..].starts_with(").map(|k| ") || n == 0 || n > UNROLL {
        return None;
    }
    // The closure body runs to the `)` closing `map(`.
    let mut depth = 0usize;
    let mut end = None;
    for (i, c) in s[body_at..].char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' if depth > 0 => depth -= 1,
            ')' => {
                end = Some(body_at + i);
                break;
            }
            _ => {}
        }
    }
    let end = end?;
    let body = &s[body_at..end];
    if body.contains("(0..") {
        return None;
    }
    let after = &s[end..];
    let used = [").sum::<T>()", ").sum()"]
        .iter()
        .find(|t| after.starts_with(**t))
        .map(|t| end + t.len())?;
    let terms: Vec<String> = (0..n).map(|j| subst_k(body, j)).collect();
    Some((format!("({})", terms.join(" + ")), used))
}

/// `body` with every identifier `k` (not part of a longer name) replaced by `j`.
fn subst_k(body: &str, j: usize) -> String {
    let b = body.as_bytes();
    let mut out = String::with_capacity(body.len());
    for (i, c) in body.char_indices() {
        let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
        let lone = c == 'k' && (i == 0 || !word(b[i - 1])) && (i + 1 == b.len() || !word(b[i + 1]));
        if lone {
            out.push_str(&j.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// Where the elements of one buffer live in the generated code.
#[derive(Debug, Clone)]
pub(super) enum Ref {
    /// A workspace field or a static table: `name[k]`.
    Buf(String),
    /// A slice of a variable or the direction: `name[off + k]`.
    Var(&'static str, usize),
    /// Row `row` (a local) of a feature table `width` wide.
    Tab(String, String, usize),
    /// Element `row` of a per-row column.
    Col(String, String),
    /// A local array: a compact table's decoded row.
    Row(String),
    /// One scalar expression.
    Lit(String),
    /// Structurally zero (tangents of nodes that do not depend on y).
    Zero,
}

impl Ref {
    /// Element `k` (an expression).
    pub fn at(&self, k: &str) -> String {
        match self {
            Ref::Buf(n) | Ref::Row(n) => format!("{n}[{k}]"),
            Ref::Var(n, 0) => format!("{n}[{k}]"),
            Ref::Var(n, o) => format!("{n}[{o} + {k}]"),
            Ref::Tab(n, r, w) => format!("{n}[{r} * {w} + {k}]"),
            Ref::Col(n, r) => format!("{n}[{r}]"),
            Ref::Lit(s) => s.clone(),
            Ref::Zero => "Z".into(),
        }
    }

    /// The whole buffer of `len` elements as a slice expression.
    pub fn slice(&self, len: usize) -> String {
        match self {
            Ref::Buf(n) | Ref::Row(n) => format!("&{n}[..]"),
            Ref::Var(n, o) => format!("&{n}[{o}..{}]", o + len),
            Ref::Tab(n, r, w) => format!("&{n}[{r} * {w}..{r} * {w} + {w}]"),
            Ref::Col(n, r) => format!("core::slice::from_ref(&{n}[{r}])"),
            Ref::Lit(s) => format!("&[{s}][..]"),
            Ref::Zero => format!("&[Z; {len}][..]"),
        }
    }

    /// Element `k` of a buffer of `len` elements, a scalar broadcasting.
    pub fn bc(&self, len: usize, k: &str) -> String {
        if len == 1 {
            self.at("0")
        } else {
            self.at(k)
        }
    }
}

/// One tape of the scope: the top-level tape of f or g, or the body of a
/// sample reduction.
struct Level<'a> {
    tape: &'a Tape,
    pre: String,
    live_adj: Vec<bool>,
    live_adt: Vec<bool>,
    /// Which adjoint and adjoint-tangent slots can be non-zero (`zeros`).
    nz: Flags,
}

/// The emitter of one sweep function.
pub(super) struct Em<'a> {
    /// The code written so far.
    pub out: String,
    /// Indentation depth.
    ind: usize,
    /// Per open block: where its head line starts and where its body does.
    opened: Vec<(usize, usize)>,
    /// The sweep's buffers (locals of the generated function): name → length.
    pub bufs: &'a mut BTreeMap<String, usize>,
    /// The data sources.
    pub data: &'a [DataDef],
    /// Which data sources are tables (with labels, weights, compact).
    pub tables: &'a [Option<TableInfo>],
    /// The sweep's mode.
    pub mode: Mode,
    /// The plan of the top-level tape.
    pub plan: &'a Plan,
    /// Per top-level node: the interpreter's plan computes its tangent (for
    /// reductions: their bodies' outer tangents are needed).
    pub reduce_tan: Vec<bool>,
    stack: Vec<Level<'a>>,
}

impl<'a> Em<'a> {
    /// An emitter for a sweep of `tape` (prefix `pre`) in `mode`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tape: &'a Tape,
        pre: &str,
        mode: Mode,
        plan: &'a Plan,
        bufs: &'a mut BTreeMap<String, usize>,
        data: &'a [DataDef],
        tables: &'a [Option<TableInfo>],
    ) -> Self {
        let n = tape.nodes.len();
        let tan = |j: NodeId| mode.tangent && tape.nodes[j].dep_y && plan.tan[j];
        let nz = zeros::flags(tape, mode, &tan, (true, false));
        Em {
            out: String::new(),
            ind: 1,
            opened: Vec::new(),
            bufs,
            data,
            tables,
            mode,
            plan,
            reduce_tan: Vec::new(),
            stack: vec![Level {
                tape,
                pre: pre.to_string(),
                live_adj: vec![false; n],
                live_adt: vec![false; n],
                nz,
            }],
        }
    }

    /// Writes one line at the current indentation (short sums written out,
    /// see [`unroll_sums`]; structurally zero terms dropped, and the line
    /// when nothing is left of it, see [`zeros::simplify`]).
    pub fn line(&mut self, s: &str) {
        let Some(s) = zeros::simplify(&unroll_sums(s)) else {
            return;
        };
        for _ in 0..self.ind {
            self.out.push_str("    ");
        }
        self.out.push_str(&s);
        self.out.push('\n');
    }

    /// Opens a block with `head` (e.g. `for k in 0..3 {`).
    pub fn open(&mut self, head: &str) {
        let at = self.out.len();
        self.line(head);
        self.opened.push((at, self.out.len()));
        self.ind += 1;
    }

    /// Closes a block (and removes it when nothing was written into it,
    /// e.g. a loop whose statements were all structurally zero).
    pub fn close(&mut self) {
        self.ind -= 1;
        match self.opened.pop() {
            Some((at, body)) if body == self.out.len() => self.out.truncate(at),
            _ => self.line("}"),
        }
    }

    /// `stmt(k)` for every k in `0..n`: written out up to [`UNROLL`]
    /// elements (a statement with a `let` in its own block), a loop beyond.
    pub fn each(&mut self, n: usize, stmt: impl Fn(&str) -> String) {
        if n == 1 {
            self.line(&stmt("0"));
        } else if n <= UNROLL {
            for k in 0..n {
                let s = stmt(&k.to_string());
                if s.contains("let ") {
                    self.line(&format!("{{ {s} }}"));
                } else {
                    self.line(&s);
                }
            }
        } else if n > 1 {
            self.open(&format!("for k in 0..{n} {{"));
            self.line(&stmt("k"));
            self.close();
        }
    }

    /// The tape of level `lvl`.
    pub fn tape(&self, lvl: usize) -> &'a Tape {
        self.stack[lvl].tape
    }

    /// `true` at the top-level tape (the plan applies).
    pub fn top(lvl: usize) -> bool {
        lvl == 0
    }

    fn buf(&mut self, lvl: usize, kind: char, n: NodeId, len: usize) -> Ref {
        let name = format!("{}_{kind}{n}", self.stack[lvl].pre);
        self.bufs.insert(name.clone(), len);
        Ref::Buf(name)
    }

    /// The name of the static table of constant node `n` of level `lvl`.
    pub fn const_name(&self, lvl: usize, n: NodeId) -> String {
        format!("C_{}_{n}", self.stack[lvl].pre.to_uppercase())
    }

    /// Where the value of node `n` of level `lvl` lives.
    pub fn val(&mut self, lvl: usize, n: NodeId) -> Ref {
        let node = &self.tape(lvl).nodes[n];
        match node.op {
            Op::Const(_) => Ref::Buf(self.const_name(lvl, n)),
            Op::Var(VarKind::X, o) => Ref::Var("x", o),
            Op::Var(VarKind::Y, o) => Ref::Var("y", o),
            Op::Outer(p) => self.val(lvl - 1, p),
            Op::Field(level, d, f) if self.tables.get(d).is_some_and(Option::is_some) => {
                let row = format!("r{level}");
                let info = self.tables[d];
                let weights = info.is_some_and(|i| i.weights);
                if info.is_some_and(|i| i.compact) {
                    // The row decoded by the sample loop (`sample::open_loop`).
                    match f {
                        Field::X => return Ref::Row(format!("xr{level}")),
                        Field::Label => return Ref::Lit(format!("lr{level}")),
                        Field::Weight if weights => return Ref::Lit(format!("wr{level}")),
                        _ => {}
                    }
                }
                match f {
                    Field::X => Ref::Tab(format!("D{d}_X"), row, node.len()),
                    Field::Label => Ref::Col(format!("D{d}_L"), row),
                    Field::Weight if weights => Ref::Col(format!("D{d}_W"), row),
                    Field::Weight => Ref::Lit("1.0".into()),
                    _ => Ref::Lit(format!("({row} as T)")),
                }
            }
            _ => self.buf(lvl, 'v', n, node.len()),
        }
    }

    /// Where the tangent of node `n` of level `lvl` lives.
    pub fn tan(&mut self, lvl: usize, n: NodeId) -> Ref {
        let node = &self.tape(lvl).nodes[n];
        if !node.dep_y {
            return Ref::Zero;
        }
        match node.op {
            Op::Var(VarKind::Y, o) => Ref::Var("v", o),
            _ => self.buf(lvl, 't', n, node.len()),
        }
    }

    /// The adjoint buffer of node `n` ([`Ref::Zero`] when it is structurally
    /// zero).
    pub fn adj(&mut self, lvl: usize, n: NodeId) -> Ref {
        if !self.stack[lvl].nz.anz.get(n).copied().unwrap_or(true) {
            return Ref::Zero;
        }
        let len = self.tape(lvl).nodes[n].len();
        self.buf(lvl, 'a', n, len)
    }

    /// The adjoint-tangent buffer of node `n` ([`Ref::Zero`] when it is
    /// structurally zero, as in every first-order sweep).
    pub fn adt(&mut self, lvl: usize, n: NodeId) -> Ref {
        if !self.mode.second || !self.stack[lvl].nz.tnz.get(n).copied().unwrap_or(true) {
            return Ref::Zero;
        }
        let len = self.tape(lvl).nodes[n].len();
        self.buf(lvl, 'd', n, len)
    }

    /// `true` when node `n`'s adjoint or adjoint tangent can be non-zero.
    pub fn nonzero(&self, lvl: usize, n: NodeId) -> bool {
        let nz = &self.stack[lvl].nz;
        nz.anz.get(n).copied().unwrap_or(true)
            || (self.mode.second && nz.tnz.get(n).copied().unwrap_or(true))
    }

    /// The scratch buffer of node `n` (`len` elements).
    pub fn aux(&mut self, lvl: usize, n: NodeId, len: usize) -> Ref {
        self.buf(lvl, 'x', n, len)
    }

    /// `true` when node `n`'s adjoint is propagated (`Tape::active`).
    pub fn active(&self, lvl: usize, n: NodeId) -> bool {
        let node = &self.tape(lvl).nodes[n];
        (self.mode.wrt_x && node.dep_x) || (self.mode.wrt_y && node.dep_y)
    }

    /// The plan's `need_a` (everything inside bodies).
    pub fn need_a(&self, lvl: usize, n: NodeId) -> bool {
        !Self::top(lvl) || self.plan.need_a[n]
    }

    /// The plan's `need_t`.
    pub fn need_t(&self, lvl: usize, n: NodeId) -> bool {
        !Self::top(lvl) || self.plan.need_t[n]
    }

    /// The plan's `tnz`.
    pub fn gt_nz(&self, lvl: usize, n: NodeId) -> bool {
        !Self::top(lvl) || self.plan.tnz[n]
    }

    /// The tangent of node `n` when the sweep computes it (`Rev::tanof`).
    pub fn tanof(&mut self, lvl: usize, n: NodeId, mode: Mode) -> Option<Ref> {
        let node = &self.tape(lvl).nodes[n];
        let planned = !Self::top(lvl) || self.plan.tan[n];
        (mode.tangent && node.dep_y && planned).then(|| self.tan(lvl, n))
    }

    /// Zeroes a buffer.
    pub fn fill0(&mut self, r: &Ref, len: usize) {
        if let Ref::Buf(n) = r {
            self.line(&format!("{n} = [Z; {len}];"));
        }
    }

    /// The interpreter's `touch`: marks node `n`'s adjoint (and adjoint
    /// tangent) live, zeroing them first.
    pub fn touch(&mut self, lvl: usize, n: NodeId) {
        let len = self.tape(lvl).nodes[n].len();
        if !self.stack[lvl].live_adj[n] {
            self.stack[lvl].live_adj[n] = true;
            let r = self.adj(lvl, n);
            self.fill0(&r, len);
        }
        if self.mode.second && !self.stack[lvl].live_adt[n] {
            self.stack[lvl].live_adt[n] = true;
            let r = self.adt(lvl, n);
            self.fill0(&r, len);
        }
    }

    /// `true` when node `n`'s adjoint is live.
    pub fn live_adj(&self, lvl: usize, n: NodeId) -> bool {
        self.stack[lvl].live_adj[n]
    }

    /// `true` when node `n`'s adjoint tangent is live.
    pub fn live_adt(&self, lvl: usize, n: NodeId) -> bool {
        self.stack[lvl].live_adt[n]
    }

    /// The forward loop of level `lvl` in `mode`.
    pub fn forward(&mut self, lvl: usize, mode: Mode) {
        let tape = self.tape(lvl);
        for (i, node) in tape.nodes.iter().enumerate() {
            let top = Self::top(lvl);
            let do_val = !top || self.plan.val[i];
            let tangent = mode.tangent && node.dep_y && (!top || self.plan.tan[i]);
            if !(do_val || tangent) {
                continue;
            }
            let pre = self.stack[lvl].pre.clone();
            self.line(&format!("// {pre} %{i} = {}", describe(tape, i)));
            super::rules::eval(self, lvl, i, mode, do_val, tangent);
        }
    }

    /// The top-level reverse pass: seeds ā = 1 at the output.
    pub fn reverse(&mut self) {
        let tape = self.tape(0);
        let n = tape.nodes.len();
        self.stack[0].live_adj = vec![false; n];
        self.stack[0].live_adt = vec![false; n];
        let o = tape.output;
        let len = tape.nodes[o].len();
        let a = self.adj(0, o);
        self.fill0(&a, len);
        let d = self.adt(0, o);
        self.fill0(&d, len);
        if let Ref::Buf(_) = a {
            self.line(&format!("{} = 1.0;", a.at("0")));
        }
        self.stack[0].live_adj[o] = true;
        self.reverse_from(0);
    }

    /// The reverse loop of level `lvl` from the live adjoints down.
    pub fn reverse_from(&mut self, lvl: usize) {
        let tape = self.tape(lvl);
        for i in (0..tape.nodes.len()).rev() {
            let node = &tape.nodes[i];
            let planned = !Self::top(lvl) || self.plan.run[i];
            // A node whose adjoint and adjoint tangent are structurally zero
            // adds nothing to its arguments'.
            if !self.stack[lvl].live_adj[i]
                || !self.active(lvl, i)
                || !planned
                || !self.nonzero(lvl, i)
            {
                continue;
            }
            let pre = self.stack[lvl].pre.clone();
            self.line(&format!("// {pre} %{i} reverse: {}", describe(tape, i)));
            for &arg in &node.args {
                if self.active(lvl, arg) {
                    self.touch(lvl, arg);
                }
            }
            if !self.stack[lvl].live_adt[i] {
                let r = self.adt(lvl, i);
                self.fill0(&r, node.len());
                self.stack[lvl].live_adt[i] = self.mode.second;
            }
            let act: Vec<bool> = node.args.iter().map(|&a| self.active(lvl, a)).collect();
            super::rules::rev(self, lvl, i, &act);
        }
    }

    /// Enters the body of reduction node `i` of level `lvl`.
    pub fn push_body(&mut self, lvl: usize, i: NodeId) -> usize {
        let Op::Reduce { body, .. } = &self.tape(lvl).nodes[i].op else {
            return lvl;
        };
        let n = body.nodes.len();
        let pre = format!("{}_{i}", self.stack[lvl].pre);
        // Bodies whose reduction gets no adjoint have no flags: all zero.
        let nz = self.stack[lvl]
            .nz
            .bodies
            .get(&i)
            .cloned()
            .unwrap_or_else(|| Flags {
                anz: vec![false; n],
                tnz: vec![false; n],
                bodies: BTreeMap::new(),
            });
        self.stack.push(Level {
            tape: body,
            pre,
            live_adj: vec![false; n],
            live_adt: vec![false; n],
            nz,
        });
        lvl + 1
    }

    /// Leaves a body.
    pub fn pop_body(&mut self) {
        self.stack.pop();
    }

    /// Sets the liveness of a body for one sample (`seed_body`): `Outer`
    /// nodes accumulate, the output is seeded, the rest is dead.
    pub fn seed_live(&mut self, lvl: usize) {
        let tape = self.tape(lvl);
        let second = self.mode.second;
        for (j, n) in tape.nodes.iter().enumerate() {
            let outer = matches!(n.op, Op::Outer(_));
            self.stack[lvl].live_adj[j] = outer;
            self.stack[lvl].live_adt[j] = outer && second;
        }
        self.stack[lvl].live_adj[tape.output] = true;
        self.stack[lvl].live_adt[tape.output] = second;
    }

    /// The data source of a table row local, the batch length expression
    /// of source `d`.
    pub fn batch_len(d: usize) -> String {
        format!("s.len{d}")
    }

    /// `true` when data source `d` is a synthetic source.
    pub fn synthetic(&self, d: usize) -> Option<&SourceKind> {
        let k = &self.data.get(d)?.kind;
        (!matches!(k, SourceKind::Table { .. })).then_some(k)
    }
}

/// One node as the IR dump prints it, for the comments.
fn describe(tape: &Tape, i: NodeId) -> String {
    let n = &tape.nodes[i];
    let args: Vec<String> = n.args.iter().map(|a| format!("%{a}")).collect();
    let mut s = match &n.op {
        Op::Const(v) => format!("const[{}]", v.len()),
        Op::Var(VarKind::X, o) => format!("x[{o}..{}]", o + n.len()),
        Op::Var(VarKind::Y, o) => format!("y[{o}..{}]", o + n.len()),
        Op::Outer(p) => format!("outer %{p}"),
        Op::Field(l, d, f) => format!("field {f:?} of data{d} (level {l})"),
        Op::Reduce { mean, data, .. } => {
            format!("{} over data{data}", if *mean { "mean" } else { "sum" })
        }
        Op::Unary(f) => f.name().to_string(),
        Op::Pow(p) => format!("pow {p}"),
        other => format!("{other:?}").to_lowercase(),
    };
    if !args.is_empty() {
        let _ = write!(s, " {}", args.join(", "));
    }
    let _ = write!(s, " : {}x{}", n.rows, n.cols);
    s
}
