//! castellan's host-service governance ledger.
//!
//! A platform team points castellan at its ops repository; this crate turns it into:
//!
//! 1. an **inventory** of host-service surfaces (compose files, systemd units and timers,
//!    Ansible roles and playbooks, repair-bot configs), detected by content
//!    ([`inventory`], [`detect`]);
//! 2. an **owner request draft** per surface ([`requests`]);
//! 3. an **intake** that runs the automated reviewer checks over each owner response and
//!    routes it to an outcome lane, quarantining secrets and raw configuration
//!    ([`intake`], [`secrets`]);
//! 4. **signed reviewer records** ([`review`]) — the only thing that moves a candidate to
//!    accepted or rejected;
//! 5. the **acceptance report**, `host_service_owner_response_acceptance_v1`
//!    ([`acceptance`]), whose counters are derived from those records.
//!
//! Invariants:
//! - nothing here reads a live host, runs a command on one or opens a runtime gate: every
//!   `*_authorized` and `runtime_gate` field is `false` by construction;
//! - a detected secret value never reaches a stored record, a report or an error message;
//!   only a keyed, truncated fingerprint does;
//! - the ledger ([`store`]) is append-only; re-running a command never loses or
//!   duplicates a record.

pub mod acceptance;
pub mod detect;
pub mod input;
pub mod intake;
pub mod inventory;
pub mod model;
pub mod requests;
pub mod review;
pub mod schema;
pub mod secrets;
pub mod store;

/// Serialises `value` as the ledger's documents are written: keys sorted, 2-space
/// indentation, UTF-8 unescaped, a trailing newline.
pub fn to_pretty_json<T: serde::Serialize + 'static>(value: &T) -> String {
    // Through `Value`, whose maps are sorted (serde_json without `preserve_order`); a
    // `Value` is written as it is, without a deep copy.
    let any: &dyn std::any::Any = value;
    let mut out = match any.downcast_ref::<serde_json::Value>() {
        Some(v) => serde_json::to_string_pretty(v),
        None => serde_json::to_value(value).and_then(|v| serde_json::to_string_pretty(&v)),
    }
    .unwrap_or_default();
    out.push('\n');
    out
}

/// Now as RFC 3339 with seconds in UTC+8, as the seed ledger stamps its reports.
pub fn now_utc8() -> String {
    let offset = jiff::tz::Offset::constant(8);
    let zoned = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::fixed(offset));
    zoned.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}
