//! The reversibility gate's adversarial matrix, end to end through the agent's
//! [`Gatekeeper`]: the real verifier (`castellan-sig`) against signatures minted by the real
//! `ssh-keygen -Y sign` (ed25519, ecdsa-256, rsa-2048 keys generated in the test), signed
//! ops dropped into the inbox as an operator would, an in-memory backend holding guest
//! 101, and a controllable clock.
//!
//! Each row checks what the gate did (executed / pending), what the node saw (destroyed or
//! not), what the audit log recorded (`op_rejected` with its typed reason, or
//! `signature_accepted`), where the op file went (`inbox/rejected/` with a `.reason` note,
//! `inbox/done/`, or left in place), whether the nonce was consumed, and that the audit
//! chain verifies at the end.
//!
//! Without `ssh-keygen` on PATH the tests print a note and pass, except under `CI=true`,
//! where they fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use castellan_agent::gatekeeper::{DestructiveOutcome, Offer, StateFacts, judge};
use castellan_agent::{Engine, Gatekeeper, Inbox, Mode, Tuning};
use castellan_core::classify::{Class, classify};
use castellan_core::gate::{Decision, DestructiveAction};
use castellan_core::model::*;
use castellan_core::op::SignedOp;
use castellan_core::plan::{Plan, plan_guest};
use castellan_core::{Normalizers, RejectReason};
use castellan_core::{Operation, Target};
use castellan_sig::SignerConfig;
use castellan_sig::sign::signature_path;
use castellan_store::{
    AuditEvent, AuditRecord, IntentState, NewIntent, Outcome, ProvenanceKind, Store, verify_chain,
};
use castellan_testkit::{Key, keygen, need_ssh_keygen, run_ok};
use common::Fake;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;

const HOST: &str = "pve-01";
const VMID: Vmid = 101;

/// Container 101, as a target.
fn ct101() -> Target {
    Target::guest(GuestKind::Lxc, VMID)
}
/// Guest 101's configuration digest. Proxmox VE's `digest` is a SHA-1 in hex, and the op
/// format only admits a precondition of 8 to 128 lower-case hex digits, so the fake
/// guest's digest is a 40-digit hex string ("d101" repeated), not the bare "d101".
const D101: &str = "d101d101d101d101d101d101d101d101d101d101";
/// A digest guest 101 had before it changed.
const D_OLD: &str = "0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d";

fn t0() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

fn mins(n: i64) -> SignedDuration {
    SignedDuration::from_mins(n)
}

// ---- ssh-keygen ------------------------------------------------------------------------

/// `ssh-keygen -Y sign -f KEY -n NS FILE`, exactly as an operator signs an op file;
/// returns what it wrote to `FILE.sig` (and removes that file).
fn sign_file(key: &Key, ns: &str, file: &Path) -> Vec<u8> {
    let sig = signature_path(file, 1);
    let _ = std::fs::remove_file(&sig);
    run_ok(
        Command::new("ssh-keygen")
            .args(["-Y", "sign", "-f"])
            .arg(&key.private)
            .args(["-n", ns])
            .arg(file),
    );
    let bytes = std::fs::read(&sig).unwrap();
    std::fs::remove_file(&sig).unwrap();
    bytes
}

fn guest101(tags: Option<&str>) -> ActualGuest {
    let mut g = ActualGuest::new(VMID, GuestKind::Lxc, ActualRun::Stopped);
    g.spec = Some(ActualSpec {
        cores: Some(1),
        memory_mib: 512,
        description: None,
        tags: tags.map(str::to_owned),
        digest: D101.to_owned(),
        disks: Default::default(),
    });
    g
}

/// The destroy of guest 101 the planner proposes for `ensure = "absent"`.
fn action(params: &[(&str, &str)]) -> DestructiveAction {
    DestructiveAction {
        op: Operation::Destroy,
        host: HOST.into(),
        target: castellan_core::Target::guest(GuestKind::Lxc, VMID),
        params: params
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        state_digest: D101.into(),
    }
}

fn nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// A signed-op payload for `a`, valid from `nb` until `na`.
fn op_for(a: &DestructiveAction, nb: Timestamp, na: Timestamp) -> SignedOp {
    a.payload(nonce(), nb, na)
}

/// The ordinary op for the destroy of 101: valid from 5 minutes before T0 for an hour.
fn good_op() -> SignedOp {
    op_for(&action(&[]), t0() - mins(5), t0() + mins(60))
}

// ---- the world -------------------------------------------------------------------------

/// One agent's worth of state in a temporary directory: keys, signer config, data dir,
/// inbox, clock, fake node and gatekeeper.
struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    inbox: PathBuf,
    signers_toml: PathBuf,
    /// Operational, ed25519.
    alice: Key,
    /// Operational, ecdsa-256.
    bob: Key,
    /// Operational, rsa-2048 (only with `with_rsa`).
    carol: Option<Key>,
    /// Recovery role, ed25519.
    breakglass: Key,
    /// Not in allowed_signers.
    stranger: Key,
    clock: Arc<Mutex<Timestamp>>,
    fake: Fake,
    keeper: Option<Gatekeeper>,
    staged: u32,
}

impl World {
    fn new(threshold: u32, with_rsa: bool) -> World {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let keys = root.join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        let alice = keygen(&keys, "alice", "ed25519", None);
        let bob = keygen(&keys, "bob", "ecdsa", Some(256));
        let carol = with_rsa.then(|| keygen(&keys, "carol", "rsa", Some(2048)));
        let breakglass = keygen(&keys, "breakglass", "ed25519", None);
        let stranger = keygen(&keys, "stranger", "ed25519", None);

        let etc = root.join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        let mut allowed = format!(
            "alice@example.com {}\nbob@example.com {}\nbreakglass@example.com {}\n",
            alice.line, bob.line, breakglass.line
        );
        let mut roles = String::from(
            "\"alice@example.com\" = \"operational\"\n\
             \"bob@example.com\" = \"operational\"\n\
             \"breakglass@example.com\" = \"recovery\"\n",
        );
        if let Some(c) = &carol {
            allowed.push_str(&format!("carol@example.com {}\n", c.line));
            roles.push_str("\"carol@example.com\" = \"operational\"\n");
        }
        std::fs::write(etc.join("allowed_signers"), allowed).unwrap();
        let signers_toml = etc.join("signers.toml");
        std::fs::write(
            &signers_toml,
            format!(
                "allowed_signers = \"allowed_signers\"\n\n[roles]\n{roles}\n[thresholds]\ndestroy = {threshold}\n"
            ),
        )
        .unwrap();

        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let inbox = data.join("inbox");
        let fake = Fake::default();
        fake.put(guest101(None));
        let mut w = World {
            _tmp: tmp,
            root,
            data,
            inbox,
            signers_toml,
            alice,
            bob,
            carol,
            breakglass,
            stranger,
            clock: Arc::new(Mutex::new(t0())),
            fake,
            keeper: None,
            staged: 0,
        };
        w.start(Store::open(&w.data).unwrap());
        w
    }

    fn signers(&self) -> SignerConfig {
        SignerConfig::load(&self.signers_toml).expect("signers.toml loads")
    }

    /// (Re)starts the gatekeeper over `store`, as the agent does at start-up.
    fn start(&mut self, store: Store) {
        let inbox = Inbox::open(&self.inbox).unwrap();
        let clock = Arc::clone(&self.clock);
        self.keeper = Some(
            Gatekeeper::new(HOST, Some(self.signers()), store, Some(inbox), &self.data)
                .with_signer_file(self.signers_toml.clone())
                .with_clock(Arc::new(move || *clock.lock().unwrap()))
                // The matrix writes its files at once: no grace for files still being
                // written (the inbox tests cover it).
                .with_settle_grace(Duration::ZERO),
        );
    }

    /// Stops the gatekeeper (dropping its store), runs `f` on the store alone, and starts
    /// a fresh gatekeeper over it: an agent restart.
    fn restart_with(&mut self, f: impl FnOnce(&mut Store)) {
        self.keeper = None;
        let mut store = Store::open(&self.data).unwrap();
        f(&mut store);
        self.start(store);
    }

    fn keeper(&self) -> &Gatekeeper {
        self.keeper.as_ref().expect("gatekeeper running")
    }

    fn set_clock(&self, t: Timestamp) {
        *self.clock.lock().unwrap() = t;
    }

    async fn destroy(&self, a: &DestructiveAction) -> DestructiveOutcome {
        self.keeper().destructive(&self.fake, a).await
    }

    /// Drops `op` into the inbox as `NAME` with one signature per `(key, namespace)`, each
    /// made by `ssh-keygen -Y sign` over the op file; the signatures first, the op file
    /// last, as the inbox asks.
    fn offer(&mut self, name: &str, op: &SignedOp, sigs: &[(&Key, &str)]) -> PathBuf {
        let sig_bytes = self.mint(op, sigs);
        self.drop_in(name, op.render().as_bytes(), &sig_bytes)
    }

    /// Signs `op` in a staging directory; returns the signatures.
    fn mint(&mut self, op: &SignedOp, sigs: &[(&Key, &str)]) -> Vec<Vec<u8>> {
        self.staged += 1;
        let stage = self.root.join(format!("stage-{}", self.staged));
        std::fs::create_dir_all(&stage).unwrap();
        let file = stage.join("op");
        std::fs::write(&file, op.render()).unwrap();
        sigs.iter().map(|(k, ns)| sign_file(k, ns, &file)).collect()
    }

    fn drop_in(&self, name: &str, op_bytes: &[u8], sigs: &[Vec<u8>]) -> PathBuf {
        let path = self.inbox.join(name);
        for (i, s) in sigs.iter().enumerate() {
            let n = u32::try_from(i + 1).unwrap();
            std::fs::write(signature_path(&path, n), s).unwrap();
        }
        std::fs::write(&path, op_bytes).unwrap();
        path
    }

