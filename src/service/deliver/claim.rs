//! Decide again and claim: a batch of jobs in one transaction (a lone job is a batch of one).
//!
//! The batch's cases are locked first, in case_ref order (Postgres; SQLite has one writer), then
//! its jobs' rows, then the advisory locks of all their addresses, in sorted order: the lock
//! order of every other transaction. The history of all the batch's cases is read once, after
//! the locks; then each job is decided in the order it came, and what it came to (a send with its
//! message, a deferral, a hold) is noted in the history (`Histories::add_job`), so that a later
//! job of the same case sees it exactly as if the two had been decided one after the other
//! (rule 11: one pre-text). The writes go in a few statements for the lot, then the claims in one.

use super::{ACTOR, Delivery, Prepared, Processed, RENDER_FAILED, WorkerError};
use crate::domain::event::EventType;
use crate::domain::policy::decide;
use crate::domain::{Decision, JobStatus, MessageStatus, OutreachRequest, ReasonCode, contact};
use crate::service::decisions::{decision_event, hold_for_staff, run_at};
use crate::store::{
    Claim, Event, Histories, JobNote, MessageRecord, NewMessage, NewMessageRow, OutreachRecord, TemplateVersion, new_id,
};
use crate::templates;

/// What decide-and-claim came to for one job: a message to send (and the claim's answer), or
/// nothing to send (`Err`: skipped, or decided not to send now).
pub(super) type Claimed = Result<(Prepared, Claim), Processed>;

/// Decide again and claim each of these jobs (outreach ids) in one transaction; one answer per
/// id, in order. Should the batch fail (a deadlock between two batches on Postgres, a job whose
/// request cannot be read), its jobs are done one at a time, so that one cannot fail the others;
/// unless the database is out of reach, which every job is told.
pub(super) async fn decide_and_claim(d: &Delivery, ids: &[String]) -> Vec<Result<Claimed, WorkerError>> {
    match try_decide_and_claim(d, ids).await {
        Ok(claimed) => {
            if claimed.iter().any(|c| matches!(c, Err(Processed::Decided(_)))) {
                // A deferral wrote queue work.
                d.relay_wake.notify_one();
            }
            claimed.into_iter().map(Ok).collect()
        }
        Err(e) if ids.len() == 1 => vec![Err(e)],
        Err(e) if e.is_unavailable() => {
            let why = e.to_string();
            std::iter::once(Err(e)).chain((1..ids.len()).map(|_| Err(WorkerError::unavailable(&why)))).collect()
        }
        Err(e) => {
            tracing::warn!(error = %e, jobs = ids.len(), "a batch of decide-and-claims failed; doing them one at a time");
            let mut answers = Vec::with_capacity(ids.len());
            for id in ids {
                answers.push(Box::pin(decide_and_claim(d, std::slice::from_ref(id))).await.remove(0));
            }
            answers
        }
    }
}

/// A job of the batch that is to be decided.
struct ToDecide {
    at: usize,
    job: OutreachRecord,
    request: OutreachRequest,
}

