//! Property tests: safety promises that must hold for any request, history and time.

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, Timelike, Utc};
use proptest::prelude::*;

use super::*;
use crate::domain::contact::addresses_in;
use crate::domain::request::{Consent, Crime, Day, Email, Postal, Referral, SafeTime};
use crate::domain::template_names;

fn one_of<T: Clone + std::fmt::Debug + 'static>(items: Vec<T>) -> impl Strategy<Value = T> {
    prop::sample::select(items)
}

/// `safe`/`safe_to_text`: mostly explicitly true, so that safety-sensitive cases get sent too.
fn safe_flag() -> impl Strategy<Value = Option<bool>> {
    prop_oneof![5 => Just(Some(true)), 3 => Just(None), 2 => Just(Some(false))]
}

fn phone() -> impl Strategy<Value = Phone> {
    (
        one_of(vec![
            "+447700900001",
            "07700 900002",
            "447700900003",
            "+447700900001",
            "0121 496 0000",
            "junk",
            "+44 (0)7700 900004",
        ]),
        one_of(vec![None, Some("victim"), Some("victim"), Some("suspect")]),
        safe_flag(),
    )
        .prop_map(|(number, belongs_to, safe_to_text)| Phone {
            number: number.into(),
            belongs_to: belongs_to.map(str::to_owned),
            safe_to_text,
            safe_to_voicemail: None,
        })
}

fn email() -> impl Strategy<Value = Option<Email>> {
    prop::option::of(
        (one_of(vec!["sam@example.org", "Sam@Example.ORG", "not-an-email", "lee@example.org"]), safe_flag())
            .prop_map(|(address, safe)| Email { address: address.into(), safe }),
    )
}

fn postal() -> impl Strategy<Value = Option<Postal>> {
    prop::option::of(
        (
            one_of(vec![None, Some("Sam Smith"), Some("")]),
            one_of(vec![vec![], vec!["1 High Street", "Birmingham"], vec!["2 Station Road"]]),
            one_of(vec![None, Some("B1 1AA"), Some("cv12ab"), Some("nowhere")]),
            safe_flag(),
        )
            .prop_map(|(name, lines, postcode, safe)| Postal {
                name: name.map(str::to_owned),
                lines: lines.into_iter().map(str::to_owned).collect(),
                postcode: postcode.map(str::to_owned),
                safe,
            }),
    )
}

fn safe_time() -> impl Strategy<Value = SafeTime> {
    let time = (0u32..24, prop::sample::select(vec![0u32, 30]))
        .prop_filter_map("time", |(h, m)| NaiveTime::from_hms_opt(h, m, 0));
    let days =
        prop::sample::subsequence(vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri, Day::Sat, Day::Sun], 1..=7);
    (days, time.clone(), time)
        .prop_filter("from differs from to", |(_, f, t)| f != t)
        .prop_map(|(days, from, to)| SafeTime { days, from, to })
}

/// Any second of 2026–2027 (both years' clock changes included).
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (1_767_225_600i64..1_830_297_600).prop_filter_map("in range", |s| DateTime::from_timestamp(s, 0))
}