    /// A read-only look at the store (the gatekeeper keeps its own connection).
    fn store(&self) -> Store {
        Store::open_readonly(&self.data).unwrap()
    }

    fn audit(&self) -> Vec<AuditRecord> {
        self.store().audit_records(1, 100_000).unwrap()
    }

    fn rejections_of(&self, op: &SignedOp) -> Vec<RejectReason> {
        let digest = op.digest();
        self.audit()
            .into_iter()
            .filter(|r| r.fields.action_digest.as_deref() == Some(digest.as_str()))
            .filter_map(|r| match r.event {
                AuditEvent::OpRejected { reason, .. } => {
                    assert_eq!(
                        r.fields.nonce.as_deref(),
                        Some(op.nonce.as_str()),
                        "an op_rejected record names the op's nonce"
                    );
                    Some(reason)
                }
                _ => None,
            })
            .collect()
    }

    fn acceptances_of(&self, op: &SignedOp) -> Vec<AuditRecord> {
        let digest = op.digest();
        self.audit()
            .into_iter()
            .filter(|r| {
                r.event == AuditEvent::SignatureAccepted
                    && r.fields.action_digest.as_deref() == Some(digest.as_str())
            })
            .collect()
    }

    fn nonce_consumed(&self, op: &SignedOp) -> bool {
        self.store().nonce_consumed(&op.nonce).unwrap()
    }

    /// The row's refusal: audited with `reason` (whose wire word is `word`), the op never
    /// accepted, its nonce free, and the op file either settled in `rejected/` with a
    /// `.reason` note naming the reason (`settled`) or left in the inbox.
    fn assert_refused(
        &self,
        name: &str,
        op: &SignedOp,
        reason: RejectReason,
        word: &str,
        settled: bool,
    ) {
        assert_eq!(reason.as_str(), word, "the reason's snake_case word");
        let seen = self.rejections_of(op);
        assert!(
            seen.contains(&reason),
            "expected an op_rejected record with reason {word}, the audit has {seen:?}"
        );
        assert!(
            seen.iter().all(|r| *r == reason),
            "only {word} was reported: {seen:?}"
        );
        assert!(self.acceptances_of(op).is_empty(), "the op was accepted");
        assert!(!self.nonce_consumed(op), "a refused op consumed its nonce");
        let in_inbox = self.inbox.join(name);
        let rejected = self.inbox.join("rejected").join(name);
        let note = self.inbox.join("rejected").join(format!("{name}.reason"));
        assert!(
            !self.inbox.join("done").join(name).exists(),
            "a refused op is not done"
        );
        if settled {
            assert!(!in_inbox.exists(), "{name} left in the inbox");
            assert!(rejected.exists(), "{name} not moved to rejected/");
            assert!(
                signature_path(&rejected, 1).exists(),
                "its signature moved with it"
            );
            let text = std::fs::read_to_string(&note).expect("a .reason note");
            assert!(
                text.starts_with(&format!("rejected: {word}: ")),
                "the note names the reason: {text:?}"
            );
        } else {
            assert!(in_inbox.exists(), "{name} must stay in the inbox");
            assert!(!rejected.exists(), "{name} must not be rejected for good");
            assert!(!note.exists());
        }
    }

    /// Guest 101 is still there and nothing was destroyed.
    fn assert_untouched(&self) {
        assert!(self.fake.has(VMID), "guest 101 is gone");
        assert_eq!(
            self.fake.destroyed(),
            Vec::<Vmid>::new(),
            "something was destroyed"
        );
    }

    /// The op executed: moved to `done/`, nonce consumed, accepted once, one destructive
    /// intent that succeeded.
    fn assert_executed(&self, name: &str, op: &SignedOp, signers: &[&Key]) {
        assert!(!self.inbox.join(name).exists(), "{name} left in the inbox");
        assert!(
            self.inbox.join("done").join(name).exists(),
            "{name} not in done/"
        );
        assert!(self.nonce_consumed(op), "the nonce was not consumed");
        let acc = self.acceptances_of(op);
        assert_eq!(acc.len(), 1, "accepted exactly once: {acc:?}");
        let mut want: Vec<String> = signers.iter().map(|k| k.fingerprint.clone()).collect();
        want.sort();
        let mut got = acc[0].fields.signer_fingerprints.clone();
        got.sort();
        assert_eq!(got, want, "the audit names the signers");
        assert_eq!(acc[0].fields.nonce.as_deref(), Some(op.nonce.as_str()));
        let digest = op.digest();
        let intents: Vec<_> = self
            .store()
            .intents_for(&ct101())
            .unwrap()
            .into_iter()
            .filter(|i| i.action_id == digest)
            .collect();
        assert_eq!(intents.len(), 1, "{intents:?}");
        assert!(intents[0].destructive);
        assert_eq!(intents[0].nonce.as_deref(), Some(op.nonce.as_str()));
        assert_eq!(intents[0].state, IntentState::Succeeded);
    }

    fn assert_chain(&self) {
        let store = self.store();
        let report = verify_chain(&store).expect("the audit chain verifies");
        assert_eq!(report.records, self.audit().len() as u64);
        assert!(
            self.store().in_flight().unwrap().is_empty(),
            "intents in flight"
        );
    }
}

fn is_pending(out: &DestructiveOutcome) -> bool {
    matches!(out, DestructiveOutcome::Pending { .. })
}

fn executed_by(out: &DestructiveOutcome, keys: &[&Key]) {
    let DestructiveOutcome::Executed { signers, .. } = out else {
        panic!("expected Executed, got {out:?}");
    };
    let mut got = signers.clone();
    got.sort();
    let mut want: Vec<String> = keys.iter().map(|k| k.fingerprint.clone()).collect();
    want.sort();
    assert_eq!(got, want);
}

/// One refusal row: a fresh world, `op` signed as `sigs`, one gate round for the destroy
/// of 101 at T0; not executed and refused with `reason`.
async fn refused_row(
    op: impl FnOnce(&World) -> SignedOp,
    sigs: impl FnOnce(&World) -> Vec<(Key, &'static str)>,
    reason: RejectReason,
    word: &str,
) -> World {
    let mut w = World::new(1, false);
    let op = op(&w);
    let sigs = sigs(&w);
    let sig_refs: Vec<(&Key, &str)> = sigs.iter().map(|(k, ns)| (k, *ns)).collect();
    w.offer("op", &op, &sig_refs);
    let out = w.destroy(&action(&[])).await;
    assert!(is_pending(&out), "not executed: {out:?}");
    w.assert_untouched();
    w.assert_refused("op", &op, reason, word, true);
    w.assert_chain();
    w
}

// ---- the matrix ------------------------------------------------------------------------

/// 1. Unsigned destructive: pending, with a payload to sign bound to guest 101's digest,
///    audited once, never executed.
#[tokio::test]
async fn r01_unsigned_destroy_is_pending_with_a_payload_to_sign() {
    need_ssh_keygen!();
    let w = World::new(1, false);
    let a = action(&[]);
    let out = w.destroy(&a).await;
    let DestructiveOutcome::Pending { payload } = &out else {
        panic!("expected Pending, got {out:?}");
    };
    assert_eq!(
        payload,
        &w.data.join("pending").join("pve-01-lxc-101-destroy.op")
    );
    let bytes = std::fs::read(payload).unwrap();
    let p = SignedOp::parse(&bytes).expect("the payload is a canonical signed op");
    assert_eq!(p.op, "destroy");
    assert_eq!(p.host, HOST);
    assert_eq!(p.target, ct101());
    assert_eq!(p.precondition.as_deref(), Some(D101), "bound to the digest");
    assert!(p.params.is_empty());
    assert!(p.not_before <= t0() && t0() < p.not_after, "{p:?}");
    w.assert_untouched();

    let pending: Vec<AuditRecord> = w
        .audit()
        .into_iter()
        .filter(|r| r.event == AuditEvent::SignaturePending)
        .collect();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].fields.target, Some(ct101()));
    assert_eq!(pending[0].fields.op.as_deref(), Some("destroy"));
    assert_eq!(
        pending[0].fields.action_digest.as_deref(),
        Some(p.digest().as_str())
    );
    assert_eq!(pending[0].fields.nonce.as_deref(), Some(p.nonce.as_str()));
    assert!(
        w.audit().iter().all(|r| !matches!(
            r.event,
            AuditEvent::SignatureAccepted | AuditEvent::IntentRecorded
        )),
        "nothing accepted or journaled"
    );
    assert!(w.store().intents_for(&ct101()).unwrap().is_empty());

    // Asked again: the same payload, not re-announced.
    let again = w.destroy(&a).await;
    assert_eq!(again, out);
    assert_eq!(std::fs::read(payload).unwrap(), bytes, "payload rewritten");
    let n = w
        .audit()
        .iter()
        .filter(|r| r.event == AuditEvent::SignaturePending)
        .count();
    assert_eq!(n, 1, "signature_pending audited once");
    w.assert_untouched();
    w.assert_chain();
}

/// 2. A key that is in no allowed_signers entry.
#[tokio::test]
async fn r02_unknown_signer() {
    need_ssh_keygen!();
    refused_row(
        |_| good_op(),
        |w| vec![(w.stranger.clone(), "castellan-op")],
        RejectReason::UnknownSigner,
        "unknown_signer",
    )
    .await;
}

/// 3. A trusted key, but signed under `-n file`.
#[tokio::test]
async fn r03_wrong_namespace() {
    need_ssh_keygen!();
    refused_row(
        |_| good_op(),
        |w| vec![(w.alice.clone(), "file")],
        RejectReason::WrongNamespace,
        "wrong_namespace",
    )
    .await;
}

