//! The store on each database (SQLite always, Postgres under scripts/test.sh): acceptance and
//! idempotency, the history the policy reads, the claims that keep two workers or relays apart,
//! the status machine, template approval and dead letters. Races are run for real: two tasks
//! on two connections at once.

use safereach::config::Config;
use safereach::domain::policy::{PolicyConfig, decide};
use safereach::domain::{JobStatus, MessageStatus, OutreachRequest};
use safereach::service::accept::{AcceptInput, AcceptResult};
use safereach::service::cancel::Cancel;
use safereach::service::dead_letters::Requeue;
use safereach::service::statuses::StatusChange;
use safereach::store::{Claim, MessageKey, NewVersion, Store, SuppressionKind, TemplateState, ThisJob};
use serde_json::{Value, json};

use crate::common::{current_backend, pretext, use_backend};

const NOW: i64 = 1_795_428_000_000; // 2026-11-23T10:00:00Z, a Monday

struct Db {
    store: Store,
    config: Config,
    _dir: tempfile::TempDir,
}

async fn fresh_store() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::defaults();
    use_backend(&mut config, current_backend(), dir.path()).await;
    let key = safereach::store::HashKeySource::from_config(&config);
    let store = Store::open(&config.database_url, true, &key).await.expect("store opens and migrates");
    Db { store, config, _dir: dir }
}

fn request(body: &Value) -> OutreachRequest {
    serde_json::from_value(body.clone()).expect("a valid request")
}

/// Accept `body` as the API does (the policy decides with the store's history), with `hash`
/// standing for the body's digest.
async fn accept(store: &Store, body: &Value, hash: &str) -> AcceptResult {
    let req = request(body);
    let input = AcceptInput {
        request: &req,
        request_hash: hash.to_string(),
        priority: true,
        safety_sensitive: false,
        now: NOW,
        actor: "test".into(),
        test: false,
    };
    let now = safereach::time::from_ms(NOW);
    safereach::service::accept::accept_outreach(store, input, |history| {
        decide(&req, history, now, &PolicyConfig::default())
    })
    .await
    .unwrap()
}

/// Accept `bodies` (each with its hash) together, as the acceptor does with requests that arrive
/// at once: one batch, one answer each. `meanwhile` runs as each is decided (mid-transaction).
async fn accept_together(
    store: &Store,
    bodies: &[(Value, &str)],
    meanwhile: &(dyn Fn(&OutreachRequest) + Sync),
) -> Vec<AcceptResult> {
    let requests: Vec<OutreachRequest> = bodies.iter().map(|(body, _)| request(body)).collect();
    let inputs: Vec<AcceptInput<'_>> = requests
        .iter()
        .zip(bodies)
        .map(|(req, (_, hash))| AcceptInput {
            request: req,
            request_hash: hash.to_string(),
            priority: true,
            safety_sensitive: false,
            now: NOW,
            actor: "test".into(),
            test: false,
        })
        .collect();
    let now = safereach::time::from_ms(NOW);
    let decide = |req: &OutreachRequest, history: &safereach::domain::CaseHistory| {
        meanwhile(req);
        decide(req, history, now, &PolicyConfig::default())
    };
    safereach::service::accept::accept_batch(store, &inputs, &decide).await.into_iter().map(Result::unwrap).collect()
}

fn outcome(result: &AcceptResult) -> (String, Option<String>) {
    match result {
        AcceptResult::Created { answer, .. } | AcceptResult::Replayed { answer } => (
            answer["decision"]["outcome"].as_str().unwrap().to_string(),
            answer["decision"]["reason"].as_str().map(str::to_string),
        ),
        AcceptResult::Conflict => ("conflict".into(), None),
    }
}

fn answer_of(result: &AcceptResult) -> Value {
    match result {
        AcceptResult::Created { answer, .. } | AcceptResult::Replayed { answer } => answer.clone(),
        AcceptResult::Conflict => panic!("a conflict has no answer"),
    }
}

fn created_id(result: &AcceptResult) -> String {
    match result {
        AcceptResult::Created { answer, .. } => answer["outreach_id"].as_str().unwrap().to_string(),
        other => panic!("expected a new job, got {other:?}"),
    }
}

