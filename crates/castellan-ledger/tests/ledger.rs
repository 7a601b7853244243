//! The ledger directory and the acceptance report derived from it: append-only records,
//! idempotent appends, reviewer records signed by the real `ssh-keygen` and verified with
//! the gate's verifier, and counters that only those records move.
//!
//! Without ssh-keygen the signing tests are skipped with a note, except under `CI=true`,
//! where they fail (`castellan_testkit::need_ssh_keygen!`).

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use castellan_ledger::acceptance::{
    LedgerView, ReportInputs, build_report, derive_state, summary_line, write_report,
};
use castellan_ledger::intake::analyze;
use castellan_ledger::review::{self, Decision, ReviewPayload, StoredReview};
use castellan_ledger::schema::Lane;
use castellan_ledger::store::{Appended, Ledger, LedgerError};
use castellan_sig::{SignOptions, SignerConfig, sign_file};
use castellan_testkit::{keygen, need_ssh_keygen};
use common::*;
use serde_json::{Value, json};

/// A ledger directory with the fixed fingerprint key (so ids are stable for goldens).
fn ledger_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("fingerprint.key"), hex::encode([7u8; 32])).unwrap();
    dir
}

fn intake(ledger: &mut Ledger, v: &Value) -> Appended {
    let rec = analyze(&bytes(v), &requests(), ledger.key(), 2).unwrap();
    ledger.append_intake(&rec, "2026-11-22T10:00:00Z").unwrap()
}

#[test]
fn records_are_append_only_and_appends_idempotent() {
    let dir = ledger_dir();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let first = intake(&mut ledger, &good_response(EXPORTER));
    assert_eq!(first, Appended::New(1));
    let again = intake(&mut ledger, &good_response(EXPORTER));
    assert_eq!(again, Appended::Existing(1, "2026-11-22T10:00:00Z".into()));
    assert_eq!(ledger.intakes().unwrap().len(), 1);
    drop(ledger);

    // Re-opened: the same key, the same records.
    let mut ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(
        intake(&mut ledger, &good_response(EXPORTER)),
        Appended::Existing(1, "2026-11-22T10:00:00Z".into())
    );
    drop(ledger);

    let conn = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    let upd = conn.execute("UPDATE intake SET lane = 'waiting_runtime_gate'", []);
    assert!(upd.unwrap_err().to_string().contains("append-only"));
    let del = conn.execute("DELETE FROM intake", []);
    assert!(del.unwrap_err().to_string().contains("append-only"));
    let n: i64 = conn
        .query_row("SELECT count(*) FROM intake", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn the_key_file_is_private_and_required() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    drop(ledger);
    let key = dir.path().join("fingerprint.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    std::fs::remove_file(&key).unwrap();
    let err = Ledger::open(dir.path()).unwrap_err();
    assert!(matches!(err, LedgerError::Key { .. }), "{err}");
    let err = Ledger::open_existing(dir.path().join("nope")).unwrap_err();
    assert!(matches!(err, LedgerError::Missing(_)), "{err}");
}

#[test]
fn a_foreign_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    conn.execute_batch("CREATE TABLE t (x)").unwrap();
    drop(conn);
    std::fs::write(dir.path().join("fingerprint.key"), hex::encode([7u8; 32])).unwrap();
    let err = Ledger::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("not a castellan ledger"), "{err}");
}

struct Reviewers {
    _dir: tempfile::TempDir,
    keys: Vec<PathBuf>,
    signers: SignerConfig,
}

/// reviewer1, reviewer2 (reviewer role) and ops (operational role), ed25519 by ssh-keygen.
fn reviewers() -> Reviewers {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = String::new();
    let mut keys = Vec::new();
    for name in ["reviewer1", "reviewer2", "ops"] {
        let key = keygen(dir.path(), name, "ed25519", None).private;
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        lines.push_str(&format!("{name} {}", public.trim_end()));
        lines.push('\n');
        keys.push(key);
    }
    std::fs::write(dir.path().join("allowed_signers"), lines).unwrap();
    let toml = "allowed_signers = \"allowed_signers\"\n[roles]\nreviewer1 = \"reviewer\"\nreviewer2 = \"reviewer\"\nops = \"operational\"\n";
    std::fs::write(dir.path().join("signers.toml"), toml).unwrap();
    let signers = SignerConfig::load(dir.path().join("signers.toml")).unwrap();
    Reviewers {
        _dir: dir,
        keys,
        signers,
    }
}