/// 3b. (extra) A valid signature over other bytes: the op file was altered after signing.
#[tokio::test]
async fn r03b_tampered_op_is_bad_signature() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let signed = good_op();
    let sigs = w.mint(&signed, &[(&w.alice.clone(), "castellan-op")]);
    // Same action, another window: canonical and well-formed, but not what was signed.
    let tampered = SignedOp {
        not_after: signed.not_after + mins(600),
        ..signed.clone()
    };
    w.drop_in("op", tampered.render().as_bytes(), &sigs);
    let out = w.destroy(&action(&[])).await;
    assert!(is_pending(&out), "{out:?}");
    w.assert_untouched();
    w.assert_refused(
        "op",
        &tampered,
        RejectReason::BadSignature,
        "bad_signature",
        true,
    );
    w.assert_chain();
}

/// 4. Expired: the clock at exactly `not_after` (the window is half-open).
#[tokio::test]
async fn r04_expired() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let op = op_for(&action(&[]), t0(), t0() + mins(60));
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    w.set_clock(op.not_after);
    let out = w.destroy(&action(&[])).await;
    assert!(is_pending(&out), "{out:?}");
    w.assert_untouched();
    w.assert_refused("op", &op, RejectReason::Expired, "expired", true);
    w.assert_chain();
}

/// 5. Not yet valid: refused but kept in the inbox; accepted once its window opens.
#[tokio::test]
async fn r05_not_yet_valid_then_accepted() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let op = op_for(&action(&[]), t0() + mins(10), t0() + mins(70));
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    let out = w.destroy(&action(&[])).await;
    assert!(is_pending(&out), "{out:?}");
    w.assert_untouched();
    w.assert_refused("op", &op, RejectReason::NotYetValid, "not_yet_valid", false);
    // A sweep keeps it too.
    w.keeper().sweep().await;
    assert!(
        w.inbox.join("op").exists(),
        "the sweep settled a not-yet-valid op"
    );

    // The window opens (exactly at not_before).
    w.set_clock(op.not_before);
    let out = w.destroy(&action(&[])).await;
    executed_by(&out, &[&w.alice]);
    assert_eq!(w.fake.destroyed(), vec![VMID]);
    w.assert_executed("op", &op, &[&w.alice]);
    w.assert_chain();
}

/// 6. The clock moved back: the store saw a late time once, so an op that expired by then
///    stays expired when the wall clock is set back inside its window.
#[tokio::test]
async fn r06_clock_moved_back_past_not_after_stays_expired() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let op = good_op(); // [T0-5m, T0+60m)
    // The agent runs at T0+2h (an unsigned round: audited, so the high-water mark rises).
    w.set_clock(t0() + mins(120));
    assert!(is_pending(&w.destroy(&action(&[])).await));
    assert_eq!(w.store().high_water().unwrap(), Some(t0() + mins(120)));
    // The wall clock is set back to T0, inside the op's window.
    w.set_clock(t0());
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    // Control: judged at T0 itself this op would pass.
    let signers = w.signers();
    let sigs = w.mint(&op, &[(&w.alice.clone(), "castellan-op")]);
    let bytes = op.render();
    let control = judge(
        Some(&signers),
        HOST,
        &action(&[]),
        None,
        Offer {
            op: &op,
            bytes: bytes.as_bytes(),
            sigs: &sigs,
        },
        StateFacts::stateless(t0()),
    );
    assert!(
        matches!(control, Decision::Accepted(_)),
        "control: {control:?}"
    );

    let out = w.destroy(&action(&[])).await;
    assert!(is_pending(&out), "{out:?}");
    w.assert_untouched();
    w.assert_refused("op", &op, RejectReason::Expired, "expired", true);
    assert_eq!(w.store().high_water().unwrap(), Some(t0() + mins(120)));
    w.assert_chain();
}

/// 7. Replay after restart: executed once; after the agent restarts over the same data
///    directory and guest 101 is back with the same digest, the same op and signature are
///    refused as replayed and nothing runs again.
#[tokio::test]
async fn r07_replay_after_restart() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let op = good_op();
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    let out = w.destroy(&action(&[])).await;
    executed_by(&out, &[&w.alice]);
    assert_eq!(w.fake.destroyed(), vec![VMID]);
    w.assert_executed("op", &op, &[&w.alice]);

    // Restart: gatekeeper and store dropped, the store reopened from the data dir.
    w.restart_with(|_| {});
    assert_eq!(w.keeper().recover(&w.fake).await.ok(), Some(0));
    // Guest 101 again, with the very digest the op was approved against.
    w.fake.put(guest101(None));
    let done = w.inbox.join("done");
    let sig = std::fs::read(signature_path(&done.join("op"), 1)).unwrap();
    w.drop_in("op", op.render().as_bytes(), &[sig]);

    let out = w.destroy(&action(&[])).await;
    assert!(is_pending(&out), "replayed op executed: {out:?}");
    assert!(w.fake.has(VMID));
    assert_eq!(w.fake.destroyed(), vec![VMID], "destroyed twice");
    assert_eq!(w.rejections_of(&op), vec![RejectReason::Replayed]);
    assert!(w.inbox.join("rejected").join("op").exists());
    let note = std::fs::read_to_string(w.inbox.join("rejected").join("op.reason")).unwrap();
    assert!(note.starts_with("rejected: replayed: "), "{note:?}");
    assert_eq!(w.acceptances_of(&op).len(), 1, "accepted once only");
    let intents = w.store().intents_for(&ct101()).unwrap();
    assert_eq!(intents.len(), 1, "one journaled destroy: {intents:?}");
    w.assert_chain();
}

/// 8. An op for another host: never used here; the sweep refuses it as wrong_host.
#[tokio::test]
async fn r08_wrong_host() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let op = SignedOp {
        host: "pve-02".into(),
        ..good_op()
    };
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    let out = w.destroy(&action(&[])).await;
    assert!(is_pending(&out), "{out:?}");
    w.assert_untouched();
    w.keeper().sweep().await;
    w.assert_untouched();
    w.assert_refused("op", &op, RejectReason::WrongHost, "wrong_host", true);
    w.assert_chain();
}

/// 9a. An op for guest 102 does not authorise the destroy of 101 (it is left for 102), and
///     judged against 101's action it is a binding mismatch.
#[tokio::test]
async fn r09a_wrong_guest_is_binding_mismatch() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let op = SignedOp {
        target: Target::guest(GuestKind::Lxc, 102),
        ..good_op()
    };
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    let out = w.destroy(&action(&[])).await;
    assert!(is_pending(&out), "{out:?}");
    w.assert_untouched();
    assert!(w.rejections_of(&op).is_empty());
    assert!(w.acceptances_of(&op).is_empty());
    assert!(!w.nonce_consumed(&op));
    assert!(w.inbox.join("op").exists(), "the op for 102 stays");

    let signers = w.signers();
    let sigs = vec![std::fs::read(signature_path(&w.inbox.join("op"), 1)).unwrap()];
    let bytes = op.render();
    let d = judge(
        Some(&signers),
        HOST,
        &action(&[]),
        None,
        Offer {
            op: &op,
            bytes: bytes.as_bytes(),
            sigs: &sigs,
        },
        StateFacts::stateless(t0()),
    );
    let Decision::Rejected { reason, detail } = d else {
        panic!("expected a rejection, got {d:?}");
    };
    assert_eq!(reason, RejectReason::BindingMismatch, "{detail}");
    assert_eq!(reason.as_str(), "binding_mismatch");
    w.assert_chain();
}

/// 9b. The op authorises another operation on 101.
#[tokio::test]
async fn r09b_wrong_op_is_binding_mismatch() {
    need_ssh_keygen!();
    refused_row(
        |_| SignedOp {
            op: "wipe_storage".into(),
            ..good_op()
        },
        |w| vec![(w.alice.clone(), "castellan-op")],
        RejectReason::BindingMismatch,
        "binding_mismatch",
    )
    .await;
}

/// 9c. The op carries `purge=1`, the action none.
#[tokio::test]
async fn r09c_wrong_params_is_binding_mismatch() {
    need_ssh_keygen!();
    refused_row(
        |_| op_for(&action(&[("purge", "1")]), t0() - mins(5), t0() + mins(60)),
        |w| vec![(w.alice.clone(), "castellan-op")],
        RejectReason::BindingMismatch,
        "binding_mismatch",
    )
    .await;
}

/// 9d. The other way round: the action purges, the op does not say so.
#[tokio::test]
async fn r09d_missing_params_is_binding_mismatch() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let op = good_op();
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    let out = w.destroy(&action(&[("purge", "1")])).await;
    assert!(is_pending(&out), "{out:?}");
    w.assert_untouched();
    w.assert_refused(
        "op",
        &op,
        RejectReason::BindingMismatch,
        "binding_mismatch",
        true,
    );
    w.assert_chain();
}

/// 10. Approved against an older digest of 101.
#[tokio::test]
async fn r10_stale_precondition() {
    need_ssh_keygen!();
    refused_row(
        |_| SignedOp {
            precondition: Some(D_OLD.into()),
            ..good_op()
        },
        |w| vec![(w.alice.clone(), "castellan-op")],
        RejectReason::StalePrecondition,
        "stale_precondition",
    )
    .await;
}

/// 10b. Bound to no state at all.
#[tokio::test]
async fn r10b_no_precondition_is_stale_precondition() {
    need_ssh_keygen!();
    refused_row(
        |_| SignedOp {
            precondition: None,
            ..good_op()
        },
        |w| vec![(w.alice.clone(), "castellan-op")],
        RejectReason::StalePrecondition,
        "stale_precondition",
    )
    .await;
}

/// 11. A recovery key may rotate keys, never destroy.
#[tokio::test]
async fn r11_recovery_key_on_destroy_is_role_denied() {
    need_ssh_keygen!();
    refused_row(
        |_| good_op(),
        |w| vec![(w.breakglass.clone(), "castellan-op")],
        RejectReason::RoleDenied,
        "role_denied",
    )
    .await;
}

