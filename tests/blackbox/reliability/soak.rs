//! Soak: the deployment on Postgres + Redis (separate `api` and `worker` processes, the sandbox
//! provider) under steady load for a while, at half the maximum rate measured first in a short
//! burst. Asserted: no error of any kind (every request answered 2xx), every job taken in sent
//! exactly once. Figures only (never asserted, no timed assertion in the suite): latency p99 of
//! the first against the last window, and how the processes' resident memory grew.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::gateway::{Gateway, Storage, not_near_midnight, number, pretext_to};
use super::load::{Jobs, Load, Stats};
use super::{Figures, sized};
use crate::common::service;

/// The soak's jobs go to numbers of their own, apart from the burst's.
const SOAK_FIRST: u64 = 1_000_000;

/// Resident memory of process `pid`, in KiB (`VmRSS`).
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The 99th percentile of the latencies (ms) of answers sent between `from` and `to` seconds.
fn p99(stats: &Stats, from: f64, to: f64) -> f64 {
    let mut ms: Vec<f64> = stats.samples.iter().filter(|(at, _, _)| *at >= from && *at < to).map(|s| s.1).collect();
    if ms.is_empty() {
        return 0.0;
    }
    ms.sort_by(f64::total_cmp);
    ms[((ms.len() as f64 * 0.99).ceil() as usize).clamp(1, ms.len()) - 1]
}

/// How much `to` is above `from`, in per cent.
fn growth(from: f64, to: f64) -> f64 {
    if from == 0.0 { 0.0 } else { ((to - from) / from * 1000.0).round() / 10.0 }
}

#[tokio::test]
async fn a_soak_at_half_the_measured_maximum_rate_has_no_errors_and_loses_nothing() {
    let (Some(admin), Some(redis)) = (service("SAFEREACH_TEST_POSTGRES_URL"), service("SAFEREACH_TEST_REDIS_URL"))
    else {
        return;
    };
    let (burst, soak, window) = (sized(5.0, 10.0), sized(60.0, 600.0), sized(10.0, 60.0));
    not_near_midnight(soak as u32 / 60 + 10).await;
    let mut gateway = Gateway::new("soak", Storage::Postgres { admin_url: &admin, redis_url: Some(redis) }).await;
    let api = gateway.start("api");
    gateway.wait_for(api, "/readyz", Duration::from_secs(60)).await;
    let worker = gateway.start("worker");
    let url = format!("{}/v1/outreach", gateway.base(api));

    // The maximum: 16 clients as fast as they are answered, for a few seconds. What the
    // deployment sustains is the lower of what the API takes in and what the worker sends.
    let sent_before = gateway.sandbox_sms().len();
    let jobs: Jobs = Arc::new(|n| pretext_to("burst", n));
    let load = Load::closed(vec![url.clone()], &gateway.key, jobs, 16);
    tokio::time::sleep(Duration::from_secs_f64(burst)).await;
    let sent_in_burst = gateway.sandbox_sms().len() - sent_before;
    let burst_stats = load.stop().await;
    let taken_in_burst = burst_stats.samples.iter().filter(|(at, _, s)| *at < burst && *s == 202).count();
    let (intake_rate, send_rate) = (taken_in_burst as f64 / burst, sent_in_burst as f64 / burst);
    let rate = (intake_rate.min(send_rate) / 2.0).max(1.0);
    gateway.wait_all_final(Duration::from_secs(300)).await;
    eprintln!("intake {intake_rate:.0}/s, sends {send_rate:.0}/s: the soak at {rate:.1}/s");

    // The soak.
    let pids = [("api", gateway.pid(api)), ("worker", gateway.pid(worker))];
    let rss_start: BTreeMap<&str, u64> = pids.iter().map(|(role, pid)| (*role, rss_kib(*pid))).collect();
    let jobs: Jobs = Arc::new(|n| pretext_to("soak", SOAK_FIRST + n));
    let load = Load::paced(url, &gateway.key, jobs, rate);
    tokio::time::sleep(Duration::from_secs_f64(window)).await;
    let rss_first: BTreeMap<&str, u64> = pids.iter().map(|(role, pid)| (*role, rss_kib(*pid))).collect();
    tokio::time::sleep(Duration::from_secs_f64(soak - window)).await;
    let rss_end: BTreeMap<&str, u64> = pids.iter().map(|(role, pid)| (*role, rss_kib(*pid))).collect();
    let stats = load.stop().await;
    let drained = Instant::now();
    gateway.wait_all_final(Duration::from_secs(300)).await;
    let drain_s = drained.elapsed().as_secs();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut sent: BTreeMap<String, u64> = BTreeMap::new();
    for line in gateway.sandbox_sms() {
        *sent.entry(line["to"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let lost = stats.accepted.iter().filter(|n| !sent.contains_key(&number(SOAK_FIRST + **n))).count() as u64;
    let doubled: u64 = sent.values().map(|c| c - 1).sum();
    let errors = stats.answers() - stats.by_status.iter().filter(|(s, _)| **s < 300).map(|(_, n)| n).sum::<u64>()
        + stats.transport_errors
        + stats.gave_up.len() as u64;
    let (p99_first, p99_last) = (p99(&stats, 0.0, window), p99(&stats, soak - window, soak));
    let rss_growth: BTreeMap<&str, f64> =
        rss_first.iter().map(|(role, first)| (*role, growth(*first as f64, rss_end[role] as f64))).collect();
    Figures {
        fault: "soak at half the measured maximum rate",
        backend: "Postgres + Redis",
        size: stats.accepted.len() as u64,
        unit: "jobs",
        lost,
        doubled,
        server_errors: stats.server_errors(),
        combinations: None,
        detail: json!({
            "errors": errors, "answers_by_status": stats.by_status, "transport_errors": stats.transport_errors,
            "burst_s": burst, "burst_intake_per_s": intake_rate.round(), "burst_sends_per_s": send_rate.round(),
            "rate_per_s": (rate * 10.0).round() / 10.0, "soak_s": soak, "window_s": window,
            "p99_first_ms": p99_first.round(), "p99_last_ms": p99_last.round(),
            "p99_change_pct": growth(p99_first, p99_last),
            "rss_kib_start": rss_start, "rss_kib_after_first_window": rss_first, "rss_kib_end": rss_end,
            "rss_growth_pct": rss_growth, "all_final_after_load_s": drain_s,
        }),
    }
    .record_and_check();
    assert_eq!(errors, 0, "every request answered 2xx: {:?}", stats.by_status);
    assert_eq!(stats.accepted.len() as u64, stats.answers(), "one answer for each job");
    gateway.stop_all();
}
