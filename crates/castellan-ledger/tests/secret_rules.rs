//! The secret scanner against its rules' examples, realistic owner responses and the
//! evidence references an owner response legitimately carries.

#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use castellan_ledger::secrets::{Finding, FindingKind, FingerprintKey, Scanner, redact_text};
use proptest::prelude::*;

fn scan(text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    Scanner::builtin().scan(text, "response", &mut out);
    out
}

fn describe(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| format!("{} {:?} @{:?} {}", f.rule_id, f.kind, f.span, f.location))
        .collect()
}

/// Asserts `text` has a finding from `rule_id` whose secret is `secret` (if given).
#[track_caller]
fn check_found(text: &str, rule_id: &str, kind: FindingKind, secret: Option<&str>) {
    let findings = scan(text);
    let hit = findings
        .iter()
        .find(|f| f.rule_id == rule_id && f.kind == kind);
    let Some(hit) = hit else {
        panic!(
            "{rule_id} ({kind:?}) not found in {text:?}; found {:#?}",
            describe(&findings)
        );
    };
    if let Some(secret) = secret {
        assert_eq!(
            String::from_utf8_lossy(hit.secret_bytes()),
            secret,
            "secret of {rule_id} in {text:?}"
        );
    }
    let redacted = redact_text(text, &findings);
    let value = String::from_utf8_lossy(hit.secret_bytes()).into_owned();
    if hit.location == "response" {
        assert!(
            !redacted.contains(&value),
            "redacted text still holds the secret: {redacted}"
        );
    }
}

#[track_caller]
fn check_clean(text: &str) {
    let findings = scan(text);
    assert!(
        findings.is_empty(),
        "expected nothing in {text:?}, found {:#?}",
        describe(&findings)
    );
}

