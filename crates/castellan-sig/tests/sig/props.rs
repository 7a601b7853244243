//! Property tests: the fuzz target bodies on the stable toolchain, and parsers that never
//! panic.

use castellan_core::RejectReason;
use castellan_sig::fuzzing::{self, FIXTURE_ALLOWED_SIGNERS, FIXTURE_MESSAGE, fixture_time};
use castellan_sig::sshsig::dearmor;
use castellan_sig::{AllowedSigners, OP_NAMESPACE, verify};
use jiff::tz::TimeZone;
use proptest::prelude::*;

fn fixture() -> AllowedSigners {
    AllowedSigners::parse_in(FIXTURE_ALLOWED_SIGNERS, &TimeZone::UTC).unwrap()
}

#[test]
fn fixture_signatures_behave() {
    let s = fixture();
    let at = fixture_time();
    let v = verify(
        &s,
        OP_NAMESPACE,
        FIXTURE_MESSAGE,
        fuzzing::FIXTURE_ED25519_SIG,
        at,
    )
    .unwrap();
    assert_eq!(v.entry_line, 2);
    let r = verify(
        &s,
        OP_NAMESPACE,
        FIXTURE_MESSAGE,
        fuzzing::FIXTURE_P256_SIG,
        at,
    )
    .unwrap_err();
    assert_eq!(r.reason, RejectReason::Expired);
    let r = verify(
        &s,
        OP_NAMESPACE,
        FIXTURE_MESSAGE,
        fuzzing::FIXTURE_RSA_SIG,
        at,
    )
    .unwrap_err();
    assert_eq!(r.reason, RejectReason::NotYetValid);
    for sig in [
        fuzzing::FIXTURE_ED25519_SIG,
        fuzzing::FIXTURE_P256_SIG,
        fuzzing::FIXTURE_RSA_SIG,
    ] {
        fuzzing::sshsig_decode(sig);
        fuzzing::sshsig_decode(&dearmor(sig).unwrap());
    }
    fuzzing::allowed_signers(FIXTURE_ALLOWED_SIGNERS.as_bytes());
}

fn fixture_blobs() -> Vec<Vec<u8>> {
    [
        fuzzing::FIXTURE_ED25519_SIG,
        fuzzing::FIXTURE_P256_SIG,
        fuzzing::FIXTURE_RSA_SIG,
    ]
    .iter()
    .map(|s| dearmor(s).unwrap())
    .collect()
}

/// Pieces allowed_signers lines are made of, to reach deep into the parser.
fn line_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("alice@example.com".to_owned()),
        Just("\"a b,*@x\"".to_owned()),
        Just("!bad".to_owned()),
        Just("namespaces=\"castellan-op,fi\\\"le\"".to_owned()),
        Just("valid-after=\"20240101\"".to_owned()),
        Just("valid-before=\"209901011200Z\"".to_owned()),
        Just("VALID-BEFORE=\"20240101UTC\"".to_owned()),
        Just("cert-authority".to_owned()),
        Just(",".to_owned()),
        Just("\"".to_owned()),
        Just(" ".to_owned()),
        Just("\t".to_owned()),
        Just("#".to_owned()),
        Just("\n".to_owned()),
        Just("ssh-ed25519".to_owned()),
        Just("AAAAC3NzaC1lZDI1NTE5AAAAICAeXPKcJnMTRS9Tg4emm1wS/O+r9jnb/DJ//VlOEkMg".to_owned()),
        Just(
            FIXTURE_ALLOWED_SIGNERS
                .lines()
                .nth(3)
                .unwrap_or("")
                .to_owned()
        ),
        "[ -~]{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn allowed_signers_body_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        fuzzing::allowed_signers(&data);
    }

    #[test]
    fn allowed_signers_body_on_token_soup(pieces in proptest::collection::vec(line_piece(), 0..16)) {
        fuzzing::allowed_signers(pieces.join("").as_bytes());
        fuzzing::allowed_signers(pieces.join(" ").as_bytes());
    }

    #[test]
    fn sshsig_body_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        fuzzing::sshsig_decode(&data);
    }

    #[test]
    fn sshsig_body_on_mutated_signatures(
        which in 0usize..3,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut blob = fixture_blobs()[which].clone();
        for (i, x) in flips {
            let i = i.index(blob.len());
            blob[i] ^= x;
        }
        if truncate {
            blob.truncate(cut.index(blob.len() + 1));
        }
        fuzzing::sshsig_decode(&blob);
    }

    #[test]
    fn signers_toml_body_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        fuzzing::signers_toml(&data);
    }

    #[test]
    fn signers_toml_body_on_token_soup(pieces in proptest::collection::vec(toml_piece(), 0..14)) {
        fuzzing::signers_toml(pieces.join("").as_bytes());
    }

    #[test]
    fn signer_set_body_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        fuzzing::signer_set(&data);
    }

    #[test]
    fn signer_set_body_on_token_soup(pieces in proptest::collection::vec(signer_set_piece(), 0..16)) {
        fuzzing::signer_set(pieces.join("").as_bytes());
    }

    #[test]
    fn parse_never_panics_on_any_string(text in "\\PC{0,300}") {
        let _ = AllowedSigners::parse(&text);
    }
}

