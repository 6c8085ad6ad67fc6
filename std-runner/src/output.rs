//! Result files: atomic writes, the JSONL trace and the run summary.
//!
//! Every file a reader may open is written atomically: whole files go to a
//! temporary sibling and are renamed into place; the trace is appended line by
//! line (each line written and flushed whole) to `trace.jsonl.part`, which is
//! renamed to `trace.jsonl` when the run ends. A run killed outright leaves
//! the `.part` file with every complete line, which [`read_trace`] accepts.
//! A write that fails (a full disk) is cut back to the last complete line,
//! and a trace with a failed write is never renamed: the `.part` file stays.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bilevel_core::Counts;
use serde::{Deserialize, Serialize};

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, synced, then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        crate::iofault::write_all(&mut f, bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write()
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
        .with_context(|| format!("cannot write {}", path.display()))
}

/// JSON has no NaN or infinity: non-finite numbers are written as the
/// strings `"nan"`, `"inf"` and `"-inf"` and read back as the same values, so
/// a run that broke down still has a valid, complete trace.
pub mod nonfinite {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Num {
        F(f64),
        S(String),
    }

    fn enc(v: f64) -> Num {
        if v.is_finite() {
            Num::F(v)
        } else if v.is_nan() {
            Num::S("nan".into())
        } else if v > 0.0 {
            Num::S("inf".into())
        } else {
            Num::S("-inf".into())
        }
    }

    fn dec<E: serde::de::Error>(n: Num) -> Result<f64, E> {
        match n {
            Num::F(v) => Ok(v),
            Num::S(s) => match s.as_str() {
                "nan" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                _ => Err(E::custom(format!(
                    "expected a number, \"nan\", \"inf\" or \"-inf\", found \"{s}\""
                ))),
            },
        }
    }

    /// Serialises a map of numbers.
    pub fn serialize_map<S: Serializer>(
        m: &BTreeMap<String, f64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let m: BTreeMap<&String, Num> = m.iter().map(|(k, &v)| (k, enc(v))).collect();
        m.serialize(s)
    }

    /// Deserialises a map of numbers.
    pub fn deserialize_map<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, f64>, D::Error> {
        let m = BTreeMap::<String, Num>::deserialize(d)?;
        m.into_iter().map(|(k, v)| dec(v).map(|v| (k, v))).collect()
    }

    /// Serialises a vector of numbers.
    pub fn serialize_vec<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<Num> = v.iter().map(|&x| enc(x)).collect();
        v.serialize(s)
    }

    /// Deserialises a vector of numbers.
    pub fn deserialize_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<Num>::deserialize(d)?
            .into_iter()
            .map(dec::<D::Error>)
            .collect()
    }
}

/// Oracle calls by kind, as stored in traces and summaries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallsRecord {
    /// ∇ₓF calls.
    pub grad_x_f: u64,
    /// ∇ᵧF calls.
    pub grad_y_f: u64,
    /// ∇ᵧG calls.
    pub grad_y_g: u64,
    /// ∇ₓG calls.
    pub grad_x_g: u64,
    /// ∇²ᵧᵧG·v calls.
    pub hvp_yy: u64,
    /// ∇²ₓᵧG·v calls.
    pub jvp_xy: u64,
}

impl From<&Counts> for CallsRecord {
    fn from(c: &Counts) -> Self {
        CallsRecord {
            grad_x_f: c.grad_x_f,
            grad_y_f: c.grad_y_f,
            grad_y_g: c.grad_y_g,
            grad_x_g: c.grad_x_g,
            hvp_yy: c.hvp_yy,
            jvp_xy: c.jvp_xy,
        }
    }
}

impl CallsRecord {
    /// All gradient and product calls.
    pub fn total(&self) -> u64 {
        self.grad_x_f + self.grad_y_f + self.grad_y_g + self.grad_x_g + self.hvp_yy + self.jvp_xy
    }
}

/// One line of `trace.jsonl`: the state of a run at one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceRecord {
    /// Outer iterations completed.
    pub iter: u64,
    /// Passes over the lower-level training data (0 when the problem has no
    /// finite data set).
    pub epoch: f64,
    /// Gradient and product calls so far, all kinds.
    pub oracle_calls: u64,
    /// Calls by kind.
    pub calls: CallsRecord,
    /// Seconds since the start of the run (the only field that differs
    /// between two runs with the same spec and seed).
    pub wall_s: f64,
    /// Metric values by name (losses, accuracies, distances to a known
    /// solution); non-finite values are stored as strings ([`nonfinite`]).
    #[serde(
        serialize_with = "nonfinite::serialize_map",
        deserialize_with = "nonfinite::deserialize_map"
    )]
    pub metrics: BTreeMap<String, f64>,
}

/// Appends trace records to `<dir>/trace.jsonl.part` and renames the file to
/// `trace.jsonl` on [`TraceWriter::finish`].
#[derive(Debug)]
pub struct TraceWriter {
    file: File,
    part: PathBuf,
    done: PathBuf,
    /// Bytes of complete lines written.
    len: u64,
    /// A write failed: the file is not renamed.
    failed: bool,
}

