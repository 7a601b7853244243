//! Properties of the signed-op format: every valid op round-trips through its canonical
//! bytes, and no input (however malformed) panics the parser or parses to an op whose
//! canonical encoding differs from the bytes that were signed. The fuzz target
//! `fuzz/fuzz_targets/signed_op.rs` checks the same invariant with coverage guidance.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use castellan_core::Target;
use castellan_core::model::GuestKind;
use castellan_core::op::{SignedOp, check_parse_invariant};
use jiff::Timestamp;
use proptest::prelude::*;

fn arb_op() -> impl Strategy<Value = SignedOp> {
    (
        "[a-z]{1,8}(_[a-z]{1,8})?",
        "[a-z][a-z0-9-]{0,20}[a-z0-9]",
        prop_oneof![
            (100u32..1_000_000).prop_map(|v| Target::guest(GuestKind::Lxc, v)),
            (100u32..1_000_000).prop_map(|v| Target::guest(GuestKind::Qemu, v)),
            "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,20}".prop_map(|n| Target::container(&n).unwrap()),
            "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,20}".prop_map(|n| Target::volume(&n).unwrap()),
        ],
        proptest::option::of("[0-9a-f]{40}"),
        "[0-9a-f]{32}",
        1_700_000_000i64..1_900_000_000,
        1i64..600_000,
        proptest::collection::btree_map("[a-z0-9_-]{1,12}", "[!#-&(-\\[\\]-~]{0,20}", 0..4),
    )
        .prop_map(
            |(op, host, target, precondition, nonce, nb, len, params)| SignedOp {
                op,
                host,
                target,
                precondition,
                nonce,
                not_before: Timestamp::from_second(nb).unwrap(),
                not_after: Timestamp::from_second(nb + len).unwrap(),
                params: params.into_iter().collect::<BTreeMap<_, _>>(),
            },
        )
}

proptest! {
    #[test]
    fn valid_ops_round_trip(op in arb_op()) {
        let text = op.render();
        let back = SignedOp::parse(text.as_bytes());
        prop_assert_eq!(back.as_ref(), Ok(&op), "{}", text);
        prop_assert_eq!(back.unwrap().digest(), op.digest());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_parse_invariant(&bytes);
    }

    #[test]
    fn mutated_ops_are_refused_or_canonical(op in arb_op(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = op.render().into_bytes();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        check_parse_invariant(&bytes);
        if let Ok(parsed) = SignedOp::parse(&bytes) {
            // Only a change that is itself canonical (a different letter, digit...) parses,
            // and then it is a different op, never a reinterpretation of the original.
            let rendered = parsed.render();
            prop_assert_eq!(rendered.as_bytes(), &bytes[..]);
        }
    }
}