async fn approve_all(store: &Store) {
    let dir = crate::common::templates_dir();
    safereach::service::accounts::create_account(store, "a.author", "author", "a long test password", NOW, "cli")
        .await
        .unwrap();
    safereach::service::accounts::create_account(store, "a.approver", "approver", "a long test password", NOW, "cli")
        .await
        .unwrap();
    safereach::service::templates::load_dir(store, &dir, "a.author", NOW).await.unwrap();
    safereach::service::templates::approve_submitted(store, None, "a.approver", NOW).await.unwrap();
}

async fn count(store: &Store, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(store.pool()).await.unwrap()
}

/// A message for the job, as the worker creates it.
async fn message_for(store: &Store, outreach_id: &str, case_ref: &str) -> String {
    let new = crate::common::sms_to_robin(outreach_id, case_ref);
    let mut tx = store.begin().await.unwrap();
    let message = store.message_for(&mut tx, &new, NOW).await.unwrap();
    tx.commit().await.unwrap();
    message.id
}

on_backends! {
    sqlite, postgres;
    async fn acceptance_is_idempotent_even_for_two_requests_at_once() {
        let db = fresh_store().await;
        approve_all(&db.store).await;
        let body = pretext("st-1", "ST-1");
        let (a, b) = tokio::join!(accept(&db.store, &body, "h1"), accept(&db.store, &body, "h1"));
        let created = [&a, &b].iter().filter(|r| matches!(r, AcceptResult::Created { .. })).count();
        let replayed = [&a, &b].iter().filter(|r| matches!(r, AcceptResult::Replayed { .. })).count();
        assert_eq!((created, replayed), (1, 1), "{a:?} {b:?}");
        assert_eq!(outcome(&a), ("send".into(), None));
        assert_eq!(outcome(&a), outcome(&b), "the replay is the first answer");
        assert!(matches!(accept(&db.store, &body, "other body").await, AcceptResult::Conflict));
        assert_eq!(count(&db.store, "SELECT COUNT(*) FROM outreach").await, 1);
        assert_eq!(count(&db.store, "SELECT COUNT(*) FROM events").await, 1);
        assert_eq!(count(&db.store, "SELECT COUNT(*) FROM job_outbox").await, 1, "work for the queue, in the same commit");
    }
}

on_backends! {
    sqlite, postgres;
    async fn history_sees_duplicates_suppressions_and_numbers_of_others() {
        let db = fresh_store().await;
        approve_all(&db.store).await;
        let store = &db.store;
        assert_eq!(outcome(&accept(store, &pretext("h-1", "H-1"), "a").await).0, "send");
        // Rule 11: one pre-text per referral while the first is queued.
        assert_eq!(outcome(&accept(store, &pretext("h-2", "H-1"), "b").await), ("block".into(), Some("duplicate".into())));
        // Rule 7: the same number recorded on another case as someone else's.
        let mut suspect = pretext("h-3", "H-2");
        suspect["contact"]["phones"] = json!([
            {"number": "+447700900111", "belongs_to": "victim", "safe_to_text": true},
            {"number": "+447700900666", "belongs_to": "suspect"}
        ]);
        accept(store, &suspect, "c").await;
        let mut victim = pretext("h-4", "H-3");
        victim["contact"]["phones"][0]["number"] = json!("07700 900666");
        assert_eq!(outcome(&accept(store, &victim, "d").await), ("hold".into(), Some("number_conflict".into())));
        // Rule 3: a suppressed number.
        let mut tx = store.begin().await.unwrap();
        store.suppress(&mut tx, "+447700900222", SuppressionKind::OptOut, None, NOW).await.unwrap();
        tx.commit().await.unwrap();
        let mut stopped = pretext("h-5", "H-4");
        stopped["contact"]["phones"][0]["number"] = json!("+447700900222");
        assert_eq!(outcome(&accept(store, &stopped, "e").await), ("block".into(), Some("suppressed".into())));
        assert_eq!(store.is_suppressed("+447700900222").await.unwrap().as_deref(), Some("opt_out"));

        // The history itself, as the worker reads it for the second job of H-1.
        let mut conn = store.pool().acquire().await.unwrap();
        let history = store.history(&mut conn, &request(&pretext("h-6", "H-1")), None, NOW).await.unwrap();
        assert!(history.other_pretext_active && !history.other_information_pack_active);
        let history = store.history(&mut conn, &request(&victim), None, NOW).await.unwrap();
        assert!(history.numbers_of_others.contains("+447700900666"), "{history:?}");
        let history = store.history(&mut conn, &request(&stopped), None, NOW).await.unwrap();
        assert!(history.suppressed.contains("+447700900222"), "{history:?}");
        assert!(history.approved_templates.len() >= 6);
    }
}

