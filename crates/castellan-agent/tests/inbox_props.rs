//! The inbox fuzz body (`castellan_agent::fuzzing::inbox_files`) under proptest: any
//! layout of op and signature files (regular, links, FIFOs, oversize) is read without
//! following a link or blocking, and settling never writes outside the inbox.

#![allow(clippy::unwrap_used)]

use castellan_agent::fuzzing::{self, AS_FIFO, AS_OVERSIZE, AS_SYMLINK, PLANT_REASON_LINK};
use proptest::prelude::*;

fn chunk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        Just(vec![AS_SYMLINK]),
        Just(vec![AS_FIFO]),
        Just(vec![AS_OVERSIZE]),
        Just(b"-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n".to_vec()),
        Just(
            b"version = 3\nop = \"destroy\"\nhost = \"pve-01\"\ntarget = \"lxc/101\"\n\
              nonce = \"6b1f0e54a9c2d83f71e0a4b59c6d2e13\"\n\
              not_before = \"2026-11-22T10:00:00Z\"\nnot_after = \"2026-11-22T11:00:00Z\"\n"
                .to_vec()
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn any_layout_is_handled_safely(
        chunks in proptest::collection::vec(chunk(), 1..6),
        plant in any::<bool>(),
    ) {
        let mut data: Vec<u8> = chunks.join(&0xFF);
        if plant {
            data.push(0xFF);
            data.push(PLANT_REASON_LINK);
        }
        fuzzing::inbox_files(&data);
    }

    #[test]
    fn arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        fuzzing::inbox_files(&data);
    }
}

/// The stamp that lets a round reuse its inbox reading moves with every change a reading
/// would see: a new file, a removed one, and a rewrite of the same size whose
/// modification time was put back (the change time cannot be); it is read through the
/// inbox's own descriptor, so the directory renamed away and replaced is not the one
/// stamped.
#[test]
fn the_inbox_stamp_moves_with_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = castellan_agent::Inbox::open(&dir.path().join("inbox")).unwrap();
    let op = dir.path().join("inbox").join("op");
    let empty = inbox.stamp().expect("a readable inbox has a stamp");
    std::fs::write(&op, b"version = 2\n").unwrap();
    let one = inbox.stamp().unwrap();
    assert_ne!(one, empty, "a new file");
    assert_eq!(
        inbox.stamp().unwrap(),
        one,
        "nothing changed, nothing moved"
    );

    let mtime = std::fs::metadata(&op).unwrap().modified().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&op, b"version = 3\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&op)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&op).unwrap().modified().unwrap(), mtime);
    assert_ne!(
        inbox.stamp().unwrap(),
        one,
        "same size, same modification time, different content"
    );

    // The directory is renamed away and an empty one put at its path: the stamp still
    // describes the inbox that is open (with its op), not the impostor.
    let before = inbox.stamp().unwrap();
    std::fs::rename(dir.path().join("inbox"), dir.path().join("moved")).unwrap();
    std::fs::create_dir(dir.path().join("inbox")).unwrap();
    assert_eq!(inbox.stamp().unwrap(), before);

    std::fs::remove_file(dir.path().join("moved").join("op")).unwrap();
    assert_ne!(inbox.stamp().unwrap(), before, "a removed file");
}