/// 12. A scratch tag on the guest and in the desired state changes nothing: the destroy
///     is still destructive. Only the agent's own journal can make it benign.
#[tokio::test]
async fn r12_hub_supplied_scratch_tag_is_still_destructive() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    w.fake.put(guest101(Some("castellan-scratch")));
    // The planner's destroy for a desired state that also calls it scratch.
    let desired = DesiredGuest {
        ensure: Ensure::Absent,
        tags: Some(vec!["castellan-scratch".into(), "scratch".into()]),
        ..DesiredGuest::new(VMID, GuestKind::Lxc)
    };
    let actual = w.fake.lock().guests[&VMID].clone();
    let mut p = Plan::default();
    plan_guest(HOST, &desired, &actual, &Normalizers::default(), &mut p);
    assert_eq!(p.destructive.len(), 1, "{p:?}");
    let a = p.destructive[0].clone();
    assert_eq!(a, action(&[]), "tags do not enter the action");
    assert_eq!(classify(a.op, &[], None, None).class, Class::Destructive);

    let out = w.destroy(&a).await;
    assert!(is_pending(&out), "a tag made the destroy benign: {out:?}");
    w.assert_untouched();

    // Provenance from the journal that is not scratch (created by the agent, in another
    // transaction) is not enough either.
    w.restart_with(|s| {
        let id = benign_intent(s, "provision");
        s.record_provenance(
            VMID,
            GuestKind::Lxc,
            ProvenanceKind::CreatedByAgent { intent: id },
            t0(),
        )
        .unwrap();
    });
    assert!(is_pending(&w.destroy(&a).await));
    w.assert_untouched();

    // The agent's journal records 101 as its scratch: now benign, no signature needed.
    w.restart_with(|s| {
        let id = benign_intent(s, "provision");
        s.record_provenance(
            VMID,
            GuestKind::Lxc,
            ProvenanceKind::Scratch { intent: id },
            t0(),
        )
        .unwrap();
    });
    let out = w.destroy(&a).await;
    assert_eq!(
        out,
        DestructiveOutcome::Executed {
            signers: vec![],
            backup: None
        }
    );
    assert_eq!(w.fake.destroyed(), vec![VMID]);
    assert!(
        w.audit()
            .iter()
            .any(|r| r.event == AuditEvent::ActionAllowed
                && r.fields.target == Some(ct101())
                && r.fields.op.as_deref() == Some("destroy")),
        "the unsigned destroy was audited as allowed"
    );
    assert!(
        w.store().provenance(VMID).unwrap().is_none(),
        "provenance forgotten once the guest is gone"
    );
    w.assert_chain();
}

/// A terminal benign intent for guest 101 (the transaction provenance cites).
fn benign_intent(s: &mut Store, op: &str) -> castellan_store::IntentId {
    let (id, _) = s
        .begin_intent(
            NewIntent {
                action_id: format!("{op}-{}", nonce()),
                op: op.into(),
                target: castellan_core::Target::guest(GuestKind::Lxc, VMID),
                params: BTreeMap::new(),
                nonce: None,
                nonce_not_after: None,
                destructive: false,
                upid_hint: None,
            },
            AuditEvent::IntentRecorded,
            t0(),
        )
        .unwrap();
    s.mark_terminal(id, Outcome::Succeeded, Outcome::Succeeded.event(), t0())
        .unwrap();
    id
}

/// 12b. An op naming an operation the table does not hold, validly signed, never
///      authorises anything: the sweep refuses it as `bad_format` for good, and the
///      destroy it resembles stays pending.
#[tokio::test]
async fn r12b_an_operation_the_table_does_not_hold_is_refused() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let mut op = good_op();
    op.op = "obliterate".into();
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    w.keeper().sweep().await;
    w.assert_refused("op", &op, RejectReason::BadFormat, "bad_format", true);
    let note = std::fs::read_to_string(w.inbox.join("rejected").join("op.reason")).unwrap();
    assert!(note.contains("unknown operation \"obliterate\""), "{note}");
    assert!(is_pending(&w.destroy(&action(&[])).await));
    w.assert_untouched();
    w.assert_chain();
}

/// 13. Threshold 2: the same key twice counts once, and a recovery key does not count
///     for a destroy; a second distinct operational key completes it.
#[tokio::test]
async fn r13_threshold_two_needs_two_distinct_operational_keys() {
    need_ssh_keygen!();
    let mut w = World::new(2, false);
    let op = good_op();
    let alice = w.alice.clone();
    let sigs = w.mint(&op, &[(&alice, "castellan-op"), (&alice, "castellan-op")]);
    w.drop_in("op", op.render().as_bytes(), &sigs);
    assert!(
        signature_path(&w.inbox.join("op"), 2).exists(),
        "two signature files"
    );
    let out = w.destroy(&action(&[])).await;
    assert!(is_pending(&out), "{out:?}");
    w.assert_untouched();
    w.assert_refused(
        "op",
        &op,
        RejectReason::ThresholdNotMet,
        "threshold_not_met",
        false,
    );

    // A recovery key's signature does not count toward a destroy.
    let bg = w.breakglass.clone();
    let extra = w.mint(&op, &[(&bg, "castellan-op")]);
    std::fs::write(signature_path(&w.inbox.join("op"), 3), &extra[0]).unwrap();
    assert!(is_pending(&w.destroy(&action(&[])).await));
    w.assert_untouched();
    w.assert_refused(
        "op",
        &op,
        RejectReason::ThresholdNotMet,
        "threshold_not_met",
        false,
    );

    // A second, distinct operational key.
    let bob = w.bob.clone();
    let extra = w.mint(&op, &[(&bob, "castellan-op")]);
    std::fs::write(signature_path(&w.inbox.join("op"), 4), &extra[0]).unwrap();
    let out = w.destroy(&action(&[])).await;
    executed_by(&out, &[&w.alice, &w.bob]);
    assert_eq!(w.fake.destroyed(), vec![VMID]);
    w.assert_executed("op", &op, &[&w.alice, &w.bob]);
    for n in 1..=4 {
        assert!(
            signature_path(&w.inbox.join("done").join("op"), n).exists(),
            "signature {n} moved to done/"
        );
    }
    w.assert_chain();
}

/// 14. Valid: executed exactly once; the same op again is replayed.
#[tokio::test]
async fn r14_valid_executes_once_then_replay_is_refused() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let op = good_op();
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    let out = w.destroy(&action(&[])).await;
    executed_by(&out, &[&w.alice]);
    assert_eq!(w.fake.destroyed(), vec![VMID]);
    assert!(!w.fake.has(VMID));
    w.assert_executed("op", &op, &[&w.alice]);
    let kinds: Vec<&str> = w
        .audit()
        .iter()
        .filter(|r| r.fields.target == Some(ct101()))
        .map(|r| r.event.kind())
        .collect();
    assert_eq!(
        kinds,
        [
            "signature_accepted",
            "intent_recorded",
            // The fake backend keeps no backups: the destroy goes on without one, audited.
            "backup_waived",
            "task_dispatched",
            "action_succeeded",
            "op_settled"
        ],
        "decision audited before the intent, the intent before the dispatch, the settle last"
    );

    // Another round with nothing new: nothing happens.
    w.fake.put(guest101(None));
    assert!(is_pending(&w.destroy(&action(&[])).await));
    assert_eq!(w.fake.destroyed(), vec![VMID]);

    // The same op and signature, offered again for the same guest and digest.
    let sig = std::fs::read(signature_path(&w.inbox.join("done").join("op"), 1)).unwrap();
    w.drop_in("again", op.render().as_bytes(), &[sig]);
    let out = w.destroy(&action(&[])).await;
    assert!(is_pending(&out), "replay executed: {out:?}");
    assert_eq!(w.fake.destroyed(), vec![VMID], "destroyed twice");
    assert!(w.fake.has(VMID));
    assert_eq!(w.rejections_of(&op), vec![RejectReason::Replayed]);
    let note = std::fs::read_to_string(w.inbox.join("rejected").join("again.reason")).unwrap();
    assert!(note.starts_with("rejected: replayed: "), "{note:?}");
    assert_eq!(w.acceptances_of(&op).len(), 1);
    w.assert_chain();
}

/// 15. Each key type the operators use: ed25519, ecdsa-256, rsa-2048 (rsa-sha2-512).
#[tokio::test]
async fn r15_each_key_type_is_accepted() {
    need_ssh_keygen!();
    let mut w = World::new(1, true);
    let keys = [
        ("ed25519", w.alice.clone()),
        ("ecdsa", w.bob.clone()),
        ("rsa", w.carol.clone().unwrap()),
    ];
    for (i, (ty, key)) in keys.iter().enumerate() {
        assert!(key.line.starts_with(match *ty {
            "ed25519" => "ssh-ed25519 ",
            "ecdsa" => "ecdsa-sha2-nistp256 ",
            _ => "ssh-rsa ",
        }));
        w.fake.put(guest101(None));
        let op = good_op();
        let name = format!("op-{ty}");
        w.offer(&name, &op, &[(key, "castellan-op")]);
        let out = w.destroy(&action(&[])).await;
        executed_by(&out, &[key]);
        assert_eq!(w.fake.destroyed().len(), i + 1, "{ty}");
        w.assert_executed(&name, &op, &[key]);
    }
    w.assert_chain();
}

// ---- end to end through the engine ----------------------------------------------------

fn tuning() -> Tuning {
    Tuning {
        max_parallel: 4,
        backoff_base_ms: 10,
        backoff_max_secs: 1,
        once_attempts: 3,
        ..Tuning::default()
    }
}

