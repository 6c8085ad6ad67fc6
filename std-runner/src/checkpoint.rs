//! Checkpoints of the whole run state, and what `bilevel run --resume DIR`
//! reads back.
//!
//! A run folder holds `checkpoint.bin`, rewritten at a cadence (every N
//! iterations) and at every stop (budget, breakdown, Ctrl-C, SIGTERM). It
//! holds everything later iterations depend on: the solver's whole state
//! ([`VisitState`]: iterates, momentum, auxiliary variables, scratch,
//! counters, schedules, warm-start flags), the generator's four words, the
//! oracle-call counters, the data samplers' row orders and positions, the
//! run loop's position, and the observer's (how many trace lines belong to
//! the run so far, the time spent, the log cadence).
//!
//! # Format (version 1)
//!
//! ```text
//! "BLVLCKPT"  u32 version  u32 header length  header (JSON)
//! u64 body length  body: entries
//! 32 bytes: SHA-256 of everything before
//! ```
//! An entry is `u8 kind, u16 name length, name (UTF-8), u64 count, data`
//! (kinds: 1 reals as `f64` bits, 2 one `f64`, 3 one `u64`, 4 one bool byte,
//! 5 `u64` array), little-endian throughout. Entries are named by section
//! (`solver/`, `rng/`, `counts/`, `sampler/K/`) and field, and restored in
//! the order the visitor walks them: a missing, extra, renamed or resized
//! field is an error naming it. The header names the spec (its SHA-256),
//! the solver and the resolved configuration; a checkpoint of another spec,
//! configuration, solver or `bilevel` version is refused, and so is a file
//! that is truncated or whose checksum does not match.
//!
//! The file is written atomically (a temporary sibling, synced, renamed,
//! then the folder synced), after the trace lines it counts were synced: a
//! `kill -9` or a power loss at any moment leaves the previous checkpoint or
//! the new one, whole, and a trace that holds at least its lines.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bilevel_core::state::{StateVisitor, VisitState};
use bilevel_core::Counted;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::output::{write_atomic, TraceRecord};
use crate::session::{Position, Resumed};
use crate::spec::RunConfig;

/// The checkpoint's file name in a run folder.
pub const FILE: &str = "checkpoint.bin";
/// The format version this build reads and writes.
pub const VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"BLVLCKPT";
/// Keys of `config.json` that a resumed run may change: its budgets, the
/// spec's path as typed (the spec's content is checked by its hash), the
/// pool size (results do not depend on it) and the trace copy's path.
pub const MUTABLE_KEYS: &[&str] = &[
    "iterations",
    "epochs",
    "oracle_calls",
    "spec",
    "threads",
    "log",
];

/// What a checkpoint is of and where the run was: its JSON header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// The `bilevel` version that wrote it.
    pub bilevel_version: String,
    /// SHA-256 of the spec's source.
    pub spec_sha256: String,
    /// The solver's registry name.
    pub solver: String,
    /// The resolved configuration (`config.json`) without [`MUTABLE_KEYS`].
    pub config: serde_json::Value,
    /// Where the run stood (its fields are the header's own in the JSON).
    #[serde(flatten)]
    pub position: Position,
}

/// One decoded entry.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Reals(Vec<f64>),
    F64(f64),
    U64(u64),
    Bool(bool),
    U64s(Vec<u64>),
}

impl Value {
    fn describe(&self) -> String {
        match self {
            Value::Reals(v) => format!("{} reals", v.len()),
            Value::F64(_) => "a real".into(),
            Value::U64(_) => "an integer".into(),
            Value::Bool(_) => "a flag".into(),
            Value::U64s(v) => format!("{} integers", v.len()),
        }
    }
}

/// A checkpoint read from disk and checked: the header and the entries.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Where it was read from.
    pub path: PathBuf,
    /// The header.
    pub header: Header,
    entries: Vec<(String, Value)>,
}

/// Encodes entries; a [`StateVisitor`] that saves.
#[derive(Debug, Default)]
pub struct Saver {
    body: Vec<u8>,
    prefix: String,
}

