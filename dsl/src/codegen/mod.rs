//! Code generation: a checked, loaded and lowered spec becomes a `no_std`,
//! heap-free Rust module over `f32` or `f64` that depends on `bilevel-core`
//! only — const dimensions, `static` tables for parameters and fixed data,
//! a `Workspace` struct with one fixed-size array per tape buffer, a
//! `Sample` type and sampler, and a `Problem` type implementing the core's
//! oracle traits.
//!
//! The code is not a second implementation of the derivatives: the
//! generator runs the interpreter's sweeps symbolically ([`emit`]) over the
//! same tapes, with the same per-(tape, mode) plan, and writes out each rule
//! the interpreter would run ([`rules`], [`linalg`], [`sample`]), as the
//! same operations in the same order. In `f64` the generated oracle gives
//! the interpreter's bits wherever both call the same elementary functions
//! (included in a `std` crate, `x.exp()` resolves to std's method, as in the
//! interpreter; in a `no_std` crate to `bilevel_core::Real`'s `libm`).

mod data;
mod dead;
mod emit;
mod errors;
mod linalg;
mod ring;
mod rules;
mod runtime;
mod sample;
mod zeros;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::compiled::{Compiled, Program};
use crate::diag::Diagnostic;
use crate::hir::Spec;
use crate::tape::{Field, Func, Mode, Op, Tape, VarKind};

pub use ring::{DataChoice, Storage};

/// The scalar type of the generated code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scalar {
    /// `f32` (microcontrollers with a single-precision FPU).
    F32,
    /// `f64`.
    #[default]
    F64,
}

impl Scalar {
    /// Its Rust name.
    pub const fn name(self) -> &'static str {
        match self {
            Scalar::F32 => "f32",
            Scalar::F64 => "f64",
        }
    }
}

/// What to generate.
#[derive(Debug, Clone, Default)]
pub struct CodegenOptions {
    /// The scalar type.
    pub scalar: Scalar,
    /// The module's name (default: the problem's name made an identifier).
    pub name: Option<String>,
    /// Call the elementary functions (`exp`, `ln`, `sqrt`, …) through
    /// `bilevel_core::Real` (libm) explicitly. Without it they are method
    /// calls, which resolve to std's inherent methods whenever std is in the
    /// including crate's graph (a host test) and to `Real` otherwise (a
    /// `no_std` firmware): set it to get a firmware's bits on the host.
    pub libm: bool,
    /// Where the table sources' rows come from: empty, every table is
    /// compiled in (`const`); [`Storage::Ring`] makes a source a run-time
    /// sample ring the firmware fills (docs/codegen.md, "Run-time data").
    pub data: Vec<DataChoice>,
}

/// A generated module.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The module's name (a Rust identifier).
    pub name: String,
    /// The source: one `pub mod NAME { … }` item, to `include!`.
    pub code: String,
    /// Bytes of the largest sweep's buffers (locals of that sweep function).
    pub workspace_bytes: usize,
    /// Bytes of the sampler state inside `Problem`.
    pub sampler_bytes: usize,
    /// Bytes of the `static` tables (parameters and data).
    pub static_bytes: usize,
    /// Length of x.
    pub dim_x: usize,
    /// Length of y.
    pub dim_y: usize,
    /// Bytes of the sample rings inside `Problem` (0 without rings): their
    /// rows, and two `usize` counters per ring counted as 8 bytes each (4
    /// on a 32-bit target).
    pub ring_bytes: usize,
}

/// Generates the oracle module of the spec `src` read from `path` (its
/// folder is where data files are found).
///
/// # Errors
/// The spec's diagnostics, or a coded diagnostic (E0701, E0702) naming a
/// construct that cannot be generated.
pub fn codegen(
    src: &str,
    path: &Path,
    opts: &CodegenOptions,
) -> Result<Generated, Vec<Diagnostic>> {
    let base = path.parent().unwrap_or(Path::new("."));
    // Models first: without a backend the build would stop at E0404.
    let spec = crate::pipeline::check_source(src)?;
    if !spec.models.is_empty() {
        return Err(spec.models.iter().map(errors::model_call).collect());
    }
    let program = crate::pipeline::build(src, base)?;
    supported(&program)?;
    let mut used = Vec::new();
    sources(&program.f, &mut used);
    sources(&program.g, &mut used);
    let rings = ring::resolve(&program, src, &opts.data, &used)?;
    Ok(generate(&program, src, path, opts, &rings))
}

