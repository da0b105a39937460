//! Provider status reports: a message's status moves forward only; a report that would move it
//! backwards (late, duplicate, out of order) is recorded on the timeline and left alone.
//!
//! The webhooks hand their reports to the process's `StatusReports` (a `Batcher`): the reports
//! that arrive together are applied in one transaction, in the order they came, each answered
//! after the commit (`apply_statuses`; a lone report is a batch of one).

use super::batcher::Batcher;
use crate::domain::event::EventType;
use crate::domain::{Channel, MessageStatus};
use crate::store::{Event, MessageKey, Result, Store, StoreError};

/// The most reports applied in one transaction.
const BATCH: usize = 64;

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

/// How a report names its message (`MessageKey`, owned, to wait in a batch).
#[derive(Debug, Clone)]
pub enum Reported {
    Ours(String),
    Provider(String),
    Email(String),
}

impl From<MessageKey<'_>> for Reported {
    fn from(key: MessageKey<'_>) -> Reported {
        match key {
            MessageKey::Ours(id) => Reported::Ours(id.to_string()),
            MessageKey::Provider(reference) => Reported::Provider(reference.to_string()),
            MessageKey::Email(id) => Reported::Email(id.to_string()),
        }
    }
}

/// One provider's report on one message.
#[derive(Debug, Clone)]
pub struct StatusReport {
    pub provider: String,
    pub channel: Option<Channel>,
    pub message: Reported,
    pub status: MessageStatus,
    pub detail: Option<serde_json::Value>,
    pub now: i64,
}

/// The process's batcher of status reports (see the module's comment).
#[derive(Clone)]
pub struct StatusReports(Batcher<StatusReport, Result<StatusChange>>);

impl StatusReports {
    /// Batches run one at a time, on Postgres too: two side by side measured no faster for
    /// report ingest, and end to end (reports arriving while the worker records its sends) was
    /// slower (about 490 against 600 msg/s with one; BENCHMARKS.md).
    pub fn start(store: Store, metrics: crate::telemetry::Metrics) -> StatusReports {
        StatusReports(Batcher::start(BATCH, 1, move |reports: Vec<StatusReport>| {
            metrics.batch("status", reports.len());
            let store = store.clone();
            async move { apply_statuses(&store, &reports).await }
        }))
    }

    /// Apply `report` with whatever other reports are waiting; its answer once they commit.
    pub async fn apply(&self, report: StatusReport) -> Result<StatusChange> {
        self.0.call(report).await.map_err(|e| StoreError::Unavailable(e.to_string()))?
    }
}

/// Apply a provider's status report for a message with the others that arrive together (the
/// webhooks' way): through the process's `StatusReports`.
pub async fn report_status(
    state: &super::AppState,
    provider: &str,
    channel: Option<Channel>,
    message: MessageKey<'_>,
    status: MessageStatus,
    detail: Option<serde_json::Value>,
    now: i64,
) -> Result<StatusChange> {
    let report = StatusReport { provider: provider.to_string(), channel, message: message.into(), status, detail, now };
    state.status_reports.apply(report).await
}

/// Apply a provider's status report for a message, alone (a batch of one).
pub async fn apply_status(
    store: &Store,
    provider: &str,
    channel: Option<Channel>,
    message: MessageKey<'_>,
    status: MessageStatus,
    detail: Option<serde_json::Value>,
    now: i64,
) -> Result<StatusChange> {
    let report = StatusReport { provider: provider.to_string(), channel, message: message.into(), status, detail, now };
    apply_statuses(store, std::slice::from_ref(&report)).await.pop().expect("one answer for one report")
}

/// Apply reports in one transaction, in order (a later report on a message sees what an
/// earlier one did). One answer per report. Should the batch fail, its reports are applied one
/// at a time, so that one cannot fail the others; unless the database is out of reach, which
/// every report is told.
pub async fn apply_statuses(store: &Store, reports: &[StatusReport]) -> Vec<Result<StatusChange>> {
    match try_apply(store, reports).await {
        Ok(changes) => changes.into_iter().map(Ok).collect(),
        Err(e) if reports.len() == 1 => vec![Err(e)],
        Err(e) if e.is_unavailable() => {
            let why = e.to_string();
            std::iter::once(Err(e))
                .chain((1..reports.len()).map(|_| Err(StoreError::Unavailable(why.clone()))))
                .collect()
        }
        Err(e) => {
            tracing::warn!(error = %e, reports = reports.len(), "a batch of status reports failed; applying them one at a time");
            let mut changes = Vec::with_capacity(reports.len());
            for report in reports {
                changes.push(Box::pin(apply_statuses(store, std::slice::from_ref(report))).await.remove(0));
            }
            changes
        }
    }
}