on_backends! {
    sqlite, postgres;
    async fn a_later_job_counts_for_rule_11_once_its_message_is_on_the_way() {
        let db = fresh_store().await;
        let store = &db.store;
        // A is held (no approved wording yet); B, for the same case, is accepted after it.
        let body_a = pretext("later-a", "LATER-1");
        let a = accept(store, &body_a, "a").await;
        assert_eq!(outcome(&a), ("hold".into(), Some("no_approved_template".into())));
        let a = created_id(&a);
        approve_all(store).await;
        let b = accept(store, &pretext("later-b", "LATER-1"), "b").await;
        assert_eq!(outcome(&b).0, "send");
        let b = created_id(&b);

        let other_pretext = || async {
            let mut conn = store.pool().acquire().await.unwrap();
            store.history(&mut conn, &request(&body_a), Some(ThisJob { id: &a, accepted_at: NOW, status: JobStatus::Held, test: false }), NOW).await.unwrap().other_pretext_active
        };
        assert!(!other_pretext().await, "a later job merely queued does not count against an earlier one");
        message_for(store, &b, "LATER-1").await;
        assert!(other_pretext().await, "a later job whose message is prepared counts");
        let set = |job: &'static str, message: &'static str| {
            let b = b.clone();
            async move {
                sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE outreach SET status = '{job}' WHERE id = $1")))
                    .bind(&b)
                    .execute(store.pool())
                    .await
                    .unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE messages SET status = '{message}' WHERE outreach_id = $1")))
                    .bind(&b)
                    .execute(store.pool())
                    .await
                    .unwrap();
            }
        };
        set("dead_lettered", "queued").await;
        assert!(!other_pretext().await, "a later job dead-lettered before anything went does not count");
        set("dead_lettered", "sending").await;
        assert!(other_pretext().await, "a later job whose send was cut off mid-way (in doubt) counts");
        set("sent", "sent").await;
        assert!(other_pretext().await, "a later job that was sent counts");
    }
}

on_backends! {
    postgres;
    async fn the_history_looks_each_jobs_message_up_by_its_key_on_a_young_database() {
        let db = fresh_store().await;
        approve_all(&db.store).await;
        let store = &db.store;
        let first = created_id(&accept(store, &pretext("young-1", "YOUNG-1"), "a").await);
        message_for(store, &first, "YOUNG-1").await;
        // A job that is no longer to be sent, whose message the read must also look at.
        let blocked = accept(store, &pretext("young-1b", "YOUNG-1"), "b").await;
        assert_eq!(outcome(&blocked), ("block".into(), Some("duplicate".into())));
        let later = request(&pretext("young-2", "YOUNG-1"));
        // Postgres keeps the plan it makes at a statement's sixth execution on a connection; here
        // the tables have a page or two, as in a database's first minute. A plan made then must
        // still look each job's message up by its key, not scan all of `messages` (an `EXISTS`
        // there was planned as a hashed scan of every sending message: BENCHMARKS.md).
        let mut tx = store.begin().await.unwrap();
        // This connection's counts not yet sent to the statistics (earlier transactions' too, on
        // Postgres 15); none are sent while a transaction is open, so the difference is ours.
        const MESSAGES_READ: &str =
            "SELECT seq_scan, COALESCE(idx_scan, 0) FROM pg_stat_xact_user_tables WHERE relname = 'messages'";
        let (scans_before, lookups_before): (i64, i64) =
            sqlx::query_as(MESSAGES_READ).fetch_one(&mut *tx).await.unwrap();
        for _ in 0..8 {
            let history = store.history(&mut tx, &later, None, NOW).await.unwrap();
            assert!(history.other_pretext_active, "the first pre-text, its message prepared, counts");
        }
        let (scans_after, lookups_after): (i64, i64) = sqlx::query_as(MESSAGES_READ).fetch_one(&mut *tx).await.unwrap();
        tx.commit().await.unwrap();
        let (scans, lookups) = (scans_after - scans_before, lookups_after - lookups_before);
        assert_eq!(scans, 0, "messages scanned by the history read");
        assert!(lookups >= 8, "one look-up by key per read at least: {lookups}");
    }
}

