//! The performance report the service gives its commissioner: a month (or a quarter) of outreach,
//! decisions, messages, replies, calls and how quickly victims were contacted.
//!
//! Everything is counted from records that hold no personal data (the event table, codes, times,
//! and the case's referral source, crime categories and local authority), so a report comes out
//! the same after retention has redacted the period's messages, or a case has been erased. The
//! one exception is `declined.reasons`: the advocates' own words, shown as recorded until
//! retention (`SAFEREACH_RETENTION_CALL_REASON_DAYS`) or erasure removes them.
//! `report` returns a plain serialisable struct: the API, the CLI and the staff pages render it.

mod commissioner;
mod csv;
mod period;
mod staffed_hours;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use commissioner::{CountPercent, DeclinedCounts, NO_REASON_GIVEN, REASON_REMOVED, SurveyCounts};
use commissioner::{declined, percent, survey_counts};
pub use csv::to_csv;
pub use period::{Period, PeriodInfo};
pub use staffed_hours::{OutsideItem, StaffedHoursReport, report_with_staffed_hours, staffed_hours};

use crate::domain::policy::PolicyConfig;
use crate::domain::reply::ReplyClass;
use crate::domain::{Channel, Kind, MessageStatus, Outcome, ReasonCode};
use crate::store::{AcceptedRow, CaseRow, DeclinedRow, MessageRow, Result, Store};

