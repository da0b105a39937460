//! Table-driven tests: every rule, every reason code, the order between rules, and the public
//! scenarios of `contract/examples/scenarios.json`.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::*;
use crate::domain::request::{Consent, Crime, Day, Email, Postal, Referral, SafeTime, hhmm};
use crate::domain::{Outcome, template_names};

// ---------------------------------------------------------------------------------------------
// Builders

/// Monday 23 November 2026, 10:00 GMT: inside quiet hours, as in the public scenarios.
const NOW: &str = "2026-11-23T10:00:00Z";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("test time")
}

#[derive(Clone)]
struct Job(OutreachRequest);

fn job(kind: Kind, category: &str) -> Job {
    Job(OutreachRequest {
        request_id: "r-1".into(),
        case_ref: "C-1".into(),
        kind,
        priority: None,
        referral: Referral::default(),
        crime: Crime { categories: vec![category.into()], summary: None },
        victim: Victim::default(),
        contact: Contact::default(),
        consent: Consent::default(),
        personalisation: Default::default(),
    })
}

/// A pre-text (priority, needs no consent).
fn pretext(category: &str) -> Job {
    job(Kind::PriorityPretext, category)
}

/// An information pack the victim consented to.
fn pack(category: &str) -> Job {
    job(Kind::InformationPack, category).consent(true)
}

/// A satisfaction survey the victim consented to.
fn survey(category: &str) -> Job {
    job(Kind::SatisfactionSurvey, category).survey_consent(true)
}

const MOBILE: &str = "+447700900001";
const MOBILE_2: &str = "+447700900002";
const LANDLINE: &str = "+441214960000";

impl Job {
    fn phone(mut self, number: &str, belongs_to: Option<&str>, safe_to_text: Option<bool>) -> Self {
        self.0.contact.phones.push(Phone {
            number: number.into(),
            belongs_to: belongs_to.map(str::to_owned),
            safe_to_text,
            safe_to_voicemail: None,
        });
        self
    }
    /// The victim's own mobile, marked safe to text.
    fn safe_mobile(self) -> Self {
        self.phone(MOBILE, Some("victim"), Some(true))
    }
    fn email(mut self, address: &str, safe: Option<bool>) -> Self {
        self.0.contact.email = Some(Email { address: address.into(), safe });
        self
    }
    fn postal(mut self, name: Option<&str>, lines: &[&str], postcode: &str, safe: Option<bool>) -> Self {
        self.0.contact.postal = Some(Postal {
            name: name.map(str::to_owned),
            lines: lines.iter().map(|l| l.to_string()).collect(),
            postcode: Some(postcode.into()),
            safe,
        });
        self
    }
    fn full_postal(self, safe: Option<bool>) -> Self {
        self.postal(Some("Lee Jones"), &["2 Station Road", "Coventry"], "cv12ab", safe)
    }
    fn prefers(mut self, method: Method) -> Self {
        self.0.contact.preferred_method = Some(method);
        self
    }
    fn consent(mut self, given: bool) -> Self {
        self.0.consent.information_pack = given;
        self
    }
    fn survey_consent(mut self, given: bool) -> Self {
        self.0.consent.survey = given;
        self
    }
    fn priority(mut self, priority: Option<bool>) -> Self {
        self.0.priority = priority;
        self
    }
    fn categories(mut self, categories: &[&str]) -> Self {
        self.0.crime.categories = categories.iter().map(|c| c.to_string()).collect();
        self
    }
    fn summary(mut self, summary: &str) -> Self {
        self.0.crime.summary = Some(summary.into());
        self
    }
    fn vulnerability(mut self, v: &str) -> Self {
        self.0.victim.vulnerabilities.push(v.into());
        self
    }
    fn under_18(mut self, flag: bool) -> Self {
        self.0.victim.is_under_18 = Some(flag);
        self
    }
    fn born(mut self, date: &str) -> Self {
        self.0.victim.date_of_birth = Some(date.parse().expect("test date"));
        self
    }
    fn do_not_contact(mut self) -> Self {
        self.0.contact.do_not_contact = true;
        self
    }
    fn referred(mut self, time: &str) -> Self {
        self.0.referral.referred_at = Some(at(time));
        self
    }
    fn safe_time(mut self, days: &[Day], from: &str, to: &str) -> Self {
        let time = |s| hhmm::parse(s).expect("test time");
        self.0.contact.safe_times.push(SafeTime { days: days.to_vec(), from: time(from), to: time(to) });
        self
    }
}

/// Every template approved on every channel, as the public scenarios assume.
fn history() -> CaseHistory {
    let names = [
        template_names::PRIORITY_PRETEXT,
        template_names::PRIORITY_PRETEXT_DISCREET,
        template_names::INFORMATION_PACK,
        template_names::INFORMATION_PACK_DISCREET,
        template_names::SATISFACTION_SURVEY,
        template_names::SATISFACTION_SURVEY_DISCREET,
    ];
    let approved = names.iter().flat_map(|n| Channel::ALL.map(|c| (n.to_string(), c))).collect();
    CaseHistory { approved_templates: approved, ..CaseHistory::default() }
}

trait HistoryExt {
    fn with(self, f: impl FnOnce(&mut CaseHistory)) -> CaseHistory;
    /// The case's memory holds these categories from earlier jobs.
    fn remembering(self, categories: &[&str]) -> CaseHistory;
    fn suppressing(self, address: &str) -> CaseHistory;
    fn approving_only(self, pairs: &[(&str, Channel)]) -> CaseHistory;
}

