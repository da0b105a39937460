//! The safe-contact decision (SAFE-CONTACT.md): one pure function, rules applied in order,
//! the first that matches decides.
//!
//! Interpretations settled with the lead (also in `docs/safe-contact.md`):
//! - A pre-text implies priority. Rule 12 counts from `referral.referred_at`, else
//!   `history.accepted_at`, else `now`.
//! - Rule 3 looks at the route the job would use with suppressions ignored: when its address is
//!   suppressed the job is blocked. There is no falling back around a suppressed address.
//! - Rule 13: when no allowed minute exists within 8 days the job is held (`outside_safe_hours`)
//!   for a person rather than deferred to a guess.
//! - A deferral carries the route; `until` is the next allowed minute (rule 13) or referral + 24 h
//!   (rule 12, re-decided then or when a call is recorded).
//! - A case remembers (v2): safety-sensitivity and "looks priority" read the union of the
//!   categories of every job accepted on the case (`CaseHistory::case_categories`, with this
//!   job's own); a job's effective priority is its own or the case's (`case_priority`).
//! - The satisfaction survey (issue 15): rule 2 needs `consent.survey`; it goes by email when
//!   that is the preferred method and usable, else to the first textable number, never by letter;
//!   a safety-sensitive case only by its preferred method (SMS or email) marked safe, as a pack.
//!   Rules 4 and 12 are about packs and rule 6 about pre-texts only; rule 11 allows one survey per
//!   case.

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeDelta, Utc};

use super::contact::{PostalAddress, normalise_email, normalise_uk_mobile, numbers_of_others_in, recipient_key};
use super::request::{Contact, Kind, Method, OutreachRequest, Phone, Victim};
use super::safe_times::TimeRules;
use super::{CaseHistory, Channel, Decision, ReasonCode, Recipient, Route, template_names};

/// Crime categories whose victims get discreet messages and no unchosen written contact.
pub const DEFAULT_SAFETY_SENSITIVE_CATEGORIES: &[&str] = &[
    "domestic_abuse",
    "sexual_violence",
    "hate_crime",
    "stalking",
    "forced_marriage",
    "honour_based_abuse",
    "modern_slavery",
    "trafficking",
];

/// Priority categories besides the safety-sensitive ones.
pub const DEFAULT_OTHER_PRIORITY_CATEGORIES: &[&str] = &[
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
    // Fraud and cyber-crime victims the triage system marks as needing the specialist service;
    // plain `fraud` and `cyber_crime` stay non-priority.
    "fraud_vulnerable",
    "cyber_crime_vulnerable",
];

pub const DEFAULT_PRIORITY_VULNERABILITIES: &[&str] =
    &["under_18", "mental_disorder", "disability", "intimidated", "persistently_targeted"];

/// Rule 4's keywords, exactly as SAFE-CONTACT.md lists them.
pub const DEFAULT_KEYWORDS: &[&str] = &[
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

/// Lists and times the rules depend on. `Default` is the specification's default.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    pub safety_sensitive_categories: Vec<String>,
    pub priority_categories: Vec<String>,
    pub priority_vulnerabilities: Vec<String>,
    /// Rule 4 keywords: `word`, `prefix*`, or `"a quoted phrase"`.
    pub keywords: Vec<String>,
    /// Allowed sending window for SMS, local time in `timezone` (default 08:00–20:00).
    pub quiet_hours: (NaiveTime, NaiveTime),
    pub timezone: chrono_tz::Tz,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        let owned = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PolicyConfig {
            safety_sensitive_categories: owned(DEFAULT_SAFETY_SENSITIVE_CATEGORIES),
            priority_categories: owned(
                &[DEFAULT_SAFETY_SENSITIVE_CATEGORIES, DEFAULT_OTHER_PRIORITY_CATEGORIES].concat(),
            ),
            priority_vulnerabilities: owned(DEFAULT_PRIORITY_VULNERABILITIES),
            keywords: owned(DEFAULT_KEYWORDS),
            quiet_hours: (NaiveTime::MIN + TimeDelta::hours(8), NaiveTime::MIN + TimeDelta::hours(20)),
            timezone: chrono_tz::Europe::London,
        }
    }
}

