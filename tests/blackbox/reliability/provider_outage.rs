//! Provider outage: Kannel (the first SMS provider) behind a fault-injecting proxy
//! (`fault_proxy.rs`) refuses connections, then answers 500, then hangs, a phase each, between a
//! phase of normal service before and after; the Twilio stand-in is the second provider. Jobs
//! come at a steady rate throughout to one `serve` process (the real binary, SQLite).
//!
//! As docs/providers.md says: a refused connection and a 500 are transient, so each message fails
//! over to Twilio; after `SAFEREACH_BREAKER_FAILURES` failures in a row Kannel is skipped for the
//! cool-down (its calls, counted by `/metrics`, stay few while the jobs go on), then probed, and
//! used again once it answers. A hang after the request went is in doubt: dead-lettered
//! `send_in_doubt`, never failed over. Staff then settle each: a message Kannel took (its report
//! came) is requeued and recorded as sent without a second text; one it never got is requeued and
//! sent once. Checks: every job final and its number texted exactly once across Kannel's fake
//! SMSC and the stand-in, no 5xx from our API.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::fault_proxy::{Fault, FaultProxy};
use super::gateway::{Gateway, Storage, not_near_midnight, number, post, pretext_to};
use super::{Figures, sized};
use crate::kannel::{KannelEnv, kannel_env};
use crate::standin::{self, TwilioStandIn};

/// Each fault between phases of normal service, so that each meets a closed breaker.
const PHASES: [(&str, Fault); 7] = [
    ("normal", Fault::Pass),
    ("refused", Fault::Refuse),
    ("recovered", Fault::Pass),
    ("500", Fault::Error500),
    ("recovered", Fault::Pass),
    ("hang", Fault::Hang),
    ("recovered", Fault::Pass),
];

/// The numbers of a run: their own in the fake SMSC's log, which the other Kannel tests (and an
/// earlier try of this one) share.
fn numbers_from(kannel: &KannelEnv, jobs: u64) -> u64 {
    let texted = kannel.received_by_number();
    loop {
        let from = 50_000_000 + rand::random_range(0..4_000u64) * 10_000;
        if !(from..from + jobs).any(|n| texted.contains_key(&number(n))) {
            return from;
        }
    }
}

fn job(from: u64, n: u64) -> Value {
    let mut body = pretext_to("outage", n);
    body["contact"]["phones"][0]["number"] = json!(number(from + n));
    body
}

/// `safereach_provider_requests_total` of the SMS providers: (provider, result) → calls.
async fn provider_calls(http: &reqwest::Client, base: &str) -> BTreeMap<(String, String), u64> {
    let text = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    let label = |line: &str, name: &str| {
        let from = line.find(&format!("{name}=\""))? + name.len() + 2;
        Some(line[from..].split('"').next()?.to_string())
    };
    text.lines()
        .filter(|l| l.starts_with("safereach_provider_requests_total{") && l.contains("channel=\"sms\""))
        .filter_map(|l| {
            let value = l.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
            Some(((label(l, "provider")?, label(l, "result")?), value))
        })
        .collect()
}

fn delta(after: &BTreeMap<(String, String), u64>, before: &BTreeMap<(String, String), u64>, p: &str, r: &str) -> u64 {
    let key = (p.to_string(), r.to_string());
    after.get(&key).copied().unwrap_or(0) - before.get(&key).copied().unwrap_or(0)
}

/// Whether job `id`'s message is `delivered` (the provider's report came).
async fn delivered(gateway: &Gateway, id: &str) -> bool {
    let sql = format!("SELECT COUNT(*) FROM messages WHERE outreach_id = '{id}' AND status = 'delivered'");
    gateway.count(&sql).await > 0
}

#[derive(Default)]
struct Answers {
    by_status: BTreeMap<u16, u64>,
    transport_errors: u64,
    not_taken: Vec<u64>,
}

