//! The message status machine: statuses only ever move forward. A callback that would move a
//! status backwards (or sideways between two final statuses) is recorded but does not move it.

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

#[cfg(test)]
mod tests {
    use super::MessageStatus::*;
    use super::*;

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
