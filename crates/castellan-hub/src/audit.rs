//! Audit aggregation: each agent uploads its hash-chained audit records; the hub checks
//! every upload extends the head it verified last, and keeps that head.
//!
//! The hub holds, per host, the chain up to the last record it verified. An upload is
//! taken only when it continues that chain record by record (next seq, linking to the
//! held head's hash, each hash recomputed from the record's contents). Anything else is
//! refused, changes nothing, and is kept as a problem the fleet view shows:
//! - a **gap**: the upload starts past the next record (records are missing);
//! - a **fork**: a record links to something other than the held head, or the host
//!   claims the held seq with another hash (history rewritten sideways);
//! - a **rewind**: the host claims a head below the held one (its log was truncated or
//!   replaced: history rewritten backwards);
//! - an **invalid** record: its hash does not match its contents.
//!
//! Because the held head never moves except forward along a verified chain, a host that
//! rewrites its own log is caught twice: its next upload no longer fits, and
//! `castellan audit verify --data-dir D --hub URL` checks the local log against the
//! head the hub pinned.
//!
//! This module decides; the store keeps records and problems; the server wires the two.

use castellan_store::{ChainCursor, GENESIS_HASH, canonical_json};

use crate::proto::{AuditHead, AuditProblemKind};

/// A verified record, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRecord {
    /// Its seq.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
    /// Its canonical export line (the form the agent exports and the hub serves).
    pub line: String,
}

/// Why an upload was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The kind of problem.
    pub kind: AuditProblemKind,
    /// The record concerned.
    pub seq: u64,
    /// In words.
    pub detail: String,
}

/// The head of an empty chain.
pub fn genesis() -> AuditHead {
    AuditHead {
        seq: 0,
        hash: GENESIS_HASH.to_owned(),
    }
}

