//! What can happen on a case. Every event is appended to the case timeline with its time, actor
//! and reason code; reports are queries over these.

use super::codes;
use serde::{Deserialize, Serialize};

codes!(EventType {
    // A decision when the job was accepted (the answer of POST /v1/outreach).
    Accepted => "accepted",
    // A decision taken again by the worker right before sending, or on release by staff.
    Decided => "decided",
    Sent => "sent",
    SendFailed => "send_failed",
    Status => "status",
    StatusIgnored => "status_ignored",
    Reply => "reply",
    Suppressed => "suppressed",
    SuppressionLifted => "suppression_lifted",
    Alert => "alert",
    Call => "call",
    Cancelled => "cancelled",
    DeadLettered => "dead_lettered",
    Released => "released",
    Requeued => "requeued",
    StaffAction => "staff_action",
    Redacted => "redacted",
    // A job that waited (held, deferred, dead-lettered) with nobody acting on it for the
    // `never_reached` retention, closed by retention; its last decision stays what the reports read.
    Expired => "expired",
    // The on-call rota (issue 18): a notification to staff on call about an urgent item reached
    // its provider, or ended without (reason: permanent, retries_exhausted, send_in_doubt), and a
    // member of staff acknowledged the urgent item. The detail names the step and the contact's
    // place in the rota, never the contact.
    OncallNotified => "oncall_notified",
    OncallFailed => "oncall_failed",
    OncallAcknowledged => "oncall_acknowledged",
});
