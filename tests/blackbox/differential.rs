//! A differential test of the safe-contact rules. Random cases of several jobs, with advocates'
//! calls, victims' replies, cancels and the worker's decisions right before sending, are run
//! through the real gateway (the API, the sandbox webhook, the worker) and through a second
//! implementation of SAFE-CONTACT.md v2 written here from the specification's text: it tracks each
//! case (categories, priority, calls, cancels), the suppressed numbers and the numbers that are
//! someone else's, and predicts every decision (satisfaction surveys too, and whether a reply is
//! read as a survey's answer). It does not call `decide` or any helper of the
//! policy or of contact normalisation; it shares only the request's JSON shape.
//!
//! Every decision is compared: the answer to each accepted job, each decision the worker takes,
//! the jobs a call stops, and at the end every job's status. `SAFEREACH_DIFF_JOBS` and
//! `SAFEREACH_DIFF_SEED` change the size and the seed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc, Weekday};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use safereach::app::Role;
use safereach::domain::Decision;
use safereach::worker::Processed;
use serde_json::{Value, json};

use crate::common::{Backend, Options, TestApp, current_backend, on_backend, spawn_with};

/// Monday 23 November 2026, 10:00 in London (GMT): inside quiet hours, far from every window edge.
const START: &str = "2026-11-23T10:00:00Z";

// ---------------------------------------------------------------------------------------------
// The specification's lists, copied from its text.

const SAFETY_SENSITIVE: &[&str] = &[
    "domestic_abuse",
    "sexual_violence",
    "hate_crime",
    "stalking",
    "forced_marriage",
    "honour_based_abuse",
    "modern_slavery",
    "trafficking",
];
const PRIORITY_OTHER: &[&str] = &[
    "terrorism",
    "attempted_murder",
    "kidnap",
    "arson_with_intent",
    "gbh_with_intent",
    "child_abuse",
    "child_sexual_exploitation",
    "fgm",
    "serious_violence",
    "false_imprisonment",
    "wounding_with_intent",
    "fraud_vulnerable",
    "cyber_crime_vulnerable",
];
const PRIORITY_VULNERABILITIES: &[&str] =
    &["under_18", "mental_disorder", "disability", "intimidated", "persistently_targeted"];
const KEYWORDS: &[&str] = &[
    "partner*",
    "ex",
    "husband*",
    "wife",
    "boyfriend*",
    "girlfriend*",
    "domestic*",
    "coercive",
    "controlling",
    "racist",
    "racial*",
    "homophobic",
    "transphobic",
    "biphobic",
    "disablist",
    "religious*",
    "hate",
    "sexual*",
    "rape",
    "raped",
    "indecent*",
    "stalk*",
    "harass*",
    "strangl*",
    "choke*",
    "traffick*",
    "\"threat to kill\"",
    "\"threats to kill\"",
    "\"forced marriage\"",
    "honour",
];

// ---------------------------------------------------------------------------------------------
// Requests

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pretext,
    Pack,
    Survey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Channel {
    Sms,
    Email,
    Letter,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Letter => "letter",
        }
    }
}

#[derive(Debug, Clone)]
struct Phone {
    number: String,
    belongs_to: Option<&'static str>,
    safe_to_text: Option<bool>,
}

#[derive(Debug, Clone)]
struct Postal {
    name: Option<&'static str>,
    lines: Vec<&'static str>,
    postcode: Option<&'static str>,
    safe: Option<bool>,
}

#[derive(Debug, Clone)]
struct Window {
    days: Vec<Weekday>,
    from: NaiveTime,
    to: NaiveTime,
}

#[derive(Debug, Clone)]
struct Request {
    request_id: String,
    case_ref: String,
    kind: Kind,
    priority: Option<bool>,
    referred_at: Option<DateTime<Utc>>,
    categories: Vec<&'static str>,
    summary: Option<&'static str>,
    date_of_birth: Option<&'static str>,
    is_under_18: Option<bool>,
    vulnerabilities: Vec<&'static str>,
    phones: Vec<Phone>,
    email: Option<(&'static str, Option<bool>)>,
    postal: Option<Postal>,
    preferred: Option<&'static str>,
    safe_times: Vec<Window>,
    do_not_contact: bool,
    consent: bool,
    survey_consent: bool,
}

fn day_name(d: Weekday) -> &'static str {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][d.num_days_from_monday() as usize]
}