on_backends! {
    sqlite, postgres;
    async fn two_relays_never_claim_the_same_outbox_row_while_a_lease_runs() {
        let db = fresh_store().await;
        let store = &db.store;
        let mut tx = store.begin().await.unwrap();
        for i in 0..60 {
            store.enqueue(&mut tx, &format!("out_{i}"), NOW - 1).await.unwrap();
        }
        store.enqueue(&mut tx, "out_later", NOW + 60_000).await.unwrap();
        tx.commit().await.unwrap();
        // Two relays, each claiming in small batches, at once.
        let claim_all = || async {
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_due_jobs(NOW, 30_000, 7).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|j| j.id));
            }
        };
        let (a, b) = tokio::join!(claim_all(), claim_all());
        let mut all: Vec<i64> = a.iter().chain(&b).copied().collect();
        all.sort();
        let before = all.len();
        all.dedup();
        assert_eq!(before, all.len(), "a row was claimed twice");
        assert_eq!(all.len(), 60, "every due row once, and not the one due later");
        // While the lease runs nobody else gets them; after it, they can be claimed again.
        assert!(store.claim_due_jobs(NOW + 29_000, 30_000, 100).await.unwrap().is_empty());
        assert_eq!(store.claim_due_jobs(NOW + 31_000, 30_000, 100).await.unwrap().len(), 60);
        // Rows given back (the queue refused them) are claimable at once; deleted rows are gone.
        store.release_jobs(&a).await.unwrap();
        assert_eq!(store.claim_due_jobs(NOW + 31_001, 30_000, 100).await.unwrap().len(), a.len());
        store.delete_jobs(&all).await.unwrap();
        assert_eq!(count(store, "SELECT COUNT(*) FROM job_outbox").await, 1);
    }
}

on_backends! {
    sqlite, postgres;
    async fn exactly_one_of_two_workers_claims_a_message_and_a_lapsed_claim_is_in_doubt() {
        let db = fresh_store().await;
        approve_all(&db.store).await;
        let store = &db.store;
        let id = created_id(&accept(store, &pretext("m-1", "M-1"), "a").await);
        let message = message_for(store, &id, "M-1").await;
        assert_eq!(message_for(store, &id, "M-1").await, message, "one message per job");
        for _ in 0..10 {
            let (a, b) = tokio::join!(store.claim_message(&message, NOW, 5_000), store.claim_message(&message, NOW, 5_000));
            let claims = [a.unwrap(), b.unwrap()];
            assert_eq!(claims.iter().filter(|c| **c == Claim::Claimed).count(), 1, "{claims:?}");
            assert!(claims.contains(&Claim::Busy { until: NOW + 5_000 }), "{claims:?}");
            let mut tx = store.begin().await.unwrap();
            store.release_message(&mut tx, &message, NOW).await.unwrap();
            tx.commit().await.unwrap();
        }
        assert_eq!(store.claim_message(&message, NOW, 5_000).await.unwrap(), Claim::Claimed);
        assert_eq!(store.claim_message(&message, NOW + 5_001, 5_000).await.unwrap(), Claim::InDoubt, "the lease ran out mid-send");
        let mut tx = store.begin().await.unwrap();
        store.mark_sent(&mut tx, &message, "sandbox", &message, NOW).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.claim_message(&message, NOW, 5_000).await.unwrap(), Claim::Done);
    }
}

