//! The inbox fuzz body (`castellan_agent::fuzzing::inbox_files`) under proptest: any
//! layout of op and signature files (regular, links, FIFOs, oversize) is read without
//! following a link or blocking, and settling never writes outside the inbox.

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
            b"version = 2\nop = \"destroy\"\nhost = \"pve-01\"\nguest = 101\nkind = \"lxc\"\n\
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
