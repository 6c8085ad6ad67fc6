//! The rules of every operation as generated code, one function per rule
//! kind, each arm the literal counterpart of the interpreter's rule in
//! `tape/<family>.rs` (same operations in the same order, so f64 results
//! are the same bits): `value` and `tangent` (forward), `adjoint` and
//! `adjoint_tangent` (reverse).

use super::emit::{Em, Ref};
use crate::tape::{Mode, NodeId, Op};

/// A literal of the generated scalar type.
fn lit(v: f64) -> String {
    if v.is_nan() {
        "T::NAN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "T::INFINITY"
        } else {
            "T::NEG_INFINITY"
        }
        .into()
    } else {
        let s = format!("{v:?}");
        if v < 0.0 {
            format!("({s})")
        } else {
            s
        }
    }
}

/// The interpreter's `acc_into(dst, src, ±1)`: elementwise, or summed into
/// a scalar, or a scalar broadcast.
fn acc(
    em: &mut Em<'_>,
    dst: &Ref,
    dlen: usize,
    slen: usize,
    neg: bool,
    src: &dyn Fn(&str) -> String,
) {
    let op = if neg { "-=" } else { "+=" };
    if dlen == slen {
        em.each(dlen, |k| format!("{} {op} {};", dst.at(k), src(k)));
    } else if dlen == 1 {
        em.line(&format!(
            "{} {op} (0..{slen}).map(|k| {}).sum::<T>();",
            dst.at("0"),
            src("k")
        ));
    } else if slen == 1 {
        let s0 = src("0");
        em.each(dlen, |k| format!("{} {op} {s0};", dst.at(k)));
    }
}

/// Runs a node's forward rules (`sweep.rs::eval`).
pub(super) fn eval(
    em: &mut Em<'_>,
    lvl: usize,
    i: NodeId,
    mode: Mode,
    do_val: bool,
    tangent: bool,
) {
    let tape = em.tape(lvl);
    let node = &tape.nodes[i];
    match &node.op {
        Op::Const(_) | Op::Outer(_) | Op::Var(..) => {}
        Op::Field(..) => super::data::field(em, lvl, i),
        Op::Reduce { .. } => super::sample::forward(em, lvl, i, mode, tangent),
        Op::MatMul { .. } => super::linalg::matmul_fwd(em, lvl, i, do_val, tangent),
        _ => {
            value(em, lvl, i);
            if tangent {
                tangent_rule(em, lvl, i);
            }
        }
    }
}

/// Runs a node's reverse rules (`sweep.rs::rev`).
pub(super) fn rev(em: &mut Em<'_>, lvl: usize, i: NodeId, act: &[bool]) {
    let tape = em.tape(lvl);
    match &tape.nodes[i].op {
        Op::Const(_) | Op::Var(..) | Op::Outer(_) | Op::Field(..) | Op::Correct => {}
        Op::Reduce { .. } => super::sample::reverse(em, lvl, i),
        Op::MatMul { .. } => super::linalg::matmul_rev(em, lvl, i, act),
        _ => {
            adjoint(em, lvl, i, act);
            if em.mode.second {
                adjoint_tangent(em, lvl, i, act);
            }
        }
    }
}

/// The operands of a node: values, lengths.
struct Args {
    v: Vec<Ref>,
    t: Vec<Ref>,
    len: Vec<usize>,
}

fn args(em: &mut Em<'_>, lvl: usize, i: NodeId) -> Args {
    let tape = em.tape(lvl);
    let node = &tape.nodes[i];
    let mut a = Args {
        v: Vec::new(),
        t: Vec::new(),
        len: Vec::new(),
    };
    for &n in &node.args {
        a.v.push(em.val(lvl, n));
        a.t.push(em.tan(lvl, n));
        a.len.push(tape.nodes[n].len());
    }
    a
}

