//! A run folder belongs to one run.
//!
//! A run (or a comparison) takes its folder with [`claim`]: it creates the
//! folder, takes an exclusive `flock` on the folder's lock file
//! `.bilevel.lock` (which records the owner's pid), and checks what the folder
//! holds. The lock is the kernel's: it is released when the owner exits, even
//! after `kill -9`, so a lock is never stale; the file itself stays as the mark
//! of a run folder (deleting it would let two runs lock two different files).
//!
//! What a run may find in its folder depends on [`FolderMode`]:
//! - [`FolderMode::New`] (the default): nothing but the lock file. Any other
//!   file — an earlier run's trace, a user's notes — is refused, so no run
//!   writes beside another's files and `bilevel plot` never mixes two runs.
//! - [`FolderMode::Force`] (`--force`): in a run folder (one that holds the
//!   lock file, or an earlier version's `config.json`), the run files of the
//!   earlier run ([`is_run_file`]) are removed first; other files are kept.
//!   A folder that is not a run folder is refused even with `--force`.
//! - [`FolderMode::Resume`] (`--resume`): the folder must hold a run; nothing
//!   is removed (the resumed run's checkpoint decides what continues).
//!
//! Whatever the mode, absurd targets are refused: the file-system root, the
//! home folder, and any folder that holds the current directory.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// The lock file of a run folder (and the mark that it is one).
pub const LOCK_FILE: &str = ".bilevel.lock";

/// Files a run writes into its folder, removed by `--force`: the resolved
/// config, the trace (finished or `.part`), the summary, the expectations,
/// and the checkpoint of `--resume`. Atomic writes' temporary files
/// (`.NAME.tmp-PID`) and the `plots/` folder's plots and tables count too.
pub const RUN_FILES: &[&str] = &[
    "config.json",
    "trace.jsonl",
    "trace.jsonl.part",
    "summary.json",
    "expect.json",
    "checkpoint.bin",
    "checkpoint.bin.prev",
];

/// Files a comparison writes into its folder besides its run folders (its
/// record `compare.json`, read by `compare --resume`, and its tables).
pub const COMPARE_FILES: &[&str] = &["compare.json", "table.md", "table.csv"];

/// How a run takes a folder that already holds files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FolderMode {
    /// The folder must be new or empty.
    #[default]
    New,
    /// Remove an earlier run's files first (`--force`).
    Force,
    /// Continue the run the folder holds (`--resume`): nothing is removed.
    Resume,
}

/// What a folder is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderKind {
    /// One run: `config.json`, the trace, the summary, `plots/`.
    Run,
    /// A comparison: one run folder per job, `table.md`, `table.csv`, `plots/`.
    Compare,
}

/// An exclusively locked run folder; the lock is released when this is
/// dropped (or the process ends, however it ends).
#[derive(Debug)]
pub struct FolderLock {
    dir: PathBuf,
    _file: File,
}

impl FolderLock {
    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// `true` for a file name that a run writes into its folder (see
/// [`RUN_FILES`]), including atomic writes' temporary files.
pub fn is_run_file(name: &str) -> bool {
    RUN_FILES.contains(&name) || is_temporary(name)
}

/// An atomic write's temporary file: `.NAME.tmp-PID`.
fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// A plot or table that `bilevel` writes into a `plots/` folder.
fn is_plot_file(name: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e == "svg" || e == "png")
        || COMPARE_FILES.contains(&name)
        || is_temporary(name)
}

/// Refuses the file-system root, the home folder and any folder that holds
/// the current directory (`--out .`, `--out ..`): a run there would write
/// beside, or with `--force` remove, files that are not its own.
fn check_target(dir: &Path, flag: &str) -> Result<()> {
    if dir.as_os_str().is_empty() {
        bail!("{flag}: the run folder name is empty");
    }
    // The nearest existing ancestor, resolved, and the rest of the path.
    let mut existing = dir.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        let Some(name) = existing.file_name() else {
            break;
        };
        rest.push(name.to_os_string());
        existing.pop();
        if existing.as_os_str().is_empty() {
            existing = PathBuf::from(".");
        }
    }
    let mut full = fs::canonicalize(&existing)
        .with_context(|| format!("{flag} {}: cannot resolve the path", dir.display()))?;
    for name in rest.iter().rev() {
        full.push(name);
    }
    if full.parent().is_none() {
        bail!(
            "{flag} {}: the file-system root cannot be a run folder",
            dir.display()
        );
    }
    if let Some(home) = std::env::var_os("HOME").and_then(|h| fs::canonicalize(h).ok()) {
        if full == home {
            bail!(
                "{flag} {}: the home folder cannot be a run folder",
                dir.display()
            );
        }
    }
    if let Ok(cwd) = std::env::current_dir().and_then(fs::canonicalize) {
        if cwd.starts_with(&full) {
            bail!(
                "{flag} {}: it holds the current folder; choose a new folder such as runs/NAME",
                dir.display()
            );
        }
    }
    if full.exists() && !full.is_dir() {
        bail!("{flag} {}: not a folder", dir.display());
    }
    Ok(())
}