impl TraceWriter {
    /// Creates (truncating) the trace file of a run folder.
    pub fn create(dir: &Path) -> Result<Self> {
        let part = dir.join("trace.jsonl.part");
        let done = dir.join("trace.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&part)
            .with_context(|| format!("cannot create {}", part.display()))?;
        Ok(TraceWriter {
            file,
            part,
            done,
            len: 0,
            failed: false,
        })
    }

    /// Writes one record as one line, flushed to the operating system. A
    /// failed write is cut back to the end of the last complete line, and no
    /// more lines are written.
    pub fn append(&mut self, rec: &TraceRecord) -> Result<()> {
        if self.failed {
            anyhow::bail!("{}: an earlier write failed", self.part.display());
        }
        let mut line = serde_json::to_vec(rec).context("cannot encode a trace record")?;
        line.push(b'\n');
        match crate::iofault::write_all(&mut self.file, &line).and_then(|()| self.file.flush()) {
            Ok(()) => {
                self.len += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                // Shrinking needs no space; the file is opened for writing
                // only, so the next write (there is none) would go at the end.
                let cut = self.file.set_len(self.len);
                let kept = match cut {
                    Ok(()) => format!("it keeps its {} complete lines' bytes", self.len),
                    Err(c) => format!("and cutting it back to its complete lines failed: {c}"),
                };
                Err(anyhow::Error::new(e)
                    .context(format!("cannot write {} ({kept})", self.part.display())))
            }
        }
    }

    /// Syncs the file and renames it to `trace.jsonl`; after a failed write,
    /// an error, and the `.part` file stays.
    pub fn finish(self) -> Result<PathBuf> {
        if self.failed {
            anyhow::bail!(
                "{} is incomplete (a write failed): not renamed",
                self.part.display()
            );
        }
        self.file
            .sync_all()
            .with_context(|| format!("cannot sync {}", self.part.display()))?;
        fs::rename(&self.part, &self.done)
            .with_context(|| format!("cannot rename {}", self.part.display()))?;
        Ok(self.done)
    }
}

/// Reads a trace (`trace.jsonl`, or the `.part` file of a run that was
/// killed: a truncated last line is dropped). Errors name the file and line.
pub fn read_trace(path: &Path) -> Result<Vec<TraceRecord>> {
    let f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let lines: Vec<String> = BufReader::new(f)
        .lines()
        .collect::<io::Result<_>>()
        .with_context(|| format!("cannot read {}", path.display()))?;
    let partial = path.extension().is_some_and(|e| e == "part");
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<TraceRecord>(line) {
            Ok(r) => out.push(r),
            Err(_) if partial && i + 1 == lines.len() => break,
            Err(e) => anyhow::bail!("{}:{}: not a trace record: {e}", path.display(), i + 1),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(iter: u64) -> TraceRecord {
        TraceRecord {
            iter,
            epoch: 0.5,
            oracle_calls: 5 * iter,
            calls: CallsRecord::default(),
            wall_s: 0.0,
            metrics: BTreeMap::from([("upper_loss".to_string(), 1.0 / (1.0 + iter as f64))]),
        }
    }

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("summary.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let err = write_atomic(&dir.path().join("missing/x.json"), b"").unwrap_err();
        assert!(format!("{err:#}").contains("missing/x.json"), "{err:#}");
    }

    #[test]
    fn trace_round_trips_and_survives_a_kill() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = TraceWriter::create(dir.path()).unwrap();
        for i in 0..3 {
            w.append(&rec(i)).unwrap();
        }
        // Killed here: the .part file holds every complete line, and a line
        // cut in the middle of a write is dropped.
        let part = dir.path().join("trace.jsonl.part");
        let mut f = OpenOptions::new().append(true).open(&part).unwrap();
        f.write_all(b"{\"iter\": 3, \"ep").unwrap();
        assert_eq!(read_trace(&part).unwrap(), vec![rec(0), rec(1), rec(2)]);
        drop(f);

        let mut w = TraceWriter::create(dir.path()).unwrap();
        w.append(&rec(7)).unwrap();
        let done = w.finish().unwrap();
        assert!(!part.exists());
        assert_eq!(read_trace(&done).unwrap(), vec![rec(7)]);
    }

    #[test]
    fn non_finite_metrics_round_trip_as_strings() {
        let mut r = rec(1);
        r.metrics.insert("a".into(), f64::NAN);
        r.metrics.insert("b".into(), f64::NEG_INFINITY);
        r.metrics.insert("c".into(), 0.1 + 0.2);
        let line = serde_json::to_string(&r).unwrap();
        assert!(
            line.contains("\"a\":\"nan\"") && line.contains("\"b\":\"-inf\""),
            "{line}"
        );
        let back: TraceRecord = serde_json::from_str(&line).unwrap();
        assert!(back.metrics["a"].is_nan());
        assert!(back.metrics["b"].is_infinite() && back.metrics["b"] < 0.0);
        // Exact round trip of every bit.
        assert_eq!(back.metrics["c"].to_bits(), (0.1_f64 + 0.2).to_bits());
        assert!(serde_json::from_str::<TraceRecord>(&line.replace("\"nan\"", "\"many\"")).is_err());
    }

    #[test]
    fn a_broken_finished_trace_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("trace.jsonl");
        fs::write(
            &p,
            format!("{}\nnot json\n", serde_json::to_string(&rec(0)).unwrap()),
        )
        .unwrap();
        let err = read_trace(&p).unwrap_err().to_string();
        assert!(err.contains("trace.jsonl:2:"), "{err}");
    }
}
