//! Classifying inbound SMS replies (SAFE-CONTACT.md, "Replies").
//!
//! A reply is lower-cased, apostrophes dropped (`he's`, `he’s` and `hes` are one word), and split
//! into words on anything else that is not a letter or digit (a `:` or `.` between digits stays,
//! so `5:30` is one word). Phrases match consecutive words. When a reply fits several classes the
//! first of distress, unsafe, opt_out, opt_in, time_preference, other wins; the suppression is
//! worked out separately, so "STOP he's here" is distress and still suppresses the number.
//!
//! Opt-out words: STOP counts as the whole message or its first word; STOPALL and UNSUBSCRIBE
//! anywhere; END, QUIT and CANCEL only as the whole message. So "meet me at the bus stop after 5"
//! is a time preference and "please stop" is `other`, for a person to read.
//!
//! The lists err towards alerting a person: a false "distress" costs a caseworker a look, a missed
//! one can cost far more.
//!
//! A reply to a satisfaction survey (the latest message to the number was one) is read as its
//! answer when it is a digit from 1 to 5 alone or as its first word (`5`, `4!`, `3 thanks`); the
//! class is then `survey_answer`, placed after opt_in: distress, unsafe, opt_out and opt_in still
//! win ("1 STOPALL" opts out), and anything else falls through to the ordinary classes.

use chrono::{NaiveTime, TimeDelta};
use serde::{Deserialize, Serialize};

use super::codes;
use super::request::Day;

codes!(ReplyClass {
    Distress => "distress",
    Unsafe => "unsafe",
    OptOut => "opt_out",
    OptIn => "opt_in",
    SurveyAnswer => "survey_answer",
    TimePreference => "time_preference",
    Other => "other",
});

// What a reply does to the number: an `opt_out` is lifted by a later opt-in; an `unsafe` one
// (reported unsafe or a wrong number) never is, and flags `number_conflict` for review.
codes!(Suppression {
    OptOut => "opt_out",
    Unsafe => "unsafe",
});

/// What a reply means and what it implies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyAnalysis {
    pub classification: ReplyClass,
    /// The suppression the number gets, whatever the classification.
    pub suppression: Option<Suppression>,
    /// An opt-in: lift an `opt_out` suppression of this number (never an `unsafe` one).
    pub lifts_opt_out: bool,
    /// For a `time_preference`, the window asked for.
    pub time_preference: Option<TimePreference>,
}

/// A preferred call window. All of `day`, `from` and `to` absent means "any time".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimePreference {
    pub day: Option<PreferredDay>,
    pub from: Option<NaiveTime>,
    pub to: Option<NaiveTime>,
    /// The words the window was read from, normalised (e.g. `tomorrow morning`).
    pub phrase: String,
}

impl TimePreference {
    pub fn is_any_time(&self) -> bool {
        self.day.is_none() && self.from.is_none() && self.to.is_none()
    }
}

/// A day relative to when the reply arrived, or a weekday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreferredDay {
    Today,
    Tomorrow,
    On(Day),
}

const OPT_OUT_WHOLE_MESSAGE: &[&str] = &["stop", "stopall", "unsubscribe", "end", "quit", "cancel"];
/// STOP also counts as the first word of a longer message ("STOP he's here", "Stop texting me"),
/// but not further in: "meet me at the bus stop after 5" asks for a call, and "please stop" is
/// left to a person (`other`), since an opt-out silences the number.
const OPT_OUT_FIRST_WORD: &[&str] = &["stop"];
/// Opt-out words that count anywhere in a message: nobody writes them meaning anything else.
/// END, QUIT and CANCEL count only alone ("end of the day is fine", "can I cancel the call?").
const OPT_OUT_ANYWHERE: &[&str] = &["stopall", "unsubscribe"];
const OPT_IN_WHOLE_MESSAGE: &[&str] = &["start", "unstop"];
const OPT_IN_ANYWHERE: &[&str] = &["unstop"];

const DISTRESS: &[&str] = &[
    "help",
    "999",
    "sos",
    "scared",
    "frightened",
    "terrified",
    "danger",
    "emergency",
    "hes here",
    "he is here",
    "shes here",
    "she is here",
    "theyre here",
    "they are here",
    "hes outside",
    "he is outside",
    "shes outside",
    "she is outside",
    "hes back",
    "he is back",
    "hes coming",
    "he is coming",
    "hurting me",
    "hurt me",
    "kill me",
    "going to kill",
    "call the police",
    "call police",
];