/// Refuses what cannot be generated, naming the construct.
fn supported(p: &Program) -> Result<(), Vec<Diagnostic>> {
    let mut errs = Vec::new();
    for t in [&p.f, &p.g] {
        scan(t, &p.spec, &mut errs);
    }
    errs.dedup();
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

fn scan(t: &Tape, spec: &Spec, errs: &mut Vec<Diagnostic>) {
    for n in &t.nodes {
        match &n.op {
            Op::Model { model, .. } => {
                if let Some(def) = spec.models.get(*model) {
                    errs.push(errors::model_call(def));
                }
            }
            Op::Field(_, d, f @ (Field::Text | Field::Group)) => {
                if let Some(def) = spec.data.get(*d) {
                    let name = if *f == Field::Text {
                        "s.text"
                    } else {
                        "s.group"
                    };
                    errs.push(errors::field(def, name));
                }
            }
            Op::Reduce { body, .. } => scan(body, spec, errs),
            _ => {}
        }
    }
}

/// The problem's name as a Rust identifier.
fn ident(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, 'p');
    }
    s
}

/// FNV-1a, 64 bits: the spec's hash in the header.
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One sweep function: name, upper tape?, mode, value wanted, outputs
/// (name, variable, second order).
type Kind = (
    &'static str,
    bool,
    Mode,
    bool,
    &'static [(&'static str, VarKind, bool)],
);

/// A sweep mode (the table below reads better with positional flags).
#[allow(clippy::fn_params_excessive_bools)]
const fn m(tangent: bool, wrt_x: bool, wrt_y: bool, second: bool, first: bool) -> Mode {
    Mode {
        tangent,
        wrt_x,
        wrt_y,
        second,
        first,
    }
}

const KINDS: &[Kind] = &[
    ("f_value", true, Mode::VALUE, true, &[]),
    (
        "f_grad_x",
        true,
        m(false, true, false, false, true),
        false,
        &[("gx", VarKind::X, false)],
    ),
    (
        "f_grad_y",
        true,
        m(false, false, true, false, true),
        false,
        &[("gy", VarKind::Y, false)],
    ),
    (
        "f_grads",
        true,
        m(false, true, true, false, true),
        false,
        &[("gx", VarKind::X, false), ("gy", VarKind::Y, false)],
    ),
    ("g_value", false, Mode::VALUE, true, &[]),
    (
        "g_grad_y",
        false,
        m(false, false, true, false, true),
        false,
        &[("gy", VarKind::Y, false)],
    ),
    (
        "g_grad_x",
        false,
        m(false, true, false, false, true),
        false,
        &[("gx", VarKind::X, false)],
    ),
    (
        "g_hvp",
        false,
        m(true, false, true, true, false),
        false,
        &[("hv", VarKind::Y, true)],
    ),
    (
        "g_jvp",
        false,
        m(true, true, false, true, false),
        false,
        &[("jv", VarKind::X, true)],
    ),
    (
        "g_hvp_jvp",
        false,
        m(true, true, true, true, false),
        false,
        &[("hv", VarKind::Y, true), ("jv", VarKind::X, true)],
    ),
    (
        "g_grad_hvp_jvp",
        false,
        m(true, true, true, true, true),
        false,
        &[
            ("gy", VarKind::Y, false),
            ("hv", VarKind::Y, true),
            ("jv", VarKind::X, true),
        ],
    ),
];

/// The source lines of a span, as `// | …` comments.
fn source_comment(src: &str, span: crate::ast::Span) -> String {
    let map = crate::SourceMap::new(src);
    let (l0, _) = map.line_col(span.start);
    let (l1, _) = map.line_col(span.end.saturating_sub(1).max(span.start));
    let mut s = String::new();
    for l in l0..=l1 {
        let _ = writeln!(s, "    // {l:>4} | {}", map.line(l).unwrap_or(""));
    }
    s
}