on_backends! {
    sqlite, postgres;
    async fn provider_statuses_only_move_forward() {
        let db = fresh_store().await;
        approve_all(&db.store).await;
        let store = &db.store;
        let id = created_id(&accept(store, &pretext("s-1", "S-1"), "a").await);
        let message = message_for(store, &id, "S-1").await;
        let mut tx = store.begin().await.unwrap();
        store.mark_sent(&mut tx, &message, "sandbox", &message, NOW).await.unwrap();
        tx.commit().await.unwrap();
        let moved = |c: &StatusChange| matches!(c, StatusChange::Moved { .. });
        assert!(moved(&safereach::service::statuses::apply_status(store, "sandbox", None, MessageKey::Provider(&message), MessageStatus::Delivered, None, NOW + 1).await.unwrap()));
        for late in [MessageStatus::Sent, MessageStatus::Failed, MessageStatus::Delivered] {
            let change = safereach::service::statuses::apply_status(store, "sandbox", None, MessageKey::Provider(&message), late, None, NOW + 2).await.unwrap();
            assert!(matches!(change, StatusChange::Ignored { .. }), "{late:?}: {change:?}");
        }
        assert_eq!(
            safereach::service::statuses::apply_status(store, "sandbox", None, MessageKey::Ours("msg_nope"), MessageStatus::Delivered, None, NOW).await.unwrap(),
            StatusChange::UnknownMessage
        );
        // A bounce names an email: this SMS is not one.
        assert_eq!(
            safereach::service::statuses::apply_status(store, "smtp", None, MessageKey::Email(&message), MessageStatus::Bounced, None, NOW + 3).await.unwrap(),
            StatusChange::UnknownMessage
        );
        let stored = store.message(&message).await.unwrap().unwrap();
        assert_eq!((stored.status.as_str(), stored.final_at), ("delivered", Some(NOW + 1)));
        let events: Vec<String> = store.case_events("S-1").await.unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(events, ["accepted", "status", "status_ignored", "status_ignored", "status_ignored"]);
    }
}

on_backends! {
    sqlite, postgres;
    async fn approving_a_template_retires_the_one_before_and_needs_a_second_person() {
        let db = fresh_store().await;
        let store = &db.store;
        let version = |body: &'static str| NewVersion {
            name: "priority_pretext",
            channel: "sms",
            kind: "priority_pretext",
            discreet: false,
            language: "en",
            subject: None,
            body,
            html: None,
            author: "ann",
            state: TemplateState::Submitted,
        };
        let v1 = store.insert_template_version(&version("one {{advocate_name}}"), NOW).await.unwrap();
        let v2 = store.insert_template_version(&version("two {{advocate_name}}"), NOW).await.unwrap();
        assert_eq!((v1.version, v2.version), (1, 2));
        assert!(!store.approve_template_version(&v1, "ann", None, NOW).await.unwrap(), "four eyes");
        // Two approvers at once: both succeed in turn, and one version stays approved.
        let (a, b) = tokio::join!(
            store.approve_template_version(&v1, "bob", None, NOW),
            store.approve_template_version(&v2, "cat", None, NOW + 1)
        );
        assert!(a.unwrap() && b.unwrap());
        let approved: Vec<i64> = store
            .template_versions()
            .await
            .unwrap()
            .into_iter()
            .filter(|v| v.state == "approved")
            .map(|v| v.version)
            .collect();
        assert_eq!(approved.len(), 1, "exactly one approved version: {approved:?}");
        let mut conn = store.pool().acquire().await.unwrap();
        assert_eq!(store.approved_version(&mut conn, "priority_pretext", "sms", "en").await.unwrap().unwrap().version, approved[0]);
        assert!(!store.approve_template_version(&v1, "dan", None, NOW).await.unwrap(), "not submitted any more");
    }
}

