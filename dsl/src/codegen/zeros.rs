//! Structural zeros of a generated sweep (docs/decisions.md 121): which
//! adjoint and adjoint-tangent slots of every tape level can be non-zero
//! ([`flags`]), and a statement simplifier ([`simplify`]) that drops the
//! terms with a structurally zero factor (a tangent of a node that does not
//! depend on y, `Z`; a tangent the sweep does not compute, `0.0`; a slot the
//! flags say is zero) and the statements that would only add such terms.
//!
//! The interpreter computes these terms (`Z * y[k]`, `+ 0.0`, adjoint
//! tangents seeded with 0 and carried through every node). Leaving one out
//! changes a result only where the interpreter's term is ±0 added to ±0 (the
//! sign of a zero) or a zero times an infinite or NaN operand (NaN in the
//! interpreter). Tangents, adjoints and adjoint tangents enter nothing but
//! sums, products and quotients by values, and every output is accumulated
//! from +0.0, so for finite operands the outputs keep the interpreter's bits.
//! Values are never simplified (the dot rule's `+= 0.0`, which turns a −0
//! value into +0, stays).

use std::collections::BTreeMap;

use crate::tape::{Mode, NodeId, Op, Tape};

/// Which slots of one tape level can be non-zero; the bodies of its sample
/// reductions, by node.
#[derive(Debug, Clone, Default)]
pub(super) struct Flags {
    /// The adjoint of node i can be non-zero.
    pub anz: Vec<bool>,
    /// The adjoint tangent of node i can be non-zero.
    pub tnz: Vec<bool>,
    /// The flags of the body of reduction node i.
    pub bodies: BTreeMap<NodeId, Flags>,
}

fn active(tape: &Tape, n: NodeId, mode: Mode) -> bool {
    let node = &tape.nodes[n];
    (mode.wrt_x && node.dep_x) || (mode.wrt_y && node.dep_y)
}

/// The flags of `tape` in `mode`, its output's adjoint seeded with a
/// non-zero (`seed.0`) and its adjoint tangent (`seed.1`); `tan(n)` is true
/// when the sweep computes node n's tangent (the emitter's `tanof`). Every
/// flag over-approximates: a slot marked zero receives no non-zero term in
/// the emitter's reverse loop (the emitter checks it, [`simplify`]).
pub(super) fn flags(
    tape: &Tape,
    mode: Mode,
    tan: &dyn Fn(NodeId) -> bool,
    seed: (bool, bool),
) -> Flags {
    let n = tape.nodes.len();
    let mut f = Flags {
        anz: vec![false; n],
        tnz: vec![false; n],
        bodies: BTreeMap::new(),
    };
    if n == 0 || !(mode.wrt_x || mode.wrt_y) {
        return f;
    }
    let o = tape.output;
    if active(tape, o, mode) {
        f.anz[o] = seed.0;
        f.tnz[o] = seed.1 && mode.second;
    }
    for p in (0..n).rev() {
        let node = &tape.nodes[p];
        if !(f.anz[p] || f.tnz[p]) || !active(tape, p, mode) {
            continue;
        }
        if let Op::Reduce { body, .. } = &node.op {
            // Inside a body every tangent of a y-dependent node is computed.
            let bt = |j: NodeId| mode.tangent && body.nodes[j].dep_y;
            let bf = flags(body, mode, &bt, (f.anz[p], f.tnz[p]));
            for (j, bn) in body.nodes.iter().enumerate() {
                if let Op::Outer(q) = bn.op {
                    if active(tape, q, mode) {
                        f.anz[q] |= bf.anz[j];
                        f.tnz[q] |= bf.tnz[j];
                    }
                }
            }
            f.bodies.insert(p, bf);
            continue;
        }
        for (k, &a) in node.args.iter().enumerate() {
            if !active(tape, a, mode) {
                continue;
            }
            f.anz[a] |= f.anz[p];
            f.tnz[a] |= f.tnz[p] || (f.anz[p] && mode.second && second_term(tape, p, k, tan));
        }
    }
    f
}