impl Saver {
    fn entry(&mut self, kind: u8, name: &str, count: u64) {
        let full = format!("{}{name}", self.prefix);
        self.body.push(kind);
        let len = u16::try_from(full.len()).unwrap_or(u16::MAX);
        self.body.extend_from_slice(&len.to_le_bytes());
        self.body
            .extend_from_slice(&full.as_bytes()[..usize::from(len)]);
        self.body.extend_from_slice(&count.to_le_bytes());
    }

    /// Saves `s` under the section `prefix` (e.g. `"solver/"`).
    pub fn section<S: VisitState<f64> + ?Sized>(&mut self, prefix: &str, s: &mut S) {
        prefix.clone_into(&mut self.prefix);
        s.visit_state(self);
    }

    /// Saves an array of integers under its full name.
    pub fn u64s(&mut self, name: &str, v: &[u64]) {
        self.prefix.clear();
        self.entry(5, name, v.len() as u64);
        for x in v {
            self.body.extend_from_slice(&x.to_le_bytes());
        }
    }
}

impl StateVisitor<f64> for Saver {
    fn reals(&mut self, name: &'static str, v: &mut [f64]) {
        self.entry(1, name, v.len() as u64);
        for x in v.iter() {
            self.body.extend_from_slice(&x.to_bits().to_le_bytes());
        }
    }
    fn f64(&mut self, name: &'static str, v: &mut f64) {
        self.entry(2, name, 1);
        self.body.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    fn u64(&mut self, name: &'static str, v: &mut u64) {
        self.entry(3, name, 1);
        self.body.extend_from_slice(&v.to_le_bytes());
    }
    fn bool(&mut self, name: &'static str, v: &mut bool) {
        self.entry(4, name, 1);
        self.body.push(u8::from(*v));
    }
}

/// The oracle state a checkpoint keeps beyond the solver and the generator:
/// call counters and data samplers.
pub trait OracleState {
    /// Saves the state.
    fn save_state(&mut self, _s: &mut Saver) {}
    /// Restores what [`OracleState::save_state`] saved.
    fn restore_state(&mut self, _r: &mut Restorer<'_>) -> Result<()> {
        Ok(())
    }
}

impl<O: OracleState> OracleState for Counted<O> {
    fn save_state(&mut self, s: &mut Saver) {
        s.section("counts/", self.counts_mut());
        self.inner_mut().save_state(s);
    }
    fn restore_state(&mut self, r: &mut Restorer<'_>) -> Result<()> {
        r.section("counts/", self.counts_mut())?;
        self.inner_mut().restore_state(r)
    }
}

impl<O: OracleState> OracleState for crate::watch::Watched<O> {
    fn save_state(&mut self, s: &mut Saver) {
        self.inner_mut().save_state(s);
    }
    fn restore_state(&mut self, r: &mut Restorer<'_>) -> Result<()> {
        self.inner_mut().restore_state(r)
    }
}

impl OracleState for bilevel_dsl::Compiled {
    fn save_state(&mut self, s: &mut Saver) {
        for (k, st) in self.samplers().iter().enumerate() {
            let (perm, pos) = st.parts();
            let perm: Vec<u64> = perm.iter().map(|&r| r as u64).collect();
            s.u64s(&format!("sampler/{k}/order"), &perm);
            s.u64s(&format!("sampler/{k}/position"), &[pos as u64]);
        }
    }
    fn restore_state(&mut self, r: &mut Restorer<'_>) -> Result<()> {
        for (k, st) in self.samplers_mut().iter_mut().enumerate() {
            let rows = st.parts().0.len();
            let order = r.u64s(&format!("sampler/{k}/order"))?;
            let pos = r.u64s(&format!("sampler/{k}/position"))?;
            let [pos] = pos[..] else {
                bail!("{}: sampler/{k}/position: expected one integer", r.path);
            };
            let order: Vec<usize> = order
                .iter()
                .map(|&x| usize::try_from(x).unwrap_or(usize::MAX))
                .collect();
            let pos = usize::try_from(pos).unwrap_or(usize::MAX);
            *st = bilevel_dsl::SamplerState::from_parts(rows, order, pos)
                .map_err(|e| anyhow::anyhow!("{}: data source {k}: {e}", r.path))?;
        }
        Ok(())
    }
}

/// Decodes entries in order into a state; a [`StateVisitor`] that restores.
/// The first mismatch is kept and reported by [`Restorer::section`].
pub struct Restorer<'a> {
    path: String,
    entries: std::slice::Iter<'a, (String, Value)>,
    prefix: String,
    error: Option<String>,
}

