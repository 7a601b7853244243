//! The gate's decision table: every rejection reason, its precedence, and acceptance.
//! (The same matrix runs against real `ssh-keygen` signatures in the agent's tests.)
#![allow(clippy::unwrap_used, clippy::type_complexity)]

use std::collections::{BTreeMap, BTreeSet};

use castellan_core::Operation;
use castellan_core::classify::{JournalProvenance, classify};
use castellan_core::gate::{Decision, DestructiveAction, Evidence, Policy, SignatureCheck, decide};
use castellan_core::model::GuestKind;
use castellan_core::op::SignedOp;
use castellan_core::{RejectReason, Role, Target};
use jiff::{SignedDuration, Timestamp};

const DIGEST: &str = "0123456789abcdef0123456789abcdef01234567";

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn action() -> DestructiveAction {
    DestructiveAction {
        op: Operation::Destroy,
        host: "pve-01".into(),
        target: Target::guest(GuestKind::Lxc, 101),
        params: BTreeMap::new(),
        state_digest: DIGEST.into(),
    }
}

fn op() -> SignedOp {
    action().payload(
        "00112233445566778899aabbccddeeff".into(),
        t("2026-11-22T10:00:00Z"),
        t("2026-11-22T11:00:00Z"),
    )
}

fn ok(fp: &str, roles: &[Role]) -> SignatureCheck {
    SignatureCheck::Verified {
        fingerprint: fp.into(),
        principals: vec!["alice".into()],
        roles: roles.iter().copied().collect::<BTreeSet<_>>(),
    }
}

fn bad(reason: RejectReason) -> SignatureCheck {
    SignatureCheck::Rejected {
        reason,
        detail: "x".into(),
    }
}

fn policy(now: &str, threshold: u32) -> Policy<'static> {
    Policy {
        host: "pve-01",
        effective_now: t(now),
        threshold,
        state_since: None,
    }
}

fn run(
    a: &DestructiveAction,
    o: &SignedOp,
    sigs: &[SignatureCheck],
    consumed: bool,
    p: Policy<'_>,
) -> Decision {
    let class = classify(a.op, &[], None, None);
    decide(
        a,
        class,
        Some(Evidence {
            op: o,
            signatures: sigs,
            nonce_consumed: consumed,
        }),
        p,
    )
}

fn reason(d: &Decision) -> Option<RejectReason> {
    match d {
        Decision::Rejected { reason, .. } => Some(*reason),
        _ => None,
    }
}

const NOW: &str = "2026-11-22T10:30:00Z";

#[test]
fn valid_op_is_accepted_with_its_signer() {
    let d = run(
        &action(),
        &op(),
        &[ok("SHA256:a", &[Role::Operational])],
        false,
        policy(NOW, 1),
    );
    let Decision::Accepted(ap) = d else {
        panic!("{d:?}")
    };
    assert_eq!(ap.signers(), ["SHA256:a".to_owned()]);
    assert_eq!(ap.nonce(), op().nonce);
    assert_eq!(ap.op_digest(), op().digest());
    assert_eq!(ap.action(), &action());
}

#[test]
fn unsigned_destructive_is_pending() {
    let a = action();
    let class = classify(a.op, &[], None, None);
    assert_eq!(
        decide(&a, class, None, policy(NOW, 1)),
        Decision::PendingSignature
    );
}

#[test]
fn benign_is_allowed_without_evidence() {
    let a = DestructiveAction {
        op: Operation::Start,
        ..action()
    };
    let class = classify(a.op, &[], None, None);
    assert_eq!(decide(&a, class, None, policy(NOW, 1)), Decision::Allowed);
}

#[test]
fn journal_scratch_provenance_makes_destroy_benign_but_nothing_else_does() {
    let a = action();
    let scratch = Some(JournalProvenance::AgentScratch { transaction: 1 });
    assert_eq!(
        decide(&a, classify(a.op, &[], scratch, None), None, policy(NOW, 1)),
        Decision::Allowed
    );
    // Parameters cannot smuggle provenance in: the classifier ignores them for destroy.
    let mut smuggled = a.clone();
    smuggled
        .params
        .insert("tags".into(), "castellan-scratch".into());
    assert_eq!(
        decide(
            &smuggled,
            classify(smuggled.op, &[], None, None),
            None,
            policy(NOW, 1)
        ),
        Decision::PendingSignature
    );
}