on_backends! {
    sqlite, postgres;
    async fn dead_letters_are_counted_listed_and_requeued_through_the_outbox() {
        let db = fresh_store().await;
        approve_all(&db.store).await;
        let store = &db.store;
        let id = created_id(&accept(store, &pretext("d-1", "D-1"), "a").await);
        let message = message_for(store, &id, "D-1").await;
        store.delete_jobs(&store.claim_due_jobs(NOW, 1_000, 10).await.unwrap().into_iter().map(|j| j.id).collect::<Vec<_>>()).await.unwrap();
        assert_eq!(store.dead_letter_count().await.unwrap(), 0);
        assert!(matches!(safereach::service::dead_letters::requeue_dead_letter(store, &id, NOW, "staff").await.unwrap(), Requeue::NotDeadLettered(s) if s.as_str() == "queued"));
        assert!(matches!(safereach::service::dead_letters::requeue_dead_letter(store, "out_nope", NOW, "staff").await.unwrap(), Requeue::NotFound));
        // A send interrupted mid-way: the worker dead-letters it (see worker::dead_letter_in_doubt).
        assert_eq!(store.claim_message(&message, NOW, 1_000).await.unwrap(), Claim::Claimed);
        let mut tx = store.begin().await.unwrap();
        store.set_outreach_status(&mut tx, &id, safereach::domain::JobStatus::DeadLettered, NOW).await.unwrap();
        safereach::store::Event::new("D-1", NOW, "worker", safereach::domain::event::EventType::DeadLettered)
            .outreach(&id)
            .reason("send_interrupted")
            .append(&mut tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.dead_letter_count().await.unwrap(), 1);
        let listed = store.dead_letters(10).await.unwrap();
        assert_eq!((listed[0].outreach_id.as_str(), listed[0].reason.as_deref()), (id.as_str(), Some("send_interrupted")));

        let Requeue::Requeued(job) = safereach::service::dead_letters::requeue_dead_letter(store, &id, NOW + 5, "api:staff").await.unwrap() else {
            panic!("requeued")
        };
        assert_eq!((job.status.as_str(), job.attempts), ("queued", 0));
        assert_eq!(store.dead_letter_count().await.unwrap(), 0);
        assert_eq!(store.claim_message(&message, NOW + 6, 1_000).await.unwrap(), Claim::Claimed, "ready to send again");
        let due = store.claim_due_jobs(NOW + 5, 1_000, 10).await.unwrap();
        assert_eq!(due.iter().map(|j| j.outreach_id.as_str()).collect::<Vec<_>>(), [id.as_str()]);
        let last = store.case_events("D-1").await.unwrap().pop().unwrap();
        assert_eq!((last.kind.as_str(), last.actor.as_str()), ("requeued", "api:staff"));
    }
}

on_backends! {
    sqlite, postgres;
    async fn a_cancel_and_a_claim_never_both_win() {
        let db = fresh_store().await;
        approve_all(&db.store).await;
        let store = &db.store;
        // Cancelled after its message was prepared, before a worker claimed it: never claimed.
        let first = created_id(&accept(store, &pretext("c-1", "C-1"), "a").await);
        let message = message_for(store, &first, "C-1").await;
        let (job, done) = safereach::service::cancel::cancel_outreach(store, &first, NOW, "api:t").await.unwrap().unwrap();
        assert_eq!((job.status.as_str(), done), ("cancelled", Cancel::Cancelled));
        assert_eq!(store.claim_message(&message, NOW, 5_000).await.unwrap(), Claim::Done);
        // Claimed first: the send goes on, and the cancel says it is too late.
        let second = created_id(&accept(store, &pretext("c-2", "C-2"), "b").await);
        let message = message_for(store, &second, "C-2").await;
        assert_eq!(store.claim_message(&message, NOW, 5_000).await.unwrap(), Claim::Claimed);
        let (job, done) = safereach::service::cancel::cancel_outreach(store, &second, NOW, "api:t").await.unwrap().unwrap();
        assert_eq!((job.status.as_str(), done), ("queued", Cancel::TooLate));
        // Racing each other, exactly one wins.
        for i in 0..10 {
            let case = format!("R-{i}");
            let id = created_id(&accept(store, &pretext(&format!("r-{i}"), &case), &case).await);
            let message = message_for(store, &id, &case).await;
            let (claim, cancel) = tokio::join!(store.claim_message(&message, NOW, 5_000), safereach::service::cancel::cancel_outreach(store, &id, NOW, "api:t"));
            let claimed = claim.unwrap() == Claim::Claimed;
            let cancelled = cancel.unwrap().unwrap().1 == Cancel::Cancelled;
            assert!(claimed != cancelled, "claimed {claimed}, cancelled {cancelled}");
        }
    }
}

