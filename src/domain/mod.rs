//! Plain types and pure rules: no I/O, no async, no framework types.

pub mod call;
pub mod contact;
pub mod event;
pub mod language;
pub mod oncall;
pub mod policy;
pub mod reply;
pub mod request;
pub mod safe_times;
pub mod sms;
pub mod staffed_hours;
pub mod status;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use request::{Kind, OutreachRequest};
pub use status::{JobStatus, MessageStatus};

/// A written channel a message can go out on. (Phone calls are made by advocates, not by us.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Sms,
    Email,
    Letter,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Sms, Channel::Email, Channel::Letter];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Letter => "letter",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The four decisions of SAFE-CONTACT.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Send,
    Defer,
    Hold,
    Block,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Send => "send",
            Outcome::Defer => "defer",
            Outcome::Hold => "hold",
            Outcome::Block => "block",
        }
    }
}

macro_rules! codes {
    ($name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn parse(s: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|c| c.as_str() == s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use codes;

codes!(ReasonCode {
    DoNotContact => "do_not_contact",
    Declined => "declined",
    NoConsent => "no_consent",
    Suppressed => "suppressed",
    PossiblePriority => "possible_priority",
    Minor => "minor",
    NoSafeNumber => "no_safe_number",
    NoMobileNumber => "no_mobile_number",
    NumberConflict => "number_conflict",
    WrittenUnsafe => "written_unsafe",
    InsufficientContactInfo => "insufficient_contact_info",
    Duplicate => "duplicate",
    CallsFirst => "calls_first",
    OutsideSafeHours => "outside_safe_hours",
    NoApprovedTemplate => "no_approved_template",
});

/// The template names the policy chooses between (SAFE-CONTACT.md, "Template").
pub mod template_names {
    pub const PRIORITY_PRETEXT: &str = "priority_pretext";
    pub const PRIORITY_PRETEXT_DISCREET: &str = "priority_pretext_discreet";
    pub const INFORMATION_PACK: &str = "information_pack";
    pub const INFORMATION_PACK_DISCREET: &str = "information_pack_discreet";
    pub const SATISFACTION_SURVEY: &str = "satisfaction_survey";
    pub const SATISFACTION_SURVEY_DISCREET: &str = "satisfaction_survey_discreet";
}

/// Where a message goes: the normalised address the policy chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Recipient {
    /// E.164 UK mobile, `+447…`.
    Phone {
        number: String,
    },
    Email {
        address: String,
    },
    Postal {
        name: String,
        lines: Vec<String>,
        postcode: String,
    },
}

/// A send or defer targets one channel with one template and one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub channel: Channel,
    pub template: &'static str,
    pub recipient: Recipient,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Send(Route),
    Defer { until: DateTime<Utc>, reason: ReasonCode, route: Route },
    Hold(ReasonCode),
    Block(ReasonCode),
}

impl Decision {
    pub fn outcome(&self) -> Outcome {
        match self {
            Decision::Send(_) => Outcome::Send,
            Decision::Defer { .. } => Outcome::Defer,
            Decision::Hold(_) => Outcome::Hold,
            Decision::Block(_) => Outcome::Block,
        }
    }

    pub fn reason(&self) -> Option<ReasonCode> {
        match self {
            Decision::Send(_) => None,
            Decision::Defer { reason, .. } | Decision::Hold(reason) | Decision::Block(reason) => Some(*reason),
        }
    }

    pub fn route(&self) -> Option<&Route> {
        match self {
            Decision::Send(route) | Decision::Defer { route, .. } => Some(route),
            Decision::Hold(_) | Decision::Block(_) => None,
        }
    }

    pub fn not_before(&self) -> Option<DateTime<Utc>> {
        match self {
            Decision::Defer { until, .. } => Some(*until),
            _ => None,
        }
    }
}

/// What the store knows about a case when a job is decided. The store fills it; the policy only reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseHistory {
    /// The whole case was cancelled.
    pub case_cancelled: bool,
    /// This outreach job was cancelled.
    pub outreach_cancelled: bool,
    /// When this job was accepted (rule 12 counts from here when the referral time is absent).
    pub accepted_at: Option<DateTime<Utc>>,
    /// Advocate call attempts recorded on the case that count for rule 12 (`answered`,
    /// `no_answer`, `voicemail`).
    pub call_attempts: u32,
    /// A call with outcome `declined` is recorded on the case (rule 1a).
    pub declined: bool,
    /// The case's memory: the crime categories of every job accepted on it (this one included
    /// once stored), lower-case. Safety-sensitivity and "looks priority" are read from these.
    pub case_categories: std::collections::BTreeSet<String>,
    /// Some job accepted on the case was priority (a pre-text, or `priority: true`).
    pub case_priority: bool,
    /// The case was found safety-sensitive when a job was accepted (with the configuration of
    /// that time): it stays so.
    pub case_safety_sensitive: bool,
    /// Another pre-text for this case was sent or is being sent, or was accepted earlier and is
    /// still queued or deferred.
    pub other_pretext_active: bool,
    /// The same for another information pack.
    pub other_information_pack_active: bool,
    /// The same for another satisfaction survey (one per case).
    pub other_survey_active: bool,
    /// Of the request's own normalised addresses (phones in E.164, emails lower-case, postal keys),
    /// those that are suppressed.
    pub suppressed: std::collections::BTreeSet<String>,
    /// Of the request's own normalised phone numbers, those recorded — on any case, this one
    /// included — as belonging to someone other than the victim.
    pub numbers_of_others: std::collections::BTreeSet<String>,
    /// Approved (template name, channel) pairs.
    pub approved_templates: std::collections::BTreeSet<(String, Channel)>,
}
