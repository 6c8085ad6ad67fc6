//! Data as generated code: the tables compiled into the image as `static`
//! arrays, the minibatch type (`Sample`: row indices or synthetic draw
//! seeds per data source, fixed capacity) and the sampler, which draws
//! exactly as the interpreter's `data::draw` does with the same generator.

use std::fmt::Write as _;

use bilevel_core::random::mix64;

use super::emit::Em;
use crate::data::Table;
use crate::hir::{DataDef, Sampler, SourceKind};
use crate::tape::{Field, NodeId, Op};

/// What the generated code knows of one table source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TableInfo {
    /// It has a label column.
    pub labels: bool,
    /// It has a weight column.
    pub weights: bool,
    /// Its columns are stored as [`Code`]s and decoded per row
    /// (`dN_x(r)`, `dN_l(r)`, `dN_w(r)`), not as one `[T; rows × width]`.
    pub compact: bool,
}

/// Per data source: its [`TableInfo`] for tables, `None` for synthetic
/// sources.
pub(super) fn table_flags(tables: &[Option<Table>], f32: bool) -> Vec<Option<TableInfo>> {
    tables
        .iter()
        .map(|t| {
            t.as_ref().map(|t| TableInfo {
                labels: !t.labels.is_empty(),
                weights: !t.weights.is_empty(),
                compact: table_codes(t, f32).is_some(),
            })
        })
        .collect()
}

/// How one column of a table is stored in the generated code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Code {
    /// As the scalar type (`[T; rows]`).
    Float,
    /// As `u8` / `u16` codes c: value = T(c + offset) / 10^scale (no
    /// division for scale 0), exact for every value of the column.
    Int {
        /// `"u8"` or `"u16"`.
        ty: &'static str,
        /// Added to the code, in `i32`.
        offset: i32,
        /// The decimal scale.
        scale: u32,
    },
}

/// Decodes code `c` of a [`Code::Int`] column exactly as the generated
/// code does, in `f32` or `f64`, as the bits of the result (widened).
fn decode_bits(c: i64, offset: i32, scale: u32, f32: bool) -> u64 {
    let q = (c as i32).wrapping_add(offset);
    if f32 {
        let v = q as f32;
        let v = if scale == 0 {
            v
        } else {
            v / 10u32.pow(scale) as f32
        };
        u64::from(v.to_bits())
    } else {
        let v = f64::from(q);
        let v = if scale == 0 {
            v
        } else {
            v / f64::from(10u32.pow(scale))
        };
        v.to_bits()
    }
}

/// The value the interpreter's table holds, in the generated scalar type,
/// as bits (what a `[T; _]` table would store).
fn table_bits(v: f64, f32: bool) -> u64 {
    if f32 {
        u64::from((v as f32).to_bits())
    } else {
        v.to_bits()
    }
}