/// Does node `p`'s adjoint tangent rule give its argument `k` a term
/// c̄ · (a tangent), i.e. is some tangent the term reads computed?
fn second_term(tape: &Tape, p: NodeId, k: usize, tan: &dyn Fn(NodeId) -> bool) -> bool {
    let node = &tape.nodes[p];
    let arg = |j: usize| node.args.get(j).is_some_and(|&a| tan(a));
    let other = usize::from(k == 0);
    match node.op {
        // c̄ times the other operand's tangent (both when an operand repeats).
        Op::Mul | Op::Dot | Op::MatMul { .. } => {
            arg(other) || (node.args.len() > 1 && node.args[0] == node.args[1] && arg(k))
        }
        Op::Div => arg(1) || (k == 1 && arg(0)),
        Op::Quad { .. } => k == 1 && arg(1),
        Op::Pow(_) | Op::Unary(_) | Op::Norm2sq | Op::Norm2 => arg(0),
        Op::SoftmaxXent | Op::Logsumexp => k == 0 && arg(0),
        Op::SqLoss | Op::LogisticLoss => arg(0) || arg(1),
        // Linear rules (sum, index, transpose, …) pass c̄̇ only; model
        // calls are refused by codegen; be conservative for anything else.
        Op::Add
        | Op::Sub
        | Op::Neg
        | Op::Sum
        | Op::Mean
        | Op::Transpose
        | Op::Index
        | Op::Correct
        | Op::Const(_)
        | Op::Var(..)
        | Op::Outer(_)
        | Op::Field(..) => false,
        _ => true,
    }
}

/// An expression of a tangent or adjoint statement.
#[derive(Debug, Clone)]
enum Ex {
    /// Structurally zero.
    Zero,
    /// Anything not parsed further (a buffer element, a call, a literal).
    Atom(String),
    /// A parenthesised expression, kept as written.
    Group(Box<Ex>),
    /// −e.
    Neg(Box<Ex>),
    /// l op r.
    Bin(u8, Box<Ex>, Box<Ex>),
}

fn is_zero_atom(s: &str) -> bool {
    matches!(s, "Z" | "0.0" | "-Z" | "-0.0")
}

impl Ex {
    fn prec(&self) -> u8 {
        match self {
            Ex::Bin(b'+' | b'-', ..) => 1,
            Ex::Bin(..) => 2,
            Ex::Neg(_) => 3,
            _ => 4,
        }
    }

    fn print(&self, min: u8, out: &mut String) {
        let paren = self.prec() < min;
        if paren {
            out.push('(');
        }
        match self {
            Ex::Zero => out.push('Z'),
            Ex::Atom(s) => out.push_str(s),
            Ex::Group(e) => {
                out.push('(');
                e.print(0, out);
                out.push(')');
            }
            Ex::Neg(e) => {
                out.push('-');
                e.print(3, out);
            }
            Ex::Bin(op, l, r) => {
                let p = self.prec();
                l.print(p, out);
                out.push(' ');
                out.push(char::from(*op));
                out.push(' ');
                r.print(p + 1, out);
            }
        }
        if paren {
            out.push(')');
        }
    }

    /// The expression without its structurally zero terms (the remaining
    /// operations in their order).
    fn simplified(self) -> Ex {
        match self {
            Ex::Atom(s) if is_zero_atom(&s) => Ex::Zero,
            Ex::Atom(s) => Ex::Atom(s),
            Ex::Zero => Ex::Zero,
            Ex::Group(e) => match e.simplified() {
                Ex::Zero => Ex::Zero,
                e @ (Ex::Atom(_) | Ex::Group(_)) => e,
                e => Ex::Group(Box::new(e)),
            },
            Ex::Neg(e) => match e.simplified() {
                Ex::Zero => Ex::Zero,
                e => Ex::Neg(Box::new(e)),
            },
            Ex::Bin(op, l, r) => {
                let (l, r) = (l.simplified(), r.simplified());
                match (op, &l, &r) {
                    (b'*' | b'/', Ex::Zero, _) | (b'*', _, Ex::Zero) => Ex::Zero,
                    (b'+' | b'-', _, Ex::Zero) => l,
                    (b'+', Ex::Zero, _) => r,
                    (b'-', Ex::Zero, _) => Ex::Neg(Box::new(r)),
                    _ => Ex::Bin(op, Box::new(l), Box::new(r)),
                }
            }
        }
    }
}