/// Pieces signers.toml files are made of.
fn toml_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("allowed_signers = \"allowed_signers\"\n".to_owned()),
        Just("[roles]\n".to_owned()),
        Just("[thresholds]\n".to_owned()),
        Just("\"fuzz@example.com\" = \"operational\"\n".to_owned()),
        Just("\"alice@example.com\" = \"recovery\"\n".to_owned()),
        Just("\"nobody\" = \"reviewer\"\n".to_owned()),
        Just("\"expired\" = \"admin\"\n".to_owned()),
        Just("destroy = 2\n".to_owned()),
        Just("destroy = 0\n".to_owned()),
        Just("rotate_keys = 99\n".to_owned()),
        Just("review_write_capable = 1\n".to_owned()),
        Just("x = -1\n".to_owned()),
        Just("= \"\n".to_owned()),
        "[ -~]{0,10}",
    ]
}

/// Pieces signer-set documents are made of.
fn signer_set_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("version = 2\n".to_owned()),
        Just("version = 0\n".to_owned()),
        Just("[[key]]\n".to_owned()),
        Just("principal = \"fuzz@example.com\"\n".to_owned()),
        Just("principal = \"*\"\n".to_owned()),
        Just("role = \"operational\"\n".to_owned()),
        Just("role = \"recovery\"\n".to_owned()),
        Just("role = \"reviewer\"\n".to_owned()),
        Just(format!("public_key = \"{SOUP_KEY}\"\n")),
        Just(format!("public_key = \"{SOUP_KEY_2}\"\n")),
        Just("namespaces = [\"castellan-signers\"]\n".to_owned()),
        Just("namespaces = [\"castellan-op\"]\n".to_owned()),
        Just("valid_before = \"2030-01-01T00:00:00Z\"\n".to_owned()),
        Just("valid_after = \"2024-01-01T00:00:00Z\"\n".to_owned()),
        Just("[thresholds]\n".to_owned()),
        Just("rotate_keys = 2\n".to_owned()),
        Just("destroy = 1\n".to_owned()),
        Just("review = 3\n".to_owned()),
        "[ -~]{0,10}",
    ]
}

const SOUP_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICAeXPKcJnMTRS9Tg4emm1wS/O+r9jnb/DJ//VlOEkMg fuzz";
const SOUP_KEY_2: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

/// The signer-set fuzz body on a well-formed document: it parses, and the invariants hold.
#[test]
fn signer_set_body_on_a_document() {
    let text = format!(
        "version = 2\n\n[thresholds]\nrotate_keys = 1\n\n[[key]]\nprincipal = \"fuzz@example.com\"\n\
         role = \"operational\"\npublic_key = \"{SOUP_KEY}\"\n"
    );
    assert!(castellan_sig::SignerSet::parse(text.as_bytes()).is_ok());
    fuzzing::signer_set(text.as_bytes());
}

/// The fuzz body on a well-formed file: it parses, and the invariants hold.
#[test]
fn signers_toml_body_on_the_fixture() {
    let text = "allowed_signers = \"x\"\n[roles]\n\"fuzz@example.com\" = \"operational\"\n[thresholds]\ndestroy = 1\n";
    let allowed = AllowedSigners::parse(FIXTURE_ALLOWED_SIGNERS).unwrap();
    assert!(castellan_sig::SignerConfig::parse_with(text, allowed).is_ok());
    fuzzing::signers_toml(text.as_bytes());
}
