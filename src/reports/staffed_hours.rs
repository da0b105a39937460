//! Does the rota work? Urgent replies (distress, unsafe) that arrived outside staffed hours
//! (`SAFEREACH_STAFFED_HOURS`), and how long each waited for a person to acknowledge it.

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Period, Report};
use crate::domain::policy::PolicyConfig;
use crate::domain::staffed_hours::StaffedHours;
use crate::store::{Result, Store, UrgentTiming};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StaffedHoursReport {
    /// The staffed hours the figures are counted against, as configured.
    #[schema(example = "mon-fri 08:00-20:00; sat 09:00-17:00")]
    pub hours: String,
    /// Urgent items raised in the period.
    pub urgent_items: u64,
    /// Of those, raised outside staffed hours.
    pub outside_staffed_hours: u64,
    /// Of those outside, how many a person has acknowledged.
    pub acknowledged: u64,
    /// Median wait for a person of those outside that were acknowledged, in seconds; null when none.
    pub median_wait_seconds: Option<i64>,
    /// The longest such wait, in seconds; null when none.
    pub max_wait_seconds: Option<i64>,
    /// Each urgent item that arrived outside staffed hours, oldest first.
    pub items: Vec<OutsideItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutsideItem {
    /// When it arrived (RFC 3339, UTC).
    pub arrived_at: String,
    /// `distress` or `unsafe`.
    pub classification: String,
    /// When a person acknowledged it; null while it waits.
    pub acknowledged_at: Option<String>,
    /// Seconds from arrival to acknowledgement; null while it waits.
    pub waited_seconds: Option<i64>,
    /// The case, for the staff page (not in the report's JSON: the commissioner's figures name no case).
    #[serde(skip)]
    pub case_ref: Option<String>,
}

/// The section for `period`, read from the urgent items (no personal data: times and codes).
pub async fn staffed_hours(
    store: &Store,
    hours: &StaffedHours,
    timezone: chrono_tz::Tz,
    period: Period,
) -> Result<StaffedHoursReport> {
    let (from, to) = period.bounds(timezone);
    let items = store.urgent_items_between(from.timestamp_millis(), to.timestamp_millis()).await?;
    Ok(build(hours, timezone, &items))
}

/// The figures from the items raised in the period.
pub fn build(hours: &StaffedHours, timezone: chrono_tz::Tz, items: &[UrgentTiming]) -> StaffedHoursReport {
    let outside: Vec<&UrgentTiming> = items
        .iter()
        .filter(|i| DateTime::from_timestamp_millis(i.raised_at).is_some_and(|at| !hours.contains(at, timezone)))
        .collect();
    let mut waits: Vec<i64> =
        outside.iter().filter_map(|i| Some((i.acknowledged_at? - i.raised_at).max(0) / 1000)).collect();
    waits.sort_unstable();
    let median = match waits.len() {
        0 => None,
        n if n % 2 == 1 => Some(waits[n / 2]),
        n => Some((waits[n / 2 - 1] + waits[n / 2]) / 2),
    };
    StaffedHoursReport {
        hours: hours.as_str().to_string(),
        urgent_items: items.len() as u64,
        outside_staffed_hours: outside.len() as u64,
        acknowledged: waits.len() as u64,
        median_wait_seconds: median,
        max_wait_seconds: waits.last().copied(),
        items: outside
            .iter()
            .map(|i| OutsideItem {
                arrived_at: crate::time::rfc3339_ms(i.raised_at),
                classification: i.classification.clone(),
                acknowledged_at: i.acknowledged_at.map(crate::time::rfc3339_ms),
                waited_seconds: i.acknowledged_at.map(|a| (a - i.raised_at).max(0) / 1000),
                case_ref: i.case_ref.clone(),
            })
            .collect(),
    }
}

/// The report with its staffed-hours section: what the API, the CLI and the staff pages give.
pub async fn report_with_staffed_hours(
    store: &Store,
    policy: &PolicyConfig,
    hours: &StaffedHours,
    period: Period,
) -> Result<Report> {
    let mut report = super::report(store, policy, period).await?;
    report.staffed_hours = Some(staffed_hours(store, hours, policy.timezone, period).await?);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::London;

    fn item(raised: &str, acknowledged: Option<&str>) -> UrgentTiming {
        let ms = |s: &str| s.parse::<DateTime<chrono::Utc>>().unwrap().timestamp_millis();
        UrgentTiming {
            raised_at: ms(raised),
            acknowledged_at: acknowledged.map(ms),
            case_ref: Some("C1".into()),
            classification: "distress".into(),
        }
    }

    #[test]
    fn only_items_outside_staffed_hours_count_with_their_waits() {
        let items = [
            // Monday 10:00: staffed.
            item("2026-11-23T10:00:00Z", Some("2026-11-23T10:05:00Z")),
            // Saturday 23:40, acknowledged Monday 08:10.
            item("2026-11-28T23:40:00Z", Some("2026-11-30T08:10:00Z")),
            // Tuesday 21:00, acknowledged 21:10.
            item("2026-11-24T21:00:00Z", Some("2026-11-24T21:10:00Z")),
            // Sunday noon, still waiting.
            item("2026-11-29T12:00:00Z", None),
        ];
        let r = build(&StaffedHours::default(), London, &items);
        assert_eq!((r.urgent_items, r.outside_staffed_hours, r.acknowledged), (4, 3, 2));
        let long = (24 + 8) * 3600 + 30 * 60;
        assert_eq!(r.max_wait_seconds, Some(long));
        assert_eq!(r.median_wait_seconds, Some((600 + long) / 2));
        assert_eq!(r.items.len(), 3);
        assert_eq!(r.items[2].waited_seconds, None);
        assert_eq!(r.items[0].arrived_at, "2026-11-28T23:40:00Z");
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["items"][0].get("case_ref").is_none(), "no case in the report's JSON");
    }

    #[test]
    fn a_month_without_urgent_items_has_no_waits() {
        let r = build(&StaffedHours::default(), London, &[]);
        assert_eq!((r.outside_staffed_hours, r.median_wait_seconds, r.max_wait_seconds), (0, None, None));
    }
}
