//! Accepting outreach jobs: the one path used by the API and the demo. A request is accepted only
//! when its case, job, event and the record of work to do (the outbox) commit together.
//!
//! Requests that arrive together are accepted together (group commit): the process's acceptor
//! (`Acceptor`, a `Batcher`) hands whatever is waiting to `accept_batch`, which decides them in
//! the order they came, in one transaction, with a few set-based statements for the lot, so
//! that each is decided exactly as if the others had been accepted one after the other before it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use sqlx::AnyConnection;
use tokio::sync::Notify;

use super::AppState;
use super::batcher::Batcher;
use super::decisions::run_at;
use crate::clock::Clock;
use crate::domain::event::EventType;
use crate::domain::policy::{PolicyConfig, decide, is_safety_sensitive};
use crate::domain::{CaseHistory, Decision, JobStatus, Kind, OutreachRequest};
use crate::store::{Event, JobNote, NewOutreach, Result, Store, StoreError, new_id};

/// The most requests accepted in one transaction.
const BATCH: usize = 64;

/// Decide and record a validated request. `raw` is the body as received: the same `request_id`
/// with a body that differs in anything but key order and whitespace is a conflict. `test`: a
/// test key's job (sent to the sandbox only, left out of reports and job metrics).
pub async fn accept(
    state: &AppState,
    request: &OutreachRequest,
    raw: &serde_json::Value,
    actor: String,
    test: bool,
) -> Result<AcceptResult> {
    let pending = Pending {
        request_hash: state.store.request_fingerprint(&crate::domain::request::canonical(raw)),
        // A pre-text implies priority.
        priority: request.kind == Kind::PriorityPretext || request.priority == Some(true),
        safety_sensitive: is_safety_sensitive(request, &state.policy),
        request: request.clone(),
        actor,
        test,
    };
    let result = state.acceptor.0.call(pending).await.map_err(|e| StoreError::Unavailable(e.to_string()))??;
    if let AcceptResult::Created { decision, answer } = &result {
        if !test {
            state.metrics.job_accepted(decision.outcome().as_str(), decision.reason().map(|r| r.as_str()));
        }
        tracing::info!(
            outreach_id = answer["outreach_id"].as_str().unwrap_or_default(),
            case_ref = %request.case_ref,
            kind = request.kind.as_str(),
            outcome = decision.outcome().as_str(),
            reason = decision.reason().map(|r| r.as_str()).unwrap_or("-"),
            test,
            "outreach accepted"
        );
    }
    Ok(result)
}

/// A request waiting for the acceptor.
pub struct Pending {
    request: OutreachRequest,
    request_hash: String,
    priority: bool,
    safety_sensitive: bool,
    actor: String,
    test: bool,
}

/// The process's acceptor: the requests of `accept` go through it (see the module's comment).
#[derive(Clone)]
pub struct Acceptor(Batcher<Pending, Result<AcceptResult>>);

impl Acceptor {
    /// Batches run one at a time on SQLite (one writer), two side by side on Postgres: four
    /// measured slower, with a longer tail (c=16 p99 20–24 ms against 14–16 ms; BENCHMARKS.md).
    pub fn start(
        store: Store,
        clock: Clock,
        policy: PolicyConfig,
        relay_wake: Arc<Notify>,
        metrics: crate::telemetry::Metrics,
    ) -> Acceptor {
        let in_flight = match store.dialect() {
            crate::store::Dialect::Sqlite => 1,
            crate::store::Dialect::Postgres => 2,
        };
        Acceptor(Batcher::start(BATCH, in_flight, move |batch: Vec<Pending>| {
            metrics.batch("accept", batch.len());
            let (store, policy, relay_wake) = (store.clone(), policy.clone(), relay_wake.clone());
            let now = clock.now();
            async move {
                let inputs: Vec<AcceptInput<'_>> = batch
                    .iter()
                    .map(|p| AcceptInput {
                        request: &p.request,
                        request_hash: p.request_hash.clone(),
                        priority: p.priority,
                        safety_sensitive: p.safety_sensitive,
                        now: now.timestamp_millis(),
                        actor: p.actor.clone(),
                        test: p.test,
                    })
                    .collect();
                let results = accept_batch(&store, &inputs, &|req, history| decide(req, history, now, &policy)).await;
                if results.iter().any(|r| matches!(r, Ok(AcceptResult::Created { .. }))) {
                    relay_wake.notify_one();
                }
                results
            }
        }))
    }
}