async fn try_decide_and_claim(d: &Delivery, ids: &[String]) -> Result<Vec<Claimed>, WorkerError> {
    let store = &d.store;
    let now = d.clock.now();
    let now_ms = now.timestamp_millis();
    let mut tx = store.begin().await?;
    let cases = store.cases_of_jobs(&mut tx, ids).await?;
    store.lock_cases(&mut tx, &cases.iter().map(String::as_str).collect::<Vec<_>>()).await?;
    let mut jobs = store.outreach_many_for_update(&mut tx, ids).await?;
    let mut messages = store.messages_of_jobs(&mut tx, ids).await?;

    let mut answers: Vec<Option<Claimed>> = ids.iter().map(|_| None).collect();
    let (mut to_decide, mut handed_over) = (Vec::new(), Vec::new());
    for (at, id) in ids.iter().enumerate() {
        // Gone, or on the queue twice in one batch (its first look is the one it needs).
        let Some(job) = jobs.remove(id) else {
            answers[at] = Some(Err(Processed::Skipped));
            continue;
        };
        // A redacted job is finished: it has nothing left to decide on.
        if !job.status.is_to_be_sent() || job.redacted_at.is_some() {
            answers[at] = Some(Err(Processed::Skipped));
            continue;
        }
        if messages.get(id).is_some_and(|m| m.status().is_handed_over()) {
            // Sent before, but the job's own status was not updated (a crash in between).
            handed_over.push((job.id.clone(), JobStatus::Sent));
            answers[at] = Some(Err(Processed::Skipped));
            continue;
        }
        let request = job.request()?;
        to_decide.push(ToDecide { at, job, request });
    }
    // Written before the history is read, not with the batch's other writes: a job of the same
    // case decided below must see these as sent (rule 11), whatever status they had.
    let handed_over: Vec<(&str, JobStatus)> = handed_over.iter().map(|(id, s)| (id.as_str(), *s)).collect();
    let mut writes = store.writes();
    store.set_outreach_statuses(&mut writes, &handed_over, now_ms);
    writes.run(&mut tx).await?;

    // Whoever suppresses one of these addresses waits for our claim, or we see it.
    let keys: Vec<String> = to_decide
        .iter()
        .flat_map(|t| contact::addresses_in(&t.request.contact))
        .map(|a| store.address_key(&a))
        .collect();
    store.lock_addresses(&mut tx, &keys).await?;
    let requests: Vec<&OutreachRequest> = to_decide.iter().map(|t| &t.request).collect();
    let (mut histories, approved) = if requests.is_empty() {
        (Histories::default(), Vec::new())
    } else {
        (store.histories(&mut tx, &requests).await?, store.approved_versions(&mut tx).await?)
    };

    let (mut decided, mut events, mut work) = (Vec::new(), Vec::new(), Vec::new());
    let (mut new_messages, mut to_claim) = (Vec::new(), Vec::new());
    for ToDecide { at, job, request } in to_decide {
        let history = histories.of(&request, Some(job.as_this()), now_ms, false);
        let mut decision = decide(&request, &history, now, &d.policy);
        let mut note = JobNote {
            id: &job.id,
            kind: &job.kind,
            test: job.test.0,
            status: JobStatus::for_outcome(decision.outcome()),
            accepted_at: job.accepted_at,
            message: false,
            sending: false,
        };
        let prepared = match &decision {
            Decision::Send(route) => {
                // The victim's language when a version in it is approved, else English.
                match approved_version(
                    &approved,
                    route.template,
                    route.channel.as_str(),
                    &request.victim.language_code(),
                ) {
                    // Retired between the policy's look and ours: a person must look, as rule 14 says.
                    None => {
                        decision = Decision::Hold(ReasonCode::NoApprovedTemplate);
                        note.status = JobStatus::Held;
                        None
                    }
                    Some(template) => match new_message(&job, &request, route, template) {
                        Ok(new) => Some(new),
                        Err(e) => {
                            tracing::warn!(outreach_id = %job.id, template = route.template, error = %e, "template did not render; held for staff");
                            hold_for_staff(store, &mut tx, &job, RENDER_FAILED, now_ms, ACTOR).await?;
                            note.status = JobStatus::Held;
                            histories.add_job(&job.case_ref, note);
                            answers[at] = Some(Err(Processed::Decided(decision)));
                            continue;
                        }
                    },
                }
            }
            _ => None,
        };
        // The job's own row says what was decided (a send: a release by staff may have found it held).
        events.push(decision_event(&job, &decision, now_ms, ACTOR, EventType::Decided));
        if decision.outcome() == crate::domain::Outcome::Defer
            && let Some(run_at) = run_at(&decision, now_ms)
        {
            work.push((job.id.clone(), run_at));
        }
        let Some(new) = prepared else {
            histories.add_job(&job.case_ref, note);
            decided.push((job.id.clone(), decision.clone()));
            answers[at] = Some(Err(Processed::Decided(decision)));
            continue;
        };
        decided.push((job.id.clone(), decision.clone()));
        // A retry (the earlier attempt surely never reached a provider) is rendered afresh, with
        // the wording approved now; a message in flight or in doubt stays as it is (the claim
        // says which).
        let message = match messages.remove(&job.id) {
            Some(existing) if existing.status() == MessageStatus::Queued => {
                store.message_for(&mut tx, &new, now_ms).await?
            }
            Some(existing) => existing,
            None => {
                let message = queued_message(new_id("msg"), &new, now_ms);
                new_messages.push((message.id.clone(), new));
                message
            }
        };
        (note.message, note.sending) = (true, true);
        histories.add_job(&job.case_ref, note);
        let Decision::Send(route) = decision else { unreachable!("only a send has a message") };
        to_claim.push((at, Prepared { job, route, message }));
    }

    let decided: Vec<(&str, &Decision)> = decided.iter().map(|(id, d)| (id.as_str(), d)).collect();
    let rows: Vec<NewMessageRow<'_>> = new_messages.iter().map(|(id, new)| NewMessageRow { id, new }).collect();
    let work: Vec<(&str, i64)> = work.iter().map(|(id, at)| (id.as_str(), *at)).collect();
    let mut writes = store.writes();
    store.set_decisions(&mut writes, &decided, now_ms);
    store.insert_messages(&mut writes, &rows, now_ms);
    Event::write_all(&mut writes, &events);
    store.enqueue_all(&mut writes, &work);
    writes.run(&mut tx).await?;
    if let Some(hook) = &d.before_claim {
        for (_, prepared) in &to_claim {
            hook(prepared.job.id.clone()).await;
        }
    }
    let message_ids: Vec<String> = to_claim.iter().map(|(_, p)| p.message.id.clone()).collect();
    let claims = store.claim_messages(&mut tx, &message_ids, now_ms, d.send_lease.as_millis() as i64).await?;
    tx.commit().await?;
    for (at, prepared) in to_claim {
        let claim = claims.get(&prepared.message.id).copied().unwrap_or(Claim::Done);
        answers[at] = Some(Ok((prepared, claim)));
    }
    Ok(answers.into_iter().map(|a| a.expect("every job of the batch is answered")).collect())
}