#[test]
fn every_rule_finds_its_examples_and_not_its_negative_examples() {
    let scanner = Scanner::builtin();
    let mut failures = Vec::new();
    let mut examples = 0;
    for rule in scanner.rules() {
        assert!(!rule.examples.is_empty(), "{} has no examples", rule.id);
        for example in &rule.examples {
            examples += 1;
            let findings = scan(example);
            if !findings.iter().any(|f| f.rule_id == rule.id) {
                failures.push(format!(
                    "{}: missed example {example:?}; found {:?}",
                    rule.id,
                    describe(&findings)
                ));
            }
        }
        for negative in &rule.negative_examples {
            examples += 1;
            let findings = scan(negative);
            if findings.iter().any(|f| f.rule_id == rule.id) {
                failures.push(format!(
                    "{}: fired on negative example {negative:?}",
                    rule.id
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {examples} example checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn rule_ids_are_namespaced_and_unique() {
    let mut ids: Vec<&str> = Scanner::builtin().rules().map(|r| r.id.as_str()).collect();
    assert!(ids.iter().all(|id| id.starts_with("castellan.")), "{ids:?}");
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n);
    assert_eq!(Scanner::builtin().rule_count(), n);
}

// ---- realistic owner responses ----------------------------------------------------

const GHP: &str = "ghp_Zq3kT9xW2mLp8RvN4bYc6HdJ1sFa7GeU0oQi";
const AKID: &str = "AKIAZ7QK3LMN4PXR2TWY";
const AWS_SECRET: &str = "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";

#[test]
fn github_pat_in_a_sentence() {
    check_found(
        &format!("Rollback owner is @ops-lead; for the repo sync I used {GHP} as the credential."),
        "castellan.github.pat",
        FindingKind::Token,
        Some(GHP),
    );
}

#[test]
fn aws_key_pair() {
    let text =
        format!("[default]\naws_access_key_id = {AKID}\naws_secret_access_key = {AWS_SECRET}\n");
    check_found(
        &text,
        "castellan.aws.access_key_id",
        FindingKind::Token,
        Some(AKID),
    );
    check_found(
        &text,
        "castellan.aws.secret_access_key",
        FindingKind::Token,
        Some(AWS_SECRET),
    );
}

#[test]
fn pem_private_key() {
    let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu8Zq3kT9xW2mLp8RvN4bYc6HdJ1sFa7GeU0oQi\nZq3kT9xW2mLp8RvN4bYc6HdJ1sFa7GeU0oQiMIIEowIBAAKCAQEAu8\n-----END RSA PRIVATE KEY-----";
    let text = format!("Post-check plan: verify TLS.\n{key}\nThanks");
    check_found(
        &text,
        "castellan.private_key",
        FindingKind::PrivateKey,
        Some(key),
    );
    assert_eq!(
        redact_text(&text, &scan(&text)),
        "Post-check plan: verify TLS.\n[REDACTED:castellan.private_key]\nThanks"
    );
}

#[test]
fn env_dump_with_a_password() {
    let text = "output of printenv on web01:\nHOSTNAME=web01\nDB_HOST=db01.internal\nDB_USER=app\nDB_PASSWORD=Winter2024!\nLANG=C.UTF-8\n";
    check_found(text, "castellan.env_dump", FindingKind::EnvDump, None);
    check_found(
        text,
        "castellan.password_assignment",
        FindingKind::Password,
        Some("Winter2024!"),
    );
    assert!(!redact_text(text, &scan(text)).contains("Winter2024!"));
}

#[test]
fn cookie_header() {
    check_found(
        "Request headers:\nCookie: sessionid=q8zr2lmx0vb7nt4kw9syp1ab; theme=dark",
        "castellan.cookie_header",
        FindingKind::Cookie,
        None,
    );
    check_found(
        "Request headers:\nCookie: sessionid=q8zr2lmx0vb7nt4kw9syp1ab; theme=dark",
        "castellan.session_cookie",
        FindingKind::Cookie,
        Some("q8zr2lmx0vb7nt4kw9syp1ab"),
    );
}

#[test]
fn connection_strings() {
    check_found(
        "rollback uses postgres://backup:Tr0ub4dor3@db01.internal:5432/ops",
        "castellan.connection_string",
        FindingKind::ConnectionString,
        Some("Tr0ub4dor3"),
    );
    check_found(
        "postgres://user:pass@host/db",
        "castellan.connection_string",
        FindingKind::ConnectionString,
        Some("pass"),
    );
}

#[test]
fn base64_wrapped_token() {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("token={GHP}"));
    let text = format!("config blob: {encoded}");
    let findings = scan(&text);
    let hit = findings
        .iter()
        .find(|f| f.rule_id == "castellan.github.pat")
        .unwrap();
    assert_eq!(hit.location, "response (base64)");
    assert_eq!(&text[hit.span.clone()], encoded);
    assert_eq!(hit.secret_bytes(), GHP.as_bytes());
    let redacted = redact_text(&text, &findings);
    assert!(!redacted.contains(&encoded), "{redacted}");
}

#[test]
fn base64_twice_is_still_found_but_not_three_times() {
    let once =
        base64::engine::general_purpose::STANDARD.encode(format!("export GITHUB_TOKEN={GHP}"));
    let twice = base64::engine::general_purpose::STANDARD.encode(&once);
    let findings = scan(&twice);
    let hit = findings
        .iter()
        .find(|f| f.rule_id == "castellan.github.pat")
        .unwrap();
    assert_eq!(hit.location, "response (base64) (base64)");
    let thrice = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&twice);
    assert!(
        !scan(&thrice)
            .iter()
            .any(|f| f.rule_id == "castellan.github.pat")
    );
}

#[test]
fn docker_config_auth() {
    let text = r#"{"auths":{"registry":{"auth":"dXNlcjpodW50ZXIy"}}}"#;
    check_found(
        text,
        "castellan.docker_config_auth",
        FindingKind::Password,
        Some("dXNlcjpodW50ZXIy"),
    );
    let findings = scan(text);
    let decoded = findings
        .iter()
        .find(|f| f.rule_id == "castellan.base64_credentials")
        .unwrap();
    assert_eq!(decoded.secret_bytes(), b"hunter2");
    assert_eq!(decoded.location, "response (base64)");
}

#[test]
fn partial_secrets() {
    check_found(
        "the old one was ghp_ab12",
        "castellan.partial_token",
        FindingKind::PartialSecret,
        Some("ghp_ab12"),
    );
    check_found(
        "masked: ghp_****wxyz",
        "castellan.partial_token",
        FindingKind::PartialSecret,
        Some("ghp_****wxyz"),
    );
    check_found(
        "AKIA...WXYZ",
        "castellan.partial_token",
        FindingKind::PartialSecret,
        Some("AKIA...WXYZ"),
    );
    check_found(
        "the token starts with glpat-abc12",
        "castellan.partial_token",
        FindingKind::PartialSecret,
        Some("glpat-abc12"),
    );
    // A full token is a token, not a partial one.
    let full = scan(GHP);
    assert!(
        full.iter().all(|f| f.kind != FindingKind::PartialSecret),
        "{:?}",
        describe(&full)
    );
}

#[test]
fn jwts() {
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJvcHMtYm90IiwiaWF0IjoxNzAwMDAwMDAwfQ.Zq3kT9xW2mLp8RvN4bYc6HdJ1sFa7GeU0oQiAbCdEfG";
    check_found(
        &format!("Authorization: Bearer {jwt}"),
        "castellan.jwt",
        FindingKind::Token,
        Some(jwt),
    );
    check_found(
        &format!("id_token={jwt}&state=x"),
        "castellan.jwt",
        FindingKind::Token,
        Some(jwt),
    );
}

#[test]
fn more_owner_response_shapes() {
    check_found(
        "--password 'S3cr3t-Pass'",
        "castellan.password_flag",
        FindingKind::Password,
        Some("S3cr3t-Pass"),
    );
    check_found(
        "Authorization: Basic YWRtaW46aHVudGVyMg==",
        "castellan.basic_auth_header",
        FindingKind::Password,
        Some("YWRtaW46aHVudGVyMg=="),
    );
    check_found(
        "alerts: https://hooks.slack.com/services/T0ABCDEF1/B0ABCDEF12/Zq3kT9xW2mLp8RvN4bYc6HdJ",
        "castellan.slack.webhook",
        FindingKind::Token,
        None,
    );
    check_found(
        "git remote: https://oauth2:Zq3kT9xW2mLp8RvN@git.example.com/ops/infra.git",
        "castellan.url_credentials",
        FindingKind::Password,
        Some("Zq3kT9xW2mLp8RvN"),
    );
    check_found(
        "client_secret: \"k8s-0ps-cl1ent\"",
        "castellan.password_assignment",
        FindingKind::Password,
        Some("k8s-0ps-cl1ent"),
    );
    check_found(
        "{\"db\": {\"password\": \"P@ss w0rd!\"}}",
        "castellan.password_assignment",
        FindingKind::Password,
        Some("P@ss w0rd!"),
    );
}

#[test]
fn percent_encoded_secret() {
    // "password=hunter2x" inside a percent-encoded query value.
    let text = "callback: https://example.com/cb?next=%2Flogin%3Fpassword%3Dhunter2x";
    let findings = scan(text);
    let hit = findings
        .iter()
        .find(|f| f.rule_id == "castellan.password_assignment")
        .unwrap();
    assert_eq!(hit.location, "response (percent-encoded)");
    assert_eq!(hit.secret_bytes(), b"hunter2x");
}

#[test]
fn high_entropy_fallback() {
    let token = "q8Zr2LmX0vB7nT4kW9sYp1Hd";
    check_found(
        &format!("the shared secret for the bot: {token}"),
        "castellan.entropy",
        FindingKind::HighEntropy,
        Some(token),
    );
}

/// Random tokens of 20 to 64 characters in the base62, base64 and base64url alphabets,
/// from a fixed generator: the entropy check must find nearly all.
#[test]
fn entropy_threshold_finds_random_tokens() {
    const ALPHABETS: [&[u8]; 3] = [
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut total, mut found) = (0, 0);
    for len in [20, 24, 32, 40, 64] {
        for alphabet in ALPHABETS {
            for _ in 0..200 {
                let token: String = (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize] as char)
                    .collect();
                let b = token.as_bytes();
                if !(b.iter().any(u8::is_ascii_uppercase)
                    && b.iter().any(u8::is_ascii_lowercase)
                    && b.iter().any(u8::is_ascii_digit))
                {
                    continue;
                }
                total += 1;
                let text = format!("value: {token} end");
                if scan(&text).iter().any(|f| f.span == (7..7 + len)) {
                    found += 1;
                }
            }
        }
    }
    let rate = f64::from(found) / f64::from(total);
    assert!(
        rate > 0.99,
        "found {found} of {total} random tokens ({rate:.4})"
    );
}

// ---- what must not fire ----------------------------------------------------------

#[test]
fn evidence_references_are_not_secrets() {
    for text in [
        "image digest sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "fixed in commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "fixed in 3F786850E387550FDAB836ED7E6DC881DE23001B",
        "https://git.example.com/ops/infra/-/merge_requests/123",
        "see OPS-1234 and INC-77",
        "request id 0b1f6471-1bf0-4dda-aec3-cb9272f09590",
        "password: <redacted>",
        "token: ${GITHUB_TOKEN}",
        "db_password: \"{{ vault_db_password }}\"",
        "password: {{ vault_db_password }}",
        "maintenance starts 2024-06-01T02:00:00+08:00 and ends 2024-06-01T04:00:00Z",
        "OnCalendar=Sun *-*-* 02:00:00",
        "cron: 0 2 * * 0",
        "We restart the service during the Sunday window and page the on-call owner if the post-check fails.",
        "the old token (ghp_****) was revoked",
        "ghp_...",
        "units: castellan-agent.service, backup@nightly.timer, sys-devices-platform-serial8250-tty-ttyS1.device",
        "nginx@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "registry.example.com/ops/nginx-proxy:1.25.3-alpine3.19",
        "api_key: pending_owner_response",
        "password: stored in Vault at kv/ops/db",
        "secretKeyRef:\n  name: db-credentials\n  key: password",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx7q9Zr2LmX0vB7nT4kW9sYp1HdAbCdEfGhIjKlMn ops@bastion",
        "/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/rg-ops-prod01/providers/Microsoft.Compute/virtualMachines/vm01",
        "{\"rollback_owner\": \"team-platform\", \"restart_window\": \"Sun 02:00-04:00\", \"evidence\": [\"OPS-1234\", \"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"]}",
        "HostServiceOwnerResponseAcceptanceV1 getOwnerResponseAcceptanceV1Handler",
        "The disable switch is `systemctl disable --now repair-bot.timer`.",
        "Bearer tokens are issued by the IdP and never stored on the host.",
        "Authorization: Bearer <token>",
        "password: ********",
        "credentials: /etc/castellan/creds.json",
        "password policy: 90 days, rotated by the vault job",
        "secret: see vault",
        "token: n/a",
        "token: rotated",
        "The API key: in Vault under kv/ops/monitoring.",
        "Secret: the deploy key lives in Vault",
        "password: 1Password vault item db-prod",
        "Password: N/A (key-based auth only)",
        "{\"password\": null, \"token\": \"ghp_****\", \"api_key\": \"<redacted>\"}",
        "- name: Install token\n  token: \"{{ lookup('env', 'TOKEN') }}\"",
        "TLS: certificate from the internal CA, renewed by cert-manager; the private key never leaves the host.",
    ] {
        check_clean(text);
    }
}