pub struct AcceptInput<'a> {
    pub request: &'a OutreachRequest,
    /// SHA-256 of the canonical request body: same id with another body is a conflict.
    pub request_hash: String,
    pub priority: bool,
    pub safety_sensitive: bool,
    pub now: i64,
    pub actor: String,
    /// Accepted with a test key: decided and recorded, sent only to the sandbox.
    pub test: bool,
}

#[derive(Debug)]
pub enum AcceptResult {
    /// Newly accepted: the answer to give, and the decision taken.
    Created { answer: serde_json::Value, decision: Decision },
    /// The same request again: the first answer.
    Replayed { answer: serde_json::Value },
    /// The same request id with a different body.
    Conflict,
}

/// The policy as acceptance asks it: the request and its case's history.
pub type Decide<'a> = &'a (dyn Fn(&OutreachRequest, &CaseHistory) -> Decision + Sync);

/// Accept one request (a batch of one), deciding it with `decide` given its case's history.
pub async fn accept_outreach(
    store: &Store,
    input: AcceptInput<'_>,
    decide: impl Fn(&CaseHistory) -> Decision + Sync,
) -> Result<AcceptResult> {
    let decide = |_: &OutreachRequest, history: &CaseHistory| decide(history);
    accept_batch(store, std::slice::from_ref(&input), &decide).await.pop().expect("one answer for one request")
}

/// Accept a batch of requests in one transaction: each creates or extends its case, is decided
/// (with `decide`, given its case's history as the requests before it in the batch left it) and
/// recorded with its event and — when it is to be sent or deferred — the work for the queue.
/// One answer per request, in order. Should the batch fail (another process took one of its
/// request ids meanwhile, say), its requests are accepted one at a time, so that one cannot fail
/// the others; unless the database is out of reach, which every request is told.
pub async fn accept_batch(store: &Store, inputs: &[AcceptInput<'_>], decide: Decide<'_>) -> Vec<Result<AcceptResult>> {
    match try_accept(store, inputs, decide).await {
        Ok(results) => results.into_iter().map(Ok).collect(),
        Err(e) if e.is_unavailable() => {
            let why = e.to_string();
            std::iter::once(Err(e))
                .chain((1..inputs.len()).map(|_| Err(StoreError::Unavailable(why.clone()))))
                .collect()
        }
        // Another process accepted the same request id meanwhile: answer as it did.
        Err(e) if inputs.len() == 1 && e.is_unique_violation() => {
            vec![try_accept(store, inputs, decide).await.map(|mut r| r.remove(0))]
        }
        Err(e) if inputs.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::warn!(error = %e, requests = inputs.len(), "a batch of acceptances failed; accepting them one at a time");
            let mut results = Vec::with_capacity(inputs.len());
            for input in inputs {
                results.push(Box::pin(accept_batch(store, std::slice::from_ref(input), decide)).await.remove(0));
            }
            results
        }
    }
}