/// Takes `dir` for one run or comparison: creates it, locks it and checks or
/// clears its contents by `mode` (module docs). `flag` names the option that
/// chose the folder, for errors (`--out`, `--resume`).
pub fn claim(dir: &Path, kind: FolderKind, mode: FolderMode, flag: &str) -> Result<FolderLock> {
    check_target(dir, flag)?;
    let had_lock = dir.join(LOCK_FILE).exists();
    let marked = had_lock
        || legacy_run_folder(dir)
        || (kind == FolderKind::Compare && legacy_compare_folder(dir));
    if mode == FolderMode::Resume && !dir.is_dir() {
        bail!("{flag} {}: no such run folder", dir.display());
    }
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the run folder {}", dir.display()))?;
    let lock = lock(dir)?;
    let checked = check_contents(dir, kind, mode, flag, marked);
    if checked.is_err() && !had_lock {
        // A refused folder is left as it was: without a lock file, which
        // would make it look like a run folder.
        let _ = fs::remove_file(dir.join(LOCK_FILE));
    }
    checked.map(|()| lock)
}

/// Checks (or, with `--force`, clears) what a locked folder holds.
fn check_contents(
    dir: &Path,
    kind: FolderKind,
    mode: FolderMode,
    flag: &str,
    marked: bool,
) -> Result<()> {
    let (mut own, mut foreign) = contents(dir, kind)?;
    if !marked {
        // Files named like a run's in a folder that is not a run folder
        // (a project's own `config.json`) are not a run's.
        foreign.append(&mut own);
        foreign.sort();
    }
    match mode {
        FolderMode::New => {
            if !own.is_empty() {
                if kind == FolderKind::Run {
                    if let Some(state) = stopped_run(dir) {
                        bail!(
                            "{} holds a {state} ({}); continue it with `bilevel run --resume {}`, \
                             or replace it with --force (which removes its files), or choose \
                             another --out",
                            dir.display(),
                            listing(&own),
                            dir.display(),
                        );
                    }
                }
                if kind == FolderKind::Compare && dir.join("compare.json").is_file() {
                    bail!(
                        "{} holds a comparison ({}); finish it with `bilevel compare --resume {}` \
                         (finished runs are kept), or replace it with --force (which removes \
                         its files), or choose another --out",
                        dir.display(),
                        listing(&own),
                        dir.display(),
                    );
                }
                bail!(
                    "{} already holds a {} ({}); use --force to remove its files and start \
                     again, or choose another --out",
                    dir.display(),
                    if kind == FolderKind::Run {
                        "run"
                    } else {
                        "comparison"
                    },
                    listing(&own),
                );
            }
            if !foreign.is_empty() {
                bail!(
                    "{} is not empty ({}) and is not a run folder; choose a new or empty folder",
                    dir.display(),
                    listing(&foreign)
                );
            }
        }
        FolderMode::Force => {
            if !foreign.is_empty() && !marked {
                bail!(
                    "{} is not a run folder (no {LOCK_FILE}) and holds {}: --force only clears \
                     run folders; choose a new or empty folder",
                    dir.display(),
                    listing(&foreign)
                );
            }
            clear(dir, kind, &own)?;
        }
        FolderMode::Resume => {
            let (record, what) = match kind {
                FolderKind::Run => ("config.json", "run"),
                FolderKind::Compare => ("compare.json", "comparison"),
            };
            if !dir.join(record).exists() {
                bail!(
                    "{flag} {}: the folder holds no {what} (no {record})",
                    dir.display()
                );
            }
        }
    }
    Ok(())
}