#[test]
fn rejection_table() {
    use RejectReason::*;
    let op_role = [Role::Operational];
    let good = || vec![ok("SHA256:a", &op_role)];
    let mut other_host = op();
    other_host.host = "pve-02".into();
    let mut other_guest = op();
    other_guest.target = Target::guest(GuestKind::Lxc, 102);
    let mut other_kind = op();
    other_kind.target = Target::guest(GuestKind::Qemu, 101);
    let mut container = op();
    container.target = Target::container("101").unwrap();
    let mut other_op = op();
    other_op.op = "wipe_storage".into();
    let mut other_params = op();
    other_params.params.insert("purge".into(), "1".into());
    let mut stale = op();
    stale.precondition = Some("ffffffffffffffffffffffffffffffffffffffff".into());
    let mut unbound = op();
    unbound.precondition = None;

    let cases: Vec<(
        &str,
        SignedOp,
        Vec<SignatureCheck>,
        bool,
        Policy<'_>,
        RejectReason,
    )> = vec![
        (
            "unknown signer",
            op(),
            vec![bad(UnknownSigner)],
            false,
            policy(NOW, 1),
            UnknownSigner,
        ),
        (
            "bad signature",
            op(),
            vec![bad(BadSignature)],
            false,
            policy(NOW, 1),
            BadSignature,
        ),
        (
            "wrong namespace",
            op(),
            vec![bad(WrongNamespace)],
            false,
            policy(NOW, 1),
            WrongNamespace,
        ),
        (
            "no signature",
            op(),
            vec![],
            false,
            policy(NOW, 1),
            BadFormat,
        ),
        (
            "wrong host",
            other_host,
            good(),
            false,
            policy(NOW, 1),
            WrongHost,
        ),
        (
            "wrong guest",
            other_guest,
            good(),
            false,
            policy(NOW, 1),
            BindingMismatch,
        ),
        (
            "same vmid, other kind",
            other_kind,
            good(),
            false,
            policy(NOW, 1),
            BindingMismatch,
        ),
        (
            "a container named like the vmid",
            container,
            good(),
            false,
            policy(NOW, 1),
            BindingMismatch,
        ),
        (
            "wrong op",
            other_op,
            good(),
            false,
            policy(NOW, 1),
            BindingMismatch,
        ),
        (
            "wrong params",
            other_params,
            good(),
            false,
            policy(NOW, 1),
            BindingMismatch,
        ),
        (
            "expired",
            op(),
            good(),
            false,
            policy("2026-11-22T11:00:00Z", 1),
            Expired,
        ),
        (
            "not yet valid",
            op(),
            good(),
            false,
            policy("2026-11-22T09:59:59Z", 1),
            NotYetValid,
        ),
        ("replayed", op(), good(), true, policy(NOW, 1), Replayed),
        (
            "recovery key",
            op(),
            vec![ok("SHA256:r", &[Role::Recovery])],
            false,
            policy(NOW, 1),
            RoleDenied,
        ),
        (
            "reviewer key",
            op(),
            vec![ok("SHA256:v", &[Role::Reviewer])],
            false,
            policy(NOW, 1),
            RoleDenied,
        ),
        (
            "no role",
            op(),
            vec![ok("SHA256:n", &[])],
            false,
            policy(NOW, 1),
            RoleDenied,
        ),
        (
            "same key twice",
            op(),
            vec![ok("SHA256:a", &op_role), ok("SHA256:a", &op_role)],
            false,
            policy(NOW, 2),
            ThresholdNotMet,
        ),
        (
            "second key is recovery-only",
            op(),
            vec![ok("SHA256:a", &op_role), ok("SHA256:r", &[Role::Recovery])],
            false,
            policy(NOW, 2),
            ThresholdNotMet,
        ),
        (
            "stale precondition",
            stale,
            good(),
            false,
            policy(NOW, 1),
            StalePrecondition,
        ),
        (
            "no precondition",
            unbound,
            good(),
            false,
            policy(NOW, 1),
            StalePrecondition,
        ),
    ];
    for (what, o, sigs, consumed, p, want) in cases {
        let d = run(&action(), &o, &sigs, consumed, p);
        assert_eq!(reason(&d), Some(want), "{what}: {d:?}");
    }
}

#[test]
fn threshold_met_by_distinct_keys_and_a_bad_extra_signature_does_not_block() {
    let op_role = [Role::Operational];
    let sigs = [
        ok("SHA256:a", &op_role),
        bad(RejectReason::UnknownSigner),
        ok("SHA256:b", &op_role),
    ];
    let d = run(&action(), &op(), &sigs, false, policy(NOW, 2));
    let Decision::Accepted(ap) = d else {
        panic!("{d:?}")
    };
    assert_eq!(ap.signers().len(), 2);
}

#[test]
fn window_edges() {
    let good = [ok("SHA256:a", &[Role::Operational])];
    let o = op();
    assert!(matches!(
        run(
            &action(),
            &o,
            &good,
            false,
            policy("2026-11-22T10:00:00Z", 1)
        ),
        Decision::Accepted(_)
    ));
    let last = o.not_after - SignedDuration::from_secs(1);
    let p = Policy {
        host: "pve-01",
        effective_now: last,
        threshold: 1,
        state_since: None,
    };
    assert!(matches!(
        run(&action(), &o, &good, false, p),
        Decision::Accepted(_)
    ));
}