#[test]
fn public_key_material_is_not_high_entropy() {
    check_clean(
        "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\nRTESMBAGA1UEChMJQmFsdGltb3JlMRMwEQYDVQQLEwpDeWJlclRydXN0MSIwIAYD\n-----END CERTIFICATE-----",
    );
    check_clean(
        "-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgJKxoLBJBivUPNTUJUSslQTt2hD\njozKvHarKeN8uYFqgAAAAJY2FzdGVsbGFuAAAAAAAAAAZzaGE1MTIAAABTAAAAC3NzaC1lZD\n-----END SSH SIGNATURE-----",
    );
}

// ---- the finding's value never leaks -----------------------------------------------

#[test]
fn debug_never_shows_the_secret() {
    let text = format!("token {GHP}");
    let findings = scan(&text);
    assert!(!findings.is_empty());
    let debug = format!("{findings:?} {findings:#?}");
    assert!(!debug.contains(GHP), "{debug}");
    assert!(!debug.contains(&GHP[4..]), "{debug}");

    let key = FingerprintKey::from_bytes([7u8; 32]);
    let debug = format!("{key:?}");
    assert!(debug.contains("[redacted]"));
    assert!(!debug.contains('7'), "{debug}");
}

#[test]
fn fingerprints_are_keyed_and_deterministic() {
    let findings = scan(&format!("token {GHP}"));
    let f = findings
        .iter()
        .find(|f| f.rule_id == "castellan.github.pat")
        .unwrap();
    let k1 = FingerprintKey::from_bytes([1u8; 32]);
    let k2 = FingerprintKey::from_bytes([2u8; 32]);
    let fp = f.fingerprint(&k1);
    assert!(fp.starts_with("hmac-sha256:"));
    assert_eq!(fp.len(), "hmac-sha256:".len() + 16);
    assert_eq!(fp, f.fingerprint(&FingerprintKey::from_bytes([1u8; 32])));
    assert_ne!(fp, f.fingerprint(&k2));
    assert_ne!(
        f.fingerprint(&FingerprintKey::generate()),
        f.fingerprint(&FingerprintKey::generate())
    );

    let redacted = f.redact(&k1);
    assert_eq!(redacted.fingerprint, fp);
    assert_eq!(redacted.length, GHP.len());
    assert_eq!(f.secret_len(), GHP.len());
    let json = serde_json::to_string(&redacted).unwrap();
    assert!(!json.contains(GHP), "{json}");
    assert!(json.contains("\"kind\":\"token\""), "{json}");
    let back: castellan_ledger::secrets::RedactedFinding = serde_json::from_str(&json).unwrap();
    assert_eq!(back, redacted);
}

