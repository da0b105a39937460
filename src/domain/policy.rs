//! The safe-contact decision (SAFE-CONTACT.md): one pure function, rules applied in order,
//! the first that matches decides.

use chrono::{DateTime, NaiveTime, Utc};

use super::request::OutreachRequest;
use super::{CaseHistory, Decision};

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
        todo!("spec defaults")
    }
}

/// Decide what to do with an outreach job now.
pub fn decide(job: &OutreachRequest, history: &CaseHistory, now: DateTime<Utc>, config: &PolicyConfig) -> Decision {
    let _ = (job, history, now, config);
    todo!()
}

/// TEMPORARY stub until the policy branch lands.
pub fn is_safety_sensitive(_job: &OutreachRequest, _config: &PolicyConfig) -> bool {
    todo!()
}
