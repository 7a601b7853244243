//! The allowed_signers parser on real keys and files.

use castellan_sig::allowed_signers::MAX_ALLOWED_SIGNERS_BYTES;
use castellan_sig::{AllowedSigners, AllowedSignersError};

use crate::common::{keygen, parse};
use crate::need_ssh_keygen;

#[test]
fn every_key_type_parses_and_round_trips() {
    need_ssh_keygen!();
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("# all types\n");
    for (i, (ty, bits)) in [
        ("ed25519", None),
        ("ecdsa", Some(256)),
        ("ecdsa", Some(384)),
        ("ecdsa", Some(521)),
        ("rsa", Some(2048)),
        ("rsa", Some(3072)),
    ]
    .into_iter()
    .enumerate()
    {
        let k = keygen(dir.path(), &format!("k{i}"), ty, bits);
        text.push_str(&format!(
            "p{i},!x namespaces=\"castellan-op\",valid-after=\"20240101Z\" {}\n",
            k.line
        ));
    }
    let a = parse(&text);
    assert_eq!(a.entries.len(), 6);
    assert_eq!(
        a.entries.iter().map(|e| e.line).collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 6, 7]
    );
    let b = parse(&a.to_text());
    for (x, y) in a.entries.iter().zip(&b.entries) {
        assert_eq!(x.key, y.key);
        assert_eq!(x.fingerprint, y.fingerprint);
        assert_eq!(x.principals, y.principals);
        assert_eq!(x.namespaces, y.namespaces);
        assert_eq!(x.valid_after, y.valid_after);
    }
}

#[test]
fn small_rsa_keys_are_refused() {
    need_ssh_keygen!();
    let dir = tempfile::tempdir().unwrap();
    let k = keygen(dir.path(), "small", "rsa", Some(1024));
    let e = AllowedSigners::parse(&format!("a {}\n", k.line)).unwrap_err();
    assert!(
        e.to_string()
            .contains("line 1: rsa key of about 1024 bits is too small"),
        "{e}"
    );
}

#[test]
fn principal_matching_follows_openssh() {
    let a = parse(
        "*@example.com,!mallory@example.com,ops-?? ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti\n",
    );
    let e = &a.entries[0];
    assert!(e.matches_principal("alice@example.com"));
    assert!(e.matches_principal("ops-01"));
    assert!(!e.matches_principal("ops-001"));
    assert!(!e.matches_principal("mallory@example.com"));
    assert!(!e.matches_principal("alice@example.org"));
    assert!(e.permits_namespace("anything"));
}

#[test]
fn load_names_the_path_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("allowed_signers");
    std::fs::write(
        &path,
        "# ok\n\na cert-authority ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti\n",
    )
    .unwrap();
    let e = AllowedSigners::load(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: line 3: cert-authority entries are not supported: castellan verifies plain keys only",
            path.display()
        )
    );
    assert_eq!(e.line(), Some(3));

    let missing = dir.path().join("nope");
    let e = AllowedSigners::load(&missing).unwrap_err();
    assert!(matches!(e, AllowedSignersError::Read { .. }));
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read", missing.display()))
    );

    std::fs::write(&path, b"# fine\n\xff\n").unwrap();
    let e = AllowedSigners::load(&path).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}: line 2: not valid utf-8", path.display())
    );

    let big = vec![b'#'; usize::try_from(MAX_ALLOWED_SIGNERS_BYTES).unwrap() + 1];
    std::fs::write(&path, big).unwrap();
    let e = AllowedSigners::load(&path).unwrap_err();
    assert!(matches!(e, AllowedSignersError::TooLarge { .. }), "{e}");

    // Comments and blank lines only: an empty list.
    std::fs::write(&path, "# nobody yet\n\n   \n").unwrap();
    assert!(AllowedSigners::load(&path).unwrap().entries.is_empty());
}