/// The engine with desired `ensure = "absent"` for 101 and the real clock: without an op
/// the run does not converge and names the pending destroy; with the pending payload
/// signed by an operator and dropped into the inbox, the guest is destroyed once and the
/// run converges.
#[tokio::test]
async fn engine_destroys_only_with_a_signed_op() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    // The real clock for the engine.
    let store = {
        w.keeper = None;
        Store::open(&w.data).unwrap()
    };
    let keeper = Arc::new(
        Gatekeeper::new(
            HOST,
            Some(w.signers()),
            store,
            Some(Inbox::open(&w.inbox).unwrap()),
            &w.data,
        )
        .with_settle_grace(Duration::ZERO),
    );
    let desired = DesiredState {
        node: HOST.into(),
        containers: Default::default(),
        wipes: Default::default(),
        decommission: None,
        guests: [(
            VMID,
            DesiredGuest {
                ensure: Ensure::Absent,
                ..DesiredGuest::new(VMID, GuestKind::Lxc)
            },
        )]
        .into(),
    };
    let (_tx, rx) = watch::channel(Arc::new(desired));
    let fake = w.fake.clone();
    let engine = || {
        Engine::new(
            Arc::new(fake.clone()),
            Arc::clone(&keeper),
            rx.clone(),
            Normalizers::default(),
            tuning(),
        )
    };

    let report = tokio::time::timeout(
        Duration::from_secs(30),
        engine().run(Mode::Once, std::future::pending()),
    )
    .await
    .expect("run 1 finishes");
    assert!(!report.converged(), "converged without a signature");
    let reasons = report.reasons().join("\n");
    assert!(
        reasons.contains("101: destroy pending a signed op") && reasons.contains(D101),
        "{reasons}"
    );
    assert!(report.applied.is_empty(), "{:?}", report.applied);
    assert!(w.fake.has(VMID));
    assert!(w.fake.destroyed().is_empty());
    assert_eq!(
        keeper.inbox_scans(),
        1,
        "the round's sweep read the inbox; the destroy it judged reused that reading"
    );

    // The operator signs the payload the agent wrote and drops it into the inbox.
    let payload = w.data.join("pending").join("pve-01-lxc-101-destroy.op");
    let bytes = std::fs::read(&payload).expect("a pending payload");
    let op = SignedOp::parse(&bytes).unwrap();
    let alice = w.alice.clone();
    w.offer("destroy-101.op", &op, &[(&alice, "castellan-op")]);

    let report = tokio::time::timeout(
        Duration::from_secs(30),
        engine().run(Mode::Once, std::future::pending()),
    )
    .await
    .expect("run 2 finishes");
    assert!(report.converged(), "{:?}", report.reasons());
    assert_eq!(w.fake.destroyed(), vec![VMID]);
    assert!(!w.fake.has(VMID));
    assert_eq!(report.applied.len(), 1, "{:?}", report.applied);
    assert_eq!(report.applied[0].vmid, VMID);
    assert_eq!(report.applied[0].kind, "destroy");
    assert!(report.applied[0].reason.contains(&w.alice.fingerprint));
    w.assert_executed("destroy-101.op", &op, &[&w.alice]);
    assert_eq!(keeper.inbox_scans(), 2, "one more round, one more reading");

    // A third run: nothing left to do, nothing destroyed again.
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        engine().run(Mode::Once, std::future::pending()),
    )
    .await
    .expect("run 3 finishes");
    assert!(report.converged(), "{:?}", report.reasons());
    assert_eq!(w.fake.destroyed(), vec![VMID]);
    drop(keeper);
    w.assert_chain();
}

// ---- the clock that cannot go backwards, in crash recovery -------------------------------

/// A destroy journaled (nonce consumed) at T0 whose request never reached the node: the
/// agent died between `begin_intent` and the POST. Returns the op.
fn journal_unsent_destroy(s: &mut Store) -> SignedOp {
    let op = good_op(); // [T0-5m, T0+60m)
    s.begin_intent(
        NewIntent {
            action_id: op.digest(),
            op: "destroy".into(),
            target: castellan_core::Target::guest(GuestKind::Lxc, VMID),
            params: BTreeMap::new(),
            nonce: Some(op.nonce.clone()),
            nonce_not_after: Some(op.not_after),
            destructive: true,
            upid_hint: Some(D101.into()),
        },
        AuditEvent::IntentRecorded,
        t0(),
    )
    .unwrap();
    op
}

/// 6b (control). Recovery after the approval expired does not finish the destroy.
#[tokio::test]
async fn r06b_recovery_after_expiry_rolls_back() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    w.restart_with(|s| {
        journal_unsent_destroy(s);
    });
    w.set_clock(t0() + mins(120));
    assert_eq!(w.keeper().recover(&w.fake).await.ok(), Some(1));
    w.assert_untouched();
    let intents = w.store().intents_for(&ct101()).unwrap();
    assert_eq!(intents[0].state, IntentState::RolledBack, "{intents:?}");
    w.assert_chain();
}

/// 6c. The same, but the wall clock was set back inside the op's window after the agent
///     had seen a later time: recovery must judge the approval by the clock that cannot go
///     backwards, as the gate does, and roll back.
#[tokio::test]
async fn r06c_recovery_judges_expiry_by_the_high_water_mark() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    w.restart_with(|s| {
        journal_unsent_destroy(s);
        // The agent came up once at T0+2h (its start-up was audited) and went down again
        // before recovery could settle anything.
        s.append_audit(AuditEvent::AgentStarted, t0() + mins(120))
            .unwrap();
    });
    // The wall clock is set back to T0+10m, inside the op's window.
    w.set_clock(t0() + mins(10));
    assert_eq!(w.store().high_water().unwrap(), Some(t0() + mins(120)));
    assert_eq!(w.keeper().recover(&w.fake).await.ok(), Some(1));
    assert!(
        w.fake.destroyed().is_empty(),
        "recovery destroyed guest 101 on an approval that expired by the high-water mark"
    );
    let intents = w.store().intents_for(&ct101()).unwrap();
    assert_eq!(intents[0].state, IntentState::RolledBack, "{intents:?}");
    w.assert_chain();
}

// ---- the inbox as an attacker who can write it sees it ----------------------------------

impl World {
    /// Restarts the gatekeeper with the given settle grace (the matrix uses none).
    fn with_grace(&mut self, grace: Duration) {
        self.keeper = None;
        let store = Store::open(&self.data).unwrap();
        let inbox = Inbox::open(&self.inbox).unwrap();
        let clock = Arc::clone(&self.clock);
        self.keeper = Some(
            Gatekeeper::new(HOST, Some(self.signers()), store, Some(inbox), &self.data)
                .with_signer_file(self.signers_toml.clone())
                .with_clock(Arc::new(move || *clock.lock().unwrap()))
                .with_settle_grace(grace),
        );
    }

    fn settles_of(&self, op: &SignedOp) -> Vec<(String, String)> {
        let digest = op.digest();
        self.audit()
            .into_iter()
            .filter(|r| r.fields.action_digest.as_deref() == Some(digest.as_str()))
            .filter_map(|r| match r.event {
                AuditEvent::OpSettled { to, detail, .. } => Some((to, detail)),
                _ => None,
            })
            .collect()
    }
}

fn mkfifo(path: &Path) {
    run_ok(Command::new("mkfifo").arg(path));
}

/// 16a. `rejected/NAME.reason` planted as a link to a file the agent can write: the note
///      replaces the link; the file it pointed at is untouched.
#[tokio::test]
async fn r16a_symlinked_reason_note_is_replaced_not_followed() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let victim = w.root.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let note = w.inbox.join("rejected").join("op.reason");
    std::os::unix::fs::symlink(&victim, &note).unwrap();
    let op = good_op();
    w.offer("op", &op, &[(&w.stranger.clone(), "castellan-op")]);
    assert!(is_pending(&w.destroy(&action(&[])).await));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let meta = std::fs::symlink_metadata(&note).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the note is a file of its own now"
    );
    w.assert_refused(
        "op",
        &op,
        RejectReason::UnknownSigner,
        "unknown_signer",
        true,
    );
    w.assert_chain();
}

/// 16b. `done/` and `rejected/` swapped for links to another directory after the agent
///      started: nothing is moved or written there, and the refusal to move is audited.
#[tokio::test]
async fn r16b_symlinked_settle_directories_are_refused() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let elsewhere = w.root.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    for sub in ["done", "rejected"] {
        std::fs::remove_dir(w.inbox.join(sub)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, w.inbox.join(sub)).unwrap();
    }
    // A refused op, then a valid one that executes.
    let bad = good_op();
    w.offer("bad", &bad, &[(&w.stranger.clone(), "castellan-op")]);
    assert!(is_pending(&w.destroy(&action(&[])).await));
    let op = good_op();
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    executed_by(&w.destroy(&action(&[])).await, &[&w.alice]);
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "something was written through the link"
    );
    assert!(w.inbox.join("op").exists() && w.inbox.join("bad").exists());
    let settles = w.settles_of(&op);
    assert_eq!(settles.len(), 1, "{settles:?}");
    assert_eq!(settles[0].0, "done");
    assert!(settles[0].1.contains("not a directory"), "{settles:?}");
    // Opening an inbox whose done/ is a link is refused outright.
    let err = Inbox::open(&w.inbox).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
}

/// 16c. The op file itself is a link to an op elsewhere: never read through.
#[tokio::test]
async fn r16c_symlinked_op_file_is_not_read() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let op = good_op();
    let sigs = w.mint(&op, &[(&w.alice.clone(), "castellan-op")]);
    let outside = w.root.join("outside.op");
    std::fs::write(&outside, op.render()).unwrap();
    std::fs::write(signature_path(&w.inbox.join("op"), 1), &sigs[0]).unwrap();
    std::os::unix::fs::symlink(&outside, w.inbox.join("op")).unwrap();
    assert!(is_pending(&w.destroy(&action(&[])).await));
    w.keeper().sweep().await;
    w.assert_untouched();
    assert!(!w.nonce_consumed(&op));
    assert!(w.rejections_of(&op).is_empty());
}