/// What a run folder with a checkpoint holds when its run did not end by
/// itself: a run that was stopped (summary `interrupted`) or killed (no
/// summary). `None` without a checkpoint, or for a run that ended.
fn stopped_run(dir: &Path) -> Option<&'static str> {
    if !dir.join("checkpoint.bin").is_file() {
        return None;
    }
    let Ok(bytes) = fs::read(dir.join("summary.json")) else {
        return Some("killed run (no summary.json) with a checkpoint");
    };
    let termination = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("termination")?.as_str().map(str::to_string));
    (termination.as_deref() == Some("interrupted")).then_some("stopped run (interrupted)")
}

/// A folder written before run folders had a lock file: its `config.json`
/// names the `bilevel` version that wrote it.
fn legacy_run_folder(dir: &Path) -> bool {
    fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("bilevel_version").is_some())
}

/// A comparison folder written before run folders had a lock file: it
/// holds a comparison table.
fn legacy_compare_folder(dir: &Path) -> bool {
    dir.join("table.md").is_file() || dir.join("table.csv").is_file()
}

/// Opens and locks the folder's lock file; records this process's pid.
fn lock(dir: &Path) -> Result<FolderLock> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot create the lock file {}", path.display()))?;
    match try_lock_waiting_for_own_children(&mut file) {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let owner = lock_owner(&mut file);
            let owner = owner.trim();
            bail!(
                "{} is in use by another bilevel run{}; wait for it to end or choose another --out",
                dir.display(),
                if owner.is_empty() {
                    String::new()
                } else {
                    format!(" ({owner})")
                }
            );
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock {}", path.display()));
        }
    }
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
        .and_then(|()| writeln!(file, "pid {}", std::process::id()))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(FolderLock {
        dir: dir.to_path_buf(),
        _file: file,
    })
}

/// How long a lock held in this process's own name is waited for (in
/// steps of [`OWN_LOCK_STEP`]) before the folder counts as busy.
const OWN_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
const OWN_LOCK_STEP: std::time::Duration = std::time::Duration::from_millis(10);

/// `try_lock`, except that a lock whose file names this very process is
/// waited for, up to [`OWN_LOCK_WAIT`]. Such a lock was taken by this
/// process and released again, and is held on only by a child it is
/// spawning at that moment: between `fork` and `exec` the child holds a
/// copy of every descriptor, close-on-exec or not, and with it the `flock`
/// (docs/decisions.md 124). A lock another process holds is refused at
/// once, and one this process really holds (two claims of one folder in
/// one process) is refused after the wait.
fn try_lock_waiting_for_own_children(file: &mut File) -> Result<(), TryLockError> {
    let own = format!("pid {}", std::process::id());
    let start = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Err(TryLockError::WouldBlock)
                if lock_owner(file).trim() == own && start.elapsed() < OWN_LOCK_WAIT =>
            {
                std::thread::sleep(OWN_LOCK_STEP);
            }
            r => return r,
        }
    }
}

/// What the lock file says of its owner (empty if unreadable).
fn lock_owner(file: &mut File) -> String {
    let mut owner = String::new();
    if file.seek(SeekFrom::Start(0)).is_ok() {
        let _ = file.read_to_string(&mut owner);
    }
    owner
}

/// The folder's entries other than the lock file: (a run's own, others).
fn contents(dir: &Path, kind: FolderKind) -> Result<(Vec<String>, Vec<String>)> {
    let mut own = Vec::new();
    let mut foreign = Vec::new();
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for e in entries {
        let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name == LOCK_FILE {
            continue;
        }
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        let mine = if is_dir {
            name == "plots" || (kind == FolderKind::Compare && is_run_folder(&e.path()))
        } else {
            is_run_file(&name) || (kind == FolderKind::Compare && COMPARE_FILES.contains(&&*name))
        };
        if mine {
            own.push(name);
        } else {
            foreign.push(name);
        }
    }
    own.sort();
    foreign.sort();
    Ok((own, foreign))
}

/// `true` for a folder that holds a run's lock file or config.
fn is_run_folder(dir: &Path) -> bool {
    dir.join(LOCK_FILE).exists() || legacy_run_folder(dir)
}