prop_compose! {
    fn request()(
        kind in one_of(vec![Kind::PriorityPretext, Kind::InformationPack, Kind::SatisfactionSurvey]),
        priority in prop_oneof![5 => Just(Some(true)), 3 => Just(None), 2 => Just(Some(false))],
        categories in prop::sample::subsequence(
            vec!["burglary", "theft", "criminal_damage", "domestic_abuse", "hate_crime", "stalking", "terrorism"], 1..=2),
        summary in one_of(vec![None, None, Some("house broken into"), Some("exam papers stolen in Essex"),
            Some("her ex-partner smashed the windows"), Some("threats to kill")]),
        vulnerabilities in prop::sample::subsequence(vec!["elderly", "intimidated"], 0..=1),
        date_of_birth in one_of(vec![None, None, None, Some("1990-04-01"), Some("1971-02-03"), Some("2008-11-23"), Some("2012-05-05")]),
        is_under_18 in prop_oneof![6 => Just(None), 3 => Just(Some(false)), 1 => Just(Some(true))],
        phones in prop::collection::vec(phone(), 0..3),
        email in email(),
        postal in postal(),
        preferred_method in prop::option::of(one_of(vec![Method::Phone, Method::Sms, Method::Email, Method::Letter])),
        safe_times in prop::collection::vec(safe_time(), 0..=2),
        do_not_contact in prop::bool::weighted(0.04),
        (consent, survey_consent) in (prop::bool::weighted(0.9), prop::bool::weighted(0.9)),
        referred_hours_ago in prop::option::of(0i64..72),
    ) -> (OutreachRequest, Option<i64>) {
        let owned = |v: Vec<&str>| v.into_iter().map(str::to_owned).collect::<Vec<_>>();
        let request = OutreachRequest {
            request_id: "r".into(),
            case_ref: "c".into(),
            kind,
            priority,
            referral: Referral::default(),
            crime: Crime { categories: owned(categories), summary: summary.map(str::to_owned) },
            victim: Victim {
                date_of_birth: date_of_birth.and_then(|d| d.parse::<NaiveDate>().ok()),
                is_under_18,
                vulnerabilities: owned(vulnerabilities),
                ..Victim::default()
            },
            contact: Contact { phones, email, postal, preferred_method, safe_times, do_not_contact },
            consent: Consent { information_pack: consent, survey: survey_consent, recorded_at: None },
            personalisation: Default::default(),
        };
        (request, referred_hours_ago)
    }
}

fn all_template_pairs() -> Vec<(String, Channel)> {
    [
        template_names::PRIORITY_PRETEXT,
        template_names::PRIORITY_PRETEXT_DISCREET,
        template_names::INFORMATION_PACK,
        template_names::INFORMATION_PACK_DISCREET,
        template_names::SATISFACTION_SURVEY,
        template_names::SATISFACTION_SURVEY_DISCREET,
    ]
    .iter()
    .flat_map(|n| Channel::ALL.map(|c| (n.to_string(), c)))
    .collect()
}

/// What the case remembers of other jobs: a declining call, their categories, whether one was
/// priority, the safety-sensitive flag stored at acceptance.
fn memory() -> impl Strategy<Value = (bool, Vec<String>, bool, bool)> {
    (
        prop::bool::weighted(0.03),
        prop::sample::subsequence(
            vec!["burglary", "fraud", "domestic_abuse", "stalking", "terrorism", "fraud_vulnerable"],
            0..=2,
        )
        .prop_map(|c| c.into_iter().map(str::to_owned).collect()),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.03),
    )
}