#[test]
fn generated_keys_differ_and_round_trip() {
    let k = FingerprintKey::generate();
    assert_ne!(k.as_bytes(), FingerprintKey::generate().as_bytes());
    assert_eq!(
        FingerprintKey::from_bytes(*k.as_bytes()).as_bytes(),
        k.as_bytes()
    );
}

#[test]
fn scan_appends_and_deduplicates() {
    let text = format!("token {GHP}");
    let mut out = Vec::new();
    Scanner::builtin().scan(&text, "a", &mut out);
    let n = out.len();
    Scanner::builtin().scan(&text, "a", &mut out);
    assert_eq!(out.len(), n, "same text and location twice adds nothing");
    Scanner::builtin().scan(&text, "b", &mut out);
    assert_eq!(out.len(), 2 * n);
}

const KNOWN_SECRETS: &[&str] = &[
    GHP,
    AKID,
    "glpat-Zq3kT9xW2mLp8RvN4bYc",
    "xoxb-123456789012-1234567890123-Zq3kT9xW2mLp8RvN4bYc6HdJ",
    "sk_live_Zq3kT9xW2mLp8RvN4bYc6HdJ",
    "AIzaSyZq3kT9xW2mLp8RvN4bYc6HdJ1sFa7GeU0",
    "npm_Zq3kT9xW2mLp8RvN4bYc6HdJ1sFa7GeU0oQi",
    "dop_v1_9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "hvs.CAESIZq3kT9xW2mLp8RvN4bYc6HdJ1sFa7GeU0oQi",
    "postgres://ops:Tr0ub4dor3@db01/ops",
    "ghp_ab12",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever surrounds it, a known secret does not survive redaction.
    #[test]
    fn redaction_removes_an_inserted_secret(
        before in "[ -~\n]{0,200}",
        after in "[ -~\n]{0,200}",
        which in 0..KNOWN_SECRETS.len(),
    ) {
        let secret = KNOWN_SECRETS[which];
        let text = format!("{before} {secret} {after}");
        let findings = scan(&text);
        let redacted = redact_text(&text, &findings);
        prop_assert!(!redacted.contains(secret), "{:?} -> {:?}", text, redacted);
    }

    /// The scanner never panics, and spans always lie on character boundaries in the text.
    #[test]
    fn spans_are_in_bounds(text in "\\PC{0,300}") {
        for f in scan(&text) {
            prop_assert!(f.span.end <= text.len());
            prop_assert!(text.is_char_boundary(f.span.start) && text.is_char_boundary(f.span.end));
        }
    }
}