/// Removes the run files `own` of `dir` (plots and tables inside `plots/`,
/// the run files of a comparison's run folders). A comparison's run folders
/// are all locked before anything is removed: when one is in use by another
/// run, the error comes before any folder was cleared, so `--force` never
/// stops half-way.
fn clear(dir: &Path, kind: FolderKind, own: &[String]) -> Result<()> {
    let runs: Vec<&String> = own
        .iter()
        .filter(|n| *n != "plots" && kind == FolderKind::Compare && dir.join(n).is_dir())
        .collect();
    let mut held = Vec::with_capacity(runs.len());
    for name in &runs {
        let p = dir.join(name);
        check_target(&p, "--force")?;
        held.push(lock(&p)?);
    }
    for l in &held {
        check_contents(l.dir(), FolderKind::Run, FolderMode::Force, "--force", true)?;
    }
    for name in own {
        let p = dir.join(name);
        if name == "plots" {
            clear_plots(&p)?;
        } else if !runs.contains(&name) {
            fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
    }
    Ok(())
}

/// Removes the plots and tables of a `plots/` folder, and the folder when
/// nothing else is left in it.
pub fn clear_plots(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for e in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let e = e.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().is_ok_and(|t| t.is_file()) && is_plot_file(&name) {
            fs::remove_file(e.path())
                .with_context(|| format!("cannot remove {}", e.path().display()))?;
        }
    }
    // Not empty: the user's files stay, and so does the folder.
    let _ = fs::remove_dir(dir);
    Ok(())
}

fn listing(names: &[String]) -> String {
    const SHOWN: usize = 4;
    let mut s = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        let _ = write!(s, " and {} more", names.len() - SHOWN);
    }
    s
}