async fn try_apply(store: &Store, reports: &[StatusReport]) -> Result<Vec<StatusChange>> {
    let mut tx = store.begin().await?;
    // Every message the batch names, read and locked at once.
    let ids: Vec<&str> = reports
        .iter()
        .filter_map(|r| match &r.message {
            Reported::Ours(id) | Reported::Email(id) => Some(id.as_str()),
            Reported::Provider(_) => None,
        })
        .collect();
    let refs: Vec<(&str, &str)> = reports
        .iter()
        .filter_map(|r| match &r.message {
            Reported::Provider(reference) => Some((r.provider.as_str(), reference.as_str())),
            _ => None,
        })
        .collect();
    let mut messages = store.reported_messages_for_update(&mut tx, &ids, &refs).await?;
    let mut events = Vec::with_capacity(reports.len());
    let mut changes = Vec::with_capacity(reports.len());
    // Each message's moves, in order: (index in `messages`, status, at).
    let mut moved: Vec<(usize, MessageStatus, i64)> = Vec::new();
    for report in reports {
        let channel = match report.message {
            Reported::Email(_) => Some(Channel::Email),
            _ => report.channel,
        };
        let provider = report.provider.as_str();
        let found = messages.iter().position(|m| match &report.message {
            Reported::Ours(id) | Reported::Email(id) => m.id == *id,
            Reported::Provider(reference) => {
                m.provider.as_deref() == Some(provider) && m.provider_ref.as_deref() == Some(reference.as_str())
            }
        });
        // Only a message sent through this provider, on its channel: one provider's secret moves
        // nothing another provider carried. A message being handed over has no provider yet
        // (Kannel's and Twilio's reports can come first, even several): its channel must match.
        // One waiting to be sent or retried (`queued`) has nothing a provider could report on.
        let Some(at) = found.filter(|&i| {
            let m = &messages[i];
            channel.is_none_or(|c| c.as_str() == m.channel)
                && match m.provider.as_deref().filter(|p| !p.is_empty()) {
                    Some(p) => p == provider,
                    // None yet, or refused for good before any provider took it ("").
                    None => m.status != MessageStatus::Queued.as_str(),
                }
        }) else {
            changes.push(StatusChange::UnknownMessage);
            continue;
        };
        let message = &mut messages[at];
        let current = MessageStatus::parse(&message.status).unwrap_or(MessageStatus::Queued);
        let moves = current.can_move_to(report.status);
        if moves {
            // A later report on the message sees this one's status.
            message.status = report.status.as_str().to_string();
            moved.push((at, report.status, report.now));
        }
        let (case_ref, message_id) = (message.case_ref.clone(), message.id.clone());
        let kind = if moves { EventType::Status } else { EventType::StatusIgnored };
        let mut event = Event::new(&case_ref, report.now, &format!("provider:{provider}"), kind)
            .message(&message_id)
            .status(report.status);
        if let Some(detail) = &report.detail {
            event = event.detail(detail.clone());
        }
        events.push(event);
        changes.push(if moves {
            StatusChange::Moved { case_ref, message_id }
        } else {
            StatusChange::Ignored { case_ref, message_id }
        });
    }
    let mut writes = store.writes();
    store.set_message_statuses(&mut writes, &net_moves(&messages, &moved));
    Event::write_all(&mut writes, &events);
    writes.run(&mut tx).await?;
    tx.commit().await?;
    Ok(changes)
}

/// What a batch's moves leave on each message, as one move per message for
/// `Store::set_message_statuses`: the status and time of its last move, and the time of its last
/// move to a final status (as the moves applied one after the other would have left them).
fn net_moves<'a>(
    messages: &'a [crate::store::ReportedMessage],
    moved: &[(usize, MessageStatus, i64)],
) -> Vec<(&'a str, MessageStatus, i64, Option<i64>)> {
    let mut net: Vec<(usize, MessageStatus, i64, Option<i64>)> = Vec::new();
    for &(at, status, now) in moved {
        let final_at = status.is_final().then_some(now);
        match net.iter_mut().find(|(i, ..)| *i == at) {
            Some(known) => *known = (at, status, now, final_at.or(known.3)),
            None => net.push((at, status, now, final_at)),
        }
    }
    net.into_iter().map(|(at, status, now, final_at)| (messages[at].id.as_str(), status, now, final_at)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ReportedMessage;

    fn message(id: &str) -> ReportedMessage {
        ReportedMessage {
            id: id.into(),
            case_ref: "C".into(),
            status: "sent".into(),
            channel: "sms".into(),
            provider: Some("kannel".into()),
            provider_ref: None,
        }
    }

    #[test]
    fn a_batch_leaves_each_message_where_its_moves_one_after_the_other_would() {
        let messages = [message("a"), message("b"), message("c"), message("d")];
        let moved = [
            (0, MessageStatus::Undelivered, 10),
            (1, MessageStatus::Delivered, 11),
            (0, MessageStatus::Delivered, 12),
            (2, MessageStatus::Sent, 13),
            (3, MessageStatus::Sent, 14),
            (2, MessageStatus::Delivered, 15),
        ];
        let net = net_moves(&messages, &moved);
        assert_eq!(
            net,
            [
                // One move per message: the last one's status and time; final_at is the time of
                // the last move to a final status, None (left as it is) when there was none.
                ("a", MessageStatus::Delivered, 12, Some(12)),
                ("b", MessageStatus::Delivered, 11, Some(11)),
                ("c", MessageStatus::Delivered, 15, Some(15)),
                ("d", MessageStatus::Sent, 14, None),
            ]
        );
        assert!(net_moves(&messages, &[]).is_empty());
    }
}