/// 17. FIFOs named as an op and as signatures never wedge the agent: the round finishes,
///     a FIFO `NAME.2.sig` beside a valid `NAME.sig` is ignored and the op executes.
#[tokio::test]
async fn r17_fifos_are_skipped_without_being_opened() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    mkfifo(&w.inbox.join("fifo-op"));
    let lonely = good_op();
    w.drop_in("lonely", lonely.render().as_bytes(), &[]);
    mkfifo(&signature_path(&w.inbox.join("lonely"), 1));
    let round = tokio::time::timeout(Duration::from_secs(20), async {
        w.keeper().sweep().await;
        w.destroy(&action(&[])).await
    })
    .await
    .expect("the agent wedged on a FIFO");
    assert!(is_pending(&round));
    // The lonely op has only a FIFO for a signature: refused as unreadable, never opened.
    let reasons = w.rejections_of(&lonely);
    assert_eq!(reasons, vec![RejectReason::BadFormat]);
    let note = std::fs::read_to_string(w.inbox.join("rejected").join("lonely.reason")).unwrap();
    assert!(note.contains("FIFO"), "{note}");

    let op = good_op();
    let path = w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    mkfifo(&signature_path(&path, 2));
    let out = tokio::time::timeout(Duration::from_secs(20), w.destroy(&action(&[])))
        .await
        .expect("the agent wedged on a FIFO");
    executed_by(&out, &[&w.alice]);
    w.assert_executed("op", &op, &[&w.alice]);
    assert!(w.inbox.join("fifo-op").exists(), "a FIFO is left alone");
    w.assert_chain();
}

/// 18a. An op seen before its signature is "not yet": no refusal, not even from the
///      sweep; once signed it executes.
#[tokio::test]
async fn r18a_op_before_its_signature_waits() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let op = good_op();
    let sigs = w.mint(&op, &[(&w.alice.clone(), "castellan-op")]);
    w.drop_in("op", op.render().as_bytes(), &[]);
    assert!(is_pending(&w.destroy(&action(&[])).await));
    w.keeper().sweep().await;
    w.assert_refused_not_at_all("op", &op);
    std::fs::write(signature_path(&w.inbox.join("op"), 1), &sigs[0]).unwrap();
    executed_by(&w.destroy(&action(&[])).await, &[&w.alice]);
    w.assert_executed("op", &op, &[&w.alice]);
    w.assert_chain();
}

/// 18b. An op still being written (a truncated file, changed a moment ago) is refused
///      only for now, audited once; completed, it executes.
#[tokio::test]
async fn r18b_op_still_being_written_is_not_refused_for_good() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    w.with_grace(Duration::from_secs(60));
    let op = good_op();
    let sigs = w.mint(&op, &[(&w.alice.clone(), "castellan-op")]);
    let text = op.render();
    w.drop_in("op", &text.as_bytes()[..text.len() / 2], &sigs);
    for _ in 0..3 {
        w.keeper().sweep().await;
        assert!(is_pending(&w.destroy(&action(&[])).await));
    }
    assert!(w.inbox.join("op").exists(), "a half-written op was settled");
    assert!(!w.inbox.join("rejected").join("op").exists());
    let refusals = w
        .audit()
        .iter()
        .filter(|r| matches!(r.event, AuditEvent::OpRejected { .. }))
        .count();
    assert_eq!(refusals, 1, "a not-yet refusal is audited once");
    std::fs::write(w.inbox.join("op"), &text).unwrap();
    executed_by(&w.destroy(&action(&[])).await, &[&w.alice]);
    w.assert_executed("op", &op, &[&w.alice]);
}

/// 18c. A junk and an oversized extra signature do not get a valid op rejected.
#[tokio::test]
async fn r18c_junk_extra_signatures_do_not_reject_a_valid_op() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let op = good_op();
    let path = w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    std::fs::write(signature_path(&path, 2), b"junk").unwrap();
    std::fs::write(signature_path(&path, 3), vec![b'A'; 100 * 1024]).unwrap();
    w.keeper().sweep().await;
    assert!(path.exists(), "the sweep settled a valid op");
    executed_by(&w.destroy(&action(&[])).await, &[&w.alice]);
    w.assert_executed("op", &op, &[&w.alice]);
    w.assert_chain();
}

/// 18d. The sweep never judges the op that is executing as replayed: its intent is in
///      flight (nonce consumed, no terminal record), so it is left for the executor.
#[tokio::test]
async fn r18d_sweep_leaves_the_executing_op_alone() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let op = good_op();
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    let (digest, nonce, not_after) = (op.digest(), op.nonce.clone(), op.not_after);
    w.restart_with(|s| {
        let intent = NewIntent {
            action_id: digest,
            op: "destroy".into(),
            target: castellan_core::Target::guest(GuestKind::Lxc, VMID),
            params: BTreeMap::new(),
            nonce: Some(nonce),
            nonce_not_after: Some(not_after),
            destructive: true,
            upid_hint: Some(D101.into()),
        };
        s.begin_intent(intent, AuditEvent::IntentRecorded, t0())
            .unwrap();
    });
    w.keeper().sweep().await;
    assert!(w.inbox.join("op").exists(), "the executing op was settled");
    assert!(w.rejections_of(&op).is_empty(), "judged while executing");
}

/// 18e. A replay of an op that already ran is settled to done/ by the sweep, audited.
#[tokio::test]
async fn r18e_replay_of_an_executed_op_is_settled_and_audited() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let op = good_op();
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    executed_by(&w.destroy(&action(&[])).await, &[&w.alice]);
    let sig = std::fs::read(signature_path(&w.inbox.join("done").join("op"), 1)).unwrap();
    w.drop_in("again", op.render().as_bytes(), &[sig]);
    w.keeper().sweep().await;
    assert!(w.inbox.join("done").join("again").exists());
    let settles = w.settles_of(&op);
    assert_eq!(settles.len(), 2, "{settles:?}");
    assert_eq!(settles[1].0, "done");
    assert!(settles[1].1.contains("replay"), "{settles:?}");
    w.assert_chain();
}

impl World {
    /// Nothing about `op` was refused or settled, and it is still in the inbox.
    fn assert_refused_not_at_all(&self, name: &str, op: &SignedOp) {
        assert!(self.inbox.join(name).exists(), "{name} left the inbox");
        assert!(
            self.rejections_of(op).is_empty(),
            "refused: {:?}",
            self.rejections_of(op)
        );
        assert!(self.settles_of(op).is_empty());
        assert!(!self.nonce_consumed(op));
    }
}

// ---- revocation without a restart -------------------------------------------------------

impl World {
    fn allowed_signers(&self) -> PathBuf {
        self.signers_toml.with_file_name("allowed_signers")
    }

    fn count_events(&self, kind: &str) -> usize {
        self.audit()
            .iter()
            .filter(|r| r.event.kind() == kind)
            .count()
    }
}

/// 19a. A key removed from allowed_signers stops authorising at the next decision. (A
///      principal left with a role but no key makes the file invalid: see 19c.)
#[tokio::test]
async fn r19a_key_removed_from_allowed_signers_stops_at_once() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    // A first decision with the full set (an unrelated pending round).
    assert!(is_pending(&w.destroy(&action(&[])).await));
    // Alice's key is compromised: her entry now names her new key.
    let fresh = keygen(&w.root.join("keys"), "alice-new", "ed25519", None);
    let text = std::fs::read_to_string(w.allowed_signers()).unwrap();
    std::fs::write(
        w.allowed_signers(),
        text.replace(&w.alice.line, &fresh.line),
    )
    .unwrap();
    let op = good_op();
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    assert!(is_pending(&w.destroy(&action(&[])).await));
    w.assert_untouched();
    w.assert_refused(
        "op",
        &op,
        RejectReason::UnknownSigner,
        "unknown_signer",
        true,
    );
    assert_eq!(w.count_events("signers_loaded"), 2, "the change is audited");
    w.assert_chain();
}

/// 19b. A role taken away in signers.toml: the key no longer authorises a destroy.
#[tokio::test]
async fn r19b_role_changed_in_signers_toml_stops_at_once() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let toml = std::fs::read_to_string(&w.signers_toml).unwrap();
    std::fs::write(
        &w.signers_toml,
        toml.replace(
            "\"alice@example.com\" = \"operational\"",
            "\"alice@example.com\" = \"reviewer\"",
        ),
    )
    .unwrap();
    let op = good_op();
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    assert!(is_pending(&w.destroy(&action(&[])).await));
    w.assert_untouched();
    w.assert_refused("op", &op, RejectReason::RoleDenied, "role_denied", true);
}

/// 19c. A signer file that becomes invalid keeps every destructive op pending (never the
///      old set), says so in the audit once, and the op executes once the file is fixed.
#[tokio::test]
async fn r19c_invalid_signer_file_keeps_everything_pending() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let good = std::fs::read_to_string(w.allowed_signers()).unwrap();
    std::fs::write(
        w.allowed_signers(),
        "alice@example.com ssh-ed25519 garbage\n",
    )
    .unwrap();
    let op = good_op();
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    for _ in 0..3 {
        assert!(is_pending(&w.destroy(&action(&[])).await));
        w.keeper().sweep().await;
    }
    w.assert_untouched();
    w.assert_refused_not_at_all("op", &op);
    assert_eq!(w.count_events("signers_refused"), 1, "audited once");
    let refused = w
        .audit()
        .into_iter()
        .find_map(|r| match r.event {
            AuditEvent::SignersRefused { detail } => Some(detail),
            _ => None,
        })
        .unwrap();
    assert!(refused.contains("allowed_signers"), "{refused}");
    // Removing the file is no better.
    std::fs::remove_file(w.allowed_signers()).unwrap();
    assert!(is_pending(&w.destroy(&action(&[])).await));
    w.assert_untouched();
    std::fs::write(w.allowed_signers(), good).unwrap();
    executed_by(&w.destroy(&action(&[])).await, &[&w.alice]);
    w.assert_executed("op", &op, &[&w.alice]);
    w.assert_chain();
}

