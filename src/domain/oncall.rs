//! The on-call rota, as pure rules: which replies are urgent items, who is notified at each step
//! of an escalation, and the fixed wording of a notification (no personal data: only that an
//! urgent item waits, its case reference and where to review it).
//!
//! Quiet hours and the safe-contact rules protect victims; they never apply to staff on call.

use serde::{Deserialize, Serialize};

use super::contact::{normalise_email, normalise_uk_mobile};
use super::reply::ReplyClass;
use super::{Channel, codes};

/// Whether a reply is an urgent item for the on-call rota: a distress reply, an unsafe one (the
/// number may be someone else's, or the victim may be at risk), and from a number on no case only
/// a distress reply (an unsafe reply there has no case to be unsafe about).
pub fn is_urgent(classification: ReplyClass, on_a_case: bool) -> bool {
    match classification {
        ReplyClass::Distress => true,
        ReplyClass::Unsafe => on_a_case,
        _ => false,
    }
}

codes!(NotificationStatus {
    // Waiting to be sent (or to be retried after a transient failure).
    Queued => "queued",
    // A worker holds it and is handing it to a provider.
    Sending => "sending",
    // A provider took it.
    Sent => "sent",
    // A provider refused it for good, or transient failures went on past the attempts allowed.
    Failed => "failed",
    // The provider may have it (no answer, or a worker died mid-send): never sent again; the
    // escalation moves on to the next contact at once instead.
    InDoubt => "in_doubt",
    // The item was acknowledged before it went.
    Stopped => "stopped",
});

/// Staff's on-call contacts, in escalation order. Staff data: never logged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contacts {
    /// Mobile numbers, E.164.
    pub sms: Vec<String>,
    /// Email addresses, lower-cased.
    pub email: Vec<String>,
}

/// One notification of an escalation step: the channel, the place of the contact in its list,
/// and the contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepContact<'a> {
    pub channel: Channel,
    pub index: usize,
    pub recipient: &'a str,
}

impl Contacts {
    /// The lists as configured (comma lists, already split); an entry that is not a number or an
    /// address is refused, naming its place in the list but not its value (staff data).
    pub fn parse(sms: &[String], email: &[String]) -> Result<Contacts, String> {
        let entries = |list: &[String]| -> Vec<String> {
            list.iter().map(|e| e.trim().to_string()).filter(|e| !e.is_empty()).collect()
        };
        let sms = entries(sms)
            .iter()
            .enumerate()
            .map(|(i, n)| {
                normalise_uk_mobile(n).or_else(|| is_e164(n).then(|| n.clone())).ok_or_else(|| {
                    format!("SAFEREACH_ONCALL_SMS: entry {} is not a mobile number (+447…, 07… or E.164)", i + 1)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let email = entries(email)
            .iter()
            .enumerate()
            .map(|(i, a)| {
                normalise_email(a)
                    .ok_or_else(|| format!("SAFEREACH_ONCALL_EMAIL: entry {} is not an email address", i + 1))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Contacts { sms, email })
    }

    pub fn is_empty(&self) -> bool {
        self.sms.is_empty() && self.email.is_empty()
    }

    /// Who step `step` (from 0) notifies: the step-th of each list that has entries, round the
    /// list (a list of two notifies its first, second, first, …).
    pub fn at_step(&self, step: u64) -> Vec<StepContact<'_>> {
        let mut contacts = Vec::new();
        for (channel, list) in [(Channel::Sms, &self.sms), (Channel::Email, &self.email)] {
            if !list.is_empty() {
                let index = (step % list.len() as u64) as usize;
                contacts.push(StepContact { channel, index, recipient: &list[index] });
            }
        }
        contacts
    }
}

fn is_e164(number: &str) -> bool {
    let digits = number.strip_prefix('+').unwrap_or("");
    (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0')
}

/// The subject of a notification email.
pub const SUBJECT: &str = "safereach: an urgent reply is waiting for a person";

/// The fixed wording of a notification: that an urgent item waits, its case reference (none for
/// a reply from a number on no case) and the link to the review page.
pub fn notification_text(case_ref: Option<&str>, review_url: &str) -> String {
    match case_ref {
        Some(case_ref) => {
            format!("safereach: an urgent reply is waiting for a person. Case {case_ref}. Review: {review_url}")
        }
        None => format!(
            "safereach: an urgent reply is waiting for a person. From a number on no case. Review: {review_url}"
        ),
    }
}

/// The review page under the public URL.
pub fn review_url(public_url: &str) -> String {
    format!("{}/staff/review", public_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn urgent_items_are_distress_anywhere_and_unsafe_on_a_case() {
        assert!(is_urgent(ReplyClass::Distress, true) && is_urgent(ReplyClass::Distress, false));
        assert!(is_urgent(ReplyClass::Unsafe, true) && !is_urgent(ReplyClass::Unsafe, false));
        for class in [ReplyClass::OptOut, ReplyClass::OptIn, ReplyClass::TimePreference, ReplyClass::Other] {
            assert!(!is_urgent(class, true), "{class:?}");
        }
    }

    #[test]
    fn contacts_are_normalised_and_a_bad_entry_is_named_by_place_not_value() {
        let c = Contacts::parse(
            &list(&["07700 900001", " +447700900002", "+33612345678", ""]),
            &list(&["On.Call@Example.org"]),
        )
        .unwrap();
        assert_eq!(c.sms, ["+447700900001", "+447700900002", "+33612345678"]);
        assert_eq!(c.email, ["on.call@example.org"]);
        let e = Contacts::parse(&list(&["07700 900001", "0121 496 0999x"]), &[]).unwrap_err();
        assert_eq!(e, "SAFEREACH_ONCALL_SMS: entry 2 is not a mobile number (+447…, 07… or E.164)");
        assert!(!e.contains("0121"));
        let e = Contacts::parse(&[], &list(&["someone at example.org"])).unwrap_err();
        assert!(e.starts_with("SAFEREACH_ONCALL_EMAIL: entry 1") && !e.contains("someone"));
        assert!(Contacts::parse(&[], &[]).unwrap().is_empty());
    }

    #[test]
    fn each_step_notifies_the_next_of_each_list_round_the_list() {
        let c = Contacts {
            sms: list(&["+447700900001", "+447700900002", "+447700900003"]),
            email: list(&["a@x.org", "b@x.org"]),
        };
        let at = |step| c.at_step(step).iter().map(|s| (s.channel, s.index)).collect::<Vec<_>>();
        assert_eq!(at(0), [(Channel::Sms, 0), (Channel::Email, 0)]);
        assert_eq!(at(1), [(Channel::Sms, 1), (Channel::Email, 1)]);
        assert_eq!(at(2), [(Channel::Sms, 2), (Channel::Email, 0)]);
        assert_eq!(at(3), [(Channel::Sms, 0), (Channel::Email, 1)]);
        let only_email = Contacts { sms: vec![], email: list(&["a@x.org"]) };
        assert_eq!(only_email.at_step(5)[0].recipient, "a@x.org");
        assert!(Contacts::default().at_step(0).is_empty());
    }

    #[test]
    fn the_wording_names_the_case_and_the_review_page_and_nothing_else() {
        let url = review_url("https://gateway.example.org/");
        assert_eq!(
            notification_text(Some("VS-2026-000123"), &url),
            "safereach: an urgent reply is waiting for a person. Case VS-2026-000123. Review: https://gateway.example.org/staff/review"
        );
        assert!(notification_text(None, &url).contains("From a number on no case"));
        assert!(super::super::sms::analyse(&notification_text(Some("VS-2026-000123"), &url)).segments == 1);
    }
}
