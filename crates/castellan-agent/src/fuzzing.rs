//! Fuzz target bodies for the inbox's file handling. `fuzz/fuzz_targets/inbox_files.rs`
//! (cargo-fuzz, nightly) calls this, and the crate's property tests run the same body on
//! the stable toolchain. It must never panic or hang on any input; the assertions check
//! invariants that hold for every input.

use std::path::Path;
use std::time::{Duration, SystemTime};

use castellan_core::RejectReason;
use castellan_core::op::SignedOp;
use rustix::fs::{FileType, Mode};

use crate::inbox::{Inbox, MAX_SIG_BYTES, Settled};

/// Marks a chunk as a symbolic link (to a file outside the inbox) instead of a file.
pub const AS_SYMLINK: u8 = 0xFE;
/// Marks a chunk as a FIFO.
pub const AS_FIFO: u8 = 0xFD;
/// Marks a chunk as a file larger than any the inbox reads.
pub const AS_OVERSIZE: u8 = 0xFC;
/// Anywhere in the input: plant `rejected/op.reason` as a link to the outside file.
pub const PLANT_REASON_LINK: u8 = 0xFB;

fn make(path: &Path, chunk: &[u8], outside: &Path) -> std::io::Result<()> {
    match chunk.first() {
        Some(&AS_SYMLINK) => std::os::unix::fs::symlink(outside, path),
        Some(&AS_FIFO) => rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .map_err(Into::into),
        Some(&AS_OVERSIZE) => {
            std::fs::write(path, vec![b'A'; MAX_SIG_BYTES as usize + 1 + chunk.len()])
        }
        _ => std::fs::write(path, chunk),
    }
}

/// Splits `data` at `0xFF` into at most six chunks and lays them out as an op (`op`) and
/// its signatures (`op.sig`, `op.2.sig`, ...) in a fresh inbox: each a regular file, a
/// link to a file outside, a FIFO or an oversize file (by its first byte). Then scans the
/// inbox and settles what it found to `rejected/`. Checks: a link or FIFO op is never
/// read, a regular one parses exactly as [`SignedOp::parse`] parses its bytes, no
/// signature beyond those laid out is reported, settling moves the op out and writes a
/// regular `.reason` note, and the file outside is never written.
pub fn inbox_files(data: &[u8]) {
    let Ok(tmp) = tempfile::tempdir() else { return };
    let root = tmp.path();
    let outside = root.join("outside");
    if std::fs::write(&outside, b"precious").is_err() {
        return;
    }
    let dir = root.join("inbox");
    let Ok(inbox) = Inbox::open(&dir) else { return };
    let chunks: Vec<&[u8]> = data.split(|&b| b == 0xFF).take(6).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let name = match i {
            0 => "op".to_owned(),
            1 => "op.sig".to_owned(),
            n => format!("op.{n}.sig"),
        };
        if make(&dir.join(name), chunk, &outside).is_err() {
            return;
        }
    }
    if data.contains(&PLANT_REASON_LINK) {
        let _ = std::os::unix::fs::symlink(&outside, dir.join("rejected/op.reason"));
    }
    #[allow(clippy::expect_used)]
    let offered = inbox
        .scan(SystemTime::now(), Duration::ZERO)
        .expect("a fresh inbox can be scanned");
    let op_kind = chunks.first().and_then(|c| c.first()).copied();
    let op_regular = !chunks.is_empty() && !matches!(op_kind, Some(AS_SYMLINK | AS_FIFO));
    assert_eq!(offered.len(), usize::from(op_regular), "{offered:?}");
    if let Some(o) = offered.first() {
        if op_kind == Some(AS_OVERSIZE) {
            assert!(o.op.is_err(), "an oversize op parsed");
        } else {
            assert_eq!(o.op, SignedOp::parse(chunks[0]));
        }
        assert!(o.sigs.len() + o.bad_sigs.len() < chunks.len().max(1));
        assert!(o.bad_sigs.iter().all(|b| !b.problem.is_empty()));
        #[allow(clippy::expect_used)]
        inbox
            .settle(o, Settled::Rejected(RejectReason::BadFormat), "fuzz")
            .expect("settling into a fresh rejected/ works");
        assert!(!dir.join("op").exists(), "the op stayed in the inbox");
        let note = std::fs::symlink_metadata(dir.join("rejected/op.reason"));
        assert!(
            note.is_ok_and(|m| m.file_type().is_file()),
            "the note is not a file"
        );
    }
    assert_eq!(
        std::fs::read(&outside).ok().as_deref(),
        Some(&b"precious"[..]),
        "a file outside the inbox was written"
    );
}