/// Requests that depend on each other: rule 11 on one case, rule 7 across two (the suspect's
/// number named by one request, the victim's by the next), repeats of a request id.
fn dependent_requests() -> Vec<(Value, &'static str)> {
    let mut suspect = pretext("b-s", "B-3");
    suspect["contact"]["phones"] = json!([
        {"number": "+447700900111", "belongs_to": "victim", "safe_to_text": true},
        {"number": "+447700900777", "belongs_to": "suspect"}
    ]);
    let mut victim = pretext("b-v", "B-4");
    victim["contact"]["phones"][0]["number"] = json!("07700 900777");
    vec![
        (pretext("b-1", "B-1"), "h1"),
        (pretext("b-2", "B-1"), "h2"),
        (pretext("b-3", "B-2"), "h3"),
        (pretext("b-1", "B-1"), "h1"),
        (pretext("b-1", "B-1"), "another body"),
        (suspect, "hs"),
        (victim, "hv"),
        (pretext("b-4", "B-1"), "h4"),
    ]
}

on_backends! {
    sqlite, postgres;
    async fn a_batch_decides_each_request_as_if_the_earlier_ones_were_accepted_first() {
        let together = fresh_store().await;
        approve_all(&together.store).await;
        let answers = accept_together(&together.store, &dependent_requests(), &|_| {}).await;
        let outcomes: Vec<_> = answers.iter().map(outcome).collect();
        let expected: Vec<(String, Option<String>)> = [
            ("send", None),
            ("block", Some("duplicate")),
            ("send", None),
            ("send", None),
            ("conflict", None),
            ("send", None),
            ("hold", Some("number_conflict")),
            ("block", Some("duplicate")),
        ]
        .into_iter()
        .map(|(o, r)| (o.to_string(), r.map(str::to_string)))
        .collect();
        assert_eq!(outcomes, expected);
        assert!(matches!(answers[0], AcceptResult::Created { .. }) && matches!(answers[3], AcceptResult::Replayed { .. }));
        assert_eq!(answer_of(&answers[0]), answer_of(&answers[3]), "the repeat is the first answer");

        // The same requests one after the other, in another store: the same decisions.
        let one_by_one = fresh_store().await;
        approve_all(&one_by_one.store).await;
        let mut sequential = Vec::new();
        for (body, hash) in dependent_requests() {
            sequential.push(outcome(&accept(&one_by_one.store, &body, hash).await));
        }
        assert_eq!(outcomes, sequential);

        let store = &together.store;
        assert_eq!(count(store, "SELECT COUNT(*) FROM outreach").await, 6);
        assert_eq!(count(store, "SELECT COUNT(*) FROM events WHERE type = 'accepted'").await, 6);
        assert_eq!(count(store, "SELECT COUNT(*) FROM event_outbox").await, count(store, "SELECT COUNT(*) FROM events").await);
        assert_eq!(count(store, "SELECT COUNT(*) FROM job_outbox").await, 3, "work for the three sends only");
        assert_eq!(count(store, "SELECT COUNT(*) FROM case_categories WHERE case_ref = 'B-1'").await, 1);
        assert_eq!(count(store, "SELECT COUNT(*) FROM case_phones WHERE is_victims = 0").await, 1, "the suspect's number");
    }
}