/// One sweep function's code.
fn sweep_fn(
    p: &Program,
    src: &str,
    kind: &Kind,
    bufs: &mut BTreeMap<String, usize>,
    flags: &[Option<data::TableInfo>],
    (rparam, rdecl): (&str, &str),
) -> String {
    let (name, upper, mode, value, outs) = *kind;
    let (tape, pre, hir) = if upper {
        (&p.f, "f", &p.spec.f)
    } else {
        (&p.g, "g", &p.spec.g)
    };
    // Reductions are recomputed in the reverse sweep (`sample::reverse`):
    // their forward loop runs only when their value or tangent is read.
    let plan = tape.plan_recompute(mode, value);
    let mut mine = BTreeMap::new();
    let mut em = emit::Em::new(tape, pre, mode, &plan, &mut mine, &p.spec.data, flags);
    // Which reductions the interpreter's plan gives a tangent: the reverse
    // sweep copies their bodies' outer tangents (the forward one may not run).
    em.reduce_tan = tape.plan(mode, value).tan;
    em.forward(0, mode);
    if mode.wrt_x || mode.wrt_y {
        em.reverse();
    }
    for &(out, kind, second) in outs {
        em.line(&format!("{out}.fill(Z);"));
        for (i, n) in tape.nodes.iter().enumerate() {
            let Op::Var(k, off) = n.op else { continue };
            let live = if second {
                em.live_adt(0, i)
            } else {
                em.live_adj(0, i)
            };
            if k != kind || !live {
                continue;
            }
            let b = if second { em.adt(0, i) } else { em.adj(0, i) };
            em.each(n.len(), |j| format!("{out}[{off} + {j}] += {};", b.at(j)));
        }
    }
    let ret = if value {
        em.val(0, tape.output).at("0")
    } else {
        "T::NAN".into()
    };
    em.line(&ret);
    let mut params = String::new();
    for (o, _, _) in outs {
        let _ = write!(params, ", {o}: &mut [T]");
    }
    if mode.tangent {
        params.insert_str(0, ", v: &[T]");
    }
    // Statements writing only buffers nothing kept reads (`dead`).
    let body = dead::prune(&em.out);
    // The sweep's buffers are locals: LLVM keeps them in registers or drops
    // their dead stores, and only the running sweep's frame is on the stack.
    let mut decl = String::new();
    decl.push_str("    let x: &[T; DIM_X] = fixed(x);\n    let y: &[T; DIM_Y] = fixed(y);\n");
    if mode.tangent {
        decl.push_str("    let v: &[T; DIM_Y] = fixed(v);\n");
    }
    decl.push_str(rdecl);
    for &(o, k, _) in outs {
        let dim = if k == VarKind::X { "DIM_X" } else { "DIM_Y" };
        let _ = writeln!(decl, "    let {o}: &mut [T; {dim}] = fixed_mut({o});");
    }
    // Only the buffers the kept statements use are declared (and counted).
    let used = |n: &str| {
        body.match_indices(n).any(|(at, _)| {
            let next = body[at + n.len()..].chars().next();
            let prev = body[..at].chars().next_back();
            !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && !prev.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        })
    };
    mine.retain(|n, _| used(n));
    for (n, len) in &mine {
        let _ = writeln!(decl, "    let mut {n}: [T; {len}] = [Z; {len}];");
    }
    *bufs.entry(name.to_string()).or_default() = mine.values().sum();
    format!(
        "/// {} in mode {:?}{}.\n///\n{}#[allow(unused_variables, unused_assignments, unused_mut, clippy::all)]\n#[inline(never)]\npub fn {name}(x: &[T], y: &[T], s: &Sample{rparam}{params}) -> T {{\n{decl}{body}}}\n\n",
        if upper { "f" } else { "g" },
        mode,
        if value { ", with the value" } else { "" },
        source_comment(src, hir.span).replace("    // ", "/// "),
    )
}

