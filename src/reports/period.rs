//! Report periods: a calendar month (`2026-11`) or quarter (`2026-Q4`), in Europe/London time.

use chrono::{DateTime, LocalResult, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Month { year: i32, month: u32 },
    Quarter { year: i32, quarter: u32 },
}

impl Period {
    /// `YYYY-MM`, exactly.
    pub fn parse_month(s: &str) -> Option<Period> {
        let (year, month) = split(s, "-")?;
        let month: u32 = digits(month, 2)?;
        (1..=12).contains(&month).then_some(Period::Month { year, month })
    }

    /// `YYYY-QN`, exactly (N from 1 to 4).
    pub fn parse_quarter(s: &str) -> Option<Period> {
        let (year, quarter) = split(s, "-Q")?;
        let quarter: u32 = digits(quarter, 1)?;
        (1..=4).contains(&quarter).then_some(Period::Quarter { year, quarter })
    }

    pub fn label(self) -> String {
        match self {
            Period::Month { year, month } => format!("{year:04}-{month:02}"),
            Period::Quarter { year, quarter } => format!("{year:04}-Q{quarter}"),
        }
    }

    fn first_month(self) -> (i32, u32) {
        match self {
            Period::Month { year, month } => (year, month),
            Period::Quarter { year, quarter } => (year, quarter * 3 - 2),
        }
    }

    fn months(self) -> u32 {
        match self {
            Period::Month { .. } => 1,
            Period::Quarter { .. } => 3,
        }
    }

    /// The months a quarter is made of (a month is its own).
    pub fn month_list(self) -> Vec<Period> {
        let (year, first) = self.first_month();
        (first..first + self.months()).map(|month| Period::Month { year, month }).collect()
    }

    /// [start, end) in UTC: local midnight on the first day to local midnight after the last.
    pub fn bounds(self, tz: chrono_tz::Tz) -> (DateTime<Utc>, DateTime<Utc>) {
        let (year, first) = self.first_month();
        let next = first + self.months();
        let (end_year, end_month) = if next > 12 { (year + 1, next - 12) } else { (year, next) };
        (local_midnight(tz, year, first), local_midnight(tz, end_year, end_month))
    }

    pub fn describe(self, tz: chrono_tz::Tz) -> PeriodInfo {
        let (from, to) = self.bounds(tz);
        PeriodInfo {
            label: self.label(),
            from: crate::time::rfc3339(from),
            to: crate::time::rfc3339(to),
            timezone: tz.name().to_string(),
        }
    }
}

/// The period a report covers, as it appears in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PeriodInfo {
    /// `2026-11` or `2026-Q4`.
    #[schema(example = "2026-11")]
    pub label: String,
    /// Start (inclusive), UTC.
    #[schema(example = "2026-11-01T00:00:00Z")]
    pub from: String,
    /// End (exclusive), UTC.
    #[schema(example = "2026-12-01T00:00:00Z")]
    pub to: String,
    /// Months start at local midnight in this zone.
    #[schema(example = "Europe/London")]
    pub timezone: String,
}

fn split<'a>(s: &'a str, sep: &str) -> Option<(i32, &'a str)> {
    let (year, rest) = s.split_once(sep)?;
    Some((digits(year, 4)?, rest))
}

fn digits<T: std::str::FromStr>(s: &str, len: usize) -> Option<T> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

fn local_midnight(tz: chrono_tz::Tz, year: i32, month: u32) -> DateTime<Utc> {
    let midnight = NaiveDate::from_ymd_opt(year, month, 1).unwrap_or_default().and_time(chrono::NaiveTime::MIN);
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        // London never skips midnight; a zone that did would start the period an hour later.
        LocalResult::None => Utc.from_utc_datetime(&midnight),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::London;

    #[test]
    fn months_and_quarters_parse_strictly() {
        assert_eq!(Period::parse_month("2026-11"), Some(Period::Month { year: 2026, month: 11 }));
        for bad in ["2026-13", "2026-00", "2026-1", "26-11", "2026/11", "2026-11-01", "", "2026-1a"] {
            assert_eq!(Period::parse_month(bad), None, "{bad}");
        }
        assert_eq!(Period::parse_quarter("2026-Q4"), Some(Period::Quarter { year: 2026, quarter: 4 }));
        for bad in ["2026-Q5", "2026-Q0", "2026-4", "2026-q4", "2026-Q04"] {
            assert_eq!(Period::parse_quarter(bad), None, "{bad}");
        }
    }

    #[test]
    fn bounds_are_london_midnights() {
        // November is GMT; July is BST (UTC+1); Q4 runs into the next year's first day.
        let (from, to) = Period::parse_month("2026-11").unwrap().bounds(London);
        assert_eq!(
            (crate::time::rfc3339(from), crate::time::rfc3339(to)),
            ("2026-11-01T00:00:00Z".into(), "2026-12-01T00:00:00Z".into())
        );
        let (from, _) = Period::parse_month("2026-07").unwrap().bounds(London);
        assert_eq!(crate::time::rfc3339(from), "2026-06-30T23:00:00Z");
        let q4 = Period::parse_quarter("2026-Q4").unwrap();
        let (from, to) = q4.bounds(London);
        assert_eq!(crate::time::rfc3339(from), "2026-09-30T23:00:00Z");
        assert_eq!(crate::time::rfc3339(to), "2027-01-01T00:00:00Z");
        assert_eq!(q4.month_list().iter().map(|m| m.label()).collect::<Vec<_>>(), ["2026-10", "2026-11", "2026-12"]);
    }
}