impl Request {
    fn json(&self) -> Value {
        json!({
            "request_id": self.request_id,
            "case_ref": self.case_ref,
            "kind": match self.kind {
                Kind::Pretext => "priority_pretext",
                Kind::Pack => "information_pack",
                Kind::Survey => "satisfaction_survey",
            },
            "priority": self.priority,
            "referral": {"source": "police", "referred_at": self.referred_at.map(|t| t.to_rfc3339())},
            "crime": {"categories": self.categories, "summary": self.summary},
            "victim": {"first_name": "Alex", "date_of_birth": self.date_of_birth, "is_under_18": self.is_under_18,
                       "vulnerabilities": self.vulnerabilities},
            "contact": {
                "phones": self.phones.iter().map(|p| json!({"number": p.number, "belongs_to": p.belongs_to, "safe_to_text": p.safe_to_text})).collect::<Vec<_>>(),
                "email": self.email.map(|(address, safe)| json!({"address": address, "safe": safe})),
                "postal": self.postal.as_ref().map(|p| json!({"name": p.name, "lines": p.lines, "postcode": p.postcode, "safe": p.safe})),
                "preferred_method": self.preferred,
                "safe_times": self.safe_times.iter().map(|w| json!({
                    "days": w.days.iter().map(|d| day_name(*d)).collect::<Vec<_>>(),
                    "from": w.from.format("%H:%M").to_string(), "to": w.to.format("%H:%M").to_string()
                })).collect::<Vec<_>>(),
                "do_not_contact": self.do_not_contact
            },
            "consent": {"information_pack": self.consent, "survey": self.survey_consent}
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The model: SAFE-CONTACT.md v2, read afresh

/// "Textable number ... `+447` and 9 more digits; `07…`, `447…` and `00447…` forms, with spaces,
/// dashes, dots and brackets removed, are normalised" (and the `+44 (0)7…` habit).
fn uk_mobile(raw: &str) -> Option<String> {
    let mut s: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    for habit in ["+44(0)", "0044(0)"] {
        if let Some(rest) = s.strip_prefix(habit) {
            s = format!("+44{rest}");
        }
    }
    let s: String = s.chars().filter(|c| !"-.()".contains(*c)).collect();
    let digits = |t: &str| t.len() == 9 && t.bytes().all(|b| b.is_ascii_digit());
    // A `+` may only start the international form.
    for prefix in ["+447", "447", "00447", "07"] {
        if let Some(rest) = s.strip_prefix(prefix)
            && digits(rest)
        {
            return Some(format!("+447{rest}"));
        }
    }
    None
}

/// "a syntactically valid address" (enough for the addresses generated here).
fn valid_email(raw: &str) -> bool {
    let a = raw.trim().to_lowercase();
    let parts: Vec<&str> = a.split('@').collect();
    if parts.len() != 2 || parts[0].is_empty() || parts[0].contains(char::is_whitespace) {
        return false;
    }
    let labels: Vec<&str> = parts[1].split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        && !labels.last().unwrap().chars().all(|c| c.is_ascii_digit())
}

/// "a valid UK postcode": outward A9, A99, AA9, AA99, A9A or AA9A, then inward 9AA.
fn valid_postcode(raw: &str) -> bool {
    let s: String = raw.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_uppercase();
    if s == "GIR0AA" {
        return true;
    }
    if s.len() < 5 || s.len() > 7 || !s.is_ascii() {
        return false;
    }
    let (outward, inward) = s.split_at(s.len() - 3);
    let shape = |t: &str| {
        t.chars()
            .map(|c| {
                if c.is_ascii_uppercase() {
                    'A'
                } else if c.is_ascii_digit() {
                    '9'
                } else {
                    '?'
                }
            })
            .collect::<String>()
    };
    ["A9", "A99", "AA9", "AA99", "A9A", "AA9A"].contains(&shape(outward).as_str()) && shape(inward) == "9AA"
}

/// Keywords: "case-insensitive on words (text split on anything that is not a letter): a plain
/// entry must equal a whole word, an entry with `*` must start a word, a quoted phrase must match
/// consecutive words".
fn has_keyword(text: &str) -> bool {
    let words: Vec<String> =
        text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase()).collect();
    KEYWORDS.iter().any(|entry| {
        let entry = entry.trim_matches('"');
        let prefix = entry.ends_with('*');
        let wanted: Vec<&str> = entry.trim_end_matches('*').split(' ').collect();
        words.windows(wanted.len()).any(|run| {
            run.iter().zip(&wanted).enumerate().all(|(i, (have, want))| {
                if prefix && i == wanted.len() - 1 { have.starts_with(want) } else { have == want }
            })
        })
    })
}

fn in_list(values: &BTreeSet<&str>, list: &[&str]) -> bool {
    values.iter().any(|v| list.contains(v))
}

/// "a `date_of_birth` less than 18 years before now" (London's date), or `is_under_18`.
fn under_18(req: &Request, now: DateTime<Utc>) -> bool {
    let today = now.with_timezone(&chrono_tz::Europe::London).date_naive();
    req.is_under_18 == Some(true)
        || req.date_of_birth.is_some_and(|d| {
            let born: NaiveDate = d.parse().unwrap();
            let eighteenth = NaiveDate::from_ymd_opt(born.year() + 18, born.month(), born.day())
                .unwrap_or_else(|| NaiveDate::from_ymd_opt(born.year() + 18, 3, 1).unwrap());
            today < eighteenth
        })
}

/// Quiet hours 08:00–20:00 and the victim's windows, all in Europe/London.
fn allowed(req: &Request, channel: Channel, t: DateTime<Utc>) -> bool {
    let local = t.with_timezone(&chrono_tz::Europe::London);
    let minute = local.hour() * 60 + local.minute();
    let quiet_ok = channel != Channel::Sms || (8 * 60..20 * 60).contains(&minute);
    let m = |x: NaiveTime| x.hour() * 60 + x.minute();
    let in_window = |w: &Window| {
        let (from, to) = (m(w.from), m(w.to));
        let today = local.weekday();
        if from < to {
            w.days.contains(&today) && from <= minute && minute < to
        } else {
            (w.days.contains(&today) && minute >= from) || (w.days.contains(&today.pred()) && minute < to)
        }
    };
    quiet_ok && (req.safe_times.is_empty() || req.safe_times.iter().any(in_window))
}

/// The earliest allowed minute from `now`: the start of a window or of quiet hours (an
/// intersection of intervals starts where one of them starts), within 8 days.
fn next_allowed(req: &Request, channel: Channel, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let today = now.with_timezone(&chrono_tz::Europe::London).date_naive();
    let mut starts: Vec<NaiveTime> = req.safe_times.iter().map(|w| w.from).collect();
    starts.push(NaiveTime::from_hms_opt(8, 0, 0).unwrap());
    let mut candidates = Vec::new();
    for d in 0..=8 {
        let date = today + TimeDelta::days(d);
        for s in &starts {
            use chrono::TimeZone;
            if let Some(t) = chrono_tz::Europe::London.from_local_datetime(&date.and_time(*s)).earliest() {
                candidates.push(t.with_timezone(&Utc));
            }
        }
    }
    candidates.into_iter().filter(|t| *t > now && *t <= now + TimeDelta::days(8) && allowed(req, channel, *t)).min()
}

#[derive(Debug, Clone, PartialEq)]
enum Want {
    /// `to`: the number a text goes to.
    Send {
        channel: Channel,
        template: &'static str,
        to: Option<String>,
    },
    Defer {
        reason: &'static str,
        until: DateTime<Utc>,
        channel: Channel,
        template: &'static str,
    },
    Hold(&'static str),
    Block(&'static str),
}

impl Want {
    fn outcome(&self) -> &'static str {
        match self {
            Want::Send { .. } => "send",
            Want::Defer { .. } => "defer",
            Want::Hold(_) => "hold",
            Want::Block(_) => "block",
        }
    }
    fn reason(&self) -> Option<&'static str> {
        match self {
            Want::Send { .. } => None,
            Want::Defer { reason, .. } | Want::Hold(reason) | Want::Block(reason) => Some(reason),
        }
    }
    fn status(&self) -> Status {
        match self {
            Want::Send { .. } => Status::Queued,
            Want::Defer { .. } => Status::Deferred,
            Want::Hold(_) => Status::Held,
            Want::Block(_) => Status::Blocked,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Queued,
    Deferred,
    Held,
    Blocked,
    Sent,
    Cancelled,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Deferred => "deferred",
            Status::Held => "held",
            Status::Blocked => "blocked",
            Status::Sent => "sent",
            Status::Cancelled => "cancelled",
        }
    }
    /// "an earlier job ... that was sent or is still queued or deferred"
    fn active(self) -> bool {
        matches!(self, Status::Queued | Status::Deferred | Status::Sent)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suppression {
    OptOut,
    Unsafe,
    WrongNumber,
}

struct Job {
    id: String,
    request: Request,
    accepted_at: DateTime<Utc>,
    status: Status,
}

#[derive(Default)]
struct Case {
    categories: BTreeSet<&'static str>,
    priority: bool,
    cancelled: bool,
    declined: bool,
    attempts: u32,
    victim_numbers: BTreeSet<String>,
    jobs: Vec<usize>,
}

#[derive(Default)]
struct Model {
    cases: BTreeMap<String, Case>,
    jobs: Vec<Job>,
    /// Live suppressions by number (normalised, or as given when not a mobile).
    suppressed: BTreeMap<String, Suppression>,
    /// Numbers recorded on any case as someone other than the victim's.
    others: BTreeSet<String>,
    /// The kind of the latest text sent to each number: a reply to a survey may be its answer.
    last_text: BTreeMap<String, Kind>,
}

/// Why a job has no address to go to.
enum NoRoute {
    NoTextable,
    WrittenUnsafe,
    Insufficient,
}

fn flag_ok(flag: Option<bool>, sensitive: bool) -> bool {
    if sensitive { flag == Some(true) } else { flag != Some(false) }
}

fn is_victims(p: &Phone) -> bool {
    p.belongs_to.is_none_or(|b| b == "victim")
}

fn first_textable(req: &Request, sensitive: bool) -> Option<String> {
    req.phones.iter().filter(|p| is_victims(p) && flag_ok(p.safe_to_text, sensitive)).find_map(|p| uk_mobile(&p.number))
}

/// The channel's address when usable; the number for SMS (the only kind suppressed here).
fn usable(req: &Request, channel: Channel, sensitive: bool) -> Option<Option<String>> {
    match channel {
        Channel::Sms => first_textable(req, sensitive).map(Some),
        Channel::Email => req.email.filter(|(a, safe)| flag_ok(*safe, sensitive) && valid_email(a)).map(|_| None),
        Channel::Letter => req
            .postal
            .as_ref()
            .filter(|p| {
                flag_ok(p.safe, sensitive)
                    && p.name.is_some_and(|n| !n.trim().is_empty())
                    && p.lines.iter().any(|l| !l.trim().is_empty())
                    && p.postcode.is_some_and(valid_postcode)
            })
            .map(|_| None),
    }
}

fn preferred_written(req: &Request) -> Option<Channel> {
    match req.preferred? {
        "sms" => Some(Channel::Sms),
        "email" => Some(Channel::Email),
        "letter" => Some(Channel::Letter),
        _ => None,
    }
}

fn marked_safe(req: &Request, channel: Channel) -> bool {
    match channel {
        Channel::Sms => req.phones.iter().any(|p| is_victims(p) && p.safe_to_text == Some(true)),
        Channel::Email => req.email.is_some_and(|(_, safe)| safe == Some(true)),
        Channel::Letter => req.postal.as_ref().is_some_and(|p| p.safe == Some(true)),
    }
}

/// "Channel for an information pack" and "Template".
fn route(req: &Request, sensitive: bool) -> Result<(Channel, &'static str, Option<String>), NoRoute> {
    let (channel, number) = match req.kind {
        Kind::Pretext => (Channel::Sms, Some(first_textable(req, sensitive).ok_or(NoRoute::NoTextable)?)),
        Kind::Pack if sensitive => {
            let channel = preferred_written(req).ok_or(NoRoute::WrittenUnsafe)?;
            match usable(req, channel, true) {
                Some(number) => (channel, number),
                None if marked_safe(req, channel) => return Err(NoRoute::Insufficient),
                None => return Err(NoRoute::WrittenUnsafe),
            }
        }
        Kind::Pack => {
            let order = preferred_written(req).into_iter().chain([Channel::Sms, Channel::Email, Channel::Letter]);
            order.filter_map(|c| usable(req, c, false).map(|n| (c, n))).next().ok_or(NoRoute::Insufficient)?
        }
        // The survey (issue 15): "only the victim's preferred written method (sms or email), marked
        // safe, else written_unsafe; marked safe but invalid: insufficient_contact_info".
        Kind::Survey if sensitive => {
            let channel = preferred_written(req).filter(|c| *c != Channel::Letter).ok_or(NoRoute::WrittenUnsafe)?;
            match usable(req, channel, true) {
                Some(number) => (channel, number),
                None if marked_safe(req, channel) => return Err(NoRoute::Insufficient),
                None => return Err(NoRoute::WrittenUnsafe),
            }
        }
        // "email if preferred and usable, else the first textable number, else
        // insufficient_contact_info".
        Kind::Survey => {
            let email = (preferred_written(req) == Some(Channel::Email))
                .then(|| usable(req, Channel::Email, false))
                .flatten()
                .map(|n| (Channel::Email, n));
            email
                .or_else(|| usable(req, Channel::Sms, false).map(|n| (Channel::Sms, n)))
                .ok_or(NoRoute::Insufficient)?
        }
    };
    let template = match (req.kind, channel, sensitive) {
        (Kind::Pretext, _, true) => "priority_pretext_discreet",
        (Kind::Pretext, _, false) => "priority_pretext",
        (Kind::Pack, Channel::Sms, true) => "information_pack_discreet",
        (Kind::Pack, _, _) => "information_pack",
        (Kind::Survey, Channel::Sms, true) => "satisfaction_survey_discreet",
        (Kind::Survey, _, _) => "satisfaction_survey",
    };
    Ok((channel, template, number))
}

impl Model {
    /// The decision for `req` on its case now. `this` is the job when it is stored already (its
    /// index); a new job comes after every stored one.
    fn decide(&self, req: &Request, this: Option<usize>, now: DateTime<Utc>, accepted_at: DateTime<Utc>) -> Want {
        let empty = Case::default();
        let case = self.cases.get(&req.case_ref).unwrap_or(&empty);
        // "A case remembers".
        let categories: BTreeSet<&str> =
            case.categories.iter().copied().chain(req.categories.iter().copied()).collect();
        let sensitive = in_list(&categories, SAFETY_SENSITIVE);
        let priority = case.priority || req.kind == Kind::Pretext || req.priority == Some(true);
        // 1
        let this_cancelled = this.is_some_and(|i| self.jobs[i].status == Status::Cancelled);
        if case.cancelled || this_cancelled || req.do_not_contact {
            return Want::Block("do_not_contact");
        }
        // 1a
        if case.declined {
            return Want::Block("declined");
        }
        // 2
        if (req.kind == Kind::Pack && !req.consent) || (req.kind == Kind::Survey && !req.survey_consent) {
            return Want::Block("no_consent");
        }
        let route = route(req, sensitive);
        // 3
        if let Ok((_, _, Some(number))) = &route
            && self.suppressed.contains_key(number)
        {
            return Want::Block("suppressed");
        }
        // 4
        let vulnerabilities: BTreeSet<&str> = req.vulnerabilities.iter().copied().collect();
        let looks_priority = sensitive
            || in_list(&categories, PRIORITY_OTHER)
            || in_list(&vulnerabilities, PRIORITY_VULNERABILITIES)
            || req.summary.is_some_and(has_keyword);
        if req.kind == Kind::Pack && !priority && looks_priority {
            return Want::Hold("possible_priority");
        }
        // 5
        if under_18(req, now) {
            return Want::Hold("minor");
        }
        // 6, 8, 9, 10
        let (channel, template, number) = match route {
            Ok(r) => r,
            Err(NoRoute::NoTextable) if sensitive => return Want::Hold("no_safe_number"),
            Err(NoRoute::NoTextable) => return Want::Block("no_mobile_number"),
            Err(NoRoute::WrittenUnsafe) => return Want::Block("written_unsafe"),
            Err(NoRoute::Insufficient) => return Want::Block("insufficient_contact_info"),
        };
        // 7: "recorded — on this case or any other, or in this very request — as belonging to
        // someone other than the victim"
        if let Some(number) = &number {
            let in_request = req.phones.iter().any(|p| !is_victims(p) && uk_mobile(&p.number).as_ref() == Some(number));
            if self.others.contains(number) || in_request {
                return Want::Hold("number_conflict");
            }
        }
        // 11
        let position = this.map_or(usize::MAX, |i| case.jobs.iter().position(|j| *j == i).unwrap());
        let duplicate = case.jobs.iter().enumerate().any(|(at, j)| {
            let other = &self.jobs[*j];
            Some(*j) != this
                && other.request.kind == req.kind
                && ((at < position && other.status.active()) || other.status == Status::Sent)
        });
        if duplicate {
            return Want::Block("duplicate");
        }
        // 12
        if req.kind == Kind::Pack && priority && preferred_written(req).is_none() && case.attempts < 2 {
            let until = req.referred_at.unwrap_or(accepted_at) + TimeDelta::hours(24);
            if now < until {
                return Want::Defer { reason: "calls_first", until, channel, template };
            }
        }
        // 13
        if !allowed(req, channel, now) {
            return match next_allowed(req, channel, now) {
                Some(until) => Want::Defer { reason: "outside_safe_hours", until, channel, template },
                None => Want::Hold("outside_safe_hours"),
            };
        }
        // 14: every template is approved in this test. 15:
        Want::Send { channel, template, to: number }
    }

    /// The store's side of accepting: the case remembers, the numbers are recorded.
    fn remember(&mut self, req: &Request) {
        let case = self.cases.entry(req.case_ref.clone()).or_default();
        case.categories.extend(req.categories.iter().copied());
        case.priority |= req.kind == Kind::Pretext || req.priority == Some(true);
        for p in &req.phones {
            if let Some(n) = uk_mobile(&p.number) {
                if is_victims(p) {
                    case.victim_numbers.insert(n);
                } else {
                    self.others.insert(n);
                }
            }
        }
    }

    fn suppress(&mut self, number: String, kind: Suppression) {
        let keep = matches!(
            (self.suppressed.get(&number), kind),
            (Some(Suppression::Unsafe), _) | (Some(Suppression::WrongNumber), Suppression::OptOut)
        );
        if !keep {
            self.suppressed.insert(number, kind);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Generating

struct World {
    id: usize,
    rng: StdRng,
    model: Model,
    numbers: Vec<String>,
    case_refs: Vec<String>,
    next_case: usize,
    next_request: usize,
    stats: Stats,
    disagreements: Vec<String>,
    /// Acceptance decisions by outcome and reason, to show the run reached every rule.
    outcomes: BTreeMap<String, usize>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    accepted: usize,
    worker: usize,
    calls: usize,
    stopped_by_calls: usize,
    replies: usize,
    survey_answers: usize,
    cancels: usize,
    final_checked: usize,
    sent: usize,
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// One of `n`'s written forms.
fn written(rng: &mut StdRng, n: &str) -> String {
    let sub = &n[4..];
    match rng.random_range(0..7) {
        0 => n.to_string(),
        1 => format!("07{} {}", &sub[..3], &sub[3..]),
        2 => format!("447{sub}"),
        3 => format!("00447{sub}"),
        4 => format!("+44 (0)7{} {} {}", &sub[..3], &sub[3..6], &sub[6..]),
        5 => format!("07{}-{}-{}", &sub[..3], &sub[3..6], &sub[6..]),
        _ => format!("0044 7{} {}", &sub[..3], &sub[3..]),
    }
}

impl World {
    fn new(id: usize, seed: u64) -> World {
        // 9 digits after +447: 7, the world, then 6 digits. Worlds never share a number.
        let numbers = (0..5_000).map(|i| format!("+4477{id:02}{:06}", 900_000 + i)).collect();
        World {
            id,
            rng: StdRng::seed_from_u64(seed.wrapping_mul(1000).wrapping_add(id as u64)),
            model: Model::default(),
            numbers,
            case_refs: Vec::new(),
            next_case: 0,
            next_request: 0,
            stats: Stats::default(),
            disagreements: Vec::new(),
            outcomes: BTreeMap::new(),
        }
    }

    /// A number of the pool in use now: a window that moves on as jobs come, so that numbers are
    /// shared by cases and suppressed, while fresh ones keep coming (as in life).
    fn number(&mut self) -> String {
        let start = self.stats.accepted / 3;
        self.numbers[start + self.rng.random_range(0..60)].clone()
    }

    fn request(&mut self, now: DateTime<Utc>) -> Request {
        let case_ref = if self.case_refs.is_empty() || self.rng.random_bool(0.3) {
            self.next_case += 1;
            let c = format!("D{}-{}", self.id, self.next_case);
            self.case_refs.push(c.clone());
            c
        } else {
            let recent = self.case_refs.len().saturating_sub(12);
            self.case_refs[self.rng.random_range(recent..self.case_refs.len())].clone()
        };
        self.next_request += 1;
        let r = &mut self.rng;
        let kind = match r.random_range(0..20) {
            0..7 => Kind::Pretext,
            7..17 => Kind::Pack,
            _ => Kind::Survey,
        };
        let categories_pool = [
            "burglary",
            "burglary",
            "theft",
            "theft",
            "fraud",
            "cyber_crime",
            "criminal_damage",
            "robbery",
            "domestic_abuse",
            "stalking",
            "hate_crime",
            "terrorism",
            "fraud_vulnerable",
            "false_imprisonment",
            "wounding_with_intent",
        ];
        let mut categories = vec![pick(r, &categories_pool)];
        if r.random_bool(0.2) {
            categories.push(pick(r, &categories_pool));
            categories.dedup();
        }
        let mut phones = Vec::new();
        for _ in 0..r.random_range(0..=3) {
            let number = if self.rng.random_bool(0.9) {
                let n = self.number();
                written(&mut self.rng, &n)
            } else {
                pick(&mut self.rng, &["12345", "0121 496 0000", "+33612345678"]).to_string()
            };
            let r = &mut self.rng;
            phones.push(Phone {
                number,
                belongs_to: pick(r, &[None, None, Some("victim"), Some("victim"), Some("suspect"), Some("partner")]),
                safe_to_text: pick(r, &[Some(true), Some(true), Some(true), None, Some(false)]),
            });
        }
        let r = &mut self.rng;
        let email = r.random_bool(0.4).then(|| {
            (
                pick(r, &["sam@example.org", "Sam@Example.ORG", "not-an-email", "lee@localhost", "a b@example.org"]),
                pick(r, &[Some(true), Some(true), None, Some(false)]),
            )
        });
        let postal = r.random_bool(0.35).then(|| Postal {
            name: pick(r, &[Some("Sam Smith"), Some("Sam Smith"), None, Some(" ")]),
            lines: pick(
                r,
                &[
                    &["1 High Street", "Birmingham"][..],
                    &["1 High Street", "Birmingham"][..],
                    &[][..],
                    &[" ", "2 Station Road"][..],
                ],
            )
            .to_vec(),
            postcode: pick(r, &[Some("B1 1AA"), Some("cv12ab"), Some("nowhere"), None]),
            safe: pick(r, &[Some(true), Some(true), None, Some(false)]),
        });
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        use Weekday::*;
        let safe_times = match r.random_range(0..14) {
            0 => vec![Window { days: vec![Mon, Tue, Wed, Thu, Fri], from: t(9, 0), to: t(17, 0) }],
            1 => vec![Window { days: vec![Tue, Wed, Thu, Fri], from: t(9, 0), to: t(17, 0) }],
            2 => vec![Window { days: vec![Mon], from: t(18, 0), to: t(21, 0) }],
            3 => vec![Window { days: vec![Mon], from: t(21, 0), to: t(23, 0) }],
            4 => vec![Window { days: vec![Sat, Sun], from: t(10, 0), to: t(12, 0) }],
            5 => vec![Window { days: vec![Fri], from: t(22, 0), to: t(2, 0) }],
            _ => vec![],
        };
        let referred_at = match r.random_range(0..5) {
            0 => None,
            1 => Some(now - TimeDelta::hours(30)),
            _ => Some(now - TimeDelta::hours(2)),
        }
        .map(|t: DateTime<Utc>| DateTime::from_timestamp(t.timestamp() / 60 * 60, 0).unwrap());
        Request {
            request_id: format!("d{}-{}", self.id, self.next_request),
            case_ref,
            kind,
            priority: pick(r, &[None, None, Some(true), Some(false)]),
            referred_at,
            categories,
            summary: pick(
                r,
                &[
                    None,
                    None,
                    None,
                    Some("house broken into"),
                    Some("exam papers stolen in Essex"),
                    Some("her ex-partner smashed the windows"),
                    Some("threats to kill"),
                    Some("Racially aggravated abuse"),
                    Some("hateful graffiti on the wall"),
                ],
            ),
            date_of_birth: pick(
                r,
                &[None, None, None, None, None, None, Some("1990-04-01"), Some("2008-11-23"), Some("2008-11-24")],
            ),
            is_under_18: pick(r, &[None, None, None, None, None, None, None, None, Some(false), Some(true)]),
            vulnerabilities: pick(r, &[&[][..], &[][..], &[][..], &["elderly"][..], &["intimidated"][..]]).to_vec(),
            phones,
            email,
            postal,
            preferred: pick(r, &[None, None, Some("phone"), Some("sms"), Some("sms"), Some("email"), Some("letter")]),
            safe_times,
            do_not_contact: r.random_bool(0.02),
            consent: r.random_bool(0.92),
            survey_consent: r.random_bool(0.9),
        }
    }

    fn disagree(&mut self, what: String) {
        if self.disagreements.len() < 1000 {
            self.disagreements.push(what);
        }
    }

    /// Compare a decision as the API gives it with the model's.
    fn compare(&mut self, what: &str, want: &Want, got: Got<'_>, loose_until: bool) {
        let (outcome, reason, channel, template, until) = got;
        let (want_channel, want_template, want_until) = match want {
            Want::Send { channel, template, .. } => (Some(channel.name()), Some(*template), None),
            Want::Defer { channel, template, until, .. } => (Some(channel.name()), Some(*template), Some(*until)),
            _ => (None, None, None),
        };
        let until_ok = match (want_until, until) {
            (Some(w), Some(g)) if loose_until => (w - g).num_seconds().abs() <= 10,
            (w, g) => w == g,
        };
        if outcome != want.outcome()
            || reason != want.reason()
            || channel != want_channel
            || template != want_template
            || !until_ok
        {
            self.disagree(format!(
                "{what}: the model says {want:?}; the gateway {outcome} {reason:?} {channel:?} {template:?} {until:?}"
            ));
        }
    }
}

/// A decision as the gateway gave it: outcome, reason, channel, template, not before.
type Got<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>, Option<DateTime<Utc>>);

fn from_answer(answer: &Value) -> Got<'_> {
    let d = &answer["decision"];
    (
        d["outcome"].as_str().unwrap_or("?"),
        d["reason"].as_str(),
        d["channel"].as_str(),
        d["template"].as_str(),
        d["not_before"].as_str().and_then(|t| t.parse().ok()),
    )
}

/// One step of a world: an accepted job, a call, a reply, the worker, or a cancel.
async fn step(app: &TestApp, w: &mut World) {
    let now = app.state.clock.now();
    let roll = w.rng.random_range(0..100);
    if roll < 55 || w.model.jobs.is_empty() {
        let req = w.request(now);
        let (status, answer) = app.post_outreach(&req.json()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        w.model.remember(&req);
        let want = w.model.decide(&req, None, now, now);
        let label = format!("accepting {} on {}", req.request_id, req.case_ref);
        let before = w.disagreements.len();
        w.compare(&label, &want, from_answer(&answer), req.referred_at.is_none());
        if let Some(d) = w.disagreements.get_mut(before) {
            d.push_str(&format!("\n    request: {}", req.json()));
        }
        *w.outcomes.entry(format!("{} {}", want.outcome(), want.reason().unwrap_or("-"))).or_default() += 1;
        if req.kind == Kind::Survey {
            *w.outcomes.entry(format!("survey:{} {}", want.outcome(), want.reason().unwrap_or("-"))).or_default() += 1;
        }
        let index = w.model.jobs.len();
        let id = answer["outreach_id"].as_str().unwrap().to_string();
        w.model.cases.get_mut(&req.case_ref).unwrap().jobs.push(index);
        w.model.jobs.push(Job { id, request: req, accepted_at: now, status: want.status() });
        w.stats.accepted += 1;
    } else if roll < 75 {
        // The worker takes a job that is waiting: the decision right before sending.
        // Mostly jobs queued to go now (as the queue runs them), sometimes a deferred one early.
        let wanted: &[Status] =
            if w.rng.random_bool(0.8) { &[Status::Queued] } else { &[Status::Queued, Status::Deferred] };
        let waiting: Vec<usize> =
            (0..w.model.jobs.len()).filter(|i| wanted.contains(&w.model.jobs[*i].status)).collect();
        if waiting.is_empty() {
            return;
        }
        let i = waiting[w.rng.random_range(0..waiting.len())];
        let job = &w.model.jobs[i];
        let (id, req, accepted_at) = (job.id.clone(), job.request.clone(), job.accepted_at);
        let want = w.model.decide(&req, Some(i), now, accepted_at);
        let processed = app.state.worker().process(&id).await.unwrap();
        let label = format!("the worker on {id} ({} on {})", req.request_id, req.case_ref);
        match &processed {
            Processed::Sent { message_id } => {
                let messages = app.state.store.case_messages(&req.case_ref).await.unwrap();
                let m = messages.iter().find(|m| &m.id == message_id).unwrap();
                w.compare(
                    &label,
                    &want,
                    ("send", None, Some(m.channel.as_str()), Some(m.template.as_str()), None),
                    false,
                );
                w.stats.sent += 1;
            }
            Processed::Decided(d) => {
                let got = (
                    d.outcome().as_str(),
                    d.reason().map(|r| r.as_str()),
                    d.route().map(|r| r.channel.as_str()),
                    d.route().map(|r| r.template),
                    match d {
                        Decision::Defer { until, .. } => Some(*until),
                        _ => None,
                    },
                );
                w.compare(&label, &want, got, req.referred_at.is_none());
            }
            other => w.disagree(format!("{label}: the model says {want:?}; the worker {other:?}")),
        }
        if let Want::Send { to: Some(number), .. } = &want {
            w.model.last_text.insert(number.clone(), req.kind);
        }
        w.model.jobs[i].status = if matches!(want, Want::Send { .. }) { Status::Sent } else { want.status() };
        w.stats.worker += 1;
    } else if roll < 88 {
        call(app, w, now).await;
    } else if roll < 96 {
        reply(app, w).await;
    } else {
        cancel(app, w).await;
    }
}

async fn call(app: &TestApp, w: &mut World, now: DateTime<Utc>) {
    let case_ref = w.case_refs[w.rng.random_range(0..w.case_refs.len())].clone();
    let outcome = pick(
        &mut w.rng,
        &["answered", "no_answer", "no_answer", "no_answer", "voicemail", "voicemail", "wrong_number", "declined"],
    );
    let case = &w.model.cases[&case_ref];
    let victims: Vec<String> = case.victim_numbers.iter().cloned().collect();
    let number = match w.rng.random_range(0..10) {
        0..4 => None,
        4..8 if !victims.is_empty() => Some(victims[w.rng.random_range(0..victims.len())].clone()),
        _ => Some(w.number()),
    };
    let mut body = json!({"at": (now - TimeDelta::minutes(5)).to_rfc3339(), "outcome": outcome});
    if let Some(n) = &number {
        body["number"] = json!(written(&mut w.rng, n));
    }
    if outcome == "declined" && w.rng.random_bool(0.5) {
        body["reason"] = json!("has support already");
    }
    let (status, answer) = app.post_json(&format!("/v1/cases/{case_ref}/calls"), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    // The model: "declined blocks every later job"; "wrong_number suppresses the number called, or,
    // without one, every number recorded as the victim's on the case"; the rest are attempts.
    let mut suppressed = 0;
    {
        let case = w.model.cases.get_mut(&case_ref).unwrap();
        match outcome {
            "declined" => case.declined = true,
            "wrong_number" => {}
            _ => case.attempts += 1,
        }
    }
    if outcome == "wrong_number" {
        let numbers = match number {
            Some(n) => vec![n],
            None => victims,
        };
        suppressed = numbers.len();
        for n in numbers {
            w.model.suppress(n, Suppression::WrongNumber);
        }
    }
    // Jobs still waiting are decided again at once; a block stops them.
    let mut stopped = Vec::new();
    for i in w.model.cases[&case_ref].jobs.clone() {
        let job = &w.model.jobs[i];
        if matches!(job.status, Status::Queued | Status::Deferred | Status::Held) {
            let want = w.model.decide(&job.request.clone(), Some(i), now, job.accepted_at);
            if let Want::Block(reason) = want {
                stopped.push(json!({"outreach_id": job.id, "status": "blocked", "reason": reason}));
                w.model.jobs[i].status = Status::Blocked;
            }
        }
    }
    w.stats.stopped_by_calls += stopped.len();
    if answer["stopped"] != json!(stopped) || answer["suppressed_numbers"] != suppressed {
        w.disagree(format!(
            "call {body} on {case_ref}: the model stops {stopped:?} and suppresses {suppressed}; the gateway {answer}"
        ));
    }
    w.stats.calls += 1;
}

async fn reply(app: &TestApp, w: &mut World) {
    // The reply table's examples, with the class and the suppression each leads to.
    let (body, class, suppression, lifts) = pick(
        &mut w.rng,
        &[
            ("STOP", "opt_out", Some(Suppression::OptOut), false),
            ("STOP", "opt_out", Some(Suppression::OptOut), false),
            ("UNSUBSCRIBE", "opt_out", Some(Suppression::OptOut), false),
            ("START", "opt_in", None, true),
            ("START", "opt_in", None, true),
            ("not safe", "unsafe", Some(Suppression::Unsafe), false),
            ("wrong number", "unsafe", Some(Suppression::Unsafe), false),
            ("STOP he's here", "distress", Some(Suppression::OptOut), false),
            ("help", "distress", None, false),
            ("after 5", "time_preference", None, false),
            ("thanks", "other", None, false),
            // "a digit 1–5 alone or first" is an answer when the latest text was a survey.
            ("5", "survey_answer", None, false),
            ("2 thanks", "survey_answer", None, false),
        ],
    );
    // Mostly from a number that was sent a survey last, when the body could answer one.
    let surveyed: Vec<String> =
        w.model.last_text.iter().filter(|(_, kind)| **kind == Kind::Survey).map(|(n, _)| n.clone()).collect();
    let n = if class == "survey_answer" && !surveyed.is_empty() && w.rng.random_bool(0.7) {
        surveyed[w.rng.random_range(0..surveyed.len())].clone()
    } else {
        w.number()
    };
    let from = written(&mut w.rng, &n);
    let class = match class {
        "survey_answer" if w.model.last_text.get(&n) != Some(&Kind::Survey) => "other",
        class => class,
    };
    let (status, answer) =
        app.webhook("/webhooks/sandbox/inbound", &json!({"from": from, "to": "60000", "body": body})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    if answer["classification"] != class {
        w.disagree(format!("reply {body:?}: the model says {class}; the gateway {answer}"));
    }
    w.stats.survey_answers += usize::from(class == "survey_answer");
    if let Some(kind) = suppression {
        w.model.suppress(n.clone(), kind);
    }
    // "START, UNSTOP: lift an opt-out suppression (not an unsafe one)".
    if lifts && w.model.suppressed.get(&n) == Some(&Suppression::OptOut) {
        w.model.suppressed.remove(&n);
    }
    w.stats.replies += 1;
}

async fn cancel(app: &TestApp, w: &mut World) {
    if w.rng.random_bool(0.5) {
        let case_ref = w.case_refs[w.rng.random_range(0..w.case_refs.len())].clone();
        let (status, answer) = app.post_json(&format!("/v1/cases/{case_ref}/cancel"), &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let case = w.model.cases.get_mut(&case_ref).unwrap();
        case.cancelled = true;
        for i in case.jobs.clone() {
            if matches!(w.model.jobs[i].status, Status::Queued | Status::Deferred | Status::Held) {
                w.model.jobs[i].status = Status::Cancelled;
            }
        }
        if answer["too_late"] != json!([]) {
            w.disagree(format!("cancel of {case_ref}: nothing is being sent, yet {answer}"));
        }
    } else {
        let i = w.rng.random_range(0..w.model.jobs.len());
        let id = w.model.jobs[i].id.clone();
        let (status, answer) = app.post_json(&format!("/v1/outreach/{id}/cancel"), &json!({})).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let job = &mut w.model.jobs[i];
        if matches!(job.status, Status::Queued | Status::Deferred | Status::Held) {
            job.status = Status::Cancelled;
        }
        if answer["status"] != job.status.name() {
            let want = job.status.name();
            w.disagree(format!("cancel of {id}: the model says {want}; the gateway {answer}"));
        }
    }
    w.stats.cancels += 1;
}

/// Every job's status, as the gateway recorded it, against the model's; for one case in fifty,
/// also as the API shows it.
async fn final_check(app: &TestApp, statuses: &BTreeMap<String, (String, String)>, w: &mut World) {
    for (n, case_ref) in w.case_refs.clone().into_iter().enumerate() {
        let shown = if n % 50 == 0 { Some(app.get_case(&case_ref).await.1) } else { None };
        for i in w.model.cases[&case_ref].jobs.clone() {
            let job = &w.model.jobs[i];
            let got = match statuses.get(&job.id) {
                Some((case, status)) if *case == case_ref => status.as_str(),
                _ => "missing",
            };
            if let Some(case) = &shown {
                let api = case["outreach"].as_array().unwrap().iter().find(|o| o["outreach_id"] == job.id.as_str());
                assert_eq!(api.and_then(|o| o["status"].as_str()), Some(got), "the API shows the stored status");
            }
            if got != job.status.name() {
                let (id, want) = (job.id.clone(), job.status.name());
                w.disagree(format!("{id} on {case_ref} ends {got}; the model says {want}"));
            }
            w.stats.final_checked += 1;
        }
    }
}

async fn differential(jobs: usize, worlds: usize) {
    let seed: u64 = std::env::var("SAFEREACH_DIFF_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20_261_123);
    let started = Instant::now();
    // On SQLite the database lives in memory-backed files when the machine has them: the run
    // measures the rules, not the disk's flushes.
    let shm = std::path::Path::new("/dev/shm");
    let fast_dir = (current_backend() == Backend::Sqlite && shm.is_dir()).then(|| tempfile::tempdir_in(shm).unwrap());
    let fast_url = fast_dir.as_ref().map(|d| format!("sqlite://{}", d.path().join("differential.db").display()));
    let app = Arc::new(
        spawn_with(Options {
            clock: Some(START.into()),
            role: Role::Api,
            configure: Box::new(move |c| {
                if let Some(url) = fast_url {
                    c.database_url = url;
                }
            }),
            ..Options::default()
        })
        .await,
    );
    // The model assumes every template approved on its channel, as the defaults are.
    let approved: BTreeSet<(String, String)> = app
        .state
        .store
        .template_versions()
        .await
        .unwrap()
        .into_iter()
        .filter(|v| v.state == "approved")
        .map(|v| (v.name, v.channel))
        .collect();
    assert_eq!(approved.len(), 9, "{approved:?}");
    let per_world = jobs.div_ceil(worlds);
    let runs = (0..worlds).map(|id| {
        let app = app.clone();
        tokio::spawn(async move {
            let mut w = World::new(id, seed);
            while w.stats.accepted < per_world {
                step(&app, &mut w).await;
            }
            w
        })
    });
    let mut worlds_done = Vec::new();
    for run in futures::future::join_all(runs).await {
        worlds_done.push(run.unwrap());
    }
    // Every job's final status, read once from the store (the API shows the same column).
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id, case_ref, status FROM outreach").fetch_all(app.state.store.pool()).await.unwrap();
    let statuses: BTreeMap<String, (String, String)> =
        rows.into_iter().map(|(id, case_ref, status)| (id, (case_ref, status))).collect();
    let mut total = Stats::default();
    let mut disagreements = Vec::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for mut w in worlds_done {
        final_check(&app, &statuses, &mut w).await;
        let (s, d, o) = (w.stats, w.disagreements, w.outcomes);
        for (k, n) in o {
            *outcomes.entry(k).or_default() += n;
        }
        total.accepted += s.accepted;
        total.worker += s.worker;
        total.calls += s.calls;
        total.stopped_by_calls += s.stopped_by_calls;
        total.replies += s.replies;
        total.survey_answers += s.survey_answers;
        total.cancels += s.cancels;
        total.final_checked += s.final_checked;
        total.sent += s.sent;
        disagreements.extend(d);
    }
    println!(
        "differential (seed {seed}, {worlds} worlds, {:.1} s): {} jobs accepted and compared, {} worker decisions \
         ({} sent), {} calls (stopping {} jobs), {} replies ({} survey answers), {} cancels, {} final statuses; \
         {} disagreements",
        started.elapsed().as_secs_f64(),
        total.accepted,
        total.worker,
        total.sent,
        total.calls,
        total.stopped_by_calls,
        total.replies,
        total.survey_answers,
        total.cancels,
        total.final_checked,
        disagreements.len()
    );
    println!("  decisions at acceptance: {outcomes:?}");
    for d in disagreements.iter().take(15) {
        println!("  {d}");
    }
    assert!(disagreements.is_empty(), "{} disagreements (the first above)", disagreements.len());
    // The comparison means something only if the run reached every rule (rule 14 aside: every
    // template is approved here).
    let reached: BTreeSet<&str> = outcomes.keys().map(|k| k.split(' ').nth(1).unwrap()).collect();
    for code in safereach::domain::ReasonCode::ALL {
        if *code != safereach::domain::ReasonCode::NoApprovedTemplate {
            assert!(reached.contains(code.as_str()), "no job reached {code}: {outcomes:?}");
        }
    }
    assert!(outcomes.contains_key("hold outside_safe_hours") && outcomes.contains_key("defer outside_safe_hours"));
    for survey in ["send -", "block no_consent", "block duplicate", "block written_unsafe", "defer outside_safe_hours"]
    {
        assert!(outcomes.contains_key(&format!("survey:{survey}")), "no survey {survey}: {outcomes:?}");
    }
    assert!(total.survey_answers > 0, "no reply was read as a survey's answer: {total:?}");
    assert!(total.accepted >= jobs && total.sent > jobs / 20 && total.stopped_by_calls > 0, "{total:?}");
    if let Ok(app) = Arc::try_unwrap(app) {
        app.stop().await;
    }
}

fn jobs_wanted(default: usize) -> usize {
    std::env::var("SAFEREACH_DIFF_JOBS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_jobs_agree_with_a_second_reading_of_the_rules() {
    on_backend(Backend::Sqlite, differential(jobs_wanted(10_000), 8)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_jobs_agree_on_postgres_and_redis() {
    on_backend(Backend::PostgresRedis, differential(jobs_wanted(10_000) / 10, 4)).await;
}