/// The value rules.
fn value(em: &mut Em<'_>, lvl: usize, i: NodeId) {
    let tape = em.tape(lvl);
    let node = &tape.nodes[i];
    let n = node.len();
    let a = args(em, lvl, i);
    let o = em.val(lvl, i);
    let x = |k: &str| a.v[0].bc(a.len[0], k);
    let y = |k: &str| a.v[1].bc(a.len[1], k);
    match &node.op {
        Op::Add => em.each(n, |k| format!("{} = {} + {};", o.at(k), x(k), y(k))),
        Op::Sub => em.each(n, |k| format!("{} = {} - {};", o.at(k), x(k), y(k))),
        Op::Mul => em.each(n, |k| format!("{} = {} * {};", o.at(k), x(k), y(k))),
        Op::Div => em.each(n, |k| format!("{} = {} / {};", o.at(k), x(k), y(k))),
        Op::Neg => em.each(n, |k| format!("{} = -{};", o.at(k), a.v[0].at(k))),
        Op::Pow(p) => em.each(n, |k| {
            format!("{} = {}.powf({});", o.at(k), a.v[0].at(k), lit(*p))
        }),
        Op::Unary(f) => em.each(n, |k| {
            format!("{} = d_{}({}).0;", o.at(k), f.name(), a.v[0].at(k))
        }),
        Op::Sum | Op::Mean => {
            let k = if node.op == Op::Mean {
                format!("(1.0 / {}.0)", a.len[0].max(1))
            } else {
                "1.0".into()
            };
            em.line(&format!(
                "{} = {k} * (0..{}).map(|k| {}).sum::<T>();",
                o.at("0"),
                a.len[0],
                a.v[0].at("k")
            ));
        }
        Op::Norm2sq => em.line(&format!(
            "{} = (0..{}).map(|k| {} * {}).sum();",
            o.at("0"),
            a.len[0],
            a.v[0].at("k"),
            a.v[0].at("k")
        )),
        Op::Norm2 => em.line(&format!(
            "{} = (0..{}).map(|k| {} * {}).sum::<T>().sqrt();",
            o.at("0"),
            a.len[0],
            a.v[0].at("k"),
            a.v[0].at("k")
        )),
        Op::Dot => em.line(&format!(
            "{} = (0..{}).map(|k| {} * {}).sum();",
            o.at("0"),
            a.len[0],
            a.v[0].at("k"),
            a.v[1].at("k")
        )),
        Op::SqLoss => em.line(&format!(
            "{} = 0.5 * (0..{}).map(|k| ({} - {}) * ({} - {})).sum::<T>();",
            o.at("0"),
            a.len[0],
            a.v[0].at("k"),
            a.v[1].at("k"),
            a.v[0].at("k"),
            a.v[1].at("k")
        )),
        _ => value_more(em, lvl, i),
    }
}

/// The rest of [`value`]'s arms (products with scratch, losses, permutations).
fn value_more(em: &mut Em<'_>, lvl: usize, i: NodeId) {
    let tape = em.tape(lvl);
    let node = &tape.nodes[i];
    let n = node.len();
    let a = args(em, lvl, i);
    let o = em.val(lvl, i);
    match &node.op {
        Op::Quad { sym } => {
            let m = a.len[1];
            let aux = em.aux(lvl, i, m);
            em.fill0(&aux, m);
            let (p, yv) = (a.v[0].slice(m * m), a.v[1].slice(m));
            let a_ = aux.slice(m).replacen('&', "&mut ", 1);
            em.line(&format!(
                "gemm(1.0, {p}, ({m}, {m}), false, {yv}, ({m}, 1), false, {a_});"
            ));
            if !sym {
                em.line(&format!(
                    "gemm(1.0, {p}, ({m}, {m}), true, {yv}, ({m}, 1), false, {a_});"
                ));
                em.each(m, |k| format!("{} *= 0.5;", aux.at(k)));
            }
            em.line(&format!(
                "{} = (0..{m}).map(|k| {} * {}).sum();",
                o.at("0"),
                aux.at("k"),
                a.v[1].at("k")
            ));
        }
        Op::LogisticLoss => em.line(&format!(
            "{} = softplus(-{} * {});",
            o.at("0"),
            a.v[1].at("0"),
            a.v[0].at("0")
        )),
        Op::SoftmaxXent | Op::Logsumexp => {
            let m = a.len[0];
            let aux = em.aux(lvl, i, m);
            let c = class(&node.op, &a, m);
            em.line(&format!(
                "{} = softmax_value({}, {}, {c});",
                o.at("0"),
                a.v[0].slice(m),
                aux.slice(m).replacen('&', "&mut ", 1)
            ));
        }
        Op::Correct => em.line(&format!(
            "{} = correct({}, {});",
            o.at("0"),
            a.v[0].slice(a.len[0]),
            a.v[1].at("0")
        )),
        Op::Transpose => {
            let src = &tape.nodes[node.args[0]];
            let (r, c) = (src.rows, src.cols);
            em.open(&format!("for r in 0..{r} {{"));
            em.open(&format!("for c in 0..{c} {{"));
            em.line(&format!(
                "{} = {};",
                o.at(&format!("c * {r} + r")),
                a.v[0].at(&format!("r * {c} + c"))
            ));
            em.close();
            em.close();
        }
        Op::Index => {
            em.open("{");
            super::linalg::index_offset(em, lvl, i, &a.v);
            em.each(n, |k| {
                format!("{} = {};", o.at(k), a.v[0].at(&format!("off + {k}")))
            });
            em.close();
        }
        _ => {}
    }
}

