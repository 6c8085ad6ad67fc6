//! Dead statements of a generated sweep function (docs/decisions.md 121):
//! a statement that writes only a sweep buffer no kept statement reads is
//! left out, e.g. ∇ₓg's adjoints in `g_grad_hvp_jvp` (whose outputs are
//! ∇ᵧg, the HVP and the cross product) and the values only they read. The
//! liveness is flow-insensitive (a buffer read anywhere by a kept line is
//! live), so it over-approximates and removes nothing an output depends on;
//! outputs and return values are untouched, so the bits are the same.

use std::collections::BTreeSet;

/// Is `w` a sweep buffer's name (`f_v3`, `g_1_a2`, `g_x4`)?
fn is_buffer(w: &str) -> bool {
    matches!(
        super::zeros::buffer_kind(w),
        Some('v' | 't' | 'a' | 'd' | 'x')
    )
}

/// The buffer names in `s`.
fn buffers(s: &str) -> Vec<&str> {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| is_buffer(w))
        .collect()
}

/// The buffer a removable line writes, or `None` when the line must stay:
/// `B[…] = …;`, `B[…] += …;`, `B[…] -= …;`, `B = [Z; n];`,
/// `gemm(…, &mut B[..]);`, and `{ let …; B[…] += …; }`.
fn target(line: &str) -> Option<&str> {
    let t = line.trim();
    let t = t
        .strip_prefix("{ ")
        .and_then(|x| x.strip_suffix(" }"))
        .map_or(t, |inner| {
            // `{ let …; stmt; }`: the last statement is the write.
            inner.rsplit("; ").next().unwrap_or(inner)
        });
    // One statement, writing one buffer (a call writing through `&mut` may
    // write a second one: kept, except gemm, which writes only its last).
    let mut depth = 0i32;
    let semis = t
        .chars()
        .filter(|&c| {
            match c {
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                _ => {}
            }
            c == ';' && depth == 0
        })
        .count();
    if semis != 1 {
        return None;
    }
    if let Some(rest) = t.strip_prefix("gemm(") {
        let at = rest.rfind("&mut ")?;
        let name = rest[at + 5..].split('[').next()?;
        return is_buffer(name).then_some(name);
    }
    if !t.ends_with(';') || t.contains("&mut ") {
        return None;
    }
    let name_end = t.find(['[', ' '])?;
    let name = &t[..name_end];
    if !is_buffer(name) {
        return None;
    }
    let rest = &t[name_end..];
    let after_index = if rest.starts_with('[') {
        let close = rest.find(']')?;
        &rest[close + 1..]
    } else if rest.starts_with(" = [") {
        rest
    } else {
        return None;
    };
    [" = ", " += ", " -= "]
        .iter()
        .any(|op| after_index.starts_with(op))
        .then_some(name)
}

/// `body` (the lines of one sweep function) without its dead statements.
pub(super) fn prune(body: &str) -> String {
    let lines: Vec<&str> = body.lines().collect();
    let targets: Vec<Option<&str>> = lines.iter().map(|l| target(l)).collect();
    let mut live: BTreeSet<&str> = BTreeSet::new();
    // Lines that are not removable writes read what they read.
    for (l, t) in lines.iter().zip(&targets) {
        if t.is_none() && !l.trim_start().starts_with("//") {
            live.extend(buffers(l));
        }
    }
    // A write to a live buffer makes what it reads live, to a fixpoint.
    loop {
        let before = live.len();
        for (l, t) in lines.iter().zip(&targets) {
            if let Some(t) = t {
                if live.contains(t) {
                    live.extend(buffers(l));
                }
            }
        }
        if live.len() == before {
            break;
        }
    }
    let mut kept: Vec<&str> = lines
        .iter()
        .zip(&targets)
        .filter(|(_, t)| t.is_none_or(|t| live.contains(t)))
        .map(|(l, _)| *l)
        .collect();
    // Blocks emptied by the removal (`for … {` directly followed by `}`).
    let mut i = 0;
    while i + 1 < kept.len() {
        let head = kept[i].trim_end();
        let lead = head.trim_start();
        let opens = head.ends_with('{') && !lead.starts_with("//") && !lead.starts_with('}');
        if opens && kept[i + 1].trim() == "}" {
            kept.drain(i..i + 2);
            i = i.saturating_sub(1);
        } else {
            i += 1;
        }
    }
    let mut out = String::with_capacity(body.len());
    for l in kept {
        out.push_str(l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::prune;

    #[test]
    fn writes_nobody_reads_are_removed_and_their_inputs_with_them() {
        let body = "    g_v1[0] = x[0] * 2.0;\n    g_v2[0] = g_v1[0] + 1.0;\n    g_a3 = [Z; 1];\n    g_a3[0] += g_v2[0];\n    gemm(1.0, &C[..], (1, 1), false, &g_v1[..], (1, 1), false, &mut g_x4[..]);\n    gy[0] += g_v1[0];\n    T::NAN\n";
        let p = prune(body);
        assert!(p.contains("g_v1[0] = x[0] * 2.0;"));
        assert!(p.contains("gy[0] += g_v1[0];"));
        assert!(!p.contains("g_v2"), "{p}");
        assert!(!p.contains("g_a3"), "{p}");
        assert!(!p.contains("gemm"), "{p}");
        // A loop left empty goes too.
        let body = "    for k in 0..3 {\n        g_a1[k] += v[k];\n    }\n    hv[0] += v[0];\n";
        assert_eq!(prune(body), "    hv[0] += v[0];\n");
        // A buffer read inside a loop keeps its writes.
        let body = "    for k in 0..3 {\n        g_t1[k] = v[k];\n    }\n    hv[0] += g_t1[0];\n";
        assert_eq!(prune(body), body);
    }
}