impl<'a> Restorer<'a> {
    /// A restorer over the entries of `c`, from the first.
    pub fn new(c: &'a Checkpoint) -> Self {
        Restorer {
            path: c.path.display().to_string(),
            entries: c.entries.iter(),
            prefix: String::new(),
            error: None,
        }
    }

    fn next(&mut self, name: &str) -> Option<&'a Value> {
        if self.error.is_some() {
            return None;
        }
        let full = format!("{}{name}", self.prefix);
        match self.entries.next() {
            Some((n, v)) if *n == full => Some(v),
            Some((n, _)) => {
                self.error = Some(format!(
                    "expected the field `{full}`, found `{n}`: the checkpoint is of another solver or layout"
                ));
                None
            }
            None => {
                self.error = Some(format!("the field `{full}` is missing"));
                None
            }
        }
    }

    fn mismatch(&mut self, name: &str, want: &str, found: &Value) {
        self.error = Some(format!(
            "the field `{}{name}` holds {}, this run needs {want}",
            self.prefix,
            found.describe()
        ));
    }

    /// Restores `s` from the section `prefix`.
    pub fn section<S: VisitState<f64> + ?Sized>(&mut self, prefix: &str, s: &mut S) -> Result<()> {
        prefix.clone_into(&mut self.prefix);
        s.visit_state(self);
        match self.error.take() {
            Some(e) => bail!("{}: {e}", self.path),
            None => Ok(()),
        }
    }

    /// Reads an array of integers saved by [`Saver::u64s`].
    pub fn u64s(&mut self, name: &str) -> Result<&'a [u64]> {
        self.prefix.clear();
        match self.next(name) {
            Some(Value::U64s(v)) => Ok(v),
            Some(other) => bail!(
                "{}: the field `{name}` holds {}, expected integers",
                self.path,
                other.describe()
            ),
            None => bail!("{}: {}", self.path, self.error.take().unwrap_or_default()),
        }
    }

    /// Checks that every entry was restored.
    pub fn finish(mut self) -> Result<()> {
        match self.entries.next() {
            Some((n, _)) => bail!(
                "{}: the field `{n}` is not part of this run's state",
                self.path
            ),
            None => Ok(()),
        }
    }
}

impl StateVisitor<f64> for Restorer<'_> {
    fn reals(&mut self, name: &'static str, v: &mut [f64]) {
        match self.next(name) {
            Some(Value::Reals(src)) if src.len() == v.len() => v.copy_from_slice(src),
            Some(other) => self.mismatch(name, &format!("{} reals", v.len()), other),
            None => {}
        }
    }
    fn f64(&mut self, name: &'static str, v: &mut f64) {
        match self.next(name) {
            Some(Value::F64(x)) => *v = *x,
            Some(other) => self.mismatch(name, "a real", other),
            None => {}
        }
    }
    fn u64(&mut self, name: &'static str, v: &mut u64) {
        match self.next(name) {
            Some(Value::U64(x)) => *v = *x,
            Some(other) => self.mismatch(name, "an integer", other),
            None => {}
        }
    }
    fn bool(&mut self, name: &'static str, v: &mut bool) {
        match self.next(name) {
            Some(Value::Bool(x)) => *v = *x,
            Some(other) => self.mismatch(name, "a flag", other),
            None => {}
        }
    }
}