/// The class argument of `softmax_xent` (`None` for `logsumexp`).
fn class(op: &Op, a: &Args, m: usize) -> String {
    if *op == Op::SoftmaxXent {
        format!("Some(to_index({}, {m}))", a.v[1].at("0"))
    } else {
        "None".into()
    }
}

/// The tangent rules.
fn tangent_rule(em: &mut Em<'_>, lvl: usize, i: NodeId) {
    let tape = em.tape(lvl);
    let node = &tape.nodes[i];
    let n = node.len();
    let a = args(em, lvl, i);
    let o = em.val(lvl, i);
    let to = em.tan(lvl, i);
    let (l0, l1) = (a.len[0], a.len.get(1).copied().unwrap_or(0));
    let x = |k: &str| a.v[0].bc(l0, k);
    let y = |k: &str| a.v[1].bc(l1, k);
    let tx = |k: &str| a.t[0].bc(l0, k);
    let ty = |k: &str| a.t[1].bc(l1, k);
    match &node.op {
        Op::Add => em.each(n, |k| format!("{} = {} + {};", to.at(k), tx(k), ty(k))),
        Op::Sub => em.each(n, |k| format!("{} = {} - {};", to.at(k), tx(k), ty(k))),
        Op::Mul => em.each(n, |k| {
            format!(
                "{} = {} * {} + {} * {};",
                to.at(k),
                tx(k),
                y(k),
                x(k),
                ty(k)
            )
        }),
        Op::Div => em.each(n, |k| {
            let yk = y(k);
            format!(
                "{} = {} / {yk} - {} * {} / ({yk} * {yk});",
                to.at(k),
                tx(k),
                x(k),
                ty(k)
            )
        }),
        Op::Neg => em.each(n, |k| format!("{} = -{};", to.at(k), a.t[0].at(k))),
        Op::Pow(p) => em.each(n, |k| {
            format!(
                "{} = {} * {}.powf({} - 1.0) * {};",
                to.at(k),
                lit(*p),
                a.v[0].at(k),
                lit(*p),
                a.t[0].at(k)
            )
        }),
        Op::Unary(f) => em.each(n, |k| {
            format!(
                "{} = d_{}({}).1 * {};",
                to.at(k),
                f.name(),
                a.v[0].at(k),
                a.t[0].at(k)
            )
        }),
        Op::Sum | Op::Mean => {
            let k = if node.op == Op::Mean {
                format!("(1.0 / {}.0)", l0.max(1))
            } else {
                "1.0".into()
            };
            em.line(&format!(
                "{} = {k} * (0..{l0}).map(|k| {}).sum::<T>();",
                to.at("0"),
                a.t[0].at("k")
            ));
        }
        Op::Norm2sq => em.line(&format!(
            "{} = 2.0 * (0..{l0}).map(|k| {} * {}).sum::<T>();",
            to.at("0"),
            a.v[0].at("k"),
            a.t[0].at("k")
        )),
        Op::Norm2 => {
            em.line(&format!(
            "{} = if {r} > 0.0 {{ (0..{l0}).map(|k| {} * {}).sum::<T>() / {r} }} else {{ 0.0 }};",
            to.at("0"), a.v[0].at("k"), a.t[0].at("k"), r = o.at("0")));
        }
        Op::Dot => {
            em.line(&format!("{} += 0.0;", o.at("0")));
            em.line(&format!(
                "{} = (0..{l0}).map(|k| {} * {}).sum::<T>() + (0..{l0}).map(|k| {} * {}).sum::<T>();",
                to.at("0"), a.t[0].at("k"), a.v[1].at("k"), a.v[0].at("k"), a.t[1].at("k")));
        }
        Op::SqLoss => em.line(&format!(
            "{} = (0..{l0}).map(|k| ({} - {}) * ({} - {})).sum();",
            to.at("0"),
            a.v[0].at("k"),
            a.v[1].at("k"),
            a.t[0].at("k"),
            a.t[1].at("k")
        )),
        _ => tangent_rule_more(em, lvl, i),
    }
}