on_backends! {
    // Another gateway sharing the database; on SQLite a batch holds the write lock from its
    // start (BEGIN IMMEDIATE), so nobody can take a request id from under it.
    postgres;
    async fn a_batch_whose_request_id_another_process_took_answers_every_other_request() {
        let db = fresh_store().await;
        approve_all(&db.store).await;
        let config = db.config.clone();
        let taken = std::sync::atomic::AtomicBool::new(false);
        // While the batch decides, another process accepts "t-2" (for another case) and commits.
        let other_process = |req: &OutreachRequest| {
            if req.request_id != "t-2" || taken.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            let config = config.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(async {
                    let key = safereach::store::HashKeySource::from_config(&config);
                    let other = Store::open(&config.database_url, false, &key).await.unwrap();
                    let answer = accept(&other, &pretext("t-2", "T-OTHER"), "ht2").await;
                    assert!(matches!(answer, AcceptResult::Created { .. }), "{answer:?}");
                });
            })
            .join()
            .unwrap();
        };
        let bodies = [(pretext("t-1", "T-1"), "ht1"), (pretext("t-2", "T-2"), "ht2"), (pretext("t-3", "T-1"), "ht3")];
        let answers = accept_together(&db.store, &bodies, &other_process).await;
        assert!(taken.load(std::sync::atomic::Ordering::SeqCst));
        assert!(matches!(answers[0], AcceptResult::Created { .. }), "{answers:?}");
        assert_eq!(outcome(&answers[0]), ("send".into(), None));
        assert!(matches!(answers[1], AcceptResult::Replayed { .. }), "answered as the other process did: {answers:?}");
        assert_eq!(answer_of(&answers[1])["case_ref"], "T-OTHER");
        assert!(matches!(answers[2], AcceptResult::Created { .. }), "{answers:?}");
        assert_eq!(outcome(&answers[2]), ("block".into(), Some("duplicate".into())), "still decided after t-1");
        assert_eq!(count(&db.store, "SELECT COUNT(*) FROM outreach").await, 3);
        assert_eq!(count(&db.store, "SELECT COUNT(*) FROM outreach WHERE request_id = 't-2'").await, 1);
        assert_eq!(count(&db.store, "SELECT COUNT(*) FROM cases WHERE case_ref = 'T-2'").await, 0, "nothing of the failed batch is left");
    }
}

on_backends! {
    sqlite, postgres;
    async fn reports_applied_together_are_applied_in_order_each_answered() {
        use safereach::service::statuses::{Reported, StatusReport, apply_statuses};
        let db = fresh_store().await;
        approve_all(&db.store).await;
        let store = &db.store;
        let mut messages = Vec::new();
        for case in ["R-1", "R-2"] {
            let id = created_id(&accept(store, &pretext(&format!("{case}-job"), case), case).await);
            let message = message_for(store, &id, case).await;
            let mut tx = store.begin().await.unwrap();
            store.mark_sent(&mut tx, &message, "sandbox", &message, NOW).await.unwrap();
            tx.commit().await.unwrap();
            messages.push(message);
        }
        let report = |message: Reported, status, now| StatusReport {
            provider: "sandbox".into(),
            channel: None,
            message,
            status,
            detail: None,
            now,
        };
        let (one, two) = (&messages[0], &messages[1]);
        let reports = [
            report(Reported::Provider(one.clone()), MessageStatus::Delivered, NOW + 1),
            // Late for the same message, in the same batch: it sees the delivery before it.
            report(Reported::Provider(one.clone()), MessageStatus::Failed, NOW + 2),
            report(Reported::Ours("msg_nope".into()), MessageStatus::Delivered, NOW + 3),
            // A bounce names an email: this SMS is not one, whoever says so.
            report(Reported::Email(two.clone()), MessageStatus::Bounced, NOW + 4),
            report(Reported::Provider(two.clone()), MessageStatus::Failed, NOW + 5),
        ];
        let changes: Vec<StatusChange> = apply_statuses(store, &reports).await.into_iter().map(Result::unwrap).collect();
        let moved = |case: &str, m: &String| StatusChange::Moved { case_ref: case.into(), message_id: m.clone() };
        assert_eq!(
            changes,
            [
                moved("R-1", one),
                StatusChange::Ignored { case_ref: "R-1".into(), message_id: one.clone() },
                StatusChange::UnknownMessage,
                StatusChange::UnknownMessage,
                moved("R-2", two),
            ]
        );
        let stored = store.message(one).await.unwrap().unwrap();
        assert_eq!((stored.status.as_str(), stored.final_at), ("delivered", Some(NOW + 1)));
        let stored = store.message(two).await.unwrap().unwrap();
        assert_eq!((stored.status.as_str(), stored.final_at), ("failed", Some(NOW + 5)));
        let events = |case: &'static str| async move {
            store.case_events(case).await.unwrap().into_iter().map(|e| e.kind).collect::<Vec<String>>()
        };
        assert_eq!(events("R-1").await, ["accepted", "status", "status_ignored"]);
        assert_eq!(events("R-2").await, ["accepted", "status"]);
        assert_eq!(count(store, "SELECT COUNT(*) FROM event_outbox").await, count(store, "SELECT COUNT(*) FROM events").await);
    }
}
