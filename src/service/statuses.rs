//! Provider status reports: a message's status moves forward only; a report that would move it
//! backwards (late, duplicate, out of order) is recorded on the timeline and left alone.

use crate::domain::event::EventType;
use crate::domain::{Channel, MessageStatus};
use crate::store::{Event, MessageKey, Result, Store};

/// What a provider callback did to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    UnknownMessage,
    Moved {
        case_ref: String,
        message_id: String,
    },
    /// Recorded on the timeline, status left as it was (late, duplicate or backwards).
    Ignored {
        case_ref: String,
        message_id: String,
    },
}

/// Apply a provider's status report for a message. Statuses only move forward; anything else
/// is recorded on the timeline and left alone.
pub async fn apply_status(
    store: &Store,
    provider: &str,
    channel: Option<Channel>,
    message: MessageKey<'_>,
    status: MessageStatus,
    detail: Option<serde_json::Value>,
    now: i64,
) -> Result<StatusChange> {
    let mut tx = store.begin().await?;
    let channel = match message {
        MessageKey::Email(_) => Some(Channel::Email),
        _ => channel,
    };
    let found = store.reported_message_for_update(&mut tx, provider, message).await?;
    // Only a message sent through this provider, on its channel: one provider's secret moves
    // nothing another provider carried. A message being handed over has no provider yet
    // (Kannel's and Twilio's reports can come first, even several): its channel must match.
    // One waiting to be sent or retried (`queued`) has nothing a provider could report on.
    let Some((message_id, case_ref, current, _, _)) = found.filter(|(_, _, current, sent_on, sent_by)| {
        channel.is_none_or(|c| c.as_str() == sent_on)
            && match sent_by.as_deref().filter(|p| !p.is_empty()) {
                Some(p) => p == provider,
                // None yet, or refused for good before any provider took it ("").
                None => current != MessageStatus::Queued.as_str(),
            }
    }) else {
        return Ok(StatusChange::UnknownMessage);
    };
    let current = MessageStatus::parse(&current).unwrap_or(MessageStatus::Queued);
    let actor = format!("provider:{provider}");
    let moves = current.can_move_to(status);
    if moves {
        store.set_message_status(&mut tx, &message_id, status, now).await?;
    }
    let kind = if moves { EventType::Status } else { EventType::StatusIgnored };
    let mut event = Event::new(&case_ref, now, &actor, kind).message(&message_id).status(status);
    if let Some(detail) = detail {
        event = event.detail(detail);
    }
    event.append(&mut tx).await?;
    tx.commit().await?;
    Ok(if moves {
        StatusChange::Moved { case_ref, message_id }
    } else {
        StatusChange::Ignored { case_ref, message_id }
    })
}
