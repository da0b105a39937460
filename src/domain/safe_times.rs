//! Quiet hours and victims' safe time windows, in local time (Europe/London by default).
//!
//! Both are wall-clock times, so candidate instants are walked in UTC minutes and each is turned
//! into local time with `chrono-tz`. That makes British Summer Time come out right without any
//! arithmetic on local times: the hour skipped in March never matches, the hour repeated in
//! October matches twice.

use chrono::{DateTime, Datelike, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

use super::request::{Day, SafeTime};

/// How far ahead the next allowed minute is looked for. Every weekly pattern repeats within 7
/// days; the extra day covers a window that starts late on the last of them.
pub const SEARCH_HORIZON: TimeDelta = TimeDelta::days(8);

/// The rules a send time must satisfy: the victim's windows (empty = any time) and, for SMS, the
/// quiet hours (the allowed sending window, e.g. 08:00–20:00).
#[derive(Debug, Clone, Copy)]
pub struct TimeRules<'a> {
    pub safe_times: &'a [SafeTime],
    pub quiet_hours: Option<(NaiveTime, NaiveTime)>,
    pub timezone: Tz,
}

impl TimeRules<'_> {
    /// Whether a message may go out at `at`.
    pub fn allows(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.timezone).naive_local();
        let in_quiet_hours = self.quiet_hours.is_none_or(|(from, to)| within_daily(local.time(), from, to));
        let in_safe_time = self.safe_times.is_empty() || self.safe_times.iter().any(|w| within_safe_time(local, w));
        in_quiet_hours && in_safe_time
    }

    /// The earliest time at or after `now` that is allowed: `now` itself when it already is,
    /// otherwise a whole minute; `None` when nothing within [`SEARCH_HORIZON`] is.
    pub fn next_allowed(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.allows(now) {
            return Some(now);
        }
        // Window edges are whole minutes, so the rest of now's minute is not allowed either.
        let this_minute = now.with_second(0)?.with_nanosecond(0)?;
        let end = now + SEARCH_HORIZON;
        (1..).map(|m| this_minute + TimeDelta::minutes(m)).take_while(|t| *t <= end).find(|t| self.allows(*t))
    }
}

/// The earliest time at or after `now` allowed by `safe_times` (all channels) and `quiet_hours`
/// (pass them for SMS only), local time in `timezone`. See [`TimeRules::next_allowed`].
pub fn next_allowed_minute(
    now: DateTime<Utc>,
    safe_times: &[SafeTime],
    quiet_hours: Option<(NaiveTime, NaiveTime)>,
    timezone: Tz,
) -> Option<DateTime<Utc>> {
    TimeRules { safe_times, quiet_hours, timezone }.next_allowed(now)
}

/// `[from, to)` of a daily window; `from` after `to` runs past midnight. `from == to` is an empty
/// window: it fits the schema, so it is accepted, and a job with no allowed minute is held for a
/// person rather than guessing "all day".
fn within_daily(t: NaiveTime, from: NaiveTime, to: NaiveTime) -> bool {
    if from < to { from <= t && t < to } else { from > to && (t >= from || t < to) }
}