/// A recursive-descent parser of `+ - * /`, unary minus, parentheses and
/// atoms; `None` on anything else (the statement is then left as written).
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i) == Some(&b' ') {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn expr(&mut self) -> Option<Ex> {
        let mut l = self.term()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.i += 1;
            let r = self.term()?;
            l = Ex::Bin(op, Box::new(l), Box::new(r));
        }
        Some(l)
    }

    fn term(&mut self) -> Option<Ex> {
        let mut l = self.unary()?;
        while let Some(op @ (b'*' | b'/')) = self.peek() {
            self.i += 1;
            let r = self.unary()?;
            l = Ex::Bin(op, Box::new(l), Box::new(r));
        }
        Some(l)
    }

    fn unary(&mut self) -> Option<Ex> {
        if self.peek() == Some(b'-') {
            self.i += 1;
            return Some(Ex::Neg(Box::new(self.unary()?)));
        }
        self.primary()
    }

    /// The end of the balanced group opening at `at` (one past its closer).
    fn close(&self, at: usize) -> Option<usize> {
        let mut depth = 0usize;
        for (j, &c) in self.s.iter().enumerate().skip(at) {
            match c {
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(j + 1);
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// Postfixes of an atom: indexing, calls, `.field`, `::<T>`.
    fn postfix(&mut self) -> Option<()> {
        loop {
            match self.s.get(self.i) {
                Some(b'[' | b'(') => self.i = self.close(self.i)?,
                Some(b'.') => {
                    self.i += 1;
                    while self
                        .s
                        .get(self.i)
                        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    {
                        self.i += 1;
                    }
                }
                Some(b':') if self.s[self.i..].starts_with(b"::<T>") => self.i += 5,
                Some(b':') if self.s[self.i..].starts_with(b"::") => self.i += 2,
                _ => return Some(()),
            }
        }
    }

    fn primary(&mut self) -> Option<Ex> {
        let start = self.i;
        match self.peek()? {
            b'(' => {
                let at = self.i;
                let end = self.close(at)?;
                let inner = std::str::from_utf8(&self.s[at + 1..end - 1]).ok()?;
                self.i = end;
                let post = self.i;
                self.postfix()?;
                if self.i != post || inner.starts_with("0..") {
                    // `(0..N).map(|k| e).sum()` (beyond the written-out
                    // length): zero when its summand is.
                    let text = std::str::from_utf8(&self.s[at..self.i]).ok()?;
                    return Some(range_sum(text));
                }
                let e = parse(inner)?;
                Some(Ex::Group(Box::new(e)))
            }
            c if c.is_ascii_digit() => {
                let at = self.i;
                while let Some(&c) = self.s.get(self.i) {
                    let exp_sign = (c == b'-' || c == b'+')
                        && matches!(self.s.get(self.i - 1), Some(b'e' | b'E'));
                    if c.is_ascii_digit() || c == b'.' || c == b'e' || c == b'E' || exp_sign {
                        self.i += 1;
                    } else {
                        break;
                    }
                }
                let text = std::str::from_utf8(&self.s[at..self.i]).ok()?;
                Some(Ex::Atom(text.to_string()))
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let at = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    self.i += 1;
                }
                self.postfix()?;
                let text = std::str::from_utf8(&self.s[at..self.i]).ok()?;
                Some(Ex::Atom(text.to_string()))
            }
            _ => {
                self.i = start;
                None
            }
        }
    }
}

/// `(0..N).map(|k| E).sum::<T>()`: zero when E is, else E simplified.
fn range_sum(text: &str) -> Ex {
    let Some(at) = text.find(").map(|k| ") else {
        return Ex::Atom(text.to_string());
    };
    let body_at = at + ").map(|k| ".len();
    for tail in [").sum::<T>()", ").sum()"] {
        if let Some(body) = text.strip_suffix(tail).and_then(|t| t.get(body_at..)) {
            return match parse(body).map(Ex::simplified) {
                Some(Ex::Zero) => Ex::Zero,
                Some(e) => {
                    let mut s = String::new();
                    e.print(0, &mut s);
                    Ex::Atom(format!("{}{s}{tail}", &text[..body_at]))
                }
                None => Ex::Atom(text.to_string()),
            };
        }
    }
    Ex::Atom(text.to_string())
}

/// A whole expression, or `None` when it is not one the parser knows.
fn parse(s: &str) -> Option<Ex> {
    let mut p = Parser {
        s: s.as_bytes(),
        i: 0,
    };
    let e = p.expr()?;
    p.ws();
    (p.i == p.s.len()).then_some(e)
}

/// Is `lhs` a tangent, adjoint or adjoint-tangent element (`f_t3[k]`,
/// `g_1_a2[0]`, `g_d5[..]`), an output element, or `Z` (a zero slot)?
fn derivative_target(lhs: &str) -> bool {
    let name = lhs.split('[').next().unwrap_or("");
    if name == "Z" {
        return !lhs.contains('[');
    }
    if !lhs.contains('[') {
        return false;
    }
    if matches!(name, "gx" | "gy" | "hv" | "jv") {
        return true;
    }
    matches!(buffer_kind(name), Some('t' | 'a' | 'd'))
}

/// The kind letter of a sweep buffer's name (`f_v3` → `v`, `g_1_a2` → `a`,
/// `g_x4` → `x`): `f` or `g`, digit-only level parts, then the kind letter
/// and a number; `None` for any other word.
pub(super) fn buffer_kind(name: &str) -> Option<char> {
    let mut parts = name.split('_');
    if !matches!(parts.next(), Some("f" | "g")) {
        return None;
    }
    let parts: Vec<&str> = parts.collect();
    let (last, levels) = parts.split_last()?;
    let mut c = last.chars();
    let kind = c.next()?;
    let num = c.as_str();
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    (levels.iter().all(|l| digits(l)) && digits(num)).then_some(kind)
}

/// One statement (no trailing `;`) simplified; `None` when it adds nothing.
fn statement(st: &str) -> Option<String> {
    for op in [" += ", " -= ", " = "] {
        let Some(at) = st.find(op) else { continue };
        let lhs = &st[..at];
        if !derivative_target(lhs) || lhs.split('[').next().unwrap_or("").contains(' ') {
            return Some(st.to_string());
        }
        let Some(e) = parse(&st[at + op.len()..]) else {
            return Some(st.to_string());
        };
        return match (e.simplified(), op) {
            (Ex::Zero, " = ") if lhs != "Z" => Some(format!("{lhs} = Z")),
            (Ex::Zero, _) => None,
            (e, _) => {
                // A slot the flags call zero receives a non-zero term: a
                // generator bug (the line is kept: it does not compile).
                debug_assert!(lhs != "Z", "structural-zero slot written: {st}");
                let mut s = String::new();
                e.print(0, &mut s);
                Some(format!("{lhs}{op}{s}"))
            }
        };
    }
    Some(st.to_string())
}

/// Splits at top-level `;`.
fn split_statements(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut from) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ';' if depth == 0 => {
                out.push(&s[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[from..]);
    out
}

/// One generated line with the structurally zero terms of its tangent,
/// adjoint and adjoint-tangent statements dropped (and those statements,
/// when nothing is left to add); `None` when nothing is left of the line.
/// Lines of other kinds (values, loops, calls) are returned unchanged.
pub(super) fn simplify(line: &str) -> Option<String> {
    let (inner, braced) = match line.strip_prefix("{ ").and_then(|l| l.strip_suffix(" }")) {
        Some(i) => (i, true),
        None => (line, false),
    };
    if !inner.ends_with(';') {
        return Some(line.to_string());
    }
    let parts = split_statements(&inner[..inner.len() - 1]);
    let mut kept: Vec<String> = Vec::new();
    let mut any_assign = false;
    for p in &parts {
        let st = p.trim();
        if st.starts_with("let ") {
            kept.push(st.to_string());
            continue;
        }
        any_assign = true;
        if let Some(s) = statement(st) {
            kept.push(s);
        }
    }
    if any_assign && kept.iter().all(|s| s.starts_with("let ")) {
        return None;
    }
    let body = kept.join("; ") + ";";
    Some(if braced {
        format!("{{ {body} }}")
    } else {
        body
    })
}

#[cfg(test)]
mod tests {
    use super::simplify;

    #[test]
    fn zero_terms_and_statements_are_dropped() {
        let s = |l: &str| simplify(l);
        assert_eq!(
            s("g_t3[0] = Z * y[0] + C_G_1[0] * v[0];").as_deref(),
            Some("g_t3[0] = C_G_1[0] * v[0];")
        );
        assert_eq!(
            s("g_d2[1] += g_d4[1] * x[1] + 0.0;").as_deref(),
            Some("g_d2[1] += g_d4[1] * x[1];")
        );
        assert_eq!(s("g_d2[1] += Z * x[1] + g_a4[0] * 0.0;"), None);
        assert_eq!(s("Z += Z * x[1];"), None);
        assert_eq!(
            s("g_t2[0] = Z - v[3];").as_deref(),
            Some("g_t2[0] = -v[3];")
        );
        assert_eq!(
            s("g_t2[0] = Z * y[0] - Z;").as_deref(),
            Some("g_t2[0] = Z;")
        );
        // Values are left alone, even their `+= 0.0`.
        assert_eq!(s("g_v2[0] += 0.0;").as_deref(), Some("g_v2[0] += 0.0;"));
        // Parentheses and precedence are kept.
        assert_eq!(
            s("g_d1[0] += -g_d4[0] * x[0] / (y[0] * y[0]) - g_a4[0] * (Z / (y[0] * y[0]) - 2.0 * x[0] * v[0] / (y[0] * y[0] * y[0]));").as_deref(),
            Some("g_d1[0] += -g_d4[0] * x[0] / (y[0] * y[0]) - g_a4[0] * (-(2.0 * x[0] * v[0] / (y[0] * y[0] * y[0])));")
        );
        assert_eq!(
            s("{ let (_, f1, f2) = d_exp(x[0]); g_d3[0] += Z * f1 + g_a3[0] * f2 * Z; }"),
            None
        );
        assert_eq!(
            s("{ let (_, f1, f2) = d_exp(x[0]); g_d3[0] += g_d5[0] * f1 + g_a3[0] * f2 * Z; }")
                .as_deref(),
            Some("{ let (_, f1, f2) = d_exp(x[0]); g_d3[0] += g_d5[0] * f1; }")
        );
        assert_eq!(s("g_d3[0] += (0..20).map(|k| Z * x[k]).sum::<T>();"), None);
        assert_eq!(
            s("g_t3[0] = (0..20).map(|k| v[k] * x[k]).sum::<T>() + (0..20).map(|k| x[k] * Z).sum::<T>();").as_deref(),
            Some("g_t3[0] = (0..20).map(|k| v[k] * x[k]).sum::<T>();")
        );
        assert_eq!(s("for k in 0..20 {").as_deref(), Some("for k in 0..20 {"));
        assert_eq!(s("g_d3 = [Z; 4];").as_deref(), Some("g_d3 = [Z; 4];"));
        assert_eq!(s("gy[0 + 3] += Z;"), None);
        assert_eq!(
            s("g_t1[0] = 1.5e-3 * v[0];").as_deref(),
            Some("g_t1[0] = 1.5e-3 * v[0];")
        );
    }
}