/// A job, a history about it (suppressions and others' numbers drawn from its own addresses, as
/// the store would find them) and a time.
fn case() -> impl Strategy<Value = (OutreachRequest, CaseHistory, DateTime<Utc>)> {
    (
        request(),
        instant(),
        prop::bool::weighted(0.02),
        prop::bool::weighted(0.02),
        0u32..4,
        (prop::bool::weighted(0.1), prop::bool::weighted(0.1), prop::bool::weighted(0.1)),
        prop::collection::vec(prop::bool::weighted(0.2), 8),
        prop::collection::vec(prop::bool::weighted(0.15), 8),
        prop::bool::weighted(0.8),
        prop::collection::vec(any::<bool>(), 18),
        (prop::option::of(0i64..72), memory()),
    )
        .prop_map(
            |(
                (mut job, referred_hours_ago),
                now,
                case_cancelled,
                outreach_cancelled,
                call_attempts,
                (other_pretext_active, other_information_pack_active, other_survey_active),
                suppress_mask,
                others_mask,
                approve_all,
                approve_mask,
                (accepted_hours_ago, (declined, case_categories, case_priority, case_safety_sensitive)),
            )| {
                job.referral.referred_at = referred_hours_ago.map(|h| now - TimeDelta::hours(h));
                let addresses: Vec<String> = addresses_in(&job.contact).into_iter().collect();
                let pick = |mask: &[bool], only_phones: bool| {
                    addresses
                        .iter()
                        .zip(mask)
                        .filter(|(a, chosen)| **chosen && (!only_phones || a.starts_with('+')))
                        .map(|(a, _)| a.clone())
                        .collect()
                };
                let approved_templates = all_template_pairs()
                    .into_iter()
                    .zip(approve_mask)
                    .filter(|(_, chosen)| approve_all || *chosen)
                    .map(|(pair, _)| pair)
                    .collect();
                let history = CaseHistory {
                    case_cancelled,
                    outreach_cancelled,
                    accepted_at: accepted_hours_ago.map(|h| now - TimeDelta::hours(h)),
                    call_attempts,
                    declined,
                    // The case's memory holds this job's categories too, as the store's does.
                    case_categories: case_categories.into_iter().chain(job.crime.categories.iter().cloned()).collect(),
                    case_priority: case_priority || is_priority(&job),
                    case_safety_sensitive,
                    other_pretext_active,
                    other_information_pack_active,
                    other_survey_active,
                    suppressed: pick(&suppress_mask, false),
                    numbers_of_others: pick(&others_mask, true),
                    approved_templates,
                };
                (job, history, now)
            },
        )
        // Boxed: the value trees of the strategies built on this one are large, and unboxed they
        // overflow a test thread's stack.
        .boxed()
}

/// A safety-sensitive information pack that gets past rules 1, 2, 4 and 5, so that the choice of
/// channel and address is what is tested.
fn sensitive_pack() -> impl Strategy<Value = (OutreachRequest, CaseHistory, DateTime<Utc>)> {
    sensitive_written(Kind::InformationPack)
}

/// The same for a satisfaction survey (with its consent).
fn sensitive_survey() -> impl Strategy<Value = (OutreachRequest, CaseHistory, DateTime<Utc>)> {
    sensitive_written(Kind::SatisfactionSurvey)
}

fn sensitive_written(kind: Kind) -> impl Strategy<Value = (OutreachRequest, CaseHistory, DateTime<Utc>)> {
    let preferred = prop_oneof![
        3 => Just(Some(Method::Sms)),
        3 => Just(Some(Method::Email)),
        3 => Just(Some(Method::Letter)),
        1 => Just(Some(Method::Phone)),
        1 => Just(None),
    ];
    let category = one_of(vec!["domestic_abuse", "stalking", "hate_crime"]);
    (case(), category, preferred)
        .prop_map(move |((mut job, mut history, now), category, preferred)| {
            job.kind = kind;
            job.contact.preferred_method = preferred;
            job.priority = Some(true);
            job.consent.information_pack = true;
            job.consent.survey = true;
            job.crime.categories = vec![category.to_string()];
            job.contact.do_not_contact = false;
            job.victim = Victim::default();
            history.case_cancelled = false;
            history.outreach_cancelled = false;
            (job, history, now)
        })
        .boxed()
}

/// A survey on a case that is not safety-sensitive, with its consent: by text or by the preferred
/// email.
fn plain_survey() -> impl Strategy<Value = (OutreachRequest, CaseHistory, DateTime<Utc>)> {
    let own = prop::sample::subsequence(vec!["burglary", "theft", "fraud", "terrorism"], 1..=2);
    (case(), own).prop_map(|((mut job, mut history, now), own)| {
        job.kind = Kind::SatisfactionSurvey;
        job.consent.survey = true;
        job.crime.categories = own.into_iter().map(str::to_owned).collect();
        history.case_categories.retain(|c| !PolicyConfig::default().safety_sensitive_categories.contains(c));
        history.case_categories.extend(job.crime.categories.iter().cloned());
        history.case_safety_sensitive = false;
        (job, history, now)
    })
}

