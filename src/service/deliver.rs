//! Delivering one outreach job (the worker's use case): decide again → render the approved
//! template → claim → send → record. Each step is a small function; `process` runs them in order
//! and is callable from tests. The worker (`crate::worker`) only hands it jobs off the queue.
//!
//! The last check is the claim: the decision right before sending, the rendering and the claim of
//! the message are one transaction, with the case locked (Postgres: the case row and the
//! advisory locks of the job's addresses, which every writer of a suppression takes too; SQLite:
//! its single writer). So an opt-out, an unsafe mark, a call, a decline or a cancel that commits
//! before the claim always stops the send; one that comes later waits for the claim, and the
//! message is on its way.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::AnyConnection;
use tokio::sync::Notify;

use super::decisions::{hold_for_staff, record_decision};
use crate::channels::{Accepted, Channels, OutboundMessage, SendError};
use crate::clock::Clock;
use crate::domain::event::EventType;
use crate::domain::policy::{PolicyConfig, decide};
use crate::domain::{Decision, JobStatus, Recipient, Route, contact};
use crate::store::{Claim, Event, MessageRecord, NewMessage, OutreachRecord, Store, StoreError};
use crate::templates;

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

impl Delivery {
    pub async fn process(&self, outreach_id: &str) -> Result<Processed, WorkerError> {
        let (prepared, claim) = match self.decide_and_claim(outreach_id).await? {
            Ok(claimed) => claimed,
            Err(done) => return Ok(done),
        };
        match claim {
            Claim::Claimed => {}
            Claim::Done => return Ok(Processed::Skipped),
            Claim::Busy { until } => return self.look_again_after(&prepared.job, until).await,
            Claim::InDoubt => return self.dead_letter_in_doubt(&prepared).await,
        }
        let outbound = outbound(&prepared.message, &prepared.route.recipient);
        let channels = if prepared.job.test.0 { &self.test_channels } else { &self.channels };
        let result = channels.send(prepared.route.channel, &outbound).await;
        self.record_send(&prepared, result).await
    }

