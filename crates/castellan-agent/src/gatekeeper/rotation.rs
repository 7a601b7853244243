//! Key rotation through the inbox: a signer-set document with its signatures, judged
//! against the set in force (`castellan_sig::verify_rotation`: the threshold of the set in
//! force and of the new set, a strictly newer version) and, when accepted, put in force in
//! the journal with its audit record in one transaction, then settled out of the inbox.
//! From then on every decision uses the new set: a key it no longer lists is refused at
//! once, and the signer file (version 1) is no longer read.

use castellan_sig::rotation::{AcceptedRotation, SetDiff, is_signer_set_document};

use super::*;

/// Where the set in force is written for operators (the journal holds the one decisions
/// use): what `castellan signers propose --from` takes to write the next version.
pub const SIGNERS_IN_FORCE_FILE: &str = "signers.in-force.toml";

impl Gatekeeper {
    /// Judges one inbox file if it is a signer-set document; `false` when it is not one
    /// (it is then an op, or nothing).
    pub(super) async fn offer_rotation(&self, o: &OfferedOp) -> bool {
        if !is_signer_set_document(&o.bytes) {
            return false;
        }
        if o.unsigned() {
            // Not signed yet: it waits.
            return true;
        }
        if let Some(Decision::Rejected { reason, detail }) = unreadable_only(o) {
            self.reject(o, None, reason, &detail).await;
            return true;
        }
        let (version, in_force) = match self.signers_in_force().await {
            Ok(v) => v,
            // An unusable set in force approves nothing; the document waits for it to be
            // fixed (the failure is audited where it is found).
            Err(_) => return true,
        };
        let Some(in_force) = in_force else {
            let why = "this host trusts no signers ([signers] config is not set): no set in force can approve a rotation";
            self.reject(o, None, RejectReason::ThresholdNotMet, why)
                .await;
            return true;
        };
        let now = self.now();
        let effective = match self.store(move |s| s.effective_now(now)).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(event = "journal_failed", error = %e);
                return true;
            }
        };
        match castellan_sig::verify_rotation(
            &in_force,
            version,
            &o.bytes,
            &o.sig_bytes(),
            effective,
        ) {
            Ok(accepted) => self.put_in_force(o, accepted).await,
            Err(e) => self.reject(o, None, e.reason(), &e.to_string()).await,
        }
        true
    }

    /// Puts an accepted rotation in force: journaled with its audit record, the document
    /// written beside the journal for operators, the inbox files settled.
    async fn put_in_force(&self, o: &OfferedOp, accepted: AcceptedRotation) {
        let mut fields = AuditFields::default();
        let signers: std::collections::BTreeSet<&String> = accepted
            .in_force_signers
            .iter()
            .chain(&accepted.new_signers)
            .collect();
        for fp in signers {
            fields = fields.signer(fp.clone());
        }
        let detail = describe_diff(&accepted.diff);
        let entry = AuditEvent::SignersRotated {
            version: accepted.version,
            replaces: accepted.replaces,
            digest: accepted.digest.clone(),
            detail: detail.clone(),
        }
        .with(fields);
        let (version, digest, bytes, now) = (
            accepted.version,
            accepted.digest.clone(),
            accepted.bytes.clone(),
            self.now(),
        );
        match self
            .store(move |s| s.put_signer_set(version, &digest, &bytes, entry, now))
            .await
        {
            Ok(_) => {}
            Err(GateError::Journal(StoreError::StaleSignerSet { version, in_force })) => {
                let why = format!(
                    "version {version} is not newer than the set in force, version {in_force}"
                );
                self.reject(o, None, RejectReason::Replayed, &why).await;
                return;
            }
            Err(e) => {
                tracing::error!(event = "journal_failed", error = %e);
                return;
            }
        }
        tracing::warn!(event = "signers_rotated", version = accepted.version, replaces = accepted.replaces,
            digest = %accepted.digest, detail, "a new signer set is in force");
        if let Some(data_dir) = self.pending_dir.parent() {
            let path = data_dir.join(SIGNERS_IN_FORCE_FILE);
            let bytes = accepted.bytes.clone();
            match blocking("signer set copy", move || write_atomic(&path, &bytes)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(event = "signers_copy_failed", error = %e),
                Err(e) => tracing::warn!(event = "signers_copy_failed", error = %e),
            }
        }
        // Decisions from here on use the new set.
        let _ = self.current_signers().await;
        self.settle(
            o,
            Settled::Done,
            &format!("signer set version {} in force", accepted.version),
        )
        .await;
    }
}

/// What a rotation changes, in one line for the audit record.
fn describe_diff(d: &SetDiff) -> String {
    let key = |k: &castellan_sig::rotation::KeyView| {
        let roles: Vec<&str> = k.roles.iter().map(|r| r.as_str()).collect();
        format!(
            "{} ({}, {})",
            k.principals.join(","),
            roles.join(","),
            k.fingerprint
        )
    };
    let mut parts = Vec::new();
    if !d.added.is_empty() {
        parts.push(format!(
            "added {}",
            d.added.iter().map(key).collect::<Vec<_>>().join("; ")
        ));
    }
    if !d.removed.is_empty() {
        parts.push(format!(
            "removed {}",
            d.removed.iter().map(key).collect::<Vec<_>>().join("; ")
        ));
    }
    if !d.changed.is_empty() {
        parts.push(format!(
            "changed {}",
            d.changed
                .iter()
                .map(|(_, new)| key(new))
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    for (op, old, new) in &d.thresholds {
        parts.push(format!("threshold {op} {old}->{new}"));
    }
    if parts.is_empty() {
        "no key or threshold changes".to_owned()
    } else {
        parts.join("; ")
    }
}