async fn try_accept(store: &Store, inputs: &[AcceptInput<'_>], decide: Decide<'_>) -> Result<Vec<AcceptResult>> {
    let mut tx = store.begin().await?;
    let results = accept_in(store, &mut tx, inputs, decide).await?;
    tx.commit().await?;
    Ok(results)
}

/// `accept_batch`'s work inside its transaction.
async fn accept_in(
    store: &Store,
    tx: &mut AnyConnection,
    inputs: &[AcceptInput<'_>],
    decide: Decide<'_>,
) -> Result<Vec<AcceptResult>> {
    let request_ids: Vec<String> = inputs.iter().map(|i| i.request.request_id.clone()).collect();
    let accepted_before = store.accepted_requests(&mut *tx, &request_ids).await?;
    // Each request id's first request in the batch is accepted; a repeat is answered as it is.
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    let new: Vec<&AcceptInput<'_>> = inputs
        .iter()
        .enumerate()
        .filter(|(i, input)| {
            let id = input.request.request_id.as_str();
            !accepted_before.contains_key(id) && *first_of.entry(id).or_insert(*i) == *i
        })
        .map(|(_, input)| input)
        .collect();

    let mut created: HashMap<&str, (serde_json::Value, Decision)> = HashMap::new();
    if !new.is_empty() {
        let requests: Vec<&OutreachRequest> = new.iter().map(|i| i.request).collect();
        let cases: Vec<&str> =
            requests.iter().map(|r| r.case_ref.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
        // The batch's cases exist and are ours (Postgres), in case_ref order, before anything is read.
        store.ensure_and_lock_cases(&mut *tx, &cases, new[0].now).await?;
        let mut histories = store.histories(&mut *tx, &requests).await?;
        let (mut jobs, mut events, mut work) = (Vec::new(), Vec::new(), Vec::new());
        let ids: Vec<String> = new.iter().map(|_| new_id("out")).collect();
        let mut decisions = Vec::with_capacity(new.len());
        for (input, id) in new.iter().zip(&ids) {
            let req = input.request;
            histories.add_request(req, input.priority, input.safety_sensitive);
            let decision = decide(req, &histories.of(req, None, input.now, input.test));
            let status = JobStatus::for_outcome(decision.outcome());
            histories.add_job(
                &req.case_ref,
                JobNote {
                    id,
                    kind: req.kind.as_str(),
                    test: input.test,
                    status,
                    accepted_at: input.now,
                    message: false,
                    sending: false,
                },
            );
            events.push(
                Event::new(&req.case_ref, input.now, &input.actor, EventType::Accepted)
                    .outreach(id)
                    .decision(&decision),
            );
            if let Some(run_at) = run_at(&decision, input.now) {
                work.push((id.as_str(), run_at));
            }
            decisions.push((answer_json(id, &req.case_ref, status.as_str(), &decision), decision));
        }
        for ((input, id), (answer, decision)) in new.iter().zip(&ids).zip(&decisions) {
            jobs.push(NewOutreach {
                id,
                request: input.request,
                request_hash: &input.request_hash,
                priority: input.priority,
                now: input.now,
                decision,
                answer,
                test: input.test,
            });
        }
        let cases: Vec<_> = new.iter().map(|i| (i.request, i.now, i.priority, i.safety_sensitive)).collect();
        let mut writes = store.writes();
        store.upsert_cases(&mut writes, &cases);
        store.record_phones(&mut writes, &requests);
        store.insert_outreach(&mut writes, &jobs)?;
        Event::write_all(&mut writes, &events);
        store.enqueue_all(&mut writes, &work);
        writes.run(&mut *tx).await?;
        for (input, answer) in new.iter().zip(decisions) {
            created.insert(input.request.request_id.as_str(), answer);
        }
    }

    inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            let id = input.request.request_id.as_str();
            if let Some((hash, answer)) = accepted_before.get(id) {
                return Ok(if *hash != input.request_hash {
                    AcceptResult::Conflict
                } else {
                    AcceptResult::Replayed { answer: parse_json(answer)? }
                });
            }
            let (answer, decision) = &created[id];
            Ok(if first_of[id] == i {
                AcceptResult::Created { answer: answer.clone(), decision: decision.clone() }
            } else if inputs[first_of[id]].request_hash != input.request_hash {
                AcceptResult::Conflict
            } else {
                AcceptResult::Replayed { answer: answer.clone() }
            })
        })
        .collect()
}

/// The 202 answer of `POST /v1/outreach` (contract shape).
pub fn answer_json(id: &str, case_ref: &str, status: &str, decision: &Decision) -> serde_json::Value {
    serde_json::json!({
        "outreach_id": id,
        "case_ref": case_ref,
        "status": status,
        "decision": {
            "outcome": decision.outcome().as_str(),
            "reason": decision.reason().map(|r| r.as_str()),
            "channel": decision.route().map(|r| r.channel.as_str()),
            "template": decision.route().map(|r| r.template),
            "not_before": decision.not_before().map(crate::time::rfc3339),
        }
    })
}

fn parse_json(s: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}