    /// In one transaction: decide again with what the store knows now; when the answer is send,
    /// render the template approved now, create the message (or bring a retried one up to date)
    /// and claim it. `Err(done)` when there is nothing to send.
    async fn decide_and_claim(&self, outreach_id: &str) -> Result<Result<(Prepared, Claim), Processed>, WorkerError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let done = self.decide_and_claim_in(&mut tx, outreach_id, now).await?;
        tx.commit().await?;
        if matches!(done, Err(Processed::Decided(_))) {
            // A deferral wrote queue work.
            self.relay_wake.notify_one();
        }
        Ok(done)
    }

    /// `decide_and_claim` inside the caller's transaction (so that several jobs can later be
    /// decided and claimed in one), which must commit for the claim to hold.
    async fn decide_and_claim_in(
        &self,
        tx: &mut AnyConnection,
        outreach_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<(Prepared, Claim), Processed>, WorkerError> {
        let now_ms = now.timestamp_millis();
        self.store.lock_case_of_job(&mut *tx, outreach_id).await?;
        let Some(job) = self.store.outreach_for_update(&mut *tx, outreach_id).await? else {
            return Ok(Err(Processed::Skipped));
        };
        // A redacted job is finished: it has nothing left to decide on.
        if !job.status.is_to_be_sent() || job.redacted_at.is_some() {
            return Ok(Err(Processed::Skipped));
        }
        if let Some(existing) = self.store.message_of_outreach(&mut *tx, &job.id).await?
            && existing.status().is_handed_over()
        {
            // Sent before, but the job's own status was not updated (a crash in between).
            self.store.set_outreach_status(&mut *tx, &job.id, JobStatus::Sent, now_ms).await?;
            return Ok(Err(Processed::Skipped));
        }
        let request = job.request()?;
        // Whoever suppresses one of these addresses waits for our claim, or we see it.
        let keys: Vec<String> =
            contact::addresses_in(&request.contact).iter().map(|a| self.store.address_key(a)).collect();
        self.store.lock_addresses(&mut *tx, &keys).await?;
        let history = self.store.history(&mut *tx, &request, Some((&job.id, job.accepted_at)), now_ms).await?;
        let decision = decide(&request, &history, now, &self.policy);
        let route = match &decision {
            Decision::Send(route) => route.clone(),
            _ => {
                record_decision(&self.store, &mut *tx, &job, &decision, now_ms, ACTOR, EventType::Decided).await?;
                return Ok(Err(Processed::Decided(decision)));
            }
        };
        // The victim's language when a version in it is approved, else English.
        let language = request.victim.language_code();
        let Some(template) =
            self.store.approved_version(&mut *tx, route.template, route.channel.as_str(), &language).await?
        else {
            // Retired between the policy's look and ours: a person must look, as rule 14 says.
            let hold = Decision::Hold(crate::domain::ReasonCode::NoApprovedTemplate);
            record_decision(&self.store, &mut *tx, &job, &hold, now_ms, ACTOR, EventType::Decided).await?;
            return Ok(Err(Processed::Decided(hold)));
        };
        let content = templates::TemplateContent {
            subject: template.subject.clone(),
            body: template.body.clone(),
            html: template.html.clone(),
        };
        let rendered = match templates::render(
            route.channel,
            &content,
            &templates::render_vars(request.victim.first_name.as_deref(), &request.personalisation),
        ) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(outreach_id = %job.id, template = route.template, error = %e, "template did not render; held for staff");
                hold_for_staff(&self.store, &mut *tx, &job, RENDER_FAILED, now_ms, ACTOR).await?;
                return Ok(Err(Processed::Decided(decision)));
            }
        };
        // The job's own row says send (a release by staff may have found it held).
        record_decision(&self.store, &mut *tx, &job, &decision, now_ms, ACTOR, EventType::Decided).await?;
        let new = NewMessage {
            outreach_id: job.id.clone(),
            case_ref: job.case_ref.clone(),
            channel: route.channel.as_str(),
            template: template.name.clone(),
            template_version: template.version,
            language: template.language.clone(),
            test: job.test.0,
            to_normalised: contact::recipient_key(&route.recipient),
            to_address: serde_json::to_string(&route.recipient).unwrap_or_default(),
            subject: rendered.subject,
            body: rendered.text,
            html: rendered.html,
            encoding: rendered.sms.map(|s| match s.encoding {
                crate::domain::sms::Encoding::Gsm7 => "gsm7",
                crate::domain::sms::Encoding::Ucs2 => "ucs2",
            }),
            segments: rendered.sms.map(|s| s.segments as i64),
        };
        // A retry (the earlier attempt surely never reached a provider) is rendered afresh, with
        // the wording approved now.
        let message = self.store.message_for(&mut *tx, &new, now_ms).await?;
        if let Some(hook) = &self.before_claim {
            hook(job.id.clone()).await;
        }
        let claim = self.store.claim_in(&mut *tx, &message.id, now_ms, self.send_lease.as_millis() as i64).await?;
        Ok(Ok((Prepared { job, route, message }, claim)))
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
    /// the same question, asked at once: `record_send`, `SEND_IN_DOUBT`.)
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

    /// Record what the provider said.
    async fn record_send(&self, p: &Prepared, result: Result<Accepted, SendError>) -> Result<Processed, WorkerError> {
        let now = self.clock.now_ms();
        let (job, message) = (&p.job, &p.message);
        let channel = p.route.channel.as_str();
        let mut tx = self.store.begin().await?;
        let done = match result {
            Ok(accepted) => {
                self.store.mark_sent(&mut tx, &message.id, accepted.provider, &accepted.provider_ref, now).await?;
                self.store.set_outreach_status(&mut tx, &job.id, JobStatus::Sent, now).await?;
                Event::new(&job.case_ref, now, ACTOR, EventType::Sent)
                    .outreach(&job.id)
                    .message(&message.id)
                    .channel(channel)
                    .status(crate::domain::MessageStatus::Sent)
                    .detail(serde_json::json!({
                        "provider": accepted.provider,
                        "template": message.template,
                        "template_version": message.template_version,
                    }))
                    .append(&mut tx)
                    .await?;
                tracing::info!(
                    case_ref = %job.case_ref,
                    outreach_id = %job.id,
                    message_id = %message.id,
                    channel,
                    provider = accepted.provider,
                    "message handed to the provider"
                );
                Processed::Sent { message_id: message.id.clone() }
            }
            Err(SendError::Permanent(why)) => {
                tracing::warn!(message_id = %message.id, error = %why, "provider refused the message for good");
                self.store.mark_failed(&mut tx, &message.id, "", now).await?;
                self.store.set_outreach_status(&mut tx, &job.id, JobStatus::Failed, now).await?;
                Event::new(&job.case_ref, now, ACTOR, EventType::SendFailed)
                    .outreach(&job.id)
                    .message(&message.id)
                    .channel(channel)
                    .status(crate::domain::MessageStatus::Failed)
                    .reason("permanent")
                    .append(&mut tx)
                    .await?;
                Processed::Failed
            }
            // The provider may have the message: no retry, no other provider. Like a send cut off
            // mid-way, it waits for staff, who ask the provider (our message id is the reference)
            // and requeue or cancel it.
            Err(SendError::InDoubt { provider, why }) => {
                tracing::warn!(
                    message_id = %message.id,
                    provider,
                    error = %why,
                    "no answer from the provider, which may have the message; dead-lettered for staff to check, not sent again"
                );
                self.store.leave_in_doubt(&mut tx, &message.id, provider).await?;
                self.store.set_outreach_status(&mut tx, &job.id, JobStatus::DeadLettered, now).await?;
                Event::new(&job.case_ref, now, ACTOR, EventType::DeadLettered)
                    .outreach(&job.id)
                    .message(&message.id)
                    .channel(channel)
                    .reason(SEND_IN_DOUBT)
                    .detail(serde_json::json!({ "provider": provider }))
                    .append(&mut tx)
                    .await?;
                Processed::DeadLettered
            }
            Err(SendError::Transient(why)) => {
                tracing::warn!(message_id = %message.id, error = %why, "provider failed; will retry");
                self.store.release_message(&mut tx, &message.id, now).await?;
                let attempts = self.store.count_attempt(&mut tx, &job.id, now).await?;
                let event = Event::new(&job.case_ref, now, ACTOR, EventType::SendFailed)
                    .outreach(&job.id)
                    .message(&message.id)
                    .channel(channel)
                    .reason("transient")
                    .detail(serde_json::json!({ "attempt": attempts }));
                event.append(&mut tx).await?;
                if attempts >= self.max_attempts as i64 {
                    self.store.set_outreach_status(&mut tx, &job.id, JobStatus::DeadLettered, now).await?;
                    Event::new(&job.case_ref, now, ACTOR, EventType::DeadLettered)
                        .outreach(&job.id)
                        .reason(RETRIES_EXHAUSTED)
                        .append(&mut tx)
                        .await?;
                    Processed::DeadLettered
                } else {
                    let at = now + backoff(self.retry_base, attempts as u32).as_millis() as i64;
                    self.store.enqueue(&mut tx, &job.id, at).await?;
                    Processed::Retrying { at }
                }
            }
        };
        tx.commit().await?;
        Ok(done)
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