/// The rest of [`tangent_rule`]'s arms (products with scratch, losses, permutations).
fn tangent_rule_more(em: &mut Em<'_>, lvl: usize, i: NodeId) {
    let tape = em.tape(lvl);
    let node = &tape.nodes[i];
    let n = node.len();
    let a = args(em, lvl, i);
    let to = em.tan(lvl, i);
    let (l0, l1) = (a.len[0], a.len.get(1).copied().unwrap_or(0));
    match &node.op {
        Op::Quad { .. } => {
            let aux = em.aux(lvl, i, l1);
            em.line(&format!(
                "{} = 2.0 * (0..{l1}).map(|k| {} * {}).sum::<T>();",
                to.at("0"),
                aux.at("k"),
                a.t[1].at("k")
            ));
        }
        Op::LogisticLoss => {
            let (z, yy) = (a.v[0].at("0"), a.v[1].at("0"));
            em.open("{");
            em.line(&format!("let s = sigmoid(-{yy} * {z});"));
            em.line(&format!(
                "{} = -{yy} * s * {} - {z} * s * {};",
                to.at("0"),
                a.t[0].at("0"),
                a.t[1].at("0")
            ));
            em.close();
        }
        Op::SoftmaxXent | Op::Logsumexp => {
            let aux = em.aux(lvl, i, l0);
            let c = class(&node.op, &a, l0);
            em.line(&format!(
                "{} = softmax_tangent({}, {}, {c});",
                to.at("0"),
                aux.slice(l0),
                a.t[0].slice(l0)
            ));
        }
        Op::Correct => em.line(&format!("{} = 0.0;", to.at("0"))),
        Op::Transpose => {
            let src = &tape.nodes[node.args[0]];
            let (r, c) = (src.rows, src.cols);
            em.open(&format!("for r in 0..{r} {{"));
            em.open(&format!("for c in 0..{c} {{"));
            em.line(&format!(
                "{} = {};",
                to.at(&format!("c * {r} + r")),
                a.t[0].at(&format!("r * {c} + c"))
            ));
            em.close();
            em.close();
        }
        Op::Index => {
            em.open("{");
            super::linalg::index_offset(em, lvl, i, &a.v);
            em.each(n, |k| {
                format!("{} = {};", to.at(k), a.t[0].at(&format!("off + {k}")))
            });
            em.close();
        }
        _ => {}
    }
}