/// Encodes a checkpoint file from a header and a saved body.
pub fn encode(header: &Header, saver: &Saver) -> Result<Vec<u8>> {
    let head = serde_json::to_vec(header).context("cannot encode the checkpoint header")?;
    let mut out = Vec::with_capacity(head.len() + saver.body.len() + 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&u32::try_from(head.len())?.to_le_bytes());
    out.extend_from_slice(&head);
    out.extend_from_slice(&(saver.body.len() as u64).to_le_bytes());
    out.extend_from_slice(&saver.body);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    Ok(out)
}

/// Writes `bytes` as `dir/checkpoint.bin` atomically and syncs the folder.
pub fn write(dir: &Path, bytes: &[u8]) -> Result<()> {
    crate::fault::abort_if_injected(dir, bytes)?;
    write_atomic(&dir.join(FILE), bytes)?;
    // The rename itself is durable once the folder is synced.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A bounds-checked reader over the file's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2)
            .map(|b| u16::from_le_bytes(b.try_into().unwrap_or([0; 2])))
    }
}

fn decode_entries(body: &[u8]) -> Option<Vec<(String, Value)>> {
    let mut c = Cursor {
        bytes: body,
        pos: 0,
    };
    let mut out = Vec::new();
    while c.pos < body.len() {
        let kind = c.take(1)?[0];
        let len = usize::from(c.u16()?);
        let name = std::str::from_utf8(c.take(len)?).ok()?.to_string();
        let count = usize::try_from(c.u64()?).ok()?;
        // Each element takes at least one byte: a count beyond the rest of
        // the body is corrupt (and no allocation follows a forged count).
        if count > body.len() - c.pos {
            return None;
        }
        let v = match kind {
            1 => Value::Reals(
                (0..count)
                    .map(|_| c.u64().map(f64::from_bits))
                    .collect::<Option<_>>()?,
            ),
            2 if count == 1 => Value::F64(f64::from_bits(c.u64()?)),
            3 if count == 1 => Value::U64(c.u64()?),
            4 if count == 1 => match c.take(1)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                _ => return None,
            },
            5 => Value::U64s((0..count).map(|_| c.u64()).collect::<Option<_>>()?),
            _ => return None,
        };
        out.push((name, v));
    }
    Some(out)
}

/// Reads and checks `dir/checkpoint.bin`: magic, version, length, checksum,
/// header. Every failure is an error that names the file and says what is
/// wrong; nothing here panics on any input.
pub fn read(dir: &Path) -> Result<Checkpoint> {
    let path = dir.join(FILE);
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "cannot read {}: {} holds no checkpoint to resume",
            path.display(),
            dir.display()
        )
    })?;
    decode(&path, &bytes)
}

/// [`read`] on bytes already in memory.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Checkpoint> {
    let p = path.display();
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        bail!("{p}: not a bilevel checkpoint");
    }
    let mut c = Cursor {
        bytes,
        pos: MAGIC.len(),
    };
    let version = c
        .u32()
        .with_context(|| format!("{p}: truncated checkpoint"))?;
    if version != VERSION {
        bail!("{p}: checkpoint format version {version}; this bilevel reads version {VERSION}");
    }
    if bytes.len() < 32 + c.pos {
        bail!("{p}: truncated checkpoint ({} bytes)", bytes.len());
    }
    let (content, sum) = bytes.split_at(bytes.len() - 32);
    let frame = || -> Option<(&[u8], &[u8])> {
        let mut c = Cursor {
            bytes: content,
            pos: c.pos,
        };
        let hl = usize::try_from(c.u32()?).ok()?;
        let head = c.take(hl)?;
        let bl = usize::try_from(c.u64()?).ok()?;
        let body = c.take(bl)?;
        (c.pos == content.len()).then_some((head, body))
    };
    let Some((head, body)) = frame() else {
        bail!(
            "{p}: truncated or corrupt checkpoint: its lengths do not add up to its {} bytes",
            bytes.len()
        );
    };
    if Sha256::digest(content).as_slice() != sum {
        bail!("{p}: corrupt checkpoint: its SHA-256 checksum does not match its content");
    }
    let header: Header =
        serde_json::from_slice(head).with_context(|| format!("{p}: corrupt checkpoint header"))?;
    let entries = decode_entries(body).with_context(|| format!("{p}: corrupt checkpoint body"))?;
    Ok(Checkpoint {
        path: path.to_path_buf(),
        header,
        entries,
    })
}