/// Decide what to do with an outreach job now.
pub fn decide(job: &OutreachRequest, history: &CaseHistory, now: DateTime<Utc>, config: &PolicyConfig) -> Decision {
    use Decision::{Block, Hold};
    use ReasonCode::*;

    let sensitive = is_case_safety_sensitive(job, history, config);
    // Rule 1.
    if history.case_cancelled || history.outreach_cancelled || job.contact.do_not_contact {
        return Block(DoNotContact);
    }
    // Rule 1a: the victim said no to the service on a call.
    if history.declined {
        return Block(Declined);
    }
    // Rule 2: pre-texts need no consent, they precede the call; a survey needs its own.
    if !has_consent(job) {
        return Block(NoConsent);
    }
    // The route is chosen ignoring suppressions, so that rule 3 can block rather than fall back.
    let route = choose_route(job, sensitive);
    // Rule 3.
    if let Ok(route) = &route
        && history.suppressed.contains(&recipient_key(&route.recipient))
    {
        return Block(Suppressed);
    }
    // Rule 4.
    if job.kind == Kind::InformationPack
        && !is_effectively_priority(job, history)
        && looks_priority(job, history, config)
    {
        return Hold(PossiblePriority);
    }
    // Rule 5.
    if is_under_18(&job.victim, now, config.timezone) {
        return Hold(Minor);
    }
    let route = match route {
        Ok(route) => route,
        // Rule 6: a safety-sensitive victim may still be reached another way; a person decides.
        Err(NoRoute::NoTextableNumber) if sensitive => return Hold(NoSafeNumber),
        Err(NoRoute::NoTextableNumber) => return Block(NoMobileNumber),
        // Rule 8 (rule 7 needs a chosen number, which these lack).
        Err(NoRoute::WrittenUnsafe) => return Block(WrittenUnsafe),
        // Rules 9 and 10.
        Err(NoRoute::InsufficientContactInfo) => return Block(InsufficientContactInfo),
    };
    // Rule 7: someone else's number on any case, this one and this very request included.
    if let Recipient::Phone { number } = &route.recipient
        && (history.numbers_of_others.contains(number) || numbers_of_others_in(&job.contact).contains(number))
    {
        return Hold(NumberConflict);
    }
    // Rule 11.
    if is_duplicate(job.kind, history) {
        return Block(Duplicate);
    }
    // Rule 12.
    if let Some(until) = calls_first_until(job, history, now) {
        return Decision::Defer { until, reason: CallsFirst, route };
    }
    // Rule 13.
    let time_rules = time_rules_for(job, route.channel, config);
    if !time_rules.allows(now) {
        return match time_rules.next_allowed(now) {
            Some(until) => Decision::Defer { until, reason: OutsideSafeHours, route },
            // No allowed minute in 8 days (e.g. a safe window wholly outside quiet hours): rather
            // than guess, a person looks.
            None => Hold(OutsideSafeHours),
        };
    }
    // Rule 14.
    if !is_approved(&route, history) {
        return Hold(NoApprovedTemplate);
    }
    // Rule 15.
    Decision::Send(route)
}

/// Why a job has no route, each mapping to its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoute {
    /// Rule 6: a pre-text without a textable number.
    NoTextableNumber,
    /// Rule 8: a safety-sensitive information pack or survey without a preferred written method
    /// it may go by, or whose preferred one is not marked safe.
    WrittenUnsafe,
    /// Rules 9 and 10: the address is incomplete or invalid (or, when not safety-sensitive, no
    /// channel is usable at all).
    InsufficientContactInfo,
}