// ---- the op binds the guest's kind ------------------------------------------------------

/// 20a. An op approved against container 101 does not destroy a virtual machine 101
///      whose configuration has the very same digest.
#[tokio::test]
async fn r20a_an_op_for_a_container_does_not_destroy_a_vm() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let mut vm = guest101(None);
    vm.kind = GuestKind::Qemu;
    w.fake.put(vm);
    let op = good_op();
    assert_eq!(op.target, ct101());
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    let destroy_vm = DestructiveAction {
        target: Target::guest(GuestKind::Qemu, VMID),
        ..action(&[])
    };
    assert!(is_pending(
        &w.keeper().destructive(&w.fake, &destroy_vm).await
    ));
    w.assert_untouched();
    w.assert_refused(
        "op",
        &op,
        RejectReason::BindingMismatch,
        "binding_mismatch",
        true,
    );
    let note = std::fs::read_to_string(w.inbox.join("rejected").join("op.reason")).unwrap();
    assert!(
        note.contains("lxc/101") && note.contains("qemu/101"),
        "{note}"
    );
}

/// 20b. A version 1 op (which bound no kind), validly signed, is refused with the reason;
///      so is a version 2 op (vmid and kind, before targets).
#[tokio::test]
async fn r20b_a_version_1_op_is_refused_with_its_reason() {
    need_ssh_keygen!();
    let w = World::new(1, false);
    let v1 = good_op()
        .render()
        .replace("version = 3", "version = 1")
        .replace("target = \"lxc/101\"\n", "guest = 101\n");
    let stage = w.root.join("v1");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::write(stage.join("op"), &v1).unwrap();
    let sig = sign_file(&w.alice.clone(), "castellan-op", &stage.join("op"));
    w.drop_in("old", v1.as_bytes(), &[sig]);
    assert!(is_pending(&w.destroy(&action(&[])).await));
    w.keeper().sweep().await;
    w.assert_untouched();
    let note = std::fs::read_to_string(w.inbox.join("rejected").join("old.reason")).unwrap();
    assert!(note.starts_with("rejected: bad_format: "), "{note}");
    assert!(note.contains("without its kind"), "{note}");
}

/// 20c. A version 2 op (a vmid and a kind, before targets), validly signed, is refused
///      with the reason and destroys nothing.
#[tokio::test]
async fn r20c_a_version_2_op_is_refused_with_its_reason() {
    need_ssh_keygen!();
    let w = World::new(1, false);
    let v2 = good_op()
        .render()
        .replace("version = 3", "version = 2")
        .replace("target = \"lxc/101\"\n", "guest = 101\nkind = \"lxc\"\n");
    let stage = w.root.join("v2");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::write(stage.join("op"), &v2).unwrap();
    let sig = sign_file(&w.alice.clone(), "castellan-op", &stage.join("op"));
    w.drop_in("old", v2.as_bytes(), &[sig]);
    assert!(is_pending(&w.destroy(&action(&[])).await));
    w.keeper().sweep().await;
    w.assert_untouched();
    let note = std::fs::read_to_string(w.inbox.join("rejected").join("old.reason")).unwrap();
    assert!(note.starts_with("rejected: bad_format: "), "{note}");
    assert!(
        note.contains("version 2 ops name a guest by vmid and kind"),
        "{note}"
    );
}

// ---- the precondition holds at the moment of the DELETE ---------------------------------

const D_NEW: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

/// 21a. The guest changed after the planner saw it and before the op was used: refused
///      as stale_precondition before the nonce is spent; nothing destroyed.
#[tokio::test]
async fn r21a_a_change_before_execution_is_stale_and_spends_nothing() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let op = good_op(); // for D101, as the planner saw it
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    w.fake
        .lock()
        .guests
        .get_mut(&VMID)
        .unwrap()
        .spec
        .as_mut()
        .unwrap()
        .digest = D_NEW.into();
    let out = w.destroy(&action(&[])).await;
    assert!(
        !matches!(out, DestructiveOutcome::Executed { .. }),
        "{out:?}"
    );
    w.assert_untouched();
    w.assert_refused(
        "op",
        &op,
        RejectReason::StalePrecondition,
        "stale_precondition",
        true,
    );
    assert!(
        w.store().intents_for(&ct101()).unwrap().is_empty(),
        "nothing journaled"
    );
    w.assert_chain();
}

/// 21b. A change made while the guest shuts down (a volume attached during the stop):
///      the look after the shutdown refuses the DELETE, audited as stale_precondition;
///      the intent is rolled back, the op settled to rejected/, and the next round
///      offers a fresh payload bound to the new state.
#[tokio::test]
async fn r21b_a_change_during_the_shutdown_is_caught_before_the_delete() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let mut running = guest101(None);
    running.run = ActualRun::Running;
    w.fake.put(running);
    w.fake.lock().digest_after_stop = Some(D_NEW.into());
    let op = good_op();
    w.offer("op", &op, &[(&w.alice.clone(), "castellan-op")]);
    let out = w.destroy(&action(&[])).await;
    assert!(
        !matches!(out, DestructiveOutcome::Executed { .. }),
        "{out:?}"
    );
    assert!(w.fake.has(VMID), "destroyed with the change");
    assert!(w.fake.destroyed().is_empty());
    assert_eq!(w.rejections_of(&op), vec![RejectReason::StalePrecondition]);
    assert!(w.nonce_consumed(&op), "the op was used up by its attempt");
    let intents = w.store().intents_for(&ct101()).unwrap();
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0].state, IntentState::RolledBack);
    assert!(
        intents[0].task_mark.is_some(),
        "prepared before the last look"
    );
    let note = std::fs::read_to_string(w.inbox.join("rejected").join("op.reason")).unwrap();
    assert!(note.starts_with("rejected: stale_precondition: "), "{note}");
    assert!(note.contains(D_NEW), "{note}");
    // A fresh approval is asked for, against the state the guest is in now.
    let fresh = DestructiveAction {
        state_digest: D_NEW.into(),
        ..action(&[])
    };
    let DestructiveOutcome::Pending { payload } = w.destroy(&fresh).await else {
        panic!("expected a fresh payload");
    };
    let p = SignedOp::parse(&std::fs::read(payload).unwrap()).unwrap();
    assert_eq!(p.precondition.as_deref(), Some(D_NEW));
    w.assert_chain();
}

// ---- provenance cannot be forged by one row ---------------------------------------------

impl World {
    fn provenance_refusals(&self) -> Vec<String> {
        self.audit()
            .into_iter()
            .filter_map(|r| match r.event {
                AuditEvent::ProvenanceRefused { detail } => Some(detail),
                _ => None,
            })
            .collect()
    }
}

/// An intent for guest 101 with `op`, ending as `outcome`.
fn intent_for(
    s: &mut Store,
    op: &str,
    guest: GuestKind,
    outcome: Outcome,
) -> castellan_store::IntentId {
    let (id, _) = s
        .begin_intent(
            NewIntent {
                action_id: format!("{op}-{}", nonce()),
                op: op.into(),
                target: Target::guest(guest, VMID),
                params: BTreeMap::new(),
                nonce: None,
                nonce_not_after: None,
                destructive: false,
                upid_hint: None,
            },
            AuditEvent::IntentRecorded,
            t0(),
        )
        .unwrap();
    let ev = outcome.event();
    s.mark_terminal(id, outcome, ev, t0()).unwrap();
    id
}

/// 22. A provenance record makes a destroy benign only when it cites this agent's own
///     journaled, terminal, successful creation of exactly that guest (vmid and kind).
///     Every forgery below leaves the destroy pending a signature, audited.
#[tokio::test]
async fn r22_forged_provenance_makes_nothing_benign() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    type Forge = Box<dyn FnOnce(&mut Store)>;
    let forgeries: Vec<(&str, Forge)> = vec![
        (
            "is a start",
            Box::new(|s: &mut Store| {
                let id = intent_for(s, "start", GuestKind::Lxc, Outcome::Succeeded);
                s.record_provenance(
                    VMID,
                    GuestKind::Lxc,
                    ProvenanceKind::Scratch { intent: id },
                    t0(),
                )
                .unwrap();
            }),
        ),
        (
            "did not succeed",
            Box::new(|s: &mut Store| {
                let failed = Outcome::Failed {
                    error: "no space".into(),
                };
                let id = intent_for(s, "provision", GuestKind::Lxc, failed);
                s.record_provenance(
                    VMID,
                    GuestKind::Lxc,
                    ProvenanceKind::Scratch { intent: id },
                    t0(),
                )
                .unwrap();
            }),
        ),
        (
            "recorded for a qemu guest",
            Box::new(|s: &mut Store| {
                let id = intent_for(s, "provision", GuestKind::Qemu, Outcome::Succeeded);
                s.record_provenance(
                    VMID,
                    GuestKind::Qemu,
                    ProvenanceKind::Scratch { intent: id },
                    t0(),
                )
                .unwrap();
            }),
        ),
        ("the journal does not hold", Box::new(|_: &mut Store| {})),
    ];
    for (i, (why, forge)) in forgeries.into_iter().enumerate() {
        w.restart_with(|s| forge(s));
        if why == "the journal does not hold" {
            // One row written by hand, foreign keys off, citing no intent at all.
            let db = rusqlite::Connection::open(w.data.join("castellan.db")).unwrap();
            db.pragma_update(None, "foreign_keys", false).unwrap();
            db.execute(
                "INSERT OR REPLACE INTO provenance (vmid, guest, kind, intent_id, recorded_at)
                 VALUES (101, 'lxc', 'scratch', 9999, '2026-06-01T12:00:00Z')",
                [],
            )
            .unwrap();
        }
        let out = w.destroy(&action(&[])).await;
        assert!(
            is_pending(&out),
            "{why}: a forged record made it benign: {out:?}"
        );
        w.assert_untouched();
        let refused = w.provenance_refusals();
        assert_eq!(refused.len(), i + 1, "{why}: {refused:?}");
        assert!(refused[i].contains(why), "{why}: {refused:?}");
    }
    // The real thing: this agent's own successful creation of exactly this guest.
    w.restart_with(|s| {
        let id = intent_for(s, "provision", GuestKind::Lxc, Outcome::Succeeded);
        s.record_provenance(
            VMID,
            GuestKind::Lxc,
            ProvenanceKind::Scratch { intent: id },
            t0(),
        )
        .unwrap();
    });
    assert_eq!(
        w.destroy(&action(&[])).await,
        DestructiveOutcome::Executed {
            signers: vec![],
            backup: None
        }
    );
    assert_eq!(w.fake.destroyed(), vec![VMID]);
    w.assert_chain();
}