/// A short hash of a resolved configuration, for default folder names:
/// two configurations that differ anywhere get different folders.
pub fn short_hash(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(bytes);
    d.iter().take(4).fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<FolderLock>) -> String {
        format!("{:#}", r.expect_err("refused"))
    }

    #[test]
    fn a_second_claim_is_refused_while_the_first_holds_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let first = claim(&dir, FolderKind::Run, FolderMode::New, "--out").unwrap();
        let owner = fs::read_to_string(dir.join(LOCK_FILE)).unwrap();
        assert_eq!(owner, format!("pid {}\n", std::process::id()));
        for mode in [FolderMode::New, FolderMode::Force] {
            let e = err(claim(&dir, FolderKind::Run, mode, "--out"));
            assert!(e.contains("in use by another bilevel run (pid "), "{e}");
        }
        drop(first);
        // Released: the folder is empty again (the lock file does not count).
        drop(claim(&dir, FolderKind::Run, FolderMode::New, "--out").unwrap());
    }

    #[test]
    fn a_lock_held_on_by_a_spawning_child_is_waited_for() {
        // A child between fork and exec holds a copy of the lock's
        // descriptor: modelled by a second open file description of the
        // lock file, locked while the lock file names this process, and
        // released 200 ms later (as the child's exec would).
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        drop(claim(&dir, FolderKind::Run, FolderMode::New, "--out").unwrap());
        let copy = File::open(dir.join(LOCK_FILE)).unwrap();
        copy.try_lock().unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(copy);
        });
        let start = std::time::Instant::now();
        let second = claim(&dir, FolderKind::Run, FolderMode::New, "--out");
        release.join().unwrap();
        assert!(second.is_ok(), "{:#}", second.err().unwrap());
        assert!(start.elapsed() >= std::time::Duration::from_millis(150));
        // A lock in another process's name is refused at once.
        let copy = OpenOptions::new()
            .write(true)
            .open(dir.join(LOCK_FILE))
            .unwrap();
        drop(second);
        copy.try_lock().unwrap();
        fs::write(dir.join(LOCK_FILE), "pid 1\n").unwrap();
        let start = std::time::Instant::now();
        let e = err(claim(&dir, FolderKind::Run, FolderMode::New, "--out"));
        assert!(e.contains("in use by another bilevel run (pid 1)"), "{e}");
        assert!(start.elapsed() < OWN_LOCK_WAIT / 2);
    }

    #[test]
    fn run_files_are_refused_without_force_and_only_they_are_cleared() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        drop(claim(&dir, FolderKind::Run, FolderMode::New, "--out").unwrap());
        for f in [
            "config.json",
            "trace.jsonl",
            "summary.json",
            ".summary.json.tmp-7",
        ] {
            fs::write(dir.join(f), "{}").unwrap();
        }
        fs::create_dir(dir.join("plots")).unwrap();
        fs::write(dir.join("plots/upper_loss_vs_iters.svg"), "").unwrap();
        fs::write(dir.join("plots/mine.txt"), "keep").unwrap();
        fs::write(dir.join("notes.txt"), "keep").unwrap();
        let e = err(claim(&dir, FolderKind::Run, FolderMode::New, "--out"));
        assert!(
            e.contains("already holds a run") && e.contains("--force"),
            "{e}"
        );
        drop(claim(&dir, FolderKind::Run, FolderMode::Force, "--out").unwrap());
        let mut left: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [LOCK_FILE, "notes.txt", "plots"]);
        assert_eq!(
            fs::read_dir(dir.join("plots")).unwrap().count(),
            1,
            "only the user's file stays in plots/"
        );
    }

    #[test]
    fn force_clears_a_comparison_and_its_run_folders() {
        let tmp = tempfile::tempdir().unwrap();
        let cmp = tmp.path().join("cmp");
        // An earlier version's comparison: no lock files anywhere.
        fs::create_dir_all(cmp.join("slip-s1")).unwrap();
        fs::write(cmp.join("table.md"), "").unwrap();
        fs::write(
            cmp.join("slip-s1/config.json"),
            r#"{"bilevel_version": "0.1.0"}"#,
        )
        .unwrap();
        fs::write(cmp.join("slip-s1/trace.jsonl"), "").unwrap();
        fs::write(cmp.join("level1.log"), "mine").unwrap();
        let e = err(claim(&cmp, FolderKind::Compare, FolderMode::New, "--out"));
        assert!(e.contains("already holds a comparison"), "{e}");
        // A run in one of its run folders blocks --force.
        let busy = claim(
            &cmp.join("slip-s1"),
            FolderKind::Run,
            FolderMode::Resume,
            "--out",
        )
        .unwrap();
        let e = err(claim(&cmp, FolderKind::Compare, FolderMode::Force, "--out"));
        assert!(e.contains("in use"), "{e}");
        drop(busy);
        drop(claim(&cmp, FolderKind::Compare, FolderMode::Force, "--out").unwrap());
        assert!(!cmp.join("table.md").exists());
        assert!(cmp.join("level1.log").exists());
        let left: Vec<_> = fs::read_dir(cmp.join("slip-s1")).unwrap().collect();
        assert_eq!(left.len(), 1, "only the lock file stays");
    }

    #[test]
    fn foreign_folders_and_absurd_targets_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("mine");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("config.json"), "not ours").unwrap();
        fs::write(dir.join("paper.tex"), "").unwrap();
        let e = err(claim(&dir, FolderKind::Run, FolderMode::Force, "--out"));
        assert!(e.contains("not a run folder"), "{e}");
        assert!(dir.join("config.json").exists() && dir.join("paper.tex").exists());
        // A file named like a run's alone does not make a run folder.
        fs::remove_file(dir.join("paper.tex")).unwrap();
        let e = err(claim(&dir, FolderKind::Run, FolderMode::Force, "--out"));
        assert!(e.contains("not a run folder"), "{e}");
        assert_eq!(
            fs::read_to_string(dir.join("config.json")).unwrap(),
            "not ours"
        );
        let e = err(claim(
            Path::new("/"),
            FolderKind::Run,
            FolderMode::Force,
            "--out",
        ));
        assert!(e.contains("root"), "{e}");
        let e = err(claim(
            Path::new("."),
            FolderKind::Run,
            FolderMode::Force,
            "--out",
        ));
        assert!(e.contains("current folder"), "{e}");
        let e = err(claim(
            Path::new(".."),
            FolderKind::Run,
            FolderMode::New,
            "--out",
        ));
        assert!(e.contains("current folder"), "{e}");
        let file = tmp.path().join("file");
        fs::write(&file, "").unwrap();
        let e = err(claim(&file, FolderKind::Run, FolderMode::New, "--out"));
        assert!(e.contains("not a folder"), "{e}");
        let e = err(claim(
            &tmp.path().join("nothing"),
            FolderKind::Run,
            FolderMode::Resume,
            "--resume",
        ));
        assert!(e.contains("no such run folder"), "{e}");
    }
}