fn sign_review(
    ledger: &mut Ledger,
    signers: &SignerConfig,
    key: &Path,
    i: usize,
    decision: Decision,
    at: &str,
) -> Result<(), String> {
    let draft = &requests().request_drafts[i];
    let view = LedgerView::load(ledger, Some(signers)).unwrap();
    let state = derive_state(draft, Some(&view), Some(signers));
    let latest = state.latest.unwrap();
    let payload = ReviewPayload {
        version: 1,
        candidate: latest.candidate_id.clone(),
        response: latest.response_id.clone(),
        surface_sha256: draft.repo_sha256.clone(),
        decision,
        reason: format!("{} after checking OPS-2291", decision.as_str()),
        reviewed_at: at.into(),
        nonce: hex::encode(rand::random::<[u8; 16]>()),
    };
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("review.toml");
    std::fs::write(&path, payload.render()).unwrap();
    let sig = sign_file(&SignOptions::new(key), review::NAMESPACE, &path).unwrap();
    let stored = StoredReview {
        payload: payload.render().into_bytes(),
        signature: std::fs::read(sig).unwrap(),
    };
    let v = review::verify(&stored, signers).map_err(|e| e.to_string())?;
    ledger
        .append_review(
            &v.payload,
            &v.signer,
            &stored.signature,
            "2026-11-22T10:00:00Z",
        )
        .unwrap();
    Ok(())
}

fn report(ledger: &Ledger, signers: &SignerConfig) -> Value {
    let view = LedgerView::load(ledger, Some(signers)).unwrap();
    build_report(&ReportInputs {
        inventory: &inventory(),
        requests: &requests(),
        view: Some(&view),
        signers: Some(signers),
        generated_at: GENERATED_AT,
        git_commit: "fixture",
    })
}

fn candidate(r: &Value, i: usize) -> &Value {
    &r["acceptance_candidates"][i]
}

#[test]
fn counters_move_only_with_signed_reviewer_records() {
    need_ssh_keygen!();
    let rv = reviewers();
    let dir = ledger_dir();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    intake(&mut ledger, &good_response(EXPORTER));
    intake(&mut ledger, &good_response(COMPOSE));
    let mut leaked = good_response(TIMER);
    leaked["notes"] = json!("token ghp_R8x2Lq9ZtY4mW7nB3vK6pD1sF5hJ0cXeA2gU");
    intake(&mut ledger, &leaked);

    // Intake alone: received, quarantined, ready — nothing accepted.
    let r = report(&ledger, &rv.signers);
    assert_eq!(r["summary"]["owner_response_received_count"], 3);
    assert_eq!(r["summary"]["owner_response_quarantined_count"], 1);
    assert_eq!(r["summary"]["owner_response_accepted_count"], 0);
    assert_eq!(
        candidate(&r, EXPORTER)["status"],
        "ready_for_host_service_review"
    );
    assert_eq!(
        candidate(&r, EXPORTER)["reviewer_outcome"],
        "awaiting_reviewer_record"
    );
    assert_eq!(
        candidate(&r, TIMER)["status"],
        "quarantine_secret_or_raw_payload"
    );
    assert_eq!(
        candidate(&r, TIMER)["owner_role_or_team"],
        "pending_owner_response",
        "nothing of a quarantined response is shown"
    );

    // A key without the reviewer role cannot make a reviewer record.
    let err = sign_review(
        &mut ledger,
        &rv.signers,
        &rv.keys[2],
        EXPORTER,
        Decision::Accepted,
        "2026-11-22T10:01:00Z",
    )
    .unwrap_err();
    assert!(err.contains("reviewer role"), "{err}");

    // One reviewer accepts the ordinary surface: accepted, runtime gate still closed.
    sign_review(
        &mut ledger,
        &rv.signers,
        &rv.keys[0],
        EXPORTER,
        Decision::Accepted,
        "2026-11-22T10:02:00Z",
    )
    .unwrap();
    // The write-capable surface needs a second, distinct reviewer.
    sign_review(
        &mut ledger,
        &rv.signers,
        &rv.keys[0],
        COMPOSE,
        Decision::Accepted,
        "2026-11-22T10:03:00Z",
    )
    .unwrap();
    let r = report(&ledger, &rv.signers);
    assert_eq!(candidate(&r, EXPORTER)["status"], "waiting_runtime_gate");
    assert_eq!(candidate(&r, EXPORTER)["owner_response_accepted"], true);
    assert_eq!(candidate(&r, EXPORTER)["maintenance_window_accepted"], true);
    assert_eq!(
        candidate(&r, COMPOSE)["reviewer_outcome"],
        "extra_reviewer_record_required"
    );
    assert_eq!(candidate(&r, COMPOSE)["owner_response_accepted"], false);
    assert_eq!(r["summary"]["owner_response_accepted_count"], 1);

    sign_review(
        &mut ledger,
        &rv.signers,
        &rv.keys[1],
        COMPOSE,
        Decision::Accepted,
        "2026-11-22T10:04:00Z",
    )
    .unwrap();
    let r = report(&ledger, &rv.signers);
    assert_eq!(r["summary"]["owner_response_accepted_count"], 2);
    assert_eq!(r["execution_boundaries"]["owner_response_accepted"], true);
    for c in r["acceptance_candidates"].as_array().unwrap() {
        for (k, v) in c.as_object().unwrap() {
            if k.ends_with("_authorized")
                || k == "runtime_gate"
                || k == "action_buttons_allowed"
                || k == "secret_value_collection_allowed"
            {
                assert_eq!(v, false, "{k} must stay false");
            }
        }
    }
    for (k, v) in r["execution_boundaries"].as_object().unwrap() {
        if k.ends_with("_authorized") || k.ends_with("_allowed") {
            assert_eq!(v, false, "{k}");
        }
    }
    assert_eq!(r["summary"]["runtime_gate_count"], 0);
    insta::assert_json_snapshot!("acceptance_with_ledger", r);

    // A reviewer changes their mind: any rejection vetoes.
    sign_review(
        &mut ledger,
        &rv.signers,
        &rv.keys[1],
        COMPOSE,
        Decision::Rejected,
        "2026-11-22T10:05:00Z",
    )
    .unwrap();
    let r = report(&ledger, &rv.signers);
    assert_eq!(candidate(&r, COMPOSE)["status"], "owner_review_only_update");
    assert_eq!(candidate(&r, COMPOSE)["owner_response_rejected"], true);
    assert_eq!(r["summary"]["owner_response_rejected_count"], 1);
    assert_eq!(r["summary"]["owner_response_accepted_count"], 1);

    // A new owner response replaces the accepted one: acceptance does not carry over.
    let mut newer = good_response(EXPORTER);
    newer["notes"] = json!("second answer");
    intake(&mut ledger, &newer);
    let r = report(&ledger, &rv.signers);
    assert_eq!(
        candidate(&r, EXPORTER)["status"],
        "ready_for_host_service_review"
    );
    assert_eq!(candidate(&r, EXPORTER)["owner_response_accepted"], false);

    // Records that stop verifying (the reviewer's key was removed) stop counting.
    let only_ops = {
        let dir = tempfile::tempdir().unwrap();
        let public = std::fs::read_to_string(rv.keys[2].with_extension("pub")).unwrap();
        std::fs::write(dir.path().join("allowed_signers"), format!("ops {public}")).unwrap();
        std::fs::write(
            dir.path().join("signers.toml"),
            "allowed_signers = \"allowed_signers\"\n[roles]\nops = \"operational\"\n",
        )
        .unwrap();
        (
            SignerConfig::load(dir.path().join("signers.toml")).unwrap(),
            dir,
        )
    };
    let view = LedgerView::load(&ledger, Some(&only_ops.0)).unwrap();
    assert!(view.reviews.is_empty());
    assert_eq!(view.refused.len(), 4);
    let r = report(&ledger, &only_ops.0);
    assert_eq!(r["summary"]["owner_response_accepted_count"], 0);
    assert_eq!(r["summary"]["owner_response_rejected_count"], 0);
}

