//! The status machines. A message's status only ever moves forward: a callback that would move
//! it backwards (or sideways between two final statuses) is recorded but does not move it. A
//! job's status (`JobStatus`) follows its decisions, its send and the people who act on it.

use super::codes;
use serde::{Deserialize, Serialize};

codes!(MessageStatus {
    Queued => "queued",
    Sending => "sending",
    Sent => "sent",
    Printed => "printed",
    Posted => "posted",
    Delivered => "delivered",
    Failed => "failed",
    Undelivered => "undelivered",
    Bounced => "bounced",
    Returned => "returned",
});

impl MessageStatus {
    /// How far along a message is. Final statuses share the top rank, so none replaces another.
    fn rank(self) -> u8 {
        use MessageStatus::*;
        match self {
            Queued => 0,
            Sending => 1,
            Sent => 2,
            Printed => 3,
            Posted => 4,
            Delivered | Failed | Undelivered | Bounced | Returned => 5,
        }
    }

    pub fn is_final(self) -> bool {
        self.rank() == 5
    }

    /// The provider has taken the message (or more): it must never be sent again.
    pub fn is_handed_over(self) -> bool {
        self.rank() >= MessageStatus::Sent.rank()
    }

    /// Whether a message in `self` may move to `next`.
    pub fn can_move_to(self, next: MessageStatus) -> bool {
        next.rank() > self.rank()
    }
}

codes!(JobStatus {
    // To be sent: on the queue (or its outbox), or being sent.
    Queued => "queued",
    // To be sent later (`not_before`): safe times, quiet hours, calls first.
    Deferred => "deferred",
    // Waits for a person (a hold reason, or `render_failed`).
    Held => "held",
    Blocked => "blocked",
    Sent => "sent",
    Failed => "failed",
    Cancelled => "cancelled",
    // The worker gave up (retries exhausted, a send interrupted or in doubt): waits for a person.
    DeadLettered => "dead_lettered",
});

impl JobStatus {
    /// A job's status after a decision.
    pub fn for_outcome(outcome: crate::domain::Outcome) -> JobStatus {
        use crate::domain::Outcome;
        match outcome {
            Outcome::Send => JobStatus::Queued,
            Outcome::Defer => JobStatus::Deferred,
            Outcome::Hold => JobStatus::Held,
            Outcome::Block => JobStatus::Blocked,
        }
    }

    /// Nothing more will happen to the job (retention may reduce its request).
    pub fn is_finished(self) -> bool {
        matches!(self, JobStatus::Sent | JobStatus::Failed | JobStatus::Blocked | JobStatus::Cancelled)
    }

    /// The worker decides it again when it comes off the queue.
    pub fn is_to_be_sent(self) -> bool {
        matches!(self, JobStatus::Queued | JobStatus::Deferred)
    }

    /// Waits for a person: the staff review queue lists it, and staff release or cancel it.
    pub fn waits_for_review(self) -> bool {
        matches!(self, JobStatus::Held | JobStatus::DeadLettered)
    }

    /// Still waiting for a person or a time (retention closes one nobody acts on).
    pub fn is_waiting(self) -> bool {
        matches!(self, JobStatus::Held | JobStatus::Deferred | JobStatus::DeadLettered)
    }

    /// A cancel (API, staff, erasure, a call's decline) can still stop it.
    pub fn is_cancellable(self) -> bool {
        !self.is_finished()
    }

    /// Whether a job in `self` may move to `next`: a decision again (worker, staff, a call) while
    /// it may still be sent or waits for a person; its send's end (sent, failed, dead-lettered)
    /// from `queued` (or from `deferred`, found sent after a crash); back to work (`queued`) from
    /// review; cancelled (or closed by retention) while not finished. A finished job never moves.
    pub fn can_move_to(self, next: JobStatus) -> bool {
        use JobStatus::*;
        match (self, next) {
            (from, _) if from.is_finished() => false,
            (_, Cancelled) => true,
            (Queued | Deferred, Queued | Deferred | Held | Blocked | Sent) => true,
            (Queued, Failed | DeadLettered) => true,
            (Held | DeadLettered, Queued) => true,
            (Held, Blocked) => true,
            _ => false,
        }
    }

    /// `'a', 'b'` for an SQL `IN (…)` list of these statuses (constants only, never input).
    pub fn sql_list(statuses: &[JobStatus]) -> String {
        statuses.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(", ")
    }
}

impl TryFrom<String> for JobStatus {
    type Error = UnknownStatus;
    fn try_from(s: String) -> Result<JobStatus, UnknownStatus> {
        JobStatus::parse(&s).ok_or(UnknownStatus(s))
    }
}

/// A status text that names no status (a corrupt row).
#[derive(Debug, thiserror::Error)]
#[error("unknown job status {0:?}")]
pub struct UnknownStatus(String);

#[cfg(test)]
mod tests {
    use super::MessageStatus::*;
    use super::*;

    #[test]
    fn a_finished_job_never_moves_and_review_sends_back_to_work() {
        use JobStatus as J;
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(*s));
            for t in JobStatus::ALL {
                if s.is_finished() {
                    assert!(!s.can_move_to(*t), "{s} -> {t}");
                }
            }
            assert_eq!(s.is_cancellable(), s.can_move_to(J::Cancelled), "{s}");
        }
        assert!(J::Held.can_move_to(J::Queued) && J::DeadLettered.can_move_to(J::Queued));
        assert!(J::Queued.can_move_to(J::Sent) && J::Queued.can_move_to(J::DeadLettered));
        assert!(!J::Held.can_move_to(J::Sent), "a held job is sent only after a release and a new decision");
        assert!(!J::DeadLettered.can_move_to(J::Sent) && !J::Deferred.can_move_to(J::Failed));
        assert_eq!(J::for_outcome(crate::domain::Outcome::Hold), J::Held);
        assert_eq!(JobStatus::sql_list(&[J::Held, J::DeadLettered]), "'held', 'dead_lettered'");
    }

    #[test]
    fn statuses_move_forward_only() {
        assert!(Queued.can_move_to(Sending));
        assert!(Sending.can_move_to(Sent));
        assert!(Sent.can_move_to(Delivered));
        assert!(Sent.can_move_to(Printed));
        assert!(Printed.can_move_to(Posted));
        assert!(Posted.can_move_to(Returned));
        assert!(!Delivered.can_move_to(Sent));
        assert!(!Delivered.can_move_to(Failed));
        assert!(!Failed.can_move_to(Delivered));
        assert!(!Sent.can_move_to(Sent));
        assert!(!Posted.can_move_to(Printed));
    }

    #[test]
    fn final_statuses_are_final_and_every_code_parses_back() {
        for s in MessageStatus::ALL {
            assert_eq!(MessageStatus::parse(s.as_str()), Some(*s));
            for t in MessageStatus::ALL {
                if s.is_final() {
                    assert!(!s.can_move_to(*t), "{s} -> {t}");
                }
            }
        }
        assert!(Sent.is_handed_over() && !Sending.is_handed_over());
    }
}