impl HistoryExt for CaseHistory {
    fn with(mut self, f: impl FnOnce(&mut CaseHistory)) -> CaseHistory {
        f(&mut self);
        self
    }
    fn remembering(self, categories: &[&str]) -> CaseHistory {
        self.with(|h| h.case_categories.extend(categories.iter().map(|c| c.to_string())))
    }
    fn suppressing(self, address: &str) -> CaseHistory {
        self.with(|h| {
            h.suppressed.insert(address.into());
        })
    }
    fn approving_only(self, pairs: &[(&str, Channel)]) -> CaseHistory {
        self.with(|h| h.approved_templates = pairs.iter().map(|(n, c)| (n.to_string(), *c)).collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Expectations

#[derive(Debug, Clone, PartialEq)]
enum Want {
    Send(Channel, &'static str, Recipient),
    Defer(ReasonCode, DateTime<Utc>, Channel),
    Hold(ReasonCode),
    Block(ReasonCode),
}
use Want::{Block as B, Hold as H, Send as S};

fn defer(reason: ReasonCode, until: &str, channel: Channel) -> Want {
    Want::Defer(reason, at(until), channel)
}

impl Want {
    fn reason(&self) -> Option<ReasonCode> {
        match self {
            S(..) => None,
            Want::Defer(r, ..) | H(r) | B(r) => Some(*r),
        }
    }
    fn outcome(&self) -> Outcome {
        match self {
            S(..) => Outcome::Send,
            Want::Defer(..) => Outcome::Defer,
            H(..) => Outcome::Hold,
            B(..) => Outcome::Block,
        }
    }
}

fn phone_to(number: &str) -> Recipient {
    Recipient::Phone { number: number.into() }
}
fn email_to(address: &str) -> Recipient {
    Recipient::Email { address: address.into() }
}
fn letter_to_lee() -> Recipient {
    Recipient::Postal {
        name: "Lee Jones".into(),
        lines: vec!["2 Station Road".into(), "Coventry".into()],
        postcode: "CV1 2AB".into(),
    }
}

const PRETEXT: &str = template_names::PRIORITY_PRETEXT;
const PRETEXT_DISCREET: &str = template_names::PRIORITY_PRETEXT_DISCREET;
const PACK: &str = template_names::INFORMATION_PACK;
const PACK_DISCREET: &str = template_names::INFORMATION_PACK_DISCREET;
const SURVEY: &str = template_names::SATISFACTION_SURVEY;
const SURVEY_DISCREET: &str = template_names::SATISFACTION_SURVEY_DISCREET;

struct Row {
    name: &'static str,
    job: Job,
    history: CaseHistory,
    now: &'static str,
    want: Want,
}

fn row(name: &'static str, job: Job, history: CaseHistory, now: &'static str, want: Want) -> Row {
    Row { name, job, history, now, want }
}

/// What `decide` gave for a row, in the row's terms, when it differs from what the row wants.
fn mismatch(row: &Row) -> Option<String> {
    let config = PolicyConfig::default();
    let decision = decide(&row.job.0, &row.history, at(row.now), &config);
    let got = match &decision {
        Decision::Send(r) => S(r.channel, r.template, r.recipient.clone()),
        Decision::Defer { reason, route, until } => {
            let sensitive = is_safety_sensitive(&row.job.0, &config);
            if route.template != template_for(row.job.0.kind, route.channel, sensitive) {
                return Some(format!("{}: deferred with the wrong template: {decision:?}", row.name));
            }
            Want::Defer(*reason, *until, route.channel)
        }
        Decision::Hold(r) => H(*r),
        Decision::Block(r) => B(*r),
    };
    (got != row.want || decision.outcome() != row.want.outcome() || decision.reason() != row.want.reason())
        .then(|| format!("{}:\n    want {:?}\n    got  {:?}", row.name, row.want, got))
}

// ---------------------------------------------------------------------------------------------
// The table

fn rows() -> Vec<Row> {
    use Channel::{Email as Mail, Letter, Sms};
    use ReasonCode::*;
    let h = history;
    vec![
        // Rule 1: do_not_contact.
        row(
            "1: do_not_contact blocks a pre-text",
            pretext("burglary").safe_mobile().do_not_contact(),
            h(),
            NOW,
            B(DoNotContact),
        ),
        row(
            "1: a cancelled case blocks",
            pretext("burglary").safe_mobile(),
            h().with(|h| h.case_cancelled = true),
            NOW,
            B(DoNotContact),
        ),
        row(
            "1: a cancelled job blocks",
            pack("burglary").safe_mobile(),
            h().with(|h| h.outreach_cancelled = true),
            NOW,
            B(DoNotContact),
        ),
        row(
            "1 before 2: do_not_contact beats no_consent",
            pack("theft").consent(false).do_not_contact(),
            h(),
            NOW,
            B(DoNotContact),
        ),
        row(
            "1 before 3, 5: do_not_contact beats suppressed and minor",
            pretext("burglary").safe_mobile().under_18(true).do_not_contact(),
            h().suppressing(MOBILE),
            NOW,
            B(DoNotContact),
        ),
        // Rule 1a: declined (v2).
        row(
            "1a: a victim who declined on a call gets no pre-text",
            pretext("burglary").safe_mobile(),
            h().with(|h| h.declined = true),
            NOW,
            B(Declined),
        ),
        row(
            "1a: nor the written pack",
            pack("theft").full_postal(Some(true)).prefers(Method::Letter),
            h().with(|h| h.declined = true),
            NOW,
            B(Declined),
        ),
        row(
            "1 before 1a: do_not_contact beats declined",
            pretext("burglary").safe_mobile().do_not_contact(),
            h().with(|h| h.declined = true),
            NOW,
            B(DoNotContact),
        ),
        row(
            "1a before 2: declined beats no_consent",
            pack("theft").consent(false),
            h().with(|h| h.declined = true),
            NOW,
            B(Declined),
        ),
        row(
            "1a before 3: declined beats suppressed",
            pretext("burglary").safe_mobile(),
            h().with(|h| h.declined = true).suppressing(MOBILE),
            NOW,
            B(Declined),
        ),
        // Rule 2: no_consent.
        row(
            "2: an information pack without consent",
            pack("theft").email("lee@example.org", Some(true)).prefers(Method::Email).consent(false),
            h(),
            NOW,
            B(NoConsent),
        ),
        row(
            "2: a pre-text needs no consent",
            pretext("burglary").safe_mobile(),
            h(),
            NOW,
            S(Sms, PRETEXT, phone_to(MOBILE)),
        ),
        row(
            "2 before 3: no_consent beats suppressed",
            pack("theft").email("lee@example.org", Some(true)).consent(false),
            h().suppressing("lee@example.org"),
            NOW,
            B(NoConsent),
        ),
        row(
            "2 before 4: no_consent beats possible_priority",
            pack("theft").safe_mobile().summary("her ex-partner").consent(false),
            h(),
            NOW,
            B(NoConsent),
        ),
        // Rule 3: suppressed.
        row(
            "3: the pre-text number is suppressed",
            pretext("burglary").phone("07700 900001", None, None),
            h().suppressing(MOBILE),
            NOW,
            B(Suppressed),
        ),
        row(
            "3: a suppressed SMS number is not fallen back around",
            pack("theft").safe_mobile().email("lee@example.org", None).prefers(Method::Sms),
            h().suppressing(MOBILE),
            NOW,
            B(Suppressed),
        ),
        row(
            "3: a suppressed email matches whatever its case",
            pack("theft").email("Lee@Example.ORG", Some(true)).prefers(Method::Email),
            h().suppressing("lee@example.org"),
            NOW,
            B(Suppressed),
        ),
        row(
            "3: a suppressed postal address matches by postcode and first line",
            pack("theft")
                .postal(Some("Lee Jones"), &["2, Station Road."], "CV1 2AB", Some(true))
                .prefers(Method::Letter),
            h().suppressing("CV1 2AB|2 station road"),
            NOW,
            B(Suppressed),
        ),
        row(
            "3: a suppressed address that would not be used does not matter",
            pretext("burglary").safe_mobile().phone(MOBILE_2, None, Some(true)).email("lee@example.org", None),
            h().suppressing(MOBILE_2).suppressing("lee@example.org"),
            NOW,
            S(Sms, PRETEXT, phone_to(MOBILE)),
        ),
        row(
            "3: the first textable number is used even when a later one is not suppressed",
            pretext("domestic_abuse").safe_mobile().phone(MOBILE_2, None, Some(true)),
            h().suppressing(MOBILE),
            NOW,
            B(Suppressed),
        ),
        row(
            "3: one number, one key: written 0044…, suppressed as +447…",
            pretext("burglary").phone("0044 7700 900001", Some("victim"), Some(true)),
            h().suppressing(MOBILE),
            NOW,
            B(Suppressed),
        ),
        row(
            "3 before 4: suppressed beats possible_priority",
            pack("theft").safe_mobile().summary("racist abuse"),
            h().suppressing(MOBILE),
            NOW,
            B(Suppressed),
        ),
        row(
            "3 before 5: suppressed beats minor",
            pretext("burglary").safe_mobile().under_18(true),
            h().suppressing(MOBILE),
            NOW,
            B(Suppressed),
        ),
        // Rule 4: possible_priority.
        row(
            "4: keywords: ex-partner",
            pack("criminal_damage").safe_mobile().summary("her ex-partner smashed the windows"),
            h(),
            NOW,
            H(PossiblePriority),
        ),
        row(
            "4: keywords: no false match on exam, Essex",
            pack("theft").safe_mobile().summary("exam papers stolen in Essex"),
            h(),
            NOW,
            S(Sms, PACK, phone_to(MOBILE)),
        ),
        row(
            "4: keywords: a phrase",
            pack("criminal_damage").safe_mobile().summary("made a THREAT TO KILL"),
            h(),
            NOW,
            H(PossiblePriority),
        ),
        row(
            "4: keywords: a prefix",
            pack("criminal_damage").safe_mobile().summary("Stalking, since May"),
            h(),
            NOW,
            H(PossiblePriority),
        ),
        row(
            "4: a priority category",
            pack("terrorism").safe_mobile().priority(Some(false)),
            h(),
            NOW,
            H(PossiblePriority),
        ),
        row(
            "4: a safety-sensitive category sent as non-priority",
            pack("domestic_abuse").safe_mobile().prefers(Method::Sms),
            h(),
            NOW,
            H(PossiblePriority),
        ),
        row(
            "4: a priority vulnerability",
            pack("theft").safe_mobile().vulnerability("intimidated"),
            h(),
            NOW,
            H(PossiblePriority),
        ),
        row(
            "4: a pack marked priority is not second-guessed",
            pack("theft").safe_mobile().summary("her ex-partner").priority(Some(true)).prefers(Method::Sms),
            h(),
            NOW,
            S(Sms, PACK, phone_to(MOBILE)),
        ),
        row(
            "4: pre-texts are already priority",
            pretext("theft").safe_mobile().summary("her ex-partner"),
            h(),
            NOW,
            S(Sms, PRETEXT, phone_to(MOBILE)),
        ),
        row(
            "4: a case remembers: a follow-up that says only burglary on a domestic-abuse case",
            pack("burglary").safe_mobile().prefers(Method::Sms).priority(Some(false)),
            h().remembering(&["domestic_abuse"]),
            NOW,
            H(PossiblePriority),
        ),
        row(
            "4: a priority category of an earlier job of the case",
            pack("theft").safe_mobile().prefers(Method::Sms),
            h().remembering(&["attempted_murder"]),
            NOW,
            H(PossiblePriority),
        ),
        row(
            "4: a case once priority is not second-guessed",
            pack("burglary").safe_mobile().summary("her ex-partner").prefers(Method::Sms),
            h().with(|h| h.case_priority = true),
            NOW,
            S(Sms, PACK, phone_to(MOBILE)),
        ),
        row(
            "4: false_imprisonment is priority (v2)",
            pack("false_imprisonment").safe_mobile().prefers(Method::Sms),
            h(),
            NOW,
            H(PossiblePriority),
        ),
        row(
            "4: wounding_with_intent is priority (v2)",
            pack("wounding_with_intent").safe_mobile().prefers(Method::Sms),
            h(),
            NOW,
            H(PossiblePriority),
        ),
        row(
            "4: fraud against a vulnerable victim is priority (v2)",
            pack("fraud_vulnerable").safe_mobile().prefers(Method::Sms),
            h(),
            NOW,
            H(PossiblePriority),
        ),
        row(
            "4: cyber-crime against a vulnerable victim is priority (v2)",
            pack("cyber_crime_vulnerable").safe_mobile().prefers(Method::Sms),
            h(),
            NOW,
            H(PossiblePriority),
        ),
        row(
            "4: plain fraud and cyber_crime stay non-priority",
            pack("fraud").categories(&["fraud", "cyber_crime"]).safe_mobile().prefers(Method::Sms),
            h(),
            NOW,
            S(Sms, PACK, phone_to(MOBILE)),
        ),
        row(
            "4 before 5: possible_priority beats minor",
            pack("theft").safe_mobile().summary("harassed").under_18(true),
            h(),
            NOW,
            H(PossiblePriority),
        ),
        // Rule 5: minor.
        row("5: is_under_18", pretext("burglary").safe_mobile().under_18(true), h(), NOW, H(Minor)),
        row(
            "5: a date of birth 17 years ago",
            pretext("burglary").safe_mobile().born("2009-01-01"),
            h(),
            NOW,
            H(Minor),
        ),
        row(
            "5: the day before the 18th birthday",
            pretext("burglary").safe_mobile().born("2008-11-24"),
            h(),
            NOW,
            H(Minor),
        ),
        row(
            "5: the 18th birthday is adult",
            pretext("burglary").safe_mobile().born("2008-11-23"),
            h(),
            NOW,
            S(Sms, PRETEXT, phone_to(MOBILE)),
        ),
        row(
            "5: the date of birth wins over is_under_18 false",
            pretext("burglary").safe_mobile().born("2015-03-03").under_18(false),
            h(),
            NOW,
            H(Minor),
        ),
        row(
            "5: the birthday is the local date (00:30 BST is already the 15th)",
            pretext("burglary").safe_mobile().born("2008-06-15"),
            h(),
            "2026-06-14T23:30:00Z",
            defer(OutsideSafeHours, "2026-06-15T07:00:00Z", Sms),
        ),
        row(
            "5: and one minute earlier, 23:59 BST on the 14th, still under 18",
            pretext("burglary").safe_mobile().born("2008-06-15"),
            h(),
            "2026-06-14T22:59:00Z",
            H(Minor),
        ),
        row("5 before 6: minor beats no_safe_number", pretext("domestic_abuse").under_18(true), h(), NOW, H(Minor)),
        row("5 before 6: minor beats no_mobile_number", pretext("burglary").born("2010-10-10"), h(), NOW, H(Minor)),
        // Rule 6: no_safe_number / no_mobile_number.
        row("6: safety-sensitive pre-text without any phone", pretext("domestic_abuse"), h(), NOW, H(NoSafeNumber)),
        row(
            "6: safety-sensitive pre-text, safe_to_text not given",
            pretext("stalking").phone(MOBILE, None, None),
            h(),
            NOW,
            H(NoSafeNumber),
        ),
        row(
            "6: safety-sensitive pre-text, safe landline",
            pretext("hate_crime").phone(LANDLINE, None, Some(true)),
            h(),
            NOW,
            H(NoSafeNumber),
        ),
        row(
            "6: safety-sensitive pre-text, someone else's safe mobile",
            pretext("domestic_abuse").phone(MOBILE, Some("parent"), Some(true)),
            h(),
            NOW,
            H(NoSafeNumber),
        ),
        row(
            "6: a remembered safety-sensitive case needs safe_to_text true",
            pretext("burglary").phone(MOBILE, Some("victim"), None),
            h().remembering(&["domestic_abuse"]),
            NOW,
            H(NoSafeNumber),
        ),
        row("6: pre-text without any phone", pretext("burglary"), h(), NOW, B(NoMobileNumber)),
        row(
            "6: pre-text with a landline only",
            pretext("burglary").phone(LANDLINE, None, None),
            h(),
            NOW,
            B(NoMobileNumber),
        ),
        row(
            "6: pre-text, mobile not safe to text",
            pretext("burglary").phone(MOBILE, None, Some(false)),
            h(),
            NOW,
            B(NoMobileNumber),
        ),
        row(
            "6: pre-text, the suspect's mobile",
            pretext("burglary").phone(MOBILE, Some("suspect"), Some(true)),
            h(),
            NOW,
            B(NoMobileNumber),
        ),
        row(
            "6: pre-text, junk number",
            pretext("burglary").phone("call after 6", None, None),
            h(),
            NOW,
            B(NoMobileNumber),
        ),
        row(
            "6: safe_to_text absent is fine when not safety-sensitive",
            pretext("burglary").phone("07700 900001", None, None),
            h(),
            NOW,
            S(Sms, PRETEXT, phone_to(MOBILE)),
        ),
        row(
            "6: the first textable number is used",
            pretext("burglary").phone(LANDLINE, None, None).phone(MOBILE, Some("suspect"), None).phone(
                "447700900002",
                Some("victim"),
                None,
            ),
            h(),
            NOW,
            S(Sms, PRETEXT, phone_to(MOBILE_2)),
        ),
        // Rule 7: number_conflict.
        row(
            "7: the pre-text number belongs to someone else on another case",
            pretext("domestic_abuse").safe_mobile(),
            h().with(|h| {
                h.numbers_of_others.insert(MOBILE.into());
            }),
            NOW,
            H(NumberConflict),
        ),
        row(
            "7: an information pack by SMS too",
            pack("theft").safe_mobile().prefers(Method::Sms),
            h().with(|h| {
                h.numbers_of_others.insert(MOBILE.into());
            }),
            NOW,
            H(NumberConflict),
        ),
        row(
            "7: a conflicting number that is not used does not matter",
            pack("theft").safe_mobile().email("lee@example.org", None).prefers(Method::Email),
            h().with(|h| {
                h.numbers_of_others.insert(MOBILE.into());
            }),
            NOW,
            S(Mail, PACK, email_to("lee@example.org")),
        ),
        row(
            "7: recorded earlier on this very case as the suspect's",
            pretext("burglary").safe_mobile(),
            h().with(|h| {
                h.numbers_of_others.insert(MOBILE.into());
            }),
            NOW,
            H(NumberConflict),
        ),
        row(
            "7: this very request lists the number as the suspect's too (in another form)",
            pretext("burglary").safe_mobile().phone("07700 900001", Some("suspect"), None),
            h(),
            NOW,
            H(NumberConflict),
        ),
        row(
            "7: a suspect's other number in the request does not matter",
            pretext("burglary").safe_mobile().phone(MOBILE_2, Some("suspect"), None),
            h(),
            NOW,
            S(Sms, PRETEXT, phone_to(MOBILE)),
        ),
        row(
            "7 before 11: number_conflict beats duplicate",
            pretext("burglary").safe_mobile(),
            h().with(|h| {
                h.numbers_of_others.insert(MOBILE.into());
                h.other_pretext_active = true;
            }),
            NOW,
            H(NumberConflict),
        ),
        // Rule 8: written_unsafe.
        row(
            "8: safety-sensitive pack, preferred method phone",
            pack("domestic_abuse").priority(Some(true)).email("ana@example.org", Some(true)).prefers(Method::Phone),
            h(),
            NOW,
            B(WrittenUnsafe),
        ),
        row(
            "8: safety-sensitive pack, no preferred method",
            pack("stalking").priority(Some(true)).safe_mobile(),
            h(),
            NOW,
            B(WrittenUnsafe),
        ),
        row(
            "8: safety-sensitive pack, preferred email not marked safe",
            pack("hate_crime").priority(Some(true)).email("ana@example.org", None).prefers(Method::Email),
            h(),
            NOW,
            B(WrittenUnsafe),
        ),
        row(
            "8: safety-sensitive pack, preferred email marked unsafe",
            pack("hate_crime")
                .priority(Some(true))
                .email("ana@example.org", Some(false))
                .safe_mobile()
                .prefers(Method::Email),
            h(),
            NOW,
            B(WrittenUnsafe),
        ),
        row(
            "8: safety-sensitive pack, preferred email missing",
            pack("hate_crime").priority(Some(true)).prefers(Method::Email),
            h(),
            NOW,
            B(WrittenUnsafe),
        ),
        row(
            "8: safety-sensitive pack by SMS to a number not marked safe",
            pack("trafficking").priority(Some(true)).phone(MOBILE, None, None).prefers(Method::Sms),
            h(),
            NOW,
            B(WrittenUnsafe),
        ),
        row(
            "8: safety-sensitive pack by letter not marked safe",
            pack("modern_slavery").priority(Some(true)).full_postal(None).prefers(Method::Letter),
            h(),
            NOW,
            B(WrittenUnsafe),
        ),
        row(
            "8: safety-sensitive pack, preferred and safe email is sent",
            pack("domestic_abuse").priority(Some(true)).email("Ana@Example.org", Some(true)).prefers(Method::Email),
            h(),
            NOW,
            S(Mail, PACK, email_to("ana@example.org")),
        ),
        row(
            "8: safety-sensitive pack, preferred and safe SMS is sent discreetly",
            pack("domestic_abuse").priority(Some(true)).safe_mobile().prefers(Method::Sms),
            h(),
            NOW,
            S(Sms, PACK_DISCREET, phone_to(MOBILE)),
        ),
        row(
            "8: safety-sensitive pack, preferred and safe letter is sent",
            pack("forced_marriage").priority(Some(true)).full_postal(Some(true)).prefers(Method::Letter),
            h(),
            NOW,
            S(Letter, PACK, letter_to_lee()),
        ),
        row(
            "8: a case remembers: the burglary follow-up's email not marked safe is not used",
            pack("burglary").priority(Some(true)).email("lee@example.org", None).prefers(Method::Email),
            h().remembering(&["domestic_abuse"]),
            NOW,
            B(WrittenUnsafe),
        ),
        row(
            "8: a case remembers: no falling back to an unchosen channel",
            pack("theft").priority(Some(true)).email("lee@example.org", Some(true)),
            h().remembering(&["stalking"]),
            NOW,
            B(WrittenUnsafe),
        ),
        row(
            "8: the safety-sensitive flag stored at an earlier acceptance is remembered too",
            pack("burglary").priority(Some(true)).full_postal(None).prefers(Method::Letter),
            h().with(|h| h.case_safety_sensitive = true),
            NOW,
            B(WrittenUnsafe),
        ),
        row(
            "8 before 11: written_unsafe beats duplicate",
            pack("domestic_abuse").priority(Some(true)).safe_mobile(),
            h().with(|h| h.other_information_pack_active = true),
            NOW,
            B(WrittenUnsafe),
        ),
        // Rule 9: letters.
        row(
            "9: safety-sensitive letter without a name",
            pack("domestic_abuse")
                .priority(Some(true))
                .postal(None, &["2 Station Road"], "CV1 2AB", Some(true))
                .prefers(Method::Letter),
            h(),
            NOW,
            B(InsufficientContactInfo),
        ),
        row(
            "9: safety-sensitive letter without lines",
            pack("domestic_abuse")
                .priority(Some(true))
                .postal(Some("Ana"), &[], "CV1 2AB", Some(true))
                .prefers(Method::Letter),
            h(),
            NOW,
            B(InsufficientContactInfo),
        ),
        row(
            "9: safety-sensitive letter with an invalid postcode",
            pack("domestic_abuse")
                .priority(Some(true))
                .postal(Some("Ana"), &["2 Station Road"], "CV1", Some(true))
                .prefers(Method::Letter),
            h(),
            NOW,
            B(InsufficientContactInfo),
        ),
        row(
            "9: a preferred letter with an incomplete address and nothing else",
            pack("theft")
                .postal(Some("Lee"), &["2 Station Road"], "not a postcode", Some(true))
                .prefers(Method::Letter),
            h(),
            NOW,
            B(InsufficientContactInfo),
        ),
        row(
            "9: not safety-sensitive, an incomplete letter falls back to email",
            pack("theft")
                .postal(None, &["2 Station Road"], "CV1 2AB", None)
                .email("lee@example.org", None)
                .prefers(Method::Letter),
            h(),
            NOW,
            S(Mail, PACK, email_to("lee@example.org")),
        ),
        // Rule 10: email and SMS.
        row(
            "10: safety-sensitive, safe but invalid email",
            pack("sexual_violence")
                .priority(Some(true))
                .email("ana at example dot org", Some(true))
                .prefers(Method::Email),
            h(),
            NOW,
            B(InsufficientContactInfo),
        ),
        row(
            "10: safety-sensitive, a landline marked safe to text",
            pack("sexual_violence").priority(Some(true)).phone(LANDLINE, None, Some(true)).prefers(Method::Sms),
            h(),
            NOW,
            B(InsufficientContactInfo),
        ),
        row(
            "10: not safety-sensitive, nothing usable at all",
            pack("theft").phone(LANDLINE, None, None).email("junk", None),
            h(),
            NOW,
            B(InsufficientContactInfo),
        ),
        row("10: not safety-sensitive, no contact details at all", pack("theft"), h(), NOW, B(InsufficientContactInfo)),
        row(
            "10: not safety-sensitive, only unsafe addresses",
            pack("theft")
                .phone(MOBILE, None, Some(false))
                .email("lee@example.org", Some(false))
                .full_postal(Some(false)),
            h(),
            NOW,
            B(InsufficientContactInfo),
        ),
        row(
            "10: not safety-sensitive, a junk preferred email falls back to SMS",
            pack("theft").email("junk@", None).phone("07700-900-001", None, None).prefers(Method::Email),
            h(),
            NOW,
            S(Sms, PACK, phone_to(MOBILE)),
        ),
        row(
            "10 before 11: insufficient_contact_info beats duplicate",
            pack("theft"),
            h().with(|h| h.other_information_pack_active = true),
            NOW,
            B(InsufficientContactInfo),
        ),
        // Channel choice when not safety-sensitive.
        row(
            "fallback: no preferred method takes SMS first",
            pack("theft").full_postal(None).email("lee@example.org", None).safe_mobile(),
            h(),
            NOW,
            S(Sms, PACK, phone_to(MOBILE)),
        ),
        row(
            "fallback: preferred phone (calls) takes the first usable written channel",
            pack("theft").full_postal(None).email("lee@example.org", Some(false)).prefers(Method::Phone),
            h(),
            NOW,
            S(Letter, PACK, letter_to_lee()),
        ),
        row(
            "fallback: the preferred channel wins over SMS",
            pack("theft").safe_mobile().full_postal(None).prefers(Method::Letter),
            h(),
            NOW,
            S(Letter, PACK, letter_to_lee()),
        ),
        row(
            "fallback: a preferred SMS number not safe to text falls back to email",
            pack("theft").phone(MOBILE, None, Some(false)).email("lee@example.org", None).prefers(Method::Sms),
            h(),
            NOW,
            S(Mail, PACK, email_to("lee@example.org")),
        ),
        // Rule 11: duplicate.
        row(
            "11: a second pre-text",
            pretext("burglary").safe_mobile(),
            h().with(|h| h.other_pretext_active = true),
            NOW,
            B(Duplicate),
        ),
        row(
            "11: a second information pack",
            pack("theft").safe_mobile(),
            h().with(|h| h.other_information_pack_active = true),
            NOW,
            B(Duplicate),
        ),
        row(
            "11: an information pack after a pre-text is not a duplicate",
            pack("theft").safe_mobile(),
            h().with(|h| h.other_pretext_active = true),
            NOW,
            S(Sms, PACK, phone_to(MOBILE)),
        ),
        row(
            "11 before 12: duplicate beats calls_first",
            pack("theft").priority(Some(true)).safe_mobile().referred("2026-11-23T09:00:00Z"),
            h().with(|h| h.other_information_pack_active = true),
            NOW,
            B(Duplicate),
        ),
        row(
            "11 before 13: duplicate beats outside_safe_hours",
            pretext("burglary").safe_mobile(),
            h().with(|h| h.other_pretext_active = true),
            "2026-11-23T22:30:00Z",
            B(Duplicate),
        ),
        // Rule 12: calls_first.
        row(
            "12: priority pack, calls not yet made, within 24 h of referral",
            pack("theft").priority(Some(true)).safe_mobile().referred("2026-11-23T08:00:00Z"),
            h(),
            NOW,
            defer(CallsFirst, "2026-11-24T08:00:00Z", Sms),
        ),
        row(
            "12: one call is not enough",
            pack("theft")
                .priority(Some(true))
                .email("lee@example.org", None)
                .prefers(Method::Phone)
                .referred("2026-11-23T08:00:00Z"),
            h().with(|h| h.call_attempts = 1),
            NOW,
            defer(CallsFirst, "2026-11-24T08:00:00Z", Mail),
        ),
        row(
            "12: two calls made",
            pack("theft").priority(Some(true)).safe_mobile().referred("2026-11-23T08:00:00Z"),
            h().with(|h| h.call_attempts = 2),
            NOW,
            S(Sms, PACK, phone_to(MOBILE)),
        ),
        row(
            "12: 24 h since referral",
            pack("theft").priority(Some(true)).safe_mobile().referred("2026-11-22T10:00:00Z"),
            h(),
            NOW,
            S(Sms, PACK, phone_to(MOBILE)),
        ),
        row(
            "12: written was the preferred method",
            pack("theft").priority(Some(true)).safe_mobile().prefers(Method::Sms).referred("2026-11-23T08:00:00Z"),
            h(),
            NOW,
            S(Sms, PACK, phone_to(MOBILE)),
        ),
        row(
            "12: without a referral time, from acceptance",
            pack("theft").priority(Some(true)).safe_mobile(),
            h().with(|h| h.accepted_at = Some(at("2026-11-23T09:30:00Z"))),
            NOW,
            defer(CallsFirst, "2026-11-24T09:30:00Z", Sms),
        ),
        row(
            "12: the referral time wins over acceptance",
            pack("theft").priority(Some(true)).safe_mobile().referred("2026-11-22T09:00:00Z"),
            h().with(|h| h.accepted_at = Some(at("2026-11-23T09:30:00Z"))),
            NOW,
            S(Sms, PACK, phone_to(MOBILE)),
        ),
        row(
            "12: with neither, from now",
            pack("theft").priority(Some(true)).safe_mobile(),
            h(),
            NOW,
            defer(CallsFirst, "2026-11-24T10:00:00Z", Sms),
        ),
        row(
            "12: not for packs that are not priority",
            pack("theft").safe_mobile().referred("2026-11-23T08:00:00Z"),
            h(),
            NOW,
            S(Sms, PACK, phone_to(MOBILE)),
        ),
        row(
            "12: a pack on a case once priority waits for calls too",
            pack("theft").safe_mobile().referred("2026-11-23T08:00:00Z"),
            h().with(|h| h.case_priority = true),
            NOW,
            defer(CallsFirst, "2026-11-24T08:00:00Z", Sms),
        ),
        row(
            "12 before 13: calls_first beats outside_safe_hours",
            pack("theft").priority(Some(true)).safe_mobile().referred("2026-11-23T21:00:00Z"),
            h(),
            "2026-11-23T22:30:00Z",
            defer(CallsFirst, "2026-11-24T21:00:00Z", Sms),
        ),
        // Rule 13: outside_safe_hours.
        row(
            "13: an SMS at 22:30 waits for 08:00",
            pretext("burglary").safe_mobile(),
            h(),
            "2026-11-23T22:30:00Z",
            defer(OutsideSafeHours, "2026-11-24T08:00:00Z", Sms),
        ),
        row(
            "13: an SMS at 07:59 waits a minute",
            pretext("burglary").safe_mobile(),
            h(),
            "2026-11-23T07:59:00Z",
            defer(OutsideSafeHours, "2026-11-23T08:00:00Z", Sms),
        ),
        row(
            "13: quiet hours end at 20:00",
            pretext("burglary").safe_mobile(),
            h(),
            "2026-11-23T20:00:00Z",
            defer(OutsideSafeHours, "2026-11-24T08:00:00Z", Sms),
        ),
        row(
            "13: 19:59:59 is still inside",
            pretext("burglary").safe_mobile(),
            h(),
            "2026-11-23T19:59:59Z",
            S(Sms, PRETEXT, phone_to(MOBILE)),
        ),
        row(
            "13: in summer, 07:30 UTC is 08:30 BST",
            pretext("burglary").safe_mobile(),
            h(),
            "2026-07-01T07:30:00Z",
            S(Sms, PRETEXT, phone_to(MOBILE)),
        ),
        row(
            "13: in summer, 19:30 UTC is 20:30 BST",
            pretext("burglary").safe_mobile(),
            h(),
            "2026-07-01T19:30:00Z",
            defer(OutsideSafeHours, "2026-07-02T07:00:00Z", Sms),
        ),
        row(
            "13: across the March clock change",
            pretext("burglary").safe_mobile(),
            h(),
            "2026-03-28T20:30:00Z",
            defer(OutsideSafeHours, "2026-03-29T07:00:00Z", Sms),
        ),
        row(
            "13: across the October clock change",
            pretext("burglary").safe_mobile(),
            h(),
            "2026-10-24T19:30:00Z",
            defer(OutsideSafeHours, "2026-10-25T08:00:00Z", Sms),
        ),
        row(
            "13: email is exempt from quiet hours",
            pack("theft").email("lee@example.org", None),
            h(),
            "2026-11-23T22:30:00Z",
            S(Mail, PACK, email_to("lee@example.org")),
        ),
        row(
            "13: a letter is exempt from quiet hours",
            pack("theft").full_postal(None).prefers(Method::Letter),
            h(),
            "2026-11-23T03:00:00Z",
            S(Letter, PACK, letter_to_lee()),
        ),
        row(
            "13: but not from safe times",
            pack("theft").email("lee@example.org", None).safe_time(&[Day::Sat, Day::Sun], "10:00", "12:00"),
            h(),
            NOW,
            defer(OutsideSafeHours, "2026-11-28T10:00:00Z", Mail),
        ),
        row(
            "13: inside a safe time",
            pretext("burglary").safe_mobile().safe_time(&[Day::Mon], "09:00", "17:00"),
            h(),
            NOW,
            S(Sms, PRETEXT, phone_to(MOBILE)),
        ),
        row(
            "13: a safe time past midnight, by email",
            pack("theft").email("lee@example.org", None).safe_time(&[Day::Mon], "22:00", "01:00"),
            h(),
            "2026-11-24T00:30:00Z",
            S(Mail, PACK, email_to("lee@example.org")),
        ),
        row(
            "13: SMS needs safe time and quiet hours together",
            pretext("domestic_abuse").safe_mobile().safe_time(&[Day::Mon, Day::Tue], "18:00", "23:00"),
            h(),
            "2026-11-23T20:30:00Z",
            defer(OutsideSafeHours, "2026-11-24T18:00:00Z", Sms),
        ),
        row(
            "13: a safe time wholly outside quiet hours is held for a person",
            pretext("domestic_abuse").safe_mobile().safe_time(&[Day::Mon, Day::Fri], "21:00", "23:00"),
            h(),
            NOW,
            H(OutsideSafeHours),
        ),
        row(
            "13 before 14: outside_safe_hours beats no_approved_template",
            pretext("burglary").safe_mobile(),
            CaseHistory::default(),
            "2026-11-23T22:30:00Z",
            defer(OutsideSafeHours, "2026-11-24T08:00:00Z", Sms),
        ),
        // Rule 14: no_approved_template.
        row(
            "14: nothing approved",
            pretext("burglary").safe_mobile(),
            CaseHistory::default(),
            NOW,
            H(NoApprovedTemplate),
        ),
        row(
            "14: the non-discreet template does not stand in for the discreet one",
            pretext("domestic_abuse").safe_mobile(),
            h().approving_only(&[(PRETEXT, Sms)]),
            NOW,
            H(NoApprovedTemplate),
        ),
        row(
            "14: approved for another channel only",
            pack("theft").email("lee@example.org", None),
            h().approving_only(&[(PACK, Sms), (PACK, Letter)]),
            NOW,
            H(NoApprovedTemplate),
        ),
        row(
            "14: approved for this channel",
            pack("theft").email("lee@example.org", None),
            h().approving_only(&[(PACK, Mail)]),
            NOW,
            S(Mail, PACK, email_to("lee@example.org")),
        ),
        // Rule 15 and templates.
        row(
            "15: pre-text, safety-sensitive: discreet",
            pretext("hate_crime").safe_mobile(),
            h(),
            NOW,
            S(Sms, PRETEXT_DISCREET, phone_to(MOBILE)),
        ),
        row(
            "15: a safety-sensitive category among others still makes it discreet",
            pretext("burglary").categories(&["burglary", "Stalking"]).safe_mobile(),
            h(),
            NOW,
            S(Sms, PRETEXT_DISCREET, phone_to(MOBILE)),
        ),
        row(
            "15: a burglary follow-up on a domestic-abuse case gets the discreet pre-text",
            pretext("burglary").safe_mobile(),
            h().remembering(&["domestic_abuse"]),
            NOW,
            S(Sms, PRETEXT_DISCREET, phone_to(MOBILE)),
        ),
        row(
            "15: and the discreet information pack by SMS",
            pack("burglary").priority(Some(true)).safe_mobile().prefers(Method::Sms),
            h().remembering(&["hate_crime"]),
            NOW,
            S(Sms, PACK_DISCREET, phone_to(MOBILE)),
        ),
        row(
            "15: pre-text, otherwise: plain",
            pretext("serious_violence").safe_mobile(),
            h(),
            NOW,
            S(Sms, PRETEXT, phone_to(MOBILE)),
        ),
        row(
            "15: pack by SMS, not safety-sensitive",
            pack("theft").phone("+44 (0)7700 900001", Some("victim"), None).prefers(Method::Sms),
            h(),
            NOW,
            S(Sms, PACK, phone_to(MOBILE)),
        ),
    ]
}

#[test]
fn every_rule_decides_as_the_table_says() {
    let failures: Vec<String> = rows().iter().filter_map(mismatch).collect();
    assert!(failures.is_empty(), "{} rows decided otherwise:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn the_table_covers_every_reason_code_and_outcome() {
    let rows = rows();
    let reasons: BTreeSet<ReasonCode> = rows.iter().filter_map(|r| r.want.reason()).collect();
    let all: BTreeSet<ReasonCode> = ReasonCode::ALL.iter().copied().collect();
    assert_eq!(reasons, all, "reason codes without a row");
    for outcome in [Outcome::Send, Outcome::Defer, Outcome::Hold, Outcome::Block] {
        assert!(rows.iter().any(|r| r.want.outcome() == outcome), "no row for {outcome:?}");
    }
    // And every rule number has rows.
    for rule in (1..=15).map(|r| r.to_string()).chain(["1a".to_string()]) {
        let prefix = format!("{rule}:");
        let before = format!("{rule} before");
        assert!(
            rows.iter().any(|r| r.name.starts_with(&prefix) || r.name.starts_with(&before)),
            "no row for rule {rule}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The satisfaction survey (issue 15): the rules that apply to it, and those that do not

fn survey_rows() -> Vec<Row> {
    use Channel::{Email as Mail, Letter, Sms};
    use ReasonCode::*;
    let h = history;
    vec![
        row(
            "1: do_not_contact blocks a survey",
            survey("burglary").safe_mobile().do_not_contact(),
            h(),
            NOW,
            B(DoNotContact),
        ),
        row(
            "1: a cancelled case gets no survey",
            survey("burglary").safe_mobile(),
            h().with(|h| h.case_cancelled = true),
            NOW,
            B(DoNotContact),
        ),
        row(
            "1a: a victim who declined gets no survey",
            survey("burglary").safe_mobile(),
            h().with(|h| h.declined = true),
            NOW,
            B(Declined),
        ),
        row(
            "1a before 2: declined beats no_consent",
            survey("burglary").safe_mobile().survey_consent(false),
            h().with(|h| h.declined = true),
            NOW,
            B(Declined),
        ),
        row("2: a survey without consent", survey("theft").safe_mobile().survey_consent(false), h(), NOW, B(NoConsent)),
        row(
            "2: consent to the pack is not consent to the survey",
            job(Kind::SatisfactionSurvey, "theft").consent(true).safe_mobile(),
            h(),
            NOW,
            B(NoConsent),
        ),
        row(
            "2 before 3: no_consent beats suppressed",
            survey("theft").safe_mobile().survey_consent(false),
            h().suppressing(MOBILE),
            NOW,
            B(NoConsent),
        ),
        row(
            "3: the survey's number is suppressed",
            survey("theft").safe_mobile(),
            h().suppressing(MOBILE),
            NOW,
            B(Suppressed),
        ),
        row(
            "3: a suppressed preferred email is not fallen back around",
            survey("theft").safe_mobile().email("lee@example.org", None).prefers(Method::Email),
            h().suppressing("lee@example.org"),
            NOW,
            B(Suppressed),
        ),
        row(
            "4 does not apply: a survey that reads like domestic abuse is not held",
            survey("theft").priority(Some(false)).safe_mobile().summary("her ex-partner"),
            h(),
            NOW,
            S(Sms, SURVEY, phone_to(MOBILE)),
        ),
        row("5: a minor's survey is held", survey("theft").safe_mobile().under_18(true), h(), NOW, H(Minor)),
        row(
            "6 does not apply: no mobile is insufficient contact information",
            survey("burglary").phone(LANDLINE, Some("victim"), None),
            h(),
            NOW,
            B(InsufficientContactInfo),
        ),
        row(
            "6 does not apply: a safety-sensitive survey without a safe number is written_unsafe",
            survey("domestic_abuse").phone(MOBILE, Some("victim"), None).prefers(Method::Sms),
            h(),
            NOW,
            B(WrittenUnsafe),
        ),
        row(
            "7: the survey's number is someone else's",
            survey("theft").safe_mobile(),
            h().with(|h| {
                h.numbers_of_others.insert(MOBILE.into());
            }),
            NOW,
            H(NumberConflict),
        ),
        row(
            "8: safety-sensitive, preferred email not marked safe",
            survey("stalking").safe_mobile().email("lee@example.org", None).prefers(Method::Email),
            h(),
            NOW,
            B(WrittenUnsafe),
        ),
        row(
            "8: safety-sensitive, no preferred written method: no falling back to the safe mobile",
            survey("stalking").safe_mobile().prefers(Method::Phone),
            h(),
            NOW,
            B(WrittenUnsafe),
        ),
        row(
            "8: safety-sensitive, letters preferred: a survey never goes by letter",
            survey("hate_crime").safe_mobile().full_postal(Some(true)).prefers(Method::Letter),
            h(),
            NOW,
            B(WrittenUnsafe),
        ),
        row(
            "10: safety-sensitive, preferred email marked safe but invalid",
            survey("domestic_abuse").email("not-an-email", Some(true)).prefers(Method::Email),
            h(),
            NOW,
            B(InsufficientContactInfo),
        ),
        row(
            "10: not safety-sensitive, letters preferred and no mobile: never a letter",
            survey("theft").full_postal(None).email("lee@example.org", None).prefers(Method::Letter),
            h(),
            NOW,
            B(InsufficientContactInfo),
        ),
        row(
            "10: an invalid preferred email falls back to the textable number",
            survey("theft").safe_mobile().email("not-an-email", None).prefers(Method::Email),
            h(),
            NOW,
            S(Sms, SURVEY, phone_to(MOBILE)),
        ),
        row(
            "11: one survey per case",
            survey("theft").safe_mobile(),
            h().with(|h| h.other_survey_active = true),
            NOW,
            B(Duplicate),
        ),
        row(
            "11: a pre-text and a pack on the case are not a survey",
            survey("theft").safe_mobile(),
            h().with(|h| {
                h.other_pretext_active = true;
                h.other_information_pack_active = true;
            }),
            NOW,
            S(Sms, SURVEY, phone_to(MOBILE)),
        ),
        row(
            "12 does not apply: a priority survey does not wait for calls",
            survey("serious_violence").priority(Some(true)).safe_mobile().referred("2026-11-23T09:00:00Z"),
            h(),
            NOW,
            S(Sms, SURVEY, phone_to(MOBILE)),
        ),
        row(
            "13: a survey text at 22:30 waits for the morning",
            survey("theft").safe_mobile(),
            h(),
            "2026-11-23T22:30:00Z",
            defer(OutsideSafeHours, "2026-11-24T08:00:00Z", Sms),
        ),
        row(
            "13: a survey email is exempt from quiet hours",
            survey("theft").email("lee@example.org", None).prefers(Method::Email),
            h(),
            "2026-11-23T22:30:00Z",
            S(Mail, SURVEY, email_to("lee@example.org")),
        ),
        row(
            "13: but not from the victim's safe times",
            survey("theft").email("lee@example.org", None).prefers(Method::Email).safe_time(
                &[Day::Mon],
                "18:00",
                "20:00",
            ),
            h(),
            NOW,
            defer(OutsideSafeHours, "2026-11-23T18:00:00Z", Mail),
        ),
        row(
            "14: no approved survey wording",
            survey("theft").safe_mobile(),
            h().approving_only(&[(PACK, Sms), (SURVEY, Mail)]),
            NOW,
            H(NoApprovedTemplate),
        ),
        row(
            "14: the plain survey does not stand in for the discreet one",
            survey("domestic_abuse").safe_mobile().prefers(Method::Sms),
            h().approving_only(&[(SURVEY, Sms)]),
            NOW,
            H(NoApprovedTemplate),
        ),
        row(
            "15: not safety-sensitive, by text when email is not preferred",
            survey("theft").safe_mobile().email("lee@example.org", Some(true)),
            h(),
            NOW,
            S(Sms, SURVEY, phone_to(MOBILE)),
        ),
        row(
            "15: not safety-sensitive, email preferred",
            survey("theft").safe_mobile().email("Lee@Example.org", None).prefers(Method::Email),
            h(),
            NOW,
            S(Mail, SURVEY, email_to("lee@example.org")),
        ),
        row(
            "15: safety-sensitive by text: the discreet survey",
            survey("domestic_abuse").safe_mobile().prefers(Method::Sms),
            h(),
            NOW,
            S(Sms, SURVEY_DISCREET, phone_to(MOBILE)),
        ),
        row(
            "15: safety-sensitive by the preferred safe email: the plain survey",
            survey("sexual_violence").safe_mobile().email("lee@example.org", Some(true)).prefers(Method::Email),
            h(),
            NOW,
            S(Mail, SURVEY, email_to("lee@example.org")),
        ),
        row(
            "15: a burglary survey on a domestic-abuse case is discreet",
            survey("burglary").safe_mobile().prefers(Method::Sms),
            h().remembering(&["domestic_abuse"]),
            NOW,
            S(Sms, SURVEY_DISCREET, phone_to(MOBILE)),
        ),
        row(
            "15: the letter channel's wording is never chosen",
            survey("theft").safe_mobile().full_postal(Some(true)),
            h().approving_only(&[(SURVEY, Sms), (SURVEY, Letter)]),
            NOW,
            S(Sms, SURVEY, phone_to(MOBILE)),
        ),
    ]
}

#[test]
fn every_survey_rule_decides_as_the_table_says() {
    let failures: Vec<String> = survey_rows().iter().filter_map(mismatch).collect();
    assert!(failures.is_empty(), "{} rows decided otherwise:\n{}", failures.len(), failures.join("\n"));
}

/// Every rule that applies to a survey has rows, and so do the three that do not (4, 6, 12).
#[test]
fn the_survey_table_covers_every_rule_that_applies_and_those_that_do_not() {
    let rows = survey_rows();
    for rule in ["1", "1a", "2", "3", "5", "7", "8", "10", "11", "13", "14", "15"] {
        assert!(rows.iter().any(|r| r.name.starts_with(&format!("{rule}:"))), "no survey row for rule {rule}");
    }
    for rule in ["4", "6", "12"] {
        assert!(rows.iter().any(|r| r.name.starts_with(&format!("{rule} does not apply"))), "rule {rule}");
    }
    assert!(rows.iter().all(|r| r.job.0.kind == Kind::SatisfactionSurvey));
}

// ---------------------------------------------------------------------------------------------
// Keywords, age, configuration

#[test]
fn keywords_match_whole_words_prefixes_and_phrases() {
    let keywords = PolicyConfig::default().keywords;
    let matches = |text: &str| matches_keywords(text, &keywords);
    for text in [
        "her ex-partner smashed the windows",
        "Ex broke in",
        "PARTNERS argued",
        "husband's car",
        "racially aggravated",
        "harassment at work",
        "he strangled her",
        "threats  to -- kill",
        "a Forced Marriage",
        "so-called honour",
        "choked",
        "trafficked",
        "was raped",
    ] {
        assert!(matches(text), "{text:?} should match");
    }
    for text in [
        "exam papers stolen in Essex",
        "expensive bike taken",
        "the wifeless neighbour", // `wife` is a whole word, not a prefix
        "hateful graffiti",       // `hate` likewise
        "apartment burgled",      // partner only starts a word
        "threat to kidnap",       // a phrase needs all its words
        "kill threat",
        "",
    ] {
        assert!(!matches(text), "{text:?} should not match");
    }
    assert_eq!(keywords.len(), 30);
}

#[test]
fn keyword_configuration_accepts_unquoted_phrases_and_ignores_empty_entries() {
    let keywords = vec!["threat to kill".to_string(), "".to_string(), "*".to_string(), "\"\"".to_string()];
    assert!(matches_keywords("a threat to kill", &keywords));
    assert!(!matches_keywords("anything at all", &keywords));
}

#[test]
fn age_counts_whole_years_and_leap_day_birthdays_come_of_age_on_1_march() {
    let victim = |dob: &str| Victim { date_of_birth: Some(dob.parse().expect("date")), ..Victim::default() };
    let london = chrono_tz::Europe::London;
    assert!(is_under_18(&victim("2008-02-29"), at("2026-02-28T12:00:00Z"), london));
    assert!(!is_under_18(&victim("2008-02-29"), at("2026-03-01T12:00:00Z"), london));
    assert!(is_under_18(&victim("2030-01-01"), at("2026-03-01T12:00:00Z"), london)); // junk: held
    assert!(!is_under_18(&Victim::default(), at(NOW), london));
    assert!(!is_under_18(&Victim { is_under_18: Some(false), ..Victim::default() }, at(NOW), london));
}

#[test]
fn default_configuration_is_the_specification() {
    let config = PolicyConfig::default();
    assert_eq!(config.safety_sensitive_categories.len(), 8);
    assert_eq!(config.priority_categories.len(), 21);
    for v2 in ["false_imprisonment", "wounding_with_intent", "fraud_vulnerable", "cyber_crime_vulnerable"] {
        assert!(config.priority_categories.iter().any(|c| c == v2), "{v2}");
    }
    assert!(!config.priority_categories.iter().any(|c| c == "fraud" || c == "cyber_crime"));
    assert!(config.safety_sensitive_categories.iter().all(|c| config.priority_categories.contains(c)));
    assert_eq!(config.priority_vulnerabilities, DEFAULT_PRIORITY_VULNERABILITIES);
    assert_eq!(config.quiet_hours.0.to_string(), "08:00:00");
    assert_eq!(config.quiet_hours.1.to_string(), "20:00:00");
    assert_eq!(config.timezone, chrono_tz::Europe::London);
}

#[test]
fn categories_are_compared_without_regard_to_case() {
    let config = PolicyConfig::default();
    assert!(is_safety_sensitive(&pretext(" Domestic_Abuse ").0, &config));
    assert!(!is_safety_sensitive(&pretext("burglary").0, &config));
}

#[test]
fn configuration_changes_the_lists() {
    let config = PolicyConfig {
        safety_sensitive_categories: vec!["burglary".into()],
        keywords: vec!["window*".into()],
        ..PolicyConfig::default()
    };
    let now = at(NOW);
    let d = decide(&pretext("burglary").safe_mobile().0, &history(), now, &config);
    assert_eq!(d.route().map(|r| r.template), Some(PRETEXT_DISCREET));
    let d = decide(&pack("theft").safe_mobile().summary("smashed the windows").0, &history(), now, &config);
    assert_eq!(d, Decision::Hold(ReasonCode::PossiblePriority));
}

#[test]
fn a_deferral_carries_the_route_it_will_take() {
    let d = decide(
        &pretext("domestic_abuse").phone("07700900001", None, Some(true)).0,
        &history(),
        at("2026-11-23T22:30:00Z"),
        &PolicyConfig::default(),
    );
    assert_eq!(
        d,
        Decision::Defer {
            until: at("2026-11-24T08:00:00Z"),
            reason: ReasonCode::OutsideSafeHours,
            route: Route { channel: Channel::Sms, template: PRETEXT_DISCREET, recipient: phone_to(MOBILE) },
        }
    );
    assert_eq!(d.not_before(), Some(at("2026-11-24T08:00:00Z")));
}

// ---------------------------------------------------------------------------------------------
// The public scenarios (contract/examples/scenarios.json), every template approved.

fn scenario(request: serde_json::Value, clock: &str) -> Decision {
    let job: OutreachRequest = serde_json::from_value(request).expect("scenario request fits the schema");
    let job = job.validate().expect("scenario request is valid");
    decide(&job, &history(), at(clock), &PolicyConfig::default())
}

const CLOCK: &str = "2026-11-23T10:00:00Z";

#[test]
fn scenario_1_domestic_abuse_pretext_to_own_safe_mobile_is_sent_discreetly() {
    let d = scenario(
        serde_json::json!({
            "request_id": "ex-1", "case_ref": "EX-1", "kind": "priority_pretext",
            "crime": {"categories": ["domestic_abuse"]},
            "victim": {"first_name": "Ana"},
            "contact": {"phones": [{"number": "+447700900001", "belongs_to": "victim", "safe_to_text": true}],
                        "preferred_method": "phone"}
        }),
        CLOCK,
    );
    assert_eq!(
        d,
        Decision::Send(Route {
            channel: Channel::Sms,
            template: PRETEXT_DISCREET,
            recipient: phone_to("+447700900001")
        })
    );
}

#[test]
fn scenario_2_hate_crime_pretext_without_a_safe_number_is_held() {
    let d = scenario(
        serde_json::json!({
            "request_id": "ex-2", "case_ref": "EX-2", "kind": "priority_pretext",
            "crime": {"categories": ["hate_crime"]},
            "contact": {"phones": [{"number": "+447700900002", "belongs_to": "victim", "safe_to_text": false}]}
        }),
        CLOCK,
    );
    assert_eq!(d, Decision::Hold(ReasonCode::NoSafeNumber));
    assert_eq!(d.route(), None);
}

#[test]
fn scenario_3_domestic_abuse_follow_up_by_unchosen_email_is_blocked() {
    let d = scenario(
        serde_json::json!({
            "request_id": "ex-3", "case_ref": "EX-3", "kind": "information_pack", "priority": true,
            "crime": {"categories": ["domestic_abuse"]},
            "contact": {"email": {"address": "ana@example.org", "safe": true}, "preferred_method": "phone"},
            "consent": {"information_pack": true}
        }),
        CLOCK,
    );
    assert_eq!(d, Decision::Block(ReasonCode::WrittenUnsafe));
}

#[test]
fn scenario_4_burglary_victim_preferring_letters_gets_a_letter() {
    let d = scenario(
        serde_json::json!({
            "request_id": "ex-4", "case_ref": "EX-4", "kind": "information_pack",
            "crime": {"categories": ["burglary"], "summary": "house broken into while away"},
            "victim": {"first_name": "Lee", "date_of_birth": "1971-02-03"},
            "contact": {"postal": {"name": "Lee Jones", "lines": ["2 Station Road", "Coventry"], "postcode": "CV1 2AB", "safe": true},
                        "preferred_method": "letter"},
            "consent": {"information_pack": true}
        }),
        CLOCK,
    );
    assert_eq!(d, Decision::Send(Route { channel: Channel::Letter, template: PACK, recipient: letter_to_lee() }));
}

#[test]
fn scenario_5_information_pack_without_consent_is_blocked() {
    let d = scenario(
        serde_json::json!({
            "request_id": "ex-5", "case_ref": "EX-5", "kind": "information_pack",
            "crime": {"categories": ["theft"]},
            "contact": {"email": {"address": "lee@example.org", "safe": true}, "preferred_method": "email"},
            "consent": {"information_pack": false}
        }),
        CLOCK,
    );
    assert_eq!(d, Decision::Block(ReasonCode::NoConsent));
}

#[test]
fn scenario_6_a_text_at_22_30_waits_for_the_morning() {
    let d = scenario(
        serde_json::json!({
            "request_id": "ex-6", "case_ref": "EX-6", "kind": "information_pack",
            "crime": {"categories": ["criminal_damage"]},
            "contact": {"phones": [{"number": "+447700900006", "belongs_to": "victim", "safe_to_text": true}],
                        "preferred_method": "sms"},
            "consent": {"information_pack": true}
        }),
        "2026-11-23T22:30:00Z",
    );
    assert_eq!(
        d,
        Decision::Defer {
            until: at("2026-11-24T08:00:00Z"),
            reason: ReasonCode::OutsideSafeHours,
            route: Route { channel: Channel::Sms, template: PACK, recipient: phone_to("+447700900006") },
        }
    );
}

#[test]
fn scenario_7_non_priority_case_reading_like_domestic_abuse_is_held() {
    let d = scenario(
        serde_json::json!({
            "request_id": "ex-7", "case_ref": "EX-7", "kind": "information_pack", "priority": false,
            "crime": {"categories": ["criminal_damage"], "summary": "her ex-partner smashed the windows"},
            "contact": {"phones": [{"number": "+447700900007", "belongs_to": "victim", "safe_to_text": true}],
                        "preferred_method": "sms"},
            "consent": {"information_pack": true}
        }),
        CLOCK,
    );
    assert_eq!(d, Decision::Hold(ReasonCode::PossiblePriority));
}