/// A safe window belongs to the days it starts on: a Friday 22:00–02:00 window covers Friday
/// night and the small hours of Saturday, not those of Friday.
fn within_safe_time(local: NaiveDateTime, window: &SafeTime) -> bool {
    let t = local.time();
    let today = Day::from_weekday(local.weekday());
    let yesterday = Day::from_weekday(local.weekday().pred());
    if window.from < window.to {
        window.days.contains(&today) && window.from <= t && t < window.to
    } else if window.from > window.to {
        (window.days.contains(&today) && t >= window.from) || (window.days.contains(&yesterday) && t < window.to)
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::London;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("test time")
    }

    fn hm(s: &str) -> NaiveTime {
        crate::domain::request::hhmm::parse(s).expect("test time")
    }

    fn window(days: &[Day], from: &str, to: &str) -> SafeTime {
        SafeTime { days: days.to_vec(), from: hm(from), to: hm(to) }
    }

    const WEEKDAYS: &[Day] = &[Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri];
    const EVERY_DAY: &[Day] = &[Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri, Day::Sat, Day::Sun];

    fn sms(safe_times: &[SafeTime]) -> TimeRules<'_> {
        TimeRules { safe_times, quiet_hours: Some((hm("08:00"), hm("20:00"))), timezone: London }
    }

    fn email(safe_times: &[SafeTime]) -> TimeRules<'_> {
        TimeRules { safe_times, quiet_hours: None, timezone: London }
    }

    #[test]
    fn quiet_hours_in_winter_are_utc() {
        let rules = sms(&[]);
        // (now, next allowed)
        for (now, want) in [
            ("2026-11-23T10:00:00Z", "2026-11-23T10:00:00Z"),
            ("2026-11-23T10:00:42.5Z", "2026-11-23T10:00:42.5Z"), // allowed now: now itself, seconds and all
            ("2026-11-23T07:59:30Z", "2026-11-23T08:00:00Z"),
            ("2026-11-23T08:00:00Z", "2026-11-23T08:00:00Z"),
            ("2026-11-23T19:59:59Z", "2026-11-23T19:59:59Z"),
            ("2026-11-23T20:00:00Z", "2026-11-24T08:00:00Z"), // [from, to): 20:00 is out
            ("2026-11-23T22:30:00Z", "2026-11-24T08:00:00Z"),
            ("2026-11-24T00:00:00Z", "2026-11-24T08:00:00Z"),
        ] {
            assert_eq!(rules.next_allowed(at(now)), Some(at(want)), "{now}");
        }
    }

    #[test]
    fn quiet_hours_follow_british_summer_time() {
        let rules = sms(&[]);
        for (now, want) in [
            // Summer: 08:00 BST is 07:00 UTC, 20:00 BST is 19:00 UTC.
            ("2026-07-01T06:30:00Z", "2026-07-01T07:00:00Z"),
            ("2026-07-01T19:00:00Z", "2026-07-02T07:00:00Z"),
            // Saturday 28 March 2026, 21:00 GMT; clocks go forward on Sunday 29 March at 01:00 UTC.
            ("2026-03-28T21:00:00Z", "2026-03-29T07:00:00Z"),
            // Saturday 24 October 2026, 21:00 BST; clocks go back on Sunday 25 October at 01:00 UTC.
            ("2026-10-24T20:00:00Z", "2026-10-25T08:00:00Z"),
        ] {
            assert_eq!(rules.next_allowed(at(now)), Some(at(want)), "{now}");
        }
    }

    #[test]
    fn email_ignores_quiet_hours_but_not_safe_times() {
        assert_eq!(email(&[]).next_allowed(at("2026-11-23T23:10:00Z")), Some(at("2026-11-23T23:10:00Z")));
        let weekday_office_hours = [window(WEEKDAYS, "09:00", "17:00")];
        // Friday evening waits for Monday morning.
        assert_eq!(
            email(&weekday_office_hours).next_allowed(at("2026-11-27T18:00:00Z")),
            Some(at("2026-11-30T09:00:00Z"))
        );
    }

    #[test]
    fn sms_needs_both_a_safe_window_and_quiet_hours() {
        let evenings = [window(WEEKDAYS, "18:00", "22:00")];
        let rules = sms(&evenings);
        assert_eq!(rules.next_allowed(at("2026-11-23T10:00:00Z")), Some(at("2026-11-23T18:00:00Z")));
        assert_eq!(rules.next_allowed(at("2026-11-23T19:30:00Z")), Some(at("2026-11-23T19:30:00Z")));
        // 20:00–22:00 is in the window but past quiet hours: the next evening.
        assert_eq!(rules.next_allowed(at("2026-11-23T20:00:00Z")), Some(at("2026-11-24T18:00:00Z")));
        // Friday night: Monday.
        assert_eq!(rules.next_allowed(at("2026-11-27T20:30:00Z")), Some(at("2026-11-30T18:00:00Z")));
    }

    #[test]
    fn any_of_several_windows_will_do() {
        let windows = [window(&[Day::Tue], "13:00", "14:00"), window(&[Day::Mon], "15:00", "16:00")];
        assert_eq!(sms(&windows).next_allowed(at("2026-11-23T10:00:00Z")), Some(at("2026-11-23T15:00:00Z")));
        assert_eq!(sms(&windows).next_allowed(at("2026-11-23T16:00:00Z")), Some(at("2026-11-24T13:00:00Z")));
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_starts() {
        let friday_night = [window(&[Day::Fri], "22:00", "02:00")];
        let rules = email(&friday_night);
        assert!(rules.allows(at("2026-11-27T22:00:00Z"))); // Fri 22:00
        assert!(rules.allows(at("2026-11-28T01:59:00Z"))); // Sat 01:59
        assert!(!rules.allows(at("2026-11-28T02:00:00Z"))); // Sat 02:00
        assert!(!rules.allows(at("2026-11-27T01:00:00Z"))); // Fri 01:00 belongs to Thursday night
        assert!(!rules.allows(at("2026-11-28T23:00:00Z"))); // Sat 23:00
        assert_eq!(rules.next_allowed(at("2026-11-28T02:00:00Z")), Some(at("2026-12-04T22:00:00Z")));
        // The same window for SMS never meets quiet hours.
        assert_eq!(sms(&friday_night).next_allowed(at("2026-11-23T10:00:00Z")), None);
    }

    fn allowed_minutes(rules: &TimeRules<'_>, from: &str, to: &str) -> i64 {
        let (mut t, end) = (at(from), at(to));
        let mut n = 0;
        while t < end {
            n += i64::from(rules.allows(t));
            t += TimeDelta::minutes(1);
        }
        n
    }

    #[test]
    fn a_window_past_midnight_across_the_clock_changes() {
        let saturday_night = [window(&[Day::Sat], "23:00", "03:00")];
        let rules = email(&saturday_night);
        // March: 01:00–02:00 local never happens, so the four wall-clock hours last three.
        assert_eq!(allowed_minutes(&rules, "2026-03-28T12:00:00Z", "2026-03-29T12:00:00Z"), 180);
        assert!(rules.allows(at("2026-03-29T00:59:00Z"))); // 00:59 GMT
        assert!(rules.allows(at("2026-03-29T01:00:00Z"))); // 02:00 BST
        assert!(!rules.allows(at("2026-03-29T02:00:00Z"))); // 03:00 BST
        // October: 01:00–02:00 local happens twice, so they last five.
        assert_eq!(allowed_minutes(&rules, "2026-10-24T12:00:00Z", "2026-10-25T12:00:00Z"), 300);
        assert!(rules.allows(at("2026-10-24T22:00:00Z"))); // 23:00 BST
        assert!(rules.allows(at("2026-10-25T02:59:00Z"))); // 02:59 GMT
        assert!(!rules.allows(at("2026-10-25T03:00:00Z"))); // 03:00 GMT
    }

    #[test]
    fn a_safe_window_keeps_local_time_across_the_clock_change() {
        let mornings = [window(EVERY_DAY, "09:00", "10:00")];
        // Sunday 29 March 2026 09:00 is BST (08:00 UTC); the day before it was GMT.
        assert_eq!(email(&mornings).next_allowed(at("2026-03-28T10:00:00Z")), Some(at("2026-03-29T08:00:00Z")));
        // Sunday 25 October 2026 09:00 is GMT again.
        assert_eq!(email(&mornings).next_allowed(at("2026-10-24T09:00:00Z")), Some(at("2026-10-25T09:00:00Z")));
    }

    #[test]
    fn nothing_within_eight_days_is_none() {
        assert_eq!(sms(&[window(EVERY_DAY, "21:00", "23:00")]).next_allowed(at("2026-11-23T10:00:00Z")), None);
        assert_eq!(email(&[window(&[], "09:00", "17:00")]).next_allowed(at("2026-11-23T10:00:00Z")), None);
        assert_eq!(email(&[window(EVERY_DAY, "09:00", "09:00")]).next_allowed(at("2026-11-23T10:00:00Z")), None);
        // A week ahead is still found: next Monday from just after this Monday's window.
        let mondays = [window(&[Day::Mon], "09:00", "09:01")];
        assert_eq!(email(&mondays).next_allowed(at("2026-11-23T09:01:00Z")), Some(at("2026-11-30T09:00:00Z")));
    }

    #[test]
    fn quiet_hours_may_themselves_run_past_midnight() {
        let rules = TimeRules { safe_times: &[], quiet_hours: Some((hm("22:00"), hm("06:00"))), timezone: London };
        assert!(rules.allows(at("2026-11-23T23:00:00Z")));
        assert!(!rules.allows(at("2026-11-23T12:00:00Z")));
        assert_eq!(rules.next_allowed(at("2026-11-23T12:00:00Z")), Some(at("2026-11-23T22:00:00Z")));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use chrono_tz::Europe::London;
    use proptest::prelude::*;

    fn day() -> impl Strategy<Value = Day> {
        prop::sample::select(vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri, Day::Sat, Day::Sun])
    }

    fn minute_of_day() -> impl Strategy<Value = NaiveTime> {
        (0u32..24, 0u32..60).prop_filter_map("valid time", |(h, m)| NaiveTime::from_hms_opt(h, m, 0))
    }

    fn windows() -> impl Strategy<Value = Vec<SafeTime>> {
        prop::collection::vec(
            (prop::collection::vec(day(), 0..4), minute_of_day(), minute_of_day())
                .prop_map(|(days, from, to)| SafeTime { days, from, to }),
            0..3,
        )
    }

    /// Any instant in 2026–2027, to the second, so both clock changes of each year are covered.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        (1_767_225_600i64..1_830_297_600).prop_filter_map("in range", |s| DateTime::from_timestamp(s, 0))
    }

    proptest! {
        #[test]
        fn the_next_allowed_time_is_allowed_and_nothing_earlier_is(
            now in instant(), safe_times in windows(), quiet in any::<bool>()
        ) {
            let rules = TimeRules {
                safe_times: &safe_times,
                quiet_hours: quiet.then(|| (NaiveTime::MIN + TimeDelta::hours(8), NaiveTime::MIN + TimeDelta::hours(20))),
                timezone: London,
            };
            match rules.next_allowed(now) {
                Some(next) => {
                    prop_assert!(next >= now && next <= now + SEARCH_HORIZON);
                    prop_assert!(rules.allows(next));
                    if next != now {
                        prop_assert_eq!((next.second(), next.nanosecond()), (0, 0));
                        // The minute before was not allowed (or was before now).
                        let before = next - TimeDelta::minutes(1);
                        prop_assert!(before < now || !rules.allows(before));
                    }
                }
                None => prop_assert!(!rules.allows(now)),
            }
        }
    }
}