/// The approved version of `name` on `channel` in `language`, else in English.
fn approved_version<'a>(
    approved: &'a [TemplateVersion],
    name: &str,
    channel: &str,
    language: &str,
) -> Option<&'a TemplateVersion> {
    let find =
        |language: &str| approved.iter().find(|v| v.name == name && v.channel == channel && v.language == language);
    find(language).or_else(|| find("en"))
}

/// The message of a send, rendered from `template`.
fn new_message(
    job: &OutreachRecord,
    request: &OutreachRequest,
    route: &crate::domain::Route,
    template: &TemplateVersion,
) -> Result<NewMessage, templates::TemplateError> {
    let content = templates::TemplateContent {
        subject: template.subject.clone(),
        body: template.body.clone(),
        html: template.html.clone(),
    };
    let vars = templates::render_vars(request.victim.first_name.as_deref(), &request.personalisation);
    let rendered = templates::render(route.channel, &content, &vars)?;
    Ok(NewMessage {
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
    })
}

/// The row `insert_messages` writes for `new`, as a read would give it back.
fn queued_message(id: String, new: &NewMessage, now: i64) -> MessageRecord {
    MessageRecord {
        id,
        outreach_id: new.outreach_id.clone(),
        case_ref: new.case_ref.clone(),
        channel: new.channel.to_string(),
        template: new.template.clone(),
        template_version: new.template_version,
        status: MessageStatus::Queued.as_str().to_string(),
        provider: None,
        provider_ref: None,
        to_address: Some(new.to_address.clone()),
        subject: new.subject.clone(),
        body: Some(new.body.clone()),
        html: new.html.clone(),
        encoding: new.encoding.map(str::to_string),
        segments: new.segments,
        created_at: now,
        sent_at: None,
        status_at: now,
        final_at: None,
        redacted_at: None,
        language: new.language.clone(),
        test: crate::store::Flag(new.test),
    }
}