/// A follow-up whose own categories are not safety-sensitive, on a case that was: its memory has a
/// safety-sensitive category, or the flag stored at an earlier acceptance.
fn remembered_sensitive_case() -> impl Strategy<Value = (OutreachRequest, CaseHistory, DateTime<Utc>)> {
    let own = prop::sample::subsequence(vec!["burglary", "theft", "fraud", "criminal_damage"], 1..=2);
    let remembered = one_of(vec!["domestic_abuse", "stalking", "hate_crime", "modern_slavery", "(flag)"]);
    (prop_oneof![case(), sensitive_pack(), sensitive_survey()], own, remembered).prop_map(
        |((mut job, mut history, now), own, remembered)| {
            job.crime.categories = own.into_iter().map(str::to_owned).collect();
            history.case_categories.retain(|c| !PolicyConfig::default().safety_sensitive_categories.contains(c));
            history.case_categories.extend(job.crime.categories.iter().cloned());
            match remembered {
                "(flag)" => history.case_safety_sensitive = true,
                category => {
                    history.case_categories.insert(category.to_string());
                }
            }
            (job, history, now)
        },
    )
}

/// The address flag that marks a route's address as explicitly safe, as the request gave it.
fn explicitly_safe(job: &OutreachRequest, route: &Route) -> bool {
    let contact = &job.contact;
    match &route.recipient {
        Recipient::Phone { number } => contact.phones.iter().any(|p| {
            p.is_victims()
                && p.safe_to_text == Some(true)
                && crate::domain::contact::normalise_uk_mobile(&p.number).as_deref() == Some(number)
        }),
        Recipient::Email { .. } => contact.email.as_ref().is_some_and(|e| e.safe == Some(true)),
        Recipient::Postal { .. } => contact.postal.as_ref().is_some_and(|p| p.safe == Some(true)),
    }
}