const UNSAFE: &[&str] = &[
    "not safe",
    "isnt safe",
    "unsafe",
    "wrong number",
    "wrong person",
    "who is this",
    "whos this",
    "who is that",
    "who are you",
    "dont text",
    "do not text",
    "dont message",
    "do not message",
    "dont contact",
    "do not contact",
    "not my phone",
    "not my number",
    "dont know you",
];

/// Classify an inbound SMS body.
pub fn classify_reply(body: &str) -> ReplyAnalysis {
    let words = words_of(body);
    let whole_message_is = |list: &[&str]| words.len() == 1 && list.contains(&words[0].as_str());
    let first_word_is = |list: &[&str]| words.first().is_some_and(|w| list.contains(&w.as_str()));
    let has_word = |list: &[&str]| words.iter().any(|w| list.contains(&w.as_str()));
    let has_phrase = |list: &[&str]| list.iter().any(|p| find_phrase(&words, p).is_some());

    let distress = has_phrase(DISTRESS);
    let unsafe_number = has_phrase(UNSAFE);
    let opt_out =
        whole_message_is(OPT_OUT_WHOLE_MESSAGE) || first_word_is(OPT_OUT_FIRST_WORD) || has_word(OPT_OUT_ANYWHERE);
    let opt_in = whole_message_is(OPT_IN_WHOLE_MESSAGE) || has_word(OPT_IN_ANYWHERE);
    let time_preference = parse_time_preference(&words);

    let classification = [
        (distress, ReplyClass::Distress),
        (unsafe_number, ReplyClass::Unsafe),
        (opt_out, ReplyClass::OptOut),
        (opt_in, ReplyClass::OptIn),
        (time_preference.is_some(), ReplyClass::TimePreference),
    ]
    .into_iter()
    .find_map(|(fits, class)| fits.then_some(class))
    .unwrap_or(ReplyClass::Other);

    let suppression = if unsafe_number {
        Some(Suppression::Unsafe)
    } else if opt_out {
        Some(Suppression::OptOut)
    } else {
        None
    };

    ReplyAnalysis {
        classification,
        suppression,
        lifts_opt_out: classification == ReplyClass::OptIn,
        time_preference: time_preference.filter(|_| classification == ReplyClass::TimePreference),
    }
}

/// A satisfaction-survey answer: the score, and whether the reply says more than the digit (a
/// comment, which a person should read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurveyAnswer {
    pub score: u8,
    pub with_comment: bool,
}

/// Classify a reply to a satisfaction survey: as any reply when distress, unsafe, opt_out or
/// opt_in fits or it holds no score; otherwise as `survey_answer` with the score.
pub fn classify_survey_reply(body: &str) -> (ReplyAnalysis, Option<SurveyAnswer>) {
    let ordinary = classify_reply(body);
    let outranks = matches!(
        ordinary.classification,
        ReplyClass::Distress | ReplyClass::Unsafe | ReplyClass::OptOut | ReplyClass::OptIn
    );
    match survey_answer(body) {
        Some(answer) if !outranks => {
            let analysis = ReplyAnalysis {
                classification: ReplyClass::SurveyAnswer,
                suppression: ordinary.suppression,
                lifts_opt_out: false,
                time_preference: None,
            };
            (analysis, Some(answer))
        }
        _ => (ordinary, None),
    }
}

/// A digit from 1 to 5 alone or as the first word ("5", "4!", "3 thanks", "5/5"); not "4.5",
/// "10" or "I'd say 4".
pub fn survey_answer(body: &str) -> Option<SurveyAnswer> {
    let words = words_of(body);
    let score = match words.first()?.as_str() {
        digit @ ("1" | "2" | "3" | "4" | "5") => digit.parse().ok()?,
        _ => return None,
    };
    Some(SurveyAnswer { score, with_comment: words.len() > 1 })
}

