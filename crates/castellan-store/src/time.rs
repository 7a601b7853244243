//! How timestamps are stored.
//!
//! Timestamps are stored as jiff's RFC 3339 text in UTC (`2025-01-02T03:04:05.5Z`), which
//! round-trips exactly (nanosecond precision). Where SQL must compare times (nonce expiry),
//! an integer count of microseconds since the Unix epoch is stored beside the text, rounded
//! in the direction that keeps pruning conservative (see [`ceil_micros`]).

use jiff::Timestamp;

use crate::StoreError;

/// The stored text of a timestamp.
pub(crate) fn to_text(t: Timestamp) -> String {
    t.to_string()
}

/// Reads back a stored timestamp; `what` names the column for the error.
pub(crate) fn from_text(s: &str, what: &str) -> Result<Timestamp, StoreError> {
    s.parse::<Timestamp>()
        .map_err(|e| StoreError::Corrupt(format!("{what} {s:?} is not a timestamp: {e}")))
}

/// Reads back an optional stored timestamp.
pub(crate) fn from_opt_text(
    s: Option<String>,
    what: &str,
) -> Result<Option<Timestamp>, StoreError> {
    s.map(|s| from_text(&s, what)).transpose()
}

/// The later of a stored high-water mark and `now`.
pub(crate) fn max(high_water: Option<Timestamp>, now: Timestamp) -> Timestamp {
    high_water.map_or(now, |hw| hw.max(now))
}

/// Microseconds since the epoch, rounded up: `t <= ceil_micros(t)`. jiff's whole range
/// (years -9999..=9999) fits in an `i64` of microseconds.
pub(crate) fn ceil_micros(t: Timestamp) -> i64 {
    let ns = t.as_nanosecond();
    let us = ns.div_euclid(1000) + i128::from(ns.rem_euclid(1000) != 0);
    i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
}

/// Microseconds since the epoch, rounded down: `floor_micros(t) <= t`.
pub(crate) fn floor_micros(t: Timestamp) -> i64 {
    let us = t.as_nanosecond().div_euclid(1000);
    i64::try_from(us).unwrap_or(if us < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_brackets_the_time() {
        for ns in [
            -1_500i128,
            -1_000,
            -1,
            0,
            1,
            999,
            1_000,
            1_001,
            1_700_000_000_123_456_789,
        ] {
            let t = Timestamp::from_nanosecond(ns).expect("in range");
            let (lo, hi) = (
                i128::from(floor_micros(t)) * 1000,
                i128::from(ceil_micros(t)) * 1000,
            );
            assert!(lo <= ns && ns <= hi && hi - lo <= 1000, "{ns}: {lo} {hi}");
        }
        assert!(ceil_micros(Timestamp::MAX) > 0 && floor_micros(Timestamp::MIN) < 0);
    }

    #[test]
    fn text_round_trips() {
        let t = Timestamp::from_nanosecond(1_700_000_000_123_456_789).expect("in range");
        assert_eq!(from_text(&to_text(t), "t").ok(), Some(t));
    }
}
