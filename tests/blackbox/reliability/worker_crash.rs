//! Worker crash: `kill -9` the worker at random moments (at least five times) while it works
//! through a batch, starting a new one each time, as an orchestrator would; on the embedded
//! default (SQLite, separate `api` and `worker` processes) and on Postgres + Redis, through
//! Kannel's fake SMSC (scripts/test.sh starts it; the sandbox provider when it is not running).
//! Every job must reach a final state; the provider (the fake SMSC's log, or the sandbox's
//! outbox) must have each message at most once. A send cut off by a kill is found by our
//! reference: Kannel's delivery reports carry our message id, so a message the provider took
//! just before a kill is known as handed over (its job then counts as sent, or, when the report
//! came after the job was dead-lettered in doubt, it is counted and not sent again); through the
//! sandbox, by the job's own number in its outbox. Those the provider did not take are requeued
//! as staff would and must then go exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::json;

use super::gateway::{Gateway, Storage, not_near_midnight, number, post, pretext_to};
use super::{Figures, sized};
use crate::common::service;
use crate::kannel::{KANNEL_FROM, KannelEnv, kannel_env};

/// The SMS provider of a run, and what it took.
enum Provider {
    Sandbox,
    Kannel(KannelEnv),
}

impl Provider {
    fn fault(&self) -> &'static str {
        match self {
            Provider::Sandbox => "worker kill -9 at random moments",
            Provider::Kannel(_) => "worker kill -9 at random moments, through Kannel's fake SMSC",
        }
    }

    fn configure(&self, gateway: &mut Gateway) {
        if let Provider::Kannel(k) = self {
            gateway.set("SAFEREACH_SMS_PROVIDER", "kannel");
            gateway.set("SAFEREACH_KANNEL_SENDSMS_URL", k.sendsms_url.as_str());
            gateway.set("SAFEREACH_KANNEL_USER", k.user.as_str());
            gateway.set("SAFEREACH_KANNEL_PASSWORD", k.password.as_str());
            gateway.set("SAFEREACH_KANNEL_FROM", KANNEL_FROM);
            gateway.set("SAFEREACH_KANNEL_WEBHOOK_TOKEN", k.token.as_str());
        }
    }

    /// How many messages the provider took for each of `ours` (the fake SMSC serves the whole
    /// suite: other tests' numbers are left out).
    fn took(&self, gateway: &Gateway, ours: &BTreeSet<String>) -> BTreeMap<String, u64> {
        let mut by_number: BTreeMap<String, u64> = match self {
            Provider::Sandbox => {
                let mut counts = BTreeMap::new();
                for line in gateway.sandbox_sms() {
                    *counts.entry(line["to"].as_str().unwrap().to_string()).or_default() += 1;
                }
                counts
            }
            Provider::Kannel(k) => k.received_by_number(),
        };
        by_number.retain(|n, _| ours.contains(n));
        by_number
    }
}

/// Each job's message as the store has it: (request id, message status, whether the worker
/// recorded the provider's answer).
async fn messages(gateway: &Gateway) -> Vec<(String, String, bool)> {
    let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "SELECT o.request_id, m.status, m.sent_at FROM outreach o JOIN messages m ON m.outreach_id = o.id",
    )
    .fetch_all(gateway.store.pool())
    .await
    .unwrap();
    rows.into_iter().map(|(r, s, sent_at)| (r, s, sent_at.is_some())).collect()
}

fn handed_over(status: &str) -> bool {
    !matches!(status, "queued" | "sending")
}

