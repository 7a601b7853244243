//! The signed-op drop-in directory (`[ops] inbox`).
//!
//! An operator (or, later, the hub) drops an op file and its signature(s) here:
//! `NAME` (any name not ending in `.sig`), `NAME.sig`, `NAME.2.sig`, ... as
//! `ssh-keygen -Y sign` and `castellan op sign` write them. The way to do it is
//! `castellan op submit FILE --inbox DIR` ([`Inbox::submit`]): every file is written under
//! a temporary dot-name and renamed into place, signatures first, the op last. Files
//! starting with `.` are ignored (editors, partial copies).
//!
//! Once the agent is done with an op it moves the files out of the way: to `done/` after
//! the op executed, to `rejected/` with a `NAME.reason` note when it was refused for good.
//! Nothing in the inbox is ever executed on its own account: an op only ever authorises
//! an action the agent's gate is already holding (see [`crate::gatekeeper`]).
//!
//! Whoever can write the inbox is not trusted with anything else, so the agent:
//! - never follows a symbolic link: the inbox, `done/` and `rejected/` are opened as
//!   directories with `O_NOFOLLOW` and every read, write and rename is made relative to
//!   those descriptors (`openat`, `renameat`), so a link planted as `done`, as
//!   `rejected/NAME.reason` or as the op file itself is refused or replaced, never
//!   followed;
//! - never opens anything but a regular file: FIFOs, devices and sockets are skipped by
//!   their directory entry and, should one be swapped in, by `fstat` on a descriptor
//!   opened with `O_NONBLOCK` (which cannot block on a FIFO);
//! - reads at most [`MAX_OP_BYTES`] of an op and [`MAX_SIG_BYTES`] of a signature;
//! - treats an op it sees before its signature, or whose files changed within
//!   [`SETTLE_GRACE`] (still being written), as *not yet*: it is never refused for good
//!   then. A junk or oversized extra signature counts as one refused signature, never as
//!   a reason to refuse the op.

use std::fs;
use std::io::{self, Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use castellan_core::RejectReason;
use castellan_core::op::{MAX_OP_BYTES, OpFormatError, SignedOp};
use rustix::fs::{self as rfs, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

/// Largest signature file read.
pub const MAX_SIG_BYTES: u64 = 64 * 1024;
/// Most signature files read per op.
pub const MAX_SIGS: u32 = 16;
/// Most op files looked at per scan; the rest wait for the next one.
pub const MAX_OPS: usize = 256;
/// An op whose files changed more recently than this may still be being written: it is
/// never refused for good until it has been still for this long.
pub const SETTLE_GRACE: Duration = Duration::from_secs(60);

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);
const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

/// Why a file in or for the inbox could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    /// No such file.
    #[error("no such file")]
    NotFound,
    /// A symbolic link, FIFO, device, socket or directory: never opened or followed.
    #[error("not a regular file ({0})")]
    NotRegular(&'static str),
    /// Larger than the limit for its kind.
    #[error("larger than {0} bytes")]
    TooLarge(u64),
    /// Any other I/O error.
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl From<Errno> for FileProblem {
    fn from(e: Errno) -> Self {
        match e {
            Errno::NOENT => FileProblem::NotFound,
            Errno::LOOP => FileProblem::NotRegular("symbolic link"),
            e => FileProblem::Io(e.into()),
        }
    }
}

fn type_name(t: FileType) -> &'static str {
    match t {
        FileType::RegularFile => "regular file",
        FileType::Directory => "directory",
        FileType::Symlink => "symbolic link",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Unknown => "unknown file type",
    }
}

/// A file's contents and modification time.
struct Read {
    bytes: Vec<u8>,
    mtime: Option<SystemTime>,
}

/// Reads a regular file from an open descriptor, at most `limit` bytes.
fn read_fd(fd: OwnedFd, limit: u64) -> Result<Read, FileProblem> {
    let st = rfs::fstat(&fd)?;
    let t = FileType::from_raw_mode(st.st_mode);
    if t != FileType::RegularFile {
        return Err(FileProblem::NotRegular(type_name(t)));
    }
    let mtime = u64::try_from(st.st_mtime)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
    let mut bytes = Vec::new();
    fs::File::from(fd).take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(FileProblem::TooLarge(limit));
    }
    Ok(Read { bytes, mtime })
}

/// Reads the regular file `name` inside the directory `dir` without following a link,
/// without blocking on a FIFO, and at most `limit` bytes.
fn read_at(dir: &OwnedFd, name: &str, limit: u64) -> Result<Read, FileProblem> {
    let fd = rfs::openat(dir, name, READ_FLAGS, Mode::empty())?;
    read_fd(fd, limit)
}