/// The adjoint rules (ā of the arguments from c̄ = `g`).
fn adjoint(em: &mut Em<'_>, lvl: usize, i: NodeId, act: &[bool]) {
    let tape = em.tape(lvl);
    let node = &tape.nodes[i];
    let n = node.len();
    let a = args(em, lvl, i);
    let g = em.adj(lvl, i);
    let d: Vec<Ref> = node.args.iter().map(|&p| em.adj(lvl, p)).collect();
    let (l0, l1) = (a.len[0], a.len.get(1).copied().unwrap_or(0));
    let x = |k: &str| a.v[0].bc(l0, k);
    let y = |k: &str| a.v[1].bc(l1, k);
    let g0 = g.at("0");
    match &node.op {
        Op::Add | Op::Sub => {
            if act[0] {
                acc(em, &d[0], l0, n, false, &|k| g.at(k));
            }
            if act[1] {
                acc(em, &d[1], l1, n, node.op == Op::Sub, &|k| g.at(k));
            }
        }
        Op::Mul => {
            if act[0] {
                acc(em, &d[0], l0, n, false, &|k| {
                    format!("{} * {}", g.at(k), y(k))
                });
            }
            if act[1] {
                acc(em, &d[1], l1, n, false, &|k| {
                    format!("{} * {}", g.at(k), x(k))
                });
            }
        }
        Op::Div => {
            if act[0] {
                acc(em, &d[0], l0, n, false, &|k| {
                    format!("{} / {}", g.at(k), y(k))
                });
            }
            if act[1] {
                acc(em, &d[1], l1, n, false, &|k| {
                    let yb = y(k);
                    format!("-{} * {} / ({yb} * {yb})", g.at(k), x(k))
                });
            }
        }
        Op::Neg if act[0] => acc(em, &d[0], l0, n, true, &|k| g.at(k)),
        Op::Pow(p) if act[0] => acc(em, &d[0], l0, n, false, &|k| {
            format!(
                "{} * {} * {}.powf({} - 1.0)",
                g.at(k),
                lit(*p),
                a.v[0].at(k),
                lit(*p)
            )
        }),
        Op::Unary(f) if act[0] => acc(em, &d[0], l0, n, false, &|k| {
            format!("{} * d_{}({}).1", g.at(k), f.name(), a.v[0].at(k))
        }),
        Op::Sum | Op::Mean if act[0] => {
            let k = if node.op == Op::Mean {
                format!("(1.0 / {}.0)", l0.max(1))
            } else {
                "1.0".into()
            };
            em.each(l0, |j| format!("{} += {k} * {g0};", d[0].at(j)));
        }
        Op::Norm2sq if act[0] => em.each(l0, |k| {
            format!("{} += 2.0 * {g0} * {};", d[0].at(k), a.v[0].at(k))
        }),
        Op::Norm2 if act[0] => {
            let c = em.val(lvl, i).at("0");
            em.open(&format!("if {c} > 0.0 {{"));
            em.each(l0, |k| {
                format!("{} += {g0} * {} / {c};", d[0].at(k), a.v[0].at(k))
            });
            em.close();
        }
        Op::Dot => {
            if act[0] {
                em.each(l0, |k| {
                    format!("{} += {g0} * {};", d[0].at(k), a.v[1].at(k))
                });
            }
            if act[1] {
                em.each(l1, |k| {
                    format!("{} += {g0} * {};", d[1].at(k), a.v[0].at(k))
                });
            }
        }
        _ => adjoint_more(em, lvl, i, act),
    }
}