/// The part of a resolved configuration (`config.json`) that a checkpoint
/// must match: everything but [`MUTABLE_KEYS`].
pub fn identity(config: &serde_json::Value) -> serde_json::Value {
    let mut c = config.clone();
    if let Some(m) = c.as_object_mut() {
        for k in MUTABLE_KEYS {
            m.remove(*k);
        }
    }
    c
}

impl Checkpoint {
    /// Refuses a checkpoint of another `bilevel` version, spec, solver or
    /// configuration than this run's, naming what differs.
    pub fn check_matches(
        &self,
        spec_sha256: &str,
        solver: &str,
        config: &serde_json::Value,
    ) -> Result<()> {
        let h = &self.header;
        let p = self.path.display();
        let here = env!("CARGO_PKG_VERSION");
        if h.bilevel_version != here {
            bail!(
                "{p} was written by bilevel {}, this is {here}: its state may not give the same bits",
                h.bilevel_version
            );
        }
        if h.spec_sha256 != spec_sha256 {
            bail!("{p} is of another spec (SHA-256 {}, this spec's is {spec_sha256}): the spec changed since the run started", h.spec_sha256);
        }
        if h.solver != solver {
            bail!("{p} is of a run of `{}`, not `{solver}`", h.solver);
        }
        let want = identity(config);
        if h.config != want {
            let diff = first_difference(&h.config, &want, "");
            bail!("{p} is of another configuration: {diff}");
        }
        Ok(())
    }
}

/// The first key path at which two JSON values differ, with both values.
pub(crate) fn first_difference(
    saved: &serde_json::Value,
    now: &serde_json::Value,
    path: &str,
) -> String {
    use serde_json::Value as J;
    if let (J::Object(a), J::Object(b)) = (saved, now) {
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let sub = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match (a.get(k), b.get(k)) {
                (Some(x), Some(y)) if x == y => {}
                (Some(x), Some(y)) => return first_difference(x, y, &sub),
                (Some(x), None) => return format!("`{sub}` was {x}, this run has none"),
                (None, Some(y)) => {
                    return format!("`{sub}` is {y} in this run, the checkpoint has none")
                }
                (None, None) => {}
            }
        }
    }
    format!("`{path}` was {saved} at the checkpoint, this run has {now}")
}