/// Reads at most `limit` bytes of the regular file at `path` (an operator's own path on
/// the command line: a link to a regular file is followed, a FIFO or device is refused
/// without blocking).
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, FileProblem> {
    let flags = READ_FLAGS.difference(OFlags::NOFOLLOW);
    let fd = rfs::open(path, flags, Mode::empty())?;
    read_fd(fd, limit).map(|r| r.bytes)
}

/// Reads at most `limit` bytes of a regular file the agent keeps itself (a link is
/// refused, not followed; a FIFO or device is refused without blocking).
pub fn read_own(path: &Path, limit: u64) -> Result<Vec<u8>, FileProblem> {
    let fd = rfs::open(path, READ_FLAGS, Mode::empty())?;
    read_fd(fd, limit).map(|r| r.bytes)
}

/// A signature file that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSig {
    /// The file.
    pub path: PathBuf,
    /// Why it was not read.
    pub problem: String,
}

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
    /// Signature files that exist but could not be read (oversize, not a regular file).
    pub bad_sigs: Vec<BadSig>,
    /// Whether one of its files changed within [`SETTLE_GRACE`]: it may still be being
    /// written, so it is not refused for good yet.
    pub fresh: bool,
    /// The names of its files inside the inbox (op first), for settling.
    names: Vec<String>,
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
    /// plus any `extra` signature files: the command line's way in. A file that is not
    /// regular is refused without blocking; an unreadable signature is a [`BadSig`].
    pub fn read(path: &Path, extra: &[PathBuf]) -> Result<OfferedOp, FileProblem> {
        let bytes = read_regular(path, MAX_OP_BYTES as u64)?;
        let op = SignedOp::parse(&bytes);
        let mut out = OfferedOp {
            path: path.to_owned(),
            bytes,
            op,
            sigs: Vec::new(),
            bad_sigs: Vec::new(),
            fresh: false,
            names: Vec::new(),
        };
        for n in 1..=MAX_SIGS {
            let p = castellan_sig::sign::signature_path(path, n);
            match read_regular(&p, MAX_SIG_BYTES) {
                Ok(b) => out.sigs.push((p, b)),
                Err(FileProblem::NotFound) if n > 1 => break,
                Err(FileProblem::NotFound) => {}
                Err(e) => out.bad_sigs.push(BadSig {
                    path: p,
                    problem: e.to_string(),
                }),
            }
        }
        for p in extra {
            match read_regular(p, MAX_SIG_BYTES) {
                Ok(b) => out.sigs.push((p.clone(), b)),
                // Named explicitly: its absence is the caller's mistake, not a bad signature.
                Err(FileProblem::NotFound) => {
                    return Err(FileProblem::Io(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("signature {}: no such file", p.display()),
                    )));
                }
                Err(e) => out.bad_sigs.push(BadSig {
                    path: p.clone(),
                    problem: e.to_string(),
                }),
            }
        }
        Ok(out)
    }

    /// The signatures' contents.
    pub fn sig_bytes(&self) -> Vec<Vec<u8>> {
        self.sigs.iter().map(|(_, b)| b.clone()).collect()
    }

    /// Whether no signature file exists for it at all: it has not been signed yet.
    pub fn unsigned(&self) -> bool {
        self.sigs.is_empty() && self.bad_sigs.is_empty()
    }
}

/// The inbox directory, held open: every operation is relative to this descriptor.
#[derive(Debug, Clone)]
pub struct Inbox {
    dir: PathBuf,
    fd: Arc<OwnedFd>,
}

/// Where a settled op goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// It executed (or had executed before).
    Done,
    /// It was refused for good.
    Rejected(RejectReason),
}

impl Settled {
    /// The subdirectory it goes to.
    pub fn subdir(&self) -> &'static str {
        match self {
            Settled::Done => "done",
            Settled::Rejected(_) => "rejected",
        }
    }
}

fn not_a_dir(path: &Path, e: Errno) -> io::Error {
    match e {
        Errno::LOOP | Errno::NOTDIR => io::Error::new(
            io::ErrorKind::NotADirectory,
            format!(
                "{} is not a directory (a symbolic link or another file stands there); refusing to use it",
                path.display()
            ),
        ),
        e => io::Error::new(
            io::Error::from(e).kind(),
            format!("{}: {e}", path.display()),
        ),
    }
}