/// The channel, template and normalised recipient the job would use, suppressions aside.
pub fn choose_route(job: &OutreachRequest, sensitive: bool) -> Result<Route, NoRoute> {
    let contact = &job.contact;
    let (channel, recipient) = match job.kind {
        Kind::PriorityPretext => {
            let number = textable_number(&contact.phones, sensitive).ok_or(NoRoute::NoTextableNumber)?;
            (Channel::Sms, Recipient::Phone { number })
        }
        // A safety-sensitive case never falls back: only its preferred written method will do.
        Kind::InformationPack if sensitive => preferred_route(contact, &Channel::ALL)?,
        // Otherwise the preferred written method, then the first usable of SMS, email, letter.
        Kind::InformationPack => preferred_written_channel(contact)
            .into_iter()
            .chain(Channel::ALL)
            .find_map(|channel| usable_address(contact, channel, false).map(|r| (channel, r)))
            .ok_or(NoRoute::InsufficientContactInfo)?,
        // A survey goes as a text or an email, never a letter; safety-sensitive: as for a pack.
        Kind::SatisfactionSurvey if sensitive => preferred_route(contact, &SURVEY_CHANNELS)?,
        // Otherwise by email when that is the preferred method and usable, else by text.
        Kind::SatisfactionSurvey => {
            let email = (preferred_written_channel(contact) == Some(Channel::Email))
                .then(|| usable_address(contact, Channel::Email, false))
                .flatten()
                .map(|r| (Channel::Email, r));
            email
                .or_else(|| usable_address(contact, Channel::Sms, false).map(|r| (Channel::Sms, r)))
                .ok_or(NoRoute::InsufficientContactInfo)?
        }
    };
    Ok(Route { channel, template: template_for(job.kind, channel, sensitive), recipient })
}

/// The channels a satisfaction survey may go by.
pub const SURVEY_CHANNELS: [Channel; 2] = [Channel::Sms, Channel::Email];

/// A safety-sensitive case's only route: its preferred written method, when it is one of
/// `allowed`, marked safe (rule 8) and valid (rules 9, 10).
fn preferred_route(contact: &Contact, allowed: &[Channel]) -> Result<(Channel, Recipient), NoRoute> {
    let channel = preferred_written_channel(contact).filter(|c| allowed.contains(c)).ok_or(NoRoute::WrittenUnsafe)?;
    match usable_address(contact, channel, true) {
        Some(recipient) => Ok((channel, recipient)),
        None if is_marked_safe(contact, channel) => Err(NoRoute::InsufficientContactInfo),
        None => Err(NoRoute::WrittenUnsafe),
    }
}

/// Rule 2: an information pack needs `consent.information_pack`, a survey `consent.survey`; a
/// pre-text needs none.
pub fn has_consent(job: &OutreachRequest) -> bool {
    match job.kind {
        Kind::PriorityPretext => true,
        Kind::InformationPack => job.consent.information_pack,
        Kind::SatisfactionSurvey => job.consent.survey,
    }
}

/// Any of the job's own crime categories is safety-sensitive (what the store records for the case
/// at acceptance).
pub fn is_safety_sensitive(job: &OutreachRequest, config: &PolicyConfig) -> bool {
    any_listed(&job.crime.categories, &config.safety_sensitive_categories)
}

/// The case is safety-sensitive: it was found so when a job was accepted, or any category of
/// this job or of any job accepted on the case is. A case once safety-sensitive stays so.
pub fn is_case_safety_sensitive(job: &OutreachRequest, history: &CaseHistory, config: &PolicyConfig) -> bool {
    history.case_safety_sensitive
        || is_safety_sensitive(job, config)
        || any_listed(&history.case_categories, &config.safety_sensitive_categories)
}

