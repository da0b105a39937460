//! Advocates' call attempts, as the triage system records them (`POST /v1/cases/{ref}/calls`).
//! A call decides too (SAFE-CONTACT.md, "Calls"): `declined` blocks the case (rule 1a),
//! `wrong_number` suppresses (rule 3), and the other three count as attempts for rule 12.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    Answered,
    NoAnswer,
    Voicemail,
    WrongNumber,
    Declined,
}

impl CallOutcome {
    pub const ALL: [CallOutcome; 5] = [
        CallOutcome::Answered,
        CallOutcome::NoAnswer,
        CallOutcome::Voicemail,
        CallOutcome::WrongNumber,
        CallOutcome::Declined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::NoAnswer => "no_answer",
            CallOutcome::Voicemail => "voicemail",
            CallOutcome::WrongNumber => "wrong_number",
            CallOutcome::Declined => "declined",
        }
    }

    pub fn parse(s: &str) -> Option<CallOutcome> {
        CallOutcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Rule 12 counts the calls that tried to reach the victim: a wrong number reached someone
    /// else, and a decline ends the contact anyway.
    pub fn counts_as_attempt(self) -> bool {
        matches!(self, CallOutcome::Answered | CallOutcome::NoAnswer | CallOutcome::Voicemail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_read_back_and_only_three_count_as_attempts() {
        for o in CallOutcome::ALL {
            assert_eq!(CallOutcome::parse(o.as_str()), Some(o));
            let json = serde_json::to_value(o).unwrap();
            assert_eq!(json, o.as_str());
        }
        let attempts: Vec<_> = CallOutcome::ALL.into_iter().filter(|o| o.counts_as_attempt()).collect();
        assert_eq!(attempts, [CallOutcome::Answered, CallOutcome::NoAnswer, CallOutcome::Voicemail]);
    }
}