/// Opens `name` under `parent` as a directory, never through a link, creating it first
/// when `create`.
fn open_subdir(parent: &OwnedFd, shown: &Path, name: &str, create: bool) -> io::Result<OwnedFd> {
    if create {
        match rfs::mkdirat(parent, name, Mode::from_raw_mode(0o750)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(not_a_dir(&shown.join(name), e)),
        }
    }
    rfs::openat(parent, name, DIR_FLAGS, Mode::empty()).map_err(|e| not_a_dir(&shown.join(name), e))
}

/// A file name the inbox may hold: one path component, not hidden.
fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains('/') && !name.contains('\0')
}

impl Inbox {
    /// The inbox at `dir`, created (with `done/` and `rejected/`) if missing. Refuses a
    /// `dir`, `done` or `rejected` that is a symbolic link or not a directory.
    pub fn open(dir: &Path) -> io::Result<Inbox> {
        match fs::symlink_metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(dir)?,
            _ => {}
        }
        let inbox = Self::open_existing(dir)?;
        for sub in ["done", "rejected"] {
            open_subdir(&inbox.fd, dir, sub, true)?;
        }
        Ok(inbox)
    }

    /// The existing inbox at `dir`, opened without creating anything.
    pub fn open_existing(dir: &Path) -> io::Result<Inbox> {
        let fd = rfs::open(dir, DIR_FLAGS, Mode::empty()).map_err(|e| not_a_dir(dir, e))?;
        Ok(Inbox {
            dir: dir.to_owned(),
            fd: Arc::new(fd),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every op file in the inbox, by name; one whose files changed within `grace` of `now`
    /// is marked fresh. Files that are not
    /// regular are skipped; an op file that cannot be read is reported as an
    /// `Err(OpFormatError)` op so it is settled like a malformed one.
    pub fn scan(&self, now: SystemTime, grace: Duration) -> io::Result<Vec<OfferedOp>> {
        let mut names: Vec<String> = Vec::new();
        for entry in rfs::Dir::read_from(&*self.fd)? {
            let entry = entry?;
            // Only regular files (by the directory entry: nothing is opened to look).
            // Entries of unknown type are opened safely below and checked by fstat.
            if !matches!(entry.file_type(), FileType::RegularFile | FileType::Unknown) {
                continue;
            }
            let Ok(name) = std::str::from_utf8(entry.file_name().to_bytes()) else {
                continue;
            };
            if !plain_name(name) || name.ends_with(".sig") || name.ends_with(".reason") {
                continue;
            }
            names.push(name.to_owned());
        }
        names.sort();
        names.truncate(MAX_OPS);
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(o) = self.read_one(&name, now, grace) {
                out.push(o);
            }
        }
        Ok(out)
    }

    /// Reads one op and its signatures; `None` when it is gone or not a regular file.
    fn read_one(&self, name: &str, now: SystemTime, grace: Duration) -> Option<OfferedOp> {
        let path = self.dir.join(name);
        let mut newest = None;
        let (bytes, op) = match read_at(&self.fd, name, MAX_OP_BYTES as u64) {
            Ok(r) => {
                newest = r.mtime;
                let op = SignedOp::parse(&r.bytes);
                (r.bytes, op)
            }
            Err(FileProblem::NotFound | FileProblem::NotRegular(_)) => return None,
            Err(e) => (
                Vec::new(),
                Err(OpFormatError::Syntax(format!("unreadable: {e}"))),
            ),
        };
        let mut o = OfferedOp {
            path,
            bytes,
            op,
            sigs: Vec::new(),
            bad_sigs: Vec::new(),
            fresh: false,
            names: vec![name.to_owned()],
        };
        for n in 1..=MAX_SIGS {
            let sig_name = if n == 1 {
                format!("{name}.sig")
            } else {
                format!("{name}.{n}.sig")
            };
            let sig_path = self.dir.join(&sig_name);
            match read_at(&self.fd, &sig_name, MAX_SIG_BYTES) {
                Ok(r) => {
                    newest = newest.max(r.mtime);
                    o.sigs.push((sig_path, r.bytes));
                    o.names.push(sig_name);
                }
                Err(FileProblem::NotFound) if n > 1 => break,
                Err(FileProblem::NotFound) => {}
                Err(e) => {
                    if !matches!(e, FileProblem::NotRegular(_)) {
                        o.names.push(sig_name);
                    }
                    o.bad_sigs.push(BadSig {
                        path: sig_path,
                        problem: e.to_string(),
                    });
                }
            }
        }
        // A modification time in the future (clock skew, or someone's `touch`) counts as
        // fresh: the op waits, which is the safe side.
        o.fresh = newest.is_none_or(|m| now.duration_since(m).map_or(true, |age| age < grace));
        Some(o)
    }

    /// Moves an op and its signatures to `done/` or `rejected/` (with a `.reason` note),
    /// relative to the inbox's descriptor and never through a link.
    pub fn settle(&self, offered: &OfferedOp, how: Settled, detail: &str) -> io::Result<()> {
        let sub = open_subdir(&self.fd, &self.dir, how.subdir(), true)?;
        let Some(name) = offered.names.first() else {
            return Ok(()); // not from this inbox: nothing of ours to move
        };
        if let Settled::Rejected(reason) = how {
            write_new_at(
                &sub,
                &format!("{name}.reason"),
                format!("rejected: {reason}: {detail}\n").as_bytes(),
            )?;
        }
        for n in &offered.names {
            match rfs::renameat(&*self.fd, n.as_str(), &sub, n.as_str()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Drops an op and its signatures into the inbox atomically: each file is written
    /// under a temporary dot-name (which the agent ignores), flushed, and renamed into
    /// place without replacing anything, the signatures first and the op last, so the
    /// agent never sees a partial file or an op before its signatures. Refuses a name the
    /// inbox already holds. Returns the op's path in the inbox.
    pub fn submit(&self, name: &str, op: &[u8], sigs: &[(String, Vec<u8>)]) -> io::Result<PathBuf> {
        self.check_names(name, sigs)?;
        for (sig_name, bytes) in sigs {
            self.place(sig_name, bytes)?;
        }
        self.place(name, op)?;
        Ok(self.dir.join(name))
    }

    /// Like [`Inbox::submit`], but a file already in place counts as placed: finishes a
    /// delivery that was interrupted (signatures first, the op last, as always).
    pub fn submit_resuming(
        &self,
        name: &str,
        op: &[u8],
        sigs: &[(String, Vec<u8>)],
    ) -> io::Result<PathBuf> {
        self.check_names(name, sigs)?;
        let placed = |r: io::Result<()>| match r {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            other => other,
        };
        for (sig_name, bytes) in sigs {
            placed(self.place(sig_name, bytes))?;
        }
        placed(self.place(name, op))?;
        Ok(self.dir.join(name))
    }

    /// How many op files (not signatures, not notes) whose names start with `prefix` the
    /// inbox holds: the ops not yet settled.
    pub fn count_prefixed(&self, prefix: &str) -> io::Result<usize> {
        let mut n = 0;
        for entry in rfs::Dir::read_from(&*self.fd)? {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name.starts_with(prefix.as_bytes())
                && !name.ends_with(b".sig")
                && !name.ends_with(b".reason")
            {
                n += 1;
            }
        }
        Ok(n)
    }

    fn check_names(&self, name: &str, sigs: &[(String, Vec<u8>)]) -> io::Result<()> {
        let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
        if !plain_name(name) || name.ends_with(".sig") || name.ends_with(".reason") {
            return Err(invalid(format!(
                "{name:?} cannot name an op in the inbox (one plain file name, not hidden, not ending in .sig or .reason)"
            )));
        }
        for (sig_name, _) in sigs {
            if !plain_name(sig_name) || !sig_name.starts_with(name) || !sig_name.ends_with(".sig") {
                return Err(invalid(format!(
                    "{sig_name:?} is not a signature name for {name:?}"
                )));
            }
        }
        Ok(())
    }

    fn place(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let tmp = format!(".{name}.{}.tmp", hex::encode(rand::random::<[u8; 8]>()));
        write_file_at(&self.fd, &tmp, bytes)?;
        match rfs::renameat_with(
            &*self.fd,
            tmp.as_str(),
            &*self.fd,
            name,
            RenameFlags::NOREPLACE,
        ) {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = rfs::unlinkat(&*self.fd, tmp.as_str(), rfs::AtFlags::empty());
                if e == Errno::EXIST {
                    Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} already holds {name}", self.dir.display()),
                    ))
                } else {
                    Err(e.into())
                }
            }
        }
    }

    /// A cheap summary of the inbox's contents to notice a change without reading every
    /// file: each regular file's name, inode, size, and modification and change times
    /// (the change time moves on every write and cannot be set back with `touch`), read
    /// through the inbox's own descriptor, as [`Inbox::scan`] reads it. Nothing is opened.
    /// `None` when the directory cannot be read: then nothing may be reused.
    pub fn stamp(&self) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        // (name, hash of what changes with the file), sorted by name.
        let mut items: Vec<(Vec<u8>, u64)> = Vec::new();
        for entry in rfs::Dir::read_from(&*self.fd).ok()? {
            let entry = entry.ok()?;
            if !matches!(entry.file_type(), FileType::RegularFile | FileType::Unknown) {
                continue;
            }
            let name = entry.file_name();
            let Ok(st) = rfs::statat(&*self.fd, name, rfs::AtFlags::SYMLINK_NOFOLLOW) else {
                continue; // gone since it was listed
            };
            if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                continue;
            }
            let mut f = std::collections::hash_map::DefaultHasher::new();
            st.st_ino.hash(&mut f);
            st.st_size.hash(&mut f);
            st.st_mtime.hash(&mut f);
            st.st_mtime_nsec.hash(&mut f);
            st.st_ctime.hash(&mut f);
            st.st_ctime_nsec.hash(&mut f);
            items.push((name.to_bytes().to_vec(), f.finish()));
        }
        items.sort();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        items.hash(&mut h);
        Some(h.finish())
    }
}