async fn crash_run(backend: &'static str, storage: Storage<'_>) {
    let (jobs, kills): (u64, u32) = (sized(1_000, 10_000), sized(5, 10));
    let provider = kannel_env().map_or(Provider::Sandbox, Provider::Kannel);
    not_near_midnight(15).await;
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Numbers of this run's own (the fake SMSC serves every test, and a retried test would find
    // its first run's messages there): job n goes to number(first + n), apart from other tests'
    // numbers (below 10,000,000) and from the other backend's run.
    let backend_slot = u64::from(backend != "SQLite");
    let first = 10_000_000 + rng.random_range(0..40u64) * 2_000_000 + backend_slot * 1_000_000;
    let ours: BTreeSet<String> = (first..first + jobs).map(number).collect();
    let mut gateway = Gateway::new(&format!("crash-{}", backend.replace(' ', "")), storage).await;
    provider.configure(&mut gateway);
    // A short send lease: a send cut off by a kill is found in doubt within seconds.
    gateway.set("SAFEREACH_SEND_LEASE_SECS", "5");
    let api = gateway.start("api");
    gateway.wait_for(api, "/readyz", Duration::from_secs(60)).await;

    // The batch, taken in before any worker runs.
    let (url, key, next) =
        (format!("{}/v1/outreach", gateway.base(api)), gateway.key.clone(), Arc::new(AtomicU64::new(first)));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (url, key, next) = (url.clone(), key.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= first + jobs {
                    return;
                }
                let answer = post(&http, &url, &key, &pretext_to("crash", n)).await;
                assert_eq!(answer.status.map(|s| s.as_u16()), Some(202), "job {n}: {:?}", answer.body);
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }

    // The worker, killed at random moments while it works, and started again each time.
    let started = Instant::now();
    let mut worker = gateway.start("worker");
    let mut sent_at_kills = Vec::new();
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..2_500))).await;
        gateway.kill(worker);
        sent_at_kills.push(provider.took(&gateway, &ours).len());
        worker = gateway.start("worker");
    }
    let all_final = gateway.wait_all_final(Duration::from_secs(sized(300, 1_800))).await;
    // Sends cut off by a kill wait out their lease, then are dead-lettered in doubt.
    tokio::time::sleep(Duration::from_secs(7)).await;
    gateway.wait_all_final(Duration::from_secs(60)).await;

    // Every message the fake SMSC took has its delivery reports back (our reference: the
    // message id in the dlr-url) before the dead letters are looked at.
    let request_number = |request_id: &str| number(request_id.trim_start_matches("crash-").parse().unwrap());
    if let Provider::Kannel(_) = provider {
        let waited = Instant::now();
        loop {
            let took = provider.took(&gateway, &ours);
            let unreported = messages(&gateway)
                .await
                .into_iter()
                .filter(|(r, status, _)| !handed_over(status) && took.contains_key(&request_number(r)))
                .count();
            if unreported == 0 || waited.elapsed() > Duration::from_secs(60) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let before_requeue = provider.took(&gateway, &ours);
    let statuses_before_requeue: BTreeMap<String, String> =
        messages(&gateway).await.into_iter().map(|(r, status, _)| (r, status)).collect();
    let (mut in_doubt_taken, mut requeued, mut reference_disagrees) = (0u64, 0u64, 0u64);
    for (id, request_id, _) in gateway.dead_letters().await {
        let by_number = before_requeue.contains_key(&request_number(&request_id));
        // Through Kannel, as staff would: by our reference. The sandbox sends no reports.
        let taken = match provider {
            Provider::Kannel(_) => statuses_before_requeue.get(&request_id).is_some_and(|s| handed_over(s)),
            Provider::Sandbox => by_number,
        };
        if taken != by_number {
            reference_disagrees += 1;
        }
        if taken {
            in_doubt_taken += 1;
        } else {
            gateway.requeue(&gateway.base(api), &id).await;
            requeued += 1;
        }
    }
    gateway.wait_all_final(Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = provider.took(&gateway, &ours);
    let lost = ours.iter().filter(|n| !sent.contains_key(*n)).count() as u64;
    let doubled: u64 = sent.values().map(|c| c - 1).sum();
    let statuses = gateway.statuses().await;
    // A send cut off by a kill whose delivery report (our reference) said the provider had it
    // before the job was looked at again: the job counts as sent, without a second send.
    let found_by_report =
        messages(&gateway).await.iter().filter(|(_, s, recorded)| handed_over(s) && !recorded).count();
    Figures {
        fault: provider.fault(),
        backend,
        size: jobs,
        unit: "jobs",
        lost,
        doubled,
        server_errors: 0,
        combinations: None,
        detail: json!({"kills": kills, "sent_at_each_kill": sent_at_kills, "in_doubt_taken_before_kill": in_doubt_taken,
                       "in_doubt_requeued": requeued, "taken_before_kill_found_by_report": found_by_report,
                       "reference_disagrees_with_provider": reference_disagrees,
                       "all_final_s": all_final.as_secs(), "run_s": started.elapsed().as_secs(),
                       "statuses": statuses, "seed": seed}),
    }
    .record_and_check();
    assert!(sent_at_kills[0] < jobs as usize, "the first kill came mid-run: {sent_at_kills:?}");
    assert_eq!(reference_disagrees, 0, "our reference and the provider's log agree on each send in doubt");
    let unexpected: i64 = statuses.iter().filter(|(s, _)| *s != "sent" && *s != "dead_lettered").map(|(_, n)| n).sum();
    assert_eq!(unexpected, 0, "every job sent, or dead-lettered after the provider took it: {statuses:?}");
    assert_eq!(statuses.get("dead_lettered").copied().unwrap_or(0) as u64, in_doubt_taken, "{statuses:?}");
    gateway.stop_all();
}

#[tokio::test]
async fn killing_the_worker_at_random_loses_nothing_and_sends_nothing_twice_on_sqlite() {
    crash_run("SQLite", Storage::Sqlite).await;
}

#[tokio::test]
async fn killing_the_worker_at_random_loses_nothing_and_sends_nothing_twice_on_postgres_and_redis() {
    let (Some(admin), Some(redis)) = (service("SAFEREACH_TEST_POSTGRES_URL"), service("SAFEREACH_TEST_REDIS_URL"))
    else {
        return;
    };
    crash_run("Postgres + Redis", Storage::Postgres { admin_url: &admin, redis_url: Some(redis) }).await;
}