fn written_method(channel: Channel) -> Method {
    match channel {
        Channel::Sms => Method::Sms,
        Channel::Email => Method::Email,
        Channel::Letter => Method::Letter,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn decide_is_deterministic((job, history, now) in case()) {
        let config = PolicyConfig::default();
        prop_assert_eq!(decide(&job, &history, now, &config), decide(&job, &history, now, &config));
    }

    /// No safety-sensitive victim is sent (or lined up) a message on a channel they did not choose,
    /// or at an address not explicitly marked safe; and their SMS are discreet.
    #[test]
    fn safety_sensitive_cases_only_get_chosen_safe_discreet_contact(
        (job, history, now) in prop_oneof![case(), sensitive_pack(), sensitive_survey()]
    ) {
        let config = PolicyConfig::default();
        let decision = decide(&job, &history, now, &config);
        if is_case_safety_sensitive(&job, &history, &config) && let Some(route) = decision.route() {
            prop_assert!(explicitly_safe(&job, route), "{:?}", decision);
            if job.kind != Kind::PriorityPretext {
                prop_assert_eq!(job.contact.preferred_method, Some(written_method(route.channel)));
            }
            if route.channel == Channel::Sms {
                prop_assert!(route.template.ends_with("_discreet"), "{:?}", decision);
            }
        }
    }

    /// A case remembers: once any job of it was safety-sensitive, a later job that says only
    /// `burglary` never gets a non-discreet template, nor a written channel the victim did not
    /// choose or that is not marked safe.
    #[test]
    fn a_case_once_safety_sensitive_never_gets_a_non_discreet_template_or_an_unsafe_written_channel(
        (job, history, now) in remembered_sensitive_case()
    ) {
        let decision = decide(&job, &history, now, &PolicyConfig::default());
        if let Some(route) = decision.route() {
            prop_assert!(route.template != template_names::PRIORITY_PRETEXT, "{:?}", decision);
            prop_assert!(
                !(route.channel == Channel::Sms && route.template == template_names::INFORMATION_PACK),
                "{:?}", decision
            );
            prop_assert!(
                !(route.channel == Channel::Sms && route.template == template_names::SATISFACTION_SURVEY),
                "{:?}", decision
            );
            prop_assert!(explicitly_safe(&job, route), "{:?}", decision);
            if job.kind != Kind::PriorityPretext {
                prop_assert_eq!(job.contact.preferred_method, Some(written_method(route.channel)));
            }
        }
    }

    /// A victim who declined on a call is never contacted again (rule 1a), whatever the job.
    #[test]
    fn a_declined_case_is_always_blocked((job, history, now) in case()) {
        let decision = decide(&job, &history, now, &PolicyConfig::default());
        if history.declined && !(job.contact.do_not_contact || history.case_cancelled || history.outreach_cancelled) {
            prop_assert_eq!(decision, Decision::Block(ReasonCode::Declined));
        }
    }

    #[test]
    fn an_information_pack_is_never_sent_without_consent((job, history, now) in case()) {
        let decision = decide(&job, &history, now, &PolicyConfig::default());
        if job.kind == Kind::InformationPack && !job.consent.information_pack {
            prop_assert!(decision.route().is_none(), "{:?}", decision);
        }
    }

    #[test]
    fn a_survey_is_never_sent_without_consent((job, history, now) in case()) {
        let decision = decide(&job, &history, now, &PolicyConfig::default());
        if job.kind == Kind::SatisfactionSurvey && !job.consent.survey {
            prop_assert!(decision.route().is_none(), "{:?}", decision);
        }
    }

    /// A survey never goes by letter, and by email only when email is the preferred method; a
    /// safety-sensitive one is only ever the discreet text or the plain email, by the preferred
    /// method, to an address marked safe.
    #[test]
    fn a_survey_goes_by_text_or_by_the_preferred_email_and_discreetly_when_sensitive(
        (job, history, now) in prop_oneof![case(), sensitive_survey(), plain_survey()]
    ) {
        let config = PolicyConfig::default();
        let decision = decide(&job, &history, now, &config);
        if job.kind == Kind::SatisfactionSurvey && let Some(route) = decision.route() {
            prop_assert!(route.channel != Channel::Letter, "{:?}", decision);
            if route.channel == Channel::Email {
                prop_assert_eq!(job.contact.preferred_method, Some(Method::Email));
            }
            if is_case_safety_sensitive(&job, &history, &config) {
                let allowed = [
                    (Channel::Sms, template_names::SATISFACTION_SURVEY_DISCREET),
                    (Channel::Email, template_names::SATISFACTION_SURVEY),
                ];
                prop_assert!(allowed.contains(&(route.channel, route.template)), "{:?}", decision);
                prop_assert_eq!(job.contact.preferred_method, Some(written_method(route.channel)));
                prop_assert!(explicitly_safe(&job, route), "{:?}", decision);
            } else {
                prop_assert_eq!(route.template, template_names::SATISFACTION_SURVEY);
            }
        }
    }

    #[test]
    fn a_suppressed_or_others_address_is_never_used(
        (job, history, now) in prop_oneof![case(), sensitive_pack(), sensitive_survey()]
    ) {
        let decision = decide(&job, &history, now, &PolicyConfig::default());
        if let Some(route) = decision.route() {
            let key = crate::domain::contact::recipient_key(&route.recipient);
            prop_assert!(!history.suppressed.contains(&key), "{:?}", decision);
            prop_assert!(!history.numbers_of_others.contains(&key), "{:?}", decision);
            // Nor a number this very request says is someone else's.
            prop_assert!(!crate::domain::contact::numbers_of_others_in(&job.contact).contains(&key), "{:?}", decision);
        }
    }

    #[test]
    fn do_not_contact_and_cancelled_cases_are_always_blocked((job, history, now) in case()) {
        let decision = decide(&job, &history, now, &PolicyConfig::default());
        if job.contact.do_not_contact || history.case_cancelled || history.outreach_cancelled {
            prop_assert_eq!(decision, Decision::Block(ReasonCode::DoNotContact));
        }
    }

    #[test]
    fn minors_duplicates_and_unapproved_templates_are_never_sent((job, history, now) in case()) {
        let config = PolicyConfig::default();
        let decision = decide(&job, &history, now, &config);
        if let Decision::Send(route) = &decision {
            prop_assert!(!is_under_18(&job.victim, now, config.timezone));
            prop_assert!(!is_duplicate(job.kind, &history));
            prop_assert!(history.approved_templates.contains(&(route.template.to_string(), route.channel)));
        }
    }

    /// A sent SMS goes to a normalised UK mobile, within quiet hours and the victim's safe times,
    /// checked here independently in London local time.
    #[test]
    fn a_sent_sms_is_to_a_uk_mobile_at_an_allowed_london_time((job, history, now) in case()) {
        let decision = decide(&job, &history, now, &PolicyConfig::default());
        if let Decision::Send(Route { channel: Channel::Sms, recipient, .. }) = &decision {
            let Recipient::Phone { number } = recipient else { panic!("an SMS to a non-phone: {decision:?}") };
            prop_assert!(number.len() == 13 && number.starts_with("+447") && number[1..].bytes().all(|b| b.is_ascii_digit()));
            let local = now.with_timezone(&chrono_tz::Europe::London);
            prop_assert!((8..20).contains(&local.hour()), "sent at {local}");
            if !job.contact.safe_times.is_empty() {
                let minutes = local.hour() * 60 + local.minute();
                let today = Day::from_weekday(chrono::Datelike::weekday(&local));
                let yesterday = Day::from_weekday(chrono::Datelike::weekday(&local).pred());
                let m = |t: NaiveTime| t.hour() * 60 + t.minute();
                let inside = job.contact.safe_times.iter().any(|w| {
                    let (from, to) = (m(w.from), m(w.to));
                    if from < to {
                        w.days.contains(&today) && from <= minutes && minutes < to
                    } else {
                        (w.days.contains(&today) && minutes >= from) || (w.days.contains(&yesterday) && minutes < to)
                    }
                });
                prop_assert!(inside, "sent at {local} outside {:?}", job.contact.safe_times);
            }
        }
    }

    /// A deferral is to a later time; for the time rules, to a whole minute they allow, and
    /// deciding again then no longer defers for the time.
    #[test]
    fn a_deferral_is_to_a_later_allowed_time((job, history, now) in case()) {
        let config = PolicyConfig::default();
        let decision = decide(&job, &history, now, &config);
        if let Decision::Defer { until, reason, route } = &decision {
            prop_assert!(*until > now);
            match reason {
                ReasonCode::OutsideSafeHours => {
                    prop_assert!(time_rules_for(&job, route.channel, &config).allows(*until));
                    prop_assert_eq!((until.second(), until.nanosecond()), (0, 0));
                    prop_assert!(*until <= now + TimeDelta::days(8));
                    let again = decide(&job, &history, *until, &config);
                    prop_assert!(matches!(again, Decision::Send(_) | Decision::Hold(ReasonCode::NoApprovedTemplate)), "{:?}", again);
                }
                ReasonCode::CallsFirst => {
                    let referred = job.referral.referred_at.or(history.accepted_at).unwrap_or(now);
                    prop_assert_eq!(*until, referred + TimeDelta::hours(24));
                    prop_assert!(history.call_attempts < 2 && is_effectively_priority(&job, &history));
                    prop_assert_eq!(job.kind, Kind::InformationPack);
                }
                other => prop_assert!(false, "unexpected deferral reason {other}"),
            }
        }
    }

    /// Every decision carries a reason exactly when it is not a send, and routes only on send/defer.
    #[test]
    fn reasons_and_routes_fit_the_outcome((job, history, now) in case()) {
        let decision = decide(&job, &history, now, &PolicyConfig::default());
        prop_assert_eq!(decision.reason().is_none(), matches!(decision, Decision::Send(_)));
        prop_assert_eq!(decision.route().is_some(), matches!(decision, Decision::Send(_) | Decision::Defer { .. }));
        if let Some(route) = decision.route() {
            let sensitive = is_case_safety_sensitive(&job, &history, &PolicyConfig::default());
            prop_assert_eq!(route.template, template_for(job.kind, route.channel, sensitive));
            if job.kind == Kind::PriorityPretext {
                prop_assert_eq!(route.channel, Channel::Sms);
            }
        }
    }
}

/// The properties above only mean something if the generated cases reach every rule: check that
/// they produce every reason code and outcome, including safety-sensitive packs actually sent.
#[test]
fn generated_cases_reach_every_rule() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::BTreeMap;

    let config = PolicyConfig::default();
    let mut runner = TestRunner::deterministic();
    let strategy = prop_oneof![3 => case(), 1 => sensitive_pack(), 1 => sensitive_survey(), 1 => plain_survey(), 1 => remembered_sensitive_case()];
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..4000 {
        let Ok(tree) = strategy.new_tree(&mut runner) else { continue };
        let (job, history, now) = tree.current();
        let decision = decide(&job, &history, now, &config);
        let label = match decision.reason() {
            Some(reason) => format!("{} {reason}", decision.outcome().as_str()),
            None => "send".to_string(),
        };
        if job.kind == Kind::SatisfactionSurvey {
            *seen.entry(format!("survey {label}")).or_default() += 1;
            if let Decision::Send(route) = &decision {
                let sensitive = if is_case_safety_sensitive(&job, &history, &config) { "sensitive " } else { "" };
                *seen.entry(format!("{sensitive}survey by {}", route.channel.as_str())).or_default() += 1;
            }
        }
        *seen.entry(label).or_default() += 1;
        if let Decision::Send(route) = &decision
            && is_case_safety_sensitive(&job, &history, &config)
            && job.kind == Kind::InformationPack
        {
            if !is_safety_sensitive(&job, &config) {
                *seen.entry("remembered sensitive pack sent".into()).or_default() += 1;
            }
            *seen.entry(format!("sensitive pack by {}", route.channel.as_str())).or_default() += 1;
        }
    }
    let mut wanted: Vec<String> = vec![
        "send".into(),
        "defer calls_first".into(),
        "defer outside_safe_hours".into(),
        "hold outside_safe_hours".into(),
        "sensitive pack by sms".into(),
        "sensitive pack by email".into(),
        "sensitive pack by letter".into(),
        "remembered sensitive pack sent".into(),
        "survey by sms".into(),
        "survey by email".into(),
        "sensitive survey by sms".into(),
        "sensitive survey by email".into(),
        "survey block no_consent".into(),
        "survey block duplicate".into(),
        "survey block written_unsafe".into(),
        "survey block insufficient_contact_info".into(),
        "survey block suppressed".into(),
        "survey hold minor".into(),
        "survey hold number_conflict".into(),
        "survey defer outside_safe_hours".into(),
    ];
    for code in ReasonCode::ALL {
        if !matches!(code, ReasonCode::CallsFirst | ReasonCode::OutsideSafeHours) {
            let outcome = match code {
                ReasonCode::PossiblePriority
                | ReasonCode::Minor
                | ReasonCode::NoSafeNumber
                | ReasonCode::NumberConflict
                | ReasonCode::NoApprovedTemplate => "hold",
                _ => "block",
            };
            wanted.push(format!("{outcome} {code}"));
        }
    }
    let missing: Vec<&String> = wanted.iter().filter(|w| !seen.contains_key(*w)).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}; seen: {seen:?}");
}