/// Creates `name` in `dir` exclusively (never through a link), writes and syncs it.
fn write_file_at(dir: &OwnedFd, name: &str, bytes: &[u8]) -> io::Result<()> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o640),
    )?;
    let mut f = fs::File::from(fd);
    f.write_all(bytes)?;
    f.sync_all()
}

/// Writes `name` in `dir` through a fresh temporary file renamed over it: whatever stood
/// at `name` (a link included) is replaced, never written through.
fn write_new_at(dir: &OwnedFd, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = format!(".{name}.{}.tmp", hex::encode(rand::random::<[u8; 8]>()));
    write_file_at(dir, &tmp, bytes)?;
    rfs::renameat(dir, tmp.as_str(), dir, name).map_err(|e| {
        let _ = rfs::unlinkat(dir, tmp.as_str(), rfs::AtFlags::empty());
        io::Error::from(e)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sigs(name: &str, n: u32) -> Vec<(String, Vec<u8>)> {
        (1..=n)
            .map(|i| {
                let sig = if i == 1 {
                    format!("{name}.sig")
                } else {
                    format!("{name}.{i}.sig")
                };
                (sig, format!("sig {i}").into_bytes())
            })
            .collect()
    }

    #[test]
    fn an_interrupted_delivery_is_finished_and_a_finished_one_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path()).unwrap();
        // Interrupted after the first of two signatures: no op yet.
        fs::write(dir.path().join("hub-a-1.op.sig"), b"sig 1").unwrap();
        let e = inbox
            .submit("hub-a-1.op", b"op text", &sigs("hub-a-1.op", 2))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(
            !dir.path().join("hub-a-1.op").exists(),
            "plain submit placed nothing more"
        );
        inbox
            .submit_resuming("hub-a-1.op", b"op text", &sigs("hub-a-1.op", 2))
            .unwrap();
        assert_eq!(fs::read(dir.path().join("hub-a-1.op")).unwrap(), b"op text");
        assert_eq!(
            fs::read(dir.path().join("hub-a-1.op.2.sig")).unwrap(),
            b"sig 2"
        );
        // Again: everything is there, nothing changes, no error.
        inbox
            .submit_resuming("hub-a-1.op", b"other", &sigs("hub-a-1.op", 2))
            .unwrap();
        assert_eq!(fs::read(dir.path().join("hub-a-1.op")).unwrap(), b"op text");
        // Names are checked as for submit.
        assert!(inbox.submit_resuming("../x", b"op", &[]).is_err());
        assert!(
            inbox
                .submit_resuming("hub-a-2.op", b"op", &[("other.sig".into(), vec![])])
                .is_err()
        );
    }

    #[test]
    fn undecided_ops_are_counted_without_their_signatures_and_notes() {
        let dir = tempfile::tempdir().unwrap();
        let inbox = Inbox::open(dir.path()).unwrap();
        for i in 0..3 {
            let name = format!("hub-a-{i}.op");
            inbox.submit(&name, b"op", &sigs(&name, 2)).unwrap();
        }
        inbox
            .submit("manual.op", b"op", &sigs("manual.op", 1))
            .unwrap();
        fs::write(dir.path().join("hub-a-9.op.reason"), b"x").unwrap();
        assert_eq!(inbox.count_prefixed("hub-").unwrap(), 3);
        assert_eq!(inbox.count_prefixed("manual").unwrap(), 1);
    }
}