/// The rest of [`adjoint`]'s arms (products with scratch, losses, permutations).
fn adjoint_more(em: &mut Em<'_>, lvl: usize, i: NodeId, act: &[bool]) {
    let tape = em.tape(lvl);
    let node = &tape.nodes[i];
    let n = node.len();
    let a = args(em, lvl, i);
    let g = em.adj(lvl, i);
    let d: Vec<Ref> = node.args.iter().map(|&p| em.adj(lvl, p)).collect();
    let (l0, l1) = (a.len[0], a.len.get(1).copied().unwrap_or(0));
    let g0 = g.at("0");
    match &node.op {
        Op::Quad { .. } if act[1] => {
            let aux = em.aux(lvl, i, l1);
            em.each(l1, |k| {
                format!("{} += 2.0 * {g0} * {};", d[1].at(k), aux.at(k))
            });
        }
        Op::SqLoss => {
            for (k, neg) in [(0usize, false), (1, true)] {
                if act[k] {
                    let s = if neg { "-" } else { "" };
                    em.each(a.len[k], |j| {
                        format!(
                            "{} += {s}{g0} * ({} - {});",
                            d[k].at(j),
                            a.v[0].at(j),
                            a.v[1].at(j)
                        )
                    });
                }
            }
        }
        Op::LogisticLoss => {
            em.open("{");
            em.line(&format!(
                "let ((gz, gy), _) = logistic_derivs({}, {});",
                a.v[0].at("0"),
                a.v[1].at("0")
            ));
            if act[0] {
                em.line(&format!("{} += {g0} * gz;", d[0].at("0")));
            }
            if act[1] {
                em.line(&format!("{} += {g0} * gy;", d[1].at("0")));
            }
            em.close();
        }
        Op::SoftmaxXent | Op::Logsumexp
            if act[0] && !matches!(d[0], Ref::Zero) && !matches!(g, Ref::Zero) =>
        {
            let aux = em.aux(lvl, i, l0);
            let c = class(&node.op, &a, l0);
            em.line(&format!(
                "softmax_adjoint({}, {c}, {g0}, {});",
                aux.slice(l0),
                d[0].slice(l0).replacen('&', "&mut ", 1)
            ));
        }
        Op::Transpose if act[0] => {
            let src = &tape.nodes[node.args[0]];
            let (r, c) = (src.rows, src.cols);
            em.open(&format!("for i in 0..{r} {{"));
            em.open(&format!("for c in 0..{c} {{"));
            em.line(&format!(
                "{} += {};",
                d[0].at(&format!("i * {c} + c")),
                g.at(&format!("c * {r} + i"))
            ));
            em.close();
            em.close();
        }
        Op::Index if act[0] => {
            em.open("{");
            super::linalg::index_offset(em, lvl, i, &a.v);
            em.each(n, |k| {
                format!("{} += {};", d[0].at(&format!("off + {k}")), g.at(k))
            });
            em.close();
        }
        _ => {}
    }
}