/// The settings of a run resumed in `dir`, from its `config.json`, with
/// what `cfg` gives on the command line on top; and the evaluation cadence
/// to keep.
pub fn resume_config(cfg: &RunConfig, dir: &Path) -> Result<(RunConfig, u64)> {
    let path = dir.join("config.json");
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "cannot read {}: {} is not a run folder to resume",
            path.display(),
            dir.display()
        )
    })?;
    let c: serde_json::Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a run configuration", path.display()))?;
    let field = |k: &str| {
        c.get(k)
            .with_context(|| format!("{}: no `{k}`", path.display()))
    };
    let spec = if cfg.spec.as_os_str().is_empty() {
        let s = field("spec")?
            .as_str()
            .with_context(|| format!("{}: `spec` is not a path", path.display()))?;
        let p = PathBuf::from(s);
        if !p.exists() {
            bail!(
                "cannot find {s}, the spec of the run in {} (paths are relative to the folder the run started in): give it, as in `bilevel run SPEC --resume {}`",
                dir.display(),
                dir.display()
            );
        }
        p
    } else {
        cfg.spec.clone()
    };
    let algorithm = field("algorithm")?
        .as_str()
        .with_context(|| format!("{}: `algorithm` is not a name", path.display()))?;
    if let Some(a) = &cfg.algorithm {
        let same = bilevel_core::registry::find(a).is_some_and(|i| i.name == algorithm);
        if !same {
            bail!(
                "{} holds a run of `{algorithm}`, not `{a}`: resume it without --algorithm, or start a new run with --out",
                dir.display()
            );
        }
    }
    let seed = field("seed")?
        .as_u64()
        .with_context(|| format!("{}: `seed` is not an integer", path.display()))?;
    let eval_every = field("eval_every")?
        .as_u64()
        .with_context(|| format!("{}: `eval_every` is not an integer", path.display()))?;
    let mut set: Vec<String> = Vec::new();
    // A key the command line sets is not repeated from the record: the
    // resolved configuration then differs (or not) from the checkpoint's,
    // which `Checkpoint::check_matches` reports by name.
    let given: Vec<&str> = cfg
        .set
        .iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
        .map(|k| k.rsplit_once(':').map_or(k, |(_, k)| k).trim())
        .collect();
    if let Some(h) = c.get("hyperparameters").and_then(|h| h.as_object()) {
        for (k, v) in h.iter().filter(|(k, _)| !given.contains(&k.as_str())) {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            set.push(format!("{k}={v}"));
        }
    }
    set.extend(cfg.set.iter().cloned());
    let budget_given = cfg.iterations.is_some() || cfg.epochs.is_some();
    let (iterations, epochs) = if budget_given {
        (cfg.iterations, cfg.epochs)
    } else {
        (
            c.get("iterations").and_then(serde_json::Value::as_u64),
            c.get("epochs").and_then(serde_json::Value::as_u64),
        )
    };
    let out = RunConfig {
        spec,
        algorithm: Some(
            cfg.algorithm
                .clone()
                .unwrap_or_else(|| algorithm.to_string()),
        ),
        set,
        seed: Some(cfg.seed.unwrap_or(seed)),
        iterations,
        epochs,
        out: Some(dir.to_path_buf()),
        ..cfg.clone()
    };
    Ok((out, eval_every))
}

/// The first `n` whole lines of the run's trace (`trace.jsonl.part` if
/// there is one, else `trace.jsonl`), as bytes and parsed.
fn kept_trace(dir: &Path, n: u64, iter: u64) -> Result<(Vec<u8>, Vec<TraceRecord>)> {
    let part = dir.join("trace.jsonl.part");
    let path = if part.exists() {
        part
    } else {
        dir.join("trace.jsonl")
    };
    let text = std::fs::read(&path)
        .with_context(|| format!("cannot read {} to continue it", path.display()))?;
    let mut kept = Vec::new();
    let mut records = Vec::new();
    let mut rest = &text[..];
    while (records.len() as u64) < n {
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            bail!(
                "{} holds {} whole lines, the checkpoint counts {n}: the trace is not this run's",
                path.display(),
                records.len()
            );
        };
        let line = &rest[..=end];
        let rec: TraceRecord = serde_json::from_slice(line).with_context(|| {
            format!(
                "{}:{}: not a trace record",
                path.display(),
                records.len() + 1
            )
        })?;
        if rec.iter > iter {
            bail!(
                "{}:{}: iteration {} is past the checkpoint's {iter}: the trace is not this run's",
                path.display(),
                records.len() + 1,
                rec.iter
            );
        }
        kept.extend_from_slice(line);
        records.push(rec);
        rest = &rest[end + 1..];
    }
    Ok((kept, records))
}

/// Restores the solver, the oracle (counters, samplers) and the generator
/// from `c`, and prepares the run folder: the trace cut to the lines the
/// checkpoint counts (atomically), the files of the stopped run's end
/// (`trace.jsonl`, `summary.json`, `expect.json`) removed.
pub fn restore<S, O, R>(
    c: &Checkpoint,
    dir: &Path,
    solver: &mut S,
    oracle: &mut O,
    rng: &mut R,
) -> Result<Resumed>
where
    S: VisitState<f64> + bilevel_core::SolverState<f64>,
    O: OracleState,
    R: VisitState<f64>,
{
    let mut r = Restorer::new(c);
    r.section("solver/", solver)?;
    r.section("rng/", rng)?;
    oracle.restore_state(&mut r)?;
    r.finish()?;
    let h = &c.header;
    if solver.iter() != h.position.iter {
        bail!(
            "{}: the solver's state is at iteration {}, the header says {}",
            c.path.display(),
            solver.iter(),
            h.position.iter
        );
    }
    let (kept, records) = kept_trace(dir, h.position.trace_lines, h.position.iter)?;
    write_atomic(&dir.join("trace.jsonl.part"), &kept)?;
    for f in ["trace.jsonl", "summary.json", "expect.json"] {
        match std::fs::remove_file(dir.join(f)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", dir.join(f).display()));
            }
            _ => {}
        }
    }
    Ok(Resumed {
        kept,
        records,
        position: h.position.clone(),
    })
}