/// Counts by a code. Every known code is present (0 when none), so reports line up month by month.
pub type Counts = BTreeMap<String, u64>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Report {
    pub period: PeriodInfo,
    /// The 2015 report's first line: cases referred in the period whom we reached within 24 hours
    /// of referral (a call answered, or a pre-text delivered).
    pub contacted_within_24h: CountPercent,
    pub outreach: OutreachCounts,
    /// The first decision of each job accepted in the period (the answer the triage system got).
    pub decisions: DecisionCounts,
    /// Decisions taken again in the period, by the worker before sending or by staff on release.
    /// A job decided again several times counts each time; these never change `decisions`.
    pub redecisions: DecisionCounts,
    /// The 2015 performance report's non-conversion headings, with the codes behind each. Each
    /// pre-text and pack accepted in the period counts under the heading of its final outcome (its
    /// last decision or cancellation before the period's end), so under one heading at most.
    /// Surveys, sent at the end of service, are under none.
    pub headings: Vec<Heading>,
    pub messages: MessageCounts,
    pub replies: ReplyCounts,
    pub suppressions: SuppressionCounts,
    pub calls: CallCounts,
    pub contact: ContactCounts,
    /// Victims who declined the service on a call in the period, and the reasons they gave.
    pub declined: DeclinedCounts,
    /// The Tier 1 satisfaction survey: surveys sent in the period and their answers.
    pub survey: SurveyCounts,
    /// Urgent replies that arrived outside staffed hours and how long each waited for a person
    /// (`staffed_hours`; given by the API, the CLI and the staff page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staffed_hours: Option<StaffedHoursReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OutreachCounts {
    /// Outreach jobs accepted in the period.
    pub total: u64,
    /// `priority_pretext`, `information_pack`.
    pub by_kind: Counts,
    /// The referral source the triage system gave (`unknown` when none).
    pub by_referral_source: Counts,
    /// `safety_sensitive`, `other_priority`, `non_priority`: the priority list's own groups. A job
    /// is in the first group any of its categories belongs to.
    pub by_category_group: Counts,
    /// Each crime category; a job with two categories counts under both.
    pub by_category: Counts,
    /// The local authority the triage system gave (`unknown` when none).
    pub by_local_authority: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecisionCounts {
    pub total: u64,
    /// `send`, `defer`, `hold`, `block`.
    pub by_outcome: Counts,
    /// Every reason code of SAFE-CONTACT.md (sends have none and are not in here).
    pub by_reason: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Heading {
    /// Stable key for the heading.
    #[schema(example = "no_safe_phone_contact")]
    pub key: String,
    /// The heading as the 2015 report words it.
    #[schema(example = "No contacts – safe phone contact for DV and hate referrals not provided")]
    pub title: String,
    /// What is counted: reason codes of jobs' final decisions, or a figure of this report.
    #[schema(example = json!(["no_safe_number"]))]
    pub counts: Vec<String>,
    pub count: u64,
    /// count / cases referred in the period × 100, one decimal, as the 2015 report prints it; 0
    /// when none were referred.
    #[schema(example = 12.5)]
    pub percent: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MessageCounts {
    /// Messages handed to a provider (or refused by it for good) in the period.
    pub total: u64,
    /// Of those, delivered (`delivered`; for letters also `posted`).
    pub delivered: u64,
    /// delivered / total, 4 decimals; null when nothing was sent.
    pub delivery_rate: Option<f64>,
    pub by_channel: BTreeMap<String, ChannelCounts>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChannelCounts {
    pub total: u64,
    pub delivered: u64,
    pub delivery_rate: Option<f64>,
    /// Each message under its status now (its final status, or the last one a provider reported).
    pub by_status: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplyCounts {
    pub total: u64,
    /// From a number we had not texted (no case).
    pub unmatched: u64,
    pub by_classification: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SuppressionCounts {
    /// Numbers suppressed after an opt-out reply (STOP …).
    pub opt_outs: u64,
    /// Numbers suppressed as unsafe or wrong.
    pub unsafe_numbers: u64,
    /// Opt-outs lifted by an opt-in reply (START).
    pub opt_ins: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CallCounts {
    /// Advocates' call attempts made in the period.
    pub attempts: u64,
    /// `answered`, `no_answer`, `voicemail`, `wrong_number`, `declined`.
    pub by_outcome: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ContactCounts {
    /// Cases referred in the period (referral time, else when the case was created).
    pub cases_referred: u64,
    /// Of those, priority cases.
    pub priority_cases: u64,
    /// Priority cases sent a pre-text within 24 hours of referral.
    pub priority_pretext_within_24h: u64,
    /// priority_pretext_within_24h / priority_cases, 4 decimals; null without priority cases.
    pub priority_pretext_within_24h_share: Option<f64>,
    /// Cases referred in the period that had a first contact (a message sent or a call attempt).
    pub cases_contacted: u64,
    /// Median time from referral to first contact, in seconds; null when none was contacted.
    pub median_seconds_to_first_contact: Option<i64>,
    /// Cases with call attempts, none answered or declined, and no message sent.
    pub phone_unsuccessful_no_other_contact: u64,
    /// Cases where the victim declined on a call.
    pub declined: u64,
}

/// The 2015 report's headings and the reason codes behind them. A job accepted in the period
/// counts under the heading of its final decision: its last decision, or its cancellation (which
/// reads as `do_not_contact`), before the period's end. A job first held, then released and sent,
/// is not a non-conversion; a job deferred, then cancelled, or blocked by the worker's decision
/// after an opt-out, is.
pub const HEADINGS: &[(&str, &str, &[&str])] = &[
    (
        "no_safe_phone_contact",
        "No contacts – safe phone contact for DV and hate referrals not provided",
        &["no_safe_number"],
    ),
    ("no_mobile_number", "No contacts – no mobile number for a pre-text", &["no_mobile_number"]),
    ("insufficient_contact_info", "Incorrect/insufficient contact information", &["insufficient_contact_info"]),
    ("written_contact_unsafe", "Written contact not safe or not chosen by the victim", &["written_unsafe"]),
    ("no_consent", "Information pack not requested (no consent)", &["no_consent"]),
    ("do_not_contact", "Asked not to be contacted, or cancelled", &["do_not_contact", "suppressed"]),
    ("duplicate", "Already contacted for this referral", &["duplicate"]),
    ("held_for_review", "Held for a caseworker's review", &["possible_priority", "minor", "number_conflict"]),
];

/// Headings counted from call figures rather than reason codes.
const CALL_HEADINGS: &[(&str, &str, &str)] = &[
    ("phone_unsuccessful", "Phone unsuccessful and no other contact", "contact.phone_unsuccessful_no_other_contact"),
    ("declined", "Declined", "contact.declined"),
];

/// What a report is made of, as read from the store.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub accepted: Vec<AcceptedRow>,
    pub redecisions: Vec<(Option<String>, Option<String>)>,
    pub messages: Vec<MessageRow>,
    /// (message id, status) of status reports, oldest first.
    pub statuses: Vec<(String, String)>,
    pub replies: Vec<(String, i64)>,
    pub suppressions: Vec<(String, Option<String>)>,
    pub calls: Vec<String>,
    pub cases: Vec<CaseRow>,
    /// Cases referred in the period contacted within 24 hours of referral.
    pub contacted_within_24h: u64,
    /// Declined calls of the period, oldest first.
    pub declined: Vec<DeclinedRow>,
    /// Each survey message sent in the period, with the score of its latest answer.
    pub surveys: Vec<(String, Option<i64>)>,
}

/// The report for `period`.
pub async fn report(store: &Store, policy: &PolicyConfig, period: Period) -> Result<Report> {
    let (from, to) = period.bounds(policy.timezone);
    let (from, to) = (from.timestamp_millis(), to.timestamp_millis());
    let facts = Facts {
        accepted: store.report_accepted(from, to).await?,
        redecisions: store.report_redecisions(from, to).await?,
        messages: store.report_messages(from, to).await?,
        statuses: store.report_message_statuses(from, to).await?,
        replies: store.report_replies(from, to).await?,
        suppressions: store.report_suppressions(from, to).await?,
        calls: store.report_calls(from, to).await?,
        cases: store.report_cases(from, to).await?,
        contacted_within_24h: u64::try_from(store.report_contacted_within_24h(from, to).await?).unwrap_or(0),
        declined: store.report_declined_calls(from, to).await?,
        surveys: store.report_surveys(from, to).await?,
    };
    Ok(build(period, policy, &facts))
}

/// A report with nothing in it: every known code at 0 (an example, and the shape of any month).
pub fn empty(period: Period, timezone: chrono_tz::Tz) -> Report {
    build(period, &PolicyConfig { timezone, ..PolicyConfig::default() }, &Facts::default())
}

/// The figures of a report from its facts.
pub fn build(period: Period, policy: &PolicyConfig, facts: &Facts) -> Report {
    let mut outreach = OutreachCounts {
        total: facts.accepted.len() as u64,
        by_kind: zeroed(Kind::ALL.map(Kind::as_str)),
        by_referral_source: Counts::new(),
        by_category_group: zeroed(["safety_sensitive", "other_priority", "non_priority"]),
        by_category: Counts::new(),
        by_local_authority: Counts::new(),
    };
    let mut decisions = DecisionCounts::empty();
    // Each job once, by the reason of its final decision (a send has none). The headings are about
    // reaching victims: a survey, sent at the end of service, is under none of them.
    let mut final_reasons = Counts::new();
    for row in &facts.accepted {
        add(&mut outreach.by_kind, &row.kind);
        add(&mut outreach.by_referral_source, known(&row.referral_source));
        add(&mut outreach.by_local_authority, known(&row.local_authority));
        let categories: Vec<&str> = row.categories.split(',').filter(|c| !c.is_empty()).collect();
        add(&mut outreach.by_category_group, category_group(&categories, policy));
        for category in &categories {
            add(&mut outreach.by_category, category);
        }
        decisions.add(row.outcome.as_deref(), row.reason.as_deref());
        if let Some(reason) = row.final_reason.as_deref()
            && row.kind != Kind::SatisfactionSurvey.as_str()
        {
            add(&mut final_reasons, reason);
        }
    }
    let mut redecisions = DecisionCounts::empty();
    for (outcome, reason) in &facts.redecisions {
        // A render failure holds the job without an outcome of the policy's.
        redecisions.add(Some(outcome.as_deref().unwrap_or("hold")), reason.as_deref());
    }

    let messages = message_counts(facts);
    let replies = reply_counts(facts);
    let mut suppressions = SuppressionCounts { opt_outs: 0, unsafe_numbers: 0, opt_ins: 0 };
    for (kind, reason) in &facts.suppressions {
        match (kind.as_str(), reason.as_deref()) {
            ("suppressed", Some("opt_out")) => suppressions.opt_outs += 1,
            ("suppressed", Some("unsafe")) => suppressions.unsafe_numbers += 1,
            ("suppression_lifted", _) => suppressions.opt_ins += 1,
            _ => {}
        }
    }
    let mut calls = CallCounts {
        attempts: facts.calls.len() as u64,
        by_outcome: zeroed(["answered", "no_answer", "voicemail", "wrong_number", "declined"]),
    };
    for outcome in &facts.calls {
        add(&mut calls.by_outcome, outcome);
    }
    let contact = contact_counts(&facts.cases);
    let referred = contact.cases_referred;

    let mut headings: Vec<Heading> = HEADINGS
        .iter()
        .map(|(key, title, codes)| Heading {
            key: key.to_string(),
            title: title.to_string(),
            counts: codes.iter().map(|c| c.to_string()).collect(),
            count: codes.iter().map(|c| final_reasons.get(*c).copied().unwrap_or(0)).sum(),
            percent: 0.0,
        })
        .collect();
    for (key, title, figure) in CALL_HEADINGS {
        let count = match *key {
            "phone_unsuccessful" => contact.phone_unsuccessful_no_other_contact,
            _ => contact.declined,
        };
        headings.push(Heading {
            key: key.to_string(),
            title: title.to_string(),
            counts: vec![figure.to_string()],
            count,
            percent: 0.0,
        });
    }
    for heading in &mut headings {
        heading.percent = percent(heading.count, referred);
    }

    Report {
        period: period.describe(policy.timezone),
        contacted_within_24h: CountPercent {
            count: facts.contacted_within_24h,
            percent: percent(facts.contacted_within_24h, referred),
        },
        outreach,
        decisions,
        redecisions,
        headings,
        messages,
        replies,
        suppressions,
        calls,
        contact,
        declined: declined(&facts.declined, referred),
        survey: survey_counts(&facts.surveys),
        staffed_hours: None,
    }
}

impl DecisionCounts {
    fn empty() -> DecisionCounts {
        DecisionCounts {
            total: 0,
            by_outcome: zeroed([Outcome::Send, Outcome::Defer, Outcome::Hold, Outcome::Block].map(Outcome::as_str)),
            by_reason: zeroed(ReasonCode::ALL.iter().map(|r| r.as_str())),
        }
    }

    fn add(&mut self, outcome: Option<&str>, reason: Option<&str>) {
        self.total += 1;
        if let Some(outcome) = outcome {
            add(&mut self.by_outcome, outcome);
        }
        if let Some(reason) = reason {
            add(&mut self.by_reason, reason);
        }
    }
}

/// Statuses a message on each channel can end in (others still show when they occur).
fn statuses(channel: Channel) -> &'static [MessageStatus] {
    use MessageStatus::*;
    match channel {
        Channel::Sms => &[Sent, Delivered, Failed, Undelivered],
        Channel::Email => &[Sent, Delivered, Failed, Bounced],
        Channel::Letter => &[Sent, Printed, Posted, Delivered, Failed, Returned],
    }
}

fn is_delivered(channel: &str, status: &str) -> bool {
    status == "delivered" || (channel == "letter" && status == "posted")
}

fn message_counts(facts: &Facts) -> MessageCounts {
    let rows = &facts.messages;
    let mut latest: BTreeMap<&str, &str> = BTreeMap::new();
    for (message_id, status) in &facts.statuses {
        latest.insert(message_id, status);
    }
    let mut by_channel: BTreeMap<String, ChannelCounts> = Channel::ALL
        .iter()
        .map(|c| {
            let counts = ChannelCounts {
                total: 0,
                delivered: 0,
                delivery_rate: None,
                by_status: zeroed(statuses(*c).iter().map(|s| s.as_str())),
            };
            (c.as_str().to_string(), counts)
        })
        .collect();
    for row in rows {
        let channel = known(&row.channel);
        let status = latest.get(row.message_id.as_str()).copied().or(row.status.as_deref()).unwrap_or("sent");
        let counts = by_channel.entry(channel.to_string()).or_insert_with(|| ChannelCounts {
            total: 0,
            delivered: 0,
            delivery_rate: None,
            by_status: Counts::new(),
        });
        counts.total += 1;
        counts.delivered += u64::from(is_delivered(channel, status));
        add(&mut counts.by_status, status);
    }
    for counts in by_channel.values_mut() {
        counts.delivery_rate = rate(counts.delivered, counts.total);
    }
    let total = by_channel.values().map(|c| c.total).sum();
    let delivered = by_channel.values().map(|c| c.delivered).sum();
    MessageCounts { total, delivered, delivery_rate: rate(delivered, total), by_channel }
}

fn reply_counts(facts: &Facts) -> ReplyCounts {
    let rows = &facts.replies;
    let mut counts = ReplyCounts {
        total: rows.len() as u64,
        unmatched: rows.iter().filter(|(_, matched)| *matched == 0).count() as u64,
        by_classification: zeroed(ReplyClass::ALL.iter().map(|c| c.as_str())),
    };
    for (classification, _) in rows {
        add(&mut counts.by_classification, classification);
    }
    counts
}

const DAY_MS: i64 = 24 * 3600 * 1000;

fn contact_counts(cases: &[CaseRow]) -> ContactCounts {
    let priority: Vec<_> = cases.iter().filter(|c| c.priority.0).collect();
    let within =
        priority.iter().filter(|c| c.first_pretext.is_some_and(|t| t - c.referred_at <= DAY_MS)).count() as u64;
    let mut waits: Vec<i64> = cases
        .iter()
        .filter_map(|c| {
            let first = [c.first_sent, c.first_call].into_iter().flatten().min()?;
            Some((first - c.referred_at).max(0))
        })
        .collect();
    waits.sort_unstable();
    let median_ms = match waits.len() {
        0 => None,
        n if n % 2 == 1 => Some(waits[n / 2]),
        n => Some((waits[n / 2 - 1] + waits[n / 2]) / 2),
    };
    ContactCounts {
        cases_referred: cases.len() as u64,
        priority_cases: priority.len() as u64,
        priority_pretext_within_24h: within,
        priority_pretext_within_24h_share: rate(within, priority.len() as u64),
        cases_contacted: waits.len() as u64,
        median_seconds_to_first_contact: median_ms.map(|ms| ms / 1000),
        phone_unsuccessful_no_other_contact: cases
            .iter()
            .filter(|c| c.calls > 0 && c.answered == 0 && c.declined == 0 && c.first_sent.is_none())
            .count() as u64,
        declined: cases.iter().filter(|c| c.declined > 0).count() as u64,
    }
}

/// The group of the priority list a job's categories fall in.
pub fn category_group(categories: &[&str], policy: &PolicyConfig) -> &'static str {
    let any_in = |list: &[String]| categories.iter().any(|c| list.iter().any(|l| l == c));
    if any_in(&policy.safety_sensitive_categories) {
        "safety_sensitive"
    } else if any_in(&policy.priority_categories) {
        "other_priority"
    } else {
        "non_priority"
    }
}

fn zeroed<'a>(keys: impl IntoIterator<Item = &'a str>) -> Counts {
    keys.into_iter().map(|k| (k.to_string(), 0)).collect()
}

fn add(counts: &mut Counts, key: &str) {
    *counts.entry(key.to_string()).or_insert(0) += 1;
}

fn known(value: &Option<String>) -> &str {
    value.as_deref().filter(|v| !v.trim().is_empty()).unwrap_or("unknown")
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 / whole as f64 * 10_000.0).round() / 10_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_fall_in_the_first_group_they_belong_to() {
        let policy = PolicyConfig::default();
        assert_eq!(category_group(&["robbery", "domestic_abuse"], &policy), "safety_sensitive");
        assert_eq!(category_group(&["robbery", "kidnap"], &policy), "other_priority");
        assert_eq!(category_group(&["robbery"], &policy), "non_priority");
        assert_eq!(category_group(&[], &policy), "non_priority");
    }

    #[test]
    fn every_reason_code_is_under_at_most_one_heading() {
        let mut seen = std::collections::BTreeSet::new();
        for (_, _, codes) in HEADINGS {
            for code in *codes {
                assert!(ReasonCode::parse(code).is_some(), "{code} is a reason code");
                assert!(seen.insert(*code), "{code} is under two headings");
            }
        }
    }

    #[test]
    fn an_empty_month_has_every_code_at_zero_and_no_rates() {
        let r = empty(Period::Month { year: 2026, month: 11 }, chrono_tz::Europe::London);
        assert_eq!(r.decisions.by_reason.len(), ReasonCode::ALL.len());
        assert!(r.decisions.by_reason.values().all(|n| *n == 0));
        assert_eq!(r.messages.by_channel["sms"].by_status.len(), 4);
        assert_eq!((r.messages.delivery_rate, r.contact.median_seconds_to_first_contact), (None, None));
        assert_eq!(r.headings.len(), HEADINGS.len() + CALL_HEADINGS.len());
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        let case = |referred_at, first_sent| CaseRow {
            priority: crate::store::Flag(true),
            referred_at,
            first_pretext: first_sent,
            first_sent,
            first_call: None,
            calls: 0,
            answered: 0,
            declined: 0,
        };
        let cases = [
            case(0, Some(10_000)),
            case(0, Some(30_000)),
            case(0, None),
            case(1_000, Some(2_000)),
            case(0, Some(50_000)),
        ];
        let c = contact_counts(&cases);
        // Waits of 1, 10, 30 and 50 s: the median is 20 s.
        assert_eq!(c.median_seconds_to_first_contact, Some(20));
        assert_eq!((c.cases_referred, c.cases_contacted, c.priority_pretext_within_24h), (5, 4, 4));
    }

    #[test]
    fn headings_count_final_decisions_and_decisions_count_first_ones() {
        let job = |first: (&str, Option<&str>), last: (&str, Option<&str>)| AcceptedRow {
            kind: "priority_pretext".into(),
            outcome: Some(first.0.into()),
            reason: first.1.map(Into::into),
            final_outcome: Some(last.0.into()),
            final_reason: last.1.map(Into::into),
            ..AcceptedRow::default()
        };
        let facts = Facts {
            accepted: vec![
                // Deferred, then cancelled.
                job(("defer", Some("outside_safe_hours")), ("block", Some("do_not_contact"))),
                // Sent at acceptance's word, blocked by the worker after a STOP.
                job(("send", None), ("block", Some("suppressed"))),
                // Held, released and sent.
                job(("hold", Some("minor")), ("send", None)),
                // Held and still held.
                job(("hold", Some("number_conflict")), ("hold", Some("number_conflict"))),
                // Deferred and still waiting: under no heading.
                job(("defer", Some("calls_first")), ("defer", Some("calls_first"))),
            ],
            ..Facts::default()
        };
        let mut facts = facts;
        // A survey without consent is no "information pack not requested": under no heading.
        let mut survey = job(("block", Some("no_consent")), ("block", Some("no_consent")));
        survey.kind = "satisfaction_survey".into();
        facts.accepted.push(survey);
        let r = build(Period::Month { year: 2026, month: 11 }, &PolicyConfig::default(), &facts);
        let count = |key: &str| r.headings.iter().find(|h| h.key == key).unwrap().count;
        assert_eq!(count("no_consent"), 0);
        assert_eq!(r.decisions.by_reason["no_consent"], 1, "its decision still counts");
        assert_eq!(count("do_not_contact"), 2);
        assert_eq!(count("held_for_review"), 1);
        let reason_headings: u64 = r.headings.iter().take(HEADINGS.len()).map(|h| h.count).sum();
        assert_eq!(reason_headings, 3, "one heading per job at most");
        assert_eq!((r.decisions.by_reason["minor"], r.decisions.by_reason["do_not_contact"]), (1, 0));
        assert_eq!(r.decisions.by_outcome["defer"], 2);
        assert_eq!(r.outreach.by_kind["satisfaction_survey"], 1);
    }

    #[test]
    fn percents_have_one_decimal_and_are_0_without_a_whole() {
        assert_eq!(percent(1, 3), 33.3);
        assert_eq!(percent(2, 3), 66.7);
        assert_eq!(percent(7, 7), 100.0);
        assert_eq!(percent(0, 0), 0.0);
        // Headings and the first line are percents of the cases referred.
        let facts = Facts {
            cases: (0..8)
                .map(|_| CaseRow {
                    priority: crate::store::Flag(false),
                    referred_at: 0,
                    first_pretext: None,
                    first_sent: None,
                    first_call: None,
                    calls: 0,
                    answered: 0,
                    declined: 0,
                })
                .collect(),
            contacted_within_24h: 3,
            ..Facts::default()
        };
        let r = build(Period::Month { year: 2026, month: 11 }, &PolicyConfig::default(), &facts);
        assert_eq!((r.contacted_within_24h.count, r.contacted_within_24h.percent), (3, 37.5));
        assert!(r.headings.iter().all(|h| h.percent == 0.0));
    }

    #[test]
    fn rates_round_to_four_places() {
        assert_eq!(rate(2, 3), Some(0.6667));
        assert_eq!(rate(0, 0), None);
    }
}