/// The smallest lossless integer code of a column: the smallest decimal
/// scale 0..=6 at which every value is an integer q with |q| ≤ 2^24 (so
/// that `q as T` is exact), the offset the column minimum, `u8` or `u16` by
/// the range; then every value is decoded as the generated code will and
/// compared bit for bit with what a float table would hold. [`Code::Float`]
/// if any of this fails: no column ever loses precision.
pub(super) fn column_code(col: &[f64], f32: bool) -> Code {
    const LIMIT: f64 = 16_777_216.0; // 2^24
    if col.is_empty() {
        return Code::Float;
    }
    'scale: for scale in 0..=6u32 {
        let pow = f64::from(10u32.pow(scale));
        let mut q = Vec::with_capacity(col.len());
        for &v in col {
            let r = (v * pow).round();
            if !r.is_finite() || r.abs() > LIMIT {
                return Code::Float;
            }
            q.push(r as i64);
        }
        let (lo, hi) = q
            .iter()
            .fold((i64::MAX, i64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        let ty = match hi - lo {
            0..=255 => "u8",
            256..=65_535 => "u16",
            _ => return Code::Float,
        };
        let offset = lo as i32;
        for (&v, &qv) in col.iter().zip(&q) {
            if decode_bits(qv - lo, offset, scale, f32) != table_bits(v, f32) {
                continue 'scale;
            }
        }
        return Code::Int { ty, offset, scale };
    }
    Code::Float
}

/// The codes of every column of a table (features, then label, then
/// weight), or `None` when no column is coded (the table stays one
/// row-major `[T; _]` array).
fn table_codes(t: &Table, f32: bool) -> Option<Vec<Code>> {
    let w = t.features;
    let mut codes: Vec<Code> = (0..w)
        .map(|j| {
            let col: Vec<f64> = (0..t.rows).map(|r| t.x[r * w + j]).collect();
            column_code(&col, f32)
        })
        .collect();
    for c in [&t.labels, &t.weights] {
        if !c.is_empty() {
            codes.push(column_code(c, f32));
        }
    }
    codes
        .iter()
        .any(|c| matches!(c, Code::Int { .. }))
        .then_some(codes)
}

/// A synthetic field's values, drawn from the sample's seed
/// (`View::field` for `SourceBatch::Draws`). Table fields are read in place.
pub(super) fn field(em: &mut Em<'_>, lvl: usize, i: NodeId) {
    let node = &em.tape(lvl).nodes[i];
    let Op::Field(level, d, Field::X) = node.op else {
        return;
    };
    let Some(kind) = em.synthetic(d).cloned() else {
        return;
    };
    let o = em.val(lvl, i);
    let draw = match kind {
        SourceKind::SynthNormal { std, mean, .. } => {
            format!("{mean:?} + {std:?} * normal(&mut rng)")
        }
        SourceKind::SynthUniform { low, high, .. } => {
            format!("{low:?} + ({high:?} - {low:?}) * uniform(&mut rng)")
        }
        SourceKind::Table { .. } => return,
    };
    em.open("{");
    em.line(&format!(
        "let mut rng = DefaultRng::seed_from_u64(s.seeds{d}[i{level}]);"
    ));
    if let super::emit::Ref::Buf(name) = &o {
        em.line(&format!(
            "for o in {name}.iter_mut() {{ *o = ({draw}) as T; }}"
        ));
    }
    em.close();
}

/// A float array literal in the generated scalar type.
fn floats(v: &[f64], f32: bool) -> String {
    let mut s = String::with_capacity(v.len() * 12);
    for (k, x) in v.iter().enumerate() {
        if k > 0 {
            s.push_str(if k % 8 == 0 { ",\n    " } else { ", " });
        }
        let t = if f32 {
            format!("{:?}", *x as f32)
        } else {
            format!("{x:?}")
        };
        s.push_str(&t);
    }
    s
}

/// A `static` table.
pub(super) fn static_table(out: &mut String, name: &str, v: &[f64], f32: bool) {
    let _ = writeln!(
        out,
        "static {name}: [T; {}] = [\n    {}\n];",
        v.len(),
        floats(v, f32)
    );
}

/// One column as a `static` (codes or floats) and the expression that
/// decodes its row `r`; returns the column's bytes.
fn column_static(
    out: &mut String,
    name: &str,
    v: &[f64],
    code: Code,
    f32: bool,
) -> (String, usize) {
    match code {
        Code::Float => {
            static_table(out, name, v, f32);
            (format!("{name}[r]"), v.len() * if f32 { 4 } else { 8 })
        }
        Code::Int { ty, offset, scale } => {
            let lo = f64::from(offset) / f64::from(10u32.pow(scale));
            let codes: Vec<String> = v
                .iter()
                .map(|&x| {
                    ((x * f64::from(10u32.pow(scale))).round() as i64 - i64::from(offset))
                        .to_string()
                })
                .collect();
            let mut body = String::new();
            for (k, c) in codes.iter().enumerate() {
                if k > 0 {
                    body.push_str(if k % 20 == 0 { ",\n    " } else { ", " });
                }
                body.push_str(c);
            }
            let _ = writeln!(
                out,
                "// codes: value = (code + {offset}) / 10^{scale}; minimum {lo}\nstatic {name}: [{ty}; {}] = [\n    {body}\n];",
                v.len()
            );
            let q = format!("((({name}[r] as i32) + {offset}) as T)");
            let e = if scale == 0 {
                q
            } else {
                format!("{q} / {:?}", f64::from(10u32.pow(scale)))
            };
            (e, v.len() * if ty == "u8" { 1 } else { 2 })
        }
    }
}

/// A compact table: one `static` per column and the row decoders
/// `dN_x(r) -> [T; width]`, `dN_l(r)`, `dN_w(r)`; returns its bytes.
fn compact_table(out: &mut String, d: usize, t: &Table, codes: &[Code], f32: bool) -> usize {
    let w = t.features;
    let mut bytes = 0;
    let mut xs = Vec::with_capacity(w);
    for (j, &code) in codes.iter().enumerate().take(w) {
        let col: Vec<f64> = (0..t.rows).map(|r| t.x[r * w + j]).collect();
        let (e, b) = column_static(out, &format!("D{d}_X{j}"), &col, code, f32);
        xs.push(e);
        bytes += b;
    }
    let _ = writeln!(
        out,
        "/// Row `r` of the features of table {d}, decoded (exactly: checked when generated).\n\
         #[inline(always)]\nfn d{d}_x(r: usize) -> [T; {w}] {{\n    [\n        {}\n    ]\n}}",
        xs.join(",\n        ")
    );
    let mut k = w;
    for (c, name, what) in [(&t.labels, "L", "label"), (&t.weights, "W", "weight")] {
        if c.is_empty() {
            continue;
        }
        let (e, b) = column_static(out, &format!("D{d}_{name}"), c, codes[k], f32);
        k += 1;
        bytes += b;
        let _ = writeln!(
            out,
            "/// The {what} of row `r` of table {d}, decoded.\n#[inline(always)]\nfn d{d}_{}(r: usize) -> T {{\n    {e}\n}}",
            name.to_lowercase()
        );
    }
    bytes
}

/// The tables of the used sources, as statics; returns their bytes.
pub(super) fn tables(
    out: &mut String,
    data: &[DataDef],
    tables: &[Option<Table>],
    used: &[usize],
    f32: bool,
) -> usize {
    let size = if f32 { 4 } else { 8 };
    let mut bytes = 0;
    for &d in used {
        let Some(Some(t)) = tables.get(d) else {
            continue;
        };
        let codes = table_codes(t, f32);
        let _ = writeln!(
            out,
            "// data `{}`: {} rows x {} features of {} (compiled into the image{})",
            data[d].name,
            t.rows,
            t.features,
            t.file,
            if codes.is_some() {
                ", columns as exact integer codes where possible"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "/// Rows of table `{}`.\npub const D{d}_ROWS: usize = {};",
            data[d].name, t.rows
        );
        if let Some(codes) = codes {
            bytes += compact_table(out, d, t, &codes, f32);
            continue;
        }
        static_table(out, &format!("D{d}_X"), &t.x, f32);
        if !t.labels.is_empty() {
            static_table(out, &format!("D{d}_L"), &t.labels, f32);
        }
        if !t.weights.is_empty() {
            static_table(out, &format!("D{d}_W"), &t.weights, f32);
        }
        bytes += (t.x.len() + t.labels.len() + t.weights.len()) * size;
    }
    bytes
}

/// The capacity of source `d`'s minibatch.
fn capacity(def: &DataDef, table: Option<&Table>) -> usize {
    match table {
        Some(t) => (def.batch as usize).min(t.rows),
        None => def.batch as usize,
    }
}

/// The `Sample` type and its setters.
pub(super) fn sample_type(
    out: &mut String,
    data: &[DataDef],
    tables: &[Option<Table>],
    used: &[usize],
    rings: &[Option<usize>],
) {
    out.push_str(
        "/// One minibatch: per data source, its rows (tables) or draw seeds\n\
         /// (synthetic sources), fixed capacity.\n\
         #[derive(Debug, Clone, PartialEq)]\npub struct Sample {\n",
    );
    let mut new = String::new();
    let mut set = String::new();
    for &d in used {
        let t = tables.get(d).and_then(Option::as_ref);
        // A ring's minibatch is `batch` rows (at most its capacity, E0712);
        // its row indices are slots, below `ring`.
        let ring = rings.get(d).copied().flatten();
        let cap = if ring.is_some() {
            data[d].batch as usize
        } else {
            capacity(&data[d], t)
        };
        let _ = writeln!(
            out,
            "    /// Samples of `{}` in this minibatch.\n    pub len{d}: usize,",
            data[d].name
        );
        let _ = write!(new, "len{d}: 0, ");
        if t.is_some() {
            let _ = writeln!(
                out,
                "    /// Rows of `{}`.\n    pub rows{d}: [u32; {cap}],",
                data[d].name
            );
            let _ = write!(new, "rows{d}: [0; {cap}], ");
            let guard = ring.map_or(String::new(), |r| {
                format!("if items.iter().any(|&r| r >= {r}) {{ return false; }} ")
            });
            let _ = writeln!(
                set,
                "            {d} => {{ {guard}let n = items.len().min({cap}); for k in 0..n {{ self.rows{d}[k] = items[k] as u32; }} self.len{d} = n; true }}"
            );
        } else {
            let _ = writeln!(
                out,
                "    /// Draw seeds of `{}`.\n    pub seeds{d}: [u64; {cap}],",
                data[d].name
            );
            let _ = write!(new, "seeds{d}: [0; {cap}], ");
            let _ = writeln!(
                set,
                "            {d} => {{ let n = items.len().min({cap}); self.seeds{d}[..n].copy_from_slice(&items[..n]); self.len{d} = n; true }}"
            );
        }
    }
    out.push_str("}\n\n");
    let _ = write!(
        out,
        "impl Sample {{\n    /// An empty minibatch.\n    pub const fn new() -> Self {{\n        Sample {{ {new}}}\n    }}\n\n    \
         /// Sets data source `source`'s minibatch: row indices of a table or seeds of a\n    \
         /// synthetic source (at most the capacity are kept); `false` for a source the\n    \
         /// objectives do not use, or a ring slot at or beyond the ring's capacity.\n    #[allow(unused_variables)]\n    pub fn set(&mut self, source: usize, items: &[u64]) -> bool {{\n        match source {{\n{set}            _ => false,\n        }}\n    }}\n}}\n\n\
         impl Default for Sample {{\n    fn default() -> Self {{\n        Self::new()\n    }}\n}}\n\n"
    );
}

/// Fields of the sampler state (row orders and positions).
pub(super) fn sampler_fields(
    data: &[DataDef],
    tables: &[Option<Table>],
    used: &[usize],
) -> Vec<(String, String, String)> {
    let mut v = Vec::new();
    for &d in used {
        let Some(Some(t)) = tables.get(d) else {
            continue;
        };
        match data[d].sampler {
            Sampler::Shuffle => {
                let init = format!("{{ let mut p = [0u32; {n}]; let mut k = 0; while k < {n} {{ p[k] = k as u32; k += 1; }} p }}", n = t.rows);
                v.push((format!("perm{d}"), format!("[u32; {}]", t.rows), init));
                v.push((format!("pos{d}"), "usize".into(), "usize::MAX".into()));
            }
            Sampler::Sequential => v.push((format!("pos{d}"), "usize".into(), "usize::MAX".into())),
            Sampler::Replace => {}
        }
    }
    v
}

/// The body of `Oracle::sample` for the sources `used` of one level.
pub(super) fn draw_code(data: &[DataDef], tables: &[Option<Table>], used: &[usize]) -> String {
    let mut s = String::new();
    for &d in used {
        let def = &data[d];
        let salt = mix64(def.seed ^ 0x5eed_0000_0000_0001);
        let t = tables.get(d).and_then(Option::as_ref);
        let _ = writeln!(s, "        // `{}`: {:?}", def.name, def.sampler);
        let Some(t) = t else {
            let _ = writeln!(
                s,
                "        for k in 0..{b} {{ out.seeds{d}[k] = rng.next_u64() ^ {salt:#x}; }}\n        out.len{d} = {b};",
                b = def.batch
            );
            continue;
        };
        let (n, b) = (t.rows, capacity(def, Some(t)));
        match def.sampler {
            Sampler::Replace => {
                let _ = writeln!(
                    s,
                    "        for k in 0..{b} {{ out.rows{d}[k] = below(rng, {n}) as u32; }}"
                );
            }
            Sampler::Sequential => {
                let _ = writeln!(
                    s,
                    "        let start = if self.pos{d} >= {n} {{ 0 }} else {{ self.pos{d} }};\n        \
                     for k in 0..{b} {{ out.rows{d}[k] = ((start + k) % {n}) as u32; }}\n        \
                     self.pos{d} = (start + {b}) % {n};"
                );
            }
            Sampler::Shuffle => {
                let _ = writeln!(
                    s,
                    "        for c in 0..{b} {{\n            if self.pos{d} >= {n} {{\n                \
                     for k in (1..{n}usize).rev() {{\n                    let j = below(rng, k as u64 + 1) as usize;\n                    \
                     self.perm{d}.swap(k, j);\n                }}\n                self.pos{d} = 0;\n            }}\n            \
                     out.rows{d}[c] = self.perm{d}[self.pos{d}];\n            self.pos{d} += 1;\n        }}"
                );
            }
        }
        let _ = writeln!(s, "        out.len{d} = {b};");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::{column_code, decode_bits, table_bits, Code};

    /// A small deterministic generator (no dependency).
    fn lcg(s: &mut u64) -> u64 {
        *s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *s >> 33
    }

    /// Columns on a decimal grid get the smallest exact code, and every
    /// value decodes to the bits a float table would hold; off the grid, or
    /// too wide, they stay floats.
    #[test]
    fn grid_columns_are_coded_exactly_and_others_are_not() {
        let mut s = 7;
        for case in 0..400u64 {
            let scale = (case % 5) as u32;
            let span = [200, 60_000][(case / 5 % 2) as usize];
            let lo = (lcg(&mut s) % 5_000).cast_signed() - 2_500;
            let pow = f64::from(10u32.pow(scale));
            let col: Vec<f64> = (0..50)
                .map(|_| (lo + (lcg(&mut s) % span).cast_signed()) as f64 / pow)
                .collect();
            for f32 in [false, true] {
                match column_code(&col, f32) {
                    Code::Int {
                        ty,
                        offset,
                        scale: sc,
                    } => {
                        assert!(sc <= scale, "case {case}: scale {sc} > {scale}");
                        let p = f64::from(10u32.pow(sc));
                        let q: Vec<i64> = col.iter().map(|v| (v * p).round() as i64).collect();
                        let min = *q.iter().min().unwrap();
                        assert_eq!(i64::from(offset), min);
                        let range = q.iter().max().unwrap() - min;
                        assert_eq!(ty, if range <= 255 { "u8" } else { "u16" });
                        for (v, qv) in col.iter().zip(&q) {
                            assert_eq!(
                                decode_bits(qv - min, offset, sc, f32),
                                table_bits(*v, f32),
                                "case {case} f32 {f32}: {v}"
                            );
                        }
                    }
                    // Double rounding (decimal → f64 → f32) may differ from
                    // one correctly rounded division: then floats, never a
                    // wrong code. It cannot happen in f64 or at scale 0.
                    Code::Float => assert!(f32 && scale > 0, "case {case}: {col:?}"),
                }
            }
        }
        for f32 in [false, true] {
            assert_eq!(column_code(&[0.1, 1.0 / 3.0], f32), Code::Float);
            assert_eq!(column_code(&[0.0, 70_000.0], f32), Code::Float);
            assert_eq!(column_code(&[1.0, 1.0e-7], f32), Code::Float);
            assert_eq!(column_code(&[-0.0, 1.0], f32), Code::Float);
            assert_eq!(column_code(&[3.0e7, 3.0e7 + 2.0], f32), Code::Float);
            assert_eq!(
                column_code(&[-3.0, 2.0], f32),
                Code::Int {
                    ty: "u8",
                    offset: -3,
                    scale: 0
                }
            );
            assert_eq!(
                column_code(&[32.1, 4.25], f32),
                Code::Int {
                    ty: "u16",
                    offset: 425,
                    scale: 2
                }
            );
        }
    }
}