/// Rule 4: a priority category (of this job or of the case) or vulnerability, or keywords in the
/// crime summary. (A safety-sensitive category counts even if a configuration left it off the
/// priority list.)
pub fn looks_priority(job: &OutreachRequest, history: &CaseHistory, config: &PolicyConfig) -> bool {
    is_case_safety_sensitive(job, history, config)
        || any_listed(&job.crime.categories, &config.priority_categories)
        || any_listed(&history.case_categories, &config.priority_categories)
        || any_listed(&job.victim.vulnerabilities, &config.priority_vulnerabilities)
        || job.crime.summary.as_deref().is_some_and(|s| matches_keywords(s, &config.keywords))
}

fn any_listed<'a>(values: impl IntoIterator<Item = &'a String>, list: &[String]) -> bool {
    values.into_iter().any(|v| list.iter().any(|l| l.trim().eq_ignore_ascii_case(v.trim())))
}

/// Whether `text` contains any keyword. Text and keywords are split into words on anything that
/// is not a letter, case-insensitively. A plain entry must equal a whole word, an entry ending in
/// `*` must start a word, and a (quoted) phrase must match consecutive words.
pub fn matches_keywords(text: &str, keywords: &[String]) -> bool {
    let words = words_of(text);
    keywords.iter().any(|keyword| matches_keyword(&words, keyword))
}

fn matches_keyword(words: &[String], keyword: &str) -> bool {
    let keyword = keyword.trim().trim_matches('"');
    let is_prefix = keyword.ends_with('*');
    let wanted = words_of(keyword);
    let Some(last) = wanted.len().checked_sub(1) else { return false };
    words.windows(wanted.len()).any(|run| {
        run.iter().zip(&wanted).enumerate().all(|(i, (have, want))| {
            if is_prefix && i == last { have.starts_with(want.as_str()) } else { have == want }
        })
    })
}

fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphabetic()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// Rule 5: `is_under_18`, or a date of birth less than 18 years before today's local date. A
/// 29 February birthday comes of age on 1 March in other years.
pub fn is_under_18(victim: &Victim, now: DateTime<Utc>, timezone: chrono_tz::Tz) -> bool {
    let today = now.with_timezone(&timezone).date_naive();
    victim.is_under_18 == Some(true) || victim.date_of_birth.is_some_and(|dob| years_between(dob, today) < 18)
}

fn years_between(born: NaiveDate, today: NaiveDate) -> i32 {
    let had_birthday = (today.month(), today.day()) >= (born.month(), born.day());
    today.year() - born.year() - i32::from(!had_birthday)
}

/// The first textable number: the victim's own phone (`belongs_to` victim or absent), a UK mobile,
/// and `safe_to_text` not false (safety-sensitive: explicitly true). Normalised to E.164.
pub fn textable_number(phones: &[Phone], sensitive: bool) -> Option<String> {
    phones
        .iter()
        .filter(|p| p.is_victims() && is_safe(p.safe_to_text, sensitive))
        .find_map(|p| normalise_uk_mobile(&p.number))
}

/// A safe flag lets an address be used when it is not `false`; for a safety-sensitive case only
/// when it is explicitly `true`.
fn is_safe(flag: Option<bool>, sensitive: bool) -> bool {
    if sensitive { flag == Some(true) } else { flag != Some(false) }
}

/// The preferred method when it is a written one (`phone` means calls, which we do not make).
pub fn preferred_written_channel(contact: &Contact) -> Option<Channel> {
    match contact.preferred_method? {
        Method::Sms => Some(Channel::Sms),
        Method::Email => Some(Channel::Email),
        Method::Letter => Some(Channel::Letter),
        Method::Phone => None,
    }
}

/// The normalised recipient on `channel` when its address is usable (valid, complete and safe).
pub fn usable_address(contact: &Contact, channel: Channel, sensitive: bool) -> Option<Recipient> {
    match channel {
        Channel::Sms => textable_number(&contact.phones, sensitive).map(|number| Recipient::Phone { number }),
        Channel::Email => contact
            .email
            .as_ref()
            .filter(|e| is_safe(e.safe, sensitive))
            .and_then(|e| normalise_email(&e.address))
            .map(|address| Recipient::Email { address }),
        Channel::Letter => contact
            .postal
            .as_ref()
            .filter(|p| is_safe(p.safe, sensitive))
            .and_then(PostalAddress::parse)
            .map(PostalAddress::into_recipient),
    }
}

