//! Delivering outreach jobs (the worker's use case): decide again → render the approved
//! template → claim → send → record. `process` runs them for one job and is callable from tests;
//! the worker (`crate::worker`) hands each job off the queue to a `Pipeline` (`pipeline.rs`),
//! which runs the same steps but groups the two database steps with other jobs' (group commit):
//! the decide-and-claim of the jobs that arrive together is one transaction (`claim.rs`), each
//! job sends on its own, and the results that arrive together are recorded in one (`record.rs`).
//!
//! The last check is the claim: the decision right before sending, the rendering and the claim of
//! the message are one transaction, with the case locked (Postgres: the case row and the
//! advisory locks of the job's addresses, which every writer of a suppression takes too; SQLite:
//! its single writer). So an opt-out, an unsafe mark, a call, a decline or a cancel that commits
//! before the claim always stops the send; one that comes later waits for the claim, and the
//! message is on its way. A batch decides its jobs one after the other, each seeing what the
//! ones before it did, exactly as if each had been decided alone.

mod claim;
mod pipeline;
mod record;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;

use self::claim::Claimed;
use self::record::Sent;
use crate::channels::{Channels, OutboundMessage};
use crate::clock::Clock;
use crate::domain::event::EventType;
use crate::domain::policy::PolicyConfig;
use crate::domain::{Decision, JobStatus, Recipient, Route};
use crate::store::{Claim, Event, MessageRecord, OutreachRecord, Store, StoreError};

pub use self::pipeline::Pipeline;

pub const ACTOR: &str = "worker";

/// A hold outside the policy: the approved template could not be rendered for this job.
pub const RENDER_FAILED: &str = "render_failed";

/// Dead-letter reasons. Transient failures went on past `max_attempts`:
pub const RETRIES_EXHAUSTED: &str = "retries_exhausted";
/// A worker died while handing the message over (its lease ran out with no result recorded):
pub const SEND_INTERRUPTED: &str = "send_interrupted";
/// The provider was asked but its answer never came (a timeout, a connection lost after the
/// request went): it may have the message. The event's detail names the provider.
pub const SEND_IN_DOUBT: &str = "send_in_doubt";

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WorkerError {
    /// The database could not be reached.
    fn is_unavailable(&self) -> bool {
        match self {
            WorkerError::Store(e) => e.is_unavailable(),
        }
    }

    fn unavailable(why: impl std::fmt::Display) -> WorkerError {
        WorkerError::Store(StoreError::Unavailable(why.to_string()))
    }
}

impl From<sqlx::Error> for WorkerError {
    fn from(e: sqlx::Error) -> Self {
        WorkerError::Store(e.into())
    }
}

/// What processing a job came to (for tests and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// Nothing to do: already sent, finished, or another worker is on it.
    Skipped,
    /// Decided again and not sent now (defer, hold or block).
    Decided(Decision),
    Sent {
        message_id: String,
    },
    /// A transient failure: tried again at the given time (ms).
    Retrying {
        at: i64,
    },
    DeadLettered,
    Failed,
}

pub struct Delivery {
    pub store: Store,
    pub clock: Clock,
    pub policy: PolicyConfig,
    pub channels: Channels,
    /// Where a test key's jobs go: the sandbox, whatever `channels` are.
    pub test_channels: Channels,
    pub max_attempts: u32,
    pub retry_base: Duration,
    /// How long a claim on a message lasts: longer than any send takes.
    pub send_lease: Duration,
    /// Wakes the relay after we wrote queue work.
    pub relay_wake: Arc<Notify>,
    /// Tests only (None in production): awaited inside the decide-and-claim transaction, after the
    /// decision to send and before the claim, with the job's id; lets a test commit something
    /// "between decide and claim" and show that it cannot slip through.
    pub before_claim: Option<ClaimHook>,
    /// The on-call rota: its notifications and escalations come through the same queue
    /// (`super::oncall`).
    pub oncall: Arc<super::oncall::Rota>,
}

/// See `Delivery::before_claim`.
pub type ClaimHook = Arc<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>;

/// A short name of what processing came to, for logs.
pub fn outcome_name(p: &Processed) -> &'static str {
    match p {
        Processed::Skipped => "skipped",
        Processed::Decided(d) => d.outcome().as_str(),
        Processed::Sent { .. } => "sent",
        Processed::Retrying { .. } => "retrying",
        Processed::DeadLettered => "dead_lettered",
        Processed::Failed => "failed",
    }
}

/// A send that the decision allows, rendered and stored, ready to hand to a provider.
struct Prepared {
    job: OutreachRecord,
    route: Route,
    message: MessageRecord,
}

/// Where a job is after its claim: finished, or sent and waiting for its result to be recorded.
enum Step {
    Done(Processed),
    /// Boxed: a job's message and request are large beside the other answers.
    Sent(Box<Sent>),
}

/// The one answer of a batch of one.
fn one<T>(mut answers: Vec<Result<T, WorkerError>>) -> Result<T, WorkerError> {
    answers.pop().expect("one answer for one item")
}