/// The adjoint-tangent rules (ǡ of the arguments from c̄ = `g`, ċ̄ = `gt`).
fn adjoint_tangent(em: &mut Em<'_>, lvl: usize, i: NodeId, act: &[bool]) {
    let tape = em.tape(lvl);
    let node = &tape.nodes[i];
    let n = node.len();
    let mode = em.mode;
    let a = args(em, lvl, i);
    let g = em.adj(lvl, i);
    let gt = em.adt(lvl, i);
    let d: Vec<Ref> = node.args.iter().map(|&p| em.adt(lvl, p)).collect();
    let tof: Vec<Option<Ref>> = node.args.iter().map(|&p| em.tanof(lvl, p, mode)).collect();
    let (l0, l1) = (a.len[0], a.len.get(1).copied().unwrap_or(0));
    let x = |k: &str| a.v[0].bc(l0, k);
    let y = |k: &str| a.v[1].bc(l1, k);
    let t = |j: usize, k: &str| {
        tof[j]
            .as_ref()
            .map_or("0.0".to_string(), |r| r.bc(a.len[j], k))
    };
    let (g0, gt0) = (g.at("0"), gt.at("0"));
    match &node.op {
        Op::Add | Op::Sub => {
            if act[0] {
                acc(em, &d[0], l0, n, false, &|k| gt.at(k));
            }
            if act[1] {
                acc(em, &d[1], l1, n, node.op == Op::Sub, &|k| gt.at(k));
            }
        }
        Op::Mul => {
            if act[0] {
                acc(em, &d[0], l0, n, false, &|k| {
                    format!("{} * {} + {} * {}", gt.at(k), y(k), g.at(k), t(1, k))
                });
            }
            if act[1] {
                acc(em, &d[1], l1, n, false, &|k| {
                    format!("{} * {} + {} * {}", gt.at(k), x(k), g.at(k), t(0, k))
                });
            }
        }
        Op::Div => {
            if act[0] {
                acc(em, &d[0], l0, n, false, &|k| {
                    let yb = y(k);
                    format!(
                        "{} / {yb} - {} * {} / ({yb} * {yb})",
                        gt.at(k),
                        g.at(k),
                        t(1, k)
                    )
                });
            }
            if act[1] {
                acc(em, &d[1], l1, n, false, &|k| {
                    let (xa, yb) = (x(k), y(k));
                    format!(
                        "-{} * {xa} / ({yb} * {yb}) - {} * ({} / ({yb} * {yb}) - 2.0 * {xa} * {} / ({yb} * {yb} * {yb}))",
                        gt.at(k), g.at(k), t(0, k), t(1, k))
                });
            }
        }
        Op::Neg if act[0] => acc(em, &d[0], l0, n, true, &|k| gt.at(k)),
        Op::Pow(p) if act[0] => acc(em, &d[0], l0, n, false, &|k| {
            let (p, xk) = (lit(*p), a.v[0].at(k));
            let second = tof[0].as_ref().map_or("0.0".to_string(), |r| {
                format!(
                    "{} * {p} * ({p} - 1.0) * {xk}.powf({p} - 2.0) * {}",
                    g.at(k),
                    r.at(k)
                )
            });
            format!("{} * {p} * {xk}.powf({p} - 1.0) + {second}", gt.at(k))
        }),
        Op::Unary(f) if act[0] => em.each(l0, |k| {
            let second = tof[0].as_ref().map_or("0.0".to_string(), |r| {
                format!("{} * f2 * {}", g.at(k), r.at(k))
            });
            format!(
                "let (_, f1, f2) = d_{}({}); {} += {} * f1 + {second};",
                f.name(),
                a.v[0].at(k),
                d[0].at(k),
                gt.at(k)
            )
        }),
        Op::Sum | Op::Mean if act[0] => {
            let k = if node.op == Op::Mean {
                format!("(1.0 / {}.0)", l0.max(1))
            } else {
                "1.0".into()
            };
            em.each(l0, |j| format!("{} += {k} * {gt0};", d[0].at(j)));
        }
        Op::Norm2sq if act[0] => em.each(l0, |k| {
            let second = tof[0]
                .as_ref()
                .map_or("0.0".to_string(), |r| format!("2.0 * {g0} * {}", r.at(k)));
            format!(
                "{} += 2.0 * {gt0} * {} + {second};",
                d[0].at(k),
                a.v[0].at(k)
            )
        }),
        Op::Norm2 if act[0] => {
            let c = em.val(lvl, i).at("0");
            em.open(&format!("if {c} > 0.0 {{"));
            let xt = tof[0].as_ref().map_or("0.0".to_string(), |r| {
                format!(
                    "(0..{l0}).map(|k| {} * {}).sum::<T>()",
                    a.v[0].at("k"),
                    r.at("k")
                )
            });
            em.line(&format!("let xt: T = {xt};"));
            em.each(l0, |k| {
                format!(
                    "{} += {gt0} * {xk} / {c} + {g0} * ({} / {c} - {xk} * xt / ({c} * {c} * {c}));",
                    d[0].at(k),
                    t(0, k),
                    xk = a.v[0].at(k)
                )
            });
            em.close();
        }
        Op::Dot => {
            for (j, other) in [(0usize, 1usize), (1, 0)] {
                if act[j] {
                    em.each(a.len[j], |k| {
                        let second = tof[other]
                            .as_ref()
                            .map_or("0.0".to_string(), |r| format!("{g0} * {}", r.at(k)));
                        format!("{} += {gt0} * {} + {second};", d[j].at(k), a.v[other].at(k))
                    });
                }
            }
        }
        _ => adjoint_tangent_more(em, lvl, i, act),
    }
}