/// Rule 8's "marked safe": explicitly so (for SMS, some phone of the victim's marked safe to text).
fn is_marked_safe(contact: &Contact, channel: Channel) -> bool {
    match channel {
        Channel::Sms => contact.phones.iter().any(|p| p.is_victims() && p.safe_to_text == Some(true)),
        Channel::Email => contact.email.as_ref().is_some_and(|e| e.safe == Some(true)),
        Channel::Letter => contact.postal.as_ref().is_some_and(|p| p.safe == Some(true)),
    }
}

/// Safety-sensitive cases get the discreet variant of every SMS template (a survey by email is
/// the plain one, as a pack by email is).
pub fn template_for(kind: Kind, channel: Channel, sensitive: bool) -> &'static str {
    use template_names::*;
    match (kind, channel, sensitive) {
        (Kind::PriorityPretext, _, true) => PRIORITY_PRETEXT_DISCREET,
        (Kind::PriorityPretext, _, false) => PRIORITY_PRETEXT,
        (Kind::InformationPack, Channel::Sms, true) => INFORMATION_PACK_DISCREET,
        (Kind::InformationPack, _, _) => INFORMATION_PACK,
        (Kind::SatisfactionSurvey, Channel::Sms, true) => SATISFACTION_SURVEY_DISCREET,
        (Kind::SatisfactionSurvey, _, _) => SATISFACTION_SURVEY,
    }
}

/// Rule 11: another job of the same kind for the case was sent or is being sent, or was accepted
/// earlier and is still queued or deferred.
pub fn is_duplicate(kind: Kind, history: &CaseHistory) -> bool {
    match kind {
        Kind::PriorityPretext => history.other_pretext_active,
        Kind::InformationPack => history.other_information_pack_active,
        Kind::SatisfactionSurvey => history.other_survey_active,
    }
}

/// A pre-text is always priority; an information pack when triage says so.
pub fn is_priority(job: &OutreachRequest) -> bool {
    job.kind == Kind::PriorityPretext || job.priority == Some(true)
}

/// The job is priority, or the case is: a case once priority stays so (rules 4 and 12).
pub fn is_effectively_priority(job: &OutreachRequest, history: &CaseHistory) -> bool {
    is_priority(job) || history.case_priority
}

/// Rule 12: a priority victim who did not choose written contact gets calls first. Returns
/// referral + 24 h while fewer than 2 calls are recorded and that time is still ahead.
pub fn calls_first_until(job: &OutreachRequest, history: &CaseHistory, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let applies = job.kind == Kind::InformationPack
        && is_effectively_priority(job, history)
        && preferred_written_channel(&job.contact).is_none()
        && history.call_attempts < 2;
    let referred_at = job.referral.referred_at.or(history.accepted_at).unwrap_or(now);
    let until = referred_at + TimeDelta::hours(24);
    (applies && now < until).then_some(until)
}

/// Rule 13's constraints: the victim's safe times on every channel, quiet hours on SMS only.
pub fn time_rules_for<'a>(job: &'a OutreachRequest, channel: Channel, config: &PolicyConfig) -> TimeRules<'a> {
    TimeRules {
        safe_times: &job.contact.safe_times,
        quiet_hours: (channel == Channel::Sms).then_some(config.quiet_hours),
        timezone: config.timezone,
    }
}

/// Rule 14: an approved version exists for this template on this channel.
pub fn is_approved(route: &Route, history: &CaseHistory) -> bool {
    history.approved_templates.contains(&(route.template.to_string(), route.channel))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