// ---- recovery holds what it cannot prove ------------------------------------------------

/// 23. A destroy prepared and maybe sent, on a node whose task list cannot be read: the
///     evidence is ambiguous, so recovery holds the intent for an operator (audited) and
///     nothing more happens to the guest: no DELETE, no fresh payload.
#[tokio::test]
async fn r23_ambiguous_evidence_is_held_for_an_operator() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let op = good_op();
    let (digest, n, na) = (op.digest(), op.nonce.clone(), op.not_after);
    w.restart_with(|s| {
        let (id, _) = s
            .begin_intent(
                NewIntent {
                    action_id: digest,
                    op: "destroy".into(),
                    target: castellan_core::Target::guest(GuestKind::Lxc, VMID),
                    params: BTreeMap::new(),
                    nonce: Some(n),
                    nonce_not_after: Some(na),
                    destructive: true,
                    upid_hint: Some(D101.into()),
                },
                AuditEvent::IntentRecorded,
                t0(),
            )
            .unwrap();
        s.mark_prepared(id, &[], t0()).unwrap();
    });
    w.keeper().recover(&w.fake).await.unwrap();
    let held = w.store().in_flight().unwrap();
    assert_eq!(held.len(), 1);
    assert!(
        held[0]
            .held
            .as_deref()
            .is_some_and(|r| r.contains("task list")),
        "{held:?}"
    );
    assert!(w.audit().iter().any(|r| r.event.kind() == "intent_held"));
    let out = w.destroy(&action(&[])).await;
    let DestructiveOutcome::Failed(why) = &out else {
        panic!("expected the held intent to block the guest, got {out:?}");
    };
    assert!(why.contains("held for an operator"), "{why}");
    w.assert_untouched();
    assert!(
        !w.data
            .join("pending")
            .join("pve-01-lxc-101-destroy.op")
            .exists(),
        "a fresh payload was offered while a destroy is unsettled"
    );
    // A restart does not guess either.
    w.restart_with(|_| {});
    w.keeper().recover(&w.fake).await.unwrap();
    w.assert_untouched();
    assert!(w.store().in_flight().unwrap()[0].held.is_some());
}

// ---- key rotation through the inbox ----------------------------------------------------

impl World {
    /// A signer-set document of `version` holding `keys` as (principal, role, key).
    fn signer_set(version: u64, keys: &[(&str, &str, &Key)]) -> String {
        let mut s = format!("version = {version}\n");
        for (principal, role, key) in keys {
            s.push_str(&format!(
                "\n[[key]]\nprincipal = \"{principal}\"\nrole = \"{role}\"\npublic_key = \"{}\"\n",
                key.line.trim()
            ));
        }
        s
    }

    /// Drops the signer-set `doc` into the inbox as `name`, signed by `signers` under
    /// `castellan-signers`, and lets the gatekeeper sweep the inbox.
    async fn rotate(&mut self, name: &str, doc: &str, signers: &[&Key]) {
        self.staged += 1;
        let stage = self.root.join(format!("stage-{}", self.staged));
        std::fs::create_dir_all(&stage).unwrap();
        let file = stage.join(name);
        std::fs::write(&file, doc).unwrap();
        let sigs: Vec<Vec<u8>> = signers
            .iter()
            .map(|k| sign_file(k, "castellan-signers", &file))
            .collect();
        self.drop_in(name, doc.as_bytes(), &sigs);
        self.keeper().sweep().await;
    }

    fn in_force_version(&self) -> u64 {
        self.store()
            .signer_set_in_force()
            .unwrap()
            .map_or(1, |s| s.version)
    }
}

/// A rotation signed by the set in force and by the new set is put in force (journaled,
/// audited with both groups' signers, settled, a copy written for operators); the key it
/// removes is refused at once, while a key it keeps still executes.
#[tokio::test]
async fn rotation_puts_a_new_set_in_force_and_a_removed_key_is_refused_at_once() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let (alice, bob, glass) = (w.alice.clone(), w.bob.clone(), w.breakglass.clone());
    let v2 = World::signer_set(
        2,
        &[
            ("alice@example.com", "operational", &alice),
            ("breakglass@example.com", "recovery", &glass),
        ],
    );
    w.rotate("v2.toml", &v2, &[&alice]).await;
    assert_eq!(w.in_force_version(), 2);
    assert!(w.inbox.join("done").join("v2.toml").exists());
    assert_eq!(
        std::fs::read_to_string(w.data.join("signers.in-force.toml")).unwrap(),
        v2
    );
    let rotated: Vec<AuditRecord> = w
        .audit()
        .into_iter()
        .filter(|r| r.event.kind() == "signers_rotated")
        .collect();
    assert_eq!(rotated.len(), 1);
    assert_eq!(
        rotated[0].fields.signer_fingerprints,
        std::slice::from_ref(&alice.fingerprint)
    );
    let AuditEvent::SignersRotated {
        version,
        replaces,
        detail,
        ..
    } = &rotated[0].event
    else {
        unreachable!()
    };
    assert_eq!((*version, *replaces), (2, 1));
    assert!(detail.contains("removed bob@example.com"), "{detail}");
    // The set in force is in the audit log at the next decision.
    let op = good_op();
    w.offer("by-bob", &op, &[(&bob, "castellan-op")]);
    let out = w.destroy(&action(&[])).await;
    assert!(
        matches!(out, DestructiveOutcome::Pending { .. }),
        "bob's key was removed: {out:?}"
    );
    assert_eq!(w.rejections_of(&op), [RejectReason::UnknownSigner]);
    assert!(w.audit().iter().any(|r| matches!(
        r.event,
        AuditEvent::SignersLoaded {
            version: Some(2),
            ..
        }
    )));
    // A restart keeps the rotated set.
    w.restart_with(|_| {});
    assert_eq!(w.in_force_version(), 2);
    // signers.toml is no longer read: the journal's set is in force (were the broken file
    // read, nothing could be accepted).
    std::fs::write(&w.signers_toml, "not = [valid").unwrap();
    let op = good_op();
    w.offer("by-alice", &op, &[(&alice, "castellan-op")]);
    let out = w.destroy(&action(&[])).await;
    executed_by(&out, &[&alice]);
}

/// A set never goes back: the same version again, or an older one, is refused as a
/// replay however it is signed; a set signed only by a key the set in force does not
/// hold, or only by its new keys, is refused and nothing changes.
#[tokio::test]
async fn rotation_is_refused_unless_newer_and_signed_by_both_sets() {
    need_ssh_keygen!();
    let mut w = World::new(1, false);
    let (alice, bob, glass, stranger) = (
        w.alice.clone(),
        w.bob.clone(),
        w.breakglass.clone(),
        w.stranger.clone(),
    );
    // The new set's key alone (a stranger to the set in force): refused.
    let v2_stranger = World::signer_set(
        2,
        &[
            ("stranger@example.com", "operational", &stranger),
            ("breakglass@example.com", "recovery", &glass),
        ],
    );
    w.rotate("take-over.toml", &v2_stranger, &[&stranger]).await;
    assert_eq!(w.in_force_version(), 1, "nothing changed");
    assert!(w.inbox.join("rejected").join("take-over.toml").exists());
    // The set in force alone, not the new set: refused too.
    let v2_new_only = World::signer_set(2, &[("stranger@example.com", "operational", &stranger)]);
    w.rotate("unproven.toml", &v2_new_only, &[&alice]).await;
    assert_eq!(w.in_force_version(), 1);
    // Both: accepted.
    let v3 = World::signer_set(
        3,
        &[
            ("alice@example.com", "operational", &alice),
            ("bob@example.com", "operational", &bob),
            ("breakglass@example.com", "recovery", &glass),
        ],
    );
    w.rotate("v3.toml", &v3, &[&bob]).await;
    assert_eq!(w.in_force_version(), 3);
    // Equal and older versions are replays, whoever signs them.
    for (name, version) in [("again.toml", 3), ("older.toml", 2)] {
        let doc = World::signer_set(version, &[("alice@example.com", "operational", &alice)]);
        w.rotate(name, &doc, &[&alice, &bob]).await;
        assert_eq!(w.in_force_version(), 3, "{name}");
        assert!(w.inbox.join("rejected").join(name).exists(), "{name}");
    }
    let reasons: Vec<RejectReason> = w
        .audit()
        .into_iter()
        .filter_map(|r| match r.event {
            AuditEvent::OpRejected { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| **r == RejectReason::Replayed)
            .count(),
        2,
        "{reasons:?}"
    );
    w.assert_chain();
}
