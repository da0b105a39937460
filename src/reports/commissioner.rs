//! The figures the commissioner reads beside the headings (the 2015 report's lines): cases
//! contacted within 24 hours of referral, calls declined and the reasons given, the satisfaction
//! survey, and the percents they are printed with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Counts, add};
use crate::store::DeclinedRow;

/// A count and its share of the cases referred in the period, in percent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CountPercent {
    pub count: u64,
    /// count / cases referred in the period × 100, one decimal; 0 when none were referred.
    #[schema(example = 42.9)]
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeclinedCounts {
    /// Calls with outcome `declined` made in the period.
    pub count: u64,
    /// count / cases referred in the period × 100, one decimal; 0 when none were referred.
    pub percent: f64,
    /// The reasons recorded with those calls, trimmed and grouped without regard to case (each
    /// group under its first spelling), with `(none given)` for a call without one and
    /// `(reason removed)` for one removed by retention or erasure.
    #[schema(example = json!({"(none given)": 2, "Already has support from family": 1}))]
    pub reasons: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SurveyCounts {
    /// Satisfaction surveys handed to a provider in the period.
    pub sent: u64,
    /// Of those, surveys with an answer (a reply read as a score from 1 to 5), whenever it came.
    pub answered: u64,
    /// answered / sent × 100, one decimal; 0 when none was sent.
    pub answered_percent: f64,
    /// Of those, surveys whose answer (the latest, when there were several) was 4 or 5.
    pub satisfied: u64,
    /// satisfied / sent × 100, one decimal; 0 when none was sent.
    pub satisfied_percent: f64,
}

/// Labels of the declined reasons that are not the victim's words.
pub const NO_REASON_GIVEN: &str = "(none given)";
pub const REASON_REMOVED: &str = "(reason removed)";

/// Declined calls with their reasons grouped: trimmed, runs of spaces made one, compared without
/// regard to case, each group named by its first spelling.
pub(super) fn declined(rows: &[DeclinedRow], referred: u64) -> DeclinedCounts {
    let mut reasons = Counts::new();
    // Lower-cased reason → the spelling that names its group.
    let mut spelling: BTreeMap<String, String> = BTreeMap::new();
    for row in rows {
        let text = row.reason.as_deref().map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "));
        let label = match text.filter(|t| !t.is_empty()) {
            Some(text) => spelling.entry(text.to_lowercase()).or_insert(text).clone(),
            None if row.redacted_at.is_some() => REASON_REMOVED.to_string(),
            None => NO_REASON_GIVEN.to_string(),
        };
        add(&mut reasons, &label);
    }
    let count = rows.len() as u64;
    DeclinedCounts { count, percent: percent(count, referred), reasons }
}

/// Survey figures: each survey once, by its latest answer's score.
pub(super) fn survey_counts(surveys: &[(String, Option<i64>)]) -> SurveyCounts {
    let by_message: BTreeMap<&str, Option<i64>> = surveys.iter().map(|(id, score)| (id.as_str(), *score)).collect();
    let sent = by_message.len() as u64;
    let answered = by_message.values().filter(|s| s.is_some()).count() as u64;
    let satisfied = by_message.values().filter(|s| matches!(s, Some(4 | 5))).count() as u64;
    SurveyCounts {
        sent,
        answered,
        answered_percent: percent(answered, sent),
        satisfied,
        satisfied_percent: percent(satisfied, sent),
    }
}

/// part / whole × 100, one decimal; 0 when there is nothing to divide by.
pub(super) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { (part as f64 * 1000.0 / whole as f64).round() / 10.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declined_reasons_are_trimmed_and_grouped_without_regard_to_case() {
        let row = |reason: Option<&str>, redacted: bool| DeclinedRow {
            reason: reason.map(str::to_string),
            redacted_at: redacted.then_some(1),
        };
        let d = declined(
            &[
                row(Some("Has support from family"), false),
                row(Some("  has  SUPPORT from family "), false),
                row(Some("Moved away"), false),
                row(None, false),
                row(Some("   "), false),
                row(None, true),
            ],
            12,
        );
        let want: Counts =
            [("Has support from family", 2), ("Moved away", 1), (NO_REASON_GIVEN, 2), (REASON_REMOVED, 1)]
                .map(|(k, n)| (k.to_string(), n))
                .into();
        assert_eq!((d.count, d.percent, d.reasons), (6, 50.0, want));
    }

    #[test]
    fn surveys_count_once_each_by_their_latest_answer() {
        let s = |id: &str, score: Option<i64>| (id.to_string(), score);
        let counts =
            survey_counts(&[s("m1", Some(5)), s("m2", Some(3)), s("m3", None), s("m4", Some(4)), s("m4", Some(4))]);
        assert_eq!(
            counts,
            SurveyCounts { sent: 3 + 1, answered: 3, answered_percent: 75.0, satisfied: 2, satisfied_percent: 50.0 }
        );
        let none = survey_counts(&[]);
        assert_eq!((none.sent, none.answered_percent, none.satisfied_percent), (0, 0.0, 0.0));
    }
}
