//! Staffed hours (`SAFEREACH_STAFFED_HOURS`): when the service's offices have people in them, as
//! weekly windows of local time. The report counts urgent items that arrived outside them.
//!
//! Syntax: windows separated by `;`, each `DAYS HH:MM-HH:MM`, where DAYS is a day (`sat`), a range
//! (`mon-fri`) or a comma list of either (`mon,wed,fri-sat`). The default is
//! `mon-fri 08:00-20:00; sat 09:00-17:00`. A window may run past midnight (`fri 22:00-02:00`
//! covers Friday night into Saturday).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::request::{Day, SafeTime, hhmm};
use super::safe_times::TimeRules;

pub const DEFAULT: &str = "mon-fri 08:00-20:00; sat 09:00-17:00";

const DAYS: [(&str, Day); 7] = [
    ("mon", Day::Mon),
    ("tue", Day::Tue),
    ("wed", Day::Wed),
    ("thu", Day::Thu),
    ("fri", Day::Fri),
    ("sat", Day::Sat),
    ("sun", Day::Sun),
];

/// Weekly windows of local time (the same shape, and the same reading across midnight and British
/// Summer Time, as a victim's safe times).
#[derive(Debug, Clone, PartialEq)]
pub struct StaffedHours {
    windows: Vec<SafeTime>,
    text: String,
}

impl StaffedHours {
    pub fn parse(text: &str) -> Result<StaffedHours, String> {
        let mut windows = Vec::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (days, window) = part
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("{part:?}: expected days and a window, e.g. mon-fri 08:00-20:00"))?;
            let (from, to) = window
                .trim()
                .split_once('-')
                .and_then(|(f, t)| Some((hhmm::parse(f.trim())?, hhmm::parse(t.trim())?)))
                .ok_or_else(|| format!("{part:?}: expected a window HH:MM-HH:MM"))?;
            if from == to {
                return Err(format!("{part:?}: the window is empty"));
            }
            windows.push(SafeTime {
                days: parse_days(days)
                    .ok_or_else(|| format!("{part:?}: days are mon…sun, a range mon-fri, or a comma list"))?,
                from,
                to,
            });
        }
        if windows.is_empty() {
            return Err("give at least one window, e.g. mon-fri 08:00-20:00".into());
        }
        Ok(StaffedHours { windows, text: text.trim().to_string() })
    }

    /// Whether `at` falls in staffed hours, local time in `timezone`.
    pub fn contains(&self, at: DateTime<Utc>, timezone: Tz) -> bool {
        TimeRules { safe_times: &self.windows, quiet_hours: None, timezone }.allows(at)
    }

    /// As configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Default for StaffedHours {
    fn default() -> StaffedHours {
        StaffedHours::parse(DEFAULT).expect("the default parses")
    }
}

fn day(name: &str) -> Option<usize> {
    DAYS.iter().position(|(n, _)| *n == name)
}

/// `mon`, `mon-fri`, `mon,wed,fri-sun`.
fn parse_days(text: &str) -> Option<Vec<Day>> {
    let mut days = Vec::new();
    for item in text.to_ascii_lowercase().split(',').map(str::trim) {
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (day(a.trim())?, day(b.trim())?),
            None => (day(item)?, day(item)?),
        };
        if first > last {
            return None;
        }
        days.extend(DAYS[first..=last].iter().map(|(_, d)| *d));
    }
    days.dedup();
    Some(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::London;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_is_weekdays_eight_to_eight_and_saturday_mornings() {
        let hours = StaffedHours::default();
        // 2026-11-23 is a Monday (GMT).
        assert!(hours.contains(at("2026-11-23T08:00:00Z"), London));
        assert!(!hours.contains(at("2026-11-23T07:59:00Z"), London));
        assert!(!hours.contains(at("2026-11-23T20:00:00Z"), London));
        assert!(hours.contains(at("2026-11-28T09:30:00Z"), London), "Saturday morning");
        assert!(!hours.contains(at("2026-11-28T23:40:00Z"), London), "Saturday night");
        assert!(!hours.contains(at("2026-11-29T12:00:00Z"), London), "Sunday");
        // Summer time: 08:00 in London is 07:00 UTC.
        assert!(hours.contains(at("2026-07-06T07:00:00Z"), London));
    }

    #[test]
    fn lists_ranges_and_windows_past_midnight() {
        let hours = StaffedHours::parse("mon,wed 10:00-12:00; fri-sat 22:00-02:00").unwrap();
        assert!(hours.contains(at("2026-11-25T11:00:00Z"), London), "Wednesday");
        assert!(!hours.contains(at("2026-11-24T11:00:00Z"), London), "Tuesday");
        assert!(hours.contains(at("2026-11-29T01:00:00Z"), London), "Saturday night into Sunday");
        assert!(!hours.contains(at("2026-11-27T01:00:00Z"), London), "Thursday night is not Friday's");
        assert_eq!(hours.as_str(), "mon,wed 10:00-12:00; fri-sat 22:00-02:00");
    }

    #[test]
    fn bad_syntax_is_refused_with_the_part_that_is_wrong() {
        for bad in ["", "mon-fri", "mon-fri 8-20", "fri-mon 08:00-20:00", "someday 08:00-20:00", "mon 09:00-09:00"] {
            assert!(StaffedHours::parse(bad).is_err(), "{bad}");
        }
        assert!(StaffedHours::parse("mon-fri 8-20").unwrap_err().contains("HH:MM-HH:MM"));
    }
}