/// Job `n` posted until it is taken (a 503 or a lost connection is retried for up to a minute).
async fn submit(http: reqwest::Client, url: String, key: String, body: Value, n: u64, answers: Arc<Mutex<Answers>>) {
    let started = Instant::now();
    loop {
        let answer = post(&http, &url, &key, &body).await;
        {
            let mut a = answers.lock().unwrap();
            match answer.status {
                Some(status) => *a.by_status.entry(status.as_u16()).or_default() += 1,
                None => a.transport_errors += 1,
            }
            let taken = answer.status.is_some_and(|s| s != StatusCode::SERVICE_UNAVAILABLE);
            if (taken && answer.status != Some(StatusCode::ACCEPTED)) || started.elapsed() > Duration::from_secs(60) {
                a.not_taken.push(n);
                return;
            }
            if taken {
                return;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn kannel_refusing_failing_and_hanging_fails_over_to_twilio_and_loses_or_doubles_nothing() {
    let Some(kannel) = kannel_env() else { return };
    // Each phase, the jobs a second, the breaker's cool-down.
    let (phase, rate, cooldown) = (sized(8u64, 60), sized(8u64, 10), sized(2u64, 10));
    // A provider timeout with room for a busy machine: a slow answer in a normal phase would be in
    // doubt too (and fail the check that only the hang is).
    let (threshold, concurrency, timeout) = (3u64, 4u64, 3u64);
    not_near_midnight(15).await;
    let twilio = TwilioStandIn::start().await;
    let mut proxy = FaultProxy::start(&kannel.sendsms_url).await;
    let mut gateway = Gateway::new("outage", Storage::Sqlite).await;
    for (name, value) in [
        ("SAFEREACH_SMS_PROVIDER", "kannel,twilio".to_string()),
        ("SAFEREACH_KANNEL_SENDSMS_URL", proxy.sendsms_url()),
        ("SAFEREACH_KANNEL_USER", kannel.user.clone()),
        ("SAFEREACH_KANNEL_PASSWORD", kannel.password.clone()),
        ("SAFEREACH_KANNEL_FROM", crate::kannel::KANNEL_FROM.to_string()),
        ("SAFEREACH_KANNEL_WEBHOOK_TOKEN", kannel.token.clone()),
        ("SAFEREACH_TWILIO_ACCOUNT_SID", standin::ACCOUNT_SID.to_string()),
        ("SAFEREACH_TWILIO_AUTH_TOKEN", standin::AUTH_TOKEN.to_string()),
        ("SAFEREACH_TWILIO_FROM", standin::FROM.to_string()),
        ("SAFEREACH_TWILIO_BASE_URL", twilio.base_url()),
        ("SAFEREACH_PROVIDER_TIMEOUT_SECS", timeout.to_string()),
        ("SAFEREACH_BREAKER_FAILURES", threshold.to_string()),
        ("SAFEREACH_BREAKER_COOLDOWN_SECS", cooldown.to_string()),
        ("SAFEREACH_WORKER_CONCURRENCY", concurrency.to_string()),
    ] {
        gateway.set(name, value);
    }
    let serve = gateway.start("serve");
    gateway.wait_for(serve, "/readyz", Duration::from_secs(60)).await;
    let base = gateway.base(serve);
    let http = reqwest::Client::new();

    // The jobs, at a steady rate through every phase.
    let jobs = rate * phase * PHASES.len() as u64;
    let from = numbers_from(&kannel, jobs);
    let answers = Arc::new(Mutex::new(Answers::default()));
    let load = {
        let (url, key, answers, http) =
            (format!("{base}/v1/outreach"), gateway.key.clone(), answers.clone(), http.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / rate));
            let mut posts = Vec::new();
            for n in 0..jobs {
                tick.tick().await;
                posts.push(tokio::spawn(submit(
                    http.clone(),
                    url.clone(),
                    key.clone(),
                    job(from, n),
                    n,
                    answers.clone(),
                )));
            }
            for p in posts {
                p.await.unwrap();
            }
        })
    };

    // The phases; what each did: Kannel's calls by result, messages Twilio created.
    let started = Instant::now();
    let mut phases = Vec::new();
    for (name, fault) in PHASES {
        proxy.set(fault).await;
        let (calls_before, twilio_before) = (provider_calls(&http, &base).await, twilio.created().len());
        tokio::time::sleep(Duration::from_secs(phase)).await;
        let calls = provider_calls(&http, &base).await;
        let d = |p: &str, r: &str| delta(&calls, &calls_before, p, r);
        phases.push(json!({
            "phase": name,
            "kannel": {"accepted": d("kannel", "accepted"), "transient": d("kannel", "transient"),
                       "in_doubt": d("kannel", "in_doubt"), "permanent": d("kannel", "permanent")},
            "twilio_created": twilio.created().len() - twilio_before,
            "twilio_in_doubt": d("twilio", "in_doubt"),
        }));
    }
    load.await.unwrap();
    let all_final = gateway.wait_all_final(Duration::from_secs(sized(120, 600))).await;
    let run_s = started.elapsed().as_secs();

    // The sends in doubt: each met the hang. Kannel got every other one: wait for its report.
    let hung: Vec<_> = proxy.seen().into_iter().filter(|s| s.fault == Fault::Hang).collect();
    let dead = gateway.dead_letters().await;
    let reported_deadline = Instant::now() + Duration::from_secs(30);
    let smsc = loop {
        let smsc = kannel.received_by_number();
        let mut waiting = 0;
        for (id, request_id, _) in &dead {
            let n: u64 = request_id.trim_start_matches("outage-").parse().unwrap();
            if smsc.contains_key(&number(from + n)) && !delivered(&gateway, id).await {
                waiting += 1;
            }
        }
        if waiting == 0 || Instant::now() > reported_deadline {
            break smsc;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let twilio_before_requeue: Vec<String> = twilio.created().iter().map(|c| c.form["To"].clone()).collect();
    let (mut taken_reported, mut taken_unreported, mut not_taken, mut failed_over) = (0u64, 0u64, 0u64, 0u64);
    for (id, request_id, _) in &dead {
        let n: u64 = request_id.trim_start_matches("outage-").parse().unwrap();
        let to = number(from + n);
        failed_over += u64::from(twilio_before_requeue.contains(&to));
        if smsc.contains_key(&to) {
            if delivered(&gateway, id).await {
                // Kannel's report settled it: a requeue records it as sent, without sending.
                taken_reported += 1;
                gateway.requeue(&base, id).await;
            } else {
                taken_unreported += 1;
            }
        } else {
            // Kannel never got it (staff asked): requeued, sent once.
            not_taken += 1;
            gateway.requeue(&base, id).await;
        }
    }
    gateway.wait_all_final(Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Every number texted once, across the fake SMSC and the stand-in.
    let ours: std::collections::HashSet<String> = (0..jobs).map(|n| number(from + n)).collect();
    let mut texted: BTreeMap<String, u64> =
        kannel.received_by_number().into_iter().filter(|(to, _)| ours.contains(to)).collect();
    let kannel_sent: u64 = texted.values().sum();
    for created in twilio.created() {
        *texted.entry(created.form["To"].clone()).or_default() += 1;
    }
    let lost = (0..jobs).filter(|n| !texted.contains_key(&number(from + n))).count() as u64;
    let doubled: u64 = texted.values().map(|c| c.saturating_sub(1)).sum();
    let answers = Arc::try_unwrap(answers).ok().unwrap().into_inner().unwrap();
    let server_errors: u64 = answers.by_status.iter().filter(|(s, _)| **s >= 500 && **s != 503).map(|(_, n)| n).sum();
    let statuses = gateway.statuses().await;
    let calls = provider_calls(&http, &base).await;
    let total = |p: &str, r: &str| calls.get(&(p.to_string(), r.to_string())).copied().unwrap_or(0);
    let in_doubt = dead.len() as u64;
    Figures {
        fault: "provider outage (Kannel refuses, 500s, hangs; Twilio second)",
        backend: "SQLite",
        size: jobs,
        unit: "jobs",
        lost,
        doubled,
        server_errors,
        combinations: None,
        detail: json!({
            "phase_s": phase, "rate_per_s": rate, "breaker": {"failures": threshold, "cooldown_s": cooldown},
            "provider_timeout_s": timeout, "phases": phases, "answers": answers.by_status,
            "transport_errors": answers.transport_errors, "not_taken": answers.not_taken.len(),
            "in_doubt": {"dead_lettered": in_doubt, "hung_at_proxy": hung.len(),
                         "kannel_took_reported_requeued": taken_reported, "kannel_took_unreported": taken_unreported,
                         "kannel_never_got_requeued": not_taken, "failed_over": failed_over},
            "kannel_sent": kannel_sent,
            "twilio_sent": twilio.created().len(), "all_final_s": all_final.as_secs(), "run_s": run_s,
            "statuses": statuses,
        }),
    }
    .record_and_check();

    assert!(answers.not_taken.is_empty(), "every job taken (202): {:?}", answers.not_taken);
    assert_eq!(statuses.get("sent").copied(), Some((jobs - taken_unreported) as i64), "{statuses:?}");
    // In doubt is exactly the hang, never failed over, and documented as such.
    let in_doubt_events = "SELECT COUNT(*) FROM events WHERE type = 'dead_lettered' AND reason = 'send_in_doubt'
                           AND detail LIKE '%\"provider\":\"kannel\"%'";
    let dead_letter_events = gateway.count("SELECT COUNT(*) FROM events WHERE type = 'dead_lettered'").await;
    assert_eq!((gateway.count(in_doubt_events).await, dead_letter_events), (in_doubt as i64, in_doubt as i64));
    let mut hung_numbers: Vec<&str> = hung.iter().map(|s| s.to.as_str()).collect();
    let mut dead_numbers: Vec<String> =
        dead.iter().map(|(_, r, _)| number(from + r.trim_start_matches("outage-").parse::<u64>().unwrap())).collect();
    hung_numbers.sort();
    dead_numbers.sort();
    assert_eq!(dead_numbers, hung_numbers, "each hung request, and only those, in doubt");
    let forwarded = hung.iter().filter(|s| s.forwarded).count() as u64;
    assert_eq!(taken_reported + taken_unreported, forwarded, "Kannel took the hung requests it got");
    assert_eq!(total("kannel", "in_doubt"), in_doubt);
    assert!(in_doubt >= threshold, "the hang met at least the breaker's threshold of sends: {in_doubt}");
    assert_eq!(failed_over, 0, "a send in doubt is not failed over to Twilio");
    assert_eq!((total("twilio", "in_doubt"), total("twilio", "transient")), (0, 0));
    // The breaker: during each fault Kannel is called at most for the failures that open it (and
    // those already under way), then once a cool-down to probe it; the other jobs go straight to
    // Twilio.
    let bound = threshold + concurrency + phase.div_ceil(cooldown) + 2;
    let n = |p: &Value, provider: &str, result: &str| p[provider][result].as_u64().unwrap_or(0);
    for p in &phases {
        let (twilio_created, kannel_ok) = (p["twilio_created"].as_u64().unwrap(), n(p, "kannel", "accepted"));
        let kannel_calls = kannel_ok + n(p, "kannel", "transient") + n(p, "kannel", "in_doubt");
        match p["phase"].as_str().unwrap() {
            "normal" => assert_eq!((twilio_created, kannel_calls), (0, kannel_ok), "Kannel alone while it works: {p}"),
            "recovered" => {
                assert!(kannel_ok > 0, "probed after the cool-down and used again: {p}");
                assert!(twilio_created < rate * phase / 2, "Kannel used again: {p}");
            }
            fault => {
                assert!(kannel_calls <= bound, "Kannel skipped while the breaker is open (at most {bound}): {p}");
                assert!(twilio_created >= rate * phase / 2, "failed over to Twilio: {p}");
                if fault != "hang" {
                    assert!(n(p, "kannel", "transient") >= threshold, "failures opened the breaker: {p}");
                    assert_eq!(n(p, "kannel", "in_doubt"), 0, "nothing in doubt: {p}");
                }
            }
        }
    }
    let last = format!(
        "SELECT COUNT(*) FROM messages m JOIN outreach o ON o.id = m.outreach_id
         WHERE o.request_id = 'outage-{}' AND m.provider = 'kannel'",
        jobs - 1
    );
    assert_eq!(gateway.count(&last).await, 1, "the last job went through Kannel again");
    gateway.stop_all();
}
