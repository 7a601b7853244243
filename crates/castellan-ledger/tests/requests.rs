//! Owner request drafts: one per surface, in inventory order, asking for every field the
//! acceptance contract needs; pinned as a golden snapshot.

#![allow(clippy::unwrap_used)]

mod common;

use castellan_ledger::model::RequestReport;
use castellan_ledger::schema::INCIDENT_OWNER_RESPONSE_FIELDS;
use common::*;

#[test]
fn one_draft_per_surface_with_every_question() {
    let inv = inventory();
    let r = requests();
    assert_eq!(r.schema_version, "host_service_owner_request_draft_v1");
    assert_eq!(r.status, "owner_request_drafts_ready_not_sent");
    assert_eq!(r.request_drafts.len(), inv.surfaces.len());
    assert_eq!(r.summary.request_draft_count, 3);
    assert_eq!(r.summary.write_capable_request_count, 2);
    for (d, s) in r.request_drafts.iter().zip(&inv.surfaces) {
        assert_eq!(d.surface(), *s);
        assert_eq!(
            d.request_id,
            format!("host_service_owner_request:{}", s.surface_id)
        );
        // The request's own fields; the acceptance report appends the incident fields.
        assert_eq!(d.required_owner_fields.len(), 12);
        for &f in INCIDENT_OWNER_RESPONSE_FIELDS {
            assert!(!d.required_owner_fields.iter().any(|x| x == f));
            assert!(d.owner_questions.iter().any(|q| q.field == f));
        }
        assert_eq!(d.owner_questions.len(), 18);
    }
    // The document round-trips, and unknown fields are refused by name.
    let text = castellan_ledger::to_pretty_json(&r);
    let back: RequestReport = serde_json::from_str(&text).unwrap();
    assert_eq!(back, r);
    let bad = text.replacen("\"status\"", "\"statuz\"", 1);
    let err = serde_json::from_str::<RequestReport>(&bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("statuz"), "{err}");
    insta::assert_snapshot!("requests", text);
    // Written draft by draft, the bytes are the same as through a sorted `Value`.
    let streamed = castellan_ledger::requests::write_report(&r, Vec::new()).unwrap();
    assert_eq!(String::from_utf8(streamed).unwrap(), text);
}
