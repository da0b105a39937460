//! Time formats used on the wire and in the database.

use chrono::{DateTime, SecondsFormat, Utc};

/// RFC 3339 in UTC with whole seconds, e.g. `2026-11-24T08:00:00Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn from_ms(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub fn rfc3339_ms(ms: i64) -> String {
    rfc3339(from_ms(ms))
}
