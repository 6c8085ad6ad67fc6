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

/// Per data source: (has labels, has weights) for tables, `None` for
/// synthetic sources.
pub(super) fn table_flags(tables: &[Option<Table>]) -> Vec<Option<(bool, bool)>> {
    tables
        .iter()
        .map(|t| {
            t.as_ref()
                .map(|t| (!t.labels.is_empty(), !t.weights.is_empty()))
        })
        .collect()
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

/// The tables of the used sources, as statics.
pub(super) fn tables(
    out: &mut String,
    data: &[DataDef],
    tables: &[Option<Table>],
    used: &[usize],
    f32: bool,
) {
    for &d in used {
        let Some(Some(t)) = tables.get(d) else {
            continue;
        };
        let _ = writeln!(
            out,
            "// data `{}`: {} rows x {} features of {} (compiled into the image)",
            data[d].name, t.rows, t.features, t.file
        );
        static_table(out, &format!("D{d}_X"), &t.x, f32);
        if !t.labels.is_empty() {
            static_table(out, &format!("D{d}_L"), &t.labels, f32);
        }
        if !t.weights.is_empty() {
            static_table(out, &format!("D{d}_W"), &t.weights, f32);
        }
    }
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
        let cap = capacity(&data[d], t);
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
            let _ = writeln!(
                set,
                "            {d} => {{ let n = items.len().min({cap}); for k in 0..n {{ self.rows{d}[k] = items[k] as u32; }} self.len{d} = n; true }}"
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
         /// objectives do not use.\n    #[allow(unused_variables)]\n    pub fn set(&mut self, source: usize, items: &[u64]) -> bool {{\n        match source {{\n{set}            _ => false,\n        }}\n    }}\n}}\n\n\
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