#[test]
fn an_acceptance_of_a_response_that_is_not_ready_counts_for_nothing() {
    need_ssh_keygen!();
    let rv = reviewers();
    let dir = ledger_dir();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let mut incomplete = good_response(EXPORTER);
    incomplete.as_object_mut().unwrap().remove("rollback_owner");
    intake(&mut ledger, &incomplete);
    sign_review(
        &mut ledger,
        &rv.signers,
        &rv.keys[0],
        EXPORTER,
        Decision::Accepted,
        "2026-11-22T10:02:00Z",
    )
    .unwrap();
    let r = report(&ledger, &rv.signers);
    assert_eq!(candidate(&r, EXPORTER)["status"], "request_supplement");
    assert_eq!(candidate(&r, EXPORTER)["supplement_requested"], true);
    assert_eq!(candidate(&r, EXPORTER)["owner_response_accepted"], false);
    assert_eq!(r["summary"]["owner_response_accepted_count"], 0);
    let state = derive_state(
        &requests().request_drafts[EXPORTER],
        Some(&LedgerView::load(&ledger, Some(&rv.signers)).unwrap()),
        Some(&rv.signers),
    );
    assert_eq!(state.lane, Lane::RequestSupplement);
}

#[test]
fn a_report_without_a_ledger_is_all_zero_and_with_an_empty_one_too() {
    let dir = ledger_dir();
    let ledger = Ledger::open(dir.path()).unwrap();
    let view = LedgerView::load(&ledger, None).unwrap();
    let with = build_report(&ReportInputs {
        inventory: &inventory(),
        requests: &requests(),
        view: Some(&view),
        signers: None,
        generated_at: GENERATED_AT,
        git_commit: "fixture",
    });
    let without = build_report(&ReportInputs {
        inventory: &inventory(),
        requests: &requests(),
        view: None,
        signers: None,
        generated_at: GENERATED_AT,
        git_commit: "fixture",
    });
    assert_eq!(with, without);
    insta::assert_json_snapshot!("acceptance_without_ledger", without);
}

