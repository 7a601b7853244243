//! The signed-op drop-in directory (`[ops] inbox`).
//!
//! An operator (or, later, the hub) drops an op file and its signature(s) here:
//! `NAME` (any name not ending in `.sig`), `NAME.sig`, `NAME.2.sig`, ... as
//! `ssh-keygen -Y sign` and `castellan op sign` write them. Write the signatures first and
//! the op file last (or rename it into place): an op file seen without its signature is
//! simply not yet accepted. Files starting with `.` are ignored (editors, partial copies).
//!
//! Once the agent is done with an op it moves the files out of the way: to `done/` after
//! the op executed, to `rejected/` with a `NAME.reason` note when it was refused for good.
//! Nothing in the inbox is ever executed on its own account: an op only ever authorises
//! an action the agent's gate is already holding (see [`crate::gatekeeper`]).

use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use castellan_core::RejectReason;
use castellan_core::op::{MAX_OP_BYTES, OpFormatError, SignedOp};

/// Largest signature file read.
pub const MAX_SIG_BYTES: u64 = 64 * 1024;
/// Most signature files read per op.
pub const MAX_SIGS: u32 = 16;
/// Most op files looked at per scan; the rest wait for the next one.
pub const MAX_OPS: usize = 256;

/// One op file found in the inbox, with its signatures.
#[derive(Debug, Clone)]
pub struct OfferedOp {
    /// The op file.
    pub path: PathBuf,
    /// Its bytes (what was signed).
    pub bytes: Vec<u8>,
    /// The parsed op, or why it is not one.
    pub op: Result<SignedOp, OpFormatError>,
    /// Signature files and their contents.
    pub sigs: Vec<(PathBuf, Vec<u8>)>,
}

impl OfferedOp {
    /// The op file's name, for logs.
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Reads an op file and the signatures beside it (`FILE.sig`, `FILE.2.sig`, ...),
    /// plus any `extra` signature files.
    pub fn read(path: &Path, extra: &[PathBuf]) -> io::Result<OfferedOp> {
        let bytes = read_limited(path, MAX_OP_BYTES as u64)?;
        let op = SignedOp::parse(&bytes);
        let mut sigs = Vec::new();
        for n in 1..=MAX_SIGS {
            let p = castellan_sig::sign::signature_path(path, n);
            match read_limited(&p, MAX_SIG_BYTES) {
                Ok(b) => sigs.push((p, b)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if n > 1 {
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        for p in extra {
            let b = read_limited(p, MAX_SIG_BYTES)?;
            sigs.push((p.clone(), b));
        }
        Ok(OfferedOp {
            path: path.to_owned(),
            bytes,
            op,
            sigs,
        })
    }

    /// The signatures' contents.
    pub fn sig_bytes(&self) -> Vec<Vec<u8>> {
        self.sigs.iter().map(|(_, b)| b.clone()).collect()
    }
}

/// Reads at most `limit` bytes; a larger file is an error naming it.
pub fn read_limited(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let f = fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is larger than {limit} bytes", path.display()),
        ));
    }
    Ok(buf)
}

/// The inbox directory.
#[derive(Debug, Clone)]
pub struct Inbox {
    dir: PathBuf,
}

/// Where a settled op goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// It executed.
    Done,
    /// It was refused for good.
    Rejected(RejectReason),
}

impl Inbox {
    /// The inbox at `dir`, created (with `done/` and `rejected/`) if missing.
    pub fn open(dir: &Path) -> io::Result<Inbox> {
        for d in [dir.to_owned(), dir.join("done"), dir.join("rejected")] {
            fs::create_dir_all(&d)?;
        }
        Ok(Inbox {
            dir: dir.to_owned(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every op file in the inbox, by name. Unreadable files are reported as
    /// `Err(OpFormatError)` ops so they are settled like malformed ones.
    pub fn scan(&self) -> io::Result<Vec<OfferedOp>> {
        let mut names: Vec<PathBuf> = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.ends_with(".sig") || name.ends_with(".reason") {
                continue;
            }
            names.push(entry.path());
        }
        names.sort();
        names.truncate(MAX_OPS);
        let mut out = Vec::with_capacity(names.len());
        for p in names {
            match OfferedOp::read(&p, &[]) {
                Ok(o) => out.push(o),
                // Removed between listing and reading: gone, nothing to do.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => out.push(OfferedOp {
                    path: p,
                    bytes: Vec::new(),
                    op: Err(OpFormatError::Syntax(format!("unreadable: {e}"))),
                    sigs: Vec::new(),
                }),
            }
        }
        Ok(out)
    }

    /// Moves an op and its signatures to `done/` or `rejected/` (with a `.reason` note).
    pub fn settle(&self, offered: &OfferedOp, how: Settled, detail: &str) -> io::Result<()> {
        let sub = match how {
            Settled::Done => "done",
            Settled::Rejected(_) => "rejected",
        };
        let to = self.dir.join(sub);
        let name = offered.name();
        if let Settled::Rejected(reason) = how {
            fs::write(
                to.join(format!("{name}.reason")),
                format!("rejected: {reason}: {detail}\n"),
            )?;
        }
        for p in std::iter::once(&offered.path).chain(offered.sigs.iter().map(|(p, _)| p)) {
            if p.parent() != Some(self.dir.as_path()) {
                continue; // an extra signature from elsewhere: not ours to move
            }
            if let Some(file) = p.file_name() {
                match fs::rename(p, to.join(file)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// A cheap summary of the inbox's contents (names, sizes, modification times) to
    /// notice a change without reading every file.
    pub fn stamp(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        if let Ok(rd) = fs::read_dir(&self.dir) {
            let mut items: Vec<(String, u64, Option<std::time::SystemTime>)> = rd
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    m.is_file().then(|| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            m.len(),
                            m.modified().ok(),
                        )
                    })
                })
                .collect();
            items.sort();
            items.hash(&mut h);
        }
        h.finish()
    }
}
