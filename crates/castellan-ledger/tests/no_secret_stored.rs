//! Property: no stored record ever contains a detected secret value.
//!
//! Random secrets of many kinds are planted in random places of an otherwise good owner
//! response (nested objects, arrays, keys, base64-wrapped, inside prose); the response goes
//! through intake into a real ledger directory; then every byte the ledger wrote (the
//! database, its WAL, everything in the directory) and the printed record are searched for
//! every value the scanner detected, and for the planted secret itself.

#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use castellan_ledger::intake::analyze;
use castellan_ledger::schema::Lane;
use castellan_ledger::secrets::Scanner;
use castellan_ledger::store::Ledger;
use common::*;
use proptest::prelude::*;
use serde_json::{Value, json};

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn token(chars: &[u8], len: usize) -> impl Strategy<Value = String> {
    let chars = chars.to_vec();
    proptest::collection::vec(0..chars.len(), len)
        .prop_map(move |ix| ix.into_iter().map(|i| chars[i] as char).collect())
}

/// A token with a recognisable format, detectable however it is written.
fn token_secret() -> impl Strategy<Value = String> {
    prop_oneof![
        token(ALNUM, 36).prop_map(|t| format!("ghp_{t}")),
        token(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16).prop_map(|t| format!("AKIA{t}")),
        token(ALNUM, 24).prop_map(|t| format!("xoxb-1234567890-1234567890-{t}")),
        token(ALNUM, 20).prop_map(|t| format!("glpat-{t}")),
        token(ALNUM, 32).prop_map(|t| format!("sk_live_{t}")),
    ]
}

/// A secret and how it is written. A password has no format of its own, so it is only
/// ever written where its context says what it is (an assignment, an env line, a URL).
fn planted() -> impl Strategy<Value = (String, Wrap)> {
    prop_oneof![
        (token_secret(), wrap()),
        (
            token(ALNUM, 18).prop_map(|t| format!("Pw-{t}!")),
            prop_oneof![
                Just(Wrap::PasswordAssignment),
                Just(Wrap::EnvLine),
                Just(Wrap::Base64),
                Just(Wrap::UrlCredentials),
            ]
        ),
    ]
}

/// How the secret is written into the response.
#[derive(Debug, Clone)]
enum Wrap {
    Plain,
    PasswordAssignment,
    EnvLine,
    Base64,
    UrlCredentials,
}

fn wrap() -> impl Strategy<Value = Wrap> {
    prop_oneof![
        Just(Wrap::Plain),
        Just(Wrap::PasswordAssignment),
        Just(Wrap::EnvLine),
        Just(Wrap::Base64),
        Just(Wrap::UrlCredentials),
    ]
}

fn render(secret: &str, wrap: &Wrap) -> String {
    match wrap {
        Wrap::Plain => format!("the value is {secret} as of Monday"),
        Wrap::PasswordAssignment => format!("password: {secret}"),
        Wrap::EnvLine => format!("APP_ENV=prod\nAPI_TOKEN={secret}\nLOG_LEVEL=info"),
        Wrap::Base64 => format!(
            "blob {}",
            base64::engine::general_purpose::STANDARD.encode(format!("token={secret}"))
        ),
        Wrap::UrlCredentials => format!("https://deploy:{secret}@registry.example.com/v2/"),
    }
}

/// Where in the response it goes.
#[derive(Debug, Clone)]
enum Place {
    Field(&'static str),
    Nested(Vec<String>),
    ArrayItem(usize),
    Key,
}

fn place() -> impl Strategy<Value = Place> {
    prop_oneof![
        prop::sample::select(vec![
            "decision_reason",
            "maintenance_window",
            "post_check_plan",
            "notes",
            "affected_scope",
            "disable_switch",
            "live_config_hash_ref",
        ])
        .prop_map(Place::Field),
        proptest::collection::vec("[a-z]{1,8}", 1..4).prop_map(Place::Nested),
        (0usize..4).prop_map(Place::ArrayItem),
        Just(Place::Key),
    ]
}

fn plant(text: &str, place: &Place) -> Value {
    let mut v = good_response(COMPOSE);
    match place {
        Place::Field(f) => v[*f] = json!(text),
        Place::Nested(path) => {
            let mut inner = json!(text);
            for seg in path.iter().rev() {
                inner = json!({ seg.clone(): inner });
            }
            v["notes"] = inner;
        }
        Place::ArrayItem(i) => {
            let refs = v["redacted_evidence_refs"].as_array_mut().unwrap();
            let at = (*i).min(refs.len());
            refs.insert(at, json!({"ref": "OPS-1", "note": text}));
        }
        Place::Key => v["notes"] = json!({ text: "see attachment" }),
    }
    v
}

/// Every byte under `dir`.
fn stored_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            all.extend(std::fs::read(&p).unwrap());
        }
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn no_stored_record_contains_a_detected_secret((secret, wrap) in planted(), place in place()) {
        let text = render(&secret, &wrap);
        let response = plant(&text, &place);
        let bytes = bytes(&response);

        // What the scanner detects anywhere in the response.
        let mut detected = Vec::new();
        Scanner::builtin().scan(&String::from_utf8(bytes.clone()).unwrap(), "$", &mut detected);
        prop_assert!(!detected.is_empty(), "the planted secret was not detected: {wrap:?} {place:?}");

        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        let record = analyze(&bytes, &requests(), ledger.key(), 2).unwrap();
        prop_assert_eq!(record.lane(), Some(Lane::Quarantine));
        prop_assert!(record.response.is_none());
        ledger.append_intake(&record, "2026-11-22T10:00:00Z").unwrap();
        let printed = serde_json::to_string(&ledger.intakes().unwrap()[0].record).unwrap();
        drop(ledger);

        let on_disk = stored_bytes(dir.path());
        for f in &detected {
            prop_assert!(!contains(&on_disk, f.secret_bytes()), "a detected value reached the ledger files");
            prop_assert!(!contains(printed.as_bytes(), f.secret_bytes()), "a detected value reached the record");
        }
        prop_assert!(!contains(&on_disk, secret.as_bytes()));
        prop_assert!(!printed.contains(&secret));
    }
}