#[test]
fn the_streamed_report_is_byte_identical_to_serialising_the_whole_document() {
    let dir = ledger_dir();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    intake(&mut ledger, &good_response(EXPORTER));
    let mut leaked = good_response(TIMER);
    leaked["notes"] = json!("token ghp_R8x2Lq9ZtY4mW7nB3vK6pD1sF5hJ0cXeA2gU");
    intake(&mut ledger, &leaked);
    let mut partial = good_response(COMPOSE);
    partial["rollback_owner"] = json!(null);
    intake(&mut ledger, &partial);
    let view = LedgerView::load(&ledger, None).unwrap();
    let (bytes, summary) = write_report(
        &ReportInputs {
            inventory: &inventory(),
            requests: &requests(),
            view: Some(&view),
            signers: None,
            generated_at: GENERATED_AT,
            git_commit: "fixture",
        },
        Vec::new(),
    )
    .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let whole: Value = serde_json::from_str(&text).unwrap();
    // What the report was before it was streamed: the whole `Value`, pretty-printed.
    assert_eq!(text, castellan_ledger::to_pretty_json(&whole));
    assert_eq!(summary.line(), summary_line(&whole));
    let c = &whole["acceptance_candidates"][EXPORTER];
    assert_eq!(c["redacted_evidence_refs"].as_array().unwrap().len(), 3);
    assert_eq!(whole["summary"]["owner_response_received_count"], 3);
}

/// The rules for a new reviewer record live in the ledger, not in the CLI: nothing to
/// review without a response; a response that is not ready cannot be accepted (it can be
/// rejected); a reason holding a secret is refused before anything is signed; a changed
/// surface needs a fresh response; an over-long reason is refused.
#[test]
fn the_review_policy_is_decided_before_signing() {
    use castellan_ledger::review::{Prepared, ReviewRefused, ReviewRequest, prepare};
    use castellan_ledger::secrets::Scanner;
    let dir = ledger_dir();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let reqs = requests();
    let draft = &reqs.request_drafts[EXPORTER];
    let scanner = Scanner::builtin();
    let ask = |ledger: &Ledger, draft, decision, reason| {
        let view = LedgerView::load(ledger, None).unwrap();
        let state = derive_state(draft, Some(&view), None);
        let req = ReviewRequest {
            draft,
            decision,
            reason,
            signer: None,
            reviewed_at: "2026-11-22T10:05:00Z",
            nonce: "00112233445566778899aabbccddeeff",
        };
        prepare(req, &state, &view, scanner)
    };
    assert!(matches!(
        ask(&ledger, draft, Decision::Accepted, "fine"),
        Err(ReviewRefused::NoResponse { .. })
    ));

    let mut incomplete = good_response(EXPORTER);
    incomplete.as_object_mut().unwrap().remove("rollback_owner");
    intake(&mut ledger, &incomplete);
    let not_ready = ask(&ledger, draft, Decision::Accepted, "fine");
    assert!(
        matches!(&not_ready, Err(ReviewRefused::NotReady { lane, .. }) if lane == "request_supplement"),
        "{not_ready:?}"
    );
    let rejected = ask(&ledger, draft, Decision::Rejected, "  no rollback owner  ");
    let Ok(Prepared::Sign(payload)) = rejected else {
        panic!("a rejection of an unready response is allowed: {rejected:?}");
    };
    assert_eq!(payload.reason, "no rollback owner", "the reason is trimmed");
    assert_eq!(payload.surface_sha256, draft.repo_sha256);

    let secret = ask(
        &ledger,
        draft,
        Decision::Rejected,
        "token ghp_1234567890abcdefghijklmnopqrstuvwxyzAB leaked",
    );
    assert!(
        matches!(&secret, Err(ReviewRefused::SecretInReason { .. })),
        "{secret:?}"
    );
    assert!(
        !format!("{secret:?}").contains("ghp_1234"),
        "the secret is not echoed"
    );

    let long = "x".repeat(review::MAX_REASON_CHARS + 1);
    assert!(matches!(
        ask(&ledger, draft, Decision::Rejected, &long),
        Err(ReviewRefused::Invalid(_))
    ));

    let mut changed = draft.clone();
    changed.repo_sha256 = "0".repeat(64);
    assert!(matches!(
        ask(&ledger, &changed, Decision::Rejected, "fine"),
        Err(ReviewRefused::Stale)
    ));
}