/// The `Problem` type, its sampler and the trait impls.
fn problem(
    p: &Program,
    sampler_fields: &[(String, String, String)],
    rings: &[Option<usize>],
) -> String {
    let mut upper = Vec::new();
    let mut lower = Vec::new();
    sources(&p.f, &mut upper);
    sources(&p.g, &mut lower);
    upper.sort_unstable();
    lower.sort_unstable();
    let tables = &p.loaded.tables;
    // Per source in the interpreter's order: a ring's draw or a table's.
    let draws = |srcs: &[usize]| -> String {
        srcs.iter()
            .map(|&d| match rings.get(d) {
                Some(Some(_)) => ring::draw_code(&p.spec.data[d], d),
                _ => data::draw_code(&p.spec.data, tables, &[d]),
            })
            .collect()
    };
    let (du, dl) = (draws(&upper), draws(&lower));
    // ∇ₓf ≡ 0 when no node of f depends on x: the joint call is the y sweep
    // (the same code: f_grads would duplicate it in the image).
    let grads_f = if p.f.nodes.iter().any(|n| n.dep_x) {
        "f_grads(x, y, s, gx, gy);"
    } else {
        "f_grad_y(x, y, s, gy);\n        gx.fill(Z);"
    };
    let (mut decl, mut init) = (String::new(), String::new());
    for (n, t, i) in sampler_fields {
        let _ = writeln!(decl, "    {n}: {t},");
        let _ = writeln!(init, "            {n}: {i},");
    }
    if ring::any(rings) {
        decl.push_str("    /// The run-time data: fill the rings before stepping a solver.\n    pub rings: Rings,\n");
        init.push_str("            rings: Rings::new(),\n");
    }
    let code = format!(
        r"/// The generated oracle: the samplers' state (the sweeps' buffers are
/// locals of each sweep function, see `WORKSPACE_BYTES`).
pub struct Problem {{
{decl}}}

impl Problem {{
    /// A fresh oracle (samplers before their first draw).
    pub const fn new() -> Self {{
        Problem {{
{init}        }}
    }}
}}

impl Default for Problem {{
    fn default() -> Self {{
        Self::new()
    }}
}}

impl bo::Oracle<T> for Problem {{
    type Sample = Sample;
    fn dim_x(&self) -> usize {{
        DIM_X
    }}
    fn dim_y(&self) -> usize {{
        DIM_Y
    }}
    #[allow(unused_variables)]
    fn sample<R: Rng + ?Sized>(&mut self, level: bo::Level, rng: &mut R) -> Sample {{
        let mut out = Sample::new();
        if level == bo::Level::Upper {{
{du}        }} else {{
{dl}        }}
        out
    }}
}}

impl bo::UpperGradX<T> for Problem {{
    fn grad_x_f(&mut self, x: &[T], y: &[T], s: &Sample, out: &mut [T]) {{
        f_grad_x(x, y, s, out);
    }}
    fn try_grads_f(&mut self, x: &[T], y: &[T], s: &Sample, gx: &mut [T], gy: &mut [T]) -> bool {{
        {grads_f}
        true
    }}
}}
impl bo::UpperGradY<T> for Problem {{
    fn grad_y_f(&mut self, x: &[T], y: &[T], s: &Sample, out: &mut [T]) {{
        f_grad_y(x, y, s, out);
    }}
}}
impl bo::LowerGradY<T> for Problem {{
    fn grad_y_g(&mut self, x: &[T], y: &[T], s: &Sample, out: &mut [T]) {{
        g_grad_y(x, y, s, out);
    }}
}}
impl bo::LowerGradX<T> for Problem {{
    fn grad_x_g(&mut self, x: &[T], y: &[T], s: &Sample, out: &mut [T]) {{
        g_grad_x(x, y, s, out);
    }}
}}
impl bo::LowerHvp<T> for Problem {{
    fn hvp_yy(&mut self, x: &[T], y: &[T], v: &[T], s: &Sample, out: &mut [T]) {{
        g_hvp(x, y, s, v, out);
    }}
    fn try_hvp_jvp(&mut self, x: &[T], y: &[T], v: &[T], s: &Sample, (hv, jv): (&mut [T], &mut [T])) -> bool {{
        g_hvp_jvp(x, y, s, v, hv, jv);
        true
    }}
    fn try_grad_hvp_jvp(
        &mut self,
        x: &[T],
        y: &[T],
        v: &[T],
        s: &Sample,
        (gy, hv, jv): (&mut [T], &mut [T], &mut [T]),
    ) -> bool {{
        g_grad_hvp_jvp(x, y, s, v, gy, hv, jv);
        true
    }}
}}
impl bo::CrossJvp<T> for Problem {{
    fn jvp_xy(&mut self, x: &[T], y: &[T], v: &[T], s: &Sample, out: &mut [T]) {{
        g_jvp(x, y, s, v, out);
    }}
}}
impl bo::UpperValue<T> for Problem {{
    fn f_value(&mut self, x: &[T], y: &[T], s: &Sample) -> T {{
        f_value(x, y, s)
    }}
}}
impl bo::LowerValue<T> for Problem {{
    fn g_value(&mut self, x: &[T], y: &[T], s: &Sample) -> T {{
        g_value(x, y, s)
    }}
}}
"
    );
    if ring::any(rings) {
        // Every sweep reads the rings (`ring::sweep_parts`): the calls pass them.
        code.replace("(x, y, s, ", "(x, y, s, &self.rings, ")
            .replace("(x, y, s)", "(x, y, s, &self.rings)")
            + "impl Problem {\n    /// `true` when every ring holds at least its minibatch (`Rings::ready`).\n    pub const fn ready(&self) -> bool {\n        self.rings.ready()\n    }\n}\n"
    } else {
        code
    }
}

