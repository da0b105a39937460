//! Worker crash: `kill -9` the worker at random moments (at least five times) while it works
//! through a batch, starting a new one each time, as an orchestrator would; on the embedded
//! default (SQLite, separate `api` and `worker` processes) and on Postgres + Redis. Every job
//! must reach a final state; the provider (the sandbox, whose outbox is what it "took") must have
//! each message at most once; a message the provider took just before a kill is found in doubt
//! (dead-lettered, never sent again by itself) and counted by looking up our reference (the job's
//! own number) in what the provider took; those it did not take are requeued as staff would and
//! must then go exactly once.
//!
//! Through the sandbox, not Kannel's fake SMSC (docs/reliability.md says so).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::json;

use super::gateway::{Gateway, Storage, not_near_midnight, number, post, pretext_to};
use super::{Figures, sized};
use crate::common::service;

async fn crash_run(backend: &'static str, storage: Storage<'_>) {
    let (jobs, kills): (u64, u32) = (sized(1_000, 10_000), sized(5, 10));
    not_near_midnight(15).await;
    let mut gateway = Gateway::new(&format!("crash-{}", backend.replace(' ', "")), storage).await;
    // A short send lease: a send cut off by a kill is found in doubt within seconds.
    gateway.set("SAFEREACH_SEND_LEASE_SECS", "5");
    let api = gateway.start("api");
    gateway.wait_for(api, "/readyz", Duration::from_secs(60)).await;

    // The batch, taken in before any worker runs.
    let (url, key, next) =
        (format!("{}/v1/outreach", gateway.base(api)), gateway.key.clone(), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (url, key, next) = (url.clone(), key.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= jobs {
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
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut worker = gateway.start("worker");
    let mut sent_at_kills = Vec::new();
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..2_500))).await;
        gateway.kill(worker);
        sent_at_kills.push(gateway.sandbox_sms().len());
        worker = gateway.start("worker");
    }
    let all_final = gateway.wait_all_final(Duration::from_secs(sized(300, 1_800))).await;
    // Sends cut off by a kill wait out their lease, then are dead-lettered in doubt.
    tokio::time::sleep(Duration::from_secs(7)).await;
    gateway.wait_all_final(Duration::from_secs(60)).await;

    let taken = |gateway: &Gateway| {
        let mut by_number: BTreeMap<String, u64> = BTreeMap::new();
        for line in gateway.sandbox_sms() {
            *by_number.entry(line["to"].as_str().unwrap().to_string()).or_default() += 1;
        }
        by_number
    };
    let before_requeue = taken(&gateway);
    let (mut in_doubt_taken, mut requeued) = (0u64, 0u64);
    for (id, request_id, _) in gateway.dead_letters().await {
        let n: u64 = request_id.trim_start_matches("crash-").parse().unwrap();
        if before_requeue.contains_key(&number(n)) {
            in_doubt_taken += 1;
        } else {
            gateway.requeue(&gateway.base(api), &id).await;
            requeued += 1;
        }
    }
    gateway.wait_all_final(Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = taken(&gateway);
    let lost = (0..jobs).filter(|n| !sent.contains_key(&number(*n))).count() as u64;
    let doubled: u64 = sent.values().map(|c| c - 1).sum();
    let statuses = gateway.statuses().await;
    Figures {
        fault: "worker kill -9 at random moments",
        backend,
        size: jobs,
        unit: "jobs",
        lost,
        doubled,
        server_errors: 0,
        combinations: None,
        detail: json!({"kills": kills, "sent_at_each_kill": sent_at_kills, "in_doubt_taken_before_kill": in_doubt_taken,
                       "in_doubt_requeued": requeued, "all_final_s": all_final.as_secs(),
                       "run_s": started.elapsed().as_secs(), "statuses": statuses, "seed": seed}),
    }
    .record_and_check();
    assert!(sent_at_kills[0] < jobs as usize, "the first kill came mid-run: {sent_at_kills:?}");
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