/// The rest of [`adjoint_tangent`]'s arms (products with scratch, losses, permutations).
fn adjoint_tangent_more(em: &mut Em<'_>, lvl: usize, i: NodeId, act: &[bool]) {
    let tape = em.tape(lvl);
    let node = &tape.nodes[i];
    let n = node.len();
    let mode = em.mode;
    let a = args(em, lvl, i);
    let g = em.adj(lvl, i);
    let gt = em.adt(lvl, i);
    let d: Vec<Ref> = node.args.iter().map(|&p| em.adt(lvl, p)).collect();
    let tof: Vec<Option<Ref>> = node.args.iter().map(|&p| em.tanof(lvl, p, mode)).collect();
    let (l0, l1) = (a.len[0], a.len.get(1).copied().unwrap_or(0));
    let t = |j: usize, k: &str| {
        tof[j]
            .as_ref()
            .map_or("0.0".to_string(), |r| r.bc(a.len[j], k))
    };
    let (g0, gt0) = (g.at("0"), gt.at("0"));
    match &node.op {
        Op::Quad { sym } if act[1] => {
            let aux = em.aux(lvl, i, l1);
            em.each(l1, |k| {
                format!("{} += 2.0 * {gt0} * {};", d[1].at(k), aux.at(k))
            });
            let nz = !matches!(d[1], Ref::Zero) && !matches!(g, Ref::Zero);
            if let Some(tr) = tof[1]
                .as_ref()
                .filter(|_| nz && em.need_t(lvl, node.args[1]))
            {
                let (p, tv) = (a.v[0].slice(l1 * l1), tr.slice(l1));
                let dst = d[1].slice(l1).replacen('&', "&mut ", 1);
                let m = l1;
                if *sym {
                    em.line(&format!(
                        "gemm(2.0 * {g0}, {p}, ({m}, {m}), false, {tv}, ({m}, 1), false, {dst});"
                    ));
                } else {
                    em.line(&format!(
                        "gemm({g0}, {p}, ({m}, {m}), false, {tv}, ({m}, 1), false, {dst});"
                    ));
                    em.line(&format!(
                        "gemm({g0}, {p}, ({m}, {m}), true, {tv}, ({m}, 1), false, {dst});"
                    ));
                }
            }
        }
        Op::SqLoss => {
            for (k, neg) in [(0usize, false), (1, true)] {
                if act[k] {
                    em.each(a.len[k], |j| {
                        let dt = format!("({} - {})", t(0, j), t(1, j));
                        let body = format!(
                            "{gt0} * ({} - {}) + {g0} * {dt}",
                            a.v[0].at(j),
                            a.v[1].at(j)
                        );
                        if neg {
                            format!("{} += -({body});", d[k].at(j))
                        } else {
                            format!("{} += {body};", d[k].at(j))
                        }
                    });
                }
            }
        }
        Op::LogisticLoss => {
            em.open("{");
            em.line(&format!(
                "let ((gz, gy), (hzz, hyy, hzy)) = logistic_derivs({}, {});",
                a.v[0].at("0"),
                a.v[1].at("0")
            ));
            em.line(&format!("let tz: T = {};", t(0, "0")));
            em.line(&format!("let ty: T = {};", t(1, "0")));
            if act[0] {
                em.line(&format!(
                    "{} += {gt0} * gz + {g0} * (hzz * tz + hzy * ty);",
                    d[0].at("0")
                ));
            }
            if act[1] {
                em.line(&format!(
                    "{} += {gt0} * gy + {g0} * (hzy * tz + hyy * ty);",
                    d[1].at("0")
                ));
            }
            em.close();
        }
        Op::SoftmaxXent | Op::Logsumexp
            if act[0]
                && !matches!(d[0], Ref::Zero)
                && !(matches!(g, Ref::Zero) && matches!(gt, Ref::Zero)) =>
        {
            let aux = em.aux(lvl, i, l0);
            let c = class(&node.op, &a, l0);
            let tz = tof[0]
                .as_ref()
                .map_or("None".to_string(), |r| format!("Some({})", r.slice(l0)));
            em.line(&format!(
                "softmax_adjoint_tangent({}, {c}, ({g0}, {gt0}), {tz}, {});",
                aux.slice(l0),
                d[0].slice(l0).replacen('&', "&mut ", 1)
            ));
        }
        Op::Transpose if act[0] => {
            let src = &tape.nodes[node.args[0]];
            let (r, c) = (src.rows, src.cols);
            em.open(&format!("for i in 0..{r} {{"));
            em.open(&format!("for c in 0..{c} {{"));
            em.line(&format!(
                "{} += {};",
                d[0].at(&format!("i * {c} + c")),
                gt.at(&format!("c * {r} + i"))
            ));
            em.close();
            em.close();
        }
        Op::Index if act[0] => {
            em.open("{");
            super::linalg::index_offset(em, lvl, i, &a.v);
            em.each(n, |k| {
                format!("{} += {};", d[0].at(&format!("off + {k}")), gt.at(k))
            });
            em.close();
        }
        _ => {}
    }
}