fn sources(t: &Tape, out: &mut Vec<usize>) {
    for n in &t.nodes {
        if let Op::Reduce { data, body, .. } = &n.op {
            if !out.contains(data) {
                out.push(*data);
            }
            sources(body, out);
        }
    }
}

/// Constant nodes as statics; the functions the tapes use.
fn consts(
    t: &Tape,
    pre: &str,
    f32: bool,
    out: &mut String,
    funcs: &mut Vec<Func>,
    bytes: &mut usize,
) {
    for (i, n) in t.nodes.iter().enumerate() {
        match &n.op {
            Op::Const(v) => {
                data::static_table(out, &format!("C_{}_{i}", pre.to_uppercase()), v, f32);
                *bytes += v.len();
            }
            Op::Unary(f) if !funcs.contains(f) => funcs.push(*f),
            Op::Reduce { body, .. } => consts(body, &format!("{pre}_{i}"), f32, out, funcs, bytes),
            _ => {}
        }
    }
}

/// The whole module.
fn generate(
    p: &Program,
    src: &str,
    path: &Path,
    opts: &CodegenOptions,
    rings: &[Option<usize>],
) -> Generated {
    let f32 = opts.scalar == Scalar::F32;
    let size = if f32 { 4 } else { 8 };
    let name = ident(opts.name.as_deref().unwrap_or(&p.spec.name));
    let mut flags = data::table_flags(&p.loaded.tables, f32);
    for (f, r) in flags.iter_mut().zip(rings) {
        // A ring's columns are `[T; _]` arrays read as the float tables are.
        if let (Some(f), Some(_)) = (f.as_mut(), r) {
            f.compact = false;
        }
    }
    let rparts = ring::sweep_parts(p, rings);
    let mut bufs = BTreeMap::new();
    let fns: String = KINDS
        .iter()
        .map(|k| sweep_fn(p, src, k, &mut bufs, &flags, (&rparts.0, &rparts.1)))
        .collect();
    let mut statics = String::new();
    let mut funcs = Vec::new();
    let mut nstatic = 0usize;
    consts(&p.f, "f", f32, &mut statics, &mut funcs, &mut nstatic);
    consts(&p.g, "g", f32, &mut statics, &mut funcs, &mut nstatic);
    let mut used = Vec::new();
    sources(&p.f, &mut used);
    sources(&p.g, &mut used);
    used.sort_unstable();
    let tables = &p.loaded.tables;
    let fixed: Vec<usize> = used
        .iter()
        .copied()
        .filter(|&d| rings.get(d).is_none_or(Option::is_none))
        .collect();
    let data_bytes = data::tables(&mut statics, &p.spec.data, tables, &fixed, f32);
    let ring_bytes = ring::types(&mut statics, p, rings, size);
    let mut sampler = data::sampler_fields(&p.spec.data, tables, &fixed);
    sampler.extend(ring::sampler_fields(p, rings));
    let sampler_bytes: usize = sampler
        .iter()
        .map(|(_, t, _)| {
            if t == "usize" {
                8
            } else {
                4 * t
                    .trim_start_matches("[u32; ")
                    .trim_end_matches(']')
                    .parse::<usize>()
                    .unwrap_or(0)
            }
        })
        .sum();
    // The largest sweep's buffers: the most stack any one sweep needs for them.
    let ws_len: usize = bufs.values().copied().max().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// Generated by bilevel-dsl {} (`bilevel codegen`) from {}\n// spec hash (FNV-1a 64 of the source): {:016x}\n// scalar: {}; largest sweep's buffers (locals): {} numbers = {} bytes; static tables: parameters {} numbers = {} bytes, data {} bytes\n// Do not edit: regenerate from the spec.",
        env!("CARGO_PKG_VERSION"),
        path.display(),
        fnv1a(src.as_bytes()),
        opts.scalar.name(),
        ws_len,
        ws_len * size,
        nstatic,
        nstatic * size,
        data_bytes
    );
    out.push_str(&ring::header_line(p, rings, ring_bytes));
    let _ = writeln!(
        out,
        "\n/// The oracle of `{}` ({}), generated from its tapes.\n#[allow(clippy::all, clippy::pedantic, unused_parens, unused_mut, unused_variables, dead_code, missing_docs, unused_imports, non_snake_case)]\npub mod {name} {{\nuse bilevel_core::oracle as bo;\nuse bilevel_core::random::{{below, normal, uniform}};\nuse bilevel_core::rand_core::{{Rng, SeedableRng}};\nuse bilevel_core::{{DefaultRng, Real}};\n\n/// The scalar type.\npub type T = {};\nconst Z: T = 0.0;\n/// Length of x.\npub const DIM_X: usize = {};\n/// Length of y.\npub const DIM_Y: usize = {};\n/// Bytes of the largest sweep's buffers (locals of the sweep function: on\n/// the stack while it runs, or in registers).\npub const WORKSPACE_BYTES: usize = {};",
        p.spec.name,
        path.display(),
        opts.scalar.name(),
        p.dim_x,
        p.dim_y,
        ws_len * size,
    );
    let c = Compiled::new(p.clone());
    let _ = writeln!(
        out,
        "/// The initial x (the `init` clauses).\npub const X0: [T; {}] = [{}];",
        p.dim_x,
        join(&c.initial_x(), f32)
    );
    let _ = writeln!(
        out,
        "/// The initial y.\npub const Y0: [T; {}] = [{}];",
        p.dim_y,
        join(&c.initial_y(), f32)
    );
    out.push_str(runtime::RUNTIME);
    for f in funcs {
        out.push_str(&runtime::derivs_fn(f));
    }
    out.push_str("\n// Parameters and constants of the tapes, then the data.\n");
    out.push_str(&statics);
    out.push('\n');
    data::sample_type(&mut out, &p.spec.data, tables, &used, rings);
    out.push_str(&fns);
    out.push_str(&problem(p, &sampler, rings));
    out.push_str("}\n");
    if opts.libm {
        out = libm_calls(&out);
    }
    Generated {
        name,
        code: out,
        workspace_bytes: ws_len * size,
        sampler_bytes,
        static_bytes: nstatic * size + data_bytes,
        dim_x: p.dim_x,
        dim_y: p.dim_y,
        ring_bytes,
    }
}