/// Lower-case words; apostrophes dropped; `:` and `.` kept between digits.
fn words_of(body: &str) -> Vec<String> {
    let chars: Vec<char> = body.to_lowercase().chars().filter(|c| !matches!(c, '\'' | '’' | '‘' | '`')).collect();
    let mut words = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let between_digits = matches!(c, ':' | '.')
            && i > 0
            && chars[i - 1].is_ascii_digit()
            && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if c.is_alphanumeric() || between_digits {
            word.push(c);
        } else if !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Where the words of `phrase` occur consecutively: `(first, one past the last)`.
fn find_phrase(words: &[String], phrase: &str) -> Option<(usize, usize)> {
    let wanted: Vec<&str> = phrase.split(' ').collect();
    words
        .windows(wanted.len())
        .position(|run| run.iter().zip(&wanted).all(|(have, want)| have == want))
        .map(|start| (start, start + wanted.len()))
}

/// An hour and minute of local time.
type Clock = (u32, u32);

/// Parts of the day as call windows.
const PARTS_OF_DAY: &[(&str, Clock, Option<Clock>)] = &[
    ("morning", (9, 0), Some((12, 0))),
    ("mornings", (9, 0), Some((12, 0))),
    ("lunchtime", (12, 0), Some((14, 0))),
    ("afternoon", (12, 0), Some((17, 0))),
    ("afternoons", (12, 0), Some((17, 0))),
    ("evening", (17, 0), Some((20, 0))),
    ("evenings", (17, 0), Some((20, 0))),
    ("tonight", (17, 0), Some((20, 0))),
    ("end of the day", (17, 0), Some((20, 0))),
    ("end of day", (17, 0), Some((20, 0))),
    ("after work", (17, 0), None),
];

const ANY_TIME: &[&str] = &["any time", "anytime", "whenever"];

const WEEKDAYS: &[(&str, Day)] = &[
    ("monday", Day::Mon),
    ("tuesday", Day::Tue),
    ("tues", Day::Tue),
    ("wednesday", Day::Wed),
    ("weds", Day::Wed),
    ("thursday", Day::Thu),
    ("thurs", Day::Thu),
    ("friday", Day::Fri),
    ("saturday", Day::Sat),
    ("sunday", Day::Sun),
];

/// Reads a call window from the words: a day (today, tonight, tomorrow, a weekday), a part of the
/// day (morning 09:00–12:00, afternoon, evening, end of the day, …) and clock times (after 5,
/// before 9am, between 9 and 5, from 10 till 2, at/around 3). Clock times narrow a part of day.
fn parse_time_preference(words: &[String]) -> Option<TimePreference> {
    let mut window = Window::default();

    for &(phrase, day) in &[
        ("today", PreferredDay::Today),
        ("tonight", PreferredDay::Today),
        ("tomorrow", PreferredDay::Tomorrow),
        ("tmrw", PreferredDay::Tomorrow),
    ] {
        if let Some(span) = find_phrase(words, phrase) {
            window.day.get_or_insert(day);
            window.cover(span);
        }
    }
    for &(name, day) in WEEKDAYS {
        if let Some(span) = find_phrase(words, name) {
            window.day.get_or_insert(PreferredDay::On(day));
            window.cover(span);
        }
    }
    for &(phrase, from, to) in PARTS_OF_DAY {
        if let Some(span) = find_phrase(words, phrase) {
            window.part_from.get_or_insert(hm(from));
            if let Some(to) = to {
                window.part_to.get_or_insert(hm(to));
            }
            window.cover(span);
        }
    }
    for phrase in ANY_TIME {
        if let Some(span) = find_phrase(words, phrase) {
            window.cover(span);
        }
    }
    read_clock_times(words, &mut window);

    let (start, end) = window.span?;
    Some(TimePreference {
        day: window.day,
        from: window.from.or(window.part_from),
        to: window.to.or(window.part_to),
        phrase: words[start..end].join(" "),
    })
}

#[derive(Default)]
struct Window {
    day: Option<PreferredDay>,
    part_from: Option<NaiveTime>,
    part_to: Option<NaiveTime>,
    from: Option<NaiveTime>,
    to: Option<NaiveTime>,
    /// The words matched so far, `(first, one past the last)`.
    span: Option<(usize, usize)>,
}

impl Window {
    fn cover(&mut self, (start, end): (usize, usize)) {
        self.span = Some(match self.span {
            Some((s, e)) => (s.min(start), e.max(end)),
            None => (start, end),
        });
    }
}

fn read_clock_times(words: &[String], window: &mut Window) {
    let mut i = 0;
    while i < words.len() {
        let negated = i > 0 && words[i - 1] == "not";
        let start = if negated { i - 1 } else { i };
        let mut matched_to = None;
        match words[i].as_str() {
            // "after 5", "from 10 till 2", "not before 10" (= from 10)
            "after" | "from" | "before" | "until" | "till" | "til" | "by" => {
                if let Some((t, next)) = clock_time(words, i + 1) {
                    let opens = matches!(words[i].as_str(), "after" | "from") != negated;
                    if opens {
                        window.from.get_or_insert(t);
                        matched_to = Some(next);
                        if let Some((until, after)) = range_end(words, next) {
                            window.to.get_or_insert(until);
                            matched_to = Some(after);
                        }
                    } else {
                        window.to.get_or_insert(t);
                        matched_to = Some(next);
                    }
                }
            }
            "between" => {
                if let Some((t, next)) = clock_time(words, i + 1)
                    && let Some((until, after)) = range_end(words, next)
                {
                    window.from.get_or_insert(t);
                    window.to.get_or_insert(until);
                    matched_to = Some(after);
                }
            }
            // "at 3", "around 3:30": an hour from then.
            "at" | "around" | "about" | "approx" => {
                if let Some((t, next)) = clock_time(words, i + 1) {
                    window.from.get_or_insert(t);
                    window.to.get_or_insert(t + TimeDelta::hours(1));
                    matched_to = Some(next);
                }
            }
            _ => {}
        }
        match matched_to {
            Some(next) => {
                window.cover((start, next));
                i = next;
            }
            None => i += 1,
        }
    }
}

/// "… and 7", "… to 7", "… till 7", "… until 7".
fn range_end(words: &[String], i: usize) -> Option<(NaiveTime, usize)> {
    let joiner = words.get(i)?;
    if matches!(joiner.as_str(), "and" | "to" | "till" | "til" | "until") { clock_time(words, i + 1) } else { None }
}

/// A clock time starting at `words[i]`, and the index after it: `5`, `5pm`, `5 pm`, `5:30`,
/// `5.30pm`, `17:30`, `1730`, `5 oclock`, `noon`, `midday`. A bare hour from 1 to 7 is read as
/// afternoon or evening ("after 5" is 17:00): nobody asks for a call at 5 in the morning.
fn clock_time(words: &[String], i: usize) -> Option<(NaiveTime, usize)> {
    let word = words.get(i)?.as_str();
    if matches!(word, "noon" | "midday") {
        return Some((hm((12, 0)), i + 1));
    }
    let (digits, suffix) = word.split_at(word.find(|c: char| c.is_alphabetic()).unwrap_or(word.len()));
    let (mut meridiem, mut next) = (suffix, i + 1);
    if suffix.is_empty()
        && let Some(following) = words.get(i + 1).map(String::as_str)
        && matches!(following, "am" | "pm" | "oclock")
    {
        (meridiem, next) = (following, i + 2);
    }
    let (hour, minute) = split_hour_minute(digits)?;
    // "0530" and "05:30" are written as 24-hour times: no guessing.
    let four_digits = digits.len() == 4 && digits.bytes().all(|b| b.is_ascii_digit());
    let bare_hour = !digits.starts_with('0') && !four_digits;
    let hour = match meridiem {
        "am" if (1..=12).contains(&hour) => hour % 12,
        "pm" if (1..=12).contains(&hour) => hour % 12 + 12,
        "" | "oclock" if bare_hour && (1..=7).contains(&hour) => hour + 12,
        "" | "oclock" if hour <= 23 => hour,
        _ => return None,
    };
    NaiveTime::from_hms_opt(hour, minute, 0).map(|t| (t, next))
}

/// `5` → (5, 0); `5:30`, `5.30` → (5, 30); `1730` → (17, 30).
fn split_hour_minute(digits: &str) -> Option<(u32, u32)> {
    if !digits.bytes().all(|b| b.is_ascii_digit() || b == b':' || b == b'.') {
        return None;
    }
    if let Some((h, m)) = digits.split_once([':', '.']) {
        return (m.len() == 2).then(|| Some((h.parse().ok()?, m.parse().ok()?))).flatten();
    }
    match digits.len() {
        1 | 2 => Some((digits.parse().ok()?, 0)),
        4 => Some((digits[..2].parse().ok()?, digits[2..].parse().ok()?)),
        _ => None,
    }
}

fn hm((hour, minute): Clock) -> NaiveTime {
    NaiveTime::MIN + TimeDelta::hours(hour.into()) + TimeDelta::minutes(minute.into())
}

/// Who must look, and how urgently (SAFE-CONTACT.md's reply table).
pub fn alert_for(classification: ReplyClass) -> Option<(&'static str, &'static str)> {
    match classification {
        ReplyClass::Distress => Some(("urgent", "distress")),
        // An unsafe number is also a number_conflict for review.
        ReplyClass::Unsafe => Some(("high", "number_conflict")),
        ReplyClass::OptOut => Some(("normal", "opt_out")),
        ReplyClass::TimePreference => Some(("normal", "time_preference")),
        ReplyClass::Other => Some(("normal", "reply_needs_review")),
        // The answer is counted; one with a comment is put before a person (`survey`).
        ReplyClass::OptIn | ReplyClass::SurveyAnswer => None,
    }
}

#[cfg(test)]
mod tests {
    use super::ReplyClass::{Distress, OptIn, OptOut, Other, Unsafe};
    use super::*;

    const TIME: ReplyClass = ReplyClass::TimePreference;

    fn class(body: &str) -> ReplyClass {
        classify_reply(body).classification
    }

    #[test]
    fn each_class_from_its_examples() {
        let table: &[(&str, ReplyClass, Option<Suppression>)] = &[
            // opt_out: the whole message, any case, any punctuation
            ("STOP", OptOut, Some(Suppression::OptOut)),
            ("stop", OptOut, Some(Suppression::OptOut)),
            (" Stop. ", OptOut, Some(Suppression::OptOut)),
            ("STOPALL", OptOut, Some(Suppression::OptOut)),
            ("Unsubscribe!", OptOut, Some(Suppression::OptOut)),
            ("END", OptOut, Some(Suppression::OptOut)),
            ("quit", OptOut, Some(Suppression::OptOut)),
            ("Cancel", OptOut, Some(Suppression::OptOut)),
            // STOP also as the first word of a message; STOPALL and UNSUBSCRIBE anywhere
            ("Stop texting me", OptOut, Some(Suppression::OptOut)),
            ("unsubscribe me thanks", OptOut, Some(Suppression::OptOut)),
            ("STOP ALL", OptOut, Some(Suppression::OptOut)),
            // opt_in
            ("START", OptIn, None),
            ("unstop", OptIn, None),
            ("Unstop please", OptIn, None),
            // unsafe
            ("not safe", Unsafe, Some(Suppression::Unsafe)),
            ("Its not safe to text", Unsafe, Some(Suppression::Unsafe)),
            ("Wrong number", Unsafe, Some(Suppression::Unsafe)),
            ("who is this?", Unsafe, Some(Suppression::Unsafe)),
            ("Who’s this", Unsafe, Some(Suppression::Unsafe)),
            ("don't text", Unsafe, Some(Suppression::Unsafe)),
            ("DONT TEXT ME", Unsafe, Some(Suppression::Unsafe)),
            // distress
            ("help", Distress, None),
            ("HELP!!", Distress, None),
            ("999", Distress, None),
            ("he's here", Distress, None),
            ("hes here", Distress, None),
            ("He’s here now", Distress, None),
            ("I'm scared", Distress, None),
            // time_preference
            ("after 5", TIME, None),
            ("tomorrow morning", TIME, None),
            ("any time", TIME, None),
            ("End of the day is fine", TIME, None),
            // other
            ("ok thanks", Other, None),
            ("", Other, None),
            ("?!", Other, None),
        ];
        for (body, want_class, want_suppression) in table {
            let got = classify_reply(body);
            assert_eq!((got.classification, got.suppression), (*want_class, *want_suppression), "{body:?}");
        }
    }

    #[test]
    fn the_first_class_in_order_wins_and_the_suppression_still_applies() {
        // A frightened "STOP he's here" is distress, and still suppresses as an opt-out.
        let got = classify_reply("STOP he's here");
        assert_eq!((got.classification, got.suppression), (Distress, Some(Suppression::OptOut)));
        // Distress beats unsafe; the unsafe suppression is kept.
        let got = classify_reply("help, wrong number");
        assert_eq!((got.classification, got.suppression), (Distress, Some(Suppression::Unsafe)));
        // Unsafe beats opt-out; an unsafe suppression is the stronger one.
        let got = classify_reply("wrong number stop");
        assert_eq!((got.classification, got.suppression), (Unsafe, Some(Suppression::Unsafe)));
        // Opt-out beats a time preference.
        assert_eq!(class("stop texting after 5"), OptOut);
        // Opt-out beats opt-in.
        assert_eq!(class("stop unstop"), OptOut);
        assert_eq!(class("unstop unsubscribe"), OptOut);
        // Opt-in beats a time preference.
        assert_eq!(class("unstop, any time"), OptIn);
    }

    #[test]
    fn opt_out_words_do_not_fire_inside_ordinary_sentences() {
        assert_eq!(class("Can I cancel the call?"), Other);
        assert_eq!(class("I quit my job last week"), Other);
        assert_eq!(class("the end"), Other);
        assert_eq!(class("the bus stopped outside"), Other);
        assert_eq!(class("When does it start?"), Other);
        assert_eq!(classify_reply("End of the day is fine").suppression, None);
        // A number containing 999 is not 999.
        assert_eq!(class("my new number is 07700 900999"), Other);
    }

    #[test]
    fn stop_counts_alone_or_first_stopall_and_unsubscribe_anywhere() {
        let table: &[(&str, ReplyClass, Option<Suppression>)] = &[
            ("Stop texting me", OptOut, Some(Suppression::OptOut)),
            ("STOP. Don't call either", OptOut, Some(Suppression::OptOut)),
            // A frightened STOP first: distress, and the number is still suppressed.
            ("STOP he's here", Distress, Some(Suppression::OptOut)),
            // STOP further in is an ordinary word: what else the message says decides.
            ("meet me at the bus stop after 5", TIME, None),
            ("please stop", Other, None),
            ("Please stop texting me", Other, None),
            ("you can stop calling now", Other, None),
            ("ok STOPALL", OptOut, Some(Suppression::OptOut)),
            ("I want to unsubscribe please", OptOut, Some(Suppression::OptOut)),
            // END, QUIT and CANCEL, first or not, only count alone.
            ("End of the day is fine", TIME, None),
            ("quit texting", Other, None),
            ("cancel please", Other, None),
        ];
        for (body, want_class, want_suppression) in table {
            let got = classify_reply(body);
            assert_eq!((got.classification, got.suppression), (*want_class, *want_suppression), "{body:?}");
        }
        let bus_stop = window("meet me at the bus stop after 5");
        assert_eq!((bus_stop.from, bus_stop.phrase.as_str()), (t("17:00"), "after 5"));
    }

    #[test]
    fn only_an_opt_in_lifts_an_opt_out() {
        assert!(classify_reply("START").lifts_opt_out);
        assert!(classify_reply("Unstop").lifts_opt_out);
        assert!(!classify_reply("start wrong number").lifts_opt_out);
        assert!(!classify_reply("STOP").lifts_opt_out);
        assert!(!classify_reply("after 5").lifts_opt_out);
    }

    fn window(body: &str) -> TimePreference {
        let got = classify_reply(body);
        assert_eq!(got.classification, TIME, "{body:?}");
        got.time_preference.expect("a time preference carries its window")
    }

    fn t(s: &str) -> Option<NaiveTime> {
        Some(NaiveTime::parse_from_str(s, "%H:%M").expect("test time"))
    }

    #[test]
    fn time_preferences_are_read_into_windows() {
        use PreferredDay::*;
        // (reply, day, from, to, phrase)
        type Row = (&'static str, Option<PreferredDay>, Option<NaiveTime>, Option<NaiveTime>, &'static str);
        let table: &[Row] = &[
            ("after 5", None, t("17:00"), None, "after 5"),
            ("After 5pm please", None, t("17:00"), None, "after 5pm"),
            ("after 5:30", None, t("17:30"), None, "after 5:30"),
            ("after 10", None, t("10:00"), None, "after 10"),
            ("after 10 pm", None, t("22:00"), None, "after 10 pm"),
            ("after 17:30", None, t("17:30"), None, "after 17:30"),
            ("after 0530", None, t("05:30"), None, "after 0530"),
            ("before 9am", None, None, t("09:00"), "before 9am"),
            ("not before 10", None, t("10:00"), None, "not before 10"),
            ("between 9 and 5", None, t("09:00"), t("17:00"), "between 9 and 5"),
            ("from 10 till 2", None, t("10:00"), t("14:00"), "from 10 till 2"),
            ("around 3:30", None, t("15:30"), t("16:30"), "around 3:30"),
            ("at noon", None, t("12:00"), t("13:00"), "at noon"),
            ("Tomorrow morning", Some(Tomorrow), t("09:00"), t("12:00"), "tomorrow morning"),
            (
                "tomorrow morning after 10 would be good",
                Some(Tomorrow),
                t("10:00"),
                t("12:00"),
                "tomorrow morning after 10",
            ),
            ("tonight after 6", Some(Today), t("18:00"), t("20:00"), "tonight after 6"),
            ("Monday afternoon", Some(On(Day::Mon)), t("12:00"), t("17:00"), "monday afternoon"),
            ("tomorrow is fine", Some(Tomorrow), None, None, "tomorrow"),
            ("End of the day is fine", None, t("17:00"), t("20:00"), "end of the day"),
            ("any time", None, None, None, "any time"),
            ("Anytime is fine x", None, None, None, "anytime"),
        ];
        for (body, day, from, to, phrase) in table {
            let got = window(body);
            assert_eq!((got.day, got.from, got.to, got.phrase.as_str()), (*day, *from, *to, *phrase), "{body:?}");
        }
        assert!(window("any time").is_any_time());
        assert!(!window("after 5").is_any_time());
    }

    #[test]
    fn numbers_without_a_time_word_are_not_times() {
        assert_eq!(class("I have 2 kids"), Other);
        assert_eq!(class("after the 5th"), Other);
        assert_eq!(class("from work"), Other);
        assert_eq!(class("after 5١"), Other); // non-ASCII digits are not read as times
    }

    #[test]
    fn a_time_preference_is_only_given_for_that_class() {
        let got = classify_reply("STOP after 5");
        assert_eq!((got.classification, got.time_preference), (OptOut, None));
    }

    #[test]
    fn a_survey_answer_is_a_digit_from_1_to_5_alone_or_first() {
        let answer = |body: &str| survey_answer(body).map(|a| (a.score, a.with_comment));
        for (body, want) in [
            ("5", Some((5, false))),
            (" 4! ", Some((4, false))),
            ("1.", Some((1, false))),
            ("3 thanks", Some((3, true))),
            ("5/5", Some((5, true))),
            ("2 - nobody called me back", Some((2, true))),
            ("0", None),
            ("6", None),
            ("10", None),
            ("4.5", None),
            ("five", None),
            ("I'd say 4", None),
            ("", None),
        ] {
            assert_eq!(answer(body), want, "{body:?}");
        }
    }

    #[test]
    fn distress_unsafe_and_opt_outs_outrank_a_survey_answer() {
        let class = |body: &str| classify_survey_reply(body).0.classification;
        assert_eq!(class("5"), ReplyClass::SurveyAnswer);
        assert_eq!(class("4 after 5 is best"), ReplyClass::SurveyAnswer, "the score, not a call time");
        assert_eq!(class("1 help hes here"), Distress);
        assert_eq!(class("1 wrong number"), Unsafe);
        assert_eq!(class("1 unsubscribe"), OptOut);
        assert_eq!(classify_survey_reply("1 unsubscribe").0.suppression, Some(Suppression::OptOut));
        // Anything that is not an answer falls through to the ordinary classes.
        assert_eq!(classify_survey_reply("STOP"), (classify_reply("STOP"), None));
        assert_eq!(classify_survey_reply("after 5 please"), (classify_reply("after 5 please"), None));
        assert_eq!(classify_survey_reply("it was great"), (classify_reply("it was great"), None));
        // An ordinary reply is never read as an answer.
        assert_eq!(class_of_ordinary("5"), Other);
    }

    fn class_of_ordinary(body: &str) -> ReplyClass {
        classify_reply(body).classification
    }

    #[test]
    fn codes_are_spelled_as_the_specification() {
        let spelled: Vec<&str> = ReplyClass::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(spelled, ["distress", "unsafe", "opt_out", "opt_in", "survey_answer", "time_preference", "other"]);
        assert_eq!(Suppression::parse("unsafe"), Some(Suppression::Unsafe));
        assert_eq!(serde_json::to_string(&ReplyClass::TimePreference).ok().as_deref(), Some("\"time_preference\""));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text gets a class without panicking, deterministically, and the parts agree.
        #[test]
        fn the_analysis_is_consistent(body in "\\PC{0,60}") {
            let a = classify_reply(&body);
            prop_assert_eq!(&a, &classify_reply(&body));
            prop_assert_eq!(a.lifts_opt_out, a.classification == ReplyClass::OptIn);
            prop_assert_eq!(a.time_preference.is_some(), a.classification == ReplyClass::TimePreference);
            if matches!(a.classification, ReplyClass::Unsafe) {
                prop_assert_eq!(a.suppression, Some(Suppression::Unsafe));
            }
            if matches!(a.classification, ReplyClass::OptOut) {
                prop_assert_eq!(a.suppression, Some(Suppression::OptOut));
            }
        }

        /// A survey reply is an answer exactly when it holds a score and nothing outranks it; the
        /// suppression is the ordinary reading's either way.
        #[test]
        fn a_survey_reply_is_the_ordinary_reading_or_an_answer(body in "[1-7]?[ !.]?\\PC{0,30}") {
            let (analysis, answer) = classify_survey_reply(&body);
            let ordinary = classify_reply(&body);
            prop_assert_eq!(analysis.suppression, ordinary.suppression);
            prop_assert_eq!(answer.is_some(), analysis.classification == ReplyClass::SurveyAnswer);
            if let Some(answer) = answer {
                prop_assert!((1..=5).contains(&answer.score));
                prop_assert!(!matches!(ordinary.classification, ReplyClass::Distress | ReplyClass::Unsafe | ReplyClass::OptOut | ReplyClass::OptIn));
            } else {
                prop_assert_eq!(analysis, ordinary);
            }
        }

        /// Case and surrounding punctuation never change the class.
        #[test]
        fn case_and_punctuation_do_not_matter(
            body in prop::sample::select(vec!["stop", "start", "help", "wrong number", "after 5", "hes here", "end", "hello"]),
            upper in any::<bool>(),
            punctuation in "[!?., ]{0,3}",
        ) {
            let written = if upper { body.to_uppercase() } else { body.to_string() };
            prop_assert_eq!(classify_reply(&format!("{punctuation}{written}{punctuation}")), classify_reply(body));
        }

        /// STOP as the first word always suppresses the number, whatever follows.
        #[test]
        fn stop_as_the_first_word_always_suppresses(upper in any::<bool>(), rest in "\\PC{0,40}") {
            let stop = if upper { "STOP" } else { "stop" };
            let a = classify_reply(&format!("{stop} {rest}"));
            prop_assert!(a.suppression.is_some(), "{:?}", a);
        }

        /// STOP after the first word of an ordinary message never suppresses the number.
        #[test]
        fn stop_further_in_does_not_suppress(
            before in prop::sample::select(vec!["please", "the bus", "meet me at the bus", "you can", "ok"]),
            after in prop::sample::select(vec!["", "now", "after 5", "thanks", "texting me"]),
        ) {
            let a = classify_reply(&format!("{before} stop {after}"));
            prop_assert_eq!(a.suppression, None);
            prop_assert_ne!(a.classification, ReplyClass::OptOut);
        }

        /// An opt-out word alone is always an opt-out, however shouted.
        #[test]
        fn a_lone_opt_out_word_always_suppresses(word in prop::sample::select(OPT_OUT_WHOLE_MESSAGE.to_vec()), upper in any::<bool>()) {
            let written = if upper { word.to_uppercase() } else { word.to_string() };
            let a = classify_reply(&written);
            prop_assert_eq!((a.classification, a.suppression), (ReplyClass::OptOut, Some(Suppression::OptOut)));
        }
    }
}