/// Checks an upload against the head the hub holds (`held`, [`genesis`] for none):
/// the verified records to append, or why nothing is taken.
pub fn check_upload(
    held: &AuditHead,
    claimed: &AuditHead,
    records: &[serde_json::Value],
) -> Result<Vec<VerifiedRecord>, Refusal> {
    let refuse = |kind, seq, detail: String| Err(Refusal { kind, seq, detail });
    if claimed.seq < held.seq {
        // Kept at the held head (not the claimed one, which the agent chooses), so
        // repeated rewinds count as one problem.
        return refuse(
            AuditProblemKind::Rewind,
            held.seq,
            format!(
                "the host's chain head moved backwards: it is at record {}, the hub verified up to record {}",
                claimed.seq, held.seq
            ),
        );
    }
    if claimed.seq == held.seq && claimed.hash != held.hash {
        return refuse(
            AuditProblemKind::Fork,
            claimed.seq,
            format!(
                "the host's record {} is not the one the hub verified (its hash changed): history was rewritten",
                claimed.seq
            ),
        );
    }
    let mut chain = ChainCursor::resume(held.seq, &held.hash);
    let mut out = Vec::with_capacity(records.len());
    for value in records {
        let seq = value
            .get("seq")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let expected = chain.next_seq();
        if out.is_empty() && seq > expected {
            return refuse(
                AuditProblemKind::Gap,
                expected,
                format!(
                    "records {expected} to {} are missing from the upload",
                    seq - 1
                ),
            );
        }
        let linked_elsewhere = seq == expected
            && value
                .get("prev_hash")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|prev| prev != chain.head_hash());
        match chain.push_value(value) {
            Ok((seq, hash)) => out.push(VerifiedRecord {
                seq,
                // Only what was verified is kept: extra keys an uploader added are not.
                line: canonical_json(&serde_json::json!({
                    "event": value.get("event"),
                    "hash": &hash,
                    "prev_hash": value.get("prev_hash"),
                    "seq": seq,
                    "time": value.get("time"),
                })),
                hash,
            }),
            Err(_) if linked_elsewhere => {
                let what = if expected == 1 {
                    "the genesis hash".to_owned()
                } else {
                    format!("record {}", expected - 1)
                };
                return refuse(
                    AuditProblemKind::Fork,
                    expected,
                    format!(
                        "record {expected} does not link to {what} as the hub verified it: history was rewritten"
                    ),
                );
            }
            Err(broken) => {
                let kind = if seq > expected {
                    AuditProblemKind::Gap
                } else {
                    AuditProblemKind::Invalid
                };
                return refuse(kind, broken.seq, broken.reason);
            }
        }
    }
    if let Some(last) = out.last()
        && last.seq > claimed.seq
    {
        return refuse(
            AuditProblemKind::Invalid,
            last.seq,
            format!(
                "the upload holds record {} past the head the host claims ({})",
                last.seq, claimed.seq
            ),
        );
    }
    if let Some(last) = out.last()
        && last.seq == claimed.seq
        && last.hash != claimed.hash
    {
        return refuse(
            AuditProblemKind::Fork,
            last.seq,
            format!(
                "record {} as uploaded is not the head the host claims",
                last.seq
            ),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use castellan_store::{AuditEvent, Store};

    use super::*;

    /// A real agent log of `n` records, as export lines parsed.
    fn log(n: usize, tag: &str) -> Vec<serde_json::Value> {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        for i in 0..n {
            store
                .append_audit(
                    AuditEvent::ActionFailed {
                        error: format!("{tag} {i}"),
                    },
                    jiff::Timestamp::now(),
                )
                .unwrap();
        }
        store
            .export_lines(1, 10_000)
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn head(records: &[serde_json::Value], seq: u64) -> AuditHead {
        if seq == 0 {
            return genesis();
        }
        let r = &records[seq as usize - 1];
        AuditHead {
            seq,
            hash: r["hash"].as_str().unwrap().to_owned(),
        }
    }

    #[test]
    fn a_chain_is_taken_in_pieces_and_each_piece_must_extend_the_last() {
        let recs = log(5, "a");
        let first = check_upload(&genesis(), &head(&recs, 5), &recs[..2]).unwrap();
        assert_eq!(first.len(), 2);
        assert_eq!(first[1].seq, 2);
        // The stored line is the export line itself.
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&first[0].line).unwrap(),
            recs[0]
        );
        let rest = check_upload(&head(&recs, 2), &head(&recs, 5), &recs[2..]).unwrap();
        assert_eq!(rest.last().unwrap().hash, head(&recs, 5).hash);
        // Keys the record does not have are not kept.
        let mut padded = recs[0].clone();
        padded["note"] = serde_json::Value::String("trust me".into());
        let taken = check_upload(&genesis(), &head(&recs, 5), &[padded]).unwrap();
        assert!(!taken[0].line.contains("trust me"));
        assert_eq!(taken[0].line, first[0].line);
        // Nothing new: nothing taken, nothing wrong.
        assert!(
            check_upload(&head(&recs, 5), &head(&recs, 5), &[])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn gaps_forks_rewinds_and_tampering_are_refused_by_kind() {
        let recs = log(5, "a");
        let other = log(5, "b");
        // A gap: record 3 after a held 1.
        let r = check_upload(&head(&recs, 1), &head(&recs, 5), &recs[2..]).unwrap_err();
        assert_eq!((r.kind, r.seq), (AuditProblemKind::Gap, 2));
        // A fork: another log's record 3 after our 2.
        let r = check_upload(&head(&recs, 2), &head(&other, 5), &other[2..]).unwrap_err();
        assert_eq!((r.kind, r.seq), (AuditProblemKind::Fork, 3));
        // Sideways: same seq, another hash.
        let r = check_upload(&head(&recs, 3), &head(&other, 3), &[]).unwrap_err();
        assert_eq!(r.kind, AuditProblemKind::Fork);
        // Backwards.
        let r = check_upload(&head(&recs, 4), &head(&recs, 2), &[]).unwrap_err();
        assert_eq!((r.kind, r.seq), (AuditProblemKind::Rewind, 4));
        // A record edited after the fact: its hash no longer matches.
        let mut edited = recs[2].clone();
        edited["event"]["error"] = serde_json::Value::String("nothing happened".into());
        let r = check_upload(&head(&recs, 2), &head(&recs, 5), &[edited]).unwrap_err();
        assert_eq!((r.kind, r.seq), (AuditProblemKind::Invalid, 3));
        // Not a record at all.
        let r = check_upload(
            &genesis(),
            &head(&recs, 5),
            &[serde_json::json!({"seq": 1})],
        )
        .unwrap_err();
        assert_eq!(r.kind, AuditProblemKind::Invalid);
        // Records past the head the host claims.
        let r = check_upload(&genesis(), &head(&recs, 1), &recs[..2]).unwrap_err();
        assert_eq!(r.kind, AuditProblemKind::Invalid);
        // A batch that ends on the claimed seq with another hash.
        let r = check_upload(&genesis(), &head(&other, 2), &recs[..2]).unwrap_err();
        assert_eq!(r.kind, AuditProblemKind::Fork);
    }
}