fn join(v: &[f64], f32: bool) -> String {
    v.iter()
        .map(|x| {
            if f32 {
                format!("{:?}", *x as f32)
            } else {
                format!("{x:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The elementary functions the generated code calls as methods.
const ELEMENTARY: [&str; 9] = [
    "sqrt", "abs", "exp", "ln", "tanh", "powf", "cos", "sin", "ln_1p",
];

/// `code` with every elementary method call `.f(` made `.f_libm(`, a
/// method of a trait the module declares that calls `bilevel_core::Real`'s
/// function: trait methods cannot shadow std's inherent ones, renamed
/// methods need not (`CodegenOptions::libm`).
fn libm_calls(code: &str) -> String {
    let mut out = code.to_string();
    for f in ELEMENTARY {
        out = out.replace(&format!(".{f}("), &format!(".{f}_libm("));
    }
    let mut tr = String::from(
        "\n/// The elementary functions through `bilevel_core::Real` (libm) whatever the\n/// including crate links, so the bits are those of a `no_std` target.\ntrait Libm: Real {\n",
    );
    for f in ELEMENTARY {
        let (args, call) = if f == "powf" {
            ("self, p: Self", "Real::powf(self, p)")
        } else {
            ("self", "")
        };
        let call = if call.is_empty() {
            format!("Real::{f}(self)")
        } else {
            call.to_string()
        };
        let _ = writeln!(
            tr,
            "    #[inline(always)]\n    fn {f}_libm({args}) -> Self {{\n        {call}\n    }}"
        );
    }
    tr.push_str("}\nimpl Libm for T {}\n");
    // After the module's `use` lines (the first blank line after `pub type T`).
    let at = out.find("const Z: T").unwrap_or(0);
    out.insert_str(at, &tr);
    out
}