impl Delivery {
    /// Deliver one job on its own (a batch of one). The worker goes through a `Pipeline`
    /// instead, which batches the jobs that arrive together.
    pub async fn process(&self, outreach_id: &str) -> Result<Processed, WorkerError> {
        one(self.process_together(&[outreach_id.to_string()]).await)
    }

    /// Deliver these jobs together: decide again and claim them all in one transaction, send
    /// each (side by side), record all the results in one. One answer per job, in order.
    pub async fn process_together(&self, outreach_ids: &[String]) -> Vec<Result<Processed, WorkerError>> {
        let claimed = claim::decide_and_claim(self, outreach_ids).await;
        let steps = futures::future::join_all(claimed.into_iter().map(|c| async move {
            match c {
                Ok(claimed) => self.send_claimed(claimed).await,
                Err(e) => Err(e),
            }
        }))
        .await;
        let (mut answers, mut sends, mut sent_at) = (Vec::new(), Vec::new(), Vec::new());
        for (at, step) in steps.into_iter().enumerate() {
            answers.push(match step {
                Ok(Step::Done(done)) => Some(Ok(done)),
                Ok(Step::Sent(sent)) => {
                    sends.push(*sent);
                    sent_at.push(at);
                    None
                }
                Err(e) => Some(Err(e)),
            });
        }
        if !sends.is_empty() {
            for (at, recorded) in sent_at.into_iter().zip(record::record_sends(self, &sends).await) {
                answers[at] = Some(recorded);
            }
        }
        answers.into_iter().map(|a| a.unwrap_or_else(|| Err(WorkerError::unavailable("no answer")))).collect()
    }

    /// What follows the claim: hand a message we hold to its provider; or, when another worker
    /// holds it or one died holding it, do what that needs.
    async fn send_claimed(&self, claimed: Claimed) -> Result<Step, WorkerError> {
        let (prepared, claim) = match claimed {
            Ok(claimed) => claimed,
            Err(done) => return Ok(Step::Done(done)),
        };
        match claim {
            Claim::Claimed => {}
            Claim::Done => return Ok(Step::Done(Processed::Skipped)),
            Claim::Busy { until } => return self.look_again_after(&prepared.job, until).await.map(Step::Done),
            Claim::InDoubt => return self.dead_letter_in_doubt(&prepared).await.map(Step::Done),
        }
        let outbound = outbound(&prepared.message, &prepared.route.recipient);
        let channels = if prepared.job.test.0 { &self.test_channels } else { &self.channels };
        let result = channels.send(prepared.route.channel, &outbound).await;
        Ok(Step::Sent(Box::new(Sent { prepared, result })))
    }

    /// Another worker holds the message. Should it die mid-send, its job may come back to us
    /// before its lease runs out: look again after the lease, so that the job is not dropped.
    async fn look_again_after(&self, job: &OutreachRecord, until: i64) -> Result<Processed, WorkerError> {
        let mut tx = self.store.begin().await?;
        self.store.enqueue(&mut tx, &job.id, until + 1_000).await?;
        tx.commit().await?;
        Ok(Processed::Skipped)
    }

    /// A worker died mid-send: the provider may or may not have the message. Sending again could
    /// reach the victim twice, so the job waits for staff, who check with the provider (our
    /// message id is its reference) and requeue or cancel it. (A provider that does not answer is
    /// the same question, asked at once: `record::record_sends`, `SEND_IN_DOUBT`.)
    async fn dead_letter_in_doubt(&self, p: &Prepared) -> Result<Processed, WorkerError> {
        let now = self.clock.now_ms();
        tracing::warn!(message_id = %p.message.id, "a send was interrupted; dead-lettered for staff to check");
        let mut tx = self.store.begin().await?;
        self.store.set_outreach_status(&mut tx, &p.job.id, JobStatus::DeadLettered, now).await?;
        Event::new(&p.job.case_ref, now, ACTOR, EventType::DeadLettered)
            .outreach(&p.job.id)
            .message(&p.message.id)
            .reason(SEND_INTERRUPTED)
            .append(&mut tx)
            .await?;
        tx.commit().await?;
        Ok(Processed::DeadLettered)
    }
}

/// `base`, doubling with each attempt, capped at an hour, with ±20% jitter so that retries of
/// many jobs after an outage don't all land at once.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(Duration::from_secs(3600));
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    capped.mul_f64(jitter)
}

fn outbound(message: &MessageRecord, recipient: &Recipient) -> OutboundMessage {
    OutboundMessage {
        id: message.id.clone(),
        recipient: recipient.clone(),
        subject: message.subject.clone(),
        text: message.body.clone().unwrap_or_default(),
        html: message.html.clone(),
        sms: message.body.as_deref().filter(|_| message.channel == "sms").map(crate::domain::sms::analyse),
        language: message.language.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let base = Duration::from_secs(30);
        for attempt in 1..=4u32 {
            let expected = 30.0 * f64::from(1u32 << (attempt - 1));
            let got = backoff(base, attempt).as_secs_f64();
            assert!(got >= expected * 0.8 - 1e-9 && got <= expected * 1.2 + 1e-9, "attempt {attempt}: {got}");
        }
        assert!(backoff(base, 30) <= Duration::from_secs(4320));
    }
}