/// Saves the run's state at `pos` as `dir/checkpoint.bin`.
pub fn save<S, O, R>(
    dir: &Path,
    spec_sha256: &str,
    identity: &serde_json::Value,
    pos: &Position,
    solver: &mut S,
    oracle: &mut O,
    rng: &mut R,
) -> Result<()>
where
    S: VisitState<f64> + bilevel_core::solver::Solver<f64, O>,
    O: OracleState + bilevel_core::Oracle<f64>,
    R: VisitState<f64>,
{
    let mut s = Saver::default();
    s.section("solver/", solver);
    s.section("rng/", rng);
    oracle.save_state(&mut s);
    let header = Header {
        bilevel_version: env!("CARGO_PKG_VERSION").to_string(),
        spec_sha256: spec_sha256.to_string(),
        solver: solver.name().to_string(),
        config: identity.clone(),
        position: pos.clone(),
    };
    write(dir, &encode(&header, &s)?)?;
    if pos.stop.is_some() {
        crate::fault::signal_if_injected()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            bilevel_version: env!("CARGO_PKG_VERSION").into(),
            spec_sha256: "ab".into(),
            solver: "soba".into(),
            config: serde_json::json!({"algorithm": "soba", "seed": 1, "hyperparameters": {"eta": 0.1}}),
            position: Position {
                iter: 7,
                start_iter: 0,
                trace_lines: 2,
                elapsed_s: 0.5,
                last_logged: 0,
                stop: None,
                pending_eval: false,
            },
        }
    }

    struct Two {
        a: Vec<f64>,
        n: u64,
        f: f64,
        b: bool,
    }
    impl VisitState<f64> for Two {
        fn visit_state(&mut self, v: &mut dyn StateVisitor<f64>) {
            v.reals("a", &mut self.a);
            v.u64("n", &mut self.n);
            v.f64("f", &mut self.f);
            v.bool("b", &mut self.b);
        }
    }

    fn sample() -> (Vec<u8>, Two) {
        let mut t = Two {
            a: vec![1.5, f64::NAN, -0.0, f64::INFINITY],
            n: u64::MAX,
            f: 0.1 + 0.2,
            b: true,
        };
        let mut s = Saver::default();
        s.section("solver/", &mut t);
        s.u64s("sampler/0/order", &[2, 0, 1]);
        (encode(&header(), &s).unwrap(), t)
    }

    #[test]
    fn a_checkpoint_round_trips_every_bit() {
        let (bytes, t) = sample();
        let c = decode(Path::new("c.bin"), &bytes).unwrap();
        assert_eq!(c.header, header());
        let mut u = Two {
            a: vec![0.0; 4],
            n: 0,
            f: 0.0,
            b: false,
        };
        let mut r = Restorer::new(&c);
        r.section("solver/", &mut u).unwrap();
        assert_eq!(r.u64s("sampler/0/order").unwrap(), &[2, 0, 1]);
        r.finish().unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&u.a), bits(&t.a));
        assert_eq!((u.n, u.f.to_bits(), u.b), (t.n, t.f.to_bits(), t.b));
    }

    /// Every truncation, and every single-byte change, of a valid file is
    /// refused with an error (never a panic, never accepted).
    #[test]
    fn truncated_or_altered_files_are_errors() {
        let (bytes, _) = sample();
        for n in 0..bytes.len() {
            let e = decode(Path::new("c.bin"), &bytes[..n]).unwrap_err();
            let msg = format!("{e:#}");
            assert!(msg.starts_with("c.bin: "), "{n}: {msg}");
        }
        for i in 0..bytes.len() {
            for flip in [0x01_u8, 0x80] {
                let mut b = bytes.clone();
                b[i] ^= flip;
                let e = decode(Path::new("c.bin"), &b).unwrap_err();
                let msg = format!("{e:#}");
                assert!(msg.starts_with("c.bin: "), "{i}: {msg}");
            }
        }
    }

    #[test]
    fn a_state_of_another_layout_is_refused_by_name() {
        let (bytes, _) = sample();
        let c = decode(Path::new("c.bin"), &bytes).unwrap();
        let mut short = Two {
            a: vec![0.0; 3],
            n: 0,
            f: 0.0,
            b: false,
        };
        let e = Restorer::new(&c)
            .section("solver/", &mut short)
            .unwrap_err();
        assert!(
            format!("{e}").contains("`solver/a` holds 4 reals, this run needs 3"),
            "{e}"
        );
        let e = Restorer::new(&c).section("other/", &mut short).unwrap_err();
        assert!(
            format!("{e}").contains("expected the field `other/a`"),
            "{e}"
        );
        let mut r = Restorer::new(&c);
        let mut ok = Two {
            a: vec![0.0; 4],
            n: 0,
            f: 0.0,
            b: false,
        };
        r.section("solver/", &mut ok).unwrap();
        let e = r.finish().unwrap_err();
        assert!(
            format!("{e}").contains("`sampler/0/order` is not part"),
            "{e}"
        );
    }

    #[test]
    fn foreign_checkpoints_name_what_differs() {
        let (bytes, _) = sample();
        let c = decode(Path::new("c.bin"), &bytes).unwrap();
        let cfg = serde_json::json!({"algorithm": "soba", "seed": 1, "hyperparameters": {"eta": 0.1}, "iterations": 5});
        c.check_matches("ab", "soba", &cfg).unwrap();
        let e = c.check_matches("cd", "soba", &cfg).unwrap_err();
        assert!(format!("{e}").contains("another spec"), "{e}");
        let e = c.check_matches("ab", "slip", &cfg).unwrap_err();
        assert!(format!("{e}").contains("not `slip`"), "{e}");
        let other =
            serde_json::json!({"algorithm": "soba", "seed": 1, "hyperparameters": {"eta": 0.2}});
        let e = c.check_matches("ab", "soba", &other).unwrap_err();
        assert!(
            format!("{e}").contains("`hyperparameters.eta` was 0.1"),
            "{e}"
        );
        let mut h = header();
        h.bilevel_version = "0.0.0-old".into();
        let old = encode(&h, &Saver::default()).unwrap();
        let e = decode(Path::new("c.bin"), &old)
            .unwrap()
            .check_matches("ab", "soba", &cfg)
            .unwrap_err();
        assert!(
            format!("{e}").contains("written by bilevel 0.0.0-old"),
            "{e}"
        );
        let mut v2 = bytes.clone();
        v2[8] = 2;
        let e = decode(Path::new("c.bin"), &v2).unwrap_err();
        assert!(format!("{e}").contains("version 2"), "{e}");
    }

    #[test]
    fn sampler_states_must_be_permutations_of_the_rows() {
        use bilevel_dsl::SamplerState;
        let fresh = SamplerState::new(3);
        let (perm, pos) = fresh.parts();
        assert_eq!(
            SamplerState::from_parts(3, perm.to_vec(), pos).unwrap(),
            fresh
        );
        assert!(SamplerState::from_parts(3, vec![2, 0, 1], 3).is_ok());
        assert!(SamplerState::from_parts(0, vec![], usize::MAX).is_ok());
        for (perm, pos) in [
            (vec![0, 1], 0),
            (vec![0, 1, 1], 0),
            (vec![0, 1, 3], 0),
            (vec![0, 1, 2], 4),
        ] {
            assert!(
                SamplerState::from_parts(3, perm.clone(), pos).is_err(),
                "{perm:?} {pos}"
            );
        }
    }
}
